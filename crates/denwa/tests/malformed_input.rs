//! Bad input gets a clear answer and loses nothing: the RFC 4475 torture messages and random
//! garbage are sent to a running server over UDP; malformed requests are answered 400 (to the
//! source address), malformed responses are dropped, every fault is logged with the peer
//! address, and the server keeps answering afterwards.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::Denwa;

const INVALID_REQUESTS: [&str; 12] = [
    "badinv01", "clerr", "ncl", "scalar02", "quotbal", "ltgtruri", "lwsruri", "lwsstart", "trws",
    "badaspec", "baddn", "mcl01",
];
const INVALID_RESPONSES: [&str; 2] = ["scalarlg", "bigcode"];

fn corpus(name: &str) -> Vec<u8> {
    let p = testkit::repo_root()
        .join("tests/data/rfc4475/msgs")
        .join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn exchange(sock: &UdpSocket, to: &str, data: &[u8]) -> Option<String> {
    sock.send_to(data, to).expect("send");
    let mut buf = [0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

fn options(port: u16) -> Vec<u8> {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-opt{};rport\r\n\
         From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe-{}\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        rand_suffix(),
        rand_suffix()
    )
    .into_bytes()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[test]
fn torture_messages_get_400_or_are_dropped_and_logged() {
    let d = Denwa::start();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    for name in INVALID_REQUESTS {
        let reply = exchange(&sock, &d.sip_addr(), &corpus(name))
            .unwrap_or_else(|| panic!("{name}: no answer to a malformed request"));
        let status: u16 = reply.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{name}: expected a 4xx, got {reply}"
        );
        if name != "ncl" && name != "mcl01" {
            assert_eq!(status, 400, "{name}: {reply}");
        }
        assert!(
            reply.contains("Warning:") || reply.contains("Bad Request"),
            "{name}: no reason given: {reply}"
        );
    }
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    for name in INVALID_RESPONSES {
        assert!(
            exchange(&sock, &d.sip_addr(), &corpus(name)).is_none(),
            "{name}: a malformed response was answered"
        );
    }
    let logs = d.logs();
    assert!(
        logs.contains(&me.to_string()),
        "malformed input not logged with the peer address"
    );
    // Still serving.
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let reply = exchange(&sock, &d.sip_addr(), &options(me.port())).expect("OPTIONS answered");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
}

#[test]
fn every_corpus_message_and_garbage_leaves_the_server_serving() {
    let d = Denwa::start();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let me = sock.local_addr().expect("addr");
    let dir = testkit::repo_root().join("tests/data/rfc4475/msgs");
    let mut sent = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        sock.send_to(&data, d.sip_addr()).expect("send");
        // Truncations and bit flips of each message as well.
        for cut in [
            1,
            data.len() / 3,
            data.len() / 2,
            data.len().saturating_sub(3),
        ] {
            sock.send_to(&data[..cut.min(data.len())], d.sip_addr())
                .expect("send");
        }
        let mut flipped = data.clone();
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        sock.send_to(&flipped, d.sip_addr()).expect("send");
        sent += 6;
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let len = (x % 1400) as usize + 1;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        sock.send_to(&garbage, d.sip_addr()).expect("send");
        sent += 1;
    }
    assert!(sent > 500);
    // Drain whatever came back, then check the server still answers.
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    while sock.recv_from(&mut buf).is_ok() {}
    sock.set_read_timeout(Some(Duration::from_millis(2000)))
        .expect("timeout");
    let reply = exchange(&sock, &d.sip_addr(), &options(me.port()))
        .expect("OPTIONS answered after the barrage");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    let mut proc_alive = true;
    if let Some(p) = &d.proc {
        proc_alive = !p.logs().contains("panicked");
    }
    assert!(proc_alive, "the server panicked:\n{}", d.logs());
}
