//! Parses the benchmark INVITE N times (default 1,000,000) so that `perf stat -e task-clock`
//! gives CPU time per message independent of other load on the machine:
//! `perf stat -e task-clock cargo run --release -p sip --example parse_rate -- 2000000`.

const INVITE: &[u8] = b"INVITE sip:1002@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---9a8b7c6d5e4f3a2b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@192.0.2.10:5060;transport=UDP>\r\n\
To: <sip:1002@pbx.example.com>\r\n\
From: \"Alice\" <sip:1001@pbx.example.com>;tag=4a3b2c1d\r\n\
Call-ID: MzE2NjQ4YjYyNjZlNGQ5ZGI5ZjM1NmM3ZTg4MmE1Zjg\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n\
User-Agent: Zoiper rv2.10.20.4\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 279\r\n\
\r\n\
v=0\r\n\
o=Z 0 21462081 IN IP4 192.0.2.10\r\n\
s=Z\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:8001\r\n\
a=ssrc:1234567890 cname:alice@192.0.2.10\r\n\
a=maxptime:150\r\n";

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut ok = 0u64;
    let start = std::time::Instant::now();
    for _ in 0..n {
        if std::hint::black_box(sip::parse_message(std::hint::black_box(INVITE))).is_ok() {
            ok += 1;
        }
    }
    let wall = start.elapsed();
    println!(
        "{ok}/{n} parsed in {wall:?} wall ({:.0} msg/s wall)",
        n as f64 / wall.as_secs_f64()
    );
}
