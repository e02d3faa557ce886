//! Bounded fuzzing in the normal test run (cargo-fuzz needs nightly): random bytes and mutated
//! RFC 4475 messages (bit flips, truncation, splicing, byte insertion, line duplication) go through
//! the parser, the framers, the typed getters, lint and the 400 builder. Nothing may panic, and
//! whatever parses must re-serialize into something that parses to the same message.

use bytes::Bytes;
use proptest::prelude::*;
use sip::framing::{StreamEvent, StreamFramer, decode_datagram};
use sip::parse::Limits;
use sip::{HeaderName, Message, error_response, lint, parse_message};

fn corpus() -> Vec<Vec<u8>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rfc4475/msgs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Splice(usize, usize, usize),
    Insert(usize, Vec<u8>),
    DuplicateLine(usize),
    DeleteRange(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b"\r\n".to_vec(),
        b" ".to_vec(),
        b"\r\n ".to_vec(),
        b":".to_vec(),
        b";".to_vec(),
        b",".to_vec(),
        b"\"".to_vec(),
        b"<".to_vec(),
        b">".to_vec(),
        b"%".to_vec(),
        b"\\".to_vec(),
        b"@".to_vec(),
        b"[::1]".to_vec(),
        b"\0".to_vec(),
        b"\xff".to_vec(),
        b"99999999999999999999".to_vec(),
        b"\r\nContent-Length: 4\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
        (
            any::<usize>(),
            prop_oneof![interesting, prop::collection::vec(any::<u8>(), 1..8)]
        )
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), 0usize..16).prop_map(|(p, n)| Mutation::DeleteRange(p, n)),
    ]
}

fn apply(corpus: &[Vec<u8>], mut msg: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = msg.len().max(1);
        match m {
            Mutation::FlipBit(p, b) => {
                if !msg.is_empty() {
                    let i = p % msg.len();
                    msg[i] ^= 1 << b;
                }
            }
            Mutation::Truncate(p) => msg.truncate(p % len),
            Mutation::Splice(other, at, from) => {
                let o = &corpus[other % corpus.len()];
                let at = at % len;
                let from = from % o.len().max(1);
                msg.truncate(at);
                msg.extend_from_slice(&o[from..]);
            }
            Mutation::Insert(p, v) => {
                let i = p % (msg.len() + 1);
                msg.splice(i..i, v.iter().copied());
            }
            Mutation::DuplicateLine(p) => {
                let lines: Vec<usize> = msg
                    .windows(2)
                    .enumerate()
                    .filter(|(_, w)| w == b"\r\n")
                    .map(|(i, _)| i + 2)
                    .collect();
                if lines.len() >= 2 {
                    let k = p % (lines.len() - 1);
                    let line = msg[lines[k]..lines[k + 1]].to_vec();
                    msg.splice(lines[k]..lines[k], line);
                }
            }
            Mutation::DeleteRange(p, n) => {
                let i = p % len;
                let e = (i + n).min(msg.len());
                if i < e {
                    msg.drain(i..e);
                }
            }
        }
    }
    msg
}

/// Exercises every typed getter and the serializer on a parsed message.
fn exercise(m: &Message) {
    let h = m.headers();
    let _ = (
        h.call_id(),
        h.cseq(),
        h.vias(),
        h.from(),
        h.to(),
        h.contacts(),
        h.max_forwards(),
        h.expires(),
    );
    let _ = (
        h.routes(),
        h.record_routes(),
        h.content_type(),
        h.allow(),
        h.require(),
        h.supported(),
    );
    let _ = (
        h.authorization(),
        h.www_authenticate(),
        h.event(),
        h.session_expires(),
        h.replaces(),
        h.rack(),
    );
    let _ = (
        h.refer_to(),
        h.reasons(),
        h.p_asserted_identity(),
        h.min_se(),
        h.subscription_state(),
    );
    if let Ok(mut sdp) = sip::sdp::Sdp::parse(m.body()) {
        sdp.set_connection_address("192.0.2.1".parse().unwrap());
        for i in 0..sdp.media.len() {
            let _ = (
                sdp.direction(i),
                sdp.media[i].rtpmaps(),
                sdp.media[i].rtcp(),
                sdp.media[i].fmtp(0),
            );
        }
        let again = sip::sdp::Sdp::parse(&sdp.to_bytes()).expect("rewritten SDP must parse");
        assert_eq!(again, sdp);
    }
    if let Message::Request(r) = m {
        let _ = sip::check_request(r, &sip::CheckConfig::default());
        let _ = sip::check::check_accept(r, &[("application", "sdp")]);
    }
    // Typed rewrites (what a B2BUA does) must always produce parseable output.
    let mut edited = m.clone();
    {
        let h = edited.headers_mut();
        if let Some(mut v) = h.top_via() {
            v.params.set("received", Some("192.0.2.1"));
            h.set_top_via(&v);
            h.push_via(&v);
            let _ = h.pop_via();
        }
        for name in [HeaderName::From, HeaderName::To] {
            if let Some(mut na) = h.get_str(&name).and_then(|v| sip::NameAddr::parse(v).ok()) {
                na.set_tag("t1");
                h.set_typed(name, &na);
            }
        }
        let contacts: Vec<String> = h.contacts().iter().map(|c| c.to_string()).collect();
        if !contacts.is_empty() {
            h.set(HeaderName::Contact, contacts.join(", "));
        }
        let _ = h.decrement_max_forwards();
    }
    let edited_bytes = edited.to_bytes();
    if let Err(e) = parse_message(&edited_bytes) {
        panic!(
            "typed rewrite produced unparseable output: {e}\n{}",
            String::from_utf8_lossy(&edited_bytes)
        );
    }
    let bytes = m.to_bytes();
    let again = parse_message(&bytes).unwrap_or_else(|e| {
        panic!(
            "re-parse of canonical output failed: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let strip = |m: &Message| {
        let mut m = m.clone();
        m.headers_mut().remove(&HeaderName::ContentLength);
        m
    };
    assert_eq!(strip(m), strip(&again));
}

fn feed_stream(data: &[u8], chunk: usize) {
    let mut f = StreamFramer::new(Limits::default());
    for piece in data.chunks(chunk.max(1)) {
        f.push(piece);
        while let Some(ev) = f.poll() {
            if let Ok(StreamEvent::Message(m)) = ev {
                exercise(&m);
            }
        }
    }
}

fn run_all(data: &[u8], chunk: usize) {
    match parse_message(data) {
        Ok(m) => exercise(&m),
        Err(e) => {
            let _ = error_response(data, &e, &mut rand::thread_rng());
        }
    }
    let _ = decode_datagram(Bytes::copy_from_slice(data), &Limits::default());
    let report = lint(data);
    let _ = report.to_string();
    feed_stream(data, chunk);
}

/// Bounded by default; `SIP_FUZZ_CASES=100000` for a longer soak.
fn fuzz_cases() -> u32 {
    std::env::var("SIP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_never_panics(idx in any::<usize>(), muts in prop::collection::vec(mutation(), 1..5), chunk in 1usize..64) {
        let corpus = corpus();
        let base = corpus[idx % corpus.len()].clone();
        let data = apply(&corpus, base, &muts);
        run_all(&data, chunk);
    }

    #[test]
    fn typed_parsers_take_any_unicode(text in any::<String>(), mix in "[<>\"@:;,%\\ ]{0,12}") {
        for t in [text.clone(), format!("{mix}{text}"), format!("<sip:{text}@h>;tag={mix}"), format!("SIP/2.0/UDP {text};{mix}")] {
            let _ = sip::Uri::parse(&t).map(|u| (u.to_string(), u.user()));
            let _ = sip::SipUri::parse(&t).map(|u| u.aor());
            let _ = sip::NameAddr::parse_list(&t).map(|l| l.iter().map(|n| n.to_string()).collect::<Vec<_>>());
            let _ = sip::Via::parse_list(&t).map(|l| l.iter().map(|v| (v.to_string(), v.sent_by_is_unusable())).collect::<Vec<_>>());
            let _ = sip::Auth::parse(&t).map(|a| a.to_string());
            let _ = sip::MediaType::parse(&t);
            let _ = sip::CSeq::parse(&t);
            let _ = sip::RAck::parse(&t);
            let _ = sip::ValueParams::parse_list(&t);
            let _ = sip::values::parse_token_list(&t);
            let _ = sip::values::parse_call_id(&t);
            let _ = sip::Method::parse(&t);
            let _ = sip::sdp::Sdp::parse(t.as_bytes()).map(|s| s.to_string());
            let _ = sip::unescape(&t);
            let _ = sip::values::validate(&HeaderName::from("From"), &t);
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512), chunk in 1usize..64) {
        run_all(&data, chunk);
    }

    #[test]
    fn random_start_lines_and_headers(line in "[A-Za-z0-9:;,<>\"@%/. \\t=?&\\[\\]-]{0,60}", name in "[A-Za-z-]{1,12}|[vftimlcks]") {
        let msg = format!("INVITE sip:a@b SIP/2.0\r\n{name}: {line}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
        run_all(msg.as_bytes(), 7);
        let start = format!("{line}\r\nCall-ID: x\r\n\r\n");
        run_all(start.as_bytes(), 3);
        let _ = sip::Uri::parse(&line);
        let _ = sip::NameAddr::parse_list(&line);
        let _ = sip::Via::parse_list(&line);
        let _ = sip::Auth::parse(&line);
        let _ = sip::MediaType::parse(&line);
    }
}

#[test]
fn stream_framing_agrees_with_datagram_parsing_at_every_chunk_size() {
    let mut compared = 0;
    for raw in corpus() {
        let datagram = parse_message(&raw);
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let mut f = StreamFramer::new(Limits::default());
            let mut first = None;
            for piece in raw.chunks(chunk) {
                f.push(piece);
                while let Some(ev) = f.poll() {
                    first.get_or_insert(ev);
                }
            }
            match (&datagram, first) {
                // With a Content-Length both paths must see the same first message.
                (Ok(m), Some(Ok(StreamEvent::Message(s)))) => {
                    assert_eq!(m, &s);
                    compared += 1;
                }
                // No Content-Length: a stream refuses what a datagram accepts (inv2543).
                (Ok(m), Some(Err(sip::ParseError::MissingContentLength))) => {
                    assert!(m.headers().content_length().is_none());
                }
                // clerr: the stream waits for the rest of the body.
                (Err(sip::ParseError::BodyTooShort { .. }), None) => {}
                (Err(_), Some(Err(_))) => {}
                (d, s) => panic!("datagram {d:?} vs stream {s:?}"),
            }
        }
    }
    assert!(compared >= 34 * 6, "compared {compared}");
}
