//! URIs: SIP/SIPS (RFC 3261 §19.1), tel (RFC 3966) and any other scheme as an opaque absolute URI.
//!
//! Components are stored in their escaped (on-the-wire) form so that serialisation is lossless;
//! use [`crate::grammar::unescape`] or the `*_unescaped` helpers to compare.

use crate::error::InvalidValue;
use crate::grammar::{
    is_hnv, is_paramchar, is_password, is_token, is_unreserved, is_user, scan_host, scan_port,
    scan_run, unescape,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One `;name[=value]` parameter. Values are kept as received (escaped, or quoted in headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// Raw value, if any.
    pub value: Option<String>,
}

/// An ordered parameter list with case-insensitive lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// An empty list.
    pub fn new() -> Params {
        Params(Vec::new())
    }

    /// True when `name` is present (with or without value).
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The raw value of `name`: `None` when absent, `Some(None)` when present without value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of `name` if present with a value; quotes removed.
    pub fn value(&self, name: &str) -> Option<String> {
        match self.get(name) {
            Some(Some(v)) if v.starts_with('"') => Some(crate::grammar::unquote(v)),
            Some(Some(v)) => Some(v.to_string()),
            _ => None,
        }
    }

    /// Sets `name` (replacing an existing one in place, else appending). The value is written as
    /// given: escape URI parameter values and quote header parameter values that are not tokens.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_string);
        match self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value,
            None => self.0.push(Param {
                name: name.to_string(),
                value,
            }),
        }
    }

    /// Removes `name`; returns true when it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.0.len()
    }

    /// Iterates in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Param> {
        self.0.iter()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Params {
    /// Writes `;name=value` for each parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            f.write_str(";")?;
            f.write_str(&p.name)?;
            if let Some(v) = &p.value {
                f.write_str("=")?;
                f.write_str(v)?;
            }
        }
        Ok(())
    }
}

/// The host part of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as written.
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host (`[v6]`, dotted IPv4 or name). `text` must be the whole host.
    pub fn parse(text: &str) -> Result<Host, InvalidValue> {
        let end = scan_host(text.as_bytes(), 0)?;
        if end != text.len() {
            return Err(InvalidValue("bad host"));
        }
        Ok(Host::from_scanned(text))
    }

    pub(crate) fn from_scanned(text: &str) -> Host {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'))
            && let Ok(a) = inner.parse()
        {
            return Host::V6(a);
        }
        if text.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && let Ok(a) = text.parse()
        {
            return Host::V4(a);
        }
        Host::Domain(text.to_string())
    }

    /// The IP address if the host is a literal address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }

    /// Case-insensitive comparison for names, exact for addresses.
    pub fn eq_ignore_case(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// `sip` or `sips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
}

/// A SIP or SIPS URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sip` or `sips`.
    pub scheme: Scheme,
    /// User part, escaped form (may contain `;` per RFC 4475 §3.1.1.9).
    pub user: Option<String>,
    /// Password, escaped form.
    pub password: Option<String>,
    /// Host.
    pub host: Host,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters (`transport`, `lr`, `user`, ...), escaped form.
    pub params: Params,
    /// URI headers (`?name=value&...`), escaped form.
    pub headers: Vec<(String, String)>,
}

/// The parts of a scanned SIP URI, borrowed from the input.
pub(crate) struct SipUriParts<'a> {
    pub scheme: Scheme,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
}

/// Scans a complete SIP/SIPS URI, reporting params and headers through callbacks (no allocation).
pub(crate) fn scan_sip_uri<'a>(
    s: &'a str,
    mut on_param: impl FnMut(&'a str, Option<&'a str>),
    mut on_header: impl FnMut(&'a str, &'a str),
) -> Result<SipUriParts<'a>, InvalidValue> {
    let b = s.as_bytes();
    let (scheme, start) = if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"sip:") {
        (Scheme::Sip, 4)
    } else if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"sips:") {
        (Scheme::Sips, 5)
    } else {
        return Err(InvalidValue("not a sip/sips URI"));
    };
    let mut pos = start;
    let mut user = None;
    let mut password = None;
    // '@' cannot appear unescaped outside userinfo, so the first one ends the userinfo.
    if let Some(at) = memchr::memchr(b'@', &b[start..]).map(|i| i + start) {
        let ue = scan_run(b, start, is_user, true)?;
        if ue == start {
            return Err(InvalidValue("empty user part"));
        }
        user = Some(&s[start..ue]);
        let mut p = ue;
        if b.get(p) == Some(&b':') {
            let pe = scan_run(b, p + 1, is_password, true)?;
            password = Some(&s[p + 1..pe]);
            p = pe;
        }
        if p != at {
            return Err(InvalidValue("invalid character in user part"));
        }
        pos = at + 1;
    }
    let he = scan_host(b, pos)?;
    let host = &s[pos..he];
    let (mut p, port) = scan_port(b, he)?;
    while b.get(p) == Some(&b';') {
        let ns = p + 1;
        let ne = scan_run(b, ns, is_paramchar, true)?;
        if ne == ns {
            return Err(InvalidValue("empty URI parameter name"));
        }
        if b.get(ne) == Some(&b'=') {
            let ve = scan_run(b, ne + 1, is_paramchar, true)?;
            if ve == ne + 1 {
                return Err(InvalidValue("empty URI parameter value"));
            }
            on_param(&s[ns..ne], Some(&s[ne + 1..ve]));
            p = ve;
        } else {
            on_param(&s[ns..ne], None);
            p = ne;
        }
    }
    if b.get(p) == Some(&b'?') {
        loop {
            let ns = p + 1;
            let ne = scan_run(b, ns, is_hnv, true)?;
            if ne == ns || b.get(ne) != Some(&b'=') {
                return Err(InvalidValue("bad URI header"));
            }
            let ve = scan_run(b, ne + 1, is_hnv, true)?;
            on_header(&s[ns..ne], &s[ne + 1..ve]);
            p = ve;
            if b.get(p) != Some(&b'&') {
                break;
            }
        }
    }
    if p != b.len() {
        return Err(InvalidValue("invalid character in URI"));
    }
    Ok(SipUriParts {
        scheme,
        user,
        password,
        host,
        port,
    })
}

impl SipUri {
    /// A `sip:` URI for `host` (no user, port or parameters).
    pub fn new(host: Host) -> SipUri {
        SipUri {
            scheme: Scheme::Sip,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: Vec::new(),
        }
    }

    /// Parses a complete SIP/SIPS URI.
    pub fn parse(s: &str) -> Result<SipUri, InvalidValue> {
        let mut params = Vec::new();
        let mut headers = Vec::new();
        let parts = scan_sip_uri(
            s,
            |n, v| {
                params.push(Param {
                    name: n.to_string(),
                    value: v.map(str::to_string),
                })
            },
            |n, v| headers.push((n.to_string(), v.to_string())),
        )?;
        Ok(SipUri {
            scheme: parts.scheme,
            user: parts.user.map(str::to_string),
            password: parts.password.map(str::to_string),
            host: Host::from_scanned(parts.host),
            port: parts.port,
            params: Params(params),
            headers,
        })
    }

    /// The user part with escapes decoded (may contain NUL bytes, RFC 4475 §3.1.1.4).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// The address-of-record form `sip:user@host` (no password, port, parameters or headers;
    /// user unescaped where that is safe, host lower-cased): a stable key for a registrar.
    pub fn aor(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
        };
        let host = match &self.host {
            Host::Domain(d) => d.to_ascii_lowercase(),
            other => other.to_string(),
        };
        match &self.user {
            Some(u) => format!("{scheme}:{}@{host}", canonical_user(u)),
            None => format!("{scheme}:{host}"),
        }
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
    }

    /// True when the `lr` parameter is present (loose routing).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// `host[:port]` as text.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    /// URI equivalence per RFC 3261 §19.1.4 (escapes decoded, host case-insensitive, the
    /// user/ttl/method/maddr/transport parameters must agree, other parameters only when in both).
    pub fn equivalent(&self, other: &SipUri) -> bool {
        if self.scheme != other.scheme
            || self.user.as_deref().map(unescape) != other.user.as_deref().map(unescape)
            || self.password.as_deref().map(unescape) != other.password.as_deref().map(unescape)
            || !self.host.eq_ignore_case(&other.host)
            || self.port != other.port
        {
            return false;
        }
        let norm = |v: Option<&str>| v.map(|s| unescape(s).to_ascii_lowercase());
        for name in ["user", "ttl", "method", "maddr", "transport"] {
            if self.params.get(name).map(norm) != other.params.get(name).map(norm) {
                return false;
            }
        }
        for p in self.params.iter() {
            if let Some(ov) = other.params.get(&p.name)
                && norm(p.value.as_deref()) != norm(ov)
            {
                return false;
            }
        }
        let mut a: Vec<_> = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), unescape(v)))
            .collect();
        let mut b: Vec<_> = other
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), unescape(v)))
            .collect();
        a.sort();
        b.sort();
        a == b
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scheme {
            Scheme::Sip => "sip:",
            Scheme::Sips => "sips:",
        })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// Decodes escapes of unreserved characters only, so that equivalent users compare equal as text
/// while escapes that matter (`%40`, `%00`, ...) stay escaped.
fn canonical_user(u: &str) -> String {
    let b = u.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Both hex digits are ASCII, so i + 3 is a char boundary.
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let d = unescape(&u[i..i + 3]);
            if let [c] = d[..]
                && is_unreserved(c)
            {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII was substituted for ASCII escapes, so UTF-8 input stays UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A `tel:` URI (RFC 3966): the number as written plus parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The telephone-subscriber part, e.g. `+81-3-1234-5678` or `1234`.
    pub number: String,
    /// Parameters (`phone-context`, `ext`, ...).
    pub params: Params,
}

impl TelUri {
    fn parse(s: &str) -> Result<TelUri, InvalidValue> {
        let rest = s
            .get(4..)
            .filter(|_| {
                s.as_bytes()
                    .get(..4)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"tel:"))
            })
            .ok_or(InvalidValue("not a tel URI"))?;
        let b = rest.as_bytes();
        let is_num = |c: u8| {
            c.is_ascii_hexdigit() || matches!(c, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
        };
        let mut p = 0;
        while p < b.len() && is_num(b[p]) {
            p += 1;
        }
        if p == 0 {
            return Err(InvalidValue("empty telephone number"));
        }
        let number = rest[..p].to_string();
        let mut params = Vec::new();
        while b.get(p) == Some(&b';') {
            let ns = p + 1;
            let ne = scan_run(b, ns, is_paramchar, true)?;
            if ne == ns {
                return Err(InvalidValue("empty tel parameter name"));
            }
            if b.get(ne) == Some(&b'=') {
                let ve = scan_run(b, ne + 1, is_paramchar, true)?;
                params.push(Param {
                    name: rest[ns..ne].to_string(),
                    value: Some(rest[ne + 1..ve].to_string()),
                });
                p = ve;
            } else {
                params.push(Param {
                    name: rest[ns..ne].to_string(),
                    value: None,
                });
                p = ne;
            }
        }
        if p != b.len() {
            return Err(InvalidValue("invalid character in tel URI"));
        }
        Ok(TelUri {
            number,
            params: Params(params),
        })
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

/// A URI of any other scheme, kept opaque (RFC 4475 §3.3.2/§3.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteUri {
    /// The scheme as written.
    pub scheme: String,
    /// Everything after the first colon, as written.
    pub rest: String,
}

/// Checks `scheme ":" 1*uric` of RFC 2396 (as used by RFC 3261's absoluteURI); returns the colon.
pub(crate) fn scan_absolute(s: &str) -> Result<usize, InvalidValue> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return Err(InvalidValue("URI scheme must start with a letter"));
    }
    let mut p = 1;
    while p < b.len() && (b[p].is_ascii_alphanumeric() || matches!(b[p], b'+' | b'-' | b'.')) {
        p += 1;
    }
    if b.get(p) != Some(&b':') {
        return Err(InvalidValue("missing ':' after URI scheme"));
    }
    let is_uric = |c: u8| {
        is_unreserved(c)
            || matches!(
                c,
                b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
            )
    };
    let end = scan_run(b, p + 1, is_uric, true)?;
    if end == p + 1 {
        return Err(InvalidValue("empty URI after scheme"));
    }
    if end != b.len() {
        return Err(InvalidValue("invalid character in URI"));
    }
    Ok(p)
}

/// Any URI a SIP message can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` / `sips:`
    Sip(SipUri),
    /// `tel:`
    Tel(TelUri),
    /// Other schemes, opaque.
    Absolute(AbsoluteUri),
}

/// Which kind of URI a string holds, judged by its scheme.
fn kind(s: &str) -> u8 {
    let b = s.as_bytes();
    if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"sip:")
        || b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"sips:")
    {
        0
    } else if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"tel:") {
        1
    } else {
        2
    }
}

/// Validates a complete URI without allocating.
pub(crate) fn validate_uri(s: &str) -> Result<(), InvalidValue> {
    match kind(s) {
        0 => scan_sip_uri(s, |_, _| {}, |_, _| {}).map(|_| ()),
        1 => TelUri::parse(s).map(|_| ()),
        _ => scan_absolute(s).map(|_| ()),
    }
}

impl Uri {
    /// Parses a complete URI.
    pub fn parse(s: &str) -> Result<Uri, InvalidValue> {
        match kind(s) {
            0 => SipUri::parse(s).map(Uri::Sip),
            1 => TelUri::parse(s).map(Uri::Tel),
            _ => {
                let colon = scan_absolute(s)?;
                Ok(Uri::Absolute(AbsoluteUri {
                    scheme: s[..colon].to_string(),
                    rest: s[colon + 1..].to_string(),
                }))
            }
        }
    }

    /// The scheme, lower-case for sip/sips/tel, as written otherwise.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.scheme == Scheme::Sips => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Absolute(a) => &a.scheme,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Mutable SIP URI, if this is one.
    pub fn as_sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part: a SIP URI's user (escapes of unreserved characters decoded) or a tel URI's
    /// number.
    pub fn user(&self) -> Option<String> {
        match self {
            Uri::Sip(u) => u.user.as_deref().map(canonical_user),
            Uri::Tel(t) => Some(t.number.clone()),
            Uri::Absolute(_) => None,
        }
    }

    /// True for sip: and sips: URIs.
    pub fn is_sip(&self) -> bool {
        matches!(self, Uri::Sip(_))
    }
}

impl FromStr for Uri {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s)
    }
}

impl FromStr for SipUri {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SipUri::parse(s)
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Uri::Sip(u)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(u) => u.fmt(f),
            Uri::Absolute(a) => write!(f, "{}:{}", a.scheme, a.rest),
        }
    }
}

/// True when `s` is a `token` (method names, parameter names).
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_full() {
        let s = "sip:alice:secret@[2001:db8::1]:5070;transport=tcp;lr?Subject=hi&Route=%3Csip:x%3E";
        let u = SipUri::parse(s).unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers.len(), 2);
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn semicolon_in_user_and_escapes() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(u.params.is_empty());
        let n = SipUri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(n.user_unescaped().unwrap(), b"null-\0-null");
    }

    #[test]
    fn aor_and_user() {
        let u = SipUri::parse("sip:%61lice:pw@EXAMPLE.com:5070;transport=tcp?Subject=x").unwrap();
        assert_eq!(u.aor(), "sip:alice@example.com");
        let odd = SipUri::parse("sip:a%40b%00@h").unwrap();
        assert_eq!(odd.aor(), "sip:a%40b%00@h");
        assert_eq!(
            Uri::parse("tel:+1-555").unwrap().user().as_deref(),
            Some("+1-555")
        );
        assert_eq!(
            Uri::parse("sip:%31001@h").unwrap().user().as_deref(),
            Some("1001")
        );
        let mut hand = SipUri::new(Host::Domain("h".into()));
        hand.user = Some("%aé%4".into());
        assert_eq!(hand.aor(), "sip:%aé%4@h");
        assert_eq!(
            Uri::parse("sips:[2001:db8::1]")
                .unwrap()
                .as_sip()
                .unwrap()
                .aor(),
            "sips:[2001:db8::1]"
        );
    }

    #[test]
    fn equivalence() {
        let a = SipUri::parse("sip:%61lice@EXAMPLE.com;transport=TCP").unwrap();
        let b = SipUri::parse("sip:alice@example.com;transport=tcp").unwrap();
        assert!(a.equivalent(&b));
        let c = SipUri::parse("sip:alice@example.com").unwrap();
        assert!(!a.equivalent(&c));
        let d = SipUri::parse("sip:Alice@example.com;transport=tcp").unwrap();
        assert!(!a.equivalent(&d));
    }

    #[test]
    fn other_schemes() {
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.scheme(), "soap.beep");
        assert_eq!(u.to_string(), "soap.beep://192.0.2.103:3002");
        let t = Uri::parse("tel:+81-3-1234-5678;phone-context=example.com").unwrap();
        assert!(matches!(t, Uri::Tel(_)));
        assert_eq!(
            t.to_string(),
            "tel:+81-3-1234-5678;phone-context=example.com"
        );
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
        assert!(Uri::parse("sip:user@example.com;").is_err());
        assert!(Uri::parse("sip:@example.com").is_err());
    }
}
