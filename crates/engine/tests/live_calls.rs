//! Calls in progress across a take-over (`engine::live_calls`), on a fake clock: the row is
//! written on answer, refreshed on hold, deleted on BYE; a second engine (the standby taking
//! over) rebuilds the call from the row, re-binds the same relay ports, accepts BYE from either
//! party in the old dialogs, refuses a stale CSeq and writes one record with the take-over
//! event; an engine that gives the address up forgets its calls without sending anything.

mod common;

use common::*;
use engine::db::{Disposition, HangupBy};
use engine::live_calls::LiveCallRecord;
use engine::media::{MediaCommand, Side};
use sip::{Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";

/// A node with 1001 at CALLER and 1002 at DESK, storing its calls in progress.
fn node() -> Harness {
    node_with(snapshot())
}

/// Like [`node`], with the configuration `snap`.
fn node_with(snap: engine::Snapshot) -> Harness {
    let mut h = Harness::with(snap);
    h.engine.set_live_calls(true);
    for (n, at) in [("1001", CALLER), ("1002", DESK)] {
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

/// 1001 calls 1002, the desk answers: (the fork INVITE to the desk, the caller's 200).
fn answered_call(h: &mut Harness, call_id: &str) -> (Request, Response) {
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let fork = invites_to(&out, DESK)
        .into_iter()
        .next()
        .expect("the desk rings");
    h.sent.clear();
    h.reply(&fork, 200, "desk", DESK, SEG1);
    let ok = caller_final(h);
    assert_eq!(ok.status, 200);
    let ack = caller_request(&ok, "ACK", 2, None);
    h.recv_raw(&ack, CALLER, SEG1);
    (fork, ok)
}

fn caller_final(h: &Harness) -> Response {
    h.final_invite_response(CALLER)
        .expect("a final response to the caller's INVITE")
}

fn caller_request(ok: &Response, method: &str, cseq: u32, body: Option<String>) -> String {
    caller_in_dialog(ok, ("1001", CALLER), method, cseq, body)
}

/// An in-dialog request from the desk phone in the dialog of our fork `fork`.
fn desk_request(fork: &Request, method: &str, cseq: u32) -> String {
    let from = fork.from().expect("From").to_string();
    let to = fork.to().expect("To").to_string();
    let call_id = fork.call_id().expect("Call-ID");
    let contact = fork
        .headers
        .contact()
        .expect("Contact in fork")
        .uri
        .to_string();
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {DESK};branch=z9hG4bK-ld{cseq}-{method}-{call_id}\r\nMax-Forwards: 70\r\nFrom: {to};tag=desk\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn only_row(h: &Harness) -> LiveCallRecord {
    assert_eq!(h.live_rows.len(), 1, "one stored call: {:?}", h.live_rows);
    h.live_rows.values().next().cloned().expect("row")
}

fn final_to(h: &Harness, at: &str, method: &str) -> Vec<u16> {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == at)
        .filter_map(|s| match &s.message {
            Message::Response(r) if r.cseq().is_some_and(|c| c.method.as_str() == method) => {
                Some(r.status)
            }
            _ => None,
        })
        .collect()
}

/// The standby: the same phones registered (the registrations are in the database), nothing
/// else, and the rows of the active loaded into it.
fn take_over(rows: Vec<LiveCallRecord>, event: &'static str) -> Harness {
    let mut s = node();
    let n = s.engine.load_live_calls(rows, event, s.now);
    s.drain();
    assert_eq!(n, 1, "the call is rebuilt");
    s
}

#[test]
fn the_row_is_written_on_answer_refreshed_on_hold_and_deleted_on_bye() {
    let mut h = node();
    let (_fork, ok) = answered_call(&mut h, "live-1");
    let row = only_row(&h);
    let (a, b) = *h.sessions.values().next().expect("a relay session");
    assert_eq!(row.call_id, "live-1");
    assert_eq!((row.caller.as_str(), row.callee.as_str()), ("1001", "1002"));
    assert_eq!(
        (row.a.relay, row.b.as_ref().expect("side B").relay),
        (a, b),
        "the relay's ports"
    );
    assert_eq!(row.a.remote_rtp, Some("192.0.2.21:4000".parse().unwrap()));
    assert_eq!(
        row.b.as_ref().expect("side B").remote_rtp,
        Some("192.0.2.22:6000".parse().unwrap())
    );
    assert_eq!(row.a.peer.to_string(), CALLER);
    assert_eq!(row.b.as_ref().expect("side B").peer.to_string(), DESK);
    assert_eq!(row.a.dialog.remote_tag, "a-live-1");
    assert_eq!(row.b.as_ref().expect("side B").dialog.remote_tag, "desk");
    assert_eq!(row.a.dialog.role, "uas");
    assert_eq!(row.b.as_ref().expect("side B").dialog.role, "uac");
    assert!(!row.on_hold);
    assert_eq!(row.codec, "PCMU");

    // Hold: the re-INVITE's answer refreshes the row.
    h.sent.clear();
    h.recv_raw(
        &caller_request(&ok, "INVITE", 3, Some(sdp("192.0.2.21", 4000, "sendonly"))),
        CALLER,
        SEG1,
    );
    let fwd = invites_to(&h.sent, DESK);
    assert_eq!(fwd.len(), 1, "the hold is forwarded");
    h.reply(&fwd[0], 200, "desk", DESK, SEG1);
    let held = only_row(&h);
    assert!(held.on_hold, "the row says the call is on hold");
    assert_eq!(held.a.dialog.remote_seq, Some(3));
    assert!(
        held.b.as_ref().expect("side B").dialog.local_seq
            > row.b.as_ref().expect("side B").dialog.local_seq
    );

    // BYE: the row goes.
    h.sent.clear();
    h.recv_raw(&caller_request(&ok, "BYE", 4, None), CALLER, SEG1);
    assert!(h.live_rows.is_empty(), "the row is deleted on hang-up");
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn a_standalone_node_writes_no_rows() {
    let mut h = node();
    h.engine.set_live_calls(false);
    let (_fork, ok) = answered_call(&mut h, "live-standalone");
    h.recv_raw(&caller_request(&ok, "BYE", 3, None), CALLER, SEG1);
    assert!(h.live_ops.is_empty(), "{:?}", h.live_ops);
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn a_rebuilt_call_rebinds_the_same_ports_and_ends_with_one_record_on_the_callees_bye() {
    let mut act = node();
    let (fork, _ok) = answered_call(&mut act, "live-2");
    let row = only_row(&act);

    let mut sby = take_over(vec![row.clone()], "failover");
    // The relay session is re-bound on the very ports, pointed at the phones at once.
    let adopt = sby
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::Adopt { a, b, .. } => Some((*a, *b)),
            _ => None,
        })
        .expect("an Adopt command");
    assert_eq!(adopt, (row.a.relay, row.b.as_ref().expect("side B").relay));
    assert_eq!(
        remote_of(&sby.media_log, Side::A),
        vec!["192.0.2.21:4000".parse().unwrap()]
    );
    assert_eq!(
        remote_of(&sby.media_log, Side::B),
        vec!["192.0.2.22:6000".parse().unwrap()]
    );
    assert!(
        sby.sent.is_empty(),
        "no re-INVITE: same address, ports, dialogs"
    );
    assert_eq!(sby.engine.calls(sby.now).len(), 1);
    assert!(
        sby.call_events.is_empty(),
        "the event waits for the record (the database may not be writable yet)"
    );

    // A minute later the desk hangs up in its old dialog.
    sby.advance(std::time::Duration::from_secs(60));
    sby.sent.clear();
    sby.recv_raw(&desk_request(&fork, "BYE", 1), DESK, SEG1);
    assert_eq!(
        final_to(&sby, DESK, "BYE"),
        vec![200],
        "the desk's BYE is answered"
    );
    let byes = sby.requests("BYE");
    assert_eq!(byes.len(), 1, "the caller gets a BYE");
    assert_eq!(byes[0].to.to_string(), CALLER);
    let bye = byes[0].request();
    assert_eq!(bye.call_id(), Some("live-2"));
    assert!(
        bye.cseq().expect("CSeq").seq > engine::live_calls::SEQ_JUMP,
        "our CSeq jumps past anything the old node may have used"
    );
    assert_eq!(sby.cdrs.len(), 1, "one record for the whole call");
    assert_eq!(
        sby.call_events
            .iter()
            .map(|(_, c, e)| (c.as_str(), e[0].kind))
            .collect::<Vec<_>>(),
        vec![("live-2", "failover")]
    );
    let cdr = &sby.cdrs[0];
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hangup_by, HangupBy::Callee);
    assert_eq!(cdr.call_id, "live-2");
    assert_eq!(cdr.start_time, row.start, "the call's own start time");
    assert_eq!(cdr.answer_time, Some(row.answer));
    assert!(cdr.billsec >= 60);
    assert!(sby.live_rows.is_empty() || !sby.live_rows.contains_key(&(1, "live-2".into())));
    assert!(sby.live_ops.iter().any(|o| matches!(o,
        engine::live_calls::LiveCallOp::Delete { call_id, .. } if call_id == "live-2")));
    assert!(act.cdrs.is_empty(), "the old node wrote nothing");
}

#[test]
fn a_rebuilt_call_refuses_a_stale_cseq_and_accepts_the_callers_bye() {
    let mut act = node();
    let (_fork, ok) = answered_call(&mut act, "live-3");
    let row = only_row(&act);
    let mut sby = take_over(vec![row], "switchover");
    // CSeq 1 is older than the INVITE's (2) the dialog was made with.
    sby.sent.clear();
    sby.recv_raw(&caller_request(&ok, "INFO", 1, None), CALLER, SEG1);
    assert_eq!(
        final_to(&sby, CALLER, "INFO"),
        vec![500],
        "stale CSeq refused"
    );
    assert!(sby.requests("INFO").is_empty(), "nothing forwarded");
    sby.sent.clear();
    sby.recv_raw(&caller_request(&ok, "BYE", 3, None), CALLER, SEG1);
    assert_eq!(final_to(&sby, CALLER, "BYE"), vec![200]);
    let byes = sby.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to.to_string(), DESK, "the desk gets a BYE");
    assert_eq!(sby.cdrs.len(), 1);
    assert_eq!(sby.cdrs[0].hangup_by, HangupBy::Caller);
    assert_eq!(sby.call_events[0].2[0].kind, "switchover");
}

#[test]
fn an_engine_that_gives_the_address_up_forgets_its_calls_silently() {
    let mut act = node();
    let (_fork, _ok) = answered_call(&mut act, "live-4");
    let rows_before = act.live_rows.clone();
    act.sent.clear();
    act.media_log.clear();
    let n = act.engine.forget_live_calls(act.now);
    act.drain();
    assert_eq!(n, 1);
    assert!(act.sent.is_empty(), "no BYE: {:?}", act.sent);
    assert!(act.cdrs.is_empty(), "no record");
    assert_eq!(act.live_rows, rows_before, "the row stays for the peer");
    assert!(
        act.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Close { .. })),
        "the relay sockets are closed"
    );
    assert!(act.sessions.is_empty());
    assert!(act.engine.calls(act.now).is_empty());
    // A BYE reaching it later finds no call.
    act.advance(std::time::Duration::from_secs(120));
    assert!(act.cdrs.is_empty());
}

#[test]
fn a_call_whose_ports_cannot_be_bound_again_is_ended_with_one_record() {
    let mut act = node();
    let (_fork, _ok) = answered_call(&mut act, "live-5");
    let row = only_row(&act);
    let mut sby = node();
    sby.fail_media = true;
    assert_eq!(
        sby.engine.load_live_calls(vec![row], "failover", sby.now),
        1
    );
    sby.drain();
    let byes: Vec<String> = sby
        .requests("BYE")
        .iter()
        .map(|s| s.to.to_string())
        .collect();
    assert_eq!(byes.len(), 2, "both parties are told: {byes:?}");
    assert_eq!(sby.cdrs.len(), 1);
    assert_eq!(sby.cdrs[0].disposition, Disposition::Answered);
    assert!(
        sby.live_rows.is_empty()
            || sby
                .live_ops
                .iter()
                .any(|o| matches!(o, engine::live_calls::LiveCallOp::Delete { .. }))
    );
}

#[test]
fn a_row_loaded_twice_or_unusable_is_not_rebuilt_twice() {
    let mut act = node();
    let (_fork, _ok) = answered_call(&mut act, "live-6");
    let row = only_row(&act);
    let mut sby = take_over(vec![row.clone()], "failover");
    assert_eq!(
        sby.engine
            .load_live_calls(vec![row.clone()], "failover", sby.now),
        0,
        "already held here"
    );
    let mut broken = row;
    broken.call_id = "live-7".into();
    if let Some(b) = broken.b.as_mut() {
        b.call_id = "live-7-b".into();
    }
    broken.a.dialog.remote_target = "not a uri".into();
    assert_eq!(
        sby.engine
            .load_live_calls(vec![broken], "failover", sby.now),
        0
    );
    sby.drain();
    assert_eq!(sby.engine.calls(sby.now).len(), 1);
}

/// A node with IVR `main` on 500 (an anchored application).
fn node_with_ivr() -> Harness {
    use engine::config::{Apps, IvrEntry};
    let mut snap = snapshot();
    snap.apps = Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: apps::ivr::MenuSpec {
            greeting: "main-greeting".into(),
            fallback: "hangup".into(),
            ..Default::default()
        },
    }]);
    node_with(snap)
}

#[test]
fn an_anchored_call_is_not_continued_but_ended_with_a_bye_and_one_record() {
    let mut act = node_with_ivr();
    act.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id: "live-ivr",
    });
    let row = only_row(&act);
    assert!(row.anchored, "an IVR call is stored as anchored");
    assert!(row.b.is_none());
    // The standby ends it: BYE to the caller in its dialog, one record with the event.
    let mut sby = node_with_ivr();
    assert_eq!(
        sby.engine.load_live_calls(vec![row], "failover", sby.now),
        1
    );
    sby.drain();
    let byes = sby.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to.to_string(), CALLER);
    assert_eq!(byes[0].request().call_id(), Some("live-ivr"));
    assert!(sby.engine.calls(sby.now).is_empty());
    assert_eq!(sby.cdrs.len(), 1);
    let cdr = &sby.cdrs[0];
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hangup_by, HangupBy::System);
    assert!(
        cdr.hangup_cause.contains("failover"),
        "{}",
        cdr.hangup_cause
    );
    assert_eq!(sby.call_events[0].2[0].kind, "failover");
    assert!(sby.live_rows.is_empty() || !sby.live_ops.is_empty());
    // The node that answered it forgets it silently (its endpoint closed).
    act.sent.clear();
    act.media_log.clear();
    assert_eq!(act.engine.forget_live_calls(act.now), 1);
    act.drain();
    assert!(act.sent.is_empty());
    assert!(act.cdrs.is_empty());
    assert!(
        act.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::CloseEndpoint { .. }))
    );
}

/// The caller sends a re-INVITE (`direction`: `sendonly` holds, `sendrecv` resumes) in the
/// call answered with `ok`; returns what was forwarded to the desk.
fn caller_reinvite(h: &mut Harness, ok: &Response, cseq: u32, direction: &str) -> Request {
    h.sent.clear();
    h.recv_raw(
        &caller_request(ok, "INVITE", cseq, Some(sdp("192.0.2.21", 4000, direction))),
        CALLER,
        SEG1,
    );
    invites_to(&h.sent, DESK)
        .into_iter()
        .next()
        .expect("the re-INVITE goes to the desk")
}

/// The RTP address an SDP body offers.
fn sdp_rtp(body: &[u8]) -> std::net::SocketAddr {
    engine::sdp::summarize(body)
        .expect("SDP")
        .rtp
        .expect("an RTP address")
}

#[test]
fn a_held_call_gets_its_music_back_from_the_same_socket_and_resumes_after_a_take_over() {
    let mut act = node();
    let (_fork, ok) = answered_call(&mut act, "live-hold");
    // The caller holds: the desk is offered our music endpoint, and answers.
    let offer = caller_reinvite(&mut act, &ok, 3, "sendonly");
    let music_at = sdp_rtp(&offer.body);
    let ep = *act
        .endpoints
        .iter()
        .find(|(_, a)| a.port() == music_at.port())
        .expect("the desk is offered a music endpoint")
        .0;
    act.reply(&offer, 200, "desk", DESK, SEG1);
    assert_eq!(
        act.plays_on(ep),
        vec!["moh:default"],
        "music on the old node"
    );
    let row = only_row(&act);
    assert!(row.on_hold);
    let moh = row.moh.clone().expect("the row says music plays");
    assert_eq!(moh.held, "b", "the desk is held");
    assert_eq!(moh.endpoint.port(), music_at.port(), "the socket it hears");
    assert_eq!(moh.class, "default");
    let b_relay = row.b.as_ref().expect("side B").relay;

    // The standby takes over: the same socket is bound again and plays the same class to the
    // desk's address, without a word on SIP.
    let mut sby = take_over(vec![row.clone()], "switchover");
    assert!(sby.sent.is_empty(), "no re-INVITE: {:?}", sby.sent);
    let (new_ep, at) = sby
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::AdoptEndpoint { endpoint, at, .. } => Some((*endpoint, *at)),
            _ => None,
        })
        .expect("the music endpoint is re-bound");
    assert_eq!(at, moh.endpoint, "on the very socket");
    let to = sby
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::ConfigureEndpoint { endpoint, rtp, .. } if *endpoint == new_ep => *rtp,
            _ => None,
        })
        .expect("the music endpoint is pointed at the desk");
    assert_eq!(to, "192.0.2.22:6000".parse().unwrap());
    assert_eq!(sby.plays_on(new_ep), vec!["moh:default"]);
    assert!(
        !sby.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::OpenEndpoint { .. })),
        "no new endpoint"
    );

    // The caller resumes on the new node: the desk is pointed back at the relay, the music
    // stops, the row says the call is bridged again.
    sby.media_log.clear();
    let resume = caller_reinvite(&mut sby, &ok, 4, "sendrecv");
    assert_eq!(
        sdp_rtp(&resume.body).port(),
        b_relay.port(),
        "the desk goes back to its relay port"
    );
    assert!(
        resume.cseq().expect("CSeq").seq > engine::live_calls::SEQ_JUMP,
        "our CSeq in the desk's dialog jumped"
    );
    sby.reply(&resume, 200, "desk", DESK, SEG1);
    assert!(
        sby.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::CloseEndpoint { endpoint } if *endpoint == new_ep)),
        "the music stops: {:?}",
        sby.media_log
    );
    assert_eq!(final_to(&sby, CALLER, "INVITE"), vec![200], "resumed");
    let ok_body = sby
        .sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Response(r) if s.to.to_string() == CALLER && r.status == 200 => {
                Some(r.body.clone())
            }
            _ => None,
        })
        .expect("the caller's 200");
    assert_eq!(
        sdp_rtp(&ok_body).port(),
        row.a.relay.port(),
        "the caller talks to its relay port"
    );
    assert_eq!(
        remote_of(&sby.media_log, Side::B),
        vec!["192.0.2.22:6000".parse().unwrap()],
        "the relay sends the caller's audio to the desk again"
    );
    let now_row = only_row(&sby);
    assert!(!now_row.on_hold, "the row says the call is bridged");
    assert!(now_row.moh.is_none());
}

#[test]
fn held_music_whose_socket_cannot_be_bound_leaves_silence_and_the_call_resumes() {
    let mut act = node();
    let (_fork, ok) = answered_call(&mut act, "live-hold-2");
    let offer = caller_reinvite(&mut act, &ok, 3, "sendonly");
    act.reply(&offer, 200, "desk", DESK, SEG1);
    let mut row = only_row(&act);
    assert!(row.moh.is_some());
    // A row that names nobody is held: the call is continued without music.
    let mut odd = row.clone();
    odd.call_id = "live-hold-odd".into();
    odd.a.call_id = "live-hold-odd".into();
    if let Some(b) = odd.b.as_mut() {
        b.call_id = "live-hold-odd-b".into();
    }
    if let Some(m) = odd.moh.as_mut() {
        m.held = "c".into();
    }
    // The music socket is taken on the new node: the call is continued, on hold, silent.
    row.moh.as_mut().expect("moh").endpoint.set_port(1);
    let mut sby = node();
    sby.engine
        .load_live_calls(vec![row, odd], "failover", sby.now);
    sby.drain();
    assert_eq!(sby.engine.calls(sby.now).len(), 2, "both calls continued");
    let adopted: Vec<_> = sby
        .media_log
        .iter()
        .filter(|c| matches!(c, MediaCommand::AdoptEndpoint { .. }))
        .collect();
    assert_eq!(adopted.len(), 1, "only the sane row re-binds music");
    assert!(
        !sby.media_log.iter().any(|c| matches!(
            c,
            MediaCommand::Play { .. } | MediaCommand::ConfigureEndpoint { .. }
        )),
        "no music from a socket that is not bound"
    );
    let resume = caller_reinvite(&mut sby, &ok, 4, "sendrecv");
    sby.reply(&resume, 200, "desk", DESK, SEG1);
    assert_eq!(final_to(&sby, CALLER, "INVITE"), vec![200], "resumed");
}

#[test]
fn a_switchover_ends_calls_still_ringing_with_a_cancel_a_480_and_one_record() {
    let mut h = node();
    let (_fork, _ok) = answered_call(&mut h, "live-up");
    h.sent.clear();
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "live-ringing",
    });
    let fork = invites_to(&out, DESK)
        .into_iter()
        .next()
        .expect("the desk rings");
    h.reply(&fork, 180, "desk2", DESK, SEG1);
    h.sent.clear();
    let cdrs_before = h.cdrs.len();
    assert!(!h.engine.ringing_records_pending());
    let n = h.engine.end_ringing_calls("switchover", h.now);
    assert!(
        h.engine.ringing_records_pending(),
        "the hand-over waits for the record"
    );
    h.drain();
    assert!(!h.engine.ringing_records_pending(), "written");
    assert_eq!(n, 1, "only the ringing call");
    let cancels = h.requests("CANCEL");
    assert_eq!(cancels.len(), 1, "the ringing desk is cancelled");
    assert_eq!(cancels[0].to.to_string(), DESK);
    assert_eq!(cancels[0].request().call_id(), fork.call_id());
    assert_eq!(caller_final(&h).status, 480, "the caller is told");
    assert_eq!(h.cdrs.len(), cdrs_before + 1, "one record");
    let cdr = h.cdrs.last().expect("record");
    assert_eq!(cdr.call_id, "live-ringing");
    assert_eq!(cdr.disposition, Disposition::NoAnswer);
    assert_eq!(cdr.hangup_by, HangupBy::System);
    assert_eq!(cdr.hangup_cause, "switchover: not answered");
    assert_eq!(
        h.call_events
            .iter()
            .map(|(_, c, e)| (c.as_str(), e[0].kind))
            .collect::<Vec<_>>(),
        vec![("live-ringing", "switchover")]
    );
    // The answered call goes on, its row kept for the peer.
    assert_eq!(h.engine.calls(h.now).len(), 1);
    assert_eq!(only_row(&h).call_id, "live-up");
    assert!(h.requests("BYE").is_empty());
}

/// The desk's 200 to a fork the crashed peer sent (no transaction, no call here).
fn orphan_answer() -> String {
    format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {SEG1};branch=z9hG4bK-peer-fork-1\r\nFrom: <sip:1001@example.com>;tag=peer-from\r\nTo: <sip:1002@example.com>;tag=desk-late\r\nCall-ID: fork-of-the-peer\r\nCSeq: 1 INVITE\r\nContact: <sip:1002@{DESK}>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_phone_answering_a_fork_of_the_crashed_peer_gets_an_ack_and_a_bye() {
    let mut h = node();
    h.sent.clear();
    h.recv_raw(&orphan_answer(), DESK, SEG1);
    let acks = h.requests("ACK");
    assert_eq!(acks.len(), 1, "ACKed: {:?}", h.sent);
    assert_eq!(acks[0].to.to_string(), DESK);
    let byes = h.requests("BYE");
    assert_eq!(byes.len(), 1, "and hung up");
    let bye = byes[0].request();
    assert_eq!(bye.call_id(), Some("fork-of-the-peer"));
    assert_eq!(bye.uri.to_string(), format!("sip:1002@{DESK}"));
    assert!(bye.to().expect("To").to_string().contains("desk-late"));
    assert!(bye.from().expect("From").to_string().contains("peer-from"));
    assert_eq!(bye.cseq().expect("CSeq").seq, 2);
    assert!(h.cdrs.is_empty(), "no call, no record");

    // A standalone node leaves stray answers alone, as before.
    let mut alone = node();
    alone.engine.set_live_calls(false);
    alone.sent.clear();
    alone.recv_raw(&orphan_answer(), DESK, SEG1);
    assert!(alone.sent.is_empty(), "{:?}", alone.sent);
}

#[test]
fn during_a_hand_over_new_calls_get_a_503_and_after_it_they_ring() {
    let mut h = node();
    let (_fork, _ok) = answered_call(&mut h, "live-up-q");
    h.sent.clear();
    h.engine.set_new_calls_refused(true);
    assert!(h.engine.new_calls_refused());
    let d = Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "live-during-handover",
    };
    let invite = h.invite_text(&d, 1, None);
    h.recv_raw(&invite, CALLER, SEG1);
    assert!(h.requests("INVITE").is_empty(), "nothing rings");
    let r = h.last_response();
    assert_eq!(r.status, 503, "refused at once");
    assert_eq!(
        r.headers.get_str(&sip::HeaderName::RetryAfter),
        Some("1"),
        "with a short Retry-After"
    );
    // The answered call is not touched: in-dialog requests go on.
    assert_eq!(h.engine.calls(h.now).len(), 1);
    assert!(h.requests("BYE").is_empty());
    // Resumed (aborted switchover, or this node took the address): calls ring again.
    h.engine.set_new_calls_refused(false);
    h.sent.clear();
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "live-after-handover",
    });
    assert_eq!(invites_to(&out, DESK).len(), 1, "the desk rings");
}
