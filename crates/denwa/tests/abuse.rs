//! Bounded under abuse: while two baresip phones talk through Denwa (tone-verified audio both
//! ways), the server is flooded with (a) TCP connections from one source beyond the per-source
//! limit, (b) REGISTERs for many unknown users, (c) REGISTER/INVITE with bogus digest
//! credentials (Authorization / Proxy-Authorization) from many source addresses, and (d)
//! malformed datagrams. Afterwards the call's audio is clean, the server still answers OPTIONS,
//! the connection limit held, and the log stayed bounded: a few full lines per noisy peer and a
//! summary line instead of one WARN per bad datagram.
//!
//! Sources are loopback addresses (127.0.0.2 ... 127.0.0.70 all reach `lo`), standing for
//! distinct or spoofed peers. Every loop is bounded in count and in time; no timing is asserted.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Denwa;
use testkit::baresip::{Phone, PhoneConfig};
use testkit::flood::{self, ConnState, loopback};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Per-source TCP connection limit (pbx::transport::TransportLimits default).
const TCP_PER_SOURCE: usize = 32;
/// TCP connections opened from the one flooding source.
const TCP_FLOOD: usize = 200;
/// Malformed datagrams sent at most.
const MALFORMED: usize = 20_000;
/// Source addresses per flood.
const UNKNOWN_USER_SOURCES: std::ops::RangeInclusive<u8> = 2..=21;
const BOGUS_AUTH_SOURCES: std::ops::RangeInclusive<u8> = 22..=50;
const MALFORMED_SOURCES: std::ops::RangeInclusive<u8> = 60..=63;
const TCP_SOURCE: u8 = 70;

/// Tones long enough for the floods to run while they play.
fn layout() -> ToneLayout {
    ToneLayout {
        lead_ms: 1_000,
        tone_ms: 400,
        gap_ms: 200,
        tail_ms: 600,
        ..ToneLayout::default()
    }
}

fn tone_file(dir: &std::path::Path, name: &str, freqs: &[u32], min_ms: u32) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &layout(), min_ms).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, password: &str, wav: &std::path::Path) -> Phone {
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

fn server(d: &Denwa) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, d.sip_port)
}

/// A UDP socket on 127.0.0.`n` with a short read timeout.
fn udp_from(n: u8) -> UdpSocket {
    let s = UdpSocket::bind((loopback(n), 0)).expect("bind a loopback source");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s
}

/// Reads datagrams until `deadline` or `max` of them; returns their status codes.
fn statuses(sock: &UdpSocket, max: usize, deadline: Instant) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65_536];
    while out.len() < max && Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let code = text.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
                out.push((code, text));
            }
            Err(_) => break,
        }
    }
    out
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let i = value.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &value[i..];
    Some(&rest[..rest.find('"')?])
}

/// One SIP request over UDP from `sock` (fields the floods vary).
struct Req<'a> {
    method: &'a str,
    ruri: String,
    from_user: &'a str,
    to_user: &'a str,
    tag: String,
    call_id: String,
    branch: String,
    cseq: u32,
    auth: Option<(&'a str, String)>,
    to_tag: Option<String>,
}

impl Req<'_> {
    fn bytes(&self, sock: &UdpSocket, server: SocketAddrV4) -> Vec<u8> {
        let me = sock.local_addr().expect("addr");
        let host = server.ip();
        let mut m = format!(
            "{} {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{}@{host}>;tag={}\r\nTo: <sip:{}@{host}>{}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n\
             Contact: <sip:{}@{me}>\r\n",
            self.method,
            self.ruri,
            self.branch,
            self.from_user,
            self.tag,
            self.to_user,
            self.to_tag
                .as_ref()
                .map(|t| format!(";tag={t}"))
                .unwrap_or_default(),
            self.call_id,
            self.cseq,
            self.method,
            self.from_user,
        );
        if let Some((name, value)) = &self.auth {
            m.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = if self.method == "INVITE" {
            format!(
                "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                ip = me.ip()
            )
        } else {
            String::new()
        };
        if !body.is_empty() {
            m.push_str("Content-Type: application/sdp\r\n");
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        m.into_bytes()
    }
}

/// Digest credentials with a wrong response; `opaque` echoed when the challenge had one.
fn digest(user: &str, realm: &str, nonce: &str, opaque: Option<&str>, uri: &str, n: u32) -> String {
    let opaque = opaque
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{:032x}\", algorithm=MD5, qop=auth, nc={n:08x}, cnonce=\"c{n}\"{opaque}",
        0xdead_beef_u64.wrapping_mul(u64::from(n) + 7)
    )
}

/// What a 401 offered.
struct Chal {
    realm: String,
    nonce: String,
    opaque: Option<String>,
}

/// Sockets on 127.0.0.`n` for each `n`, each with the server's realm and a fresh nonce (from
/// the 401 to a REGISTER without credentials). All challenges are sent first, then read.
fn challenged(
    server: SocketAddrV4,
    sources: std::ops::RangeInclusive<u8>,
) -> Vec<(UdpSocket, Chal)> {
    let mut socks = Vec::new();
    for n in sources {
        let sock = udp_from(n);
        let r = Req {
            method: "REGISTER",
            ruri: format!("sip:{}", server.ip()),
            from_user: "1001",
            to_user: "1001",
            tag: format!("t{n}"),
            call_id: format!("ch-{n}"),
            branch: format!("z9hG4bK-ch-{n}"),
            cseq: 1,
            auth: None,
            to_tag: None,
        };
        if sock.send_to(&r.bytes(&sock, server), server).is_ok() {
            socks.push(sock);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    for sock in socks {
        let got = statuses(&sock, 1, deadline);
        let Some((_, text)) = got.iter().find(|(c, _)| *c == 401) else {
            continue;
        };
        let Some(h) = header(text, "WWW-Authenticate") else {
            continue;
        };
        if let (Some(realm), Some(nonce)) = (param(h, "realm"), param(h, "nonce")) {
            let c = Chal {
                realm: realm.to_owned(),
                nonce: nonce.to_owned(),
                opaque: param(h, "opaque").map(str::to_owned),
            };
            out.push((sock, c));
        }
    }
    out
}

#[derive(Debug, Default)]
struct Report {
    sent: usize,
    answers: usize,
    /// Answers by status code.
    codes: std::collections::BTreeMap<u16, usize>,
}

/// Reads what came back to every socket, for at most `budget` in all.
fn answers(socks: &[&UdpSocket], budget: Duration) -> Vec<(u16, String)> {
    let deadline = Instant::now() + budget;
    let mut out = Vec::new();
    for s in socks {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        out.extend(statuses(s, 64, deadline));
    }
    out
}

/// (b) REGISTERs with credentials for users that do not exist, from many sources.
fn flood_unknown_users(server: SocketAddrV4) -> Report {
    let mut rep = Report::default();
    let socks = challenged(server, UNKNOWN_USER_SOURCES);
    let uri = format!("sip:{}", server.ip());
    for k in 0..20u32 {
        for (i, (sock, c)) in socks.iter().enumerate() {
            let user = format!("ghost{i}x{k}");
            let r = Req {
                method: "REGISTER",
                ruri: uri.clone(),
                from_user: &user,
                to_user: &user,
                tag: format!("g{i}x{k}"),
                call_id: format!("ghost-{i}-{k}"),
                branch: format!("z9hG4bK-ghost-{i}-{k}"),
                cseq: 1,
                auth: Some((
                    "Authorization",
                    digest(&user, &c.realm, &c.nonce, c.opaque.as_deref(), &uri, k + 1),
                )),
                to_tag: None,
            };
            if sock.send_to(&r.bytes(sock, server), server).is_ok() {
                rep.sent += 1;
            }
        }
    }
    let refs: Vec<&UdpSocket> = socks.iter().map(|s| &s.0).collect();
    for (code, _) in answers(&refs, Duration::from_secs(3)) {
        rep.answers += 1;
        *rep.codes.entry(code).or_default() += 1;
    }
    rep
}

/// (c) REGISTER and INVITE with bogus digest credentials from many sources: made-up nonces
/// (challenged again), a real nonce with a wrong response (refused, counted by the throttle),
/// and INVITEs with a bogus Proxy-Authorization (challenged; ACKed like a phone would).
fn flood_bogus_auth(server: SocketAddrV4) -> Report {
    let mut rep = Report::default();
    let socks = challenged(server, BOGUS_AUTH_SOURCES);
    let uri = format!("sip:{}", server.ip());
    let mut invites = Vec::new();
    for k in 0..10u32 {
        for (i, (sock, c)) in socks.iter().enumerate() {
            let made_up = format!("{:064x}", k + 1);
            let (method, user, auth) = match k {
                0..=3 => (
                    "REGISTER",
                    "1001",
                    (
                        "Authorization",
                        digest("1001", &c.realm, &made_up, None, &uri, 1),
                    ),
                ),
                4..=5 => (
                    "REGISTER",
                    "1002",
                    (
                        "Authorization",
                        digest("1002", &c.realm, &c.nonce, c.opaque.as_deref(), &uri, k),
                    ),
                ),
                _ => (
                    "INVITE",
                    "1001",
                    (
                        "Proxy-Authorization",
                        digest("1001", &c.realm, &made_up, None, &uri, 1),
                    ),
                ),
            };
            let r = Req {
                method,
                ruri: if method == "INVITE" {
                    format!("sip:1002@{}", server.ip())
                } else {
                    uri.clone()
                },
                from_user: user,
                to_user: if method == "INVITE" { "1002" } else { user },
                tag: format!("b{i}x{k}"),
                call_id: format!("bogus-{i}-{k}"),
                branch: format!("z9hG4bK-bogus-{i}-{k}"),
                cseq: 1,
                auth: Some((auth.0, auth.1)),
                to_tag: None,
            };
            if sock.send_to(&r.bytes(sock, server), server).is_ok() {
                rep.sent += 1;
            }
            if method == "INVITE" {
                invites.push((i, r));
            }
        }
    }
    // ACK the INVITEs' final responses so the server stops retransmitting them.
    let deadline = Instant::now() + Duration::from_secs(3);
    for (i, (sock, _)) in socks.iter().enumerate() {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        for (code, text) in statuses(sock, 64, deadline) {
            rep.answers += 1;
            *rep.codes.entry(code).or_default() += 1;
            if code < 300 {
                continue;
            }
            let Some(call_id) = header(&text, "Call-ID") else {
                continue;
            };
            let Some((_, inv)) = invites
                .iter()
                .find(|(j, r)| *j == i && r.call_id == call_id)
            else {
                continue;
            };
            let to_tag = header(&text, "To")
                .and_then(|t| t.split(";tag=").nth(1))
                .map(|t| t.split(';').next().unwrap_or(t).to_owned());
            let ack = Req {
                method: "ACK",
                ruri: inv.ruri.clone(),
                from_user: inv.from_user,
                to_user: inv.to_user,
                tag: inv.tag.clone(),
                call_id: inv.call_id.clone(),
                branch: inv.branch.clone(),
                cseq: inv.cseq,
                auth: None,
                to_tag,
            };
            let _ = sock.send_to(&ack.bytes(sock, server), server);
        }
    }
    rep
}

/// (d) Malformed datagrams: RFC 4475 invalid requests (answered 400) and garbage (dropped).
fn flood_malformed(server: SocketAddrV4, deadline: Instant) -> Report {
    let dir = testkit::repo_root().join("tests/data/rfc4475/msgs");
    let mut corpus: Vec<Vec<u8>> = [
        "badinv01", "clerr", "scalar02", "quotbal", "lwsstart", "trws",
    ]
    .iter()
    .map(|n| std::fs::read(dir.join(format!("{n}.dat"))).expect("corpus"))
    .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..6 {
        let len = (x % 700) as usize + 20;
        corpus.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
        );
    }
    let socks: Vec<UdpSocket> = MALFORMED_SOURCES.map(udp_from).collect();
    let mut rep = Report::default();
    // Paced: 50 datagrams, then 10 ms (at most ~5,000/s, twice the flood that once wrote 42,370
    // WARN lines in 25 s).
    'outer: for batch in 0..MALFORMED / 50 {
        for i in 0..50 {
            let k = batch * 50 + i;
            let s = &socks[k % socks.len()];
            if s.send_to(&corpus[k % corpus.len()], server).is_ok() {
                rep.sent += 1;
            }
        }
        if Instant::now() >= deadline {
            break 'outer;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    rep
}

/// (a) TCP connections from one source, far beyond the per-source limit; kept open. Returns the
/// connections made and how many connects the server reset at once (refused before the
/// handshake was even reported to us).
fn flood_tcp(server: SocketAddrV4, deadline: Instant) -> (Vec<TcpStream>, usize) {
    let mut conns = Vec::new();
    let mut reset = 0;
    for _ in 0..TCP_FLOOD {
        if Instant::now() >= deadline {
            break;
        }
        match flood::tcp_connect_from(loopback(TCP_SOURCE), server, Duration::from_secs(2)) {
            Ok(c) => conns.push(c),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => reset += 1,
            Err(_) => {}
        }
    }
    (conns, reset)
}

fn options(local: SocketAddr, transport: &str, id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-opt-{id};rport\r\n\
         From: <sip:probe@127.0.0.1>;tag=p{id}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe-{id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn udp_options_answered(server: SocketAddrV4) -> bool {
    let s = udp_from(1);
    let me = s.local_addr().expect("addr");
    for attempt in 0..3 {
        let _ = s.send_to(&options(me, "UDP", &format!("u{attempt}")), server);
        let got = statuses(&s, 4, Instant::now() + Duration::from_secs(2));
        if got.iter().any(|(c, _)| *c == 200) {
            return true;
        }
    }
    false
}

fn tcp_options_answered(server: SocketAddrV4) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = flood::tcp_connect_from(loopback(1), server, Duration::from_secs(2)) else {
        return false;
    };
    let me = c.local_addr().expect("addr");
    let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
    if c.write_all(&options(me, "TCP", "t1")).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while got.len() < 12 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"SIP/2.0 200")
}

#[test]
fn a_call_keeps_clean_audio_while_the_server_is_flooded() {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let nofile = flood::raise_nofile(4_096);
    assert!(nofile > (TCP_FLOOD + 200) as u64, "RLIMIT_NOFILE {nofile}");
    let d = Denwa::start();
    d.add_extension("1001", "alice-abuse-01");
    d.add_extension("1002", "bob-abuse-0002");
    let srv = server(&d);

    let seq_ms = layout().sequence_ms(CALLER_TONES.len());
    let audio = tempfile::tempdir().expect("tmp");
    let a_wav = tone_file(audio.path(), "a.wav", &CALLER_TONES, seq_ms + 3_000);
    let b_wav = tone_file(audio.path(), "b.wav", &CALLEE_TONES, seq_ms + 3_000);
    let mut a = phone(&d, "1001", "alice-abuse-01", &a_wav);
    let mut b = phone(&d, "1002", "bob-abuse-0002", &b_wav);

    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("caller: {e}")
        });
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("callee established");
    let established = Instant::now();

    // The floods run while the tones play (each bounded in count and by this deadline).
    let flood_end = established + Duration::from_millis(u64::from(seq_ms));
    let ((tcp_conns, tcp_reset), unknown, bogus, malformed) = std::thread::scope(|s| {
        let t = s.spawn(|| flood_tcp(srv, flood_end));
        let u = s.spawn(|| flood_unknown_users(srv));
        let c = s.spawn(|| flood_bogus_auth(srv));
        let m = s.spawn(|| flood_malformed(srv, flood_end));
        (
            t.join().expect("tcp flood"),
            u.join().expect("unknown-user flood"),
            c.join().expect("bogus-auth flood"),
            m.join().expect("malformed flood"),
        )
    });
    eprintln!(
        "floods: {} TCP connections made, {tcp_reset} reset at connect; unknown users {unknown:?}; bogus auth {bogus:?}; malformed {malformed:?}",
        tcp_conns.len()
    );
    let talk = Duration::from_millis(u64::from(seq_ms) + 1_000);
    if let Some(rest) = talk.checked_sub(established.elapsed()) {
        std::thread::sleep(rest);
    }
    // The call's audio stayed clean both ways.
    testkit::baresip::hang_up_and_check_tones(
        &mut a,
        &mut b,
        &CALLER_TONES,
        &CALLEE_TONES,
        EVENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("the call under the flood: {e}"));

    // Still serving, over UDP and (from another source) TCP.
    assert!(udp_options_answered(srv), "no 200 to OPTIONS over UDP");
    assert!(
        tcp_options_answered(srv),
        "no 200 to OPTIONS over TCP from an unflooded source"
    );

    // The per-source limit held: at most 32 of the flooding source's connections stayed open,
    // the rest were closed by the server (a reset), and one more is refused too.
    let made = tcp_conns.len() + tcp_reset;
    assert!(made > TCP_PER_SOURCE, "only {made} TCP connections made");
    let mut open = 0;
    for mut c in tcp_conns {
        if flood::probe(&mut c, Duration::from_millis(20)) == ConnState::Open {
            open += 1;
        }
    }
    assert!(
        (1..=TCP_PER_SOURCE).contains(&open),
        "{open} connections from one source left open (limit {TCP_PER_SOURCE})"
    );
    let http = SocketAddr::from(([127, 0, 0, 1], d.http_port));
    let metrics = flood::http_get(http, "/metrics", Duration::from_secs(5)).expect("/metrics");
    let refused = flood::metric(&metrics, "denwa_sip_tcp_refused_total").expect("refused metric");
    assert!(
        refused as usize >= made - TCP_PER_SOURCE,
        "{refused} TCP connections refused:\n{metrics}"
    );
    let suppressed = flood::metric(&metrics, "denwa_log_lines_suppressed_total").unwrap_or(0);
    assert!(suppressed > 0, "no log line suppressed:\n{metrics}");

    // The log stayed bounded and says what happened in summary lines.
    d.wait_until(
        "the summary of the malformed datagrams",
        Duration::from_secs(30),
        || d.logs().contains("malformed SIP datagrams in the last"),
    );
    let logs = d.logs();
    let warn: Vec<&str> = logs.lines().filter(|l| l.contains(" WARN ")).collect();
    let malformed_lines = warn.iter().filter(|l| l.contains("malformed")).count();
    for l in warn.iter().filter(|l| l.contains("in the last")) {
        eprintln!("summary: {l}");
    }
    // WARN lines by message (the text after the level, up to the first field).
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for l in &warn {
        let msg = l.split(" WARN ").nth(1).unwrap_or("");
        let msg: String = msg
            .split_whitespace()
            .filter(|w| !w.contains('='))
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        *kinds.entry(msg).or_default() += 1;
    }
    eprintln!("WARN lines by message: {kinds:#?}");
    eprintln!(
        "{} WARN lines ({malformed_lines} about malformed datagrams) for {} malformed datagrams",
        warn.len(),
        malformed.sent
    );
    assert!(
        malformed.sent >= 2_000,
        "only {} malformed datagrams sent",
        malformed.sent
    );
    // Per 10 s window at most 50 full lines, 20 peer summaries and one "other peers" line.
    assert!(
        malformed_lines <= 3 * 71,
        "{malformed_lines} WARN lines about malformed datagrams"
    );
    assert!(
        warn.len() < 1_000 && warn.len() < malformed.sent / 2,
        "{} WARN lines for {} malformed datagrams",
        warn.len(),
        malformed.sent
    );
    let summary = warn
        .iter()
        .find(|l| l.contains("malformed SIP datagrams in the last"))
        .expect("summary line");
    assert!(
        summary.contains("peer 127.0.0.6") && summary.contains("not logged individually"),
        "{summary}"
    );
}
