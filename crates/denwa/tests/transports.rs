//! Transports and network segments: phones on TCP and UDP call each other; with two listen
//! addresses (two segments) each leg's Contact and SDP carry the address of its own segment.

mod common;

use std::time::Duration;

use common::{Denwa, Opts, sipp_user};
use testkit::baresip::{Phone, PhoneConfig, Transport};
use testkit::sipp::Sipp;
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn tcp_phone_calls_udp_phone() {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let d = Denwa::start();
    d.add_extension("1001", "tcp-secret-ab");
    d.add_extension("1002", "udp-secret-ac");
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = audio.path().join("a.wav");
    let b_wav = audio.path().join("b.wav");
    tone::write_tone_wav(&a_wav, &CALLER_TONES, &ToneLayout::default(), 0).expect("wav");
    tone::write_tone_wav(&b_wav, &CALLEE_TONES, &ToneLayout::default(), 0).expect("wav");
    let mut a_cfg = PhoneConfig::new("1001")
        .registering(&d.sip_addr(), "tcp-secret-ab", 600)
        .with_audio(&a_wav);
    a_cfg.transport = Transport::Tcp;
    let mut a = Phone::start(a_cfg).expect("tcp phone");
    let mut b = Phone::start(
        PhoneConfig::new("1002")
            .registering(&d.sip_addr(), "udp-secret-ac", 600)
            .with_audio(&b_wav),
    )
    .expect("udp phone");
    a.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("TCP registration: {e}")
        });
    b.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("UDP registration");
    let regs = d.registrations();
    assert!(regs.iter().any(|r| r["transport"] == "tcp"), "{regs:?}");

    // UDP phone calls the TCP phone: the INVITE must go down the phone's own TCP connection.
    b.dial(&format!("sip:1001@{}", d.sip_addr())).expect("dial");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("call to the TCP phone: {e}")
        });
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("TCP phone answered");
    std::thread::sleep(Duration::from_millis(
        u64::from(ToneLayout::default().sequence_ms(5)) + 1000,
    ));
    a.hangup().expect("TCP phone hangs up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    tone::check_recording(
        &a.last_recording().expect("rec"),
        &CALLEE_TONES,
        &CALLER_TONES,
    )
    .expect("TCP phone heard");
    tone::check_recording(
        &b.last_recording().expect("rec"),
        &CALLER_TONES,
        &CALLEE_TONES,
    )
    .expect("UDP phone heard");
    let mut cdrs = Vec::new();
    d.wait_until("record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["hangup_by"], "callee");
}

#[test]
fn each_segment_gets_its_own_address_in_contact_and_sdp() {
    // 127.0.0.1 and 127.0.0.2 stand for two network segments (both reach lo on Linux).
    let port2 = testkit::ports::free_port().expect("port");
    let d = Denwa::start_with(Opts {
        extra: vec!["--sip-listen".into(), format!("127.0.0.2:{port2}")],
        ..Default::default()
    });
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    let seg2 = format!("127.0.0.2:{port2}");

    // The callee lives on segment 2 and registers there.
    let callee_port = testkit::ports::free_port().expect("port");
    let mut reg = Sipp::uac("register.xml", &seg2);
    reg.local_ip = "127.0.0.2".into();
    reg.local_port = Some(callee_port);
    reg.inject_text = Some(sipp_user("1002", "secret-baac"));
    reg.run().expect("register on segment 2");
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.local_ip = "127.0.0.2".into();
    uas.local_port = Some(callee_port);
    uas.service = Some("1002".into());
    let callee = uas.spawn().expect("uas");
    // sipp is listening once its port on 127.0.0.2 is taken.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(("127.0.0.2", callee_port)).is_ok() {
        assert!(
            std::time::Instant::now() < end,
            "sipp did not bind 127.0.0.2:{callee_port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The caller is on segment 1.
    let mut uac = Sipp::uac("uac_call.xml", &d.sip_addr());
    uac.inject_text = Some(sipp_user("1001", "secret-baab"));
    uac.service = Some("1002".into());
    let caller_out = uac.run().expect("call across segments");
    let callee_out = callee.finish().expect("callee");

    let callee_log =
        std::fs::read_to_string(callee_out.logs.path().join("messages.log")).expect("callee trace");
    let caller_log =
        std::fs::read_to_string(caller_out.logs.path().join("messages.log")).expect("caller trace");
    let invite = callee_log
        .split("INVITE sip:")
        .nth(1)
        .expect("callee got an INVITE");
    assert!(
        invite.contains("c=IN IP4 127.0.0.2"),
        "callee SDP must carry segment 2's address:\n{invite}"
    );
    assert!(
        invite.contains(&format!("@127.0.0.2:{port2}")),
        "callee Contact must be on segment 2:\n{invite}"
    );
    let ok = caller_log
        .split("SIP/2.0 200 OK")
        .nth(1)
        .expect("caller got 200");
    assert!(
        ok.contains("c=IN IP4 127.0.0.1"),
        "caller SDP must carry segment 1's address:\n{ok}"
    );
    assert!(
        !ok.contains("127.0.0.2"),
        "segment 2's address leaked to segment 1:\n{ok}"
    );
}
