//! Anchored calls to outside numbers on a fake clock: voicemail's call back of a message from
//! an outside caller goes out through the trunk as the box owner (digest challenge answered,
//! ringback, the answer bridged on endpoints, an outbound record), an overloaded trunk fails
//! over to the route's next one, a class of service that forbids the number refuses it with no
//! INVITE, and a busy far end says "unavailable".

mod common;

use apps::vmail::{BoxSpec, Folder, Message as VmMessage};
use common::*;
use engine::db::{Direction, Disposition};
use engine::media::EndpointId;
use engine::outside::CallClass;
use engine::vm::VmBoxEntry;
use sip::{HeaderName, Message, Response};

const CALLER: &str = "192.0.2.21:5060";
const CARRIER: &str = "203.0.113.10:5060";
/// The outside caller who left the message (national format, as the route wants it).
const OUTSIDER: &str = "0312345678";

/// 1001 (class `cos`) registered with a PIN-protected box holding one new message from
/// [`OUTSIDER`]; one trunk with credentials; national numbers go out through it.
fn harness(cos: CallClass) -> Harness {
    harness_with(cos, |_| {})
}

/// [`harness`] with the outbound settings changed by `f` first.
fn harness_with(cos: CallClass, f: impl FnOnce(&mut engine::config::Outside)) -> Harness {
    let mut snap = snapshot();
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.cos = cos;
    }
    snap.outside = national_outside("0ZXXXXXXXX", ("carrier", Some((CARRIER, "carrier-pw"))));
    f(&mut snap.outside);
    snap.apps.vm_boxes.insert(
        (1, "1001".into()),
        VmBoxEntry {
            spec: BoxSpec::default(),
            has_pin: true,
        },
    );
    let mut h = Harness::with(snap);
    let c = "<sip:1001@192.0.2.21:5060>";
    assert_eq!(
        h.register("1001", Some(c), Some(3600), CALLER, SEG1).status,
        200
    );
    h.vm_messages = vec![VmMessage {
        id: 11,
        folder: Folder::New,
        caller: OUTSIDER.into(),
        at: (9, 30),
        path: "voicemail/1/1001/msg-11-1.wav".into(),
    }];
    h.sent.clear();
    h.media_log.clear();
    h
}

/// 1001 dials `*97`, enters the PIN, listens to the message and presses 8 ("call back"); the
/// "calling back" prompt ends. The caller's endpoint.
fn call_back(h: &mut Harness) -> EndpointId {
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "*97",
        source: CALLER,
        local: SEG1,
        call_id: "vm-cb",
    });
    let ok = h
        .sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("answered");
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let ack = format!(
        "ACK {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack-cb\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: vm-cb\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.from().expect("From"),
        ok.to().expect("To"),
    );
    h.recv_raw(&ack, CALLER, SEG1);
    let ep = *h.opened_endpoints().first().expect("an endpoint");
    h.keys(ep, "2580#");
    h.keys(ep, "1");
    assert!(
        h.plays_on(ep)
            .last()
            .is_some_and(|p| p.contains("voicemail/1/1001/msg-11-1.wav")),
        "{:?}",
        h.plays_on(ep)
    );
    h.keys(ep, "8");
    h.sent.clear();
    h.end_play(ep);
    ep
}

/// Endpoints opened after the caller's.
fn opened_after(h: &Harness, first: EndpointId) -> Vec<EndpointId> {
    let mut eps = h.opened_endpoints();
    eps.retain(|e| *e != first);
    eps
}

#[test]
fn calling_back_an_outside_caller_goes_out_through_the_trunk_and_bridges_the_answer() {
    let mut h = harness(CallClass::Mobile);
    let ep = call_back(&mut h);
    let out = h.take();
    let inv = invites_to(&out, CARRIER);
    assert_eq!(inv.len(), 1, "the call-back goes to the trunk: {out:?}");
    let inv = &inv[0];
    assert_eq!(
        inv.uri.to_string(),
        format!("sip:{OUTSIDER}@203.0.113.10:5060")
    );
    assert_eq!(
        inv.from().expect("From").uri.user().as_deref(),
        Some("0312340000"),
        "presented as the tenant's main number"
    );
    // Our own offer, from an endpoint on the trunk's segment.
    let trunk_ep = opened_after(&h, ep);
    assert_eq!(trunk_ep.len(), 1, "{:?}", h.media_log);
    let body = String::from_utf8_lossy(&inv.body).to_string();
    assert!(body.contains("RTP/AVP"), "{body}");
    assert!(
        h.plays_on(ep)
            .last()
            .is_some_and(|p| p.contains("Ringback")),
        "ringback while the trunk is tried: {:?}",
        h.plays_on(ep)
    );
    // The provider challenges: answered with the trunk's credentials.
    let challenge = Response::for_request(inv, 407, None)
        .with_to_tag("carrier")
        .with_header(
            HeaderName::ProxyAuthenticate,
            "Digest realm=\"carrier.test\", nonce=\"n0nce1\", qop=\"auth\", algorithm=MD5",
        );
    h.recv_message(Message::Response(challenge), CARRIER, SEG1);
    let again = invites_to(&h.take(), CARRIER);
    assert_eq!(again.len(), 1, "re-sent with credentials");
    let creds = again[0]
        .headers
        .get(&HeaderName::from_bytes(b"Proxy-Authorization"))
        .map(|v| v.as_str().to_string())
        .expect("Proxy-Authorization");
    assert!(creds.contains("username=\"acct\""), "{creds}");
    assert!(
        h.joined_endpoints().is_empty(),
        "nothing bridged before the answer"
    );
    // The far end answers: both endpoints join one bridge.
    h.reply(&again[0], 200, "far", CARRIER, SEG1);
    let j = h.joined_endpoints();
    assert!(j.contains(&ep) && j.contains(&trunk_ep[0]), "{j:?}");
    assert_eq!(
        h.engine.trunk_statuses(h.now)[0].calls,
        1,
        "the trunk carries it"
    );
    h.engine.hangup(1, h.now);
    h.drain();
    let cdr = h.cdrs.last().expect("record");
    assert_eq!(cdr.route.direction, Direction::Outbound);
    assert_eq!(cdr.route.trunk, "carrier");
    assert_eq!(cdr.route.sent_number, OUTSIDER);
    assert_eq!(cdr.route.caller_id, "0312340000");
    assert_eq!(cdr.callee, OUTSIDER);
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn a_class_of_service_that_forbids_the_number_refuses_the_call_back_without_an_invite() {
    let mut h = harness(CallClass::Internal);
    let ep = call_back(&mut h);
    let out = h.take();
    assert!(invites_to(&out, CARRIER).is_empty(), "{out:?}");
    assert_eq!(opened_after(&h, ep), Vec::<EndpointId>::new());
    assert_eq!(
        h.plays_on(ep).last().map(String::as_str),
        Some("ext-unavailable")
    );
}

#[test]
fn a_busy_far_end_says_unavailable_and_the_call_ends() {
    let mut h = harness(CallClass::Mobile);
    let ep = call_back(&mut h);
    let inv = invites_to(&h.take(), CARRIER);
    assert_eq!(inv.len(), 1);
    h.reply(&inv[0], 486, "far", CARRIER, SEG1);
    assert!(
        invites_to(&h.take(), CARRIER).is_empty(),
        "busy: no failover"
    );
    assert_eq!(
        h.plays_on(ep).last().map(String::as_str),
        Some("ext-unavailable")
    );
    assert_eq!(h.engine.trunk_statuses(h.now)[0].calls, 0);
    h.end_play(ep);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == CALLER));
    assert_eq!(h.engine.active_calls(), 0);
    assert!(h.joined_endpoints().is_empty());
}

#[test]
fn an_overloaded_trunk_fails_over_to_the_next_one_of_the_route() {
    const BACKUP: &str = "203.0.113.20:5060";
    let mut h = harness_with(CallClass::Mobile, |o| {
        let spare = national_outside("0ZXXXXXXXX", ("backup", Some((BACKUP, ""))));
        if let Some(mut t) = spare.trunks.get(&1).cloned() {
            t.id = 2;
            o.trunks.insert(2, t);
        }
        if let Some(r) = o.routes.get_mut(&1).and_then(|r| r.first_mut()) {
            r.spec.trunks.push("backup".into());
        }
    });
    let ep = call_back(&mut h);
    let first = invites_to(&h.take(), CARRIER);
    assert_eq!(first.len(), 1);
    h.reply(&first[0], 503, "busy-sbc", CARRIER, SEG1);
    let second = invites_to(&h.take(), BACKUP);
    assert_eq!(second.len(), 1, "failed over to the second trunk");
    assert_eq!(
        second[0].uri.to_string(),
        format!("sip:{OUTSIDER}@{BACKUP}")
    );
    assert_eq!(h.engine.counters().trunk_failovers, 1);
    h.reply(&second[0], 200, "far", BACKUP, SEG1);
    assert!(h.joined_endpoints().contains(&ep));
    h.engine.hangup(1, h.now);
    h.drain();
    assert_eq!(
        h.cdrs.last().map(|c| c.route.trunk.as_str()),
        Some("backup")
    );
}
