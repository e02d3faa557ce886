//! BLF micro-benchmark on the fake clock (issue 15 §10): P phones each watch K others'
//! extensions (`dialog`), calls ring, are answered and hung up among them, every NOTIFY is
//! answered 200 like a phone does. Prints the engine's time per NOTIFY: everything inside
//! `Engine::handle_input` (the calls' messages, the NOTIFYs built and serialised, the 200s
//! parsed and matched, the transaction timers) divided by the NOTIFYs sent. Building the
//! phones' messages and parsing what the engine sent is the phones' work and not counted.
//!
//! Ignored (it measures, it does not check): run it in release to compare changes,
//!
//!     cargo test --release -p engine --test blf_perf -- --ignored --nocapture
//!
//! Environment: `BLF_PHONES` (200), `BLF_KEYS` (50), `BLF_WAVES` (40), `BLF_WAVE_CALLS` (20).

mod common;

use std::time::{Duration, Instant};

use common::perf::{env_or, number, phone_addr};
use common::*;
use engine::{Input, Received};
use sip::transaction::Transport;
use sip::{HeaderName, Message, Method, Response};

/// Phone `w` subscribes to `dialog` of phone `r` (digest-challenged first).
fn subscribe(h: &mut Harness, w: usize, r: usize) {
    let at = phone_addr(w);
    let me = number(w);
    let uri = format!("sip:{}@example.com", number(r));
    let call_id = format!("sub-{w}-{r}");
    let text = |cseq: u32, auth: Option<&str>| {
        let mut s = format!(
            "SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bK-s{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:{me}@example.com>;tag=w-{call_id}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{me}@{at}>\r\nEvent: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 3600\r\n"
        );
        if let Some(a) = auth {
            s.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        s + "Content-Length: 0\r\n\r\n"
    };
    h.sent.clear();
    h.recv_raw(&text(1, None), &at, SEG1);
    let challenge = h.last_response();
    assert_eq!(challenge.status, 407);
    let creds = h.answer_challenge(
        &me,
        &password(&me),
        &challenge,
        &HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        &uri,
    );
    h.sent.clear();
    h.recv_raw(&text(2, Some(&creds)), &at, SEG1);
    answer_all(h);
}

/// Every request the engine sent to a phone (NOTIFY, BYE) answered 200; returns the NOTIFYs.
/// Only the engine's parse of the 200 and its handling are timed.
fn answer_all(h: &mut Harness) -> usize {
    let mut notifies = 0;
    loop {
        let sent = h.take();
        if sent.is_empty() {
            return notifies;
        }
        let mut answers = Vec::new();
        for s in &sent {
            let r = match &s.message {
                Message::Request(r) => r,
                Message::Response(ok) => {
                    // The caller acknowledges our 200 to its INVITE.
                    if ok.status == 200
                        && let Some(cseq) = ok.cseq().filter(|c| c.method == Method::Invite)
                    {
                        let user = ok
                            .from()
                            .and_then(|f| f.uri.user().map(|u| u.to_string()))
                            .unwrap_or_default();
                        let at = s.to.to_string();
                        let ack = caller_in_dialog(ok, (&user, &at), "ACK", cseq.seq, None);
                        answers.push((ack.into_bytes(), s.to, s.from));
                    }
                    continue;
                }
            };
            if matches!(r.method, Method::Ack | Method::Invite) {
                continue;
            }
            if r.method == Method::Notify {
                notifies += 1;
            }
            let ok = Response::for_request(r, 200, None);
            answers.push((ok.to_bytes(), s.to, s.from));
        }
        if answers.is_empty() {
            return notifies;
        }
        for (bytes, from, local) in answers {
            let start = Instant::now();
            let message = sip::parse_message(&bytes).expect("our 200 parses");
            h.busy += start.elapsed();
            h.input(Input::Receive(Received {
                message,
                source: from,
                local: local.unwrap_or_else(|| addr(SEG1)),
                transport: Transport::Udp,
            }));
        }
    }
}

/// Moves the fake clock on, answering what the timers send.
fn advance(h: &mut Harness, d: Duration) -> usize {
    h.advance(d);
    answer_all(h)
}

#[test]
#[ignore = "a measurement: run in release with --nocapture"]
fn blf_cost_per_notify() {
    let phones = env_or("BLF_PHONES", 200);
    let keys = env_or("BLF_KEYS", 50).min(phones - 1);
    let waves = env_or("BLF_WAVES", 40);
    let per_wave = env_or("BLF_WAVE_CALLS", 20).min(phones / 2);
    let mut snap = snapshot();
    snap.extensions.clear();
    for i in 0..phones {
        let n = number(i);
        snap.extensions
            .insert((1, n.clone()), ext(i as i64 + 1, &n, 3));
    }
    snap.settings.blf_max_keys = u32::try_from(keys + 1).expect("keys");
    let mut h = Harness::with(snap);
    for i in 0..phones {
        let at = phone_addr(i);
        let c = format!("<sip:{}@{at}>", number(i));
        assert_eq!(
            h.register(&number(i), Some(&c), Some(3600), &at, SEG1)
                .status,
            200
        );
    }
    h.sent.clear();
    let setup = Instant::now();
    for w in 0..phones {
        for k in 1..=keys {
            subscribe(&mut h, w, (w + k) % phones);
        }
    }
    println!(
        "setup: {} subscriptions in {:.1} s",
        phones * keys,
        setup.elapsed().as_secs_f64()
    );
    advance(&mut h, Duration::from_secs(1));

    h.busy = Duration::ZERO;
    let wall = Instant::now();
    let mut notifies = 0usize;
    let gap = Duration::from_millis(60);
    for wave in 0..waves {
        let mut forks = Vec::new();
        for c in 0..per_wave {
            let a = (wave * 7 + 2 * c) % phones;
            let b = (a + 1) % phones;
            let call_id = format!("call-{wave}-{c}");
            let sent = h.dial(&Dial {
                from: &number(a),
                to: &number(b),
                source: &phone_addr(a),
                local: SEG1,
                call_id: &call_id,
            });
            let fork = invites_to(&sent, &phone_addr(b))
                .pop()
                .expect("a fork to the callee");
            h.sent = sent;
            notifies += answer_all(&mut h);
            h.reply(&fork, 180, &format!("b-{call_id}"), &phone_addr(b), SEG1);
            notifies += answer_all(&mut h);
            forks.push((fork, b));
        }
        notifies += advance(&mut h, gap);
        for (fork, b) in &forks {
            let tag = format!("b-{}", fork.call_id().unwrap_or_default());
            h.reply(fork, 200, &tag, &phone_addr(*b), SEG1);
            notifies += answer_all(&mut h);
        }
        notifies += advance(&mut h, gap);
        let now = h.now;
        for call in h.engine.calls(now) {
            h.engine.hangup(call.id, now);
            h.drain();
            notifies += answer_all(&mut h);
        }
        notifies += advance(&mut h, gap);
    }
    notifies += advance(&mut h, Duration::from_secs(40));
    let busy = h.busy.as_secs_f64() * 1e6;
    println!(
        "{phones} phones x {keys} keys, {} calls: {notifies} NOTIFYs, engine {:.0} ms, {:.2} us per NOTIFY (test wall {:.1} s)",
        waves * per_wave,
        busy / 1000.0,
        busy / notifies.max(1) as f64,
        wall.elapsed().as_secs_f64()
    );
    assert!(notifies > 0);
}
