//! `outside`: what connects a tenant to the public network — trunks, outbound routes, inbound
//! routes (DIDs), classes of service and outbound limits — with their validation and the dial
//! patterns routes match with. Pure data and checks: the CLI, the API, the panel and the
//! store validate with these functions, and the [`crate::dialplan`] decides with them.
//!
//! Dial patterns follow FreePBX: `X` any digit, `Z` 1–9, `N` 2–9, `[1-5]` / `[135]` one of,
//! `.` one or more of anything, `!` zero or more of anything (both only last), other
//! characters (`0-9 * # +`) literally; `PREFIX|REST` matches `PREFIX` then `REST` and strips
//! what `PREFIX` matched (`0|0ZXXXXXXXX`: outside-line `0`, then a national number).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dialplan::Destination;

/// A refused value, naming the field the user typed it in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The field (CLI flag without dashes, API field name, panel field).
    pub field: &'static str,
    /// What is wrong, in words an administrator acts on.
    pub reason: String,
}

impl FieldError {
    /// A refusal of `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> FieldError {
        FieldError {
            field,
            reason: reason.into(),
        }
    }
}

macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The word for it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok($name::$var),)+
                    other => Err(format!(
                        "unknown {} {other:?}: use {}",
                        $what,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// Class of service: how far an extension may call, in increasing order (each class
    /// includes the ones before it). International is never a default.
    #[derive(PartialOrd, Ord, Default)]
    CallClass, "class of service" {
        /// Extensions, applications and emergency numbers only.
        Internal = "internal",
        /// Local numbers.
        Local = "local",
        /// National fixed numbers (and free dial).
        National = "national",
        /// Mobile numbers (and everything national). The default for new extensions.
        #[default]
        Mobile = "mobile",
        /// International numbers (and everything else).
        International = "international",
    }
);

word_enum!(
    /// Transport towards a trunk.
    #[derive(Default)]
    TrunkTransport, "transport" {
        /// UDP.
        #[default]
        Udp = "udp",
        /// TCP.
        Tcp = "tcp",
    }
);

word_enum!(
    /// Where an inbound call's DID is read from.
    #[derive(Default)]
    DidFrom, "DID source" {
        /// The Request-URI's user part (most carriers).
        #[default]
        Ruri = "ruri",
        /// The To header's user part (carriers that send the registered contact as the
        /// Request-URI).
        To = "to",
    }
);

word_enum!(
    /// How Denwa presents caller ID to a trunk.
    #[derive(Default)]
    Identity, "identity header" {
        /// In the From header only.
        #[default]
        From = "from",
        /// From plus P-Asserted-Identity (trusted SBCs, RFC 3325).
        Pai = "pai",
        /// From plus P-Preferred-Identity (Japanese fibre-phone gateways, IMS carriers).
        Ppi = "ppi",
    }
);

word_enum!(
    /// How DTMF is sent to a trunk.
    #[derive(Default)]
    DtmfMode, "DTMF mode" {
        /// RFC 4733 telephone-event packets.
        #[default]
        Rfc4733 = "rfc4733",
        /// Tones in the audio.
        Inband = "inband",
        /// SIP INFO.
        Info = "info",
    }
);

/// Codecs a trunk may be offered (what Denwa's relay passes through).
pub const KNOWN_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "opus", "telephone-event"];

/// A trunk's settings (its name and password are kept beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrunkSpec {
    /// The provider's host name or address (a name without a port is resolved by DNS SRV,
    /// then A/AAAA).
    pub host: String,
    /// Port; `None` means SRV or 5060.
    pub port: Option<u16>,
    /// UDP or TCP.
    pub transport: TrunkTransport,
    /// Send every request here instead (`host[:port]`).
    pub outbound_proxy: Option<String>,
    /// Register to the provider (registration trunk); false for an IP trunk.
    pub register: bool,
    /// Account name: the registered AOR's user and the default From user.
    pub username: String,
    /// Digest user name when it differs from `username`.
    pub auth_username: String,
    /// From user on calls (empty: `username`, or the caller ID).
    pub from_user: String,
    /// From domain (empty: the host).
    pub from_domain: String,
    /// Where the DID of inbound calls is.
    pub did_from: DidFrom,
    /// How caller ID is presented.
    pub identity: Identity,
    /// Codecs offered, in order.
    pub codecs: Vec<String>,
    /// DTMF mode.
    pub dtmf: DtmfMode,
    /// Most simultaneous calls (0: no limit).
    pub max_calls: u32,
    /// Seconds between OPTIONS health checks while up (0: off).
    pub ping_interval_s: u32,
    /// Registration interval asked for.
    pub expires_s: u32,
    /// More source addresses (IP or CIDR) whose requests are this trunk's.
    pub inbound_addrs: Vec<String>,
    /// Disabled trunks neither register nor carry calls.
    pub enabled: bool,
}

impl Default for TrunkSpec {
    fn default() -> Self {
        TrunkSpec {
            host: String::new(),
            port: None,
            transport: TrunkTransport::Udp,
            outbound_proxy: None,
            register: false,
            username: String::new(),
            auth_username: String::new(),
            from_user: String::new(),
            from_domain: String::new(),
            did_from: DidFrom::Ruri,
            identity: Identity::From,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            dtmf: DtmfMode::Rfc4733,
            max_calls: 0,
            ping_interval_s: 30,
            expires_s: 600,
            inbound_addrs: Vec::new(),
            enabled: true,
        }
    }
}

/// Checks an object name (trunks, routes): 1–64 of letters, digits, `-`, `_`, `.`.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() || name.len() > 64 {
        return Err(FieldError::new(field, "must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(FieldError::new(
            field,
            format!("{name:?} may only hold letters, digits and - _ ."),
        ));
    }
    Ok(())
}

/// Checks a host name or IP address (no scheme, no port).
pub fn validate_host(field: &'static str, host: &str) -> Result<(), FieldError> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{host:?} is not a host name or IP address"),
        ))
    }
}

/// Splits `host[:port]` (IPv6 in brackets) and checks both parts.
pub fn parse_host_port(field: &'static str, s: &str) -> Result<(String, Option<u16>), FieldError> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err(FieldError::new(field, format!("{s:?}: missing ']'")));
        };
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(FieldError::new(field, format!("{s:?}: junk after ']'"))),
        }
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').unwrap_or((s, ""));
        (h, Some(p))
    } else {
        (s, None)
    };
    validate_host(field, host)?;
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(FieldError::new(
                    field,
                    format!("{p:?} is not a port number (1-65535)"),
                ));
            }
        },
        None => None,
    };
    Ok((host.to_string(), port))
}

/// Checks a caller-ID or prefix number: digits, `+` first, `*`, `#`; at most 32.
pub fn validate_number(field: &'static str, n: &str, allow_empty: bool) -> Result<(), FieldError> {
    if n.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err(FieldError::new(field, "must not be empty"))
        };
    }
    let body = n.strip_prefix('+').unwrap_or(n);
    if n.len() > 32
        || body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Err(FieldError::new(
            field,
            format!("{n:?} is not a number (digits, * and #, an optional leading +; at most 32)"),
        ));
    }
    Ok(())
}

/// Checks a SIP user name (account, auth user, from user).
fn validate_user(field: &'static str, u: &str) -> Result<(), FieldError> {
    if u.len() > 128 {
        return Err(FieldError::new(field, "at most 128 characters"));
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c))
    {
        return Err(FieldError::new(
            field,
            format!("{u:?} holds characters a SIP user name cannot"),
        ));
    }
    Ok(())
}

/// Checks an inbound address: an IP or a CIDR block.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, b)) => (ip, Some(b)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = ip.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((ip, bits))
}

/// True when `ip` lies in `block`.
pub fn cidr_contains(block: (std::net::IpAddr, u8), ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match (block.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = u32::from(block.1.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(a) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = u32::from(block.1.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(a) & mask)
        }
        _ => false,
    }
}

impl TrunkSpec {
    /// Checks every field; the first problem is reported with its field.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_host("host", &self.host)?;
        if self.port == Some(0) {
            return Err(FieldError::new("port", "must be 1-65535"));
        }
        if let Some(p) = &self.outbound_proxy {
            parse_host_port("outbound_proxy", p)?;
        }
        validate_user("username", &self.username)?;
        validate_user("auth_username", &self.auth_username)?;
        validate_user("from_user", &self.from_user)?;
        if !self.from_domain.is_empty() {
            validate_host("from_domain", &self.from_domain)?;
        }
        if self.register && self.username.is_empty() {
            return Err(FieldError::new(
                "username",
                "a registration trunk needs the account user name",
            ));
        }
        if self.codecs.is_empty() {
            return Err(FieldError::new("codecs", "name at least one codec"));
        }
        for c in &self.codecs {
            if !KNOWN_CODECS.iter().any(|k| k.eq_ignore_ascii_case(c)) {
                return Err(FieldError::new(
                    "codecs",
                    format!("unknown codec {c:?}: use {}", KNOWN_CODECS.join(", ")),
                ));
            }
        }
        if self.dtmf != DtmfMode::Rfc4733 {
            return Err(FieldError::new(
                "dtmf",
                format!(
                    "{} DTMF is not available: calls to a trunk are relayed phone to trunk without decoding, so digits pass as the phones send them; use rfc4733",
                    self.dtmf
                ),
            ));
        }
        if self.max_calls > 10_000 {
            return Err(FieldError::new("max_calls", "at most 10000 (0: no limit)"));
        }
        if self.ping_interval_s != 0 && !(5..=3600).contains(&self.ping_interval_s) {
            return Err(FieldError::new(
                "ping_interval_s",
                "0 (off) or 5 to 3600 seconds",
            ));
        }
        if !(60..=86_400).contains(&self.expires_s) {
            return Err(FieldError::new("expires_s", "60 to 86400 seconds"));
        }
        for a in &self.inbound_addrs {
            if parse_cidr(a).is_none() {
                return Err(FieldError::new(
                    "inbound_addrs",
                    format!("{a:?} is not an IP address or CIDR block"),
                ));
            }
        }
        Ok(())
    }

    /// The digest user name.
    pub fn auth_user(&self) -> &str {
        if self.auth_username.is_empty() {
            &self.username
        } else {
            &self.auth_username
        }
    }
}

/// An outbound route's settings (its name and order are kept beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteSpec {
    /// Dial patterns, tried in order.
    pub patterns: Vec<String>,
    /// Trunks tried in turn.
    pub trunks: Vec<String>,
    /// Leading digits removed after the pattern's `PREFIX|` part.
    pub strip: u32,
    /// Digits put in front of what is sent.
    pub prepend: String,
    /// The class of service a caller needs to use this route.
    pub class: CallClass,
    /// Caller ID sent on this route (empty: the extension's, else the tenant's main number).
    pub caller_id: String,
    /// Emergency calls go out through this route's trunks first.
    pub emergency: bool,
    /// Disabled routes match nothing.
    pub enabled: bool,
}

impl Default for RouteSpec {
    fn default() -> Self {
        RouteSpec {
            patterns: Vec::new(),
            trunks: Vec::new(),
            strip: 0,
            prepend: String::new(),
            class: CallClass::National,
            caller_id: String::new(),
            emergency: false,
            enabled: true,
        }
    }
}

impl RouteSpec {
    /// Checks every field; `trunk_exists` tells whether a trunk of that name exists in the
    /// route's tenant.
    pub fn validate(&self, trunk_exists: impl Fn(&str) -> bool) -> Result<(), FieldError> {
        if self.patterns.is_empty() {
            return Err(FieldError::new("pattern", "name at least one dial pattern"));
        }
        if self.patterns.len() > 100 {
            return Err(FieldError::new("pattern", "at most 100 patterns"));
        }
        for p in &self.patterns {
            p.parse::<DialPattern>()
                .map_err(|e| FieldError::new("pattern", e))?;
        }
        if self.trunks.is_empty() {
            return Err(FieldError::new("trunk", "name at least one trunk"));
        }
        for (i, t) in self.trunks.iter().enumerate() {
            if !trunk_exists(t) {
                return Err(FieldError::new("trunk", format!("no trunk named {t:?}")));
            }
            if self.trunks[..i].contains(t) {
                return Err(FieldError::new("trunk", format!("{t:?} is listed twice")));
            }
        }
        if self.strip > 32 {
            return Err(FieldError::new("strip", "at most 32 digits"));
        }
        validate_number("prepend", &self.prepend, true)?;
        validate_number("caller_id", &self.caller_id, true)?;
        if self.class == CallClass::Internal {
            return Err(FieldError::new(
                "cos",
                "an outbound route's class must be local, national, mobile or international",
            ));
        }
        Ok(())
    }
}

/// An inbound route (DID) pattern: one number, a dial pattern, or `any` (the catch-all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DidPattern {
    /// Exactly this number.
    Exact(String),
    /// A dial pattern (no `PREFIX|`).
    Pattern(DialPattern),
    /// Every DID no other route takes.
    Any,
}

impl FromStr for DidPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("any") {
            return Ok(DidPattern::Any);
        }
        if s.is_empty() {
            return Err(
                "empty DID pattern: give a number, a pattern such as 03XXXXXXXX, or any".into(),
            );
        }
        let literal = {
            let body = s.strip_prefix('+').unwrap_or(s);
            !body.is_empty()
                && body
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        };
        if literal {
            if s.len() > 32 {
                return Err("a DID has at most 32 characters".into());
            }
            return Ok(DidPattern::Exact(s.to_string()));
        }
        let p: DialPattern = s.parse()?;
        if !p.prefix.is_empty() {
            return Err(format!("{s:?}: a DID pattern has no PREFIX| part"));
        }
        Ok(DidPattern::Pattern(p))
    }
}

impl fmt::Display for DidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DidPattern::Exact(n) => f.write_str(n),
            DidPattern::Pattern(p) => f.write_str(&p.text),
            DidPattern::Any => f.write_str("any"),
        }
    }
}

impl DidPattern {
    /// True when the DID is this pattern's.
    pub fn matches(&self, did: &str) -> bool {
        match self {
            DidPattern::Exact(n) => n == did,
            DidPattern::Pattern(p) => p.matches(did).is_some(),
            DidPattern::Any => true,
        }
    }

    /// Order of preference: exact numbers, then patterns, then the catch-all.
    pub fn rank(&self) -> u8 {
        match self {
            DidPattern::Exact(_) => 0,
            DidPattern::Pattern(_) => 1,
            DidPattern::Any => 2,
        }
    }
}

/// An inbound route's settings (its pattern is kept beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DidSpec {
    /// Where the call goes (`ext:1001`, `group:sales`, `ivr:main`, `vm:1001`, `timecond:NAME`,
    /// `hangup`).
    pub destination: String,
    /// Only calls from this trunk (empty: any of the tenant's trunks).
    pub trunk: String,
    /// A note for administrators.
    pub description: String,
}

impl DidSpec {
    /// Checks the fields. `destination_exists` answers for a parsed destination whether its
    /// object exists (and why not); `trunk_exists` whether a trunk of that name exists.
    pub fn validate(
        &self,
        pattern: &str,
        destination_exists: impl Fn(&Destination) -> Result<(), String>,
        trunk_exists: impl Fn(&str) -> bool,
    ) -> Result<DidPattern, FieldError> {
        let p: DidPattern = pattern
            .parse()
            .map_err(|e: String| FieldError::new("pattern", e))?;
        let dest: Destination = self
            .destination
            .parse()
            .map_err(|e: crate::dialplan::DestinationError| FieldError::new("to", e.to_string()))?;
        match &dest {
            Destination::Route(r) => {
                return Err(FieldError::new(
                    "to",
                    format!(
                        "an inbound call cannot be sent back out through route {r:?}: outside \
                         callers would dial out through the PBX (and loop when the route uses the \
                         trunk the call came in on)"
                    ),
                ));
            }
            Destination::Park | Destination::Conf(_) => {
                return Err(FieldError::new(
                    "to",
                    format!(
                        "{dest} is not a destination for inbound calls: use ext:, group:, ivr:, vm:, timecond: or hangup"
                    ),
                ));
            }
            _ => {}
        }
        destination_exists(&dest).map_err(|e| FieldError::new("to", e))?;
        if !self.trunk.is_empty() && !trunk_exists(&self.trunk) {
            return Err(FieldError::new(
                "trunk",
                format!("no trunk named {:?}", self.trunk),
            ));
        }
        if self.description.len() > 200 {
            return Err(FieldError::new("description", "at most 200 characters"));
        }
        Ok(p)
    }
}

/// A tenant's outbound policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantOutbound {
    /// The company's main number: caller ID for extensions that have none.
    pub main_number: String,
    /// Emergency numbers: always routed, ahead of any restriction, with or without the
    /// outside-line prefix.
    pub emergency_numbers: Vec<String>,
    /// Outbound calls in progress at once, whole tenant.
    pub max_concurrent: u32,
    /// Outbound calls started per hour, whole tenant.
    pub max_per_hour: u32,
    /// International minutes per day, whole tenant.
    pub intl_minutes_per_day: u32,
}

impl Default for TenantOutbound {
    fn default() -> Self {
        TenantOutbound {
            main_number: String::new(),
            emergency_numbers: ["110", "118", "119", "911", "112"]
                .map(String::from)
                .to_vec(),
            max_concurrent: 30,
            max_per_hour: 300,
            intl_minutes_per_day: 120,
        }
    }
}

impl TenantOutbound {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_number("main_number", &self.main_number, true)?;
        if self.emergency_numbers.len() > 20 {
            return Err(FieldError::new("emergency_numbers", "at most 20 numbers"));
        }
        for n in &self.emergency_numbers {
            validate_number("emergency_numbers", n, false)?;
        }
        Ok(())
    }
}

/// An extension's outbound limits (per extension; the tenant's apply as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtLimits {
    /// Outbound calls in progress at once.
    pub max_concurrent: u32,
    /// Outbound calls started per hour.
    pub max_per_hour: u32,
    /// International minutes per day.
    pub intl_minutes_per_day: u32,
}

impl Default for ExtLimits {
    fn default() -> Self {
        ExtLimits {
            max_concurrent: 2,
            max_per_hour: 30,
            intl_minutes_per_day: 30,
        }
    }
}

/// One element of a dial pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    /// This character.
    Lit(u8),
    /// One character out of a set (bit per `0-9`, `*`, `#`, `+`).
    Set(u16),
    /// `.`: one or more of anything.
    OneOrMore,
    /// `!`: zero or more of anything.
    Any,
}

const DIGITS: u16 = 0x3ff;

fn bit(c: u8) -> Option<u16> {
    match c {
        b'0'..=b'9' => Some(1 << (c - b'0')),
        b'*' => Some(1 << 10),
        b'#' => Some(1 << 11),
        b'+' => Some(1 << 12),
        _ => None,
    }
}

/// A parsed FreePBX-style dial pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPattern {
    text: String,
    prefix: Vec<Elem>,
    body: Vec<Elem>,
}

impl fmt::Display for DialPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_elems(s: &str, offset: usize, allow_tail: bool) -> Result<Vec<Elem>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let pos = offset + i + 1;
        let c = b[i];
        let e = match c.to_ascii_uppercase() {
            b'X' => Elem::Set(DIGITS),
            b'Z' => Elem::Set(DIGITS & !1),
            b'N' => Elem::Set(DIGITS & !3),
            b'.' | b'!' => {
                if !allow_tail {
                    return Err(format!(
                        "position {pos}: '{}' cannot be in the PREFIX| part",
                        c as char
                    ));
                }
                if i + 1 != b.len() {
                    return Err(format!(
                        "position {pos}: '{}' must be the last character",
                        c as char
                    ));
                }
                if c == b'.' {
                    Elem::OneOrMore
                } else {
                    Elem::Any
                }
            }
            b'[' => {
                let Some(end) = b[i + 1..].iter().position(|&x| x == b']') else {
                    return Err(format!("position {pos}: '[' is not closed"));
                };
                let inner = &b[i + 1..i + 1 + end];
                if inner.is_empty() {
                    return Err(format!("position {pos}: empty []"));
                }
                let mut set = 0u16;
                let mut j = 0;
                while j < inner.len() {
                    let lo = inner[j];
                    if j + 2 < inner.len() && inner[j + 1] == b'-' {
                        let hi = inner[j + 2];
                        if !lo.is_ascii_digit() || !hi.is_ascii_digit() || lo > hi {
                            return Err(format!(
                                "position {pos}: bad range {}-{} in []",
                                lo as char, hi as char
                            ));
                        }
                        for d in lo..=hi {
                            set |= 1 << (d - b'0');
                        }
                        j += 3;
                    } else {
                        set |= bit(lo).ok_or_else(|| {
                            format!("position {pos}: '{}' cannot be in []", lo as char)
                        })?;
                        j += 1;
                    }
                }
                i += end + 1;
                Elem::Set(set)
            }
            _ => match bit(c) {
                Some(_) => Elem::Lit(c),
                None => {
                    return Err(format!(
                        "position {pos}: unexpected '{}' (use digits, * # +, X Z N, [..], . or !)",
                        c as char
                    ));
                }
            },
        };
        out.push(e);
        i += 1;
    }
    Ok(out)
}

impl FromStr for DialPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty dial pattern".into());
        }
        if text.len() > 64 {
            return Err(format!("{text:?}: at most 64 characters"));
        }
        let (prefix, body, off) = match text.split_once('|') {
            Some((p, b)) => {
                if b.contains('|') {
                    return Err(format!("{text:?}: only one '|' is allowed"));
                }
                (p, b, p.len() + 1)
            }
            None => ("", text, 0),
        };
        let prefix = parse_elems(prefix, 0, false).map_err(|e| format!("{text:?}: {e}"))?;
        let body = parse_elems(body, off, true).map_err(|e| format!("{text:?}: {e}"))?;
        if body.is_empty() {
            return Err(format!("{text:?}: nothing to match after '|'"));
        }
        Ok(DialPattern {
            text: text.to_string(),
            prefix,
            body,
        })
    }
}

fn elem_matches(e: Elem, c: u8) -> bool {
    match e {
        Elem::Lit(l) => l == c,
        Elem::Set(s) => bit(c).is_some_and(|b| s & b != 0),
        Elem::OneOrMore | Elem::Any => true,
    }
}

fn seq_matches(elems: &[Elem], s: &[u8]) -> bool {
    let mut i = 0;
    for (k, e) in elems.iter().enumerate() {
        match e {
            Elem::OneOrMore => return s.len() > i && k + 1 == elems.len(),
            Elem::Any => return k + 1 == elems.len(),
            e => {
                if i >= s.len() || !elem_matches(*e, s[i]) {
                    return false;
                }
                i += 1;
            }
        }
    }
    i == s.len()
}

impl DialPattern {
    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// When `digits` match the whole pattern: how many leading characters the `PREFIX|` part
    /// took (to strip).
    pub fn matches(&self, digits: &str) -> Option<usize> {
        let b = digits.as_bytes();
        let n = self.prefix.len();
        if b.len() < n {
            return None;
        }
        if !self.prefix.iter().zip(b).all(|(e, c)| elem_matches(*e, *c)) {
            return None;
        }
        seq_matches(&self.body, &b[n..]).then_some(n)
    }

    /// When `digits` start with what the `PREFIX|` part matches (a non-empty prefix): the rest.
    pub fn strip_prefix<'a>(&self, digits: &'a str) -> Option<&'a str> {
        let n = self.prefix.len();
        if n == 0 || digits.len() <= n {
            return None;
        }
        let b = digits.as_bytes();
        self.prefix
            .iter()
            .zip(b)
            .all(|(e, c)| elem_matches(*e, *c))
            .then(|| &digits[n..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DialPattern {
        s.parse().unwrap()
    }

    #[test]
    fn freepbx_patterns() {
        // Japan: outside-line 0, then a 0AB-J national number.
        let jp = p("0|0ZXXXXXXXX");
        assert_eq!(jp.matches("00312345678"), Some(1));
        assert_eq!(jp.matches("0312345678"), None, "prefix missing");
        assert_eq!(jp.matches("000312345678"), None, "Z refuses 0");
        // Mobile 070/080/090 + 8 digits.
        let mobile = p("0|0[789]0XXXXXXXX");
        assert_eq!(mobile.matches("009012345678"), Some(1));
        assert_eq!(mobile.matches("006012345678"), None);
        // International 010 + anything.
        let intl = p("0|010.");
        assert_eq!(intl.matches("0010442071234567"), Some(1));
        assert_eq!(intl.matches("0010"), None, ". needs at least one");
        // NANP: 9 + 1NXXNXXXXXX.
        let nanp = p("9|1NXXNXXXXXX");
        assert_eq!(nanp.matches("912125551234"), Some(1));
        assert_eq!(nanp.matches("911125551234"), None, "N refuses 1");
        assert_eq!(p("X").matches("5"), Some(0));
        assert_eq!(p("[1-5]").matches("6"), None);
        assert_eq!(p("[13-5]XX").matches("399"), Some(0));
        assert_eq!(p("*7!").matches("*7"), Some(0));
        assert_eq!(p("+.").matches("+81312345678"), Some(0));
        assert_eq!(p("x").matches("7"), Some(0), "case-insensitive");
        assert_eq!(jp.strip_prefix("0110"), Some("110"));
        assert_eq!(p("0XX").strip_prefix("012"), None, "no prefix part");
    }

    #[test]
    fn bad_patterns_say_where() {
        for (bad, needle) in [
            ("", "empty"),
            ("0|", "nothing to match"),
            ("0||1", "only one"),
            ("1.2", "last"),
            (".|1", "PREFIX"),
            ("[1-", "not closed"),
            ("[]", "empty []"),
            ("[9-1]", "bad range"),
            ("12Q", "position 3"),
        ] {
            let e = bad.parse::<DialPattern>().unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn did_patterns() {
        assert_eq!(
            "0312345678".parse::<DidPattern>().unwrap(),
            DidPattern::Exact("0312345678".into())
        );
        assert_eq!("ANY".parse::<DidPattern>().unwrap(), DidPattern::Any);
        let d: DidPattern = "03123456XX".parse().unwrap();
        assert!(d.matches("0312345601"));
        assert!(!d.matches("0312345"));
        assert!("0|03X".parse::<DidPattern>().is_err());
        assert!("".parse::<DidPattern>().is_err());
    }

    #[test]
    fn trunk_validation_names_the_field() {
        let ok = TrunkSpec {
            host: "sip.example.jp".into(),
            ..TrunkSpec::default()
        };
        assert!(ok.validate().is_ok());
        let bad = |f: fn(&mut TrunkSpec), field: &str| {
            let mut t = ok.clone();
            f(&mut t);
            assert_eq!(t.validate().unwrap_err().field, field);
        };
        bad(|t| t.host = "bad host".into(), "host");
        bad(|t| t.register = true, "username");
        bad(|t| t.codecs = vec!["GSM".into()], "codecs");
        bad(
            |t| t.outbound_proxy = Some("proxy:99999".into()),
            "outbound_proxy",
        );
        bad(
            |t| t.inbound_addrs = vec!["10.0.0.0/33".into()],
            "inbound_addrs",
        );
        bad(|t| t.expires_s = 5, "expires_s");
        bad(|t| t.ping_interval_s = 1, "ping_interval_s");
    }

    #[test]
    fn route_validation() {
        let r = RouteSpec {
            patterns: vec!["0|0ZXXXXXXXX".into()],
            trunks: vec!["carrier".into()],
            ..RouteSpec::default()
        };
        assert!(r.validate(|t| t == "carrier").is_ok());
        assert_eq!(r.validate(|_| false).unwrap_err().field, "trunk");
        let mut bad = r.clone();
        bad.patterns.push("0|0Q".into());
        assert_eq!(bad.validate(|_| true).unwrap_err().field, "pattern");
        let mut bad = r.clone();
        bad.prepend = "12a".into();
        assert_eq!(bad.validate(|_| true).unwrap_err().field, "prepend");
    }

    #[test]
    fn did_validation_refuses_call_through() {
        let d = DidSpec {
            destination: "route:out".into(),
            ..DidSpec::default()
        };
        let e = d.validate("0312345678", |_| Ok(()), |_| true).unwrap_err();
        assert_eq!(e.field, "to");
        let d = DidSpec {
            destination: "ext:1001".into(),
            trunk: "nope".into(),
            ..DidSpec::default()
        };
        assert_eq!(
            d.validate("any", |_| Ok(()), |_| false).unwrap_err().field,
            "trunk"
        );
        let d = DidSpec {
            destination: "ext:1009".into(),
            ..DidSpec::default()
        };
        let e = d
            .validate(
                "any",
                |_| Err("extension 1009 does not exist".into()),
                |_| true,
            )
            .unwrap_err();
        assert!(e.reason.contains("1009"));
    }

    #[test]
    fn cidr() {
        let b = parse_cidr("192.168.1.0/24").unwrap();
        assert!(cidr_contains(b, "192.168.1.77".parse().unwrap()));
        assert!(!cidr_contains(b, "192.168.2.1".parse().unwrap()));
        assert!(cidr_contains(
            parse_cidr("::1").unwrap(),
            "::1".parse().unwrap()
        ));
        assert!(parse_cidr("x").is_none());
    }

    #[test]
    fn classes_are_ordered() {
        assert!(CallClass::International > CallClass::Mobile);
        assert!(CallClass::Mobile > CallClass::National);
        assert_eq!(CallClass::default(), CallClass::Mobile);
        assert_eq!(
            "National".parse::<CallClass>().unwrap(),
            CallClass::National
        );
        assert!(
            "premium"
                .parse::<CallClass>()
                .unwrap_err()
                .contains("internal")
        );
    }
}
