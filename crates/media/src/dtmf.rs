//! RFC 4733 telephone-event payloads (DTMF over RTP).

use crate::rtp::RtpHeader;

/// Why a telephone-event payload could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is shorter than 4 bytes.
    #[error("telephone-event payload too short: {0} bytes")]
    TooShort(usize),
}

/// One telephone-event payload block (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload (redundant blocks are ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let b: &[u8; 4] = payload
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or(DtmfError::TooShort(payload.len()))?;
        Ok(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The 4-byte payload (the R bit is always 0; volume is masked to 6 bits).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The digit this event stands for, if it is a DTMF event.
    pub fn digit(&self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// The event code for a DTMF digit (`0-9 * # A-D`, case-insensitive).
pub fn event_for_digit(c: char) -> Option<u8> {
    Some(match c.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        l @ 'A'..='D' => l as u8 - b'A' + 12,
        _ => return None,
    })
}

/// The DTMF digit for an event code 0..=15.
pub fn digit_for_event(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// Parameters for sending one digit as a burst of RTP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitBurst {
    /// Event code.
    pub event: u8,
    /// Negotiated telephone-event payload type.
    pub payload_type: u8,
    /// SSRC of the stream.
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub first_sequence: u16,
    /// RTP timestamp of the event start (shared by all its packets).
    pub timestamp: u32,
    /// Event length in RTP timestamp units (e.g. 800 = 100 ms at 8 kHz).
    pub duration: u16,
    /// Interval between packets in timestamp units (e.g. 160 = 20 ms at 8 kHz).
    pub step: u16,
    /// Power level in -dBm0.
    pub volume: u8,
}

impl DigitBurst {
    /// The packets of the event: the first with the marker bit, updates every `step`, and
    /// three copies of the end packet as RFC 4733 §2.5.1.4 recommends.
    pub fn packets(&self) -> Vec<Vec<u8>> {
        let step = self.step.max(1);
        let mut out = Vec::new();
        let mut seq = self.first_sequence;
        let mut dur = step.min(self.duration);
        let mut push = |dur: u16, end: bool, marker: bool, seq: u16| {
            let ev = TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                duration: dur,
            };
            let mut h = RtpHeader::new(self.payload_type, seq, self.timestamp, self.ssrc);
            h.marker = marker;
            // A 4-byte payload with a plain header cannot exceed any limit.
            if let Ok(p) = h.build(&ev.to_bytes()) {
                out.push(p);
            }
        };
        let mut first = true;
        while dur < self.duration {
            push(dur, false, first, seq);
            first = false;
            seq = seq.wrapping_add(1);
            dur = dur.saturating_add(step);
        }
        for _ in 0..3 {
            push(self.duration, true, first, seq);
            first = false;
            seq = seq.wrapping_add(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;

    #[test]
    fn parse_and_build() {
        // '5', end, volume 10, duration 800.
        let raw = [5, 0x8a, 0x03, 0x20];
        let ev = TelephoneEvent::parse(&raw).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), raw);
        assert_eq!(ev.digit(), Some('5'));
        // The reserved bit is ignored on input.
        assert_eq!(TelephoneEvent::parse(&[11, 0x4a, 0, 0]).unwrap().volume, 10);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::TooShort(3))
        );
    }

    #[test]
    fn digit_mapping() {
        for (c, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            assert_eq!(event_for_digit(c), Some(e));
            assert_eq!(digit_for_event(e), Some(c.to_ascii_uppercase()));
        }
        assert_eq!(event_for_digit('x'), None);
        assert_eq!(digit_for_event(16), None);
    }

    #[test]
    fn burst_shape() {
        let b = DigitBurst {
            event: 1,
            payload_type: 101,
            ssrc: 9,
            first_sequence: 65534,
            timestamp: 1000,
            duration: 800,
            step: 160,
            volume: 10,
        };
        let pkts = b.packets();
        // 160, 320, 480, 640 updates, then 3 end packets at 800.
        assert_eq!(pkts.len(), 7);
        let parsed: Vec<_> = pkts.iter().map(|p| RtpPacket::parse(p).unwrap()).collect();
        assert!(parsed[0].marker && !parsed[1].marker);
        assert_eq!(parsed[2].sequence, 0); // wrapped
        assert!(
            parsed
                .iter()
                .all(|p| p.timestamp == 1000 && p.payload_type == 101)
        );
        let evs: Vec<_> = parsed
            .iter()
            .map(|p| TelephoneEvent::parse(p.payload).unwrap())
            .collect();
        assert_eq!(evs[0].duration, 160);
        assert!(!evs[3].end && evs[3].duration == 640);
        assert!(evs[4..].iter().all(|e| e.end && e.duration == 800));
    }
}
