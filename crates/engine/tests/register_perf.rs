//! REGISTER micro-benchmark on the fake clock (issue 12 §5: CPU per REGISTER): P phones
//! re-register W times each with digest credentials for the nonce they were challenged with
//! once (nonce count rising, as phones do until the nonce goes stale). Prints the engine's time
//! per authenticated REGISTER: everything inside `Engine::handle_input` (generic checks, digest
//! verification, the registrar's decisions, the location write's answer, the 200 built and
//! serialised). Building and parsing the phones' messages is the phones' work and not counted.
//!
//! Ignored (it measures, it does not check): run it in release to compare changes,
//!
//!     cargo test --release -p engine --test register_perf -- --ignored --nocapture
//!
//! Environment: `REG_PHONES` (1000), `REG_WAVES` (20).
//!
//! Wall-clock figures swing by 2× on a shared machine; for a before/after comparison count
//! instructions instead (deterministic): run the release test binary under
//! `valgrind --tool=callgrind` with `REG_PHONES=200` and `REG_WAVES` 0 and 5, and divide the
//! difference of `engine::Engine::handle_input`'s inclusive cost (`callgrind_annotate
//! --inclusive=yes`) by the 1,000 REGISTERs. Headers parsed once (`sip::check_parsed` handing
//! its `sip::Checked` to the registrar): 128,900 → 112,700 instructions per authenticated
//! REGISTER (−12.6 %), 83,600 → 74,900 per challenged one.

mod common;

use std::time::{Duration, Instant};

use common::perf::{env_or, number, phone_addr};
use common::*;
use sip::auth::{ChallengeValue, DigestClient, DigestRequest, parse_challenges};
use sip::{HeaderName, Message};

/// The REGISTER text phone `i` sends (a typical softphone's headers).
fn register_text(i: usize, cseq: u32, auth: Option<&str>) -> String {
    let at = phone_addr(i);
    let me = number(i);
    let mut s = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bK-reg{cseq}-{me};rport\r\nMax-Forwards: 70\r\nContact: <sip:{me}@{at};rinstance=8f2a1c3b4d5e6f70;transport=UDP>\r\nTo: <sip:{me}@example.com>\r\nFrom: <sip:{me}@example.com>;tag=t{me}\r\nCall-ID: reg-perf-{me}\r\nCSeq: {cseq} REGISTER\r\nExpires: 3600\r\nAllow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\nSupported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\nUser-Agent: Zoiper rv2.10.20.4\r\nAllow-Events: presence, kpml, talk\r\n"
    );
    if let Some(a) = auth {
        s.push_str(&format!("Authorization: {a}\r\n"));
    }
    s + "Content-Length: 0\r\n\r\n"
}

#[test]
#[ignore = "a measurement: run in release with --nocapture"]
fn cpu_per_authenticated_register() {
    let phones = env_or("REG_PHONES", 1000);
    let waves = env_or("REG_WAVES", 20);
    let mut snap = snapshot();
    for i in 0..phones {
        let n = number(i);
        snap.extensions
            .insert((1, n.clone()), ext(10_000 + i as i64, &n, 5));
    }
    let mut h = Harness::with(snap);
    // One challenge per phone; its nonce serves every later REGISTER.
    let mut clients = Vec::with_capacity(phones);
    for i in 0..phones {
        h.sent.clear();
        h.recv_raw(&register_text(i, 1, None), &phone_addr(i), SEG1);
        let challenge = h.last_response();
        assert_eq!(challenge.status, 401);
        let challenges: Vec<_> = challenge
            .headers
            .get_all(&HeaderName::WwwAuthenticate)
            .flat_map(|v| parse_challenges(v.as_str()).expect("challenge parses"))
            .filter_map(|c| match c {
                ChallengeValue::Digest(c) => Some(c),
                _ => None,
            })
            .collect();
        clients.push((
            DigestClient::new(number(i), password(&number(i))),
            challenges,
        ));
    }
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let mut registers = 0u64;
    h.busy = Duration::ZERO;
    let wall = Instant::now();
    for w in 0..waves {
        // Built ahead (phone work), then fed.
        let mut batch = Vec::with_capacity(phones);
        for (i, (client, challenges)) in clients.iter_mut().enumerate() {
            let creds = client
                .respond(
                    challenges,
                    &DigestRequest {
                        method: "REGISTER",
                        uri: "sip:example.com",
                        body: b"",
                    },
                    &mut rng,
                )
                .expect("answered")
                .to_string();
            let text = register_text(i, 2 + w as u32, Some(&creds));
            let message = sip::parse_message(text.as_bytes()).expect("parses");
            batch.push((i, message));
        }
        for (i, message) in batch {
            h.sent.clear();
            h.recv_message(message, &phone_addr(i), SEG1);
            let ok = h
                .sent
                .iter()
                .any(|s| matches!(&s.message, Message::Response(r) if r.status == 200));
            assert!(ok, "phone {i} wave {w}: {:?}", h.responses());
            registers += 1;
        }
    }
    let per = h.busy.as_secs_f64() * 1e6 / registers as f64;
    println!(
        "{registers} authenticated REGISTERs ({phones} phones x {waves}): engine {per:.2} us each \
         ({:.0}/s on one core), wall {:.2} s",
        1e6 / per,
        wall.elapsed().as_secs_f64()
    );
}
