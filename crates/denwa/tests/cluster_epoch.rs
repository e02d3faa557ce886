//! Epochs on writes, end to end in the namespaces lab (`dnwhe-…`): two `denwa serve --cluster`
//! nodes on one PostgreSQL started by the test (the PBX database and the witness's lease row),
//! so a stale active *could* write into the very database the new active uses — only the fence
//! (`store::fence`: the grant's end on the node's own clock, and the `cluster_epoch` row read
//! inside every write transaction) stops it.
//!
//! Writers in the client namespace add extensions through `POST /api/v1/extensions` on each
//! node's physical address with an API key (a 2xx answer is an acknowledged write). The active
//! node 1 is frozen (SIGSTOP) while writes to it are in flight and keep coming; node 2 takes
//! over and takes writes; node 1 is resumed (SIGCONT) and handles everything that queued up
//! while frozen. Required: no request sent to node 1 after the freeze is acknowledged and none
//! of their rows is in the database; every acknowledged row is there (zero lost); node 1
//! demotes itself (fenced, then standby) with the reason in its events; never both nodes on the
//! application address. Prints the numbers and writes `target/tmp/cluster-epoch-results.md`.
//!
//! Run as root: `cargo test -p denwa --test cluster_epoch -- --nocapture` (iproute2,
//! iputils-arping, curl, PostgreSQL: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_lab::*;

/// One write attempt.
#[derive(Debug, Clone)]
struct Attempt {
    node: usize,
    number: u32,
    sent: Instant,
    answered: Instant,
    code: u16,
    body: String,
}

/// `POST /api/v1/extensions` from the client namespace to node `node`'s physical address.
fn post_extension(lab: &Lab, node: usize, token: &str, number: u32) -> (u16, String) {
    let body = format!(r#"{{"number":"{number}","password":"writer-Secret-pass-q"}}"#);
    let out = lab
        .client
        .command("curl")
        .args(["-s", "-m", "10", "-X", "POST", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json", "--data", &body])
        .arg(format!(
            "http://10.77.0.{}:8080/api/v1/extensions",
            node + 1
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (b, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), b.to_string())
}

/// Extensions numbered 4000 and up in the pair's database.
fn present(db_url: &str) -> BTreeSet<u32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let s = store::Store::open(db_url, store::OpenOptions::default())
                .await
                .expect("open the pair's database");
            let t = s.default_tenant().await.expect("tenant").id;
            let page = store::Page {
                limit: 10_000,
                offset: 0,
            };
            let all = s.list_extensions(t, None, page).await.expect("extensions");
            s.close().await;
            all.iter()
                .filter_map(|e| e.number.parse::<u32>().ok())
                .filter(|n| *n >= 4000)
                .collect()
        })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn frozen_old_active_resumed_can_write_nothing_and_demotes() {
    let pg = testkit::pg::PgCluster::start()
        .expect("PostgreSQL test cluster (apt-get install -y postgresql)");
    pg.create_database("denwa").expect("createdb denwa");
    pg.create_database("witness").expect("createdb witness");
    let db_url = pg.socket_url_for("denwa");
    let witness_url = pg.socket_url_for("witness");
    let lab = Lab::create("dnwhe");
    let mut n = [
        Node::new(0, &db_url, &witness_url, ""),
        Node::new(1, &db_url, &witness_url, ""),
    ];
    n[0].cli_ok(&["extension", "add", "1001", "--password", "secret-ha-aaab"]);
    n[0].cli_ok(&["extension", "add", "1002", "--password", "secret-ha-aaac"]);
    let token = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let s = store::Store::open(&db_url, store::OpenOptions::default())
                .await
                .expect("open the pair's database");
            let (_, token) = s
                .create_api_key(None, "epoch-e2e", store::ApiScope::Full)
                .await
                .expect("API key");
            s.close().await;
            token
        });
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);
    // Node 1 runs alone until the witness has recorded that node 2 caught up (docs/ha.md,
    // "Running alone"); only then may node 2 take over.
    until_not_alone(&n[0], "after the cold start");
    let epoch1 = n[0].status()["status"]["epoch"].as_u64().expect("epoch");
    assert!(epoch1 >= 1);

    // Writers: three to node 1 (the active), one to node 2 (refused while it is standby).
    let next = Arc::new(AtomicU32::new(4000));
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Attempt>>> = Arc::new(Mutex::new(Vec::new()));
    let lab = Arc::new(lab);
    let token = Arc::new(token);
    let mut threads = Vec::new();
    for node in [0usize, 0, 0, 1] {
        let (lab, token, next, stop, log) = (
            Arc::clone(&lab),
            Arc::clone(&token),
            Arc::clone(&next),
            Arc::clone(&stop),
            Arc::clone(&log),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let number = next.fetch_add(1, Ordering::SeqCst);
                let sent = Instant::now();
                let (code, body) = post_extension(&lab, node, &token, number);
                log.lock().unwrap_or_else(|p| p.into_inner()).push(Attempt {
                    node,
                    number,
                    sent,
                    answered: Instant::now(),
                    code,
                    body,
                });
                if code != 201 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }));
    }
    let acked_by = |node: usize, after: Instant| {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|a| a.node == node && a.code == 201 && a.sent >= after)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let t_start = Instant::now();
    while acked_by(0, t_start) < 20 {
        assert!(
            Instant::now() < deadline,
            "node 1 takes no writes: {:?}",
            log.lock().unwrap_or_else(|p| p.into_inner()).last()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Freeze the active with writes in flight; node 2 takes over and takes writes.
    let frozen = Instant::now();
    n[0].proc.as_mut().expect("node 1 runs").signal(19);
    let (released, took) = w.failover(&lab, 0, frozen);
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_by(1, frozen) < 5 {
        assert!(
            Instant::now() < deadline,
            "node 2 takes no writes after the takeover: {:?}",
            log.lock().unwrap_or_else(|p| p.into_inner()).last()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let writable = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|a| a.node == 1 && a.code == 201)
        .map(|a| a.answered)
        .min()
        .map(|t| t.saturating_duration_since(frozen))
        .unwrap_or_default();
    let epoch2 = n[1].status()["status"]["epoch"].as_u64().expect("epoch");
    assert!(epoch2 > epoch1, "the takeover has a newer epoch");

    // Resume the old active: everything that queued up while it was frozen is handled now.
    let resumed = Instant::now();
    n[0].proc.as_mut().expect("node 1 runs").signal(18);
    w.hold(
        &lab,
        "resumed node 1 staying off the address",
        Duration::from_secs(3),
        |h| h[1] && !h[0],
    );
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("writer");
    }
    let r = n[0].role();
    assert!(r == "fenced" || r == "standby", "resumed node 1 is {r}");
    assert_eq!(n[1].role(), "active");
    let st = n[0].status();
    let events = st["events"].to_string();
    assert!(
        events.contains("authority ended") || events.contains("newer than ours"),
        "node 1 says why it demoted: {events}"
    );

    let attempts = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let have = present(&db_url);
    let acked: BTreeSet<u32> = attempts
        .iter()
        .filter(|a| a.code == 201)
        .map(|a| a.number)
        .collect();
    let lost: Vec<u32> = acked.difference(&have).copied().collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    // Nothing refused was committed (a refusal is a refusal, not a maybe).
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.code != 201).collect();
    let leaked: Vec<u32> = refused
        .iter()
        .map(|a| a.number)
        .filter(|x| have.contains(x))
        .collect();
    assert!(
        leaked.is_empty(),
        "refused writes found in the database: {leaked:?}"
    );
    // Sent to node 1 after the freeze: none acknowledged, none in the database.
    let stale: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.node == 0 && a.sent >= frozen)
        .collect();
    let stale_acked: Vec<&&Attempt> = stale.iter().filter(|a| a.code == 201).collect();
    assert!(
        stale_acked.is_empty(),
        "the frozen old active acknowledged writes: {stale_acked:?}"
    );
    let tried_after_resume = stale
        .iter()
        .filter(|a| a.answered >= resumed && a.code != 0)
        .count();
    assert!(
        tried_after_resume >= 1,
        "no write reached the resumed node: {stale:?}"
    );
    for a in &stale {
        assert!(
            a.code == 0 || a.code == 503,
            "a refused write answers 503: {a:?}"
        );
    }
    let during = stale.iter().filter(|a| a.sent < resumed).count();
    // In flight when the node froze (sent before, answered after SIGCONT): each either
    // committed before the freeze (then it is in the database: checked above) or is refused.
    let in_flight: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.node == 0 && a.sent < frozen && a.answered >= resumed)
        .collect();
    let in_flight_codes: Vec<String> = in_flight
        .iter()
        .map(|a| {
            let how = if a.body.contains("write refused") {
                " (store fence)"
            } else {
                ""
            };
            format!("{}{how}", a.code)
        })
        .collect();
    let by_fence = stale
        .iter()
        .filter(|a| a.body.contains("write refused"))
        .count();
    let node1_log = n[0].logs();
    let fence_lines = node1_log
        .lines()
        .filter(|l| l.contains("write refused by the cluster fence"))
        .count();
    assert!(!w.split_brain, "both nodes held the address at once");

    let table = format!(
        "| measure | value |\n|---|---|\n\
         | node 1's guard released the address after the freeze | {} ms |\n\
         | node 2 holds the address after the freeze | {} ms |\n\
         | node 2's first acknowledged API write after the freeze | {} ms |\n\
         | epochs | node 1 {epoch1}, node 2 {epoch2} |\n\
         | writes sent to node 1 after the freeze | {} ({during} of them while it was frozen; {} answered after SIGCONT, all 503: {} refused by the store's fence, the rest by the standby guard; no answer: {}) |\n\
         | writes in flight to node 1 at the freeze, answered after SIGCONT | {}: {} |\n\
         | writes acknowledged by node 1 after the freeze | 0 |\n\
         | rows of refused writes in the database | 0 |\n\
         | acknowledged writes | {} (node 1 {}, node 2 {}), lost 0 |\n\
         | node 1 after SIGCONT | {r}; fence log lines {fence_lines} |\n\
         | split brain | no |\n",
        ms(released),
        ms(took),
        ms(writable),
        stale.len(),
        tried_after_resume,
        by_fence,
        stale.iter().filter(|a| a.code == 0).count(),
        in_flight.len(),
        in_flight_codes.join(", "),
        acked.len(),
        attempts
            .iter()
            .filter(|a| a.code == 201 && a.node == 0)
            .count(),
        attempts
            .iter()
            .filter(|a| a.code == 201 && a.node == 1)
            .count(),
    );
    println!("\n{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-epoch-results.md");
    std::fs::write(&out, &table).expect("results file");
}
