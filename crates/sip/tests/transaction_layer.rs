//! Transaction layer: full timer ladders with a fake clock, retransmission absorption, ACK/CANCEL
//! handling, RFC 2543 fallback, reliable vs unreliable transports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::transaction::{
    Config, Event, State, Target, Timers, TransactionId, TransactionKind, TransactionLayer,
    Transmit, Transport, TxError,
};
use sip::{Message, Method, Request, Response};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

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

/// A request as a UAC at 10.0.0.1 would send it.
fn mk_req(method: &str, branch: &str, transport: &str, extra_via: &str) -> Request {
    req(&format!(
        "{method} sip:bob@10.0.0.2 SIP/2.0
Via: SIP/2.0/{transport} 10.0.0.1:5070;branch={branch}{extra_via}
Max-Forwards: 70
From: Alice <sip:alice@10.0.0.1>;tag=fromtag
To: Bob <sip:bob@10.0.0.2>
Call-ID: call-1@10.0.0.1
CSeq: 1 {method}
Contact: <sip:alice@10.0.0.1:5070>
Content-Length: 0

"
    ))
}

fn ack_2xx(branch: &str, to_tag: &str) -> Request {
    req(&format!(
        "ACK sip:alice@10.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5070;branch={branch}
Max-Forwards: 70
From: Alice <sip:alice@10.0.0.1>;tag=fromtag
To: Bob <sip:bob@10.0.0.2>;tag={to_tag}
Call-ID: call-1@10.0.0.1
CSeq: 1 ACK
Content-Length: 0

"
    ))
}

/// A response to `r` with To tag `totag` (none for 100).
fn answer(r: &Request, status: u16) -> Response {
    let out = Response::for_request(r, status, None);
    if status > 100 {
        out.with_to_tag("totag")
    } else {
        out
    }
}

fn no_trying() -> Config {
    Config {
        trying_delay: None,
        ..Config::default()
    }
}

struct Harness {
    layer: TransactionLayer,
    t0: Instant,
    peer: SocketAddr,
    local: SocketAddr,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(Config::default())
    }

    fn with(config: Config) -> Harness {
        Harness {
            layer: TransactionLayer::new(config),
            t0: Instant::now(),
            peer: addr("10.0.0.1:5070"),
            local: addr("10.0.0.2:5060"),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + MS(ms)
    }

    fn target(&self, transport: Transport) -> Target {
        Target {
            destination: self.peer,
            transport,
            local: Some(self.local),
        }
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.layer.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.layer.poll_event()).collect()
    }

    fn receive(&mut self, m: impl Into<MessageIn>, transport: Transport, ms: u64) {
        let now = self.at(ms);
        self.layer
            .handle_message(m.into().0, self.peer, self.local, transport, now);
    }

    /// Runs the clock deadline by deadline up to `until_ms`; returns (ms offset, transmit) pairs.
    fn run_until(&mut self, until_ms: u64) -> Vec<(u64, Transmit)> {
        let mut out = Vec::new();
        let mut steps = 0;
        while let Some(at) = self.layer.poll_timeout() {
            if at > self.at(until_ms) {
                break;
            }
            steps += 1;
            assert!(steps < 10_000, "timer loop does not converge");
            self.layer.handle_timeout(at);
            let ms = (at - self.t0).as_millis() as u64;
            for t in self.transmits() {
                out.push((ms, t));
            }
        }
        out
    }
}

struct MessageIn(Message);
impl From<Request> for MessageIn {
    fn from(r: Request) -> Self {
        MessageIn(Message::Request(r))
    }
}
impl From<Response> for MessageIn {
    fn from(r: Response) -> Self {
        MessageIn(Message::Response(r))
    }
}

fn server_txn(events: &[Event]) -> (TransactionId, Option<TransactionId>) {
    events
        .iter()
        .find_map(|e| match e {
            Event::Request {
                transaction: Some(t),
                cancels,
                ..
            } => Some((*t, *cancels)),
            _ => None,
        })
        .expect("a new server transaction")
}

fn has_timeout(events: &[Event], id: TransactionId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Timeout { transaction } if *transaction == id))
}

fn terminated(events: &[Event], id: TransactionId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Terminated { transaction } if *transaction == id))
}

fn offsets(sent: &[(u64, Transmit)]) -> Vec<u64> {
    sent.iter().map(|(ms, _)| *ms).collect()
}

fn text(t: &Transmit) -> String {
    String::from_utf8(t.data.to_vec()).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Client INVITE
// ------------------------------------------------------------------------------------------------

#[test]
fn client_invite_timer_a_doubles_until_timer_b() {
    let mut h = Harness::new();
    let id = h
        .layer
        .send_request(
            mk_req("INVITE", "z9hG4bKa1", "UDP", ""),
            h.target(Transport::Udp),
            h.at(0),
        )
        .unwrap();
    assert_eq!(h.transmits().len(), 1);
    assert_eq!(h.layer.state(id), Some(State::Calling));
    let sent = h.run_until(40_000);
    // Timer A: 500 ms, doubling each time, until Timer B (64*T1 = 32 s).
    assert_eq!(offsets(&sent), vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(
        sent.iter()
            .all(|(_, t)| t.transaction == Some(id) && t.destination == h.peer)
    );
    let ev = h.events();
    assert!(has_timeout(&ev, id) && terminated(&ev, id));
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn client_invite_reliable_has_no_timer_a() {
    let mut h = Harness::new();
    let id = h
        .layer
        .send_request(
            mk_req("INVITE", "z9hG4bKa2", "TCP", ""),
            h.target(Transport::Tcp),
            h.at(0),
        )
        .unwrap();
    assert_eq!(h.transmits().len(), 1);
    assert_eq!(
        h.layer.poll_timeout(),
        Some(h.at(32_000)),
        "only Timer B runs"
    );
    assert!(h.run_until(40_000).is_empty());
    assert!(has_timeout(&h.events(), id));
}

#[test]
fn client_invite_custom_t1() {
    let mut h = Harness::with(Config {
        timers: Timers {
            t1: MS(100),
            ..Timers::default()
        },
        ..Config::default()
    });
    h.layer
        .send_request(
            mk_req("INVITE", "z9hG4bKa3", "UDP", ""),
            h.target(Transport::Udp),
            h.at(0),
        )
        .unwrap();
    h.transmits();
    let sent = h.run_until(10_000);
    assert_eq!(offsets(&sent), vec![100, 300, 700, 1500, 3100, 6300]);
}

#[test]
fn client_invite_non2xx_acked_inside_transaction() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut h = Harness::new();
        let inv = mk_req("INVITE", "z9hG4bKack", transport.as_str(), "");
        let id = h
            .layer
            .send_request(inv.clone(), h.target(transport), h.at(0))
            .unwrap();
        h.transmits();
        h.receive(answer(&inv, 180), transport, 100);
        assert_eq!(h.layer.state(id), Some(State::Proceeding));
        h.receive(answer(&inv, 486), transport, 200);
        let tx = h.transmits();
        assert_eq!(tx.len(), 1, "one ACK");
        let Message::Request(ack) = sip::parse_message(&tx[0].data).unwrap() else {
            panic!()
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, inv.uri);
        assert_eq!(ack.cseq().unwrap().seq, 1);
        assert_eq!(ack.cseq().unwrap().method, Method::Ack);
        assert_eq!(ack.to().unwrap().tag(), Some("totag"));
        assert_eq!(ack.from().unwrap().tag(), Some("fromtag"));
        assert_eq!(ack.vias().len(), 1);
        assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKack"));
        let ev = h.events();
        let statuses: Vec<u16> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Response { response, .. } => Some(response.status),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, vec![180, 486]);
        if transport.is_reliable() {
            // Timer D is zero on reliable transports.
            assert!(terminated(&ev, id));
            continue;
        }
        assert_eq!(h.layer.state(id), Some(State::Completed));
        // A retransmitted 486 is answered with the same ACK and not passed up.
        h.receive(answer(&inv, 486), transport, 300);
        let again = h.transmits();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].data, tx[0].data);
        assert!(h.events().is_empty());
        // Timer D: 32 s.
        assert_eq!(h.layer.poll_timeout(), Some(h.at(200 + 32_000)));
        h.run_until(40_000);
        assert!(terminated(&h.events(), id));
    }
}

#[test]
fn client_invite_2xx_and_retransmissions_go_to_tu_until_timer_m() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bK2xx", "UDP", "");
    let id = h
        .layer
        .send_request(inv.clone(), h.target(Transport::Udp), h.at(0))
        .unwrap();
    h.transmits();
    h.receive(answer(&inv, 200), Transport::Udp, 50);
    assert_eq!(h.layer.state(id), Some(State::Accepted));
    h.receive(answer(&inv, 200), Transport::Udp, 550);
    // A forked 2xx with another To tag also goes up.
    h.receive(
        Response::for_request(&inv, 200, None).with_to_tag("fork2"),
        Transport::Udp,
        600,
    );
    // The layer never ACKs a 2xx itself.
    assert!(h.transmits().is_empty());
    let ev = h.events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Response { .. }))
            .count(),
        3
    );
    // No retransmission of the INVITE after the 2xx; Timer M = 64*T1 ends the transaction.
    assert!(h.run_until(40_000).is_empty());
    let ev = h.events();
    assert!(terminated(&ev, id) && !has_timeout(&ev, id));
}

#[test]
fn client_invite_provisional_stops_timer_a_and_b() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKprov", "UDP", "");
    let id = h
        .layer
        .send_request(inv.clone(), h.target(Transport::Udp), h.at(0))
        .unwrap();
    h.transmits();
    h.run_until(600); // one retransmission at 500 ms
    h.receive(answer(&inv, 100), Transport::Udp, 700);
    assert!(h.run_until(120_000).is_empty());
    assert_eq!(
        h.layer.state(id),
        Some(State::Proceeding),
        "a ringing call has no timeout here"
    );
}

#[test]
fn client_cancel_waits_for_provisional() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKcan", "UDP", "");
    let id = h
        .layer
        .send_request(inv.clone(), h.target(Transport::Udp), h.at(0))
        .unwrap();
    h.transmits();
    assert_eq!(h.layer.cancel(id, h.at(10)), Ok(None));
    assert!(
        h.transmits().is_empty(),
        "no CANCEL before a provisional response"
    );
    h.receive(answer(&inv, 180), Transport::Udp, 100);
    let tx = h.transmits();
    assert_eq!(tx.len(), 1);
    let Message::Request(cancel) = sip::parse_message(&tx[0].data).unwrap() else {
        panic!()
    };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, inv.uri);
    assert_eq!(cancel.cseq().unwrap().seq, 1);
    assert_eq!(cancel.cseq().unwrap().method, Method::Cancel);
    assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKcan"));
    assert_eq!(
        cancel.to().unwrap().tag(),
        None,
        "CANCEL copies the request's To"
    );
    let cancel_id = tx[0].transaction.unwrap();
    assert_eq!(
        h.layer.kind(cancel_id),
        Some(TransactionKind::ClientNonInvite)
    );
    // 200 to CANCEL goes to the CANCEL transaction, 487 to the INVITE.
    h.receive(answer(&cancel, 200), Transport::Udp, 150);
    h.receive(answer(&inv, 487), Transport::Udp, 160);
    let ev = h.events();
    let got: Vec<(TransactionId, u16)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Response {
                transaction,
                response,
                ..
            } => Some((*transaction, response.status)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(id, 180), (cancel_id, 200), (id, 487)]);
    // A second cancel in Completed is refused.
    assert!(matches!(
        h.layer.cancel(id, h.at(200)),
        Err(TxError::InvalidState(_))
    ));
}

#[test]
fn client_cancel_dropped_when_final_comes_first() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKcan2", "UDP", "");
    let id = h
        .layer
        .send_request(inv.clone(), h.target(Transport::Udp), h.at(0))
        .unwrap();
    h.transmits();
    h.layer.cancel(id, h.at(1)).unwrap();
    h.receive(answer(&inv, 200), Transport::Udp, 5);
    assert!(h.transmits().is_empty());
}

// ------------------------------------------------------------------------------------------------
// Client non-INVITE
// ------------------------------------------------------------------------------------------------

#[test]
fn client_non_invite_timer_e_capped_at_t2_until_timer_f() {
    let mut h = Harness::new();
    let id = h
        .layer
        .send_request(
            mk_req("OPTIONS", "z9hG4bKe1", "UDP", ""),
            h.target(Transport::Udp),
            h.at(0),
        )
        .unwrap();
    h.transmits();
    let sent = h.run_until(40_000);
    assert_eq!(
        offsets(&sent),
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let ev = h.events();
    assert!(has_timeout(&ev, id) && terminated(&ev, id));
}

#[test]
fn client_non_invite_proceeding_retransmits_every_t2() {
    let mut h = Harness::new();
    let r = mk_req("REGISTER", "z9hG4bKe2", "UDP", "");
    let id = h
        .layer
        .send_request(r.clone(), h.target(Transport::Udp), h.at(0))
        .unwrap();
    h.transmits();
    h.receive(answer(&r, 100), Transport::Udp, 100);
    assert_eq!(h.layer.state(id), Some(State::Proceeding));
    let sent = h.run_until(12_000);
    // Timer E was armed for 500 ms; once it fires in Proceeding the interval is T2.
    assert_eq!(offsets(&sent), vec![500, 4500, 8500]);
}

#[test]
fn client_non_invite_timer_k_absorbs_response_retransmissions() {
    for transport in [Transport::Udp, Transport::Tls] {
        let mut h = Harness::new();
        let r = mk_req("BYE", "z9hG4bKk1", transport.as_str(), "");
        let id = h
            .layer
            .send_request(r.clone(), h.target(transport), h.at(0))
            .unwrap();
        h.transmits();
        h.receive(answer(&r, 200), transport, 100);
        let ev = h.events();
        assert!(matches!(ev[0], Event::Response { transaction, .. } if transaction == id));
        if transport.is_reliable() {
            assert!(
                terminated(&ev, id),
                "Timer K is zero on reliable transports"
            );
            continue;
        }
        h.receive(answer(&r, 200), transport, 200);
        assert!(h.events().is_empty(), "retransmitted final absorbed");
        assert_eq!(h.layer.poll_timeout(), Some(h.at(5_100)), "Timer K = T4");
        h.run_until(6_000);
        assert!(terminated(&h.events(), id));
    }
}

#[test]
fn response_matching_uses_branch_and_cseq_method() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKm1", "UDP", "");
    let id = h
        .layer
        .send_request(inv.clone(), h.target(Transport::Udp), h.at(0))
        .unwrap();
    // A response whose CSeq says CANCEL does not belong to the INVITE transaction.
    let mut wrong = answer(&inv, 200);
    wrong.headers.set(sip::HeaderName::CSeq, "1 CANCEL");
    h.receive(wrong, Transport::Udp, 10);
    // Nor does one with another branch.
    h.receive(
        answer(&mk_req("INVITE", "z9hG4bKother", "UDP", ""), 200),
        Transport::Udp,
        10,
    );
    let ev = h.events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::StrayResponse { .. }))
            .count(),
        2
    );
    assert_eq!(h.layer.state(id), Some(State::Calling));
}

#[test]
fn send_request_validation() {
    let mut h = Harness::new();
    let t = h.target(Transport::Udp);
    assert_eq!(
        h.layer
            .send_request(mk_req("INVITE", "nocookie", "UDP", ""), t, h.at(0)),
        Err(TxError::BadBranch)
    );
    assert_eq!(
        h.layer.send_request(ack_2xx("z9hG4bKx", "t"), t, h.at(0)),
        Err(TxError::AckNotTransaction)
    );
    h.layer
        .send_request(mk_req("INVITE", "z9hG4bKdup", "UDP", ""), t, h.at(0))
        .unwrap();
    assert_eq!(
        h.layer
            .send_request(mk_req("INVITE", "z9hG4bKdup", "UDP", ""), t, h.at(0)),
        Err(TxError::DuplicateBranch)
    );
    let b1 = h.layer.new_branch();
    let b2 = h.layer.new_branch();
    assert!(b1.starts_with("z9hG4bK") && b1 != b2);
}

#[test]
fn transport_error_ends_transaction() {
    let mut h = Harness::new();
    let id = h
        .layer
        .send_request(
            mk_req("OPTIONS", "z9hG4bKte", "TCP", ""),
            h.target(Transport::Tcp),
            h.at(0),
        )
        .unwrap();
    h.layer.handle_transport_error(id);
    let ev = h.events();
    assert!(matches!(ev[0], Event::TransportError { transaction } if transaction == id));
    assert!(terminated(&ev, id));
    assert!(h.layer.is_empty());
}

// ------------------------------------------------------------------------------------------------
// Server INVITE
// ------------------------------------------------------------------------------------------------

#[test]
fn server_invite_absorbs_retransmission_by_resending_provisional() {
    let mut h = Harness::with(no_trying());
    let inv = mk_req("INVITE", "z9hG4bKs1", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    assert_eq!(h.layer.state(id), Some(State::Proceeding));
    // Before any provisional, a retransmission is absorbed silently.
    h.receive(inv.clone(), Transport::Udp, 100);
    assert!(h.transmits().is_empty() && h.events().is_empty());
    let ringing = answer(h.layer.request(id).unwrap(), 180);
    h.layer.send_response(id, ringing, h.at(150)).unwrap();
    let first = h.transmits();
    assert_eq!(first.len(), 1);
    h.receive(inv.clone(), Transport::Udp, 500);
    let again = h.transmits();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].data, first[0].data, "last provisional resent");
    assert!(h.events().is_empty(), "retransmission not passed to the TU");
    assert_eq!(h.layer.stats().absorbed, 2);
}

#[test]
fn server_invite_sends_100_trying_after_delay() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKs2", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    assert!(h.transmits().is_empty());
    let sent = h.run_until(1_000);
    assert_eq!(offsets(&sent), vec![200]);
    assert!(text(&sent[0].1).starts_with("SIP/2.0 100 Trying\r\n"));
    h.receive(inv, Transport::Udp, 300);
    assert!(text(&h.transmits()[0]).starts_with("SIP/2.0 100 Trying\r\n"));
    assert_eq!(h.layer.state(id), Some(State::Proceeding));

    // A TU that answers within the delay suppresses the automatic 100.
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKs3", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id2, _) = server_txn(&h.events());
    h.layer
        .send_response(id2, answer(&inv, 180), h.at(50))
        .unwrap();
    h.transmits();
    assert!(h.run_until(1_000).is_empty());
    assert_eq!(h.layer.state(id2), Some(State::Proceeding));
}

#[test]
fn server_invite_non2xx_timer_g_ladder_then_timer_h() {
    let mut h = Harness::with(no_trying());
    let inv = mk_req("INVITE", "z9hG4bKg1", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    h.layer
        .send_response(id, answer(&inv, 486), h.at(0))
        .unwrap();
    assert_eq!(h.transmits().len(), 1);
    assert_eq!(h.layer.state(id), Some(State::Completed));
    let sent = h.run_until(40_000);
    // Timer G: T1 doubling, capped at T2; Timer H = 64*T1 gives up.
    assert_eq!(
        offsets(&sent),
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let ev = h.events();
    assert!(has_timeout(&ev, id) && terminated(&ev, id));
}

#[test]
fn server_invite_ack_confirms_then_timer_i() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut h = Harness::with(no_trying());
        let inv = mk_req("INVITE", "z9hG4bKi1", transport.as_str(), "");
        h.receive(inv.clone(), transport, 0);
        let (id, _) = server_txn(&h.events());
        let busy = answer(&inv, 486);
        h.layer.send_response(id, busy.clone(), h.at(0)).unwrap();
        h.transmits();
        // Retransmitted INVITE in Completed: the final response is resent.
        h.receive(inv.clone(), transport, 100);
        assert_eq!(h.transmits().len(), 1);
        // The hop-by-hop ACK (same branch) is absorbed.
        let mut ack = ack_2xx("z9hG4bKi1", "totag");
        ack.headers.set(
            sip::HeaderName::Via,
            format!("SIP/2.0/{transport} 10.0.0.1:5070;branch=z9hG4bKi1"),
        );
        h.receive(ack.clone(), transport, 200);
        let ev = h.events();
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Request { .. })),
            "ACK not passed up"
        );
        if transport.is_reliable() {
            assert!(
                terminated(&ev, id),
                "Timer I is zero on reliable transports"
            );
            continue;
        }
        assert_eq!(h.layer.state(id), Some(State::Confirmed));
        h.receive(ack, transport, 300);
        assert!(h.events().is_empty());
        // No more Timer G retransmissions; Timer I = T4.
        assert!(h.run_until(10_000).is_empty());
        let ev = h.events();
        assert!(terminated(&ev, id) && !has_timeout(&ev, id));
    }
}

#[test]
fn server_invite_reliable_has_no_timer_g() {
    let mut h = Harness::with(no_trying());
    let inv = mk_req("INVITE", "z9hG4bKg2", "TCP", "");
    h.receive(inv.clone(), Transport::Tcp, 0);
    let (id, _) = server_txn(&h.events());
    h.layer
        .send_response(id, answer(&inv, 404), h.at(0))
        .unwrap();
    h.transmits();
    assert_eq!(h.layer.poll_timeout(), Some(h.at(32_000)), "only Timer H");
    assert!(h.run_until(40_000).is_empty());
    assert!(has_timeout(&h.events(), id));
}

#[test]
fn server_invite_2xx_retransmitted_until_ack() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKok", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    h.layer
        .send_response(id, answer(&inv, 200), h.at(0))
        .unwrap();
    let ok = h.transmits();
    assert_eq!(ok.len(), 1);
    assert_eq!(h.layer.state(id), Some(State::Accepted));
    let sent = h.run_until(4_000);
    assert_eq!(offsets(&sent), vec![500, 1500, 3500]);
    assert!(sent.iter().all(|(_, t)| t.data == ok[0].data));
    // A retransmitted INVITE in Accepted is absorbed (the 2xx timer covers it).
    h.receive(inv.clone(), Transport::Udp, 3_600);
    assert!(h.transmits().is_empty());
    assert!(h.events().is_empty());
    // The ACK (new branch, end to end) stops the retransmissions and reaches the TU.
    h.receive(ack_2xx("z9hG4bKack2xx", "totag"), Transport::Udp, 3_700);
    let ev = h.events();
    assert!(
        matches!(&ev[0], Event::Request { transaction: None, request, .. } if request.method == Method::Ack)
    );
    assert!(h.run_until(40_000).is_empty());
    let ev = h.events();
    assert!(terminated(&ev, id), "Timer L ends the transaction");
    assert!(!ev.iter().any(|e| matches!(e, Event::AckTimeout { .. })));
}

#[test]
fn server_invite_2xx_without_ack_reports_ack_timeout() {
    let mut h = Harness::with(no_trying());
    let inv = mk_req("INVITE", "z9hG4bKnoack", "TCP", "");
    h.receive(inv.clone(), Transport::Tcp, 0);
    let (id, _) = server_txn(&h.events());
    h.layer
        .send_response(id, answer(&inv, 200), h.at(0))
        .unwrap();
    h.transmits();
    let sent = h.run_until(40_000);
    // 2xx retransmission is the UAS core's end-to-end duty: it runs on TCP too.
    assert_eq!(
        offsets(&sent),
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let ev = h.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::AckTimeout { transaction } if *transaction == id))
    );
    assert!(terminated(&ev, id));
}

#[test]
fn server_response_state_rules() {
    let mut h = Harness::with(no_trying());
    let inv = mk_req("INVITE", "z9hG4bKst", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    assert_eq!(
        h.layer.send_response(id, answer(&inv, 99), h.at(0)),
        Err(TxError::BadStatus(99))
    );
    h.layer
        .send_response(id, answer(&inv, 603), h.at(0))
        .unwrap();
    assert!(matches!(
        h.layer.send_response(id, answer(&inv, 200), h.at(1)),
        Err(TxError::InvalidState(Some(State::Completed)))
    ));
    assert_eq!(
        h.layer
            .send_response(TransactionId::clone(&id), answer(&inv, 180), h.at(1)),
        Err(TxError::InvalidState(Some(State::Completed)))
    );
}

// ------------------------------------------------------------------------------------------------
// Server non-INVITE
// ------------------------------------------------------------------------------------------------

/// A shortened Timer J (a busy registrar's setting) ends the lingering transaction sooner; until
/// then a retransmission still gets the final response again.
#[test]
fn timer_j_follows_the_configured_value() {
    let mut h = Harness::with(Config {
        timers: Timers {
            j: Duration::from_secs(5),
            ..Timers::default()
        },
        ..Config::default()
    });
    let r = mk_req("REGISTER", "z9hG4bKj5", "UDP", "");
    h.receive(r.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    h.layer
        .send_response(id, answer(&r, 200), h.at(100))
        .unwrap();
    h.transmits();
    assert_eq!(h.layer.poll_timeout(), Some(h.at(100 + 5_000)));
    h.receive(r.clone(), Transport::Udp, 4_000);
    assert!(text(&h.transmits()[0]).starts_with("SIP/2.0 200 "));
    assert!(h.run_until(5_200).is_empty());
    assert!(terminated(&h.events(), id));
    h.receive(r, Transport::Udp, 5_300);
    server_txn(&h.events());
}

#[test]
fn server_non_invite_trying_proceeding_completed_timer_j() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut h = Harness::new();
        let r = mk_req("REGISTER", "z9hG4bKj1", transport.as_str(), "");
        h.receive(r.clone(), transport, 0);
        let (id, _) = server_txn(&h.events());
        assert_eq!(h.layer.state(id), Some(State::Trying));
        // Trying: retransmission absorbed, nothing to resend.
        h.receive(r.clone(), transport, 100);
        assert!(h.transmits().is_empty() && h.events().is_empty());
        h.layer
            .send_response(id, answer(&r, 100), h.at(150))
            .unwrap();
        assert_eq!(h.layer.state(id), Some(State::Proceeding));
        h.transmits();
        h.receive(r.clone(), transport, 200);
        assert!(text(&h.transmits()[0]).starts_with("SIP/2.0 100 "));
        h.layer
            .send_response(id, answer(&r, 200), h.at(300))
            .unwrap();
        h.transmits();
        if transport.is_reliable() {
            assert!(
                terminated(&h.events(), id),
                "Timer J is zero on reliable transports"
            );
            continue;
        }
        h.receive(r.clone(), transport, 400);
        assert!(text(&h.transmits()[0]).starts_with("SIP/2.0 200 "));
        assert_eq!(
            h.layer.poll_timeout(),
            Some(h.at(300 + 32_000)),
            "Timer J = 64*T1"
        );
        assert!(h.run_until(40_000).is_empty());
        assert!(terminated(&h.events(), id));
        // After J the same request is new again.
        h.receive(r, transport, 40_001);
        server_txn(&h.events());
    }
}

// ------------------------------------------------------------------------------------------------
// CANCEL, RFC 2543, Via stamping
// ------------------------------------------------------------------------------------------------

#[test]
fn cancel_is_matched_to_invite_server_transaction() {
    let mut h = Harness::new();
    let inv = mk_req("INVITE", "z9hG4bKc1", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (inv_id, _) = server_txn(&h.events());
    let cancel = mk_req("CANCEL", "z9hG4bKc1", "UDP", "");
    h.receive(cancel.clone(), Transport::Udp, 10);
    let (cancel_id, cancels) = server_txn(&h.events());
    assert_ne!(cancel_id, inv_id);
    assert_eq!(cancels, Some(inv_id));
    assert_eq!(
        h.layer.kind(cancel_id),
        Some(TransactionKind::ServerNonInvite)
    );
    // The TU answers 200 to CANCEL and 487 to INVITE.
    assert!(
        h.layer.request(cancel_id).is_none(),
        "a server non-INVITE transaction keeps no copy of its request"
    );
    h.layer
        .send_response(cancel_id, answer(&cancel, 200), h.at(11))
        .unwrap();
    h.layer
        .send_response(inv_id, answer(&inv, 487), h.at(11))
        .unwrap();
    assert_eq!(h.transmits().len(), 2);

    // A CANCEL whose branch matches nothing.
    h.receive(
        mk_req("CANCEL", "z9hG4bKnothing", "UDP", ""),
        Transport::Udp,
        20,
    );
    assert_eq!(server_txn(&h.events()).1, None);
    // Same branch but another sent-by is another transaction (§17.2.3).
    let mut other = mk_req("CANCEL", "z9hG4bKc1", "UDP", "");
    other.headers.set(
        sip::HeaderName::Via,
        "SIP/2.0/UDP 10.9.9.9:5070;branch=z9hG4bKc1",
    );
    h.receive(other, Transport::Udp, 30);
    assert_eq!(server_txn(&h.events()).1, None);
}

#[test]
fn rfc2543_fallback_matching() {
    let mut h = Harness::with(no_trying());
    let inv = mk_req("INVITE", "old1", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (id, _) = server_txn(&h.events());
    // Retransmission matched without a magic cookie.
    h.receive(inv.clone(), Transport::Udp, 100);
    assert!(h.events().is_empty());
    // CANCEL matched by Request-URI, From tag, Call-ID, CSeq number and top Via.
    h.receive(mk_req("CANCEL", "old1", "UDP", ""), Transport::Udp, 150);
    assert_eq!(server_txn(&h.events()).1, Some(id));
    h.layer
        .send_response(id, answer(&inv, 487), h.at(200))
        .unwrap();
    // The ACK carries our To tag and the same top Via.
    let mut ack = ack_2xx("old1", "totag");
    ack.uri = inv.uri.clone();
    h.receive(ack, Transport::Udp, 300);
    assert!(
        h.events().is_empty(),
        "ACK absorbed by the INVITE transaction"
    );
    assert_eq!(h.layer.state(id), Some(State::Confirmed));
    // A request from another dialog (other From tag) is a new transaction.
    let mut other = inv.clone();
    other
        .headers
        .set(sip::HeaderName::From, "<sip:carol@10.0.0.1>;tag=zzz");
    h.receive(other, Transport::Udp, 400);
    assert_ne!(server_txn(&h.events()).0, id);
}

#[test]
fn via_received_rport_and_response_destination() {
    let mut h = Harness::with(no_trying());
    h.peer = addr("192.0.2.7:40000");
    // rport requested: answer to the source address and port.
    let r = mk_req("OPTIONS", "z9hG4bKv1", "UDP", ";rport");
    h.receive(r, Transport::Udp, 0);
    let ev = h.events();
    let Event::Request {
        transaction: Some(id),
        request,
        ..
    } = &ev[0]
    else {
        panic!()
    };
    let via = request.top_via().unwrap();
    assert_eq!(via.received(), Some("192.0.2.7"));
    assert_eq!(via.rport(), Some(Some(40000)));
    let resp = answer(request, 200);
    assert!(
        resp.to_bytes()
            .windows(14)
            .any(|w| w == b"rport=40000;br" || w == b"received=192.0")
    );
    h.layer.send_response(*id, resp, h.at(1)).unwrap();
    let tx = h.transmits();
    assert_eq!(tx[0].destination, addr("192.0.2.7:40000"));
    assert_eq!(tx[0].local, Some(h.local));

    // No rport: received is stamped, the response goes to the Via port.
    h.receive(mk_req("OPTIONS", "z9hG4bKv2", "UDP", ""), Transport::Udp, 0);
    let ev = h.events();
    let Event::Request {
        transaction: Some(id),
        request,
        ..
    } = &ev[0]
    else {
        panic!()
    };
    assert_eq!(request.top_via().unwrap().received(), Some("192.0.2.7"));
    h.layer
        .send_response(*id, answer(request, 200), h.at(1))
        .unwrap();
    assert_eq!(h.transmits()[0].destination, addr("192.0.2.7:5070"));

    // Reliable: back over the same connection, whatever the Via says.
    h.receive(mk_req("OPTIONS", "z9hG4bKv3", "TCP", ""), Transport::Tcp, 0);
    let ev = h.events();
    let Event::Request {
        transaction: Some(id),
        request,
        ..
    } = &ev[0]
    else {
        panic!()
    };
    h.layer
        .send_response(*id, answer(request, 200), h.at(1))
        .unwrap();
    let tx = h.transmits();
    assert_eq!(
        (tx[0].destination, tx[0].transport),
        (addr("192.0.2.7:40000"), Transport::Tcp)
    );
}

#[test]
fn malformed_requests_are_dropped_and_counted() {
    let mut h = Harness::new();
    let mut r = mk_req("OPTIONS", "z9hG4bKbad", "UDP", "");
    r.headers.remove(&sip::HeaderName::Via);
    h.receive(r, Transport::Udp, 0);
    assert!(h.events().is_empty());
    assert_eq!(h.layer.stats().dropped, 1);
}

// ------------------------------------------------------------------------------------------------
// Scale
// ------------------------------------------------------------------------------------------------

#[test]
fn thousands_of_transactions_run_to_completion() {
    const N: usize = 5_000;
    let mut h = Harness::new();
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let method = if i % 2 == 0 { "INVITE" } else { "OPTIONS" };
        let r = mk_req(method, &format!("z9hG4bKload{i}"), "UDP", "");
        // Spread start times over one second.
        let id = h
            .layer
            .send_request(r, h.target(Transport::Udp), h.at((i % 1000) as u64))
            .unwrap();
        ids.push(id);
    }
    assert_eq!(h.layer.len(), N);
    h.transmits();
    let sent = h.run_until(100_000);
    // INVITE: 6 retransmissions each; non-INVITE: 10 each.
    assert_eq!(sent.len(), N / 2 * 6 + N / 2 * 10);
    assert!(h.layer.is_empty());
    let ev = h.events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Timeout { .. }))
            .count(),
        N
    );
    let ended: std::collections::HashSet<TransactionId> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Terminated { transaction } => Some(*transaction),
            _ => None,
        })
        .collect();
    assert!(ids.iter().all(|id| ended.contains(id)));
    assert_eq!(h.layer.stats().retransmitted as usize, sent.len());
}

#[test]
fn zero_t1_is_clamped_and_terminates() {
    let mut h = Harness::with(Config {
        timers: Timers {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            ..Timers::default()
        },
        ..Config::default()
    });
    let id = h
        .layer
        .send_request(
            mk_req("OPTIONS", "z9hG4bKz", "UDP", ""),
            h.target(Transport::Udp),
            h.at(0),
        )
        .unwrap();
    h.transmits();
    // T1 = T2 = 1 ms: retransmissions every millisecond until Timer F at 64 ms.
    let sent = h.run_until(1_000);
    assert_eq!(offsets(&sent), (1..64).collect::<Vec<u64>>());
    assert!(has_timeout(&h.events(), id));
}

#[test]
fn cancelled_timers_are_purged_from_the_heap() {
    let mut h = Harness::new();
    for round in 0..3 {
        let mut ids = Vec::new();
        for i in 0..3_000 {
            let r = mk_req("INVITE", &format!("z9hG4bKpurge{round}x{i}"), "UDP", "");
            ids.push(
                h.layer
                    .send_request(r, h.target(Transport::Udp), h.at(0))
                    .unwrap(),
            );
        }
        // The peer goes away: every transaction ends early, leaving Timers A and B behind.
        for id in ids {
            h.layer.handle_transport_error(id);
        }
    }
    h.transmits();
    h.events();
    assert!(h.layer.is_empty());
    // The next timer set purges the 6 000 dead entries the last round left behind.
    assert_eq!(h.layer.timer_entries(), 6_000);
    let r = mk_req("INVITE", "z9hG4bKpurge-last", "UDP", "");
    h.layer
        .send_request(r, h.target(Transport::Udp), h.at(0))
        .unwrap();
    assert_eq!(
        h.layer.timer_entries(),
        2,
        "Timers A and B of the live transaction"
    );
    assert_eq!(h.layer.poll_timeout(), Some(h.at(500)));
}

/// Lingering transactions keep only what they may still need: server transactions drop the
/// request with the final response; a client INVITE keeps it after a 2xx until the TU releases
/// it (a late answer still needs it for the dialog), and drops it after a non-2xx; a client
/// non-INVITE drops it with its final response. Matching and retransmission still work.
#[test]
fn requests_are_dropped_once_final() {
    let mut h = Harness::new();
    // Server INVITE answered 2xx: request gone, the ACK still matches.
    let inv = mk_req("INVITE", "z9hG4bKsrv", "UDP", "");
    h.receive(inv.clone(), Transport::Udp, 0);
    let (sid, _) = server_txn(&h.events());
    assert!(h.layer.request(sid).is_some());
    h.layer
        .send_response(sid, answer(&inv, 200), h.at(0))
        .unwrap();
    assert!(h.layer.request(sid).is_none());
    let ok = h.transmits();
    let resent = h.run_until(600);
    assert_eq!(resent.len(), 1, "2xx still retransmitted");
    assert_eq!(resent[0].1.data, ok[0].data);
    h.receive(ack_2xx("z9hG4bKsrvack", "totag"), Transport::Udp, 700);
    assert!(
        h.run_until(5_000).is_empty(),
        "the ACK stopped the 2xx timer"
    );

    // Server non-INVITE: request gone after the final response; a retransmission gets it again.
    let opt = mk_req("OPTIONS", "z9hG4bKopt", "UDP", "");
    h.receive(opt.clone(), Transport::Udp, 5_000);
    let (oid, _) = server_txn(&h.events());
    h.layer
        .send_response(oid, answer(&opt, 200), h.at(5_000))
        .unwrap();
    assert!(h.layer.request(oid).is_none());
    let first = h.transmits();
    h.receive(opt, Transport::Udp, 5_100);
    assert_eq!(h.transmits()[0].data, first[0].data);

    // Client INVITE with a 2xx: kept until released; releasing before the answer does nothing.
    let cinv = mk_req("INVITE", "z9hG4bKcli", "UDP", "");
    let cid = h
        .layer
        .send_request(cinv.clone(), h.target(Transport::Udp), h.at(6_000))
        .unwrap();
    h.layer.release_request(cid);
    assert!(h.layer.request(cid).is_some(), "a CANCEL may still need it");
    h.receive(answer(&cinv, 200), Transport::Udp, 6_050);
    assert_eq!(h.layer.state(cid), Some(State::Accepted));
    assert!(h.layer.request(cid).is_some());
    h.layer.release_request(cid);
    assert!(h.layer.request(cid).is_none());
    h.events();
    h.receive(answer(&cinv, 200), Transport::Udp, 6_500);
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::Response { transaction, .. } if *transaction == cid)),
        "2xx retransmissions still reach the TU"
    );

    // Client INVITE with a non-2xx: dropped, and the ACK is still resent for a retransmission.
    let binv = mk_req("INVITE", "z9hG4bKbusy", "UDP", "");
    let bid = h
        .layer
        .send_request(binv.clone(), h.target(Transport::Udp), h.at(7_000))
        .unwrap();
    h.transmits();
    h.receive(answer(&binv, 486), Transport::Udp, 7_050);
    assert!(h.layer.request(bid).is_none());
    let ack = h.transmits();
    h.receive(answer(&binv, 486), Transport::Udp, 7_100);
    assert_eq!(h.transmits()[0].data, ack[0].data);

    // Client non-INVITE: dropped with the final response.
    let bye = mk_req("BYE", "z9hG4bKbye", "UDP", "");
    let yid = h
        .layer
        .send_request(bye.clone(), h.target(Transport::Udp), h.at(8_000))
        .unwrap();
    h.receive(answer(&bye, 200), Transport::Udp, 8_050);
    assert!(h.layer.request(yid).is_none());
}
