//! RFC 4475 torture tests: every message through the datagram path, checked against
//! `tests/data/rfc4475/expectations.tsv` and against values read from the messages themselves.

use bytes::Bytes;
use sip::check::{CheckConfig, check_accept, check_content_type, check_request};
use sip::framing::{Datagram, decode_datagram};
use sip::parse::Limits;
use sip::{HeaderName, Message, Method, ParseError, Uri, error_response};

fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rfc4475")
}

fn load(file: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("msgs").join(file)).unwrap()
}

fn decode(file: &str) -> Result<Message, ParseError> {
    match decode_datagram(Bytes::from(load(file)), &Limits::default())? {
        Datagram::Message(m) => Ok(m),
        Datagram::KeepAlive => panic!("{file} decoded as keep-alive"),
    }
}

/// What a server built on this crate answers: parser, generic checks (as a proxy/B2BUA that
/// enforces Proxy-Require and Max-Forwards), registrar rule, and the SDP-only UAS body checks.
fn server_outcome(m: &Message) -> Result<(), u16> {
    let Message::Request(r) = m else {
        return Ok(());
    };
    let cfg = CheckConfig {
        proxy: true,
        ..CheckConfig::default()
    };
    check_request(r, &cfg).map_err(|e| e.status)?;
    check_content_type(r, &[("application", "sdp"), ("multipart", "mixed")])
        .map_err(|e| e.status)?;
    check_accept(r, &[("application", "sdp")]).map_err(|e| e.status)?;
    Ok(())
}

#[test]
fn every_row_of_expectations_tsv_holds() {
    let tsv = std::fs::read_to_string(data_dir().join("expectations.tsv")).unwrap();
    let mut rows = 0;
    for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, kind, class, expect) = (cols[0], cols[3], cols[4], cols[5]);
        rows += 1;
        let parsed = decode(file);
        let alternatives: Vec<&str> = expect.split('|').collect();
        match (&parsed, class) {
            (Err(e), _) => {
                // Rejected by the parser: acceptable wherever an error status (or a drop) is.
                let ok = alternatives
                    .iter()
                    .any(|a| *a == "400" || *a == "4xx" || *a == "none");
                assert!(
                    ok,
                    "{file}: parser rejected ({e}) but the table expects {expect}"
                );
                assert!(
                    class == "REJECT" || class == "DROP",
                    "{file}: class {class} must parse, got {e}"
                );
            }
            (Ok(m), _) => {
                assert_eq!(
                    kind == "response",
                    m.as_response().is_some(),
                    "{file}: wrong message kind"
                );
                let outcome = server_outcome(m);
                let ok = alternatives.iter().any(|a| match (*a, outcome) {
                    ("parsed" | "parsed-response", Ok(())) => true,
                    ("4xx", Err(s)) => (400..500).contains(&s),
                    // bcast: parses, but the transport must drop it (unusable Via sent-by).
                    ("none", Ok(())) => m.vias().iter().any(|v| v.sent_by_is_unusable()),
                    (code, Err(s)) => code.parse::<u16>() == Ok(s),
                    _ => false,
                });
                assert!(ok, "{file}: outcome {outcome:?} not in {expect}");
            }
        }
    }
    assert_eq!(rows, 49);
}

/// The 14 messages README.md lists as syntactically invalid, with the fault each must name.
#[test]
fn syntactically_invalid_messages_are_rejected_with_the_fault() {
    let header = |name: HeaderName| move |e: &ParseError| matches!(e, ParseError::Header { name: n, .. } if *n == name);
    type Pred = Box<dyn Fn(&ParseError) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        ("badinv01.dat", Box::new(header(HeaderName::Via))),
        (
            "clerr.dat",
            Box::new(|e| matches!(e, ParseError::BodyTooShort { declared: 9999, .. })),
        ),
        (
            "ncl.dat",
            Box::new(|e| matches!(e, ParseError::ContentLength("negative value"))),
        ),
        (
            "scalar02.dat",
            Box::new(|e| {
                *e == ParseError::Header {
                    name: HeaderName::CSeq,
                    reason: "sequence number exceeds 2**32-1",
                }
            }),
        ),
        ("scalarlg.dat", Box::new(header(HeaderName::CSeq))),
        (
            "quotbal.dat",
            Box::new(|e| {
                *e == ParseError::Header {
                    name: HeaderName::To,
                    reason: "unterminated quoted string",
                }
            }),
        ),
        (
            "ltgtruri.dat",
            Box::new(|e| *e == ParseError::RequestUri("must not be enclosed in <>")),
        ),
        (
            "lwsruri.dat",
            Box::new(|e| *e == ParseError::RequestLine("whitespace inside Request-URI")),
        ),
        (
            "lwsstart.dat",
            Box::new(|e| *e == ParseError::RequestLine("more than one SP between elements")),
        ),
        (
            "trws.dat",
            Box::new(|e| *e == ParseError::RequestLine("trailing whitespace after SIP-Version")),
        ),
        (
            "badaspec.dat",
            Box::new(|e| {
                *e == ParseError::Header {
                    name: HeaderName::To,
                    reason: "whitespace inside <>",
                }
            }),
        ),
        (
            "baddn.dat",
            Box::new(|e| {
                *e == ParseError::Header {
                    name: HeaderName::From,
                    reason: "display name has non-token characters and is not quoted",
                }
            }),
        ),
        (
            "bigcode.dat",
            Box::new(|e| *e == ParseError::StatusLine("status code must be exactly 3 digits")),
        ),
        (
            "mcl01.dat",
            Box::new(|e| *e == ParseError::MultipleContentLength),
        ),
    ];
    for (file, pred) in &cases {
        let err = decode(file).expect_err(file);
        assert!(pred(&err), "{file}: unexpected error {err:?}");
        // The message text names the fault.
        assert!(!err.to_string().is_empty());
        let raw = load(file);
        let answer = error_response(&raw, &err, &mut rand::thread_rng());
        if raw.starts_with(b"SIP/") {
            assert!(
                answer.is_none(),
                "{file}: responses are dropped, never answered"
            );
        } else {
            let a = answer.unwrap_or_else(|| panic!("{file}: no 400 could be built"));
            assert!(a.starts_with(b"SIP/2.0 400 Bad Request\r\n"), "{file}");
        }
    }
}

struct Expect {
    file: &'static str,
    ruri: Option<&'static str>,
    call_id: Option<&'static str>,
    cseq: (u32, &'static str),
    branch: Option<&'static str>,
    from_tag: Option<&'static str>,
    to: Option<&'static str>,
}

const fn e(
    file: &'static str,
    ruri: Option<&'static str>,
    call_id: Option<&'static str>,
    cseq: (u32, &'static str),
    branch: Option<&'static str>,
    from_tag: Option<&'static str>,
    to: Option<&'static str>,
) -> Expect {
    Expect {
        file,
        ruri,
        call_id,
        cseq,
        branch,
        from_tag,
        to,
    }
}

/// Values copied from the RFC 4475 messages (and section 3 of the RFC for the tricky ones).
const VALID: &[Expect] = &[
    e(
        "wsinv.dat",
        Some("sip:vivekg@chair-dnrc.example.com;unknownparam"),
        Some("wsinv.ndaksdj@192.0.2.1"),
        (9, "INVITE"),
        Some("390skdjuw"),
        Some("98asjd8"),
        Some("sip:vivekg@chair-dnrc.example.com"),
    ),
    e(
        "intmeth.dat",
        Some(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        ),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"),
        (139122385, "!interesting-Method0123456789_*+`.%indeed'~"),
        Some("z9hG4bK-.!%66*_+`'~"),
        Some("_token~1'+`*%!-."),
        Some("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"),
    ),
    e(
        "esc01.dat",
        Some("sip:sips%3Auser%40example.com@example.net"),
        Some("esc01.239409asdfakjkn23onasd0-3234"),
        (234234, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("938"),
        Some("sip:%75se%72@example.com"),
    ),
    e(
        "escnull.dat",
        Some("sip:example.com"),
        Some("escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd"),
        (14398234, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("839923423"),
        Some("sip:null-%00-null@example.com"),
    ),
    e(
        "esc02.dat",
        Some("sip:registrar.example.com"),
        Some("esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf"),
        (29344, "RE%47IST%45R"),
        Some("z9hG4bK209%fzsnel234"),
        Some("f232jadfj23"),
        Some("sip:resource@example.com"),
    ),
    e(
        "lwsdisp.dat",
        Some("sip:user@example.com"),
        Some("lwsdisp.1234abcd@funky.example.com"),
        (60, "OPTIONS"),
        Some("z9hG4bKkdjuw"),
        Some("323"),
        Some("sip:user@example.com"),
    ),
    e(
        "longreq.dat",
        Some("sip:user@example.com"),
        Some(
            "longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid",
        ),
        (3882340, "INVITE"),
        None,
        Some(
            "12982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982424",
        ),
        Some(
            "sip:user@example.com:6000;unknownparam1=verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongvalue;longparamnamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamename=shortvalue;verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongParameterNameWithNoValue",
        ),
    ),
    e(
        "dblreq.dat",
        Some("sip:example.com"),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"),
        (8, "REGISTER"),
        Some("z9hG4bKkdjuw23492"),
        Some("43251j3j324"),
        Some("sip:j.user@example.com"),
    ),
    e(
        "semiuri.dat",
        Some("sip:user;par=u%40example.net@example.com"),
        Some("semiuri.0ha0isndaksdj"),
        (8, "OPTIONS"),
        Some("z9hG4bKkdjuw"),
        Some("33242"),
        Some("sip:j_user@example.com"),
    ),
    e(
        "transports.dat",
        Some("sip:user@example.com"),
        Some("transports.kijh4akdnaqjkwendsasfdj"),
        (60, "OPTIONS"),
        Some("z9hG4bKkdjuw"),
        Some("323"),
        Some("sip:user@example.com"),
    ),
    e(
        "mpart01.dat",
        Some("sip:kumiko@example.org"),
        Some("3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA.."),
        (1, "MESSAGE"),
        Some("z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-"),
        Some("2fb0dcc9"),
        Some("sip:kumiko@example.org"),
    ),
    e(
        "unreason.dat",
        None,
        Some("unreason.1234ksdfak3j2erwedfsASdf"),
        (35, "INVITE"),
        Some("z9hG4bK1324923"),
        Some("11141343"),
        Some("sip:user@example.edu"),
    ),
    e(
        "noreason.dat",
        None,
        Some("noreason.asndj203insdf99223ndf"),
        (35, "INVITE"),
        Some("z9hG4bK2398ndaoe"),
        Some("39ansfi3"),
        Some("sip:user@example.edu"),
    ),
    e(
        "unkscm.dat",
        Some("nobodyKnowsThisScheme:totallyopaquecontent"),
        Some("unkscm.nasdfasser0q239nwsdfasdkl34"),
        (3923423, "OPTIONS"),
        Some("z9hG4bKkdjuw39234"),
        Some("384"),
        Some("sip:user@example.com"),
    ),
    e(
        "novelsc.dat",
        Some("soap.beep://192.0.2.103:3002"),
        Some("novelsc.asdfasser0q239nwsdfasdkl34"),
        (3923423, "OPTIONS"),
        Some("z9hG4bKkdjuw39234"),
        Some("384"),
        Some("sip:user@example.com"),
    ),
    e(
        "unksm2.dat",
        Some("sip:example.com"),
        Some("unksm2.daksdj@hyphenated-host.example.com"),
        (234902, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("3234233"),
        Some("isbn:2983792873"),
    ),
    e(
        "bext01.dat",
        Some("sip:user@example.com"),
        Some("bext01.0ha0isndaksdj"),
        (8, "OPTIONS"),
        Some("z9hG4bKkdjuw"),
        Some("242etr"),
        Some("sip:j_user@example.com"),
    ),
    e(
        "invut.dat",
        Some("sip:user@example.com"),
        Some("invut.0ha0isndaksdjadsfij34n23d"),
        (235448, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("8392034"),
        Some("sip:j.user@example.com"),
    ),
    e(
        "regaut01.dat",
        Some("sip:example.com"),
        Some("regaut01.0ha0isndaksdj"),
        (9338, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("87321hj23128"),
        Some("sip:j.user@example.com"),
    ),
    e(
        "zeromf.dat",
        Some("sip:user@example.com"),
        Some("zeromf.jfasdlfnm2o2l43r5u0asdfas"),
        (39234321, "OPTIONS"),
        Some("z9hG4bKkdjuw2349i"),
        Some("3ghsd41"),
        Some("sip:user@example.com"),
    ),
    e(
        "cparam01.dat",
        Some("sip:example.com"),
        Some("cparam01.70710@saturn.example.com"),
        (2, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("DkfVgjkrtMwaerKKpe"),
        Some("sip:watson@example.com"),
    ),
    e(
        "cparam02.dat",
        Some("sip:example.com"),
        Some("cparam02.70710@saturn.example.com"),
        (3, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("838293"),
        Some("sip:watson@example.com"),
    ),
    e(
        "regescrt.dat",
        Some("sip:example.com"),
        Some("regescrt.k345asrl3fdbv@192.0.2.1"),
        (14398234, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("8"),
        Some("sip:user@example.com"),
    ),
    e(
        "sdp01.dat",
        Some("sip:user@example.com"),
        Some("sdp01.ndaksdj9342dasdd"),
        (8, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("234"),
        Some("sip:j_user@example.com"),
    ),
    e(
        "inv2543.dat",
        Some("sip:UserB@example.com"),
        Some("inv2543.1717@ift.client.example.com"),
        (56, "INVITE"),
        None,
        None,
        Some("sip:+16505552222@ss1.example.net"),
    ),
    e(
        "bcast.dat",
        None,
        Some("bcast.0384840201234ksdfak3j2erwedfsASdf"),
        (35, "INVITE"),
        Some("z9hG4bK1324923"),
        Some("11141343"),
        Some("sip:user@example.edu"),
    ),
    // Syntactically valid; refused by the checks below.
    e(
        "insuf.dat",
        Some("sip:user@example.com"),
        None,
        (193942, "INVITE"),
        Some("z9hG4bKkdj.insuf"),
        None,
        None,
    ),
    e(
        "multi01.dat",
        Some("sip:user@company.com"),
        Some("multi01.98asdh@192.0.2.1"),
        (5, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("3413415"),
        Some("sip:user@example.com"),
    ),
    e(
        "mismatch01.dat",
        Some("sip:user@example.com"),
        Some("mismatch01.dj0234sxdfl3"),
        (8, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("34525"),
        Some("sip:j.user@example.com"),
    ),
    e(
        "mismatch02.dat",
        Some("sip:user@example.com"),
        Some("mismatch02.dj0234sxdfl3"),
        (8, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("34525"),
        Some("sip:j.user@example.com"),
    ),
    e(
        "badvers.dat",
        Some("sip:t.watson@example.org"),
        Some("badvers.31417@c.example.com"),
        (1, "OPTIONS"),
        Some("z9hG4bKkdjuw"),
        Some("qweoiqpe"),
        Some("sip:t.watson@example.org"),
    ),
    e(
        "escruri.dat",
        Some("sip:user@example.com?Route=%3Csip:example.com%3E"),
        Some("escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5"),
        (149209342, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("341518"),
        Some("sip:user@example.com"),
    ),
    e(
        "baddate.dat",
        Some("sip:user@example.com"),
        Some("baddate.239423mnsadf3j23lj42--sedfnm234"),
        (1392934, "INVITE"),
        Some("z9hG4bKkdjuw"),
        Some("2234923"),
        Some("sip:user@example.com"),
    ),
    e(
        "badbranch.dat",
        Some("sip:user@example.com"),
        Some("badbranch.sadonfo23i420jv0as0derf3j3n"),
        (8, "OPTIONS"),
        Some("z9hG4bK"),
        Some("33242"),
        Some("sip:user@example.com"),
    ),
    e(
        "regbadct.dat",
        Some("sip:example.com"),
        Some("regbadct.k345asrl3fdbv@10.0.0.1"),
        (1, "REGISTER"),
        Some("z9hG4bKkdjuw"),
        Some("998332"),
        Some("sip:user@example.com"),
    ),
];

#[test]
fn valid_messages_decode_to_the_right_fields() {
    assert_eq!(VALID.len(), 35);
    for x in VALID {
        let m = decode(x.file).unwrap_or_else(|err| panic!("{}: {err}", x.file));
        match (&m, x.ruri) {
            (Message::Request(r), Some(ruri)) => assert_eq!(r.uri.to_string(), ruri, "{}", x.file),
            (Message::Response(_), None) => {}
            _ => panic!("{}: wrong kind", x.file),
        }
        assert_eq!(m.call_id(), x.call_id, "{}", x.file);
        let cseq = m.cseq().unwrap_or_else(|| panic!("{}: no CSeq", x.file));
        assert_eq!((cseq.seq, cseq.method.as_str()), x.cseq, "{}", x.file);
        let via = m.top_via().unwrap_or_else(|| panic!("{}: no Via", x.file));
        assert_eq!(via.branch(), x.branch, "{}", x.file);
        assert_eq!(
            m.from()
                .and_then(|f| f.tag().map(str::to_string))
                .as_deref(),
            x.from_tag,
            "{}",
            x.file
        );
        assert_eq!(
            m.to().map(|t| t.uri.to_string()).as_deref(),
            x.to,
            "{}",
            x.file
        );
    }
}

fn request(file: &str) -> sip::Request {
    match decode(file).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{file} is a response"),
    }
}

#[test]
fn checks_give_the_status_the_rfc_names() {
    let uas = CheckConfig::default();
    let proxy = CheckConfig {
        proxy: true,
        ..CheckConfig::default()
    };
    let status =
        |file: &str, cfg: &CheckConfig| check_request(&request(file), cfg).err().map(|r| r.status);
    assert_eq!(status("badvers.dat", &uas), Some(505));
    assert_eq!(status("mismatch01.dat", &uas), Some(400));
    assert_eq!(status("mismatch02.dat", &uas), Some(501));
    assert_eq!(status("unkscm.dat", &uas), Some(416));
    assert_eq!(status("novelsc.dat", &uas), Some(416));
    assert_eq!(status("insuf.dat", &uas), Some(400));
    assert_eq!(status("multi01.dat", &uas), Some(400));
    assert_eq!(status("unksm2.dat", &uas), Some(400));
    assert_eq!(status("escruri.dat", &uas), Some(400));
    assert_eq!(status("badbranch.dat", &uas), Some(400));
    assert_eq!(status("regbadct.dat", &uas), Some(400));
    assert_eq!(status("zeromf.dat", &proxy), Some(483));
    // An endpoint processes Max-Forwards 0 as usual (RFC 4475 §3.3.11).
    assert_eq!(status("zeromf.dat", &uas), None);
    for ok in [
        "baddate.dat",
        "regaut01.dat",
        "cparam01.dat",
        "cparam02.dat",
        "regescrt.dat",
        "inv2543.dat",
        "esc02.dat",
    ] {
        assert_eq!(status(ok, &uas), None, "{ok}");
    }

    let insuf = check_request(&request("insuf.dat"), &uas).unwrap_err();
    assert_eq!(insuf.detail, "missing From header");
    let multi = check_request(&request("multi01.dat"), &uas).unwrap_err();
    assert_eq!(multi.detail, "more than one Call-ID header");

    // 420 lists every unknown option tag in Unsupported (Proxy-Require too when proxying).
    let bext = request("bext01.dat");
    let r = check_request(&bext, &uas).unwrap_err();
    assert_eq!(r.status, 420);
    assert_eq!(
        r.to_response(&bext)
            .headers
            .get_str(&HeaderName::Unsupported),
        Some("nothingSupportsThis, nothingSupportsThisEither")
    );
    let r = check_request(&bext, &proxy).unwrap_err();
    assert_eq!(
        r.headers,
        vec![(
            HeaderName::Unsupported,
            "nothingSupportsThis, nothingSupportsThisEither, noProxiesSupportThis, norDoAnyProxiesSupportThis".to_string()
        )]
    );

    assert_eq!(
        check_content_type(&request("invut.dat"), &[("application", "sdp")])
            .unwrap_err()
            .status,
        415
    );
    assert_eq!(
        check_accept(&request("sdp01.dat"), &[("application", "sdp")])
            .unwrap_err()
            .status,
        406
    );
    assert!(check_content_type(&request("sdp01.dat"), &[("application", "sdp")]).is_ok());
}

#[test]
fn details_the_rfc_calls_out() {
    // dblreq: one REGISTER with an empty body; the trailing INVITE is ignored.
    let m = decode("dblreq.dat").unwrap();
    assert_eq!(m.as_request().unwrap().method, Method::Register);
    assert!(m.body().is_empty());
    // mpart01: binary body framed by Content-Length, NULs intact.
    let m = decode("mpart01.dat").unwrap();
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0));
    assert!(m.content_type().unwrap().is("multipart", "mixed"));
    // esc02: the method is not REGISTER; C%6Fntact is an unknown header, not Contact.
    let r = request("esc02.dat");
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(r.contacts().len(), 2);
    assert!(r.headers.iter().any(|h| h.name.as_str() == "C%6Fntact"));
    // escnull: %00 does not truncate.
    let r = request("escnull.dat");
    let to = r.to().unwrap();
    assert_eq!(
        to.uri.as_sip().unwrap().user_unescaped().unwrap(),
        b"null-\0-null"
    );
    // esc01: escaped user compares equal to the unescaped one.
    let r = request("esc01.dat");
    let to = r.to().unwrap();
    assert!(
        to.uri
            .as_sip()
            .unwrap()
            .equivalent(&sip::SipUri::parse("sip:user@example.com").unwrap())
    );
    // semiuri: ';par=' belongs to the user part.
    let r = request("semiuri.dat");
    let u = r.uri.as_sip().unwrap();
    assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
    assert!(u.params.is_empty());
    // transports: unknown transports parse.
    let t: Vec<String> = request("transports.dat")
        .vias()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // wsinv: folded Via list of two values after the first Via; Contact q and unknown params.
    let r = request("wsinv.dat");
    let vias = r.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(r.max_forwards(), Some(68));
    let c = r.headers.contact().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c.q(), Some(0.33));
    assert_eq!(
        r.from().unwrap().display_name.as_deref(),
        Some("J Rosenberg \\\"")
    );
    assert_eq!(
        r.headers.get_str(&HeaderName::from("NewFangledHeader")),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers
            .get_str(&HeaderName::from("UnknownHeaderWithUnusualValue")),
        Some(";;,,;;,;")
    );
    // cparam01 vs cparam02: the parameter belongs to the header, then to the URI.
    let c1 = request("cparam01.dat").headers.contact().unwrap();
    assert!(c1.params.contains("unknownparam"));
    assert!(c1.uri.as_sip().unwrap().params.is_empty());
    let c2 = request("cparam02.dat").headers.contact().unwrap();
    assert!(c2.uri.as_sip().unwrap().params.contains("unknownparam"));
    // regescrt: the bound URI keeps its escaped Route header.
    let c = request("regescrt.dat").headers.contact().unwrap();
    assert_eq!(
        c.uri.to_string(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    // unkscm/novelsc/unksm2: other schemes are opaque absolute URIs.
    assert!(matches!(request("unkscm.dat").uri, Uri::Absolute(_)));
    let r = request("unksm2.dat");
    assert_eq!(r.from().unwrap().uri.scheme(), "http");
    assert_eq!(
        r.headers.contact().unwrap().uri.to_string(),
        "name:John_Smith"
    );
    // longreq: all 34 Vias, in order, whatever the case or compact form of the name.
    let vias = request("longreq.dat").vias();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host.to_string(), "sip33.example.com");
    assert_eq!(vias[32].host.to_string(), "sip1.example.com");
    assert_eq!(vias[33].host.to_string(), "host.example.com");
    // inv2543: without <>, ';user=phone' is a To header parameter, not a URI parameter.
    assert_eq!(
        request("inv2543.dat")
            .to()
            .unwrap()
            .params
            .value("user")
            .as_deref(),
        Some("phone")
    );
    // noreason: empty reason phrase; unreason: UTF-8 reason.
    let m = decode("noreason.dat").unwrap();
    assert_eq!(m.as_response().unwrap().reason, "");
    let m = decode("unreason.dat").unwrap();
    assert!(
        m.as_response()
            .unwrap()
            .reason
            .starts_with("= 2**3 * 5**2 ")
    );
    // bcast: parses; the broadcast Via is flagged for the transport to drop.
    let m = decode("bcast.dat").unwrap();
    assert!(!m.vias()[0].sent_by_is_unusable());
    assert!(m.vias()[1].sent_by_is_unusable());
    // intmeth: escaped controls in the To display name survive unquoting.
    let r = request("intmeth.dat");
    assert_eq!(
        r.to().unwrap().display_name.as_deref(),
        Some("BEL:\u{7} NUL:\0 DEL:\u{7f}")
    );
    assert_eq!(
        r.headers
            .get_str(&HeaderName::from("extensionHeader-!.%*+_`'~")),
        Some("\u{FEFF}\u{5927}\u{505C}\u{96FB}")
    );
}

#[test]
fn lint_reports_every_file_like_the_parser() {
    let mut valid = 0;
    for x in VALID {
        let r = sip::lint(&load(x.file));
        assert!(r.valid, "{}: {r}", x.file);
        assert_eq!(r.call_id.as_deref(), x.call_id, "{}", x.file);
        assert_eq!(r.top_via_branch.as_deref(), x.branch, "{}", x.file);
        assert_eq!(r.request_uri.as_deref(), x.ruri, "{}", x.file);
        valid += 1;
    }
    assert_eq!(valid, 35);
    let r = sip::lint(&load("badvers.dat"));
    assert!(
        r.to_string()
            .contains("note: a server would answer 505 Version Not Supported"),
        "{r}"
    );
    for bad in ["badinv01.dat", "quotbal.dat", "bigcode.dat", "mcl01.dat"] {
        let r = sip::lint(&load(bad));
        assert!(!r.valid && r.error.is_some(), "{bad}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["valid"], false);
        assert!(json["error"].as_str().unwrap().len() > 10);
    }
    // The same files with bare LF line ends in the header part still lint the same way.
    let lf = String::from_utf8(load("cparam02.dat"))
        .unwrap()
        .replace("\r\n", "\n");
    let r = sip::lint(lf.as_bytes());
    assert!(r.valid, "{r}");
    assert_eq!(
        r.call_id.as_deref(),
        Some("cparam02.70710@saturn.example.com")
    );
}
