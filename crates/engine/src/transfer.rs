//! Call transfer: REFER (RFC 3515), blind and attended (Refer-To with Replaces, RFC 3891).
//!
//! Both parties of a relayed call are our dialogs, so we never pass a REFER on: the PBX carries
//! the transfer out itself.
//!
//! Blind: the transferor X (in a call with the transferee Y) sends REFER with `Refer-To:
//! <sip:NUMBER@...>`. The number is routed by [`crate::dialplan`] *as X* (its class of service
//! applies: a number X may not dial is refused with 403 and the call is kept). We answer 202,
//! and ring the target T with Y's SDP pointed at the relay socket that faced X; X hears of the
//! progress by NOTIFY `message/sipfrag` in the REFER's implicit subscription. When T answers,
//! the relay's X side is pointed at T, Y is re-INVITEd back onto the relay (off hold, away from
//! music on hold), X is sent BYE and the call's bridge becomes Y–T: one call, one record. When T
//! is busy or does not answer, X (if still there) gets the failure by NOTIFY and keeps Y; if X
//! has hung up, Y is rung back to X ([`Settings::transfer_callback`], default) or hung up.
//!
//! Attended: X talks to Y in call 1 and to T in call 2, then REFERs Y's call with `Refer-To:
//! <sip:T@...?Replaces=CALLID;to-tag=..;from-tag=..>` naming X's dialog of call 2. T's leg moves
//! into call 1 onto the relay socket that faced X and is re-INVITEd there (Y too, when it was
//! on hold or hearing music), and X's two legs are released (BYE). Call 2 ends with its own record.
//!
//! [`Settings::transfer_callback`]: crate::config::Settings::transfer_callback

use crate::b2bua::own_sdp;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use sip::dialog::Dialog;
use sip::transaction::TransactionId;
use sip::{HeaderName, MediaType, Method, Request, Response};
use tracing::{debug, info, warn};

use crate::b2bua::{Bridge, Call, Ending, LegIdx};
use crate::db::{Direction, Disposition, HangupBy};
use crate::dialplan::{self, Decision, Destination, RouteRequest};
use crate::media::{MediaCommand, SessionId, Side};
use crate::usrloc::Binding;
use crate::{Engine, Now, Owner, nathelper, sdp};

/// Most transfers one call may go through (a loop of transfers must end).
pub const MAX_TRANSFERS_PER_CALL: usize = 16;

/// One step in a call's transfer history (for logs and the call record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEvent {
    /// When.
    pub at: SystemTime,
    /// `blind`, `attended`, `failed`, `callback`.
    pub kind: &'static str,
    /// Who transferred (extension number), or empty.
    pub by: String,
    /// Who was transferred (number).
    pub party: String,
    /// To whom (number).
    pub to: String,
    /// SIP status of the outcome (200, 486, 480, ...).
    pub status: u16,
}

/// A transfer waiting for its target to answer.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The transferor's leg (NOTIFYs go on its dialog).
    pub(crate) transferor: LegIdx,
    pub(crate) transferor_ext: String,
    /// The REFER's CSeq (the subscription's `id`); `None` for a transfer the administrator
    /// started (nobody subscribed).
    pub(crate) refer_seq: Option<u32>,
    pub(crate) transferee: LegIdx,
    /// The number rung.
    pub(crate) target: String,
    /// The target's forks.
    pub(crate) forks: Vec<LegIdx>,
    pub(crate) deadline: Instant,
    /// The forks were cancelled because nobody answered in time.
    pub(crate) timed_out: bool,
    /// This attempt rings the transferor back after a failed transfer.
    pub(crate) callback: bool,
    /// The transferor hung up after the REFER.
    pub(crate) transferor_gone: bool,
    pub(crate) sent_180: bool,
    /// The target is a ring group: its plan, run step by step ([`crate::xfer_group`]).
    pub(crate) group: Option<Box<crate::xfer_group::GroupRun>>,
}

/// Transfer state of one call.
#[derive(Debug, Default)]
pub(crate) struct Xfer {
    pub(crate) pending: Option<Pending>,
    /// Legs transferred away: their BYE is answered 200 and nothing else reaches them.
    pub(crate) released: Vec<LegIdx>,
    /// Re-INVITEs we sent to put a party onto the relay: client transaction -> leg.
    reinvites: Vec<(TransactionId, LegIdx)>,
    /// Legs that joined through a transfer, with the extension they ring.
    pub(crate) parties: Vec<(LegIdx, String)>,
    /// The transferee hears music because of a pending transfer (not because it was held).
    pub(crate) music: bool,
    /// Our re-INVITE offering the transferee the music endpoint.
    pub(crate) music_txn: Option<TransactionId>,
    /// The SDP to put the transferee back on the relay with once that re-INVITE is answered
    /// (the transfer ended while it was in flight).
    relay_after_music: Option<Bytes>,
    /// What happened, in order.
    pub events: Vec<TransferEvent>,
    /// A transferee moved onto an endpoint of ours: where it goes once it accepts the
    /// re-INVITE ([`crate::xfer_app`]).
    pub(crate) app_dest: Option<crate::xfer_app::AppDest>,
    /// An attended transfer of an anchored call: the target's leg, the endpoint opened for it
    /// and, once sent, our re-INVITE moving it there (`anchor::xfer`).
    pub(crate) anchored_join: Option<(LegIdx, crate::media::EndpointId, Option<TransactionId>)>,
}

impl Xfer {
    /// Transfers the call went through (its other events — members tried, pickups — aside).
    pub(crate) fn transfers(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.kind, "blind" | "attended" | "replaces"))
            .count()
    }
}

/// Why a transfer was refused: a SIP-like status (403 class of service, 404 no such call or
/// number, 409 not answered or already transferring, 501 unsupported) and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRefused {
    /// Status.
    pub status: u16,
    /// Reason for people.
    pub reason: String,
}

impl std::fmt::Display for TransferRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

/// What a Refer-To names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferTo {
    /// A number to ring.
    Blind(String),
    /// A number and the dialog (`call-id`, `to-tag`, `from-tag`) it replaces.
    Attended {
        /// The number.
        number: String,
        /// Replaces: Call-ID.
        call_id: String,
        /// Replaces: to-tag.
        to_tag: String,
        /// Replaces: from-tag.
        from_tag: String,
    },
}

/// Decodes `%XX` escapes (URI headers carry `;` and `=` escaped).
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| "truncated %-escape".to_string())?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escape is not UTF-8".to_string())
}

/// Digits (and `*`, `#`, `+`), at most 64: what a transfer may name.
pub(crate) fn is_number(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | '+'))
}

/// Parses a Refer-To value: a `sip:`/`sips:` URI (in angle brackets or bare) whose user part is
/// the number, optionally with a `Replaces` URI header. The error says what is wrong.
pub fn parse_refer_to(value: &str) -> Result<ReferTo, String> {
    let v = value.trim();
    let uri = match (v.find('<'), v.rfind('>')) {
        (Some(l), Some(r)) if l < r => &v[l + 1..r],
        (None, None) => v.split(';').next().unwrap_or(v),
        _ => return Err("unbalanced angle brackets".into()),
    };
    let rest = if let Some(r) = uri.strip_prefix("sip:") {
        r
    } else if let Some(r) = uri.strip_prefix("sips:") {
        r
    } else {
        return Err("only sip: and sips: URIs can be transferred to".into());
    };
    let (addr, headers) = match rest.split_once('?') {
        Some((a, h)) => (a, Some(h)),
        None => (rest, None),
    };
    let Some((user, _host)) = addr.split_once('@') else {
        return Err("the URI names no number (no user part)".into());
    };
    let number = percent_decode(user.split(';').next().unwrap_or(""))?;
    if !is_number(&number) {
        return Err(format!("{number:?} is not a number"));
    }
    let Some(headers) = headers else {
        return Ok(ReferTo::Blind(number));
    };
    let mut replaces = None;
    for h in headers.split('&') {
        let (name, val) = h.split_once('=').unwrap_or((h, ""));
        if name.eq_ignore_ascii_case("replaces") {
            replaces = Some(percent_decode(val)?);
        }
    }
    let Some(r) = replaces else {
        return Ok(ReferTo::Blind(number));
    };
    let mut parts = r.split(';');
    let call_id = parts.next().unwrap_or("").trim().to_string();
    let (mut to_tag, mut from_tag) = (None, None);
    for p in parts {
        match p.trim().split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("to-tag") => to_tag = Some(v.to_string()),
            Some((k, v)) if k.eq_ignore_ascii_case("from-tag") => from_tag = Some(v.to_string()),
            _ => {}
        }
    }
    match (call_id.is_empty(), to_tag, from_tag) {
        (false, Some(to_tag), Some(from_tag)) => Ok(ReferTo::Attended {
            number,
            call_id,
            to_tag,
            from_tag,
        }),
        _ => Err("Replaces needs a Call-ID, to-tag and from-tag".into()),
    }
}

/// A Replaces header (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReplacesHdr {
    call_id: String,
    to_tag: String,
    from_tag: String,
    early_only: bool,
}

fn parse_replaces(v: &str) -> Option<ReplacesHdr> {
    let mut parts = v.split(';');
    let call_id = parts.next()?.trim().to_string();
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for p in parts {
        let p = p.trim();
        match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("to-tag") => {
                to_tag = Some(v.trim().to_string())
            }
            Some((k, v)) if k.trim().eq_ignore_ascii_case("from-tag") => {
                from_tag = Some(v.trim().to_string())
            }
            None if p.eq_ignore_ascii_case("early-only") => early_only = true,
            _ => {}
        }
    }
    (!call_id.is_empty()).then_some(())?;
    Some(ReplacesHdr {
        call_id,
        to_tag: to_tag?,
        from_tag: from_tag?,
        early_only,
    })
}

/// `body` with every direction attribute made `sendrecv` (a held party's SDP offered to a new
/// peer must not keep the hold).
fn sendrecv(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim_end();
        if matches!(t, "a=sendonly" | "a=recvonly" | "a=inactive") {
            out.push_str("a=sendrecv");
            out.push_str(&line[t.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// True when an SDP body does not say plain two-way media (hold, one-way, 0.0.0.0).
fn not_sendrecv(body: &[u8]) -> bool {
    sdp::summarize(body).is_ok_and(|s| s.null_address || s.direction != sdp::Direction::SendRecv)
}

/// The extension number behind a leg of `call`, if the leg is an extension's phone.
pub(crate) fn leg_ext(call: &Call, leg: LegIdx, snap: &crate::config::Snapshot) -> Option<String> {
    if let Some((_, n)) = call
        .xfer
        .as_deref()
        .and_then(|x| x.parties.iter().find(|(l, _)| *l == leg))
    {
        return Some(n.clone());
    }
    let l = call.legs.get(leg)?;
    match l.side {
        Side::A if leg == crate::b2bua::A_LEG => {
            (call.route.direction != Direction::Inbound).then(|| call.caller.clone())
        }
        _ => {
            if call.route.direction == Direction::Outbound || l.trunk.is_some() {
                return None;
            }
            let b = call
                .rung
                .iter()
                .find(|b| b.received == l.target.destination)?;
            snap.extensions
                .iter()
                .find(|((t, _), e)| *t == call.tenant_id && e.id == b.extension_id)
                .map(|((_, n), _)| n.clone())
        }
    }
}

/// Takes leg `i` out of `call`, leaving a placeholder with no Call-ID (nothing reaches it).
pub(crate) fn take_leg(call: &mut Call, i: LegIdx) -> crate::b2bua::Leg {
    let placeholder = {
        let l = &call.legs[i];
        crate::b2bua::Leg::new(
            l.side,
            String::new(),
            l.txn,
            l.target,
            l.local,
            String::new(),
        )
    };
    std::mem::replace(&mut call.legs[i], placeholder)
}

/// The transfer target's fork of `call` whose INVITE is `txn`.
fn pending_fork(call: &Call, txn: TransactionId) -> Option<LegIdx> {
    let p = call.xfer.as_deref()?.pending.as_ref()?;
    p.forks
        .iter()
        .copied()
        .find(|i| call.legs.get(*i).is_some_and(|l| l.txn == txn))
}

/// The number a party of `call` is known by (for the target's caller ID).
pub(crate) fn leg_number(
    call: &Call,
    leg: LegIdx,
    snap: &crate::config::Snapshot,
) -> (String, String) {
    if leg == crate::b2bua::A_LEG {
        return (call.caller.clone(), call.caller_name.clone());
    }
    match leg_ext(call, leg, snap) {
        Some(n) => (n, String::new()),
        None => (call.callee.clone(), String::new()),
    }
}

impl Engine {
    /// A REFER outside any dialog: nobody may transfer a call they are not in.
    pub(crate) fn transfer_stray_refer(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        now: Now,
    ) {
        // Logged per source with summaries (a scanner must not fill the disk).
        let log = self.rejected_log.event(source.ip(), now.mono, || {
            "REFER outside a dialog".to_string()
        });
        if log.is_log() {
            info!(peer = %source, call_id = %req.call_id().unwrap_or_default(), "REFER outside a dialog refused");
        }
        let r = Response::for_request(req, 403, Some("REFER outside a dialog"));
        self.respond(txn, r, now);
    }

    /// In-dialog requests transfer handles itself: REFER, and BYE (or anything else) from a
    /// leg that was transferred away or that hangs up while its transfer is pending. True when
    /// handled.
    pub(crate) fn transfer_in_dialog(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        now: Now,
    ) -> bool {
        if req.method == Method::Refer {
            self.on_refer(txn, req, source, now);
            return true;
        }
        let call_id = req.call_id().unwrap_or_default();
        let Some((id, leg)) = self.b2bua.by_call_id.get(call_id).copied() else {
            return false;
        };
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let Some(x) = call.xfer.as_deref_mut() else {
            return false;
        };
        let released = x.released.contains(&leg);
        let leaving =
            req.method == Method::Bye && x.pending.as_ref().is_some_and(|p| p.transferor == leg);
        if !released && !leaving {
            return false;
        }
        let check = call.legs[leg].dialog.as_mut().map(|d| d.on_request(req));
        if !matches!(check, Some(Ok(()))) || (released && req.method != Method::Bye) {
            self.respond(txn, Response::for_request(req, 481, None), now);
            return true;
        }
        if leaving && let Some(x) = call.xfer.as_deref_mut() {
            if let Some(p) = x.pending.as_mut() {
                p.transferor_gone = true;
            }
            x.released.push(leg);
            info!(call = id, peer = %source, "transferor hung up; the transfer goes on");
        }
        self.respond(txn, Response::for_request(req, 200, None), now);
        true
    }

    pub(crate) fn refer_refused(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        status: u16,
        reason: &str,
        now: Now,
    ) {
        let log = self
            .rejected_log
            .event(source.ip(), now.mono, || format!("REFER {status} {reason}"));
        if log.is_log() {
            info!(peer = %source, call_id = %req.call_id().unwrap_or_default(), status, reason, "REFER refused");
        }
        self.respond(txn, Response::for_request(req, status, Some(reason)), now);
    }

    fn on_refer(&mut self, txn: TransactionId, req: &Request, source: SocketAddr, now: Now) {
        let call_id = req.call_id().unwrap_or_default();
        let Some((id, leg)) = self.b2bua.by_call_id.get(call_id).copied() else {
            return self.refer_refused(txn, req, source, 481, "No such dialog", now);
        };
        let Some(call) = self.b2bua.get_mut(id) else {
            return self.refer_refused(txn, req, source, 481, "No such dialog", now);
        };
        let released = call
            .xfer
            .as_deref()
            .is_some_and(|x| x.released.contains(&leg));
        let peer = call.bridge.and_then(|b| b.peer(leg));
        if released || call.legs[leg].dialog.is_none() {
            return self.refer_refused(txn, req, source, 481, "No such dialog", now);
        }
        // The dialog's tags and CSeq: a third party guessing the Call-ID gets no further.
        let check = call.legs[leg].dialog.as_mut().map(|d| d.on_request(req));
        if let Some(Err(e)) = check {
            let status = e.status_code();
            return self.refer_refused(txn, req, source, status, "Not in this dialog", now);
        }
        if call.anchor.is_some() {
            let pending = call.xfer.as_deref().is_some_and(|x| x.pending.is_some());
            if pending {
                return self.refer_refused(txn, req, source, 491, "Transfer in progress", now);
            }
            return self.anchored_refer((txn, req, source), id, leg, now);
        }
        let Some(peer) = peer else {
            return self.refer_refused(txn, req, source, 481, "Call not answered", now);
        };
        let pending = call.xfer.as_deref().is_some_and(|x| x.pending.is_some());
        if pending {
            return self.refer_refused(txn, req, source, 491, "Transfer in progress", now);
        }
        if call
            .xfer
            .as_deref()
            .is_some_and(|x| x.transfers() >= MAX_TRANSFERS_PER_CALL)
        {
            return self.refer_refused(txn, req, source, 403, "Too many transfers", now);
        }
        let mut values = req.headers.get_all(&HeaderName::ReferTo);
        let (Some(value), None) = (values.next(), values.next()) else {
            return self.refer_refused(txn, req, source, 400, "Exactly one Refer-To needed", now);
        };
        let refer_to = match parse_refer_to(value.as_str()) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("Bad Refer-To: {e}");
                return self.refer_refused(txn, req, source, 400, &reason, now);
            }
        };
        let Some(by) = leg_ext(call, leg, &self.snap) else {
            return self.refer_refused(
                txn,
                req,
                source,
                403,
                "Only an extension may transfer",
                now,
            );
        };
        let refer_seq = req.cseq().map(|c| c.seq).unwrap_or(1);
        match refer_to {
            ReferTo::Blind(number) => {
                let p = (id, leg, peer, by, refer_seq);
                self.blind_refer(txn, req, source, p, &number, now)
            }
            ReferTo::Attended {
                call_id,
                to_tag,
                from_tag,
                ..
            } => {
                let p = (id, leg, peer, by, refer_seq);
                self.attended_refer(txn, req, source, p, (&call_id, &to_tag, &from_tag), now)
            }
        }
    }

    /// Answers 202 with our Contact.
    pub(crate) fn accept_refer(
        &mut self,
        txn: TransactionId,
        req: &Request,
        id: u64,
        leg: LegIdx,
        now: Now,
    ) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let l = &call.legs[leg];
        let contact = self.contact_uri(None, l.local, l.target.transport);
        let r = Response::for_request(req, 202, Some("Accepted"))
            .with_header(HeaderName::Contact, format!("<{contact}>"));
        self.respond(txn, r, now);
    }

    /// The dialplan's answer for `number` dialled by extension `by` (the transferor: its
    /// class of service applies).
    pub(crate) fn transfer_decision(
        &self,
        tenant: i64,
        by: &str,
        number: &str,
        now: Now,
    ) -> Decision {
        dialplan::route(
            &RouteRequest {
                tenant,
                caller: by,
                digits: number,
                at: now.wall,
            },
            &self.snap,
        )
    }

    /// Where the transferor's call may send `number`: the extension and its live contacts, or
    /// the status and reason to refuse with.
    fn transfer_route(
        &self,
        tenant: i64,
        by: &str,
        number: &str,
        now: Now,
    ) -> Result<(String, Vec<Binding>), (u16, String)> {
        match self.transfer_decision(tenant, by, number, now) {
            Decision::Reject { status, reason } => Err((status, reason)),
            Decision::Route {
                destination: Destination::Ext(n),
                ..
            } => {
                let Some(e) = self.snap.extensions.get(&(tenant, n.clone())) else {
                    return Err((404, "Not Found".into()));
                };
                let bindings = self
                    .usrloc
                    .get(e.id)
                    .iter()
                    .filter(|b| b.expires_at > now.wall)
                    .cloned()
                    .collect();
                Ok((n, bindings))
            }
            Decision::Outside { .. } | Decision::Route { .. } | Decision::Feature { .. } => Err((
                501,
                "Transfer to this kind of destination is not supported yet".into(),
            )),
        }
    }

    fn blind_refer(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        (id, leg, peer, by, refer_seq): (u64, LegIdx, LegIdx, String, u32),
        number: &str,
        now: Now,
    ) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        if let Some(dest) = self.xfer_app_target(tenant, &by, number, now) {
            let p = (id, leg, peer, by, Some(refer_seq));
            if let Err((status, reason)) = self.blind_to_app(Some((txn, req)), p, number, dest, now)
            {
                return self.refer_refused(txn, req, source, status, reason, now);
            }
            return;
        }
        if let Some(group) = self.xfer_group_target(tenant, &by, number, now) {
            return match group {
                Ok(name) => {
                    info!(call = id, by = %by, to = %number, group = %name, "blind transfer to a ring group accepted");
                    self.accept_refer(txn, req, id, leg, now);
                    self.notify_transferor(id, leg, Some(refer_seq), 100, false, now);
                    let p = (leg, peer, by);
                    self.begin_group_transfer(id, p, Some(refer_seq), number, &name, now);
                }
                Err((status, reason)) => {
                    info!(call = id, by = %by, to = %number, status, %reason, "transfer refused; the call is kept");
                    self.refer_refused(txn, req, source, status, &reason, now)
                }
            };
        }
        let (target, bindings) = match self.transfer_route(tenant, &by, number, now) {
            Ok(t) => t,
            Err((status, reason)) => {
                info!(call = id, peer = %source, by = %by, to = %number, status, %reason, "transfer refused; the call is kept");
                return self.refer_refused(txn, req, source, status, &reason, now);
            }
        };
        info!(call = id, by = %by, to = %target, "blind transfer accepted");
        self.accept_refer(txn, req, id, leg, now);
        self.notify_transferor(id, leg, Some(refer_seq), 100, false, now);
        self.begin_blind(
            id,
            (leg, peer, by),
            Some(refer_seq),
            (target, bindings),
            now,
        );
    }

    /// Starts ringing the target of a blind transfer of `y` away from `x` (extension `by`).
    fn begin_blind(
        &mut self,
        id: u64,
        (x, y, by): (LegIdx, LegIdx, String),
        refer_seq: Option<u32>,
        (target, bindings): (String, Vec<Binding>),
        now: Now,
    ) {
        let p = Pending {
            transferor: x,
            transferor_ext: by,
            refer_seq,
            transferee: y,
            target,
            forks: Vec::new(),
            deadline: now.mono + self.snap.settings.no_answer,
            timed_out: false,
            callback: false,
            transferor_gone: false,
            sent_180: false,
            group: None,
        };
        self.ring_target(id, p, bindings, now);
        self.start_transfer_music(id, y);
    }

    /// Music for the transferee `y` while the target rings, unless it hears music already or
    /// its media is not two-way (it was held).
    pub(crate) fn start_transfer_music(&mut self, id: u64, y: LegIdx) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let pending = call.xfer.as_deref().is_some_and(|x| x.pending.is_some());
        let two_way = call.legs[y]
            .sdp
            .as_deref()
            .is_some_and(|b| !not_sendrecv(b));
        if !pending || call.moh.is_some() || !two_way || !self.snap.settings.transfer_music {
            return;
        }
        let (ip, call_id) = (call.legs[y].local.ip(), call.legs[y].call_id.clone());
        let ep = self.b2bua.new_endpoint(id);
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        call.moh = Some(Box::new(crate::moh::Moh {
            endpoint: ep,
            held: y,
            stage: crate::moh::Stage::TransferOpening,
        }));
        if let Some(x) = call.xfer.as_deref_mut() {
            x.music = true;
        }
        self.media(MediaCommand::OpenEndpoint {
            endpoint: ep,
            call_id,
            ip,
            group: id,
        });
    }

    /// The transferee's music endpoint opened: offer it to the transferee (we only send), or
    /// drop it when the transfer is over already.
    pub(crate) fn transfer_music_opened(&mut self, id: u64, r: Result<SocketAddr, ()>, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let pending = call.xfer.as_deref().is_some_and(|x| x.pending.is_some());
        let Some(m) = call.moh.as_deref() else {
            return;
        };
        let (ep, y) = (m.endpoint, m.held);
        let (Ok(local), true) = (r, pending) else {
            call.moh = None;
            if let Some(x) = call.xfer.as_deref_mut() {
                x.music = false;
            }
            self.b2bua.by_endpoint.remove(&ep);
            self.media(MediaCommand::CloseEndpoint { endpoint: ep });
            return;
        };
        let addr = SocketAddr::new(
            nathelper::advertised_ip(adv, call.legs[y].local),
            local.port(),
        );
        let offer = crate::sdp_local::offer(addr, Some(&call.codec), 1);
        let offer = String::from_utf8_lossy(&offer).replace("a=sendrecv", "a=sendonly");
        let Some((mut inv, target)) = self.leg_request(id, y, Method::Invite) else {
            return;
        };
        inv.headers.push(HeaderName::Allow, crate::ALLOW);
        inv.set_body(&MediaType::sdp(), Bytes::from(offer));
        let Some(t) = self.send_request(inv, target, Owner::Call(id), now) else {
            return;
        };
        if let Some(c) = self.b2bua.get_mut(id) {
            if let Some(m) = c.moh.as_deref_mut() {
                m.stage = crate::moh::Stage::Offered(t);
            }
            if let Some(x) = c.xfer.as_deref_mut() {
                x.music_txn = Some(t);
            }
        }
    }

    /// The transfer ended with the transferee hearing music because of it: the music stops and
    /// the transferee goes back onto the relay, facing media `sdp` (the new or the old peer's).
    pub(crate) fn stop_transfer_music(&mut self, id: u64, sdp_body: Bytes, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(x) = call.xfer.as_deref_mut() else {
            return;
        };
        if !x.music {
            return;
        }
        x.music = false;
        if x.music_txn.is_some() {
            // Our offer is still in flight: finish when it is answered.
            x.relay_after_music = Some(sdp_body);
            return;
        }
        let Some(m) = call.moh.take() else {
            return;
        };
        let offered = !matches!(m.stage, crate::moh::Stage::TransferOpening);
        self.b2bua.by_endpoint.remove(&m.endpoint);
        self.media(MediaCommand::CloseEndpoint {
            endpoint: m.endpoint,
        });
        if offered {
            self.reinvite_onto_relay(id, m.held, &sdp_body, adv, now);
        }
    }

    /// Blind transfer started by an administrator (panel, API) that moves `moves` (see
    /// [`crate::xfer_party`]; `None`: the callee hands the caller on) to `to`. A refusal a
    /// phone would get as 486 (a full park lot) is a conflict (409) here: no SIP busy reaches
    /// an administrator.
    pub fn transfer_moving(
        &mut self,
        id: u64,
        to: &str,
        moves: Option<crate::xfer_party::Party>,
        now: Now,
    ) -> Result<(), TransferRefused> {
        self.admin_transfer(id, to, moves, now)
            .map_err(|e| match e.status {
                486 => TransferRefused { status: 409, ..e },
                _ => e,
            })
    }

    fn admin_transfer(
        &mut self,
        id: u64,
        to: &str,
        moves: Option<crate::xfer_party::Party>,
        now: Now,
    ) -> Result<(), TransferRefused> {
        let refuse = |status: u16, reason: &str| {
            Err(TransferRefused {
                status,
                reason: reason.to_string(),
            })
        };
        let Some(call) = self.b2bua.get(id) else {
            return refuse(404, "No such call");
        };
        if call.anchor.is_some() {
            let number = to.trim();
            if !is_number(number) {
                return refuse(400, "The target must be a number");
            }
            let (x, by) = self.anchored_transferor(id)?;
            let r = self.anchored_blind_transfer(None, (id, x, by), number, now);
            self.pump_public(now);
            return r;
        }
        let Some(bridge) = call.bridge else {
            return refuse(409, "Call not answered");
        };
        if call.xfer.as_deref().is_some_and(|x| x.pending.is_some()) {
            return refuse(409, "Transfer in progress");
        }
        let (a, b) = if bridge.a == crate::b2bua::A_LEG {
            (bridge.a, bridge.b)
        } else {
            (bridge.b, bridge.a)
        };
        let (x, by) = crate::xfer_party::transferor(call, (a, b), moves, &self.snap)?;
        let Some(y) = bridge.peer(x) else {
            return refuse(409, "Call not answered");
        };
        let tenant = call.tenant_id;
        let number = to.trim();
        if !is_number(number) {
            return refuse(400, "The target must be a number");
        }
        if let Some(dest) = self.xfer_app_target(tenant, &by, number, now) {
            let r = self.blind_to_app(None, (id, x, y, by, None), number, dest, now);
            self.pump_public(now);
            return r.map_err(|(status, reason)| TransferRefused {
                status,
                reason: reason.to_string(),
            });
        }
        if let Some(group) = self.xfer_group_target(tenant, &by, number, now) {
            let name = group.map_err(|(status, reason)| TransferRefused { status, reason })?;
            info!(call = id, by = %by, to = %number, group = %name, "transfer to a ring group by the administrator");
            self.begin_group_transfer(id, (x, y, by), None, number, &name, now);
            self.pump_public(now);
            return Ok(());
        }
        match self.transfer_route(tenant, &by, number, now) {
            Ok(t) => {
                info!(call = id, by = %by, to = %t.0, "transfer by the administrator");
                self.begin_blind(id, (x, y, by), None, t, now);
                self.pump_public(now);
                Ok(())
            }
            Err((status, reason)) => {
                info!(call = id, by = %by, to = %number, status, %reason, "transfer refused; the call is kept");
                Err(TransferRefused { status, reason })
            }
        }
    }

    /// Rings `p.target`'s contacts with the transferee's media; no contact reached fails the
    /// transfer at once.
    pub(crate) fn ring_target(
        &mut self,
        id: u64,
        mut p: Pending,
        bindings: Vec<Binding>,
        now: Now,
    ) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let Some(bridge) = call.bridge else {
            return;
        };
        let x_side = call.legs[p.transferor].side;
        let y_sdp = call.legs[p.transferee].sdp.clone();
        let (from_num, mut from_name) = leg_number(call, p.transferee, &self.snap);
        if let Some(g) = p.group.as_deref() {
            from_name = g.caller_name(&from_num, &from_name);
        }
        let relay = call
            .media
            .iter()
            .find(|m| m.id == bridge.session)
            .and_then(|m| m.ports)
            .map(|(a, b)| if x_side == Side::A { a } else { b });
        let mut forks = Vec::new();
        if let (Some(y_sdp), Some(relay)) = (y_sdp, relay) {
            for b in &bindings {
                let at = SocketAddr::new(nathelper::advertised_ip(adv, b.local), relay.port());
                let Ok(body) = sdp::rewrite(&y_sdp, at) else {
                    continue;
                };
                let who = (from_num.as_str(), from_name.as_str(), p.target.as_str());
                if let Some(mut leg) = self.send_fork(id, b, who, 70, sendrecv(&body), now) {
                    leg.side = x_side;
                    leg.session = Some(bridge.session);
                    forks.push(leg);
                }
            }
        }
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return;
        };
        for l in forks {
            let i = call.legs.len();
            self.b2bua.by_call_id.insert(l.call_id.clone(), (id, i));
            call.legs.push(l);
            p.forks.push(i);
        }
        let none = p.forks.is_empty();
        let group = p.group.is_some();
        call.xfer.get_or_insert_with(Box::default).pending = Some(p);
        if none && group {
            self.group_step_failed(id, &[480], now);
        } else if none {
            self.transfer_failed(id, 480, now);
        }
    }

    /// A new request in `leg`'s dialog, with our Via and Contact, and where it goes.
    pub(crate) fn leg_request(
        &mut self,
        id: u64,
        leg: LegIdx,
        method: Method,
    ) -> Option<(Request, sip::transaction::Target)> {
        let l = self.b2bua.get(id)?.legs.get(leg)?;
        let (local, transport, target) = (l.local, l.target.transport, l.target);
        let via = self.our_via(local, transport);
        let contact = self.contact_uri(None, local, transport);
        let d = self.b2bua.get_mut(id)?.legs[leg].dialog.as_mut()?;
        let mut r = d.new_request(method, &via);
        r.headers.push(HeaderName::Contact, format!("<{contact}>"));
        Some((r, target))
    }

    /// NOTIFY `message/sipfrag` to the transferor about `status`; `done` ends the subscription.
    pub(crate) fn notify_transferor(
        &mut self,
        id: u64,
        leg: LegIdx,
        refer_seq: Option<u32>,
        status: u16,
        done: bool,
        now: Now,
    ) {
        let Some(refer_seq) = refer_seq else {
            return;
        };
        let Some((mut n, target)) = self.leg_request(id, leg, Method::Notify) else {
            return;
        };
        n.headers
            .push(HeaderName::Event, format!("refer;id={refer_seq}"));
        let state = if done {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        n.headers.push(HeaderName::SubscriptionState, state);
        let frag = format!("SIP/2.0 {status} {}\r\n", sip::reason_phrase(status));
        if let Ok(ct) = MediaType::parse("message/sipfrag;version=2.0") {
            n.set_body(&ct, Bytes::from(frag));
        }
        self.send_request(n, target, Owner::Call(id), now);
    }

    /// A response that belongs to a transfer (a target's fork, our re-INVITE). True when
    /// handled here.
    pub(crate) fn transfer_response(
        &mut self,
        id: u64,
        txn: TransactionId,
        resp: &Response,
        now: Now,
    ) -> bool {
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let Some(x) = call.xfer.as_deref_mut() else {
            return false;
        };
        if let Some(pos) = x.reinvites.iter().position(|(t, _)| *t == txn) {
            if resp.status < 200 {
                return true;
            }
            let (_, leg) = x.reinvites.remove(pos);
            self.reinvite_answered(id, leg, txn, resp);
            return true;
        }
        if x.music_txn == Some(txn) {
            if resp.status >= 200 {
                self.music_offer_answered(id, txn, resp, now);
            }
            return true;
        }
        if x.anchored_join.is_some_and(|(_, _, t)| t == Some(txn)) {
            if resp.status >= 200 {
                self.anchored_join_answered(id, txn, resp, now);
            }
            return true;
        }
        let Some(fork) = pending_fork(call, txn) else {
            return false;
        };
        let Some(p) = call.xfer.as_deref_mut().and_then(|x| x.pending.as_mut()) else {
            return false;
        };
        let mut ringing = None;
        match resp.status {
            101..=199 if !p.sent_180 && !p.callback && !p.transferor_gone => {
                p.sent_180 = true;
                ringing = Some((p.transferor, p.refer_seq));
            }
            status @ 300.. => call.legs[fork].final_status = Some(status),
            _ => {}
        }
        match resp.status {
            101..=199 => {
                if let Some((leg, seq)) = ringing {
                    self.notify_transferor(id, leg, seq, 180, false, now);
                }
            }
            200..=299 => self.target_answered(id, fork, resp, now),
            300.. => self.fork_failed(id, now),
            _ => {}
        }
        true
    }

    /// A client transaction of a transfer timed out or could not be sent.
    pub(crate) fn transfer_tx_failed(&mut self, id: u64, txn: TransactionId, now: Now) -> bool {
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let Some(x) = call.xfer.as_deref_mut() else {
            return false;
        };
        if let Some(pos) = x.reinvites.iter().position(|(t, _)| *t == txn) {
            x.reinvites.remove(pos);
            warn!(call = id, "transferred party did not answer our re-INVITE");
            return true;
        }
        if x.anchored_join.is_some_and(|(_, _, t)| t == Some(txn)) {
            warn!(call = id, "transfer target did not answer our re-INVITE");
            self.anchored_hangup(id, "transfer target lost", now);
            return true;
        }
        let Some(fork) = pending_fork(call, txn) else {
            return false;
        };
        if call.legs[fork].final_status.is_none() {
            call.legs[fork].final_status = Some(408);
            self.fork_failed(id, now);
        }
        true
    }

    /// One target fork failed: when none is left ringing, the transfer failed.
    fn fork_failed(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let Some(p) = call.xfer.as_deref().and_then(|x| x.pending.as_ref()) else {
            return;
        };
        let statuses: Vec<u16> = p
            .forks
            .iter()
            .filter_map(|i| call.legs.get(*i).map(|l| l.final_status))
            .collect::<Option<Vec<u16>>>()
            .unwrap_or_default();
        if statuses.is_empty() {
            return; // some fork still rings
        }
        if p.group.is_some() {
            return self.group_step_failed(id, &statuses, now);
        }
        let status = if p.timed_out {
            480
        } else {
            crate::b2bua::fork_failure(&statuses, false).0
        };
        self.transfer_failed(id, status, now);
    }

    /// The number of the party a pending transfer moves.
    pub(crate) fn pending_party(&self, id: u64) -> String {
        self.b2bua
            .get(id)
            .and_then(|c| {
                let y = c.xfer.as_deref()?.pending.as_ref()?.transferee;
                Some(leg_number(c, y, &self.snap).0)
            })
            .unwrap_or_default()
    }

    /// The transfer's target did not take the call: tell the transferor (who keeps the
    /// transferee), or ring the transferor back, or hang up.
    pub(crate) fn transfer_failed(&mut self, id: u64, status: u16, now: Now) {
        let party = self.pending_party(id);
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(x) = call.xfer.as_deref_mut() else {
            return;
        };
        let Some(p) = x.pending.take() else {
            return;
        };
        x.events.push(TransferEvent {
            at: now.wall,
            kind: if p.callback { "callback" } else { "failed" },
            by: p.transferor_ext.clone(),
            party,
            to: p.target.clone(),
            status,
        });
        info!(call = id, to = %p.target, status, callback = p.callback, "transfer target did not answer");
        if !p.transferor_gone && !p.callback {
            // The transferor is still in the call: it keeps the transferee.
            self.notify_transferor(id, p.transferor, p.refer_seq, status, true, now);
            let x_sdp = self
                .b2bua
                .get(id)
                .and_then(|c| c.legs[p.transferor].sdp.clone())
                .unwrap_or_default();
            self.stop_transfer_music(id, x_sdp, now);
            return;
        }
        if !p.callback && self.snap.settings.transfer_callback {
            let ext = p.transferor_ext.clone();
            if let Ok((target, bindings)) = self.transfer_route(tenant, &ext, &ext, now) {
                info!(call = id, to = %target, "ringing the transferor back");
                let cb = Pending {
                    target,
                    forks: Vec::new(),
                    deadline: now.mono + self.snap.settings.no_answer,
                    timed_out: false,
                    callback: true,
                    sent_180: false,
                    group: None,
                    ..p
                };
                return self.ring_target(id, cb, bindings, now);
            }
        }
        // Nobody is left for the transferee.
        self.bye_leg(id, p.transferee, now);
        let ending = Ending {
            disposition: Disposition::Answered,
            hangup_by: HangupBy::System,
            cause: format!("transfer failed: {status} {}", sip::reason_phrase(status)),
        };
        self.finish_call(id, ending, None, now);
    }

    /// The target answered: it takes the transferor's place on the relay.
    fn target_answered(&mut self, id: u64, i: LegIdx, resp: &Response, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let (target, leg_txn, leg_local) = {
            let l = &call.legs[i];
            (l.target, l.txn, l.local)
        };
        let Some(invite) = self.layer.request(leg_txn) else {
            return;
        };
        let dialog = match Dialog::uac(invite, resp) {
            Ok(d) => d,
            Err(e) => {
                warn!(call = id, error = %e, "unusable 2xx from transfer target");
                return;
            }
        };
        let invite_seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let party = self.pending_party(id);
        let via = self.our_via(leg_local, target.transport);
        let ack = Bytes::from(dialog.ack(invite_seq, &via).to_bytes());
        self.layer.send_raw(ack.clone(), target);
        self.layer.release_request(leg_txn);
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(bridge) = call.bridge else {
            return;
        };
        let Some(mut p) = call.xfer.as_deref_mut().and_then(|x| x.pending.take()) else {
            return;
        };
        if let Some(member) = p
            .group
            .as_deref()
            .and_then(|g| g.member_at(call.legs[i].target.destination))
        {
            // A ring group's member answered: it is the party from now on.
            p.target = member;
        }
        {
            let l = &mut call.legs[i];
            l.ack = Some(ack);
            l.dialog = Some(dialog);
            l.final_status = Some(resp.status);
            l.sdp = Some(own_sdp(&resp.body));
        }
        let others: Vec<TransactionId> = p
            .forks
            .iter()
            .filter(|f| **f != i && call.legs[**f].final_status.is_none())
            .map(|f| call.legs[*f].txn)
            .collect();
        let session = bridge.session;
        let t_side = call.legs[i].side;
        call.bridge = Some(Bridge {
            a: p.transferee,
            b: i,
            session,
        });
        let music = call.xfer.as_deref().is_some_and(|x| x.music);
        let moh = if music { None } else { call.moh.take() };
        let kind = if p.callback { "callback" } else { "blind" };
        if let Some(x) = call.xfer.as_deref_mut() {
            x.parties.push((i, p.target.clone()));
            if !p.callback {
                x.released.push(p.transferor);
            }
            x.events.push(TransferEvent {
                at: now.wall,
                kind,
                by: p.transferor_ext.clone(),
                party,
                to: p.target.clone(),
                status: 200,
            });
        }
        info!(call = id, to = %p.target, kind, "transfer completed");
        for t in others {
            let _ = self.layer.cancel(t, now.mono);
        }
        if let Some(m) = &moh {
            self.b2bua.by_endpoint.remove(&m.endpoint);
            self.media(MediaCommand::CloseEndpoint {
                endpoint: m.endpoint,
            });
        }
        if let Ok(s) = sdp::summarize(&resp.body)
            && let Some(rtp) = s.rtp
        {
            self.media(MediaCommand::SetRemote {
                session,
                side: t_side,
                rtp,
                rtcp: s.rtcp,
            });
        }
        self.media(MediaCommand::SetHold {
            session,
            on_hold: false,
        });
        // A transferee on hold or hearing music is brought back onto the relay; otherwise its
        // media is untouched (the relay socket it sends to stays the same).
        let held = moh.is_some()
            || self.b2bua.get(id).is_some_and(|c| {
                [p.transferor, p.transferee]
                    .iter()
                    .any(|l| c.legs[*l].sdp.as_deref().is_some_and(not_sendrecv))
            });
        if music {
            self.stop_transfer_music(id, resp.body.clone(), now);
        } else if held {
            let body = resp.body.clone();
            self.reinvite_onto_relay(id, p.transferee, &body, adv, now);
        }
        if !p.callback && !p.transferor_gone {
            self.notify_transferor(id, p.transferor, p.refer_seq, 200, true, now);
            self.bye_leg(id, p.transferor, now);
        }
        // The pair's stored copy follows the new bridge (`engine::live_calls`).
        self.live_call_save(id, now);
    }

    /// Re-INVITEs `leg` with `peer_sdp` (the other party's media) pointed at the relay socket
    /// facing `leg`.
    fn reinvite_onto_relay(
        &mut self,
        id: u64,
        leg: LegIdx,
        peer_sdp: &[u8],
        adv: Option<std::net::IpAddr>,
        now: Now,
    ) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let Some(bridge) = call.bridge else {
            return;
        };
        let l = &call.legs[leg];
        let (local, side) = (l.local, l.side);
        let Some((a, b)) = call
            .media
            .iter()
            .find(|m| m.id == bridge.session)
            .and_then(|m| m.ports)
        else {
            return;
        };
        let port = if side == Side::A { a.port() } else { b.port() };
        let relay = SocketAddr::new(nathelper::advertised_ip(adv, local), port);
        let Ok(body) = sdp::rewrite(peer_sdp, relay) else {
            warn!(call = id, "transfer: no usable SDP to re-INVITE with");
            return;
        };
        let Some((mut inv, target)) = self.leg_request(id, leg, Method::Invite) else {
            return;
        };
        inv.headers.push(HeaderName::Allow, crate::ALLOW);
        inv.set_body(&MediaType::sdp(), Bytes::from(sendrecv(&body)));
        if let Some(t) = self.send_request(inv, target, Owner::Call(id), now)
            && let Some(x) = self
                .b2bua
                .get_mut(id)
                .map(|c| c.xfer.get_or_insert_with(Box::default))
        {
            x.reinvites.push((t, leg));
        }
    }

    /// The transferee answered our music offer: ACK, start (or drop) the music, and when the
    /// transfer ended meanwhile, put the transferee back onto the relay.
    fn music_offer_answered(&mut self, id: u64, txn: TransactionId, resp: &Response, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(x) = call.xfer.as_deref_mut() else {
            return;
        };
        x.music_txn = None;
        let after = x.relay_after_music.take();
        let Some(y) = call.moh.as_deref().map(|m| m.held) else {
            return;
        };
        if (200..300).contains(&resp.status) {
            self.ack_reinvite(id, y, txn, resp);
        }
        self.moh_response(id, txn, resp, now);
        if let Some(body) = after
            && let Some(m) = self.b2bua.get_mut(id).and_then(|c| c.moh.take())
        {
            self.b2bua.by_endpoint.remove(&m.endpoint);
            self.media(MediaCommand::CloseEndpoint {
                endpoint: m.endpoint,
            });
            self.reinvite_onto_relay(id, y, &body, adv, now);
        }
    }

    /// ACKs a 2xx to our re-INVITE `txn` on `leg`'s dialog.
    pub(crate) fn ack_reinvite(
        &mut self,
        id: u64,
        leg: LegIdx,
        txn: TransactionId,
        resp: &Response,
    ) {
        let Some(l) = self.b2bua.get(id).and_then(|c| c.legs.get(leg)) else {
            return;
        };
        let (local, transport, target) = (l.local, l.target.transport, l.target);
        let seq = self
            .layer
            .request(txn)
            .and_then(|r| r.cseq())
            .map(|c| c.seq)
            .or_else(|| resp.cseq().map(|c| c.seq))
            .unwrap_or(1);
        let via = self.our_via(local, transport);
        if let Some(d) = self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.legs[leg].dialog.as_mut())
        {
            let _ = d.on_response(&Method::Invite, resp);
            let ack = d.ack(seq, &via);
            self.layer
                .send_stateless(&sip::Message::Request(ack), target);
        }
    }

    /// Our re-INVITE was answered: ACK a 2xx and point the relay at the party's new media.
    fn reinvite_answered(&mut self, id: u64, leg: LegIdx, txn: TransactionId, resp: &Response) {
        if !(200..300).contains(&resp.status) {
            warn!(
                call = id,
                status = resp.status,
                "transfer re-INVITE refused"
            );
            return;
        }
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let session = call.bridge.map(|b| b.session);
        let side = call.legs[leg].side;
        self.ack_reinvite(id, leg, txn, resp);
        if let Some(c) = self.b2bua.get_mut(id)
            && !resp.body.is_empty()
        {
            c.legs[leg].sdp = Some(own_sdp(&resp.body));
        }
        if let (Some(session), Ok(s)) = (session, sdp::summarize(&resp.body))
            && let Some(rtp) = s.rtp
        {
            self.media(MediaCommand::SetRemote {
                session,
                side,
                rtp,
                rtcp: s.rtcp,
            });
        }
    }

    fn attended_refer(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        (id, leg, peer, by, refer_seq): (u64, LegIdx, LegIdx, String, u32),
        (call_id, to_tag, from_tag): (&str, &str, &str),
        now: Now,
    ) {
        let Some((id2, leg2)) = self.b2bua.by_call_id.get(call_id).copied() else {
            return self.refer_refused(txn, req, source, 403, "Replaces names no call here", now);
        };
        let (Some(c1), Some(c2)) = (self.b2bua.get(id), self.b2bua.get(id2)) else {
            return self.refer_refused(txn, req, source, 403, "Replaces names no call here", now);
        };
        if id2 == id || c2.tenant_id != c1.tenant_id {
            return self.refer_refused(txn, req, source, 403, "Replaces names no call here", now);
        }
        let tags_match = c2.legs[leg2].dialog.as_ref().is_some_and(|d| {
            let (l, r) = (d.id.local_tag.as_str(), d.id.remote_tag.as_str());
            (l == to_tag && r == from_tag) || (l == from_tag && r == to_tag)
        });
        if !tags_match {
            return self.refer_refused(txn, req, source, 481, "Replaces names no dialog", now);
        }
        // The consultation call must be the transferor's own.
        if leg_ext(c2, leg2, &self.snap).as_deref() != Some(by.as_str()) {
            return self.refer_refused(
                txn,
                req,
                source,
                403,
                "Replaces names another party's call",
                now,
            );
        }
        if c2.anchor.is_some() && leg2 == crate::b2bua::A_LEG && self.park_is_parked(id2) {
            let p = (id, leg, peer, by, refer_seq);
            return self.attended_to_park(txn, req, source, p, id2, now);
        }
        let Some(c_leg) = c2.bridge.and_then(|b| b.peer(leg2)) else {
            return self.refer_refused(txn, req, source, 481, "Call not answered", now);
        };
        if c2.anchor.is_some() || c2.xfer.as_deref().is_some_and(|x| x.pending.is_some()) {
            return self.refer_refused(txn, req, source, 501, "That call cannot be joined", now);
        }
        let target =
            leg_ext(c2, c_leg, &self.snap).unwrap_or_else(|| leg_number(c2, c_leg, &self.snap).0);
        info!(call = id, consult = id2, by = %by, to = %target, "attended transfer accepted");
        self.accept_refer(txn, req, id, leg, now);
        self.notify_transferor(id, leg, Some(refer_seq), 100, false, now);
        self.join_calls(id, leg, peer, (id2, leg2, c_leg), &by, &target, now);
        self.notify_transferor(id, leg, Some(refer_seq), 200, true, now);
        self.bye_leg(id, leg, now);
    }

    /// Ends call `id` whose other party moved away: BYE to leg `x`, the record with `cause`.
    pub(crate) fn end_released(&mut self, id: u64, x: LegIdx, cause: String, now: Now) {
        self.bye_leg(id, x, now);
        let ending = Ending {
            disposition: Disposition::Answered,
            hangup_by: HangupBy::System,
            cause,
        };
        self.finish_call(id, ending, None, now);
    }

    /// Moves leg `c` of call `id2` into call `id` in place of `x` (the transferor's leg, facing
    /// `y`); re-INVITEs both onto call `id`'s relay and ends call `id2` (BYE to `x2`).
    #[allow(clippy::too_many_arguments)]
    fn join_calls(
        &mut self,
        id: u64,
        x: LegIdx,
        y: LegIdx,
        (id2, x2, c): (u64, LegIdx, LegIdx),
        by: &str,
        target: &str,
        now: Now,
    ) {
        let adv = self.cfg.advertise;
        let Some(c2) = self.b2bua.get_mut(id2) else {
            return;
        };
        let mut moved = take_leg(c2, c);
        let moved_txn = moved.txn;
        // Call 2 now ends without this leg: BYE the transferor's side of it.
        self.b2bua.forget_server_txn(moved_txn);
        self.end_released(
            id2,
            x2,
            format!("attended transfer: joined to call {id}"),
            now,
        );
        let party = self
            .b2bua
            .get(id)
            .map(|c| leg_number(c, y, &self.snap).0)
            .unwrap_or_default();
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return;
        };
        let Some(bridge) = call.bridge else {
            return;
        };
        moved.side = call.legs[x].side;
        moved.session = Some(bridge.session);
        let c_sdp = moved.sdp.clone().unwrap_or_default();
        let y_sdp = call.legs[y].sdp.clone().unwrap_or_default();
        let i = call.legs.len();
        self.b2bua.by_call_id.insert(moved.call_id.clone(), (id, i));
        let t_side = moved.side;
        call.legs.push(moved);
        call.bridge = Some(Bridge {
            a: y,
            b: i,
            session: bridge.session,
        });
        let moh = call.moh.take();
        let held = moh.is_some()
            || [x, y]
                .iter()
                .any(|l| call.legs[*l].sdp.as_deref().is_some_and(not_sendrecv));
        let x_state = call.xfer.get_or_insert_with(Box::default);
        x_state.released.push(x);
        x_state.parties.push((i, target.to_string()));
        x_state.events.push(TransferEvent {
            at: now.wall,
            kind: "attended",
            by: by.to_string(),
            party,
            to: target.to_string(),
            status: 200,
        });
        if let Some(m) = moh {
            self.b2bua.by_endpoint.remove(&m.endpoint);
            self.media(MediaCommand::CloseEndpoint {
                endpoint: m.endpoint,
            });
        }
        if let Ok(s) = sdp::summarize(&c_sdp)
            && let Some(rtp) = s.rtp
        {
            self.media(MediaCommand::SetRemote {
                session: bridge.session,
                side: t_side,
                rtp,
                rtcp: s.rtcp,
            });
        }
        self.media(MediaCommand::SetHold {
            session: bridge.session,
            on_hold: false,
        });
        // The transferee's relay socket stays the same: it is re-INVITEd only to come off
        // hold; the target moves to this call's relay and always is.
        if held {
            self.reinvite_onto_relay(id, y, &c_sdp, adv, now);
        }
        self.reinvite_onto_relay(id, i, &y_sdp, adv, now);
        info!(call = id, to = %target, "attended transfer completed");
        self.live_call_save(id, now);
    }

    /// An INVITE with `Replaces` (RFC 3891) from an authenticated phone of the call's tenant:
    /// it takes the place of the named leg. A confirmed dialog's party is released (BYE) and
    /// the phone joins its peer on the same relay socket; a ringing fork (early dialog) is
    /// answered by this phone instead (pickup): the caller is answered, the forks cancelled.
    pub(crate) fn invite_replaces(
        &mut self,
        (txn, req, source, local, transport): crate::b2bua::Entry,
        tenant: i64,
        caller: &crate::config::ExtEntry,
        now: Now,
    ) {
        let refuse = |e: &mut Engine, status: u16, reason: &str| {
            let log = e.rejected_log.event(source.ip(), now.mono, || {
                format!("INVITE with Replaces {status} {reason}")
            });
            if log.is_log() {
                info!(peer = %source, caller = %caller.number, status, reason, "INVITE with Replaces refused");
            }
            e.respond(txn, Response::for_request(&req, status, Some(reason)), now);
        };
        let Some(r) = req
            .headers
            .get_str(&HeaderName::Replaces)
            .and_then(parse_replaces)
        else {
            return refuse(self, 400, "Bad Replaces header");
        };
        let own_call_id = req.call_id().unwrap_or_default().to_string();
        if self.b2bua.by_call_id.contains_key(&own_call_id) {
            return refuse(self, 482, "Loop Detected");
        }
        let Some((id, leg)) = self.b2bua.by_call_id.get(&r.call_id).copied() else {
            return refuse(self, 481, "No dialog to replace");
        };
        let Some(call) = self.b2bua.get(id) else {
            return refuse(self, 481, "No dialog to replace");
        };
        let l = &call.legs[leg];
        let (ours, theirs) = match &l.dialog {
            Some(d) => (d.id.local_tag.clone(), Some(d.id.remote_tag.clone())),
            None => (l.tag.clone(), None),
        };
        let tags_match = [(&r.to_tag, &r.from_tag), (&r.from_tag, &r.to_tag)]
            .iter()
            .any(|(a, b)| **a == ours && theirs.as_ref().is_none_or(|t| t == *b));
        let released = call
            .xfer
            .as_deref()
            .is_some_and(|x| x.released.contains(&leg));
        if call.tenant_id != tenant || !tags_match || released || call.anchor.is_some() {
            return refuse(self, 481, "No dialog to replace");
        }
        if req.body.is_empty() {
            return refuse(self, 488, "SDP offer required");
        }
        let Ok(offer) = sdp::summarize(&req.body) else {
            return refuse(self, 488, "Unusable SDP");
        };
        let confirmed = call.bridge.and_then(|b| b.peer(leg).map(|p| (b, p)));
        let early_fork = call.bridge.is_none()
            && l.side == Side::B
            && l.final_status.is_none()
            && l.session.is_some();
        let (peer, session) = match (confirmed, early_fork) {
            (Some(_), _) if r.early_only => return refuse(self, 486, "Busy Here"),
            (Some((b, p)), _) => (p, b.session),
            (None, true) => (crate::b2bua::A_LEG, l.session.unwrap_or(SessionId(0))),
            (None, false) => return refuse(self, 481, "No dialog to replace"),
        };
        let side = l.side;
        let Some(relay) = call.relay_port(Some(session), side) else {
            return refuse(self, 503, "No media");
        };
        let Some(peer_sdp) = call.legs[peer].sdp.clone() else {
            return refuse(self, 488, "No media to offer");
        };
        let adv = self.cfg.advertise;
        let at = SocketAddr::new(nathelper::advertised_ip(adv, local), relay.port());
        let Ok(body) = sdp::rewrite(&peer_sdp, at) else {
            return refuse(self, 488, "No media to offer");
        };
        // Our answer to the phone: its peer's media at the relay socket the replaced leg used.
        let tag = self.new_tag();
        let contact = self.contact_uri(None, local, transport);
        let mut ok = Response::for_request(&req, 200, None).with_to_tag(&tag);
        ok.headers.push(HeaderName::Contact, format!("<{contact}>"));
        ok.headers.push(HeaderName::Allow, crate::ALLOW);
        ok.set_body(&MediaType::sdp(), Bytes::from(sendrecv(&body)));
        let dialog = match Dialog::uas(&req, &ok) {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "INVITE with Replaces: no dialog");
                return refuse(self, 400, "Bad Request");
            }
        };
        let mut new_leg =
            crate::b2bua::Leg::caller(own_call_id.clone(), txn, (source, local, transport), tag);
        new_leg.side = side;
        new_leg.session = Some(session);
        new_leg.dialog = Some(dialog);
        new_leg.sdp = Some(own_sdp(&req.body));
        new_leg.final_status = Some(200);
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return;
        };
        let i = call.legs.len();
        call.legs.push(new_leg);
        self.b2bua.by_call_id.insert(own_call_id, (id, i));
        if let Some(rtp) = offer.rtp {
            self.media(MediaCommand::SetRemote {
                session,
                side,
                rtp,
                rtcp: offer.rtcp,
            });
        }
        let party = self
            .b2bua
            .get(id)
            .map(|c| leg_number(c, peer, &self.snap).0)
            .unwrap_or_default();
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return;
        };
        let x = call.xfer.get_or_insert_with(Box::default);
        x.parties.push((i, caller.number.clone()));
        x.events.push(TransferEvent {
            at: now.wall,
            kind: if confirmed.is_some() {
                "replaces"
            } else {
                "pickup"
            },
            by: caller.number.clone(),
            party,
            to: caller.number.clone(),
            status: 200,
        });
        if confirmed.is_some() {
            x.released.push(leg);
            call.bridge = Some(Bridge {
                a: peer,
                b: i,
                session,
            });
            info!(call = id, by = %caller.number, peer = %source, "dialog replaced (RFC 3891)");
            self.respond(txn, ok, now);
            self.bye_leg(id, leg, now);
            return;
        }
        // A ringing call picked up: answer the caller with the phone's media.
        info!(call = id, by = %caller.number, peer = %source, "ringing call taken over (RFC 3891)");
        self.respond(txn, ok, now);
        self.answer_caller_with(id, i, &req.body, now);
    }

    /// Answers the caller of unanswered call `id` with `leg`'s SDP (`body`) pointed at the
    /// relay, bridges them and cancels every fork.
    fn answer_caller_with(&mut self, id: u64, leg: LegIdx, body: &[u8], now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return;
        };
        let Some(session) = call.legs[leg].session else {
            return;
        };
        let (forks, spare) = call.bridge_answered(leg, session, now);
        for l in call.legs.iter_mut().filter(|l| l.side == Side::B) {
            if l.final_status.is_none() {
                l.final_status = Some(487);
            }
        }
        let a = &call.legs[crate::b2bua::A_LEG];
        let (a_txn, a_local, a_tag, a_transport) =
            (a.txn, a.local, a.tag.clone(), a.target.transport);
        let relay = call.relay_port(Some(session), Side::A);
        let Some(a_invite) = self.layer.request(a_txn) else {
            return;
        };
        let mut ok = Response::for_request(a_invite, 200, None).with_to_tag(&a_tag);
        let c = nathelper::contact_uri(adv, None, a_local, a_transport);
        ok.headers.push(HeaderName::Contact, format!("<{c}>"));
        ok.headers.push(HeaderName::Allow, crate::ALLOW);
        if let Some(p) = relay {
            let at = SocketAddr::new(nathelper::advertised_ip(adv, a_local), p.port());
            if let Ok(b) = sdp::rewrite(body, at) {
                ok.set_body(&MediaType::sdp(), Bytes::from(b));
            }
        }
        match Dialog::uas(a_invite, &ok) {
            Ok(d) => call.legs[crate::b2bua::A_LEG].dialog = Some(d),
            Err(e) => warn!(call = id, error = %e, "caller dialog not created"),
        }
        if let Ok(s) = sdp::summarize(body) {
            call.codec = s.first_codec().unwrap_or("").to_string();
        }
        for s in spare {
            self.b2bua.forget_session(s);
            self.media(MediaCommand::Close { session: s });
        }
        self.respond(a_txn, ok, now);
        for t in forks {
            let _ = self.layer.cancel(t, now.mono);
        }
    }

    /// A call ended: its transfer events are stored beside its record, the forks of a
    /// transfer in progress cancelled.
    pub(crate) fn transfer_call_ended(&mut self, call: &Call, now: Now) {
        // A hunted call's steps and forwards come first, then its transfers and pickups.
        let mut events: Vec<TransferEvent> = call
            .hunt
            .as_deref()
            .map(|h| h.events.clone())
            .unwrap_or_default();
        if let Some(x) = call.xfer.as_deref() {
            events.extend(x.events.iter().cloned());
        }
        events.sort_by_key(|e| e.at);
        if !events.is_empty() {
            let op = crate::DbOp::CdrEvents {
                tenant: call.tenant_id,
                call_id: call.legs[crate::b2bua::A_LEG].call_id.clone(),
                events,
            };
            self.db(op, crate::Pending::Background("storing call events"));
        }
        let Some(x) = call.xfer.as_deref() else {
            return;
        };
        let Some(p) = x.pending.as_ref() else {
            return;
        };
        for f in &p.forks {
            if let Some(l) = call.legs.get(*f)
                && l.final_status.is_none()
            {
                let _ = self.layer.cancel(l.txn, now.mono);
            }
        }
    }

    /// Periodic: targets that rang too long are cancelled (their 487 fails the transfer).
    pub(crate) fn transfer_timeouts(&mut self, now: Now) {
        let mut cancel = Vec::new();
        for call in self.b2bua.calls.values_mut() {
            let Some(p) = call.xfer.as_deref_mut().and_then(|x| x.pending.as_mut()) else {
                continue;
            };
            if p.timed_out || now.mono < p.deadline {
                continue;
            }
            p.timed_out = true;
            debug!(call = call.id, to = %p.target, "transfer target rang too long");
            for f in &p.forks {
                if let Some(l) = call.legs.get(*f)
                    && l.final_status.is_none()
                {
                    cancel.push(l.txn);
                }
            }
        }
        for t in cancel {
            let _ = self.layer.cancel(t, now.mono);
        }
    }

    /// The transfer history of call `id` (empty when it was never transferred).
    pub fn transfer_events(&self, id: u64) -> Vec<TransferEvent> {
        self.b2bua
            .get(id)
            .and_then(|c| c.xfer.as_deref())
            .map(|x| x.events.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_forms() {
        assert_eq!(
            parse_refer_to("<sip:1003@pbx.example>"),
            Ok(ReferTo::Blind("1003".into()))
        );
        assert_eq!(
            parse_refer_to("sip:1003@pbx.example;transport=udp"),
            Ok(ReferTo::Blind("1003".into()))
        );
        assert_eq!(
            parse_refer_to("<sip:1003@pbx?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>"),
            Ok(ReferTo::Attended {
                number: "1003".into(),
                call_id: "abc@host".into(),
                to_tag: "t1".into(),
                from_tag: "f1".into(),
            })
        );
        for (bad, why) in [
            ("<tel:1003>", "only sip"),
            ("<sip:pbx.example>", "no user part"),
            ("<sip:bob@pbx>", "not a number"),
            ("<sip:1003@pbx", "unbalanced"),
            ("<sip:1003@pbx?Replaces=abc%3Bto-tag%3Dt1>", "from-tag"),
            ("<sip:1003@pbx?Replaces=%ZZ>", "bad %-escape"),
        ] {
            let e = parse_refer_to(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn held_sdp_is_offered_sendrecv() {
        let b = b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n";
        let out = String::from_utf8(sendrecv(b)).expect("utf-8");
        assert!(out.contains("a=sendrecv\r\n"), "{out}");
        assert!(!out.contains("sendonly"));
        assert!(out.contains("a=rtpmap:0 PCMU/8000\r\n"));
    }
}
