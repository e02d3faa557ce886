//! Blind transfer (REFER, or the administrator's transfer) to a ring group (`group:NAME`).
//!
//! The group's number is routed as the transferor (its class of service applies), then the
//! group's plan is built exactly as for a caller dialling it ([`crate::hunt::group_plan`]:
//! strategy, per-member ring times, members skipped when busy, on DND or unregistered, the
//! round-robin memory, the caller-ID name prefix, the overall timeout) and run here one step
//! at a time on the relayed call: each step's members are rung with the transferee's media on
//! the relay socket that faced the transferor, as for a transfer to one extension
//! ([`crate::transfer`]). A step whose forks all fail, or that rings out, gives way to the
//! next; the first member to answer takes the transferor's place. The transferee hears what
//! any transferee hears while its target rings (`transfer.transferee_hears`: music on hold by
//! default — it is in an answered call, so ringback would suggest a new call).
//!
//! When the steps are used up the group's no-answer destination is followed: an extension or
//! another group is rung the same way (at most [`crate::hunt::MAX_HOPS`] hops); a voicemail
//! box, an IVR, a room or an outside number (routed as the transferor) gets the transferee
//! moved onto a media endpoint ([`crate::xfer_app`]); `hangup` (or nothing to go to) fails the
//! transfer like an unanswered extension (the transferor keeps the transferee, or is rung
//! back, per `transfer.on_failure`).
//!
//! Outside members of a group are not rung by a transfer (they would need a trunk call from a
//! media endpoint); they are skipped with a log line.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;

use tracing::info;

use crate::b2bua::LegIdx;
use crate::dialplan::{Decision, Destination};
use crate::hunt::{self, MAX_HOPS, MemberState, Plan, Target};
use crate::transfer::{Pending, TransferEvent};
use crate::usrloc::Binding;
use crate::xfer_app::AppDest;
use crate::{Engine, Now};

/// A ring group's plan being run by a transfer.
#[derive(Debug)]
pub(crate) struct GroupRun {
    /// The group's name.
    name: String,
    plan: Plan,
    /// Index of the step ringing now.
    step: usize,
    /// When the whole group stops ringing.
    overall_end: Option<Instant>,
    /// No-answer destinations followed so far.
    hops: u8,
    /// Who the contacts of the step ringing now belong to (received address → member).
    members: Vec<(SocketAddr, String)>,
}

impl GroupRun {
    /// The caller-ID name members see: the group's prefix before the transferee's name.
    pub(crate) fn caller_name(&self, number: &str, name: &str) -> String {
        if self.plan.cid_prefix.is_empty() {
            return name.to_string();
        }
        let who = if name.is_empty() { number } else { name };
        format!("{}: {who}", self.plan.cid_prefix)
    }

    /// The member whose contact at `addr` answered.
    pub(crate) fn member_at(&self, addr: SocketAddr) -> Option<String> {
        self.members
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, n)| n.clone())
    }
}

/// A transfer event of a ring group's run (`hunt`: a member tried, `no_answer`, `skipped`).
fn event(
    kind: &'static str,
    by: &str,
    party: &str,
    to: &str,
    status: u16,
    now: Now,
) -> TransferEvent {
    TransferEvent {
        at: now.wall,
        kind,
        by: by.to_string(),
        party: party.to_string(),
        to: to.to_string(),
        status,
    }
}

impl Engine {
    /// Whether tenant `tenant` has ring group `name` (a number may still name one removed).
    pub(crate) fn has_group(&self, tenant: i64, name: &str) -> bool {
        self.snap
            .apps
            .hunt
            .groups
            .contains_key(&(tenant, name.to_string()))
    }

    /// When `number` (dialled by `by`) leads to a ring group: its name, or why the transfer is
    /// refused (the group is gone). `None` for anything else.
    pub(crate) fn xfer_group_target(
        &self,
        tenant: i64,
        by: &str,
        number: &str,
        now: Now,
    ) -> Option<Result<String, (u16, String)>> {
        match self.transfer_decision(tenant, by, number, now) {
            Decision::Route {
                destination: Destination::Group(name),
                ..
            } => Some(if self.has_group(tenant, &name) {
                Ok(name)
            } else {
                Err((404, format!("No ring group {name}")))
            }),
            _ => None,
        }
    }

    /// The plan of group `name` for a transfer in call `id` (members busy, on DND or
    /// unregistered skipped, as for a call).
    fn xfer_group_plan(&self, tenant: i64, name: &str, now: Now) -> Option<Plan> {
        let g = self
            .snap
            .apps
            .hunt
            .groups
            .get(&(tenant, name.to_string()))?;
        let busy = self.busy_numbers(tenant);
        let plan = hunt::group_plan(name, g, |n| self.member_state(tenant, n, &busy, now));
        info!(group = name, strategy = g.spec.strategy.as_str(), steps = plan.steps.len(), skipped = ?plan.skipped, "ring group (transfer)");
        Some(plan)
    }

    /// Starts a blind transfer of `y` (away from `x`, extension `by`) to ring group `name`,
    /// dialled as `number`.
    pub(crate) fn begin_group_transfer(
        &mut self,
        id: u64,
        (x, y, by): (LegIdx, LegIdx, String),
        refer_seq: Option<u32>,
        number: &str,
        name: &str,
        now: Now,
    ) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        let Some(plan) = self.xfer_group_plan(tenant, name, now) else {
            return;
        };
        let party = self
            .b2bua
            .get(id)
            .map(|c| crate::transfer::leg_number(c, y, &self.snap).0)
            .unwrap_or_default();
        let skipped: Vec<TransferEvent> = plan
            .skipped
            .iter()
            .map(|(n, s)| event("skipped", name, &party, n, skip_status(*s), now))
            .collect();
        let run = GroupRun {
            name: name.to_string(),
            overall_end: plan.overall.map(|d| now.mono + d),
            plan,
            step: 0,
            hops: 0,
            members: Vec::new(),
        };
        let p = Pending {
            transferor: x,
            transferor_ext: by,
            refer_seq,
            transferee: y,
            target: number.to_string(),
            forks: Vec::new(),
            deadline: now.mono,
            timed_out: false,
            callback: false,
            transferor_gone: false,
            sent_180: false,
            group: Some(Box::new(run)),
        };
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let xs = call.xfer.get_or_insert_with(Box::default);
        xs.events.extend(skipped);
        xs.pending = Some(p);
        self.start_transfer_music(id, y);
        self.group_ring_step(id, now);
    }

    /// Rings the current step of the pending group transfer of call `id`, or the next step
    /// that has a phone to ring; when none is left, the group's no-answer destination.
    fn group_ring_step(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        // The transferee's own phone is never rung.
        let Some(mut p) = call.xfer.as_deref_mut().and_then(|x| x.pending.take()) else {
            return;
        };
        let transferee_at = call.legs[p.transferee].target.destination;
        let party = crate::transfer::leg_number(call, p.transferee, &self.snap).0;
        let Some(mut run) = p.group.take() else {
            return self.restore_pending(id, p);
        };
        let mut events = Vec::new();
        while let Some(step) = run.plan.steps.get(run.step).cloned() {
            if run.overall_end.is_some_and(|end| now.mono >= end) {
                break;
            }
            self.remember_member(tenant, &run.name, &step.numbers);
            let mut bindings: Vec<Binding> = Vec::new();
            let mut members = Vec::new();
            for n in &step.numbers {
                match self.snap.extensions.get(&(tenant, n.clone())) {
                    Some(e) if e.enabled => {
                        for b in self
                            .usrloc
                            .get(e.id)
                            .iter()
                            .filter(|b| b.expires_at > now.wall && b.received != transferee_at)
                        {
                            members.push((b.target().destination, n.clone()));
                            bindings.push(b.clone());
                        }
                    }
                    Some(_) => {}
                    None => {
                        info!(call = id, group = %run.name, member = %n, "outside member not rung by a transfer");
                        events.push(event("skipped", &run.name, &party, n, 501, now));
                    }
                }
            }
            if bindings.is_empty() {
                run.step += 1;
                continue;
            }
            for n in &step.numbers {
                if members.iter().any(|(_, m)| m == n) {
                    events.push(event("hunt", &run.name, &party, n, 180, now));
                }
            }
            let end = now.mono + step.ring;
            p.deadline = run.overall_end.map_or(end, |o| o.min(end));
            p.timed_out = false;
            p.forks.clear();
            run.members = members;
            p.group = Some(run);
            self.push_events(id, events);
            return self.ring_target(id, p, bindings, now);
        }
        p.group = Some(run);
        self.push_events(id, events);
        self.group_exhausted(id, p, now);
    }

    fn push_events(&mut self, id: u64, events: Vec<TransferEvent>) {
        if let Some(x) = self.b2bua.get_mut(id).and_then(|c| c.xfer.as_deref_mut()) {
            x.events.extend(events);
        }
    }

    fn restore_pending(&mut self, id: u64, p: Pending) {
        if let Some(c) = self.b2bua.get_mut(id) {
            c.xfer.get_or_insert_with(Box::default).pending = Some(p);
        }
    }

    /// Every fork of the step ringing now failed (`statuses`) or rang out: the next step.
    pub(crate) fn group_step_failed(&mut self, id: u64, statuses: &[u16], now: Now) {
        let party = self.pending_party(id);
        let Some(p) = self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.xfer.as_deref_mut())
            .and_then(|x| x.pending.as_mut())
        else {
            return;
        };
        let timed_out = p.timed_out;
        let Some(run) = p.group.as_deref_mut() else {
            return;
        };
        let status = if timed_out {
            480
        } else {
            crate::b2bua::fork_failure(statuses, false).0
        };
        let mut tried: Vec<String> = run.members.iter().map(|(_, n)| n.clone()).collect();
        tried.dedup();
        let kind = if status == 480 { "no_answer" } else { "failed" };
        let events: Vec<TransferEvent> = tried
            .iter()
            .map(|n| event(kind, &run.name, &party, n, status, now))
            .collect();
        run.members.clear();
        run.step += 1;
        self.push_events(id, events);
        self.group_ring_step(id, now);
    }

    /// The group's steps are used up: its no-answer destination.
    fn group_exhausted(&mut self, id: u64, mut p: Pending, now: Now) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        let Some(mut run) = p.group.take() else {
            return;
        };
        let then = run.plan.then.take().map(|(t, _)| t);
        run.hops += 1;
        info!(call = id, group = %run.name, then = ?then.as_ref().map(|t| t.to_string()), "nobody in the ring group answered the transfer");
        let ext_of = |n: &str| {
            self.snap
                .extensions
                .get(&(tenant, n.to_string()))
                .map(|e| e.number.clone())
        };
        let dest = match then {
            _ if run.hops > MAX_HOPS => None,
            None | Some(Target::Dest(Destination::Hangup)) => None,
            Some(Target::Dest(d)) => Some(d),
            Some(Target::Number(n)) => Some(match ext_of(&n) {
                Some(e) => Destination::Ext(e),
                None => match self.snap.apps.numbers.get(&(tenant, n.clone())) {
                    Some(d) => d.clone(),
                    None => Destination::from_str(&n).unwrap_or(Destination::Hangup),
                },
            }),
        };
        match dest {
            Some(Destination::Ext(n)) if ext_of(&n).is_some() => {
                // Ring the extension plainly, for the system's no-answer time.
                run.plan = Plan {
                    steps: vec![hunt::Step {
                        numbers: vec![n],
                        ring: self.snap.settings.no_answer,
                    }],
                    overall: None,
                    on_busy: None,
                    then: None,
                    cid_prefix: run.plan.cid_prefix.clone(),
                    group: None,
                    skipped: Vec::new(),
                };
                run.step = 0;
                run.overall_end = None;
                p.group = Some(run);
                self.restore_pending(id, p);
                self.group_ring_step(id, now)
            }
            Some(Destination::Group(g)) => match self.xfer_group_plan(tenant, &g, now) {
                Some(plan) => {
                    run.overall_end = plan.overall.map(|d| now.mono + d);
                    run.plan = plan;
                    run.name = g;
                    run.step = 0;
                    p.group = Some(run);
                    self.restore_pending(id, p);
                    self.group_ring_step(id, now)
                }
                None => {
                    self.restore_pending(id, p);
                    self.transfer_failed(id, 404, now)
                }
            },
            Some(d @ (Destination::Vm(_) | Destination::Ivr(_) | Destination::Conf(_))) => {
                let to = d.to_string();
                self.group_to_app(id, p, &to, AppDest::Goto(to.clone()), now)
            }
            Some(Destination::Hangup) | None => {
                self.restore_pending(id, p);
                self.transfer_failed(id, 480, now)
            }
            Some(other) => {
                // An outside number (or another kind): routed as the transferor.
                let number = other.to_string();
                let by = p.transferor_ext.clone();
                match self.xfer_app_target(tenant, &by, &number, now) {
                    Some(dest) => self.group_to_app(id, p, &number, dest, now),
                    None => {
                        self.restore_pending(id, p);
                        self.transfer_failed(id, 404, now)
                    }
                }
            }
        }
    }

    /// The group's no-answer destination answers on a media endpoint of ours: the transferee
    /// is moved there ([`Engine::blind_to_app`]); the transferor (if still in the call) gets
    /// the outcome and is released.
    fn group_to_app(&mut self, id: u64, p: Pending, number: &str, dest: AppDest, now: Now) {
        // Music for the transfer stops (the transferee is re-INVITEd onto the new endpoint).
        if let Some(c) = self.b2bua.get_mut(id) {
            let music = c.xfer.as_deref().is_some_and(|x| x.music);
            if music {
                if let Some(x) = c.xfer.as_deref_mut() {
                    x.music = false;
                }
                if let Some(m) = c.moh.take() {
                    self.b2bua.by_endpoint.remove(&m.endpoint);
                    self.media(crate::media::MediaCommand::CloseEndpoint {
                        endpoint: m.endpoint,
                    });
                }
            }
            if p.transferor_gone
                && let Some(c) = self.b2bua.get_mut(id)
            {
                // Its dialog is over: nothing more goes to it.
                c.legs[p.transferor].dialog = None;
            }
        }
        let seq = if p.transferor_gone { None } else { p.refer_seq };
        let args = (
            id,
            p.transferor,
            p.transferee,
            p.transferor_ext.clone(),
            seq,
        );
        if let Err((status, reason)) = self.blind_to_app(None, args, number, dest, now) {
            info!(call = id, to = %number, status, reason, "ring group's no-answer destination refused");
            self.restore_pending(id, Pending { group: None, ..p });
            self.transfer_failed(id, status, now);
        }
    }
}

/// The status a skipped member's event carries: 486 busy, 480 unregistered or DND.
fn skip_status(s: MemberState) -> u16 {
    match s {
        MemberState::Busy => 486,
        _ => 480,
    }
}
