//! Calls in progress that survive a switchover or failover of an active/standby pair.
//!
//! When a relayed call (two phones, or a phone and a trunk, media through the relay) is
//! answered, the engine asks for a database write of everything another node needs to
//! continue it ([`LiveCallRecord`]): both legs' dialogs (Call-ID, tags, CSeqs, remote target,
//! route set), where each party is and over which transport, the relay's RTP port facing each
//! party and the party's RTP/RTCP address from its SDP, the codec and hold state, the record's
//! start and answer time. The row is written again when a re-INVITE or UPDATE changed the media
//! (hold, a new address) and deleted when the call ends. With synchronous replication the
//! standby holds it as soon as the active does.
//!
//! The node that takes the application address over calls [`Engine::load_live_calls`]: each
//! call is rebuilt (legs, dialogs, bridge, state Up, the original start and answer times) and
//! its relay session re-bound on the same ports ([`MediaCommand::Adopt`], `IP_FREEBIND`, before
//! the address arrives) with the stored remote addresses, so audio flows again with the first
//! packet and no re-INVITE is needed (same address, same ports, same dialogs). The relay's
//! media timeout starts again from the take-over. In-dialog requests (BYE, re-INVITE, INFO)
//! from either party are handled as on the node that answered the call; the record is written
//! once, at the end, by the node that ends the call, with a `switchover` or `failover` event.
//! Our own CSeq in each dialog jumps by [`SEQ_JUMP`] so a request we send never repeats a
//! number the peer node used after its last write.
//!
//! The node that gives the address up calls [`Engine::forget_live_calls`]: those calls are
//! dropped without a word (no BYE, no record; the peer continues them), their relay sockets
//! closed, their rows left alone. A node that merely starts loads nothing.
//!
//! A call on hold keeps its music: the row names the held party and the music endpoint's
//! socket, which the node taking over binds again ([`MediaCommand::AdoptEndpoint`]) and plays
//! the same class from; the resume is handled as on the node that started the music.
//!
//! Not kept: calls anchored on our endpoints (IVR, voicemail, conference, transcoded calls),
//! ended by the node taking over, and calls still ringing: a switchover ends them first
//! ([`Engine::end_ringing_calls`]); after a crash a phone answering a fork of the dead node
//! gets an ACK and a BYE from the new active (see docs/ha.md). Legs over TCP/TLS are rebuilt
//! like UDP ones, but the connection they used is gone: the phone's next request on a new
//! connection is answered, our own requests to it may fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use sip::dialog::{Dialog, DialogId, DialogState, Role};
use sip::transaction::{Target, TransactionId, Transport};
use sip::{NameAddr, Uri};
use tracing::{info, warn};

use crate::b2bua::{A_LEG, Bridge, Call, Leg, MediaSlot, Origin};
use crate::control::CallState;
use crate::db::{CallRoute, DbOp, Direction};
use crate::media::{EndpointId, MediaCommand, PlayItem, SessionId, Side};
use crate::{Engine, Now, Pending, sdp};

/// Calls one node rebuilds from rows at most (more rows than that are a broken database).
pub const MAX_LIVE_CALLS: usize = 20_000;
/// How far our CSeq in a rebuilt dialog jumps past the stored one.
pub const SEQ_JUMP: u32 = 1_000;
/// Largest stored SDP kept per leg (bytes); a larger one is not stored (the call is then not
/// continued).
const MAX_SDP: usize = 8 * 1024;

/// A dialog as stored (the fields of [`sip::dialog::Dialog`], as text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DialogRecord {
    /// `uac` or `uas`.
    pub role: String,
    /// Our name-addr with our tag.
    pub local: String,
    /// The peer's name-addr with its tag.
    pub remote: String,
    /// The peer's tag (empty for a peer that sent none).
    pub remote_tag: String,
    /// The peer's Contact.
    pub remote_target: String,
    /// Our Contact.
    pub local_target: Option<String>,
    /// Route set, in order.
    pub route_set: Vec<String>,
    /// Our last CSeq.
    pub local_seq: Option<u32>,
    /// The peer's last CSeq.
    pub remote_seq: Option<u32>,
    /// `sips:`.
    pub secure: bool,
}

/// One party of a stored call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveLeg {
    /// The leg's SIP Call-ID.
    pub call_id: String,
    /// Our tag in it.
    pub our_tag: String,
    /// The dialog.
    pub dialog: DialogRecord,
    /// Where the party is (requests go there).
    pub peer: SocketAddr,
    /// `UDP`, `TCP`, `TLS`.
    pub transport: String,
    /// Our SIP address on this leg's segment.
    pub local: SocketAddr,
    /// Our relay RTP socket facing the party (RTCP on the next port); for an anchored call
    /// our SIP address (unused).
    pub relay: SocketAddr,
    /// The party's RTP address (from its SDP).
    pub remote_rtp: Option<SocketAddr>,
    /// The party's RTCP address.
    pub remote_rtcp: Option<SocketAddr>,
    /// The party's last SDP.
    pub sdp: Option<String>,
    /// The trunk this leg goes to.
    pub trunk: Option<i64>,
}

/// What another node needs to continue a relayed call (table `live_calls`, one row per call,
/// keyed by the caller leg's Call-ID).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveCallRecord {
    /// Tenant.
    pub tenant: i64,
    /// The caller leg's Call-ID (the record's key).
    pub call_id: String,
    /// Calling number.
    pub caller: String,
    /// Calling name.
    pub caller_name: String,
    /// Dialled number.
    pub callee: String,
    /// The INVITE arrived.
    pub start: SystemTime,
    /// Answered.
    pub answer: SystemTime,
    /// Negotiated codec.
    pub codec: String,
    /// `internal`, `inbound`, `outbound`.
    pub direction: String,
    /// Trunk name (record).
    pub trunk: String,
    /// DID (record).
    pub did: String,
    /// Dialled (record).
    pub dialled: String,
    /// Sent to the trunk (record).
    pub sent_number: String,
    /// Caller ID (record).
    pub caller_id: String,
    /// Media on hold.
    pub on_hold: bool,
    /// The caller's leg (side A).
    pub a: LiveLeg,
    /// Side B: the callee's leg (a relayed call always has one; an anchored call when it
    /// dialled out and was answered).
    pub b: Option<LiveLeg>,
    /// The call's media ends on an endpoint of ours (IVR, voicemail, conference, transcoding):
    /// it is not continued; the node taking over ends it (BYE, record).
    #[serde(default)]
    pub anchored: bool,
    /// Hold music playing to one party when the row was written: the node taking over plays
    /// it again from the same socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moh: Option<LiveMoh>,
    /// When this version of the row was written.
    pub saved_at: SystemTime,
}

/// Hold music of a stored call: who is held and where our music came from. The held party's
/// RTP address and codec are its last SDP in its leg (its answer to our music offer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveMoh {
    /// The held party: `a` (the caller) or `b` (the callee); the other one put the call on
    /// hold.
    pub held: String,
    /// Our music endpoint's RTP socket the held party was pointed at (RTCP on the next port).
    pub endpoint: SocketAddr,
    /// The music-on-hold class played.
    pub class: String,
}

/// The class hold music plays today ([`crate::moh`] always plays the tenant's default).
pub const MOH_CLASS: &str = "default";

/// A row written or deleted.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveCallOp {
    /// Insert or replace the call's row.
    Save(Box<LiveCallRecord>),
    /// The call ended: delete its row.
    Delete {
        /// Tenant.
        tenant: i64,
        /// The caller leg's Call-ID.
        call_id: String,
    },
}

/// The engine's bookkeeping of stored calls.
#[derive(Debug, Default)]
pub(crate) struct LiveState {
    /// Rows are written at all (a node of an active/standby pair).
    enabled: bool,
    /// A switchover is handing over: new calls are refused (`crate::quiesce`).
    pub(crate) new_calls_refused: bool,
    /// Calls whose row is stored: call -> (tenant, Call-ID).
    saved: HashMap<u64, (i64, String)>,
    /// Relay sessions being re-bound for rebuilt calls: session -> call.
    adopting: HashMap<SessionId, u64>,
    /// Rebuilt calls: call -> the take-over event, written with the call's record when it
    /// ends (at the take-over the database may not be writable yet: promotion runs aside).
    taken_over: HashMap<u64, crate::transfer::TransferEvent>,
    /// Where each call's hold-music endpoint listens: call -> (endpoint, RTP socket).
    moh_at: HashMap<u64, (EndpointId, SocketAddr)>,
    /// Hold-music endpoints being re-bound for rebuilt calls: endpoint -> what to play.
    moh_adopting: HashMap<EndpointId, MohResume>,
    /// The database operations issued by the last [`Engine::end_ringing_calls`] (their
    /// records; each caller's final response waits for its record).
    ringing_ops: std::ops::Range<u64>,
}

/// What a re-bound hold-music endpoint plays, and to whom.
#[derive(Debug)]
struct MohResume {
    call: u64,
    tenant: i64,
    class: String,
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    codec: crate::media::Codec,
    telephone_event: Option<(u8, u32)>,
}

fn transport_name(t: Transport) -> &'static str {
    t.as_str()
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Internal => "internal",
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

fn direction_of(s: &str) -> Direction {
    match s {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        _ => Direction::Internal,
    }
}

fn dialog_record(d: &Dialog) -> DialogRecord {
    DialogRecord {
        role: match d.role {
            Role::Uac => "uac",
            Role::Uas => "uas",
        }
        .into(),
        local: d.local.to_string(),
        remote: d.remote.to_string(),
        remote_tag: d.id.remote_tag.clone(),
        remote_target: d.remote_target.to_string(),
        local_target: d.local_target.as_ref().map(|u| u.to_string()),
        route_set: d.route_set.iter().map(|r| r.to_string()).collect(),
        local_seq: d.local_seq,
        remote_seq: d.remote_seq,
        secure: d.secure,
    }
}

/// Rebuilds a dialog; `None` when a stored value does not parse.
fn dialog_of(r: &DialogRecord, call_id: &str, our_tag: &str) -> Option<Dialog> {
    let role = match r.role.as_str() {
        "uac" => Role::Uac,
        "uas" => Role::Uas,
        _ => return None,
    };
    let route_set = r
        .route_set
        .iter()
        .map(|s| NameAddr::parse(s).ok())
        .collect::<Option<Vec<_>>>()?;
    let local_target = match &r.local_target {
        Some(t) => Some(Uri::parse(t).ok()?),
        None => None,
    };
    Some(Dialog {
        id: DialogId {
            call_id: call_id.to_string(),
            local_tag: our_tag.to_string(),
            remote_tag: r.remote_tag.clone(),
        },
        state: DialogState::Confirmed,
        role,
        local: NameAddr::parse(&r.local).ok()?,
        remote: NameAddr::parse(&r.remote).ok()?,
        remote_target: Uri::parse(&r.remote_target).ok()?,
        local_target,
        route_set,
        local_seq: Some(r.local_seq.unwrap_or(0).saturating_add(SEQ_JUMP)),
        remote_seq: r.remote_seq,
        secure: r.secure,
    })
}

fn live_leg(call: &Call, i: usize, session: Option<SessionId>, side: Side) -> Option<LiveLeg> {
    let l = call.legs.get(i)?;
    let d = l.dialog.as_ref()?;
    let relay = match session {
        Some(_) => call.relay_port(session, side)?,
        None => l.local,
    };
    let sdp_text = match &l.sdp {
        Some(b) if b.len() <= MAX_SDP => Some(String::from_utf8(b.to_vec()).ok()?),
        Some(_) => return None,
        None => None,
    };
    let summary = l.sdp.as_deref().and_then(|b| sdp::summarize(b).ok());
    Some(LiveLeg {
        call_id: l.call_id.clone(),
        our_tag: l.tag.clone(),
        dialog: dialog_record(d),
        peer: l.target.destination,
        transport: transport_name(l.target.transport).to_string(),
        local: l.local,
        relay,
        remote_rtp: summary.as_ref().and_then(|s| s.rtp),
        remote_rtcp: summary.as_ref().and_then(|s| s.rtcp),
        sdp: sdp_text,
        trunk: l.trunk,
    })
}

fn is_hold(leg: &LiveLeg) -> bool {
    leg.sdp
        .as_deref()
        .and_then(|s| sdp::summarize(s.as_bytes()).ok())
        .is_some_and(|s| s.is_hold())
}

/// The hold music of `call` when it plays (the held party answered our offer) and its
/// endpoint's socket `at` is known.
fn live_moh(call: &Call, at: Option<&(EndpointId, SocketAddr)>) -> Option<LiveMoh> {
    let m = call.moh.as_deref()?;
    if !matches!(m.stage, crate::moh::Stage::Playing) {
        return None;
    }
    let (ep, endpoint) = at?;
    if *ep != m.endpoint {
        return None;
    }
    let bridge = call.bridge?;
    let held = if m.held == bridge.a {
        "a"
    } else if m.held == bridge.b {
        "b"
    } else {
        return None;
    };
    Some(LiveMoh {
        held: held.into(),
        endpoint: *endpoint,
        class: MOH_CLASS.into(),
    })
}

/// The row of a call, when it is a relayed, answered call another node can continue.
fn live_record(
    call: &Call,
    moh_at: Option<&(EndpointId, SocketAddr)>,
    now: Now,
) -> Option<LiveCallRecord> {
    if call.state != CallState::Up {
        return None;
    }
    let (a, b, anchored) = match (call.anchor.as_deref(), call.bridge) {
        (Some(anchor), _) => {
            let a = live_leg(call, A_LEG, None, Side::A)?;
            let b = anchor
                .winner_leg()
                .and_then(|i| live_leg(call, i, None, Side::B));
            (a, b, true)
        }
        (None, Some(Bridge { a, b, session })) => {
            let a = live_leg(call, a, Some(session), Side::A)?;
            let b = live_leg(call, b, Some(session), Side::B)?;
            (a, Some(b), false)
        }
        (None, None) => return None,
    };
    // On hold, the held party hears music from an endpoint of ours: its socket is stored, and
    // the node taking over binds it again and plays the music from it.
    let moh = if anchored {
        None
    } else {
        live_moh(call, moh_at)
    };
    let on_hold = call.moh.is_some() || is_hold(&a) || b.as_ref().is_some_and(is_hold);
    Some(LiveCallRecord {
        tenant: call.tenant_id,
        call_id: call.legs.get(A_LEG)?.call_id.clone(),
        caller: call.caller.clone(),
        caller_name: call.caller_name.clone(),
        callee: call.callee.clone(),
        start: call.start,
        answer: call.answer?,
        codec: call.codec.clone(),
        direction: direction_name(call.route.direction).into(),
        trunk: call.route.trunk.clone(),
        did: call.route.did.clone(),
        dialled: call.route.dialled.clone(),
        sent_number: call.route.sent_number.clone(),
        caller_id: call.route.caller_id.clone(),
        on_hold,
        a,
        b,
        anchored,
        moh,
        saved_at: now.wall,
    })
}

/// Who called whom, as the record keeps it.
fn origin_of(rec: &LiveCallRecord) -> Origin {
    Origin {
        tenant: rec.tenant,
        caller: rec.caller.clone(),
        caller_name: rec.caller_name.clone(),
        call_id: rec.call_id.clone(),
        digits: rec.callee.clone(),
        route: CallRoute {
            direction: direction_of(&rec.direction),
            trunk: rec.trunk.clone(),
            did: rec.did.clone(),
            dialled: rec.dialled.clone(),
            sent_number: rec.sent_number.clone(),
            caller_id: rec.caller_id.clone(),
        },
    }
}

/// A leg rebuilt from its row.
fn leg_of(l: &LiveLeg, side: Side) -> Option<Leg> {
    let transport = Transport::parse(&l.transport)?;
    let target = Target {
        destination: l.peer,
        transport,
        local: Some(l.local),
    };
    let mut leg = Leg::new(
        side,
        l.call_id.clone(),
        TransactionId::DETACHED,
        target,
        l.local,
        l.our_tag.clone(),
    );
    leg.dialog = Some(dialog_of(&l.dialog, &l.call_id, &l.our_tag)?);
    leg.sdp = l
        .sdp
        .as_ref()
        .map(|s| bytes::Bytes::from(s.clone().into_bytes()));
    leg.trunk = l.trunk;
    if side == Side::B {
        leg.final_status = Some(200);
    }
    Some(leg)
}

impl Engine {
    /// Writes rows for calls in progress (a node of an active/standby pair). Off by default:
    /// a standalone node has nobody to hand its calls to.
    pub fn set_live_calls(&mut self, on: bool) {
        self.live.enabled = on;
    }

    /// Calls of this node whose row is stored.
    pub fn live_calls(&self) -> usize {
        self.live.saved.len()
    }

    /// Stores (or refreshes) call `id`'s row when it is a call another node can continue; a
    /// call that stopped being one has its row deleted.
    pub(crate) fn live_call_save(&mut self, id: u64, now: Now) {
        if !self.live.enabled {
            return;
        }
        if self.park_is_parked(id) {
            // A parked call has its own row (`park_calls`), resumed by the node taking over.
            return self.live_call_forget_row(id);
        }
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        match live_record(call, self.live.moh_at.get(&id), now) {
            Some(rec) => {
                self.live
                    .saved
                    .insert(id, (rec.tenant, rec.call_id.clone()));
                self.db(
                    DbOp::LiveCall(LiveCallOp::Save(Box::new(rec))),
                    Pending::Background("storing a call in progress"),
                );
            }
            None => self.live_call_forget_row(id),
        }
    }

    /// Keeps the take-over `event` of call `id` (`party` called `to`; `status` as it ended or
    /// went on), written beside the call's record when it ends.
    fn live_event(
        &mut self,
        id: u64,
        event: &'static str,
        (party, to): (String, String),
        status: u16,
        now: Now,
    ) {
        self.live.taken_over.insert(
            id,
            crate::transfer::TransferEvent {
                at: now.wall,
                kind: event,
                by: String::new(),
                party,
                to,
                status,
            },
        );
    }

    /// Deletes call `id`'s row, if it has one.
    fn live_call_forget_row(&mut self, id: u64) {
        if let Some((tenant, call_id)) = self.live.saved.remove(&id) {
            self.db(
                DbOp::LiveCall(LiveCallOp::Delete { tenant, call_id }),
                Pending::Background("deleting a stored call"),
            );
        }
    }

    /// Call `id` ended here: its row goes, and a rebuilt call's take-over event is written
    /// beside its record.
    pub(crate) fn live_call_ended(&mut self, call: &Call) {
        self.live.adopting.retain(|_, c| *c != call.id);
        self.live.moh_at.remove(&call.id);
        self.live.moh_adopting.retain(|_, m| m.call != call.id);
        if let Some(ev) = self.live.taken_over.remove(&call.id) {
            self.db(
                DbOp::CdrEvents {
                    tenant: call.tenant_id,
                    call_id: call.legs[A_LEG].call_id.clone(),
                    events: vec![ev],
                },
                Pending::Background("storing a take-over event"),
            );
        }
        if let Some((tenant, call_id)) = self.live.saved.remove(&call.id) {
            self.db(
                DbOp::LiveCall(LiveCallOp::Delete { tenant, call_id }),
                Pending::Background("deleting a stored call"),
            );
        }
    }

    /// Rebuilds the calls stored by the node that held the application address before
    /// (`event`: `switchover` or `failover`, kept with each call's record). Calls already held
    /// here are skipped. Answers how many were rebuilt.
    pub fn load_live_calls(
        &mut self,
        records: Vec<LiveCallRecord>,
        event: &'static str,
        now: Now,
    ) -> usize {
        let mut n = 0;
        for rec in records {
            if self.b2bua.by_call_id.contains_key(&rec.call_id) {
                continue;
            }
            if self.live.saved.len() >= MAX_LIVE_CALLS {
                warn!(call_id = %rec.call_id, "too many stored calls: not continued");
                continue;
            }
            if self.live_rebuild(&rec, event, now).is_none() {
                warn!(call_id = %rec.call_id, "stored call cannot be continued: row dropped");
                self.db(
                    DbOp::LiveCall(LiveCallOp::Delete {
                        tenant: rec.tenant,
                        call_id: rec.call_id.clone(),
                    }),
                    Pending::Background("deleting a stored call"),
                );
                continue;
            }
            n += 1;
        }
        self.pump_public(now);
        n
    }

    fn live_rebuild(&mut self, rec: &LiveCallRecord, event: &'static str, now: Now) -> Option<()> {
        let a = leg_of(&rec.a, Side::A)?;
        let b = match &rec.b {
            Some(l) => Some((leg_of(l, Side::B)?, l)),
            None => None,
        };
        if let Some((_, l)) = &b
            && (self.b2bua.by_call_id.contains_key(&l.call_id) || rec.a.call_id == l.call_id)
        {
            return None;
        }
        let id = self.b2bua.next_call_id();
        let origin = origin_of(rec);
        let mut call = Box::new(Call::new(
            id,
            origin,
            a,
            Vec::new(),
            now,
            self.snap.settings.no_answer,
        ));
        call.state = CallState::Up;
        call.start = rec.start;
        call.start_mono = now
            .wall
            .duration_since(rec.start)
            .ok()
            .and_then(|d| now.mono.checked_sub(d))
            .unwrap_or(now.mono);
        call.answer = Some(rec.answer);
        call.codec = rec.codec.clone();
        let b_call_id = b.as_ref().map(|(_, l)| l.call_id.clone());
        if let Some((leg, _)) = b {
            call.legs.push(leg);
        }
        if rec.anchored {
            return self.live_end_anchored(call, b_call_id, event, now);
        }
        let b = rec.b.as_ref()?;
        let session = self.b2bua.new_session(id);
        call.media = vec![MediaSlot {
            id: session,
            b_ip: b.relay.ip(),
            ports: Some((rec.a.relay, b.relay)),
            failed: false,
        }];
        call.bridge = Some(Bridge {
            a: A_LEG,
            b: 1,
            session,
        });
        self.b2bua.insert(call);
        self.b2bua.forget_server_txn(TransactionId::DETACHED);
        self.b2bua.by_call_id.insert(b.call_id.clone(), (id, 1));
        self.live_adopt(rec, session, b, id, event, now);
        if let Some(m) = &rec.moh {
            self.live_moh_adopt(rec, m, id);
        }
        Some(())
    }

    /// The hold music of a rebuilt call: its endpoint is bound again on the stored socket (the
    /// held party's SDP points there, so no re-INVITE) and plays once it is open. A stored
    /// music row that makes no sense leaves the call on hold without music.
    fn live_moh_adopt(&mut self, rec: &LiveCallRecord, m: &LiveMoh, id: u64) {
        let (held, leg) = match (m.held.as_str(), rec.b.as_ref()) {
            ("a", _) => (A_LEG, &rec.a),
            ("b", Some(b)) => (1, b),
            _ => {
                warn!(call = id, held = %m.held, "stored hold music names no party: not played");
                return;
            }
        };
        let summary = leg
            .sdp
            .as_deref()
            .and_then(|s| sdp::summarize(s.as_bytes()).ok());
        let Some((codec, telephone_event)) = summary.as_ref().and_then(crate::sdp_local::choose)
        else {
            warn!(
                call = id,
                "the held party's stored SDP has no codec for music: not played"
            );
            return;
        };
        let ep = self.b2bua.new_endpoint(id);
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        call.moh = Some(Box::new(crate::moh::Moh {
            endpoint: ep,
            held,
            stage: crate::moh::Stage::Playing,
        }));
        self.live.moh_adopting.insert(
            ep,
            MohResume {
                call: id,
                tenant: rec.tenant,
                class: m.class.clone(),
                rtp: summary.as_ref().and_then(|s| s.rtp).or(leg.remote_rtp),
                rtcp: summary.as_ref().and_then(|s| s.rtcp).or(leg.remote_rtcp),
                codec,
                telephone_event,
            },
        );
        self.media(MediaCommand::AdoptEndpoint {
            endpoint: ep,
            call_id: rec.call_id.clone(),
            at: m.endpoint,
            group: id,
        });
        info!(call = id, call_id = %rec.call_id, at = %m.endpoint, class = %m.class,
            "hold music of a call taken over: endpoint re-bound");
    }

    /// A media endpoint of call `id` opened (or failed). A re-bound hold-music endpoint starts
    /// its music (true: handled here); any hold-music endpoint's socket is remembered for the
    /// call's row.
    pub(crate) fn live_moh_opened(
        &mut self,
        id: u64,
        ep: EndpointId,
        r: Result<SocketAddr, ()>,
    ) -> bool {
        if let Some(m) = self.live.moh_adopting.remove(&ep) {
            match r {
                Ok(local) => {
                    self.live.moh_at.insert(id, (ep, local));
                    self.media(MediaCommand::ConfigureEndpoint {
                        endpoint: ep,
                        rtp: m.rtp,
                        rtcp: m.rtcp,
                        codec: m.codec,
                        telephone_event: m.telephone_event,
                        ptime: 20,
                    });
                    self.media(MediaCommand::Play {
                        endpoint: ep,
                        id: 0,
                        items: vec![PlayItem::Moh {
                            tenant: m.tenant,
                            class: m.class,
                        }],
                        stop_on_dtmf: false,
                        repeat: true,
                    });
                    info!(call = id, %local, "hold music plays again after the take-over");
                }
                Err(()) => {
                    // Silence until the call is resumed (the resume points the held party back
                    // at the relay, whose ports are the call's own).
                    warn!(
                        call = id,
                        "the hold-music socket cannot be bound again: the held party hears silence"
                    );
                    self.b2bua.by_endpoint.remove(&ep);
                    if let Some(c) = self.b2bua.get_mut(id)
                        && c.moh.as_ref().is_some_and(|x| x.endpoint == ep)
                    {
                        c.moh = None;
                    }
                }
            }
            return true;
        }
        if let Ok(local) = r
            && self.live.enabled
            && self
                .b2bua
                .get(id)
                .is_some_and(|c| c.moh.as_ref().is_some_and(|m| m.endpoint == ep))
        {
            self.live.moh_at.insert(id, (ep, local));
        }
        false
    }

    /// An anchored call (its media ended on an endpoint of the node that answered it) is not
    /// continued: each party gets a BYE in its dialog from here, and the call's record is
    /// written (answered, ended by the system, with the take-over event).
    fn live_end_anchored(
        &mut self,
        call: Box<Call>,
        b_call_id: Option<String>,
        event: &'static str,
        now: Now,
    ) -> Option<()> {
        let id = call.id;
        let (tenant, call_id) = (call.tenant_id, call.legs[A_LEG].call_id.clone());
        let (caller, callee) = (call.caller.clone(), call.callee.clone());
        let legs = call.legs.len();
        self.b2bua.insert(call);
        self.b2bua.forget_server_txn(TransactionId::DETACHED);
        if let Some(c) = b_call_id {
            self.b2bua.by_call_id.insert(c, (id, 1));
        }
        for leg in 0..legs {
            self.bye_leg(id, leg, now);
        }
        self.live.saved.insert(id, (tenant, call_id.clone()));
        self.live_event(id, event, (caller, callee), 200, now);
        info!(call = id, %call_id, event, "anchored call not continued after the take-over: ended");
        let ending = crate::b2bua::Ending {
            disposition: crate::db::Disposition::Answered,
            hangup_by: crate::db::HangupBy::System,
            cause: format!("{event}: application not continued"),
        };
        self.finish_call(id, ending, None, now);
        Some(())
    }

    /// The relay session of a rebuilt call: re-bound on the stored ports, pointed at the
    /// parties at once.
    fn live_adopt(
        &mut self,
        rec: &LiveCallRecord,
        session: SessionId,
        b: &LiveLeg,
        id: u64,
        event: &'static str,
        now: Now,
    ) {
        self.media(MediaCommand::Adopt {
            session,
            call_id: rec.call_id.clone(),
            a: rec.a.relay,
            b: b.relay,
        });
        for (leg, side) in [(&rec.a, Side::A), (b, Side::B)] {
            if let Some(rtp) = leg.remote_rtp {
                self.media(MediaCommand::SetRemote {
                    session,
                    side,
                    rtp,
                    rtcp: leg.remote_rtcp,
                });
            }
        }
        let codecs = rec
            .a
            .sdp
            .as_deref()
            .and_then(|s| sdp::summarize(s.as_bytes()).ok())
            .map(|s| s.codecs)
            .unwrap_or_default();
        for (pt, _, hz) in codecs {
            for side in [Side::A, Side::B] {
                self.media(MediaCommand::SetClockRate {
                    session,
                    side,
                    payload_type: pt,
                    hz,
                });
            }
        }
        self.media(MediaCommand::SetHold {
            session,
            on_hold: rec.on_hold,
        });
        self.live
            .saved
            .insert(id, (rec.tenant, rec.call_id.clone()));
        self.live.adopting.insert(session, id);
        self.live_event(
            id,
            event,
            (rec.caller.clone(), rec.callee.clone()),
            200,
            now,
        );
        info!(call = id, call_id = %rec.call_id, caller = %rec.caller, callee = %rec.callee,
            a = %rec.a.relay, b = %b.relay, event, "call in progress taken over");
    }

    /// A rebuilt call's relay ports could not be bound again: the call cannot carry audio, so
    /// it is ended (BYE to both parties, one record). True when `session` was one.
    pub(crate) fn live_adopt_failed(&mut self, session: SessionId, now: Now) -> bool {
        let Some(id) = self.live.adopting.remove(&session) else {
            return false;
        };
        warn!(
            call = id,
            "the relay ports of a taken-over call cannot be bound: hanging up"
        );
        self.hangup_call(id, "relay ports lost in the take-over", now);
        // No relay session carried media: the record needs no statistics from it.
        let none = crate::db::LegStats::default();
        self.media_closed(session, none, none, now);
        true
    }

    /// A graceful switchover starts and this node still holds the application address. A
    /// call still ringing cannot be handed over (its INVITE transactions live only here) and
    /// would be dropped silently with the address, so it is ended now: CANCEL to every phone
    /// still ringing, `480` to the caller, and one record (not answered, hung up by the system,
    /// cause "`event`: not answered", with an `event` entry in its events). Answered calls are
    /// not touched (their rows carry them over). Answers how many calls were ended.
    pub fn end_ringing_calls(&mut self, event: &'static str, now: Now) -> usize {
        let first_op = self.next_op;
        let ringing: Vec<u64> = self
            .b2bua
            .ids()
            .into_iter()
            .filter(|id| {
                self.b2bua
                    .get(*id)
                    .is_some_and(|c| c.answer.is_none() && c.state != CallState::Up)
            })
            .collect();
        let cause = format!("{event}: not answered");
        for &id in &ringing {
            let Some(call) = self.b2bua.get(id) else {
                continue;
            };
            let anchored = call.anchor.is_some();
            let parties = (call.caller.clone(), call.callee.clone());
            info!(call = id, call_id = %call.legs[A_LEG].call_id, caller = %parties.0,
                callee = %parties.1, event, "call still ringing ended before the hand-over");
            self.live_event(id, event, parties, 480, now);
            if anchored {
                self.hangup_call(id, &cause, now);
                continue;
            }
            self.cancel_forks(id, now);
            let ending = crate::b2bua::Ending {
                disposition: crate::db::Disposition::NoAnswer,
                hangup_by: crate::db::HangupBy::System,
                cause: cause.clone(),
            };
            self.finish_call(id, ending, Some(480), now);
        }
        self.pump_public(now);
        self.live.ringing_ops = first_op..self.next_op;
        ringing.len()
    }

    /// Whether records of the calls the last [`Engine::end_ringing_calls`] ended are still
    /// being written (their callers' `480`s go out when they are): the hand-over waits for
    /// them, since the address and the database are about to move.
    pub fn ringing_records_pending(&self) -> bool {
        let ops = &self.live.ringing_ops;
        !ops.is_empty() && self.pending.keys().any(|id| ops.contains(&id.0))
    }

    /// A 2xx to an INVITE that matches no transaction here and no call: on a node of a pair,
    /// a phone answering a fork the peer sent before it crashed (the call was still ringing;
    /// its transactions died with the peer). The phone would retransmit its 2xx for 32 s and
    /// then hang up on its own, in a call nobody hears; it gets an ACK and a BYE at once
    /// instead. A node outside a pair ignores stray responses as before.
    pub(crate) fn live_stray_answer(&mut self, resp: &sip::Response, source: SocketAddr, now: Now) {
        use sip::{HeaderName, Method, Request};
        if !self.live.enabled || !(200..300).contains(&resp.status) {
            return;
        }
        let (Some(cseq), Some(call_id), Some(via)) = (resp.cseq(), resp.call_id(), resp.top_via())
        else {
            return;
        };
        if cseq.method != Method::Invite || self.b2bua.by_call_id.contains_key(call_id) {
            return;
        }
        let Some(transport) = Transport::parse(&via.transport) else {
            return;
        };
        let Some(contact) = resp.headers.contact().map(|c| c.uri.clone()) else {
            return;
        };
        // The INVITE the phone answered, as far as its 2xx echoes it.
        let mut invite = Request::new(Method::Invite, contact);
        for name in [HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
            if let Some(v) = resp.headers.get(&name) {
                invite.headers.push(name, v.clone());
            }
        }
        warn!(%call_id, %source, status = resp.status,
            "answer to an INVITE this node never sent (a call ringing at a take-over): ACK and BYE");
        self.ack_and_bye(&invite, resp, transport, source, now);
    }

    /// This node gave the application address up: every stored call is dropped without a
    /// word to its parties and without a record (the peer continues it from its row), its
    /// relay session closed, its row left. Answers how many were dropped.
    pub fn forget_live_calls(&mut self, now: Now) -> usize {
        let ids: Vec<u64> = self.live.saved.keys().copied().collect();
        let mut n = 0;
        for id in ids {
            self.live.saved.remove(&id);
            self.live.taken_over.remove(&id);
            self.live.moh_at.remove(&id);
            self.live.moh_adopting.retain(|_, m| m.call != id);
            let Some(call) = self.b2bua.get(id) else {
                continue;
            };
            let room = call.anchor.as_deref().and_then(|a| a.room());
            let moh = call.moh.as_ref().map(|m| m.endpoint);
            let sessions: Vec<SessionId> = call.media.iter().map(|m| m.id).collect();
            let call_id = call.legs[A_LEG].call_id.clone();
            if let Some(r) = room {
                self.conf_left(r, id, false);
            }
            if let Some(ep) = moh {
                self.b2bua.by_endpoint.remove(&ep);
                self.media(MediaCommand::CloseEndpoint { endpoint: ep });
            }
            for s in sessions {
                self.live.adopting.remove(&s);
            }
            self.app_timers.retain(|(_, c)| *c != id);
            // Closed without a record: the statistics that come back find nobody.
            self.drop_call(id);
            info!(call = id, %call_id, "call in progress handed to the peer");
            n += 1;
        }
        self.pump_public(now);
        n
    }
}
