//! A tenant's own `blf.show_caller`, set with the CLI while `denwa serve` runs: a BLF key
//! (sipp, `tests/sipp/uac_subscribe_dialog.xml`) watching 1002 sees 1001's call ring, answer
//! and end without the other party (`<remote>`) in its NOTIFYs, although the node's setting
//! shows it. A key a tenant may not override is refused by the CLI.

mod common;

use std::time::Duration;

use common::{Denwa, sipp_register, sipp_user};
use testkit::sipp::Sipp;

#[test]
fn a_tenant_hides_the_caller_on_its_blf_keys() {
    let mut d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    d.add_extension("1003", "secret-baad");
    let refused = d.cli(&[
        "setting",
        "set",
        "calls.no_answer_timeout_s",
        "30",
        "--tenant",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a setting a tenant may override"),
        "{refused:?}"
    );
    let out = d.cli_ok(&["setting", "set", "blf.show_caller", "hide", "--tenant"]);
    assert!(out.contains("for tenant"), "{out}");
    let listed = d.cli_ok(&["setting", "list", "--json"]);
    assert!(
        !listed.contains("\"hide\""),
        "the node's value is untouched: {listed}"
    );
    // Restarted so the setting is certainly in force (a running server reloads it too, on
    // its change poll, through the same loader).
    d.terminate();
    d.spawn();
    let callee_port = sipp_register(&d, "1002", "secret-baac");
    let mut key = Sipp::uac("uac_subscribe_dialog.xml", &d.sip_addr());
    key.inject_text = Some(sipp_user("1003", "secret-baad"));
    key.service = Some("1002".into());
    key.timeout = Duration::from_secs(60);
    let key = key.spawn().expect("the key subscribes");
    d.wait_until("the first NOTIFY", Duration::from_secs(15), || {
        key.messages_so_far().contains("NOTIFY sip:")
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
    let trace = std::fs::read_to_string(out.logs.path().join("messages.log")).expect("trace");
    assert!(trace.contains("<state>confirmed</state>"), "{trace}");
    assert!(!trace.contains("<remote>"), "the caller is hidden: {trace}");
}
