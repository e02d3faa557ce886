//! Parse and re-serialize typical REGISTER, INVITE-with-SDP and 200 OK messages.

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use sip::parse::{BodyMode, Limits, parse_bytes};

const REGISTER: &[u8] = b"REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---6c3f2a1b9d7e8f01;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@192.0.2.10:5060;rinstance=8f2a1c3b4d5e6f70;transport=UDP>\r\n\
To: <sip:1001@pbx.example.com>\r\n\
From: <sip:1001@pbx.example.com>;tag=5d3c2b1a\r\n\
Call-ID: YjQ1NzA4ZTc5OGM0ZDM2ZjEyYjRiMGE5NTE1ZjE0ZTI\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Zoiper rv2.10.20.4\r\n\
Authorization: Digest username=\"1001\",realm=\"pbx.example.com\",nonce=\"6d5b7c1a2f3e4d5c6b7a8f9e0d1c2b3a\",uri=\"sip:pbx.example.com\",response=\"0c8a5f1e2d3b4c5a6f7e8d9c0b1a2f3e\",cnonce=\"2b3c4d5e\",nc=00000001,qop=auth,algorithm=MD5\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\
\r\n";

/// The sample INVITE, shared with `examples/parse_rate.rs`.
const INVITE: &[u8] = include_bytes!("invite.sip");

const OK200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKpbx1a2b3c4d5e6f7a8b;received=192.0.2.1;rport=5060\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---9a8b7c6d5e4f3a2b;rport=5060\r\n\
Record-Route: <sip:192.0.2.1;lr>\r\n\
Contact: <sip:1002@192.0.2.20:5062>\r\n\
To: <sip:1002@pbx.example.com>;tag=b7c6d5e4\r\n\
From: \"Alice\" <sip:1001@pbx.example.com>;tag=4a3b2c1d\r\n\
Call-ID: MzE2NjQ4YjYyNjZlNGQ5ZGI5ZjM1NmM3ZTg4MmE1Zjg\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Server: Denwa/0.1\r\n\
Content-Length: 0\r\n\
\r\n";

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("sip");
    for (name, raw) in [
        ("register", REGISTER),
        ("invite_sdp", INVITE),
        ("ok200", OK200),
    ] {
        let buf = Bytes::from_static(raw);
        // Sanity: the samples must parse, or the figures mean nothing.
        if parse_bytes(buf.clone(), BodyMode::Datagram, &limits).is_err() {
            panic!("bench sample {name} does not parse");
        }
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| parse_bytes(black_box(buf.clone()), BodyMode::Datagram, &limits))
        });
        g.bench_function(format!("parse_copy/{name}"), |b| {
            b.iter(|| sip::parse_message(black_box(raw)))
        });
        g.bench_function(format!("parse_serialize/{name}"), |b| {
            b.iter(|| {
                parse_bytes(black_box(buf.clone()), BodyMode::Datagram, &limits)
                    .map(|m| m.to_bytes())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
