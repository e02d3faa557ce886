//! Generic UAS/proxy request checks run after parsing (RFC 3261 §8.2, §16.3): each failure says
//! which status, reason and extra headers to answer with.

use crate::header::HeaderName;
use crate::message::{Request, Response, Version, reason_phrase};
use crate::method::Method;
use crate::uri::Uri;
use crate::values::{CSeq, Contact, MediaType, NameAddr, parse_token_list};

/// What to answer a request that fails a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Extra headers for the response (Unsupported, Allow, Accept, ...).
    pub headers: Vec<(HeaderName, String)>,
    /// Why, for logs and the Warning header.
    pub detail: String,
}

impl Rejection {
    fn new(status: u16, detail: impl Into<String>) -> Rejection {
        Rejection {
            status,
            reason: reason_phrase(status).to_string(),
            headers: Vec::new(),
            detail: detail.into(),
        }
    }

    fn with(mut self, name: HeaderName, value: String) -> Rejection {
        self.headers.push((name, value));
        self
    }

    /// The response to send (Via/From/To/Call-ID/CSeq copied, extra headers added). The caller adds
    /// a To tag when it answers as a UAS.
    pub fn to_response(&self, req: &Request) -> Response {
        let mut r = Response::for_request(req, self.status, Some(&self.reason));
        for (n, v) in &self.headers {
            r.headers.push(n.clone(), v.as_str());
        }
        r
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.status, self.reason, self.detail)
    }
}

/// What the checking element supports.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Option tags understood in Require (others give 420).
    pub supported: Vec<String>,
    /// URI schemes accepted in the Request-URI (others give 416).
    pub schemes: Vec<String>,
    /// Checking as a proxy: Proxy-Require is enforced and Max-Forwards 0 gives 483.
    pub proxy: bool,
    /// Methods implemented; when set, others give 405 (known methods, with Allow) or 501.
    pub methods: Option<Vec<Method>>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            supported: [
                "100rel",
                "replaces",
                "timer",
                "path",
                "outbound",
                "norefersub",
            ]
            .map(String::from)
            .to_vec(),
            schemes: ["sip", "sips", "tel"].map(String::from).to_vec(),
            proxy: false,
            methods: None,
        }
    }
}

/// Headers that must appear at most once (RFC 3261 §7.3.1: not comma-list headers).
const SINGLE: [HeaderName; 7] = [
    HeaderName::CallId,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentType,
    HeaderName::Expires,
];

/// The header values [`check_parsed`] parsed on its way, handed on so the stages after it (the
/// registrar above all) need not parse them again.
#[derive(Debug, Clone)]
pub struct Checked {
    /// From.
    pub from: NameAddr,
    /// To.
    pub to: NameAddr,
    /// CSeq (its method is the request's).
    pub cseq: CSeq,
    /// Every Contact value in order (`*` as [`Contact::Wildcard`]).
    pub contacts: Vec<Contact>,
    /// Expires, when present and a number.
    pub expires: Option<u32>,
}

/// Runs the generic checks in the order RFC 3261 §8.2 gives them.
pub fn check_request(req: &Request, cfg: &CheckConfig) -> Result<(), Rejection> {
    check_parsed(req, cfg).map(drop)
}

/// A name-addr header that must be there and parse, with the RFC 4475 §3.1.2.13 rule applied.
fn addr_header(req: &Request, name: HeaderName) -> Result<NameAddr, Rejection> {
    let na = if name == HeaderName::From {
        req.headers.from()
    } else {
        req.headers.to()
    };
    let Some(na) = na else {
        return Err(Rejection::new(400, format!("invalid {name} header")));
    };
    if !na.bracketed && matches!(&na.uri, Uri::Sip(u) if !u.headers.is_empty()) {
        return Err(Rejection::new(
            400,
            format!("{name} URI with headers must be enclosed in <>"),
        ));
    }
    Ok(na)
}

/// [`check_request`], handing on what it parsed (From, To, CSeq, Contact, Expires), each header
/// parsed once.
pub fn check_parsed(req: &Request, cfg: &CheckConfig) -> Result<Checked, Rejection> {
    let h = &req.headers;
    if req.version != Version::SIP_2_0 {
        return Err(Rejection::new(
            505,
            format!("unsupported version {}", req.version),
        ));
    }
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if !h.contains(&name) {
            return Err(Rejection::new(400, format!("missing {name} header")));
        }
    }
    for name in &SINGLE {
        if h.count(name) > 1 {
            return Err(Rejection::new(400, format!("more than one {name} header")));
        }
    }
    let cseq = h
        .cseq()
        .ok_or_else(|| Rejection::new(400, "invalid CSeq"))?;
    if cseq.method != req.method {
        // An unknown method we cannot even match: 501 (RFC 4475 §3.1.2.18).
        let status = if req.method.is_known() { 400 } else { 501 };
        return Err(Rejection::new(
            status,
            "CSeq method does not match the request method",
        ));
    }
    if let Some(methods) = &cfg.methods
        && !methods.contains(&req.method)
    {
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let r = if req.method.is_known() {
            Rejection::new(405, format!("method {} not allowed", req.method))
        } else {
            Rejection::new(501, format!("method {} not implemented", req.method))
        };
        return Err(r.with(HeaderName::Allow, allow));
    }
    if !cfg
        .schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(req.uri.scheme()))
    {
        return Err(Rejection::new(
            416,
            format!("Request-URI scheme {} not supported", req.uri.scheme()),
        ));
    }
    // RFC 3261 §19.1.1: headers are not allowed in a Request-URI; never turn them into real
    // headers (RFC 4475 §3.1.2.11).
    if let Uri::Sip(u) = &req.uri
        && !u.headers.is_empty()
    {
        return Err(Rejection::new(400, "Request-URI contains URI headers"));
    }
    if let Some(v) = h.top_via()
        && v.branch() == Some("z9hG4bK")
    {
        return Err(Rejection::new(400, "Via branch is only the magic cookie"));
    }
    let from = addr_header(req, HeaderName::From)?;
    let to = addr_header(req, HeaderName::To)?;
    let contacts = h.contacts();
    for c in &contacts {
        // RFC 4475 §3.1.2.13: the '?' part cannot belong to an addr-spec.
        if let Contact::Addr(na) = c
            && !na.bracketed
            && matches!(&na.uri, Uri::Sip(u) if !u.headers.is_empty())
        {
            return Err(Rejection::new(
                400,
                "Contact URI with headers must be enclosed in <>",
            ));
        }
    }
    if cfg.proxy && h.max_forwards() == Some(0) {
        return Err(Rejection::new(483, "Max-Forwards is 0"));
    }
    if req.method != Method::Ack && req.method != Method::Cancel {
        let mut unknown: Vec<String> = Vec::new();
        let mut names = vec![HeaderName::Require];
        if cfg.proxy {
            names.push(HeaderName::ProxyRequire);
        }
        for name in &names {
            for v in h.get_all(name) {
                let tags = parse_token_list(v.as_str())
                    .map_err(|_| Rejection::new(400, format!("invalid {name}")))?;
                for t in tags {
                    if !cfg.supported.iter().any(|s| s.eq_ignore_ascii_case(&t))
                        && !unknown.contains(&t)
                    {
                        unknown.push(t);
                    }
                }
            }
        }
        if !unknown.is_empty() {
            let list = unknown.join(", ");
            return Err(
                Rejection::new(420, format!("unsupported extensions: {list}"))
                    .with(HeaderName::Unsupported, list),
            );
        }
    }
    if req.method == Method::Register && !to.uri.is_sip() {
        return Err(Rejection::new(
            400,
            "To of a REGISTER must be a SIP or SIPS URI",
        ));
    }
    let expires = h.expires();
    // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
    if req.method == Method::Register
        && contacts.contains(&Contact::Wildcard)
        && (contacts.len() > 1 || expires != Some(0))
    {
        return Err(Rejection::new(
            400,
            "Contact * must be alone and with Expires: 0",
        ));
    }
    Ok(Checked {
        from,
        to,
        cseq,
        contacts,
        expires,
    })
}

/// 415 with an Accept header unless the body's Content-Type is one of `accepted`
/// (`(type, subtype)` pairs). A request without body passes.
pub fn check_content_type(req: &Request, accepted: &[(&str, &str)]) -> Result<(), Rejection> {
    if req.body.is_empty() {
        return Ok(());
    }
    let ok = req
        .headers
        .content_type()
        .is_some_and(|ct| accepted.iter().any(|(t, s)| ct.is(t, s)));
    if ok {
        return Ok(());
    }
    let accept = accepted
        .iter()
        .map(|(t, s)| format!("{t}/{s}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Rejection::new(415, "unsupported Content-Type").with(HeaderName::Accept, accept))
}

/// 406 when the request carries Accept and none of `offered` (what the answer would contain)
/// matches it, wildcards included.
pub fn check_accept(req: &Request, offered: &[(&str, &str)]) -> Result<(), Rejection> {
    let values: Vec<&str> = req
        .headers
        .get_all(&HeaderName::Accept)
        .map(|v| v.as_str())
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let mut ranges = Vec::new();
    for v in values {
        for item in v.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match MediaType::parse(item) {
                Ok(m) => ranges.push(m),
                Err(_) => return Err(Rejection::new(400, "invalid Accept header")),
            }
        }
    }
    if ranges.is_empty() {
        // An empty Accept means no body is acceptable, which a bodiless answer satisfies.
        return Ok(());
    }
    let hit = ranges.iter().any(|r| {
        offered.iter().any(|(t, s)| {
            (r.mtype == "*" || r.mtype.eq_ignore_ascii_case(t))
                && (r.subtype == "*" || r.subtype.eq_ignore_ascii_case(s))
        })
    });
    if hit {
        Ok(())
    } else {
        Err(Rejection::new(406, "no acceptable body type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::parse::parse_message;

    fn req(extra: &str, method: &str, cseq_method: &str) -> Request {
        let text = format!(
            "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: x\r\nCSeq: 1 {cseq_method}\r\n{extra}\r\n"
        );
        match parse_message(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn passes_a_plain_request() {
        assert_eq!(
            check_request(&req("", "OPTIONS", "OPTIONS"), &CheckConfig::default()),
            Ok(())
        );
    }

    #[test]
    fn what_the_checks_parsed_is_handed_on() {
        let r = req(
            "Contact: <sip:bob@192.0.2.1:5060>;expires=60, <sip:bob@192.0.2.2>\r\nContact: <sip:bob@192.0.2.3>;q=0.5\r\nExpires: 3600\r\n",
            "REGISTER",
            "REGISTER",
        );
        let c = check_parsed(&r, &CheckConfig::default()).expect("passes");
        assert_eq!(c.to, r.to().expect("To"));
        assert_eq!(c.from, r.from().expect("From"));
        assert_eq!(c.cseq, r.cseq().expect("CSeq"));
        assert_eq!(c.contacts, r.contacts(), "every Contact header, in order");
        assert_eq!(c.contacts.len(), 3);
        assert_eq!(c.expires, Some(3600));
        let plain =
            check_parsed(&req("", "OPTIONS", "OPTIONS"), &CheckConfig::default()).expect("passes");
        assert!(plain.contacts.is_empty());
        assert_eq!(plain.expires, None);
    }

    #[test]
    fn register_wildcard_rules() {
        let ok = req("Contact: *\r\nExpires: 0\r\n", "REGISTER", "REGISTER");
        assert_eq!(check_request(&ok, &CheckConfig::default()), Ok(()));
        let no_expires = req("Contact: *\r\n", "REGISTER", "REGISTER");
        assert_eq!(
            check_request(&no_expires, &CheckConfig::default())
                .unwrap_err()
                .status,
            400
        );
        let mixed = req(
            "Contact: *\r\nContact: <sip:a@h>\r\nExpires: 0\r\n",
            "REGISTER",
            "REGISTER",
        );
        assert_eq!(
            check_request(&mixed, &CheckConfig::default())
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn method_list_gives_405_or_501() {
        let cfg = CheckConfig {
            methods: Some(vec![Method::Invite, Method::Options]),
            ..CheckConfig::default()
        };
        let r = check_request(&req("", "MESSAGE", "MESSAGE"), &cfg).unwrap_err();
        assert_eq!(r.status, 405);
        assert_eq!(
            r.headers[0],
            (HeaderName::Allow, "INVITE, OPTIONS".to_string())
        );
        assert_eq!(
            check_request(&req("", "FOO", "FOO"), &cfg)
                .unwrap_err()
                .status,
            501
        );
    }

    #[test]
    fn require_supported_passes_unknown_fails() {
        let cfg = CheckConfig::default();
        assert_eq!(
            check_request(&req("Require: 100rel\r\n", "INVITE", "INVITE"), &cfg),
            Ok(())
        );
        let r =
            check_request(&req("Require: foo, 100rel\r\n", "INVITE", "INVITE"), &cfg).unwrap_err();
        assert_eq!(r.status, 420);
        let resp = r.to_response(&req("Require: foo\r\n", "INVITE", "INVITE"));
        assert_eq!(resp.headers.get_str(&HeaderName::Unsupported), Some("foo"));
    }

    #[test]
    fn content_type_and_accept_helpers() {
        let mut r = req(
            "Content-Type: application/unknownformat\r\n",
            "INVITE",
            "INVITE",
        );
        r.body = bytes::Bytes::from_static(b"x");
        let e = check_content_type(&r, &[("application", "sdp")]).unwrap_err();
        assert_eq!(
            (e.status, e.headers[0].1.as_str()),
            (415, "application/sdp")
        );
        let a = req("Accept: text/nobodyKnowsThis\r\n", "INVITE", "INVITE");
        assert_eq!(
            check_accept(&a, &[("application", "sdp")])
                .unwrap_err()
                .status,
            406
        );
        let w = req("Accept: application/*\r\n", "INVITE", "INVITE");
        assert_eq!(check_accept(&w, &[("application", "sdp")]), Ok(()));
    }
}
