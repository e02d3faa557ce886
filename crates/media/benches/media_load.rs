//! One step of the media benchmark (`bench/media.sh`): N terminating loads through ONE server
//! core, measured at a sink, for Denwa's media engine (`media::endpoint`, driven directly in this
//! process, one worker thread) or for rtpengine (a child process driven over its ng control
//! protocol) — the same load generator and sink for both.
//!
//! Modes:
//! - `prompt`: N legs each playing a G.711 µ-law prompt (a WAV file, repeated) to the sink.
//!   rtpengine: one call per leg (offer/answer PCMU) and `play media` of the same WAV.
//! - `transcode`: N calls, side A Opus (a pre-encoded second of a 440 Hz tone, replayed with
//!   fresh sequence numbers and timestamps), side B PCMU (a 1 kHz tone), both streaming 20 ms
//!   packets for the whole step. Denwa: two endpoints (Opus and PCMU) joined in a bridge per
//!   call; rtpengine: offer A with Opus and `codec: {transcode: [PCMU]}`, answer B with PCMU.
//! - `conf` (Denwa only): N participants in rooms of 5..10 (sizes cycle 5,6,..,10), each sending
//!   a PCMU tone and receiving the mix of the others.
//!
//! The server runs on `--server-cpu` (Denwa: the engine's worker inherits the main thread's
//! affinity; rtpengine: `taskset`), the generator and sink threads on `--load-cpu`. All streams
//! are sent from and to one sink socket (both servers latch to it), told apart by SSRC.
//! After `--warmup` seconds the sink counts, per stream, packets, sequence gaps (loss) and gaps
//! between arrivals longer than 40 ms, for `--secs` seconds. It prints one line of `key=value`.
//!
//! `--opus-rate 8000` caps Denwa's Opus legs at 8 kHz PCM (`Endpoint::set_pcm_rate_limit`).
//!
//! Run: `cargo bench -p media --bench media_load -- --server denwa --mode prompt --n 2000`.
//! Bounded: at most 60 s of measurement, 20,000 legs.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use media::codec::CodecKind;
use media::endpoint::{
    BridgeId, EndpointId, EngineConfig, MediaEngine, Negotiated, PlayItem, PlayRequest,
};
use media::ports::PortPool;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const OPUS_PT: u8 = 96;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn pin_current_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// utime + stime in seconds from a /proc stat line.
fn stat_cpu(stat: &str) -> f64 {
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>()
        / hz()
}

/// CPU seconds of this process's threads whose name starts with `prefix` (the engine's threads
/// are `media-0`, `media-loader-0`, `media-writer`; unnamed threads carry the process name).
fn threads_cpu(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut sum = 0.0;
    for task in dir.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with(prefix) {
            sum += stat_cpu(&std::fs::read_to_string(task.path().join("stat")).unwrap_or_default());
        }
    }
    sum
}

fn proc_cpu(pid: u32) -> f64 {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// Datagrams the kernel dropped on the UDP socket bound to `port` (its receive buffer full).
fn udp_drops(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let want = format!(":{port:04X}");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1).is_some_and(|l| l.ends_with(&want)) {
            return f.last().and_then(|d| d.parse().ok()).unwrap_or(0);
        }
    }
    0
}

#[derive(Default)]
struct Stream {
    first: u64,
    max: u64,
    last_seq: u16,
    received: u64,
    last_at: Option<Instant>,
    gaps40: u64,
    gaps60: u64,
    max_gap: Duration,
}

#[derive(Default)]
struct SinkReport {
    streams: usize,
    received: u64,
    expected: u64,
    gaps40: u64,
    gaps60: u64,
    max_gap_ms: f64,
}

/// Reads the sink socket until `stop`; counts only while `measuring`.
fn sink(sock: UdpSocket, measuring: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> SinkReport {
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut buf = [0u8; 2048];
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let mut was_measuring = false;
    while !stop.load(Relaxed) {
        let Ok(n) = sock.recv(&mut buf) else {
            continue;
        };
        if !measuring.load(Relaxed) {
            if was_measuring {
                break;
            }
            continue;
        }
        was_measuring = true;
        // RTP only: version 2, not an RTCP packet type (200-204).
        if n < 12 || buf[0] >> 6 != 2 || (200..=204).contains(&buf[1]) {
            continue;
        }
        let now = Instant::now();
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let s = streams.entry(ssrc).or_default();
        if let Some(last) = s.last_at {
            let gap = now - last;
            if gap > Duration::from_millis(40) {
                s.gaps40 += 1;
            }
            if gap > Duration::from_millis(60) {
                s.gaps60 += 1;
            }
            s.max_gap = s.max_gap.max(gap);
            // Extended sequence number, reordering tolerated.
            let delta = seq.wrapping_sub(s.last_seq) as i16 as i64;
            let ext = (s.max as i64 + delta).max(0) as u64;
            if ext > s.max {
                s.max = ext;
                s.last_seq = seq;
            }
        } else {
            s.first = 1 << 32;
            s.max = 1 << 32;
            s.last_seq = seq;
        }
        s.received += 1;
        s.last_at = Some(now);
    }
    let mut r = SinkReport {
        streams: streams.len(),
        ..SinkReport::default()
    };
    for s in streams.values() {
        r.received += s.received;
        r.expected += s.max - s.first + 1;
        r.gaps40 += s.gaps40;
        r.gaps60 += s.gaps60;
        r.max_gap_ms = r.max_gap_ms.max(s.max_gap.as_secs_f64() * 1000.0);
    }
    r
}

/// One stream the generator plays: `payloads` cycled, 20 ms apart.
struct Source {
    to: SocketAddr,
    pt: u8,
    ssrc: u32,
    ts_step: u32,
    payloads: Arc<Vec<Vec<u8>>>,
}

fn generator(sock: UdpSocket, sources: Vec<Source>, stop: Arc<AtomicBool>) {
    // Each 20 ms round is sent in 1 ms slices, as independent phones would be spread out.
    const SLICES: usize = 20;
    let start = Instant::now();
    let mut round: u64 = 0;
    let mut buf = vec![0u8; 1500];
    let len = sources.len();
    while !stop.load(Relaxed) {
        for k in 0..SLICES {
            for s in &sources[k * len / SLICES..(k + 1) * len / SLICES] {
                let payload = &s.payloads[(round % s.payloads.len() as u64) as usize];
                let h = media::rtp::RtpHeader::new(
                    s.pt,
                    round as u16,
                    (round as u32).wrapping_mul(s.ts_step),
                    s.ssrc,
                );
                if let Ok(n) = h.write(payload, &mut buf) {
                    let _ = sock.send_to(&buf[..n], s.to);
                }
            }
            let next = start + Duration::from_millis(20 * round + k as u64 + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        round += 1;
    }
}

fn pcmu_tone(freq: f64) -> Arc<Vec<Vec<u8>>> {
    let pcm = media::tone::sine(freq, Duration::from_secs(1), 8000, 6000);
    Arc::new(pcm.chunks(160).map(media::g711::encode_ulaw).collect())
}

/// One second of a 440 Hz tone, Opus at 48 kHz, 20 ms frames (encoded once, replayed).
fn opus_tone() -> Arc<Vec<Vec<u8>>> {
    let pcm = media::tone::sine(440.0, Duration::from_secs(1), 48000, 6000);
    let mut enc = media::codec::encoder(CodecKind::Opus).expect("opus encoder");
    Arc::new(
        pcm.chunks(960)
            .map(|f| {
                let mut out = Vec::new();
                enc.encode(f, &mut out).expect("encode");
                out
            })
            .collect(),
    )
}

// ---- rtpengine's ng protocol (bencode over UDP) ----

enum Ben {
    Str(String),
    Int(i64),
    List(Vec<Ben>),
    Dict(Vec<(&'static str, Ben)>),
}

fn bencode(b: &Ben, out: &mut Vec<u8>) {
    match b {
        Ben::Str(s) => out.extend_from_slice(format!("{}:{s}", s.len()).as_bytes()),
        Ben::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Ben::List(l) => {
            out.push(b'l');
            l.iter().for_each(|x| bencode(x, out));
            out.push(b'e');
        }
        Ben::Dict(d) => {
            let mut d: Vec<&(&str, Ben)> = d.iter().collect();
            d.sort_by_key(|(k, _)| *k);
            out.push(b'd');
            for (k, v) in d {
                bencode(&Ben::Str(k.to_string()), out);
                bencode(v, out);
            }
            out.push(b'e');
        }
    }
}

fn s(v: &str) -> Ben {
    Ben::Str(v.to_string())
}

struct Ng {
    sock: UdpSocket,
    to: SocketAddr,
    cookie: u64,
}

impl Ng {
    /// Sends a command and returns the reply text (after the cookie); retries twice.
    fn call(&mut self, cmd: Vec<(&'static str, Ben)>) -> Result<String, String> {
        let mut msg = Vec::new();
        self.cookie += 1;
        msg.extend_from_slice(format!("{} ", self.cookie).as_bytes());
        bencode(&Ben::Dict(cmd), &mut msg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..3 {
            self.sock
                .send_to(&msg, self.to)
                .map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let Ok(n) = self.sock.recv(&mut buf) else {
                    break;
                };
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(rest) = text.strip_prefix(&format!("{} ", self.cookie)) {
                    if rest.contains("6:result2:ok") {
                        return Ok(rest.to_string());
                    }
                    return Err(rest.to_string());
                }
            }
        }
        Err("no answer from rtpengine".into())
    }
}

/// The media port in an SDP rtpengine returned.
fn sdp_port(reply: &str) -> Result<u16, String> {
    reply
        .split("m=audio ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no m=audio in {reply}"))
}

fn sdp(port: u16, pt: u8, rtpmap: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

fn start_rtpengine(cpu: usize, ng_port: u16, work: &std::path::Path) -> Child {
    let bin = arg("--rtpengine-bin").unwrap_or_else(|| "rtpengine".into());
    let log = std::fs::File::create(work.join("rtpengine.log")).expect("log");
    Command::new("taskset")
        .args(["-c", &cpu.to_string(), &bin])
        .args([
            "--foreground",
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ng_port}"),
            "--port-min=13000",
            "--port-max=35999",
            "--table=-1",
            "--log-stderr",
            "--log-level=4",
            "--no-redis-required",
            "--delete-delay=0",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start rtpengine")
}

fn main() {
    let server = arg("--server").unwrap_or_else(|| "denwa".into());
    let mode = arg("--mode").unwrap_or_else(|| "prompt".into());
    let n: usize = arg("--n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
        .clamp(1, 20000);
    let secs: u64 = arg("--secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 60);
    let warmup: u64 = arg("--warmup")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .clamp(1, 30);
    let server_cpu: usize = arg("--server-cpu")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let load_cpu: usize = arg("--load-cpu").and_then(|v| v.parse().ok()).unwrap_or(1);
    let ng_port: u16 = arg("--ng-port")
        .and_then(|v| v.parse().ok())
        .unwrap_or(12990);
    // Denwa's Opus leg at a capped PCM rate (8000: `Endpoint::set_pcm_rate_limit`), else 48 kHz.
    let opus_rate: Option<u32> = arg("--opus-rate").and_then(|v| v.parse().ok());
    common::raise_fd_limit();

    let work = tempfile::tempdir().expect("tempdir");
    let prompt = work.path().join("prompt.wav");
    let pcm = media::tone::sine(440.0, Duration::from_secs(3), 8000, 10000);
    media::wav::write_file(&prompt, 8000, &pcm).expect("write prompt");

    // The sink: one socket every stream is sent from and to, with a large receive buffer.
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .expect("socket");
    let _ = sock.set_recv_buffer_size(64 << 20);
    // SO_RCVBUFFORCE (root) goes past net.core.rmem_max.
    let size: libc::c_int = 64 << 20;
    // SAFETY: setsockopt with a pointer to a local int of the size given.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    sock.bind(&SocketAddr::new(LO, 0).into())
        .expect("bind sink");
    let sink_sock: UdpSocket = sock.into();
    let sink_addr = sink_sock.local_addr().expect("addr");
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sink_thread = {
        let (s, m, st) = (
            sink_sock.try_clone().expect("clone"),
            measuring.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            pin_current_thread(load_cpu);
            sink(s, m, st)
        })
    };

    let opus = opus_tone();
    let pcmu = pcmu_tone(1000.0);
    let mut sources: Vec<Source> = Vec::new();
    let mut expected_streams = n;
    let mut error = String::new();

    // The server: Denwa's engine in this process, or rtpengine.
    let mut engine = None;
    let mut eps = Vec::new();
    let mut rtpengine: Option<Child> = None;
    if server == "denwa" {
        pin_current_thread(server_cpu);
        let (tx, mut rx) = tokio::sync::mpsc::channel(65536);
        std::thread::spawn(move || while rx.blocking_recv().is_some() {});
        let e = MediaEngine::new(
            EngineConfig {
                workers: 1,
                max_endpoints: 40000,
                ..EngineConfig::default()
            },
            Arc::new(PortPool::new(13000, 35998)),
            tx,
        );
        let mut open = |id: u64, group: u64| match e.open(EndpointId(id), LO, group, "bench") {
            Ok(ep) => {
                ep.set_remote(sink_addr, None);
                Some(ep)
            }
            Err(err) => {
                error = format!("open {id}: {err}");
                None
            }
        };
        match mode.as_str() {
            "prompt" => {
                for i in 0..n as u64 {
                    let Some(ep) = open(i, 0) else { break };
                    ep.set_codec(Negotiated::simple(CodecKind::Pcmu));
                    ep.play(PlayRequest {
                        id: 1,
                        items: vec![PlayItem::File(prompt.clone())],
                        repeat: 0,
                        stop_on_dtmf: false,
                    });
                    eps.push(ep);
                }
            }
            "transcode" => {
                expected_streams = 2 * n;
                for i in 0..n as u64 {
                    let (Some(a), Some(b)) = (open(2 * i, i), open(2 * i + 1, i)) else {
                        break;
                    };
                    let mut neg = Negotiated::simple(CodecKind::Opus);
                    neg.payload_type = OPUS_PT;
                    neg.receive = vec![(OPUS_PT, CodecKind::Opus)];
                    a.set_codec(neg);
                    if let Some(r) = opus_rate {
                        a.set_pcm_rate_limit(Some(r));
                    }
                    b.set_codec(Negotiated::simple(CodecKind::Pcmu));
                    a.join(BridgeId(i));
                    b.join(BridgeId(i));
                    sources.push(Source {
                        to: a.local(),
                        pt: OPUS_PT,
                        ssrc: 2 * i as u32,
                        ts_step: 960,
                        payloads: opus.clone(),
                    });
                    sources.push(Source {
                        to: b.local(),
                        pt: 0,
                        ssrc: 2 * i as u32 + 1,
                        ts_step: 160,
                        payloads: pcmu.clone(),
                    });
                    eps.push(a);
                    eps.push(b);
                }
            }
            "conf" => {
                let (mut room, mut left, mut size) = (0u64, 0usize, 4usize);
                for i in 0..n as u64 {
                    if left == 0 {
                        size = if size >= 10 { 5 } else { size + 1 };
                        left = size;
                        room += 1;
                    }
                    left -= 1;
                    let Some(ep) = open(i, room) else { break };
                    ep.set_codec(Negotiated::simple(CodecKind::Pcmu));
                    ep.join(BridgeId(room));
                    sources.push(Source {
                        to: ep.local(),
                        pt: 0,
                        ssrc: i as u32,
                        ts_step: 160,
                        payloads: pcmu.clone(),
                    });
                    eps.push(ep);
                }
            }
            other => {
                eprintln!("unknown mode {other}");
                std::process::exit(2);
            }
        }
        engine = Some(e);
    } else if server == "rtpengine" {
        let child = start_rtpengine(server_cpu, ng_port, work.path());
        let pid = child.id();
        rtpengine = Some(child);
        let ng_sock = UdpSocket::bind((LO, 0)).expect("ng socket");
        let _ = ng_sock.set_read_timeout(Some(Duration::from_millis(500)));
        let mut ng = Ng {
            sock: ng_sock,
            to: SocketAddr::new(LO, ng_port),
            cookie: pid as u64 * 1_000_000,
        };
        let t0 = Instant::now();
        while ng.call(vec![("command", s("ping"))]).is_err() && t0.elapsed().as_secs() < 10 {}
        let port = sink_addr.port();
        let pcmu_sdp = sdp(port, 0, "PCMU/8000");
        let opus_sdp = sdp(port, OPUS_PT, "opus/48000/2");
        if mode == "transcode" {
            expected_streams = 2 * n;
        }
        for i in 0..n {
            let call_id = format!("c{i}");
            let step = (|| -> Result<(), String> {
                let mut offer_cmd = vec![
                    ("command", s("offer")),
                    ("call-id", s(&call_id)),
                    ("from-tag", s("a")),
                    (
                        "sdp",
                        s(if mode == "transcode" {
                            &opus_sdp
                        } else {
                            &pcmu_sdp
                        }),
                    ),
                ];
                if mode == "transcode" {
                    offer_cmd.push((
                        "codec",
                        Ben::Dict(vec![("transcode", Ben::List(vec![s("PCMU")]))]),
                    ));
                }
                let offer = ng.call(offer_cmd)?;
                let to_b = sdp_port(&offer)?;
                let answer = ng.call(vec![
                    ("command", s("answer")),
                    ("call-id", s(&call_id)),
                    ("from-tag", s("a")),
                    ("to-tag", s("b")),
                    ("sdp", s(&pcmu_sdp)),
                ])?;
                let to_a = sdp_port(&answer)?;
                match mode.as_str() {
                    "prompt" => {
                        ng.call(vec![
                            ("command", s("play media")),
                            ("call-id", s(&call_id)),
                            ("from-tag", s("a")),
                            ("file", s(&prompt.to_string_lossy())),
                            ("repeat-times", Ben::Int(100000)),
                        ])?;
                    }
                    "transcode" => {
                        // A (Opus) sends to the port rtpengine answered A with; B (PCMU) to
                        // the one it offered B.
                        sources.push(Source {
                            to: SocketAddr::new(LO, to_a),
                            pt: OPUS_PT,
                            ssrc: 2 * i as u32,
                            ts_step: 960,
                            payloads: opus.clone(),
                        });
                        sources.push(Source {
                            to: SocketAddr::new(LO, to_b),
                            pt: 0,
                            ssrc: 2 * i as u32 + 1,
                            ts_step: 160,
                            payloads: pcmu.clone(),
                        });
                    }
                    other => return Err(format!("mode {other} not run against rtpengine")),
                }
                Ok(())
            })();
            if let Err(e) = step {
                error = format!("call {i}: {}", e.replace(' ', "_"));
                break;
            }
        }
    } else {
        eprintln!("unknown server {server}");
        std::process::exit(2);
    }

    let gen_thread = (!sources.is_empty()).then(|| {
        let sock = sink_sock.try_clone().expect("clone");
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin_current_thread(load_cpu);
            generator(sock, sources, stop)
        })
    });

    let cpu_now = |engine: &Option<MediaEngine>, child: &Option<Child>| match (engine, child) {
        (Some(_), _) => threads_cpu("media-"),
        (_, Some(c)) => proc_cpu(c.id()),
        _ => 0.0,
    };
    std::thread::sleep(Duration::from_secs(warmup));
    let m0 = engine.as_ref().map(|e| e.metrics()).unwrap_or_default();
    let c0 = cpu_now(&engine, &rtpengine);
    let d0 = udp_drops(sink_addr.port());
    measuring.store(true, Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    measuring.store(false, Relaxed);
    let wall = t0.elapsed().as_secs_f64();
    let c1 = cpu_now(&engine, &rtpengine);
    let m1 = engine.as_ref().map(|e| e.metrics()).unwrap_or_default();
    let d1 = udp_drops(sink_addr.port());
    // Wake the sink if nothing arrives any more.
    let _ = UdpSocket::bind((LO, 0)).and_then(|u| u.send_to(&[0u8; 4], sink_addr));
    stop.store(true, Relaxed);
    let report = sink_thread.join().unwrap_or_default();
    if let Some(t) = gen_thread {
        let _ = t.join();
    }
    let tx_per_s = (m1.packets_tx - m0.packets_tx) as f64 / wall;
    drop(eps);
    if let Some(mut c) = rtpengine.take() {
        // SAFETY: SIGTERM to the child we started, by its pid.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        if let Ok(log) = std::fs::read_to_string(work.path().join("rtpengine.log")) {
            let errs: Vec<&str> = log.lines().filter(|l| l.contains("ERR")).take(3).collect();
            if !errs.is_empty() {
                eprintln!("rtpengine log: {}", errs.join(" | "));
            }
        }
    }
    let missing_streams = expected_streams.saturating_sub(report.streams) as u64;
    let want_total = expected_streams as f64 * 50.0 * wall;
    let lost = report.expected.saturating_sub(report.received)
        + (missing_streams as f64 * 50.0 * wall) as u64;
    let loss_pct = lost as f64 / want_total.max(1.0) * 100.0;
    let frames = (n as f64 * 50.0 * wall).max(1.0);
    let underruns = m1.underruns - m0.underruns;
    // Late (> 10 ms after the deadline) and skipped ticks: a late tick delays one round of
    // packets, which a phone's jitter buffer absorbs; more than 1 % of the ticks fails the step
    // as sustained overload. What a listener hears is the sink's gaps > 40 ms.
    let late = (m1.late_ticks - m0.late_ticks) + (m1.skipped_ticks - m0.skipped_ticks);
    let ticks = m1.ticks - m0.ticks;
    let gaps_pct = report.gaps40 as f64 / want_total.max(1.0) * 100.0;
    let underrun_pct = underruns as f64 / frames * 100.0;
    let cpu_pct = (c1 - c0) / wall * 100.0;
    // `--gaps off`: arrival gaps are reported but do not fail the step (rtpengine's player
    // leaves 60-120 ms gaps even with one stream; see bench/README-media.md).
    let gaps_count = arg("--gaps").is_none_or(|g| g != "off");
    let pace_pct = report.received as f64 / want_total.max(1.0) * 100.0;
    let pass = error.is_empty()
        && missing_streams == 0
        && loss_pct < 0.1
        && pace_pct > 99.5
        && (!gaps_count || gaps_pct < 0.1)
        && underrun_pct < 0.1
        && late as f64 <= ticks as f64 * 0.01;
    println!(
        "RESULT server={server} mode={mode} opus_rate={} n={n} pass={pass} streams={}/{expected_streams} \
         received={} rx_per_s={:.0} want_per_s={:.0} pace_pct={pace_pct:.2} loss_pct={loss_pct:.4} gaps40={} gaps_pct={gaps_pct:.4} gaps60={} \
         max_gap_ms={:.1} sink_drops={} underruns={underruns} underrun_pct={underrun_pct:.4} \
         late_ticks={late} ticks={ticks} server_cpu_pct={cpu_pct:.1} cpu_pct_per_1000={:.2} engine_tx_per_s={tx_per_s:.0} \
         error={}",
        opus_rate.unwrap_or(48000),
        report.streams,
        report.received,
        report.received as f64 / wall,
        want_total / wall,
        report.gaps40,
        report.gaps60,
        report.max_gap_ms,
        d1 - d0,
        cpu_pct / n as f64 * 1000.0,
        if error.is_empty() { "-" } else { &error }
    );
}
