//! The codec interface terminating legs use: every codec turns one frame of 16-bit mono PCM at
//! its own sample rate into an RTP payload and back, and conceals a lost frame.
//!
//! G.711 ([`crate::g711`]) and G.722 ([`crate::g722`]) are ours; Opus is libopus
//! ([`crate::opus`]). All plug in behind the same two traits, so the media engine never matches
//! on a codec outside [`encoder`] and [`decoder`] (and [`encoder_at`]/[`decoder_at`]).

use std::fmt;

/// An audio codec Denwa can terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodecKind {
    /// G.711 µ-law (PCMU), 8 kHz.
    Pcmu,
    /// G.711 A-law (PCMA), 8 kHz.
    Pcma,
    /// G.722, 16 kHz audio on an 8 kHz RTP clock (RFC 3551 §4.5.2).
    G722,
    /// Opus, 48 kHz RTP clock (RFC 7587); decoded and encoded here at 48 kHz mono.
    Opus,
}

impl CodecKind {
    /// Every codec, in Denwa's default preference order for a terminating leg.
    pub const ALL: [CodecKind; 4] = [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus,
    ];

    /// The codec an SDP `a=rtpmap` names (`encoding` case-insensitive, `clock` its clock rate).
    pub fn from_rtpmap(encoding: &str, clock: u32) -> Option<CodecKind> {
        let e = encoding.to_ascii_lowercase();
        match (e.as_str(), clock) {
            ("pcmu", 8000) => Some(CodecKind::Pcmu),
            ("pcma", 8000) => Some(CodecKind::Pcma),
            ("g722", 8000) => Some(CodecKind::G722),
            ("opus", 48000) => Some(CodecKind::Opus),
            _ => None,
        }
    }

    /// The codec of a static RTP payload type (RFC 3551), if it is one of ours.
    pub fn from_static_payload_type(pt: u8) -> Option<CodecKind> {
        match pt {
            0 => Some(CodecKind::Pcmu),
            8 => Some(CodecKind::Pcma),
            9 => Some(CodecKind::G722),
            _ => None,
        }
    }

    /// The encoding name SDP uses.
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
        }
    }

    /// The static payload type, or `None` for a dynamic one (Opus).
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
        }
    }

    /// The RTP clock rate (what timestamps count), which for G.722 is not its sample rate.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8000,
            CodecKind::Opus => 48000,
        }
    }

    /// The sample rate of the PCM the codec encodes and decodes.
    pub fn sample_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            CodecKind::Opus => 48000,
        }
    }

    /// Whether the codec carries audio above 4 kHz (mixed wideband in conferences).
    pub fn is_wideband(self) -> bool {
        self.sample_rate() > 8000
    }

    /// PCM samples in one frame of `ptime_ms` milliseconds.
    pub fn samples_per_frame(self, ptime_ms: u32) -> usize {
        (self.sample_rate() / 1000 * ptime_ms) as usize
    }

    /// RTP timestamp units one frame of `ptime_ms` milliseconds advances.
    pub fn timestamp_step(self, ptime_ms: u32) -> u32 {
        self.rtp_clock_rate() / 1000 * ptime_ms
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// Why a codec could not be set up or a payload not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// This build has no implementation of the codec.
    #[error("codec {0} is not available in this build")]
    Unavailable(CodecKind),
    /// The payload is not valid for the codec.
    #[error("{codec} payload invalid: {reason}")]
    BadPayload {
        /// Codec.
        codec: CodecKind,
        /// What was wrong.
        reason: String,
    },
    /// The PCM frame handed to an encoder has a length the codec cannot take.
    #[error("{codec} cannot encode a frame of {samples} samples")]
    BadFrame {
        /// Codec.
        codec: CodecKind,
        /// Samples given.
        samples: usize,
    },
}

/// Turns PCM frames into RTP payloads.
pub trait Encoder: Send {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;
    /// Encodes one frame (`pcm` at [`CodecKind::sample_rate`], 10–60 ms), appending the payload
    /// to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// The rate of the PCM [`Encoder::encode`] takes: [`CodecKind::sample_rate`] unless the
    /// encoder was built for another (an Opus encoder fed 8 kHz PCM directly).
    fn pcm_rate(&self) -> u32 {
        self.kind().sample_rate()
    }
}

/// Turns RTP payloads into PCM and fills gaps.
pub trait Decoder: Send {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;
    /// Decodes one payload, appending PCM at [`CodecKind::sample_rate`] to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Appends `samples` samples standing in for a lost frame (packet-loss concealment).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// Like [`Decoder::conceal`], when the packet after the lost one has already arrived:
    /// codecs with in-band forward error correction (Opus) rebuild the lost frame from it.
    /// The next packet must still be decoded normally afterwards.
    fn conceal_with_next(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) {
        let _ = next_payload;
        self.conceal(samples, out);
    }
    /// The rate of the PCM this decoder produces: [`CodecKind::sample_rate`] unless it was
    /// built for another.
    fn pcm_rate(&self) -> u32 {
        self.kind().sample_rate()
    }
}

/// An encoder for `kind`, taking PCM at [`CodecKind::sample_rate`] (Opus: 48 kHz mono, VoIP,
/// in-band FEC; see [`crate::opus`]).
pub fn encoder(kind: CodecKind) -> Result<Box<dyn Encoder>, CodecError> {
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma => Ok(Box::new(G711 {
            kind,
            plc: crate::plc::Plc::new(8000),
        })),
        CodecKind::G722 => Ok(Box::new(G722::new())),
        CodecKind::Opus => Ok(Box::new(crate::opus::OpusEncoder::new(
            48000,
            crate::opus::OpusConfig::default(),
        )?)),
    }
}

/// A decoder for `kind`, producing PCM at [`CodecKind::sample_rate`].
pub fn decoder(kind: CodecKind) -> Result<Box<dyn Decoder>, CodecError> {
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma => Ok(Box::new(G711 {
            kind,
            plc: crate::plc::Plc::new(8000),
        })),
        CodecKind::G722 => Ok(Box::new(G722::new())),
        CodecKind::Opus => Ok(Box::new(crate::opus::OpusDecoder::new(48000)?)),
    }
}

/// An encoder for `kind` taking PCM at `pcm_rate` where the codec can (Opus: 8/12/16/24/48 kHz,
/// which spares a resampler on a G.711↔Opus call); other codecs only at their own rate.
pub fn encoder_at(kind: CodecKind, pcm_rate: u32) -> Result<Box<dyn Encoder>, CodecError> {
    match kind {
        CodecKind::Opus => Ok(Box::new(crate::opus::OpusEncoder::new(
            pcm_rate,
            crate::opus::OpusConfig::for_pcm_rate(pcm_rate),
        )?)),
        k if k.sample_rate() == pcm_rate => encoder(k),
        k => Err(CodecError::Unavailable(k)),
    }
}

/// A decoder for `kind` producing PCM at `pcm_rate` where the codec can (see [`encoder_at`]).
pub fn decoder_at(kind: CodecKind, pcm_rate: u32) -> Result<Box<dyn Decoder>, CodecError> {
    match kind {
        CodecKind::Opus => Ok(Box::new(crate::opus::OpusDecoder::new(pcm_rate)?)),
        k if k.sample_rate() == pcm_rate => decoder(k),
        k => Err(CodecError::Unavailable(k)),
    }
}

/// G.722 both ways ([`crate::g722`]); pitch-based concealment ([`crate::plc`]) as for G.711.
struct G722 {
    enc: crate::g722::G722Encoder,
    dec: crate::g722::G722Decoder,
    plc: crate::plc::Plc,
}

impl G722 {
    fn new() -> G722 {
        G722 {
            enc: crate::g722::G722Encoder::new(),
            dec: crate::g722::G722Decoder::new(),
            plc: crate::plc::Plc::new(16000),
        }
    }
}

impl Encoder for G722 {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::BadFrame {
                codec: CodecKind::G722,
                samples: pcm.len(),
            });
        }
        self.enc.encode(pcm, out);
        Ok(())
    }
}

impl Decoder for G722 {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        self.dec.decode(payload, out);
        self.plc.good(&mut out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.plc.conceal(samples, out);
    }
}

/// G.711 both ways; concealment continues the last pitch period and fades out over 60 ms
/// (G.711 Appendix I, [`crate::plc`]).
struct G711 {
    kind: CodecKind,
    plc: crate::plc::Plc,
}

impl Encoder for G711 {
    fn kind(&self) -> CodecKind {
        self.kind
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // Straight into `out`: no allocation per frame on a prompt leg.
        match self.kind {
            CodecKind::Pcma => out.extend(pcm.iter().map(|&s| crate::g711::alaw_encode(s))),
            _ => out.extend(pcm.iter().map(|&s| crate::g711::ulaw_encode(s))),
        }
        Ok(())
    }
}

impl Decoder for G711 {
    fn kind(&self) -> CodecKind {
        self.kind
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        match self.kind {
            CodecKind::Pcma => out.extend(payload.iter().map(|&b| crate::g711::alaw_decode(b))),
            _ => out.extend(payload.iter().map(|&b| crate::g711::ulaw_decode(b))),
        }
        // After a loss the frame's start is cross-faded from the concealment.
        self.plc.good(&mut out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.plc.conceal(samples, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rates() {
        assert_eq!(CodecKind::from_rtpmap("pcmu", 8000), Some(CodecKind::Pcmu));
        assert_eq!(CodecKind::from_rtpmap("OPUS", 48000), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_rtpmap("opus", 8000), None);
        assert_eq!(CodecKind::G722.rtp_clock_rate(), 8000);
        assert_eq!(CodecKind::G722.samples_per_frame(20), 320);
        assert_eq!(CodecKind::G722.timestamp_step(20), 160);
        assert_eq!(CodecKind::Opus.timestamp_step(20), 960);
        assert_eq!(
            CodecKind::from_static_payload_type(9),
            Some(CodecKind::G722)
        );
    }

    /// Share of a 20 ms-framed round trip's energy at `f` (after the first 100 ms).
    fn round_trip_share(enc: &mut dyn Encoder, dec: &mut dyn Decoder, f: f64) -> f64 {
        let rate = enc.pcm_rate();
        assert_eq!(dec.pcm_rate(), rate);
        let input = crate::tone::sine(f, std::time::Duration::from_millis(600), rate, 10000);
        let mut out = Vec::new();
        for frame in input.chunks((rate / 50) as usize) {
            let mut p = Vec::new();
            enc.encode(frame, &mut p).expect("encode");
            dec.decode(&p, &mut out).expect("decode");
        }
        assert_eq!(out.len(), input.len());
        let tail = &out[(rate / 10) as usize..];
        crate::tone::goertzel(tail, f, rate) / (2.0 * crate::tone::energy(tail))
    }

    #[test]
    fn every_codec_round_trips_a_tone_through_the_factories() {
        for kind in CodecKind::ALL {
            let mut enc = encoder(kind).expect("encoder");
            let mut dec = decoder(kind).expect("decoder");
            assert_eq!(enc.pcm_rate(), kind.sample_rate());
            let share = round_trip_share(enc.as_mut(), dec.as_mut(), 1000.0);
            assert!(share > 0.95, "{kind}: {share}");
            // Concealment yields exactly the samples asked for.
            let mut hidden = Vec::new();
            dec.conceal(kind.samples_per_frame(20), &mut hidden);
            dec.conceal_with_next(&[], kind.samples_per_frame(20), &mut hidden);
            assert_eq!(hidden.len(), 2 * kind.samples_per_frame(20), "{kind}");
        }
        // Opus straight from and to 8 kHz PCM (the transcoding path), and 16 kHz.
        for rate in [8000, 16000] {
            let mut enc = encoder_at(CodecKind::Opus, rate).expect("opus");
            let mut dec = decoder_at(CodecKind::Opus, rate).expect("opus");
            let share = round_trip_share(enc.as_mut(), dec.as_mut(), 1000.0);
            assert!(share > 0.95, "opus at {rate}: {share}");
        }
        assert!(encoder_at(CodecKind::Pcmu, 16000).is_err());
        assert!(decoder_at(CodecKind::G722, 16000).is_ok());
        // G.722 refuses an odd number of samples (half a code word).
        let mut g722 = encoder(CodecKind::G722).expect("g722");
        assert!(matches!(
            g722.encode(&[0; 319], &mut Vec::new()),
            Err(CodecError::BadFrame { samples: 319, .. })
        ));
    }

    #[test]
    fn g722_recovers_after_a_lost_packet() {
        // The ADPCM state of a decoder that missed a packet differs from the encoder's; it must
        // re-converge quickly once packets flow again.
        let input = crate::tone::sine(440.0, std::time::Duration::from_millis(400), 16000, 8000);
        let mut enc = encoder(CodecKind::G722).expect("g722");
        let packets: Vec<Vec<u8>> = input
            .chunks(320)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).expect("encode");
                p
            })
            .collect();
        let run = |lose: Option<usize>| {
            let mut dec = decoder(CodecKind::G722).expect("g722");
            let mut out = Vec::new();
            for (i, p) in packets.iter().enumerate() {
                if Some(i) == lose {
                    dec.conceal(320, &mut out);
                } else {
                    dec.decode(p, &mut out).expect("decode");
                }
            }
            out
        };
        let clean = run(None);
        let lossy = run(Some(8));
        // From 10 ms after the packets return (sample 2880 + 160), within 1 % of the clean run.
        let (mut sig, mut err) = (0f64, 0f64);
        for (a, b) in clean[3040..4800].iter().zip(&lossy[3040..4800]) {
            sig += f64::from(*a).powi(2);
            err += (f64::from(*a) - f64::from(*b)).powi(2);
        }
        let snr = 10.0 * (sig / err.max(1e-9)).log10();
        println!("G.722 after a lost packet: {snr:.1} dB against the loss-free decode");
        assert!(snr > 20.0, "{snr}");
    }

    #[test]
    fn g711_round_trip_and_concealment() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
            let pcm: Vec<i16> = (0..160).map(|i| ((i * 200) % 8000) as i16 - 4000).collect();
            let mut enc = encoder(kind).expect("g711");
            let mut dec = decoder(kind).expect("g711");
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).expect("encode");
            assert_eq!(payload.len(), 160);
            let mut out = Vec::new();
            dec.decode(&payload, &mut out).expect("decode");
            assert_eq!(out.len(), 160);
            for (a, b) in pcm.iter().zip(&out) {
                assert!(
                    (i32::from(*a) - i32::from(*b)).abs() < 300,
                    "{kind}: {a} vs {b}"
                );
            }
            let mut hidden = Vec::new();
            for _ in 0..5 {
                dec.conceal(160, &mut hidden);
            }
            assert_eq!(hidden.len(), 800);
            // The test signal is periodic (40 samples): the first 10 ms of the loss continue it
            // at full level, then it fades, silent from 60 ms on.
            assert_eq!(&hidden[..80], &out[..80], "loss continues the waveform");
            assert!(hidden[80..160].iter().any(|&s| s != 0));
            assert!(hidden[480..].iter().all(|&s| s == 0), "fades to silence");
        }
    }
}
