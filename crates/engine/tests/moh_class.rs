//! Hold-music classes on a fake clock: `moh.class` (the tenant's own over the node's) is what a
//! held party hears, and the first participant alone in a conference hears it after the join
//! prompts until a second joins (and again when left alone).

mod common;

use common::*;
use engine::Input;
use engine::config::{Apps, Snapshot};
use engine::media::{EndpointId, MediaCommand, MediaEvent, PlayItem};
use sip::{Message, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";

fn final_to(h: &Harness, to: &str) -> Response {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == to)
        .filter_map(|s| match &s.message {
            Message::Response(r) if r.status >= 200 => Some(r.clone()),
            _ => None,
        })
        .next_back()
        .expect("a final response")
}

/// Music plays (looping) on `ep`: the classes, in order.
fn music_on(h: &Harness, ep: EndpointId) -> Vec<String> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play {
                endpoint,
                items,
                repeat: true,
                ..
            } if *endpoint == ep => match items.as_slice() {
                [PlayItem::Moh { class, tenant: 1 }] => Some(class.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn stops(h: &Harness, ep: EndpointId) -> usize {
    h.media_log
        .iter()
        .filter(|c| matches!(c, MediaCommand::StopPlay { endpoint } if *endpoint == ep))
        .count()
}

/// An IVR-connected call 1001 → 1002, then the caller holds: the class the callee hears.
fn held_class(edit: impl FnOnce(&mut Snapshot)) -> Vec<String> {
    let mut snap = ivr_500_to_1002();
    edit(&mut snap);
    let mut h = with_1001_and_1002(snap);
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id: "mc-1",
    });
    let ok = final_to(&h, CALLER);
    let a_ep = h.opened_endpoints()[0];
    h.input(Input::Media(MediaEvent::Dtmf {
        endpoint: a_ep,
        digit: '1',
    }));
    let inv = h.requests("INVITE")[0].clone();
    h.reply(inv.request(), 200, "desk", DESK, SEG1);
    let b_ep = h.opened_endpoints()[1];
    h.media_log.clear();
    let hold = sdp("192.0.2.21", 4000, "sendonly").replace('\n', "\r\n");
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let to = ok.to().expect("To").to_string();
    let reinvite = format!(
        "INVITE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-mc4\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-mc-1\r\nTo: {to}\r\nCall-ID: mc-1\r\nCSeq: 4 INVITE\r\nContact: <sip:1001@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        hold.len()
    );
    h.recv_raw(&reinvite, CALLER, SEG1);
    assert_eq!(final_to(&h, CALLER).status, 200, "hold answered");
    music_on(&h, b_ep)
}

#[test]
fn the_held_party_hears_the_tenants_class() {
    assert_eq!(held_class(|_| {}), vec!["default"]);
    assert_eq!(
        held_class(|s| s.settings.moh_class = "calm".into()),
        vec!["calm"]
    );
    assert_eq!(
        held_class(|s| {
            s.settings.moh_class = "calm".into();
            s.settings.moh_class_tenants.insert(1, "jazz".into());
        }),
        vec!["jazz"]
    );
}

fn join(h: &mut Harness, from: &str, source: &str, call_id: &str) -> EndpointId {
    let before = h.opened_endpoints().len();
    h.sent = h.dial(&Dial {
        from,
        to: "800",
        source,
        local: SEG1,
        call_id,
    });
    assert_eq!(final_to(h, source).status, 200, "the room answers");
    h.opened_endpoints()[before]
}

/// The join prompts of `ep` end.
fn prompts_done(h: &mut Harness, ep: EndpointId) {
    let id = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { endpoint, id, .. } if *endpoint == ep && *id != 0 => Some(*id),
            _ => None,
        })
        .next_back()
        .expect("join prompts");
    h.input(Input::Media(MediaEvent::PlayDone {
        endpoint: ep,
        id,
        interrupted: false,
    }));
}

#[test]
fn a_lone_conference_member_hears_music_until_a_second_joins() {
    let mut snap = snapshot();
    snap.apps = Apps::with_rooms(
        Vec::new(),
        vec![(1, "800".into(), apps::conf::RoomSpec::default())],
    );
    snap.settings.moh_class_tenants.insert(1, "lobby".into());
    let mut h = with_1001_and_1002(snap);
    let a = join(&mut h, "1001", CALLER, "cm-1");
    assert!(music_on(&h, a).is_empty(), "not over the join prompts");
    prompts_done(&mut h, a);
    assert_eq!(music_on(&h, a), vec!["lobby"], "alone: music");
    h.media_log.clear();
    let b = join(&mut h, "1002", DESK, "cm-2");
    assert_eq!(stops(&h, a), 1, "the music stops when the second joins");
    prompts_done(&mut h, b);
    assert!(music_on(&h, b).is_empty(), "the second is not alone");
    assert!(music_on(&h, a).is_empty());
    // The second leaves: the first is alone again.
    let ok = final_to(&h, DESK);
    h.media_log.clear();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {DESK};branch=z9hG4bK-cm9\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1002@example.com>;tag=a-cm-2\r\nTo: {to}\r\nCall-ID: cm-2\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = ok.headers.contact().expect("Contact").uri,
        to = ok.to().expect("To"),
    );
    h.recv_raw(&bye, DESK, SEG1);
    assert_eq!(music_on(&h, a), vec!["lobby"], "alone again: music");
}
