//! Ring groups, forwarding and DND against a real `denwa serve`, configured with the CLI:
//! sipp phones that ring without answering, answer, or answer busy show who rings and who
//! answers in each strategy; baresip phones carry audio through a group call and leave a
//! voicemail message after forward-on-busy.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Denwa, sipp_user};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::sipp::{RunningSipp, Sipp};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// An extension's password (without its number: the store refuses that).
fn pw(n: &str) -> String {
    let letters: String = n
        .bytes()
        .map(|b| char::from(b'a' + (b - b'0') % 10))
        .collect();
    format!("secret-{letters}-pw")
}

fn pbx(exts: &[&str]) -> Denwa {
    let d = Denwa::start();
    for n in exts {
        d.add_extension(n, &pw(n));
    }
    d
}

/// Runs a configuration command and waits until the server loaded the change.
fn configure(d: &Denwa, args: &[&str]) {
    let before = d.logs().matches("voice applications loaded").count();
    d.cli_ok(args);
    d.wait_until("the change loaded", Duration::from_secs(10), || {
        d.logs().matches("voice applications loaded").count() > before
    });
}

/// Registers `user` from a sipp on a fresh port (binding kept) and returns the port.
fn register(d: &Denwa, user: &str) -> u16 {
    let port = testkit::ports::free_port().expect("port");
    let mut s = Sipp::uac("register.xml", &d.sip_addr());
    s.local_port = Some(port);
    s.inject_text = Some(sipp_user(user, &pw(user)));
    s.run().expect("phone registers");
    port
}

/// Registers `user` and starts a UAS on its port running `scenario`.
fn sipp_phone(d: &Denwa, user: &str, scenario: &str, calls: u32) -> RunningSipp {
    let port = register(d, user);
    let mut s = Sipp::uas(scenario);
    s.local_port = Some(port);
    s.service = Some(user.into());
    s.calls = calls;
    s.timeout = Duration::from_secs(60);
    let mut r = s.spawn().expect("uas starts");
    r.wait_listening(Duration::from_secs(10))
        .expect("uas listens");
    r
}

/// 1001 calls `number` with sipp; true when the call was answered.
fn call(d: &Denwa, number: &str) -> bool {
    let mut s = Sipp::uac("uac_call.xml", &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", &pw("1001")));
    s.service = Some(number.into());
    s.timeout = Duration::from_secs(60);
    s.run_unchecked().expect("sipp runs").successful == 1
}

fn cdrs(d: &Denwa, n: usize) -> Vec<serde_json::Value> {
    let mut c = Vec::new();
    d.wait_until("the call records", Duration::from_secs(10), || {
        c = d.cdrs();
        c.len() >= n
    });
    // Newest first in the listing.
    c.reverse();
    c
}

#[test]
fn sequential_group_hunts_past_a_member_who_does_not_answer() {
    let d = pbx(&["1001", "1002", "1003"]);
    let ringing = sipp_phone(&d, "1002", "uas_ring_noanswer.xml", 1);
    let answering = sipp_phone(&d, "1003", "uas_answer.xml", 1);
    configure(
        &d,
        &[
            "group",
            "add",
            "sales",
            "--number",
            "600",
            "--strategy",
            "sequential",
            "--member",
            "1002:2",
            "--member",
            "1003",
            "--cid-prefix",
            "Sales",
        ],
    );
    assert!(call(&d, "600"), "the second member answered");
    ringing
        .finish()
        .expect("the first member rang and was cancelled");
    answering.finish().expect("the second member answered");
    let c = &cdrs(&d, 1)[0];
    assert_eq!(d.cdrs().len(), 1, "one record for the whole hunt");
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
    assert_eq!(c["callee"], "1003", "the record names who answered: {c}");
    assert_eq!(c["dialled"], "600", "{c}");
}

#[test]
fn simultaneous_group_rings_everyone_and_the_first_answer_wins() {
    let d = pbx(&["1001", "1002", "1003"]);
    let ringing = sipp_phone(&d, "1002", "uas_ring_noanswer.xml", 1);
    let answering = sipp_phone(&d, "1003", "uas_answer.xml", 1);
    configure(
        &d,
        &[
            "group", "add", "sales", "--number", "600", "--member", "1002", "--member", "1003",
        ],
    );
    assert!(call(&d, "600"));
    answering.finish().expect("answered");
    ringing
        .finish()
        .expect("rang at the same time, then cancelled");
    assert_eq!(cdrs(&d, 1)[0]["callee"], "1003");
}

#[test]
fn round_robin_remembers_the_member_tried_last() {
    let d = pbx(&["1001", "1002", "1003"]);
    let a = sipp_phone(&d, "1002", "uas_answer.xml", 1);
    let b = sipp_phone(&d, "1003", "uas_answer.xml", 1);
    configure(
        &d,
        &[
            "group",
            "add",
            "sales",
            "--number",
            "600",
            "--strategy",
            "round_robin",
            "--member",
            "1002",
            "--member",
            "1003",
        ],
    );
    assert!(call(&d, "600"));
    a.finish().expect("1002 took the first call");
    assert!(call(&d, "600"));
    b.finish().expect("1003 took the second call");
    let c = cdrs(&d, 2);
    assert_eq!(
        (c[0]["callee"].as_str(), c[1]["callee"].as_str()),
        (Some("1002"), Some("1003"))
    );
    let show = d.cli_ok(&["group", "show", "sales", "--json"]);
    assert!(show.contains("\"last_member\": \"1003\""), "{show}");
}

#[test]
fn first_available_skips_a_member_on_dnd_and_dnd_answers_busy() {
    let d = pbx(&["1001", "1002", "1003"]);
    // 1002 is registered but on DND: it must not ring (its sipp would never answer).
    register(&d, "1002");
    let answering = sipp_phone(&d, "1003", "uas_answer.xml", 1);
    configure(&d, &["dnd", "1002", "on"]);
    configure(
        &d,
        &[
            "group",
            "add",
            "sales",
            "--number",
            "600",
            "--strategy",
            "first_available",
            "--member",
            "1002",
            "--member",
            "1003",
        ],
    );
    assert!(
        call(&d, "600"),
        "1003, the first available member, answered"
    );
    answering.finish().expect("answered");
    // Calling 1002 directly while on DND: 486.
    assert!(!call(&d, "1002"));
    let c = cdrs(&d, 2);
    assert_eq!(c[1]["disposition"], "BUSY", "{}", c[1]);
    assert!(d.logs().contains("(\"1002\", Dnd)"), "the skip is logged");
}

#[test]
fn forward_always_sends_the_call_to_another_extension() {
    let d = pbx(&["1001", "1002", "1003"]);
    let answering = sipp_phone(&d, "1003", "uas_answer.xml", 1);
    configure(&d, &["forward", "set", "1002", "always", "1003"]);
    assert!(call(&d, "1002"), "forwarded and answered");
    answering.finish().expect("1003 answered 1002's call");
    let c = &cdrs(&d, 1)[0];
    assert_eq!(c["callee"], "1003", "{c}");
    assert_eq!(c["dialled"], "1002", "{c}");
}

fn tone_wav(dir: &Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).expect("tone file");
    path
}

fn baresip(d: &Denwa, user: &str, wav: &Path) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), &pw(user), 600)
        .with_audio(wav);
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

#[test]
fn a_group_call_carries_audio_both_ways() {
    let d = pbx(&["1001", "1002"]);
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tone_wav(audio.path(), "a.wav", &CALLER_TONES);
    let b_wav = tone_wav(audio.path(), "b.wav", &CALLEE_TONES);
    configure(
        &d,
        &[
            "group",
            "add",
            "sales",
            "--number",
            "600",
            "--member",
            "1002",
            "--cid-prefix",
            "Sales",
        ],
    );
    let mut a = baresip(&d, "1001", &a_wav);
    let mut b = baresip(&d, "1002", &b_wav);
    a.dial(&format!("sip:600@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("caller: {e}")
        });
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("member established");
    let seq = ToneLayout::default().sequence_ms(CALLER_TONES.len());
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    tone::check_recording(
        &a.last_recording().expect("rec"),
        &CALLEE_TONES,
        &CALLER_TONES,
    )
    .unwrap_or_else(|e| panic!("the caller did not hear the member: {e}"));
    tone::check_recording(
        &b.last_recording().expect("rec"),
        &CALLER_TONES,
        &CALLEE_TONES,
    )
    .unwrap_or_else(|e| panic!("the member did not hear the caller: {e}"));
    let c = &cdrs(&d, 1)[0];
    assert_eq!(c["callee"], "1002", "{c}");
    let incoming: Vec<String> = b.events().iter().map(|e| e.raw.to_string()).collect();
    assert!(
        incoming.iter().any(|e| e.contains("Sales: ")),
        "the member saw the caller-ID prefix: {incoming:?}"
    );
}

#[test]
fn forward_on_busy_to_voicemail_leaves_a_message() {
    let d = pbx(&["1001", "1002"]);
    let busy = sipp_phone(&d, "1002", "uas_busy.xml", 1);
    configure(&d, &["forward", "set", "1002", "busy", "vm:1002"]);
    let audio = tempfile::tempdir().expect("tmp");
    // The mailbox greeting (error tones: no default prompts installed) lasts about 8 s.
    let path = audio.path().join("a.wav");
    let layout = ToneLayout {
        lead_ms: 12_000,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, &CALLER_TONES, &layout, 30_000).expect("tone file");
    let mut a = baresip(&d, "1001", &path);
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("voicemail did not answer: {e}")
        });
    busy.finish().expect("1002 answered busy");
    a.wait_event("CALL_CLOSED", Duration::from_secs(45))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    let list = d.cli_ok(&["voicemail", "list", "1002", "--json"]);
    let msgs: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(msgs.as_array().map(Vec::len), Some(1), "{list}");
    let c = &cdrs(&d, 1)[0];
    assert_eq!(d.cdrs().len(), 1, "one record");
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
}

#[test]
fn cli_refusals_name_the_flag_and_show_prints_the_settings() {
    let d = pbx(&["1001", "1002"]);
    let err = |args: &[&str]| {
        let o = d.cli(args);
        assert!(!o.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(&["group", "add", "sales", "--member", "10a1"]);
    assert!(e.contains("--member"), "{e}");
    let e = err(&[
        "group",
        "add",
        "sales",
        "--member",
        "1001",
        "--strategy",
        "random",
    ]);
    assert!(e.contains("--strategy") && e.contains("round_robin"), "{e}");
    let e = err(&[
        "group",
        "add",
        "sales",
        "--member",
        "1001",
        "--no-answer",
        "vm:4040",
    ]);
    assert!(
        e.contains("--no-answer") && e.contains("does not exist"),
        "{e}"
    );
    let e = err(&["forward", "set", "1001", "sometimes", "1002"]);
    assert!(e.contains("unknown forward kind"), "{e}");
    let e = err(&["forward", "set", "1001", "always", "1001"]);
    assert!(e.contains("itself"), "{e}");
    let e = err(&["dnd", "1001", "maybe"]);
    assert!(e.contains("on, off or toggle"), "{e}");
    let out = d.cli_ok(&[
        "group",
        "add",
        "sales",
        "--number",
        "600",
        "--member",
        "1001",
        "--member",
        "1002:20",
        "--no-answer",
        "vm:1001",
        "--cid-prefix",
        "Sales",
    ]);
    assert!(out.contains("member 1002 (20 s)"), "{out}");
    let list = d.cli_ok(&["group", "list"]);
    assert!(list.contains("sales") && list.contains("600"), "{list}");
    d.cli_ok(&[
        "forward",
        "set",
        "1002",
        "no_answer",
        "vm:1002",
        "--ring",
        "12",
    ]);
    d.cli_ok(&["forward", "follow-me", "1002", "0312345678", "--together"]);
    assert!(d.cli_ok(&["dnd", "1002", "toggle"]).contains("DND on"));
    let show = d.cli_ok(&["forward", "show", "1002"]);
    assert!(show.contains("vm:1002 (after 12 s)"), "{show}");
    assert!(show.contains("0312345678 (together)"), "{show}");
    assert!(show.contains("dnd         on"), "{show}");
    // A member leaves its groups when removed; the last member of a group is refused.
    d.cli_ok(&["extension", "remove", "1002"]);
    let show = d.cli_ok(&["group", "show", "sales"]);
    assert!(
        show.contains("member 1001") && !show.contains("member 1002"),
        "{show}"
    );
    let e = err(&["extension", "remove", "1001"]);
    assert!(
        e.contains("extension 1001 is the last member of ring group sales"),
        "{e}"
    );
    d.cli_ok(&["group", "remove", "sales"]);
    assert!(d.cli_ok(&["group", "list", "--json"]).trim() == "[]");
}

#[test]
fn forward_on_no_answer_and_when_unreachable() {
    let d = pbx(&["1001", "1002", "1003", "1004"]);
    let ringing = sipp_phone(&d, "1002", "uas_ring_noanswer.xml", 1);
    let answering = sipp_phone(&d, "1003", "uas_answer.xml", 2);
    configure(
        &d,
        &["forward", "set", "1002", "no_answer", "1003", "--ring", "2"],
    );
    assert!(call(&d, "1002"), "1003 answered after 1002 rang 2 s");
    ringing.finish().expect("1002 rang and was cancelled");
    // 1004 has no phone registered: its unreachable forward takes the call.
    configure(&d, &["forward", "set", "1004", "unreachable", "1003"]);
    assert!(call(&d, "1004"), "forwarded while unregistered");
    answering.finish().expect("1003 answered both");
    let c = cdrs(&d, 2);
    assert_eq!(
        (c[0]["dialled"].as_str(), c[0]["callee"].as_str()),
        (Some("1002"), Some("1003"))
    );
    assert_eq!(
        (c[1]["dialled"].as_str(), c[1]["callee"].as_str()),
        (Some("1004"), Some("1003"))
    );
}
