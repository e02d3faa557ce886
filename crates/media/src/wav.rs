//! WAV (RIFF) read/write for 16-bit PCM mono, the format prompts and recordings use.

use std::io::{self, Read, Write};
use std::path::Path;

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Underlying I/O failure.
    #[error("wav I/O: {0}")]
    Io(#[from] io::Error),
    /// Not a RIFF/WAVE file, or a chunk is cut short.
    #[error("not a valid WAV file: {0}")]
    Malformed(&'static str),
    /// A valid WAV file in a format other than 16-bit PCM mono.
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    /// Too many samples for a 32-bit RIFF size.
    #[error("audio too long for a WAV file")]
    TooLong,
}

/// Decoded audio: 16-bit mono samples and their rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second (8000 for telephony).
    pub sample_rate: u32,
    /// Signed 16-bit samples.
    pub samples: Vec<i16>,
}

const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// Parses a WAV file held in memory.
pub fn parse(data: &[u8]) -> Result<Wav, WavError> {
    if data.len() < 12 || &data[0..4] != b"RIFF" || &data[8..12] != b"WAVE" {
        return Err(WavError::Malformed("missing RIFF/WAVE header"));
    }
    let mut rest = &data[12..];
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while rest.len() >= 8 {
        let id = &rest[0..4];
        let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let body_all = &rest[8..];
        if id == b"data" {
            let (channels, rate) = match fmt {
                Some((FORMAT_PCM | FORMAT_EXTENSIBLE, 1, rate, 16)) => (1, rate),
                Some((tag, ch, rate, bits)) => {
                    return Err(WavError::Unsupported(format!(
                        "format {tag:#x}, {ch} channel(s), {rate} Hz, {bits} bits"
                    )));
                }
                None => return Err(WavError::Malformed("data chunk before fmt chunk")),
            };
            let _ = channels;
            // Streaming writers leave the size at 0 or 0xffffffff: take what is there.
            let body = if size == 0 || size > body_all.len() {
                body_all
            } else {
                &body_all[..size]
            };
            let samples = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Wav {
                sample_rate: rate,
                samples,
            });
        }
        let body = body_all
            .get(..size)
            .ok_or(WavError::Malformed("chunk runs past the end"))?;
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(WavError::Malformed("fmt chunk too short"));
            }
            let mut tag = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if tag == FORMAT_EXTENSIBLE {
                // The sub-format GUID starts with the real format tag.
                if body.len() < 26 {
                    return Err(WavError::Malformed("extensible fmt chunk too short"));
                }
                tag = u16::from_le_bytes([body[24], body[25]]);
            }
            fmt = Some((tag, channels, rate, bits));
        }
        // Chunks are padded to an even length.
        let skip = (8 + size + (size & 1)).min(rest.len());
        rest = &rest[skip..];
    }
    Err(WavError::Malformed("no data chunk"))
}

/// Reads a WAV file from a reader.
pub fn read<R: Read>(mut r: R) -> Result<Wav, WavError> {
    let mut data = Vec::new();
    r.read_to_end(&mut data)?;
    parse(&data)
}

/// Reads a WAV file from disk.
pub fn read_file(path: impl AsRef<Path>) -> Result<Wav, WavError> {
    parse(&std::fs::read(path)?)
}

/// Serialises 16-bit PCM mono samples as a WAV file.
pub fn to_bytes(sample_rate: u32, samples: &[i16]) -> Result<Vec<u8>, WavError> {
    let data_len = u32::try_from(samples.len() * 2)
        .ok()
        .filter(|n| *n <= u32::MAX - 36)
        .ok_or(WavError::TooLong)?;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate.wrapping_mul(2)).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    Ok(out)
}

/// Writes 16-bit PCM mono samples as a WAV file to a writer.
pub fn write<W: Write>(mut w: W, sample_rate: u32, samples: &[i16]) -> Result<(), WavError> {
    w.write_all(&to_bytes(sample_rate, samples)?)?;
    Ok(())
}

/// Writes 16-bit PCM mono samples as a WAV file on disk.
pub fn write_file(
    path: impl AsRef<Path>,
    sample_rate: u32,
    samples: &[i16],
) -> Result<(), WavError> {
    std::fs::write(path, to_bytes(sample_rate, samples)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_bytes_and_file() {
        let samples: Vec<i16> = (0..800).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let bytes = to_bytes(8000, &samples).unwrap();
        assert_eq!(bytes.len(), 44 + 1600);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            36 + 1600
        );
        let w = parse(&bytes).unwrap();
        assert_eq!(w.sample_rate, 8000);
        assert_eq!(w.samples, samples);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        write_file(&path, 8000, &samples).unwrap();
        assert_eq!(read_file(&path).unwrap(), w);
        let mut v = Vec::new();
        write(&mut v, 8000, &samples).unwrap();
        assert_eq!(read(&v[..]).unwrap(), w);
    }

    #[test]
    fn skips_unknown_chunks_with_odd_size() {
        let good = to_bytes(8000, &[1, -2, 3]).unwrap();
        let mut v = good[..36].to_vec(); // RIFF header + fmt chunk
        v.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00"); // odd size + pad byte
        v.extend_from_slice(&good[36..]);
        assert_eq!(parse(&v).unwrap().samples, vec![1, -2, 3]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(parse(b""), Err(WavError::Malformed(_))));
        assert!(matches!(
            parse(b"RIFF\0\0\0\0WAVX"),
            Err(WavError::Malformed(_))
        ));
        let mut stereo = to_bytes(8000, &[0; 4]).unwrap();
        stereo[22] = 2;
        assert!(matches!(parse(&stereo), Err(WavError::Unsupported(_))));
        let good = to_bytes(8000, &[0; 4]).unwrap();
        for len in 0..good.len() {
            let _ = parse(&good[..len]);
        }
        // Missing fmt chunk.
        let mut v = good[..12].to_vec();
        v.extend_from_slice(&good[36..]);
        assert!(matches!(parse(&v), Err(WavError::Malformed(_))));
    }
}
