//! Voicemail in call control on a fake clock, the database answered by the harness: a message
//! is indexed when the recording ends (even after the caller hung up), a too-short one is
//! discarded, the owner's recorded greeting plays, and the phone menus (`*97`, `*98`) check the
//! PIN, play messages, delete, record greetings and hang up. Recording a prompt by phone
//! (`record_prompt`, `*77` + number) has the same shape and is tested here too.

mod common;

use apps::vmail::{BoxSpec, Folder, Greeting, Message as VmMessage};
use common::*;
use engine::Input;
use engine::config::{Apps, IvrEntry};
use engine::media::{EndpointId, MediaCommand, MediaEvent, PlayItem};
use engine::vm::{VmBoxEntry, VmOp};
use sip::Message;
use std::time::Duration;

const CALLER: &str = "192.0.2.21:5060";

/// 1001 registered; menu `main` (number 500) whose option 3 leaves a message for 1002; 1001's
/// box has a PIN; 1002's box an unavailable greeting of its own when `greeting`.
fn setup(greeting: bool) -> Harness {
    setup_with(greeting, |_| {})
}

/// [`setup`] with the snapshot changed by `f` first.
fn setup_with(greeting: bool, f: impl FnOnce(&mut engine::Snapshot)) -> Harness {
    let mut snap = snapshot();
    f(&mut snap);
    let mut m = apps::ivr::MenuSpec {
        greeting: "main-greeting".into(),
        ..Default::default()
    };
    m.options.insert('3', "vm:1002".into());
    snap.apps = Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
    snap.apps.vm_boxes.insert(
        (1, "1001".into()),
        VmBoxEntry {
            spec: BoxSpec::default(),
            has_pin: true,
        },
    );
    snap.apps.vm_boxes.insert(
        (1, "1002".into()),
        VmBoxEntry {
            spec: BoxSpec {
                greeting_unavailable: greeting,
                ..BoxSpec::default()
            },
            has_pin: false,
        },
    );
    let mut h = Harness::with(snap);
    let c = "<sip:1001@192.0.2.21:5060>";
    assert_eq!(
        h.register("1001", Some(c), Some(3600), CALLER, SEG1).status,
        200
    );
    h.sent.clear();
    h.media_log.clear();
    h
}

/// The first 200 the engine sent.
fn first_ok(h: &Harness) -> Option<sip::Response> {
    h.sent.iter().find_map(|s| match &s.message {
        Message::Response(r) if r.status == 200 => Some(r.clone()),
        _ => None,
    })
}

/// 1001 dials `to`; the call is answered on an endpoint and ACKed: the endpoint and the 200.
fn call(h: &mut Harness, to: &str, call_id: &str) -> (EndpointId, sip::Response) {
    h.sent = h.dial(&Dial {
        from: "1001",
        to,
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let ok = first_ok(h).expect("answered");
    let ack = in_dialog(&ok, "ACK", 2);
    h.recv_raw(&ack, CALLER, SEG1);
    let ep = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .expect("an endpoint");
    (ep, ok)
}

fn in_dialog(ok: &sip::Response, method: &str, cseq: u32) -> String {
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let to = ok.to().expect("To").to_string();
    let call_id = ok.call_id().expect("Call-ID").to_string();
    let from = ok.from().expect("From").to_string();
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-v{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Every Play command's items as text (`prompt`, `file:PATH`), one string per command.
fn plays(h: &Harness) -> Vec<String> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { items, .. } => Some(
                items
                    .iter()
                    .map(|i| match i {
                        PlayItem::Prompt { id, .. } => id.clone(),
                        PlayItem::File { path } => format!("file:{path}"),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
            _ => None,
        })
        .collect()
}

fn last_play(h: &Harness) -> String {
    plays(h).pop().unwrap_or_default()
}

fn play_done(h: &mut Harness, ep: EndpointId) {
    h.end_play(ep)
}

fn keys(h: &mut Harness, ep: EndpointId, s: &str) {
    for d in s.chars() {
        h.input(Input::Media(MediaEvent::Dtmf {
            endpoint: ep,
            digit: d,
        }));
    }
}

/// The last Record command: (id, path).
fn recording(h: &Harness) -> (u64, String) {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Record { id, path, .. } => Some((*id, path.clone())),
            _ => None,
        })
        .next_back()
        .expect("a recording")
}

fn record_done(h: &mut Harness, ep: EndpointId, rec: &(u64, String), ms: u64, reason: &str) {
    h.input(Input::Media(MediaEvent::RecordDone {
        endpoint: ep,
        id: rec.0,
        path: rec.1.clone(),
        duration_ms: ms,
        reason: reason.into(),
    }));
}

/// Through the menu to 1002's box, greeting played: recording.
fn leave_message(h: &mut Harness, call_id: &str) -> (EndpointId, (u64, String), sip::Response) {
    let (ep, ok) = call(h, "500", call_id);
    play_done(h, ep);
    keys(h, ep, "3");
    play_done(h, ep);
    (ep, recording(h), ok)
}

#[test]
fn a_message_is_indexed_even_when_the_caller_hangs_up_mid_message() {
    let mut h = setup(false);
    let (ep, rec, ok) = leave_message(&mut h, "vm-hup");
    assert!(rec.1.starts_with("voicemail/1/1002/msg-"), "{}", rec.1);
    // The caller hangs up while recording: the call ends at once ...
    h.recv_raw(&in_dialog(&ok, "BYE", 3), CALLER, SEG1);
    assert_eq!(h.engine.active_calls(), 0, "no session is left");
    assert!(
        !h.vm_ops.iter().any(|o| matches!(o, VmOp::Index { .. })),
        "nothing indexed before the file is finished"
    );
    // ... and the media engine reports the finished file afterwards: it is indexed.
    record_done(&mut h, ep, &rec, 4_200, "closed");
    let idx: Vec<_> = h
        .vm_ops
        .iter()
        .filter_map(|o| match o {
            VmOp::Index { tenant, msg } => Some((*tenant, msg.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(idx.len(), 1);
    let (tenant, msg) = &idx[0];
    assert_eq!((*tenant, msg.mailbox.as_str()), (1, "1002"));
    assert_eq!((msg.caller.as_str(), msg.duration_ms), ("1001", 4_200));
    assert_eq!(msg.path, rec.1);
    // A second report of the same recording changes nothing.
    record_done(&mut h, ep, &rec, 4_200, "closed");
    assert_eq!(
        h.vm_ops
            .iter()
            .filter(|o| matches!(o, VmOp::Index { .. }))
            .count(),
        1
    );
}

#[test]
fn a_recording_under_a_second_is_discarded_not_indexed() {
    let mut h = setup(false);
    let (ep, rec, _) = leave_message(&mut h, "vm-short");
    record_done(&mut h, ep, &rec, 300, "stopped");
    assert_eq!(
        h.vm_ops,
        vec![VmOp::Discard {
            path: rec.1.clone()
        }]
    );
    assert_eq!(last_play(&h), "vm-too-short");
    h.sent.clear();
    play_done(&mut h, ep);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn the_owners_recorded_greeting_plays_instead_of_the_default() {
    let mut h = setup(true);
    let (ep, _) = call(&mut h, "500", "vm-greet");
    play_done(&mut h, ep);
    keys(&mut h, ep, "3");
    assert_eq!(
        last_play(&h),
        "file:voicemail/1/1002/greeting-unavailable.wav+vm-leave-message"
    );
}

/// `ext`'s box has a name greeting from now on (the database's answer reloaded).
fn name_recorded(h: &mut Harness, ext: &str) {
    let mut apps = h.engine.snapshot().apps.clone();
    if let Some(b) = apps.vm_boxes.get_mut(&(1, ext.to_string())) {
        b.spec.greeting_name = true;
    }
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    h.media_log.clear();
}

/// 1002's box has a recorded name but no unavailable greeting: "<name> is not available"
/// (the name recording, then the prompt) rather than the number read digit by digit.
#[test]
fn the_recorded_name_replaces_the_number_in_the_default_greeting() {
    let mut h = setup(false);
    name_recorded(&mut h, "1002");
    let (ep, _) = call(&mut h, "500", "vm-name");
    play_done(&mut h, ep);
    keys(&mut h, ep, "3");
    assert_eq!(
        last_play(&h),
        "file:voicemail/1/1002/greeting-name.wav+vm-name-is-unavailable+vm-leave-message"
    );
}

/// The main voicemail number says the typed box's recorded name before asking its PIN; a
/// box without a name recording (or no box) is not confirmed.
#[test]
fn main_number_confirms_the_box_by_its_recorded_name() {
    let mut h = setup(false);
    name_recorded(&mut h, "1001");
    let (ep, _) = call(&mut h, "*98", "vm-main-name");
    assert_eq!(last_play(&h), "vm-enter-mailbox");
    keys(&mut h, ep, "1001#");
    assert_eq!(
        last_play(&h),
        "file:voicemail/1/1001/greeting-name.wav+vm-enter-pin"
    );
    keys(&mut h, ep, "1111#");
    assert_eq!(last_play(&h), "vm-wrong-pin+vm-enter-mailbox");
    keys(&mut h, ep, "1002#");
    assert_eq!(last_play(&h), "vm-enter-pin", "1002 has no name recording");
    keys(&mut h, ep, "1111#");
    keys(&mut h, ep, "4040#");
    assert_eq!(
        last_play(&h),
        "vm-enter-pin",
        "no such box: nothing is said"
    );
}

fn message(id: i64, folder: Folder) -> VmMessage {
    VmMessage {
        id,
        folder,
        caller: "1003".into(),
        at: (9, 30),
        path: format!("voicemail/1/1001/msg-{id}-1.wav"),
    }
}

#[test]
fn own_box_by_feature_code_pin_listen_delete_goodbye() {
    let mut h = setup(false);
    h.vm_messages = vec![message(11, Folder::New)];
    let (ep, _) = call(&mut h, "*97", "vm-own");
    assert_eq!(last_play(&h), "vm-enter-pin", "the PIN is asked by default");
    keys(&mut h, ep, "2580#");
    assert_eq!(
        h.vm_ops[..2],
        [
            VmOp::Verify {
                tenant: 1,
                mailbox: "1001".into(),
                pin: Some("2580".into())
            },
            VmOp::Load {
                tenant: 1,
                mailbox: "1001".into()
            }
        ]
    );
    assert!(
        last_play(&h).starts_with("vm-you-have+num-1+vm-new-message+vm-menu-new"),
        "{}",
        last_play(&h)
    );
    keys(&mut h, ep, "1");
    let p = last_play(&h);
    assert!(p.contains("file:voicemail/1/1001/msg-11-1.wav"), "{p}");
    assert!(
        p.contains("vm-from-number+digit-1+digit-0+digit-0+digit-3"),
        "{p}"
    );
    keys(&mut h, ep, "7");
    assert!(h.vm_ops.contains(&VmOp::Delete { tenant: 1, id: 11 }));
    assert!(last_play(&h).contains("vm-no-more-messages"));
    keys(&mut h, ep, "*");
    assert_eq!(last_play(&h), "goodbye");
    h.sent.clear();
    play_done(&mut h, ep);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == CALLER));
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn main_number_three_wrong_pins_end_the_call() {
    let mut h = setup(false);
    let (ep, _) = call(&mut h, "*98", "vm-main");
    assert_eq!(last_play(&h), "vm-enter-mailbox");
    for _ in 0..3 {
        keys(&mut h, ep, "1001#1111#");
    }
    let verifies = h
        .vm_ops
        .iter()
        .filter(|o| matches!(o, VmOp::Verify { .. }))
        .count();
    assert_eq!(verifies, 3);
    assert!(!h.vm_ops.iter().any(|o| matches!(o, VmOp::Load { .. })));
    assert_eq!(last_play(&h), "vm-wrong-pin+goodbye");
    play_done(&mut h, ep);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn a_greeting_recorded_by_phone_is_reviewed_and_kept() {
    let mut h = setup(false);
    let (ep, _) = call(&mut h, "*97", "vm-rec");
    keys(&mut h, ep, "2580#3");
    assert!(last_play(&h).starts_with("vm-greeting-menu-unavailable"));
    keys(&mut h, ep, "1");
    assert_eq!(last_play(&h), "vm-greeting-record");
    play_done(&mut h, ep);
    let rec = recording(&h);
    assert_eq!(rec.1, "voicemail/1/1001/greeting-unavailable.new.wav");
    keys(&mut h, ep, "#");
    assert!(matches!(
        h.media_log.last(),
        Some(MediaCommand::StopRecord { endpoint }) if *endpoint == ep
    ));
    record_done(&mut h, ep, &rec, 2_500, "stopped");
    assert_eq!(
        last_play(&h),
        "file:voicemail/1/1001/greeting-unavailable.new.wav+vm-greeting-review"
    );
    assert!(
        !h.vm_ops
            .iter()
            .any(|o| matches!(o, VmOp::Index { .. } | VmOp::Discard { .. })),
        "a greeting is not a message"
    );
    keys(&mut h, ep, "1");
    assert!(h.vm_ops.contains(&VmOp::KeepGreeting {
        tenant: 1,
        mailbox: "1001".into(),
        greeting: Greeting::Unavailable
    }));
}

/// The NOTIFYs sent to `to` (any destination: `None`) so far, as (`header`'s value, body).
fn notify_list(h: &Harness, to: Option<&str>, header: &sip::HeaderName) -> Vec<(String, String)> {
    h.sent
        .iter()
        .filter(|s| to.is_none_or(|t| s.to.to_string() == t))
        .filter_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => Some((
                r.headers
                    .get(header)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// The NOTIFYs sent to `to` so far, as (Event, body).
fn notifies(h: &Harness, to: &str) -> Vec<(String, String)> {
    notify_list(h, Some(to), &sip::HeaderName::Event)
}

#[test]
fn message_waiting_is_notified_on_every_count_change_and_on_registration() {
    let mut h = setup(false);
    let mut apps = h.engine.snapshot().apps.clone();
    // 1001 (registered at CALLER) gets a message: NOTIFY yes 1/0.
    apps.vm_counts.insert((1, "1001".into()), (1, 0));
    h.sent.clear();
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps.clone())));
    let n = notifies(&h, CALLER);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].0, "message-summary");
    assert!(
        n[0].1.starts_with("Messages-Waiting: yes\r\n"),
        "{}",
        n[0].1
    );
    assert!(n[0].1.contains("Voice-Message: 1/0 (0/0)"), "{}", n[0].1);
    // The same counts again (another box changed, or a reload): nothing new for 1001.
    h.sent.clear();
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps.clone())));
    assert!(notifies(&h, CALLER).is_empty());
    // Listened to and saved: no longer waiting.
    apps.vm_counts.insert((1, "1001".into()), (0, 1));
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps.clone())));
    let n = notifies(&h, CALLER);
    assert!(
        n[0].1.starts_with("Messages-Waiting: no\r\n") && n[0].1.contains("0/1"),
        "{n:?}"
    );
    // Deleted: the box leaves the counts, still a NOTIFY 0/0.
    h.sent.clear();
    apps.vm_counts.clear();
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps.clone())));
    let n = notifies(&h, CALLER);
    assert!(n[0].1.contains("Voice-Message: 0/0 (0/0)"), "{n:?}");
    // A phone registering while messages wait is told after its 200 OK.
    apps.vm_counts.insert((1, "1002".into()), (2, 0));
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    let desk = "192.0.2.22:5060";
    h.sent.clear();
    let c = "<sip:1002@192.0.2.22:5060>";
    assert_eq!(
        h.register("1002", Some(c), Some(3600), desk, SEG1).status,
        200
    );
    let n = notifies(&h, desk);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0].1.contains("Voice-Message: 2/0 (0/0)"));
}

fn subscribe_text(
    cseq: u32,
    event: &str,
    expires: u32,
    to_tag: &str,
    auth: Option<&str>,
) -> String {
    let mut s = format!(
        "SUBSCRIBE sip:1001@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-s{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@example.com>;tag=sub-a\r\nTo: <sip:1001@example.com>{to_tag}\r\nCall-ID: sub-1\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1001@{CALLER}>\r\nEvent: {event}\r\nExpires: {expires}\r\n"
    );
    if let Some(a) = auth {
        s.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    s + "Content-Length: 0\r\n\r\n"
}

/// The NOTIFYs to the caller as (Subscription-State, body); clears what was sent.
fn sub_notifies(h: &mut Harness) -> Vec<(String, String)> {
    let out = notify_list(h, None, &sip::HeaderName::SubscriptionState);
    h.sent.clear();
    out
}

#[test]
fn message_summary_subscription_lifecycle() {
    let mut h = setup(false);
    // Unknown package: 489; too short: 423 with Min-Expires.
    h.recv_raw(
        &subscribe_text(1, "conference", 600, "", None),
        CALLER,
        SEG1,
    );
    assert_eq!(h.last_response().status, 489);
    h.recv_raw(
        &subscribe_text(2, "message-summary", 10, "", None),
        CALLER,
        SEG1,
    );
    let r = h.last_response();
    assert_eq!(r.status, 423);
    assert_eq!(
        r.headers
            .get(&sip::HeaderName::MinExpires)
            .map(|v| v.as_str().to_string()),
        Some("60".into())
    );
    // Digest-challenged, then accepted with an immediate NOTIFY of the state.
    h.recv_raw(
        &subscribe_text(3, "message-summary", 600, "", None),
        CALLER,
        SEG1,
    );
    let challenge = h.last_response();
    assert_eq!(challenge.status, 407);
    let creds = h.answer_challenge(
        "1001",
        &password("1001"),
        &challenge,
        &sip::HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        "sip:1001@example.com",
    );
    h.sent.clear();
    h.recv_raw(
        &subscribe_text(4, "message-summary", 600, "", Some(&creds)),
        CALLER,
        SEG1,
    );
    let ok = first_ok(&h).expect("200 OK");
    assert_eq!(
        ok.headers
            .get(&sip::HeaderName::Expires)
            .map(|v| v.as_str().to_string()),
        Some("600".into())
    );
    let tag = ok
        .to()
        .and_then(|t| t.tag().map(str::to_string))
        .expect("to-tag");
    let n = sub_notifies(&mut h);
    assert_eq!(n.len(), 1);
    assert!(n[0].0.starts_with("active;expires="), "{}", n[0].0);
    assert!(n[0].1.contains("Voice-Message: 0/0 (0/0)"));
    // A count change reaches the subscription (and no unsolicited NOTIFY besides it).
    let mut apps = h.engine.snapshot().apps.clone();
    apps.vm_counts.insert((1, "1001".into()), (1, 0));
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    let n = sub_notifies(&mut h);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0].0.starts_with("active") && n[0].1.contains("Messages-Waiting: yes"));
    // Refresh in the dialog, then unsubscribe: a terminated NOTIFY.
    let in_dialog = format!(";tag={tag}");
    h.recv_raw(
        &subscribe_text(5, "message-summary", 900, &in_dialog, None),
        CALLER,
        SEG1,
    );
    assert_eq!(h.last_response().status, 200);
    let n = sub_notifies(&mut h);
    assert!(n[0].0.starts_with("active;expires="), "{n:?}");
    h.recv_raw(
        &subscribe_text(6, "message-summary", 0, &in_dialog, None),
        CALLER,
        SEG1,
    );
    assert_eq!(h.last_response().status, 200);
    let n = sub_notifies(&mut h);
    assert_eq!(n[0].0, "terminated;reason=timeout");
    // Gone: a refresh now is 481.
    h.recv_raw(
        &subscribe_text(7, "message-summary", 600, &in_dialog, None),
        CALLER,
        SEG1,
    );
    assert_eq!(h.last_response().status, 481);
}

#[test]
fn a_subscription_that_is_not_refreshed_ends_with_a_terminated_notify() {
    let mut h = setup(false);
    h.recv_raw(
        &subscribe_text(1, "message-summary", 60, "", None),
        CALLER,
        SEG1,
    );
    let challenge = h.last_response();
    let creds = h.answer_challenge(
        "1001",
        &password("1001"),
        &challenge,
        &sip::HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        "sip:1001@example.com",
    );
    h.recv_raw(
        &subscribe_text(2, "message-summary", 60, "", Some(&creds)),
        CALLER,
        SEG1,
    );
    // The phone answers the first NOTIFY (an unanswered one would end the subscription).
    let first = h
        .sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => Some(r.clone()),
            _ => None,
        })
        .expect("the first NOTIFY");
    assert_eq!(sub_notifies(&mut h).len(), 1);
    h.reply(&first, 200, "", CALLER, SEG1);
    h.advance(Duration::from_secs(59));
    let n = sub_notifies(&mut h);
    assert!(n.is_empty(), "still active, nothing to say: {n:?}");
    h.advance(Duration::from_secs(2));
    let n = sub_notifies(&mut h);
    let mut ended: Vec<_> = n
        .iter()
        .filter(|(s, _)| s.starts_with("terminated"))
        .collect();
    ended.dedup(); // its retransmissions
    assert_eq!(ended.len(), 1, "{n:?}");
    assert_eq!(ended[0].0, "terminated;reason=timeout");
}

#[test]
fn a_stored_subscription_survives_a_restart() {
    let mut h = setup(false);
    h.recv_raw(
        &subscribe_text(1, "message-summary", 600, "", None),
        CALLER,
        SEG1,
    );
    let challenge = h.last_response();
    let creds = h.answer_challenge(
        "1001",
        &password("1001"),
        &challenge,
        &sip::HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        "sip:1001@example.com",
    );
    h.recv_raw(
        &subscribe_text(2, "message-summary", 600, "", Some(&creds)),
        CALLER,
        SEG1,
    );
    let rec = h
        .vm_ops
        .iter()
        .find_map(|o| match o {
            VmOp::SaveSub(r) => Some((**r).clone()),
            _ => None,
        })
        .expect("the subscription is stored");
    assert_eq!((rec.call_id.as_str(), rec.ext.as_str()), ("sub-1", "1001"));
    // A new engine (the restart) loads it: a count change reaches the phone in the same dialog,
    // with a CSeq ahead of anything sent before.
    let mut h2 = setup(false);
    h2.engine.load_subscription(&rec, h2.now);
    let mut apps = h2.engine.snapshot().apps.clone();
    apps.vm_counts.insert((1, "1001".into()), (1, 0));
    h2.sent.clear();
    h2.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    let notify = h2
        .sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => Some(r.clone()),
            _ => None,
        })
        .expect("a NOTIFY");
    assert_eq!(notify.call_id(), Some("sub-1"));
    assert_eq!(
        notify.to().and_then(|t| t.tag().map(str::to_string)),
        Some("sub-a".into())
    );
    assert!(notify.cseq().is_some_and(|c| c.seq > 1000), "{notify:?}");
    assert!(
        notify
            .headers
            .get(&sip::HeaderName::SubscriptionState)
            .is_some_and(|v| v.as_str().starts_with("active")),
        "in the subscription, not unsolicited"
    );
    // Unsubscribing drops the stored row.
    let in_dialog = format!(";tag={}", rec.local_tag);
    h2.recv_raw(
        &subscribe_text(3, "message-summary", 0, &in_dialog, None),
        CALLER,
        SEG1,
    );
    assert_eq!(h2.last_response().status, 200);
    assert!(
        h2.vm_ops
            .iter()
            .any(|o| matches!(o, VmOp::DropSub { call_id, .. } if call_id == "sub-1"))
    );
    // An expired record is not loaded.
    let mut old = rec.clone();
    old.expires_at_ms = 0;
    let mut h3 = setup(false);
    h3.engine.load_subscription(&old, h3.now);
    let mut apps = h3.engine.snapshot().apps.clone();
    apps.vm_counts.insert((1, "1001".into()), (1, 0));
    h3.sent.clear();
    h3.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    assert!(
        h3.sent
            .iter()
            .all(|s| !matches!(&s.message, Message::Request(r)
            if r.method == sip::Method::Notify && r.call_id() == Some("sub-1"))),
        "only the unsolicited NOTIFY, none in the expired dialog"
    );
}

#[test]
fn a_481_to_a_notify_ends_the_subscription() {
    let mut h = setup(false);
    h.recv_raw(
        &subscribe_text(1, "message-summary", 600, "", None),
        CALLER,
        SEG1,
    );
    let challenge = h.last_response();
    let creds = h.answer_challenge(
        "1001",
        &password("1001"),
        &challenge,
        &sip::HeaderName::ProxyAuthenticate,
        "SUBSCRIBE",
        "sip:1001@example.com",
    );
    h.sent.clear();
    h.recv_raw(
        &subscribe_text(2, "message-summary", 600, "", Some(&creds)),
        CALLER,
        SEG1,
    );
    let notify = h
        .sent
        .iter()
        .find_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => Some(r.clone()),
            _ => None,
        })
        .expect("the first NOTIFY");
    // The phone no longer knows the dialog.
    h.reply(&notify, 481, "", CALLER, SEG1);
    assert!(
        h.vm_ops
            .iter()
            .any(|o| matches!(o, VmOp::DropSub { call_id, .. } if call_id == "sub-1"))
    );
    // The next change is sent unsolicited, not in the dead dialog.
    let mut apps = h.engine.snapshot().apps.clone();
    apps.vm_counts.insert((1, "1001".into()), (1, 0));
    h.sent.clear();
    h.input(Input::Config(engine::ConfigUpdate::Apps(apps)));
    let n: Vec<_> = h
        .sent
        .iter()
        .filter_map(|s| match &s.message {
            Message::Request(r) if r.method == sip::Method::Notify => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(n.len(), 1);
    assert_ne!(n[0].call_id(), Some("sub-1"));
}

// ---------------------------------------------------------------------------------------------
// Recording a prompt by phone (`*77` + the prompt's number).

/// 1001 may record prompts (`prompts.recorders`).
fn recorder_setup() -> Harness {
    setup_with(false, |s| s.settings.prompt_recorders = vec!["1001".into()])
}

fn prompt_ops(h: &Harness) -> Vec<VmOp> {
    h.vm_ops
        .iter()
        .filter(|o| matches!(o, VmOp::KeepPrompt { .. } | VmOp::DropPromptScratch { .. }))
        .cloned()
        .collect()
}

#[test]
fn a_permitted_phone_records_a_prompt_reviews_re_records_and_keeps_it() {
    let mut h = recorder_setup();
    let n = apps::prompt::get("ivr-welcome").expect("catalogue").number;
    let (ep, _) = call(&mut h, &format!("*77{n}"), "rp-keep");
    // The prompt as it plays today, then the instructions.
    assert_eq!(last_play(&h), "ivr-welcome+vm-greeting-record");
    play_done(&mut h, ep);
    let rec = recording(&h);
    assert!(
        apps::prompt_files::is_scratch_rel_path(&rec.1)
            && rec.1.starts_with("prompts/scratch/tenant-1-"),
        "{}",
        rec.1
    );
    assert!(h.media_log.iter().any(|c| matches!(
        c,
        MediaCommand::Record {
            max_s: 60,
            silence_s: 3,
            beep: true,
            ..
        }
    )));
    keys(&mut h, ep, "#");
    assert!(matches!(
        h.media_log.last(),
        Some(MediaCommand::StopRecord { endpoint }) if *endpoint == ep
    ));
    record_done(&mut h, ep, &rec, 2_500, "stopped");
    assert_eq!(last_play(&h), format!("file:{}+prompt-review", rec.1));
    // 2: record again (the first take goes).
    keys(&mut h, ep, "2");
    assert_eq!(
        prompt_ops(&h),
        vec![VmOp::DropPromptScratch {
            path: rec.1.clone()
        }]
    );
    assert_eq!(last_play(&h), "vm-greeting-record");
    play_done(&mut h, ep);
    let rec2 = recording(&h);
    assert_eq!(rec2.1, rec.1);
    record_done(&mut h, ep, &rec2, 3_000, "silence");
    play_done(&mut h, ep);
    // No key for the review timeout: the menu is said again (fake clock).
    let before = plays(&h).len();
    h.advance(Duration::from_secs(apps::prompt_rec::REVIEW_TIMEOUT_S));
    assert_eq!(plays(&h).len(), before + 1);
    assert_eq!(last_play(&h), "prompt-review");
    // 1: keep.
    keys(&mut h, ep, "1");
    assert_eq!(
        prompt_ops(&h)[1..],
        [VmOp::KeepPrompt {
            tenant: 1,
            lang: "en".into(),
            id: "ivr-welcome".into(),
            scratch: rec.1.clone(),
            by: "1001".into(),
        }]
    );
    assert_eq!(last_play(&h), "prompt-saved+goodbye");
    play_done(&mut h, ep);
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(
        prompt_ops(&h).len(),
        2,
        "the kept file is not removed at hang-up"
    );
}

#[test]
fn a_prompt_the_driver_could_not_keep_is_said_so_and_recorded_again() {
    let mut h = recorder_setup();
    h.prompt_keep_error = Some("the audio is silent".into());
    let (ep, _) = call(&mut h, "*7710", "rp-silent");
    play_done(&mut h, ep);
    let rec = recording(&h);
    record_done(&mut h, ep, &rec, 2_000, "silence");
    keys(&mut h, ep, "1");
    assert!(matches!(prompt_ops(&h)[..], [VmOp::KeepPrompt { .. }]));
    assert_eq!(last_play(&h), "prompt-not-saved+vm-greeting-record");
    play_done(&mut h, ep);
    assert_eq!(recording(&h).1, rec.1, "recording again");
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn recording_a_prompt_is_refused_without_permission_or_with_an_unknown_number() {
    // Nobody is allowed by default.
    let mut h = setup(false);
    let (ep, _) = call(&mut h, "*7710", "rp-denied");
    assert_eq!(last_play(&h), "feature-invalid");
    play_done(&mut h, ep);
    assert_eq!(h.engine.active_calls(), 0);
    assert!(
        !h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Record { .. }))
    );

    // Allowed, but no prompt has that number.
    let mut h = recorder_setup();
    for (i, code) in ["*779999", "*77", "*770"].iter().enumerate() {
        h.media_log.clear();
        let (ep, _) = call(&mut h, code, &format!("rp-unknown-{i}"));
        assert_eq!(last_play(&h), "feature-invalid", "{code}");
        play_done(&mut h, ep);
    }
    assert_eq!(h.engine.active_calls(), 0);
    assert!(prompt_ops(&h).is_empty());
}

#[test]
fn hanging_up_while_recording_a_prompt_leaves_no_file() {
    let mut h = recorder_setup();
    let (ep, ok) = call(&mut h, "*772", "rp-hup");
    assert_eq!(last_play(&h), "goodbye+vm-greeting-record");
    play_done(&mut h, ep);
    let rec = recording(&h);
    h.recv_raw(&in_dialog(&ok, "BYE", 3), CALLER, SEG1);
    assert_eq!(h.engine.active_calls(), 0);
    let drop = VmOp::DropPromptScratch {
        path: rec.1.clone(),
    };
    assert_eq!(prompt_ops(&h), vec![drop.clone()]);
    // The file is complete only when the recording's end arrives: removed again then.
    record_done(&mut h, ep, &rec, 4_000, "closed");
    assert_eq!(prompt_ops(&h), vec![drop.clone(), drop]);
    // A repeated report changes nothing.
    record_done(&mut h, ep, &rec, 4_000, "closed");
    assert_eq!(prompt_ops(&h).len(), 2);
}

#[test]
fn a_message_the_disk_cannot_hold_is_not_indexed_and_the_caller_hears_mailbox_full() {
    let mut h = setup(false);
    let (ep, rec, _) = leave_message(&mut h, "vm-full");
    record_done(&mut h, ep, &rec, 4_000, "disk-full");
    assert_eq!(
        h.vm_ops,
        vec![VmOp::Discard {
            path: rec.1.clone()
        }],
        "not indexed; the partial file removed"
    );
    assert_eq!(last_play(&h), "vm-mailbox-full");
    assert_eq!(h.engine.counters().vm_failures, [1, 0]);
    h.sent.clear();
    play_done(&mut h, ep);
    assert_eq!(h.engine.active_calls(), 0, "the call ends after the prompt");
    assert_eq!(h.requests("BYE").len(), 1, "hung up cleanly");
    // Any other write error is counted apart.
    h.media_log.clear();
    h.vm_ops.clear();
    let (ep, rec, _) = leave_message(&mut h, "vm-werr");
    record_done(&mut h, ep, &rec, 2_000, "error");
    assert_eq!(last_play(&h), "vm-mailbox-full");
    assert_eq!(h.engine.counters().vm_failures, [1, 1]);
    assert!(!h.vm_ops.iter().any(|o| matches!(o, VmOp::Index { .. })));
}

#[test]
fn a_greeting_the_disk_cannot_hold_ends_the_menus_with_mailbox_full() {
    let mut h = setup(false);
    let (ep, _) = call(&mut h, "*97", "vm-rec-full");
    keys(&mut h, ep, "2580#3");
    keys(&mut h, ep, "1");
    assert_eq!(last_play(&h), "vm-greeting-record");
    play_done(&mut h, ep);
    let rec = recording(&h);
    record_done(&mut h, ep, &rec, 2_500, "disk-full");
    assert_eq!(last_play(&h), "vm-mailbox-full");
    assert_eq!(
        h.vm_ops.last(),
        Some(&VmOp::Discard {
            path: rec.1.clone()
        })
    );
    assert!(
        !h.vm_ops
            .iter()
            .any(|o| matches!(o, VmOp::KeepGreeting { .. })),
        "nothing kept"
    );
    assert_eq!(h.engine.counters().vm_failures, [1, 0]);
    // The menus are over: a key does nothing, and no timer re-prompts.
    let before = plays(&h).len();
    keys(&mut h, ep, "1");
    h.advance(Duration::from_secs(30));
    assert_eq!(plays(&h).len(), before);
    h.sent.clear();
    play_done(&mut h, ep);
    assert_eq!(h.engine.active_calls(), 0);
    assert_eq!(h.requests("BYE").len(), 1);
}
