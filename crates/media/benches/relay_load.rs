//! Relay load benchmark: N simultaneous G.711 calls (50 packets/s each way, 172-byte datagrams)
//! through a relay running in a child process on a 2-worker tokio runtime, as in production.
//!
//! The parent plays all phones from two UDP sockets (every A leg latches to one, every B leg to
//! the other), counts what comes back, and samples the child's CPU time and RSS from /proc.
//!
//! Run: `cargo bench -p media --bench relay_load -- [--calls 500,1000,2000] [--secs 5]`
//! The load generator shares the machine's cores with the relay, so compare runs made together.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use media::rtp::RtpHeader;
use media::{Leg, Relay, RelayConfig};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PTIME: Duration = Duration::from_millis(20);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    let mut calls = vec![250usize, 500, 1000, 2000];
    let mut secs = 5u64;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--calls" => {
                calls = it
                    .next()
                    .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or(calls)
            }
            "--secs" => secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(secs),
            _ => {} // cargo passes --bench
        }
    }
    println!(
        "{:>6} {:>9} {:>9} {:>8} {:>9} {:>10} {:>9} {:>10}",
        "calls",
        "pps_sent",
        "pps_relay",
        "loss_%",
        "relay_cpu%",
        "us/packet",
        "rss_MiB",
        "KiB/call"
    );
    for n in calls {
        run_level(n, secs);
    }
}

/// Bench-only sockets: generous buffers so the generator, not the relay, is never the bottleneck.
fn gen_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::new(LO, 0).into()).unwrap();
    s.into()
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn proc_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn run_level(n: usize, secs: u64) {
    let gen_a = Arc::new(gen_socket());
    let gen_b = Arc::new(gen_socket());
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .arg("--child")
        .arg(n.to_string())
        .arg(gen_a.local_addr().unwrap().to_string())
        .arg(gen_b.local_addr().unwrap().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base_rss: u64 = line.trim().parse().unwrap_or(0);
    let mut targets = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        out.read_line(&mut line).unwrap();
        let mut p = line
            .split_whitespace()
            .filter_map(|v| v.parse::<u16>().ok());
        match (p.next(), p.next()) {
            (Some(a), Some(b)) => targets.push((SocketAddr::new(LO, a), SocketAddr::new(LO, b))),
            _ => {
                eprintln!("child failed after {} sessions: {line}", targets.len());
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    for sock in [gen_a.clone(), gen_b.clone()] {
        let (stop, received) = (stop.clone(), received.clone());
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        receivers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Relaxed) {
                if sock.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Relaxed);
                }
            }
        }));
    }

    // Warm-up: one round so every leg latches, then measure.
    let payload = [0xffu8; 160];
    let mut pkt = vec![0u8; 172];
    let mut seq = 0u16;
    let mut send_round = |seq: u16| -> u64 {
        let mut sent = 0;
        for (i, (a, b)) in targets.iter().enumerate() {
            let h = RtpHeader::new(0, seq, u32::from(seq) * 160, i as u32);
            if let Ok(len) = h.write(&payload, &mut pkt) {
                sent += u64::from(gen_a.send_to(&pkt[..len], a).is_ok());
                sent += u64::from(gen_b.send_to(&pkt[..len], b).is_ok());
            }
        }
        sent
    };
    let warm_until = Instant::now() + Duration::from_secs(1);
    let mut next = Instant::now();
    while Instant::now() < warm_until {
        send_round(seq);
        seq = seq.wrapping_add(1);
        next += PTIME;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(200));
    received.store(0, Relaxed);

    let cpu0 = proc_cpu_ticks(pid);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut late_rounds = 0u64;
    let rounds = secs * 1000 / PTIME.as_millis() as u64;
    next = Instant::now();
    for _ in 0..rounds {
        sent += send_round(seq);
        seq = seq.wrapping_add(1);
        next += PTIME;
        let now = Instant::now();
        if now > next {
            late_rounds += 1;
        }
        std::thread::sleep(next.saturating_duration_since(now));
    }
    let wall = t0.elapsed();
    let cpu1 = proc_cpu_ticks(pid);
    // Let in-flight packets land.
    std::thread::sleep(Duration::from_millis(300));
    let got = received.load(Relaxed);
    let rss = proc_rss_kib(pid);
    stop.store(true, Relaxed);
    for r in receivers {
        let _ = r.join();
    }
    drop(child.stdin.take());
    let _ = child.wait();

    let cpu_s = (cpu1 - cpu0) as f64 / 100.0;
    let loss = 100.0 * (1.0 - got as f64 / sent.max(1) as f64);
    println!(
        "{:>6} {:>9.0} {:>9.0} {:>8.3} {:>9.1} {:>10.2} {:>9.1} {:>10.1}{}",
        n,
        sent as f64 / wall.as_secs_f64(),
        got as f64 / wall.as_secs_f64(),
        loss.max(0.0),
        100.0 * cpu_s / wall.as_secs_f64(),
        1e6 * cpu_s / got.max(1) as f64,
        rss as f64 / 1024.0,
        rss.saturating_sub(base_rss) as f64 / n as f64,
        if late_rounds > rounds / 10 {
            "  (generator saturated)"
        } else {
            ""
        }
    );
}

/// The relay process: allocates `n` sessions pointing at the generator, prints their ports,
/// and relays until stdin closes.
fn child(args: &[String]) {
    let n: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(0);
    let gen_a: SocketAddr = args.get(1).and_then(|v| v.parse().ok()).unwrap();
    let gen_b: SocketAddr = args.get(2).and_then(|v| v.parse().ok()).unwrap();
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", proc_rss_kib(std::process::id())).unwrap();
    let relay = Relay::new(RelayConfig {
        port_min: 20000,
        port_max: 60999,
        ..RelayConfig::default()
    });
    let mut sessions = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n {
            match relay.allocate(&format!("bench-{i}"), LO, LO) {
                Ok(s) => {
                    s.set_remote(Leg::A, gen_a, None);
                    s.set_remote(Leg::B, gen_b, None);
                    writeln!(
                        stdout,
                        "{} {}",
                        s.local(Leg::A).port(),
                        s.local(Leg::B).port()
                    )
                    .unwrap();
                    sessions.push(s);
                }
                Err(e) => {
                    writeln!(stdout, "error {e}").unwrap();
                    return;
                }
            }
        }
    });
    stdout.flush().unwrap();
    drop(stdout);
    // Block until the parent closes our stdin; the runtime keeps relaying meanwhile.
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
    drop(sessions);
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
