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
//! starts there, an outside number is called through the trunks as the transferor. When the
//! new target does not answer, the caller hears "unavailable" and goes back to the menu it
//! came from (or is hung up when it came from none). The call keeps one record; its events get
//! `blind`.
//!
//! Not (yet): the caller's side transferring (501), ring groups and the voicemail menus as
//! targets of such a transfer (501), attended transfer (REFER with Replaces) of an anchored
//! call (501).

use tracing::info;

use crate::dialplan::{Decision, Destination};
use crate::features::FeatureAction;
use crate::media::MediaCommand;
use crate::transfer::{MAX_TRANSFERS_PER_CALL, TransferEvent, TransferRefused};
use crate::{Engine, Now};

/// Where an accepted transfer of an anchored call goes.
enum Next {
    /// An application destination for [`Engine::app_goto`] (`ext:N`, `vm:N`, `ivr:X`,
    /// `conf:N`).
    Goto(String),
    /// An outside number: the planned trunk call and the segment its endpoint opens on.
    Outside(Box<crate::dispatcher::OutsidePlan>, std::net::IpAddr),
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
                Err(not_yet())
            }
            Decision::Route { .. } | Decision::Feature { .. } => Err(not_yet()),
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
            Ok(crate::transfer::ReferTo::Attended { .. }) => {
                return self.refer_refused(
                    txn,
                    req,
                    source,
                    501,
                    "Attended transfer of calls through a voice application or transcoding is not supported",
                    now,
                );
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
