//! Issue 17 §5/§7: a parked call survives a crash of the active node, and trunks register
//! from the active only, end to end in network namespaces (`dnwm2p-…`): the pair with each
//! node's own PostgreSQL (replicated synchronously over the dedicated link), the witness's
//! lease row in a third PostgreSQL, two baresip phones in the client namespace registered
//! through the application address, and a trunk provider: a registrar on a second address of
//! the client namespace (a UDP socket answering every REGISTER 200 with `Expires: 10`, and
//! recording where each came from and what it asked for).
//!
//! 1. Node 1 active: it registers the trunk (and refreshes it every 5 s); node 2 does not.
//! 2. Switchover: node 2 registers; node 1 removes its binding (`Expires: 0`, from its physical
//!    address) and sends no REGISTER after that.
//! 3. 1001 dials the park code `*70` on node 2 and is parked on slot 701; node 2's Denwa and
//!    its PostgreSQL are killed (SIGKILL); node 1 takes the address, resumes the park from its
//!    replicated row (the parked phone re-INVITEd onto an endpoint of node 1) and registers
//!    the trunk; 1002 dials 701 on node 1 and the two are joined: 1002 hears 1001's tones,
//!    which 1001 sends only well after the retrieval (baresip 1.0 does not re-open its
//!    recording after a re-INVITE, so the other direction is checked by node 1's endpoint of
//!    the parked phone: it sent audio to it).
//!
//! Run as root: `cargo test -p denwa --test cluster_park_crash -- --nocapture` (iproute2,
//! iputils-arping, baresip, PostgreSQL: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_lab::*;
use common::xfer::tones;
use sip::{HeaderName, Message, Response};
use testkit::tone;

/// The parked phone's tones and the retrieving phone's.
const PARKED_TONES: [u32; 2] = [500, 700];
const TAKER_TONES: [u32; 2] = [1100, 1300];
/// When the parked phone's tones start, from its call's answer: after the kill, the
/// takeover, the resumption and the retrieval.
const PARKED_LEAD_MS: u32 = 12_000;

/// Waits until `node`'s log has `line` (`what` names it in the failure).
fn until_logged(node: &Node, line: &str, what: &str) -> Duration {
    let t0 = Instant::now();
    while !node.logs().contains(line) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{what}: node {} never logged {line:?}:\n{}",
            node.ip(),
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// The trunk provider: a second address of the client namespace (the phones' address must
/// not be the trunk's, or their calls would be taken for the provider's).
const PROVIDER_IP: &str = "10.77.0.99";
const PROVIDER_PORT: u16 = 5490;

/// Every REGISTER reaching the provider: when, from which address, its `Expires`.
type Registers = Arc<Mutex<Vec<(Instant, IpAddr, u32)>>>;

/// The provider's registrar: answers every REGISTER 200 with `Expires: 10` (a binding
/// refreshed every 5 s) and records it.
fn provider(lab: &Lab, stop: Arc<AtomicBool>) -> (Registers, std::thread::JoinHandle<()>) {
    sh(
        &lab.client,
        &[
            "ip",
            "addr",
            "add",
            &format!("{PROVIDER_IP}/24"),
            "dev",
            "eth0",
        ],
    );
    let sock = lab
        .client
        .udp_bind(
            format!("{PROVIDER_IP}:{PROVIDER_PORT}")
                .parse()
                .expect("addr"),
        )
        .expect("provider socket");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let seen: Registers = Arc::default();
    let log = Arc::clone(&seen);
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(Message::Request(req)) = sip::parse_message(&buf[..n]) else {
                continue;
            };
            if req.method.as_str() != "REGISTER" {
                continue;
            }
            let expires = req
                .headers
                .get(&HeaderName::Expires)
                .and_then(|v| v.as_str().trim().parse().ok())
                .unwrap_or(u32::MAX);
            log.lock().unwrap_or_else(|p| p.into_inner()).push((
                Instant::now(),
                from.ip(),
                expires,
            ));
            let granted = if expires == 0 { "0" } else { "10" };
            let ok =
                Response::for_request(&req, 200, None).with_header(HeaderName::Expires, granted);
            let _ = sock.send_to(&ok.to_bytes(), from);
        }
    });
    (seen, t)
}

/// (REGISTERs asking for a binding, removals) from node `idx` (its physical address) recorded
/// after `since`.
fn registers_from(seen: &Registers, idx: usize, since: Instant) -> (usize, usize) {
    let ip: IpAddr = format!("10.77.0.{}", idx + 1).parse().expect("ip");
    let g = seen.lock().unwrap_or_else(|p| p.into_inner());
    let mine = g.iter().filter(|(t, from, _)| *t >= since && *from == ip);
    let removals = mine.clone().filter(|r| r.2 == 0).count();
    (mine.count() - removals, removals)
}

/// Waits until node `idx` asked the provider for a binding after `since`; how long that took.
fn until_registered(seen: &Registers, idx: usize, since: Instant, what: &str) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(20);
    while registers_from(seen, idx, since).0 == 0 {
        assert!(
            Instant::now() < deadline,
            "{what}: node {} never registered the trunk",
            idx + 1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    since.elapsed()
}

#[test]
fn trunks_follow_the_active_and_a_parked_call_survives_a_kill_of_the_active() {
    let (_witness, witness_url) = witness_on_host();
    let tmp = tempfile::Builder::new()
        .prefix("dnwm2p-")
        .tempdir()
        .expect("tmp");
    let lab = Lab::create("dnwm2p");
    let (mut n, pgs) = pair_with_own_postgres(&lab, tmp.path(), &witness_url);
    let _pg_stop = PgStop(pgs.to_vec());
    // A registration trunk, configured before the pair starts: both nodes load it.
    n[0].cli_ok(&[
        "trunk",
        "add",
        "provider",
        "--host",
        &format!("{PROVIDER_IP}:{PROVIDER_PORT}"),
        "--register",
        "--username",
        "pbx",
        "--password",
        "provider-secret",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, listener) = provider(&lab, Arc::clone(&stop));
    let started = Instant::now();
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);
    until_pair_ready(&n, 0, "cold start");
    // Both nodes know the trunk (their SIP cores list it in /metrics).
    for node in &n {
        let (code, body) = node.http(&lab, "GET", "/metrics", "");
        assert!(
            code == 200 && body.contains(",trunk=\"provider\"}"),
            "node {} lists the trunk: {code} {body}",
            node.idx + 1
        );
    }
    let mut rows = Vec::new();

    // 1. Node 1 active: it registers and refreshes; node 2 is silent.
    until_registered(&seen, 0, started, "node 1 active");
    std::thread::sleep(Duration::from_secs(6));
    let (active_regs, _) = registers_from(&seen, 0, started);
    let (standby_regs, standby_removals) = registers_from(&seen, 1, started);
    assert!(
        active_regs >= 2,
        "the active refreshed its binding: {active_regs}"
    );
    assert_eq!(
        (standby_regs, standby_removals),
        (0, 0),
        "the standby sent REGISTERs"
    );

    // 2. Switchover: node 2 registers, node 1 removes its binding and stops.
    let t_sw = Instant::now();
    n[0].cli_ok(&["cluster", "switchover"]);
    w.until(
        &lab,
        "node 2 to hold the address",
        Duration::from_secs(10),
        |h| h[1] && !h[0],
    );
    let took = until_registered(&seen, 1, t_sw, "after the switchover");
    std::thread::sleep(Duration::from_secs(8));
    let (old_regs, old_removals) = registers_from(&seen, 0, t_sw);
    let (new_regs, _) = registers_from(&seen, 1, t_sw);
    assert_eq!(
        old_regs, 0,
        "node 1 registered after it released the address"
    );
    assert_eq!(old_removals, 1, "node 1 removed its binding once");
    assert!(new_regs >= 2, "node 2 refreshed its binding: {new_regs}");
    rows.push(format!(
        "| a registration trunk across a switchover | while node 1 was active: {active_regs} REGISTERs from node 1, {standby_regs} from node 2; after the switchover node 2 registered {} ms after the command, node 1 sent {old_removals} removal (Expires: 0) and {old_regs} REGISTERs in 8 s | — |",
        took.as_millis()
    ));

    // 3. A call parked on node 2, node 2 killed (Denwa + PostgreSQL), retrieved on node 1.
    until_pair_ready(&n, 1, "after the switchover (node 1 re-attached)");
    let audio = tempfile::tempdir().expect("tmp");
    let life = Duration::from_secs(90);
    let a_wav = tones(
        audio.path(),
        "parked.wav",
        &PARKED_TONES,
        PARKED_LEAD_MS,
        40_000,
    );
    let c_wav = tones(audio.path(), "taker.wav", &TAKER_TONES, 1000, 40_000);
    let mut a = baresip_phone(&lab, "1001", "secret-ha-aaab", 5300, &a_wav, life);
    let mut c = baresip_phone(&lab, "1002", "secret-ha-aaac", 5310, &c_wav, life);
    // (The row is committed on both databases: synchronous replication.)
    baresip_dial(&mut a, "*70");
    let tones_at = Instant::now() + Duration::from_millis(u64::from(PARKED_LEAD_MS));
    until_logged(&n[1], "call parked", "parking on node 2");
    let t0 = Instant::now();
    n[1].kill9();
    kill9_postgres(&pgs[1]);
    let (_, held) = w.failover(&lab, 1, t0);
    until_logged(&n[0], "parked call resumed", "node 1 resuming the park");
    let resumed = t0.elapsed();
    let registered = until_registered(&seen, 0, t0, "after the kill");
    baresip_dial(&mut c, "701");
    until_logged(&n[0], "parked call retrieved", "retrieval on node 1");
    let retrieved = t0.elapsed();
    assert!(
        Instant::now() < tones_at,
        "the retrieval came after the parked phone's tones began: raise PARKED_LEAD_MS"
    );
    // Talk until the parked phone's tones have played, then 1002 hangs up.
    let done = tones_at + Duration::from_millis(2000);
    std::thread::sleep(done.saturating_duration_since(Instant::now()));
    c.hangup().expect("hang up");
    for p in [&mut a, &mut c] {
        p.wait_event("CALL_CLOSED", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{}: the call did not end: {e}", p.name()));
    }
    let rec = c.last_recording().expect("the taker's recording");
    tone::check_recording(&rec, &PARKED_TONES, &TAKER_TONES)
        .unwrap_or_else(|e| panic!("1002 did not hear the parked phone: {e}\n{}", n[0].logs()));
    let sent = most_sent_by_an_endpoint(&n[0].logs());
    assert!(
        sent > 100,
        "node 1 sent the taker's audio to the parked phone (most packets sent by an endpoint: {sent})"
    );
    assert!(!w.split_brain, "both nodes held the address at once");
    stop.store(true, Ordering::Relaxed);
    let _ = listener.join();
    rows.push(format!(
        "| `kill -9` of the active (Denwa + PostgreSQL) with a call parked | address held by node 1 {} ms after the kill; park resumed (seen by {} ms), trunk registered (seen by {} ms), call retrieved from 701 {} ms after | parked tones heard by the taker; {sent} packets sent to the parked phone |",
        held.as_millis(),
        resumed.as_millis(),
        registered.as_millis(),
        retrieved.as_millis()
    ));
    let table = format!(
        "| step | what happened | audio |\n|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("\n{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-park-crash-results.md");
    std::fs::write(&out, table).expect("results file");
}
