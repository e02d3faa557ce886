//! Property test: random interleavings of network input, TU actions, transport errors and time
//! never panic, and once the TU has answered everything, every transaction ends on its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip::transaction::{
    Config, Event, State, Target, TransactionId, TransactionKind, TransactionLayer, Transport,
};
use sip::{Message, Request, Response};

const METHODS: [&str; 5] = ["INVITE", "OPTIONS", "CANCEL", "ACK", "BYE"];
const STATUSES: [u16; 7] = [100, 180, 183, 200, 404, 486, 487];

#[derive(Debug, Clone)]
enum Op {
    RecvRequest {
        method: usize,
        branch: u8,
        cookie: bool,
        tcp: bool,
    },
    RecvResponse {
        method: usize,
        branch: u8,
        status: usize,
    },
    TuRespond {
        pick: usize,
        status: usize,
    },
    TuSend {
        invite: bool,
        branch: u8,
        tcp: bool,
    },
    TuCancel {
        pick: usize,
    },
    TransportError {
        pick: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..METHODS.len(), 0u8..4, any::<bool>(), any::<bool>()).prop_map(
            |(method, branch, cookie, tcp)| Op::RecvRequest {
                method,
                branch,
                cookie,
                tcp
            }
        ),
        (0..METHODS.len(), 0u8..4, 0..STATUSES.len()).prop_map(|(method, branch, status)| {
            Op::RecvResponse {
                method,
                branch,
                status,
            }
        }),
        (any::<usize>(), 0..STATUSES.len())
            .prop_map(|(pick, status)| Op::TuRespond { pick, status }),
        (any::<bool>(), 0u8..4, any::<bool>()).prop_map(|(invite, branch, tcp)| Op::TuSend {
            invite,
            branch,
            tcp
        }),
        any::<usize>().prop_map(|pick| Op::TuCancel { pick }),
        any::<usize>().prop_map(|pick| Op::TransportError { pick }),
        (0u64..40_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn message(method: &str, branch: u8, cookie: bool, status: Option<u16>) -> Message {
    let b = if cookie {
        format!("z9hG4bK{branch}")
    } else {
        format!("old{branch}")
    };
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    let head = match status {
        Some(s) => format!("SIP/2.0 {s} X"),
        None => format!("{method} sip:u@10.0.0.2 SIP/2.0"),
    };
    let to_tag = if status.is_some_and(|s| s > 100) || method == "ACK" {
        ";tag=t"
    } else {
        ""
    };
    let text = format!(
        "{head}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={b}\r\nMax-Forwards: 70\r\n\
         From: <sip:a@10.0.0.1>;tag=f\r\nTo: <sip:u@10.0.0.2>{to_tag}\r\nCall-ID: prop\r\n\
         CSeq: 1 {cseq_method}\r\nContent-Length: 0\r\n\r\n"
    );
    sip::parse_message(text.as_bytes()).unwrap()
}

fn run(ops: Vec<Op>) {
    let mut layer = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    let mut now = t0;
    let peer: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let local: SocketAddr = "10.0.0.2:5060".parse().unwrap();
    let mut known: Vec<TransactionId> = Vec::new();
    // The TU keeps the requests of its server transactions (the layer keeps only INVITEs').
    let mut received: HashMap<TransactionId, Request> = HashMap::new();
    let drain = |layer: &mut TransactionLayer,
                 known: &mut Vec<TransactionId>,
                 received: &mut HashMap<TransactionId, Request>| {
        while layer.poll_transmit().is_some() {}
        while let Some(e) = layer.poll_event() {
            if let Event::Request {
                transaction: Some(id),
                request,
                ..
            } = e
            {
                known.push(id);
                received.insert(id, request);
            }
        }
    };
    for op in ops {
        match op {
            Op::RecvRequest {
                method,
                branch,
                cookie,
                tcp,
            } => {
                let t = if tcp { Transport::Tcp } else { Transport::Udp };
                layer.handle_message(
                    message(METHODS[method], branch, cookie, None),
                    peer,
                    local,
                    t,
                    now,
                );
            }
            Op::RecvResponse {
                method,
                branch,
                status,
            } => {
                let m = message(METHODS[method], branch, true, Some(STATUSES[status]));
                layer.handle_message(m, peer, local, Transport::Udp, now);
            }
            Op::TuRespond { pick, status } => {
                if let Some(&id) = known.get(pick % known.len().max(1))
                    && let Some(req) = received.get(&id).or(layer.request(id))
                {
                    let r = Response::for_request(req, STATUSES[status], None).with_to_tag("t");
                    let _ = layer.send_response(id, r, now);
                }
            }
            Op::TuSend {
                invite,
                branch,
                tcp,
            } => {
                let Message::Request(r) = message(
                    if invite { "INVITE" } else { "OPTIONS" },
                    branch,
                    true,
                    None,
                ) else {
                    unreachable!()
                };
                let transport = if tcp { Transport::Tcp } else { Transport::Udp };
                let target = Target {
                    destination: peer,
                    transport,
                    local: None,
                };
                if let Ok(id) = layer.send_request(r, target, now) {
                    known.push(id);
                }
            }
            Op::TuCancel { pick } => {
                if let Some(&id) = known.get(pick % known.len().max(1)) {
                    let _ = layer.cancel(id, now);
                }
            }
            Op::TransportError { pick } => {
                if let Some(&id) = known.get(pick % known.len().max(1)) {
                    layer.handle_transport_error(id);
                }
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(ms);
                layer.handle_timeout(now);
            }
        }
        drain(&mut layer, &mut known, &mut received);
    }
    // The TU's duty: answer every server transaction still waiting, and end ringing client
    // INVITEs with a final response (a proxy would use Timer C / CANCEL).
    for &id in &known {
        match (layer.kind(id), layer.state(id)) {
            (
                Some(TransactionKind::ServerInvite | TransactionKind::ServerNonInvite),
                Some(State::Trying | State::Proceeding),
            ) => {
                if let Some(req) = received.get(&id) {
                    let r = Response::for_request(req, 500, None).with_to_tag("t");
                    layer.send_response(id, r, now).unwrap();
                }
            }
            (Some(TransactionKind::ClientInvite), Some(State::Proceeding)) => {
                let req = layer.request(id).unwrap().clone();
                let mut r = Response::for_request(&req, 487, None).with_to_tag("t");
                r.headers
                    .set(sip::HeaderName::Via, req.top_via().unwrap().to_string());
                layer.handle_message(Message::Response(r), peer, local, Transport::Udp, now);
            }
            _ => {}
        }
    }
    drain(&mut layer, &mut known, &mut received);
    // Then time alone ends everything, within a bounded number of steps.
    let mut steps = 0;
    while let Some(at) = layer.poll_timeout() {
        assert!(
            at >= now - Duration::from_secs(100),
            "deadline far in the past"
        );
        now = now.max(at);
        layer.handle_timeout(now);
        drain(&mut layer, &mut known, &mut received);
        steps += 1;
        assert!(steps < 100_000, "timers do not converge");
    }
    assert!(layer.is_empty(), "{} transactions left", layer.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_end_cleanly(ops in prop::collection::vec(op(), 0..60)) {
        run(ops);
    }
}
