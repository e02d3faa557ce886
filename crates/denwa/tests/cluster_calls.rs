//! Calls in progress survive a switchover and a crash of the active node, end to end in
//! network namespaces (`dnwhc-…`): the pair with each node's own PostgreSQL (replicated
//! synchronously over the dedicated link), the witness's lease row in a third PostgreSQL, two
//! sipp phones in the client namespace calling each other through the application address with
//! SDP naming two 20 ms RTP probes (`testkit::rtp_probe`), which send and measure the audio.
//!
//! Steps: (a) a call up on node 1, `denwa cluster switchover`; (b) a call up on node 2,
//! `kill -9` of node 2's Denwa and PostgreSQL. After each: both probes still receive (gap in ms
//! and packets lost printed per direction; none may be lost on the switchover: make-before-break,
//! `pbx::drain` — node 1 parks the address on lo and keeps relaying during its drain, only node 2
//! answers ARP for it, and a REGISTER sent during the drain is answered by node 2), the
//! caller's BYE is answered by the new active,
//! the callee gets its BYE, and the new active's database holds one record for the call,
//! answered, with the `switchover` / `failover` event. Prints a table and writes it to
//! `target/tmp/cluster-calls-results.md`.
//!
//! Run as root: `cargo test -p denwa --test cluster_calls -- --nocapture` (iproute2,
//! iputils-arping, sipp, PostgreSQL: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster_lab::*;
use common::sipp_user;
use pbx::cluster_pg::PgNode;
use testkit::rtp_probe::{ProbeReport, RtpProbe};
use testkit::sipp::{RunningSipp, Sipp};

/// How long the caller stays in the call before its BYE (the take-over happens meanwhile).
const TALK: Duration = Duration::from_secs(16);

/// A sipp scenario of `tests/sipp/` with its SDP port replaced by the global `[$probe]`
/// (the RTP probe's port: sipp's own media socket stays unused), written to `dir`.
fn probe_scenario(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace(&format!("tests/sipp/{name}"))).expect("scenario");
    assert!(text.contains("m=audio [media_port]"), "{name}");
    let text = text.replace("m=audio [media_port]", "m=audio [$probe]");
    // A global set with `-set` must be declared.
    let at = text.find("<scenario").expect("scenario element");
    let end = at + text[at..].find('>').expect("scenario element end") + 1;
    let text = format!(
        "{}\n  <Global variables=\"probe\"/>{}",
        &text[..end],
        &text[end..]
    );
    let out = dir.join(name);
    std::fs::write(&out, text).expect("write scenario");
    out
}

/// One call: two probes and the two sipp phones.
struct Call {
    caller: RunningSipp,
    callee: RunningSipp,
    a: RtpProbe,
    b: RtpProbe,
    call_id: String,
}

/// 1001 (caller, probe A) calls 1002 (callee at PHONE_PORT, probe B) through the application
/// address; returns once the active node (whose database is `pg`) stored the call, with the
/// probes sending to the relay's ports (read from the stored row).
fn start_call(lab: &Lab, dir: &Path, pg: &PgNode, caller_port: u16) -> Call {
    start_call_with(lab, dir, pg, caller_port, "uac_call.xml", TALK)
}

/// The stored row of the one call in progress in `pg`, if there is one.
fn stored_row(pg: &PgNode) -> Option<serde_json::Value> {
    let out = pg
        .psql_db("denwa", "SELECT record FROM live_calls")
        .unwrap_or_default();
    out.lines()
        .find(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l.trim()).expect("row JSON"))
}

/// Like [`start_call`], the caller running sipp scenario `scenario` with its pauses `talk`.
fn start_call_with(
    lab: &Lab,
    dir: &Path,
    pg: &PgNode,
    caller_port: u16,
    scenario: &str,
    talk: Duration,
) -> Call {
    let bind = || {
        lab.client
            .udp_bind(format!("{CLIENT_IP}:0").parse().expect("addr"))
            .expect("probe socket")
    };
    // Until the relay's ports are known the probes send to a discard port of the client.
    let nowhere: SocketAddr = format!("{CLIENT_IP}:9").parse().expect("addr");
    let a = RtpProbe::start(bind(), nowhere).expect("probe A");
    let b = RtpProbe::start(bind(), nowhere).expect("probe B");
    let mut uas = Sipp::uas(probe_scenario(dir, "uas_answer.xml"));
    uas.netns = Some(lab.client.name().to_string());
    uas.local_ip = CLIENT_IP.into();
    uas.local_port = Some(PHONE_PORT);
    uas.service = Some("1002".into());
    uas.vars = vec![("probe".into(), b.local_addr().port().to_string())];
    uas.timeout = Duration::from_secs(120);
    let mut callee = uas.spawn().expect("callee sipp");
    callee
        .wait_listening(Duration::from_secs(10))
        .expect("callee listening");
    let mut uac = Sipp::uac(probe_scenario(dir, scenario), &format!("{APP_IP}:5060"));
    uac.netns = Some(lab.client.name().to_string());
    uac.local_ip = CLIENT_IP.into();
    uac.local_port = Some(caller_port);
    uac.inject_text = Some(sipp_user("1001", "secret-ha-aaab"));
    uac.service = Some("1002".into());
    uac.vars = vec![("probe".into(), a.local_addr().port().to_string())];
    uac.call_duration = talk;
    uac.timeout = Duration::from_secs(120);
    uac.trace_msg = true;
    let caller = uac.spawn().expect("caller sipp");
    let deadline = Instant::now() + Duration::from_secs(15);
    let row = loop {
        if let Some(row) = stored_row(pg) {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "the answered call was never stored"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let addr = |side: &str| -> SocketAddr {
        row[side]["relay"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("relay address of side {side}: {row}"))
    };
    a.retarget(addr("a"));
    b.retarget(addr("b"));
    let call_id = row["call_id"].as_str().expect("call_id").to_string();
    Call {
        caller,
        callee,
        a,
        b,
        call_id,
    }
}

/// Waits until both probes received packets in the last 500 ms (audio flows both ways).
fn until_audio(c: &Call, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let since = c.a.elapsed_ms().saturating_sub(500);
        let (ra, rb) = (c.a.report_since(since), c.b.report_since(since));
        if ra.received >= 10 && rb.received >= 10 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no audio both ways (A got {}, B got {})",
            ra.received,
            rb.received
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Gap and loss of one direction since `from_ms`, as a table cell.
fn cell(r: &ProbeReport) -> String {
    format!(
        "longest gap {} ms, {} packets lost, {} received",
        r.max_gap_ms, r.lost, r.received
    )
}

/// The call's records in `pg` (`disposition/hangup_by/answered`) and its events.
fn record(pg: &PgNode, call_id: &str) -> (Vec<String>, String) {
    let cdr = pg
        .psql_db(
            "denwa",
            &format!(
                "SELECT disposition || '/' || hangup_by || '/' || CASE WHEN answer_time IS NULL THEN 'unanswered' ELSE 'answered' END FROM cdrs WHERE call_id = '{call_id}'"
            ),
        )
        .expect("cdrs");
    let events = pg
        .psql_db(
            "denwa",
            &format!("SELECT kind FROM cdr_events WHERE call_id = '{call_id}' ORDER BY seq"),
        )
        .expect("cdr_events");
    (
        cdr.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        events
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// After the take-over: audio both ways again, the gap measured from `from_ms`, the caller's
/// BYE answered (by the new active, the only node on the address), the callee's BYE, one
/// record with `event` in `pg`. Returns the table row and what each probe measured (caller →
/// callee, callee → caller).
fn finish_call(
    c: Call,
    from_ms: u64,
    pg: &PgNode,
    event: &str,
    step: &str,
) -> (String, ProbeReport, ProbeReport) {
    until_audio(&c, &format!("{step}: after the take-over"));
    // Some seconds of audio after the take-over, so a late gap shows too.
    std::thread::sleep(Duration::from_secs(2));
    let to_b = c.b.report_since(from_ms);
    let to_a = c.a.report_since(from_ms);
    println!(
        "{step}: caller -> callee {} (gaps {:?}, from {from_ms} ms)",
        cell(&to_b),
        to_b.gaps
    );
    println!(
        "{step}: callee -> caller {} (gaps {:?})",
        cell(&to_a),
        to_a.gaps
    );
    c.caller
        .finish()
        .unwrap_or_else(|e| panic!("{step}: the caller's BYE was not answered: {e}"));
    c.callee
        .finish()
        .unwrap_or_else(|e| panic!("{step}: the callee never got its BYE: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (cdrs, events) = loop {
        let (cdrs, events) = record(pg, &c.call_id);
        if !cdrs.is_empty() || Instant::now() > deadline {
            break (cdrs, events);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        cdrs,
        vec!["ANSWERED/caller/answered".to_string()],
        "{step}: one record, answered, ended by the caller"
    );
    assert_eq!(events, event, "{step}: the take-over event is recorded");
    let rows = pg
        .psql_db("denwa", "SELECT count(*) FROM live_calls")
        .expect("live_calls");
    assert_eq!(
        rows.trim(),
        "0",
        "{step}: the row is gone after the hang-up"
    );
    let row = format!(
        "| {step} | {} | {} | BYE answered by the new active; one record (ANSWERED, `{event}` event) |",
        cell(&to_b),
        cell(&to_a)
    );
    (row, to_b, to_a)
}

/// Whether node `i` has the IPv4 and the IPv6 application address parked on lo (a
/// make-before-break drain, `pbx::drain`).
fn parked_both(lab: &Lab, i: usize) -> (bool, bool) {
    let out = lab.nodes[i]
        .command("ip")
        .args(["-o", "addr", "show", "dev", "lo"])
        .output()
        .expect("ip addr");
    let text = String::from_utf8_lossy(&out.stdout);
    (
        text.contains(&format!(" {APP_IP}/32 ")),
        text.contains(&format!(" {APP_IP6}/128 ")),
    )
}

/// Whether node `i` has both application addresses parked on lo.
fn parked(lab: &Lab, i: usize) -> bool {
    parked_both(lab, i) == (true, true)
}

/// Sends an OPTIONS from the client to the application address every 500 ms until one is
/// answered from it (as a phone retransmits over UDP); returns how many were sent.
fn options_until_answered(lab: &Lab, limit: Duration) -> u32 {
    let s = lab
        .client
        .udp_bind(format!("{CLIENT_IP}:0").parse().expect("addr"))
        .expect("client UDP socket");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let port = s.local_addr().expect("local").port();
    let req = format!(
        "OPTIONS sip:{APP_IP}:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CLIENT_IP}:{port};branch=z9hG4bK-dnwze-opt\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{CLIENT_IP}>;tag=ze1\r\n\
         To: <sip:{APP_IP}>\r\n\
         Call-ID: dnwze-options\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let t0 = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    loop {
        assert!(t0.elapsed() < limit, "OPTIONS to {APP_IP} never answered");
        s.send_to(req.as_bytes(), format!("{APP_IP}:5060"))
            .expect("send OPTIONS");
        sent += 1;
        if let Ok((len, from)) = s.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]);
            assert!(text.starts_with("SIP/2.0 "), "{text}");
            assert_eq!(from.ip().to_string(), APP_IP);
            return sent;
        }
    }
}

/// REGISTERs 1001 (SIP port 5084) through the application address until it is accepted, as a
/// phone retries; returns the attempt that succeeded.
fn register_until_accepted(lab: &Lab, limit: Duration) -> u32 {
    let t0 = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut reg = Sipp::uac(
            workspace("tests/sipp/register.xml"),
            &format!("{APP_IP}:5060"),
        );
        reg.netns = Some(lab.client.name().to_string());
        reg.local_ip = CLIENT_IP.into();
        reg.local_port = Some(5084);
        reg.inject_text = Some(sipp_user("1001", "secret-ha-aaab"));
        match reg.run() {
            Ok(_) => return attempt,
            Err(e) => {
                assert!(
                    t0.elapsed() < limit,
                    "REGISTER never accepted after the switchover: {e}"
                );
                eprintln!(
                    "REGISTER attempt {attempt} refused: {}",
                    first_line(&e.to_string())
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.contains("received"))
        .unwrap_or_else(|| text.lines().next().unwrap_or(""))
}

/// Starts three ARP requests from the client for the application address, one a second (they
/// span a drain); [`arp_answerers`] reads who answered.
fn start_arping(lab: &Lab) -> std::process::Child {
    lab.client
        .command("arping")
        .args(["-c", "3", "-w", "4", "-I", "eth0", APP_IP])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("arping")
}

/// The Ethernet addresses that answered `arping`.
fn arp_answerers(arping: std::process::Child) -> Vec<String> {
    let out = arping.wait_with_output().expect("arping");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut macs: Vec<String> = text
        .lines()
        .filter(|l| l.contains("reply from"))
        .filter_map(|l| {
            let a = l.find('[')?;
            let b = l[a..].find(']')?;
            Some(l[a + 1..a + b].to_ascii_lowercase())
        })
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// The pair started in namespaces `prefix-…`, node 1 active and ready for a switchover.
/// Fields drop in order: the watch, PostgreSQL, the nodes, the lab, the files, the witness.
struct Pair {
    w: Watch,
    _pg_stop: PgStop,
    pgs: [PgNode; 2],
    n: [Node; 2],
    lab: Lab,
    scenarios: tempfile::TempDir,
    _tmp: tempfile::TempDir,
    _witness: testkit::pg::PgCluster,
}

fn pair(prefix: &str) -> Pair {
    let (witness, witness_url) = witness_on_host();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir()
        .expect("tmp");
    let scenarios = tempfile::Builder::new()
        .prefix(&format!("{prefix}-sipp-"))
        .tempdir()
        .expect("tmp");
    let lab = Lab::create(prefix);
    let (mut n, pgs) = pair_with_own_postgres(&lab, tmp.path(), &witness_url);
    let pg_stop = PgStop(pgs.to_vec());
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);
    until_pair_ready(&n, 0, "cold start");
    Pair {
        w,
        _pg_stop: pg_stop,
        pgs,
        n,
        lab,
        scenarios,
        _tmp: tmp,
        _witness: witness,
    }
}

#[test]
fn calls_in_progress_survive_a_switchover_and_a_crash_of_the_active() {
    let mut p = pair("dnwhc");
    let mut rows = Vec::new();

    // (a) Switchover with a call up on node 1.
    let c = start_call(&p.lab, p.scenarios.path(), &p.pgs[0], 5080);
    until_audio(&c, "before the switchover");
    // The window starts a little before the event: a silence that begins with it is then
    // measured from the last packet before it (and the packets it swallowed counted).
    let from = c.a.elapsed_ms().saturating_sub(200);
    p.n[0].cli_ok(&["cluster", "switchover"]);
    // Make-before-break (`pbx::drain`): node 1 parks the address on lo before it leaves the
    // segment and relays what phones with stale ARP caches still send it.
    let mut parked_seen = false;
    let moved = p.w.until(
        &p.lab,
        "node 2 to hold the address",
        Duration::from_secs(10),
        |h| {
            parked_seen |= parked(&p.lab, 0);
            h[1] && !h[0]
        },
    );
    parked_seen |= parked(&p.lab, 0);
    println!(
        "switchover: address moved {} ms after the command; node 1 drains it on lo: {parked_seen}",
        moved.as_millis()
    );
    assert!(
        parked_seen,
        "node 1 never parked both addresses (IPv4, IPv6) on lo (no make-before-break drain)"
    );
    // Who answers ARP for the address during node 1's drain and after it.
    let arping = start_arping(&p.lab);
    // A phone's SIP right after the switchover, during node 1's drain, reaches the new active
    // (node 1 neither takes nor sends SIP on the address now): an OPTIONS, retransmitted every
    // 500 ms as a phone does, is answered from the application address.
    let t = Instant::now();
    let answered = options_until_answered(&p.lab, Duration::from_secs(5));
    println!(
        "switchover: OPTIONS answered {} ms after the command ({} sent; node 1 still draining after it: {})",
        (moved + t.elapsed()).as_millis(),
        answered,
        parked(&p.lab, 0)
    );
    // A REGISTER (a write: it needs the new active's database) as a phone retries it.
    let t = Instant::now();
    let tries = register_until_accepted(&p.lab, Duration::from_secs(15));
    println!(
        "switchover: REGISTER accepted {} ms after the command (attempt {tries})",
        (moved + t.elapsed()).as_millis()
    );
    // Writes arriving while the new active stamps its epoch wait for the grant (bounded) instead
    // of being refused with 500 + Retry-After: the phone's first REGISTER is accepted.
    assert_eq!(
        tries, 1,
        "the first REGISTER after the switchover was refused"
    );
    // Only node 2 answers ARP for the address, drain or not.
    let node2 = Lab::mac(&p.lab.nodes[1]).to_ascii_lowercase();
    assert_eq!(
        arp_answerers(arping),
        vec![node2],
        "ARP for the application address answered by another node than the new active"
    );
    let (row, to_b, to_a) = finish_call(c, from, &p.pgs[1], "switchover", "switchover");
    rows.push(row);
    // The issue's goal: a manual switchover loses no audio packet.
    assert_eq!(
        (to_b.lost, to_a.lost),
        (0, 0),
        "packets lost on the switchover (caller -> callee gaps {:?}, callee -> caller gaps {:?})",
        to_b.gaps,
        to_a.gaps
    );
    assert_eq!(
        parked_both(&p.lab, 0),
        (false, false),
        "node 1 still has an application address on lo after its drain"
    );
    let logs = p.n[1].logs();
    assert!(
        logs.contains("call in progress taken over"),
        "node 2 continued the call"
    );

    // (b) A call up on node 2; node 2 dies (Denwa and PostgreSQL, SIGKILL).
    until_pair_ready(&p.n, 1, "after the switchover (node 1 re-attached)");
    let c = start_call(&p.lab, p.scenarios.path(), &p.pgs[1], 5082);
    until_audio(&c, "before the crash");
    // The window starts a little before the event: a silence that begins with it is then
    // measured from the last packet before it (and the packets it swallowed counted).
    let from = c.a.elapsed_ms().saturating_sub(200);
    let t0 = Instant::now();
    p.n[1].kill9();
    kill9_postgres(&p.pgs[1]);
    let (_, held) = p.w.failover(&p.lab, 1, t0);
    println!(
        "crash: node 1 holds the address {} ms after the kill",
        held.as_millis()
    );
    rows.push(
        finish_call(
            c,
            from,
            &p.pgs[0],
            "failover",
            "`kill -9` of the active (Denwa + PostgreSQL)",
        )
        .0,
    );
    assert!(!p.w.split_brain, "both nodes held the address at once");

    let mut table = String::from(
        "| step | caller → callee | callee → caller | end of the call |\n|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(r);
        table.push('\n');
    }
    println!("\n{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-calls-results.md");
    std::fs::write(&out, &table).expect("results file");
}

/// Each phase of the held call (talking, on hold, resumed): the switchover happens, and is
/// checked, while the call is on hold.
const PHASE: Duration = Duration::from_secs(12);

/// Waits until the stored row of the call in `pg` satisfies `f`.
fn until_row(pg: &PgNode, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(row) = stored_row(pg).filter(|r| f(r)) {
            return row;
        }
        assert!(Instant::now() < deadline, "{what}: the row never said so");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `probe` received 10 packets or more after `after_ms` (its clock), the last of
/// them from `from`.
fn until_from(probe: &RtpProbe, from: SocketAddr, after_ms: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = probe.report_since(after_ms);
        if r.received >= 10 && r.last_from == Some(from) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} packets, the last from {:?}, not {from}",
            r.received,
            r.last_from
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn addr_of(row: &serde_json::Value, path: &[&str]) -> SocketAddr {
    path.iter()
        .fold(row, |v, k| &v[*k])
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{path:?} in {row}"))
}

/// A call on hold keeps its music across a switchover: the callee (held) hears the music from
/// the same socket, now on node 2; the caller resumes on node 2 and both talk again.
#[test]
fn a_held_call_keeps_its_music_across_a_switchover_and_resumes() {
    let mut p = pair("dnwho");
    for node in &p.n {
        node.cli_ok(&["moh", "install-default"]);
    }
    let c = start_call_with(
        &p.lab,
        p.scenarios.path(),
        &p.pgs[0],
        5080,
        "uac_reinvite_hold.xml",
        PHASE,
    );
    until_audio(&c, "before the hold");
    // The caller holds: the callee is offered node 1's music endpoint.
    let held = until_row(&p.pgs[0], "the hold", |r| !r["moh"].is_null());
    assert_eq!(held["moh"]["held"], "b", "the callee is held: {held}");
    assert_eq!(held["moh"]["class"], "default");
    let music = addr_of(&held, &["moh", "endpoint"]);
    // From now on only the music reaches the callee: the caller's probe stops sending.
    let nowhere: SocketAddr = format!("{CLIENT_IP}:9").parse().expect("addr");
    c.a.retarget(nowhere);
    until_from(&c.b, music, c.b.elapsed_ms(), "music from node 1");
    let from = c.b.elapsed_ms().saturating_sub(200);
    p.n[0].cli_ok(&["cluster", "switchover"]);
    let moved = p.w.until(
        &p.lab,
        "node 2 to hold the address",
        Duration::from_secs(10),
        |h| h[1] && !h[0],
    );
    // Music again, from the same socket, once node 2 holds the address.
    until_from(&c.b, music, c.b.elapsed_ms() + 300, "music from node 2");
    let logs = p.n[1].logs();
    assert!(
        logs.contains("hold music plays again after the take-over"),
        "node 2 plays the music: {logs}"
    );
    // A new stream (its own sequence numbers) follows the old one: only the silence counts.
    let over = c.b.report_since(from);
    let music_gap = format!(
        "longest silence {} ms, {} packets received",
        over.max_gap_ms, over.received
    );
    println!(
        "held call: address moved {} ms after the command; music to the held party: {music_gap} (gaps {:?})",
        moved.as_millis(),
        over.gaps
    );
    // The caller resumes (sipp, after its pause) on node 2: the callee goes back to the relay.
    let resumed = until_row(&p.pgs[1], "the resume", |r| {
        r["moh"].is_null() && r["on_hold"] == false
    });
    c.a.retarget(addr_of(&resumed, &["a", "relay"]));
    let relay_b = addr_of(&resumed, &["b", "relay"]);
    let since = c.b.elapsed_ms();
    until_from(&c.b, relay_b, since, "the caller's audio after the resume");
    let row = finish_call(
        c,
        since,
        &p.pgs[1],
        "switchover",
        "held call: switchover while held, resumed",
    )
    .0;
    assert!(
        p.n[1].logs().contains("resumed: hold music stops"),
        "node 2 stopped the music"
    );
    assert!(!p.w.split_brain, "both nodes held the address at once");
    println!(
        "\n| step | caller → callee | callee → caller | end of the call |\n|---|---|---|---|\n{row}\n| music to the held party (callee) across the switchover | {music_gap} | — | — |"
    );
}

/// A call still ringing when a switchover starts is ended by the old active before it hands
/// over: the ringing phone gets a CANCEL, the caller a 480, the database one record.
#[test]
fn a_call_still_ringing_at_a_switchover_is_ended_with_a_480_and_one_record() {
    let mut p = pair("dnwho-r");
    let mut uas = Sipp::uas(workspace("tests/sipp/uas_ring_noanswer.xml"));
    uas.netns = Some(p.lab.client.name().to_string());
    uas.local_ip = CLIENT_IP.into();
    uas.local_port = Some(PHONE_PORT);
    uas.service = Some("1002".into());
    uas.timeout = Duration::from_secs(60);
    let mut callee = uas.spawn().expect("callee sipp");
    callee
        .wait_listening(Duration::from_secs(10))
        .expect("callee listening");
    let mut uac = Sipp::uac(
        workspace("tests/sipp/uac_ringing_refused.xml"),
        &format!("{APP_IP}:5060"),
    );
    uac.netns = Some(p.lab.client.name().to_string());
    uac.local_ip = CLIENT_IP.into();
    uac.local_port = Some(5080);
    uac.inject_text = Some(sipp_user("1001", "secret-ha-aaab"));
    uac.service = Some("1002".into());
    uac.timeout = Duration::from_secs(60);
    let caller = uac.spawn().expect("caller sipp");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !p.n[0].logs().contains("call started") {
        assert!(Instant::now() < deadline, "the call never reached node 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    p.n[0].cli_ok(&["cluster", "switchover"]);
    p.w.until(
        &p.lab,
        "node 2 to hold the address",
        Duration::from_secs(10),
        |h| h[1] && !h[0],
    );
    caller
        .finish()
        .unwrap_or_else(|e| panic!("the caller did not get its 480: {e}"));
    callee
        .finish()
        .unwrap_or_else(|e| panic!("the ringing phone was not cancelled: {e}"));
    assert!(
        p.n[0]
            .logs()
            .contains("call still ringing ended before the hand-over"),
        "node 1 ended it"
    );
    // One record, written by node 1 before the hand-over, read on the new active's database.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (cdrs, events) = loop {
        let cdrs = p.pgs[1]
            .psql_db(
                "denwa",
                "SELECT disposition || '/' || hangup_by || '/' || hangup_cause FROM cdrs",
            )
            .unwrap_or_default();
        let cdrs: Vec<String> = cdrs
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if !cdrs.is_empty() || Instant::now() > deadline {
            let events = p.pgs[1]
                .psql_db("denwa", "SELECT kind FROM cdr_events")
                .unwrap_or_default();
            break (cdrs, events.trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        cdrs,
        vec!["NO ANSWER/system/switchover: not answered".to_string()],
        "one record"
    );
    assert_eq!(events, "switchover");
    assert!(!p.w.split_brain, "both nodes held the address at once");
}

/// The active dies while a call rings; the phone answers afterwards: its 200 reaches the new
/// active, which knows no such call and ACKs it and hangs up, so the phone is not left in a
/// silent call (nor retransmitting its 200 for 32 s).
#[test]
fn a_phone_answering_after_a_crash_of_the_active_is_acked_and_hung_up() {
    let mut p = pair("dnwho-c");
    let mut uas = Sipp::uas(workspace("tests/sipp/uas_ring_answer_late.xml"));
    uas.netns = Some(p.lab.client.name().to_string());
    uas.local_ip = CLIENT_IP.into();
    uas.local_port = Some(PHONE_PORT);
    uas.service = Some("1002".into());
    // Rings this long before answering: the take-over is over by then.
    uas.call_duration = Duration::from_secs(6);
    uas.timeout = Duration::from_secs(60);
    let mut callee = uas.spawn().expect("callee sipp");
    callee
        .wait_listening(Duration::from_secs(10))
        .expect("callee listening");
    let mut uac = Sipp::uac(
        workspace("tests/sipp/uac_call.xml"),
        &format!("{APP_IP}:5060"),
    );
    uac.netns = Some(p.lab.client.name().to_string());
    uac.local_ip = CLIENT_IP.into();
    uac.local_port = Some(5080);
    uac.inject_text = Some(sipp_user("1001", "secret-ha-aaab"));
    uac.service = Some("1002".into());
    // The caller's INVITE died with node 1: it never gets a final response.
    uac.timeout = Duration::from_secs(20);
    let caller = uac.spawn().expect("caller sipp");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !p.n[0].logs().contains("call started") {
        assert!(Instant::now() < deadline, "the call never reached node 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    p.n[0].kill9();
    kill9_postgres(&p.pgs[0]);
    let (_, held) = p.w.failover(&p.lab, 0, t0);
    println!(
        "crash while ringing: node 2 holds the address {} ms after the kill",
        held.as_millis()
    );
    callee
        .finish()
        .unwrap_or_else(|e| panic!("the phone's answer was not ACKed and hung up: {e}"));
    assert!(
        p.n[1]
            .logs()
            .contains("answer to an INVITE this node never sent"),
        "node 2 ended the orphan answer"
    );
    let _ = caller.finish_unchecked();
    assert!(!p.w.split_brain, "both nodes held the address at once");
}
