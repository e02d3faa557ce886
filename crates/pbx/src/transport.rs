//! SIP transports: UDP sockets and TCP listeners/connections around the sans-IO stack.
//!
//! Receive loops parse messages on their own tasks (so parsing spreads over the runtime's
//! threads) and hand them to the core. Malformed requests are answered here with 400 (or dropped
//! when they cannot be answered) and logged with the peer address. Sends never block the core:
//! UDP uses `try_send_to` (a full socket buffer queues the datagram in a bounded per-socket retry
//! queue), TCP goes through each connection's writer queue.
//!
//! Bounded under abuse (the limits are [`TransportLimits`], in the spirit of Kamailio's
//! `tcp_max_connections`, `tcp_connection_lifetime` and pike):
//! - TCP connections per source IP and in all; an accepted connection beyond them is closed at
//!   once with a reset, counted (`denwa_sip_tcp_refused_total`) and logged rate-limited.
//! - A TCP connection must deliver its first complete SIP message within the message timeout of
//!   connecting, and every message whose first bytes arrived must complete within it too (slow
//!   senders cannot hold a connection with a trickle); an idle connection that has carried SIP is
//!   closed after the idle timeout.
//! - Outbound TCP connects: one at a time per destination (later sends queue behind it), a
//!   bounded number in flight, each with a timeout.
//! - Writes to a TCP peer that stops reading time out and close the connection.
//! - Every queue is bounded; nothing spawns a task per datagram.
//! - Log lines about bad input go through [`engine::peerlog::PeerLog`]: the first few per peer
//!   and window in full, the rest as one summary line per noisy peer and window.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use engine::peerlog::{Decision, PeerLog, PeerLogConfig, Summary};
use sip::transaction::Transport;
use sip::{Datagram, Limits, StreamEvent, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// A message received by a transport.
#[derive(Debug)]
pub struct Inbound {
    /// The parsed message.
    pub message: sip::Message,
    /// Peer address.
    pub source: SocketAddr,
    /// Local address it arrived on.
    pub local: SocketAddr,
    /// Transport.
    pub transport: Transport,
}

/// Depth of each TCP connection's write queue.
const TCP_QUEUE: usize = 256;

/// Limits that keep the transports bounded whatever the network sends.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// Open TCP connections from one source IP (accepted ones). 32: a phone needs one, an office
    /// behind one NAT address a few dozen; raise it for bigger sites behind a single address.
    pub tcp_max_per_source: usize,
    /// Open TCP connections in all (accepted and outbound). 4,096, like Kamailio's
    /// `tcp_max_connections` default of 2,048 doubled; each costs a descriptor and ~20 KiB.
    pub tcp_max_total: usize,
    /// Time from connecting to the first complete SIP message, and from the first bytes of any
    /// later message to its end. 30 s: a phone sends its REGISTER at once, and a message of
    /// 64 KiB takes milliseconds; a connection that sends nothing, or trickles, is closed.
    pub tcp_message_timeout: Duration,
    /// A connection that has carried SIP and then receives nothing (not even an RFC 5626
    /// keep-alive) for this long is closed. 3,900 s: longer than the 3,600 s re-registration
    /// interval common in phones, so a phone registered over TCP behind NAT keeps the
    /// connection its calls arrive on (Kamailio's 120 s `tcp_connection_lifetime` needs
    /// registrar flags to avoid exactly that); the per-source and total limits bound what idle
    /// connections can hold.
    pub tcp_idle_timeout: Duration,
    /// One write to a TCP peer (a peer that stops reading is disconnected after this).
    pub tcp_write_timeout: Duration,
    /// One outbound TCP connect.
    pub tcp_connect_timeout: Duration,
    /// Outbound TCP connects in flight at once (each to a different destination).
    pub tcp_max_connecting: usize,
    /// Datagrams per UDP socket waiting for room in a full kernel send buffer; beyond it they
    /// are dropped and counted (the transaction layer retransmits requests and final responses
    /// as it would after a loss on the wire).
    pub udp_send_queue: usize,
    /// Rate limits of the log lines about bad input (per category: malformed datagrams, TCP
    /// framing errors, refused connections, timed-out connections).
    pub log: PeerLogConfig,
    /// Addresses bound with `IP_FREEBIND`: they may be absent from every interface at start (an
    /// active/standby pair's floating application IP, which only the Active holds). The kernel
    /// delivers to such a socket only once the address is configured here.
    pub freebind: Vec<IpAddr>,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            tcp_max_per_source: 32,
            tcp_max_total: 4_096,
            tcp_message_timeout: Duration::from_secs(30),
            tcp_idle_timeout: Duration::from_secs(3_900),
            tcp_write_timeout: Duration::from_secs(30),
            tcp_connect_timeout: Duration::from_secs(5),
            tcp_max_connecting: 64,
            udp_send_queue: 512,
            log: PeerLogConfig::default(),
            freebind: Vec::new(),
        }
    }
}

/// A socket bound to `addr` with `IP_FREEBIND` (the address need not exist yet), non-blocking.
fn freebind_socket(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    media::ports::set_freebind(&s, addr.is_ipv4())?;
    if ty == socket2::Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// A TCP listener on `addr` bound with `IP_FREEBIND` (the address need not exist yet): an
/// active/standby node serves HTTP on the application addresses too, answering there only
/// while it holds them.
pub fn freebind_tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = freebind_socket(addr, socket2::Type::STREAM)?;
    s.listen(1024)?;
    Ok(s.into())
}

async fn bind_udp(a: SocketAddr, freebind: bool) -> std::io::Result<UdpSocket> {
    if freebind {
        UdpSocket::from_std(freebind_socket(a, socket2::Type::DGRAM)?.into())
    } else {
        UdpSocket::bind(a).await
    }
}

async fn bind_tcp(a: SocketAddr, freebind: bool) -> std::io::Result<TcpListener> {
    if freebind {
        let s = freebind_socket(a, socket2::Type::STREAM)?;
        s.listen(1024)?;
        TcpListener::from_std(s.into())
    } else {
        TcpListener::bind(a).await
    }
}

/// A UDP socket with its bounded retry queue for sends that found the kernel buffer full.
struct UdpOut {
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    queue: Mutex<VecDeque<(SocketAddr, Bytes)>>,
    /// Datagrams queued or being retried (read without the lock on the send path).
    queued: AtomicUsize,
    wake: Notify,
}

/// Open TCP connections, by source IP for the accepted ones.
#[derive(Default)]
struct ConnCount {
    per_source: HashMap<IpAddr, usize>,
    total: usize,
}

/// An outbound connect in progress: sends to the same destination queue behind it.
struct Connecting {
    tx: mpsc::Sender<Bytes>,
    on_fail: Vec<Box<dyn FnOnce() + Send>>,
}

/// One category of rate-limited log lines.
struct RateLog<K> {
    /// Plural noun for summaries ("malformed SIP datagrams").
    what: &'static str,
    log: Mutex<PeerLog<K>>,
}

impl<K: std::hash::Hash + Eq + Clone + std::fmt::Display> RateLog<K> {
    fn new(what: &'static str, cfg: PeerLogConfig) -> RateLog<K> {
        RateLog {
            what,
            log: Mutex::new(PeerLog::new(cfg)),
        }
    }

    fn event(&self, key: K, detail: impl FnOnce() -> String) -> Decision {
        let now = Instant::now();
        self.log
            .lock()
            .map(|mut l| l.event(key, now, detail))
            .unwrap_or(Decision::Suppress)
    }

    fn flush(&self, now: Instant) -> Vec<Summary<K>> {
        self.log
            .lock()
            .map(|mut l| l.flush(now))
            .unwrap_or_default()
    }

    fn emit(&self, now: Instant) {
        for s in self.flush(now) {
            warn!("{}", s.line(self.what));
        }
    }
}

/// What the last full log line of a peer in a window says about the rest.
fn more(d: Decision) -> &'static str {
    match d {
        Decision::Log { last: true } => " (further ones from this peer are summarised)",
        _ => "",
    }
}

/// The rate-limited log categories.
struct Logs {
    malformed: RateLog<IpAddr>,
    framing: RateLog<IpAddr>,
    refused: RateLog<IpAddr>,
    timeouts: RateLog<IpAddr>,
    accept_errors: RateLog<SocketAddr>,
}

/// All bound SIP sockets of this node.
pub struct Transports {
    udp: Vec<Arc<UdpOut>>,
    tcp_local: Vec<SocketAddr>,
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    /// Outbound connects in progress, by destination.
    connecting: Mutex<HashMap<SocketAddr, Connecting>>,
    counts: Mutex<ConnCount>,
    /// TCP listeners, bound in `bind` and handed to accept loops by `start`.
    listeners: Mutex<Vec<TcpListener>>,
    /// Where every receive loop (also of outbound TCP connections) delivers messages.
    core: std::sync::OnceLock<mpsc::Sender<Inbound>>,
    limits: Limits,
    bounds: TransportLimits,
    logs: Logs,
    metrics: Arc<Metrics>,
    /// Whether this node holds its freebound (application) addresses. A pair's node that does
    /// not must send nothing from them: its ARP requests would carry the address and point the
    /// neighbours' caches (a NAT router's, a phone's) at this node, away from the holder.
    holds_app_address: std::sync::atomic::AtomicBool,
}

/// A counted TCP connection; gives its place back when dropped.
struct ConnSlot {
    t: Arc<Transports>,
    /// Source IP of an accepted connection (outbound ones count only in the total).
    source: Option<IpAddr>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.t.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(ip) = self.source
                && let Some(n) = c.per_source.get_mut(&ip)
            {
                *n -= 1;
                if *n == 0 {
                    c.per_source.remove(&ip);
                }
            }
        }
        self.t.metrics.tcp_connections.fetch_sub(1, Relaxed);
    }
}

/// Why a TCP connection was not admitted.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    PerSource(usize),
    Total(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PerSource(n) => write!(f, "{n} connections from this source already open"),
            Refusal::Total(n) => write!(f, "{n} connections open in all"),
        }
    }
}

/// Local IPv4/IPv6 addresses of this host's interfaces (for wildcard listen addresses).
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list we only read and then free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && (ifa.ifa_flags & libc::IFF_UP as u32) != 0 {
                let fam = i32::from((*ifa.ifa_addr).sa_family);
                if fam == libc::AF_INET {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                } else if fam == libc::AF_INET6 {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    // Link-local addresses need a scope id we do not carry in SIP.
                    if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                        out.push(IpAddr::V6(ip));
                    }
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out.sort();
    out.dedup();
    out
}

/// Expands wildcard listen addresses to one address per local interface of the same family, so
/// each socket knows its real local address (replies leave from where requests arrived, and SDP
/// and Contact carry an address of the right segment).
pub fn expand_listen(listen: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for a in listen {
        if a.ip().is_unspecified() {
            for ip in interface_addrs() {
                if ip.is_ipv4() == a.is_ipv4() {
                    out.push(SocketAddr::new(ip, a.port()));
                }
            }
        } else {
            out.push(*a);
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Transports {
    /// Binds UDP and TCP on every address (wildcards expanded per interface), with the default
    /// [`TransportLimits`].
    pub async fn bind(listen: &[SocketAddr], metrics: Arc<Metrics>) -> Result<Arc<Transports>> {
        Transports::bind_with(listen, metrics, TransportLimits::default()).await
    }

    /// Binds UDP and TCP on every address (wildcards expanded per interface).
    pub async fn bind_with(
        listen: &[SocketAddr],
        metrics: Arc<Metrics>,
        bounds: TransportLimits,
    ) -> Result<Arc<Transports>> {
        let addrs = expand_listen(listen);
        let mut udp = Vec::new();
        let mut tcp_local = Vec::new();
        let mut listeners = Vec::new();
        for a in &addrs {
            let free = bounds.freebind.contains(&a.ip());
            let s = bind_udp(*a, free)
                .await
                .with_context(|| format!("binding SIP UDP on {a}"))?;
            let local = s.local_addr()?;
            set_buffers(&s);
            udp.push(Arc::new(UdpOut {
                local,
                sock: Arc::new(s),
                queue: Mutex::new(VecDeque::new()),
                queued: AtomicUsize::new(0),
                wake: Notify::new(),
            }));
            let l = bind_tcp(local, free)
                .await
                .with_context(|| format!("binding SIP TCP on {local}"))?;
            tcp_local.push(l.local_addr()?);
            listeners.push(l);
        }
        info!(
            limits = %crate::transport_limits::summary(&bounds),
            "SIP transport limits"
        );
        let c = bounds.log;
        let logs = Logs {
            malformed: RateLog::new("malformed SIP datagrams", c),
            framing: RateLog::new("SIP framing errors on TCP", c),
            refused: RateLog::new("TCP connections refused", c),
            timeouts: RateLog::new("TCP connections timed out", c),
            accept_errors: RateLog::new("TCP accept errors", c),
        };
        let t = Arc::new(Transports {
            udp,
            tcp_local,
            conns: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            counts: Mutex::new(ConnCount::default()),
            listeners: Mutex::new(listeners),
            core: std::sync::OnceLock::new(),
            limits: Limits::default(),
            bounds,
            logs,
            metrics,
            holds_app_address: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(t)
    }

    /// The limits in force.
    pub fn transport_limits(&self) -> &TransportLimits {
        &self.bounds
    }

    /// Local UDP addresses (one per segment).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|u| u.local).collect()
    }

    /// Local TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_local
    }

    /// Open TCP connections (accepted and outbound).
    pub fn tcp_connection_count(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }

    /// Starts receive loops feeding `tx`, the UDP retry senders and the log summary timer.
    pub fn start(self: &Arc<Self>, tx: mpsc::Sender<Inbound>) {
        let _ = self.core.set(tx.clone());
        for out in &self.udp {
            let me = Arc::clone(self);
            let out2 = Arc::clone(out);
            let tx = tx.clone();
            tokio::spawn(async move { me.udp_loop(out2, tx).await });
            let me = Arc::clone(self);
            let out = Arc::clone(out);
            tokio::spawn(async move { me.udp_retry_loop(out).await });
        }
        let listeners: Vec<TcpListener> = self
            .listeners
            .lock()
            .map(|mut l| l.drain(..).collect())
            .unwrap_or_default();
        for l in listeners {
            let me = Arc::clone(self);
            let tx = tx.clone();
            tokio::spawn(async move { me.accept_loop(l, tx).await });
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.summary_loop().await });
    }

    /// Writes the rate limiter's summary lines as windows close.
    async fn summary_loop(self: Arc<Self>) {
        let every =
            (self.bounds.log.window / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            self.logs.malformed.emit(now);
            self.logs.framing.emit(now);
            self.logs.refused.emit(now);
            self.logs.timeouts.emit(now);
            self.logs.accept_errors.emit(now);
        }
    }

    fn suppressed(&self, d: Decision) -> bool {
        if d.is_log() {
            false
        } else {
            self.metrics.inc_log_suppressed();
            true
        }
    }

    async fn udp_loop(self: Arc<Self>, out: Arc<UdpOut>, tx: mpsc::Sender<Inbound>) {
        let local = out.local;
        let sock = &out.sock;
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, source) = match sock.recv_from(&mut buf).await {
                Ok(v) => v,
                Err(e) => {
                    // ICMP errors surface here on Linux; they concern one peer, not the socket.
                    debug!(%local, error = %e, "UDP receive error");
                    continue;
                }
            };
            self.metrics.inc_received_bytes(n);
            // A node answers no SIP on an application address it does not hold: a drained one
            // (`crate::drain`) still receives what phones with stale ARP caches send; their
            // retransmissions reach the new active.
            if !self.may_send_from(local.ip()) {
                continue;
            }
            let data = Bytes::copy_from_slice(&buf[..n]);
            match sip::decode_datagram(data.clone(), &self.limits) {
                Ok(Datagram::KeepAlive) => {}
                Ok(Datagram::Message(message)) => {
                    let m = Inbound {
                        message,
                        source,
                        local,
                        transport: Transport::Udp,
                    };
                    if tx.try_send(m).is_err() {
                        self.metrics.inc_overload_drop();
                        debug!(%source, "core queue full: datagram dropped");
                    }
                }
                Err(e) => {
                    self.metrics.inc_parse_error();
                    let resp = sip::error_response(&data, &e, &mut rand::thread_rng());
                    let answered = resp.is_some();
                    if let Some(resp) = resp {
                        let _ = sock.try_send_to(&resp, source);
                    }
                    let d = self.logs.malformed.event(source.ip(), || {
                        let what = if answered { "answered 400" } else { "dropped" };
                        format!("{e} ({what})")
                    });
                    if self.suppressed(d) {
                        continue;
                    }
                    if answered {
                        warn!(peer = %source, %local, error = %e, "malformed SIP request: answered 400{}", more(d));
                    } else {
                        warn!(peer = %source, %local, error = %e, "malformed SIP message dropped{}", more(d));
                    }
                }
            }
        }
    }

    /// Sends what found the socket buffer full, in order, as room appears.
    async fn udp_retry_loop(self: Arc<Self>, out: Arc<UdpOut>) {
        loop {
            out.wake.notified().await;
            loop {
                let next = out.queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((dest, data)) = next else { break };
                let sent =
                    tokio::time::timeout(Duration::from_secs(1), out.sock.send_to(&data, dest))
                        .await;
                if !matches!(sent, Ok(Ok(_))) {
                    self.metrics.inc_udp_send_drop();
                    debug!(%dest, "queued UDP send failed: dropped");
                }
                out.queued.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Takes a place for a TCP connection (`source` for accepted ones), or says why not.
    fn admit(self: &Arc<Self>, source: Option<IpAddr>) -> Result<ConnSlot, Refusal> {
        let mut c = self.counts.lock().map_err(|_| Refusal::Total(0))?;
        if c.total >= self.bounds.tcp_max_total {
            return Err(Refusal::Total(c.total));
        }
        if let Some(ip) = source {
            let n = c.per_source.entry(ip).or_insert(0);
            if *n >= self.bounds.tcp_max_per_source {
                return Err(Refusal::PerSource(*n));
            }
            *n += 1;
        }
        c.total += 1;
        drop(c);
        self.metrics.tcp_connections.fetch_add(1, Relaxed);
        Ok(ConnSlot {
            t: Arc::clone(self),
            source,
        })
    }

    async fn accept_loop(self: Arc<Self>, l: TcpListener, tx: mpsc::Sender<Inbound>) {
        let Ok(local) = l.local_addr() else { return };
        loop {
            match l.accept().await {
                // An application address this node does not hold (a drained one still takes
                // connections, `crate::drain`): reset, the phone reaches the new active.
                Ok((stream, _)) if !self.may_send_from(local.ip()) => {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    drop(stream);
                }
                Ok((stream, peer)) => match self.admit(Some(peer.ip())) {
                    Ok(slot) => {
                        let _ = stream.set_nodelay(true);
                        let me = Arc::clone(&self);
                        let tx = tx.clone();
                        tokio::spawn(
                            async move { me.run_conn(stream, local, peer, tx, slot).await },
                        );
                    }
                    Err(why) => {
                        // Cheap refusal: a reset now, no task, no buffers, no TIME_WAIT here.
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        drop(stream);
                        self.metrics.inc_tcp_refused();
                        let d = self.logs.refused.event(peer.ip(), || why.to_string());
                        if !self.suppressed(d) {
                            warn!(%peer, %local, reason = %why, "TCP connection refused{}", more(d));
                        }
                    }
                },
                Err(e) => {
                    // Out of descriptors, typically: say so (rate-limited) and let it pass.
                    let d = self.logs.accept_errors.event(local, || e.to_string());
                    if !self.suppressed(d) {
                        warn!(%local, error = %e, "TCP accept failed{}", more(d));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn run_conn(
        self: Arc<Self>,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        tx: mpsc::Sender<Inbound>,
        slot: ConnSlot,
    ) {
        let (wtx, wrx) = mpsc::channel::<Bytes>(TCP_QUEUE);
        debug!(%peer, %local, "TCP connection up");
        self.serve_conn(stream, local, peer, wtx, wrx, tx).await;
        drop(slot);
        debug!(%peer, "TCP connection closed");
    }

    /// Runs one TCP connection (accepted or outbound): a writer task draining `wrx`, and the
    /// reader framing messages into the core queue. Registered under the peer address so
    /// requests to a phone registered over TCP reuse its connection (it may be behind NAT).
    /// Ends at EOF, on a read or write error, a framing error, or a timeout (see
    /// [`TransportLimits`]).
    async fn serve_conn(
        &self,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        wtx: mpsc::Sender<Bytes>,
        mut wrx: mpsc::Receiver<Bytes>,
        core: mpsc::Sender<Inbound>,
    ) {
        let (mut rd, mut wr) = stream.into_split();
        if let Ok(mut c) = self.conns.lock() {
            c.insert(peer, wtx.clone());
        }
        let write_timeout = self.bounds.tcp_write_timeout;
        let mut writer = tokio::spawn(async move {
            while let Some(b) = wrx.recv().await {
                match tokio::time::timeout(write_timeout, wr.write_all(&b)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        debug!(%peer, "TCP write timed out: closing connection");
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
        });
        let mut writer_done = false;
        let mut framer = StreamFramer::new(self.limits);
        let mut buf = vec![0u8; 16 * 1024];
        let opened = Instant::now();
        // Until the first complete message, the message timeout runs from the connect.
        let mut seen_message = false;
        let mut message_started: Option<Instant> = Some(opened);
        let mut last_read = opened;
        'read: loop {
            let (deadline, idle) = match message_started {
                Some(t) => (t + self.bounds.tcp_message_timeout, false),
                None => (last_read + self.bounds.tcp_idle_timeout, true),
            };
            let n = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.metrics.inc_tcp_timeout();
                    if idle {
                        debug!(%peer, %local, "TCP connection idle: closed");
                    } else {
                        let why = if seen_message {
                            "a SIP message did not complete in time"
                        } else {
                            "no complete SIP message after connecting"
                        };
                        let secs = self.bounds.tcp_message_timeout.as_secs();
                        let d = self.logs.timeouts.event(peer.ip(), || format!("{why} ({secs} s)"));
                        if !self.suppressed(d) {
                            info!(%peer, %local, timeout_s = secs, "TCP connection closed: {why}{}", more(d));
                        }
                    }
                    break;
                }
                _ = &mut writer => {
                    writer_done = true;
                    break;
                }
            };
            let now = Instant::now();
            last_read = now;
            self.metrics.inc_received_bytes(n);
            framer.push(&buf[..n]);
            let mut completed = false;
            while let Some(ev) = framer.poll() {
                match ev {
                    // The address was released meanwhile: this connection ends here.
                    Ok(StreamEvent::Message(_)) if !self.may_send_from(local.ip()) => {
                        break 'read;
                    }
                    Ok(StreamEvent::Message(message)) => {
                        seen_message = true;
                        completed = true;
                        let m = Inbound {
                            message,
                            source: peer,
                            local,
                            transport: Transport::Tcp,
                        };
                        if core.send(m).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(StreamEvent::Ping) => {
                        completed = true;
                        let _ = wtx.try_send(Bytes::from_static(sip::framing::PONG));
                    }
                    Ok(StreamEvent::Pong) => completed = true,
                    Err(e) => {
                        self.metrics.inc_parse_error();
                        let d = self.logs.framing.event(peer.ip(), || e.to_string());
                        if !self.suppressed(d) {
                            warn!(%peer, %local, error = %e, "SIP framing error on TCP: closing connection{}", more(d));
                        }
                        break 'read;
                    }
                }
            }
            message_started = if !seen_message {
                Some(opened)
            } else if framer.buffered() == 0 {
                None
            } else if completed || message_started.is_none() {
                Some(now)
            } else {
                message_started
            };
        }
        if let Ok(mut c) = self.conns.lock()
            && c.get(&peer).is_some_and(|s| s.same_channel(&wtx))
        {
            // Only our own entry: the peer may have reconnected from the same address.
            c.remove(&peer);
        }
        drop(wtx);
        if !writer_done
            && tokio::time::timeout(write_timeout, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
    }

    /// Marks whether this node holds its freebound (application) addresses (the cluster driver,
    /// on taking and releasing them). Starts as not held.
    pub fn set_holds_app_address(&self, held: bool) {
        self.holds_app_address
            .store(held, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a datagram may leave from `ip`: any address but a freebound one this node does
    /// not hold.
    fn may_send_from(&self, ip: IpAddr) -> bool {
        self.holds_app_address
            .load(std::sync::atomic::Ordering::Relaxed)
            || !self.bounds.freebind.contains(&ip)
    }

    fn udp_out(&self, local: Option<SocketAddr>, dest: SocketAddr) -> Option<&Arc<UdpOut>> {
        if let Some(l) = local
            && let Some(u) = self.udp.iter().find(|u| u.local == l)
        {
            return Some(u);
        }
        self.udp
            .iter()
            .find(|u| u.local.is_ipv4() == dest.is_ipv4())
    }

    /// Is there an open TCP connection to `peer`?
    pub fn has_connection(&self, peer: SocketAddr) -> bool {
        self.conns
            .lock()
            .map(|c| c.contains_key(&peer))
            .unwrap_or(false)
    }

    /// Queues a datagram behind a full socket buffer; drops it (counted) when the queue is full.
    fn udp_enqueue(&self, out: &UdpOut, dest: SocketAddr, data: Bytes) {
        let Ok(mut q) = out.queue.lock() else { return };
        if q.len() >= self.bounds.udp_send_queue {
            drop(q);
            self.metrics.inc_udp_send_drop();
            debug!(%dest, "UDP send queue full: datagram dropped");
            return;
        }
        q.push_back((dest, data));
        out.queued.fetch_add(1, Relaxed);
        drop(q);
        self.metrics.inc_udp_send_queued();
        out.wake.notify_one();
    }

    /// Sends bytes. Returns false when the send failed at once (no socket, full queue, too many
    /// connections). A TCP destination without a connection is connected to in the background
    /// (one connect per destination; sends meanwhile queue behind it); `on_fail` is called if
    /// that fails. A UDP datagram that finds the socket buffer full waits in a bounded queue,
    /// or is dropped like a loss on the wire (still `true`: the transaction layer retransmits).
    pub fn send(
        self: &Arc<Self>,
        transport: Transport,
        local: Option<SocketAddr>,
        dest: SocketAddr,
        data: Bytes,
        on_fail: impl FnOnce() + Send + 'static,
    ) -> bool {
        self.metrics.inc_sent_bytes(data.len());
        match transport {
            Transport::Udp => match self.udp_out(local, dest) {
                Some(out) if !self.may_send_from(out.local.ip()) => {
                    debug!(%dest, local = %out.local, "not sending from an application address this node does not hold");
                    false
                }
                Some(out) => {
                    if out.queued.load(Relaxed) > 0 {
                        // Keep the order behind what is already waiting.
                        self.udp_enqueue(out, dest, data);
                        return true;
                    }
                    match out.sock.try_send_to(&data, dest) {
                        Ok(_) => true,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            self.udp_enqueue(out, dest, data);
                            true
                        }
                        Err(e) => {
                            debug!(%dest, error = %e, "UDP send failed");
                            false
                        }
                    }
                }
                None => false,
            },
            Transport::Tcp => match local {
                // Built to leave from an application address this node does not hold (its
                // Via and Contact name it): no connect and no write from the standby.
                Some(l) if !self.may_send_from(l.ip()) => {
                    debug!(%dest, local = %l, "not connecting or writing from an application address this node does not hold");
                    false
                }
                _ => self.send_tcp(dest, data, Box::new(on_fail)),
            },
            _ => false,
        }
    }

    fn send_tcp(
        self: &Arc<Self>,
        dest: SocketAddr,
        data: Bytes,
        on_fail: Box<dyn FnOnce() + Send>,
    ) -> bool {
        let existing = self.conns.lock().ok().and_then(|c| c.get(&dest).cloned());
        if let Some(w) = existing {
            return w.try_send(data).is_ok();
        }
        let Ok(mut connecting) = self.connecting.lock() else {
            return false;
        };
        if let Some(c) = connecting.get_mut(&dest) {
            // A connect to this destination is under way: queue behind it.
            if c.tx.try_send(data).is_err() {
                return false;
            }
            c.on_fail.push(on_fail);
            return true;
        }
        if connecting.len() >= self.bounds.tcp_max_connecting {
            drop(connecting);
            self.metrics.inc_tcp_connect_failure();
            debug!(%dest, "too many TCP connects in flight: send refused");
            return false;
        }
        let slot = match self.admit(None) {
            Ok(s) => s,
            Err(why) => {
                drop(connecting);
                self.metrics.inc_tcp_connect_failure();
                debug!(%dest, reason = %why, "TCP connection limit: send refused");
                return false;
            }
        };
        let (w, r) = mpsc::channel::<Bytes>(TCP_QUEUE);
        // Seed the writer with our message, then run the connection normally.
        let _ = w.try_send(data);
        connecting.insert(
            dest,
            Connecting {
                tx: w.clone(),
                on_fail: vec![on_fail],
            },
        );
        drop(connecting);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let res =
                tokio::time::timeout(me.bounds.tcp_connect_timeout, TcpStream::connect(dest)).await;
            match res {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().unwrap_or(dest);
                    // Visible as a connection before the pending entry goes.
                    if let Ok(mut c) = me.conns.lock() {
                        c.insert(dest, w.clone());
                    }
                    if let Ok(mut c) = me.connecting.lock() {
                        c.remove(&dest);
                    }
                    if let Some(core) = me.core.get().cloned() {
                        me.serve_conn(stream, local, dest, w, r, core).await;
                    }
                }
                _ => {
                    let pending = me.connecting.lock().ok().and_then(|mut c| c.remove(&dest));
                    me.metrics.inc_tcp_connect_failure();
                    info!(%dest, "TCP connect failed");
                    drop(r);
                    for f in pending.map(|p| p.on_fail).unwrap_or_default() {
                        f();
                    }
                }
            }
            drop(slot);
        });
        true
    }
}

/// Socket buffers of the SIP UDP sockets. 4 MiB (the kernel doubles it, within
/// `net.core.rmem_max`) holds about 3,600 small datagrams: at a busy BLF load (~30,000 NOTIFY
/// answers a second, bench/blf.py at 100 calls/s × 1,000 × 50) that is ~120 ms of backlog, so
/// a burst while the receive task is descheduled fits (with 1 MiB, ~800 datagrams were dropped
/// per 20 s run, each a request its sender retransmitted 500 ms later), while a backlog still
/// stays far below T1 — never seconds of queueing, past which every request would be
/// retransmitted by its sender before being answered.
fn set_buffers(s: &UdpSocket) {
    let sock = socket2::SockRef::from(s);
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn started(bounds: TransportLimits) -> (Arc<Transports>, mpsc::Receiver<Inbound>) {
        // Port 0 picks a free UDP port; TCP on the same number may be taken by a test running
        // alongside: try again with another.
        let mut attempt = 0;
        let t = loop {
            let metrics = Arc::new(Metrics::default());
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            match Transports::bind_with(&[addr], metrics, bounds.clone()).await {
                Ok(t) => break t,
                Err(e) if attempt < 20 => {
                    attempt += 1;
                    eprintln!("bind attempt {attempt}: {e:#}");
                }
                Err(e) => panic!("bind: {e:#}"),
            }
        };
        let (tx, rx) = mpsc::channel(64);
        t.start(tx);
        (t, rx)
    }

    /// Transports on 127.0.0.1 standing for the application address: bound freebind, as a
    /// pair's node does (not held at first).
    async fn started_as_pair_node() -> (Arc<Transports>, mpsc::Receiver<Inbound>) {
        started(TransportLimits {
            freebind: vec![IpAddr::from([127, 0, 0, 1])],
            ..TransportLimits::default()
        })
        .await
    }

    #[tokio::test]
    async fn nothing_leaves_a_freebound_address_this_node_does_not_hold() {
        let (t, _rx) = started_as_pair_node().await;
        let local = t.local_addrs()[0];
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("peer");
        let dest = peer.local_addr().expect("addr");
        let mut buf = [0u8; 64];
        let wait = Duration::from_millis(300);
        // Not held (a standby): refused, nothing sent.
        assert!(!t.send(
            Transport::Udp,
            Some(local),
            dest,
            Bytes::from_static(b"ping"),
            || {}
        ));
        let got = tokio::time::timeout(wait, peer.recv_from(&mut buf)).await;
        assert!(got.is_err(), "a standby sent from the address");
        // Held (the active): sent.
        t.set_holds_app_address(true);
        assert!(t.send(
            Transport::Udp,
            Some(local),
            dest,
            Bytes::from_static(b"ping"),
            || {}
        ));
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
            .await
            .expect("the active sends")
            .expect("recv");
        assert_eq!((&buf[..n], from), (&b"ping"[..], local));
        // Released again: refused.
        t.set_holds_app_address(false);
        assert!(!t.send(
            Transport::Udp,
            Some(local),
            dest,
            Bytes::from_static(b"ping"),
            || {}
        ));
    }

    #[tokio::test]
    async fn nothing_is_taken_from_a_freebound_address_this_node_does_not_hold() {
        let bounds = TransportLimits {
            freebind: vec![IpAddr::from([127, 0, 0, 1])],
            ..TransportLimits::default()
        };
        let (t, mut rx) = started(bounds).await;
        let local = t.local_addrs()[0];
        let phone = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("phone");
        let options = |n: u32| {
            format!(
                "OPTIONS sip:{local} SIP/2.0\r\nVia: SIP/2.0/UDP {}; branch=z9hG4bK-drain{n}\r\n\
                 From: <sip:p@x>;tag=1\r\nTo: <sip:{local}>\r\nCall-ID: drain{n}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                phone.local_addr().expect("addr")
            )
        };
        // Not held (a standby, or a drained address): dropped.
        phone
            .send_to(options(1).as_bytes(), local)
            .await
            .expect("send");
        // Read (and dropped) before the address is held.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let read = |t: &Transports| {
            let mut text = String::new();
            t.metrics.render(&mut text);
            !text.contains("denwa_sip_received_bytes_total 0\n")
        };
        while !read(&t) {
            assert!(std::time::Instant::now() < end, "never read");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Held: taken. The first message the core sees is the second one.
        t.set_holds_app_address(true);
        phone
            .send_to(options(2).as_bytes(), local)
            .await
            .expect("send");
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the held address takes SIP")
            .expect("inbound");
        assert!(
            format!("{:?}", m.message).contains("drain2"),
            "the datagram sent while not held was taken: {:?}",
            m.message
        );
    }

    #[tokio::test]
    async fn tcp_on_a_freebound_address_this_node_does_not_hold_is_closed() {
        let (t, mut rx) = started(TransportLimits {
            freebind: vec![IpAddr::from([127, 0, 0, 1])],
            ..TransportLimits::default()
        })
        .await;
        let addr = t.tcp_addrs()[0];
        // Not held: a new connection is reset at once.
        let mut c = TcpStream::connect(addr).await.expect("connect");
        assert!(closed(&mut c, Duration::from_secs(5)).await);
        // Held: served.
        t.set_holds_app_address(true);
        let mut phone = TcpStream::connect(addr).await.expect("connect");
        phone.write_all(OPTIONS).await.expect("write");
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("message")
            .expect("queue");
        assert_eq!(m.transport, Transport::Tcp);
        // Released (drained): its next message is not taken and the connection ends.
        t.set_holds_app_address(false);
        phone.write_all(OPTIONS).await.expect("write");
        assert!(closed(&mut phone, Duration::from_secs(5)).await);
        assert!(
            rx.try_recv().is_err(),
            "a message was taken after the release"
        );
    }

    #[tokio::test]
    async fn no_tcp_connect_or_write_from_an_application_address_this_node_does_not_hold() {
        let (t, _rx) = started_as_pair_node().await;
        let app = t.tcp_addrs()[0];
        let l = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let dest = l.local_addr().expect("addr");
        let failed = Arc::new(AtomicUsize::new(0));
        let send = |msg: &'static [u8]| {
            let f = Arc::clone(&failed);
            t.send(
                Transport::Tcp,
                Some(app),
                dest,
                Bytes::from_static(msg),
                move || {
                    f.fetch_add(1, Relaxed);
                },
            )
        };
        // Not held (a standby): refused at once, no connect started.
        assert!(!send(b"standby;"));
        assert_eq!(t.tcp_connection_count(), 0, "a connect was started");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), l.accept())
                .await
                .is_err(),
            "the standby connected"
        );
        // Held (the active): connected and written.
        t.set_holds_app_address(true);
        assert!(send(b"active;"));
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), l.accept())
            .await
            .expect("accepted")
            .expect("accept");
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("data")
            .expect("read");
        assert_eq!(&b[..n], b"active;");
        assert_eq!(failed.load(Relaxed), 0);
        // Released: the open connection is not written to either.
        t.set_holds_app_address(false);
        assert!(!send(b"released;"));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut b))
                .await
                .is_err(),
            "written after the release"
        );
    }

    /// True once the server closed `c` (EOF or reset) within `wait`.
    async fn closed(c: &mut TcpStream, wait: Duration) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(wait, c.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Polls `f` every 20 ms for up to 2 s.
    async fn eventually(f: impl Fn() -> bool) -> bool {
        for _ in 0..100 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f()
    }

    /// Opens `n` connections one after another; returns those the server kept open (a refused
    /// one is reset, which may already fail the connect).
    async fn connect_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        let mut open = Vec::new();
        for _ in 0..n {
            let Ok(mut c) = TcpStream::connect(addr).await else {
                continue;
            };
            if !closed(&mut c, Duration::from_millis(300)).await {
                open.push(c);
            }
        }
        open
    }

    const OPTIONS: &[u8] =
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[tokio::test]
    async fn connections_beyond_the_per_source_limit_are_refused() {
        let (t, _rx) = started(TransportLimits {
            tcp_max_per_source: 3,
            ..TransportLimits::default()
        })
        .await;
        let addr = t.tcp_addrs()[0];
        let conns = connect_many(addr, 8).await;
        assert_eq!(conns.len(), 3);
        assert_eq!(t.tcp_connection_count(), 3);
        let mut s = String::new();
        t.metrics.render(&mut s);
        assert!(s.contains("denwa_sip_tcp_refused_total 5"), "{s}");
        // Closing one frees its place.
        drop(conns);
        assert!(eventually(|| t.tcp_connection_count() == 0).await);
    }

    #[tokio::test]
    async fn the_total_limit_holds_across_sources() {
        let (t, _rx) = started(TransportLimits {
            tcp_max_total: 2,
            ..TransportLimits::default()
        })
        .await;
        let addr = t.tcp_addrs()[0];
        assert_eq!(connect_many(addr, 4).await.len(), 2);
    }

    #[tokio::test]
    async fn silent_and_trickling_connections_are_closed_but_a_phone_stays() {
        let (t, mut rx) = started(TransportLimits {
            tcp_message_timeout: Duration::from_millis(300),
            ..TransportLimits::default()
        })
        .await;
        let addr = t.tcp_addrs()[0];
        // Says nothing at all.
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        // Sends a message, then starts another one and never finishes it.
        let mut trickle = TcpStream::connect(addr).await.expect("connect");
        trickle.write_all(OPTIONS).await.expect("write");
        trickle
            .write_all(b"OPTIONS sip:x SIP/2.0\r\n")
            .await
            .expect("write");
        // Sends a message and then idles (well within the idle timeout).
        let mut phone = TcpStream::connect(addr).await.expect("connect");
        phone.write_all(OPTIONS).await.expect("write");
        for _ in 0..2 {
            let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("message")
                .expect("queue");
            assert_eq!(m.transport, Transport::Tcp);
        }
        assert!(closed(&mut silent, Duration::from_secs(5)).await);
        assert!(closed(&mut trickle, Duration::from_secs(5)).await);
        assert!(!closed(&mut phone, Duration::from_millis(600)).await);
        let mut s = String::new();
        t.metrics.render(&mut s);
        assert!(s.contains("denwa_sip_tcp_timeouts_total 2"), "{s}");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let (t, mut rx) = started(TransportLimits {
            tcp_idle_timeout: Duration::from_millis(200),
            ..TransportLimits::default()
        })
        .await;
        let mut c = TcpStream::connect(t.tcp_addrs()[0]).await.expect("connect");
        c.write_all(OPTIONS).await.expect("write");
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(closed(&mut c, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn sends_to_one_destination_share_one_connect() {
        let (t, _rx) = started(TransportLimits::default()).await;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let dest = l.local_addr().expect("addr");
        let failed = Arc::new(AtomicUsize::new(0));
        for i in 0..3 {
            let f = Arc::clone(&failed);
            let ok = t.send(
                Transport::Tcp,
                None,
                dest,
                Bytes::from(format!("msg{i};")),
                move || {
                    f.fetch_add(1, Relaxed);
                },
            );
            assert!(ok);
        }
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), l.accept())
            .await
            .expect("accepted")
            .expect("accept");
        let mut got = Vec::new();
        let mut b = [0u8; 64];
        while got.len() < 15 {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
                .await
                .expect("data")
                .expect("read");
            assert!(n > 0);
            got.extend_from_slice(&b[..n]);
        }
        assert_eq!(got, b"msg0;msg1;msg2;");
        // No second connection was made.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), l.accept())
                .await
                .is_err()
        );
        assert!(t.has_connection(dest));
        assert_eq!(failed.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_failed_connect_calls_every_queued_on_fail() {
        let (t, _rx) = started(TransportLimits::default()).await;
        // A port nobody listens on (bound, then closed).
        let dest = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let failed = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let f = Arc::clone(&failed);
            assert!(t.send(
                Transport::Tcp,
                None,
                dest,
                Bytes::from_static(b"x"),
                move || {
                    f.fetch_add(1, Relaxed);
                }
            ));
        }
        assert!(eventually(|| failed.load(Relaxed) == 2).await);
        assert_eq!(t.tcp_connection_count(), 0);
    }

    #[tokio::test]
    async fn outbound_connects_are_bounded() {
        let (t, _rx) = started(TransportLimits {
            tcp_max_total: 1,
            ..TransportLimits::default()
        })
        .await;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let l2 = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let a = l.local_addr().expect("addr");
        let b = l2.local_addr().expect("addr");
        assert!(t.send(Transport::Tcp, None, a, Bytes::from_static(b"x"), || {}));
        // The only place is taken: a send to another destination fails at once.
        assert!(!t.send(Transport::Tcp, None, b, Bytes::from_static(b"x"), || {}));
    }

    /// Runs `f` on a thread of its own in a fresh network namespace (only this thread moves,
    /// CLONE_NEWNET is per thread) whose loopback sends through a 1 Mbit/s token bucket: a
    /// datagram waits in the queueing discipline, charged to its socket's send buffer, so a
    /// small SO_SNDBUF fills with a burst (on a plain loopback it never does).
    fn in_slow_loopback_namespace(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            // SAFETY: unshare only changes this thread's namespaces.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET) needs root (CAP_SYS_ADMIN): {}",
                std::io::Error::last_os_error()
            );
            // Children inherit the calling thread's namespace.
            for args in [
                &["ip", "link", "set", "lo", "up"][..],
                &[
                    "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst",
                    "1540", "limit", "1000000",
                ][..],
            ] {
                let st = std::process::Command::new(args[0])
                    .args(&args[1..])
                    .status()
                    .unwrap_or_else(|e| panic!("{} (package iproute2): {e}", args[0]));
                assert!(st.success(), "{args:?} failed");
            }
            f();
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    }

    #[test]
    fn a_full_udp_send_buffer_queues_up_to_the_bound_and_drops_the_rest() {
        in_slow_loopback_namespace(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                const BURST: usize = 100;
                const QUEUE: usize = 8;
                let (t, _rx) = started(TransportLimits {
                    udp_send_queue: QUEUE,
                    ..TransportLimits::default()
                })
                .await;
                let out = Arc::clone(&t.udp[0]);
                socket2::SockRef::from(&*out.sock)
                    .set_send_buffer_size(1)
                    .expect("SO_SNDBUF");
                let peer = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("peer");
                let dest = peer.local_addr().expect("addr");
                // tokio tries a send only once its reactor has seen the socket writable.
                out.sock.writable().await.expect("writable");
                let metrics = tokio::runtime::Handle::current().metrics();
                let tasks = metrics.num_alive_tasks();
                // The burst: nothing awaits in between, so the retry task cannot drain yet.
                for i in 0..BURST {
                    let mut d = vec![b'x'; 1000];
                    d[..4].copy_from_slice(&(i as u32).to_be_bytes());
                    assert!(t.send(Transport::Udp, None, dest, Bytes::from(d), || {}));
                    let waiting = out.queue.lock().map(|q| q.len()).unwrap_or(0);
                    assert!(waiting <= QUEUE, "{waiting} datagrams queued");
                }
                assert_eq!(
                    metrics.num_alive_tasks(),
                    tasks,
                    "a task was spawned for a datagram"
                );
                let counter = |name: &str| {
                    let mut text = String::new();
                    t.metrics.render(&mut text);
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name} ")))
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or_else(|| panic!("no {name} in {text}"))
                };
                assert_eq!(out.queued.load(Relaxed), QUEUE, "the queue is full");
                assert_eq!(counter("denwa_sip_udp_send_queued_total"), QUEUE);
                let dropped = counter("denwa_sip_udp_send_dropped_total");
                let direct = BURST - QUEUE - dropped;
                assert!(
                    (1..=8).contains(&direct),
                    "{direct} went straight out of a 4.5 KiB buffer"
                );
                // As the token bucket lets the queued ones go, they leave in order, and the
                // queue empties.
                let mut got = Vec::new();
                let mut buf = [0u8; 2048];
                while got.len() < direct + QUEUE {
                    let (n, _) =
                        tokio::time::timeout(Duration::from_secs(10), peer.recv_from(&mut buf))
                            .await
                            .expect("the queued datagrams arrive")
                            .expect("recv");
                    assert_eq!(n, 1000);
                    got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize);
                }
                let sent: Vec<usize> = (0..direct + QUEUE).collect();
                assert_eq!(got, sent, "in order, the dropped ones being the last");
                assert!(eventually(|| out.queued.load(Relaxed) == 0).await);
                assert_eq!(counter("denwa_sip_udp_send_dropped_total"), dropped);
                assert!(
                    tokio::time::timeout(Duration::from_millis(300), peer.recv_from(&mut buf))
                        .await
                        .is_err(),
                    "a dropped datagram was sent"
                );
            });
        });
    }
}
