//! `tones.country` on a fake clock: the ringback an anchored caller hears while the callee rings
//! is of the node's country, or of the caller's tenant's own choice.

mod common;

use common::*;
use engine::Input;
use engine::config::Snapshot;
use engine::media::{MediaCommand, MediaEvent, PlayItem, ToneKind};

const CALLER: &str = "192.0.2.21:5060";

/// 1001 calls the IVR and presses 1 (1002 rings); the tone items played meanwhile.
fn ringback(edit: impl FnOnce(&mut Snapshot)) -> Vec<PlayItem> {
    let mut snap = ivr_500_to_1002();
    edit(&mut snap);
    let mut h = with_1001_and_1002(snap);
    h.sent = h.dial(&Dial {
        from: "1001",
        to: "500",
        source: CALLER,
        local: SEG1,
        call_id: "tones-1",
    });
    let a_ep = h.opened_endpoints()[0];
    h.media_log.clear();
    h.input(Input::Media(MediaEvent::Dtmf {
        endpoint: a_ep,
        digit: '1',
    }));
    assert_eq!(h.requests("INVITE").len(), 1, "1002 rings");
    h.media_log
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { items, .. } => Some(items.clone()),
            _ => None,
        })
        .flatten()
        .filter(|i| matches!(i, PlayItem::CountryTone { .. } | PlayItem::Tone(_)))
        .collect()
}

fn tone(country: &str) -> Vec<PlayItem> {
    vec![PlayItem::CountryTone {
        tone: ToneKind::Ringback,
        country: country.into(),
    }]
}

#[test]
fn japan_by_default() {
    assert_eq!(ringback(|_| {}), tone("jp"));
}

#[test]
fn the_nodes_country() {
    assert_eq!(
        ringback(|s| s.settings.tone_country = "na".into()),
        tone("na")
    );
}

#[test]
fn a_tenants_own_country_wins() {
    let got = ringback(|s| {
        s.settings.tone_country = "na".into();
        s.settings.tone_country_tenants.insert(1, "jp".into());
    });
    assert_eq!(got, tone("jp"));
    let got = ringback(|s| {
        s.settings.tone_country_tenants.insert(1, "na".into());
    });
    assert_eq!(got, tone("na"));
    // Another tenant's choice does not apply.
    let got = ringback(|s| {
        s.settings.tone_country_tenants.insert(2, "na".into());
    });
    assert_eq!(got, tone("jp"));
}
