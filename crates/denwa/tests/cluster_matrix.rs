//! Issue 17 §7: the active/standby failure matrix end to end, in network namespaces
//! (`dnwm2-…`). Two `denwa serve --cluster` nodes, each with its own PostgreSQL (created by
//! `denwa cluster init-db`, replicating over the dedicated link), the witness's PostgreSQL in a
//! third namespace on its own link to each node (so a partition can put it on either side),
//! phones (sipp) in a client namespace on the application segment and one phone behind NAT
//! (a router namespace masquerading a home LAN) registered through the application address.
//!
//! For each scenario — switchover from the API, the active killed (SIGKILL), the active's links
//! down, the heartbeat link only cut, the active frozen (SIGSTOP, then SIGCONT), a partition
//! with the witness on the active's side, one with the witness on the standby's side, both
//! nodes restarted together — a live call runs with a 20 ms RTP probe at each end
//! (`testkit::rtp_probe`), a second live call between two baresip phones (1005 → 1006, in the
//! client namespace, through the application address) carries a sequence of distinct tones
//! each way, and two writers make API writes (`POST /api/v1/extensions`), one pinned to each
//! node's physical address. Recorded: the audio gap each way and packets lost,
//! whether the call was kept (audio flowing again both ways and the caller's BYE answered),
//! whether the baresip call's tones sent after the fault (once the roles settled) were all
//! heard on the far side, in order, each way (every tone has its own frequency, so hearing one
//! proves audio at its time),
//! whether a phone registered before can be called at once, whether the NAT phone can be
//! called, acknowledged writes lost (compared with the active's database: a write taken by a
//! node that was no longer active would be missing there), and split brain (both nodes holding
//! the application address at any poll). Acknowledged writes of both nodes overlapping in the
//! client's view are counted for information (a partition delays a 201).
//!
//! Asserted (the invariants, never wall-clock figures): no split brain, no acknowledged write
//! lost, the right node active at the end, the phone registered before callable, the NAT phone
//! callable, and where the probed call was kept, the baresip call's tones after the fault
//! heard both ways. A call lost by design (both nodes restarted) is in the table as such.
//!
//! Prints the table and writes it to `target/tmp/cluster-matrix-results.md`. Run as root:
//! `cargo test -p denwa --test cluster_matrix -- --nocapture` (iproute2, nftables,
//! iputils-arping, sipp, PostgreSQL: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_lab::*;
use pbx::cluster_pg::PgNode;
use testkit::netns::in_netns;
use testkit::rtp_probe::RtpProbe;
use testkit::tone::{self, ToneLayout};

/// The NAT phone's (1004) SIP port.
const NAT_PORT: u16 = 5090;
/// How long each scenario's probed call lasts after its answer (then the caller's BYE).
const CALL_LENGTH: Duration = Duration::from_secs(14);

/// One acknowledged write: extension number, node, when the request left and its 201 came.
#[derive(Debug, Clone, Copy)]
struct Ack {
    number: u32,
    node: usize,
    sent: Instant,
    acked: Instant,
}

#[derive(Default)]
struct Writes {
    acks: Vec<Ack>,
    refused: [u64; 2],
}

/// `POST /api/v1/extensions` to node `node`'s physical address from the client namespace; the
/// HTTP status (0 when no answer came within the bounds).
fn post_extension(client: &str, node: usize, token: &str, number: u32) -> u16 {
    let addr: std::net::SocketAddr = format!("10.77.0.{}:8080", node + 1).parse().expect("addr");
    let Ok(mut s) = in_netns(client, || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
    }) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let body = format!("{{\"number\":\"{number}\"}}");
    let req = format!(
        "POST /api/v1/extensions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A writer pinned to node `node`: writes extensions numbered from the shared counter, one
/// after the other; a 201 is an acknowledged write.
fn writer(
    client: String,
    node: usize,
    token: String,
    next: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    w: Arc<Mutex<Writes>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let number = next.fetch_add(1, Ordering::SeqCst);
        if number > 8999 {
            return;
        }
        let sent = Instant::now();
        let code = post_extension(&client, node, &token, number);
        let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
        if code == 201 {
            g.acks.push(Ack {
                number,
                node,
                sent,
                acked: Instant::now(),
            });
            drop(g);
            std::thread::sleep(Duration::from_millis(30));
        } else {
            g.refused[node] += 1;
            drop(g);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Pairs of acknowledged writes of different nodes whose request-to-answer intervals overlap,
/// among writes acknowledged after `since`.
fn overlapping(acks: &[Ack], since: Instant) -> usize {
    let recent: Vec<&Ack> = acks.iter().filter(|a| a.acked >= since).collect();
    let mut n = 0;
    for (i, a) in recent.iter().enumerate() {
        for b in &recent[i + 1..] {
            if a.node != b.node && a.sent < b.acked && b.sent < a.acked {
                n += 1;
            }
        }
    }
    n
}

/// One direction of the probed call across the fault: (gap, packets lost, audio flowing at the
/// end).
fn direction(p: &RtpProbe, fault_ms: u64) -> (String, String, bool) {
    let now = p.elapsed_ms();
    let flowing = p.report_since(now.saturating_sub(500)).received > 0;
    let r = p.report_since(fault_ms.saturating_sub(200));
    if flowing {
        (r.max_gap_ms.to_string(), r.lost.to_string(), true)
    } else {
        ("no audio after".into(), "all after".into(), false)
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The baresip call's tones: 16 each way, one every 700 ms from 1 s after the answer, each
/// its own frequency (the caller's on odd hundreds, the callee's on even ones: 100 Hz = two
/// detector bins apart), so a tone heard proves audio crossed at its time.
const TONE_LAYOUT: ToneLayout = ToneLayout {
    lead_ms: 1000,
    tone_ms: 250,
    gap_ms: 450,
    tail_ms: 400,
    amplitude: 8000.0,
};
const TONES_EACH: u32 = 16;

fn tone_freqs(first: u32) -> Vec<u32> {
    (0..TONES_EACH).map(|i| first + 200 * i).collect()
}

/// When tone `i` of the sequence starts, from the answer (ms).
fn tone_start_ms(i: usize) -> u64 {
    u64::from(TONE_LAYOUT.lead_ms) + i as u64 * u64::from(TONE_LAYOUT.tone_ms + TONE_LAYOUT.gap_ms)
}

/// A baresip call (1005 → 1006) through the application address carrying tones each way.
struct ToneCall {
    caller: testkit::baresip::Phone,
    callee: testkit::baresip::Phone,
    answered: Instant,
    _audio: tempfile::TempDir,
}

/// Whether the tones a side sent from `from_ms` on (after the answer) were heard by the other:
/// all of them, in order, and none of the listener's own.
fn tones_after(
    listener: &testkit::baresip::Phone,
    sent: &[u32],
    own: &[u32],
    from_ms: u64,
) -> (bool, String) {
    let expected: Vec<u32> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| tone_start_ms(*i) >= from_ms)
        .map(|(_, f)| *f)
        .collect();
    if expected.is_empty() {
        return (false, "none sent after".into());
    }
    let candidates: Vec<u32> = sent.iter().chain(own).copied().collect();
    let heard = match listener
        .last_recording()
        .map_err(|e| e.to_string())
        .and_then(|r| tone::detect_file(&r, &candidates).map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => return (false, format!("no recording: {e}")),
    };
    let echoed = heard.iter().any(|f| own.contains(f));
    let mut next = 0;
    for f in &heard {
        if next < expected.len() && *f == expected[next] {
            next += 1;
        }
    }
    let ok = next == expected.len() && !echoed;
    let echo = if echoed { ", own tones heard" } else { "" };
    (
        ok,
        format!("{} ({next} of {}{echo})", yes(ok), expected.len()),
    )
}

impl ToneCall {
    /// Two fresh phones (SIP ports from `port`), registered through the address; 1005 calls
    /// 1006, answered at once.
    fn start(lab: &Lab, port: u16) -> ToneCall {
        let audio = tempfile::tempdir().expect("tmp");
        let min_ms = 60_000;
        let wav = |name: &str, first: u32| {
            let p = audio.path().join(name);
            tone::write_tone_wav(&p, &tone_freqs(first), &TONE_LAYOUT, min_ms).expect("tone file");
            p
        };
        let (a_wav, b_wav) = (wav("a.wav", 300), wav("b.wav", 400));
        let life = Duration::from_secs(120);
        let mut caller = baresip_phone(lab, "1005", "secret-ha-aaaf", port, &a_wav, life);
        let mut callee = baresip_phone(lab, "1006", "secret-ha-aaag", port + 10, &b_wav, life);
        baresip_dial(&mut caller, "1006");
        callee
            .wait_event("CALL_ESTABLISHED", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("1006 did not answer 1005: {e}"));
        ToneCall {
            caller,
            callee,
            answered: Instant::now(),
            _audio: audio,
        }
    }

    fn since_answer_ms(&self) -> u64 {
        self.answered.elapsed().as_millis() as u64
    }

    /// Lets the sequences play out, hangs up, and tells whether the tones sent from `from_ms`
    /// on were heard (caller → callee, callee → caller).
    fn finish(mut self, from_ms: u64) -> ((bool, String), (bool, String)) {
        let end = self.answered + Duration::from_millis(tone_start_ms(TONES_EACH as usize) + 300);
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let _ = self.caller.hangup();
        for p in [&mut self.caller, &mut self.callee] {
            let _ = p.wait_event("CALL_CLOSED", Duration::from_secs(5));
            // The recordings are complete once baresip closed them.
            let _ = p.quit(Duration::from_secs(3));
        }
        let (a, b) = (tone_freqs(300), tone_freqs(400));
        (
            tones_after(&self.callee, &a, &b, from_ms),
            tones_after(&self.caller, &b, &a, from_ms),
        )
    }
}

/// Fields drop in order: the nodes stop before their namespaces go.
struct Ctx {
    n: [Node; 2],
    lab: Lab,
    nat: NatPhone,
    pgs: [PgNode; 2],
    token: String,
    writes: Arc<Mutex<Writes>>,
    rows: Vec<String>,
    split_brain_seen: bool,
    step: u16,
}

/// What a fault did: a note for the table (times), the node expected active afterwards.
struct Fault {
    note: String,
    active: usize,
}

impl Ctx {
    fn wait_acks(&self, node: usize, k: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let start = self.acks_on(node);
        while self.acks_on(node) < start + k {
            assert!(
                Instant::now() < deadline,
                "{what}: node {} acknowledged no write",
                node + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn acks_on(&self, node: usize) -> usize {
        let g = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        g.acks.iter().filter(|a| a.node == node).count()
    }

    fn lost_on(&self, active: usize) -> (usize, usize) {
        let acked: BTreeSet<u32> = {
            let g = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            g.acks.iter().map(|a| a.number).collect()
        };
        let have = present(&self.pgs[active]);
        (acked.difference(&have).count(), acked.len())
    }

    /// Runs one scenario: a probed call up, `fault` (which waits for its outcome), then the
    /// checks; the pair made ready again before returning.
    fn scenario(
        &mut self,
        name: &str,
        act: usize,
        fault: impl FnOnce(&mut Ctx, &mut Watch) -> Fault,
    ) -> usize {
        self.step += 1;
        eprintln!(
            "=== {} scenario {}: {name} (node {} active)",
            testkit::utc_time_of_day(),
            self.step,
            act + 1
        );
        let mut w = Watch { split_brain: false };
        // The probes' ports, reserved like every test port (the probes bind them in the client
        // namespace, where the free-port check of the next sipp cannot see them: fixed ports
        // collided with a sipp's media port once).
        let base = testkit::ports::free_block(4).expect("ports for the probes");
        // Fresh SIP ports for each scenario's probed call: a node hangs up a call left over
        // from an earlier scenario (BYE to its phones), which must not reach this call's sipp.
        let callee_port = 5200 + 2 * self.step;
        register(&self.lab, "1003", "secret-ha-aaad", callee_port);
        // The NAT phone refreshes its registration before each fault, as a real one does (every
        // 30-60 s): between scenarios no process answers on its port, so Denwa's keep-alives go
        // unanswered and mark it unreachable, and the NAT's mapping depends on them alone.
        // (During the call itself the phone answers them: `call_to`.)
        register_from(
            &self.nat.home,
            NAT_HOME_IP,
            "1004",
            "secret-ha-aaae",
            NAT_PORT,
        )
        .unwrap_or_else(|e| panic!("{name}: the NAT phone re-registers: {e}"));
        // The baresip call with tones, then the probed call.
        let tones = ToneCall::start(&self.lab, 5300 + 20 * self.step);
        let call = ProbedCall::start(
            &self.lab,
            "1003",
            callee_port,
            5100 + 2 * self.step,
            (base, base + 2),
            CALL_LENGTH,
        );
        let since = Instant::now();
        let fault_ms = (call.a.elapsed_ms(), call.b.elapsed_ms());
        mark(name, "calls up; the fault");
        let f = fault(self, &mut w);
        let new = f.active;
        mark(name, "the fault done; waiting for the roles");
        until_roles(&self.n, name, |a, b| {
            let r = [a, b];
            r[new] == "active" && r[1 - new] != "active"
        });
        mark(name, "roles settled; calling the phones");
        // The tones sent from half a second after the roles settled must reach the far side.
        let tones_from = tones.since_answer_ms() + 500;
        // A phone registered before the fault, called at once; the NAT phone.
        let regs = call_to(
            &self.lab,
            &self.lab.client,
            CLIENT_IP,
            PHONE_PORT,
            "1002",
            5080,
        );
        let nat = call_to(
            &self.lab,
            &self.nat.home,
            NAT_HOME_IP,
            NAT_PORT,
            "1004",
            5084,
        )
        // The router's view at the failure (it may change by the end of the scenario).
        .map_err(|e| format!("{e}\n{}", self.nat.state(&self.lab, NAT_PORT)));
        // Audio: read while the call should still be up.
        std::thread::sleep(Duration::from_millis(600));
        let (gap_ab, lost_ab, flow_ab) = direction(&call.b, fault_ms.1);
        let (gap_ba, lost_ba, flow_ba) = direction(&call.a, fault_ms.0);
        mark(name, "calls placed; the tones play out");
        let ((tones_ab, tones_ab_cell), (tones_ba, tones_ba_cell)) = tones.finish(tones_from);
        mark(name, "tones heard; waiting for writes and the pair");
        self.wait_acks(new, 3, name);
        until_pair_ready(&self.n, new, name);
        let ProbedCall {
            caller,
            callee,
            a,
            b,
        } = call;
        let bye_ok = caller
            .finish_unchecked()
            .map(|o| o.successful == 1)
            .unwrap_or(false);
        if bye_ok {
            let _ = callee.finish_unchecked();
        } else {
            drop(callee);
        }
        drop((a, b));
        let kept = flow_ab && flow_ba && bye_ok;
        let (lost, total) = self.lost_on(new);
        let overlaps = {
            let g = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            overlapping(&g.acks, since)
        };
        // Split brain: both nodes on the address at any poll. Acknowledged writes of both nodes
        // overlapping in time are listed, not judged: the intervals are the client's (a 201
        // delayed by a partition overlaps the other node's writes while the write itself was
        // replicated in time); a write taken by a node that was no longer active would be
        // missing from the new active's database, and that is the lost-writes check.
        let split = w.split_brain;
        self.split_brain_seen |= split;
        let row = format!(
            "| {name} | {} | node {} | {gap_ab} / {gap_ba} | {lost_ab} / {lost_ba} | {} | {tones_ab_cell} / {tones_ba_cell} | {} | {} | {lost} of {total} | {} | {overlaps} |",
            f.note,
            new + 1,
            yes(kept),
            yes(regs.is_ok()),
            yes(nat.is_ok()),
            if split { "**YES**" } else { "no" }
        );
        eprintln!("{row}");
        self.rows.push(row);
        assert!(!w.split_brain, "{name}: both nodes held the address");
        assert_eq!(lost, 0, "{name}: acknowledged writes lost");
        if kept {
            assert!(
                tones_ab && tones_ba,
                "{name}: the probed call was kept but the baresip call's tones after the fault were not all heard: {tones_ab_cell} / {tones_ba_cell}"
            );
        }
        if let Err(e) = regs {
            panic!("{name}: the phone registered before could not be called: {e}");
        }
        if let Err(e) = nat {
            panic!("{name}: the NAT phone could not be called: {e}");
        }
        new
    }
}

/// A progress line, stamped like the nodes' logs (a failure's place among them).
fn mark(scenario: &str, what: &str) {
    eprintln!("    {} {scenario}: {what}", testkit::utc_time_of_day());
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn failure_matrix() {
    let tmp = tempfile::Builder::new()
        .prefix("dnwm2-")
        .tempdir()
        .expect("tmp");
    let root = tmp.path().to_path_buf();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&root)
        .status()
        .expect("chmod");
    std::fs::write(root.join("repl.pass"), "pair-replication-secret\n").expect("password");
    let pgs = [pg_node(&root, 0), pg_node(&root, 1)];
    let _pg_stop = PgStop(pgs.to_vec());
    let lab = Lab::create("dnwm2");
    let witness = Witness::start("dnwm2", &lab);
    let nat = NatPhone::create("dnwm2", &lab);
    let urls = [pgs[0].config().store_url(), pgs[1].config().store_url()];

    let files: Vec<PathBuf> = (0..2)
        .map(|i| {
            let f = root.join(format!("cluster{}.toml", i + 1));
            std::fs::write(&f, cluster_text(i, &witness.url(i), &pg_section(&root, i)))
                .expect("cluster file");
            f
        })
        .collect();
    let init = |i: usize, standby: bool| init_db(&lab, i, &files[i], standby);
    let _ = init(0, false);
    let n0 = Node::new(0, &urls[0], &witness.url(0), &pg_section(&root, 0));
    for (ext, pw) in [
        ("1001", "secret-ha-aaab"),
        ("1002", "secret-ha-aaac"),
        ("1003", "secret-ha-aaad"),
        ("1004", "secret-ha-aaae"),
        ("1005", "secret-ha-aaaf"),
        ("1006", "secret-ha-aaag"),
    ] {
        n0.cli_ok(&["extension", "add", ext, "--password", pw]);
    }
    let token = api_token(&urls[0], "matrix-e2e");
    let _ = init(1, true);
    let n = [
        n0,
        Node::new(1, &urls[1], &witness.url(1), &pg_section(&root, 1)),
    ];
    let mut cx = Ctx {
        lab,
        nat,
        n,
        pgs,
        token,
        writes: Arc::new(Mutex::new(Writes::default())),
        rows: Vec::new(),
        split_brain_seen: false,
        step: 0,
    };
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &cx.lab, &mut cx.n);
    register_from(
        &cx.nat.home,
        NAT_HOME_IP,
        "1004",
        "secret-ha-aaae",
        NAT_PORT,
    )
    .expect("the NAT phone registers through the application address");
    until_pair_ready(&cx.n, 0, "cold start");
    assert!(!w.split_brain);

    // The writers, one pinned to each node's physical address.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(3000));
    let client = cx.lab.client.name().to_string();
    let writers: Vec<_> = (0..2)
        .map(|i| {
            let (c, t, nx, st, wr) = (
                client.clone(),
                cx.token.clone(),
                Arc::clone(&next),
                Arc::clone(&stop),
                Arc::clone(&cx.writes),
            );
            std::thread::spawn(move || writer(c, i, t, nx, st, wr))
        })
        .collect();
    cx.wait_acks(0, 3, "writers started");

    let mut act = 0usize;

    // 1. Switchover from the panel API (POST with an admin key to the active's address).
    act = cx.scenario("switchover (API)", act, |cx, w| {
        let t0 = Instant::now();
        let (code, body) = cx.n[act].http(&cx.lab, "POST", "/api/v1/cluster/switchover", &cx.token);
        assert_eq!(code, 202, "{body}");
        w.until(
            &cx.lab,
            "the standby to hold the address",
            Duration::from_secs(10),
            |h| h[1 - act] && !h[act],
        );
        let moved = t0.elapsed();
        Fault {
            note: format!("address moved {} ms after the request", ms(moved)),
            active: 1 - act,
        }
    });

    // 2. The heartbeat link only cut (4 s): no takeover while the service path lives.
    act = cx.scenario("heartbeat link only cut", act, |cx, w| {
        drop_link(&cx.lab, 0, Link::Heartbeat, true);
        w.hold(
            &cx.lab,
            "the active keeping the address",
            Duration::from_secs(4),
            |h| h[act] && !h[1 - act],
        );
        let s = cx.n[1 - act].status();
        drop_link(&cx.lab, 0, Link::Heartbeat, false);
        assert_eq!(s["status"]["role"], "standby", "{s}");
        assert_eq!(s["status"]["paths"][1], false, "path 1 shown degraded: {s}");
        Fault {
            note: format!(
                "no takeover in 4 s; the standby shows paths {}",
                s["status"]["paths"]
            ),
            active: act,
        }
    });

    // 3. The active killed (SIGKILL of its Denwa; its PostgreSQL keeps running).
    act = cx.scenario("active killed (SIGKILL)", act, |cx, w| {
        let (lost, held) = kill9_active(w, &cx.lab, &mut cx.n[act]);
        cx.n[act].spawn(&cx.lab);
        Fault {
            note: format!(
                "address released {} ms, held by the standby {} ms after the kill",
                ms(lost),
                ms(held)
            ),
            active: 1 - act,
        }
    });

    // 4. The active frozen (SIGSTOP), resumed after the takeover (SIGCONT): it must demote.
    act = cx.scenario("active frozen, then resumed", act, |cx, w| {
        let t0 = Instant::now();
        cx.n[act].freeze();
        let (lost, held) = w.failover(&cx.lab, act, t0);
        cx.n[act].thaw();
        w.hold(
            &cx.lab,
            "the resumed node staying off the address",
            Duration::from_secs(2),
            |h| h[1 - act] && !h[act],
        );
        Fault {
            note: format!(
                "address released {} ms (guard), held by the standby {} ms after SIGSTOP; resumed node demoted",
                ms(lost),
                ms(held)
            ),
            active: 1 - act,
        }
    });

    // 5. The active's links down (service, heartbeat, witness: `ip link set down`).
    act = cx.scenario("active's links down", act, |cx, w| {
        let t0 = Instant::now();
        for l in [Link::Service, Link::Heartbeat, Link::Witness] {
            set_link(&cx.lab, act, l, false);
        }
        let (lost, held) = w.failover(&cx.lab, act, t0);
        for l in [Link::Service, Link::Heartbeat, Link::Witness] {
            set_link(&cx.lab, act, l, true);
        }
        Fault {
            note: format!(
                "address released {} ms, held by the standby {} ms after the links went down",
                ms(lost),
                ms(held)
            ),
            active: 1 - act,
        }
    });

    // 6. Partition, the witness on the active's side: the standby is cut off from the active,
    //    the witness and the phones (packets dropped; links stay up).
    act = cx.scenario("partition, witness with the active", act, |cx, w| {
        let sby = 1 - act;
        for l in [Link::Service, Link::Heartbeat, Link::Witness] {
            drop_link(&cx.lab, sby, l, true);
        }
        w.hold(
            &cx.lab,
            "the active keeping the address",
            Duration::from_secs(4),
            |h| h[act] && !h[sby],
        );
        let s = cx.n[sby].status();
        for l in [Link::Service, Link::Heartbeat, Link::Witness] {
            drop_link(&cx.lab, sby, l, false);
        }
        assert_ne!(s["status"]["role"], "active", "{s}");
        Fault {
            note: format!(
                "no takeover in 4 s; the cut-off standby says: {}",
                s["status"]["blocked"].as_str().unwrap_or("(nothing)")
            ),
            active: act,
        }
    });

    // 7. Partition, the witness on the standby's side: the active is cut off from everything.
    act = cx.scenario("partition, witness with the standby", act, |cx, w| {
        let t0 = Instant::now();
        for l in [Link::Service, Link::Heartbeat, Link::Witness] {
            drop_link(&cx.lab, act, l, true);
        }
        let (lost, held) = w.failover(&cx.lab, act, t0);
        for l in [Link::Service, Link::Heartbeat, Link::Witness] {
            drop_link(&cx.lab, act, l, false);
        }
        Fault {
            note: format!(
                "address released {} ms, held by the standby {} ms after the cut",
                ms(lost),
                ms(held)
            ),
            active: 1 - act,
        }
    });

    // 8. Both nodes restarted together (SIGKILL of both Denwas, both started again): the
    //    preferred node 1 becomes active.
    let _ = cx.scenario("both restarted together", act, |cx, w| {
        cx.n[0].kill9();
        cx.n[1].kill9();
        cx.n[0].spawn(&cx.lab);
        cx.n[1].spawn(&cx.lab);
        let held = w.until(
            &cx.lab,
            "one node to hold the address",
            Duration::from_secs(20),
            |h| h[0] != h[1],
        );
        Fault {
            note: format!("address held {} ms after both were started", ms(held)),
            active: 0,
        }
    });

    stop.store(true, Ordering::SeqCst);
    for t in writers {
        t.join().expect("writer");
    }
    let (total, refused) = {
        let g = cx.writes.lock().unwrap_or_else(|p| p.into_inner());
        (g.acks.len(), g.refused)
    };
    let mut table = String::from(
        "| scenario | what happened | active after | audio gap ms (caller→callee / callee→caller) | packets lost (→ / ←) | call kept | baresip tones after the fault heard (→ / ←) | phone registered before callable at once | NAT phone callable | acknowledged writes lost | split brain | writes of both nodes overlapping (client's view) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &cx.rows {
        table.push_str(r);
        table.push('\n');
    }
    table.push_str(&format!(
        "\n{total} API writes acknowledged in all ({} + {} refused or unanswered, node 1 + node 2); split brain seen: {}.\n",
        refused[0],
        refused[1],
        if cx.split_brain_seen { "YES" } else { "never" }
    ));
    println!("\n{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-matrix-results.md");
    std::fs::write(&out, &table).expect("results file");
    for node in cx.n.iter_mut() {
        node.kill9();
    }
}

// ---- Issue 17 §8: the keepalived anchor (`bench/failover.sh`; ignored in the normal suite).

/// UDP port of the echo responders standing in for a node's service on the address.
const ECHO_PORT: u16 = 40_000;
/// Rounds of each event per system.
const BENCH_ROUNDS: usize = 3;

/// Echoes every datagram back to its sender from a socket on 0.0.0.0 in `ns` (the answer
/// leaves from the node's physical address, which tells the nodes apart), except while `mute`
/// (the node "died" with the process killed).
fn echo(ns: &str, stop: Arc<AtomicBool>, mute: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let sock =
        in_netns(ns, || std::net::UdpSocket::bind(("0.0.0.0", ECHO_PORT))).expect("echo socket");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((len, from)) = sock.recv_from(&mut buf)
                && !mute.load(Ordering::Relaxed)
            {
                let _ = sock.send_to(&buf[..len], from);
            }
        }
    })
}

/// One measured move of the address: command → the new node answering, the probe's gap, and
/// whether the old node still held the address afterwards.
struct Move {
    answer_ms: u64,
    gap_ms: u64,
    old_kept_address: bool,
}

/// Runs `event` (which makes node `from` lose the address) and waits until the echo answers
/// from the other node.
fn measure_move(lab: &Lab, probe: &RtpProbe, from: usize, event: impl FnOnce()) -> Move {
    let other_ip: std::net::IpAddr = format!("10.77.0.{}", 2 - from).parse().expect("ip");
    let fault_ms = probe.elapsed_ms();
    let t0 = Instant::now();
    event();
    let deadline = t0 + Duration::from_secs(30);
    loop {
        let r = probe.report_since(fault_ms);
        if r.received > 0 && r.last_from.map(|a| a.ip()) == Some(other_ip) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the address never answered on node {}",
            2 - from
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let answer_ms = t0.elapsed().as_millis() as u64;
    std::thread::sleep(Duration::from_millis(300));
    let gap_ms = probe.report_since(fault_ms.saturating_sub(200)).max_gap_ms;
    Move {
        answer_ms,
        gap_ms,
        old_kept_address: lab.has(from, APP_IP),
    }
}

/// Drops packets matching `expr` (an nftables match, e.g. `ip protocol vrrp`) in and out of
/// namespace `ns`; `on = false` removes the rules.
fn nft_drop(ns: &testkit::netns::Netns, table: &str, expr: &str, on: bool) {
    if !on {
        sh(ns, &["nft", "delete", "table", "inet", table]);
        return;
    }
    let rules = format!(
        "table inet {table} {{\n\
           chain cin {{ type filter hook input priority -300; {expr} drop; }}\n\
           chain cout {{ type filter hook output priority -300; {expr} drop; }}\n\
         }}\n"
    );
    let path = std::env::temp_dir().join(format!("{}-{table}.nft", ns.name()));
    std::fs::write(&path, rules).expect("nft rules");
    sh(ns, &["nft", "-f", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(path);
}

/// The two nodes stop hearing each other (`expr` dropped on node `idx`) while both still reach
/// the clients, for 6 s: whether both held the address at any poll.
fn partition_split(lab: &Lab, idx: usize, expr: &str) -> bool {
    let mut w = Watch { split_brain: false };
    nft_drop(&lab.nodes[idx], "dnwpart", expr, true);
    w.hold(lab, "the partition", Duration::from_secs(6), |_| true);
    nft_drop(&lab.nodes[idx], "dnwpart", expr, false);
    w.split_brain
}

/// keepalived (VRRP over the service link) in node `idx`'s namespace.
fn keepalived(lab: &Lab, dir: &Path, idx: usize, advert: &str) -> testkit::proc::Proc {
    let version = if advert.contains('.') {
        "vrrp_version 3"
    } else {
        ""
    };
    let conf = format!(
        "global_defs {{\n  router_id dnwhk{idx}\n  {version}\n  vrrp_garp_master_delay 1\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  nopreempt\n  interface eth0\n  virtual_router_id 77\n\
           priority {}\n  advert_int {advert}\n  virtual_ipaddress {{\n    {APP_IP}/24 dev eth0\n  }}\n}}\n",
        150 - 50 * idx
    );
    static STARTS: AtomicU32 = AtomicU32::new(0);
    // Fresh pid files for every start: a killed keepalived's VRRP child can linger as a zombie
    // (reparented), and keepalived refuses to start over a pid file naming a live pid.
    let k = STARTS.fetch_add(1, Ordering::SeqCst);
    let f = dir.join(format!("keepalived{idx}.conf"));
    std::fs::write(&f, conf).expect("keepalived.conf");
    let mut c = lab.nodes[idx].command("keepalived");
    c.args(["-n", "-l", "-D", "--vrrp", "-f"])
        .arg(&f)
        .arg("-p")
        .arg(dir.join(format!("k{idx}-{k}.pid")))
        .arg("-r")
        .arg(dir.join(format!("v{idx}-{k}.pid")))
        .arg("-c")
        .arg(dir.join(format!("c{idx}-{k}.pid")));
    testkit::proc::Proc::spawn(&format!("keepalived{}", idx + 1), c).expect("keepalived")
}

fn stats(v: &[u64]) -> String {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => "—".into(),
        n => format!("{} ({}–{})", s[n / 2], s[0], s[n - 1]),
    }
}

fn median(v: &[u64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0) as f64
}

/// keepalived's moves of the address, `advert` between advertisements: `BENCH_ROUNDS` times
/// SIGKILL of the master, then `BENCH_ROUNDS` times a clean stop (SIGTERM: priority 0 sent).
fn keepalived_rounds(
    lab: &Lab,
    probe: &RtpProbe,
    mutes: &[Arc<AtomicBool>; 2],
    advert: &str,
) -> Rounds {
    let dir = tempfile::tempdir().expect("tmp");
    let mut k = [
        Some(keepalived(lab, dir.path(), 0, advert)),
        Some(keepalived(lab, dir.path(), 1, advert)),
    ];
    let mut w = Watch { split_brain: false };
    let master = |w: &mut Watch| -> usize {
        w.until(lab, "a keepalived master", Duration::from_secs(30), |h| {
            h[0] != h[1]
        });
        if lab.has(0, APP_IP) { 0 } else { 1 }
    };
    let mut kills = Vec::new();
    let mut stops = Vec::new();
    for round in 0..2 * BENCH_ROUNDS {
        let m = master(&mut w);
        // Settle: the backup has heard a few advertisements.
        std::thread::sleep(Duration::from_millis(1500));
        let graceful = round >= BENCH_ROUNDS;
        let mut p = k[m].take().expect("running");
        let mv = measure_move(lab, probe, m, || {
            if graceful {
                p.signal(15);
            } else {
                // The node dies: its service stops answering with the process.
                mutes[m].store(true, Ordering::SeqCst);
                p.signal(9);
            }
        });
        mutes[m].store(false, Ordering::SeqCst);
        let _ = p.wait_timeout(Duration::from_secs(10));
        drop(p);
        if lab.has(m, APP_IP) {
            // A killed keepalived leaves the address behind; take it off by hand.
            sh(
                &lab.nodes[m],
                &["ip", "addr", "del", &format!("{APP_IP}/24"), "dev", "eth0"],
            );
        }
        eprintln!(
            "keepalived advert_int {advert}, {}: node {} answering after {} ms, gap {} ms",
            if graceful { "SIGTERM" } else { "SIGKILL" },
            2 - m,
            mv.answer_ms,
            mv.gap_ms
        );
        if graceful {
            stops.push(mv)
        } else {
            kills.push(mv)
        }
        k[m] = Some(keepalived(lab, dir.path(), m, advert));
    }
    // The nodes stop hearing each other's advertisements (dropped on the backup).
    let m = master(&mut w);
    std::thread::sleep(Duration::from_millis(1500));
    let split = partition_split(lab, 1 - m, "ip protocol vrrp");
    eprintln!("keepalived advert_int {advert}, partition: both held the address: {split}");
    drop(k);
    unaddress(lab);
    Rounds {
        kills,
        clean: stops,
        split,
    }
}

/// What one system did: moves after a kill, clean handovers, and whether a partition of the
/// two nodes made both hold the address.
struct Rounds {
    kills: Vec<Move>,
    clean: Vec<Move>,
    split: bool,
}

/// Removes the address from both nodes (between systems).
fn unaddress(lab: &Lab) {
    for ns in &lab.nodes {
        let _ = ns
            .command("ip")
            .args(["addr", "del", &format!("{APP_IP}/24"), "dev", "eth0"])
            .output();
    }
}

/// Denwa's pair (one PostgreSQL on the host for the pair's database and the witness's row):
/// `BENCH_ROUNDS` times SIGKILL of the active, then `BENCH_ROUNDS` switchovers through the API.
fn denwa_rounds(lab: &Lab, probe: &RtpProbe, mutes: &[Arc<AtomicBool>; 2], extra: &str) -> Rounds {
    let mut pg = testkit::pg::PgCluster::start().expect("PostgreSQL");
    pg.create_database("denwa").expect("createdb");
    pg.create_database("witness").expect("createdb");
    let (db, wit) = (pg.socket_url_for("denwa"), pg.socket_url_for("witness"));
    let mut n = [
        Node::new(0, &db, &wit, extra),
        Node::new(1, &db, &wit, extra),
    ];
    n[0].cli_ok(&["extension", "add", "1001", "--password", "secret-ha-aaab"]);
    n[0].cli_ok(&["extension", "add", "1002", "--password", "secret-ha-aaac"]);
    let token = api_token(&db, "bench");
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, lab, &mut n);
    let mut kills = Vec::new();
    let mut switches = Vec::new();
    for round in 0..2 * BENCH_ROUNDS {
        let act = if lab.has(0, APP_IP) { 0 } else { 1 };
        w.until_ready(lab, &n, act);
        if round < BENCH_ROUNDS {
            let node = &mut n[act];
            let mv = measure_move(lab, probe, act, || {
                mutes[act].store(true, Ordering::SeqCst);
                node.kill9()
            });
            mutes[act].store(false, Ordering::SeqCst);
            eprintln!(
                "Denwa, SIGKILL: node {} answering after {} ms, gap {} ms",
                2 - act,
                mv.answer_ms,
                mv.gap_ms
            );
            kills.push(mv);
            n[act].spawn(lab);
        } else {
            let (node, lab2, tok) = (&n[act], lab, &token);
            switches.push(measure_move(lab, probe, act, || {
                let (code, body) = node.http(lab2, "POST", "/api/v1/cluster/switchover", tok);
                assert_eq!(code, 202, "{body}");
            }));
        }
    }
    // The nodes stop hearing each other's heartbeats on both paths (dropped on the standby);
    // the witness (on the host here) stays reachable.
    let act = if lab.has(0, APP_IP) { 0 } else { 1 };
    w.until_ready(lab, &n, act);
    let split = partition_split(lab, 1 - act, "udp dport 7410");
    eprintln!("Denwa, partition: both held the address: {split}");
    assert!(
        !w.split_brain && !split,
        "both Denwa nodes held the address"
    );
    for node in n.iter_mut() {
        node.kill9();
    }
    pg.stop();
    Rounds {
        kills,
        clean: switches,
        split,
    }
}

#[test]
#[ignore = "benchmark: bench/failover.sh (needs keepalived)"]
fn failover_vs_keepalived() {
    let lab = Lab::create("dnwhk");
    let stop = Arc::new(AtomicBool::new(false));
    let mutes = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let echoes: Vec<_> = lab
        .nodes
        .iter()
        .zip(&mutes)
        .map(|(ns, m)| echo(ns.name(), Arc::clone(&stop), Arc::clone(m)))
        .collect();
    let sock = lab
        .client
        .udp_bind(format!("{CLIENT_IP}:0").parse().expect("addr"))
        .expect("probe socket");
    let probe = RtpProbe::start(sock, format!("{APP_IP}:{ECHO_PORT}").parse().expect("addr"))
        .expect("probe");
    // advert_int values: 1 s (the usual deployment), then faster ones (VRRPv3 counts in
    // centiseconds: 0.01 is the fastest keepalived accepts).
    let adverts = std::env::var("DNWHK_ADVERTS").unwrap_or_else(|_| "1,0.1,0.01".into());
    let mut runs = Vec::new();
    for a in adverts.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let v3 = if a.contains('.') { " (VRRPv3)" } else { "" };
        runs.push((
            format!("keepalived, advert_int {a}{v3}"),
            keepalived_rounds(&lab, &probe, &mutes, a),
        ));
    }
    runs.push((
        "Denwa, interval 100 ms, dead_after 300 ms, lease 700 ms (the shortest its rules allow)"
            .to_string(),
        denwa_rounds(
            &lab,
            &probe,
            &mutes,
            "interval_ms = 100\ndead_after_ms = 300\nlease_ms = 700",
        ),
    ));
    runs.push((
        "Denwa (defaults: interval 100 ms, dead_after 600 ms, lease 800 ms)".to_string(),
        denwa_rounds(&lab, &probe, &mutes, ""),
    ));
    drop(probe);
    stop.store(true, Ordering::Relaxed);
    for e in echoes {
        let _ = e.join();
    }
    let denwa = &runs[runs.len() - 1].1;
    let d_kill = median(&denwa.kills.iter().map(|m| m.answer_ms).collect::<Vec<_>>());
    let d_sw = median(&denwa.clean.iter().map(|m| m.answer_ms).collect::<Vec<_>>());
    let mut t = String::from(
        "| system | kill -9 of the holder: address answering on the new node, ms | kill -9: probe gap, ms | old node kept the address after kill -9 | clean handover (keepalived SIGTERM / Denwa API switchover): answering, ms | clean: probe gap, ms | ratio to Denwa defaults (kill / clean, medians) | nodes cut from each other 6 s: both held the address |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, r) in &runs {
        let ka: Vec<u64> = r.kills.iter().map(|m| m.answer_ms).collect();
        let kg: Vec<u64> = r.kills.iter().map(|m| m.gap_ms).collect();
        let ca: Vec<u64> = r.clean.iter().map(|m| m.answer_ms).collect();
        let cg: Vec<u64> = r.clean.iter().map(|m| m.gap_ms).collect();
        let kept = r.kills.iter().filter(|m| m.old_kept_address).count();
        t.push_str(&format!(
            "| {name} | {} | {} | {kept} of {} | {} | {} | {:.2} / {:.2} | {} |\n",
            stats(&ka),
            stats(&kg),
            r.kills.len(),
            stats(&ca),
            stats(&cg),
            median(&ka) / d_kill.max(1.0),
            median(&ca) / d_sw.max(1.0),
            if r.split {
                "**yes** (split brain)"
            } else {
                "no"
            },
        ));
    }
    t.push_str(&format!(
        "\nmedian (min–max) of {BENCH_ROUNDS} rounds each; 20 ms probe echoed by a UDP responder on each node; same namespaces, same run.\n"
    ));
    println!("\n{t}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("failover-bench.md");
    std::fs::write(&out, &t).expect("results file");
}
