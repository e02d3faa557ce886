//! `media`: RTP/RTCP, the media relay engine, G.711, RFC 4733 DTMF, WAV files and tones.
//!
//! The relay ([`Relay`], [`Session`]) anchors every call's media between two legs with symmetric
//! RTP latching, per-leg statistics and a media timeout. The other modules are small, I/O-free
//! helpers: packet formats ([`rtp`], [`rtcp`], [`dtmf`]), codecs ([`g711`]), audio files
//! ([`wav`]) and signals ([`tone`]). SIP and SDP are not here: the `pbx` crate reads SDP and
//! tells a [`Session`] where each phone is.

pub mod dtmf;
pub mod g711;
pub mod relay;
pub mod rtcp;
pub mod rtp;
mod stats;
pub mod tone;
pub mod wav;

pub use relay::{
    Error, Leg, LegStats, Relay, RelayConfig, RelayMetrics, ReportedQuality, Session, SessionStats,
};
