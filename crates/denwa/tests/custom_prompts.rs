//! Named custom prompts end to end: a recording of known tones is uploaded through the REST API
//! (converted by the real sox), an IVR menu's greeting names it, and a baresip caller hears
//! those tones in order. While the menu plays it, deleting it is refused naming the menu (API
//! and CLI); `denwa prompt list --json` lists it; a file the API cannot read is refused with
//! the reason. Then the mailbox side: a name greeting uploaded through the API is what a
//! caller reaching that box hears in the default greeting (prompts are not installed in
//! tests: every catalogue prompt plays the error tone, which none of the checked tones is).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Denwa;
use common::api::api_token;
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The custom greeting: two tones apart from every PBX tone (ringback 400/440/480 Hz, the
/// error tone 950/1400/1800 Hz, the beep) and from the phone's own.
const GREETING: [u32; 2] = [2900, 3300];
/// 1002's recorded name.
const NAME: u32 = 2500;
/// What the caller sends, long after the greeting (never heard back).
const CALLER: [u32; 2] = [600, 800];

/// `curl` on the API with `token`: (HTTP status, body).
fn curl(d: &Denwa, token: &str, args: &[&str], path: &str) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(args)
        .arg(format!("http://127.0.0.1:{}/api/v1{path}", d.http_port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or_default(),
    )
}

fn upload(d: &Denwa, token: &str, path: &str, file: &Path) -> (u16, serde_json::Value) {
    let field = format!("file=@{}", file.display());
    curl(d, token, &["-X", "PUT", "-F", &field], path)
}

#[test]
fn uploaded_custom_prompt_and_mailbox_name_are_heard_by_a_caller() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    let token = api_token(&d);

    // The recording: 44.1 kHz stereo, as an administrator's file would be (sox makes it from
    // the 16 kHz tone file): converted on upload.
    let tones = audio.path().join("tones.wav");
    let layout = ToneLayout {
        lead_ms: 0,
        tone_ms: 600,
        gap_ms: 200,
        tail_ms: 200,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&tones, &GREETING, &layout, 0).expect("greeting");
    let upload_file = audio.path().join("main-greeting.wav");
    let st = Command::new("sox")
        .arg(&tones)
        .args(["-r", "44100", "-c", "2"])
        .arg(&upload_file)
        .status()
        .expect("sox");
    assert!(st.success());
    let (status, j) = upload(&d, &token, "/custom-prompts/main-greeting", &upload_file);
    assert_eq!(status, 201, "{j}");
    assert_eq!(j["variants"][0]["lang"], "any");
    // A file that is not audio is refused with the reason.
    let junk = audio.path().join("junk.wav");
    std::fs::write(&junk, b"<html>this is not audio</html>").expect("write");
    let (status, j) = upload(&d, &token, "/custom-prompts/holiday", &junk);
    assert_eq!(status, 422, "{j}");
    assert_eq!(j["error"]["field"], "file");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not a recognised audio file"),
        "{j}"
    );

    d.cli_ok(&[
        "ivr",
        "add",
        "main",
        "--number",
        "500",
        "--greeting",
        "main-greeting",
        "--option",
        "1=ext:1001",
        "--option",
        "2=vm:1002",
        "--timeout",
        "5",
    ]);
    d.wait_until("the menu loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });

    // While the menu plays it, the prompt cannot go (API and CLI say which menu).
    let (status, j) = curl(
        &d,
        &token,
        &["-X", "DELETE"],
        "/custom-prompts/main-greeting",
    );
    assert_eq!(status, 409, "{j}");
    assert_eq!(j["error"]["code"], "in_use");
    let out = d.cli(&["prompt", "custom", "remove", "main-greeting"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ivr:main"), "{err}");
    let list = d.cli_ok(&["prompt", "custom", "list"]);
    assert!(
        list.contains("main-greeting") && list.contains("ivr:main"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["prompt", "list", "--json"])).expect("JSON");
    let custom: Vec<_> = json
        .as_array()
        .expect("array")
        .iter()
        .filter(|p| p["category"] == "custom")
        .collect();
    assert_eq!(custom.len(), 1, "{custom:?}");
    assert_eq!(custom[0]["id"], "main-greeting");
    assert_eq!(custom[0]["used_by"][0], "main");

    // A caller hears the greeting's tones, in order.
    let quiet = common::tone_wav(audio.path(), "quiet.wav", &CALLER, 20_000, 24_000);
    let mut a = common::registered_phone(&d, "1001", "alice-secret-b", &quiet);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the IVR did not answer: {e}")
        });
    // The greeting lasts 1.6 s; the menu then waits 5 s for a digit.
    std::thread::sleep(Duration::from_millis(3000));
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("hang-up: {e}"));
    let heard = a.last_recording().expect("recording");
    tone::check_recording(&heard, &GREETING, &CALLER).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the custom greeting: {e}")
    });
    assert!(
        !d.logs()
            .lines()
            .any(|l| l.contains("prompt missing") && l.contains("main-greeting")),
        "the custom prompt was found"
    );

    // 1002's name, uploaded through the API (refused first when it is not audio).
    let (status, j) = upload(&d, &token, "/voicemail/1002/greetings/name", &junk);
    assert_eq!(status, 422, "{j}");
    assert_eq!(j["error"]["field"], "file");
    let name = audio.path().join("name.wav");
    tone::write_tone_wav(&name, &[NAME], &layout, 0).expect("name");
    let (status, j) = upload(&d, &token, "/voicemail/1002/greetings/name", &name);
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["present"], true);
    d.wait_until("the mailbox reloaded", Duration::from_secs(10), || {
        d.logs().matches("voice applications loaded").count() >= 2
    });
    // Option 2 leaves a message for 1002, who has no unavailable greeting: the default one
    // says the recorded name instead of the number.
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the IVR did not answer: {e}")
        });
    std::thread::sleep(Duration::from_millis(2200));
    a.send_dtmf("2").expect("DTMF");
    std::thread::sleep(Duration::from_millis(3000));
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("hang-up: {e}"));
    let heard = a.last_recording().expect("recording");
    let expected: Vec<u32> = GREETING.iter().copied().chain([NAME]).collect();
    // The CLI's whole cycle on another prompt: add a Japanese variant, rename, remove.
    let out = d.cli_ok(&[
        "prompt",
        "custom",
        "add",
        "holiday",
        name.to_str().expect("utf-8 path"),
        "--lang",
        "ja",
        "--description",
        "Closed days",
    ]);
    assert!(out.contains("custom prompt holiday (ja) added"), "{out}");
    let bad = d.cli(&[
        "prompt",
        "custom",
        "add",
        "goodbye",
        name.to_str().expect("path"),
    ]);
    assert!(!bad.status.success(), "a catalogue id is not a custom name");
    d.cli_ok(&["prompt", "custom", "edit", "holiday", "--rename", "closed"]);
    let listed: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["prompt", "custom", "list", "--json"])).expect("JSON");
    let closed = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["id"] == "closed")
        .expect("renamed");
    assert_eq!(closed["lang"], "ja");
    assert_eq!(closed["present"], true, "the file was renamed too");
    assert_eq!(closed["description"], "Closed days");
    let out = d.cli_ok(&["prompt", "custom", "remove", "closed"]);
    assert!(out.contains("removed (ja)"), "{out}");
    tone::check_recording(&heard, &expected, &CALLER).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the menu and then 1002's recorded name: {e}")
    });
}
