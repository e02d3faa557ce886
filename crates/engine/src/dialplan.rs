//! `dialplan`: the one place a request becomes a destination. A pure function of (tenant,
//! caller, dialled digits, time, configuration snapshot): no state, no I/O, so `denwa route
//! test` shows exactly what a call would do. Destinations use one syntax everywhere (routes,
//! IVR options, forwards, timeouts): `ext:1001`, `group:sales`, `ivr:main`, `vm:1001`,
//! `conf:800`, `park`, `timecond:office`, `route:NAME`, `hangup`.
//!
//! A call from an extension is decided in this order: emergency numbers (always routed, with
//! or without the outside-line prefix, whatever the caller's class of service), the tenant's
//! extensions, then the outbound routes in their order (the first whose pattern matches and
//! whose class the caller's class of service includes). A call from a trunk is decided by the
//! tenant's inbound routes: the exact DID, then patterns, then the catch-all.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::{ExtEntry, RouteEntry, Snapshot};
use crate::outside::CallClass;

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
    /// The voicemail menus of the caller's own box (`voicemail:own`, feature code `*97`).
    VmOwn,
    /// The main voicemail number: asks for a box and its PIN (`voicemail`, `*98`).
    VmMain,
    /// A conference room.
    Conf(String),
    /// Call park.
    Park,
    /// A park slot (`park:701`): the call parked there ([`crate::park`]).
    ParkSlot(String),
    /// A page group ([`crate::page`]).
    Page(String),
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
            Destination::VmOwn => f.write_str("voicemail:own"),
            Destination::VmMain => f.write_str("voicemail"),
            Destination::Conf(n) => write!(f, "conf:{n}"),
            Destination::Park => f.write_str("park"),
            Destination::ParkSlot(n) => write!(f, "park:{n}"),
            Destination::Page(n) => write!(f, "page:{n}"),
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
        "unknown destination {0:?}: use ext:N, group:NAME, ivr:NAME, vm:N, voicemail, conf:N, park, page:NAME, timecond:NAME, route:NAME or hangup"
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
            "voicemail" => return Ok(Destination::VmMain),
            "voicemail:own" => return Ok(Destination::VmOwn),
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
            "page" => Destination::Page(name),
            "ivr" => Destination::Ivr(name),
            "vm" => Destination::Vm(name),
            "conf" => Destination::Conf(name),
            "timecond" => Destination::Timecond(name),
            "park" => Destination::ParkSlot(name),
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

/// Caller ID presented on an outside call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerId {
    /// Number (empty: the trunk's account user).
    pub number: String,
    /// Display name.
    pub name: String,
}

/// A call that leaves through a trunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsideCall {
    /// The outbound route that matched (`emergency` for emergency calls without one).
    pub route: String,
    /// The class of the number (what the caller's class of service had to include).
    pub class: CallClass,
    /// The number as sent to the trunk.
    #[serde(rename = "number_sent")]
    pub number: String,
    /// Trunks to try, in order.
    pub trunks: Vec<String>,
    /// Caller ID.
    pub caller_id: CallerId,
    /// Withhold caller ID from the called party (Privacy: id).
    pub privacy: bool,
    /// An emergency call (never refused by limits).
    pub emergency: bool,
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
    /// Send the call out through a trunk.
    Outside {
        /// Route, number, trunks, caller ID.
        #[serde(flatten)]
        call: OutsideCall,
        /// Why.
        reason: String,
    },
    /// A feature code ([`crate::features`]).
    Feature {
        /// The feature and the digits after its code.
        feature: crate::features::FeatureCall,
        /// Why.
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

/// Decides where a call from an extension goes.
pub fn route(r: &RouteRequest<'_>, snap: &Snapshot) -> Decision {
    let digits = r.digits.trim();
    if digits.is_empty() {
        return Decision::reject(484, "Address Incomplete");
    }
    if !snap.tenants.realms.contains_key(&r.tenant) && snap.tenants.default_id != r.tenant {
        return Decision::reject(403, "Unknown tenant");
    }
    let caller = snap.extensions.get(&(r.tenant, r.caller.to_string()));
    if let Some(d) = emergency(r.tenant, digits, caller, snap) {
        return d;
    }
    if let Some(d) = crate::features::decide(r.tenant, digits, snap) {
        return d;
    }
    match snap.extensions.get(&(r.tenant, digits.to_string())) {
        Some(e) if !e.enabled => return Decision::reject(480, "Temporarily Unavailable"),
        Some(e) => {
            return Decision::Route {
                destination: Destination::Ext(e.number.clone()),
                reason: format!("extension {}", e.number),
            };
        }
        None => {}
    }
    if let Some(d) = snap.apps.numbers.get(&(r.tenant, digits.to_string())) {
        let reason = format!("application number {digits}");
        return crate::timecond::route_to(r.tenant, d.clone(), reason, r.at, snap);
    }
    if let Some(d) = crate::park::route_slot(r.tenant, digits, snap) {
        return d;
    }
    if let Some(name) = snap.codes.numbers.get(&(r.tenant, digits.to_string())) {
        let (dest, reason) = (
            Destination::Timecond(name.clone()),
            format!("number {digits}"),
        );
        return crate::timecond::route_to(r.tenant, dest, reason, r.at, snap);
    }
    outbound(r.tenant, digits, caller, snap)
}

/// True when `digits` are an outside number for the tenant (an emergency number, or a number
/// an outbound route's pattern matches): no need to look them up as an extension.
pub fn is_outside_number(tenant: i64, digits: &str, snap: &Snapshot) -> bool {
    let policy = snap.outside.tenants.get(&tenant);
    let emergency = match policy {
        Some(p) => p.emergency_numbers.iter().any(|n| n == digits),
        None => crate::outside::TenantOutbound::default()
            .emergency_numbers
            .iter()
            .any(|n| n == digits),
    };
    emergency
        || routes(tenant, snap)
            .flat_map(|r| r.patterns.iter())
            .any(|p| p.matches(digits).is_some())
}

/// The outbound routes of a tenant that are on.
fn routes(tenant: i64, snap: &Snapshot) -> impl Iterator<Item = &RouteEntry> {
    snap.outside
        .routes
        .get(&tenant)
        .into_iter()
        .flatten()
        .filter(|r| r.spec.enabled)
}

fn caller_id(route: &RouteEntry, caller: Option<&ExtEntry>, main: &str) -> CallerId {
    let number = [
        route.spec.caller_id.as_str(),
        caller.map(|c| c.outbound_cid.as_str()).unwrap_or(""),
        main,
    ]
    .into_iter()
    .find(|n| !n.is_empty())
    .unwrap_or("")
    .to_string();
    CallerId {
        number,
        name: caller.map(|c| c.display_name.clone()).unwrap_or_default(),
    }
}

/// Emergency numbers: with or without an outside-line prefix (the `PREFIX|` of any route's
/// pattern), ahead of every restriction.
fn emergency(
    tenant: i64,
    digits: &str,
    caller: Option<&ExtEntry>,
    snap: &Snapshot,
) -> Option<Decision> {
    let policy = snap.outside.policy(tenant);
    let is_emergency = |d: &str| policy.emergency_numbers.iter().any(|n| n == d);
    let number = if is_emergency(digits) {
        digits.to_string()
    } else {
        routes(tenant, snap)
            .flat_map(|r| r.patterns.iter())
            .filter_map(|p| p.strip_prefix(digits))
            .find(|rest| is_emergency(rest))?
            .to_string()
    };
    // Emergency routes first, then every other route's trunks, each trunk once.
    let mut ordered: Vec<&RouteEntry> = routes(tenant, snap).filter(|r| r.spec.emergency).collect();
    ordered.extend(routes(tenant, snap).filter(|r| !r.spec.emergency));
    let mut trunks: Vec<String> = Vec::new();
    for r in &ordered {
        for t in &r.spec.trunks {
            if !trunks.contains(t) {
                trunks.push(t.clone());
            }
        }
    }
    let Some(first) = ordered.first() else {
        return Some(Decision::reject(503, "No route for emergency call"));
    };
    Some(Decision::Outside {
        reason: format!("emergency number {number}"),
        call: OutsideCall {
            route: first.name.clone(),
            class: CallClass::Internal,
            number,
            trunks,
            caller_id: caller_id(first, caller, &policy.main_number),
            // Emergency services always get the caller's number.
            privacy: false,
            emergency: true,
        },
    })
}

/// The first outbound route whose pattern matches and whose class the caller may use.
pub(crate) fn outbound(
    tenant: i64,
    digits: &str,
    caller: Option<&ExtEntry>,
    snap: &Snapshot,
) -> Decision {
    let cos = caller.map(|c| c.cos).unwrap_or(CallClass::Internal);
    let mut refused: Option<CallClass> = None;
    for route in routes(tenant, snap) {
        let Some((pattern, prefix_len)) = route
            .patterns
            .iter()
            .find_map(|p| p.matches(digits).map(|n| (p, n)))
        else {
            continue;
        };
        if route.spec.class > cos {
            refused = Some(refused.map_or(route.spec.class, |c| c.min(route.spec.class)));
            continue;
        }
        let rest = &digits[prefix_len..];
        let strip = usize::try_from(route.spec.strip).unwrap_or(usize::MAX);
        let rest = rest.get(strip..).unwrap_or("");
        if rest.is_empty() && route.spec.prepend.is_empty() {
            return Decision::reject(484, "Address Incomplete");
        }
        let policy = snap.outside.policy(tenant);
        return Decision::Outside {
            reason: format!("route {} pattern {}", route.name, pattern),
            call: OutsideCall {
                route: route.name.clone(),
                class: route.spec.class,
                number: format!("{}{rest}", route.spec.prepend),
                trunks: route.spec.trunks.clone(),
                caller_id: caller_id(route, caller, &policy.main_number),
                privacy: caller.is_some_and(|c| c.anonymous),
                emergency: false,
            },
        };
    }
    match refused {
        Some(class) => Decision::Reject {
            status: 403,
            reason: format!("{class} calls not allowed (class of service {cos})"),
        },
        None => Decision::reject(404, "Not Found"),
    }
}

/// A call arriving from a trunk.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    /// The trunk's tenant.
    pub tenant: i64,
    /// The trunk's name.
    pub trunk: &'a str,
    /// The dialled number (from the Request-URI or To, per trunk).
    pub did: &'a str,
    /// When.
    pub at: SystemTime,
}

/// Decides where a call from a trunk goes: the tenant's inbound routes, exact number first,
/// then patterns, then the catch-all. Outside callers never reach an extension by number
/// alone, nor an outbound route.
pub fn route_inbound(r: &InboundRequest<'_>, snap: &Snapshot) -> Decision {
    let did = r.did.trim();
    let found = snap
        .outside
        .dids
        .get(&r.tenant)
        .into_iter()
        .flatten()
        .find(|d| (d.spec.trunk.is_empty() || d.spec.trunk == r.trunk) && d.pattern.matches(did));
    match found {
        Some(d) if d.destination == Destination::Hangup => Decision::reject(603, "Declined"),
        Some(d) => {
            let reason = format!("DID {did} (inbound route {})", d.pattern);
            crate::timecond::route_to(r.tenant, d.destination.clone(), reason, r.at, snap)
        }
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
                    ..Default::default()
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

    use crate::config::{DidEntry, RouteEntry, TrunkEntry};
    use crate::outside::{DidSpec, RouteSpec, TenantOutbound, TrunkSpec};

    fn route_spec(patterns: &[&str], trunks: &[&str], class: CallClass) -> RouteSpec {
        RouteSpec {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
            class,
            ..RouteSpec::default()
        }
    }

    /// Tenant 1 dials Japanese style (outside line 0), tenant 2 NANP style (outside line 9).
    fn plans() -> Snapshot {
        let mut s = snap();
        for (id, tenant, name) in [(1, 1, "ntt"), (2, 1, "ipsp"), (3, 2, "us-carrier")] {
            s.outside.trunks.insert(
                id,
                TrunkEntry {
                    id,
                    tenant,
                    name: name.into(),
                    spec: TrunkSpec {
                        host: "192.0.2.1".into(),
                        ..TrunkSpec::default()
                    },
                    password: String::new(),
                    addrs: Vec::new(),
                    sources: Vec::new(),
                },
            );
        }
        let jp = [
            (
                "jp-free",
                route_spec(
                    &["0|0120XXXXXX", "0|0800XXXXXXX"],
                    &["ntt"],
                    CallClass::Local,
                ),
            ),
            (
                "jp-mobile",
                route_spec(&["0|0[789]0XXXXXXXX"], &["ntt", "ipsp"], CallClass::Mobile),
            ),
            (
                "jp-ip",
                route_spec(&["0|050XXXXXXXX"], &["ipsp", "ntt"], CallClass::National),
            ),
            (
                "jp-national",
                route_spec(&["0|0ZXXXXXXXX"], &["ntt", "ipsp"], CallClass::National),
            ),
            (
                "jp-intl",
                route_spec(&["0|010."], &["ipsp"], CallClass::International),
            ),
        ];
        s.outside.routes.insert(
            1,
            jp.into_iter()
                .map(|(n, r)| RouteEntry::new(n.into(), r))
                .collect(),
        );
        let mut us_local = route_spec(&["9|1NXXNXXXXXX"], &["us-carrier"], CallClass::National);
        us_local.prepend = "+".into();
        let us = [
            ("us-national", us_local),
            (
                "us-intl",
                route_spec(&["9|011."], &["us-carrier"], CallClass::International),
            ),
        ];
        s.outside.routes.insert(
            2,
            us.into_iter()
                .map(|(n, r)| RouteEntry::new(n.into(), r))
                .collect(),
        );
        s.outside.tenants.insert(
            1,
            TenantOutbound {
                main_number: "0312345678".into(),
                emergency_numbers: vec!["110".into(), "118".into(), "119".into()],
                ..TenantOutbound::default()
            },
        );
        s.outside.tenants.insert(
            2,
            TenantOutbound {
                main_number: "+12125550100".into(),
                emergency_numbers: vec!["911".into()],
                ..TenantOutbound::default()
            },
        );
        s
    }

    fn dial(s: &Snapshot, tenant: i64, caller: &str, digits: &str) -> Decision {
        route(
            &RouteRequest {
                tenant,
                caller,
                digits,
                at: at(),
            },
            s,
        )
    }

    fn outside(d: Decision) -> OutsideCall {
        match d {
            Decision::Outside { call, .. } => call,
            other => panic!("not an outside call: {other:?}"),
        }
    }

    #[test]
    fn japanese_plan() {
        let mut s = plans();
        let c = outside(dial(&s, 1, "1001", "00312345678"));
        assert_eq!(c.route, "jp-national");
        assert_eq!(c.number, "0312345678", "outside-line 0 stripped");
        assert_eq!(c.trunks, ["ntt", "ipsp"]);
        assert_eq!(c.caller_id.number, "0312345678", "tenant main number");
        let c = outside(dial(&s, 1, "1001", "00120123456"));
        assert_eq!(
            (c.route.as_str(), c.number.as_str()),
            ("jp-free", "0120123456")
        );
        let c = outside(dial(&s, 1, "1001", "009012345678"));
        assert_eq!(
            (c.route.as_str(), c.class),
            ("jp-mobile", CallClass::Mobile)
        );
        let c = outside(dial(&s, 1, "1001", "005012345678"));
        assert_eq!(c.route, "jp-ip");
        // International is off by default (class of service mobile).
        assert_eq!(
            dial(&s, 1, "1001", "0010442071234567"),
            Decision::Reject {
                status: 403,
                reason: "international calls not allowed (class of service mobile)".into()
            }
        );
        // Turned on for one extension, with its own caller ID and withheld.
        let key = (1, "1002".to_string());
        if let Some(e) = s.extensions.get_mut(&key) {
            e.cos = CallClass::International;
            e.outbound_cid = "0312345679".into();
            e.anonymous = true;
        }
        let c = outside(dial(&s, 1, "1002", "0010442071234567"));
        assert_eq!(c.number, "010442071234567");
        assert_eq!(c.caller_id.number, "0312345679");
        assert!(c.privacy);
        // A number no route knows; a short one.
        assert!(matches!(
            dial(&s, 1, "1001", "0999"),
            Decision::Reject { status: 404, .. }
        ));
        // Extensions still win over routes.
        assert!(matches!(
            dial(&s, 1, "1001", "1002"),
            Decision::Route { .. }
        ));
    }

    #[test]
    fn emergency_numbers_always_route() {
        let mut s = plans();
        if let Some(e) = s.extensions.get_mut(&(1, "1001".to_string())) {
            e.cos = CallClass::Internal;
        }
        // Internal-only caller: national refused, 110 routed, with or without the prefix.
        assert!(matches!(
            dial(&s, 1, "1001", "00312345678"),
            Decision::Reject { status: 403, .. }
        ));
        for digits in ["110", "0110", "119"] {
            let c = outside(dial(&s, 1, "1001", digits));
            assert!(c.emergency, "{digits}");
            assert_eq!(c.number, &digits[digits.len() - 3..]);
            assert_eq!(c.trunks, ["ntt", "ipsp"], "every trunk, each once");
            assert!(!c.privacy);
        }
        let c = outside(dial(&s, 2, "2001", "9911"));
        assert_eq!(
            (c.number.as_str(), c.trunks.as_slice()),
            ("911", &["us-carrier".to_string()][..])
        );
        // An emergency route goes first.
        let mut r = route_spec(&["0|0ZXXXXXXXX"], &["ipsp"], CallClass::National);
        r.emergency = true;
        if let Some(v) = s.outside.routes.get_mut(&1) {
            v.push(RouteEntry::new("jp-emergency".into(), r));
        }
        assert_eq!(outside(dial(&s, 1, "1001", "119")).trunks, ["ipsp", "ntt"]);
        // No routes at all: refused loudly rather than silently.
        s.outside.routes.clear();
        assert!(matches!(
            dial(&s, 1, "1001", "110"),
            Decision::Reject { status: 503, .. }
        ));
    }

    #[test]
    fn nanp_plan() {
        let s = plans();
        let c = outside(dial(&s, 2, "2001", "912125551234"));
        assert_eq!(c.number, "+12125551234", "9 stripped, + prepended");
        assert_eq!(c.caller_id.number, "+12125550100");
        assert!(matches!(
            dial(&s, 2, "2001", "9011442071234567"),
            Decision::Reject { status: 403, .. }
        ));
        // Tenant 1's routes are not tenant 2's.
        assert!(matches!(
            dial(&s, 2, "2001", "00312345678"),
            Decision::Reject { status: 404, .. }
        ));
    }

    #[test]
    fn inbound_dids() {
        let mut s = plans();
        let did = |pattern: &str, to: &str, trunk: &str| DidEntry {
            pattern: pattern.parse().unwrap(),
            spec: DidSpec {
                destination: to.into(),
                trunk: trunk.into(),
                description: String::new(),
            },
            destination: to.parse().unwrap(),
        };
        s.outside.dids.insert(
            1,
            vec![
                did("any", "ext:1001", ""),
                did("03123456XX", "ext:1003", ""),
                did("0312345602", "ext:1002", ""),
                did("0312345699", "hangup", "ntt"),
            ],
        );
        s.outside.sort_dids();
        let inbound = |trunk: &str, did: &str| {
            route_inbound(
                &InboundRequest {
                    tenant: 1,
                    trunk,
                    did,
                    at: at(),
                },
                &s,
            )
        };
        let dest = |d: Decision| match d {
            Decision::Route { destination, .. } => destination.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(
            dest(inbound("ntt", "0312345602")),
            "ext:1002",
            "exact first"
        );
        assert_eq!(
            dest(inbound("ntt", "0312345655")),
            "ext:1003",
            "then patterns"
        );
        assert_eq!(
            dest(inbound("ntt", "0399999999")),
            "ext:1001",
            "then the catch-all"
        );
        assert!(matches!(
            inbound("ntt", "0312345699"),
            Decision::Reject { status: 603, .. }
        ));
        // A route bound to another trunk does not take the call.
        assert_eq!(dest(inbound("ipsp", "0312345699")), "ext:1003");
        // No catch-all: unknown DIDs are refused, never routed by extension number.
        s.outside
            .dids
            .insert(1, vec![did("0312345602", "ext:1002", "")]);
        assert!(matches!(
            route_inbound(
                &InboundRequest {
                    tenant: 1,
                    trunk: "ntt",
                    did: "1001",
                    at: at()
                },
                &s
            ),
            Decision::Reject { status: 404, .. }
        ));
    }
}
