//! Start-up hygiene end to end: `serve` is killed (`kill -9`) while it records a call between
//! two real softphones (baresip); on the restart the recording row left `recording` is closed
//! with the length its file really holds, the file's WAV header is repaired and the caller's
//! tones recorded before the crash are in it; scratch files older than a day (a prompt
//! recording awaiting review, a greeting being recorded, a half-written upload) are removed
//! and fresh ones kept.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Denwa, answered_call, registered_phone, tone_wav};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES};

fn recordings(d: &Denwa) -> Vec<serde_json::Value> {
    let out = d.cli_ok(&["recording", "list", "--json"]);
    serde_json::from_str(&out).expect("recording list JSON")
}

/// Creates an empty file `age` old.
fn aged(path: &Path, age: Duration) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let f = std::fs::File::create(path).expect("create");
    f.set_modified(SystemTime::now() - age).expect("mtime");
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[test]
fn a_recording_cut_by_kill_9_is_closed_with_its_real_length_at_restart() {
    let mut d = Denwa::start();
    d.add_extension("1001", "alice-secret-b");
    d.add_extension("1002", "bob-secret-cc");
    d.cli_ok(&["recording", "policy", "extension", "1001", "always"]);
    // Call control decides with its configuration snapshot, reloaded on the change.
    d.wait_until("the policy loaded", Duration::from_secs(10), || {
        d.logs().contains("recording policies loaded policies=1")
    });
    let dir = tempfile::tempdir().expect("tmp");
    // The caller's tones at once; the callee stays silent long past the crash. Both files
    // outlast the test, so the call is up when the server is killed.
    let a_wav = tone_wav(dir.path(), "a.wav", &CALLER_TONES, 600, 30_000);
    let b_wav = tone_wav(dir.path(), "b.wav", &CALLEE_TONES, 25_000, 30_000);

    // Scratch files of an earlier life: two days old (to go) and an hour old (to stay).
    let data = d.data_dir().to_path_buf();
    let day = Duration::from_secs(86_400);
    let hour = Duration::from_secs(3600);
    let old = [
        data.join("prompts/scratch/tenant-1-call-7.wav"),
        data.join("voicemail/1/1002/greeting-busy.new.wav"),
        data.join("prompts/1/en/.welcome.wav.4242-0.tmp"),
    ];
    let fresh = [
        data.join("prompts/scratch/tenant-1-call-8.wav"),
        data.join("voicemail/1/1002/greeting-name.new.wav"),
    ];
    for p in &old {
        aged(p, day * 2);
    }
    for p in &fresh {
        aged(p, hour);
    }

    let mut a = registered_phone(&d, "1001", "alice-secret-b", &a_wav);
    let mut b = registered_phone(&d, "1002", "bob-secret-cc", &b_wav);
    answered_call(&d, &mut a, &mut b, "1002");

    // Wait until the file on disk holds all the caller's tones (2.1 s of them) with room
    // to spare for what the recorder still buffers, then kill the server mid-recording.
    let mut rel = String::new();
    d.wait_until("a running recording", Duration::from_secs(15), || {
        let rows = recordings(&d);
        match rows.first() {
            Some(r) if r["status"] == "recording" => {
                rel = r["path"].as_str().unwrap_or("").to_string();
                true
            }
            _ => false,
        }
    });
    let file = data.join(&rel);
    d.wait_until("3.5 s of audio on disk", Duration::from_secs(20), || {
        let Ok(b) = std::fs::read(&file) else {
            return false;
        };
        if b.len() < 44 {
            return false;
        }
        let per_s = u64::from(le32(&b, 28)); // byte rate
        per_s > 0 && (b.len() as u64 - 44) * 10 >= per_s * 35
    });
    d.kill9();
    let before = std::fs::read(&file).expect("the file the crash left");
    assert_eq!(
        le32(&before, 40),
        0,
        "a killed recorder leaves the sizes at 0"
    );
    drop(a);
    drop(b);

    d.spawn();
    let rows = recordings(&d);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["path"], rel.as_str(), "{r}");
    let detail = r["detail"].as_str().expect("detail");
    assert!(
        detail.contains("the server stopped during the recording"),
        "{detail}"
    );
    let after = std::fs::read(&file).expect("the repaired file");
    let data_bytes = le32(&after, 40) as usize;
    assert_eq!(after.len(), 44 + data_bytes, "data size patched");
    assert_eq!(
        le32(&after, 4) as usize,
        36 + data_bytes,
        "RIFF size patched"
    );
    let per_s = u64::from(le32(&after, 28));
    let ms = data_bytes as u64 * 1000 / per_s;
    assert_eq!(r["duration_ms"].as_u64(), Some(ms), "{r}");
    assert!(ms >= 3000, "{ms} ms");
    let heard = tone::detect_file(&file, &CALLER_TONES).expect("readable WAV");
    assert_eq!(heard, CALLER_TONES.to_vec(), "the tones before the crash");

    for p in &old {
        assert!(!p.exists(), "old scratch removed: {}", p.display());
    }
    for p in &fresh {
        assert!(p.exists(), "fresh scratch kept: {}", p.display());
    }
    assert!(
        d.logs().contains("left-overs of an earlier run cleaned up"),
        "the clean-up is logged"
    );
}
