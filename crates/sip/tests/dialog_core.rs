//! Dialogs (RFC 3261 §12): creation on both sides, route sets, target refresh, CSeq rules,
//! in-dialog request construction.

use sip::dialog::{Dialog, DialogError, DialogId, DialogState, Role};
use sip::{HeaderName, Host, Message, Method, Request, Response, Via};

fn parse(text: &str) -> Message {
    let text = text.replace('\n', "\r\n");
    sip::parse_message(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?} in\n{text}"))
}

fn req(text: &str) -> Request {
    match parse(text) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

/// Alice's INVITE to Bob through two record-routing proxies.
fn invite() -> Request {
    req("INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKa
Max-Forwards: 68
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
To: Bob <sip:bob@biloxi.example.com>
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

")
}

fn response(r: &Request, status: u16, to_tag: Option<&str>, contact: Option<&str>) -> Response {
    let mut out = Response::for_request(r, status, None);
    if let Some(t) = to_tag {
        out = out.with_to_tag(t);
    }
    if let Some(c) = contact {
        out = out.with_header(HeaderName::Contact, c);
    }
    out
}

/// The response as the UAC sees it: same Record-Route as the request (proxies copy it).
fn uac_response(status: u16, to_tag: Option<&str>, contact: Option<&str>) -> Response {
    let inv = invite();
    let mut out = response(&inv, status, to_tag, contact);
    for rr in inv.headers.get_all(&HeaderName::RecordRoute) {
        out.headers.push(HeaderName::RecordRoute, rr.clone());
    }
    out
}

fn via(branch: &str) -> Via {
    Via::new(
        "UDP",
        Host::Domain("pc33.atlanta.example.com".into()),
        None,
        branch,
    )
}

fn route_uris(d: &Dialog) -> Vec<String> {
    d.route_set.iter().map(|r| r.uri.to_string()).collect()
}

fn route_headers(r: &Request) -> Vec<String> {
    r.headers
        .routes()
        .iter()
        .map(|r| r.uri.to_string())
        .collect()
}

#[test]
fn uac_early_dialog_from_180_then_confirmed_by_200() {
    let inv = invite();
    let ringing = uac_response(180, Some("314159"), Some("<sip:bob@192.0.2.4>"));
    let mut d = Dialog::uac(&inv, &ringing).unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert_eq!(d.role, Role::Uac);
    assert_eq!(
        d.id,
        DialogId {
            call_id: "a84b4c76e66710@pc33.atlanta.example.com".into(),
            local_tag: "1928301774".into(),
            remote_tag: "314159".into(),
        }
    );
    assert_eq!(d.id, DialogId::for_uac_response(&ringing));
    // The UAC reverses Record-Route.
    assert_eq!(
        route_uris(&d),
        vec!["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );
    assert_eq!(d.remote_target.to_string(), "sip:bob@192.0.2.4");
    assert_eq!((d.local_seq, d.remote_seq), (Some(314159), None));
    assert_eq!(
        d.local_target.as_ref().map(ToString::to_string).as_deref(),
        Some("sip:alice@pc33.atlanta.example.com")
    );

    // The 2xx confirms it and its Record-Route becomes the route set.
    let mut ok = response(&inv, 200, Some("314159"), Some("<sip:bob@192.0.2.4>"));
    ok.headers
        .push(HeaderName::RecordRoute, "<sip:p3.example.com;lr>");
    d.on_response(&Method::Invite, &ok).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(route_uris(&d), vec!["sip:p3.example.com;lr"]);
}

#[test]
fn uac_dialog_directly_from_200() {
    let d = Dialog::uac(
        &invite(),
        &uac_response(200, Some("x"), Some("<sip:bob@192.0.2.4>")),
    )
    .unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    // A 2xx without Contact cannot make a dialog; a 1xx without one targets the Request-URI.
    assert_eq!(
        Dialog::uac(&invite(), &uac_response(200, Some("x"), None)),
        Err(DialogError::MissingHeader("Contact"))
    );
    let early = Dialog::uac(&invite(), &uac_response(183, Some("x"), None)).unwrap();
    assert_eq!(
        early.remote_target.to_string(),
        "sip:bob@biloxi.example.com"
    );
}

#[test]
fn only_tagged_1xx_and_2xx_create_dialogs() {
    let inv = invite();
    assert_eq!(
        Dialog::uac(&inv, &uac_response(180, None, Some("<sip:b@h>"))),
        Err(DialogError::MissingToTag)
    );
    assert_eq!(
        Dialog::uac(&inv, &uac_response(100, None, None)),
        Err(DialogError::NotDialogCreating(100))
    );
    assert_eq!(
        Dialog::uac(&inv, &uac_response(486, Some("t"), None)),
        Err(DialogError::NotDialogCreating(486))
    );
    assert_eq!(
        Dialog::uas(&inv, &response(&inv, 180, None, None)),
        Err(DialogError::MissingToTag)
    );
}

#[test]
fn early_dialog_ends_on_failure() {
    let inv = invite();
    let mut d = Dialog::uac(&inv, &uac_response(180, Some("t"), Some("<sip:b@h>"))).unwrap();
    d.on_response(&Method::Invite, &response(&inv, 486, Some("t"), None))
        .unwrap();
    assert_eq!(d.state, DialogState::Terminated);
    // A response from another fork (other To tag) is not ours.
    let mut d = Dialog::uac(&inv, &uac_response(180, Some("t"), Some("<sip:b@h>"))).unwrap();
    assert_eq!(
        d.on_response(
            &Method::Invite,
            &response(&inv, 200, Some("other"), Some("<sip:c@h>"))
        ),
        Err(DialogError::Mismatch)
    );
    assert_eq!(d.state, DialogState::Early);
}

#[test]
fn uas_dialog_keeps_record_route_order_and_contact() {
    let inv = invite();
    let ok = response(&inv, 200, Some("b-tag"), Some("<sip:bob@192.0.2.4>"));
    let d = Dialog::uas(&inv, &ok).unwrap();
    assert_eq!(d.role, Role::Uas);
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(
        route_uris(&d),
        vec!["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    );
    assert_eq!(
        d.remote_target.to_string(),
        "sip:alice@pc33.atlanta.example.com"
    );
    assert_eq!((d.local_seq, d.remote_seq), (None, Some(314159)));
    assert_eq!(
        d.id,
        DialogId::for_incoming_request(&inv).with_local_tag("b-tag")
    );
    assert_eq!(d.local.uri.to_string(), "sip:bob@biloxi.example.com");
    assert_eq!(d.remote.display_name.as_deref(), Some("Alice"));
}

#[test]
fn uas_early_dialog_confirmed_by_sent_2xx() {
    let inv = invite();
    let mut d = Dialog::uas(&inv, &response(&inv, 180, Some("b"), Some("<sip:bob@h>"))).unwrap();
    assert_eq!(d.state, DialogState::Early);
    d.on_sent_response(&response(&inv, 200, Some("b"), None));
    assert_eq!(d.state, DialogState::Confirmed);
    let mut d = Dialog::uas(&inv, &response(&inv, 183, Some("b"), None)).unwrap();
    d.on_sent_response(&response(&inv, 603, Some("b"), None));
    assert_eq!(d.state, DialogState::Terminated);
}

/// An in-dialog request from Alice to Bob's UAS dialog.
fn from_alice(method: &str, cseq: u32, contact: Option<&str>) -> Request {
    let contact = contact
        .map(|c| format!("Contact: {c}\n"))
        .unwrap_or_default();
    req(&format!(
        "{method} sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK{cseq}{method}
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
To: Bob <sip:bob@biloxi.example.com>;tag=b-tag
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: {cseq} {method}
{contact}Content-Length: 0

"
    ))
}

#[test]
fn uas_rejects_lower_cseq_with_500_and_tracks_higher() {
    let inv = invite();
    let mut d = Dialog::uas(
        &inv,
        &response(&inv, 200, Some("b-tag"), Some("<sip:bob@h>")),
    )
    .unwrap();
    // The ACK reuses the INVITE's CSeq.
    d.on_request(&from_alice("ACK", 314159, None)).unwrap();
    d.on_request(&from_alice("INFO", 314160, None)).unwrap();
    assert_eq!(d.remote_seq, Some(314160));
    let err = d.on_request(&from_alice("INFO", 314150, None)).unwrap_err();
    assert_eq!(
        err,
        DialogError::CSeqOutOfOrder {
            got: 314150,
            last: 314160
        }
    );
    assert_eq!(err.status_code(), 500);
    assert_eq!(
        d.remote_seq,
        Some(314160),
        "a rejected request does not move the counter"
    );
    // Gaps are fine (§12.2.2: only lower numbers are out of order).
    d.on_request(&from_alice("BYE", 314200, None)).unwrap();
    assert_eq!(d.remote_seq, Some(314200));
    // A request of another dialog is a 481.
    let mut other = from_alice("BYE", 314201, None);
    other
        .headers
        .set(HeaderName::To, "<sip:bob@biloxi.example.com>;tag=nope");
    let err = d.on_request(&other).unwrap_err();
    assert_eq!(
        (err.clone(), err.status_code()),
        (DialogError::Mismatch, 481)
    );
}

#[test]
fn target_refresh_on_reinvite_update_and_their_2xx() {
    let inv = invite();
    // UAS: a re-INVITE with a new Contact moves the remote target; INFO does not.
    let mut d = Dialog::uas(
        &inv,
        &response(&inv, 200, Some("b-tag"), Some("<sip:bob@h>")),
    )
    .unwrap();
    d.on_request(&from_alice(
        "INFO",
        314160,
        Some("<sip:alice@198.51.100.1>"),
    ))
    .unwrap();
    assert_eq!(
        d.remote_target.to_string(),
        "sip:alice@pc33.atlanta.example.com"
    );
    d.on_request(&from_alice(
        "INVITE",
        314161,
        Some("<sip:alice@198.51.100.1>"),
    ))
    .unwrap();
    assert_eq!(d.remote_target.to_string(), "sip:alice@198.51.100.1");
    d.on_request(&from_alice(
        "UPDATE",
        314162,
        Some("<sip:alice@198.51.100.2:5070>"),
    ))
    .unwrap();
    assert_eq!(d.remote_target.to_string(), "sip:alice@198.51.100.2:5070");

    // UAC: the 2xx to our re-INVITE / UPDATE refreshes; a 2xx to INFO does not.
    let mut d = Dialog::uac(
        &inv,
        &uac_response(200, Some("t"), Some("<sip:bob@192.0.2.4>")),
    )
    .unwrap();
    let reinvite = d.new_request(Method::Invite, &via("z9hG4bKre"));
    let ok = |contact: &str, r: &Request| response(r, 200, None, Some(contact));
    d.on_response(&Method::Invite, &ok("<sip:bob@192.0.2.99>", &reinvite))
        .unwrap();
    assert_eq!(d.remote_target.to_string(), "sip:bob@192.0.2.99");
    let info = d.new_request(Method::Info, &via("z9hG4bKinfo"));
    d.on_response(&Method::Info, &ok("<sip:bob@203.0.113.1>", &info))
        .unwrap();
    assert_eq!(d.remote_target.to_string(), "sip:bob@192.0.2.99");
    let update = d.new_request(Method::Update, &via("z9hG4bKup"));
    d.on_response(&Method::Update, &ok("<sip:bob@203.0.113.2>", &update))
        .unwrap();
    assert_eq!(d.remote_target.to_string(), "sip:bob@203.0.113.2");
    // The route set of a confirmed dialog is not recomputed by a re-INVITE's 2xx.
    assert_eq!(d.route_set.len(), 2);
}

#[test]
fn in_dialog_request_with_loose_routes() {
    let inv = invite();
    let mut d = Dialog::uac(
        &inv,
        &uac_response(200, Some("314159"), Some("<sip:bob@192.0.2.4>")),
    )
    .unwrap();
    let bye = d.new_request(Method::Bye, &via("z9hG4bKbye"));
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(
        bye.uri.to_string(),
        "sip:bob@192.0.2.4",
        "loose routing: Request-URI is the remote target"
    );
    assert_eq!(
        route_headers(&bye),
        vec!["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );
    assert_eq!(bye.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(bye.from().unwrap().display_name.as_deref(), Some("Alice"));
    assert_eq!(bye.to().unwrap().tag(), Some("314159"));
    assert_eq!(
        bye.call_id(),
        Some("a84b4c76e66710@pc33.atlanta.example.com")
    );
    let cseq = bye.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (314160, Method::Bye));
    assert_eq!(bye.top_via().unwrap().branch(), Some("z9hG4bKbye"));
    assert_eq!(bye.max_forwards(), Some(70));
    assert!(bye.contacts().is_empty(), "BYE is not a target refresh");
    // The next request counts on.
    let info = d.new_request(Method::Info, &via("z9hG4bKinfo"));
    assert_eq!(info.cseq().unwrap().seq, 314161);
    // What we build parses back with the strict parser.
    let reparsed = sip::parse_message(&bye.to_bytes()).unwrap();
    assert_eq!(reparsed.as_request().unwrap().cseq(), bye.cseq());
}

#[test]
fn in_dialog_request_with_strict_router() {
    let inv = invite();
    let mut resp = response(&inv, 200, Some("t"), Some("<sip:bob@192.0.2.4>"));
    // Record-Route as seen by the UAC, reversed into route set [strict, loose].
    resp.headers
        .push(HeaderName::RecordRoute, "<sip:loose.example.com;lr>");
    resp.headers.push(
        HeaderName::RecordRoute,
        "<sip:strict.example.com;transport=tcp>",
    );
    let mut d = Dialog::uac(&inv, &resp).unwrap();
    assert_eq!(
        route_uris(&d),
        vec![
            "sip:strict.example.com;transport=tcp",
            "sip:loose.example.com;lr"
        ]
    );
    let bye = d.new_request(Method::Bye, &via("z9hG4bKs"));
    // Strict routing: the first route becomes the Request-URI, the remote target goes last.
    assert_eq!(bye.uri.to_string(), "sip:strict.example.com;transport=tcp");
    assert_eq!(
        route_headers(&bye),
        vec!["sip:loose.example.com;lr", "sip:bob@192.0.2.4"]
    );
}

#[test]
fn ack_for_2xx_reuses_invite_cseq() {
    let inv = invite();
    let d = Dialog::uac(
        &inv,
        &uac_response(200, Some("t"), Some("<sip:bob@192.0.2.4>")),
    )
    .unwrap();
    let ack = d.ack(314159, &via("z9hG4bKack"));
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (314159, Method::Ack));
    assert_eq!(ack.uri.to_string(), "sip:bob@192.0.2.4");
    assert_eq!(route_headers(&ack).len(), 2);
    assert_eq!(
        d.local_seq,
        Some(314159),
        "ACK does not advance the local CSeq"
    );
}

#[test]
fn uas_requests_start_cseq_and_carry_contact_on_refresh() {
    let inv = invite();
    let ok = response(&inv, 200, Some("b-tag"), Some("<sip:bob@192.0.2.4>"));
    let mut d = Dialog::uas(&inv, &ok).unwrap();
    let reinvite = d.new_request(Method::Invite, &via("z9hG4bKu1"));
    assert_eq!(reinvite.cseq().unwrap().seq, 1);
    assert_eq!(reinvite.from().unwrap().tag(), Some("b-tag"));
    assert_eq!(reinvite.to().unwrap().tag(), Some("1928301774"));
    assert_eq!(
        reinvite.uri.to_string(),
        "sip:alice@pc33.atlanta.example.com"
    );
    // The UAS route set is in Record-Route order.
    assert_eq!(
        route_headers(&reinvite),
        vec!["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    );
    assert_eq!(
        reinvite.headers.contact().unwrap().uri.to_string(),
        "sip:bob@192.0.2.4"
    );
    let bye = d.new_request(Method::Bye, &via("z9hG4bKu2"));
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert!(bye.contacts().is_empty());
}

#[test]
fn rfc2543_peer_without_from_tag() {
    let mut inv = invite();
    inv.headers
        .set(HeaderName::From, "<sip:alice@atlanta.example.com>");
    let d = Dialog::uas(&inv, &response(&inv, 200, Some("b"), Some("<sip:bob@h>"))).unwrap();
    assert_eq!(d.id.remote_tag, "");
    let mut d2 = d.clone();
    let bye = d2.new_request(Method::Bye, &via("z9hG4bKx"));
    assert_eq!(
        bye.to().unwrap().tag(),
        None,
        "no tag invented for the peer"
    );
}
