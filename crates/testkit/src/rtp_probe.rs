//! A 20 ms RTP probe for measuring audio gaps through a relay (e.g. across an active/standby
//! switchover): one UDP socket sends a PCMU-sized packet every 20 ms on an absolute schedule
//! (sequence, timestamp, SSRC as a phone would) and records the arrival time and sequence of
//! every packet it receives on the same socket (symmetric RTP, so a latching relay learns it).
//!
//! Put one probe at each end of a call whose SDP names the probes' addresses (a sipp scenario
//! with `c=`/`m=` set from variables, for instance) and read [`RtpProbe::report`] at any time:
//! packets sent and received, sequence numbers missing, and the longest silence between two
//! received packets — the "audio gap" a person on the call would hear.
//!
//! The socket can be made inside a network namespace with [`crate::netns::Netns::udp_bind`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Packet interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// RTP header + 160 bytes of PCMU (20 ms at 8 kHz).
const PACKET_LEN: usize = 12 + 160;
/// Bound on recorded arrivals: 30 minutes of packets at 50/s.
const MAX_ARRIVALS: usize = 90_000;
/// A silence longer than this between two received packets is listed as a gap.
pub const GAP_LISTED: Duration = Duration::from_millis(60);

/// One silence between two received packets longer than [`GAP_LISTED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// When the silence began, in ms since the probe started.
    pub at_ms: u64,
    /// How long nothing arrived, in ms.
    pub ms: u64,
}

/// What the probe saw so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// Packets sent.
    pub sent: u64,
    /// Packets received (duplicates included).
    pub received: u64,
    /// Sequence numbers between the first and last received that never arrived.
    pub lost: u64,
    /// The longest interval between two consecutive received packets, in ms (0 when fewer than
    /// two arrived).
    pub max_gap_ms: u64,
    /// Every interval longer than [`GAP_LISTED`], in order.
    pub gaps: Vec<Gap>,
    /// Source address of the last packet received.
    pub last_from: Option<SocketAddr>,
}

#[derive(Default)]
struct Arrivals {
    /// (ms since start, extended sequence number)
    at: Vec<(u64, u64)>,
    last_from: Option<SocketAddr>,
    received: u64,
}

/// A running probe; stops (and joins its threads) on [`RtpProbe::stop`] or drop.
pub struct RtpProbe {
    local: SocketAddr,
    started: Instant,
    stop: Arc<AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    arrivals: Arc<Mutex<Arrivals>>,
    target: Arc<Mutex<SocketAddr>>,
    threads: Vec<JoinHandle<()>>,
}

impl RtpProbe {
    /// Starts sending to `to` from `socket` and recording what arrives on it.
    pub fn start(socket: UdpSocket, to: SocketAddr) -> io::Result<RtpProbe> {
        let local = socket.local_addr()?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let rx = socket.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let target = Arc::new(Mutex::new(to));
        let started = Instant::now();
        let ssrc: u32 = 0x5052_0000 | (local.port() as u32);

        let tx_stop = stop.clone();
        let tx_sent = sent.clone();
        let tx_target = target.clone();
        let sender = std::thread::spawn(move || {
            let mut packet = [0xffu8; PACKET_LEN];
            packet[0] = 0x80;
            packet[1] = 0; // PCMU
            packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let mut n: u64 = 0;
            while !tx_stop.load(Ordering::Relaxed) {
                let due = started + PTIME * (n as u32);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let seq = (n & 0xffff) as u16;
                let ts = (n as u32).wrapping_mul(160);
                packet[1] = if n == 0 { 0x80 } else { 0 };
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                packet[4..8].copy_from_slice(&ts.to_be_bytes());
                let dest = *tx_target.lock().unwrap_or_else(|e| e.into_inner());
                // A send error (e.g. the address is moving) is a lost packet, not the end.
                let _ = socket.send_to(&packet, dest);
                tx_sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        });

        let rx_stop = stop.clone();
        let rx_arrivals = arrivals.clone();
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut highest: Option<u64> = None;
            while !rx_stop.load(Ordering::Relaxed) {
                let (len, from) = match rx.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                                | io::ErrorKind::ConnectionRefused
                        ) =>
                    {
                        continue;
                    }
                    Err(_) => break,
                };
                if len < 12 || buf[0] >> 6 != 2 {
                    continue;
                }
                let ms = started.elapsed().as_millis() as u64;
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let ext = extend_seq(highest, seq);
                highest = Some(highest.map_or(ext, |h| h.max(ext)));
                let mut a = rx_arrivals.lock().unwrap_or_else(|e| e.into_inner());
                a.received += 1;
                a.last_from = Some(from);
                if a.at.len() < MAX_ARRIVALS {
                    a.at.push((ms, ext));
                }
            }
        });

        Ok(RtpProbe {
            local,
            started,
            stop,
            sent,
            arrivals,
            target,
            threads: vec![sender, receiver],
        })
    }

    /// The probe's own address (put it in the SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends to `to` from now on (e.g. once the far end's SDP answer is known).
    pub fn retarget(&self, to: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    /// What the probe saw so far.
    pub fn report(&self) -> ProbeReport {
        let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = summarise(&a.at);
        r.sent = self.sent.load(Ordering::Relaxed);
        r.received = a.received;
        r.last_from = a.last_from;
        r
    }

    /// Like [`RtpProbe::report`], counting only packets that arrived after `after_ms` (ms since
    /// the probe started) — e.g. the gap across one switchover, not since the call began.
    pub fn report_since(&self, after_ms: u64) -> ProbeReport {
        let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        let from = a.at.partition_point(|(ms, _)| *ms < after_ms);
        let mut r = summarise(&a.at[from..]);
        r.sent = self.sent.load(Ordering::Relaxed);
        r.received = (a.at.len() - from) as u64;
        r.last_from = a.last_from;
        r
    }

    /// Milliseconds since the probe started (for [`RtpProbe::report_since`]).
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Stops both threads and returns the final report.
    pub fn stop(mut self) -> ProbeReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RtpProbe {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The extended (wrap-counted) sequence number of `seq` given the highest seen so far.
fn extend_seq(highest: Option<u64>, seq: u16) -> u64 {
    let Some(h) = highest else {
        return u64::from(seq);
    };
    let cycle = h & !0xffff;
    let candidates = [
        cycle.wrapping_sub(0x1_0000) | u64::from(seq),
        cycle | u64::from(seq),
        (cycle + 0x1_0000) | u64::from(seq),
    ];
    candidates
        .into_iter()
        .filter(|c| *c < u64::MAX / 2)
        .min_by_key(|c| c.abs_diff(h))
        .unwrap_or(u64::from(seq))
}

/// Losses and gaps of arrivals `(ms, extended seq)` in arrival order.
fn summarise(at: &[(u64, u64)]) -> ProbeReport {
    let mut r = ProbeReport::default();
    if at.is_empty() {
        return r;
    }
    let mut seqs: Vec<u64> = at.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let span = seqs[seqs.len() - 1] - seqs[0] + 1;
    r.lost = span - seqs.len() as u64;
    for w in at.windows(2) {
        let gap = w[1].0.saturating_sub(w[0].0);
        r.max_gap_ms = r.max_gap_ms.max(gap);
        if gap > GAP_LISTED.as_millis() as u64 {
            r.gaps.push(Gap {
                at_ms: w[0].0,
                ms: gap,
            });
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        assert_eq!(extend_seq(None, 5), 5);
        assert_eq!(extend_seq(Some(65_535), 0), 65_536);
        assert_eq!(extend_seq(Some(65_536), 65_535), 65_535);
        assert_eq!(extend_seq(Some(10), 8), 8);
    }

    #[test]
    fn losses_and_gaps_are_counted() {
        let at = [(0, 0), (20, 1), (40, 2), (300, 10), (320, 11)];
        let r = summarise(&at);
        assert_eq!(r.lost, 7);
        assert_eq!(r.max_gap_ms, 260);
        assert_eq!(r.gaps, vec![Gap { at_ms: 40, ms: 260 }]);
    }

    #[test]
    fn two_probes_hear_each_other() {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (aa, ba) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        let pa = RtpProbe::start(a, ba).expect("probe a");
        let pb = RtpProbe::start(b, aa).expect("probe b");
        // Wait on packets, not on time: both ends have heard 10 packets.
        let deadline = Instant::now() + Duration::from_secs(20);
        while (pa.report().received < 10 || pb.report().received < 10) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (ra, rb) = (pa.stop(), pb.stop());
        assert!(ra.received >= 10 && rb.received >= 10, "{ra:?} {rb:?}");
        assert_eq!(ra.last_from, Some(ba));
        assert_eq!(rb.last_from, Some(aa));
        assert!(ra.sent >= ra.received.min(rb.received));
    }
}
