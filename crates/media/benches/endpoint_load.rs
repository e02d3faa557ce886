//! Terminating-leg load: N endpoints on ONE media worker, each playing a G.711 prompt (a WAV
//! file, repeated) to a sink socket on 127.0.0.1, i.e. N × 50 packets/s sent. For each N it
//! reports the worker's busy time per 20 ms tick, the process CPU (one core = 100 %), late and
//! skipped ticks, and the packets sent against N × 50/s. The largest N with no late ticks is the
//! figure (goal ≥ 2,000 legs on one core).
//!
//! The sink socket is never read: the kernel drops what overflows its buffer, which costs the
//! sender nothing extra, so the measurement is the engine's alone.
//!
//! `--mode conf --room 5`: conference participants instead. The legs sit in bridges of `--room`
//! members, and a generator thread plays every participant's phone (one G.711 packet per leg
//! every 20 ms, all from one socket), so each tick decodes, jitter-buffers and mixes N streams
//! and sends N mixes. The CPU column is then the media worker thread's own (from
//! /proc/self/task), not the process's, which includes the generator.
//!
//! Run: `cargo bench -p media --bench endpoint_load -- [--legs 500,1000,2000,3000] [--secs 10]
//!       [--mode prompt|conf] [--room 5]`
//! Loops are bounded: per level 2 s of warm-up plus `--secs` (at most 60) of measurement.

#[path = "common/mod.rs"]
mod common;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::codec::CodecKind;
use media::endpoint::{
    BridgeId, EndpointId, EngineConfig, MediaEngine, Negotiated, PlayItem, PlayRequest,
};
use media::ports::PortPool;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of this process's thread named `name` (from /proc/self/task/*/stat).
fn thread_cpu(name: &str) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in dir.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // After the parenthesised name: utime and stime are the 12th and 13th fields.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        return Duration::from_secs_f64(ticks / hz);
    }
    Duration::ZERO
}

/// Plays every participant's phone: one PCMU packet of a tone to each address every 20 ms.
fn generator(targets: Vec<std::net::SocketAddr>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let sock = UdpSocket::bind((LO, 0)).expect("generator");
    let pcm = media::tone::sine(440.0, Duration::from_millis(20), 8000, 6000);
    let payload = media::g711::encode_ulaw(&pcm);
    let start = Instant::now();
    let mut round: u64 = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for (i, to) in targets.iter().enumerate() {
            let h = media::rtp::RtpHeader::new(0, round as u16, (round * 160) as u32, i as u32);
            if let Ok(p) = h.build(&payload) {
                let _ = sock.send_to(&p, to);
            }
        }
        round += 1;
        let next = start + Duration::from_millis(20 * round);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Resident memory of the process in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page / 1024
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let legs: Vec<usize> = arg("--legs")
        .unwrap_or_else(|| "500,1000,2000,3000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u64 = arg("--secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 60);
    let conf = arg("--mode").is_some_and(|m| m == "conf");
    let room: u64 = arg("--room")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(2);
    common::raise_fd_limit();
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt = dir.path().join("prompt.wav");
    let pcm = media::tone::sine(440.0, Duration::from_secs(3), 8000, 10000);
    media::wav::write_file(&prompt, 8000, &pcm).expect("write prompt");
    let sink = UdpSocket::bind((LO, 0)).expect("sink");
    let sink_addr = sink.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::channel(65536);
    // Drain events so the channel never fills.
    std::thread::spawn(move || while rx.blocking_recv().is_some() {});
    let ports = Arc::new(PortPool::new(20000, 35998));
    let engine = MediaEngine::new(
        EngineConfig {
            workers: 1,
            max_endpoints: 20000,
            ..EngineConfig::default()
        },
        ports,
        tx,
    );
    let cpu_of = |conf: bool| {
        if conf {
            thread_cpu("media-0")
        } else {
            cpu_time()
        }
    };
    println!(
        "{} legs  tick_busy_ms  worker_busy%  {}_cpu%  cpu%_per_1000  late  skipped  underruns  sent/s (want)  rss_kib/leg",
        if conf { "conf" } else { "prompt" },
        if conf { "worker" } else { "process" }
    );
    for &n in &legs {
        let mut eps = Vec::with_capacity(n);
        let rss0 = rss_kib();
        for i in 0..n {
            let ep = match engine.open(EndpointId(i as u64), LO, 0, "bench") {
                Ok(ep) => ep,
                Err(e) => {
                    eprintln!("open {i}: {e}");
                    break;
                }
            };
            ep.set_codec(Negotiated::simple(CodecKind::Pcmu));
            ep.set_remote(sink_addr, None);
            if conf {
                ep.join(BridgeId(i as u64 / room));
            } else {
                ep.play(PlayRequest {
                    id: 1,
                    items: vec![PlayItem::File(prompt.clone())],
                    repeat: 0,
                    stop_on_dtmf: false,
                });
            }
            eps.push(ep);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gen_thread = conf.then(|| {
            let targets = eps.iter().map(|e| e.local()).collect();
            let stop = stop.clone();
            std::thread::spawn(move || generator(targets, stop))
        });
        std::thread::sleep(Duration::from_secs(2));
        let rss_per_leg = rss_kib().saturating_sub(rss0) as f64 / n.max(1) as f64;
        let m0 = engine.metrics();
        let c0 = cpu_of(conf);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let m1 = engine.metrics();
        let c1 = cpu_of(conf);
        let wall = t0.elapsed().as_secs_f64();
        let ticks = (m1.ticks - m0.ticks).max(1);
        let busy_us = m1.tick_busy_us - m0.tick_busy_us;
        let cpu = (c1 - c0).as_secs_f64() / wall * 100.0;
        let sent = (m1.packets_tx - m0.packets_tx) as f64 / wall;
        println!(
            "{:>11}  {:>12.2}  {:>12.1}  {:>12.1}  {:>13.1}  {:>4}  {:>7}  {:>9}  {:>8.0} ({})  {:.1}",
            eps.len(),
            busy_us as f64 / ticks as f64 / 1000.0,
            busy_us as f64 / 1e6 / wall * 100.0,
            cpu,
            cpu / eps.len().max(1) as f64 * 1000.0,
            m1.late_ticks - m0.late_ticks,
            m1.skipped_ticks - m0.skipped_ticks,
            m1.underruns - m0.underruns,
            sent,
            eps.len() * 50,
            rss_per_leg
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = gen_thread {
            let _ = t.join();
        }
        drop(eps);
        std::thread::sleep(Duration::from_millis(500));
    }
    let m = engine.metrics();
    println!(
        "files loaded {}, cache hits {}, cache bytes {}",
        m.files_loaded, m.cache_hits, m.cache_bytes
    );
}
