//! The SIP core: one task owning the transaction layer, the location cache, the registrar and
//! the calls. Everything here is synchronous and fast; database writes run on spawned tasks that
//! report back through the internal queue (so a slow disk never stalls signalling).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sip::auth::{
    AuthorizationValue, DigestRequest, DigestServer, DigestServerConfig, VerifyError,
    parse_credentials,
};
use sip::transaction::{Event, Target, TransactionId, TransactionLayer, Transport};
use sip::{CheckConfig, HeaderName, Message, Method, Request, Response, Uri, Via};
use store::{Change, Store};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::PbxConfig;
use crate::call::{Call, CallSummary};
use crate::metrics::Metrics;
use crate::throttle::{Throttle, Verdict};
use crate::transport::{Inbound, Transports};

/// Methods we answer (Allow header).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, NOTIFY, REFER, MESSAGE";
/// Option tags we support.
pub(crate) const SUPPORTED: &str = "path, replaces";

/// Runtime settings read from the database (`settings` table, node-global rows).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub no_answer: Duration,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub keepalive: Duration,
    /// Digest algorithms offered, one challenge each, in order.
    pub digest_algorithms: Vec<sip::auth::Algorithm>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            no_answer: Duration::from_secs(30),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            keepalive: Duration::from_secs(30),
            // MD5 only by default: widely deployed clients (baresip/libre 1.x among them) fail
            // the whole authentication when any offered challenge uses an algorithm they lack.
            digest_algorithms: vec![sip::auth::Algorithm::Md5],
        }
    }
}

pub use engine::settings::keys;

/// An extension as the core needs it.
#[derive(Debug, Clone)]
pub(crate) struct ExtEntry {
    pub id: i64,
    pub number: String,
    pub display_name: String,
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    pub enabled: bool,
    pub max_contacts: usize,
}

/// One registered contact (memory copy of a `registrations` row).
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub tenant_id: i64,
    pub extension_id: i64,
    pub aor: String,
    pub contact_uri: String,
    pub contact: Uri,
    pub expires_at: SystemTime,
    pub q: f64,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: String,
    pub received: SocketAddr,
    pub transport: Transport,
    pub local: SocketAddr,
    pub instance_id: Option<String>,
    pub reg_id: Option<i64>,
    pub behind_nat: bool,
    pub ping_failures: u32,
    pub ping_txn: Option<TransactionId>,
    pub next_ping: Instant,
}

impl Binding {
    pub fn target(&self) -> Target {
        Target {
            destination: self.received,
            transport: self.transport,
            local: Some(self.local),
        }
    }
}

/// Tenants and SIP domains.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tenants {
    pub default_id: i64,
    pub by_domain: HashMap<String, i64>,
    pub realms: HashMap<i64, String>,
}

impl Tenants {
    /// The tenant a SIP domain belongs to. A single-company install accepts every domain.
    pub fn for_domain(&self, domain: &str) -> Option<i64> {
        if let Some(t) = self.by_domain.get(&domain.to_ascii_lowercase()) {
            return Some(*t);
        }
        if self.realms.len() <= 1 {
            Some(self.default_id)
        } else {
            None
        }
    }
}

/// Messages for the core besides received SIP.
pub(crate) enum Internal {
    /// Send a response through a server transaction (after a database write finished).
    Respond(TransactionId, Box<Response>),
    /// Several of those at once (a batch of registrations).
    RespondMany(Vec<(TransactionId, Response)>),
    /// Sending for a transaction failed (e.g. TCP connect).
    SendFailed(TransactionId),
    /// Fresh extension cache.
    Extensions(HashMap<(i64, String), ExtEntry>),
    /// Fresh tenant cache.
    Tenants(Tenants),
    /// Fresh settings.
    Settings(Settings),
    /// A control request from the API or CLI.
    Control(Control),
    /// The database answered a cache miss for an extension; process the parked request again.
    ExtensionFetched {
        key: (i64, String),
        entry: Option<ExtEntry>,
        parked: Box<Parked>,
    },
}

/// Requests from the control plane (web/API) to the core.
pub enum Control {
    /// List calls in progress.
    ListCalls(tokio::sync::oneshot::Sender<Vec<CallSummary>>),
    /// Hang up a call by its id; answers whether it existed.
    Hangup(u64, tokio::sync::oneshot::Sender<bool>),
    /// Stop: end calls and exit the loop.
    Shutdown(tokio::sync::oneshot::Sender<()>),
}

/// What a client transaction belongs to.
#[derive(Debug, Clone)]
pub(crate) enum TxOwner {
    /// A call (B-leg INVITE, forwarded in-dialog request, BYE).
    Call(u64),
    /// A NAT keep-alive OPTIONS to a binding.
    Ping {
        extension_id: i64,
        contact_uri: String,
    },
}

/// Result of authenticating a request.
pub(crate) enum AuthOutcome {
    Ok(ExtEntry),
    Challenge {
        stale: bool,
    },
    Forbidden(&'static str),
    /// The source is banned: say nothing.
    Ignore,
    /// The user is not in the cache yet: the request was parked until the database answers.
    Parked,
}

/// A request waiting for a database lookup before it can be processed.
pub(crate) struct Parked {
    pub txn: TransactionId,
    pub req: Request,
    pub source: SocketAddr,
    pub local: SocketAddr,
    pub transport: Transport,
}

pub(crate) struct Core {
    pub cfg: PbxConfig,
    pub store: Store,
    pub relay: media::Relay,
    pub transports: Arc<Transports>,
    pub metrics: Arc<Metrics>,
    pub layer: TransactionLayer,
    pub throttle: Throttle,
    pub digest: HashMap<String, DigestServer>,
    digest_secret: [u8; 32],
    pub tenants: Tenants,
    pub exts: HashMap<(i64, String), ExtEntry>,
    /// Users looked up in the database and not found (cleared on every extension reload).
    pub absent: std::collections::HashSet<(i64, String)>,
    pub location: HashMap<i64, Vec<Binding>>,
    pub settings: Settings,
    /// Boxed: spare table capacity then costs a pointer per slot, not a call.
    pub calls: HashMap<u64, Box<Call>>,
    pub next_call: u64,
    pub call_by_callid: HashMap<String, u64>,
    pub owners: HashMap<TransactionId, TxOwner>,
    /// REGISTER binding changes waiting to be written (flushed once per loop turn).
    pub location_writes: Vec<crate::registrar::LocationWrite>,
    pub internal: mpsc::UnboundedSender<Internal>,
    pub rng: StdRng,
    check_cfg: CheckConfig,
    last_purge: Instant,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Core {
    pub(crate) fn new(
        cfg: PbxConfig,
        store: Store,
        relay: media::Relay,
        transports: Arc<Transports>,
        metrics: Arc<Metrics>,
        internal: mpsc::UnboundedSender<Internal>,
        digest_secret: [u8; 32],
    ) -> Core {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut seed);
        let layer = TransactionLayer::new(sip::transaction::Config {
            timers: cfg.timers,
            trying_delay: Some(Duration::from_millis(100)),
            branch_seed: u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()),
        });
        Core {
            throttle: Throttle::new(cfg.throttle),
            cfg,
            store,
            relay,
            transports,
            metrics,
            layer,
            digest: HashMap::new(),
            digest_secret,
            tenants: Tenants::default(),
            exts: HashMap::new(),
            absent: std::collections::HashSet::new(),
            location: HashMap::new(),
            settings: Settings::default(),
            calls: HashMap::new(),
            next_call: 1,
            call_by_callid: HashMap::new(),
            owners: HashMap::new(),
            location_writes: Vec::new(),
            internal,
            rng: StdRng::from_seed(seed),
            check_cfg: CheckConfig::default(),
            last_purge: Instant::now(),
            shutdown: None,
        }
    }

    /// The main loop.
    pub(crate) async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        let mut changes = self.store.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self
                .layer
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                Some(msg) = internal.recv() => {
                    self.on_internal(msg, Instant::now());
                }
                Some(m) = inbound.recv() => {
                    let now = Instant::now();
                    self.on_inbound(m, now);
                    // Drain what is already queued before looking at timers again.
                    for _ in 0..256 {
                        match inbound.try_recv() {
                            Ok(m) => self.on_inbound(m, now),
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep_until(deadline) => {
                    self.layer.handle_timeout(Instant::now());
                }
                _ = tick.tick() => {
                    self.housekeeping(Instant::now());
                }
                c = changes.recv() => {
                    match c {
                        Ok(c) => self.on_change(c),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.on_change(Change::All),
                        Err(_) => {}
                    }
                }
            }
            self.pump(Instant::now());
            self.flush_location_writes();
            if let Some(done) = self.shutdown.take() {
                self.end_all_calls("shutdown", Instant::now());
                self.pump(Instant::now());
                // Give final messages a moment to leave.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = done.send(());
                return;
            }
        }
    }

    /// Sends what the transaction layer produced and hands its events to the TU.
    pub(crate) fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.layer.poll_transmit() {
                progressed = true;
                let internal = self.internal.clone();
                let txn = t.transaction;
                let ok =
                    self.transports
                        .send(t.transport, t.local, t.destination, t.data, move || {
                            if let Some(id) = txn {
                                let _ = internal.send(Internal::SendFailed(id));
                            }
                        });
                if !ok && let Some(id) = txn {
                    self.layer.handle_transport_error(id);
                }
            }
            while let Some(ev) = self.layer.poll_event() {
                progressed = true;
                self.on_event(ev, now);
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_internal(&mut self, msg: Internal, now: Instant) {
        match msg {
            Internal::Respond(txn, resp) => self.respond(txn, *resp, now),
            Internal::RespondMany(list) => {
                for (txn, resp) in list {
                    self.respond(txn, resp, now);
                }
            }
            Internal::SendFailed(txn) => self.layer.handle_transport_error(txn),
            Internal::Extensions(e) => {
                debug!(count = e.len(), "extension cache loaded");
                self.exts = e;
                self.absent.clear();
            }
            Internal::ExtensionFetched { key, entry, parked } => {
                match entry {
                    Some(e) => {
                        self.exts.insert(key, e);
                    }
                    None => {
                        // Bounded: a scanner trying random user names must not grow it forever.
                        if self.absent.len() >= 10_000 {
                            self.absent.clear();
                        }
                        self.absent.insert(key);
                    }
                }
                let Parked {
                    txn,
                    req,
                    source,
                    local,
                    transport,
                } = *parked;
                match req.method {
                    Method::Register => self.on_register(txn, req, source, local, transport, now),
                    Method::Invite => self.on_invite(txn, req, source, local, transport, now),
                    _ => {}
                }
            }
            Internal::Tenants(t) => {
                self.tenants = t;
                self.rebuild_digest();
            }
            Internal::Settings(s) => {
                let algorithms_changed = s.digest_algorithms != self.settings.digest_algorithms;
                self.settings = s;
                if algorithms_changed {
                    self.rebuild_digest();
                }
            }
            Internal::Control(c) => match c {
                Control::ListCalls(tx) => {
                    let list = self.calls.values().map(|c| c.summary(now)).collect();
                    let _ = tx.send(list);
                }
                Control::Hangup(id, tx) => {
                    let found = self.calls.contains_key(&id);
                    if found {
                        self.hangup_call(id, "hung up by administrator", now);
                    }
                    let _ = tx.send(found);
                }
                Control::Shutdown(tx) => self.shutdown = Some(tx),
            },
        }
    }

    /// One digest server per tenant realm, offering the configured algorithms. The secret is
    /// shared (and stored in the database), so nonces stay valid across restarts and rebuilds.
    pub(crate) fn rebuild_digest(&mut self) {
        self.digest.clear();
        for realm in self.tenants.realms.values() {
            let mut c = DigestServerConfig::new(realm.clone());
            c.algorithms = self.settings.digest_algorithms.clone();
            self.digest
                .insert(realm.clone(), DigestServer::new(c, &self.digest_secret));
        }
    }

    fn on_change(&mut self, c: Change) {
        match c {
            Change::Extensions => self.reload_extensions(),
            Change::Tenants => self.reload_tenants(),
            Change::Settings => self.reload_settings(),
            Change::All => {
                self.reload_tenants();
                self.reload_extensions();
                self.reload_settings();
            }
            _ => {}
        }
    }

    /// Runs a cache load on its own task and hands the result to the core.
    fn reload<T, F>(&self, what: &'static str, load: F, wrap: fn(T) -> Internal)
    where
        F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let tx = self.internal.clone();
        tokio::spawn(async move {
            match load.await {
                Ok(v) => {
                    let _ = tx.send(wrap(v));
                }
                Err(e) => warn!(error = %e, "loading {what} failed"),
            }
        });
    }

    pub(crate) fn reload_extensions(&self) {
        let store = self.store.clone();
        self.reload(
            "extensions",
            async move { load_extensions(&store).await },
            Internal::Extensions,
        );
    }

    pub(crate) fn reload_tenants(&self) {
        let store = self.store.clone();
        self.reload(
            "tenants",
            async move { load_tenants(&store).await },
            Internal::Tenants,
        );
    }

    pub(crate) fn reload_settings(&self) {
        let store = self.store.clone();
        self.reload(
            "settings",
            async move { Ok(load_settings(&store).await) },
            Internal::Settings,
        );
    }

    fn on_inbound(&mut self, m: Inbound, now: Instant) {
        if self.throttle.is_banned(m.source.ip(), now) {
            self.metrics.inc_throttled();
            return;
        }
        if let Message::Request(r) = &m.message {
            self.metrics.inc_request(r.method.as_str());
        }
        if let Message::Response(r) = &m.message
            && let Some(v) = r.top_via()
            && v.sent_by_is_unusable()
        {
            debug!(peer = %m.source, "response with unusable Via dropped");
            return;
        }
        self.layer
            .handle_message(m.message, m.source, m.local, m.transport, now);
    }

    fn on_event(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::Request {
                transaction,
                request,
                source,
                local,
                transport,
                cancels,
            } => self.on_request(transaction, request, source, local, transport, cancels, now),
            Event::Response {
                transaction,
                response,
                source,
            } => match self.owners.get(&transaction).cloned() {
                Some(TxOwner::Call(id)) => {
                    self.call_response(id, transaction, response, source, now)
                }
                Some(TxOwner::Ping {
                    extension_id,
                    contact_uri,
                }) => {
                    if response.status >= 200 {
                        self.ping_answered(extension_id, &contact_uri);
                    }
                }
                None => {
                    if response.status >= 200 && response.status < 300 {
                        self.late_answer(transaction, &response, source, now);
                    }
                }
            },
            Event::Timeout { transaction } | Event::TransportError { transaction } => {
                match self.owners.get(&transaction).cloned() {
                    Some(TxOwner::Call(id)) => self.call_tx_failed(id, transaction, now),
                    Some(TxOwner::Ping {
                        extension_id,
                        contact_uri,
                    }) => self.ping_failed(extension_id, &contact_uri, now),
                    None => {}
                }
            }
            Event::AckTimeout { transaction } => {
                if let Some(id) = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.a_txn == transaction)
                    .map(|(k, _)| *k)
                {
                    self.hangup_call(id, "no ACK for 200 OK", now);
                }
            }
            Event::Terminated { transaction } => {
                self.owners.remove(&transaction);
            }
            Event::StrayResponse { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        txn: Option<TransactionId>,
        req: Request,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        cancels: Option<TransactionId>,
        now: Instant,
    ) {
        let Some(txn) = txn else {
            // ACK for a 2xx (or for nothing).
            self.call_ack(&req, now);
            return;
        };
        if let Err(rej) = sip::check_request(&req, &self.check_cfg) {
            info!(peer = %source, method = %req.method.as_str(), reason = %rej, "request rejected");
            self.respond(txn, rej.to_response(&req), now);
            return;
        }
        let in_dialog = req.to().and_then(|t| t.tag().map(|_| ())).is_some();
        match req.method {
            Method::Cancel => self.on_cancel(txn, &req, cancels, now),
            Method::Register => self.on_register(txn, req, source, local, transport, now),
            Method::Invite if !in_dialog => self.on_invite(txn, req, source, local, transport, now),
            Method::Options if !in_dialog => {
                let r = self.options_response(&req, local, transport);
                self.respond(txn, r, now);
            }
            _ if in_dialog => self.in_dialog_request(txn, req, source, now),
            Method::Bye
            | Method::Ack
            | Method::Prack
            | Method::Update
            | Method::Info
            | Method::Notify => {
                self.respond(txn, Response::for_request(&req, 481, None), now);
            }
            Method::Other(_) => {
                let r =
                    Response::for_request(&req, 501, None).with_header(HeaderName::Allow, ALLOW);
                self.respond(txn, r, now);
            }
            _ => {
                let r =
                    Response::for_request(&req, 405, None).with_header(HeaderName::Allow, ALLOW);
                self.respond(txn, r, now);
            }
        }
    }

    fn options_response(&self, req: &Request, local: SocketAddr, transport: Transport) -> Response {
        Response::for_request(req, 200, None)
            .with_to_tag(&sip::generate_tag())
            .with_header(HeaderName::Allow, ALLOW)
            .with_header(HeaderName::Accept, "application/sdp")
            .with_header(HeaderName::Supported, SUPPORTED)
            .with_header(
                HeaderName::Contact,
                format!("<{}>", self.contact_uri(None, local, transport)),
            )
    }

    /// Sends a response through a server transaction, counting it.
    pub(crate) fn respond(&mut self, txn: TransactionId, mut resp: Response, now: Instant) {
        if !resp.headers.contains(&HeaderName::Server) {
            resp.headers
                .push(HeaderName::Server, self.cfg.user_agent.as_str());
        }
        let status = resp.status;
        match self.layer.send_response(txn, resp, now) {
            Ok(()) => self.metrics.inc_response(status),
            Err(e) => debug!(%txn, status, error = %e, "response not sent"),
        }
    }

    /// The address we put in Contact/SDP for a leg that reached us on `local`.
    pub(crate) fn advertised_ip(&self, local: SocketAddr) -> IpAddr {
        advertised_ip(self.cfg.advertise, local)
    }

    /// Our Contact URI for a leg on `local`.
    pub(crate) fn contact_uri(
        &self,
        user: Option<&str>,
        local: SocketAddr,
        transport: Transport,
    ) -> String {
        contact_uri(self.cfg.advertise, user, local, transport)
    }

    /// A Via for a request we originate from `local`.
    pub(crate) fn our_via(&mut self, local: SocketAddr, transport: Transport) -> Via {
        let branch = self.layer.new_branch();
        let host = sip::Host::from(self.advertised_ip(local));
        let mut v = Via::new(transport.as_str(), host, Some(local.port()), &branch);
        v.params.set("rport", None);
        v
    }

    fn on_cancel(
        &mut self,
        txn: TransactionId,
        req: &Request,
        cancels: Option<TransactionId>,
        now: Instant,
    ) {
        match cancels {
            Some(invite) => {
                self.respond(txn, Response::for_request(req, 200, None), now);
                if let Some(id) = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.a_txn == invite)
                    .map(|(k, _)| *k)
                {
                    self.caller_cancelled(id, now);
                }
            }
            None => self.respond(txn, Response::for_request(req, 481, None), now),
        }
    }

    // ------------------------------------------------------------------------------------
    // Authentication

    /// Checks digest credentials in `header` (Authorization or Proxy-Authorization) for the
    /// extension `user` of `tenant`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn authenticate(
        &mut self,
        txn: TransactionId,
        req: &Request,
        header: &HeaderName,
        tenant: i64,
        user: &str,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> AuthOutcome {
        if self.throttle.is_banned(source.ip(), now) {
            return AuthOutcome::Ignore;
        }
        let Some(realm) = self.tenants.realms.get(&tenant).cloned() else {
            return AuthOutcome::Forbidden("unknown tenant");
        };
        let creds = req
            .headers
            .get_all(header)
            .find_map(|v| match parse_credentials(v.as_str()) {
                Ok(AuthorizationValue::Digest(c)) if c.realm == realm => Some(c),
                _ => None,
            });
        let Some(creds) = creds else {
            return AuthOutcome::Challenge { stale: false };
        };
        let key = (tenant, creds.username.clone());
        let ext = self.exts.get(&key).cloned();
        if ext.is_none() && !self.absent.contains(&key) {
            // Added moments ago (the reload after the change notice has not landed yet), or
            // unknown: ask the database once, then process the request again.
            let parked = Parked {
                txn,
                req: req.clone(),
                source,
                local,
                transport,
            };
            self.fetch_extension(key, parked);
            return AuthOutcome::Parked;
        }
        let mut uri = req.uri.to_string();
        if creds.uri != uri && same_server(&creds.uri, &req.uri) {
            // Interop: some clients (sipp among them) put the server's address rather than the
            // full Request-URI into the digest `uri`. The hash still covers what they sent and
            // nonce counts still stop replays, so accept it when it names the same server.
            uri = creds.uri.clone();
        }
        let dr = DigestRequest {
            method: req.method.as_str(),
            uri: &uri,
            body: &req.body,
        };
        let result = match (&ext, self.digest.get_mut(&realm)) {
            (Some(e), Some(server)) => {
                let ha1 = match creds.algorithm.base() {
                    sip::auth::Algorithm::Sha256 => e.ha1_sha256.as_deref(),
                    _ => e.ha1_md5.as_deref(),
                };
                match ha1 {
                    Some(h) => server.verify(&creds, &dr, h, SystemTime::now()),
                    None => Err(VerifyError::WrongResponse),
                }
            }
            _ => Err(VerifyError::WrongResponse),
        };
        match result {
            Ok(()) => {
                let Some(e) = ext else {
                    return AuthOutcome::Forbidden("unknown user");
                };
                if creds.username != user {
                    return self.auth_failed(
                        source,
                        &creds.username,
                        "credentials are for another user",
                        now,
                    );
                }
                if !e.enabled {
                    return self.auth_failed(source, user, "extension disabled", now);
                }
                self.throttle.success(source.ip(), now);
                AuthOutcome::Ok(e)
            }
            Err(e) if e.is_stale() => AuthOutcome::Challenge { stale: true },
            Err(VerifyError::Replay) => {
                // The response was right, only its nonce count was used before: a
                // retransmission that outlived its transaction (Timer J), or a captured
                // request replayed. Either way a fresh nonce is the answer; it is not a
                // password guess, so the brute-force throttle does not count it.
                info!(peer = %source, user = %creds.username, "nonce count replayed: challenged again");
                AuthOutcome::Challenge { stale: true }
            }
            Err(VerifyError::BadNonce) | Err(VerifyError::OpaqueMismatch) => {
                // A nonce from before our restart: challenge again rather than refuse.
                AuthOutcome::Challenge { stale: true }
            }
            Err(e) => {
                let reason = match e {
                    VerifyError::UriMismatch => "digest uri does not match",
                    _ => "wrong password or unknown user",
                };
                self.auth_failed(source, &creds.username, reason, now)
            }
        }
    }

    pub(crate) fn fetch_extension(&self, key: (i64, String), parked: Parked) {
        let store = self.store.clone();
        let tx = self.internal.clone();
        tokio::spawn(async move {
            let entry = match fetch_extension(&store, key.0, &key.1).await {
                Ok(e) => e,
                Err(e) => {
                    warn!(error = %e, "extension lookup failed");
                    None
                }
            };
            let _ = tx.send(Internal::ExtensionFetched {
                key,
                entry,
                parked: Box::new(parked),
            });
        });
    }

    fn auth_failed(
        &mut self,
        source: SocketAddr,
        user: &str,
        reason: &'static str,
        now: Instant,
    ) -> AuthOutcome {
        self.metrics.inc_auth_failure();
        match self.throttle.failure(source.ip(), now) {
            Verdict::Banned => {
                warn!(peer = %source, %user, reason, "authentication failed: source banned for {:?}", self.cfg.throttle.ban);
            }
            Verdict::Counted(n) => {
                warn!(peer = %source, %user, reason, failures = n, "authentication failed")
            }
        }
        AuthOutcome::Forbidden(reason)
    }

    /// A 401/407 with one challenge per algorithm.
    pub(crate) fn challenge_response(
        &mut self,
        req: &Request,
        tenant: i64,
        stale: bool,
        proxy: bool,
    ) -> Response {
        let (status, header) = if proxy {
            (407, HeaderName::ProxyAuthenticate)
        } else {
            (401, HeaderName::WwwAuthenticate)
        };
        let mut resp = Response::for_request(req, status, None).with_to_tag(&sip::generate_tag());
        let realm = self
            .tenants
            .realms
            .get(&tenant)
            .cloned()
            .unwrap_or_default();
        if let Some(server) = self.digest.get(&realm) {
            for c in server.challenges(SystemTime::now(), stale, &mut self.rng) {
                resp.headers.push(header.clone(), c.to_string());
            }
        }
        resp
    }

    // ------------------------------------------------------------------------------------
    // Housekeeping

    fn housekeeping(&mut self, now: Instant) {
        let wall = SystemTime::now();
        // Expire bindings in memory; the database is purged below on a slower beat.
        let mut expired = 0;
        let mut live = 0;
        for list in self.location.values_mut() {
            let before = list.len();
            list.retain(|b| b.expires_at > wall);
            expired += before - list.len();
            live += list.len();
        }
        if expired > 0 {
            self.location.retain(|_, l| !l.is_empty());
        }
        // The gauge is refreshed here, four times a second, not on every REGISTER (counting is
        // a walk over every binding).
        self.metrics
            .registrations
            .store(live as i64, std::sync::atomic::Ordering::Relaxed);
        self.metrics.transactions.store(
            self.layer.len() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if now.duration_since(self.last_purge) > Duration::from_secs(30) {
            self.last_purge = now;
            self.throttle.sweep(now);
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.purge_expired_bindings(chrono::Utc::now()).await {
                    warn!(error = %e, "purging expired registrations failed");
                }
            });
        }
        self.send_keepalives(now);
        self.check_calls(now);
    }

    pub(crate) fn update_registration_gauge(&self) {
        let n: usize = self.location.values().map(Vec::len).sum();
        self.metrics
            .registrations
            .store(n as i64, std::sync::atomic::Ordering::Relaxed);
    }

    fn send_keepalives(&mut self, now: Instant) {
        if self.settings.keepalive.is_zero() {
            return;
        }
        let mut due: Vec<(i64, usize)> = Vec::new();
        for (ext, list) in &self.location {
            for (i, b) in list.iter().enumerate() {
                if b.behind_nat
                    && b.transport == Transport::Udp
                    && b.ping_txn.is_none()
                    && b.next_ping <= now
                {
                    due.push((*ext, i));
                }
            }
        }
        for (ext, i) in due {
            let Some(b) = self.location.get(&ext).and_then(|l| l.get(i)).cloned() else {
                continue;
            };
            let via = self.our_via(b.local, b.transport);
            let mut req = Request::new(Method::Options, b.contact.clone());
            req.headers.push(HeaderName::Via, via.to_string());
            req.headers.push(HeaderName::MaxForwards, "70");
            let ours = self.contact_uri(Some("denwa"), b.local, b.transport);
            req.headers.push(
                HeaderName::From,
                format!("<{ours}>;tag={}", sip::generate_tag()),
            );
            req.headers
                .push(HeaderName::To, format!("<{}>", b.contact_uri));
            req.headers
                .push(HeaderName::CallId, sip::generate_call_id(None));
            req.headers.push(HeaderName::CSeq, "1 OPTIONS");
            req.headers.push(HeaderName::ContentLength, "0");
            let interval = self.settings.keepalive;
            match self.layer.send_request(req, b.target(), now) {
                Ok(t) => {
                    self.owners.insert(
                        t,
                        TxOwner::Ping {
                            extension_id: ext,
                            contact_uri: b.contact_uri.clone(),
                        },
                    );
                    if let Some(x) = self.location.get_mut(&ext).and_then(|l| l.get_mut(i)) {
                        x.ping_txn = Some(t);
                        x.next_ping = now + interval;
                    }
                }
                Err(e) => debug!(error = %e, "keep-alive not sent"),
            }
        }
    }

    fn ping_answered(&mut self, ext: i64, contact: &str) {
        let mut cleared = None;
        if let Some(b) = self
            .location
            .get_mut(&ext)
            .and_then(|l| l.iter_mut().find(|b| b.contact_uri == contact))
        {
            b.ping_txn = None;
            if b.ping_failures > 0 {
                b.ping_failures = 0;
                cleared = Some(b.clone());
            }
        }
        if let Some(b) = cleared {
            self.write_flags(&b, 0);
        }
    }

    fn ping_failed(&mut self, ext: i64, contact: &str, _now: Instant) {
        let mut drop_it = false;
        let mut flag = None;
        if let Some(b) = self
            .location
            .get_mut(&ext)
            .and_then(|l| l.iter_mut().find(|b| b.contact_uri == contact))
        {
            b.ping_txn = None;
            b.ping_failures += 1;
            info!(peer = %b.received, aor = %b.aor, failures = b.ping_failures, "keep-alive unanswered: contact marked unreachable");
            if b.ping_failures >= 3 {
                drop_it = true;
            } else {
                flag = Some(b.clone());
            }
        }
        if let Some(b) = flag {
            self.write_flags(&b, store::Registration::FLAG_UNREACHABLE);
        }
        if drop_it {
            if let Some(list) = self.location.get_mut(&ext) {
                list.retain(|b| b.contact_uri != contact);
            }
            self.location.retain(|_, l| !l.is_empty());
            let store = self.store.clone();
            let contact = contact.to_string();
            info!(aor_extension = ext, %contact, "unreachable contact removed");
            tokio::spawn(async move {
                if let Err(e) = store.delete_binding(ext, &contact).await {
                    warn!(error = %e, "removing unreachable registration failed");
                }
            });
        }
    }

    fn write_flags(&self, b: &Binding, flags: i64) {
        let up = self.binding_row(b, flags);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.upsert_binding(up).await {
                warn!(error = %e, "updating registration flags failed");
            }
        });
    }

    pub(crate) fn binding_row(&self, b: &Binding, flags: i64) -> store::BindingUpsert {
        let expires: chrono::DateTime<chrono::Utc> = b.expires_at.into();
        store::BindingUpsert {
            tenant_id: b.tenant_id,
            extension_id: b.extension_id,
            aor: b.aor.clone(),
            contact_uri: b.contact_uri.clone(),
            expires_at: expires,
            q: b.q,
            call_id: b.call_id.clone(),
            cseq: i64::from(b.cseq),
            user_agent: b.user_agent.clone(),
            received_addr: b.received.to_string(),
            transport: store_transport(b.transport),
            local_addr: b.local.to_string(),
            instance_id: b.instance_id.clone(),
            reg_id: b.reg_id,
            node: self.cfg.node_name.clone(),
            flags,
            now: chrono::Utc::now(),
        }
    }

    /// Loads unexpired bindings from the database into memory (at start).
    pub(crate) async fn load_location(&mut self) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        let mut offset = 0;
        let locals = self.transports.local_addrs();
        loop {
            let page = self
                .store
                .list_bindings(store::Page {
                    limit: 5000,
                    offset,
                })
                .await?;
            let n = page.len();
            for r in page {
                if r.expires_at <= now {
                    continue;
                }
                let (Ok(contact), Ok(received)) = (
                    r.contact_uri.parse::<Uri>(),
                    r.received_addr.parse::<SocketAddr>(),
                ) else {
                    warn!(contact = %r.contact_uri, "stored registration unreadable: skipped");
                    continue;
                };
                let transport = Transport::parse(r.transport.as_str()).unwrap_or(Transport::Udp);
                let local = r
                    .local_addr
                    .parse::<SocketAddr>()
                    .ok()
                    .filter(|l| locals.contains(l))
                    .or_else(|| {
                        locals
                            .iter()
                            .find(|l| l.is_ipv4() == received.is_ipv4())
                            .copied()
                    })
                    .unwrap_or(received);
                let behind_nat = contact_is_behind_nat(&contact, received);
                let b = Binding {
                    tenant_id: r.tenant_id,
                    extension_id: r.extension_id,
                    aor: r.aor,
                    contact_uri: r.contact_uri,
                    contact,
                    expires_at: SystemTime::from(r.expires_at),
                    q: r.q,
                    call_id: r.call_id,
                    cseq: u32::try_from(r.cseq).unwrap_or(0),
                    user_agent: r.user_agent,
                    received,
                    transport,
                    local,
                    instance_id: r.instance_id,
                    reg_id: r.reg_id,
                    behind_nat,
                    ping_failures: 0,
                    ping_txn: None,
                    next_ping: Instant::now() + Duration::from_secs(5),
                };
                self.location.entry(b.extension_id).or_default().push(b);
            }
            if n < 5000 {
                break;
            }
            offset += 5000;
        }
        self.update_registration_gauge();
        Ok(())
    }

    fn end_all_calls(&mut self, reason: &str, now: Instant) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            self.hangup_call(id, reason, now);
        }
    }
}

/// True when the digest `uri` names the same host and port as the Request-URI.
fn same_server(digest_uri: &str, request_uri: &Uri) -> bool {
    match (digest_uri.parse::<Uri>(), request_uri.as_sip()) {
        (Ok(Uri::Sip(d)), Some(r)) => {
            d.host.eq_ignore_case(&r.host) && d.port == r.port && d.scheme == r.scheme
        }
        _ => false,
    }
}

/// The address we put in Contact/SDP for a leg that reached us on `local`: the advertised
/// (public) address, except towards loopback peers.
pub(crate) fn advertised_ip(advertise: Option<IpAddr>, local: SocketAddr) -> IpAddr {
    match advertise {
        Some(a) if !local.ip().is_loopback() => a,
        _ => local.ip(),
    }
}

/// Our Contact URI for a leg on `local`.
pub(crate) fn contact_uri(
    advertise: Option<IpAddr>,
    user: Option<&str>,
    local: SocketAddr,
    transport: Transport,
) -> String {
    let host = match advertised_ip(advertise, local) {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    match transport {
        Transport::Udp => format!("sip:{user}{host}:{}", local.port()),
        t => format!(
            "sip:{user}{host}:{};transport={}",
            local.port(),
            t.as_str().to_ascii_lowercase()
        ),
    }
}

/// True when the phone's Contact address differs from where its packets come from (NAT).
pub(crate) fn contact_is_behind_nat(contact: &Uri, received: SocketAddr) -> bool {
    match contact.as_sip() {
        Some(u) => {
            let port = u.port.unwrap_or(5060);
            match u.host.ip() {
                Some(ip) => ip != received.ip() || port != received.port(),
                None => true,
            }
        }
        None => false,
    }
}

pub(crate) fn store_transport(t: Transport) -> store::Transport {
    match t {
        Transport::Tcp => store::Transport::Tcp,
        Transport::Tls => store::Transport::Tls,
        Transport::Ws | Transport::Wss => store::Transport::Ws,
        _ => store::Transport::Udp,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn load_extensions(
    store: &Store,
) -> anyhow::Result<HashMap<(i64, String), ExtEntry>> {
    const PAGE: i64 = 1000;
    let mut out = HashMap::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = store
            .extensions_with_auth_after(after.as_ref().map(|(t, n)| (*t, n.as_str())), PAGE)
            .await?;
        let full = page.len() as i64 == PAGE;
        for (e, auth) in page {
            after = Some((e.tenant_id, e.number.clone()));
            out.insert(
                (e.tenant_id, e.number.clone()),
                ExtEntry {
                    id: e.id,
                    number: e.number,
                    display_name: e.display_name,
                    ha1_md5: auth.ha1_md5,
                    ha1_sha256: auth.ha1_sha256,
                    enabled: e.enabled,
                    max_contacts: usize::try_from(e.max_contacts).unwrap_or(1).max(1),
                },
            );
        }
        if !full {
            return Ok(out);
        }
    }
}

async fn fetch_extension(
    store: &Store,
    tenant: i64,
    number: &str,
) -> anyhow::Result<Option<ExtEntry>> {
    let Some(e) = store.extension(tenant, number).await? else {
        return Ok(None);
    };
    let auth = store.extension_auth(tenant, number).await?;
    let (ha1_md5, ha1_sha256) = auth
        .map(|a| (a.ha1_md5, a.ha1_sha256))
        .unwrap_or((None, None));
    Ok(Some(ExtEntry {
        id: e.id,
        number: e.number,
        display_name: e.display_name,
        ha1_md5,
        ha1_sha256,
        enabled: e.enabled,
        max_contacts: usize::try_from(e.max_contacts).unwrap_or(1).max(1),
    }))
}

/// The digest nonce secret from the database, created on first start.
pub(crate) async fn digest_secret(store: &Store) -> anyhow::Result<[u8; 32]> {
    if let Some(hex) = store.setting::<String>(None, keys::DIGEST_SECRET).await?
        && let Ok(bytes) = hex::decode(hex.trim())
        && let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(secret);
    }
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    store
        .set_setting(None, keys::DIGEST_SECRET, &hex::encode(secret))
        .await?;
    Ok(secret)
}

pub(crate) async fn load_tenants(store: &Store) -> anyhow::Result<Tenants> {
    let default = store.default_tenant().await?;
    let mut t = Tenants {
        default_id: default.id,
        ..Default::default()
    };
    for tenant in store.list_tenants().await? {
        for d in store.domains(tenant.id).await? {
            t.by_domain.insert(d.to_ascii_lowercase(), tenant.id);
        }
        t.realms.insert(tenant.id, tenant.realm);
    }
    Ok(t)
}

pub(crate) async fn load_settings(store: &Store) -> Settings {
    let d = Settings::default();
    async fn get(store: &Store, key: &str, default: u64) -> u64 {
        match store.setting::<u64>(None, key).await {
            Ok(Some(v)) => v,
            Ok(None) => default,
            Err(e) => {
                warn!(key, error = %e, "setting unreadable: using the default");
                default
            }
        }
    }
    let secs = |v: u64| Duration::from_secs(v);
    Settings {
        no_answer: secs(
            get(store, keys::NO_ANSWER, d.no_answer.as_secs())
                .await
                .max(1),
        ),
        min_expires: u32::try_from(get(store, keys::MIN_EXPIRES, u64::from(d.min_expires)).await)
            .unwrap_or(d.min_expires),
        max_expires: u32::try_from(get(store, keys::MAX_EXPIRES, u64::from(d.max_expires)).await)
            .unwrap_or(d.max_expires),
        default_expires: u32::try_from(
            get(store, keys::DEFAULT_EXPIRES, u64::from(d.default_expires)).await,
        )
        .unwrap_or(d.default_expires),
        keepalive: secs(get(store, keys::KEEPALIVE, d.keepalive.as_secs()).await),
        digest_algorithms: match store.setting::<String>(None, keys::DIGEST_ALGORITHMS).await {
            Ok(Some(v)) => {
                let list: Vec<_> = v
                    .split(',')
                    .filter_map(|a| sip::auth::Algorithm::from_token(a.trim()))
                    .filter(|a| !a.is_sess())
                    .collect();
                if list.is_empty() {
                    warn!(value = %v, "no usable digest algorithm in the setting: using MD5");
                    d.digest_algorithms
                } else {
                    list
                }
            }
            _ => d.digest_algorithms,
        },
    }
}

/// The host of a SIP URI, lowercase.
pub(crate) fn uri_domain(uri: &Uri) -> Option<String> {
    uri.as_sip()
        .map(|u| u.host.to_string().to_ascii_lowercase())
}
