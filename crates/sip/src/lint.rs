//! `denwa sip lint`: decode one raw message file into a report (human `Display`, or JSON via serde).

use crate::check::{CheckConfig, check_request};
use crate::message::Message;
use crate::parse::parse_message;
use serde::Serialize;
use std::fmt;

/// What `denwa sip lint` prints for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintReport {
    /// True when the message parsed.
    pub valid: bool,
    /// `request` or `response` when it parsed.
    pub kind: Option<&'static str>,
    /// The decoded start line.
    pub start_line: Option<String>,
    /// Request method.
    pub method: Option<String>,
    /// Request-URI.
    pub request_uri: Option<String>,
    /// Response status code.
    pub status: Option<u16>,
    /// Call-ID.
    pub call_id: Option<String>,
    /// CSeq as `number METHOD`.
    pub cseq: Option<String>,
    /// Branch of the topmost Via.
    pub top_via_branch: Option<String>,
    /// From URI.
    pub from: Option<String>,
    /// From tag.
    pub from_tag: Option<String>,
    /// To URI.
    pub to: Option<String>,
    /// To tag.
    pub to_tag: Option<String>,
    /// Number of header fields.
    pub header_count: usize,
    /// Body length in bytes.
    pub body_length: usize,
    /// For requests that parse: what a UAS would answer under the generic checks, if not accepted.
    pub server_would_answer: Option<String>,
    /// The parse error, when invalid.
    pub error: Option<String>,
}

/// Turns bare LF line ends into CRLF in the header section only (files edited by hand often have
/// LF ends; the body is left byte-exact).
pub fn normalize_line_ends(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut i = 0;
    let mut line_start = true;
    // Blank lines before the start line are not the end of the header section.
    let mut seen_content = false;
    while i < data.len() {
        let b = data[i];
        if b == b'\n' {
            if !out.ends_with(b"\r") {
                out.push(b'\r');
            }
            out.push(b'\n');
            i += 1;
            if line_start && seen_content {
                // Empty line: the header section ends here.
                out.extend_from_slice(&data[i..]);
                return out;
            }
            line_start = true;
            continue;
        }
        if !(b == b'\r' && data.get(i + 1) == Some(&b'\n')) {
            line_start = false;
            seen_content = true;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Decodes one file's bytes.
pub fn lint(data: &[u8]) -> LintReport {
    let norm = normalize_line_ends(data);
    let mut r = LintReport {
        valid: false,
        kind: None,
        start_line: None,
        method: None,
        request_uri: None,
        status: None,
        call_id: None,
        cseq: None,
        top_via_branch: None,
        from: None,
        from_tag: None,
        to: None,
        to_tag: None,
        header_count: 0,
        body_length: 0,
        server_would_answer: None,
        error: None,
    };
    let msg = match parse_message(&norm) {
        Ok(m) => m,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.valid = true;
    let h = msg.headers();
    r.call_id = h.call_id().map(str::to_string);
    r.cseq = h.cseq().map(|c| c.to_string());
    r.top_via_branch = h.top_via().and_then(|v| v.branch().map(str::to_string));
    if let Some(f) = h.from() {
        r.from = Some(f.uri.to_string());
        r.from_tag = f.tag().map(str::to_string);
    }
    if let Some(t) = h.to() {
        r.to = Some(t.uri.to_string());
        r.to_tag = t.tag().map(str::to_string);
    }
    r.header_count = h.len();
    r.body_length = msg.body().len();
    match &msg {
        Message::Request(req) => {
            r.kind = Some("request");
            r.start_line = Some(format!("{} {} {}", req.method, req.uri, req.version));
            r.method = Some(req.method.to_string());
            r.request_uri = Some(req.uri.to_string());
            if let Err(rej) = check_request(req, &CheckConfig::default()) {
                r.server_would_answer = Some(rej.to_string());
            }
        }
        Message::Response(resp) => {
            r.kind = Some("response");
            r.start_line = Some(format!("{} {} {}", resp.version, resp.status, resp.reason));
            r.status = Some(resp.status);
        }
    }
    r
}

impl fmt::Display for LintReport {
    /// Human output: `valid` plus key fields, or `invalid: <error>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.valid {
            return write!(
                f,
                "invalid: {}",
                self.error.as_deref().unwrap_or("unknown error")
            );
        }
        writeln!(
            f,
            "valid {}: {}",
            self.kind.unwrap_or("message"),
            self.start_line.as_deref().unwrap_or("")
        )?;
        let fields = [
            ("Call-ID", self.call_id.as_deref()),
            ("CSeq", self.cseq.as_deref()),
            ("Via branch", self.top_via_branch.as_deref()),
            ("From", self.from.as_deref()),
            ("From tag", self.from_tag.as_deref()),
            ("To", self.to.as_deref()),
            ("To tag", self.to_tag.as_deref()),
        ];
        for (name, value) in fields {
            writeln!(f, "  {name}: {}", value.unwrap_or("-"))?;
        }
        write!(
            f,
            "  headers: {}, body: {} bytes",
            self.header_count, self.body_length
        )?;
        if let Some(a) = &self.server_would_answer {
            write!(f, "\n  note: a server would answer {a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lf_files_are_accepted_and_body_kept() {
        let file = b"OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK9\nFrom: <sip:x@h>;tag=f\nTo: <sip:a@example.com>\nCall-ID: lf1\nCSeq: 2 OPTIONS\nContent-Length: 4\n\na\nb\n";
        let norm = normalize_line_ends(file);
        assert!(norm.ends_with(b"\r\n\r\na\nb\n"));
        let lead = normalize_line_ends(b"\n\nOPTIONS sip:a@b SIP/2.0\nCSeq: 1 OPTIONS\n\nbody\n");
        assert_eq!(
            lead,
            b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\nbody\n"
        );
        let r = lint(file);
        assert!(r.valid, "{r}");
        assert_eq!(r.call_id.as_deref(), Some("lf1"));
        assert_eq!(r.body_length, 4);
        assert_eq!(r.from_tag.as_deref(), Some("f"));
        let text = r.to_string();
        assert!(text.starts_with("valid request: OPTIONS sip:a@example.com SIP/2.0"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["top_via_branch"], "z9hG4bK9");
    }

    #[test]
    fn errors_are_reported() {
        let r = lint(b"INVITE  sip:a@b SIP/2.0\r\n\r\n");
        assert!(!r.valid);
        assert!(r.to_string().starts_with("invalid: invalid request line"));
        assert!(
            serde_json::to_string(&r)
                .unwrap()
                .contains("\"valid\":false")
        );
    }
}
