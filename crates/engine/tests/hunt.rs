//! Ring groups, forwarding, follow-me and DND on a fake clock: who rings when, who is skipped,
//! round-robin memory, the no-answer destination, forward kinds, loop protection, class of
//! service, and the one call record saying who answered.

mod common;

use std::time::Duration;

use common::*;
use engine::config::{RouteEntry, Snapshot, TrunkEntry};
use engine::db::Disposition;
use engine::dialplan::Destination;
use engine::hunt::{DndMode, Forwarding, GroupEntry, GroupSpec, Member, Strategy};
use engine::outside::{CallClass, RouteSpec, TenantOutbound, TrunkSpec};
use sip::{Message, Response};

const CALLER: &str = "192.0.2.21:5060";

/// The phone of extension `n` (1002 → 192.0.2.102).
fn phone(n: &str) -> String {
    format!(
        "192.0.2.{}:5060",
        100 + n[2..].parse::<u16>().expect("number")
    )
}

fn snap_with(groups: Vec<(&str, Strategy, &[&str], &str)>) -> Snapshot {
    let mut s = snapshot();
    for (id, n) in [(4, "1004"), (5, "1005"), (6, "1006")] {
        s.extensions.insert((1, n.to_string()), ext(id, n, 3));
    }
    for (gid, (name, strategy, members, no_answer)) in groups.into_iter().enumerate() {
        let number = format!("60{gid}");
        s.apps
            .numbers
            .insert((1, number.clone()), Destination::Group(name.into()));
        s.apps.hunt.groups.insert(
            (1, name.into()),
            GroupEntry {
                id: gid as i64 + 1,
                name: name.into(),
                number,
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
                    no_answer: no_answer.into(),
                    cid_prefix: "Sales".into(),
                    cos: CallClass::Internal,
                },
                last: String::new(),
            },
        );
    }
    s
}

/// One outbound route: national numbers (0 + 0ZXXXXXXXX) through the trunk `carrier`.
fn national_route(snap: &mut Snapshot) {
    snap.outside.routes.insert(
        1,
        vec![RouteEntry::new(
            "national".into(),
            RouteSpec {
                patterns: vec!["0|0ZXXXXXXXX".into()],
                trunks: vec!["carrier".into()],
                class: CallClass::National,
                ..RouteSpec::default()
            },
        )],
    );
}

/// The trunk `carrier` at `at` (its host name `host`, else the address), the tenant's
/// outbound limits and [`national_route`].
fn carrier(snap: &mut Snapshot, at: &str, host: Option<&str>) {
    let a = addr(at);
    snap.outside.trunks.insert(
        1,
        TrunkEntry {
            id: 1,
            tenant: 1,
            name: "carrier".into(),
            spec: TrunkSpec {
                host: host.map_or_else(|| a.ip().to_string(), str::to_string),
                port: Some(a.port()),
                ping_interval_s: 0,
                ..TrunkSpec::default()
            },
            password: String::new(),
            addrs: vec![a],
            sources: vec![a.ip()],
        },
    );
    snap.outside.tenants.insert(
        1,
        TenantOutbound {
            main_number: "0312340000".into(),
            max_per_hour: 1000,
            ..TenantOutbound::default()
        },
    );
    national_route(snap);
}

/// Registers the caller 1001 and `phones`, each with one contact.
fn harness(snap: Snapshot, phones: &[&str]) -> Harness {
    let mut h = Harness::with(snap);
    let c = format!("<sip:1001@{CALLER}>");
    assert_eq!(
        h.register("1001", Some(&c), Some(3600), CALLER, SEG1)
            .status,
        200
    );
    for n in phones {
        let at = phone(n);
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), &at, SEG1).status, 200);
    }
    h.sent.clear();
    h
}

fn call(h: &mut Harness, to: &str, call_id: &str) {
    let out = h.dial(&Dial {
        from: "1001",
        to,
        source: CALLER,
        local: SEG1,
        call_id,
    });
    h.sent.extend(out);
}

/// Numbers of the phones that got an INVITE since the last clear, in order (retransmissions
/// aside).
fn rung(h: &Harness) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    h.requests("INVITE")
        .iter()
        .filter_map(|s| {
            let to = s.to.to_string();
            (100..110)
                .find(|i| to == format!("192.0.2.{i}:5060"))
                .map(|i| format!("10{:02}", i - 100))
        })
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

fn invite_to(h: &Harness, n: &str) -> sip::Request {
    h.requests("INVITE")
        .iter()
        .rev()
        .find(|s| s.to.to_string() == phone(n))
        .map(|s| s.request().clone())
        .expect("an INVITE to the phone")
}

fn cancelled(h: &Harness) -> Vec<String> {
    let mut v: Vec<String> = h
        .requests("CANCEL")
        .iter()
        .map(|s| s.to.to_string())
        .collect();
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

fn caller_final(h: &Harness) -> Option<Response> {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == CALLER)
        .filter_map(|s| match &s.message {
            Message::Response(r)
                if r.status >= 200 && r.cseq().is_some_and(|c| c.method.as_str() == "INVITE") =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .next_back()
}

/// The phone of `n` answers its (last) INVITE; then the call is hung up from the panel.
fn answer_and_hang_up(h: &mut Harness, n: &str) {
    let inv = invite_to(h, n);
    h.sent.clear();
    h.reply(&inv, 200, &format!("tag-{n}"), &phone(n), SEG1);
    assert_eq!(
        caller_final(h).map(|r| r.status),
        Some(200),
        "caller answered"
    );
    let id = h.engine.calls(h.now)[0].id;
    assert!(h.engine.hangup(id, h.now));
    h.drain();
}

#[test]
fn simultaneous_rings_everyone_with_the_prefix_and_the_record_names_the_answerer() {
    let snap = snap_with(vec![(
        "sales",
        Strategy::Simultaneous,
        &["1002", "1003", "1004"],
        "hangup",
    )]);
    let mut h = harness(snap, &["1002", "1003", "1004"]);
    call(&mut h, "600", "g-sim");
    let mut r = rung(&h);
    r.sort();
    assert_eq!(r, ["1002", "1003", "1004"]);
    for n in ["1002", "1003", "1004"] {
        h.reply(&invite_to(&h, n), 180, &format!("t{n}"), &phone(n), SEG1);
    }
    let from = invite_to(&h, "1003").from().expect("From").clone();
    assert_eq!(from.display_name.as_deref(), Some("Sales: Ext 1001"));
    answer_and_hang_up(&mut h, "1003");
    let mut c = cancelled(&h);
    c.sort();
    assert_eq!(c, [phone("1002"), phone("1004")]);
    assert_eq!(h.cdrs.len(), 1, "one record");
    assert_eq!(h.cdrs[0].callee, "1003");
    assert_eq!(h.cdrs[0].route.dialled, "600");
    assert_eq!(h.cdrs[0].disposition, Disposition::Answered);
}

#[test]
fn sequential_hunts_per_member_ring_time_then_the_no_answer_destination() {
    let snap = snap_with(vec![(
        "sales",
        Strategy::Sequential,
        &["1002", "1003", "1004"],
        "ext:1005",
    )]);
    let mut h = harness(snap, &["1002", "1003", "1004", "1005"]);
    call(&mut h, "600", "g-seq");
    assert_eq!(rung(&h), ["1002"]);
    h.reply(&invite_to(&h, "1002"), 180, "t2", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(9_700));
    assert!(rung(&h).is_empty(), "1002 rings its 10 s alone");
    h.advance(Duration::from_millis(600));
    assert_eq!(cancelled(&h), [phone("1002")]);
    assert_eq!(rung(&h), ["1003"]);
    assert!(caller_final(&h).is_none(), "the caller still hears ringing");
    // 1003 is busy: the next member rings at once.
    let inv = invite_to(&h, "1003");
    h.sent.clear();
    h.reply(&inv, 486, "t3", &phone("1003"), SEG1);
    assert_eq!(rung(&h), ["1004"]);
    h.reply(&invite_to(&h, "1004"), 180, "t4", &phone("1004"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(10_300));
    assert_eq!(rung(&h), ["1005"], "no-answer destination ext:1005");
    answer_and_hang_up(&mut h, "1005");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].callee, "1005");
    // The record's start is the call's start, not the last step's.
    assert!(h.cdrs[0].duration_s >= 20, "{:?}", h.cdrs[0].duration_s);
}

#[test]
fn overall_timeout_ends_the_hunt_with_one_no_answer_record() {
    let mut snap = snap_with(vec![(
        "sales",
        Strategy::Sequential,
        &["1002", "1003"],
        "hangup",
    )]);
    if let Some(g) = snap.apps.hunt.groups.get_mut(&(1, "sales".into())) {
        g.spec.ring_s = 30;
        g.spec.timeout_s = 45;
    }
    let mut h = harness(snap, &["1002", "1003"]);
    call(&mut h, "600", "g-overall");
    h.reply(&invite_to(&h, "1002"), 180, "t2", &phone("1002"), SEG1);
    h.advance(Duration::from_millis(30_300));
    assert_eq!(rung(&h), ["1002", "1003"]);
    h.reply(&invite_to(&h, "1003"), 180, "t3", &phone("1003"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(14_000));
    assert!(caller_final(&h).is_none());
    h.advance(Duration::from_millis(700));
    assert_eq!(caller_final(&h).map(|r| r.status), Some(480));
    assert!(cancelled(&h).contains(&phone("1003")));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].disposition, Disposition::NoAnswer);
}

#[test]
fn busy_dnd_and_unregistered_members_are_skipped() {
    let mut snap = snap_with(vec![(
        "sales",
        Strategy::FirstAvailable,
        &["1002", "1003", "1004", "1005"],
        "hangup",
    )]);
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            dnd: true,
            ..Forwarding::default()
        },
    );
    // 1003 is not registered; 1004 is in a call with 1006.
    let mut h = harness(snap, &["1002", "1004", "1005", "1006"]);
    let out = h.dial(&Dial {
        from: "1004",
        to: "1006",
        source: &phone("1004"),
        local: SEG1,
        call_id: "busy-call",
    });
    h.sent.extend(out);
    let inv = invite_to(&h, "1006");
    h.reply(&inv, 200, "t6", &phone("1006"), SEG1);
    h.sent.clear();
    call(&mut h, "600", "g-first");
    assert_eq!(
        rung(&h),
        ["1005"],
        "DND, unregistered and busy members skipped"
    );
}

#[test]
fn round_robin_starts_after_the_member_tried_last_and_stores_it() {
    let snap = snap_with(vec![(
        "sales",
        Strategy::RoundRobin,
        &["1002", "1003", "1004"],
        "hangup",
    )]);
    let mut h = harness(snap.clone(), &["1002", "1003", "1004"]);
    call(&mut h, "600", "rr-1");
    assert_eq!(rung(&h), ["1002"]);
    answer_and_hang_up(&mut h, "1002");
    h.sent.clear();
    call(&mut h, "600", "rr-2");
    assert_eq!(rung(&h), ["1003"]);
    assert_eq!(h.group_positions, [(1, "1002".into()), (1, "1003".into())]);
    // After a restart the stored position is loaded with the group.
    let mut snap = snap;
    if let Some(g) = snap.apps.hunt.groups.get_mut(&(1, "sales".into())) {
        g.last = "1003".into();
    }
    let mut h = harness(snap, &["1002", "1003", "1004"]);
    call(&mut h, "600", "rr-3");
    assert_eq!(rung(&h), ["1004"]);
}

#[test]
fn forward_always_busy_no_answer_and_unreachable() {
    let mut snap = snap_with(Vec::new());
    let fwd = |f: Forwarding| f;
    snap.apps.hunt.forwarding.insert(
        2,
        fwd(Forwarding {
            always: "1004".into(),
            ..Forwarding::default()
        }),
    );
    snap.apps.hunt.forwarding.insert(
        3,
        Forwarding {
            busy: "ext:1005".into(),
            no_answer: "1006".into(),
            no_answer_s: 5,
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap.clone(), &["1002", "1003", "1004", "1005", "1006"]);
    call(&mut h, "1002", "fwd-always");
    assert_eq!(rung(&h), ["1004"], "always: 1002 never rings");
    answer_and_hang_up(&mut h, "1004");
    assert_eq!(h.cdrs[0].callee, "1004");
    assert_eq!(h.cdrs[0].route.dialled, "1002");

    h.sent.clear();
    call(&mut h, "1003", "fwd-busy");
    assert_eq!(rung(&h), ["1003"]);
    let inv = invite_to(&h, "1003");
    h.sent.clear();
    h.reply(&inv, 486, "t3", &phone("1003"), SEG1);
    assert_eq!(rung(&h), ["1005"], "busy goes to the busy forward");
    h.reply(&invite_to(&h, "1005"), 180, "t5", &phone("1005"), SEG1);
    h.engine.hangup(h.engine.calls(h.now)[0].id, h.now);
    h.drain();

    h.sent.clear();
    call(&mut h, "1003", "fwd-noanswer");
    h.advance(Duration::from_millis(4_700));
    assert_eq!(rung(&h), ["1003"]);
    h.advance(Duration::from_millis(600));
    assert_eq!(rung(&h), ["1003", "1006"], "no answer after 5 s");

    // Unreachable: 1005 forwards to 1006 when no phone is registered.
    snap.apps.hunt.forwarding.insert(
        5,
        Forwarding {
            unreachable: "1006".into(),
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap, &["1006"]);
    call(&mut h, "1005", "fwd-unreach");
    assert_eq!(rung(&h), ["1006"]);
}

#[test]
fn dnd_refuses_busy_or_sends_to_voicemail() {
    let mut snap = snap_with(Vec::new());
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            dnd: true,
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap.clone(), &["1002"]);
    call(&mut h, "1002", "dnd-busy");
    assert!(rung(&h).is_empty());
    assert_eq!(caller_final(&h).map(|r| r.status), Some(486));
    assert_eq!(h.cdrs[0].disposition, Disposition::Busy);

    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            dnd: true,
            dnd_mode: DndMode::Voicemail,
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap, &["1002"]);
    call(&mut h, "1002", "dnd-vm");
    assert!(rung(&h).is_empty());
    assert_eq!(
        caller_final(&h).map(|r| r.status),
        Some(200),
        "voicemail answers"
    );
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(h.engine.vm_reason(id), engine::hunt::VmReason::Busy);
    let played = prompts_played(&h);
    assert!(
        played.contains(&"vm-is-busy".to_string()),
        "the busy greeting: {played:?}"
    );
    assert!(!played.contains(&"vm-is-unavailable".to_string()));
}

/// Prompt ids of every Play the engine asked for so far.
fn prompts_played(h: &Harness) -> Vec<String> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            engine::media::MediaCommand::Play { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .filter_map(|i| match i {
            engine::media::PlayItem::Prompt { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn follow_me_rings_the_desk_then_the_list_together() {
    let mut snap = snap_with(Vec::new());
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            no_answer_s: 8,
            follow_me: vec!["1003".into(), "1004".into()],
            follow_me_together: true,
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap, &["1002", "1003", "1004"]);
    call(&mut h, "1002", "follow");
    assert_eq!(rung(&h), ["1002"]);
    h.reply(&invite_to(&h, "1002"), 180, "t2", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(8_300));
    let mut r = rung(&h);
    r.sort();
    assert_eq!(r, ["1003", "1004"]);
    answer_and_hang_up(&mut h, "1004");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].callee, "1004");
}

#[test]
fn forwarding_loops_ring_the_first_extension_and_hops_are_limited() {
    let mut snap = snap_with(vec![(
        "loop",
        Strategy::Simultaneous,
        &["1003"],
        "group:loop",
    )]);
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            always: "1004".into(),
            ..Forwarding::default()
        },
    );
    snap.apps.hunt.forwarding.insert(
        4,
        Forwarding {
            always: "ext:1002".into(),
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap, &["1002", "1004"]);
    call(&mut h, "1002", "loop-fwd");
    assert_eq!(rung(&h), ["1002"], "A→B→A rings A");
    h.engine.hangup(h.engine.calls(h.now)[0].id, h.now);
    h.drain();
    // A group whose only member is unregistered and whose no-answer destination is itself.
    h.sent.clear();
    call(&mut h, "600", "loop-group");
    assert_eq!(caller_final(&h).map(|r| r.status), Some(482));
}

#[test]
fn forward_to_an_outside_number_obeys_the_forwarding_extensions_class_of_service() {
    let mut snap = snap_with(Vec::new());
    national_route(&mut snap);
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            always: "00312345678".into(),
            ..Forwarding::default()
        },
    );
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".into())) {
        e.cos = CallClass::Internal;
    }
    let mut h = harness(snap.clone(), &["1002"]);
    call(&mut h, "1002", "cos-refused");
    assert_eq!(
        caller_final(&h).map(|r| r.status),
        Some(403),
        "no fraud path"
    );
    // With a national class the same forward is allowed (and fails only for want of a trunk).
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".into())) {
        e.cos = CallClass::National;
    }
    let mut h = harness(snap, &["1002"]);
    call(&mut h, "1002", "cos-allowed");
    assert_eq!(caller_final(&h).map(|r| r.status), Some(503));
}

#[test]
fn outside_group_members_obey_the_groups_class_of_service() {
    const CARRIER: &str = "203.0.113.10:5060";
    let mut snap = snap_with(vec![(
        "sales",
        Strategy::Sequential,
        &["00312345678", "1002"],
        "hangup",
    )]);
    carrier(&mut snap, CARRIER, None);
    let trunk_invites = |h: &Harness| {
        h.requests("INVITE")
            .iter()
            .filter(|s| s.to.to_string() == CARRIER)
            .count()
    };
    // The group's class is internal: the outside member is refused and 1002 rings at once.
    let mut h = harness(snap.clone(), &["1002"]);
    call(&mut h, "600", "grp-cos-internal");
    assert_eq!(rung(&h), ["1002"]);
    assert_eq!(trunk_invites(&h), 0);
    // National: the outside member rings first, through the trunk.
    if let Some(g) = snap.apps.hunt.groups.get_mut(&(1, "sales".into())) {
        g.spec.cos = CallClass::National;
    }
    let mut h = harness(snap, &["1002"]);
    call(&mut h, "600", "grp-cos-national");
    assert!(rung(&h).is_empty(), "1002 waits for its turn");
    assert_eq!(trunk_invites(&h), 1);
    let inv = h
        .requests("INVITE")
        .into_iter()
        .find(|s| s.to.to_string() == CARRIER)
        .expect("trunk INVITE");
    assert!(
        inv.request().uri.to_string().contains("0312345678"),
        "{}",
        inv.request().uri
    );
}

#[test]
fn voicemail_destinations_carry_the_reason() {
    let mut snap = snap_with(vec![(
        "sales",
        Strategy::Simultaneous,
        &["1002"],
        "vm:1005",
    )]);
    snap.apps.hunt.forwarding.insert(
        3,
        Forwarding {
            busy: "vm:1003".into(),
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap, &["1002", "1003"]);
    // Nobody answers the group: its mailbox destination, reason unavailable.
    call(&mut h, "600", "vm-noanswer");
    h.reply(&invite_to(&h, "1002"), 180, "t2", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(40_300));
    assert_eq!(
        caller_final(&h).map(|r| r.status),
        Some(200),
        "voicemail answers"
    );
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(h.engine.vm_reason(id), engine::hunt::VmReason::Unavailable);
    let played = prompts_played(&h);
    assert!(
        played.contains(&"vm-is-unavailable".to_string()),
        "{played:?}"
    );
    h.media_log.clear();
    h.engine.hangup(id, h.now);
    h.drain();
    // Busy: the busy forward's mailbox, reason busy.
    h.sent.clear();
    call(&mut h, "1003", "vm-busy");
    let inv = invite_to(&h, "1003");
    h.sent.clear();
    h.reply(&inv, 486, "t3", &phone("1003"), SEG1);
    assert_eq!(caller_final(&h).map(|r| r.status), Some(200));
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(h.engine.vm_reason(id), engine::hunt::VmReason::Busy);
    let played = prompts_played(&h);
    assert!(
        played.contains(&"vm-is-busy".to_string()),
        "the busy greeting: {played:?}"
    );
    assert!(!played.contains(&"vm-is-unavailable".to_string()));
}

// ---- Call history events of hunts, forwards and DND; Diversion on forwarded trunk calls ----

/// The events stored for the caller's call `cid`: (kind, by, to, status).
fn history(h: &Harness, cid: &str) -> Vec<(String, String, String, u16)> {
    h.call_events
        .iter()
        .filter(|(_, c, _)| c == cid)
        .flat_map(|(_, _, ev)| ev.iter())
        .map(|e| (e.kind.to_string(), e.by.clone(), e.to.clone(), e.status))
        .collect()
}

fn ev(kind: &str, by: &str, to: &str, status: u16) -> (String, String, String, u16) {
    (kind.into(), by.into(), to.into(), status)
}

#[test]
fn a_hunted_call_keeps_its_steps_in_order_beside_its_one_record() {
    let snap = snap_with(vec![(
        "sales",
        Strategy::Sequential,
        &["1005", "1002", "1003", "1004"],
        "hangup",
    )]);
    // 1005 is not registered.
    let mut h = harness(snap, &["1002", "1003", "1004"]);
    call(&mut h, "600", "hist-seq");
    let inv = invite_to(&h, "1002");
    h.sent.clear();
    h.reply(&inv, 486, "t2", &phone("1002"), SEG1);
    let inv3 = invite_to(&h, "1003");
    h.reply(&inv3, 180, "t3", &phone("1003"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(10_300));
    h.reply(&inv3, 487, "t3", &phone("1003"), SEG1);
    answer_and_hang_up(&mut h, "1004");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(
        history(&h, "hist-seq"),
        vec![
            ev("skipped", "sales", "1005", 480),
            ev("hunt", "sales", "1002", 180),
            ev("failed", "sales", "1002", 486),
            ev("hunt", "sales", "1003", 180),
            ev("no_answer", "sales", "1003", 480),
            ev("hunt", "sales", "1004", 180),
            ev("answered", "sales", "1004", 200),
        ]
    );
}

#[test]
fn forwards_and_dnd_are_in_the_call_history() {
    let mut snap = snap_with(Vec::new());
    // 1002: no answer → 1003; 1003: busy → voicemail. 1004: DND (busy treatment).
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            no_answer: "1003".into(),
            no_answer_s: 5,
            ..Forwarding::default()
        },
    );
    snap.apps.hunt.forwarding.insert(
        3,
        Forwarding {
            busy: "vm:1003".into(),
            ..Forwarding::default()
        },
    );
    snap.apps.hunt.forwarding.insert(
        4,
        Forwarding {
            dnd: true,
            ..Forwarding::default()
        },
    );
    let mut h = harness(snap, &["1002", "1003", "1004"]);
    call(&mut h, "1002", "hist-fwd");
    let inv2 = invite_to(&h, "1002");
    h.reply(&inv2, 180, "t2", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_millis(5_300));
    h.reply(&inv2, 487, "t2", &phone("1002"), SEG1);
    let inv = invite_to(&h, "1003");
    h.reply(&inv, 486, "t3", &phone("1003"), SEG1);
    assert_eq!(
        caller_final(&h).map(|r| r.status),
        Some(200),
        "voicemail answers"
    );
    let id = h.engine.calls(h.now)[0].id;
    assert!(h.engine.hangup(id, h.now));
    h.drain();
    assert_eq!(
        history(&h, "hist-fwd"),
        vec![
            ev("hunt", "1002", "1002", 180),
            ev("no_answer", "1002", "1002", 480),
            ev("forward_no_answer", "1002", "1003", 302),
            ev("hunt", "1003", "1003", 180),
            ev("failed", "1003", "1003", 486),
            ev("forward_busy", "1003", "vm:1003", 302),
        ]
    );
    call(&mut h, "1004", "hist-dnd");
    assert_eq!(caller_final(&h).map(|r| r.status), Some(486));
    assert_eq!(
        history(&h, "hist-dnd"),
        vec![ev("dnd", "1004", "1004", 486)]
    );
}

#[test]
fn a_call_forwarded_out_through_a_trunk_carries_a_diversion_header() {
    const CARRIER: &str = "203.0.113.10:5060";
    let mut snap = snap_with(Vec::new());
    carrier(&mut snap, CARRIER, Some("sip.carrier.example"));
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            busy: "00312345678".into(),
            ..Forwarding::default()
        },
    );
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".into())) {
        e.cos = CallClass::National;
    }
    let mut h = harness(snap, &["1002"]);
    call(&mut h, "1002", "div-busy");
    h.reply(&invite_to(&h, "1002"), 486, "t2", &phone("1002"), SEG1);
    let inv = h
        .requests("INVITE")
        .into_iter()
        .find(|s| s.to.to_string() == CARRIER)
        .expect("the forward goes out through the trunk");
    let div = inv
        .request()
        .headers
        .get(&sip::HeaderName::from_bytes(b"Diversion"))
        .map(|v| v.as_str().to_string())
        .expect("a Diversion header");
    assert_eq!(
        div,
        "<sip:1002@sip.carrier.example>;reason=user-busy;counter=1"
    );
    // A call the caller dialled out itself carries none.
    call(&mut h, "00312345678", "no-div");
    let plain = h
        .requests("INVITE")
        .into_iter()
        .filter(|s| s.to.to_string() == CARRIER)
        .last()
        .expect("trunk INVITE");
    assert!(
        plain
            .request()
            .headers
            .get(&sip::HeaderName::from_bytes(b"Diversion"))
            .is_none()
    );
}

#[test]
fn a_forward_refused_by_class_of_service_still_leaves_its_history() {
    let mut snap = snap_with(Vec::new());
    national_route(&mut snap);
    snap.apps.hunt.forwarding.insert(
        2,
        Forwarding {
            always: "00312345678".into(),
            ..Forwarding::default()
        },
    );
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".into())) {
        e.cos = CallClass::Internal;
    }
    let mut h = harness(snap, &["1002"]);
    call(&mut h, "1002", "hist-refused");
    assert_eq!(caller_final(&h).map(|r| r.status), Some(403));
    assert_eq!(
        history(&h, "hist-refused"),
        vec![ev("forward_always", "1002", "00312345678", 302)]
    );
}
