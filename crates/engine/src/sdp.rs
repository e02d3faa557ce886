//! The B2BUA's media policy on top of `sip::sdp`: what the call layer needs to know about an
//! offer or answer (where the phone wants RTP, direction, codecs), and how a body is rewritten so
//! the first audio stream goes through the relay. Parsing and serialising is `sip::sdp`'s job.

use std::net::{IpAddr, SocketAddr};

use sip::sdp::{Line, Sdp};

pub use sip::sdp::Direction;

/// What the call layer needs to know about an SDP body.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Where the sender wants to receive RTP for the first audio stream (`None` when the port is
    /// 0 or the address is 0.0.0.0).
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
    /// The body does not parse.
    #[error(transparent)]
    Syntax(#[from] sip::sdp::SdpError),
    /// No m=audio line.
    #[error("SDP has no audio stream")]
    NoAudio,
    /// The audio stream's connection address is not an IP address.
    #[error("SDP audio connection address is not an IP address")]
    BadAddress,
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

fn audio_index(sdp: &Sdp) -> Result<usize, SdpError> {
    sdp.media
        .iter()
        .position(|m| m.media == "audio")
        .ok_or(SdpError::NoAudio)
}

/// Reads the first audio stream of `body`.
pub fn summarize(body: &[u8]) -> Result<Summary, SdpError> {
    let sdp = Sdp::parse(body)?;
    let i = audio_index(&sdp)?;
    let m = &sdp.media[i];
    let addr = match sdp.media_connection(i) {
        Some(c) => Some(c.ip().ok_or(SdpError::BadAddress)?),
        None => None,
    };
    let null_address = addr.is_some_and(|a| a.is_unspecified());
    let rtp = match addr {
        Some(a) if m.port != 0 && !a.is_unspecified() => Some(SocketAddr::new(a, m.port)),
        _ => None,
    };
    let rtcp = rtp.map(|r| match m.rtcp() {
        Some((p, a)) => SocketAddr::new(a.and_then(|a| a.parse().ok()).unwrap_or(r.ip()), p),
        None => SocketAddr::new(r.ip(), r.port().wrapping_add(1)),
    });
    let maps = m.rtpmaps();
    let codecs = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .map(|pt| match maps.iter().find(|r| r.payload_type == pt) {
            Some(r) => (pt, r.encoding.clone(), r.clock_rate),
            None => {
                let (n, r) = static_codec(pt).unwrap_or(("unknown", 8000));
                (pt, n.to_string(), r)
            }
        })
        .collect();
    Ok(Summary {
        rtp,
        rtcp,
        direction: sdp.direction(i),
        null_address,
        codecs,
    })
}

/// ICE attributes are dropped: media is anchored, and candidates would bypass the relay.
fn is_ice(line: &Line) -> bool {
    line.kind == 'a' && {
        let name = line.value.split(':').next().unwrap_or("");
        matches!(
            name,
            "candidate"
                | "ice-ufrag"
                | "ice-pwd"
                | "ice-options"
                | "ice-lite"
                | "remote-candidates"
                | "end-of-candidates"
                | "rtcp-mux"
        )
    }
}

fn connection_line(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("IN IP4 {a}"),
        IpAddr::V6(a) => format!("IN IP6 {a}"),
    }
}

/// Rewrites `body` so the first audio stream points at `relay` (RTP; RTCP is `relay.port()+1`):
/// every c= and the o= address become the relay's IP, a held (0.0.0.0) address stays held, the
/// audio port becomes the relay's, ICE and rtcp-mux attributes are dropped (the relay keeps RTP
/// and RTCP apart) and other media streams are disabled (port 0): one relay stream per call.
pub fn rewrite(body: &[u8], relay: SocketAddr) -> Result<Vec<u8>, SdpError> {
    let mut sdp = Sdp::parse(body)?;
    let audio = audio_index(&sdp)?;
    let held = if relay.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    let rewrite_c = |l: &mut Line| {
        if l.kind == 'c' {
            let is_held = l
                .value
                .split(' ')
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_unspecified());
            l.value = connection_line(if is_held { held } else { relay.ip() });
        }
    };
    sdp.session.retain(|l| !is_ice(l));
    sdp.session.iter_mut().for_each(rewrite_c);
    sdp.set_origin_address(relay.ip());
    for (i, m) in sdp.media.iter_mut().enumerate() {
        if i == audio {
            m.lines.retain(|l| !is_ice(l));
            m.lines.iter_mut().for_each(rewrite_c);
            if m.port != 0 {
                m.port = relay.port();
            }
            if m.rtcp().is_some() {
                m.set_rtcp(Some((relay.port().wrapping_add(1), None)));
            }
        } else {
            m.port = 0;
        }
    }
    Ok(sdp.to_bytes())
}

/// The encoding name of a static RTP payload type (RFC 3551) we may meet without an rtpmap.
fn static_encoding(pt: &str) -> Option<&'static str> {
    match pt {
        "0" => Some("PCMU"),
        "8" => Some("PCMA"),
        "9" => Some("G722"),
        "18" => Some("G729"),
        _ => None,
    }
}

/// Keeps only the audio codecs in `allowed` (encoding names, case-insensitive), in the order
/// `allowed` lists them, plus `telephone-event` (RFC 4733 DTMF); their rtpmap/fmtp lines go
/// with them. `None` when no allowed codec is left (the peer cannot take the call).
pub fn restrict_codecs(body: &[u8], allowed: &[String]) -> Result<Option<Vec<u8>>, SdpError> {
    let mut sdp = Sdp::parse(body)?;
    let audio = audio_index(&sdp)?;
    let Some(m) = sdp.media.get_mut(audio) else {
        return Ok(None);
    };
    let maps = m.rtpmaps();
    let encoding = |pt: &str| -> Option<String> {
        maps.iter()
            .find(|r| r.payload_type.to_string() == pt)
            .map(|r| r.encoding.clone())
            .or_else(|| static_encoding(pt).map(str::to_string))
    };
    let mut kept: Vec<(usize, String)> = Vec::new();
    let mut dtmf: Vec<String> = Vec::new();
    for pt in &m.formats {
        let Some(enc) = encoding(pt) else { continue };
        if enc.eq_ignore_ascii_case("telephone-event") {
            dtmf.push(pt.clone());
        } else if let Some(rank) = allowed.iter().position(|a| a.eq_ignore_ascii_case(&enc)) {
            kept.push((rank, pt.clone()));
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    kept.sort_by_key(|(rank, _)| *rank);
    let mut formats: Vec<String> = kept.into_iter().map(|(_, pt)| pt).collect();
    formats.extend(dtmf);
    let dropped: Vec<String> = m
        .formats
        .iter()
        .filter(|pt| !formats.contains(pt))
        .cloned()
        .collect();
    m.formats = formats;
    m.lines.retain(|l| {
        if l.kind != 'a' {
            return true;
        }
        let pt = l
            .value
            .strip_prefix("rtpmap:")
            .or_else(|| l.value.strip_prefix("fmtp:"))
            .and_then(|rest| rest.split([' ', '\t']).next());
        pt.is_none_or(|pt| !dropped.iter().any(|d| d == pt))
    });
    Ok(Some(sdp.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_restricted_to_the_trunks_list_in_its_order() {
        let offer = "v=0\r\no=a 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 9 0 8 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";
        let out = restrict_codecs(offer.as_bytes(), &["PCMA".into(), "pcmu".into()])
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("m=audio 49170 RTP/AVP 8 0 101"), "{text}");
        assert!(!text.contains("G722"), "{text}");
        assert!(text.contains("a=fmtp:101 0-16"), "{text}");
        assert_eq!(
            restrict_codecs(offer.as_bytes(), &["opus".into()]).unwrap(),
            None,
            "nothing in common"
        );
    }

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
        assert!(rewrite(b"v=0\r\ns=-\r\n", "192.0.2.1:20000".parse().unwrap()).is_err());
    }
}
