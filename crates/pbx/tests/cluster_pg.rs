//! `pbx::cluster_pg` against two real PostgreSQL servers on 127.0.0.1/127.0.0.2 (the pair's
//! replication path): initialise the first Active and clone the Standby, streaming and lag,
//! synchronous commit (a commit waits while the standby is down; turning it off releases it),
//! promotion, and re-attaching the old Active with pg_rewind — after a clean stop and after a
//! crash (`pg_ctl stop -m immediate`, what `kill -9` of the machine leaves behind).
//!
//! Needs PostgreSQL's server tools (`scripts/test-deps.sh`) and runs them as the `postgres` OS
//! user when run as root.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ha::DbHealth;
use pbx::cluster_pg::{PgNode, PgPairConfig, Reattach};

/// Stops both servers when the test ends, however it ends.
struct Stopper(Vec<PgNode>);

impl Drop for Stopper {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = n.stop();
        }
    }
}

fn node(
    root: &Path,
    me: &str,
    peer: &str,
    ip: &str,
    peer_ip: &str,
    port: u16,
    peer_port: u16,
) -> PgNode {
    let cfg: PgPairConfig = toml::from_str(&format!(
        r#"
        data_dir = "{root}/{me}/data"
        run_dir = "{root}/{me}/run"
        port = {port}
        listen = "{ip}"
        peer = "{peer_ip}"
        peer_port = {peer_port}
        replication_user = "denwa_repl"
        replication_password_file = "{root}/repl.pass"
        application_name = "{me}"
        peer_application_name = "{peer}"
        "#,
        root = root.display()
    ))
    .expect("section");
    PgNode::new(cfg).expect("valid section")
}

/// Polls `f` until it is true; fails the test after `limit` (a bound for a broken build, not a
/// timing expectation).
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn streaming_pair(primary: &PgNode, standby: &PgNode) {
    wait_for("the standby streams", Duration::from_secs(60), || {
        matches!(
            primary.health(),
            DbHealth::Primary {
                standby_streaming: true,
                ..
            }
        ) && matches!(
            standby.health(),
            DbHealth::Replica {
                streaming: true,
                ..
            }
        )
    });
}

fn count(n: &PgNode) -> i64 {
    n.psql("SELECT count(*) FROM t")
        .expect("count")
        .parse()
        .expect("a number")
}

fn insert(n: &PgNode, v: i64) {
    n.psql(&format!("INSERT INTO t VALUES ({v})"))
        .expect("insert");
}

#[test]
fn pair_replicates_promotes_and_reattaches_with_pg_rewind() {
    let tmp = tempfile::Builder::new()
        .prefix("denwa-pgpair-")
        .tempdir()
        .expect("tmp");
    let root = tmp.path();
    std::fs::write(root.join("repl.pass"), "s3cret:pass'word\n").expect("password file");
    // Let the postgres user reach its directories under the test's temporary directory.
    std::process::Command::new("chmod")
        .arg("755")
        .arg(root)
        .status()
        .expect("chmod");
    let pa = testkit::ports::free_port().expect("port");
    let pb = testkit::ports::free_port().expect("port");
    let a = node(root, "node_a", "node_b", "127.0.0.1", "127.0.0.2", pa, pb);
    let b = node(root, "node_b", "node_a", "127.0.0.2", "127.0.0.1", pb, pa);
    let _stop = Stopper(vec![a.clone(), b.clone()]);

    // 1. A is the first Active; B is cloned from it and streams.
    a.init_primary().expect("init the first active");
    assert!(
        matches!(
            a.health(),
            DbHealth::Primary {
                standby_streaming: false,
                ..
            }
        ),
        "{:?}",
        a.health()
    );
    assert!(a.init_primary().is_err(), "a second init is refused");
    b.init_standby().expect("init the standby");
    streaming_pair(&a, &b);
    assert_eq!(b.in_recovery(), Some(true));
    assert!(
        b.psql("CREATE TABLE x (v int)").is_err(),
        "the standby is read-only"
    );
    a.psql("CREATE TABLE t (v bigint)").expect("table");

    // 2. Synchronous commit: with it on, every acknowledged write is on the standby.
    a.set_sync(true).expect("sync on");
    assert!(a.sync_on().expect("show"));
    for v in 0..50 {
        insert(&a, v);
    }
    wait_for("replayed on the standby", Duration::from_secs(30), || {
        count(&b) == 50
    });
    wait_for("lag back to 0", Duration::from_secs(30), || {
        a.health()
            == DbHealth::Primary {
                standby_streaming: true,
                lag_bytes: 0,
            }
    });

    // Standby down: a commit waits for it (seen in pg_stat_activity), and turning synchronous
    // replication off releases it — the Active goes on alone.
    b.stop().expect("stop the standby");
    wait_for(
        "the primary sees the standby gone",
        Duration::from_secs(30),
        || {
            matches!(
                a.health(),
                DbHealth::Primary {
                    standby_streaming: false,
                    ..
                }
            )
        },
    );
    let cfg = a.config().clone();
    let mut blocked = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(cfg.bin_dir.join("psql"))
        .arg("-h")
        .arg(&cfg.run_dir)
        .arg("-p")
        .arg(cfg.port.to_string())
        .args([
            "-d",
            "postgres",
            "-X",
            "-q",
            "-c",
            "INSERT INTO t VALUES (1000)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    wait_for(
        "a commit waiting for the standby",
        Duration::from_secs(30),
        || {
            a.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
                .is_ok_and(|n| n == "1")
        },
    );
    assert!(blocked.try_wait().expect("wait").is_none());
    a.set_sync(false).expect("sync off");
    assert!(!a.sync_on().expect("show"));
    wait_for(
        "the waiting commit is released",
        Duration::from_secs(30),
        || blocked.try_wait().expect("wait").is_some(),
    );
    insert(&a, 1001);
    assert_eq!(count(&a), 52);

    // The standby comes back and catches up.
    b.start().expect("restart the standby");
    streaming_pair(&a, &b);
    wait_for("the standby catches up", Duration::from_secs(30), || {
        count(&b) == 52
    });

    // 3. Switchover: A stops cleanly, B is promoted, A is re-attached with pg_rewind.
    a.stop().expect("stop the old active");
    b.promote().expect("promote");
    assert_eq!(b.in_recovery(), Some(false));
    assert!(
        !b.sync_on().expect("show"),
        "a new primary starts without sync"
    );
    insert(&b, 2000);
    assert_eq!(
        a.reattach(Duration::from_secs(30)).expect("re-attach"),
        Reattach::Rewound
    );
    streaming_pair(&b, &a);
    b.set_sync(true).expect("sync on");
    insert(&b, 2001);
    wait_for(
        "the old active has the new writes",
        Duration::from_secs(30),
        || count(&a) == 54,
    );

    // 4. The Active (B) dies after a write A never got (A was down, B ran alone without sync):
    // its server stops without a shutdown checkpoint. A is promoted and writes; B's history
    // has diverged, and re-attaching it rewinds it (crash recovery first) onto A's.
    b.set_sync(false).expect("sync off");
    a.stop().expect("the standby goes down");
    insert(&b, 3000);
    let mut c = std::process::Command::new("runuser");
    c.args(["-u", "postgres", "--"])
        .arg(b.config().bin_dir.join("pg_ctl"))
        .arg("-D")
        .arg(&b.config().data_dir)
        .args(["-m", "immediate", "stop"]);
    assert!(c.status().expect("pg_ctl").success());
    a.promote().expect("promote after the crash");
    insert(&a, 4000);
    let how = b
        .reattach(Duration::from_secs(30))
        .expect("re-attach after a crash");
    assert_eq!(how, Reattach::Rewound);
    streaming_pair(&a, &b);
    wait_for(
        "the crashed node follows the new active",
        Duration::from_secs(30),
        || {
            b.psql("SELECT count(*) FILTER (WHERE v = 4000) || '|' || count(*) FILTER (WHERE v = 3000) FROM t")
            .is_ok_and(|s| s == "1|0")
        },
    );
    assert_eq!(count(&b), 55);
    assert_eq!(b.in_recovery(), Some(true));
}
