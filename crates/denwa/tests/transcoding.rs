//! Phones that share no codec talk through Denwa: an Opus-only phone calls a PCMU-only phone,
//! and a G.722-only phone calls a PCMA-only phone. The callee refuses the caller's offer (488),
//! Denwa retries with media terminated on its endpoints, and a tone sequence from each side is
//! heard on the other after decoding and re-encoding.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn wav(dir: &Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    let layout = ToneLayout {
        lead_ms: 1500,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, freqs, &layout, 9000).expect("tone file");
    path
}

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

fn call(caller_codec: (&str, &str), callee_codec: (&str, &str), expect: &str) {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = wav(audio.path(), "a.wav", &CALLER_TONES);
    let b_wav = wav(audio.path(), "b.wav", &CALLEE_TONES);
    let mut a = phone(
        &d,
        "1001",
        "alice-secret-b",
        &a_wav,
        caller_codec.0,
        caller_codec.1,
    );
    let mut b = phone(
        &d,
        "1002",
        "bob-secret-cc",
        &b_wav,
        callee_codec.0,
        callee_codec.1,
    );
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("{}: {e}", p.name())
            });
    }
    std::thread::sleep(Duration::from_millis(4500));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    let a_heard = a.last_recording().expect("caller recording");
    let b_heard = b.last_recording().expect("callee recording");
    tone::check_recording(&a_heard, &CALLEE_TONES, &CALLER_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the callee: {e}")
    });
    tone::check_recording(&b_heard, &CALLER_TONES, &CALLEE_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the callee did not hear the caller: {e}")
    });
    let logs = d.logs();
    assert!(logs.contains("decoded and re-encoded"), "{logs}");
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["disposition"], "ANSWERED", "{}", cdrs[0]);
    assert_eq!(cdrs[0]["codec"], expect, "{}", cdrs[0]);
}

#[test]
fn an_opus_phone_calls_a_pcmu_phone() {
    call(
        ("opus/48000/2", "opus"),
        ("PCMU/8000/1", "g711"),
        "opus/PCMU",
    );
}

#[test]
fn a_g722_phone_calls_a_pcma_phone() {
    call(
        ("G722/16000/1", "g722"),
        ("PCMA/8000/1", "g711"),
        "G722/PCMA",
    );
}
