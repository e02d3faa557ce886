//! What the transfer tests share: baresip phones playing tone files, waiting for events, the
//! server's API with a full-scope key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

use super::Denwa;

/// How long a phone event may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Phone `p` blind-transfers its call to `number` (baresip's `/transfer`).
pub fn transfer_to(d: &Denwa, p: &mut Phone, number: &str) {
    p.command("transfer", Some(&format!("sip:{number}@{}", d.sip_addr())))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("transfer command: {e}")
        });
}

/// Waits until `p`'s call ends (e.g. the transferor released); `what` names it in a failure.
pub fn call_closed(d: &Denwa, p: &mut Phone, what: &str) {
    p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{what}: {e}")
        });
}

/// A WAV playing `freqs` after `lead_ms` of silence, padded to `min_ms` (a baresip call ends
/// when its audio file does).
pub fn tones(dir: &Path, name: &str, freqs: &[u32], lead_ms: u32, min_ms: u32) -> PathBuf {
    let path = dir.join(name);
    let layout = ToneLayout {
        lead_ms,
        ..ToneLayout::default()
    };
    tone::write_tone_wav(&path, freqs, &layout, min_ms).expect("tone file");
    path
}

/// A registered baresip phone of `user` (auto-answer) playing `wav`.
pub fn phone(d: &Denwa, user: &str, password: &str, wav: &Path) -> Phone {
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

/// Waits for `p`'s call to be established.
pub fn established(d: &Denwa, p: &mut Phone, who: &str) {
    p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{who}: {e}")
        });
}

/// The transferee's media left alone while the target rings: baresip 1.0 stops recording at a
/// re-INVITE, and these tests check the audio it records (the music has its own test).
/// The server is restarted so the setting is certainly in force.
pub fn silence_while_ringing(d: &mut Denwa) {
    d.cli_ok(&["setting", "set", "transfer.transferee_hears", "silence"]);
    d.terminate();
    d.spawn();
}

/// Sleeps until `since + ms` (audio files play in real time: this waits for tones, not logic).
pub fn play_until(since: Instant, ms: u32) {
    let end = since + Duration::from_millis(u64::from(ms));
    if let Some(left) = end.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// A full-scope API key, made in the server's database.
pub fn api_token(d: &Denwa) -> String {
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
                .create_api_key(None, "transfer-e2e", store::ApiScope::Full)
                .await
                .expect("API key");
            s.close().await;
            token
        })
}

/// `curl` against the server's API: (status, body).
pub fn api(d: &Denwa, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "-m", "10", "-X", method, "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}/api/v1{path}", d.http_port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Waits until the caller's tones (after `lead_ms`) have crossed, hangs `a` up and checks that
/// `a` heard `c`'s tones and `c` heard `a`'s, none of their own.
pub fn talk_then_check(a: &mut Phone, c: &mut Phone, started: Instant, lead_ms: u32) {
    let seq = ToneLayout {
        lead_ms,
        ..ToneLayout::default()
    }
    .sequence_ms(CALLER_TONES.len());
    play_until(started, seq + 1500);
    testkit::baresip::hang_up_and_check_tones(a, c, &CALLER_TONES, &CALLEE_TONES, EVENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("the final parties did not hear each other: {e}"));
}
