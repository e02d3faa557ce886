//! Call and registrar behaviour beyond the basic call: parallel ringing, no-answer timeout,
//! media timeout, brute-force throttling, NAT keep-alives, OPTIONS and unsupported methods.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Denwa, Opts, sipp_user};
use sip::auth::{ChallengeValue, DigestClient, DigestRequest, parse_challenges};
use testkit::sipp::{RunningSipp, Sipp};

fn register_at(d: &Denwa, user: &str, password: &str, port: u16) {
    let mut s = Sipp::uac("register.xml", &d.sip_addr());
    s.local_port = Some(port);
    s.inject_text = Some(sipp_user(user, password));
    s.run().expect("registers");
}

fn uas(scenario: &str, port: u16) -> RunningSipp {
    let mut s = Sipp::uas(scenario);
    s.local_port = Some(port);
    s.service = Some("1002".into());
    s.timeout = Duration::from_secs(90);
    let mut r = s.spawn().expect("uas");
    r.wait_listening(Duration::from_secs(10))
        .expect("uas listening");
    r
}

fn caller(d: &Denwa, scenario: &str) -> Sipp {
    let mut s = Sipp::uac(scenario, &d.sip_addr());
    s.inject_text = Some(sipp_user("1001", "secret-baab"));
    s.service = Some("1002".into());
    s.timeout = Duration::from_secs(90);
    s
}

fn two() -> Denwa {
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    d
}

fn first_cdr(d: &Denwa) -> serde_json::Value {
    let mut cdrs = Vec::new();
    d.wait_until("a call record", Duration::from_secs(15), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    cdrs.remove(0)
}

#[test]
fn all_contacts_ring_and_the_first_answer_wins() {
    let d = two();
    let p1 = testkit::ports::free_port().expect("port");
    let p2 = testkit::ports::free_port().expect("port");
    register_at(&d, "1002", "secret-baac", p1);
    register_at(&d, "1002", "secret-baac", p2);
    assert_eq!(d.registrations().len(), 2);
    let ringing = uas("uas_ring_noanswer.xml", p1);
    let answering = uas("uas_answer.xml", p2);
    caller(&d, "uac_call.xml")
        .run()
        .expect("call answered by the second contact");
    answering.finish().expect("answering phone saw the call");
    // The phone that only rang was cancelled (200 to CANCEL, 487 to INVITE).
    ringing.finish().expect("ringing phone was cancelled");
    assert_eq!(first_cdr(&d)["disposition"], "ANSWERED");
}

#[test]
fn unanswered_call_times_out_with_480_and_no_answer_record() {
    let d = two();
    d.cli_ok(&["setting", "set", "calls.no_answer_timeout_s", "5"]);
    let p = testkit::ports::free_port().expect("port");
    register_at(&d, "1002", "secret-baac", p);
    let ringing = uas("uas_ring_noanswer.xml", p);
    // The change reaches the running server without a restart.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let out = caller(&d, "uac_call.xml")
        .run_unchecked()
        .expect("sipp runs");
    assert_eq!(out.successful, 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the 5 s no-answer setting was not applied"
    );
    ringing.finish().expect("callee was cancelled");
    let c = first_cdr(&d);
    assert_eq!(c["disposition"], "NO ANSWER");
    assert_eq!(c["hangup_by"], "system");
}

#[test]
fn silent_call_is_hung_up_after_the_media_timeout() {
    let mut d = two();
    d.cli_ok(&["setting", "set", "calls.media_timeout_s", "5"]);
    d.terminate();
    d.spawn();
    let p = testkit::ports::free_port().expect("port");
    register_at(&d, "1002", "secret-baac", p);
    let callee = uas("uas_answer.xml", p);
    // Neither side sends RTP: Denwa must end the call and BYE both sides.
    caller(&d, "uac_call_wait_bye.xml")
        .run()
        .expect("caller got Denwa's BYE");
    callee.finish().expect("callee got Denwa's BYE");
    let c = first_cdr(&d);
    assert_eq!(c["disposition"], "ANSWERED");
    assert_eq!(c["hangup_by"], "system");
    assert_eq!(c["hangup_cause"], "media timeout");
}

#[test]
fn repeated_wrong_passwords_get_the_source_ignored() {
    let d = two();
    let port = testkit::ports::free_port().expect("port");
    let mut bad = Sipp::uac("register_wrong_password.xml", &d.sip_addr());
    bad.local_port = Some(port);
    bad.calls = 10;
    bad.rate = Some(50);
    bad.inject_text = Some(sipp_user("1001", "wrong-password"));
    let _ = bad.run_unchecked().expect("sipp runs");
    d.wait_until("ban logged", Duration::from_secs(5), || {
        d.logs().contains("banned")
    });
    // Now even the right password from that address gets no answer.
    let mut good = Sipp::uac("register_auth.xml", &d.sip_addr());
    good.local_port = Some(port);
    good.timeout = Duration::from_secs(8);
    good.recv_timeout = Some(Duration::from_secs(3));
    good.inject_text = Some(sipp_user("1001", "secret-baab"));
    let out = good.run_unchecked().expect("sipp runs");
    assert_eq!(out.successful, 0, "a banned source was served");
    assert!(d.registrations().is_empty());
    // Other sources are not affected.
    let mut other = Sipp::uac("register_auth.xml", &d.sip_addr());
    other.inject_text = Some(sipp_user("1001", "secret-baab"));
    other.local_ip = "127.0.0.3".into();
    other.run().expect("another address still registers");
}

/// Sends a REGISTER from `sock` (answering the digest challenge) and returns the final response
/// and the authenticated REGISTER as sent (to replay it; empty when there was no challenge).
/// `contact` is the Contact header value; `expires` goes into an Expires header.
fn register_raw(
    sock: &UdpSocket,
    server: &str,
    user: &str,
    password: &str,
    contact: &str,
    expires: u32,
    cseq_base: u32,
) -> (String, String) {
    let me = sock.local_addr().expect("addr");
    let build = |cseq: u32, auth: Option<String>| {
        let mut m = format!(
            "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bK-r{cseq}-{};rport\r\n\
             From: <sip:{user}@{server}>;tag=reg1\r\nTo: <sip:{user}@{server}>\r\nCall-ID: raw-reg-{}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n",
            me.port(),
            me.port()
        );
        if let Some(a) = auth {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m
    };
    let mut buf = [0u8; 8192];
    sock.send_to(build(cseq_base, None).as_bytes(), server)
        .expect("send");
    let (n, _) = sock.recv_from(&mut buf).expect("first answer");
    let resp = String::from_utf8_lossy(&buf[..n]).to_string();
    if !resp.starts_with("SIP/2.0 401") {
        // Refused before authentication (e.g. a malformed request).
        return (resp, String::new());
    }
    let chal_line = resp
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .expect("challenge");
    let challenges: Vec<_> =
        parse_challenges(chal_line.trim_start_matches("WWW-Authenticate:").trim())
            .expect("parse")
            .into_iter()
            .filter_map(|c| match c {
                ChallengeValue::Digest(c) => Some(c),
                _ => None,
            })
            .collect();
    let uri = format!("sip:{server}");
    let creds = DigestClient::new(user, password)
        .respond(
            &challenges,
            &DigestRequest {
                method: "REGISTER",
                uri: &uri,
                body: b"",
            },
            &mut rand::thread_rng(),
        )
        .expect("credentials");
    let authed = build(cseq_base + 1, Some(creds.to_string()));
    sock.send_to(authed.as_bytes(), server).expect("send");
    let (n, _) = sock.recv_from(&mut buf).expect("final answer");
    (String::from_utf8_lossy(&buf[..n]).to_string(), authed)
}

/// A replayed nonce count with the right password (a retransmission that outlived its
/// transaction, or a captured request sent again) gets a fresh `stale=true` challenge, never a
/// 200, and does not count towards the brute-force ban.
#[test]
fn replayed_nonce_count_is_challenged_not_banned() {
    let d = two();
    let server = d.sip_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let contact = format!("<sip:1001@{}>", sock.local_addr().expect("addr"));
    let (ok, authed) = register_raw(&sock, &server, "1001", "secret-baab", &contact, 60, 1);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    // More replays than the ban threshold (10 failures), each a new transaction (new branch).
    let mut buf = [0u8; 8192];
    for i in 0..12 {
        let replay = authed.replacen(
            "branch=z9hG4bK-r2-",
            &format!("branch=z9hG4bK-replay{i}-"),
            1,
        );
        assert_ne!(replay, authed);
        sock.send_to(replay.as_bytes(), &server).expect("send");
        let (n, _) = sock.recv_from(&mut buf).expect("an answer, not a ban");
        let resp = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(resp.starts_with("SIP/2.0 401 "), "replay {i}: {resp}");
        assert!(resp.contains("stale=true"), "replay {i}: {resp}");
    }
    assert!(
        !d.logs().contains("banned"),
        "a replay is not a password guess"
    );
    // The phone itself still registers from the same address.
    let (again, _) = register_raw(&sock, &server, "1001", "secret-baab", &contact, 60, 20);
    assert!(again.starts_with("SIP/2.0 200 "), "{again}");
}

/// A REGISTER whose Contact is not where the packets come from (a phone behind NAT).
fn register_behind_nat(sock: &UdpSocket, server: &str, user: &str, password: &str) {
    let (resp, _) = register_raw(
        sock,
        server,
        user,
        password,
        &format!("<sip:{user}@192.0.2.77:5060>"),
        600,
        1,
    );
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
}

#[test]
fn registrar_min_expires_refusals_and_wildcard_removal() {
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.cli_ok(&["setting", "set", "registrar.min_expires_s", "10"]);
    d.cli_ok(&["setting", "set", "nat.keepalive_interval_s", "0"]);
    std::thread::sleep(Duration::from_millis(1000));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let server = d.sip_addr();
    // Every REGISTER here is 1001's, from this socket: (Contact value, Expires, CSeq base).
    let reg = |contact: &str, expires: u32, cseq: u32| {
        register_raw(
            &sock,
            &server,
            "1001",
            "secret-baab",
            contact,
            expires,
            cseq,
        )
        .0
    };
    // Too short: 423 with Min-Expires.
    let r = reg("<sip:1001@192.0.2.1:5070>", 5, 21);
    assert!(
        r.starts_with("SIP/2.0 423") && r.contains("Min-Expires: 10"),
        "{r}"
    );
    // Two contacts, both listed in the 200.
    let r = reg("<sip:1001@192.0.2.1:5070>", 3600, 23);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let r = reg("<sip:1001@192.0.2.2:5070>;expires=10", 3600, 25);
    assert!(
        r.starts_with("SIP/2.0 200") && r.matches("Contact:").count() == 2,
        "{r}"
    );
    assert_eq!(d.registrations().len(), 2);
    let cseqs = |d: &Denwa| {
        let mut v: Vec<(String, i64)> = d
            .registrations()
            .iter()
            .map(|r| {
                (
                    r["contact_uri"].as_str().unwrap_or_default().to_string(),
                    r["cseq"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = cseqs(&d);
    // (CSeqs leave room below: each REGISTER's branch is made from its CSeq.)
    // A refused REGISTER changes nothing: an older CSeq of the same Call-ID (500), and a 423
    // for one contact of two (the other, acceptable one is not added either).
    let r = reg("<sip:1001@192.0.2.1:5070>", 60, 2);
    assert!(r.starts_with("SIP/2.0 500"), "{r}");
    let r = reg(
        "<sip:1001@192.0.2.3:5070>, <sip:1001@192.0.2.1:5070>;expires=5",
        3600,
        31,
    );
    assert!(r.starts_with("SIP/2.0 423"), "{r}");
    assert_eq!(cseqs(&d), before, "refusals left the bindings as they were");
    // Expiry by itself is timing: the engine's tests cover it on a fake clock
    // (crates/engine/tests/registrar.rs), in microseconds instead of a 10 s wait here.
    // Contact: * with Expires: 0 removes everything; * with a non-zero Expires is refused.
    let r = reg("*", 60, 37);
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    let r = reg("*", 0, 39);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(d.registrations().is_empty());
}

#[test]
fn nat_keepalive_probes_and_drops_a_dead_binding() {
    let d = Denwa::start_with(Opts {
        extra: vec!["--sip-t1-ms".into(), "50".into()],
        ..Default::default()
    });
    d.add_extension("1001", "secret-baab");
    d.cli_ok(&["setting", "set", "nat.keepalive_interval_s", "1"]);
    std::thread::sleep(Duration::from_millis(1000));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    register_behind_nat(&sock, &d.sip_addr(), "1001", "secret-baab");
    let regs = d.registrations();
    assert_eq!(regs.len(), 1);
    assert_eq!(
        regs[0]["received_addr"],
        sock.local_addr().expect("addr").to_string()
    );
    // The keep-alive goes to the NAT address the REGISTER came from, not to the Contact.
    let mut buf = [0u8; 8192];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("a keep-alive OPTIONS arrives");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("OPTIONS sip:1001@192.0.2.77"));
    // Unanswered probes: marked unreachable, then dropped.
    d.wait_until(
        "binding marked unreachable",
        Duration::from_secs(20),
        || {
            d.registrations()
                .first()
                .map(|r| r["flags"] == 1)
                .unwrap_or(false)
        },
    );
    d.wait_until("dead binding dropped", Duration::from_secs(40), || {
        d.registrations().is_empty()
    });
}

#[test]
fn options_405_and_501() {
    let d = Denwa::start();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let req = |method: &str, n: u32| {
        format!(
            "{method} sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-m{n};rport\r\n\
             From: <sip:probe@127.0.0.1>;tag=t{n}\r\nTo: <sip:{}>\r\nCall-ID: m-{n}-{port}\r\nCSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            d.sip_addr(),
            d.sip_addr()
        )
    };
    let mut buf = [0u8; 8192];
    let mut ask = |m: &str, n: u32| {
        sock.send_to(req(m, n).as_bytes(), d.sip_addr())
            .expect("send");
        let (len, _) = sock.recv_from(&mut buf).expect("answer");
        String::from_utf8_lossy(&buf[..len]).to_string()
    };
    let r = ask("OPTIONS", 1);
    assert!(r.starts_with("SIP/2.0 200") && r.contains("Allow:"), "{r}");
    let r = ask("PUBLISH", 2);
    assert!(r.starts_with("SIP/2.0 405") && r.contains("Allow:"), "{r}");
    let r = ask("FOOBAR", 3);
    assert!(r.starts_with("SIP/2.0 501"), "{r}");
    let r = ask("BYE", 4);
    assert!(r.starts_with("SIP/2.0 481"), "{r}");
}
