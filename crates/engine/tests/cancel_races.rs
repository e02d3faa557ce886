//! CANCEL races on a fake clock (RFC 3261 §9): a CANCEL that crosses our 200 leaves the call
//! up, and a CANCEL before any callee sent a provisional is answered at once while the CANCELs
//! to the callees wait for their first provisional (§9.1), a fork that answers instead being
//! ACKed and hung up.

mod common;

use std::time::Duration;

use common::*;
use engine::db::{Disposition, HangupBy};
use sip::{Message, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";
const SOFT: &str = "198.51.100.22:5060";

/// 1001 at CALLER; 1002 with a desk phone (segment 1) and, with `two`, a softphone (segment 2).
fn setup(two: bool) -> Harness {
    let mut h = Harness::new();
    let reg = |h: &mut Harness, n: &str, contact: &str, at: &str, seg: &str| {
        assert_eq!(
            h.register(n, Some(contact), Some(3600), at, seg).status,
            200
        );
    };
    reg(&mut h, "1001", "<sip:1001@192.0.2.21:5060>", CALLER, SEG1);
    reg(&mut h, "1002", "<sip:1002@192.0.2.22:5060>", DESK, SEG1);
    if two {
        reg(&mut h, "1002", "<sip:1002@198.51.100.22:5060>", SOFT, SEG2);
    }
    h.sent.clear();
    h
}

/// The caller's INVITE, authenticated; the INVITEs the engine sent to each callee phone.
fn dial(h: &mut Harness, call_id: &str) -> Vec<Sent> {
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    out.into_iter()
        .filter(|s| matches!(&s.message, Message::Request(r) if r.method.as_str() == "INVITE"))
        .collect()
}

/// The caller's CANCEL of its authenticated INVITE (CSeq 2, same branch, as [`Harness::dial`]
/// sends it).
fn caller_cancel(h: &mut Harness, call_id: &str) {
    h.recv_raw(
        &format!(
            "CANCEL sip:1002@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-i2-{call_id}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-{call_id}\r\nTo: <sip:1002@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
        ),
        CALLER,
        SEG1,
    );
}

/// The caller's ACK of the final non-2xx `resp` to its authenticated INVITE (same branch).
fn caller_ack(h: &mut Harness, call_id: &str, resp: &Response) {
    let tag = resp
        .to()
        .and_then(|t| t.tag().map(str::to_string))
        .unwrap_or_default();
    h.recv_raw(
        &format!(
            "ACK sip:1002@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-i2-{call_id}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-{call_id}\r\nTo: <sip:1002@example.com>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"
        ),
        CALLER,
        SEG1,
    );
}

/// Responses the caller got, as (status, CSeq method).
fn to_caller(h: &Harness) -> Vec<(u16, String)> {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == CALLER)
        .filter_map(|s| match &s.message {
            Message::Response(r) => Some((
                r.status,
                r.cseq()
                    .map(|c| c.method.as_str().to_string())
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

/// Requests the engine sent to `at` with `method`.
fn sent_to(h: &Harness, method: &str, at: &str) -> usize {
    h.requests(method)
        .iter()
        .filter(|s| s.to.to_string() == at)
        .count()
}

#[test]
fn a_cancel_after_the_200_is_answered_and_leaves_the_call_up() {
    let mut h = setup(false);
    let forks = dial(&mut h, "late-cancel");
    assert_eq!(forks.len(), 1);
    let desk = forks[0].request().clone();
    h.reply(&desk, 180, "desk", DESK, SEG1);
    h.sent.clear();
    h.reply(&desk, 200, "desk", DESK, SEG1);
    let ok: Response = h
        .final_invite_response(CALLER)
        .expect("the caller got the answer");
    assert_eq!(ok.status, 200);
    // The CANCEL crossed the 200 on the wire (RFC 3261 §9.2: it has no effect once a final
    // response was sent; answered 200 while the INVITE transaction lives, 481 after).
    h.sent.clear();
    caller_cancel(&mut h, "late-cancel");
    let answers = to_caller(&h);
    assert!(
        answers == [(200, "CANCEL".into())] || answers == [(481, "CANCEL".into())],
        "the CANCEL alone is answered, with 200 or 481: {answers:?}"
    );
    assert_eq!(
        sent_to(&h, "CANCEL", DESK),
        0,
        "nothing cancelled towards the callee"
    );
    assert_eq!(sent_to(&h, "BYE", DESK), 0, "the callee is not hung up");
    assert!(h.cdrs.is_empty(), "no record: the call goes on");
    assert_eq!(h.engine.calls(h.now).len(), 1, "the call is still up");
    // The caller ACKs the 200; the call carries on as any other.
    h.recv_raw(
        &caller_in_dialog(&ok, ("1001", CALLER), "ACK", 2, None),
        CALLER,
        SEG1,
    );
    h.advance(Duration::from_secs(40));
    assert_eq!(h.engine.calls(h.now).len(), 1, "up after the timers ran");
    assert_eq!(sent_to(&h, "BYE", DESK), 0);
    // And ends normally with the caller's BYE.
    h.sent.clear();
    h.recv_raw(
        &caller_in_dialog(&ok, ("1001", CALLER), "BYE", 3, None),
        CALLER,
        SEG1,
    );
    assert_eq!(sent_to(&h, "BYE", DESK), 1, "the BYE reaches the callee");
    let bye = h.requests("BYE").remove(0);
    h.recv_message(
        Message::Response(Response::for_request(bye.request(), 200, None)),
        DESK,
        SEG1,
    );
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].disposition, Disposition::Answered);
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Caller);
    assert!(h.engine.calls(h.now).is_empty());
}

#[test]
fn a_cancel_before_any_provisional_waits_for_it_towards_each_callee() {
    let mut h = setup(true);
    let forks = dial(&mut h, "early-cancel");
    assert_eq!(forks.len(), 2, "both phones ring");
    let fork = |at: &str| {
        forks
            .iter()
            .find(|s| s.to.to_string() == at)
            .expect("fork")
            .request()
            .clone()
    };
    let (desk, soft) = (fork(DESK), fork(SOFT));
    // Neither phone has answered anything yet when the caller cancels.
    h.sent.clear();
    caller_cancel(&mut h, "early-cancel");
    let answers = to_caller(&h);
    assert!(
        answers.contains(&(200, "CANCEL".into())),
        "CANCEL answered: {answers:?}"
    );
    assert!(
        answers.contains(&(487, "INVITE".into())),
        "INVITE answered 487: {answers:?}"
    );
    // RFC 3261 §9.1: no CANCEL before a provisional response.
    assert!(
        h.requests("CANCEL").is_empty(),
        "a CANCEL went out too early"
    );
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].disposition, Disposition::Canceled);
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Caller);
    assert!(h.engine.calls(h.now).is_empty(), "the call is gone");
    assert!(h.sessions.is_empty(), "relay sessions closed");
    let refused = h.final_invite_response(CALLER).expect("487");
    caller_ack(&mut h, "early-cancel", &refused);
    // The desk phone's 180 arrives: now its CANCEL goes out, and its 487 is ACKed.
    h.sent.clear();
    h.reply(&desk, 180, "desk", DESK, SEG1);
    assert_eq!(
        sent_to(&h, "CANCEL", DESK),
        1,
        "cancelled on its first provisional"
    );
    let cancel = h.requests("CANCEL").remove(0);
    h.recv_message(
        Message::Response(Response::for_request(cancel.request(), 200, None)),
        DESK,
        SEG1,
    );
    h.sent.clear();
    h.reply(&desk, 487, "desk", DESK, SEG1);
    assert_eq!(sent_to(&h, "ACK", DESK), 1, "the 487 is ACKed");
    // The softphone answers 200 without any provisional: never cancelled, ACKed and hung up.
    h.sent.clear();
    h.reply(&soft, 200, "soft", SOFT, SEG2);
    assert_eq!(sent_to(&h, "CANCEL", SOFT), 0);
    assert_eq!(sent_to(&h, "ACK", SOFT), 1, "the late 200 is ACKed");
    assert_eq!(sent_to(&h, "BYE", SOFT), 1, "and hung up");
    // Nothing more for the caller, nothing left behind once the timers ran out.
    h.advance(Duration::from_secs(40));
    assert!(to_caller(&h).is_empty(), "{:?}", to_caller(&h));
    assert!(h.engine.calls(h.now).is_empty());
    assert_eq!(h.cdrs.len(), 1, "one record");
}
