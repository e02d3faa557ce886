//! Trunk server location (RFC 3263) against a DNS server this test runs: NAPTR → SRV → A with
//! priority and weight order, the transport's NAPTR service, SRV without NAPTR, plain A, an
//! explicit port (A only), and a literal address (no DNS at all).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::outside::TrunkTransport;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::{A, NAPTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use pbx::resolve::Resolver;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

/// The zone: what each (name, type) answers.
fn answers(q: &str, t: RecordType) -> Vec<RData> {
    let naptr = |order, service: &str, repl: &str| {
        RData::NAPTR(NAPTR::new(
            order,
            10,
            b"s".to_vec().into_boxed_slice(),
            service.as_bytes().to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name(repl),
        ))
    };
    let srv =
        |prio, weight, port, target: &str| RData::SRV(SRV::new(prio, weight, port, name(target)));
    let a = |d: u8| RData::A(A(Ipv4Addr::new(192, 0, 2, d)));
    match (q, t) {
        ("carrier.test.", RecordType::NAPTR) => vec![
            naptr(20, "SIP+D2T", "_sip._tcp.carrier.test."),
            naptr(10, "SIP+D2U", "_sip._udp.carrier.test."),
        ],
        ("_sip._udp.carrier.test.", RecordType::SRV) => vec![
            srv(10, 10, 5070, "a.carrier.test."),
            srv(20, 0, 5080, "b.carrier.test."),
            srv(10, 60, 5071, "c.carrier.test."),
        ],
        ("_sip._tcp.carrier.test.", RecordType::SRV) => vec![srv(10, 0, 5061, "d.carrier.test.")],
        ("_sip._udp.srvonly.test.", RecordType::SRV) => vec![srv(1, 0, 5090, "e.srvonly.test.")],
        ("a.carrier.test.", RecordType::A) => vec![a(1)],
        ("b.carrier.test.", RecordType::A) => vec![a(2)],
        ("c.carrier.test.", RecordType::A) => vec![a(3)],
        ("d.carrier.test.", RecordType::A) => vec![a(4)],
        ("e.srvonly.test.", RecordType::A) => vec![a(5)],
        ("plain.test.", RecordType::A) => vec![a(9)],
        _ => Vec::new(),
    }
}

/// A DNS server on 127.0.0.1 answering from [`answers`] until dropped.
struct Dns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Dns {
    fn start() -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::new();
                resp.set_id(req.id());
                resp.set_message_type(MessageType::Response);
                resp.set_recursion_desired(true);
                resp.set_recursion_available(true);
                for q in req.queries() {
                    resp.add_query(q.clone());
                    for rd in answers(&q.name().to_ascii(), q.query_type()) {
                        resp.add_answer(Record::from_rdata(q.name().clone(), 60, rd));
                    }
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, peer);
                }
            }
        });
        Dns { addr, stop }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn addrs(v: &[&str]) -> Vec<SocketAddr> {
    v.iter().map(|s| s.parse().expect("addr")).collect()
}

#[tokio::test]
async fn naptr_srv_and_a_in_rfc_3263_order() {
    let dns = Dns::start();
    let r = Resolver::with_server(dns.addr);
    assert_eq!(
        r.locate("carrier.test", None, TrunkTransport::Udp).await,
        addrs(&["192.0.2.3:5071", "192.0.2.1:5070", "192.0.2.2:5080"]),
        "priority, then the heavier weight first"
    );
    assert_eq!(
        r.locate("carrier.test", None, TrunkTransport::Tcp).await,
        addrs(&["192.0.2.4:5061"]),
        "the TCP service's NAPTR"
    );
    assert_eq!(
        r.locate("srvonly.test", None, TrunkTransport::Udp).await,
        addrs(&["192.0.2.5:5090"]),
        "SRV without NAPTR"
    );
    assert_eq!(
        r.locate("plain.test", None, TrunkTransport::Udp).await,
        addrs(&["192.0.2.9:5060"]),
        "plain A on 5060"
    );
    assert_eq!(
        r.locate("carrier.test", Some(5099), TrunkTransport::Udp)
            .await,
        Vec::<SocketAddr>::new(),
        "an explicit port skips SRV: carrier.test has no A record"
    );
    assert_eq!(
        r.locate("plain.test", Some(5099), TrunkTransport::Udp)
            .await,
        addrs(&["192.0.2.9:5099"])
    );
    assert!(
        r.locate("nowhere.test", None, TrunkTransport::Udp)
            .await
            .is_empty()
    );
    // A literal address needs no DNS.
    assert_eq!(
        r.locate("203.0.113.7", None, TrunkTransport::Udp).await,
        addrs(&["203.0.113.7:5060"])
    );
}
