//! What is in force: the free allowance or an installed licence; expiry status; limit checks.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::keys::Keyring;
use crate::terms::{LimitKind, Limits, rfc3339};
use crate::topology::Topology;
use crate::verify::{LicenseError, Verified, verify_signature};

/// Free allowance: extensions without a licence.
pub const FREE_EXTENSIONS: u32 = 25;
/// Free allowance: simultaneous calls without a licence.
pub const FREE_CONCURRENT_CALLS: u32 = 10;
/// Free allowance: tenants without a licence (the default tenant).
pub const FREE_TENANTS: u32 = 1;
/// Free allowance: SIP trunks without a licence.
pub const FREE_TRUNKS: u32 = 2;
/// The free allowance's topology.
pub const FREE_TOPOLOGY: Topology = Topology::Standalone;
/// The free allowance as [`Limits`].
pub const FREE_LIMITS: Limits = Limits {
    extensions: Some(FREE_EXTENSIONS),
    concurrent_calls: Some(FREE_CONCURRENT_CALLS),
    tenants: Some(FREE_TENANTS),
    trunks: Some(FREE_TRUNKS),
};
/// Expiry is warned about this many days ahead ([`Status::ExpiresSoon`]).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Where a licence stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// In force, more than [`EXPIRY_WARNING_DAYS`] days left (or the free allowance, which does
    /// not expire).
    Valid,
    /// In force, at most [`EXPIRY_WARNING_DAYS`] days left: warn in the panel, CLI and logs.
    /// `days_left` is the time left rounded up to whole days (1..=30).
    ExpiresSoon {
        /// Whole days left, rounded up.
        days_left: u32,
    },
    /// Ended: calls continue, but configuration is read-only until a valid licence is installed.
    Expired {
        /// When it ended.
        since: DateTime<Utc>,
    },
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Valid => f.write_str("valid"),
            Status::ExpiresSoon { days_left: 1 } => f.write_str("expires within a day"),
            Status::ExpiresSoon { days_left } => write!(f, "expires in {days_left} days"),
            Status::Expired { since } => write!(
                f,
                "expired on {}: calls continue, configuration is read-only until a valid licence is installed",
                rfc3339(*since)
            ),
        }
    }
}

/// Creating more objects would pass a limit. The message names the limit, e.g.
/// "the licence allows 25 extensions; 25 exist".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", limit_message(self))]
pub struct LimitError {
    /// What is limited.
    pub kind: LimitKind,
    /// The limit in force.
    pub limit: u32,
    /// How many exist (or, for calls, are in progress).
    pub current: u64,
    /// How many more were asked for.
    pub adding: u64,
    /// True when the limit is the free allowance's (no licence installed).
    pub free: bool,
}

fn limit_message(e: &LimitError) -> String {
    let who = if e.free {
        "the free allowance (no licence installed)"
    } else {
        "the licence"
    };
    let allows = e.kind.count(u64::from(e.limit));
    let (one, many) = match e.kind {
        LimitKind::ConcurrentCalls => ("is in progress", "are in progress"),
        _ => ("exists", "exist"),
    };
    let exist = format!("{} {}", e.current, if e.current == 1 { one } else { many });
    let mut msg = if e.adding == 1 {
        format!("{who} allows {allows}; {exist}")
    } else {
        format!(
            "{who} allows {allows}; {exist} and {} more were asked for",
            e.adding
        )
    };
    if e.free {
        msg.push_str("; install a licence for more");
    }
    msg
}

/// Configuration is read-only because the licence expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error(
    "the licence {license_id} expired on {}; configuration is read-only until a valid licence is installed (calls continue)",
    rfc3339(*.since)
)]
pub struct ReadOnlyError {
    /// The expired licence.
    pub license_id: String,
    /// When it expired.
    pub since: DateTime<Utc>,
}

/// [`Entitlement::report`]: a serialisable snapshot of what is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True on the free allowance.
    pub free: bool,
    /// The topology in force.
    pub topology: Topology,
    /// The limits in force (`"unlimited"` for none).
    pub limits: Limits,
    /// The features in force.
    pub features: BTreeSet<String>,
    /// Expiry status.
    pub status: Status,
    /// False once the licence has expired.
    pub config_writable: bool,
    /// [`Entitlement::summary`].
    pub summary: String,
    /// The licence and its signing key, when one is installed.
    pub license: Option<Verified>,
}

/// What is in force on this node: the free allowance, or a verified licence (possibly expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    license: Option<Verified>,
}

impl Entitlement {
    /// No licence installed: [`FREE_TOPOLOGY`] with [`FREE_LIMITS`], no features, never expires.
    pub fn free() -> Entitlement {
        Entitlement { license: None }
    }

    /// A licence that passed [`crate::verify`].
    pub fn licensed(verified: Verified) -> Entitlement {
        Entitlement {
            license: Some(verified),
        }
    }

    /// The licence installed on this node, as read back at start-up or on each reload. Like
    /// [`crate::verify`] except that an expired licence is accepted (it stays in force with
    /// [`Status::Expired`]: calls continue, configuration is read-only). On `Err` the binary
    /// should run on [`Entitlement::free`] and show the error next to the free-allowance notice.
    pub fn from_installed(
        text: &[u8],
        keys: &Keyring,
        node_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Entitlement, LicenseError> {
        let verified = verify_signature(text, keys)?;
        verified.check_started(now)?;
        verified.check_node(node_id)?;
        Ok(Entitlement::licensed(verified))
    }

    /// The licence in force, if any.
    pub fn license(&self) -> Option<&Verified> {
        self.license.as_ref()
    }

    /// True when running on the free allowance; the panel must say so.
    pub fn is_free(&self) -> bool {
        self.license.is_none()
    }

    /// The topology in force.
    pub fn topology(&self) -> Topology {
        self.license
            .as_ref()
            .map_or(FREE_TOPOLOGY, |v| v.license.topology)
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.license
            .as_ref()
            .map_or(FREE_LIMITS, |v| v.license.limits)
    }

    /// The features in force (none on the free allowance).
    pub fn features(&self) -> BTreeSet<String> {
        self.license
            .as_ref()
            .map(|v| v.license.features.clone())
            .unwrap_or_default()
    }

    /// True when the licence grants `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.license
            .as_ref()
            .is_some_and(|v| v.license.features.contains(feature))
    }

    /// Where the licence stands at `now`. The free allowance is always [`Status::Valid`].
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        let Some(v) = &self.license else {
            return Status::Valid;
        };
        let until = v.license.valid_until;
        if now >= until {
            return Status::Expired { since: until };
        }
        let left = until - now;
        if left > TimeDelta::days(EXPIRY_WARNING_DAYS) {
            return Status::Valid;
        }
        // Round up to whole days: 29 days and an hour left is "30 days".
        let secs = left.num_seconds() + i64::from(left.subsec_nanos() > 0);
        let days_left = (secs + 86_399) / 86_400;
        Status::ExpiresSoon {
            days_left: u32::try_from(days_left).unwrap_or(u32::MAX),
        }
    }

    /// False once the licence has expired: the panel, API and CLI refuse configuration changes
    /// (calls continue).
    pub fn config_writable(&self, now: DateTime<Utc>) -> bool {
        self.check_writable(now).is_ok()
    }

    /// [`Entitlement::config_writable`] with the message to show.
    pub fn check_writable(&self, now: DateTime<Utc>) -> Result<(), ReadOnlyError> {
        match (&self.license, self.status(now)) {
            (Some(v), Status::Expired { since }) => Err(ReadOnlyError {
                license_id: v.license.id.clone(),
                since,
            }),
            _ => Ok(()),
        }
    }

    /// May `adding` more objects of `kind` be created when `current` exist? Call where objects
    /// are created (and, for calls, where a new call is set up); never for calls in progress.
    pub fn check_limit(
        &self,
        kind: LimitKind,
        current: u64,
        adding: u64,
    ) -> Result<(), LimitError> {
        let Some(limit) = self.limits().get(kind) else {
            return Ok(());
        };
        if current.saturating_add(adding) <= u64::from(limit) {
            Ok(())
        } else {
            Err(LimitError {
                kind,
                limit,
                current,
                adding,
                free: self.is_free(),
            })
        }
    }

    /// Everything `denwa license show --json` and `GET /api/v1/license` need (the binary adds
    /// the node id and whether dev mode is on).
    pub fn report(&self, now: DateTime<Utc>) -> Report {
        Report {
            free: self.is_free(),
            topology: self.topology(),
            limits: self.limits(),
            features: self.features(),
            status: self.status(now),
            config_writable: self.config_writable(now),
            summary: self.summary(now),
            license: self.license.clone(),
        }
    }

    /// One line for the panel, `denwa license show` and logs, e.g.
    /// "No licence installed: running standalone on the free allowance (25 extensions, 10
    /// simultaneous calls, 1 tenant, 2 trunks)".
    pub fn summary(&self, now: DateTime<Utc>) -> String {
        let limits = self.limits();
        let figures: Vec<String> = LimitKind::ALL
            .into_iter()
            .map(|k| match limits.get(k) {
                Some(n) => k.count(u64::from(n)),
                None => format!("unlimited {}", k.plural()),
            })
            .collect();
        let figures = figures.join(", ");
        match &self.license {
            None => format!(
                "No licence installed: running {FREE_TOPOLOGY} on the free allowance ({figures})"
            ),
            Some(v) => {
                let l = &v.license;
                let test = if v.test_key {
                    " [signed by the TEST key: dev mode]"
                } else {
                    ""
                };
                let status = match self.status(now) {
                    Status::Valid => String::new(),
                    other => format!("; {other}"),
                };
                format!(
                    "Licence {} for {}: {} ({figures}), valid until {}{status}{test}",
                    l.id,
                    l.customer,
                    l.topology,
                    rfc3339(l.valid_until),
                )
            }
        }
    }
}
