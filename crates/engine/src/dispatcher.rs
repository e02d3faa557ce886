//! `dispatcher`: trunks (Kamailio's name for its gateway sets). Which trunk a request came
//! from; the order an outside call tries trunks in, with failover on 5xx, 408 and timeouts
//! (not on 486/404 and the like: those are the called party's answer); digest answers to a
//! provider's challenges; registration to providers and OPTIONS health checks (through
//! [`crate::uac`]); and the toll-fraud guards that run before any call leaves.
//!
//! A trunk is usable when it is enabled, has an address, is not marked down by its health
//! check and is below its call limit. Emergency calls skip the toll-fraud limits, never the
//! trunk checks.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use sip::transaction::{Target, Transport};
use sip::{HeaderName, MediaType, Method, Request, Response, Uri};
use tracing::{debug, info, warn};

use crate::b2bua::{Entry, Leg, Origin, Targets};
use crate::config::{ExtEntry, Outside, TrunkEntry};
use crate::db::{DbOp, Direction, Disposition};
use crate::dialplan::{self, InboundRequest, OutsideCall};
use crate::media::Side;
use crate::outside::{CallClass, DidFrom, Identity, TrunkTransport, cidr_contains, parse_cidr};
use crate::uac::{Account, ClientAuth, PingConfig, PingState, Pinger, RegClient, RegConfig};
use crate::{ALLOW, Engine, Now, Owner, Pending, nathelper, sdp};

mod trunk_role;

/// An outbound call made before a restart, from its record.
#[derive(Debug, Clone)]
pub struct OutboundHistory {
    /// Tenant.
    pub tenant: i64,
    /// Calling extension.
    pub caller: String,
    /// When it started.
    pub start: SystemTime,
    /// What was dialled.
    pub dialled: String,
    /// Seconds talked.
    pub billsec: u64,
}

/// An outside call's trunks and how far it got through them.
pub(crate) struct OutsidePlan {
    pub call: OutsideCall,
    /// (trunk id, address) in the order tried: each trunk's addresses (its DNS answers, at
    /// most [`ADDRS_PER_TRUNK`]) before the next trunk.
    pub trunks: Vec<(i64, SocketAddr)>,
    /// Index of the next trunk to try.
    pub next: usize,
    /// The caller's SDP offer (each attempt rewrites it for the relay).
    pub body: Bytes,
    pub max_forwards: u32,
    /// (trunk, status) of every attempt so far.
    pub tried: Vec<(String, u16)>,
    /// Digest answers for the current attempt.
    pub auth: Option<ClientAuth>,
    /// The INVITE of the current attempt (the transaction layer lets go of it at a final
    /// response; a challenge is answered by re-sending it).
    pub last_invite: Option<Request>,
    /// When the current attempt went out, and whether the trunk has answered it at all.
    pub attempt: Option<(Instant, bool)>,
}

/// A trunk's live client state.
struct TrunkRt {
    /// What the clients were built from (rebuilt when it changes).
    key: String,
    reg: Option<RegClient>,
    ping: Option<Pinger>,
    /// Where its requests go.
    dest: Option<(SocketAddr, Transport)>,
    /// The last status document written to the database, and when.
    written: Option<(serde_json::Value, Instant)>,
}

/// Outbound call starts and international seconds, per tenant (`None`) and per extension.
#[derive(Default)]
struct Guard {
    starts: HashMap<(i64, Option<String>), VecDeque<SystemTime>>,
    intl: HashMap<(i64, Option<String>), (u64, u64)>,
}

const HOUR: Duration = Duration::from_secs(3600);

/// Addresses of one trunk an outside call tries at most (DNS may answer many).
pub const ADDRS_PER_TRUNK: usize = 4;

/// How long a trunk may stay silent (not even 100 Trying) before the call moves on.
pub const TRUNK_SILENCE: Duration = Duration::from_secs(5);

fn day_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

impl Guard {
    /// Starts within the last hour (older ones are dropped).
    fn starts_last_hour(&mut self, key: &(i64, Option<String>), now: SystemTime) -> usize {
        let Some(q) = self.starts.get_mut(key) else {
            return 0;
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() >= HOUR)
        {
            q.pop_front();
        }
        q.len()
    }

    fn record_start(&mut self, key: (i64, Option<String>), limit: u32, now: SystemTime) {
        let q = self.starts.entry(key).or_default();
        q.push_back(now);
        // Bounded: only the last `limit` starts matter for the check.
        while q.len() > limit.max(1) as usize {
            q.pop_front();
        }
    }

    fn intl_secs(&self, key: &(i64, Option<String>), now: SystemTime) -> u64 {
        match self.intl.get(key) {
            Some((day, secs)) if *day == day_of(now) => *secs,
            _ => 0,
        }
    }

    fn add_intl(&mut self, key: (i64, Option<String>), secs: u64, now: SystemTime) {
        let today = day_of(now);
        let e = self.intl.entry(key).or_insert((today, 0));
        if e.0 != today {
            *e = (today, 0);
        }
        e.1 += secs;
    }
}

/// Trunk state and indexes.
#[derive(Default)]
pub(crate) struct Dispatcher {
    /// Source address -> trunks.
    by_ip: HashMap<IpAddr, Vec<i64>>,
    /// CIDR blocks -> trunk.
    blocks: Vec<((IpAddr, u8), i64)>,
    rt: HashMap<i64, TrunkRt>,
    guard: Guard,
    /// Outside calls in progress per (tenant, extension) and per (tenant, None): kept as
    /// counts, so the limit check does not walk every call.
    active: HashMap<(i64, Option<String>), u32>,
    /// Registrations and health checks stopped: a pair's node that is not active
    /// ([`Engine::set_trunks_active`]).
    idle: bool,
}

/// A trunk's state as `denwa trunk status`, the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrunkStatus {
    /// Trunk id.
    pub id: i64,
    /// Tenant.
    pub tenant: i64,
    /// Name.
    pub name: String,
    /// `registered`, `registering`, `failing`, `unregistered`, or `off` (IP trunk).
    pub registration: String,
    /// The provider's last answer to a REGISTER (`401 Unauthorized`, ...).
    pub last_register_answer: Option<String>,
    /// Why registration fails.
    pub failure: Option<String>,
    /// Registered until (UNIX seconds).
    pub registered_until: Option<u64>,
    /// Next registration attempt (UNIX seconds).
    pub next_attempt_at: Option<u64>,
    /// `up`, `down`, `unknown` or `off` (no OPTIONS check).
    pub health: String,
    /// Last answer to OPTIONS.
    pub last_ping_answer: Option<String>,
    /// Round-trip time of the last OPTIONS.
    pub rtt_ms: Option<u64>,
    /// Calls in progress over it.
    pub calls: usize,
    /// Usable for new calls now.
    pub usable: bool,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn transport_of(t: &TrunkEntry) -> Transport {
    match t.spec.transport {
        TrunkTransport::Udp => Transport::Udp,
        TrunkTransport::Tcp => Transport::Tcp,
    }
}

/// `sip:USER@HOST[:PORT][;transport=tcp]` towards a trunk.
fn trunk_uri(t: &TrunkEntry, user: Option<&str>) -> Option<Uri> {
    let host = if t.spec.host.contains(':') {
        format!("[{}]", t.spec.host)
    } else {
        t.spec.host.clone()
    };
    let port = t.spec.port.map(|p| format!(":{p}")).unwrap_or_default();
    let user = user
        .filter(|u| !u.is_empty())
        .map(|u| format!("{}@", escape_user(u)))
        .unwrap_or_default();
    let tp = if t.spec.transport == TrunkTransport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    format!("sip:{user}{host}{port}{tp}").parse().ok()
}

/// A number as a SIP user part (`#` must be escaped).
fn escape_user(u: &str) -> String {
    u.replace('#', "%23")
}

/// The From domain towards a trunk.
fn from_domain(t: &TrunkEntry) -> String {
    if t.spec.from_domain.is_empty() {
        t.spec.host.clone()
    } else {
        t.spec.from_domain.clone()
    }
}

impl Dispatcher {
    /// Rebuilds the source indexes from the configuration.
    fn index(&mut self, outside: &Outside) {
        self.by_ip.clear();
        self.blocks.clear();
        let mut ids: Vec<&TrunkEntry> =
            outside.trunks.values().filter(|t| t.spec.enabled).collect();
        ids.sort_by_key(|t| t.id);
        for t in ids {
            for ip in &t.sources {
                self.by_ip.entry(*ip).or_default().push(t.id);
            }
            for b in &t.spec.inbound_addrs {
                if let Some(block) = parse_cidr(b) {
                    self.blocks.push((block, t.id));
                }
            }
        }
    }

    /// The trunks a request from `ip` may belong to.
    fn trunks_for(&self, ip: IpAddr) -> Vec<i64> {
        let mut out = self.by_ip.get(&ip).cloned().unwrap_or_default();
        for (b, id) in &self.blocks {
            if cidr_contains(*b, ip) && !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }
}

impl Engine {
    // ------------------------------------------------------------------------------------
    // Configuration

    /// Installs new trunk configuration: indexes, and registration/health clients rebuilt for
    /// the trunks whose settings changed (a removed registration trunk unregisters).
    pub(crate) fn outside_changed(&mut self, now: Now) {
        self.dispatcher.index(&self.snap.outside);
        let mut keep: HashMap<i64, TrunkRt> = HashMap::new();
        let mut trunks: Vec<TrunkEntry> = self.snap.outside.trunks.values().cloned().collect();
        trunks.sort_by_key(|t| t.id);
        for t in &trunks {
            let key = format!("{:?}|{}|{:?}", t.spec, t.password, t.addrs);
            if let Some(rt) = self.dispatcher.rt.remove(&t.id)
                && rt.key == key
            {
                keep.insert(t.id, rt);
                continue;
            }
            let mut rt = self.new_trunk_rt(t, key, now);
            if self.dispatcher.idle {
                // Not active: built stopped, started when the node takes over.
                self.unregister_trunk(&mut rt, now);
            }
            keep.insert(t.id, rt);
        }
        // Trunks that went away (or changed): unregister what was registered.
        let old: Vec<(i64, TrunkRt)> = self.dispatcher.rt.drain().collect();
        for (id, mut rt) in old {
            if self.unregister_trunk(&mut rt, now) {
                info!(trunk = id, "unregistering from a removed or changed trunk");
            }
        }
        self.dispatcher.rt = keep;
    }

    fn new_trunk_rt(&mut self, t: &TrunkEntry, key: String, now: Now) -> TrunkRt {
        let mut rt = TrunkRt {
            key,
            reg: None,
            ping: None,
            dest: None,
            written: None,
        };
        if !t.spec.enabled {
            return rt;
        }
        let Some(&dest) = t.addrs.first() else {
            warn!(trunk = %t.name, host = %t.spec.host, "trunk has no address: not registering or checking it");
            return rt;
        };
        let Some(local) = self.local_for(dest) else {
            return rt;
        };
        let transport = transport_of(t);
        rt.dest = Some((dest, transport));
        if t.spec.register {
            let contact_user = escape_user(&t.spec.username);
            let contact: Option<Uri> = self
                .contact_uri(Some(&contact_user), local, transport)
                .parse()
                .ok();
            if let (Some(registrar), Some(contact)) = (trunk_uri(t, None), contact) {
                let mut cfg =
                    RegConfig::new(registrar, t.spec.username.clone(), from_domain(t), contact);
                cfg.expires = t.spec.expires_s;
                cfg.account = Some(Account::new(t.spec.auth_user(), t.password.clone()));
                if t.spec.outbound_proxy.is_some() {
                    // The driver resolved the proxy into `addrs`: send there.
                    let tp = if transport == Transport::Tcp {
                        ";transport=tcp"
                    } else {
                        ""
                    };
                    cfg.outbound_proxy = format!("sip:{dest}{tp}").parse().ok();
                }
                let call_id = self.new_call_id();
                let tag = self.new_tag();
                let seed = rand::RngCore::next_u64(&mut self.rng);
                rt.reg = Some(RegClient::new(cfg, call_id, tag, seed, now.mono));
            }
        }
        if t.spec.ping_interval_s > 0
            && let Some(target) = trunk_uri(t, None)
        {
            let from_user = if t.spec.username.is_empty() {
                "denwa".to_string()
            } else {
                escape_user(&t.spec.username)
            };
            if let Ok(from) = format!("sip:{from_user}@{}", from_domain(t)).parse::<Uri>() {
                let mut cfg = PingConfig::new(target, from);
                cfg.up_interval = Duration::from_secs(u64::from(t.spec.ping_interval_s));
                rt.ping = Some(Pinger::new(cfg, now.mono));
            }
        }
        rt
    }

    // ------------------------------------------------------------------------------------
    // Registration and health checks (driven by the housekeeping tick)

    /// Sends the REGISTERs and OPTIONS that are due, and writes changed trunk states.
    pub(crate) fn trunk_timers(&mut self, now: Now) {
        if self.dispatcher.idle {
            return;
        }
        let ids: Vec<i64> = self.dispatcher.rt.keys().copied().collect();
        for id in ids {
            let Some(t) = self.snap.outside.trunks.get(&id) else {
                continue;
            };
            let Some(&dest) = t.addrs.first() else {
                continue;
            };
            let transport = transport_of(t);
            let Some(local) = self.local_for(dest) else {
                continue;
            };
            let target = Target {
                destination: dest,
                transport,
                local: Some(local),
            };
            let reg_due = self.dispatcher.rt[&id]
                .reg
                .as_ref()
                .and_then(|r| r.poll_timeout())
                .is_some_and(|t| t <= now.mono);
            if reg_due {
                let via = self.our_via(local, transport);
                let req = self
                    .dispatcher
                    .rt
                    .get_mut(&id)
                    .and_then(|rt| rt.reg.as_mut())
                    .and_then(|r| r.handle_timeout(now.mono, &via));
                if let Some(mut req) = req {
                    req.headers
                        .push(HeaderName::UserAgent, self.cfg.user_agent.as_str());
                    self.send_request(req, target, Owner::TrunkReg(id), now);
                }
            }
            let ping_due = self.dispatcher.rt[&id]
                .ping
                .as_ref()
                .and_then(|p| p.poll_timeout())
                .is_some_and(|t| t <= now.mono);
            if ping_due {
                let via = self.our_via(local, transport);
                let call_id = self.new_call_id();
                let tag = self.new_tag();
                let req = self
                    .dispatcher
                    .rt
                    .get_mut(&id)
                    .and_then(|rt| rt.ping.as_mut())
                    .and_then(|p| p.handle_timeout(now.mono, &via, &call_id, &tag));
                if let Some(mut req) = req {
                    req.headers
                        .push(HeaderName::UserAgent, self.cfg.user_agent.as_str());
                    self.send_request(req, target, Owner::TrunkPing(id), now);
                }
            }
        }
        self.write_trunk_states(now);
    }

    /// A provider's answer to our REGISTER.
    pub(crate) fn trunk_reg_response(&mut self, id: i64, resp: &Response, now: Now) {
        // A late answer to a REGISTER sent before this node stopped its trunks.
        if resp.status < 200 || self.dispatcher.idle {
            return;
        }
        let Some(t) = self.snap.outside.trunks.get(&id) else {
            return;
        };
        let Some(&dest) = t.addrs.first() else {
            return;
        };
        let transport = transport_of(t);
        let Some(local) = self.local_for(dest) else {
            return;
        };
        let name = t.name.clone();
        let via = self.our_via(local, transport);
        let cnonce = self.new_tag();
        let Some(reg) = self
            .dispatcher
            .rt
            .get_mut(&id)
            .and_then(|rt| rt.reg.as_mut())
        else {
            return;
        };
        let before = reg.state();
        let again = reg.handle_response(resp, now.mono, &via, &cnonce);
        let after = reg.state();
        if before != after {
            match after {
                crate::uac::RegState::Registered => {
                    info!(trunk = %name, "registered to the provider")
                }
                crate::uac::RegState::Failing => {
                    warn!(trunk = %name, status = resp.status, reason = %resp.reason, "trunk registration failing")
                }
                _ => {}
            }
        }
        if let Some(mut req) = again {
            req.headers
                .push(HeaderName::UserAgent, self.cfg.user_agent.as_str());
            let target = Target {
                destination: dest,
                transport,
                local: Some(local),
            };
            self.send_request(req, target, Owner::TrunkReg(id), now);
        }
        self.write_trunk_states(now);
    }

    /// Our REGISTER got no answer.
    pub(crate) fn trunk_reg_failed(&mut self, id: i64, now: Now) {
        if self.dispatcher.idle {
            return;
        }
        if let Some(reg) = self
            .dispatcher
            .rt
            .get_mut(&id)
            .and_then(|rt| rt.reg.as_mut())
        {
            reg.handle_failure(now.mono);
        }
        self.write_trunk_states(now);
    }

    /// The answer to (or the loss of) an OPTIONS health check.
    pub(crate) fn trunk_ping_result(&mut self, id: i64, resp: Option<&Response>, now: Now) {
        let name = self
            .snap
            .outside
            .trunks
            .get(&id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let Some(p) = self
            .dispatcher
            .rt
            .get_mut(&id)
            .and_then(|rt| rt.ping.as_mut())
        else {
            return;
        };
        let before = p.state();
        match resp {
            Some(r) if r.status >= 200 => p.handle_response(r, now.mono),
            Some(_) => return,
            None => p.handle_failure(now.mono),
        }
        let after = p.state();
        if before != after {
            match after {
                PingState::Down => {
                    warn!(trunk = %name, "trunk stopped answering OPTIONS: marked down")
                }
                PingState::Up => info!(trunk = %name, "trunk answers OPTIONS: up"),
                PingState::Unknown => {}
            }
        }
    }

    /// Calls in progress per trunk (unanswered attempts included), in one pass over the calls.
    fn calls_per_trunk(&self) -> HashMap<i64, usize> {
        let mut out: HashMap<i64, usize> = HashMap::new();
        for c in self.b2bua.calls.values() {
            let mut seen: Option<i64> = None;
            for (i, l) in c.legs.iter().enumerate() {
                let Some(t) = l.trunk else { continue };
                let active = l.final_status.is_none()
                    || c.bridge.is_some_and(|b| b.b == i)
                    || c.anchor.as_deref().and_then(|a| a.winner_leg()) == Some(i);
                // A call counts once per trunk (several attempts may have gone to one trunk).
                if active && seen != Some(t) {
                    seen = Some(t);
                    *out.entry(t).or_default() += 1;
                }
            }
        }
        out
    }

    pub(crate) fn trunk_usable(&self, t: &TrunkEntry) -> Result<(), &'static str> {
        let calls = if t.spec.max_calls > 0 {
            self.calls_per_trunk().get(&t.id).copied().unwrap_or(0)
        } else {
            0
        };
        self.trunk_usable_with(t, calls)
    }

    /// [`Self::trunk_usable`] with the trunk's calls in progress already counted.
    fn trunk_usable_with(&self, t: &TrunkEntry, calls: usize) -> Result<(), &'static str> {
        if !t.spec.enabled {
            return Err("disabled");
        }
        if t.addrs.is_empty() {
            return Err("no address");
        }
        if self
            .dispatcher
            .rt
            .get(&t.id)
            .and_then(|rt| rt.ping.as_ref())
            .is_some_and(|p| p.state() == PingState::Down)
        {
            return Err("down");
        }
        if t.spec.max_calls > 0 && calls >= t.spec.max_calls as usize {
            return Err("at its call limit");
        }
        Ok(())
    }

    /// Every trunk's state now.
    pub fn trunk_statuses(&self, now: Now) -> Vec<TrunkStatus> {
        let calls = self.calls_per_trunk();
        let mut v: Vec<TrunkStatus> = self
            .snap
            .outside
            .trunks
            .values()
            .map(|t| self.trunk_status(t, calls.get(&t.id).copied().unwrap_or(0), now))
            .collect();
        v.sort_by(|a, b| (a.tenant, &a.name).cmp(&(b.tenant, &b.name)));
        v
    }

    fn trunk_status(&self, t: &TrunkEntry, calls: usize, now: Now) -> TrunkStatus {
        let rt = self.dispatcher.rt.get(&t.id);
        let at = |secs: Option<u64>| secs.map(|s| unix(now.wall) + s);
        let (registration, last, failure, until, next) =
            match rt.and_then(|r| r.reg.as_ref()).map(|r| r.status(now.mono)) {
                Some(s) => (
                    serde_json::to_value(s.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    s.last.as_ref().map(|l| format!("{} {}", l.code, l.reason)),
                    s.failure.map(|f| format!("{f:?}")),
                    at(s.registered_for_secs),
                    at(s.next_attempt_in_secs),
                ),
                None => ("off".to_string(), None, None, None, None),
            };
        let (health, last_ping, rtt) =
            match rt.and_then(|r| r.ping.as_ref()).map(|p| p.status(now.mono)) {
                Some(p) => (
                    match p.state {
                        PingState::Up => "up",
                        PingState::Down => "down",
                        PingState::Unknown => "unknown",
                    }
                    .to_string(),
                    p.last.as_ref().map(|l| format!("{} {}", l.code, l.reason)),
                    p.rtt_ms,
                ),
                None => ("off".to_string(), None, None),
            };
        TrunkStatus {
            id: t.id,
            tenant: t.tenant,
            name: t.name.clone(),
            registration,
            last_register_answer: last,
            failure,
            registered_until: until,
            next_attempt_at: next,
            health,
            last_ping_answer: last_ping,
            rtt_ms: rtt,
            calls,
            usable: self.trunk_usable_with(t, calls).is_ok(),
        }
    }

    /// Writes each trunk's state when it changed (at most once a second per trunk; countdowns
    /// are stored as absolute times, so a steady trunk is not rewritten).
    fn write_trunk_states(&mut self, now: Now) {
        let ids: Vec<i64> = self.dispatcher.rt.keys().copied().collect();
        let calls = self.calls_per_trunk();
        for id in ids {
            let Some(t) = self.snap.outside.trunks.get(&id) else {
                continue;
            };
            let mut st = self.trunk_status(t, calls.get(&id).copied().unwrap_or(0), now);
            // Round-trip times move on every ping; they are shown live, not stored.
            st.rtt_ms = None;
            let Ok(doc) = serde_json::to_value(&st) else {
                continue;
            };
            let Some(rt) = self.dispatcher.rt.get_mut(&id) else {
                continue;
            };
            let due = match &rt.written {
                None => true,
                Some((old, at)) => {
                    *old != doc && now.mono.duration_since(*at) >= Duration::from_secs(1)
                }
            };
            if due {
                rt.written = Some((doc.clone(), now.mono));
                self.db(
                    DbOp::TrunkStatus {
                        trunk_id: id,
                        status: doc,
                    },
                    Pending::Background("writing trunk status"),
                );
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Inbound calls

    /// The trunk a new INVITE from `source` belongs to, if any.
    pub(crate) fn trunk_for_source(&self, source: IpAddr, req: &Request) -> Option<i64> {
        let ids = self.dispatcher.trunks_for(source);
        match ids.len() {
            0 => None,
            1 => ids.first().copied(),
            // Several accounts at one provider: the one whose account the Request-URI names.
            _ => {
                let user = req.uri.user().unwrap_or_default();
                ids.iter()
                    .copied()
                    .find(|id| {
                        self.snap
                            .outside
                            .trunks
                            .get(id)
                            .is_some_and(|t| !t.spec.username.is_empty() && t.spec.username == user)
                    })
                    .or_else(|| ids.first().copied())
            }
        }
    }

    /// A call from a trunk: the DID decides, through the tenant's inbound routes.
    pub(crate) fn trunk_invite(&mut self, trunk: i64, entry: Entry, now: Now) {
        let (txn, req, source, _, _) = &entry;
        let (txn, source) = (*txn, *source);
        let Some(t) = self.snap.outside.trunks.get(&trunk).cloned() else {
            return self.respond(txn, Response::for_request(req, 403, None), now);
        };
        let user_of = |u: &Uri| {
            u.user()
                .map(|s| s.split(';').next().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        let did = match t.spec.did_from {
            DidFrom::Ruri => user_of(&req.uri),
            DidFrom::To => req.to().map(|to| user_of(&to.uri)).unwrap_or_default(),
        };
        let call_id = req.call_id().unwrap_or_default().to_string();
        if self.b2bua.by_call_id.contains_key(&call_id) {
            // Our own outbound leg coming back: a routing loop at the provider.
            warn!(trunk = %t.name, peer = %source, %did, "call looped back from the trunk: refused");
            return self.respond(txn, Response::for_request(req, 482, None), now);
        }
        let (caller, caller_name) = match req.from() {
            Some(f) => (user_of(&f.uri), f.display_name.clone().unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        let decision = dialplan::route_inbound(
            &InboundRequest {
                tenant: t.tenant,
                trunk: &t.name,
                did: &did,
                at: now.wall,
            },
            &self.snap,
        );
        info!(trunk = %t.name, peer = %source, %did, %caller, "inbound call");
        let origin = Origin {
            tenant: t.tenant,
            caller: caller.clone(),
            caller_name,
            call_id,
            digits: did.clone(),
            route: crate::db::CallRoute {
                direction: Direction::Inbound,
                trunk: t.name.clone(),
                did: did.clone(),
                dialled: did,
                sent_number: String::new(),
                caller_id: caller,
            },
        };
        self.route_call(entry, origin, decision, None, now);
    }

    // ------------------------------------------------------------------------------------
    // Outbound calls

    /// Checks the toll-fraud limits of a caller; the reason when one is reached.
    fn fraud_check(
        &mut self,
        tenant: i64,
        caller: &ExtEntry,
        class: CallClass,
        now: Now,
    ) -> Result<(), String> {
        let policy = self.snap.outside.policy(tenant);
        let ext_key = (tenant, Some(caller.number.clone()));
        let tenant_key = (tenant, None);
        let active = |e: &Engine, key: &(i64, Option<String>)| {
            e.dispatcher.active.get(key).copied().unwrap_or(0)
        };
        let lim = caller.limits;
        if active(self, &ext_key) >= lim.max_concurrent {
            return Err(format!(
                "extension {} has {} outside calls in progress (limit {})",
                caller.number, lim.max_concurrent, lim.max_concurrent
            ));
        }
        if active(self, &tenant_key) >= policy.max_concurrent {
            return Err(format!(
                "the tenant has {} outside calls in progress (limit)",
                policy.max_concurrent
            ));
        }
        if self.dispatcher.guard.starts_last_hour(&ext_key, now.wall) >= lim.max_per_hour as usize {
            return Err(format!(
                "extension {} made {} outside calls in the last hour (limit)",
                caller.number, lim.max_per_hour
            ));
        }
        if self
            .dispatcher
            .guard
            .starts_last_hour(&tenant_key, now.wall)
            >= policy.max_per_hour as usize
        {
            return Err(format!(
                "the tenant made {} outside calls in the last hour (limit)",
                policy.max_per_hour
            ));
        }
        if class == CallClass::International {
            if self.dispatcher.guard.intl_secs(&ext_key, now.wall)
                >= u64::from(lim.intl_minutes_per_day) * 60
            {
                return Err(format!(
                    "extension {} used its {} international minutes today",
                    caller.number, lim.intl_minutes_per_day
                ));
            }
            if self.dispatcher.guard.intl_secs(&tenant_key, now.wall)
                >= u64::from(policy.intl_minutes_per_day) * 60
            {
                return Err(format!(
                    "the tenant used its {} international minutes today",
                    policy.intl_minutes_per_day
                ));
            }
        }
        self.dispatcher
            .guard
            .record_start(ext_key, lim.max_per_hour, now.wall);
        self.dispatcher
            .guard
            .record_start(tenant_key, policy.max_per_hour, now.wall);
        Ok(())
    }

    /// A call the dialplan sends out through trunks.
    pub(crate) fn outside_call(
        &mut self,
        entry: Entry,
        o: Origin,
        call: OutsideCall,
        caller: Option<ExtEntry>,
        now: Now,
    ) {
        let (txn, req, source, _, _) = &entry;
        let (txn, source) = (*txn, *source);
        // Only an authenticated extension calls out (inbound calls never reach here).
        let Some(caller) = caller else {
            return self.refuse_call(
                txn,
                req,
                source,
                &o,
                403,
                "Forbidden",
                Disposition::Failed,
                now,
            );
        };
        let (plan, local) = match self.outside_plan(o.tenant, call, &caller, &source, now) {
            Ok(p) => p,
            Err((status, reason)) => {
                return self.refuse_call(
                    txn,
                    req,
                    source,
                    &o,
                    status,
                    &reason,
                    Disposition::Failed,
                    now,
                );
            }
        };
        self.start_call(
            entry,
            o,
            Targets::Trunks(Box::new(plan)),
            &[local.ip()],
            now,
        );
    }

    /// The toll-fraud limits and the trunks of an outside call by `caller`: its plan and the
    /// local address facing the first usable trunk, or the status and reason refusing it.
    /// What relayed and anchored calls to outside numbers both go through.
    pub(crate) fn outside_plan(
        &mut self,
        tenant: i64,
        call: OutsideCall,
        caller: &ExtEntry,
        peer: &dyn std::fmt::Display,
        now: Now,
    ) -> Result<(OutsidePlan, SocketAddr), (u16, String)> {
        if !call.emergency
            && let Err(why) = self.fraud_check(tenant, caller, call.class, now)
        {
            self.counters.fraud_blocked += 1;
            warn!(alert = "toll-fraud guard", peer = %peer, caller = %caller.number, number = %call.number, reason = %why, "outside call refused");
            return Err((403, format!("Limit reached: {why}")));
        }
        let trunks: Vec<(i64, SocketAddr)> = call
            .trunks
            .iter()
            .filter_map(|n| self.snap.outside.trunk(tenant, n))
            .flat_map(|t| t.addrs.iter().take(ADDRS_PER_TRUNK).map(|a| (t.id, *a)))
            .collect();
        // The media faces the first usable trunk's segment.
        let first = trunks.iter().find_map(|(id, addr)| {
            let t = self.snap.outside.trunks.get(id)?;
            self.trunk_usable(t).ok()?;
            self.local_for(*addr)
        });
        let Some(local) = first else {
            warn!(caller = %caller.number, number = %call.number, route = %call.route, emergency = call.emergency, "no usable trunk");
            return Err((503, "No trunk available".into()));
        };
        if call.emergency {
            warn!(caller = %caller.number, number = %call.number, "emergency call");
        }
        let plan = OutsidePlan {
            call,
            trunks,
            next: 0,
            body: Bytes::new(),
            max_forwards: 70,
            tried: Vec::new(),
            auth: None,
            last_invite: None,
            attempt: None,
        };
        Ok((plan, local))
    }

    /// Sends the call to the next usable trunk of its plan; false when none is left.
    pub(crate) fn send_trunk_leg(&mut self, id: u64, now: Now) -> bool {
        let adv = self.cfg.advertise;
        loop {
            let Some(call) = self.b2bua.get_mut(id) else {
                return false;
            };
            let Some(plan) = call.outside.as_mut() else {
                return false;
            };
            let Some(&(tid, dest)) = plan.trunks.get(plan.next) else {
                return false;
            };
            plan.next += 1;
            let Some(t) = self.snap.outside.trunks.get(&tid).cloned() else {
                continue;
            };
            if let Err(why) = self.trunk_usable(&t) {
                debug!(call = id, trunk = %t.name, why, "trunk skipped");
                if let Some(p) = self.b2bua.get_mut(id).and_then(|c| c.outside.as_mut()) {
                    p.tried.push((t.name.clone(), 503));
                }
                continue;
            }
            let Some(local) = self.local_for(dest) else {
                continue;
            };
            let transport = transport_of(&t);
            let Some(call) = self.b2bua.get(id) else {
                return false;
            };
            let Some(plan) = call.outside.as_ref() else {
                return false;
            };
            // An anchored call (an application's caller) offers its own endpoint, already in
            // the plan; a relayed call's offer is rewritten for its relay session.
            let (session, body) = if call.anchor.is_some() {
                (None, plan.body.to_vec())
            } else {
                let Some(slot) = call.media.first() else {
                    return false;
                };
                let (session, b_port) = match slot.ports {
                    Some((_, b)) => (slot.id, b),
                    None => return false,
                };
                let relay = SocketAddr::new(nathelper::advertised_ip(adv, local), b_port.port());
                let Ok(body) = sdp::rewrite(&plan.body, relay) else {
                    return false;
                };
                (Some(session), body)
            };
            // Only the codecs the trunk takes, in its order.
            let body = match sdp::restrict_codecs(&body, &t.spec.codecs) {
                Ok(Some(b)) => b,
                Ok(None) | Err(_) => {
                    debug!(call = id, trunk = %t.name, "no codec in common with the trunk: skipped");
                    if let Some(p) = self.b2bua.get_mut(id).and_then(|c| c.outside.as_mut()) {
                        p.tried.push((t.name.clone(), 488));
                    }
                    continue;
                }
            };
            let Some(ruri) = trunk_uri(&t, Some(&plan.call.number)) else {
                continue;
            };
            let number = plan.call.number.clone();
            let cid = plan.call.caller_id.clone();
            let privacy = plan.call.privacy;
            let mf = plan.max_forwards;
            let domain = from_domain(&t);
            let account = if t.spec.username.is_empty() {
                cid.number.clone()
            } else {
                t.spec.username.clone()
            };
            let from_user = if !t.spec.from_user.is_empty() {
                t.spec.from_user.clone()
            } else if t.spec.identity == Identity::From && !cid.number.is_empty() {
                cid.number.clone()
            } else {
                account.clone()
            };
            let via = self.our_via(local, transport);
            let leg_call_id = self.new_call_id();
            let tag = self.new_tag();
            let mut inv = Request::new(Method::Invite, ruri);
            inv.headers.push(HeaderName::Via, via.to_string());
            inv.headers.push(HeaderName::MaxForwards, mf.to_string());
            let from = if privacy {
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_string()
            } else {
                crate::b2bua::display_addr(
                    &cid.name,
                    &format!("sip:{}@{domain}", escape_user(&from_user)),
                )
            };
            inv.headers
                .push(HeaderName::From, format!("{from};tag={tag}"));
            inv.headers.push(
                HeaderName::To,
                format!("<sip:{}@{domain}>", escape_user(&number)),
            );
            inv.headers.push(HeaderName::CallId, leg_call_id.as_str());
            inv.headers.push(HeaderName::CSeq, "1 INVITE");
            let contact = self.contact_uri(Some(&escape_user(&account)), local, transport);
            inv.headers
                .push(HeaderName::Contact, format!("<{contact}>"));
            let identity = if cid.number.is_empty() {
                None
            } else {
                Some(format!("<sip:{}@{domain}>", escape_user(&cid.number)))
            };
            match (t.spec.identity, identity) {
                (Identity::Pai, Some(id)) => inv
                    .headers
                    .push(HeaderName::from_bytes(b"P-Asserted-Identity"), id),
                (Identity::Ppi, Some(id)) => inv
                    .headers
                    .push(HeaderName::from_bytes(b"P-Preferred-Identity"), id),
                (Identity::From, Some(id)) if privacy => inv
                    .headers
                    .push(HeaderName::from_bytes(b"P-Asserted-Identity"), id),
                _ => {}
            }
            if privacy {
                inv.headers.push(HeaderName::from_bytes(b"Privacy"), "id");
            }
            if let Some(d) = self.diversion_header(id, &domain) {
                inv.headers.push(HeaderName::from_bytes(b"Diversion"), d);
            }
            inv.headers.push(HeaderName::Allow, ALLOW);
            inv.headers
                .push(HeaderName::UserAgent, self.cfg.user_agent.as_str());
            inv.set_body(&MediaType::sdp(), body);
            let target = Target {
                destination: dest,
                transport,
                local: Some(local),
            };
            let copy = inv.clone();
            let Some(txn) = self.send_request(inv, target, Owner::Call(id), now) else {
                continue;
            };
            info!(call = id, trunk = %t.name, %number, "outside call sent to trunk");
            let Some(call) = self.b2bua.get_mut(id) else {
                return false;
            };
            if let Some(plan) = call.outside.as_mut() {
                plan.auth = Some(ClientAuth::new(Account::new(
                    t.spec.auth_user(),
                    t.password.clone(),
                )));
                plan.last_invite = Some(copy);
                plan.attempt = Some((now.mono, false));
            }
            call.route.trunk = t.name.clone();
            let idx = call.legs.len();
            let mut leg = Leg::new(Side::B, leg_call_id.clone(), txn, target, local, tag);
            leg.session = session;
            leg.trunk = Some(tid);
            call.legs.push(leg);
            self.b2bua.by_call_id.insert(leg_call_id, (id, idx));
            return true;
        }
    }

    /// A trunk leg ended without an answer. Answers a challenge with the trunk's credentials
    /// or fails over to the next trunk when the status calls for it; true when it did either.
    pub(crate) fn trunk_leg_failed(
        &mut self,
        id: u64,
        i: usize,
        resp: Option<&Response>,
        status: u16,
        now: Now,
    ) -> bool {
        let Some(call) = self.b2bua.get(id) else {
            return false;
        };
        let Some(tid) = call.legs.get(i).and_then(|l| l.trunk) else {
            return false;
        };
        if call.bridge.is_some() {
            return false;
        }
        let name = self
            .snap
            .outside
            .trunks
            .get(&tid)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let mut auth_failed = false;
        if matches!(status, 401 | 407)
            && let Some(resp) = resp
        {
            if self.answer_trunk_challenge(id, i, resp, now) {
                return true;
            }
            auth_failed = true;
            warn!(call = id, trunk = %name, status, "the trunk refused our credentials");
        }
        let failover = status >= 500 || status == 408 || auth_failed;
        if let Some(call) = self.b2bua.get_mut(id) {
            call.legs[i].final_status = Some(status);
            if let Some(p) = call.outside.as_mut() {
                p.tried.push((name.clone(), status));
            }
        }
        if failover && self.send_trunk_leg(id, now) {
            self.counters.trunk_failovers += 1;
            info!(call = id, trunk = %name, status, "failing over to the next trunk");
            return true;
        }
        false
    }

    /// Re-sends a trunk leg's INVITE with credentials for the provider's challenge.
    fn answer_trunk_challenge(&mut self, id: u64, i: usize, resp: &Response, now: Now) -> bool {
        let Some(call) = self.b2bua.get(id) else {
            return false;
        };
        let leg = &call.legs[i];
        let (local, target) = (leg.local, leg.target);
        let Some(mut req) = call.outside.as_ref().and_then(|p| p.last_invite.clone()) else {
            return false;
        };
        let seq = req.cseq().map(|c| c.seq).unwrap_or(1);
        req.headers
            .set(HeaderName::CSeq, format!("{} INVITE", seq + 1));
        let via = self.our_via(local, target.transport);
        req.headers.set_top_via(&via);
        let cnonce = self.new_tag();
        let answered = self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.outside.as_mut())
            .and_then(|p| p.auth.as_mut())
            .map(|a| a.answer(resp, &mut req, &cnonce));
        if !matches!(answered, Some(Ok(()))) {
            return false;
        }
        let copy = req.clone();
        let Some(txn) = self.send_request(req, target, Owner::Call(id), now) else {
            return false;
        };
        if let Some(call) = self.b2bua.get_mut(id) {
            call.legs[i].txn = txn;
            if let Some(p) = call.outside.as_mut() {
                p.last_invite = Some(copy);
                p.attempt = Some((now.mono, true));
            }
        }
        true
    }

    /// A trunk answered the current attempt (a provisional response counts).
    pub(crate) fn trunk_leg_heard(&mut self, id: u64) {
        if let Some(p) = self.b2bua.get_mut(id).and_then(|c| c.outside.as_mut())
            && let Some((_, heard)) = p.attempt.as_mut()
        {
            *heard = true;
        }
    }

    /// Periodic: an attempt the trunk has not answered at all within [`TRUNK_SILENCE`] is
    /// given up and the call moves on (Kamailio's `fr_timer` for gateways): the caller should
    /// not wait out Timer B (32 s) for a dead trunk.
    pub(crate) fn check_trunk_attempts(&mut self, now: Now) {
        let due: Vec<(u64, usize)> = self
            .b2bua
            .calls
            .values()
            .filter(|c| c.bridge.is_none())
            .filter_map(|c| {
                let (at, heard) = c.outside.as_ref()?.attempt?;
                if heard || now.mono.duration_since(at) < TRUNK_SILENCE {
                    return None;
                }
                let i = c
                    .legs
                    .iter()
                    .rposition(|l| l.trunk.is_some() && l.final_status.is_none())?;
                Some((c.id, i))
            })
            .collect();
        for (id, i) in due {
            let txn = self.b2bua.get(id).map(|c| c.legs[i].txn);
            if let Some(p) = self.b2bua.get_mut(id).and_then(|c| c.outside.as_mut()) {
                p.attempt = None;
            }
            if let Some(t) = txn {
                // Stops the retransmissions (a CANCEL goes out if it ever answers).
                let _ = self.layer.cancel(t, now.mono);
            }
            warn!(
                call = id,
                "trunk did not answer the INVITE: trying the next one"
            );
            if !self.trunk_leg_failed(id, i, None, 408, now) {
                if let Some(c) = self.b2bua.get_mut(id) {
                    c.legs[i].final_status = Some(408);
                }
                self.call_legs_failed(id, now);
            }
        }
    }

    /// No trunk could take the call at all.
    pub(crate) fn trunks_exhausted(&mut self, id: u64, now: Now) {
        if self.hunt_failed(id, &[503], now) {
            return;
        }
        let ending = crate::b2bua::Ending {
            disposition: Disposition::Failed,
            hangup_by: crate::db::HangupBy::System,
            cause: "503 No trunk available".into(),
        };
        self.finish_call(id, ending, Some(503), now);
    }

    /// Counts outbound calls made before a restart (from the call records) against the
    /// toll-fraud limits: starts within the last hour, and today's international seconds (the
    /// class found by routing the dialled number again with today's configuration).
    pub fn seed_outbound_history(&mut self, calls: &[OutboundHistory], now: Now) {
        let today = day_of(now.wall);
        let mut seeded = 0usize;
        // Oldest first: each window keeps the latest starts when it is full.
        let mut order: Vec<&OutboundHistory> = calls.iter().collect();
        order.sort_by_key(|c| c.start);
        for c in order {
            let recent = now.wall.duration_since(c.start).unwrap_or_default() < HOUR;
            let Some(ext) = self.snap.extensions.get(&(c.tenant, c.caller.clone())) else {
                continue;
            };
            let per_hour = ext.limits.max_per_hour;
            let tenant_per_hour = self.snap.outside.policy(c.tenant).max_per_hour;
            if recent {
                self.dispatcher.guard.record_start(
                    (c.tenant, Some(c.caller.clone())),
                    per_hour,
                    c.start,
                );
                self.dispatcher
                    .guard
                    .record_start((c.tenant, None), tenant_per_hour, c.start);
                seeded += 1;
            }
            if day_of(c.start) == today && c.billsec > 0 {
                let decision = dialplan::route(
                    &dialplan::RouteRequest {
                        tenant: c.tenant,
                        caller: &c.caller,
                        digits: &c.dialled,
                        at: c.start,
                    },
                    &self.snap,
                );
                if let dialplan::Decision::Outside { call, .. } = decision {
                    self.outside_call_ended(c.tenant, &c.caller, call.class, c.billsec, now);
                }
            }
        }
        if seeded > 0 {
            info!(
                calls = seeded,
                "outside calls of the last hour counted against the limits"
            );
        }
    }

    /// An outside call started (counted until [`Self::outside_call_gone`]).
    pub(crate) fn outside_call_counted(&mut self, tenant: i64, caller: &str) {
        for key in [(tenant, Some(caller.to_string())), (tenant, None)] {
            *self.dispatcher.active.entry(key).or_default() += 1;
        }
    }

    /// An outside call was removed.
    pub(crate) fn outside_call_gone(&mut self, tenant: i64, caller: &str) {
        for key in [(tenant, Some(caller.to_string())), (tenant, None)] {
            if let Some(n) = self.dispatcher.active.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.dispatcher.active.remove(&key);
                }
            }
        }
    }

    /// An outside call ended: international seconds count against today's allowance.
    pub(crate) fn outside_call_ended(
        &mut self,
        tenant: i64,
        caller: &str,
        class: CallClass,
        billsec: u64,
        now: Now,
    ) {
        if class != CallClass::International || billsec == 0 {
            return;
        }
        self.dispatcher
            .guard
            .add_intl((tenant, Some(caller.to_string())), billsec, now.wall);
        self.dispatcher
            .guard
            .add_intl((tenant, None), billsec, now.wall);
    }
}
