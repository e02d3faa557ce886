//! Digest authentication: RFC example vectors, parsing edge cases, server/client behaviour.

use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sip::auth::{
    Algorithm, AuthError, AuthorizationValue, Challenge, ChallengeValue, Credentials, DigestClient,
    DigestRequest, DigestServer, DigestServerConfig, Qop, ResponseInputs, VerifyError,
    compute_response, ha1, parse_auth_list, parse_challenges, parse_credentials,
};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const T0: u64 = 1_800_000_000;

fn digest_creds(value: &str) -> Credentials {
    match parse_credentials(value).unwrap() {
        AuthorizationValue::Digest(c) => c,
        AuthorizationValue::Other(o) => panic!("not digest: {o:?}"),
    }
}

fn digest_challenges(values: &[String]) -> Vec<Challenge> {
    values
        .iter()
        .flat_map(|v| parse_challenges(v).unwrap())
        .filter_map(|c| match c {
            ChallengeValue::Digest(c) => Some(c),
            ChallengeValue::Other(_) => None,
        })
        .collect()
}

// RFC 7616 §3.9.1: both the MD5 and SHA-256 responses of the example.
#[test]
fn rfc7616_example_vectors() {
    let req = DigestRequest {
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
    };
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    let realm = "http-auth@example.org";
    for (alg, want) in [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let h = ha1(alg, "Mufasa", realm, "Circle of Life");
        let inputs = ResponseInputs {
            algorithm: alg,
            nonce,
            qop: Some(Qop::Auth),
            nc: 1,
            cnonce,
        };
        assert_eq!(compute_response(&h, &inputs, &req), want, "{alg}");
    }

    // The SHA-256 Authorization header from the RFC parses to the same values.
    let header = r#"Digest username="Mufasa", realm="http-auth@example.org",
        uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,
        response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    let c = digest_creds(header);
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.nc, Some(1));
    assert_eq!(c.qop, Some(Qop::Auth));
    assert_eq!(c.cnonce.as_deref(), Some(cnonce));
    // Formatting and parsing again is lossless.
    assert_eq!(digest_creds(&c.to_string()), c);
}

// RFC 7616 §3.9.1: the server's two challenges, SHA-256 first.
#[test]
fn rfc7616_challenges_parse() {
    let a = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    let b = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    let cs = digest_challenges(&[b.to_owned(), a.to_owned()]);
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[1].qop, vec![Qop::Auth, Qop::AuthInt]);
    // The client picks SHA-256 even though MD5 came first.
    assert_eq!(
        DigestClient::select(&cs).map(|c| c.algorithm),
        Some(Algorithm::Sha256)
    );
}

// RFC 2617 §3.5 example (MD5, qop=auth).
#[test]
fn rfc2617_example_vector() {
    let header = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    let c = digest_creds(header);
    assert_eq!(c.algorithm, Algorithm::Md5, "absent algorithm means MD5");
    let h = ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    let inputs = ResponseInputs {
        algorithm: c.algorithm,
        nonce: &c.nonce,
        qop: c.qop,
        nc: 1,
        cnonce: "0a4f113b",
    };
    let req = DigestRequest {
        method: "GET",
        uri: &c.uri,
        body: b"",
    };
    assert_eq!(compute_response(&h, &inputs, &req), c.response);
}

// RFC 4475 §3.1.2.1 regaut01: an unknown scheme parses as "other" so the server can re-challenge.
#[test]
fn unknown_scheme_is_other() {
    match parse_credentials("NoOneKnowsThisScheme opaque-data=here").unwrap() {
        AuthorizationValue::Other(p) => {
            assert_eq!(p.scheme, "NoOneKnowsThisScheme");
            assert_eq!(p.get("OPAQUE-DATA"), Some("here"));
        }
        AuthorizationValue::Digest(_) => panic!("must not be digest"),
    }
    // And a Basic token68 challenge list mixed with Digest.
    let list = parse_auth_list(r#"Basic realm="x", Digest realm="r", nonce="n""#).unwrap();
    assert_eq!(list.len(), 2);
    let basic = parse_auth_list("Basic dXNlcjpwYXNz==").unwrap();
    assert_eq!(basic[0].token68.as_deref(), Some("dXNlcjpwYXNz=="));
}

#[test]
fn quoted_strings_escapes_and_case_insensitive_names() {
    let c = digest_creds(
        r#"digest USERNAME="al\"ice\\", Realm = "r", nonce="n", uri="sip:a@b", response="ABCDEF01", QOP=auth, NC=00000002, cnonce="c""#,
    );
    assert_eq!(c.username, "al\"ice\\");
    assert_eq!(c.response, "abcdef01");
    assert_eq!(c.nc, Some(2));
    // The formatter escapes again.
    assert!(c.to_string().contains(r#"username="al\"ice\\""#));
    assert_eq!(digest_creds(&c.to_string()), c);
}

#[test]
fn malformed_values_are_errors() {
    assert_eq!(parse_auth_list("   "), Err(AuthError::Empty));
    assert!(matches!(
        parse_auth_list(r#"Digest realm="open"#),
        Err(AuthError::Syntax(_))
    ));
    assert!(matches!(
        parse_auth_list("Digest realm=,"),
        Err(AuthError::Syntax(_))
    ));
    assert!(matches!(
        parse_auth_list("Digest realm=a b"),
        Err(AuthError::Syntax(_))
    ));
    assert!(matches!(
        parse_credentials(
            r#"Digest username="a", username="b", realm="r", nonce="n", uri="u", response="00""#
        ),
        Err(AuthError::Duplicate(_))
    ));
    assert!(matches!(
        parse_credentials(
            r#"Digest username="a", realm="r", nonce="n", uri="u", response="00", nc=1"#
        ),
        Err(AuthError::Invalid("nc"))
    ));
    assert!(matches!(
        parse_credentials(r#"Digest username="a", realm="r", nonce="n", uri="u""#),
        Err(AuthError::Missing("response"))
    ));
    assert!(matches!(
        parse_credentials(
            r#"Digest username="a", realm="r", nonce="n", uri="u", response="00", algorithm=SHA-1"#
        ),
        Err(AuthError::UnsupportedAlgorithm(_))
    ));
    // A Digest challenge with an unknown algorithm is ignored by clients, not an error.
    let v = parse_challenges(r#"Digest realm="r", nonce="n", algorithm=SHA3"#).unwrap();
    assert!(matches!(v[0], ChallengeValue::Other(_)));
}

struct Fixture {
    server: DigestServer,
    rng: StdRng,
}

fn fixture() -> Fixture {
    Fixture {
        server: DigestServer::new(DigestServerConfig::new("pbx.test"), b"k3y"),
        rng: StdRng::seed_from_u64(1),
    }
}

const REG: DigestRequest<'static> = DigestRequest {
    method: "REGISTER",
    uri: "sip:pbx.test",
    body: b"",
};

fn login(f: &mut Fixture, user: &str, password: &str, now: u64) -> Credentials {
    let headers: Vec<String> = f
        .server
        .challenges(at(now), false, &mut f.rng)
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut client = DigestClient::new(user, password);
    let creds = client
        .respond(&digest_challenges(&headers), &REG, &mut f.rng)
        .unwrap();
    digest_creds(&creds.to_string())
}

#[test]
fn server_offers_sha256_then_md5() {
    let mut f = fixture();
    let cs = f.server.challenges(at(T0), false, &mut f.rng);
    assert_eq!(
        cs.iter().map(|c| c.algorithm).collect::<Vec<_>>(),
        vec![Algorithm::Sha256, Algorithm::Md5]
    );
    assert!(
        cs.iter()
            .all(|c| c.qop == vec![Qop::Auth] && c.opaque.is_some() && !c.stale)
    );
    // Stateless nonce: 32 bytes as lowercase hex.
    assert_eq!(cs[0].nonce.len(), 64);
    let text = cs[0].to_string();
    assert!(text.starts_with("Digest realm=\"pbx.test\""), "{text}");
    assert!(text.contains("algorithm=SHA-256") && text.contains("qop=\"auth\""));
}

#[test]
fn roundtrip_sha256_and_md5() {
    let mut f = fixture();
    let creds = login(&mut f, "1001", "pw", T0);
    assert_eq!(creds.algorithm, Algorithm::Sha256);
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    assert_eq!(f.server.verify(&creds, &REG, &h, at(T0 + 1)), Ok(()));

    // A client that only knows MD5 sees only the MD5 challenge.
    let ch = f
        .server
        .challenge(Algorithm::Md5, at(T0), false, &mut f.rng);
    let mut client = DigestClient::new("1001", "pw");
    let creds = client.respond(&[ch], &REG, &mut f.rng).unwrap();
    let h = ha1(Algorithm::Md5, "1001", "pbx.test", "pw");
    assert_eq!(f.server.verify(&creds, &REG, &h, at(T0)), Ok(()));
}

#[test]
fn replayed_or_lower_nc_is_rejected() {
    let mut f = fixture();
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    let ch = f
        .server
        .challenge(Algorithm::Sha256, at(T0), false, &mut f.rng);
    let mut client = DigestClient::new("1001", "pw");
    let first = client
        .respond(std::slice::from_ref(&ch), &REG, &mut f.rng)
        .unwrap();
    let second = client.authorize("pbx.test", &REG).unwrap();
    let third = client.authorize("pbx.test", &REG).unwrap();
    assert_eq!((first.nc, second.nc, third.nc), (Some(1), Some(2), Some(3)));
    assert_eq!(first.cnonce, third.cnonce);

    assert_eq!(f.server.verify(&first, &REG, &h, at(T0)), Ok(()));
    assert_eq!(
        f.server.verify(&first, &REG, &h, at(T0)),
        Err(VerifyError::Replay)
    );
    assert_eq!(f.server.verify(&third, &REG, &h, at(T0)), Ok(()));
    // nc=2 is lower than the nc=3 already seen.
    assert_eq!(
        f.server.verify(&second, &REG, &h, at(T0)),
        Err(VerifyError::Replay)
    );
    assert_eq!(f.server.tracked_nonces(), 1);
}

#[test]
fn expired_nonce_is_stale_only_with_right_password() {
    let mut f = fixture();
    let creds = login(&mut f, "1001", "pw", T0);
    let good = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    let bad = ha1(Algorithm::Sha256, "1001", "pbx.test", "nope");
    let later = at(T0 + 301);
    assert_eq!(
        f.server.verify(&creds, &REG, &bad, later),
        Err(VerifyError::WrongResponse)
    );
    let err = f.server.verify(&creds, &REG, &good, later).unwrap_err();
    assert!(err.is_stale());
    // The stale challenge then carries stale=true and the client succeeds with it.
    let ch = f
        .server
        .challenge(Algorithm::Sha256, later, true, &mut f.rng);
    assert!(ch.to_string().contains("stale=true"));
    let parsed = digest_challenges(&[ch.to_string()]);
    assert!(parsed[0].stale);
    let mut client = DigestClient::new("1001", "pw");
    let creds = client.respond(&parsed, &REG, &mut f.rng).unwrap();
    assert_eq!(f.server.verify(&creds, &REG, &good, later), Ok(()));
}

#[test]
fn tampered_nonce_and_foreign_server_nonce_rejected() {
    let mut f = fixture();
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    let creds = login(&mut f, "1001", "pw", T0);

    // Nonces are 64 lowercase hex digits (no header name can hide in them).
    assert_eq!(creds.nonce.len(), 64);
    assert!(
        creds
            .nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    // A forged nonce with a valid response computed for it: flipping one hex digit makes the
    // MAC fail, and the same bytes spelled in uppercase are not our nonce either.
    let mut flipped: Vec<u8> = creds.nonce.clone().into_bytes();
    flipped[3] = if flipped[3] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for nonce in [flipped, creds.nonce.to_uppercase()] {
        let mut forged = creds.clone();
        forged.nonce = nonce.clone();
        forged.response = compute_response(
            &h,
            &ResponseInputs {
                algorithm: Algorithm::Sha256,
                nonce: &nonce,
                qop: Some(Qop::Auth),
                nc: 1,
                cnonce: creds.cnonce.as_deref().unwrap(),
            },
            &REG,
        );
        assert_eq!(
            f.server.verify(&forged, &REG, &h, at(T0)),
            Err(VerifyError::BadNonce),
            "{nonce}"
        );
    }
    // The genuine one still works after the forgeries.
    assert_eq!(f.server.verify(&creds, &REG, &h, at(T0)), Ok(()));

    // A nonce from a server with another secret is not ours either.
    let mut other = DigestServer::new(DigestServerConfig::new("pbx.test"), b"other");
    let theirs = other.challenge(Algorithm::Sha256, at(T0), false, &mut f.rng);
    let mut client = DigestClient::new("1001", "pw");
    let mut c = client.respond(&[theirs], &REG, &mut f.rng).unwrap();
    c.opaque = creds.opaque.clone();
    assert_eq!(
        f.server.verify(&c, &REG, &h, at(T0)),
        Err(VerifyError::BadNonce)
    );
    assert!(other.verify(&c, &REG, &h, at(T0)).is_err());
}

#[test]
fn wrong_password_uri_realm_and_method_rejected() {
    let mut f = fixture();
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    let wrong = login(&mut f, "1001", "wrong", T0);
    assert_eq!(
        f.server.verify(&wrong, &REG, &h, at(T0)),
        Err(VerifyError::WrongResponse)
    );

    let creds = login(&mut f, "1001", "pw", T0);
    let other_uri = DigestRequest {
        uri: "sip:evil.test",
        ..REG
    };
    assert_eq!(
        f.server.verify(&creds, &other_uri, &h, at(T0)),
        Err(VerifyError::UriMismatch)
    );
    let invite = DigestRequest {
        method: "INVITE",
        ..REG
    };
    assert_eq!(
        f.server.verify(&creds, &invite, &h, at(T0)),
        Err(VerifyError::WrongResponse)
    );
    let mut realm = creds.clone();
    realm.realm = "elsewhere".into();
    assert_eq!(
        f.server.verify(&realm, &REG, &h, at(T0)),
        Err(VerifyError::RealmMismatch)
    );
    let mut opaque = creds.clone();
    opaque.opaque = None;
    assert_eq!(
        f.server.verify(&opaque, &REG, &h, at(T0)),
        Err(VerifyError::OpaqueMismatch)
    );
    // A wrong-length HA1 (e.g. MD5 HA1 for SHA-256 credentials) is reported, not compared.
    let md5 = ha1(Algorithm::Md5, "1001", "pbx.test", "pw");
    assert_eq!(
        f.server.verify(&creds, &REG, &md5, at(T0)),
        Err(VerifyError::BadHa1)
    );
    // Failures did not consume the nonce count: the genuine request still passes.
    assert_eq!(f.server.verify(&creds, &REG, &h, at(T0)), Ok(()));
}

#[test]
fn rfc2069_rejected_unless_enabled() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut cfg = DigestServerConfig::new("pbx.test");
    cfg.qop.clear();
    let mut server = DigestServer::new(cfg.clone(), b"k");
    let ch = server.challenge(Algorithm::Md5, at(T0), false, &mut rng);
    assert!(!ch.to_string().contains("qop"));
    let mut client = DigestClient::new("u", "p");
    let creds = client.respond(&[ch], &REG, &mut rng).unwrap();
    assert_eq!(creds.qop, None);
    assert_eq!(creds.nc, None);
    let h = ha1(Algorithm::Md5, "u", "pbx.test", "p");
    assert_eq!(
        server.verify(&creds, &REG, &h, at(T0)),
        Err(VerifyError::QopNotAcceptable)
    );

    cfg.allow_rfc2069 = true;
    let mut server = DigestServer::new(cfg, b"k");
    assert_eq!(server.verify(&creds, &REG, &h, at(T0)), Ok(()));
}

#[test]
fn qop_omitted_against_qop_server_rejected() {
    let mut f = fixture();
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    let mut creds = login(&mut f, "1001", "pw", T0);
    creds.qop = None;
    creds.nc = None;
    assert_eq!(
        f.server.verify(&creds, &REG, &h, at(T0)),
        Err(VerifyError::QopNotAcceptable)
    );
    let mut creds = login(&mut f, "1001", "pw", T0);
    creds.cnonce = None;
    assert_eq!(
        f.server.verify(&creds, &REG, &h, at(T0)),
        Err(VerifyError::MissingCnonceOrNc)
    );
}

#[test]
fn nonce_from_the_future_rejected() {
    let mut f = fixture();
    let creds = login(&mut f, "1001", "pw", T0 + 3600);
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    assert_eq!(
        f.server.verify(&creds, &REG, &h, at(T0)),
        Err(VerifyError::BadNonce)
    );
}

#[test]
fn sess_and_auth_int_roundtrip() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut cfg = DigestServerConfig::new("pbx.test");
    cfg.algorithms = vec![Algorithm::Sha512_256Sess, Algorithm::Md5Sess];
    cfg.qop = vec![Qop::AuthInt];
    let mut server = DigestServer::new(cfg, b"k");
    let cs = server.challenges(at(T0), false, &mut rng);
    let mut client = DigestClient::new("u", "p");
    let req = DigestRequest {
        method: "INVITE",
        uri: "sip:200@pbx.test",
        body: b"v=0\r\n",
    };
    let creds = client.respond(&cs, &req, &mut rng).unwrap();
    assert_eq!(creds.algorithm, Algorithm::Sha512_256Sess);
    assert_eq!(creds.qop, Some(Qop::AuthInt));
    let h = ha1(creds.algorithm, "u", "pbx.test", "p");
    let tampered_body = DigestRequest {
        body: b"v=1\r\n",
        ..req
    };
    assert_eq!(
        server.verify(&creds, &tampered_body, &h, at(T0)),
        Err(VerifyError::WrongResponse)
    );
    assert_eq!(server.verify(&creds, &req, &h, at(T0)), Ok(()));
}

#[test]
fn many_clients_same_second_do_not_collide() {
    // Nonces carry a random salt, so two phones challenged in the same second get distinct
    // nonces and their nc=1 does not look like a replay.
    let mut f = fixture();
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    for _ in 0..100 {
        let creds = login(&mut f, "1001", "pw", T0);
        assert_eq!(f.server.verify(&creds, &REG, &h, at(T0)), Ok(()));
    }
    assert_eq!(f.server.tracked_nonces(), 100);
}

#[test]
fn bounded_tracker_forgets_oldest_as_stale() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut cfg = DigestServerConfig::new("pbx.test");
    cfg.max_tracked_nonces = 4;
    let mut server = DigestServer::new(cfg, b"k");
    let h = ha1(Algorithm::Sha256, "u", "pbx.test", "p");
    let mut clients = Vec::new();
    for i in 0..6 {
        let ch = server.challenge(Algorithm::Sha256, at(T0 + i), false, &mut rng);
        let mut c = DigestClient::new("u", "p");
        let creds = c.respond(&[ch], &REG, &mut rng).unwrap();
        assert_eq!(server.verify(&creds, &REG, &h, at(T0 + i)), Ok(()));
        clients.push(c);
    }
    assert_eq!(server.tracked_nonces(), 4);
    // The first client's nonce was evicted: its next request is sent back for a new nonce.
    let next = clients[0].authorize("pbx.test", &REG).unwrap();
    assert_eq!(
        server.verify(&next, &REG, &h, at(T0 + 10)),
        Err(VerifyError::Stale)
    );
    // The newest client's nonce is still counted.
    let next = clients[5].authorize("pbx.test", &REG).unwrap();
    assert_eq!(server.verify(&next, &REG, &h, at(T0 + 10)), Ok(()));
}

#[test]
fn digest_uri_compared_as_sip_uri() {
    // The phone wrote the URI with another host case and parameter order than our serialiser.
    let mut f = fixture();
    let h = ha1(Algorithm::Sha256, "1001", "pbx.test", "pw");
    let phone_view = DigestRequest {
        uri: "sip:PBX.test;transport=udp;foo=1",
        ..REG
    };
    let ch = f
        .server
        .challenge(Algorithm::Sha256, at(T0), false, &mut f.rng);
    let mut client = DigestClient::new("1001", "pw");
    let creds = client.respond(&[ch], &phone_view, &mut f.rng).unwrap();
    let our_view = DigestRequest {
        uri: "sip:pbx.test;foo=1;transport=UDP",
        ..REG
    };
    assert_eq!(f.server.verify(&creds, &our_view, &h, at(T0)), Ok(()));
    // Another user part is another URI.
    let other = DigestRequest {
        uri: "sip:1002@pbx.test",
        ..REG
    };
    assert_eq!(
        f.server.verify(&creds, &other, &h, at(T0)),
        Err(VerifyError::UriMismatch)
    );
}

// RFC 4475 §3.3.7 regaut01, read from the shared test data through the message parser.
#[test]
fn rfc4475_regaut01_from_corpus() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/rfc4475/msgs/regaut01.dat");
    let raw = std::fs::read(path).unwrap();
    let sip::Message::Request(req) = sip::parse_message(&raw).unwrap() else {
        panic!("regaut01 is a request")
    };
    let value = req
        .headers
        .get_str(&sip::HeaderName::Authorization)
        .unwrap();
    let AuthorizationValue::Other(p) = parse_credentials(value).unwrap() else {
        panic!("unknown scheme must not parse as Digest")
    };
    assert_eq!(p.scheme, "NoOneKnowsThisScheme");
    // The registrar then answers 401 with challenges it understands.
    let mut f = fixture();
    let cs = f.server.challenges(at(T0), false, &mut f.rng);
    assert_eq!(cs.len(), 2);
}
