//! End-to-end tests of the terminating media engine with real UDP sockets on 127.0.0.1: test
//! "phones" send paced RTP like a real phone and check what they hear with Goertzel filters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::codec::CodecKind;
use media::dtmf::DigitBurst;
use media::endpoint::{
    BridgeId, DtmfSource, Endpoint, EndpointId, EngineConfig, EngineEvent, MediaEngine, Negotiated,
    PlayItem, PlayRequest, RecordReason, RecordRequest,
};
use media::ports::PortPool;
use media::rtp::{RtpHeader, RtpPacket};
use media::tone;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Safety bound on every wait so a broken engine fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

fn engine() -> (MediaEngine, Receiver<EngineEvent>) {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let ports = Arc::new(PortPool::new(44000, 44999));
    let cfg = EngineConfig {
        workers: 2,
        ..EngineConfig::default()
    };
    (MediaEngine::new(cfg, ports, tx), rx)
}

/// A test phone: one UDP socket, sending a tone paced at 20 ms on its own thread.
struct Phone {
    sock: UdpSocket,
    codec: CodecKind,
}

impl Phone {
    fn new(codec: CodecKind) -> Phone {
        let sock = UdpSocket::bind((LO, 0)).expect("bind phone");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Phone { sock, codec }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    /// Sends `freq` for `dur` to `to`, paced in real time as a phone does.
    fn talk(&self, to: SocketAddr, freq: f64, dur: Duration) -> JoinHandle<()> {
        let sock = self.sock.try_clone().expect("clone");
        let codec = self.codec;
        std::thread::spawn(move || {
            let pcm = tone::sine(freq, dur, 8000, 10000);
            let mut enc = media::codec::encoder(codec).expect("encoder");
            let pt = codec.static_payload_type().unwrap_or(0);
            let start = Instant::now();
            for (i, frame) in pcm.chunks(160).enumerate() {
                let mut payload = Vec::new();
                enc.encode(frame, &mut payload).expect("encode");
                let mut h = RtpHeader::new(pt, 100 + i as u16, 1000 + 160 * i as u32, 0xabc);
                h.marker = i == 0;
                let _ = sock.send_to(&h.build(&payload).expect("rtp"), to);
                // Real-time pacing of the phone, not a wait for the engine.
                let next = start + Duration::from_millis(20 * (i as u64 + 1));
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    }

    /// Receives for `dur`: the decoded audio of the codec's payload type, in arrival order.
    fn listen(&self, dur: Duration) -> Vec<i16> {
        let mut dec = media::codec::decoder(self.codec).expect("decoder");
        let pt = self.codec.static_payload_type().unwrap_or(0);
        let mut buf = [0u8; 2048];
        let mut out = Vec::new();
        let end = Instant::now() + dur;
        while Instant::now() < end {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            if let Ok(p) = RtpPacket::parse(&buf[..n])
                && p.payload_type == pt
            {
                let _ = dec.decode(p.payload, &mut out);
            }
        }
        out
    }
}

fn open(e: &MediaEngine, id: u64, group: u64, phone: &Phone) -> Endpoint {
    let ep = e.open(EndpointId(id), LO, group, "call-1").expect("open");
    ep.set_codec(Negotiated::simple(phone.codec));
    ep.set_remote(phone.addr(), None);
    ep
}

async fn next_event(rx: &mut Receiver<EngineEvent>) -> EngineEvent {
    timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("engine alive")
}

fn power(pcm: &[i16], f: f64) -> f64 {
    tone::goertzel(pcm, f, 8000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_hears_a_played_wav_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prompt.wav");
    // 16 kHz file: the engine converts it to the leg's 8 kHz.
    let clip = tone::sine(1000.0, Duration::from_millis(800), 16000, 12000);
    media::wav::write_file(&path, 16000, &clip).expect("wav");
    let (e, mut rx) = engine();
    let phone = Phone::new(CodecKind::Pcmu);
    let ep = open(&e, 1, 1, &phone);
    ep.play(PlayRequest {
        id: 5,
        items: vec![PlayItem::File(path.clone())],
        repeat: 1,
        stop_on_dtmf: false,
    });
    let heard = tokio::task::spawn_blocking(move || phone.listen(Duration::from_millis(1200)))
        .await
        .expect("listen");
    assert!(heard.len() >= 8000, "{} samples", heard.len());
    let best = heard
        .chunks(1600)
        .map(|c| power(c, 1000.0))
        .fold(0.0, f64::max);
    assert!(best > 0.05, "1 kHz power {best}");
    assert_eq!(
        next_event(&mut rx).await,
        EngineEvent::PlayDone {
            ep: EndpointId(1),
            id: 5,
            interrupted: false
        }
    );
    let m = e.metrics();
    assert_eq!(m.files_loaded, 1);
    assert!(m.packets_tx >= 50);
    let stats = ep.close().await;
    assert!(stats.packets_tx >= 50);
    assert_eq!(e.metrics().endpoints, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_gives_file_error_tone_and_play_done() {
    let (e, mut rx) = engine();
    let phone = Phone::new(CodecKind::Pcma);
    let ep = open(&e, 2, 1, &phone);
    let path = PathBuf::from("/nonexistent/denwa/prompt.wav");
    ep.play(PlayRequest {
        id: 6,
        items: vec![PlayItem::File(path.clone())],
        repeat: 1,
        stop_on_dtmf: false,
    });
    let heard = tokio::task::spawn_blocking(move || phone.listen(Duration::from_millis(600)))
        .await
        .expect("listen");
    assert!(
        matches!(next_event(&mut rx).await, EngineEvent::FileError { ep: EndpointId(2), path: p, .. } if p == path)
    );
    assert!(power(&heard, 950.0) > 0.01, "error tone heard, not silence");
    assert!(matches!(
        next_event(&mut rx).await,
        EngineEvent::PlayDone {
            id: 6,
            interrupted: false,
            ..
        }
    ));
    ep.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digits_become_one_event_each() {
    let (e, mut rx) = engine();
    let phone = Phone::new(CodecKind::Pcmu);
    let ep = open(&e, 3, 1, &phone);
    let to = ep.local();
    let sock = phone.sock.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut seq = 500u16;
        for (k, d) in ['1', '#', '5'].into_iter().enumerate() {
            let burst = DigitBurst {
                event: media::dtmf::event_for_digit(d).expect("digit"),
                payload_type: 101,
                ssrc: 0xabc,
                first_sequence: seq,
                timestamp: 8000 * k as u32,
                duration: 800,
                step: 160,
                volume: 10,
            };
            for p in burst.packets() {
                seq = seq.wrapping_add(1);
                let _ = sock.send_to(&p, to);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let mut digits = Vec::new();
    while digits.len() < 3 {
        if let EngineEvent::Dtmf { ep, digit, source } = next_event(&mut rx).await {
            assert_eq!((ep, source), (EndpointId(3), DtmfSource::Rfc4733));
            digits.push(digit);
        }
    }
    // Seven packets per digit (three of them end retransmissions), one event each.
    assert_eq!(digits, vec!['1', '#', '5']);
    sender.join().expect("sender");
    ep.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcmu_and_pcma_phones_bridged_hear_each_other() {
    let (e, _rx) = engine();
    let a = Phone::new(CodecKind::Pcmu);
    let b = Phone::new(CodecKind::Pcma);
    let ea = open(&e, 10, 7, &a);
    let eb = open(&e, 11, 7, &b);
    ea.join(BridgeId(1));
    eb.join(BridgeId(1));
    let ta = a.talk(ea.local(), 600.0, Duration::from_millis(1500));
    let tb = b.talk(eb.local(), 1300.0, Duration::from_millis(1500));
    let (ha, hb) = tokio::task::spawn_blocking(move || {
        let la = std::thread::spawn(move || a.listen(Duration::from_millis(1400)));
        let hb = b.listen(Duration::from_millis(1400));
        (la.join().expect("a"), hb)
    })
    .await
    .expect("listen");
    ta.join().expect("talk");
    tb.join().expect("talk");
    let sa = ea.stats().await;
    assert!(sa.packets_rx >= 60 && sa.packets_tx >= 60, "{sa:?}");
    assert_eq!(sa.lost, 0, "{sa:?}");
    let mid = |v: &Vec<i16>| v[v.len() / 4..v.len() * 3 / 4].to_vec();
    let (ha, hb) = (mid(&ha), mid(&hb));
    assert!(
        power(&ha, 1300.0) > 0.01,
        "A hears B: {}",
        power(&ha, 1300.0)
    );
    assert!(
        power(&ha, 600.0) < power(&ha, 1300.0) / 100.0,
        "A does not hear itself"
    );
    assert!(power(&hb, 600.0) > 0.01, "B hears A: {}", power(&hb, 600.0));
    assert!(
        power(&hb, 1300.0) < power(&hb, 600.0) / 100.0,
        "B does not hear itself"
    );
    ea.close().await;
    eb.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_in_a_bridge_hear_the_other_two() {
    let (e, _rx) = engine();
    let freqs = [500.0, 1100.0, 1700.0];
    let phones: Vec<Phone> = (0..3).map(|_| Phone::new(CodecKind::Pcmu)).collect();
    let eps: Vec<Endpoint> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| open(&e, 20 + i as u64, 9, p))
        .collect();
    for ep in &eps {
        ep.join(BridgeId(2));
    }
    let talkers: Vec<JoinHandle<()>> = phones
        .iter()
        .zip(&eps)
        .zip(freqs)
        .map(|((p, ep), f)| p.talk(ep.local(), f, Duration::from_millis(1500)))
        .collect();
    let heard: Vec<Vec<i16>> = tokio::task::spawn_blocking(move || {
        let hs: Vec<JoinHandle<Vec<i16>>> = phones
            .into_iter()
            .map(|p| std::thread::spawn(move || p.listen(Duration::from_millis(1400))))
            .collect();
        hs.into_iter().map(|h| h.join().expect("listen")).collect()
    })
    .await
    .expect("listen");
    for t in talkers {
        t.join().expect("talk");
    }
    for (i, h) in heard.iter().enumerate() {
        let h = &h[h.len() / 4..h.len() * 3 / 4];
        let p: Vec<f64> = freqs.iter().map(|&f| power(h, f)).collect();
        for j in 0..3 {
            if i == j {
                assert!(p[j] < 0.002, "phone {i} hears itself: {p:?}");
            } else {
                assert!(p[j] > 0.005, "phone {i} does not hear {j}: {p:?}");
            }
        }
    }
    for ep in eps {
        ep.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_holds_the_received_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.wav");
    let (e, mut rx) = engine();
    let phone = Phone::new(CodecKind::Pcmu);
    let ep = open(&e, 30, 1, &phone);
    ep.record(RecordRequest {
        id: 8,
        path: path.clone(),
        max_len: Duration::from_millis(1000),
        silence: None,
        beep: false,
    });
    let t = phone.talk(ep.local(), 700.0, Duration::from_millis(1600));
    let ev = next_event(&mut rx).await;
    t.join().expect("talk");
    match ev {
        EngineEvent::RecordDone {
            ep: id,
            id: 8,
            path: p,
            duration,
            reason: RecordReason::MaxLength,
        } => {
            assert_eq!((id, &p), (EndpointId(30), &path));
            assert_eq!(duration, Duration::from_secs(1));
        }
        other => panic!("unexpected {other:?}"),
    }
    let wav = media::wav::read_file(&path).expect("complete WAV");
    assert_eq!((wav.sample_rate, wav.samples.len()), (8000, 8000));
    let tail = &wav.samples[4000..];
    assert!(power(tail, 700.0) > 0.01, "{}", power(tail, 700.0));
    ep.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_mid_recording_completes_the_file_and_frees_the_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.wav");
    let (e, mut rx) = engine();
    let phone = Phone::new(CodecKind::Pcmu);
    let ep = open(&e, 31, 1, &phone);
    let local = ep.local();
    ep.record(RecordRequest {
        id: 9,
        path: path.clone(),
        max_len: Duration::from_secs(60),
        silence: None,
        beep: false,
    });
    ep.play(PlayRequest {
        id: 1,
        items: vec![PlayItem::Silence(Duration::from_secs(60))],
        repeat: 1,
        stop_on_dtmf: false,
    });
    ep.close().await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_event(&mut rx).await);
    }
    assert!(seen.contains(&EngineEvent::PlayDone {
        ep: EndpointId(31),
        id: 1,
        interrupted: true
    }));
    assert!(seen.iter().any(|e| matches!(
        e,
        EngineEvent::RecordDone {
            reason: RecordReason::Closed,
            ..
        }
    )));
    assert!(path.exists() && !dir.path().join("rec.wav.part").exists());
    // The port pair is free again.
    UdpSocket::bind(local).expect("RTP port released");
    assert_eq!(e.metrics().endpoints, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_opened_on_another_worker_is_moved_to_the_bridge() {
    let (e, _rx) = engine();
    let p = Phone::new(CodecKind::Pcmu);
    let a = open(&e, 40, 0, &p);
    let b = open(&e, 41, 2, &p); // 2 % 2 workers: the same worker as group 0
    let c = open(&e, 42, 1, &p); // another worker
    a.join(BridgeId(5));
    b.join(BridgeId(5));
    assert_eq!(e.metrics().bridge_moves, 0);
    c.join(BridgeId(5));
    assert_eq!(
        e.metrics().bridge_moves,
        1,
        "c moved to the bridge's worker"
    );
    assert_eq!(e.metrics().bridge_splits, 0);
    // Everyone leaves: the bridge is forgotten, and c may start it afresh where it is now.
    a.leave();
    b.close().await;
    c.join(BridgeId(5));
    assert_eq!(e.metrics().bridge_moves, 1);
    // a rejoins: it was opened on that worker too, nothing moves.
    a.join(BridgeId(5));
    assert_eq!(e.metrics().bridge_moves, 1);
    a.close().await;
    c.close().await;
}

/// A caller who reaches a room from an IVR was opened on its own call's worker: when it
/// joins, it is moved to the room's worker with its sockets and state, and both hear each
/// other; its statistics and its close still reach it after the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_opened_on_different_workers_hear_each_other() {
    let (e, _rx) = engine();
    let a = Phone::new(CodecKind::Pcmu);
    let b = Phone::new(CodecKind::Pcma);
    let ea = open(&e, 50, 8, &a); // worker 0
    let eb = open(&e, 51, 7, &b); // worker 1
    ea.join(BridgeId(9));
    eb.join(BridgeId(9));
    assert_eq!(e.metrics().bridge_moves, 1);
    let ta = a.talk(ea.local(), 600.0, Duration::from_millis(1500));
    let tb = b.talk(eb.local(), 1300.0, Duration::from_millis(1500));
    let (ha, hb) = tokio::task::spawn_blocking(move || {
        let la = std::thread::spawn(move || a.listen(Duration::from_millis(1400)));
        let hb = b.listen(Duration::from_millis(1400));
        (la.join().expect("a"), hb)
    })
    .await
    .expect("listen");
    ta.join().expect("talk");
    tb.join().expect("talk");
    let sb = eb.stats().await;
    assert!(sb.packets_rx >= 60 && sb.packets_tx >= 60, "{sb:?}");
    let mid = |v: &Vec<i16>| v[v.len() / 4..v.len() * 3 / 4].to_vec();
    let (ha, hb) = (mid(&ha), mid(&hb));
    assert!(
        power(&ha, 1300.0) > 0.01,
        "A hears B: {}",
        power(&ha, 1300.0)
    );
    assert!(power(&hb, 600.0) > 0.01, "B hears A: {}", power(&hb, 600.0));
    assert!(
        power(&hb, 1300.0) < power(&hb, 600.0) / 100.0,
        "B does not hear itself"
    );
    let closed = eb.close().await;
    assert!(
        closed.packets_rx >= 60,
        "the close reached the moved leg: {closed:?}"
    );
    ea.close().await;
    assert_eq!(e.metrics().bridge_splits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_engine_share_one_port_range_without_double_use() {
    // Four pairs in all: a relay session takes two, two endpoints the rest.
    let pool = Arc::new(PortPool::new(45100, 45107));
    let relay = media::Relay::with_ports(media::RelayConfig::default(), pool.clone());
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let e = MediaEngine::new(EngineConfig::default(), pool, tx);
    let s = relay.allocate("c1", LO, LO).expect("relay session");
    let a = e.open(EndpointId(1), LO, 0, "c2").expect("endpoint a");
    let b = e.open(EndpointId(2), LO, 0, "c3").expect("endpoint b");
    let mut ports = vec![
        s.local(media::Leg::A).port(),
        s.local(media::Leg::B).port(),
        a.local().port(),
        b.local().port(),
    ];
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports, vec![45100, 45102, 45104, 45106]);
    assert!(matches!(
        e.open(EndpointId(3), LO, 0, "c4"),
        Err(media::endpoint::Error::Ports(
            media::Error::PortsExhausted { .. }
        ))
    ));
    assert!(relay.allocate("c5", LO, LO).is_err());
    // A pair the engine releases is the relay's again (and the other way round).
    a.close().await;
    s.close().await;
    let s2 = relay
        .allocate("c6", LO, LO)
        .expect("relay gets freed pairs");
    let c = e
        .open(EndpointId(4), LO, 0, "c7")
        .expect("the engine gets the last");
    assert!(
        e.open(EndpointId(5), LO, 0, "c8").is_err(),
        "all four in use again"
    );
    s2.close().await;
    b.close().await;
    c.close().await;
}

/// An endpoint re-opened on the socket another one had (hold music continued after a
/// take-over): same address, and the phone hears it from there; a socket in use is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_opens_again_on_a_given_socket() {
    let (e, _rx) = engine();
    let phone = Phone::new(CodecKind::Pcmu);
    let first = open(&e, 31, 1, &phone);
    let at = first.local();
    // Taken: refused with an error, nothing opened.
    assert!(e.open_at(EndpointId(32), at, 1, "again").is_err());
    first.close().await;
    let ep = e.open_at(EndpointId(33), at, 1, "again").expect("open_at");
    assert_eq!(ep.local(), at);
    ep.set_codec(Negotiated::simple(phone.codec));
    ep.set_remote(phone.addr(), None);
    ep.play(PlayRequest {
        id: 1,
        items: vec![PlayItem::Silence(Duration::from_secs(5))],
        repeat: 1,
        stop_on_dtmf: false,
    });
    let sock = phone.sock.try_clone().expect("clone");
    let from = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 2048];
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                return Some(from);
            }
        }
        None
    })
    .await
    .expect("listen");
    assert_eq!(
        from,
        Some(at),
        "the phone hears the endpoint from the same socket"
    );
    ep.close().await;
}
