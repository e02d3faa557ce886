//! Nothing acknowledged is lost: registrations and call records survive `kill -9` and restart;
//! SIGTERM shuts down cleanly.

mod common;

use std::time::Duration;

use common::{Denwa, sipp_user};
use testkit::sipp::Sipp;

fn register(d: &Denwa, user: &str, password: &str, port: u16) {
    let mut s = Sipp::uac("register.xml", &d.sip_addr());
    s.local_port = Some(port);
    s.inject_text = Some(sipp_user(user, password));
    s.run().expect("registers");
}

#[test]
fn registrations_survive_kill9_and_calls_reach_them_after_restart() {
    let mut d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    let port = testkit::ports::free_port().expect("port");
    register(&d, "1002", "secret-baac", port);
    assert_eq!(d.registrations().len(), 1);

    d.kill9();
    d.spawn();
    let regs = d.registrations();
    assert_eq!(regs.len(), 1, "binding lost across kill -9: {regs:?}");
    assert_eq!(regs[0]["received_addr"], format!("127.0.0.1:{port}"));

    // The restarted server routes a call to the binding it loaded from the database.
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.local_port = Some(port);
    uas.service = Some("1002".into());
    let mut callee = uas.spawn().expect("uas");
    callee
        .wait_listening(Duration::from_secs(10))
        .expect("uas listening");
    let mut uac = Sipp::uac("uac_call.xml", &d.sip_addr());
    uac.inject_text = Some(sipp_user("1001", "secret-baab"));
    uac.service = Some("1002".into());
    uac.run().expect("call after restart");
    callee.finish().expect("callee answered");
}

#[test]
fn call_record_survives_kill9_right_after_hangup() {
    let mut d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    let port = testkit::ports::free_port().expect("port");
    register(&d, "1002", "secret-baac", port);
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.local_port = Some(port);
    uas.service = Some("1002".into());
    let mut callee = uas.spawn().expect("uas");
    callee
        .wait_listening(Duration::from_secs(10))
        .expect("uas listening");
    let mut uac = Sipp::uac("uac_call.xml", &d.sip_addr());
    uac.inject_text = Some(sipp_user("1001", "secret-baab"));
    uac.service = Some("1002".into());
    uac.run().expect("call");
    // The 200 OK to the BYE is sent only after the record is durable: kill at once.
    d.kill9();
    drop(callee);
    d.spawn();
    let cdrs = d.cdrs();
    assert_eq!(cdrs.len(), 1, "call record lost across kill -9");
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
}

#[test]
fn sigterm_stops_cleanly_and_extensions_persist() {
    let mut d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    assert_eq!(d.terminate(), Some(0), "denwa did not exit 0 on SIGTERM");
    d.spawn();
    let out = d.cli_ok(&["extension", "list", "--json"]);
    assert!(out.contains("\"1001\""), "{out}");
}

#[test]
fn node_settings_saved_in_the_database_apply_at_the_next_start() {
    let mut d = Denwa::start();
    let e = d.cli(&["setting", "set", "node.rtp_ports", "80-90"]);
    assert!(!e.status.success(), "a bad port range was accepted");
    d.cli_ok(&["setting", "set", "node.advertise", "203.0.113.9"]);
    d.cli_ok(&["setting", "set", "node.rtp_ports", "40000-40100"]);
    d.terminate();
    d.spawn();
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("node settings from the database applied"))
        .unwrap_or_else(|| panic!("saved node settings not applied:\n{logs}"));
    assert!(line.contains("advertise"), "{line}");
    // The harness passes --rtp-ports: a flag wins over the saved value.
    assert!(!line.contains("rtp_ports"), "{line}");
}
