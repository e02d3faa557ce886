//! Relay load benchmark: N simultaneous G.711 calls (50 packets/s each way, 172-byte datagrams)
//! through a forwarder running in a child process, measured by the child's CPU per packet.
//!
//! The forwarder (`--modes`) is Denwa's relay (`relay`, with its default worker count as in
//! `denwa serve`) or one of the bare loops of `floor.rs` on the same number of calls, under the
//! same load, on the same CPU: `bare` (one `recvfrom` + one `sendto` per packet), `mmsg`
//! (`recvmmsg`/`sendmmsg` ×32), `uring` (io_uring, batched submissions) and `uring2` (io_uring
//! multishot receives into a provided-buffer ring, sends with a destination). The relay's CPU per
//! packet over `bare`'s is the figure the relay is judged by (goal ≤ 1.2).
//!
//! The parent plays all phones from two UDP sockets (every A leg latches to one, every B leg to
//! the other): each 20 ms round is sent in 1 ms slices (`sendmmsg`), so arrivals spread over the
//! round as from real phones; what comes back is drained every millisecond without blocking, so
//! a relayed packet never pays for waking a receiving thread. With two or more CPUs the child
//! runs on the first half, the generator on the second (`--pin none` to share them).
//!
//! Run: `cargo bench -p media --bench relay_load -- [--calls 1000,2000] [--secs 5]
//!       [--modes relay,relaytap,relayrec,bare,mmsg,uring,uring2]
//!       [--server-cpus 0 --load-cpus 1 | --pin none]`
//! Loops are bounded: each level runs 1 s of warm-up plus `--secs` (at most 60) of measurement.

#[path = "relay_load/floor.rs"]
mod floor;

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use media::rtp::RtpHeader;
use media::{Leg, Relay, RelayConfig};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PTIME: Duration = Duration::from_millis(20);
/// Slices per round: every millisecond 1/20 of the calls send.
const SLICES: usize = 20;
const PKT_LEN: usize = 172;
/// `relay0` is the relay with `wake_tick` zero (a wake for every readiness event); `relayrec`
/// is the relay with every call recorded (tap + one recorder thread per call writing a mono
/// WAV to a temporary directory): its CPU over `relay`'s is the cost of recording.
/// `relaytap` has the tap every answered call gets (RFC 4733 watch) but records nothing.
const MODES: [&str; 8] = [
    "relay", "relay0", "relayrec", "relaytap", "bare", "mmsg", "uring", "uring2",
];

struct Opts {
    calls: Vec<usize>,
    secs: u64,
    modes: Vec<String>,
    server_cpus: Option<Vec<usize>>,
    load_cpus: Option<Vec<usize>>,
}

fn cpu_list(v: &str) -> Option<Vec<usize>> {
    let l: Vec<usize> = v.split(',').filter_map(|x| x.parse().ok()).collect();
    (!l.is_empty()).then_some(l)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Opts {
        calls: vec![500, 1000, 1500],
        secs: 5,
        modes: vec!["relay".into()],
        server_cpus: (ncpu >= 2).then(|| (0..ncpu / 2).collect()),
        load_cpus: (ncpu >= 2).then(|| (ncpu / 2..ncpu).collect()),
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let v = || it.clone().next().cloned().unwrap_or_default();
        match a.as_str() {
            "--calls" => o.calls = v().split(',').filter_map(|x| x.parse().ok()).collect(),
            "--secs" => o.secs = v().parse().unwrap_or(o.secs).clamp(1, 60),
            "--modes" => {
                o.modes = v()
                    .split(',')
                    .filter(|m| MODES.contains(m))
                    .map(String::from)
                    .collect()
            }
            "--server-cpus" => o.server_cpus = cpu_list(&v()),
            "--load-cpus" => o.load_cpus = cpu_list(&v()),
            "--pin" if v() == "none" => (o.server_cpus, o.load_cpus) = (None, None),
            _ => continue, // cargo passes --bench
        }
        it.next();
    }
    if let Some(cpus) = &o.load_cpus {
        pin(cpus);
    }
    println!(
        "server CPUs {:?}, generator CPUs {:?}; {} s per level",
        o.server_cpus, o.load_cpus, o.secs
    );
    println!(
        "{:>6} {:>6} {:>9} {:>9} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "mode",
        "calls",
        "pps_sent",
        "pps_relay",
        "loss_%",
        "cpu_%",
        "us/packet",
        "rss_MiB",
        "KiB/call",
        "p50_ms",
        "p99_ms",
        "cs/kpkt"
    );
    let mut table: Vec<(String, usize, f64)> = Vec::new();
    for &n in &o.calls {
        for mode in &o.modes {
            if let Some(us) = run_level(mode, n, &o) {
                table.push((mode.clone(), n, us));
            }
        }
    }
    // CPU per packet of each mode over the one-packet-per-syscall loop at the same load.
    for &n in &o.calls {
        let base = table
            .iter()
            .find(|(m, c, _)| m == "bare" && *c == n)
            .map(|t| t.2);
        let Some(base) = base else { continue };
        let r: Vec<String> = table
            .iter()
            .filter(|(m, c, _)| m != "bare" && *c == n)
            .map(|(m, _, us)| format!("{m}/bare {:.2}", us / base))
            .collect();
        println!("ratio at {n} calls: {}", r.join(", "));
    }
}

/// Binds the calling thread (and what it spawns later) to `cpus`.
fn pin(cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Bench-only sockets: generous buffers so the generator, not the relay, is never the bottleneck.
fn gen_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&SocketAddr::new(LO, 0).into()).unwrap();
    s.set_nonblocking(true).unwrap();
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

/// A number from /proc/PID/status (`VmRSS:` in KiB, ...).
fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// Context switches of all the process's threads.
fn proc_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| {
            let p = format!("{pid}/task/{tid}");
            let f = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            f.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// One generator socket's share of the phones: a packet buffer and a `sendmmsg` header per
/// call, sent slice by slice.
struct Sender {
    sock: Arc<UdpSocket>,
    to: Vec<libc::sockaddr_in>,
    pkts: Vec<[u8; PKT_LEN]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Sender {
    fn new(sock: Arc<UdpSocket>, targets: &[SocketAddr]) -> Box<Sender> {
        let n = targets.len();
        let mut s = Box::new(Sender {
            sock,
            to: targets.iter().map(|&a| floor::sockaddr(a)).collect(),
            pkts: vec![[0; PKT_LEN]; n],
            // SAFETY: all-zero is a valid value of these plain C structs; pointers set below.
            iovs: vec![unsafe { std::mem::zeroed() }; n],
            hdrs: vec![unsafe { std::mem::zeroed() }; n],
        });
        let s2 = &mut *s;
        for i in 0..n {
            s2.iovs[i].iov_base = s2.pkts[i].as_mut_ptr().cast();
            s2.iovs[i].iov_len = PKT_LEN;
            let h = &mut s2.hdrs[i].msg_hdr;
            h.msg_name = std::ptr::from_mut(&mut s2.to[i]).cast();
            h.msg_namelen = floor::SOCKADDR_LEN;
            h.msg_iov = std::ptr::from_mut(&mut s2.iovs[i]);
            h.msg_iovlen = 1;
        }
        s
    }

    /// Sends packet `seq` of calls `range`, stamped with the send time; returns how many went.
    fn send(&mut self, range: std::ops::Range<usize>, seq: u16, now_ns: u64) -> u64 {
        let payload = {
            let mut p = [0xffu8; 160];
            p[..8].copy_from_slice(&now_ns.to_le_bytes());
            p
        };
        for i in range.clone() {
            let h = RtpHeader::new(0, seq, u32::from(seq) * 160, i as u32);
            let _ = h.write(&payload, &mut self.pkts[i]);
        }
        let mut sent = 0;
        let mut at = range.start;
        while at < range.end {
            let k = (range.end - at).min(1024);
            // SAFETY: headers `at..at + k` point at live packets, iovecs and addresses.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    self.hdrs[at..].as_mut_ptr(),
                    k as u32,
                    0,
                )
            };
            if r <= 0 {
                break;
            }
            sent += r as u64;
            at += r as usize;
        }
        sent
    }
}

/// Drains both generator sockets every millisecond until `stop`; counts the packets of the
/// measured rounds and returns their one-way latencies in microseconds.
fn receive(
    socks: [Arc<UdpSocket>; 2],
    epoch: Instant,
    from: Arc<AtomicU32>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    const V: usize = 64;
    let mut bufs = vec![[0u8; 64]; V];
    // SAFETY: all-zero is a valid value of these plain C structs; pointers set below.
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; V];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; V];
    for i in 0..V {
        iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
        iovs[i].iov_len = 64;
        hdrs[i].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovs[i]);
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    let mut lat: Vec<u32> = Vec::new();
    while !stop.load(Relaxed) {
        for s in &socks {
            loop {
                // SAFETY: the headers point at live 64-byte buffers (truncation is fine).
                let n = unsafe { floor::recv_mmsg(s.as_raw_fd(), &mut hdrs) };
                if n == 0 {
                    break;
                }
                let start = from.load(Relaxed);
                let now_ns = epoch.elapsed().as_nanos() as u64;
                for buf in bufs.iter().take(n) {
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    if start <= u32::from(u16::MAX) && seq.wrapping_sub(start as u16) < 0x8000 {
                        received.fetch_add(1, Relaxed);
                        let mut ts = [0u8; 8];
                        ts.copy_from_slice(&buf[12..20]);
                        let sent_ns = u64::from_le_bytes(ts);
                        lat.push((now_ns.saturating_sub(sent_ns) / 1000) as u32);
                    }
                }
                if n < V {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    lat
}

/// One mode at one load; returns the child's CPU µs per relayed packet.
fn run_level(mode: &str, n: usize, o: &Opts) -> Option<f64> {
    let gen_a = Arc::new(gen_socket());
    let gen_b = Arc::new(gen_socket());
    let exe = std::env::current_exe().unwrap();
    let cpus = o.server_cpus.as_ref().map_or(String::from("none"), |c| {
        c.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    });
    let mut child = Command::new(exe)
        .arg("--child")
        .arg(mode)
        .arg(n.to_string())
        .arg(gen_a.local_addr().unwrap().to_string())
        .arg(gen_b.local_addr().unwrap().to_string())
        .arg(cpus)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base_rss: u64 = line.trim().parse().unwrap_or(0);
    let (mut to_a, mut to_b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        line.clear();
        out.read_line(&mut line).unwrap();
        let mut p = line
            .split_whitespace()
            .filter_map(|v| v.parse::<u16>().ok());
        match (p.next(), p.next()) {
            (Some(a), Some(b)) => {
                to_a.push(SocketAddr::new(LO, a));
                to_b.push(SocketAddr::new(LO, b));
            }
            _ => {
                eprintln!("{mode}: child failed after {} sessions: {line}", to_a.len());
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    // Only packets of the measured rounds count: a saturated warm-up leaves a backlog behind.
    let measure_from = Arc::new(AtomicU32::new(u32::MAX));
    let receiver = {
        let socks = [gen_a.clone(), gen_b.clone()];
        let (stop, received, from) = (stop.clone(), received.clone(), measure_from.clone());
        std::thread::spawn(move || receive(socks, epoch, from, received, stop))
    };
    let mut senders = [Sender::new(gen_a, &to_a), Sender::new(gen_b, &to_b)];
    let slice = n.div_ceil(SLICES);
    let tick = PTIME / SLICES as u32;
    // Sends `rounds` rounds in slices; returns (packets sent, slices that started late).
    let mut play = |rounds: u64, seq: &mut u16| -> (u64, u64) {
        let (mut sent, mut late) = (0, 0);
        let mut next = Instant::now();
        for _ in 0..rounds {
            for s in 0..SLICES {
                let range = (s * slice).min(n)..((s + 1) * slice).min(n);
                let ns = epoch.elapsed().as_nanos() as u64;
                for g in &mut senders {
                    sent += g.send(range.clone(), *seq, ns);
                }
                next += tick;
                let now = Instant::now();
                late += u64::from(now > next + tick);
                std::thread::sleep(next.saturating_duration_since(now));
            }
            *seq = seq.wrapping_add(1);
        }
        (sent, late)
    };
    // Warm-up: every leg latches, then measure.
    let mut seq = 0u16;
    play(1000 / PTIME.as_millis() as u64, &mut seq);
    std::thread::sleep(Duration::from_millis(200));
    measure_from.store(u32::from(seq), Relaxed);

    let cpu0 = proc_cpu_ticks(pid);
    let cs0 = proc_switches(pid);
    let t0 = Instant::now();
    let rounds = o.secs * 1000 / PTIME.as_millis() as u64;
    let (sent, late) = play(rounds, &mut seq);
    let wall = t0.elapsed();
    let cpu1 = proc_cpu_ticks(pid);
    let cs1 = proc_switches(pid);
    // Let in-flight packets land.
    std::thread::sleep(Duration::from_millis(500));
    let got = received.load(Relaxed);
    let rss = proc_rss_kib(pid);
    stop.store(true, Relaxed);
    let mut lat = receiver.join().unwrap_or_default();
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
    let us = 1e6 * cpu_s / got.max(1) as f64;
    println!(
        "{:>6} {:>6} {:>9.0} {:>9.0} {:>8.3} {:>9.1} {:>10.2} {:>8.1} {:>8.1} {:>8.2} {:>8.2} {:>8.1}{}   [{}]",
        mode,
        n,
        sent as f64 / wall.as_secs_f64(),
        got as f64 / wall.as_secs_f64(),
        loss.max(0.0),
        100.0 * cpu_s / wall.as_secs_f64(),
        us,
        rss as f64 / 1024.0,
        rss.saturating_sub(base_rss) as f64 / n as f64,
        pct(0.5),
        pct(0.99),
        1000.0 * (cs1 - cs0) as f64 / got.max(1) as f64,
        if late > rounds * SLICES as u64 / 10 {
            "  (generator saturated)"
        } else {
            ""
        },
        line.trim()
    );
    Some(us)
}

/// The forwarder process: sets up `n` calls pointing at the generator, prints their ports
/// (leg A, leg B), and forwards until stdin closes.
fn child(args: &[String]) {
    let mode = args.first().map_or("relay", String::as_str);
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let gen_a: SocketAddr = args.get(2).and_then(|v| v.parse().ok()).unwrap();
    let gen_b: SocketAddr = args.get(3).and_then(|v| v.parse().ok()).unwrap();
    if let Some(cpus) = args.get(4).and_then(|v| cpu_list(v)) {
        pin(&cpus);
    }
    common::raise_fd_limit();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", proc_rss_kib(std::process::id())).unwrap();
    if mode.starts_with("relay") {
        drop(stdout);
        let tick = if mode == "relay0" {
            Duration::ZERO
        } else {
            RelayConfig::default().wake_tick
        };
        return relay_child(n, gen_a, gen_b, tick, mode);
    }
    let mut socks = Vec::with_capacity(2 * n);
    for _ in 0..2 * n {
        match std::net::UdpSocket::bind(SocketAddr::new(LO, 0)) {
            Ok(s) => socks.push(s),
            Err(e) => {
                writeln!(stdout, "error {e}").unwrap();
                return;
            }
        }
    }
    for p in socks.chunks(2) {
        let port = |s: &UdpSocket| s.local_addr().map_or(0, |a| a.port());
        writeln!(stdout, "{} {}", port(&p[0]), port(&p[1])).unwrap();
    }
    stdout.flush().unwrap();
    drop(stdout);
    let stop = AtomicBool::new(false);
    let relayed = std::thread::scope(|s| {
        let h = s.spawn(|| match mode {
            "bare" => floor::one_packet(&socks, [gen_a, gen_b], &stop),
            "mmsg" => floor::mmsg(&socks, [gen_a, gen_b], &stop),
            "uring2" => floor::uring_multishot(&socks, [gen_a, gen_b], &stop).unwrap_or_else(|e| {
                eprintln!("io_uring multishot: {e}");
                0
            }),
            _ => floor::uring(&socks, [gen_a, gen_b], &stop).unwrap_or_else(|e| {
                eprintln!("io_uring: {e}");
                0
            }),
        });
        wait_stdin();
        stop.store(true, Relaxed);
        h.join().unwrap_or(0)
    });
    println!("relayed {relayed}");
}

fn relay_child(n: usize, gen_a: SocketAddr, gen_b: SocketAddr, wake_tick: Duration, mode: &str) {
    let record = mode == "relayrec";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let relay = Relay::new(RelayConfig {
        port_min: 20000,
        port_max: 60999,
        wake_tick,
        ..RelayConfig::default()
    });
    let mut stdout = std::io::stdout().lock();
    let mut sessions = Vec::with_capacity(n);
    let rec_dir = tempfile::tempdir().unwrap();
    let rec_metrics = Arc::new(media::recorder::RecorderMetrics::default());
    let mut recordings = Vec::new();
    rt.block_on(async {
        for i in 0..n {
            match relay.allocate(&format!("bench-{i}"), LO, LO) {
                Ok(s) => {
                    s.set_remote(Leg::A, gen_a, None);
                    s.set_remote(Leg::B, gen_b, None);
                    if record {
                        use media::recorder::{AlignerConfig, Format, Layout, RecordTap};
                        let tap = RecordTap::new(rec_metrics.clone(), None);
                        let spec = media::recorder::RecordingSpec {
                            path: rec_dir.path().join(format!("bench-{i}.wav")),
                            format: Format::Wav,
                            aligner: AlignerConfig::for_codecs(vec![], Layout::Mono),
                            queue: media::recorder::DEFAULT_QUEUE,
                        };
                        match tap.start_recording(spec) {
                            Ok(r) => recordings.push((tap.clone(), r)),
                            Err(e) => {
                                writeln!(stdout, "error recording: {e}").unwrap();
                                return;
                            }
                        }
                        s.set_tap(Some(tap));
                    } else if mode == "relaytap" {
                        let tap = media::recorder::RecordTap::new(
                            rec_metrics.clone(),
                            Some(Box::new(|_, _| {})),
                        );
                        tap.set_telephone_event(Leg::A, Some(101));
                        tap.set_telephone_event(Leg::B, Some(101));
                        s.set_tap(Some(tap));
                    }
                    let (a, b) = (s.local(Leg::A).port(), s.local(Leg::B).port());
                    writeln!(stdout, "{a} {b}").unwrap();
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
    wait_stdin();
    let m = relay.metrics();
    let rec_dropped = rec_metrics.dropped.load(Relaxed);
    println!(
        "relayed {} dropped {} malformed {} active {}",
        m.packets_relayed, m.packets_dropped, m.packets_malformed, m.active_sessions
    );
    if record {
        eprintln!(
            "recordings {} recorder drops {rec_dropped} failures {}",
            recordings.len(),
            rec_metrics.failures.load(Relaxed)
        );
    }
    for (tap, _) in &recordings {
        tap.stop_recording();
    }
    drop(sessions);
    for (_, r) in recordings {
        let _ = r.wait();
    }
}

/// Blocks until the parent closes our stdin.
fn wait_stdin() {
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}
