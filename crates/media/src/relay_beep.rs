//! The recording beep on relayed calls. A relayed call has no media leg of Denwa's to play a
//! tone on, so the relay puts the beep into the streams it forwards: for 400 ms the payload of
//! each packet towards a phone is replaced by the beep, encoded in that packet's codec, while
//! its header (SSRC, sequence number, timestamp, marker) is left as it was. No packet is added
//! or removed, so sequence numbers and timestamps stay continuous and the phone's jitter buffer
//! sees nothing unusual; what the far party said during those 400 ms is what the beep covers
//! (that is the point of a notice tone). G.711 (µ/A-law) and G.722 carry 8,000 bytes per
//! second whatever their packet time, so the beep is encoded once, as one byte stream per
//! payload type, and each packet takes the next `payload length` bytes of it: the relay thread
//! only copies. Opus streams (and a far party sending no packets at all) get no beep.

use std::sync::Arc;

use crate::codec::CodecKind;
use crate::rtp::RtpPacket;

/// The beep: 1 kHz, 400 ms (as the endpoints play it before a recording).
pub const BEEP_MS: u32 = 400;
const BEEP_HZ: f64 = 1000.0;
const BEEP_AMPLITUDE: f64 = 8000.0;
/// Bytes per second of G.711 and G.722 payloads.
const BYTES_PER_S: usize = 8000;

/// The beep encoded for each payload type of a call that can carry it.
#[derive(Debug)]
pub struct BeepSpec {
    /// (payload type, encoded beep bytes).
    streams: Vec<(u8, Vec<u8>)>,
}

impl BeepSpec {
    /// The beep for a call's negotiated `codecs` (payload type → codec).
    pub fn new(codecs: &[(u8, CodecKind)]) -> Arc<BeepSpec> {
        let mut streams = Vec::new();
        for &(pt, kind) in codecs {
            if streams.iter().any(|(p, _)| *p == pt) {
                continue;
            }
            let bytes = match kind {
                CodecKind::Pcmu => crate::g711::encode_ulaw(&tone(8000)),
                CodecKind::Pcma => crate::g711::encode_alaw(&tone(8000)),
                CodecKind::G722 => {
                    let mut out = Vec::new();
                    crate::g722::G722Encoder::new().encode(&tone(16000), &mut out);
                    out
                }
                CodecKind::Opus => continue,
            };
            streams.push((pt, bytes));
        }
        Arc::new(BeepSpec { streams })
    }

    /// True when no payload type of the call can carry the beep.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// `BEEP_MS` of the beep's PCM at `rate`.
fn tone(rate: u32) -> Vec<i16> {
    let n = (rate * BEEP_MS / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            ((t * BEEP_HZ * 2.0 * std::f64::consts::PI).sin() * BEEP_AMPLITUDE) as i16
        })
        .collect()
}

/// A beep going out on one stream towards a phone.
#[derive(Debug)]
pub struct BeepInject {
    spec: Arc<BeepSpec>,
    /// Bytes of the beep already sent (the same position in every payload type's stream).
    pos: usize,
    out: Vec<u8>,
}

impl BeepInject {
    /// A beep from its start.
    pub fn new(spec: Arc<BeepSpec>) -> BeepInject {
        BeepInject {
            spec,
            pos: 0,
            out: Vec::with_capacity(256),
        }
    }

    /// True once the whole beep went out.
    pub fn done(&self) -> bool {
        self.pos >= BYTES_PER_S * BEEP_MS as usize / 1000
    }

    /// The packet to send instead of `pkt` (parsed as `p`): its header with the beep's next
    /// bytes as payload (padding dropped), or `None` to send `pkt` as it is (a payload type
    /// without a beep stream: telephone-event, comfort noise, Opus).
    pub fn apply(&mut self, pkt: &[u8], p: &RtpPacket<'_>) -> Option<&[u8]> {
        let (_, stream) = self
            .spec
            .streams
            .iter()
            .find(|(pt, _)| *pt == p.payload_type)?;
        let n = p.payload.len();
        let hdr = pkt
            .len()
            .checked_sub(n + usize::from(p.padding))
            .filter(|h| *h >= 12)?;
        let start = self.pos.min(stream.len());
        let end = (self.pos + n).min(stream.len());
        self.out.clear();
        self.out.extend_from_slice(&pkt[..hdr]);
        // The padding bit goes: the payload is ours and exact.
        self.out[0] &= !0x20;
        self.out.extend_from_slice(&stream[start..end]);
        // The beep's end within this packet: the rest of the payload stays the party's.
        self.out.extend_from_slice(&p.payload[end - start..]);
        self.pos += n;
        Some(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;

    fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        RtpHeader::new(pt, seq, ts, 0x1234_5678)
            .build(payload)
            .expect("packet")
    }

    fn power_at(pcm: &[i16], hz: f64, rate: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, s) in pcm.iter().enumerate() {
            let w = 2.0 * std::f64::consts::PI * hz * i as f64 / rate;
            re += f64::from(*s) * w.cos();
            im += f64::from(*s) * w.sin();
        }
        (re * re + im * im).sqrt() / pcm.len() as f64
    }

    #[test]
    fn the_beep_replaces_payloads_keeping_ssrc_sequence_and_timestamps() {
        let spec = BeepSpec::new(&[(0, CodecKind::Pcmu), (101, CodecKind::Pcmu)]);
        let mut b = BeepInject::new(spec);
        let speech = vec![0x55u8; 160];
        let mut heard = Vec::new();
        let mut n = 0u16;
        while !b.done() {
            let (seq, ts) = (1000 + n, 8000 + u32::from(n) * 160);
            let pkt = packet(0, seq, ts, &speech);
            let p = RtpPacket::parse(&pkt).expect("parse");
            let out = b.apply(&pkt, &p).expect("beeped").to_vec();
            let q = RtpPacket::parse(&out).expect("still RTP");
            assert_eq!(
                (q.sequence, q.timestamp, q.ssrc, q.payload_type),
                (seq, ts, 0x1234_5678, 0)
            );
            assert_eq!(q.payload.len(), 160);
            heard.extend(crate::g711::decode_ulaw(q.payload));
            n += 1;
        }
        assert_eq!(n, 20, "400 ms of 20 ms packets");
        assert!(power_at(&heard, 1000.0, 8000.0) > 2000.0, "a 1 kHz tone");
        assert!(power_at(&heard, 600.0, 8000.0) < 200.0);
    }

    #[test]
    fn other_payload_types_and_padding_and_longer_packets() {
        let spec = BeepSpec::new(&[
            (8, CodecKind::Pcma),
            (9, CodecKind::G722),
            (111, CodecKind::Opus),
        ]);
        let mut b = BeepInject::new(spec.clone());
        // Telephone-event and Opus packets go unchanged, and do not advance the beep.
        for pt in [101, 111] {
            let pkt = packet(pt, 1, 160, &[1, 2, 3, 4]);
            let p = RtpPacket::parse(&pkt).expect("parse");
            assert!(b.apply(&pkt, &p).is_none());
        }
        assert!(!b.done());
        // A padded 30 ms A-law packet: padding dropped, 240 bytes of beep.
        let mut pkt = packet(8, 7, 320, &[0xD5; 240]);
        pkt[0] |= 0x20;
        pkt.extend_from_slice(&[0, 0, 0, 4]);
        let p = RtpPacket::parse(&pkt).expect("parse");
        assert_eq!(p.padding, 4);
        let out = b.apply(&pkt, &p).expect("beeped").to_vec();
        let q = RtpPacket::parse(&out).expect("RTP");
        assert_eq!((q.padding, q.payload.len(), q.sequence), (0, 240, 7));
        // G.722 at 20 ms (160 bytes) goes on from the same position: 3,200 bytes in all.
        let mut sent = 240;
        while !b.done() {
            let pkt = packet(9, 8, 640, &[0u8; 160]);
            let p = RtpPacket::parse(&pkt).expect("parse");
            let out = b.apply(&pkt, &p).expect("beeped");
            assert_eq!(out.len(), pkt.len());
            sent += 160;
        }
        assert_eq!(
            sent, 3280,
            "the last packet ends past the beep's 3,200 bytes"
        );
        // Where the beep ends inside a packet the party's own bytes follow it.
        let mut b = BeepInject::new(spec);
        b.pos = 3200 - 40;
        let pkt = packet(8, 9, 0, &[0x11; 160]);
        let p = RtpPacket::parse(&pkt).expect("parse");
        let out = b.apply(&pkt, &p).expect("beeped").to_vec();
        let q = RtpPacket::parse(&out).expect("RTP");
        assert_eq!(q.payload.len(), 160);
        assert!(q.payload[40..].iter().all(|&x| x == 0x11));
        assert!(q.payload[..40].iter().any(|&x| x != 0x11));
        // No codec that can carry it: nothing to do.
        assert!(BeepSpec::new(&[(111, CodecKind::Opus)]).is_empty());
    }
}
