//! Opus in Ogg (RFC 7845) for recordings and voicemail where it saves space over WAV: a
//! streaming writer (`OpusHead`, `OpusTags`, audio pages with granule positions, end-of-stream
//! trimming) and a reader that checks every page's CRC and hands the packets back, so a
//! recording can be played or decoded to PCM again.
//!
//! The page format (RFC 3533) is small enough that it is ours: a 27-byte header, a lacing
//! table and a CRC-32 (polynomial 0x04C11DB7, not reflected). Audio pages carry up to one
//! second (50 packets of 20 ms) each, so a crash loses at most the last second.

use crate::codec::{CodecError, Decoder, Encoder};
use crate::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use std::io::{self, Write};
use std::path::Path;

/// Why an Ogg Opus file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum OggError {
    /// Underlying I/O failure (a full disk shows up here).
    #[error("ogg I/O: {0}")]
    Io(#[from] io::Error),
    /// Not an Ogg Opus stream, or a damaged one.
    #[error("not a valid Ogg Opus file: {0}")]
    Malformed(String),
    /// The codec refused a frame or a packet.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

const CAPTURE: &[u8; 4] = b"OggS";
const FLAG_CONTINUED: u8 = 0x01;
const FLAG_BOS: u8 = 0x02;
const FLAG_EOS: u8 = 0x04;
/// Packets per audio page (1 s of 20 ms frames).
const PACKETS_PER_PAGE: usize = 50;
/// Largest packet accepted when reading (RFC 6716 limits one packet to 1275 bytes per frame,
/// 6 frames at most).
const MAX_PACKET: usize = 8 * 1275;

static CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut j = 0;
        while j < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            j += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
}

/// The Ogg page checksum.
pub fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[(((crc >> 24) as u8) ^ b) as usize]
    })
}

/// Builds one page holding whole `packets`.
fn page(
    flags: u8,
    granule: u64,
    serial: u32,
    seq: u32,
    packets: &[Vec<u8>],
) -> Result<Vec<u8>, OggError> {
    let mut lacing = Vec::new();
    for p in packets {
        let mut n = p.len();
        while n >= 255 {
            lacing.push(255u8);
            n -= 255;
        }
        lacing.push(n as u8);
    }
    if lacing.len() > 255 {
        return Err(OggError::Malformed(
            "page has more than 255 segments".into(),
        ));
    }
    let body: usize = packets.iter().map(Vec::len).sum();
    let mut v = Vec::with_capacity(27 + lacing.len() + body);
    v.extend_from_slice(CAPTURE);
    v.push(0); // version
    v.push(flags);
    v.extend_from_slice(&granule.to_le_bytes());
    v.extend_from_slice(&serial.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&[0; 4]); // CRC, filled below
    v.push(lacing.len() as u8);
    v.extend_from_slice(&lacing);
    for p in packets {
        v.extend_from_slice(p);
    }
    let crc = crc32(&v);
    v[22..26].copy_from_slice(&crc.to_le_bytes());
    Ok(v)
}

/// The identification header's fields (RFC 7845 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Channels (Denwa writes mono).
    pub channels: u8,
    /// 48 kHz samples to drop from the start of the decoded stream.
    pub pre_skip: u16,
    /// Rate of the audio before encoding (informational).
    pub input_rate: u32,
    /// Gain to apply on output, Q7.8 dB.
    pub output_gain: i16,
}

impl OpusHead {
    fn to_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(19);
        v.extend_from_slice(b"OpusHead");
        v.push(1); // version
        v.push(self.channels);
        v.extend_from_slice(&self.pre_skip.to_le_bytes());
        v.extend_from_slice(&self.input_rate.to_le_bytes());
        v.extend_from_slice(&self.output_gain.to_le_bytes());
        v.push(0); // channel mapping family 0: mono/stereo
        v
    }

    fn parse(p: &[u8]) -> Result<OpusHead, OggError> {
        if p.len() < 19 || &p[..8] != b"OpusHead" {
            return Err(OggError::Malformed("first packet is not OpusHead".into()));
        }
        if p[8] >> 4 != 0 {
            return Err(OggError::Malformed(format!("OpusHead version {}", p[8])));
        }
        let head = OpusHead {
            channels: p[9],
            pre_skip: u16::from_le_bytes([p[10], p[11]]),
            input_rate: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
            output_gain: i16::from_le_bytes([p[16], p[17]]),
        };
        if head.channels != 1 || p[18] != 0 {
            return Err(OggError::Malformed(format!(
                "{} channels, mapping family {} (only mono is read)",
                head.channels, p[18]
            )));
        }
        Ok(head)
    }
}

/// A streaming Ogg Opus writer: feed it PCM frames, [`OggOpusWriter::finish`] it at the end.
pub struct OggOpusWriter<W: Write> {
    out: W,
    enc: OpusEncoder,
    serial: u32,
    seq: u32,
    /// Packets waiting for the next page.
    pending: Vec<Vec<u8>>,
    /// 48 kHz samples a decoder gets from the packets so far (the first `pre_skip` of them
    /// are look-ahead to drop) — the granule position of the last packet.
    granule: u64,
    pre_skip: u64,
    /// PCM samples (at the input rate) handed in, to trim the end exactly.
    input_samples: u64,
    rate: u32,
    bytes_written: u64,
}

impl<W: Write> OggOpusWriter<W> {
    /// A writer taking mono PCM at `rate` (8/16/24/48 kHz) in frames of 20 ms; `serial` tells
    /// this stream apart if files are ever chained.
    pub fn new(out: W, rate: u32, serial: u32) -> Result<OggOpusWriter<W>, OggError> {
        OggOpusWriter::with_config(out, rate, serial, OpusConfig::for_recording(rate))
    }

    /// As [`OggOpusWriter::new`] (which uses [`OpusConfig::for_recording`]) with explicit
    /// encoder settings.
    pub fn with_config(
        mut out: W,
        rate: u32,
        serial: u32,
        cfg: OpusConfig,
    ) -> Result<OggOpusWriter<W>, OggError> {
        let enc = OpusEncoder::new(rate, cfg)?;
        let pre_skip = u64::from(enc.lookahead()) * 48000 / u64::from(rate);
        let head = OpusHead {
            channels: 1,
            pre_skip: pre_skip.min(u64::from(u16::MAX)) as u16,
            input_rate: rate,
            output_gain: 0,
        };
        let mut bytes_written = 0u64;
        let p0 = page(FLAG_BOS, 0, serial, 0, &[head.to_bytes()])?;
        out.write_all(&p0)?;
        bytes_written += p0.len() as u64;
        let vendor = b"denwa";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
        let p1 = page(0, 0, serial, 1, &[tags])?;
        out.write_all(&p1)?;
        bytes_written += p1.len() as u64;
        Ok(OggOpusWriter {
            out,
            enc,
            serial,
            seq: 2,
            pending: Vec::with_capacity(PACKETS_PER_PAGE),
            granule: 0,
            pre_skip,
            input_samples: 0,
            rate,
            bytes_written,
        })
    }

    /// Encodes one frame (20 ms at the writer's rate is typical; 10/40/60 ms work too).
    pub fn write_frame(&mut self, pcm: &[i16]) -> Result<(), OggError> {
        let mut packet = Vec::new();
        self.enc.encode(pcm, &mut packet)?;
        // A page holds at most 255 lacing values: close it first if this packet would not fit.
        let lacing = |p: &Vec<u8>| p.len() / 255 + 1;
        let used: usize = self.pending.iter().map(lacing).sum();
        if used + lacing(&packet) > 255 {
            self.flush_page(0, self.granule)?;
        }
        self.input_samples += pcm.len() as u64;
        self.granule += pcm.len() as u64 * 48000 / u64::from(self.rate);
        self.pending.push(packet);
        if self.pending.len() >= PACKETS_PER_PAGE {
            self.flush_page(0, self.granule)?;
        }
        Ok(())
    }

    fn flush_page(&mut self, flags: u8, granule: u64) -> Result<(), OggError> {
        let p = page(flags, granule, self.serial, self.seq, &self.pending)?;
        self.out.write_all(&p)?;
        self.bytes_written += p.len() as u64;
        self.seq += 1;
        self.pending.clear();
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Writes the last page (end of stream, granule trimmed to the audio actually given) and
    /// returns the writer.
    pub fn finish(mut self) -> Result<W, OggError> {
        let end = self.pre_skip + self.input_samples * 48000 / u64::from(self.rate);
        // The encoder holds back its look-ahead: push silence through until the decoded stream
        // covers the whole input, then let the final granule cut the padding off.
        let frame = (self.rate / 50) as usize;
        let silence = vec![0i16; frame];
        while self.granule < end {
            let mut packet = Vec::new();
            self.enc.encode(&silence, &mut packet)?;
            let lacing = |p: &Vec<u8>| p.len() / 255 + 1;
            let used: usize = self.pending.iter().map(lacing).sum();
            if used + lacing(&packet) > 255 {
                self.flush_page(0, self.granule)?;
            }
            self.granule += 960;
            self.pending.push(packet);
        }
        self.flush_page(FLAG_EOS, end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A parsed Ogg Opus stream: its header, its audio packets and the final granule position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OggOpus {
    /// Identification header.
    pub head: OpusHead,
    /// Audio packets in order.
    pub packets: Vec<Vec<u8>>,
    /// Granule position of the last page (48 kHz samples including pre-skip).
    pub final_granule: u64,
}

/// Parses an Ogg Opus file held in memory (one logical stream; CRCs checked).
pub fn parse(data: &[u8]) -> Result<OggOpus, OggError> {
    let bad = |m: &str| OggError::Malformed(m.to_string());
    let mut rest = data;
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut serial: Option<u32> = None;
    let mut final_granule = 0u64;
    let mut expected_seq = 0u32;
    while !rest.is_empty() {
        if rest.len() < 27 || &rest[..4] != CAPTURE {
            return Err(bad("missing OggS capture pattern"));
        }
        if rest[4] != 0 {
            return Err(bad("unknown Ogg version"));
        }
        let flags = rest[5];
        let granule = u64::from_le_bytes(rest[6..14].try_into().map_err(|_| bad("header"))?);
        let ser = u32::from_le_bytes(rest[14..18].try_into().map_err(|_| bad("header"))?);
        let seq = u32::from_le_bytes(rest[18..22].try_into().map_err(|_| bad("header"))?);
        let crc = u32::from_le_bytes(rest[22..26].try_into().map_err(|_| bad("header"))?);
        let nseg = usize::from(rest[26]);
        let header_len = 27 + nseg;
        if rest.len() < header_len {
            return Err(bad("page header cut short"));
        }
        let lacing = &rest[27..header_len];
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        if rest.len() < header_len + body_len {
            return Err(bad("page body cut short"));
        }
        let page_bytes = &rest[..header_len + body_len];
        let mut check = page_bytes.to_vec();
        check[22..26].fill(0);
        if crc32(&check) != crc {
            return Err(OggError::Malformed(format!("page {seq}: CRC mismatch")));
        }
        match serial {
            None if flags & FLAG_BOS == 0 => return Err(bad("first page is not a stream start")),
            None => serial = Some(ser),
            Some(s) if s != ser => return Err(bad("more than one logical stream")),
            Some(_) => {}
        }
        if seq != expected_seq {
            return Err(OggError::Malformed(format!(
                "page {seq} where {expected_seq} was expected (pages missing)"
            )));
        }
        expected_seq = expected_seq.wrapping_add(1);
        if flags & FLAG_CONTINUED == 0 && !partial.is_empty() {
            return Err(bad("packet not continued on the next page"));
        }
        let mut body = &rest[header_len..header_len + body_len];
        for &l in lacing {
            let l = usize::from(l);
            partial.extend_from_slice(&body[..l]);
            body = &body[l..];
            if partial.len() > MAX_PACKET {
                return Err(bad("packet too large"));
            }
            if l < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        if granule != u64::MAX {
            final_granule = granule;
        }
        rest = &rest[header_len + body_len..];
        if flags & FLAG_EOS != 0 {
            break;
        }
    }
    if packets.len() < 2 {
        return Err(bad("missing OpusHead/OpusTags"));
    }
    let head = OpusHead::parse(&packets[0])?;
    if packets[1].len() < 8 || &packets[1][..8] != b"OpusTags" {
        return Err(bad("second packet is not OpusTags"));
    }
    Ok(OggOpus {
        head,
        packets: packets.split_off(2),
        final_granule,
    })
}

/// Decodes an Ogg Opus file in memory to 48 kHz mono PCM, pre-skip removed and the end
/// trimmed to the final granule position.
pub fn decode(data: &[u8]) -> Result<(u32, Vec<i16>), OggError> {
    let file = parse(data)?;
    let mut dec = OpusDecoder::new(48000)?;
    let mut pcm = Vec::new();
    for p in &file.packets {
        if dec.decode(p, &mut pcm).is_err() {
            // A damaged packet inside a recording: conceal 20 ms rather than give up.
            dec.conceal(960, &mut pcm);
        }
    }
    let skip = usize::from(file.head.pre_skip).min(pcm.len());
    let end = usize::try_from(file.final_granule)
        .unwrap_or(usize::MAX)
        .clamp(skip, pcm.len());
    Ok((48000, pcm[skip..end].to_vec()))
}

/// Reads and decodes an Ogg Opus file from disk (see [`decode`]).
pub fn read_file(path: impl AsRef<Path>) -> Result<(u32, Vec<i16>), OggError> {
    decode(&std::fs::read(path)?)
}

/// Encodes a whole clip to an Ogg Opus file in memory (mono PCM at 8/16/24/48 kHz).
pub fn encode(rate: u32, pcm: &[i16]) -> Result<Vec<u8>, OggError> {
    let mut w = OggOpusWriter::new(Vec::new(), rate, 0x4465_6e77)?;
    let frame = (rate / 50) as usize;
    for chunk in pcm.chunks(frame) {
        if chunk.len() == frame {
            w.write_frame(chunk)?;
        } else {
            let mut last = chunk.to_vec();
            last.resize(frame, 0);
            w.write_frame(&last)?;
            w.input_samples -= (frame - chunk.len()) as u64;
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{energy, goertzel, sine};
    use std::time::Duration;

    #[test]
    fn crc_matches_the_ogg_reference_value() {
        // CRC-32/MPEG-2 without the final inversion and with init 0 (Ogg's variant):
        // the check value for "123456789" is 0x89A1897F.
        assert_eq!(crc32(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn write_read_back_decode_tone_and_size() {
        let rate = 8000;
        let seconds = 10;
        let pcm = sine(1000.0, Duration::from_secs(seconds), rate, 12000);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.opus");
        let file = std::fs::File::create(&path).expect("create");
        let mut w = OggOpusWriter::with_config(
            std::io::BufWriter::new(file),
            rate,
            7,
            OpusConfig {
                bitrate: 16_000,
                fec: false,
                ..OpusConfig::default()
            },
        )
        .expect("writer");
        let n_frames = pcm.len() / 160;
        for f in pcm.chunks(160) {
            w.write_frame(f).expect("frame");
        }
        w.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read");
        let parsed = parse(&bytes).expect("parse");
        assert_eq!(parsed.packets.len(), n_frames + 1, "one frame of padding");
        assert_eq!(parsed.head.channels, 1);
        assert_eq!(parsed.head.input_rate, 8000);
        assert!(parsed.head.pre_skip > 0);
        assert_eq!(
            parsed.final_granule,
            u64::from(parsed.head.pre_skip) + seconds * 48000
        );
        let (out_rate, out) = read_file(&path).expect("decode");
        assert_eq!(out_rate, 48000);
        assert_eq!(out.len(), (seconds * 48000) as usize);
        let mid = &out[48000..96000];
        let share = goertzel(mid, 1000.0, 48000) / (2.0 * energy(mid));
        assert!(share > 0.9, "tone share {share}");
        let wav_size = crate::wav::to_bytes(rate, &pcm).expect("wav").len();
        println!(
            "Ogg Opus {seconds} s of 8 kHz audio: {} bytes vs WAV {} bytes ({:.1}x smaller)",
            bytes.len(),
            wav_size,
            wav_size as f64 / bytes.len() as f64
        );
        assert!(bytes.len() * 4 < wav_size);
    }

    #[test]
    fn whole_clip_helper_trims_exactly() {
        let pcm = sine(440.0, Duration::from_millis(1234), 16000, 8000);
        let bytes = encode(16000, &pcm).expect("encode");
        let (rate, out) = decode(&bytes).expect("decode");
        assert_eq!(rate, 48000);
        assert_eq!(out.len(), pcm.len() * 3);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let pcm = sine(440.0, Duration::from_millis(300), 8000, 8000);
        let good = encode(8000, &pcm).expect("encode");
        assert!(parse(&good).is_ok());
        // Truncations.
        for len in 0..good.len() {
            let _ = decode(&good[..len]);
        }
        // A flipped byte anywhere breaks a CRC.
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            assert!(parse(&bad).is_err(), "byte {i}");
        }
        assert!(matches!(parse(b"RIFF...."), Err(OggError::Malformed(_))));
        // Random bytes.
        let mut rng = crate::testrng::Rng(99);
        for _ in 0..500 {
            let len = (rng.next() % 300) as usize;
            let _ = decode(&rng.bytes(len));
        }
    }

    #[test]
    fn long_packets_span_lacing_values() {
        // Packets of 255 and more bytes need several lacing values and a 0 terminator.
        let packets = vec![vec![1u8; 255], vec![2u8; 600], vec![3u8; 0], vec![4u8; 10]];
        let p = page(FLAG_BOS | FLAG_EOS, 5, 1, 0, &packets).expect("page");
        // Reassemble with the reader's logic via a head/tags pair in front.
        let head = OpusHead {
            channels: 1,
            pre_skip: 0,
            input_rate: 8000,
            output_gain: 0,
        };
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&[0; 8]);
        let mut all = vec![head.to_bytes(), tags];
        all.extend(packets.clone());
        let p2 = page(FLAG_BOS | FLAG_EOS, 5, 1, 0, &all).expect("page");
        let parsed = parse(&p2).expect("parse");
        assert_eq!(parsed.packets, packets);
        assert!(p.len() > 865);
    }
}
