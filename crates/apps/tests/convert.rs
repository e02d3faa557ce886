//! Upload conversion against the real `sox` (packages sox, libsox-fmt-mp3): files in the formats
//! administrators upload, made here by sox itself, come out as 16 kHz mono 16-bit WAV with the
//! same tone; unreadable, silent and too-long files are refused with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use apps::audio_file::{self, ConvertError, RATE};
use apps::prompt::Lang;
use apps::prompt_files::{self, Source};

/// Makes `name` with sox: a 1.5 s tone of `hz` at `rate` Hz, `channels` channels, plus any
/// extra output options (encoding).
fn make(dir: &Path, name: &str, hz: u32, rate: u32, channels: u32, extra: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let st = Command::new("sox")
        .args(["-n", "-r", &rate.to_string(), "-c", &channels.to_string()])
        .args(extra)
        .arg(&p)
        .args(["synth", "1.5", "sine", &hz.to_string(), "vol", "0.5"])
        .status()
        .expect("run sox");
    assert!(st.success(), "sox could not write {name}");
    p
}

/// Energy at `hz` relative to the total (a single-bin DFT over the middle second).
fn tone_share(samples: &[i16], hz: f64) -> f64 {
    let mid = &samples[samples.len() / 4..samples.len() / 4 + RATE as usize / 2];
    let (mut re, mut im, mut total) = (0.0, 0.0, 0.0);
    for (i, &s) in mid.iter().enumerate() {
        let x = f64::from(s);
        let w = 2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(RATE);
        re += x * w.cos();
        im += x * w.sin();
        total += x * x;
    }
    (re * re + im * im) * 2.0 / mid.len() as f64 / total
}

fn assert_converted(input: &Path, want_format: &str, hz: f64) {
    let c = audio_file::decode(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    assert_eq!(c.input_format, want_format);
    assert!(
        (1.4..=1.7).contains(&c.seconds()),
        "{}: {} s",
        input.display(),
        c.seconds()
    );
    let share = tone_share(&c.samples, hz);
    assert!(share > 0.8, "{}: tone share {share}", input.display());
}

#[test]
fn common_formats_and_rates_are_converted() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    // WAV at 44.1 kHz stereo, and WAVs in the encodings phones and editors write.
    assert_converted(&make(dir, "cd.wav", 1000, 44_100, 2, &[]), "WAV", 1000.0);
    assert_converted(
        &make(dir, "ulaw.wav", 700, 8000, 1, &["-e", "u-law"]),
        "WAV",
        700.0,
    );
    assert_converted(
        &make(dir, "alaw.wav", 700, 8000, 1, &["-e", "a-law"]),
        "WAV",
        700.0,
    );
    assert_converted(
        &make(
            dir,
            "float.wav",
            500,
            48_000,
            2,
            &["-e", "floating-point", "-b", "32"],
        ),
        "WAV",
        500.0,
    );
    assert_converted(&make(dir, "x.flac", 800, 22_050, 1, &[]), "FLAC", 800.0);
    assert_converted(
        &make(dir, "x.ogg", 800, 44_100, 2, &[]),
        "Ogg Vorbis",
        800.0,
    );
    assert_converted(&make(dir, "x.mp3", 800, 44_100, 2, &[]), "MP3", 800.0);
    // The format comes from the bytes, not the name.
    let renamed = dir.join("upload.bin");
    std::fs::copy(dir.join("x.mp3"), &renamed).expect("copy");
    assert_converted(&renamed, "MP3", 800.0);
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    let garbage = dir.join("garbage.wav");
    std::fs::write(&garbage, b"this is not audio at all, just text").expect("write");
    let e = audio_file::decode(&garbage).unwrap_err().to_string();
    assert!(e.starts_with("not a recognised audio file"), "{e}");

    // A WAV header with its data cut off after the header.
    let cut = make(dir, "cut.wav", 800, 8000, 1, &[]);
    let bytes = std::fs::read(&cut).expect("read");
    std::fs::write(&cut, &bytes[..30]).expect("write");
    let e = audio_file::decode(&cut).unwrap_err();
    assert!(matches!(e, ConvertError::Decode { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the WAV file could not be decoded: WAVE file fmt chunk is too short"
    );

    let silent = dir.join("silent.wav");
    let st = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1"])
        .arg(&silent)
        .args(["trim", "0", "2"])
        .status()
        .expect("sox");
    assert!(st.success());
    let e = audio_file::decode(&silent).unwrap_err();
    assert!(matches!(e, ConvertError::Silent { .. }), "{e}");

    // Eleven minutes at a low rate (small file): too long.
    let long = dir.join("long.flac");
    let st = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1"])
        .arg(&long)
        .args(["synth", "660", "sine", "440"])
        .status()
        .expect("sox");
    assert!(st.success());
    let e = audio_file::decode(&long).unwrap_err();
    assert!(matches!(e, ConvertError::TooLong), "{e}");
    assert_eq!(e.to_string(), "the audio is longer than 10 minutes");
}

#[test]
fn an_upload_replaces_the_prompt_for_its_tenant() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path();
    let src = tempfile::tempdir().expect("tempdir");
    let mp3 = make(src.path(), "greeting.mp3", 600, 44_100, 2, &[]);
    let l = prompt_files::upload(dir, 3, Lang::Ja, "ivr-welcome", &mp3, Some("greeting.mp3"))
        .expect("upload");
    assert_eq!(l.source, Source::Uploaded);
    assert!(l.present && !l.default_present);
    let path = prompt_files::resolve(dir, Some(3), Lang::Ja, "ivr-welcome").expect("resolved");
    let wav = media::wav::read_file(&path).expect("a 16-bit mono WAV");
    assert_eq!(wav.sample_rate, RATE);
    assert!(tone_share(&wav.samples, 600.0) > 0.8);
    let e = prompt_files::upload(dir, 3, Lang::Ja, "no-such-prompt", &mp3, None).unwrap_err();
    assert!(e.to_string().contains("unknown prompt"), "{e}");
}
