//! Call pickup: group pickup (`*8`: answer a call ringing at any extension that shares a
//! pickup group with mine) and directed pickup (`**1001`: the call ringing at 1001, only if
//! we share a pickup group).
//!
//! The picking phone's INVITE becomes the call's answering leg: we answer it (the caller's
//! offer, restricted to the codecs both phones list with the same payload type, pointed at
//! the relay), answer the caller with the picker's offer (restricted the same way), bridge
//! the two through the call's relay session and cancel the ringing forks with
//! `Reason: SIP;cause=200;text="Call completed elsewhere"` (RFC 3326), so the other phones
//! log no missed call. The call keeps its one record; its callee becomes the extension that
//! picked it up (the dialled number stays in the route).
//!
//! Calls that can be picked up: relayed calls to extensions still ringing. Calls whose media
//! Denwa terminates (IVR transfers, transcoded calls) and calls ringing on another network
//! segment than the picker's are refused with 480.

use std::net::SocketAddr;

use bytes::Bytes;
use sip::dialog::Dialog;
use sip::{HeaderName, MediaType, Response};
use tracing::info;

use crate::b2bua::{A_LEG, Bridge, Entry, Leg, Origin};
use crate::config::ExtEntry;
use crate::control::CallState;
use crate::db::Disposition;
use crate::media::{MediaCommand, SessionId, Side};
use crate::{ALLOW, Engine, Now, nathelper, sdp};

/// The Reason header on the CANCELs of the forks a pickup replaces.
pub const COMPLETED_ELSEWHERE: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

/// Why a pickup found nothing to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    /// No call rings where the picker may pick up.
    Nothing,
    /// A call rings at the extension asked for, but it shares no pickup group with the picker.
    NotInGroup,
}

impl Engine {
    /// The extensions (numbers) a ringing call's forks ring.
    fn ringing_extensions(&self, id: u64) -> Vec<String> {
        let Some(call) = self.b2bua.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for b in &call.rung {
            if let Some(e) = self
                .snap
                .extensions
                .values()
                .find(|e| e.id == b.extension_id)
                && !out.contains(&e.number)
            {
                out.push(e.number.clone());
            }
        }
        out
    }

    /// The oldest call the picker may pick up: `target` for directed pickup, else any
    /// extension sharing a pickup group.
    fn pickup_candidate(
        &self,
        tenant: i64,
        picker: &str,
        target: Option<&str>,
    ) -> Result<u64, Miss> {
        let mut best: Option<(std::time::Instant, u64)> = None;
        let mut not_in_group = false;
        for call in self.b2bua.calls.values() {
            let ringing = call.tenant_id == tenant
                && call.state == CallState::Ringing
                && call.bridge.is_none()
                && call.anchor.is_none()
                && call.outside.is_none()
                && call.caller != picker
                && call
                    .legs
                    .iter()
                    .any(|l| l.side == Side::B && l.final_status.is_none());
            if !ringing {
                continue;
            }
            for ext in self.ringing_extensions(call.id) {
                if ext == picker || target.is_some_and(|t| t != ext) {
                    continue;
                }
                if !self.snap.codes.share_pickup_group(tenant, picker, &ext) {
                    not_in_group = true;
                    continue;
                }
                if best.is_none_or(|(t, _)| call.start_mono < t) {
                    best = Some((call.start_mono, call.id));
                }
            }
        }
        match best {
            Some((_, id)) => Ok(id),
            None if not_in_group && target.is_some() => Err(Miss::NotInGroup),
            None => Err(Miss::Nothing),
        }
    }

    /// `*8` / `**EXT`: answer a ringing call from the picker's phone.
    pub(crate) fn pickup(
        &mut self,
        entry: Entry,
        o: Origin,
        picker: &ExtEntry,
        target: Option<&str>,
        now: Now,
    ) {
        let (txn, req, source, local, transport) = entry;
        let refuse = |e: &mut Engine, status: u16, reason: &str| {
            e.refuse_call(
                txn,
                &req,
                source,
                &o,
                status,
                reason,
                Disposition::Failed,
                now,
            )
        };
        if target.is_some_and(str::is_empty) {
            return refuse(self, 484, "Address Incomplete");
        }
        let id = match self.pickup_candidate(o.tenant, &picker.number, target) {
            Ok(id) => id,
            Err(Miss::Nothing) => return refuse(self, 404, "Nothing to pick up"),
            Err(Miss::NotInGroup) => return refuse(self, 403, "Not in a shared pickup group"),
        };
        let Ok(offer) = sdp::summarize(&req.body) else {
            return refuse(self, 488, "SDP offer required");
        };
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get(id) else {
            return refuse(self, 404, "Nothing to pick up");
        };
        // The relay session facing the picker's segment.
        let Some((session, (a_port, b_port))) = call
            .media
            .iter()
            .find(|m| m.b_ip == local.ip())
            .and_then(|m| m.ports.map(|p| (m.id, p)))
        else {
            return refuse(self, 480, "Call rings on another network segment");
        };
        let a = &call.legs[A_LEG];
        let (a_txn, a_local, a_tag, a_transport) =
            (a.txn, a.local, a.tag.clone(), a.target.transport);
        let Some(a_invite) = self.layer.request(a_txn).cloned() else {
            return refuse(self, 404, "Nothing to pick up");
        };
        let Ok(a_offer) = sdp::summarize(&a_invite.body) else {
            return refuse(self, 488, "Not Acceptable Here");
        };
        // Codecs both phones list under the same payload type (the relay does not renumber).
        let common: Vec<String> = offer
            .codecs
            .iter()
            .filter(|c| a_offer.codecs.contains(c))
            .map(|(_, name, _)| name.clone())
            .collect();
        let to_picker = sdp::restrict_codecs(&a_invite.body, &common)
            .ok()
            .flatten()
            .and_then(|b| {
                let relay = SocketAddr::new(nathelper::advertised_ip(adv, local), b_port.port());
                sdp::rewrite(&b, relay).ok()
            });
        let to_caller = sdp::restrict_codecs(&req.body, &common)
            .ok()
            .flatten()
            .and_then(|b| {
                let relay = SocketAddr::new(nathelper::advertised_ip(adv, a_local), a_port.port());
                sdp::rewrite(&b, relay).ok()
            });
        let (Some(to_picker), Some(to_caller)) = (to_picker, to_caller) else {
            return refuse(self, 488, "No codec in common with the caller");
        };
        // Answer the picker.
        let p_tag = self.new_tag();
        let mut p_ok = Response::for_request(&req, 200, None).with_to_tag(&p_tag);
        let p_contact = nathelper::contact_uri(adv, None, local, transport);
        p_ok.headers
            .push(HeaderName::Contact, format!("<{p_contact}>"));
        p_ok.headers.push(HeaderName::Allow, ALLOW);
        p_ok.set_body(&MediaType::sdp(), Bytes::from(to_picker));
        let p_call_id = o.call_id.clone();
        let mut p_leg = Leg::caller(p_call_id.clone(), txn, (source, local, transport), p_tag);
        p_leg.side = Side::B;
        p_leg.session = Some(session);
        p_leg.final_status = Some(200);
        p_leg.dialog = Dialog::uas(&req, &p_ok).ok();
        // Answer the caller.
        let mut a_ok = Response::for_request(&a_invite, 200, None).with_to_tag(&a_tag);
        let a_contact = nathelper::contact_uri(adv, None, a_local, a_transport);
        a_ok.headers
            .push(HeaderName::Contact, format!("<{a_contact}>"));
        a_ok.headers.push(HeaderName::Allow, ALLOW);
        a_ok.set_body(&MediaType::sdp(), Bytes::from(to_caller));
        let a_dialog = Dialog::uas(&a_invite, &a_ok).ok();
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let forks: Vec<sip::transaction::TransactionId> = call
            .legs
            .iter()
            .filter(|l| l.side == Side::B && l.final_status.is_none())
            .map(|l| l.txn)
            .collect();
        let spare: Vec<SessionId> = call
            .media
            .iter()
            .filter(|m| m.id != session && m.ports.is_some())
            .map(|m| m.id)
            .collect();
        call.media.retain(|m| m.id == session);
        call.legs[A_LEG].dialog = a_dialog;
        let p_idx = call.legs.len();
        call.legs.push(p_leg);
        call.bridge = Some(Bridge {
            a: A_LEG,
            b: p_idx,
            session,
        });
        call.state = CallState::Up;
        call.answer = Some(now.wall);
        call.codec = common.first().cloned().unwrap_or_default();
        let rang = std::mem::replace(&mut call.callee, picker.number.clone());
        // Call history: who picked up whose call (`to`: the extension that was ringing).
        let ev = crate::transfer::TransferEvent {
            at: now.wall,
            kind: if target.is_some() {
                "directed_pickup"
            } else {
                "pickup"
            },
            by: picker.number.clone(),
            party: call.caller.clone(),
            to: rang.clone(),
            status: 200,
        };
        call.xfer.get_or_insert_with(Box::default).events.push(ev);
        info!(call = id, caller = %call.caller, rang = %rang, picked_by = %picker.number, directed = target.is_some(), "call picked up");
        self.b2bua.by_call_id.insert(p_call_id, (id, p_idx));
        if let Some(rtp) = offer.rtp {
            self.media(MediaCommand::SetRemote {
                session,
                side: Side::B,
                rtp,
                rtcp: offer.rtcp,
            });
        }
        self.media(MediaCommand::SetHold {
            session,
            on_hold: offer.is_hold(),
        });
        for s in spare {
            self.b2bua.forget_session(s);
            self.media(MediaCommand::Close { session: s });
        }
        self.respond(txn, p_ok, now);
        self.respond(a_txn, a_ok, now);
        for t in forks {
            let _ = self
                .layer
                .cancel_with_reason(t, COMPLETED_ELSEWHERE, now.mono);
        }
    }
}
