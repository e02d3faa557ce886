//! Error types of the message layer.

use crate::header::HeaderName;

/// A header value or URI that does not match its grammar; the text names the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

impl From<&'static str> for InvalidValue {
    fn from(s: &'static str) -> Self {
        InvalidValue(s)
    }
}

/// Why a message could not be parsed; each variant names the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No bytes, or only whitespace where a start line was expected.
    #[error("empty message")]
    Empty,
    /// The header section is not terminated by an empty line (CRLF CRLF).
    #[error("end of header section (empty line) not found")]
    Incomplete,
    /// The message exceeds the configured size limit.
    #[error("message larger than the limit of {limit} bytes")]
    MessageTooLarge {
        /// Configured limit in bytes.
        limit: usize,
    },
    /// More header fields than the configured limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// Configured limit.
        limit: usize,
    },
    /// A header line longer than the configured limit.
    #[error("header line longer than {limit} bytes")]
    LineTooLong {
        /// Configured limit in bytes.
        limit: usize,
    },
    /// The header section is not valid UTF-8 (RFC 3261 requires UTF-8 text).
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// A CR or LF in the header section that is not part of a CRLF line end.
    #[error("bare CR or LF in the header section (lines must end with CRLF)")]
    BareLineEnd,
    /// The request line is malformed.
    #[error("invalid request line: {0}")]
    RequestLine(&'static str),
    /// The Request-URI is malformed.
    #[error("invalid Request-URI: {0}")]
    RequestUri(&'static str),
    /// The status line of a response is malformed.
    #[error("invalid status line: {0}")]
    StatusLine(&'static str),
    /// A header line without a valid name and colon.
    #[error("invalid header line {line}: {reason}")]
    HeaderLine {
        /// 1-based line number in the message.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A known header whose value does not match its grammar.
    #[error("invalid {name} header: {reason}")]
    Header {
        /// The header concerned.
        name: HeaderName,
        /// What is wrong.
        reason: &'static str,
    },
    /// More than one Content-Length header field (RFC 4475 §3.3.9).
    #[error("multiple Content-Length header fields")]
    MultipleContentLength,
    /// Content-Length is not a non-negative integer.
    #[error("invalid Content-Length: {0}")]
    ContentLength(&'static str),
    /// Content-Length is larger than the body present.
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    BodyTooShort {
        /// Declared Content-Length.
        declared: usize,
        /// Bytes actually present after the header section.
        available: usize,
    },
    /// A stream transport message without Content-Length (RFC 3261 §18.3).
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
}
