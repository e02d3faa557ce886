//! An administrator's transfer that names the party it moves (`Engine::transfer_moving`, the
//! panel's drag and drop): moving the callee rings the target with the callee and releases the
//! caller, whose class of service routes the target; moving the caller is the historical
//! behaviour.

mod common;

use common::*;
use engine::outside::CallClass;
use engine::xfer_party::Party;
use sip::Message;

const CALLER: &str = "192.0.2.21:5060"; // 1001
const DESK: &str = "192.0.2.22:5060"; // 1002
const THIRD: &str = "192.0.2.23:5060"; // 1003, the target

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
    h
}

/// 1001 calls 1002, which answers; returns the call's id.
fn call_up(h: &mut Harness, cid: &str) -> u64 {
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: cid,
    });
    let fork = invites_to(&out, DESK).pop().expect("the callee is rung");
    h.reply(&fork, 200, &format!("t-{cid}"), DESK, SEG1);
    h.sent.clear();
    let c = &h.engine.calls(h.now)[0];
    assert_eq!(c.parties, ["1001", "1002"]);
    c.id
}

fn byes_to(h: &Harness, at: &str) -> usize {
    h.requests("BYE")
        .iter()
        .filter(|s| s.to.to_string() == at)
        .count()
}

#[test]
fn moving_the_callee_releases_the_caller() {
    let mut h = setup_with(snapshot());
    let id = call_up(&mut h, "mv-callee");
    let now = h.now;
    h.engine
        .transfer_moving(id, "1003", Some(Party::Callee), now)
        .expect("transfer starts");
    h.drain();
    let inv = invites_to(&h.sent, THIRD)
        .pop()
        .expect("the target is rung");
    // The target sees the party that moves (the callee, 1002) as the caller.
    let from = inv.from().expect("From").to_string();
    assert!(from.contains("1002"), "{from}");
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_eq!(byes_to(&h, CALLER), 1, "the caller is released");
    assert_eq!(byes_to(&h, DESK), 0, "the callee stays, now with 1003");
    assert_eq!(h.engine.transfer_events(id)[0].by, "1001");
    assert_eq!(h.engine.transfer_events(id)[0].party, "1002");
    let mut parties = h.engine.calls(h.now)[0].parties.clone();
    parties.sort();
    assert_eq!(parties, ["1002", "1003"], "the call names its parties now");
}

#[test]
fn moving_the_caller_releases_the_callee() {
    let mut h = setup_with(snapshot());
    let id = call_up(&mut h, "mv-caller");
    let now = h.now;
    h.engine
        .transfer_moving(id, "1003", Some(Party::Caller), now)
        .expect("transfer starts");
    h.drain();
    let inv = invites_to(&h.sent, THIRD)
        .pop()
        .expect("the target is rung");
    assert!(inv.from().expect("From").to_string().contains("1001"));
    h.sent.clear();
    h.reply(&inv, 200, "third", THIRD, SEG1);
    assert_eq!(byes_to(&h, DESK), 1, "the callee is released");
    assert_eq!(byes_to(&h, CALLER), 0);
    assert_eq!(h.engine.transfer_events(id)[0].by, "1002");
}

#[test]
fn the_released_partys_class_of_service_routes_the_target() {
    let mut snap = snapshot();
    snap.outside = national_outside("0|0ZXXXXXXXX", ("carrier", Some(("192.0.2.50:5060", "pw"))));
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.cos = CallClass::Internal;
    }
    let mut h = setup_with(snap);
    let id = call_up(&mut h, "mv-cos");
    let now = h.now;
    // 1001 may not call out: moving the callee (1001 hands it on) is refused, the call kept.
    let e = h
        .engine
        .transfer_moving(id, "00312345678", Some(Party::Callee), now)
        .expect_err("refused");
    assert_eq!(e.status, 403, "{e}");
    h.drain();
    assert!(
        !h.sent
            .iter()
            .any(|s| matches!(&s.message, Message::Request(r) if r.method.as_str() == "INVITE")),
        "nothing is dialled"
    );
    assert_eq!(h.engine.calls(h.now).len(), 1, "the call is kept");
    // 1002 may: moving the caller rings the carrier.
    h.engine
        .transfer_moving(id, "00312345678", Some(Party::Caller), now)
        .expect("1002 may call national numbers");
}
