//! Where an IVR choice leads (issue 14 §4): every destination kind, and an extension chosen
//! in a menu behaving like a dialled one.
//!
//! The caller is answered already and stays on its endpoint all along; what changes is what
//! its endpoint is connected to. Plans come from [`crate::hunt`] exactly as for a direct call
//! ([`hunt::group_plan`] for a ring group: strategy, per-member ring times, members skipped
//! when busy, on DND or unregistered, round-robin memory, caller-ID name prefix, overall
//! timeout, no-answer destination; [`hunt::ext_route`] for an extension's forwarding, DND and
//! follow-me). Each step's phones are rung from endpoints of their own with ringback to the
//! caller ([`Engine::connect`], as for one extension), an outside number of a step through the
//! trunks ([`Engine::anchored_outside_attach`], as voicemail's call back). A step that fails
//! or rings out gives way to the next (the hook is [`Engine::unavailable`]: it is what every
//! failed attempt of an anchored call calls); the first phone to answer is bridged
//! ([`Engine::anchored_answered`] calls [`Engine::goto_answered`]).
//!
//! Outside numbers the menu names (`9=09012345678`, or a group's outside member, or a forward
//! to one) go through the outbound routes with the class of service of the menu (`cos` of the
//! menu, default `mobile`), of the group (its `cos`) or of the forwarding extension; the
//! caller ID is the route's, else the tenant's main number; the toll-fraud limits count the
//! call for the caller's number (an extension's own limits, the default ones for an outside
//! caller) and for the tenant. A refused or failed outside call says "unavailable" and the
//! caller is back in the menu.
//!
//! When a plan is used up with nothing to go to (or `hangup`), or an extension has no rule
//! for the case, the caller hears "unavailable" and returns to the menu.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;

use tracing::{debug, info};

use super::App;
use crate::b2bua::A_LEG;
use crate::config::ExtEntry;
use crate::dialplan::{self, Decision, Destination};
use crate::hunt::{self, ExtRoute, MAX_HOPS, MemberState, Plan, Step, Target, VmReason};
use crate::media::PlayItem;
use crate::media::Side;
use crate::outside::CallClass;
use crate::transfer::TransferEvent;
use crate::usrloc::Binding;
use crate::{Engine, Now};

/// A plan (ring group, forwarding) being run for an anchored call.
#[derive(Debug)]
pub(crate) struct GotoRun {
    plan: Plan,
    /// Index of the step ringing now.
    step: usize,
    overall_end: Option<Instant>,
    /// Forwards and no-answer destinations followed.
    hops: u8,
    /// Extensions whose forwarding was applied in this call (loop protection).
    visited: Vec<String>,
    /// Whose plan it is (a group's name, an extension's number): the events' `by`.
    by: String,
    /// Class of service (and limits, caller ID) for outside numbers of the plan.
    cos_entry: ExtEntry,
    /// The caller's name as it came (a group's prefix goes before it).
    caller_name: String,
    /// Who the contacts of the step ringing now belong to (received address → number).
    members: Vec<(SocketAddr, String)>,
    /// The call's legs before this step's forks (the step's statuses are those after).
    legs_from: usize,
    /// The extension whose forward is being followed and its RFC 5806 reason: an outside
    /// number it leads to gets a `Diversion` ([`Engine::goto_outside`]).
    diverted: Option<(String, &'static str)>,
}

impl GotoRun {
    /// Whether the plan is an extension's own (its forwarding, follow-me): [`Engine::goto_ext`]
    /// keeps that extension's entry; a group's plan is named after the group.
    fn by_extension(&self) -> bool {
        !self.by.is_empty() && self.cos_entry.number == self.by
    }

    /// A forward of kind `why` (`forward_busy`, `dnd` ...) of the plan's owner is followed: a
    /// trunk call it leads to names the owner when it is an extension (a group's no-answer
    /// destination names none).
    fn forwarded(&mut self, why: &str) {
        self.hops += 1;
        self.diverted = hunt::diversion_reason(why)
            .filter(|_| self.by_extension())
            .map(|r| (self.by.clone(), r));
    }
}

impl Engine {
    /// An IVR choice (option, dial-by-extension, timeout/invalid fallback): `text` is a
    /// destination (`group:sales`, `ext:1002`, `voicemail`, `park` …) or a number (an
    /// extension, an application number, an outside number).
    pub(crate) fn ivr_goto(&mut self, id: u64, text: &str, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        call.ivr_goto = None;
        let run = GotoRun {
            plan: Plan {
                steps: Vec::new(),
                overall: None,
                on_busy: None,
                then: None,
                cid_prefix: String::new(),
                group: None,
                skipped: Vec::new(),
            },
            step: 0,
            overall_end: None,
            hops: 0,
            visited: Vec::new(),
            by: String::new(),
            cos_entry: ExtEntry::default(),
            caller_name: call.caller_name.clone(),
            members: Vec::new(),
            legs_from: 0,
            diverted: None,
        };
        let mut run = Box::new(run);
        run.cos_entry = self.menu_cos_entry(id);
        let parsed = match text.parse::<Destination>() {
            Ok(d) => Ok(Target::Dest(d)),
            Err(_) => Target::from_str(text),
        };
        match parsed {
            Ok(t) => self.goto_target(id, run, t, VmReason::Unavailable, now),
            Err(e) => {
                info!(call = id, destination = %text, error = %e, "menu chose an invalid destination");
                self.unavailable(id, now);
            }
        }
    }

    /// What an outside number chosen in the caller's menu is dialled as: the caller's number
    /// (its limits: an extension's own, else the defaults) with the menu's class of service
    /// and no caller ID of its own (the route's or the tenant's main number).
    fn menu_cos_entry(&self, id: u64) -> ExtEntry {
        let Some(call) = self.b2bua.get(id) else {
            return ExtEntry::default();
        };
        let tenant = call.tenant_id;
        let menu = call.anchor.as_deref().and_then(|a| a.menu.clone());
        let cos = menu
            .and_then(|m| self.snap.apps.ivrs.get(&(tenant, m)))
            .and_then(|m| m.spec.cos.parse::<CallClass>().ok())
            .unwrap_or_default();
        let limits = self
            .snap
            .extensions
            .get(&(tenant, call.caller.clone()))
            .map(|e| e.limits)
            .unwrap_or_default();
        ExtEntry {
            number: call.caller.clone(),
            cos,
            limits,
            ..ExtEntry::default()
        }
    }

    /// Sends the caller to `t` (a choice, a forward, a plan's no-answer destination).
    fn goto_target(
        &mut self,
        id: u64,
        mut run: Box<GotoRun>,
        t: Target,
        reason: VmReason,
        now: Now,
    ) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        if run.hops > MAX_HOPS {
            info!(call = id, "too many forwards from a menu choice");
            return self.unavailable(id, now);
        }
        if run.hops > 0 {
            info!(call = id, by = %run.by, to = %t, ?reason, "call forwarded (menu choice)");
        }
        let dest = match t {
            Target::Dest(d) => d,
            Target::Number(n) => match self.snap.extensions.get(&(tenant, n.clone())) {
                Some(_) => Destination::Ext(n),
                None => match self.snap.apps.numbers.get(&(tenant, n.clone())) {
                    Some(d) => d.clone(),
                    None => {
                        let cos = run.cos_entry.clone();
                        let diverted = run.diverted.take().map(|(e, r)| (e, r, run.hops));
                        if !self.goto_outside(id, &n, &cos, diverted, now) {
                            self.unavailable(id, now);
                        }
                        return;
                    }
                },
            },
        };
        match dest {
            Destination::Ext(n) => self.goto_ext(id, run, &n, now),
            Destination::Group(g) => self.goto_group(id, run, &g, now),
            Destination::Vm(n) => self.goto_voicemail(id, n, reason, now),
            Destination::Hangup if run.hops > 0 => self.unavailable(id, now),
            Destination::Timecond(_) => {
                // Decided now; what it leads to is followed with the same plan state.
                let decided =
                    crate::timecond::route_to(tenant, dest, String::new(), now.wall, &self.snap);
                match decided {
                    Decision::Route { destination, .. } => {
                        run.hops += 1;
                        self.goto_target(id, run, Target::Dest(destination), reason, now)
                    }
                    Decision::Reject { status: 603, .. } => {
                        self.anchored_hangup(id, "application hung up", now)
                    }
                    _ => self.unavailable(id, now),
                }
            }
            other => self.app_goto(id, &other.to_string(), now),
        }
    }

    /// An extension: its forwarding, DND and follow-me as for a dialled call; without any it
    /// rings plainly ([`Engine::app_goto`]).
    fn goto_ext(&mut self, id: u64, mut run: Box<GotoRun>, number: &str, now: Now) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        let Some(e) = self
            .snap
            .extensions
            .get(&(tenant, number.to_string()))
            .cloned()
        else {
            return self.unavailable(id, now);
        };
        let fwd = self.snap.apps.hunt.forwarding.get(&e.id).cloned();
        let looped = run.visited.contains(&e.number);
        let fwd = match fwd {
            Some(f) if !f.is_off() && !looped && e.enabled => f,
            _ if run.hops == 0 => {
                self.restore_caller_name(id, &run);
                return self.app_goto(id, &format!("ext:{number}"), now);
            }
            _ => {
                // Reached by a forward or a group's no-answer destination: ring it plainly
                // for the system's no-answer time.
                run.plan = plain_plan(&e.number, self.snap.settings.no_answer);
                run.by = e.number.clone();
                run.step = 0;
                run.overall_end = None;
                return self.goto_step(id, run, now);
            }
        };
        run.visited.push(e.number.clone());
        let state = match self.member_state(tenant, &e.number, &Default::default(), now) {
            MemberState::Dnd => MemberState::Available,
            s => s,
        };
        let decided = hunt::ext_route(&e.number, &fwd, state, self.snap.settings.no_answer);
        debug!(call = id, ext = %e.number, ?decided, "forwarding (menu choice)");
        run.by = e.number.clone();
        run.cos_entry = e.clone();
        match decided {
            ExtRoute::Reject(status) => {
                if fwd.dnd {
                    self.goto_event(id, "dnd", &e.number, &e.number, status, now);
                }
                info!(call = id, ext = %e.number, status, "extension refuses the call");
                self.unavailable(id, now)
            }
            ExtRoute::Go(t, reason) => {
                let why = if fwd.dnd {
                    "dnd"
                } else if !fwd.always.is_empty() {
                    "forward_always"
                } else {
                    "forward_unreachable"
                };
                self.goto_event(id, why, &e.number, &t.to_string(), 302, now);
                run.forwarded(why);
                self.goto_target(id, run, t, reason, now)
            }
            ExtRoute::Ring(plan) => {
                run.plan = plan;
                run.step = 0;
                run.overall_end = None;
                self.goto_step(id, run, now)
            }
        }
    }

    /// A ring group: its plan, built as for a direct call.
    fn goto_group(&mut self, id: u64, mut run: Box<GotoRun>, name: &str, now: Now) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        let Some(g) = self
            .snap
            .apps
            .hunt
            .groups
            .get(&(tenant, name.to_string()))
            .cloned()
        else {
            info!(call = id, group = %name, "no such ring group");
            return self.unavailable(id, now);
        };
        // The call's callee is the group from now on (not a member tried before, which
        // would count as busy).
        if let Some(c) = self.b2bua.get_mut(id) {
            c.callee = if g.number.is_empty() {
                format!("group:{name}")
            } else {
                g.number.clone()
            };
        }
        let busy = self.busy_numbers(tenant);
        let plan = hunt::group_plan(name, &g, |n| self.member_state(tenant, n, &busy, now));
        info!(call = id, group = name, strategy = g.spec.strategy.as_str(), steps = plan.steps.len(), skipped = ?plan.skipped, "ring group (menu choice)");
        for (n, s) in &plan.skipped {
            let status = if *s == MemberState::Busy { 486 } else { 480 };
            self.goto_event(id, "skipped", name, n, status, now);
        }
        run.overall_end = plan.overall.map(|d| now.mono + d);
        run.plan = plan;
        run.step = 0;
        run.by = name.to_string();
        run.cos_entry.cos = g.spec.cos;
        self.goto_step(id, run, now)
    }

    /// Rings the plan's current step (or the next that has something to ring); when none is
    /// left, the plan's no-answer destination.
    fn goto_step(&mut self, id: u64, mut run: Box<GotoRun>, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let source = call.legs[A_LEG].target.destination;
        while let Some(step) = run.plan.steps.get(run.step).cloned() {
            if run.overall_end.is_some_and(|end| now.mono >= end) {
                break;
            }
            if let Some(g) = run.plan.group.clone() {
                self.remember_member(tenant, &g, &step.numbers);
            }
            let mut bindings: Vec<Binding> = Vec::new();
            let mut members = Vec::new();
            let mut outside = None;
            for n in &step.numbers {
                match self.snap.extensions.get(&(tenant, n.clone())) {
                    Some(e) if e.enabled => {
                        for b in self
                            .usrloc
                            .get(e.id)
                            .iter()
                            .filter(|b| b.expires_at > now.wall && b.received != source)
                        {
                            members.push((b.target().destination, n.clone()));
                            bindings.push(b.clone());
                        }
                    }
                    Some(_) => {}
                    None if step.numbers.len() == 1 => outside = Some(n.clone()),
                    None => debug!(number = %n, "outside numbers ring in steps of their own"),
                }
            }
            let ring_end = now.mono + step.ring;
            let ring_end = run.overall_end.map_or(ring_end, |e| e.min(ring_end));
            let by = run.by.clone();
            if !bindings.is_empty() {
                let mut rung: Vec<String> = members.iter().map(|(_, n)| n.clone()).collect();
                rung.dedup();
                for n in &rung {
                    self.goto_event(id, "hunt", &by, n, 180, now);
                }
                run.members = members;
                return self.goto_ring(id, run, bindings, ring_end, now);
            }
            if let Some(number) = outside {
                let cos = run.cos_entry.clone();
                // Follow-me through a trunk names its extension; a group's outside member none.
                let diverted = (run.plan.group.is_none() && run.by_extension())
                    .then(|| (run.by.clone(), "follow-me", run.hops));
                self.goto_event(id, "hunt", &by, &number, 180, now);
                run.members.clear();
                run.legs_from = self.b2bua.get(id).map_or(0, |c| c.legs.len());
                // Stored first: a trunk that fails at once comes back through `unavailable`.
                self.restore_caller_name(id, &run);
                let step_at = run.step;
                if let Some(c) = self.b2bua.get_mut(id) {
                    c.ivr_goto = Some(run);
                }
                if self.goto_outside(id, &number, &cos, diverted, now) {
                    if let Some(c) = self.b2bua.get_mut(id)
                        && c.ivr_goto.as_ref().is_some_and(|r| r.step == step_at)
                    {
                        c.no_answer_at = ring_end;
                    }
                    return;
                }
                let Some(r) = self.b2bua.get_mut(id).and_then(|c| c.ivr_goto.take()) else {
                    return;
                };
                run = r;
            }
            run.step += 1;
        }
        match run.plan.then.take() {
            Some((t, reason)) => {
                let why = if run.plan.group.is_some() {
                    "group_no_answer"
                } else {
                    "forward_no_answer"
                };
                let by = run.by.clone();
                self.goto_event(id, why, &by, &t.to_string(), 302, now);
                run.forwarded(why);
                self.restore_caller_name(id, &run);
                self.goto_target(id, run, t, reason, now)
            }
            None => {
                self.restore_caller_name(id, &run);
                self.unavailable(id, now)
            }
        }
    }

    /// Rings `bindings` for one step of `run` until `ring_end`.
    fn goto_ring(
        &mut self,
        id: u64,
        run: Box<GotoRun>,
        bindings: Vec<Binding>,
        ring_end: Instant,
        now: Now,
    ) {
        let Some(c) = self.b2bua.get_mut(id) else {
            return;
        };
        c.caller_name = if run.plan.cid_prefix.is_empty() {
            run.caller_name.clone()
        } else {
            let who = if run.caller_name.is_empty() {
                c.caller.clone()
            } else {
                run.caller_name.clone()
            };
            format!("{}: {who}", run.plan.cid_prefix)
        };
        let mut run = run;
        run.legs_from = c.legs.len();
        c.ivr_goto = Some(run);
        self.connect(id, bindings, now);
        if let Some(c) = self.b2bua.get_mut(id) {
            c.no_answer_at = ring_end;
        }
    }

    /// Puts the caller's own name back (a group's prefix is for its members only).
    fn restore_caller_name(&mut self, id: u64, run: &GotoRun) {
        if let Some(c) = self.b2bua.get_mut(id) {
            c.caller_name = run.caller_name.clone();
        }
    }

    /// Calls outside number `number` (dialled digits, through the outbound routes) for the
    /// anchored caller, with `cos`'s class of service and limits. False (nothing started)
    /// when the dialplan, the limits or the trunks refuse it.
    fn goto_outside(
        &mut self,
        id: u64,
        number: &str,
        cos: &ExtEntry,
        diverted: Option<(String, &'static str, u8)>,
        now: Now,
    ) -> bool {
        let Some(c) = self.b2bua.get(id) else {
            return false;
        };
        if c.outside.is_some() {
            return false;
        }
        let (tenant, caller) = (c.tenant_id, c.caller.clone());
        let call = match dialplan::outbound(tenant, number, Some(cos), &self.snap) {
            Decision::Outside { call, .. } => call,
            other => {
                info!(call = id, %number, decision = ?other, "outside number refused (menu choice)");
                return false;
            }
        };
        match self.outside_plan(tenant, call, cos, &"IVR", now) {
            Ok((plan, local)) => {
                // The caller's number stays the record's caller (the limits count for it).
                self.anchored_outside_attach(id, plan, &caller);
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.diverted = diverted;
                }
                self.anchored_outside_ring(id, local.ip(), now);
                true
            }
            Err((status, reason)) => {
                info!(call = id, %number, status, %reason, "outside call refused (menu choice)");
                false
            }
        }
    }

    /// The step ringing now failed or rang out (hook at the top of [`Engine::unavailable`]):
    /// true when the plan goes on (the next step, a forward, the no-answer destination).
    pub(crate) fn goto_step_failed(&mut self, id: u64, now: Now) -> bool {
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let Some(mut run) = call.ivr_goto.take() else {
            return false;
        };
        // Nothing rings now (a late 487 of a cancelled fork must not count again); the next
        // step's `connect` sets it anew.
        if let Some(a) = call.anchor.as_deref_mut() {
            a.connecting = false;
        }
        let statuses: Vec<u16> = call
            .legs
            .iter()
            .skip(run.legs_from)
            .filter(|l| l.side == Side::B)
            .filter_map(|l| l.final_status)
            .collect();
        let busy = statuses.iter().any(|s| matches!(s, 486 | 600 | 603));
        let status = if statuses.is_empty() {
            480
        } else {
            let (s, _) = crate::b2bua::fork_failure(&statuses, false);
            if matches!(s, 408 | 487) { 480 } else { s }
        };
        let kind = if status == 480 { "no_answer" } else { "failed" };
        let mut tried: Vec<String> = run.members.iter().map(|(_, n)| n.clone()).collect();
        tried.dedup();
        if tried.is_empty()
            && let Some(s) = run.plan.steps.get(run.step)
        {
            tried = s.numbers.clone();
        }
        let by = run.by.clone();
        for n in &tried {
            self.goto_event(id, kind, &by, n, status, now);
        }
        run.members.clear();
        if busy
            && run.step == 0
            && let Some((t, reason)) = run.plan.on_busy.take()
        {
            self.goto_event(id, "forward_busy", &by, &t.to_string(), 302, now);
            run.forwarded("forward_busy");
            self.restore_caller_name(id, &run);
            self.goto_target(id, run, t, reason, now);
            return true;
        }
        if run.overall_end.is_some_and(|end| now.mono >= end) {
            run.step = run.plan.steps.len();
        } else {
            run.step += 1;
        }
        self.goto_step(id, run, now);
        true
    }

    /// Leg `i` of anchored call `id` answered (hook in [`Engine::anchored_answered`]): the
    /// record names the member who answered; the plan is over.
    pub(crate) fn goto_answered(&mut self, id: u64, i: usize, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(run) = call.ivr_goto.take() else {
            return;
        };
        let at = call.legs.get(i).map(|l| l.target.destination);
        let who = run
            .members
            .iter()
            .find(|(a, _)| Some(*a) == at)
            .map(|(_, n)| n.clone());
        if let Some(n) = &who {
            call.callee = n.clone();
        }
        let to = who.unwrap_or_else(|| call.callee.clone());
        let by = run.by.clone();
        self.goto_event(id, "answered", &by, &to, 200, now);
    }

    /// A step or forward of the plan, for the call's events (stored with its record).
    fn goto_event(
        &mut self,
        id: u64,
        kind: &'static str,
        by: &str,
        to: &str,
        status: u16,
        now: Now,
    ) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let party = call.caller.clone();
        call.xfer
            .get_or_insert_with(Box::default)
            .events
            .push(TransferEvent {
                at: now.wall,
                kind,
                by: by.to_string(),
                party,
                to: to.to_string(),
                status,
            });
    }

    /// Destination kinds [`Engine::app_goto`] hands here: the main voicemail number, park,
    /// a park slot (taking the call parked there), a page group, a ring group.
    pub(crate) fn goto_more(&mut self, id: u64, dest: Destination, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let (tenant, caller) = (call.tenant_id, call.caller.clone());
        match dest {
            Destination::Group(_) => {
                // A group reached from another application (a park lot's fallback): the
                // same plan as from a menu.
                self.ivr_goto(id, &dest.to_string(), now)
            }
            Destination::VmMain => {
                let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
                    return;
                };
                let lang = a.lang().parse().unwrap_or(apps::prompt::Lang::En);
                let Some(s) = crate::vm_menu::VmSession::new(&Destination::VmMain, None, lang)
                else {
                    return self.unavailable(id, now);
                };
                a.set_app(App::VmMenu(Box::new(s)));
                self.vm_menu_start(id, now)
            }
            Destination::Park => {
                // The caller parks itself: a caller that is an extension is rung back at the
                // lot's timeout; anyone else goes to the lot's fallback.
                if !self.park_has_free_slot(tenant) {
                    info!(call = id, "park lot full (menu choice)");
                    return self.unavailable(id, now);
                }
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.set_app(App::Park);
                    a.menu = None;
                }
                let parker = if self.snap.extensions.contains_key(&(tenant, caller.clone())) {
                    caller
                } else {
                    String::new()
                };
                self.park_transferred(id, &parker, now)
            }
            Destination::ParkSlot(slot) => {
                if !self.park_take(id, &slot, now) {
                    self.say_then_menu(id, "park-slot-empty", now);
                }
            }
            Destination::Page(name) => {
                if !self.page_from_anchored(id, &name, now) {
                    self.unavailable(id, now);
                }
            }
            other => {
                info!(call = id, destination = %other, "destination not reachable from an application");
                self.unavailable(id, now)
            }
        }
    }

    /// Plays `prompt`, then back to the menu (or hang up when the call came from none).
    fn say_then_menu(&mut self, id: u64, prompt: &str, now: Now) {
        let _ = now;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        anchor.connecting = false;
        anchor.after_play = Some(if anchor.menu.is_some() {
            super::AfterPlay::Menu
        } else {
            super::AfterPlay::Hangup
        });
        let lang = anchor.lang.clone();
        let items = vec![PlayItem::Prompt {
            id: prompt.into(),
            tenant,
            lang,
        }];
        self.play(id, items, false, false);
    }
}

/// One step ringing `number` for `ring`.
fn plain_plan(number: &str, ring: std::time::Duration) -> Plan {
    Plan {
        steps: vec![Step {
            numbers: vec![number.to_string()],
            ring,
        }],
        overall: None,
        on_busy: None,
        then: None,
        cid_prefix: String::new(),
        group: None,
        skipped: Vec::new(),
    }
}
