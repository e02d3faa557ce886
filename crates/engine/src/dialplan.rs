//! `dialplan`: the one place a request becomes a destination. A pure function of (tenant,
//! caller, dialled digits, time, configuration snapshot): no state, no I/O, so `denwa route
//! test` shows exactly what a call would do. Destinations use one syntax everywhere (routes,
//! IVR options, forwards, timeouts): `ext:1001`, `group:sales`, `ivr:main`, `vm:1001`,
//! `conf:800`, `park`, `timecond:office`, `route:NAME`, `hangup`. This version routes to
//! extensions and rejects the rest; trunks, groups and applications add their kinds here.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Snapshot;

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "target", rename_all = "lowercase")]
pub enum Destination {
    /// An extension: ring its registered contacts.
    Ext(String),
    /// A ring group.
    Group(String),
    /// An IVR menu.
    Ivr(String),
    /// A voicemail box.
    Vm(String),
    /// A conference room.
    Conf(String),
    /// Call park.
    Park,
    /// A time condition.
    Timecond(String),
    /// An outbound route (outside numbers).
    Route(String),
    /// Hang up.
    Hangup,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Ext(n) => write!(f, "ext:{n}"),
            Destination::Group(n) => write!(f, "group:{n}"),
            Destination::Ivr(n) => write!(f, "ivr:{n}"),
            Destination::Vm(n) => write!(f, "vm:{n}"),
            Destination::Conf(n) => write!(f, "conf:{n}"),
            Destination::Park => f.write_str("park"),
            Destination::Timecond(n) => write!(f, "timecond:{n}"),
            Destination::Route(n) => write!(f, "route:{n}"),
            Destination::Hangup => f.write_str("hangup"),
        }
    }
}

/// Why a destination text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Unknown kind.
    #[error(
        "unknown destination {0:?}: use ext:N, group:NAME, ivr:NAME, vm:N, conf:N, park, timecond:NAME, route:NAME or hangup"
    )]
    Unknown(String),
    /// Kind without its name.
    #[error("destination {0:?} needs a name after the colon")]
    MissingName(String),
    /// A name with characters outside letters, digits, `-`, `_`, `.`, `+`, `*`, `#`.
    #[error("destination name {0:?} may only hold letters, digits and - _ . + * #")]
    BadName(String),
}

impl FromStr for Destination {
    type Err = DestinationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "park" => return Ok(Destination::Park),
            "hangup" => return Ok(Destination::Hangup),
            _ => {}
        }
        let Some((kind, name)) = s.split_once(':') else {
            return Err(DestinationError::Unknown(s.to_string()));
        };
        if name.is_empty() {
            return Err(DestinationError::MissingName(s.to_string()));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+*#".contains(c))
        {
            return Err(DestinationError::BadName(name.to_string()));
        }
        let name = name.to_string();
        Ok(match kind {
            "ext" => Destination::Ext(name),
            "group" => Destination::Group(name),
            "ivr" => Destination::Ivr(name),
            "vm" => Destination::Vm(name),
            "conf" => Destination::Conf(name),
            "timecond" => Destination::Timecond(name),
            "route" => Destination::Route(name),
            _ => return Err(DestinationError::Unknown(s.to_string())),
        })
    }
}

/// A call to route.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// Tenant the call belongs to (decided where the request entered).
    pub tenant: i64,
    /// The calling extension's number.
    pub caller: &'a str,
    /// The dialled digits (Request-URI user part, parameters removed).
    pub digits: &'a str,
    /// When (time conditions).
    pub at: SystemTime,
}

/// The dialplan's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    /// Send the call here.
    Route {
        /// Destination.
        destination: Destination,
        /// Why (which rule matched), for `route test` and logs.
        reason: String,
    },
    /// Refuse the call.
    Reject {
        /// SIP status for the caller.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
}

impl Decision {
    fn reject(status: u16, reason: &str) -> Decision {
        Decision::Reject {
            status,
            reason: reason.to_string(),
        }
    }
}

/// Decides where a call goes.
pub fn route(r: &RouteRequest<'_>, snap: &Snapshot) -> Decision {
    let digits = r.digits.trim();
    if digits.is_empty() {
        return Decision::reject(484, "Address Incomplete");
    }
    if !snap.tenants.realms.contains_key(&r.tenant) && snap.tenants.default_id != r.tenant {
        return Decision::reject(403, "Unknown tenant");
    }
    match snap.extensions.get(&(r.tenant, digits.to_string())) {
        Some(e) if !e.enabled => Decision::reject(480, "Temporarily Unavailable"),
        Some(e) => Decision::Route {
            destination: Destination::Ext(e.number.clone()),
            reason: format!("extension {}", e.number),
        },
        None => Decision::reject(404, "Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExtEntry, Tenants};

    fn snap() -> Snapshot {
        let mut s = Snapshot {
            tenants: Tenants {
                default_id: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        s.tenants.realms.insert(1, "denwa".into());
        s.tenants.realms.insert(2, "other".into());
        for (t, n, enabled) in [
            (1, "1001", true),
            (1, "1002", true),
            (1, "1003", false),
            (2, "2001", true),
        ] {
            s.extensions.insert(
                (t, n.to_string()),
                ExtEntry {
                    id: n.parse().unwrap(),
                    number: n.into(),
                    display_name: String::new(),
                    ha1_md5: None,
                    ha1_sha256: None,
                    enabled,
                    max_contacts: 1,
                },
            );
        }
        s
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    #[test]
    fn extensions_and_rejections() {
        let s = snap();
        let req = |tenant, caller, digits| RouteRequest {
            tenant,
            caller,
            digits,
            at: at(),
        };
        assert_eq!(
            route(&req(1, "1001", "1002"), &s),
            Decision::Route {
                destination: Destination::Ext("1002".into()),
                reason: "extension 1002".into()
            }
        );
        assert!(matches!(
            route(&req(1, "1001", "1003"), &s),
            Decision::Reject { status: 480, .. }
        ));
        assert!(matches!(
            route(&req(1, "1001", "9999"), &s),
            Decision::Reject { status: 404, .. }
        ));
        assert!(matches!(
            route(&req(1, "1001", ""), &s),
            Decision::Reject { status: 484, .. }
        ));
        // Another tenant's extension is not reachable by number.
        assert!(matches!(
            route(&req(1, "1001", "2001"), &s),
            Decision::Reject { status: 404, .. }
        ));
        // Calling one's own number rings the extension's other phones (the calling contact is
        // left out by the B2BUA).
        assert!(matches!(
            route(&req(2, "2001", "2001"), &s),
            Decision::Route { .. }
        ));
    }

    #[test]
    fn destination_syntax_round_trips() {
        for s in [
            "ext:1001",
            "group:sales",
            "ivr:main",
            "vm:1001",
            "conf:800",
            "park",
            "timecond:office",
            "route:outside",
            "hangup",
        ] {
            let d: Destination = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert!(matches!(
            "ext:".parse::<Destination>(),
            Err(DestinationError::MissingName(_))
        ));
        assert!(matches!(
            "fax:1".parse::<Destination>(),
            Err(DestinationError::Unknown(_))
        ));
        assert!(matches!(
            "ext:10 01".parse::<Destination>(),
            Err(DestinationError::BadName(_))
        ));
    }
}
