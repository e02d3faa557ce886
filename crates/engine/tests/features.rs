//! Feature codes and time conditions on a fake clock: the dialplan recognises codes first,
//! a time condition picks its destination by the `now` the engine is given, `*28` + index
//! flips a condition (database op out, prompt, hang-up; the reload brings it in), forward and DND codes
//! ask the database to store the change, and codes owned by modules not wired yet answer
//! "not valid" instead of failing the call.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use engine::Input;
use engine::dialplan::{Decision, Destination, RouteRequest, route};
use engine::features::{FeatureAction, FeatureTable};
use engine::hunt::ForwardKind;
use engine::media::{EndpointId, MediaCommand, MediaEvent, PlayItem};
use engine::timecond::{Calendar, Mode, TimeCond, parse_tz};
use sip::Message;

const CALLER: &str = "192.0.2.21:5060";

/// Tue 2026-12-08 10:00 JST (open) and 20:00 JST (closed).
fn tuesday(hour_jst: u64) -> SystemTime {
    // 2026-12-08T00:00:00+09:00 = 1796655600.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_655_600 + hour_jst * 3600)
}

fn office() -> TimeCond {
    TimeCond {
        name: "office".into(),
        index: 1,
        weekly: vec!["mon-fri 09:00-18:00".parse().expect("range")],
        dates: vec![],
        use_holidays: true,
        matched: Destination::Ext("1002".into()),
        unmatched: Destination::Vm("1002".into()),
        mode: Mode::Auto,
    }
}

fn snap_with_office() -> engine::Snapshot {
    let mut s = snapshot();
    s.codes.timeconds.insert((1, "office".into()), office());
    s.codes
        .timezones
        .insert(1, parse_tz("Asia/Tokyo").expect("tz"));
    s.codes.calendars.insert(
        1,
        Calendar {
            japan: true,
            ..Calendar::default()
        },
    );
    s.apps
        .numbers
        .insert((1, "600".into()), Destination::Timecond("office".into()));
    s
}

fn decide(s: &engine::Snapshot, digits: &str, at: SystemTime) -> Decision {
    route(
        &RouteRequest {
            tenant: 1,
            caller: "1001",
            digits,
            at,
        },
        s,
    )
}

fn dest(d: &Decision) -> String {
    match d {
        Decision::Route { destination, .. } => destination.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn dialplan_recognises_feature_codes_before_numbers() {
    let mut s = snap_with_office();
    let d = decide(&s, "**1002", tuesday(10));
    let Decision::Feature { feature, reason } = d else {
        panic!("a feature: {d:?}");
    };
    assert_eq!(feature.action, FeatureAction::DirectedPickup);
    assert_eq!(feature.arg, "1002");
    assert_eq!(reason, "feature code ** (directed_pickup)");
    // A changed code: the old one is an ordinary (unknown) number again.
    let t = FeatureTable::default()
        .with(
            FeatureAction::DayNight,
            Some("#28"),
            [("extension", "1001")],
        )
        .expect("free code");
    s.codes.tables.insert(1, t);
    assert!(matches!(
        decide(&s, "#281", tuesday(10)),
        Decision::Feature { .. }
    ));
    assert!(matches!(
        decide(&s, "*281", tuesday(10)),
        Decision::Reject { status: 404, .. }
    ));
    // Extensions still route.
    assert_eq!(dest(&decide(&s, "1002", tuesday(10))), "ext:1002");
}

#[test]
fn time_condition_follows_the_clock() {
    let s = snap_with_office();
    let day = decide(&s, "600", tuesday(10));
    assert_eq!(dest(&day), "ext:1002");
    let Decision::Route { reason, .. } = &day else {
        panic!()
    };
    assert!(
        reason.contains("timecond office: day (2026-12-08 10:00 JST: within mon-fri 09:00-18:00)"),
        "{reason}"
    );
    assert_eq!(dest(&decide(&s, "600", tuesday(20))), "vm:1002");
    // Monday 2026-11-23 勤労感謝の日, 10:00 JST: a holiday, closed.
    let holiday =
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_655_600 - 15 * 86_400 + 10 * 3600);
    let d = decide(&s, "600", holiday);
    assert_eq!(dest(&d), "vm:1002", "{d:?}");
}

#[test]
fn chained_and_missing_time_conditions() {
    let mut s = snap_with_office();
    let mut a = office();
    a.name = "a".into();
    a.matched = Destination::Timecond("b".into());
    let mut b = office();
    b.name = "b".into();
    b.matched = Destination::Timecond("a".into());
    s.codes.timeconds.insert((1, "a".into()), a);
    s.codes.timeconds.insert((1, "b".into()), b);
    s.apps
        .numbers
        .insert((1, "601".into()), Destination::Timecond("a".into()));
    s.apps
        .numbers
        .insert((1, "602".into()), Destination::Timecond("gone".into()));
    assert!(matches!(
        decide(&s, "601", tuesday(10)),
        Decision::Reject { status: 482, .. }
    ));
    assert!(matches!(
        decide(&s, "601", tuesday(20)),
        Decision::Route {
            destination: Destination::Vm(_),
            ..
        }
    ));
    assert!(matches!(
        decide(&s, "602", tuesday(10)),
        Decision::Reject { status: 404, .. }
    ));
}

fn setup() -> Harness {
    let mut h = Harness::with(snap_with_office());
    h.now.wall = tuesday(10);
    let c = format!("<sip:1001@{CALLER}>");
    assert_eq!(
        h.register("1001", Some(&c), Some(3600), CALLER, SEG1)
            .status,
        200
    );
    h.sent.clear();
    h.media_log.clear();
    h
}

/// What the driver does after the store wrote a mode: the codes configuration is reloaded.
fn reload_mode(h: &mut Harness, mode: Mode) {
    let mut codes = h.engine.snapshot().codes.clone();
    if let Some(t) = codes.timeconds.get_mut(&(1, "office".to_string())) {
        t.mode = mode;
    }
    h.input(Input::Config(engine::ConfigUpdate::Codes(codes)));
}

fn played(h: &Harness) -> Vec<(EndpointId, u64, String)> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play {
                endpoint,
                id,
                items,
                ..
            } => Some((
                *endpoint,
                *id,
                items
                    .iter()
                    .map(|i| match i {
                        PlayItem::Prompt { id, .. } => id.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
            )),
            _ => None,
        })
        .collect()
}

/// Dials `code`, checks the call is answered, the prompt plays, and the call ends with a BYE
/// once it has played. Returns the prompt.
fn dial_feature(h: &mut Harness, code: &str, call_id: &str) -> String {
    let sent = h.dial(&Dial {
        from: "1001",
        to: code,
        source: CALLER,
        local: SEG1,
        call_id,
    });
    h.sent = sent;
    assert!(
        h.sent.iter().any(|s| matches!(&s.message,
            Message::Response(r) if r.status == 200)),
        "the feature call is answered: {:?}",
        h.responses()
    );
    let (ep, id, prompt) = played(h).pop().expect("a prompt plays");
    h.sent.clear();
    h.input(Input::Media(MediaEvent::PlayDone {
        endpoint: ep,
        id,
        interrupted: false,
    }));
    assert_eq!(h.requests("BYE").len(), 1, "hung up after the prompt");
    assert_eq!(h.engine.active_calls(), 0);
    h.media_log.clear();
    prompt
}

#[test]
fn day_night_code_flips_the_condition_and_stores_it() {
    let mut h = setup();
    assert_eq!(dial_feature(&mut h, "*281", "dn-1"), "daynight-night");
    assert_eq!(
        h.timecond_modes,
        vec![(1, "office".to_string(), Mode::Night)]
    );
    // Memory changes only after the write: the reload the store announces brings it in.
    assert_eq!(
        dest(&decide(h.engine.snapshot(), "600", tuesday(10))),
        "ext:1002",
        "still by the clock until the stored mode is loaded"
    );
    reload_mode(&mut h, Mode::Night);
    let snap = h.engine.snapshot();
    assert_eq!(
        dest(&decide(snap, "600", tuesday(10))),
        "vm:1002",
        "forced night"
    );
    // Again: forced night is "closed" now, so it flips to forced day.
    assert_eq!(dial_feature(&mut h, "*281", "dn-2"), "daynight-day");
    assert_eq!(h.timecond_modes[1].2, Mode::Day);
    reload_mode(&mut h, Mode::Day);
    assert_eq!(
        dest(&decide(h.engine.snapshot(), "600", tuesday(20))),
        "ext:1002"
    );
    // An index no condition has: "not valid", nothing stored.
    assert_eq!(dial_feature(&mut h, "*289", "dn-3"), "feature-invalid");
    assert_eq!(h.timecond_modes.len(), 2);
}

#[test]
fn forward_and_dnd_codes_store_the_change_and_say_so() {
    let mut h = setup();
    assert_eq!(dial_feature(&mut h, "*721002", "fw-1"), "fwd-on");
    assert_eq!(dial_feature(&mut h, "*73", "fw-2"), "fwd-off");
    assert_eq!(dial_feature(&mut h, "*901003", "fw-3"), "fwd-on");
    assert_eq!(dial_feature(&mut h, "*93", "fw-4"), "fwd-off");
    assert_eq!(
        h.forward_ops,
        vec![
            (
                1,
                "1001".to_string(),
                ForwardKind::Always,
                Some("1002".to_string())
            ),
            (1, "1001".to_string(), ForwardKind::Always, None),
            (
                1,
                "1001".to_string(),
                ForwardKind::Busy,
                Some("1003".to_string())
            ),
            (1, "1001".to_string(), ForwardKind::NoAnswer, None),
        ]
    );
    // *72 without a number: "not valid", nothing stored.
    assert_eq!(dial_feature(&mut h, "*72", "fw-5"), "feature-invalid");
    assert_eq!(h.forward_ops.len(), 4);
    // DND: the snapshot says off, so *78 switches it on; *79 is always off.
    assert_eq!(dial_feature(&mut h, "*78", "dnd-1"), "dnd-on");
    assert_eq!(dial_feature(&mut h, "*79", "dnd-2"), "dnd-off");
    assert_eq!(
        h.dnd_ops,
        vec![
            (1, "1001".to_string(), true),
            (1, "1001".to_string(), false)
        ]
    );
}

#[test]
fn voicemail_codes_come_from_the_table() {
    let s = snap_with_office();
    assert_eq!(dest(&decide(&s, "*97", tuesday(10))), "voicemail:own");
    assert_eq!(dest(&decide(&s, "*98", tuesday(10))), "voicemail");
}

#[test]
fn a_did_reaches_a_time_condition() {
    use engine::config::DidEntry;
    use engine::dialplan::{InboundRequest, route_inbound};
    use engine::outside::DidSpec;
    let mut s = snap_with_office();
    s.outside.dids.insert(
        1,
        vec![DidEntry {
            pattern: "0312345678".parse().expect("pattern"),
            spec: DidSpec {
                destination: "timecond:office".into(),
                ..DidSpec::default()
            },
            destination: Destination::Timecond("office".into()),
        }],
    );
    let inbound = |at| {
        route_inbound(
            &InboundRequest {
                tenant: 1,
                trunk: "carrier",
                did: "0312345678",
                at,
            },
            &s,
        )
    };
    assert_eq!(dest(&inbound(tuesday(10))), "ext:1002");
    assert_eq!(dest(&inbound(tuesday(20))), "vm:1002");
    // The test clock shift applies to time conditions only.
    s.codes.clock_offset_s = 10 * 3600;
    assert_eq!(
        dest(&route(
            &RouteRequest {
                tenant: 1,
                caller: "1001",
                digits: "600",
                at: tuesday(10)
            },
            &s
        )),
        "vm:1002"
    );
}

#[test]
fn an_ivr_option_reaches_a_time_condition() {
    use engine::config::{Apps, IvrEntry};
    let mut s = snap_with_office();
    let mut menu = apps::ivr::MenuSpec {
        greeting: "main-greeting".into(),
        ..apps::ivr::MenuSpec::default()
    };
    menu.options.insert('1', "timecond:office".into());
    s.apps = Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: menu,
    }]);
    for (hour, expect_invite) in [(10, true), (20, false)] {
        let mut h = Harness::with(s.clone());
        h.now.wall = tuesday(hour);
        for (n, at) in [("1001", CALLER), ("1002", "192.0.2.22:5060")] {
            let c = format!("<sip:{n}@{at}>");
            assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
        }
        h.media_log.clear();
        h.sent = h.dial(&Dial {
            from: "1001",
            to: "500",
            source: CALLER,
            local: SEG1,
            call_id: "ivr-tc",
        });
        let (ep, id, greeting) = played(&h).pop().expect("the greeting plays");
        assert_eq!(greeting, "main-greeting");
        h.input(Input::Media(MediaEvent::PlayDone {
            endpoint: ep,
            id,
            interrupted: false,
        }));
        h.sent.clear();
        h.input(Input::Media(MediaEvent::Dtmf {
            endpoint: ep,
            digit: '1',
        }));
        if expect_invite {
            assert_eq!(
                h.requests("INVITE").len(),
                1,
                "10:00: the day extension rings"
            );
        } else {
            assert!(h.requests("INVITE").is_empty());
            let last = played(&h).pop().expect("voicemail greeting").2;
            assert!(
                last.contains("vm-leave-message"),
                "20:00: voicemail: {last}"
            );
        }
    }
}
