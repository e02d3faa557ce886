//! `b2bua`: calls as legs joined by bridges.
//!
//! A [`Call`] holds legs: leg 0 is the caller's (side A, we are its UAS), the others are the
//! forks towards the callee's contacts (side B, we are their UAC). Each leg is a dialog plus a
//! media endpoint (a relay session's side). Forking, answer, cancel, hold and hang-up are
//! operations on legs; the first fork to answer is joined to leg 0 by the call's [`Bridge`],
//! and every in-dialog request is forwarded to the leg's peer across the bridge. Transfer,
//! park and conference later move legs between bridges.
//!
//! Media: a relay session per network segment the forks use (almost always one), so each
//! fork's SDP advertises a socket bound on that fork's own segment.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use sip::dialog::Dialog;
use sip::transaction::{Target, TransactionId, Transport};
use sip::{HeaderName, MediaType, Message, Method, Request, Response};
use tracing::{debug, info, warn};

use crate::config::ExtEntry;
use crate::control::{CallState, CallSummary};
use crate::db::{CallRoute, Direction, Disposition, HangupBy};
use crate::dialplan::{self, Decision, Destination, RouteRequest};
use crate::media::{MediaCommand, SessionId, Side};
use crate::registrar::uri_domain;
use crate::usrloc::Binding;
use crate::{ALLOW, Engine, Now, Owner, Parked, nathelper, sdp};

/// A new INVITE and where it came from: server transaction, request, source, local address,
/// transport.
pub(crate) type Entry = (TransactionId, Request, SocketAddr, SocketAddr, Transport);

/// Index of a leg within its call.
pub type LegIdx = usize;

/// The caller's leg.
pub const A_LEG: LegIdx = 0;

/// One party of a call: a dialog plus a media endpoint.
pub(crate) struct Leg {
    pub side: Side,
    /// SIP Call-ID of this leg's dialog.
    pub call_id: String,
    /// The INVITE transaction (server for side A, client for side B).
    pub txn: TransactionId,
    /// Where requests to this leg go.
    pub target: Target,
    /// Our address on this leg's segment.
    pub local: SocketAddr,
    /// Our tag in this leg's dialog.
    pub tag: String,
    pub dialog: Option<Dialog>,
    /// Final status of the INVITE (B legs).
    pub final_status: Option<u16>,
    /// The ACK for the 2xx, serialised, to resend when the 2xx is retransmitted (B legs).
    pub ack: Option<Bytes>,
    /// The relay session whose `side` endpoint faces this leg.
    pub session: Option<SessionId>,
    /// The trunk this leg goes to (outside calls).
    pub trunk: Option<i64>,
    /// The last SDP this leg's party sent (an offer or an answer), kept so a transfer can
    /// offer this party's media to a new peer.
    pub sdp: Option<Bytes>,
}

impl Leg {
    /// The caller's leg: we are the UAS of its INVITE, which came from `source` to `local`.
    pub(crate) fn caller(
        call_id: String,
        txn: TransactionId,
        (source, local, transport): (SocketAddr, SocketAddr, Transport),
        tag: String,
    ) -> Leg {
        let target = Target {
            destination: source,
            transport,
            local: Some(local),
        };
        Leg::new(Side::A, call_id, txn, target, local, tag)
    }

    /// A leg with no dialog, media or answer yet.
    pub(crate) fn new(
        side: Side,
        call_id: String,
        txn: TransactionId,
        target: Target,
        local: SocketAddr,
        tag: String,
    ) -> Leg {
        Leg {
            side,
            call_id,
            txn,
            target,
            local,
            tag,
            dialog: None,
            final_status: None,
            ack: None,
            session: None,
            trunk: None,
            sdp: None,
        }
    }

    fn transport(&self) -> Transport {
        self.target.transport
    }
}

/// A party's SDP kept on its leg, in its own allocation: a body parsed from a datagram is a
/// slice of the whole message, and keeping the slice would keep the message alive for the
/// call's life (about 1 KiB per leg).
pub(crate) fn own_sdp(body: &Bytes) -> Bytes {
    Bytes::copy_from_slice(body)
}

/// Two legs joined: media flows through `session`, in-dialog requests cross over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bridge {
    pub a: LegIdx,
    pub b: LegIdx,
    pub session: SessionId,
}

impl Bridge {
    /// The leg across the bridge from `leg`.
    pub fn peer(&self, leg: LegIdx) -> Option<LegIdx> {
        if leg == self.a {
            Some(self.b)
        } else if leg == self.b {
            Some(self.a)
        } else {
            None
        }
    }
}

/// A relay session of a call and where its sockets listen.
pub(crate) struct MediaSlot {
    pub id: SessionId,
    /// The segment address of side B's socket.
    pub b_ip: IpAddr,
    /// (side A, side B) local addresses once allocated.
    pub ports: Option<(SocketAddr, SocketAddr)>,
    pub failed: bool,
}

/// A request forwarded across the bridge, waiting for its response.
struct Forwarded {
    server_txn: TransactionId,
    request: Request,
    /// The leg it came from.
    from: LegIdx,
}

/// Where a call's B legs go.
pub(crate) enum Targets {
    /// An extension's registered contacts, rung at once.
    Contacts(Vec<Binding>),
    /// Trunks, tried in turn.
    Trunks(Box<crate::dispatcher::OutsidePlan>),
}

/// What a call needs until its media sessions are open and its forks can be sent.
pub(crate) struct Setup {
    invite: Request,
    targets: Targets,
    offer: sdp::Summary,
}

/// Who is calling, as the request's entry point decided it.
pub(crate) struct Origin {
    pub tenant: i64,
    /// Calling number (extension, or the outside caller's number).
    pub caller: String,
    pub caller_name: String,
    /// SIP Call-ID of the caller's leg.
    pub call_id: String,
    /// Dialled digits (inbound: the DID).
    pub digits: String,
    /// What the record keeps about the route.
    pub route: CallRoute,
}

/// A call.
pub(crate) struct Call {
    pub id: u64,
    pub tenant_id: i64,
    pub caller: String,
    pub caller_name: String,
    pub callee: String,
    pub legs: Vec<Leg>,
    pub bridge: Option<Bridge>,
    pub media: Vec<MediaSlot>,
    pub state: CallState,
    pub start: SystemTime,
    pub start_mono: Instant,
    pub answer: Option<SystemTime>,
    pub no_answer_at: Instant,
    pub codec: String,
    sent_180: bool,
    /// Boxed: only a call waiting for its media sessions has one.
    setup: Option<Box<Setup>>,
    forwarded: HashMap<TransactionId, Forwarded>,
    /// Direction, trunk, DID, numbers (for the record).
    pub route: CallRoute,
    /// Trunks still to try (outside calls).
    pub outside: Option<Box<crate::dispatcher::OutsidePlan>>,
    /// Media terminated by endpoints (voice applications, decoding bridges) instead of the
    /// relay.
    pub anchor: Option<Box<crate::anchor::Anchor>>,
    /// The contacts rung, kept to ring them again with transcoding if none takes the codecs.
    pub rung: Vec<Binding>,
    /// Music on hold for a relayed call's held party.
    pub moh: Option<Box<crate::moh::Moh>>,
    /// Ring group / forwarding plan this call is a step of.
    pub hunt: Option<Box<crate::hunt::Hunt>>,
    /// A transfer in progress, and legs transferred away ([`crate::transfer`]).
    pub xfer: Option<Box<crate::transfer::Xfer>>,
    /// Auto-answer headers the forks carry (intercom, [`crate::page`]).
    pub auto_answer: Option<crate::page::AutoAnswer>,
    /// One-way intercom: the called side is muted in the relay once it answers
    /// ([`crate::tenant_settings`]).
    pub one_way: bool,
    /// A ring group or forwarding plan run for an anchored caller (an IVR choice).
    pub ivr_goto: Option<Box<crate::anchor::GotoRun>>,
    /// Recording state once answered with a recording policy ([`crate::rec_ctl`]).
    pub rec: Option<Box<crate::rec_ctl::RecCtl>>,
}

impl Call {
    /// A new call in the ringing state with only the caller's leg.
    pub(crate) fn new(
        id: u64,
        o: Origin,
        a_leg: Leg,
        media: Vec<MediaSlot>,
        now: Now,
        no_answer: std::time::Duration,
    ) -> Call {
        Call {
            id,
            tenant_id: o.tenant,
            caller: o.caller,
            caller_name: o.caller_name,
            callee: o.digits,
            legs: vec![a_leg],
            bridge: None,
            media,
            state: CallState::Ringing,
            start: now.wall,
            start_mono: now.mono,
            answer: None,
            no_answer_at: now.mono + no_answer,
            codec: String::new(),
            sent_180: false,
            setup: None,
            forwarded: HashMap::new(),
            route: o.route,
            outside: None,
            anchor: None,
            rung: Vec::new(),
            moh: None,
            hunt: None,
            xfer: None,
            auto_answer: None,
            one_way: false,
            ivr_goto: None,
            rec: None,
        }
    }

    fn slot(&self, id: SessionId) -> Option<&MediaSlot> {
        self.media.iter().find(|m| m.id == id)
    }

    /// The local relay address of `session`'s `side`.
    pub(crate) fn relay_port(&self, session: Option<SessionId>, side: Side) -> Option<SocketAddr> {
        let (a, b) = self.slot(session?)?.ports?;
        Some(match side {
            Side::A => a,
            Side::B => b,
        })
    }

    /// Joins fork `i` to the caller on `session` (answered now): returns the other forks'
    /// INVITEs to cancel and the spare relay sessions to close (already dropped from `media`).
    pub(crate) fn bridge_answered(
        &mut self,
        i: LegIdx,
        session: SessionId,
        now: Now,
    ) -> (Vec<TransactionId>, Vec<SessionId>) {
        self.bridge = Some(Bridge {
            a: A_LEG,
            b: i,
            session,
        });
        self.state = CallState::Up;
        self.answer = Some(now.wall);
        let others = self
            .legs
            .iter()
            .enumerate()
            .filter(|(j, l)| *j != i && l.side == Side::B && l.final_status.is_none())
            .map(|(_, l)| l.txn)
            .collect();
        let spare = self
            .media
            .iter()
            .filter(|m| m.id != session && m.ports.is_some())
            .map(|m| m.id)
            .collect();
        self.media.retain(|m| m.id == session);
        (others, spare)
    }

    fn summary(&self, now: Instant) -> CallSummary {
        CallSummary {
            id: self.id,
            call_id: self.legs[A_LEG].call_id.clone(),
            caller: self.caller.clone(),
            callee: self.callee.clone(),
            state: self.state,
            duration_s: now.duration_since(self.start_mono).as_secs(),
            codec: self.codec.clone(),
            tenant_id: self.tenant_id,
            parties: Vec::new(),
        }
    }
}

/// All calls, with the indexes that find them without scanning.
#[derive(Default)]
pub(crate) struct B2bua {
    /// Boxed: spare table capacity then costs a pointer per slot, not a call. Changes are
    /// noted for BLF ([`crate::blf_calls`]).
    pub(crate) calls: crate::blf_calls::CallTable,
    next_id: u64,
    /// SIP Call-ID of any leg -> (call, leg).
    pub(crate) by_call_id: HashMap<String, (u64, LegIdx)>,
    /// The caller's INVITE server transaction -> call (CANCEL, missing ACK).
    by_server_txn: HashMap<TransactionId, u64>,
    /// Relay session -> call.
    by_session: HashMap<SessionId, u64>,
    next_session: u64,
    /// Terminating endpoint -> call.
    pub(crate) by_endpoint: HashMap<crate::media::EndpointId, u64>,
    next_endpoint: u64,
}

impl B2bua {
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.calls.contains_key(&id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.calls.keys().copied().collect()
    }

    pub fn summaries(&self, now: Instant) -> Vec<CallSummary> {
        self.calls.values().map(|c| c.summary(now)).collect()
    }

    pub fn call_of_server_txn(&self, txn: TransactionId) -> Option<u64> {
        self.by_server_txn.get(&txn).copied()
    }

    pub fn forget_server_txn(&mut self, txn: TransactionId) {
        self.by_server_txn.remove(&txn);
    }

    /// The call whose bridge carries `session`.
    pub fn bridged_call_of(&self, session: SessionId) -> Option<u64> {
        let id = *self.by_session.get(&session)?;
        let call = self.calls.get(&id)?;
        (call.bridge?.session == session).then_some(id)
    }

    fn call_of_session(&self, session: SessionId) -> Option<u64> {
        self.by_session.get(&session).copied()
    }

    /// A new endpoint id owned by `call`.
    pub(crate) fn new_endpoint(&mut self, call: u64) -> crate::media::EndpointId {
        self.next_endpoint += 1;
        let e = crate::media::EndpointId(self.next_endpoint);
        self.by_endpoint.insert(e, call);
        e
    }

    /// A fresh call id.
    pub(crate) fn next_call_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Registers a new call and its caller's indexes.
    pub(crate) fn insert(&mut self, call: Box<Call>) {
        let id = call.id;
        self.by_call_id
            .insert(call.legs[A_LEG].call_id.clone(), (id, A_LEG));
        self.by_server_txn.insert(call.legs[A_LEG].txn, id);
        self.calls.insert(id, call);
    }

    pub(crate) fn new_session(&mut self, call: u64) -> SessionId {
        self.next_session += 1;
        let s = SessionId(self.next_session);
        self.by_session.insert(s, call);
        s
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Call> {
        self.calls.get(&id).map(|b| &**b)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Call> {
        self.calls.get_mut(&id).map(|b| &mut **b)
    }

    /// Removes a call and its index entries.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Box<Call>> {
        let call = self.calls.remove(&id)?;
        for l in &call.legs {
            self.by_call_id.remove(&l.call_id);
        }
        self.by_server_txn.remove(&call.legs[A_LEG].txn);
        Some(call)
    }

    pub(crate) fn forget_session(&mut self, s: SessionId) {
        self.by_session.remove(&s);
    }
}

/// The status for a caller whose forks all failed with `statuses` (the most telling one), and
/// how the call ended.
pub(crate) fn fork_failure(statuses: &[u16], outside: bool) -> (u16, Ending) {
    let status = [600u16, 603, 486]
        .into_iter()
        .find(|s| statuses.contains(s))
        .or_else(|| {
            statuses
                .iter()
                .copied()
                .filter(|s| (400..500).contains(s) && *s != 408 && *s != 487)
                .min()
        })
        .unwrap_or(if outside { 503 } else { 480 });
    let disposition = if matches!(status, 486 | 600 | 603) {
        Disposition::Busy
    } else {
        Disposition::Failed
    };
    let reason = sip::reason_phrase(status);
    let ending = Ending {
        disposition,
        hangup_by: HangupBy::Callee,
        cause: format!("{status} {reason}"),
    };
    (status, ending)
}

/// How a call ended.
pub(crate) struct Ending {
    pub disposition: Disposition,
    pub hangup_by: HangupBy,
    pub cause: String,
}

/// `"Name" <uri>` with the name quoted and escaped, or `<uri>`.
pub(crate) fn display_addr(name: &str, uri: &str) -> String {
    if name.is_empty() {
        format!("<{uri}>")
    } else {
        let mut esc = String::with_capacity(name.len() + 2);
        for c in name.chars() {
            if c == '"' || c == '\\' {
                esc.push('\\');
            }
            esc.push(c);
        }
        format!("\"{esc}\" <{uri}>")
    }
}

impl Engine {
    // ------------------------------------------------------------------------------------
    // New calls

    pub(crate) fn on_invite(
        &mut self,
        txn: TransactionId,
        req: Request,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Now,
    ) {
        if req.max_forwards() == Some(0) {
            return self.respond(txn, Response::for_request(&req, 483, None), now);
        }
        let Some(from) = req.from() else {
            return self.respond(
                txn,
                Response::for_request(&req, 400, Some("Missing From")),
                now,
            );
        };
        // A provider's request: no digest challenge; the trunk's tenant and its DID decide.
        if let Some(trunk) = self.trunk_for_source(source.ip(), &req) {
            self.counters.trunk_invites += 1;
            return self.trunk_invite(trunk, (txn, req, source, local, transport), now);
        }
        if !req.headers.contains(&HeaderName::ProxyAuthorization)
            && !self.usrloc.knows_ip(source.ip())
        {
            self.counters.untrusted_invites += 1;
            let user = req.uri.user().unwrap_or_default();
            let log = self.rejected_log.event(source.ip(), now.mono, || {
                format!("INVITE to {user} from an unknown address")
            });
            if log.is_log() {
                info!(peer = %source, to = %user, "INVITE from an address that is no trunk and no registered phone: challenged");
            }
        }
        let from_user = from.uri.user().unwrap_or_default();
        let domain = uri_domain(&from.uri).unwrap_or_default();
        let Some(tenant) = self.snap.tenants.for_domain(&domain) else {
            return self.respond(
                txn,
                Response::for_request(&req, 403, Some("Unknown domain")),
                now,
            );
        };
        let digits = req
            .uri
            .user()
            .map(|u| u.split(';').next().unwrap_or("").to_string())
            .unwrap_or_default();
        // Look the callee up before authenticating: a parked request is authenticated on its
        // second pass only, so its nonce count is used once.
        let callee_key = (tenant, digits.clone());
        if !digits.is_empty()
            && req.headers.contains(&HeaderName::ProxyAuthorization)
            && !self.snap.extensions.contains_key(&callee_key)
            && !self.auth.absent.contains(&callee_key)
            && !dialplan::is_outside_number(tenant, &digits, &self.snap)
        {
            let parked = Parked {
                txn,
                req,
                source,
                local,
                transport,
            };
            return self.park_for_lookup(callee_key, parked, now);
        }
        let Some((caller, req)) = self.authorize(
            txn,
            req,
            (source, local, transport),
            tenant,
            &from_user,
            &HeaderName::ProxyAuthorization,
            now,
        ) else {
            return;
        };
        if req.headers.contains(&HeaderName::Replaces) {
            let entry = (txn, req, source, local, transport);
            return self.invite_replaces(entry, tenant, &caller, now);
        }
        let call_id = req.call_id().unwrap_or_default().to_string();
        if self.b2bua.by_call_id.contains_key(&call_id) {
            // Same Call-ID, new branch: a loop or a confused phone.
            return self.respond(txn, Response::for_request(&req, 482, None), now);
        }
        let caller_name = if caller.display_name.is_empty() {
            from.display_name.clone().unwrap_or_default()
        } else {
            caller.display_name.clone()
        };
        let decision = dialplan::route(
            &RouteRequest {
                tenant,
                caller: &caller.number,
                digits: &digits,
                at: now.wall,
            },
            &self.snap,
        );
        let origin = Origin {
            tenant,
            caller: caller.number.clone(),
            caller_name,
            call_id,
            digits: digits.clone(),
            route: CallRoute {
                dialled: digits,
                ..CallRoute::default()
            },
        };
        let entry = (txn, req, source, local, transport);
        self.route_call(entry, origin, decision, Some(caller), now);
    }

    /// Answers a call that goes nowhere, with a record of the attempt.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refuse_call(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        o: &Origin,
        status: u16,
        reason: &str,
        disposition: Disposition,
        now: Now,
    ) {
        info!(peer = %source, caller = %o.caller, callee = %o.digits, status, reason, "call refused");
        let resp = Response::for_request(req, status, Some(reason));
        let mut cdr = self.refusal_record(
            o.tenant,
            &o.call_id,
            &o.caller,
            &o.caller_name,
            &o.digits,
            status,
            reason,
            disposition,
            now,
        );
        cdr.route = o.route.clone();
        self.write_cdr(cdr, Some((txn, resp)));
    }

    /// Acts on the dialplan's decision for a new call.
    pub(crate) fn route_call(
        &mut self,
        entry: Entry,
        mut o: Origin,
        decision: Decision,
        caller: Option<ExtEntry>,
        now: Now,
    ) {
        let (txn, req, source, _, _) = &entry;
        let (txn, source) = (*txn, *source);
        let target = match decision {
            Decision::Reject { status, reason } => {
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
            Decision::Route {
                destination: Destination::Ext(number),
                ..
            } => match self.snap.extensions.get(&(o.tenant, number)) {
                Some(e) => e.clone(),
                None => {
                    return self.refuse_call(
                        txn,
                        req,
                        source,
                        &o,
                        404,
                        "Not Found",
                        Disposition::Failed,
                        now,
                    );
                }
            },
            Decision::Outside { call, .. } => {
                if o.route.direction == Direction::Inbound {
                    // Never reached: inbound routes cannot name outbound routes.
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
                }
                o.route.direction = Direction::Outbound;
                o.route.sent_number = call.number.clone();
                o.route.caller_id = call.caller_id.number.clone();
                return self.outside_call(entry, o, call, caller, now);
            }
            Decision::Route {
                destination:
                    destination @ (Destination::Ivr(_)
                    | Destination::Conf(_)
                    | Destination::Vm(_)
                    | Destination::VmOwn
                    | Destination::VmMain),
                ..
            } => return self.start_app(entry, o, destination, now),
            Decision::Route {
                destination: Destination::Group(name),
                ..
            } => return self.route_group(entry, o, &name, None, now),
            Decision::Route {
                destination: Destination::ParkSlot(slot),
                ..
            } => return self.park_retrieve(entry, o, &slot, now),
            Decision::Feature { feature, .. } => {
                return self.feature_call(entry, o, feature, caller, now);
            }
            Decision::Route {
                destination: Destination::Page(name),
                ..
            } => return self.start_page(entry, o, &name, caller, now),
            Decision::Route { destination, .. } => {
                // A kind this node cannot serve yet.
                debug!(%destination, "destination not available");
                return self.refuse_call(
                    txn,
                    req,
                    source,
                    &o,
                    503,
                    "Destination Not Available",
                    Disposition::Failed,
                    now,
                );
            }
        };
        if self.hunt_takes_ext(&target) {
            return self.route_ext(entry, o, target, None, now);
        }
        let bindings: Vec<Binding> = self
            .usrloc
            .get(target.id)
            .iter()
            .filter(|b| b.expires_at > now.wall && b.received != source)
            .cloned()
            .collect();
        if bindings.is_empty() {
            return self.refuse_call(
                txn,
                req,
                source,
                &o,
                480,
                "Temporarily Unavailable",
                Disposition::Failed,
                now,
            );
        }
        let segments: Vec<IpAddr> = bindings.iter().map(|b| b.local.ip()).collect();
        self.start_call(entry, o, Targets::Contacts(bindings), &segments, now);
    }

    /// Creates the call, answers 100 and opens one relay session per segment the B legs use;
    /// the legs go out once the sessions are open.
    pub(crate) fn start_call(
        &mut self,
        (txn, req, source, local, transport): Entry,
        o: Origin,
        targets: Targets,
        segments: &[IpAddr],
        now: Now,
    ) {
        // The caller's offer (late offer, an INVITE without SDP, is not supported yet).
        if req.body.is_empty() {
            return self.refuse_call(
                txn,
                &req,
                source,
                &o,
                488,
                "SDP offer required",
                Disposition::Failed,
                now,
            );
        }
        let offer = match sdp::summarize(&req.body) {
            Ok(s) => s,
            Err(e) => {
                info!(peer = %source, error = %e, "unusable SDP offer");
                let r = Response::for_request(&req, 488, Some("Unusable SDP"));
                return self.respond(txn, r, now);
            }
        };
        self.b2bua.next_id += 1;
        let id = self.b2bua.next_id;
        let a_tag = self.new_tag();
        let call_id = o.call_id.clone();
        let mut a_leg = Leg::caller(call_id.clone(), txn, (source, local, transport), a_tag);
        a_leg.sdp = Some(own_sdp(&req.body));
        // One relay session per segment the B legs reach the callee on.
        let mut media = Vec::new();
        for ip in segments {
            if !media.iter().any(|m: &MediaSlot| m.b_ip == *ip) {
                let sid = self.b2bua.new_session(id);
                media.push(MediaSlot {
                    id: sid,
                    b_ip: *ip,
                    ports: None,
                    failed: false,
                });
            }
        }
        media.shrink_to_fit(); // kept for the call's life; usually one segment
        let call = Call::new(id, o, a_leg, media, now, self.snap.settings.no_answer);
        info!(call = id, %call_id, caller = %call.caller, callee = %call.callee, direction = ?call.route.direction, "call started");
        // Tell the caller we are on it (the transaction layer would after 100 ms anyway).
        self.respond(txn, Response::for_request(&req, 100, None), now);
        let allocs: Vec<(SessionId, IpAddr)> = call.media.iter().map(|m| (m.id, m.b_ip)).collect();
        self.b2bua.by_call_id.insert(call_id.clone(), (id, A_LEG));
        self.b2bua.by_server_txn.insert(txn, id);
        let mut call = Box::new(call);
        call.setup = Some(Box::new(Setup {
            invite: req,
            targets,
            offer,
        }));
        self.b2bua.calls.insert(id, call);
        for (session, b_ip) in allocs {
            self.media(MediaCommand::Allocate {
                session,
                call_id: call_id.clone(),
                a_ip: local.ip(),
                b_ip,
            });
        }
    }

    /// A relay session of a call opened (or could not be opened). Once every session of the
    /// call has answered, the forks go out.
    pub(crate) fn media_allocated(
        &mut self,
        session: SessionId,
        result: Result<(SocketAddr, SocketAddr), ()>,
        now: Now,
    ) {
        let Some(id) = self.b2bua.call_of_session(session) else {
            // The call ended meanwhile: give the ports back.
            if result.is_ok() {
                self.media(MediaCommand::Close { session });
            }
            return;
        };
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        if let Some(m) = call.media.iter_mut().find(|m| m.id == session) {
            match result {
                Ok(p) => m.ports = Some(p),
                Err(()) => m.failed = true,
            }
        }
        if call.media.iter().any(|m| m.ports.is_none() && !m.failed) {
            return;
        }
        let Some(setup) = call.setup.take() else {
            return;
        };
        self.send_forks(id, *setup, now);
    }

    fn send_forks(&mut self, id: u64, setup: Setup, now: Now) {
        let Setup {
            invite,
            targets,
            offer,
        } = setup;
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let open: Vec<(SessionId, IpAddr, SocketAddr)> = call
            .media
            .iter()
            .filter_map(|m| m.ports.map(|(_, b)| (m.id, m.b_ip, b)))
            .collect();
        if open.is_empty() {
            let r = Response::for_request(&invite, 503, Some("No media ports"));
            let txn = call.legs[A_LEG].txn;
            self.respond(txn, r, now);
            self.drop_call(id);
            return;
        }
        let caller = call.caller.clone();
        let caller_name = call.caller_name.clone();
        let callee = call.callee.clone();
        for (session, _, _) in &open {
            if let Some(rtp) = offer.rtp {
                self.media(MediaCommand::SetRemote {
                    session: *session,
                    side: Side::A,
                    rtp,
                    rtcp: offer.rtcp,
                });
            }
            for (pt, _, hz) in &offer.codecs {
                for side in [Side::A, Side::B] {
                    self.media(MediaCommand::SetClockRate {
                        session: *session,
                        side,
                        payload_type: *pt,
                        hz: *hz,
                    });
                }
            }
        }
        let mf = invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let bindings = match targets {
            Targets::Contacts(b) => b,
            Targets::Trunks(mut plan) => {
                plan.body = invite.body.clone();
                plan.max_forwards = mf;
                let Some(call) = self.b2bua.get_mut(id) else {
                    return;
                };
                call.outside = Some(plan);
                let (tenant, caller) = (call.tenant_id, call.caller.clone());
                self.outside_call_counted(tenant, &caller);
                if !self.send_trunk_leg(id, now) {
                    self.trunks_exhausted(id, now);
                }
                return;
            }
        };
        let mut legs = Vec::new();
        for b in &bindings {
            let Some((session, _, b_port)) = open.iter().find(|(_, ip, _)| *ip == b.local.ip())
            else {
                continue; // this segment's session could not be opened
            };
            let relay = SocketAddr::new(
                nathelper::advertised_ip(self.cfg.advertise, b.local),
                b_port.port(),
            );
            let Ok(body) = sdp::rewrite(&invite.body, relay) else {
                continue;
            };
            let who = (caller.as_str(), caller_name.as_str(), callee.as_str());
            if let Some(mut leg) = self.send_fork(id, b, who, mf, body, now) {
                leg.session = Some(*session);
                legs.push(leg);
            }
        }
        if legs.is_empty() {
            let r = Response::for_request(&invite, 480, None);
            let txn = self.b2bua.get(id).map(|c| c.legs[A_LEG].txn);
            if let Some(txn) = txn {
                self.respond(txn, r, now);
            }
            self.drop_call(id);
            return;
        }
        if let Some(call) = self.b2bua.calls.get_mut(&id) {
            // Kept for the call's life: no spare capacity (a collected Vec starts at 4).
            let mut bindings = bindings;
            bindings.shrink_to_fit();
            call.rung = bindings;
            // A leg is ~1 KiB: room for exactly these forks, not the doubling default.
            call.legs.reserve_exact(legs.len());
            let first = call.legs.len();
            for (i, l) in legs.into_iter().enumerate() {
                self.b2bua
                    .by_call_id
                    .insert(l.call_id.clone(), (id, first + i));
                call.legs.push(l);
            }
        }
    }

    /// Sends one fork's INVITE to a registered contact: `who` is (caller number, caller name,
    /// callee number), `body` the SDP offer. The leg has no media yet.
    pub(crate) fn send_fork(
        &mut self,
        id: u64,
        b: &Binding,
        who: (&str, &str, &str),
        mf: u32,
        body: Vec<u8>,
        now: Now,
    ) -> Option<Leg> {
        let aa = self.b2bua.get(id).and_then(|c| c.auto_answer);
        let (inv, leg_call_id, tag) = self.fork_request(b, who, mf, body, aa);
        let t = self.send_request(inv, b.target(), Owner::Call(id), now)?;
        Some(Leg::new(Side::B, leg_call_id, t, b.target(), b.local, tag))
    }

    /// A fork's INVITE to a registered contact (see [`Engine::send_fork`]) with the
    /// auto-answer headers of `aa`, its new Call-ID and our tag.
    pub(crate) fn fork_request(
        &mut self,
        b: &Binding,
        (caller, caller_name, callee): (&str, &str, &str),
        mf: u32,
        body: Vec<u8>,
        aa: Option<crate::page::AutoAnswer>,
    ) -> (Request, String, String) {
        let via = self.our_via(b.local, b.transport);
        let leg_call_id = self.new_call_id();
        let tag = self.new_tag();
        let mut inv = Request::new(Method::Invite, b.contact.clone());
        inv.headers.push(HeaderName::Via, via.to_string());
        inv.headers.push(HeaderName::MaxForwards, mf.to_string());
        let from_hdr = display_addr(caller_name, &format!("sip:{caller}@{}", b.domain()));
        inv.headers
            .push(HeaderName::From, format!("{from_hdr};tag={tag}"));
        inv.headers
            .push(HeaderName::To, format!("<sip:{callee}@{}>", b.domain()));
        inv.headers.push(HeaderName::CallId, leg_call_id.as_str());
        inv.headers.push(HeaderName::CSeq, "1 INVITE");
        let contact = self.contact_uri(Some(caller), b.local, b.transport);
        inv.headers
            .push(HeaderName::Contact, format!("<{contact}>"));
        inv.headers.push(HeaderName::Allow, ALLOW);
        inv.headers
            .push(HeaderName::UserAgent, self.cfg.user_agent.as_str());
        for (name, value) in aa.map(|a| a.headers(b.domain())).unwrap_or_default() {
            inv.headers.push(name, value);
        }
        inv.set_body(&MediaType::sdp(), Bytes::from(body));
        (inv, leg_call_id, tag)
    }

    /// Removes a call that never got going (no CDR: the caller was answered with an error).
    pub(crate) fn drop_call(&mut self, id: u64) {
        if let Some(call) = self.b2bua.remove(id) {
            if let Some(anchor) = &call.anchor {
                for ep in anchor.endpoints() {
                    self.b2bua.by_endpoint.remove(&ep);
                    self.media(MediaCommand::CloseEndpoint { endpoint: ep });
                }
            }
            if call.outside.is_some() {
                self.outside_call_gone(call.tenant_id, &call.caller);
            }
            for m in &call.media {
                self.b2bua.forget_session(m.id);
                if m.ports.is_some() {
                    self.media(MediaCommand::Close { session: m.id });
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Responses from the callee side

    /// A response for one of a call's client transactions.
    pub(crate) fn call_response(&mut self, id: u64, txn: TransactionId, resp: Response, now: Now) {
        if self.transfer_response(id, txn, &resp, now) {
            return;
        }
        if self.anchored_reinvite_response(id, txn, &resp, now) {
            return;
        }
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        if let Some(i) = call
            .legs
            .iter()
            .position(|l| l.side == Side::B && l.txn == txn)
        {
            self.leg_response(id, i, resp, now);
        } else if call.forwarded.contains_key(&txn) {
            if resp.status < 200 && resp.status != 183 && resp.status != 180 {
                return;
            }
            self.forwarded_response(id, txn, resp, now);
        } else {
            // Our BYE's answer, or similar: nothing to do.
            debug!(call = id, status = resp.status, "response ignored");
        }
    }

    fn leg_response(&mut self, id: u64, i: LegIdx, resp: Response, now: Now) {
        self.trunk_leg_heard(id);
        match resp.status {
            100 => {}
            101..=199 => self.leg_ringing(id, i, resp, now),
            200..=299 => self.leg_answered(id, i, resp, now),
            status => {
                if self.trunk_leg_failed(id, i, Some(&resp), status, now) {
                    return;
                }
                if let Some(call) = self.b2bua.get_mut(id) {
                    call.legs[i].final_status = Some(status);
                }
                debug!(call = id, leg = i, status, "leg failed");
                self.maybe_all_failed(id, now);
            }
        }
    }

    fn leg_ringing(&mut self, id: u64, i: LegIdx, resp: Response, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        if call.anchor.is_some() {
            // Anchored calls: an application's caller is answered already and hears our
            // ringback; a transcoded call's caller gets one 180.
            return self.anchored_ringing(id, now);
        }
        if call.bridge.is_some() {
            return;
        }
        if call.legs[i].dialog.is_none()
            && resp.to().is_some_and(|t| t.tag().is_some())
            && let Some(invite) = self.layer.request(call.legs[i].txn)
        {
            call.legs[i].dialog = Dialog::uac(invite, &resp).ok();
        }
        let a = &call.legs[A_LEG];
        let Some(a_invite) = self.layer.request(a.txn) else {
            return;
        };
        let mut out = Response::for_request(a_invite, resp.status, Some(resp.reason.as_str()))
            .with_to_tag(&a.tag);
        let a_contact = nathelper::contact_uri(adv, None, a.local, a.transport());
        out.headers
            .push(HeaderName::Contact, format!("<{a_contact}>"));
        let a_txn = a.txn;
        let a_local = a.local;
        let session = call.legs[i].session;
        if !resp.body.is_empty()
            && let Ok(s) = sdp::summarize(&resp.body)
        {
            // Early media: the callee's media flows now, through this fork's session.
            if let (Some(sid), Some(rtp)) = (session, s.rtp) {
                self.out
                    .push_back(crate::Output::Media(MediaCommand::SetRemote {
                        session: sid,
                        side: Side::B,
                        rtp,
                        rtcp: s.rtcp,
                    }));
            }
            if let Some(p) = call.relay_port(session, Side::A) {
                let relay = SocketAddr::new(nathelper::advertised_ip(adv, a_local), p.port());
                if let Ok(b) = sdp::rewrite(&resp.body, relay) {
                    out.set_body(&MediaType::sdp(), Bytes::from(b));
                }
            }
        } else if resp.status == 180 {
            if call.sent_180 {
                return;
            }
            call.sent_180 = true;
        }
        self.respond(a_txn, out, now);
    }

    fn leg_answered(&mut self, id: u64, i: LegIdx, resp: Response, now: Now) {
        self.hunt_answered(id, i);
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let anchored_winner = call.anchor.as_deref().and_then(|a| a.winner_leg());
        if call.bridge.is_some_and(|b| b.b == i) || anchored_winner == Some(i) {
            // A retransmitted 2xx: our ACK was lost.
            if let Some(ack) = call.legs[i].ack.clone() {
                let t = call.legs[i].target;
                self.layer.send_raw(ack, t);
            }
            return;
        }
        let leg = &call.legs[i];
        let (target, leg_txn, leg_local) = (leg.target, leg.txn, leg.local);
        let Some(invite) = self.layer.request(leg_txn) else {
            warn!(call = id, "2xx from callee after its INVITE was released");
            return;
        };
        let mut dialog = match Dialog::uac(invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                warn!(call = id, error = %e, "unusable 2xx from callee");
                return;
            }
        };
        // Answered after another fork won, or after we gave up on it (a silent trunk).
        let late = call.bridge.is_some()
            || anchored_winner.is_some()
            || call.legs[i].final_status.is_some();
        let invite_seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let via = self.our_via(leg_local, target.transport);
        let ack = Bytes::from(dialog.ack(invite_seq, &via).to_bytes());
        self.layer.send_raw(ack.clone(), target);
        self.layer.release_request(leg_txn);
        if late {
            // Another fork answered first: hang this one up.
            let via = self.our_via(leg_local, target.transport);
            let bye = dialog.new_request(Method::Bye, &via);
            self.send_request(bye, target, Owner::Call(id), now);
            return;
        }
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let leg = &mut call.legs[i];
        leg.ack = Some(ack);
        leg.dialog = Some(dialog);
        if !resp.body.is_empty() {
            leg.sdp = Some(own_sdp(&resp.body));
        }
        leg.final_status = Some(resp.status);
        if call.anchor.is_some() {
            self.anchored_answered(id, i, &resp, now);
            return self.live_call_save(id, now);
        }
        let Some(session) = leg.session else {
            return;
        };
        // The other forks are cancelled, their sessions closed.
        let (others, spare) = call.bridge_answered(i, session, now);
        // Answer the caller with the callee's SDP pointed at the relay.
        let a = &call.legs[A_LEG];
        let (a_txn, a_local, a_tag, a_transport) = (a.txn, a.local, a.tag.clone(), a.transport());
        let Some(a_invite) = self.layer.request(a_txn) else {
            warn!(
                call = id,
                "caller's INVITE transaction is gone; not answering"
            );
            return;
        };
        let mut ok = Response::for_request(a_invite, 200, None).with_to_tag(&a_tag);
        let a_contact = nathelper::contact_uri(adv, None, a_local, a_transport);
        ok.headers
            .push(HeaderName::Contact, format!("<{a_contact}>"));
        ok.headers.push(HeaderName::Allow, ALLOW);
        let mut cmds = Vec::new();
        if let Ok(s) = sdp::summarize(&resp.body) {
            if let Some(rtp) = s.rtp {
                cmds.push(MediaCommand::SetRemote {
                    session,
                    side: Side::B,
                    rtp,
                    rtcp: s.rtcp,
                });
            }
            cmds.push(MediaCommand::SetHold {
                session,
                on_hold: s.is_hold(),
            });
            if call.one_way {
                cmds.push(MediaCommand::MuteSide {
                    session,
                    side: Side::B,
                    muted: true,
                });
            }
            call.codec = s.first_codec().unwrap_or("").to_string();
            // The driver taps the call (digits, recording) only when a recording policy may
            // record it: a call no policy records is relayed without a tap or any state there.
            let parties = crate::recording::CallParties::of_call(call);
            if self.snap.codes.recording.decide(&parties) != crate::recording::RecDecision::Never {
                let info = crate::recording::Answered::of_call(call, &a_invite.body, &resp.body);
                cmds.push(MediaCommand::Answered {
                    session,
                    info: Box::new(info),
                });
            }
            if let Some(p) = call.relay_port(Some(session), Side::A) {
                let relay = SocketAddr::new(nathelper::advertised_ip(adv, a_local), p.port());
                if let Ok(b) = sdp::rewrite(&resp.body, relay) {
                    ok.set_body(&MediaType::sdp(), Bytes::from(b));
                }
            }
        }
        match Dialog::uas(a_invite, &ok) {
            Ok(d) => call.legs[A_LEG].dialog = Some(d),
            Err(e) => warn!(call = id, error = %e, "caller dialog not created"),
        }
        info!(call = id, caller = %call.caller, callee = %call.callee, codec = %call.codec, contact = %call.legs[i].target.destination, "call answered");
        for c in cmds {
            self.media(c);
        }
        for s in spare {
            self.b2bua.forget_session(s);
            self.media(MediaCommand::Close { session: s });
        }
        self.respond(a_txn, ok, now);
        for t in others {
            let _ = self.layer.cancel(t, now.mono);
        }
        self.rec_relayed_answered(id, session, now);
        self.live_call_save(id, now);
    }

    /// See [`Self::maybe_all_failed`].
    pub(crate) fn call_legs_failed(&mut self, id: u64, now: Now) {
        self.maybe_all_failed(id, now);
    }

    /// All forks failed (or none is left): answer the caller with the most telling status.
    fn maybe_all_failed(&mut self, id: u64, now: Now) {
        if self.anchored_forks_failed(id, now) {
            return;
        }
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let forks = call.legs.iter().filter(|l| l.side == Side::B);
        if call.bridge.is_some()
            || call.setup.is_some()
            || forks.clone().any(|l| l.final_status.is_none())
        {
            return;
        }
        let statuses: Vec<u16> = forks.filter_map(|l| l.final_status).collect();
        let outside = call.outside.is_some();
        let rung = call.rung.clone();
        if self.try_transcode(id, rung, now) {
            return;
        }
        if self.hunt_failed(id, &statuses, now) {
            return;
        }
        let (status, ending) = fork_failure(&statuses, outside);
        self.finish(id, ending, Some(status), now);
    }

    /// A client transaction of a call timed out or could not be sent.
    pub(crate) fn call_tx_failed(&mut self, id: u64, txn: TransactionId, now: Now) {
        if self.transfer_tx_failed(id, txn, now) {
            return;
        }
        if self.anchored_reinvite_failed(id, txn, now) {
            return;
        }
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        if let Some(i) = call
            .legs
            .iter()
            .position(|l| l.side == Side::B && l.txn == txn)
        {
            if call.legs[i].final_status.is_none() {
                if self.trunk_leg_failed(id, i, None, 408, now) {
                    return;
                }
                if let Some(call) = self.b2bua.get_mut(id) {
                    call.legs[i].final_status = Some(408);
                }
                self.maybe_all_failed(id, now);
            }
        } else if let Some(f) = call.forwarded.remove(&txn) {
            let r = Response::for_request(&f.request, 408, None);
            self.respond(f.server_txn, r, now);
            if f.request.method == Method::Invite && self.b2bua.contains(id) {
                // The other side vanished during a re-INVITE.
                self.hangup_call(id, "peer unreachable", now);
            }
        }
    }

    /// The caller cancelled before an answer.
    pub(crate) fn caller_cancelled(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        if call.bridge.is_some() {
            return;
        }
        info!(call = id, caller = %call.caller, "caller cancelled");
        self.cancel_forks(id, now);
        let ending = Ending {
            disposition: Disposition::Canceled,
            hangup_by: HangupBy::Caller,
            cause: "CANCEL".into(),
        };
        self.finish(id, ending, Some(487), now);
    }

    /// CANCELs every fork of call `id` that has no final response yet.
    pub(crate) fn cancel_forks(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let pending: Vec<TransactionId> = call
            .legs
            .iter()
            .filter(|l| l.side == Side::B && l.final_status.is_none())
            .map(|l| l.txn)
            .collect();
        for t in pending {
            let _ = self.layer.cancel(t, now.mono);
        }
    }

    /// A 2xx for an INVITE whose call is already gone (it answered after we cancelled): ACK it
    /// and hang it up, so the phone does not stay off-hook.
    pub(crate) fn late_answer(
        &mut self,
        txn: TransactionId,
        resp: &Response,
        source: SocketAddr,
        now: Now,
    ) {
        let Some(invite) = self.layer.request(txn).cloned() else {
            return;
        };
        if invite.method != Method::Invite {
            return;
        }
        let transport = invite
            .top_via()
            .and_then(|v| Transport::parse(&v.transport))
            .unwrap_or(Transport::Udp);
        self.ack_and_bye(&invite, resp, transport, source, now);
    }

    /// ACKs a 2xx to `invite` (from `source`) and hangs its dialog up with a BYE.
    pub(crate) fn ack_and_bye(
        &mut self,
        invite: &Request,
        resp: &Response,
        transport: Transport,
        source: SocketAddr,
        now: Now,
    ) {
        let Ok(mut d) = Dialog::uac(invite, resp) else {
            return;
        };
        let Some(local) = self.local_for(source) else {
            return;
        };
        let target = Target {
            destination: source,
            transport,
            local: Some(local),
        };
        let via = self.our_via(local, transport);
        let ack = d.ack(invite.cseq().map(|c| c.seq).unwrap_or(1), &via);
        self.layer.send_stateless(&Message::Request(ack), target);
        let via = self.our_via(local, transport);
        let bye = d.new_request(Method::Bye, &via);
        let _ = self.layer.send_request(bye, target, now.mono);
    }

    // ------------------------------------------------------------------------------------
    // In-dialog requests

    /// ACK outside a transaction: for our 2xx to the caller.
    pub(crate) fn call_ack(&mut self, req: &Request) {
        let call_id = req.call_id().unwrap_or_default();
        if let Some((id, leg)) = self.b2bua.by_call_id.get(call_id).copied()
            && let Some(call) = self.b2bua.get_mut(id)
            && let Some(d) = call.legs.get_mut(leg).and_then(|l| l.dialog.as_mut())
        {
            let _ = d.on_request(req);
        }
    }

    /// A request inside an existing dialog (To tag present).
    pub(crate) fn in_dialog_request(
        &mut self,
        txn: TransactionId,
        req: Request,
        source: SocketAddr,
        now: Now,
    ) {
        if self.transfer_in_dialog(txn, &req, source, now) {
            return;
        }
        let call_id = req.call_id().unwrap_or_default();
        let Some((id, leg)) = self.b2bua.by_call_id.get(call_id).copied() else {
            return self.respond(txn, Response::for_request(&req, 481, None), now);
        };
        let Some(call) = self.b2bua.get_mut(id) else {
            return self.respond(txn, Response::for_request(&req, 481, None), now);
        };
        // Anchored calls answer in-dialog requests themselves; others need a bridge.
        let anchored = call.anchor.as_deref().map(|a| a.winner_leg());
        let bridge = match (anchored, call.bridge) {
            (Some(w), _) if leg != A_LEG && Some(leg) != w => {
                return self.respond(txn, Response::for_request(&req, 481, None), now);
            }
            (Some(_), _) => None,
            (None, None) => {
                let r = Response::for_request(&req, 481, Some("Call not answered"));
                return self.respond(txn, r, now);
            }
            (None, Some(b)) if b.peer(leg).is_none() => {
                // A fork that lost the race.
                return self.respond(txn, Response::for_request(&req, 481, None), now);
            }
            (None, Some(b)) => Some(b),
        };
        // The dialog and CSeq are checked on the leg the request came from.
        let check = call.legs[leg].dialog.as_mut().map(|d| d.on_request(&req));
        match check {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                let r = Response::for_request(&req, e.status_code(), None);
                return self.respond(txn, r, now);
            }
            None => return self.respond(txn, Response::for_request(&req, 481, None), now),
        }
        let Some(bridge) = bridge else {
            return self.anchored_in_dialog(id, leg, txn, req, source, now);
        };
        if req.method == Method::Bye {
            let by = match call.legs[leg].side {
                Side::A => HangupBy::Caller,
                Side::B => HangupBy::Callee,
            };
            info!(call = id, peer = %source, by = ?by, "hang-up");
            // BYE the peer now; answer this BYE once the call record is stored.
            if let Some(peer) = bridge.peer(leg) {
                self.bye_leg(id, peer, now);
            }
            let ok = Response::for_request(&req, 200, None);
            let ending = Ending {
                disposition: Disposition::Answered,
                hangup_by: by,
                cause: "BYE".into(),
            };
            self.finish_with(id, ending, Some((txn, ok)), now);
            return;
        }
        self.forward_request(id, txn, req, leg, now);
    }

    /// Sends BYE on one leg's dialog.
    pub(crate) fn bye_leg(&mut self, id: u64, leg: LegIdx, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let l = &call.legs[leg];
        let (local, transport, target) = (l.local, l.transport(), l.target);
        let via = self.our_via(local, transport);
        let Some(d) = self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.legs[leg].dialog.as_mut())
        else {
            return;
        };
        let bye = d.new_request(Method::Bye, &via);
        self.send_request(bye, target, Owner::Call(id), now);
    }

    /// Forwards an in-dialog request (re-INVITE, UPDATE, INFO, ...) across the bridge.
    fn forward_request(
        &mut self,
        id: u64,
        txn: TransactionId,
        req: Request,
        from: LegIdx,
        now: Now,
    ) {
        if self.moh_intercept(id, txn, &req, from, now) {
            return;
        }
        if req.method == Method::Info {
            self.rec_info_from(id, from, &req, now);
        }
        if let Some(t) = self.forward_request_with(id, txn, req, from, None, now) {
            self.moh_forwarded(id, t);
        }
    }

    /// Forwards an in-dialog request; `body_override` replaces the SDP sent to the peer (music
    /// on hold offers the held party our endpoint instead of the relay). Returns the client
    /// transaction towards the peer.
    pub(crate) fn forward_request_with(
        &mut self,
        id: u64,
        txn: TransactionId,
        req: Request,
        from: LegIdx,
        body_override: Option<Vec<u8>>,
        now: Now,
    ) -> Option<TransactionId> {
        let adv = self.cfg.advertise;
        let call = self.b2bua.get(id)?;
        let bridge = call.bridge?;
        let to = bridge.peer(from)?;
        let from_side = call.legs[from].side;
        let out_leg = &call.legs[to];
        let (out_local, out_transport, target) =
            (out_leg.local, out_leg.transport(), out_leg.target);
        let via = self.our_via(out_local, out_transport);
        let our_contact = self.contact_uri(None, out_local, out_transport);
        let call = self.b2bua.get_mut(id)?;
        let mut body = None;
        if !req.body.is_empty()
            && req
                .content_type()
                .is_some_and(|c| c.is("application", "sdp"))
        {
            match sdp::summarize(&req.body) {
                Ok(s) => {
                    call.legs[from].sdp = Some(own_sdp(&req.body));
                    if let Some(rtp) = s.rtp {
                        self.out
                            .push_back(crate::Output::Media(MediaCommand::SetRemote {
                                session: bridge.session,
                                side: from_side,
                                rtp,
                                rtcp: s.rtcp,
                            }));
                    }
                    self.out
                        .push_back(crate::Output::Media(MediaCommand::SetHold {
                            session: bridge.session,
                            on_hold: s.is_hold(),
                        }));
                    if let Some(p) = call.relay_port(Some(bridge.session), from_side.other()) {
                        let relay =
                            SocketAddr::new(nathelper::advertised_ip(adv, out_local), p.port());
                        body = sdp::rewrite(&req.body, relay).ok();
                    }
                }
                Err(_) => {
                    let r = Response::for_request(&req, 488, Some("Unusable SDP"));
                    self.respond(txn, r, now);
                    return None;
                }
            }
        }
        if body_override.is_some() {
            body = body_override;
        }
        let Some(d) = call.legs[to].dialog.as_mut() else {
            self.respond(txn, Response::for_request(&req, 481, None), now);
            return None;
        };
        let mut out = d.new_request(req.method.clone(), &via);
        if sip::dialog::is_target_refresh(&req.method)
            && !out.headers.contains(&HeaderName::Contact)
        {
            out.headers
                .push(HeaderName::Contact, format!("<{our_contact}>"));
        }
        for name in [
            HeaderName::Event,
            HeaderName::SubscriptionState,
            HeaderName::ReferTo,
            HeaderName::ReferredBy,
        ] {
            for v in req.headers.get_all(&name) {
                out.headers.push(name.clone(), v.clone());
            }
        }
        match (body, req.content_type()) {
            (Some(b), _) => out.set_body(&MediaType::sdp(), Bytes::from(b)),
            (None, Some(ct)) if !req.body.is_empty() => out.set_body(&ct, req.body.clone()),
            _ => {}
        }
        match self.send_request(out, target, Owner::Call(id), now) {
            Some(t) => {
                if let Some(call) = self.b2bua.get_mut(id) {
                    call.forwarded.insert(
                        t,
                        Forwarded {
                            server_txn: txn,
                            request: req,
                            from,
                        },
                    );
                }
                Some(t)
            }
            None => {
                self.respond(txn, Response::for_request(&req, 500, None), now);
                None
            }
        }
    }

    fn forwarded_response(&mut self, id: u64, txn: TransactionId, resp: Response, now: Now) {
        self.moh_response(id, txn, &resp, now);
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(bridge) = call.bridge else { return };
        let final_ = resp.status >= 200;
        let (server_txn, request, from) = if final_ {
            match call.forwarded.remove(&txn) {
                Some(f) => (f.server_txn, f.request, f.from),
                None => return,
            }
        } else {
            match call.forwarded.get(&txn) {
                Some(f) => (f.server_txn, f.request.clone(), f.from),
                None => return,
            }
        };
        // The response came from the peer we forwarded to; it goes back to `from`.
        let Some(to) = bridge.peer(from) else { return };
        let from_side = call.legs[from].side;
        let back_local = call.legs[from].local;
        let back_transport = call.legs[from].transport();
        let method = request.method.clone();
        if (200..300).contains(&resp.status) && method == Method::Invite {
            // ACK the far side's 2xx ourselves; the near side ACKs ours.
            let l = &call.legs[to];
            let (target, local, transport) = (l.target, l.local, l.transport());
            let seq = resp.cseq().map(|c| c.seq).unwrap_or(1);
            let via = self.our_via(local, transport);
            if let Some(d) = self
                .b2bua
                .get_mut(id)
                .and_then(|c| c.legs[to].dialog.as_mut())
            {
                let _ = d.on_response(&method, &resp);
                let ack = d.ack(seq, &via);
                self.layer.send_stateless(&Message::Request(ack), target);
            }
        }
        if resp
            .content_type()
            .is_some_and(|c| c.is("application", "sdp"))
            && let Some(c) = self.b2bua.get_mut(id)
        {
            c.legs[to].sdp = Some(own_sdp(&resp.body));
        }
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let mut out = Response::for_request(&request, resp.status, Some(resp.reason.as_str()));
        if (200..300).contains(&resp.status) && sip::dialog::is_target_refresh(&method) {
            let c = nathelper::contact_uri(adv, None, back_local, back_transport);
            out.headers.push(HeaderName::Contact, format!("<{c}>"));
        }
        let mut cmds = Vec::new();
        if !resp.body.is_empty() {
            let is_sdp = resp
                .content_type()
                .is_some_and(|c| c.is("application", "sdp"));
            if is_sdp {
                if let Ok(s) = sdp::summarize(&resp.body)
                    && let Some(rtp) = s.rtp
                {
                    cmds.push(MediaCommand::SetRemote {
                        session: bridge.session,
                        side: from_side.other(),
                        rtp,
                        rtcp: s.rtcp,
                    });
                }
                if let Some(p) = call.relay_port(Some(bridge.session), from_side) {
                    let relay =
                        SocketAddr::new(nathelper::advertised_ip(adv, back_local), p.port());
                    if let Ok(b) = sdp::rewrite(&resp.body, relay) {
                        out.set_body(&MediaType::sdp(), Bytes::from(b));
                    }
                }
            } else if let Some(ct) = resp.content_type() {
                out.set_body(&ct, resp.body.clone());
            }
        }
        for c in cmds {
            self.media(c);
        }
        let media_changed =
            (200..300).contains(&out.status) && matches!(method, Method::Invite | Method::Update);
        self.respond(server_txn, out, now);
        if media_changed {
            self.live_call_save(id, now);
        }
    }

    // ------------------------------------------------------------------------------------
    // Ending calls

    /// Ends a call from our side (administrator, media timeout, shutdown): BYE both legs of
    /// the bridge, or CANCEL the forks and answer the caller 480.
    pub(crate) fn hangup_call(&mut self, id: u64, reason: &str, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        if call.anchor.is_some() {
            return self.anchored_hangup(id, reason, now);
        }
        if let Some(bridge) = call.bridge {
            self.bye_leg(id, bridge.b, now);
            self.bye_leg(id, bridge.a, now);
            let ending = Ending {
                disposition: Disposition::Answered,
                hangup_by: HangupBy::System,
                cause: reason.to_string(),
            };
            self.finish(id, ending, None, now);
        } else {
            self.cancel_forks(id, now);
            let ending = Ending {
                disposition: Disposition::Failed,
                hangup_by: HangupBy::System,
                cause: reason.to_string(),
            };
            self.finish(id, ending, Some(480), now);
        }
    }

    /// Periodic: calls that rang too long.
    pub(crate) fn check_calls(&mut self, now: Now) {
        let due: Vec<u64> = self
            .b2bua
            .calls
            .values()
            .filter(|c| {
                c.bridge.is_none()
                    && c.anchor.as_deref().is_none_or(|a| a.connecting)
                    && now.mono >= c.no_answer_at
            })
            .map(|c| c.id)
            .collect();
        for id in due {
            if self.b2bua.get(id).is_some_and(|c| c.anchor.is_some()) {
                self.anchored_no_answer(id, now);
                continue;
            }
            if self.hunt_no_answer(id, now) {
                continue;
            }
            if let Some(call) = self.b2bua.get(id) {
                info!(call = id, caller = %call.caller, callee = %call.callee, "no answer");
            }
            self.cancel_forks(id, now);
            let ending = Ending {
                disposition: Disposition::NoAnswer,
                hangup_by: HangupBy::System,
                cause: "no answer".into(),
            };
            self.finish(id, ending, Some(480), now);
        }
    }

    /// Ends a call answering the caller's INVITE with `a_status` (when still unanswered).
    pub(crate) fn finish_call(&mut self, id: u64, ending: Ending, a_status: Option<u16>, now: Now) {
        self.finish(id, ending, a_status, now);
    }

    fn finish(&mut self, id: u64, ending: Ending, a_status: Option<u16>, now: Now) {
        let reply = match (a_status, self.b2bua.get(id)) {
            (Some(s), Some(call)) => {
                let a = &call.legs[A_LEG];
                self.layer.request(a.txn).map(|inv| {
                    let r = Response::for_request(inv, s, None).with_to_tag(&a.tag);
                    (a.txn, r)
                })
            }
            _ => None,
        };
        self.finish_with(id, ending, reply, now);
    }

    /// Removes the call, closes its media and writes its record; `reply` goes out once the
    /// record is durable.
    pub(crate) fn finish_with(
        &mut self,
        id: u64,
        ending: Ending,
        reply: Option<(TransactionId, Response)>,
        now: Now,
    ) {
        let Some(mut call) = self.b2bua.remove(id) else {
            return;
        };
        info!(call = id, call_id = %call.legs[A_LEG].call_id, disposition = ending.disposition.as_str(), "call ended");
        self.live_call_ended(&call);
        if let Some(s) = call.anchor.as_deref_mut().and_then(|a| a.prompt_rec_mut()) {
            self.prompt_rec_call_ended(id, call.tenant_id, s);
        }
        self.rec_call_ended(&mut call, now);
        self.transfer_call_ended(&call, now);
        self.park_call_ended(id, now);
        self.page_call_ended(&call, now);
        if let Some(m) = &call.moh {
            self.b2bua.by_endpoint.remove(&m.endpoint);
            self.media(MediaCommand::CloseEndpoint {
                endpoint: m.endpoint,
            });
        }
        if let Some(anchor) = &call.anchor {
            if let Some(room) = anchor.room() {
                let tones = anchor.seat().is_none_or(|s| s.room.join_tones);
                self.conf_left(room, id, tones);
            }
            for ep in anchor.endpoints() {
                self.b2bua.by_endpoint.remove(&ep);
                self.media(MediaCommand::CloseEndpoint { endpoint: ep });
            }
        }
        if let Some(plan) = &call.outside {
            let billsec = call
                .answer
                .and_then(|a| now.wall.duration_since(a).ok())
                .map_or(0, |d| d.as_secs());
            let class = plan.call.class;
            self.outside_call_ended(call.tenant_id, &call.caller, class, billsec, now);
            self.outside_call_gone(call.tenant_id, &call.caller);
        }
        self.counters.call(ending.disposition);
        let record = self.call_record(&call, ending, now);
        let bridged = call.bridge.map(|b| b.session);
        for m in &call.media {
            if m.ports.is_some() {
                self.media(MediaCommand::Close { session: m.id });
            }
            if Some(m.id) != bridged {
                self.b2bua.forget_session(m.id);
            }
        }
        match bridged {
            // The record waits for the bridge's media statistics (`media_closed`).
            Some(s) => self.await_media_stats(s, record, reply),
            None => self.write_cdr(record, reply),
        }
    }
}
