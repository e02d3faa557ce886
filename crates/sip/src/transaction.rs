//! SIP transactions (RFC 3261 §17, with the RFC 6026 Accepted state), sans-IO.
//!
//! A [`TransactionLayer`] owns every client and server transaction of an endpoint. It never touches
//! a socket or reads a clock: the caller feeds it
//!
//! - received messages, already parsed: [`TransactionLayer::handle_message`] (with source address,
//!   local address, transport and `now`);
//! - requests and responses from the transaction user (TU): [`TransactionLayer::send_request`],
//!   [`TransactionLayer::send_response`], [`TransactionLayer::cancel`],
//!   [`TransactionLayer::send_stateless`] (the ACK for a 2xx, stateless replies);
//! - time: [`TransactionLayer::handle_timeout`];
//!
//! and drains [`TransactionLayer::poll_transmit`] (bytes to send), [`TransactionLayer::poll_event`]
//! (news for the TU) and [`TransactionLayer::poll_timeout`] (when to call `handle_timeout` next).
//!
//! What the layer does for the TU:
//! - retransmissions over unreliable transports (timers A, E, G) and absorption of the peer's
//!   retransmissions (resending the last provisional or final response);
//! - the ACK for a non-2xx final response to a client INVITE (§17.1.1.3);
//! - 2xx responses to a client INVITE, including retransmissions and forks, go up to the TU,
//!   which acknowledges them (see [`crate::dialog`]);
//! - a UAS 2xx to INVITE is retransmitted (T1 doubling up to T2) until the ACK arrives — the
//!   §13.3.1.4 duty of the UAS core, done here because the layer already owns the timers. The ACK
//!   is still handed to the TU; [`Event::AckTimeout`] tells it the ACK never came (send BYE);
//! - received `CANCEL` is matched to its INVITE server transaction ([`Event::Request::cancels`]);
//! - RFC 2543 peers (branch without `z9hG4bK`) are matched by the §17.2.3 fallback rules;
//! - `received` / `rport` (RFC 3581) are stamped into the top Via of received requests, and
//!   responses are sent where §18.2.2 / RFC 3581 say.
//!
//! Timers: A (INVITE retransmit, doubling), B (INVITE timeout, 64·T1), D (wait for response
//! retransmits, 32 s), E (non-INVITE retransmit, capped at T2), F (non-INVITE timeout), G (final
//! response retransmit), H (wait for ACK), I (absorb ACKs, T4), J (absorb non-INVITE requests),
//! K (absorb non-INVITE responses, T4), L (server Accepted, 64·T1), M (client Accepted, 64·T1).
//! On reliable transports A, E and G are not started and D, I, J, K are zero.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use sip::transaction::{Config, Event, Target, TransactionLayer, Transport};
//!
//! let mut layer = TransactionLayer::new(Config::default());
//! let now = Instant::now(); // in production: the run loop's clock
//! let peer: SocketAddr = "192.0.2.10:5060".parse().unwrap();
//! let local: SocketAddr = "192.0.2.1:5060".parse().unwrap();
//!
//! let branch = layer.new_branch();
//! let raw = format!(
//!     "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
//!      From: <sip:pbx@192.0.2.1>;tag=1\r\nTo: <sip:192.0.2.10>\r\nCall-ID: c1\r\n\
//!      CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
//! );
//! let sip::Message::Request(req) = sip::parse_message(raw.as_bytes()).unwrap() else { panic!() };
//! let target = Target { destination: peer, transport: Transport::Udp, local: Some(local) };
//! let id = layer.send_request(req, target, now).unwrap();
//!
//! // The run loop: send what comes out, sleep until the next deadline, feed time back in.
//! let first = layer.poll_transmit().unwrap();
//! assert_eq!(first.destination, peer);
//! let deadline = layer.poll_timeout().unwrap();
//! assert_eq!(deadline, now + Duration::from_millis(500)); // Timer E = T1
//! layer.handle_timeout(deadline);
//! assert!(layer.poll_transmit().is_some()); // retransmission
//!
//! // ... 32 s later without an answer, Timer F reports a timeout.
//! layer.handle_timeout(now + Duration::from_secs(32));
//! let mut timed_out = false;
//! while let Some(ev) = layer.poll_event() {
//!     if let Event::Timeout { transaction } = ev {
//!         timed_out = transaction == id;
//!     }
//! }
//! assert!(timed_out);
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::{Message, Request, Response};
use crate::method::Method;
use crate::values::Via;

/// Transport protocol of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (unreliable: the layer retransmits).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl Transport {
    /// True for transports that deliver reliably (everything but UDP).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via token (`UDP`, `TCP`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Parses a Via transport token, case-insensitively.
    pub fn parse(token: &str) -> Option<Transport> {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Sctp,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(token))
    }

    /// The port implied when a Via sent-by has none.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls | Transport::Wss => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Timer base values (RFC 3261 §17.1.1.1 and Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
    /// Timer D on unreliable transports (at least 32 s), default 32 s.
    pub d: Duration,
    /// Timer J on unreliable transports: how long a completed non-INVITE server transaction
    /// stays to answer retransmissions with its final response. RFC 3261 says 64·T1 (the
    /// default, 32 s). A node answering thousands of requests a second may shorten it (see
    /// `pbx::PbxConfig`); a retransmission arriving later is then handled as a new request.
    pub j: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
            j: Duration::from_secs(32),
        }
    }
}

/// Settings of a [`TransactionLayer`].
#[derive(Debug, Clone)]
pub struct Config {
    /// T1, T2, T4 and D.
    pub timers: Timers,
    /// Send `100 Trying` for an INVITE when the TU has sent no provisional response after this
    /// long (§17.2.1 suggests 200 ms). `None` leaves it to the TU; zero sends it at once.
    pub trying_delay: Option<Duration>,
    /// Mixed into branches made by [`TransactionLayer::new_branch`]; give each process a random
    /// value so branches stay unique across restarts.
    pub branch_seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            timers: Timers::default(),
            trying_delay: Some(Duration::from_millis(200)),
            branch_seed: 0,
        }
    }
}

/// Handle of one transaction, unique for the layer's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

impl TransactionId {
    /// An id no transaction of any layer ever has: the INVITE transaction of a dialog rebuilt
    /// from a stored record (another node's call taken over), long gone.
    pub const DETACHED: TransactionId = TransactionId(u64::MAX);
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// The four transaction machines of §17.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionKind {
    /// Client INVITE (§17.1.1).
    ClientInvite,
    /// Client non-INVITE (§17.1.2).
    ClientNonInvite,
    /// Server INVITE (§17.2.1).
    ServerInvite,
    /// Server non-INVITE (§17.2.2).
    ServerNonInvite,
}

/// Transaction state (RFC 3261 figures 5–8, RFC 6026 Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client INVITE sent, no response yet.
    Calling,
    /// Non-INVITE: request sent or received, no response yet.
    Trying,
    /// A provisional response was received or sent.
    Proceeding,
    /// A final (non-2xx for INVITE) response was received or sent.
    Completed,
    /// A 2xx to INVITE was received or sent (RFC 6026).
    Accepted,
    /// Server INVITE: the ACK for the non-2xx response arrived.
    Confirmed,
}

/// Where a client transaction sends its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Remote address (after RFC 3263 resolution by the caller).
    pub destination: SocketAddr,
    /// Transport to use.
    pub transport: Transport,
    /// Local address (socket / interface) to send from; `None` lets the caller choose.
    pub local: Option<SocketAddr>,
}

/// Bytes the caller must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The transaction this belongs to (`None` for stateless sends); report send failures for
    /// it with [`TransactionLayer::handle_transport_error`].
    pub transaction: Option<TransactionId>,
    /// Transport to use.
    pub transport: Transport,
    /// Remote address (for a reliable transport: the connection's peer).
    pub destination: SocketAddr,
    /// Local address to send from (the address the request arrived on, for responses).
    pub local: Option<SocketAddr>,
    /// The serialised message.
    pub data: Bytes,
}

/// News for the transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request. `transaction` is `None` only for ACK, which has no server transaction
    /// (ACK for a 2xx, or an ACK matching nothing).
    Request {
        /// The new server transaction; answer with [`TransactionLayer::send_response`].
        transaction: Option<TransactionId>,
        /// The request, with `received` / `rport` stamped in its top Via.
        request: Request,
        /// Where it came from.
        source: SocketAddr,
        /// The local address it arrived on.
        local: SocketAddr,
        /// Its transport.
        transport: Transport,
        /// For CANCEL: the INVITE server transaction it cancels, if one matches (§9.2).
        /// Answer the CANCEL 200 and the INVITE 487; with `None`, answer the CANCEL 481.
        cancels: Option<TransactionId>,
    },
    /// A response for a client transaction (provisional, final, or a 2xx retransmission / fork
    /// in the Accepted state).
    Response {
        /// The client transaction.
        transaction: TransactionId,
        /// The response.
        response: Response,
        /// Where it came from.
        source: SocketAddr,
    },
    /// Timer B, F (no final response) or H (no ACK for a non-2xx final response) fired.
    Timeout {
        /// The transaction.
        transaction: TransactionId,
    },
    /// A 2xx to INVITE was retransmitted for 64·T1 without an ACK (§13.3.1.4): end the session.
    AckTimeout {
        /// The server INVITE transaction.
        transaction: TransactionId,
    },
    /// The caller reported that sending failed.
    TransportError {
        /// The transaction.
        transaction: TransactionId,
    },
    /// The transaction is gone; its id will not appear again.
    Terminated {
        /// The transaction.
        transaction: TransactionId,
    },
    /// A response that matches no client transaction (a proxy would forward it statelessly).
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        source: SocketAddr,
    },
}

/// Errors returned to the TU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The transaction id is unknown (already terminated?).
    #[error("no such transaction")]
    NoSuchTransaction,
    /// The operation is not allowed in the transaction's kind or state.
    #[error("not allowed in state {0:?}")]
    InvalidState(Option<State>),
    /// The status code is outside 100..=699.
    #[error("status code {0} out of range")]
    BadStatus(u16),
    /// A required header is missing or unparsable.
    #[error("missing or invalid {0} header")]
    MissingHeader(&'static str),
    /// The top Via has no RFC 3261 branch (`z9hG4bK...`).
    #[error("top Via lacks an RFC 3261 branch")]
    BadBranch,
    /// A client transaction with this branch and method already exists.
    #[error("duplicate branch")]
    DuplicateBranch,
    /// ACK is not sent through a client transaction: use `send_stateless`.
    #[error("ACK has no client transaction; use send_stateless")]
    AckNotTransaction,
    /// An INVITE needs its parsed request (CANCEL, ACK): use `send_request`.
    #[error("INVITE needs send_request")]
    InviteNeedsRequest,
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Received retransmissions absorbed (not passed to the TU).
    pub absorbed: u64,
    /// Retransmissions sent by timers.
    pub retransmitted: u64,
    /// Received messages dropped for lacking Via / CSeq / Call-ID.
    pub dropped: u64,
    /// Transactions created.
    pub created: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    // Timeouts come first: at equal deadlines the heap fires the lower index first, and a
    // transaction that is ending should not retransmit in the same instant.
    B,
    D,
    F,
    H,
    I,
    J,
    K,
    L,
    M,
    A,
    E,
    G,
    /// Automatic 100 Trying.
    Trying,
    /// UAS 2xx retransmission (§13.3.1.4).
    Retransmit2xx,
}

const TIMER_COUNT: usize = 14;

impl Timer {
    /// Indexed by discriminant.
    const ALL: [Timer; TIMER_COUNT] = [
        Timer::B,
        Timer::D,
        Timer::F,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::A,
        Timer::E,
        Timer::G,
        Timer::Trying,
        Timer::Retransmit2xx,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Server transaction key (§17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    /// branch + sent-by + method (ACK folded into INVITE).
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number, top Via, method.
    /// The To tag is left out so an ACK (which carries our To tag) finds its INVITE.
    Rfc2543 {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        via: String,
        method: Method,
    },
}

/// Client transaction key (§17.1.3): branch + CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: Method,
}

/// Matches an end-to-end ACK to the 2xx it acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: String,
    cseq: u32,
    from_tag: String,
}

#[derive(Debug, Clone)]
enum Key {
    Server(ServerKey),
    Client(ClientKey),
}

#[derive(Debug)]
struct Txn {
    kind: TransactionKind,
    state: State,
    key: Key,
    /// The request as sent (client) or received (server INVITE). Dropped once a final response is
    /// sent or received (a client INVITE's on [`TransactionLayer::release_request`]), so that
    /// lingering transactions hold only their keys and the bytes they may still resend.
    request: Option<Request>,
    /// Client: the serialised request, for retransmission (emptied after a final response).
    request_bytes: Bytes,
    /// Client: destination of the request; server: destination of responses.
    target: Target,
    /// Server: the last response sent, for retransmission.
    last_response: Option<Bytes>,
    /// Server: whether a provisional response went out (suppresses the automatic 100).
    sent_provisional: bool,
    /// Client INVITE: the ACK for a non-2xx final response.
    ack: Option<Bytes>,
    /// Current retransmission interval.
    interval: Duration,
    timers: [Option<Instant>; TIMER_COUNT],
    /// Client INVITE: CANCEL asked for before any provisional response (§9.1).
    cancel_pending: bool,
    /// Reason header value for the CANCEL (RFC 3326), e.g. a call completed elsewhere.
    cancel_reason: Option<String>,
    /// Server INVITE in Accepted: key under which the ACK is expected.
    ack_key: Option<AckKey>,
    /// Server INVITE: the ACK for the 2xx arrived.
    acked: bool,
}

impl Txn {
    fn reliable(&self) -> bool {
        self.target.transport.is_reliable()
    }
}

/// Owns all transactions of one endpoint; see the module docs.
#[derive(Debug)]
pub struct TransactionLayer {
    config: Config,
    /// Boxed: the table keeps spare capacity, which should cost a pointer, not a transaction.
    txns: HashMap<TransactionId, Box<Txn>>,
    server_index: HashMap<ServerKey, TransactionId>,
    client_index: HashMap<ClientKey, TransactionId>,
    ack_index: HashMap<AckKey, TransactionId>,
    /// Deadlines with lazy deletion: an entry counts only if the transaction still holds the same
    /// deadline for that timer.
    heap: crate::timer_queue::TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_id: u64,
    branch_counter: u64,
    stats: Stats,
}

fn sent_by(via: &Via) -> String {
    let port = via
        .port
        .unwrap_or_else(|| Transport::parse(&via.transport).map_or(5060, Transport::default_port));
    let mut s = via.host.to_string();
    s.make_ascii_lowercase();
    s.push(':');
    s.push_str(&port.to_string());
    s
}

fn server_key(req: &Request, via: &Via, method: Method) -> Option<ServerKey> {
    if via.has_rfc3261_branch() {
        return Some(ServerKey::Rfc3261 {
            branch: via.branch()?.to_owned(),
            sent_by: sent_by(via),
            method,
        });
    }
    Some(ServerKey::Rfc2543 {
        request_uri: req.uri.to_string(),
        from_tag: req.from()?.tag().unwrap_or_default().to_owned(),
        call_id: req.call_id()?.to_owned(),
        cseq: req.cseq()?.seq,
        via: via.to_string(),
        method,
    })
}

/// Method under which a request is keyed: ACK belongs to its INVITE (§17.2.3).
fn key_method(m: &Method) -> Method {
    if *m == Method::Ack {
        Method::Invite
    } else {
        m.clone()
    }
}

/// §18.2.1 / RFC 3581: record where the request really came from. Returns true if changed.
fn stamp_via(via: &mut Via, source: SocketAddr) -> bool {
    let ip = source.ip().to_string();
    let rport_requested = via.rport() == Some(None);
    let mut changed = false;
    if via.host.ip() != Some(source.ip()) || rport_requested {
        via.params.set("received", Some(&ip));
        changed = true;
    }
    if rport_requested {
        via.params.set("rport", Some(&source.port().to_string()));
        changed = true;
    }
    changed
}

/// §18.2.2 / RFC 3581: where responses to a request go.
fn response_target(
    via: &Via,
    source: SocketAddr,
    local: SocketAddr,
    transport: Transport,
) -> Target {
    let destination = if transport.is_reliable() {
        // Back over the connection the request came on.
        source
    } else if let Some(maddr) = via.maddr().and_then(|m| m.parse::<IpAddr>().ok()) {
        SocketAddr::new(maddr, via.port.unwrap_or(transport.default_port()))
    } else if via.rport().is_some() {
        source
    } else {
        SocketAddr::new(source.ip(), via.port.unwrap_or(transport.default_port()))
    };
    Target {
        destination,
        transport,
        local: Some(local),
    }
}

/// Copies the first field named `name` from `from` to `to`.
fn copy_header(to: &mut Request, from: &crate::header::Headers, name: HeaderName) {
    if let Some(v) = from.get(&name) {
        to.headers.push(name, v.clone());
    }
}

/// Headers shared by ACK (non-2xx) and CANCEL: Via (top only), From, Call-ID, Route, Max-Forwards.
fn hop_request(method: Method, inv: &Request, to: &crate::header::Headers, seq: u32) -> Request {
    let mut r = Request::new(method.clone(), inv.uri.clone());
    if let Some(via) = inv.top_via() {
        r.headers.push(HeaderName::Via, via.to_string());
    }
    r.headers.push(HeaderName::MaxForwards, "70");
    copy_header(&mut r, &inv.headers, HeaderName::From);
    copy_header(&mut r, to, HeaderName::To);
    copy_header(&mut r, &inv.headers, HeaderName::CallId);
    r.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
    for route in inv.headers.get_all(&HeaderName::Route) {
        r.headers.push(HeaderName::Route, route.clone());
    }
    r
}

/// The ACK a client INVITE transaction sends for a non-2xx final response (§17.1.1.3).
pub fn ack_for_non2xx(invite: &Request, response: &Response) -> Request {
    let seq = invite.cseq().map_or(0, |c| c.seq);
    hop_request(Method::Ack, invite, &response.headers, seq)
}

/// The CANCEL for a pending INVITE (§9.1).
pub fn cancel_for(invite: &Request) -> Request {
    let seq = invite.cseq().map_or(0, |c| c.seq);
    hop_request(Method::Cancel, invite, &invite.headers, seq)
}

impl TransactionLayer {
    /// An empty layer. T1 and T2 are raised to at least 1 ms (and T2 to at least T1) so a
    /// zero setting cannot make retransmission timers spin.
    pub fn new(mut config: Config) -> TransactionLayer {
        let floor = Duration::from_millis(1);
        config.timers.t1 = config.timers.t1.max(floor);
        config.timers.t2 = config.timers.t2.max(config.timers.t1);
        TransactionLayer {
            config,
            txns: HashMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            ack_index: HashMap::new(),
            heap: crate::timer_queue::TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            branch_counter: 0,
            stats: Stats::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A fresh RFC 3261 branch (`z9hG4bK` + seed + counter) for a new client transaction.
    pub fn new_branch(&mut self) -> String {
        self.branch_counter += 1;
        format!(
            "z9hG4bK{:x}.{:x}",
            self.config.branch_seed, self.branch_counter
        )
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// True when no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// State of a live transaction.
    pub fn state(&self, id: TransactionId) -> Option<State> {
        self.txns.get(&id).map(|t| t.state)
    }

    /// Kind of a live transaction.
    pub fn kind(&self, id: TransactionId) -> Option<TransactionKind> {
        self.txns.get(&id).map(|t| t.kind)
    }

    /// The request of a live transaction (as received for server INVITE transactions, with
    /// `received` stamped; as sent for client ones). Build responses from it with
    /// `Response::for_request`. `None` for server non-INVITE transactions (the TU has the
    /// request from [`Event::Request`]) and once the transaction no longer keeps it (see
    /// [`Self::release_request`]).
    pub fn request(&self, id: TransactionId) -> Option<&Request> {
        self.txns.get(&id).and_then(|t| t.request.as_ref())
    }

    /// Tells the layer the TU needs no more [`Self::request`] of a client INVITE transaction
    /// that has its final response (the layer keeps it after a 2xx so that the TU can still
    /// build a dialog from a late answer). Does nothing before the final response: a CANCEL
    /// is built from the request.
    pub fn release_request(&mut self, id: TransactionId) {
        if let Some(t) = self.txns.get_mut(&id)
            && matches!(t.state, State::Accepted | State::Completed)
        {
            t.request = None;
        }
    }

    /// Next transmission to perform.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest pending deadline; call [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some((at, id, t)) = self.heap.peek() {
            if self.is_live_timer(at, id, t) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    fn is_live_timer(&self, at: Instant, id: u64, t: u8) -> bool {
        self.txns
            .get(&TransactionId(id))
            .is_some_and(|txn| txn.timers[usize::from(t)] == Some(at))
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, id, t)) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if !self.is_live_timer(at, id, t) {
                continue;
            }
            let id = TransactionId(id);
            let timer = Timer::ALL[usize::from(t)];
            if let Some(txn) = self.txns.get_mut(&id) {
                txn.timers[usize::from(t)] = None;
            }
            self.fire(id, timer, now);
        }
    }

    /// Reports that sending for `id` failed (connection refused, ICMP error, ...): the
    /// transaction ends with [`Event::TransportError`].
    pub fn handle_transport_error(&mut self, id: TransactionId) {
        if self.txns.contains_key(&id) {
            self.events
                .push_back(Event::TransportError { transaction: id });
            self.terminate(id);
        }
    }

    /// Sends a message outside any transaction (the ACK for a 2xx, or a stateless reply).
    pub fn send_stateless(&mut self, message: &Message, target: Target) {
        self.send_raw(Bytes::from(message.to_bytes()), target);
    }

    /// Sends an already serialised message outside any transaction (e.g. a stored ACK).
    pub fn send_raw(&mut self, data: Bytes, target: Target) {
        self.transmits.push_back(Transmit {
            transaction: None,
            transport: target.transport,
            destination: target.destination,
            local: target.local,
            data,
        });
    }

    fn alloc_id(&mut self) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        self.stats.created += 1;
        id
    }

    /// Sets `timer` of `id` to fire `after` from `now`.
    fn set_timer(&mut self, id: TransactionId, timer: Timer, now: Instant, after: Duration) {
        let at = now + after;
        if let Some(txn) = self.txns.get_mut(&id) {
            txn.timers[timer.index()] = Some(at);
            self.heap.push(after, (at, id.0, timer as u8));
        }
        self.maybe_compact();
    }

    /// Drops lazily deleted heap entries once they dominate. Cancelled timers (Timer B of an
    /// answered INVITE, ...) would otherwise stay until their deadline, up to 64*T1 of traffic.
    fn maybe_compact(&mut self) {
        let live_bound = TIMER_COUNT * self.txns.len();
        if self.heap.len() > 4096 && self.heap.len() > 2 * live_bound {
            let txns = &self.txns;
            self.heap.retain(|&(at, id, t)| {
                txns.get(&TransactionId(id))
                    .is_some_and(|txn| txn.timers[usize::from(t)] == Some(at))
            });
        }
    }

    /// Entries in the timer heap, including not yet purged cancelled ones (for metrics).
    pub fn timer_entries(&self) -> usize {
        self.heap.len()
    }

    fn emit(&mut self, id: TransactionId, data: Bytes) {
        if let Some(txn) = self.txns.get(&id) {
            self.transmits.push_back(Transmit {
                transaction: Some(id),
                transport: txn.target.transport,
                destination: txn.target.destination,
                local: txn.target.local,
                data,
            });
        }
    }

    fn terminate(&mut self, id: TransactionId) {
        let Some(txn) = self.txns.remove(&id) else {
            return;
        };
        match &txn.key {
            Key::Server(k) => {
                if self.server_index.get(k) == Some(&id) {
                    self.server_index.remove(k);
                }
            }
            Key::Client(k) => {
                if self.client_index.get(k) == Some(&id) {
                    self.client_index.remove(k);
                }
            }
        }
        if let Some(k) = &txn.ack_key
            && self.ack_index.get(k) == Some(&id)
        {
            self.ack_index.remove(k);
        }
        self.events.push_back(Event::Terminated { transaction: id });
    }

    /// Starts timer `timer` `after` from now, or terminates at once when `after` is zero
    /// (the reliable-transport case of D, I, J, K).
    fn linger(&mut self, id: TransactionId, timer: Timer, after: Duration, now: Instant) {
        if after.is_zero() {
            self.terminate(id);
        } else {
            self.set_timer(id, timer, now, after);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Client side
    // -----------------------------------------------------------------------------------------

    /// Starts a client transaction for `request` (not ACK) and sends it to `target`.
    ///
    /// The top Via must carry an RFC 3261 branch unique to this transaction
    /// (see [`new_branch`](Self::new_branch)).
    pub fn send_request(
        &mut self,
        request: Request,
        target: Target,
        now: Instant,
    ) -> Result<TransactionId, TxError> {
        if request.method == Method::Ack {
            return Err(TxError::AckNotTransaction);
        }
        let via = request.top_via().ok_or(TxError::MissingHeader("Via"))?;
        if !via.has_rfc3261_branch() {
            return Err(TxError::BadBranch);
        }
        let branch = via.branch().ok_or(TxError::BadBranch)?.to_owned();
        request.cseq().ok_or(TxError::MissingHeader("CSeq"))?;
        request.call_id().ok_or(TxError::MissingHeader("Call-ID"))?;
        let key = ClientKey {
            branch,
            method: request.method.clone(),
        };
        if self.client_index.contains_key(&key) {
            return Err(TxError::DuplicateBranch);
        }
        Ok(self.start_client(request, key, target, now))
    }

    /// Starts a non-INVITE client transaction for a request the TU serialised itself (a
    /// NOTIFY of a busy-lamp field, built from a per-subscription template): `branch` is the
    /// RFC 3261 branch of its top Via and `method` its CSeq method, both as written in `data`.
    /// The layer keeps only the bytes (for retransmissions), so [`Self::request`] is `None`.
    /// Same timers and matching as [`Self::send_request`]; no parse of our own message.
    pub fn send_request_bytes(
        &mut self,
        data: Bytes,
        method: Method,
        branch: &str,
        target: Target,
        now: Instant,
    ) -> Result<TransactionId, TxError> {
        match method {
            Method::Ack => return Err(TxError::AckNotTransaction),
            Method::Invite => return Err(TxError::InviteNeedsRequest),
            _ => {}
        }
        if !branch.starts_with("z9hG4bK") || branch.len() <= 7 {
            return Err(TxError::BadBranch);
        }
        let key = ClientKey {
            branch: branch.to_owned(),
            method,
        };
        if self.client_index.contains_key(&key) {
            return Err(TxError::DuplicateBranch);
        }
        Ok(self.start_client_bytes(None, data, key, target, now))
    }

    fn start_client(
        &mut self,
        request: Request,
        key: ClientKey,
        target: Target,
        now: Instant,
    ) -> TransactionId {
        let data = Bytes::from(request.to_bytes());
        self.start_client_bytes(Some(request), data, key, target, now)
    }

    fn start_client_bytes(
        &mut self,
        request: Option<Request>,
        data: Bytes,
        key: ClientKey,
        target: Target,
        now: Instant,
    ) -> TransactionId {
        let id = self.alloc_id();
        let invite = key.method == Method::Invite;
        let t1 = self.config.timers.t1;
        let txn = Txn {
            kind: if invite {
                TransactionKind::ClientInvite
            } else {
                TransactionKind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            key: Key::Client(key.clone()),
            request,
            request_bytes: data.clone(),
            target,
            last_response: None,
            sent_provisional: false,
            ack: None,
            interval: t1,
            timers: [None; TIMER_COUNT],
            cancel_pending: false,
            cancel_reason: None,
            ack_key: None,
            acked: false,
        };
        self.client_index.insert(key, id);
        self.txns.insert(id, Box::new(txn));
        self.emit(id, data);
        let (retrans, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !target.transport.is_reliable() {
            self.set_timer(id, retrans, now, t1);
        }
        self.set_timer(id, timeout, now, 64 * t1);
        id
    }

    /// Cancels a client INVITE transaction (§9.1). Returns the CANCEL's transaction, or `None`
    /// when no provisional response has arrived yet: the CANCEL then goes out with the first
    /// one (and is dropped if a final response comes first).
    pub fn cancel(
        &mut self,
        invite: TransactionId,
        now: Instant,
    ) -> Result<Option<TransactionId>, TxError> {
        let txn = self
            .txns
            .get_mut(&invite)
            .ok_or(TxError::NoSuchTransaction)?;
        if txn.kind != TransactionKind::ClientInvite {
            return Err(TxError::InvalidState(Some(txn.state)));
        }
        match txn.state {
            State::Calling => {
                txn.cancel_pending = true;
                Ok(None)
            }
            State::Proceeding => Ok(self.start_cancel(invite, now)),
            s => Err(TxError::InvalidState(Some(s))),
        }
    }

    /// [`TransactionLayer::cancel`] with a Reason header on the CANCEL (RFC 3326), e.g.
    /// `SIP;cause=200;text="Call completed elsewhere"` so the other phones do not log a
    /// missed call.
    pub fn cancel_with_reason(
        &mut self,
        invite: TransactionId,
        reason: &str,
        now: Instant,
    ) -> Result<Option<TransactionId>, TxError> {
        if let Some(t) = self.txns.get_mut(&invite) {
            t.cancel_reason = Some(reason.to_string());
        }
        self.cancel(invite, now)
    }

    fn start_cancel(&mut self, invite: TransactionId, now: Instant) -> Option<TransactionId> {
        let txn = self.txns.get_mut(&invite)?;
        txn.cancel_pending = false;
        let mut cancel = cancel_for(txn.request.as_ref()?);
        if let Some(r) = &txn.cancel_reason {
            cancel.headers.push(HeaderName::Reason, r.as_str());
        }
        let target = txn.target;
        let Key::Client(k) = &txn.key else {
            return None;
        };
        let key = ClientKey {
            branch: k.branch.clone(),
            method: Method::Cancel,
        };
        if self.client_index.contains_key(&key) {
            return None;
        }
        Some(self.start_client(cancel, key, target, now))
    }

    fn on_response(&mut self, response: Response, source: SocketAddr, now: Instant) {
        let (Some(via), Some(cseq)) = (response.top_via(), response.cseq()) else {
            self.stats.dropped += 1;
            return;
        };
        let key = ClientKey {
            branch: via.branch().unwrap_or_default().to_owned(),
            method: cseq.method,
        };
        let Some(&id) = self.client_index.get(&key) else {
            self.events
                .push_back(Event::StrayResponse { response, source });
            return;
        };
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let status = response.status;
        let t = self.config.timers;
        let pass_up = Event::Response {
            transaction: id,
            response,
            source,
        };
        match (txn.kind, txn.state) {
            (TransactionKind::ClientInvite, State::Calling | State::Proceeding) => {
                txn.timers[Timer::A.index()] = None;
                txn.timers[Timer::B.index()] = None;
                if status < 200 {
                    txn.state = State::Proceeding;
                    let pending = txn.cancel_pending;
                    self.events.push_back(pass_up);
                    if pending {
                        self.start_cancel(id, now);
                    }
                } else if status < 300 {
                    txn.state = State::Accepted;
                    txn.cancel_pending = false;
                    txn.request_bytes = Bytes::new();
                    self.events.push_back(pass_up);
                    self.set_timer(id, Timer::M, now, 64 * t.t1);
                } else {
                    txn.state = State::Completed;
                    txn.cancel_pending = false;
                    let Event::Response { response, .. } = &pass_up else {
                        return;
                    };
                    let ack = txn
                        .request
                        .take()
                        .map(|r| Bytes::from(ack_for_non2xx(&r, response).to_bytes()));
                    txn.request_bytes = Bytes::new();
                    txn.ack.clone_from(&ack);
                    let reliable = txn.reliable();
                    if let Some(ack) = ack {
                        self.emit(id, ack);
                    }
                    self.events.push_back(pass_up);
                    let d = if reliable { Duration::ZERO } else { t.d };
                    self.linger(id, Timer::D, d, now);
                }
            }
            (TransactionKind::ClientInvite, State::Accepted) => {
                if (200..300).contains(&status) {
                    // Retransmitted 2xx or a fork: the TU acknowledges it.
                    self.events.push_back(pass_up);
                } else {
                    self.stats.absorbed += 1;
                }
            }
            (TransactionKind::ClientInvite, State::Completed) => {
                self.stats.absorbed += 1;
                if status >= 300
                    && let Some(ack) = txn.ack.clone()
                {
                    self.emit(id, ack);
                }
            }
            (TransactionKind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if status < 200 {
                    txn.state = State::Proceeding;
                    self.events.push_back(pass_up);
                } else {
                    txn.state = State::Completed;
                    txn.request = None;
                    txn.request_bytes = Bytes::new();
                    txn.timers[Timer::E.index()] = None;
                    txn.timers[Timer::F.index()] = None;
                    let k = if txn.reliable() { Duration::ZERO } else { t.t4 };
                    self.events.push_back(pass_up);
                    self.linger(id, Timer::K, k, now);
                }
            }
            _ => self.stats.absorbed += 1,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Server side
    // -----------------------------------------------------------------------------------------

    /// Feeds a received, parsed message.
    pub fn handle_message(
        &mut self,
        message: Message,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        match message {
            Message::Request(r) => self.on_request(r, source, local, transport, now),
            Message::Response(r) => self.on_response(r, source, now),
        }
    }

    fn on_request(
        &mut self,
        mut request: Request,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let Some(mut top) = request.headers.top_via_at() else {
            self.stats.dropped += 1;
            return;
        };
        if request.cseq().is_none() || request.call_id().is_none() {
            self.stats.dropped += 1;
            return;
        }
        let Some(key) = server_key(&request, &top.via, key_method(&request.method)) else {
            self.stats.dropped += 1;
            return;
        };
        if stamp_via(&mut top.via, source) {
            request.headers.set_top_via_at(&top);
        }
        let via = top.via;
        if request.method == Method::Ack {
            self.on_ack(request, key, source, local, transport, now);
            return;
        }
        if let Some(&id) = self.server_index.get(&key) {
            self.on_retransmitted_request(id);
            return;
        }
        let cancels = if request.method == Method::Cancel {
            let invite_key = match &key {
                ServerKey::Rfc3261 {
                    branch, sent_by, ..
                } => ServerKey::Rfc3261 {
                    branch: branch.clone(),
                    sent_by: sent_by.clone(),
                    method: Method::Invite,
                },
                ServerKey::Rfc2543 {
                    request_uri,
                    from_tag,
                    call_id,
                    cseq,
                    via,
                    ..
                } => ServerKey::Rfc2543 {
                    request_uri: request_uri.clone(),
                    from_tag: from_tag.clone(),
                    call_id: call_id.clone(),
                    cseq: *cseq,
                    via: via.clone(),
                    method: Method::Invite,
                },
            };
            self.server_index.get(&invite_key).copied()
        } else {
            None
        };
        let id = self.alloc_id();
        let invite = request.method == Method::Invite;
        let txn = Txn {
            kind: if invite {
                TransactionKind::ServerInvite
            } else {
                TransactionKind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            key: Key::Server(key.clone()),
            // Only an INVITE's request is needed later (a CANCEL's 487, the ACK's dialog); the
            // TU has every request from its event, so a non-INVITE keeps no copy.
            request: invite.then(|| request.clone()),
            request_bytes: Bytes::new(),
            target: response_target(&via, source, local, transport),
            last_response: None,
            sent_provisional: false,
            ack: None,
            interval: self.config.timers.t1,
            timers: [None; TIMER_COUNT],
            cancel_pending: false,
            cancel_reason: None,
            ack_key: None,
            acked: false,
        };
        self.server_index.insert(key, id);
        self.txns.insert(id, Box::new(txn));
        self.events.push_back(Event::Request {
            transaction: Some(id),
            request,
            source,
            local,
            transport,
            cancels,
        });
        if invite {
            match self.config.trying_delay {
                Some(d) if d.is_zero() => self.send_trying(id),
                Some(d) => self.set_timer(id, Timer::Trying, now, d),
                None => {}
            }
        }
    }

    fn on_retransmitted_request(&mut self, id: TransactionId) {
        self.stats.absorbed += 1;
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        let resend = match (txn.kind, txn.state) {
            // Proceeding: the last provisional; Completed: the final response.
            (TransactionKind::ServerInvite, State::Proceeding | State::Completed) => true,
            (TransactionKind::ServerNonInvite, State::Proceeding | State::Completed) => true,
            // Trying (non-INVITE, nothing sent yet), Accepted (the TU-level 2xx retransmission
            // runs on its own timer), Confirmed: absorb silently.
            _ => false,
        };
        if resend && let Some(r) = txn.last_response.clone() {
            self.emit(id, r);
        }
    }

    fn on_ack(
        &mut self,
        request: Request,
        key: ServerKey,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        if let Some(&id) = self.server_index.get(&key)
            && let Some(txn) = self.txns.get_mut(&id)
        {
            match txn.state {
                State::Completed => {
                    // ACK for our non-2xx final response: absorb, wait out Timer I.
                    txn.state = State::Confirmed;
                    txn.timers[Timer::G.index()] = None;
                    txn.timers[Timer::H.index()] = None;
                    let i = if txn.reliable() {
                        Duration::ZERO
                    } else {
                        self.config.timers.t4
                    };
                    self.stats.absorbed += 1;
                    self.linger(id, Timer::I, i, now);
                    return;
                }
                State::Confirmed => {
                    self.stats.absorbed += 1;
                    return;
                }
                _ => {}
            }
        }
        // ACK for a 2xx: a transaction of its own, end to end. Stop our 2xx retransmissions.
        let ack_key = AckKey {
            call_id: request.call_id().unwrap_or_default().to_owned(),
            cseq: request.cseq().map_or(0, |c| c.seq),
            from_tag: request
                .from()
                .and_then(|f| f.tag().map(str::to_owned))
                .unwrap_or_default(),
        };
        if let Some(id) = self.ack_index.remove(&ack_key)
            && let Some(txn) = self.txns.get_mut(&id)
        {
            txn.acked = true;
            txn.ack_key = None;
            txn.timers[Timer::Retransmit2xx.index()] = None;
        }
        self.events.push_back(Event::Request {
            transaction: None,
            request,
            source,
            local,
            transport,
            cancels: None,
        });
    }

    fn send_trying(&mut self, id: TransactionId) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.sent_provisional || txn.state != State::Proceeding {
            return;
        }
        let Some(request) = &txn.request else {
            return;
        };
        let data = Bytes::from(Response::for_request(request, 100, None).to_bytes());
        txn.sent_provisional = true;
        txn.last_response = Some(data.clone());
        self.emit(id, data);
    }

    /// Sends `response` through server transaction `id` and moves its state machine.
    ///
    /// Allowed: 1xx before any final response; 2xx to INVITE while Proceeding or Accepted;
    /// 3xx–6xx while Proceeding / Trying.
    pub fn send_response(
        &mut self,
        id: TransactionId,
        response: Response,
        now: Instant,
    ) -> Result<(), TxError> {
        let status = response.status;
        if !(100..=699).contains(&status) {
            return Err(TxError::BadStatus(status));
        }
        let t = self.config.timers;
        let txn = self.txns.get_mut(&id).ok_or(TxError::NoSuchTransaction)?;
        let reliable = txn.reliable();
        let bad_state = TxError::InvalidState(Some(txn.state));
        match (txn.kind, txn.state) {
            (TransactionKind::ServerInvite, State::Proceeding) if status < 200 => {
                txn.sent_provisional = true;
            }
            (TransactionKind::ServerInvite, State::Proceeding | State::Accepted)
                if (200..300).contains(&status) =>
            {
                if txn.state == State::Proceeding {
                    txn.state = State::Accepted;
                    txn.timers[Timer::Trying.index()] = None;
                    let request = txn.request.take();
                    let ack_key = AckKey {
                        call_id: request
                            .as_ref()
                            .and_then(Request::call_id)
                            .unwrap_or_default()
                            .to_owned(),
                        cseq: request
                            .as_ref()
                            .and_then(Request::cseq)
                            .map_or(0, |c| c.seq),
                        from_tag: request
                            .as_ref()
                            .and_then(Request::from)
                            .and_then(|f| f.tag().map(str::to_owned))
                            .unwrap_or_default(),
                    };
                    txn.ack_key = Some(ack_key.clone());
                    txn.interval = t.t1;
                    self.ack_index.insert(ack_key, id);
                    self.set_timer(id, Timer::L, now, 64 * t.t1);
                    self.set_timer(id, Timer::Retransmit2xx, now, t.t1);
                }
            }
            (TransactionKind::ServerInvite, State::Proceeding) => {
                txn.state = State::Completed;
                txn.request = None;
                txn.timers[Timer::Trying.index()] = None;
                txn.interval = t.t1;
                if !reliable {
                    self.set_timer(id, Timer::G, now, t.t1);
                }
                self.set_timer(id, Timer::H, now, 64 * t.t1);
            }
            (TransactionKind::ServerNonInvite, State::Trying | State::Proceeding)
                if status < 200 =>
            {
                txn.state = State::Proceeding;
            }
            (TransactionKind::ServerNonInvite, State::Trying | State::Proceeding) => {
                txn.state = State::Completed;
                txn.request = None;
            }
            _ => return Err(bad_state),
        }
        let data = Bytes::from(response.to_bytes());
        if let Some(txn) = self.txns.get_mut(&id) {
            txn.last_response = Some(data.clone());
        }
        self.emit(id, data);
        if self.kind(id) == Some(TransactionKind::ServerNonInvite) && status >= 200 {
            let j = if reliable { Duration::ZERO } else { t.j };
            self.linger(id, Timer::J, j, now);
        }
        Ok(())
    }

    fn retransmit(&mut self, id: TransactionId, data: Option<Bytes>) {
        if let Some(d) = data {
            self.stats.retransmitted += 1;
            self.emit(id, d);
        }
    }

    fn fire(&mut self, id: TransactionId, timer: Timer, now: Instant) {
        let t = self.config.timers;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        match (timer, txn.state) {
            (Timer::A, State::Calling) => {
                txn.interval *= 2;
                let (next, data) = (txn.interval, txn.request_bytes.clone());
                self.retransmit(id, Some(data));
                self.set_timer(id, Timer::A, now, next);
            }
            (Timer::E, State::Trying | State::Proceeding) => {
                txn.interval = if txn.state == State::Trying {
                    (txn.interval * 2).min(t.t2)
                } else {
                    t.t2
                };
                let (next, data) = (txn.interval, txn.request_bytes.clone());
                self.retransmit(id, Some(data));
                self.set_timer(id, Timer::E, now, next);
            }
            (Timer::G, State::Completed) => {
                txn.interval = (txn.interval * 2).min(t.t2);
                let (next, data) = (txn.interval, txn.last_response.clone());
                self.retransmit(id, data);
                self.set_timer(id, Timer::G, now, next);
            }
            (Timer::Retransmit2xx, State::Accepted) if !txn.acked => {
                txn.interval = (txn.interval * 2).min(t.t2);
                let (next, data) = (txn.interval, txn.last_response.clone());
                self.retransmit(id, data);
                self.set_timer(id, Timer::Retransmit2xx, now, next);
            }
            (Timer::Trying, State::Proceeding) => self.send_trying(id),
            (Timer::B, State::Calling)
            | (Timer::F, State::Trying | State::Proceeding)
            | (Timer::H, State::Completed) => {
                self.events.push_back(Event::Timeout { transaction: id });
                self.terminate(id);
            }
            (Timer::L, State::Accepted) => {
                if !txn.acked {
                    self.events.push_back(Event::AckTimeout { transaction: id });
                }
                self.terminate(id);
            }
            (Timer::D | Timer::J | Timer::K, State::Completed)
            | (Timer::I, State::Confirmed)
            | (Timer::M, State::Accepted) => {
                self.terminate(id);
            }
            // A timer that no longer applies to the current state.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_table_matches_discriminants() {
        for (i, t) in Timer::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{t:?}");
        }
    }

    #[test]
    fn transport_tokens() {
        assert_eq!(Transport::parse("udp"), Some(Transport::Udp));
        assert_eq!(Transport::parse("WSS"), Some(Transport::Wss));
        assert_eq!(Transport::parse("QUIC"), None);
        assert!(!Transport::Udp.is_reliable() && Transport::Tcp.is_reliable());
        assert_eq!(Transport::Tls.default_port(), 5061);
    }

    #[test]
    fn stamping_follows_rfc3581() {
        let src: SocketAddr = "192.0.2.9:4000".parse().unwrap_or_else(|_| unreachable!());
        let mut v = Via::new(
            "UDP",
            crate::Host::V4([192, 0, 2, 9].into()),
            Some(5060),
            "z9hG4bK1",
        );
        assert!(
            !stamp_via(&mut v, src),
            "same address, no rport: nothing to add"
        );
        v.params.set("rport", None);
        assert!(stamp_via(&mut v, src));
        assert_eq!(
            (v.received(), v.rport()),
            (Some("192.0.2.9"), Some(Some(4000)))
        );
    }
}
