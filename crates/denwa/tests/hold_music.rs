//! Music on hold with a real phone: sipp calls a baresip phone through Denwa, puts the call on
//! hold (re-INVITE `sendonly`) and resumes it. The phone is offered the music endpoint, receives
//! its stream while held, and the endpoint closes when the call is resumed.

mod common;

use std::time::Duration;

use common::{Denwa, sipp_user};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::sipp::Sipp;
use testkit::tone;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn the_held_party_hears_music_until_the_call_is_resumed() {
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    d.cli_ok(&["moh", "install-default"]);
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tmp");
    let quiet = dir.path().join("quiet.wav");
    tone::write_wav(&quiet, &tone::Wav::mono(vec![0; 8000 * 20])).expect("wav");
    let cfg = PhoneConfig::new("1002")
        .registering(&d.sip_addr(), "secret-baac", 600)
        .with_audio(&quiet);
    let mut b = Phone::start(cfg).expect("baresip starts");
    b.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("callee registers");
    // Call up 3 s, on hold 3 s, resumed 3 s.
    let mut s = Sipp::uac("uac_reinvite_hold.xml", &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "secret-baab"));
    s.service = Some("1002".into());
    s.timeout = Duration::from_secs(60);
    s.call_duration = Duration::from_secs(3);
    s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("hold/resume call: {e}")
    });
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");
    let logs = d.logs();
    assert!(
        logs.contains("on hold: music for the other party"),
        "{logs}"
    );
    assert!(logs.contains("resumed: hold music stops"), "{logs}");
    // The music endpoint sent about 3 s of audio (50 packets/s) and closed at the resume.
    let line = logs
        .lines()
        .find(|l| l.contains("media endpoint closed"))
        .unwrap_or_else(|| panic!("the music endpoint closed: {logs}"));
    let tx: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tx="))
        .and_then(|v| v.parse().ok())
        .expect("tx count");
    assert!(
        (100..=220).contains(&tx),
        "about 150 packets of music: {line}"
    );
    let resumed = logs.find("resumed: hold music stops").expect("resume");
    let hung_up = logs.find("hang-up").expect("hang-up");
    assert!(
        resumed < hung_up,
        "the music stopped at the resume, before the end of the call"
    );
    // The phone took the music stream from the endpoint (baresip's own log; baresip 1.0 does not
    // re-open its recording after a re-INVITE, so the audio itself is checked by the endpoint's
    // counters above).
    let phone = b.logs();
    assert!(
        phone.contains("incoming rtp for 'audio' established"),
        "{phone}"
    );
}
