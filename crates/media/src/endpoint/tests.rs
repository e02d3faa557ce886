//! Unit tests of the sans-IO core and group on a fake clock: no sockets, no sleeps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::core::{CoreConfig, EndpointCore, RecordOp};
use super::group::Group;
use super::*;
use crate::codec::CodecKind;
use crate::dtmf::TelephoneEvent;
use crate::rtp::{RtpHeader, RtpPacket};
use crate::tone;

const TICK: Duration = Duration::from_millis(20);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn core(id: u64, codec: CodecKind, t0: Instant) -> EndpointCore {
    let mut rng = StdRng::seed_from_u64(id);
    let mut c = EndpointCore::new(
        EndpointId(id),
        addr(20000 + 2 * id as u16),
        addr(20001 + 2 * id as u16),
        CoreConfig {
            media_timeout: Duration::from_secs(2),
            ..CoreConfig::default()
        },
        &mut rng,
        t0,
        0,
    );
    c.set_codec(Negotiated::simple(codec));
    c.set_remote(addr(30000 + 2 * id as u16), None, t0);
    c
}

/// RTP packets of what the core sent (RTCP left out).
fn sent(c: &mut EndpointCore) -> Vec<Vec<u8>> {
    c.drain_transmits()
        .filter(|t| !t.rtcp)
        .map(|t| t.data)
        .collect()
}

fn decode(codec: CodecKind, pkts: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    let mut dec = crate::codec::decoder(codec).expect("decoder");
    for p in pkts {
        let p = RtpPacket::parse(p).expect("rtp");
        if p.payload_type == codec.static_payload_type().unwrap_or(0) {
            dec.decode(p.payload, &mut out).expect("decode");
        }
    }
    out
}

/// A phone's stream of one tone: packet `i` of 20 ms.
struct Phone {
    codec: CodecKind,
    freq: f64,
    seq: u16,
    ts: u32,
    n: usize,
}

impl Phone {
    fn new(codec: CodecKind, freq: f64) -> Phone {
        Phone {
            codec,
            freq,
            seq: 1000,
            ts: 5000,
            n: 0,
        }
    }

    fn next(&mut self) -> Vec<u8> {
        let sig = tone::sine(
            self.freq,
            Duration::from_millis(20 * (self.n as u64 + 1)),
            8000,
            8000,
        );
        let frame = &sig[self.n * 160..];
        let mut enc = crate::codec::encoder(self.codec).expect("encoder");
        let mut payload = Vec::new();
        enc.encode(frame, &mut payload).expect("encode");
        let pt = self.codec.static_payload_type().unwrap_or(0);
        let p = RtpHeader::new(pt, self.seq, self.ts, 77)
            .build(&payload)
            .expect("build");
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        self.n += 1;
        p
    }
}

fn power(pcm: &[i16], f: f64, rate: u32) -> f64 {
    tone::goertzel(pcm, f, rate)
}

#[test]
fn sequence_timestamp_and_marker_across_play_items() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let ms = Duration::from_millis;
    c.play(PlayRequest {
        id: 9,
        items: vec![
            PlayItem::Tone(ToneSpec {
                freqs: vec![440.0],
                on: ms(100),
                off: Duration::ZERO,
                duration: ms(100),
                amplitude: 8000,
            }),
            PlayItem::Silence(ms(40)),
            PlayItem::Digits("1".into(), DigitMode::Rfc4733),
            PlayItem::Tone(ToneSpec {
                freqs: vec![440.0],
                on: ms(60),
                off: Duration::ZERO,
                duration: ms(60),
                amplitude: 8000,
            }),
        ],
        repeat: 1,
        stop_on_dtmf: false,
    });
    let mut all = Vec::new();
    let mut now = t0;
    for _ in 0..30 {
        c.tick(now);
        all.extend(sent(&mut c));
        now += TICK;
    }
    let pkts: Vec<RtpPacket<'_>> = all
        .iter()
        .map(|p| RtpPacket::parse(p).expect("rtp"))
        .collect();
    assert_eq!(
        pkts.len(),
        30,
        "one packet per tick, items and silence alike"
    );
    let first = pkts[0];
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(p.sequence, first.sequence.wrapping_add(i as u16), "seq {i}");
        assert_eq!(p.ssrc, first.ssrc);
    }
    // Tone 5 frames, silence 2, then the digit: 7 event frames (5 growing, 2 end repeats) and
    // 3 of silence, then the last tone.
    let events: Vec<usize> = (0..30).filter(|&i| pkts[i].payload_type == 101).collect();
    assert_eq!(events, (7..14).collect::<Vec<_>>());
    for &i in &events {
        assert_eq!(
            pkts[i].timestamp,
            first.timestamp.wrapping_add(7 * 160),
            "event ts"
        );
        let ev = TelephoneEvent::parse(pkts[i].payload).expect("event");
        assert_eq!(ev.event, 1);
        assert_eq!(ev.end, i >= 11);
    }
    for (i, p) in pkts.iter().enumerate().filter(|(_, p)| p.payload_type == 0) {
        assert_eq!(
            p.timestamp,
            first.timestamp.wrapping_add(160 * i as u32),
            "audio ts continuous at {i}"
        );
    }
    let markers: Vec<usize> = (0..30).filter(|&i| pkts[i].marker).collect();
    assert_eq!(
        markers,
        vec![0, 7, 14],
        "stream start, event start, talkspurt after it"
    );
    let ev: Vec<EngineEvent> = c.drain_events().collect();
    assert_eq!(
        ev,
        vec![EngineEvent::PlayDone {
            ep: EndpointId(1),
            id: 9,
            interrupted: false
        }]
    );
    // The tone is in the first frames, silence after the play.
    let pcm = decode(CodecKind::Pcmu, &all[..5]);
    assert!(power(&pcm, 440.0, 8000) > 0.01);
    let tail = decode(CodecKind::Pcmu, &all[27..]);
    assert!(
        tail.iter().all(|&s| s.abs() < 16),
        "comfort silence when nothing plays"
    );
}

#[test]
fn random_ssrc_seq_and_timestamp_come_from_the_rng() {
    let t0 = Instant::now();
    let mut a = core(1, CodecKind::Pcmu, t0);
    let mut b = core(2, CodecKind::Pcmu, t0);
    a.tick(t0);
    b.tick(t0);
    let pa = sent(&mut a);
    let pb = sent(&mut b);
    let (pa, pb) = (
        RtpPacket::parse(&pa[0]).expect("rtp"),
        RtpPacket::parse(&pb[0]).expect("rtp"),
    );
    assert_ne!(pa.ssrc, pb.ssrc);
    assert_ne!((pa.sequence, pa.timestamp), (pb.sequence, pb.timestamp));
    // Same seed, same values: the core reads no hidden randomness.
    let mut a2 = core(1, CodecKind::Pcmu, t0);
    a2.tick(t0);
    let p2 = sent(&mut a2);
    let p2 = RtpPacket::parse(&p2[0]).expect("rtp");
    assert_eq!(
        (p2.ssrc, p2.sequence, p2.timestamp),
        (pa.ssrc, pa.sequence, pa.timestamp)
    );
}

#[test]
fn received_audio_is_reordered_concealed_and_counted() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcma, t0);
    let mut phone = Phone::new(CodecKind::Pcma, 1000.0);
    let pkts: Vec<Vec<u8>> = (0..40).map(|_| phone.next()).collect();
    let mut now = t0;
    let mut heard = Vec::new();
    // Pairs swapped (reordering), packet 20 lost.
    let order: Vec<usize> = (0..40)
        .map(|i| if i % 2 == 0 { i + 1 } else { i - 1 })
        .collect();
    for (k, &i) in order.iter().enumerate() {
        if i != 20 {
            c.on_rtp(&pkts[i], addr(40000), now);
        }
        if k % 2 == 1 {
            for _ in 0..2 {
                c.tick(now);
                heard.extend_from_slice(c.heard());
                now += TICK;
            }
        }
    }
    let s = c.stats();
    assert_eq!(s.packets_rx, 39);
    assert_eq!(
        s.lost, 0,
        "the sequence gap of 20 counts only at the end of the stream"
    );
    assert!(s.concealed >= 1, "{s:?}");
    assert_eq!(c.remote(), Some(addr(40000)), "latched to the real source");
    let mid = &heard[800..heard.len() - 800];
    assert!(power(mid, 1000.0, 8000) > 0.01);
    // The phone stops: a few underruns are counted, then the stream is idle.
    for _ in 0..50 {
        c.tick(now);
        now += TICK;
    }
    let u = c.stats().underruns;
    assert!((1..=6).contains(&u), "{u}");
}

fn event_packet(seq: u16, ts: u32, event: u8, end: bool, dur: u16) -> Vec<u8> {
    let ev = TelephoneEvent {
        event,
        end,
        volume: 10,
        duration: dur,
    };
    RtpHeader::new(101, seq, ts, 77)
        .build(&ev.to_bytes())
        .expect("build")
}

#[test]
fn one_dtmf_event_per_key_press_and_barge_in() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    c.play(PlayRequest {
        id: 4,
        items: vec![PlayItem::Silence(Duration::from_secs(10))],
        repeat: 1,
        stop_on_dtmf: true,
    });
    c.tick(t0);
    let mut seq = 10;
    for (ts, ev) in [(1000u32, 5u8), (2000, 11)] {
        for k in 0..5u16 {
            c.on_rtp(
                &event_packet(seq, ts, ev, false, 160 * (k + 1)),
                addr(40000),
                t0,
            );
            seq += 1;
        }
        for _ in 0..3 {
            c.on_rtp(&event_packet(seq, ts, ev, true, 800), addr(40000), t0);
            seq += 1;
        }
    }
    // A late retransmission of the first digit's end: still the same key press... but only
    // while it is the latest event; it is a new press only with a new timestamp.
    let evs: Vec<EngineEvent> = c.drain_events().collect();
    let ep = EndpointId(1);
    assert_eq!(
        evs,
        vec![
            EngineEvent::Dtmf {
                ep,
                digit: '5',
                source: DtmfSource::Rfc4733
            },
            EngineEvent::PlayDone {
                ep,
                id: 4,
                interrupted: true
            },
            EngineEvent::Dtmf {
                ep,
                digit: '#',
                source: DtmfSource::Rfc4733
            },
        ]
    );
    assert!(!c.is_playing());
}

#[test]
fn bridge_members_hear_the_others_not_themselves() {
    let t0 = Instant::now();
    let mut g = Group::new();
    let freqs = [500.0, 1100.0, 1700.0];
    let mut phones: Vec<Phone> = freqs
        .iter()
        .map(|&f| Phone::new(CodecKind::Pcmu, f))
        .collect();
    let slots: Vec<usize> = (0..3)
        .map(|i| g.insert(core(i as u64 + 1, CodecKind::Pcmu, t0)))
        .collect();
    for &s in &slots {
        g.join(s, BridgeId(1));
    }
    assert_eq!(g.members(BridgeId(1)).len(), 3);
    let mut now = t0;
    // One 20 ms round: every phone sends a frame, the group ticks; what each member was sent.
    let round = |g: &mut Group, phones: &mut [Phone], now: &mut Instant| {
        for (i, &s) in slots.iter().enumerate() {
            let p = phones[i].next();
            g.get_mut(s)
                .expect("core")
                .on_rtp(&p, addr(40000 + i as u16), *now);
        }
        g.tick(*now);
        *now += TICK;
        slots
            .iter()
            .map(|&s| sent(g.get_mut(s).expect("core")))
            .collect::<Vec<_>>()
    };
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
    for _ in 0..30 {
        for (o, pkts) in out.iter_mut().zip(round(&mut g, &mut phones, &mut now)) {
            o.extend(pkts);
        }
    }
    for (i, pkts) in out.iter().enumerate() {
        let pcm = decode(CodecKind::Pcmu, &pkts[10..]);
        for (j, &f) in freqs.iter().enumerate() {
            let p = power(&pcm, f, 8000);
            if i == j {
                assert!(p < 0.001, "member {i} hears itself: {p}");
            } else {
                assert!(p > 0.01, "member {i} does not hear {j}: {p}");
            }
        }
    }
    // Muting member 0: the others no longer hear 500 Hz.
    g.get_mut(slots[0]).expect("core").muted = true;
    let mut later = Vec::new();
    for _ in 0..10 {
        later.extend(round(&mut g, &mut phones, &mut now).swap_remove(1));
    }
    let pcm = decode(CodecKind::Pcmu, &later[4..]);
    assert!(power(&pcm, 500.0, 8000) < 0.001);
    assert!(power(&pcm, 1700.0, 8000) > 0.01);
}

#[test]
fn two_member_bridge_transcodes_pcmu_to_pcma() {
    let t0 = Instant::now();
    let mut g = Group::new();
    let a = g.insert(core(1, CodecKind::Pcmu, t0));
    let b = g.insert(core(2, CodecKind::Pcma, t0));
    g.join(a, BridgeId(7));
    g.join(b, BridgeId(7));
    let mut pa = Phone::new(CodecKind::Pcmu, 600.0);
    let mut pb = Phone::new(CodecKind::Pcma, 1300.0);
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    let mut now = t0;
    for _ in 0..25 {
        let x = pa.next();
        g.get_mut(a).expect("a").on_rtp(&x, addr(40000), now);
        let x = pb.next();
        g.get_mut(b).expect("b").on_rtp(&x, addr(40002), now);
        g.tick(now);
        to_a.extend(sent(g.get_mut(a).expect("a")));
        to_b.extend(sent(g.get_mut(b).expect("b")));
        now += TICK;
    }
    let heard_a = decode(CodecKind::Pcmu, &to_a[8..]);
    let heard_b = decode(CodecKind::Pcma, &to_b[8..]);
    assert!(
        to_b.iter()
            .all(|p| RtpPacket::parse(p).expect("rtp").payload_type == 8)
    );
    assert!(power(&heard_a, 1300.0, 8000) > 0.01 && power(&heard_a, 600.0, 8000) < 0.001);
    assert!(power(&heard_b, 600.0, 8000) > 0.01 && power(&heard_b, 1300.0, 8000) < 0.001);
}

fn record_ops(c: &mut EndpointCore) -> Vec<RecordOp> {
    c.drain_record_ops().collect()
}

#[test]
fn recorder_stops_at_max_length_with_exactly_that_much_audio() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let mut phone = Phone::new(CodecKind::Pcmu, 700.0);
    c.record(RecordRequest {
        id: 3,
        path: PathBuf::from("/tmp/x.wav"),
        max_len: Duration::from_millis(1000),
        silence: Some(Duration::from_secs(3)),
        beep: false,
    });
    let mut ops = Vec::new();
    let mut now = t0;
    for _ in 0..80 {
        c.on_rtp(&phone.next(), addr(40000), now);
        c.tick(now);
        ops.extend(record_ops(&mut c));
        now += TICK;
    }
    assert!(matches!(
        ops.first(),
        Some(RecordOp::Start {
            id: 3,
            rate: 8000,
            ..
        })
    ));
    let samples: usize = ops
        .iter()
        .map(|o| match o {
            RecordOp::Data { pcm, .. } => pcm.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(samples, 8000);
    assert!(matches!(
        ops.last(),
        Some(RecordOp::Finish {
            reason: RecordReason::MaxLength,
            ..
        })
    ));
    assert!(!c.is_recording());
}

#[test]
fn recorder_stops_after_silence_and_beeps_first() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    c.record(RecordRequest {
        id: 3,
        path: PathBuf::from("/tmp/x.wav"),
        max_len: Duration::from_secs(60),
        silence: Some(Duration::from_secs(1)),
        beep: true,
    });
    let mut ops = Vec::new();
    let mut out = Vec::new();
    let mut now = t0;
    let mut ticks = 0;
    while c.is_recording() && ticks < 500 {
        c.tick(now);
        ops.extend(record_ops(&mut c));
        out.extend(sent(&mut c));
        now += TICK;
        ticks += 1;
    }
    // 400 ms beep (20 ticks) + 1 s of silence (50 ticks).
    assert_eq!(ticks, 70);
    assert!(
        matches!(
            ops.last(),
            Some(RecordOp::Finish {
                reason: RecordReason::Silence,
                trim: 6400,
                ..
            })
        ),
        "the silence that ended it is cut but for 200 ms: {:?}",
        ops.last()
    );
    let beep = decode(CodecKind::Pcmu, &out[..20]);
    assert!(
        power(&beep, 1000.0, 8000) > 0.01,
        "the beep is sent before recording"
    );
}

#[test]
fn missing_file_plays_the_error_tone_then_finishes() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    c.play(PlayRequest {
        id: 2,
        items: vec![PlayItem::File(PathBuf::from("/nonexistent/p.wav"))],
        repeat: 1,
        stop_on_dtmf: false,
    });
    c.tick(t0);
    let loads = c.take_loads();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].2, 8000);
    c.file_loaded(loads[0].0, Err("cannot open: not found".into()));
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut now = t0 + TICK;
    for _ in 0..80 {
        c.tick(now);
        out.extend(sent(&mut c));
        events.extend(c.drain_events());
        now += TICK;
    }
    assert_eq!(
        events,
        vec![
            EngineEvent::FileError {
                ep: EndpointId(1),
                path: PathBuf::from("/nonexistent/p.wav"),
                reason: "cannot open: not found".into()
            },
            EngineEvent::PlayDone {
                ep: EndpointId(1),
                id: 2,
                interrupted: false
            }
        ]
    );
    let pcm = decode(CodecKind::Pcmu, &out[..15]);
    assert!(power(&pcm, 950.0, 8000) > 0.01, "error tone, not silence");
}

#[test]
fn loaded_file_plays_and_files_are_shared() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let clip: Arc<[i16]> = tone::sine(800.0, Duration::from_millis(200), 8000, 9000).into();
    c.play(PlayRequest {
        id: 1,
        items: vec![PlayItem::File(PathBuf::from("a.wav"))],
        repeat: 2,
        stop_on_dtmf: false,
    });
    let mut out = Vec::new();
    let mut now = t0;
    let mut done = false;
    for _ in 0..40 {
        c.tick(now);
        for (t, _, _) in c.take_loads() {
            c.file_loaded(t, Ok(clip.clone()));
        }
        out.extend(sent(&mut c));
        done |= c.drain_events().any(|e| {
            matches!(
                e,
                EngineEvent::PlayDone {
                    interrupted: false,
                    ..
                }
            )
        });
        now += TICK;
    }
    assert!(done);
    let pcm = decode(CodecKind::Pcmu, &out[2..20]);
    assert!(power(&pcm, 800.0, 8000) > 0.01);
}

/// Ticks `n` times from `*now`; how many media timeouts were reported.
fn timeouts(c: &mut EndpointCore, now: &mut Instant, n: usize) -> usize {
    let mut count = 0;
    for _ in 0..n {
        c.tick(*now);
        count += c
            .drain_events()
            .filter(|e| matches!(e, EngineEvent::MediaTimeout { .. }))
            .count();
        *now += TICK;
    }
    count
}

#[test]
fn media_timeout_is_reported_once_and_rearms_on_media() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let mut now = t0;
    assert_eq!(timeouts(&mut c, &mut now, 300), 1);
    let mut phone = Phone::new(CodecKind::Pcmu, 500.0);
    c.on_rtp(&phone.next(), addr(40000), now);
    assert_eq!(timeouts(&mut c, &mut now, 150), 1);
}

#[test]
fn rtcp_sender_reports_every_five_seconds() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let mut now = t0;
    let mut rtcp = Vec::new();
    for _ in 0..(11 * 50) {
        c.tick(now);
        rtcp.extend(c.drain_transmits().filter(|t| t.rtcp));
        now += TICK;
    }
    assert_eq!(rtcp.len(), 2);
    assert!(rtcp.iter().all(|t| t.to == addr(30003)));
    assert!(
        rtcp.iter()
            .all(|t| crate::rtcp::validate(&t.data).is_ok() && t.data[1] == 200)
    );
}

#[test]
fn garbage_and_strangers_are_dropped() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let mut phone = Phone::new(CodecKind::Pcmu, 500.0);
    c.on_rtp(&[0x80, 0, 1], addr(40000), t0);
    c.on_rtp(&[0xff; 50], addr(40000), t0);
    c.on_rtcp(&[1, 2, 3], addr(40001), t0);
    // Unknown payload type.
    c.on_rtp(
        &RtpHeader::new(96, 1, 1, 1).build(&[0; 10]).expect("build"),
        addr(40000),
        t0,
    );
    assert_eq!(c.stats().dropped, 4);
    c.on_rtp(&phone.next(), addr(40000), t0);
    // Latched: a stranger's single packet does not take over.
    let mut other = Phone::new(CodecKind::Pcmu, 900.0);
    c.on_rtp(&other.next(), addr(40100), t0);
    assert_eq!(c.remote(), Some(addr(40000)));
    for _ in 0..4 {
        c.on_rtp(&other.next(), addr(40100), t0);
    }
    assert_eq!(c.remote(), Some(addr(40100)), "NAT rebinding re-latches");
}

/// Two PCMU members in bridge 1; phones send 600 Hz (A) and 1300 Hz (B) for `ticks` rounds.
/// Returns what A and B were sent, and A's recording ops.
fn two_party(
    ticks: usize,
    setup: impl FnOnce(&mut EndpointCore),
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<RecordOp>) {
    let t0 = Instant::now();
    let mut g = Group::new();
    let mut ca = core(1, CodecKind::Pcmu, t0);
    setup(&mut ca);
    let a = g.insert(ca);
    let b = g.insert(core(2, CodecKind::Pcmu, t0));
    g.join(a, BridgeId(3));
    g.join(b, BridgeId(3));
    let mut pa = Phone::new(CodecKind::Pcmu, 600.0);
    let mut pb = Phone::new(CodecKind::Pcmu, 1300.0);
    let (mut to_a, mut to_b, mut ops) = (Vec::new(), Vec::new(), Vec::new());
    let mut now = t0;
    for _ in 0..ticks {
        let x = pa.next();
        g.get_mut(a).expect("a").on_rtp(&x, addr(40000), now);
        let x = pb.next();
        g.get_mut(b).expect("b").on_rtp(&x, addr(40002), now);
        g.tick(now);
        let ca = g.get_mut(a).expect("a");
        to_a.extend(sent(ca));
        ops.extend(record_ops(ca));
        to_b.extend(sent(g.get_mut(b).expect("b")));
        now += TICK;
    }
    (to_a, to_b, ops)
}

#[test]
fn recording_a_bridged_member_holds_both_parties() {
    let (_, _, ops) = two_party(40, |c| {
        c.record(RecordRequest {
            id: 1,
            path: PathBuf::from("/tmp/both.wav"),
            max_len: Duration::from_secs(60),
            silence: None,
            beep: false,
        })
    });
    let pcm: Vec<i16> = ops
        .iter()
        .filter_map(|o| match o {
            RecordOp::Data { pcm, .. } => Some(pcm.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(pcm.len() >= 4800, "{}", pcm.len());
    let tail = &pcm[1600..];
    assert!(power(tail, 600.0, 8000) > 0.01, "own side recorded");
    assert!(power(tail, 1300.0, 8000) > 0.01, "other side recorded");
}

#[test]
fn a_prompt_to_one_member_is_not_heard_by_the_other() {
    let (to_a, to_b, _) = two_party(30, |c| {
        c.play(PlayRequest {
            id: 1,
            items: vec![PlayItem::Tone(ToneSpec {
                freqs: vec![2000.0],
                on: Duration::from_secs(1),
                off: Duration::ZERO,
                duration: Duration::from_secs(1),
                amplitude: 8000,
            })],
            repeat: 1,
            stop_on_dtmf: false,
        })
    });
    let (ha, hb) = (
        decode(CodecKind::Pcmu, &to_a[8..]),
        decode(CodecKind::Pcmu, &to_b[8..]),
    );
    assert!(power(&ha, 2000.0, 8000) > 0.01 && power(&ha, 1300.0, 8000) > 0.01);
    assert!(power(&hb, 2000.0, 8000) < 0.0005, "the prompt stays on A");
    assert!(power(&hb, 600.0, 8000) > 0.01);
}

#[test]
fn ptime_40_sends_two_frames_per_packet() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcma, t0);
    let mut neg = Negotiated::simple(CodecKind::Pcma);
    neg.ptime_ms = 40;
    c.set_codec(neg);
    let mut pkts = Vec::new();
    let mut now = t0;
    for _ in 0..10 {
        c.tick(now);
        pkts.extend(sent(&mut c));
        now += TICK;
    }
    assert_eq!(pkts.len(), 5);
    let p: Vec<RtpPacket<'_>> = pkts
        .iter()
        .map(|p| RtpPacket::parse(p).expect("rtp"))
        .collect();
    for w in p.windows(2) {
        assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 320);
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
    }
    assert!(
        p.iter()
            .all(|p| p.payload.len() == 320 && p.payload_type == 8)
    );
}

/// A toy detector for the plumbing test: digit '1' (697 + 1209 Hz), once per tone burst.
struct OneDetector {
    on: bool,
}

impl DigitDetector for OneDetector {
    fn process(&mut self, pcm: &[i16], rate: u32) -> Option<char> {
        let hit = power(pcm, 697.0, rate) > 0.005 && power(pcm, 1209.0, rate) > 0.005;
        let edge = hit && !self.on;
        self.on = hit;
        edge.then_some('1')
    }
}

#[test]
fn inband_digits_reach_events_through_the_detector_hook() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    c.set_detector(Some(Box::new(OneDetector { on: false })));
    c.play(PlayRequest {
        id: 2,
        items: vec![PlayItem::Silence(Duration::from_secs(5))],
        repeat: 1,
        stop_on_dtmf: true,
    });
    // The phone plays "11" in-band: 100 ms tone, 60 ms gap each (what our own player sends).
    let mut phone_side = core(9, CodecKind::Pcmu, t0);
    phone_side.play(PlayRequest {
        id: 1,
        items: vec![PlayItem::Digits("11".into(), DigitMode::Inband)],
        repeat: 1,
        stop_on_dtmf: false,
    });
    let mut now = t0;
    let mut events = Vec::new();
    for _ in 0..30 {
        phone_side.tick(now);
        for p in sent(&mut phone_side) {
            c.on_rtp(&p, addr(40000), now);
        }
        c.tick(now);
        events.extend(c.drain_events());
        now += TICK;
    }
    let digits: Vec<&EngineEvent> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EngineEvent::Dtmf {
                    source: DtmfSource::Inband,
                    digit: '1',
                    ..
                }
            )
        })
        .collect();
    assert_eq!(digits.len(), 2, "{events:?}");
    assert!(events.contains(&EngineEvent::PlayDone {
        ep: EndpointId(1),
        id: 2,
        interrupted: true
    }));
}

#[test]
fn hold_sends_nothing_and_resumes_with_a_marker_and_the_running_clock() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let mut now = t0;
    let mut pkts = Vec::new();
    let tick = |c: &mut EndpointCore, now: &mut Instant, pkts: &mut Vec<Vec<u8>>| {
        c.tick(*now);
        pkts.extend(sent(c));
        *now += TICK;
    };
    for _ in 0..3 {
        tick(&mut c, &mut now, &mut pkts);
    }
    c.set_direction(Direction::RecvOnly, now);
    for _ in 0..5 {
        tick(&mut c, &mut now, &mut pkts);
    }
    assert_eq!(pkts.len(), 3, "nothing sent while recvonly");
    c.set_direction(Direction::SendRecv, now);
    tick(&mut c, &mut now, &mut pkts);
    let p: Vec<RtpPacket<'_>> = pkts
        .iter()
        .map(|p| RtpPacket::parse(p).expect("rtp"))
        .collect();
    assert_eq!(
        p[3].sequence,
        p[2].sequence.wrapping_add(1),
        "no sequence gap"
    );
    assert_eq!(
        p[3].timestamp,
        p[2].timestamp.wrapping_add(6 * 160),
        "the clock ran on"
    );
    assert!(p[3].marker);
    // Inactive for longer than the media timeout: no timeout reported.
    c.set_direction(Direction::Inactive, now);
    assert_eq!(timeouts(&mut c, &mut now, 200), 0);
}

#[test]
fn files_are_requested_once_per_play_and_errors_reported_once() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let a = PathBuf::from("a.wav");
    let missing = PathBuf::from("missing.wav");
    c.play(PlayRequest {
        id: 1,
        items: vec![
            PlayItem::File(a.clone()),
            PlayItem::File(missing.clone()),
            PlayItem::File(a.clone()),
        ],
        repeat: 3,
        stop_on_dtmf: false,
    });
    c.tick(t0);
    let loads = c.take_loads();
    let paths: Vec<&PathBuf> = loads.iter().map(|l| &l.1).collect();
    assert_eq!(
        paths,
        vec![&a, &missing],
        "every file asked for at once, once"
    );
    let clip: Arc<[i16]> = tone::sine(800.0, Duration::from_millis(100), 8000, 9000).into();
    c.file_loaded(loads[0].0, Ok(clip));
    c.file_loaded(loads[1].0, Err("cannot open".into()));
    let mut events = Vec::new();
    let mut now = t0;
    for _ in 0..400 {
        now += TICK;
        c.tick(now);
        assert!(c.take_loads().is_empty(), "repeats reuse what was loaded");
        events.extend(c.drain_events());
    }
    let errors = events
        .iter()
        .filter(|e| matches!(e, EngineEvent::FileError { .. }))
        .count();
    assert_eq!(errors, 1, "{events:?}");
    assert_eq!(
        events.last(),
        Some(&EngineEvent::PlayDone {
            ep: EndpointId(1),
            id: 1,
            interrupted: false
        })
    );
}

#[test]
fn rtcp_reports_both_ways() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    let mut phone = Phone::new(CodecKind::Pcmu, 500.0);
    let mut now = t0;
    let mut rtcp = Vec::new();
    for i in 0..300 {
        let p = phone.next();
        // Every tenth packet lost.
        if i % 10 != 5 {
            c.on_rtp(&p, addr(40000), now);
        }
        c.tick(now);
        rtcp.extend(c.drain_transmits().filter(|t| t.rtcp));
        now += TICK;
    }
    // Our report block describes the phone's stream.
    let sr = &rtcp[0].data;
    let block = crate::rtcp::first_report_block(sr).expect("report block");
    assert_eq!(block.ssrc, 77);
    assert!(block.cumulative_lost >= 20, "{block:?}");
    assert!(
        (20..=30).contains(&block.fraction_lost),
        "about 10 %: {block:?}"
    );
    // The phone's RR about our stream lands in the stats.
    let rr = crate::rtcp::build_receiver_report(
        77,
        &[crate::rtcp::ReportBlock {
            ssrc: c.ssrc(),
            fraction_lost: 64,
            cumulative_lost: 12,
            jitter: 80,
            ..Default::default()
        }],
    );
    c.on_rtcp(&rr, addr(40001), now);
    let q = c.stats().reported.expect("reported");
    assert_eq!(
        (q.fraction_lost, q.cumulative_lost, q.jitter_ms),
        (0.25, 12, 10.0)
    );
}

#[test]
fn a_reordered_end_packet_of_an_earlier_digit_is_not_a_new_press() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::Pcmu, t0);
    c.on_rtp(&event_packet(1, 1000, 1, false, 160), addr(40000), t0);
    c.on_rtp(&event_packet(2, 1000, 1, true, 800), addr(40000), t0);
    c.on_rtp(&event_packet(4, 2000, 2, false, 160), addr(40000), t0);
    // The second end retransmission of '1' arrives late.
    c.on_rtp(&event_packet(3, 1000, 1, true, 800), addr(40000), t0);
    c.on_rtp(&event_packet(5, 2000, 2, true, 800), addr(40000), t0);
    let digits: Vec<char> = c
        .drain_events()
        .filter_map(|e| match e {
            EngineEvent::Dtmf { digit, .. } => Some(digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['1', '2']);
}

/// An Opus phone's stream of one tone (48 kHz PCM encoded, PT 111, 960 timestamp units).
fn opus_phone_packets(freq: f64, n: usize) -> Vec<Vec<u8>> {
    let pcm = tone::sine(freq, Duration::from_millis(20 * n as u64), 48000, 8000);
    let mut enc = crate::codec::encoder(CodecKind::Opus).expect("encoder");
    pcm.chunks(960)
        .enumerate()
        .map(|(i, f)| {
            let mut payload = Vec::new();
            enc.encode(f, &mut payload).expect("encode");
            RtpHeader::new(111, 500 + i as u16, 960 * i as u32, 99)
                .build(&payload)
                .expect("build")
        })
        .collect()
}

/// Opus ↔ PCMU through a two-member bridge, the Opus leg capped at `limit`: returns what the
/// Opus phone heard (decoded at 48 kHz), what the PCMU phone heard, the Opus leg's rate and
/// the RTP timestamps it sent.
fn opus_pcmu_bridge(limit: Option<u32>) -> (Vec<i16>, Vec<i16>, u32, Vec<u32>, bool) {
    let t0 = Instant::now();
    let mut g = Group::new();
    let mut ca = core(1, CodecKind::Opus, t0);
    ca.set_pcm_rate_limit(limit);
    let a = g.insert(ca);
    let b = g.insert(core(2, CodecKind::Pcmu, t0));
    g.join(a, BridgeId(9));
    g.join(b, BridgeId(9));
    let from_a = opus_phone_packets(700.0, 40);
    let mut pb = Phone::new(CodecKind::Pcmu, 1500.0);
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    let mut now = t0;
    for x in &from_a {
        g.get_mut(a).expect("a").on_rtp(x, addr(40000), now);
        let y = pb.next();
        g.get_mut(b).expect("b").on_rtp(&y, addr(40002), now);
        g.tick(now);
        to_a.extend(sent(g.get_mut(a).expect("a")));
        to_b.extend(sent(g.get_mut(b).expect("b")));
        now += TICK;
    }
    let rate = g.get_mut(a).expect("a").rate();
    let resamplers =
        g.get_mut(a).expect("a").mix_conv.is_some() || g.get_mut(b).expect("b").mix_conv.is_some();
    let ts: Vec<u32> = to_a
        .iter()
        .map(|p| RtpPacket::parse(p).expect("rtp").timestamp)
        .collect();
    let mut dec = crate::codec::decoder(CodecKind::Opus).expect("decoder");
    let mut heard_a = Vec::new();
    for p in &to_a[10..] {
        let p = RtpPacket::parse(p).expect("rtp");
        assert_eq!(p.payload_type, 111);
        dec.decode(p.payload, &mut heard_a).expect("decode");
    }
    (
        heard_a,
        decode(CodecKind::Pcmu, &to_b[10..]),
        rate,
        ts,
        resamplers,
    )
}

#[test]
fn opus_leg_capped_at_8khz_transcodes_both_ways_without_resamplers() {
    for limit in [None, Some(8000)] {
        let (heard_a, heard_b, rate, ts, resamplers) = opus_pcmu_bridge(limit);
        assert_eq!(rate, limit.unwrap_or(48000), "{limit:?}");
        assert_eq!(resamplers, limit.is_none(), "{limit:?}");
        // The RTP clock stays 48 kHz: 960 units per 20 ms packet.
        assert!(ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 960));
        assert!(ts.len() >= 38, "{limit:?}: {} packets", ts.len());
        assert!(
            power(&heard_a, 1500.0, 48000) > 0.01 && power(&heard_a, 700.0, 48000) < 0.001,
            "{limit:?}: Opus side"
        );
        assert!(
            power(&heard_b, 700.0, 8000) > 0.01 && power(&heard_b, 1500.0, 8000) < 0.001,
            "{limit:?}: PCMU side"
        );
    }
}

#[test]
fn pcm_rate_limit_leaves_other_codecs_alone_and_can_be_lifted() {
    let t0 = Instant::now();
    let mut c = core(1, CodecKind::G722, t0);
    c.set_pcm_rate_limit(Some(8000));
    assert_eq!(c.rate(), 16000, "G.722 has no 8 kHz mode");
    let mut o = core(2, CodecKind::Opus, t0);
    o.set_pcm_rate_limit(Some(8000));
    assert_eq!(o.rate(), 8000);
    o.set_pcm_rate_limit(None);
    assert_eq!(o.rate(), 48000);
}

mod wideband;
