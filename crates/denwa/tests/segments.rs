//! Network segments end to end (issue 12), with real phones: `denwa serve` listens on the same
//! port on 127.0.0.1 and 127.0.0.2, which stand for two network segments (all of 127.0.0.0/8
//! reaches `lo` on Linux; each phone binds its own address in that range).
//!
//! - Forking across segments: extension 1002 has a phone on each segment (a ringing sipp UAS
//!   reaching Denwa at 127.0.0.1, a baresip reaching it at 127.0.0.2). Each fork's INVITE must
//!   offer a relay socket that Denwa has bound on that fork's own segment; the phone on the
//!   second segment answers and audio must cross the relay both ways (tones detected at both
//!   phones).
//! - One callee on the other segment than the caller (multi-homing): replies leave from the
//!   address the request arrived on, each side's SDP names its own segment, audio both ways.
//!
//! Which relay sockets exist is read from `/proc/<denwa pid>/fd` and `/proc/<pid>/net/udp`.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Denwa, Opts, sipp_user};
use testkit::baresip::{AnswerMode, Phone, PhoneConfig};
use testkit::sipp::{RunningSipp, Sipp};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Denwa's address on segment 1 and segment 2.
const SEG1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SEG2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// 1002's phone on segment 1 (sipp) and on segment 2 (baresip).
const PHONE1_IP: &str = "127.0.0.11";
const PHONE2_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 22);
/// Size of the RTP port block the harness gives Denwa (`--rtp-ports BASE-(BASE+39)`).
const RTP_BLOCK: u16 = 40;

/// Whether `port` is free for UDP and TCP on `ip`.
fn free_on(ip: Ipv4Addr, port: u16) -> bool {
    UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port)).is_ok()
}

/// `denwa serve` with SIP on the same port on both segments (`--sip-listen 127.0.0.1:P
/// --sip-listen 127.0.0.2:P`), like a PBX with one interface per segment on 5060.
fn pbx_on_two_segments() -> Denwa {
    let mut sip_port = 0;
    for _ in 0..20 {
        let p = testkit::ports::free_port().expect("free SIP port");
        if free_on(SEG2, p) {
            sip_port = p;
            break;
        }
    }
    assert_ne!(sip_port, 0, "no port free on both 127.0.0.1 and 127.0.0.2");
    let mut d = Denwa {
        proc: None,
        data: tempfile::Builder::new()
            .prefix("denwa-e2e-")
            .tempdir()
            .expect("temp dir"),
        sip_port,
        http_port: testkit::ports::free_port().expect("free HTTP port"),
        rtp_base: testkit::ports::free_block(RTP_BLOCK).expect("free RTP ports"),
        opts: Opts {
            extra: vec!["--sip-listen".into(), format!("{SEG2}:{sip_port}")],
            ..Default::default()
        },
    };
    d.spawn();
    d.add_extension("1001", "secret-baab");
    d.add_extension("1002", "secret-baac");
    d
}

fn seg_addr(d: &Denwa, ip: Ipv4Addr) -> String {
    format!("{ip}:{}", d.sip_port)
}

fn denwa_pid(d: &Denwa) -> u32 {
    d.proc.as_ref().expect("denwa runs").pid()
}

/// The IPv4 UDP sockets the process `pid` holds, by local address.
fn udp_sockets(pid: u32) -> HashSet<SocketAddrV4> {
    let mut inodes = HashSet::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(target) = std::fs::read_link(e.path())
                && let Some(n) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
            {
                inodes.insert(n);
            }
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
    let mut out = HashSet::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || !f[9].parse::<u64>().is_ok_and(|i| inodes.contains(&i)) {
            continue;
        }
        let Some((ip, port)) = f[1].split_once(':') else {
            continue;
        };
        // The kernel prints the address as the in-memory (network order) u32 in host order.
        let (Ok(ip), Ok(port)) = (u32::from_str_radix(ip, 16), u16::from_str_radix(port, 16))
        else {
            continue;
        };
        out.insert(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port));
    }
    out
}

/// Denwa's UDP sockets in its RTP port range: the relay's.
fn relay_sockets(d: &Denwa) -> HashSet<SocketAddrV4> {
    let range = d.rtp_base..d.rtp_base + RTP_BLOCK;
    udp_sockets(denwa_pid(d))
        .into_iter()
        .filter(|a| range.contains(&a.port()))
        .collect()
}

fn fmt_sockets(s: &HashSet<SocketAddrV4>) -> String {
    let mut v: Vec<String> = s.iter().map(ToString::to_string).collect();
    v.sort();
    v.join(", ")
}

fn tone_file(dir: &Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).expect("tone file");
    path
}

/// A baresip phone on `ip` registered through `registrar` (one of Denwa's addresses).
/// The test password of extension `user`: its digits spelt as letters (a password may not
/// contain the extension number).
fn password_of(user: &str) -> String {
    let letters: String = user
        .chars()
        .map(|c| c.to_digit(10).map_or(c, |d| char::from(b'a' + d as u8)))
        .collect();
    format!("secret-{letters}")
}

fn phone(
    d: &Denwa,
    user: &str,
    ip: Ipv4Addr,
    registrar: &str,
    wav: &Path,
    answer: AnswerMode,
) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PhoneConfig::new(user)
        .registering(registrar, &password_of(user), 600)
        .with_audio(wav);
    cfg.ip = IpAddr::V4(ip);
    cfg.answer = answer;
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} on {ip} did not register through {registrar}: {e}")
        });
    p
}

/// Where the phone sends its RTP: the `c=`/`m=` of the SDP it got from Denwa, as baresip's
/// audio stream took it (`audio_debug`: `local: IP:PORT, remote: IP:PORT/IP:PORT`).
fn audio_remote(p: &mut Phone) -> SocketAddr {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let text = p.command("audio_debug", None).expect("audio_debug");
        let remote = text
            .split("remote: ")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|r| r.trim().parse::<SocketAddr>().ok());
        if let Some(r) = remote {
            return r;
        }
        assert!(
            Instant::now() < end,
            "{}: no remote RTP address in audio_debug:\n{text}",
            p.name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first message in a sipp trace that starts with `start_line`, up to the next separator.
fn traced_message(trace: &str, start_line: &str) -> Option<String> {
    let from = trace.find(start_line)?;
    let rest = &trace[from..];
    let end = rest.find("\n-----").unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// `(c= address, m=audio port)` of an SDP body inside `msg`.
fn sdp_media(msg: &str) -> (String, u16) {
    let line = |prefix: &str| {
        msg.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in\n{msg}"))
            .to_owned()
    };
    let c = line("c=IN IP4 ");
    let m = line("m=audio ");
    let port = m
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("bad m= line {m:?}"));
    (c.trim().to_owned(), port)
}

/// Waits until `f` holds, polling, for at most `timeout`; false if it never did.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sipp UAS for 1002 on `ip`, registered through `registrar` first.
fn sipp_phone(d: &Denwa, ip: &str, registrar: &str, scenario: &str) -> RunningSipp {
    let port = testkit::ports::free_port().expect("port");
    let mut reg = Sipp::uac("register.xml", registrar);
    reg.local_ip = ip.into();
    reg.local_port = Some(port);
    reg.inject_text = Some(sipp_user("1002", "secret-baac"));
    reg.run().unwrap_or_else(|e| {
        d.print_logs();
        panic!("sipp phone on {ip} did not register through {registrar}: {e}")
    });
    let mut uas = Sipp::uas(scenario);
    uas.local_ip = ip.into();
    uas.local_port = Some(port);
    uas.service = Some("1002".into());
    uas.timeout = Duration::from_secs(90);
    let r = uas.spawn().expect("sipp UAS starts");
    // testkit's wait_listening probes 127.0.0.1; sipp binds `ip`: it listens once that is taken.
    let ip: Ipv4Addr = ip.parse().expect("ip");
    assert!(
        eventually(Duration::from_secs(10), || UdpSocket::bind((ip, port))
            .is_err()),
        "sipp did not bind {ip}:{port}\n{}",
        r.diagnostics()
    );
    r
}

fn only_cdr(d: &Denwa) -> serde_json::Value {
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(15), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs.len(), 1, "one call, one record: {cdrs:?}");
    cdrs.remove(0)
}

/// After the call: its one record says answered, hung up by `hangup_by`, with RTP both ways on
/// both legs; and every relay socket is closed.
fn assert_recorded_and_released(d: &Denwa, hangup_by: &str) {
    let c = &only_cdr(d);
    assert_eq!(c["disposition"], "ANSWERED", "{c}");
    assert_eq!(c["caller"], "1001", "{c}");
    assert_eq!(c["callee"], "1002", "{c}");
    assert_eq!(c["hangup_by"], hangup_by, "{c}");
    // 50 packets/s of G.711 for several seconds each way.
    for leg in ["a", "b"] {
        let rx = c[leg]["pkts_rx"].as_i64().unwrap_or(0);
        let tx = c[leg]["pkts_tx"].as_i64().unwrap_or(0);
        assert!(rx > 50 && tx > 50, "leg {leg}: rx {rx} tx {tx}: {c}");
    }
    assert!(
        eventually(Duration::from_secs(10), || relay_sockets(d).is_empty()),
        "relay sockets left after the call: [{}]",
        fmt_sockets(&relay_sockets(d))
    );
}

/// Lets the tone sequences play, hangs up (caller or callee), and checks what each phone heard.
fn talk_and_check(d: &Denwa, caller: &mut Phone, callee: &mut Phone, caller_hangs_up: bool) {
    let seq = ToneLayout::default().sequence_ms(CALLER_TONES.len());
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    if caller_hangs_up {
        caller.hangup().expect("caller hangs up");
    } else {
        callee.hangup().expect("callee hangs up");
    }
    for p in [&mut *caller, &mut *callee] {
        p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("call did not close: {e}")
            });
    }
    let heard = |p: &Phone| p.last_recording().expect("recording");
    tone::check_recording(&heard(caller), &CALLEE_TONES, &CALLER_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the phone on segment 2 through the relay: {e}")
    });
    tone::check_recording(&heard(callee), &CALLER_TONES, &CALLEE_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the phone on segment 2 did not hear the caller through the relay: {e}")
    });
}

fn registration_local(d: &Denwa, contact_host: &str) -> String {
    let regs = d.registrations();
    regs.iter()
        .find(|r| {
            r["contact_uri"]
                .as_str()
                .is_some_and(|c| c.contains(&format!("@{contact_host}:")))
        })
        .and_then(|r| r["local_addr"].as_str())
        .unwrap_or_else(|| panic!("no registration with a contact on {contact_host}: {regs:?}"))
        .to_owned()
}

/// The call's two baresip phones: the caller 1001 on segment 1 (sending the caller's tones)
/// and 1002's phone on segment 2 (sending the callee's tones), both registered; with the
/// directory holding their tone files.
fn caller_and_segment2_phone(d: &Denwa, answer: AnswerMode) -> (tempfile::TempDir, Phone, Phone) {
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tone_file(audio.path(), "a.wav", &CALLER_TONES);
    let b_wav = tone_file(audio.path(), "b.wav", &CALLEE_TONES);
    let callee = phone(d, "1002", PHONE2_IP, &seg_addr(d, SEG2), &b_wav, answer);
    let caller = phone(
        d,
        "1001",
        SEG1,
        &seg_addr(d, SEG1),
        &a_wav,
        AnswerMode::Auto,
    );
    assert_eq!(
        registration_local(d, &PHONE2_IP.to_string()),
        seg_addr(d, SEG2),
        "1002's phone on segment 2 is bound to Denwa's segment-2 address"
    );
    assert_eq!(
        registration_local(d, &SEG1.to_string()),
        seg_addr(d, SEG1),
        "1001 is bound to Denwa's segment-1 address"
    );
    (audio, caller, callee)
}

/// Issue 12: a callee with phones on two segments. Each fork's INVITE offers a relay socket
/// bound on its own segment; the phone on the second segment answers and both directions of
/// audio cross the relay.
#[test]
fn forks_on_two_segments_each_offer_a_relay_socket_on_their_segment_and_segment_2_talks() {
    let d = pbx_on_two_segments();
    // 1002's first phone reaches Denwa on segment 1 (it registers first) and only rings.
    let ringing = sipp_phone(&d, PHONE1_IP, &seg_addr(&d, SEG1), "uas_ring_noanswer.xml");
    assert_eq!(
        registration_local(&d, PHONE1_IP),
        seg_addr(&d, SEG1),
        "phone 1 registered on segment 1"
    );
    // 1002's second phone reaches Denwa on segment 2 and answers when told to.
    let (_audio, mut caller, mut callee) = caller_and_segment2_phone(&d, AnswerMode::Manual);
    assert!(
        relay_sockets(&d).is_empty(),
        "relay sockets before any call: {}",
        fmt_sockets(&relay_sockets(&d))
    );

    caller
        .dial(&format!("sip:1002@{}", seg_addr(&d, SEG1)))
        .expect("dial");
    // Both forks ring.
    callee
        .wait_event("CALL_INCOMING", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("phone on segment 2 did not ring: {e}")
        });
    let mut invite1 = None;
    assert!(
        eventually(EVENT_TIMEOUT, || {
            invite1 = traced_message(&ringing.messages_so_far(), "INVITE sip:");
            invite1.is_some()
        }),
        "phone on segment 1 got no INVITE\n{}",
        ringing.diagnostics()
    );
    let invite1 = invite1.unwrap_or_default();
    let ringing_sockets = relay_sockets(&d);
    eprintln!(
        "relay sockets while both forks ring: [{}]",
        fmt_sockets(&ringing_sockets)
    );

    // Fork 1 (segment 1): its SDP and its signalling name segment 1 only, and the offered port
    // is a socket Denwa holds on 127.0.0.1.
    let (c1, m1) = sdp_media(&invite1);
    assert_eq!(c1, SEG1.to_string(), "fork 1's SDP c=:\n{invite1}");
    assert!(
        ringing_sockets.contains(&SocketAddrV4::new(SEG1, m1)),
        "fork 1 offers {SEG1}:{m1}, but Denwa's relay sockets while ringing are [{}]\n{invite1}",
        fmt_sockets(&ringing_sockets)
    );
    assert!(
        !invite1.contains(&SEG2.to_string()),
        "segment 2's address in the INVITE sent on segment 1:\n{invite1}"
    );
    assert!(
        invite1.contains(&format!("Via: SIP/2.0/UDP {}", seg_addr(&d, SEG1))),
        "fork 1's Via is not Denwa's segment-1 address:\n{invite1}"
    );

    // The phone on segment 2 answers.
    callee.accept().expect("accept");
    callee
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("phone on segment 2: {e}")
        });
    caller
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("caller: {e}")
        });

    // Fork 2 (segment 2): the SDP it got names 127.0.0.2 and a port Denwa held there while both
    // forks rang (and still holds).
    let r2 = audio_remote(&mut callee);
    assert_eq!(
        r2.ip(),
        IpAddr::V4(SEG2),
        "fork 2's SDP (as the phone on segment 2 took it) names {r2}"
    );
    let SocketAddr::V4(r2) = r2 else {
        unreachable!()
    };
    assert!(
        ringing_sockets.contains(&r2),
        "fork 2 offers {r2}, but Denwa's relay sockets while ringing were [{}]",
        fmt_sockets(&ringing_sockets)
    );
    assert_ne!(
        SocketAddrV4::new(SEG1, m1),
        r2,
        "both forks were offered one socket"
    );
    // The caller's answer SDP names the caller's segment, on a socket Denwa holds there.
    let ra = audio_remote(&mut caller);
    assert_eq!(ra.ip(), IpAddr::V4(SEG1), "the caller's 200 SDP names {ra}");
    let SocketAddr::V4(ra) = ra else {
        unreachable!()
    };
    let talking = relay_sockets(&d);
    eprintln!(
        "fork 1 offered {SEG1}:{m1}; fork 2 offered {r2}; caller offered {ra}; relay sockets now: [{}]",
        fmt_sockets(&talking)
    );
    assert!(
        talking.contains(&ra) && talking.contains(&r2),
        "answered call uses {ra} and {r2}; Denwa's relay sockets: [{}]",
        fmt_sockets(&talking)
    );
    // The unanswered fork's relay socket is given back once the call is answered.
    assert!(
        eventually(Duration::from_secs(5), || !relay_sockets(&d)
            .contains(&SocketAddrV4::new(SEG1, m1))),
        "fork 1's relay socket {SEG1}:{m1} still open after the answer: [{}]",
        fmt_sockets(&relay_sockets(&d))
    );

    talk_and_check(&d, &mut caller, &mut callee, true);

    // The ringing phone was cancelled (200 to CANCEL, 487 to INVITE, ACK).
    let out = ringing.finish().expect("phone on segment 1 was cancelled");
    let trace = std::fs::read_to_string(out.logs.path().join("messages.log")).unwrap_or_default();
    let cancel = traced_message(&trace, "CANCEL sip:").expect("phone on segment 1 got a CANCEL");
    assert!(
        !cancel.contains(&SEG2.to_string()),
        "segment 2's address in the CANCEL sent on segment 1:\n{cancel}"
    );

    assert_recorded_and_released(&d, "caller");
}

/// Sends `request` from `sock` to `server` and returns the answer and where it came from.
fn ask(sock: &UdpSocket, server: SocketAddr, request: &str) -> (String, SocketAddr) {
    sock.send_to(request.as_bytes(), server).expect("send");
    let mut buf = [0u8; 8192];
    let (n, from) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer from {server}: {e}"));
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

/// The earlier behaviour, one callee: a caller reaching Denwa on segment 1 and a callee on
/// segment 2. Replies leave from the address each request arrived on, each side's SDP names
/// that side's segment on a relay socket bound there, and audio crosses both ways.
#[test]
fn caller_on_segment_1_and_callee_on_segment_2_each_see_their_own_segment() {
    let d = pbx_on_two_segments();

    // Replies leave from the address the request arrived on, whichever address asked.
    for (n, client) in ["127.0.0.3", "127.0.0.33"].into_iter().enumerate() {
        let sock = UdpSocket::bind((client, 0)).expect("bind probe");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let me = sock.local_addr().expect("addr");
        for (k, seg) in [SEG1, SEG2].into_iter().enumerate() {
            let server = SocketAddr::new(IpAddr::V4(seg), d.sip_port);
            for method in ["OPTIONS", "REGISTER"] {
                let req = format!(
                    "{method} sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-seg{n}{k}{method};rport\r\n\
                     From: <sip:1002@{server}>;tag=p{n}{k}\r\nTo: <sip:1002@{server}>\r\n\
                     Call-ID: seg-{n}-{k}-{method}-{}\r\nCSeq: 1 {method}\r\nContact: <sip:1002@{me}>\r\n\
                     Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    me.port()
                );
                let (resp, from) = ask(&sock, server, &req);
                let want = if method == "OPTIONS" { "200" } else { "401" };
                assert!(
                    resp.starts_with(&format!("SIP/2.0 {want} ")),
                    "{method} to {server} from {me}: {resp}"
                );
                assert_eq!(
                    from, server,
                    "{method} to {server} from {me} was answered from {from}"
                );
            }
        }
    }

    let (_audio, mut caller, mut callee) = caller_and_segment2_phone(&d, AnswerMode::Auto);

    caller
        .dial(&format!("sip:1002@{}", seg_addr(&d, SEG1)))
        .expect("dial");
    for p in [&mut callee, &mut caller] {
        p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                d.print_logs();
                panic!("call not established: {e}")
            });
    }
    let sockets = relay_sockets(&d);
    eprintln!("relay sockets during the call: [{}]", fmt_sockets(&sockets));
    for (p, seg) in [(&mut caller, SEG1), (&mut callee, SEG2)] {
        let r = audio_remote(p);
        assert_eq!(r.ip(), IpAddr::V4(seg), "{} was offered {r}", p.name());
        let SocketAddr::V4(r) = r else { unreachable!() };
        assert!(
            sockets.contains(&r),
            "{} was offered {r}; Denwa's relay sockets: [{}]",
            p.name(),
            fmt_sockets(&sockets)
        );
    }
    // Every relay socket is bound on one segment's address, none on the wildcard.
    assert!(
        sockets.iter().all(|s| *s.ip() == SEG1 || *s.ip() == SEG2),
        "relay sockets: [{}]",
        fmt_sockets(&sockets)
    );

    // The callee hangs up: its BYE arrives on segment 2 and reaches the caller on segment 1.
    talk_and_check(&d, &mut caller, &mut callee, false);
    assert_recorded_and_released(&d, "callee");
}
