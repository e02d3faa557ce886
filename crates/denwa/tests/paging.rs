//! Paging and intercom with real phones: a page group auto-answered by two baresip phones and
//! a sipp phone that checks the auto-answer headers; the pager's tones reach both baresip
//! phones, nothing reaches the pager; the pager hanging up ends every leg. Intercom (`*80` +
//! extension) is answered by itself and carries audio both ways.

mod common;

use std::time::Duration;

use common::{Denwa, registered_phone, sipp_user, tone_wav};
use testkit::sipp::Sipp;
use testkit::tone;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The pager's tones, and each member's (sent by the members, dropped by the page).
const PAGER: [u32; 2] = [500, 700];
const MEMBERS: [[u32; 2]; 2] = [[1100, 1300], [1600, 2200]];

fn wait_apps_loaded(d: &Denwa) {
    d.wait_until("page group loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
}

#[test]
fn a_page_reaches_every_member_one_way_and_ends_with_the_pager() {
    let d = Denwa::start();
    let users = [
        ("1001", "secret-page-a1"),
        ("1002", "secret-page-b2"),
        ("1003", "secret-page-c3"),
        ("1004", "secret-page-d4"),
    ];
    for (u, pw) in users {
        d.add_extension(u, pw);
    }
    d.cli_ok(&[
        "page", "add", "all", "--number", "650", "--member", "1002", "--member", "1003",
        "--member", "1004",
    ]);
    wait_apps_loaded(&d);
    let listed = d.cli_ok(&["page", "list"]);
    assert!(listed.contains("page:all  number 650"), "{listed}");
    // The sipp member registers, then waits for the page.
    let port = testkit::ports::free_port().expect("port");
    let mut reg = Sipp::uac("register.xml", &d.sip_addr());
    reg.local_port = Some(port);
    reg.inject_text = Some(sipp_user("1004", users[3].1));
    reg.run().expect("1004 registers");
    let mut uas = Sipp::uas("uas_autoanswer.xml");
    uas.local_port = Some(port);
    uas.service = Some("1004".into());
    uas.timeout = Duration::from_secs(60);
    let mut uas = uas.spawn().expect("sipp member");
    uas.wait_listening(Duration::from_secs(10))
        .expect("sipp listening");
    let audio = tempfile::tempdir().expect("tmp");
    let mut members = Vec::new();
    for (i, (u, pw)) in users[1..3].iter().enumerate() {
        let w = tone_wav(audio.path(), &format!("{u}.wav"), &MEMBERS[i], 1000, 12_000);
        members.push(registered_phone(&d, u, pw, &w));
    }
    // The pager speaks after everyone has answered.
    let w = tone_wav(audio.path(), "pager.wav", &PAGER, 3500, 12_000);
    let mut pager = registered_phone(&d, users[0].0, users[0].1, &w);
    pager
        .dial(&format!("sip:650@{}", d.sip_addr()))
        .expect("dial");
    pager
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("pager not answered: {e}")
        });
    for m in members.iter_mut() {
        m.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("{} did not answer the page by itself: {e}", m.name())
            });
    }
    d.wait_until("three phones answered", Duration::from_secs(10), || {
        d.logs().matches("page member answered").count() >= 3
    });
    std::thread::sleep(Duration::from_millis(6000));
    pager.hangup().expect("hang up");
    pager
        .wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("pager closed");
    for m in members.iter_mut() {
        m.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: the page did not end: {e}", m.name()));
    }
    // Each member hears the pager, never the other member; the pager hears nobody.
    let all_members: Vec<u32> = MEMBERS.iter().flatten().copied().collect();
    for (i, m) in members.iter().enumerate() {
        let rec = m.last_recording().expect("recording");
        tone::check_recording(&rec, &PAGER, &MEMBERS[1 - i]).unwrap_or_else(|e| {
            d.print_logs();
            panic!("{} did not hear exactly the pager: {e}", m.name())
        });
    }
    let rec = pager.last_recording().expect("pager recording");
    tone::check_recording(&rec, &[], &all_members)
        .unwrap_or_else(|e| panic!("the pager heard a member: {e}"));
    uas.finish().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the sipp member saw no auto-answer headers, or no BYE: {e}")
    });
    // One record: the pager to page:all.
    let mut cdrs = Vec::new();
    d.wait_until("the page's record", Duration::from_secs(15), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["caller"], "1001");
    assert_eq!(cdrs[0]["callee"], "page:all");
}

#[test]
fn intercom_is_answered_by_itself_and_talks_both_ways() {
    let d = Denwa::start();
    d.add_extension("1001", "secret-icom-a1");
    d.add_extension("1002", "secret-icom-b2");
    let audio = tempfile::tempdir().expect("tmp");
    let a_tones = [500, 700];
    let b_tones = [1100, 1300];
    let wa = tone_wav(audio.path(), "a.wav", &a_tones, 1500, 8000);
    let wb = tone_wav(audio.path(), "b.wav", &b_tones, 2500, 8000);
    let mut a = registered_phone(&d, "1001", "secret-icom-a1", &wa);
    let mut b = registered_phone(&d, "1002", "secret-icom-b2", &wb);
    a.dial(&format!("sip:*801002@{}", d.sip_addr()))
        .expect("dial");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("{}: intercom not established: {e}", p.name())
            });
    }
    assert!(d.logs().contains("intercom"), "the intercom is logged");
    std::thread::sleep(Duration::from_millis(4500));
    testkit::baresip::hang_up_and_check_tones(&mut a, &mut b, &a_tones, &b_tones, EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{e}")
        });
}
