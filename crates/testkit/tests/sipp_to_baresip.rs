//! sipp and baresip against each other, no server: sipp's rtp_stream audio must reach baresip
//! intact, which validates both uac_call_rtp.xml and the tone pipeline sipp → RTP → recording.

use std::time::Duration;

use testkit::baresip::{Phone, PhoneConfig};
use testkit::sipp::Sipp;
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

#[test]
fn sipp_rtp_stream_tones_are_heard_by_baresip() {
    for program in ["sipp", "baresip"] {
        if let Err(e) = testkit::require_binary(program) {
            panic!("{e}");
        }
    }
    let work = tempfile::tempdir().unwrap();
    let samples = tone::tone_sequence(&CALLER_TONES, &ToneLayout::default());
    tone::write_ulaw_wav(&work.path().join("rtp_tones.wav"), &samples).unwrap();
    let callee_wav = work.path().join("callee.wav");
    tone::write_tone_wav(&callee_wav, &CALLEE_TONES, &ToneLayout::default(), 0).unwrap();

    let mut phone = Phone::start(PhoneConfig::new("bob").with_audio(&callee_wav)).unwrap();
    let remote = format!("{}:{}", phone.ip(), phone.sip_port());
    let mut caller = Sipp::uac("uac_call_rtp.xml", &remote);
    caller.inject = Some("users.csv".into());
    caller.service = Some("bob".into());
    caller.workdir = Some(work.path().to_path_buf());
    // Long enough for the whole sequence (2.4 s) to play before the BYE.
    caller.call_duration = Duration::from_millis(3500);
    let out = caller.run().unwrap();
    assert_eq!(out.successful, 1);

    phone
        .wait_event("CALL_CLOSED", Duration::from_secs(10))
        .unwrap();
    let heard = phone.last_recording().unwrap();
    tone::check_recording(&heard, &CALLER_TONES, &CALLEE_TONES)
        .unwrap_or_else(|e| panic!("{e}\n{}", phone.logs()));
}
