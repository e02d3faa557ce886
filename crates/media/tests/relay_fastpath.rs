//! The relay's cheaper per-packet path: one `recvfrom` per ready socket with level-triggered
//! readiness (a socket with a backlog is read in batches), counters published once per wake,
//! the clock rate of the last payload type remembered per leg. What these must not change:
//! every datagram relayed in order, and the jitter/loss figures.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use media::rtp::RtpHeader;
use media::{Leg, ManualClock, Relay, RelayConfig, Session};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Safety bound on every wait so a broken relay fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

async fn phone() -> UdpSocket {
    UdpSocket::bind((LO, 0)).await.expect("bind")
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("addr")
}

fn rtp(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    RtpHeader::new(pt, seq, u32::from(seq) * 160, ssrc)
        .build(&[0u8; 160])
        .expect("build")
}

async fn recv_seq(s: &UdpSocket) -> u16 {
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(WAIT, s.recv_from(&mut buf))
        .await
        .expect("nothing arrived")
        .expect("recv");
    assert!(n >= 12, "short datagram");
    u16::from_be_bytes([buf[2], buf[3]])
}

async fn call(relay: &Relay, a: &UdpSocket, b: &UdpSocket) -> Session {
    let s = relay.allocate("fastpath", LO, LO).expect("allocate");
    s.set_remote(Leg::A, addr(a), None);
    s.set_remote(Leg::B, addr(b), None);
    s.flush().await;
    s
}

/// A payload type the relay learns the clock rate of only after it has forwarded some of it
/// (a dynamic type, declared by a later `set_clock_rate`) is timed from then on: the remembered
/// "no clock rate" answer for it must not outlive the declaration.
#[tokio::test]
async fn a_clock_rate_declared_mid_stream_is_used_from_then_on() {
    let clock = ManualClock::new();
    let relay = Relay::with_manual_clock(
        RelayConfig {
            media_timeout: Duration::from_secs(3600),
            ..RelayConfig::default()
        },
        clock,
    );
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    for seq in 1..=5u16 {
        a.send_to(&rtp(96, seq, 7), s.local(Leg::A))
            .await
            .expect("send");
        assert_eq!(recv_seq(&b).await, seq);
    }
    s.flush().await;
    assert_eq!(s.stats().a.packets_rx, 5);
    assert_eq!(s.stats().a.jitter_ms, 0.0, "no clock rate, no jitter");

    s.set_clock_rate(Leg::A, 96, 8000);
    s.flush().await;
    // The clock stands still while timestamps advance 20 ms: each packet after the first
    // timed one adds |D| = 20 ms to the RFC 3550 estimator.
    for seq in 6..=15u16 {
        a.send_to(&rtp(96, seq, 7), s.local(Leg::A))
            .await
            .expect("send");
        assert_eq!(recv_seq(&b).await, seq);
    }
    s.flush().await;
    let want = 20.0 * (1.0 - (15.0f64 / 16.0).powi(9));
    let got = s.stats().a.jitter_ms;
    assert!((got - want).abs() < 0.01, "jitter {got} ms, want {want} ms");
    assert_eq!(s.stats().a.lost, 0);
}

/// Bursts into both legs and both directions at once, larger than one batch: with one
/// datagram read per ready socket and wake, and batches for sockets with a backlog, every
/// datagram still arrives, in order, and the counters published once per wake add up.
#[tokio::test]
async fn simultaneous_bursts_on_both_legs_arrive_whole_and_in_order() {
    let relay = Relay::new(RelayConfig {
        media_timeout: Duration::from_secs(3600),
        ..RelayConfig::default()
    });
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    const N: u16 = 100;
    for seq in 0..N {
        a.send_to(&rtp(0, seq, 1), s.local(Leg::A))
            .await
            .expect("send");
        b.send_to(&rtp(0, 1000 + seq, 2), s.local(Leg::B))
            .await
            .expect("send");
    }
    for seq in 0..N {
        assert_eq!(recv_seq(&b).await, seq, "A to B in order");
    }
    for seq in 0..N {
        assert_eq!(recv_seq(&a).await, 1000 + seq, "B to A in order");
    }
    s.flush().await;
    let st = s.stats();
    assert_eq!((st.a.packets_rx, st.b.packets_tx), (100, 100));
    assert_eq!((st.b.packets_rx, st.a.packets_tx), (100, 100));
    assert_eq!((st.a.lost, st.b.lost), (0, 0));
    assert_eq!(relay.metrics().packets_relayed, 200);
}
