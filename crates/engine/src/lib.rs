//! `engine`: Denwa's call control, sans-IO.
//!
//! What it is: the policy of the PBX — who may register, where a dialled number goes, how a call's
//! legs are set up, joined and torn down, what is written to the call record. It takes inputs
//! (SIP messages, database answers, media events, timers, each with the current time) through
//! [`Engine::handle_input`] and produces outputs (bytes to send, database operations, media
//! commands) through [`Engine::poll_output`], and its next deadline through
//! [`Engine::poll_timeout`].
//!
//! What it is not: it owns no socket, no task, no clock and no random source (the seed comes in
//! with [`EngineConfig`]); `pbx` is the tokio driver that runs it, `sip` the protocol stack under
//! it, `store` the database the driver runs its [`DbOp`]s on.
//!
//! A request travels: transport (driver) → transaction (`sip`) → [`auth`] → [`registrar`] |
//! [`dialplan`] → [`b2bua`] → media ([`MediaCommand`]) → [`acc`] (call records).

pub mod acc;
mod anchor;
pub mod auth;
pub mod b2bua;
pub mod blf;
mod blf_calls;
mod conf;
pub mod config;
pub mod control;
pub mod counters;
pub mod db;
pub mod dialplan;
pub mod dispatcher;
pub use anchor::dtmf_bridge;
mod feature_call;
pub mod features;
pub mod hunt;
pub mod live_calls;
pub mod media;
mod moh;
pub mod moh_class;
pub mod mwi;
pub mod nathelper;
mod notify_wire;
pub mod outside;
pub mod page;
pub mod park;
pub mod peerlog;
mod pickup;
pub mod pike;
pub mod policy;
pub mod prompt_lang;
mod prompt_rec;
mod quiesce;
pub mod rec_ctl;
pub mod recording;
pub mod registrar;
pub mod sdp;
pub mod sdp_local;
pub mod settings;
pub mod subs;
pub mod subs_list;
pub mod tenant_settings;
pub mod timecond;
pub mod tones;
pub mod transfer;
pub mod uac;
pub mod usrloc;
pub mod vm;
pub mod vm_disk;
pub mod vm_menu;
mod xfer_app;
mod xfer_group;
pub mod xfer_party;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sip::transaction::{Event, Target, TransactionId, TransactionLayer, Transmit, Transport};
use sip::{CheckConfig, HeaderName, Message, Method, Request, Response, Via};
use tracing::{debug, info, warn};

pub use crate::config::{EngineConfig, ExtEntry, Settings, Snapshot, Tenants};
pub use crate::control::{CallState, CallSummary};
pub use crate::counters::Counters;
pub use crate::db::{DbAnswer, DbOp, OpId};
pub use crate::dispatcher::{OutboundHistory, TrunkStatus};
pub use crate::media::{MediaCommand, MediaEvent, SessionId, Side};

use crate::auth::Auth;
use crate::b2bua::B2bua;
use crate::usrloc::Usrloc;

/// Methods we handle (the Allow header says only what is true).
pub const ALLOW: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, SUBSCRIBE, REFER";

/// The current time, both clocks: `mono` for timers, `wall` for what is stored or shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Wall-clock time.
    pub wall: SystemTime,
}

impl Now {
    /// Both clocks moved on by `d` (for fake clocks in tests).
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// A SIP message a transport received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The parsed message.
    pub message: Message,
    /// Peer address.
    pub source: SocketAddr,
    /// Local address it arrived on.
    pub local: SocketAddr,
    /// Transport.
    pub transport: Transport,
}

/// Fresh configuration from the database.
#[derive(Debug, Clone)]
pub enum ConfigUpdate {
    /// Tenants and domains.
    Tenants(Tenants),
    /// Every extension.
    Extensions(HashMap<(i64, String), ExtEntry>),
    /// Runtime settings.
    Settings(Settings),
    /// Trunks, routes, DIDs, tenant outbound policies.
    Outside(config::Outside),
    /// IVR menus and application numbers.
    Apps(config::Apps),
    /// Feature codes, time conditions and pickup groups.
    Codes(features::CodesConfig),
}

/// Everything the engine reacts to.
#[derive(Debug)]
pub enum Input {
    /// A SIP message from the network.
    Receive(Received),
    /// The answer to a database operation.
    Db(OpId, DbAnswer),
    /// News from the media relay.
    Media(MediaEvent),
    /// The deadline from [`Engine::poll_timeout`] passed.
    Timeout,
    /// Sending for a transaction failed (TCP connect refused, no route).
    SendFailed(TransactionId),
    /// Configuration changed in the database.
    Config(ConfigUpdate),
}

/// Everything the engine asks the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send bytes.
    Transmit(Transmit),
    /// Run a database operation and answer with [`Input::Db`].
    Db(OpId, DbOp),
    /// Act on the media relay (answers come as [`Input::Media`]).
    Media(MediaCommand),
}

/// A request waiting for a database lookup before it can be processed.
#[derive(Debug)]
pub(crate) struct Parked {
    pub txn: TransactionId,
    pub req: Request,
    pub source: SocketAddr,
    pub local: SocketAddr,
    pub transport: Transport,
}

/// What an outstanding database operation is for.
enum Pending {
    /// Location changes; `reply` is the REGISTER to answer once they are durable.
    Location(Option<registrar::Reply>),
    /// An extension lookup (the parked requests wait in `Engine::lookups`).
    Lookup((i64, String)),
    /// A call record; `reply` goes out once it is durable.
    Cdr(Option<(TransactionId, Response)>),
    /// Nothing waits for it.
    Background(&'static str),
    /// Voicemail work for a call (0: nobody waits).
    Vm(u64),
    /// A park row of (tenant, slot): written (true) or deleted (false).
    Park(i64, u32, bool),
}

/// True when the response's To header has no tag. Every response passes here and most carry a
/// tag already, so the raw value is searched first and parsed only when that is not conclusive
/// (a tag written with spaces around `=`).
fn to_lacks_tag(resp: &Response) -> bool {
    match resp.headers.get(&HeaderName::To) {
        Some(v) if contains_ignore_case(v.as_str(), "tag=") => false,
        Some(_) => resp.to().is_some_and(|t| t.tag().is_none()),
        None => false,
    }
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Requests parked per key while its lookup is in flight (more are refused).
const PARKED_PER_KEY: usize = 8;

/// Housekeeping period (expiry, keep-alives, no-answer timeouts).
const TICK: Duration = Duration::from_millis(250);
/// Database purge of expired registrations.
const PURGE_EVERY: Duration = Duration::from_secs(30);

/// The call-control engine of one node.
pub struct Engine {
    cfg: EngineConfig,
    layer: TransactionLayer,
    snap: Snapshot,
    auth: Auth,
    usrloc: Usrloc,
    b2bua: B2bua,
    dispatcher: dispatcher::Dispatcher,
    acc: acc::Acc,
    rng: StdRng,
    out: VecDeque<Output>,
    next_op: u64,
    pending: HashMap<OpId, Pending>,
    lookups: HashMap<(i64, String), Vec<Parked>>,
    owners: HashMap<TransactionId, Owner>,
    counters: Counters,
    /// Rejected requests, logged per source with summaries (a scanner must not fill the disk).
    rejected_log: peerlog::PeerLog<std::net::IpAddr>,
    check_cfg: CheckConfig,
    next_tick: Option<Instant>,
    last_purge: Option<Instant>,
    /// (second, formatted Date header) of the last REGISTER answered.
    date_cache: (u64, String),
    /// The trunk clients are built at the first input (they need the time).
    outside_pending: bool,
    /// Voice-application deadlines: (when, call). Stale entries are skipped when they fire.
    app_timers: std::collections::BTreeSet<(Instant, u64)>,
    /// Conference rooms in use: bridge -> (call, caller's endpoint) of each member.
    rooms: HashMap<u64, Vec<(u64, media::EndpointId)>>,
    /// Voicemail recordings waiting for their end.
    vm: vm::VmState,
    prompt_rec_state: prompt_rec::PromptRecState,
    /// Event subscriptions (message-summary, dialog, presence).
    subs: subs::Subs,
    /// What the last NOTIFY of each subscription said ([`subs_list`]).
    notified: subs_list::Notified,
    /// Parked calls.
    park: park::ParkState,
    /// Pages in progress ([`page`]).
    pages: page::Pages,
    /// Calls in progress stored for the standby ([`live_calls`]).
    live: live_calls::LiveState,
    /// How the digit being handled arrived ([`dtmf_bridge`]).
    dtmf_received: dtmf_bridge::Received,
}

/// What a client transaction belongs to.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A call.
    Call(u64),
    /// A NAT keep-alive to a binding.
    Ping {
        extension_id: i64,
        contact_uri: String,
    },
    /// A REGISTER to a trunk's provider.
    TrunkReg(i64),
    /// An OPTIONS health check of a trunk.
    TrunkPing(i64),
    /// The last REGISTER (expires 0) of a trunk that went away.
    TrunkGone,
    /// An unsolicited message-waiting NOTIFY (its answer changes nothing).
    Mwi,
    /// A NOTIFY in a subscription (Call-ID, our tag): a 481 or no answer ends it.
    SubNotify(String, String),
    /// A member's INVITE (or BYE) in a page: (pager's call, member index).
    Page(u64, usize),
}

impl Engine {
    /// An engine with the node configuration and the database configuration loaded at start.
    pub fn new(cfg: EngineConfig, snap: Snapshot) -> Engine {
        let mut rng = StdRng::from_seed(cfg.seed);
        let layer = TransactionLayer::new(sip::transaction::Config {
            timers: cfg.timers,
            trying_delay: Some(Duration::from_millis(100)),
            branch_seed: rand::RngCore::next_u64(&mut rng),
        });
        let mut auth = Auth::new(cfg.digest_secret, cfg.throttle);
        auth.rebuild(&snap);
        Engine {
            layer,
            snap,
            auth,
            usrloc: Usrloc::default(),
            b2bua: B2bua::default(),
            dispatcher: dispatcher::Dispatcher::default(),
            acc: acc::Acc::default(),
            rng,
            out: VecDeque::new(),
            next_op: 1,
            pending: HashMap::new(),
            lookups: HashMap::new(),
            owners: HashMap::new(),
            counters: Counters::default(),
            rejected_log: peerlog::PeerLog::new(peerlog::PeerLogConfig::default()),
            check_cfg: CheckConfig::default(),
            next_tick: None,
            last_purge: None,
            date_cache: (0, String::new()),
            outside_pending: true,
            app_timers: std::collections::BTreeSet::new(),
            rooms: HashMap::new(),
            vm: vm::VmState::default(),
            prompt_rec_state: prompt_rec::PromptRecState::default(),
            subs: subs::Subs::default(),
            notified: subs_list::Notified::default(),
            park: park::ParkState::default(),
            pages: page::Pages::default(),
            live: live_calls::LiveState::default(),
            dtmf_received: dtmf_bridge::Received::default(),
            cfg,
        }
    }

    /// Loads a stored registration (at start, before any input).
    pub fn load_binding(&mut self, mut b: usrloc::Binding, now: Now) {
        b.behind_nat = nathelper::contact_is_behind_nat(&b.contact, b.received);
        if !self.cfg.locals.contains(&b.local)
            && let Some(l) = self
                .cfg
                .locals
                .iter()
                .find(|l| l.is_ipv4() == b.received.is_ipv4())
        {
            // Stored by a node (or a start) with other addresses: use ours on that family.
            b.local = *l;
        }
        b.ping.next = now.mono + Duration::from_secs(5);
        if b.expires_at > now.wall {
            self.usrloc.load(b);
        }
    }

    /// The database configuration in use.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// The location table.
    pub fn usrloc(&self) -> &Usrloc {
        &self.usrloc
    }

    /// Counters since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.b2bua.len()
    }

    /// SIP transactions alive (including those lingering to absorb retransmissions).
    pub fn transactions(&self) -> usize {
        self.layer.len()
    }

    /// Calls in progress, as the panel shows them.
    pub fn calls(&self, now: Now) -> Vec<CallSummary> {
        let mut calls = self.b2bua.summaries(now.mono);
        self.fill_parties(&mut calls);
        calls
    }

    /// Hangs up a call (administrator); false when there is no such call.
    pub fn hangup(&mut self, id: u64, now: Now) -> bool {
        let found = self.b2bua.contains(id);
        if found {
            self.hangup_call(id, "hung up by administrator", now);
            self.pump(now);
            self.blf_flush(now, true);
        }
        found
    }

    /// Runs what a control-plane request started (no input to wait for).
    pub(crate) fn pump_public(&mut self, now: Now) {
        self.pump(now);
        self.blf_flush(now, true);
    }

    /// Ends every call (shutdown): BYE or CANCEL, records written. Parked calls are left as
    /// they are: their rows bring them back at the next start ([`Engine::load_parked`]).
    pub fn end_all_calls(&mut self, now: Now) {
        for id in self.b2bua.ids() {
            if self.park_survives_shutdown(id) {
                continue;
            }
            self.hangup_call(id, "shutdown", now);
        }
        self.pump(now);
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, input: Input, now: Now) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now.mono + TICK);
            self.last_purge = Some(now.mono);
        }
        if self.outside_pending {
            self.outside_pending = false;
            self.outside_changed(now);
        }
        let calls_moved = blf::may_move_calls(&input);
        match input {
            Input::Receive(r) => self.on_receive(r, now),
            Input::Db(id, answer) => self.on_db(id, answer, now),
            Input::Media(ev) => self.on_media(ev, now),
            Input::Timeout => {
                self.layer.handle_timeout(now.mono);
                self.app_timeouts(now);
                if self.next_tick.is_some_and(|t| now.mono >= t) {
                    self.next_tick = Some(now.mono + TICK);
                    self.housekeeping(now);
                }
            }
            Input::SendFailed(txn) => self.layer.handle_transport_error(txn),
            Input::Config(c) => self.on_config(c, now),
        }
        self.pump(now);
        self.blf_flush(now, calls_moved);
        self.pump(now);
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        self.layer.poll_transmit().map(Output::Transmit)
    }

    /// When to feed [`Input::Timeout`] next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let apps = self.app_timers.first().map(|(t, _)| *t);
        let blf = self.subs.blf.next_due();
        [self.layer.poll_timeout(), self.next_tick, apps, blf]
            .into_iter()
            .flatten()
            .min()
    }

    // ------------------------------------------------------------------------------------
    // Plumbing

    /// Hands the transaction layer's events to their owners until nothing moves.
    fn pump(&mut self, now: Now) {
        while let Some(ev) = self.layer.poll_event() {
            self.on_event(ev, now);
        }
    }

    fn db(&mut self, op: DbOp, pending: Pending) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        self.pending.insert(id, pending);
        self.out.push_back(Output::Db(id, op));
        id
    }

    fn media(&mut self, cmd: MediaCommand) {
        self.out.push_back(Output::Media(cmd));
    }

    /// A fresh tag, branch-safe Call-ID and the like come from the engine's seeded source.
    pub(crate) fn new_tag(&mut self) -> String {
        sip::ids::generate_tag_with(&mut self.rng)
    }

    pub(crate) fn new_call_id(&mut self) -> String {
        sip::ids::generate_call_id_with(&mut self.rng, None)
    }

    /// Sends a response through a server transaction. A final response to a request without a
    /// To tag gets one (RFC 3261 §8.2.6.2), so every refusal names a dialog a client can match.
    pub(crate) fn respond(&mut self, txn: TransactionId, mut resp: Response, now: Now) {
        if !resp.headers.contains(&HeaderName::Server) {
            resp.headers
                .push(HeaderName::Server, self.cfg.user_agent.as_str());
        }
        if resp.status > 100 && to_lacks_tag(&resp) {
            let tag = self.new_tag();
            resp.set_to_tag(&tag);
        }
        let status = resp.status;
        match self.layer.send_response(txn, resp, now.mono) {
            Ok(()) => self.counters.response(status),
            Err(e) => debug!(%txn, status, error = %e, "response not sent"),
        }
    }

    /// A Via for a request we originate from `local`.
    pub(crate) fn our_via(&mut self, local: SocketAddr, transport: Transport) -> Via {
        let branch = self.layer.new_branch();
        let host = sip::Host::from(nathelper::advertised_ip(self.cfg.advertise, local));
        let mut v = Via::new(transport.as_str(), host, Some(local.port()), &branch);
        v.params.set("rport", None);
        v
    }

    /// Our Contact URI for a leg on `local`.
    pub(crate) fn contact_uri(
        &self,
        user: Option<&str>,
        local: SocketAddr,
        transport: Transport,
    ) -> String {
        nathelper::contact_uri(self.cfg.advertise, user, local, transport)
    }

    // ------------------------------------------------------------------------------------
    // Inputs

    fn on_receive(&mut self, r: Received, now: Now) {
        if self.auth.is_banned(r.source.ip(), now.mono) {
            self.counters.throttled += 1;
            return;
        }
        match &r.message {
            Message::Request(req) => self.counters.request(&req.method),
            Message::Response(resp) => {
                if resp.top_via().is_some_and(|v| v.sent_by_is_unusable()) {
                    debug!(peer = %r.source, "response with unusable Via dropped");
                    return;
                }
            }
        }
        self.layer
            .handle_message(r.message, r.source, r.local, r.transport, now.mono);
    }

    fn on_config(&mut self, c: ConfigUpdate, now: Now) {
        self.blf_config_changed();
        match c {
            ConfigUpdate::Tenants(t) => {
                self.snap.tenants = t;
                self.auth.rebuild(&self.snap);
            }
            ConfigUpdate::Extensions(e) => {
                debug!(count = e.len(), "extension cache loaded");
                self.snap.extensions = e;
                self.auth.absent.clear();
            }
            ConfigUpdate::Settings(s) => {
                self.rec_config_loaded(&self.snap.codes.recording, &s);
                let rebuild = s.digest_algorithms != self.snap.settings.digest_algorithms;
                self.snap.settings = s;
                if rebuild {
                    self.auth.rebuild(&self.snap);
                }
            }
            ConfigUpdate::Outside(o) => {
                let routes: usize = o.routes.values().map(Vec::len).sum();
                let dids: usize = o.dids.values().map(Vec::len).sum();
                if o != self.snap.outside {
                    info!(
                        trunks = o.trunks.len(),
                        routes, dids, "trunks and routes loaded"
                    );
                }
                self.snap.outside = o;
                self.outside_changed(now);
            }
            ConfigUpdate::Apps(a) => {
                if a != self.snap.apps {
                    info!(
                        ivrs = a.ivrs.len(),
                        rooms = a.confs.len(),
                        mailboxes = a.vm_boxes.len(),
                        "voice applications loaded"
                    );
                }
                let old = std::mem::take(&mut self.snap.apps.vm_counts);
                self.snap.apps = a;
                self.mwi_reloaded(&old, now);
            }
            ConfigUpdate::Codes(c) => {
                self.park_lots_loaded(&c.park);
                self.rec_config_loaded(&c.recording, &self.snap.settings);
                self.snap.codes = c
            }
        }
    }

    fn on_db(&mut self, id: OpId, answer: DbAnswer, now: Now) {
        let Some(p) = self.pending.remove(&id) else {
            debug!(op = id.0, "answer for an unknown database operation");
            return;
        };
        match (p, answer) {
            (Pending::Location(reply), DbAnswer::Location { ops, result }) => {
                self.location_written(ops, result, reply, now)
            }
            (Pending::Lookup(key), DbAnswer::Extension(result)) => {
                self.lookup_done(key, result, now)
            }
            (Pending::Cdr(reply), DbAnswer::Cdr(result)) => {
                if let Err(e) = result {
                    warn!(error = %e, "call record not stored");
                }
                if let Some((txn, r)) = reply {
                    self.respond(txn, r, now);
                }
            }
            (Pending::Background(what), DbAnswer::Done(result)) => {
                if let Err(e) = result {
                    warn!(error = %e, "{what} failed");
                }
            }
            (Pending::Vm(call), DbAnswer::Vm(a)) => self.vm_answer(call, a, now),
            (Pending::Park(tenant, slot, save), DbAnswer::Done(r)) => {
                self.park_db_answer(tenant, slot, save, r, now)
            }
            (Pending::Cdr(reply), _) => {
                // A mismatched answer must not leave a phone without its final response.
                if let Some((txn, r)) = reply {
                    self.respond(txn, r, now);
                }
            }
            _ => warn!(op = id.0, "database answer of the wrong kind"),
        }
    }

    fn lookup_done(
        &mut self,
        key: (i64, String),
        result: Result<Option<ExtEntry>, String>,
        now: Now,
    ) {
        let parked = self.lookups.remove(&key).unwrap_or_default();
        match result {
            Ok(Some(e)) => {
                self.snap.extensions.insert(key, e);
            }
            Ok(None) => self.auth.absent.insert(key),
            Err(e) => {
                warn!(error = %e, "extension lookup failed");
                for p in parked {
                    let r = Response::for_request(&p.req, 500, Some("Database Unavailable"))
                        .with_header(HeaderName::RetryAfter, "5");
                    self.respond(p.txn, r, now);
                }
                return;
            }
        }
        for p in parked {
            match p.req.method {
                // Parked before its user was known (a cache miss, one database lookup): its
                // headers passed the checks when it arrived, and are parsed again here.
                Method::Register => {
                    if let Ok(c) = sip::check_parsed(&p.req, &self.check_cfg) {
                        self.on_register(p.txn, (p.req, c), p.source, p.local, p.transport, now)
                    }
                }
                Method::Invite => self.on_invite(p.txn, p.req, p.source, p.local, p.transport, now),
                Method::Subscribe => {
                    self.on_subscribe(p.txn, p.req, (p.source, p.local, p.transport), now)
                }
                _ => {}
            }
        }
    }

    /// Parks a request until the database says whether `key` exists. One lookup per key is in
    /// flight, at most `max_lookups` in all; past that the request is refused with 503, so an
    /// unauthenticated flood of made-up user names costs a bounded amount of database work.
    pub(crate) fn park_for_lookup(&mut self, key: (i64, String), parked: Parked, now: Now) {
        if let Some(waiting) = self.lookups.get_mut(&key) {
            if waiting.len() < PARKED_PER_KEY {
                waiting.push(parked);
                return;
            }
        } else if self.lookups.len() < self.cfg.max_lookups {
            self.lookups.insert(key.clone(), vec![parked]);
            let op = DbOp::LookupExtension {
                tenant: key.0,
                number: key.1.clone(),
            };
            self.db(op, Pending::Lookup(key));
            return;
        }
        self.counters.lookups_refused += 1;
        let r = Response::for_request(&parked.req, 503, Some("Busy"))
            .with_header(HeaderName::RetryAfter, "5");
        self.respond(parked.txn, r, now);
    }

    fn on_media(&mut self, ev: MediaEvent, now: Now) {
        match ev {
            MediaEvent::Allocated { session, a, b } => {
                self.media_allocated(session, Ok((a, b)), now)
            }
            MediaEvent::AllocationFailed { session, reason } => {
                warn!(%reason, "no media ports");
                if self.live_adopt_failed(session, now) {
                    return;
                }
                self.media_allocated(session, Err(()), now)
            }
            MediaEvent::Timeout { session } => {
                if let Some(id) = self.b2bua.bridged_call_of(session) {
                    warn!(call = id, "media stopped: hanging up");
                    self.hangup_call(id, "media timeout", now);
                }
            }
            MediaEvent::Closed { session, a, b } => self.media_closed(session, a, b, now),
            MediaEvent::RelayDigit {
                session,
                side,
                digit,
            } => self.rec_relay_digit(session, side, digit, now),
            other if self.pages.owns_event(&other) => self.page_endpoint_event(other, now),
            other => self.on_endpoint_event(other, now),
        }
    }

    fn on_event(&mut self, ev: Event, now: Now) {
        match ev {
            Event::Request {
                transaction,
                request,
                source,
                local,
                transport,
                cancels,
            } => self.on_request(transaction, request, source, local, transport, cancels, now),
            // A phone's 200 to a NOTIFY (the bulk of a BLF load): nothing to do, no clone.
            Event::Response {
                transaction,
                ref response,
                ..
            } if response.status != 481
                && matches!(self.owners.get(&transaction), Some(Owner::SubNotify(..))) => {}
            Event::Response {
                transaction,
                response,
                source,
            } => match self.owners.get(&transaction).cloned() {
                Some(Owner::Call(id)) if self.b2bua.contains(id) => {
                    self.call_response(id, transaction, response, now)
                }
                Some(Owner::Ping {
                    extension_id,
                    contact_uri,
                }) => {
                    if response.status >= 200 {
                        self.ping_answered(extension_id, &contact_uri);
                    }
                }
                Some(Owner::TrunkReg(t)) => self.trunk_reg_response(t, &response, now),
                Some(Owner::TrunkPing(t)) => self.trunk_ping_result(t, Some(&response), now),
                Some(Owner::TrunkGone | Owner::Mwi) => {}
                Some(Owner::Page(p, m)) => {
                    self.page_response(p, m, transaction, &response, source, now)
                }
                Some(Owner::SubNotify(call_id, tag)) => {
                    if response.status == 481 {
                        self.subscription_gone(&(call_id, tag), "481");
                    }
                }
                // An answer for a call that is already gone (it answered after we cancelled).
                Some(Owner::Call(_)) | None => {
                    if (200..300).contains(&response.status) {
                        self.late_answer(transaction, &response, source, now);
                    }
                }
            },
            Event::Timeout { transaction } | Event::TransportError { transaction } => {
                match self.owners.get(&transaction).cloned() {
                    Some(Owner::Call(id)) => self.call_tx_failed(id, transaction, now),
                    Some(Owner::Ping {
                        extension_id,
                        contact_uri,
                    }) => self.ping_failed(extension_id, &contact_uri, now),
                    Some(Owner::TrunkReg(t)) => self.trunk_reg_failed(t, now),
                    Some(Owner::TrunkPing(t)) => self.trunk_ping_result(t, None, now),
                    Some(Owner::SubNotify(call_id, tag)) => {
                        self.subscription_gone(&(call_id, tag), "no answer")
                    }
                    Some(Owner::Page(p, m)) => self.page_tx_failed(p, m, now),
                    Some(Owner::TrunkGone | Owner::Mwi) | None => {}
                }
            }
            Event::AckTimeout { transaction } => {
                if let Some(id) = self.b2bua.call_of_server_txn(transaction) {
                    self.hangup_call(id, "no ACK for 200 OK", now);
                }
            }
            Event::Terminated { transaction } => {
                self.owners.remove(&transaction);
                self.b2bua.forget_server_txn(transaction);
            }
            Event::StrayResponse { response, source } => {
                self.live_stray_answer(&response, source, now)
            }
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
        now: Now,
    ) {
        let Some(txn) = txn else {
            // ACK for a 2xx (or for nothing).
            self.call_ack(&req);
            return;
        };
        let checked = match sip::check_parsed(&req, &self.check_cfg) {
            Ok(c) => c,
            Err(rej) => {
                let log = self.rejected_log.event(source.ip(), now.mono, || {
                    format!("{} {rej}", req.method.as_str())
                });
                if log.is_log() {
                    info!(peer = %source, method = %req.method.as_str(), reason = %rej, "request rejected");
                }
                self.respond(txn, rej.to_response(&req), now);
                return;
            }
        };
        let in_dialog = checked.to.tag().is_some();
        match req.method {
            Method::Cancel => self.on_cancel(txn, &req, cancels, now),
            Method::Register => {
                self.on_register(txn, (req, checked), source, local, transport, now)
            }
            Method::Invite if !in_dialog && self.live.new_calls_refused => {
                self.refuse_new_call(txn, &req, source, now)
            }
            Method::Invite if !in_dialog => self.on_invite(txn, req, source, local, transport, now),
            Method::Options if !in_dialog => {
                let r = Response::for_request(&req, 200, None)
                    .with_header(HeaderName::Allow, ALLOW)
                    .with_header(HeaderName::Accept, "application/sdp")
                    .with_header(
                        HeaderName::Contact,
                        format!("<{}>", self.contact_uri(None, local, transport)),
                    );
                self.respond(txn, r, now);
            }
            Method::Subscribe => self.on_subscribe(txn, req, (source, local, transport), now),
            _ if in_dialog && self.pages.owns_request(&req) => self.page_in_dialog(txn, &req, now),
            _ if in_dialog => self.in_dialog_request(txn, req, source, now),
            Method::Refer => self.transfer_stray_refer(txn, &req, source, now),
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

    fn on_cancel(
        &mut self,
        txn: TransactionId,
        req: &Request,
        cancels: Option<TransactionId>,
        now: Now,
    ) {
        match cancels {
            Some(invite) => {
                self.respond(txn, Response::for_request(req, 200, None), now);
                if let Some(id) = self.b2bua.call_of_server_txn(invite) {
                    self.caller_cancelled(id, now);
                }
            }
            None => self.respond(txn, Response::for_request(req, 481, None), now),
        }
    }

    fn housekeeping(&mut self, now: Now) {
        self.usrloc.expire(now.wall);
        self.auth.flush_log(now.mono);
        for s in self.rejected_log.flush(now.mono) {
            info!("{}", s.line("rejected requests"));
        }
        if self
            .last_purge
            .is_some_and(|t| now.mono.duration_since(t) >= PURGE_EVERY)
        {
            self.last_purge = Some(now.mono);
            self.auth.pike.sweep(now.mono);
            self.db(
                DbOp::PurgeExpired { now: now.wall },
                Pending::Background("purging expired registrations"),
            );
        }
        self.send_keepalives(now);
        self.expire_subscriptions(now);
        self.check_calls(now);
        self.transfer_timeouts(now);
        self.page_timeouts(now);
        self.check_trunk_attempts(now);
        self.trunk_timers(now);
    }

    /// Where a request to `target` leaves from when the caller gave no local address: our
    /// address of the same family.
    pub(crate) fn local_for(&self, dest: SocketAddr) -> Option<SocketAddr> {
        self.cfg
            .locals
            .iter()
            .find(|a| a.is_ipv4() == dest.is_ipv4())
            .copied()
    }

    /// Sends a request in a new client transaction owned by `owner`.
    pub(crate) fn send_request(
        &mut self,
        req: Request,
        target: Target,
        owner: Owner,
        now: Now,
    ) -> Option<TransactionId> {
        match self.layer.send_request(req, target, now.mono) {
            Ok(t) => {
                self.owners.insert(t, owner);
                Some(t)
            }
            Err(e) => {
                debug!(error = %e, "request not sent");
                None
            }
        }
    }
}
