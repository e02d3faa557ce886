//! SIP transports: UDP sockets and TCP listeners/connections around the sans-IO stack.
//!
//! Receive loops parse messages on their own tasks (so parsing spreads over the runtime's
//! threads) and hand them to the core. Malformed requests are answered here with 400 (or dropped
//! when they cannot be answered) and logged with the peer address. Sends never block the core:
//! UDP uses `try_send_to`, TCP goes through each connection's writer queue.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use sip::transaction::Transport;
use sip::{Datagram, Limits, StreamEvent, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
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

/// All bound SIP sockets of this node.
pub struct Transports {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp_local: Vec<SocketAddr>,
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    /// TCP listeners, bound in `bind` and handed to accept loops by `start`.
    listeners: Mutex<Vec<TcpListener>>,
    /// Where every receive loop (also of outbound TCP connections) delivers messages.
    core: std::sync::OnceLock<mpsc::Sender<Inbound>>,
    limits: Limits,
    metrics: Arc<Metrics>,
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
    /// Binds UDP and TCP on every address (wildcards expanded per interface).
    pub async fn bind(listen: &[SocketAddr], metrics: Arc<Metrics>) -> Result<Arc<Transports>> {
        let addrs = expand_listen(listen);
        let mut udp = Vec::new();
        let mut tcp_local = Vec::new();
        let mut listeners = Vec::new();
        for a in &addrs {
            let s = UdpSocket::bind(a)
                .await
                .with_context(|| format!("binding SIP UDP on {a}"))?;
            let local = s.local_addr()?;
            set_buffers(&s);
            udp.push((local, Arc::new(s)));
            let l = TcpListener::bind(local)
                .await
                .with_context(|| format!("binding SIP TCP on {local}"))?;
            tcp_local.push(l.local_addr()?);
            listeners.push(l);
        }
        let t = Arc::new(Transports {
            udp,
            tcp_local,
            conns: Mutex::new(HashMap::new()),
            listeners: Mutex::new(listeners),
            core: std::sync::OnceLock::new(),
            limits: Limits::default(),
            metrics,
        });
        Ok(t)
    }

    /// Local UDP addresses (one per segment).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(a, _)| *a).collect()
    }

    /// Local TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_local
    }

    /// Starts receive loops feeding `tx`.
    pub fn start(self: &Arc<Self>, tx: mpsc::Sender<Inbound>) {
        let _ = self.core.set(tx.clone());
        for (local, sock) in &self.udp {
            let me = Arc::clone(self);
            let sock = Arc::clone(sock);
            let tx = tx.clone();
            let local = *local;
            tokio::spawn(async move { me.udp_loop(local, sock, tx).await });
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
    }

    async fn udp_loop(
        self: Arc<Self>,
        local: SocketAddr,
        sock: Arc<UdpSocket>,
        tx: mpsc::Sender<Inbound>,
    ) {
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
                    match sip::error_response(&data, &e) {
                        Some(resp) => {
                            warn!(peer = %source, %local, error = %e, "malformed SIP request: answered 400");
                            let _ = sock.try_send_to(&resp, source);
                        }
                        None => {
                            warn!(peer = %source, %local, error = %e, "malformed SIP message dropped")
                        }
                    }
                }
            }
        }
    }

    async fn accept_loop(self: Arc<Self>, l: TcpListener, tx: mpsc::Sender<Inbound>) {
        let Ok(local) = l.local_addr() else { return };
        loop {
            match l.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let me = Arc::clone(&self);
                    let tx = tx.clone();
                    tokio::spawn(async move { me.run_conn(stream, local, peer, tx).await });
                }
                Err(e) => {
                    warn!(%local, error = %e, "TCP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
    ) {
        let (wtx, wrx) = mpsc::channel::<Bytes>(TCP_QUEUE);
        debug!(%peer, %local, "TCP connection up");
        self.serve_conn(stream, local, peer, wtx, wrx, tx).await;
        debug!(%peer, "TCP connection closed");
    }

    /// Runs one TCP connection (accepted or outbound): a writer task draining `wrx`, and the
    /// reader framing messages into the core queue. Registered under the peer address so
    /// requests to a phone registered over TCP reuse its connection (it may be behind NAT).
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
        let writer = tokio::spawn(async move {
            while let Some(b) = wrx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let mut framer = StreamFramer::new(self.limits);
        let mut buf = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.metrics.inc_received_bytes(n);
            framer.push(&buf[..n]);
            while let Some(ev) = framer.poll() {
                match ev {
                    Ok(StreamEvent::Message(message)) => {
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
                        let _ = wtx.try_send(Bytes::from_static(sip::framing::PONG));
                    }
                    Ok(StreamEvent::Pong) => {}
                    Err(e) => {
                        self.metrics.inc_parse_error();
                        warn!(%peer, %local, error = %e, "SIP framing error on TCP: closing connection");
                        break 'read;
                    }
                }
            }
        }
        if let Ok(mut c) = self.conns.lock()
            && c.get(&peer).is_some_and(|s| s.same_channel(&wtx))
        {
            // Only our own entry: the peer may have reconnected from the same address.
            c.remove(&peer);
        }
        drop(wtx);
        let _ = writer.await;
    }

    fn udp_socket(&self, local: Option<SocketAddr>, dest: SocketAddr) -> Option<&Arc<UdpSocket>> {
        if let Some(l) = local
            && let Some((_, s)) = self.udp.iter().find(|(a, _)| *a == l)
        {
            return Some(s);
        }
        self.udp
            .iter()
            .find(|(a, _)| a.is_ipv4() == dest.is_ipv4())
            .map(|(_, s)| s)
    }

    /// Is there an open TCP connection to `peer`?
    pub fn has_connection(&self, peer: SocketAddr) -> bool {
        self.conns
            .lock()
            .map(|c| c.contains_key(&peer))
            .unwrap_or(false)
    }

    /// Sends bytes. Returns false when the send failed at once (no socket, full queue).
    /// A TCP destination without a connection is connected to in the background; `on_fail` is
    /// called if that fails.
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
            Transport::Udp => match self.udp_socket(local, dest) {
                Some(s) => match s.try_send_to(&data, dest) {
                    Ok(_) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Kernel buffer full: hand it to a task rather than drop a final response.
                        let s = Arc::clone(s);
                        tokio::spawn(async move {
                            let _ = s.send_to(&data, dest).await;
                        });
                        true
                    }
                    Err(e) => {
                        debug!(%dest, error = %e, "UDP send failed");
                        false
                    }
                },
                None => false,
            },
            Transport::Tcp => {
                let existing = self.conns.lock().ok().and_then(|c| c.get(&dest).cloned());
                if let Some(w) = existing {
                    return w.try_send(data).is_ok();
                }
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        TcpStream::connect(dest),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => {
                            let _ = stream.set_nodelay(true);
                            let local = stream.local_addr().unwrap_or(dest);
                            let (w, r) = mpsc::channel::<Bytes>(TCP_QUEUE);
                            // Seed the writer with our message, then run the connection normally.
                            let _ = w.try_send(data);
                            if let Some(core) = me.core.get().cloned() {
                                me.serve_conn(stream, local, dest, w, r, core).await;
                            }
                        }
                        _ => {
                            info!(%dest, "TCP connect failed");
                            on_fail();
                        }
                    }
                });
                true
            }
            _ => false,
        }
    }
}

/// Socket buffers of the SIP UDP sockets. 1 MiB (the kernel doubles it, within
/// `net.core.rmem_max`) holds about 1,000 small datagrams: a burst while the receive task is
/// descheduled fits, but a backlog never grows to seconds of queueing, past which every request
/// would be retransmitted by its sender before being answered.
fn set_buffers(s: &UdpSocket) {
    let sock = socket2::SockRef::from(s);
    let _ = sock.set_recv_buffer_size(1 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
}
