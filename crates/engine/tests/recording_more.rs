//! Recording control in call control on a fake clock ([`engine::rec_ctl`]): the policy decided
//! from the snapshot at the answer, `*1` toggling an on-demand recording from every DTMF form
//! (RFC 4733 seen by the relay's tap, SIP INFO, digits of an anchored call's endpoints), the
//! beep, the tenant's format and layout, and `recording_start` / `recording_stop` in the call's
//! events.

mod common;

use std::time::Duration;

use apps::ivr::MenuSpec;
use common::*;
use engine::Input;
use engine::config::{Apps, IvrEntry};
use engine::media::{EndpointId, MediaCommand, MediaEvent, PlayItem, SessionId, Side, ToneKind};
use engine::rec_ctl::{BeepMode, RecFormat, RecTarget, RecTenant};
use engine::recording::{RecObject, RecPolicy};
use sip::{Message, Response};

const CALLER: &str = "192.0.2.21:5060";
const CALLEE: &str = "192.0.2.22:5060";

fn with_policy(snap: &mut engine::Snapshot, ext: &str, p: RecPolicy) {
    snap.codes
        .recording
        .policies
        .insert((1, RecObject::Extension, ext.to_string()), p);
}

fn registered(snap: engine::Snapshot) -> Harness {
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", CALLER), ("1002", CALLEE)] {
        let c = format!("<sip:{n}@{at}>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

/// 1001 calls 1002, who answers: the 200 the caller got and the bridge's session.
fn relayed_call(h: &mut Harness, call_id: &str) -> (Response, SessionId) {
    let out = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let invite = out
        .iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        })
        .expect("the callee is rung");
    h.sent.clear();
    h.reply(&invite, 200, "callee", CALLEE, SEG1);
    // The bridge's session (one segment: the only one allocated); `Answered` names it only
    // when a policy may record the call.
    let session = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::Allocate { session, .. } => Some(*session),
            _ => None,
        })
        .expect("a relay session");
    let ok = h.final_invite_response(CALLER).expect("the caller's 200");
    assert_eq!(ok.status, 200);
    (ok, session)
}

/// Every RecordCall / StopRecordCall so far: (start?, target, path, beep).
fn rec_cmds(h: &Harness) -> Vec<(bool, RecTarget, String, bool)> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::RecordCall {
                target, path, beep, ..
            } => Some((true, *target, path.clone(), *beep)),
            MediaCommand::StopRecordCall { target, beep } => {
                Some((false, *target, String::new(), *beep))
            }
            _ => None,
        })
        .collect()
}

fn relay_digits(h: &mut Harness, session: SessionId, side: Side, digits: &str) {
    for d in digits.chars() {
        h.input(Input::Media(MediaEvent::RelayDigit {
            session,
            side,
            digit: d,
        }));
    }
}

/// An INFO from the caller in the dialog of `ok`.
fn caller_info(ok: &Response, cseq: u32, ct: &str, body: &str) -> String {
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let to = ok.to().expect("To").to_string();
    let call_id = ok.call_id().expect("Call-ID").to_string();
    format!(
        "INFO {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-i{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INFO\r\nContact: <sip:1001@{CALLER}>\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn bye_from_caller(h: &mut Harness, ok: &Response, cseq: u32) {
    let bye = caller_in_dialog(ok, ("1001", CALLER), "BYE", cseq, None);
    h.recv_raw(&bye, CALLER, SEG1);
}

/// The recording events stored with the call: (kind, by, file).
fn rec_events(h: &Harness, call_id: &str) -> Vec<(String, String, String)> {
    h.call_events
        .iter()
        .filter(|(_, c, _)| c == call_id)
        .flat_map(|(_, _, evs)| evs.iter())
        .filter(|e| e.kind.starts_with("recording_"))
        .map(|e| (e.kind.to_string(), e.by.clone(), e.to.clone()))
        .collect()
}

#[test]
fn on_demand_relayed_call_toggles_on_star_one_from_either_side() {
    let mut snap = snapshot();
    with_policy(&mut snap, "1002", RecPolicy::OnDemand);
    let mut h = registered(snap);
    let (ok, s) = relayed_call(&mut h, "rec-more-1");
    assert!(rec_cmds(&h).is_empty(), "on demand: nothing at the answer");
    assert!(
        h.media_log
            .contains(&MediaCommand::WatchInband { session: s }),
        "in-band digits are watched on the tap's copy"
    );
    // Digits split over both sides do not count.
    relay_digits(&mut h, s, Side::A, "*");
    relay_digits(&mut h, s, Side::B, "1");
    assert!(rec_cmds(&h).is_empty());
    // The caller keys *1: a recording of the session starts, with a beep.
    relay_digits(&mut h, s, Side::A, "*1");
    let day = "recordings/1/2026/09/21";
    assert_eq!(
        rec_cmds(&h),
        vec![(
            true,
            RecTarget::Session(s),
            format!("{day}/rec-more-1.wav"),
            true
        )]
    );
    // Too slow (more than 3 s between the digits): nothing.
    h.advance(Duration::from_secs(1));
    relay_digits(&mut h, s, Side::B, "*");
    h.advance(Duration::from_secs(4));
    relay_digits(&mut h, s, Side::B, "1");
    assert_eq!(rec_cmds(&h).len(), 1);
    // The callee keys *1: it stops; the caller again: a second file.
    relay_digits(&mut h, s, Side::B, "*1");
    relay_digits(&mut h, s, Side::A, "*1");
    let cmds = rec_cmds(&h);
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(cmds[1], (false, RecTarget::Session(s), String::new(), true));
    assert_eq!(cmds[2].2, format!("{day}/rec-more-1-2.wav"));
    // Hang-up: the running recording's stop is in the call's events.
    bye_from_caller(&mut h, &ok, 3);
    assert_eq!(h.engine.active_calls(), 0);
    let first = format!("{day}/rec-more-1.wav");
    let second = format!("{day}/rec-more-1-2.wav");
    assert_eq!(
        rec_events(&h, "rec-more-1"),
        vec![
            ("recording_start".into(), "1001".into(), first.clone()),
            ("recording_stop".into(), "1002".into(), first),
            ("recording_start".into(), "1001".into(), second.clone()),
            ("recording_stop".into(), "hangup".into(), second),
        ]
    );
}

#[test]
fn sip_info_digits_toggle_a_relayed_call_and_are_still_forwarded() {
    let mut snap = snapshot();
    with_policy(&mut snap, "1001", RecPolicy::OnDemand);
    let mut h = registered(snap);
    let (ok, s) = relayed_call(&mut h, "rec-more-2");
    h.sent.clear();
    let a = caller_info(
        &ok,
        3,
        "application/dtmf-relay",
        "Signal=*\r\nDuration=160\r\n",
    );
    h.recv_raw(&a, CALLER, SEG1);
    let b = caller_info(&ok, 4, "application/dtmf", "1");
    h.recv_raw(&b, CALLER, SEG1);
    assert_eq!(
        h.requests("INFO").len(),
        2,
        "both INFOs go on to the callee"
    );
    let cmds = rec_cmds(&h);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].1, RecTarget::Session(s));
    // An INFO that is no digit (or a digit word that is none) changes nothing.
    let c = caller_info(&ok, 5, "application/dtmf-relay", "Signal=*\r\n");
    h.recv_raw(&c, CALLER, SEG1);
    let d = caller_info(&ok, 6, "application/x-custom", "1");
    h.recv_raw(&d, CALLER, SEG1);
    assert_eq!(rec_cmds(&h).len(), 1);
}

#[test]
fn always_records_at_the_answer_and_a_phone_cannot_stop_it() {
    let mut snap = snapshot();
    with_policy(&mut snap, "1001", RecPolicy::Always);
    with_policy(&mut snap, "1002", RecPolicy::OnDemand);
    snap.codes.recording.tenants.insert(
        1,
        RecTenant {
            format: RecFormat::Opus,
            stereo: true,
        },
    );
    let mut h = registered(snap);
    let (ok, s) = relayed_call(&mut h, "rec-more-3");
    let started: Vec<_> = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::RecordCall {
                target,
                path,
                format,
                stereo,
                beep,
                call_id,
                tenant,
            } => Some((
                *target,
                path.clone(),
                *format,
                *stereo,
                *beep,
                call_id.clone(),
                *tenant,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        vec![(
            RecTarget::Session(s),
            "recordings/1/2026/09/21/rec-more-3.opus".into(),
            RecFormat::Opus,
            true,
            false,
            "rec-more-3".into(),
            1
        )],
        "the tenant's format and layout; no beep unless recording.beep says all"
    );
    relay_digits(&mut h, s, Side::A, "*1");
    relay_digits(&mut h, s, Side::B, "*1");
    assert_eq!(rec_cmds(&h).len(), 1, "always: *1 does nothing");
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::WatchInband { .. })),
        "no in-band watch where *1 does nothing"
    );
    bye_from_caller(&mut h, &ok, 3);
    let ev = rec_events(&h, "rec-more-3");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(
        (ev[0].0.as_str(), ev[0].1.as_str()),
        ("recording_start", "policy")
    );
    assert_eq!(
        (ev[1].0.as_str(), ev[1].1.as_str()),
        ("recording_stop", "hangup")
    );
}

#[test]
fn the_beep_setting_per_tenant() {
    // `all`: an always recording beeps at the answer.
    let mut snap = snapshot();
    with_policy(&mut snap, "1001", RecPolicy::Always);
    snap.settings
        .recording_beep_tenants
        .insert(1, BeepMode::All);
    let mut h = registered(snap);
    let (_, s) = relayed_call(&mut h, "rec-more-4");
    assert!(rec_cmds(&h)[0].3);
    assert_eq!(rec_cmds(&h)[0].1, RecTarget::Session(s));
    // `off` (the node's value here): *1 toggles without a beep.
    let mut snap = snapshot();
    with_policy(&mut snap, "1001", RecPolicy::OnDemand);
    snap.settings.recording_beep = BeepMode::Off;
    let mut h = registered(snap);
    let (_, s) = relayed_call(&mut h, "rec-more-5");
    relay_digits(&mut h, s, Side::A, "*1");
    relay_digits(&mut h, s, Side::A, "*1");
    let cmds = rec_cmds(&h);
    assert_eq!(cmds.len(), 2);
    assert!(cmds.iter().all(|c| !c.3), "{cmds:?}");
}

#[test]
fn never_and_a_switched_off_code_record_nothing() {
    // No policy: the tap's digits change nothing.
    let mut h = registered(snapshot());
    let (_, s) = relayed_call(&mut h, "rec-more-6");
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Answered { .. })),
        "a call no policy records gets no tap"
    );
    relay_digits(&mut h, s, Side::A, "*1");
    assert!(rec_cmds(&h).is_empty());
    // The tenant's own code replaces *1.
    let mut snap = snapshot();
    with_policy(&mut snap, "1002", RecPolicy::OnDemand);
    let mut t = engine::features::FeatureTable::default();
    t.overrides.insert(
        engine::features::FeatureAction::RecordToggle,
        Some("#55".into()),
    );
    snap.codes.tables.insert(1, t);
    let mut h = registered(snap);
    let (_, s) = relayed_call(&mut h, "rec-more-7");
    relay_digits(&mut h, s, Side::B, "*1");
    assert!(rec_cmds(&h).is_empty(), "*1 is not this tenant's code");
    relay_digits(&mut h, s, Side::B, "#55");
    assert_eq!(rec_cmds(&h).len(), 1);
}

// --- calls anchored on endpoints (an IVR connects the caller to 1002) ---

fn ivr_snapshot() -> engine::Snapshot {
    let mut snap = snapshot();
    let mut m = MenuSpec {
        greeting: "main-greeting".into(),
        fallback: "hangup".into(),
        ..MenuSpec::default()
    };
    m.options.insert('2', "ext:1002".into());
    snap.apps = Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
    snap
}

fn ep_digits(h: &mut Harness, ep: EndpointId, digits: &str) {
    for d in digits.chars() {
        h.input(Input::Media(MediaEvent::Dtmf {
            endpoint: ep,
            digit: d,
        }));
    }
}

fn beeps_on(h: &Harness, ep: EndpointId) -> usize {
    h.media_log
        .iter()
        .filter(|c| {
            matches!(c, MediaCommand::Play { endpoint, items, .. }
            if *endpoint == ep && items == &vec![PlayItem::Tone(ToneKind::Beep)])
        })
        .count()
}

/// 1001 calls the IVR, presses 2, 1002 answers: the caller's 200 and both endpoints.
fn anchored_call(h: &mut Harness, call_id: &str) -> (Response, EndpointId, EndpointId) {
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let ok = h.final_invite_response(CALLER).expect("the IVR answers");
    let a_ep = h.opened_endpoints()[0];
    let ack = caller_in_dialog(&ok, ("1001", CALLER), "ACK", 1, None);
    h.recv_raw(&ack, CALLER, SEG1);
    h.sent.clear();
    ep_digits(h, a_ep, "2");
    let invite = invites_to(&h.sent, CALLEE)
        .pop()
        .expect("1002 rings from an endpoint");
    let b_ep = h.opened_endpoints()[1];
    h.reply(&invite, 200, "desk", CALLEE, SEG1);
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Join { endpoint, .. } if *endpoint == b_ep)),
        "bridged"
    );
    (ok, a_ep, b_ep)
}

#[test]
fn on_demand_anchored_call_records_on_the_callers_endpoint_with_beeps_to_both() {
    let mut snap = ivr_snapshot();
    with_policy(&mut snap, "1002", RecPolicy::OnDemand);
    let mut h = registered(snap);
    let (ok, a_ep, b_ep) = anchored_call(&mut h, "rec-more-8");
    assert!(rec_cmds(&h).is_empty(), "on demand: nothing at the answer");
    let target = RecTarget::Endpoints {
        caller: a_ep,
        callee: b_ep,
    };
    // The callee keys *1 (RFC 4733 or in-band, as its endpoint detects them).
    ep_digits(&mut h, b_ep, "*1");
    assert_eq!(
        rec_cmds(&h),
        vec![(
            true,
            target,
            "recordings/1/2026/09/21/rec-more-8.wav".into(),
            true
        )]
    );
    // The caller's endpoint beeps before recording (RecordCall's beep); the callee's plays one.
    assert_eq!((beeps_on(&h, a_ep), beeps_on(&h, b_ep)), (0, 1));
    // The caller stops it by SIP INFO: both hear a beep.
    let i1 = caller_info(&ok, 3, "application/dtmf-relay", "Signal=10\r\n");
    h.recv_raw(&i1, CALLER, SEG1);
    let i2 = caller_info(&ok, 4, "application/dtmf-relay", "Signal=1\r\n");
    h.recv_raw(&i2, CALLER, SEG1);
    let cmds = rec_cmds(&h);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[1], (false, target, String::new(), true));
    assert_eq!((beeps_on(&h, a_ep), beeps_on(&h, b_ep)), (1, 2));
    assert_eq!(h.engine.active_calls(), 1, "the call goes on");
    bye_from_caller(&mut h, &ok, 5);
    let ev = rec_events(&h, "rec-more-8");
    assert_eq!(
        ev.iter()
            .map(|e| (e.0.as_str(), e.1.as_str()))
            .collect::<Vec<_>>(),
        vec![("recording_start", "1002"), ("recording_stop", "1001")]
    );
}

#[test]
fn always_anchored_call_records_from_the_answer() {
    let mut snap = ivr_snapshot();
    with_policy(&mut snap, "1001", RecPolicy::Always);
    let mut h = registered(snap);
    let (_, a_ep, b_ep) = anchored_call(&mut h, "rec-more-9");
    let cmds = rec_cmds(&h);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(
        cmds[0].1,
        RecTarget::Endpoints {
            caller: a_ep,
            callee: b_ep
        }
    );
    assert!(!cmds[0].3, "no beep by default");
    ep_digits(&mut h, a_ep, "*1");
    assert_eq!(rec_cmds(&h).len(), 1);
}
