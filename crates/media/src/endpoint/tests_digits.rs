//! Digits regenerated across a bridge, end to end through two cores: what one phone presses
//! (RFC 4733 or in-band) is detected, handed to the other leg as the call layer does it, and
//! arrives at the other phone in that leg's form with RFC 4733's timestamps, durations and end
//! packets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::core::{CoreConfig, EndpointCore};
use super::*;
use crate::codec::CodecKind;
use crate::dtmf::TelephoneEvent;
use crate::rtp::{RtpHeader, RtpPacket};

const TICK: Duration = Duration::from_millis(20);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn core(id: u64, neg: Negotiated, t0: Instant) -> EndpointCore {
    let mut rng = StdRng::seed_from_u64(id);
    let mut c = EndpointCore::new(
        EndpointId(id),
        addr(21000 + 2 * id as u16),
        addr(21001 + 2 * id as u16),
        CoreConfig::default(),
        &mut rng,
        t0,
        0,
    );
    c.set_codec(neg);
    c.set_remote(addr(31000 + 2 * id as u16), None, t0);
    c
}

fn without_events(codec: CodecKind) -> Negotiated {
    Negotiated {
        telephone_event: None,
        receive_events: Vec::new(),
        ..Negotiated::simple(codec)
    }
}

fn event_packet(seq: u16, ts: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let ev = TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    };
    RtpHeader::new(101, seq, ts, 77)
        .build(&ev.to_bytes())
        .expect("build")
}

/// Digits the call layer hears from `c` this tick.
fn digits_of(c: &mut EndpointCore) -> Vec<(char, DtmfSource)> {
    c.drain_events()
        .filter_map(|e| match e {
            EngineEvent::Dtmf { digit, source, .. } => Some((digit, source)),
            _ => None,
        })
        .collect()
}

fn rtp_sent(c: &mut EndpointCore) -> Vec<Vec<u8>> {
    c.drain_transmits()
        .filter(|t| !t.rtcp)
        .map(|t| t.data)
        .collect()
}

/// A 1 kHz frame standing for the bridge's audio (what the other phone says).
fn bridge_frame(len: usize, rate: u32) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 6000.0) as i16
        })
        .collect()
}

#[test]
fn rfc4733_in_becomes_rfc4733_out_with_rfc_timestamps_durations_and_end_packets() {
    let t0 = Instant::now();
    let mut a = core(1, Negotiated::simple(CodecKind::Pcmu), t0);
    // The far leg is Opus (48 kHz clock) with telephone-event at 48 kHz.
    let mut neg = Negotiated::simple(CodecKind::Opus);
    neg.telephone_event = Some((101, 48_000));
    let mut b = core(2, neg, t0);
    // The caller presses 7: updates then three end packets.
    for k in 0..5u16 {
        a.on_rtp(
            &event_packet(10 + k, 4000, 7, false, 160 * (k + 1)),
            addr(40000),
            t0,
        );
    }
    for k in 0..3u16 {
        a.on_rtp(&event_packet(15 + k, 4000, 7, true, 800), addr(40000), t0);
    }
    let got = digits_of(&mut a);
    assert_eq!(got, vec![('7', DtmfSource::Rfc4733)]);
    // The call layer regenerates it on the other leg.
    assert_eq!(b.send_digits("7", DigitMode::Rfc4733), 1);
    let frame = bridge_frame(960, 48_000);
    let mut now = t0;
    let mut pkts = Vec::new();
    for _ in 0..14 {
        b.tick_receive(now);
        b.tick_send(now, Some(&frame));
        pkts.extend(rtp_sent(&mut b));
        now += TICK;
    }
    let parsed: Vec<RtpPacket> = pkts
        .iter()
        .map(|p| RtpPacket::parse(p).expect("rtp"))
        .collect();
    let events: Vec<&RtpPacket> = parsed.iter().filter(|p| p.payload_type == 101).collect();
    assert_eq!(events.len(), 7, "4 updates and 3 end packets");
    let ts0 = events[0].timestamp;
    assert!(
        events.iter().all(|p| p.timestamp == ts0),
        "one timestamp per event"
    );
    assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
    for w in events.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
    }
    let evs: Vec<TelephoneEvent> = events
        .iter()
        .map(|p| TelephoneEvent::parse(p.payload).expect("event"))
        .collect();
    assert!(evs.iter().all(|e| e.event == 7));
    // 20 ms steps at the event clock (48 kHz: 960 units), ending at 100 ms.
    let durs: Vec<u16> = evs.iter().map(|e| e.duration).collect();
    assert_eq!(durs, vec![960, 1920, 2880, 3840, 4800, 4800, 4800]);
    assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
    assert!(evs[..4].iter().all(|e| !e.end));
    // Audio before and after the event; the first audio after it is a new talkspurt, and its
    // timestamp has moved on by the frames the event took.
    let first_audio_after = parsed
        .iter()
        .skip_while(|p| p.payload_type != 101)
        .find(|p| p.payload_type != 101)
        .expect("audio after the event");
    assert!(first_audio_after.marker);
    assert_eq!(first_audio_after.timestamp.wrapping_sub(ts0), 7 * 960);
    let audio_before = parsed.iter().take_while(|p| p.payload_type != 101).count();
    assert_eq!(audio_before, 0, "the digit goes out on the next tick");
    // The far phone (a core on the other end) hears exactly one press of 7.
    let mut far = core(
        3,
        {
            let mut n = Negotiated::simple(CodecKind::Opus);
            n.telephone_event = Some((101, 48_000));
            n
        },
        t0,
    );
    for p in &pkts {
        far.on_rtp(p, addr(40002), t0);
    }
    assert_eq!(digits_of(&mut far), vec![('7', DtmfSource::Rfc4733)]);
}

#[test]
fn rfc4733_in_becomes_inband_tones_for_a_leg_without_telephone_event() {
    let t0 = Instant::now();
    let mut b = core(2, without_events(CodecKind::Pcmu), t0);
    b.send_digits("5#", DigitMode::Rfc4733);
    let frame = bridge_frame(160, 8000);
    let mut now = t0;
    let mut pcm = Vec::new();
    let mut dec = crate::codec::decoder(CodecKind::Pcmu).expect("decoder");
    for _ in 0..30 {
        b.tick_receive(now);
        b.tick_send(now, Some(&frame));
        for p in rtp_sent(&mut b) {
            let p = RtpPacket::parse(&p).expect("rtp");
            assert_eq!(p.payload_type, 0, "no events without telephone-event");
            dec.decode(p.payload, &mut pcm).expect("decode");
        }
        now += TICK;
    }
    let mut det = crate::inband::DtmfDetector::new(8000);
    let mut found = Vec::new();
    det.process(&pcm, &mut found);
    det.flush(&mut found);
    let digits: String = found.iter().map(|d| d.digit).collect();
    assert_eq!(digits, "5#");
    assert!(
        found
            .iter()
            .all(|d| (80..=120).contains(&d.duration_ms(8000)))
    );
    // The bridge's audio is back after the digits.
    let tail = &pcm[pcm.len() - 1600..];
    assert!(
        crate::tone::goertzel(tail, 1000.0, 8000)
            > 1e3 * crate::tone::goertzel(tail, 770.0, 8000).max(1e-9)
    );
}

#[test]
fn inband_in_is_detected_once_and_regenerated_as_events() {
    let t0 = Instant::now();
    // The caller's phone sends "3" in-band (no telephone-event on its leg).
    let mut phone = core(9, without_events(CodecKind::Pcmu), t0);
    phone.send_digits("3", DigitMode::Inband);
    let mut a = core(1, without_events(CodecKind::Pcmu), t0);
    struct Det(crate::inband::DtmfDetector, Vec<crate::inband::InbandDigit>);
    impl DigitDetector for Det {
        fn process(&mut self, pcm: &[i16], _rate: u32) -> Option<char> {
            self.1.clear();
            self.0.process(pcm, &mut self.1);
            self.1.first().map(|d| d.digit)
        }
    }
    a.set_detector(Some(Box::new(Det(
        crate::inband::DtmfDetector::new(8000),
        Vec::new(),
    ))));
    let mut b = core(2, Negotiated::simple(CodecKind::Pcma), t0);
    let mut now = t0;
    let mut got = Vec::new();
    let mut b_events = 0;
    for _ in 0..40 {
        phone.tick(now);
        for p in rtp_sent(&mut phone) {
            a.on_rtp(&p, addr(40000), now);
        }
        a.tick(now);
        for (d, src) in digits_of(&mut a) {
            got.push((d, src));
            b.send_digits(&d.to_string(), DigitMode::Rfc4733);
        }
        b.tick(now);
        b_events += rtp_sent(&mut b)
            .iter()
            .filter(|p| RtpPacket::parse(p).is_ok_and(|p| p.payload_type == 101))
            .count();
        now += TICK;
    }
    assert_eq!(got, vec![('3', DtmfSource::Inband)]);
    assert_eq!(b_events, 7);
}
