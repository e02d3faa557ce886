//! Voicemail with real phones: a baresip phone leaves a message (a known tone sequence) in
//! 1002's box through an IVR option; the message is indexed (`denwa voicemail list`); 1002
//! calls `*97`, enters its PIN by RFC 4733 DTMF, presses 1 and hears the same tones, presses 7
//! to delete it — the index and the file are gone. 1002's phone subscribes to its
//! message-waiting state (baresip's `mwi` module) and sees the counts go 0 → 1 → 0 in the
//! NOTIFYs. The message is also e-mailed, with its WAV, to an SMTP sink (aiosmtpd from
//! Debian, started here on a free port) and the attachment holds the same tones. Prompts are
//! not installed in tests: every
//! prompt plays the error tone (950/1400/1800 Hz), which none of the checked tones is.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Denwa;
use common::mail::{smtp_sink, wav_attachment};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The caller's message.
const A_TONES: [u32; 4] = [500, 700, 1100, 1300];
/// The owner's own audio while in the menus (must never come back).
const B_TONES: [u32; 4] = [1600, 2000, 2300, 2600];

fn wav(dir: &Path, name: &str, freqs: &[u32], lead_ms: u32, min_ms: u32) -> PathBuf {
    let path = dir.join(name);
    let layout = ToneLayout {
        lead_ms,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, freqs, &layout, min_ms).expect("tone file");
    path
}

fn phone(d: &Denwa, user: &str, password: &str, wav: &Path) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), password, 600)
        .with_audio(wav);
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

/// 1002's phone with baresip's message-waiting module: it SUBSCRIBEs to message-summary.
fn mwi_phone(d: &Denwa, wav: &Path) -> Phone {
    let mut cfg = PhoneConfig::new("1002")
        .registering(&d.sip_addr(), "bob-secret-cc", 600)
        .with_audio(wav);
    cfg.lifetime = Duration::from_secs(150);
    cfg.account_params.push("mwi=yes".into());
    cfg.config_lines.push("module_app\t\tmwi.so".into());
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("1002 did not register: {e}")
        });
    p
}

/// Waits for a NOTIFY whose body says `voice` (`1/0`) on `p`.
fn wait_mwi(d: &Denwa, p: &mut Phone, voice: &str) {
    let want = format!("Voice-Message: {voice} (0/0)");
    p.wait_event_where("MWI_NOTIFY", Duration::from_secs(30), |e| {
        e.param.contains(&want)
    })
    .unwrap_or_else(|e| {
        d.print_logs();
        panic!("no message-waiting NOTIFY with {want}: {e}")
    });
}

/// Extensions 1001 and 1002 (PIN 2580), menu 500 whose option 3 leaves a message for 1002.
fn setup(d: &Denwa) {
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    d.cli_ok(&["voicemail", "pin", "1002", "--pin", "2580"]);
    d.cli_ok(&[
        "ivr",
        "add",
        "main",
        "--number",
        "500",
        "--greeting",
        "ivr-welcome",
        "--option",
        "3=vm:1002",
    ]);
    d.wait_until(
        "the menu and the mailbox loaded",
        Duration::from_secs(10),
        || {
            d.logs().lines().any(|l| {
                l.contains("voice applications loaded")
                    && l.contains("ivrs=1")
                    && l.contains("mailboxes=1")
            })
        },
    );
}

fn messages(d: &Denwa) -> Vec<serde_json::Value> {
    let list = d.cli_ok(&["voicemail", "list", "1002", "--json"]);
    serde_json::from_str(&list).expect("json")
}

#[test]
fn a_message_left_by_one_phone_is_heard_and_deleted_by_the_owner_with_its_pin() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d);
    let maildir = audio.path().join("mail");
    let (_smtp, smtp_port) = smtp_sink(&maildir);
    for (k, v) in [
        ("mail.smtp_host", "127.0.0.1".to_string()),
        ("mail.smtp_port", smtp_port.to_string()),
        ("mail.smtp_security", "none".to_string()),
        ("mail.from", "pbx@example.com".to_string()),
    ] {
        d.cli_ok(&["setting", "set", k, &v]);
    }
    d.cli_ok(&["voicemail", "edit", "1002", "--email", "bob@example.com"]);

    // 1002's phone subscribes and is told: nothing waiting.
    let b_wav = wav(audio.path(), "b.wav", &B_TONES, 500, 140_000);
    let mut b = mwi_phone(&d, &b_wav);
    wait_mwi(&d, &mut b, "0/0");
    assert!(
        d.logs().contains("subscribed"),
        "a subscription, not unsolicited NOTIFYs"
    );

    // 1001 leaves a message: menu (1 s), "3", the default greeting (7 prompts, here error
    // tones of 1 s), the beep, then its tones at 12 s; 5 s of silence end the recording.
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 12_000, 40_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    std::thread::sleep(Duration::from_millis(1500));
    a.send_dtmf("3").expect("DTMF");
    a.wait_event("CALL_CLOSED", Duration::from_secs(45))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
    let mut msgs = Vec::new();
    d.wait_until("the message indexed", Duration::from_secs(10), || {
        msgs = messages(&d);
        msgs.len() == 1
    });
    let m = &msgs[0];
    assert_eq!(m["folder"], "new", "{m}");
    assert_eq!(m["caller"], "1001", "{m}");
    assert_eq!(m["reason"], "unavailable", "{m}");
    let file = PathBuf::from(m["path"].as_str().expect("path"));
    tone::check_recording(&file, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the message does not hold the caller's tones: {e}")
    });
    drop(a);
    wait_mwi(&d, &mut b, "1/0");

    // The e-mail reached the sink with the message attached.
    let mut mails = Vec::new();
    d.wait_until("the e-mail at the sink", Duration::from_secs(20), || {
        mails = std::fs::read_dir(maildir.join("new"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        !mails.is_empty()
    });
    let mail = std::fs::read_to_string(&mails[0]).expect("mail");
    assert!(mail.contains("To: bob@example.com"), "{mail:.400}");
    assert!(mail.contains("Subject: Voicemail from 1001"), "{mail:.400}");
    let attached = audio.path().join("attached.wav");
    std::fs::write(&attached, wav_attachment(&mail)).expect("write");
    tone::check_recording(&attached, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the mailed WAV does not hold the caller's tones: {e}")
    });
    let shown: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["voicemail", "show", "1002", "--json"])).expect("json");
    assert_eq!(shown["mail"][0]["status"], "sent", "{shown}");

    // 1002 calls its own box, enters the PIN digit by digit (RFC 4733), then 1: listen.
    b.dial(&format!("sip:*97@{}", d.sip_addr())).expect("dial");
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("*97 was not answered: {e}")
        });
    std::thread::sleep(Duration::from_millis(1000));
    for digit in ["2", "5", "8", "0", "#"] {
        b.send_dtmf(digit).expect("DTMF");
        std::thread::sleep(Duration::from_millis(400));
    }
    d.wait_until("the PIN accepted", Duration::from_secs(10), || {
        d.logs().contains("voicemail menus: mailbox opened")
    });
    std::thread::sleep(Duration::from_millis(1000));
    b.send_dtmf("1").expect("DTMF");
    // The envelope (about 10 prompts), then the message (its tones about 3 s in).
    std::thread::sleep(Duration::from_millis(17_000));
    b.send_dtmf("7").expect("DTMF");
    d.wait_until("the message deleted", Duration::from_secs(10), || {
        messages(&d).is_empty()
    });
    assert!(!file.exists(), "the file went with the index entry");
    wait_mwi(&d, &mut b, "0/0");
    b.hangup().expect("hang up");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    let heard = b.last_recording().expect("owner's recording");
    tone::check_recording(&heard, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the owner did not hear the message: {e}")
    });
    d.wait_until("every endpoint freed", Duration::from_secs(10), || {
        d.logs().matches("media endpoint closed").count() >= 2
    });
}

#[test]
fn a_caller_hanging_up_mid_message_leaves_the_message_and_nothing_else() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    setup(&d);
    // The tones start at 12 s (the recording runs from about 9.5 s); the caller hangs up at
    // 15 s, before any silence could end the recording.
    let a_wav = wav(audio.path(), "a.wav", &A_TONES, 12_000, 40_000);
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    a.dial(&format!("sip:500@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("answered");
    std::thread::sleep(Duration::from_millis(1500));
    a.send_dtmf("3").expect("DTMF");
    std::thread::sleep(Duration::from_millis(13_500));
    a.hangup().expect("hang up");
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT).expect("closed");
    let mut msgs = Vec::new();
    d.wait_until("the message indexed", Duration::from_secs(10), || {
        msgs = messages(&d);
        msgs.len() == 1
    });
    let file = PathBuf::from(msgs[0]["path"].as_str().expect("path"));
    tone::check_recording(&file, &A_TONES, &B_TONES).unwrap_or_else(|e| {
        d.print_logs();
        panic!("what was said before the hang-up is not in the message: {e}")
    });
    // Only that file in the box; the endpoint is closed and the call recorded as the caller's
    // hang-up.
    let dir = file.parent().expect("box dir");
    let files: Vec<_> = std::fs::read_dir(dir).expect("dir").flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let cdr = d.call_cleaned_up();
    assert_eq!(cdr["hangup_by"], "caller", "{cdr}");
}

#[test]
fn greetings_are_uploaded_converted_and_removed_by_the_cli() {
    let d = Denwa::start();
    let audio = tempfile::tempdir().expect("tmp");
    d.add_extension("1002", "bob-secret-cc");
    let src = wav(audio.path(), "greeting.wav", &A_TONES, 200, 2000);
    let out = d.cli_ok(&[
        "voicemail",
        "greeting",
        "1002",
        "busy",
        src.to_str().expect("utf-8"),
    ]);
    assert!(out.contains("busy greeting of mailbox 1002 set"), "{out}");
    let kept = d.data_dir().join("voicemail/1/1002/greeting-busy.wav");
    tone::check_recording(&kept, &A_TONES, &B_TONES).expect("the converted greeting");
    let shown: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["voicemail", "show", "1002", "--json"])).expect("json");
    assert_eq!(shown["greeting_busy"], true);
    // Unreadable input is refused with a reason, and changes nothing.
    let junk = audio.path().join("junk.wav");
    std::fs::write(&junk, b"not audio at all").expect("write");
    let r = d.cli(&[
        "voicemail",
        "greeting",
        "1002",
        "unavailable",
        junk.to_str().expect("utf-8"),
    ]);
    assert!(!r.status.success());
    let shown: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["voicemail", "show", "1002", "--json"])).expect("json");
    assert_eq!(shown["greeting_unavailable"], false);
    d.cli_ok(&["voicemail", "greeting", "1002", "busy", "--remove"]);
    assert!(!kept.exists());
}
