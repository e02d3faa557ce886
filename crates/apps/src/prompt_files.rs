//! Where prompt audio lives on disk, which file plays, and how the default set is made.
//!
//! Layout under the data directory (all files 16 kHz mono 16-bit WAV):
//!
//! ```text
//! prompts/default/<lang>/<id>.wav        synthesised by `denwa prompt install-defaults`
//! prompts/default/SOURCES.json           per file: id, lang, engine + version, voice, text, sha256
//! prompts/tenant-<tenant>/<lang>/<id>.wav    a tenant's replacement (uploaded or recorded)
//! prompts/tenant-<tenant>/<lang>/<id>.json   where that replacement came from
//! ```
//!
//! [`resolve`] is what the applications call: the tenant's replacement, else the default, else
//! the same prompt in the other language, else `None` (the caller then plays a tone and logs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::audio_file::{self, ConvertError, RATE};
use crate::prompt::{self, CATALOGUE, Lang, Prompt};

/// Directory of all prompts.
pub fn prompts_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("prompts")
}

/// Directory of the default (synthesised) set.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    prompts_dir(data_dir).join("default")
}

/// The default file of `id` in `lang`.
pub fn default_path(data_dir: &Path, lang: Lang, id: &str) -> PathBuf {
    default_dir(data_dir)
        .join(lang.as_str())
        .join(format!("{id}.wav"))
}

/// A tenant's replacement of `id` in `lang`.
pub fn tenant_path(data_dir: &Path, tenant: i64, lang: Lang, id: &str) -> PathBuf {
    prompts_dir(data_dir)
        .join(format!("tenant-{tenant}"))
        .join(lang.as_str())
        .join(format!("{id}.wav"))
}

/// The file to play for prompt `id` in `lang` for `tenant`: the tenant's replacement, else the
/// default, else the tenant's or default file in the other language; `None` when there is none
/// (or `id` is not a valid prompt id). An id not in the catalogue is the tenant's named custom
/// prompt ([`crate::custom_prompt::resolve`]).
pub fn resolve(data_dir: &Path, tenant: Option<i64>, lang: Lang, id: &str) -> Option<PathBuf> {
    resolve_lang(data_dir, tenant, lang, id).map(|(p, _)| p)
}

/// [`resolve`], also saying which language the file is in (the other one when `lang` has
/// none).
pub fn resolve_lang(
    data_dir: &Path,
    tenant: Option<i64>,
    lang: Lang,
    id: &str,
) -> Option<(PathBuf, Lang)> {
    if !prompt::valid_id(id) {
        return None;
    }
    if prompt::get(id).is_none() {
        // Not a catalogue prompt: the tenant's named custom prompt (`custom_prompt`).
        let (p, v) = crate::custom_prompt::resolve(data_dir, tenant?, lang, id)?;
        let l = match v {
            crate::custom_prompt::Variant::Lang(l) => l,
            crate::custom_prompt::Variant::Any => lang,
        };
        return Some((p, l));
    }
    for l in [lang, lang.other()] {
        if let Some(t) = tenant {
            let p = tenant_path(data_dir, t, l, id);
            if p.is_file() {
                return Some((p, l));
            }
        }
        let p = default_path(data_dir, l, id);
        if p.is_file() {
            return Some((p, l));
        }
    }
    None
}

/// Where a prompt file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Synthesised at install time from the catalogue text.
    DefaultTts,
    /// Uploaded by an administrator (panel, API or CLI).
    Uploaded,
    /// Recorded from a phone.
    Recorded,
    /// No file.
    Missing,
}

impl Source {
    /// The name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::DefaultTts => "default-tts",
            Source::Uploaded => "uploaded",
            Source::Recorded => "recorded",
            Source::Missing => "missing",
        }
    }
}

/// The sidecar kept next to a tenant's replacement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replacement {
    /// Uploaded or recorded.
    pub source: Source,
    /// Format of the file uploaded (`WAV`, `MP3`, ...), or `recording`.
    pub original_format: String,
    /// File name given by the uploader, if any.
    #[serde(default)]
    pub original_name: Option<String>,
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
    /// SHA-256 of the stored WAV.
    pub sha256: String,
    /// The extension that recorded it by phone (`record_prompt`), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
}

/// One prompt in one language as a listing shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Stable number (what a phone dials after `record_prompt`, `*77`).
    pub number: u16,
    /// Prompt id.
    pub id: &'static str,
    /// Application.
    pub category: &'static str,
    /// Language.
    pub lang: Lang,
    /// Catalogue text in that language.
    pub text: &'static str,
    /// True when a file plays for this language (replacement or default).
    pub present: bool,
    /// Where the file that plays came from.
    pub source: Source,
    /// The extension that recorded it by phone, when `source` is `recorded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// Path of that file.
    pub path: Option<String>,
    /// Its length in seconds.
    pub duration_s: Option<f64>,
    /// True when a default file exists (what a reset returns to).
    pub default_present: bool,
}

/// Every catalogue prompt in `lang` for `tenant`, in catalogue order.
pub fn list(data_dir: &Path, tenant: Option<i64>, lang: Lang) -> Vec<Listed> {
    CATALOGUE
        .iter()
        .map(|p| listed(data_dir, tenant, lang, p))
        .collect()
}

/// One prompt as [`list`] shows it.
pub fn listed(data_dir: &Path, tenant: Option<i64>, lang: Lang, p: &'static Prompt) -> Listed {
    let default = default_path(data_dir, lang, p.id);
    let default_present = default.is_file();
    let replacement = tenant
        .map(|t| tenant_path(data_dir, t, lang, p.id))
        .filter(|p| p.is_file());
    let (source, recorded_by, path) = match replacement {
        Some(r) => {
            let meta = read_replacement(&r);
            (
                meta.as_ref().map(|m| m.source).unwrap_or(Source::Uploaded),
                meta.and_then(|m| m.recorded_by),
                Some(r),
            )
        }
        None if default_present => (Source::DefaultTts, None, Some(default)),
        None => (Source::Missing, None, None),
    };
    Listed {
        number: p.number,
        id: p.id,
        category: p.category.as_str(),
        lang,
        text: p.text(lang),
        present: path.is_some(),
        source,
        recorded_by,
        duration_s: path
            .as_deref()
            .and_then(audio_file::wav_seconds)
            .map(|s| (s * 100.0).round() / 100.0),
        path: path.map(|p| p.display().to_string()),
        default_present,
    }
}

fn sidecar(wav: &Path) -> PathBuf {
    wav.with_extension("json")
}

fn read_replacement(wav: &Path) -> Option<Replacement> {
    let text = std::fs::read_to_string(sidecar(wav)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Why a prompt could not be replaced or reset.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// Not a catalogue id.
    #[error("unknown prompt {0:?} (`denwa prompt list` shows the ids)")]
    UnknownId(String),
    /// The file was refused.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// Reset of a prompt the tenant never replaced.
    #[error("prompt {id} ({lang}) has no replacement to remove")]
    NotReplaced {
        /// Prompt id.
        id: String,
        /// Language.
        lang: Lang,
    },
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn catalogue_entry(id: &str) -> Result<&'static Prompt, PromptError> {
    prompt::get(id).ok_or_else(|| PromptError::UnknownId(id.to_string()))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn store_replacement(
    data_dir: &Path,
    tenant: i64,
    lang: Lang,
    p: &'static Prompt,
    samples: &[i16],
    meta: Replacement,
) -> Result<Listed, PromptError> {
    let path = tenant_path(data_dir, tenant, lang, p.id);
    audio_file::write_wav(&path, samples)?;
    let meta = Replacement {
        sha256: audio_file::sha256_file(&path)?,
        ..meta
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
    std::fs::write(sidecar(&path), json)?;
    Ok(listed(data_dir, Some(tenant), lang, p))
}

/// Replaces prompt `id` in `lang` for `tenant` with the audio in `file` (any format
/// [`audio_file::decode`] reads), converted to 16 kHz mono; `original_name` is kept for the
/// listing. Refused with the reason when the file is unreadable, too long or silent.
pub fn upload(
    data_dir: &Path,
    tenant: i64,
    lang: Lang,
    id: &str,
    file: &Path,
    original_name: Option<&str>,
) -> Result<Listed, PromptError> {
    let p = catalogue_entry(id)?;
    let c = audio_file::decode(file)?;
    let meta = Replacement {
        source: Source::Uploaded,
        original_format: c.input_format.to_string(),
        original_name: original_name.map(|n| n.chars().take(200).collect()),
        at_unix: now_unix(),
        sha256: String::new(),
        recorded_by: None,
    };
    store_replacement(data_dir, tenant, lang, p, &c.samples, meta)
}

/// Keeps a prompt recorded from a phone (16 kHz mono samples; the caller resamples) as the
/// tenant's replacement of `id` in `lang`.
pub fn save_recorded(
    data_dir: &Path,
    tenant: i64,
    lang: Lang,
    id: &str,
    samples: &[i16],
) -> Result<Listed, PromptError> {
    save_recorded_by(data_dir, tenant, lang, id, samples, None)
}

fn save_recorded_by(
    data_dir: &Path,
    tenant: i64,
    lang: Lang,
    id: &str,
    samples: &[i16],
    by: Option<&str>,
) -> Result<Listed, PromptError> {
    let p = catalogue_entry(id)?;
    audio_file::check(samples)?;
    let meta = Replacement {
        source: Source::Recorded,
        original_format: "recording".to_string(),
        original_name: None,
        at_unix: now_unix(),
        sha256: String::new(),
        recorded_by: by.map(|b| b.chars().take(64).collect()),
    };
    store_replacement(data_dir, tenant, lang, p, samples, meta)
}

/// Where a phone's prompt recording (`record_prompt`) is written until it is kept or
/// discarded, relative to the data directory: one file per call.
pub fn scratch_rel_path(tenant: i64, call: u64) -> String {
    format!("prompts/scratch/tenant-{tenant}-call-{call}.wav")
}

/// True when `rel` is a path [`scratch_rel_path`] makes (nothing else may be kept or removed
/// through the scratch operations).
pub fn is_scratch_rel_path(rel: &str) -> bool {
    rel.strip_prefix("prompts/scratch/tenant-")
        .and_then(|r| r.strip_suffix(".wav"))
        .and_then(|r| r.split_once("-call-"))
        .is_some_and(|(t, c)| {
            let t = t.strip_prefix('-').unwrap_or(t);
            !t.is_empty()
                && !c.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit())
                && c.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Keeps the phone recording in `scratch` (a WAV at any rate the media engine wrote) as the
/// tenant's replacement of `id` in `lang`, converted to 16 kHz mono through the same checks
/// as an upload, with `by` (the extension) recorded for the listing; the scratch file is
/// removed either way.
pub fn keep_recording(
    data_dir: &Path,
    tenant: i64,
    lang: Lang,
    id: &str,
    scratch: &Path,
    by: &str,
) -> Result<Listed, PromptError> {
    let result = (|| {
        let wav = media::wav::read_file(scratch).map_err(|e| ConvertError::Decode {
            format: "WAV",
            reason: e.to_string(),
        })?;
        if wav.sample_rate < 1000 || wav.sample_rate > 192_000 {
            return Err(PromptError::Convert(ConvertError::Decode {
                format: "WAV",
                reason: format!("unsupported sample rate {} Hz", wav.sample_rate),
            }));
        }
        let samples = media::endpoint::rate::convert_all(&wav.samples, wav.sample_rate, RATE);
        save_recorded_by(data_dir, tenant, lang, id, &samples, Some(by))
    })();
    let _ = std::fs::remove_file(scratch);
    result
}

/// Removes the tenant's replacement of `id` in `lang`: the default plays again.
pub fn reset(data_dir: &Path, tenant: i64, lang: Lang, id: &str) -> Result<Listed, PromptError> {
    let p = catalogue_entry(id)?;
    let path = tenant_path(data_dir, tenant, lang, id);
    if !path.is_file() {
        return Err(PromptError::NotReplaced {
            id: id.to_string(),
            lang,
        });
    }
    std::fs::remove_file(&path)?;
    let _ = std::fs::remove_file(sidecar(&path));
    Ok(listed(data_dir, Some(tenant), lang, p))
}

// ---------------------------------------------------------------------------------------------
// The default set, synthesised with espeak-ng.

/// The speech synthesiser run for the default set.
pub const TTS_ENGINE: &str = "espeak-ng";

/// The espeak-ng voice for `lang`.
pub fn tts_voice(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en-us",
        Lang::Ja => "ja",
    }
}

/// Words per minute per language (a little slower than espeak-ng's 175 default: callers
/// listen on narrowband phones).
fn tts_speed(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "150",
        Lang::Ja => "140",
    }
}

/// One file of the default set as SOURCES.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// Prompt id.
    pub id: String,
    /// Language.
    pub lang: String,
    /// Speech synthesiser.
    pub engine: String,
    /// Its version (`espeak-ng --version`).
    pub engine_version: String,
    /// Voice.
    pub voice: String,
    /// Catalogue text.
    pub text: String,
    /// What the synthesiser read (the kana reading for Japanese).
    pub spoken: String,
    /// SHA-256 of the WAV file.
    pub sha256: String,
}

/// The contents of SOURCES.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sources {
    /// Note on how the files were made and their licence.
    pub note: String,
    /// One entry per file.
    pub prompts: Vec<SourceEntry>,
}

const SOURCES_NOTE: &str = "Generated by `denwa prompt install-defaults` from the prompt catalogue \
     (crates/apps/src/prompt.rs) with espeak-ng; see docs/prompts.md. The generated audio is \
     part of Denwa's default data, Apache-2.0 like the catalogue text it is read from.";

/// Path of SOURCES.json.
pub fn sources_path(data_dir: &Path) -> PathBuf {
    default_dir(data_dir).join("SOURCES.json")
}

/// Reads SOURCES.json (empty when absent or unreadable: everything is made again).
pub fn read_sources(data_dir: &Path) -> Sources {
    std::fs::read_to_string(sources_path(data_dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Why synthesis failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The program could not run or failed.
    #[error("{tool}: {reason}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The installed espeak-ng version (`1.51`).
pub fn tts_version() -> Result<String, SynthError> {
    let out = Command::new(TTS_ENGINE)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SynthError::Tool {
            tool: TTS_ENGINE,
            reason: format!("{e} (./scripts/run.sh installs the espeak-ng package)"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "eSpeak NG text-to-speech: 1.51  Data at: ..."
    Ok(text
        .split("text-to-speech:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("unknown")
        .to_string())
}

fn run(tool: &'static str, cmd: &mut Command, stdin: Option<&str>) -> Result<(), SynthError> {
    use std::io::Write;
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SynthError::Tool {
            tool,
            reason: e.to_string(),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(SynthError::Tool {
            tool,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Synthesises `p` in `lang` into `out` (16 kHz mono 16-bit, peak normalised to −3 dBFS). The
/// text goes to espeak-ng on its standard input, never on a command line.
pub fn synthesise(p: &Prompt, lang: Lang, out: &Path) -> Result<(), SynthError> {
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let raw = audio_file::temp_path(&out.with_extension("espeak.wav"));
    let tmp = audio_file::temp_path(out);
    let result = (|| {
        run(
            TTS_ENGINE,
            Command::new(TTS_ENGINE)
                .args([
                    "-b",
                    "1",
                    "-v",
                    tts_voice(lang),
                    "-s",
                    tts_speed(lang),
                    "-w",
                ])
                .arg(&raw),
            Some(p.spoken(lang)),
        )?;
        run(
            "sox",
            Command::new("sox")
                .args(["-V1", "--no-show-progress", "-t", "wav"])
                .arg(&raw)
                .args(["-t", "wav", "-e", "signed-integer", "-b", "16", "-c", "1"])
                .args(["-r", &RATE.to_string()])
                .arg(&tmp)
                .args(["norm", "-3"]),
            None,
        )?;
        std::fs::rename(&tmp, out)?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&tmp);
    result
}

/// What [`install_defaults`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstallReport {
    /// Files synthesised now.
    pub synthesised: usize,
    /// Files already up to date (same engine version, voice and text; same bytes).
    pub cached: usize,
    /// Failures: `id/lang: reason`.
    pub failed: Vec<String>,
    /// Engine version used.
    pub engine_version: String,
    /// Wall time taken, seconds.
    pub seconds: f64,
}

/// Synthesises the default set (or the prompts in `only`) in `langs` into
/// `DATA_DIR/prompts/default`, skipping files already made from the same text by the same
/// engine version (unless `force`), and writes SOURCES.json. Runs one synthesis per core.
pub fn install_defaults(
    data_dir: &Path,
    langs: &[Lang],
    only: Option<&[String]>,
    force: bool,
) -> Result<InstallReport, PromptError> {
    let started = std::time::Instant::now();
    let version = tts_version().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut todo = Vec::new();
    if let Some(ids) = only {
        for id in ids {
            catalogue_entry(id)?;
        }
    }
    for p in CATALOGUE {
        if only.is_some_and(|ids| !ids.iter().any(|i| i == p.id)) {
            continue;
        }
        for &lang in langs {
            todo.push((p, lang));
        }
    }
    let old = read_sources(data_dir);
    let mut by_key: BTreeMap<(String, String), SourceEntry> = old
        .prompts
        .into_iter()
        .map(|e| ((e.id.clone(), e.lang.clone()), e))
        .collect();
    let entry_for = |p: &Prompt, lang: Lang, sha256: String| SourceEntry {
        id: p.id.to_string(),
        lang: lang.as_str().to_string(),
        engine: TTS_ENGINE.to_string(),
        engine_version: version.clone(),
        voice: tts_voice(lang).to_string(),
        text: p.text(lang).to_string(),
        spoken: p.spoken(lang).to_string(),
        sha256,
    };
    let mut report = InstallReport {
        engine_version: version.clone(),
        ..Default::default()
    };
    let mut work = Vec::new();
    for (p, lang) in todo {
        let path = default_path(data_dir, lang, p.id);
        let key = (p.id.to_string(), lang.as_str().to_string());
        let up_to_date = !force
            && by_key.get(&key).is_some_and(|e| {
                *e == entry_for(p, lang, e.sha256.clone())
                    && audio_file::sha256_file(&path).is_ok_and(|h| h == e.sha256)
            });
        if up_to_date {
            report.cached += 1;
        } else {
            work.push((p, lang, path));
        }
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = work.len().div_ceil(threads).max(1);
    let results: Vec<(&Prompt, Lang, Result<String, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(p, lang, path)| {
                            let r = synthesise(p, *lang, path)
                                .map_err(|e| e.to_string())
                                .and_then(|()| {
                                    audio_file::sha256_file(path).map_err(|e| e.to_string())
                                });
                            (*p, *lang, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(work.chunks(chunk))
            .flat_map(|(h, part)| {
                h.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|(p, lang, _)| (*p, *lang, Err("synthesis thread panicked".into())))
                        .collect()
                })
            })
            .collect()
    });
    for (p, lang, r) in results {
        match r {
            Ok(sha) => {
                report.synthesised += 1;
                by_key.insert(
                    (p.id.to_string(), lang.as_str().to_string()),
                    entry_for(p, lang, sha),
                );
            }
            Err(e) => report.failed.push(format!("{}/{}: {e}", p.id, lang)),
        }
    }
    let sources = Sources {
        note: SOURCES_NOTE.to_string(),
        prompts: by_key.into_values().collect(),
    };
    std::fs::create_dir_all(default_dir(data_dir))?;
    let json = serde_json::to_vec_pretty(&sources).map_err(std::io::Error::other)?;
    let path = sources_path(data_dir);
    let tmp = audio_file::temp_path(&path);
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &path)?;
    report.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone() -> Vec<i16> {
        (0..RATE)
            .map(|i| ((i as f64 * 0.2).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn resolve_prefers_the_tenant_then_default_then_other_language() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        let id = "vm-enter-pin";
        assert_eq!(resolve(dir, Some(1), Lang::Ja, id), None);
        assert_eq!(resolve_lang(dir, Some(1), Lang::Ja, id), None);

        let en_default = default_path(dir, Lang::En, id);
        audio_file::write_wav(&en_default, &tone()).expect("write");
        // Japanese missing: the English default plays.
        assert_eq!(
            resolve(dir, Some(1), Lang::Ja, id),
            Some(en_default.clone())
        );
        assert_eq!(
            resolve_lang(dir, Some(1), Lang::Ja, id),
            Some((en_default.clone(), Lang::En)),
            "the fallback says it is in the other language"
        );

        let ja_default = default_path(dir, Lang::Ja, id);
        audio_file::write_wav(&ja_default, &tone()).expect("write");
        assert_eq!(
            resolve(dir, Some(1), Lang::Ja, id),
            Some(ja_default.clone())
        );
        assert_eq!(
            resolve_lang(dir, Some(1), Lang::Ja, id),
            Some((ja_default.clone(), Lang::Ja))
        );

        let rec = save_recorded(dir, 1, Lang::Ja, id, &tone()).expect("record");
        assert_eq!(rec.source, Source::Recorded);
        let tenant_file = tenant_path(dir, 1, Lang::Ja, id);
        assert_eq!(resolve(dir, Some(1), Lang::Ja, id), Some(tenant_file));
        // Another tenant still hears the default.
        assert_eq!(
            resolve(dir, Some(2), Lang::Ja, id),
            Some(ja_default.clone())
        );
        assert_eq!(resolve(dir, None, Lang::Ja, id), Some(ja_default.clone()));

        let l = reset(dir, 1, Lang::Ja, id).expect("reset");
        assert_eq!(l.source, Source::DefaultTts);
        assert_eq!(resolve(dir, Some(1), Lang::Ja, id), Some(ja_default));
        assert!(matches!(
            reset(dir, 1, Lang::Ja, id),
            Err(PromptError::NotReplaced { .. })
        ));
        assert_eq!(resolve(dir, Some(1), Lang::Ja, "../../etc/passwd"), None);
        assert!(matches!(
            save_recorded(dir, 1, Lang::Ja, "nope", &tone()),
            Err(PromptError::UnknownId(_))
        ));
        assert!(matches!(
            save_recorded(dir, 1, Lang::Ja, id, &[0; 16000]),
            Err(PromptError::Convert(ConvertError::Silent { .. }))
        ));
    }

    #[test]
    fn a_phone_recording_is_kept_at_16_khz_with_who_recorded_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        let rel = scratch_rel_path(4, 17);
        assert!(is_scratch_rel_path(&rel));
        for bad in [
            "prompts/scratch/../x.wav",
            "prompts/scratch/tenant-4-call-17.wav/../../x",
            "prompts/tenant-4/en/goodbye.wav",
            "voicemail/1/1001/msg.wav",
            "prompts/scratch/tenant--call-1.wav",
        ] {
            assert!(!is_scratch_rel_path(bad), "{bad}");
        }
        // 2 s at 8 kHz, as the media engine writes a G.711 caller.
        let scratch = dir.join(&rel);
        std::fs::create_dir_all(scratch.parent().expect("dir")).expect("mkdir");
        let pcm: Vec<i16> = (0..16_000)
            .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
            .collect();
        media::wav::write_file(&scratch, 8000, &pcm).expect("write");
        let l = keep_recording(dir, 4, Lang::En, "ivr-welcome", &scratch, "1001").expect("kept");
        assert_eq!(l.source, Source::Recorded);
        assert_eq!(l.recorded_by.as_deref(), Some("1001"));
        assert_eq!(l.duration_s, Some(2.0));
        assert!(!scratch.exists(), "the scratch file is removed");
        let kept =
            media::wav::read_file(tenant_path(dir, 4, Lang::En, "ivr-welcome")).expect("wav");
        assert_eq!(kept.sample_rate, RATE);
        // A silent recording is refused like a silent upload, and its scratch file goes too.
        media::wav::write_file(&scratch, 8000, &[0; 16_000]).expect("write");
        assert!(matches!(
            keep_recording(dir, 4, Lang::En, "goodbye", &scratch, "1001"),
            Err(PromptError::Convert(ConvertError::Silent { .. }))
        ));
        assert!(!scratch.exists());
        assert_eq!(
            listed(dir, Some(4), Lang::En, prompt::get("goodbye").expect("p")).source,
            Source::Missing
        );
    }

    #[test]
    fn listing_says_where_each_file_came_from() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        audio_file::write_wav(&default_path(dir, Lang::En, "goodbye"), &tone()).expect("write");
        save_recorded(dir, 7, Lang::En, "please-wait", &tone()).expect("record");
        let l = list(dir, Some(7), Lang::En);
        assert_eq!(l.len(), CATALOGUE.len());
        let by_id = |id: &str| l.iter().find(|e| e.id == id).expect(id);
        assert_eq!(by_id("goodbye").source, Source::DefaultTts);
        assert_eq!(by_id("goodbye").duration_s, Some(1.0));
        assert_eq!(by_id("please-wait").source, Source::Recorded);
        assert!(!by_id("please-wait").default_present);
        assert_eq!(by_id("conf-left").source, Source::Missing);
        assert!(!by_id("conf-left").present);
        // Without a tenant only defaults count.
        let l = list(dir, None, Lang::En);
        assert!(!l.iter().any(|e| e.id == "please-wait" && e.present));
    }
}
