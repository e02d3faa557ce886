//! Outside lines against software we did not write: real Kamailio plays the carrier
//! (`testkit::carrier`: a registration provider with digest auth, or an IP-only SBC), baresip
//! and sipp play the phones on both sides. The carrier listens on 127.0.0.2/127.0.0.3 so that
//! Denwa tells it from the phones (127.0.0.1) by source address, as it does on a real network.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use common::{Denwa, sipp_user};
use testkit::baresip::{Phone, PhoneConfig, hang_up_and_check_tones};
use testkit::carrier::{Carrier, CarrierConfig, CarrierInvite, Direction};
use testkit::sipp::{RunningSipp, Sipp};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
const ACCOUNT: &str = "0312340000";
const ACCOUNT_PW: &str = "carrier-line-pw-9";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn tone_file(dir: &std::path::Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).expect("tone file");
    path
}

/// An extension's softphone, registered to Denwa.
fn extension_phone(d: &Denwa, user: &str, password: &str, wav: &std::path::Path) -> Phone {
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

fn last_cdr(d: &Denwa, what: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut found = None;
    d.wait_until("the call record", Duration::from_secs(10), || {
        found = d.cdrs().into_iter().find(|c| what(c));
        found.is_some()
    });
    found.expect("record")
}

fn trunk_status(d: &Denwa, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["trunk", "status", "--json"])).expect("status json");
    v.as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == name))
        .and_then(|t| t["nodes"].get(0))
        .map(|n| n["status"].clone())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until the running server has loaded this many trunks, routes and inbound routes.
fn wait_loaded(d: &Denwa, trunks: usize, routes: usize, dids: usize) {
    let line = format!("trunks={trunks} routes={routes} dids={dids}");
    d.wait_until(&line, Duration::from_secs(10), || d.logs().contains(&line));
}

/// Digit strings of the Japanese plan used below.
fn japanese_plan(d: &Denwa, trunks: &[&str]) {
    let mut args = vec!["route", "add", "jp-national", "--pattern", "0|0ZXXXXXXXX"];
    for t in trunks {
        args.extend(["--trunk", t]);
    }
    d.cli_ok(&args);
    let mut args = vec![
        "route",
        "add",
        "jp-intl",
        "--pattern",
        "0|010.",
        "--cos",
        "international",
    ];
    for t in trunks {
        args.extend(["--trunk", t]);
    }
    d.cli_ok(&args);
    d.cli_ok(&[
        "outbound",
        "set",
        "--main-number",
        ACCOUNT,
        "--emergency",
        "110,118,119",
    ]);
}

#[test]
fn registration_trunk_carries_calls_both_ways_with_audio() {
    let d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    let audio = tempfile::tempdir().expect("tmp");
    let ext_wav = tone_file(audio.path(), "ext.wav", &CALLER_TONES);
    let pstn_wav = tone_file(audio.path(), "pstn.wav", &CALLEE_TONES);
    // The public phone: an unregistered baresip the carrier sends calls to.
    let mut pstn =
        Phone::start(PhoneConfig::new("0399998888").with_audio(&pstn_wav)).expect("baresip starts");
    let pstn_addr = SocketAddr::new(pstn.ip(), pstn.sip_port());
    let carrier = Carrier::start(
        CarrierConfig::registration([(ACCOUNT, ACCOUNT_PW)])
            .with_did(ACCOUNT, ACCOUNT)
            .with_did("0312349*", ACCOUNT)
            .with_pstn(pstn_addr)
            .bound_to(ip("127.0.0.2")),
    )
    .expect("carrier starts");
    d.cli_ok(&[
        "trunk",
        "add",
        "carrier",
        "--host",
        &carrier.host_port(),
        "--username",
        ACCOUNT,
        "--password",
        ACCOUNT_PW,
        "--register",
        "--expires",
        "120",
    ]);
    japanese_plan(&d, &["carrier"]);
    d.cli_ok(&["did", "add", ACCOUNT, "--to", "ext:1001"]);
    d.add_extension("1002", "bob-secret-cc");
    d.cli_ok(&["did", "add", "any", "--to", "ext:1002"]);
    wait_loaded(&d, 1, 2, 2);
    carrier
        .wait_registered(ACCOUNT, EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("Denwa did not register to the carrier: {e}")
        });
    d.wait_until("trunk state stored", Duration::from_secs(10), || {
        trunk_status(&d, "carrier")["registration"] == "registered"
    });
    let mut ext = extension_phone(&d, "1001", "alice-secret-b", &ext_wav);

    // Outbound: 0 + a national number, the prefix stripped, the main number as caller ID.
    ext.dial(&format!("sip:00399998888@{}", d.sip_addr()))
        .expect("dial");
    for p in [&mut ext, &mut pstn] {
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!(
                    "{}: outbound call not established: {e}\n{}",
                    p.name(),
                    carrier.log()
                )
            });
    }
    let seq = ToneLayout::default().sequence_ms(CALLER_TONES.len());
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    hang_up_and_check_tones(
        &mut ext,
        &mut pstn,
        &CALLER_TONES,
        &CALLEE_TONES,
        EVENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("audio through the trunk: {e}"));
    let inv: CarrierInvite = carrier
        .wait_invite(EVENT_TIMEOUT, |i| {
            i.direction == Direction::Outbound && i.decision == "forward"
        })
        .expect("the carrier relayed the call");
    assert_eq!(
        inv.request_user.as_deref(),
        Some("0399998888"),
        "prefix stripped"
    );
    assert_eq!(inv.from_user.as_deref(), Some(ACCOUNT), "caller ID");
    assert_eq!(
        inv.auth_user.as_deref(),
        Some(ACCOUNT),
        "authenticated as the line"
    );
    let c = last_cdr(&d, |c| c["direction"] == "outbound");
    assert_eq!(c["trunk"], "carrier");
    assert_eq!(c["dialled"], "00399998888");
    assert_eq!(c["sent_number"], "0399998888");
    assert_eq!(c["caller_id"], ACCOUNT);
    assert_eq!(c["disposition"], "ANSWERED");

    // Inbound: the public phone calls the DID; the carrier sends it to Denwa's registration.
    ext.clear_events();
    pstn.clear_events();
    pstn.dial(&carrier.uri(ACCOUNT)).expect("dial the DID");
    for p in [&mut pstn, &mut ext] {
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!(
                    "{}: inbound call not established: {e}\n{}",
                    p.name(),
                    carrier.log()
                )
            });
    }
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    hang_up_and_check_tones(
        &mut pstn,
        &mut ext,
        &CALLEE_TONES,
        &CALLER_TONES,
        EVENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("audio of the inbound call: {e}"));
    let c = last_cdr(&d, |c| c["direction"] == "inbound");
    assert_eq!(c["did"], ACCOUNT);
    // A DID no inbound route names goes to the catch-all (1002).
    let mut other = extension_phone(&d, "1002", "bob-secret-cc", &ext_wav);
    pstn.clear_events();
    pstn.dial(&carrier.uri("0312349999"))
        .expect("dial another DID");
    other
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("catch-all: {e}\n{}", carrier.log())
        });
    pstn.hangup().expect("hang up");
    other
        .wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("closed");
    let c2 = last_cdr(&d, |c| c["did"] == "0312349999");
    assert_eq!(c2["callee"], "0312349999");
    assert_eq!(c["trunk"], "carrier");
    assert_eq!(c["callee"], ACCOUNT);
    assert_eq!(c["disposition"], "ANSWERED");
}

#[test]
fn registration_recovers_after_a_carrier_restart_and_wrong_credentials_show_the_answer() {
    let d = Denwa::start();
    let mut cfg =
        CarrierConfig::registration([(ACCOUNT, ACCOUNT_PW), ("0312340001", "right-pw-1")])
            .bound_to(ip("127.0.0.2"));
    // Short registrations: Denwa refreshes every few seconds, as a test can wait for.
    cfg.max_expires = 10;
    let mut carrier = Carrier::start(cfg).expect("carrier starts");
    d.cli_ok(&[
        "trunk",
        "add",
        "good",
        "--host",
        &carrier.host_port(),
        "--username",
        ACCOUNT,
        "--password",
        ACCOUNT_PW,
        "--register",
        "--expires",
        "60",
    ]);
    d.cli_ok(&[
        "trunk",
        "add",
        "bad",
        "--host",
        &carrier.host_port(),
        "--username",
        "0312340001",
        "--password",
        "not-the-password",
        "--register",
    ]);
    carrier
        .wait_registered(ACCOUNT, EVENT_TIMEOUT)
        .expect("registered");
    // The carrier restarts and forgets every registration; Denwa registers again by itself.
    carrier.restart().expect("carrier restarts");
    assert!(
        !carrier.registered(ACCOUNT).expect("rpc"),
        "registrations lost"
    );
    carrier
        .wait_registered(ACCOUNT, Duration::from_secs(30))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("no re-registration after the carrier restart: {e}")
        });
    // Wrong credentials: failing, with the carrier's own answer, and a next retry.
    d.wait_until("the bad trunk failing", Duration::from_secs(15), || {
        trunk_status(&d, "bad")["registration"] == "failing"
    });
    let st = trunk_status(&d, "bad");
    let answer = st["last_register_answer"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(answer.starts_with("403"), "carrier's answer shown: {st}");
    assert!(st["next_attempt_at"].as_u64().is_some(), "{st}");
    assert!(!carrier.registered("0312340001").expect("rpc"));
    let text = d.cli_ok(&["trunk", "status"]);
    assert!(text.contains("failing") && text.contains("403"), "{text}");
    // /metrics says the same.
    let metrics = http_get(&d, "/metrics");
    assert!(
        metrics.contains("denwa_trunk_registered{tenant=\"1\",trunk=\"good\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("denwa_trunk_registered{tenant=\"1\",trunk=\"bad\"} 0"));
}

fn http_get(d: &Denwa, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.http_port)).expect("http");
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A sipp UAS on a free port answering every call (the public network behind the carrier).
fn pstn_uas() -> RunningSipp {
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.service = Some("pstn".into());
    uas.timeout = Duration::from_secs(90);
    uas.calls = 10;
    let mut r = uas.spawn().expect("uas starts");
    r.wait_listening(Duration::from_secs(10))
        .expect("uas listens");
    r
}

/// A call from extension `from` to `number` that must complete.
fn call_ok(d: &Denwa, from: &str, password: &str, number: &str) {
    let mut s = Sipp::uac("uac_call.xml", &d.sip_addr());
    s.inject_text = Some(sipp_user(from, password));
    s.service = Some(number.into());
    s.timeout = Duration::from_secs(30);
    let out = s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("call {from} -> {number}: {e}")
    });
    assert_eq!(out.successful, 1);
}

/// A call that must be refused; the status it got.
fn call_refused(d: &Denwa, from: &str, password: &str, number: &str) -> u16 {
    let mut s = Sipp::uac(
        testkit::carrier::scenario_path("carrier_uac_refused.xml"),
        &d.sip_addr(),
    );
    s.inject_text = Some(format!(
        "SEQUENTIAL\n{from};[authentication username={from} password={password}];{password};Caller;;;\n"
    ));
    s.service = Some(number.into());
    s.timeout = Duration::from_secs(30);
    let out = s.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("call {from} -> {number} was not refused: {e}")
    });
    [403u16, 404, 480, 486, 500, 503, 603]
        .into_iter()
        .find(|st| out.message_count(&st.to_string(), "Recv") > 0)
        .unwrap_or(0)
}

#[test]
fn failover_toll_fraud_guards_and_emergency_calls() {
    let uas = pstn_uas();
    let pstn: SocketAddr = uas.local_addr().parse().expect("uas addr");
    // The first carrier is overloaded (503 to everything); the second works.
    let mut busy = CarrierConfig::ip_trust([ip("127.0.0.1")], None).bound_to(ip("127.0.0.2"));
    busy.answer_invites = Some(503);
    let busy = Carrier::start(busy).expect("carrier 1");
    let good = Carrier::start(
        CarrierConfig::ip_trust([ip("127.0.0.1")], None)
            .with_pstn(pstn)
            .bound_to(ip("127.0.0.3")),
    )
    .expect("carrier 2");
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1003", "secret-baad");
    for (name, c) in [("sbc-1", &busy), ("sbc-2", &good)] {
        d.cli_ok(&["trunk", "add", name, "--host", &c.host_port()]);
    }
    japanese_plan(&d, &["sbc-1", "sbc-2"]);
    d.cli_ok(&["extension", "edit", "1003", "--cos", "internal"]);
    wait_loaded(&d, 2, 2, 0);

    // Failover: 503 from the first trunk, the call completes over the second.
    call_ok(&d, "1001", "secret-baab", "00312345678");
    let first = busy
        .wait_invite(EVENT_TIMEOUT, |i| i.status == Some(503))
        .expect("tried the first trunk");
    assert_eq!(first.request_user.as_deref(), Some("0312345678"));
    let second = good
        .wait_invite(EVENT_TIMEOUT, |i| i.decision == "forward")
        .expect("completed over the second");
    assert_eq!(second.request_user.as_deref(), Some("0312345678"));
    let c = last_cdr(&d, |c| c["direction"] == "outbound");
    assert_eq!(c["trunk"], "sbc-2");

    // International without permission: 403, and nothing reaches a carrier.
    let before = busy.invites().len() + good.invites().len();
    assert_eq!(
        call_refused(&d, "1001", "secret-baab", "0010442071234567"),
        403
    );
    assert_eq!(busy.invites().len() + good.invites().len(), before);

    // The per-hour limit stops a burst (1 call already this hour, limit 2).
    d.cli_ok(&["extension", "edit", "1001", "--max-calls-per-hour", "2"]);
    // The server picks the change up at its next poll of the database (about a second).
    std::thread::sleep(Duration::from_secs(2));
    call_ok(&d, "1001", "secret-baab", "00312345678");
    let before = good.invites().len();
    assert_eq!(call_refused(&d, "1001", "secret-baab", "00312345679"), 403);
    assert_eq!(
        good.invites().len(),
        before,
        "the refused call reached no carrier"
    );
    assert!(d.logs().contains("toll-fraud guard"), "alert line logged");
    d.wait_until("the counter published", Duration::from_secs(5), || {
        http_get(&d, "/metrics").contains("denwa_toll_fraud_blocked_total 1")
    });

    // An unauthenticated INVITE from an unknown address to an outside number: challenged,
    // never routed.
    let before = busy.invites().len() + good.invites().len();
    let answer = raw_invite(&d, "127.0.0.4", "00312345678");
    assert!(answer.starts_with("SIP/2.0 407"), "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(busy.invites().len() + good.invites().len(), before);

    // Emergency: 110 from an internal-only extension goes out (past the 503, to the second).
    call_ok(&d, "1003", "secret-baad", "110");
    good.wait_invite(EVENT_TIMEOUT, |i| i.request_user.as_deref() == Some("110"))
        .expect("110 reached the carrier");
    drop(uas);
}

/// Sends one INVITE without credentials from `src_ip`; returns the first final-ish answer.
fn raw_invite(d: &Denwa, src_ip: &str, number: &str) -> String {
    let sock = UdpSocket::bind((src_ip, 0)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let local = sock.local_addr().expect("addr");
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.4\r\ns=-\r\nc=IN IP4 127.0.0.4\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let msg = format!(
        "INVITE sip:{number}@{pbx} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKfraud1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:9999@{pbx}>;tag=fraud\r\nTo: <sip:{number}@{pbx}>\r\nCall-ID: fraud-1@{src_ip}\r\nCSeq: 1 INVITE\r\nContact: <sip:9999@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        pbx = d.sip_addr(),
    );
    sock.send_to(msg.as_bytes(), d.sip_addr()).expect("send");
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if !text.starts_with("SIP/2.0 100") {
                    return text;
                }
            }
            Err(e) => return format!("no answer: {e}"),
        }
    }
}

#[test]
fn a_trunk_over_tcp_registers_and_carries_a_call() {
    // The carrier keeps the Request-URI's `transport=tcp` when it relays to the public phone,
    // so that phone listens on TCP too.
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.service = Some("pstn".into());
    uas.timeout = Duration::from_secs(90);
    uas.transport = testkit::sipp::SippTransport::Tcp;
    let mut uas = uas.spawn().expect("uas starts");
    uas.wait_listening(Duration::from_secs(10))
        .expect("uas listens");
    let pstn: SocketAddr = uas.local_addr().parse().expect("uas addr");
    let carrier = Carrier::start(
        CarrierConfig::registration([(ACCOUNT, ACCOUNT_PW)])
            .with_pstn(pstn)
            .bound_to(ip("127.0.0.2")),
    )
    .expect("carrier starts");
    let d = Denwa::start();
    d.add_extension("1001", "secret-baab");
    d.cli_ok(&[
        "trunk",
        "add",
        "carrier",
        "--host",
        &carrier.host_port(),
        "--transport",
        "tcp",
        "--username",
        ACCOUNT,
        "--password",
        ACCOUNT_PW,
        "--register",
    ]);
    japanese_plan(&d, &["carrier"]);
    wait_loaded(&d, 1, 2, 0);
    carrier
        .wait_register(EVENT_TIMEOUT, |r| r.decision == "saved")
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("no registration over TCP: {e}")
        });
    call_ok(&d, "1001", "secret-baab", "00312345678");
    let inv = carrier
        .wait_invite(EVENT_TIMEOUT, |i| i.decision == "forward")
        .expect("relayed");
    assert_eq!(inv.transport.to_ascii_uppercase(), "TCP", "{inv:?}");
    drop(uas);
}
