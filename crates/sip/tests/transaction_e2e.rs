//! Two transaction layers (a caller and a callee UA) talking through a simulated network that
//! loses chosen datagrams; dialogs on top. Everything runs on a fake clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::dialog::{Dialog, DialogState};
use sip::transaction::{Config, Event, Target, TransactionId, TransactionLayer, Transport};
use sip::{HeaderName, Host, Message, Method, Request, Response, Via};

const ALICE: &str = "10.0.0.1:5060";
const BOB: &str = "10.0.0.2:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Side {
    layer: TransactionLayer,
    addr: SocketAddr,
    events: VecDeque<Event>,
}

struct Net {
    alice: Side,
    bob: Side,
    now: Instant,
    t0: Instant,
    transport: Transport,
    /// Drop the n-th datagram (0-based) of those whose first line starts with the prefix.
    drops: Vec<(&'static str, usize)>,
    seen: Vec<String>,
    delivered: usize,
}

impl Net {
    fn new(transport: Transport) -> Net {
        let side = |a: &str, seed| Side {
            layer: TransactionLayer::new(Config {
                branch_seed: seed,
                ..Config::default()
            }),
            addr: addr(a),
            events: VecDeque::new(),
        };
        let t0 = Instant::now();
        Net {
            alice: side(ALICE, 1),
            bob: side(BOB, 2),
            now: t0,
            t0,
            transport,
            drops: Vec::new(),
            seen: Vec::new(),
            delivered: 0,
        }
    }

    fn dropped(&mut self, data: &[u8]) -> bool {
        let line = String::from_utf8_lossy(data)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut hit = false;
        for (prefix, nth) in &self.drops {
            if line.starts_with(prefix) {
                let count = self.seen.iter().filter(|l| l.starts_with(prefix)).count();
                if count == *nth {
                    hit = true;
                }
            }
        }
        self.seen.push(line);
        hit
    }

    /// Delivers queued datagrams both ways until none are left.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for from_alice in [true, false] {
                let (src, dst) = if from_alice {
                    (&mut self.alice, &mut self.bob)
                } else {
                    (&mut self.bob, &mut self.alice)
                };
                let mut out = Vec::new();
                while let Some(t) = src.layer.poll_transmit() {
                    assert_eq!(t.destination, dst.addr, "sent to the right peer");
                    out.push(t.data);
                }
                let src_addr = src.addr;
                while let Some(e) = src.layer.poll_event() {
                    src.events.push_back(e);
                }
                for data in out {
                    moved = true;
                    if self.dropped(&data) {
                        continue;
                    }
                    self.delivered += 1;
                    let msg = sip::parse_message(&data).expect("layers emit valid SIP");
                    let dst = if from_alice {
                        &mut self.bob
                    } else {
                        &mut self.alice
                    };
                    dst.layer
                        .handle_message(msg, src_addr, dst.addr, self.transport, self.now);
                    while let Some(e) = dst.layer.poll_event() {
                        dst.events.push_back(e);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances the clock to the next deadline of either side (if before `limit`).
    fn step(&mut self, limit: Duration) -> bool {
        let next = [
            self.alice.layer.poll_timeout(),
            self.bob.layer.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(at) if at <= self.t0 + limit => {
                self.now = self.now.max(at);
                self.alice.layer.handle_timeout(self.now);
                self.bob.layer.handle_timeout(self.now);
                self.pump();
                true
            }
            _ => false,
        }
    }

    fn target(&self, to: SocketAddr) -> Target {
        Target {
            destination: to,
            transport: self.transport,
            local: None,
        }
    }
}

fn invite(branch: &str, transport: Transport) -> Request {
    let text = format!(
        "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/{transport} 10.0.0.1:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@10.0.0.1>;tag=alice1\r\nTo: <sip:bob@10.0.0.2>\r\n\
         Call-ID: e2e-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n"
    );
    match sip::parse_message(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn via(layer: &mut TransactionLayer, host: &str, transport: Transport) -> Via {
    let branch = layer.new_branch();
    Via::new(
        transport.as_str(),
        Host::Domain(host.into()),
        Some(5060),
        &branch,
    )
}

/// Callee TU: answers INVITE 180 then 200, BYE 200; keeps the dialog.
fn bob_tu(
    net: &mut Net,
    dialog: &mut Option<Dialog>,
    invites_seen: &mut usize,
    acks_seen: &mut usize,
) {
    while let Some(e) = net.bob.events.pop_front() {
        match e {
            Event::Request {
                transaction: Some(id),
                request,
                ..
            } if request.method == Method::Invite => {
                *invites_seen += 1;
                let ringing = Response::for_request(&request, 180, None)
                    .with_to_tag("bob1")
                    .with_header(HeaderName::Contact, "<sip:bob@10.0.0.2:5060>");
                net.bob
                    .layer
                    .send_response(id, ringing.clone(), net.now)
                    .unwrap();
                let mut d = Dialog::uas(&request, &ringing).unwrap();
                let ok = Response::for_request(&request, 200, None)
                    .with_to_tag("bob1")
                    .with_header(HeaderName::Contact, "<sip:bob@10.0.0.2:5060>");
                net.bob
                    .layer
                    .send_response(id, ok.clone(), net.now)
                    .unwrap();
                d.on_sent_response(&ok);
                *dialog = Some(d);
            }
            Event::Request {
                transaction: None,
                request,
                ..
            } => {
                assert_eq!(request.method, Method::Ack);
                dialog.as_mut().unwrap().on_request(&request).unwrap();
                *acks_seen += 1;
            }
            Event::Request {
                transaction: Some(id),
                request,
                ..
            } => {
                assert_eq!(request.method, Method::Bye);
                dialog.as_mut().unwrap().on_request(&request).unwrap();
                let ok = Response::for_request(&request, 200, None);
                net.bob.layer.send_response(id, ok, net.now).unwrap();
            }
            Event::AckTimeout { .. } => panic!("bob never got the ACK"),
            _ => {}
        }
    }
}

fn call_with_losses(
    transport: Transport,
    drops: Vec<(&'static str, usize)>,
) -> (usize, usize, u64) {
    let mut net = Net::new(transport);
    net.drops = drops;
    let inv = invite("z9hG4bKe2e", transport);
    let inv_id = net
        .alice
        .layer
        .send_request(inv.clone(), net.target(addr(BOB)), net.now)
        .unwrap();
    net.pump();

    let mut bob_dialog = None;
    let mut alice_dialog: Option<Dialog> = None;
    let (mut invites_seen, mut acks_seen, mut oks_seen) = (0, 0, 0);
    let mut bye_id: Option<TransactionId> = None;
    let mut bye_done = false;
    for _ in 0..10_000 {
        bob_tu(&mut net, &mut bob_dialog, &mut invites_seen, &mut acks_seen);
        while let Some(e) = net.alice.events.pop_front() {
            if let Event::Response {
                transaction,
                response,
                ..
            } = e
            {
                if transaction == inv_id && response.status == 200 {
                    oks_seen += 1;
                    // The TU acknowledges every 2xx (retransmissions too).
                    let d =
                        alice_dialog.get_or_insert_with(|| Dialog::uac(&inv, &response).unwrap());
                    d.on_response(&Method::Invite, &response).unwrap();
                    let v = via(&mut net.alice.layer, "10.0.0.1", transport);
                    let ack = d.ack(1, &v);
                    net.alice
                        .layer
                        .send_stateless(&Message::Request(ack), net.target(addr(BOB)));
                    if bye_id.is_none() {
                        let v = via(&mut net.alice.layer, "10.0.0.1", transport);
                        let bye = d.new_request(Method::Bye, &v);
                        bye_id = Some(
                            net.alice
                                .layer
                                .send_request(bye, net.target(addr(BOB)), net.now)
                                .unwrap(),
                        );
                    }
                } else if Some(transaction) == bye_id && response.status == 200 {
                    bye_done = true;
                }
            }
        }
        net.pump();
        if !net.alice.events.is_empty() || !net.bob.events.is_empty() {
            continue;
        }
        if !net.step(Duration::from_secs(120)) {
            break;
        }
    }
    assert!(bye_done, "call set up and torn down");
    assert_eq!(
        invites_seen, 1,
        "INVITE retransmissions absorbed by bob's layer"
    );
    assert!(acks_seen >= 1);
    assert_eq!(alice_dialog.unwrap().state, DialogState::Confirmed);
    assert_eq!(bob_dialog.unwrap().remote_seq, Some(2), "BYE CSeq counted");
    assert!(
        net.alice.layer.is_empty() && net.bob.layer.is_empty(),
        "all transactions ended"
    );
    let retrans = net.alice.layer.stats().retransmitted + net.bob.layer.stats().retransmitted;
    (oks_seen, net.delivered, retrans)
}

#[test]
fn call_over_clean_udp() {
    let (oks, _, retrans) = call_with_losses(Transport::Udp, vec![]);
    assert_eq!(oks, 1);
    assert_eq!(retrans, 0);
}

#[test]
fn call_over_lossy_udp_recovers_by_retransmission() {
    // Lose the first INVITE, the first 200 to INVITE, the first ACK and the first BYE.
    let (oks, _, retrans) = call_with_losses(
        Transport::Udp,
        vec![("INVITE", 0), ("SIP/2.0 200", 0), ("ACK", 0), ("BYE", 0)],
    );
    // Bob's 2xx retransmission brought a second 200, which Alice acknowledged again.
    assert!(oks >= 2, "oks {oks}");
    assert!(retrans >= 3, "retransmissions {retrans}");
}

#[test]
fn call_over_tcp_needs_no_retransmission() {
    let (oks, _, retrans) = call_with_losses(Transport::Tcp, vec![]);
    assert_eq!(oks, 1);
    // Only the UAS 2xx timer could retransmit, and the ACK arrives before it fires.
    assert_eq!(retrans, 0);
}
