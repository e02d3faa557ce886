//! Named custom prompts ("system recordings"): a tenant's own recordings under names of its
//! choosing (`main-greeting`, `holiday-closed`), played wherever a prompt id is accepted — an
//! IVR menu's greeting above all. The files live beside the tenant's catalogue replacements:
//!
//! ```text
//! prompts/tenant-<tenant>/custom/any/<name>.wav    for callers of every language
//! prompts/tenant-<tenant>/custom/<lang>/<name>.wav for callers of that language (en, ja)
//! ```
//!
//! Uploads go through the same conversion and checks as catalogue prompt uploads
//! ([`crate::audio_file::decode`]). The metadata (who, when, original name) is a database row
//! (`store`'s `custom_prompts` table); this module only does names and files, and
//! [`crate::prompt_files::resolve_lang`] finds a custom prompt when an id is not in the
//! catalogue.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audio_file::{self, ConvertError};
use crate::prompt::{self, Lang};

/// Longest name.
pub const MAX_NAME: usize = 40;
/// Most custom prompts (names) per tenant; checked by the store when one is added.
pub const MAX_PER_TENANT: usize = 500;

/// Which callers a custom prompt's file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Every caller (used when there is no file in the caller's language).
    Any,
    /// Callers hearing prompts in this language.
    Lang(Lang),
}

impl Variant {
    /// `any`, `en` or `ja`: the directory name and what listings show.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Any => "any",
            Variant::Lang(l) => l.as_str(),
        }
    }

    /// Parses `any`, `en`, `ja` (an empty string is `any`).
    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "" | "any" => Some(Variant::Any),
            other => other.parse().ok().map(Variant::Lang),
        }
    }

    /// Every variant, in listing order.
    pub const ALL: [Variant; 3] = [
        Variant::Any,
        Variant::Lang(Lang::En),
        Variant::Lang(Lang::Ja),
    ];
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a custom prompt was refused.
#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    /// Not a usable name.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The file was refused.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Checks a custom prompt name: 1-40 lowercase letters, digits and `-`, starting with a
/// letter, and not a catalogue id (a catalogue prompt is replaced, not shadowed).
pub fn check_name(name: &str) -> Result<(), CustomError> {
    let bad = |reason| {
        Err(CustomError::BadName {
            name: name.chars().take(60).collect(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return bad("1-40 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("lowercase letters, digits and - only");
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return bad("must start with a letter");
    }
    if prompt::get(name).is_some() {
        return bad(
            "that is a catalogue prompt: replace it with `denwa prompt upload` (or the Prompts page) instead",
        );
    }
    Ok(())
}

/// True when `name` passes [`check_name`].
pub fn valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

/// The directory of a tenant's custom prompts.
pub fn dir(data_dir: &Path, tenant: i64) -> PathBuf {
    crate::prompt_files::prompts_dir(data_dir)
        .join(format!("tenant-{tenant}"))
        .join("custom")
}

/// The file of `name` in `variant` (whether or not it exists).
pub fn path(data_dir: &Path, tenant: i64, variant: Variant, name: &str) -> PathBuf {
    dir(data_dir, tenant)
        .join(variant.as_str())
        .join(format!("{name}.wav"))
}

/// The file that plays for custom prompt `name` to a caller hearing `lang`: the file in that
/// language, else the one for every language, else the one in the other language; with the
/// language it is in (`None` for `any`). `None` when the tenant has no such file (or the name
/// is not valid).
pub fn resolve(data_dir: &Path, tenant: i64, lang: Lang, name: &str) -> Option<(PathBuf, Variant)> {
    if !valid_name(name) {
        return None;
    }
    [
        Variant::Lang(lang),
        Variant::Any,
        Variant::Lang(lang.other()),
    ]
    .into_iter()
    .map(|v| (path(data_dir, tenant, v, name), v))
    .find(|(p, _)| p.is_file())
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored {
    /// Format of the file uploaded (`WAV`, `MP3`, …) or `recording`.
    pub original_format: String,
    /// Length in milliseconds.
    pub duration_ms: i64,
    /// SHA-256 of the stored WAV.
    pub sha256: String,
    /// True when the variant had no file before (a failed database write should remove it).
    pub created: bool,
}

/// Converts `file` (any format a catalogue prompt upload takes) and stores it as `name` in
/// `variant` for `tenant`, replacing the file there. Refused with the reason when the name is
/// not valid or the file is unreadable, too long, too short or silent.
pub fn upload(
    data_dir: &Path,
    tenant: i64,
    variant: Variant,
    name: &str,
    file: &Path,
) -> Result<Stored, CustomError> {
    check_name(name)?;
    let c = audio_file::decode(file)?;
    store_samples(data_dir, tenant, variant, name, &c.samples, c.input_format)
}

/// Stores 16 kHz mono samples (a phone recording, already resampled) as `name` in `variant`,
/// through the checks an upload gets.
pub fn save_samples(
    data_dir: &Path,
    tenant: i64,
    variant: Variant,
    name: &str,
    samples: &[i16],
) -> Result<Stored, CustomError> {
    check_name(name)?;
    audio_file::check(samples)?;
    store_samples(data_dir, tenant, variant, name, samples, "recording")
}

fn store_samples(
    data_dir: &Path,
    tenant: i64,
    variant: Variant,
    name: &str,
    samples: &[i16],
    format: &str,
) -> Result<Stored, CustomError> {
    let p = path(data_dir, tenant, variant, name);
    let created = !p.is_file();
    audio_file::write_wav(&p, samples)?;
    Ok(Stored {
        original_format: format.to_string(),
        duration_ms: (samples.len() as i64 * 1000) / i64::from(audio_file::RATE),
        sha256: audio_file::sha256_file(&p)?,
        created,
    })
}

/// Removes the file of `name` in `variant` (no error when it is already gone).
pub fn remove(data_dir: &Path, tenant: i64, variant: Variant, name: &str) -> std::io::Result<()> {
    if !valid_name(name) {
        return Ok(());
    }
    match std::fs::remove_file(path(data_dir, tenant, variant, name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Renames every file of `from` to `to` (the caller checked `to` is free). On a failure the
/// files already moved are moved back.
pub fn rename(data_dir: &Path, tenant: i64, from: &str, to: &str) -> Result<(), CustomError> {
    check_name(from)?;
    check_name(to)?;
    let mut moved = Vec::new();
    for v in Variant::ALL {
        let src = path(data_dir, tenant, v, from);
        if !src.is_file() {
            continue;
        }
        let dst = path(data_dir, tenant, v, to);
        if let Err(e) = std::fs::rename(&src, &dst) {
            for (s, d) in moved {
                let _ = std::fs::rename(d, s);
            }
            return Err(e.into());
        }
        moved.push((src, dst));
    }
    Ok(())
}

/// The variants of `name` that have a file, in [`Variant::ALL`] order.
pub fn present(data_dir: &Path, tenant: i64, name: &str) -> Vec<Variant> {
    if !valid_name(name) {
        return Vec::new();
    }
    Variant::ALL
        .into_iter()
        .filter(|v| path(data_dir, tenant, *v, name).is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio_file::RATE;

    fn tone() -> Vec<i16> {
        (0..RATE)
            .map(|i| ((i as f64 * 0.2).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn names_are_checked_and_catalogue_ids_refused() {
        for ok in ["main-greeting", "holiday-closed", "a", "x2026"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "1-40"),
            ("Main", "lowercase"),
            ("a b", "lowercase"),
            ("../x", "lowercase"),
            ("2nd", "letter"),
            ("-x", "letter"),
            ("goodbye", "catalogue"),
            ("ivr-welcome", "catalogue"),
        ] {
            let e = check_name(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_name(&"a".repeat(41)).is_err());
        assert_eq!(Variant::parse(""), Some(Variant::Any));
        assert_eq!(Variant::parse("ja"), Some(Variant::Lang(Lang::Ja)));
        assert_eq!(Variant::parse("fr"), None);
    }

    #[test]
    fn the_callers_language_then_any_then_the_other_language_plays() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        let n = "holiday-closed";
        assert_eq!(resolve(dir, 1, Lang::Ja, n), None);
        let en = save_samples(dir, 1, Variant::Lang(Lang::En), n, &tone()).expect("en");
        assert!(en.created);
        assert_eq!(en.duration_ms, 1000);
        assert_eq!(en.original_format, "recording");
        // Only English: a Japanese caller hears it rather than nothing.
        assert_eq!(
            resolve(dir, 1, Lang::Ja, n),
            Some((
                path(dir, 1, Variant::Lang(Lang::En), n),
                Variant::Lang(Lang::En)
            ))
        );
        save_samples(dir, 1, Variant::Any, n, &tone()).expect("any");
        assert_eq!(
            resolve(dir, 1, Lang::Ja, n).map(|r| r.1),
            Some(Variant::Any)
        );
        assert_eq!(
            resolve(dir, 1, Lang::En, n).map(|r| r.1),
            Some(Variant::Lang(Lang::En))
        );
        // Another tenant has none; a replaced file is not "created".
        assert_eq!(resolve(dir, 2, Lang::En, n), None);
        let again = save_samples(dir, 1, Variant::Any, n, &tone()).expect("again");
        assert!(!again.created);
        assert_eq!(present(dir, 1, n), [Variant::Any, Variant::Lang(Lang::En)]);
        // The catalogue resolution finds custom prompts for ids it does not know.
        assert_eq!(
            crate::prompt_files::resolve_lang(dir, Some(1), Lang::En, n),
            Some((path(dir, 1, Variant::Lang(Lang::En), n), Lang::En))
        );
        assert_eq!(
            crate::prompt_files::resolve_lang(dir, None, Lang::En, n),
            None
        );

        rename(dir, 1, n, "closed").expect("rename");
        assert_eq!(present(dir, 1, n), []);
        assert_eq!(
            present(dir, 1, "closed"),
            [Variant::Any, Variant::Lang(Lang::En)]
        );
        remove(dir, 1, Variant::Any, "closed").expect("remove");
        remove(dir, 1, Variant::Any, "closed").expect("removing again is fine");
        assert_eq!(present(dir, 1, "closed"), [Variant::Lang(Lang::En)]);
    }

    #[test]
    fn unreadable_silent_and_misnamed_uploads_are_refused_with_the_reason() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        let junk = dir.join("junk.bin");
        std::fs::write(&junk, b"<html>not audio</html>").expect("write");
        let e = upload(dir, 1, Variant::Any, "main-greeting", &junk).expect_err("junk");
        assert!(
            matches!(e, CustomError::Convert(ConvertError::Unrecognised(_))),
            "{e}"
        );
        assert!(e.to_string().contains("not a recognised audio file"), "{e}");
        assert!(matches!(
            save_samples(dir, 1, Variant::Any, "main-greeting", &[0; 16_000]),
            Err(CustomError::Convert(ConvertError::Silent { .. }))
        ));
        assert!(matches!(
            save_samples(dir, 1, Variant::Any, "goodbye", &tone()),
            Err(CustomError::BadName { .. })
        ));
        assert_eq!(present(dir, 1, "main-greeting"), []);
    }
}
