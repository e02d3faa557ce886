//! Test licences: minted with the committed TEST key (`crates/license/keys/test.key`), so only a
//! Denwa in licence dev mode (`DENWA_LICENSE_DEV=1`) accepts them. For tests that need more than
//! the free allowance (25 extensions, 10 simultaneous calls, 1 tenant, 2 trunks).

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use license::issuer::{issue, test_signing_key};
use license::{License, LicenseKind, Limits, Topology};

/// The environment a `denwa` process needs to accept these licences.
pub const DEV_ENV: (&str, &str) = (license::DEV_MODE_ENV, "1");

/// Terms for `node`: standalone, valid from a day ago for `days`, with `limits`.
pub fn terms(node: &str, limits: Limits, days: i64) -> License {
    let now = Utc::now();
    License {
        id: format!("TEST-{}", now.format("%Y%m%d%H%M%S%3f")),
        customer: "Denwa tests".into(),
        kind: LicenseKind::Standard,
        topology: Topology::Standalone,
        nodes: vec![node.to_string()],
        limits,
        features: Default::default(),
        valid_from: now - TimeDelta::days(1),
        valid_until: now + TimeDelta::days(days),
        issued_at: now,
    }
}

/// Signs `terms` with the TEST key; the licence file's text.
pub fn mint(terms: &License) -> String {
    issue(terms, &test_signing_key()).expect("test licence terms are sane")
}

/// Generous limits for load tests and the bench: unlimited extensions, calls and trunks.
pub const GENEROUS: Limits = Limits {
    extensions: None,
    concurrent_calls: None,
    tenants: Some(1),
    trunks: None,
};

/// A licence with [`GENEROUS`] limits for 30 days, bound to the node whose data dir is
/// `data_dir` (its `node-id` file must exist: any `denwa` command on that dir makes it).
pub fn generous_for(data_dir: &Path) -> String {
    mint(&terms(&node_id(data_dir), GENEROUS, 30))
}

/// The node id in `<data_dir>/node-id`.
pub fn node_id(data_dir: &Path) -> String {
    let p = data_dir.join(license::node::NODE_ID_FILE);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run a denwa command on the data dir first)",
            p.display()
        )
    });
    license::node::parse_node_id_file(&text).expect("a valid node id")
}

/// An instant `secs` seconds from now (for short-lived licences).
pub fn in_secs(secs: i64) -> DateTime<Utc> {
    Utc::now() + TimeDelta::seconds(secs)
}
