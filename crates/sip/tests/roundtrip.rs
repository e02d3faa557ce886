//! parse -> serialize -> parse is lossless on every RFC 4475 message that parses.

use sip::{HeaderName, Message, parse_message};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rfc4475/msgs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Messages equal apart from Content-Length, which the serializer writes from the body.
fn assert_same(file: &str, a: &Message, b: &Message) {
    let strip = |m: &Message| {
        let mut m = m.clone();
        m.headers_mut().remove(&HeaderName::ContentLength);
        m
    };
    assert_eq!(strip(a), strip(b), "{file}");
}

#[test]
fn every_valid_corpus_message_round_trips() {
    let mut parsed = 0;
    for (file, raw) in corpus() {
        let Ok(first) = parse_message(&raw) else {
            continue;
        };
        parsed += 1;
        let bytes = first.to_bytes();
        let second =
            parse_message(&bytes).unwrap_or_else(|e| panic!("{file}: re-parse failed: {e}"));
        assert_same(&file, &first, &second);
        // Canonical output is a fixed point.
        assert_eq!(second.to_bytes(), bytes, "{file}");
        // Content-Length always present and right.
        assert_eq!(
            second.headers().content_length(),
            Some(second.body().len()),
            "{file}"
        );
        // Typed views agree too.
        assert_eq!(first.vias(), second.vias(), "{file}");
        assert_eq!(first.from(), second.from(), "{file}");
        assert_eq!(first.to(), second.to(), "{file}");
        assert_eq!(first.contacts(), second.contacts(), "{file}");
    }
    assert_eq!(parsed, 35);
}

#[test]
fn unknown_headers_keep_name_value_and_order() {
    let raw = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
X-First: 1\r\n\
Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
x-lower-CASE:  ;;,,;;,;  \r\n\
From: <sip:b@example.com>;tag=1\r\n\
X-First: 2\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: rt1\r\n\
CSeq: 1 OPTIONS\r\n\
P-Weird:\r\n\
\r\n";
    let m = parse_message(raw).unwrap();
    let out = String::from_utf8(m.to_bytes()).unwrap();
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect();
    assert_eq!(
        names,
        [
            "X-First",
            "Via",
            "x-lower-CASE",
            "From",
            "X-First",
            "To",
            "Call-ID",
            "CSeq",
            "P-Weird",
            "Content-Length"
        ]
    );
    assert!(out.contains("\r\nx-lower-CASE: ;;,,;;,;\r\n"));
    assert!(out.contains("\r\nP-Weird: \r\n"));
    let again = parse_message(out.as_bytes()).unwrap();
    let firsts: Vec<&str> = again
        .headers()
        .get_all(&HeaderName::from("x-first"))
        .map(|v| v.as_str())
        .collect();
    assert_eq!(firsts, ["1", "2"]);
}

#[test]
fn compact_forms_are_written_long() {
    let raw = b"OPTIONS sip:a@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:b@h>;tag=1\r\nt: <sip:a@h>\r\ni: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    let out = String::from_utf8(parse_message(raw).unwrap().to_bytes()).unwrap();
    assert_eq!(
        out,
        "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
}

/// Writing typed values back (as a B2BUA rewriting From/To/Contact/Via does) gives text that
/// parses to the same typed values, even for the torture messages' display names and URIs.
#[test]
fn typed_values_written_back_parse_the_same() {
    for (file, raw) in corpus() {
        let Ok(mut m) = parse_message(&raw) else {
            continue;
        };
        let (from, to, contacts, vias) = (m.from(), m.to(), m.contacts(), m.vias());
        let h = m.headers_mut();
        if let Some(f) = &from {
            h.set_typed(HeaderName::From, f);
        }
        if let Some(t) = &to {
            h.set_typed(HeaderName::To, t);
        }
        if !contacts.is_empty() {
            let text: Vec<String> = contacts.iter().map(|c| c.to_string()).collect();
            h.set(HeaderName::Contact, text.join(", "));
        }
        if !vias.is_empty() {
            let text: Vec<String> = vias.iter().map(|v| v.to_string()).collect();
            h.set(HeaderName::Via, text.join(", "));
        }
        let again = parse_message(&m.to_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            again.from().map(|f| (f.display_name, f.uri, f.params)),
            from.map(|f| (f.display_name, f.uri, f.params)),
            "{file}"
        );
        assert_eq!(
            again.to().map(|t| (t.display_name, t.uri, t.params)),
            to.map(|t| (t.display_name, t.uri, t.params)),
            "{file}"
        );
        assert_eq!(again.vias(), vias, "{file}");
        assert_eq!(again.contacts().len(), contacts.len(), "{file}");
    }
}
