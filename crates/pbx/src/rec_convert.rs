//! Converts an anchored call's recording (the endpoint recorder writes WAV) to Ogg Opus when
//! the tenant's recording format is `opus`.

use std::io;
use std::path::Path;

/// Encodes the WAV at `wav` to Ogg Opus at `opus` and removes the WAV. On failure the WAV is
/// removed too (the row reports the error) and a partial Ogg file is not left behind.
pub(crate) fn wav_to_opus(wav: &Path, opus: &Path) -> io::Result<()> {
    let r = convert(wav, opus);
    let _ = std::fs::remove_file(wav);
    if r.is_err() {
        let _ = std::fs::remove_file(opus);
    }
    r
}

fn convert(wav: &Path, opus: &Path) -> io::Result<()> {
    let w = media::wav::read_file(wav).map_err(|e| io::Error::other(e.to_string()))?;
    let ogg = media::oggopus::encode(w.sample_rate, &w.samples)
        .map_err(|e| io::Error::other(e.to_string()))?;
    std::fs::write(opus, ogg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_becomes_ogg_opus_of_the_same_length_and_goes_away() {
        let dir = std::env::temp_dir().join(format!("dnw-rec-convert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (wav, opus) = (dir.join("a.opus.wav"), dir.join("a.opus"));
        let pcm: Vec<i16> = (0..8000)
            .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
            .collect();
        media::wav::write_file(&wav, 8000, &pcm).expect("wav");
        wav_to_opus(&wav, &opus).expect("converted");
        assert!(!wav.exists());
        // Decoded at Opus's 48 kHz: the same second of audio.
        let (rate, back) = media::oggopus::read_file(&opus).expect("ogg");
        assert_eq!((rate, back.len()), (48000, pcm.len() * 6));
        // Not a WAV: refused, nothing left.
        std::fs::write(&wav, b"not audio").expect("junk");
        assert!(wav_to_opus(&wav, &dir.join("b.opus")).is_err());
        assert!(!dir.join("b.opus").exists() && !wav.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
