//! The relay's hot path must not allocate per packet: count heap allocations while 2,000 packets
//! cross a session (its own test binary, so no other test allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use media::rtp::RtpHeader;
use media::{Leg, Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn relaying_does_not_allocate_per_packet() {
    let relay = Relay::new(RelayConfig {
        media_timeout: Duration::from_secs(3600),
        ..RelayConfig::default()
    });
    let a = UdpSocket::bind((LO, 0)).await.unwrap();
    let b = UdpSocket::bind((LO, 0)).await.unwrap();
    let s = relay.allocate("alloc", LO, LO).unwrap();
    s.set_remote(Leg::A, a.local_addr().unwrap(), None);
    s.set_remote(Leg::B, b.local_addr().unwrap(), None);
    let (to_a, to_b) = (s.local(Leg::A), s.local(Leg::B));
    let mut pkt = [0u8; 172];
    let mut buf = [0u8; 2048];
    let mut round = async |seq: u16| {
        let n = RtpHeader::new(0, seq, u32::from(seq) * 160, 1)
            .write(&[0xff; 160], &mut pkt)
            .unwrap();
        a.send_to(&pkt[..n], to_a).await.unwrap();
        let got = timeout(Duration::from_secs(10), b.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, n);
        b.send_to(&pkt[..n], to_b).await.unwrap();
        let got = timeout(Duration::from_secs(10), a.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, n);
    };
    // Warm up: latching, first stats publication, lazily created runtime structures.
    for seq in 0..50 {
        round(seq).await;
    }
    let before = ALLOCS.load(Relaxed);
    for seq in 50..1050 {
        round(seq).await;
    }
    let during = ALLOCS.load(Relaxed) - before;
    // 2,000 relayed packets; a per-packet allocation anywhere would show up as >= 2,000.
    assert!(
        during < 100,
        "{during} allocations while relaying 2000 packets"
    );
}
