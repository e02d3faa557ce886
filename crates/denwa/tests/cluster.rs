//! The active/standby pair end to end, in network namespaces: two `denwa serve --cluster`
//! nodes (one PostgreSQL started by the test holds the PBX database and, in a second database,
//! the witness's lease row; the nodes reach it over its Unix socket), a bridge segment carrying
//! the application address, a dedicated heartbeat link between the nodes, and a client
//! namespace where sipp plays the phones.
//!
//! Scenarios: (a) cold start: the preferred node becomes ACT, holds the address, a REGISTER to
//! it succeeds; (d) one heartbeat path cut: no takeover; (b) kill -9 of the ACT: the SBY takes
//! over (time measured), holds the address, calls the phone registered before and accepts a new
//! REGISTER; (c) switchover through the API: roles swap, the address moves back; then a
//! switchover with the CLI, a clean stop (SIGTERM) that hands over, and a frozen ACT (SIGSTOP,
//! then SIGCONT) that loses the address to its release guard and demotes when resumed. (e) at
//! every poll of every step, both namespaces' addresses (IPv4 and IPv6) are checked: never both
//! holding one.

mod cluster_lab;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_lab::*;
use common::bin;

/// The two tests take turns: each runs four processes with real-time expectations.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A test PostgreSQL (databases `denwa` and `witness`), the lab, and two configured nodes (not
/// started) with extensions 1001 and 1002; `extra` goes into both cluster files.
fn setup(extra: &str) -> (testkit::pg::PgCluster, Lab, [Node; 2], String) {
    let pg = testkit::pg::PgCluster::start()
        .expect("PostgreSQL test cluster (apt-get install -y postgresql)");
    pg.create_database("denwa").expect("createdb denwa");
    pg.create_database("witness").expect("createdb witness");
    let db_url = pg.socket_url_for("denwa");
    let witness_url = pg.socket_url_for("witness");
    let lab = Lab::create("dnwha");
    let n = [
        Node::new(0, &db_url, &witness_url, extra),
        Node::new(1, &db_url, &witness_url, extra),
    ];
    n[0].cli_ok(&["extension", "add", "1001", "--password", "secret-ha-aaab"]);
    n[0].cli_ok(&["extension", "add", "1002", "--password", "secret-ha-aaac"]);
    (pg, lab, n, db_url)
}

/// Runs SQL on the test PostgreSQL as its superuser.
fn psql(pg: &testkit::pg::PgCluster, sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn witness_outage_keeps_the_active_serving_and_fencing_takes_over() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let fenced = tempfile::NamedTempFile::new().expect("temp file");
    let log = fenced.path().display().to_string();
    let (mut pg, lab, mut n, _) = setup(&format!(
        "fence_command = [\"/bin/sh\", \"-c\", \"echo fenced $DENWA_FENCE_PEER >> {log}\"]"
    ));
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);

    // The witness goes away: the active keeps serving on the standby's acknowledgements.
    psql(&pg, "ALTER DATABASE witness ALLOW_CONNECTIONS false");
    psql(
        &pg,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'witness'",
    );
    w.hold(
        &lab,
        "node 1 serving without the witness",
        Duration::from_secs(4),
        |h| h[0] && !h[1],
    );
    let s1 = n[0].status();
    assert_eq!(s1["status"]["role"], "active", "{s1}");
    assert_eq!(s1["status"]["witness_reachable"], false, "{s1}");
    assert_eq!(s1["status"]["authority"], "peer_ack", "{s1}");
    assert_eq!(n[1].role(), "standby");
    assert_eq!(std::fs::read_to_string(fenced.path()).expect("read"), "");

    // Witness down and the active killed: the standby fences it and takes over.
    let (_, took) = kill9_active(&mut w, &lab, &mut n[0]);
    println!(
        "witness down + kill -9: node 2 fenced node 1 and holds {APP_IP} {} ms after the kill",
        took.as_millis()
    );
    assert_eq!(
        std::fs::read_to_string(fenced.path()).expect("read"),
        "fenced 1\n"
    );
    let s2 = n[1].status();
    assert_eq!(s2["status"]["authority"], "fence", "{s2}");
    call_1002(&lab);

    // The witness back: the survivor replaces its fencing authority with a lease.
    psql(&pg, "ALTER DATABASE witness ALLOW_CONNECTIONS true");
    let deadline = Instant::now() + Duration::from_secs(10);
    while n[1].status()["status"]["authority"] != "lease" {
        assert!(
            Instant::now() < deadline,
            "no lease after the witness came back: {}",
            n[1].status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !w.split_brain,
        "two nodes held the application address at once"
    );
    println!(
        "\n| scenario | takeover | split brain |\n|---|---|---|\n| witness down (4 s) | no takeover, active on acks | no |\n| witness down + kill -9 of the ACT, fencing hook | {} ms | no |",
        took.as_millis()
    );
    n[1].kill9();
    drop(lab);
    pg.stop();
}

#[test]
fn active_standby_pair_moves_the_application_address() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mut pg, lab, mut n, db_url) = setup("");
    let token = api_token(&db_url, "cluster-e2e");
    let mut w = Watch { split_brain: false };
    let mut rows: Vec<(String, String, bool)> = Vec::new();

    // A clustered start needs the active-standby licence: a standalone one is refused clearly.
    {
        let other = tempfile::tempdir().expect("dir");
        let out = Command::new(bin())
            .args(["serve", "--data-dir", other.path().to_str().expect("utf-8")])
            .args(["--database-url", &db_url])
            .args([
                "--sip-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--cluster", n[0].cluster_file.to_str().expect("utf-8")])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("active-standby topology") && err.contains("standalone"),
            "{err}"
        );
    }

    // (a) Cold start of both: the preferred node 1 becomes ACT and holds the address.
    let t = cold_start(&mut w, &lab, &mut n);
    // The IPv6 application address answers too (and the client learns its neighbour entry).
    options_v6(&lab, 1);
    let mac1 = Lab::mac(&lab.nodes[0]);
    let mac2 = Lab::mac(&lab.nodes[1]);
    assert!(
        lab.client_neigh(APP_IP).contains(&mac1),
        "{}",
        lab.client_neigh(APP_IP)
    );
    assert!(
        lab.client_neigh(APP_IP6).contains(&mac1),
        "{}",
        lab.client_neigh(APP_IP6)
    );
    // What operators and load balancers read.
    let (code, body) = n[0].http(&lab, "GET", "/healthz", &token);
    assert_eq!(code, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).expect("healthz JSON");
    assert_eq!(h["role"], "active");
    let (_, body) = n[1].http(&lab, "GET", "/healthz", &token);
    let h: serde_json::Value = serde_json::from_str(&body).expect("healthz JSON");
    assert_eq!(h["role"], "standby");
    assert_eq!(h["peer_role"], "active");
    let (_, metrics) = n[1].http(&lab, "GET", "/metrics", &token);
    assert!(
        metrics.contains("denwa_cluster_role{role=\"standby\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("denwa_cluster_role{role=\"active\"} 0"),
        "{metrics}"
    );
    let (code, body) = n[0].http(&lab, "GET", "/api/v1/cluster", &token);
    assert_eq!(code, 200, "{body}");
    let c: serde_json::Value = serde_json::from_str(&body).expect("cluster JSON");
    assert_eq!(c["clustered"], true);
    assert_eq!(c["status"]["peer_role"], "standby");
    assert_eq!(c["holds_ip"], true);
    // A switchover right after the role change is refused, with the reason.
    let (code, body) = n[1].http(&lab, "POST", "/api/v1/cluster/switchover", &token);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("not active"), "{body}");
    let text = n[1].cli_ok(&["cluster", "status"]);
    assert!(text.contains("role standby"), "{text}");
    rows.push((
        "cold start: preferred node ACT".into(),
        format!("{} ms", t.as_millis()),
        false,
    ));

    // (d) One heartbeat path cut (the dedicated link): reported, no takeover.
    sh(&lab.nodes[0], &["ip", "link", "set", "ha0", "down"]);
    w.hold(
        &lab,
        "node 1 holding alone with path 1 cut",
        Duration::from_secs(4),
        |h| h[0] && !h[1],
    );
    let s2 = n[1].status();
    assert_eq!(s2["status"]["role"], "standby");
    assert_eq!(s2["paths"][0]["healthy"], true, "{s2}");
    assert_eq!(s2["paths"][1]["healthy"], false, "{s2}");
    let s1 = n[0].status();
    assert_eq!(s1["status"]["role"], "active");
    assert!(
        s1["switchover_refused"]
            .as_str()
            .is_some_and(|r| r.contains("path 1")),
        "{s1}"
    );
    sh(&lab.nodes[0], &["ip", "link", "set", "ha0", "up"]);
    rows.push((
        "one heartbeat path cut (4 s)".into(),
        "no takeover".into(),
        false,
    ));

    // An address removed behind the ACT's back (as its guard does after a stall it survived)
    // is put back by the once-a-second check.
    sh(
        &lab.nodes[0],
        &["ip", "addr", "del", &format!("{APP_IP}/24"), "dev", "eth0"],
    );
    let gone = Instant::now();
    while !lab.has(0, APP_IP) {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "node 1 never put its address back"
        );
        assert!(!lab.holders()[1], "node 2 took an address");
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = gone.elapsed();
    println!(
        "address removed behind the ACT's back: back after {} ms",
        back.as_millis()
    );

    // (b) kill -9 of the ACT: the SBY takes over and serves the phone registered before.
    let before = w.split_brain;
    // The killed process's release guard removes the address from node 1 at once.
    let (gone, takeover) = kill9_active(&mut w, &lab, &mut n[0]);
    println!(
        "kill -9: node 1's address removed by its release guard after {} ms",
        gone.as_millis()
    );
    println!(
        "failover: node 2 holds {APP_IP} {} ms after kill -9 of node 1",
        takeover.as_millis()
    );
    assert!(
        takeover < Duration::from_millis(3500),
        "takeover took {takeover:?}\n{}",
        n[1].logs()
    );
    // The client sent nothing since: its neighbour entries moved to node 2 by the gratuitous
    // ARP and the unsolicited neighbour advertisement alone.
    let t0 = Instant::now();
    while !(lab.client_neigh(APP_IP).contains(&mac2) && lab.client_neigh(APP_IP6).contains(&mac2)) {
        assert!(
            t0.elapsed() < Duration::from_millis(800),
            "client neighbours not updated by the first announcement: {} / {}\n{}",
            lab.client_neigh(APP_IP),
            lab.client_neigh(APP_IP6),
            n[1].logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "failover: client's ARP and IPv6 neighbour entries point at node 2 {} ms after it took the address",
        t0.elapsed().as_millis()
    );
    options_v6(&lab, 2);
    call_1002(&lab);
    register(&lab, "1001", "secret-ha-aaab", 5074);
    assert_eq!(n[1].role(), "active");
    rows.push((
        "kill -9 of the ACT".into(),
        format!("{} ms", takeover.as_millis()),
        w.split_brain && !before,
    ));

    // (c) Node 1 comes back as SBY; a switchover through the API moves the address back.
    n[0].spawn(&lab);
    w.until_ready(&lab, &n, 1);
    assert_eq!(n[0].role(), "standby");
    let before = w.split_brain;
    let asked = Instant::now();
    let (code, body) = n[1].http(&lab, "POST", "/api/v1/cluster/switchover", &token);
    assert_eq!(code, 202, "{body}");
    w.until(
        &lab,
        "node 1 to hold the address again",
        Duration::from_secs(10),
        |h| h[0] && !h[1],
    );
    let switched = asked.elapsed();
    println!(
        "switchover: node 1 holds {APP_IP} {} ms after the API call",
        switched.as_millis()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(n[0].role() == "active" && n[1].role() == "standby") {
        assert!(
            Instant::now() < deadline,
            "roles after switchover: {} / {}",
            n[0].role(),
            n[1].role()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    register(&lab, "1002", "secret-ha-aaac", PHONE_PORT);
    call_1002(&lab);
    let events = n[1].status()["events"].to_string();
    assert!(events.contains("switchover"), "{events}");
    rows.push((
        "switchover via the API".into(),
        format!("{} ms", switched.as_millis()),
        w.split_brain && !before,
    ));

    // The CLI: refused on the standby with the reason; on the active node after the hold-down
    // it hands the address back to node 2.
    let out = n[1].cli(&["cluster", "switchover"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("switchover refused: this node is standby"),
        "{text}"
    );
    w.until_ready(&lab, &n, 0);
    let before = w.split_brain;
    let asked = Instant::now();
    let text = n[0].cli_ok(&["cluster", "switchover"]);
    assert!(text.contains("switchover started"), "{text}");
    w.until(
        &lab,
        "node 2 to hold the address again",
        Duration::from_secs(10),
        |h| h[1] && !h[0],
    );
    let switched = asked.elapsed();
    register(&lab, "1002", "secret-ha-aaac", PHONE_PORT);
    rows.push((
        "switchover via `denwa cluster switchover`".into(),
        format!("{} ms", switched.as_millis()),
        w.split_brain && !before,
    ));

    // A clean stop (SIGTERM) of the active node hands over first.
    w.until_ready(&lab, &n, 1);
    let before = w.split_brain;
    let stopped = Instant::now();
    let mut p2 = n[1].proc.take().expect("node 2 runs");
    p2.signal(15);
    w.until(
        &lab,
        "node 1 to hold the address after node 2's clean stop",
        Duration::from_secs(10),
        |h| h[0] && !h[1],
    );
    let handed = stopped.elapsed();
    println!(
        "clean stop: node 1 holds {APP_IP} {} ms after SIGTERM to node 2",
        handed.as_millis()
    );
    assert!(
        handed < Duration::from_millis(1000),
        "no handover on SIGTERM: {handed:?}\n{}",
        p2.logs()
    );
    assert!(
        p2.wait_timeout(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    register(&lab, "1002", "secret-ha-aaac", PHONE_PORT);
    rows.push((
        "clean stop (SIGTERM) of the ACT".into(),
        format!("{} ms", handed.as_millis()),
        w.split_brain && !before,
    ));

    // The ACT frozen (SIGSTOP): its release guard removes the address before the SBY may take
    // over; resumed (SIGCONT), it demotes instead of fighting.
    n[1].spawn(&lab);
    let deadline = Instant::now() + Duration::from_secs(20);
    while n[1].role() != "standby" {
        assert!(
            Instant::now() < deadline,
            "node 2 never standby: {}",
            n[1].status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Node 1 took over by the handover: it runs alone until node 2, just restarted, has
    // caught up; only then may node 2 take over automatically.
    until_not_alone(&n[0], "before the freeze");
    let before = w.split_brain;
    let frozen = Instant::now();
    n[0].proc.as_mut().expect("node 1 runs").signal(19);
    let (released, took) = w.failover(&lab, 0, frozen);
    println!(
        "freeze: node 1's guard released after {} ms; node 2 holds {APP_IP} {} ms after SIGSTOP",
        released.as_millis(),
        took.as_millis()
    );
    register(&lab, "1002", "secret-ha-aaac", PHONE_PORT);
    n[0].proc.as_mut().expect("node 1 runs").signal(18);
    w.hold(
        &lab,
        "resumed node 1 staying off the address",
        Duration::from_secs(3),
        |h| h[1] && !h[0],
    );
    let r = n[0].role();
    assert!(r == "fenced" || r == "standby", "resumed node 1 is {r}");
    assert_eq!(n[1].role(), "active");
    rows.push((
        "ACT frozen (SIGSTOP), then resumed".into(),
        format!("{} ms", took.as_millis()),
        w.split_brain && !before,
    ));

    let mut table = String::from("| scenario | takeover | split brain |\n|---|---|---|\n");
    for (s, t, sb) in &rows {
        table.push_str(&format!(
            "| {s} | {t} | {} |\n",
            if *sb { "YES" } else { "no" }
        ));
    }
    let results = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-results.md");
    std::fs::write(&results, &table).expect("write the results");
    println!("\n{table}(also in {})", results.display());
    assert!(
        !w.split_brain,
        "two nodes held the application address at once"
    );
    for node in &mut n {
        node.kill9();
    }
    drop(lab.br);
    pg.stop();
}
