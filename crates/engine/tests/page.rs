//! Intercom on a fake clock: `*80` + extension rings every contact of that extension with the
//! auto-answer headers (and ignores its forwarding), audio is relayed both ways once answered,
//! and the call is refused for DND, another tenant's extension, an unknown number, the caller
//! itself and an unregistered target. A plain call carries no auto-answer headers.

mod common;

use std::time::Duration;

use common::*;
use engine::db::{Disposition, HangupBy};
use engine::hunt::Forwarding;
use engine::media::{MediaCommand, Side};
use sip::{Message, Request};

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
