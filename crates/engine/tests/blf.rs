//! BLF and presence (`dialog` and `presence` event packages) on a fake clock: a watcher phone
//! subscribes to another extension and sees its calls ring, get answered and end; presence
//! follows registration and DND; a day/night code shows the time condition; other tenants'
//! and unknown resources are refused; the per-extension key limit holds; bursts are coalesced
//! without losing the final state; a stored subscription works after a restart.

mod common;

use std::time::Duration;

use common::*;
use engine::Input;
use engine::subs::SubRecord;
use engine::timecond::{Mode, TimeCond};
use engine::vm::VmOp;
use sip::{HeaderName, Message, Request, Response};

/// The watching phone (extension 1003).
const W: &str = "192.0.2.23:5060";
/// The caller (1001) and the callee (1002).
const A: &str = "192.0.2.21:5060";
const B: &str = "192.0.2.22:5060";

fn setup_with(f: impl FnOnce(&mut engine::Snapshot)) -> Harness {
    let mut snap = snapshot();
    f(&mut snap);
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", A), ("1002", B), ("1003", W)] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h
}

fn setup() -> Harness {
    setup_with(|_| {})
}

fn subscribe_text(
    sub: (&str, &str),
    cseq: u32,
    event: &str,
    expires: u32,
    to_tag: &str,
    auth: Option<&str>,
) -> String {
    let (call_id, uri) = sub;
    let mut s = format!(
        "SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {W};branch=z9hG4bK-s{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:1003@example.com>;tag=w-{call_id}\r\nTo: <{uri}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1003@{W}>\r\nEvent: {event}\r\nAccept: application/dialog-info+xml, application/pidf+xml\r\nExpires: {expires}\r\n"
    );
    if let Some(a) = auth {
        s.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    s + "Content-Length: 0\r\n\r\n"
}

/// 1003 subscribes to `uri` for `event` (digest-challenged first); the final response.
fn subscribe(h: &mut Harness, call_id: &str, uri: &str, event: &str) -> Response {
    h.recv_raw(
        &subscribe_text((call_id, uri), 1, event, 600, "", None),
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
    h.recv_raw(
        &subscribe_text((call_id, uri), 2, event, 600, "", Some(&creds)),
        W,
        SEG1,
    );
    h.sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Response(r) if r.status >= 200 => Some(r.clone()),
            _ => None,
        })
        .expect("a final response")
}

/// The NOTIFYs sent to the watcher in subscription `call_id` since the last call (each once,
/// retransmissions dropped), answered 200 like a phone does.
fn notifies(h: &mut Harness, call_id: &str) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::new();
    for s in &h.sent {
        if let Message::Request(r) = &s.message
            && r.method == sip::Method::Notify
            && r.call_id() == Some(call_id)
            && s.to == addr(W)
            && !out.iter().any(|o| o.cseq() == r.cseq())
        {
            out.push(r.clone());
        }
    }
    h.sent.clear();
    for r in &out {
        let ok = Response::for_request(r, 200, None);
        h.recv_message(Message::Response(ok), W, SEG1);
    }
    assert_eq!(
        h.engine.blf_stats().missed,
        0,
        "every call change BLF shows was marked (debug builds check)"
    );
    h.sent.retain(|s| {
        !matches!(&s.message, Message::Request(r) if r.method == sip::Method::Notify && r.call_id() != Some(call_id))
    });
    out
}

fn body(r: &Request) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The `version` attribute of a dialog-info body.
fn version(r: &Request) -> u32 {
    let b = body(r);
    let v = b.split("version=\"").nth(2).expect("version attribute");
    v.split('"')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

/// The `<state>`s of a dialog-info body, in order.
fn states(r: &Request) -> Vec<String> {
    body(r)
        .split("<state>")
        .skip(1)
        .filter_map(|s| s.split('<').next().map(str::to_string))
        .collect()
}

/// The INVITE forked to the phone at `at`.
fn fork_to(sent: &[Sent], at: &str) -> Request {
    sent.iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Invite && s.to == addr(at) => {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("a fork to the callee")
}

fn dial(h: &mut Harness, from: &str, at: &str, to: &str, call_id: &str) -> Request {
    let sent = h.dial(&Dial {
        from,
        to,
        source: at,
        local: SEG1,
        call_id,
    });
    let fork = fork_to(&sent, B);
    h.sent = sent;
    fork
}

const GAP: Duration = Duration::from_millis(60);

#[test]
fn a_watched_call_rings_is_answered_and_ends() {
    let mut h = setup();
    let ok = subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    assert_eq!(ok.status, 200);
    let n = notifies(&mut h, "w1");
    assert_eq!(n.len(), 1, "the full state at once");
    assert_eq!(
        n[0].headers.get_str(&HeaderName::ContentType),
        Some("application/dialog-info+xml")
    );
    assert!(body(&n[0]).contains("entity=\"sip:1002@denwa\""));
    assert!(states(&n[0]).is_empty(), "idle: {}", body(&n[0]));
    let v1 = version(&n[0]);

    // 1001 calls 1002: trying, then 1002's phone rings (180): early, as recipient, with the
    // dialog ids of the leg to 1002's phone (for a pickup with Replaces).
    h.advance(GAP);
    let fork = dial(&mut h, "1001", A, "1002", "call-1");
    h.reply(&fork, 180, "b-tag-1", B, SEG1);
    h.advance(GAP);
    let n = notifies(&mut h, "w1");
    let last = n.last().expect("a NOTIFY for the ringing call");
    assert_eq!(states(last), vec!["early"], "{}", body(last));
    let b = body(last);
    assert!(b.contains("direction=\"recipient\""), "{b}");
    assert!(
        b.contains(&format!("call-id=\"{}\"", fork.call_id().expect("Call-ID"))),
        "{b}"
    );
    assert!(b.contains("local-tag=\"b-tag-1\""), "{b}");
    let our_tag = fork
        .from()
        .and_then(|f| f.tag().map(str::to_string))
        .expect("tag");
    assert!(b.contains(&format!("remote-tag=\"{our_tag}\"")), "{b}");
    assert!(
        b.contains("<identity display=\"Ext 1001\">sip:1001@denwa</identity>"),
        "{b}"
    );
    assert!(version(last) > v1);

    // Answered: confirmed.
    h.reply(&fork, 200, "b-tag-1", B, SEG1);
    h.advance(GAP);
    let n = notifies(&mut h, "w1");
    let last = n.last().expect("a NOTIFY for the answered call");
    assert_eq!(states(last), vec!["confirmed"], "{}", body(last));
    let v3 = version(last);

    // Hung up: terminated, then nothing more.
    h.advance(GAP);
    let id = h.engine.calls(h.now)[0].id;
    let now = h.now;
    assert!(h.engine.hangup(id, now));
    h.drain();
    let n = notifies(&mut h, "w1");
    let last = n.last().expect("a NOTIFY for the end");
    assert_eq!(states(last), vec!["terminated"], "{}", body(last));
    assert!(version(last) > v3);
    h.advance(Duration::from_secs(3));
    let rest = notifies(&mut h, "w1");
    assert!(
        rest.iter().all(|r| states(r).is_empty()),
        "at most the idle state after the end"
    );
}

#[test]
fn the_caller_side_is_an_initiator_dialog_and_the_caller_can_be_hidden() {
    let mut h = setup_with(|s| s.settings.blf_show_caller = false);
    subscribe(&mut h, "w1", "sip:1001@example.com", "dialog");
    notifies(&mut h, "w1");
    h.advance(GAP);
    let fork = dial(&mut h, "1001", A, "1002", "call-1");
    h.reply(&fork, 180, "b-tag-1", B, SEG1);
    h.advance(GAP);
    let n = notifies(&mut h, "w1");
    let last = n.last().expect("NOTIFY");
    let b = body(last);
    assert_eq!(states(last), vec!["early"], "{b}");
    assert!(b.contains("direction=\"initiator\""), "{b}");
    assert!(b.contains("call-id=\"call-1\""), "{b}");
    assert!(!b.contains("<remote>"), "caller hidden: {b}");
}

#[test]
fn two_calls_to_one_extension_are_two_dialogs() {
    let mut h = setup();
    subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    notifies(&mut h, "w1");
    h.advance(GAP);
    let f1 = dial(&mut h, "1001", A, "1002", "call-1");
    h.reply(&f1, 180, "b1", B, SEG1);
    h.advance(GAP);
    let f2 = dial(&mut h, "1003", W, "1002", "call-2");
    h.reply(&f2, 180, "b2", B, SEG1);
    h.advance(GAP);
    let n = notifies(&mut h, "w1");
    let last = n.last().expect("NOTIFY");
    assert_eq!(states(last), vec!["early", "early"], "{}", body(last));
}

#[test]
fn a_burst_is_coalesced_and_the_final_state_is_kept() {
    let mut h = setup();
    subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    notifies(&mut h, "w1");
    // Ringing, answered and hung up inside one gap: the first change goes at once, the rest
    // waits for the gap and then shows the state of that moment (idle).
    h.advance(GAP);
    let fork = dial(&mut h, "1001", A, "1002", "call-1");
    h.reply(&fork, 180, "b1", B, SEG1);
    h.reply(&fork, 200, "b1", B, SEG1);
    let id = h.engine.calls(h.now)[0].id;
    let now = h.now;
    h.engine.hangup(id, now);
    h.drain();
    let early = notifies(&mut h, "w1");
    assert_eq!(early.len(), 1, "one NOTIFY inside the gap");
    h.advance(GAP);
    let later = notifies(&mut h, "w1");
    assert_eq!(later.len(), 1, "one NOTIFY when the gap ends");
    assert_eq!(
        states(&later[0]),
        vec!["terminated"],
        "the final state: {}",
        body(&later[0])
    );
    assert!(version(&later[0]) > version(&early[0]));
}

fn pidf_basic(r: &Request) -> String {
    let b = body(r);
    b.split("<basic>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn presence_follows_registration_calls_and_dnd() {
    let mut h = setup();
    // 1002 leaves: closed.
    assert_eq!(
        h.register("1002", Some(&format!("<sip:1002@{B}>")), Some(0), B, SEG1)
            .status,
        200
    );
    h.sent.clear();
    subscribe(&mut h, "p1", "sip:1002@example.com", "presence");
    let n = notifies(&mut h, "p1");
    assert_eq!(
        n[0].headers.get_str(&HeaderName::ContentType),
        Some("application/pidf+xml")
    );
    assert_eq!(pidf_basic(&n[0]), "closed", "{}", body(&n[0]));
    assert!(body(&n[0]).contains("Offline"));
    // Registers: open.
    h.advance(GAP);
    let c = format!("<sip:1002@{B}>");
    assert_eq!(
        h.register("1002", Some(&c), Some(3600), B, SEG1).status,
        200
    );
    let n = notifies(&mut h, "p1");
    assert_eq!(pidf_basic(n.last().expect("NOTIFY")), "open");
    // On the phone.
    h.advance(GAP);
    let fork = dial(&mut h, "1001", A, "1002", "call-1");
    h.reply(&fork, 200, "b1", B, SEG1);
    h.advance(GAP);
    let n = notifies(&mut h, "p1");
    let last = n.last().expect("NOTIFY");
    assert!(
        body(last).contains("<rpid:on-the-phone/>"),
        "{}",
        body(last)
    );
    // DND (what the driver reloads after *78): closed, busy, with a note.
    let id = h.engine.calls(h.now)[0].id;
    let now = h.now;
    h.engine.hangup(id, now);
    h.drain();
    h.advance(GAP);
    notifies(&mut h, "p1");
    let mut apps = h.engine.snapshot().apps.clone();
    apps.hunt.forwarding.insert(
        2,
        engine::hunt::Forwarding {
            dnd: true,
            ..Default::default()
        },
    );
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    let n = notifies(&mut h, "p1");
    let last = n.last().expect("NOTIFY for DND");
    assert_eq!(pidf_basic(last), "closed");
    assert!(body(last).contains("<rpid:busy/>") && body(last).contains("Do not disturb"));
    // A registration that runs out without a word: closed within the sweep.
    assert_eq!(h.register("1002", Some(&c), Some(120), B, SEG1).status, 200);
    h.advance(Duration::from_secs(122));
    let n = notifies(&mut h, "p1");
    let last = n.last().expect("NOTIFY when the registration ran out");
    assert!(body(last).contains("Offline"), "{}", body(last));
}

#[test]
fn a_day_night_code_shows_night_as_confirmed() {
    let mut h = setup_with(|s| {
        s.codes.timeconds.insert(
            (1, "office".into()),
            TimeCond {
                name: "office".into(),
                index: 1,
                weekly: vec![],
                dates: vec![],
                use_holidays: false,
                matched: engine::dialplan::Destination::Ext("1002".into()),
                unmatched: engine::dialplan::Destination::Ext("1001".into()),
                mode: Mode::Day,
            },
        );
    });
    let ok = subscribe(&mut h, "d1", "sip:*281@example.com", "dialog");
    assert_eq!(ok.status, 200);
    let n = notifies(&mut h, "d1");
    assert_eq!(states(&n[0]), vec!["terminated"], "day: {}", body(&n[0]));
    // Forced night (the reload after *281 wrote it): confirmed.
    h.advance(GAP);
    let mut codes = h.engine.snapshot().codes.clone();
    if let Some(t) = codes.timeconds.get_mut(&(1, "office".to_string())) {
        t.mode = Mode::Night;
    }
    h.input(Input::Config(engine::ConfigUpdate::Codes(codes)));
    let n = notifies(&mut h, "d1");
    assert_eq!(states(n.last().expect("NOTIFY")), vec!["confirmed"]);
    // An index without a time condition is not a resource.
    assert_eq!(
        subscribe(&mut h, "d2", "sip:*289@example.com", "dialog").status,
        404
    );
}

#[test]
fn other_tenants_and_unknown_resources_are_refused() {
    let mut h = setup_with(|s| {
        s.tenants.by_domain.insert("example.com".into(), 1);
        s.tenants.by_domain.insert("other.com".into(), 2);
        s.tenants.realms.insert(2, "other".into());
        s.extensions.insert((2, "2001".into()), ext(9, "2001", 1));
    });
    let r = subscribe(&mut h, "x1", "sip:2001@other.com", "dialog");
    assert_eq!(r.status, 403);
    let r = subscribe(&mut h, "x2", "sip:2001@example.com", "presence");
    assert_eq!(r.status, 404, "2001 is not an extension of 1003's tenant");
    let r = subscribe(&mut h, "x3", "sip:9999@example.com", "dialog");
    assert_eq!(r.status, 404);
    // Unknown package: 489 naming the ones served.
    h.recv_raw(
        &subscribe_text(
            ("x4", "sip:1002@example.com"),
            1,
            "conference",
            600,
            "",
            None,
        ),
        W,
        SEG1,
    );
    let r = h.last_response();
    assert_eq!(r.status, 489);
    assert_eq!(
        r.headers.get_str(&HeaderName::AllowEvents),
        Some("message-summary, dialog, presence")
    );
}

#[test]
fn the_key_limit_per_extension_holds_and_a_resubscription_replaces() {
    let mut h = setup_with(|s| s.settings.blf_max_keys = 2);
    assert_eq!(
        subscribe(&mut h, "k1", "sip:1001@example.com", "dialog").status,
        200
    );
    assert_eq!(
        subscribe(&mut h, "k2", "sip:1002@example.com", "dialog").status,
        200
    );
    assert_eq!(
        subscribe(&mut h, "k3", "sip:1002@example.com", "presence").status,
        403
    );
    // The same key again from the same phone (it restarted): the old one is replaced.
    assert_eq!(
        subscribe(&mut h, "k4", "sip:1002@example.com", "dialog").status,
        200
    );
    assert!(
        h.vm_ops
            .iter()
            .any(|o| matches!(o, VmOp::DropSub { call_id, .. } if call_id == "k2"))
    );
}

#[test]
fn a_stored_blf_subscription_works_after_a_restart() {
    let mut h = setup();
    subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    let rec: SubRecord = h
        .vm_ops
        .iter()
        .find_map(|o| match o {
            VmOp::SaveSub(r) if r.call_id == "w1" => Some((**r).clone()),
            _ => None,
        })
        .expect("stored");
    assert_eq!(
        (
            rec.package.as_str(),
            rec.resource.as_str(),
            rec.ext.as_str()
        ),
        ("dialog", "1002", "1003")
    );
    let mut h2 = setup();
    h2.engine.load_subscription(&rec, h2.now);
    let fork = dial(&mut h2, "1001", A, "1002", "call-1");
    h2.reply(&fork, 180, "b1", B, SEG1);
    h2.advance(GAP);
    let n = notifies(&mut h2, "w1");
    let last = n.last().expect("a NOTIFY in the stored dialog");
    assert_eq!(states(last), vec!["early"]);
    assert!(
        version(last) > 1000,
        "versions never go back after a restart"
    );
    assert!(last.cseq().is_some_and(|c| c.seq > 1000));
}

#[test]
fn a_subscriber_missing_from_the_cache_is_looked_up_then_served() {
    // 1003 is known to the database only: its SUBSCRIBE waits for the lookup, then goes on.
    let mut snap = snapshot();
    let e = snap
        .extensions
        .remove(&(1, "1003".to_string()))
        .expect("1003");
    let mut h = Harness::with(snap);
    h.db_extensions.insert((1, "1003".into()), e);
    let c = format!("<sip:1002@{B}>");
    assert_eq!(
        h.register("1002", Some(&c), Some(3600), B, SEG1).status,
        200
    );
    h.sent.clear();
    h.recv_raw(
        &subscribe_text(("l1", "sip:1002@example.com"), 1, "dialog", 600, "", None),
        W,
        SEG1,
    );
    assert_eq!(h.last_response().status, 407);
    let ok = subscribe(&mut h, "l2", "sip:1002@example.com", "dialog");
    assert_eq!(h.lookups, 1, "1003 was looked up");
    assert_eq!(ok.status, 200, "answered once the lookup came back");
    assert_eq!(notifies(&mut h, "l2").len(), 1);
}

/// Dials 1001 -> 1002 and answers; the answered fork.
fn answered_call(h: &mut Harness, call_id: &str, tag: &str) -> Request {
    let fork = dial(h, "1001", A, "1002", call_id);
    h.reply(&fork, 200, tag, B, SEG1);
    fork
}

/// Looks at calls during one watched call's life (ring, answer, hang-up) with `idle` answered
/// calls around it: (calls looked at, NOTIFY states the watcher saw).
fn work_for_one_call(idle: usize) -> (u64, Vec<Vec<String>>) {
    let mut h = setup();
    subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    notifies(&mut h, "w1");
    for i in 0..idle {
        answered_call(&mut h, &format!("idle-{i}"), &format!("it{i}"));
    }
    h.advance(GAP);
    notifies(&mut h, "w1");
    let before = h.engine.blf_stats().examined;
    let mut seen = Vec::new();
    let fork = dial(&mut h, "1001", A, "1002", "hot");
    h.reply(&fork, 180, "hot-b", B, SEG1);
    h.advance(GAP);
    seen.extend(notifies(&mut h, "w1").iter().map(states));
    h.reply(&fork, 200, "hot-b", B, SEG1);
    h.advance(GAP);
    seen.extend(notifies(&mut h, "w1").iter().map(states));
    let id = h
        .engine
        .calls(h.now)
        .into_iter()
        .find(|c| c.call_id == "hot")
        .expect("the hot call")
        .id;
    let now = h.now;
    assert!(h.engine.hangup(id, now));
    h.drain();
    h.advance(GAP);
    seen.extend(notifies(&mut h, "w1").iter().map(states));
    let examined = h.engine.blf_stats().examined - before;
    (examined, seen)
}

#[test]
fn idle_calls_are_not_looked_at_when_one_call_changes() {
    let (few, seen_few) = work_for_one_call(2);
    let (many, seen_many) = work_for_one_call(40);
    // The work is the changing call's alone: the same with 2 or 40 idle calls around it, and
    // fewer looks than the 40 idle calls (the old scan looked at every call after every input).
    assert_eq!(few, many, "work independent of the idle calls");
    assert!(many > 0 && many < 40, "looked at {many} times");
    // And the watcher still saw the changing call ring, be answered and end (the idle calls'
    // dialogs stay confirmed in every NOTIFY).
    for seen in [&seen_few, &seen_many] {
        let hot: Vec<&Vec<String>> = seen.iter().collect();
        assert!(
            hot.iter().any(|s| s.contains(&"early".to_string())),
            "{seen:?}"
        );
        assert!(
            hot.iter().any(|s| s.contains(&"terminated".to_string())),
            "{seen:?}"
        );
    }
    let idle_confirmed = seen_many
        .last()
        .map(|s| s.iter().filter(|x| *x == "confirmed").count());
    assert_eq!(idle_confirmed, Some(40), "{seen_many:?}");
}

#[test]
fn a_rescan_after_a_configuration_reload_looks_at_every_call_once() {
    let mut h = setup();
    subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    notifies(&mut h, "w1");
    for i in 0..5 {
        answered_call(&mut h, &format!("c-{i}"), &format!("t{i}"));
    }
    h.advance(GAP);
    assert_eq!(
        states(notifies(&mut h, "w1").last().expect("NOTIFY")).len(),
        5
    );
    // 1002 stops being an extension (reloaded): its dialogs end for its watcher.
    h.advance(GAP);
    let before = h.engine.blf_stats().examined;
    let mut exts = h.engine.snapshot().extensions.clone();
    let e = exts.remove(&(1, "1002".to_string())).expect("1002");
    h.input(Input::Config(engine::ConfigUpdate::Extensions(
        exts.clone(),
    )));
    assert_eq!(h.engine.blf_stats().examined - before, 5, "each call once");
    let n = notifies(&mut h, "w1");
    let last = n.last().expect("a NOTIFY after the reload");
    assert!(
        states(last).iter().all(|s| s == "terminated"),
        "{}",
        body(last)
    );
    // Back: the calls show again.
    h.advance(GAP);
    exts.insert((1, "1002".to_string()), e);
    h.input(Input::Config(engine::ConfigUpdate::Extensions(exts)));
    h.advance(GAP);
    let n = notifies(&mut h, "w1");
    assert_eq!(states(n.last().expect("NOTIFY")).len(), 5);
}

/// The NOTIFYs (and the 200s the SUBSCRIBEs got) as the engine wrote them, for one watched
/// call of each kind of state; compared with `tests/data/blf_wire.txt` byte for byte, so a
/// faster way of building them cannot change what phones receive. `BLF_WIRE_WRITE=1` writes
/// the file anew (only after a deliberate change of the wire format).
#[test]
fn notify_bytes_stay_the_same_for_every_state() {
    let mut h = setup();
    let mut wire = String::new();
    subscribe(&mut h, "w1", "sip:1002@example.com", "dialog");
    take(&mut h, &mut wire, "subscribed to 1002 (dialog)");
    notifies(&mut h, "w1");
    subscribe(&mut h, "w2", "sip:1001@example.com", "dialog");
    take(&mut h, &mut wire, "subscribed to 1001 (dialog)");
    notifies(&mut h, "w2");
    subscribe(&mut h, "p1", "sip:1002@example.com", "presence");
    take(&mut h, &mut wire, "subscribed to 1002 (presence)");
    let answer_all = |h: &mut Harness| {
        for id in ["w1", "w2", "p1"] {
            notifies(h, id);
        }
    };
    answer_all(&mut h);
    h.advance(GAP);
    let fork = dial(&mut h, "1001", A, "1002", "call-1");
    h.advance(GAP);
    take(&mut h, &mut wire, "trying");
    answer_all(&mut h);
    h.reply(&fork, 180, "b-tag-1", B, SEG1);
    h.advance(GAP);
    take(&mut h, &mut wire, "early");
    answer_all(&mut h);
    h.reply(&fork, 200, "b-tag-1", B, SEG1);
    h.advance(GAP);
    take(&mut h, &mut wire, "confirmed");
    answer_all(&mut h);
    let id = h.engine.calls(h.now)[0].id;
    let now = h.now;
    assert!(h.engine.hangup(id, now));
    h.drain();
    h.advance(GAP);
    take(&mut h, &mut wire, "terminated");
    answer_all(&mut h);
    h.advance(GAP);
    take(&mut h, &mut wire, "idle again");
    answer_all(&mut h);
    // Unsubscribing: the final NOTIFY.
    let ok = subscribe_text(
        ("w1", "sip:1002@example.com"),
        3,
        "dialog",
        0,
        &format!(";tag={}", notify_to_tag(&wire)),
        None,
    );
    h.recv_raw(&ok, W, SEG1);
    take(&mut h, &mut wire, "unsubscribed");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/blf_wire.txt");
    if std::env::var_os("BLF_WIRE_WRITE").is_some() {
        std::fs::write(path, &wire).expect("write the wire file");
    }
    let want = std::fs::read_to_string(path).expect("tests/data/blf_wire.txt");
    assert_eq!(wire, want, "NOTIFY bytes changed");
    assert!(wire.matches("NOTIFY sip:").count() >= 10, "{wire}");
}

/// Our tag of subscription `w1` (the From tag of its first NOTIFY).
fn notify_to_tag(wire: &str) -> String {
    wire.split("From: ")
        .nth(1)
        .and_then(|f| f.split(";tag=").nth(1))
        .and_then(|t| t.split("\r\n").next())
        .expect("a NOTIFY with our tag")
        .to_string()
}

/// Appends the NOTIFYs and SUBSCRIBE 200s sent so far to `wire`, raw but for our branch's
/// counter (NOTIFYs of one flush go out in no fixed order, so each step's are sorted).
fn take(h: &mut Harness, wire: &mut String, what: &str) {
    let mut blocks: Vec<String> = Vec::new();
    for s in &h.sent {
        let notify = matches!(&s.message, Message::Request(r) if r.method == sip::Method::Notify);
        let sub_ok = matches!(&s.message, Message::Response(r) if r.status == 200
            && r.cseq().is_some_and(|c| c.method == sip::Method::Subscribe));
        if notify || sub_ok {
            let text = String::from_utf8_lossy(&s.raw).into_owned();
            let masked = match text.split_once(";branch=z9hG4bK") {
                Some((head, rest)) if notify => {
                    let (seed, after) = rest.split_once('.').expect("seed.counter");
                    let tail = after.split_once(';').map_or("", |(_, t)| t);
                    format!("{head};branch=z9hG4bK{seed}.N;{tail}")
                }
                _ => text,
            };
            blocks.push(format!("=== {what} -> {}\n{masked}\n", s.to));
        }
    }
    blocks.sort();
    wire.push_str(&blocks.concat());
}
