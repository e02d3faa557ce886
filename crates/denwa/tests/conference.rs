//! A conference room with three real phones: each hears the other two's tones, in order, and
//! never its own; the room's PIN keeps a caller out until it is entered.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Each phone's tones, apart from the PBX's own (join beep 1 kHz, error tone 950/1400/1800).
const TONES: [[u32; 2]; 3] = [[500, 700], [1100, 1300], [1600, 2200]];

fn wav(dir: &Path, name: &str, freqs: &[u32], lead_ms: u32) -> PathBuf {
    let path = dir.join(name);
    let layout = ToneLayout {
        lead_ms,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, freqs, &layout, 20_000).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, password: &str, audio: &Path) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), password, 600)
        .with_audio(audio);
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

#[test]
fn three_phones_each_hear_the_other_two() {
    let d = Denwa::start();
    d.cli_ok(&["conf", "add", "800", "--name", "Weekly"]);
    let audio = tempfile::tempdir().expect("tmp");
    let mut phones = Vec::new();
    for (i, user) in ["1001", "1002", "1003"].iter().enumerate() {
        let pw = format!("secret-pass-x{}", i * 7 + 3);
        d.add_extension(user, &pw);
        // Tone bursts 2 s apart, after everyone has joined.
        let lead = 4000 + 1500 * i as u32;
        let w = wav(audio.path(), &format!("{user}.wav"), &TONES[i], lead);
        phones.push(phone(&d, user, &pw, &w));
    }
    d.wait_until("the room loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
    for p in phones.iter_mut() {
        p.dial(&format!("sip:800@{}", d.sip_addr())).expect("dial");
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("{}: {e}", p.name())
            });
    }
    d.wait_until("three members", Duration::from_secs(10), || {
        d.logs().contains("members=3")
    });
    std::thread::sleep(Duration::from_millis(8500));
    for p in phones.iter_mut() {
        p.hangup().expect("hang up");
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    for (i, p) in phones.iter().enumerate() {
        let others: Vec<u32> = (0..3).filter(|j| *j != i).flat_map(|j| TONES[j]).collect();
        let rec = p.last_recording().expect("recording");
        tone::check_recording(&rec, &others, &TONES[i]).unwrap_or_else(|e| {
            d.print_logs();
            panic!("{} did not hear exactly the other two: {e}", p.name())
        });
    }
    d.wait_until("every endpoint closed", Duration::from_secs(10), || {
        d.logs().matches("media endpoint closed").count() >= 3
    });
}

#[test]
fn a_room_with_a_pin_admits_only_after_the_pin() {
    let d = Denwa::start();
    d.cli_ok(&["conf", "add", "801", "--pin", "2468"]);
    d.add_extension("1001", "secret-pass-abc");
    let audio = tempfile::tempdir().expect("tmp");
    let w = wav(audio.path(), "a.wav", &TONES[0], 4000);
    let mut p = phone(&d, "1001", "secret-pass-abc", &w);
    d.wait_until("the room loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
    p.dial(&format!("sip:801@{}", d.sip_addr())).expect("dial");
    p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    std::thread::sleep(Duration::from_millis(800));
    assert!(!d.logs().contains("joined the conference"));
    for digit in ["1", "1", "1", "1", "#"] {
        p.send_dtmf(digit).expect("DTMF");
        std::thread::sleep(Duration::from_millis(250));
    }
    d.wait_until("the wrong PIN", Duration::from_secs(10), || {
        d.logs().contains("wrong conference PIN")
    });
    for digit in ["2", "4", "6", "8", "#"] {
        p.send_dtmf(digit).expect("DTMF");
        std::thread::sleep(Duration::from_millis(250));
    }
    d.wait_until("joined", Duration::from_secs(10), || {
        d.logs().contains("joined the conference")
    });
    p.hangup().expect("hang up");
}
