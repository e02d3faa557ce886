//! Start-up hygiene: what a crash (`kill -9`, power loss) leaves behind, cleaned before the PBX
//! takes calls.
//!
//! - Call recordings still marked `recording`: the file is repaired to what it really holds
//!   (a WAV gets the sizes in its header patched to the data on disk, cut to whole samples; an
//!   Ogg Opus file is cut after its last complete page) and the row is closed as `error` with
//!   that length and a detail saying so; a recording that holds no audio, or whose file is gone,
//!   is closed with no file. Rows past [`STALE_BATCH`] are closed without their length
//!   ([`store::Store::close_stale_recordings`]).
//! - Scratch files: phone recordings of prompts awaiting review (`prompts/scratch/`), voicemail
//!   greetings being recorded (`voicemail/<tenant>/<box>/greeting-*.new.wav`) and half-written
//!   uploads (`.NAME.PID-N.tmp` beside prompts and greetings) are removed when older than
//!   [`SCRATCH_AGE`]; `prompts/scratch/` is then bounded to its [`SCRATCH_MAX`] newest files.
//!
//! On a cluster node it runs each time the node becomes active (after its epoch is stamped,
//! `crate::cluster_epoch`), not at start: the other node may be recording into the same
//! database.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use store::Store;
use tracing::{info, warn};

/// Scratch files older than this are removed at start.
pub const SCRATCH_AGE: Duration = Duration::from_secs(86_400);
/// Files kept in `prompts/scratch/` at most after start (the newest).
pub const SCRATCH_MAX: usize = 1_000;
/// Stale recording rows repaired one by one at most (the rest are closed without a length).
pub const STALE_BATCH: i64 = 1_000;
/// Directory entries looked at per directory at most (a bound on a start-up walk).
const ENTRIES_MAX: usize = 100_000;
/// Largest data chunk a WAV header can describe (as `media::audio::WavWriter` writes).
const MAX_WAV_DATA: u64 = u32::MAX as u64 - 36;
/// The detail a crashed recording's row gets.
const CRASHED: &str = "the server stopped during the recording";

/// What [`at_start`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Recording rows closed.
    pub recordings_closed: usize,
    /// Scratch files removed.
    pub scratch_removed: usize,
}

/// Closes the recordings a crash left running and cleans the scratch directories under
/// `data_dir`. Failures are logged; start-up goes on.
pub async fn at_start(store: &Store, data_dir: &Path) -> Report {
    let recordings_closed = close_recordings(store, data_dir, Utc::now()).await;
    let dir = data_dir.to_path_buf();
    let scratch_removed =
        match tokio::task::spawn_blocking(move || clean_scratch(&dir, SystemTime::now())).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "scratch clean-up failed");
                0
            }
        };
    if recordings_closed > 0 || scratch_removed > 0 {
        info!(
            recordings_closed,
            scratch_removed, "left-overs of an earlier run cleaned up"
        );
    }
    Report {
        recordings_closed,
        scratch_removed,
    }
}

/// What a crashed recording's file turned out to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// Repaired in place; this much audio.
    Kept {
        /// Audio length, milliseconds.
        duration_ms: u64,
    },
    /// No audio in it (removed).
    Empty,
    /// No such file (or a path outside `recordings/`, never touched).
    Missing,
    /// Not a file this server writes; left as it is.
    Unreadable(String),
}

/// Repairs the file of a recording row a crash left running (`rel`: the row's path, relative
/// to `data_dir`; `format`: `wav` or `opus`).
pub fn repair_recording(data_dir: &Path, rel: &str, format: &str) -> Repaired {
    // Only files under recordings/ are ever changed, whatever a row says.
    if !rel.starts_with("recordings/") || rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return Repaired::Missing;
    }
    let path = data_dir.join(rel);
    let r = match format {
        "opus" => repair_ogg(&path),
        _ => repair_wav(&path),
    };
    match r {
        Ok(Some(duration_ms)) => Repaired::Kept { duration_ms },
        Ok(None) => {
            let _ = std::fs::remove_file(&path);
            Repaired::Empty
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Repaired::Missing,
        Err(e) => Repaired::Unreadable(e.to_string()),
    }
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

/// Patches a WAV header written with zero sizes to the data on disk; `None`: no audio.
fn repair_wav(path: &Path) -> std::io::Result<Option<u64>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    if len < 44 {
        return Ok(None);
    }
    let mut h = [0u8; 44];
    f.read_exact(&mut h)?;
    if &h[0..4] != b"RIFF" || &h[8..16] != b"WAVEfmt " || &h[36..40] != b"data" {
        return Err(bad("not a WAV file as the recorder writes them"));
    }
    let channels = u64::from(u16::from_le_bytes([h[22], h[23]]).max(1));
    let rate = u64::from(u32::from_le_bytes([h[24], h[25], h[26], h[27]]));
    if rate == 0 {
        return Err(bad("WAV header with a zero sample rate"));
    }
    let block = 2 * channels;
    let data = ((len - 44) / block * block).min(MAX_WAV_DATA / block * block);
    f.set_len(44 + data)?;
    let data32 = data as u32; // bounded by MAX_WAV_DATA
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&(36 + data32).to_le_bytes())?;
    f.seek(SeekFrom::Start(40))?;
    f.write_all(&data32.to_le_bytes())?;
    f.sync_all()?;
    if data == 0 {
        return Ok(None);
    }
    Ok(Some(data / block * 1000 / rate))
}

/// Cuts an Ogg Opus file after its last complete page; `None`: no audio page.
fn repair_ogg(path: &Path) -> std::io::Result<Option<u64>> {
    let data = std::fs::read(path)?;
    let mut off = 0usize;
    let mut end = 0usize;
    let mut pre_skip: Option<u64> = None;
    let mut granule = 0u64;
    while off + 27 <= data.len() && &data[off..off + 4] == b"OggS" {
        let nseg = usize::from(data[off + 26]);
        let body = off + 27 + nseg;
        if body > data.len() {
            break;
        }
        let body_len: usize = data[off + 27..body].iter().map(|&b| usize::from(b)).sum();
        let page_end = body + body_len;
        if page_end > data.len() {
            break;
        }
        let mut g = [0u8; 8];
        g.copy_from_slice(&data[off + 6..off + 14]);
        let g = u64::from_le_bytes(g);
        match pre_skip {
            None => {
                let b = &data[body..page_end];
                if b.len() < 12 || &b[..8] != b"OpusHead" {
                    return Err(bad("not an Ogg Opus file"));
                }
                pre_skip = Some(u64::from(u16::from_le_bytes([b[10], b[11]])));
            }
            Some(_) if g != u64::MAX => granule = granule.max(g),
            Some(_) => {}
        }
        end = page_end;
        off = page_end;
    }
    let Some(pre_skip) = pre_skip else {
        return if data.is_empty() {
            Ok(None)
        } else {
            Err(bad("not an Ogg Opus file"))
        };
    };
    if end < data.len() {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(end as u64)?;
        f.sync_all()?;
    }
    let samples = granule.saturating_sub(pre_skip);
    if samples == 0 {
        return Ok(None);
    }
    Ok(Some(samples / 48))
}

/// Repairs and closes the recording rows a crash left running; answers how many were closed.
pub async fn close_recordings(store: &Store, data_dir: &Path, at: DateTime<Utc>) -> usize {
    let rows = match store.stale_recordings(STALE_BATCH).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "recordings left running unreadable");
            Vec::new()
        }
    };
    let mut n = 0;
    for r in &rows {
        let dir = data_dir.to_path_buf();
        let (rel, format) = (r.path.clone(), r.format.clone());
        let repaired = tokio::task::spawn_blocking(move || repair_recording(&dir, &rel, &format))
            .await
            .unwrap_or_else(|e| Repaired::Unreadable(e.to_string()));
        let (duration_ms, kept, detail) = match &repaired {
            Repaired::Kept { duration_ms } => (
                *duration_ms,
                true,
                format!(
                    "{CRASHED}; the file was closed at {:.1} s",
                    *duration_ms as f64 / 1000.0
                ),
            ),
            Repaired::Empty => (0, false, format!("{CRASHED}; no audio was written")),
            Repaired::Missing => (0, false, format!("{CRASHED}; its file was not found")),
            Repaired::Unreadable(e) => (0, true, format!("{CRASHED}; its file is unreadable: {e}")),
        };
        warn!(id = r.id, call_id = %r.call_id, path = %r.path, %detail, "recording left running by an earlier run closed");
        match store
            .recording_stopped(r.id, at, duration_ms as i64, "error", &detail, kept)
            .await
        {
            Ok(()) => n += 1,
            Err(e) => warn!(id = r.id, error = %e, "recording row not closed"),
        }
    }
    // More than one batch (or a row that could not be updated): closed without a length.
    match store.close_stale_recordings(at).await {
        Ok(m) => n += m as usize,
        Err(e) => warn!(error = %e, "recordings left running not closed"),
    }
    n
}

/// Removes the scratch files under `data_dir` older than [`SCRATCH_AGE`] (at `now`) and
/// bounds `prompts/scratch/` to [`SCRATCH_MAX`] files; answers how many were removed.
pub fn clean_scratch(data_dir: &Path, now: SystemTime) -> usize {
    let old = |p: &Path| {
        std::fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > SCRATCH_AGE)
    };
    let mut removed = 0;
    let mut remove = |p: &Path| match std::fs::remove_file(p) {
        Ok(()) => removed += 1,
        Err(e) => warn!(path = %p.display(), error = %e, "scratch file not removed"),
    };
    // Prompt recordings awaiting review: old ones, then the oldest past the bound.
    let scratch = data_dir.join("prompts/scratch");
    let mut kept: Vec<(SystemTime, PathBuf)> = Vec::new();
    for p in files(&scratch) {
        if old(&p) {
            remove(&p);
        } else {
            let t = std::fs::symlink_metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            kept.push((t, p));
        }
    }
    if kept.len() > SCRATCH_MAX {
        kept.sort();
        let extra = kept.len() - SCRATCH_MAX;
        for (_, p) in kept.drain(..extra) {
            remove(&p);
        }
    }
    // Half-written uploads beside prompts: prompts/<tenant>/<lang>/ and below.
    for p in walk(&data_dir.join("prompts"), 3) {
        if is_upload_temp(&p) && old(&p) {
            remove(&p);
        }
    }
    // Greetings being recorded and half-written greeting uploads: voicemail/<tenant>/<box>/.
    for p in walk(&data_dir.join("voicemail"), 2) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let greeting_scratch = name.starts_with("greeting-") && name.ends_with(".new.wav");
        if (greeting_scratch || is_upload_temp(&p)) && old(&p) {
            remove(&p);
        }
    }
    removed
}

/// A file `apps::audio_file` writes before renaming it into place (`.NAME.PID-N.tmp`).
fn is_upload_temp(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
}

/// The regular files directly in `dir` (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.take(ENTRIES_MAX)
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect()
}

/// The regular files in `dir` and its subdirectories down to `depth` levels (symbolic links
/// are not followed).
fn walk(dir: &Path, depth: u32) -> Vec<PathBuf> {
    let mut out = files(dir);
    if depth == 0 {
        return out;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.take(ENTRIES_MAX).filter_map(|e| e.ok()) {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&e.path(), depth - 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tmp")
    }

    fn touch(path: &Path, age: Duration, now: SystemTime) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let f = std::fs::File::create(path).expect("create");
        f.set_modified(now - age).expect("mtime");
    }

    /// A WAV as the recorder leaves it when killed: zero sizes in the header, `bytes` of data.
    fn crashed_wav(path: &Path, rate: u32, channels: u16, bytes: usize) {
        let pcm: Vec<i16> = (0..bytes / 2).map(|i| (i % 100) as i16).collect();
        // Not finished: the header keeps its zero sizes. One stray byte of a torn sample.
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w =
                media::audio::WavWriter::with_channels(&mut out, rate, channels).expect("header");
            w.write_frame(&pcm).expect("frame");
        }
        let mut bytes = out.into_inner();
        bytes.push(7);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn a_crashed_wav_gets_its_real_length_and_plays() {
        let d = dir();
        let rel = "recordings/1/2026/12/07/call.wav";
        // 1.5 s of 8 kHz stereo.
        crashed_wav(&d.path().join(rel), 8000, 2, 8000 * 4 * 3 / 2);
        assert_eq!(
            repair_recording(d.path(), rel, "wav"),
            Repaired::Kept { duration_ms: 1500 }
        );
        let bytes = std::fs::read(d.path().join(rel)).expect("read");
        assert_eq!(bytes.len(), 44 + 48_000, "the torn sample is cut");
        assert_eq!(
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            36 + 48_000
        );
        assert_eq!(
            u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]),
            48_000
        );
        let (rate, mono) = media::audio::decode_wav(&bytes).expect("a valid WAV now");
        assert_eq!((rate, mono.len()), (8000, 12_000));
        // Run twice (a second crash before the row was closed): same answer.
        assert_eq!(
            repair_recording(d.path(), rel, "wav"),
            Repaired::Kept { duration_ms: 1500 }
        );
    }

    #[test]
    fn empty_missing_foreign_and_escaping_files() {
        let d = dir();
        let empty = "recordings/1/a.wav";
        crashed_wav(&d.path().join(empty), 8000, 1, 0);
        assert_eq!(repair_recording(d.path(), empty, "wav"), Repaired::Empty);
        assert!(
            !d.path().join(empty).exists(),
            "an empty recording is removed"
        );
        let short = "recordings/1/b.wav";
        std::fs::write(d.path().join(short), b"RIFF").expect("write");
        assert_eq!(repair_recording(d.path(), short, "wav"), Repaired::Empty);
        assert_eq!(
            repair_recording(d.path(), "recordings/1/none.wav", "wav"),
            Repaired::Missing
        );
        let foreign = "recordings/1/c.wav";
        std::fs::write(d.path().join(foreign), vec![1u8; 100]).expect("write");
        assert!(matches!(
            repair_recording(d.path(), foreign, "wav"),
            Repaired::Unreadable(_)
        ));
        assert_eq!(
            std::fs::read(d.path().join(foreign)).expect("kept"),
            vec![1u8; 100]
        );
        std::fs::write(d.path().join("outside.wav"), b"RIFF").expect("write");
        for rel in [
            "recordings/../outside.wav",
            "outside.wav",
            "recordings//x.wav",
        ] {
            assert_eq!(
                repair_recording(d.path(), rel, "wav"),
                Repaired::Missing,
                "{rel}"
            );
        }
        assert!(
            d.path().join("outside.wav").exists(),
            "never outside recordings/"
        );
    }

    #[test]
    fn a_crashed_ogg_opus_file_is_cut_after_its_last_whole_page() {
        let d = dir();
        let rel = "recordings/1/call.opus";
        let path = d.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        // 3 s at 8 kHz, the stream never finished (as when killed), then a torn page.
        let mut w = media::oggopus::OggOpusWriter::new(Vec::new(), 8000, 1).expect("writer");
        let frame: Vec<i16> = (0..160).map(|i| ((i * 37) % 2000) as i16).collect();
        for _ in 0..150 {
            w.write_frame(&frame).expect("frame");
        }
        let full = w.finish().expect("finish");
        let parsed = media::oggopus::parse(&full).expect("whole file parses");
        // Drop the last (end-of-stream) page and half of the page before it.
        let starts: Vec<usize> = full
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == b"OggS")
            .map(|(i, _)| i)
            .collect();
        assert!(starts.len() >= 4, "pages: {}", starts.len());
        let last_whole_end = starts[starts.len() - 2];
        let cut = (starts[starts.len() - 2] + starts[starts.len() - 1]) / 2;
        std::fs::write(&path, &full[..cut]).expect("write");
        let Repaired::Kept { duration_ms } = repair_recording(d.path(), rel, "opus") else {
            panic!("not kept");
        };
        let got = std::fs::read(&path).expect("read");
        assert!(
            got.len() < cut && got.len() <= last_whole_end,
            "{} of {cut}",
            got.len()
        );
        assert!(
            duration_ms > 0 && duration_ms < 3000,
            "{duration_ms} ms (whole file {} granules)",
            parsed.final_granule
        );
        let (rate, pcm) = media::oggopus::decode(&got).expect("the cut file decodes");
        let decoded_ms = pcm.len() as u64 * 1000 / u64::from(rate);
        assert!(
            decoded_ms.abs_diff(duration_ms) <= 40,
            "decoded {decoded_ms} ms, row says {duration_ms} ms"
        );
        // Not Ogg Opus at all: left alone.
        std::fs::write(&path, b"OggS not really").expect("write");
        assert!(matches!(
            repair_recording(d.path(), rel, "opus"),
            Repaired::Unreadable(_)
        ));
    }

    #[test]
    fn old_scratch_files_go_new_ones_stay_and_the_scratch_dir_is_bounded() {
        let d = dir();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let hour = Duration::from_secs(3600);
        let s = d.path().join("prompts/scratch");
        touch(&s.join("tenant-1-call-1.wav"), day * 2, now);
        touch(&s.join("tenant-1-call-2.wav"), hour, now);
        let p = |rel: &str| d.path().join(rel);
        let old = [
            p("prompts/1/en/.welcome.wav.123-0.tmp"),
            p("voicemail/1/1002/greeting-busy.new.wav"),
            p("voicemail/1/1002/.greeting-busy.wav.9-0.tmp"),
        ];
        let kept = [
            p("prompts/1/en/.welcome.wav.124-0.tmp"),
            p("voicemail/1/1003/greeting-name.new.wav"),
        ];
        // Not scratch, however old.
        let lasting = [
            p("prompts/1/en/welcome.wav"),
            p("voicemail/1/1002/greeting-busy.wav"),
            p("voicemail/1/1002/msg-1.wav"),
        ];
        for f in &old {
            touch(f, day * 2, now);
        }
        for f in &kept {
            touch(f, hour, now);
        }
        for f in &lasting {
            touch(f, day * 40, now);
        }
        assert_eq!(clean_scratch(d.path(), now), 4);
        assert!(!s.join("tenant-1-call-1.wav").exists());
        assert!(s.join("tenant-1-call-2.wav").exists());
        for f in &old {
            assert!(!f.exists(), "{}", f.display());
        }
        for f in kept.iter().chain(&lasting) {
            assert!(f.exists(), "{}", f.display());
        }
        // The bound: past SCRATCH_MAX files, the oldest go.
        for i in 0..SCRATCH_MAX + 5 {
            touch(
                &s.join(format!("tenant-2-call-{i}.wav")),
                Duration::from_secs(10_000 - i as u64),
                now,
            );
        }
        assert_eq!(clean_scratch(d.path(), now), 6);
        assert_eq!(files(&s).len(), SCRATCH_MAX);
        for i in 0..6 {
            let p = s.join(format!("tenant-2-call-{i}.wav"));
            assert!(!p.exists(), "the oldest go first: {}", p.display());
        }
        assert!(s.join("tenant-1-call-2.wav").exists(), "newer than those");
        assert!(
            s.join(format!("tenant-2-call-{}.wav", SCRATCH_MAX + 4))
                .exists()
        );
        // Nothing there at all: nothing to do.
        let empty = dir();
        assert_eq!(clean_scratch(empty.path(), now), 0);
    }

    #[tokio::test]
    async fn rows_left_running_are_closed_with_what_their_files_hold() {
        let d = dir();
        let s = Store::open(
            d.path().join("t.db").to_str().expect("path"),
            store::OpenOptions::default(),
        )
        .await
        .expect("store");
        let t = s.default_tenant().await.expect("tenant").id;
        let at = Utc::now();
        let data = d.path().join("data");
        let kept = "recordings/1/2026/12/07/a.wav";
        crashed_wav(&data.join(kept), 16000, 1, 16000 * 2 * 2);
        let mut ids = Vec::new();
        for (call, rel) in [
            ("a", kept),
            ("b", "recordings/1/2026/12/07/gone.wav"),
            ("c", "recordings/1/2026/12/07/done.wav"),
        ] {
            ids.push(
                s.recording_started(t, call, rel, "wav", at)
                    .await
                    .expect("row"),
            );
        }
        // "c" finished normally before the crash: not touched.
        s.recording_stopped(ids[2], at, 900, "stopped", "", true)
            .await
            .expect("stop");
        assert_eq!(close_recordings(&s, &data, at).await, 2);
        let a = s.recording(t, ids[0]).await.expect("get").expect("row");
        assert_eq!(
            (a.status.as_str(), a.duration_ms, a.path.as_str()),
            ("error", 2000, kept)
        );
        assert!(a.detail.contains("closed at 2.0 s"), "{}", a.detail);
        let b = s.recording(t, ids[1]).await.expect("get").expect("row");
        assert_eq!((b.status.as_str(), b.path.as_str()), ("error", ""));
        assert!(b.detail.contains("not found"), "{}", b.detail);
        let c = s.recording(t, ids[2]).await.expect("get").expect("row");
        assert_eq!((c.status.as_str(), c.duration_ms), ("stopped", 900));
        assert_eq!(close_recordings(&s, &data, at).await, 0, "nothing left");
    }
}
