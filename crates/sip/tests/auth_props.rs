//! Property tests for the digest header parser and formatter: arbitrary input never panics, and
//! whatever we format parses back to the same value.

use proptest::prelude::*;
use sip::auth::{
    Algorithm, AuthorizationValue, Challenge, ChallengeValue, Credentials, Qop, parse_auth_list,
    parse_challenges, parse_credentials,
};

fn text() -> impl Strategy<Value = String> {
    // Printable text with the characters that need escaping inside quoted strings.
    proptest::string::string_regex("[ -~]{0,24}").unwrap()
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(vec![
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics(s in "[ -~\t\r\n\u{80}-\u{10ffff}]{0,80}") {
        let _ = parse_auth_list(&s);
        let _ = parse_credentials(&s);
        let _ = parse_challenges(&s);
    }

    #[test]
    fn mutated_header_never_panics(cut in 0usize..200, insert in "[\"\\\\,= ]{0,3}") {
        let base = r#"Digest username="a\"b", realm="r", nonce="n", uri="sip:x", response="0a", qop=auth, nc=00000001, cnonce="c""#;
        let cut = cut.min(base.len());
        let s = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
        let _ = parse_credentials(&s);
    }

    #[test]
    fn credentials_roundtrip(
        username in text(), realm in text(), nonce in text(), uri in text(), cnonce in text(),
        opaque in proptest::option::of(text()), algorithm in algorithm(),
        response in "[0-9a-f]{32,64}", nc in any::<u32>(), with_qop in any::<bool>(),
    ) {
        let c = Credentials {
            username, realm, nonce, uri, response, algorithm,
            cnonce: with_qop.then_some(cnonce),
            opaque,
            qop: with_qop.then_some(Qop::Auth),
            nc: with_qop.then_some(nc),
            userhash: false,
        };
        let parsed = parse_credentials(&c.to_string()).unwrap();
        prop_assert_eq!(parsed, AuthorizationValue::Digest(c));
    }

    #[test]
    fn challenge_roundtrip(
        realm in text(), nonce in text(), opaque in proptest::option::of(text()),
        algorithm in algorithm(), stale in any::<bool>(), auth_int in any::<bool>(),
    ) {
        let mut qop = vec![Qop::Auth];
        if auth_int {
            qop.push(Qop::AuthInt);
        }
        let c = Challenge { realm, nonce, opaque, algorithm, qop, stale, domain: None, userhash: false };
        let parsed = parse_challenges(&c.to_string()).unwrap();
        prop_assert_eq!(parsed, vec![ChallengeValue::Digest(c)]);
    }
}
