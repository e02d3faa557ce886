//! Known tone sequences: write them as WAV, find them again in a recording.
//!
//! Each side of a call plays its own sequence of distinct frequencies; the far side records what
//! it received. [`detect`] runs a Goertzel filter per 20 ms frame for every known frequency and
//! returns the tones it heard, in order. [`check_heard`] then asserts that a side heard exactly
//! the other side's sequence and never one of its own tones (which would mean crossed or echoed
//! media). The WAV reader/writer handles the plain RIFF/PCM 16-bit files baresip reads and writes.

use std::fs;
use std::io;
use std::path::Path;

/// Sample rate used for all generated audio (narrowband telephony).
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms analysis frame at [`SAMPLE_RATE`].
pub const FRAME: usize = 160;
/// The caller's usual tone sequence (Hz).
pub const CALLER_TONES: [u32; 5] = [400, 600, 800, 1000, 1200];
/// The callee's usual tone sequence (Hz); disjoint from [`CALLER_TONES`].
pub const CALLEE_TONES: [u32; 5] = [1400, 1600, 1800, 2000, 1500];

/// Fraction of a frame's energy a single frequency must hold for the frame to count as that tone.
const DOMINANCE: f64 = 0.6;
/// Frames quieter than this RMS (of full scale 32768) are silence.
const SILENCE_RMS: f64 = 200.0;
/// A tone must last this many consecutive frames (60 ms) to count; shorter blips are noise.
const MIN_FRAMES: usize = 3;
/// Runs of the same tone separated by at most this many frames (a lost packet) are one tone.
const MERGE_GAP: usize = 2;

/// Errors reading a WAV file or checking a tone sequence.
#[derive(Debug, thiserror::Error)]
pub enum ToneError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The file is not a WAV file we can read.
    #[error("{path}: not a 16-bit PCM WAV file: {reason}")]
    BadWav {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The far side did not hear what it should have.
    #[error("{0}")]
    Mismatch(String),
}

/// PCM audio: interleaved 16-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The samples, interleaved when `channels > 1`.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Mono audio at [`SAMPLE_RATE`].
    pub fn mono(samples: Vec<i16>) -> Wav {
        Wav {
            sample_rate: SAMPLE_RATE,
            channels: 1,
            samples,
        }
    }

    /// The first channel only.
    pub fn first_channel(&self) -> Vec<i16> {
        self.samples
            .iter()
            .step_by(usize::from(self.channels.max(1)))
            .copied()
            .collect()
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        let frames = self.samples.len() as u64 / u64::from(self.channels.max(1));
        frames * 1000 / u64::from(self.sample_rate.max(1))
    }

    /// The RIFF/WAVE bytes of this audio.
    pub fn to_bytes(&self) -> Vec<u8> {
        let data_len = u32::try_from(self.samples.len() * 2).unwrap_or(u32::MAX);
        let block_align = self.channels * 2;
        let mut out = Vec::with_capacity(44 + self.samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&self.channels.to_le_bytes());
        out.extend_from_slice(&self.sample_rate.to_le_bytes());
        out.extend_from_slice(&(self.sample_rate * u32::from(block_align)).to_le_bytes());
        out.extend_from_slice(&block_align.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in &self.samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Parses RIFF/WAVE bytes holding 16-bit PCM.
    ///
    /// A data chunk whose length field is 0 or too large (a recorder killed before it closed
    /// the file) is read up to the end of the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Wav, String> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("no RIFF/WAVE header".into());
        }
        let mut pos = 12;
        let mut fmt: Option<(u16, u16, u32, u16)> = None;
        while pos + 8 <= bytes.len() {
            let id = &bytes[pos..pos + 4];
            let len = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]) as usize;
            let body = pos + 8;
            if id == b"fmt " {
                if len < 16 || body + 16 > bytes.len() {
                    return Err("short fmt chunk".into());
                }
                let b = &bytes[body..body + 16];
                let format = u16::from_le_bytes([b[0], b[1]]);
                let channels = u16::from_le_bytes([b[2], b[3]]);
                let rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let bits = u16::from_le_bytes([b[14], b[15]]);
                fmt = Some((format, channels, rate, bits));
            } else if id == b"data" {
                let (format, channels, sample_rate, bits) =
                    fmt.ok_or("data chunk before fmt chunk")?;
                // 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which libsndfile may write; PCM inside.
                if format != 1 && format != 0xFFFE {
                    return Err(format!("format tag {format} is not PCM"));
                }
                if bits != 16 {
                    return Err(format!("{bits} bits per sample, want 16"));
                }
                if channels == 0 || sample_rate == 0 {
                    return Err("zero channels or sample rate".into());
                }
                let end = if len == 0 || body + len > bytes.len() {
                    bytes.len()
                } else {
                    body + len
                };
                let samples = bytes[body..end]
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Ok(Wav {
                    sample_rate,
                    channels,
                    samples,
                });
            }
            // Chunks are padded to even length.
            pos = body.saturating_add(len).saturating_add(len & 1);
        }
        Err("no data chunk".into())
    }
}

/// Writes `wav` to `path`.
pub fn write_wav(path: &Path, wav: &Wav) -> Result<(), ToneError> {
    fs::write(path, wav.to_bytes()).map_err(|source| ToneError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a 16-bit PCM WAV file.
pub fn read_wav(path: &Path) -> Result<Wav, ToneError> {
    let bytes = fs::read(path).map_err(|source| ToneError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Wav::from_bytes(&bytes).map_err(|reason| ToneError::BadWav {
        path: path.display().to_string(),
        reason,
    })
}

/// How a tone sequence is laid out in time.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneLayout {
    /// Silence before the first tone, so media paths have settled (ms).
    pub lead_ms: u32,
    /// Length of each tone (ms).
    pub tone_ms: u32,
    /// Silence between tones (ms).
    pub gap_ms: u32,
    /// Silence after the last tone (ms).
    pub tail_ms: u32,
    /// Peak amplitude (of 32767); well below clipping so G.711 keeps it clean.
    pub amplitude: f64,
}

impl Default for ToneLayout {
    fn default() -> Self {
        ToneLayout {
            lead_ms: 600,
            tone_ms: 200,
            gap_ms: 100,
            tail_ms: 400,
            amplitude: 8000.0,
        }
    }
}

impl ToneLayout {
    /// How long a sequence of `count` tones lasts, lead and tail silence included (ms): how
    /// long a call must stay up for the far side to hear all of it.
    pub fn sequence_ms(&self, count: usize) -> u32 {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let gaps = count.saturating_sub(1);
        self.lead_ms + self.tail_ms + count * self.tone_ms + gaps * self.gap_ms
    }
}

/// Mono samples at [`SAMPLE_RATE`] playing `freqs` one after another as laid out by `layout`.
pub fn tone_sequence(freqs: &[u32], layout: &ToneLayout) -> Vec<i16> {
    let per_ms = (SAMPLE_RATE / 1000) as usize;
    let silence = |ms: u32| std::iter::repeat_n(0i16, ms as usize * per_ms);
    let mut out: Vec<i16> = silence(layout.lead_ms).collect();
    for (i, &f) in freqs.iter().enumerate() {
        if i > 0 {
            out.extend(silence(layout.gap_ms));
        }
        let n = layout.tone_ms as usize * per_ms;
        let w = 2.0 * std::f64::consts::PI * f64::from(f) / f64::from(SAMPLE_RATE);
        // A 5 ms ramp at each end avoids clicks that would smear energy into other bins.
        let ramp = 5 * per_ms;
        out.extend((0..n).map(|k| {
            let edge = k.min(n - 1 - k);
            let gain = if edge < ramp {
                edge as f64 / ramp as f64
            } else {
                1.0
            };
            (layout.amplitude * gain * (w * k as f64).sin()).round() as i16
        }));
    }
    out.extend(silence(layout.tail_ms));
    out
}

/// Writes `freqs` laid out by `layout` as a mono 8 kHz WAV file, padded with silence to at least
/// `min_ms` (a baresip call ends when its audio file does).
pub fn write_tone_wav(
    path: &Path,
    freqs: &[u32],
    layout: &ToneLayout,
    min_ms: u32,
) -> Result<(), ToneError> {
    let mut samples = tone_sequence(freqs, layout);
    let min_len = min_ms as usize * (SAMPLE_RATE / 1000) as usize;
    if samples.len() < min_len {
        samples.resize(min_len, 0);
    }
    write_wav(path, &Wav::mono(samples))
}

/// G.711 µ-law encoding of one sample (ITU-T G.711).
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    let exponent = (0..8).rev().find(|e| s & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// G.711 µ-law decoding of one byte.
pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Writes mono 8 kHz `samples` as a G.711 µ-law WAV file (format tag 7), the form sipp's
/// `rtp_stream` plays as payload type 0.
pub fn write_ulaw_wav(path: &Path, samples: &[i16]) -> Result<(), ToneError> {
    let data: Vec<u8> = samples.iter().map(|&s| ulaw_encode(s)).collect();
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(46 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&38u32.saturating_add(data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // cbSize
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&data);
    fs::write(path, out).map_err(|source| ToneError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Power of frequency `freq` in `frame` (Goertzel), as a fraction of the frame's energy.
fn tone_fraction(frame: &[i16], freq: u32, rate: u32, energy: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in frame {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A pure sine of amplitude A gives power (A·N/2)² and energy A²·N/2.
    2.0 * power / (frame.len() as f64 * energy)
}

/// One tone found in a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// Its frequency (one of the candidates).
    pub freq: u32,
    /// When it started, from the start of the recording (ms).
    pub start_ms: u64,
    /// How long it lasted (ms, in whole frames).
    pub duration_ms: u64,
}

/// The tones among `candidates` heard in `samples` (mono at `rate`), in order.
pub fn detect(samples: &[i16], rate: u32, candidates: &[u32]) -> Vec<Detection> {
    let frame_len = (rate as usize / 50).max(1); // 20 ms
    let frame_ms = 20u64;
    let labels: Vec<Option<u32>> = samples
        .chunks_exact(frame_len)
        .map(|frame| {
            let energy: f64 = frame.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let rms = (energy / frame.len() as f64).sqrt();
            if rms < SILENCE_RMS {
                return None;
            }
            candidates
                .iter()
                .map(|&f| (f, tone_fraction(frame, f, rate, energy)))
                .filter(|&(_, frac)| frac >= DOMINANCE)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(f, _)| f)
        })
        .collect();

    // Runs of equal labels: (freq, first frame, frame count).
    let mut runs: Vec<(u32, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < labels.len() {
        let Some(f) = labels[i] else {
            i += 1;
            continue;
        };
        let start = i;
        while i < labels.len() && labels[i] == Some(f) {
            i += 1;
        }
        runs.push((f, start, i - start));
    }
    // Mend a tone broken by a lost packet or two, then drop blips.
    let mut merged: Vec<(u32, usize, usize)> = Vec::new();
    for run in runs {
        if let Some(last) = merged.last_mut() {
            let gap = run.1 - (last.1 + last.2);
            if last.0 == run.0 && gap <= MERGE_GAP {
                last.2 = run.1 + run.2 - last.1;
                continue;
            }
        }
        merged.push(run);
    }
    merged
        .into_iter()
        .filter(|r| r.2 >= MIN_FRAMES)
        .map(|(freq, start, len)| Detection {
            freq,
            start_ms: start as u64 * frame_ms,
            duration_ms: len as u64 * frame_ms,
        })
        .collect()
}

/// The frequencies among `candidates` heard in the WAV at `path`, in order.
pub fn detect_file(path: &Path, candidates: &[u32]) -> Result<Vec<u32>, ToneError> {
    let wav = read_wav(path)?;
    Ok(detect(&wav.first_channel(), wav.sample_rate, candidates)
        .into_iter()
        .map(|d| d.freq)
        .collect())
}

/// Checks that `heard` is exactly `expected`, in order, and holds none of `own`.
///
/// `own` are the tones the listening side itself sent: hearing one means its audio came back
/// (echo) or was delivered to the wrong leg (crossed media).
pub fn check_heard(heard: &[u32], expected: &[u32], own: &[u32]) -> Result<(), ToneError> {
    let echoed: Vec<u32> = heard.iter().copied().filter(|f| own.contains(f)).collect();
    if !echoed.is_empty() {
        return Err(ToneError::Mismatch(format!(
            "heard its own tones {echoed:?} (echoed or crossed media); heard {heard:?}, expected {expected:?}"
        )));
    }
    if heard != expected {
        return Err(ToneError::Mismatch(format!(
            "heard {heard:?}, expected {expected:?} in that order"
        )));
    }
    Ok(())
}

/// Reads the recording at `path` and checks it with [`check_heard`].
pub fn check_recording(path: &Path, expected: &[u32], own: &[u32]) -> Result<(), ToneError> {
    let candidates: Vec<u32> = expected.iter().chain(own).copied().collect();
    let heard = detect_file(path, &candidates)?;
    check_heard(&heard, expected, own)
        .map_err(|e| ToneError::Mismatch(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_tones() -> Vec<u32> {
        CALLER_TONES.iter().chain(&CALLEE_TONES).copied().collect()
    }

    fn freqs(d: &[Detection]) -> Vec<u32> {
        d.iter().map(|d| d.freq).collect()
    }

    #[test]
    fn ulaw_matches_g711_reference_points() {
        // Values from the G.711 µ-law table: zero, the extremes and a segment boundary.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(32767), 0x80);
        assert_eq!(ulaw_encode(-32768), 0x00);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(ulaw_encode(1000)), 988);
    }

    #[test]
    fn ulaw_codec_roundtrip_is_close() {
        for s in [-32000i16, -1000, -10, 0, 10, 1000, 32000] {
            let back = ulaw_decode(ulaw_encode(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            assert!(err <= i32::from(s).abs() / 16 + 8, "{s} -> {back}");
        }
    }

    #[test]
    fn clean_sequence_is_detected_in_order_with_timing() {
        let layout = ToneLayout::default();
        let samples = tone_sequence(&CALLER_TONES, &layout);
        assert_eq!(
            samples.len() as u32,
            layout.sequence_ms(CALLER_TONES.len()) * 8,
            "sequence_ms matches the generated length"
        );
        let found = detect(&samples, SAMPLE_RATE, &all_tones());
        assert_eq!(freqs(&found), CALLER_TONES);
        // First tone starts right after the lead silence, give or take a frame.
        assert!((580..=640).contains(&found[0].start_ms), "{found:?}");
        assert!(found.iter().all(|d| (160..=220).contains(&d.duration_ms)));
    }

    #[test]
    fn sequence_survives_g711_and_noise_and_a_lost_packet() {
        let mut samples = tone_sequence(&CALLEE_TONES, &ToneLayout::default());
        // Deterministic pseudo-random noise at about -40 dB of the tone.
        let mut state = 0x2545_F491u32;
        for s in samples.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state % 161) as i16 - 80;
            *s = ulaw_decode(ulaw_encode(s.saturating_add(noise)));
        }
        // Drop one 20 ms packet in the middle of the second tone (600 + 300 + 80 ms).
        let at = (600 + 300 + 80) * 8;
        samples[at..at + 160].fill(0);
        let found = detect(&samples, SAMPLE_RATE, &all_tones());
        assert_eq!(freqs(&found), CALLEE_TONES);
        check_heard(&freqs(&found), &CALLEE_TONES, &CALLER_TONES).unwrap();
    }

    #[test]
    fn missing_tone_is_caught() {
        let mut seq = CALLER_TONES.to_vec();
        seq.remove(2);
        let samples = tone_sequence(&seq, &ToneLayout::default());
        let heard = freqs(&detect(&samples, SAMPLE_RATE, &all_tones()));
        let err = check_heard(&heard, &CALLER_TONES, &CALLEE_TONES).unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }

    #[test]
    fn echoed_own_tone_is_caught() {
        // The callee hears the caller's tones but also one of its own coming back.
        let mut seq = CALLER_TONES.to_vec();
        seq.insert(3, CALLEE_TONES[0]);
        let samples = tone_sequence(&seq, &ToneLayout::default());
        let heard = freqs(&detect(&samples, SAMPLE_RATE, &all_tones()));
        let err = check_heard(&heard, &CALLER_TONES, &CALLEE_TONES).unwrap_err();
        assert!(err.to_string().contains("echoed or crossed"), "{err}");
    }

    #[test]
    fn wrong_order_is_caught() {
        let mut seq = CALLER_TONES.to_vec();
        seq.swap(0, 1);
        let samples = tone_sequence(&seq, &ToneLayout::default());
        let heard = freqs(&detect(&samples, SAMPLE_RATE, &all_tones()));
        assert!(check_heard(&heard, &CALLER_TONES, &CALLEE_TONES).is_err());
    }

    #[test]
    fn silence_and_white_noise_hold_no_tones() {
        assert!(detect(&vec![0i16; 8000], SAMPLE_RATE, &all_tones()).is_empty());
        let mut state = 1u32;
        let noise: Vec<i16> = (0..16000)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((state >> 16) as i16) / 4
            })
            .collect();
        assert!(detect(&noise, SAMPLE_RATE, &all_tones()).is_empty());
    }

    #[test]
    fn short_blip_is_not_a_tone() {
        let layout = ToneLayout {
            tone_ms: 40,
            ..ToneLayout::default()
        };
        let samples = tone_sequence(&[1000], &layout);
        assert!(detect(&samples, SAMPLE_RATE, &all_tones()).is_empty());
    }

    #[test]
    fn wav_roundtrip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        write_tone_wav(&path, &CALLER_TONES, &ToneLayout::default(), 5000).unwrap();
        let wav = read_wav(&path).unwrap();
        assert_eq!(wav.sample_rate, SAMPLE_RATE);
        assert_eq!(wav.channels, 1);
        assert_eq!(wav.duration_ms(), 5000);
        check_recording(&path, &CALLER_TONES, &CALLEE_TONES).unwrap();
    }

    #[test]
    fn wav_reader_accepts_extra_chunks_and_unfinished_length_and_rejects_garbage() {
        let wav = Wav::mono(vec![1, -2, 3]);
        let mut bytes = wav.to_bytes();
        // Insert a LIST chunk (odd length, padded) between fmt and data, as some writers do.
        let list = b"LIST\x03\x00\x00\x00abc\x00";
        bytes.splice(36..36, list.iter().copied());
        assert_eq!(Wav::from_bytes(&bytes).unwrap(), wav);
        // A data length of 0 (writer never closed the file) reads to the end.
        let mut open = wav.to_bytes();
        open[40..44].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Wav::from_bytes(&open).unwrap(), wav);
        assert!(Wav::from_bytes(b"RIFF....WAVE").is_err());
        assert!(Wav::from_bytes(b"not a wav file at all").is_err());
        let mut eight_bit = wav.to_bytes();
        eight_bit[34] = 8;
        assert!(Wav::from_bytes(&eight_bit).is_err());
    }
}
