//! Calls to voice applications on a fake clock: an IVR answers on a media endpoint, digits
//! (RFC 4733 events from the endpoint, or SIP INFO) choose an option, the chosen extension
//! rings from an endpoint of its own and the two are bridged; timeouts, fallbacks,
//! unreachable destinations, hold music and hang-ups from either side.

mod common;

use std::time::Duration;

use apps::ivr::MenuSpec;
use common::*;
use engine::Input;
use engine::config::{Apps, IvrEntry};
use engine::db::{Disposition, HangupBy};
use engine::media::{EndpointId, MediaCommand, MediaEvent, PlayItem, ToneKind};
use sip::{Message, Response};

const CALLER: &str = "192.0.2.21:5060";
const DESK: &str = "192.0.2.22:5060";

fn menu() -> MenuSpec {
    let mut m = MenuSpec {
        greeting: "main-greeting".into(),
        dial_by_extension: true,
        fallback: "hangup".into(),
        retries: 1,
        ..MenuSpec::default()
    };
    m.options.insert('1', "ext:1002".into());
    m.options.insert('2', "ivr:sales".into());
    m.options.insert('9', "ext:1003".into());
    m
}

fn setup() -> Harness {
    let mut snap = snapshot();
    let mut sales = MenuSpec {
        greeting: "sales-greeting".into(),
        ..MenuSpec::default()
    };
    sales.options.insert('1', "ext:1002".into());
    snap.apps = Apps::new(vec![
        IvrEntry {
            tenant: 1,
            name: "main".into(),
            number: "500".into(),
            spec: menu(),
        },
        IvrEntry {
            tenant: 1,
            name: "sales".into(),
            number: String::new(),
            spec: sales,
        },
    ]);
    let mut h = Harness::with(snap);
    for (n, contact, at) in [("1001", "192.0.2.21", CALLER), ("1002", "192.0.2.22", DESK)] {
        let c = format!("<sip:{n}@{contact}:5060>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

/// 1001 dials the IVR; returns the 200 the caller got and the caller's endpoint.
fn call_ivr(h: &mut Harness, call_id: &str) -> (Response, EndpointId) {
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id,
    });
    let ok = last_final(h, CALLER);
    assert_eq!(ok.status, 200, "the IVR answers");
    let ep = opened(h)[0];
    let ack = caller_request(&ok, "ACK", 2, "", "");
    h.recv_raw(&ack, CALLER, SEG1);
    (ok, ep)
}

fn last_final(h: &Harness, to: &str) -> Response {
    h.sent
        .iter()
        .filter(|s| s.to.to_string() == to)
        .filter_map(|s| match &s.message {
            Message::Response(r)
                if r.status >= 200 && r.cseq().is_some_and(|c| c.method.as_str() == "INVITE") =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .next_back()
        .expect("a final response to the INVITE")
}

fn opened(h: &Harness) -> Vec<EndpointId> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .collect()
}

/// The prompts of every Play command so far, in order.
fn played(h: &Harness) -> Vec<String> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { items, .. } => Some(
                items
                    .iter()
                    .map(|i| match i {
                        PlayItem::Prompt { id, .. } => id.clone(),
                        PlayItem::Tone(t) => format!("tone:{t:?}"),
                        PlayItem::CountryTone { tone, .. } => format!("tone:{tone:?}"),
                        PlayItem::Moh { class, .. } => format!("moh:{class}"),
                        PlayItem::Silence { ms } => format!("silence:{ms}"),
                        PlayItem::File { path } => format!("file:{path}"),
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
            _ => None,
        })
        .collect()
}

fn last_play_id(h: &Harness, ep: EndpointId) -> u64 {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { endpoint, id, .. } if *endpoint == ep => Some(*id),
            _ => None,
        })
        .next_back()
        .expect("something played")
}

fn play_done(h: &mut Harness, ep: EndpointId) {
    let id = last_play_id(h, ep);
    h.input(Input::Media(MediaEvent::PlayDone {
        endpoint: ep,
        id,
        interrupted: false,
    }));
}

fn digit(h: &mut Harness, ep: EndpointId, d: char) {
    h.input(Input::Media(MediaEvent::Dtmf {
        endpoint: ep,
        digit: d,
    }));
}

fn caller_request(ok: &Response, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    let contact = ok.headers.contact().expect("Contact").uri.to_string();
    let to = ok.to().expect("To").to_string();
    let call_id = ok.call_id().expect("Call-ID").to_string();
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-d{cseq}-{call_id}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1001@example.com>;tag=a-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:1001@{CALLER}>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn ivr_answers_on_an_endpoint_and_plays_the_greeting() {
    let mut h = setup();
    let (ok, ep) = call_ivr(&mut h, "ivr-1");
    let body = std::str::from_utf8(&ok.body).expect("utf-8");
    let port = h.endpoints[&ep].port();
    assert!(
        body.contains(&format!("m=audio {port} RTP/AVP 0 101")),
        "answered with the endpoint's address and the caller's first codec: {body}"
    );
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::ConfigureEndpoint { endpoint, codec, telephone_event: Some((101, 8000)), .. }
            if *endpoint == ep && codec.name == "PCMU")));
    assert_eq!(played(&h), vec!["main-greeting"]);
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn option_digit_rings_the_extension_and_bridges_on_answer() {
    let mut h = setup();
    let (ok, a_ep) = call_ivr(&mut h, "ivr-2");
    play_done(&mut h, a_ep);
    h.sent.clear();
    // '1' could start an extension number (1001…): the menu waits for more digits.
    digit(&mut h, a_ep, '1');
    assert!(h.requests("INVITE").is_empty());
    h.advance(Duration::from_secs(3));
    let invites = h.requests("INVITE");
    assert_eq!(invites.len(), 1, "1002 rings: {:?}", h.sent);
    assert_eq!(invites[0].to.to_string(), DESK);
    let b_ep = opened(&h)[1];
    let offer = std::str::from_utf8(&invites[0].request().body)
        .expect("utf-8")
        .to_string();
    assert!(
        offer.contains(&format!(
            "m=audio {} RTP/AVP 0 8 9 111",
            h.endpoints[&b_ep].port()
        )),
        "our own offer from the callee's endpoint, caller's codec first: {offer}"
    );
    assert!(played(&h).contains(&"tone:Ringback".to_string()));
    h.sent.clear();
    h.media_log.clear();
    h.reply(invites[0].request(), 200, "desk", DESK, SEG1);
    assert_eq!(h.requests("ACK").len(), 1, "the 2xx is ACKed");
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Join { endpoint, .. } if *endpoint == a_ep))
    );
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Join { endpoint, .. } if *endpoint == b_ep))
    );
    assert!(
        h.responses().is_empty(),
        "the caller was answered long ago: nothing more to it"
    );
    // The caller hangs up: BYE to the callee, the record names the extension.
    h.advance(Duration::from_secs(7));
    h.sent.clear();
    h.media_log.clear();
    h.recv_raw(&caller_request(&ok, "BYE", 3, "", ""), CALLER, SEG1);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == DESK));
    assert!(h.responses().contains(&200));
    let cdr = h.cdrs.last().expect("record");
    assert_eq!(cdr.callee, "1002");
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.hangup_by, HangupBy::Caller);
    assert!(cdr.billsec >= 10);
    assert_eq!(h.engine.active_calls(), 0);
    assert!(h.endpoints.is_empty(), "every endpoint closed");
}

#[test]
fn info_digits_and_nested_menus() {
    let mut h = setup();
    let (ok, a_ep) = call_ivr(&mut h, "ivr-3");
    h.sent.clear();
    let info = caller_request(
        &ok,
        "INFO",
        3,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=2\r\nDuration=160\r\n",
    );
    h.recv_raw(&info, CALLER, SEG1);
    assert!(h.responses().contains(&200), "INFO answered");
    assert_eq!(played(&h), vec!["main-greeting", "sales-greeting"]);
    // The sales menu has no dial-by-extension: '1' goes at once.
    play_done(&mut h, a_ep);
    digit(&mut h, a_ep, '1');
    assert_eq!(h.requests("INVITE").len(), 1);
}

#[test]
fn unreachable_destination_is_announced_and_the_menu_replays() {
    let mut h = setup();
    let (_ok, a_ep) = call_ivr(&mut h, "ivr-4");
    play_done(&mut h, a_ep);
    // 1003 is not registered.
    digit(&mut h, a_ep, '9');
    assert!(h.requests("INVITE").is_empty());
    assert_eq!(
        played(&h).last().map(String::as_str),
        Some("ext-unavailable")
    );
    play_done(&mut h, a_ep);
    assert_eq!(played(&h).last().map(String::as_str), Some("main-greeting"));
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn callee_not_answering_returns_the_caller_to_the_menu() {
    let mut h = setup();
    let (_ok, a_ep) = call_ivr(&mut h, "ivr-5");
    play_done(&mut h, a_ep);
    for c in "1002".chars() {
        digit(&mut h, a_ep, c);
    }
    let inv = h.requests("INVITE");
    assert_eq!(inv.len(), 1, "dial by extension");
    h.reply(inv[0].request(), 180, "desk", DESK, SEG1);
    h.sent.clear();
    h.advance(Duration::from_secs(61));
    assert!(!h.requests("CANCEL").is_empty(), "ringing stopped");
    assert_eq!(
        played(&h).last().map(String::as_str),
        Some("ext-unavailable")
    );
    assert_eq!(
        h.engine.active_calls(),
        1,
        "the caller stays: {:?}",
        h.cdrs.last().map(|c| (&c.hangup_cause, c.hangup_by))
    );
}

#[test]
fn timeouts_then_goodbye_and_hang_up() {
    let mut h = setup();
    let (_ok, a_ep) = call_ivr(&mut h, "ivr-6");
    play_done(&mut h, a_ep);
    h.advance(Duration::from_secs(5));
    assert_eq!(
        played(&h).last().map(String::as_str),
        Some("ivr-timeout+main-greeting")
    );
    play_done(&mut h, a_ep);
    h.advance(Duration::from_secs(5));
    assert_eq!(played(&h).last().map(String::as_str), Some("goodbye"));
    h.sent.clear();
    play_done(&mut h, a_ep);
    assert!(
        h.requests("BYE").iter().any(|b| b.to.to_string() == CALLER),
        "the IVR hangs up after goodbye"
    );
    assert_eq!(h.engine.active_calls(), 0);
    assert!(h.endpoints.is_empty());
    assert_eq!(h.cdrs.last().map(|c| c.hangup_by), Some(HangupBy::System));
}

#[test]
fn hold_from_the_caller_plays_music_to_the_callee() {
    let mut h = setup();
    let (ok, a_ep) = call_ivr(&mut h, "ivr-7");
    play_done(&mut h, a_ep);
    for c in "1002".chars() {
        digit(&mut h, a_ep, c);
    }
    let inv = h.requests("INVITE")[0].clone();
    h.reply(inv.request(), 200, "desk", DESK, SEG1);
    let b_ep = opened(&h)[1];
    h.media_log.clear();
    h.sent.clear();
    let hold = sdp("192.0.2.21", 4000, "sendonly").replace('\n', "\r\n");
    let reinvite = caller_request(&ok, "INVITE", 4, "Content-Type: application/sdp\r\n", &hold);
    h.recv_raw(&reinvite, CALLER, SEG1);
    let r = last_final(&h, CALLER);
    assert_eq!(r.status, 200);
    assert!(
        std::str::from_utf8(&r.body)
            .expect("utf-8")
            .contains("a=recvonly"),
        "hold answered recvonly"
    );
    assert!(
        h.requests("INVITE").is_empty(),
        "not forwarded to the callee"
    );
    assert!(h.media_log.iter().any(|c| matches!(c,
        MediaCommand::Play { endpoint, items, repeat: true, .. }
            if *endpoint == b_ep && matches!(items[0], PlayItem::Moh { .. }))));
    h.media_log.clear();
    let resume = sdp("192.0.2.21", 4000, "sendrecv").replace('\n', "\r\n");
    h.recv_raw(
        &caller_request(
            &ok,
            "INVITE",
            5,
            "Content-Type: application/sdp\r\n",
            &resume,
        ),
        CALLER,
        SEG1,
    );
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::StopPlay { endpoint } if *endpoint == b_ep))
    );
}

#[test]
fn caller_hanging_up_mid_prompt_frees_everything() {
    let mut h = setup();
    let (ok, _a_ep) = call_ivr(&mut h, "ivr-8");
    h.sent.clear();
    h.recv_raw(&caller_request(&ok, "BYE", 3, "", ""), CALLER, SEG1);
    assert!(h.responses().contains(&200));
    assert_eq!(h.engine.active_calls(), 0);
    assert!(h.endpoints.is_empty());
    assert_eq!(h.cdrs.last().map(|c| c.hangup_by), Some(HangupBy::Caller));
}

#[test]
fn no_endpoint_gives_503() {
    let mut h = setup();
    h.fail_media = true;
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id: "ivr-9",
    });
    assert_eq!(last_final(&h, CALLER).status, 503);
    assert_eq!(h.engine.active_calls(), 0);
}

#[test]
fn phones_without_a_common_codec_are_transcoded() {
    let mut h = setup();
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "tc-1",
    });
    let first = h.requests("INVITE");
    assert_eq!(first.len(), 1, "relayed first: the caller's own offer");
    h.sent.clear();
    h.media_log.clear();
    // The callee takes none of the caller's codecs.
    h.reply(first[0].request(), 488, "desk", DESK, SEG1);
    assert!(
        !h.responses().contains(&488),
        "the caller is not refused: the call is retried with transcoding"
    );
    let again = h.requests("INVITE");
    assert_eq!(again.len(), 1, "{:?}", h.sent);
    let b_ep = opened(&h)[1];
    let offer = std::str::from_utf8(&again[0].request().body)
        .expect("utf-8")
        .to_string();
    assert!(
        offer.contains(&format!(
            "m=audio {} RTP/AVP 0 8 9 111",
            h.endpoints[&b_ep].port()
        )),
        "{offer}"
    );
    h.sent.clear();
    h.reply(again[0].request(), 180, "desk2", DESK, SEG1);
    assert_eq!(h.responses(), vec![180], "the caller hears it ring");
    h.sent.clear();
    h.reply(again[0].request(), 200, "desk2", DESK, SEG1);
    let ok = last_final(&h, CALLER);
    assert_eq!(ok.status, 200);
    let a_ep = opened(&h)[0];
    let body = std::str::from_utf8(&ok.body).expect("utf-8");
    assert!(
        body.contains(&format!(
            "m=audio {} RTP/AVP 0 101",
            h.endpoints[&a_ep].port()
        )),
        "the caller is answered from its own endpoint: {body}"
    );
    assert!(
        h.media_log
            .iter()
            .any(|c| matches!(c, MediaCommand::Join { endpoint, .. } if *endpoint == a_ep))
    );
    assert_eq!(h.engine.active_calls(), 1);
}

#[test]
fn transcoding_still_fails_cleanly_when_the_callee_refuses_again() {
    let mut h = setup();
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "1002",
        source: CALLER,
        local: SEG1,
        call_id: "tc-2",
    });
    let first = h.requests("INVITE");
    h.sent.clear();
    h.reply(first[0].request(), 488, "desk", DESK, SEG1);
    let again = h.requests("INVITE");
    h.sent.clear();
    h.reply(again[0].request(), 488, "desk2", DESK, SEG1);
    assert_eq!(
        last_final(&h, CALLER).status,
        488,
        "refused after one retry"
    );
    assert_eq!(h.engine.active_calls(), 0);
    assert!(h.endpoints.is_empty(), "endpoints closed");
    assert!(h.sessions.is_empty(), "relay sessions closed");
}

fn conf_setup(pin: &str) -> Harness {
    let mut snap = snapshot();
    let room = apps::conf::RoomSpec {
        pin: pin.into(),
        ..apps::conf::RoomSpec::default()
    };
    snap.apps = Apps::with_rooms(Vec::new(), vec![(1, "800".into(), room)]);
    let mut h = Harness::with(snap);
    for (n, contact, at) in [
        ("1001", "192.0.2.21", CALLER),
        ("1002", "192.0.2.22", DESK),
        ("1003", "192.0.2.23", "192.0.2.23:5060"),
    ] {
        let c = format!("<sip:{n}@{contact}:5060>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}

/// `from` at `source` dials the room; returns its endpoint.
fn join(h: &mut Harness, from: &str, source: &str, call_id: &str) -> EndpointId {
    let before = opened(h).len();
    h.sent = h.dial(&Dial {
        from,
        to: "800",
        source,
        local: SEG1,
        call_id,
    });
    assert_eq!(last_final(h, source).status, 200, "the room answers");
    opened(h)[before]
}

fn joins(h: &Harness) -> Vec<(EndpointId, u64)> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Join { endpoint, bridge } => Some((*endpoint, *bridge)),
            _ => None,
        })
        .collect()
}

fn beeps_to(h: &Harness, ep: EndpointId) -> usize {
    h.media_log
        .iter()
        .filter(|c| {
            matches!(c, MediaCommand::Play { endpoint, items, .. }
            if *endpoint == ep && items == &vec![PlayItem::Tone(ToneKind::Beep)])
        })
        .count()
}

#[test]
fn a_room_without_pin_joins_callers_in_one_bridge_with_tones() {
    let mut h = conf_setup("");
    let a = join(&mut h, "1001", CALLER, "c-1");
    assert_eq!(played(&h), vec!["conf-joined+conf-only-participant"]);
    let b = join(&mut h, "1002", DESK, "c-2");
    let j = joins(&h);
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].1, j[1].1, "one bridge");
    assert_eq!((j[0].0, j[1].0), (a, b));
    assert_eq!(beeps_to(&h, a), 1, "the room hears the newcomer");
    assert!(
        played(&h).contains(&"conf-joined".to_string()),
        "the second caller is told it joined, not that it is alone: {:?}",
        played(&h)
    );
    // '*' mutes and unmutes.
    digit(&mut h, b, '*');
    assert!(
        h.media_log.iter().any(
            |c| matches!(c, MediaCommand::SetMute { endpoint, muted: true } if *endpoint == b)
        )
    );
    digit(&mut h, b, '*');
    assert!(
        h.media_log.iter().any(
            |c| matches!(c, MediaCommand::SetMute { endpoint, muted: false } if *endpoint == b)
        )
    );
}

#[test]
fn a_pin_is_asked_and_three_wrong_ones_end_the_call() {
    let mut h = conf_setup("4321");
    let a = join(&mut h, "1001", CALLER, "c-3");
    assert_eq!(played(&h), vec!["conf-enter-pin"]);
    assert!(joins(&h).is_empty());
    for d in "4321#".chars() {
        digit(&mut h, a, d);
    }
    assert_eq!(joins(&h).len(), 1, "the right PIN joins");
    let b = join(&mut h, "1002", DESK, "c-4");
    for _ in 0..2 {
        for d in "1111#".chars() {
            digit(&mut h, b, d);
        }
    }
    assert_eq!(
        played(&h).last().map(String::as_str),
        Some("conf-wrong-pin+conf-enter-pin")
    );
    // The third try times out.
    h.advance(Duration::from_secs(11));
    assert_eq!(
        played(&h).last().map(String::as_str),
        Some("conf-wrong-pin")
    );
    assert_eq!(joins(&h).len(), 1, "never joined");
    h.sent.clear();
    play_done(&mut h, b);
    assert!(
        h.requests("BYE").iter().any(|r| r.to.to_string() == DESK),
        "hung up after the third wrong PIN"
    );
}

#[test]
fn leaving_tells_the_room_and_the_last_one_out_closes_it() {
    let mut h = conf_setup("");
    let a = join(&mut h, "1001", CALLER, "c-5");
    let _b = join(&mut h, "1002", DESK, "c-6");
    let ok = last_final(&h, DESK);
    // A third, so that the leaver leaves a room of two (one left alone hears music instead).
    let _c = join(&mut h, "1003", "192.0.2.23:5060", "c-7");
    h.media_log.clear();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {DESK};branch=z9hG4bK-lv1\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:1002@example.com>;tag=a-c-6\r\nTo: {to}\r\nCall-ID: c-6\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = ok.headers.contact().expect("Contact").uri,
        to = ok.to().expect("To"),
    );
    h.recv_raw(&bye, DESK, SEG1);
    assert_eq!(beeps_to(&h, a), 1, "the room hears the leaver go");
    assert_eq!(h.engine.active_calls(), 2);
}

#[test]
fn a_menu_option_into_voicemail_records_a_message_and_says_goodbye() {
    let mut snap = snapshot();
    let mut m = menu();
    m.options.insert('3', "vm:1002".into());
    snap.apps = Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
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
    h.sent.clear();
    h.media_log.clear();
    let (_ok, a_ep) = call_ivr(&mut h, "vm-1");
    play_done(&mut h, a_ep);
    digit(&mut h, a_ep, '3');
    assert_eq!(
        played(&h).last().map(String::as_str),
        Some("vm-person-at-ext+digit-1+digit-0+digit-0+digit-2+vm-is-unavailable+vm-leave-message")
    );
    play_done(&mut h, a_ep);
    let rec = h
        .media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::Record {
                endpoint,
                id,
                path,
                beep,
                ..
            } if *endpoint == a_ep => Some((*id, path.clone(), *beep)),
            _ => None,
        })
        .expect("recording starts after the greeting");
    assert!(rec.1.starts_with("voicemail/1/1002/msg-"), "{}", rec.1);
    assert!(rec.2, "a beep first");
    h.input(Input::Media(MediaEvent::RecordDone {
        endpoint: a_ep,
        id: rec.0,
        path: rec.1.clone(),
        duration_ms: 4200,
        reason: "silence".into(),
    }));
    assert_eq!(played(&h).last().map(String::as_str), Some("goodbye"));
    h.sent.clear();
    play_done(&mut h, a_ep);
    assert!(h.requests("BYE").iter().any(|b| b.to.to_string() == CALLER));
    assert_eq!(h.engine.active_calls(), 0);
}
