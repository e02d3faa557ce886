//! Anchored calls to outside numbers: an application (voicemail's call back, a transfer)
//! hands its caller to a number the dialplan sent out through trunks.
//!
//! The plan is the relayed outbound call's ([`Engine::outside_plan`]: toll-fraud limits,
//! trunks in route order), and so are the attempts ([`Engine::send_trunk_leg`]: provider
//! digest auth, failover, silence timeout). What differs is the media: the caller stays on its
//! endpoint, a second endpoint is opened on the first usable trunk's segment and offered to the
//! trunk; the caller hears ringback until the trunk answers, then both endpoints join one
//! bridge ([`Engine::anchored_answered`]). When every trunk fails the application's
//! "unavailable" handling runs. The call's record becomes an outbound one (route, trunk, sent
//! number, caller ID), and its talk time counts against the caller's limits.

use std::net::{IpAddr, SocketAddr};

use tracing::{info, warn};

use super::Ep;
use crate::db::Direction;
use crate::dialplan::OutsideCall;
use crate::dispatcher::OutsidePlan;
use crate::media::{MediaCommand, ToneKind};
use crate::{Engine, Now, nathelper, sdp_local};

impl Engine {
    /// Sends anchored call `id`'s caller to the outside number `call`, dialled as extension
    /// `caller`. Ringback plays while the trunk is tried. The status and reason when the
    /// call may not go out (limits, no usable trunk, unknown caller).
    pub(crate) fn anchored_outside(
        &mut self,
        id: u64,
        call: OutsideCall,
        caller: &str,
        now: Now,
    ) -> Result<(), (u16, String)> {
        let Some(c) = self.b2bua.get(id) else {
            return Err((481, "call gone".into()));
        };
        if c.anchor.is_none() || c.outside.is_some() {
            return Err((503, "call not anchored or already calling out".into()));
        }
        let tenant = c.tenant_id;
        let (plan, local) = self.outside_plan_for(tenant, call, caller, now)?;
        self.anchored_outside_attach(id, plan, caller);
        self.anchored_outside_ring(id, local.ip(), now);
        Ok(())
    }

    /// [`Engine::outside_plan`] for extension number `caller`.
    pub(crate) fn outside_plan_for(
        &mut self,
        tenant: i64,
        call: OutsideCall,
        caller: &str,
        now: Now,
    ) -> Result<(OutsidePlan, SocketAddr), (u16, String)> {
        let Some(ext) = self
            .snap
            .extensions
            .get(&(tenant, caller.to_string()))
            .cloned()
        else {
            return Err((403, format!("{caller:?} is not an extension")));
        };
        self.outside_plan(tenant, call, &ext, &"anchored call", now)
    }

    /// Makes anchored call `id` an outbound call of extension `caller` along `plan`: the
    /// record's route and numbers, the caller's count of outside calls in progress.
    pub(crate) fn anchored_outside_attach(&mut self, id: u64, plan: OutsidePlan, caller: &str) {
        let Some(c) = self.b2bua.get_mut(id) else {
            return;
        };
        let number = plan.call.number.clone();
        info!(call = id, %caller, %number, "anchored call to an outside number");
        c.callee = number.clone();
        c.caller = caller.to_string();
        c.route.direction = Direction::Outbound;
        c.route.sent_number = number;
        c.route.caller_id = plan.call.caller_id.number.clone();
        c.outside = Some(Box::new(plan));
        if let Some(a) = c.anchor.as_deref_mut() {
            // Set again by a menu's forward that leads here ([`Engine::goto_outside`]).
            a.diverted = None;
        }
        let tenant = c.tenant_id;
        self.outside_call_counted(tenant, caller);
    }

    /// Opens the trunk-side endpoint of anchored call `id` (planned by
    /// [`Engine::anchored_outside_attach`]) on segment `ip`, with ringback to the caller; the
    /// trunk is tried once it is open.
    pub(crate) fn anchored_outside_ring(&mut self, id: u64, ip: IpAddr, now: Now) {
        let no_answer = self.snap.settings.no_answer;
        let Some(c) = self.b2bua.get_mut(id) else {
            return;
        };
        c.no_answer_at = now.mono + no_answer;
        let call_id = c.legs[crate::b2bua::A_LEG].call_id.clone();
        let ep = self.b2bua.new_endpoint(id);
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        anchor.connecting = true;
        anchor.targets = None;
        anchor.b.push(Ep::new(ep, ip));
        let deferred = anchor.defer_answer;
        self.media(MediaCommand::OpenEndpoint {
            endpoint: ep,
            call_id,
            ip,
            group: id,
        });
        if !deferred {
            let ringback = self.progress_tone(id, ToneKind::Ringback);
            self.play(id, vec![ringback], false, true);
        }
    }

    /// The trunk-side endpoint of an anchored outside call is open: offer it to the first
    /// usable trunk. True when the call is such a call (and so handled here).
    pub(crate) fn anchored_trunk_leg(&mut self, id: u64, now: Now) -> bool {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        if call.outside.is_none() {
            return false;
        }
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return false;
        };
        let mf = anchor.invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let first = anchor.a.codec.as_ref().map(|(c, _)| c.name.clone());
        anchor.sdp_version += 1;
        let version = anchor.sdp_version;
        let local = anchor.b.first().and_then(|e| e.local);
        let Some(local) = local else {
            warn!(call = id, "no media port towards the trunk");
            return self.anchored_outside_failed(id, now);
        };
        let addr = SocketAddr::new(nathelper::advertised_ip(adv, local), local.port());
        let body = sdp_local::offer(addr, first.as_deref(), version);
        if let Some(plan) = call.outside.as_deref_mut() {
            plan.body = body.into();
            plan.max_forwards = mf;
        }
        if !self.send_trunk_leg(id, now) {
            return self.anchored_outside_failed(id, now);
        }
        true
    }

    /// No trunk could be tried: the outside attempt ends, the application says so.
    fn anchored_outside_failed(&mut self, id: u64, now: Now) -> bool {
        self.anchored_outside_done(id);
        self.close_b_endpoints(id, None);
        self.unavailable(id, now);
        true
    }

    /// Forgets a failed outside attempt of an anchored call (its count of calls in progress
    /// with it), so the application may try again.
    pub(crate) fn anchored_outside_done(&mut self, id: u64) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        if call.anchor.is_none() || call.outside.take().is_none() {
            return;
        }
        let (tenant, caller) = (call.tenant_id, call.caller.clone());
        self.outside_call_gone(tenant, &caller);
    }
}
