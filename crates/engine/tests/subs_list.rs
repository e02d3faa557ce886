//! The listing of subscriptions in force (`Engine::subscriptions`, `GET /api/v1/subscriptions`):
//! a phone's `dialog` and `presence` subscriptions appear with subscriber, contact, source,
//! package, resource, expiry and the state its last NOTIFY carried (which follows a call);
//! another tenant's filter leaves them out; one that runs out leaves the list.

mod common;

use std::time::Duration;

use common::*;
use sip::{HeaderName, Message, Response};

/// The watching phone (extension 1003).
const W: &str = "192.0.2.23:5060";
const A: &str = "192.0.2.21:5060";
const B: &str = "192.0.2.22:5060";

fn subscribe_text(
    call_id: &str,
    uri: &str,
    cseq: u32,
    event: &str,
    expires: u32,
    tail: &str,
) -> String {
    format!(
        "SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {W};branch=z9hG4bK-l{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:1003@example.com>;tag=w-{call_id}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1003@{W}>\r\nEvent: {event}\r\nExpires: {expires}\r\n{tail}Content-Length: 0\r\n\r\n"
    )
}

/// 1003 subscribes to `uri` for `event` (answering the digest challenge); the final status.
fn subscribe(h: &mut Harness, call_id: &str, uri: &str, event: &str, expires: u32) -> u16 {
    h.recv_raw(
        &subscribe_text(call_id, uri, 1, event, expires, ""),
        W,
        SEG1,
    );
    let challenge = h.last_response();
    assert_eq!(challenge.status, 407);
    let creds = h.answer_challenge(
        "1003",
        &password("1003"),
        &challenge,
        &HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        uri,
    );
    h.sent.clear();
    let auth = format!("Proxy-Authorization: {creds}\r\n");
    h.recv_raw(
        &subscribe_text(call_id, uri, 2, event, expires, &auth),
        W,
        SEG1,
    );
    h.sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Response(r) if r.status >= 200 => Some(r.status),
            _ => None,
        })
        .expect("a final response")
}

/// Answers every NOTIFY sent to the watcher with 200, as a phone does.
fn answer_notifies(h: &mut Harness) {
    let notifies: Vec<_> = h
        .sent
        .iter()
        .filter_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => Some(r.clone()),
            _ => None,
        })
        .collect();
    h.sent.clear();
    for r in notifies {
        let ok = Response::for_request(&r, 200, None);
        h.recv_message(Message::Response(ok), W, SEG1);
    }
}

#[test]
fn subscriptions_are_listed_with_their_last_notified_state() {
    let mut h = Harness::with(snapshot());
    for (n, at) in [("1001", A), ("1002", B), ("1003", W)] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    assert!(h.engine.subscriptions(None, h.now).is_empty());
    assert_eq!(
        subscribe(&mut h, "sub-d", "sip:1002@example.com", "dialog", 600),
        200
    );
    answer_notifies(&mut h);
    assert_eq!(
        subscribe(&mut h, "sub-p", "sip:1002@example.com", "presence", 300),
        200
    );
    answer_notifies(&mut h);
    let l = h.engine.subscriptions(None, h.now);
    assert_eq!(l.len(), 2, "{l:?}");
    let d = l.iter().find(|s| s.event == "dialog").expect("dialog");
    assert_eq!(
        (d.tenant_id, d.subscriber.as_str(), d.resource.as_str()),
        (1, "1003", "1002")
    );
    assert!(d.contact.contains(W), "{d:?}");
    assert_eq!(d.source, format!("{W} UDP"), "{d:?}");
    assert!((590..=600).contains(&d.expires_in_s), "{d:?}");
    assert_eq!(d.last_state, "idle");
    assert_eq!(d.last_notify_s_ago, Some(0));
    let p = l.iter().find(|s| s.event == "presence").expect("presence");
    assert_eq!(p.last_state, "open (Available)", "{p:?}");
    assert!((290..=300).contains(&p.expires_in_s), "{p:?}");

    // A call to 1002: the dialog subscription's last NOTIFY says so.
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: A,
        local: SEG1,
        call_id: "call-1",
    });
    let fork = invites_to(&out, B).pop().expect("1002 rings");
    h.reply(&fork, 180, "t-1", B, SEG1);
    h.advance(Duration::from_millis(100));
    answer_notifies(&mut h);
    let l = h.engine.subscriptions(None, h.now);
    let d = l.iter().find(|s| s.event == "dialog").expect("dialog");
    assert_eq!(d.last_state, "early", "{d:?}");
    h.reply(&fork, 200, "t-1", B, SEG1);
    h.advance(Duration::from_millis(100));
    answer_notifies(&mut h);
    let l = h.engine.subscriptions(None, h.now);
    let d = l.iter().find(|s| s.event == "dialog").expect("dialog");
    assert_eq!(d.last_state, "confirmed", "{d:?}");
    let p = l.iter().find(|s| s.event == "presence").expect("presence");
    assert!(p.last_state.contains("on-the-phone"), "{p:?}");

    // Another tenant's view is empty.
    assert!(h.engine.subscriptions(Some(2), h.now).is_empty());
    assert_eq!(h.engine.subscriptions(Some(1), h.now).len(), 2);
    // The presence subscription runs out (300 s), the dialog one (600 s) stays.
    for _ in 0..31 {
        h.advance(Duration::from_secs(10));
        answer_notifies(&mut h);
    }
    let l = h.engine.subscriptions(None, h.now);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].event, "dialog");
}

/// The NOTIFY bodies sent since the last clear.
fn notify_bodies(h: &Harness) -> Vec<String> {
    h.sent
        .iter()
        .filter_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => {
                Some(String::from_utf8_lossy(&r.body).into_owned())
            }
            _ => None,
        })
        .collect()
}

/// 1003 watches 1002's dialogs while 1001 calls 1002: the bodies of the NOTIFYs.
fn watch_a_call(tenants: &[(i64, bool)], node_shows: bool) -> Vec<String> {
    let mut snap = snapshot();
    snap.settings.blf_show_caller = node_shows;
    snap.settings.blf_show_caller_tenants = tenants.iter().copied().collect();
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", A), ("1002", B), ("1003", W)] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    assert_eq!(
        subscribe(&mut h, "sub-sc", "sip:1002@example.com", "dialog", 600),
        200
    );
    answer_notifies(&mut h);
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: A,
        local: SEG1,
        call_id: "call-sc",
    });
    let fork = invites_to(&out, B).pop().expect("1002 rings");
    h.reply(&fork, 180, "t-sc", B, SEG1);
    h.advance(Duration::from_millis(100));
    let bodies = notify_bodies(&h);
    assert!(bodies.iter().any(|b| b.contains("early")), "{bodies:?}");
    bodies
}

#[test]
fn a_tenants_blf_show_caller_overrides_the_nodes() {
    let shown = |bodies: &[String]| bodies.iter().any(|b| b.contains("<remote>"));
    assert!(shown(&watch_a_call(&[], true)), "the node's default shows");
    assert!(!shown(&watch_a_call(&[(1, false)], true)), "tenant 1 hides");
    assert!(
        shown(&watch_a_call(&[(2, false)], true)),
        "another tenant's choice"
    );
    assert!(shown(&watch_a_call(&[(1, true)], false)), "tenant 1 shows");
    assert!(!shown(&watch_a_call(&[], false)), "the node hides");
}
