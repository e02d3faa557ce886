//! BLF against a real `denwa serve` with sipp (package sip-tester) as the phones: 1003's BLF
//! key subscribes to 1002's dialog state (`tests/sipp/uac_subscribe_dialog.xml`, digest
//! auth); 1001 calls 1002 (sipp UAC/UAS); the key's NOTIFYs show the call early (ringing,
//! with 1002's dialog ids), confirmed, then terminated, after which it unsubscribes. A
//! subscription to an unknown resource is refused with 404 and logged (other tenants' resources:
//! `crates/engine/tests/blf.rs`).

mod common;

use std::time::Duration;

use common::{Denwa, sipp_register, sipp_user};
use testkit::sipp::Sipp;

/// The bodies of the NOTIFYs in a sipp message trace, in order.
fn notify_bodies(trace: &str) -> Vec<String> {
    trace
        .split("NOTIFY sip:")
        .skip(1)
        .filter_map(|m| {
            m.split("\r\n\r\n")
                .nth(1)
                .or_else(|| m.split("\n\n").nth(1))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn a_blf_key_sees_a_call_ring_answer_and_end() {
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    d.add_extension("1003", "secret-baad");
    let callee_port = sipp_register(&d, "1002", "secret-baac");

    // The BLF key.
    let mut key = Sipp::uac("uac_subscribe_dialog.xml", &d.sip_addr());
    key.inject_text = Some(sipp_user("1003", "secret-baad"));
    key.service = Some("1002".into());
    key.timeout = Duration::from_secs(60);
    let key = key.spawn().expect("the key subscribes");
    d.wait_until("the first NOTIFY", Duration::from_secs(15), || {
        !notify_bodies(&key.messages_so_far()).is_empty()
    });

    let mut uas = Sipp::uas("uas_answer.xml");
    uas.local_port = Some(callee_port);
    uas.service = Some("1002".into());
    uas.timeout = Duration::from_secs(60);
    let mut uas = uas.spawn().expect("uas starts");
    uas.wait_listening(Duration::from_secs(10))
        .expect("uas listens");
    let mut call = Sipp::uac("uac_call.xml", &d.sip_addr());
    call.inject_text = Some(sipp_user("1001", "secret-baab"));
    call.service = Some("1002".into());
    call.timeout = Duration::from_secs(60);
    call.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the call fails: {e}")
    });
    uas.finish().expect("the callee's side completes");
    let out = key.finish().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the BLF key did not see the call end: {e}")
    });
    assert_eq!(out.successful, 1);
    let trace = std::fs::read_to_string(out.logs.path().join("messages.log")).expect("trace");
    let bodies = notify_bodies(&trace);
    let at = |what: &str| bodies.iter().position(|b| b.contains(what));
    let early = at("<state>early</state>").expect("an early NOTIFY");
    let confirmed = at("<state>confirmed</state>").expect("a confirmed NOTIFY");
    let ended = at("<state>terminated</state>").expect("a terminated NOTIFY");
    assert!(early < confirmed && confirmed < ended, "{bodies:#?}");
    assert!(bodies[early].contains("direction=\"recipient\""));
    assert!(
        bodies[early].contains("local-tag=\""),
        "1002's tag for pickup"
    );
    assert!(bodies[0].contains("<dialog-info"), "{}", bodies[0]);
}

#[test]
fn an_unknown_resource_is_refused_and_logged() {
    let d = Denwa::start();
    d.add_extension("1003", "secret-baad");
    let mut key = Sipp::uac("uac_subscribe_dialog.xml", &d.sip_addr());
    key.inject_text = Some(sipp_user("1003", "secret-baad"));
    key.service = Some("4711".into());
    key.timeout = Duration::from_secs(20);
    let out = key.run_unchecked().expect("sipp runs");
    assert_eq!(out.successful, 0);
    let trace = std::fs::read_to_string(out.logs.path().join("messages.log")).unwrap_or_default();
    assert!(trace.contains("SIP/2.0 404 Unknown resource"), "{trace}");
    d.wait_until("the refusal is logged", Duration::from_secs(10), || {
        d.logs().contains("unknown resource")
    });
}
