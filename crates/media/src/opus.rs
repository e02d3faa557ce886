//! Opus (RFC 6716, RTP payload RFC 7587) behind [`crate::codec::Encoder`]/[`crate::codec::Decoder`].
//!
//! Which implementation and why: a binding to **libopus**, the reference implementation
//! (BSD-3-Clause), through the `audiopus_sys` FFI crate (ISC) and Debian's `libopus-dev`
//! (linked dynamically; `libopus0` at run time). libopus is what every phone and browser runs,
//! it is fast (hand-tuned SIMD), and its in-band FEC and packet-loss concealment are the ones
//! peers expect. No pure-Rust Opus encoder was mature enough for a PBX: the pure-Rust crates
//! are decoders only or unfinished ports. The safe wrapper is this file; the only `unsafe` is
//! the FFI calls, each with the buffer sizes libopus documents.
//!
//! Defaults for a terminating leg: mono, `OPUS_APPLICATION_VOIP`, voice signal, 20 ms frames,
//! 24 kbit/s VBR, in-band FEC on with 10 % expected loss, complexity 5 (libopus' cost grows
//! steeply above that for little gain in voice quality; see `benches/dsp_cost.rs`). The PCM
//! rate is 48 kHz for [`crate::codec::encoder`], but libopus also takes 8/12/16/24 kHz PCM
//! directly ([`crate::codec::encoder_at`], [`OpusConfig::for_pcm_rate`]), which on a
//! G.711↔Opus call saves the resampler and most of the encoder's work (a G.711 source has
//! nothing above 4 kHz to code); the RTP clock stays 48 kHz either way.

use crate::codec::{CodecError, CodecKind, Decoder, Encoder};
use audiopus_sys as ffi;
use std::os::raw::c_int;

/// Largest packet libopus produces for one frame (RFC 6716 §3.4: 1275 bytes per frame).
const MAX_PACKET: usize = 1500;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bit rate in bit/s (6,000–510,000).
    pub bitrate: i32,
    /// 0 (cheapest) to 10 (best).
    pub complexity: i32,
    /// Carry in-band forward error correction (LBRR) for the previous frame.
    pub fec: bool,
    /// Loss the encoder plans FEC for, percent.
    pub expected_loss_pct: i32,
    /// Discontinuous transmission in silence.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig {
            bitrate: 24_000,
            complexity: 5,
            fec: true,
            expected_loss_pct: 10,
            dtx: false,
        }
    }
}

impl OpusConfig {
    /// Settings suited to PCM at `rate`. Narrowband sources (8/12 kHz: a G.711 leg being
    /// transcoded) get complexity 0 at 16 kbit/s — SILK narrowband, about a fifth of the
    /// cost of the 48 kHz default, which is what lets one core carry several hundred
    /// Opus↔G.711 calls (see benches/dsp_cost.rs); 16/24 kHz complexity 3 at 20 kbit/s;
    /// 48 kHz the [`Default`].
    pub fn for_pcm_rate(rate: u32) -> OpusConfig {
        match rate {
            0..=12000 => OpusConfig {
                bitrate: 16_000,
                complexity: 0,
                ..OpusConfig::default()
            },
            12001..=24000 => OpusConfig {
                bitrate: 20_000,
                complexity: 3,
                ..OpusConfig::default()
            },
            _ => OpusConfig::default(),
        }
    }

    /// Settings for a recording file: no FEC (nothing is lost on disk), the rate's defaults
    /// otherwise.
    pub fn for_recording(rate: u32) -> OpusConfig {
        OpusConfig {
            fec: false,
            expected_loss_pct: 0,
            ..OpusConfig::for_pcm_rate(rate)
        }
    }
}

fn valid_rate(rate: u32) -> bool {
    matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000)
}

fn opus_err(code: c_int) -> String {
    match code {
        ffi::OPUS_BAD_ARG => "bad argument".into(),
        ffi::OPUS_BUFFER_TOO_SMALL => "buffer too small".into(),
        ffi::OPUS_INVALID_PACKET => "invalid packet".into(),
        other => format!("libopus error {other}"),
    }
}

/// A libopus encoder (mono, VoIP).
pub struct OpusEncoder {
    st: *mut ffi::OpusEncoder,
    rate: u32,
}

// SAFETY: the encoder state is a plain heap block owned by this value alone; libopus keeps no
// thread-local or shared state for it, so moving it to another thread is sound.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    /// An encoder taking PCM at `rate` (8/12/16/24/48 kHz).
    pub fn new(rate: u32, cfg: OpusConfig) -> Result<OpusEncoder, CodecError> {
        if !valid_rate(rate) {
            return Err(CodecError::Unavailable(CodecKind::Opus));
        }
        let mut err: c_int = 0;
        // SAFETY: valid rate, 1 channel, a valid application constant, err points to a local.
        let st = unsafe {
            ffi::opus_encoder_create(rate as i32, 1, ffi::OPUS_APPLICATION_VOIP, &mut err)
        };
        if st.is_null() || err != ffi::OPUS_OK {
            if !st.is_null() {
                // SAFETY: st came from opus_encoder_create and is not used afterwards.
                unsafe { ffi::opus_encoder_destroy(st) };
            }
            return Err(CodecError::Unavailable(CodecKind::Opus));
        }
        let enc = OpusEncoder { st, rate };
        enc.ctl(
            ffi::OPUS_SET_BITRATE_REQUEST,
            cfg.bitrate.clamp(6000, 510_000),
        )?;
        enc.ctl(
            ffi::OPUS_SET_COMPLEXITY_REQUEST,
            cfg.complexity.clamp(0, 10),
        )?;
        enc.ctl(ffi::OPUS_SET_INBAND_FEC_REQUEST, i32::from(cfg.fec))?;
        enc.ctl(
            ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST,
            cfg.expected_loss_pct.clamp(0, 100),
        )?;
        enc.ctl(ffi::OPUS_SET_DTX_REQUEST, i32::from(cfg.dtx))?;
        enc.ctl(ffi::OPUS_SET_SIGNAL_REQUEST, ffi::OPUS_SIGNAL_VOICE)?;
        Ok(enc)
    }

    fn ctl(&self, request: c_int, value: i32) -> Result<(), CodecError> {
        // SAFETY: st is a live encoder; every request used here takes one opus_int32 argument.
        let r = unsafe { ffi::opus_encoder_ctl(self.st, request, value) };
        if r == ffi::OPUS_OK {
            Ok(())
        } else {
            Err(CodecError::BadPayload {
                codec: CodecKind::Opus,
                reason: format!("encoder setting {request}: {}", opus_err(r)),
            })
        }
    }

    /// The PCM rate this encoder takes.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The encoder's look-ahead in samples at its own rate (what a decoder must skip at the
    /// start: Ogg Opus' pre-skip).
    pub fn lookahead(&self) -> u32 {
        let mut v: i32 = 0;
        // SAFETY: st is a live encoder; GET_LOOKAHEAD writes one opus_int32 through the pointer.
        let r = unsafe { ffi::opus_encoder_ctl(self.st, ffi::OPUS_GET_LOOKAHEAD_REQUEST, &mut v) };
        if r == ffi::OPUS_OK {
            v.max(0) as u32
        } else {
            0
        }
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_encoder_create and is destroyed exactly once.
        unsafe { ffi::opus_encoder_destroy(self.st) };
    }
}

impl Encoder for OpusEncoder {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn pcm_rate(&self) -> u32 {
        self.rate
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // Opus frames are 2.5, 5, 10, 20, 40 or 60 ms.
        let per_2_5ms = self.rate as usize / 400;
        let units = pcm.len() / per_2_5ms.max(1);
        let ok = pcm.len().is_multiple_of(per_2_5ms) && matches!(units, 1 | 2 | 4 | 8 | 16 | 24);
        if !ok {
            return Err(CodecError::BadFrame {
                codec: CodecKind::Opus,
                samples: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + MAX_PACKET, 0);
        // SAFETY: pcm holds exactly frame_size mono samples; the output region has MAX_PACKET
        // writable bytes from `start`.
        let n = unsafe {
            ffi::opus_encode(
                self.st,
                pcm.as_ptr(),
                pcm.len() as c_int,
                out.as_mut_ptr().add(start),
                MAX_PACKET as i32,
            )
        };
        if n < 0 {
            out.truncate(start);
            return Err(CodecError::BadPayload {
                codec: CodecKind::Opus,
                reason: format!("encode: {}", opus_err(n)),
            });
        }
        out.truncate(start + n as usize);
        Ok(())
    }
}

/// A libopus decoder (mono) with concealment and in-band FEC recovery.
pub struct OpusDecoder {
    st: *mut ffi::OpusDecoder,
    rate: u32,
    /// Scratch for one decode call (120 ms, the longest Opus packet).
    scratch: Vec<i16>,
}

// SAFETY: as for the encoder: a heap block owned by this value alone.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// A decoder producing PCM at `rate` (8/12/16/24/48 kHz).
    pub fn new(rate: u32) -> Result<OpusDecoder, CodecError> {
        if !valid_rate(rate) {
            return Err(CodecError::Unavailable(CodecKind::Opus));
        }
        let mut err: c_int = 0;
        // SAFETY: valid rate, 1 channel, err points to a local.
        let st = unsafe { ffi::opus_decoder_create(rate as i32, 1, &mut err) };
        if st.is_null() || err != ffi::OPUS_OK {
            if !st.is_null() {
                // SAFETY: st came from opus_decoder_create and is not used afterwards.
                unsafe { ffi::opus_decoder_destroy(st) };
            }
            return Err(CodecError::Unavailable(CodecKind::Opus));
        }
        Ok(OpusDecoder {
            st,
            rate,
            scratch: vec![0; rate as usize * 120 / 1000],
        })
    }

    /// Runs opus_decode into the scratch buffer; `data` None means "lost".
    fn run(&mut self, data: Option<&[u8]>, frame: usize, fec: bool) -> Result<usize, String> {
        let frame = frame.min(self.scratch.len());
        let (ptr, len) = match data {
            Some(d) => (d.as_ptr(), d.len() as i32),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: ptr/len describe a live slice (or NULL/0 for loss); scratch has at least
        // `frame` writable samples.
        let n = unsafe {
            ffi::opus_decode(
                self.st,
                ptr,
                len,
                self.scratch.as_mut_ptr(),
                frame as c_int,
                c_int::from(fec),
            )
        };
        if n < 0 {
            Err(opus_err(n))
        } else {
            Ok(n as usize)
        }
    }

    /// The PCM rate this decoder produces.
    pub fn rate(&self) -> u32 {
        self.rate
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_decoder_create and is destroyed exactly once.
        unsafe { ffi::opus_decoder_destroy(self.st) };
    }
}

impl Decoder for OpusDecoder {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn pcm_rate(&self) -> u32 {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if payload.is_empty() || payload.len() > MAX_PACKET * 4 {
            return Err(CodecError::BadPayload {
                codec: CodecKind::Opus,
                reason: format!("{} bytes", payload.len()),
            });
        }
        let max = self.scratch.len();
        match self.run(Some(payload), max, false) {
            Ok(n) => {
                out.extend_from_slice(&self.scratch[..n]);
                Ok(())
            }
            Err(reason) => Err(CodecError::BadPayload {
                codec: CodecKind::Opus,
                reason,
            }),
        }
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.conceal_with_next(&[], samples, out);
    }

    fn conceal_with_next(&mut self, next: &[u8], samples: usize, out: &mut Vec<i16>) {
        // Opus conceals in multiples of 2.5 ms; ask for the rounded-up amount in pieces of at
        // most 120 ms and keep exactly `samples`.
        let unit = (self.rate / 400) as usize;
        let mut left = samples;
        while left > 0 {
            let want = left.min(self.scratch.len()).div_ceil(unit) * unit;
            // The FEC copy of the lost frame rides in the next packet; it can stand in for the
            // last `want` samples of the gap only, so use it for the final piece.
            let use_fec = !next.is_empty() && left <= self.scratch.len();
            let r = if use_fec {
                self.run(Some(next), want, true)
            } else {
                self.run(None, want, false)
            };
            let n = match r {
                Ok(n) => n.min(left),
                Err(_) if use_fec => self.run(None, want, false).map_or(0, |n| n.min(left)),
                Err(_) => 0,
            };
            if n == 0 {
                out.extend(std::iter::repeat_n(0, left));
                return;
            }
            out.extend_from_slice(&self.scratch[..n]);
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{energy, goertzel, sine};
    use std::time::Duration;

    fn round_trip(rate: u32, f: f64) -> Vec<i16> {
        let input = sine(f, Duration::from_millis(1000), rate, 12000);
        let mut enc = OpusEncoder::new(rate, OpusConfig::default()).expect("encoder");
        let mut dec = OpusDecoder::new(rate).expect("decoder");
        let mut out = Vec::new();
        let per = (rate / 50) as usize;
        for frame in input.chunks(per) {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).expect("encode");
            assert!(
                !payload.is_empty() && payload.len() < 200,
                "{}",
                payload.len()
            );
            dec.decode(&payload, &mut out).expect("decode");
        }
        assert_eq!(out.len(), input.len());
        out
    }

    #[test]
    fn tone_round_trip_48k_and_8k() {
        for (rate, f) in [
            (48000, 1000.0),
            (48000, 440.0),
            (8000, 1000.0),
            (16000, 2000.0),
        ] {
            let out = round_trip(rate, f);
            let tail = &out[(rate / 5) as usize..];
            let share = goertzel(tail, f, rate) / (2.0 * energy(tail));
            let level = (energy(tail) * 2.0).sqrt() * 32768.0;
            println!("opus {rate} Hz {f} Hz tone: share {share:.3}, level {level:.0} (sent 12000)");
            assert!(share > 0.95, "{rate} {f}: share {share}");
            assert!(
                (level / 12000.0 - 1.0).abs() < 0.2,
                "{rate} {f}: level {level}"
            );
        }
    }

    #[test]
    fn bad_frames_and_payloads_are_errors() {
        let mut enc = OpusEncoder::new(48000, OpusConfig::default()).expect("encoder");
        let mut out = Vec::new();
        assert!(matches!(
            enc.encode(&[0; 500], &mut out),
            Err(CodecError::BadFrame { samples: 500, .. })
        ));
        assert!(out.is_empty());
        assert!(OpusEncoder::new(44100, OpusConfig::default()).is_err());
        assert!(OpusDecoder::new(11025).is_err());
        let mut dec = OpusDecoder::new(48000).expect("decoder");
        let mut pcm = Vec::new();
        assert!(dec.decode(&[], &mut pcm).is_err());
        // Random payloads: errors or audio, never a panic or an overrun.
        let mut rng = crate::testrng::Rng(0x1234_5678_9abc_def1);
        for round in 0..3000 {
            let p = rng.bytes(1 + round % 300);
            pcm.clear();
            if dec.decode(&p, &mut pcm).is_ok() {
                assert!(pcm.len() <= 5760);
            }
        }
    }

    #[test]
    fn concealment_and_fec_fill_gaps() {
        let rate = 48000;
        let input = sine(600.0, Duration::from_millis(600), rate, 12000);
        let mut enc = OpusEncoder::new(
            rate,
            OpusConfig {
                expected_loss_pct: 30,
                ..OpusConfig::default()
            },
        )
        .expect("encoder");
        let packets: Vec<Vec<u8>> = input
            .chunks(960)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).expect("encode");
                p
            })
            .collect();
        // Lose packet 15: PLC alone, then FEC from packet 16.
        for use_fec in [false, true] {
            let mut dec = OpusDecoder::new(rate).expect("decoder");
            let mut out = Vec::new();
            for (i, p) in packets.iter().enumerate() {
                if i == 15 {
                    if use_fec {
                        dec.conceal_with_next(&packets[16], 960, &mut out);
                    } else {
                        dec.conceal(960, &mut out);
                    }
                } else {
                    dec.decode(p, &mut out).expect("decode");
                }
            }
            assert_eq!(out.len(), input.len());
            let gap = &out[15 * 960..16 * 960];
            let share = goertzel(gap, 600.0, rate) / (2.0 * energy(gap));
            let level = (energy(gap) * 2.0).sqrt() * 32768.0;
            println!("opus loss of one frame, fec={use_fec}: share {share:.3}, level {level:.0}");
            assert!(share > 0.8, "fec={use_fec}: {share}");
            assert!(level > 4000.0, "fec={use_fec}: gap level {level}");
        }
        // Concealing an odd number of samples gives exactly that many.
        let mut dec = OpusDecoder::new(8000).expect("decoder");
        let mut out = Vec::new();
        dec.conceal(161, &mut out);
        dec.conceal(2000, &mut out);
        assert_eq!(out.len(), 2161);
    }
}
