//! Loading audio files for prompts and music on hold: WAV in the formats people upload
//! (8-bit unsigned, 16/24/32-bit integer or 32/64-bit float PCM; G.711 µ-law/A-law WAV; mono,
//! stereo or more channels, mixed down to mono; any sample rate) and Ogg Opus recordings.
//! [`load`] returns the file's own rate; [`load_at`] converts to the rate a leg needs.
//!
//! [`WavWriter`] writes a recording frame by frame (16-bit mono) without holding it in memory.
//! [`crate::wav`] stays the strict 16-bit mono reader/writer for Denwa's own files.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Largest file [`load`] reads (a 10-minute 48 kHz stereo 32-bit WAV is ~230 MB).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Why an audio file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Underlying I/O failure (missing file, permissions).
    #[error("audio I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Not a file format we read.
    #[error("unrecognised audio format (expected WAV or Ogg Opus)")]
    UnknownFormat,
    /// A WAV file that is damaged.
    #[error("not a valid WAV file: {0}")]
    Malformed(String),
    /// A valid WAV file in an encoding we do not read.
    #[error("unsupported WAV encoding: {0}")]
    Unsupported(String),
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("audio file too large ({0} bytes)")]
    TooLarge(u64),
    /// An Ogg Opus file that could not be read.
    #[error(transparent)]
    Ogg(#[from] crate::oggopus::OggError),
    /// The sample rate cannot be converted.
    #[error(transparent)]
    Resample(#[from] crate::resample::ResampleError),
}

const TAG_PCM: u16 = 1;
const TAG_FLOAT: u16 = 3;
const TAG_ALAW: u16 = 6;
const TAG_ULAW: u16 = 7;
const TAG_EXTENSIBLE: u16 = 0xfffe;

/// Loads `path` as mono 16-bit PCM at the file's own rate: `(rate, samples)`.
pub fn load(path: impl AsRef<Path>) -> Result<(u32, Vec<i16>), AudioError> {
    let path = path.as_ref();
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        return Err(AudioError::TooLarge(len));
    }
    decode(&std::fs::read(path)?)
}

/// Loads `path` and converts it to `rate` (8000/16000/48000 for calls).
pub fn load_at(path: impl AsRef<Path>, rate: u32) -> Result<Vec<i16>, AudioError> {
    let (from, pcm) = load(path)?;
    Ok(crate::resample::resample_all(&pcm, from, rate)?)
}

/// Decodes a file held in memory (format sniffed from its first bytes).
pub fn decode(data: &[u8]) -> Result<(u32, Vec<i16>), AudioError> {
    if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WAVE" {
        return decode_wav(data);
    }
    if data.len() >= 4 && &data[..4] == b"OggS" {
        return Ok(crate::oggopus::decode(data)?);
    }
    Err(AudioError::UnknownFormat)
}

struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    block_align: u16,
}

fn le16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn le32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Any WAV to mono 16-bit.
pub fn decode_wav(data: &[u8]) -> Result<(u32, Vec<i16>), AudioError> {
    let bad = |m: &str| AudioError::Malformed(m.to_string());
    if data.len() < 12 || &data[0..4] != b"RIFF" || &data[8..12] != b"WAVE" {
        return Err(bad("missing RIFF/WAVE header"));
    }
    let mut rest = &data[12..];
    let mut fmt: Option<Format> = None;
    while rest.len() >= 8 {
        let id = &rest[0..4];
        let size = le32(rest, 4) as usize;
        let body_all = &rest[8..];
        if id == b"data" {
            let f = fmt.ok_or_else(|| bad("data chunk before fmt chunk"))?;
            // Streaming writers leave the size at 0 or 0xffffffff: take what is there.
            let body = if size == 0 || size > body_all.len() {
                body_all
            } else {
                &body_all[..size]
            };
            return Ok((f.rate, to_mono(&f, body)?));
        }
        let body = body_all
            .get(..size)
            .ok_or_else(|| bad("chunk runs past the end"))?;
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(bad("fmt chunk too short"));
            }
            let mut tag = le16(body, 0);
            if tag == TAG_EXTENSIBLE {
                if body.len() < 26 {
                    return Err(bad("extensible fmt chunk too short"));
                }
                tag = le16(body, 24);
            }
            fmt = Some(Format {
                tag,
                channels: le16(body, 2),
                rate: le32(body, 4),
                block_align: le16(body, 12),
                bits: le16(body, 14),
            });
        }
        let skip = (8 + size + (size & 1)).min(rest.len());
        rest = &rest[skip..];
    }
    Err(bad("no data chunk"))
}

fn to_mono(f: &Format, body: &[u8]) -> Result<Vec<i16>, AudioError> {
    let unsupported = || {
        AudioError::Unsupported(format!(
            "format {:#x}, {} bits, {} channel(s)",
            f.tag, f.bits, f.channels
        ))
    };
    if f.channels == 0 || f.channels > 32 || f.rate == 0 || f.rate > 384_000 {
        return Err(unsupported());
    }
    let bytes = match (f.tag, f.bits) {
        (TAG_PCM, 8) | (TAG_ALAW, 8) | (TAG_ULAW, 8) => 1,
        (TAG_PCM, 16) => 2,
        (TAG_PCM, 24) => 3,
        (TAG_PCM, 32) | (TAG_FLOAT, 32) => 4,
        (TAG_FLOAT, 64) => 8,
        _ => return Err(unsupported()),
    };
    let channels = usize::from(f.channels);
    // Frames are block_align bytes apart (some writers pad 24-bit samples to 4 bytes).
    let frame = usize::from(f.block_align).max(bytes * channels);
    let sample = |b: &[u8]| -> f64 {
        match (f.tag, bytes) {
            (TAG_ALAW, _) => f64::from(crate::g711::alaw_decode(b[0])),
            (TAG_ULAW, _) => f64::from(crate::g711::ulaw_decode(b[0])),
            (_, 1) => (f64::from(b[0]) - 128.0) * 256.0,
            (_, 2) => f64::from(i16::from_le_bytes([b[0], b[1]])),
            (_, 3) => f64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) / 256.0,
            (TAG_FLOAT, 4) => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])) * 32768.0,
            (_, 4) => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 65536.0,
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[..8]);
                f64::from_le_bytes(a) * 32768.0
            }
        }
    };
    let out = body
        .chunks_exact(frame)
        .map(|fr| {
            let sum: f64 = (0..channels)
                .map(|c| sample(&fr[c * bytes..c * bytes + bytes]))
                .sum();
            let v = sum / channels as f64;
            if v.is_nan() {
                0
            } else {
                v.round().clamp(-32768.0, 32767.0) as i16
            }
        })
        .collect();
    Ok(out)
}

/// A streaming 16-bit mono WAV writer for recordings: the header is written first with zero
/// sizes (which [`crate::wav::parse`] and [`decode`] read as "up to the end of the file", so a
/// recording cut short by a crash is still playable) and patched by [`WavWriter::finish`].
pub struct WavWriter<W: Write + Seek> {
    out: W,
    data_bytes: u64,
}

/// Largest data chunk a RIFF size field can describe.
const MAX_WAV_DATA: u64 = u32::MAX as u64 - 36;

impl<W: Write + Seek> WavWriter<W> {
    /// Starts a file at `rate` samples per second.
    pub fn new(out: W, rate: u32) -> std::io::Result<WavWriter<W>> {
        WavWriter::with_channels(out, rate, 1)
    }

    /// Starts a file of `channels` interleaved channels (a stereo call recording: one party
    /// per channel); [`WavWriter::write_frame`] then takes interleaved samples.
    pub fn with_channels(mut out: W, rate: u32, channels: u16) -> std::io::Result<WavWriter<W>> {
        let channels = channels.max(1);
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&TAG_PCM.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&rate.wrapping_mul(2 * u32::from(channels)).to_le_bytes());
        h.extend_from_slice(&(2 * channels).to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&0u32.to_le_bytes());
        out.write_all(&h)?;
        Ok(WavWriter { out, data_bytes: 0 })
    }

    /// Appends one frame. Fails (and writes nothing) once the file would pass the 4 GiB a WAV
    /// header can describe; I/O errors such as a full disk are returned as they are.
    pub fn write_frame(&mut self, pcm: &[i16]) -> std::io::Result<()> {
        let add = pcm.len() as u64 * 2;
        if self.data_bytes + add > MAX_WAV_DATA {
            return Err(std::io::Error::other("WAV file would exceed 4 GiB"));
        }
        let mut buf = [0u8; 1920];
        for chunk in pcm.chunks(buf.len() / 2) {
            for (b, s) in buf.chunks_exact_mut(2).zip(chunk) {
                b.copy_from_slice(&s.to_le_bytes());
            }
            self.out.write_all(&buf[..chunk.len() * 2])?;
        }
        self.data_bytes += add;
        Ok(())
    }

    /// Samples written so far.
    pub fn samples(&self) -> u64 {
        self.data_bytes / 2
    }

    /// Patches the header's sizes and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        let data = self.data_bytes as u32; // bounded by MAX_WAV_DATA
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&(36 + data).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&data.to_le_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{energy, goertzel, sine};
    use std::time::Duration;

    /// A WAV file of `frames` already encoded as bytes.
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn formats_and_channel_mixdown() {
        let tone = sine(500.0, Duration::from_millis(100), 22050, 16000);
        // 16-bit stereo: left = tone, right = silence → mono is half the tone.
        let mut d = Vec::new();
        for &s in &tone {
            d.extend_from_slice(&s.to_le_bytes());
            d.extend_from_slice(&0i16.to_le_bytes());
        }
        let (rate, pcm) = decode(&wav(1, 2, 22050, 16, &d)).expect("16-bit stereo");
        assert_eq!(rate, 22050);
        assert_eq!(pcm.len(), tone.len());
        for (a, b) in pcm.iter().zip(&tone) {
            assert!((i32::from(*a) - i32::from(*b) / 2).abs() <= 1);
        }
        // 8-bit unsigned mono.
        let d: Vec<u8> = tone.iter().map(|&s| ((s >> 8) + 128) as u8).collect();
        let (_, pcm) = decode(&wav(1, 1, 22050, 8, &d)).expect("8-bit");
        for (a, b) in pcm.iter().zip(&tone) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 256);
        }
        // 24-bit and 32-bit float.
        let d: Vec<u8> = tone
            .iter()
            .flat_map(|&s| {
                let v = i32::from(s) << 8;
                [v as u8, (v >> 8) as u8, (v >> 16) as u8]
            })
            .collect();
        assert_eq!(decode(&wav(1, 1, 22050, 24, &d)).expect("24").1, tone);
        let d: Vec<u8> = tone
            .iter()
            .flat_map(|&s| (f32::from(s) / 32768.0).to_le_bytes())
            .collect();
        assert_eq!(decode(&wav(3, 1, 22050, 32, &d)).expect("float").1, tone);
        // µ-law WAV.
        let d = crate::g711::encode_ulaw(&tone);
        let (_, pcm) = decode(&wav(7, 1, 8000, 8, &d)).expect("ulaw");
        assert_eq!(pcm, crate::g711::decode_ulaw(&d));
        // Denwa's own 16-bit mono files load unchanged.
        let own = crate::wav::to_bytes(8000, &tone).expect("wav");
        assert_eq!(decode(&own).expect("own").1, tone);
    }

    #[test]
    fn load_at_converts_rate_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prompt.wav");
        let tone = sine(1000.0, Duration::from_millis(500), 44100, 12000);
        let mut d = Vec::new();
        for &s in &tone {
            d.extend_from_slice(&s.to_le_bytes());
            d.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::write(&path, wav(1, 2, 44100, 16, &d)).expect("write");
        let pcm = load_at(&path, 8000).expect("load");
        assert_eq!(pcm.len(), 4000);
        let mid = &pcm[500..3500];
        assert!(goertzel(mid, 1000.0, 8000) / (2.0 * energy(mid)) > 0.97);
        // An Ogg Opus file loads too.
        let ogg = dir.path().join("prompt.opus");
        std::fs::write(&ogg, crate::oggopus::encode(8000, &pcm).expect("ogg")).expect("write");
        let (rate, back) = load(&ogg).expect("ogg load");
        assert_eq!((rate, back.len()), (48000, 24000));
    }

    #[test]
    fn streaming_wav_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.wav");
        let tone = sine(700.0, Duration::from_millis(1000), 16000, 9000);
        let file = std::fs::File::create(&path).expect("create");
        let mut w = WavWriter::new(std::io::BufWriter::new(file), 16000).expect("writer");
        for frame in tone.chunks(320) {
            w.write_frame(frame).expect("frame");
        }
        assert_eq!(w.samples(), 16000);
        w.finish().expect("finish");
        // Byte-identical to the whole-buffer writer, and readable by both readers.
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes, crate::wav::to_bytes(16000, &tone).expect("wav"));
        assert_eq!(crate::wav::read_file(&path).expect("strict").samples, tone);
        // Cut short before finish (a crash): still readable up to the last frame.
        let mut w = WavWriter::new(std::io::Cursor::new(Vec::new()), 8000).expect("writer");
        w.write_frame(&tone[..160]).expect("frame");
        let unfinished = w.out.into_inner(); // never finished
        let (rate, pcm) = decode(&unfinished).expect("unfinished");
        assert_eq!((rate, pcm.as_slice()), (8000, &tone[..160]));
    }

    #[test]
    fn bad_files_get_precise_errors() {
        assert!(matches!(
            decode(b"ID3\x03mp3..."),
            Err(AudioError::UnknownFormat)
        ));
        assert!(matches!(decode(b""), Err(AudioError::UnknownFormat)));
        let adpcm = wav(2, 1, 8000, 4, &[0; 100]);
        assert!(matches!(decode(&adpcm), Err(AudioError::Unsupported(_))));
        let no_channels = wav(1, 0, 8000, 16, &[0; 100]);
        assert!(matches!(
            decode(&no_channels),
            Err(AudioError::Unsupported(_))
        ));
        assert!(matches!(
            load("/nonexistent/denwa/prompt.wav"),
            Err(AudioError::Io(_))
        ));
        // Truncations and random bytes never panic.
        let good = wav(1, 2, 8000, 16, &[1; 400]);
        for len in 0..good.len() {
            let _ = decode(&good[..len]);
        }
        let mut rng = crate::testrng::Rng(5);
        for _ in 0..2000 {
            let mut v = good.clone();
            for _ in 0..4 {
                let x = rng.next();
                let i = (x as usize) % v.len();
                v[i] = (x >> 32) as u8;
            }
            let _ = decode(&v);
        }
    }
}
