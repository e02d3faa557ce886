//! Recording a prompt by phone with real phones (`record_prompt`, `*77` + the prompt's number):
//! 1001, named in `prompts.recorders`, dials `*77` + the number of `ivr-welcome`, speaks a known
//! tone sequence after the beep, ends with `#` (RFC 4733) and keeps it with `1`. `denwa prompt
//! list --json` then shows the prompt as recorded by phone 1001, the stored file holds the tones,
//! and 1003 calling the IVR whose greeting is `ivr-welcome` hears them. 1003, not named in the
//! setting, dialling the same code is refused ("not valid", hung up) and nothing changes.
//! Prompts are not installed in tests: every other prompt plays the error tone
//! (950/1400/1800 Hz, 1 s), which none of the checked tones is.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Denwa, registered_phone as phone, tone_wav as wav};
use testkit::tone;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// What 1001 records as the new prompt.
const A_TONES: [u32; 4] = [500, 700, 1100, 1300];
/// 1003's own audio (must never come back to it).
const B_TONES: [u32; 4] = [1600, 2000, 2300, 2600];

/// `ivr-welcome` in English as `denwa prompt list --json` shows it.
fn welcome(d: &Denwa) -> serde_json::Value {
    let list = d.cli_ok(&["prompt", "list", "--lang", "en", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&list).expect("json");
    rows.into_iter()
        .find(|r| r["id"] == "ivr-welcome")
        .expect("ivr-welcome listed")
}

#[test]
fn a_permitted_phone_records_a_prompt_that_callers_then_hear_and_others_are_refused() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1003", "carol-secret-d");
    d.cli_ok(&["setting", "set", "prompts.recorders", "1001"]);
    // The menu is added after the setting: its reload carries the setting too.
    d.cli_ok(&[
        "ivr",
        "add",
        "main",
        "--number",
        "500",
        "--greeting",
        "ivr-welcome",
        "--option",
        "1=ext:1001",
    ]);
    d.wait_until("the menu loaded", Duration::from_secs(10), || {
        d.logs()
            .lines()
            .any(|l| l.contains("voice applications loaded") && l.contains("ivrs=1"))
    });
    let before = welcome(&d);
    let number = before["number"].as_u64().expect("a prompt number");
    assert_eq!(before["source"], "missing", "{before}");

    // 1001: answered, the prompt as it is (1 s) and "record after the tone" (1 s), the beep
    // (0.4 s): the recording runs from about 2.4 s. Its tones from 3.5 s to 4.6 s (3 s of
    // silence would end the recording at 7.6 s), '#' at 5.5 s, then '1' to keep.
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 3_500, 30_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    a.dial(&format!("sip:*77{number}@{}", d.sip_addr()))
        .expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("*77{number} was not answered: {e}")
        });
    std::thread::sleep(Duration::from_millis(5_500));
    a.send_dtmf("#").expect("DTMF");
    std::thread::sleep(Duration::from_millis(1_500));
    a.send_dtmf("1").expect("DTMF");
    a.wait_event("CALL_CLOSED", Duration::from_secs(20))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the recorder did not end the call: {e}")
        });
    let mut now = serde_json::Value::Null;
    d.wait_until("the prompt kept", Duration::from_secs(10), || {
        now = welcome(&d);
        now["source"] == "recorded"
    });
    assert_eq!(now["recorded_by"], "1001", "{now}");
    assert_eq!(now["number"].as_u64(), Some(number));
    let listing = d.cli_ok(&["prompt", "list", "--lang", "en"]);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("ivr-welcome") && l.contains("recorded by phone 1001")),
        "{listing}"
    );
    let file = PathBuf::from(now["path"].as_str().expect("path"));
    tone::check_recording(&file, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the kept prompt does not hold the recorded tones: {e}")
    });
    let scratch = d.data_dir().join("prompts/scratch");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch files left: {left:?}");
    drop(a);

    // 1003 calls the menu: its greeting is the new recording.
    let b_wav = wav(audio.path(), "b.wav", &B_TONES, 500, 30_000);
    let mut b = phone(&d, "1003", "carol-secret-d", &b_wav);
    b.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    // The recording is about 3 s long; hang up before the menu could repeat it.
    std::thread::sleep(Duration::from_millis(5_000));
    b.hangup().expect("hang up");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    let heard = b.last_recording().expect("1003's recording");
    tone::check_recording(&heard, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the caller did not hear the recorded prompt: {e}")
    });

    // 1003 may not record: "not valid", hung up by the PBX; nothing changes.
    let kept = std::fs::read(&file).expect("prompt file");
    b.clear_events();
    b.dial(&format!("sip:*77{number}@{}", d.sip_addr()))
        .expect("dial");
    b.wait_event("CALL_CLOSED", Duration::from_secs(15))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the refused call was not ended by the PBX: {e}")
        });
    d.wait_until("the refusal logged", Duration::from_secs(5), || {
        d.logs().contains("prompt recording by phone refused")
    });
    let after = welcome(&d);
    assert_eq!(after["recorded_by"], "1001", "{after}");
    assert!(
        std::fs::read(&file).expect("prompt file") == kept,
        "the refused call changed the prompt"
    );
}
