//! What is in force: the free allowance, expiry status, read-only configuration, limit messages.

use chrono::{DateTime, TimeDelta, Utc};
use license::issuer::{issue, test_signing_key};
use license::{
    Entitlement, FREE_CONCURRENT_CALLS, FREE_EXTENSIONS, FREE_LIMITS, FREE_TENANTS, FREE_TRUNKS,
    Keyring, License, LicenseKind, LimitKind, Limits, Status, Topology, verify,
};

const NODE: &str = "dn-cafe-0001";

fn at(s: &str) -> DateTime<Utc> {
    license::terms::parse_utc(s).expect("test instant")
}

fn terms(limits: Limits) -> License {
    License {
        id: "DL-20260101-00000001".into(),
        customer: "Example KK".into(),
        kind: LicenseKind::Standard,
        topology: Topology::Cloud,
        nodes: vec![NODE.into()],
        limits,
        features: ["reports".to_owned()].into(),
        valid_from: at("2026-01-01T00:00:00Z"),
        valid_until: at("2027-01-01T00:00:00Z"),
        issued_at: at("2026-01-01T00:00:00Z"),
    }
}

fn limits() -> Limits {
    Limits {
        extensions: Some(25),
        concurrent_calls: Some(30),
        tenants: Some(1),
        trunks: None,
    }
}

fn licensed(limits: Limits) -> Entitlement {
    let text = issue(&terms(limits), &test_signing_key()).expect("sane");
    let v = verify(
        text.as_bytes(),
        &Keyring::with_test_key(),
        NODE,
        at("2026-06-01T00:00:00Z"),
    )
    .expect("valid");
    Entitlement::licensed(v)
}

#[test]
fn free_allowance_figures() {
    assert_eq!(
        (
            FREE_EXTENSIONS,
            FREE_CONCURRENT_CALLS,
            FREE_TENANTS,
            FREE_TRUNKS
        ),
        (25, 10, 1, 2)
    );
    let free = Entitlement::free();
    assert!(free.is_free());
    assert!(free.license().is_none());
    assert_eq!(free.topology(), Topology::Standalone);
    assert_eq!(free.limits(), FREE_LIMITS);
    assert!(free.features().is_empty());
    assert!(!free.has_feature("reports"));
    let now = at("2040-01-01T00:00:00Z");
    assert_eq!(free.status(now), Status::Valid);
    assert!(free.config_writable(now));
    assert_eq!(
        free.summary(now),
        "No licence installed: running standalone on the free allowance (25 extensions, 10 simultaneous calls, 1 tenant, 2 trunks)"
    );
}

#[test]
fn limit_messages_name_the_limit() {
    let e = licensed(limits());
    assert!(e.check_limit(LimitKind::Extensions, 24, 1).is_ok());
    let msg = |k, c, a| e.check_limit(k, c, a).expect_err("over").to_string();
    assert_eq!(
        msg(LimitKind::Extensions, 25, 1),
        "the licence allows 25 extensions; 25 exist"
    );
    assert_eq!(
        msg(LimitKind::Extensions, 24, 2),
        "the licence allows 25 extensions; 24 exist and 2 more were asked for"
    );
    assert_eq!(
        msg(LimitKind::ConcurrentCalls, 30, 1),
        "the licence allows 30 simultaneous calls; 30 are in progress"
    );
    assert_eq!(
        msg(LimitKind::Tenants, 1, 1),
        "the licence allows 1 tenant; 1 exists"
    );
    // Unlimited trunks.
    assert!(e.check_limit(LimitKind::Trunks, u64::MAX, u64::MAX).is_ok());

    let free = Entitlement::free();
    let err = free
        .check_limit(LimitKind::Extensions, 25, 1)
        .expect_err("over");
    assert!(err.free && err.limit == 25 && err.current == 25 && err.adding == 1);
    assert_eq!(
        err.to_string(),
        "the free allowance (no licence installed) allows 25 extensions; 25 exist; install a licence for more"
    );
    assert_eq!(
        free.check_limit(LimitKind::Trunks, 2, 1)
            .expect_err("over")
            .to_string(),
        "the free allowance (no licence installed) allows 2 trunks; 2 exist; install a licence for more"
    );
    assert!(free.check_limit(LimitKind::Extensions, 0, 25).is_ok());
    assert!(free.check_limit(LimitKind::Extensions, 0, 26).is_err());
}

#[test]
fn licensed_entitlement_reports_its_terms() {
    let e = licensed(limits());
    assert!(!e.is_free());
    assert_eq!(e.topology(), Topology::Cloud);
    assert_eq!(e.limits(), limits());
    assert!(e.has_feature("reports"));
    assert!(!e.has_feature("recording"));
    assert_eq!(
        e.summary(at("2026-06-01T00:00:00Z")),
        "Licence DL-20260101-00000001 for Example KK: cloud (25 extensions, 30 simultaneous calls, 1 tenant, unlimited trunks), valid until 2027-01-01T00:00:00Z [signed by the TEST key: dev mode]"
    );
}

#[test]
fn expiry_is_warned_30_days_ahead_and_not_31() {
    let e = licensed(limits());
    let until = at("2027-01-01T00:00:00Z");
    let day = TimeDelta::days(1);
    assert_eq!(e.status(until - day * 31), Status::Valid);
    assert_eq!(
        e.status(until - day * 30 - TimeDelta::seconds(1)),
        Status::Valid
    );
    assert_eq!(
        e.status(until - day * 30),
        Status::ExpiresSoon { days_left: 30 }
    );
    assert_eq!(
        e.status(until - day * 29 - TimeDelta::hours(1)),
        Status::ExpiresSoon { days_left: 30 }
    );
    assert_eq!(
        e.status(until - day * 29),
        Status::ExpiresSoon { days_left: 29 }
    );
    assert_eq!(
        e.status(until - TimeDelta::seconds(1)),
        Status::ExpiresSoon { days_left: 1 }
    );
    assert_eq!(e.status(until - day * 12).to_string(), "expires in 12 days");
    assert_eq!(e.status(until), Status::Expired { since: until });
    assert!(e.config_writable(until - TimeDelta::seconds(1)));
    assert!(!e.config_writable(until));
}

#[test]
fn installed_expired_licence_stays_in_force_read_only() {
    let text = issue(&terms(limits()), &test_signing_key()).expect("sane");
    let later = at("2027-02-01T00:00:00Z");
    let keys = Keyring::with_test_key();
    // `license install` refuses it...
    assert_eq!(
        verify(text.as_bytes(), &keys, NODE, later).map_err(|e| e.code()),
        Err("expired")
    );
    // ...but once installed it stays in force: calls go on, configuration is read-only.
    let e = Entitlement::from_installed(text.as_bytes(), &keys, NODE, later).expect("installed");
    assert_eq!(e.topology(), Topology::Cloud);
    assert_eq!(
        e.status(later),
        Status::Expired {
            since: at("2027-01-01T00:00:00Z")
        }
    );
    assert!(!e.config_writable(later));
    assert_eq!(
        e.check_writable(later).expect_err("read-only").to_string(),
        "the licence DL-20260101-00000001 expired on 2027-01-01T00:00:00Z; configuration is read-only until a valid licence is installed (calls continue)"
    );
    assert!(
        e.summary(later)
            .contains("2027-01-01T00:00:00Z; expired on 2027-01-01T00:00:00Z: calls continue")
    );
    assert!(
        e.summary(at("2026-12-20T00:00:00Z"))
            .contains("; expires in 12 days")
    );
    assert!(Entitlement::free().check_writable(later).is_ok());
    let report = serde_json::to_value(e.report(later)).expect("json");
    assert_eq!(report["status"]["status"], "expired");
    assert_eq!(report["config_writable"], false);
    assert_eq!(report["limits"]["trunks"], "unlimited");
    assert_eq!(report["license"]["license"]["id"], "DL-20260101-00000001");
    let free = serde_json::to_value(Entitlement::free().report(later)).expect("json");
    assert_eq!(free["free"], true);
    assert_eq!(free["limits"]["extensions"], 25);
    assert!(free["license"].is_null());
}

#[test]
fn installed_licence_is_still_refused_when_tampered_early_or_for_another_node() {
    let text = issue(&terms(limits()), &test_signing_key()).expect("sane");
    let keys = Keyring::with_test_key();
    let now = at("2026-06-01T00:00:00Z");
    let code = |t: &[u8], node: &str, when| {
        Entitlement::from_installed(t, &keys, node, when)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(code(text.as_bytes(), NODE, now), Ok(()));
    assert_eq!(code(text.as_bytes(), "dn-other", now), Err("wrong_node"));
    assert_eq!(
        code(text.as_bytes(), NODE, at("2025-01-01T00:00:00Z")),
        Err("not_yet_valid")
    );
    assert_eq!(
        code(text.replace("Key-Id: 5", "Key-Id: 6").as_bytes(), NODE, now),
        Err("unknown_key")
    );
    assert_eq!(
        Entitlement::from_installed(text.as_bytes(), &Keyring::vendor(), NODE, now)
            .map_err(|e| e.code()),
        Err("unknown_key")
    );
}
