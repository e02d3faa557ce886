//! The vendor tool end to end: keygen, issue, verify. Built only with the `issuer` feature (the
//! crate's own dev-dependency turns it on for its tests).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_denwa-license");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("runs denwa-license")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn keygen_issue_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("vendor.key");
    let public = dir.path().join("vendor.pub");
    let lic = dir.path().join("customer.lic");

    let out = run(&["keygen", "--out", p(&key), "--public-out", p(&public)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("denwa-license-public-key-v1: "));
    assert!(text(&out.stderr).contains("key id "));
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Never overwrites a key without --force.
    let again = run(&["keygen", "--out", p(&key)]);
    assert!(!again.status.success());

    let out = run(&[
        "issue",
        "--key",
        p(&key),
        "--customer",
        "Example KK",
        "--topology",
        "active-standby",
        "--node",
        "dn-0001",
        "--node",
        "dn-0002",
        "--extensions",
        "500",
        "--calls",
        "120",
        "--tenants",
        "1",
        "--trunks",
        "unlimited",
        "--valid-from",
        "2026-01-01",
        "--valid-until",
        "2099-01-01T00:00:00Z",
        "--feature",
        "reports",
        "--out",
        p(&lic),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert!(id.starts_with("DL-") && id.len() == 20, "{id}");
    let file = std::fs::read_to_string(&lic).expect("licence written");
    assert!(file.contains("-----BEGIN DENWA LICENSE-----"));

    // The vendor keyring does not know the new key; --public-key adds it.
    let out = run(&["verify", p(&lic), "--node", "dn-0001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused (unknown_key)"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "verify",
        p(&lic),
        "--node",
        "dn-0002",
        "--public-key",
        p(&public),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!(
            "valid: Licence {id} for Example KK: active-standby"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("500 extensions, 120 simultaneous calls, 1 tenant, unlimited trunks"),
        "{stdout}"
    );

    let out = run(&[
        "verify",
        p(&lic),
        "--node",
        "dn-9999",
        "--public-key",
        p(&public),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("this node is dn-9999"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "verify",
        p(&lic),
        "--public-key",
        p(&public),
        "--at",
        "2099-01-01",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused (expired)"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["verify", p(&lic), "--public-key", p(&public), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["license"]["limits"]["trunks"], "unlimited");
    assert_eq!(json["test_key"], false);
}

#[test]
fn test_key_licences_verify_only_with_test_key_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lic = dir.path().join("eval.lic");
    let test_key = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/test.key");
    let out = run(&[
        "issue",
        "--key",
        test_key,
        "--customer",
        "bench",
        "--topology",
        "standalone",
        "--evaluation",
        "--extensions",
        "10001",
        "--calls",
        "unlimited",
        "--tenants",
        "1",
        "--trunks",
        "4",
        "--valid-until",
        "2099-01-01",
        "--valid-from",
        "2098-12-01",
        "--id",
        "BENCH-1",
        "--out",
        p(&lic),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "BENCH-1");
    let out = run(&["verify", p(&lic), "--at", "2098-12-02"]);
    assert!(
        text(&out.stderr).contains("TEST key"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "verify",
        p(&lic),
        "--test-key",
        "--node",
        "dn-any",
        "--at",
        "2098-12-02",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(TEST key)"));
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lic = dir.path().join("x.lic");
    let test_key = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/test.key");
    let base = [
        "issue",
        "--key",
        test_key,
        "--customer",
        "C",
        "--topology",
        "standalone",
        "--node",
        "dn-1",
        "--calls",
        "5",
        "--tenants",
        "1",
        "--trunks",
        "1",
        "--valid-until",
        "2099-01-01",
        "--out",
        p(&lic),
    ];
    let zero = [&base[..], &["--extensions", "0"]].concat();
    let out = run(&zero);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("it allows 0 extensions"),
        "{}",
        text(&out.stderr)
    );
    assert!(!lic.exists(), "nothing written for refused terms");
    let bad_topology: Vec<&str> = base
        .iter()
        .map(|a| if *a == "standalone" { "mesh" } else { a })
        .chain(["--extensions", "5"])
        .collect();
    let out = run(&bad_topology);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown topology"),
        "{}",
        text(&out.stderr)
    );
    // A public key where the private key belongs.
    let public = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/test.pub");
    let wrong_key: Vec<&str> = base
        .iter()
        .map(|a| if *a == test_key { public } else { a })
        .chain(["--extensions", "5"])
        .collect();
    let out = run(&wrong_key);
    assert!(
        text(&out.stderr).contains("a private key is needed"),
        "{}",
        text(&out.stderr)
    );
    // Garbage and missing files.
    std::fs::write(&lic, b"garbage").expect("write");
    let out = run(&["verify", p(&lic)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused (malformed)"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["verify", p(&dir.path().join("missing.lic"))]);
    assert_eq!(out.status.code(), Some(1));
}
