//! Blind transfer (REFER) of a relayed call's party to something that answers on a media
//! endpoint of ours: the park code (`*70`), an IVR menu, a voicemail box, a conference room.
//!
//! The transferee's leg leaves the relayed call and becomes the caller's leg of a new anchored
//! call ([`crate::anchor::Anchor::for_dialog`]): an endpoint is opened, the transferee is
//! re-INVITEd onto it in its own dialog ([`Engine::send_endpoint_reinvite`]), and once that is
//! answered the call goes where the number led, as if the transferee had dialled it: the park
//! flow (slot stored first, announced, music on hold; the parker is the transferor) or the
//! application ([`Engine::app_goto`]). The transferor gets NOTIFY `200 OK` and BYE when the
//! REFER is accepted; the relayed call ends with its own record (cause `blind transfer to
//! NUMBER`), the moved party's call gets a record of its own.
//!
//! The number is routed by the dialplan as the transferor (class of service applies); a park
//! lot with no free slot refuses the REFER with 486 and the call is kept.
//!
//! An outside number goes the same way: its toll-fraud limits and trunks are checked as the
//! transferor's before the REFER is accepted (refused: 403 or 503, the call kept), and once the
//! transferee is on our endpoint it hears ringback while the trunk is called from a second
//! endpoint ([`crate::anchor`]'s outside calls); the outside call's record is the
//! transferor's.

use std::net::SocketAddr;

use bytes::Bytes;
use sip::dialog::Dialog;
use sip::transaction::TransactionId;
use sip::{HeaderName, MediaType, Method, Request};
use tracing::{info, warn};

use crate::anchor::{Anchor, App};
use crate::b2bua::{A_LEG, Call, LegIdx, Origin};
use crate::dialplan::{Decision, Destination};
use crate::features::FeatureAction;
use crate::media::{MediaCommand, Side};
use crate::transfer::TransferEvent;
use crate::{Engine, Now};

/// Where a transferee moved onto an endpoint of ours goes once its re-INVITE is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppDest {
    /// Parked; the extension that transferred it is the parker.
    Park {
        /// The parker (the transferor's extension).
        parker: String,
    },
    /// A voice application destination (`ivr:NAME`, `vm:N`, `conf:N`), for
    /// [`Engine::app_goto`].
    Goto(String),
    /// An outside number, dialled as the transferor `by` ([`crate::anchor`]'s trunk calls).
    Outside {
        /// The transferor's extension (its class of service and limits apply).
        by: String,
        /// What the dialplan decided.
        call: Box<crate::dialplan::OutsideCall>,
    },
    /// The outside call planned (its trunks and limits checked): ring through the trunk
    /// from an endpoint on this segment once the transferee is on ours.
    Trunk(std::net::IpAddr),
    /// The voicemail menus: `*98` (asks for a box and its PIN) or `*97` (the box of `owner`,
    /// the transferor — the code means "the dialler's own box", and the transfer dials as the
    /// transferor — whose PIN is always asked: the transferee is not at the owner's phone).
    VmMenu {
        /// `*97` (own box) rather than `*98`.
        own: bool,
        /// The transferor's extension.
        owner: String,
    },
}

/// An INVITE as if the phone of dialog `d` had called us in it: Call-ID, its tag in From, ours
/// in To, Contact = its remote target, Record-Route = the route set, `body` its last SDP. What
/// an anchor needs (its offer) and what a parked call stores to be re-INVITEd after a restart
/// (`Dialog::uas` on it gives back the same dialog).
pub(crate) fn dialog_invite(d: &Dialog, body: &Bytes, peer: SocketAddr) -> Request {
    let mut r = Request::new(Method::Invite, d.local.uri.clone());
    r.headers.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP {peer};branch=z9hG4bK-xfer-{}", d.id.remote_tag),
    );
    r.headers.push(HeaderName::MaxForwards, "70");
    r.headers.push(HeaderName::From, d.remote.to_string());
    r.headers.push(HeaderName::To, d.local.to_string());
    r.headers.push(HeaderName::CallId, d.id.call_id.clone());
    r.headers.push(
        HeaderName::CSeq,
        format!("{} INVITE", d.remote_seq.unwrap_or(1)),
    );
    r.headers
        .push(HeaderName::Contact, format!("<{}>", d.remote_target));
    for rr in &d.route_set {
        r.headers.push(HeaderName::RecordRoute, rr.to_string());
    }
    r.set_body(&MediaType::sdp(), body.clone());
    r
}

impl Engine {
    /// The destination a blind transfer of `by`'s call to `number` reaches, when it is one
    /// that answers on an endpoint of ours; `None` for anything else (extensions, refusals:
    /// [`crate::transfer`] handles those).
    pub(crate) fn xfer_app_target(
        &self,
        tenant: i64,
        by: &str,
        number: &str,
        now: Now,
    ) -> Option<AppDest> {
        let decision = self.transfer_decision(tenant, by, number, now);
        match decision {
            Decision::Feature { feature, .. } if feature.action == FeatureAction::Park => {
                Some(AppDest::Park {
                    parker: by.to_string(),
                })
            }
            Decision::Route {
                destination: Destination::Park,
                ..
            } => Some(AppDest::Park {
                parker: by.to_string(),
            }),
            Decision::Route {
                destination: d @ (Destination::Ivr(_) | Destination::Vm(_) | Destination::Conf(_)),
                ..
            } => Some(AppDest::Goto(d.to_string())),
            Decision::Route {
                destination: d @ (Destination::VmOwn | Destination::VmMain),
                ..
            } => Some(AppDest::VmMenu {
                own: d == Destination::VmOwn,
                owner: by.to_string(),
            }),
            Decision::Outside { call, .. } => Some(AppDest::Outside {
                by: by.to_string(),
                call: Box::new(call),
            }),
            _ => None,
        }
    }

    /// Blind transfer of leg `y` of relayed call `id` (transferor `x`, extension `by`) to
    /// `dest`: the REFER `refer` (none when the administrator transfers) is answered (202,
    /// NOTIFY 100 and 200), the transferor released, and `y` moved into a new anchored call
    /// whose endpoint is being opened. Refused (nothing changed): the status and reason.
    pub(crate) fn blind_to_app(
        &mut self,
        refer: Option<(TransactionId, &Request)>,
        (id, x, y, by, refer_seq): (u64, LegIdx, LegIdx, String, Option<u32>),
        number: &str,
        dest: AppDest,
        now: Now,
    ) -> Result<(), (u16, &'static str)> {
        let Some(call) = self.b2bua.get(id) else {
            return Err((404, "No such call"));
        };
        let tenant = call.tenant_id;
        if matches!(dest, AppDest::Park { .. }) && !self.park_has_free_slot(tenant) {
            info!(call = id, by = %by, "transfer to park refused: lot full");
            return Err((486, "No parking slot is free"));
        }
        let yl = &call.legs[y];
        let (Some(d), Some(body)) = (yl.dialog.as_ref(), yl.sdp.as_ref()) else {
            return Err((488, "No media to move"));
        };
        let invite = dialog_invite(d, body, yl.target.destination);
        let (party, party_name) = crate::transfer::leg_number(call, y, &self.snap);
        let ip = yl.local.ip();
        let app = match &dest {
            AppDest::Park { .. } => App::Park,
            _ => App::Announce(Vec::new()),
        };
        let lang = self.snap.settings.prompt_language.clone();
        let new_id = self.b2bua.next_call_id();
        let ep = self.b2bua.new_endpoint(new_id);
        let Some(anchor) = Anchor::for_dialog(invite, ep, ip, app, lang) else {
            self.b2bua.by_endpoint.remove(&ep);
            return Err((488, "No usable media to move"));
        };
        // An outside number: its limits and trunks are checked before the REFER is accepted.
        let (dest, planned) = match dest {
            AppDest::Outside { by: caller, call } => {
                match self.outside_plan_for(tenant, *call, &caller, now) {
                    Ok((plan, local)) => (AppDest::Trunk(local.ip()), Some((plan, caller))),
                    Err((status, reason)) => {
                        self.b2bua.by_endpoint.remove(&ep);
                        info!(call = id, by = %by, to = %number, status, %reason, "transfer to an outside number refused");
                        return Err(if status == 503 {
                            (503, "No trunk available")
                        } else {
                            (403, "Outside call refused")
                        });
                    }
                }
            }
            d => (d, None),
        };
        info!(call = id, new_call = new_id, by = %by, to = %number, "blind transfer to an application accepted");
        // (A ring group's no-answer destination comes here with no REFER to answer: its
        // transferor heard `100 Trying` when the group began to ring.)
        if let Some((txn, req)) = refer {
            self.accept_refer(txn, req, id, x, now);
            self.notify_transferor(id, x, refer_seq, 100, false, now);
        }
        // Take the transferee's leg out of the relayed call.
        let Some(c) = self.b2bua.get_mut(id) else {
            return Ok(());
        };
        let mut moved = crate::transfer::take_leg(c, y);
        c.bridge = None;
        c.xfer
            .get_or_insert_with(Box::default)
            .events
            .push(TransferEvent {
                at: now.wall,
                kind: "blind",
                by: by.clone(),
                party: party.clone(),
                to: number.to_string(),
                status: 200,
            });
        if y == A_LEG {
            self.b2bua.forget_server_txn(moved.txn);
        }
        self.b2bua.by_call_id.remove(&moved.call_id);
        // The transferor is done: NOTIFY 200, BYE, the relayed call ends with its record.
        self.notify_transferor(id, x, refer_seq, 200, true, now);
        self.end_released(id, x, format!("blind transfer to {number}"), now);
        // The transferee's call, anchored on the endpoint being opened.
        moved.side = Side::A;
        moved.session = None;
        let o = Origin {
            tenant,
            caller: party,
            caller_name: party_name,
            call_id: moved.call_id.clone(),
            digits: number.to_string(),
            route: crate::db::CallRoute::default(),
        };
        let mut call = Box::new(Call::new(
            new_id,
            o,
            moved,
            Vec::new(),
            now,
            self.snap.settings.no_answer,
        ));
        call.state = crate::control::CallState::Up;
        call.answer = Some(now.wall);
        call.anchor = Some(Box::new(anchor));
        call.xfer.get_or_insert_with(Box::default).app_dest = Some(dest);
        let call_id = call.legs[A_LEG].call_id.clone();
        self.b2bua.insert(call);
        if let Some((plan, caller)) = planned {
            self.anchored_outside_attach(new_id, plan, &caller);
        }
        self.media(MediaCommand::OpenEndpoint {
            endpoint: ep,
            call_id,
            ip,
            group: new_id,
        });
        Ok(())
    }

    /// The endpoint of a transferee moved by [`Engine::blind_to_app`] opened: re-INVITE the
    /// transferee onto it (or end its call). True when `ep` was one.
    pub(crate) fn xfer_app_opened(
        &mut self,
        id: u64,
        ep: crate::media::EndpointId,
        r: Result<SocketAddr, ()>,
        now: Now,
    ) -> bool {
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let waiting = call.xfer.as_deref().is_some_and(|x| x.app_dest.is_some())
            && call
                .anchor
                .as_deref()
                .is_some_and(|a| a.caller_endpoint() == ep && a.reinvite_pending().is_none());
        if !waiting {
            return false;
        }
        let Ok(local) = r else {
            warn!(call = id, "no media endpoint for the transferred party");
            self.anchored_hangup(id, "no media ports", now);
            return true;
        };
        let target = call.legs[A_LEG].target;
        let (Some(mut anchor), Some(mut d)) = (call.anchor.take(), call.legs[A_LEG].dialog.take())
        else {
            return true;
        };
        Engine::caller_endpoint_opened(&mut anchor, local);
        let t = self.send_endpoint_reinvite(id, &mut d, &mut anchor, target, now);
        if let Some(c) = self.b2bua.get_mut(id) {
            c.anchor = Some(anchor);
            c.legs[A_LEG].dialog = Some(d);
            if let Some(t) = t {
                let old = std::mem::replace(&mut c.legs[A_LEG].txn, t);
                self.b2bua.forget_server_txn(old);
            }
        }
        if t.is_none() {
            self.anchored_hangup(id, "re-INVITE not sent", now);
        }
        true
    }

    /// The transferee accepted the re-INVITE onto our endpoint: it goes where the transfer
    /// led. True when `id` was such a call.
    pub(crate) fn xfer_app_reinvited(&mut self, id: u64, now: Now) -> bool {
        let Some(dest) = self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.xfer.as_deref_mut())
            .and_then(|x| x.app_dest.take())
        else {
            return false;
        };
        info!(call = id, destination = ?dest, "transferred party on our endpoint");
        match dest {
            AppDest::Park { parker } => self.park_transferred(id, &parker, now),
            AppDest::Trunk(ip) => {
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.clear_app();
                }
                self.anchored_outside_ring(id, ip, now)
            }
            AppDest::Outside { .. } => self.unavailable(id, now),
            AppDest::Goto(d) => {
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.clear_app();
                }
                self.app_goto(id, &d, now)
            }
            AppDest::VmMenu { own, owner } => self.xfer_vm_menu(id, own, &owner, now),
        }
        true
    }

    /// A transferee on our endpoint enters the voicemail menus (`*97`: the transferor's box,
    /// PIN asked; `*98`: the main menu).
    pub(crate) fn xfer_vm_menu(&mut self, id: u64, own: bool, owner: &str, now: Now) {
        let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        let lang = a.lang().parse().unwrap_or(apps::prompt::Lang::En);
        let (dest, caller) = if own {
            (Destination::VmOwn, Some((owner, false)))
        } else {
            (Destination::VmMain, None)
        };
        let Some(s) = crate::vm_menu::VmSession::new(&dest, caller, lang) else {
            return self.unavailable(id, now);
        };
        a.set_app(App::VmMenu(Box::new(s)));
        self.vm_menu_start(id, now);
    }

    /// Attended transfer onto a parked call: `by` (leg `x` of relayed call `id`, talking to
    /// `y`) parked itself as call `id2` and REFERs `y` with Replaces naming that parking
    /// dialog. `y` takes its place on the parked call's endpoint (re-INVITEd onto it; music
    /// resumes when it accepts), the slot shows `y` (the parker stays `by`), and both of
    /// `by`'s legs are released (BYE).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attended_to_park(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        (id, x, y, by, refer_seq): (u64, LegIdx, LegIdx, String, u32),
        id2: u64,
        now: Now,
    ) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let yl = &call.legs[y];
        let (Some(d), Some(body)) = (yl.dialog.as_ref(), yl.sdp.as_ref()) else {
            return self.refer_refused(txn, req, source, 488, "No media to move", now);
        };
        let invite = dialog_invite(d, body, yl.target.destination);
        let (party, party_name) = crate::transfer::leg_number(call, y, &self.snap);
        let usable = self
            .b2bua
            .get(id2)
            .and_then(|c| c.anchor.as_deref())
            .is_some_and(|a| a.reinvite_pending().is_none());
        if !usable {
            return self.refer_refused(txn, req, source, 491, "Parked call busy", now);
        }
        info!(call = id, parked = id2, by = %by, "attended transfer onto a parked call accepted");
        self.accept_refer(txn, req, id, x, now);
        self.notify_transferor(id, x, Some(refer_seq), 100, false, now);
        let Some(c) = self.b2bua.get_mut(id) else {
            return;
        };
        let mut moved = crate::transfer::take_leg(c, y);
        c.bridge = None;
        c.xfer
            .get_or_insert_with(Box::default)
            .events
            .push(TransferEvent {
                at: now.wall,
                kind: "attended",
                by: by.clone(),
                party: party.clone(),
                to: "park".into(),
                status: 200,
            });
        if y == A_LEG {
            self.b2bua.forget_server_txn(moved.txn);
        }
        self.b2bua.by_call_id.remove(&moved.call_id);
        self.notify_transferor(id, x, Some(refer_seq), 200, true, now);
        self.end_released(id, x, "attended transfer onto a parked call".into(), now);
        // The parking phone leaves the parked call; the transferee takes its leg.
        self.bye_leg(id2, A_LEG, now);
        let Some(c2) = self.b2bua.get_mut(id2) else {
            return;
        };
        let old = crate::transfer::take_leg(c2, A_LEG);
        self.b2bua.forget_server_txn(old.txn);
        self.b2bua.by_call_id.remove(&old.call_id);
        let Some(c2) = self.b2bua.get_mut(id2) else {
            return;
        };
        moved.side = Side::A;
        moved.session = None;
        let target = moved.target;
        let mut dialog = moved.dialog.take();
        c2.caller = party;
        c2.caller_name = party_name;
        let mut anchor = c2.anchor.take();
        self.b2bua
            .by_call_id
            .insert(moved.call_id.clone(), (id2, A_LEG));
        let sent = match (anchor.as_deref_mut(), dialog.as_mut()) {
            (Some(a), Some(d)) => {
                if a.replace_caller(invite) {
                    self.send_endpoint_reinvite(id2, d, a, target, now)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(t) = sent {
            moved.txn = t;
        }
        moved.dialog = dialog;
        if let Some(c2) = self.b2bua.get_mut(id2) {
            c2.legs[A_LEG] = moved;
            c2.anchor = anchor;
        }
        if sent.is_none() {
            warn!(call = id2, "transferee not moved onto the parked call");
            return self.anchored_hangup(id2, "re-INVITE not sent", now);
        }
        self.park_replaced(id2, &by, now);
    }
}
