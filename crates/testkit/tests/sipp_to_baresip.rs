//! sipp and baresip against each other, no server: sipp's rtp_stream audio must reach baresip
//! intact, which validates both uac_call_rtp.xml and the tone pipeline sipp → RTP → recording.

use std::time::Duration;

use testkit::baresip::{Phone, PhoneConfig};
use testkit::sipp::{RunningSipp, Sipp};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

fn require_peers() {
    for program in ["sipp", "baresip"] {
        if let Err(e) = testkit::require_binary(program) {
            panic!("{e}");
        }
    }
}

fn sipp_uas(scenario: &str) -> RunningSipp {
    let mut uas = Sipp::uas(scenario);
    uas.service = Some("1002".into());
    let mut running = uas.spawn().unwrap();
    running.wait_listening(Duration::from_secs(10)).unwrap();
    running
}

#[test]
fn sipp_rtp_stream_tones_are_heard_by_baresip() {
    require_peers();
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

#[test]
fn baresip_registers_with_digest_auth() {
    require_peers();
    let registrar = sipp_uas("peer_registrar_once.xml");
    let cfg = PhoneConfig::new("1001").registering(&registrar.local_addr(), "secret", 600);
    let mut phone = Phone::start(cfg).unwrap();
    let ev = phone.wait_event("REGISTER_OK", EVENT_TIMEOUT).unwrap();
    assert!(
        ev.raw["accountaor"].as_str().unwrap().contains("1001"),
        "{:?}",
        ev.raw
    );
    // The registrar scenario checks the phone sent digest credentials.
    registrar.finish().unwrap();
}

#[test]
fn baresip_reports_refused_registration() {
    require_peers();
    let registrar = sipp_uas("peer_registrar_refuse.xml");
    let cfg = PhoneConfig::new("1001").registering(&registrar.local_addr(), "wrong", 600);
    let mut phone = Phone::start(cfg).unwrap();
    let ev = phone.wait_event("REGISTER_FAIL", EVENT_TIMEOUT).unwrap();
    assert!(ev.param.contains("403"), "{:?}", ev.raw);
    registrar.finish().unwrap();
}

#[test]
fn baresip_calls_sipp_answer_and_hangs_up() {
    require_peers();
    let callee = sipp_uas("uas_answer.xml");
    let mut phone = Phone::start(PhoneConfig::new("1001")).unwrap();
    phone
        .dial(&format!("sip:1002@{}", callee.local_addr()))
        .unwrap();
    phone.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    phone.hangup().unwrap();
    phone.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    callee.finish().unwrap();
}

#[test]
fn baresip_hears_busy_from_sipp() {
    require_peers();
    let callee = sipp_uas("uas_busy.xml");
    let mut phone = Phone::start(PhoneConfig::new("1001")).unwrap();
    phone
        .dial(&format!("sip:1002@{}", callee.local_addr()))
        .unwrap();
    let ev = phone.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    assert!(ev.param.contains("486"), "{:?}", ev.raw);
    callee.finish().unwrap();
}

#[test]
fn baresip_cancels_a_ringing_sipp() {
    require_peers();
    let callee = sipp_uas("uas_ring_noanswer.xml");
    let mut phone = Phone::start(PhoneConfig::new("1001")).unwrap();
    phone
        .dial(&format!("sip:1002@{}", callee.local_addr()))
        .unwrap();
    phone.wait_event("CALL_RINGING", EVENT_TIMEOUT).unwrap();
    phone.hangup().unwrap();
    phone.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    // The UAS scenario completes only after CANCEL, 200, 487 and the ACK.
    callee.finish().unwrap();
}
