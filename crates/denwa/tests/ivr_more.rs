//! IVR options to more destinations, with real phones (issue 14 §4): a caller presses a digit
//! for a ring group of two baresip phones — both ring, one answers, the other is cancelled,
//! and a tone sequence from each side is heard on the other; and a caller chooses an
//! extension that does not answer, whose no-answer forward is its mailbox: the caller lands
//! in voicemail and the message (the caller's tones) is stored.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{AnswerMode, Phone, PhoneConfig};
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The greeting's tone: apart from the phones' tones, ringback and the error tone.
const GREETING: u32 = 2900;
const A_TONES: [u32; 4] = [500, 700, 1100, 1300];
const B_TONES: [u32; 4] = [1600, 2000, 2300, 2600];

fn wav(dir: &Path, name: &str, freqs: &[u32], lead_ms: u32, min_ms: u32) -> PathBuf {
    let path = dir.join(name);
    let layout = ToneLayout {
        lead_ms,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, freqs, &layout, min_ms).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, wav: &Path, answer: AnswerMode) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), &password(user), 600)
        .with_audio(wav);
    cfg.answer = answer;
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

fn password(user: &str) -> String {
    let word = match user {
        "1001" => "alice",
        "1002" => "bob",
        _ => "carol",
    };
    format!("{word}-secret-ivr")
}

/// Extensions 1001-1003, ring group `sales` (1002 and 1003 together), and menu `main`
/// (number 500): 1 group:sales, 2 ext:1002.
fn setup(d: &Denwa, audio: &Path) {
    for n in ["1001", "1002", "1003"] {
        d.add_extension(n, &password(n));
    }
    let greeting = audio.join("greeting.wav");
    let layout = ToneLayout {
        lead_ms: 0,
        tone_ms: 1200,
        tail_ms: 200,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&greeting, &[GREETING], &layout, 0).expect("greeting");
    d.cli_ok(&[
        "prompt",
        "upload",
        "ivr-welcome",
        "--lang",
        "en",
        greeting.to_str().expect("utf-8 path"),
    ]);
    d.cli_ok(&[
        "group", "add", "sales", "--member", "1002", "--member", "1003",
    ]);
    d.cli_ok(&[
        "ivr",
        "add",
        "main",
        "--number",
        "500",
        "--greeting",
        "ivr-welcome",
        "--option",
        "1=group:sales",
        "--option",
        "2=ext:1002",
        "--timeout",
        "5",
    ]);
    d.wait_until("the menu loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
}

#[test]
fn a_digit_for_a_ring_group_rings_both_phones_and_the_one_that_answers_talks() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    // The caller's tones start after the menu and the ringing (about 4 s in).
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 5000, 14_000);
    let b_wav = wav(audio.path(), "b.wav", &B_TONES, 1000, 8000);
    let quiet = wav(audio.path(), "quiet.wav", &[B_TONES[0]], 50_000, 55_000);
    let mut a = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    // 1002 rings and is never answered; 1003 answers at once.
    let mut ringing = phone(&d, "1002", &quiet, AnswerMode::Manual);
    let mut b = phone(&d, "1003", &b_wav, AnswerMode::Auto);

    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the IVR did not answer: {e}")
        });
    // The greeting (1.2 s), then the choice.
    std::thread::sleep(Duration::from_millis(2000));
    a.send_dtmf("1").expect("DTMF");
    ringing
        .wait_event("CALL_INCOMING", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the group did not ring 1002: {e}")
        });
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the group did not ring 1003: {e}")
        });
    ringing
        .wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("1002 was not cancelled when 1003 answered: {e}")
        });
    // Both sequences are over 6 s after the member answered.
    std::thread::sleep(Duration::from_millis(7000));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    let a_heard = a.last_recording().expect("caller recording");
    let b_heard = b.last_recording().expect("member recording");
    let expected_a: Vec<u32> = std::iter::once(GREETING).chain(B_TONES).collect();
    tone::check_recording(&a_heard, &expected_a, &A_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the greeting and then the member: {e}")
    });
    tone::check_recording(&b_heard, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the member did not hear the caller: {e}")
    });
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    let c = &cdrs[0];
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
    assert_eq!(c["caller"], "1001");
    assert_eq!(
        c["callee"], "1003",
        "the record names the member who answered"
    );
    assert!(
        d.logs().contains("ring group (menu choice)"),
        "the group's plan ran"
    );
}

#[test]
fn an_extension_chosen_in_the_menu_that_does_not_answer_sends_the_caller_to_its_voicemail() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    let before = d.logs().matches("voice applications loaded").count();
    d.cli_ok(&[
        "forward",
        "set",
        "1002",
        "no_answer",
        "vm:1002",
        "--ring",
        "4",
    ]);
    d.wait_until("the forward loaded", Duration::from_secs(10), || {
        d.logs().matches("voice applications loaded").count() > before
    });
    // Greeting 1.2 s + the choice at 2 s + 4 s ringing + the mailbox greeting (about 8 s,
    // error tones where no default prompts are installed): the tones start at 18 s.
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 18_000, 40_000);
    let quiet = wav(audio.path(), "quiet.wav", &[B_TONES[0]], 50_000, 55_000);
    let mut a = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    let mut desk = phone(&d, "1002", &quiet, AnswerMode::Manual);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    std::thread::sleep(Duration::from_millis(2000));
    a.send_dtmf("2").expect("DTMF");
    desk.wait_event("CALL_INCOMING", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("option 2 did not ring 1002: {e}")
        });
    desk.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("1002 did not stop ringing after its 4 s: {e}")
        });
    // Recording stops after 5 s of silence following the tones, then "goodbye" and a hang-up.
    a.wait_event("CALL_CLOSED", Duration::from_secs(50))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    let mut msgs = serde_json::Value::Null;
    let found = (0..20).any(|_| {
        let list = d.cli_ok(&["voicemail", "list", "1002", "--json"]);
        msgs = serde_json::from_str(&list).expect("json");
        let n = msgs.as_array().map_or(0, Vec::len);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        n > 0
    });
    if !found {
        d.print_logs();
    }
    assert_eq!(msgs.as_array().map(Vec::len), Some(1), "{msgs}");
    let path = msgs[0]["path"].as_str().expect("path");
    tone::check_recording(Path::new(path), &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the message does not hold the caller's tones: {e}")
    });
    assert!(
        d.logs().contains("call forwarded (menu choice)"),
        "the forward was followed"
    );
}
