//! `hunt`: ring groups, per-extension forwarding, follow-me and do-not-disturb.
//!
//! The logic is a sans-IO *plan*: "ring these numbers for this long, then those, then go
//! there". [`group_plan`] builds one for a ring group (simultaneous, sequential, round-robin
//! with memory, first available), [`ext_route`] for an extension with forwarding settings
//! (always, busy, no answer, unreachable, DND, follow-me). The call engine executes a plan one
//! step at a time ([`Engine::hunt_start`]): each step is an ordinary forked call (extension
//! contacts) or an outside call (through the outbound routes, with the class of service of the
//! group or of the forwarding extension: forwarding is no fraud path). When a step fails or
//! rings out, its forks are cancelled and the next step starts on the same caller transaction;
//! when the plan is used up, the call goes to the plan's fallback destination (any
//! destination: extension, voicemail with the reason busy/unavailable, IVR, group, hang-up).
//! The caller's call keeps ONE call record: the one written when the call finally ends, with
//! the answering member as callee and the dialled number kept in the route.
//!
//! Loop protection: an extension whose forwarding was applied once in a call is rung plainly
//! when a forward leads back to it (A→B→A rings A), and a call follows at most [`MAX_HOPS`]
//! forwards or group fallbacks.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::b2bua::{A_LEG, Entry, Origin, Targets};
use crate::config::ExtEntry;
use crate::db::{DbOp, Direction, Disposition};
use crate::dialplan::{self, Decision, Destination};
use crate::outside::CallClass;
use crate::usrloc::Binding;
use crate::{Engine, Now};

/// Most forwards and group fallbacks one call follows.
pub const MAX_HOPS: u8 = 5;
/// Longest ring time of one step, and longest overall timeout (seconds).
pub const MAX_RING_S: u32 = 600;
/// Most members of a group, most follow-me numbers.
pub const MAX_MEMBERS: usize = 64;

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Every member at once.
    #[default]
    Simultaneous,
    /// One member after the other, in order (hunt), each for its ring time.
    Sequential,
    /// Like sequential, but each call starts after the member tried last time (remembered in
    /// the database across restarts).
    RoundRobin,
    /// Only the first member that is not busy, on DND or unregistered.
    FirstAvailable,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: &'static [Strategy] = &[
        Strategy::Simultaneous,
        Strategy::Sequential,
        Strategy::RoundRobin,
        Strategy::FirstAvailable,
    ];

    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Simultaneous => "simultaneous",
            Strategy::Sequential => "sequential",
            Strategy::RoundRobin => "round_robin",
            Strategy::FirstAvailable => "first_available",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let w = s.trim().to_ascii_lowercase().replace('-', "_");
        Strategy::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == w)
            .ok_or_else(|| {
                format!("unknown strategy {s:?}: use simultaneous, sequential, round_robin or first_available")
            })
    }
}

/// One member of a ring group: a number the dialplan resolves (an extension of the tenant, or
/// an outside number through the outbound routes). Written as `"1002"` or
/// `{"number": "1002", "ring_s": 20}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MemberIn")]
pub struct Member {
    /// Extension or outside number.
    pub number: String,
    /// Ring time of this member in sequential strategies (0: the group's).
    #[serde(default)]
    pub ring_s: u32,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MemberIn {
    Number(String),
    Full {
        number: String,
        #[serde(default)]
        ring_s: u32,
    },
}

impl From<MemberIn> for Member {
    fn from(m: MemberIn) -> Member {
        match m {
            MemberIn::Number(number) => Member { number, ring_s: 0 },
            MemberIn::Full { number, ring_s } => Member { number, ring_s },
        }
    }
}

/// A ring group as call control needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Strategy.
    #[serde(default)]
    pub strategy: Strategy,
    /// Members in order.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Default ring time of one member (sequential strategies), seconds.
    #[serde(default = "default_ring")]
    pub ring_s: u32,
    /// How long the group rings at most, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u32,
    /// Where an unanswered call goes (`hangup` by default).
    #[serde(default = "default_no_answer")]
    pub no_answer: String,
    /// Caller-ID name prefix shown to members ("Sales" makes "Sales: Tanaka").
    #[serde(default)]
    pub cid_prefix: String,
    /// Class of service for outside members.
    #[serde(default)]
    pub cos: CallClass,
}

impl Default for GroupSpec {
    fn default() -> GroupSpec {
        GroupSpec {
            strategy: Strategy::default(),
            members: Vec::new(),
            ring_s: default_ring(),
            timeout_s: default_timeout(),
            no_answer: default_no_answer(),
            cid_prefix: String::new(),
            cos: CallClass::default(),
        }
    }
}

fn default_ring() -> u32 {
    15
}
fn default_timeout() -> u32 {
    60
}
fn default_no_answer() -> String {
    "hangup".into()
}

/// Why a setting was refused: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// API field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field,
        reason: reason.into(),
    }
}

/// Checks a number a member or forward names: digits, `+`, `*`, `#`, 1-32 characters.
pub fn validate_number(field: &'static str, n: &str) -> Result<(), SpecError> {
    if n.is_empty() || n.len() > 32 {
        return Err(err(field, format!("{n:?}: 1-32 characters")));
    }
    if !n.chars().all(|c| c.is_ascii_digit() || "+*#".contains(c)) {
        return Err(err(field, format!("{n:?}: digits, + * # only")));
    }
    Ok(())
}

fn validate_ring(field: &'static str, s: u32, zero_ok: bool) -> Result<(), SpecError> {
    if (s == 0 && !zero_ok) || s > MAX_RING_S {
        let low = if zero_ok { 0 } else { 1 };
        return Err(err(field, format!("{s}: {low}-{MAX_RING_S} seconds")));
    }
    Ok(())
}

impl GroupSpec {
    /// Checks the settings (not whether the names exist: the store does that).
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.members.is_empty() {
            return Err(err("members", "a group needs at least one member"));
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(err("members", format!("at most {MAX_MEMBERS}")));
        }
        let mut seen = HashSet::new();
        for m in &self.members {
            validate_number("members", &m.number)?;
            validate_ring("members", m.ring_s, true)?;
            if !seen.insert(m.number.as_str()) {
                return Err(err("members", format!("{} is listed twice", m.number)));
            }
        }
        validate_ring("ring_s", self.ring_s, false)?;
        validate_ring("timeout_s", self.timeout_s, false)?;
        Target::from_str(&self.no_answer).map_err(|e| err("no_answer", e))?;
        if self.cid_prefix.chars().count() > 32 || self.cid_prefix.chars().any(char::is_control) {
            return Err(err("cid_prefix", "at most 32 printable characters"));
        }
        Ok(())
    }
}

/// Where a forward or a fallback goes: a destination (`vm:1001`, `group:sales`, `hangup`) or
/// a number the dialplan decides (an extension, or an outside number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A destination.
    Dest(Destination),
    /// A number.
    Number(String),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.contains(':') || s == "park" || s == "hangup" {
            return s.parse().map(Target::Dest).map_err(|e| e.to_string());
        }
        validate_number("target", s).map_err(|e| e.reason)?;
        Ok(Target::Number(s.to_string()))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Dest(d) => d.fmt(f),
            Target::Number(n) => f.write_str(n),
        }
    }
}

/// How DND treats callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DndMode {
    /// 486 Busy Here.
    #[default]
    Busy,
    /// The extension's voicemail (reason busy).
    Voicemail,
}

/// Per-extension forwarding, follow-me and DND. Empty strings are "off".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Forwarding {
    /// Forward every call here.
    pub always: String,
    /// Forward here when the phone answers busy.
    pub busy: String,
    /// Forward here when the phone does not answer within `no_answer_s`.
    pub no_answer: String,
    /// Ring time before the no-answer forward or follow-me (0: the system's no-answer time).
    pub no_answer_s: u32,
    /// Forward here when no phone of the extension is registered.
    pub unreachable: String,
    /// Do not disturb.
    pub dnd: bool,
    /// What DND does.
    pub dnd_mode: DndMode,
    /// Follow-me numbers rung after the desk (extensions or outside numbers).
    pub follow_me: Vec<String>,
    /// Ring the follow-me numbers together (else one after the other).
    pub follow_me_together: bool,
    /// Ring time of each follow-me step (0: `no_answer_s`).
    pub follow_me_s: u32,
}

/// The forward kinds a feature code or the CLI sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardKind {
    /// Every call.
    Always,
    /// On busy.
    Busy,
    /// On no answer.
    NoAnswer,
    /// When not registered.
    Unreachable,
}

impl FromStr for ForwardKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "always" => Ok(ForwardKind::Always),
            "busy" => Ok(ForwardKind::Busy),
            "no_answer" | "noanswer" => Ok(ForwardKind::NoAnswer),
            "unreachable" => Ok(ForwardKind::Unreachable),
            _ => Err(format!(
                "unknown forward kind {s:?}: use always, busy, no_answer or unreachable"
            )),
        }
    }
}

impl Forwarding {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SpecError> {
        for (field, v) in [
            ("always", &self.always),
            ("busy", &self.busy),
            ("no_answer", &self.no_answer),
            ("unreachable", &self.unreachable),
        ] {
            if !v.is_empty() {
                Target::from_str(v).map_err(|e| err(field, e))?;
            }
        }
        validate_ring("no_answer_s", self.no_answer_s, true)?;
        validate_ring("follow_me_s", self.follow_me_s, true)?;
        if self.follow_me.len() > MAX_MEMBERS {
            return Err(err("follow_me", format!("at most {MAX_MEMBERS} numbers")));
        }
        for n in &self.follow_me {
            validate_number("follow_me", n)?;
        }
        Ok(())
    }

    /// The setting of one forward kind.
    pub fn get_mut(&mut self, kind: ForwardKind) -> &mut String {
        match kind {
            ForwardKind::Always => &mut self.always,
            ForwardKind::Busy => &mut self.busy,
            ForwardKind::NoAnswer => &mut self.no_answer,
            ForwardKind::Unreachable => &mut self.unreachable,
        }
    }

    /// True when nothing is set (the extension rings as usual).
    pub fn is_off(&self) -> bool {
        self.always.is_empty()
            && self.busy.is_empty()
            && self.no_answer.is_empty()
            && self.unreachable.is_empty()
            && !self.dnd
            && self.follow_me.is_empty()
    }

    /// The extensions and groups these settings name (`ext:N`/`vm:N` and bare numbers as
    /// numbers, groups as `group:NAME`), for reference checks.
    pub fn names(&self) -> Vec<String> {
        [&self.always, &self.busy, &self.no_answer, &self.unreachable]
            .into_iter()
            .filter(|v| !v.is_empty())
            .cloned()
            .chain(self.follow_me.iter().cloned())
            .collect()
    }
}

/// Ring groups and forwarding of every tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HuntConfig {
    /// Groups by (tenant, name).
    pub groups: HashMap<(i64, String), GroupEntry>,
    /// Forwarding by extension id (only extensions with something set).
    pub forwarding: HashMap<i64, Forwarding>,
}

/// A ring group with its identity and round-robin memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Database id.
    pub id: i64,
    /// Name (`group:NAME`).
    pub name: String,
    /// Number that dials it (may be empty).
    pub number: String,
    /// Settings.
    pub spec: GroupSpec,
    /// Round-robin memory: the member tried last (empty: none yet).
    pub last: String,
}

/// Why a call went to voicemail (busy or unavailable): the mailbox picks its greeting by it.
pub use crate::vm::VmReason;

/// A member's state, as the engine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Can ring.
    Available,
    /// In a call.
    Busy,
    /// Do not disturb.
    Dnd,
    /// No registered phone.
    Unregistered,
    /// Not an extension: an outside number (always tried).
    Outside,
}

/// One step of a plan: ring these numbers together for this long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Numbers (extensions or outside numbers).
    pub numbers: Vec<String>,
    /// How long.
    pub ring: Duration,
}

/// What to ring, in order, and where the call goes after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Step>,
    /// The whole plan rings at most this long (None: the sum of the steps).
    pub overall: Option<Duration>,
    /// Where a busy answer of the first step goes (forward on busy).
    pub on_busy: Option<(Target, VmReason)>,
    /// Where the call goes when the steps are used up.
    pub then: Option<(Target, VmReason)>,
    /// Caller-ID name prefix.
    pub cid_prefix: String,
    /// The group this plan rings (for round-robin memory).
    pub group: Option<String>,
    /// Members skipped and why (for logs and tests).
    pub skipped: Vec<(String, MemberState)>,
}

impl Plan {
    fn new(steps: Vec<Step>) -> Plan {
        Plan {
            steps,
            overall: None,
            on_busy: None,
            then: None,
            cid_prefix: String::new(),
            group: None,
            skipped: Vec::new(),
        }
    }
}

/// Builds a group's plan. `state` says what each member number is doing now.
pub fn group_plan(name: &str, g: &GroupEntry, state: impl Fn(&str) -> MemberState) -> Plan {
    let spec = &g.spec;
    let mut order: Vec<&Member> = spec.members.iter().collect();
    if spec.strategy == Strategy::RoundRobin
        && let Some(i) = order.iter().position(|m| m.number == g.last)
    {
        order.rotate_left(i + 1);
    }
    let mut skipped = Vec::new();
    let usable: Vec<&Member> = order
        .into_iter()
        .filter(|m| match state(&m.number) {
            MemberState::Available | MemberState::Outside => true,
            s => {
                skipped.push((m.number.clone(), s));
                false
            }
        })
        .collect();
    let ring_of = |m: &Member| {
        Duration::from_secs(u64::from(if m.ring_s == 0 {
            spec.ring_s
        } else {
            m.ring_s
        }))
    };
    let overall = Duration::from_secs(u64::from(spec.timeout_s));
    let steps = match spec.strategy {
        Strategy::Simultaneous => {
            // Extensions ring together; outside numbers (one trunk call each) follow, in turn.
            let (outside, exts): (Vec<&Member>, Vec<&Member>) = usable
                .iter()
                .partition(|m| state(&m.number) == MemberState::Outside);
            let mut steps = Vec::new();
            if !exts.is_empty() {
                steps.push(Step {
                    numbers: exts.iter().map(|m| m.number.clone()).collect(),
                    ring: if outside.is_empty() {
                        overall
                    } else {
                        Duration::from_secs(u64::from(spec.ring_s))
                    },
                });
            }
            steps.extend(outside.iter().map(|m| Step {
                numbers: vec![m.number.clone()],
                ring: ring_of(m),
            }));
            steps
        }
        Strategy::Sequential | Strategy::RoundRobin => usable
            .iter()
            .map(|m| Step {
                numbers: vec![m.number.clone()],
                ring: ring_of(m),
            })
            .collect(),
        Strategy::FirstAvailable => usable
            .first()
            .map(|m| Step {
                numbers: vec![m.number.clone()],
                ring: ring_of(m),
            })
            .into_iter()
            .collect(),
    };
    let then = Target::from_str(&spec.no_answer)
        .ok()
        .map(|t| (t, VmReason::Unavailable));
    Plan {
        steps,
        overall: Some(overall),
        on_busy: None,
        then,
        cid_prefix: spec.cid_prefix.clone(),
        group: Some(name.to_string()),
        skipped,
    }
}

/// What to do with a call to an extension that has forwarding settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtRoute {
    /// Ring this plan.
    Ring(Plan),
    /// Go there straight away.
    Go(Target, VmReason),
    /// Refuse with this status.
    Reject(u16),
}

/// Decides a call to extension `number` with settings `f`; `state` is the extension's state
/// (registered or not, DND is read from `f`), `default_ring` the system's no-answer time.
pub fn ext_route(
    number: &str,
    f: &Forwarding,
    state: MemberState,
    default_ring: Duration,
) -> ExtRoute {
    let target = |s: &str| Target::from_str(s).ok().filter(|_| !s.is_empty());
    if f.dnd {
        return match f.dnd_mode {
            DndMode::Busy => ExtRoute::Reject(486),
            DndMode::Voicemail => {
                ExtRoute::Go(Target::Dest(Destination::Vm(number.into())), VmReason::Busy)
            }
        };
    }
    if let Some(t) = target(&f.always) {
        return ExtRoute::Go(t, VmReason::Unavailable);
    }
    let desk_ring = if f.no_answer_s == 0 {
        default_ring
    } else {
        Duration::from_secs(u64::from(f.no_answer_s))
    };
    let follow_ring = if f.follow_me_s == 0 {
        desk_ring
    } else {
        Duration::from_secs(u64::from(f.follow_me_s))
    };
    let mut steps = Vec::new();
    if state == MemberState::Unregistered {
        if let Some(t) = target(&f.unreachable) {
            return ExtRoute::Go(t, VmReason::Unavailable);
        }
    } else {
        steps.push(Step {
            numbers: vec![number.to_string()],
            ring: desk_ring,
        });
    }
    let follow: Vec<String> = f
        .follow_me
        .iter()
        .filter(|n| *n != number)
        .cloned()
        .collect();
    if f.follow_me_together && !follow.is_empty() {
        steps.push(Step {
            numbers: follow,
            ring: follow_ring,
        });
    } else {
        steps.extend(follow.into_iter().map(|n| Step {
            numbers: vec![n],
            ring: follow_ring,
        }));
    }
    if steps.is_empty() {
        return ExtRoute::Reject(480);
    }
    let mut plan = Plan::new(steps);
    plan.on_busy = target(&f.busy).map(|t| (t, VmReason::Busy));
    plan.then = target(&f.no_answer).map(|t| (t, VmReason::Unavailable));
    ExtRoute::Ring(plan)
}

// ----------------------------------------------------------------------------------------
// Execution

/// A call being hunted: its plan, where it is in it, and what survives from step to step.
pub(crate) struct Hunt {
    plan: Plan,
    /// Index of the step ringing now.
    step: usize,
    /// Start of the whole call (the record's start).
    start_wall: SystemTime,
    start_mono: Instant,
    /// When the whole plan stops ringing.
    overall_end: Option<Instant>,
    /// The caller as the call entered.
    origin: OriginCopy,
    /// Forwards and fallbacks followed so far.
    hops: u8,
    /// Extensions whose forwarding was applied in this call.
    visited: Vec<String>,
    /// The extension whose class of service outside numbers use (forwarding), if any.
    cos_ext: Option<ExtEntry>,
    /// The group's class of service (group plans).
    cos: Option<CallClass>,
    /// The numbers of the step ringing now, by extension id (for who answered).
    step_exts: Vec<(i64, String)>,
    /// Why the call reached voicemail (for the greeting).
    pub(crate) vm_reason: Option<VmReason>,
    tenant: i64,
    /// Statuses of the last failed step (the caller's answer when nothing follows).
    last_fail: Vec<u16>,
    /// What happened, in order (members tried, skipped, forwards): stored beside the call's
    /// one record (table `cdr_events`, as a transfer's are).
    pub(crate) events: Vec<crate::transfer::TransferEvent>,
    /// The extension whose forward or follow-me sends the call out now, and the RFC 5806
    /// reason: a `Diversion` header on the trunk call.
    pub(crate) diverted: Option<(String, &'static str)>,
    /// Why [`Engine::hunt_go`] is called next: the forwarding extension (or group) and the
    /// event kind (`forward_busy`, `dnd`, `group_no_answer` ...).
    forwarded_by: Option<(String, &'static str)>,
}

/// What `Origin` holds, kept to start each step again.
#[derive(Clone)]
struct OriginCopy {
    tenant: i64,
    caller: String,
    caller_name: String,
    call_id: String,
    digits: String,
    route: crate::db::CallRoute,
}

impl OriginCopy {
    fn of(o: &Origin) -> OriginCopy {
        OriginCopy {
            tenant: o.tenant,
            caller: o.caller.clone(),
            caller_name: o.caller_name.clone(),
            call_id: o.call_id.clone(),
            digits: o.digits.clone(),
            route: o.route.clone(),
        }
    }
    fn origin(&self) -> Origin {
        Origin {
            tenant: self.tenant,
            caller: self.caller.clone(),
            caller_name: self.caller_name.clone(),
            call_id: self.call_id.clone(),
            digits: self.digits.clone(),
            route: self.route.clone(),
        }
    }
}

impl Hunt {
    /// Who a hunt's events name as acting: the group, or the forwarding extension, or the
    /// number the caller dialled.
    fn event_by(&self) -> String {
        if let Some(g) = &self.plan.group {
            return g.clone();
        }
        match &self.cos_ext {
            Some(e) => e.number.clone(),
            None => self.origin.digits.clone(),
        }
    }

    fn event(&mut self, kind: &'static str, by: &str, to: String, status: u16, now: Now) {
        self.events.push(crate::transfer::TransferEvent {
            at: now.wall,
            kind,
            by: by.to_string(),
            party: self.origin.caller.clone(),
            to,
            status,
        });
    }

    /// The step ringing now ended without an answer (`status`: 480 rang out, 486 busy ...).
    fn step_ended(&mut self, status: u16, now: Now) {
        let by = self.event_by();
        let kind = if status == 480 { "no_answer" } else { "failed" };
        let numbers = self
            .plan
            .steps
            .get(self.step)
            .map(|s| s.numbers.clone())
            .unwrap_or_default();
        for n in numbers {
            self.event(kind, &by, n, status, now);
        }
    }

    /// The `Diversion` header's user and reason when this call goes out through a trunk
    /// because an extension forwarded it (RFC 5806).
    pub(crate) fn diversion(&self) -> Option<(&str, &'static str)> {
        self.diverted.as_ref().map(|(n, r)| (n.as_str(), *r))
    }
}

/// RFC 5806 `reason` of a forward kind.
pub(crate) fn diversion_reason(why: &str) -> Option<&'static str> {
    Some(match why {
        "forward_always" => "unconditional",
        "forward_busy" => "user-busy",
        "forward_no_answer" => "no-answer",
        "forward_unreachable" => "unavailable",
        "dnd" => "do-not-disturb",
        _ => return None,
    })
}

impl Engine {
    /// The state of extension `number` of `tenant` for hunting.
    pub(crate) fn member_state(
        &self,
        tenant: i64,
        number: &str,
        busy: &HashSet<String>,
        now: Now,
    ) -> MemberState {
        let Some(e) = self.snap.extensions.get(&(tenant, number.to_string())) else {
            return MemberState::Outside;
        };
        if !e.enabled {
            return MemberState::Unregistered;
        }
        if self
            .snap
            .apps
            .hunt
            .forwarding
            .get(&e.id)
            .is_some_and(|f| f.dnd)
        {
            return MemberState::Dnd;
        }
        if !self
            .usrloc
            .get(e.id)
            .iter()
            .any(|b| b.expires_at > now.wall)
        {
            return MemberState::Unregistered;
        }
        if busy.contains(number) {
            return MemberState::Busy;
        }
        MemberState::Available
    }

    /// Extensions of `tenant` in an answered call now.
    pub(crate) fn busy_numbers(&self, tenant: i64) -> HashSet<String> {
        let mut s = HashSet::new();
        for c in self.b2bua.calls.values().filter(|c| c.tenant_id == tenant) {
            if c.route.direction != Direction::Inbound {
                s.insert(c.caller.clone());
            }
            if c.answer.is_some() || c.bridge.is_some() {
                s.insert(c.callee.clone());
            }
        }
        s
    }

    /// A call to ring group `name` (from the dialplan or a fallback).
    pub(crate) fn route_group(
        &mut self,
        entry: Entry,
        o: Origin,
        name: &str,
        prior: Option<Box<Hunt>>,
        now: Now,
    ) {
        let key = (o.tenant, name.to_string());
        let Some(g) = self.snap.apps.hunt.groups.get(&key).cloned() else {
            return self.hunt_refuse(entry, &o, 404, "Not Found", now);
        };
        let busy = self.busy_numbers(o.tenant);
        let plan = group_plan(name, &g, |n| self.member_state(o.tenant, n, &busy, now));
        info!(group = name, strategy = g.spec.strategy.as_str(), steps = plan.steps.len(), skipped = ?plan.skipped, "ring group");
        let skipped = plan.skipped.clone();
        let mut h = self.new_hunt(&o, plan, prior, now);
        h.cos = Some(g.spec.cos);
        for (n, st) in skipped {
            let status = if st == MemberState::Busy { 486 } else { 480 };
            h.event("skipped", name, n, status, now);
        }
        self.hunt_step(entry, h, now);
    }

    /// A call to extension `target` that has forwarding settings: true when this module took
    /// the call (the caller of this function must not ring the extension itself).
    pub(crate) fn hunt_takes_ext(&self, target: &ExtEntry) -> bool {
        self.snap
            .apps
            .hunt
            .forwarding
            .get(&target.id)
            .is_some_and(|f| !f.is_off())
    }

    /// Routes a call to an extension with forwarding settings.
    pub(crate) fn route_ext(
        &mut self,
        entry: Entry,
        o: Origin,
        target: ExtEntry,
        prior: Option<Box<Hunt>>,
        now: Now,
    ) {
        let fwd = self
            .snap
            .apps
            .hunt
            .forwarding
            .get(&target.id)
            .cloned()
            .unwrap_or_default();
        let visited = prior
            .as_ref()
            .is_some_and(|h| h.visited.contains(&target.number));
        let state = self.member_state(o.tenant, &target.number, &HashSet::new(), now);
        let state = if state == MemberState::Dnd {
            MemberState::Available
        } else {
            state
        };
        let decided = if visited {
            // A forward led back here: ring the extension plainly (loop protection).
            ExtRoute::Ring(Plan::new(vec![Step {
                numbers: vec![target.number.clone()],
                ring: self.snap.settings.no_answer,
            }]))
        } else {
            ext_route(&target.number, &fwd, state, self.snap.settings.no_answer)
        };
        debug!(ext = %target.number, ?decided, "forwarding");
        let mut h = self.new_hunt(&o, Plan::new(Vec::new()), prior, now);
        if !visited {
            h.visited.push(target.number.clone());
        }
        h.cos_ext = Some(target.clone());
        match decided {
            ExtRoute::Reject(486) => {
                if fwd.dnd {
                    h.event("dnd", &target.number, target.number.clone(), 486, now);
                }
                self.hunt_store_events(&mut h);
                self.hunt_refuse_as(entry, &o, 486, "Busy Here", Disposition::Busy, now)
            }
            ExtRoute::Reject(s) => {
                self.hunt_store_events(&mut h);
                self.hunt_refuse(entry, &o, s, "Temporarily Unavailable", now)
            }
            ExtRoute::Go(t, reason) => {
                let why = if fwd.dnd {
                    "dnd"
                } else if !fwd.always.is_empty() {
                    "forward_always"
                } else {
                    "forward_unreachable"
                };
                h.forwarded_by = Some((target.number.clone(), why));
                self.hunt_go(entry, h, t, reason, now)
            }
            ExtRoute::Ring(plan) => {
                h.plan = plan;
                h.overall_end = None;
                self.hunt_step(entry, h, now)
            }
        }
    }

    fn new_hunt(&self, o: &Origin, plan: Plan, prior: Option<Box<Hunt>>, now: Now) -> Box<Hunt> {
        let overall_end = plan.overall.map(|d| now.mono + d);
        match prior {
            Some(mut h) => {
                h.plan = plan;
                h.step = 0;
                h.overall_end = overall_end;
                h.step_exts.clear();
                h
            }
            None => Box::new(Hunt {
                plan,
                step: 0,
                start_wall: now.wall,
                start_mono: now.mono,
                overall_end,
                origin: OriginCopy::of(o),
                hops: 0,
                visited: Vec::new(),
                cos_ext: None,
                cos: None,
                step_exts: Vec::new(),
                vm_reason: None,
                tenant: o.tenant,
                last_fail: Vec::new(),
                events: Vec::new(),
                diverted: None,
                forwarded_by: None,
            }),
        }
    }

    /// Refuses the call (one record) with `status`.
    fn hunt_refuse(&mut self, entry: Entry, o: &Origin, status: u16, reason: &str, now: Now) {
        let d = if status == 480 {
            Disposition::NoAnswer
        } else {
            Disposition::Failed
        };
        self.hunt_refuse_as(entry, o, status, reason, d, now);
    }

    fn hunt_refuse_as(
        &mut self,
        entry: Entry,
        o: &Origin,
        status: u16,
        reason: &str,
        d: Disposition,
        now: Now,
    ) {
        let (txn, req, source, _, _) = entry;
        self.refuse_call(txn, &req, source, o, status, reason, d, now);
    }

    /// Starts the plan's current step (or the next one that can ring), or the fallback.
    fn hunt_step(&mut self, entry: Entry, mut h: Box<Hunt>, now: Now) {
        let tenant = h.tenant;
        let source = entry.2;
        while let Some(step) = h.plan.steps.get(h.step).cloned() {
            if h.overall_end.is_some_and(|end| now.mono >= end) {
                break;
            }
            if let Some(g) = h.plan.group.clone() {
                self.remember_member(tenant, &g, &step.numbers);
            }
            let mut o = h.origin.origin();
            if !h.plan.cid_prefix.is_empty() {
                let name = if o.caller_name.is_empty() {
                    o.caller.clone()
                } else {
                    o.caller_name.clone()
                };
                o.caller_name = format!("{}: {name}", h.plan.cid_prefix);
            }
            let mut bindings: Vec<Binding> = Vec::new();
            let mut exts = Vec::new();
            let mut outside = None;
            for n in &step.numbers {
                match self.snap.extensions.get(&(tenant, n.clone())) {
                    Some(e) if e.enabled => {
                        exts.push((e.id, n.clone()));
                        bindings.extend(
                            self.usrloc
                                .get(e.id)
                                .iter()
                                .filter(|b| b.expires_at > now.wall && b.received != source)
                                .cloned(),
                        );
                    }
                    Some(_) => {}
                    None if step.numbers.len() == 1 => outside = Some(n.clone()),
                    None => debug!(number = %n, "outside numbers ring in steps of their own"),
                }
            }
            if step.numbers.len() == 1 {
                o.digits = step.numbers[0].clone();
            }
            let ring_end = now.mono + step.ring;
            let ring_end = h.overall_end.map_or(ring_end, |e| e.min(ring_end));
            let by = h.event_by();
            if !bindings.is_empty() {
                for (_, n) in &exts {
                    h.event("hunt", &by, n.clone(), 180, now);
                }
                h.step_exts = exts;
                let segments: Vec<IpAddr> = bindings.iter().map(|b| b.local.ip()).collect();
                let txn = entry.0;
                self.start_call(entry, o, Targets::Contacts(bindings), &segments, now);
                return self.attach_hunt(txn, h, ring_end);
            }
            if let Some(number) = outside {
                let cos_ext = self.cos_entry(&h);
                match dialplan::outbound(tenant, &number, Some(&cos_ext), &self.snap) {
                    Decision::Outside { call, .. }
                        if self.any_trunk_usable(tenant, &call.trunks) =>
                    {
                        h.step_exts.clear();
                        h.event("hunt", &by, number.clone(), 180, now);
                        // Follow-me through a trunk: the provider learns whose call it is.
                        h.diverted = h
                            .cos_ext
                            .as_ref()
                            .filter(|_| h.plan.group.is_none())
                            .map(|e| (e.number.clone(), "follow-me"));
                        o.route.direction = Direction::Outbound;
                        o.route.sent_number = call.number.clone();
                        o.route.caller_id = call.caller_id.number.clone();
                        let txn = entry.0;
                        self.outside_call(entry, o, call, Some(cos_ext), now);
                        return self.attach_hunt(txn, h, ring_end);
                    }
                    other => info!(number = %number, decision = ?other, "hunt member refused"),
                }
            }
            h.step += 1;
        }
        match h.plan.then.take() {
            Some((t, reason)) => {
                h.forwarded_by = Some(match &h.plan.group {
                    Some(g) => (g.clone(), "group_no_answer"),
                    None => (h.event_by(), "forward_no_answer"),
                });
                self.hunt_go(entry, h, t, reason, now)
            }
            None if h.last_fail.is_empty() => {
                self.hunt_store_events(&mut h);
                let o = h.origin.origin();
                self.hunt_refuse(entry, &o, 480, "Temporarily Unavailable", now)
            }
            None => {
                self.hunt_store_events(&mut h);
                let o = h.origin.origin();
                let (status, ending) = crate::b2bua::fork_failure(&h.last_fail, false);
                let reason = sip::reason_phrase(status);
                self.hunt_refuse_as(entry, &o, status, reason, ending.disposition, now)
            }
        }
    }

    /// Whether one of `trunks` can take a call now (else an outside member is skipped rather
    /// than ending the hunt with 503).
    fn any_trunk_usable(&self, tenant: i64, trunks: &[String]) -> bool {
        trunks.iter().any(|n| {
            self.snap
                .outside
                .trunk(tenant, n)
                .is_some_and(|t| self.trunk_usable(t).is_ok())
        })
    }

    /// The extension entry whose class of service an outside step uses.
    fn cos_entry(&self, h: &Hunt) -> ExtEntry {
        let mut e = h.cos_ext.clone().unwrap_or_else(|| {
            self.snap
                .extensions
                .get(&(h.tenant, h.origin.caller.clone()))
                .cloned()
                .unwrap_or_default()
        });
        if let Some(c) = h.cos {
            e.cos = c;
        }
        e
    }

    /// Hangs the hunt state on the call just started for the caller's transaction.
    fn attach_hunt(
        &mut self,
        txn: sip::transaction::TransactionId,
        mut h: Box<Hunt>,
        ring_end: Instant,
    ) {
        let Some(id) = self.b2bua.call_of_server_txn(txn) else {
            // Refused already (its one record is written): its events go beside it.
            self.hunt_store_events(&mut h);
            return;
        };
        if let Some(call) = self.b2bua.get_mut(id) {
            call.start = h.start_wall;
            call.start_mono = h.start_mono;
            call.no_answer_at = ring_end;
            call.hunt = Some(h);
        }
    }

    /// Sends the call to a forward or fallback target.
    fn hunt_go(&mut self, entry: Entry, mut h: Box<Hunt>, t: Target, reason: VmReason, now: Now) {
        let o = h.origin.origin();
        h.hops += 1;
        let (by, why) = h
            .forwarded_by
            .take()
            .unwrap_or_else(|| (h.event_by(), "forward"));
        h.event(why, &by, t.to_string(), 302, now);
        if h.hops > MAX_HOPS {
            info!(caller = %o.caller, "too many forwards");
            self.hunt_store_events(&mut h);
            return self.hunt_refuse(entry, &o, 482, "Loop Detected", now);
        }
        // A forward from an extension to an outside number: the trunk call says whose.
        h.diverted = diversion_reason(why)
            .filter(|_| self.snap.extensions.contains_key(&(o.tenant, by.clone())))
            .map(|r| (by.clone(), r));
        info!(caller = %o.caller, to = %t, ?reason, "call forwarded");
        let tenant = o.tenant;
        let dest = match t {
            Target::Dest(d) => d,
            Target::Number(n) => match self.snap.extensions.get(&(tenant, n.clone())) {
                Some(_) => Destination::Ext(n),
                None => match self.snap.apps.numbers.get(&(tenant, n.clone())) {
                    Some(d) => d.clone(),
                    None => {
                        let cos_ext = self.cos_entry(&h);
                        return match dialplan::outbound(tenant, &n, Some(&cos_ext), &self.snap) {
                            Decision::Outside { call, .. } => {
                                let mut o = o;
                                o.route.direction = Direction::Outbound;
                                o.route.sent_number = call.number.clone();
                                o.route.caller_id = call.caller_id.number.clone();
                                let txn = entry.0;
                                self.outside_call(entry, o, call, Some(cos_ext), now);
                                let end = now.mono + self.snap.settings.no_answer;
                                h.plan = Plan::new(Vec::new());
                                self.attach_hunt(txn, h, end);
                            }
                            Decision::Reject { status, reason } => {
                                self.hunt_store_events(&mut h);
                                self.hunt_refuse(entry, &o, status, &reason, now)
                            }
                            Decision::Route { .. } | Decision::Feature { .. } => {
                                self.hunt_store_events(&mut h);
                                self.hunt_refuse(entry, &o, 404, "Not Found", now)
                            }
                        };
                    }
                },
            },
        };
        match dest {
            Destination::Ext(n) => match self.snap.extensions.get(&(tenant, n)).cloned() {
                Some(e) if e.enabled => self.route_ext(entry, o, e, Some(h), now),
                _ => {
                    self.hunt_store_events(&mut h);
                    self.hunt_refuse(entry, &o, 404, "Not Found", now)
                }
            },
            Destination::Group(g) => self.route_group(entry, o, &g, Some(h), now),
            Destination::Hangup => {
                self.hunt_store_events(&mut h);
                self.hunt_refuse(entry, &o, 480, "Temporarily Unavailable", now)
            }
            d @ (Destination::Vm(_) | Destination::Ivr(_) | Destination::Conf(_)) => {
                let txn = entry.0;
                let is_vm = matches!(d, Destination::Vm(_));
                self.start_app(entry, o, d, now);
                if is_vm {
                    h.vm_reason = Some(reason);
                }
                h.plan = Plan::new(Vec::new());
                if let Some(id) = self.b2bua.call_of_server_txn(txn)
                    && let Some(call) = self.b2bua.get_mut(id)
                {
                    // The greeting plays once the endpoint is up: busy or unavailable.
                    if let Some(v) = call.anchor.as_deref_mut().and_then(|a| a.vm_mut()) {
                        v.reason = reason;
                    }
                    call.start = h.start_wall;
                    call.start_mono = h.start_mono;
                    call.hunt = Some(h);
                }
            }
            d => {
                self.hunt_store_events(&mut h);
                let decision = Decision::Route {
                    destination: d,
                    reason: "forward".into(),
                };
                self.route_call(entry, o, decision, None, now);
            }
        }
    }

    /// Takes a hunted call's state off it and removes the call (no record: the caller's
    /// transaction goes on with the next step), cancelling forks still ringing.
    /// Only an unanswered call with a plan is taken.
    fn hunt_take(&mut self, id: u64, now: Now) -> Option<(Entry, Box<Hunt>)> {
        let call = self.b2bua.get_mut(id)?;
        if call.hunt.is_none() || call.bridge.is_some() {
            return None;
        }
        let a = &call.legs[A_LEG];
        let txn = a.txn;
        let target = a.target;
        let local = target.local.unwrap_or(a.local);
        let req = self.layer.request(txn)?.clone();
        let call = self.b2bua.get_mut(id)?;
        let h = call.hunt.take()?;
        self.cancel_forks(id, now);
        self.drop_call(id);
        Some(((txn, req, target.destination, local, target.transport), h))
    }

    /// The step ringing now failed (`statuses` of its forks): true when the hunt goes on.
    pub(crate) fn hunt_failed(&mut self, id: u64, statuses: &[u16], now: Now) -> bool {
        let Some((entry, mut h)) = self.hunt_take(id, now) else {
            return false;
        };
        h.last_fail = statuses.to_vec();
        let busy = statuses.iter().any(|s| matches!(s, 486 | 600 | 603));
        let (status, _) = crate::b2bua::fork_failure(statuses, false);
        h.step_ended(if status == 487 { 480 } else { status }, now);
        if busy
            && h.step == 0
            && let Some((t, reason)) = h.plan.on_busy.take()
        {
            return {
                h.forwarded_by = Some((h.event_by(), "forward_busy"));
                self.hunt_go(entry, h, t, reason, now);
                true
            };
        }
        h.step += 1;
        self.hunt_step(entry, h, now);
        true
    }

    /// The step ringing now rang out: true when the hunt goes on.
    pub(crate) fn hunt_no_answer(&mut self, id: u64, now: Now) -> bool {
        let Some((entry, mut h)) = self.hunt_take(id, now) else {
            return false;
        };
        h.step_ended(480, now);
        if h.overall_end.is_some_and(|end| now.mono >= end) {
            h.step = h.plan.steps.len();
        } else {
            h.step += 1;
        }
        self.hunt_step(entry, h, now);
        true
    }

    /// Leg `i` of call `id` answered: the record names the member who answered, the events
    /// get `answered`.
    pub(crate) fn hunt_answered(&mut self, id: u64, i: usize) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(h) = call.hunt.as_deref_mut() else {
            return;
        };
        let dest = call.legs.get(i).map(|l| l.target.destination);
        let ext_id = call
            .rung
            .iter()
            .find(|b| Some(b.target().destination) == dest)
            .map(|b| b.extension_id);
        let who = ext_id
            .and_then(|e| h.step_exts.iter().find(|(id, _)| *id == e))
            .map(|(_, n)| n.clone());
        let at = call.answer.unwrap_or(h.start_wall);
        let by = h.event_by();
        let answered = who.clone().unwrap_or_else(|| call.callee.clone());
        h.events.push(crate::transfer::TransferEvent {
            at: at.max(h.events.last().map_or(at, |e| e.at)),
            kind: "answered",
            by,
            party: h.origin.caller.clone(),
            to: answered,
            status: 200,
        });
        if let Some(n) = who {
            call.callee = n;
        }
    }

    /// Stores a hunt's events now (the call ends without a call of its own: refused).
    fn hunt_store_events(&mut self, h: &mut Hunt) {
        if h.events.is_empty() {
            return;
        }
        let op = DbOp::CdrEvents {
            tenant: h.tenant,
            call_id: h.origin.call_id.clone(),
            events: std::mem::take(&mut h.events),
        };
        self.db(op, crate::Pending::Background("storing call events"));
    }

    /// Round-robin memory: `numbers` were tried now in group `name`.
    pub(crate) fn remember_member(&mut self, tenant: i64, name: &str, numbers: &[String]) {
        let Some(g) = self
            .snap
            .apps
            .hunt
            .groups
            .get_mut(&(tenant, name.to_string()))
        else {
            return;
        };
        if g.spec.strategy != Strategy::RoundRobin {
            return;
        }
        let Some(last) = numbers.last() else {
            return;
        };
        g.last = last.clone();
        let op = DbOp::GroupPosition {
            group_id: g.id,
            member: last.clone(),
        };
        self.db(
            op,
            crate::Pending::Background("storing a ring group's position"),
        );
    }

    /// Why call `id` reached voicemail (busy or unavailable), for the greeting.
    pub fn vm_reason(&self, id: u64) -> VmReason {
        self.b2bua
            .get(id)
            .and_then(|c| c.hunt.as_deref())
            .and_then(|h| h.vm_reason)
            .unwrap_or_default()
    }
}

impl Engine {
    /// The `Diversion` header (RFC 5806) for the trunk leg of call `id`, when an extension's
    /// forward or follow-me sends it out: `<sip:EXT@DOMAIN>;reason=...;counter=N`.
    /// An anchored call (a menu choice that followed an extension's forwarding) keeps it in
    /// its anchor instead.
    pub(crate) fn diversion_header(&self, id: u64, domain: &str) -> Option<String> {
        let c = self.b2bua.get(id)?;
        let (ext, reason, counter) = match c.hunt.as_deref() {
            Some(h) => {
                let (ext, reason) = h.diversion()?;
                let n = h.events.iter().filter(|e| e.status == 302).count();
                (ext, reason, n)
            }
            None => {
                let (ext, reason, n) = c.anchor.as_deref()?.diverted.as_ref()?;
                (ext.as_str(), *reason, usize::from(*n))
            }
        };
        let counter = counter.max(1);
        Some(format!(
            "<sip:{ext}@{domain}>;reason={reason};counter={counter}"
        ))
    }
}

/// Numbers a forward or group setting names, resolved for reference checks: `(kind, name)`
/// with kind `ext` (extension or mailbox, or a bare number) or `group`.
pub fn references(text: &str) -> Option<(&'static str, String)> {
    match Target::from_str(text).ok()? {
        Target::Number(n) => Some(("ext", n)),
        Target::Dest(Destination::Ext(n) | Destination::Vm(n)) => Some(("ext", n)),
        Target::Dest(Destination::Group(g)) => Some(("group", g)),
        Target::Dest(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(strategy: Strategy, members: &[&str]) -> GroupEntry {
        GroupEntry {
            id: 1,
            name: "sales".into(),
            number: "600".into(),
            spec: GroupSpec {
                strategy,
                members: members
                    .iter()
                    .map(|n| Member {
                        number: n.to_string(),
                        ring_s: 0,
                    })
                    .collect(),
                ring_s: 10,
                timeout_s: 40,
                no_answer: "vm:1001".into(),
                cid_prefix: "Sales".into(),
                cos: CallClass::Internal,
            },
            last: String::new(),
        }
    }

    fn nums(p: &Plan) -> Vec<Vec<String>> {
        p.steps.iter().map(|s| s.numbers.clone()).collect()
    }

    #[test]
    fn strategies_order_and_skip() {
        let all = |_: &str| MemberState::Available;
        let p = group_plan(
            "sales",
            &group(Strategy::Simultaneous, &["1", "2", "3"]),
            all,
        );
        assert_eq!(nums(&p), vec![vec!["1", "2", "3"]]);
        assert_eq!(p.steps[0].ring, Duration::from_secs(40));
        // Outside members follow the extensions, one trunk call each.
        let p = group_plan(
            "sales",
            &group(Strategy::Simultaneous, &["1", "0312345678", "2"]),
            |n| {
                if n.len() > 4 {
                    MemberState::Outside
                } else {
                    MemberState::Available
                }
            },
        );
        assert_eq!(nums(&p), vec![vec!["1", "2"], vec!["0312345678"]]);
        assert_eq!(p.steps[0].ring, Duration::from_secs(10));
        let p = group_plan(
            "sales",
            &group(Strategy::Sequential, &["1", "2", "3"]),
            |n| {
                if n == "2" {
                    MemberState::Busy
                } else {
                    MemberState::Available
                }
            },
        );
        assert_eq!(nums(&p), vec![vec!["1"], vec!["3"]]);
        assert_eq!(p.skipped, vec![("2".to_string(), MemberState::Busy)]);
        let mut g = group(Strategy::RoundRobin, &["1", "2", "3"]);
        g.last = "2".into();
        assert_eq!(
            nums(&group_plan("sales", &g, all)),
            vec![vec!["3"], vec!["1"], vec!["2"]]
        );
        g.last = "gone".into();
        assert_eq!(nums(&group_plan("sales", &g, all))[0], vec!["1"]);
        let p = group_plan(
            "sales",
            &group(Strategy::FirstAvailable, &["1", "2", "3"]),
            |n| match n {
                "1" => MemberState::Dnd,
                "2" => MemberState::Unregistered,
                _ => MemberState::Available,
            },
        );
        assert_eq!(nums(&p), vec![vec!["3"]]);
        assert_eq!(
            p.then,
            Some((
                Target::Dest(Destination::Vm("1001".into())),
                VmReason::Unavailable
            ))
        );
    }

    #[test]
    fn forwarding_decisions() {
        let ring = Duration::from_secs(20);
        let mut f = Forwarding {
            dnd: true,
            ..Forwarding::default()
        };
        assert_eq!(
            ext_route("1001", &f, MemberState::Available, ring),
            ExtRoute::Reject(486)
        );
        f.dnd_mode = DndMode::Voicemail;
        assert_eq!(
            ext_route("1001", &f, MemberState::Available, ring),
            ExtRoute::Go(Target::Dest(Destination::Vm("1001".into())), VmReason::Busy)
        );
        let f = Forwarding {
            always: "1002".into(),
            ..Forwarding::default()
        };
        assert_eq!(
            ext_route("1001", &f, MemberState::Available, ring),
            ExtRoute::Go(Target::Number("1002".into()), VmReason::Unavailable)
        );
        let f = Forwarding {
            unreachable: "vm:1001".into(),
            busy: "vm:1001".into(),
            no_answer: "09011112222".into(),
            no_answer_s: 7,
            follow_me: vec!["1003".into(), "1004".into()],
            follow_me_s: 9,
            ..Forwarding::default()
        };
        assert_eq!(
            ext_route("1001", &f, MemberState::Unregistered, ring),
            ExtRoute::Go(
                Target::Dest(Destination::Vm("1001".into())),
                VmReason::Unavailable
            )
        );
        let ExtRoute::Ring(p) = ext_route("1001", &f, MemberState::Available, ring) else {
            panic!("rings");
        };
        assert_eq!(nums(&p), vec![vec!["1001"], vec!["1003"], vec!["1004"]]);
        assert_eq!(p.steps[0].ring, Duration::from_secs(7));
        assert_eq!(p.steps[1].ring, Duration::from_secs(9));
        assert_eq!(p.on_busy.as_ref().map(|b| b.1), Some(VmReason::Busy));
        assert_eq!(
            p.then.as_ref().map(|t| t.0.clone()),
            Some(Target::Number("09011112222".into()))
        );
        let f = Forwarding {
            follow_me: vec!["1003".into(), "1004".into()],
            follow_me_together: true,
            ..Forwarding::default()
        };
        let ExtRoute::Ring(p) = ext_route("1001", &f, MemberState::Available, ring) else {
            panic!("rings");
        };
        assert_eq!(nums(&p), vec![vec!["1001"], vec!["1003", "1004"]]);
        assert_eq!(p.steps[0].ring, ring);
    }

    #[test]
    fn validation_names_the_field() {
        let mut g = group(Strategy::Sequential, &["1001", "1001"]);
        assert_eq!(g.spec.validate().map_err(|e| e.field), Err("members"));
        g.spec.members.pop();
        assert!(g.spec.validate().is_ok());
        g.spec.no_answer = "voicemail:1".into();
        assert_eq!(g.spec.validate().map_err(|e| e.field), Err("no_answer"));
        g.spec.no_answer = "hangup".into();
        g.spec.timeout_s = 0;
        assert_eq!(g.spec.validate().map_err(|e| e.field), Err("timeout_s"));
        let f = Forwarding {
            busy: "12ab".into(),
            ..Forwarding::default()
        };
        assert_eq!(f.validate().map_err(|e| e.field), Err("busy"));
        assert_eq!("round-robin".parse(), Ok(Strategy::RoundRobin));
        assert!("random".parse::<Strategy>().is_err());
    }
}
