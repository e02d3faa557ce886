//! Recording control with real peers: a baresip caller goes through an IVR to a baresip phone
//! (a call anchored on Denwa's media endpoints) whose extension records on demand; the callee
//! keys `*1` (RFC 4733), both phones hear the beep, the file holds both parties' tones after
//! it, `*1` again stops it, and the call's events show who started and stopped it. On a
//! relayed call both phones hear the beep the relay puts into their streams. A relayed call
//! from sipp toggles the recording with `*1` sent as SIP INFO.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::api::{api_get, api_token};
use common::{Denwa, sipp_user};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::sipp::Sipp;
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The greeting's tone (none of the phones' tones, nor the beep's 1 kHz).
const GREETING: u32 = 2900;
/// The recording beep ([`media::endpoint::ToneSpec::beep`]).
const BEEP: u32 = 1000;
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

/// Sets `ext`'s policy and waits until call control has it.
fn policy(d: &Denwa, ext: &str, policy: &str) {
    d.cli_ok(&["recording", "policy", "extension", ext, policy]);
    d.wait_until("the policy loaded", Duration::from_secs(10), || {
        d.logs().contains("recording policies loaded policies=1")
    });
}

fn recordings(d: &Denwa) -> Vec<serde_json::Value> {
    let out = d.cli_ok(&["recording", "list", "--json"]);
    serde_json::from_str(&out).expect("recording list JSON")
}

/// The recording events of the (only) call record: (kind, by, target).
fn recording_events(d: &Denwa) -> Vec<(String, String, String)> {
    let token = api_token(d);
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(15), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    let id = cdrs[0]["id"].as_i64().expect("record id");
    let mut events = serde_json::Value::Null;
    d.wait_until("the call's events", Duration::from_secs(10), || {
        events = api_get(d, &token, &format!("/cdrs/{id}/events"));
        events["total"].as_i64().unwrap_or(0) > 0
    });
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["kind"].as_str().unwrap_or("").starts_with("recording_"))
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("kind"), s("by"), s("target"))
        })
        .collect()
}

#[test]
fn star_one_records_an_ivr_bridged_call_with_a_beep_to_both() {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    policy(&d, "1002", "on_demand");
    let audio = tempfile::tempdir().expect("tmp");
    let greeting = audio.path().join("greeting.wav");
    let g = ToneLayout {
        lead_ms: 0,
        tone_ms: 1200,
        tail_ms: 200,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&greeting, &[GREETING], &g, 0).expect("greeting");
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
    ]);
    d.wait_until("the menu loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
    // The caller's tones start 7 s into its call (greeting, choice, ringing, *1 and the beep
    // are over by then); the callee's after them.
    let a_layout = ToneLayout {
        lead_ms: 7000,
        ..ToneLayout::default()
    };
    let a_end = a_layout.sequence_ms(A_TONES.len());
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 7000, a_end + 12_000);
    // The callee answers about 2.5 s after the caller: its tones follow the caller's.
    let b_wav = wav(
        audio.path(),
        "b.wav",
        &B_TONES,
        a_end - 2000,
        a_end + 10_000,
    );
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);

    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the IVR did not answer: {e}")
        });
    std::thread::sleep(Duration::from_millis(1800));
    a.send_dtmf("1").expect("DTMF");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("option 1 did not ring 1002: {e}")
        });
    std::thread::sleep(Duration::from_millis(500));
    assert!(recordings(&d).is_empty(), "on demand: nothing yet");
    // The callee keys *1 (RFC 4733 to its endpoint).
    b.send_dtmf("*1").expect("DTMF");
    d.wait_until("an on-demand recording", Duration::from_secs(10), || {
        recordings(&d).iter().any(|r| r["status"] == "recording")
    });
    // Both sequences, then *1 again.
    std::thread::sleep(Duration::from_millis(u64::from(a_end) + 1500));
    b.send_dtmf("*1").expect("DTMF");
    let mut rows = Vec::new();
    d.wait_until("the recording to stop", Duration::from_secs(15), || {
        rows = recordings(&d);
        !rows.is_empty() && rows.iter().all(|r| r["status"] != "recording")
    });
    std::thread::sleep(Duration::from_millis(800));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "stopped", "{:?}", rows[0]);
    let rel = rows[0]["path"].as_str().expect("path").to_string();
    let file = d.data_dir().join(&rel);
    // The file: the caller's tones, then the callee's, in order (recorded after the beep).
    let expected: Vec<u32> = A_TONES.iter().chain(&B_TONES).copied().collect();
    let mut candidates = expected.clone();
    candidates.push(GREETING);
    let heard = tone::detect_file(&file, &candidates).expect("readable WAV");
    if heard != expected {
        d.print_logs();
        panic!("recording holds {heard:?}, expected {expected:?}");
    }
    // Both phones heard a beep before the other party's tones (and again at the stop).
    let a_heard = a.last_recording().expect("caller recording");
    let mut a_cands: Vec<u32> = B_TONES.to_vec();
    a_cands.extend([BEEP, GREETING]);
    let a_seq = tone::detect_file(&a_heard, &a_cands).expect("caller WAV");
    let b_heard = b.last_recording().expect("callee recording");
    let mut b_cands: Vec<u32> = A_TONES.to_vec();
    b_cands.push(BEEP);
    let b_seq = tone::detect_file(&b_heard, &b_cands).expect("callee WAV");
    for (who, seq, other) in [("caller", &a_seq, &B_TONES), ("callee", &b_seq, &A_TONES)] {
        let first_beep = seq.iter().position(|f| *f == BEEP);
        let first_other = seq.iter().position(|f| other.contains(f));
        assert!(
            matches!((first_beep, first_other), (Some(x), Some(y)) if x < y),
            "the {who} hears the beep before the other party: {seq:?}"
        );
        assert!(
            seq.iter().filter(|f| **f == BEEP).count() >= 2,
            "the {who} hears a beep at the start and at the stop: {seq:?}"
        );
    }
    assert_eq!(
        recording_events(&d),
        vec![
            ("recording_start".into(), "1002".into(), rel.clone()),
            ("recording_stop".into(), "1002".into(), rel),
        ]
    );
}

#[test]
fn star_one_by_sip_info_records_a_relayed_call() {
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    policy(&d, "1001", "on_demand");
    let dir = tempfile::tempdir().expect("tmp");
    let quiet = dir.path().join("quiet.wav");
    tone::write_wav(&quiet, &tone::Wav::mono(vec![0; 8000 * 20])).expect("wav");
    let mut b = phone(&d, "1002", "secret-baac", &quiet);
    // Up; *1 by INFO; 2 s; *1 by INFO; hang up.
    let mut s = Sipp::uac("uac_info_toggle.xml", &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "secret-baab"));
    s.service = Some("1002".into());
    s.timeout = Duration::from_secs(60);
    s.call_duration = Duration::from_secs(2);
    s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("INFO call: {e}")
    });
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");
    let mut rows = Vec::new();
    d.wait_until("the recording row", Duration::from_secs(15), || {
        rows = recordings(&d);
        !rows.is_empty() && rows.iter().all(|r| r["status"] != "recording")
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "stopped", "{:?}", rows[0]);
    let ms = rows[0]["duration_ms"].as_i64().expect("duration");
    // What the callee's phone sent (sipp sends no audio) between the two toggles.
    assert!(
        (1000..5000).contains(&ms),
        "about the 2 s between the two toggles: {ms} ms"
    );
    let rel = rows[0]["path"].as_str().expect("path").to_string();
    assert_eq!(
        recording_events(&d),
        vec![
            ("recording_start".into(), "1001".into(), rel.clone()),
            ("recording_stop".into(), "1001".into(), rel),
        ]
    );
}

#[test]
fn both_phones_of_a_relayed_call_hear_the_beep() {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    policy(&d, "1001", "on_demand");
    let audio = tempfile::tempdir().expect("tmp");
    // Silence while *1 and the beep go by, then each party's tones, the caller's first.
    let a_layout = ToneLayout {
        lead_ms: 3000,
        ..ToneLayout::default()
    };
    let a_end = a_layout.sequence_ms(A_TONES.len());
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 3000, a_end + 4000);
    let b_wav = wav(audio.path(), "b.wav", &B_TONES, a_end, a_end + 4000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("not established: {e}")
            });
    }
    std::thread::sleep(Duration::from_millis(500));
    a.send_dtmf("*1").expect("DTMF");
    d.wait_until("an on-demand recording", Duration::from_secs(10), || {
        recordings(&d).iter().any(|r| r["status"] == "recording")
    });
    std::thread::sleep(Duration::from_millis(u64::from(a_end) + 2000));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    // Each phone: the beep, then the other party's tones, all of them, in order.
    for (who, p, other) in [("caller", &a, &B_TONES), ("callee", &b, &A_TONES)] {
        let heard = p.last_recording().expect("phone recording");
        let mut cands = other.to_vec();
        cands.push(BEEP);
        let seq = tone::detect_file(&heard, &cands).expect("WAV");
        let mut expected = vec![BEEP];
        expected.extend(other.iter().copied());
        if seq != expected {
            d.print_logs();
            panic!("the {who} heard {seq:?}, expected {expected:?}");
        }
    }
}
