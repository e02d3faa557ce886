//! Just enough SDP (RFC 4566) for a media-anchoring B2BUA: find the audio stream's address, port,
//! direction and codecs, and rewrite address/port to the relay's. Unknown lines are kept as they are.

use std::net::{IpAddr, SocketAddr};

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// a=sendrecv (or none).
    SendRecv,
    /// a=sendonly
    SendOnly,
    /// a=recvonly
    RecvOnly,
    /// a=inactive
    Inactive,
}

/// What the call layer needs to know about an SDP body.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Where the sender wants to receive RTP for the first audio stream (`None` when the port is
    /// 0 or no address is given).
    pub rtp: Option<SocketAddr>,
    /// Explicit RTCP address (a=rtcp), else RTP port + 1.
    pub rtcp: Option<SocketAddr>,
    /// Direction of the audio stream (media-level overrides session-level).
    pub direction: Direction,
    /// The connection address is 0.0.0.0 (RFC 2543 hold).
    pub null_address: bool,
    /// Payload types offered, in order, with their encoding name and clock rate.
    pub codecs: Vec<(u8, String, u32)>,
}

impl Summary {
    /// The sender puts the call on hold (it will not send, or asks us not to).
    pub fn is_hold(&self) -> bool {
        self.null_address || matches!(self.direction, Direction::SendOnly | Direction::Inactive)
    }

    /// Name of the first codec (the negotiated one in an answer), e.g. `PCMU`.
    pub fn first_codec(&self) -> Option<&str> {
        self.codecs
            .iter()
            .find(|(_, n, _)| !n.eq_ignore_ascii_case("telephone-event"))
            .map(|(_, n, _)| n.as_str())
    }
}

/// Errors in an SDP body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not UTF-8 text.
    #[error("SDP body is not text")]
    NotText,
    /// No m=audio line.
    #[error("SDP has no audio stream")]
    NoAudio,
    /// A line we must understand is malformed.
    #[error("malformed SDP line: {0}")]
    Malformed(String),
}

fn static_codec(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        18 => ("G729", 8000),
        _ => return None,
    })
}

fn lines(body: &[u8]) -> Result<Vec<&str>, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
    Ok(text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect())
}

fn parse_c(v: &str) -> Result<IpAddr, SdpError> {
    // c=IN IP4 192.0.2.1  (a multicast /ttl suffix is tolerated and ignored)
    let mut it = v.split_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SdpError::Malformed(format!("c={v}")));
    };
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse()
        .map_err(|_| SdpError::Malformed(format!("c={v}")))
}

fn direction_of(attr: &str) -> Option<Direction> {
    Some(match attr {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

/// Reads the first audio stream of `body`.
pub fn summarize(body: &[u8]) -> Result<Summary, SdpError> {
    let lines = lines(body)?;
    let mut session_c: Option<IpAddr> = None;
    let mut session_dir = Direction::SendRecv;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port: u16 = 0;
    let mut media_c: Option<IpAddr> = None;
    let mut media_dir: Option<Direction> = None;
    let mut rtcp_attr: Option<(u16, Option<IpAddr>)> = None;
    let mut pts: Vec<u8> = Vec::new();
    let mut rtpmaps: Vec<(u8, String, u32)> = Vec::new();
    for l in lines {
        let Some((k, v)) = l.split_once('=') else {
            return Err(SdpError::Malformed(l.to_string()));
        };
        match k {
            "m" => {
                if seen_audio {
                    in_audio = false;
                    continue;
                }
                let mut it = v.split_whitespace();
                let media = it.next().unwrap_or("");
                if media == "audio" {
                    in_audio = true;
                    seen_audio = true;
                    port = it
                        .next()
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| SdpError::Malformed(format!("m={v}")))?;
                    let _proto = it.next();
                    pts = it.filter_map(|p| p.parse().ok()).collect();
                } else {
                    in_audio = false;
                }
            }
            "c" if !seen_audio => session_c = Some(parse_c(v)?),
            "c" if in_audio => media_c = Some(parse_c(v)?),
            "a" => {
                let (name, val) = v.split_once(':').unwrap_or((v, ""));
                if let Some(d) = direction_of(name) {
                    if in_audio {
                        media_dir = Some(d);
                    } else if !seen_audio {
                        session_dir = d;
                    }
                } else if in_audio && name == "rtpmap" {
                    let mut it = val.split_whitespace();
                    if let (Some(pt), Some(enc)) =
                        (it.next().and_then(|p| p.parse().ok()), it.next())
                    {
                        let mut e = enc.split('/');
                        let name = e.next().unwrap_or("").to_string();
                        let rate = e.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                        rtpmaps.push((pt, name, rate));
                    }
                } else if in_audio && name == "rtcp" {
                    let mut it = val.split_whitespace();
                    if let Some(p) = it.next().and_then(|p| p.parse().ok()) {
                        let addr = match (it.next(), it.next(), it.next()) {
                            (Some("IN"), Some(_), Some(a)) => a.parse().ok(),
                            _ => None,
                        };
                        rtcp_attr = Some((p, addr));
                    }
                }
            }
            _ => {}
        }
    }
    if !seen_audio {
        return Err(SdpError::NoAudio);
    }
    let addr = media_c.or(session_c);
    let null_address = addr.is_some_and(|a| a.is_unspecified());
    let rtp = match addr {
        Some(a) if port != 0 && !a.is_unspecified() => Some(SocketAddr::new(a, port)),
        _ => None,
    };
    let rtcp = rtp.map(|r| match rtcp_attr {
        Some((p, a)) => SocketAddr::new(a.unwrap_or(r.ip()), p),
        None => SocketAddr::new(r.ip(), r.port().wrapping_add(1)),
    });
    let codecs = pts
        .iter()
        .map(|&pt| match rtpmaps.iter().find(|(p, _, _)| *p == pt) {
            Some((_, n, r)) => (pt, n.clone(), *r),
            None => {
                let (n, r) = static_codec(pt).unwrap_or(("unknown", 8000));
                (pt, n.to_string(), r)
            }
        })
        .collect();
    Ok(Summary {
        rtp,
        rtcp,
        direction: media_dir.unwrap_or(session_dir),
        null_address,
        codecs,
    })
}

/// Rewrites `body` so the first audio stream points at `relay` (RTP; RTCP is `relay.port()+1`):
/// every c= and the o= address become the relay's IP, the audio port becomes the relay's, a
/// held (0.0.0.0) address stays held, ICE attributes are dropped (media is anchored, candidates
/// would bypass the relay) and other media streams are disabled (port 0).
pub fn rewrite(body: &[u8], relay: SocketAddr) -> Result<Vec<u8>, SdpError> {
    let lines = lines(body)?;
    let ipver = if relay.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(body.len() + 64);
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut disabled = false;
    for l in lines {
        let Some((k, v)) = l.split_once('=') else {
            return Err(SdpError::Malformed(l.to_string()));
        };
        match k {
            "o" => {
                // o=<user> <sess-id> <sess-version> IN IP4 <addr>
                let parts: Vec<&str> = v.split_whitespace().collect();
                if parts.len() == 6 {
                    out.push_str(&format!(
                        "o={} {} {} IN {} {}\r\n",
                        parts[0],
                        parts[1],
                        parts[2],
                        ipver,
                        relay.ip()
                    ));
                } else {
                    out.push_str(l);
                    out.push_str("\r\n");
                }
                continue;
            }
            "c" => {
                if disabled {
                    out.push_str(l);
                    out.push_str("\r\n");
                    continue;
                }
                let held = parse_c(v).map(|a| a.is_unspecified()).unwrap_or(false);
                if held {
                    out.push_str(&format!(
                        "c=IN {ipver} {}\r\n",
                        if relay.is_ipv4() { "0.0.0.0" } else { "::" }
                    ));
                } else {
                    out.push_str(&format!("c=IN {ipver} {}\r\n", relay.ip()));
                }
                continue;
            }
            "m" => {
                let mut it = v.splitn(3, ' ');
                let media = it.next().unwrap_or("");
                let port = it.next().unwrap_or("0");
                let rest = it.next().unwrap_or("");
                if media == "audio" && !seen_audio {
                    seen_audio = true;
                    in_audio = true;
                    disabled = false;
                    let port = if port.split('/').next() == Some("0") {
                        0
                    } else {
                        relay.port()
                    };
                    out.push_str(&format!("m=audio {port} {rest}\r\n"));
                } else {
                    in_audio = false;
                    disabled = true;
                    out.push_str(&format!("m={media} 0 {rest}\r\n"));
                }
                continue;
            }
            "a" => {
                let name = v.split(':').next().unwrap_or(v);
                if matches!(
                    name,
                    "candidate"
                        | "ice-ufrag"
                        | "ice-pwd"
                        | "ice-options"
                        | "ice-lite"
                        | "remote-candidates"
                        | "end-of-candidates"
                ) {
                    continue;
                }
                if name == "rtcp" && in_audio {
                    out.push_str(&format!("a=rtcp:{}\r\n", relay.port().wrapping_add(1)));
                    continue;
                }
                if name == "rtcp-mux" {
                    // The relay keeps RTP and RTCP on separate ports.
                    continue;
                }
            }
            _ => {}
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    if !seen_audio {
        return Err(SdpError::NoAudio);
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n\
a=candidate:1 1 UDP 2130706431 10.0.0.5 49170 typ host\r\nm=video 51372 RTP/AVP 31\r\nc=IN IP4 10.0.0.5\r\n";

    #[test]
    fn summary_of_offer() {
        let s = summarize(OFFER.as_bytes()).unwrap();
        assert_eq!(s.rtp, Some("10.0.0.5:49170".parse().unwrap()));
        assert_eq!(s.rtcp, Some("10.0.0.5:49171".parse().unwrap()));
        assert_eq!(s.direction, Direction::SendRecv);
        assert!(!s.is_hold());
        assert_eq!(s.first_codec(), Some("PCMU"));
        assert_eq!(s.codecs.len(), 3);
        assert_eq!(s.codecs[1], (8, "PCMA".to_string(), 8000));
    }

    #[test]
    fn rewrite_points_at_relay_and_drops_ice_and_video() {
        let relay: SocketAddr = "192.0.2.1:20000".parse().unwrap();
        let out = String::from_utf8(rewrite(OFFER.as_bytes(), relay).unwrap()).unwrap();
        assert!(out.contains("o=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\n"));
        assert!(out.contains("c=IN IP4 192.0.2.1\r\n"));
        assert!(out.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
        assert!(out.contains("m=video 0 RTP/AVP 31\r\n"));
        assert!(!out.contains("candidate"));
        assert!(!out.contains("10.0.0.5 49170"));
        let s = summarize(out.as_bytes()).unwrap();
        assert_eq!(s.rtp, Some(relay));
    }

    #[test]
    fn hold_forms() {
        let held = OFFER.replace("a=sendrecv", "a=sendonly");
        assert!(summarize(held.as_bytes()).unwrap().is_hold());
        let inactive = OFFER.replace("a=sendrecv", "a=inactive");
        assert!(summarize(inactive.as_bytes()).unwrap().is_hold());
        let old = OFFER.replace("c=IN IP4 10.0.0.5\r\nt=0", "c=IN IP4 0.0.0.0\r\nt=0");
        let s = summarize(old.as_bytes()).unwrap();
        assert!(s.is_hold());
        assert_eq!(s.rtp, None);
        let relay: SocketAddr = "192.0.2.1:20000".parse().unwrap();
        let out = String::from_utf8(rewrite(old.as_bytes(), relay).unwrap()).unwrap();
        assert!(out.contains("c=IN IP4 0.0.0.0\r\n"));
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(summarize(b"v=0\r\ns=-\r\n"), Err(SdpError::NoAudio));
        assert!(summarize(b"garbage").is_err());
        assert!(summarize(&[0xff, 0xfe]).is_err());
        assert!(summarize(b"v=0\r\nc=IN IP4 nonsense\r\nm=audio 1 RTP/AVP 0\r\n").is_err());
    }
}
