//! Requests, responses, typed getters/setters and the canonical serializer.

use crate::header::{HeaderName, HeaderValue, Headers};
use crate::method::Method;
use crate::uri::Uri;
use crate::values::{
    Auth, CSeq, Contact, MediaType, NameAddr, RAck, ValueParams, Via, parse_call_id,
    parse_content_length, parse_number, parse_token_list,
};
use bytes::Bytes;
use std::fmt;

/// Protocol version of a start line (`SIP/2.0`; others parse so that a UAS can answer 505).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl Version {
    /// SIP/2.0.
    pub const SIP_2_0: Version = Version { major: 2, minor: 0 };
}

impl Default for Version {
    fn default() -> Self {
        Version::SIP_2_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/{}.{}", self.major, self.minor)
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Protocol version.
    pub version: Version,
    /// Header fields in order.
    pub headers: Headers,
    /// Body (exactly Content-Length bytes when parsed).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Protocol version.
    pub version: Version,
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
    /// Header fields in order.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// The RFC 3261 §21 reason phrase for `status` (empty for unknown codes).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

/// Typed getters and setters over the header list. Getters return `None`/empty when the header is
/// absent or does not parse (the parser has already rejected malformed known headers).
/// The topmost Via of a message and its place in the header list ([`Headers::top_via_at`]).
#[derive(Debug, Clone)]
pub struct TopVia {
    /// The parsed value; edit it and write it back with [`Headers::set_top_via_at`].
    pub via: Via,
    field: usize,
    end: usize,
}

impl Headers {
    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.get_str(&HeaderName::CallId)
            .and_then(|v| parse_call_id(v).ok())
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        self.get_str(&HeaderName::CSeq)
            .and_then(|v| CSeq::parse(v).ok())
    }

    /// All Via values, top first.
    pub fn vias(&self) -> Vec<Via> {
        let mut out = Vec::new();
        for v in self.get_all(&HeaderName::Via) {
            if let Ok(mut l) = Via::parse_list(v.as_str()) {
                out.append(&mut l);
            }
        }
        out
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<Via> {
        self.top_via_at().map(|t| t.via)
    }

    /// The topmost Via and where it sits, so that an edit of it ([`Headers::set_top_via_at`])
    /// does not parse the field again.
    pub fn top_via_at(&self) -> Option<TopVia> {
        let field = self.position(&HeaderName::Via)?;
        let (via, end) = Via::parse_first(self.at(field)?.value.as_str()).ok()?;
        Some(TopVia { via, field, end })
    }

    /// From.
    pub fn from(&self) -> Option<NameAddr> {
        self.get_str(&HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// To.
    pub fn to(&self) -> Option<NameAddr> {
        self.get_str(&HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// All Contact values in order (a `*` appears as [`Contact::Wildcard`]).
    pub fn contacts(&self) -> Vec<Contact> {
        let mut out = Vec::new();
        for v in self.get_all(&HeaderName::Contact) {
            if let Ok(mut l) = Contact::parse_list(v.as_str()) {
                out.append(&mut l);
            }
        }
        out
    }

    /// The first Contact address (not `*`).
    pub fn contact(&self) -> Option<NameAddr> {
        self.contacts().into_iter().find_map(|c| match c {
            Contact::Addr(a) => Some(a),
            Contact::Wildcard => None,
        })
    }

    fn number(&self, name: &HeaderName) -> Option<u32> {
        self.get_str(name).and_then(|v| parse_number(v).ok())
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u32> {
        self.number(&HeaderName::MaxForwards)
    }

    /// Expires.
    pub fn expires(&self) -> Option<u32> {
        self.number(&HeaderName::Expires)
    }

    /// Min-Expires.
    pub fn min_expires(&self) -> Option<u32> {
        self.number(&HeaderName::MinExpires)
    }

    /// RSeq.
    pub fn rseq(&self) -> Option<u32> {
        self.number(&HeaderName::RSeq)
    }

    /// RAck.
    pub fn rack(&self) -> Option<RAck> {
        self.get_str(&HeaderName::RAck)
            .and_then(|v| RAck::parse(v).ok())
    }

    /// Content-Length as written (the serializer recomputes it).
    pub fn content_length(&self) -> Option<usize> {
        self.get_str(&HeaderName::ContentLength)
            .and_then(|v| parse_content_length(v).ok())
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<MediaType> {
        self.get_str(&HeaderName::ContentType)
            .and_then(|v| MediaType::parse(v).ok())
    }

    fn name_addr_list(&self, name: &HeaderName) -> Vec<NameAddr> {
        let mut out = Vec::new();
        for v in self.get_all(name) {
            if let Ok(mut l) = NameAddr::parse_list(v.as_str()) {
                out.append(&mut l);
            }
        }
        out
    }

    /// Route values, top first.
    pub fn routes(&self) -> Vec<NameAddr> {
        self.name_addr_list(&HeaderName::Route)
    }

    /// Record-Route values, top first.
    pub fn record_routes(&self) -> Vec<NameAddr> {
        self.name_addr_list(&HeaderName::RecordRoute)
    }

    /// Path values (RFC 3327), top first.
    pub fn paths(&self) -> Vec<NameAddr> {
        self.name_addr_list(&HeaderName::Path)
    }

    /// P-Asserted-Identity values.
    pub fn p_asserted_identity(&self) -> Vec<NameAddr> {
        self.name_addr_list(&HeaderName::PAssertedIdentity)
    }

    /// Refer-To.
    pub fn refer_to(&self) -> Option<NameAddr> {
        self.get_str(&HeaderName::ReferTo)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// Referred-By.
    pub fn referred_by(&self) -> Option<NameAddr> {
        self.get_str(&HeaderName::ReferredBy)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    /// All tokens of every field named `name` (Allow, Supported, Require, ...).
    pub fn tokens(&self, name: &HeaderName) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.get_all(name) {
            if let Ok(mut l) = parse_token_list(v.as_str()) {
                out.append(&mut l);
            }
        }
        out
    }

    /// Allow.
    pub fn allow(&self) -> Vec<String> {
        self.tokens(&HeaderName::Allow)
    }

    /// Supported.
    pub fn supported(&self) -> Vec<String> {
        self.tokens(&HeaderName::Supported)
    }

    /// Require.
    pub fn require(&self) -> Vec<String> {
        self.tokens(&HeaderName::Require)
    }

    /// Proxy-Require.
    pub fn proxy_require(&self) -> Vec<String> {
        self.tokens(&HeaderName::ProxyRequire)
    }

    /// Unsupported.
    pub fn unsupported(&self) -> Vec<String> {
        self.tokens(&HeaderName::Unsupported)
    }

    /// User-Agent, as written.
    pub fn user_agent(&self) -> Option<&str> {
        self.get_str(&HeaderName::UserAgent)
    }

    /// Server, as written.
    pub fn server(&self) -> Option<&str> {
        self.get_str(&HeaderName::Server)
    }

    /// All parsed values of an authentication header (Authorization, WWW-Authenticate, ...).
    pub fn auth(&self, name: &HeaderName) -> Vec<Auth> {
        self.get_all(name)
            .filter_map(|v| Auth::parse(v.as_str()).ok())
            .collect()
    }

    /// Authorization values.
    pub fn authorization(&self) -> Vec<Auth> {
        self.auth(&HeaderName::Authorization)
    }

    /// Proxy-Authorization values.
    pub fn proxy_authorization(&self) -> Vec<Auth> {
        self.auth(&HeaderName::ProxyAuthorization)
    }

    /// WWW-Authenticate values.
    pub fn www_authenticate(&self) -> Vec<Auth> {
        self.auth(&HeaderName::WwwAuthenticate)
    }

    /// Proxy-Authenticate values.
    pub fn proxy_authenticate(&self) -> Vec<Auth> {
        self.auth(&HeaderName::ProxyAuthenticate)
    }

    fn value_params(&self, name: &HeaderName) -> Option<ValueParams> {
        self.get_str(name).and_then(|v| ValueParams::parse(v).ok())
    }

    /// Event (RFC 6665).
    pub fn event(&self) -> Option<ValueParams> {
        self.value_params(&HeaderName::Event)
    }

    /// Subscription-State (RFC 6665).
    pub fn subscription_state(&self) -> Option<ValueParams> {
        self.value_params(&HeaderName::SubscriptionState)
    }

    /// Session-Expires (RFC 4028): value is the interval, `refresher` a parameter.
    pub fn session_expires(&self) -> Option<ValueParams> {
        self.value_params(&HeaderName::SessionExpires)
    }

    /// Min-SE (RFC 4028).
    pub fn min_se(&self) -> Option<u32> {
        self.value_params(&HeaderName::MinSe)
            .and_then(|v| v.number())
    }

    /// Replaces (RFC 3891): value is the Call-ID; `to-tag`, `from-tag`, `early-only` parameters.
    pub fn replaces(&self) -> Option<ValueParams> {
        self.value_params(&HeaderName::Replaces)
    }

    /// Reason values (RFC 3326).
    pub fn reasons(&self) -> Vec<ValueParams> {
        self.get_all(&HeaderName::Reason)
            .filter_map(|v| ValueParams::parse_list(v.as_str()).ok())
            .flatten()
            .collect()
    }

    /// Replaces all fields named `name` by one holding `value` written with `Display`.
    pub fn set_typed(&mut self, name: HeaderName, value: &impl fmt::Display) {
        self.set(name, value.to_string());
    }

    /// Adds a Via on top (as a proxy or UAC does before sending).
    pub fn push_via(&mut self, via: &Via) {
        self.push_front(HeaderName::Via, via.to_string());
    }

    /// Replaces the topmost Via value (e.g. to add `received`/`rport`), keeping the others.
    pub fn set_top_via(&mut self, via: &Via) {
        let Some(field) = self.position(&HeaderName::Via) else {
            self.push(HeaderName::Via, via.to_string());
            return;
        };
        // An unparsable first value is replaced with the whole field.
        let end = self
            .at(field)
            .and_then(|h| Via::parse_first(h.value.as_str()).ok())
            .map_or(usize::MAX, |(_, end)| end);
        self.splice_top_via(field, end, via);
    }

    /// Writes back a Via taken with [`Headers::top_via_at`] and edited.
    pub fn set_top_via_at(&mut self, top: &TopVia) {
        self.splice_top_via(top.field, top.end, &top.via);
    }

    /// Replaces the first `end` bytes of Via field `field` with `via`; the Vias after it in the
    /// same field stay byte for byte.
    fn splice_top_via(&mut self, field: usize, end: usize, via: &Via) {
        let Some(h) = self.at(field).filter(|h| h.name == HeaderName::Via) else {
            return;
        };
        let mut text = via.to_string();
        text.push_str(h.value.as_str().get(end..).unwrap_or_default());
        if let Some(h) = self.at_mut(field) {
            h.value = text.into();
        }
    }

    /// Decrements Max-Forwards (adding `Max-Forwards: 70` when absent, RFC 3261 §16.6 step 3);
    /// returns the new value, or `None` when it was already 0 (answer 483 instead).
    pub fn decrement_max_forwards(&mut self) -> Option<u32> {
        match self.max_forwards() {
            Some(0) => None,
            Some(n) => {
                self.set(HeaderName::MaxForwards, (n - 1).to_string());
                Some(n - 1)
            }
            None => {
                self.push(HeaderName::MaxForwards, HeaderValue::from_static("70"));
                Some(70)
            }
        }
    }

    /// Removes the topmost Via value (a proxy forwarding a response); returns it.
    pub fn pop_via(&mut self) -> Option<Via> {
        let i = self.position(&HeaderName::Via)?;
        let list = self
            .at(i)
            .and_then(|h| Via::parse_list(h.value.as_str()).ok())?;
        let mut it = list.into_iter();
        let top = it.next()?;
        let rest: Vec<String> = it.map(|v| v.to_string()).collect();
        if rest.is_empty() {
            self.remove_at(i);
        } else if let Some(h) = self.at_mut(i) {
            h.value = rest.join(", ").into();
        }
        Some(top)
    }
}

/// Writes start line, headers (Content-Length recomputed, in place of the first one or appended)
/// and body.
fn write_message(out: &mut Vec<u8>, start: fmt::Arguments<'_>, headers: &Headers, body: &[u8]) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let line_start = out.len();
    let _ = out.write_fmt(start);
    // Fields set by hand (reason phrase, URI parts) must not break the start line.
    for b in &mut out[line_start..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
    let mut wrote_len = false;
    let write_len = |out: &mut Vec<u8>| {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    };
    for h in headers {
        if h.name == HeaderName::ContentLength {
            if !wrote_len {
                write_len(out);
                wrote_len = true;
            }
            continue;
        }
        match &h.name {
            // Names built by hand (`HeaderName::from`) may hold anything; only tokens go out.
            HeaderName::Other(raw) => out.extend(
                raw.iter()
                    .map(|&c| if crate::grammar::is_token(c) { c } else { b'-' }),
            ),
            known => out.extend_from_slice(known.as_str().as_bytes()),
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_len {
        write_len(out);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn estimate(headers: &Headers, body: &[u8]) -> usize {
    headers
        .iter()
        .map(|h| h.value.as_bytes().len() + 24)
        .sum::<usize>()
        + body.len()
        + 96
}

impl Request {
    /// A SIP/2.0 request without headers or body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            version: Version::SIP_2_0,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder-style header append.
    pub fn with_header(
        mut self,
        name: HeaderName,
        value: impl Into<crate::header::HeaderValue>,
    ) -> Request {
        self.headers.push(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &MediaType, body: impl Into<Bytes>) {
        self.headers
            .set_typed(HeaderName::ContentType, content_type);
        self.body = body.into();
    }

    /// Canonical serialisation with a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(estimate(&self.headers, &self.body));
        write_message(
            &mut out,
            format_args!("{} {} {}", self.method, self.uri, self.version),
            &self.headers,
            &self.body,
        );
        out
    }
}

impl Response {
    /// A SIP/2.0 response with the standard reason phrase and no headers.
    pub fn new(status: u16) -> Response {
        Response {
            version: Version::SIP_2_0,
            status,
            reason: reason_phrase(status).to_string(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `req` per RFC 3261 §8.2.6: Via (all, in order), From, To, Call-ID and CSeq
    /// copied; `reason` defaults to the standard phrase when `None`.
    pub fn for_request(req: &Request, status: u16, reason: Option<&str>) -> Response {
        // 100 Trying also echoes Timestamp (RFC 3261 §8.2.6.1).
        Response::copying(&req.headers, status, reason, |n| {
            status == 100 && *n == HeaderName::Timestamp
        })
    }

    /// Another answer to the request this response answers: the same Via, From, To (with its
    /// tag), Call-ID and CSeq, a new status and reason, and nothing else (e.g. a 500 replacing
    /// a prepared 200 that could not be honoured).
    pub fn restated(&self, status: u16, reason: Option<&str>) -> Response {
        Response::copying(&self.headers, status, reason, |_| false)
    }

    /// A response with the §8.2.6 headers of `from` (plus those `also` picks), in order.
    fn copying(
        from: &Headers,
        status: u16,
        reason: Option<&str>,
        also: impl Fn(&HeaderName) -> bool,
    ) -> Response {
        let mut r = Response::new(status);
        if let Some(text) = reason {
            r.reason = text.to_string();
        }
        for h in from {
            if matches!(
                h.name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) || also(&h.name)
            {
                r.headers.push_header(h.clone());
            }
        }
        r
    }

    /// Adds a tag to To when it has none (a UAS must, except for 100 Trying).
    pub fn with_to_tag(mut self, tag: &str) -> Response {
        self.set_to_tag(tag);
        self
    }

    /// Adds a tag to To when it has none.
    pub fn set_to_tag(&mut self, tag: &str) {
        let Some(to) = self.headers.to() else { return };
        if to.tag().is_some() {
            return;
        }
        // The value as received plus `;tag=`: a parameter after an addr-spec without angle
        // brackets is a header parameter too (RFC 3261 §20), so appending is exact and cheaper
        // than writing the parsed value out again.
        let raw = self.headers.get_str(&HeaderName::To).unwrap_or_default();
        let mut v = String::with_capacity(raw.len() + 5 + tag.len());
        v.push_str(raw.trim_end());
        v.push_str(";tag=");
        v.push_str(tag);
        self.headers.set(HeaderName::To, v);
    }

    /// Builder-style header append.
    pub fn with_header(
        mut self,
        name: HeaderName,
        value: impl Into<crate::header::HeaderValue>,
    ) -> Response {
        self.headers.push(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &MediaType, body: impl Into<Bytes>) {
        self.headers
            .set_typed(HeaderName::ContentType, content_type);
        self.body = body.into();
    }

    /// Canonical serialisation with a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(estimate(&self.headers, &self.body));
        write_message(
            &mut out,
            format_args!("{} {} {}", self.version, self.status, self.reason),
            &self.headers,
            &self.body,
        );
        out
    }

    /// True for 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
}

impl Message {
    /// Parses one message (datagram rules, default limits); see [`crate::parse`].
    pub fn parse(data: &[u8]) -> Result<Message, crate::error::ParseError> {
        crate::parse::parse_message(data)
    }

    /// The header list.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Mutable header list.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Canonical serialisation with a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }
}

/// Forwards the common typed getters so `req.call_id()` works on messages directly.
macro_rules! forward_getters {
    ($t:ty) => {
        impl $t {
            /// Call-ID.
            pub fn call_id(&self) -> Option<&str> {
                self.headers().call_id()
            }
            /// CSeq.
            pub fn cseq(&self) -> Option<CSeq> {
                self.headers().cseq()
            }
            /// Topmost Via.
            pub fn top_via(&self) -> Option<Via> {
                self.headers().top_via()
            }
            /// All Vias, top first.
            pub fn vias(&self) -> Vec<Via> {
                self.headers().vias()
            }
            /// From.
            pub fn from(&self) -> Option<NameAddr> {
                self.headers().from()
            }
            /// To.
            pub fn to(&self) -> Option<NameAddr> {
                self.headers().to()
            }
            /// Contact values.
            pub fn contacts(&self) -> Vec<Contact> {
                self.headers().contacts()
            }
            /// Max-Forwards.
            pub fn max_forwards(&self) -> Option<u32> {
                self.headers().max_forwards()
            }
            /// Expires.
            pub fn expires(&self) -> Option<u32> {
                self.headers().expires()
            }
            /// Content-Type.
            pub fn content_type(&self) -> Option<MediaType> {
                self.headers().content_type()
            }
        }
    };
}

impl Request {
    /// The header list.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl Response {
    /// The header list.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

forward_getters!(Request);
forward_getters!(Response);
forward_getters!(Message);

impl fmt::Display for Request {
    /// The serialised message, lossy for non-UTF-8 bodies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    /// The serialised message, lossy for non-UTF-8 bodies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::{Host, SipUri};

    fn sample() -> Request {
        Request::new(
            Method::Invite,
            Uri::Sip(SipUri::parse("sip:bob@example.com").unwrap()),
        )
        .with_header(
            HeaderName::Via,
            "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2",
        )
        .with_header(HeaderName::Via, "SIP/2.0/UDP c.example.com;branch=z9hG4bK3")
        .with_header(HeaderName::From, "<sip:alice@example.com>;tag=a")
        .with_header(HeaderName::To, "<sip:bob@example.com>")
        .with_header(HeaderName::CallId, "c1@example.com")
        .with_header(HeaderName::CSeq, "1 INVITE")
        .with_header(HeaderName::ContentLength, "999")
    }

    #[test]
    fn restated_keeps_the_transaction_headers_and_the_to_tag_only() {
        let ok = Response::for_request(&sample(), 200, None)
            .with_to_tag("t1")
            .with_header(HeaderName::Contact, "<sip:bob@192.0.2.1>")
            .with_header(HeaderName::Date, "Sun, 22 Nov 2026 00:00:00 GMT");
        let r = ok.restated(500, Some("Database Unavailable"));
        assert_eq!((r.status, r.reason.as_str()), (500, "Database Unavailable"));
        let names: Vec<&HeaderName> = r.headers.iter().map(|h| &h.name).collect();
        assert_eq!(
            names,
            [
                &HeaderName::Via,
                &HeaderName::Via,
                &HeaderName::From,
                &HeaderName::To,
                &HeaderName::CallId,
                &HeaderName::CSeq
            ]
        );
        assert_eq!(
            r.to().and_then(|t| t.tag().map(str::to_owned)),
            Some("t1".into())
        );
        assert_eq!(ok.restated(503, None).reason, "Service Unavailable");
    }

    #[test]
    fn serializer_recomputes_content_length() {
        let mut r = sample();
        r.set_body(&MediaType::sdp(), Bytes::from_static(b"v=0\r\n"));
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(!text.contains("999"));
        assert!(text.ends_with("\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn response_for_request_copies_and_tags() {
        let r = sample();
        let resp = Response::for_request(&r, 180, None).with_to_tag("xyz");
        assert_eq!(resp.reason, "Ringing");
        assert_eq!(resp.vias().len(), 3);
        assert_eq!(resp.to().unwrap().tag(), Some("xyz"));
        assert_eq!(resp.call_id(), Some("c1@example.com"));
        assert_eq!(resp.cseq().unwrap().method, Method::Invite);
        assert!(resp.headers.get(&HeaderName::ContentLength).is_none());
    }

    #[test]
    fn hand_built_fields_cannot_break_framing() {
        let mut resp = Response::new(486);
        resp.reason = "Busy\r\nX-Injected: 1".into();
        resp.headers.push(HeaderName::from("Bad Name:\r\n"), "v");
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 486 Busy  X-Injected: 1\r\nBad-Name---: v\r\n"));
        let r = sample().with_header(HeaderName::Timestamp, "54");
        assert!(
            Response::for_request(&r, 100, None)
                .headers
                .contains(&HeaderName::Timestamp)
        );
        assert!(
            !Response::for_request(&r, 180, None)
                .headers
                .contains(&HeaderName::Timestamp)
        );
    }

    #[test]
    fn max_forwards_decrement() {
        let mut r = sample();
        assert_eq!(r.headers.decrement_max_forwards(), Some(70));
        assert_eq!(r.headers.decrement_max_forwards(), Some(69));
        assert_eq!(r.max_forwards(), Some(69));
        r.headers.set(HeaderName::MaxForwards, "0");
        assert_eq!(r.headers.decrement_max_forwards(), None);
    }

    #[test]
    fn to_tag_is_appended_to_the_value_as_received() {
        let mut r = sample();
        r.headers.set(HeaderName::To, "sip:bob@example.com;x=1");
        let mut resp = Response::for_request(&r, 200, None);
        resp.set_to_tag("abc");
        assert_eq!(
            resp.headers.get_str(&HeaderName::To),
            Some("sip:bob@example.com;x=1;tag=abc")
        );
        let to = resp.to().unwrap();
        assert_eq!(
            (to.tag(), to.params.value("x").as_deref()),
            (Some("abc"), Some("1"))
        );
        resp.set_to_tag("other");
        assert_eq!(
            resp.to().unwrap().tag(),
            Some("abc"),
            "an existing tag stays"
        );
        r.headers.set(
            HeaderName::To,
            "\"Bob, Jr.\" <sip:bob@example.com;transport=tcp> ",
        );
        let resp = Response::for_request(&r, 200, None).with_to_tag("t2");
        let to = resp.to().unwrap();
        assert_eq!(to.tag(), Some("t2"));
        assert_eq!(to.uri.to_string(), "sip:bob@example.com;transport=tcp");
        assert_eq!(to.display_name.as_deref(), Some("Bob, Jr."));
    }

    #[test]
    fn top_via_edit_keeps_the_rest_of_the_field_byte_for_byte() {
        let mut r = sample();
        r.headers.set(
            HeaderName::Via,
            "SIP/2.0/UDP a.example;branch=z9hG4bKa ,SIP/2.0/TCP  b.example:5070;branch=z9hG4bKb",
        );
        let mut top = r.top_via().unwrap();
        top.params.set("received", Some("192.0.2.1"));
        r.headers.set_top_via(&top);
        assert_eq!(
            r.headers.get_str(&HeaderName::Via),
            Some(
                "SIP/2.0/UDP a.example;branch=z9hG4bKa;received=192.0.2.1,SIP/2.0/TCP  b.example:5070;branch=z9hG4bKb"
            )
        );
        // The same edit through top_via_at, which parses the field once.
        let mut t = r.headers.top_via_at().unwrap();
        t.via.params.set("rport", Some("5062"));
        r.headers.set_top_via_at(&t);
        assert_eq!(
            r.headers.get_str(&HeaderName::Via),
            Some(
                "SIP/2.0/UDP a.example;branch=z9hG4bKa;received=192.0.2.1;rport=5062,SIP/2.0/TCP  b.example:5070;branch=z9hG4bKb"
            )
        );
        // A first value that does not parse is replaced with the whole field.
        r.headers
            .set(HeaderName::Via, "garbage, SIP/2.0/UDP c.example");
        r.headers.set_top_via(&t.via);
        assert_eq!(r.vias().len(), 1);
    }

    #[test]
    fn via_editing() {
        let mut r = sample();
        let mut top = r.top_via().unwrap();
        top.params.set("received", Some("192.0.2.9"));
        r.headers.set_top_via(&top);
        assert_eq!(r.vias().len(), 3);
        assert_eq!(r.top_via().unwrap().received(), Some("192.0.2.9"));
        r.headers.push_via(&Via::new(
            "TCP",
            Host::Domain("pbx.example.com".into()),
            Some(5060),
            "z9hG4bKnew",
        ));
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bKnew"));
        assert_eq!(r.headers.pop_via().unwrap().branch(), Some("z9hG4bKnew"));
        assert_eq!(r.headers.pop_via().unwrap().branch(), Some("z9hG4bK1"));
        assert_eq!(r.vias().len(), 2);
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK2"));
    }
}
