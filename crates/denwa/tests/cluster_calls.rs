//! Calls in progress survive a switchover and a crash of the active node, end to end in
//! network namespaces (`dnwhc-…`): the pair with each node's own PostgreSQL (replicated
//! synchronously over the dedicated link), the witness's lease row in a third PostgreSQL, two
//! sipp phones in the client namespace calling each other through the application address with
//! SDP naming two 20 ms RTP probes (`testkit::rtp_probe`), which send and measure the audio.
//!
//! Steps: (a) a call up on node 1, `denwa cluster switchover`; (b) a call up on node 2,
//! `kill -9` of node 2's Denwa and PostgreSQL. After each: both probes still receive (gap in ms
//! and packets lost printed per direction), the caller's BYE is answered by the new active,
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
    let mut uac = Sipp::uac(
        probe_scenario(dir, "uac_call.xml"),
        &format!("{APP_IP}:5060"),
    );
    uac.netns = Some(lab.client.name().to_string());
    uac.local_ip = CLIENT_IP.into();
    uac.local_port = Some(caller_port);
    uac.inject_text = Some(sipp_user("1001", "secret-ha-aaab"));
    uac.service = Some("1002".into());
    uac.vars = vec![("probe".into(), a.local_addr().port().to_string())];
    uac.call_duration = TALK;
    uac.timeout = Duration::from_secs(120);
    uac.trace_msg = true;
    let caller = uac.spawn().expect("caller sipp");
    let deadline = Instant::now() + Duration::from_secs(15);
    let row = loop {
        let out = pg
            .psql_db("denwa", "SELECT record FROM live_calls")
            .unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.trim_start().starts_with('{')) {
            break serde_json::from_str::<serde_json::Value>(line.trim()).expect("row JSON");
        }
        assert!(
            Instant::now() < deadline,
            "the answered call was never stored: {out}"
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
/// record with `event` in `pg`. Returns the table row.
fn finish_call(c: Call, from_ms: u64, pg: &PgNode, event: &str, step: &str) -> String {
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
    format!(
        "| {step} | {} | {} | BYE answered by the new active; one record (ANSWERED, `{event}` event) |",
        cell(&to_b),
        cell(&to_a)
    )
}

#[test]
fn calls_in_progress_survive_a_switchover_and_a_crash_of_the_active() {
    let (_witness, witness_url) = witness_on_host();
    let tmp = tempfile::Builder::new()
        .prefix("dnwhc-")
        .tempdir()
        .expect("tmp");
    let root = tmp.path();
    let scenarios = tempfile::Builder::new()
        .prefix("dnwhc-sipp-")
        .tempdir()
        .expect("tmp");
    let lab = Lab::create("dnwhc");
    let (mut n, pgs) = pair_with_own_postgres(&lab, root, &witness_url);
    let _pg_stop = PgStop(pgs.to_vec());
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);
    until_pair_ready(&n, 0, "cold start");
    let mut rows = Vec::new();

    // (a) Switchover with a call up on node 1.
    let c = start_call(&lab, scenarios.path(), &pgs[0], 5080);
    until_audio(&c, "before the switchover");
    // The window starts a little before the event: a silence that begins with it is then
    // measured from the last packet before it (and the packets it swallowed counted).
    let from = c.a.elapsed_ms().saturating_sub(200);
    n[0].cli_ok(&["cluster", "switchover"]);
    let moved = w.until(
        &lab,
        "node 2 to hold the address",
        Duration::from_secs(10),
        |h| h[1] && !h[0],
    );
    println!(
        "switchover: address moved {} ms after the command",
        moved.as_millis()
    );
    rows.push(finish_call(c, from, &pgs[1], "switchover", "switchover"));
    let logs = n[1].logs();
    assert!(
        logs.contains("call in progress taken over"),
        "node 2 continued the call"
    );

    // (b) A call up on node 2; node 2 dies (Denwa and PostgreSQL, SIGKILL).
    until_pair_ready(&n, 1, "after the switchover (node 1 re-attached)");
    let c = start_call(&lab, scenarios.path(), &pgs[1], 5082);
    until_audio(&c, "before the crash");
    // The window starts a little before the event: a silence that begins with it is then
    // measured from the last packet before it (and the packets it swallowed counted).
    let from = c.a.elapsed_ms().saturating_sub(200);
    let t0 = Instant::now();
    n[1].kill9();
    kill9_postgres(&pgs[1]);
    let (_, held) = w.failover(&lab, 1, t0);
    println!(
        "crash: node 1 holds the address {} ms after the kill",
        held.as_millis()
    );
    rows.push(finish_call(
        c,
        from,
        &pgs[0],
        "failover",
        "`kill -9` of the active (Denwa + PostgreSQL)",
    ));
    assert!(!w.split_brain, "both nodes held the address at once");

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
