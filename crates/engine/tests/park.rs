//! Call park on a fake clock: the caller who dials `*70` is answered on an endpoint, the
//! slot's row is written, the slot is announced ("parked on slot seven hundred one") and hold
//! music follows; another phone dialling the slot is bridged to the parked call (both
//! endpoints in one bridge), the row is deleted; the timeout rings the parker's other phones
//! back with a "Parked 701" caller name, and nobody answering ends in the fallback. Races:
//! a retrieval just before the timeout, a hang-up while the row is written, a failed write.

mod common;

use std::time::Duration;

use common::*;
use engine::dialplan::{Decision, Destination, RouteRequest, route};
use engine::media::{EndpointId, MediaCommand};
use engine::park::{ParkLot, ParkOp};
use sip::{Message, Request, Response};

const A: &str = "192.0.2.31:5060"; // 1001's desk phone
const A2: &str = "192.0.2.32:5060"; // 1001's second phone
const C: &str = "192.0.2.33:5060"; // 1002
const D: &str = "192.0.2.34:5060"; // 1003

fn setup_with(lot: Option<ParkLot>) -> Harness {
    let mut snap = snapshot();
    if let Some(l) = lot {
        snap.codes.park.lots.insert(1, l);
    }
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", A), ("1002", C), ("1003", D)] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

fn setup() -> Harness {
    setup_with(None)
}

/// 1001 gets a second phone (the callback rings it, not the parked phone itself).
fn second_phone(h: &mut Harness) {
    let c = format!("<sip:1001@{A2}>");
    assert_eq!(
        h.register("1001", Some(&c), Some(3600), A2, SEG1).status,
        200
    );
}

/// A lot with `timeout` seconds.
fn lot(timeout: u64) -> Option<ParkLot> {
    Some(ParkLot {
        timeout: Duration::from_secs(timeout),
        ..ParkLot::default()
    })
}

/// A call answered on an endpoint of ours.
struct Leg {
    ok: Response,
    ep: EndpointId,
    source: &'static str,
}

/// `from` at `source` dials `to`; the 200 is ACKed.
fn call(h: &mut Harness, from: &str, to: &str, source: &'static str, call_id: &str) -> Leg {
    h.media_log.clear();
    h.sent = h.dial(&Dial {
        from,
        to,
        source,
        local: SEG1,
        call_id,
    });
    if h.db_mode == DbMode::Hold {
        // The dialled number's extension lookup is answered; later operations stay held.
        h.release_db(DbMode::Hold);
    }
    let ok = h
        .sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{to} answered: {:?}", h.responses()));
    let ep = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .expect("an endpoint");
    let leg = Leg { ok, ep, source };
    h.recv_raw(&in_dialog(&leg, "ACK", 2), source, SEG1);
    leg
}

fn in_dialog(l: &Leg, method: &str, cseq: u32) -> String {
    let ok = &l.ok;
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let to = ok.to().expect("To").to_string();
    let call_id = ok.call_id().expect("Call-ID").to_string();
    let from = ok.from().expect("From").to_string();
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-p{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        src = l.source
    )
}

fn bye(h: &mut Harness, l: &Leg) {
    h.recv_raw(&in_dialog(l, "BYE", 3), l.source, SEG1);
}

/// What each Play command to `ep` played, as text.
fn plays(h: &Harness, ep: EndpointId) -> Vec<String> {
    h.plays_on(ep)
}

fn play_done(h: &mut Harness, ep: EndpointId) {
    h.end_play(ep)
}

fn announcement(slot: u64) -> String {
    apps::prompt::parked_on(slot, apps::prompt::Lang::En).join("+")
}

/// `from` at `source` dials `*70`: parked, slot announced, then music.
fn park(h: &mut Harness, from: &str, source: &'static str, call_id: &str, slot: u32) -> Leg {
    let l = call(h, from, "*70", source, call_id);
    assert_eq!(
        plays(h, l.ep),
        vec![announcement(u64::from(slot))],
        "the slot is announced once its row is stored"
    );
    assert!(h.park_rows.contains_key(&(1, slot)), "row of slot {slot}");
    play_done(h, l.ep);
    assert_eq!(
        plays(h, l.ep).last().map(String::as_str),
        Some("moh:default"),
        "music on hold after the announcement"
    );
    l
}

/// Requests of `method` sent, retransmissions counted once: (destination, CSeq).
fn distinct(h: &Harness, method: &str) -> Vec<(std::net::SocketAddr, String)> {
    let mut out: Vec<(std::net::SocketAddr, String)> = Vec::new();
    for s in h.requests(method) {
        let cseq = s
            .request()
            .headers
            .get(&sip::HeaderName::CSeq)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        let k = (
            s.to,
            format!("{cseq} {}", s.request().call_id().unwrap_or_default()),
        );
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn event_kinds(h: &Harness) -> Vec<String> {
    h.call_events
        .iter()
        .flat_map(|(_, _, ev)| ev.iter().map(|e| format!("{}:{}", e.kind, e.to)))
        .collect()
}

fn joins(h: &Harness) -> Vec<(EndpointId, u64)> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Join { endpoint, bridge } => Some((*endpoint, *bridge)),
            _ => None,
        })
        .collect()
}

#[test]
fn slot_numbers_route_to_the_park_lot() {
    let mut snap = snapshot();
    let r = |digits| RouteRequest {
        tenant: 1,
        caller: "1001",
        digits,
        at: std::time::SystemTime::UNIX_EPOCH,
    };
    let dest = |d: Decision| match d {
        Decision::Route { destination, .. } => destination.to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(dest(route(&r("701"), &snap)), "park:701");
    assert_eq!(dest(route(&r("720"), &snap)), "park:720");
    assert!(dest(route(&r("721"), &snap)).contains("404"));
    assert!(dest(route(&r("0701"), &snap)).contains("404"));
    snap.codes.park.lots.insert(
        1,
        ParkLot {
            first: 801,
            last: 802,
            ..ParkLot::default()
        },
    );
    assert!(dest(route(&r("701"), &snap)).contains("404"));
    assert_eq!(dest(route(&r("802"), &snap)), "park:802");
    assert_eq!(
        "park:701".parse::<Destination>(),
        Ok(Destination::ParkSlot("701".into()))
    );
    assert_eq!("park".parse::<Destination>(), Ok(Destination::Park));
    assert!(ParkLot::default().validate().is_ok());
    let bad = ParkLot {
        first: 720,
        last: 701,
        ..ParkLot::default()
    };
    assert!(bad.validate().is_err());
    let big = ParkLot {
        first: 1,
        last: 500,
        ..ParkLot::default()
    };
    assert!(big.validate().unwrap_err().contains("at most"));
    let fb = ParkLot {
        fallback: "nowhere:1".into(),
        ..ParkLot::default()
    };
    assert!(fb.validate().unwrap_err().starts_with("fallback"));
}

#[test]
fn park_by_code_then_retrieval_from_another_phone_bridges_both() {
    let mut h = setup();
    let parked = park(&mut h, "1001", A, "park-1", 701);
    assert_eq!(
        h.engine.park_slot(1, 701),
        (true, Some(("1001".to_string(), "Ext 1001".to_string())))
    );
    let list = h.engine.parked_calls(1);
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].slot, list[0].parked_by.as_str()), (701, "1001"));
    assert_eq!(list[0].state, "parked");
    let row = &h.park_rows[&(1, 701)];
    assert_eq!(
        (row.caller.as_str(), row.call_id.as_str()),
        ("1001", "park-1")
    );
    assert_eq!(
        row.timeout_at.duration_since(row.parked_at).ok(),
        Some(Duration::from_secs(120))
    );

    // 1002 dials the slot: answered on its own endpoint, both endpoints join one bridge.
    let taker = call(&mut h, "1002", "701", C, "take-1");
    let j = joins(&h);
    assert_eq!(j.len(), 2, "{j:?}");
    assert!(j.iter().any(|(e, _)| *e == parked.ep));
    assert!(j.iter().any(|(e, _)| *e == taker.ep));
    assert_eq!(j[0].1, j[1].1, "one bridge");
    assert!(h.media_log.contains(&MediaCommand::StopPlay {
        endpoint: parked.ep
    }));
    assert!(h.park_rows.is_empty(), "row deleted once retrieved");
    assert_eq!(h.engine.park_slot(1, 701), (false, None));
    assert!(h.engine.parked_calls(1).is_empty());
    assert_eq!(h.engine.active_calls(), 2);

    // The retriever hangs up: the parked caller gets a BYE, both calls end.
    h.sent.clear();
    bye(&mut h, &taker);
    let byes = h.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to, addr(A));
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(
        event_kinds(&h),
        vec!["parked:701", "retrieved:1002", "park-retrieved:1002"]
    );
    // The slot is free for the next call.
    park(&mut h, "1003", D, "park-2", 701);
}

#[test]
fn an_empty_slot_is_announced_and_the_call_ends() {
    let mut h = setup();
    let l = call(&mut h, "1002", "705", C, "empty-1");
    assert_eq!(plays(&h, l.ep), vec!["park-slot-empty".to_string()]);
    h.sent.clear();
    play_done(&mut h, l.ep);
    assert_eq!(h.requests("BYE").len(), 1, "hung up after the prompt");
    assert_eq!(h.engine.active_calls(), 0);
    assert!(h.park_ops.is_empty());
}

#[test]
fn two_parks_get_different_slots_and_a_full_lot_says_so() {
    let mut h = setup_with(Some(ParkLot {
        first: 701,
        last: 702,
        ..ParkLot::default()
    }));
    park(&mut h, "1001", A, "p-1", 701);
    park(&mut h, "1003", D, "p-2", 702);
    let full = call(&mut h, "1002", "*70", C, "p-3");
    assert_eq!(plays(&h, full.ep), vec!["park-no-free-slot".to_string()]);
    h.sent.clear();
    play_done(&mut h, full.ep);
    assert_eq!(h.requests("BYE").len(), 1);
    let slots: Vec<u32> = h.engine.parked_calls(1).iter().map(|p| p.slot).collect();
    assert_eq!(slots, vec![701, 702]);
    assert_eq!(h.park_rows.len(), 2);
}

#[test]
fn timeout_rings_the_parker_back_then_the_fallback_hangs_up() {
    let mut h = setup_with(lot(30));
    // 1001 has a second phone: the callback rings it (not the parked phone itself).
    second_phone(&mut h);
    let parked = park(&mut h, "1001", A, "to-1", 701);
    h.sent.clear();
    h.advance(Duration::from_millis(29_900));
    assert!(h.requests("INVITE").is_empty(), "not before the timeout");
    h.advance(Duration::from_millis(200));
    let invites = h.requests("INVITE");
    assert_eq!(invites.len(), 1, "the parker's other phone rings");
    assert_eq!(invites[0].to, addr(A2));
    let from = invites[0].request().from().expect("From").to_string();
    assert!(from.contains("Parked 701"), "caller ID says so: {from}");
    assert_eq!(h.engine.parked_calls(1)[0].state, "ringing-back");
    assert!(
        plays(&h, parked.ep)
            .last()
            .is_some_and(|p| p.contains("Ringback")),
        "the parked caller hears ringback"
    );
    // It rings; nobody answers: the fork is cancelled, a prompt, then the call ends.
    let invite = invites[0].request().clone();
    h.reply(&invite, 180, "cb", A2, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(61));
    assert_eq!(distinct(&h, "CANCEL").len(), 1);
    assert_eq!(
        plays(&h, parked.ep).last().map(String::as_str),
        Some("ext-unavailable")
    );
    assert!(h.park_rows.is_empty(), "row deleted");
    h.sent.clear();
    play_done(&mut h, parked.ep);
    assert_eq!(h.requests("BYE").len(), 1);
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(
        event_kinds(&h),
        vec!["parked:701", "park-timeout:1001", "park-fallback:hangup"]
    );
}

#[test]
fn the_parker_answering_the_callback_takes_the_call() {
    let mut h = setup_with(lot(10));
    second_phone(&mut h);
    let parked = park(&mut h, "1001", A, "cb-1", 701);
    h.sent.clear();
    h.advance(Duration::from_secs(11));
    let invite: Request = h.requests("INVITE")[0].request().clone();
    h.media_log.clear();
    h.reply(&invite, 200, "cb", A2, SEG1);
    assert!(
        joins(&h).iter().any(|(e, _)| *e == parked.ep),
        "the parked caller is bridged to the parker"
    );
    assert!(h.park_rows.is_empty());
    assert!(h.engine.parked_calls(1).is_empty());
    h.sent.clear();
    bye(&mut h, &parked);
    assert_eq!(
        h.requests("BYE").len(),
        1,
        "the parker's phone gets the BYE"
    );
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(
        event_kinds(&h),
        vec!["parked:701", "park-timeout:1001", "park-callback:1001"]
    );
}

#[test]
fn a_parker_with_no_other_phone_goes_straight_to_the_fallback() {
    let mut h = setup_with(Some(ParkLot {
        timeout: Duration::from_secs(10),
        fallback: "ext:1003".into(),
        ..ParkLot::default()
    }));
    let parked = park(&mut h, "1001", A, "fb-1", 701);
    h.sent.clear();
    h.advance(Duration::from_secs(11));
    // 1001's only phone is the parked one: the fallback (1003) rings instead.
    let invites = h.requests("INVITE");
    assert_eq!(
        distinct(&h, "INVITE"),
        vec![(addr(D), distinct(&h, "INVITE")[0].1.clone())]
    );
    let invite = invites[0].request().clone();
    h.reply(&invite, 200, "fb", D, SEG1);
    assert!(joins(&h).iter().any(|(e, _)| *e == parked.ep));
    assert!(h.park_rows.is_empty());
}

#[test]
fn retrieval_just_before_the_timeout_wins() {
    let mut h = setup_with(lot(10));
    second_phone(&mut h);
    let _parked = park(&mut h, "1001", A, "race-1", 701);
    h.advance(Duration::from_millis(9_999));
    let _taker = call(&mut h, "1002", "701", C, "race-take");
    h.sent.clear();
    h.advance(Duration::from_secs(5));
    assert!(
        h.requests("INVITE").is_empty(),
        "no callback after retrieval"
    );
    assert_eq!(h.engine.active_calls(), 2);
    // A second retrieval of the same slot finds it empty.
    let late = call(&mut h, "1003", "701", D, "race-late");
    assert_eq!(plays(&h, late.ep), vec!["park-slot-empty".to_string()]);
}

#[test]
fn the_parked_caller_hanging_up_frees_the_slot() {
    let mut h = setup();
    let parked = park(&mut h, "1001", A, "hup-1", 701);
    h.park_ops.clear();
    bye(&mut h, &parked);
    assert_eq!(
        h.park_ops,
        vec![ParkOp::Free {
            tenant: 1,
            slot: 701
        }]
    );
    assert!(h.park_rows.is_empty());
    assert_eq!(h.engine.park_slot(1, 701), (false, None));
    assert_eq!(h.engine.active_calls(), 0);
    // A timer of the gone call changes nothing.
    h.sent.clear();
    h.advance(Duration::from_secs(200));
    assert!(h.requests("INVITE").is_empty());
}

#[test]
fn the_slot_is_announced_only_after_its_row_is_stored() {
    let mut h = setup();
    h.db_mode = DbMode::Hold;
    let l = call(&mut h, "1001", "*70", A, "hold-1");
    assert!(plays(&h, l.ep).is_empty(), "nothing said before the write");
    assert_eq!(h.engine.park_slot(1, 701), (false, None));
    // A second park meanwhile takes the next slot (701 is reserved).
    h.release_db(DbMode::Ok);
    assert_eq!(plays(&h, l.ep), vec![announcement(701)]);
    assert!(h.engine.park_slot(1, 701).0);

    // A failed write: not parked, said so, the slot stays free.
    h.db_mode = DbMode::Fail;
    let f = call(&mut h, "1003", "*70", D, "fail-1");
    assert_eq!(plays(&h, f.ep), vec!["park-no-free-slot".to_string()]);
    assert_eq!(h.engine.park_slot(1, 702), (false, None));
    h.db_mode = DbMode::Ok;

    // Hung up while the row is written: the row is deleted again once stored.
    h.db_mode = DbMode::Hold;
    let g = call(&mut h, "1002", "*70", C, "gone-1");
    bye(&mut h, &g);
    h.release_db(DbMode::Ok);
    assert!(!h.park_rows.contains_key(&(1, 702)), "{:?}", h.park_rows);
    assert_eq!(h.engine.park_slot(1, 702), (false, None));
    assert!(h.park_rows.contains_key(&(1, 701)));
}

/// A new engine `after` the old one (`h`) stopped, loading its stored parked calls: the new
/// engine, the re-INVITE it sent and the endpoint it opened.
fn restart(h: &Harness, after: Duration) -> (Harness, Request, EndpointId) {
    let mut h2 = setup();
    h2.now = h2.now.after(after);
    h2.park_rows = h.park_rows.clone();
    h2.sent.clear();
    h2.media_log.clear();
    h2.engine
        .load_parked(h.park_rows.values().cloned().collect());
    h2.drain();
    let reinv = h2.requests("INVITE");
    assert_eq!(reinv.len(), 1, "one re-INVITE");
    assert_eq!(reinv[0].to, addr(A));
    let r = reinv[0].request().clone();
    let ep = h2
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .expect("a new endpoint");
    (h2, r, ep)
}

#[test]
fn a_restart_reloads_the_parked_call_re_invites_its_leg_and_keeps_the_timeout() {
    let mut h = setup();
    let parked = park(&mut h, "1001", A, "rs-1", 701);
    let rows: Vec<_> = h.park_rows.values().cloned().collect();
    let leg = rows[0].leg.clone().expect("the leg's dialog is stored");
    assert!(leg.invite.starts_with("INVITE "), "{}", leg.invite);
    assert_eq!((leg.peer, leg.transport.as_str()), (addr(A), "UDP"));
    // A shutdown leaves the parked call alone (no BYE, the row stays).
    h.sent.clear();
    h.engine.end_all_calls(h.now);
    h.drain();
    assert!(h.requests("BYE").is_empty());
    assert_eq!(h.park_rows.len(), 1);

    // A new engine 100 s later: the slot is occupied at once, the leg is re-INVITEd.
    let (mut h2, r, new_ep) = restart(&h, Duration::from_secs(100));
    assert!(h2.engine.park_slot(1, 701).0, "occupied again");
    assert_eq!(r.call_id(), Some("rs-1"));
    let from_tag = r.from().and_then(|f| f.tag().map(str::to_string));
    assert_eq!(from_tag.as_deref(), Some(leg.our_tag.as_str()), "our tag");
    let to_tag = r.to().and_then(|t| t.tag().map(str::to_string));
    assert_eq!(to_tag.as_deref(), Some("a-rs-1"), "the phone's tag");
    assert!(
        String::from_utf8_lossy(&r.body).contains("m=audio"),
        "offers our endpoint"
    );
    // The phone accepts: ACK, the endpoint gets its media, the music plays again.
    h2.sent.clear();
    h2.reply(&r, 200, "", A, SEG1);
    assert_eq!(h2.requests("ACK").len(), 1);
    assert!(h2.media_log.iter().any(|c| matches!(c,
        MediaCommand::ConfigureEndpoint { endpoint, rtp: Some(_), .. } if *endpoint == new_ep)));
    assert_eq!(
        plays(&h2, new_ep).last().map(String::as_str),
        Some("moh:default")
    );
    assert_eq!(h2.engine.parked_calls(1)[0].state, "parked");

    // The timeout runs on from the stored time: 120 s after parking, i.e. 20 s from now.
    h2.sent.clear();
    h2.advance(Duration::from_secs(19));
    assert!(!plays(&h2, new_ep).iter().any(|p| p == "ext-unavailable"));
    h2.advance(Duration::from_secs(2));
    // 1001's only phone is the parked one: straight to the fallback (a prompt, hang up).
    assert_eq!(
        plays(&h2, new_ep).last().map(String::as_str),
        Some("ext-unavailable")
    );
    let _ = parked;
}

#[test]
fn after_a_restart_the_parked_call_is_retrieved_and_its_bye_is_understood() {
    let mut h = setup();
    let parked = park(&mut h, "1001", A, "rs-2", 701);
    let (mut h2, r, new_ep) = restart(&h, Duration::ZERO);
    h2.reply(&r, 200, "", A, SEG1);
    let taker = call(&mut h2, "1002", "701", C, "rs-take");
    assert!(joins(&h2).iter().any(|(e, _)| *e == new_ep));
    assert!(joins(&h2).iter().any(|(e, _)| *e == taker.ep));
    assert!(h2.park_rows.is_empty());
    // The parked phone hangs up in its old dialog: understood, the retriever gets a BYE.
    h2.sent.clear();
    let mut p = parked;
    p.source = A;
    h2.recv_raw(&in_dialog(&p, "BYE", 5), A, SEG1);
    assert_eq!(h2.responses(), vec![200]);
    let byes = h2.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to, addr(C));
    assert_eq!(h2.engine.active_calls(), 0);
}

#[test]
fn a_stored_park_whose_phone_refuses_the_re_invite_is_freed() {
    let mut h = setup();
    park(&mut h, "1001", A, "rs-3", 701);
    let (mut h2, r, _) = restart(&h, Duration::ZERO);
    h2.reply(&r, 481, "", A, SEG1);
    assert!(h2.park_rows.is_empty(), "row deleted");
    assert_eq!(h2.engine.park_slot(1, 701), (false, None));
    assert_eq!(h2.engine.active_calls(), 0);
}

/// 1003 (at `D`) subscribes to `uri`'s `dialog` package (digest-challenged first); the final
/// response's status.
fn watch(h: &mut Harness, call_id: &str, uri: &str) -> u16 {
    let text = |cseq: u32, auth: Option<&str>| {
        let mut s = format!(
            "SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {D};branch=z9hG4bK-w{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:1003@example.com>;tag=w-{call_id}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1003@{D}>\r\nEvent: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 600\r\n"
        );
        if let Some(a) = auth {
            s.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        s + "Content-Length: 0\r\n\r\n"
    };
    h.recv_raw(&text(1, None), D, SEG1);
    let challenge = h.last_response();
    assert_eq!(challenge.status, 407);
    let creds = h.answer_challenge(
        "1003",
        &password("1003"),
        &challenge,
        &sip::HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        uri,
    );
    h.sent.clear();
    h.recv_raw(&text(2, Some(&creds)), D, SEG1);
    h.last_response().status
}

/// The bodies of the NOTIFYs sent to the watcher in `call_id` since the last look (answered
/// 200 like a phone does).
fn watcher_bodies(h: &mut Harness, call_id: &str) -> Vec<String> {
    let mut out: Vec<Request> = Vec::new();
    for s in &h.sent {
        if let Message::Request(r) = &s.message
            && r.method == sip::Method::Notify
            && r.call_id() == Some(call_id)
            && !out.iter().any(|o| o.cseq() == r.cseq())
        {
            out.push(r.clone());
        }
    }
    for r in &out {
        let ok = Response::for_request(r, 200, None);
        h.recv_message(Message::Response(ok), D, SEG1);
    }
    out.iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[test]
fn a_blf_key_on_a_slot_shows_the_parked_call_until_it_is_retrieved() {
    let gap = Duration::from_millis(60);
    let mut h = setup();
    assert_eq!(watch(&mut h, "key-701", "sip:701@example.com"), 200);
    let first = watcher_bodies(&mut h, "key-701");
    assert_eq!(first.len(), 1, "the full state at once");
    assert!(!first[0].contains("<state>"), "empty slot: {}", first[0]);
    // A number outside the lot is no resource.
    h.sent.clear();
    assert_eq!(watch(&mut h, "key-799", "sip:799@example.com"), 404);

    h.advance(gap);
    h.sent.clear();
    let parked = park(&mut h, "1001", A, "blf-park-1", 701);
    h.advance(gap);
    let b = watcher_bodies(&mut h, "key-701");
    let last = b.last().expect("a NOTIFY once the call is parked");
    assert!(last.contains("<state>confirmed</state>"), "{last}");
    assert!(
        last.contains("sip:1001@"),
        "the parked caller shown: {last}"
    );

    h.advance(gap);
    h.sent.clear();
    let taker = call(&mut h, "1002", "701", C, "blf-take-1");
    h.advance(gap);
    let b = watcher_bodies(&mut h, "key-701");
    let last = b.last().expect("a NOTIFY once the call is retrieved");
    assert!(!last.contains("<state>"), "slot empty again: {last}");
    h.sent.clear();
    bye(&mut h, &taker);
    let _ = parked;
}

/// The active/standby handover: the node giving up the address forgets its parked calls in
/// silence (rows kept, no BYE, no callback later); the node taking over resumes them from the
/// rows; loading rows again where a slot is already held changes nothing and deletes nothing.
#[test]
fn a_node_handing_over_forgets_its_parked_calls_and_the_peer_resumes_them() {
    let mut h = setup();
    let parked = park(&mut h, "1001", A, "ho-1", 701);
    h.sent.clear();
    h.media_log.clear();
    h.park_ops.clear();
    assert_eq!(h.engine.forget_parked(), 1);
    h.drain();
    assert!(h.media_log.contains(&MediaCommand::CloseEndpoint {
        endpoint: parked.ep
    }));
    assert!(h.sent.is_empty(), "nothing said to the phone");
    assert!(h.park_ops.is_empty(), "the row stays for the peer");
    assert_eq!(h.engine.park_slot(1, 701), (false, None));
    assert_eq!(h.engine.active_calls(), 0);
    // Its timeout is gone with it: no callback from this node.
    h.advance(Duration::from_secs(200));
    assert!(h.requests("INVITE").is_empty());
    assert_eq!(h.park_rows.len(), 1);

    // The peer (a new engine) resumes the call from the row.
    let (mut h2, r, _) = restart(&h, Duration::from_secs(1));
    h2.reply(&r, 200, "", A, SEG1);
    assert!(h2.engine.park_slot(1, 701).0);
    // Loading the rows again (the address comes back while the slot is held) keeps it.
    h2.park_ops.clear();
    h2.sent.clear();
    h2.engine
        .load_parked(h2.park_rows.values().cloned().collect());
    h2.drain();
    assert!(h2.park_ops.is_empty(), "no row deleted");
    assert!(h2.requests("INVITE").is_empty(), "no second re-INVITE");
    assert!(h2.engine.park_slot(1, 701).0);
}
