//! Music on hold: classes of files per tenant, the default class installed with Denwa, and the
//! playlist a held caller moves through.
//!
//! Layout under the data directory (all files 16 kHz mono 16-bit WAV):
//!
//! ```text
//! moh/default/<class>/*.wav         installed with Denwa (class `default`: generated music)
//! moh/tenant-<tenant>/<class>/*.wav a tenant's own classes; one named like an installed class
//!                                   replaces it for that tenant
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audio_file::{self, ConvertError, RATE};

/// The class played when none is configured.
pub const DEFAULT_CLASS: &str = "default";
/// Most classes one tenant may have.
pub const MAX_CLASSES: usize = 32;
/// Most files in one class.
pub const MAX_FILES_PER_CLASS: usize = 64;
/// The installed piece's file name.
pub const DEFAULT_FILE: &str = "denwa-default.wav";

/// Directory of all music on hold.
pub fn moh_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("moh")
}

/// Directory of a tenant's classes (`None`: the installed ones).
pub fn scope_dir(data_dir: &Path, tenant: Option<i64>) -> PathBuf {
    match tenant {
        Some(t) => moh_dir(data_dir).join(format!("tenant-{t}")),
        None => moh_dir(data_dir).join("default"),
    }
}

/// True for a class name: 1–32 characters of `a-z`, `0-9`, `-`, `_`.
pub fn valid_class(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The stored file name for an uploaded file called `name`: letters, digits, `-` and `_` kept
/// (lower-cased), anything else becomes `-`, at most 48 characters, `.wav` appended.
pub fn file_name_for(name: &str) -> String {
    let stem = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() {
        out = "music".to_string();
    }
    format!("{out}.wav")
}

fn valid_file(name: &str) -> bool {
    name.ends_with(".wav")
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// One file of a class.
#[derive(Debug, Clone, Serialize)]
pub struct MohFile {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: String,
    /// Length in seconds.
    pub duration_s: f64,
}

/// One class as a tenant sees it.
#[derive(Debug, Clone, Serialize)]
pub struct MohClass {
    /// Class name.
    pub name: String,
    /// `tenant` (the tenant's own) or `default` (installed).
    pub scope: &'static str,
    /// Its files, in play order (by name).
    pub files: Vec<MohFile>,
}

fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(valid_file)
        })
        .collect();
    files.sort();
    files
}

fn class_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| valid_class(n))
        .collect();
    names.sort();
    names
}

fn describe(name: String, scope: &'static str, dir: &Path) -> MohClass {
    MohClass {
        name,
        scope,
        files: wav_files(dir)
            .into_iter()
            .map(|p| MohFile {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                duration_s: audio_file::wav_seconds(&p)
                    .map(|s| (s * 100.0).round() / 100.0)
                    .unwrap_or(0.0),
                path: p.display().to_string(),
            })
            .collect(),
    }
}

/// The classes `tenant` can use: its own, then the installed ones it does not replace, by name.
pub fn classes(data_dir: &Path, tenant: Option<i64>) -> Vec<MohClass> {
    let mut out = Vec::new();
    let own = tenant.map(|t| scope_dir(data_dir, Some(t)));
    if let Some(dir) = &own {
        for n in class_names(dir) {
            out.push(describe(n.clone(), "tenant", &dir.join(&n)));
        }
    }
    let installed = scope_dir(data_dir, None);
    for n in class_names(&installed) {
        if !out.iter().any(|c: &MohClass| c.name == n) {
            out.push(describe(n.clone(), "default", &installed.join(&n)));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The files of `class` for `tenant` in play order: the tenant's class when it has one with
/// files, else the installed one; empty when neither exists.
pub fn class_files(data_dir: &Path, tenant: Option<i64>, class: &str) -> Vec<PathBuf> {
    if !valid_class(class) {
        return Vec::new();
    }
    if let Some(t) = tenant {
        let own = wav_files(&scope_dir(data_dir, Some(t)).join(class));
        if !own.is_empty() {
            return own;
        }
    }
    wav_files(&scope_dir(data_dir, None).join(class))
}

/// A held caller's place in a class: files in order, round and round.
#[derive(Debug, Clone, Default)]
pub struct Playlist {
    files: Vec<PathBuf>,
    next: usize,
}

impl Playlist {
    /// A playlist over `files`, starting at the first.
    pub fn new(files: Vec<PathBuf>) -> Playlist {
        Playlist { files, next: 0 }
    }

    /// The playlist of `class` for `tenant` (see [`class_files`]).
    pub fn load(data_dir: &Path, tenant: Option<i64>, class: &str) -> Playlist {
        Playlist::new(class_files(data_dir, tenant, class))
    }

    /// The file to play now, moving on (after the last comes the first again); `None` when
    /// the class is empty.
    pub fn next_file(&mut self) -> Option<&Path> {
        if self.files.is_empty() {
            return None;
        }
        let i = self.next % self.files.len();
        self.next = (i + 1) % self.files.len();
        self.files.get(i).map(PathBuf::as_path)
    }

    /// Index of the file [`Playlist::next_file`] returns next.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when the class has no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Why a music-on-hold change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MohError {
    /// Bad class name.
    #[error("class names are 1-32 characters of a-z, 0-9, - and _ (got {0:?})")]
    BadClass(String),
    /// Too many classes or files.
    #[error("{0}")]
    Full(String),
    /// No such class or file.
    #[error("{0}")]
    NotFound(String),
    /// The file was refused.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Adds the audio in `file` (any format [`audio_file::decode`] reads) to `tenant`'s class
/// `class`, converted to 16 kHz mono, under a name made from `name`; creates the class.
pub fn add(
    data_dir: &Path,
    tenant: i64,
    class: &str,
    file: &Path,
    name: &str,
) -> Result<MohFile, MohError> {
    if !valid_class(class) {
        return Err(MohError::BadClass(class.to_string()));
    }
    let scope = scope_dir(data_dir, Some(tenant));
    let dir = scope.join(class);
    if !dir.is_dir() && class_names(&scope).len() >= MAX_CLASSES {
        return Err(MohError::Full(format!(
            "a tenant has at most {MAX_CLASSES} music-on-hold classes"
        )));
    }
    let target = dir.join(file_name_for(name));
    if !target.exists() && wav_files(&dir).len() >= MAX_FILES_PER_CLASS {
        return Err(MohError::Full(format!(
            "a class holds at most {MAX_FILES_PER_CLASS} files"
        )));
    }
    let c = audio_file::decode(file)?;
    audio_file::write_wav(&target, &c.samples)?;
    Ok(MohFile {
        name: target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: target.display().to_string(),
        duration_s: (c.seconds() * 100.0).round() / 100.0,
    })
}

/// Whether `tenant` has a class `class` of its own (the only kind it can remove; the
/// installed classes are not the tenant's).
pub fn tenant_has_class(data_dir: &Path, tenant: i64, class: &str) -> bool {
    valid_class(class) && scope_dir(data_dir, Some(tenant)).join(class).is_dir()
}

/// Removes one file (`Some`) or the whole class (`None`) of `tenant`'s own classes; returns how
/// many files went. Installed classes cannot be removed (a tenant's class of the same name
/// replaces one).
pub fn remove(
    data_dir: &Path,
    tenant: i64,
    class: &str,
    file: Option<&str>,
) -> Result<usize, MohError> {
    if !valid_class(class) {
        return Err(MohError::BadClass(class.to_string()));
    }
    let dir = scope_dir(data_dir, Some(tenant)).join(class);
    if !dir.is_dir() {
        return Err(MohError::NotFound(format!(
            "the tenant has no music-on-hold class {class:?}"
        )));
    }
    match file {
        Some(f) => {
            if !valid_file(f) {
                return Err(MohError::NotFound(format!(
                    "no file {f:?} in class {class}"
                )));
            }
            let p = dir.join(f);
            if !p.is_file() {
                return Err(MohError::NotFound(format!(
                    "no file {f:?} in class {class}"
                )));
            }
            std::fs::remove_file(p)?;
            Ok(1)
        }
        None => {
            let n = wav_files(&dir).len();
            std::fs::remove_dir_all(&dir)?;
            Ok(n)
        }
    }
}

/// Writes the installed class `default` (a generated piece, [`default_music`]) unless its file
/// is already there; returns its path and whether it was written now.
pub fn install_default(data_dir: &Path, force: bool) -> Result<(PathBuf, bool), MohError> {
    let path = scope_dir(data_dir, None)
        .join(DEFAULT_CLASS)
        .join(DEFAULT_FILE);
    if path.is_file() && !force {
        return Ok((path, false));
    }
    audio_file::write_wav(&path, &default_music())?;
    let note = path.with_file_name("LICENSE.txt");
    std::fs::write(
        note,
        "denwa-default.wav: generated by Denwa (crates/apps/src/moh.rs, default_music) at \
         install time. Copyright the Denwa authors, licensed under Apache-2.0 like Denwa; no \
         third-party material.\n",
    )?;
    Ok((path, true))
}

/// MIDI note number to frequency.
fn freq(note: u8) -> f64 {
    440.0 * 2f64.powf((f64::from(note) - 69.0) / 12.0)
}

/// Adds a soft electric-piano-like note (a sine with two quiet overtones, quick attack,
/// exponential decay) to `out` at `start` seconds.
fn add_note(out: &mut [f64], start: f64, len: f64, note: u8, level: f64, decay: f64) {
    let rate = f64::from(RATE);
    let f = freq(note);
    let first = (start * rate) as usize;
    let n = (len * rate) as usize;
    for i in 0..n {
        let Some(slot) = out.get_mut(first + i) else {
            break;
        };
        let t = i as f64 / rate;
        let attack = (t / 0.015).min(1.0);
        let release = ((len - t) / 0.08).clamp(0.0, 1.0);
        let env = attack * release * (-t * decay).exp();
        let w = 2.0 * std::f64::consts::PI * f * t;
        *slot += level * env * (w.sin() + 0.25 * (2.0 * w).sin() + 0.08 * (3.0 * w).sin());
    }
}

/// The installed hold music: about 30 s of a slow arpeggiated I–vi–IV–V progression in C major
/// over a soft bass, with a simple melody the second time round; gentle on narrowband phones
/// (nothing below 130 Hz, peaks at −6 dBFS), fading in and out so it loops without a click.
pub fn default_music() -> Vec<i16> {
    const BEAT: f64 = 60.0 / 72.0;
    // (bass, arpeggio notes) per bar of four beats: C, Am, F, G.
    let bars: [(u8, [u8; 4]); 4] = [
        (48, [60, 64, 67, 72]),
        (45, [57, 60, 64, 69]),
        (41, [53, 57, 60, 65]),
        (43, [55, 59, 62, 67]),
    ];
    // Melody of the second pass: two half notes per bar.
    let melody: [[u8; 2]; 4] = [[76, 74], [72, 76], [77, 76], [74, 71]];
    let total_bars = 9; // twice round, then a closing C chord
    let seconds = total_bars as f64 * 4.0 * BEAT + 1.0;
    let mut mix = vec![0.0f64; (seconds * f64::from(RATE)) as usize];
    for bar in 0..total_bars {
        let t0 = bar as f64 * 4.0 * BEAT;
        let (bass, arp) = bars[bar % 4];
        if bar == total_bars - 1 {
            // Closing chord: all at once, held.
            add_note(&mut mix, t0, 4.0 * BEAT, 48 + 12, 0.35, 0.6);
            for n in [60, 64, 67, 72] {
                add_note(&mut mix, t0, 4.0 * BEAT, n, 0.22, 0.7);
            }
            continue;
        }
        add_note(&mut mix, t0, 4.0 * BEAT, bass + 12, 0.35, 0.5);
        let pattern = [0, 1, 2, 3, 2, 1, 2, 1];
        for (k, &i) in pattern.iter().enumerate() {
            add_note(
                &mut mix,
                t0 + k as f64 * BEAT / 2.0,
                BEAT,
                arp[i],
                0.18,
                2.2,
            );
        }
        if bar >= 4 {
            for (k, &n) in melody[bar % 4].iter().enumerate() {
                add_note(
                    &mut mix,
                    t0 + k as f64 * 2.0 * BEAT,
                    2.0 * BEAT,
                    n,
                    0.28,
                    1.1,
                );
            }
        }
    }
    let rate = f64::from(RATE);
    let len = mix.len() as f64;
    for (i, s) in mix.iter_mut().enumerate() {
        let fade_in = (i as f64 / (0.3 * rate)).min(1.0);
        let fade_out = ((len - i as f64) / (1.5 * rate)).min(1.0);
        *s *= fade_in * fade_out;
    }
    let peak = mix.iter().fold(0.0f64, |m, s| m.max(s.abs())).max(1e-9);
    let scale = 0.5 * 32767.0 / peak; // −6 dBFS
    mix.iter().map(|s| (s * scale).round() as i16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine_wav(dir: &Path, name: &str, hz: f64) -> PathBuf {
        let samples: Vec<i16> = (0..RATE)
            .map(|i| {
                ((i as f64 * hz * 2.0 * std::f64::consts::PI / f64::from(RATE)).sin() * 9000.0)
                    as i16
            })
            .collect();
        let p = dir.join(name);
        audio_file::write_wav(&p, &samples).expect("write");
        p
    }

    #[test]
    fn default_music_is_about_thirty_seconds_and_not_clipped() {
        let m = default_music();
        let s = m.len() as f64 / f64::from(RATE);
        assert!((28.0..=35.0).contains(&s), "{s} s");
        let peak = m.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((15_000..=16_500).contains(&peak), "peak {peak}");
        // Fades in and out: starts and ends quietly.
        assert!(m[0].unsigned_abs() < 100 && m[m.len() - 1].unsigned_abs() < 100);
        assert!(audio_file::check(&m).is_ok());
    }

    #[test]
    fn classes_playlists_and_limits() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        let (path, written) = install_default(dir, false).expect("install");
        assert!(written && path.is_file());
        assert!(!install_default(dir, false).expect("again").1);

        let c = classes(dir, Some(1));
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].name.as_str(), c[0].scope), ("default", "default"));
        assert_eq!(c[0].files.len(), 1);

        let src = d.path().join("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        let a = sine_wav(&src, "a.wav", 440.0);
        let b = sine_wav(&src, "b.wav", 660.0);
        let fa = add(dir, 1, "jazz", &a, "Blue Moon.mp3").expect("add");
        assert_eq!(fa.name, "blue-moon.wav");
        assert_eq!(fa.duration_s, 1.0);
        add(dir, 1, "jazz", &b, "Autumn Leaves.flac").expect("add");

        let mut pl = Playlist::load(dir, Some(1), "jazz");
        assert_eq!(pl.len(), 2);
        let names: Vec<String> = (0..5)
            .map(|_| {
                pl.next_file()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            names,
            [
                "autumn-leaves.wav",
                "blue-moon.wav",
                "autumn-leaves.wav",
                "blue-moon.wav",
                "autumn-leaves.wav"
            ]
        );
        assert_eq!(pl.position(), 1);
        // Another tenant does not see tenant 1's class.
        assert!(Playlist::load(dir, Some(2), "jazz").is_empty());
        assert!(Playlist::load(dir, Some(2), "jazz").next_file().is_none());
        assert_eq!(Playlist::load(dir, Some(2), "default").len(), 1);

        // A tenant's class named like an installed one replaces it.
        add(dir, 1, "default", &a, "ours.wav").expect("add");
        let files = class_files(dir, Some(1), "default");
        assert_eq!(files.len(), 1);
        assert!(files[0].ends_with("ours.wav"));
        let c = classes(dir, Some(1));
        assert_eq!(
            c.iter()
                .map(|c| (c.name.as_str(), c.scope))
                .collect::<Vec<_>>(),
            [("default", "tenant"), ("jazz", "tenant")]
        );

        assert_eq!(
            remove(dir, 1, "jazz", Some("blue-moon.wav")).expect("rm"),
            1
        );
        assert!(matches!(
            remove(dir, 1, "jazz", Some("blue-moon.wav")),
            Err(MohError::NotFound(_))
        ));
        assert!(matches!(
            remove(dir, 1, "jazz", Some("../x.wav")),
            Err(MohError::NotFound(_))
        ));
        assert_eq!(remove(dir, 1, "jazz", None).expect("rm class"), 1);
        assert!(matches!(
            remove(dir, 1, "jazz", None),
            Err(MohError::NotFound(_))
        ));
        assert!(matches!(
            add(dir, 1, "Bad/Name", &a, "x"),
            Err(MohError::BadClass(_))
        ));
        // The installed class cannot be removed through a tenant.
        assert!(matches!(
            remove(dir, 2, "default", None),
            Err(MohError::NotFound(_))
        ));
        assert!(path.is_file());
    }

    #[test]
    fn uploaded_names_become_safe_file_names() {
        assert_eq!(file_name_for("../../etc/passwd"), "passwd.wav");
        assert_eq!(file_name_for("Hold Music (2).MP3"), "hold-music--2.wav");
        assert_eq!(file_name_for("日本語.wav"), "music.wav");
        assert_eq!(file_name_for(""), "music.wav");
    }
}
