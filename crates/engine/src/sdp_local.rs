//! SDP that Denwa writes itself, for legs whose media a terminating endpoint answers (IVR,
//! bridges that decode and re-encode): the answer to a caller's offer, and the offer to a
//! callee. The relay's pass-through rewriting is `sdp.rs`.

use std::net::{IpAddr, SocketAddr};

use crate::media::Codec;
use crate::sdp::{Direction, Summary};

/// The codecs a terminating endpoint speaks, in our order of preference when we offer, with
/// the payload type we offer them on.
pub const OURS: [(&str, u8, u32); 4] = [
    ("PCMU", 0, 8000),
    ("PCMA", 8, 8000),
    ("G722", 9, 8000),
    ("opus", 111, 48000),
];

/// Telephone-event payload types we offer: at 8 kHz and, with Opus, 48 kHz.
const TE_8K: u8 = 101;
const TE_48K: u8 = 102;

fn supported(name: &str, clock: u32) -> bool {
    OURS.iter()
        .any(|(n, _, c)| n.eq_ignore_ascii_case(name) && *c == clock)
}

/// What we answer with: the first codec of the offer we speak (the offerer's preference),
/// and its telephone-event payload type at the same clock if offered, else the one at 8 kHz
/// (RFC 4733 only recommends the same clock; an Opus phone such as baresip offers
/// telephone-event/8000 alone, and without it could send no digit at all).
pub fn choose(offer: &Summary) -> Option<(Codec, Option<(u8, u32)>)> {
    let (pt, name, clock) = offer
        .codecs
        .iter()
        .find(|(_, n, c)| supported(n, *c))?
        .clone();
    let te_at = |rate: u32| {
        offer
            .codecs
            .iter()
            .find(|(_, n, c)| n.eq_ignore_ascii_case("telephone-event") && *c == rate)
            .map(|(p, _, c)| (*p, *c))
    };
    let te = te_at(clock).or_else(|| te_at(8000));
    Some((Codec { name, pt, clock }, te))
}

/// The direction we answer with: the mirror of the offer's.
pub fn answer_direction(offer: Direction) -> Direction {
    offer.reversed()
}

fn addr_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

fn rtpmap(name: &str, pt: u8, clock: u32) -> String {
    if name.eq_ignore_ascii_case("opus") {
        format!("a=rtpmap:{pt} {name}/{clock}/2\r\n")
    } else {
        format!("a=rtpmap:{pt} {name}/{clock}\r\n")
    }
}

fn head(local: SocketAddr, version: u64) -> String {
    let ip = local.ip();
    let t = addr_type(ip);
    format!(
        "v=0\r\no=denwa {version} {version} IN {t} {ip}\r\ns=denwa\r\nc=IN {t} {ip}\r\nt=0 0\r\n"
    )
}

/// Our answer: one codec (and its telephone-event) on `local`.
pub fn answer(
    local: SocketAddr,
    codec: &Codec,
    te: Option<(u8, u32)>,
    direction: Direction,
    version: u64,
) -> Vec<u8> {
    let mut s = head(local, version);
    let mut fmts = codec.pt.to_string();
    if let Some((p, _)) = te {
        fmts.push_str(&format!(" {p}"));
    }
    s.push_str(&format!("m=audio {} RTP/AVP {fmts}\r\n", local.port()));
    s.push_str(&rtpmap(&codec.name, codec.pt, codec.clock));
    if codec.name.eq_ignore_ascii_case("opus") {
        s.push_str(&format!("a=fmtp:{} useinbandfec=1\r\n", codec.pt));
    }
    if let Some((p, c)) = te {
        s.push_str(&format!(
            "a=rtpmap:{p} telephone-event/{c}\r\na=fmtp:{p} 0-15\r\n"
        ));
    }
    s.push_str("a=ptime:20\r\n");
    s.push_str(&format!("a={}\r\n", direction.as_str()));
    s.into_bytes()
}

/// Our offer on `local`: every codec we speak, `first` (a name) ahead of the others, and
/// telephone-event.
pub fn offer(local: SocketAddr, first: Option<&str>, version: u64) -> Vec<u8> {
    let mut order: Vec<(&str, u8, u32)> = OURS.to_vec();
    if let Some(f) = first
        && let Some(i) = order.iter().position(|(n, _, _)| n.eq_ignore_ascii_case(f))
    {
        let c = order.remove(i);
        order.insert(0, c);
    }
    let mut s = head(local, version);
    let mut fmts: Vec<String> = order.iter().map(|(_, p, _)| p.to_string()).collect();
    fmts.push(TE_8K.to_string());
    fmts.push(TE_48K.to_string());
    s.push_str(&format!(
        "m=audio {} RTP/AVP {}\r\n",
        local.port(),
        fmts.join(" ")
    ));
    for (n, p, c) in &order {
        s.push_str(&rtpmap(n, *p, *c));
        if n.eq_ignore_ascii_case("opus") {
            s.push_str(&format!("a=fmtp:{p} useinbandfec=1\r\n"));
        }
    }
    s.push_str(&format!(
        "a=rtpmap:{TE_8K} telephone-event/8000\r\na=fmtp:{TE_8K} 0-15\r\n"
    ));
    s.push_str(&format!(
        "a=rtpmap:{TE_48K} telephone-event/48000\r\na=fmtp:{TE_48K} 0-15\r\n"
    ));
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::summarize;

    fn offer_of(codecs: &str, maps: &str) -> Summary {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {codecs}\r\n{maps}a=sendrecv\r\n"
        );
        summarize(body.as_bytes()).expect("offer parses")
    }

    #[test]
    fn answer_takes_the_offerers_first_codec_we_speak() {
        let o = offer_of(
            "18 96 8 0 101",
            "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let (c, te) = choose(&o).expect("a codec in common");
        assert_eq!((c.name.as_str(), c.pt, c.clock), ("opus", 96, 48000));
        assert_eq!(
            te,
            Some((101, 8000)),
            "no telephone-event at 48 kHz offered: the 8 kHz one"
        );
        let o = offer_of(
            "96 101 102",
            "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap:102 telephone-event/48000\r\n",
        );
        assert_eq!(
            choose(&o).expect("opus").1,
            Some((102, 48000)),
            "same clock first"
        );
        let o = offer_of("18 8 0 101", "a=rtpmap:101 telephone-event/8000\r\n");
        let (c, te) = choose(&o).expect("PCMA");
        assert_eq!((c.name.as_str(), c.pt), ("PCMA", 8));
        assert_eq!(te, Some((101, 8000)));
        assert_eq!(choose(&offer_of("18", "")), None);
    }

    #[test]
    fn generated_bodies_parse_back() {
        let local: SocketAddr = "192.0.2.9:30000".parse().expect("addr");
        let c = Codec {
            name: "PCMA".into(),
            pt: 8,
            clock: 8000,
        };
        let a = summarize(&answer(
            local,
            &c,
            Some((101, 8000)),
            Direction::SendRecv,
            1,
        ))
        .expect("answer parses");
        assert_eq!(a.rtp, Some(local));
        assert_eq!(a.first_codec(), Some("PCMA"));
        assert_eq!(a.codecs.len(), 2);
        let o = summarize(&offer(local, Some("G722"), 1)).expect("offer parses");
        assert_eq!(o.first_codec(), Some("G722"));
        assert!(
            o.codecs
                .iter()
                .any(|(p, n, c)| *p == 111 && n == "opus" && *c == 48000)
        );
        let held = summarize(&answer(local, &c, None, Direction::RecvOnly, 2)).expect("held");
        assert_eq!(held.direction, Direction::RecvOnly);
    }
}
