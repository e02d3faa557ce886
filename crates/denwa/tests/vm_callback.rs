//! Voicemail call back to an outside caller, end to end: sipp plays the provider on
//! 127.0.0.2 (an IP trunk). A call from the provider's address (caller `0312345678`, sipp
//! sending tones) reaches 1001's mailbox through a DID and leaves a message; 1001's baresip
//! phone dials `*97`, enters its PIN by RFC 4733, listens (1) and presses 8 (call back): the
//! call goes out through the trunk to the sipp UAS with the caller's number, the UAS answers,
//! and the call is recorded as 1001's outbound call over that trunk.

mod common;

use std::time::Duration;

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};
use testkit::sipp::Sipp;
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
const MAIN_NUMBER: &str = "0312340000";
const OUTSIDER: &str = "0312345678";
const PROVIDER_IP: &str = "127.0.0.2";

#[test]
fn voicemail_call_back_of_an_outside_caller_reaches_the_provider() {
    testkit::require_binary("sipp").unwrap_or_else(|e| panic!("{e}"));
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().expect("tmp");
    // The provider: answers the call-back.
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.local_ip = PROVIDER_IP.into();
    uas.service = Some("provider".into());
    uas.timeout = Duration::from_secs(150);
    uas.calls = 1;
    let uas = uas.spawn().expect("uas starts");
    // `wait_listening` probes 127.0.0.1: probe the provider's address instead.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind((PROVIDER_IP, uas.local_port())).is_ok() {
        assert!(
            std::time::Instant::now() < end,
            "the provider's sipp did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.cli_ok(&["voicemail", "pin", "1001", "--pin", "2580"]);
    // No OPTIONS health checks: the UAS scenario expects an INVITE first.
    d.cli_ok(&[
        "trunk",
        "add",
        "provider",
        "--host",
        &uas.local_addr(),
        "--ping-interval",
        "0",
    ]);
    d.cli_ok(&[
        "route",
        "add",
        "national",
        "--pattern",
        "0ZXXXXXXXX",
        "--trunk",
        "provider",
    ]);
    d.cli_ok(&["outbound", "set", "--main-number", MAIN_NUMBER]);
    d.cli_ok(&["did", "add", "any", "--to", "vm:1001"]);
    d.wait_until("trunks=1 routes=1 dids=1", Duration::from_secs(10), || {
        d.logs().contains("trunks=1 routes=1 dids=1")
    });

    // The outside caller leaves a message (the provider's address, no credentials).
    let samples = tone::tone_sequence(&CALLER_TONES, &ToneLayout::default());
    tone::write_ulaw_wav(&work.path().join("rtp_tones.wav"), &samples).expect("tones");
    let mut caller = Sipp::uac("uac_call_rtp.xml", &d.sip_addr());
    caller.local_ip = PROVIDER_IP.into();
    caller.inject_text = Some(format!("SEQUENTIAL\n{OUTSIDER};;\n"));
    caller.service = Some(MAIN_NUMBER.into());
    caller.workdir = Some(work.path().to_path_buf());
    // The greeting (error tones: no prompts installed in tests) takes about 7 s.
    caller.call_duration = Duration::from_secs(12);
    caller.timeout = Duration::from_secs(40);
    let out = caller.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the outside caller's call: {e}")
    });
    assert_eq!(out.successful, 1);
    let mut msgs: Vec<serde_json::Value> = Vec::new();
    d.wait_until("the message indexed", Duration::from_secs(10), || {
        msgs = serde_json::from_str(&d.cli_ok(&["voicemail", "list", "1001", "--json"]))
            .expect("json");
        msgs.len() == 1
    });
    assert_eq!(msgs[0]["caller"], OUTSIDER, "{}", msgs[0]);

    // The owner calls its box and calls the message's caller back.
    let wav = work.path().join("owner.wav");
    tone::write_tone_wav(&wav, &CALLEE_TONES, &ToneLayout::default(), 0).expect("wav");
    let cfg = PhoneConfig::new("1001")
        .registering(&d.sip_addr(), "alice-secret-b", 600)
        .with_audio(&wav);
    let mut owner = Phone::start(cfg).expect("baresip starts");
    owner
        .wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("registered");
    owner
        .dial(&format!("sip:*97@{}", d.sip_addr()))
        .expect("dial");
    owner
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("*97 answered");
    std::thread::sleep(Duration::from_millis(1000));
    for digit in ["2", "5", "8", "0", "#"] {
        owner.send_dtmf(digit).expect("DTMF");
        std::thread::sleep(Duration::from_millis(400));
    }
    d.wait_until("the PIN accepted", Duration::from_secs(10), || {
        d.logs().contains("voicemail menus: mailbox opened")
    });
    std::thread::sleep(Duration::from_millis(1000));
    owner.send_dtmf("1").expect("DTMF");
    std::thread::sleep(Duration::from_millis(1500));
    owner.send_dtmf("8").expect("DTMF");
    d.wait_until("the provider answered", Duration::from_secs(30), || {
        d.logs().contains("call answered (bridged)")
    });
    std::thread::sleep(Duration::from_millis(1000));
    owner.hangup().expect("hang up");
    owner
        .wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("closed");
    let mut cdr = None;
    d.wait_until("the outbound record", Duration::from_secs(10), || {
        cdr = d.cdrs().into_iter().find(|c| c["direction"] == "outbound");
        cdr.is_some()
    });
    let c = cdr.expect("record");
    assert_eq!(c["trunk"], "provider", "{c}");
    assert_eq!(c["sent_number"], OUTSIDER, "{c}");
    assert_eq!(c["caller_id"], MAIN_NUMBER, "{c}");
    assert_eq!(c["caller"], "1001", "{c}");
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
    let done = uas.finish().unwrap_or_else(|e| {
        d.print_logs();
        panic!("the provider's side: {e}")
    });
    assert_eq!(done.successful, 1, "the provider answered and got the BYE");
}
