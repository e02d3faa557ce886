//! Call recording end to end with two real softphones (baresip): a call from an extension with
//! policy `always` is recorded with both parties' tones in the order they were sent, the
//! recording is linked to the call record and served by the API; `*1` (RFC 4733 from the
//! phone) starts and stops an on-demand recording; a full disk (a tiny tmpfs mounted over
//! the recordings directory in the server's own mount namespace) stops the recording with an
//! error status and a counter while the call goes on.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Denwa, Opts};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The caller's tones first, the callee's after them: in a mono mix they must come out in
/// exactly this order.
fn layouts() -> (ToneLayout, ToneLayout, u32) {
    let a = ToneLayout::default();
    let a_end = a.sequence_ms(CALLER_TONES.len());
    let b = ToneLayout {
        lead_ms: a_end + 300,
        ..ToneLayout::default()
    };
    let total = b.sequence_ms(CALLEE_TONES.len()) + 300;
    (a, b, total)
}

fn tone_files(dir: &Path) -> (PathBuf, PathBuf, u32) {
    let (la, lb, total) = layouts();
    let a = dir.join("a.wav");
    let b = dir.join("b.wav");
    // Both files as long as the whole exchange: a call ends when a phone's file does.
    tone::write_tone_wav(&a, &CALLER_TONES, &la, total).expect("tone file");
    tone::write_tone_wav(&b, &CALLEE_TONES, &lb, total).expect("tone file");
    (a, b, total)
}

fn phone(d: &Denwa, user: &str, password: &str, wav: &Path) -> Phone {
    phone_with(d, user, password, wav, None)
}

/// A phone; `codec` = (`audio_codecs` value, baresip module) limits it to one codec.
fn phone_with(
    d: &Denwa,
    user: &str,
    password: &str,
    wav: &Path,
    codec: Option<(&str, &str)>,
) -> Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = PhoneConfig::new(user)
        .registering(&d.sip_addr(), password, 600)
        .with_audio(wav);
    if let Some((codecs, module)) = codec {
        cfg.account_params.push(format!("audio_codecs={codecs}"));
        cfg.config_lines.push(format!("module\t\t\t{module}.so"));
    }
    let mut p = Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

fn setup(d: &Denwa, policy: &str) {
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    d.cli_ok(&["recording", "policy", "extension", "1001", policy]);
    // Call control decides with its configuration snapshot, reloaded on the change.
    d.wait_until("the policy loaded", Duration::from_secs(10), || {
        d.logs().contains("recording policies loaded policies=1")
    });
}

fn call(d: &Denwa, a: &mut Phone, b: &mut Phone) {
    a.dial(&format!("sip:1002@{}", d.sip_addr())).expect("dial");
    a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("caller: {e}")
        });
    b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("callee established");
}

fn hang_up(a: &mut Phone, b: &mut Phone) {
    // The phones hang up by themselves when their audio files end.
    let _ = a.hangup();
    a.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("caller closed");
    b.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");
}

fn recordings(d: &Denwa) -> Vec<serde_json::Value> {
    let out = d.cli_ok(&["recording", "list", "--json"]);
    serde_json::from_str(&out).expect("recording list JSON")
}

/// Waits until every recording row has finished (none `recording`), returning them.
fn finished(d: &Denwa, n: usize) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    d.wait_until("the recording rows", Duration::from_secs(15), || {
        rows = recordings(d);
        rows.len() >= n && rows.iter().all(|r| r["status"] != "recording")
    });
    rows
}

fn api_token(d: &Denwa) -> String {
    let db = d.data_dir().join(store::SQLITE_FILE);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let s = store::Store::open(
                db.to_str().expect("utf-8 path"),
                store::OpenOptions::default(),
            )
            .await
            .expect("open the server's database");
            let (_, token) = s
                .create_api_key(None, "recording-test", store::ApiScope::Read)
                .await
                .expect("API key");
            s.close().await;
            token
        })
}

/// A plain HTTP/1.0 GET: (status line and headers, body bytes).
fn http_get(port: u16, path: &str, token: Option<&str>) -> (String, Vec<u8>) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect HTTP");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").expect("send");
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("read");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    (
        String::from_utf8_lossy(&out[..split]).into_owned(),
        out[split + 4..].to_vec(),
    )
}

#[test]
fn an_always_policy_records_both_parties_in_order_linked_to_the_call() {
    let d = Denwa::start();
    setup(&d, "always");
    let dir = tempfile::tempdir().expect("tmp");
    let (a_wav, b_wav, total) = tone_files(dir.path());
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    call(&d, &mut a, &mut b);
    std::thread::sleep(Duration::from_millis(u64::from(total) + 500));
    hang_up(&mut a, &mut b);

    let rows = finished(&d, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["status"], "stopped", "{r}");
    assert_eq!(r["format"], "wav");
    let rel = r["path"].as_str().expect("path");
    assert!(rel.starts_with("recordings/1/"), "{rel}");
    let file = d.data_dir().join(rel);
    // Both parties, in the order they spoke (mono mix).
    let expected: Vec<u32> = CALLER_TONES.iter().chain(&CALLEE_TONES).copied().collect();
    let heard = tone::detect_file(&file, &expected).expect("readable WAV");
    if heard != expected {
        d.print_logs();
        panic!("recording holds {heard:?}, expected {expected:?}");
    }
    let ms = r["duration_ms"].as_i64().expect("duration");
    assert!(ms >= i64::from(total) - 1000, "duration {ms} ms of {total}");

    // The call record is the same call.
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["call_id"], r["call_id"], "{:?}", cdrs[0]);

    // The API lists it for that call and serves the audio with its content type.
    let token = api_token(&d);
    let id = r["id"].as_i64().expect("id");
    let call_id = r["call_id"].as_str().expect("call id");
    let enc: String = call_id
        .bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-_.".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    let (h, body) = http_get(
        d.http_port,
        &format!("/api/v1/recordings?call_id={enc}"),
        Some(&token),
    );
    assert!(h.starts_with("HTTP/1.0 200"), "{h}");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(list[0]["id"], id, "{list}");
    let (h, body) = http_get(
        d.http_port,
        &format!("/api/v1/recordings/{id}/audio?download=true"),
        Some(&token),
    );
    assert!(h.starts_with("HTTP/1.0 200"), "{h}");
    assert!(
        h.to_ascii_lowercase().contains("content-type: audio/wav"),
        "{h}"
    );
    assert_eq!(
        body,
        std::fs::read(&file).expect("file"),
        "the file as written"
    );
    let (h, _) = http_get(d.http_port, &format!("/api/v1/recordings/{id}/audio"), None);
    assert!(h.starts_with("HTTP/1.0 401"), "no key, no audio: {h}");
    let (_, m) = http_get(d.http_port, "/metrics", None);
    let m = String::from_utf8_lossy(&m);
    assert!(m.contains("\ndenwa_recordings_active 0\n"), "{m}");
    assert!(m.contains("\ndenwa_recording_failures_total 0\n"), "{m}");
}

#[test]
fn a_transcoded_call_is_recorded_from_its_endpoints() {
    // Opus-only caller, PCMU-only callee: Denwa decodes and re-encodes (an anchored call); the
    // caller's endpoint records what its phone sends and what the bridge sends it.
    let d = Denwa::start();
    setup(&d, "always");
    let dir = tempfile::tempdir().expect("tmp");
    let (a_wav, b_wav, total) = tone_files(dir.path());
    let mut a = phone_with(
        &d,
        "1001",
        "alice-secret-b",
        &a_wav,
        Some(("opus/48000/2", "opus")),
    );
    let mut b = phone_with(
        &d,
        "1002",
        "bob-secret-cc",
        &b_wav,
        Some(("PCMU/8000/1", "g711")),
    );
    call(&d, &mut a, &mut b);
    std::thread::sleep(Duration::from_millis(u64::from(total) + 500));
    hang_up(&mut a, &mut b);
    assert!(d.logs().contains("decoded and re-encoded"), "{}", d.logs());
    let rows = finished(&d, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "stopped", "{:?}", rows[0]);
    let file = d.data_dir().join(rows[0]["path"].as_str().expect("path"));
    let expected: Vec<u32> = CALLER_TONES.iter().chain(&CALLEE_TONES).copied().collect();
    let heard = tone::detect_file(&file, &expected).expect("readable WAV");
    if heard != expected {
        d.print_logs();
        panic!("recording holds {heard:?}, expected {expected:?}");
    }
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["call_id"], rows[0]["call_id"]);
    assert_eq!(cdrs[0]["codec"], "opus/PCMU");
}

#[test]
fn star_one_starts_and_stops_an_on_demand_recording() {
    let d = Denwa::start();
    // No beep here: the check below is that the toggles leave every tone of the call intact
    // (the beep covers 400 ms of audio; recording_more.rs checks it).
    d.cli_ok(&["setting", "set", "recording.beep", "off"]);
    setup(&d, "on_demand");
    d.wait_until("the beep setting loaded", Duration::from_secs(10), || {
        d.logs()
            .contains("recording policies loaded policies=1 tenants=0 beep=Off")
    });
    let dir = tempfile::tempdir().expect("tmp");
    let (a_wav, b_wav, total) = tone_files(dir.path());
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    call(&d, &mut a, &mut b);
    // Nothing is recorded until a party asks.
    std::thread::sleep(Duration::from_millis(300));
    assert!(recordings(&d).is_empty());
    // The callee keys *1: a recording starts; *1 again stops it; the call goes on.
    b.send_dtmf("*1").expect("DTMF");
    d.wait_until("an on-demand recording", Duration::from_secs(10), || {
        recordings(&d).iter().any(|r| r["status"] == "recording")
    });
    std::thread::sleep(Duration::from_millis(1200));
    b.send_dtmf("*1").expect("DTMF");
    let rows = finished(&d, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "stopped", "{:?}", rows[0]);
    let ms = rows[0]["duration_ms"].as_i64().expect("duration");
    assert!(
        (500..i64::from(total)).contains(&ms),
        "an on-demand recording of about 1.2 s, not the whole call: {ms} ms"
    );
    let file = d.data_dir().join(rows[0]["path"].as_str().expect("path"));
    assert!(std::fs::metadata(&file).expect("file").len() > 44);
    std::thread::sleep(Duration::from_millis(u64::from(total)));
    hang_up(&mut a, &mut b);
    // The callee still heard all of the caller's tones: the toggles never disturbed the call.
    let b_heard = b.last_recording().expect("callee recording");
    tone::check_recording(&b_heard, &CALLER_TONES, &CALLEE_TONES)
        .unwrap_or_else(|e| panic!("callee did not hear the caller: {e}"));
    assert_eq!(
        recordings(&d).len(),
        1,
        "no second recording after the call"
    );
}

#[test]
fn a_full_disk_stops_the_recording_and_the_call_goes_on() {
    testkit::require_binary("unshare").unwrap_or_else(|e| panic!("{e}"));
    // The server runs in its own mount namespace with a 12 KiB tmpfs over its recordings
    // directory: under a second of audio fits.
    let d = Denwa::start_with(Opts::small_tmpfs("recordings", "12k"));
    setup(&d, "always");
    let dir = tempfile::tempdir().expect("tmp");
    let (a_wav, b_wav, total) = tone_files(dir.path());
    let mut a = phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = phone(&d, "1002", "bob-secret-cc", &b_wav);
    call(&d, &mut a, &mut b);
    let rows = {
        let mut rows = Vec::new();
        d.wait_until("the recording to fail", Duration::from_secs(15), || {
            rows = recordings(&d);
            rows.iter().any(|r| r["status"] == "disk-full")
        });
        rows
    };
    assert!(
        rows[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("No space"),
        "{:?}",
        rows[0]
    );
    assert!(
        d.logs()
            .contains("ALERT: call recording stopped early; the call goes on"),
        "{}",
        d.logs()
    );
    let (_, m) = http_get(d.http_port, "/metrics", None);
    let m = String::from_utf8_lossy(&m);
    assert!(m.contains("\ndenwa_recording_failures_total 1\n"), "{m}");
    // The call is still up and carries audio both ways to the end.
    std::thread::sleep(Duration::from_millis(u64::from(total) + 500));
    hang_up(&mut a, &mut b);
    let b_heard = b.last_recording().expect("callee recording");
    tone::check_recording(&b_heard, &CALLER_TONES, &CALLEE_TONES)
        .unwrap_or_else(|e| panic!("callee did not hear the caller after the disk filled: {e}"));
    let a_heard = a.last_recording().expect("caller recording");
    tone::check_recording(&a_heard, &CALLEE_TONES, &CALLER_TONES)
        .unwrap_or_else(|e| panic!("caller did not hear the callee after the disk filled: {e}"));
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(10), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    assert_eq!(cdrs[0]["disposition"], "ANSWERED");
}

/// `denwa recording` without a server: precise errors, settings, JSON, the sweep.
#[test]
fn the_recording_cli_validates_and_sweeps() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .args(["--data-dir", &dir.path().display().to_string()])
            .output()
            .expect("run denwa")
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let o = run(&["extension", "add", "1001", "--password", "alice-secret-b"]);
    assert!(o.status.success(), "{}", text(&o));
    for (args, says) in [
        (
            &["recording", "policy", "extension", "1999", "always"][..],
            "1999",
        ),
        (
            &["recording", "policy", "did", "1001", "always"][..],
            "kind",
        ),
        (
            &["recording", "policy", "extension", "1001", "sometimes"][..],
            "policy",
        ),
        (
            &["recording", "settings", "--retention-days", "99999"][..],
            "--retention-days",
        ),
        (
            &["recording", "settings", "--format", "mp3"][..],
            "--format",
        ),
    ] {
        let o = run(args);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    let o = run(&["recording", "policy", "extension", "1001", "on-demand"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["recording", "policies", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!([{ "kind": "extension", "name": "1001", "policy": "on_demand" }])
    );
    let o = run(&[
        "recording",
        "settings",
        "--retention-days",
        "30",
        "--layout",
        "stereo",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({ "retention_days": 30, "format": "wav", "layout": "stereo" })
    );
    let o = run(&["recording", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    let o = run(&["recording", "sweep"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 recording(s)"), "{}", text(&o));
}
