//! Intercom on a fake clock: `*80` + extension rings every contact of that extension with the
//! auto-answer headers (and ignores its forwarding), audio is relayed both ways once answered,
//! and the call is refused for DND, another tenant's extension, an unknown number, the caller
//! itself and an unregistered target. A plain call carries no auto-answer headers.
//!
//! Page groups: every phone of every member rings at once with the headers and our
//! endpoint's offer, answered phones join the page's bridge muted (one-way), nobody is cancelled when one
//! answers; busy and DND members are skipped unless the group barges; a phone that does not
//! answer in time is cancelled; a member hanging up leaves the others; the pager hanging up or
//! the longest time ends everything; one record with an event per answered phone.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use engine::db::{Disposition, HangupBy};
use engine::dialplan::Destination;
use engine::hunt::Forwarding;
use engine::media::{EndpointId, MediaCommand, PlayItem, Side, ToneKind};
use engine::page::PageGroup;
use sip::{Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";
const SOFT: &str = "198.51.100.22:5060";

/// 1001 at CALLER; 1002 with a desk phone on segment 1 and a softphone on segment 2;
/// tenant 2 has extension 1004 (id 40); `snap` edits the configuration first.
fn setup(edit: impl FnOnce(&mut engine::Snapshot)) -> Harness {
    let mut snap = snapshot();
    snap.extensions
        .insert((2, "1004".into()), ext(40, "1004", 1));
    edit(&mut snap);
    let mut h = Harness::with(snap);
    for (number, contact, at, seg) in [
        ("1001", "<sip:1001@192.0.2.21:5060>", CALLER, SEG1),
        ("1002", "<sip:1002@192.0.2.22:5060>", DESK, SEG1),
        ("1002", "<sip:1002@198.51.100.22:5060>", SOFT, SEG2),
    ] {
        assert_eq!(
            h.register(number, Some(contact), Some(3600), at, seg)
                .status,
            200
        );
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

fn dial(h: &mut Harness, to: &str, call_id: &str) -> Vec<Sent> {
    h.dial(&Dial {
        from: "1001",
        to,
        source: CALLER,
        local: SEG1,
        call_id,
    })
}

fn invites(out: &[Sent]) -> Vec<Sent> {
    out.iter()
        .filter(|s| matches!(&s.message, Message::Request(r) if r.method.as_str() == "INVITE"))
        .cloned()
        .collect()
}

fn header(r: &Request, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
        .collect()
}

/// Dials `to` and expects a refusal: returns (status, reason).
fn refused(h: &mut Harness, to: &str, call_id: &str) -> (u16, String) {
    h.sent = dial(h, to, call_id);
    assert!(invites(&h.sent).is_empty(), "nothing rings for {to}");
    let r = h.last_response();
    (r.status, r.reason.to_string())
}

#[test]
fn intercom_rings_every_contact_with_auto_answer_headers_and_talks_both_ways() {
    let mut h = setup(|s| {
        // Forwarding does not divert an intercom.
        s.apps.hunt.forwarding.insert(
            2,
            Forwarding {
                always: "1003".into(),
                ..Forwarding::default()
            },
        );
    });
    let out = dial(&mut h, "*801002", "ic-1");
    let forks = invites(&out);
    let mut to: Vec<String> = forks.iter().map(|s| s.to.to_string()).collect();
    to.sort();
    assert_eq!(to, vec![DESK.to_string(), SOFT.to_string()], "{out:?}");
    for f in &forks {
        let r = f.request();
        assert_eq!(
            header(r, "Call-Info"),
            vec!["<sip:example.com>;answer-after=0".to_string()]
        );
        assert_eq!(
            header(r, "Alert-Info"),
            vec!["<http://127.0.0.1>;info=alert-autoanswer;delay=0".to_string()]
        );
        assert_eq!(header(r, "Answer-Mode"), vec!["Auto".to_string()]);
        assert!(
            r.to().expect("To").to_string().contains("sip:1002@"),
            "the INVITE names the target, not the code"
        );
    }
    // The desk phone answers by itself: the caller is answered, the softphone cancelled.
    let desk = forks
        .iter()
        .find(|s| s.to.to_string() == DESK)
        .expect("desk fork");
    let soft = forks
        .iter()
        .find(|s| s.to.to_string() == SOFT)
        .expect("soft fork");
    h.reply(soft.request(), 180, "soft", SOFT, SEG2);
    h.sent.clear();
    h.media_log.clear();
    h.reply(desk.request(), 200, "desk", DESK, SEG1);
    let ok = h.last_response();
    assert_eq!(ok.status, 200);
    assert!(
        h.requests("CANCEL")
            .iter()
            .any(|c| c.to.to_string() == SOFT)
    );
    // Two-way: the relay learnt where both parties send and listen.
    let b = remote_of(&h.media_log, Side::B);
    assert!(
        !b.is_empty(),
        "the callee's media address is set: {:?}",
        h.media_log
    );
    assert!(
        h.media_log
            .iter()
            .all(|c| !matches!(c, MediaCommand::OpenEndpoint { .. })),
        "relayed, not terminated on an endpoint"
    );
    // The caller hangs up: one record, caller → 1002.
    h.advance(Duration::from_secs(3));
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-icbye\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-ic-1\r\nTo: {to}\r\nCall-ID: ic-1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = ok.headers.contact().expect("Contact").uri,
        to = ok.to().expect("To"),
    );
    h.sent.clear();
    h.recv_raw(&bye, CALLER, SEG1);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == DESK));
    assert_eq!(h.cdrs.len(), 1);
    let cdr = &h.cdrs[0];
    assert_eq!((cdr.caller.as_str(), cdr.callee.as_str()), ("1001", "1002"));
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hangup_by, HangupBy::Caller);
    assert_eq!(cdr.billsec, 3);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn a_plain_call_carries_no_auto_answer_headers() {
    let mut h = setup(|_| {});
    let forks = invites(&dial(&mut h, "1002", "plain-1"));
    assert_eq!(forks.len(), 2);
    for f in &forks {
        let r = f.request();
        for name in ["Call-Info", "Alert-Info", "Answer-Mode"] {
            assert!(header(r, name).is_empty(), "{name} on a plain call");
        }
    }
}

#[test]
fn intercom_to_a_dnd_extension_is_refused() {
    let mut h = setup(|s| {
        s.apps.hunt.forwarding.insert(
            2,
            Forwarding {
                dnd: true,
                ..Forwarding::default()
            },
        );
    });
    assert_eq!(
        refused(&mut h, "*801002", "ic-dnd"),
        (480, "Do Not Disturb".to_string())
    );
    assert_eq!(h.cdrs.len(), 1, "the attempt has its record");
    assert_eq!(h.cdrs[0].callee, "1002");
    assert_eq!(h.cdrs[0].disposition, Disposition::Failed);
}

#[test]
fn intercom_stays_in_the_tenant_and_refuses_bad_targets() {
    let mut h = setup(|_| {});
    // 1004 exists, but in tenant 2.
    assert_eq!(refused(&mut h, "*801004", "ic-x").0, 404);
    assert_eq!(refused(&mut h, "*809999", "ic-none").0, 404);
    assert_eq!(refused(&mut h, "*80", "ic-empty").0, 404);
    assert_eq!(refused(&mut h, "*801001", "ic-self").0, 403);
    // 1003 exists and is not registered.
    assert_eq!(refused(&mut h, "*801003", "ic-unreg").0, 480);
    assert_eq!(h.engine.active_calls(), 0);
}

// ---------------------------------------------------------------------------------------
// Page groups

const PHONE3: &str = "192.0.2.23:5060";
const PHONE5: &str = "192.0.2.25:5060";

/// Page group `all` (number 600): 1002 (desk + soft), 1003, 1005, and the pager 1001.
fn setup_page(edit: impl FnOnce(&mut engine::Snapshot)) -> Harness {
    let mut h = setup(|s| {
        s.extensions.insert((1, "1005".into()), ext(5, "1005", 1));
        let members = ["1001", "1002", "1003", "1005"].map(String::from).to_vec();
        s.apps
            .pages
            .insert((1, "all".into()), PageGroup::new("all", members));
        s.apps
            .numbers
            .insert((1, "600".into()), Destination::Page("all".into()));
        edit(s);
    });
    for (number, at) in [("1003", PHONE3), ("1005", PHONE5)] {
        let c = format!("<sip:{number}@{at}>");
        assert_eq!(
            h.register(number, Some(&c), Some(3600), at, SEG1).status,
            200
        );
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

/// The page's INVITEs by phone address (those with auto-answer headers).
fn page_forks(out: &[Sent]) -> HashMap<String, Request> {
    invites(out)
        .into_iter()
        .filter(|s| !header(s.request(), "Call-Info").is_empty())
        .map(|s| (s.to.to_string(), s.request().clone()))
        .collect()
}

/// Dials 600: the pager is answered at once; returns its 200 and the page's INVITEs.
fn page(h: &mut Harness, call_id: &str) -> (Response, HashMap<String, Request>) {
    let out = dial(h, "600", call_id);
    h.sent = out.clone();
    let ok = h.last_response();
    assert_eq!(ok.status, 200, "the pager is answered: {:?}", h.responses());
    (ok, page_forks(&out))
}

fn endpoint_of_phone(h: &Harness, phone_ip: &str) -> Vec<EndpointId> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::ConfigureEndpoint { endpoint, rtp, .. }
                if rtp.is_some_and(|r| r.ip().to_string() == phone_ip) =>
            {
                Some(*endpoint)
            }
            _ => None,
        })
        .collect()
}

/// A BYE from `at` in the dialog our INVITE `inv` set up (the phone answered with `tag`).
fn bye_from_phone(h: &mut Harness, inv: &Request, tag: &str, at: &str) {
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bK-pb-{tag}\r\nMax-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = inv.headers.contact().expect("our Contact").uri,
        to = inv.to().expect("To"),
        from = inv.from().expect("From"),
        cid = inv.call_id().expect("Call-ID"),
    );
    h.recv_raw(&bye, at, SEG1);
}

fn bye_from_pager(h: &mut Harness, ok: &Response, call_id: &str) {
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-pgbye\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = ok.headers.contact().expect("Contact").uri,
        to = ok.to().expect("To"),
    );
    h.recv_raw(&bye, CALLER, SEG1);
}

/// Where the requests of `method` went, sorted, retransmissions counted once.
fn sent_to(h: &Harness, method: &str) -> Vec<String> {
    let mut v: Vec<String> = h
        .requests(method)
        .iter()
        .map(|s| s.to.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn sorted_keys(m: &HashMap<String, Request>) -> Vec<String> {
    let mut k: Vec<String> = m.keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn a_page_rings_every_member_phone_one_way_and_the_pager_hanging_up_ends_it() {
    let mut h = setup_page(|_| {});
    let (ok, forks) = page(&mut h, "pg-1");
    // Every phone of every member but the pager, at once, with the headers.
    assert_eq!(
        sorted_keys(&forks),
        vec![DESK, PHONE3, PHONE5, SOFT]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    );
    for inv in forks.values() {
        assert_eq!(header(inv, "Answer-Mode"), vec!["Auto".to_string()]);
        assert!(!inv.body.is_empty(), "our endpoint's offer");
    }
    // The pager's endpoint joined the page's bridge, each phone's endpoint opened in it.
    let bridge = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::Join { bridge, .. } => Some(*bridge),
            _ => None,
        })
        .expect("the pager joins the page's bridge");
    let groups: Vec<u64> = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::OpenEndpoint { group, .. } => Some(*group),
            _ => None,
        })
        .collect();
    assert_eq!(
        groups,
        vec![bridge; 5],
        "the pager's endpoint and one per phone, placed together"
    );
    // Three phones answer by themselves; nobody is cancelled (unlike a ring-all call).
    h.sent.clear();
    h.media_log.clear();
    h.reply(&forks[PHONE5], 180, "p5", PHONE5, SEG1);
    h.reply(&forks[DESK], 200, "desk", DESK, SEG1);
    h.reply(&forks[SOFT], 200, "soft", SOFT, SEG2);
    h.reply(&forks[PHONE3], 200, "p3", PHONE3, SEG1);
    assert!(h.requests("CANCEL").is_empty());
    assert_eq!(h.requests("ACK").len(), 3);
    // Each answered phone: its endpoint points at it, muted (nothing it sends is mixed),
    // joined to the bridge; the pager hears one beep when the first phone listens.
    for ip in ["192.0.2.22", "198.51.100.22", "192.0.2.23"] {
        let eps = endpoint_of_phone(&h, ip);
        assert_eq!(eps.len(), 1, "{ip}");
        let ep = eps[0];
        assert!(h.media_log.contains(&MediaCommand::SetMute {
            endpoint: ep,
            muted: true
        }));
        assert!(h.media_log.contains(&MediaCommand::Join {
            endpoint: ep,
            bridge
        }));
    }
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::SetMute { muted: false, .. })),
        "no member is ever unmuted"
    );
    let beeps = h
        .media_log
        .iter()
        .filter(|c| matches!(c, MediaCommand::Play { items, .. } if items == &vec![PlayItem::Tone(ToneKind::Beep)]))
        .count();
    assert_eq!(beeps, 1);
    // The pager hangs up: every listening phone gets BYE, the ringing one CANCEL.
    h.advance(Duration::from_secs(2));
    h.sent.clear();
    bye_from_pager(&mut h, &ok, "pg-1");
    assert_eq!(sent_to(&h, "BYE"), vec![DESK, PHONE3, SOFT]);
    assert_eq!(sent_to(&h, "CANCEL"), vec![PHONE5]);
    assert_eq!(h.engine.active_calls(), 0);
    // One record, caller → page:all, with one event per phone that answered.
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(
        (h.cdrs[0].caller.as_str(), h.cdrs[0].callee.as_str()),
        ("1001", "page:all")
    );
    assert_eq!(h.cdrs[0].disposition, Disposition::Answered);
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Caller);
    assert_eq!(h.call_events.len(), 1);
    let (tenant, cid, events) = &h.call_events[0];
    assert_eq!((*tenant, cid.as_str()), (1, "pg-1"));
    let mut to: Vec<(&str, &str)> = events.iter().map(|e| (e.kind, e.to.as_str())).collect();
    to.sort();
    assert_eq!(
        to,
        vec![("paged", "1002"), ("paged", "1002"), ("paged", "1003")]
    );
}

#[test]
fn busy_and_dnd_members_are_skipped_unless_the_group_barges() {
    for barge in [false, true] {
        let mut h = setup_page(|s| {
            s.apps.hunt.forwarding.insert(
                2,
                Forwarding {
                    dnd: true,
                    ..Forwarding::default()
                },
            );
            if let Some(g) = s.apps.pages.get_mut(&(1, "all".to_string())) {
                g.barge = barge;
            }
        });
        // 1003 is in a call (calling 1005, still ringing).
        let out = h.dial(&Dial {
            from: "1003",
            to: "1005",
            source: PHONE3,
            local: SEG1,
            call_id: "busy-1",
        });
        assert_eq!(invites(&out).len(), 1, "1005 rings");
        let (_, forks) = page(&mut h, &format!("pg-barge-{barge}"));
        let expected: Vec<&str> = if barge {
            vec![DESK, PHONE3, PHONE5, SOFT]
        } else {
            vec![PHONE5]
        };
        assert_eq!(sorted_keys(&forks), expected, "barge {barge}");
    }
}

#[test]
fn a_phone_that_does_not_answer_is_cancelled_and_a_member_hanging_up_leaves_the_others() {
    let mut h = setup_page(|_| {});
    let (_, forks) = page(&mut h, "pg-2");
    h.reply(&forks[SOFT], 180, "soft", SOFT, SEG2);
    h.reply(&forks[PHONE3], 180, "p3", PHONE3, SEG1);
    h.reply(&forks[DESK], 200, "desk", DESK, SEG1);
    h.reply(&forks[PHONE5], 200, "p5", PHONE5, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(4));
    assert!(
        h.requests("CANCEL").is_empty(),
        "still within the answer time"
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(
        sent_to(&h, "CANCEL"),
        vec![PHONE3, SOFT],
        "the silent phones are cancelled"
    );
    assert!(h.requests("BYE").is_empty(), "the page goes on");
    // The desk phone hangs up: answered, out of the page; the others stay.
    h.sent.clear();
    bye_from_phone(&mut h, &forks[DESK], "desk", DESK);
    assert!(h.responses().contains(&200));
    assert!(h.requests("BYE").is_empty(), "nobody else is hung up");
    assert_eq!(h.engine.active_calls(), 1);
    // The last listener hangs up: the page ends, the pager gets BYE.
    h.sent.clear();
    bye_from_phone(&mut h, &forks[PHONE5], "p5", PHONE5);
    assert_eq!(sent_to(&h, "BYE"), vec![CALLER]);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn a_page_ends_after_its_longest_time() {
    let mut h = setup_page(|s| {
        if let Some(g) = s.apps.pages.get_mut(&(1, "all".to_string())) {
            g.max_s = 30;
        }
    });
    let (_, forks) = page(&mut h, "pg-3");
    h.reply(&forks[DESK], 200, "desk", DESK, SEG1);
    h.reply(&forks[PHONE3], 200, "p3", PHONE3, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(29));
    assert!(h.requests("BYE").is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(sent_to(&h, "BYE"), vec![CALLER, DESK, PHONE3]);
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].callee, "page:all");
}

#[test]
fn a_page_with_nobody_to_page_is_refused() {
    let mut h = setup_page(|s| {
        if let Some(g) = s.apps.pages.get_mut(&(1, "all".to_string())) {
            g.members = vec!["1001".into(), "1004".into()];
        }
    });
    // Only the pager itself and another tenant's number: nobody.
    let out = dial(&mut h, "600", "pg-none");
    h.sent = out;
    assert!(invites(&h.sent).is_empty());
    assert_eq!(h.last_response().status, 480);
    assert_eq!(h.engine.active_calls(), 0);
}
