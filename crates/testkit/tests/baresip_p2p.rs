//! Real check of the harness: two baresip phones call each other directly (no server), each
//! sends its tone sequence, and each side's recording must hold exactly the other's tones.

use std::path::PathBuf;
use std::time::Duration;

use testkit::baresip::{AnswerMode, Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

fn tone_file(dir: &std::path::Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).unwrap();
    path
}

fn require_baresip() {
    if let Err(e) = testkit::require_binary("baresip") {
        panic!("{e}");
    }
}

/// Tone sequence length: 600 ms lead + 5 × 200 ms + 4 × 100 ms gaps + 400 ms tail.
const SEQUENCE: Duration = Duration::from_millis(2400);

#[test]
fn sequence_constant_matches_the_layout() {
    let ms = ToneLayout::default().sequence_ms(CALLER_TONES.len());
    assert_eq!(Duration::from_millis(u64::from(ms)), SEQUENCE);
}

#[test]
fn two_phones_call_directly_and_hear_each_other() {
    require_baresip();
    let audio = tempfile::tempdir().unwrap();
    let a_wav = tone_file(audio.path(), "a.wav", &CALLER_TONES);
    let b_wav = tone_file(audio.path(), "b.wav", &CALLEE_TONES);

    let mut a = Phone::start(PhoneConfig::new("alice").with_audio(&a_wav)).unwrap();
    let mut b = Phone::start(PhoneConfig::new("bob").with_audio(&b_wav)).unwrap();
    assert!(
        b.sip_port().abs_diff(a.sip_port()) >= 2,
        "TLS needs port + 1"
    );

    a.dial(&b.direct_uri()).unwrap();
    // Auto-answer emits no CALL_INCOMING: the call goes straight to established.
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    // Let both sequences play out completely (plus margin for media start-up).
    std::thread::sleep(SEQUENCE + Duration::from_millis(800));
    a.hangup().unwrap();
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();

    let a_heard = a.last_recording().unwrap();
    let b_heard = b.last_recording().unwrap();
    tone::check_recording(&a_heard, &CALLEE_TONES, &CALLER_TONES)
        .unwrap_or_else(|e| panic!("alice: {e}\n{}", a.logs()));
    tone::check_recording(&b_heard, &CALLER_TONES, &CALLEE_TONES)
        .unwrap_or_else(|e| panic!("bob: {e}\n{}", b.logs()));
}

#[test]
fn manual_answer_and_dtmf_events() {
    require_baresip();
    let mut a = Phone::start(PhoneConfig::new("carol")).unwrap();
    let mut cfg = PhoneConfig::new("dave");
    cfg.answer = AnswerMode::Manual;
    let mut b = Phone::start(cfg).unwrap();

    a.dial(&b.direct_uri()).unwrap();
    b.wait_event("CALL_INCOMING", EVENT_TIMEOUT).unwrap();
    a.wait_event("CALL_RINGING", EVENT_TIMEOUT).unwrap();
    assert!(
        !a.events().iter().any(|e| e.kind == "CALL_ESTABLISHED"),
        "manual answer must not answer by itself"
    );
    b.accept().unwrap();
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();

    a.send_dtmf("5").unwrap();
    let ev = b.wait_event("CALL_DTMF_START", EVENT_TIMEOUT).unwrap();
    assert_eq!(ev.param, "5");

    b.hangup().unwrap();
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
}

#[test]
fn dialling_nobody_fails_with_closed_call() {
    require_baresip();
    let mut a = Phone::start(PhoneConfig::new("erin")).unwrap();
    // A TCP port nobody listens on: the connection is refused at once (over UDP baresip would
    // wait for timer B, 32 s).
    let port = testkit::ports::free_port().unwrap();
    a.dial(&format!("sip:nobody@127.0.0.1:{port};transport=tcp"))
        .unwrap();
    let ev = a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    assert!(
        !ev.param.is_empty(),
        "closing reason expected: {:?}",
        ev.raw
    );
}

/// A network namespace of our own, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("testkit-{}", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name} failed (needs root and iproute2)");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[test]
fn phones_inside_a_network_namespace_are_driven_from_outside() {
    require_baresip();
    testkit::require_binary("ip").unwrap_or_else(|e| panic!("{e}"));
    let ns = Netns::new();
    let audio = tempfile::tempdir().unwrap();
    let a_wav = tone_file(audio.path(), "a.wav", &CALLER_TONES);
    let mut cfg = PhoneConfig::new("inside").with_audio(&a_wav);
    cfg.netns = Some(ns.0.clone());
    let mut a = Phone::start(cfg).unwrap();
    let mut cfg = PhoneConfig::new("neighbour");
    cfg.netns = Some(ns.0.clone());
    let mut b = Phone::start(cfg).unwrap();

    a.dial(&b.direct_uri()).unwrap();
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    std::thread::sleep(SEQUENCE + Duration::from_millis(800));
    b.hangup().unwrap();
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    tone::check_recording(&b.last_recording().unwrap(), &CALLER_TONES, &CALLEE_TONES)
        .unwrap_or_else(|e| panic!("neighbour: {e}\n{}", b.logs()));
    // The phones' SIP ports are free out here: they really bound inside the namespace.
    assert!(testkit::ports::is_free(a.sip_port()) && testkit::ports::is_free(b.sip_port()));
}

/// The NAT lab really creates the NAT problem a PBX must solve: a phone behind the NAT can call a
/// public phone (signalling follows Via/rport back through the NAT), the public phone hears it,
/// but media sent to the private address in the home phone's SDP never arrives.
#[test]
fn nat_lab_phone_behind_nat_is_heard_but_cannot_hear_without_help() {
    require_baresip();
    let lab = testkit::netns::NatLab::create().unwrap_or_else(|e| panic!("{e}"));
    let audio = tempfile::tempdir().unwrap();
    let home_wav = tone_file(audio.path(), "home.wav", &CALLER_TONES);
    let public_wav = tone_file(audio.path(), "public.wav", &CALLEE_TONES);

    let mut cfg = PhoneConfig::new("home").with_audio(&home_wav);
    cfg.netns = Some(lab.home.name().to_owned());
    cfg.ip = lab.home_ip();
    let mut home = Phone::start(cfg).unwrap();
    let mut cfg = PhoneConfig::new("public").with_audio(&public_wav);
    cfg.netns = Some(lab.public.name().to_owned());
    cfg.ip = lab.server_ip();
    let mut public = Phone::start(cfg).unwrap();

    home.dial(&public.direct_uri()).unwrap();
    home.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    public
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap();
    std::thread::sleep(SEQUENCE + Duration::from_millis(800));
    home.hangup().unwrap();
    home.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
    public.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();

    tone::check_recording(
        &public.last_recording().unwrap(),
        &CALLER_TONES,
        &CALLEE_TONES,
    )
    .unwrap_or_else(|e| panic!("public side: {e}\n{}", public.logs()));
    let home_heard = tone::detect_file(
        &home.last_recording().unwrap(),
        &[CALLER_TONES, CALLEE_TONES].concat(),
    )
    .unwrap();
    assert!(
        home_heard.is_empty(),
        "media reached the private address without a relay: {home_heard:?}"
    );
}

#[test]
fn phones_call_over_tcp() {
    require_baresip();
    let mut cfg = PhoneConfig::new("tcpa");
    cfg.transport = testkit::baresip::Transport::Tcp;
    let mut a = Phone::start(cfg).unwrap();
    let mut cfg = PhoneConfig::new("tcpb");
    cfg.transport = testkit::baresip::Transport::Tcp;
    let mut b = Phone::start(cfg).unwrap();
    assert!(b.direct_uri().ends_with(";transport=tcp"));
    a.dial(&b.direct_uri()).unwrap();
    let ev = b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    assert!(ev.peer_uri.contains("tcpa"), "{:?}", ev.raw);
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT).unwrap();
    b.hangup().unwrap();
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).unwrap();
}
