//! More transfers against a real `denwa serve` with real phones (baresip): a blind transfer
//! (`/transfer`) to a ring group, the member who answers talking to the transferee (tones
//! checked both ways) and the call's history read through the API; a transfer into a
//! colleague's voicemail (`*99` + extension), the message holding the transferee's tones; a
//! call that came through an IVR transferred by the phone that answered it, with audio; the
//! administrator's transfer to a group that does not exist (refused, the call kept) and to a
//! group nobody can answer (its no-answer destination, a mailbox, takes the message).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Denwa;
use common::xfer::*;
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES};

fn pbx() -> Denwa {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    d.add_extension("1003", "carol-secret-d");
    d.add_extension("1004", "dave-secret-ee");
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

/// The events of the only call record, through the API, once there are `n`.
fn record_events(d: &Denwa, token: &str, n: usize) -> Vec<serde_json::Value> {
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    let cdr_id = cdrs[0]["id"].as_i64().expect("record id");
    let mut events = serde_json::Value::Null;
    d.wait_until("the call's events", Duration::from_secs(10), || {
        let (_, body) = api(d, token, "GET", &format!("/cdrs/{cdr_id}/events"), None);
        events = serde_json::from_str(&body).unwrap_or_default();
        events["total"].as_u64() == Some(n as u64)
    });
    events["items"].as_array().cloned().unwrap_or_default()
}

fn kind_target(events: &[serde_json::Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The one message in `ext`'s box: it came from `caller` and holds the caller's tones.
fn message_holds_tones(d: &Denwa, ext: &str, caller: &str) {
    let mut msgs: Vec<serde_json::Value> = Vec::new();
    d.wait_until("the message indexed", Duration::from_secs(15), || {
        let list = d.cli_ok(&["voicemail", "list", ext, "--json"]);
        msgs = serde_json::from_str(&list).expect("json");
        msgs.len() == 1
    });
    assert_eq!(msgs[0]["caller"], caller, "{}", msgs[0]);
    let file = PathBuf::from(msgs[0]["path"].as_str().expect("path"));
    tone::check_recording(&file, &CALLER_TONES, &CALLEE_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the message does not hold the transferee's tones: {e}")
    });
}

#[test]
fn blind_transfer_to_a_ring_group_then_the_member_who_answers_talks_to_the_caller() {
    testkit::require_binary("curl").unwrap_or_else(|e| panic!("{e}"));
    let mut d = pbx();
    silence_while_ringing(&mut d);
    let token = api_token(&d);
    // 1004 is a member with no phone (skipped); 1003 answers.
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
            "1004",
            "--member",
            "1003",
            "--cid-prefix",
            "Sales",
        ],
    );
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 6000, 30_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 30_000);
    let c_wav = tones(audio.path(), "c.wav", &CALLEE_TONES, 600, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    let mut c = phone(&d, "1003", "carol-secret-d", &c_wav);

    let started = Instant::now();
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut b, "transferor");
    std::thread::sleep(Duration::from_millis(500));
    transfer_to(&d, &mut b, "600");
    established(&d, &mut c, "group member");
    call_closed(&d, &mut b, "the transferor's call should end");
    assert!(
        started.elapsed() < Duration::from_millis(5500),
        "the transfer took too long for the tone timing: {:?}",
        started.elapsed()
    );
    talk_then_check(&mut a, &mut c, started, 6000);
    let logs = d.logs();
    assert!(
        logs.contains("blind transfer to a ring group accepted"),
        "{logs}"
    );
    let events = record_events(&d, &token, 3);
    assert_eq!(
        kind_target(&events),
        vec![
            ("skipped".to_string(), "1004".to_string()),
            ("hunt".to_string(), "1003".to_string()),
            ("blind".to_string(), "1003".to_string()),
        ],
        "{events:?}"
    );
    assert_eq!(events[2]["by"], "1002");
    assert_eq!(events[2]["party"], "1001");
    assert_eq!(d.cdrs().len(), 1, "one call, one record");
}

#[test]
fn transfer_into_a_colleagues_voicemail_records_the_callers_message() {
    let d = pbx();
    let audio = tempfile::tempdir().expect("tmp");
    // The transfer at 0.5 s, then 1002's greeting (about 7 s): the tones come after it.
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 10_000, 40_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut c = phone(&d, "1003", "carol-secret-d", &quiet);
    a.dial(&format!("sip:1003@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut c, "receptionist");
    std::thread::sleep(Duration::from_millis(500));
    transfer_to(&d, &mut c, "*991002");
    call_closed(&d, &mut c, "the receptionist is released");
    a.wait_event("CALL_CLOSED", Duration::from_secs(50))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    message_holds_tones(&d, "1002", "1001");
    let logs = d.logs();
    assert!(
        logs.contains("blind transfer to an application accepted"),
        "{logs}"
    );
}

#[test]
fn a_call_through_an_ivr_is_transferred_by_the_phone_that_answered_it() {
    let mut d = pbx();
    silence_while_ringing(&mut d);
    let audio = tempfile::tempdir().expect("tmp");
    // A greeting of its own tone, apart from the phones' (where no prompts are installed a
    // missing one plays the error tone, whose 1400 and 1800 Hz the tone check would count).
    let greeting = tones(audio.path(), "greeting.wav", &[2900], 0, 1200);
    d.cli_ok(&[
        "prompt",
        "upload",
        "ivr-welcome",
        "--lang",
        "en",
        greeting.to_str().expect("utf-8 path"),
    ]);
    configure(
        &d,
        &[
            "ivr",
            "add",
            "main",
            "--number",
            "500",
            "--greeting",
            "ivr-welcome",
            "--option",
            "5=ext:1002",
        ],
    );
    // Menu, choice, 1002 answers, 1002 transfers to 1003: the caller's tones come after.
    let lead = 12_000;
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, lead, 40_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 40_000);
    let c_wav = tones(audio.path(), "c.wav", &CALLEE_TONES, 600, 40_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    let mut c = phone(&d, "1003", "carol-secret-d", &c_wav);
    let started = Instant::now();
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller on the menu");
    std::thread::sleep(Duration::from_millis(1500));
    a.send_dtmf("5").expect("DTMF");
    established(&d, &mut b, "1002 through the menu");
    std::thread::sleep(Duration::from_millis(500));
    transfer_to(&d, &mut b, "1003");
    call_closed(&d, &mut b, "the transferor's call should end");
    established(&d, &mut c, "target");
    assert!(
        started.elapsed() < Duration::from_millis(u64::from(lead) - 500),
        "the transfer took too long for the tone timing: {:?}",
        started.elapsed()
    );
    talk_then_check(&mut a, &mut c, started, lead);
    let logs = d.logs();
    assert!(
        logs.contains("blind transfer of an anchored call accepted"),
        "{logs}"
    );
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs.len(), 1, "one call, one record: {cdrs:?}");
    assert_eq!(cdrs[0]["callee"], "1003", "{}", cdrs[0]);
}

#[test]
fn transfer_to_a_missing_group_is_refused_and_to_a_group_nobody_can_answer_goes_to_its_mailbox() {
    testkit::require_binary("curl").unwrap_or_else(|e| panic!("{e}"));
    let d = pbx();
    let token = api_token(&d);
    // Nobody in "night" can ring (1004 has no phone): its no-answer is 1003's mailbox.
    configure(
        &d,
        &[
            "group",
            "add",
            "night",
            "--number",
            "601",
            "--member",
            "1004",
            "--no-answer",
            "vm:1003",
        ],
    );
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tones(audio.path(), "a.wav", &CALLER_TONES, 12_000, 40_000);
    let quiet = tones(audio.path(), "quiet.wav", &[], 0, 40_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    established(&d, &mut a, "caller");
    established(&d, &mut b, "callee");
    let (code, calls) = api(&d, &token, "GET", "/calls", None);
    assert_eq!(code, 200, "{calls}");
    let calls: serde_json::Value = serde_json::from_str(&calls).expect("JSON");
    let id = calls["items"][0]["id"].as_u64().expect("a call id");
    // No such group number: refused, the call kept.
    let (code, body) = api(
        &d,
        &token,
        "POST",
        &format!("/calls/{id}/transfer"),
        Some(r#"{"to":"699"}"#),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = api(&d, &token, "GET", "/calls", None);
    assert!(
        code == 200 && body.contains(&format!("\"id\":{id}")),
        "{body}"
    );
    // The group nobody can answer: its no-answer destination takes the caller.
    let (code, body) = api(
        &d,
        &token,
        "POST",
        &format!("/calls/{id}/transfer"),
        Some(r#"{"to":"601"}"#),
    );
    assert_eq!(code, 202, "{body}");
    call_closed(&d, &mut b, "the transferring phone is released");
    a.wait_event("CALL_CLOSED", Duration::from_secs(50))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    message_holds_tones(&d, "1003", "1001");
    assert!(
        d.logs()
            .contains("nobody in the ring group answered the transfer"),
        "{}",
        d.logs()
    );
}
