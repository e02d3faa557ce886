//! `TransactionLayer::send_request_bytes`: a non-INVITE request serialised by its sender gets the
//! same client transaction as one sent with `send_request` — the same bytes retransmitted on
//! Timer E, the 2xx matched by branch and method, Timer K after it, Timer F without it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::transaction::{Config, Event, Target, TransactionLayer, Transport, TxError};
use sip::{Message, Method, Response};

const NOTIFY: &str = "NOTIFY sip:1003@10.0.0.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKn.1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1002@pbx>;tag=a\r\nTo: <sip:1003@pbx>;tag=b\r\nCall-ID: sub-1\r\nCSeq: 7 NOTIFY\r\nEvent: dialog\r\nSubscription-State: active;expires=60\r\nContent-Length: 0\r\n\r\n";

fn target(transport: Transport) -> Target {
    Target {
        destination: "10.0.0.2:5060".parse().expect("addr"),
        transport,
        local: Some("10.0.0.1:5060".parse().expect("addr")),
    }
}

fn ok() -> Response {
    let Ok(Message::Request(r)) = sip::parse_message(NOTIFY.as_bytes()) else {
        panic!("NOTIFY parses");
    };
    Response::for_request(&r, 200, None)
}

fn peer() -> SocketAddr {
    "10.0.0.2:5060".parse().expect("addr")
}

#[test]
fn bytes_are_sent_retransmitted_and_matched_like_a_request() {
    let mut layer = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    let data = Bytes::from_static(NOTIFY.as_bytes());
    let id = layer
        .send_request_bytes(
            data.clone(),
            Method::Notify,
            "z9hG4bKn.1",
            target(Transport::Udp),
            t0,
        )
        .expect("started");
    assert_eq!(layer.poll_transmit().expect("sent").data, data);
    assert!(layer.request(id).is_none(), "only the bytes are kept");
    assert_eq!(
        layer.send_request_bytes(
            data.clone(),
            Method::Notify,
            "z9hG4bKn.1",
            target(Transport::Udp),
            t0
        ),
        Err(TxError::DuplicateBranch)
    );
    // Timer E: the same bytes again after T1.
    let e = layer.poll_timeout().expect("timer E");
    assert_eq!(e, t0 + Duration::from_millis(500));
    layer.handle_timeout(e);
    assert_eq!(layer.poll_transmit().expect("retransmitted").data, data);
    // The 200 is matched to it; Timer K (T4) ends it.
    layer.handle_message(
        Message::Response(ok()),
        peer(),
        target(Transport::Udp).local.expect("l"),
        Transport::Udp,
        e,
    );
    assert!(
        matches!(layer.poll_event(), Some(Event::Response { transaction, .. }) if transaction == id)
    );
    layer.handle_timeout(e + Duration::from_secs(5));
    assert!(
        matches!(layer.poll_event(), Some(Event::Terminated { transaction }) if transaction == id)
    );
    assert!(layer.is_empty());
}

#[test]
fn unanswered_bytes_time_out_and_invite_or_ack_or_a_bad_branch_are_refused() {
    let mut layer = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    let data = Bytes::from_static(NOTIFY.as_bytes());
    let id = layer
        .send_request_bytes(
            data.clone(),
            Method::Notify,
            "z9hG4bKn.1",
            target(Transport::Tcp),
            t0,
        )
        .expect("started");
    layer.poll_transmit();
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + Duration::from_secs(32)),
        "no Timer E on TCP"
    );
    layer.handle_timeout(t0 + Duration::from_secs(32));
    assert!(
        matches!(layer.poll_event(), Some(Event::Timeout { transaction }) if transaction == id)
    );
    for (method, branch, err) in [
        (Method::Invite, "z9hG4bKn.2", TxError::InviteNeedsRequest),
        (Method::Ack, "z9hG4bKn.2", TxError::AckNotTransaction),
        (Method::Notify, "n.2", TxError::BadBranch),
        (Method::Notify, "z9hG4bK", TxError::BadBranch),
    ] {
        assert_eq!(
            layer.send_request_bytes(data.clone(), method, branch, target(Transport::Udp), t0),
            Err(err)
        );
    }
}
