//! Issue 17 §2/§4: "running alone" end to end, in network namespaces (`dnwsy-…`): two
//! `denwa serve --cluster` nodes, each with its own PostgreSQL, the witness's PostgreSQL in a
//! third namespace on its own link to each node (`cluster_lab`), and writers in the client
//! namespace making API writes (`POST /api/v1/extensions`, 201 = acknowledged) to the active
//! node's physical address, several at a time so that some are always waiting for the
//! standby's acknowledgement.
//!
//! (A) The write-loss window: the active is cut off from both the standby and the witness while
//! writes are in flight. Before, it turned synchronous replication off once the standby had
//! been silent `dead_after`, releasing commits the standby never got, and the standby took over
//! without them; their 201s reached the clients after the heal. Now the active cannot have the
//! witness record that it runs alone, so synchronous replication stays on until it stops.
//! Required: every acknowledged write is in the new active's database; never two nodes on the
//! application address.
//!
//! (B) The active cut from its standby only (the witness reachable): it has the witness record
//! that it runs alone, turns synchronous replication off and goes on acknowledging writes (its
//! status says `alone`). Then it is killed: the standby, which lacks those writes, must not take
//! over, and says why; when the old active comes back it resumes, with every write.
//!
//! Run as root: `cargo test -p denwa --test cluster_alone -- --nocapture` (iproute2, nftables,
//! PostgreSQL, curl: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_lab::*;

/// Writers running at once (each waits for its answer before the next write).
const WRITERS: usize = 12;

/// The acknowledged writes (extension numbers) and how many were refused or unanswered.
#[derive(Default)]
struct Log {
    acked: Vec<u32>,
    failed: u64,
}

/// Writes extensions numbered from `next` to the node `target` says, with `curl` in the client
/// namespace, until `stop`. A request may take long (the answer of a commit released after a
/// heal comes late): `curl` waits up to 30 s.
fn writer(
    lab_client: String,
    token: String,
    target: Arc<AtomicUsize>,
    next: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let number = next.fetch_add(1, Ordering::SeqCst);
        if number > 8999 {
            return;
        }
        let node = target.load(Ordering::SeqCst);
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab_client,
                "curl",
                "-s",
                "-o",
                "/dev/null",
            ])
            .args(["-w", "%{http_code}", "--connect-timeout", "2"])
            .args(["--max-time", "30", "-X", "POST"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json"])
            .args(["-d", &format!("{{\"number\":\"{number}\"}}")])
            .arg(format!(
                "http://10.77.0.{}:8080/api/v1/extensions",
                node + 1
            ))
            .output();
        let code = out
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let mut g = log.lock().unwrap_or_else(|p| p.into_inner());
        if code == "201" {
            g.acked.push(number);
        } else {
            g.failed += 1;
            drop(g);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn acked(log: &Arc<Mutex<Log>>) -> Vec<u32> {
    log.lock().unwrap_or_else(|p| p.into_inner()).acked.clone()
}

/// Acknowledged writes missing from node `idx`'s database.
fn lost(pgs: &[pbx::cluster_pg::PgNode; 2], idx: usize, acked: &[u32]) -> Vec<u32> {
    let have: BTreeSet<u32> = present(&pgs[idx]);
    acked
        .iter()
        .copied()
        .filter(|n| !have.contains(n))
        .collect()
}

/// Drops everything between the two nodes on the service network in node `idx` (nftables; the
/// clients and the witness still reach it).
fn cut_from_peer(lab: &Lab, idx: usize, cut: bool) {
    let ns = &lab.nodes[idx];
    let table = "dnwsy_peer";
    if !cut {
        sh(ns, &["nft", "delete", "table", "inet", table]);
        return;
    }
    let peer = format!("10.77.0.{}", 2 - idx);
    let rules = format!(
        "table inet {table} {{\n\
           chain cin {{ type filter hook input priority -300; ip saddr {peer} drop; }}\n\
           chain cout {{ type filter hook output priority -300; ip daddr {peer} drop; }}\n\
         }}\n"
    );
    let path = std::env::temp_dir().join(format!("{}-{table}.nft", ns.name()));
    std::fs::write(&path, rules).expect("nft rules");
    sh(ns, &["nft", "-f", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(path);
}

/// Polls node `idx`'s status until `f` holds (at most `limit`).
fn until_status(n: &Node, what: &str, limit: Duration, f: impl Fn(&serde_json::Value) -> bool) {
    let t0 = Instant::now();
    loop {
        let s = n.status();
        if f(&s) {
            return;
        }
        assert!(t0.elapsed() < limit, "{what}: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn no_acknowledged_write_is_lost_and_the_standby_left_behind_never_takes_over() {
    let tmp = tempfile::Builder::new()
        .prefix("dnwsy-")
        .tempdir()
        .expect("tmp");
    let root = tmp.path().to_path_buf();
    let lab = Lab::create("dnwsy");
    let witness = Witness::start("dnwsy", &lab);
    let (mut n, pgs) = pair_with_own_postgres(&lab, &root, &witness.url(0));
    // Node 2 reaches the witness over its own link.
    std::fs::write(
        &n[1].cluster_file,
        cluster_text(1, &witness.url(1), &pg_section(&root, 1)),
    )
    .expect("cluster file");
    let _pg_stop = PgStop(pgs.to_vec());
    let token = api_token(&pgs[0].config().store_url(), "alone-e2e");
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);
    until_pair_ready(&n, 0, "cold start");

    let target = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicU32::new(3000));
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (c, t, tg, nx, st, lg) = (
                lab.client.name().to_string(),
                token.clone(),
                Arc::clone(&target),
                Arc::clone(&next),
                Arc::clone(&stop),
                Arc::clone(&log),
            );
            std::thread::spawn(move || writer(c, t, tg, nx, st, lg))
        })
        .collect();
    let wait_acks = |k: usize, what: &str| {
        let t0 = Instant::now();
        let base = acked(&log).len();
        while acked(&log).len() < base + k {
            assert!(t0.elapsed() < Duration::from_secs(60), "{what}: no writes");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_acks(40, "before (A)");

    // (A) Node 1 (active) cut off from the standby and the witness, writes in flight.
    let cut = Instant::now();
    for l in [Link::Service, Link::Heartbeat, Link::Witness] {
        drop_link(&lab, 0, l, true);
    }
    let (released, held) = w.failover(&lab, 0, cut);
    target.store(1, Ordering::SeqCst);
    // Heal at once: answers of requests node 1 had in flight reach the clients now (before,
    // the 201s of commits released when it turned synchronous replication off did).
    for l in [Link::Service, Link::Heartbeat, Link::Witness] {
        drop_link(&lab, 0, l, false);
    }
    wait_acks(20, "node 2 taking writes");
    // Answers held up by the cut arrive now (or time out); node 1 re-attaches as standby.
    until_roles(&n, "after the heal", |a, b| {
        (a == "standby" || a == "fenced") && b == "active"
    });
    std::thread::sleep(Duration::from_secs(3));
    let a_acked = acked(&log);
    let a_lost = lost(&pgs, 1, &a_acked);
    println!(
        "(A) cut off from standby and witness: address released {} ms, held by node 2 {} ms \
         after the cut; {} writes acknowledged so far, {} of them missing on node 2",
        released.as_millis(),
        held.as_millis(),
        a_acked.len(),
        a_lost.len()
    );
    assert!(a_lost.is_empty(), "acknowledged writes lost: {a_lost:?}");
    assert!(!w.split_brain, "two nodes held the application address");
    let logs = n[0].logs();
    assert!(
        !logs.contains("synchronous replication off: running alone"),
        "node 1 must not have turned synchronous replication off without the witness"
    );

    // (B) Node 2 (active) cut from node 1 only; the witness reachable.
    until_pair_ready(&n, 1, "after (A): node 1 re-attached and caught up");
    cut_from_peer(&lab, 1, true);
    drop_link(&lab, 1, Link::Heartbeat, true);
    until_status(
        &n[1],
        "node 2 running alone",
        Duration::from_secs(10),
        |s| s["status"]["alone"] == true && s["status"]["sync_replication"] == false,
    );
    let before = acked(&log).len();
    wait_acks(20, "node 2 acknowledging writes alone");
    let alone_acks = acked(&log).len() - before;
    let s2 = n[1].status();
    assert_eq!(s2["status"]["role"], "active", "{s2}");
    // Node 2 dies; the links heal: node 1 must not take over, and says why.
    stop.store(true, Ordering::SeqCst);
    for h in writers {
        let _ = h.join();
    }
    let killed = Instant::now();
    n[1].kill9();
    cut_from_peer(&lab, 1, false);
    drop_link(&lab, 1, Link::Heartbeat, false);
    w.hold(
        &lab,
        "nobody taking over from the node that ran alone",
        Duration::from_secs(8),
        |h| !h[0] && !h[1],
    );
    let s1 = n[0].status();
    assert_eq!(s1["status"]["role"], "standby", "{s1}");
    let why = s1["status"]["blocked"].as_str().unwrap_or("").to_string();
    assert!(
        why.contains("the witness records that node 2 runs alone since"),
        "{s1}"
    );
    // Node 2 comes back and resumes, with every acknowledged write.
    n[1].spawn(&lab);
    let resumed = w.until(&lab, "node 2 to resume", Duration::from_secs(30), |h| {
        h[1] && !h[0]
    });
    let all = acked(&log);
    let b_lost = lost(&pgs, 1, &all);
    println!(
        "(B) cut from its standby only: node 2 ran alone ({alone_acks} writes acknowledged \
         alone), killed; node 1 refused for 8 s: \"{why}\"; node 2 back and holding the \
         address {} ms after it was started ({} ms after the kill); {} writes acknowledged in \
         all, {} missing on node 2",
        resumed.as_millis(),
        killed.elapsed().as_millis(),
        all.len(),
        b_lost.len()
    );
    assert!(b_lost.is_empty(), "acknowledged writes lost: {b_lost:?}");
    assert!(!w.split_brain, "two nodes held the application address");
    n[0].kill9();
    n[1].kill9();
}
