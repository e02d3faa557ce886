//! Every scenario in tests/sipp/ run against another sipp (no PBX), so the XML is known to work
//! before the PBX exists: UAC scenarios against the matching UAS scenarios and self-test peers.

use std::time::Duration;

use testkit::sipp::{RunningSipp, Sipp, SippOutcome, SippTransport};

const USERS: &str = "users.csv";

fn require_sipp() {
    if let Err(e) = testkit::require_binary("sipp") {
        panic!("{e}");
    }
}

fn start_uas(scenario: &str) -> RunningSipp {
    let mut uas = Sipp::uas(scenario);
    uas.service = Some("1002".into());
    uas.timeout = Duration::from_secs(30);
    let mut running = uas.spawn().unwrap();
    running.wait_listening(Duration::from_secs(10)).unwrap();
    running
}

fn uac(scenario: &str, uas: &RunningSipp) -> Sipp {
    let mut s = Sipp::uac(scenario, &uas.local_addr());
    s.inject = Some(USERS.into());
    s.service = Some("1002".into());
    s.timeout = Duration::from_secs(30);
    s
}

/// Runs `uac_xml` against a sipp running `uas_xml`; both must complete their call.
fn pair(uas_xml: &str, uac_xml: &str) -> (SippOutcome, SippOutcome) {
    require_sipp();
    let uas = start_uas(uas_xml);
    let client = uac(uac_xml, &uas).run().unwrap();
    let server = uas.finish().unwrap();
    assert_eq!((client.successful, client.failed), (1, 0));
    assert_eq!((server.successful, server.failed), (1, 0));
    (client, server)
}

#[test]
fn register_auth_against_challenging_registrar() {
    pair("peer_registrar.xml", "register_auth.xml");
}

#[test]
fn register_and_stay_against_challenging_registrar() {
    pair("peer_registrar_once.xml", "register.xml");
}

#[test]
fn register_wrong_password_accepts_403() {
    pair("peer_registrar_refuse.xml", "register_wrong_password.xml");
}

#[test]
fn register_wrong_password_fails_when_registrar_accepts() {
    require_sipp();
    // A registrar that accepts anything must make the wrong-password scenario fail.
    let uas = start_uas("peer_registrar.xml");
    let out = uac("register_wrong_password.xml", &uas)
        .run_unchecked()
        .unwrap();
    assert_eq!(out.successful, 0);
    assert_eq!(out.failed, 1);
    assert_ne!(out.exit_code, Some(0));
    drop(uas);
}

#[test]
fn call_answered_and_hung_up() {
    pair("uas_answer.xml", "uac_call.xml");
}

#[test]
fn hold_and_resume_with_reinvites() {
    pair("uas_answer.xml", "uac_reinvite_hold.xml");
}

#[test]
fn cancel_while_ringing() {
    pair("uas_ring_noanswer.xml", "uac_cancel.xml");
}

#[test]
fn unknown_number_gets_404() {
    pair("uas_not_found.xml", "uac_unknown_number.xml");
}

#[test]
fn unacknowledged_200_is_retransmitted() {
    let (client, _) = pair("uas_answer.xml", "uac_no_ack.xml");
    let retrans = client.message_count("200", "_Retrans");
    assert!(
        retrans >= 1,
        "no 200 retransmission seen: {:?}",
        client.counts
    );
}

#[test]
fn busy_callee_fails_the_call_with_a_clear_error() {
    require_sipp();
    let uas = start_uas("uas_busy.xml");
    let err = uac("uac_call.xml", &uas).run().unwrap_err().to_string();
    assert!(err.contains("0 successful and 1 failed"), "{err}");
    // sipp's error log names the unexpected 486.
    assert!(err.contains("486"), "{err}");
    let server = uas.finish().unwrap();
    assert_eq!(server.successful, 1);
}

#[test]
fn call_answers_a_407_challenge_with_credentials_from_csv() {
    pair("peer_challenge_answer.xml", "uac_call.xml");
}

#[test]
fn call_over_tcp() {
    require_sipp();
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.transport = SippTransport::Tcp;
    uas.service = Some("1002".into());
    let mut uas = uas.spawn().unwrap();
    uas.wait_listening(Duration::from_secs(10)).unwrap();
    let mut client = uac("uac_call.xml", &uas);
    client.transport = SippTransport::Tcp;
    let out = client.run().unwrap();
    assert_eq!(out.successful, 1);
    uas.finish().unwrap();
}

#[test]
fn several_calls_in_one_run_are_counted() {
    require_sipp();
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.calls = 5;
    uas.service = Some("1002".into());
    let mut uas = uas.spawn().unwrap();
    uas.wait_listening(Duration::from_secs(10)).unwrap();
    let mut client = uac("uac_call.xml", &uas);
    client.calls = 5;
    client.rate = Some(10);
    client.call_duration = Duration::from_millis(100);
    let out = client.run().unwrap();
    assert_eq!((out.successful, out.failed), (5, 0));
    assert_eq!(out.stat("OutgoingCall(C)"), 5);
    assert_eq!(uas.finish().unwrap().successful, 5);
}

#[test]
fn missing_scenario_is_a_setup_error() {
    require_sipp();
    let err = Sipp::uac("no_such_scenario.xml", "127.0.0.1:5060")
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn unanswered_call_ends_at_the_timeout_as_failed() {
    require_sipp();
    // Nobody listens: the INVITE is retransmitted until sipp's global timeout ends the run.
    let port = testkit::ports::free_port().unwrap();
    let mut client = Sipp::uac("uac_call.xml", &format!("127.0.0.1:{port}"));
    client.inject = Some(USERS.into());
    client.service = Some("1002".into());
    client.timeout = Duration::from_secs(3);
    let err = client.run().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("0 successful"), "{text}");
}

#[test]
fn call_through_the_nat_lab_from_home_to_public() {
    require_sipp();
    let lab = testkit::netns::NatLab::create().unwrap_or_else(|e| panic!("{e}"));
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.netns = Some(lab.public.name().to_owned());
    uas.local_ip = lab.server_ip().to_string();
    uas.service = Some("1002".into());
    let mut uas = uas.spawn().unwrap();
    uas.wait_listening(Duration::from_secs(10)).unwrap();
    let mut client = uac("uac_call.xml", &uas);
    client.netns = Some(lab.home.name().to_owned());
    client.local_ip = lab.home_ip().to_string();
    let out = client.run().unwrap();
    assert_eq!(out.successful, 1);
    uas.finish().unwrap();
}

#[test]
fn inline_csv_injection_reaches_the_messages() {
    require_sipp();
    let uas = start_uas("peer_registrar.xml");
    let mut client = uac("register_auth.xml", &uas);
    client.inject = None;
    client.inject_text = Some(testkit::sipp::auth_csv([("2042", "pw2042")]));
    let out = client.run().unwrap();
    let messages = std::fs::read_to_string(out.logs.path().join("messages.log")).unwrap();
    assert!(messages.contains("From: <sip:2042@"), "{messages}");
    assert!(messages.contains("username=\"2042\""), "{messages}");
    uas.finish().unwrap();
}

/// An OPTIONS keep-alive as a PBX sends one to a phone behind NAT; the answer's status line.
fn keepalive(to: &str, n: u32) -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = s.local_addr().unwrap().port();
    let req = format!(
        "OPTIONS sip:1002@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ka-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:denwa@127.0.0.1>;tag=ka{n}\r\n\
         To: <sip:1002@{to}>\r\n\
         Call-ID: keepalive-{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    s.send_to(req.as_bytes(), to).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = s.recv_from(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    text.lines().next().unwrap_or_default().to_string()
}

/// `uas_phone_nat.xml` listening, with room for keep-alives (it stops itself after its call).
fn start_nat_phone() -> RunningSipp {
    require_sipp();
    let mut uas = Sipp::uas("uas_phone_nat.xml");
    uas.service = Some("1002".into());
    uas.timeout = Duration::from_secs(30);
    uas.calls = 100;
    let mut running = uas.spawn().unwrap();
    running.wait_listening(Duration::from_secs(10)).unwrap();
    running
}

#[test]
fn the_nat_phone_answers_keepalives_then_takes_its_call_and_stops() {
    let running = start_nat_phone();
    // Keep-alives before the INVITE: a plain answering UAS took the first for its call.
    for n in 0..2 {
        assert_eq!(keepalive(&running.local_addr(), n), "SIP/2.0 200 OK");
    }
    let client = uac("uac_call.xml", &running).run().unwrap();
    assert_eq!((client.successful, client.failed), (1, 0));
    // It stops by itself after the call (not at -m): two keep-alives and the call.
    let server = running.finish_at_least(1).unwrap();
    assert_eq!((server.successful, server.failed), (3, 0));
}

#[test]
fn the_nat_phone_without_keepalives_takes_its_call_and_stops() {
    let running = start_nat_phone();
    let client = uac("uac_call.xml", &running).run().unwrap();
    assert_eq!((client.successful, client.failed), (1, 0));
    let server = running.finish_at_least(1).unwrap();
    assert_eq!((server.successful, server.failed), (1, 0));
}
