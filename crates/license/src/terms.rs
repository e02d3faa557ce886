//! What a licence says: [`License`], its [`Limits`] and the sanity rules every licence must pass.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::node::is_valid_node_id;
use crate::topology::Topology;

/// The longest an [`LicenseKind::Evaluation`] licence may run (`valid_until - valid_from`).
pub const EVALUATION_MAX_DAYS: i64 = 90;
/// At most this many node identities in one licence.
pub const MAX_NODES: usize = 64;
/// At most this many feature names in one licence.
pub const MAX_FEATURES: usize = 64;

/// The signed contents of a licence file (the JSON object under `"license"` in the payload).
///
/// Which key signed it is not part of the terms: see [`crate::Verified::key_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// The vendor's licence id, e.g. `DL-20260501-3f9a0c1e` (1–64 printable ASCII, no spaces).
    pub id: String,
    /// Who the licence was sold to (1–200 characters, no control characters).
    pub customer: String,
    /// Standard (bound to nodes) or evaluation.
    pub kind: LicenseKind,
    /// The topology this licence runs.
    pub topology: Topology,
    /// Node identities the licence is bound to (see [`crate::node`]). A standard licence names at
    /// least one; an evaluation licence may name none, and then runs on any node.
    pub nodes: Vec<String>,
    /// Object and call limits.
    pub limits: Limits,
    /// Feature flags (1–64 characters of `a-z 0-9 . _ -` each); what they unlock is the binary's
    /// business.
    pub features: BTreeSet<String>,
    /// First instant the licence is valid (inclusive), RFC 3339 UTC.
    #[serde(with = "utc")]
    pub valid_from: DateTime<Utc>,
    /// First instant the licence is no longer valid (exclusive), RFC 3339 UTC.
    #[serde(with = "utc")]
    pub valid_until: DateTime<Utc>,
    /// When the vendor signed it, RFC 3339 UTC (informational).
    #[serde(with = "utc")]
    pub issued_at: DateTime<Utc>,
}

/// The kind of licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LicenseKind {
    /// A sold licence: must name at least one node.
    Standard,
    /// A trial: may name no node (then runs anywhere), valid for at most
    /// [`EVALUATION_MAX_DAYS`] days.
    Evaluation,
}

impl LicenseKind {
    /// `standard` or `evaluation`.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseKind::Standard => "standard",
            LicenseKind::Evaluation => "evaluation",
        }
    }
}

impl fmt::Display for LicenseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limits a licence grants. `None` means unlimited (written `"unlimited"` in the payload; a
/// missing field is malformed, never unlimited by accident). Zero extensions, calls or tenants is
/// refused as nonsense; zero trunks is allowed (an internal-only PBX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Extensions, across all tenants.
    #[serde(with = "limit")]
    pub extensions: Option<u32>,
    /// Simultaneous calls in progress.
    #[serde(with = "limit")]
    pub concurrent_calls: Option<u32>,
    /// Tenants (a standalone install has one).
    #[serde(with = "limit")]
    pub tenants: Option<u32>,
    /// SIP trunks, across all tenants.
    #[serde(with = "limit")]
    pub trunks: Option<u32>,
}

impl Limits {
    /// The limit for one kind of object (`None` = unlimited).
    pub fn get(&self, kind: LimitKind) -> Option<u32> {
        match kind {
            LimitKind::Extensions => self.extensions,
            LimitKind::ConcurrentCalls => self.concurrent_calls,
            LimitKind::Tenants => self.tenants,
            LimitKind::Trunks => self.trunks,
        }
    }
}

/// The things a licence limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Extensions.
    Extensions,
    /// Simultaneous calls.
    ConcurrentCalls,
    /// Tenants.
    Tenants,
    /// SIP trunks.
    Trunks,
}

impl LimitKind {
    /// Every kind.
    pub const ALL: [LimitKind; 4] = [
        LimitKind::Extensions,
        LimitKind::ConcurrentCalls,
        LimitKind::Tenants,
        LimitKind::Trunks,
    ];

    /// The plural noun used in messages ("extensions", "simultaneous calls", ...).
    pub fn plural(self) -> &'static str {
        match self {
            LimitKind::Extensions => "extensions",
            LimitKind::ConcurrentCalls => "simultaneous calls",
            LimitKind::Tenants => "tenants",
            LimitKind::Trunks => "trunks",
        }
    }

    /// The singular noun.
    pub fn singular(self) -> &'static str {
        match self {
            LimitKind::Extensions => "extension",
            LimitKind::ConcurrentCalls => "simultaneous call",
            LimitKind::Tenants => "tenant",
            LimitKind::Trunks => "trunk",
        }
    }

    /// "1 extension", "25 extensions".
    pub fn count(self, n: u64) -> String {
        if n == 1 {
            format!("1 {}", self.singular())
        } else {
            format!("{n} {}", self.plural())
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

impl License {
    /// The sanity rules every licence must pass, at issue and at verification. `Err` carries a
    /// sentence saying what is wrong.
    pub fn check_terms(&self) -> Result<(), String> {
        let printable = |s: &str| s.chars().all(|c| c.is_ascii_graphic());
        if self.id.is_empty() || self.id.len() > 64 || !printable(&self.id) {
            return Err(format!(
                "licence id {:?} must be 1-64 printable ASCII characters without spaces",
                self.id
            ));
        }
        let chars = self.customer.chars().count();
        if self.customer.trim().is_empty()
            || chars > 200
            || self.customer.chars().any(char::is_control)
        {
            return Err(format!(
                "customer {:?} must be 1-200 characters without control characters",
                self.customer
            ));
        }
        for kind in [
            LimitKind::Extensions,
            LimitKind::ConcurrentCalls,
            LimitKind::Tenants,
        ] {
            if self.limits.get(kind) == Some(0) {
                return Err(format!(
                    "it allows 0 {}; a licence allows at least 1",
                    kind.plural()
                ));
            }
        }
        if self.valid_until <= self.valid_from {
            return Err(format!(
                "valid-until {} is not after valid-from {}",
                rfc3339(self.valid_until),
                rfc3339(self.valid_from)
            ));
        }
        if self.nodes.len() > MAX_NODES {
            return Err(format!(
                "it names {} nodes; at most {MAX_NODES}",
                self.nodes.len()
            ));
        }
        if let Some(bad) = self.nodes.iter().find(|n| !is_valid_node_id(n)) {
            return Err(format!("node id {bad:?} is not a valid node identity"));
        }
        let distinct: BTreeSet<&String> = self.nodes.iter().collect();
        if distinct.len() != self.nodes.len() {
            return Err("it names the same node twice".to_owned());
        }
        match self.kind {
            LicenseKind::Standard if self.nodes.is_empty() => {
                return Err("a standard licence must name at least one node".to_owned());
            }
            LicenseKind::Evaluation
                if self.valid_until - self.valid_from > TimeDelta::days(EVALUATION_MAX_DAYS) =>
            {
                return Err(format!(
                    "an evaluation licence runs at most {EVALUATION_MAX_DAYS} days; this one runs from {} to {}",
                    rfc3339(self.valid_from),
                    rfc3339(self.valid_until)
                ));
            }
            _ => {}
        }
        if self.features.len() > MAX_FEATURES {
            return Err(format!(
                "it names {} features; at most {MAX_FEATURES}",
                self.features.len()
            ));
        }
        if let Some(bad) = self.features.iter().find(|f| !is_valid_feature(f)) {
            return Err(format!(
                "feature {bad:?} must be 1-64 characters of a-z, 0-9, '.', '_' and '-'"
            ));
        }
        Ok(())
    }

    /// True when the licence runs on `node_id` (it names it, or it is an evaluation naming none).
    pub fn allows_node(&self, node_id: &str) -> bool {
        (self.kind == LicenseKind::Evaluation && self.nodes.is_empty())
            || self.nodes.iter().any(|n| n == node_id)
    }
}

fn is_valid_feature(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 64
        && f.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// An instant as the licence writes it: RFC 3339, UTC, whole seconds (`2026-05-01T00:00:00Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 instant whose offset is UTC (`Z` or `+00:00`).
pub fn parse_utc(s: &str) -> Result<DateTime<Utc>, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 date-time: {e}"))?;
    if t.offset().local_minus_utc() != 0 {
        return Err(format!("{s:?} is not in UTC (write it with a trailing Z)"));
    }
    Ok(t.with_timezone(&Utc))
}

mod utc {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_utc(&s).map_err(D::Error::custom)
    }
}

/// `Option<u32>` as a number or the string `"unlimited"`; the field must be present.
mod limit {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u32(*n),
            None => s.serialize_str("unlimited"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        struct LimitVisitor;
        impl Visitor<'_> for LimitVisitor {
            type Value = Option<u32>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number up to 4294967295 or \"unlimited\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(Some)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "unlimited" {
                    Ok(None)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(LimitVisitor)
    }
}

/// Parses a limit as the CLI takes it: a whole number or `unlimited`.
pub fn parse_limit(s: &str) -> Result<Option<u32>, String> {
    if s == "unlimited" {
        return Ok(None);
    }
    s.parse::<u32>()
        .map(Some)
        .map_err(|_| format!("{s:?} is not a whole number or \"unlimited\""))
}
