//! Load figures for the transaction layer and digest verification. Bounded loops; timings are
//! printed (run with `--release -- --nocapture`), never asserted.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use sip::auth::{DigestClient, DigestRequest, DigestServer, DigestServerConfig, ha1};
use sip::transaction::{Config, Event, Target, TransactionLayer, Transport};
use sip::{HeaderName, Message, Request, Response};

fn template(method: &str) -> Request {
    let text = format!(
        "{method} sip:pbx@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@10.0.0.2>;tag=f\r\nTo: <sip:1001@10.0.0.2>\r\n\
         Call-ID: perf\r\nCSeq: 1 {method}\r\nContact: <sip:1001@10.0.0.1>\r\nContent-Length: 0\r\n\r\n"
    );
    match sip::parse_message(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn with_branch(t: &Request, i: usize) -> Request {
    let mut r = t.clone();
    r.headers.set(
        HeaderName::Via,
        format!("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp{i}"),
    );
    r
}

#[test]
fn server_non_invite_throughput() {
    const N: usize = 20_000;
    let tpl = template("REGISTER");
    let reqs: Vec<Request> = (0..N).map(|i| with_branch(&tpl, i)).collect();
    let mut layer = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    let src: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let local: SocketAddr = "10.0.0.2:5060".parse().unwrap();
    let start = Instant::now();
    let mut answered = 0;
    for r in reqs {
        layer.handle_message(Message::Request(r), src, local, Transport::Udp, t0);
        while let Some(e) = layer.poll_event() {
            if let Event::Request {
                transaction: Some(id),
                request,
                ..
            } = e
            {
                let ok = Response::for_request(&request, 200, None).with_to_tag("t");
                layer.send_response(id, ok, t0).unwrap();
                answered += 1;
            }
        }
        while layer.poll_transmit().is_some() {}
    }
    let setup = start.elapsed();
    assert_eq!((answered, layer.len()), (N, N));
    let start = Instant::now();
    layer.handle_timeout(t0 + Duration::from_secs(40));
    let expire = start.elapsed();
    assert!(layer.is_empty());
    println!(
        "server non-INVITE: {N} request+200 in {setup:?} ({:.2} us each), Timer J expiry of all in {expire:?}",
        setup.as_secs_f64() * 1e6 / N as f64
    );
}

#[test]
fn client_invite_full_timer_ladder() {
    const N: usize = 10_000;
    let tpl = template("INVITE");
    let mut layer = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    let target = Target {
        destination: "10.0.0.9:5060".parse().unwrap(),
        transport: Transport::Udp,
        local: None,
    };
    let start = Instant::now();
    for i in 0..N {
        layer
            .send_request(
                with_branch(&tpl, i),
                target,
                t0 + Duration::from_micros(i as u64),
            )
            .unwrap();
    }
    let mut sent = 0usize;
    let mut steps = 0usize;
    while let Some(at) = layer.poll_timeout() {
        steps += 1;
        assert!(steps <= 10 * N, "bounded");
        layer.handle_timeout(at);
        while layer.poll_transmit().is_some() {
            sent += 1;
        }
    }
    while layer.poll_transmit().is_some() {
        sent += 1;
    }
    let elapsed = start.elapsed();
    let timeouts = std::iter::from_fn(|| layer.poll_event())
        .filter(|e| matches!(e, Event::Timeout { .. }))
        .count();
    assert_eq!(timeouts, N);
    assert_eq!(sent, N * 7, "INVITE + 6 retransmissions each");
    println!(
        "client INVITE: {N} transactions through Timer A x6 and Timer B in {elapsed:?} ({:.2} us each)",
        elapsed.as_secs_f64() * 1e6 / N as f64
    );
}

#[test]
fn digest_verify_throughput() {
    const N: usize = 5_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut server = DigestServer::new(DigestServerConfig::new("pbx.test"), b"secret");
    let req = DigestRequest {
        method: "REGISTER",
        uri: "sip:pbx.test",
        body: b"",
    };
    let mut creds = Vec::with_capacity(N);
    for _ in 0..N {
        let cs = server.challenges(now, false, &mut rng);
        let mut c = DigestClient::new("1001", "pw");
        creds.push(c.respond(&cs, &req, &mut rng).unwrap().to_string());
    }
    let h = ha1(sip::auth::Algorithm::Sha256, "1001", "pbx.test", "pw");
    let start = Instant::now();
    for text in &creds {
        let sip::auth::AuthorizationValue::Digest(c) = sip::auth::parse_credentials(text).unwrap()
        else {
            panic!()
        };
        server.verify(&c, &req, &h, now).unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "digest: {N} parse+verify (SHA-256) in {elapsed:?} ({:.2} us each)",
        elapsed.as_secs_f64() * 1e6 / N as f64
    );
}
