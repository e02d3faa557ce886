//! Two real softphones (baresip) register to Denwa with passwords and call each other through it;
//! audio sent by each side is detected on the far side after crossing Denwa's relay, and a DTMF
//! digit (RFC 4733) arrives as an event.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Denwa, Opts};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn tone_file(dir: &std::path::Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, password: &str, wav: &std::path::Path) -> Phone {
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

#[test]
fn two_baresip_phones_talk_through_the_relay() {
    // Two relay threads (a 2-CPU machine's default is one), set the way an operator would.
    let d = Denwa::start_with(Opts {
        extra: vec!["--relay-threads".into(), "2".into()],
        ..Default::default()
    });
    assert!(
        d.logs().contains("relay_threads=2"),
        "startup line should name the relay threads: {}",
        d.logs()
    );
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tone_file(audio.path(), "a.wav", &CALLER_TONES);
    let b_wav = tone_file(audio.path(), "b.wav", &CALLEE_TONES);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    assert_eq!(d.registrations().len(), 2);

    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("caller: {e}")
        });
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("callee established");
    let seq = ToneLayout::default().sequence_ms(CALLER_TONES.len());
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    // RFC 4733 DTMF crosses the relay as telephone-event packets.
    a.send_dtmf("7").expect("send DTMF");
    let ev = b
        .wait_event("CALL_DTMF_START", EVENT_TIMEOUT)
        .expect("callee got the DTMF event");
    assert!(ev.param.contains('7'), "wrong digit: {:?}", ev.raw);
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("caller closed");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");

    let a_heard = a.last_recording().expect("caller recording");
    let b_heard = b.last_recording().expect("callee recording");
    tone::check_recording(&a_heard, &CALLEE_TONES, &CALLER_TONES)
        .unwrap_or_else(|e| panic!("caller did not hear the callee through Denwa: {e}"));
    tone::check_recording(&b_heard, &CALLER_TONES, &CALLEE_TONES)
        .unwrap_or_else(|e| panic!("callee did not hear the caller through Denwa: {e}"));

    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    let c = &cdrs[0];
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
    assert_eq!(c["caller"], "1001");
    assert_eq!(c["callee"], "1002");
    assert_eq!(c["hangup_by"], "caller");
    let billsec = c["billsec"].as_i64().expect("billsec");
    let duration = c["duration_s"].as_i64().expect("duration");
    assert!((2..=15).contains(&billsec), "billsec {billsec}");
    assert!(
        duration >= billsec,
        "duration {duration} < billsec {billsec}"
    );
    // Both directions carried RTP through the relay (50 packets/s of G.711).
    for leg in ["a", "b"] {
        let rx = c[leg]["pkts_rx"].as_i64().unwrap_or(0);
        let tx = c[leg]["pkts_tx"].as_i64().unwrap_or(0);
        assert!(rx > 50 && tx > 50, "leg {leg}: rx {rx} tx {tx}: {c}");
    }
}
