//! One-way intercom with real phones: the tenant's `intercom.audio` set to `one-way` with the
//! CLI (`denwa setting set intercom.audio one-way --tenant`); 1001 intercoms 1002 (`*80`),
//! whose baresip answers by itself. 1002 hears 1001's tones; 1001 hears none of 1002's (the
//! relay does not pass what the called phone sends).

mod common;

use std::time::Duration;

use common::{Denwa, registered_phone, tone_wav};
use testkit::tone;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn a_one_way_intercom_carries_the_callers_voice_only() {
    let mut d = Denwa::start();
    d.add_extension("1001", "secret-icom-a1");
    d.add_extension("1002", "secret-icom-b2");
    let out = d.cli_ok(&["setting", "set", "intercom.audio", "one-way", "--tenant"]);
    assert!(out.contains("for tenant"), "{out}");
    // Restarted so the setting is certainly in force.
    d.terminate();
    d.spawn();
    let audio = tempfile::tempdir().expect("tmp");
    let a_tones = [500, 700];
    let b_tones = [1100, 1300];
    let wa = tone_wav(audio.path(), "a.wav", &a_tones, 1500, 8000);
    let wb = tone_wav(audio.path(), "b.wav", &b_tones, 1500, 8000);
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
    // Both phones play their tones (real-time audio: this waits for the files, not logic).
    std::thread::sleep(Duration::from_millis(4500));
    a.hangup().expect("hang up");
    for p in [&mut a, &mut b] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: not closed: {e}", p.name()));
    }
    let all: Vec<u32> = a_tones.iter().chain(&b_tones).copied().collect();
    let rec = b.last_recording().expect("1002's recording");
    tone::check_recording(&rec, &a_tones, &b_tones).unwrap_or_else(|e| {
        d.print_logs();
        panic!("1002 did not hear exactly 1001: {e}")
    });
    let rec = a.last_recording().expect("1001's recording");
    tone::check_recording(&rec, &[], &all).unwrap_or_else(|e| {
        d.print_logs();
        panic!("1001 heard something: {e}")
    });
}
