//! Message framing for datagram (UDP) and stream (TCP/TLS) transports, with RFC 5626 CRLF
//! keep-alives.

use crate::error::ParseError;
use crate::message::Message;
use crate::parse::{BodyMode, Limits, parse_bytes};
use bytes::{Buf, Bytes, BytesMut};

/// What one datagram held.
// Boxing the message would cost an allocation per datagram for a value that is moved once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram {
    /// A SIP message.
    Message(Message),
    /// Only CR/LF octets: a keep-alive (RFC 5626 §3.5.1 / §4.4.1), nothing to answer.
    KeepAlive,
}

/// Decodes one UDP datagram: one message, octets beyond Content-Length ignored (RFC 4475 §3.1.1.8).
pub fn decode_datagram(data: Bytes, limits: &Limits) -> Result<Datagram, ParseError> {
    if !data.is_empty() && data.iter().all(|&b| b == b'\r' || b == b'\n') {
        return Ok(Datagram::KeepAlive);
    }
    parse_bytes(data, BodyMode::Datagram, limits).map(Datagram::Message)
}

/// True when a datagram is a STUN message (RFC 5389 header: top two bits zero, length matching,
/// magic cookie), as RFC 5626 §4.4.2 keep-alives send on the SIP port. SIP text never matches.
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20
        && data[0] & 0xc0 == 0
        && data[4..8] == [0x21, 0x12, 0xa4, 0x42]
        && usize::from(u16::from_be_bytes([data[2], data[3]])) == data.len() - 20
}

/// What a stream produced.
#[allow(clippy::large_enum_variant)] // as for Datagram: moved once, not worth a Box
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A complete message.
    Message(Message),
    /// CRLFCRLF keep-alive ping: answer with [`PONG`].
    Ping,
    /// A lone CRLF: the pong to a ping we sent.
    Pong,
}

/// The bytes of an RFC 5626 pong.
pub const PONG: &[u8] = b"\r\n";
/// The bytes of an RFC 5626 ping.
pub const PING: &[u8] = b"\r\n\r\n";

/// Splits a byte stream into messages and keep-alives. Push received bytes, then call
/// [`StreamFramer::poll`] until it returns `None`. After an error the stream cannot be resynchronised:
/// the caller closes the connection (RFC 3261 §18.3); further polls return `None`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// Where the search for the end of the header section resumes.
    scanned: usize,
    /// The last event was a Pong for a CRLF that ended the buffer: a following CRLF completes a
    /// ping that arrived split in two.
    half_ping: bool,
    failed: bool,
}

impl StreamFramer {
    /// A framer with the given limits.
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            scanned: 0,
            half_ping: false,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True once a framing error was returned.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The next event, `None` when more bytes are needed (or after an error).
    pub fn poll(&mut self) -> Option<Result<StreamEvent, ParseError>> {
        if self.failed {
            return None;
        }
        match self.next_event() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                self.buf.clear();
                Some(Err(e))
            }
        }
    }

    fn next_event(&mut self) -> Result<Option<StreamEvent>, ParseError> {
        let b = &self.buf[..];
        if b.starts_with(b"\r\n") {
            if self.half_ping {
                self.half_ping = false;
                self.buf.advance(2);
                return Ok(Some(StreamEvent::Ping));
            }
            if b.starts_with(PING) {
                self.buf.advance(4);
                return Ok(Some(StreamEvent::Ping));
            }
            if b.len() == 3 && b[2] == b'\r' {
                return Ok(None);
            }
            self.half_ping = b.len() == 2;
            self.buf.advance(2);
            return Ok(Some(StreamEvent::Pong));
        }
        if b.is_empty() || b == b"\r" {
            return Ok(None);
        }
        self.half_ping = false;
        let from = self.scanned.saturating_sub(3);
        let Some(end) = memchr::memmem::find(&b[from..], b"\r\n\r\n").map(|e| e + from) else {
            self.scanned = b.len();
            if b.len() > self.limits.max_message_size {
                return Err(ParseError::MessageTooLarge {
                    limit: self.limits.max_message_size,
                });
            }
            let last_line = memchr::memrchr(b'\n', b).map_or(b.len(), |i| b.len() - i - 1);
            if last_line > self.limits.max_line_length {
                return Err(ParseError::LineTooLong {
                    limit: self.limits.max_line_length,
                });
            }
            return Ok(None);
        };
        let head_len = end + 4;
        let cl = content_length(&b[..end + 2])?.ok_or(ParseError::MissingContentLength)?;
        let total = head_len
            .checked_add(cl)
            .ok_or(ParseError::ContentLength("too large"))?;
        if total > self.limits.max_message_size {
            return Err(ParseError::MessageTooLarge {
                limit: self.limits.max_message_size,
            });
        }
        if b.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        let msg = self.buf.split_to(total).freeze();
        parse_bytes(msg, BodyMode::Stream, &self.limits).map(|m| Some(StreamEvent::Message(m)))
    }
}

/// Finds Content-Length in a header section (cheap scan before the full parse).
fn content_length(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    let mut lines = head.split(|&c| c == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        if found.is_some() {
            return Err(ParseError::MultipleContentLength);
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if !next.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                break;
            }
            value.push(b' ');
            value.extend_from_slice(next.strip_suffix(b"\r").unwrap_or(next));
            lines.next();
        }
        let text =
            std::str::from_utf8(&value).map_err(|_| ParseError::ContentLength("not text"))?;
        let n = crate::values::parse_content_length(text)
            .map_err(|e| ParseError::ContentLength(e.0))?;
        found = Some(n);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 3\r\n\r\nabc";

    fn drain(f: &mut StreamFramer) -> Vec<Result<StreamEvent, ParseError>> {
        std::iter::from_fn(|| f.poll()).collect()
    }

    #[test]
    fn datagram_keepalive_and_message() {
        let l = Limits::default();
        assert_eq!(
            decode_datagram(Bytes::from_static(b"\r\n\r\n"), &l),
            Ok(Datagram::KeepAlive)
        );
        let Ok(Datagram::Message(m)) = decode_datagram(Bytes::from_static(MSG), &l) else {
            panic!()
        };
        assert_eq!(m.body().as_ref(), b"abc");
    }

    #[test]
    fn stun_detection() {
        let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        binding.extend_from_slice(&[7; 12]);
        assert!(is_stun(&binding));
        binding.push(0);
        assert!(!is_stun(&binding));
        assert!(!is_stun(MSG));
        assert!(!is_stun(b"\r\n\r\n"));
    }

    #[test]
    fn stream_whole_and_back_to_back() {
        let mut f = StreamFramer::new(Limits::default());
        let mut data = MSG.to_vec();
        data.extend_from_slice(PING);
        data.extend_from_slice(MSG);
        f.push(&data);
        let ev = drain(&mut f);
        assert_eq!(ev.len(), 3);
        assert!(matches!(ev[0], Ok(StreamEvent::Message(_))));
        assert_eq!(ev[1], Ok(StreamEvent::Ping));
        assert!(matches!(ev[2], Ok(StreamEvent::Message(_))));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn stream_split_at_every_byte() {
        for cut in 0..=MSG.len() {
            let mut f = StreamFramer::new(Limits::default());
            f.push(&MSG[..cut]);
            let mut ev = drain(&mut f);
            f.push(&MSG[cut..]);
            ev.extend(drain(&mut f));
            assert_eq!(ev.len(), 1, "cut at {cut}");
            let Ok(StreamEvent::Message(m)) = &ev[0] else {
                panic!("cut at {cut}: {ev:?}")
            };
            assert_eq!(m.call_id(), Some("c1"));
        }
    }

    #[test]
    fn stream_one_byte_at_a_time() {
        let mut f = StreamFramer::new(Limits::default());
        let mut ev = Vec::new();
        for b in MSG.iter().chain(MSG) {
            f.push(&[*b]);
            ev.extend(drain(&mut f));
        }
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(e, Ok(StreamEvent::Message(_)))));
    }

    #[test]
    fn keepalives() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n\r\n");
        assert_eq!(drain(&mut f), [Ok(StreamEvent::Ping)]);
        f.push(b"\r\n");
        assert_eq!(drain(&mut f), [Ok(StreamEvent::Pong)]);
        f.push(b"x");
        f.push(b"");
        // A pong followed by a message start is not a ping.
        let mut g = StreamFramer::new(Limits::default());
        g.push(b"\r\nOPTIONS");
        assert_eq!(drain(&mut g), [Ok(StreamEvent::Pong)]);
        // A ping split across two reads still counts as a ping.
        let mut h = StreamFramer::new(Limits::default());
        h.push(b"\r\n");
        let mut ev = drain(&mut h);
        h.push(b"\r\n");
        ev.extend(drain(&mut h));
        assert_eq!(ev.last(), Some(&Ok(StreamEvent::Ping)));
    }

    #[test]
    fn stream_errors() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n");
        assert_eq!(drain(&mut f), [Err(ParseError::MissingContentLength)]);
        assert!(f.failed());
        f.push(MSG);
        assert!(f.poll().is_none());

        let mut g = StreamFramer::new(Limits::default());
        g.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(drain(&mut g), [Err(ParseError::MultipleContentLength)]);

        let small = Limits {
            max_message_size: 64,
            ..Limits::default()
        };
        let mut h = StreamFramer::new(small);
        h.push(MSG);
        assert_eq!(
            drain(&mut h),
            [Err(ParseError::MessageTooLarge { limit: 64 })]
        );

        let short = Limits {
            max_line_length: 16,
            ..Limits::default()
        };
        let mut k = StreamFramer::new(short);
        k.push(b"OPTIONS sip:a@example.com SIP/2.0");
        assert_eq!(drain(&mut k), [Err(ParseError::LineTooLong { limit: 16 })]);

        // clerr over TCP: wait for more data, nothing is emitted.
        let mut w = StreamFramer::new(Limits::default());
        w.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 9999\r\n\r\nabc");
        assert!(drain(&mut w).is_empty());
    }
}
