//! The media relay: anchors each call's RTP and RTCP between two legs.
//!
//! A [`Session`] owns four UDP sockets (RTP + RTCP for leg A and leg B). The sockets of every
//! session are served by a few relay worker threads, each running one level-triggered epoll
//! loop ([`crate::relay_poll`]) over all of its sessions' sockets: a datagram costs its share of
//! a wake-up of the loop, one `recvfrom` and one `sendto`, with no task scheduling or waker
//! traffic per packet (a socket with a backlog is read with `recvmmsg`). All per-call state lives
//! in the worker (`&mut`, no locks); the [`Session`] handle sends it control messages over a
//! channel and reads counters that the worker publishes into atomics once per wake.
//!
//! Latching (symmetric RTP): before a phone sends, its leg sends to the address from SDP. The
//! first valid RTP packet latches the leg to its real source (so NATed phones work). Later, a
//! different source takes over only after `relatch_packets` consecutive in-sequence RTP packets
//! with no packet from the current source in between (NAT rebinding), which keeps a stranger
//! spraying packets at the port from stealing the stream.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use tokio::sync::{oneshot, watch};

use crate::ports::PortPool;
use crate::relay_poll::{Epoll, Events, Waker};
use crate::rtcp;
use crate::rtp::{RtpPacket, static_clock_rate};
use crate::stats::RxStats;

/// Receive buffer size; a datagram that fills it entirely is treated as oversized.
const BUF_LEN: usize = 2048;
/// Datagrams read from one socket before the others get a turn.
const BATCH: usize = 32;
/// Datagrams one `recvmmsg` call asks for.
const VLEN: usize = 4;
/// The token of a worker's waker; socket tokens are `slot * 4 + socket`.
const WAKER: u64 = u64::MAX;
/// Readiness events one `epoll_wait` of a worker returns at most.
const EVENTS: usize = 1024;

/// Relay settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Lowest port of the RTP range (rounded up to even).
    pub port_min: u16,
    /// Highest port of the range (an RTCP port may use it).
    pub port_max: u16,
    /// A session whose media stops this long (not on hold) reports a timeout.
    pub media_timeout: Duration,
    /// Consecutive in-sequence RTP packets a new source must send to take over a latched leg.
    pub relatch_packets: u16,
    /// Relay worker threads; 0 = half the CPUs this process may run on (at least one).
    /// Sessions are spread over them round-robin.
    pub workers: usize,
    /// While busy, a worker wakes at most once per this interval and serves everything that
    /// arrived meanwhile together (see the relay's README, "wake coalescing"): each packet
    /// waits at most this long more. Zero wakes the worker for every readiness event.
    pub wake_tick: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            port_min: 10000,
            port_max: 20000,
            media_timeout: Duration::from_secs(60),
            relatch_packets: 4,
            workers: 0,
            wake_tick: Duration::from_millis(1),
        }
    }
}

/// Why a relay session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every RTP/RTCP port pair in the range is in use on this address.
    #[error("no free RTP/RTCP port pair in {min}-{max} on {ip}")]
    PortsExhausted {
        /// Address the pair was wanted on.
        ip: IpAddr,
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
    /// The configured range holds no even/odd port pair.
    #[error("RTP port range {min}-{max} holds no port pair")]
    InvalidRange {
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
    /// Binding failed for a reason other than the port being busy (e.g. address not local).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address that failed.
        addr: SocketAddr,
        /// OS error.
        source: io::Error,
    },
    /// A relay worker thread (its epoll instance, waker or the thread itself) could not start,
    /// or a socket could not join its epoll set.
    #[error("relay worker: {0}")]
    Worker(io::Error),
}

/// One side of a call: A is the caller's phone, B the callee's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Caller side.
    A,
    /// Callee side.
    B,
}

impl Leg {
    /// The opposite leg.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    fn idx(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    relayed: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    active: AtomicU64,
    total: AtomicU64,
    timeouts: AtomicU64,
}

/// Relay-wide counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayMetrics {
    /// Datagrams (RTP and RTCP) forwarded.
    pub packets_relayed: u64,
    /// Bytes forwarded.
    pub bytes_relayed: u64,
    /// Datagrams dropped: no destination yet, unlatched source, or send failure.
    pub packets_dropped: u64,
    /// Datagrams dropped because they were not valid RTP/RTCP.
    pub packets_malformed: u64,
    /// Sessions currently running.
    pub active_sessions: u64,
    /// Sessions allocated since start.
    pub sessions_total: u64,
    /// Sessions that reported a media timeout.
    pub media_timeouts: u64,
}

/// Handle to the relay engine; cheap to clone, shareable between tasks.
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<RelayInner>,
}

/// What the workers share with the handles: settings, counters, the clock.
#[derive(Debug)]
struct Core {
    config: RelayConfig,
    counters: Counters,
    clock: Clock,
}

#[derive(Debug)]
struct RelayInner {
    core: Arc<Core>,
    /// The port-pair pool, shared with the media engine when built with [`Relay::with_ports`].
    ports: Arc<PortPool>,
    /// Started by the first `allocate`, so that a relay nobody uses costs no threads.
    workers: Mutex<Option<Arc<[Arc<WorkerHandle>]>>>,
    next_worker: AtomicUsize,
    serial: AtomicU64,
}

impl Relay {
    /// Creates a relay. Its worker threads start with the first [`Relay::allocate`].
    pub fn new(config: RelayConfig) -> Relay {
        Relay::with_clock(config, Clock::System)
    }

    /// A relay whose notion of time is `clock` (packet arrival times, media timeouts), for tests
    /// that must run timeouts of minutes in no time.
    pub fn with_manual_clock(config: RelayConfig, clock: Arc<ManualClock>) -> Relay {
        Relay::with_clock(config, Clock::Manual(clock))
    }

    /// A relay that binds its ports from `ports` (shared with the terminating media engine, so
    /// both use one range without double use). `config.port_min/port_max` are then unused.
    pub fn with_ports(config: RelayConfig, ports: Arc<PortPool>) -> Relay {
        Relay::build(config, Clock::System, ports)
    }

    /// The port-pair pool this relay allocates from (to share with the media engine).
    pub fn ports(&self) -> Arc<PortPool> {
        self.inner.ports.clone()
    }

    fn with_clock(config: RelayConfig, clock: Clock) -> Relay {
        let ports = Arc::new(PortPool::new(config.port_min, config.port_max));
        Relay::build(config, clock, ports)
    }

    fn build(config: RelayConfig, clock: Clock, ports: Arc<PortPool>) -> Relay {
        Relay {
            inner: Arc::new(RelayInner {
                core: Arc::new(Core {
                    config,
                    counters: Counters::default(),
                    clock,
                }),
                ports,
                workers: Mutex::new(None),
                next_worker: AtomicUsize::new(0),
                serial: AtomicU64::new(1),
            }),
        }
    }

    /// The configuration this relay runs with.
    pub fn config(&self) -> &RelayConfig {
        &self.inner.core.config
    }

    /// A snapshot of the relay-wide counters.
    pub fn metrics(&self) -> RelayMetrics {
        let c = &self.inner.core.counters;
        RelayMetrics {
            packets_relayed: c.relayed.load(Relaxed),
            bytes_relayed: c.bytes.load(Relaxed),
            packets_dropped: c.dropped.load(Relaxed),
            packets_malformed: c.malformed.load(Relaxed),
            active_sessions: c.active.load(Relaxed),
            sessions_total: c.total.load(Relaxed),
            media_timeouts: c.timeouts.load(Relaxed),
        }
    }

    /// How many relay threads serve (or, before the first session, will serve) the sessions:
    /// [`RelayConfig::workers`], or half the CPUs this process may run on when that is 0.
    pub fn workers(&self) -> usize {
        match self.inner.core.config.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get() / 2)
                .unwrap_or(1)
                .max(1),
            n => n,
        }
    }

    /// The worker a new session goes to (starting the workers on first use).
    fn worker(&self) -> Result<Arc<WorkerHandle>, Error> {
        let mut guard = lock(&self.inner.workers);
        let workers = match &*guard {
            Some(w) => w.clone(),
            None => {
                let n = self.workers();
                let w: Arc<[Arc<WorkerHandle>]> = (0..n)
                    .map(|i| WorkerHandle::start(i, self.inner.core.clone()).map(Arc::new))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Error::Worker)?
                    .into();
                *guard = Some(w.clone());
                w
            }
        };
        drop(guard);
        let i = self.inner.next_worker.fetch_add(1, Relaxed) % workers.len();
        Ok(workers[i].clone())
    }

    /// Binds an RTP/RTCP socket pair for each leg (A on `a_local_ip`, B on `b_local_ip`) and
    /// starts relaying between them.
    pub fn allocate(
        &self,
        call_id: &str,
        a_local_ip: IpAddr,
        b_local_ip: IpAddr,
    ) -> Result<Session, Error> {
        let a = self.bind_pair(a_local_ip)?;
        let b = self.bind_pair(b_local_ip)?;
        self.start_session(call_id, a, b)
    }

    /// Binds the given RTP ports (RTCP on RTP + 1) for leg A and leg B, with `IP_FREEBIND`, and
    /// starts relaying between them: a node taking over another node's call re-binds the ports
    /// the phones already send to ([`crate::ports::bind_pair_at`]).
    pub fn allocate_at(
        &self,
        call_id: &str,
        a_rtp: SocketAddr,
        b_rtp: SocketAddr,
    ) -> Result<Session, Error> {
        let a = crate::ports::bind_pair_at(a_rtp)?;
        let b = crate::ports::bind_pair_at(b_rtp)?;
        self.start_session(call_id, a, b)
    }

    fn start_session(
        &self,
        call_id: &str,
        (a_rtp, a_rtcp): (std::net::UdpSocket, std::net::UdpSocket),
        (b_rtp, b_rtcp): (std::net::UdpSocket, std::net::UdpSocket),
    ) -> Result<Session, Error> {
        let worker = self.worker()?;
        let local = [local_addr(&a_rtp)?, local_addr(&b_rtp)?];
        let local_rtcp = [local_addr(&a_rtcp)?, local_addr(&b_rtcp)?];
        let legs = [LegIo::new(a_rtp, a_rtcp), LegIo::new(b_rtp, b_rtcp)];
        let slot = worker.take_slot();
        for (i, leg) in legs.iter().enumerate() {
            for (j, sock) in [&leg.rtp, &leg.rtcp].into_iter().enumerate() {
                let token = (slot * 4 + i * 2 + j) as u64;
                if let Err(e) = worker.epoll.add(sock.as_raw_fd(), token) {
                    // The sockets close when `legs` drops, which also takes them out of epoll.
                    worker.release_slot(slot);
                    return Err(Error::Worker(e));
                }
            }
        }
        let core = &self.inner.core;
        let now = core.clock.now();
        let shared = Arc::new(SessionShared {
            started: now,
            legs: Default::default(),
            remotes: Mutex::new([None; 2]),
            held: AtomicBool::new(false),
        });
        let (timeout_tx, timeout_rx) = watch::channel(false);
        core.counters.total.fetch_add(1, Relaxed);
        core.counters.active.fetch_add(1, Relaxed);
        let call: Arc<str> = Arc::from(call_id);
        let serial = self.inner.serial.fetch_add(1, Relaxed);
        let engine = Box::new(Engine {
            serial,
            call_id: call.clone(),
            legs,
            timeout_tx,
            shared: shared.clone(),
            core: core.clone(),
            held: false,
            muted: [false; 2],
            timed_out: false,
            timer_on: false,
            timer_at: None,
            last_activity: now,
            now,
            batch: BatchCounters::default(),
            own: [local[0], local_rtcp[0], local[1], local_rtcp[1]],
            tap: None,
            touched: false,
        });
        worker.send(Cmd::Add { slot, engine });
        tracing::debug!(call_id, a = %local[0], b = %local[1], "media session allocated");
        Ok(Session {
            call_id: call,
            local,
            local_rtcp,
            shared,
            timeout_rx,
            worker,
            slot,
            serial,
            closed: false,
        })
    }
    fn bind_pair(&self, ip: IpAddr) -> Result<(std::net::UdpSocket, std::net::UdpSocket), Error> {
        self.inner.ports.bind_pair(ip)
    }
}

fn local_addr(s: &std::net::UdpSocket) -> Result<SocketAddr, Error> {
    s.local_addr().map_err(|source| Error::Bind {
        addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
        source,
    })
}

#[derive(Debug, Default)]
struct LegCounters {
    packets_rx: AtomicU64,
    packets_tx: AtomicU64,
    bytes_rx: AtomicU64,
    bytes_tx: AtomicU64,
    lost: AtomicU64,
    jitter_us: AtomicU64,
    /// Nanoseconds after session start plus one; 0 means no packet yet.
    last_rx_ns: AtomicU64,
    rtcp_rx: AtomicU64,
    rtcp_tx: AtomicU64,
    malformed: AtomicU64,
    dropped: AtomicU64,
    /// Whether the phone sent a report block yet.
    reported: AtomicBool,
    rr_fraction_lost: AtomicU32,
    rr_cumulative_lost: AtomicU64,
    rr_jitter_us: AtomicU64,
}

#[derive(Debug)]
struct SessionShared {
    started: Instant,
    legs: [LegCounters; 2],
    /// Where each leg currently sends RTP; written only when that changes.
    remotes: Mutex<[Option<SocketAddr>; 2]>,
    held: AtomicBool,
}
/// What a phone itself reported in RTCP about the stream the relay sends it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReportedQuality {
    /// Fraction lost since its previous report (0.0..=1.0).
    pub fraction_lost: f64,
    /// Cumulative packets lost.
    pub cumulative_lost: i64,
    /// Interarrival jitter in milliseconds (using the clock rate of the forwarded payload).
    pub jitter_ms: f64,
}

/// Counters of one leg; "rx" is what the leg's phone sent to the relay, "tx" what the relay sent it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LegStats {
    /// Valid RTP packets received from the phone and accepted.
    pub packets_rx: u64,
    /// RTP packets sent to the phone.
    pub packets_tx: u64,
    /// RTP bytes (whole datagrams) received from the phone.
    pub bytes_rx: u64,
    /// RTP bytes sent to the phone.
    pub bytes_tx: u64,
    /// Packets missing from the phone's stream (sequence gaps).
    pub lost: u64,
    /// RFC 3550 interarrival jitter of the phone's stream, in milliseconds.
    pub jitter_ms: f64,
    /// When the last accepted RTP packet arrived from the phone.
    pub last_packet_at: Option<std::time::Instant>,
    /// RTCP datagrams received from the phone.
    pub rtcp_rx: u64,
    /// RTCP datagrams sent to the phone.
    pub rtcp_tx: u64,
    /// Datagrams from this leg's side that were not valid RTP/RTCP.
    pub malformed: u64,
    /// Datagrams from this leg's side dropped for other reasons (unlatched source, no destination).
    pub dropped: u64,
    /// Where RTP for this phone currently goes (SDP address or latched source).
    pub remote: Option<SocketAddr>,
    /// The phone's own RTCP view of what it receives, once it sent a report.
    pub reported: Option<ReportedQuality>,
}

/// A snapshot of a session's counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionStats {
    /// Caller side.
    pub a: LegStats,
    /// Callee side.
    pub b: LegStats,
    /// Whether the session is on hold.
    pub on_hold: bool,
}

impl SessionStats {
    /// The counters of one leg.
    pub fn leg(&self, leg: Leg) -> &LegStats {
        match leg {
            Leg::A => &self.a,
            Leg::B => &self.b,
        }
    }
}

/// A control message from the call to the worker serving its session.
#[derive(Debug)]
enum Control {
    Remote(RemoteUpdate),
    Hold(bool),
    /// What a leg's phone sends is not relayed (a one-way intercom's called phone).
    Mute(Leg, bool),
    ClockRate {
        leg: Leg,
        payload_type: u8,
        hz: u32,
    },
    Tap(Option<Arc<crate::recorder::RecordTap>>),
    /// Both phones hear the recording beep ([`crate::relay_beep`]).
    Beep(Arc<crate::relay_beep::BeepSpec>),
}

#[derive(Debug)]
struct RemoteUpdate {
    leg: Leg,
    rtp: SocketAddr,
    rtcp: Option<SocketAddr>,
}

/// One call's relay: two legs of RTP+RTCP sockets. Dropping it releases the ports.
#[derive(Debug)]
pub struct Session {
    call_id: Arc<str>,
    local: [SocketAddr; 2],
    local_rtcp: [SocketAddr; 2],
    shared: Arc<SessionShared>,
    timeout_rx: watch::Receiver<bool>,
    worker: Arc<WorkerHandle>,
    slot: usize,
    serial: u64,
    closed: bool,
}

impl Session {
    /// The call this session belongs to.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The relay's RTP address for a leg (write it into that leg's SDP).
    pub fn local(&self, leg: Leg) -> SocketAddr {
        self.local[leg.idx()]
    }

    /// The relay's RTCP address for a leg (RTP port + 1).
    pub fn local_rtcp(&self, leg: Leg) -> SocketAddr {
        self.local_rtcp[leg.idx()]
    }

    /// Sets a leg's destination from its SDP. RTCP defaults to RTP port + 1. A changed address
    /// undoes latching; repeating the same address (e.g. a re-INVITE from a NATed phone) keeps it.
    /// An unspecified address or port 0 (old-style hold, rejected stream) is ignored.
    pub fn set_remote(&self, leg: Leg, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        self.control(Control::Remote(RemoteUpdate { leg, rtp, rtcp }));
    }

    fn control(&self, c: Control) {
        self.worker.send(Cmd::Control {
            slot: self.slot,
            serial: self.serial,
            c,
        });
    }

    /// Puts the session on or off hold; no media timeout fires while on hold.
    pub fn set_hold(&self, on_hold: bool) {
        self.shared.held.store(on_hold, Relaxed);
        self.control(Control::Hold(on_hold));
    }

    /// Mutes (or unmutes) what `leg`'s phone sends: its RTP and RTCP still latch and count,
    /// but are not relayed to the other leg (a one-way intercom).
    pub fn set_mute(&self, leg: Leg, muted: bool) {
        self.control(Control::Mute(leg, muted));
    }

    /// Declares the RTP clock rate of a payload type a leg's phone sends (for jitter).
    /// Static types (PCMU, PCMA, G722, ...) are known already.
    pub fn set_clock_rate(&self, leg: Leg, payload_type: u8, hz: u32) {
        self.control(Control::ClockRate {
            leg,
            payload_type,
            hz,
        });
    }

    /// Hands a copy of every RTP packet accepted from either phone to `tap` (recording, RFC 4733
    /// digit watch); `None` removes it. The tap never blocks the relay (see [`crate::recorder`]).
    pub fn set_tap(&self, tap: Option<Arc<crate::recorder::RecordTap>>) {
        self.control(Control::Tap(tap));
    }

    /// Both phones hear the recording beep, put into the streams towards them.
    pub fn beep(&self, spec: Arc<crate::relay_beep::BeepSpec>) {
        self.control(Control::Beep(spec));
    }

    /// Waits until the relay has applied every change made through this handle before the call,
    /// and has checked its media timeouts against the clock once since.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.worker.send(Cmd::Flush(tx));
        // An error means the worker is gone (relay shutting down): nothing left to wait for.
        let _ = rx.await;
    }

    /// Completes while the session is timed out: no RTP from either phone for `media_timeout`,
    /// not on hold, both legs having a destination. The state clears again if media resumes,
    /// new SDP arrives (`set_remote`) or the call goes on hold, so a timeout during early media
    /// does not doom the answered call.
    pub async fn timed_out(&self) {
        let mut rx = self.timeout_rx.clone();
        if rx.wait_for(|t| *t).await.is_err() {
            // The session ended without a timeout (closing): never report one.
            std::future::pending::<()>().await;
        }
    }

    /// Whether the session is currently timed out (see [`Session::timed_out`]).
    pub fn is_timed_out(&self) -> bool {
        *self.timeout_rx.borrow()
    }

    /// A snapshot of the session's counters.
    pub fn stats(&self) -> SessionStats {
        let remotes = *lock(&self.shared.remotes);
        let leg = |i: usize| {
            let c = &self.shared.legs[i];
            let last = c.last_rx_ns.load(Relaxed);
            LegStats {
                packets_rx: c.packets_rx.load(Relaxed),
                packets_tx: c.packets_tx.load(Relaxed),
                bytes_rx: c.bytes_rx.load(Relaxed),
                bytes_tx: c.bytes_tx.load(Relaxed),
                lost: c.lost.load(Relaxed),
                jitter_ms: c.jitter_us.load(Relaxed) as f64 / 1000.0,
                last_packet_at: (last > 0)
                    .then(|| self.shared.started + Duration::from_nanos(last - 1)),
                rtcp_rx: c.rtcp_rx.load(Relaxed),
                rtcp_tx: c.rtcp_tx.load(Relaxed),
                malformed: c.malformed.load(Relaxed),
                dropped: c.dropped.load(Relaxed),
                remote: remotes[i],
                reported: c.reported.load(Relaxed).then(|| ReportedQuality {
                    fraction_lost: f64::from(c.rr_fraction_lost.load(Relaxed)) / 256.0,
                    cumulative_lost: c.rr_cumulative_lost.load(Relaxed) as i64,
                    jitter_ms: c.rr_jitter_us.load(Relaxed) as f64 / 1000.0,
                }),
            }
        };
        SessionStats {
            a: leg(0),
            b: leg(1),
            on_hold: self.shared.held.load(Relaxed),
        }
    }

    /// Stops relaying and waits until the ports are released.
    pub async fn close(mut self) {
        self.closed = true;
        let (tx, rx) = oneshot::channel();
        self.worker.send(Cmd::Close {
            slot: self.slot,
            serial: self.serial,
            done: Some(tx),
        });
        // An error means the worker is gone, and the sockets with it.
        let _ = rx.await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.closed {
            self.worker.send(Cmd::Close {
                slot: self.slot,
                serial: self.serial,
                done: None,
            });
        }
    }
}
/// A source trying to take over a latched leg.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    last_seq: u16,
    count: u16,
}

/// Per-wake counters, published to atomics after each batch.
#[derive(Debug, Default, Clone, Copy)]
struct LocalLeg {
    packets_rx: u64,
    packets_tx: u64,
    bytes_rx: u64,
    bytes_tx: u64,
    rtcp_rx: u64,
    rtcp_tx: u64,
    malformed: u64,
    dropped: u64,
    last_rx: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy)]
struct BatchCounters {
    relayed: u64,
    bytes: u64,
    dropped: u64,
    malformed: u64,
}

impl BatchCounters {
    fn add(&mut self, b: BatchCounters) {
        self.relayed += b.relayed;
        self.bytes += b.bytes;
        self.dropped += b.dropped;
        self.malformed += b.malformed;
    }

    /// Adds these counts to the relay-wide atomics and starts over.
    fn flush(&mut self, g: &Counters) {
        let b = std::mem::take(self);
        if b.relayed > 0 {
            g.relayed.fetch_add(b.relayed, Relaxed);
            g.bytes.fetch_add(b.bytes, Relaxed);
        }
        if b.dropped > 0 {
            g.dropped.fetch_add(b.dropped, Relaxed);
        }
        if b.malformed > 0 {
            g.malformed.fetch_add(b.malformed, Relaxed);
        }
    }
}

#[derive(Debug)]
struct LegIo {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    sdp_rtp: Option<SocketAddr>,
    rtp_dest: Option<SocketAddr>,
    rtp_latched: bool,
    rtcp_dest: Option<SocketAddr>,
    rtcp_latched: bool,
    candidate: Option<Candidate>,
    rx: RxStats,
    /// Clock rates declared for this leg's payload types; static types fall back to RFC 3551.
    clock: Vec<(u8, u32)>,
    /// The last (payload type, clock rate) looked up in `clock` (cleared when it changes).
    last_clock: Option<(u8, u32)>,
    /// Clock rate of the last payload forwarded to this leg's phone (to read its RTCP jitter).
    tx_clock: u32,
    /// Keeps the stream sent to this leg's phone one stream when its source changes.
    stitch: Option<Stitch>,
    /// A recording beep going out to this leg's phone.
    beep: Option<crate::relay_beep::BeepInject>,
    local: LocalLeg,
    dirty: bool,
    /// The worker's wake number when the RTP and the RTCP socket were last served.
    served: [u32; 2],
}

/// One RTP stream towards a phone across a change of source (a transfer puts another phone on
/// the far side): the first source's SSRC is kept and the sequence numbers and timestamps go
/// on from where they were, so phones that drop a stream whose numbers jump back (baresip 1.0
/// does) keep playing.
#[derive(Debug, Clone, Copy)]
struct Stitch {
    in_ssrc: u32,
    out_ssrc: u32,
    seq_delta: u16,
    ts_delta: u32,
    last_seq: u16,
    last_ts: u32,
}

impl Stitch {
    /// The (sequence, timestamp, SSRC) to send for a packet, or `None` to send it unchanged.
    /// `step` is one packet's worth of timestamp (20 ms) for the jump at a change of source.
    fn map(
        st: &mut Option<Stitch>,
        seq: u16,
        ts: u32,
        ssrc: u32,
        step: u32,
    ) -> Option<(u16, u32, u32)> {
        let Some(s) = st else {
            *st = Some(Stitch {
                in_ssrc: ssrc,
                out_ssrc: ssrc,
                seq_delta: 0,
                ts_delta: 0,
                last_seq: seq,
                last_ts: ts,
            });
            return None;
        };
        if ssrc != s.in_ssrc {
            s.seq_delta = s.last_seq.wrapping_add(1).wrapping_sub(seq);
            s.ts_delta = s.last_ts.wrapping_add(step).wrapping_sub(ts);
            s.in_ssrc = ssrc;
        }
        let (out_seq, out_ts) = (seq.wrapping_add(s.seq_delta), ts.wrapping_add(s.ts_delta));
        // Reordered (older) packets do not move the stream's end.
        if out_seq.wrapping_sub(s.last_seq) < 0x8000 {
            s.last_seq = out_seq;
            s.last_ts = out_ts;
        }
        let same = s.seq_delta == 0 && s.ts_delta == 0 && s.out_ssrc == ssrc;
        (!same).then_some((out_seq, out_ts, s.out_ssrc))
    }
}

impl LegIo {
    fn new(rtp: UdpSocket, rtcp: UdpSocket) -> LegIo {
        LegIo {
            rtp,
            rtcp,
            sdp_rtp: None,
            rtp_dest: None,
            rtp_latched: false,
            rtcp_dest: None,
            rtcp_latched: false,
            candidate: None,
            rx: RxStats::default(),
            clock: Vec::new(),
            last_clock: None,
            tx_clock: 8000,
            stitch: None,
            beep: None,
            local: LocalLeg::default(),
            dirty: false,
            served: [u32::MAX; 2],
        }
    }
}

impl LegIo {
    /// RTP clock rate of a payload type this leg's phone sends (0 = unknown: no jitter).
    /// The last answer is kept: a phone sends one payload type nearly all the time.
    fn clock_rate(&mut self, pt: u8) -> u32 {
        if let Some((p, hz)) = self.last_clock
            && p == pt
        {
            return hz;
        }
        let hz = match self.clock.iter().find(|(p, _)| *p == pt) {
            Some(&(_, hz)) => hz,
            None => static_clock_rate(pt).unwrap_or(0),
        };
        self.last_clock = Some((pt, hz));
        hz
    }
}

/// All per-call state: owned by the session's worker, which serves its four sockets.
struct Engine {
    serial: u64,
    call_id: Arc<str>,
    legs: [LegIo; 2],
    timeout_tx: watch::Sender<bool>,
    shared: Arc<SessionShared>,
    core: Arc<Core>,
    held: bool,
    /// Legs whose media is not relayed ([`Session::set_mute`]).
    muted: [bool; 2],
    timed_out: bool,
    /// Armed: silence counts from `last_activity`.
    timer_on: bool,
    /// The deadline of this session's live entry in the worker's timer heap, if any.
    timer_at: Option<Instant>,
    last_activity: Instant,
    /// The clock when the worker began the current piece of work for this session.
    now: Instant,
    batch: BatchCounters,
    /// This session's own socket addresses, never valid as a phone's address.
    own: [SocketAddr; 4],
    /// Where copies of accepted RTP go (call recording, digit watch), if anywhere.
    tap: Option<Arc<crate::recorder::RecordTap>>,
    /// On the worker's list of sessions to publish at the end of this wake.
    touched: bool,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.core.counters.active.fetch_sub(1, Relaxed);
    }
}

/// A worker's receive buffers and the `recvmmsg` headers pointing at them, set up once and
/// reused for every read (the headers hold pointers into the same box, so it never moves and
/// lives on the worker thread only).
struct Bufs {
    data: [[u8; BUF_LEN]; VLEN],
    names: [libc::sockaddr_storage; VLEN],
    iovs: [libc::iovec; VLEN],
    msgs: [libc::mmsghdr; VLEN],
}

impl Bufs {
    fn new() -> Box<Bufs> {
        // SAFETY: all-zero is a valid value of these plain C structs and byte arrays.
        let mut b: Box<Bufs> = Box::new(unsafe { std::mem::zeroed() });
        let b2 = &mut *b;
        for i in 0..VLEN {
            b2.iovs[i].iov_base = b2.data[i].as_mut_ptr().cast();
            b2.iovs[i].iov_len = BUF_LEN;
            let h = &mut b2.msgs[i].msg_hdr;
            h.msg_name = std::ptr::from_mut(&mut b2.names[i]).cast();
            h.msg_iov = std::ptr::from_mut(&mut b2.iovs[i]);
            h.msg_iovlen = 1;
        }
        b
    }

    /// One non-blocking `recvmmsg` for up to [`VLEN`] datagrams: how many arrived.
    /// `WouldBlock` when none was queued.
    fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        for m in &mut self.msgs {
            m.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every mmsghdr points at a live iovec, buffer and address slot of the stated
        // sizes inside this box, which outlives the call; the kernel writes only within them.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                VLEN as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`Bufs::recv`]: its length (truncated at [`BUF_LEN`]) and source.
    fn got(&self, i: usize) -> (usize, Option<SocketAddr>) {
        let m = &self.msgs[i];
        let src = sockaddr_to_std(&self.names[i], m.msg_hdr.msg_namelen);
        (m.msg_len as usize, src)
    }
}

/// The address the kernel wrote into `name` (`len` bytes), if it is IPv4 or IPv6.
fn sockaddr_to_std(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(name.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl Engine {
    /// Reads from one ready socket (`sock`: leg * 2 + RTCP) in wake number `wake` and relays
    /// what it got.
    ///
    /// Readiness is level-triggered ([`crate::relay_poll`]), so nothing needs to empty the
    /// socket: one `recvfrom` takes one datagram, and a socket that still holds more is
    /// reported again in the next wake. At 50 packets/s per stream that is the common case,
    /// and it costs one receive call per packet with no failing attempt behind it. A socket
    /// served in the previous wake too has a backlog (a burst, or a stream faster than the
    /// wake rate): it is read in `recvmmsg` batches instead, up to [`BATCH`] datagrams.
    fn read(&mut self, sock: usize, wake: u32, bufs: &mut Bufs) {
        let leg = sock / 2;
        let is_rtcp = sock % 2 == 1;
        let io = &mut self.legs[leg];
        let last = std::mem::replace(&mut io.served[sock % 2], wake);
        if last == wake.wrapping_sub(1) {
            self.drain(leg, is_rtcp, bufs);
            return;
        }
        let s = if is_rtcp { &io.rtcp } else { &io.rtp };
        let buf = &mut bufs.data[0];
        // An error is a spurious wake-up (WouldBlock) or a pending socket error (an ICMP report
        // about an earlier send), which reading clears.
        if let Ok((len, src)) = s.recv_from(buf) {
            self.on_datagram(leg, is_rtcp, &mut buf[..len], Some(src));
        }
    }

    /// Reads up to [`BATCH`] datagrams from a socket with a backlog, [`VLEN`] per `recvmmsg`,
    /// until a short batch shows that it was empty a moment ago.
    fn drain(&mut self, leg: usize, is_rtcp: bool, bufs: &mut Bufs) {
        for _ in 0..BATCH / VLEN {
            let io = &self.legs[leg];
            let s = if is_rtcp { &io.rtcp } else { &io.rtp };
            let Ok(n) = bufs.recv(s) else {
                return;
            };
            for i in 0..n {
                let (len, src) = bufs.got(i);
                self.on_datagram(leg, is_rtcp, &mut bufs.data[i][..len], src);
            }
            if n < VLEN {
                return;
            }
        }
    }

    /// One received datagram (`buf`, truncated at [`BUF_LEN`]) from `src`.
    fn on_datagram(&mut self, leg: usize, is_rtcp: bool, buf: &mut [u8], src: Option<SocketAddr>) {
        let Some(src) = src else {
            self.malformed(leg);
            return;
        };
        if buf.len() >= BUF_LEN {
            self.malformed(leg);
        } else if is_rtcp {
            self.on_rtcp(leg, buf, src);
        } else {
            self.on_rtp(leg, buf, src);
        }
    }

    /// Takes the sockets out of the worker's epoll set (before they close).
    fn deregister(&self, epoll: &Epoll) {
        for leg in &self.legs {
            let _ = epoll.delete(leg.rtp.as_raw_fd());
            let _ = epoll.delete(leg.rtcp.as_raw_fd());
        }
    }

    fn malformed(&mut self, leg: usize) {
        self.legs[leg].local.malformed += 1;
        self.legs[leg].dirty = true;
        self.batch.malformed += 1;
    }

    fn dropped(&mut self, leg: usize) {
        self.legs[leg].local.dropped += 1;
        self.legs[leg].dirty = true;
        self.batch.dropped += 1;
    }

    fn on_rtp(&mut self, leg: usize, pkt: &mut [u8], src: SocketAddr) {
        if rtcp::is_rtcp(pkt) {
            // RTCP multiplexed on the RTP port (RFC 5761): relay it the same way, port to port.
            self.on_muxed_rtcp(leg, pkt, src);
            return;
        }
        let Ok(p) = RtpPacket::parse(pkt) else {
            self.malformed(leg);
            return;
        };
        let (seq, ts, ssrc) = (p.sequence, p.timestamp, p.ssrc);
        if !self.accept_source(leg, src, seq) {
            self.dropped(leg);
            return;
        }
        let now = self.now;
        let io = &mut self.legs[leg];
        io.rx.on_sequence(p.sequence, p.ssrc);
        let hz = io.clock_rate(p.payload_type);
        if hz != 0 {
            // floor(elapsed * hz) in u64: whole seconds and the fraction apart (no u128 divide).
            let d = now.saturating_duration_since(self.shared.started);
            let rate = u64::from(hz);
            let arrival =
                (d.as_secs() * rate + u64::from(d.subsec_nanos()) * rate / 1_000_000_000) as u32;
            io.rx.on_timing(p.payload_type, p.timestamp, arrival, hz);
        }
        io.local.packets_rx += 1;
        io.local.bytes_rx += pkt.len() as u64;
        io.local.last_rx = Some(now);
        io.dirty = true;
        self.last_activity = now;
        if self.timed_out {
            self.clear_timeout();
        }
        if let Some(tap) = &self.tap {
            tap.packet(if leg == 0 { Leg::A } else { Leg::B }, now, &p, pkt);
        }
        if self.muted[leg] {
            return;
        }
        let out = &mut self.legs[1 - leg];
        let step = if hz != 0 { hz / 50 } else { 160 };
        if let Some((seq, ts, ssrc)) = Stitch::map(&mut out.stitch, seq, ts, ssrc, step) {
            // The datagram is the worker's receive buffer: rewrite the header in place (the
            // tap above has had the original).
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            pkt[4..8].copy_from_slice(&ts.to_be_bytes());
            pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
        }
        let pkt = &*pkt;
        if out
            .beep
            .as_ref()
            .is_some_and(crate::relay_beep::BeepInject::done)
        {
            out.beep = None;
        }
        // A recording beep replaces the payload for 400 ms (the header, stitched or not, kept).
        let pkt = match out.beep.as_mut() {
            Some(b) => match RtpPacket::parse(pkt) {
                Ok(p) => b.apply(pkt, &p).unwrap_or(pkt),
                Err(_) => pkt,
            },
            None => pkt,
        };
        match out.rtp_dest {
            Some(dest) => match out.rtp.send_to(pkt, dest) {
                Ok(_) => {
                    out.local.packets_tx += 1;
                    out.local.bytes_tx += pkt.len() as u64;
                    if hz != 0 {
                        out.tx_clock = hz;
                    }
                    out.dirty = true;
                    self.batch.relayed += 1;
                    self.batch.bytes += pkt.len() as u64;
                }
                Err(_) => self.dropped(leg),
            },
            None => self.dropped(leg),
        }
    }

    /// Decides whether RTP from `src` belongs to this leg's phone, latching when appropriate.
    fn accept_source(&mut self, leg: usize, src: SocketAddr, seq: u16) -> bool {
        let io = &mut self.legs[leg];
        if io.rtp_latched && io.rtp_dest == Some(src) {
            io.candidate = None;
            return true;
        }
        let need = self.core.config.relatch_packets.max(1);
        if self.is_own(src) {
            return false;
        }
        let io = &mut self.legs[leg];
        if io.rtp_latched {
            let c = match io.candidate {
                Some(c) if c.addr == src && seq == c.last_seq.wrapping_add(1) => Candidate {
                    addr: src,
                    last_seq: seq,
                    count: c.count + 1,
                },
                _ => Candidate {
                    addr: src,
                    last_seq: seq,
                    count: 1,
                },
            };
            if c.count < need {
                io.candidate = Some(c);
                return false;
            }
            tracing::info!(call_id = %self.call_id, leg, from = ?io.rtp_dest, to = %src, "media source moved, re-latching");
        }
        io.candidate = None;
        io.rtp_dest = Some(src);
        io.rtp_latched = true;
        if !io.rtcp_latched {
            // Until the phone sends RTCP, guess its RTCP port as RTP + 1 on the real address.
            io.rtcp_dest = src
                .port()
                .checked_add(1)
                .map(|p| SocketAddr::new(src.ip(), p));
        }
        self.publish_remotes();
        true
    }

    fn on_muxed_rtcp(&mut self, leg: usize, pkt: &[u8], src: SocketAddr) {
        if rtcp::validate(pkt).is_err() {
            self.malformed(leg);
            return;
        }
        let io = &self.legs[leg];
        if !(io.rtp_latched && io.rtp_dest == Some(src)) {
            self.dropped(leg);
            return;
        }
        self.note_report(leg, pkt);
        let out = &mut self.legs[1 - leg];
        match out.rtp_dest {
            Some(dest) if out.rtp.send_to(pkt, dest).is_ok() => {
                out.local.rtcp_tx += 1;
                out.dirty = true;
                self.batch.relayed += 1;
                self.batch.bytes += pkt.len() as u64;
            }
            _ => self.dropped(leg),
        }
    }

    fn on_rtcp(&mut self, leg: usize, pkt: &[u8], src: SocketAddr) {
        if rtcp::validate(pkt).is_err() {
            self.malformed(leg);
            return;
        }
        let io = &mut self.legs[leg];
        if io.rtcp_dest != Some(src) || !io.rtcp_latched {
            // Accept a new RTCP source only from the host whose RTP we latched (if any).
            let same_host = !io.rtp_latched || io.rtp_dest.map(|d| d.ip()) == Some(src.ip());
            if !same_host {
                self.dropped(leg);
                return;
            }
            io.rtcp_dest = Some(src);
            io.rtcp_latched = true;
        }
        self.note_report(leg, pkt);
        let out = &mut self.legs[1 - leg];
        match out.rtcp_dest {
            Some(dest) if out.rtcp.send_to(pkt, dest).is_ok() => {
                out.local.rtcp_tx += 1;
                out.dirty = true;
                self.batch.relayed += 1;
                self.batch.bytes += pkt.len() as u64;
            }
            _ => self.dropped(leg),
        }
    }

    /// Records the phone's own report (about what it receives from the relay).
    fn note_report(&mut self, leg: usize, pkt: &[u8]) {
        let io = &mut self.legs[leg];
        io.local.rtcp_rx += 1;
        io.dirty = true;
        if let Some(b) = rtcp::first_report_block(pkt) {
            let c = &self.shared.legs[leg];
            c.rr_fraction_lost
                .store(u32::from(b.fraction_lost), Relaxed);
            c.rr_cumulative_lost
                .store(i64::from(b.cumulative_lost) as u64, Relaxed);
            let us = u64::from(b.jitter) * 1_000_000 / u64::from(io.tx_clock.max(1));
            c.rr_jitter_us.store(us, Relaxed);
            c.reported.store(true, Relaxed);
        }
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Remote(u) => {
                let RemoteUpdate { leg, rtp, rtcp } = u;
                // New SDP (answer, re-INVITE) starts a fresh silence window.
                self.last_activity = self.now;
                if self.timed_out {
                    self.clear_timeout();
                }
                if rtp.ip().is_unspecified() || rtp.port() == 0 {
                    // RFC 2543 hold (c=0.0.0.0) or a rejected stream: nowhere to send, keep
                    // the current destination so resuming needs no new latch.
                    return;
                }
                if self.is_own(rtp) || rtcp.is_some_and(|r| self.is_own(r)) {
                    tracing::warn!(call_id = %self.call_id, %rtp, "SDP points at the relay's own port; ignored");
                    return;
                }
                let io = &mut self.legs[leg.idx()];
                let moved = io.sdp_rtp.is_some_and(|old| old != rtp);
                io.sdp_rtp = Some(rtp);
                // Keep a latch unless the SDP really moved: the first SDP of a phone whose media
                // already arrived, or a repeated private address, must not undo it.
                if moved || !io.rtp_latched {
                    io.rtp_dest = Some(rtp);
                    io.rtp_latched = false;
                    io.candidate = None;
                }
                if moved || !io.rtcp_latched {
                    io.rtcp_dest = rtcp.or_else(|| {
                        rtp.port()
                            .checked_add(1)
                            .map(|p| SocketAddr::new(rtp.ip(), p))
                    });
                    io.rtcp_latched = false;
                }
                self.publish_remotes();
            }
            Control::Mute(leg, m) => self.muted[leg.idx()] = m,
            Control::Hold(h) => {
                self.held = h;
                if h && self.timed_out {
                    self.clear_timeout();
                }
            }
            Control::ClockRate {
                leg,
                payload_type,
                hz,
            } => {
                let pt = payload_type & 0x7f;
                let io = &mut self.legs[leg.idx()];
                io.last_clock = None;
                match io.clock.iter_mut().find(|(p, _)| *p == pt) {
                    Some(e) => e.1 = hz,
                    None => io.clock.push((pt, hz)),
                }
            }
            Control::Tap(tap) => self.tap = tap,
            Control::Beep(spec) => {
                for l in &mut self.legs {
                    l.beep = Some(crate::relay_beep::BeepInject::new(spec.clone()));
                }
            }
        }
    }

    /// Whether `addr` is one of this session's sockets: latching to it or sending to it would
    /// make the session feed itself in a loop. With a wildcard bind only loopback sources are
    /// recognised, since the interface addresses are unknown here.
    fn is_own(&self, addr: SocketAddr) -> bool {
        self.own.iter().any(|o| {
            o.port() == addr.port()
                && (o.ip() == addr.ip()
                    || (o.ip().is_unspecified()
                        && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
        })
    }

    /// Leaves the timed-out state (media resumed, new SDP, or hold); the timer re-arms.
    fn clear_timeout(&mut self) {
        self.timed_out = false;
        self.timeout_tx.send_replace(false);
    }

    fn armed(&self) -> bool {
        !self.held && !self.timed_out && self.legs.iter().all(|l| l.rtp_dest.is_some())
    }

    /// Arms or disarms the silence timer after anything that may change whether it counts.
    /// Returns a deadline the worker must put on its timer heap.
    fn update_timer(&mut self) -> Option<Instant> {
        let armed = self.armed();
        if armed && !self.timer_on {
            // Newly armed (answered, or taken off hold): the silence count starts now.
            self.last_activity = self.now;
            self.timer_on = true;
            let deadline = self.now + self.core.config.media_timeout;
            // An earlier entry on the heap will find the real deadline when it comes due.
            if self.timer_at.is_none_or(|t| t > deadline) {
                self.timer_at = Some(deadline);
                return Some(deadline);
            }
        } else if !armed {
            self.timer_on = false;
        }
        None
    }

    /// This session's heap entry came due (`self.now` is the clock). Returns the next deadline
    /// when media arrived meanwhile.
    fn on_timer(&mut self) -> Option<Instant> {
        self.timer_at = None;
        if !self.timer_on {
            return None;
        }
        let deadline = self.last_activity + self.core.config.media_timeout;
        if self.now >= deadline {
            self.timed_out = true;
            self.timer_on = false;
            self.core.counters.timeouts.fetch_add(1, Relaxed);
            tracing::info!(call_id = %self.call_id, "media timeout");
            self.timeout_tx.send_replace(true);
            None
        } else {
            // Media arrived since the entry was made: wait for the rest of the silence window.
            self.timer_at = Some(deadline);
            Some(deadline)
        }
    }
    fn publish_remotes(&self) {
        *lock(&self.shared.remotes) = [self.legs[0].rtp_dest, self.legs[1].rtp_dest];
    }

    /// Moves the legs' counters into the shared atomics (one store each, not one per packet) and
    /// hands the relay-wide ones to the worker, which adds them up once per wake.
    fn publish(&mut self) -> BatchCounters {
        for (io, c) in self.legs.iter_mut().zip(self.shared.legs.iter()) {
            if !io.dirty {
                continue;
            }
            io.dirty = false;
            let l = &io.local;
            c.packets_rx.store(l.packets_rx, Relaxed);
            c.packets_tx.store(l.packets_tx, Relaxed);
            c.bytes_rx.store(l.bytes_rx, Relaxed);
            c.bytes_tx.store(l.bytes_tx, Relaxed);
            c.rtcp_rx.store(l.rtcp_rx, Relaxed);
            c.rtcp_tx.store(l.rtcp_tx, Relaxed);
            c.malformed.store(l.malformed, Relaxed);
            c.dropped.store(l.dropped, Relaxed);
            c.lost.store(io.rx.lost(), Relaxed);
            c.jitter_us
                .store((io.rx.jitter_secs() * 1e6) as u64, Relaxed);
            if let Some(t) = l.last_rx {
                let ns = t.saturating_duration_since(self.shared.started).as_nanos() as u64;
                c.last_rx_ns.store(ns + 1, Relaxed);
            }
        }
        std::mem::take(&mut self.batch)
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked (plain values, no invariants).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The time a relay reads: the system clock, or a [`ManualClock`] in tests.
#[derive(Debug, Clone)]
enum Clock {
    System,
    Manual(Arc<ManualClock>),
}

impl Clock {
    fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(c) => c.now(),
        }
    }
}

/// Time that moves only when told to ([`Relay::with_manual_clock`]). A test advances it, then
/// calls [`Session::flush`] so that the relay looks at the new time.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset_ns: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the present moment.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
        })
    }

    /// The time it shows.
    pub fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_ns.load(Relaxed))
    }

    /// Moves it forward.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Relaxed);
    }
}

/// What a session handle (or the relay) asks of a worker.
enum Cmd {
    /// A new session whose sockets are registered with tokens of `slot`.
    Add {
        slot: usize,
        engine: Box<Engine>,
    },
    Control {
        slot: usize,
        serial: u64,
        c: Control,
    },
    /// Release the session's sockets; `done` hears when they are closed.
    Close {
        slot: usize,
        serial: u64,
        done: Option<oneshot::Sender<()>>,
    },
    /// Answered after the commands before it are applied and the timers checked.
    Flush(oneshot::Sender<()>),
    Shutdown,
}

/// Numbers for sessions within one worker; a slot is reused only after its session is gone.
#[derive(Debug, Default)]
struct SlotAlloc {
    free: Vec<usize>,
    next: usize,
}

/// The handles' side of a worker thread.
#[derive(Debug)]
struct WorkerHandle {
    tx: mpsc::Sender<Cmd>,
    waker: Arc<Waker>,
    /// The worker's epoll set, to which new sessions' sockets are added.
    epoll: Arc<Epoll>,
    /// Set with every command: the worker looks at its channel before serving the next socket,
    /// so a change made before a packet was sent applies to that packet.
    has_cmds: Arc<AtomicBool>,
    slots: Arc<Mutex<SlotAlloc>>,
}

impl WorkerHandle {
    fn start(index: usize, core: Arc<Core>) -> io::Result<WorkerHandle> {
        let epoll = Arc::new(Epoll::new()?);
        let waker = Arc::new(Waker::new(&epoll, WAKER)?);
        let (tx, rx) = mpsc::channel();
        let has_cmds = Arc::new(AtomicBool::new(false));
        let slots = Arc::new(Mutex::new(SlotAlloc::default()));
        let worker = Worker {
            epoll: epoll.clone(),
            waker: waker.clone(),
            wake: 0,
            rx,
            has_cmds: has_cmds.clone(),
            slots: slots.clone(),
            engines: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            flushes: Vec::new(),
            touched: Vec::new(),
            now: core.clock.now(),
            batch: BatchCounters::default(),
            core,
        };
        std::thread::Builder::new()
            .name(format!("relay-{index}"))
            .spawn(move || worker.run())?;
        Ok(WorkerHandle {
            tx,
            waker,
            epoll,
            has_cmds,
            slots,
        })
    }

    fn send(&self, cmd: Cmd) {
        // A send fails only once the worker has stopped; nothing is left to act on then.
        if self.tx.send(cmd).is_ok() {
            self.has_cmds.store(true, Relaxed);
            if let Err(e) = self.waker.wake() {
                tracing::warn!(error = %e, "cannot wake a relay worker");
            }
        }
    }

    fn take_slot(&self) -> usize {
        let mut s = lock(&self.slots);
        match s.free.pop() {
            Some(slot) => slot,
            None => {
                s.next += 1;
                s.next - 1
            }
        }
    }

    fn release_slot(&self, slot: usize) {
        lock(&self.slots).free.push(slot);
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.send(Cmd::Shutdown);
    }
}

/// One relay thread: an epoll loop over the sockets of its sessions.
struct Worker {
    epoll: Arc<Epoll>,
    waker: Arc<Waker>,
    /// Wakes so far (wrapping): a socket served in the previous wake too has a backlog.
    wake: u32,
    rx: mpsc::Receiver<Cmd>,
    has_cmds: Arc<AtomicBool>,
    slots: Arc<Mutex<SlotAlloc>>,
    core: Arc<Core>,
    engines: Vec<Option<Box<Engine>>>,
    live: usize,
    /// Media-timeout deadlines: (when, slot, serial). Entries of ended sessions, or superseded
    /// ones, are skipped when they come due (and swept when they pile up).
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    flushes: Vec<oneshot::Sender<()>>,
    /// Sessions served in this wake, (slot, serial): their counters are published and their
    /// timers updated once at its end, not after every read.
    touched: Vec<(usize, u64)>,
    /// The relay clock, read once per wake: the arrival time of every packet served in it.
    now: Instant,
    /// Relay-wide counters of this wake, added to the shared atomics at its end.
    batch: BatchCounters,
}

impl Worker {
    /// The loop: wait for readiness, serve every ready socket, run due timers.
    ///
    /// While busy the loop wakes at most once per [`RelayConfig::wake_tick`]: when the previous wake began less
    /// than a tick ago, it sleeps out the rest of the tick before asking epoll again, and then
    /// serves everything that arrived meanwhile in one wake. Without that, at a few hundred
    /// calls nearly every datagram woke the thread on its own, and the sleep/wake-up pair per
    /// datagram (the scheduler's context switch) cost more CPU than its receive and send
    /// together. An idle relay still wakes at once for the first datagram; a saturated one
    /// never sleeps (its wakes take longer than a tick). The price is at most one tick of added
    /// delay per packet, and packets of one wake share one arrival time for jitter.
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        let mut bufs = Bufs::new();
        let mut woke: Option<Instant> = None;
        let tick = self.core.config.wake_tick;
        loop {
            let timeout = self.next_timer();
            if let Some(rest) = woke.and_then(|w| tick.checked_sub(w.elapsed()))
                && !rest.is_zero()
            {
                std::thread::sleep(rest);
            }
            if let Err(e) = self.epoll.wait(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "relay worker: epoll_wait failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            woke = (!events.is_empty()).then(Instant::now);
            self.now = self.core.clock.now();
            self.wake = self.wake.wrapping_add(1);
            if self.commands() {
                return;
            }
            for t in events.tokens() {
                if t == WAKER {
                    // Commands sent before this reset are applied by the `commands()` below
                    // at the latest; later ones make the waker readable again.
                    self.waker.reset();
                    continue;
                }
                if self.has_cmds.load(Relaxed) && self.commands() {
                    return;
                }
                let t = t as usize;
                self.serve(t / 4, t % 4, &mut bufs);
            }
            if self.commands() {
                return;
            }
            self.publish();
            self.timers();
            self.batch.flush(&self.core.counters);
            for tx in self.flushes.drain(..) {
                let _ = tx.send(());
            }
        }
    }

    /// Applies queued commands; true on shutdown.
    fn commands(&mut self) -> bool {
        self.has_cmds.store(false, Relaxed);
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            };
            match cmd {
                Cmd::Add { slot, engine } => {
                    if self.engines.len() <= slot {
                        self.engines.resize_with(slot + 1, || None);
                    }
                    // Datagrams that arrived before this found no session and were left
                    // queued; their sockets are reported again (level-triggered).
                    self.engines[slot] = Some(engine);
                    self.live += 1;
                }
                Cmd::Control { slot, serial, c } => {
                    let now = self.core.clock.now();
                    if let Some(Some(e)) = self.engines.get_mut(slot)
                        && e.serial == serial
                    {
                        e.now = now;
                        e.on_control(c);
                        if let Some(d) = e.update_timer() {
                            self.timers.push(Reverse((d, slot, serial)));
                        }
                    }
                }
                Cmd::Close { slot, serial, done } => {
                    if let Some(entry) = self.engines.get_mut(slot)
                        && entry.as_ref().is_some_and(|e| e.serial == serial)
                        && let Some(e) = entry.take()
                    {
                        e.deregister(&self.epoll);
                        drop(e);
                        self.live -= 1;
                        lock(&self.slots).free.push(slot);
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Cmd::Flush(tx) => self.flushes.push(tx),
                Cmd::Shutdown => return true,
            }
        }
    }

    /// Reads and relays what one ready socket holds.
    fn serve(&mut self, slot: usize, sock: usize, bufs: &mut Bufs) {
        let Some(Some(e)) = self.engines.get_mut(slot) else {
            return;
        };
        e.now = self.now;
        e.read(sock, self.wake, bufs);
        if !e.touched {
            e.touched = true;
            self.touched.push((slot, e.serial));
        }
    }

    /// Publishes the counters of the sessions served in this wake and updates their timers.
    fn publish(&mut self) {
        for (slot, serial) in self.touched.drain(..) {
            if let Some(Some(e)) = self.engines.get_mut(slot)
                && e.serial == serial
            {
                e.touched = false;
                self.batch.add(e.publish());
                if let Some(d) = e.update_timer() {
                    self.timers.push(Reverse((d, slot, serial)));
                }
            }
        }
    }

    fn next_timer(&self) -> Option<Duration> {
        self.timers
            .peek()
            .map(|Reverse((d, ..))| d.saturating_duration_since(self.core.clock.now()))
    }

    /// Runs the media-timeout checks that came due.
    fn timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = self.core.clock.now();
        while let Some(&Reverse((d, slot, serial))) = self.timers.peek() {
            if d > now {
                break;
            }
            self.timers.pop();
            if let Some(Some(e)) = self.engines.get_mut(slot)
                && e.serial == serial
                && e.timer_at == Some(d)
            {
                e.now = now;
                if let Some(next) = e.on_timer() {
                    self.timers.push(Reverse((next, slot, serial)));
                }
            }
        }
        // Ended sessions leave their entries behind until due; sweep when they dominate.
        if self.timers.len() > 1024 && self.timers.len() > 4 * self.live {
            let engines = &self.engines;
            self.timers.retain(|Reverse((d, slot, serial))| {
                matches!(engines.get(*slot), Some(Some(e)) if e.serial == *serial && e.timer_at == Some(*d))
            });
        }
    }
}
