//! Calls on a fake clock: forking (first answer wins, forks on two segments), CANCEL races,
//! no-answer and media timeouts, BYE from either side, hold by re-INVITE, refusals, records.

mod common;

use std::time::Duration;

use common::*;
use engine::Input;
use engine::db::{Disposition, HangupBy};
use engine::media::{MediaCommand, MediaEvent, Side};
use sip::{HeaderName, Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";
const SOFT: &str = "198.51.100.22:5060";

/// 1001 at CALLER; 1002 with a desk phone on segment 1 and a softphone on segment 2.
fn setup() -> Harness {
    let mut h = Harness::new();
    assert_eq!(
        h.register(
            "1001",
            Some("<sip:1001@192.0.2.21:5060>"),
            Some(3600),
            CALLER,
            SEG1
        )
        .status,
        200
    );
    assert_eq!(
        h.register(
            "1002",
            Some("<sip:1002@192.0.2.22:5060>"),
            Some(3600),
            DESK,
            SEG1
        )
        .status,
        200
    );
    assert_eq!(
        h.register(
            "1002",
            Some("<sip:1002@198.51.100.22:5060>"),
            Some(3600),
            SOFT,
            SEG2
        )
        .status,
        200
    );
    h.sent.clear();
    h.media_log.clear();
    h
}

fn dial(h: &mut Harness, call_id: &str) -> (Sent, Sent) {
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let forks: Vec<&Sent> = out
        .iter()
        .filter(|s| matches!(&s.message, Message::Request(r) if r.method.as_str() == "INVITE"))
        .collect();
    assert_eq!(forks.len(), 2, "both contacts ring: {out:?}");
    let desk = forks
        .iter()
        .find(|s| s.to.to_string() == DESK)
        .expect("desk fork");
    let soft = forks
        .iter()
        .find(|s| s.to.to_string() == SOFT)
        .expect("soft fork");
    ((*desk).clone(), (*soft).clone())
}

fn sdp_conn(body: &[u8]) -> (String, u16) {
    let text = std::str::from_utf8(body).expect("utf-8 SDP");
    let ip = text
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line")
        .trim()
        .to_string();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m= line");
    (ip, port)
}

fn caller_final(h: &Harness) -> Response {
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
        .expect("a final response to the caller's INVITE")
}

/// Answers with 200 from the softphone and returns the 200 the caller got.
fn answer_soft(h: &mut Harness, soft: &Sent) -> Response {
    h.sent.clear();
    h.reply(soft.request(), 200, "soft", SOFT, SEG2);
    caller_final(h)
}

/// An in-dialog request from the caller, in the dialog the 200 set up.
fn caller_request(ok: &Response, method: &str, cseq: u32, body: Option<String>) -> String {
    let contact = ok
        .headers
        .contact()
        .expect("Contact in 200")
        .uri
        .to_string();
    let to = ok.to().expect("To").to_string();
    let call_id = ok.call_id().expect("Call-ID").to_string();
    let mut s = format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-d{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
    );
    match body {
        Some(b) => {
            let b = b.replace('\n', "\r\n");
            s.push_str(&format!(
                "Contact: <sip:1001@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        }
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s
}

#[test]
fn first_answer_wins_and_the_other_fork_is_cancelled() {
    let mut h = setup();
    let (desk, soft) = dial(&mut h, "call-1");
    h.sent.clear();
    h.reply(desk.request(), 180, "desk", DESK, SEG1);
    let ringing: Vec<u16> = h.responses();
    assert_eq!(ringing, vec![180], "the caller hears ringing");
    let ok = answer_soft(&mut h, &soft);
    assert_eq!(ok.status, 200);
    let (ip, _) = sdp_conn(&ok.body);
    assert_eq!(
        ip, "192.0.2.100",
        "the caller's SDP points at the relay on the caller's segment"
    );
    assert!(
        h.requests("ACK").iter().any(|a| a.to.to_string() == SOFT),
        "the answer is ACKed"
    );
    let cancels = h.requests("CANCEL");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].to.to_string(), DESK);
    // A second 200 from the desk phone (it answered at the same moment): ACK and BYE it.
    h.sent.clear();
    h.reply(desk.request(), 200, "desk", DESK, SEG1);
    assert!(h.requests("ACK").iter().any(|a| a.to.to_string() == DESK));
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == DESK));
    assert_eq!(h.engine.calls(h.now).len(), 1);
}

#[test]
fn forks_on_two_segments_each_get_a_relay_socket_on_their_segment() {
    let mut h = setup();
    let (desk, soft) = dial(&mut h, "call-seg");
    let allocs: Vec<_> = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Allocate { a_ip, b_ip, .. } => Some((a_ip.to_string(), b_ip.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(allocs.len(), 2, "one relay session per segment");
    assert!(allocs.contains(&("192.0.2.100".into(), "192.0.2.100".into())));
    assert!(allocs.contains(&("192.0.2.100".into(), "198.51.100.100".into())));
    let (desk_ip, desk_port) = sdp_conn(&desk.request().body);
    let (soft_ip, soft_port) = sdp_conn(&soft.request().body);
    assert_eq!(desk_ip, "192.0.2.100");
    assert_eq!(soft_ip, "198.51.100.100");
    // Each port is the B side of a session bound on that very segment.
    let bound: Vec<String> = h.sessions.values().map(|(_, b)| b.to_string()).collect();
    assert!(
        bound.contains(&format!("192.0.2.100:{desk_port}")),
        "{bound:?}"
    );
    assert!(
        bound.contains(&format!("198.51.100.100:{soft_port}")),
        "{bound:?}"
    );
    assert_eq!(desk.from.map(|a| a.to_string()).as_deref(), Some(SEG1));
    assert_eq!(soft.from.map(|a| a.to_string()).as_deref(), Some(SEG2));
    // The softphone answers: the spare session on segment 1 is closed, media goes through the
    // segment-2 session.
    answer_soft(&mut h, &soft);
    assert_eq!(h.sessions.len(), 1);
    let (_, b) = h.sessions.values().next().copied().expect("one session");
    assert_eq!(b.ip().to_string(), "198.51.100.100");
    let remote_b = remote_of(&h.media_log, Side::B);
    assert!(
        remote_b
            .iter()
            .any(|a| a.ip().to_string() == "198.51.100.22")
    );
}

#[test]
fn caller_cancels_before_an_answer() {
    let mut h = setup();
    let (desk, soft) = dial(&mut h, "call-cancel");
    // A CANCEL goes out once a fork answered provisionally (RFC 3261 §9.1).
    h.reply(desk.request(), 100, "", DESK, SEG1);
    h.reply(soft.request(), 180, "soft", SOFT, SEG2);
    h.sent.clear();
    h.recv_raw(
        &format!(
            "CANCEL sip:1002@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-i2-call-cancel\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-call-cancel\r\nTo: <sip:1002@example.com>\r\nCall-ID: call-cancel\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
        ),
        CALLER,
        SEG1,
    );
    let statuses = h.responses();
    assert!(statuses.contains(&200), "CANCEL answered: {statuses:?}");
    assert!(statuses.contains(&487), "INVITE answered 487: {statuses:?}");
    let mut cancelled: Vec<String> = h
        .requests("CANCEL")
        .iter()
        .map(|c| c.to.to_string())
        .collect();
    cancelled.sort();
    cancelled.dedup();
    assert_eq!(cancelled.len(), 2, "both forks cancelled");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].disposition, Disposition::Canceled);
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Caller);
    assert!(h.sessions.is_empty(), "relay sessions closed");
    // The race: the desk phone answered before our CANCEL reached it.
    h.sent.clear();
    h.reply(desk.request(), 200, "desk", DESK, SEG1);
    assert!(h.requests("ACK").iter().any(|a| a.to.to_string() == DESK));
    assert!(
        h.requests("BYE").iter().any(|b| b.to.to_string() == DESK),
        "the late answer is hung up"
    );
    assert!(h.engine.calls(h.now).is_empty());
}

#[test]
fn no_answer_times_out() {
    let mut h = setup();
    let (desk, soft) = dial(&mut h, "call-noanswer");
    h.reply(desk.request(), 180, "desk", DESK, SEG1);
    h.reply(soft.request(), 180, "soft", SOFT, SEG2);
    h.sent.clear();
    h.advance(Duration::from_secs(29));
    assert!(h.cdrs.is_empty(), "still ringing at 29 s");
    h.advance(Duration::from_secs(2));
    assert_eq!(caller_final(&h).status, 480);
    let mut cancelled: Vec<String> = h
        .requests("CANCEL")
        .iter()
        .map(|c| c.to.to_string())
        .collect();
    cancelled.sort();
    cancelled.dedup();
    assert_eq!(
        cancelled.len(),
        2,
        "both forks cancelled (retransmissions aside)"
    );
    assert_eq!(h.cdrs[0].disposition, Disposition::NoAnswer);
    assert!(
        caller_final(&h)
            .to()
            .and_then(|t| t.tag().map(str::to_string))
            .is_some()
    );
}

#[test]
fn all_forks_busy_gives_486() {
    let mut h = setup();
    let (desk, soft) = dial(&mut h, "call-busy");
    h.sent.clear();
    h.reply(desk.request(), 486, "desk", DESK, SEG1);
    h.reply(soft.request(), 480, "soft", SOFT, SEG2);
    assert_eq!(caller_final(&h).status, 486);
    assert_eq!(h.cdrs[0].disposition, Disposition::Busy);
}

#[test]
fn media_timeout_hangs_up_both_sides() {
    let mut h = setup();
    let (_desk, soft) = dial(&mut h, "call-media");
    answer_soft(&mut h, &soft);
    let session = *h.sessions.keys().next().expect("session");
    h.sent.clear();
    h.input(Input::Media(MediaEvent::Timeout { session }));
    let byes = h.requests("BYE");
    assert_eq!(byes.len(), 2, "BYE to both phones");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::System);
    assert_eq!(h.cdrs[0].hangup_cause, "media timeout");
    assert_eq!(
        h.cdrs[0].a.pkts_rx, 50,
        "media statistics from the relay reach the record"
    );
}

#[test]
fn bye_from_the_caller_is_answered_after_the_record_is_stored() {
    let mut h = setup();
    let (_desk, soft) = dial(&mut h, "call-bye-a");
    let ok = answer_soft(&mut h, &soft);
    h.advance(Duration::from_secs(5));
    h.sent.clear();
    h.db_mode = DbMode::Hold;
    h.recv_raw(&caller_request(&ok, "BYE", 3, None), CALLER, SEG1);
    assert!(
        h.requests("BYE").iter().any(|b| b.to.to_string() == SOFT),
        "BYE to the callee at once"
    );
    assert!(
        !h.responses().contains(&200),
        "the 200 waits for the record"
    );
    h.release_db(DbMode::Ok);
    assert!(h.responses().contains(&200));
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Caller);
    assert_eq!(h.cdrs[0].disposition, Disposition::Answered);
    assert_eq!(h.cdrs[0].billsec, 5);
}

#[test]
fn bye_from_the_callee() {
    let mut h = setup();
    let (_desk, soft) = dial(&mut h, "call-bye-b");
    answer_soft(&mut h, &soft);
    // The engine's INVITE to the softphone gave the dialog; the phone sends BYE in it.
    let inv = soft.request();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {SOFT};branch=z9hG4bK-sb1\r\nMax-Forwards: 70\r\nFrom: <sip:1002@example.com>;tag=soft\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = inv.headers.contact().expect("our Contact").uri,
        from = inv.from().expect("From"),
        cid = inv.call_id().expect("Call-ID"),
    );
    h.sent.clear();
    h.recv_raw(&bye, SOFT, SEG2);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == CALLER));
    assert!(h.responses().contains(&200));
    assert_eq!(h.cdrs[0].hangup_by, HangupBy::Callee);
}

#[test]
fn hold_gives_the_held_party_music_and_resume_brings_it_back_to_the_relay() {
    let mut h = setup();
    let (_desk, soft) = dial(&mut h, "call-hold");
    let ok = answer_soft(&mut h, &soft);
    let ack = caller_request(&ok, "ACK", 2, None);
    h.recv_raw(&ack, CALLER, SEG1);
    h.sent.clear();
    h.media_log.clear();
    h.recv_raw(
        &caller_request(&ok, "INVITE", 3, Some(sdp("192.0.2.21", 4002, "sendonly"))),
        CALLER,
        SEG1,
    );
    // A music endpoint opens on the softphone's segment and the hold is forwarded offering it.
    let ep = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, ip, .. } => Some((*endpoint, *ip)),
            _ => None,
        })
        .expect("a music endpoint");
    assert_eq!(ep.1.to_string(), "198.51.100.100");
    let fwd = h.requests("INVITE");
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].to.to_string(), SOFT);
    let (ip, port) = sdp_conn(&fwd[0].request().body);
    assert_eq!(
        ip, "198.51.100.100",
        "the softphone sees our address on its segment"
    );
    assert_eq!(
        port,
        h.endpoints[&ep.0].port(),
        "the music endpoint, not the relay"
    );
    assert!(
        std::str::from_utf8(&fwd[0].request().body)
            .unwrap_or("")
            .contains("a=sendonly"),
        "we only send"
    );
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::SetHold { on_hold: true, .. }))
    );
    assert_eq!(
        remote_of(&h.media_log, Side::A),
        vec!["192.0.2.21:4002".parse().unwrap()]
    );
    // The softphone accepts: music plays to it; the caller gets the 200 with the relay's address.
    h.sent.clear();
    let reinv: Request = fwd[0].request().clone();
    h.reply(&reinv, 200, "soft", SOFT, SEG2);
    let r = caller_final(&h);
    assert_eq!(r.status, 200);
    assert_eq!(sdp_conn(&r.body).0, "192.0.2.100");
    assert!(
        h.requests("ACK").iter().any(|a| a.to.to_string() == SOFT),
        "we ACK the far side"
    );
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::Play { endpoint, repeat: true, items, .. }
            if *endpoint == ep.0 && matches!(items[0], engine::media::PlayItem::Moh { .. }))));
    // Resume: the softphone is pointed back at the relay, the music stops.
    h.sent.clear();
    h.media_log.clear();
    h.recv_raw(
        &caller_request(&ok, "INVITE", 4, Some(sdp("192.0.2.21", 4002, "sendrecv"))),
        CALLER,
        SEG1,
    );
    let fwd = h.requests("INVITE");
    assert_eq!(fwd.len(), 1);
    let (_, port) = sdp_conn(&fwd[0].request().body);
    assert_ne!(port, h.endpoints[&ep.0].port(), "back to the relay");
    h.reply(fwd[0].request(), 200, "soft", SOFT, SEG2);
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::CloseEndpoint { endpoint } if *endpoint == ep.0))
    );
    assert!(h.endpoints.is_empty(), "the music endpoint is gone");
}

#[test]
fn refused_calls_get_a_tagged_final_response_and_a_record() {
    let mut h = setup();
    let out = h.dial(&Dial {
        from: "1001",
        to: "9999",
        source: CALLER,
        local: SEG1,
        call_id: "call-404",
    });
    let r = out
        .iter()
        .find_map(|s| match &s.message {
            Message::Response(r) if r.status >= 200 => Some(r.clone()),
            _ => None,
        })
        .expect("a final response");
    assert_eq!(r.status, 404);
    assert!(r.to().and_then(|t| t.tag().map(str::to_string)).is_some());
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].disposition, Disposition::Failed);
    assert_eq!(h.cdrs[0].hangup_cause, "404 Not Found");
    // 1003 exists but has no phone registered.
    let out = h.dial(&Dial {
        from: "1001",
        to: "1003",
        source: CALLER,
        local: SEG1,
        call_id: "call-480",
    });
    assert!(
        out.iter()
            .any(|s| matches!(&s.message, Message::Response(r) if r.status == 480))
    );
}

#[test]
fn no_media_ports_gives_503() {
    let mut h = setup();
    h.fail_media = true;
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "call-503",
    });
    assert!(
        out.iter()
            .any(|s| matches!(&s.message, Message::Response(r) if r.status == 503))
    );
    assert!(
        h.requests("INVITE").is_empty(),
        "no fork rings without media"
    );
    assert!(h.engine.calls(h.now).is_empty());
}

#[test]
fn administrator_hangup_ends_a_ringing_call() {
    let mut h = setup();
    dial(&mut h, "call-admin");
    let id = h.engine.calls(h.now)[0].id;
    h.sent.clear();
    assert!(h.engine.hangup(id, h.now));
    h.drain();
    assert_eq!(caller_final(&h).status, 480);
    assert_eq!(h.cdrs[0].hangup_cause, "hung up by administrator");
    assert!(!h.engine.hangup(id, h.now));
    let _ = HeaderName::Contact;
}
