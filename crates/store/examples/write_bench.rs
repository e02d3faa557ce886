//! Bounded write benchmark: group-committed location refreshes and call records per second on
//! SQLite and on a private PostgreSQL cluster, against one transaction per write.
//!
//! `cargo run -p store --release --example write_bench [sqlite|postgres]...`
//! Each run is a fixed number of writes; the figures go into the crate README.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use store::{
    Backend, BindingUpsert, Disposition, HangupBy, LegStats, NewCdr, NewExtension, OpenOptions,
    Store, Transport,
};

const EXTENSIONS: usize = 500;

struct Setup {
    tenant: i64,
    ext_ids: Vec<i64>,
}

async fn setup(s: &Store) -> Setup {
    let tenant = s.default_tenant().await.unwrap().id;
    let mut ext_ids = Vec::new();
    for i in 0..EXTENSIONS {
        let e = s
            .create_extension(
                tenant,
                NewExtension {
                    number: format!("{}", 10_000 + i),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ext_ids.push(e.id);
    }
    Setup { tenant, ext_ids }
}

fn binding(setup: &Setup, i: usize) -> BindingUpsert {
    let now = Utc::now();
    let ext = i % setup.ext_ids.len();
    BindingUpsert {
        tenant_id: setup.tenant,
        extension_id: setup.ext_ids[ext],
        aor: format!("sip:{}@denwa", 10_000 + ext),
        contact_uri: format!("sip:{}@192.0.2.{}:5060", 10_000 + ext, ext % 250),
        expires_at: now + chrono::Duration::seconds(3600),
        q: 1.0,
        call_id: format!("reg-{ext}"),
        cseq: i as i64,
        user_agent: "bench".into(),
        received_addr: "192.0.2.1:5060".into(),
        transport: Transport::Udp,
        local_addr: "192.0.2.2:5060".into(),
        instance_id: None,
        reg_id: None,
        node: "bench".into(),
        flags: 0,
        now,
    }
}

fn cdr(setup: &Setup, i: usize) -> NewCdr {
    let now = Utc::now();
    NewCdr {
        tenant_id: setup.tenant,
        call_id: format!("bench-{i}"),
        caller: "10000".into(),
        callee: "10001".into(),
        caller_name: String::new(),
        start_time: now,
        answer_time: Some(now),
        end_time: now,
        duration_s: 60,
        billsec: 58,
        disposition: Disposition::Answered,
        hangup_by: HangupBy::Caller,
        hangup_cause: "BYE".into(),
        codec: "PCMU".into(),
        a: LegStats::default(),
        b: LegStats::default(),
        route: Default::default(),
    }
}

/// `total` writes from `callers` concurrent tasks; returns writes per second and rows per
/// transaction.
async fn run(
    s: &Store,
    setup: &Arc<Setup>,
    total: usize,
    callers: usize,
    cdrs: bool,
) -> (f64, f64) {
    let before = s.write_stats();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (s, setup) = (s.clone(), setup.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < total {
                if cdrs {
                    s.insert_cdr(cdr(&setup, i)).await.unwrap();
                } else {
                    s.upsert_binding(binding(&setup, i)).await.unwrap();
                }
                i += callers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let after = s.write_stats();
    let per_tx = (after.rows - before.rows) as f64 / (after.batches - before.batches).max(1) as f64;
    (rate, per_tx)
}

async fn bench(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pg;
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("bench.db").display()),
        Backend::Postgres => {
            pg = testkit::pg::PgCluster::start().unwrap();
            pg.create_database("bench").unwrap()
        }
    };
    let s = Store::open(&url, OpenOptions::default()).await.unwrap();
    let setup = Arc::new(setup(&s).await);
    let b = backend.as_str();
    // One caller at a time: every write is its own transaction and fsync (the baseline).
    let lines = [
        ("REGISTER refresh", 500, 1, false),
        ("REGISTER refresh", 20_000, 64, false),
        ("REGISTER refresh", 20_000, 512, false),
        ("CDR insert", 500, 1, true),
        ("CDR insert", 20_000, 512, true),
    ];
    for (what, total, callers, cdrs) in lines {
        let (rate, per_tx) = run(&s, &setup, total, callers, cdrs).await;
        println!(
            "{b:8} {what:16} {callers:3} callers: {rate:>8.0} writes/s, {per_tx:>6.1} rows/transaction"
        );
    }
    s.close().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if want("sqlite") {
        bench(Backend::Sqlite).await;
    }
    if want("postgres") {
        bench(Backend::Postgres).await;
    }
}
