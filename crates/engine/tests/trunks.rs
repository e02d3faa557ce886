//! Trunks on a fake clock: outbound calls with the provider's digest challenge answered,
//! failover on 503 and timeouts (not on 486), caller ID and privacy, inbound DIDs, toll-fraud
//! limits, emergency calls, registration to the provider and OPTIONS health checks.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use engine::ConfigUpdate;
use engine::Input;
use engine::config::{DidEntry, Outside, RouteEntry, Snapshot, TrunkEntry};
use engine::db::{Direction, Disposition};
use engine::outside::{
    CallClass, DidSpec, ExtLimits, Identity, RouteSpec, TenantOutbound, TrunkSpec,
};
use sip::{HeaderName, Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";
const CARRIER_A: &str = "203.0.113.10:5060";
const CARRIER_B: &str = "203.0.113.20:5060";
const STRANGER: &str = "203.0.113.99:5060";

fn trunk(id: i64, name: &str, at: &str, register: bool) -> TrunkEntry {
    let a: SocketAddr = addr(at);
    TrunkEntry {
        id,
        tenant: 1,
        name: name.into(),
        spec: TrunkSpec {
            host: a.ip().to_string(),
            port: Some(a.port()),
            register,
            username: if register {
                "acct".into()
            } else {
                String::new()
            },
            ping_interval_s: 0,
            ..TrunkSpec::default()
        },
        password: if register {
            "carrier-pw".into()
        } else {
            String::new()
        },
        addrs: vec![a],
        sources: vec![a.ip()],
    }
}

fn outside() -> Outside {
    let mut o = Outside::default();
    o.trunks.insert(1, trunk(1, "carrier-a", CARRIER_A, false));
    o.trunks.insert(2, trunk(2, "carrier-b", CARRIER_B, false));
    let route = |patterns: &[&str], class| RouteSpec {
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        trunks: vec!["carrier-a".into(), "carrier-b".into()],
        class,
        ..RouteSpec::default()
    };
    o.routes.insert(
        1,
        vec![
            RouteEntry::new(
                "national".into(),
                route(&["0|0ZXXXXXXXX"], CallClass::National),
            ),
            RouteEntry::new("intl".into(), route(&["0|010."], CallClass::International)),
        ],
    );
    let did = |p: &str, to: &str| DidEntry {
        pattern: p.parse().unwrap(),
        spec: DidSpec {
            destination: to.into(),
            ..DidSpec::default()
        },
        destination: to.parse().unwrap(),
    };
    o.dids.insert(
        1,
        vec![did("0312345602", "ext:1002"), did("any", "ext:1001")],
    );
    o.sort_dids();
    o.tenants.insert(
        1,
        TenantOutbound {
            main_number: "0312340000".into(),
            emergency_numbers: vec!["110".into()],
            max_per_hour: 1000,
            ..TenantOutbound::default()
        },
    );
    o
}

fn harness(o: Outside) -> Harness {
    let mut snap: Snapshot = snapshot();
    snap.outside = o;
    harness_on(snap)
}

/// [`harness`] on a snapshot the caller prepared (its `outside` set).
fn harness_on(snap: Snapshot) -> Harness {
    let mut h = Harness::with(snap);
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
    h.sent.clear();
    h
}

fn caller_final(h: &Harness) -> Option<Response> {
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

fn header(r: &Request, name: &str) -> Option<String> {
    r.headers
        .get(&HeaderName::from_bytes(name.as_bytes()))
        .map(|v| v.as_str().to_string())
}

/// A provider's 407 for `inv`.
fn challenge(inv: &Request) -> Response {
    Response::for_request(inv, 407, None)
        .with_to_tag("carrier")
        .with_header(
            HeaderName::ProxyAuthenticate,
            "Digest realm=\"carrier.test\", nonce=\"n0nce1\", qop=\"auth\", algorithm=MD5",
        )
}

#[test]
fn outbound_call_answers_the_challenge_fails_over_on_503_and_records_the_route() {
    let mut h = harness(outside());
    let out = dial(&mut h, "00312345678", "out-1");
    let a = invites_to(&out, CARRIER_A);
    assert_eq!(a.len(), 1, "first trunk tried: {out:?}");
    let inv = &a[0];
    assert_eq!(inv.uri.to_string(), "sip:0312345678@203.0.113.10:5060");
    let from = inv.from().expect("From");
    assert_eq!(
        from.uri.user().as_deref(),
        Some("0312340000"),
        "tenant main number"
    );
    assert!(invites_to(&out, CARRIER_B).is_empty());
    // The provider challenges; we answer with the trunk's credentials.
    h.sent.clear();
    h.recv_message(Message::Response(challenge(inv)), CARRIER_A, SEG1);
    let again = invites_to(&h.take(), CARRIER_A);
    assert_eq!(again.len(), 1, "re-sent with credentials");
    let creds = header(&again[0], "Proxy-Authorization").expect("Proxy-Authorization");
    assert!(creds.contains("realm=\"carrier.test\""), "{creds}");
    assert_eq!(again[0].call_id(), inv.call_id(), "same dialog attempt");
    assert_eq!(again[0].cseq().map(|c| c.seq), Some(2));
    // Then it is out of capacity: the call moves to the second trunk.
    h.recv_message(
        Message::Response(Response::for_request(&again[0], 503, None).with_to_tag("c2")),
        CARRIER_A,
        SEG1,
    );
    let b = invites_to(&h.take(), CARRIER_B);
    assert_eq!(b.len(), 1, "failed over");
    assert_eq!(b[0].uri.to_string(), "sip:0312345678@203.0.113.20:5060");
    assert_eq!(h.engine.counters().trunk_failovers, 1);
    // Answered there: the caller gets 200.
    h.reply(&b[0], 200, "far", CARRIER_B, SEG1);
    assert_eq!(caller_final(&h).map(|r| r.status), Some(200));
    assert_eq!(
        h.engine.trunk_statuses(h.now)[1].calls,
        1,
        "carrier-b carries it"
    );
    h.engine.hangup(1, h.now);
    h.drain();
    let cdr = h.cdrs.last().expect("record");
    assert_eq!(cdr.route.direction, Direction::Outbound);
    assert_eq!(cdr.route.trunk, "carrier-b");
    assert_eq!(cdr.route.dialled, "00312345678");
    assert_eq!(cdr.route.sent_number, "0312345678");
    assert_eq!(cdr.route.caller_id, "0312340000");
    assert_eq!(cdr.disposition, Disposition::Answered);
}

#[test]
fn busy_at_the_far_end_does_not_fail_over() {
    let mut h = harness(outside());
    let out = dial(&mut h, "00312345678", "out-busy");
    let inv = invites_to(&out, CARRIER_A).remove(0);
    h.sent.clear();
    h.recv_message(
        Message::Response(Response::for_request(&inv, 486, None).with_to_tag("x")),
        CARRIER_A,
        SEG1,
    );
    assert!(
        invites_to(&h.sent, CARRIER_B).is_empty(),
        "486 is the callee's answer"
    );
    assert_eq!(caller_final(&h).map(|r| r.status), Some(486));
}

#[test]
fn a_trunk_that_never_answers_fails_over_and_all_failing_gives_503() {
    let mut h = harness(outside());
    let out = dial(&mut h, "00312345678", "out-timeout");
    assert_eq!(invites_to(&out, CARRIER_A).len(), 1);
    h.sent.clear();
    // The first trunk stays silent (not even 100 Trying): the call moves on well before
    // Timer B (32 s).
    h.advance(Duration::from_secs(6));
    let b = invites_to(&h.sent, CARRIER_B);
    // (Retransmitted over UDP while it waits, one attempt.)
    assert!(!b.is_empty(), "second trunk after the timeout");
    assert!(b.iter().all(|r| r.call_id() == b[0].call_id()));
    h.sent.clear();
    h.recv_message(
        Message::Response(Response::for_request(&b[0], 500, None).with_to_tag("y")),
        CARRIER_B,
        SEG1,
    );
    assert_eq!(caller_final(&h).map(|r| r.status), Some(503));
}

#[test]
fn privacy_and_identity_headers() {
    let mut o = outside();
    if let Some(t) = o.trunks.get_mut(&1) {
        t.spec.identity = Identity::Ppi;
        t.spec.username = "0501112222".into();
    }
    let mut h = harness(o);
    let out = dial(&mut h, "00312345678", "ppi");
    let inv = invites_to(&out, CARRIER_A).remove(0);
    assert_eq!(
        inv.from().and_then(|f| f.uri.user()).as_deref(),
        Some("0501112222"),
        "From carries the line (account) number"
    );
    let ppi = header(&inv, "P-Preferred-Identity").expect("PPI");
    assert!(ppi.contains("sip:0312340000@"), "{ppi}");
    // An extension that withholds its number.
    let mut o = outside();
    if let Some(v) = o.routes.get_mut(&1) {
        v[0].spec.caller_id = "0312349999".into();
    }
    let mut snap = snapshot();
    snap.outside = o;
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.anonymous = true;
    }
    let mut h = Harness::with(snap);
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let out = dial(&mut h, "00312345678", "anon");
    let inv = invites_to(&out, CARRIER_A).remove(0);
    assert_eq!(
        inv.from().and_then(|f| f.uri.user()).as_deref(),
        Some("anonymous")
    );
    assert_eq!(header(&inv, "Privacy").as_deref(), Some("id"));
    let pai = header(&inv, "P-Asserted-Identity").expect("PAI for the network");
    assert!(pai.contains("0312349999"), "route caller ID wins: {pai}");
}

#[test]
fn inbound_dids_reach_their_extension_and_strangers_never_reach_a_route() {
    let mut h = harness(outside());
    let inbound = |did: &str, call_id: &str| {
        format!(
            "INVITE sip:{did}@192.0.2.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-{call_id}\r\nMax-Forwards: 69\r\nFrom: \"Outside\" <sip:0901234567@carrier.test>;tag=o-{call_id}\r\nTo: <sip:{did}@carrier.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:0901234567@203.0.113.10:5060>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
            len = sdp("203.0.113.10", 30000, "sendrecv")
                .replace('\n', "\r\n")
                .len(),
            body = sdp("203.0.113.10", 30000, "sendrecv").replace('\n', "\r\n"),
        )
    };
    h.recv_raw(&inbound("0312345602", "in-1"), CARRIER_A, SEG1);
    let ring = invites_to(&h.take(), DESK);
    assert_eq!(ring.len(), 1, "the DID's extension rings, no challenge");
    assert_eq!(
        ring[0].from().and_then(|f| f.uri.user()).as_deref(),
        Some("0901234567"),
        "the outside caller's number is shown"
    );
    // An unknown DID goes to the catch-all.
    h.recv_raw(&inbound("0399999999", "in-2"), CARRIER_A, SEG1);
    assert_eq!(invites_to(&h.take(), CALLER).len(), 1, "catch-all: 1001");
    // The same request from an address that is no trunk: challenged, never routed.
    h.recv_raw(&inbound("00312345678", "in-3"), STRANGER, SEG1);
    let sent = h.take();
    assert!(invites_to(&sent, CARRIER_A).is_empty() && invites_to(&sent, CARRIER_B).is_empty());
    assert!(
        sent.iter()
            .any(|s| matches!(&s.message, Message::Response(r) if r.status == 407))
    );
    assert_eq!(h.engine.counters().untrusted_invites, 1, "counted");
    // From a trunk, an outside number is not dialled out (no call-through): the catch-all.
    h.recv_raw(&inbound("00312345678", "in-4"), CARRIER_A, SEG1);
    let sent = h.take();
    assert!(invites_to(&sent, CARRIER_B).is_empty() && invites_to(&sent, CARRIER_A).is_empty());
    assert_eq!(invites_to(&sent, CALLER).len(), 1);
    for id in 1..=3 {
        h.engine.hangup(id, h.now);
    }
    h.drain();
    let cdr = h
        .cdrs
        .iter()
        .find(|c| c.call_id == "in-4")
        .expect("refusal recorded");
    assert_eq!(cdr.route.direction, Direction::Inbound);
    assert_eq!(cdr.route.did, "00312345678");
    assert_eq!(cdr.route.trunk, "carrier-a");
}

#[test]
fn toll_fraud_guards() {
    // International is not in the default class of service: nothing reaches a trunk.
    let mut h = harness(outside());
    let out = dial(&mut h, "0010442071234567", "intl");
    assert!(invites_to(&out, CARRIER_A).is_empty());
    assert!(
        out.iter()
            .any(|s| matches!(&s.message, Message::Response(r) if r.status == 403)),
        "{out:?}"
    );
    // A burst beyond the per-hour limit is stopped.
    let mut snap = snapshot();
    snap.outside = outside();
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.limits = ExtLimits {
            max_concurrent: 10,
            max_per_hour: 2,
            intl_minutes_per_day: 0,
        };
    }
    let mut h = Harness::with(snap);
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let mut reached = 0;
    for i in 0..4 {
        let out = dial(&mut h, "00312345678", &format!("burst-{i}"));
        reached += invites_to(&out, CARRIER_A).len();
        if let Some(inv) = invites_to(&out, CARRIER_A).first() {
            h.recv_message(
                Message::Response(Response::for_request(inv, 486, None).with_to_tag("b")),
                CARRIER_A,
                SEG1,
            );
        }
    }
    assert_eq!(reached, 2, "two calls an hour");
    assert_eq!(h.engine.counters().fraud_blocked, 2);
    // An hour later the window has moved on.
    h.advance(Duration::from_secs(3601));
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let out = dial(&mut h, "00312345678", "later");
    assert_eq!(invites_to(&out, CARRIER_A).len(), 1);
}

#[test]
fn emergency_calls_ignore_class_and_limits() {
    let mut snap = snapshot();
    snap.outside = outside();
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.cos = CallClass::Internal;
        e.limits = ExtLimits {
            max_concurrent: 0,
            max_per_hour: 0,
            intl_minutes_per_day: 0,
        };
    }
    let mut h = Harness::with(snap);
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let out = dial(&mut h, "00312345678", "national");
    assert!(invites_to(&out, CARRIER_A).is_empty(), "internal only");
    let out = dial(&mut h, "110", "police");
    let inv = invites_to(&out, CARRIER_A);
    assert_eq!(inv.len(), 1, "110 always goes out");
    assert_eq!(inv[0].uri.user().as_deref(), Some("110"));
}

#[test]
fn registration_to_the_provider_and_health_checks() {
    let mut o = outside();
    if let Some(t) = o.trunks.get_mut(&1) {
        *t = trunk(1, "carrier-a", CARRIER_A, true);
        t.spec.ping_interval_s = 30;
    }
    let mut h = harness(o);
    h.advance(Duration::from_millis(300));
    let regs: Vec<Request> = h
        .requests("REGISTER")
        .into_iter()
        .filter(|s| s.to.to_string() == CARRIER_A)
        .map(|s| s.request().clone())
        .collect();
    assert_eq!(regs.len(), 1, "registers at start");
    let reg = &regs[0];
    assert_eq!(reg.to().and_then(|t| t.uri.user()).as_deref(), Some("acct"));
    h.sent.clear();
    let chal = Response::for_request(reg, 401, None).with_header(
        HeaderName::WwwAuthenticate,
        "Digest realm=\"carrier.test\", nonce=\"abc\", algorithm=MD5",
    );
    h.recv_message(Message::Response(chal), CARRIER_A, SEG1);
    let again = h.requests("REGISTER");
    assert_eq!(again.len(), 1);
    assert!(
        again[0]
            .request()
            .headers
            .contains(&HeaderName::Authorization)
    );
    let ok = Response::for_request(again[0].request(), 200, None)
        .with_header(HeaderName::Expires, "120");
    h.recv_message(Message::Response(ok), CARRIER_A, SEG1);
    let st = &h.engine.trunk_statuses(h.now)[0];
    assert_eq!(st.registration, "registered");
    // Stored within a second (writes are at most one a second per trunk).
    h.advance(Duration::from_millis(1500));
    assert_eq!(
        h.trunk_status[&1]["registration"], "registered",
        "state stored"
    );
    // The health check: two OPTIONS unanswered mark it down, and calls skip it.
    let pings = h.requests("OPTIONS");
    assert!(
        pings.iter().any(|s| s.to.to_string() == CARRIER_A),
        "OPTIONS sent"
    );
    h.advance(Duration::from_secs(80));
    let st = &h.engine.trunk_statuses(h.now)[0];
    assert_eq!(st.health, "down", "{st:?}");
    h.sent.clear();
    let out = dial(&mut h, "00312345678", "skip-down");
    assert!(invites_to(&out, CARRIER_A).is_empty());
    assert_eq!(invites_to(&out, CARRIER_B).len(), 1, "down trunk skipped");
    // Removing the trunk unregisters it (Expires: 0) when it was registered.
    let mut o = outside();
    o.trunks.remove(&1);
    h.sent.clear();
    h.input(Input::Config(ConfigUpdate::Outside(o)));
    let _ = h.take();
}

#[test]
fn a_trunk_with_several_addresses_fails_over_between_them() {
    // DNS gave carrier-a two addresses: the second is tried before the next trunk.
    let mut o = outside();
    if let Some(t) = o.trunks.get_mut(&1) {
        t.spec.host = "sip.carrier.example".into();
        t.spec.port = None;
        t.addrs = vec![addr(CARRIER_A), addr("203.0.113.11:5060")];
        t.sources = t.addrs.iter().map(|a| a.ip()).collect();
    }
    let mut h = harness(o);
    let out = dial(&mut h, "00312345678", "srv");
    let first = invites_to(&out, CARRIER_A).remove(0);
    assert_eq!(
        first.uri.to_string(),
        "sip:0312345678@sip.carrier.example",
        "the Request-URI keeps the provider's domain"
    );
    h.sent.clear();
    h.recv_message(
        Message::Response(Response::for_request(&first, 503, None).with_to_tag("a")),
        CARRIER_A,
        SEG1,
    );
    let second = invites_to(&h.take(), "203.0.113.11:5060");
    assert_eq!(second.len(), 1, "the trunk's second address");
    assert!(invites_to(&h.sent, CARRIER_B).is_empty());
}

#[test]
fn outside_calls_in_progress_are_limited_per_extension() {
    let mut snap = snapshot();
    snap.outside = outside();
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.limits = ExtLimits {
            max_concurrent: 1,
            ..ExtLimits::default()
        };
    }
    let mut h = Harness::with(snap);
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let out = dial(&mut h, "00312345678", "c1");
    let first = invites_to(&out, CARRIER_A).remove(0);
    // A second one while the first rings: refused, nothing sent.
    let out = dial(&mut h, "00312345679", "c2");
    assert!(invites_to(&out, CARRIER_A).is_empty());
    assert!(
        out.iter()
            .any(|s| matches!(&s.message, Message::Response(r) if r.status == 403))
    );
    // The first ends (busy): the next call may go.
    h.recv_message(
        Message::Response(Response::for_request(&first, 486, None).with_to_tag("b")),
        CARRIER_A,
        SEG1,
    );
    let out = dial(&mut h, "00312345670", "c3");
    assert_eq!(invites_to(&out, CARRIER_A).len(), 1);
    // No database lookup was needed for outside numbers.
    assert_eq!(h.lookups, 0);
}

#[test]
fn limits_count_the_calls_made_before_a_restart() {
    let mut snap = snapshot();
    snap.outside = outside();
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.limits = ExtLimits {
            max_concurrent: 10,
            max_per_hour: 2,
            intl_minutes_per_day: 1,
        };
        e.cos = CallClass::International;
    }
    let mut h = Harness::with(snap);
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let ago = |s: u64| h.now.wall - Duration::from_secs(s);
    // From the records: two national calls in the last hour, one two hours ago, and 90
    // international seconds earlier today.
    let rec = |start, dialled: &str, billsec| engine::OutboundHistory {
        tenant: 1,
        caller: "1001".into(),
        start,
        dialled: dialled.into(),
        billsec,
    };
    let history = vec![
        rec(ago(600), "00312345678", 30),
        rec(ago(1200), "00312345678", 30),
        rec(ago(7200), "0010442071234567", 90),
    ];
    h.engine.seed_outbound_history(&history, h.now);
    let out = dial(&mut h, "00312345678", "after-restart");
    assert!(
        invites_to(&out, CARRIER_A).is_empty(),
        "the hour's two calls count"
    );
    assert!(
        out.iter()
            .any(|s| matches!(&s.message, Message::Response(r) if r.status == 403))
    );
    // An hour on, the per-hour window is free but today's international minute is used up.
    h.advance(Duration::from_secs(3600));
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(3600),
        CALLER,
        SEG1,
    );
    let out = dial(&mut h, "0010442071234567", "intl-after-restart");
    assert!(
        invites_to(&out, CARRIER_A).is_empty(),
        "international minutes of today count"
    );
    let out = dial(&mut h, "00312345678", "national-ok");
    assert_eq!(invites_to(&out, CARRIER_A).len(), 1);
}

#[test]
fn a_trunk_at_its_call_limit_is_skipped() {
    let mut o = outside();
    if let Some(t) = o.trunks.get_mut(&1) {
        t.spec.max_calls = 1;
    }
    let mut h = harness(o);
    let out = dial(&mut h, "00312345678", "limit-1");
    assert_eq!(invites_to(&out, CARRIER_A).len(), 1);
    let out = dial(&mut h, "00312345679", "limit-2");
    assert!(invites_to(&out, CARRIER_A).is_empty(), "carrier-a is full");
    assert_eq!(invites_to(&out, CARRIER_B).len(), 1);
    let st = h.engine.trunk_statuses(h.now);
    assert_eq!((st[0].calls, st[0].usable), (1, false));
    assert_eq!(st[1].calls, 1);
}

/// What recording learns of an answered call through a trunk: route and trunk (outbound), the
/// trunk and the extension a DID reached (inbound).
#[test]
fn answered_trunk_calls_name_route_trunk_and_extension_for_recording() {
    use engine::media::MediaCommand;
    let answered = |h: &Harness| {
        h.media_log
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Answered { info, .. } => Some(info.parties.clone()),
                _ => None,
            })
            .next_back()
            .expect("MediaCommand::Answered")
    };
    // Recording hears of calls a policy may record: here the trunk's (both directions).
    let mut snap: Snapshot = snapshot();
    snap.outside = outside();
    snap.codes.recording.policies.insert(
        (
            1,
            engine::recording::RecObject::Trunk,
            "carrier-a".to_string(),
        ),
        engine::recording::RecPolicy::OnDemand,
    );
    let mut h = harness_on(snap);
    let out = dial(&mut h, "00312345678", "rec-out");
    let inv = invites_to(&out, CARRIER_A);
    h.reply(&inv[0], 200, "far", CARRIER_A, SEG1);
    let p = answered(&h);
    assert_eq!(p.route.as_deref(), Some("national"));
    assert_eq!(p.trunk.as_deref(), Some("carrier-a"));
    assert_eq!(
        p.extensions,
        vec!["1001".to_string()],
        "not the number dialled"
    );

    let body = sdp("203.0.113.10", 30000, "sendrecv").replace('\n', "\r\n");
    let invite = format!(
        "INVITE sip:0312345602@192.0.2.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-rec-in\r\nMax-Forwards: 69\r\nFrom: \"Outside\" <sip:0901234567@carrier.test>;tag=o-rec-in\r\nTo: <sip:0312345602@carrier.test>\r\nCall-ID: rec-in\r\nCSeq: 1 INVITE\r\nContact: <sip:0901234567@203.0.113.10:5060>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.recv_raw(&invite, CARRIER_A, SEG1);
    let ring = invites_to(&h.take(), DESK);
    h.reply(&ring[0], 200, "desk", DESK, SEG1);
    let p = answered(&h);
    assert_eq!(p.call_id, "rec-in");
    assert_eq!(
        (p.route.as_deref(), p.trunk.as_deref()),
        (None, Some("carrier-a"))
    );
    assert!(p.extensions.contains(&"1002".to_string()), "{p:?}");
    assert!(!p.extensions.contains(&"0901234567".to_string()), "{p:?}");
}
