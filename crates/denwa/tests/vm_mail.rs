//! Voicemail e-mail end to end, with real phones and a real SMTP server (aiosmtpd from
//! Debian, started here), and a full disk under voicemail. A message left by a baresip phone
//! (`*99` + box, a short uploaded greeting) is mailed with its WAV, and
//! - `delete_after_mail`: once the sink has it, the message is gone from the index and the
//!   disk and the owner's subscribed phone is told 0 messages;
//! - the SMTP server down: the outbox retries with backoff (`mail.retry_first_s` shortened),
//!   the attempts and the last error show in the REST API, `/metrics` counts the failures;
//!   the server comes up on the same port and the e-mail is delivered;
//! - STARTTLS with AUTH against a server whose certificate a private CA signed: refused until
//!   `mail.smtp_ca_file` names that CA, then delivered authenticated; then implicit TLS.
//!
//! A full disk (a 12 KiB tmpfs over `voicemail/` in the server's own mount namespace): the
//! message stops with an ALERT line (`alert="voicemail disk full"`) and a count in `/metrics`,
//! nothing is indexed and no file is left, the caller hears "mailbox full" and the call ends.
//!
//! Prompts are not installed in tests: each prompt plays the error tone (950/1400/1800 Hz),
//! which none of the checked tones is.

mod common;

use std::path::Path;
use std::time::Duration;

use common::api::{api_get, api_token};
use common::mail::{self, Tls};
use common::{Denwa, Opts};
use testkit::baresip::Phone;
use testkit::tone;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The caller's message.
const A_TONES: [u32; 4] = [500, 700, 1100, 1300];
/// Never sent by anyone.
const NOT_SENT: [u32; 2] = [1600, 2300];

/// Extensions 1001 and 1002; 1002's box mails `bob@example.com` (and then deletes the message
/// when `delete_after_mail`) and has a short greeting; SMTP settings point at 127.0.0.1:`port`
/// with `security`. Returns once the running server has loaded the box with its greeting.
fn setup(d: &Denwa, dir: &Path, port: u16, security: &str, delete_after_mail: bool) {
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    for (k, v) in [
        ("mail.smtp_host", "127.0.0.1".to_string()),
        ("mail.smtp_port", port.to_string()),
        ("mail.smtp_security", security.to_string()),
        ("mail.from", "pbx@example.com".to_string()),
        ("mail.retry_first_s", "1".to_string()),
    ] {
        d.cli_ok(&["setting", "set", k, &v]);
    }
    d.cli_ok(&[
        "voicemail",
        "edit",
        "1002",
        "--email",
        "bob@example.com",
        "--delete-after-mail",
        if delete_after_mail { "true" } else { "false" },
    ]);
    box_loaded(d);
    // The greeting last, and waited for: the caller's tones are timed after it.
    let loads = d.logs().matches(APPS_LOADED).count();
    let greeting = common::tone_wav(dir, "greeting.wav", &[3000], 0, 500);
    d.cli_ok(&[
        "voicemail",
        "greeting",
        "1002",
        "unavailable",
        greeting.to_str().expect("utf-8"),
    ]);
    d.wait_until("the greeting loaded", Duration::from_secs(10), || {
        d.logs().matches(APPS_LOADED).count() > loads
    });
}

/// What the server logs when its voice applications (mailboxes among them) changed.
const APPS_LOADED: &str = "voice applications loaded";

/// Waits until the server has 1002's mailbox settings (the one box with settings; the
/// extensions, added before, are loaded by then).
fn box_loaded(d: &Denwa) {
    d.wait_until("the mailbox loaded", Duration::from_secs(10), || {
        d.logs()
            .lines()
            .any(|l| l.contains(APPS_LOADED) && l.contains("mailboxes=1"))
    });
}

/// 1001 calls `*991002` and leaves its tones; returns once the call ended by itself (5 s of
/// silence end the recording) and the message is indexed.
fn leave_message(d: &Denwa, a: &mut Phone) {
    a.dial(&format!("sip:*991002@{}", d.sip_addr()))
        .expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("*991002 was not answered: {e}")
        });
    a.wait_event("CALL_CLOSED", Duration::from_secs(40))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("the mailbox did not end the call: {e}")
        });
}

/// The caller's phone: its tones 4 s into the call (the greeting, the prompt and the beep
/// come first), then silence.
fn caller(d: &Denwa, dir: &Path) -> Phone {
    let wav = common::tone_wav(dir, "a.wav", &A_TONES, 4000, 30_000);
    common::registered_phone(d, "1001", "alice-secret-b", &wav)
}

fn messages(d: &Denwa) -> Vec<serde_json::Value> {
    let list = d.cli_ok(&["voicemail", "list", "1002", "--json"]);
    serde_json::from_str(&list).expect("json")
}

/// Waits for the `n`th e-mail at the sink and checks its WAV holds the caller's tones.
fn mailed(d: &Denwa, maildir: &Path, n: usize, dir: &Path) -> String {
    let mut mails = Vec::new();
    d.wait_until("the e-mail at the sink", Duration::from_secs(30), || {
        mails = mail::received(maildir);
        mails.len() >= n
    });
    let text = std::fs::read_to_string(&mails[n - 1]).expect("mail");
    assert!(text.contains("To: bob@example.com"), "{text:.400}");
    assert!(text.contains("Subject: Voicemail from 1001"), "{text:.400}");
    let attached = dir.join(format!("attached-{n}.wav"));
    std::fs::write(&attached, mail::wav_attachment(&text)).expect("write");
    tone::check_recording(&attached, &A_TONES, &NOT_SENT).unwrap_or_else(|e| {
        d.print_logs();
        panic!("the mailed WAV does not hold the caller's tones: {e}")
    });
    text
}

/// `name value` of an unlabelled metric.
fn metric(d: &Denwa, name: &str) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-s", "-m", "10"])
        .arg(format!("http://127.0.0.1:{}/metrics", d.http_port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The box's outbox rows as the REST API shows them (newest first).
fn outbox(d: &Denwa, token: &str) -> Vec<serde_json::Value> {
    api_get(d, token, "/voicemail/1002")["mail"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_message_mailed_with_delete_after_mail_is_gone_and_mwi_drops_to_zero() {
    let d = Denwa::start();
    let dir = tempfile::tempdir().expect("tmp");
    let maildir = dir.path().join("mail");
    let (_sink, port) = mail::smtp_sink(&maildir);
    setup(&d, dir.path(), port, "none", true);

    // 1002's phone subscribes to its message-waiting state.
    let quiet = common::tone_wav(dir.path(), "quiet.wav", &[], 0, 120_000);
    let mut cfg = testkit::baresip::PhoneConfig::new("1002")
        .registering(&d.sip_addr(), "bob-secret-cc", 600)
        .with_audio(&quiet);
    cfg.lifetime = Duration::from_secs(120);
    cfg.account_params.push("mwi=yes".into());
    cfg.config_lines.push("module_app\t\tmwi.so".into());
    let mut b = Phone::start(cfg).expect("baresip starts");
    b.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("1002 registers");
    let mwi = |b: &mut Phone, voice: &str| {
        let want = format!("Voice-Message: {voice} (0/0)");
        b.wait_event_where("MWI_NOTIFY", Duration::from_secs(30), |e| {
            e.param.contains(&want)
        })
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("no message-waiting NOTIFY with {want}: {e}")
        });
    };
    mwi(&mut b, "0/0");

    let mut a = caller(&d, dir.path());
    leave_message(&d, &mut a);
    mwi(&mut b, "1/0");
    mailed(&d, &maildir, 1, dir.path());

    // Mailed, so deleted: index, file and the waiting count.
    d.wait_until("the message deleted", Duration::from_secs(10), || {
        messages(&d).is_empty()
    });
    mwi(&mut b, "0/0");
    let box_dir = d.data_dir().join("voicemail/1/1002");
    let left: Vec<String> = std::fs::read_dir(&box_dir)
        .expect("box dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("msg-"))
        .collect();
    assert!(left.is_empty(), "message files left: {left:?}");
    let shown: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["voicemail", "show", "1002", "--json"])).expect("json");
    assert_eq!(shown["mail"][0]["status"], "sent", "{shown}");
    assert_eq!(metric(&d, "denwa_vm_mail_sent_total"), 1);
}

#[test]
fn an_smtp_server_down_is_retried_with_backoff_shown_and_counted_then_delivered() {
    let d = Denwa::start();
    let dir = tempfile::tempdir().expect("tmp");
    let maildir = dir.path().join("mail");
    // Nobody listens on this port yet: every attempt is refused.
    let port = testkit::ports::free_port().expect("free port");
    setup(&d, dir.path(), port, "none", false);
    let token = api_token(&d);
    let mut a = caller(&d, dir.path());
    leave_message(&d, &mut a);

    let mut rows = Vec::new();
    d.wait_until("two failed attempts", Duration::from_secs(30), || {
        rows = outbox(&d, &token);
        rows.first()
            .and_then(|r| r["attempts"].as_i64())
            .is_some_and(|n| n >= 2)
    });
    let row = &rows[0];
    assert_eq!(row["status"], "pending", "retried, not given up: {row}");
    let err = row["last_error"].as_str().unwrap_or("");
    assert!(
        err.to_ascii_lowercase().contains("connect") || err.contains("refused"),
        "the last error says why: {row}"
    );
    assert!(metric(&d, "denwa_vm_mail_failures_total") >= 2);
    assert_eq!(metric(&d, "denwa_vm_mail_queue"), 1);
    assert!(
        d.logs().contains("voicemail e-mail failed"),
        "each failure is logged"
    );

    // The server comes up: the next retry (at most a few seconds away) delivers it.
    let _sink = mail::smtp_sink_on(&maildir, port);
    mailed(&d, &maildir, 1, dir.path());
    d.wait_until("the row marked sent", Duration::from_secs(10), || {
        outbox(&d, &token)
            .first()
            .is_some_and(|r| r["status"] == "sent" && r["last_error"] == "")
    });
    assert_eq!(metric(&d, "denwa_vm_mail_sent_total"), 1);
    assert_eq!(mail::received(&maildir).len(), 1, "delivered once");
    assert_eq!(messages(&d).len(), 1, "kept: delete_after_mail is off");
}

#[test]
fn starttls_with_auth_needs_the_private_ca_then_delivers_and_implicit_tls_too() {
    let d = Denwa::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (ca, cert, key) = mail::private_ca(dir.path());
    let maildir = dir.path().join("mail");
    let (mut sink, port) = mail::tls_sink(
        &maildir,
        Tls::StartTls,
        &cert,
        &key,
        "pbx-relay",
        "relay-pass-7",
    );
    setup(&d, dir.path(), port, "starttls", false);
    d.cli_ok(&["setting", "set", "mail.smtp_username", "pbx-relay"]);
    d.cli_ok(&["voicemail", "mail-password", "--password", "relay-pass-7"]);
    let token = api_token(&d);
    let mut a = caller(&d, dir.path());
    leave_message(&d, &mut a);

    // The public roots do not vouch for the private CA: refused, and the reason shown.
    let mut rows = Vec::new();
    d.wait_until("a refused attempt", Duration::from_secs(30), || {
        rows = outbox(&d, &token);
        rows.first()
            .and_then(|r| r["attempts"].as_i64())
            .is_some_and(|n| n >= 1)
    });
    assert_eq!(rows[0]["status"], "pending", "{}", rows[0]);
    let err = rows[0]["last_error"].as_str().unwrap_or("").to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("issuer") || err.contains("tls"),
        "{}",
        rows[0]
    );
    assert!(mail::received(&maildir).is_empty());

    // A path that is no PEM file is refused with a reason (the setting is the admin's).
    d.cli_ok(&["setting", "set", "mail.smtp_ca_file", "/nonexistent/ca.pem"]);
    d.wait_until("the CA file error shown", Duration::from_secs(30), || {
        outbox(&d, &token).first().is_some_and(|r| {
            r["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("mail.smtp_ca_file /nonexistent/ca.pem"))
        })
    });

    // Trusting the private CA: delivered over STARTTLS, authenticated.
    d.cli_ok(&[
        "setting",
        "set",
        "mail.smtp_ca_file",
        ca.to_str().expect("utf-8"),
    ]);
    mailed(&d, &maildir, 1, dir.path());
    let sink_log = std::fs::read_to_string(sink.stdout_path()).unwrap_or_default();
    assert!(sink_log.contains("AUTH"), "{sink_log}");
    assert!(sink_log.contains("accepted"), "{sink_log}");
    assert!(!sink_log.contains("refused"), "{sink_log}");
    sink.set_print_on_panic(false);
    drop(sink);

    // Implicit TLS (SMTPS) on another port, same CA and credentials.
    let maildir2 = dir.path().join("mail-smtps");
    let (_smtps, port2) = mail::tls_sink(
        &maildir2,
        Tls::Implicit,
        &cert,
        &key,
        "pbx-relay",
        "relay-pass-7",
    );
    d.cli_ok(&["setting", "set", "mail.smtp_port", &port2.to_string()]);
    d.cli_ok(&["setting", "set", "mail.smtp_security", "tls"]);
    // A fresh phone: baresip's own ports of the first call may not be free again yet.
    drop(a);
    let mut a = caller(&d, dir.path());
    leave_message(&d, &mut a);
    mailed(&d, &maildir2, 1, dir.path());
    d.wait_until("both rows sent", Duration::from_secs(10), || {
        let rows = outbox(&d, &token);
        rows.len() == 2 && rows.iter().all(|r| r["status"] == "sent")
    });
}

#[test]
fn a_full_disk_stops_the_message_with_an_alert_and_the_caller_hears_mailbox_full() {
    testkit::require_binary("unshare").unwrap_or_else(|e| panic!("{e}"));
    testkit::require_binary("nsenter").unwrap_or_else(|e| panic!("{e}"));
    // The server sees a 12 KiB tmpfs over its voicemail directory: under a second of audio
    // fits. (The CLI, outside that namespace, cannot put a greeting there: the default one
    // plays, eight error tones here.)
    let d = Denwa::start_with(Opts::small_tmpfs("voicemail", "12k"));
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    d.cli_ok(&["voicemail", "pin", "1002", "--pin", "2580"]);
    box_loaded(&d);
    let dir = tempfile::tempdir().expect("tmp");
    // Tones all through the recording, so no silence ends it before the disk fills.
    let many: Vec<u32> = A_TONES.iter().copied().cycle().take(40).collect();
    let wav = common::tone_wav(dir.path(), "a.wav", &many, 6000, 30_000);
    let mut a = common::registered_phone(&d, "1001", "alice-secret-b", &wav);
    leave_message(&d, &mut a);
    d.wait_until("the alert", Duration::from_secs(10), || {
        d.logs().contains("voicemail disk full")
    });
    let logs = d.logs();
    let alert = logs
        .lines()
        .find(|l| l.contains("voicemail disk full"))
        .unwrap_or_default();
    assert!(
        alert.contains("ERROR")
            && alert.contains("ALERT: voicemail message could not be written")
            && alert.contains("1002"),
        "{alert}"
    );
    assert!(
        logs.contains("voicemail message ended") && logs.contains("disk-full"),
        "{logs}"
    );
    assert_eq!(
        metric(&d, "denwa_vm_failures_total{reason=\"disk-full\"}"),
        1
    );
    assert!(messages(&d).is_empty(), "nothing indexed");
    // No file left in the box, as the server sees it.
    let pid = d.proc.as_ref().expect("server").pid().to_string();
    let box_dir = d.data_dir().join("voicemail/1/1002");
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid, "-m", "ls", "-A"])
        .arg(&box_dir)
        .output()
        .expect("nsenter");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the box directory (made for the message): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.trim().is_empty(),
        "files left in the box: {listing} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The call ended cleanly: its endpoint closed, a call record written.
    let cdr = d.call_cleaned_up();
    assert_eq!(cdr["disposition"], "ANSWERED", "{cdr}");
}
