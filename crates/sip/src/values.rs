//! Typed header values: parse from the raw header text, mutate, write back with `Display`.
//!
//! Every type has `parse(&str)` (one value) and, for list headers, `parse_list(&str)` (all the
//! comma-separated values of one header field). The parser validates the headers Denwa uses with
//! the same scanners, without allocating (see [`validate`]).

use crate::error::InvalidValue;
use crate::grammar::{
    is_token, is_word, parse_u32_saturating, parse_u32_strict, quote, scan_generic_params,
    scan_host, scan_quoted, scan_token, skip_ws, unquote,
};
use crate::header::HeaderName;
use crate::method::Method;
use crate::uri::{Host, Param, Params, Uri, validate_uri};
use std::fmt;

/// Checks the values of the parameters RFC 3261 gives a grammar (Via, From/To, Contact).
fn check_param(name: &str, value: Option<&str>) -> Result<(), &'static str> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let token = |v: Option<&str>| v.is_some_and(|v| v.bytes().all(is_token));
    let digits = |v: &str, max: u32| parse_u32_strict(v).is_ok_and(|n| n <= max);
    if is("branch") && !token(value) {
        return Err("branch must be a token");
    }
    if is("tag") && !token(value) {
        return Err("tag must be a token");
    }
    if is("received") {
        let v = value.unwrap_or("");
        let v = v
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(v);
        if v.parse::<std::net::IpAddr>().is_err() {
            return Err("received must be an IP address");
        }
    }
    if is("ttl") && !value.is_some_and(|v| v.len() <= 3 && digits(v, 255)) {
        return Err("ttl must be 0-255");
    }
    if is("rport") && value.is_some_and(|v| !digits(v, 65535)) {
        return Err("rport must be a port number");
    }
    if is("maddr") && value.is_none_or(|v| scan_host(v.as_bytes(), 0) != Ok(v.len())) {
        return Err("maddr must be a host");
    }
    if is("expires") && value.is_none_or(|v| parse_u32_saturating(v).is_err()) {
        return Err("expires must be a number");
    }
    if is("q") && !value.is_some_and(is_qvalue) {
        return Err("q must be a qvalue (0 to 1, three decimals at most)");
    }
    Ok(())
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn is_qvalue(v: &str) -> bool {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    frac.len() <= 3
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || (int == "1" && frac.bytes().all(|b| b == b'0')))
}

/// [`scan_generic_params`] plus [`check_param`] on every parameter.
fn scan_checked_params<'a>(
    s: &'a str,
    pos: usize,
    mut on_param: impl FnMut(&'a str, Option<&'a str>),
) -> Result<usize, InvalidValue> {
    let mut bad = None;
    let end = scan_generic_params(s, pos, |n, v| {
        if bad.is_none() {
            bad = check_param(n, v).err();
        }
        on_param(n, v)
    })?;
    match bad {
        Some(e) => Err(InvalidValue(e)),
        None => Ok(end),
    }
}

/// Runs `item` over a comma-separated list (at least one element, no empty elements).
fn scan_list<'a>(
    s: &'a str,
    mut item: impl FnMut(&'a str, usize) -> Result<usize, InvalidValue>,
) -> Result<(), InvalidValue> {
    let b = s.as_bytes();
    let mut pos = skip_ws(b, 0);
    loop {
        if pos >= b.len() || b[pos] == b',' {
            return Err(InvalidValue("empty list element"));
        }
        pos = skip_ws(b, item(s, pos)?);
        if pos >= b.len() {
            return Ok(());
        }
        if b[pos] != b',' {
            return Err(InvalidValue("expected ',' between values"));
        }
        pos = skip_ws(b, pos + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Via

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version, normally `SIP/2.0`.
    pub protocol: String,
    /// Transport as written (`UDP`, `TCP`, `TLS`, `WS`, ... or an unknown token).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, `maddr`, `ttl`, extensions).
    pub params: Params,
}

struct ViaParts<'a> {
    name: &'a str,
    version: &'a str,
    transport: &'a str,
    host: &'a str,
    port: Option<u16>,
    end: usize,
}

fn scan_via<'a>(
    s: &'a str,
    pos: usize,
    on_param: impl FnMut(&'a str, Option<&'a str>),
) -> Result<ViaParts<'a>, InvalidValue> {
    let b = s.as_bytes();
    let slash = |p: usize| -> Result<usize, InvalidValue> {
        let p = skip_ws(b, p);
        if b.get(p) != Some(&b'/') {
            return Err(InvalidValue("expected '/' in sent-protocol"));
        }
        Ok(skip_ws(b, p + 1))
    };
    let ne = scan_token(b, pos);
    if ne == pos {
        return Err(InvalidValue("missing protocol name"));
    }
    let vs = slash(ne)?;
    let ve = scan_token(b, vs);
    if ve == vs {
        return Err(InvalidValue("missing protocol version"));
    }
    let ts = slash(ve)?;
    let te = scan_token(b, ts);
    if te == ts {
        return Err(InvalidValue("missing transport"));
    }
    let hs = skip_ws(b, te);
    if hs == te {
        return Err(InvalidValue("missing whitespace before sent-by"));
    }
    let he = scan_host(b, hs)?;
    let mut p = skip_ws(b, he);
    let mut port = None;
    if b.get(p) == Some(&b':') {
        let ps = skip_ws(b, p + 1);
        let mut pe = ps;
        let mut v: u32 = 0;
        while pe < b.len() && b[pe].is_ascii_digit() {
            v = v * 10 + u32::from(b[pe] - b'0');
            if v > 65535 {
                return Err(InvalidValue("port out of range"));
            }
            pe += 1;
        }
        if pe == ps {
            return Err(InvalidValue("missing port"));
        }
        port = Some(v as u16);
        p = pe;
    } else {
        p = he;
    }
    let end = scan_checked_params(s, p, on_param)?;
    Ok(ViaParts {
        name: &s[pos..ne],
        version: &s[vs..ve],
        transport: &s[ts..te],
        host: &s[hs..he],
        port,
        end,
    })
}

impl Via {
    /// A `SIP/2.0/<transport>` Via with a branch parameter.
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        Via {
            protocol: "SIP/2.0".into(),
            transport: transport.into(),
            host,
            port,
            params,
        }
    }

    /// Parses all values of one Via header field.
    pub fn parse_list(s: &str) -> Result<Vec<Via>, InvalidValue> {
        let mut out = Vec::new();
        scan_list(s, |s, pos| {
            let (via, end) = Via::scan(s, pos)?;
            out.push(via);
            Ok(end)
        })?;
        Ok(out)
    }

    /// Parses the first Via of a header value; also returns where it ends, so the rest of the
    /// list (`, SIP/2.0/UDP ...`) can be kept byte for byte.
    pub fn parse_first(s: &str) -> Result<(Via, usize), InvalidValue> {
        let pos = skip_ws(s.as_bytes(), 0);
        if pos >= s.len() || s.as_bytes()[pos] == b',' {
            return Err(InvalidValue("empty list element"));
        }
        Via::scan(s, pos)
    }

    fn scan(s: &str, pos: usize) -> Result<(Via, usize), InvalidValue> {
        let mut params = Vec::new();
        let p = scan_via(s, pos, |n, v| {
            params.push(Param {
                name: n.to_string(),
                value: v.map(str::to_string),
            })
        })?;
        let mut protocol = String::with_capacity(p.name.len() + 1 + p.version.len());
        protocol.push_str(p.name);
        protocol.push('/');
        protocol.push_str(p.version);
        let via = Via {
            protocol,
            transport: p.transport.to_string(),
            host: Host::from_scanned(p.host),
            port: p.port,
            params: Params(params),
        };
        Ok((via, p.end))
    }

    /// Parses a header value holding exactly one Via.
    pub fn parse(s: &str) -> Result<Via, InvalidValue> {
        let mut l = Via::parse_list(s)?;
        if l.len() != 1 {
            return Err(InvalidValue("expected a single Via value"));
        }
        l.pop().ok_or(InvalidValue("empty"))
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch has the RFC 3261 magic cookie and something after it.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }

    /// The received parameter.
    pub fn received(&self) -> Option<&str> {
        self.params.get("received").flatten()
    }

    /// The rport parameter: `None` absent, `Some(None)` requested, `Some(Some(port))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The maddr parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params.get("maddr").flatten()
    }

    /// The ttl parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }

    /// True when the sent-by cannot be answered to: a broadcast, multicast or unspecified address
    /// (RFC 4475 §3.3.10: a response must never be sent to 255.255.255.255).
    pub fn sent_by_is_unusable(&self) -> bool {
        match &self.host {
            Host::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
            Host::V6(a) => a.is_multicast() || a.is_unspecified(),
            Host::Domain(_) => false,
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.protocol)?;
        f.write_str("/")?;
        f.write_str(&self.transport)?;
        f.write_str(" ")?;
        fmt::Display::fmt(&self.host, f)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        fmt::Display::fmt(&self.params, f)
    }
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec (From, To, Contact, Route, Record-Route, Refer-To, ...)

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route,
/// Refer-To, Referred-By, P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, `lr` is a URI param, ...).
    pub params: Params,
    /// Whether the URI was written in angle brackets (output always uses them).
    pub bracketed: bool,
}

struct NameAddrParts<'a> {
    display: Option<&'a str>,
    uri: &'a str,
    bracketed: bool,
    end: usize,
}

fn scan_name_addr<'a>(
    s: &'a str,
    pos: usize,
    require_brackets: bool,
    on_param: impl FnMut(&'a str, Option<&'a str>),
) -> Result<NameAddrParts<'a>, InvalidValue> {
    let b = s.as_bytes();
    let mut display = None;
    let mut p = pos;
    if b.get(p) == Some(&b'"') {
        let qe = scan_quoted(b, p)?;
        display = Some(&s[p..qe]);
        p = skip_ws(b, qe);
        if b.get(p) != Some(&b'<') {
            return Err(InvalidValue("expected '<' after display name"));
        }
    } else if b.get(p) != Some(&b'<') {
        // Either *(token LWS) "<" or an addr-spec: look ahead over tokens.
        let mut q = p;
        let mut last = p;
        loop {
            let te = scan_token(b, q);
            if te == q {
                break;
            }
            last = te;
            q = skip_ws(b, te);
        }
        if q > p && b.get(q) == Some(&b'<') {
            display = Some(&s[p..last]);
            p = q;
        } else if s[p..]
            .find('<')
            .is_some_and(|lt| !s[p..p + lt].contains([':', '"']))
        {
            return Err(InvalidValue(
                "display name has non-token characters and is not quoted",
            ));
        }
    }
    let (uri, bracketed, after) = if b.get(p) == Some(&b'<') {
        let close = s[p..]
            .find('>')
            .map(|i| i + p)
            .ok_or(InvalidValue("missing '>'"))?;
        let uri = &s[p + 1..close];
        if uri.starts_with([' ', '\t']) || uri.ends_with([' ', '\t']) {
            return Err(InvalidValue("whitespace inside <>"));
        }
        (uri, true, close + 1)
    } else {
        if require_brackets {
            return Err(InvalidValue("URI must be enclosed in <>"));
        }
        // addr-spec form: a URI with ',', ';' or '?'... must be bracketed, so ';' ends it.
        let mut e = p;
        while e < b.len() && !matches!(b[e], b';' | b',' | b' ' | b'\t') {
            e += 1;
        }
        (&s[p..e], false, e)
    };
    validate_uri(uri)?;
    let end = scan_checked_params(s, after, on_param)?;
    Ok(NameAddrParts {
        display,
        uri,
        bracketed,
        end,
    })
}

impl NameAddr {
    /// A bracketed name-addr for `uri`, without display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Params::new(),
            bracketed: true,
        }
    }

    fn parse_at(s: &str, pos: usize, brackets: bool) -> Result<(NameAddr, usize), InvalidValue> {
        let mut params = Vec::new();
        let p = scan_name_addr(s, pos, brackets, |n, v| {
            params.push(Param {
                name: n.to_string(),
                value: v.map(str::to_string),
            })
        })?;
        let display_name = p.display.map(|d| {
            if d.starts_with('"') {
                unquote(d)
            } else {
                d.to_string()
            }
        });
        let na = NameAddr {
            display_name,
            uri: Uri::parse(p.uri)?,
            params: Params(params),
            bracketed: p.bracketed,
        };
        Ok((na, p.end))
    }

    /// Parses a header value holding exactly one name-addr/addr-spec (From, To, Refer-To, ...).
    pub fn parse(s: &str) -> Result<NameAddr, InvalidValue> {
        let b = s.as_bytes();
        let (na, end) = NameAddr::parse_at(s, skip_ws(b, 0), false)?;
        if skip_ws(b, end) != b.len() {
            return Err(InvalidValue("unexpected text after value"));
        }
        Ok(na)
    }

    /// Parses all values of a list header (Contact without `*`, P-Asserted-Identity).
    pub fn parse_list(s: &str) -> Result<Vec<NameAddr>, InvalidValue> {
        let mut out = Vec::new();
        scan_list(s, |s, pos| {
            let (na, end) = NameAddr::parse_at(s, pos, false)?;
            out.push(na);
            Ok(end)
        })?;
        Ok(out)
    }

    /// Parses a Route / Record-Route / Path list (brackets required).
    pub fn parse_route_list(s: &str) -> Result<Vec<NameAddr>, InvalidValue> {
        let mut out = Vec::new();
        scan_list(s, |s, pos| {
            let (na, end) = NameAddr::parse_at(s, pos, true)?;
            out.push(na);
            Ok(end)
        })?;
        Ok(out)
    }

    /// The tag parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }

    /// Sets the tag parameter.
    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }

    /// The expires parameter (Contact), saturating.
    pub fn expires(&self) -> Option<u32> {
        self.params
            .get("expires")
            .flatten()
            .and_then(|v| parse_u32_saturating(v).ok())
    }

    /// The q parameter (Contact).
    pub fn q(&self) -> Option<f32> {
        self.params.get("q").flatten().and_then(|v| v.parse().ok())
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            write!(f, "{} ", quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Contact value: a name-addr, or `*` (REGISTER removal of all bindings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// `*`
    Wildcard,
    /// An address.
    Addr(NameAddr),
}

impl Contact {
    /// Parses all values of one Contact header field.
    pub fn parse_list(s: &str) -> Result<Vec<Contact>, InvalidValue> {
        if s.trim() == "*" {
            return Ok(vec![Contact::Wildcard]);
        }
        Ok(NameAddr::parse_list(s)?
            .into_iter()
            .map(Contact::Addr)
            .collect())
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Wildcard => f.write_str("*"),
            Contact::Addr(a) => a.fmt(f),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CSeq, RAck, numbers

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (must fit 32 bits, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<CSeq, InvalidValue> {
        let s = s.trim_matches([' ', '\t']);
        let sp = s
            .find([' ', '\t'])
            .ok_or(InvalidValue("expected number and method"))?;
        let seq = parse_u32_strict(&s[..sp]).map_err(|e| {
            if e == "number out of range" {
                InvalidValue("sequence number exceeds 2**32-1")
            } else {
                InvalidValue(e)
            }
        })?;
        let method = Method::parse(s[sp..].trim_start_matches([' ', '\t']))?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// RAck (RFC 3262): RSeq, CSeq number and method of the response being acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    /// The RSeq of the reliable provisional response.
    pub rseq: u32,
    /// Its CSeq number.
    pub cseq: u32,
    /// Its CSeq method.
    pub method: Method,
}

impl RAck {
    /// Parses `rseq LWS cseq LWS method`.
    pub fn parse(s: &str) -> Result<RAck, InvalidValue> {
        let mut it = s.split([' ', '\t']).filter(|p| !p.is_empty());
        let (Some(a), Some(b), Some(m), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(InvalidValue("expected RSeq, CSeq number and method"));
        };
        Ok(RAck {
            rseq: parse_u32_strict(a)?,
            cseq: parse_u32_strict(b)?,
            method: Method::parse(m)?,
        })
    }
}

impl fmt::Display for RAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

/// Parses a delta-seconds style number (Expires, Max-Forwards, Min-Expires), saturating at
/// 2**32-1 as RFC 4475 §3.1.2.4 allows.
pub fn parse_number(s: &str) -> Result<u32, InvalidValue> {
    Ok(parse_u32_saturating(s.trim_matches([' ', '\t']))?)
}

/// Parses a Content-Length value.
pub fn parse_content_length(s: &str) -> Result<usize, InvalidValue> {
    let s = s.trim_matches([' ', '\t']);
    if s.starts_with('-') {
        return Err(InvalidValue("negative value"));
    }
    let n = parse_u32_strict(s)?;
    usize::try_from(n).map_err(|_| InvalidValue("too large"))
}

/// Validates a Call-ID (`word ["@" word]`) and returns it trimmed.
pub fn parse_call_id(s: &str) -> Result<&str, InvalidValue> {
    let t = s.trim_matches([' ', '\t']);
    let b = t.as_bytes();
    let ok = |w: &[u8]| !w.is_empty() && w.iter().all(|&c| is_word(c));
    let valid = match memchr::memchr(b'@', b) {
        Some(at) => ok(&b[..at]) && ok(&b[at + 1..]),
        None => ok(b),
    };
    if !valid {
        return Err(InvalidValue("Call-ID must be word[@word]"));
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// Token lists, media types, value-with-params

/// Parses a comma-separated token list (Allow, Supported, Require, Proxy-Require, Unsupported,
/// Allow-Events). An empty value gives an empty list.
pub fn parse_token_list(s: &str) -> Result<Vec<String>, InvalidValue> {
    let mut out = Vec::new();
    scan_token_list(s, |t| out.push(t.to_string()))?;
    Ok(out)
}

fn scan_token_list<'a>(s: &'a str, mut f: impl FnMut(&'a str)) -> Result<(), InvalidValue> {
    if s.trim_matches([' ', '\t']).is_empty() {
        return Ok(());
    }
    scan_list(s, |s, pos| {
        let e = scan_token(s.as_bytes(), pos);
        if e == pos {
            return Err(InvalidValue("expected a token"));
        }
        f(&s[pos..e]);
        Ok(e)
    })
}

/// Scans `type/subtype *(;param)`; returns (type, subtype).
fn scan_media_type<'a>(
    s: &'a str,
    on_param: impl FnMut(&'a str, Option<&'a str>),
) -> Result<(&'a str, &'a str), InvalidValue> {
    let b = s.as_bytes();
    let ts = skip_ws(b, 0);
    let te = scan_token(b, ts);
    let sl = skip_ws(b, te);
    if te == ts || b.get(sl) != Some(&b'/') {
        return Err(InvalidValue("expected type/subtype"));
    }
    let ss = skip_ws(b, sl + 1);
    let se = scan_token(b, ss);
    if se == ss {
        return Err(InvalidValue("missing subtype"));
    }
    let end = scan_generic_params(s, se, on_param)?;
    if end != b.len() {
        return Err(InvalidValue("unexpected text after media type"));
    }
    Ok((&s[ts..te], &s[ss..se]))
}

/// Scans a value (token, number or Call-ID) followed by parameters; returns (value, end).
fn scan_value_params<'a>(
    s: &'a str,
    pos: usize,
    on_param: impl FnMut(&'a str, Option<&'a str>),
) -> Result<(&'a str, usize), InvalidValue> {
    let b = s.as_bytes();
    let mut e = pos;
    while e < b.len() && (is_word(b[e]) || b[e] == b'@') {
        e += 1;
    }
    if e == pos {
        return Err(InvalidValue("missing value"));
    }
    let end = scan_generic_params(s, e, on_param)?;
    Ok((&s[pos..e], end))
}

/// A media type (Content-Type, RFC 3261 §20.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Type, e.g. `application`.
    pub mtype: String,
    /// Subtype, e.g. `sdp`.
    pub subtype: String,
    /// Parameters (`boundary`, `charset`, ...).
    pub params: Params,
}

impl MediaType {
    /// `application/sdp`.
    pub fn sdp() -> MediaType {
        MediaType {
            mtype: "application".into(),
            subtype: "sdp".into(),
            params: Params::new(),
        }
    }

    /// Parses `type/subtype *(;param)`.
    pub fn parse(s: &str) -> Result<MediaType, InvalidValue> {
        let mut params = Vec::new();
        let (t, st) = scan_media_type(s, |n, v| {
            params.push(Param {
                name: n.to_string(),
                value: v.map(str::to_string),
            })
        })?;
        Ok(MediaType {
            mtype: t.to_string(),
            subtype: st.to_string(),
            params: Params(params),
        })
    }

    /// Case-insensitive `type/subtype` match.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.mtype, self.subtype, self.params)
    }
}

/// A value followed by parameters: Event, Subscription-State, Session-Expires, Min-SE, Replaces,
/// Reason, Retry-After, Content-Disposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueParams {
    /// The leading value (token, number or Call-ID).
    pub value: String,
    /// Parameters.
    pub params: Params,
}

impl ValueParams {
    fn parse_at(s: &str, pos: usize) -> Result<(ValueParams, usize), InvalidValue> {
        let mut params = Vec::new();
        let (value, end) = scan_value_params(s, pos, |n, v| {
            params.push(Param {
                name: n.to_string(),
                value: v.map(str::to_string),
            })
        })?;
        Ok((
            ValueParams {
                value: value.to_string(),
                params: Params(params),
            },
            end,
        ))
    }

    /// Parses one value.
    pub fn parse(s: &str) -> Result<ValueParams, InvalidValue> {
        let b = s.as_bytes();
        let (v, end) = ValueParams::parse_at(s, skip_ws(b, 0))?;
        if skip_ws(b, end) != b.len() {
            return Err(InvalidValue("unexpected text after value"));
        }
        Ok(v)
    }

    /// Parses a comma-separated list (Reason).
    pub fn parse_list(s: &str) -> Result<Vec<ValueParams>, InvalidValue> {
        let mut out = Vec::new();
        scan_list(s, |s, pos| {
            let (v, end) = ValueParams::parse_at(s, pos)?;
            out.push(v);
            Ok(end)
        })?;
        Ok(out)
    }

    /// The value as a number (Session-Expires, Min-SE, Retry-After).
    pub fn number(&self) -> Option<u32> {
        parse_u32_saturating(&self.value).ok()
    }
}

impl fmt::Display for ValueParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, self.params)
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication headers

/// One `name=value` of a credentials/challenge header, value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    /// Parameter name.
    pub name: String,
    /// Value with quotes and escapes removed.
    pub value: String,
    /// Whether the value was (and will be written) quoted.
    pub quoted: bool,
}

/// Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate and
/// Authentication-Info values: a scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Scheme, e.g. `Digest` (empty for Authentication-Info, which has none).
    pub scheme: String,
    /// Parameters in order.
    pub params: Vec<AuthParam>,
}

/// Scans `scheme [LWS auth-param *(COMMA auth-param)]`; `on_param(name, raw value, quoted)`.
fn scan_auth<'a>(
    s: &'a str,
    on_param: impl FnMut(&'a str, &'a str, bool),
) -> Result<&'a str, InvalidValue> {
    let b = s.as_bytes();
    let ss = skip_ws(b, 0);
    let se = scan_token(b, ss);
    if se == ss {
        return Err(InvalidValue("missing scheme"));
    }
    let rest = skip_ws(b, se);
    if rest == b.len() {
        return Ok(&s[ss..se]);
    }
    if rest == se {
        return Err(InvalidValue("expected whitespace after scheme"));
    }
    scan_auth_params(&s[rest..], on_param)?;
    Ok(&s[ss..se])
}

/// Scans a comma-separated `name=value` list.
fn scan_auth_params<'a>(
    s: &'a str,
    mut on_param: impl FnMut(&'a str, &'a str, bool),
) -> Result<(), InvalidValue> {
    scan_list(s, |s, pos| {
        let b = s.as_bytes();
        let ne = scan_token(b, pos);
        if ne == pos {
            return Err(InvalidValue("expected parameter name"));
        }
        let eq = skip_ws(b, ne);
        if b.get(eq) != Some(&b'=') {
            return Err(InvalidValue("expected '=' after parameter name"));
        }
        let vs = skip_ws(b, eq + 1);
        let (quoted, ve) = if b.get(vs) == Some(&b'"') {
            (true, scan_quoted(b, vs)?)
        } else {
            // token68-style values (base64 '/' and '=') appear in some schemes.
            let mut ve = vs;
            while ve < b.len() && (is_token(b[ve]) || matches!(b[ve], b'/' | b'=' | b':')) {
                ve += 1;
            }
            if ve == vs {
                return Err(InvalidValue("empty parameter value"));
            }
            (false, ve)
        };
        on_param(&s[pos..ne], &s[vs..ve], quoted);
        Ok(ve)
    })
}

fn auth_param(name: &str, raw: &str, quoted: bool) -> AuthParam {
    let value = if quoted {
        unquote(raw)
    } else {
        raw.to_string()
    };
    AuthParam {
        name: name.to_string(),
        value,
        quoted,
    }
}

impl Auth {
    /// Parses `scheme LWS auth-param *(COMMA auth-param)` (also a bare scheme).
    pub fn parse(s: &str) -> Result<Auth, InvalidValue> {
        let mut params = Vec::new();
        let scheme = scan_auth(s, |n, v, q| params.push(auth_param(n, v, q)))?;
        Ok(Auth {
            scheme: scheme.to_string(),
            params,
        })
    }

    /// Parses only the comma-separated `name=value` list (Authentication-Info).
    pub fn parse_params(s: &str) -> Result<Vec<AuthParam>, InvalidValue> {
        let mut params = Vec::new();
        scan_auth_params(s, |n, v, q| params.push(auth_param(n, v, q)))?;
        Ok(params)
    }

    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }

    /// Sets a parameter (replacing in place, else appending).
    pub fn set_param(&mut self, name: &str, value: &str, quoted: bool) {
        match self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => {
                p.value = value.to_string();
                p.quoted = quoted;
            }
            None => self.params.push(AuthParam {
                name: name.into(),
                value: value.into(),
                quoted,
            }),
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, p) in self.params.iter().enumerate() {
            let sep = if i == 0 {
                if self.scheme.is_empty() { "" } else { " " }
            } else {
                ", "
            };
            if p.quoted {
                write!(f, "{sep}{}={}", p.name, quote(&p.value))?;
            } else {
                write!(f, "{sep}{}={}", p.name, p.value)?;
            }
        }
        Ok(())
    }
}

/// `FromStr` for the single-value types, so `"...".parse::<Via>()` works.
macro_rules! from_str {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::parse(s)
            }
        }
    )*};
}

from_str!(Via, NameAddr, CSeq, RAck, MediaType, ValueParams, Auth);

// ---------------------------------------------------------------------------------------------
// Validation used by the parser

/// Checks a known header's value against its grammar without allocating (unknown headers and
/// headers Denwa does not interpret are accepted as they are).
pub fn validate(name: &HeaderName, v: &str) -> Result<(), InvalidValue> {
    match name {
        HeaderName::Via => scan_list(v, |s, pos| Ok(scan_via(s, pos, |_, _| {})?.end)),
        HeaderName::From | HeaderName::To | HeaderName::ReferTo | HeaderName::ReferredBy => {
            let b = v.as_bytes();
            let p = scan_name_addr(v, skip_ws(b, 0), false, |_, _| {})?;
            if skip_ws(b, p.end) != b.len() {
                return Err(InvalidValue("unexpected text after address"));
            }
            Ok(())
        }
        HeaderName::Contact => {
            if v.trim_matches([' ', '\t']) == "*" {
                return Ok(());
            }
            scan_list(
                v,
                |s, pos| Ok(scan_name_addr(s, pos, false, |_, _| {})?.end),
            )
        }
        HeaderName::PAssertedIdentity | HeaderName::PPreferredIdentity => {
            scan_list(
                v,
                |s, pos| Ok(scan_name_addr(s, pos, false, |_, _| {})?.end),
            )
        }
        HeaderName::Route
        | HeaderName::RecordRoute
        | HeaderName::Path
        | HeaderName::ServiceRoute => {
            scan_list(v, |s, pos| Ok(scan_name_addr(s, pos, true, |_, _| {})?.end))
        }
        HeaderName::CallId => parse_call_id(v).map(|_| ()),
        HeaderName::CSeq => CSeq::parse(v).map(|_| ()),
        HeaderName::MaxForwards | HeaderName::Expires | HeaderName::MinExpires => {
            parse_number(v).map(|_| ())
        }
        HeaderName::RSeq => parse_u32_strict(v.trim_matches([' ', '\t']))
            .map(|_| ())
            .map_err(InvalidValue),
        HeaderName::RAck => RAck::parse(v).map(|_| ()),
        HeaderName::ContentLength => parse_content_length(v).map(|_| ()),
        HeaderName::ContentType => scan_media_type(v, |_, _| {}).map(|_| ()),
        HeaderName::Allow
        | HeaderName::Supported
        | HeaderName::Require
        | HeaderName::ProxyRequire
        | HeaderName::Unsupported
        | HeaderName::AllowEvents => scan_token_list(v, |_| {}),
        HeaderName::Event
        | HeaderName::SubscriptionState
        | HeaderName::SessionExpires
        | HeaderName::MinSe
        | HeaderName::Replaces => {
            let b = v.as_bytes();
            let (_, end) = scan_value_params(v, skip_ws(b, 0), |_, _| {})?;
            if skip_ws(b, end) != b.len() {
                return Err(InvalidValue("unexpected text after value"));
            }
            Ok(())
        }
        HeaderName::Authorization
        | HeaderName::ProxyAuthorization
        | HeaderName::WwwAuthenticate
        | HeaderName::ProxyAuthenticate => scan_auth(v, |_, _, _| {}).map(|_| ()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parse_and_display() {
        let v = Via::parse_list("SIP  /  2.0 / UDP  192.0.2.1 : 5060 ; branch = z9hG4bKabc;rport, SIP/2.0/TCP [2001:db8::1];received=2001:db8::2").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].protocol, "SIP/2.0");
        assert_eq!(v[0].transport, "UDP");
        assert_eq!(v[0].port, Some(5060));
        assert_eq!(v[0].branch(), Some("z9hG4bKabc"));
        assert_eq!(v[0].rport(), Some(None));
        assert_eq!(
            v[0].to_string(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport"
        );
        assert_eq!(v[1].received(), Some("2001:db8::2"));
        assert!(Via::parse_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(
            Via::parse("SIP/2.0/UDP 255.255.255.255")
                .unwrap()
                .sent_by_is_unusable()
        );
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>  ;  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.display_name.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.tag(), Some("1"));
        assert_eq!(n.to_string(), "<sip:user@example.com>;tag=1");
        assert!(NameAddr::parse("Bell, Alexander <sip:a@example.com>").is_err());
        assert!(NameAddr::parse("\"Watson <sip:a@example.com>").is_err());
        assert!(NameAddr::parse("< sip:a@example.com >").is_err());
        assert!(NameAddr::parse("<sip:a@example.com>, <sip:b@example.com>").is_err());
        let mut n = NameAddr::parse("A. Bell <sip:a@example.com>").unwrap();
        n.set_tag("x");
        assert_eq!(n.to_string(), "\"A. Bell\" <sip:a@example.com>;tag=x");
    }

    #[test]
    fn ipv6_and_tel_everywhere() {
        let c = NameAddr::parse("<sip:alice@[2001:db8::1]:5060;transport=tcp>;expires=30").unwrap();
        let u = c.uri.as_sip().unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!((u.port, c.expires()), (Some(5060), Some(30)));
        assert_eq!(
            c.to_string(),
            "<sip:alice@[2001:db8::1]:5060;transport=tcp>;expires=30"
        );
        let v = Via::parse("SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx;received=2001:db8::9")
            .unwrap();
        assert_eq!(v.host.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx;received=2001:db8::9"
        );
        let t = NameAddr::parse("\"Bob\" <tel:+81-3-1234-5678;phone-context=example.com>;tag=9")
            .unwrap();
        assert_eq!(t.uri.scheme(), "tel");
        assert_eq!(t.tag(), Some("9"));
        let pai =
            NameAddr::parse_list("\"Alice\" <sip:alice@example.com>, <tel:+15551234>").unwrap();
        assert_eq!(pai.len(), 2);
        assert!(NameAddr::parse_route_list("sip:proxy.example.com;lr").is_err());
        let rr =
            NameAddr::parse_route_list("<sip:p1.example.com;lr>,<sip:p2.example.com;lr>").unwrap();
        assert!(rr.iter().all(|r| r.uri.as_sip().is_some_and(|u| u.lr())));
    }

    #[test]
    fn known_parameters_follow_their_grammar() {
        assert!(Via::parse("SIP/2.0/UDP h;branch=\"x\"").is_err());
        assert!(Via::parse("SIP/2.0/UDP h;received=host.example.com").is_err());
        assert!(
            Via::parse("SIP/2.0/UDP h;received=[2001:db8::1];rport=5060;ttl=16;maddr=239.1.1.1")
                .is_ok()
        );
        assert!(Via::parse("SIP/2.0/UDP h;ttl=256").is_err());
        assert!(Via::parse("SIP/2.0/UDP h;rport=70000").is_err());
        assert!(NameAddr::parse("<sip:a@h>;tag=\"q\"").is_err());
        assert!(NameAddr::parse("<sip:a@h>;expires=soon").is_err());
        for q in ["0", "0.5", "0.333", "1", "1.000"] {
            assert!(NameAddr::parse(&format!("<sip:a@h>;q={q}")).is_ok(), "{q}");
        }
        for q in ["1.5", "0.1234", "2", "x"] {
            assert!(NameAddr::parse(&format!("<sip:a@h>;q={q}")).is_err(), "{q}");
        }
        assert!(validate(&HeaderName::Via, "SIP/2.0/UDP h;received=nothost!").is_err());
    }

    #[test]
    fn from_str_works() {
        let v: Via = "SIP/2.0/UDP h;branch=z9hG4bK1".parse().unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        let c: CSeq = "7 BYE".parse().unwrap();
        assert_eq!(c.method, Method::Bye);
        assert!("x".parse::<NameAddr>().is_err());
    }

    #[test]
    fn contact_lists() {
        let c = Contact::parse_list("<sip:a@h>;expires=60;q=0.5, \"B\" <sip:b@h>").unwrap();
        assert_eq!(c.len(), 2);
        let Contact::Addr(a) = &c[0] else { panic!() };
        assert_eq!(a.expires(), Some(60));
        assert_eq!(a.q(), Some(0.5));
        assert_eq!(Contact::parse_list(" * ").unwrap(), vec![Contact::Wildcard]);
        assert!(Contact::parse_list("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(
            CSeq::parse("0009 INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert_eq!(
            CSeq::parse("36893488147419103232 REGISTER"),
            Err(InvalidValue("sequence number exceeds 2**32-1"))
        );
        assert!(CSeq::parse("1").is_err());
        assert_eq!(parse_number("300"), Ok(300));
        assert_eq!(parse_number("1000000000000000000000"), Ok(u32::MAX));
        assert!(parse_content_length("-999").is_err());
        assert_eq!(parse_call_id(" a@b "), Ok("a@b"));
        assert!(parse_call_id("a@b@c").is_err());
        assert_eq!(RAck::parse("776656 1 INVITE").unwrap().rseq, 776656);
    }

    #[test]
    fn lists_media_auth() {
        assert_eq!(
            parse_token_list("100rel, timer ,replaces").unwrap(),
            ["100rel", "timer", "replaces"]
        );
        assert!(parse_token_list("a,,b").is_err());
        assert!(parse_token_list("").unwrap().is_empty());
        let m = MediaType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(
            m.params.value("boundary").as_deref(),
            Some("7a9cbec02ceef655")
        );
        let a = Auth::parse("Digest username=\"bob\", realm=\"x\", nonce=\"n\", uri=\"sip:x\", response=\"r\", algorithm=MD5, qop=auth, nc=00000001").unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.param("username"), Some("bob"));
        assert_eq!(a.param("nc"), Some("00000001"));
        let again = Auth::parse(&a.to_string()).unwrap();
        assert_eq!(again, a);
        assert!(Auth::parse("NoOneKnowsThisScheme opaque-data=here").is_ok());
        let r =
            ValueParams::parse_list("SIP ;cause=200 ;text=\"Call completed elsewhere\"").unwrap();
        assert_eq!(
            r[0].params.value("text").as_deref(),
            Some("Call completed elsewhere")
        );
        let rep =
            ValueParams::parse("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff").unwrap();
        assert_eq!(rep.value, "98732@sip.example.com");
    }
}
