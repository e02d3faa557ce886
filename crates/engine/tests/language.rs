//! The language of application prompts on a fake clock: the calling extension's own setting,
//! else its tenant's default, else `prompts.language`; a caller from a trunk hears the tenant's
//! default even when its number is also an extension's. Checked on the IVR greeting, the
//! voicemail greeting after an IVR option, and the own-box menu (`*97`), whose Japanese
//! sentences are also ordered the Japanese way.

mod common;

use std::net::SocketAddr;

use apps::vmail::{BoxSpec, Folder, Message as VmMessage};
use common::*;
use engine::Input;
use engine::config::{Apps, DidEntry, IvrEntry, Snapshot, TrunkEntry};
use engine::media::{EndpointId, MediaCommand, MediaEvent, PlayItem};
use engine::outside::{DidSpec, TrunkSpec};
use engine::vm::VmBoxEntry;
use sip::Message;

const CALLER: &str = "192.0.2.21:5060";
const CARRIER: &str = "203.0.113.10:5060";
/// The outside caller's number, also the number of an extension set to English.
const OUTSIDE: &str = "0901234567";

/// Languages: the node setting, tenant 1's default, extension 1001's own.
struct Langs<'a> {
    global: &'a str,
    tenant: &'a str,
    ext: &'a str,
}

fn setup(l: Langs<'_>) -> Harness {
    let mut snap: Snapshot = snapshot();
    snap.settings.prompt_language = l.global.into();
    snap.tenants.languages.insert(1, l.tenant.into());
    if let Some(e) = snap.extensions.get_mut(&(1, "1001".to_string())) {
        e.language = l.ext.into();
    }
    let mut stranger = ext(9, OUTSIDE, 1);
    stranger.language = "en".into();
    snap.extensions.insert((1, OUTSIDE.into()), stranger);
    let mut m = apps::ivr::MenuSpec {
        greeting: "ivr-welcome".into(),
        ..Default::default()
    };
    m.options.insert('3', "vm:1002".into());
    snap.apps = Apps::new(vec![IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
    for (n, has_pin) in [("1001", true), ("1002", false)] {
        snap.apps.vm_boxes.insert(
            (1, n.into()),
            VmBoxEntry {
                spec: BoxSpec::default(),
                has_pin,
            },
        );
    }
    let a: SocketAddr = addr(CARRIER);
    snap.outside.trunks.insert(
        1,
        TrunkEntry {
            id: 1,
            tenant: 1,
            name: "carrier".into(),
            spec: TrunkSpec {
                host: a.ip().to_string(),
                port: Some(a.port()),
                ping_interval_s: 0,
                ..TrunkSpec::default()
            },
            password: String::new(),
            addrs: vec![a],
            sources: vec![a.ip()],
        },
    );
    snap.outside.dids.insert(
        1,
        vec![DidEntry {
            pattern: "0312345600".parse().expect("pattern"),
            spec: DidSpec {
                destination: "ivr:main".into(),
                ..DidSpec::default()
            },
            destination: "ivr:main".parse().expect("destination"),
        }],
    );
    snap.outside.sort_dids();
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

fn first_ok(h: &Harness) -> Option<sip::Response> {
    h.sent.iter().find_map(|s| match &s.message {
        Message::Response(r) if r.status == 200 => Some(r.clone()),
        _ => None,
    })
}

fn endpoint(h: &Harness) -> EndpointId {
    h.media_log
        .iter()
        .find_map(|c| match c {
            MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
            _ => None,
        })
        .expect("an endpoint")
}

/// 1001 dials `to` and the application answers: its endpoint.
fn call(h: &mut Harness, to: &str, call_id: &str) -> EndpointId {
    h.sent = h.dial(&Dial {
        from: "1001",
        to,
        source: CALLER,
        local: SEG1,
        call_id,
    });
    assert!(first_ok(h).is_some(), "answered");
    endpoint(h)
}

/// The outside caller dials the DID that reaches the IVR through the trunk: its endpoint.
fn call_from_trunk(h: &mut Harness, call_id: &str) -> EndpointId {
    let body = sdp("203.0.113.10", 30000, "sendrecv").replace('\n', "\r\n");
    let invite = format!(
        "INVITE sip:0312345600@192.0.2.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-{call_id}\r\nMax-Forwards: 69\r\nFrom: \"Outside\" <sip:{OUTSIDE}@carrier.test>;tag=o-{call_id}\r\nTo: <sip:0312345600@carrier.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{OUTSIDE}@{CARRIER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.recv_raw(&invite, CARRIER, SEG1);
    h.sent = h.take();
    assert!(first_ok(h).is_some(), "the IVR answers the trunk call");
    endpoint(h)
}

/// Every prompt played so far as `id/lang`, one string per Play command.
fn plays(h: &Harness) -> Vec<String> {
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { items, .. } => Some(
                items
                    .iter()
                    .filter_map(|i| match i {
                        PlayItem::Prompt { id, lang, .. } => Some(format!("{id}/{lang}")),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
            _ => None,
        })
        .collect()
}

fn play_done(h: &mut Harness, ep: EndpointId) {
    let id = h
        .media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { endpoint, id, .. } if *endpoint == ep => Some(*id),
            _ => None,
        })
        .next_back()
        .expect("something played");
    h.input(Input::Media(MediaEvent::PlayDone {
        endpoint: ep,
        id,
        interrupted: false,
    }));
}

fn keys(h: &mut Harness, ep: EndpointId, s: &str) {
    for d in s.chars() {
        h.input(Input::Media(MediaEvent::Dtmf {
            endpoint: ep,
            digit: d,
        }));
    }
}

/// The IVR greeting 1001 hears.
fn greeting_for_1001(l: Langs<'_>) -> String {
    let mut h = setup(l);
    call(&mut h, "500", "greet");
    plays(&h).join(" | ")
}

#[test]
fn an_extension_set_to_japanese_hears_the_ivr_and_voicemail_in_japanese() {
    let mut h = setup(Langs {
        global: "en",
        tenant: "en",
        ext: "ja",
    });
    let ep = call(&mut h, "500", "ivr-ja");
    assert_eq!(plays(&h), vec!["ivr-welcome/ja"]);
    play_done(&mut h, ep);
    keys(&mut h, ep, "3");
    let greeting = plays(&h).pop().unwrap_or_default();
    assert!(
        greeting.starts_with("vm-person-at-ext/ja+digit-1/ja")
            && greeting.ends_with("vm-is-unavailable/ja+vm-leave-message/ja"),
        "the default voicemail greeting in Japanese: {greeting}"
    );
}

#[test]
fn the_own_box_menu_speaks_and_orders_sentences_in_japanese() {
    let mut h = setup(Langs {
        global: "en",
        tenant: "",
        ext: "ja",
    });
    h.vm_messages = vec![VmMessage {
        id: 11,
        folder: Folder::New,
        caller: "1003".into(),
        at: (9, 30),
        path: "voicemail/1/1001/msg-11-1.wav".into(),
    }];
    let ep = call(&mut h, "*97", "vm-ja");
    assert_eq!(plays(&h).pop().as_deref(), Some("vm-enter-pin/ja"));
    keys(&mut h, ep, "2580#");
    let counts = plays(&h).pop().unwrap_or_default();
    assert!(
        counts.starts_with("vm-you-have/ja+vm-new-messages/ja+ken-1/ja+vm-there-are/ja"),
        "Japanese counting (件) in Japanese order: {counts}"
    );
}

#[test]
fn empty_settings_inherit_tenant_then_node() {
    let ja = "ivr-welcome/ja";
    let en = "ivr-welcome/en";
    let cases = [
        // (node, tenant, extension) -> what 1001 hears
        (("en", "ja", ""), ja),
        (("ja", "en", ""), en),
        (("en", "ja", "en"), en),
        (("ja", "", ""), ja),
        (("en", "", ""), en),
    ];
    for ((global, tenant, ext), want) in cases {
        assert_eq!(
            greeting_for_1001(Langs {
                global,
                tenant,
                ext
            }),
            want,
            "node {global:?}, tenant {tenant:?}, extension {ext:?}"
        );
    }
}

#[test]
fn an_outside_caller_hears_the_tenants_default() {
    // The caller's number is also an extension set to English: a trunk caller is not that
    // extension, so the tenant's Japanese plays.
    let mut h = setup(Langs {
        global: "en",
        tenant: "ja",
        ext: "en",
    });
    call_from_trunk(&mut h, "in-ja");
    assert_eq!(plays(&h), vec!["ivr-welcome/ja"]);

    let mut h = setup(Langs {
        global: "ja",
        tenant: "",
        ext: "en",
    });
    call_from_trunk(&mut h, "in-node");
    assert_eq!(
        plays(&h),
        vec!["ivr-welcome/ja"],
        "no tenant default: the node's"
    );

    let mut h = setup(Langs {
        global: "ja",
        tenant: "en",
        ext: "ja",
    });
    call_from_trunk(&mut h, "in-en");
    assert_eq!(plays(&h), vec!["ivr-welcome/en"]);
}

#[test]
fn a_changed_setting_applies_to_the_next_call() {
    let mut h = setup(Langs {
        global: "en",
        tenant: "",
        ext: "",
    });
    call(&mut h, "500", "before");
    assert_eq!(plays(&h), vec!["ivr-welcome/en"]);
    // The tenant's default changes (as the driver reloads tenants after a change).
    let mut t = engine::config::Tenants {
        default_id: 1,
        ..Default::default()
    };
    t.realms.insert(1, REALM.into());
    t.languages.insert(1, "ja".into());
    h.input(Input::Config(engine::ConfigUpdate::Tenants(t)));
    h.media_log.clear();
    call(&mut h, "500", "after-tenant");
    assert_eq!(plays(&h), vec!["ivr-welcome/ja"]);
    // Then the extension's own (a reloaded extension cache).
    let mut exts = snapshot().extensions;
    if let Some(e) = exts.get_mut(&(1, "1001".to_string())) {
        e.language = "en".into();
    }
    h.input(Input::Config(engine::ConfigUpdate::Extensions(exts)));
    h.media_log.clear();
    call(&mut h, "500", "after-ext");
    assert_eq!(plays(&h), vec!["ivr-welcome/en"]);
}
