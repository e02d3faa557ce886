//! Test helper for crash safety: opens a store, writes location refreshes and call records
//! through group commit from many tasks, and prints one line per acknowledged write:
//! `ack binding CONTACT` or `ack cdr CALL_ID`. A test SIGKILLs it mid-burst and checks that
//! every acknowledged row survived.
//!
//! Usage: `store-crash-writer DATABASE_URL [MAX_WRITES] [TASKS]` (defaults 200000 and 64).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use chrono::Utc;
use store::{
    BindingUpsert, Disposition, HangupBy, LegStats, NewCdr, NewExtension, OpenOptions, Store,
    Transport,
};

fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the test is gone; nothing left to report to.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: store-crash-writer DATABASE_URL [MAX_WRITES] [TASKS]")?;
    let max: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let tasks: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let s = Store::open(&url, OpenOptions::default()).await?;
    let tenant = s.default_tenant().await?.id;
    let ext = match s.extension(tenant, "1001").await? {
        Some(e) => e,
        None => {
            s.create_extension(
                tenant,
                NewExtension {
                    number: "1001".into(),
                    ..Default::default()
                },
            )
            .await?
        }
    };
    ack("ready");
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks.max(1) {
        let (s, next) = (s.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    return Ok::<_, store::Error>(());
                }
                let now = Utc::now();
                if i % 2 == 0 {
                    let contact = format!("sip:1001-{i}@192.0.2.1");
                    s.upsert_binding(BindingUpsert {
                        tenant_id: tenant,
                        extension_id: ext.id,
                        aor: "sip:1001@denwa".into(),
                        contact_uri: contact.clone(),
                        expires_at: now + chrono::Duration::seconds(3600),
                        q: 1.0,
                        call_id: format!("reg-{i}"),
                        cseq: 1,
                        user_agent: "crash-writer".into(),
                        received_addr: "192.0.2.1:5060".into(),
                        transport: Transport::Udp,
                        local_addr: "192.0.2.2:5060".into(),
                        instance_id: None,
                        reg_id: None,
                        node: "crash".into(),
                        flags: 0,
                        now,
                    })
                    .await?;
                    ack(&format!("ack binding {contact}"));
                } else {
                    let call_id = format!("call-{i}");
                    s.insert_cdr(NewCdr {
                        tenant_id: tenant,
                        call_id: call_id.clone(),
                        caller: "1001".into(),
                        callee: "1002".into(),
                        caller_name: String::new(),
                        start_time: now,
                        answer_time: Some(now),
                        end_time: now,
                        duration_s: 0,
                        billsec: 0,
                        disposition: Disposition::Answered,
                        hangup_by: HangupBy::Caller,
                        hangup_cause: String::new(),
                        codec: "PCMU".into(),
                        a: LegStats::default(),
                        b: LegStats::default(),
                        route: Default::default(),
                    })
                    .await?;
                    ack(&format!("ack cdr {call_id}"));
                }
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}
