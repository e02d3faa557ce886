//! Call pickup on a fake clock: a call forked to two phones of 1002 is picked up by 1003
//! (group `*8` and directed `**1002`); the picker is answered with the relay's B side, the
//! caller with the relay's A side, the forks are cancelled with "Call completed elsewhere",
//! and the call keeps one record naming who answered. Refusals: nothing ringing, no shared
//! pickup group.

mod common;

use common::*;
use engine::db::Disposition;
use engine::media::{MediaCommand, Side};
use sip::{HeaderName, Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK1: &str = "192.0.2.22:5060";
const DESK2: &str = "192.0.2.23:5060";
const PICKER: &str = "192.0.2.24:5060";
const OTHER: &str = "192.0.2.25:5060";

/// 1001 calls; 1002 has two phones; 1003 shares pickup group "sales" with 1002; 1004 is in
/// group "support" only.
fn setup() -> Harness {
    let mut snap = snapshot();
    snap.extensions
        .insert((1, "1004".into()), ext(4, "1004", 1));
    for (n, groups) in [
        ("1002", vec!["sales"]),
        ("1003", vec!["sales", "x"]),
        ("1004", vec!["support"]),
    ] {
        snap.codes.pickup.insert(
            (1, n.into()),
            groups.into_iter().map(String::from).collect(),
        );
    }
    let mut h = Harness::with(snap);
    for (n, at) in [
        ("1001", CALLER),
        ("1002", DESK1),
        ("1002", DESK2),
        ("1003", PICKER),
        ("1004", OTHER),
    ] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

/// 1001 calls 1002; both phones ring (180). Returns the two fork INVITEs.
fn ring(h: &mut Harness) -> Vec<Request> {
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "call-1",
    });
    let forks: Vec<Request> = out
        .iter()
        .filter_map(|s| match &s.message {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(forks.len(), 2, "both phones ring");
    for (i, f) in forks.iter().enumerate() {
        let at = if f.uri.to_string().contains("192.0.2.22") {
            DESK1
        } else {
            DESK2
        };
        h.reply(f, 180, &format!("d{i}"), at, SEG1);
    }
    h.sent.clear();
    h.media_log.clear();
    forks
}

fn final_to(h: &Harness, to: &str) -> Option<Response> {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == to)
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

fn pick(h: &mut Harness, from: &str, source: &str, code: &str, call_id: &str) -> Response {
    h.sent = h.dial(&Dial {
        from,
        to: code,
        source,
        local: SEG1,
        call_id,
    });
    final_to(h, source).expect("the picker gets a final answer")
}

fn audio_port(body: &[u8]) -> u16 {
    let s = std::str::from_utf8(body).expect("utf-8");
    s.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port")
}

#[test]
fn group_pickup_answers_the_ringing_call_and_cancels_the_forks() {
    let mut h = setup();
    ring(&mut h);
    let ok = pick(&mut h, "1003", PICKER, "*8", "pick-1");
    assert_eq!(ok.status, 200, "picked up");
    let (&session, &(relay_a, relay_b)) = h.sessions.iter().next().expect("one relay session");
    assert_eq!(
        audio_port(&ok.body),
        relay_b.port(),
        "the picker talks to the relay's B side"
    );
    let caller_ok = final_to(&h, CALLER).expect("the caller is answered");
    assert_eq!(caller_ok.status, 200);
    assert_eq!(audio_port(&caller_ok.body), relay_a.port());
    assert!(
        std::str::from_utf8(&caller_ok.body)
            .expect("utf-8")
            .contains("PCMU"),
        "the caller hears the common codec"
    );
    // The relay's B side now sends to the picker's phone.
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::SetRemote { session: s, side: Side::B, rtp, .. }
            if *s == session && rtp.to_string() == "192.0.2.24:4000")));
    // Both forks are cancelled, saying the call was answered elsewhere.
    let cancels = h.requests("CANCEL");
    assert_eq!(cancels.len(), 2, "{:?}", h.sent);
    for c in &cancels {
        let reason = c
            .request()
            .headers
            .get(&HeaderName::Reason)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        assert_eq!(reason, "SIP;cause=200;text=\"Call completed elsewhere\"");
    }
    assert!(h.cdrs.is_empty(), "no record yet: the call goes on");
    // The picker hangs up: the caller gets a BYE; one record, answered by 1003.
    let to = ok.to().expect("To").to_string();
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {PICKER};branch=z9hG4bK-bye-pick\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1003@example.com>;tag=a-pick-1\r\nTo: {to}\r\nCall-ID: pick-1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.sent.clear();
    h.recv_raw(&bye, PICKER, SEG1);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == CALLER));
    assert_eq!(h.cdrs.len(), 1, "one record for the call");
    let cdr = &h.cdrs[0];
    assert_eq!((cdr.caller.as_str(), cdr.callee.as_str()), ("1001", "1003"));
    assert_eq!(cdr.route.dialled, "1002");
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn directed_pickup_and_refusals() {
    let mut h = setup();
    // Nothing rings.
    assert_eq!(pick(&mut h, "1003", PICKER, "*8", "none-1").status, 404);
    ring(&mut h);
    // 1004 shares no group with 1002.
    let r = pick(&mut h, "1004", OTHER, "**1002", "deny-1");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Not in a shared pickup group")
    );
    assert_eq!(pick(&mut h, "1004", OTHER, "*8", "deny-2").status, 404);
    // Nothing rings at 1001.
    assert_eq!(pick(&mut h, "1003", PICKER, "**1001", "deny-3").status, 404);
    assert!(h.requests("CANCEL").is_empty(), "the call still rings");
    // Directed pickup from the group.
    let ok = pick(&mut h, "1003", PICKER, "**1002", "pick-2");
    assert_eq!(ok.status, 200);
    assert_eq!(final_to(&h, CALLER).map(|r| r.status), Some(200));
    assert_eq!(h.requests("CANCEL").len(), 2);
    // Refused pickups each left a record; the picked call is still up.
    assert_eq!(h.cdrs.len(), 4);
    assert!(h.cdrs.iter().all(|c| c.disposition == Disposition::Failed));
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn the_call_history_says_who_picked_up_whose_call() {
    let mut h = setup();
    ring(&mut h);
    assert_eq!(
        pick(&mut h, "1003", PICKER, "**1002", "hist-pick").status,
        200
    );
    let id = h.engine.calls(h.now)[0].id;
    assert!(h.engine.hangup(id, h.now));
    h.drain();
    let (_, call_id, events) = h.call_events.last().expect("events stored");
    assert_eq!(call_id, "call-1", "beside the caller's record");
    let got: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| (e.kind, e.by.as_str(), e.party.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(got, vec![("directed_pickup", "1003", "1001", "1002")]);
}
