//! Recording a relayed call through the relay's tap, with real UDP sockets on 127.0.0.1 as the
//! phones and the relay on a manual clock (arrival times are the test's, not the machine's).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::dtmf::DigitBurst;
use media::recorder::{
    AlignerConfig, Format, Layout, RecordTap, RecorderMetrics, RecordingSpec, StopReason,
};
use media::rtp::RtpHeader;
use media::{Leg, ManualClock, Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(10);

async fn phone() -> UdpSocket {
    UdpSocket::bind((LO, 0)).await.expect("bind")
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("addr")
}

async fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(WAIT, s.recv_from(&mut buf))
        .await
        .expect("nothing arrived")
        .expect("recv");
    buf.truncate(n);
    buf
}

fn level(code: u8) -> i16 {
    media::g711::decode_ulaw(&[code])[0]
}

#[tokio::test]
async fn a_tapped_call_is_recorded_in_stereo_while_forwarding_is_unchanged() {
    let clock = ManualClock::new();
    let relay = Relay::with_manual_clock(
        RelayConfig {
            media_timeout: Duration::from_secs(3600),
            ..RelayConfig::default()
        },
        clock.clone(),
    );
    let (a, b) = (phone().await, phone().await);
    let s = relay.allocate("rec-1", LO, LO).expect("allocate");
    s.set_remote(Leg::A, addr(&a), None);
    s.set_remote(Leg::B, addr(&b), None);
    let metrics = Arc::new(RecorderMetrics::default());
    let digits = Arc::new(Mutex::new(Vec::new()));
    let d2 = digits.clone();
    let tap = RecordTap::new(
        metrics.clone(),
        Some(Box::new(move |leg, d| {
            d2.lock().expect("lock").push((leg, d))
        })),
    );
    tap.set_telephone_event(Leg::A, Some(101));
    tap.set_telephone_event(Leg::B, Some(101));
    s.set_tap(Some(tap.clone()));
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("rec.wav");
    let rec = tap
        .start_recording(RecordingSpec {
            path: path.clone(),
            format: Format::Wav,
            aligner: AlignerConfig {
                rate: 8000,
                layout: Layout::Stereo,
                payloads: vec![],
                telephone_event: vec![101],
            },
            queue: 1024,
        })
        .expect("start");
    s.flush().await;
    // 500 ms: A talks the whole time, B answers after 200 ms.
    for i in 0..25u16 {
        let pa = RtpHeader::new(0, i, u32::from(i) * 160, 0xa)
            .build(&[0x90; 160])
            .expect("pkt");
        a.send_to(&pa, s.local(Leg::A)).await.expect("send");
        assert_eq!(recv(&b).await, pa, "forwarded unchanged");
        if i >= 10 {
            let pb = RtpHeader::new(0, i, 8000 + u32::from(i) * 160, 0xb)
                .build(&[0xa0; 160])
                .expect("pkt");
            b.send_to(&pb, s.local(Leg::B)).await.expect("send");
            assert_eq!(recv(&a).await, pb);
        }
        clock.advance(Duration::from_millis(20));
        s.flush().await;
    }
    // B keys `*1` as RFC 4733 events: each digit is reported once.
    for (k, (ev, ts)) in [(10u8, 20_000u32), (1, 21_000)].into_iter().enumerate() {
        let burst = DigitBurst {
            event: ev,
            payload_type: 101,
            ssrc: 0xb,
            first_sequence: 100 + k as u16 * 10,
            timestamp: ts,
            duration: 800,
            step: 160,
            volume: 10,
        };
        for p in burst.packets() {
            b.send_to(&p, s.local(Leg::B)).await.expect("send");
            assert_eq!(recv(&a).await, p);
        }
    }
    s.flush().await;
    assert_eq!(
        *digits.lock().expect("lock"),
        vec![(Leg::B, '*'), (Leg::B, '1')]
    );
    tap.stop_recording();
    let r = rec.finished().await;
    assert_eq!(r.reason, StopReason::Stopped, "{r:?}");
    assert_eq!(r.dropped, 0);
    assert_eq!(r.duration_ms, 500);
    let data = std::fs::read(&path).expect("file");
    assert_eq!(u16::from_le_bytes([data[22], data[23]]), 2, "stereo");
    let pcm: Vec<i16> = data[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let left: Vec<i16> = pcm.iter().step_by(2).copied().collect();
    let right: Vec<i16> = pcm.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(left.len(), 4000);
    assert!(left.iter().all(|&x| x == level(0x90)));
    assert!(
        right[..1600].iter().all(|&x| x == 0),
        "B silent before it talks"
    );
    assert!(right[1600..].iter().all(|&x| x == level(0xa0)));
    assert_eq!(metrics.active.load(std::sync::atomic::Ordering::Relaxed), 0);
    s.close().await;
}
