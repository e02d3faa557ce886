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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
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

/// Kernel receive-queue drops from /proc/net/udp: (generator sockets, all other sockets on 127.0.0.1).
fn udp_drops(gen_ports: [u16; 2]) -> (u64, u64) {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let (mut generator, mut other) = (0, 0);
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(drops)) = (f.get(1), f.last()) else {
            continue;
        };
        let Some((ip, port)) = local.split_once(':') else {
            continue;
        };
        if ip != "0100007F" {
            continue;
        }
        let port = u16::from_str_radix(port, 16).unwrap_or(0);
        let drops: u64 = drops.parse().unwrap_or(0);
        if gen_ports.contains(&port) {
            generator += drops;
        } else {
            other += drops;
        }
    }
    (generator, other)
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
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    // Only packets of the measured rounds count: a saturated warm-up leaves a backlog behind.
    let measure_from = Arc::new(AtomicU32::new(u32::MAX));
    let mut receivers = Vec::new();
    for sock in [gen_a.clone(), gen_b.clone()] {
        let (stop, received, from) = (stop.clone(), received.clone(), measure_from.clone());
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        receivers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // One-way latency through the relay, in microseconds, of every measured packet.
            let mut latencies: Vec<u32> = Vec::new();
            while !stop.load(Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    let start = from.load(Relaxed);
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    if n >= 20
                        && start <= u32::from(u16::MAX)
                        && seq.wrapping_sub(start as u16) < 0x8000
                    {
                        received.fetch_add(1, Relaxed);
                        let mut ts = [0u8; 8];
                        ts.copy_from_slice(&buf[12..20]);
                        let sent_ns = u64::from_le_bytes(ts);
                        let now_ns = epoch.elapsed().as_nanos() as u64;
                        latencies.push((now_ns.saturating_sub(sent_ns) / 1000) as u32);
                    }
                }
            }
            latencies
        }));
    }

    // Warm-up: one round so every leg latches, then measure.
    let mut payload = [0xffu8; 160];
    let mut pkt = vec![0u8; 172];
    let mut seq = 0u16;
    let mut send_round = |seq: u16| -> u64 {
        let mut sent = 0;
        for (i, (a, b)) in targets.iter().enumerate() {
            let h = RtpHeader::new(0, seq, u32::from(seq) * 160, i as u32);
            payload[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
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
    measure_from.store(u32::from(seq), Relaxed);

    let gen_ports = [
        gen_a.local_addr().unwrap().port(),
        gen_b.local_addr().unwrap().port(),
    ];
    let drops0 = udp_drops(gen_ports);
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
    std::thread::sleep(Duration::from_millis(1000));
    let got = received.load(Relaxed);
    let rss = proc_rss_kib(pid);
    let drops1 = udp_drops(gen_ports);
    stop.store(true, Relaxed);
    let mut lat: Vec<u32> = Vec::new();
    for r in receivers {
        if let Ok(v) = r.join() {
            lat.extend(v);
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    drop(child.stdin.take());
    line.clear();
    let _ = out.read_line(&mut line);
    let _ = child.wait();

    let cpu_s = (cpu1 - cpu0) as f64 / 100.0;
    let loss = 100.0 * (1.0 - got as f64 / sent.max(1) as f64);
    println!(
        "{:>6} {:>9.0} {:>9.0} {:>8.3} {:>9.1} {:>10.2} {:>9.1} {:>10.1} {:>9} {:>9}{}",
        n,
        sent as f64 / wall.as_secs_f64(),
        got as f64 / wall.as_secs_f64(),
        loss.max(0.0),
        100.0 * cpu_s / wall.as_secs_f64(),
        1e6 * cpu_s / got.max(1) as f64,
        rss as f64 / 1024.0,
        rss.saturating_sub(base_rss) as f64 / n as f64,
        drops1.1.saturating_sub(drops0.1),
        drops1.0.saturating_sub(drops0.0),
        if late_rounds > rounds / 10 {
            "  (generator saturated)"
        } else {
            ""
        }
    );
    println!(
        "        latency ms p50 {:.2} p99 {:.2} max {:.2}; relay: {}",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        line.trim()
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
    let m = relay.metrics();
    println!(
        "relayed {} dropped {} malformed {} active {}",
        m.packets_relayed, m.packets_dropped, m.packets_malformed, m.active_sessions
    );
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
