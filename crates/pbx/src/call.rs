//! B2BUA calls: an authenticated extension dials a number; every registered contact of the
//! callee rings in parallel; the first answer wins; media is anchored on the relay; the call
//! record is written when the call ends (and the last response waits for it to be durable).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use media::Leg;
use sip::dialog::Dialog;
use sip::transaction::{Target, TransactionId, Transport};
use sip::{HeaderName, MediaType, Message, Method, Request, Response};
use store::{Disposition, HangupBy, LegStats, NewCdr};
use tracing::{debug, info, warn};

use crate::core::{
    ALLOW, AuthOutcome, Core, Internal, SUPPORTED, TxOwner, advertised_ip, contact_uri, uri_domain,
};
use crate::sdp;

/// One outgoing INVITE to one contact of the callee. The INVITE itself stays with its client
/// transaction (`Core::layer.request(txn)`) until the leg is answered or fails.
pub(crate) struct BLeg {
    pub txn: TransactionId,
    pub target: Target,
    pub call_id: String,
    pub dialog: Option<Dialog>,
    pub final_status: Option<u16>,
    /// The ACK for the 2xx, serialised, to resend when the 2xx is retransmitted.
    pub ack: Option<Bytes>,
}

/// A request forwarded from one side to the other, waiting for its response.
struct Forwarded {
    server_txn: TransactionId,
    request: Request,
    /// The request came from the caller side (A).
    from_a: bool,
}

pub use engine::control::{CallState, CallSummary};

/// A call. The caller's INVITE is not copied here: its server transaction keeps it until the
/// final response, which is as long as responses are built from it.
pub(crate) struct Call {
    pub id: u64,
    pub tenant_id: i64,
    pub a_txn: TransactionId,
    pub a_call_id: String,
    pub a_source: SocketAddr,
    pub a_local: SocketAddr,
    pub a_transport: Transport,
    pub a_tag: String,
    pub a_dialog: Option<Dialog>,
    pub caller: String,
    pub caller_name: String,
    pub callee: String,
    pub legs: Vec<BLeg>,
    pub answered: Option<usize>,
    pub session: Option<media::Session>,
    pub state: CallState,
    pub start: SystemTime,
    pub start_instant: Instant,
    pub answer: Option<SystemTime>,
    pub no_answer_at: Instant,
    pub codec: String,
    pub sent_180: bool,
    forwarded: HashMap<TransactionId, Forwarded>,
}

impl Call {
    pub(crate) fn summary(&self, now: Instant) -> CallSummary {
        CallSummary {
            id: self.id,
            call_id: self.a_call_id.clone(),
            caller: self.caller.clone(),
            callee: self.callee.clone(),
            state: self.state,
            duration_s: now.duration_since(self.start_instant).as_secs(),
            codec: self.codec.clone(),
            tenant_id: self.tenant_id,
        }
    }

    fn a_target(&self) -> Target {
        Target {
            destination: self.a_source,
            transport: self.a_transport,
            local: Some(self.a_local),
        }
    }
}

/// How a call ended.
struct Ending {
    disposition: Disposition,
    hangup_by: HangupBy,
    cause: String,
}

impl Core {
    pub(crate) fn on_invite(
        &mut self,
        txn: TransactionId,
        req: Request,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Instant,
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
        let from_user = from.uri.user().unwrap_or_default();
        let domain = uri_domain(&from.uri).unwrap_or_default();
        let Some(tenant) = self.tenants.for_domain(&domain) else {
            return self.respond(
                txn,
                Response::for_request(&req, 403, Some("Unknown domain")),
                now,
            );
        };
        let Some(callee) = req.uri.user() else {
            return self.respond(
                txn,
                Response::for_request(&req, 404, Some("No number dialled")),
                now,
            );
        };
        let callee = callee.split(';').next().unwrap_or("").to_string();
        // Look the callee up before authenticating: a parked request is authenticated on its
        // second pass only, so its nonce count is used once.
        let callee_key = (tenant, callee.clone());
        let authed = req.headers.contains(&HeaderName::ProxyAuthorization);
        if authed && !self.exts.contains_key(&callee_key) && !self.absent.contains(&callee_key) {
            let parked = crate::core::Parked {
                txn,
                req,
                source,
                local,
                transport,
            };
            self.fetch_extension(callee_key, parked);
            return;
        }
        let caller = match self.authenticate(
            txn,
            &req,
            &HeaderName::ProxyAuthorization,
            tenant,
            &from_user,
            source,
            local,
            transport,
            now,
        ) {
            AuthOutcome::Ok(e) => e,
            AuthOutcome::Challenge { stale } => {
                let r = self.challenge_response(&req, tenant, stale, true);
                return self.respond(txn, r, now);
            }
            AuthOutcome::Forbidden(reason) => {
                return self.respond(txn, Response::for_request(&req, 403, Some(reason)), now);
            }
            AuthOutcome::Ignore | AuthOutcome::Parked => return,
        };
        let call_id = req.call_id().unwrap_or_default().to_string();
        if self.call_by_callid.contains_key(&call_id) {
            // Same Call-ID, new branch: a loop or a confused phone.
            return self.respond(txn, Response::for_request(&req, 482, None), now);
        }
        let a_tag = sip::generate_tag();
        let refuse_tag = a_tag.clone();
        let not_found = |core: &mut Core, status: u16, reason: &str, disposition: Disposition| {
            info!(peer = %source, caller = %caller.number, %callee, status, "call refused");
            let resp = Response::for_request(&req, status, Some(reason)).with_to_tag(&refuse_tag);
            let cdr = NewCdr {
                tenant_id: tenant,
                call_id: call_id.clone(),
                caller: caller.number.clone(),
                callee: callee.clone(),
                caller_name: caller.display_name.clone(),
                start_time: chrono::Utc::now(),
                answer_time: None,
                end_time: chrono::Utc::now(),
                duration_s: 0,
                billsec: 0,
                disposition,
                hangup_by: HangupBy::System,
                hangup_cause: format!("{status} {reason}"),
                codec: String::new(),
                a: LegStats::default(),
                b: LegStats::default(),
            };
            core.metrics.inc_call(disposition.as_str());
            core.write_cdr_then_respond(cdr, Some((txn, resp)));
        };
        let Some(target) = self.exts.get(&(tenant, callee.clone())).cloned() else {
            return not_found(self, 404, "Not Found", Disposition::Failed);
        };
        if !target.enabled {
            return not_found(self, 480, "Temporarily Unavailable", Disposition::Failed);
        }
        let wall = SystemTime::now();
        let bindings: Vec<_> = self
            .location
            .get(&target.id)
            .map(|l| {
                l.iter()
                    .filter(|b| b.expires_at > wall && b.received != source)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if bindings.is_empty() {
            return not_found(self, 480, "Temporarily Unavailable", Disposition::Failed);
        }
        // The caller's offer (late offer, an INVITE without SDP, is not supported yet).
        let offer = if req.body.is_empty() {
            return not_found(self, 488, "SDP offer required", Disposition::Failed);
        } else {
            match sdp::summarize(&req.body) {
                Ok(s) => s,
                Err(e) => {
                    info!(peer = %source, error = %e, "unusable SDP offer");
                    return self.respond(
                        txn,
                        Response::for_request(&req, 488, Some("Unusable SDP")),
                        now,
                    );
                }
            }
        };
        // Media anchoring: leg A faces the caller on the address the INVITE reached, leg B the
        // callee on its binding's address.
        let b_local = bindings[0].local;
        let session = match self.relay.allocate(&call_id, local.ip(), b_local.ip()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no media ports");
                return self.respond(
                    txn,
                    Response::for_request(&req, 503, Some("No media ports")),
                    now,
                );
            }
        };
        if let Some(rtp) = offer.rtp {
            session.set_remote(Leg::A, rtp, offer.rtcp);
        }
        for (pt, _, rate) in &offer.codecs {
            session.set_clock_rate(Leg::A, *pt, *rate);
            session.set_clock_rate(Leg::B, *pt, *rate);
        }
        let id = self.next_call;
        self.next_call += 1;
        let mut call = Call {
            id,
            tenant_id: tenant,
            a_txn: txn,
            a_call_id: call_id.clone(),
            a_source: source,
            a_local: local,
            a_transport: transport,
            a_tag,
            a_dialog: None,
            caller: caller.number.clone(),
            caller_name: if caller.display_name.is_empty() {
                from.display_name.clone().unwrap_or_default()
            } else {
                caller.display_name.clone()
            },
            callee: callee.clone(),
            legs: Vec::new(),
            answered: None,
            session: None,
            state: CallState::Ringing,
            start: wall,
            start_instant: now,
            answer: None,
            no_answer_at: now + self.settings.no_answer,
            codec: String::new(),
            sent_180: false,
            forwarded: HashMap::new(),
        };
        let mf = req.max_forwards().unwrap_or(70).saturating_sub(1);
        for b in &bindings {
            let b_relay =
                SocketAddr::new(self.advertised_ip(b.local), session.local(Leg::B).port());
            let body = match sdp::rewrite(&req.body, b_relay) {
                Ok(x) => x,
                Err(_) => continue,
            };
            let via = self.our_via(b.local, b.transport);
            let leg_call_id = sip::generate_call_id(None);
            let mut inv = Request::new(Method::Invite, b.contact.clone());
            inv.headers.push(HeaderName::Via, via.to_string());
            inv.headers.push(HeaderName::MaxForwards, mf.to_string());
            let from_hdr = display_addr(
                &call.caller_name,
                &format!("sip:{}@{}", caller.number, domain_of(b)),
            );
            inv.headers.push(
                HeaderName::From,
                format!("{from_hdr};tag={}", sip::generate_tag()),
            );
            inv.headers
                .push(HeaderName::To, format!("<sip:{}@{}>", callee, domain_of(b)));
            inv.headers.push(HeaderName::CallId, leg_call_id.as_str());
            inv.headers.push(HeaderName::CSeq, "1 INVITE");
            inv.headers.push(
                HeaderName::Contact,
                format!(
                    "<{}>",
                    self.contact_uri(Some(&caller.number), b.local, b.transport)
                ),
            );
            inv.headers.push(HeaderName::Allow, ALLOW);
            inv.headers.push(HeaderName::Supported, SUPPORTED);
            inv.headers
                .push(HeaderName::UserAgent, self.cfg.user_agent.as_str());
            inv.set_body(&MediaType::sdp(), Bytes::from(body));
            match self.layer.send_request(inv, b.target(), now) {
                Ok(t) => {
                    self.owners.insert(t, TxOwner::Call(id));
                    self.call_by_callid.insert(leg_call_id.clone(), id);
                    call.legs.push(BLeg {
                        txn: t,
                        target: b.target(),
                        call_id: leg_call_id,
                        dialog: None,
                        final_status: None,
                        ack: None,
                    });
                }
                Err(e) => warn!(error = %e, "B leg not started"),
            }
        }
        if call.legs.is_empty() {
            drop(session);
            return not_found(self, 480, "Temporarily Unavailable", Disposition::Failed);
        }
        info!(call = id, %call_id, caller = %call.caller, %callee, contacts = call.legs.len(), "call started");
        call.session = Some(session);
        self.call_by_callid.insert(call_id, id);
        self.calls.insert(id, Box::new(call));
        self.metrics
            .active_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Tell the caller we are on it (the transaction layer would after 100 ms anyway).
        let trying = Response::for_request(&req, 100, None);
        self.respond(txn, trying, now);
    }

    /// A response for one of a call's client transactions.
    pub(crate) fn call_response(
        &mut self,
        id: u64,
        txn: TransactionId,
        resp: Response,
        source: SocketAddr,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(leg_i) = call.legs.iter().position(|l| l.txn == txn) {
            self.leg_response(id, leg_i, resp, now);
        } else if call.forwarded.contains_key(&txn) {
            if resp.status < 200 && resp.status != 183 && resp.status != 180 {
                return;
            }
            self.forwarded_response(id, txn, resp, now);
        } else {
            // Our BYE's answer, or similar: nothing to do.
            debug!(call = id, status = resp.status, %source, "response ignored");
        }
    }

    fn leg_response(&mut self, id: u64, i: usize, resp: Response, now: Instant) {
        let status = resp.status;
        let adv = self.cfg.advertise;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match status {
            100 => {}
            101..=199 => {
                if call.answered.is_some() {
                    return;
                }
                if call.legs[i].dialog.is_none()
                    && resp.to().and_then(|t| t.tag().map(|_| ())).is_some()
                    && let Some(invite) = self.layer.request(call.legs[i].txn)
                {
                    call.legs[i].dialog = Dialog::uac(invite, &resp).ok();
                }
                let Some(a_invite) = self.layer.request(call.a_txn) else {
                    return;
                };
                let mut out = Response::for_request(a_invite, status, Some(resp.reason.as_str()))
                    .with_to_tag(&call.a_tag);
                let a_contact = contact_uri(adv, None, call.a_local, call.a_transport);
                out.headers
                    .push(HeaderName::Contact, format!("<{a_contact}>"));
                if !resp.body.is_empty()
                    && let Ok(s) = sdp::summarize(&resp.body)
                {
                    // Early media: route the callee's media now.
                    if let (Some(sess), Some(rtp)) = (call.session.as_ref(), s.rtp) {
                        sess.set_remote(Leg::B, rtp, s.rtcp);
                    }
                    if let Some(sess) = call.session.as_ref() {
                        let a_relay = SocketAddr::new(
                            advertised_ip(adv, call.a_local),
                            sess.local(Leg::A).port(),
                        );
                        if let Ok(b) = sdp::rewrite(&resp.body, a_relay) {
                            out.set_body(&MediaType::sdp(), Bytes::from(b));
                        }
                    }
                } else if status == 180 {
                    if call.sent_180 {
                        return;
                    }
                    call.sent_180 = true;
                }
                let txn = call.a_txn;
                self.respond(txn, out, now);
            }
            200..=299 => self.leg_answered(id, i, resp, now),
            _ => {
                call.legs[i].final_status = Some(status);
                debug!(call = id, leg = i, status, "leg failed");
                self.maybe_all_failed(id, now);
            }
        }
    }

    fn leg_answered(&mut self, id: u64, i: usize, resp: Response, now: Instant) {
        let adv = self.cfg.advertise;
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.answered == Some(i) {
            // A retransmitted 2xx: our ACK was lost.
            if let Some(ack) = call.legs[i].ack.clone() {
                let t = call.legs[i].target;
                self.layer.send_raw(ack, t);
            }
            return;
        }
        let target = call.legs[i].target;
        let leg_txn = call.legs[i].txn;
        let leg_local = target.local.unwrap_or(call.a_local);
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
        let late = call.answered.is_some();
        let invite_seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let via = self.our_via(leg_local, target.transport);
        let ack = Bytes::from(dialog.ack(invite_seq, &via).to_bytes());
        self.layer.send_raw(ack.clone(), target);
        self.layer.release_request(leg_txn);
        if late {
            // Another fork answered first: hang this one up.
            let via = self.our_via(leg_local, target.transport);
            let bye = dialog.new_request(Method::Bye, &via);
            if let Ok(tx) = self.layer.send_request(bye, target, now) {
                self.owners.insert(tx, TxOwner::Call(id));
            }
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let leg = &mut call.legs[i];
        leg.ack = Some(ack);
        leg.dialog = Some(dialog);
        leg.final_status = Some(resp.status);
        call.answered = Some(i);
        call.state = CallState::Up;
        call.answer = Some(SystemTime::now());
        // Cancel the other forks.
        let others: Vec<TransactionId> = call
            .legs
            .iter()
            .enumerate()
            .filter(|(j, l)| *j != i && l.final_status.is_none())
            .map(|(_, l)| l.txn)
            .collect();
        // Answer the caller with the callee's SDP pointed at the relay.
        let Some(a_invite) = self.layer.request(call.a_txn) else {
            warn!(
                call = id,
                "caller's INVITE transaction is gone; not answering"
            );
            return;
        };
        let mut ok = Response::for_request(a_invite, 200, None).with_to_tag(&call.a_tag);
        let a_contact = contact_uri(adv, None, call.a_local, call.a_transport);
        ok.headers
            .push(HeaderName::Contact, format!("<{a_contact}>"));
        ok.headers.push(HeaderName::Allow, ALLOW);
        ok.headers.push(HeaderName::Supported, SUPPORTED);
        if let Some(sess) = call.session.as_ref()
            && let Ok(s) = sdp::summarize(&resp.body)
        {
            if let Some(rtp) = s.rtp {
                sess.set_remote(Leg::B, rtp, s.rtcp);
            }
            sess.set_hold(s.is_hold());
            call.codec = s.first_codec().unwrap_or("").to_string();
            let a_relay =
                SocketAddr::new(advertised_ip(adv, call.a_local), sess.local(Leg::A).port());
            if let Ok(b) = sdp::rewrite(&resp.body, a_relay) {
                ok.set_body(&MediaType::sdp(), Bytes::from(b));
            }
        }
        match Dialog::uas(a_invite, &ok) {
            Ok(d) => call.a_dialog = Some(d),
            Err(e) => warn!(call = id, error = %e, "caller dialog not created"),
        }
        info!(call = id, caller = %call.caller, callee = %call.callee, codec = %call.codec, "call answered");
        let a_txn = call.a_txn;
        self.respond(a_txn, ok, now);
        for t in others {
            let _ = self.layer.cancel(t, now);
        }
    }

    /// All forks failed (or none is left): answer the caller with the most telling status.
    fn maybe_all_failed(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.answered.is_some() || call.legs.iter().any(|l| l.final_status.is_none()) {
            return;
        }
        let statuses: Vec<u16> = call.legs.iter().filter_map(|l| l.final_status).collect();
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
            .unwrap_or(480);
        let disposition = if matches!(status, 486 | 600 | 603) {
            Disposition::Busy
        } else {
            Disposition::Failed
        };
        let reason = sip::reason_phrase(status).to_string();
        self.finish(
            id,
            Ending {
                disposition,
                hangup_by: HangupBy::Callee,
                cause: format!("{status} {reason}"),
            },
            Some(status),
            now,
        );
    }

    /// A client transaction of a call timed out or could not be sent.
    pub(crate) fn call_tx_failed(&mut self, id: u64, txn: TransactionId, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(i) = call.legs.iter().position(|l| l.txn == txn) {
            if call.legs[i].final_status.is_none() {
                call.legs[i].final_status = Some(408);
                self.maybe_all_failed(id, now);
            }
        } else if let Some(f) = call.forwarded.remove(&txn) {
            let r = Response::for_request(&f.request, 408, None);
            self.respond(f.server_txn, r, now);
            if f.request.method == Method::Invite && call_exists(self, id) {
                // The other side vanished during a re-INVITE.
                self.hangup_call(id, "peer unreachable", now);
            }
        }
    }

    pub(crate) fn caller_cancelled(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.answered.is_some() {
            return;
        }
        info!(call = id, caller = %call.caller, "caller cancelled");
        self.cancel_pending_legs(id, now);
        self.finish(
            id,
            Ending {
                disposition: Disposition::Canceled,
                hangup_by: HangupBy::Caller,
                cause: "CANCEL".into(),
            },
            Some(487),
            now,
        );
    }

    /// ACK outside a transaction: for our 2xx (the layer already stopped retransmitting).
    pub(crate) fn call_ack(&mut self, req: &Request, _now: Instant) {
        let call_id = req.call_id().unwrap_or_default();
        if let Some(id) = self.call_by_callid.get(call_id).copied()
            && let Some(call) = self.calls.get_mut(&id)
            && call.a_call_id == call_id
            && let Some(d) = call.a_dialog.as_mut()
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
        now: Instant,
    ) {
        let call_id = req.call_id().unwrap_or_default().to_string();
        let Some(id) = self.call_by_callid.get(&call_id).copied() else {
            return self.respond(txn, Response::for_request(&req, 481, None), now);
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return self.respond(txn, Response::for_request(&req, 481, None), now);
        };
        let from_a = call.a_call_id == call_id;
        let Some(bi) = call.answered else {
            return self.respond(
                txn,
                Response::for_request(&req, 481, Some("Call not answered")),
                now,
            );
        };
        // Validate the dialog and CSeq on the side it came from.
        let check = if from_a {
            call.a_dialog.as_mut().map(|d| d.on_request(&req))
        } else if call.legs[bi].call_id == call_id {
            call.legs[bi].dialog.as_mut().map(|d| d.on_request(&req))
        } else {
            None
        };
        match check {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return self.respond(txn, Response::for_request(&req, e.status_code(), None), now);
            }
            None => return self.respond(txn, Response::for_request(&req, 481, None), now),
        }
        if req.method == Method::Bye {
            let by = if from_a {
                HangupBy::Caller
            } else {
                HangupBy::Callee
            };
            info!(call = id, peer = %source, by = by.as_str(), "hang-up");
            // BYE the other side now; answer this BYE once the call record is stored.
            self.bye_other_side(id, from_a, now);
            let ok = Response::for_request(&req, 200, None);
            let cause = "BYE".to_string();
            self.finish_with(
                id,
                Ending {
                    disposition: Disposition::Answered,
                    hangup_by: by,
                    cause,
                },
                Some((txn, ok)),
                now,
            );
            return;
        }
        self.forward_request(id, txn, req, from_a, now);
    }

    fn bye_other_side(&mut self, id: u64, from_a: bool, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (local, transport, target) = if from_a {
            let Some(bi) = call.answered else { return };
            let l = &call.legs[bi];
            (
                l.target.local.unwrap_or(call.a_local),
                l.target.transport,
                l.target,
            )
        } else {
            (call.a_local, call.a_transport, call.a_target())
        };
        let via = self.our_via(local, transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let dialog = if from_a {
            call.answered.and_then(|bi| call.legs[bi].dialog.as_mut())
        } else {
            call.a_dialog.as_mut()
        };
        if let Some(d) = dialog {
            let bye = d.new_request(Method::Bye, &via);
            match self.layer.send_request(bye, target, now) {
                Ok(t) => {
                    self.owners.insert(t, TxOwner::Call(id));
                }
                Err(e) => debug!(error = %e, "BYE not sent"),
            }
        }
    }

    /// Forwards an in-dialog request (re-INVITE, UPDATE, INFO, ...) to the other side.
    fn forward_request(
        &mut self,
        id: u64,
        txn: TransactionId,
        req: Request,
        from_a: bool,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(bi) = call.answered else { return };
        let (out_local, out_transport, target) = if from_a {
            let l = &call.legs[bi];
            (
                l.target.local.unwrap_or(call.a_local),
                l.target.transport,
                l.target,
            )
        } else {
            (call.a_local, call.a_transport, call.a_target())
        };
        let via = self.our_via(out_local, out_transport);
        let our_contact = self.contact_uri(None, out_local, out_transport);
        let relay_ip = self.advertised_ip(out_local);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (from_leg, to_leg) = if from_a {
            (Leg::A, Leg::B)
        } else {
            (Leg::B, Leg::A)
        };
        let mut body = None;
        if !req.body.is_empty()
            && req
                .content_type()
                .is_some_and(|c| c.is("application", "sdp"))
            && let Some(sess) = call.session.as_ref()
        {
            match sdp::summarize(&req.body) {
                Ok(s) => {
                    if let Some(rtp) = s.rtp {
                        sess.set_remote(from_leg, rtp, s.rtcp);
                    }
                    sess.set_hold(s.is_hold());
                    let relay = SocketAddr::new(relay_ip, sess.local(to_leg).port());
                    body = sdp::rewrite(&req.body, relay).ok();
                }
                Err(_) => {
                    let r = Response::for_request(&req, 488, Some("Unusable SDP"));
                    self.respond(txn, r, now);
                    return;
                }
            }
        }
        let dialog = if from_a {
            call.legs[bi].dialog.as_mut()
        } else {
            call.a_dialog.as_mut()
        };
        let Some(d) = dialog else {
            return self.respond(txn, Response::for_request(&req, 481, None), now);
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
        match self.layer.send_request(out, target, now) {
            Ok(t) => {
                self.owners.insert(t, TxOwner::Call(id));
                if let Some(call) = self.calls.get_mut(&id) {
                    call.forwarded.insert(
                        t,
                        Forwarded {
                            server_txn: txn,
                            request: req,
                            from_a,
                        },
                    );
                }
            }
            Err(e) => {
                debug!(error = %e, "in-dialog request not forwarded");
                self.respond(txn, Response::for_request(&req, 500, None), now);
            }
        }
    }

    fn forwarded_response(&mut self, id: u64, txn: TransactionId, resp: Response, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let final_ = resp.status >= 200;
        let Some(f) = (if final_ {
            call.forwarded.remove(&txn)
        } else {
            call.forwarded.get(&txn).map(|f| Forwarded {
                server_txn: f.server_txn,
                request: f.request.clone(),
                from_a: f.from_a,
            })
        }) else {
            return;
        };
        // Which of our dialogs the response came through (the side we forwarded to).
        let to_a = !f.from_a;
        let (back_local, back_transport) = if f.from_a {
            (call.a_local, call.a_transport)
        } else {
            let bi = call.answered.unwrap_or(0);
            (
                call.legs[bi].target.local.unwrap_or(call.a_local),
                call.legs[bi].target.transport,
            )
        };
        let method = f.request.method.clone();
        if (200..300).contains(&resp.status) && method == Method::Invite {
            // ACK the far side's 2xx ourselves; the near side ACKs ours.
            let (target, local, transport) = if to_a {
                (call.a_target(), call.a_local, call.a_transport)
            } else {
                let bi = call.answered.unwrap_or(0);
                let l = &call.legs[bi];
                (
                    l.target,
                    l.target.local.unwrap_or(call.a_local),
                    l.target.transport,
                )
            };
            let seq = resp.cseq().map(|c| c.seq).unwrap_or(1);
            let via = self.our_via(local, transport);
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let d = if to_a {
                call.a_dialog.as_mut()
            } else {
                call.answered.and_then(|bi| call.legs[bi].dialog.as_mut())
            };
            if let Some(d) = d {
                let _ = d.on_response(&method, &resp);
                let ack = d.ack(seq, &via);
                self.layer.send_stateless(&Message::Request(ack), target);
            }
        }
        let adv = self.cfg.advertise;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut out = Response::for_request(&f.request, resp.status, Some(resp.reason.as_str()));
        if (200..300).contains(&resp.status) && sip::dialog::is_target_refresh(&method) {
            let c = contact_uri(adv, None, back_local, back_transport);
            out.headers.push(HeaderName::Contact, format!("<{c}>"));
        }
        if !resp.body.is_empty() {
            let is_sdp = resp
                .content_type()
                .is_some_and(|c| c.is("application", "sdp"));
            if is_sdp && let Some(sess) = call.session.as_ref() {
                let (far_leg, near_leg) = if to_a {
                    (Leg::A, Leg::B)
                } else {
                    (Leg::B, Leg::A)
                };
                if let Ok(s) = sdp::summarize(&resp.body)
                    && let Some(rtp) = s.rtp
                {
                    sess.set_remote(far_leg, rtp, s.rtcp);
                }
                let relay =
                    SocketAddr::new(advertised_ip(adv, back_local), sess.local(near_leg).port());
                if let Ok(b) = sdp::rewrite(&resp.body, relay) {
                    out.set_body(&MediaType::sdp(), Bytes::from(b));
                }
            } else if let Some(ct) = resp.content_type() {
                out.set_body(&ct, resp.body.clone());
            }
        }
        self.respond(f.server_txn, out, now);
    }

    /// Ends a call from our side (admin hang-up, media timeout, shutdown): BYE or CANCEL both sides.
    pub(crate) fn hangup_call(&mut self, id: u64, reason: &str, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.answered.is_some() {
            self.bye_other_side(id, true, now);
            self.bye_other_side(id, false, now);
            self.finish(
                id,
                Ending {
                    disposition: Disposition::Answered,
                    hangup_by: HangupBy::System,
                    cause: reason.to_string(),
                },
                None,
                now,
            );
        } else {
            self.cancel_pending_legs(id, now);
            self.finish(
                id,
                Ending {
                    disposition: Disposition::Failed,
                    hangup_by: HangupBy::System,
                    cause: reason.to_string(),
                },
                Some(480),
                now,
            );
        }
    }

    /// Periodic: no-answer timeouts and media timeouts.
    pub(crate) fn check_calls(&mut self, now: Instant) {
        let mut no_answer = Vec::new();
        let mut dead_media = Vec::new();
        for (id, c) in &self.calls {
            if c.answered.is_none() && now >= c.no_answer_at {
                no_answer.push(*id);
            } else if c.answered.is_some() && c.session.as_ref().is_some_and(|s| s.is_timed_out()) {
                dead_media.push(*id);
            }
        }
        for id in no_answer {
            let Some(call) = self.calls.get(&id) else {
                continue;
            };
            info!(call = id, caller = %call.caller, callee = %call.callee, "no answer");
            self.cancel_pending_legs(id, now);
            self.finish(
                id,
                Ending {
                    disposition: Disposition::NoAnswer,
                    hangup_by: HangupBy::System,
                    cause: "no answer".into(),
                },
                Some(480),
                now,
            );
        }
        for id in dead_media {
            warn!(call = id, "media stopped: hanging up");
            self.hangup_call(id, "media timeout", now);
        }
    }

    /// CANCELs every fork of call `id` that has no final response yet.
    fn cancel_pending_legs(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let pending: Vec<TransactionId> = call
            .legs
            .iter()
            .filter(|l| l.final_status.is_none())
            .map(|l| l.txn)
            .collect();
        for t in pending {
            let _ = self.layer.cancel(t, now);
        }
    }

    /// A 2xx for an INVITE whose call is already gone (it answered after we cancelled): ACK it
    /// and hang it up, so the phone does not stay off-hook.
    pub(crate) fn late_answer(
        &mut self,
        txn: TransactionId,
        resp: &Response,
        source: SocketAddr,
        now: Instant,
    ) {
        let Some(invite) = self.layer.request(txn).cloned() else {
            return;
        };
        if invite.method != Method::Invite {
            return;
        }
        let Ok(mut d) = Dialog::uac(&invite, resp) else {
            return;
        };
        let transport = invite
            .top_via()
            .and_then(|v| Transport::parse(&v.transport))
            .unwrap_or(Transport::Udp);
        let target = Target {
            destination: source,
            transport,
            local: None,
        };
        let local = self
            .transports
            .local_addrs()
            .into_iter()
            .find(|a| a.is_ipv4() == source.is_ipv4());
        let Some(local) = local else { return };
        let via = self.our_via(local, transport);
        let ack = d.ack(invite.cseq().map(|c| c.seq).unwrap_or(1), &via);
        self.layer.send_stateless(&Message::Request(ack), target);
        let via = self.our_via(local, transport);
        let bye = d.new_request(Method::Bye, &via);
        let _ = self.layer.send_request(bye, target, now);
    }

    fn finish(&mut self, id: u64, ending: Ending, a_status: Option<u16>, now: Instant) {
        let reply = match (a_status, self.calls.get(&id)) {
            (Some(s), Some(call)) => self.layer.request(call.a_txn).map(|inv| {
                let r = Response::for_request(inv, s, None).with_to_tag(&call.a_tag);
                (call.a_txn, r)
            }),
            _ => None,
        };
        self.finish_with(id, ending, reply, now);
    }

    /// Removes the call, writes its record, and sends `reply` once the record is durable.
    fn finish_with(
        &mut self,
        id: u64,
        ending: Ending,
        reply: Option<(TransactionId, Response)>,
        _now: Instant,
    ) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.call_by_callid.remove(&call.a_call_id);
        for l in &call.legs {
            self.call_by_callid.remove(&l.call_id);
        }
        self.metrics
            .active_calls
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let end = SystemTime::now();
        let (a, b) = match call.session.as_ref() {
            Some(s) => {
                let st = s.stats();
                (leg_stats(st.leg(Leg::A)), leg_stats(st.leg(Leg::B)))
            }
            None => (LegStats::default(), LegStats::default()),
        };
        if let Some(s) = call.session {
            tokio::spawn(s.close());
        }
        let secs = |from: SystemTime| {
            end.duration_since(from)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        };
        let cdr = NewCdr {
            tenant_id: call.tenant_id,
            call_id: call.a_call_id.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            caller_name: call.caller_name.clone(),
            start_time: call.start.into(),
            answer_time: call.answer.map(Into::into),
            end_time: end.into(),
            duration_s: secs(call.start),
            billsec: call.answer.map(secs).unwrap_or(0),
            disposition: ending.disposition,
            hangup_by: ending.hangup_by,
            hangup_cause: ending.cause,
            codec: call.codec.clone(),
            a,
            b,
        };
        info!(call = id, call_id = %call.a_call_id, disposition = ending.disposition.as_str(), "call ended");
        self.metrics.inc_call(ending.disposition.as_str());
        self.write_cdr_then_respond(cdr, reply);
    }

    pub(crate) fn write_cdr_then_respond(
        &mut self,
        cdr: NewCdr,
        reply: Option<(TransactionId, Response)>,
    ) {
        let store = self.store.clone();
        let tx = self.internal.clone();
        tokio::spawn(async move {
            if let Err(e) = store.insert_cdr(cdr).await {
                warn!(error = %e, "call record not stored");
            }
            if let Some((txn, r)) = reply {
                let _ = tx.send(Internal::Respond(txn, Box::new(r)));
            }
        });
    }
}

fn call_exists(core: &Core, id: u64) -> bool {
    core.calls.contains_key(&id)
}

fn leg_stats(s: &media::LegStats) -> LegStats {
    LegStats {
        pkts_rx: s.packets_rx as i64,
        pkts_tx: s.packets_tx as i64,
        lost: s.lost as i64,
        jitter_ms: s.jitter_ms,
    }
}

fn domain_of(b: &crate::core::Binding) -> String {
    b.aor
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| b.local.ip().to_string())
}

/// `"Name" <uri>` with the name quoted and escaped, or `<uri>`.
fn display_addr(name: &str, uri: &str) -> String {
    if name.is_empty() {
        format!("<{uri}>")
    } else {
        let esc: String = name
            .chars()
            .flat_map(|c| {
                if c == '"' || c == '\\' {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        format!("\"{esc}\" <{uri}>")
    }
}
