//! One-way intercom (`intercom.audio` = `one-way`, node-wide or the tenant's own): once the
//! called phone answers by itself, the relay is told not to relay what it sends (its
//! microphone muted, as a page); two-way (the default) mutes nothing.

mod common;

use common::*;
use engine::media::{MediaCommand, Side};
use sip::Message;

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";

/// 1001 and 1002 registered, on the configuration `edit` made.
fn registered(edit: impl FnOnce(&mut engine::Snapshot)) -> Harness {
    let mut snap = snapshot();
    edit(&mut snap);
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", CALLER), ("1002", DESK)] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h
}

/// 1001 intercoms 1002 (`*801002`), whose phone answers; the media commands that followed.
fn intercom(edit: impl FnOnce(&mut engine::Snapshot)) -> Vec<MediaCommand> {
    let mut h = registered(edit);
    let out = h.dial(&Dial {
        from: "1001",
        to: "*801002",
        source: CALLER,
        local: SEG1,
        call_id: "ic-ow",
    });
    let fork = out
        .iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        })
        .expect("1002 is rung");
    h.media_log.clear();
    h.reply(&fork, 200, "desk", DESK, SEG1);
    assert_eq!(h.last_response().status, 200, "the caller is answered");
    h.media_log.clone()
}

fn muted_sides(cmds: &[MediaCommand]) -> Vec<Side> {
    cmds.iter()
        .filter_map(|c| match c {
            MediaCommand::MuteSide {
                side, muted: true, ..
            } => Some(*side),
            _ => None,
        })
        .collect()
}

#[test]
fn one_way_intercom_mutes_the_called_phone() {
    assert!(
        muted_sides(&intercom(|_| {})).is_empty(),
        "two-way by default"
    );
    let node = intercom(|s| s.settings.intercom_one_way = true);
    assert_eq!(muted_sides(&node), [Side::B], "{node:?}");
    let tenant = intercom(|s| {
        s.settings.intercom_one_way_tenants.insert(1, true);
    });
    assert_eq!(muted_sides(&tenant), [Side::B]);
    let other = intercom(|s| {
        s.settings.intercom_one_way = true;
        s.settings.intercom_one_way_tenants.insert(1, false);
    });
    assert!(muted_sides(&other).is_empty(), "the tenant's two-way wins");
}

#[test]
fn an_ordinary_call_is_never_muted() {
    let mut h = registered(|s| s.settings.intercom_one_way = true);
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "plain",
    });
    let fork = invites_to(&out, DESK).pop().expect("rung");
    h.media_log.clear();
    h.reply(&fork, 200, "desk", DESK, SEG1);
    assert!(muted_sides(&h.media_log).is_empty());
}
