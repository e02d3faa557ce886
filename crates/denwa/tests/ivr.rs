//! An IVR with real phones: a baresip phone calls the menu's number, hears the greeting (an
//! uploaded prompt, converted by the upload path), presses 1 (RFC 4733), and is connected to
//! the extension the option names; a tone sequence from each side is heard on the other,
//! through the decoding bridge. Then the menu's fallback: pressing an invalid digit twice
//! ends the call.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The greeting's tone: none of the phones' tones, nor ringback (400/440/480 Hz), nor the
/// error tone (950/1400/1800 Hz).
const GREETING: u32 = 2900;
/// Tones chosen apart from every tone the PBX itself plays.
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

fn phone(d: &Denwa, user: &str, password: &str, wav: &Path) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), password, 600)
        .with_audio(wav);
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

fn setup(d: &Denwa, audio: &Path) {
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
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
        "ivr",
        "add",
        "main",
        "--number",
        "500",
        "--greeting",
        "ivr-welcome",
        "--option",
        "1=ext:1002",
        "--option",
        "3=vm:1002",
        "--retries",
        "1",
        "--timeout",
        "3",
    ]);
    d.wait_until("the menu loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
}

#[test]
fn a_caller_chooses_an_option_and_talks_to_the_extension() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    // The caller's tones start after the menu and the ringing (about 4 s in).
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 5000, 14_000);
    let b_wav = wav(audio.path(), "b.wav", &B_TONES, 1000, 8000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);

    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the IVR did not answer: {e}")
        });
    // The greeting (1.2 s), then the choice.
    std::thread::sleep(Duration::from_millis(2000));
    a.send_dtmf("1").expect("DTMF");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("option 1 did not ring 1002: {e}")
        });
    // Both sequences are over 6 s after the callee answered.
    std::thread::sleep(Duration::from_millis(7000));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    let a_heard = a.last_recording().expect("caller recording");
    let b_heard = b.last_recording().expect("callee recording");
    let expected_a: Vec<u32> = std::iter::once(GREETING).chain(B_TONES).collect();
    tone::check_recording(&a_heard, &expected_a, &A_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the greeting and then the callee: {e}")
    });
    tone::check_recording(&b_heard, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the callee did not hear the caller: {e}")
    });
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    let c = &cdrs[0];
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
    assert_eq!(c["caller"], "1001");
    assert_eq!(c["callee"], "1002", "the record names who took the call");
    assert_eq!(c["hangup_by"], "caller");
    assert!(d.logs().contains("digit"), "the digit was logged");
}

#[test]
fn invalid_choices_use_up_the_retries_and_the_menu_hangs_up() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 1000, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    std::thread::sleep(Duration::from_millis(1500));
    a.send_dtmf("7").expect("DTMF");
    std::thread::sleep(Duration::from_millis(3000));
    a.send_dtmf("8").expect("DTMF");
    // "goodbye" (the default prompt, or the error tone where prompts are not installed), then
    // the menu hangs up.
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the menu did not hang up: {e}")
        });
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["hangup_by"], "system", "{}", cdrs[0]);
    let logs = d.logs();
    assert!(logs.contains("media endpoint closed"), "endpoint freed");
}

#[test]
fn an_in_band_digit_in_the_callers_audio_chooses_the_option() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    // The caller's audio: silence through the greeting, then the DTMF tones of "1" in the
    // audio itself (no RFC 4733 event), then silence.
    let mut samples = vec![0i16; 8000 * 2500 / 1000];
    samples.extend(
        media::tone::dtmf_tone('1', Duration::from_millis(120), 8000, 9000).expect("digit"),
    );
    samples.resize(8000 * 15, 0);
    let a_wav = audio.path().join("a.wav");
    tone::write_wav(&a_wav, &tone::Wav::mono(samples)).expect("wav");
    let b_wav = wav(audio.path(), "b.wav", &B_TONES, 1000, 6000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the in-band digit did not choose option 1: {e}")
        });
    assert!(
        d.logs().contains("Inband"),
        "the digit was detected in the audio: {}",
        d.logs()
    );
    a.hangup().expect("hang up");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");
}

#[test]
fn a_caller_leaves_a_voicemail_message_through_the_menu() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    // The mailbox greeting (error tones here: no default prompts installed) lasts about 8 s.
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 14_000, 40_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    std::thread::sleep(Duration::from_millis(2000));
    a.send_dtmf("3").expect("DTMF");
    // Recording stops after 5 s of silence following the tones, then "goodbye" and a hang-up.
    a.wait_event("CALL_CLOSED", Duration::from_secs(45))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    let list = d.cli_ok(&["voicemail", "list", "1002", "--json"]);
    let msgs: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(msgs.as_array().map(Vec::len), Some(1), "{list}");
    let path = msgs[0]["path"].as_str().expect("path");
    tone::check_recording(Path::new(path), &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the message does not hold the caller's tones: {e}")
    });
    assert!(d.logs().contains("voicemail message ended"));
}

/// The Japanese greeting's tone (the English one is [`GREETING`]); apart from every PBX tone.
const GREETING_JA: u32 = 3100;

/// `phone` dials the menu, listens through the greeting and hangs up: what it heard.
fn hear_greeting(d: &Denwa, p: &mut Phone) -> PathBuf {
    p.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the IVR did not answer {}: {e}", p.name())
        });
    // The greeting lasts 1.4 s; the menu then waits for a digit.
    std::thread::sleep(Duration::from_millis(2500));
    p.hangup().expect("hang up");
    p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    p.last_recording().expect("recording")
}

#[test]
fn an_extension_set_to_japanese_hears_the_japanese_greeting() {
    let mut d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d, audio.path());
    let greeting_ja = audio.path().join("greeting-ja.wav");
    let layout = ToneLayout {
        lead_ms: 0,
        tone_ms: 1200,
        tail_ms: 200,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&greeting_ja, &[GREETING_JA], &layout, 0).expect("greeting");
    d.cli_ok(&[
        "prompt",
        "upload",
        "ivr-welcome",
        "--lang",
        "ja",
        greeting_ja.to_str().expect("utf-8 path"),
    ]);
    let out = d.cli_ok(&["extension", "edit", "1001", "--language", "ja"]);
    assert!(out.contains("prompt language ja"), "{out}");
    // 1002 inherits: the tenant's default, then the node's prompts.language (en).
    let out = d.cli_ok(&["prompt", "language"]);
    assert!(
        out.contains("inherited from prompts.language (en)"),
        "{out}"
    );
    let bad = d.cli(&["extension", "edit", "1002", "--language", "fr"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("use en, ja or inherit"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let out = d.cli_ok(&["prompt", "language", "en"]);
    assert!(out.contains("tenant 1: prompt language en"), "{out}");
    let out = d.cli_ok(&["prompt", "language", "inherit"]);
    assert!(out.contains("inherited"), "{out}");
    // Loaded at start: no waiting for the change notification.
    d.terminate();
    d.spawn();

    // The phones send tones only long after the calls (never heard back).
    let quiet = wav(audio.path(), "quiet.wav", &A_TONES, 20_000, 24_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &quiet);
    let heard = hear_greeting(&d, &mut a);
    tone::check_recording(&heard, &[GREETING_JA], &[GREETING]).unwrap_or_else(|e| {
        d.print_logs();
        panic!("1001 (ja) did not hear the Japanese greeting alone: {e}")
    });
    drop(a);
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet);
    let heard = hear_greeting(&d, &mut b);
    tone::check_recording(&heard, &[GREETING], &[GREETING_JA]).unwrap_or_else(|e| {
        d.print_logs();
        panic!("1002 (inherit, en) did not hear the English greeting alone: {e}")
    });
}
