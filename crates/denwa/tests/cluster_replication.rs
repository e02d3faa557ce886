//! The active/standby pair with its own PostgreSQL on each node, end to end in network
//! namespaces (`dnwpg-…`): each node's PostgreSQL is created by `denwa cluster init-db` inside
//! the node's namespace and replicates over the dedicated link (10.78.0.0/30); the witness's
//! lease row is in a third PostgreSQL started by the test. A writer in the client namespace adds
//! extensions numbered in sequence through `POST /api/v1/extensions` on the application address
//! (API key; whichever node holds the address answers) and remembers which were acknowledged
//! (2xx). Steps: manual switchover; `kill -9` of the active node's
//! Denwa *and* its PostgreSQL (the machine dies) and the old node brought back, re-attached as
//! the standby; the standby killed while writes go on alone. For each: acknowledged writes
//! lost (must be 0: synchronous commit), time until the new active accepted a write, and a call
//! to the phone registered before the step (the registration is in the replicated database).
//! Prints a table and writes it to `target/tmp/cluster-replication-results.md`.
//!
//! Run as root: `cargo test -p denwa --test cluster_replication -- --nocapture` (iproute2,
//! iputils-arping, sipp, PostgreSQL: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_lab::*;
use common::{bin, sipp_user};
use pbx::cluster_pg::PgNode;
use testkit::sipp::Sipp;

/// `kill -9` of a node's postmaster (its backends die with it).
fn kill_postgres(n: &PgNode) {
    let pidfile = n.config().data_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&pidfile).expect("postmaster.pid");
    let pid = text.lines().next().unwrap_or("").trim().to_string();
    let st = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -9 {pid}");
    let t0 = Instant::now();
    while n.running() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "postgres still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the writer saw: acknowledged numbers, when the last one was acknowledged.
#[derive(Default)]
struct Writes {
    acked: BTreeSet<u32>,
    last_ack: Option<Instant>,
    last_error: String,
    probe: u32,
    /// Requests sent by the HTTP writer, and how many were refused or failed.
    sent: u32,
    failed: u32,
}

/// Adds extensions 3000, 3001… one after the other through the API on the application
/// address (`POST /api/v1/extensions` from the client namespace, with an API key): whichever
/// node holds the address answers; a write counts when it answers 2xx. Each number is tried
/// once (a request that timed out may have committed: retrying it would be a conflict).
fn writer(lab: Arc<Lab>, token: String, stop: Arc<AtomicBool>, w: Arc<Mutex<Writes>>) {
    let mut next = 3000u32;
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let body = format!(r#"{{"number":"{next}","password":"writer-Secret-pass-q"}}"#);
        let out = lab
            .client
            .command("curl")
            .args(["-s", "-m", "5", "-X", "POST", "-w", "\n%{http_code}"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json", "--data", &body])
            .arg(format!("http://{APP_IP}:8080/api/v1/extensions"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (answer, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let code: u16 = code.trim().parse().unwrap_or(0);
        if t.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "writer: extension {next} took {} ms (HTTP {code}): {answer}",
                t.elapsed().as_millis()
            );
        }
        let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
        g.sent += 1;
        if (200..300).contains(&code) {
            g.acked.insert(next);
            g.last_ack = Some(Instant::now());
        } else {
            g.failed += 1;
            g.last_error = format!("HTTP {code}: {answer}");
            drop(g);
            std::thread::sleep(Duration::from_millis(20));
        }
        next += 1;
    }
}

/// Writes extensions 9000, 9001… to node `i` (its own database URL) until one is acknowledged;
/// the time from `t0`. (The writer may be stuck in a connection attempt to a dead node for a
/// while: this probe measures the database, not the client.)
fn until_writable(n: &Node, w: &Arc<Mutex<Writes>>, t0: Instant) -> Duration {
    let (k, v) = testkit::licence::DEV_ENV;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let num = {
            let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
            g.probe += 1;
            9000 + g.probe
        };
        let out = std::process::Command::new(bin())
            .args(["extension", "add", &num.to_string()])
            .args(["--password", "writer-Secret-pass-q"])
            .args(["--data-dir", n.data.path().to_str().expect("utf-8")])
            .args(["--database-url", &n.db_url])
            .env(k, v)
            .output()
            .expect("denwa");
        if out.status.success() {
            let d = t0.elapsed();
            w.lock()
                .unwrap_or_else(|p| p.into_inner())
                .acked
                .insert(num);
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "node {} never took a write: {}",
            n.idx + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lost(w: &Arc<Mutex<Writes>>, on: &PgNode) -> usize {
    let acked = w.lock().unwrap_or_else(|p| p.into_inner()).acked.clone();
    let have = present(on);
    acked.difference(&have).count()
}

/// How node `n`'s PostgreSQL was last re-attached, from its log.
fn attached(n: &Node) -> &'static str {
    let logs = n.logs();
    if let Some(i) = logs.find("pg_rewind failed") {
        let tail: String = logs[i..].lines().take(6).collect::<Vec<_>>().join("\n");
        eprintln!("node {}: {tail}", n.idx + 1);
    }
    if logs.contains("re-attached as the peer's standby (Recloned)") {
        "re-cloned (pg_basebackup)"
    } else if logs.contains("re-attached as the peer's standby (Rewound)") {
        "rewound (pg_rewind)"
    } else {
        "streamed without re-attaching"
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn pair_with_replicated_postgresql_loses_no_acknowledged_write() {
    let (_witness, witness_url) = witness_on_host();
    let tmp = tempfile::Builder::new()
        .prefix("dnwpg-")
        .tempdir()
        .expect("tmp");
    let root = tmp.path();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(root)
        .status()
        .expect("chmod");
    std::fs::write(root.join("repl.pass"), "pair-replication-secret\n").expect("password");
    let pgs = [pg_node(root, 0), pg_node(root, 1)];
    let _pg_stop = PgStop(pgs.to_vec());
    let lab = Arc::new(Lab::create("dnwpg"));
    let urls = [pgs[0].config().store_url(), pgs[1].config().store_url()];

    // Each node's PostgreSQL: node 1 initialised as the first active, node 2 cloned from it.
    let files: Vec<PathBuf> = (0..2)
        .map(|i| {
            let f = root.join(format!("cluster{}.toml", i + 1));
            std::fs::write(&f, cluster_text(i, &witness_url, &pg_section(root, i)))
                .expect("cluster file");
            f
        })
        .collect();
    let init = |i: usize, standby: bool| init_db(&lab, i, &files[i], standby);
    let said = init(0, false);
    assert!(said.contains("primary"), "{said}");
    let n0 = Node::new(0, &urls[0], &witness_url, &pg_section(root, 0));
    n0.cli_ok(&["extension", "add", "1001", "--password", "secret-ha-aaab"]);
    n0.cli_ok(&["extension", "add", "1002", "--password", "secret-ha-aaac"]);
    let said = init(1, true);
    assert!(said.contains("standby"), "{said}");
    // The standby's store opens on its read-only replica (the CLI reads there).
    let mut n = [
        n0,
        Node::new(1, &urls[1], &witness_url, &pg_section(root, 1)),
    ];
    assert_eq!(pgs[1].in_recovery(), Some(true));

    let mut w = Watch { split_brain: false };
    let mut rows: Vec<String> = Vec::new();
    cold_start(&mut w, &lab, &mut n);
    until_pair_ready(&n, 0, "cold start");
    // The standby serves reads from its replica and refuses writes, after authentication.
    let listed = n[1].cli_in_ns(&lab, &["extension", "list"]);
    assert!(listed.contains("1002"), "{listed}");
    let token = api_token(&urls[0], "replication-e2e");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, body) = loop {
        // The key reaches the standby by replication.
        let (code, body) = n[1].http(&lab, "GET", "/api/v1/cluster", &token);
        if code == 200 || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"role\":\"standby\""), "{body}");
    let (code, body) = n[1].http(&lab, "POST", "/api/v1/extensions", &token);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("standby_read_only")
            && body.contains("make changes on the active node (node 1, 10.77.0.1)"),
        "{body}"
    );
    let (code, body) = n[1].http(&lab, "POST", "/api/v1/extensions", "not-a-key");
    assert_eq!(code, 401, "no key, no hint: {body}");
    let (code, body) = n[0].http(&lab, "POST", "/api/v1/extensions", &token);
    assert_ne!(code, 503, "the active node takes writes: {body}");
    let (_, m) = n[0].http(&lab, "GET", "/metrics", &token);
    assert!(
        m.contains("denwa_cluster_replication_streaming{state=\"primary\"} 1"),
        "{m}"
    );
    assert!(m.contains("denwa_cluster_replication_lag_bytes "), "{m}");
    let st = n[1].cli_ok(&["cluster", "status"]);
    assert!(st.contains("database  replica  streaming true"), "{st}");

    let writes = Arc::new(Mutex::new(Writes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let wt = {
        let (lab, token, stop, writes) = (
            Arc::clone(&lab),
            token.clone(),
            Arc::clone(&stop),
            Arc::clone(&writes),
        );
        std::thread::spawn(move || writer(lab, token, stop, writes))
    };
    // `k` more writes acknowledged through the application address (by whichever node holds
    // it now: the caller has waited for the address to move).
    let wait_acks = |_node: usize, k: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let start = writes.lock().unwrap_or_else(|p| p.into_inner()).acked.len();
        loop {
            let g = writes.lock().unwrap_or_else(|p| p.into_inner());
            if g.acked.len() >= start + k && g.last_ack.is_some() {
                return;
            }
            drop(g);
            assert!(
                Instant::now() < deadline,
                "writes stalled: {}",
                writes.lock().unwrap_or_else(|p| p.into_inner()).last_error
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_acks(0, 5);

    // A caller parked on node 1 (sipp dials *70 and then waits for the re-INVITE of whoever
    // resumes the park): the park row is replicated with the rest.
    let parked_phone = {
        let mut uac = Sipp::uac(
            workspace("tests/sipp/uac_park_reinvited.xml"),
            &format!("{APP_IP}:5060"),
        );
        uac.netns = Some(lab.client.name().to_string());
        uac.local_ip = CLIENT_IP.into();
        uac.local_port = Some(5094);
        uac.inject_text = Some(sipp_user("1001", "secret-ha-aaab"));
        uac.service = Some("*70".into());
        uac.spawn().expect("parked sipp caller")
    };
    let parked_on = |node: &Node, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, body) = node.http(&lab, "GET", "/api/v1/park/calls", &token);
            if code == 200 && body.contains("\"slot\":701") {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {code} {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    parked_on(&n[0], "the call parked on node 1");

    // 1. Switchover (CLI on the active node 1).
    let t0 = Instant::now();
    n[0].cli_ok(&["cluster", "switchover"]);
    // Node 2 resumes the parked call (slot 701 listed there; watched beside the other
    // measurements so that none delays another), the parked phone gets its re-INVITE from the
    // address and later hangs up in that dialog (node 2 answers the BYE).
    let (moved, writable, resumed) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            parked_on(&n[1], "the parked call resumed by node 2");
            t0.elapsed()
        });
        let moved = w.until(
            &lab,
            "node 2 to hold the address",
            Duration::from_secs(10),
            |h| h[1] && !h[0],
        );
        let writable = until_writable(&n[1], &writes, t0);
        (moved, writable, watcher.join().expect("park watcher"))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, old) = n[0].http(&lab, "GET", "/api/v1/park/calls", &token);
        if !old.contains("\"slot\":701") {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 kept the park: {old}");
        std::thread::sleep(Duration::from_millis(50));
    }
    parked_phone
        .finish()
        .expect("the parked phone was re-INVITEd by node 2 and hung up there");
    rows.push(format!(
        "| parked call across the switchover | — | slot 701 resumed by node 2 {} ms after the command (re-INVITE answered, BYE answered by node 2) | — | — |",
        ms(resumed)
    ));
    call_1002(&lab);
    // The promoted node watches configuration changes again (its LISTEN was refused while it
    // was a standby): an extension added now by another process registers at once.
    n[1].cli_in_ns(
        &lab,
        &["extension", "add", "1003", "--password", "secret-ha-aaad"],
    );
    register(&lab, "1003", "secret-ha-aaad", PHONE_PORT + 10);
    until_pair_ready(&n, 1, "after the switchover (node 1 re-attached)");
    let ready = t0.elapsed();
    wait_acks(1, 5);
    let l = lost(&writes, &pgs[1]);
    rows.push(format!(
        "| switchover (`denwa cluster switchover`) | {l} | address moved in {} ms; writable {} ms after the command | yes | node 1 {}, streaming, sync on {} ms after the command |",
        ms(moved),
        ms(writable),
        attached(&n[0]),
        ms(ready)
    ));
    assert_eq!(l, 0, "acknowledged writes lost in the switchover");

    // 2. The active node 2 dies: Denwa and its PostgreSQL killed with SIGKILL.
    let t0 = Instant::now();
    n[1].kill9();
    kill_postgres(&pgs[1]);
    let (_, held) = w.failover(&lab, 1, t0);
    let writable = until_writable(&n[0], &writes, t0);
    call_1002(&lab);
    wait_acks(0, 5);
    let l = lost(&writes, &pgs[0]);
    rows.push(format!(
        "| `kill -9` of the active (Denwa + PostgreSQL) | {l} | address held {} ms after the kill; writable {} ms after | yes | — |",
        ms(held),
        ms(writable)
    ));
    assert_eq!(l, 0, "acknowledged writes lost when the active died");
    // Writes went on alone meanwhile: synchronous replication is off on the survivor.
    let s = n[0].status();
    assert_eq!(s["status"]["sync_replication"], false, "{s}");

    // 3. The dead node comes back: its PostgreSQL starts read-only and is re-attached.
    let t0 = Instant::now();
    n[1].spawn(&lab);
    until_pair_ready(&n, 0, "the old active re-attached");
    let back = t0.elapsed();
    wait_acks(0, 5);
    rows.push(format!(
        "| old active back | 0 | standby, streaming with sync on {} ms after its start | — | node 2 {} |",
        ms(back),
        attached(&n[1])
    ));

    // 4. The standby dies (Denwa and PostgreSQL): the active goes on alone, not hanging.
    n[1].kill9();
    kill_postgres(&pgs[1]);
    wait_acks(0, 10);
    let s = n[0].status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = s;
    while s["status"]["sync_replication"] != false {
        assert!(Instant::now() < deadline, "sync replication still on: {s}");
        std::thread::sleep(Duration::from_millis(200));
        s = n[0].status();
    }
    assert!(s["switchover_refused"].is_string(), "{s}");
    call_1002(&lab);
    stop.store(true, Ordering::SeqCst);
    wt.join().expect("writer");
    let l = lost(&writes, &pgs[0]);
    let (total, sent, failed) = {
        let g = writes.lock().unwrap_or_else(|p| p.into_inner());
        (g.acked.len(), g.sent, g.failed)
    };
    rows.push(format!(
        "| standby killed (Denwa + PostgreSQL) | {l} | writes go on alone (10 acknowledged after the kill); sync replication off; switchover refused: {} | yes | — |",
        s["switchover_refused"].as_str().unwrap_or("")
    ));
    assert_eq!(l, 0);
    assert!(!w.split_brain, "both nodes held the address at once");

    let mut table = String::from(
        "| step | acknowledged writes lost | time | call to a phone registered before | database after |\n|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(r);
        table.push('\n');
    }
    table.push_str(&format!(
        "\n{total} writes acknowledged in all ({sent} sent through `POST /api/v1/extensions` on the application address, {failed} refused or unanswered while the address moved; the rest are the per-node database probes); no split brain.\n"
    ));
    println!("\n{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-replication-results.md");
    std::fs::write(&out, &table).expect("results file");
}
