//! A muted leg (`Session::set_mute`, the one-way intercom): what its phone sends is counted but
//! not relayed, the other direction flows; unmuted, both flow again. Real UDP on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use media::rtp::RtpHeader;
use media::{Leg, Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on a wait for a packet that must arrive.
const WAIT: Duration = Duration::from_secs(10);

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("bound")
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    RtpHeader::new(0, seq, u32::from(seq) * 160, ssrc)
        .build(&[0x55; 160])
        .expect("packet")
}

/// The next packet `s` receives (or `None` when nothing is queued and `wait` passes).
async fn next(s: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let (n, _) = timeout(wait, s.recv_from(&mut buf)).await.ok()?.ok()?;
    buf.truncate(n);
    Some(buf)
}

#[tokio::test]
async fn a_muted_leg_is_not_relayed() {
    let relay = Relay::new(RelayConfig::default());
    let a = UdpSocket::bind((LO, 0)).await.expect("a");
    let b = UdpSocket::bind((LO, 0)).await.expect("b");
    let s = relay.allocate("intercom-1", LO, LO).expect("session");
    s.set_remote(Leg::A, addr(&a), None);
    s.set_remote(Leg::B, addr(&b), None);
    s.set_mute(Leg::B, true);
    s.flush().await;
    for i in 0..10u16 {
        let pa = rtp(i, 0xa);
        a.send_to(&pa, s.local(Leg::A)).await.expect("send");
        assert_eq!(next(&b, WAIT).await, Some(pa), "A is heard");
        b.send_to(&rtp(i, 0xb), s.local(Leg::B))
            .await
            .expect("send");
    }
    // B's ten packets arrived at the relay (counted) ...
    let start = std::time::Instant::now();
    while s.stats().b.packets_rx < 10 {
        assert!(
            start.elapsed() < WAIT,
            "B's packets never reached the relay"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... and none reached A: a packet A sends now is answered by nothing queued from B.
    assert_eq!(next(&a, Duration::ZERO).await, None, "B is not heard");
    assert_eq!(s.stats().b.packets_tx, 10, "the relay still sent A's to B");
    assert_eq!(s.stats().a.packets_tx, 0, "nothing of B's went to A");
    // Unmuted: B is heard again.
    s.set_mute(Leg::B, false);
    s.flush().await;
    let pb = rtp(10, 0xb);
    b.send_to(&pb, s.local(Leg::B)).await.expect("send");
    assert_eq!(next(&a, WAIT).await, Some(pb));
}
