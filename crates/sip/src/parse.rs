//! The strict message parser and the salvage of a 400 answer for malformed requests.

use crate::error::ParseError;
use crate::grammar::{is_token, skip_ws};
use crate::header::{Header, HeaderName, HeaderValue, Headers};
use crate::message::{Message, Request, Response, Version, reason_phrase};
use crate::method::Method;
use crate::uri::Uri;
use crate::values::{parse_content_length, validate};
use bytes::Bytes;

/// Size limits applied while parsing; defaults suit a PBX (UDP messages stay below 64 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, header section plus body.
    pub max_message_size: usize,
    /// Number of header fields.
    pub max_headers: usize,
    /// Length of one physical header line (without CRLF).
    pub max_line_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 256,
            max_line_length: 8_192,
        }
    }
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// UDP: Content-Length optional (body = rest of datagram when absent); octets beyond
    /// Content-Length are ignored (RFC 4475 §3.1.1.8).
    Datagram,
    /// Stream: Content-Length required; the input must be exactly one message.
    Stream,
}

/// The parsed start line and header section, before the body is attached.
pub(crate) struct Head {
    start: Start,
    headers: Headers,
    /// Declared Content-Length, if present.
    pub content_length: Option<usize>,
    /// Bytes of the start line and header section including the empty line.
    pub head_len: usize,
}

enum Start {
    Request(Method, Uri, Version),
    Response(Version, u16, String),
}

/// Parses one message from a datagram with default limits (the strict entry point used by
/// `denwa sip lint`).
pub fn parse_message(data: &[u8]) -> Result<Message, ParseError> {
    parse_bytes(
        Bytes::copy_from_slice(data),
        BodyMode::Datagram,
        &Limits::default(),
    )
}

/// Parses one message from a shared buffer without copying it; header values become slices of
/// `buf`.
pub fn parse_bytes(buf: Bytes, mode: BodyMode, limits: &Limits) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_size {
        return Err(ParseError::MessageTooLarge {
            limit: limits.max_message_size,
        });
    }
    let head = parse_head(&buf, limits)?;
    let available = buf.len() - head.head_len;
    let body_len = match (head.content_length, mode) {
        (Some(n), _) if n > available => {
            return Err(ParseError::BodyTooShort {
                declared: n,
                available,
            });
        }
        (Some(n), _) => n,
        (None, BodyMode::Datagram) => available,
        (None, BodyMode::Stream) => return Err(ParseError::MissingContentLength),
    };
    let body = buf.slice(head.head_len..head.head_len + body_len);
    Ok(head.into_message(body))
}

impl Head {
    pub(crate) fn into_message(self, body: Bytes) -> Message {
        match self.start {
            Start::Request(method, uri, version) => Message::Request(Request {
                method,
                uri,
                version,
                headers: self.headers,
                body,
            }),
            Start::Response(version, status, reason) => Message::Response(Response {
                version,
                status,
                reason,
                headers: self.headers,
                body,
            }),
        }
    }
}

/// Number of leading CRLFs (RFC 3261 §7.5: ignore empty lines before the start line).
fn leading_crlfs(b: &[u8]) -> usize {
    let mut i = 0;
    while b.len() >= i + 2 && &b[i..i + 2] == b"\r\n" {
        i += 2;
    }
    i
}

/// Parses start line and headers of `buf` (which may hold more than one message).
pub(crate) fn parse_head(buf: &Bytes, limits: &Limits) -> Result<Head, ParseError> {
    let skip = leading_crlfs(buf);
    let data = &buf[skip..];
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let end = memchr::memmem::find(data, b"\r\n\r\n").ok_or(ParseError::Incomplete)?;
    // Header text including the CRLF of the last line.
    let text_bytes = &data[..end + 2];
    let text = std::str::from_utf8(text_bytes).map_err(|_| ParseError::NotUtf8)?;
    let head_len = skip + end + 4;

    // One branch-free (vectorisable) pass decides whether any header needs the careful
    // control-character check; almost no message does.
    let has_controls = text_bytes.iter().fold(false, |acc, &b| {
        acc | ((b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f)
    });
    // Physical lines, produced lazily; CR and LF may only appear as CRLF.
    let tb = text.as_bytes();
    let mut ends = memchr::memchr2_iter(b'\r', b'\n', tb);
    let mut ls = 0;
    let max_line = limits.max_line_length;
    let mut next_line = move || -> Result<Option<(usize, usize)>, ParseError> {
        for i in ends.by_ref() {
            if tb[i] == b'\r' {
                if tb.get(i + 1) != Some(&b'\n') {
                    return Err(ParseError::BareLineEnd);
                }
                if i - ls > max_line {
                    return Err(ParseError::LineTooLong { limit: max_line });
                }
                let line = (ls, i);
                ls = i + 2;
                return Ok(Some(line));
            } else if i == 0 || tb[i - 1] != b'\r' {
                return Err(ParseError::BareLineEnd);
            }
        }
        Ok(None)
    };
    let (s0, e0) = next_line()?.ok_or(ParseError::Empty)?;
    let start = parse_start_line(&text[s0..e0])?;

    let mut headers = Headers::with_capacity(16);
    let mut content_length = None;
    let mut cur: Option<(usize, usize, usize, usize, Option<String>)> = None; // name, value, folded
    let mut line_no = 1;
    let base = skip; // offset of `text` inside `buf`
    let finish = |cur: Option<(usize, usize, usize, usize, Option<String>)>,
                  headers: &mut Headers,
                  content_length: &mut Option<usize>|
     -> Result<(), ParseError> {
        let Some((ns, ne, vs, ve, folded)) = cur else {
            return Ok(());
        };
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let name = HeaderName::from_shared(buf, base + ns, base + ne);
        let vstr = folded.as_deref().unwrap_or(&text[vs..ve]);
        if has_controls && !controls_ok(vstr.as_bytes()) {
            return Err(ParseError::Header {
                name,
                reason: "control character outside a quoted-pair",
            });
        }
        if name == HeaderName::ContentLength {
            if content_length.is_some() {
                return Err(ParseError::MultipleContentLength);
            }
            *content_length =
                Some(parse_content_length(vstr).map_err(|e| ParseError::ContentLength(e.0))?);
        } else if name.is_known() {
            validate(&name, vstr).map_err(|e| ParseError::Header {
                name: name.clone(),
                reason: e.0,
            })?;
        }
        let value = match folded {
            Some(f) => HeaderValue::from_checked(Bytes::from(f)),
            None => HeaderValue::from_checked(buf.slice(base + vs..base + ve)),
        };
        headers.push_header(Header { name, value });
        Ok(())
    };
    while let Some((ls, le)) = next_line()? {
        line_no += 1;
        let line = &tb[ls..le];
        if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
            // Continuation of the previous header (line folding): join with one SP.
            let Some(c) = cur.as_mut() else {
                return Err(ParseError::HeaderLine {
                    line: line_no,
                    reason: "continuation line before any header",
                });
            };
            let piece = text[ls..le].trim_matches([' ', '\t']);
            let f = c.4.get_or_insert_with(|| text[c.2..c.3].to_string());
            if !piece.is_empty() {
                if !f.is_empty() {
                    f.push(' ');
                }
                f.push_str(piece);
            }
            continue;
        }
        finish(cur.take(), &mut headers, &mut content_length)?;
        let colon = memchr::memchr(b':', line).ok_or(ParseError::HeaderLine {
            line: line_no,
            reason: "missing ':'",
        })?;
        let mut ne = colon;
        while ne > 0 && (line[ne - 1] == b' ' || line[ne - 1] == b'\t') {
            ne -= 1;
        }
        if ne == 0 || !line[..ne].iter().all(|&c| is_token(c)) {
            return Err(ParseError::HeaderLine {
                line: line_no,
                reason: "header name is not a token",
            });
        }
        let vs = skip_ws(line, colon + 1);
        let mut ve = line.len();
        while ve > vs && (line[ve - 1] == b' ' || line[ve - 1] == b'\t') {
            ve -= 1;
        }
        cur = Some((ls, ls + ne, ls + vs, ls + ve, None));
    }
    finish(cur.take(), &mut headers, &mut content_length)?;
    Ok(Head {
        start,
        headers,
        content_length,
        head_len,
    })
}

/// Header text may hold control characters only as quoted-pairs inside quoted strings
/// (RFC 3261 §25: TEXT-UTF8char excludes CTLs; quoted-pair admits them after a backslash).
fn controls_ok(v: &[u8]) -> bool {
    // Fast path: almost every value has no control character at all.
    if !v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return true;
    }
    let mut in_quote = false;
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'"' => in_quote = !in_quote,
            b'\\' if in_quote => i += 1,
            b if (b < 0x20 && b != b'\t') || b == 0x7f => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

/// True when a start line begins like a status line.
fn starts_with_sip(b: &[u8]) -> bool {
    b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

fn parse_version(s: &str) -> Option<Version> {
    let rest = s
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(s.get(4..))?;
    let (maj, min) = rest.split_once('.')?;
    let num = |t: &str| -> Option<u32> {
        if t.is_empty() || t.len() > 9 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    Some(Version {
        major: num(maj)?,
        minor: num(min)?,
    })
}

fn parse_start_line(line: &str) -> Result<Start, ParseError> {
    if starts_with_sip(line.as_bytes()) {
        let mut parts = line.splitn(3, ' ');
        let v = parts.next().unwrap_or("");
        let code = parts
            .next()
            .ok_or(ParseError::StatusLine("missing status code"))?;
        let reason = parts
            .next()
            .ok_or(ParseError::StatusLine("missing SP after status code"))?;
        let version = parse_version(v).ok_or(ParseError::StatusLine("bad SIP-Version"))?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusLine(
                "status code must be exactly 3 digits",
            ));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ParseError::StatusLine("bad status code"))?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::StatusLine("status code outside 100-699"));
        }
        if reason
            .bytes()
            .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(ParseError::StatusLine("control character in reason phrase"));
        }
        return Ok(Start::Response(version, status, reason.to_string()));
    }
    if line.contains('\t') {
        return Err(ParseError::RequestLine("tab in request line"));
    }
    if line.ends_with(' ') {
        return Err(ParseError::RequestLine(
            "trailing whitespace after SIP-Version",
        ));
    }
    if line.contains("  ") || line.starts_with(' ') {
        return Err(ParseError::RequestLine("more than one SP between elements"));
    }
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() > 3 {
        return Err(ParseError::RequestLine("whitespace inside Request-URI"));
    }
    let [m, u, v] = parts[..] else {
        return Err(ParseError::RequestLine(
            "expected Method SP Request-URI SP SIP-Version",
        ));
    };
    let method = Method::parse(m).map_err(|_| ParseError::RequestLine("method is not a token"))?;
    if u.starts_with('<') {
        return Err(ParseError::RequestUri("must not be enclosed in <>"));
    }
    let uri = Uri::parse(u).map_err(|e| ParseError::RequestUri(e.0))?;
    let version = parse_version(v).ok_or(ParseError::RequestLine("bad SIP-Version"))?;
    Ok(Start::Request(method, uri, version))
}

/// Builds the bytes of a `400 Bad Request` answering the malformed request `raw`, when its start
/// line is a request line and Via, From, To, Call-ID and CSeq can be read from it (RFC 3261 §8.2.6
/// needs them to route and match the response). The fault is reported in a Warning header.
/// Returns `None` for responses and when the request cannot be answered. `rng` draws the To tag
/// (the caller owns the random source: this crate reads none).
pub fn error_response(
    raw: &[u8],
    err: &ParseError,
    rng: &mut (impl rand::Rng + ?Sized),
) -> Option<Vec<u8>> {
    let skip = leading_crlfs(raw);
    let data = &raw[skip..];
    let head_end = memchr::memmem::find(data, b"\r\n\r\n").map_or(data.len(), |e| e + 2);
    let text = String::from_utf8_lossy(&data[..head_end]);
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    if starts_with_sip(first.as_bytes()) {
        return None;
    }
    // Unfold: collect (name, value) with continuation lines joined.
    let mut fields: Vec<(HeaderName, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        fields.push((
            HeaderName::from_bytes(n.trim().as_bytes()),
            v.trim().to_string(),
        ));
    }
    let wanted = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ];
    let mut resp = Response::new(400);
    for w in &wanted {
        if !fields.iter().any(|(n, v)| n == w && !v.is_empty()) {
            return None;
        }
    }
    for (n, v) in &fields {
        if wanted.contains(n) && !v.contains(['\r', '\n']) {
            resp.headers.push(n.clone(), v.as_str());
        }
    }
    // RFC 3261 §8.2.6.2: a final response carries a To tag.
    if resp.headers.to().is_some_and(|t| t.tag().is_none()) {
        resp.set_to_tag(&crate::ids::generate_tag_with(rng));
    }
    let warn = err.to_string().replace(['"', '\\'], "'");
    resp.headers
        .push(HeaderName::Warning, format!("399 denwa \"{warn}\""));
    resp.reason = reason_phrase(400).to_string();
    Some(resp.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
X-Custom: Some  Value\r\n\
Contact: <sip:alice@pc33.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn parses_basic_invite() {
        let m = parse_message(INVITE.as_bytes()).unwrap();
        let Message::Request(r) = &m else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.call_id(), Some("a84b4c76e66710@pc33.example.com"));
        assert_eq!(r.cseq().unwrap().seq, 314159);
        assert_eq!(r.body.as_ref(), b"v=0\n");
        assert_eq!(
            r.headers.get_str(&HeaderName::from("x-custom")),
            Some("Some  Value")
        );
        assert_eq!(r.from().unwrap().display_name.as_deref(), Some("Alice"));
    }

    #[test]
    fn folding_is_joined_with_one_space() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n   two\r\n\tthree\r\nCSeq: 1\r\n OPTIONS\r\n\r\n";
        let Message::Request(r) = parse_message(msg.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            r.headers.get_str(&HeaderName::Subject),
            Some("one two three")
        );
        assert_eq!(r.cseq().unwrap().seq, 1);
    }

    #[test]
    fn rejects_with_named_faults() {
        let bad = |m: &str| parse_message(m.as_bytes()).unwrap_err();
        assert_eq!(bad(""), ParseError::Empty);
        assert_eq!(
            bad("OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n"),
            ParseError::Incomplete
        );
        assert_eq!(
            bad("OPTIONS sip:a@b SIP/2.0\nCSeq: 1 OPTIONS\r\n\r\n"),
            ParseError::BareLineEnd
        );
        assert!(matches!(
            bad("OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n"),
            ParseError::HeaderLine { line: 2, .. }
        ));
        assert!(matches!(
            bad("SIP/2.0 1000 x\r\n\r\n"),
            ParseError::StatusLine(_)
        ));
        assert!(matches!(
            bad("SIP/2.0 099 x\r\n\r\n"),
            ParseError::StatusLine(_)
        ));
        assert!(matches!(
            bad("OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nab"),
            ParseError::BodyTooShort {
                declared: 5,
                available: 2
            }
        ));
        let big = Limits {
            max_headers: 1,
            ..Limits::default()
        };
        let two = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\n\r\n");
        assert_eq!(
            parse_bytes(two, BodyMode::Datagram, &big).unwrap_err(),
            ParseError::TooManyHeaders { limit: 1 }
        );
        let long = Limits {
            max_line_length: 10,
            ..Limits::default()
        };
        let l = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n");
        assert_eq!(
            parse_bytes(l, BodyMode::Datagram, &long).unwrap_err(),
            ParseError::LineTooLong { limit: 10 }
        );
        let s = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n");
        assert_eq!(
            parse_bytes(s, BodyMode::Stream, &Limits::default()).unwrap_err(),
            ParseError::MissingContentLength
        );
    }

    #[test]
    fn control_characters_only_in_quoted_pairs() {
        let ok = "OPTIONS sip:a@b SIP/2.0\r\nTo: \"a\\\0b\" <sip:a@b>\r\n\r\n";
        assert!(parse_message(ok.as_bytes()).is_ok());
        let raw_nul = "OPTIONS sip:a@b SIP/2.0\r\nX-A: a\0b\r\n\r\n";
        assert!(matches!(
            parse_message(raw_nul.as_bytes()),
            Err(ParseError::Header {
                reason: "control character outside a quoted-pair",
                ..
            })
        ));
        let quoted_nul = "OPTIONS sip:a@b SIP/2.0\r\nTo: \"a\0b\" <sip:a@b>\r\n\r\n";
        assert!(parse_message(quoted_nul.as_bytes()).is_err());
        assert!(controls_ok(b"tab\tis fine"));
    }

    #[test]
    fn error_response_salvages_headers() {
        let raw = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        let err = parse_message(raw.as_bytes()).unwrap_err();
        let resp = error_response(raw.as_bytes(), &err, &mut rand::thread_rng()).unwrap();
        let Message::Response(r) = parse_message(&resp).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 400);
        assert!(r.to().unwrap().tag().is_some());
        assert_eq!(r.call_id(), Some("a84b4c76e66710@pc33.example.com"));
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert!(
            r.headers
                .get_str(&HeaderName::Warning)
                .unwrap()
                .contains("Content-Length 40")
        );
        assert!(error_response(b"SIP/2.0 200 OK\r\n\r\n", &err, &mut rand::thread_rng()).is_none());
        assert!(
            error_response(
                b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
                &err,
                &mut rand::thread_rng()
            )
            .is_none()
        );
    }
}
