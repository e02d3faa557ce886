//! Trunks register only on the active node of a pair, on a fake clock: a standby sends no
//! REGISTER or OPTIONS and writes no trunk state; taking over registers at once; releasing
//! removes the binding (`Expires: 0`) and stops, late answers included.

mod common;

use std::time::Duration;

use common::*;
use engine::config::Snapshot;
use sip::{HeaderName, Message, Request, Response};

const CARRIER: &str = "203.0.113.10:5060";

/// A harness whose tenant has one registration trunk (30 s OPTIONS checks) at `CARRIER`.
fn pair_node() -> Harness {
    let mut o = national_outside("0|0ZXXXXXXXX", ("carrier", Some((CARRIER, "carrier-pw"))));
    if let Some(t) = o.trunks.get_mut(&1) {
        t.spec.register = true;
        t.spec.ping_interval_s = 30;
        t.spec.expires_s = 120;
    }
    let mut snap: Snapshot = snapshot();
    snap.outside = o;
    Harness::with(snap)
}

/// REGISTERs and OPTIONS sent to the carrier so far.
fn to_carrier(h: &Harness, method: &str) -> Vec<Request> {
    h.requests(method)
        .into_iter()
        .filter(|s| s.to == addr(CARRIER))
        .map(|s| s.request().clone())
        .collect()
}

fn expires(r: &Request) -> Option<String> {
    r.headers
        .get(&HeaderName::Expires)
        .map(|v| v.as_str().to_string())
}

fn registration(h: &Harness) -> String {
    h.engine.trunk_statuses(h.now)[0].registration.clone()
}

/// Answers the only REGISTER sent since the last `take` with 200 (Expires 120).
fn grant(h: &mut Harness) {
    let regs = to_carrier(h, "REGISTER");
    assert_eq!(regs.len(), 1, "one REGISTER: {regs:?}");
    h.sent.clear();
    let ok = Response::for_request(&regs[0], 200, None).with_header(HeaderName::Expires, "120");
    h.recv_message(Message::Response(ok), CARRIER, SEG1);
}

#[test]
fn a_standby_registers_no_trunk_and_the_active_does() {
    let mut h = pair_node();
    // A pair's node starts as standby, before its first input.
    assert!(h.engine.trunks_active(), "active by default (standalone)");
    assert!(h.engine.set_trunks_active(false, h.now));
    assert!(!h.engine.set_trunks_active(false, h.now), "no change");
    // The first input builds the trunk clients and starts the housekeeping tick.
    h.advance(Duration::from_millis(300));
    h.advance(Duration::from_secs(600));
    assert!(to_carrier(&h, "REGISTER").is_empty(), "standby registered");
    assert!(to_carrier(&h, "OPTIONS").is_empty(), "standby pinged");
    assert!(h.trunk_status.is_empty(), "standby wrote trunk state");
    assert_eq!(registration(&h), "unregistered");

    // Takes the application address: registers at once, pings, stores its state.
    assert!(h.engine.set_trunks_active(true, h.now));
    h.drain();
    grant(&mut h);
    assert_eq!(registration(&h), "registered");
    h.advance(Duration::from_secs(35));
    assert!(!to_carrier(&h, "OPTIONS").is_empty(), "active pings");
    assert_eq!(h.trunk_status[&1]["registration"], "registered");
    // Refreshes before the binding runs out (60 s after the grant).
    h.sent.clear();
    h.advance(Duration::from_secs(30));
    // (Unanswered over UDP: the same request again, retransmitted.)
    let refresh = to_carrier(&h, "REGISTER");
    let refresh = refresh.last().expect("a refresh").clone();
    assert_ne!(expires(&refresh).as_deref(), Some("0"));

    // Releases it (the refresh still unanswered): the binding is removed, then silence.
    h.sent.clear();
    assert!(h.engine.set_trunks_active(false, h.now));
    h.drain();
    let gone = to_carrier(&h, "REGISTER");
    assert_eq!(gone.len(), 1, "one removal: {gone:?}");
    assert_eq!(expires(&gone[0]).as_deref(), Some("0"));
    // The late answer to the refresh changes nothing.
    let late = Response::for_request(&refresh, 200, None).with_header(HeaderName::Expires, "120");
    h.recv_message(Message::Response(late), CARRIER, SEG1);
    assert_eq!(registration(&h), "unregistered");
    let removed = Response::for_request(&gone[0], 200, None);
    h.recv_message(Message::Response(removed), CARRIER, SEG1);
    let stored = h.trunk_status[&1].clone();
    // An OPTIONS already in flight is retransmitted until its transaction times out (32 s);
    // no new request starts.
    h.advance(Duration::from_secs(40));
    h.sent.clear();
    h.advance(Duration::from_secs(600));
    assert!(
        to_carrier(&h, "REGISTER").is_empty(),
        "released node registered"
    );
    assert!(to_carrier(&h, "OPTIONS").is_empty(), "released node pinged");
    assert_eq!(
        h.trunk_status[&1], stored,
        "released node wrote trunk state"
    );

    // Takes over again: registers at once.
    assert!(h.engine.set_trunks_active(true, h.now));
    h.drain();
    grant(&mut h);
    assert_eq!(registration(&h), "registered");
}

#[test]
fn a_trunk_added_on_the_standby_waits_for_the_takeover() {
    // The configuration arrives after the node went standby (the first input builds it).
    let mut h = pair_node();
    h.engine.set_trunks_active(false, h.now);
    h.advance(Duration::from_millis(300));
    let o = h.engine.trunk_statuses(h.now);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].registration, "unregistered");
    h.advance(Duration::from_secs(120));
    assert!(to_carrier(&h, "REGISTER").is_empty());
    assert!(to_carrier(&h, "OPTIONS").is_empty());
    assert!(h.trunk_status.is_empty(), "standby wrote trunk state");
    h.engine.set_trunks_active(true, h.now);
    h.drain();
    grant(&mut h);
    assert_eq!(registration(&h), "registered");
}
