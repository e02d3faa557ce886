//! The partition matrix: two nodes and a witness on a simulated network and a fake clock (see
//! `sim/mod.rs`), every fault the issue names, plus a seeded random fault schedule. The invariants
//! (no split brain, the writer holds the newest epoch, the IP only on an Active) are checked after
//! every simulated event; each scenario also checks who ends up Active and how fast.

mod sim;

use std::time::Duration;

use ha::{Command, Role};
use sim::{MS, Sim};

/// The defaults these bounds are written against.
const DEAD_AFTER: Duration = Duration::from_millis(600);
/// Takeover bound after the Active dies: the witness's lease (renewed at most `LEASE` before)
/// must run out, and the standby must have seen `DEAD_AFTER` of silence — whichever is later —
/// plus a few simulated network round trips.
const TAKEOVER: Duration = Duration::from_millis(800 + 50);

/// p50 and max of takeover times, ms.
fn p50_max(times: &[u128]) -> (u128, u128) {
    let mut t = times.to_vec();
    t.sort_unstable();
    (
        t.get(t.len() / 2).copied().unwrap_or(0),
        t.last().copied().unwrap_or(0),
    )
}

/// A pair after a cold start: node 1 (lower id) Active, node 2 Standby.
fn steady(seed: u64, fencing: bool) -> Sim {
    let mut s = Sim::with(seed, fencing);
    s.run_for(4000 * MS);
    assert!(s.serving(0), "n1 active after cold start\n{}", s.dump());
    assert_eq!(s.role(1), Some(Role::Standby));
    s
}

#[test]
fn act_killed_standby_takes_over_within_the_lease() {
    // Killed at every phase of the renewal cycle (every 15 ms over one 266 ms renew interval,
    // and beyond).
    let mut times = Vec::new();
    for phase in 0..20 {
        let mut s = steady(1, false);
        s.run_for(phase * 15 * MS);
        s.kill(0);
        let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
        // The last heartbeat left at most one interval (100 ms) before the kill.
        assert!(
            took >= DEAD_AFTER - 100 * MS,
            "not before the peer is dead: {took:?}"
        );
        assert!(took <= TAKEOVER, "took {took:?}\n{}", s.dump());
        times.push(took.as_millis());
    }
    let (p50, max) = p50_max(&times);
    println!(
        "ACT killed: standby serving after {} to {max} ms (p50 {p50} ms)",
        times.iter().min().unwrap_or(&0),
    );
    let mut s = steady(1, false);
    s.kill(0);
    s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    // The old node restarts and stays Standby: no failback.
    s.start(0);
    s.run_for(20_000 * MS);
    assert!(s.serving(1));
    assert_eq!(s.role(0), Some(Role::Standby));
}

#[test]
fn act_links_down_act_releases_before_standby_takes() {
    let mut s = steady(2, false);
    let cut_at = s.now;
    s.cut_all(0, true);
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    let released = s.released_ip_at[0].expect("n1 released");
    let taken = s.took_ip_at[1].expect("n2 took");
    println!(
        "ACT links down: ACT released after {} ms, standby serving after {} ms",
        (released - cut_at).as_millis(),
        took.as_millis()
    );
    assert!(released < taken);
    assert!(took <= TAKEOVER + DEAD_AFTER, "took {took:?}\n{}", s.dump());
    assert_eq!(s.role(0), Some(Role::Fenced));
    // Healed: the old Active comes back as Standby after its hold-down, never fights.
    s.heal();
    s.run_for(15_000 * MS);
    assert!(s.serving(1));
    assert_eq!(s.role(0), Some(Role::Standby));
}

#[test]
fn heartbeat_path_cut_never_causes_a_takeover() {
    let mut s = steady(3, false);
    // The dedicated link is cut: the service network still carries heartbeats.
    s.cuts.path[1] = true;
    s.run_for(30_000 * MS);
    assert!(s.serving(0));
    assert_eq!(s.role(1), Some(Role::Standby));
    assert_eq!(s.took_ip_at[1], None);
    assert_eq!(s.node(1).status(s.now).paths, vec![true, false]);
    // Both heartbeat paths cut, witness reachable from both: the standby asks, the witness
    // refuses (the Active renews, and — its standby silent — has it recorded that it runs
    // alone before turning synchronous replication off), nobody fights.
    s.cuts.path[0] = true;
    s.run_for(30_000 * MS);
    assert!(s.serving(0));
    assert!(s.alone(0));
    assert_eq!(s.took_ip_at[1], None);
    let why = s.node(1).status(s.now).blocked.expect("reason");
    assert!(
        why.starts_with("the witness records that node 1 runs alone since epoch 1"),
        "{why}"
    );
}

#[test]
fn act_frozen_then_resumed_demotes_and_does_not_fight() {
    let mut s = steady(4, false);
    s.freeze(0);
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    println!("ACT frozen: standby serving after {} ms", took.as_millis());
    assert!(took <= TAKEOVER, "{took:?}");
    s.run_for(5000 * MS);
    // While frozen the old Active still has the address configured, but its authority is over.
    assert!(s.slots[0].ip);
    assert!(!s.serving(0));
    let resumed_at = s.now;
    s.resume(0);
    assert_eq!(
        s.released_ip_at[0],
        Some(resumed_at),
        "released first thing"
    );
    assert!(!s.slots[0].ip);
    assert_eq!(s.role(0), Some(Role::Fenced));
    s.run_for(20_000 * MS);
    assert!(s.serving(1));
    assert_eq!(s.role(0), Some(Role::Standby));
}

#[test]
fn partition_with_the_witness_on_the_actives_side() {
    let mut s = steady(5, false);
    s.cuts.path = [true, true];
    s.cuts.witness[1] = true;
    s.run_for(30_000 * MS);
    assert!(s.serving(0));
    assert_eq!(s.took_ip_at[1], None);
    assert_eq!(
        s.node(1).status(s.now).blocked.as_deref(),
        Some("no lease (witness unreachable) and no fencing hook is configured")
    );
}

#[test]
fn partition_with_the_witness_on_the_standbys_side() {
    let mut s = steady(6, false);
    s.cuts.path = [true, true];
    s.cuts.witness[0] = true;
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    println!(
        "partition, witness with SBY: standby serving after {} ms",
        took.as_millis()
    );
    assert!(took <= TAKEOVER, "{took:?}");
    assert!(s.released_ip_at[0].expect("released") < s.took_ip_at[1].expect("took"));
    s.run_for(10_000 * MS);
    assert!(s.serving(1));
    assert!(!s.serving(0));
}

#[test]
fn both_restarted_together_one_active_by_tie_break() {
    let mut s = steady(7, false);
    s.kill(0);
    s.kill(1);
    s.start(0);
    s.start(1);
    let took = s.run_until_serving(0, 5000 * MS).expect("n1 active");
    println!("both restarted: n1 serving after {} ms", took.as_millis());
    // Starting listens dead_after; the old lease (held by n1's previous run) must expire.
    assert!(took <= TAKEOVER + DEAD_AFTER, "{took:?}");
    s.run_for(10_000 * MS);
    assert!(s.serving(0));
    assert_eq!(s.role(1), Some(Role::Standby));
    assert_eq!(s.took_ip_at[1], None);
}

#[test]
fn witness_down_active_keeps_serving_and_nobody_takes_over() {
    let mut s = steady(8, false);
    s.witness_up = false;
    s.run_for(60_000 * MS);
    assert!(s.serving(0), "the standby's acks keep the Active serving");
    assert_eq!(s.role(1), Some(Role::Standby));
    // The Active dies while the witness is down: no lease, no fence: no takeover, and why.
    s.kill(0);
    s.run_for(10_000 * MS);
    assert_eq!(s.took_ip_at[1], None);
    assert_eq!(
        s.node(1).status(s.now).blocked.as_deref(),
        Some("no lease (witness unreachable) and no fencing hook is configured")
    );
    // The witness comes back: takeover at once (the old lease long expired).
    s.witness_up = true;
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    assert!(took <= 600 * MS, "{took:?}");
}

#[test]
fn witness_down_and_active_dies_fencing_takes_over() {
    let mut s = steady(9, true);
    s.witness_up = false;
    s.run_for(5000 * MS);
    s.kill(0);
    let took = s
        .run_until_serving(1, 5000 * MS)
        .expect("n2 takes over by fencing");
    println!(
        "witness down, ACT killed, fencing: standby serving after {} ms",
        took.as_millis()
    );
    assert!(s.slots[0].fenced_off);
    // The fenced node stays off until the survivor holds a lease again.
    s.start(0);
    assert!(s.slots[0].node.is_none());
    s.witness_up = true;
    s.run_for(2000 * MS);
    assert!(s.node(1).status(s.now).lease_held);
    assert!(!s.slots[0].fenced_off);
    s.start(0);
    s.run_for(5000 * MS);
    assert!(s.serving(1));
    assert_eq!(s.role(0), Some(Role::Standby));
}

#[test]
fn actives_database_fails_standby_takes_over_gracefully() {
    let mut s = steady(12, false);
    s.slots[0].db_down = true;
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    println!(
        "ACT database down: standby serving after {} ms",
        took.as_millis()
    );
    // Noticed at the next health report (every 500 ms), handed over after dead_after.
    assert!(took <= DEAD_AFTER + 600 * MS, "{took:?}");
    s.run_for(5000 * MS);
    assert_eq!(s.role(0), Some(Role::Standby));
    assert!(s.serving(1));
}

#[test]
fn manual_switchover_hands_over_and_refuses_when_not_ready() {
    let mut s = steady(10, false);
    // Within the hold-down after the cold start: refused.
    assert!(s.node(0).switchover_readiness(s.now).is_err());
    s.run_for(10_000 * MS);
    assert_eq!(s.node(0).switchover_readiness(s.now), Ok(()));
    s.command(0, Command::Switchover);
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    let gap = s.took_ip_at[1].expect("took") - s.released_ip_at[0].expect("released");
    println!(
        "switchover: standby serving {} ms after the command; address unowned for {} ms",
        took.as_millis(),
        gap.as_millis()
    );
    assert!(took <= 1000 * MS, "{took:?}");
    assert!(gap <= 20 * MS, "{gap:?}");
    s.run_for(1000 * MS);
    assert_eq!(s.role(0), Some(Role::Standby));
    // And back again is refused during the hold-down, with the reason.
    let why = s
        .node(1)
        .switchover_readiness(s.now)
        .expect_err("hold-down");
    assert!(why.to_string().starts_with("in hold-down"), "{why}");
    // The standby side refuses too.
    assert!(s.node(0).switchover_readiness(s.now).is_err());
}

#[test]
fn switchover_refused_when_the_standby_is_not_replicating() {
    let mut s = steady(11, false);
    s.run_for(10_000 * MS);
    // Replication runs over path 0: cut it and the standby stops streaming.
    s.cuts.path[0] = true;
    s.run_for(1000 * MS);
    let why = s
        .node(0)
        .switchover_readiness(s.now)
        .expect_err("not ready");
    println!("refused: {why}");
    s.command(0, Command::Switchover);
    s.run_for(3000 * MS);
    assert!(s.serving(0));
    assert_eq!(s.took_ip_at[1], None);
}

/// A seeded random fault schedule: links cut and healed, nodes frozen and resumed, killed and
/// restarted, the witness stopped, databases failed, the network made lossy (10 % dropped, 10 %
/// duplicated), switchovers asked — thousands of faults, invariants checked
/// after every event, and after each healed phase exactly one node must serve.
fn random_schedule(seed: u64, fencing: bool, faults: usize, rate: [f64; 2]) {
    let mut s = Sim::with(seed, fencing);
    s.rate = rate;
    s.jitter = true;
    s.run_for(4000 * MS);
    let mut recoveries = 0;
    let mut checked_takeovers = 0;
    let mut times: Vec<u128> = Vec::new();
    for k in 0..faults {
        match s.rand() % 15 {
            0 => s.cuts.path[0] = !s.cuts.path[0],
            1 => s.cuts.path[1] = !s.cuts.path[1],
            2 => s.cuts.witness[0] = !s.cuts.witness[0],
            3 => s.cuts.witness[1] = !s.cuts.witness[1],
            4 => {
                let i = (s.rand() % 2) as usize;
                if s.slots[i].frozen {
                    s.resume(i)
                } else {
                    s.freeze(i)
                }
            }
            5 => {
                let i = (s.rand() % 2) as usize;
                // Killing the serving node while the other is a live, reachable Standby: it
                // must take over within the bound (no other fault meanwhile).
                let o = 1 - i;
                let live_standby = s.serving(i)
                    && s.role(o) == Some(Role::Standby)
                    && !s.slots[o].frozen
                    && !s.slots[o].db_down
                    && !s.cuts.witness[o]
                    && s.witness_up
                    && !s.lossy;
                // The row says the serving node runs alone: the standby may lack acknowledged
                // writes and must not take over (it says why).
                let behind = s.alone(i);
                s.kill(i);
                if live_standby && behind {
                    s.run_for(3000 * MS);
                    assert!(
                        !s.serving(o),
                        "seed {seed}: behind, yet took over\n{}",
                        s.dump()
                    );
                    let local = s.local(o, s.now);
                    let why = s.node(o).status(local).blocked.unwrap_or_default();
                    assert!(
                        why.contains("runs alone"),
                        "seed {seed}: {why}\n{}",
                        s.dump()
                    );
                    s.behind_refusals += 1;
                } else if live_standby {
                    let took = s.run_until_serving(o, 5000 * MS);
                    assert!(
                        took.is_some_and(|t| t <= TAKEOVER),
                        "seed {seed}: standby took {took:?}\n{}",
                        s.dump()
                    );
                    checked_takeovers += 1;
                    times.extend(took.map(|t| t.as_millis()));
                }
            }
            6 | 7 => {
                let i = (s.rand() % 2) as usize;
                s.start(i);
            }
            8 => s.witness_up = !s.witness_up,
            9 => {
                let i = (s.rand() % 2) as usize;
                s.command(i, Command::Switchover);
            }
            10 => {
                let i = (s.rand() % 2) as usize;
                s.resume(i);
            }
            11 => {
                let i = (s.rand() % 2) as usize;
                s.slots[i].db_down = !s.slots[i].db_down;
            }
            12 => s.lossy = !s.lossy,
            _ => {}
        }
        let d = 10 + s.rand() % 1500;
        s.run_for(Duration::from_millis(d));
        if k % 150 == 149 {
            // Heal everything; the pair must settle with exactly one node serving.
            s.heal();
            for i in 0..2 {
                s.resume(i);
                s.start(i);
            }
            s.run_for(25_000 * MS);
            for i in 0..2 {
                s.start(i);
            }
            s.run_for(25_000 * MS);
            let n = (0..2).filter(|i| s.serving(*i)).count();
            assert_eq!(
                n,
                1,
                "seed {seed}: after healing, {n} nodes serve\n{}",
                s.dump()
            );
            recoveries += 1;
            // Healed and settled: kill the Active; the Standby must take over within the bound.
            let act = usize::from(s.serving(1));
            assert_eq!(
                s.role(1 - act),
                Some(Role::Standby),
                "seed {seed}\n{}",
                s.dump()
            );
            s.kill(act);
            let took = s.run_until_serving(1 - act, 5000 * MS);
            assert!(
                took.is_some_and(|t| t <= TAKEOVER),
                "seed {seed}: standby took {took:?}\n{}",
                s.dump()
            );
            checked_takeovers += 1;
            times.extend(took.map(|t| t.as_millis()));
            s.start(act);
        }
    }
    assert!(recoveries > 0);
    assert!(checked_takeovers > 0, "the schedule killed no serving node");
    let (p50, max) = p50_max(&times);
    println!(
        "seed {seed}: {} timed takeovers after killing the Active: p50 {p50} ms, max {max} ms \
         (bound {} ms)",
        times.len(),
        TAKEOVER.as_millis()
    );
    assert!(max <= TAKEOVER.as_millis());
    println!(
        "seed {seed} (fencing {fencing}): {faults} faults, {} events, {} s simulated, {} takeovers \
         ({checked_takeovers} timed after killing the Active), highest epoch {}, \
         events serving on lease/acks/fence: {:?}; {} writes acknowledged, {} takeovers checked \
         to hold them all, {} refused to a standby left behind, {} lost by fencing takeovers",
        s.steps,
        s.ms() / 1000,
        s.takeovers,
        s.issued_max.0,
        s.authority_seen,
        s.acked.len(),
        s.loss_checks,
        s.behind_refusals,
        s.fence_lost
    );
    // The schedule must have exercised every kind of authority it can.
    assert!(s.authority_seen[0] > 0 && s.authority_seen[1] > 0);
    assert_eq!(s.authority_seen[2] > 0, fencing);
}

#[test]
fn random_fault_schedules_keep_every_invariant() {
    for seed in 1..=6 {
        random_schedule(seed, false, 3000, [1.0, 1.0]);
    }
}

#[test]
fn random_fault_schedules_with_fencing_keep_every_invariant() {
    for seed in 101..=103 {
        random_schedule(seed, true, 3000, [1.0, 1.0]);
    }
}

#[test]
fn random_fault_schedules_with_clock_drift_within_the_bound() {
    // One node's clock 450 ppm fast, the other's 450 ppm slow against the witness: 900 ppm
    // between the nodes, under the configured bound of 1000 ppm.
    for seed in 201..=203 {
        random_schedule(seed, seed == 203, 3000, [1.0 + 450e-6, 1.0 - 450e-6]);
    }
}

#[test]
fn clock_drift_beyond_the_bound_is_caught_by_the_checker() {
    // The Active's clock runs 30 % slow: it believes its lease lasts longer than the witness
    // does. The drift bound is what the design rests on, and the checker sees the breach.
    let mut s = Sim::new(13);
    s.rate = [0.7, 1.0];
    s.strict = false;
    s.run_for(4000 * MS);
    assert!(s.serving(0));
    s.cut_all(0, true);
    s.run_for(5000 * MS);
    assert!(
        s.violations.iter().any(|v| v.starts_with("SPLIT BRAIN")),
        "{:?}",
        s.violations
    );
    // The same fault with clocks inside the bound: no violation.
    let mut s = Sim::new(13);
    s.rate = [1.0 - 900e-6, 1.0];
    s.strict = false;
    s.run_for(4000 * MS);
    s.cut_all(0, true);
    s.run_for(5000 * MS);
    assert!(s.serving(1));
    assert_eq!(s.violations, Vec::<String>::new());
}

#[test]
fn active_cut_from_its_standby_runs_alone_and_the_standby_left_behind_never_takes_over() {
    let mut s = steady(7, false);
    assert!(
        !s.alone(0),
        "the cold start's mark is cleared once the standby caught up"
    );
    // Both heartbeat paths (and replication) cut, the witness reachable from both: the Active
    // has the witness record that it runs alone, then goes on acknowledging writes.
    s.cuts.path = [true, true];
    s.run_for(3000 * MS);
    assert!(s.serving(0));
    assert!(s.alone(0));
    let local = s.local(0, s.now);
    let st = s.node(0).status(local);
    assert!(st.alone && !st.sync_replication, "{st:?}");
    let acked = s.acked.len();
    s.run_for(2000 * MS);
    assert!(
        s.acked.len() > acked,
        "writes keep being acknowledged alone"
    );
    // The Active dies; the links heal: the standby, which lacks those writes, must not take over.
    s.kill(0);
    s.cuts.path = [false, false];
    s.run_for(10_000 * MS);
    assert!(!s.serving(1));
    let why = s.node(1).status(s.now).blocked.expect("a reason");
    assert!(
        why.starts_with("the witness records that node 1 runs alone since epoch"),
        "{why}"
    );
    // The old Active comes back and resumes (the row lets it), with every write.
    s.start(0);
    let took = s.run_until_serving(0, 10_000 * MS).expect("node 1 resumes");
    println!(
        "running alone, killed: node 1 back and serving after {} ms",
        took.as_millis()
    );
    assert_eq!(
        s.loss_checks, 2,
        "cold start and the resume, every write there"
    );
    // Its standby catches up, the mark is cleared, and a crash now fails over again.
    s.run_for(5000 * MS);
    assert!(!s.alone(0));
    s.kill(0);
    let took = s.run_until_serving(1, 5000 * MS).expect("n2 takes over");
    assert!(took <= TAKEOVER, "{took:?}");
}
