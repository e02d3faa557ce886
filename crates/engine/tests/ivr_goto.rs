//! IVR options to every destination kind, on a fake clock (issue 14 §4): a ring group run
//! with its own plan (strategy, ring times, skips, caller-ID prefix, no-answer destination)
//! while the caller stays on its endpoint; an extension chosen in a menu following its
//! forwarding, DND, follow-me and voicemail rules like a dialled call; outside numbers with
//! the menu's class of service; the main voicemail number; park; page.

mod common;

use std::time::Duration;

use apps::ivr::MenuSpec;
use common::*;
use engine::config::{IvrEntry, Snapshot};
use engine::db::{Direction, Disposition};
use engine::dialplan::Destination;
use engine::hunt::{DndMode, Forwarding, GroupEntry, GroupSpec, Member, Strategy};
use engine::media::EndpointId;
use engine::outside::CallClass;
use sip::Response;

const CALLER: &str = "192.0.2.21:5060";
const CARRIER: &str = "203.0.113.10:5060";

/// The phone of extension `n` (1002 → 192.0.2.102).
fn phone(n: &str) -> String {
    format!(
        "192.0.2.{}:5060",
        100 + n[2..].parse::<u16>().expect("number")
    )
}

/// Menu `main` (number 500): 1 group:sales, 2 ext:1002, 3 voicemail, 5 page:all, 7 park,
/// 9 the outside number 00312345678; dial-by-extension off; class of service `cos`.
fn menu(cos: &str) -> MenuSpec {
    let mut m = MenuSpec {
        greeting: "main-greeting".into(),
        fallback: "hangup".into(),
        retries: 1,
        cos: cos.into(),
        ..MenuSpec::default()
    };
    for (k, v) in [
        ('1', "group:sales"),
        ('2', "ext:1002"),
        ('3', "voicemail"),
        ('5', "page:all"),
        ('7', "park"),
        ('9', "00312345678"),
    ] {
        m.options.insert(k, v.into());
    }
    m
}

fn group(strategy: Strategy, members: &[&str], no_answer: &str) -> GroupEntry {
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
            no_answer: no_answer.into(),
            cid_prefix: "Sales".into(),
            cos: CallClass::Internal,
        },
        last: String::new(),
    }
}

/// Extensions 1001-1006, menu `main` with class `cos`, ring group `sales` (`g`), a trunk for
/// national numbers; `f` changes the snapshot last. 1001 (the caller), 1002, 1004 and 1005
/// are registered; 1003 and 1006 are not.
fn setup(cos: &str, g: GroupEntry, f: impl FnOnce(&mut Snapshot)) -> Harness {
    let mut snap = snapshot();
    for (id, n) in [(4, "1004"), (5, "1005"), (6, "1006")] {
        snap.extensions.insert((1, n.to_string()), ext(id, n, 3));
    }
    snap.apps = engine::config::Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: menu(cos),
    }]);
    snap.apps
        .numbers
        .insert((1, "600".into()), Destination::Group("sales".into()));
    snap.apps.hunt.groups.insert((1, "sales".into()), g);
    snap.outside = national_outside("0|0ZXXXXXXXX", ("carrier", Some((CARRIER, "carrier-pw"))));
    f(&mut snap);
    let mut h = Harness::with(snap);
    let c = format!("<sip:1001@{CALLER}>");
    assert_eq!(
        h.register("1001", Some(&c), Some(3600), CALLER, SEG1)
            .status,
        200
    );
    for n in ["1002", "1004", "1005"] {
        let at = phone(n);
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), &at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

/// [`setup`] with extension `id` forwarding as `f` (group `sales` rings 1002 only).
fn with_forwarding(id: i64, f: Forwarding) -> Harness {
    with_forwarding_and(id, f, |_| {})
}

fn with_forwarding_and(id: i64, f: Forwarding, g: impl FnOnce(&mut Snapshot)) -> Harness {
    setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        move |s| {
            s.apps.hunt.forwarding.insert(id, f);
            g(s);
        },
    )
}

/// 1001 calls the menu and the greeting ends; the caller's endpoint and the 200.
fn call_menu(h: &mut Harness, call_id: &str) -> (EndpointId, Response) {
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let ok = h.final_invite_response(CALLER).expect("answered");
    assert_eq!(ok.status, 200, "the menu answers");
    let ep = h.opened_endpoints()[0];
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let ack = format!(
        "ACK {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack-{call_id}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.from().expect("From"),
        ok.to().expect("To")
    );
    h.recv_raw(&ack, CALLER, SEG1);
    h.end_play(ep);
    h.sent.clear();
    (ep, ok)
}

fn last_play(h: &Harness, ep: EndpointId) -> String {
    h.plays_on(ep).pop().unwrap_or_default()
}

/// The INVITEs sent since `h.sent` was cleared, retransmissions left out.
fn invites(h: &Harness) -> Vec<(String, sip::Request)> {
    let mut seen = Vec::new();
    h.requests("INVITE")
        .into_iter()
        .filter(|s| {
            let key = s.request().call_id().map(str::to_string);
            let new = !seen.contains(&key);
            seen.push(key);
            new
        })
        .map(|s| (s.to.to_string(), s.request().clone()))
        .collect()
}

fn from_display(r: &sip::Request) -> String {
    r.headers
        .get(&sip::HeaderName::From)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn events(h: &Harness) -> Vec<(String, String, String)> {
    h.call_events
        .iter()
        .flat_map(|(_, _, es)| es.iter())
        .map(|e| (e.kind.to_string(), e.by.clone(), e.to.clone()))
        .collect()
}

#[test]
fn a_ring_group_option_rings_the_members_with_the_prefix_and_bridges_who_answers() {
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002", "1003", "1004"], "hangup"),
        |_| {},
    );
    let (a_ep, ok) = call_menu(&mut h, "grp-1");
    h.keys(a_ep, "1");
    let inv = invites(&h);
    let to: Vec<&str> = inv.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        to,
        [phone("1002").as_str(), phone("1004").as_str()],
        "the members that can ring, together (1003 is not registered)"
    );
    for (_, r) in &inv {
        assert!(
            from_display(r).contains("Sales: "),
            "caller-ID prefix: {}",
            from_display(r)
        );
    }
    assert_eq!(
        last_play(&h, a_ep),
        "tone:Ringback",
        "the caller hears ringback"
    );
    assert_eq!(h.engine.active_calls(), 1, "still one call");
    // Both ring; 1004 answers: bridged on endpoints; 1002 is cancelled.
    h.reply(&inv[0].1, 180, "b1002", &phone("1002"), SEG1);
    h.reply(&inv[1].1, 180, "b1004", &phone("1004"), SEG1);
    let r1004 = inv[1].1.clone();
    h.sent.clear();
    h.reply(&r1004, 200, "b1004", &phone("1004"), SEG1);
    assert!(h.joined_endpoints().contains(&a_ep));
    assert_eq!(
        h.requests("CANCEL")
            .iter()
            .map(|s| s.to.to_string())
            .collect::<Vec<_>>(),
        [phone("1002")]
    );
    // The caller hangs up: one record naming the member who answered, with the group's events.
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-bye-grp\r\nMax-Forwards: 70\r\nFrom: <sip:1001@denwa>;tag=a-grp-1\r\nTo: {}\r\nCall-ID: grp-1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
        ok.to().expect("To")
    );
    h.recv_raw(&bye, CALLER, SEG1);
    assert_eq!(h.engine.active_calls(), 0);
    let cdr = h.cdrs.last().expect("record");
    assert_eq!(cdr.callee, "1004");
    assert_eq!(cdr.disposition, Disposition::Answered);
    let ev = events(&h);
    assert!(
        ev.contains(&("skipped".into(), "sales".into(), "1003".into())),
        "{ev:?}"
    );
    assert!(
        ev.contains(&("hunt".into(), "sales".into(), "1004".into())),
        "{ev:?}"
    );
    assert!(
        ev.contains(&("answered".into(), "sales".into(), "1004".into())),
        "{ev:?}"
    );
    assert!(h.endpoints.is_empty(), "every endpoint closed");
}

#[test]
fn a_sequential_group_steps_through_its_members_then_its_no_answer_destination() {
    let mut h = setup(
        "",
        group(Strategy::Sequential, &["1002", "1004"], "vm:1005"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "grp-2");
    h.keys(a_ep, "1");
    assert_eq!(
        invites(&h)
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>(),
        [phone("1002")]
    );
    // 1002 is busy: the next member at once.
    let r = invites(&h)[0].1.clone();
    h.sent.clear();
    h.reply(&r, 486, "b1002", &phone("1002"), SEG1);
    assert_eq!(
        invites(&h)
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>(),
        [phone("1004")]
    );
    // 1004 rings out after its 10 s: the group's no-answer destination, 1005's mailbox.
    let r = invites(&h)[0].1.clone();
    h.reply(&r, 180, "b1004", &phone("1004"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(10));
    assert_eq!(h.requests("CANCEL").len(), 1, "1004 stops ringing");
    assert!(invites(&h).is_empty(), "no member left to ring");
    let greeting = last_play(&h, a_ep);
    assert!(
        greeting.contains("vm-is-unavailable") && greeting.ends_with("vm-leave-message"),
        "1005's unavailable greeting: {greeting}"
    );
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn a_group_nobody_answers_with_hangup_says_unavailable_and_the_menu_returns() {
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "grp-3");
    h.keys(a_ep, "1");
    let inv = invites(&h);
    assert_eq!(inv.len(), 1);
    h.reply(&inv[0].1, 180, "b1002", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(40));
    assert_eq!(last_play(&h, a_ep), "ext-unavailable");
    h.end_play(a_ep);
    assert_eq!(last_play(&h, a_ep), "main-greeting", "back in the menu");
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn an_extension_forwarding_busy_to_its_voicemail_plays_the_busy_greeting() {
    let mut h = with_forwarding(
        2,
        Forwarding {
            busy: "vm:1002".into(),
            no_answer: "vm:1002".into(),
            ..Forwarding::default()
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "fwd-1");
    h.keys(a_ep, "2");
    let inv = invites(&h);
    assert_eq!(inv.len(), 1, "the desk phone rings first");
    h.reply(&inv[0].1, 486, "b1002", &phone("1002"), SEG1);
    let greeting = last_play(&h, a_ep);
    assert!(
        greeting.contains("vm-is-busy"),
        "the busy greeting: {greeting}"
    );
    assert!(h.engine.active_calls() == 1);
    let ev = events_now(&mut h);
    assert!(ev.iter().any(|(k, _, _)| k == "forward_busy"), "{ev:?}");
}

/// The events of calls in progress are stored only when they end: end them.
fn events_now(h: &mut Harness) -> Vec<(String, String, String)> {
    h.engine.end_all_calls(h.now);
    h.drain();
    events(h)
}

#[test]
fn an_extension_not_answering_goes_to_its_no_answer_forward_voicemail_unavailable() {
    let mut h = with_forwarding(
        2,
        Forwarding {
            no_answer: "vm:1002".into(),
            no_answer_s: 8,
            ..Forwarding::default()
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "fwd-2");
    h.keys(a_ep, "2");
    let inv = invites(&h);
    assert_eq!(inv.len(), 1);
    h.reply(&inv[0].1, 180, "b1002", &phone("1002"), SEG1);
    h.advance(Duration::from_secs(8));
    let greeting = last_play(&h, a_ep);
    assert!(
        greeting.contains("vm-is-unavailable"),
        "the unavailable greeting after its own ring time: {greeting}"
    );
    // The cancelled phone's 487 arrives late: the caller stays with the mailbox.
    h.reply(&inv[0].1, 487, "b1002", &phone("1002"), SEG1);
    assert_eq!(last_play(&h, a_ep), greeting, "{:?}", h.plays_on(a_ep));
}

#[test]
fn dnd_sends_a_menu_caller_to_voicemail_or_back_to_the_menu() {
    let mut h = with_forwarding(
        2,
        Forwarding {
            dnd: true,
            dnd_mode: DndMode::Voicemail,
            ..Forwarding::default()
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "dnd-1");
    h.keys(a_ep, "2");
    assert!(invites(&h).is_empty(), "DND: the phone does not ring");
    assert!(last_play(&h, a_ep).contains("vm-is-busy"));
    // DND as busy: "unavailable", then the menu.
    let mut h = with_forwarding(
        2,
        Forwarding {
            dnd: true,
            dnd_mode: DndMode::Busy,
            ..Forwarding::default()
        },
    );
    let (b_ep, _ok) = call_menu(&mut h, "dnd-2");
    h.keys(b_ep, "2");
    assert!(invites(&h).is_empty());
    assert_eq!(last_play(&h, b_ep), "ext-unavailable");
    h.end_play(b_ep);
    assert_eq!(last_play(&h, b_ep), "main-greeting");
}

#[test]
fn forward_always_unreachable_and_follow_me_are_followed() {
    // Always: 1002 → 1004.
    let mut h = with_forwarding(
        2,
        Forwarding {
            always: "1004".into(),
            ..Forwarding::default()
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "fwd-3");
    h.keys(a_ep, "2");
    assert_eq!(
        invites(&h)
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>(),
        [phone("1004")]
    );
    // Unreachable: the menu's extension 1003 is not registered → 1005. Dial-by-extension.
    let mut h = with_forwarding_and(
        3,
        Forwarding {
            unreachable: "ext:1005".into(),
            ..Forwarding::default()
        },
        |s| {
            if let Some(m) = s.apps.ivrs.get_mut(&(1, "main".into())) {
                m.spec.options.insert('4', "ext:1003".into());
            }
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "fwd-4");
    h.keys(a_ep, "4");
    assert_eq!(
        invites(&h)
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>(),
        [phone("1005")]
    );
    // Follow-me: the desk for 5 s, then 1004 and 1005 together.
    let mut h = with_forwarding(
        2,
        Forwarding {
            no_answer_s: 5,
            follow_me: vec!["1004".into(), "1005".into()],
            follow_me_together: true,
            ..Forwarding::default()
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "fwd-5");
    h.keys(a_ep, "2");
    let inv = invites(&h);
    assert_eq!(inv.len(), 1);
    h.reply(&inv[0].1, 180, "b1002", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(5));
    let mut to: Vec<String> = invites(&h).into_iter().map(|(t, _)| t).collect();
    to.sort();
    assert_eq!(to, [phone("1004"), phone("1005")]);
}

#[test]
fn an_outside_number_option_goes_out_with_the_menus_class_and_the_main_number() {
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "out-1");
    h.keys(a_ep, "9");
    let inv = invites(&h);
    assert_eq!(inv.len(), 1, "one trunk call: {:?}", h.sent);
    assert_eq!(inv[0].0, CARRIER);
    let r = &inv[0].1;
    assert!(
        r.uri.to_string().contains("0312345678"),
        "the number as the route sends it: {}",
        r.uri
    );
    assert!(
        from_display(r).contains("0312340000"),
        "the tenant's main number: {}",
        from_display(r)
    );
    assert_eq!(last_play(&h, a_ep), "tone:Ringback");
    let inv0 = r.clone();
    h.reply(&inv0, 200, "far", CARRIER, SEG1);
    assert!(h.joined_endpoints().contains(&a_ep), "bridged");
    h.engine.end_all_calls(h.now);
    h.drain();
    let cdr = h.cdrs.last().expect("record");
    assert_eq!(cdr.route.direction, Direction::Outbound);
    assert_eq!(cdr.caller, "1001", "the caller stays the record's caller");
}

#[test]
fn an_outside_number_the_menus_class_forbids_says_unavailable_and_the_menu_returns() {
    let mut h = setup(
        "internal",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "out-2");
    h.keys(a_ep, "9");
    assert!(invites(&h).is_empty(), "no trunk call");
    assert_eq!(last_play(&h, a_ep), "ext-unavailable");
    h.end_play(a_ep);
    assert_eq!(last_play(&h, a_ep), "main-greeting");
    // A far end that is busy: the same.
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "out-3");
    h.keys(a_ep, "9");
    let inv = invites(&h);
    h.reply(&inv[0].1, 486, "far", CARRIER, SEG1);
    assert_eq!(last_play(&h, a_ep), "ext-unavailable");
    h.end_play(a_ep);
    assert_eq!(last_play(&h, a_ep), "main-greeting");
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn a_group_member_that_is_an_outside_number_is_called_through_the_trunk() {
    let mut h = setup(
        "",
        group(Strategy::Sequential, &["1002", "00312345678"], "hangup"),
        |s| {
            if let Some(g) = s.apps.hunt.groups.get_mut(&(1, "sales".into())) {
                g.spec.cos = CallClass::National;
            }
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "grp-out");
    h.keys(a_ep, "1");
    let inv = invites(&h);
    assert_eq!(inv[0].0, phone("1002"));
    h.reply(&inv[0].1, 180, "b1002", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(10));
    let inv = invites(&h);
    assert_eq!(
        inv.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        [CARRIER]
    );
    // The trunk refuses: nothing is left, the menu again.
    h.reply(&inv[0].1, 503, "far", CARRIER, SEG1);
    assert_eq!(last_play(&h, a_ep), "ext-unavailable");
}

#[test]
fn the_main_voicemail_number_option_asks_for_the_box() {
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "vm-main");
    h.keys(a_ep, "3");
    assert_eq!(last_play(&h, a_ep), "vm-enter-mailbox");
}

#[test]
fn the_park_option_parks_the_caller_and_announces_the_slot() {
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |_| {},
    );
    let (a_ep, _ok) = call_menu(&mut h, "park-1");
    h.keys(a_ep, "7");
    assert!(
        h.park_rows.contains_key(&(1, 701)),
        "slot 701 stored: {:?}",
        h.park_ops
    );
    let said = last_play(&h, a_ep);
    assert!(said.starts_with("park-parked-on"), "slot announced: {said}");
    // 1002 takes it back by dialling the slot.
    h.end_play(a_ep);
    assert!(last_play(&h, a_ep).starts_with("moh:"), "then hold music");
}

#[test]
fn the_page_option_pages_the_group_members() {
    let mut h = setup(
        "",
        group(Strategy::Simultaneous, &["1002"], "hangup"),
        |s| {
            s.apps.pages.insert(
                (1, "all".into()),
                engine::page::PageGroup::new("all", vec!["1002".into(), "1004".into()]),
            );
        },
    );
    let (a_ep, _ok) = call_menu(&mut h, "page-1");
    h.keys(a_ep, "5");
    let mut to: Vec<String> = invites(&h).into_iter().map(|(t, _)| t).collect();
    to.sort();
    assert_eq!(to, [phone("1002"), phone("1004")], "every member paged");
    assert!(
        h.joined_endpoints().contains(&a_ep),
        "the caller speaks into the page"
    );
}

#[test]
fn a_time_condition_option_leads_to_a_group_by_day_and_a_mailbox_by_night() {
    use engine::timecond::{Mode, TimeCondSpec};
    for (mode, day) in [(Mode::Day, true), (Mode::Night, false)] {
        let mut h = setup(
            "",
            group(Strategy::Simultaneous, &["1002"], "hangup"),
            |s| {
                let office = TimeCondSpec {
                    weekly: vec![],
                    dates: vec![],
                    use_holidays: false,
                    matched: "group:sales".into(),
                    unmatched: "vm:1004".into(),
                };
                let office = office.build("office", 1, mode).expect("valid");
                s.codes.timeconds.insert((1, "office".into()), office);
                if let Some(m) = s.apps.ivrs.get_mut(&(1, "main".into())) {
                    m.spec.options.insert('8', "timecond:office".into());
                }
            },
        );
        let (a_ep, _ok) = call_menu(&mut h, "tc");
        h.keys(a_ep, "8");
        if day {
            assert_eq!(
                invites(&h)
                    .iter()
                    .map(|(t, _)| t.clone())
                    .collect::<Vec<_>>(),
                [phone("1002")],
                "open: the group rings"
            );
        } else {
            assert!(invites(&h).is_empty());
            assert!(
                last_play(&h, a_ep).contains("vm-is-unavailable"),
                "closed: 1004's mailbox"
            );
        }
    }
}

/// The `Diversion` header of the trunk INVITE sent last, if any.
fn last_trunk_diversion(h: &Harness) -> Option<String> {
    let inv = invites(h)
        .into_iter()
        .filter(|(t, _)| t == CARRIER)
        .last()
        .expect("a trunk INVITE")
        .1;
    inv.headers
        .get(&sip::HeaderName::from_bytes(b"Diversion"))
        .map(|v| v.as_str().to_string())
}

/// 1002 may call national numbers and forwards as `f`; 1001 calls the menu.
fn national_1002_forwarding(f: Forwarding, call_id: &str) -> (Harness, EndpointId) {
    let mut h = with_forwarding_and(2, f, |s| {
        if let Some(e) = s.extensions.get_mut(&(1, "1002".into())) {
            e.cos = CallClass::National;
        }
    });
    let (a_ep, _ok) = call_menu(&mut h, call_id);
    (h, a_ep)
}

#[test]
fn a_menu_choice_forwarded_to_an_outside_number_names_the_extension_in_diversion() {
    // Always: straight out through the trunk, reason unconditional.
    let (mut h, a_ep) = national_1002_forwarding(
        Forwarding {
            always: "00312345678".into(),
            ..Forwarding::default()
        },
        "div-1",
    );
    h.keys(a_ep, "2");
    let div = last_trunk_diversion(&h).expect("a Diversion header");
    assert!(
        div.starts_with("<sip:1002@") && div.ends_with(";reason=unconditional;counter=1"),
        "{div}"
    );
    // Busy: the desk refuses, the forward goes out with reason user-busy.
    let (mut h, a_ep) = national_1002_forwarding(
        Forwarding {
            busy: "00312345678".into(),
            ..Forwarding::default()
        },
        "div-2",
    );
    h.keys(a_ep, "2");
    let desk = invites(&h).pop().expect("1002 rings").1;
    h.sent.clear();
    h.reply(&desk, 486, "b1002", &phone("1002"), SEG1);
    let div = last_trunk_diversion(&h).expect("a Diversion header");
    assert!(div.ends_with(";reason=user-busy;counter=1"), "{div}");
    // Follow-me to a mobile after 5 s: reason follow-me.
    let (mut h, a_ep) = national_1002_forwarding(
        Forwarding {
            no_answer_s: 5,
            follow_me: vec!["00312345678".into()],
            ..Forwarding::default()
        },
        "div-3",
    );
    h.keys(a_ep, "2");
    let desk = invites(&h).pop().expect("1002 rings").1;
    h.reply(&desk, 180, "b1002", &phone("1002"), SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(5));
    let div = last_trunk_diversion(&h).expect("a Diversion header");
    assert!(div.contains(";reason=follow-me;"), "{div}");
    // The menu's own outside option is no forward: no Diversion.
    let (mut h, a_ep) = national_1002_forwarding(Forwarding::default(), "div-4");
    h.keys(a_ep, "9");
    assert_eq!(last_trunk_diversion(&h), None);
}
