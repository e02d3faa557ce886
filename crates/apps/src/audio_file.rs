//! Turning a file an administrator uploads (WAV of any PCM/float/µ-law/A-law format, MP3, Ogg
//! Vorbis, FLAC, AIFF, AU; any rate, any channel count) into the one format prompts and music on
//! hold are kept in: 16 kHz mono 16-bit PCM WAV.
//!
//! Decoding is done by `sox` (Debian packages `sox` and `libsox-fmt-mp3`), run as a separate
//! process: one packaged tool reads every format listed, its GPL/LGPL code is never linked into
//! Denwa, and a decoder crashing on a hostile file takes down only that process. The format is
//! recognised here from the file's first bytes (never from a name the uploader chose), the output
//! is bounded to [`MAX_SECONDS`], and what comes back is checked for length and silence.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The sample rate prompts and music on hold are kept at.
pub const RATE: u32 = 16_000;
/// Longest audio accepted (10 minutes).
pub const MAX_SECONDS: u32 = 600;
/// Largest file accepted for conversion (64 MiB: ten minutes of 48 kHz stereo 24-bit WAV is
/// 173 MB, but such a file would be refused as too long anyway; compressed ten minutes is far
/// less).
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// Shortest audio accepted (seconds).
pub const MIN_SECONDS: f64 = 0.25;
/// A file whose loudest sample stays below this (about −54 dBFS) is silent.
pub const SILENCE_PEAK: i16 = 64;

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("the file is {bytes} bytes, more than the {max} bytes accepted")]
    TooLarge {
        /// Size of the file.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The first bytes match no format we read.
    #[error(
        "not a recognised audio file (expected WAV, MP3, Ogg Vorbis, FLAC, AIFF or AU; the file starts with {0})"
    )]
    Unrecognised(String),
    /// A known container with content we cannot read (the text says which and what to do).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The decoder could not read it.
    #[error("the {format} file could not be decoded: {reason}")]
    Decode {
        /// Format recognised from the header.
        format: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Longer than [`MAX_SECONDS`].
    #[error("the audio is longer than {} minutes", MAX_SECONDS / 60)]
    TooLong,
    /// Shorter than [`MIN_SECONDS`].
    #[error("the audio is too short ({seconds:.2} s; at least {MIN_SECONDS} s)")]
    TooShort {
        /// Its length.
        seconds: f64,
    },
    /// Only silence.
    #[error("the audio is silent (loudest sample {peak_dbfs:.0} dBFS)")]
    Silent {
        /// Loudest sample relative to full scale.
        peak_dbfs: f64,
    },
    /// `sox` is not installed or could not run.
    #[error("cannot run {tool}: {reason} (./scripts/run.sh installs it)")]
    Tool {
        /// The program.
        tool: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Reading the upload or writing the result failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A container format recognised from the first bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Name shown to people.
    pub name: &'static str,
    /// `sox -t` type.
    sox_type: &'static str,
}

/// Recognises a format from the first bytes of a file (at least 64 for Ogg).
pub fn sniff(head: &[u8]) -> Result<Format, ConvertError> {
    let f = |name, sox_type| Ok(Format { name, sox_type });
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        return f("WAV", "wav");
    }
    if head.starts_with(b"fLaC") {
        return f("FLAC", "flac");
    }
    if head.starts_with(b"OggS") {
        let win = &head[..head.len().min(128)];
        if contains(win, b"OpusHead") {
            return Err(ConvertError::Unsupported(
                "Ogg Opus files cannot be converted here; upload WAV, MP3, Ogg Vorbis or FLAC",
            ));
        }
        if contains(win, b"\x01vorbis") {
            return f("Ogg Vorbis", "vorbis");
        }
        if contains(win, b"FLAC") {
            return f("Ogg FLAC", "ogg");
        }
        return Err(ConvertError::Unsupported(
            "this Ogg file holds neither Vorbis nor FLAC audio",
        ));
    }
    if head.len() >= 12 && &head[0..4] == b"FORM" && matches!(&head[8..12], b"AIFF" | b"AIFC") {
        return f("AIFF", "aiff");
    }
    if head.starts_with(b".snd") {
        return f("AU", "au");
    }
    if head.starts_with(b"ID3") || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        return f("MP3", "mp3");
    }
    let shown: String = head
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(ConvertError::Unrecognised(if shown.is_empty() {
        "nothing (empty file)".to_string()
    } else {
        format!("bytes {shown}")
    }))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct Converted {
    /// 16 kHz mono samples.
    pub samples: Vec<i16>,
    /// Format of the input, as recognised.
    pub input_format: &'static str,
}

impl Converted {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(RATE)
    }
}

/// Decodes `input` to 16 kHz mono 16-bit samples and checks them (length, silence).
pub fn decode(input: &Path) -> Result<Converted, ConvertError> {
    let meta = std::fs::metadata(input)?;
    if meta.len() > MAX_INPUT_BYTES {
        return Err(ConvertError::TooLarge {
            bytes: meta.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    let mut head = Vec::with_capacity(128);
    std::fs::File::open(input)?
        .take(128)
        .read_to_end(&mut head)?;
    let format = sniff(&head)?;
    // Half a second more than the limit, so "too long" is told apart from "exactly the limit".
    let bound = format!("{}.5", MAX_SECONDS);
    let out = Command::new("sox")
        .args(["-V1", "--no-show-progress", "-t", format.sox_type])
        .arg(input)
        .args([
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-L",
            "-c",
            "1",
        ])
        .args(["-r", &RATE.to_string(), "-", "trim", "0", &bound])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| ConvertError::Tool {
            tool: "sox",
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let reason = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .replace(&input.display().to_string(), "the file");
        // "sox FAIL formats: can't open input file `the file': WAVE file fmt chunk is too
        // short" -> "WAVE file fmt chunk is too short".
        let reason = reason
            .rsplit_once("': ")
            .map(|(_, r)| r)
            .unwrap_or(&reason)
            .trim()
            .trim_start_matches("sox FAIL ")
            .trim_start_matches("sox: ")
            .to_string();
        if reason.contains("no handler for file extension") || reason.contains("no handler") {
            return Err(ConvertError::Tool {
                tool: "sox",
                reason: format!("{} support is not installed ({reason})", format.name),
            });
        }
        return Err(ConvertError::Decode {
            format: format.name,
            reason,
        });
    }
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let c = Converted {
        samples,
        input_format: format.name,
    };
    check(&c.samples)?;
    Ok(c)
}

/// Refuses audio that is too long, too short or silent.
pub fn check(samples: &[i16]) -> Result<(), ConvertError> {
    let seconds = samples.len() as f64 / f64::from(RATE);
    if samples.len() > (MAX_SECONDS * RATE) as usize {
        return Err(ConvertError::TooLong);
    }
    if seconds < MIN_SECONDS {
        return Err(ConvertError::TooShort { seconds });
    }
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    if peak < SILENCE_PEAK.unsigned_abs() {
        let peak_dbfs = if peak == 0 {
            -96.0
        } else {
            20.0 * (f64::from(peak) / 32768.0).log10()
        };
        return Err(ConvertError::Silent { peak_dbfs });
    }
    Ok(())
}

/// Writes 16 kHz mono samples to `path` atomically (a temporary file renamed into place),
/// creating the directory.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), ConvertError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = temp_path(path);
    let bytes =
        media::wav::to_bytes(RATE, samples).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

/// A sibling of `path` to write before renaming, unique to this process and call (two uploads
/// of the same prompt at once each write their own file; the last rename wins whole).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Length in seconds of a WAV file we wrote (16-bit mono): from its size, without reading it.
pub fn wav_seconds(path: &Path) -> Option<f64> {
    let len = std::fs::metadata(path).ok()?.len();
    let data = len.checked_sub(44)?;
    Some(data as f64 / 2.0 / f64::from(RATE))
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_by_their_first_bytes() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.resize(64, 0);
        assert_eq!(sniff(&wav).map(|f| f.name).ok(), Some("WAV"));
        assert_eq!(sniff(b"fLaC\0\0\0\x22").map(|f| f.name).ok(), Some("FLAC"));
        assert_eq!(sniff(b"ID3\x04\0\0").map(|f| f.name).ok(), Some("MP3"));
        assert_eq!(
            sniff(&[0xff, 0xfb, 0x90, 0x64]).map(|f| f.name).ok(),
            Some("MP3")
        );
        let mut ogg = b"OggS\0\x02".to_vec();
        ogg.resize(28, 0);
        ogg.extend_from_slice(b"\x01vorbis");
        assert_eq!(sniff(&ogg).map(|f| f.name).ok(), Some("Ogg Vorbis"));
        let mut opus = b"OggS\0\x02".to_vec();
        opus.resize(28, 0);
        opus.extend_from_slice(b"OpusHead");
        assert!(sniff(&opus).unwrap_err().to_string().contains("Ogg Opus"));
        let e = sniff(b"<html>hello").unwrap_err().to_string();
        assert!(e.contains("not a recognised audio file"), "{e}");
        assert!(e.contains("3c 68 74 6d"), "{e}");
        assert!(sniff(b"").unwrap_err().to_string().contains("empty file"));
    }

    #[test]
    fn silence_length_and_limits_are_checked() {
        let rate = RATE as usize;
        assert!(matches!(
            check(&vec![0; rate]),
            Err(ConvertError::Silent { .. })
        ));
        assert!(matches!(
            check(&vec![30; rate]),
            Err(ConvertError::Silent { .. })
        ));
        assert!(matches!(
            check(&[1000; 100]),
            Err(ConvertError::TooShort { .. })
        ));
        let long = vec![1000i16; (MAX_SECONDS as usize) * rate + 1];
        assert!(matches!(check(&long), Err(ConvertError::TooLong)));
        assert!(check(&vec![1000; rate]).is_ok());
        let e = check(&vec![0; rate]).unwrap_err().to_string();
        assert_eq!(e, "the audio is silent (loudest sample -96 dBFS)");
    }

    #[test]
    fn temporary_names_differ_per_call() {
        let p = Path::new("/d/goodbye.wav");
        assert_ne!(temp_path(p), temp_path(p));
        assert_eq!(temp_path(p).parent(), p.parent());
    }
}
