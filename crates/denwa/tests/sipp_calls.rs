//! Protocol tests against a real `denwa serve` with sipp (package sip-tester) as the phones:
//! registration with digest auth, calls, cancel, busy, unknown numbers, hold/resume,
//! retransmissions, and bad credentials.

mod common;

use std::time::Duration;

use common::{Denwa, sipp_user};
use testkit::sipp::{RunningSipp, Sipp};

use common::sipp_register as register_callee;

fn uas(scenario: &str, port: u16, user: &str) -> RunningSipp {
    let mut s = Sipp::uas(scenario);
    s.local_port = Some(port);
    s.service = Some(user.into());
    s.timeout = Duration::from_secs(60);
    let mut r = s.spawn().expect("uas starts");
    r.wait_listening(Duration::from_secs(10))
        .expect("uas listens");
    r
}

fn caller(d: &Denwa, scenario: &str, callee: &str) -> Sipp {
    let mut s = Sipp::uac(scenario, &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "secret-baab"));
    s.service = Some(callee.into());
    s.timeout = Duration::from_secs(60);
    s
}

fn pbx_with_two() -> Denwa {
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    d
}

fn last_cdr(d: &Denwa) -> serde_json::Value {
    let mut cdrs = Vec::new();
    d.wait_until("a call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    cdrs.remove(0)
}

#[test]
fn register_with_digest_auth_and_unregister() {
    let d = pbx_with_two();
    let mut s = Sipp::uac("register_auth.xml", &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "secret-baab"));
    let out = s.run().expect("register_auth passes");
    assert_eq!(out.successful, 1);
    // register_auth ends with Expires: 0, so nothing is left.
    assert!(d.registrations().is_empty());
}

#[test]
fn registration_is_listed_with_source_and_user_agent() {
    let d = pbx_with_two();
    let port = register_callee(&d, "1002", "secret-baac");
    let regs = d.registrations();
    assert_eq!(regs.len(), 1, "{regs:?}");
    let r = &regs[0];
    assert_eq!(r["received_addr"], format!("127.0.0.1:{port}"));
    assert!(r["aor"].as_str().unwrap().starts_with("sip:1002@"));
    assert_eq!(r["transport"], "udp");
    assert!(!r["user_agent"].as_str().unwrap().is_empty());
}

#[test]
fn wrong_password_is_refused_and_logged() {
    let d = pbx_with_two();
    let mut s = Sipp::uac("register_wrong_password.xml", &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "not-the-password"));
    s.run()
        .expect("wrong password gets 401/403 as the scenario expects");
    assert!(d.registrations().is_empty());
    d.wait_until(
        "auth failure log line with peer",
        Duration::from_secs(5),
        || d.logs().contains("authentication failed") && d.logs().contains("127.0.0.1"),
    );
}

#[test]
fn call_answered_then_bye_writes_answered_cdr() {
    let d = pbx_with_two();
    let port = register_callee(&d, "1002", "secret-baac");
    let callee = uas("uas_answer.xml", port, "1002");
    let out = caller(&d, "uac_call.xml", "1002")
        .run()
        .expect("call succeeds");
    assert_eq!(out.successful, 1);
    callee.finish().expect("callee saw the whole call");
    let c = last_cdr(&d);
    assert_eq!(c["disposition"], "ANSWERED");
    assert_eq!(c["caller"], "1001");
    assert_eq!(c["callee"], "1002");
    assert_eq!(c["hangup_by"], "caller");
    assert_eq!(c["codec"], "PCMU");
    assert!(c["answer_time"].is_string());
}

#[test]
fn cancel_before_answer() {
    let d = pbx_with_two();
    let port = register_callee(&d, "1002", "secret-baac");
    let callee = uas("uas_ring_noanswer.xml", port, "1002");
    caller(&d, "uac_cancel.xml", "1002")
        .run()
        .expect("cancel scenario passes");
    let c = last_cdr(&d);
    assert_eq!(c["disposition"], "CANCELED");
    assert_eq!(c["hangup_by"], "caller");
    drop(callee);
}

#[test]
fn busy_callee_gives_486_and_busy_cdr() {
    let d = pbx_with_two();
    let port = register_callee(&d, "1002", "secret-baac");
    let callee = uas("uas_busy.xml", port, "1002");
    let mut s = caller(&d, "uac_call.xml", "1002");
    s.calls = 1;
    let out = s.run_unchecked().expect("sipp runs");
    assert_eq!(out.successful, 0, "a busy call must not succeed");
    assert!(
        out.message_count("486", "_Recv") >= 1 || out.error_log.contains("486"),
        "{out:?}"
    );
    callee.finish().expect("callee answered busy");
    let c = last_cdr(&d);
    assert_eq!(c["disposition"], "BUSY");
}

#[test]
fn unknown_number_gets_404() {
    let d = pbx_with_two();
    caller(&d, "uac_unknown_number.xml", "9999")
        .run()
        .expect("404 as expected");
    let c = last_cdr(&d);
    assert_eq!(c["disposition"], "FAILED");
    assert_eq!(c["callee"], "9999");
}

#[test]
fn unregistered_extension_gets_480() {
    let d = pbx_with_two();
    let out = caller(&d, "uac_call.xml", "1002")
        .run_unchecked()
        .expect("sipp runs");
    assert_eq!(out.successful, 0);
    let c = last_cdr(&d);
    assert_eq!(c["disposition"], "FAILED");
    assert!(c["hangup_cause"].as_str().unwrap().starts_with("480"));
}

#[test]
fn hold_and_resume_reinvites_pass_through() {
    let d = pbx_with_two();
    let port = register_callee(&d, "1002", "secret-baac");
    let callee = uas("uas_answer.xml", port, "1002");
    caller(&d, "uac_reinvite_hold.xml", "1002")
        .run()
        .expect("hold/resume call succeeds");
    callee.finish().expect("callee saw both re-INVITEs");
    assert_eq!(last_cdr(&d)["disposition"], "ANSWERED");
}

#[test]
fn lost_ack_makes_the_200_retransmit() {
    let d = pbx_with_two();
    let port = register_callee(&d, "1002", "secret-baac");
    let callee = uas("uas_answer.xml", port, "1002");
    let out = caller(&d, "uac_no_ack.xml", "1002")
        .run()
        .expect("no-ACK scenario passes");
    assert!(
        out.message_count("200", "_Retrans") >= 1 || out.successful == 1,
        "{:?}",
        out.counts
    );
    drop(callee);
}
