//! `media`: RTP/RTCP, the media relay engine, G.711, RFC 4733 DTMF, WAV files and tones.
//!
//! The relay ([`Relay`], [`Session`]) anchors every call's media between two legs with symmetric
//! RTP latching, per-leg statistics and a media timeout. The other modules are small, I/O-free
//! helpers: packet formats ([`rtp`], [`rtcp`], [`dtmf`]), codecs behind one interface
//! ([`codec`]: [`g711`], [`g722`], [`opus`]), audio files ([`wav`], [`audio`], [`oggopus`])
//! and signal processing ([`tone`], [`resample`], [`inband`] DTMF, [`progress`] tones,
//! [`mix`]). SIP and SDP are not here: the `pbx` crate reads SDP and
//! tells a [`Session`] where each phone is.

#![warn(missing_docs)]

pub mod audio;
pub mod codec;
pub mod dtmf;
pub mod endpoint;
pub mod g711;
pub mod g722;
pub mod inband;
pub mod mix;
pub mod oggopus;
pub mod opus;
pub mod plc;
pub mod ports;
pub mod progress;
pub mod recorder;
pub mod relay;
pub mod relay_beep;
mod relay_poll;
pub mod resample;
pub mod rtcp;
pub mod rtp;
mod stats;
pub mod tap_inband;
#[cfg(test)]
mod testrng;
pub mod tone;
pub mod wav;

pub use relay::{
    Error, Leg, LegStats, ManualClock, Relay, RelayConfig, RelayMetrics, ReportedQuality, Session,
    SessionStats,
};

#[cfg(test)]
mod tests {
    /// The handles are shared across tasks by the call layer.
    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Relay>();
        check::<crate::Session>();
        check::<crate::Error>();
        check::<crate::endpoint::MediaEngine>();
        check::<crate::endpoint::Endpoint>();
    }

    /// Deterministic fuzzing of every parser that reads the network or a file: random and
    /// mutated inputs must produce values or errors, never panics.
    #[test]
    fn parsers_never_panic_on_random_input() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: Vec<Vec<u8>> = vec![
            crate::rtp::RtpHeader::new(0, 1, 2, 3)
                .build(&[0; 20])
                .unwrap(),
            crate::rtcp::build_receiver_report(1, &[Default::default(); 2]),
            crate::wav::to_bytes(8000, &[1, 2, 3, 4]).unwrap(),
            crate::oggopus::encode(8000, &[0; 160]).unwrap(),
        ];
        for round in 0..60_000 {
            let mut buf = if round % 2 == 0 {
                let len = (next() % 96) as usize;
                (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut v = seeds[round % seeds.len()].clone();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % v.len();
                    v[i] = next() as u8;
                }
                v.truncate((next() as usize) % (v.len() + 1));
                v
            };
            if round % 3 == 0 && !buf.is_empty() {
                buf[0] = 0x80 | (buf[0] & 0x3f); // version 2 reaches deeper code paths
            }
            let _ = crate::rtp::RtpPacket::parse(&buf);
            let _ = crate::rtcp::validate(&buf);
            let _ = crate::rtcp::first_report_block(&buf);
            let _ = crate::rtcp::parse_compound(&buf).count();
            let _ = crate::dtmf::TelephoneEvent::parse(&buf);
            let _ = crate::wav::parse(&buf);
            let _ = crate::audio::decode(&buf);
            let _ = crate::oggopus::parse(&buf);
            let mut pcm = Vec::new();
            crate::g722::G722Decoder::new().decode(&buf, &mut pcm);
        }
    }
}
