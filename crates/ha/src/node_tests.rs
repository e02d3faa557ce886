//! Unit tests of the role machine on a fake clock (each runs in microseconds to milliseconds).

use std::time::{Duration, Instant};

use super::*;
use crate::witness::{LeaseRequest, WitnessReply};
use crate::{ConfigError, Epoch, LeaseAnswer, LeaseOp};

const MS: Duration = Duration::from_millis(1);
const ME: NodeId = NodeId(1);
const PEER: NodeId = NodeId(2);

fn healthy_replica() -> LocalHealth {
    LocalHealth {
        db: DbHealth::Replica {
            streaming: true,
            lag_bytes: 0,
        },
        sip_bound: true,
        db_epoch: Epoch(0),
    }
}

fn primary(streaming: bool, lag: u64) -> LocalHealth {
    LocalHealth {
        db: DbHealth::Primary {
            standby_streaming: streaming,
            lag_bytes: lag,
        },
        sip_bound: true,
        db_epoch: Epoch(0),
    }
}

/// One node on a fake clock, with everything it output.
struct T {
    node: Node,
    t0: Instant,
    now: Instant,
    out: Vec<(Instant, Output)>,
    peer_seq: u64,
}

impl T {
    fn new(cfg: Config) -> T {
        cfg.validate().expect("valid config");
        let t0 = Instant::now();
        let mut t = T {
            node: Node::new(cfg, t0).expect("valid config"),
            t0,
            now: t0,
            out: Vec::new(),
            peer_seq: 0,
        };
        t.input(Input::Health(healthy_replica()));
        t
    }

    fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    fn drain(&mut self) {
        while let Some(o) = self.node.poll_output() {
            self.out.push((self.now, o));
        }
    }

    fn input(&mut self, i: Input) {
        self.node.handle_input(i, self.now);
        self.drain();
    }

    /// Advance the clock by `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.node.poll_timeout() {
            if t > end {
                break;
            }
            assert!(t >= self.now, "timer in the past");
            self.now = t;
            self.input(Input::Timer);
        }
        self.now = end;
        self.input(Input::Timer);
    }

    /// Advance while the peer sends a heartbeat every 200 ms on `paths`.
    fn advance_with_peer(&mut self, d: Duration, paths: &[u8], role: Role, epoch: u64) {
        let end = self.now + d;
        while self.now < end {
            self.advance(200 * MS);
            let hb = self.peer_hb(role, epoch);
            for p in paths {
                self.input(Input::Heartbeat {
                    path: PathId(*p),
                    heartbeat: hb,
                });
            }
        }
    }

    /// Active with a Standby peer heard on both paths for `rounds` heartbeat rounds; the
    /// witness grants every renewal (and the clear of the "running alone" mark, once the
    /// standby streams and local health, repeated each round, says it caught up).
    fn serve_with_standby(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.advance_with_peer(200 * MS, &[0, 1], Role::Standby, 1);
            let h = self.node.health;
            self.input(Input::Health(h));
            if self.node.lease.busy() {
                self.grant(1);
            }
        }
    }

    fn peer_hb(&mut self, role: Role, epoch: u64) -> Heartbeat {
        self.peer_seq += 1;
        // Ack our latest heartbeat, as a peer in any role but Active does.
        let ack = self.last_sent_seq().map(|seq| Ack {
            incarnation: self.node.config().incarnation,
            seq,
        });
        Heartbeat {
            from: PEER,
            incarnation: 7,
            seq: self.peer_seq,
            role,
            epoch: Epoch(epoch),
            health: Health {
                db: DbHealth::Replica {
                    streaming: true,
                    lag_bytes: 0,
                },
                sip_bound: true,
                ready: role == Role::Standby,
                lease_holder_seen: None,
            },
            ack: (role != Role::Active).then_some(ack).flatten(),
            handover_to: None,
        }
    }

    fn last_sent_seq(&self) -> Option<u64> {
        self.out.iter().rev().find_map(|(_, o)| match o {
            Output::SendHeartbeat { heartbeat, .. } => Some(heartbeat.seq),
            _ => None,
        })
    }

    fn requests(&self) -> Vec<(Instant, LeaseRequest)> {
        self.out
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Witness(r) => Some((*t, *r)),
                _ => None,
            })
            .collect()
    }

    fn last_request(&self) -> LeaseRequest {
        self.requests().last().expect("a lease request").1
    }

    fn answer(&mut self, answer: LeaseAnswer) {
        let id = self.last_request().id;
        self.input(Input::Witness(WitnessReply { id, answer }));
    }

    fn grant(&mut self, token: u64) {
        self.answer(LeaseAnswer::Granted {
            token: Epoch(token),
            ttl: 1500 * MS,
        });
    }

    fn position(&self, pred: impl Fn(&Output) -> bool) -> Option<usize> {
        self.out.iter().position(|(_, o)| pred(o))
    }

    fn events(&self) -> Vec<String> {
        self.out
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Event(e) => Some(e.reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// Make this node Active with `token` (peer silent since start).
    fn make_active(&mut self, token: u64) {
        self.advance(1000 * MS);
        assert_eq!(self.node.role(), Role::Standby);
        assert!(matches!(self.last_request().op, LeaseOp::Acquire { .. }));
        self.grant(token);
        assert_eq!(self.node.role(), Role::Active);
        self.input(Input::Health(primary(true, 0)));
    }
}

/// The timers these tests are written against (the defaults before 2026-12-07; the logic does
/// not depend on them, `defaults_bound_a_crash_gap_under_a_second` checks today's).
fn cfg() -> Config {
    let mut c = Config::new(ME, PEER);
    c.incarnation = 100;
    c.interval = 200 * MS;
    c.dead_after = 1000 * MS;
    c.path_degraded_after = 600 * MS;
    c.lease = 1500 * MS;
    c.expiry_margin = 200 * MS;
    c.witness_timeout = 500 * MS;
    c
}

#[test]
fn defaults_bound_a_crash_gap_under_a_second() {
    let c = Config::new(ME, PEER);
    assert_eq!(c.validate(), Ok(()));
    // A standby takes over when the peer has been silent `dead_after` and the old lease (renewed
    // at most `lease` before the crash) ran out: at most `lease` plus a round trip.
    assert!(c.dead_after < c.lease && c.lease <= 800 * MS, "{c:?}");
    // Three missed heartbeats degrade a path; `dead_after` is six.
    assert_eq!(c.path_degraded_after, c.interval * 3);
    assert_eq!(c.dead_after, c.interval * 6);
    // A renewal sent at a third of the lease is answered (or has timed out) before the
    // authority it extends ends: lease / 3 + witness_timeout < lease − expiry_margin.
    assert!(
        c.lease / 3 + c.witness_timeout < c.lease - c.expiry_margin,
        "{c:?}"
    );
}

#[test]
fn config_defaults_are_valid_and_bad_ones_are_refused_precisely() {
    assert_eq!(cfg().validate(), Ok(()));
    let mut c = cfg();
    c.peer = ME;
    assert_eq!(c.validate(), Err(ConfigError::SameId(1)));
    let mut c = cfg();
    c.paths = 1;
    assert_eq!(c.validate(), Err(ConfigError::Paths(1)));
    let mut c = cfg();
    c.lease = c.dead_after;
    assert!(matches!(c.validate(), Err(ConfigError::Order(m)) if m.contains("lease")));
    let mut c = cfg();
    c.interval = Duration::ZERO;
    assert_eq!(c.validate(), Err(ConfigError::Zero("interval")));
    let mut c = cfg();
    c.hold_down = Duration::MAX;
    assert_eq!(c.validate(), Err(ConfigError::TooLong("hold_down")));
    let mut c = cfg();
    c.node = NodeId(u32::MAX);
    assert!(matches!(c.validate(), Err(ConfigError::Order(m)) if m.contains("32-bit")));
}

#[test]
fn heartbeats_every_interval_on_every_path_with_link() {
    let mut t = T::new(cfg());
    t.advance(1000 * MS);
    let sends: Vec<(u128, u8, u64)> = t
        .out
        .iter()
        .filter_map(|(at, o)| match o {
            Output::SendHeartbeat { path, heartbeat } => {
                Some(((*at - t.t0).as_millis(), path.0, heartbeat.seq))
            }
            _ => None,
        })
        .collect();
    // Rounds at 0, 200, …, 1000 ms (plus one extra round when the role changes at 1000).
    let rounds: Vec<u128> = sends.iter().filter(|s| s.1 == 0).map(|s| s.0).collect();
    assert_eq!(&rounds[..6], &[0, 200, 400, 600, 800, 1000]);
    assert_eq!(
        sends.iter().filter(|s| s.1 == 1).count(),
        rounds.len(),
        "same rounds on path 1"
    );
    // A path whose link is down is not used.
    t.input(Input::PathLink {
        path: PathId(1),
        up: false,
    });
    let before = t.out.len();
    t.advance(400 * MS);
    assert!(t.out[before..].iter().all(|(_, o)| !matches!(
        o,
        Output::SendHeartbeat {
            path: PathId(1),
            ..
        }
    )));
    // The first output of a node is a defensive ReleaseIp.
    assert_eq!(
        t.out[0].1,
        Output::ReleaseIp {
            epoch: Epoch(0),
            graceful: false
        }
    );
}

#[test]
fn one_path_cut_is_reported_but_never_a_takeover() {
    let mut t = T::new(cfg());
    t.advance_with_peer(1000 * MS, &[0, 1], Role::Active, 3);
    assert_eq!(t.node.role(), Role::Standby);
    // Path 0 cut: the peer keeps talking on path 1 only, for 10 s.
    t.advance_with_peer(10_000 * MS, &[1], Role::Active, 3);
    assert_eq!(t.node.role(), Role::Standby);
    assert!(
        t.requests().is_empty(),
        "no lease request while the peer lives"
    );
    assert!(t.events().iter().any(|e| e == "heartbeat path 0 degraded"));
    assert_eq!(t.node.status(t.now).paths, vec![false, true]);
    assert_eq!(t.node.status(t.now).peer_role, Some(Role::Active));
}

#[test]
fn all_paths_silent_for_dead_after_then_acquire_then_take_over_in_order() {
    let mut t = T::new(cfg());
    t.advance_with_peer(2000 * MS, &[0, 1], Role::Active, 3);
    let last_rx = t.now;
    t.advance(999 * MS);
    assert!(t.requests().is_empty(), "dead only after dead_after");
    t.advance(1 * MS);
    let (at, req) = t.requests()[0];
    assert_eq!(at, last_rx + 1000 * MS);
    assert_eq!(
        req.op,
        LeaseOp::Acquire {
            min_token: Epoch(3)
        }
    );
    t.grant(4);
    assert_eq!(t.node.role(), Role::Active);
    let promote = t
        .position(|o| *o == Output::PromoteDb { epoch: Epoch(4) })
        .expect("promote");
    let take = t
        .position(|o| *o == Output::TakeIp { epoch: Epoch(4) })
        .expect("take ip");
    assert!(promote < take);
    assert!(
        t.position(|o| *o == Output::Epoch { epoch: Epoch(4) })
            .is_some()
    );
    assert!(t.node.serving(t.now));
}

#[test]
fn no_lease_and_no_fence_stays_standby_and_says_why() {
    let mut t = T::new(cfg());
    t.advance_with_peer(1200 * MS, &[0, 1], Role::Active, 1);
    t.advance(1000 * MS);
    t.answer(LeaseAnswer::Error("connection refused".into()));
    t.advance(5000 * MS);
    assert_eq!(t.node.role(), Role::Standby);
    assert!(t.position(|o| matches!(o, Output::TakeIp { .. })).is_none());
    let why = t.node.status(t.now).blocked.expect("a reason");
    assert_eq!(
        why,
        "no lease (witness unreachable) and no fencing hook is configured"
    );
    // Unanswered requests time out and are retried, each counted as an error.
    assert!(t.requests().len() >= 5);
    assert!(!t.node.status(t.now).witness_reachable);
}

#[test]
fn denied_lease_stays_standby_and_retries_when_it_should_expire() {
    let mut t = T::new(cfg());
    t.advance(1000 * MS);
    let n = t.requests().len();
    t.answer(LeaseAnswer::Denied {
        holder: Some(PEER),
        token: Epoch(5),
        ttl: 900 * MS,
        alone: None,
    });
    assert_eq!(
        t.node.status(t.now).blocked.as_deref(),
        Some("the witness refuses the lease: held by node 2 (epoch 5)")
    );
    t.advance(899 * MS);
    assert_eq!(t.requests().len(), n);
    t.advance(1 * MS);
    assert_eq!(
        t.last_request().op,
        LeaseOp::Acquire {
            min_token: Epoch(5)
        }
    );
}

#[test]
fn fencing_takes_over_when_the_witness_is_down_and_the_peer_silent() {
    let mut c = cfg();
    c.fencing = true;
    let mut t = T::new(c);
    t.advance_with_peer(1200 * MS, &[0, 1], Role::Active, 6);
    t.advance(1000 * MS);
    t.answer(LeaseAnswer::Error("timeout".into()));
    let id = t
        .out
        .iter()
        .find_map(|(_, o)| match o {
            Output::RunFence { id, peer } if *peer == PEER => Some(*id),
            _ => None,
        })
        .expect("fence run");
    assert_eq!(t.node.role(), Role::Standby);
    t.input(Input::FenceResult {
        id,
        ok: true,
        detail: "ipmi power off".into(),
    });
    assert_eq!(t.node.role(), Role::Active);
    assert!(
        t.position(|o| *o == Output::TakeIp { epoch: Epoch(7) })
            .is_some()
    );
    // Authority by fencing has no end, but it asks the witness for a lease above its epoch.
    t.advance(10_000 * MS);
    assert!(t.node.serving(t.now));
    assert_eq!(
        t.last_request().op,
        LeaseOp::AcquireAfterFence {
            min_token: Epoch(7)
        }
    );
    t.grant(8);
    assert!(
        t.position(|o| *o == Output::Epoch { epoch: Epoch(8) })
            .is_some()
    );
    assert_eq!(t.node.epoch(), Epoch(8));
}

#[test]
fn never_fences_a_peer_it_has_not_heard_or_that_is_alive() {
    let mut c = cfg();
    c.fencing = true;
    let mut t = T::new(c);
    t.advance(1000 * MS);
    t.answer(LeaseAnswer::Error("timeout".into()));
    assert!(
        t.position(|o| matches!(o, Output::RunFence { .. }))
            .is_none()
    );
    assert!(
        t.node
            .status(t.now)
            .blocked
            .expect("reason")
            .contains("never heard")
    );
    // A failed fence leaves it Standby with the reason.
    let mut c = cfg();
    c.fencing = true;
    let mut t = T::new(c);
    t.advance_with_peer(1200 * MS, &[0], Role::Active, 1);
    t.advance(1000 * MS);
    t.answer(LeaseAnswer::Error("timeout".into()));
    let id = t
        .out
        .iter()
        .find_map(|(_, o)| match o {
            Output::RunFence { id, .. } => Some(*id),
            _ => None,
        })
        .expect("fence");
    t.input(Input::FenceResult {
        id,
        ok: false,
        detail: "bmc unreachable".into(),
    });
    assert_eq!(t.node.role(), Role::Standby);
    assert_eq!(
        t.node.status(t.now).blocked.as_deref(),
        Some("no lease and fencing failed: bmc unreachable")
    );
}

#[test]
fn active_renews_every_third_of_the_lease() {
    let mut t = T::new(cfg());
    t.make_active(1);
    let granted_at = t.now;
    for _ in 0..5 {
        t.advance(500 * MS);
        let r = t.last_request();
        assert_eq!(r.op, LeaseOp::Renew { token: Epoch(1) });
        t.grant(1);
    }
    let renews: Vec<u128> = t
        .requests()
        .iter()
        .skip(1)
        .map(|(at, _)| (*at - granted_at).as_millis())
        .collect();
    assert_eq!(renews, vec![500, 1000, 1500, 2000, 2500]);
    assert!(t.node.serving(t.now));
}

#[test]
fn refused_renewal_demotes_at_once_releasing_the_ip_first() {
    let mut t = T::new(cfg());
    t.make_active(1);
    t.advance(500 * MS);
    let before = t.out.len();
    t.answer(LeaseAnswer::Denied {
        holder: Some(PEER),
        token: Epoch(2),
        ttl: 1000 * MS,
        alone: None,
    });
    assert_eq!(t.node.role(), Role::Fenced);
    assert_eq!(
        t.out[before].1,
        Output::ReleaseIp {
            epoch: Epoch(1),
            graceful: false
        }
    );
    assert!(matches!(
        t.out[before + 1].1,
        Output::DemoteDb {
            epoch: Epoch(1),
            ..
        }
    ));
    assert!(!t.node.serving(t.now));
}

#[test]
fn active_that_cannot_renew_stops_before_the_lease_ends_on_the_witness() {
    let mut t = T::new(cfg());
    t.make_active(1);
    // The witness stops answering; the peer is silent too (no promise).
    let mut last_ok_send = t.requests().last().expect("acquire").0;
    loop {
        t.advance(100 * MS);
        if t.node.role() != Role::Active {
            break;
        }
        assert!(t.ms() < 10_000, "never demoted");
        let _ = &mut last_ok_send;
    }
    let released = t
        .out
        .iter()
        .find(|(_, o)| {
            *o == Output::ReleaseIp {
                epoch: Epoch(1),
                graceful: false,
            }
        })
        .expect("release")
        .0;
    // The witness's lease started no earlier than the request's send time.
    let witness_end = last_ok_send + 1500 * MS;
    assert!(
        released + 200 * MS <= witness_end,
        "released at {:?} after send, lease ends 1500 ms after",
        released - last_ok_send
    );
    assert_eq!(t.node.role(), Role::Fenced);
}

#[test]
fn active_frozen_and_resumed_releases_the_ip_before_anything_else() {
    let mut t = T::new(cfg());
    t.make_active(1);
    // SIGSTOP for 5 s: no timers ran. On resume the first thing delivered is a stale heartbeat.
    t.now += 5000 * MS;
    let before = t.out.len();
    // A Standby heartbeat (acking an old heartbeat of ours) that was queued in the socket.
    let hb = t.peer_hb(Role::Standby, 1);
    t.input(Input::Heartbeat {
        path: PathId(0),
        heartbeat: hb,
    });
    assert_eq!(
        t.out[before].1,
        Output::ReleaseIp {
            epoch: Epoch(1),
            graceful: false
        }
    );
    assert_eq!(t.node.role(), Role::Fenced);
    assert!(
        t.position(|o| matches!(o, Output::TakeIp { epoch } if *epoch > Epoch(1)))
            .is_none()
    );
}

#[test]
fn active_demotes_on_a_higher_epoch_from_the_peer() {
    let mut t = T::new(cfg());
    t.make_active(3);
    let hb = t.peer_hb(Role::Active, 4);
    t.input(Input::Heartbeat {
        path: PathId(1),
        heartbeat: hb,
    });
    assert_eq!(t.node.role(), Role::Fenced);
    assert!(
        t.events()
            .iter()
            .any(|e| e.contains("the peer is active with epoch 4"))
    );
    // A lower epoch does not demote (the peer will).
    let mut t = T::new(cfg());
    t.make_active(3);
    let hb = t.peer_hb(Role::Active, 2);
    t.input(Input::Heartbeat {
        path: PathId(1),
        heartbeat: hb,
    });
    assert_eq!(t.node.role(), Role::Active);
}

#[test]
fn active_demotes_when_its_database_holds_a_newer_epoch() {
    let mut t = T::new(cfg());
    t.make_active(3);
    // Its own epoch stamped: nothing happens.
    t.input(Input::Health(LocalHealth {
        db_epoch: Epoch(3),
        ..primary(true, 0)
    }));
    assert_eq!(t.node.role(), Role::Active);
    let from = t.out.len();
    t.input(Input::Health(LocalHealth {
        db_epoch: Epoch(4),
        ..primary(true, 0)
    }));
    assert_eq!(t.node.role(), Role::Fenced);
    let after: Vec<&Output> = t.out[from..].iter().map(|(_, o)| o).collect();
    assert!(
        matches!(
            after.first(),
            Some(Output::ReleaseIp {
                epoch: Epoch(3),
                graceful: false
            })
        ),
        "the address goes first: {after:?}"
    );
    assert!(after.iter().any(|o| matches!(o, Output::DemoteDb { .. })));
    assert!(
        t.events()
            .iter()
            .any(|e| e.contains("the database holds epoch 4, newer than ours (epoch 3)")),
        "{:?}",
        t.events()
    );
    // It never takes over again under an epoch older than its database's.
    assert!(t.node.epoch() >= Epoch(4));
}

#[test]
fn witness_down_active_serves_on_the_peers_acks_and_stops_when_they_stop() {
    let mut t = T::new(cfg());
    t.make_active(1);
    // Witness gone for 20 s; the standby acknowledges our heartbeats.
    t.advance_with_peer(20_000 * MS, &[0, 1], Role::Standby, 1);
    assert_eq!(t.node.role(), Role::Active, "acks keep it serving");
    assert!(t.node.authority_until().is_some_and(|u| u > t.now));
    // The peer goes silent too: the last ack covered our heartbeat sent ≤ 200 ms ago.
    let acked_sent = t
        .out
        .iter()
        .rev()
        .find_map(|(at, o)| match o {
            Output::SendHeartbeat { .. } if *at <= t.now => Some(*at),
            _ => None,
        })
        .expect("sent");
    loop {
        t.advance(10 * MS);
        if t.node.role() != Role::Active {
            break;
        }
    }
    // It stopped before the peer could possibly act (acked send + dead_after).
    assert!(t.now < acked_sent + 1000 * MS);
}

#[test]
fn fenced_waits_hold_down_before_any_takeover() {
    let mut t = T::new(cfg());
    t.make_active(1);
    t.advance(500 * MS);
    t.answer(LeaseAnswer::Denied {
        holder: Some(PEER),
        token: Epoch(2),
        ttl: 1000 * MS,
        alone: None,
    });
    assert_eq!(t.node.role(), Role::Fenced);
    let n = t.requests().len();
    t.advance(9_900 * MS);
    assert_eq!(t.node.role(), Role::Fenced);
    assert_eq!(t.requests().len(), n, "no takeover attempt in hold-down");
    t.advance(100 * MS);
    assert_eq!(t.node.role(), Role::Standby);
    assert!(
        t.requests().len() > n,
        "peer silent: tries again after hold-down"
    );
}

#[test]
fn switchover_is_refused_with_reasons_then_hands_over_gracefully() {
    let mut t = T::new(cfg());
    t.make_active(1);
    t.input(Input::Command(Command::Switchover));
    assert!(
        t.events()
            .last()
            .expect("event")
            .starts_with("switchover refused: in hold-down")
    );
    // Past the hold-down, with the standby heard on both paths and the lease renewed.
    t.serve_with_standby(60);
    assert_eq!(t.node.switchover_readiness(t.now), Ok(()));
    t.input(Input::Health(primary(false, 0)));
    assert_eq!(
        t.node.switchover_readiness(t.now),
        Err(NotReady::NotReplicating)
    );
    t.input(Input::Health(primary(true, 5 << 20)));
    assert_eq!(
        t.node.switchover_readiness(t.now),
        Err(NotReady::Lagging {
            lag: 5 << 20,
            max: 1 << 20
        })
    );
    t.input(Input::Health(primary(true, 1000)));
    // Path 1 goes quiet: degraded after 600 ms.
    t.advance_with_peer(800 * MS, &[0], Role::Standby, 1);
    if t.node.lease.busy() {
        t.grant(1);
    }
    assert_eq!(
        t.node.switchover_readiness(t.now),
        Err(NotReady::PathDegraded(1))
    );
    t.advance_with_peer(200 * MS, &[0, 1], Role::Standby, 1);
    if t.node.lease.busy() {
        t.grant(1);
    }
    assert_eq!(t.node.switchover_readiness(t.now), Ok(()));
    t.input(Input::Command(Command::Switchover));
    assert_eq!(
        t.out.last().map(|o| &o.1),
        Some(&Output::Status(t.node.status(t.now)))
    );
    assert!(t.position(|o| *o == Output::StopNewWork).is_some());
    assert_eq!(
        t.node.role(),
        Role::Active,
        "still active while catching up"
    );
    // The standby has everything: hand over.
    let before = t.out.len();
    t.input(Input::Health(primary(true, 0)));
    assert_eq!(t.node.role(), Role::Standby);
    // Graceful: the driver may drain the address (make-before-break), as never on a failure.
    assert_eq!(
        t.out[before].1,
        Output::ReleaseIp {
            epoch: Epoch(1),
            graceful: true
        }
    );
    assert_eq!(t.last_request().op, LeaseOp::Release { token: Epoch(1) });
    // Not offered while the release is in flight: the standby's acquire could reach the
    // witness first and be refused.
    t.advance(100 * MS);
    let offers = |out: &[(Instant, Output)]| {
        out.iter()
            .filter(|(_, o)| {
                matches!(o, Output::SendHeartbeat { heartbeat, .. } if heartbeat.handover_to.is_some())
            })
            .count()
    };
    assert_eq!(offers(&t.out[before..]), 0);
    assert!(
        t.node.status(t.now).switching,
        "still switching until offered"
    );
    // The witness confirms the release: the offer leaves at once, on every path.
    let before = t.out.len();
    let at = t.now;
    t.answer(LeaseAnswer::Granted {
        token: Epoch(1),
        ttl: Duration::ZERO,
    });
    assert_eq!(offers(&t.out[before..]), 2);
    assert!(t.out[before..].iter().all(|(when, _)| *when == at));
    assert!(!t.node.status(t.now).switching);
    let offered = t.out.iter().rev().find_map(|(_, o)| match o {
        Output::SendHeartbeat { heartbeat, .. } => Some(heartbeat.handover_to),
        _ => None,
    });
    assert_eq!(offered, Some(Some(PEER)));
}

#[test]
fn handover_is_offered_even_when_the_witness_does_not_answer_the_release() {
    let mut t = T::new(cfg());
    t.make_active(1);
    t.serve_with_standby(60);
    t.input(Input::Health(primary(true, 1000)));
    t.input(Input::Command(Command::Switchover));
    t.input(Input::Health(primary(true, 0)));
    assert_eq!(t.node.role(), Role::Standby);
    assert_eq!(t.last_request().op, LeaseOp::Release { token: Epoch(1) });
    let before = t.out.len();
    // witness_timeout (500 ms) passes: the release failed; the peer acquires when the lease
    // has run out, so the handover is offered anyway.
    t.advance(600 * MS);
    let offered = t.out[before..].iter().any(|(_, o)| {
        matches!(o, Output::SendHeartbeat { heartbeat, .. } if heartbeat.handover_to == Some(PEER))
    });
    assert!(offered);
    assert_eq!(
        t.node.role(),
        Role::Standby,
        "and it does not take over itself"
    );
}

#[test]
fn switchover_aborts_and_resumes_when_the_standby_does_not_catch_up() {
    let mut t = T::new(cfg());
    t.make_active(1);
    t.serve_with_standby(55);
    t.input(Input::Health(primary(true, 4096)));
    t.input(Input::Command(Command::Switchover));
    assert!(t.position(|o| *o == Output::StopNewWork).is_some());
    t.serve_with_standby(16);
    assert!(t.position(|o| *o == Output::ResumeWork).is_some());
    assert_eq!(t.node.role(), Role::Active);
    assert!(
        t.events()
            .iter()
            .any(|e| e == "switchover aborted: the standby did not catch up within 3000 ms")
    );
}

#[test]
fn standby_takes_the_handed_over_lease_at_once() {
    let mut t = T::new(cfg());
    t.advance_with_peer(2000 * MS, &[0, 1], Role::Active, 4);
    let n = t.requests().len();
    t.advance(100 * MS);
    let mut hb = t.peer_hb(Role::Standby, 4);
    hb.handover_to = Some(ME);
    t.input(Input::Heartbeat {
        path: PathId(0),
        heartbeat: hb,
    });
    assert_eq!(t.requests().len(), n + 1);
    assert_eq!(
        t.last_request().op,
        LeaseOp::Acquire {
            min_token: Epoch(4)
        }
    );
    t.grant(5);
    assert_eq!(t.node.role(), Role::Active);
}

#[test]
fn cold_start_the_preferred_node_acquires_the_other_waits() {
    let mut c = cfg();
    c.preferred = Some(PEER);
    let mut t = T::new(c);
    // Both starting and hearing each other: this node is not preferred.
    t.advance_with_peer(1000 * MS, &[0, 1], Role::Starting, 0);
    t.advance_with_peer(2000 * MS, &[0, 1], Role::Standby, 0);
    assert!(t.requests().is_empty());
    // The preferred node never became Active: after 2 × dead_after + lease this one tries.
    t.advance_with_peer(2000 * MS, &[0, 1], Role::Standby, 0);
    assert_eq!(t.requests().len(), 1);
    // The preferred node (ourselves now) acquires as soon as Starting ends.
    let mut c = cfg();
    c.preferred = Some(ME);
    let mut t = T::new(c);
    t.advance_with_peer(1200 * MS, &[0, 1], Role::Starting, 0);
    assert_eq!(t.requests().len(), 1);
    assert!(
        (t.requests()[0].0 - t.t0) <= 1000 * MS,
        "right after Starting"
    );
}

#[test]
fn maintenance_never_takes_over_and_is_refused_on_the_active() {
    let mut t = T::new(cfg());
    t.input(Input::Command(Command::MaintenanceOn));
    assert_eq!(t.node.role(), Role::Maintenance);
    t.advance(5000 * MS);
    assert!(t.requests().is_empty());
    t.input(Input::Command(Command::MaintenanceOff));
    assert_eq!(t.node.role(), Role::Standby);
    t.advance(10 * MS);
    assert_eq!(t.requests().len(), 1);
    t.grant(1);
    t.input(Input::Command(Command::MaintenanceOn));
    assert_eq!(t.node.role(), Role::Active);
    assert!(
        t.events()
            .iter()
            .any(|e| e == "maintenance refused: this node is active, switch over first")
    );
}

#[test]
fn stale_reordered_and_foreign_heartbeats_are_ignored() {
    let mut t = T::new(cfg());
    t.advance(100 * MS);
    let new = t.peer_hb(Role::Active, 5);
    let mut old = new;
    old.seq -= 1;
    old.role = Role::Standby;
    t.input(Input::Heartbeat {
        path: PathId(0),
        heartbeat: new,
    });
    t.input(Input::Heartbeat {
        path: PathId(1),
        heartbeat: old,
    });
    assert_eq!(t.node.status(t.now).peer_role, Some(Role::Active));
    assert_eq!(
        t.node.status(t.now).paths,
        vec![true, false],
        "stale proves no path"
    );
    let mut foreign = t.peer_hb(Role::Standby, 9);
    foreign.from = NodeId(3);
    t.input(Input::Heartbeat {
        path: PathId(1),
        heartbeat: foreign,
    });
    assert_eq!(t.node.epoch(), Epoch(5));
    // A path index beyond the configured paths is ignored.
    let hb = t.peer_hb(Role::Active, 5);
    t.input(Input::Heartbeat {
        path: PathId(9),
        heartbeat: hb,
    });
}

#[test]
fn poll_timeout_is_always_in_the_future_after_an_input() {
    let mut t = T::new(cfg());
    for i in 0..200 {
        t.advance(37 * MS);
        if i % 7 == 0 && t.node.lease.busy() {
            t.answer(LeaseAnswer::Error("x".into()));
        }
        let next = t.node.poll_timeout().expect("always a heartbeat");
        assert!(next > t.now);
    }
}

#[test]
fn active_with_a_failed_database_hands_over_to_a_standby_that_can_serve() {
    let mut t = T::new(cfg());
    t.make_active(1);
    t.serve_with_standby(3);
    let mut down = primary(false, 0);
    down.db = DbHealth::Down;
    t.input(Input::Health(down));
    t.serve_with_standby(4);
    assert_eq!(t.node.role(), Role::Active, "not before dead_after");
    let before = t.out.len();
    t.serve_with_standby(2);
    assert_eq!(t.node.role(), Role::Standby);
    let after: Vec<&Output> = t.out[before..].iter().map(|(_, o)| o).collect();
    assert!(matches!(
        after
            .iter()
            .find(|o| !matches!(o, Output::SendHeartbeat { .. } | Output::Witness(_))),
        Some(Output::ReleaseIp { .. })
    ));
    assert!(
        t.requests()
            .iter()
            .any(|(_, r)| r.op == LeaseOp::Release { token: Epoch(1) })
    );
    assert!(
        t.events()
            .iter()
            .any(|e| e.starts_with("active → standby: local database down for 1000 ms"))
    );
}

#[test]
fn active_with_a_failed_database_stays_when_the_standby_cannot_serve() {
    let mut t = T::new(cfg());
    t.make_active(1);
    let mut down = primary(false, 0);
    down.db = DbHealth::Down;
    t.input(Input::Health(down));
    // The peer is silent: nobody to hand over to.
    t.advance(1000 * MS);
    t.grant(1);
    t.advance(1000 * MS);
    assert_eq!(t.node.role(), Role::Active);
}

#[test]
fn status_serialises_for_the_api() {
    let mut t = T::new(cfg());
    t.make_active(3);
    let json = serde_json::to_value(t.node.status(t.now)).expect("json");
    assert_eq!(json["role"], "active");
    assert_eq!(json["epoch"], 3);
    assert_eq!(json["authority"], "lease");
    assert_eq!(json["paths"], serde_json::json!([false, false]));
    assert_eq!(json["peer_role"], serde_json::Value::Null);
}

#[test]
fn an_offered_handover_is_taken_at_once_even_after_a_refused_attempt() {
    let mut t = T::new(cfg());
    // The peer is active.
    t.advance_with_peer(1200 * MS, &[0, 1], Role::Active, 3);
    assert_eq!(t.node.role(), Role::Standby);
    // It demotes for a switchover: its first heartbeat says standby, before its offer (which
    // waits for the witness's answer to its lease release). This node, designated, tries by
    // itself and is refused: the lease is not released yet.
    let hb = t.peer_hb(Role::Standby, 3);
    t.input(Input::Heartbeat {
        path: PathId(0),
        heartbeat: hb,
    });
    let n = t.requests().len();
    if t.node.lease.busy() {
        assert!(matches!(t.last_request().op, LeaseOp::Acquire { .. }));
        t.answer(LeaseAnswer::Denied {
            holder: Some(PEER),
            token: Epoch(3),
            ttl: 1400 * MS,
            alone: None,
        });
    }
    t.advance(5 * MS);
    // The offer arrives: the node asks for the freed lease at once, not after the refusal's
    // back-off.
    let mut hb = t.peer_hb(Role::Standby, 3);
    hb.handover_to = Some(ME);
    let before = t.requests().len();
    t.input(Input::Heartbeat {
        path: PathId(0),
        heartbeat: hb,
    });
    let reqs = t.requests();
    assert!(
        reqs.len() > before,
        "no acquire on the offer (had {n} before)"
    );
    let (at, req) = reqs.last().expect("request");
    assert_eq!(*at, t.now);
    assert!(matches!(req.op, LeaseOp::Acquire { .. }));
    t.grant(4);
    assert_eq!(t.node.role(), Role::Active);
}

// ---- running alone (`alone.rs`) ---------------------------------------------------------------

fn sync_outputs(t: &T, from: usize) -> Vec<bool> {
    t.out[from..]
        .iter()
        .filter_map(|(_, o)| match o {
            Output::SetSyncReplication { on } => Some(*on),
            _ => None,
        })
        .collect()
}

/// Active (token 1) with its standby streaming: synchronous replication on, the acquire's
/// "running alone" mark cleared. Then the standby falls silent; renewals are granted until the
/// mark is asked for. Returns the output index where the silence began.
fn active_then_standby_lost(t: &mut T) -> usize {
    t.make_active(1);
    t.serve_with_standby(10);
    let st = t.node.status(t.now);
    assert!(st.sync_replication && !st.alone, "{st:?}");
    assert!(
        t.requests()
            .iter()
            .any(|(_, r)| r.op == LeaseOp::ClearAlone { token: Epoch(1) })
    );
    let from = t.out.len();
    for _ in 0..12 {
        t.advance(100 * MS);
        if t.node.lease.busy() {
            if t.last_request().op == (LeaseOp::MarkAlone { token: Epoch(1) }) {
                return from;
            }
            t.grant(1);
        }
    }
    panic!(
        "no MarkAlone after the standby fell silent: {:?}",
        t.requests()
    );
}

#[test]
fn sync_goes_off_only_after_the_witness_records_running_alone() {
    let mut t = T::new(cfg());
    let from = active_then_standby_lost(&mut t);
    // Asked, not answered: synchronous replication stays on (writes wait).
    assert_eq!(sync_outputs(&t, from), Vec::<bool>::new());
    assert!(t.node.status(t.now).sync_replication);
    assert!(
        t.events()
            .iter()
            .any(|e| e.contains("writes wait until the witness records"))
    );
    let before = t.out.len();
    t.grant(1);
    assert_eq!(sync_outputs(&t, before), vec![false]);
    let st = t.node.status(t.now);
    assert!(!st.sync_replication && st.alone, "{st:?}");
    assert!(
        t.events()
            .last()
            .expect("event")
            .starts_with("synchronous replication off: running alone, recorded by the witness")
    );
}

#[test]
fn a_refused_mark_demotes_without_turning_sync_off() {
    let mut t = T::new(cfg());
    let from = active_then_standby_lost(&mut t);
    t.answer(LeaseAnswer::Denied {
        holder: Some(PEER),
        token: Epoch(2),
        ttl: 800 * MS,
        alone: Some((PEER, Epoch(2))),
    });
    assert_eq!(t.node.role(), Role::Fenced);
    assert_eq!(sync_outputs(&t, from), Vec::<bool>::new());
    assert!(t.out[from..].iter().any(|(_, o)| *o
        == Output::DemoteDb {
            epoch: Epoch(1),
            keep: false
        }));
}

#[test]
fn an_unanswered_mark_keeps_sync_on_until_authority_ends_then_stops_without_releasing_commits() {
    let mut t = T::new(cfg());
    let from = active_then_standby_lost(&mut t);
    // The witness never answers again (its requests time out); the standby stays silent.
    for _ in 0..30 {
        t.advance(100 * MS);
        if t.node.role() != Role::Active {
            break;
        }
    }
    assert_eq!(t.node.role(), Role::Fenced);
    assert_eq!(
        sync_outputs(&t, from),
        Vec::<bool>::new(),
        "commits waiting for the standby are never released"
    );
    assert!(t.out[from..].iter().any(|(_, o)| *o
        == Output::DemoteDb {
            epoch: Epoch(1),
            keep: false
        }));
}

#[test]
fn standby_back_sync_on_and_the_mark_cleared_only_after_it_caught_up() {
    let mut t = T::new(cfg());
    active_then_standby_lost(&mut t);
    t.grant(1);
    assert!(t.node.status(t.now).alone);
    // Stopping now would keep the database (the only copy of what was acknowledged alone).
    // The standby is back, streaming but behind: sync on at once, no clear.
    let from = t.out.len();
    t.input(Input::Health(primary(true, 4096)));
    t.advance_with_peer(200 * MS, &[0, 1], Role::Standby, 1);
    assert_eq!(sync_outputs(&t, from), vec![true]);
    let clears = |t: &T| {
        t.requests()
            .iter()
            .filter(|(_, r)| r.op == LeaseOp::ClearAlone { token: Epoch(1) })
            .count()
    };
    let cleared_before = clears(&t);
    for _ in 0..5 {
        t.advance_with_peer(200 * MS, &[0, 1], Role::Standby, 1);
        t.input(Input::Health(primary(true, 4096)));
        if t.node.lease.busy() {
            t.grant(1);
        }
    }
    assert_eq!(clears(&t), cleared_before, "not before it caught up");
    assert!(t.node.status(t.now).alone);
    // Past the hold-down, everything else ready: a switchover is refused while the row says
    // the standby may lack writes (the witness would refuse it the lease).
    for _ in 0..50 {
        t.advance_with_peer(200 * MS, &[0, 1], Role::Standby, 1);
        t.input(Input::Health(primary(true, 4096)));
        if t.node.lease.busy() {
            t.grant(1);
        }
    }
    assert_eq!(
        t.node.switchover_readiness(t.now),
        Err(NotReady::RunningAlone)
    );
    // Caught up: the clear goes out; until it is answered, the mark counts.
    if t.node.lease.busy() {
        t.grant(1);
    }
    t.input(Input::Health(primary(true, 0)));
    assert_eq!(clears(&t), cleared_before + 1);
    assert!(t.node.status(t.now).alone);
    t.grant(1);
    let st = t.node.status(t.now);
    assert!(st.sync_replication && !st.alone, "{st:?}");
}

#[test]
fn a_clear_without_an_answer_needs_a_new_mark_before_sync_goes_off() {
    // The peer counts as dead sooner than the lease runs out, so the mark can still be asked.
    let mut c = cfg();
    c.dead_after = 600 * MS;
    let mut t = T::new(c);
    active_then_standby_lost(&mut t);
    t.grant(1);
    t.input(Input::Health(primary(true, 0)));
    for _ in 0..3 {
        t.advance_with_peer(200 * MS, &[0, 1], Role::Standby, 1);
        t.input(Input::Health(primary(true, 0)));
        if t.node.lease.busy() && t.last_request().op != (LeaseOp::ClearAlone { token: Epoch(1) }) {
            t.grant(1);
        }
    }
    assert_eq!(t.last_request().op, LeaseOp::ClearAlone { token: Epoch(1) });
    // The clear's answer is lost (it may or may not have reached the row) and the standby
    // falls silent again: sync stays on until a new mark is granted. (Clears asked again while
    // the standby still counts as alive are lost too.)
    let from = t.out.len();
    t.answer(LeaseAnswer::Error("no answer within 500 ms".into()));
    for _ in 0..30 {
        t.advance(100 * MS);
        if !t.node.lease.busy() {
            continue;
        }
        match t.last_request().op {
            LeaseOp::MarkAlone { .. } => break,
            LeaseOp::ClearAlone { .. } => t.answer(LeaseAnswer::Error("lost".into())),
            _ => t.grant(1),
        }
    }
    assert_eq!(t.last_request().op, LeaseOp::MarkAlone { token: Epoch(1) });
    assert_eq!(sync_outputs(&t, from), Vec::<bool>::new());
    t.grant(1);
    assert_eq!(sync_outputs(&t, from), vec![false]);
}

#[test]
fn stopping_while_running_alone_keeps_the_database() {
    let mut t = T::new(cfg());
    active_then_standby_lost(&mut t);
    t.grant(1);
    let from = t.out.len();
    // The witness refuses the next renewal (an operator reset it, say): demoted at once.
    for _ in 0..5 {
        t.advance(100 * MS);
        if t.node.lease.busy() {
            break;
        }
    }
    t.answer(LeaseAnswer::Denied {
        holder: None,
        token: Epoch(1),
        ttl: Duration::ZERO,
        alone: Some((ME, Epoch(1))),
    });
    assert_eq!(t.node.role(), Role::Fenced);
    assert!(t.out[from..].iter().any(|(_, o)| *o
        == Output::DemoteDb {
            epoch: Epoch(1),
            keep: true
        }));
}

#[test]
fn the_standby_left_behind_is_refused_with_the_reason_until_the_mark_is_gone() {
    let mut t = T::new(cfg());
    // The peer was Active, then falls silent.
    t.advance_with_peer(2000 * MS, &[0, 1], Role::Active, 3);
    t.advance(1100 * MS);
    assert!(matches!(t.last_request().op, LeaseOp::Acquire { .. }));
    t.answer(LeaseAnswer::Denied {
        holder: Some(PEER),
        token: Epoch(3),
        ttl: Duration::ZERO,
        alone: Some((PEER, Epoch(3))),
    });
    assert_eq!(t.node.role(), Role::Standby);
    let why = t.node.status(t.now).blocked.expect("a reason");
    assert!(
        why.starts_with("the witness records that node 2 runs alone since epoch 3"),
        "{why}"
    );
    assert!(t.events().contains(&why));
    // It keeps asking (at lease / 3) and is refused each time; nothing else moves.
    let n = t.requests().len();
    t.advance(500 * MS);
    assert_eq!(t.requests().len(), n + 1);
    t.answer(LeaseAnswer::Denied {
        holder: Some(PEER),
        token: Epoch(3),
        ttl: Duration::ZERO,
        alone: Some((PEER, Epoch(3))),
    });
    assert_eq!(t.node.role(), Role::Standby);
    assert!(t.position(|o| matches!(o, Output::TakeIp { .. })).is_none());
    // The row no longer says so (the peer came back, caught this node up and cleared it, then
    // died): the lease is granted.
    t.advance(500 * MS);
    t.grant(4);
    assert_eq!(t.node.role(), Role::Active);
    assert!(
        t.node.status(t.now).alone,
        "an acquire records the new holder alone"
    );
}
