//! `denwa park`: the tenant's park lot (slot range, timeout, hold music, fallback) and the
//! calls parked now (the stored rows a running server keeps while a call waits in a slot).

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use engine::park::ParkLot;
use store::Store;

/// `denwa park` subcommands.
#[derive(Debug, Subcommand)]
pub enum ParkCmd {
    /// Show the park lot (the defaults when never set: slots 701-720, 120 s, class default,
    /// fallback hangup). The park code is the feature code `park` (`denwa features`).
    Show {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Change the park lot; options not given keep their value.
    Set {
        /// First slot number
        #[arg(long)]
        first: Option<u32>,
        /// Last slot number (at most 100 slots)
        #[arg(long)]
        last: Option<u32>,
        /// Seconds a call stays parked before the parker is rung back (10-3600)
        #[arg(long)]
        timeout: Option<u32>,
        /// Music-on-hold class parked callers hear
        #[arg(long)]
        moh_class: Option<String>,
        /// Where the call goes when the parker does not answer: hangup (a prompt, then hang
        /// up) or a destination (ext:1000, vm:1000, ivr:main, ...)
        #[arg(long)]
        fallback: Option<String>,
    },
    /// List the calls parked now: slot, caller, parked by, since, timeout.
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
}

fn lot_json(l: &ParkLot) -> serde_json::Value {
    serde_json::json!({
        "first_slot": l.first,
        "last_slot": l.last,
        "timeout_s": l.timeout.as_secs(),
        "moh_class": l.moh_class,
        "fallback": l.fallback,
    })
}

fn print_lot(out: &mut impl Write, l: &ParkLot) -> Result<()> {
    writeln!(out, "slots:     {}-{}", l.first, l.last)?;
    writeln!(out, "timeout:   {} s", l.timeout.as_secs())?;
    writeln!(out, "moh class: {}", l.moh_class)?;
    writeln!(out, "fallback:  {}", l.fallback)?;
    Ok(())
}

fn utc(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Runs a `denwa park` subcommand for `tenant`.
pub async fn run(cmd: ParkCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        ParkCmd::Show { json } => {
            let l = store.park_lot(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&lot_json(&l))?)?;
            } else {
                print_lot(out, &l)?;
            }
        }
        ParkCmd::Set {
            first,
            last,
            timeout,
            moh_class,
            fallback,
        } => {
            let cur = store.park_lot(tenant).await?;
            let l = ParkLot {
                first: first.unwrap_or(cur.first),
                last: last.unwrap_or(cur.last),
                timeout: timeout.map_or(cur.timeout, |s| Duration::from_secs(u64::from(s))),
                moh_class: moh_class.unwrap_or(cur.moh_class),
                fallback: fallback.unwrap_or(cur.fallback),
            };
            store.set_park_lot(tenant, &l).await.map_err(|e| match e {
                store::Error::Invalid { reason, .. } => anyhow!("{reason}"),
                other => anyhow!(other),
            })?;
            print_lot(out, &l)?;
        }
        ParkCmd::List { json } => {
            let rows: Vec<_> = store
                .park_calls()
                .await?
                .into_iter()
                .filter(|r| r.tenant == tenant)
                .collect();
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "slot": r.slot,
                            "caller": r.caller,
                            "caller_name": r.caller_name,
                            "parked_by": r.parker,
                            "since": utc(r.parked_at),
                            "timeout_at": utc(r.timeout_at),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(
                    out,
                    "{:<6} {:<24} {:<10} {:<20} TIMEOUT (UTC)",
                    "SLOT", "CALLER", "PARKED BY", "SINCE (UTC)"
                )?;
                for r in rows {
                    let caller = if r.caller_name.is_empty() {
                        r.caller.clone()
                    } else {
                        format!("{} ({})", r.caller, r.caller_name)
                    };
                    writeln!(
                        out,
                        "{:<6} {:<24} {:<10} {:<20} {}",
                        r.slot,
                        caller,
                        r.parker,
                        utc(r.parked_at),
                        utc(r.timeout_at)
                    )?;
                }
            }
        }
    }
    Ok(())
}
