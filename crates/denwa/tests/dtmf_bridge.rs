//! Digits across a transcoded call with real phones: an Opus-only baresip phone calls a
//! PCMU-only one, Denwa decodes and re-encodes (the callee refused the caller's offer), and the
//! RFC 4733 digits each phone sends — which a decoding bridge does not carry as audio — are
//! regenerated on the other leg and arrive there as telephone-events, in order.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn phone(d: &Denwa, user: &str, password: &str, audio: &Path, codec: &str, module: &str) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), password, 600)
        .with_audio(audio);
    cfg.account_params.push(format!("audio_codecs={codec}"));
    cfg.config_lines.push(format!("module\t\t\t{module}.so"));
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

/// Sends `digits` one by one from `from` and returns what `to` reported, in order.
fn press(d: &Denwa, from: &mut Phone, to: &mut Phone, digits: &str) -> String {
    let mut got = String::new();
    for c in digits.chars() {
        from.send_dtmf(&c.to_string()).expect("DTMF");
        let ev = to
            .wait_event("CALL_DTMF_START", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("{}: digit {c} did not arrive: {e}", to.name())
            });
        got.push_str(ev.param.trim());
        std::thread::sleep(Duration::from_millis(300));
    }
    got
}

#[test]
fn digits_cross_a_transcoded_call_both_ways() {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    let audio = tempfile::tempdir().expect("tmp");
    let quiet = common::tone_wav(audio.path(), "q.wav", &[], 1000, 20_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &quiet, "opus/48000/2", "opus");
    let mut b = phone(&d, "1002", "bob-secret-cc", &quiet, "PCMU/8000/1", "g711");
    common::answered_call(&d, &mut a, &mut b, "1002");
    assert!(d.logs().contains("decoded and re-encoded"), "transcoded");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        press(&d, &mut a, &mut b, "159#"),
        "159#",
        "caller to callee"
    );
    assert_eq!(press(&d, &mut b, &mut a, "*0"), "*0", "callee to caller");
    // Each press crossed once: nothing more arrives.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        b.wait_event("CALL_DTMF_START", Duration::from_millis(500))
            .is_err(),
        "a digit arrived twice at the callee"
    );
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
}

/// Mean square of `pcm` (full scale 1.0).
fn power(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    pcm.iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum::<f64>()
        / pcm.len() as f64
}

#[test]
fn a_lone_conference_participant_hears_hold_music() {
    let d = Denwa::start();
    d.cli_ok(&["conf", "add", "800", "--name", "Lobby"]);
    d.cli_ok(&["moh", "install-default"]);
    d.add_extension("1001", "alice-secret-b");
    let audio = tempfile::tempdir().expect("tmp");
    let quiet = common::tone_wav(audio.path(), "q.wav", &[], 1000, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &quiet, "PCMU/8000/1", "g711");
    d.wait_until("the room loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
    a.dial(&format!("sip:800@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{e}")
        });
    d.wait_until(
        "music for the lone participant",
        Duration::from_secs(20),
        || d.logs().contains("alone in the conference"),
    );
    // Four seconds of what it hears after the prompts.
    std::thread::sleep(Duration::from_secs(5));
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    let wav = testkit::tone::read_wav(&a.last_recording().expect("recording")).expect("wav");
    let pcm = wav.first_channel();
    let rate = wav.sample_rate as usize;
    let tail = &pcm[pcm.len().saturating_sub(4 * rate)..pcm.len().saturating_sub(rate / 2)];
    let p = power(tail);
    assert!(
        p > 1e-4,
        "music after the prompts, not silence (mean square {p:e} over {} samples)",
        tail.len()
    );
}
