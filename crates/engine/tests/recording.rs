//! Recording hooks on a fake clock: an answered relayed call tells the driver who is on it and
//! what was negotiated (`MediaCommand::Answered`), once, with the session of the bridge.

mod common;

use common::*;
use engine::media::MediaCommand;
use engine::recording::{RecObject, RecPolicy};
use sip::Message;

const CALLER: &str = "192.0.2.21:5060";
const CALLEE: &str = "192.0.2.22:5060";

#[test]
fn an_answered_relayed_call_names_its_parties_and_payloads() {
    let mut snap = snapshot();
    snap.codes.recording.policies.insert(
        (1, RecObject::Extension, "1002".into()),
        RecPolicy::OnDemand,
    );
    let mut h = Harness::with(snap);
    assert_eq!(
        h.register(
            "1001",
            Some("<sip:1001@192.0.2.21:5060>"),
            Some(3600),
            CALLER,
            SEG1
        )
        .status,
        200
    );
    assert_eq!(
        h.register(
            "1002",
            Some("<sip:1002@192.0.2.22:5060>"),
            Some(3600),
            CALLEE,
            SEG1
        )
        .status,
        200
    );
    h.media_log.clear();
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "rec-call-1",
    });
    let invite = out
        .iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        })
        .expect("the callee is rung");
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Answered { .. })),
        "nothing before the answer"
    );
    h.reply(&invite, 200, "callee", CALLEE, SEG1);
    let answered: Vec<_> = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Answered { session, info } => Some((*session, info.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 1, "{:?}", h.media_log);
    let (session, info) = &answered[0];
    let allocated = h
        .media_log
        .iter()
        .any(|c| matches!(c, MediaCommand::Allocate { session: s, .. } if s == session));
    assert!(allocated, "the bridge's own session");
    let p = &info.parties;
    assert_eq!(p.call_id, "rec-call-1");
    assert!(p.extensions.contains(&"1001".to_string()), "{p:?}");
    assert!(p.extensions.contains(&"1002".to_string()), "{p:?}");
    assert_eq!((p.route.as_deref(), p.trunk.as_deref()), (None, None));
    assert!(
        info.payloads
            .iter()
            .any(|(pt, n, c)| (*pt, n.as_str(), *c) == (0, "PCMU", 8000))
    );
    assert_eq!(info.telephone_events(), vec![101]);
}
