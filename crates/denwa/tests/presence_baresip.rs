//! Presence with a real softphone: a baresip phone (1001) loads baresip's `contact` and
//! `presence` modules with a contacts file naming extension 1002 with `;presence=p2p`, so it
//! SUBSCRIBEs to `presence` for 1002 (digest-authenticated as 1001) and shows what Denwa's PIDF
//! NOTIFYs say. the test reads the status baresip shows for 1002 in its contact list (the `contacts` command
//! over ctrl_tcp). 1002 goes Online (registered) → Busy (in a call with
//! 1003, `on-the-phone`) → Online (hung up) → Busy (DND by `*78`: closed + `busy`) → Online
//! (`*79`). baresip 1.0 maps both `on-the-phone` and `busy` to "Busy".

mod common;

use std::time::Duration;

use common::api::{api_get, api_token};
use common::{Denwa, registered_phone};
use testkit::baresip::{Phone, PhoneConfig};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// baresip subscribes 1 s after start, or 30 s later if its account was not added yet.
const FIRST_NOTIFY: Duration = Duration::from_secs(45);
const CHANGE: Duration = Duration::from_secs(15);

/// The presence status baresip shows for `uri` in its contact list (`contacts` command over
/// ctrl_tcp: "Online", "Busy", "Offline" or "Unknown"), without the terminal colours.
fn status(p: &mut Phone, uri: &str) -> String {
    let text = p.command("contacts", None).unwrap_or_default();
    let line = text.lines().find(|l| l.contains(uri)).unwrap_or("");
    let mut plain = String::new();
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (false, _) => plain.push(c),
            _ => {}
        }
    }
    plain
        .trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Polls baresip's contact list until `uri` shows `want`; records each status seen in `seen`.
fn wait_status(
    d: &Denwa,
    p: &mut Phone,
    uri: &str,
    want: &str,
    t: Duration,
    seen: &mut Vec<String>,
) {
    let start = std::time::Instant::now();
    loop {
        let s = status(p, uri);
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == want {
            return;
        }
        if start.elapsed() > t {
            d.print_logs();
            panic!(
                "baresip did not show {uri} as {want} (seen: {seen:?})\n{}",
                p.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn baresip_presence_follows_calls_and_dnd() {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    testkit::require_binary("curl").unwrap_or_else(|e| panic!("{e}"));
    let d = Denwa::start();
    for (n, pw) in [
        ("1001", "alice-secret-b"),
        ("1002", "bob-secret-cc"),
        ("1003", "carol-secret-d"),
    ] {
        d.add_extension(n, pw);
    }
    let silence = tempfile::tempdir().expect("tmp");
    let wav = common::tone_wav(silence.path(), "quiet.wav", &[], 0, 120_000);
    let mut desk = registered_phone(&d, "1002", "bob-secret-cc", &wav);
    let mut third = registered_phone(&d, "1003", "carol-secret-d", &wav);
    let uri = format!("sip:1002@{}", d.sip_addr());
    let mut cfg = PhoneConfig::new("1001")
        .registering(&d.sip_addr(), "alice-secret-b", 600)
        .with_audio(&wav);
    cfg.lifetime = Duration::from_secs(120);
    cfg.config_lines = vec![
        "module_app\t\tcontact.so".into(),
        "module_app\t\tpresence.so".into(),
    ];
    cfg.files = vec![(
        "contacts".into(),
        format!("\"Desk\" <{uri}>;presence=p2p\n"),
    )];
    let mut watcher = Phone::start(cfg).expect("baresip starts");
    watcher
        .wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("the watcher registers");

    let mut seen = Vec::new();
    wait_status(&d, &mut watcher, &uri, "Online", FIRST_NOTIFY, &mut seen);
    // The API lists baresip's subscription with what its last NOTIFY said.
    let token = api_token(&d);
    let subs = api_get(&d, &token, "/subscriptions");
    let s = &subs["items"][0];
    assert_eq!(subs["total"], 1, "{subs}");
    assert_eq!(
        (
            s["subscriber"].as_str(),
            s["event"].as_str(),
            s["resource"].as_str()
        ),
        (Some("1001"), Some("presence"), Some("1002")),
        "{subs}"
    );
    assert_eq!(s["last_state"], "open (Available)", "{subs}");
    assert!(
        s["source"]
            .as_str()
            .is_some_and(|v| v.starts_with("127.0.0.1:")),
        "{subs}"
    );

    // A call: on the phone.
    desk.dial(&format!("sip:1003@{}", d.sip_addr()))
        .expect("dial");
    desk.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("1002 talks");
    third
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("1003 answers");
    wait_status(&d, &mut watcher, &uri, "Busy", CHANGE, &mut seen);
    desk.hangup().expect("hang up");
    desk.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("ended");
    wait_status(&d, &mut watcher, &uri, "Online", CHANGE, &mut seen);

    // DND by feature code from the phone, then off again.
    for (code, want) in [("*78", "Busy"), ("*79", "Online")] {
        desk.clear_events();
        desk.dial(&format!("sip:{code}@{}", d.sip_addr()))
            .expect("dial the code");
        desk.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
            .expect("the code's call ends");
        wait_status(&d, &mut watcher, &uri, want, CHANGE, &mut seen);
    }
    assert_eq!(
        seen.iter().filter(|s| s.as_str() == "Busy").count(),
        2,
        "busy on the call and under DND: {seen:?}"
    );
}
