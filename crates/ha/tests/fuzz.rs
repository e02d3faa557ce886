//! Bounded fuzzing in the normal test run: the heartbeat decoder (it reads the network) and the
//! role machine (any input, in any order, at any time) must never panic, and must keep their
//! contracts: what decodes re-encodes identically; the next deadline is always in the future.

use std::time::{Duration, Instant};

use ha::{
    Ack, Command, Config, DbHealth, Epoch, Health, Heartbeat, Input, LeaseAnswer, LocalHealth,
    Node, NodeId, PathId, Role, WIRE_LEN, WitnessReply,
};
use proptest::prelude::*;

const KEY: &[u8] = b"fuzz key";

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(vec![
        Role::Starting,
        Role::Standby,
        Role::Active,
        Role::Fenced,
        Role::Maintenance,
    ])
}

fn db() -> impl Strategy<Value = DbHealth> {
    prop_oneof![
        Just(DbHealth::Down),
        (any::<bool>(), any::<u64>()).prop_map(|(s, l)| DbHealth::Primary {
            standby_streaming: s,
            lag_bytes: l
        }),
        (any::<bool>(), any::<u64>()).prop_map(|(s, l)| DbHealth::Replica {
            streaming: s,
            lag_bytes: l
        }),
    ]
}

prop_compose! {
    fn heartbeat()(from in 0u32..4, incarnation in 0u64..3, seq in 0u64..50, role in role(),
                   epoch in prop_oneof![0u64..10, Just(u64::MAX)], db in db(), sip in any::<bool>(), ready in any::<bool>(),
                   holder in prop::option::of(0u32..4), ack in prop::option::of((0u64..3, 0u64..50)),
                   handover in prop::option::of(0u32..4)) -> Heartbeat {
        Heartbeat {
            from: NodeId(from),
            incarnation,
            seq,
            role,
            epoch: Epoch(epoch),
            health: Health { db, sip_bound: sip, ready, lease_holder_seen: holder.map(NodeId) },
            ack: ack.map(|(incarnation, seq)| Ack { incarnation, seq }),
            handover_to: handover.map(NodeId),
        }
    }
}

fn answer() -> impl Strategy<Value = LeaseAnswer> {
    prop_oneof![
        (prop_oneof![0u64..10, Just(u64::MAX)], 0u64..3000).prop_map(|(t, ms)| {
            LeaseAnswer::Granted {
                token: Epoch(t),
                ttl: Duration::from_millis(ms),
            }
        }),
        (
            prop::option::of(0u32..4),
            0u64..10,
            0u64..3000,
            prop::option::of((0u32..4, 0u64..10))
        )
            .prop_map(|(h, t, ms, alone)| {
                LeaseAnswer::Denied {
                    holder: h.map(NodeId),
                    token: Epoch(t),
                    ttl: Duration::from_millis(ms),
                    alone: alone.map(|(n, e)| (NodeId(n), Epoch(e))),
                }
            }),
        Just(LeaseAnswer::Error("refused".to_string())),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (0u8..3, heartbeat()).prop_map(|(p, heartbeat)| Input::Heartbeat { path: PathId(p), heartbeat }),
        1 => (0u8..3, any::<bool>()).prop_map(|(p, up)| Input::PathLink { path: PathId(p), up }),
        3 => (0u64..12, answer()).prop_map(|(id, answer)| Input::Witness(WitnessReply { id, answer })),
        1 => (0u64..4, any::<bool>()).prop_map(|(id, ok)| Input::FenceResult { id, ok, detail: String::new() }),
        1 => prop::sample::select(vec![Command::Switchover, Command::MaintenanceOn, Command::MaintenanceOff]).prop_map(Input::Command),
        2 => (db(), any::<bool>(), 0u64..10).prop_map(|(db, sip_bound, e)| Input::Health(LocalHealth { db, sip_bound, db_epoch: Epoch(e) })),
        3 => Just(Input::Timer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Heartbeat::decode(&bytes, KEY);
    }

    #[test]
    fn heartbeats_round_trip_and_any_corruption_is_refused(hb in heartbeat(), at in 0usize..WIRE_LEN, bit in 0u8..8) {
        let wire = hb.encode(KEY);
        prop_assert_eq!(Heartbeat::decode(&wire, KEY), Ok(hb));
        let mut bad = wire.clone();
        bad[at] ^= 1 << bit;
        prop_assert!(Heartbeat::decode(&bad, KEY).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_role_machine_takes_any_input_sequence(
        steps in prop::collection::vec((input(), 0u64..1500), 1..120),
        fencing in any::<bool>(),
    ) {
        let mut cfg = Config::new(NodeId(1), NodeId(2));
        cfg.fencing = fencing;
        let t0 = Instant::now();
        let mut now = t0;
        let mut node = Node::new(cfg, now).expect("valid config");
        let mut ip = false;
        for (input, advance) in steps {
            now += Duration::from_millis(advance);
            node.handle_input(input, now);
            while let Some(o) = node.poll_output() {
                match o {
                    ha::Output::TakeIp { .. } => ip = true,
                    ha::Output::ReleaseIp { .. } => ip = false,
                    _ => {}
                }
            }
            // Contracts: a deadline ahead; the IP only on an Active, which serves.
            prop_assert!(node.poll_timeout().is_some_and(|t| t > now));
            prop_assert_eq!(ip, node.role() == Role::Active);
            if node.role() == Role::Active {
                prop_assert!(node.serving(now));
            }
        }
    }
}
