//! Issue → verify round trips and every refusal, through the public API only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, TimeDelta, Utc};
use license::issuer::{SigningKey, issue, payload_bytes, sign_payload, test_signing_key};
use license::{
    Keyring, License, LicenseError, LicenseKind, Limits, MAX_LICENSE_BYTES, PublicKey, Topology,
    verify, verify_signature,
};

const NODE: &str = "dn-aaaa-0001";

fn at(s: &str) -> DateTime<Utc> {
    license::terms::parse_utc(s).expect("test instant")
}

fn now() -> DateTime<Utc> {
    at("2026-06-01T12:00:00Z")
}

fn terms() -> License {
    License {
        id: "DL-20260101-0badcafe".into(),
        customer: "Example KK".into(),
        kind: LicenseKind::Standard,
        topology: Topology::ActiveStandby,
        nodes: vec![NODE.into(), "dn-aaaa-0002".into()],
        limits: Limits {
            extensions: Some(500),
            concurrent_calls: Some(120),
            tenants: Some(1),
            trunks: None,
        },
        features: ["recording".to_owned(), "reports".to_owned()].into(),
        valid_from: at("2026-01-01T00:00:00Z"),
        valid_until: at("2027-01-01T00:00:00Z"),
        issued_at: at("2025-12-20T09:30:00Z"),
    }
}

fn signed(terms: &License) -> String {
    issue(terms, &test_signing_key()).expect("sane terms")
}

fn dev() -> Keyring {
    Keyring::with_test_key()
}

fn refusal(text: &[u8]) -> LicenseError {
    verify(text, &dev(), NODE, now()).expect_err("must be refused")
}

/// The armour split into (before body, body base64, after body).
fn split_body(text: &str) -> (String, String, String) {
    let (head, rest) = text.split_once("\n\n").expect("blank line after headers");
    let (body, tail) = rest.split_once("-----END").expect("END line");
    (
        format!("{head}\n\n"),
        body.replace('\n', ""),
        format!("-----END{tail}"),
    )
}

/// Re-armours a changed payload under the original headers and signature.
fn with_payload(text: &str, change: impl FnOnce(String) -> String) -> String {
    let (head, body, tail) = split_body(text);
    let payload = String::from_utf8(B64.decode(body).expect("base64")).expect("utf-8");
    let changed = change(payload);
    format!("{head}{}\n{tail}", B64.encode(changed))
}

#[test]
fn round_trip_issue_then_verify() {
    let t = terms();
    let text = signed(&t);
    assert!(
        text.contains("-----BEGIN DENWA LICENSE-----\nFormat: 1\nKey-Id: "),
        "{text}"
    );
    let v = verify(text.as_bytes(), &dev(), NODE, now()).expect("valid");
    assert_eq!(v.license, t);
    assert_eq!(&v.key_id, PublicKey::test().id());
    assert!(v.test_key);
    // The second node named works too; so do CRLF line ends.
    verify(text.as_bytes(), &dev(), "dn-aaaa-0002", now()).expect("second node");
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(
        verify(crlf.as_bytes(), &dev(), NODE, now()).map(|v| v.license),
        Ok(t)
    );
}

#[test]
fn payload_is_canonical_json_with_a_format_field() {
    let bytes = payload_bytes(&terms());
    let json = String::from_utf8(bytes).expect("utf-8");
    assert!(
        json.starts_with(r#"{"format":1,"license":{"id":"DL-20260101-0badcafe","#),
        "{json}"
    );
    assert!(
        json.contains(
            r#""limits":{"extensions":500,"concurrent_calls":120,"tenants":1,"trunks":"unlimited"}"#
        ),
        "{json}"
    );
    assert!(
        json.contains(r#""features":["recording","reports"]"#),
        "{json}"
    );
    assert!(
        json.contains(r#""valid_until":"2027-01-01T00:00:00Z""#),
        "{json}"
    );
}

#[test]
fn comment_lines_are_not_signed_and_do_not_matter() {
    let text = signed(&terms());
    let edited = text.replace("Example KK", "Someone Else");
    let v = verify(edited.as_bytes(), &dev(), NODE, now()).expect("comments are ignored");
    assert_eq!(v.license.customer, "Example KK");
}

#[test]
fn tampered_payload_byte_is_refused() {
    let text = signed(&terms());
    let tampered = with_payload(&text, |p| {
        p.replace(r#""extensions":500"#, r#""extensions":900"#)
    });
    assert_ne!(tampered, text);
    let err = refusal(tampered.as_bytes());
    assert!(matches!(err, LicenseError::BadSignature { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the licence signature does not match its contents: the file was altered after key 55011183bf34c8ee signed it"
    );
    // One base64 character of the body changed is caught the same way.
    let (head, body, tail) = split_body(&text);
    let mut chars: Vec<char> = body.chars().collect();
    chars[40] = if chars[40] == 'A' { 'B' } else { 'A' };
    let flipped = format!("{head}{}\n{tail}", chars.into_iter().collect::<String>());
    assert_eq!(refusal(flipped.as_bytes()).code(), "bad_signature");
}

#[test]
fn tampered_signature_is_refused() {
    let text = signed(&terms());
    let line = text
        .lines()
        .find(|l| l.starts_with("Signature: "))
        .expect("signature line");
    let sig = &line["Signature: ".len()..];
    let other = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", sig.get(1..).expect("non-empty signature")),
    };
    let tampered = text.replace(sig, &other);
    assert_eq!(refusal(tampered.as_bytes()).code(), "bad_signature");
}

#[test]
fn unknown_signing_key_is_refused_as_wrong_vendor() {
    let other = SigningKey::generate();
    let text = issue(&terms(), &other).expect("sane");
    let err = refusal(text.as_bytes());
    let LicenseError::UnknownKey {
        key_id,
        test_key,
        trusted,
    } = &err
    else {
        panic!("expected UnknownKey, got {err:?}")
    };
    assert_eq!(key_id, &other.key_id());
    assert!(!test_key);
    assert_eq!(trusted, &dev().ids());
    let msg = err.to_string();
    assert!(
        msg.contains(other.key_id().as_str()) && msg.contains("not a Denwa vendor key"),
        "{msg}"
    );
    assert!(msg.contains(PublicKey::vendor().id().as_str()), "{msg}");

    // A keyring the caller extends with that key accepts it.
    let mut ring = Keyring::vendor();
    ring.add(other.public_key());
    let v = verify(text.as_bytes(), &ring, NODE, now()).expect("added key");
    assert!(!v.test_key);

    // Naming a trusted key id does not help a signature made by another key.
    let forged = text.replace(other.key_id().as_str(), PublicKey::test().id().as_str());
    assert_eq!(refusal(forged.as_bytes()).code(), "bad_signature");
}

#[test]
fn test_key_licence_is_refused_by_the_vendor_keyring_and_accepted_in_dev_mode() {
    let text = signed(&terms());
    let err = verify(text.as_bytes(), &Keyring::vendor(), NODE, now()).expect_err("vendor only");
    assert!(
        matches!(err, LicenseError::UnknownKey { test_key: true, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("TEST key") && msg.contains("DENWA_LICENSE_DEV=1"),
        "{msg}"
    );
    assert!(verify(text.as_bytes(), &Keyring::with_test_key(), NODE, now()).is_ok());
    assert!(Keyring::with_test_key().trusts_test_key());
    assert!(!Keyring::vendor().trusts_test_key());
}

#[test]
fn not_yet_valid_is_refused_with_the_start() {
    let text = signed(&terms());
    let before = at("2025-12-31T23:59:59Z");
    let err = verify(text.as_bytes(), &dev(), NODE, before).expect_err("early");
    assert_eq!(
        err.to_string(),
        "the licence is not valid until 2026-01-01T00:00:00Z (it is now 2025-12-31T23:59:59Z)"
    );
    assert!(verify(text.as_bytes(), &dev(), NODE, at("2026-01-01T00:00:00Z")).is_ok());
}

#[test]
fn expired_is_refused_with_the_end() {
    let text = signed(&terms());
    assert!(verify(text.as_bytes(), &dev(), NODE, at("2026-12-31T23:59:59Z")).is_ok());
    let err = verify(text.as_bytes(), &dev(), NODE, at("2027-01-01T00:00:00Z")).expect_err("ended");
    assert_eq!(
        err.to_string(),
        "the licence expired on 2027-01-01T00:00:00Z"
    );
    assert_eq!(err.code(), "expired");
}

#[test]
fn wrong_node_is_refused_naming_both_sides() {
    let text = signed(&terms());
    let err = verify(text.as_bytes(), &dev(), "dn-bbbb-0003", now()).expect_err("other node");
    assert_eq!(
        err.to_string(),
        "the licence is for nodes dn-aaaa-0001, dn-aaaa-0002; this node is dn-bbbb-0003"
    );
    let mut one = terms();
    one.nodes = vec![NODE.into()];
    let err = verify(signed(&one).as_bytes(), &dev(), "dn-x", now()).expect_err("other node");
    assert_eq!(
        err.to_string(),
        "the licence is for node dn-aaaa-0001; this node is dn-x"
    );
}

#[test]
fn evaluation_licences_may_run_anywhere_for_at_most_90_days() {
    let mut t = terms();
    t.kind = LicenseKind::Evaluation;
    t.nodes.clear();
    t.valid_until = t.valid_from + TimeDelta::days(90);
    let text = signed(&t);
    let start = t.valid_from;
    verify(text.as_bytes(), &dev(), "dn-anything", start).expect("any node");

    t.valid_until = t.valid_from + TimeDelta::days(91);
    let err = issue(&t, &test_signing_key()).expect_err("too long");
    assert!(err.to_string().contains("at most 90 days"), "{err}");
    // Even if signed anyway, verification refuses it.
    let forced = sign_payload("", &payload_bytes(&t), &test_signing_key());
    assert_eq!(refusal(forced.as_bytes()).code(), "invalid_terms");

    // A standard licence must name a node.
    let mut unbound = terms();
    unbound.nodes.clear();
    let err = issue(&unbound, &test_signing_key()).expect_err("no node");
    assert_eq!(
        err.to_string(),
        "the licence's terms are not usable: a standard licence must name at least one node"
    );
}

#[test]
fn nonsense_limits_and_terms_are_refused() {
    type Change = Box<dyn Fn(&mut License)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|t| t.limits.extensions = Some(0)),
            "it allows 0 extensions; a licence allows at least 1",
        ),
        (
            Box::new(|t| t.limits.concurrent_calls = Some(0)),
            "it allows 0 simultaneous calls",
        ),
        (
            Box::new(|t| t.limits.tenants = Some(0)),
            "it allows 0 tenants",
        ),
        (
            Box::new(|t| t.valid_until = t.valid_from),
            "is not after valid-from",
        ),
        (
            Box::new(|t| t.nodes = vec!["Bad Node".into()]),
            "is not a valid node identity",
        ),
        (
            Box::new(|t| t.nodes = vec![NODE.into(), NODE.into()]),
            "the same node twice",
        ),
        (Box::new(|t| t.customer = " ".into()), "customer"),
        (Box::new(|t| t.id = "has space".into()), "licence id"),
        (
            Box::new(|t| {
                t.features.insert("Bad Feature".into());
            }),
            "feature",
        ),
    ];
    for (change, expected) in cases {
        let mut t = terms();
        change(&mut t);
        let err = issue(&t, &test_signing_key()).expect_err("issue refuses");
        assert!(err.to_string().contains(expected), "{err} / {expected}");
        let forced = sign_payload("", &payload_bytes(&t), &test_signing_key());
        let err = refusal(forced.as_bytes());
        assert!(
            matches!(&err, LicenseError::InvalidTerms { reason } if reason.contains(expected)),
            "{err:?}"
        );
    }
    // Zero trunks is a legitimate internal-only PBX.
    let mut t = terms();
    t.limits.trunks = Some(0);
    assert!(verify(signed(&t).as_bytes(), &dev(), NODE, now()).is_ok());
}

#[test]
fn unknown_format_versions_are_refused() {
    let text = signed(&terms());
    let header = text.replace("Format: 1\n", "Format: 2\n");
    let err = refusal(header.as_bytes());
    assert_eq!(
        err.to_string(),
        "the licence is in format version 2; this Denwa reads version 1 (a newer Denwa may be needed)"
    );
    // A signed payload that says version 2 is refused as such too.
    let v2 = String::from_utf8(payload_bytes(&terms()))
        .expect("utf-8")
        .replacen(r#"{"format":1"#, r#"{"format":2"#, 1);
    let text = sign_payload("", v2.as_bytes(), &test_signing_key());
    assert!(
        matches!(refusal(text.as_bytes()), LicenseError::UnknownVersion { found, .. } if found == "2")
    );
}

#[test]
fn malformed_files_are_refused_saying_what_is_wrong() {
    let good = signed(&terms());
    let key = test_signing_key();
    let json = String::from_utf8(payload_bytes(&terms())).expect("utf-8");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "the file is empty"),
        (b"\n \n".to_vec(), "the file is empty"),
        (b"hello world".to_vec(), "unexpected text before"),
        (
            b"# only a comment\n".to_vec(),
            "no \"-----BEGIN DENWA LICENSE-----\" line",
        ),
        (vec![0xff, 0xfe, 0x00, 0x41], "not UTF-8"),
        (
            good.replace("-----END DENWA LICENSE-----\n", "")
                .into_bytes(),
            "no \"-----END DENWA LICENSE-----\" line",
        ),
        (
            format!("{good}trailing words\n").into_bytes(),
            "unexpected text after",
        ),
        (
            good.replace("Key-Id: ", "Key-Idx: ").into_bytes(),
            "unknown header \"Key-Idx\"",
        ),
        (
            good.replace("Format: 1\n", "Format: 1\nFormat: 1\n")
                .into_bytes(),
            "appears twice",
        ),
        (
            good.replace("Format: 1\n", "").into_bytes(),
            "no Format header",
        ),
        (
            good.replace("Format: 1\n", "Format: one\n").into_bytes(),
            "is not a number",
        ),
        (
            good.replace("Key-Id: 55011183bf34c8ee", "Key-Id: 55011183")
                .into_bytes(),
            "16 lowercase hex",
        ),
        (
            good.replace("Signature: ", "Signature: !").into_bytes(),
            "signature is not base64",
        ),
        (
            with_payload(&good, |_| String::new()).into_bytes(),
            "body is empty",
        ),
        (
            sign_payload("", b"hello", &key).into_bytes(),
            "payload is not a licence object",
        ),
        (
            sign_payload("", br#"{"format":1}"#, &key).into_bytes(),
            "missing field `license`",
        ),
        (
            sign_payload(
                "",
                json.replace(r#""trunks":"unlimited""#, r#""trunks":"lots""#)
                    .as_bytes(),
                &key,
            )
            .into_bytes(),
            "\"lots\"",
        ),
        (
            sign_payload(
                "",
                json.replace(r#","trunks":"unlimited""#, "").as_bytes(),
                &key,
            )
            .into_bytes(),
            "missing field `trunks`",
        ),
        (
            sign_payload(
                "",
                json.replace(r#""customer""#, r#""customer":"Someone","customer""#)
                    .as_bytes(),
                &key,
            )
            .into_bytes(),
            "duplicate field `customer`",
        ),
        (
            sign_payload(
                "",
                json.replace(r#""customer""#, r#""extra":1,"customer""#)
                    .as_bytes(),
                &key,
            )
            .into_bytes(),
            "unknown field `extra`",
        ),
        (
            sign_payload(
                "",
                json.replace("2027-01-01T00:00:00Z", "2027-01-01T09:00:00+09:00")
                    .as_bytes(),
                &key,
            )
            .into_bytes(),
            "not in UTC",
        ),
        (
            sign_payload(
                "",
                json.replace(r#""topology":"active-standby""#, r#""topology":"mesh""#)
                    .as_bytes(),
                &key,
            )
            .into_bytes(),
            "unknown variant `mesh`",
        ),
    ];
    for (text, expected) in cases {
        let err = refusal(&text);
        assert!(
            matches!(&err, LicenseError::Malformed { reason } if reason.contains(expected)),
            "expected Malformed containing {expected:?}, got {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("the licence file is malformed: "),
            "{err}"
        );
    }
    // A body line with a non-base64 character.
    let (head, body, tail) = split_body(&good);
    let broken = format!("{head}{}*\n{tail}", &body);
    assert!(
        matches!(refusal(broken.as_bytes()), LicenseError::Malformed { reason } if reason.contains("not base64"))
    );
}

#[test]
fn garbage_is_refused_without_panicking() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for len in [1usize, 7, 64, 300, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(refusal(&bytes).code(), "malformed");
    }
    // Truncations of a good licence never verify and never panic.
    let good = signed(&terms());
    for cut in (0..good.len()).step_by(7) {
        assert!(verify(&good.as_bytes()[..cut], &dev(), NODE, now()).is_err());
    }
}

#[test]
fn huge_input_is_refused_before_parsing() {
    let huge = vec![b'A'; MAX_LICENSE_BYTES + 1];
    let err = refusal(&huge);
    assert_eq!(
        err,
        LicenseError::TooLarge {
            len: 65_537,
            max: 65_536
        }
    );
    assert_eq!(
        err.to_string(),
        "the licence file is 65537 bytes; a Denwa licence is at most 65536 bytes"
    );
    // At the limit it is read (and refused for what it is).
    assert_eq!(refusal(&huge[..MAX_LICENSE_BYTES]).code(), "malformed");
    // A valid licence padded past the limit with comments is still refused.
    let padded = format!(
        "{}{}",
        "#\n".repeat(MAX_LICENSE_BYTES / 2),
        signed(&terms())
    );
    assert_eq!(refusal(padded.as_bytes()).code(), "too_large");
}

#[test]
fn verify_signature_checks_neither_node_nor_time() {
    let text = signed(&terms());
    let v = verify_signature(text.as_bytes(), &dev()).expect("signature and terms");
    assert!(v.check_node("dn-other").is_err());
    assert!(v.check_time(at("2030-01-01T00:00:00Z")).is_err());
    assert!(v.check_started(at("2030-01-01T00:00:00Z")).is_ok());
}

#[test]
fn every_refusal_has_its_own_code() {
    let codes = [
        LicenseError::TooLarge { len: 0, max: 0 }.code(),
        LicenseError::Malformed {
            reason: String::new(),
        }
        .code(),
        LicenseError::UnknownVersion {
            found: String::new(),
            supported: 1,
        }
        .code(),
        LicenseError::UnknownKey {
            key_id: PublicKey::test().id().clone(),
            test_key: false,
            trusted: vec![],
        }
        .code(),
        LicenseError::BadSignature {
            key_id: PublicKey::test().id().clone(),
        }
        .code(),
        LicenseError::NotYetValid {
            valid_from: now(),
            now: now(),
        }
        .code(),
        LicenseError::Expired { valid_until: now() }.code(),
        LicenseError::WrongNode {
            nodes: vec![],
            this_node: String::new(),
        }
        .code(),
        LicenseError::InvalidTerms {
            reason: String::new(),
        }
        .code(),
    ];
    let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
}
