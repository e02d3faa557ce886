//! RTP packet header parsing and building (RFC 3550 §5.1).
//!
//! Parsing is zero-copy: [`RtpPacket`] borrows the datagram. Every length is checked before it is
//! used, so malformed input yields an [`RtpError`], never a panic.

/// Length of the fixed RTP header in bytes.
pub const HEADER_LEN: usize = 12;

/// Why an RTP packet could not be parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header.
    #[error("packet too short: {0} bytes")]
    TooShort(usize),
    /// Version field is not 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The CSRC list runs past the end of the packet.
    #[error("CSRC list runs past the end of the packet")]
    TruncatedCsrc,
    /// The header extension runs past the end of the packet.
    #[error("header extension runs past the end of the packet")]
    TruncatedExtension,
    /// The padding count is zero or larger than what follows the header.
    #[error("invalid padding length")]
    BadPadding,
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// More than 15 CSRCs were given.
    #[error("too many CSRCs (max 15)")]
    TooManyCsrcs,
    /// Header extension data must be a whole number of 32-bit words.
    #[error("extension data length is not a multiple of 4")]
    BadExtensionLength,
}

/// An RTP header extension (profile-defined 16 bits + data words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The "defined by profile" field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// Extension data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    csrc: &'a [u8],
    /// Header extension, if the X bit is set.
    pub extension: Option<Extension<'a>>,
    /// Payload without header and padding.
    pub payload: &'a [u8],
    /// Number of padding bytes at the end (0 when the P bit is clear).
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates an RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < HEADER_LEN {
            return Err(RtpError::TooShort(buf.len()));
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_ext = buf[0] & 0x10 != 0;
        let cc = usize::from(buf[0] & 0x0f);
        let mut off = HEADER_LEN;
        let csrc_end = off + cc * 4;
        let csrc = buf.get(off..csrc_end).ok_or(RtpError::TruncatedCsrc)?;
        off = csrc_end;
        let extension = if has_ext {
            let head = buf.get(off..off + 4).ok_or(RtpError::TruncatedExtension)?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let data = buf
                .get(off + 4..off + 4 + words * 4)
                .ok_or(RtpError::TruncatedExtension)?;
            off += 4 + words * 4;
            Some(Extension { profile, data })
        } else {
            None
        };
        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            let pad = buf[end - 1];
            if pad == 0 || usize::from(pad) > end - off {
                return Err(RtpError::BadPadding);
            }
            padding = pad;
            end -= usize::from(pad);
        }
        Ok(RtpPacket {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            csrc,
            extension,
            payload: &buf[off..end],
            padding,
        })
    }

    /// Number of CSRC entries.
    pub fn csrc_count(&self) -> usize {
        self.csrc.len() / 4
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// An owned RTP header used to build packets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits; higher bits are masked off).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrcs: Vec<u32>,
    /// Header extension: profile field and data (a multiple of 4 bytes).
    pub extension: Option<(u16, Vec<u8>)>,
    /// Padding bytes to append after the payload (0 for none).
    pub padding: u8,
}

impl RtpHeader {
    /// A header with no CSRCs, extension or padding.
    pub fn new(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32) -> Self {
        RtpHeader {
            payload_type,
            sequence,
            timestamp,
            ssrc,
            ..Default::default()
        }
    }

    /// Header length in bytes (without payload and padding).
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.csrcs.len() * 4 + self.extension.as_ref().map_or(0, |(_, d)| 4 + d.len())
    }

    /// Writes header, payload and padding into `out`; returns the packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs);
        }
        if let Some((_, d)) = &self.extension
            && (d.len() % 4 != 0 || d.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::BadExtensionLength);
        }
        let total = self.header_len() + payload.len() + usize::from(self.padding);
        if out.len() < total {
            return Err(RtpError::BufferTooSmall);
        }
        let mut b0 = 0x80 | self.csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out[0] = b0;
        out[1] = (self.payload_type & 0x7f) | if self.marker { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut off = HEADER_LEN;
        for c in &self.csrcs {
            out[off..off + 4].copy_from_slice(&c.to_be_bytes());
            off += 4;
        }
        if let Some((profile, data)) = &self.extension {
            out[off..off + 2].copy_from_slice(&profile.to_be_bytes());
            out[off + 2..off + 4].copy_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            out[off + 4..off + 4 + data.len()].copy_from_slice(data);
            off += 4 + data.len();
        }
        out[off..off + payload.len()].copy_from_slice(payload);
        off += payload.len();
        if self.padding > 0 {
            let pad = usize::from(self.padding);
            out[off..off + pad - 1].fill(0);
            out[off + pad - 1] = self.padding;
            off += pad;
        }
        Ok(off)
    }

    /// Builds a complete packet into a new vector.
    pub fn build(&self, payload: &[u8]) -> Result<Vec<u8>, RtpError> {
        let mut v = vec![0; self.header_len() + payload.len() + usize::from(self.padding)];
        let n = self.write(payload, &mut v)?;
        v.truncate(n);
        Ok(v)
    }
}

/// Payload types defined statically by RFC 3551 and their RTP clock rates.
pub fn static_clock_rate(payload_type: u8) -> Option<u32> {
    match payload_type {
        // PCMU, GSM, G723, LPC, PCMA, G722 (8000 by RFC 3551's historical error), CN, G729.
        0 | 3 | 4 | 7 | 8 | 9 | 13 | 18 => Some(8000),
        5 => Some(8000),
        6 => Some(16000),
        10 | 11 => Some(44100),
        15 => Some(8000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_full_header() {
        let h = RtpHeader {
            marker: true,
            payload_type: 101,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
            csrcs: vec![7, 8],
            extension: Some((0xbede, vec![1, 2, 3, 4])),
            padding: 3,
        };
        let pkt = h.build(b"hello").unwrap();
        assert_eq!(pkt.len(), 12 + 8 + 8 + 5 + 3);
        let p = RtpPacket::parse(&pkt).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 101);
        assert_eq!(p.sequence, 0xfffe);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 0x0102_0304);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(p.csrc_count(), 2);
        assert_eq!(
            p.extension,
            Some(Extension {
                profile: 0xbede,
                data: &[1, 2, 3, 4]
            })
        );
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.padding, 3);
    }

    #[test]
    fn known_bytes() {
        // PCMU, seq 1, ts 160, ssrc 0x11223344, 2-byte payload.
        let raw = [
            0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0, 0x11, 0x22, 0x33, 0x44, 0xff, 0x7f,
        ];
        let p = RtpPacket::parse(&raw).unwrap();
        assert_eq!((p.payload_type, p.sequence, p.timestamp), (0, 1, 160));
        assert_eq!(p.ssrc, 0x1122_3344);
        assert_eq!(p.payload, &[0xff, 0x7f]);
        assert_eq!(
            RtpHeader::new(0, 1, 160, 0x1122_3344)
                .build(&[0xff, 0x7f])
                .unwrap(),
            raw
        );
    }

    #[test]
    fn rejects_malformed() {
        let ok = RtpHeader::new(0, 1, 2, 3).build(&[0; 4]).unwrap();
        let cases: Vec<(Vec<u8>, RtpError)> = vec![
            (vec![], RtpError::TooShort(0)),
            (ok[..11].to_vec(), RtpError::TooShort(11)),
            (
                {
                    let mut v = ok.clone();
                    v[0] = 0x40;
                    v
                },
                RtpError::BadVersion(1),
            ),
            (
                {
                    let mut v = ok.clone();
                    v[0] = 0x82;
                    v
                },
                RtpError::TruncatedCsrc,
            ),
            (
                {
                    let mut v = ok[..14].to_vec();
                    v[0] = 0x90;
                    v
                },
                RtpError::TruncatedExtension,
            ),
            (
                {
                    let mut v = ok[..12].to_vec();
                    v[0] = 0x90;
                    v.extend([0, 0, 0, 9]);
                    v
                },
                RtpError::TruncatedExtension,
            ),
            (
                {
                    let mut v = ok.clone();
                    v[0] = 0xa0;
                    *v.last_mut().unwrap() = 0;
                    v
                },
                RtpError::BadPadding,
            ),
            (
                {
                    let mut v = ok.clone();
                    v[0] = 0xa0;
                    *v.last_mut().unwrap() = 5;
                    v
                },
                RtpError::BadPadding,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(RtpPacket::parse(&raw), Err(want), "{raw:02x?}");
        }
        // Padding may consume the whole payload.
        let mut v = ok.clone();
        v[0] = 0xa0;
        *v.last_mut().unwrap() = 4;
        assert_eq!(RtpPacket::parse(&v).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Exhaustive over the first header byte for every length up to 40.
        for len in 0..40 {
            for b0 in 0..=255u8 {
                let mut v = vec![0xffu8; len];
                if len > 0 {
                    v[0] = b0;
                }
                let _ = RtpPacket::parse(&v);
            }
        }
    }

    #[test]
    fn build_errors() {
        let mut h = RtpHeader::new(0, 0, 0, 0);
        h.csrcs = vec![0; 16];
        assert_eq!(h.build(&[]), Err(RtpError::TooManyCsrcs));
        let mut h = RtpHeader::new(0, 0, 0, 0);
        h.extension = Some((1, vec![1, 2, 3]));
        assert_eq!(h.build(&[]), Err(RtpError::BadExtensionLength));
        let h = RtpHeader::new(0, 0, 0, 0);
        assert_eq!(h.write(&[1], &mut [0; 12]), Err(RtpError::BufferTooSmall));
    }
}
