//! End-to-end relay tests with real UDP sockets on 127.0.0.1 playing the phones.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use media::dtmf::DigitBurst;
use media::rtcp::{self, ReportBlock};
use media::rtp::{RtpHeader, RtpPacket};
use media::{Error, Leg, ManualClock, Relay, RelayConfig, Session};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Safety bound on every wait so a broken relay fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

fn relay_with(media_timeout: Duration) -> Relay {
    Relay::new(RelayConfig {
        media_timeout,
        ..RelayConfig::default()
    })
}

fn relay() -> Relay {
    relay_with(Duration::from_secs(3600))
}

/// A relay on a clock that moves only when the test says so.
fn manual(media_timeout: Duration) -> (Relay, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let relay = Relay::with_manual_clock(
        RelayConfig {
            media_timeout,
            ..RelayConfig::default()
        },
        clock.clone(),
    );
    (relay, clock)
}

/// Moves the relay's clock on and waits until the relay has looked at the new time.
async fn pass(clock: &ManualClock, s: &Session, by: Duration) {
    clock.advance(by);
    s.flush().await;
}

async fn phone() -> UdpSocket {
    UdpSocket::bind((LO, 0)).await.unwrap()
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    RtpHeader::new(0, seq, ts, ssrc).build(payload).unwrap()
}

async fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 4096];
    let (n, from) = timeout(WAIT, s.recv_from(&mut buf))
        .await
        .expect("nothing arrived")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

/// A session whose legs point at phones `a` and `b` (RTP sockets; RTCP = their ports + 1 unless given).
async fn call(relay: &Relay, a: &UdpSocket, b: &UdpSocket) -> Session {
    let s = relay.allocate("call-1", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(a), None);
    s.set_remote(Leg::B, addr(b), None);
    // Applied before the test goes on (the relay's clock may be moved next).
    s.flush().await;
    s
}

/// Polls `f` until it holds; the bound only guards against hangs.
async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn relays_both_directions() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    assert_eq!(s.local(Leg::A).ip(), LO);
    assert_eq!(s.local(Leg::A).port() % 2, 0);
    assert_eq!(s.local_rtcp(Leg::A).port(), s.local(Leg::A).port() + 1);
    assert_ne!(s.local(Leg::A), s.local(Leg::B));

    for i in 0..20u16 {
        let pa = rtp(i, u32::from(i) * 160, 0xa, &[i as u8; 160]);
        a.send_to(&pa, s.local(Leg::A)).await.unwrap();
        let (got, from) = recv(&b).await;
        assert_eq!(got, pa);
        assert_eq!(from, s.local(Leg::B), "B must hear the relay's B port");

        let pb = rtp(i, u32::from(i) * 160, 0xb, &[0x55; 160]);
        b.send_to(&pb, s.local(Leg::B)).await.unwrap();
        let (got, from) = recv(&a).await;
        assert_eq!(got, pb);
        assert_eq!(from, s.local(Leg::A));
    }
    eventually(|| s.stats().b.packets_rx == 20).await;
    let st = s.stats();
    assert_eq!((st.a.packets_rx, st.a.packets_tx), (20, 20));
    assert_eq!((st.b.packets_rx, st.b.packets_tx), (20, 20));
    assert_eq!(st.a.bytes_rx, 20 * 172);
    assert_eq!(st.a.lost, 0);
    assert!(st.a.last_packet_at.is_some());
    assert_eq!(st.a.remote, Some(addr(&a)));
    let m = relay.metrics();
    assert_eq!(m.packets_relayed, 40);
    assert_eq!(m.active_sessions, 1);
    assert_eq!(m.sessions_total, 1);
}

#[tokio::test]
async fn latches_to_real_source_behind_nat() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    // A's SDP names an address that is not where its media comes from (a private address behind NAT).
    let s = relay.allocate("nat", LO, LO).unwrap();
    let sdp_a = SocketAddr::new(LO, 9); // discard port: nothing listens for us there
    s.set_remote(Leg::A, sdp_a, None);
    s.set_remote(Leg::B, addr(&b), None);
    eventually(|| s.stats().a.remote == Some(sdp_a)).await;

    a.send_to(&rtp(1, 0, 1, b"hello"), s.local(Leg::A))
        .await
        .unwrap();
    assert_eq!(recv(&b).await.0, rtp(1, 0, 1, b"hello"));
    // B's answer must now reach A's real address, not the SDP one.
    b.send_to(&rtp(7, 0, 2, b"back"), s.local(Leg::B))
        .await
        .unwrap();
    assert_eq!(recv(&a).await.0, rtp(7, 0, 2, b"back"));
    assert_eq!(s.stats().a.remote, Some(addr(&a)));

    // Repeating the same SDP (a re-INVITE) keeps the latch.
    s.set_remote(Leg::A, sdp_a, None);
    b.send_to(&rtp(8, 160, 2, b"again"), s.local(Leg::B))
        .await
        .unwrap();
    assert_eq!(recv(&a).await.0, rtp(8, 160, 2, b"again"));

    // Old-style hold (c=0.0.0.0) does not move the destination either.
    s.set_remote(Leg::A, "0.0.0.0:4000".parse().unwrap(), None);
    b.send_to(&rtp(9, 320, 2, b"held"), s.local(Leg::B))
        .await
        .unwrap();
    assert_eq!(recv(&a).await.0, rtp(9, 320, 2, b"held"));
    assert_eq!(s.stats().a.remote, Some(addr(&a)));
}

#[tokio::test]
async fn relatches_after_nat_rebinding_but_not_to_a_stranger() {
    let relay = Relay::new(RelayConfig {
        relatch_packets: 3,
        ..RelayConfig::default()
    });
    let (a, b, stranger, a_new) = (phone().await, phone().await, phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    a.send_to(&rtp(1, 0, 1, b"a1"), s.local(Leg::A))
        .await
        .unwrap();
    assert_eq!(recv(&b).await.0, rtp(1, 0, 1, b"a1"));

    // A stranger interleaving with the real phone never takes over, even with good sequence numbers.
    for i in 0..10u16 {
        stranger
            .send_to(&rtp(100 + i, 0, 9, b"evil"), s.local(Leg::A))
            .await
            .unwrap();
        stranger
            .send_to(&rtp(200 + i, 0, 9, b"evil"), s.local(Leg::A))
            .await
            .unwrap();
        a.send_to(&rtp(2 + i, 0, 1, b"good"), s.local(Leg::A))
            .await
            .unwrap();
        let (got, _) = recv(&b).await;
        assert_eq!(RtpPacket::parse(&got).unwrap().payload, b"good");
    }
    b.send_to(&rtp(1, 0, 2, b"to-a"), s.local(Leg::B))
        .await
        .unwrap();
    assert_eq!(recv(&a).await.0, rtp(1, 0, 2, b"to-a"));

    // The phone's NAT mapping moves: after 3 in-sequence packets the new source takes over.
    for seq in 50..53u16 {
        a_new
            .send_to(&rtp(seq, 0, 1, b"moved"), s.local(Leg::A))
            .await
            .unwrap();
    }
    let (got, _) = recv(&b).await;
    assert_eq!(
        RtpPacket::parse(&got).unwrap().sequence,
        52,
        "first two are probation"
    );
    b.send_to(&rtp(2, 0, 2, b"to-new"), s.local(Leg::B))
        .await
        .unwrap();
    assert_eq!(recv(&a_new).await.0, rtp(2, 0, 2, b"to-new"));
    assert_eq!(s.stats().a.remote, Some(addr(&a_new)));
    eventually(|| s.stats().a.dropped == 20 + 2).await;
}

#[tokio::test]
async fn rtcp_is_relayed_and_reports_are_read() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let (a_rtcp, b_rtcp) = (phone().await, phone().await);
    let s = relay.allocate("rtcp", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(&a), Some(addr(&a_rtcp)));
    s.set_remote(Leg::B, addr(&b), Some(addr(&b_rtcp)));

    let block = ReportBlock {
        ssrc: 2,
        fraction_lost: 64,
        cumulative_lost: 12,
        highest_seq: 1000,
        jitter: 80,
        ..Default::default()
    };
    let rr = rtcp::build_receiver_report(1, &[block]);
    a_rtcp.send_to(&rr, s.local_rtcp(Leg::A)).await.unwrap();
    let (got, from) = recv(&b_rtcp).await;
    assert_eq!(got, rr);
    assert_eq!(from, s.local_rtcp(Leg::B));

    let sr = rtcp::build_sender_report(2, &Default::default(), &[]);
    b_rtcp.send_to(&sr, s.local_rtcp(Leg::B)).await.unwrap();
    assert_eq!(recv(&a_rtcp).await.0, sr);

    eventually(|| {
        let st = s.stats();
        st.a.reported.is_some() && st.a.rtcp_tx == 1 && st.b.rtcp_tx == 1
    })
    .await;
    let st = s.stats();
    let rep = st.a.reported.unwrap();
    assert_eq!(rep.fraction_lost, 0.25);
    assert_eq!(rep.cumulative_lost, 12);
    assert_eq!(rep.jitter_ms, 10.0); // 80 units at 8 kHz
    assert_eq!((st.a.rtcp_rx, st.b.rtcp_tx), (1, 1));
    assert_eq!((st.b.rtcp_rx, st.a.rtcp_tx), (1, 1));
    assert_eq!(st.a.packets_rx, 0, "RTCP is not counted as RTP");
}

#[tokio::test]
async fn rtcp_muxed_on_the_rtp_port_is_relayed() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    // RTCP on the RTP port is accepted only from the latched RTP source.
    a.send_to(&rtp(1, 0, 1, b"x"), s.local(Leg::A))
        .await
        .unwrap();
    recv(&b).await;
    let rr = rtcp::build_receiver_report(1, &[]);
    a.send_to(&rr, s.local(Leg::A)).await.unwrap();
    assert_eq!(recv(&b).await.0, rr);
}

#[tokio::test]
async fn stats_count_loss_and_jitter() {
    let (relay, _clock) = manual(Duration::from_secs(3600));
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    // The clock stands still, so every packet "arrives" at the same instant while its RTP
    // timestamp advances 20 ms: each packet adds |D| = 20 ms to the RFC 3550 estimator.
    for seq in 1..=10u16 {
        a.send_to(
            &rtp(seq, u32::from(seq) * 160, 5, &[0; 160]),
            s.local(Leg::A),
        )
        .await
        .unwrap();
        recv(&b).await;
    }
    let want = 20.0 * (1.0 - (15.0f64 / 16.0).powi(9));
    eventually(|| s.stats().a.packets_rx == 10).await;
    let got = s.stats().a.jitter_ms;
    assert!((got - want).abs() < 0.01, "jitter {got} ms, want {want} ms");

    // A gap of two sequence numbers is two lost packets; reordering costs nothing.
    for seq in [11u16, 14, 13, 15] {
        a.send_to(
            &rtp(seq, u32::from(seq) * 160, 5, &[0; 160]),
            s.local(Leg::A),
        )
        .await
        .unwrap();
        recv(&b).await;
    }
    eventually(|| s.stats().a.packets_rx == 14).await;
    assert_eq!(s.stats().a.lost, 1);
    assert_eq!(s.stats().b.lost, 0);
}

#[tokio::test]
async fn media_timeout_fires_when_silent() {
    let (relay, clock) = manual(Duration::from_secs(30));
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    pass(&clock, &s, Duration::from_secs(29)).await;
    assert!(!s.is_timed_out(), "29 s of silence is not 30");
    pass(&clock, &s, Duration::from_secs(1)).await;
    assert!(s.is_timed_out());
    timeout(WAIT, s.timed_out())
        .await
        .expect("timed_out() does not complete");
    assert_eq!(relay.metrics().media_timeouts, 1);
}

#[tokio::test]
async fn timeout_clears_when_media_resumes_or_sdp_changes() {
    let (relay, clock) = manual(Duration::from_secs(5));
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    // Silent early media: the timeout fires...
    pass(&clock, &s, Duration::from_secs(5)).await;
    assert!(s.is_timed_out());
    // ...but the answer's SDP starts a fresh window.
    s.set_remote(Leg::B, addr(&b), None);
    s.flush().await;
    assert!(!s.is_timed_out());
    pass(&clock, &s, Duration::from_secs(4)).await;
    assert!(!s.is_timed_out());
    pass(&clock, &s, Duration::from_secs(1)).await;
    assert!(s.is_timed_out(), "no second timeout");
    // Media arriving again clears it too.
    a.send_to(&rtp(1, 0, 1, b"x"), s.local(Leg::A))
        .await
        .unwrap();
    recv(&b).await;
    assert!(!s.is_timed_out());
    assert_eq!(relay.metrics().media_timeouts, 2);
}

#[tokio::test]
async fn media_keeps_the_call_alive() {
    let (relay, clock) = manual(Duration::from_secs(5));
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    // One packet a second for 20 s: never 5 s of silence.
    for seq in 0..20u16 {
        a.send_to(&rtp(seq, 0, 1, b"x"), s.local(Leg::A))
            .await
            .unwrap();
        recv(&b).await;
        pass(&clock, &s, Duration::from_secs(1)).await;
        assert!(!s.is_timed_out(), "timed out at {seq}");
    }
    // Then silence: it fires 5 s after the last packet.
    pass(&clock, &s, Duration::from_secs(3)).await;
    assert!(!s.is_timed_out());
    pass(&clock, &s, Duration::from_secs(1)).await;
    assert!(s.is_timed_out());
}

#[tokio::test]
async fn no_media_timeout_on_hold() {
    let (relay, clock) = manual(Duration::from_secs(5));
    let (a, b) = (phone().await, phone().await);
    let s = relay.allocate("hold", LO, LO).unwrap();
    s.set_hold(true);
    s.set_remote(Leg::A, addr(&a), None);
    s.set_remote(Leg::B, addr(&b), None);
    pass(&clock, &s, Duration::from_secs(600)).await;
    assert!(!s.is_timed_out());
    assert!(s.stats().on_hold);
    // Off hold, silence counts again, from the moment of resuming.
    s.set_hold(false);
    s.flush().await;
    pass(&clock, &s, Duration::from_secs(4)).await;
    assert!(!s.is_timed_out());
    pass(&clock, &s, Duration::from_secs(1)).await;
    assert!(s.is_timed_out());
}

#[tokio::test]
async fn no_media_timeout_before_both_legs_are_known() {
    let (relay, clock) = manual(Duration::from_secs(5));
    let a = phone().await;
    let s = relay.allocate("ringing", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(&a), None);
    pass(&clock, &s, Duration::from_secs(600)).await;
    assert!(
        !s.is_timed_out(),
        "ringing without B's SDP is not dead media"
    );
}

/// Finds `n` consecutive free UDP ports on 127.0.0.1 starting at an even port.
fn free_range(n: u16) -> u16 {
    'outer: for base in (40000..60000u16)
        .step_by(64)
        .map(|b| b + (std::process::id() % 32) as u16 * 2)
    {
        let mut held = Vec::new();
        for p in base..base + n {
            match std::net::UdpSocket::bind((LO, p)) {
                Ok(s) => held.push(s),
                Err(_) => continue 'outer,
            }
        }
        return base;
    }
    panic!("no free port range");
}

#[tokio::test]
async fn port_exhaustion_is_an_error_and_ports_come_back() {
    let base = free_range(4);
    let relay = Relay::new(RelayConfig {
        port_min: base,
        port_max: base + 3,
        ..RelayConfig::default()
    });
    let s1 = relay.allocate("one", LO, LO).unwrap();
    let mut ports = [s1.local(Leg::A).port(), s1.local(Leg::B).port()];
    ports.sort();
    assert_eq!(ports, [base, base + 2]);
    match relay.allocate("two", LO, LO) {
        Err(e @ Error::PortsExhausted { .. }) => {
            assert!(e.to_string().contains(&base.to_string()), "{e}")
        }
        other => panic!("expected exhaustion, got {other:?}"),
    }
    // close() waits until the ports are free again.
    s1.close().await;
    let s2 = relay.allocate("three", LO, LO).unwrap();
    // Dropping releases them too (the task ends on its own shortly after).
    drop(s2);
    let mut again = None;
    for _ in 0..1000 {
        if let Ok(s) = relay.allocate("four", LO, LO) {
            again = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(again.is_some(), "ports never released after drop");
    drop(again);
    eventually(|| relay.metrics().active_sessions == 0).await;
    assert_eq!(relay.metrics().sessions_total, 3);
}

#[tokio::test]
async fn bad_range_and_foreign_address_are_errors() {
    let relay = Relay::new(RelayConfig {
        port_min: 30001,
        port_max: 30001,
        ..RelayConfig::default()
    });
    assert!(matches!(
        relay.allocate("x", LO, LO),
        Err(Error::InvalidRange { .. })
    ));
    // TEST-NET-1 is not a local address: a bind error, not a scan of the whole range.
    let foreign: IpAddr = "192.0.2.1".parse().unwrap();
    assert!(matches!(
        Relay::new(RelayConfig::default()).allocate("x", foreign, LO),
        Err(Error::Bind { .. })
    ));
}

/// The relay runs on its own threads: a caller without a tokio runtime can use it too.
#[test]
fn relays_without_a_tokio_runtime() {
    let relay = relay();
    let a = std::net::UdpSocket::bind((LO, 0)).unwrap();
    let b = std::net::UdpSocket::bind((LO, 0)).unwrap();
    b.set_read_timeout(Some(WAIT)).unwrap();
    let s = relay.allocate("plain", LO, LO).unwrap();
    s.set_remote(Leg::A, a.local_addr().unwrap(), None);
    s.set_remote(Leg::B, b.local_addr().unwrap(), None);
    let p = rtp(1, 0, 1, b"plain");
    a.send_to(&p, s.local(Leg::A)).unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = b.recv_from(&mut buf).expect("nothing relayed");
    assert_eq!((&buf[..n], from), (&p[..], s.local(Leg::B)));
}

#[tokio::test]
async fn malformed_packets_are_dropped_and_counted() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let (a_rtcp, b_rtcp) = (phone().await, phone().await);
    let s = relay.allocate("junk", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(&a), Some(addr(&a_rtcp)));
    s.set_remote(Leg::B, addr(&b), Some(addr(&b_rtcp)));
    let good = rtp(1, 0, 1, b"ok");
    let mut bad_version = good.clone();
    bad_version[0] = 0x40;
    let mut bad_csrc = good.clone();
    bad_csrc[0] = 0x8f;
    let mut bad_pad = good.clone();
    bad_pad[0] = 0xa0;
    *bad_pad.last_mut().unwrap() = 200;
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0x80; 11],
        bad_version,
        bad_csrc,
        bad_pad,
        vec![0x80, 201, 0xff, 0xff], // RTCP on the RTP port with a bogus length
        vec![0x80; 3000],            // oversized
    ];
    for j in &junk {
        a.send_to(j, s.local(Leg::A)).await.unwrap();
    }
    for j in [&[0x80u8, 201, 0, 9][..], &[0x00; 8][..], &[][..]] {
        a_rtcp.send_to(j, s.local_rtcp(Leg::A)).await.unwrap();
    }
    // The session survives: the next valid packets go through, and nothing else did before them.
    a.send_to(&good, s.local(Leg::A)).await.unwrap();
    assert_eq!(recv(&b).await.0, good);
    let rr = rtcp::build_receiver_report(1, &[]);
    a_rtcp.send_to(&rr, s.local_rtcp(Leg::A)).await.unwrap();
    assert_eq!(recv(&b_rtcp).await.0, rr);
    eventually(|| {
        let st = s.stats();
        st.a.malformed == junk.len() as u64 + 3 && st.a.packets_rx == 1 && st.a.rtcp_rx == 1
    })
    .await;
    assert_eq!(relay.metrics().packets_malformed, junk.len() as u64 + 3);
}

#[tokio::test]
async fn dtmf_events_pass_through_unchanged() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    s.set_clock_rate(Leg::A, 101, 8000);
    let burst = DigitBurst {
        event: 5,
        payload_type: 101,
        ssrc: 3,
        first_sequence: 10,
        timestamp: 4000,
        duration: 800,
        step: 160,
        volume: 10,
    };
    for p in burst.packets() {
        a.send_to(&p, s.local(Leg::A)).await.unwrap();
        assert_eq!(recv(&b).await.0, p);
    }
}

#[tokio::test]
async fn each_leg_binds_its_own_local_address() {
    let relay = relay();
    let second: IpAddr = "127.0.0.2".parse().unwrap();
    let a = phone().await;
    let b = UdpSocket::bind((second, 0)).await.unwrap();
    let s = relay.allocate("multihome", LO, second).unwrap();
    assert_eq!(s.local(Leg::A).ip(), LO);
    assert_eq!(s.local(Leg::B).ip(), second);
    s.set_remote(Leg::A, addr(&a), None);
    s.set_remote(Leg::B, addr(&b), None);
    a.send_to(&rtp(1, 0, 1, b"seg"), s.local(Leg::A))
        .await
        .unwrap();
    let (got, from) = recv(&b).await;
    assert_eq!(got, rtp(1, 0, 1, b"seg"));
    assert_eq!(from, s.local(Leg::B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_session_does_not_affect_another() {
    // Two relay threads: the bad and the good session land on different ones.
    let relay = Relay::new(RelayConfig {
        media_timeout: Duration::from_secs(3600),
        workers: 2,
        ..RelayConfig::default()
    });
    let a1 = phone().await;
    let (a2, b2) = (phone().await, phone().await);
    let bad = relay.allocate("bad", LO, LO).unwrap();
    // Its B side points at a port nobody listens on (ICMP unreachable on every send).
    let dead = phone().await;
    let dead_addr = addr(&dead);
    drop(dead);
    bad.set_remote(Leg::A, addr(&a1), None);
    bad.set_remote(Leg::B, dead_addr, None);
    let good = call(&relay, &a2, &b2).await;
    let bad_port = bad.local(Leg::A);
    let mut bad = Some(bad);

    for i in 0..200u16 {
        // The bad call gets junk and traffic into the void, and is torn down half-way...
        a1.send_to(&[0xde, 0xad], bad_port).await.unwrap();
        a1.send_to(&rtp(i, 0, 1, b"void"), bad_port).await.unwrap();
        if i == 100 {
            drop(bad.take());
        }
        // ...while the good call keeps relaying both ways, in order.
        let p = rtp(i, u32::from(i) * 160, 2, &[1; 160]);
        a2.send_to(&p, good.local(Leg::A)).await.unwrap();
        assert_eq!(recv(&b2).await.0, p);
        b2.send_to(&p, good.local(Leg::B)).await.unwrap();
        assert_eq!(recv(&a2).await.0, p);
    }
    let st = good.stats();
    assert_eq!(st.a.lost + st.b.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_never_cross_media() {
    // Three relay threads, so the sessions are spread over several epoll loops (a 2-CPU
    // machine's default is one).
    let relay = Relay::new(RelayConfig {
        media_timeout: Duration::from_secs(3600),
        workers: 3,
        ..RelayConfig::default()
    });
    assert_eq!(relay.workers(), 3);
    let mut calls = Vec::new();
    for i in 0..100u32 {
        let (a, b) = (phone().await, phone().await);
        let s = relay.allocate(&format!("c{i}"), LO, LO).unwrap();
        s.set_remote(Leg::A, addr(&a), None);
        s.set_remote(Leg::B, addr(&b), None);
        calls.push((i, a, b, s));
    }
    for seq in 0..5u16 {
        for (i, a, b, s) in &calls {
            a.send_to(&rtp(seq, 0, *i, b"fwd"), s.local(Leg::A))
                .await
                .unwrap();
            b.send_to(&rtp(seq, 0, 1000 + *i, b"rev"), s.local(Leg::B))
                .await
                .unwrap();
        }
    }
    for (i, a, b, _) in &calls {
        for seq in 0..5u16 {
            let p = recv(b).await.0;
            let p = RtpPacket::parse(&p).unwrap();
            assert_eq!(
                (p.ssrc, p.sequence),
                (*i, seq),
                "B of call {i} heard someone else"
            );
            let p = recv(a).await.0;
            let p = RtpPacket::parse(&p).unwrap();
            assert_eq!(
                (p.ssrc, p.sequence),
                (1000 + *i, seq),
                "A of call {i} heard someone else"
            );
        }
    }
    assert_eq!(relay.metrics().active_sessions, 100);
    drop(calls);
    eventually(|| relay.metrics().active_sessions == 0).await;
}

#[tokio::test]
async fn leg_without_sdp_latches_on_first_packet_and_drops_until_then() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let s = relay.allocate("early", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(&a), None);
    // Nowhere to send A's packet yet: dropped and counted, not queued.
    a.send_to(&rtp(1, 0, 1, b"lost"), s.local(Leg::A))
        .await
        .unwrap();
    eventually(|| s.stats().a.dropped == 1).await;
    // B's first packet teaches the relay where B is.
    b.send_to(&rtp(1, 0, 2, b"hi"), s.local(Leg::B))
        .await
        .unwrap();
    assert_eq!(recv(&a).await.0, rtp(1, 0, 2, b"hi"));
    a.send_to(&rtp(2, 160, 1, b"now"), s.local(Leg::A))
        .await
        .unwrap();
    assert_eq!(recv(&b).await.0, rtp(2, 160, 1, b"now"));
    assert_eq!(s.stats().b.remote, Some(addr(&b)));
    assert_eq!(relay.metrics().packets_dropped, 1);
}

#[tokio::test]
async fn rtcp_from_another_host_is_not_latched() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let (a_rtcp, b_rtcp) = (phone().await, phone().await);
    let other_host = UdpSocket::bind(("127.0.0.2", 0)).await.unwrap();
    let s = relay.allocate("rtcp-host", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(&a), Some(addr(&a_rtcp)));
    s.set_remote(Leg::B, addr(&b), Some(addr(&b_rtcp)));
    a.send_to(&rtp(1, 0, 1, b"x"), s.local(Leg::A))
        .await
        .unwrap();
    recv(&b).await;
    // RTP is latched to 127.0.0.1: RTCP from 127.0.0.2 is refused.
    let bogus = rtcp::build_receiver_report(66, &[]);
    other_host
        .send_to(&bogus, s.local_rtcp(Leg::A))
        .await
        .unwrap();
    let rr = rtcp::build_receiver_report(1, &[]);
    a_rtcp.send_to(&rr, s.local_rtcp(Leg::A)).await.unwrap();
    assert_eq!(
        recv(&b_rtcp).await.0,
        rr,
        "only the phone's own RTCP crosses"
    );
    eventually(|| s.stats().a.dropped == 1).await;
    // B's RTCP still goes to A's real RTCP address, not to the other host.
    let sr = rtcp::build_sender_report(2, &Default::default(), &[]);
    b_rtcp.send_to(&sr, s.local_rtcp(Leg::B)).await.unwrap();
    assert_eq!(recv(&a_rtcp).await.0, sr);
}

#[tokio::test]
async fn sdp_pointing_at_the_relay_itself_cannot_make_a_loop() {
    let relay = relay();
    let a = phone().await;
    let s = relay.allocate("loop", LO, LO).unwrap();
    s.set_remote(Leg::A, addr(&a), None);
    // A broken offer names the relay's own A port as B's media address.
    s.set_remote(Leg::B, s.local(Leg::A), None);
    for seq in 0..20 {
        a.send_to(&rtp(seq, 0, 1, b"x"), s.local(Leg::A))
            .await
            .unwrap();
    }
    eventually(|| s.stats().a.packets_rx == 20).await;
    let st = s.stats();
    assert_eq!(st.b.remote, None);
    assert_eq!(st.a.dropped, 20, "no destination: dropped, not looped");
    assert_eq!(relay.metrics().packets_relayed, 0);
}

/// A burst queued on the socket while the session task is busy (more than one receive batch
/// and more than one turn's worth) is relayed completely and in order, and the session keeps
/// relaying afterwards: clearing readiness after a short batch must never strand a datagram.
#[tokio::test]
async fn bursts_are_relayed_whole_and_in_order() {
    let relay = relay();
    let (a, b) = (phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    for round in 0..3u16 {
        let n = [1u16, 7, 150][usize::from(round)];
        let base = round * 1000;
        for i in 0..n {
            let seq = base + i;
            let p = rtp(seq, u32::from(seq) * 160, 0xa, &[round as u8; 160]);
            a.send_to(&p, s.local(Leg::A)).await.unwrap();
        }
        for i in 0..n {
            let (got, _) = recv(&b).await;
            let seq = u16::from_be_bytes([got[2], got[3]]);
            assert_eq!(seq, base + i, "round {round}: order kept, nothing lost");
        }
    }
    eventually(|| s.stats().a.packets_rx == 158).await;
    assert_eq!(s.stats().b.packets_tx, 158);
}

#[tokio::test]
async fn a_new_source_continues_the_stream_the_phone_hears() {
    // A transfer points leg B at another phone: the first phone's stream stopped at seq 20,
    // the new one starts at seq 7 with its own SSRC. Phone A keeps hearing one stream.
    let relay = relay();
    let (a, b, c) = (phone().await, phone().await, phone().await);
    let s = call(&relay, &a, &b).await;
    for i in 0..=20u16 {
        let pb = rtp(i, u32::from(i) * 160, 0xb, b"b");
        b.send_to(&pb, s.local(Leg::B)).await.unwrap();
        assert_eq!(recv(&a).await.0, pb, "unchanged while the source stays");
    }
    s.set_remote(Leg::B, addr(&c), None);
    s.flush().await;
    for i in 0..5u16 {
        c.send_to(
            &rtp(7 + i, 9000 + u32::from(i) * 160, 0xc, b"c"),
            s.local(Leg::B),
        )
        .await
        .unwrap();
        let (got, _) = recv(&a).await;
        let p = RtpPacket::parse(&got).unwrap();
        assert_eq!(p.ssrc, 0xb, "the stream keeps its SSRC");
        assert_eq!(p.sequence, 21 + i, "and its sequence");
        assert_eq!(
            p.timestamp,
            20 * 160 + 160 + u32::from(i) * 160,
            "and its clock"
        );
        assert_eq!(p.payload, b"c");
    }
    // The other direction is untouched.
    let pa = rtp(3, 480, 0xa, b"a");
    a.send_to(&pa, s.local(Leg::A)).await.unwrap();
    assert_eq!(recv(&c).await.0, pa);
}
