//! `denwa license show|install` and the licence checks of the CLI: installs and every refusal
//! (which changes nothing), the free allowance's limits, read-only configuration after expiry,
//! and a running server picking up a new licence (topology switch) without a restart. Licences
//! are minted here with the TEST key, so the commands run with `DENWA_LICENSE_DEV=1`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use license::issuer::{SigningKey, issue};
use license::{Limits, Topology};
use testkit::licence::{DEV_ENV, mint, node_id, terms};

fn run(dir: &Path, dev: bool, args: &[&str]) -> Output {
    let mut c = Command::new(common::bin());
    c.args(args).arg("--data-dir").arg(dir);
    if dev {
        c.env(DEV_ENV.0, DEV_ENV.1);
    } else {
        c.env_remove(DEV_ENV.0);
    }
    c.output().expect("run denwa")
}

fn ok(dir: &Path, dev: bool, args: &[&str]) -> String {
    let o = run(dir, dev, args);
    assert!(
        o.status.success(),
        "denwa {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(dir: &Path, dev: bool, args: &[&str]) -> String {
    let o = run(dir, dev, args);
    assert!(
        !o.status.success(),
        "denwa {args:?} should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn limits(extensions: u32, trunks: u32) -> Limits {
    Limits {
        extensions: Some(extensions),
        concurrent_calls: Some(20),
        tenants: Some(1),
        trunks: Some(trunks),
    }
}

fn install(dir: &Path, dev: bool, text: &str) -> Output {
    let f = dir.join("incoming.lic");
    std::fs::write(&f, text).unwrap();
    run(dir, dev, &["license", "install", f.to_str().unwrap()])
}

fn show_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(dir, true, &["license", "show", "--json"])).expect("JSON")
}

#[test]
fn install_shows_the_licence_and_every_refusal_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // First use: the node id is made, the free allowance is in force and said so.
    let out = ok(dir, false, &["license", "show"]);
    let node = node_id(dir);
    assert!(out.contains(&node), "{out}");
    assert!(out.contains("free allowance"), "{out}");
    assert!(out.contains("extensions          0 / 25"), "{out}");
    assert_eq!(ok(dir, false, &["license", "show"]), out, "the id is kept");

    let mut t = terms(&node, limits(40, 3), 365);
    t.id = "DL-CLI-1".into();
    let good = mint(&t);
    let o = install(dir, true, &good);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stored = dir.join("license.txt");
    assert_eq!(std::fs::read(&stored).unwrap(), good.as_bytes());
    ok(dir, true, &["extension", "add", "1001"]);
    let v = show_json(dir);
    assert_eq!(v["node_id"], node.as_str());
    assert_eq!(v["license"]["license"]["id"], "DL-CLI-1");
    assert_eq!(v["limits"]["extensions"], 40);
    assert_eq!(v["usage"]["extensions"], 1);
    assert_eq!(v["free"], false);
    let text = ok(dir, true, &["license", "show"]);
    for want in [
        "DL-CLI-1",
        "extensions          1 / 40",
        "trunks              0 / 3",
        "days left",
        "TEST key",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }

    // Refusals: the reason, a non-zero exit, the installed file untouched.
    let mut tampered = good.clone().into_bytes();
    // A character in the middle of the first base64 line of the body: the payload changes.
    let begin = good.find("-----BEGIN").unwrap();
    let at = begin + good[begin..].find("\n\n").unwrap() + 7;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let mut expired = terms(&node, limits(40, 3), 0);
    expired.valid_from = Utc::now() - TimeDelta::days(30);
    expired.valid_until = Utc::now() - TimeDelta::days(1);
    let mut early = terms(&node, limits(40, 3), 60);
    early.valid_from = Utc::now() + TimeDelta::days(2);
    let cases = [
        (
            String::from_utf8(tampered).unwrap(),
            true,
            "signature does not match",
        ),
        (mint(&expired), true, "expired on"),
        (mint(&early), true, "not valid until"),
        (
            mint(&terms("dn-0000-1111-2222-3333-4444", limits(40, 3), 30)),
            true,
            "this node is",
        ),
        (
            issue(&terms(&node, limits(40, 3), 30), &SigningKey::generate()).unwrap(),
            true,
            "not a Denwa vendor key",
        ),
        // The TEST key outside dev mode.
        (mint(&terms(&node, limits(40, 3), 30)), false, "TEST key"),
    ];
    for (text, dev, why) in cases {
        let o = install(dir, dev, &text);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{why}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(err.contains("nothing changed"), "{err}");
        assert_eq!(std::fs::read(&stored).unwrap(), good.as_bytes(), "{why}");
        assert_eq!(show_json(dir)["license"]["license"]["id"], "DL-CLI-1");
    }
}

#[test]
fn free_allowance_limits_name_the_limit_and_a_licence_lifts_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for n in 0..25 {
        ok(dir, false, &["extension", "add", &format!("{}", 2000 + n)]);
    }
    let err = refused(dir, false, &["extension", "add", "2025"]);
    assert!(
        err.contains(
            "the free allowance (no licence installed) allows 25 extensions; 25 exist; install a licence for more"
        ),
        "{err}"
    );
    for t in ["carrier-a", "carrier-b"] {
        ok(dir, false, &["trunk", "add", t, "--host", "sip.example.jp"]);
    }
    let err = refused(
        dir,
        false,
        &["trunk", "add", "carrier-c", "--host", "sip.example.jp"],
    );
    assert!(err.contains("allows 2 trunks; 2 exist"), "{err}");
    // Lists and edits still work.
    let list = ok(dir, false, &["extension", "list"]);
    assert_eq!(list.lines().count(), 26, "{list}");

    let o = install(dir, true, &mint(&terms(&node_id(dir), limits(26, 3), 30)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(dir, true, &["extension", "add", "2025"]);
    ok(
        dir,
        true,
        &["trunk", "add", "carrier-c", "--host", "sip.example.jp"],
    );
    let err = refused(dir, true, &["extension", "add", "2026"]);
    assert!(
        err.contains("the licence allows 26 extensions; 26 exist"),
        "{err}"
    );
}

#[test]
fn after_expiry_changes_are_refused_and_reads_work() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ok(dir, false, &["extension", "add", "3001"]);
    let mut t = terms(&node_id(dir), limits(40, 3), 1);
    t.valid_until = Utc::now() + TimeDelta::seconds(2);
    let o = install(dir, true, &mint(&t));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(dir, true, &["extension", "add", "3002"]);
    std::thread::sleep(Duration::from_millis(2200));
    for args in [
        &["extension", "add", "3003"][..],
        &["extension", "remove", "3001"],
        &["setting", "set", "calls.no_answer_timeout_s", "30"],
        &["trunk", "add", "carrier", "--host", "sip.example.jp"],
    ] {
        let err = refused(dir, true, args);
        assert!(
            err.contains("configuration is read-only"),
            "{args:?}: {err}"
        );
    }
    let list = ok(dir, true, &["extension", "list"]);
    assert!(list.contains("3001") && list.contains("3002"), "{list}");
    let show = ok(dir, true, &["license", "show"]);
    assert!(show.contains("expired on"), "{show}");
    assert_eq!(show_json(dir)["config_writable"], false);
    // A new licence makes configuration writable again.
    let o = install(dir, true, &mint(&terms(&node_id(dir), limits(40, 3), 30)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(dir, true, &["extension", "add", "3003"]);
}

#[test]
fn a_running_server_switches_topology_when_a_new_licence_is_installed() {
    let (k, v) = DEV_ENV;
    let d = common::Denwa::start_with(common::Opts {
        env: vec![(k.into(), v.into())],
        ..Default::default()
    });
    assert!(d.logs().contains("licence in force"), "{}", d.logs());
    let node = node_id(d.data_dir());
    let write = |id: &str, topology: Topology| {
        let mut t = terms(&node, limits(40, 3), 30);
        t.id = id.into();
        t.topology = topology;
        let f = d.data_dir().join(format!("{id}.lic"));
        std::fs::write(&f, mint(&t)).unwrap();
        d.cli_ok(&["license", "install", f.to_str().unwrap()]);
    };
    write("DL-TOPO-1", Topology::Standalone);
    d.wait_until("the first licence loaded", Duration::from_secs(15), || {
        d.logs()
            .lines()
            .any(|l| l.contains("licence loaded") && l.contains("DL-TOPO-1"))
    });
    write("DL-TOPO-2", Topology::ActiveStandby);
    d.wait_until("the new topology loaded", Duration::from_secs(15), || {
        d.logs().lines().any(|l| {
            l.contains("licence loaded") && l.contains("DL-TOPO-2") && l.contains("active-standby")
        })
    });
}

#[test]
fn dev_mode_is_announced_at_start() {
    let (k, v) = DEV_ENV;
    let d = common::Denwa::start_with(common::Opts {
        env: vec![(k.into(), v.into())],
        ..Default::default()
    });
    assert!(d.logs().contains(license::DEV_MODE_WARNING), "{}", d.logs());
    let plain = common::Denwa::start();
    assert!(
        !plain.logs().contains("licence dev mode"),
        "{}",
        plain.logs()
    );
}
