//! Transfer on a fake clock: blind REFER (target answers, busy, no answer, transferor gone →
//! callback or hang-up), class of service on the target, REFER from outside the dialog, bad
//! Refer-To, the transferee hanging up mid-transfer, attended transfer by REFER with Replaces.

mod common;

use std::time::Duration;

use common::*;
use engine::config::Outside;
use engine::db::{Disposition, HangupBy};
use engine::media::{MediaCommand, Side};
use engine::outside::CallClass;
use sip::{HeaderName, Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060"; // 1001, the transferee
const DESK: &str = "192.0.2.22:5060"; // 1002, the transferor
const THIRD: &str = "192.0.2.23:5060"; // 1003, the target
const STRANGER: &str = "192.0.2.99:5060";

fn setup() -> Harness {
    setup_with(snapshot())
}

fn setup_with(snap: engine::Snapshot) -> Harness {
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", CALLER), ("1002", DESK), ("1003", THIRD)] {
        let contact = format!("<sip:{n}@{at}>");
        assert_eq!(
            h.register(n, Some(&contact), Some(3600), at, SEG1).status,
            200
        );
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

fn requests_to(h: &Harness, method: &str, at: &str) -> Vec<Request> {
    h.requests(method)
        .into_iter()
        .filter(|s| s.to.to_string() == at)
        .map(|s| s.request().clone())
        .collect()
}

fn responses_to(h: &Harness, at: &str) -> Vec<Response> {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == at)
        .filter_map(|s| match &s.message {
            Message::Response(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn sdp_port(body: &[u8]) -> u16 {
    std::str::from_utf8(body)
        .expect("utf-8")
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m= line")
}

fn sipfrag(n: &Request) -> String {
    String::from_utf8(n.body.to_vec()).expect("utf-8 sipfrag")
}

/// One side of an established dialog, as the phone sees it.
#[derive(Clone)]
struct Party {
    at: &'static str,
    /// Request-URI (our Contact).
    ruri: String,
    /// The phone's From (name-addr with its tag).
    local: String,
    /// The phone's To (our name-addr with our tag).
    remote: String,
    call_id: String,
}

impl Party {
    fn request(&self, method: &str, cseq: u32, extra: &str, body: Option<&str>) -> String {
        let at = self.at;
        let branch = format!("z9hG4bK-{method}-{cseq}-{}", self.call_id);
        let mut s = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch={branch}\r\nMax-Forwards: 70\r\nFrom: {local}\r\nTo: {remote}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:phone@{at}>\r\n{extra}",
            ruri = self.ruri,
            local = self.local,
            remote = self.remote,
            cid = self.call_id,
        );
        match body {
            Some(b) => {
                let b = b.replace('\n', "\r\n");
                s.push_str(&format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                ));
            }
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        s
    }
}

/// A call `from`@`source` → `to`@`callee_at`, answered: (caller's side, callee's side).
fn call_up(
    h: &mut Harness,
    (from, source): (&str, &'static str),
    (to, callee_at): (&str, &'static str),
    cid: &str,
) -> (Party, Party) {
    let out = h.dial(&Dial {
        from,
        to,
        source,
        local: SEG1,
        call_id: cid,
    });
    let fork = invites_to(&out, callee_at)
        .pop()
        .expect("the callee is rung");
    let tag = format!("t-{cid}");
    h.sent.clear();
    h.reply(&fork, 200, &tag, callee_at, SEG1);
    let ok = responses_to(h, source)
        .into_iter()
        .rfind(|r| r.status == 200)
        .expect("the caller is answered");
    let caller = Party {
        at: source,
        ruri: ok.headers.contact().expect("Contact").uri.to_string(),
        local: format!("<sip:{from}@example.com>;tag=a-{cid}"),
        remote: ok.to().expect("To").to_string(),
        call_id: cid.to_string(),
    };
    h.recv_raw(&caller.request("ACK", 2, "", None), source, SEG1);
    let callee = Party {
        at: callee_at,
        ruri: fork.headers.contact().expect("Contact").uri.to_string(),
        local: format!("<sip:{to}@example.com>;tag={tag}"),
        remote: fork.from().expect("From").to_string(),
        call_id: fork.call_id().expect("Call-ID").to_string(),
    };
    h.sent.clear();
    h.media_log.clear();
    (caller, callee)
}

fn refer(h: &mut Harness, by: &Party, cseq: u32, refer_to: &str) {
    h.sent.clear();
    let extra = format!("Refer-To: {refer_to}\r\nReferred-By: {}\r\n", by.local);
    h.recv_raw(&by.request("REFER", cseq, &extra, None), by.at, SEG1);
}

/// `by` REFERs its call to 1003; returns the INVITE the target got.
fn refer_to_third(h: &mut Harness, by: &Party, cseq: u32) -> Request {
    refer(h, by, cseq, "<sip:1003@example.com>");
    invites_to(&h.sent, THIRD)
        .pop()
        .expect("the target is rung")
}

fn last_status_to(h: &Harness, at: &str) -> u16 {
    responses_to(h, at)
        .iter()
        .rev()
        .find(|r| r.status >= 200)
        .map(|r| r.status)
        .expect("a final response")
}

/// The relay's (A, B) ports of the only open session.
fn relay_ports(h: &Harness) -> (u16, u16) {
    assert_eq!(h.sessions.len(), 1, "one relay session");
    let (a, b) = h.sessions.values().next().copied().expect("session");
    (a.port(), b.port())
}

#[test]
fn blind_transfer_from_the_callee_joins_caller_and_target() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-1");
    let (port_a, port_b) = relay_ports(&h);
    refer(&mut h, &desk, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, DESK), 202);
    let notify = requests_to(&h, "NOTIFY", DESK);
    assert_eq!(notify.len(), 1);
    assert_eq!(sipfrag(&notify[0]), "SIP/2.0 100 Trying\r\n");
    assert!(
        notify[0]
            .headers
            .get(&HeaderName::Event)
            .is_some_and(|e| e.as_str().starts_with("refer"))
    );
    // The target rings with the caller's media, on the relay socket that faced the desk.
    let inv = invites_to(&h.sent, THIRD)
        .pop()
        .expect("the target is rung");
    assert_eq!(sdp_port(&inv.body), port_b);
    assert!(inv.from().expect("From").uri.to_string().contains("1001"));
    h.sent.clear();
    h.reply(&inv, 180, "third", THIRD, SEG1);
    let n = requests_to(&h, "NOTIFY", DESK);
    assert_eq!(sipfrag(&n[0]), "SIP/2.0 180 Ringing\r\n");
    assert!(
        responses_to(&h, CALLER).is_empty(),
        "the caller is not disturbed"
    );
    h.sent.clear();
    h.media_log.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_eq!(
        requests_to(&h, "ACK", THIRD).len(),
        1,
        "the target's 2xx is ACKed"
    );
    let n = requests_to(&h, "NOTIFY", DESK);
    assert_eq!(sipfrag(&n[0]), "SIP/2.0 200 OK\r\n");
    assert!(
        n[0].headers
            .get(&HeaderName::SubscriptionState)
            .is_some_and(|s| s.as_str().starts_with("terminated"))
    );
    assert_eq!(
        requests_to(&h, "BYE", DESK).len(),
        1,
        "the transferor is released"
    );
    assert_eq!(
        remote_of(&h.media_log, Side::B),
        vec![addr("192.0.2.23:6000")],
        "the relay's far side now points at the target"
    );
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::SetHold { on_hold: false, .. }))
    );
    // The caller was not on hold: its media stays as it was, on the same relay socket.
    assert!(invites_to(&h.sent, CALLER).is_empty());
    let _ = port_a;
    // The desk's own BYE crossing ours is answered 200 and ends nothing.
    h.sent.clear();
    h.recv_raw(&desk.request("BYE", 3, "", None), DESK, SEG1);
    assert_eq!(last_status_to(&h, DESK), 200);
    let calls = h.engine.calls(h.now);
    assert_eq!(calls.len(), 1, "one call goes on");
    let ev = h.engine.transfer_events(calls[0].id);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind, ev[0].by.as_str(), ev[0].to.as_str()),
        ("blind", "1002", "1003")
    );
    assert!(h.cdrs.is_empty());
    // The caller hangs up: the target gets the BYE, one record.
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 5, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert!(requests_to(&h, "BYE", DESK).is_empty());
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Caller);
    // The transfer is stored beside the one record, under its Call-ID.
    assert_eq!(h.call_events.len(), 1);
    let (tenant, call_id, events) = &h.call_events[0];
    assert_eq!((*tenant, call_id.as_str()), (1, h.cdrs[0].call_id.as_str()));
    assert_eq!(
        events
            .iter()
            .map(|e| (
                e.kind,
                e.by.as_str(),
                e.party.as_str(),
                e.to.as_str(),
                e.status
            ))
            .collect::<Vec<_>>(),
        vec![("blind", "1002", "1001", "1003", 200)]
    );
}

#[test]
fn transferee_on_hold_music_is_brought_back_onto_the_relay() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-moh");
    let (port_a, _) = relay_ports(&h);
    // The desk holds the caller: the caller is offered the music endpoint.
    h.recv_raw(
        &desk.request("INVITE", 2, "", Some(&sdp("192.0.2.22", 6000, "sendonly"))),
        DESK,
        SEG1,
    );
    let hold = invites_to(&h.sent, CALLER).pop().expect("hold forwarded");
    let music = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .expect("a music endpoint");
    h.reply(&hold, 200, "", CALLER, SEG1);
    h.recv_raw(&desk.request("ACK", 2, "", None), DESK, SEG1);
    let inv = refer_to_third(&mut h, &desk, 3);
    assert!(
        std::str::from_utf8(&inv.body)
            .unwrap_or("")
            .contains("a=sendrecv"),
        "the target is offered two-way media"
    );
    h.sent.clear();
    h.media_log.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::CloseEndpoint { endpoint } if *endpoint == music)),
        "the music stops"
    );
    let re = invites_to(&h.sent, CALLER)
        .pop()
        .expect("re-INVITE to the caller");
    assert_eq!(sdp_port(&re.body), port_a, "back onto the relay");
    assert!(
        std::str::from_utf8(&re.body)
            .unwrap_or("")
            .contains("a=sendrecv")
    );
    h.sent.clear();
    h.reply(&re, 200, "", CALLER, SEG1);
    assert_eq!(
        requests_to(&h, "ACK", CALLER).len(),
        1,
        "our re-INVITE's 2xx is ACKed"
    );
}

#[test]
fn blind_transfer_from_the_caller() {
    let mut h = setup();
    let (caller, _desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-2");
    let (port_a, port_b) = relay_ports(&h);
    refer(&mut h, &caller, 3, "sip:1003@example.com");
    assert_eq!(last_status_to(&h, CALLER), 202);
    let inv = invites_to(&h.sent, THIRD)
        .pop()
        .expect("the target is rung");
    assert_eq!(
        sdp_port(&inv.body),
        port_a,
        "the socket that faced the caller"
    );
    assert!(inv.from().expect("From").uri.to_string().contains("1002"));
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_eq!(requests_to(&h, "BYE", CALLER).len(), 1);
    assert!(
        invites_to(&h.sent, DESK).is_empty(),
        "the desk's media is unchanged"
    );
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(
        h.engine.transfer_events(id)[0].party,
        "1002",
        "the callee was moved"
    );
    assert_eq!(
        remote_of(&h.media_log, Side::A),
        vec![addr("192.0.2.23:6000")],
        "the relay's caller side now points at the target"
    );
    let _ = port_b;
}

fn outside_routes() -> Outside {
    national_outside("0|0ZXXXXXXXX", ("carrier", None))
}

#[test]
fn transfer_to_a_number_the_transferor_may_not_call_is_refused_and_the_call_kept() {
    let mut snap = snapshot();
    snap.outside = outside_routes();
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".to_string())) {
        e.cos = CallClass::Internal;
    }
    let mut h = setup_with(snap);
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-cos");
    refer(&mut h, &desk, 2, "<sip:00312345678@example.com>");
    let r = responses_to(&h, DESK).pop().expect("answered");
    assert_eq!(r.status, 403);
    assert!(r.reason.contains("not allowed"), "{}", r.reason);
    assert!(h.requests("INVITE").is_empty(), "nothing is dialled");
    assert!(h.requests("NOTIFY").is_empty());
    assert!(h.requests("BYE").is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1, "the call is kept");
    // A number nobody has is 404.
    refer(&mut h, &desk, 3, "<sip:1999@example.com>");
    assert_eq!(last_status_to(&h, DESK), 404);
    // ... and still works: a BYE from the caller reaches the desk.
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 3, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1);
}

#[test]
fn busy_target_with_the_transferor_still_there_keeps_the_call() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-busy");
    let inv = refer_to_third(&mut h, &desk, 2);
    h.sent.clear();
    h.reply(&inv, 486, "third", THIRD, SEG1);
    let n = requests_to(&h, "NOTIFY", DESK);
    assert_eq!(sipfrag(&n[0]), "SIP/2.0 486 Busy Here\r\n");
    assert!(h.requests("BYE").is_empty());
    assert!(invites_to(&h.sent, CALLER).is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1);
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(h.engine.transfer_events(id)[0].kind, "failed");
    // A second transfer may follow.
    refer(&mut h, &desk, 3, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, DESK), 202);
}

#[test]
fn busy_target_after_the_transferor_hung_up_rings_the_transferor_back() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-cb");
    let (_, port_b) = relay_ports(&h);
    let inv = refer_to_third(&mut h, &desk, 2);
    // The transferor hangs up right after the 202 (as many phones do).
    h.sent.clear();
    h.recv_raw(&desk.request("BYE", 3, "", None), DESK, SEG1);
    assert_eq!(last_status_to(&h, DESK), 200);
    assert!(
        requests_to(&h, "BYE", CALLER).is_empty(),
        "the caller stays"
    );
    h.sent.clear();
    h.reply(&inv, 486, "third", THIRD, SEG1);
    assert!(h.requests("NOTIFY").is_empty(), "nobody to notify");
    let back = invites_to(&h.sent, DESK)
        .pop()
        .expect("the transferor is rung back");
    assert_eq!(sdp_port(&back.body), port_b);
    h.sent.clear();
    h.reply(&back, 200, "desk2", DESK, SEG1);
    assert_eq!(requests_to(&h, "ACK", DESK).len(), 1);
    assert_eq!(
        remote_of(&h.media_log, Side::B),
        vec![addr("192.0.2.22:6000")],
        "the relay's far side points at the desk again"
    );
    let id = h.engine.calls(h.now)[0].id;
    let kinds: Vec<&str> = h
        .engine
        .transfer_events(id)
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec!["failed", "callback"]);
}

#[test]
fn unanswered_target_after_the_transferor_hung_up_can_hang_up_instead() {
    let mut snap = snapshot();
    snap.settings.transfer_callback = false;
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-hup");
    let inv = refer_to_third(&mut h, &desk, 2);
    h.reply(&inv, 180, "third", THIRD, SEG1);
    h.recv_raw(&desk.request("BYE", 3, "", None), DESK, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(31));
    assert!(
        !requests_to(&h, "CANCEL", THIRD).is_empty(),
        "the target is cancelled"
    );
    h.sent.clear();
    h.reply(&inv, 487, "third", THIRD, SEG1);
    assert_eq!(
        requests_to(&h, "BYE", CALLER).len(),
        1,
        "the caller is hung up"
    );
    assert!(invites_to(&h.sent, DESK).is_empty(), "no callback");
    assert_eq!(h.cdrs.len(), 1);
    assert!(
        h.cdrs[0].hangup_cause.contains("transfer failed"),
        "{}",
        h.cdrs[0].hangup_cause
    );
}

#[test]
fn unanswered_target_notifies_the_transferor() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-na");
    let inv = refer_to_third(&mut h, &desk, 2);
    h.reply(&inv, 180, "third", THIRD, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(31));
    h.reply(&inv, 487, "third", THIRD, SEG1);
    let n = requests_to(&h, "NOTIFY", DESK);
    assert_eq!(
        sipfrag(n.last().expect("NOTIFY")),
        "SIP/2.0 480 Temporarily Unavailable\r\n"
    );
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn refer_from_outside_the_dialog_is_refused() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-3rd");
    // Right Call-ID, made-up tag, from another address.
    let mut forged = desk.clone();
    forged.at = STRANGER;
    forged.local = "<sip:1002@example.com>;tag=guess".into();
    refer(&mut h, &forged, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, STRANGER), 481);
    // No dialog at all.
    h.sent.clear();
    h.recv_raw(
        "REFER sip:1001@192.0.2.100 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK-x1\r\nMax-Forwards: 70\r\nFrom: <sip:evil@example.com>;tag=e1\r\nTo: <sip:1001@example.com>\r\nCall-ID: evil-1\r\nCSeq: 1 REFER\r\nRefer-To: <sip:1003@example.com>\r\nContent-Length: 0\r\n\r\n",
        STRANGER,
        SEG1,
    );
    assert_eq!(last_status_to(&h, STRANGER), 403);
    // An unknown dialog.
    let mut unknown = desk.clone();
    unknown.at = STRANGER;
    unknown.call_id = "nope".into();
    refer(&mut h, &unknown, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, STRANGER), 481);
    assert!(h.requests("INVITE").is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn bad_refer_to_is_refused_with_a_reason() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-bad");
    for (i, bad) in ["<tel:1003>", "<sip:bob@example.com>", "<sip:example.com>"]
        .iter()
        .enumerate()
    {
        refer(&mut h, &desk, 2 + i as u32, bad);
        let r = responses_to(&h, DESK).pop().expect("answered");
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.reason.starts_with("Bad Refer-To"), "{bad}: {}", r.reason);
    }
    // No Refer-To at all.
    h.sent.clear();
    h.recv_raw(&desk.request("REFER", 9, "", None), DESK, SEG1);
    assert_eq!(last_status_to(&h, DESK), 400);
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn transferee_hanging_up_mid_transfer_cancels_the_target() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-gone");
    let inv = refer_to_third(&mut h, &desk, 2);
    h.reply(&inv, 180, "third", THIRD, SEG1);
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 3, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "CANCEL", THIRD).len(), 1);
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    // The target answers anyway: ACK and BYE it.
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert!(h.engine.calls(h.now).is_empty());
}

#[test]
fn second_refer_while_one_is_pending_gets_491() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-491");
    refer(&mut h, &desk, 2, "<sip:1003@example.com>");
    refer(&mut h, &desk, 3, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, DESK), 491);
}

#[test]
fn attended_transfer_by_refer_with_replaces_joins_the_other_parties() {
    let mut h = setup();
    // 1001 calls 1002; 1002 (holding 1001) calls 1003; 1002 joins them.
    let (caller, desk1) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "at-1");
    let (port_a, port_b) = relay_ports(&h);
    // The desk holds the caller (music) before consulting 1003.
    h.recv_raw(
        &desk1.request("INVITE", 2, "", Some(&sdp("192.0.2.22", 6000, "sendonly"))),
        DESK,
        SEG1,
    );
    let hold = invites_to(&h.sent, CALLER).pop().expect("hold forwarded");
    h.reply(&hold, 200, "", CALLER, SEG1);
    h.recv_raw(&desk1.request("ACK", 2, "", None), DESK, SEG1);
    let (desk2, _third) = call_up(&mut h, ("1002", DESK), ("1003", THIRD), "at-2");
    assert_eq!(h.engine.calls(h.now).len(), 2);
    let our_tag = desk2
        .remote
        .split("tag=")
        .nth(1)
        .expect("our tag")
        .to_string();
    let replaces = format!("at-2%3Bto-tag%3D{our_tag}%3Bfrom-tag%3Da-at-2");
    h.media_log.clear();
    refer(
        &mut h,
        &desk1,
        3,
        &format!("<sip:1003@example.com?Replaces={replaces}>"),
    );
    assert_eq!(last_status_to(&h, DESK), 202);
    let frags: Vec<String> = requests_to(&h, "NOTIFY", DESK)
        .iter()
        .map(sipfrag)
        .collect();
    assert_eq!(frags, vec!["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"]);
    assert_eq!(
        requests_to(&h, "BYE", DESK).len(),
        2,
        "both of the transferor's legs"
    );
    assert!(h.requests("BYE").iter().all(|b| b.to.to_string() == DESK));
    // The caller and the target are re-INVITEd onto the first call's relay.
    let to_caller = invites_to(&h.sent, CALLER)
        .pop()
        .expect("re-INVITE to caller");
    let to_third = invites_to(&h.sent, THIRD)
        .pop()
        .expect("re-INVITE to target");
    assert_eq!(sdp_port(&to_caller.body), port_a);
    assert_eq!(sdp_port(&to_third.body), port_b);
    assert_eq!(
        remote_of(&h.media_log, Side::B),
        vec![addr("192.0.2.23:6000")],
        "the relay's far side points at the target"
    );
    assert_eq!(
        h.cdrs.len(),
        1,
        "the consultation call ended with its record"
    );
    assert_eq!(h.cdrs[0].disposition, Disposition::Answered);
    let calls = h.engine.calls(h.now);
    assert_eq!(calls.len(), 1);
    assert_eq!(h.engine.transfer_events(calls[0].id)[0].kind, "attended");
    h.sent.clear();
    h.reply(&to_third, 200, "", THIRD, SEG1);
    h.reply(&to_caller, 200, "", CALLER, SEG1);
    assert_eq!(requests_to(&h, "ACK", THIRD).len(), 1);
    assert_eq!(requests_to(&h, "ACK", CALLER).len(), 1);
    // The caller hangs up: the target gets the BYE.
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 5, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert!(h.engine.calls(h.now).is_empty());
}

#[test]
fn attended_transfer_naming_another_partys_call_is_refused() {
    let mut h = setup();
    let (_caller, desk1) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "at-x1");
    // A call the transferor is not in: 1003 calls 1001's second line... here 1003 → 1001.
    let (other, _) = call_up(&mut h, ("1003", THIRD), ("1001", CALLER), "at-x2");
    let our_tag = other.remote.split("tag=").nth(1).expect("tag").to_string();
    let replaces = format!("at-x2%3Bto-tag%3D{our_tag}%3Bfrom-tag%3Da-at-x2");
    refer(
        &mut h,
        &desk1,
        2,
        &format!("<sip:1003@example.com?Replaces={replaces}>"),
    );
    assert_eq!(last_status_to(&h, DESK), 403);
    assert_eq!(h.engine.calls(h.now).len(), 2);
    // Wrong tags: 481.
    let replaces = "at-x2%3Bto-tag%3Dzz%3Bfrom-tag%3Dyy";
    refer(
        &mut h,
        &desk1,
        3,
        &format!("<sip:1003@example.com?Replaces={replaces}>"),
    );
    assert_eq!(last_status_to(&h, DESK), 481);
}

#[test]
fn administrator_transfer_hands_the_caller_to_the_target() {
    let mut h = setup();
    let (_caller, _desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "adm-1");
    let id = h.engine.calls(h.now)[0].id;
    let now = h.now;
    assert_eq!(
        h.engine
            .transfer(id + 100, "1003", now)
            .map_err(|e| e.status),
        Err(404)
    );
    assert_eq!(
        h.engine.transfer(id, "abc", now).map_err(|e| e.status),
        Err(400)
    );
    h.engine.transfer(id, "1003", now).expect("transfer starts");
    h.drain();
    let inv = invites_to(&h.sent, THIRD)
        .pop()
        .expect("the target is rung");
    assert!(h.requests("NOTIFY").is_empty(), "no REFER, no NOTIFY");
    assert_eq!(
        h.engine.transfer(id, "1003", now).map_err(|e| e.status),
        Err(409),
        "one transfer at a time"
    );
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_eq!(
        requests_to(&h, "BYE", DESK).len(),
        1,
        "the desk is released"
    );
    assert!(requests_to(&h, "BYE", CALLER).is_empty());
    assert_eq!(h.engine.transfer_events(id)[0].by, "1002");
}

#[test]
fn administrator_transfer_obeys_the_transferring_extensions_class_of_service() {
    let mut snap = snapshot();
    snap.outside = outside_routes();
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".to_string())) {
        e.cos = CallClass::Internal;
    }
    let mut h = setup_with(snap);
    call_up(&mut h, ("1001", CALLER), ("1002", DESK), "adm-cos");
    let id = h.engine.calls(h.now)[0].id;
    let now = h.now;
    let e = h
        .engine
        .transfer(id, "00312345678", now)
        .expect_err("refused");
    assert_eq!(e.status, 403, "{e}");
    h.drain();
    assert!(h.requests("INVITE").is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

/// An authenticated INVITE from `number` at `at` with `Replaces: replaces`; returns what the
/// engine sent after the authenticated request.
fn invite_replacing(
    h: &mut Harness,
    number: &str,
    at: &str,
    cid: &str,
    replaces: &str,
) -> Vec<Sent> {
    let ip = at.split(':').next().unwrap_or("");
    let body = sdp(ip, 7000, "sendrecv").replace('\n', "\r\n");
    let text = |cseq: u32, auth: Option<&str>| {
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "INVITE sip:1002@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bK-rp{cseq}-{cid}\r\nMax-Forwards: 70\r\nFrom: <sip:{number}@example.com>;tag=p-{cid}\r\nTo: <sip:1002@example.com>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{number}@{at}>\r\nReplaces: {replaces}\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    h.sent.clear();
    h.recv_raw(&text(1, None), at, SEG1);
    let challenge = h.last_response();
    assert_eq!(challenge.status, 407);
    let creds = h.answer_challenge(
        number,
        &password(number),
        &challenge,
        &HeaderName::ProxyAuthenticate,
        "INVITE",
        "sip:1002@example.com",
    );
    h.sent.clear();
    h.recv_raw(&text(2, Some(&creds)), at, SEG1);
    h.sent.clone()
}

fn tag_of(name_addr: &str) -> String {
    name_addr.split("tag=").nth(1).expect("a tag").to_string()
}

#[test]
fn invite_with_replaces_takes_over_a_confirmed_dialog() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "rp-1");
    let (_, port_b) = relay_ports(&h);
    let ours = tag_of(&desk.remote);
    let theirs = tag_of(&desk.local);
    let replaces = format!("{};to-tag={ours};from-tag={theirs}", desk.call_id);
    h.media_log.clear();
    let out = invite_replacing(&mut h, "1003", THIRD, "rp-new", &replaces);
    let ok = responses_to(&h, THIRD)
        .into_iter()
        .rfind(|r| r.status == 200)
        .unwrap_or_else(|| panic!("the taking phone is answered: {out:?}"));
    assert_eq!(sdp_port(&ok.body), port_b, "on the socket the desk used");
    assert_eq!(
        requests_to(&h, "BYE", DESK).len(),
        1,
        "the replaced phone is released"
    );
    assert!(
        h.requests("INVITE").is_empty(),
        "the caller is not disturbed"
    );
    assert_eq!(
        remote_of(&h.media_log, Side::B),
        vec![addr("192.0.2.23:7000")]
    );
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(h.engine.transfer_events(id)[0].kind, "replaces");
    // The caller hangs up: the new phone gets the BYE; one record.
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 5, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn invite_with_replaces_picks_up_a_ringing_call() {
    let mut h = setup();
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "rp-early",
    });
    let fork = invites_to(&out, DESK).pop().expect("the desk rings");
    h.reply(&fork, 180, "desk-early", DESK, SEG1);
    let (port_a, port_b) = relay_ports(&h);
    let ours = tag_of(&fork.from().expect("From").to_string());
    let replaces = format!(
        "{};to-tag={ours};from-tag=desk-early;early-only",
        fork.call_id().expect("Call-ID")
    );
    invite_replacing(&mut h, "1003", THIRD, "rp-pick", &replaces);
    let ok = responses_to(&h, THIRD)
        .into_iter()
        .rfind(|r| r.status == 200)
        .expect("the picking phone is answered");
    assert_eq!(sdp_port(&ok.body), port_b);
    let to_caller = responses_to(&h, CALLER)
        .into_iter()
        .rfind(|r| r.status == 200)
        .expect("the caller is answered");
    assert_eq!(sdp_port(&to_caller.body), port_a);
    assert_eq!(
        requests_to(&h, "CANCEL", DESK).len(),
        1,
        "the ringing phone stops"
    );
    let calls = h.engine.calls(h.now);
    assert_eq!(calls[0].state, engine::CallState::Up);
    assert_eq!(h.engine.transfer_events(calls[0].id)[0].kind, "pickup");
}

#[test]
fn invite_with_replaces_refusals() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "rp-bad");
    let ours = tag_of(&desk.remote);
    let theirs = tag_of(&desk.local);
    let cases = [
        (format!("{};to-tag=x;from-tag=y", desk.call_id), 481),
        (format!("nope;to-tag={ours};from-tag={theirs}"), 481),
        (
            format!(
                "{};to-tag={ours};from-tag={theirs};early-only",
                desk.call_id
            ),
            486,
        ),
        (format!("{};to-tag={ours}", desk.call_id), 400),
    ];
    for (i, (replaces, status)) in cases.iter().enumerate() {
        invite_replacing(&mut h, "1003", THIRD, &format!("rp-bad-{i}"), replaces);
        assert_eq!(last_status_to(&h, THIRD), *status, "{replaces}");
        assert!(h.requests("BYE").is_empty());
    }
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn transfer_on_failure_setting() {
    use engine::settings::keys::TRANSFER_ON_FAILURE;
    let with = |v: &str| {
        let v = v.to_string();
        engine::Settings::from_values(move |k| (k == TRANSFER_ON_FAILURE).then(|| v.clone()))
    };
    assert!(
        engine::Settings::from_values(|_| None).transfer_callback,
        "default"
    );
    assert!(!with("hangup").transfer_callback);
    assert!(!with("\"HANGUP\"").transfer_callback);
    assert!(with("callback").transfer_callback);
    assert!(
        with("sometimes").transfer_callback,
        "an invalid value keeps the default"
    );
}

/// The music endpoint opened for the transferee, and our offer of it.
fn music_offer(h: &Harness) -> (engine::media::EndpointId, Request) {
    let ep = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .expect("a music endpoint for the transferee");
    let offer = invites_to(&h.sent, CALLER)
        .pop()
        .expect("the transferee is offered the music");
    assert_eq!(sdp_port(&offer.body), h.endpoints[&ep].port());
    assert!(
        std::str::from_utf8(&offer.body)
            .unwrap_or("")
            .contains("a=sendonly")
    );
    (ep, offer)
}

fn closed(h: &Harness, ep: engine::media::EndpointId) -> bool {
    h.media_log
        .iter()
        .any(|c| matches!(c, MediaCommand::CloseEndpoint { endpoint } if *endpoint == ep))
}

#[test]
fn transferee_hears_music_while_the_target_rings() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "mu-1");
    let (port_a, _) = relay_ports(&h);
    let inv = refer_to_third(&mut h, &desk, 2);
    let (ep, offer) = music_offer(&h);
    h.sent.clear();
    h.reply(&offer, 200, "", CALLER, SEG1);
    assert_eq!(requests_to(&h, "ACK", CALLER).len(), 1);
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Play { endpoint, .. } if *endpoint == ep)),
        "the music plays"
    );
    h.sent.clear();
    h.media_log.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert!(closed(&h, ep), "the music stops");
    let re = invites_to(&h.sent, CALLER)
        .pop()
        .expect("back onto the relay");
    assert_eq!(sdp_port(&re.body), port_a);
    h.sent.clear();
    h.reply(&re, 200, "", CALLER, SEG1);
    assert_eq!(requests_to(&h, "ACK", CALLER).len(), 1);
}

#[test]
fn target_answering_before_the_music_offer_is_answered() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "mu-2");
    let (port_a, _) = relay_ports(&h);
    let inv = refer_to_third(&mut h, &desk, 2);
    let (ep, offer) = music_offer(&h);
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert!(
        invites_to(&h.sent, CALLER).is_empty(),
        "no second re-INVITE while the first is pending"
    );
    h.sent.clear();
    h.reply(&offer, 200, "", CALLER, SEG1);
    assert_eq!(requests_to(&h, "ACK", CALLER).len(), 1);
    assert!(closed(&h, ep));
    let re = invites_to(&h.sent, CALLER)
        .pop()
        .expect("back onto the relay");
    assert_eq!(sdp_port(&re.body), port_a);
}

#[test]
fn failed_transfer_with_the_transferor_there_stops_the_music() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "mu-3");
    let (port_a, _) = relay_ports(&h);
    let inv = refer_to_third(&mut h, &desk, 2);
    let (ep, offer) = music_offer(&h);
    h.reply(&offer, 200, "", CALLER, SEG1);
    h.sent.clear();
    h.reply(&inv, 486, "third", THIRD, SEG1);
    assert!(closed(&h, ep));
    let re = invites_to(&h.sent, CALLER)
        .pop()
        .expect("back to the transferor");
    assert_eq!(sdp_port(&re.body), port_a);
    let n = requests_to(&h, "NOTIFY", DESK);
    assert_eq!(sipfrag(&n[0]), "SIP/2.0 486 Busy Here\r\n");
}

#[test]
fn transferee_hears_silence_when_so_set() {
    let mut snap = snapshot();
    snap.settings.transfer_music = false;
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "mu-off");
    refer_to_third(&mut h, &desk, 2);
    assert!(invites_to(&h.sent, CALLER).is_empty());
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::OpenEndpoint { .. }))
    );
}

#[test]
fn transferor_hanging_up_before_the_target_answers() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "odd-1");
    let inv = refer_to_third(&mut h, &desk, 2);
    h.sent.clear();
    h.recv_raw(&desk.request("BYE", 3, "", None), DESK, SEG1);
    assert_eq!(last_status_to(&h, DESK), 200);
    assert!(
        requests_to(&h, "BYE", CALLER).is_empty(),
        "the caller stays"
    );
    assert!(h.cdrs.is_empty());
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert!(
        h.requests("NOTIFY").is_empty(),
        "nobody subscribed any more"
    );
    assert!(requests_to(&h, "BYE", DESK).is_empty(), "already gone");
    // The caller and the target talk; the caller's BYE reaches the target.
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 5, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn refer_before_the_answer_is_refused() {
    let mut h = setup();
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "odd-early",
    });
    let fork = invites_to(&out, DESK).pop().expect("the desk rings");
    h.reply(&fork, 180, "desk-r", DESK, SEG1);
    let desk = Party {
        at: DESK,
        ruri: fork.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1002@example.com>;tag=desk-r".into(),
        remote: fork.from().expect("From").to_string(),
        call_id: fork.call_id().expect("Call-ID").to_string(),
    };
    refer(&mut h, &desk, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, DESK), 481);
    assert!(invites_to(&h.sent, THIRD).is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

// ---- Blind transfer to the park code and to voice applications (engine::xfer_app) ----

/// The endpoint the last OpenEndpoint opened.
fn opened(h: &Harness) -> engine::media::EndpointId {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .next_back()
        .expect("an endpoint was opened")
}

fn tag(na: Option<sip::NameAddr>) -> String {
    na.and_then(|n| n.tag().map(str::to_string))
        .unwrap_or_default()
}

/// `by` REFERs its call to `number`: 202, NOTIFY 100 then 200 (terminated), BYE to `by`;
/// returns the re-INVITE `moved_at` got (the transferee moved onto our endpoint) and the
/// endpoint.
fn refer_to_app(
    h: &mut Harness,
    by: &Party,
    number: &str,
    moved_at: &str,
) -> (Request, engine::media::EndpointId) {
    h.media_log.clear();
    refer(h, by, 2, &format!("<sip:{number}@example.com>"));
    assert_eq!(last_status_to(h, by.at), 202);
    let frags: Vec<String> = requests_to(h, "NOTIFY", by.at)
        .iter()
        .map(sipfrag)
        .collect();
    assert_eq!(
        frags,
        vec!["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"],
        "progress, then done"
    );
    assert!(
        requests_to(h, "NOTIFY", by.at)[1]
            .headers
            .get(&HeaderName::SubscriptionState)
            .is_some_and(|s| s.as_str().starts_with("terminated"))
    );
    assert_eq!(requests_to(h, "BYE", by.at).len(), 1, "transferor released");
    assert!(
        requests_to(h, "BYE", moved_at).is_empty(),
        "transferee kept"
    );
    let ep = opened(h);
    let reinv = invites_to(&h.sent, moved_at)
        .pop()
        .expect("the transferee is re-INVITEd");
    assert_eq!(
        u32::from(sdp_port(&reinv.body)),
        u32::from(h.endpoints[&ep].port()),
        "onto our endpoint"
    );
    (reinv, ep)
}

#[test]
fn blind_transfer_to_the_park_code_parks_the_transferee_for_the_transferor() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-1");
    let (reinv, ep) = refer_to_app(&mut h, &desk, "*70", CALLER);
    // In the caller's own dialog: its Call-ID, its tag, ours.
    assert_eq!(reinv.call_id(), Some("bp-1"));
    assert_eq!(tag(reinv.to()), "a-bp-1");
    assert_eq!(
        tag(reinv.from()),
        tag(sip::NameAddr::parse(&caller.remote).ok())
    );
    // The relayed call ended with its own record.
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].hangup_cause, "blind transfer to *70");
    assert!(h.park_rows.is_empty(), "no slot before the phone accepts");
    // The caller accepts: ACK, the endpoint gets its media, the slot's row is stored with
    // the transferor as the parker, then the slot is announced and music follows.
    h.sent.clear();
    h.media_log.clear();
    h.reply(&reinv, 200, "", CALLER, SEG1);
    assert_eq!(requests_to(&h, "ACK", CALLER).len(), 1);
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::ConfigureEndpoint { endpoint, rtp: Some(_), .. } if *endpoint == ep)));
    let row = h.park_rows.get(&(1, 701)).expect("slot 701 stored");
    assert_eq!((row.caller.as_str(), row.parker.as_str()), ("1001", "1002"));
    assert_eq!(row.call_id, "bp-1");
    let leg = row.leg.clone().expect("the dialog is stored for a restart");
    assert!(leg.invite.starts_with("INVITE "));
    assert_eq!(leg.peer, addr(CALLER));
    assert_eq!(
        h.plays_on(ep),
        vec![apps::prompt::parked_on(701, apps::prompt::Lang::En).join("+")]
    );
    h.end_play(ep);
    assert_eq!(
        h.plays_on(ep).last().map(String::as_str),
        Some("moh:default")
    );
    let parked = h.engine.parked_calls(1);
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].slot, parked[0].parked_by.as_str()),
        (701, "1002")
    );
    // The timeout rings the transferor (the parker) back, not the parked phone.
    assert_parker_rung_back(&mut h);
    assert!(invites_to(&h.sent, CALLER).is_empty());
}

#[test]
fn blind_transfer_to_park_from_the_caller_parks_the_callee_and_a_third_phone_retrieves() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-2");
    let (reinv, ep) = refer_to_app(&mut h, &caller, "*70", DESK);
    // The callee's dialog is one we started: our tag is From, the phone's To.
    assert_eq!(reinv.call_id(), Some(desk.call_id.as_str()));
    assert_eq!(tag(reinv.to()), "t-bp-2");
    h.reply(&reinv, 200, "", DESK, SEG1);
    let row = h.park_rows.get(&(1, 701)).expect("slot 701 stored");
    assert_eq!((row.caller.as_str(), row.parker.as_str()), ("1002", "1001"));
    // 1003 dials the slot: both endpoints join one bridge, the row is deleted.
    h.media_log.clear();
    h.sent = h.dial(&Dial {
        from: "1003",
        to: "701",
        source: THIRD,
        local: SEG1,
        call_id: "bp-2-take",
    });
    let joined = h.joined_endpoints();
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert!(joined.contains(&ep));
    assert!(h.park_rows.is_empty());
    // The parked phone hangs up in its old dialog: the retriever gets BYE.
    h.sent.clear();
    h.recv_raw(&desk.request("BYE", 3, "", None), DESK, SEG1);
    assert_eq!(last_status_to(&h, DESK), 200);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert_eq!(h.engine.active_calls(), 0);
}

/// Slot 701's timeout (120 s) passes: the desk (1002, the parker) is rung with the parked
/// caller 1001 named.
fn assert_parker_rung_back(h: &mut Harness) {
    h.sent.clear();
    h.advance(Duration::from_secs(121));
    let cb = invites_to(&h.sent, DESK).pop().expect("the parker is rung");
    assert!(
        cb.from()
            .expect("From")
            .to_string()
            .contains("Parked 701: 1001")
    );
}

/// A park lot of one slot (701), taken by 1003 who parked itself.
fn full_park_lot() -> Harness {
    full_park_lot_on(snapshot())
}

/// [`full_park_lot`] on snapshot `snap` (e.g. with an IVR).
fn full_park_lot_on(mut snap: engine::Snapshot) -> Harness {
    snap.codes.park.lots.insert(
        1,
        engine::park::ParkLot {
            first: 701,
            last: 701,
            ..Default::default()
        },
    );
    let mut h = setup_with(snap);
    h.dial(&Dial {
        from: "1003",
        to: "*70",
        source: THIRD,
        local: SEG1,
        call_id: "park-1003",
    });
    assert!(h.park_rows.contains_key(&(1, 701)));
    h
}

#[test]
fn blind_transfer_to_park_with_the_lot_full_is_refused_and_the_call_kept() {
    let mut h = full_park_lot();
    assert!(h.park_rows.contains_key(&(1, 701)));
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-3");
    refer(&mut h, &desk, 2, "<sip:*70@example.com>");
    assert_eq!(last_status_to(&h, DESK), 486);
    assert!(requests_to(&h, "BYE", DESK).is_empty());
    assert!(invites_to(&h.sent, CALLER).is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 2, "the call goes on");
}

#[test]
fn a_transferee_refusing_the_re_invite_onto_park_ends_without_a_slot() {
    let mut h = setup();
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-4");
    let (reinv, _) = refer_to_app(&mut h, &desk, "*70", CALLER);
    h.sent.clear();
    h.reply(&reinv, 488, "", CALLER, SEG1);
    assert!(h.park_rows.is_empty());
    assert_eq!(h.engine.park_slot(1, 701), (false, None));
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(requests_to(&h, "BYE", CALLER).len(), 1);
    assert_eq!(
        h.cdrs.len(),
        2,
        "the relayed call's record and the moved party's"
    );
}

#[test]
fn blind_transfer_to_an_ivr_number_starts_the_menu_for_the_transferee() {
    let mut snap = snapshot();
    let m = apps::ivr::MenuSpec {
        greeting: "main-greeting".into(),
        ..Default::default()
    };
    snap.apps = engine::config::Apps::new(vec![engine::config::IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bi-1");
    let (reinv, ep) = refer_to_app(&mut h, &desk, "500", CALLER);
    assert!(
        h.plays_on(ep).is_empty(),
        "nothing before the phone accepts"
    );
    h.reply(&reinv, 200, "", CALLER, SEG1);
    assert!(
        h.plays_on(ep).iter().any(|p| p.contains("main-greeting")),
        "{:?}",
        h.plays_on(ep)
    );
    let calls = h.engine.calls(h.now);
    assert_eq!(calls.len(), 1);
    assert_eq!(h.cdrs.len(), 1, "the relayed call's record");
    assert_eq!(h.cdrs[0].hangup_cause, "blind transfer to 500");
}

#[test]
fn a_callee_parked_by_transfer_is_re_invited_in_its_own_dialog_after_a_restart() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-5");
    let (reinv, _) = refer_to_app(&mut h, &caller, "*70", DESK);
    h.reply(&reinv, 200, "", DESK, SEG1);
    assert_eq!(h.park_rows.len(), 1);
    // A new engine loads the row: the callee (a dialog we started) is re-INVITEd in it.
    let mut h2 = setup();
    h2.sent.clear();
    h2.media_log.clear();
    h2.engine
        .load_parked(h.park_rows.values().cloned().collect());
    h2.drain();
    let r = invites_to(&h2.sent, DESK)
        .pop()
        .expect("re-INVITE after restart");
    assert_eq!(r.call_id(), Some(desk.call_id.as_str()));
    assert_eq!(tag(r.to()), "t-bp-5", "the phone's tag");
    assert_eq!(
        tag(r.from()),
        tag(sip::NameAddr::parse(&desk.remote).ok()),
        "our tag"
    );
    assert_eq!(
        r.uri.to_string(),
        format!("sip:callee@{DESK}"),
        "sent to the phone's Contact (its 200's)"
    );
    let cseq = r.cseq().expect("CSeq").seq;
    assert!(cseq > reinv.cseq().expect("CSeq").seq, "our CSeq goes on");
    let ep = opened(&h2);
    h2.reply(&r, 200, "", DESK, SEG1);
    assert_eq!(
        h2.plays_on(ep).last().map(String::as_str),
        Some("moh:default")
    );
    assert_eq!(h2.engine.parked_calls(1)[0].parked_by, "1001");
}

#[test]
fn attended_transfer_onto_the_parking_dialog_parks_the_other_party_in_that_slot() {
    let mut h = setup();
    let (_caller, desk1) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "ap-1");
    // The desk parks itself (*70): slot 701, parker 1002.
    h.media_log.clear();
    h.sent = h.dial(&Dial {
        from: "1002",
        to: "*70",
        source: DESK,
        local: SEG1,
        call_id: "ap-park",
    });
    let ok = responses_to(&h, DESK)
        .into_iter()
        .rfind(|r| r.status == 200)
        .expect("the parking call is answered");
    let ep = opened(&h);
    let parking = Party {
        at: DESK,
        ruri: ok.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1002@example.com>;tag=a-ap-park".into(),
        remote: ok.to().expect("To").to_string(),
        call_id: "ap-park".into(),
    };
    h.recv_raw(&parking.request("ACK", 2, "", None), DESK, SEG1);
    let row = h.park_rows.get(&(1, 701)).expect("parked");
    assert_eq!((row.caller.as_str(), row.parker.as_str()), ("1002", "1002"));
    // The desk REFERs the caller with Replaces naming the parking dialog.
    let our_tag = tag(ok.to());
    let replaces = format!("ap-park%3Bto-tag%3D{our_tag}%3Bfrom-tag%3Da-ap-park");
    h.media_log.clear();
    refer(
        &mut h,
        &desk1,
        3,
        &format!("<sip:*70@example.com?Replaces={replaces}>"),
    );
    assert_eq!(last_status_to(&h, DESK), 202);
    let frags: Vec<String> = requests_to(&h, "NOTIFY", DESK)
        .iter()
        .map(sipfrag)
        .collect();
    assert_eq!(frags, vec!["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"]);
    let byes = requests_to(&h, "BYE", DESK);
    let mut ids: Vec<&str> = byes.iter().filter_map(|b| b.call_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        2,
        "both of the desk's legs are released: {ids:?}"
    );
    assert!(ids.contains(&"ap-park"));
    // The caller is re-INVITEd in its own dialog onto the parked call's endpoint.
    let reinv = invites_to(&h.sent, CALLER).pop().expect("re-INVITE");
    assert_eq!(reinv.call_id(), Some("ap-1"));
    assert_eq!(
        u32::from(sdp_port(&reinv.body)),
        u32::from(h.endpoints[&ep].port())
    );
    h.sent.clear();
    h.media_log.clear();
    h.reply(&reinv, 200, "", CALLER, SEG1);
    assert_eq!(requests_to(&h, "ACK", CALLER).len(), 1);
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::ConfigureEndpoint { endpoint, rtp: Some(_), .. } if *endpoint == ep)));
    assert_eq!(
        h.plays_on(ep).last().map(String::as_str),
        Some("moh:default")
    );
    // The slot shows the caller; the parker stays the desk; the row holds the caller's leg.
    let row = h.park_rows.get(&(1, 701)).expect("still parked");
    assert_eq!((row.caller.as_str(), row.parker.as_str()), ("1001", "1002"));
    assert_eq!(row.call_id, "ap-1");
    assert_eq!(
        h.engine.park_slot(1, 701).1.map(|c| c.0).as_deref(),
        Some("1001")
    );
    // The desk's own BYE on the parking dialog, crossing ours, ends nothing.
    h.recv_raw(&parking.request("BYE", 3, "", None), DESK, SEG1);
    assert!(h.engine.park_slot(1, 701).0);
    // 1003 retrieves it: joined with the parked endpoint.
    h.media_log.clear();
    h.sent = h.dial(&Dial {
        from: "1003",
        to: "701",
        source: THIRD,
        local: SEG1,
        call_id: "ap-take",
    });
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::Join { endpoint, .. } if *endpoint == ep)));
    assert!(h.park_rows.is_empty());
}

#[test]
fn administrator_transfer_to_the_park_code_parks_the_caller_for_the_answering_extension() {
    let mut h = setup();
    let (_caller, _desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-api");
    let id = h.engine.calls(h.now)[0].id;
    h.sent.clear();
    h.engine.transfer(id, "*70", h.now).expect("accepted");
    h.drain();
    assert!(
        requests_to(&h, "NOTIFY", DESK).is_empty(),
        "nobody subscribed"
    );
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1);
    let reinv = invites_to(&h.sent, CALLER).pop().expect("re-INVITE");
    h.reply(&reinv, 200, "", CALLER, SEG1);
    let row = h.park_rows.get(&(1, 701)).expect("parked");
    assert_eq!((row.caller.as_str(), row.parker.as_str()), ("1001", "1002"));
}

#[test]
fn blind_transfer_to_a_room_number_seats_the_transferee_in_the_room() {
    let mut snap = snapshot();
    let room = apps::conf::RoomSpec::default();
    snap.apps = engine::config::Apps::with_rooms(Vec::new(), vec![(1, "800".into(), room)]);
    let mut h = setup_with(snap);
    // 1003 is in room 800 already.
    h.media_log.clear();
    h.dial(&Dial {
        from: "1003",
        to: "800",
        source: THIRD,
        local: SEG1,
        call_id: "br-member",
    });
    let member = opened(&h);
    let room_bridge = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::Join { endpoint, bridge } if *endpoint == member => Some(*bridge),
            _ => None,
        })
        .expect("the member joined the room");
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "br-1");
    let (reinv, ep) = refer_to_app(&mut h, &desk, "800", CALLER);
    h.media_log.clear();
    h.reply(&reinv, 200, "", CALLER, SEG1);
    assert!(
        h.media_log.iter().any(|c| matches!(c,
            MediaCommand::Join { endpoint, bridge } if *endpoint == ep && *bridge == room_bridge)),
        "the transferee joins the room's bridge: {:?}",
        h.media_log
    );
}

#[test]
fn administrator_transfer_to_a_full_park_lot_is_a_conflict_and_the_call_kept() {
    let mut h = full_park_lot();
    let (_caller, _desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bp-api-full");
    let id = newest_call(&h);
    let r = h.engine.transfer(id, "*70", h.now).map_err(|e| e.status);
    assert_eq!(r, Err(409));
    h.drain();
    assert!(requests_to(&h, "BYE", DESK).is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 2);
}

const CARRIER: &str = "203.0.113.10:5060";

/// [`outside_routes`] with its trunk `carrier` (at [`CARRIER`]).
fn outside_with_trunk() -> Outside {
    national_outside("0|0ZXXXXXXXX", ("carrier", Some((CARRIER, ""))))
}

#[test]
fn blind_transfer_to_an_outside_number_rings_the_trunk_from_the_transferees_endpoint() {
    let mut snap = snapshot();
    snap.outside = outside_with_trunk();
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-out");
    let (reinv, ep) = refer_to_app(&mut h, &desk, "00312345678", CALLER);
    assert!(
        invites_to(&h.sent, CARRIER).is_empty(),
        "not before the move"
    );
    assert_eq!(h.cdrs[0].hangup_cause, "blind transfer to 00312345678");
    h.sent.clear();
    h.media_log.clear();
    h.reply(&reinv, 200, "", CALLER, SEG1);
    let inv = invites_to(&h.sent, CARRIER)
        .pop()
        .expect("the trunk is called");
    assert_eq!(inv.uri.to_string(), format!("sip:0312345678@{CARRIER}"));
    let trunk_ep = opened(&h);
    assert_ne!(trunk_ep, ep, "an endpoint of its own faces the trunk");
    assert_eq!(
        u32::from(sdp_port(&inv.body)),
        u32::from(h.endpoints[&trunk_ep].port()),
        "offered to the trunk"
    );
    assert!(
        h.plays_on(ep)
            .last()
            .is_some_and(|p| p.contains("Ringback")),
        "{:?}",
        h.plays_on(ep)
    );
    h.reply(&inv, 200, "far", CARRIER, SEG1);
    let joined: Vec<_> = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Join { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .collect();
    assert!(
        joined.contains(&ep) && joined.contains(&trunk_ep),
        "{joined:?}"
    );
    let calls = h.engine.calls(h.now);
    assert_eq!(calls.len(), 1);
    h.engine.hangup(calls[0].id, h.now);
    h.drain();
    let cdr = h.cdrs.last().expect("the outside call's record");
    assert_eq!(cdr.route.direction, engine::db::Direction::Outbound);
    assert_eq!(cdr.route.trunk, "carrier");
    assert_eq!(cdr.route.sent_number, "0312345678");
    assert_eq!(cdr.caller, "1002", "charged to the transferor");
    assert_eq!(cdr.disposition, Disposition::Answered);
}

#[test]
fn transfer_to_an_outside_number_beyond_the_transferors_limits_is_refused_and_the_call_kept() {
    let mut snap = snapshot();
    snap.outside = outside_with_trunk();
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".to_string())) {
        e.limits.max_concurrent = 0;
    }
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-lim");
    refer(&mut h, &desk, 2, "<sip:00312345678@example.com>");
    assert_eq!(last_status_to(&h, DESK), 403);
    assert!(h.requests("INVITE").is_empty(), "nothing is dialled");
    assert!(h.requests("BYE").is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1, "the call is kept");
    assert_eq!(h.engine.counters().fraud_blocked, 1);
}

// ---- Transfer to a ring group (crates/engine/src/xfer_group.rs) ----

const FOURTH: &str = "192.0.2.24:5060"; // 1004

/// Extensions 1001-1005 (1005 never registers), group `sales` = 600 with `members`.
fn group_harness(strategy: engine::hunt::Strategy, members: &[&str], no_answer: &str) -> Harness {
    group_harness_on(snapshot(), strategy, members, no_answer)
}

/// [`group_harness`] on snapshot `s` (e.g. with an IVR).
fn group_harness_on(
    mut s: engine::Snapshot,
    strategy: engine::hunt::Strategy,
    members: &[&str],
    no_answer: &str,
) -> Harness {
    s.settings.transfer_music = false;
    for (id, n) in [(4, "1004"), (5, "1005")] {
        s.extensions.insert((1, n.to_string()), ext(id, n, 3));
    }
    s.apps.numbers.insert(
        (1, "600".into()),
        engine::dialplan::Destination::Group("sales".into()),
    );
    s.apps.numbers.insert(
        (1, "601".into()),
        engine::dialplan::Destination::Group("ghost".into()),
    );
    s.apps.hunt.groups.insert(
        (1, "sales".into()),
        engine::hunt::GroupEntry {
            id: 1,
            name: "sales".into(),
            number: "600".into(),
            spec: engine::hunt::GroupSpec {
                strategy,
                members: members
                    .iter()
                    .map(|n| engine::hunt::Member {
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
    let mut h = setup_with(s);
    let c = format!("<sip:1004@{FOURTH}>");
    assert_eq!(
        h.register("1004", Some(&c), Some(3600), FOURTH, SEG1)
            .status,
        200
    );
    h.sent.clear();
    h
}

fn event_list(h: &Harness, id: u64) -> Vec<(&'static str, String, u16)> {
    h.engine
        .transfer_events(id)
        .iter()
        .map(|e| (e.kind, e.to.clone(), e.status))
        .collect()
}

#[test]
fn blind_transfer_to_a_sequential_ring_group_hunts_until_a_member_answers() {
    use engine::hunt::Strategy;
    let mut h = group_harness(Strategy::Sequential, &["1005", "1003", "1004"], "hangup");
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xg-seq");
    let (_, port_b) = relay_ports(&h);
    let id = h.engine.calls(h.now)[0].id;
    refer(&mut h, &desk, 2, "<sip:600@example.com>");
    assert_eq!(last_status_to(&h, DESK), 202);
    // 1005 is not registered: skipped. 1003 rings first, with the group's prefix and the
    // transferee's media on the relay socket that faced the desk.
    assert!(invites_to(&h.sent, FOURTH).is_empty());
    let inv3 = invites_to(&h.sent, THIRD).pop().expect("1003 rings");
    assert_eq!(sdp_port(&inv3.body), port_b);
    let from = inv3.from().expect("From");
    assert_eq!(from.display_name.as_deref(), Some("Sales: Ext 1001"));
    assert!(from.uri.to_string().contains("1001"));
    h.reply(&inv3, 180, "t3", THIRD, SEG1);
    assert_eq!(
        sipfrag(requests_to(&h, "NOTIFY", DESK).last().expect("NOTIFY")),
        "SIP/2.0 180 Ringing\r\n"
    );
    h.sent.clear();
    h.advance(Duration::from_millis(9_700));
    assert!(
        requests_to(&h, "CANCEL", THIRD).is_empty(),
        "1003 rings its 10 s"
    );
    h.advance(Duration::from_millis(600));
    assert_eq!(requests_to(&h, "CANCEL", THIRD).len(), 1);
    h.sent.clear();
    h.reply(&inv3, 487, "t3", THIRD, SEG1);
    let inv4 = invites_to(&h.sent, FOURTH).pop().expect("then 1004 rings");
    assert_eq!(sdp_port(&inv4.body), port_b);
    assert!(
        requests_to(&h, "NOTIFY", DESK).is_empty(),
        "no failure reported between steps"
    );
    h.sent.clear();
    h.reply(&inv4, 200, "t4", FOURTH, SEG1);
    assert_eq!(
        sipfrag(requests_to(&h, "NOTIFY", DESK).last().expect("NOTIFY")),
        "SIP/2.0 200 OK\r\n"
    );
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1, "transferor released");
    assert_eq!(
        remote_of(&h.media_log, Side::B),
        vec![addr("192.0.2.24:6000")],
        "the relay's far side points at the member who answered"
    );
    assert_eq!(
        event_list(&h, id),
        vec![
            ("skipped", "1005".to_string(), 480),
            ("hunt", "1003".to_string(), 180),
            ("no_answer", "1003".to_string(), 480),
            ("hunt", "1004".to_string(), 180),
            ("blind", "1004".to_string(), 200),
        ]
    );
    // The member who answered is an extension of this call: it may transfer it on.
    h.sent.clear();
    let member = Party {
        at: FOURTH,
        ruri: inv4.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1004@example.com>;tag=t4".into(),
        remote: inv4.from().expect("From").to_string(),
        call_id: inv4.call_id().expect("Call-ID").to_string(),
    };
    refer(&mut h, &member, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, FOURTH), 202);
    let _ = caller;
}

#[test]
fn administrator_transfer_to_a_simultaneous_group_rings_every_available_member() {
    use engine::hunt::Strategy;
    let mut h = group_harness(Strategy::Simultaneous, &["1003", "1004", "1005"], "hangup");
    let (_caller, _desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xg-sim");
    let id = h.engine.calls(h.now)[0].id;
    h.engine.transfer(id, "600", h.now).expect("accepted");
    h.drain();
    let inv3 = invites_to(&h.sent, THIRD).pop().expect("1003 rings");
    let inv4 = invites_to(&h.sent, FOURTH).pop().expect("1004 rings");
    h.reply(&inv4, 180, "t4", FOURTH, SEG1);
    h.sent.clear();
    h.reply(&inv3, 200, "t3", THIRD, SEG1);
    assert_eq!(
        requests_to(&h, "CANCEL", FOURTH).len(),
        1,
        "the other member is cancelled"
    );
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1);
    let _ = inv4;
    let ev = event_list(&h, id);
    assert_eq!(ev.last(), Some(&("blind", "1003".to_string(), 200)));
}

#[test]
fn transfer_to_a_group_with_nobody_available_follows_its_no_answer_destination() {
    use engine::hunt::Strategy;
    // Only 1005 (not registered): nobody can ring; the group's no-answer is 1003's mailbox.
    let mut h = group_harness(Strategy::Sequential, &["1005"], "vm:1003");
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xg-vm");
    let id = h.engine.calls(h.now)[0].id;
    let (reinv, ep) = refer_to_app(&mut h, &desk, "600", CALLER);
    h.reply(&reinv, 200, "", CALLER, SEG1);
    assert!(
        h.plays_on(ep).iter().any(|p| p.contains("vm-")),
        "the mailbox greeting plays: {:?}",
        h.plays_on(ep)
    );
    assert_eq!(h.cdrs.len(), 1, "the relayed call's record");
    let (_, _, events) = h.call_events.last().expect("events stored");
    let kinds: Vec<(&str, &str)> = events.iter().map(|e| (e.kind, e.to.as_str())).collect();
    assert_eq!(kinds, vec![("skipped", "1005"), ("blind", "vm:1003")]);
    let _ = id;
}

#[test]
fn transfer_to_a_group_nobody_answers_with_hangup_fails_like_an_unanswered_extension() {
    use engine::hunt::Strategy;
    let mut h = group_harness(Strategy::FirstAvailable, &["1003", "1004"], "hangup");
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xg-fa");
    refer(&mut h, &desk, 2, "<sip:600@example.com>");
    let inv3 = invites_to(&h.sent, THIRD)
        .pop()
        .expect("the first available rings");
    assert!(
        invites_to(&h.sent, FOURTH).is_empty(),
        "only the first available"
    );
    h.sent.clear();
    h.reply(&inv3, 486, "t3", THIRD, SEG1);
    assert_eq!(
        sipfrag(requests_to(&h, "NOTIFY", DESK).last().expect("NOTIFY")),
        "SIP/2.0 480 Temporarily Unavailable\r\n",
        "the transferor learns the group did not answer and keeps the caller"
    );
    assert!(h.requests("BYE").is_empty());
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn transfer_to_a_group_that_does_not_exist_is_refused_and_the_call_kept() {
    use engine::hunt::Strategy;
    let mut h = group_harness(Strategy::Simultaneous, &["1003"], "hangup");
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xg-none");
    // No such number; and 601, a number that still names a group that is gone.
    refer(&mut h, &desk, 2, "<sip:699@example.com>");
    assert_eq!(last_status_to(&h, DESK), 404);
    refer(&mut h, &desk, 3, "<sip:601@example.com>");
    assert_eq!(last_status_to(&h, DESK), 404);
    let id = h.engine.calls(h.now)[0].id;
    let e = h.engine.transfer(id, "601", h.now).expect_err("refused");
    assert_eq!(e.status, 404);
    assert!(e.reason.contains("ghost"), "{}", e.reason);
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 3, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1, "the call went on");
}

#[test]
fn attended_transfer_when_the_consultation_call_went_to_a_ring_group() {
    use engine::hunt::Strategy;
    let mut h = group_harness(Strategy::Simultaneous, &["1003", "1004"], "hangup");
    let (_caller, desk1) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xg-at1");
    // The desk consults the group; 1004 answers.
    let out = h.dial(&Dial {
        from: "1002",
        to: "600",
        source: DESK,
        local: SEG1,
        call_id: "xg-at2",
    });
    let inv4 = invites_to(&out, FOURTH).pop().expect("1004 rings");
    let inv3 = invites_to(&out, THIRD).pop().expect("1003 rings");
    h.reply(&inv3, 180, "t3", THIRD, SEG1);
    h.sent.clear();
    h.reply(&inv4, 200, "t4", FOURTH, SEG1);
    let ok = responses_to(&h, DESK)
        .into_iter()
        .rfind(|r| r.status == 200)
        .expect("the desk is answered");
    let our_tag = tag(ok.to());
    let replaces = format!("xg-at2%3Bto-tag%3D{our_tag}%3Bfrom-tag%3Da-xg-at2");
    h.sent.clear();
    refer(
        &mut h,
        &desk1,
        3,
        &format!("<sip:600@example.com?Replaces={replaces}>"),
    );
    assert_eq!(last_status_to(&h, DESK), 202);
    assert!(
        invites_to(&h.sent, FOURTH).pop().is_some(),
        "the member who answered is joined to the caller"
    );
    let calls = h.engine.calls(h.now);
    assert_eq!(calls.len(), 1);
    let ev = h.engine.transfer_events(calls[0].id);
    assert_eq!((ev[0].kind, ev[0].to.as_str()), ("attended", "1004"));
}

// ---- Transfer to voicemail (feature codes vm_direct, vm_own_box, vm_main) ----

#[test]
fn blind_transfer_to_the_vm_direct_code_sends_the_caller_into_a_colleagues_mailbox() {
    let mut snap = snapshot();
    snap.settings.transfer_music = false;
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xv-direct");
    let (reinv, ep) = refer_to_app(&mut h, &desk, "*991003", CALLER);
    assert!(
        invites_to(&h.sent, THIRD).is_empty(),
        "1003's phone does not ring"
    );
    h.reply(&reinv, 200, "", CALLER, SEG1);
    assert_eq!(
        h.plays_on(ep).last().map(String::as_str),
        Some("vm-person-at-ext+digit-1+digit-0+digit-0+digit-3+vm-is-unavailable+vm-leave-message"),
        "1003's greeting"
    );
    h.end_play(ep);
    let rec = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::Record { endpoint, path, .. } if *endpoint == ep => Some(path.clone()),
            _ => None,
        })
        .expect("the message is recorded");
    assert!(rec.starts_with("voicemail/1/1003/msg-"), "{rec}");
    assert_eq!(h.cdrs[0].hangup_cause, "blind transfer to *991003");
}

#[test]
fn transfer_to_the_vm_direct_code_of_no_extension_is_refused_and_the_call_kept() {
    let mut h = setup();
    let (caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xv-bad");
    refer(&mut h, &desk, 2, "<sip:*991999@example.com>");
    assert_eq!(last_status_to(&h, DESK), 404);
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(
        h.engine.transfer(id, "*99", h.now).map_err(|e| e.status),
        Err(404)
    );
    h.sent.clear();
    h.recv_raw(&caller.request("BYE", 3, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1, "the call went on");
}

#[test]
fn transfer_to_the_own_box_code_opens_the_transferors_box_behind_its_pin() {
    let mut snap = snapshot();
    snap.settings.transfer_music = false;
    let mut h = setup_with(snap);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xv-own");
    let (reinv, ep) = refer_to_app(&mut h, &desk, "*97", CALLER);
    h.reply(&reinv, 200, "", CALLER, SEG1);
    let plays = h.plays_on(ep);
    let first = plays.first().expect("a prompt");
    assert!(first.contains("pin"), "the PIN is asked: {plays:?}");
    // The PIN entered is checked against 1002's box, not the transferee's.
    h.end_play(ep);
    h.keys(ep, "1234#");
    let verified: Vec<(String, Option<String>)> = h
        .vm_ops
        .iter()
        .filter_map(|op| match op {
            engine::vm::VmOp::Verify { mailbox, pin, .. } => Some((mailbox.clone(), pin.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        verified,
        vec![("1002".to_string(), Some("1234".to_string()))]
    );
}

#[test]
fn administrator_transfer_to_the_main_voicemail_code_asks_for_a_box() {
    let mut snap = snapshot();
    snap.settings.transfer_music = false;
    let mut h = setup_with(snap);
    let (_caller, _desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "xv-main");
    let id = h.engine.calls(h.now)[0].id;
    h.media_log.clear();
    h.engine.transfer(id, "*98", h.now).expect("accepted");
    h.drain();
    let ep = opened(&h);
    let reinv = invites_to(&h.sent, CALLER).pop().expect("re-INVITE");
    h.reply(&reinv, 200, "", CALLER, SEG1);
    let plays = h.plays_on(ep);
    assert!(
        plays.first().is_some_and(|p| p.contains("mailbox")),
        "the box number is asked: {plays:?}"
    );
}

#[test]
fn the_vm_direct_code_is_in_the_tenant_table_and_conflicts_are_refused() {
    use engine::features::{FeatureAction, FeatureError, FeatureTable};
    let t = FeatureTable::default();
    let c = t.recognise("*991003").expect("recognised");
    assert_eq!(
        (c.action, c.arg.as_str()),
        (FeatureAction::VmDirect, "1003")
    );
    let none: [(&str, &str); 0] = [];
    // "*9" + extension would swallow *90 ... *98.
    let e = t
        .with(FeatureAction::VmDirect, Some("*9"), none)
        .expect_err("prefix");
    assert!(matches!(e, FeatureError::Prefix { .. }), "{e}");
    let moved = t
        .with(FeatureAction::VmDirect, Some("*6"), none)
        .expect("a free code");
    assert_eq!(
        moved.recognise("*61003").map(|c| c.action),
        Some(FeatureAction::VmDirect)
    );
}

// ---- Transfer of anchored calls (crates/engine/src/anchor/xfer.rs) ----

/// 1001 calls the IVR 500, presses 1 and 1002 answers: (caller's 200, caller's endpoint,
/// the desk's side of its dialog).
fn ivr_call_answered(h: &mut Harness, cid: &str) -> (Response, engine::media::EndpointId, Party) {
    let out = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id: cid,
    });
    h.sent = out;
    let ok = responses_to(h, CALLER)
        .into_iter()
        .rfind(|r| r.status == 200)
        .expect("the IVR answers");
    let caller = Party {
        at: CALLER,
        ruri: ok.headers.contact().expect("Contact").uri.to_string(),
        local: format!("<sip:1001@example.com>;tag=a-{cid}"),
        remote: ok.to().expect("To").to_string(),
        call_id: cid.to_string(),
    };
    h.recv_raw(&caller.request("ACK", 2, "", None), CALLER, SEG1);
    let a_ep = opened(h);
    h.end_play(a_ep);
    h.sent.clear();
    h.keys(a_ep, "1");
    let inv = invites_to(&h.sent, DESK).pop().expect("1002 rings");
    h.reply(&inv, 200, "desk", DESK, SEG1);
    let desk = Party {
        at: DESK,
        ruri: inv.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1002@example.com>;tag=desk".into(),
        remote: inv.from().expect("From").to_string(),
        call_id: inv.call_id().expect("Call-ID").to_string(),
    };
    h.sent.clear();
    h.media_log.clear();
    (ok, a_ep, desk)
}

/// The desk's REFER of an anchored call was accepted: 202, the desk released, no re-INVITE
/// to the caller (it stays on its endpoint).
fn assert_accepted_caller_stays(h: &Harness) {
    assert_eq!(last_status_to(h, DESK), 202);
    assert_eq!(
        requests_to(h, "BYE", DESK).len(),
        1,
        "the transferor is released"
    );
    assert!(
        invites_to(&h.sent, CALLER).is_empty(),
        "the caller stays on its endpoint"
    );
}

/// Every endpoint of `eps` was joined to a bridge since the media log was last cleared.
fn assert_joined(h: &Harness, eps: &[engine::media::EndpointId], what: &str) {
    for ep in eps {
        assert!(
            h.media_log
                .iter()
                .any(|c| matches!(c, MediaCommand::Join { endpoint, .. } if endpoint == ep)),
            "{what}: {ep:?} not joined"
        );
    }
}

/// The id of the call set up last.
fn newest_call(h: &Harness) -> u64 {
    h.engine
        .calls(h.now)
        .iter()
        .map(|c| c.id)
        .max()
        .expect("a call")
}

/// [`ivr_snapshot`] with the transferee hearing no music while a transfer goes on.
fn ivr_harness_without_transfer_music() -> Harness {
    let mut snap = ivr_snapshot();
    snap.settings.transfer_music = false;
    setup_with(snap)
}

fn ivr_snapshot() -> engine::Snapshot {
    let mut snap = snapshot();
    let mut m = apps::ivr::MenuSpec {
        greeting: "main-greeting".into(),
        fallback: "hangup".into(),
        ..Default::default()
    };
    m.options.insert('1', "ext:1002".into());
    snap.apps = engine::config::Apps::new(vec![engine::config::IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
    snap
}

#[test]
fn a_call_through_an_ivr_is_blind_transferred_by_the_answering_phone() {
    let mut h = setup_with(ivr_snapshot());
    let (ok, a_ep, desk) = ivr_call_answered(&mut h, "xa-1");
    let id = h.engine.calls(h.now)[0].id;
    refer(&mut h, &desk, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, DESK), 202);
    let frags: Vec<String> = requests_to(&h, "NOTIFY", DESK)
        .iter()
        .map(sipfrag)
        .collect();
    assert_eq!(frags, vec!["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"]);
    assert_eq!(
        requests_to(&h, "BYE", DESK).len(),
        1,
        "the transferor is released"
    );
    assert!(
        invites_to(&h.sent, CALLER).is_empty(),
        "the caller stays on its endpoint"
    );
    let inv = invites_to(&h.sent, THIRD).pop().expect("1003 rings");
    let b_ep = opened(&h);
    assert_eq!(
        u32::from(sdp_port(&inv.body)),
        u32::from(h.endpoints[&b_ep].port()),
        "from an endpoint of ours"
    );
    assert!(
        h.plays_on(a_ep).iter().any(|p| p == "tone:Ringback"),
        "the caller hears ringback: {:?}",
        h.plays_on(a_ep)
    );
    // The desk's own BYE, crossing ours, ends nothing.
    h.recv_raw(&desk.request("BYE", 3, "", None), DESK, SEG1);
    assert_eq!(last_status_to(&h, DESK), 200);
    assert_eq!(h.engine.calls(h.now).len(), 1);
    h.media_log.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_joined(&h, &[a_ep, b_ep], "caller and target bridged");
    let ev = h.engine.transfer_events(id);
    assert_eq!(
        ev.iter()
            .map(|e| (e.kind, e.by.as_str(), e.to.as_str()))
            .collect::<Vec<_>>(),
        vec![("blind", "1002", "1003")]
    );
    // The new target may transfer again; then the caller hangs up: one record.
    h.sent.clear();
    let caller = Party {
        at: CALLER,
        ruri: ok.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1001@example.com>;tag=a-xa-1".into(),
        remote: ok.to().expect("To").to_string(),
        call_id: "xa-1".into(),
    };
    h.recv_raw(&caller.request("BYE", 3, "", None), CALLER, SEG1);
    assert_eq!(requests_to(&h, "BYE", THIRD).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].callee, "1003");
    assert_eq!(h.call_events.len(), 1);
}

#[test]
fn anchored_transfer_refusals_keep_the_call() {
    let mut snap = ivr_snapshot();
    snap.outside = outside_routes();
    if let Some(e) = snap.extensions.get_mut(&(1, "1002".to_string())) {
        e.cos = CallClass::Internal;
    }
    let mut h = setup_with(snap);
    let (ok, _a_ep, desk) = ivr_call_answered(&mut h, "xa-2");
    let id = h.engine.calls(h.now)[0].id;
    // No such number; Replaces naming no call; the caller's side transferring.
    refer(&mut h, &desk, 2, "<sip:1999@example.com>");
    assert_eq!(last_status_to(&h, DESK), 404);
    refer(
        &mut h,
        &desk,
        3,
        "<sip:1003@example.com?Replaces=x%3Bto-tag%3Da%3Bfrom-tag%3Db>",
    );
    assert_eq!(last_status_to(&h, DESK), 403, "Replaces names no call here");
    let caller = Party {
        at: CALLER,
        ruri: ok.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1001@example.com>;tag=a-xa-2".into(),
        remote: ok.to().expect("To").to_string(),
        call_id: "xa-2".into(),
    };
    refer(&mut h, &caller, 3, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, CALLER), 501);
    // A number the desk may not call (class of service internal).
    refer(&mut h, &desk, 4, "<sip:00312345678@example.com>");
    let r = responses_to(&h, DESK).pop().expect("answered");
    assert_eq!(r.status, 403);
    assert!(r.reason.contains("not allowed"), "{}", r.reason);
    assert!(h.requests("INVITE").is_empty(), "nothing is dialled");
    assert!(h.requests("BYE").is_empty());
    // The administrator's transfer of the same call works.
    h.engine.transfer(id, "1003", h.now).expect("accepted");
    h.drain();
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1);
    assert!(invites_to(&h.sent, THIRD).pop().is_some());
}

#[test]
fn a_transcoded_call_is_blind_transferred_by_the_answering_phone() {
    let mut h = setup();
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "xa-tc",
    });
    let first = invites_to(&out, DESK).pop().expect("1002 rings");
    h.sent.clear();
    // 1002 takes none of the caller's codecs: the call is retried with transcoding.
    h.reply(&first, 488, "desk", DESK, SEG1);
    let again = invites_to(&h.sent, DESK)
        .pop()
        .expect("rung again, transcoded");
    h.reply(&again, 200, "desk2", DESK, SEG1);
    assert_eq!(h.engine.active_calls(), 1);
    let desk = Party {
        at: DESK,
        ruri: again.headers.contact().expect("Contact").uri.to_string(),
        local: "<sip:1002@example.com>;tag=desk2".into(),
        remote: again.from().expect("From").to_string(),
        call_id: again.call_id().expect("Call-ID").to_string(),
    };
    h.media_log.clear();
    refer(&mut h, &desk, 2, "<sip:1003@example.com>");
    assert_eq!(last_status_to(&h, DESK), 202);
    assert_eq!(requests_to(&h, "BYE", DESK).len(), 1);
    assert!(
        invites_to(&h.sent, CALLER).is_empty(),
        "the caller stays on its endpoint"
    );
    let inv = invites_to(&h.sent, THIRD).pop().expect("1003 rings");
    h.reply(&inv, 200, "third", THIRD, SEG1);
    let joined = h
        .media_log
        .iter()
        .filter(|c| matches!(c, MediaCommand::Join { .. }))
        .count();
    assert_eq!(joined, 2, "the caller's and the target's endpoints bridged");
    let id = h.engine.calls(h.now)[0].id;
    assert_eq!(
        h.engine
            .transfer_events(id)
            .iter()
            .map(|e| (e.kind, e.by.as_str(), e.to.as_str()))
            .collect::<Vec<_>>(),
        vec![("blind", "1002", "1003")]
    );
}

#[test]
fn an_ivr_call_is_attended_transferred_by_the_answering_phone() {
    let mut h = setup_with(ivr_snapshot());
    let (_ok, a_ep, desk1) = ivr_call_answered(&mut h, "xa-at1");
    let id = h.engine.calls(h.now)[0].id;
    // The desk consults 1003 in a call of its own, then joins them.
    let (desk2, third) = call_up(&mut h, ("1002", DESK), ("1003", THIRD), "xa-at2");
    let our_tag = desk2
        .remote
        .split("tag=")
        .nth(1)
        .expect("our tag")
        .to_string();
    let replaces = format!("xa-at2%3Bto-tag%3D{our_tag}%3Bfrom-tag%3Da-xa-at2");
    h.media_log.clear();
    refer(
        &mut h,
        &desk1,
        2,
        &format!("<sip:1003@example.com?Replaces={replaces}>"),
    );
    assert_eq!(last_status_to(&h, DESK), 202);
    let frags: Vec<String> = requests_to(&h, "NOTIFY", DESK)
        .iter()
        .map(sipfrag)
        .collect();
    assert_eq!(frags, vec!["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"]);
    assert_eq!(
        requests_to(&h, "BYE", DESK).len(),
        2,
        "both of the desk's legs"
    );
    assert!(
        invites_to(&h.sent, CALLER).is_empty(),
        "the caller stays on its endpoint"
    );
    assert_eq!(
        h.cdrs.len(),
        1,
        "the consultation call ended with its record"
    );
    // 1003 is re-INVITEd onto a new endpoint of the first call.
    let ep = opened(&h);
    let reinv = invites_to(&h.sent, THIRD).pop().expect("1003 re-INVITEd");
    assert_eq!(
        u32::from(sdp_port(&reinv.body)),
        u32::from(h.endpoints[&ep].port())
    );
    assert_eq!(
        reinv.call_id().expect("Call-ID"),
        third.call_id,
        "in its own dialog"
    );
    h.sent.clear();
    h.media_log.clear();
    h.reply(&reinv, 200, "", THIRD, SEG1);
    assert_eq!(requests_to(&h, "ACK", THIRD).len(), 1);
    assert_joined(&h, &[a_ep, ep], "caller and target bridged");
    let ev = h.engine.transfer_events(id);
    assert_eq!(
        ev.iter()
            .map(|e| (e.kind, e.by.as_str(), e.to.as_str()))
            .collect::<Vec<_>>(),
        vec![("attended", "1002", "1003")]
    );
    // 1003 hangs up: the caller gets the BYE, one more record.
    h.sent.clear();
    h.recv_raw(&third.request("BYE", 7, "", None), THIRD, SEG1);
    assert_eq!(requests_to(&h, "BYE", CALLER).len(), 1);
    assert_eq!(h.cdrs.len(), 2);
    assert_eq!(h.cdrs[1].callee, "1003");
}

#[test]
fn a_pairs_stored_call_follows_a_blind_transfer_to_the_target() {
    let mut h = setup();
    h.engine.set_live_calls(true);
    let (_caller, desk) = call_up(&mut h, ("1001", CALLER), ("1002", DESK), "bt-live");
    let row = |h: &Harness| {
        h.live_rows
            .get(&(1, "bt-live".to_string()))
            .cloned()
            .expect("the call is stored")
    };
    let before = row(&h);
    assert_eq!(before.b.as_ref().map(|b| b.peer), Some(addr(DESK)));
    let inv = refer_to_third(&mut h, &desk, 2);
    h.reply(&inv, 200, "third", THIRD, SEG1);
    // The node taking over would continue the call with the target, not the released desk.
    let after = row(&h);
    let b = after.b.as_ref().expect("the far leg is stored");
    assert_eq!(b.peer, addr(THIRD));
    assert_eq!(b.remote_rtp, Some(addr("192.0.2.23:6000")));
    assert_eq!(after.a.peer, addr(CALLER));
}

#[test]
fn an_ivr_call_is_blind_transferred_to_a_ring_group_by_the_answering_phone() {
    use engine::hunt::Strategy;
    // 1005 is not registered (skipped); 1003 rings first, then 1004.
    let mut h = group_harness_on(
        ivr_snapshot(),
        Strategy::Sequential,
        &["1005", "1003", "1004"],
        "hangup",
    );
    let (_ok, a_ep, desk) = ivr_call_answered(&mut h, "xa-g1");
    let id = h.engine.calls(h.now)[0].id;
    refer(&mut h, &desk, 2, "<sip:600@example.com>");
    assert_accepted_caller_stays(&h);
    let first = invites_to(&h.sent, THIRD).pop().expect("1003 rings first");
    assert!(
        invites_to(&h.sent, FOURTH).is_empty(),
        "sequential: one at a time"
    );
    let from = first.from().expect("From").to_string();
    assert!(
        from.contains("Sales"),
        "the group's caller-ID prefix: {from}"
    );
    assert!(
        h.plays_on(a_ep).iter().any(|p| p == "tone:Ringback"),
        "the caller hears ringback: {:?}",
        h.plays_on(a_ep)
    );
    // 1003 rings out (its 10 s): 1004 rings next and answers.
    h.reply(&first, 180, "third", THIRD, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(10));
    assert_eq!(requests_to(&h, "CANCEL", THIRD).len(), 1, "1003 given up");
    h.reply(&first, 487, "third", THIRD, SEG1);
    let next = invites_to(&h.sent, FOURTH).pop().expect("then 1004 rings");
    let b_ep = opened(&h);
    h.media_log.clear();
    h.reply(&next, 200, "fourth", FOURTH, SEG1);
    assert_joined(
        &h,
        &[a_ep, b_ep],
        "caller and the member who answered bridged",
    );
    let ev = h.engine.transfer_events(id);
    assert_eq!(
        ev.first().map(|e| (e.kind, e.by.as_str(), e.to.as_str())),
        Some(("blind", "1002", "600"))
    );
    assert_eq!(
        h.engine.calls(h.now).len(),
        1,
        "one call, one record to come"
    );
}

#[test]
fn an_anchored_transfer_to_a_group_that_is_gone_is_refused_and_the_call_kept() {
    use engine::hunt::Strategy;
    let mut h = group_harness_on(ivr_snapshot(), Strategy::Simultaneous, &["1003"], "hangup");
    let (_ok, _a_ep, desk) = ivr_call_answered(&mut h, "xa-g2");
    // 601 still names group `ghost`, which no longer exists.
    refer(&mut h, &desk, 2, "<sip:601@example.com>");
    let r = responses_to(&h, DESK).pop().expect("answered");
    assert_eq!(r.status, 404);
    assert!(r.reason.contains("ghost"), "{}", r.reason);
    assert!(h.requests("INVITE").is_empty(), "nothing is dialled");
    assert!(h.requests("BYE").is_empty(), "the call goes on");
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn an_ivr_call_blind_transferred_to_the_park_code_is_parked_for_the_transferor() {
    let mut h = ivr_harness_without_transfer_music();
    let (_ok, a_ep, desk) = ivr_call_answered(&mut h, "xa-p1");
    refer(&mut h, &desk, 2, "<sip:*70@example.com>");
    assert_accepted_caller_stays(&h);
    let row = h.park_rows.get(&(1, 701)).expect("slot 701 stored");
    assert_eq!((row.caller.as_str(), row.parker.as_str()), ("1001", "1002"));
    assert_eq!(
        h.plays_on(a_ep).last().cloned(),
        Some(apps::prompt::parked_on(701, apps::prompt::Lang::En).join("+")),
        "the caller hears its slot"
    );
    h.end_play(a_ep);
    assert_eq!(
        h.plays_on(a_ep).last().map(String::as_str),
        Some("moh:default")
    );
    let parked = h.engine.parked_calls(1);
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.slot, p.parked_by.as_str()))
            .collect::<Vec<_>>(),
        vec![(701, "1002")]
    );
    // The lot's timeout rings the transferor back.
    assert_parker_rung_back(&mut h);
}

#[test]
fn an_anchored_transfer_to_a_full_park_lot_is_refused_and_the_call_kept() {
    let mut h = full_park_lot_on(ivr_snapshot());
    let (_ok, _a_ep, desk) = ivr_call_answered(&mut h, "xa-p2");
    refer(&mut h, &desk, 2, "<sip:*70@example.com>");
    assert_eq!(last_status_to(&h, DESK), 486);
    assert!(requests_to(&h, "BYE", DESK).is_empty(), "the call goes on");
    // The administrator's transfer: a conflict.
    let id = h
        .engine
        .calls(h.now)
        .iter()
        .find(|c| c.call_id == "xa-p2")
        .map(|c| c.id)
        .expect("the IVR call");
    let e = h.engine.transfer(id, "*70", h.now).expect_err("refused");
    assert_eq!(e.status, 409, "{}", e.reason);
    h.drain();
    assert!(requests_to(&h, "BYE", DESK).is_empty(), "the call goes on");
    assert_eq!(h.park_rows.len(), 1, "only 1003's slot");
}

#[test]
fn an_ivr_call_blind_transferred_to_the_voicemail_menus_is_asked_for_the_right_box() {
    let mut h = ivr_harness_without_transfer_music();
    // *97: the transferor's (1002's) box, behind its PIN.
    let (_ok, a_ep, desk) = ivr_call_answered(&mut h, "xa-v1");
    refer(&mut h, &desk, 2, "<sip:*97@example.com>");
    assert_eq!(last_status_to(&h, DESK), 202);
    let plays = h.plays_on(a_ep);
    assert!(
        plays.last().is_some_and(|p| p.contains("pin")),
        "the PIN is asked: {plays:?}"
    );
    h.end_play(a_ep);
    h.keys(a_ep, "1234#");
    let verified: Vec<String> = h
        .vm_ops
        .iter()
        .filter_map(|op| match op {
            engine::vm::VmOp::Verify { mailbox, .. } => Some(mailbox.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(verified, vec!["1002".to_string()], "the transferor's box");
    // *98 by the administrator: the box number is asked.
    let (_ok, a_ep, _desk) = ivr_call_answered(&mut h, "xa-v2");
    let id = newest_call(&h);
    h.engine.transfer(id, "*98", h.now).expect("accepted");
    h.drain();
    let plays = h.plays_on(a_ep);
    assert!(
        plays.last().is_some_and(|p| p.contains("mailbox")),
        "the box number is asked: {plays:?}"
    );
}
