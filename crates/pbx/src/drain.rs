//! Make-before-break release of the application addresses on a graceful handover (issue 17 §5:
//! "a manual switchover loses no audio packet").
//!
//! Removing the address at once (what a failure does) loses every packet phones send between
//! the removal and the moment their ARP / neighbour caches point at the new active: the address
//! is owned by nobody meanwhile. On a *graceful* release (`ha::Output::ReleaseIp { graceful:
//! true }`: a switchover, a clean stop, a local failure handed over — this node is alive and
//! keeps its authority up to the release) the driver instead:
//!
//! 1. adds the address to `lo` as a host address (`/32`, `/128`), then removes it from its
//!    segment interface. It stays local, so packets phones with stale caches still send to this
//!    node's MAC are delivered (Linux's weak host model), but it is no longer answered for on
//!    the segment: `arp_ignore=1` on the segment interfaces (set when the cluster starts)
//!    answers ARP only for addresses on the receiving interface, `arp_announce=2` never uses it
//!    as an ARP sender, and IPv6 neighbour discovery answers only for addresses on the
//!    receiving interface anyway;
//! 2. keeps relaying the media of the calls it gave up for the drain time (default 2 s, past the
//!    new active's second gratuitous ARP after 1 s) while its SIP answers nothing (a node sends
//!    and accepts no SIP on an address it does not hold) and it writes nothing (demoted, fenced);
//! 3. removes the host address and closes the drained relay sockets.
//!
//! Each phone's packets go to exactly one node at any moment (the one its cache names), so
//! nothing is duplicated or lost. A failure release never drains; the release guard (the bash
//! process that removes the addresses when Denwa dies or freezes) removes the host addresses
//! too, and a start-up release removes both, so a node that crashes while draining leaves
//! nothing behind.
//!
//! [`Drain`] is the sans-IO state machine (steps out, timer in); [`RelayDrain`] keeps the
//! released relay sessions running until the drain ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Default drain time: past the new active's second announcement (1 s after the first).
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(2);
/// Longest drain accepted by the cluster file.
pub const MAX_DRAIN: Duration = Duration::from_secs(10);
/// The interface a drained address is parked on.
pub const HOST_IFACE: &str = "lo";

/// One address operation, applied to every application address in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Add the address to [`HOST_IFACE`] as a host address ([`host_cidr`]).
    AddHost,
    /// Remove it from its segment interface.
    DelSegment,
    /// Remove the host address from [`HOST_IFACE`].
    DelHost,
    /// Add it on its segment interface.
    AddSegment,
}

/// `ADDR/32` or `ADDR/128`: the host address a drained address is parked as (no prefix route).
pub fn host_cidr(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// The drain state machine of one node's address mover.
#[derive(Debug)]
pub struct Drain {
    period: Duration,
    /// The kernel settings that keep a parked address silent on the segment are in place.
    enabled: bool,
    /// Draining until.
    until: Option<Instant>,
}

impl Drain {
    /// `period` zero or `enabled` false: every release is immediate.
    pub fn new(period: Duration, enabled: bool) -> Drain {
        Drain {
            period,
            enabled,
            until: None,
        }
    }

    /// Whether graceful releases drain.
    pub fn enabled(&self) -> bool {
        self.enabled && !self.period.is_zero()
    }

    /// The address is released. Graceful (and enabled): parked on `lo` first, then off the
    /// segment, the drain running until [`Drain::poll_timeout`]. Otherwise: off the segment and
    /// off `lo` at once, ending any drain.
    pub fn release(&mut self, graceful: bool, now: Instant) -> Vec<Step> {
        if graceful && self.enabled() {
            // A graceful release is only ever issued by an Active node, which drains nothing;
            // should one come while draining, the later end wins.
            let end = now + self.period;
            self.until = Some(self.until.map_or(end, |u| u.max(end)));
            vec![Step::AddHost, Step::DelSegment]
        } else {
            self.until = None;
            vec![Step::DelSegment, Step::DelHost]
        }
    }

    /// The address is taken: any drain ends first (its relay sessions must be closed before
    /// their ports are bound again), then the address goes on the segment.
    pub fn take(&mut self) -> Vec<Step> {
        if self.until.take().is_some() {
            vec![Step::DelHost, Step::AddSegment]
        } else {
            vec![Step::AddSegment]
        }
    }

    /// When [`Drain::on_timer`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.until
    }

    /// Draining now?
    pub fn draining(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Time passed: the drain's end removes the parked address.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Step> {
        match self.until {
            Some(u) if now >= u => {
                self.until = None;
                vec![Step::DelHost]
            }
            _ => Vec::new(),
        }
    }
}

/// Relay sessions of released calls kept running until the drain ends (or is cut short by a
/// take-over of this node). Cheap to clone.
#[derive(Clone)]
pub struct RelayDrain {
    cut: Arc<tokio::sync::watch::Sender<u64>>,
    open: Arc<AtomicUsize>,
    /// The cuts so far when this handle was made for a drain ([`RelayDrain::for_drain`]): a
    /// session handed over after a later cut closes at once.
    ticket: u64,
}

impl Default for RelayDrain {
    fn default() -> Self {
        RelayDrain {
            cut: Arc::new(tokio::sync::watch::channel(0).0),
            open: Arc::new(AtomicUsize::new(0)),
            ticket: 0,
        }
    }
}

impl RelayDrain {
    /// A handle for the drain starting now: sessions given to it after the next
    /// [`RelayDrain::cut`] (a take-over or a failure overtook the drain) are closed at once.
    pub fn for_drain(&self) -> RelayDrain {
        RelayDrain {
            ticket: *self.cut.borrow(),
            ..self.clone()
        }
    }

    /// Keeps `s` relaying until `until` (or [`RelayDrain::cut`]), then closes it.
    pub(crate) fn hold(&self, s: media::Session, until: Instant) {
        let mut cut = self.cut.subscribe();
        if *cut.borrow_and_update() != self.ticket {
            tokio::spawn(s.close());
            return;
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        let open = Arc::clone(&self.open);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
                _ = cut.changed() => {}
            }
            s.close().await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Sessions still draining.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Closes every drained session now and waits (at most `limit`) until they are closed.
    pub async fn cut(&self, limit: Duration) {
        self.cut.send_modify(|g| *g = g.wrapping_add(1));
        let end = tokio::time::Instant::now() + limit;
        while self.open() > 0 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The `/proc/sys` settings a segment interface needs for a parked address to stay silent on
/// it: `arp_ignore` ≥ 1 (answer ARP only for addresses on the receiving interface),
/// `arp_announce` = 2 (never use a non-interface address as the ARP sender).
pub fn arp_settings(iface: &str) -> [(String, u8); 2] {
    [
        (format!("/proc/sys/net/ipv4/conf/{iface}/arp_ignore"), 1),
        (format!("/proc/sys/net/ipv4/conf/{iface}/arp_announce"), 2),
    ]
}

/// The value to write to a setting that reads `current` and needs at least `want` (`None`:
/// already strict enough; a higher `arp_ignore` is stricter still).
pub fn raise_to(current: &str, want: u8) -> Option<u8> {
    match current.trim().parse::<u8>() {
        Ok(v) if v >= want => None,
        _ => Some(want),
    }
}

/// Applies [`arp_settings`] to each segment interface of an IPv4 application address. Ok when
/// every one is in place (graceful releases may drain); the first error otherwise.
pub fn prepare_segments<'a>(ifaces: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    for iface in ifaces {
        for (path, want) in arp_settings(iface) {
            let current = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            if let Some(v) = raise_to(&current, want) {
                std::fs::write(&path, format!("{v}\n")).map_err(|e| format!("{path}: {e}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn graceful_release_parks_the_address_first_and_removes_it_when_the_drain_ends() {
        let t0 = Instant::now();
        let mut d = Drain::new(2000 * MS, true);
        assert_eq!(d.poll_timeout(), None);
        // Make before break: local on lo before it leaves the segment.
        assert_eq!(d.release(true, t0), vec![Step::AddHost, Step::DelSegment]);
        assert_eq!(d.poll_timeout(), Some(t0 + 2000 * MS));
        assert!(d.draining(t0 + 1999 * MS));
        // Early timers do nothing.
        assert!(d.on_timer(t0 + 1000 * MS).is_empty());
        assert!(d.draining(t0 + 1000 * MS));
        assert_eq!(d.on_timer(t0 + 2000 * MS), vec![Step::DelHost]);
        assert!(!d.draining(t0 + 2000 * MS));
        assert_eq!(d.poll_timeout(), None);
        // Once only.
        assert!(d.on_timer(t0 + 5000 * MS).is_empty());
    }

    #[test]
    fn a_failure_release_removes_everything_at_once_and_ends_a_drain() {
        let t0 = Instant::now();
        let mut d = Drain::new(2000 * MS, true);
        assert_eq!(d.release(false, t0), vec![Step::DelSegment, Step::DelHost]);
        assert_eq!(d.poll_timeout(), None);
        // Draining, then a failure (or the start-up release): nothing stays.
        d.release(true, t0);
        assert_eq!(
            d.release(false, t0 + 500 * MS),
            vec![Step::DelSegment, Step::DelHost]
        );
        assert!(!d.draining(t0 + 600 * MS));
        assert!(d.on_timer(t0 + 3000 * MS).is_empty());
    }

    #[test]
    fn without_the_arp_settings_or_with_no_drain_time_every_release_is_immediate() {
        let t0 = Instant::now();
        for mut d in [
            Drain::new(2000 * MS, false),
            Drain::new(Duration::ZERO, true),
        ] {
            assert!(!d.enabled());
            assert_eq!(d.release(true, t0), vec![Step::DelSegment, Step::DelHost]);
            assert_eq!(d.poll_timeout(), None);
        }
    }

    #[test]
    fn a_take_during_a_drain_removes_the_parked_address_before_adding_it_back() {
        let t0 = Instant::now();
        let mut d = Drain::new(2000 * MS, true);
        assert_eq!(d.take(), vec![Step::AddSegment]);
        d.release(true, t0);
        assert_eq!(d.take(), vec![Step::DelHost, Step::AddSegment]);
        assert_eq!(d.poll_timeout(), None, "the drain is over");
        assert!(d.on_timer(t0 + 3000 * MS).is_empty());
    }

    #[test]
    fn host_addresses_have_no_prefix_route() {
        assert_eq!(
            host_cidr("10.77.0.10".parse().expect("ip")),
            "10.77.0.10/32"
        );
        assert_eq!(host_cidr("fd77::10".parse().expect("ip")), "fd77::10/128");
    }

    #[test]
    fn arp_settings_are_raised_never_lowered() {
        let s = arp_settings("eth0");
        assert_eq!(s[0], ("/proc/sys/net/ipv4/conf/eth0/arp_ignore".into(), 1));
        assert_eq!(
            s[1],
            ("/proc/sys/net/ipv4/conf/eth0/arp_announce".into(), 2)
        );
        assert_eq!(raise_to("0\n", 1), Some(1));
        assert_eq!(raise_to("1\n", 1), None);
        assert_eq!(raise_to("2", 1), None, "stricter already");
        assert_eq!(raise_to("1", 2), Some(2));
        assert_eq!(raise_to("garbage", 2), Some(2));
    }

    #[tokio::test]
    async fn drained_relay_sessions_close_at_the_end_or_when_cut() {
        // Outside the ports the benchmark uses.
        let relay = media::Relay::new(media::relay::RelayConfig {
            port_min: 41_200,
            port_max: 41_399,
            ..media::relay::RelayConfig::default()
        });
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let drain = RelayDrain::default();
        let bound = |a: std::net::SocketAddr| std::net::UdpSocket::bind(a).is_err();
        // Held until the drain's end: the ports stay bound meanwhile and are free after.
        let s = relay.allocate("c1", ip, ip).expect("session");
        let port = s.local(media::Leg::A);
        drain.hold(s, Instant::now() + 50 * MS);
        assert_eq!(drain.open(), 1);
        assert!(bound(port), "still relaying");
        let end = Instant::now() + Duration::from_secs(10);
        while drain.open() > 0 {
            assert!(Instant::now() < end, "never closed");
            tokio::time::sleep(10 * MS).await;
        }
        assert!(!bound(port), "closed at the end of the drain");
        // Cut short (this node takes the address back): closed before the ports are re-bound.
        let s = relay.allocate("c2", ip, ip).expect("session");
        let port = s.local(media::Leg::B);
        drain.hold(s, Instant::now() + Duration::from_secs(600));
        assert_eq!(drain.open(), 1);
        drain.cut(Duration::from_secs(10)).await;
        assert_eq!(drain.open(), 0);
        assert!(!bound(port), "closed when cut");
        // A drain's handle made before a cut: what it is given afterwards is not kept.
        let old = drain.for_drain();
        drain.cut(Duration::from_secs(10)).await;
        let s = relay.allocate("c3", ip, ip).expect("session");
        old.hold(s, Instant::now() + Duration::from_secs(600));
        assert_eq!(drain.open(), 0, "kept after the cut");
        // A fresh one keeps it.
        let s = relay.allocate("c4", ip, ip).expect("session");
        drain
            .for_drain()
            .hold(s, Instant::now() + Duration::from_secs(600));
        assert_eq!(drain.open(), 1);
        drain.cut(Duration::from_secs(10)).await;
        assert_eq!(drain.open(), 0);
    }
}
