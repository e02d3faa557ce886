//! DTMF across anchored bridges on a fake clock: once an IVR-connected or transcoded call is
//! bridged, a digit from either phone (RFC 4733 event, in-band tone or SIP INFO) is regenerated
//! on the other leg in that leg's form — RFC 4733 when its SDP has telephone-event, else
//! in-band — and no longer reaches the menu; an in-band digit is not regenerated in-band (the
//! tone crosses in the audio). Before the bridge, digits are the application's.

mod common;

use common::*;
use engine::Input;
use engine::media::{EndpointId, MediaCommand, MediaEvent};
use sip::{HeaderName, Message, Request, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";

fn setup() -> Harness {
    with_1001_and_1002(ivr_500_to_1002())
}

fn sent_digits(h: &Harness) -> Vec<(EndpointId, String, bool)> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::SendDigits {
                endpoint,
                digits,
                inband,
            } => Some((*endpoint, digits.clone(), *inband)),
            _ => None,
        })
        .collect()
}

fn event(h: &mut Harness, ep: EndpointId, d: char) {
    h.input(Input::Media(MediaEvent::Dtmf {
        endpoint: ep,
        digit: d,
    }));
}

fn tone(h: &mut Harness, ep: EndpointId, d: char) {
    h.input(Input::Media(MediaEvent::DtmfInband {
        endpoint: ep,
        digit: d,
    }));
}

/// The callee answers with PCMU, with or without telephone-event.
fn answer(h: &mut Harness, invite: &Request, events: bool) {
    let mut r = Response::for_request(invite, 200, None);
    r.set_to_tag("desk");
    r.headers
        .push(HeaderName::Contact, format!("<sip:callee@{DESK}>"));
    let body = if events {
        sdp("192.0.2.22", 6000, "sendrecv")
    } else {
        "v=0\no=- 1 1 IN IP4 192.0.2.22\ns=-\nc=IN IP4 192.0.2.22\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=sendrecv\n".to_string()
    };
    r.set_body(
        &sip::MediaType::sdp(),
        bytes::Bytes::from(body.replace('\n', "\r\n")),
    );
    h.recv_message(Message::Response(r), DESK, SEG1);
}

/// An INFO carrying `digit` from the callee, in the dialog of our `invite`.
fn callee_info(invite: &Request, digit: char, cseq: u32) -> String {
    let contact = invite.headers.contact().expect("Contact").uri.to_string();
    let from = invite.from().expect("From").to_string();
    let to = invite.to().expect("To").to_string();
    let call_id = invite.call_id().expect("Call-ID").to_string();
    let body = format!("Signal={digit}\r\nDuration=160\r\n");
    format!(
        "INFO {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {DESK};branch=z9hG4bK-ci{cseq}\r\nMax-Forwards: 70\r\nFrom: {to};tag=desk\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INFO\r\nContent-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// 1001 calls the IVR, presses 1, 1002 answers: the caller's and the callee's endpoints and the
/// INVITE sent to the callee.
fn bridged(
    h: &mut Harness,
    call_id: &str,
    callee_events: bool,
) -> (EndpointId, EndpointId, Request) {
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let a_ep = h.opened_endpoints()[0];
    event(h, a_ep, '1');
    let invites = h.requests("INVITE");
    assert_eq!(invites.len(), 1, "the option rings 1002");
    let inv = invites[0].request().clone();
    let b_ep = h.opened_endpoints()[1];
    assert!(
        sent_digits(h).is_empty(),
        "digits before the bridge are the menu's"
    );
    answer(h, &inv, callee_events);
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Join { endpoint, .. } if *endpoint == b_ep))
    );
    h.sent.clear();
    h.media_log.clear();
    (a_ep, b_ep, inv)
}

#[test]
fn event_digits_cross_as_events_both_ways_and_not_to_the_menu() {
    let mut h = setup();
    let (a_ep, b_ep, _) = bridged(&mut h, "db-1", true);
    for d in "1*9#".chars() {
        event(&mut h, a_ep, d);
    }
    event(&mut h, b_ep, '4');
    assert_eq!(
        sent_digits(&h),
        vec![
            (b_ep, "1".into(), false),
            (b_ep, "*".into(), false),
            (b_ep, "9".into(), false),
            (b_ep, "#".into(), false),
            (a_ep, "4".into(), false),
        ]
    );
    assert!(
        h.requests("INVITE").is_empty(),
        "the menu's '1' did not ring 1002 again"
    );
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Play { .. })),
        "nothing played: the menu is done"
    );
}

#[test]
fn a_callee_without_telephone_event_gets_tones_and_inband_is_not_doubled() {
    let mut h = setup();
    let (a_ep, b_ep, _) = bridged(&mut h, "db-2", false);
    event(&mut h, a_ep, '5');
    tone(&mut h, a_ep, '6');
    // The callee's in-band digit towards the caller, who negotiated telephone-event.
    tone(&mut h, b_ep, '7');
    assert_eq!(
        sent_digits(&h),
        vec![(b_ep, "5".into(), true), (a_ep, "7".into(), false)],
        "5 as tones; 6 crossed in the audio already; 7 as events"
    );
}

#[test]
fn sip_info_from_either_side_is_regenerated() {
    let mut h = setup();
    let (a_ep, b_ep, inv) = bridged(&mut h, "db-3", false);
    h.recv_raw(&callee_info(&inv, '#', 7), DESK, SEG1);
    assert!(h.responses().contains(&200), "INFO answered");
    assert_eq!(sent_digits(&h), vec![(a_ep, "#".into(), false)]);
    h.media_log.clear();
    // A bad INFO body is answered and ignored.
    let bad = callee_info(&inv, 'x', 8);
    h.recv_raw(&bad, DESK, SEG1);
    assert!(sent_digits(&h).is_empty());
    let _ = b_ep;
}

#[test]
fn transcoded_calls_carry_digits() {
    let mut h = setup();
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "db-4",
    });
    let first = h.requests("INVITE");
    h.sent.clear();
    h.media_log.clear();
    h.reply(first[0].request(), 488, "desk", DESK, SEG1);
    let again = h.requests("INVITE");
    assert_eq!(again.len(), 1, "retried with transcoding");
    let (a_ep, b_ep) = (h.opened_endpoints()[0], h.opened_endpoints()[1]);
    // Before the answer there is no bridge: nothing crosses.
    event(&mut h, a_ep, '2');
    assert!(sent_digits(&h).is_empty());
    answer(&mut h, again[0].request(), true);
    h.media_log.clear();
    event(&mut h, a_ep, '3');
    tone(&mut h, b_ep, '8');
    assert_eq!(
        sent_digits(&h),
        vec![(b_ep, "3".into(), false), (a_ep, "8".into(), false)]
    );
}
