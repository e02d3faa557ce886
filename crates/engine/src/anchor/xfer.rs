//! Blind transfer of an anchored call: one whose media Denwa terminates because it passed
//! through a voice application (main number → IVR → extension) or is transcoded (an Opus
//! phone calling a G.711 one).
//!
//! The party that answered (the winning fork, on the callee-side endpoint) transfers the
//! caller — by REFER, or the administrator's transfer. The number is routed as that extension
//! (class of service applies) and checked before the REFER is accepted: an extension with no
//! registered phone (480), a number it may not call (403), no such number (404), an outside
//! number beyond its limits (403) or with no usable trunk (503) are refused and the call goes
//! on. Accepted: 202, NOTIFY 100 then 200, and the transferor is released at once (BYE; its
//! endpoint closed). The caller stays on its endpoint — no re-INVITE reaches it — and the call
//! goes on as if its application had chosen the number: an extension is rung from new
//! endpoints with ringback to the caller ([`Engine::app_goto`]), a voicemail box, IVR or room
//! starts there, a ring group is hunted with its own plan as when a menu chooses it (strategy,
//! ring times, members skipped, its no-answer destination), an outside number is called
//! through the trunks as the transferor, the park code parks the caller with the transferor as
//! its parker (rung back at the lot's timeout; refused with 486 while the lot is full), `*97`
//! and `*98` put the caller in the voicemail menus (`*97`: the transferor's box, PIN asked).
//! When the new target does not answer, the caller hears "unavailable" and goes back to the
//! menu it came from (or is hung up when it came from none). The call keeps one record; its
//! events get `blind`.
//!
//! Attended (REFER with Replaces naming the answering party's consultation call, a relayed
//! call): the consulted party's leg moves into the anchored call — a new endpoint is opened on
//! its segment and it is re-INVITEd onto it in its own dialog; once it answers, that endpoint
//! joins the caller's bridge. Both of the transferor's legs are released at once (NOTIFY 200,
//! BYE); the consultation call ends with its own record.
//!
//! Not (yet): the caller's side transferring (501), a consultation call that is itself
//! anchored (501), page groups and other feature codes as blind targets (501).

use crate::b2bua::own_sdp;
use tracing::{info, warn};

use crate::dialplan::{Decision, Destination};
use crate::features::FeatureAction;
use crate::media::MediaCommand;
use crate::transfer::{MAX_TRANSFERS_PER_CALL, TransferEvent, TransferRefused};
use crate::{Engine, Now};

/// Where an accepted transfer of an anchored call goes.
enum Next {
    /// An application destination for [`Engine::app_goto`] (`ext:N`, `vm:N`, `ivr:X`,
    /// `conf:N`, `group:X`).
    Goto(String),
    /// An outside number: the planned trunk call and the segment its endpoint opens on.
    Outside(Box<crate::dispatcher::OutsidePlan>, std::net::IpAddr),
    /// The park code: the caller parks in the lowest free slot, the transferor its parker.
    Park,
    /// The voicemail menus: `*97` (the transferor's box, PIN asked) or `*98` (main menu).
    VmMenu {
        /// `*97` rather than `*98`.
        own: bool,
    },
}

fn refused(status: u16, reason: impl Into<String>) -> TransferRefused {
    TransferRefused {
        status,
        reason: reason.into(),
    }
}

impl Engine {
    /// The leg that may transfer anchored call `id` and its extension: the answering party
    /// (the winning fork), when it is an extension of the tenant.
    pub(crate) fn anchored_transferor(&self, id: u64) -> Result<(usize, String), TransferRefused> {
        let call = self
            .b2bua
            .get(id)
            .ok_or_else(|| refused(404, "No such call"))?;
        let anchor = call
            .anchor
            .as_deref()
            .ok_or_else(|| refused(409, "Call not anchored"))?;
        let Some(x) = anchor.winner_leg() else {
            return Err(refused(409, "Call not answered"));
        };
        if anchor.app.is_some() || anchor.connecting {
            return Err(refused(409, "Call not connected"));
        }
        // The callee the application (or the direct call) rang: an extension, or none.
        let by = call
            .xfer
            .as_deref()
            .and_then(|xs| xs.parties.iter().find(|(l, _)| *l == x))
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| call.callee.clone());
        if call.legs[x].trunk.is_some()
            || !self
                .snap
                .extensions
                .contains_key(&(call.tenant_id, by.clone()))
        {
            return Err(refused(403, "Only an extension may transfer"));
        }
        Ok((x, by))
    }

    /// Checks a transfer of anchored call `id` by `by` to `number` (routed as `by`).
    fn anchored_next(
        &mut self,
        id: u64,
        by: &str,
        number: &str,
        now: Now,
    ) -> Result<Next, TransferRefused> {
        let call = self
            .b2bua
            .get(id)
            .ok_or_else(|| refused(404, "No such call"))?;
        let tenant = call.tenant_id;
        if call
            .xfer
            .as_deref()
            .is_some_and(|x| x.transfers() >= MAX_TRANSFERS_PER_CALL)
        {
            return Err(refused(403, "Too many transfers"));
        }
        let not_yet = || {
            refused(
                501,
                "Transfer of a call through a voice application or transcoding to this kind of destination is not supported",
            )
        };
        match self.transfer_decision(tenant, by, number, now) {
            Decision::Reject { status, reason } => Err(refused(status, reason)),
            Decision::Route {
                destination: Destination::Ext(n),
                ..
            } => {
                let e = self
                    .snap
                    .extensions
                    .get(&(tenant, n.clone()))
                    .ok_or_else(|| refused(404, "Not Found"))?;
                let live = e.enabled
                    && self
                        .usrloc
                        .get(e.id)
                        .iter()
                        .any(|b| b.expires_at > now.wall);
                if !live {
                    return Err(refused(480, "Temporarily Unavailable"));
                }
                Ok(Next::Goto(Destination::Ext(n).to_string()))
            }
            Decision::Route {
                destination: d @ (Destination::Vm(_) | Destination::Ivr(_) | Destination::Conf(_)),
                ..
            } => Ok(Next::Goto(d.to_string())),
            Decision::Route {
                destination: Destination::Group(name),
                ..
            } => {
                // Rung as a menu choice of the group would be ([`Engine::ivr_goto`]): its
                // strategy, ring times, skipped members and no-answer destination.
                if self.has_group(tenant, &name) {
                    Ok(Next::Goto(Destination::Group(name).to_string()))
                } else {
                    Err(refused(404, format!("No ring group {name}")))
                }
            }
            Decision::Outside { call: oc, .. } => {
                if self.b2bua.get(id).is_some_and(|c| c.outside.is_some()) {
                    return Err(not_yet());
                }
                match self.outside_plan_for(tenant, oc, by, now) {
                    Ok((plan, local)) => Ok(Next::Outside(Box::new(plan), local.ip())),
                    Err((503, _)) => Err(refused(503, "No trunk available")),
                    Err(_) => Err(refused(403, "Outside call refused")),
                }
            }
            Decision::Feature { feature, .. } if feature.action == FeatureAction::Park => {
                self.anchored_park_next(tenant, id, by)
            }
            Decision::Route {
                destination: Destination::Park,
                ..
            } => self.anchored_park_next(tenant, id, by),
            Decision::Route {
                destination: d @ (Destination::VmOwn | Destination::VmMain),
                ..
            } => Ok(Next::VmMenu {
                own: d == Destination::VmOwn,
            }),
            Decision::Route { .. } | Decision::Feature { .. } => Err(not_yet()),
        }
    }

    /// A transfer of anchored call `id` by `by` to the park code: refused while the lot is full
    /// (the call goes on), as for a relayed call.
    fn anchored_park_next(&self, tenant: i64, id: u64, by: &str) -> Result<Next, TransferRefused> {
        if self.park_has_free_slot(tenant) {
            Ok(Next::Park)
        } else {
            info!(call = id, by = %by, "transfer to park refused: lot full");
            Err(refused(486, "No parking slot is free"))
        }
    }

    /// Blind transfer of anchored call `id`: leg `x` (extension `by`, the answering party)
    /// hands the caller to `number`. `refer` is the REFER to answer (none for the
    /// administrator's transfer). Refused: nothing changed.
    pub(crate) fn anchored_blind_transfer(
        &mut self,
        refer: Option<(sip::transaction::TransactionId, &sip::Request)>,
        (id, x, by): (u64, usize, String),
        number: &str,
        now: Now,
    ) -> Result<(), TransferRefused> {
        let next = self.anchored_next(id, &by, number, now)?;
        let refer_seq = refer.and_then(|(_, r)| r.cseq().map(|c| c.seq));
        info!(call = id, by = %by, to = %number, "blind transfer of an anchored call accepted");
        if let Some((txn, req)) = refer {
            self.accept_refer(txn, req, id, x, now);
            self.notify_transferor(id, x, refer_seq, 100, false, now);
            self.notify_transferor(id, x, refer_seq, 200, true, now);
        }
        self.bye_leg(id, x, now);
        let party = self
            .b2bua
            .get(id)
            .map(|c| c.caller.clone())
            .unwrap_or_default();
        let transferor = by.clone();
        let Some(call) = self.b2bua.get_mut(id) else {
            return Ok(());
        };
        let xs = call.xfer.get_or_insert_with(Box::default);
        xs.released.push(x);
        xs.events.push(TransferEvent {
            at: now.wall,
            kind: "blind",
            by,
            party,
            to: number.to_string(),
            status: 200,
        });
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return Ok(());
        };
        // The transferor's endpoint goes; the caller's stays where it is (music or silence
        // stopped: ringback or the application follows).
        anchor.winner = None;
        anchor.held_by = None;
        let a_ep = anchor.a.id;
        self.close_b_endpoints(id, None);
        self.media(MediaCommand::StopPlay { endpoint: a_ep });
        match next {
            Next::Goto(dest) => self.app_goto(id, &dest, now),
            Next::Park => {
                // The transferor is the parker: the lot's timeout rings it back.
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.set_app(super::App::Park);
                    a.menu = None;
                }
                self.park_transferred(id, &transferor, now)
            }
            Next::VmMenu { own } => self.xfer_vm_menu(id, own, &transferor, now),
            Next::Outside(plan, ip) => {
                let caller = self
                    .b2bua
                    .get(id)
                    .and_then(|c| c.xfer.as_deref())
                    .and_then(|xs| xs.events.last())
                    .map(|e| e.by.clone())
                    .unwrap_or_default();
                self.anchored_outside_attach(id, *plan, &caller);
                self.anchored_outside_ring(id, ip, now);
            }
        }
        Ok(())
    }
}

impl Engine {
    /// A REFER in anchored call `id` from leg `leg` (its dialog checked): a blind transfer by
    /// the answering party, or refused with the reason.
    pub(crate) fn anchored_refer(
        &mut self,
        (txn, req, source): (
            sip::transaction::TransactionId,
            &sip::Request,
            std::net::SocketAddr,
        ),
        id: u64,
        leg: usize,
        now: Now,
    ) {
        let mut values = req.headers.get_all(&sip::HeaderName::ReferTo);
        let (Some(value), None) = (values.next(), values.next()) else {
            return self.refer_refused(txn, req, source, 400, "Exactly one Refer-To needed", now);
        };
        let number = match crate::transfer::parse_refer_to(value.as_str()) {
            Ok(crate::transfer::ReferTo::Blind(n)) => n,
            Ok(crate::transfer::ReferTo::Attended {
                call_id,
                to_tag,
                from_tag,
                ..
            }) => {
                let (x, by) = match self.anchored_transferor(id) {
                    Ok(t) if t.0 == leg => t,
                    Ok(_) => {
                        return self.refer_refused(
                            txn,
                            req,
                            source,
                            501,
                            "Only the answering party can transfer a call through a voice application or transcoding",
                            now,
                        );
                    }
                    Err(e) => {
                        return self.refer_refused(txn, req, source, e.status, &e.reason, now);
                    }
                };
                let r = self.anchored_attended(
                    (txn, req),
                    (id, x, by),
                    (&call_id, &to_tag, &from_tag),
                    now,
                );
                if let Err(e) = r {
                    info!(call = id, peer = %source, status = e.status, reason = %e.reason, "attended transfer refused; the call is kept");
                    self.refer_refused(txn, req, source, e.status, &e.reason, now);
                }
                return;
            }
            Err(e) => {
                let reason = format!("Bad Refer-To: {e}");
                return self.refer_refused(txn, req, source, 400, &reason, now);
            }
        };
        let (x, by) = match self.anchored_transferor(id) {
            Ok(t) if t.0 == leg => t,
            Ok(_) => {
                return self.refer_refused(
                    txn,
                    req,
                    source,
                    501,
                    "Only the answering party can transfer a call through a voice application or transcoding",
                    now,
                );
            }
            Err(e) => return self.refer_refused(txn, req, source, e.status, &e.reason, now),
        };
        if let Err(e) = self.anchored_blind_transfer(Some((txn, req)), (id, x, by), &number, now) {
            info!(call = id, peer = %source, to = %number, status = e.status, reason = %e.reason, "transfer refused; the call is kept");
            self.refer_refused(txn, req, source, e.status, &e.reason, now);
        }
    }
}

impl Engine {
    /// Attended transfer of anchored call `id`: its answering party `x` (extension `by`)
    /// consulted someone in relayed call 2 (its dialog `call_id`/tags) and REFERs with
    /// Replaces. The consulted party's leg moves into call `id`: a new endpoint is opened for
    /// it and it is re-INVITEd onto that endpoint, which joins the caller's bridge once it
    /// answers. Both of `x`'s legs are released (BYE); call 2 ends with its own record.
    fn anchored_attended(
        &mut self,
        (txn, req): (sip::transaction::TransactionId, &sip::Request),
        (id, x, by): (u64, usize, String),
        (call_id, to_tag, from_tag): (&str, &str, &str),
        now: Now,
    ) -> Result<(), TransferRefused> {
        let no_call = || refused(403, "Replaces names no call here");
        let (id2, x2) = self
            .b2bua
            .by_call_id
            .get(call_id)
            .copied()
            .ok_or_else(no_call)?;
        let (c1, c2) = match (self.b2bua.get(id), self.b2bua.get(id2)) {
            (Some(a), Some(b)) if id2 != id && a.tenant_id == b.tenant_id => (a, b),
            _ => return Err(no_call()),
        };
        if c1
            .xfer
            .as_deref()
            .is_some_and(|x| x.transfers() >= MAX_TRANSFERS_PER_CALL)
        {
            return Err(refused(403, "Too many transfers"));
        }
        let tags_match = c2.legs[x2].dialog.as_ref().is_some_and(|d| {
            let (l, r) = (d.id.local_tag.as_str(), d.id.remote_tag.as_str());
            (l == to_tag && r == from_tag) || (l == from_tag && r == to_tag)
        });
        if !tags_match {
            return Err(refused(481, "Replaces names no dialog"));
        }
        if crate::transfer::leg_ext(c2, x2, &self.snap).as_deref() != Some(by.as_str()) {
            return Err(refused(403, "Replaces names another party's call"));
        }
        if c2.anchor.is_some() || c2.xfer.as_deref().is_some_and(|x| x.pending.is_some()) {
            return Err(refused(501, "That call cannot be joined"));
        }
        let c_leg = c2
            .bridge
            .and_then(|b| b.peer(x2))
            .ok_or_else(|| refused(481, "Call not answered"))?;
        if c2.legs[c_leg].dialog.is_none() {
            return Err(refused(481, "Call not answered"));
        }
        let target = crate::transfer::leg_ext(c2, c_leg, &self.snap)
            .unwrap_or_else(|| crate::transfer::leg_number(c2, c_leg, &self.snap).0);
        let party = c1.caller.clone();
        info!(call = id, consult = id2, by = %by, to = %target, "attended transfer of an anchored call accepted");
        let refer_seq = req.cseq().map(|c| c.seq);
        self.accept_refer(txn, req, id, x, now);
        self.notify_transferor(id, x, refer_seq, 100, false, now);
        // The consulted party leaves call 2, which ends (BYE to the transferor's side of it).
        let Some(c2) = self.b2bua.get_mut(id2) else {
            return Ok(());
        };
        let mut moved = crate::transfer::take_leg(c2, c_leg);
        self.b2bua.forget_server_txn(moved.txn);
        self.end_released(
            id2,
            x2,
            format!("attended transfer: joined to call {id}"),
            now,
        );
        // The transferor leaves call 1; the consulted party takes its place.
        self.notify_transferor(id, x, refer_seq, 200, true, now);
        self.bye_leg(id, x, now);
        let ip = moved.local.ip();
        let ep = self.b2bua.new_endpoint(id);
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return Ok(());
        };
        moved.side = crate::media::Side::B;
        moved.session = None;
        let i = call.legs.len();
        self.b2bua.by_call_id.insert(moved.call_id.clone(), (id, i));
        let call_id1 = call.legs[super::A_LEG].call_id.clone();
        call.legs.push(moved);
        call.callee = target.clone();
        let xs = call.xfer.get_or_insert_with(Box::default);
        xs.released.push(x);
        xs.parties.push((i, target.clone()));
        xs.anchored_join = Some((i, ep, None));
        xs.events.push(TransferEvent {
            at: now.wall,
            kind: "attended",
            by,
            party,
            to: target,
            status: 200,
        });
        if let Some(anchor) = call.anchor.as_deref_mut() {
            anchor.winner = None;
            anchor.b.push(super::Ep::new(ep, ip));
        }
        // The old endpoint (the transferor's) goes; the new one opens.
        self.close_b_endpoints(id, Some(ep));
        self.media(MediaCommand::OpenEndpoint {
            endpoint: ep,
            call_id: call_id1,
            ip,
            group: id,
        });
        Ok(())
    }

    /// The endpoint for an attended transfer's target opened: re-INVITE the target onto it.
    /// True when `ep` was one.
    pub(crate) fn anchored_join_opened(
        &mut self,
        id: u64,
        ep: crate::media::EndpointId,
        r: Result<std::net::SocketAddr, ()>,
        now: Now,
    ) -> bool {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let Some((i, _, None)) = call
            .xfer
            .as_deref()
            .and_then(|x| x.anchored_join)
            .filter(|(_, e, _)| *e == ep)
        else {
            return false;
        };
        let Ok(local) = r else {
            warn!(call = id, "no media endpoint for the transfer target");
            self.anchored_hangup(id, "no media ports", now);
            return true;
        };
        let leg_local = call.legs[i].local;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return true;
        };
        if let Some(e) = anchor.ep_mut(ep) {
            e.local = Some(local);
        }
        let first = anchor.a.codec.as_ref().map(|(c, _)| c.name.clone());
        anchor.sdp_version += 1;
        let version = anchor.sdp_version;
        let addr = std::net::SocketAddr::new(
            crate::nathelper::advertised_ip(adv, leg_local),
            local.port(),
        );
        let body = crate::sdp_local::offer(addr, first.as_deref(), version);
        let Some((mut inv, target)) = self.leg_request(id, i, sip::Method::Invite) else {
            self.anchored_hangup(id, "transfer target lost", now);
            return true;
        };
        inv.headers.push(sip::HeaderName::Allow, crate::ALLOW);
        inv.set_body(&sip::MediaType::sdp(), bytes::Bytes::from(body));
        let t = self.send_request(inv, target, crate::Owner::Call(id), now);
        match (
            t,
            self.b2bua.get_mut(id).and_then(|c| c.xfer.as_deref_mut()),
        ) {
            (Some(t), Some(x)) => x.anchored_join = Some((i, ep, Some(t))),
            _ => self.anchored_hangup(id, "re-INVITE not sent", now),
        }
        true
    }

    /// The transfer target answered our re-INVITE onto its endpoint: ACK, configure the
    /// endpoint with its media and join it to the caller's.
    pub(crate) fn anchored_join_answered(
        &mut self,
        id: u64,
        txn: sip::transaction::TransactionId,
        resp: &sip::Response,
        now: Now,
    ) {
        let Some((i, ep, _)) = self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.xfer.as_deref_mut())
            .and_then(|x| x.anchored_join.take())
        else {
            return;
        };
        if !(200..300).contains(&resp.status) {
            warn!(
                call = id,
                status = resp.status,
                "transfer target refused our re-INVITE"
            );
            return self.anchored_hangup(id, "transfer target refused the media", now);
        }
        self.ack_reinvite(id, i, txn, resp);
        let answer = crate::sdp::summarize(&resp.body).ok();
        let chosen = answer.as_ref().and_then(crate::sdp_local::choose);
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some((codec, te)) = chosen else {
            warn!(
                call = id,
                "transfer target answered without a codec we speak"
            );
            return self.anchored_hangup(id, "no common codec", now);
        };
        call.legs[i].sdp = Some(own_sdp(&resp.body));
        let (rtp, rtcp) = answer.map(|s| (s.rtp, s.rtcp)).unwrap_or((None, None));
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        if let Some(e) = anchor.ep_mut(ep) {
            e.codec = Some((codec.clone(), te));
            e.remote = rtp.map(|r| (r, rtcp));
        }
        anchor.winner = Some((i, ep));
        anchor.held_by = None;
        let a_ep = anchor.a.id;
        info!(call = id, codec = %codec.name, "attended transfer of an anchored call completed");
        self.media(MediaCommand::ConfigureEndpoint {
            endpoint: ep,
            rtp,
            rtcp,
            codec,
            telephone_event: te,
            ptime: 20,
        });
        self.media(MediaCommand::StopPlay { endpoint: a_ep });
        self.media(MediaCommand::Join {
            endpoint: a_ep,
            bridge: id,
        });
        self.media(MediaCommand::Join {
            endpoint: ep,
            bridge: id,
        });
    }
}
