//! Issue 17 §5/§7: a parked call survives a crash of the active node, end to end in network
//! namespaces (`dnwm2p-…`): the pair with each node's own PostgreSQL (replicated synchronously
//! over the dedicated link), the witness's lease row in a third PostgreSQL, two baresip phones
//! in the client namespace registered through the application address.
//!
//! 1001 dials the park code `*70` on node 1 and is parked on slot 701; node 1's Denwa and its
//! PostgreSQL are killed (SIGKILL); node 2 takes the address and resumes the park from its
//! replicated row (the parked phone re-INVITEd onto an endpoint of node 2); 1002 dials 701 on
//! node 2 and the two are joined: 1002 hears 1001's tones, which 1001 sends only well after
//! the retrieval (baresip 1.0 does not re-open its recording after a re-INVITE, so the other
//! direction is checked by node 2's endpoint of the parked phone: it sent audio to it).
//!
//! Run as root: `cargo test -p denwa --test cluster_park_crash -- --nocapture` (iproute2,
//! iputils-arping, baresip, PostgreSQL: `scripts/test-deps.sh`).

mod cluster_lab;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_lab::*;
use common::xfer::tones;
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

#[test]
fn a_parked_call_is_retrieved_on_the_standby_after_a_kill_of_the_active() {
    let (_witness, witness_url) = witness_on_host();
    let tmp = tempfile::Builder::new()
        .prefix("dnwm2p-")
        .tempdir()
        .expect("tmp");
    let lab = Lab::create("dnwm2p");
    let (mut n, pgs) = pair_with_own_postgres(&lab, tmp.path(), &witness_url);
    let _pg_stop = PgStop(pgs.to_vec());
    let mut w = Watch { split_brain: false };
    cold_start(&mut w, &lab, &mut n);
    until_pair_ready(&n, 0, "cold start");

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

    // 1001 parks itself on node 1 (the row is committed on both databases: synchronous).
    baresip_dial(&mut a, "*70");
    let tones_at = Instant::now() + Duration::from_millis(u64::from(PARKED_LEAD_MS));
    until_logged(&n[0], "call parked", "parking on node 1");
    assert!(
        n[0].cli_ok(&["park", "list"]).contains("701"),
        "slot 701 listed on node 1"
    );

    // Node 1 dies: its Denwa and its PostgreSQL.
    let t0 = Instant::now();
    n[0].kill9();
    kill9_postgres(&pgs[0]);
    let (_, held) = w.failover(&lab, 0, t0);
    until_logged(&n[1], "parked call resumed", "node 2 resuming the park");
    let resumed = t0.elapsed();

    // 1002 takes the call from slot 701 on node 2.
    baresip_dial(&mut c, "701");
    until_logged(&n[1], "parked call retrieved", "retrieval on node 2");
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
        .unwrap_or_else(|e| panic!("1002 did not hear the parked phone: {e}\n{}", n[1].logs()));
    let sent = most_sent_by_an_endpoint(&n[1].logs());
    assert!(
        sent > 100,
        "node 2 sent the taker's audio to the parked phone (most packets sent by an endpoint: {sent})"
    );
    assert!(!w.split_brain, "both nodes held the address at once");
    let row = format!(
        "| `kill -9` of the active (Denwa + PostgreSQL) with a call parked | address held by node 2 {} ms after the kill; park resumed {} ms, retrieved from 701 {} ms after | parked tones heard by the taker; {sent} packets sent to the parked phone |",
        held.as_millis(),
        resumed.as_millis(),
        retrieved.as_millis()
    );
    println!("\n{row}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-park-crash-results.md");
    std::fs::write(&out, format!("{row}\n")).expect("results file");
}
