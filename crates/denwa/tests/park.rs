//! Call park against a real `denwa serve` with baresip phones. 1001 dials the park code `*70`
//! and is parked on slot 701 (the slot is announced, then hold music); 1003 dials 701 and the
//! two hear each other's tones. An empty slot is announced and the call ends; a number past the
//! lot is refused, nothing crashes. The park timeout rings the parker's other phone, whose
//! caller ID says it is a returning parked call. A parked call survives `serve` being killed
//! and started again (SQLite data dir): the new process re-INVITEs the parked phone onto a new
//! endpoint and 1003 retrieves it with audio. `denwa park show|set|list` on the way. A blind
//! transfer (baresip's `/transfer`) of a call to `*70` parks the transferee for the
//! transferor, and a third phone retrieves it with audio.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Denwa;
use testkit::baresip::{AnswerMode, Phone, PhoneConfig};
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Tones of the parked phone and of the retrieving phone (apart from the PBX's own beep and
/// error tones).
const PARKED_TONES: [u32; 2] = [500, 700];
const TAKER_TONES: [u32; 2] = [1100, 1300];

fn pw(user: &str) -> String {
    format!("secret-park-{}", user.len() * 7 + 3)
}

fn wav(dir: &Path, name: &str, freqs: &[u32], lead_ms: u32) -> PathBuf {
    let path = dir.join(name);
    let layout = ToneLayout {
        lead_ms,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, freqs, &layout, 30_000).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, audio: &Path, answer: AnswerMode) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), &pw(user), 600)
        .with_audio(audio);
    cfg.answer = answer;
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

fn dial_established(d: &Denwa, p: &mut Phone, number: &str) {
    p.clear_events();
    p.dial(&format!("sip:{number}@{}", d.sip_addr()))
        .expect("dial");
    p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{} -> {number}: {e}", p.name())
        });
}

/// `p` dials the park code and is parked (its row stored, the slot announced).
fn park(d: &Denwa, p: &mut Phone, nth: usize) {
    dial_established(d, p, "*70");
    d.wait_until("parked", EVENT_TIMEOUT, || {
        d.logs().matches("call parked").count() >= nth
    });
}

fn check_heard(d: &Denwa, p: &Phone, expected: &[u32], own: &[u32]) {
    let rec = p.last_recording().expect("recording");
    tone::check_recording(&rec, expected, own).unwrap_or_else(|e| {
        d.print_logs();
        panic!("{} did not hear the other side: {e}", p.name())
    });
}

#[test]
fn park_by_code_retrieve_with_audio_empty_slot_and_cli() {
    let d = Denwa::start();
    for n in ["1001", "1003"] {
        d.add_extension(n, &pw(n));
    }
    let show = d.cli_ok(&["park", "show"]);
    assert!(show.contains("slots:     701-720"), "{show}");
    assert!(show.contains("timeout:   120 s"), "{show}");
    let audio = tempfile::tempdir().expect("tmp");
    // The parked phone's tones start once the taker is connected; the taker's a bit later.
    let a_wav = wav(audio.path(), "a.wav", &PARKED_TONES, 5000);
    let c_wav = wav(audio.path(), "c.wav", &TAKER_TONES, 5000);
    let mut a = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    let mut c = phone(&d, "1003", &c_wav, AnswerMode::Auto);

    park(&d, &mut a, 1);
    let list = d.cli_ok(&["park", "list"]);
    assert!(list.contains("701    1001"), "{list}");
    // An empty slot is announced, then the call ends; a number past the lot is refused.
    c.clear_events();
    c.dial(&format!("sip:705@{}", d.sip_addr())).expect("dial");
    c.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered to say the slot is empty");
    c.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("hung up after the prompt");
    assert!(d.logs().contains("park slot empty"));
    c.clear_events();
    c.dial(&format!("sip:799@{}", d.sip_addr())).expect("dial");
    c.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("refused");

    // After the announcement the parked caller hears hold music (no music is installed here:
    // the media engine plays silence for the class and says so).
    d.wait_until("hold music", EVENT_TIMEOUT, || {
        d.logs()
            .contains("no music on hold: playing silence tenant=1 class=default")
    });
    // 1003 takes the parked call: both hear each other.
    dial_established(&d, &mut c, "701");
    d.wait_until("retrieved", EVENT_TIMEOUT, || {
        d.logs().contains("parked call retrieved")
    });
    std::thread::sleep(Duration::from_millis(7000));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut c] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    check_heard(&d, &c, &PARKED_TONES, &TAKER_TONES);
    check_heard(&d, &a, &TAKER_TONES, &PARKED_TONES);
    let list = d.cli_ok(&["park", "list"]);
    assert_eq!(list.lines().count(), 1, "only the header: {list}");
    // The call's record tells the park story.
    d.wait_until("events stored", Duration::from_secs(10), || {
        d.cdrs().iter().any(|c| c["caller"] == "1001")
    });
}

#[test]
fn the_timeout_rings_the_parkers_other_phone() {
    let d = Denwa::start();
    d.add_extension("1001", &pw("1001"));
    let out = d.cli_ok(&[
        "park",
        "set",
        "--timeout",
        "10",
        "--first",
        "701",
        "--last",
        "702",
    ]);
    assert!(out.contains("timeout:   10 s"), "{out}");
    d.wait_until("the lot loaded", EVENT_TIMEOUT, || {
        d.logs().contains("park lot loaded")
    });
    let bad = d.cli(&["park", "set", "--timeout", "5"]);
    assert!(!bad.status.success());
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = wav(audio.path(), "a.wav", &PARKED_TONES, 5000);
    let quiet = wav(audio.path(), "q.wav", &[], 0);
    let mut a = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    let mut desk = phone(&d, "1001", &quiet, AnswerMode::Manual);
    park(&d, &mut a, 1);
    desk.clear_events();
    let ring = desk
        .wait_event("CALL_INCOMING", Duration::from_secs(25))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the parker's other phone was not rung back: {e}")
        });
    assert!(
        ring.raw.to_string().contains("Parked 701"),
        "caller ID says it is a returning parked call: {}",
        ring.raw
    );
    desk.accept().expect("accept");
    desk.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("the parker took the call back");
    d.wait_until("slot freed", EVENT_TIMEOUT, || {
        !d.cli_ok(&["park", "list"]).contains("701 ")
    });
    a.hangup().expect("hang up");
    desk.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("the parker's phone hung up too");
}

#[test]
fn a_parked_call_survives_a_restart_of_serve() {
    let mut d = Denwa::start();
    for n in ["1001", "1003"] {
        d.add_extension(n, &pw(n));
    }
    let audio = tempfile::tempdir().expect("tmp");
    // The parked phone's tones come well after the restart and the retrieval.
    let lead = 7000;
    let a_wav = wav(audio.path(), "a.wav", &PARKED_TONES, lead);
    let c_wav = wav(audio.path(), "c.wav", &TAKER_TONES, 3000);
    let mut a = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    let mut c = phone(&d, "1003", &c_wav, AnswerMode::Auto);
    let dialled = std::time::Instant::now();
    park(&d, &mut a, 1);

    d.kill9();
    d.spawn();
    d.wait_until("resumed", EVENT_TIMEOUT, || {
        d.logs().contains("parked call resumed")
    });
    assert!(d.cli_ok(&["park", "list"]).contains("701    1001"));
    dial_established(&d, &mut c, "701");
    d.wait_until("retrieved", EVENT_TIMEOUT, || {
        d.logs().contains("parked call retrieved")
    });
    talk_then_check_re_invited(&d, &mut a, &mut c, dialled + ms(lead));
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

/// The parked phone `a` (re-INVITEd onto an endpoint of ours) and the taker `c` talk until
/// `a`'s tones have played (they start at `tones_at`), then `c` hangs up. `c` heard `a`;
/// baresip 1.0 does not re-open its recording after a re-INVITE, so the other direction is
/// checked by the parked phone's endpoint: it sent the taker's audio to the phone.
fn talk_then_check_re_invited(
    d: &Denwa,
    a: &mut Phone,
    c: &mut Phone,
    tones_at: std::time::Instant,
) {
    let done = tones_at + Duration::from_millis(2000);
    std::thread::sleep(done.saturating_duration_since(std::time::Instant::now()));
    c.hangup().expect("hang up");
    for p in [&mut *a, &mut *c] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    check_heard(d, c, &PARKED_TONES, &TAKER_TONES);
    let logs = d.logs();
    assert!(
        max_endpoint_tx(&logs) > 100,
        "audio was sent to the parked phone: {logs}"
    );
}

/// The most audio packets any media endpoint of ours sent (from `media endpoint closed`).
fn max_endpoint_tx(logs: &str) -> u64 {
    logs.lines()
        .filter(|l| l.contains("media endpoint closed"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("tx="))
                .and_then(|v| v.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn blind_transfer_to_the_park_code_then_retrieval_with_audio() {
    let d = Denwa::start();
    for n in ["1001", "1002", "1003"] {
        d.add_extension(n, &pw(n));
    }
    let audio = tempfile::tempdir().expect("tmp");
    // 1001's tones come after the transfer and the retrieval.
    let lead = 8000;
    let a_wav = wav(audio.path(), "a.wav", &PARKED_TONES, lead);
    let quiet = wav(audio.path(), "q.wav", &[], 0);
    let c_wav = wav(audio.path(), "c.wav", &TAKER_TONES, 3000);
    let mut a = phone(&d, "1001", &a_wav, AnswerMode::Auto);
    let mut b = phone(&d, "1002", &quiet, AnswerMode::Auto);
    let mut c = phone(&d, "1003", &c_wav, AnswerMode::Auto);
    let dialled = std::time::Instant::now();
    dial_established(&d, &mut a, "1002");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("1002 answered");
    std::thread::sleep(Duration::from_millis(500));
    b.clear_events();
    b.command("transfer", Some(&format!("sip:*70@{}", d.sip_addr())))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("transfer command: {e}")
        });
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the transferor is released: {e}")
        });
    d.wait_until("parked by transfer", EVENT_TIMEOUT, || {
        d.logs().contains("call parked")
    });
    let list = d.cli_ok(&["park", "list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("701"))
        .unwrap_or_else(|| panic!("slot 701 listed: {list}"));
    assert!(
        row.contains("1001") && row.contains("1002"),
        "caller 1001 parked by 1002: {list}"
    );
    dial_established(&d, &mut c, "701");
    d.wait_until("retrieved", EVENT_TIMEOUT, || {
        d.logs().contains("parked call retrieved")
    });
    assert!(
        std::time::Instant::now() < dialled + ms(lead),
        "the transfer and retrieval took too long for the tone timing"
    );
    talk_then_check_re_invited(&d, &mut a, &mut c, dialled + ms(lead));
    let logs = d.logs();
    assert!(
        logs.contains("blind transfer to an application accepted"),
        "{logs}"
    );
    let mut cdrs = Vec::new();
    d.wait_until("records", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        cdrs.len() >= 3
    });
    assert!(
        cdrs.iter()
            .any(|r| r["hangup_cause"] == "blind transfer to *70"),
        "the relayed call's record: {cdrs:?}"
    );
}
