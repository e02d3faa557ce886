//! The command-line contract: precise errors for bad input, JSON output, lint
//! exit codes, backups that round-trip and refuse corrupt files without changing anything.

use std::path::Path;
use std::process::{Command, Output};

fn denwa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_denwa"))
        .args(args)
        .args(["--data-dir", &dir.display().to_string()])
        .output()
        .expect("run denwa")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = denwa(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(dir: &Path, args: &[&str]) -> String {
    let o = denwa(dir, args);
    assert!(
        !o.status.success(),
        "{args:?} should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn extension_lifecycle_and_validation() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let out = ok(d, &["extension", "add", "1001"]);
    let pw = out
        .rsplit("SIP password: ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(pw.len() >= 16, "generated password too weak: {out}");
    ok(
        d,
        &[
            "extension",
            "add",
            "1002",
            "--password",
            "long-enough-pw",
            "--name",
            "Reception",
        ],
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(d, &["extension", "list", "--json"])).unwrap();
    let numbers: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1001", "1002"]);
    assert_eq!(list[1]["display_name"], "Reception");
    // Passwords are never stored or printed back.
    assert!(!ok(d, &["extension", "list", "--json"]).contains("long-enough-pw"));

    let e = err(
        d,
        &["extension", "add", "1002", "--password", "another-password"],
    );
    assert!(e.contains("already exists"), "{e}");
    let e = err(
        d,
        &["extension", "add", "12a4", "--password", "another-password"],
    );
    assert!(e.to_lowercase().contains("invalid"), "{e}");
    let e = err(d, &["extension", "add", "1003", "--password", "short"]);
    assert!(
        e.contains("password too short: at least 8 characters"),
        "{e}"
    );
    // The same strength rules as the panel and the API (engine::policy).
    let e = err(d, &["extension", "add", "1003", "--password", "abcdefghij"]);
    assert!(e.contains("password too simple: mix at least 2"), "{e}");
    let e = err(
        d,
        &["extension", "add", "1003", "--password", "has space-1"],
    );
    assert!(e.contains("printable ASCII"), "{e}");
    let e = err(
        d,
        &["extension", "passwd", "1002", "--password", "ABCDEFGHIJ"],
    );
    assert!(e.contains("too simple"), "{e}");
    let e = err(
        d,
        &["extension", "add", "1003", "--password", "secret-1003-x"],
    );
    assert!(e.contains("must not contain the extension number"), "{e}");
    let help = ok(d, &["extension", "add", "--help"]);
    assert!(help.contains("8-128 printable ASCII characters"), "{help}");
    let e = err(
        d,
        &[
            "extension",
            "passwd",
            "9999",
            "--password",
            "another-password",
        ],
    );
    assert!(e.contains("not found"), "{e}");
    let out = ok(d, &["extension", "passwd", "1001"]);
    assert!(out.contains("new SIP password"), "{out}");
    ok(d, &["extension", "remove", "1001"]);
    let e = err(d, &["extension", "remove", "1001"]);
    assert!(e.contains("not found"), "{e}");
    assert!(!ok(d, &["extension", "list"]).contains("1001"));
}

#[test]
fn lists_are_empty_json_on_a_new_install() {
    let t = tempfile::tempdir().unwrap();
    assert_eq!(
        ok(t.path(), &["registration", "list", "--json"]).trim(),
        "[]"
    );
    assert_eq!(ok(t.path(), &["cdr", "list", "--json"]).trim(), "[]");
    assert!(ok(t.path(), &["db", "migrate"]).contains("up to date"));
}

#[test]
fn admin_needs_a_strong_password() {
    let t = tempfile::tempdir().unwrap();
    let e = err(t.path(), &["admin", "add", "root", "--password", "short"]);
    assert!(
        e.contains("administrator password too short: at least 10 characters"),
        "{e}"
    );
    let e = err(
        t.path(),
        &[
            "admin",
            "add",
            "no way",
            "--password",
            "long-enough-password",
        ],
    );
    assert!(e.contains("user name"), "{e}");
    let out = ok(t.path(), &["admin", "add", "root"]);
    assert!(out.contains("password: "), "{out}");
    let e = err(
        t.path(),
        &[
            "admin",
            "add",
            "viewer1",
            "--role",
            "superuser",
            "--password",
            "long-enough-password",
        ],
    );
    assert!(e.to_lowercase().contains("invalid"), "{e}");
}

#[test]
fn sip_lint_exit_codes_and_json() {
    let t = tempfile::tempdir().unwrap();
    let msgs = testkit::repo_root().join("tests/data/rfc4475/msgs");
    let good = msgs.join("wsinv.dat").display().to_string();
    let bad = msgs.join("badinv01.dat").display().to_string();
    let out = ok(t.path(), &["sip", "lint", &good]);
    assert!(out.contains("INVITE"), "{out}");
    let o = denwa(t.path(), &["sip", "lint", &good, &bad]);
    assert_eq!(o.status.code(), Some(1));
    let o = denwa(t.path(), &["sip", "lint", "--json", &bad]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v[0]["report"]["valid"], false);
    // Bare LF line ends in a file are accepted.
    let lf = t.path().join("lf.sip");
    std::fs::write(
        &lf,
        "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:b@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: x\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
    )
    .unwrap();
    ok(t.path(), &["sip", "lint", &lf.display().to_string()]);
}

#[test]
fn backup_roundtrip_and_corrupt_file_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    ok(
        &d,
        &["extension", "add", "2001", "--password", "backup-pass-1"],
    );
    let file = t.path().join("b.denwa");
    ok(&d, &["backup", "create", &file.display().to_string()]);
    ok(&d, &["backup", "verify", &file.display().to_string()]);
    ok(&d, &["extension", "remove", "2001"]);
    ok(
        &d,
        &["extension", "add", "2002", "--password", "backup-pass-2"],
    );
    ok(&d, &["backup", "restore", &file.display().to_string()]);
    let list = ok(&d, &["extension", "list"]);
    assert!(list.contains("2001") && !list.contains("2002"), "{list}");

    // A damaged copy is refused and the data stays as it is.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = t.path().join("bad.denwa");
    std::fs::write(&bad, &bytes).unwrap();
    ok(
        &d,
        &["extension", "add", "2003", "--password", "backup-pass-3"],
    );
    let e = err(&d, &["backup", "restore", &bad.display().to_string()]);
    assert!(!e.trim().is_empty());
    let list = ok(&d, &["extension", "list"]);
    assert!(
        list.contains("2001") && list.contains("2003"),
        "restore of a corrupt file changed data: {list}"
    );
    let truncated = t.path().join("short.denwa");
    std::fs::write(&truncated, &std::fs::read(&file).unwrap()[..100]).unwrap();
    err(&d, &["backup", "restore", &truncated.display().to_string()]);
}

#[test]
fn config_file_and_environment_are_honoured() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("denwa.toml");
    let data = t.path().join("from-file");
    std::fs::write(&cfg, format!("data_dir = \"{}\"\n", data.display())).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_denwa"))
        .args([
            "extension",
            "add",
            "3001",
            "--password",
            "config-pass-1",
            "--config",
            &cfg.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        data.join("denwa.db").exists(),
        "data_dir from the config file not used"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_denwa"))
        .args(["extension", "list"])
        .env("DENWA_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("3001"));
    std::fs::write(&cfg, "sip_lissen = []\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_denwa"))
        .args(["extension", "list", "--config", &cfg.display().to_string()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sip_lissen"));
}

#[test]
fn relay_threads_out_of_range_is_refused_before_serving() {
    let d = tempfile::tempdir().unwrap();
    let e = err(d.path(), &["serve", "--relay-threads", "0"]);
    assert!(e.contains("--relay-threads"), "{e}");
    let o = Command::new(env!("CARGO_BIN_EXE_denwa"))
        .args(["serve", "--data-dir", &d.path().display().to_string()])
        .env("DENWA_RELAY_THREADS", "many")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("DENWA_RELAY_THREADS \"many\""), "{e}");
}

#[test]
fn route_test_prints_the_dialplan_decision() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(d, &["extension", "add", "1001"]);
    ok(d, &["extension", "add", "1002"]);
    let out = ok(d, &["route", "test", "--from", "1001", "--number", "1002"]);
    assert_eq!(out.trim(), "1001 -> 1002: ext:1002 (extension 1002)");
    let v: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "route",
            "test",
            "--from",
            "1001",
            "--number",
            "1002",
            "--at",
            "2026-12-24T18:30:00+09:00",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(v["decision"], "route");
    assert_eq!(v["destination"], "ext:1002");
    assert_eq!(v["at"], "2026-12-24T09:30:00+00:00");
    let v: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "route", "test", "--from", "1001", "--number", "1099", "--json",
        ],
    ))
    .unwrap();
    assert_eq!(v["decision"], "reject");
    assert_eq!(v["status"], 404);
    let e = err(d, &["route", "test", "--from", "1099", "--number", "1002"]);
    assert!(e.contains("no extension 1099"), "{e}");
    let e = err(
        d,
        &[
            "route", "test", "--from", "1001", "--number", "1002", "--at", "noon",
        ],
    );
    assert!(e.contains("not an RFC 3339 time"), "{e}");
}
