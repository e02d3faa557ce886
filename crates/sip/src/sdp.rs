//! A small SDP (RFC 4566 / RFC 3264) model for the B2BUA: rewrite connection addresses and media
//! ports, read directions, rtpmap/fmtp and rtcp. Every line is kept as written and in order, so
//! lines this module does not interpret come out byte-exact (output line ends are CRLF).

use std::fmt;
use std::net::IpAddr;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The first line is not `v=0`.
    #[error("SDP must start with v=0")]
    NoVersion,
    /// A line is not `<letter>=<value>`.
    #[error("malformed SDP line {0}")]
    BadLine(usize),
    /// An m= line that does not parse.
    #[error("malformed m= line {0}")]
    BadMedia(usize),
}

/// One `<type>=<value>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The type letter (`v`, `o`, `c`, `a`, ...).
    pub kind: char,
    /// Everything after `=`, as written.
    pub value: String,
}

impl Line {
    fn attr(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != 'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (self.value.as_str(), None),
        })
    }
}

/// Media direction (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(a: &str) -> Option<Direction> {
        Some(match a {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction the other side should answer with (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// A `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IN`.
    pub nettype: String,
    /// `IP4` or `IP6`.
    pub addrtype: String,
    /// The address as written (may carry `/ttl` for multicast).
    pub address: String,
}

impl Connection {
    fn parse(v: &str) -> Option<Connection> {
        let mut it = v.split(' ');
        let (Some(n), Some(t), Some(a), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return None;
        };
        Some(Connection {
            nettype: n.into(),
            addrtype: t.into(),
            address: a.into(),
        })
    }

    /// The address as an IP, if it is a literal unicast address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
}

fn connection_value(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("IN IP4 {a}"),
        IpAddr::V6(a) => format!("IN IP6 {a}"),
    }
}

/// An `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name (`PCMU`, `opus`, `telephone-event`, ...).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u8>,
}

/// One media description: the m= line and the lines that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub media: String,
    /// Transport port (0 = rejected/disabled stream).
    pub port: u16,
    /// Port count (`m=audio 49170/2 ...`).
    pub port_count: Option<u16>,
    /// Protocol (`RTP/AVP`, `RTP/SAVP`, ...).
    pub proto: String,
    /// Formats (payload types for RTP).
    pub formats: Vec<String>,
    /// Lines after the m= line, in order.
    pub lines: Vec<Line>,
}

impl Media {
    fn parse(v: &str, line_no: usize) -> Result<Media, SdpError> {
        let mut it = v.split(' ').filter(|s| !s.is_empty());
        let bad = SdpError::BadMedia(line_no);
        let media = it.next().ok_or(bad.clone())?.to_string();
        let port_text = it.next().ok_or(bad.clone())?;
        let (port, port_count) = match port_text.split_once('/') {
            Some((p, c)) => (
                p.parse().map_err(|_| bad.clone())?,
                Some(c.parse().map_err(|_| bad.clone())?),
            ),
            None => (port_text.parse().map_err(|_| bad.clone())?, None),
        };
        let proto = it.next().ok_or(bad)?.to_string();
        let formats = it.map(str::to_string).collect();
        Ok(Media {
            media,
            port,
            port_count,
            proto,
            formats,
            lines: Vec::new(),
        })
    }

    /// The media-level c= line.
    pub fn connection(&self) -> Option<Connection> {
        self.lines
            .iter()
            .find(|l| l.kind == 'c')
            .and_then(|l| Connection::parse(&l.value))
    }

    /// All attributes as (name, value).
    pub fn attributes(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.lines.iter().filter_map(Line::attr)
    }

    /// The first attribute named `name`: `Some(None)` for a flag.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The media-level direction attribute, if any.
    pub fn direction_attr(&self) -> Option<Direction> {
        self.attributes().find_map(|(n, v)| {
            if v.is_none() {
                Direction::from_attr(n)
            } else {
                None
            }
        })
    }

    /// Replaces (or adds) the direction attribute.
    pub fn set_direction(&mut self, d: Direction) {
        self.lines.retain(|l| {
            !l.attr()
                .is_some_and(|(n, v)| v.is_none() && Direction::from_attr(n).is_some())
        });
        self.lines.push(Line {
            kind: 'a',
            value: d.as_str().to_string(),
        });
    }

    /// The rtpmap entries.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attributes()
            .filter(|(n, _)| *n == "rtpmap")
            .filter_map(|(_, v)| {
                let (pt, rest) = v?.split_once(' ')?;
                let mut parts = rest.trim().split('/');
                Some(RtpMap {
                    payload_type: pt.parse().ok()?,
                    encoding: parts.next()?.to_string(),
                    clock_rate: parts.next()?.parse().ok()?,
                    channels: parts.next().and_then(|c| c.parse().ok()),
                })
            })
            .collect()
    }

    /// The fmtp parameters for payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes()
            .filter(|(n, _)| *n == "fmtp")
            .find_map(|(_, v)| {
                let (p, params) = v?.split_once(' ')?;
                (p.parse::<u8>().ok()? == pt).then_some(params)
            })
    }

    /// The `a=rtcp` port and optional address (RFC 3605).
    pub fn rtcp(&self) -> Option<(u16, Option<String>)> {
        let v = self.attribute("rtcp")??;
        let mut it = v.split(' ');
        let port = it.next()?.parse().ok()?;
        let addr = match (it.next(), it.next(), it.next()) {
            (Some(_), Some(_), Some(a)) => Some(a.to_string()),
            _ => None,
        };
        Some((port, addr))
    }

    /// Rewrites (or removes, with `None`) the `a=rtcp` attribute.
    pub fn set_rtcp(&mut self, rtcp: Option<(u16, Option<IpAddr>)>) {
        self.lines
            .retain(|l| l.attr().is_none_or(|(n, _)| n != "rtcp"));
        if let Some((port, addr)) = rtcp {
            let value = match addr {
                Some(a) => format!("rtcp:{port} {}", connection_value(a)),
                None => format!("rtcp:{port}"),
            };
            self.lines.push(Line { kind: 'a', value });
        }
    }

    fn m_line(&self) -> String {
        let port = match self.port_count {
            Some(c) => format!("{}/{c}", self.port),
            None => self.port.to_string(),
        };
        let mut s = format!("{} {port} {}", self.media, self.proto);
        for f in &self.formats {
            s.push(' ');
            s.push_str(f);
        }
        s
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level lines (from v= up to the first m=), in order.
    pub session: Vec<Line>,
    /// Media descriptions in order.
    pub media: Vec<Media>,
}

impl Sdp {
    /// Parses an SDP body (CRLF or LF line ends).
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(SdpError::BadLine(i + 1));
            }
            let kind = char::from(b[0]);
            let value = line[2..].to_string();
            if session.is_empty() && media.is_empty() && !(kind == 'v' && value == "0") {
                return Err(SdpError::NoVersion);
            }
            if kind == 'm' {
                media.push(Media::parse(&value, i + 1)?);
            } else if let Some(m) = media.last_mut() {
                m.lines.push(Line { kind, value });
            } else {
                session.push(Line { kind, value });
            }
        }
        if session.is_empty() {
            return Err(SdpError::NoVersion);
        }
        Ok(Sdp { session, media })
    }

    /// The session-level c= line.
    pub fn connection(&self) -> Option<Connection> {
        self.session
            .iter()
            .find(|l| l.kind == 'c')
            .and_then(|l| Connection::parse(&l.value))
    }

    /// The connection address that applies to media `index` (media-level, else session-level).
    pub fn media_connection(&self, index: usize) -> Option<Connection> {
        self.media
            .get(index)
            .and_then(Media::connection)
            .or_else(|| self.connection())
    }

    /// Points every c= line (session and media level) at `addr`; adds a session-level one when
    /// there is none at all.
    pub fn set_connection_address(&mut self, addr: IpAddr) {
        let value = connection_value(addr);
        let mut found = false;
        for l in self
            .session
            .iter_mut()
            .chain(self.media.iter_mut().flat_map(|m| m.lines.iter_mut()))
        {
            if l.kind == 'c' {
                l.value = value.clone();
                found = true;
            }
        }
        if !found {
            // RFC 4566 §5 order: c= comes before b=, t= and the rest.
            let at = self
                .session
                .iter()
                .position(|l| matches!(l.kind, 'b' | 't' | 'r' | 'z' | 'k' | 'a'))
                .unwrap_or(self.session.len());
            self.session.insert(at, Line { kind: 'c', value });
        }
    }

    /// Rewrites the address in the o= line (the B2BUA presents itself as the origin).
    pub fn set_origin_address(&mut self, addr: IpAddr) {
        for l in self.session.iter_mut().filter(|l| l.kind == 'o') {
            let parts: Vec<&str> = l.value.split(' ').collect();
            if parts.len() == 6 {
                let c = connection_value(addr);
                l.value = format!("{} {} {} {c}", parts[0], parts[1], parts[2]);
            }
        }
    }

    /// Bumps the o= session version (needed whenever a re-offer changes the SDP).
    pub fn bump_version(&mut self) {
        for l in self.session.iter_mut().filter(|l| l.kind == 'o') {
            let mut parts: Vec<String> = l.value.split(' ').map(str::to_string).collect();
            if parts.len() == 6 {
                if let Ok(v) = parts[2].parse::<u64>() {
                    parts[2] = v.wrapping_add(1).to_string();
                }
                l.value = parts.join(" ");
            }
        }
    }

    /// The direction of media `index`: media attribute, else session attribute, else sendrecv.
    pub fn direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(Media::direction_attr)
            .or_else(|| {
                self.session
                    .iter()
                    .filter_map(Line::attr)
                    .find_map(|(n, v)| {
                        if v.is_none() {
                            Direction::from_attr(n)
                        } else {
                            None
                        }
                    })
            })
            .unwrap_or(Direction::SendRecv)
    }

    /// Serialises with CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.session {
            write!(f, "{}={}\r\n", l.kind, l.value)?;
        }
        for m in &self.media {
            write!(f, "m={}\r\n", m.m_line())?;
            for l in &m.lines {
                write!(f, "{}={}\r\n", l.kind, l.value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\na=sendonly\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp:49171\r\na=x-unknown:keep  me\r\nm=video 0 RTP/AVP 31\r\nc=IN IP4 192.0.2.11\r\na=recvonly\r\n";

    #[test]
    fn parse_read_and_roundtrip() {
        let s = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.to_string(), OFFER);
        assert_eq!(s.media.len(), 2);
        assert_eq!(s.media[0].port, 49170);
        assert_eq!(s.media[0].formats, ["0", "8", "101"]);
        assert_eq!(
            s.connection().unwrap().ip(),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(s.media_connection(1).unwrap().address, "192.0.2.11");
        assert_eq!(s.direction(0), Direction::SendOnly);
        assert_eq!(s.direction(1), Direction::RecvOnly);
        let maps = s.media[0].rtpmaps();
        assert_eq!(
            maps[1],
            RtpMap {
                payload_type: 101,
                encoding: "telephone-event".into(),
                clock_rate: 8000,
                channels: None
            }
        );
        assert_eq!(s.media[0].fmtp(101), Some("0-16"));
        assert_eq!(s.media[0].rtcp(), Some((49171, None)));
        assert_eq!(s.media[0].attribute("x-unknown"), Some(Some("keep  me")));
    }

    #[test]
    fn rewrite_for_the_relay() {
        let mut s = Sdp::parse(OFFER.replace("\r\n", "\n").as_bytes()).unwrap();
        let relay: IpAddr = "203.0.113.5".parse().unwrap();
        s.set_connection_address(relay);
        s.set_origin_address(relay);
        s.bump_version();
        s.media[0].port = 30000;
        s.media[0].set_rtcp(Some((30001, None)));
        s.media[0].set_direction(Direction::SendRecv);
        let out = s.to_string();
        assert!(out.contains("c=IN IP4 203.0.113.5\r\nt=0 0"));
        assert!(out.contains("m=video 0 RTP/AVP 31\r\nc=IN IP4 203.0.113.5\r\n"));
        assert!(out.contains("o=alice 2890844526 2890844527 IN IP4 203.0.113.5\r\n"));
        assert!(out.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"));
        assert!(out.contains("a=x-unknown:keep  me\r\n"));
        let again = Sdp::parse(out.as_bytes()).unwrap();
        assert_eq!(again.media[0].rtcp(), Some((30001, None)));
        assert_eq!(again.direction(0), Direction::SendRecv);
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        let mut t =
            Sdp::parse(b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n")
                .unwrap();
        t.set_connection_address(v6);
        assert!(
            t.to_string()
                .contains("s=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0")
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Sdp::parse(b"x"), Err(SdpError::BadLine(1)));
        assert_eq!(Sdp::parse(b"o=a\r\n"), Err(SdpError::NoVersion));
        assert_eq!(Sdp::parse(b""), Err(SdpError::NoVersion));
        assert_eq!(
            Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::BadMedia(2))
        );
        assert_eq!(Sdp::parse(&[0xff]), Err(SdpError::NotUtf8));
    }
}
