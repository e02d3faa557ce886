//! Minimal RTCP (RFC 3550 §6): compound packet validation, SR/RR report blocks, and builders.
//!
//! Only what the relay and CDRs need: the phone's own view of loss and jitter. Other packet
//! types (SDES, BYE, APP, feedback) are passed through as [`RtcpPacket::Other`].

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;

/// Why an RTCP packet is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Shorter than a 4-byte RTCP header, or a body shorter than its type requires.
    #[error("RTCP packet too short")]
    TooShort,
    /// Version field is not 2.
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    /// Packet type outside 192..=223, so this is not RTCP (RFC 5761 §4).
    #[error("not an RTCP packet type: {0}")]
    NotRtcp(u8),
    /// The length field runs past the end of the datagram.
    #[error("RTCP length field exceeds the datagram")]
    BadLength,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp.
    pub last_sr: u32,
    /// Delay since the last SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    const LEN: usize = 24;

    fn parse(b: &[u8]) -> Self {
        let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost24 = w(4) & 0x00ff_ffff;
        // Sign-extend the 24-bit field.
        let cumulative_lost = ((lost24 << 8) as i32) >> 8;
        ReportBlock {
            ssrc: w(0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: w(8),
            jitter: w(12),
            last_sr: w(16),
            delay_since_last_sr: w(20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&self.highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// Iterator over the report blocks of one SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    data: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        if self.data.len() < ReportBlock::LEN {
            return None;
        }
        let (b, rest) = self.data.split_at(ReportBlock::LEN);
        self.data = rest;
        Some(ReportBlock::parse(b))
    }
}

/// The sender-info section of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp.
    pub ntp_timestamp: u64,
    /// RTP timestamp matching the NTP time.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// Sender SSRC.
        ssrc: u32,
        /// Sender info.
        info: SenderInfo,
        /// Reception report blocks.
        blocks: ReportBlocks<'a>,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter SSRC.
        ssrc: u32,
        /// Reception report blocks.
        blocks: ReportBlocks<'a>,
    },
    /// Any other packet type, undecoded.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/subtype field.
        count: u8,
        /// Body after the 4-byte header.
        body: &'a [u8],
    },
}

/// True when a datagram on a muxed RTP port is RTCP rather than RTP (RFC 5761 §4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && (192..=223).contains(&buf[1])
}

/// Checks a compound RTCP datagram: version 2, RTCP packet types, lengths that tile the datagram.
pub fn validate(buf: &[u8]) -> Result<(), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::TooShort);
    }
    for p in parse_compound(buf) {
        p?;
    }
    Ok(())
}

/// Iterates over the packets of a compound RTCP datagram.
pub fn parse_compound(buf: &[u8]) -> Compound<'_> {
    Compound { rest: buf }
}

/// Iterator returned by [`parse_compound`]; stops after the first error.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = parse_one(self.rest);
        match r {
            Ok((p, len)) => {
                self.rest = &self.rest[len..];
                Some(Ok(p))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::TooShort);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let pt = buf[1];
    if !(192..=223).contains(&pt) {
        return Err(RtcpError::NotRtcp(pt));
    }
    let count = buf[0] & 0x1f;
    let len = (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1) * 4;
    let pkt = buf.get(..len).ok_or(RtcpError::BadLength)?;
    let mut body = &pkt[4..];
    if buf[0] & 0x20 != 0 {
        let pad = usize::from(*pkt.last().ok_or(RtcpError::TooShort)?);
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::BadLength);
        }
        body = &body[..body.len() - pad];
    }
    let w = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let blocks_len = usize::from(count) * ReportBlock::LEN;
    let packet = match pt {
        PT_SR => {
            if body.len() < 24 + blocks_len {
                return Err(RtcpError::TooShort);
            }
            let info = SenderInfo {
                ntp_timestamp: (u64::from(w(body, 4)) << 32) | u64::from(w(body, 8)),
                rtp_timestamp: w(body, 12),
                packet_count: w(body, 16),
                octet_count: w(body, 20),
            };
            RtcpPacket::SenderReport {
                ssrc: w(body, 0),
                info,
                blocks: ReportBlocks {
                    data: &body[24..24 + blocks_len],
                },
            }
        }
        PT_RR => {
            if body.len() < 4 + blocks_len {
                return Err(RtcpError::TooShort);
            }
            RtcpPacket::ReceiverReport {
                ssrc: w(body, 0),
                blocks: ReportBlocks {
                    data: &body[4..4 + blocks_len],
                },
            }
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
            body,
        },
    };
    Ok((packet, len))
}

fn header(out: &mut Vec<u8>, count: usize, pt: u8, body_words: usize) {
    out.push(0x80 | (count.min(31) as u8));
    out.push(pt);
    out.extend_from_slice(&(body_words as u16).to_be_bytes());
}

/// Builds a receiver report (at most 31 blocks are written).
pub fn build_receiver_report(ssrc: u32, blocks: &[ReportBlock]) -> Vec<u8> {
    let blocks = &blocks[..blocks.len().min(31)];
    let mut out = Vec::with_capacity(8 + blocks.len() * ReportBlock::LEN);
    header(&mut out, blocks.len(), PT_RR, 1 + blocks.len() * 6);
    out.extend_from_slice(&ssrc.to_be_bytes());
    for b in blocks {
        b.write(&mut out);
    }
    out
}

/// Builds a sender report (at most 31 blocks are written).
pub fn build_sender_report(ssrc: u32, info: &SenderInfo, blocks: &[ReportBlock]) -> Vec<u8> {
    let blocks = &blocks[..blocks.len().min(31)];
    let mut out = Vec::with_capacity(28 + blocks.len() * ReportBlock::LEN);
    header(&mut out, blocks.len(), PT_SR, 6 + blocks.len() * 6);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    for b in blocks {
        b.write(&mut out);
    }
    out
}

/// The first report block found in a compound datagram (from an SR or RR), if any.
pub fn first_report_block(buf: &[u8]) -> Option<ReportBlock> {
    for p in parse_compound(buf) {
        match p {
            Ok(RtcpPacket::SenderReport { mut blocks, .. })
            | Ok(RtcpPacket::ReceiverReport { mut blocks, .. }) => {
                if let Some(b) = blocks.next() {
                    return Some(b);
                }
            }
            Ok(RtcpPacket::Other { .. }) => {}
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0xaabb_ccdd,
            fraction_lost: 64,
            cumulative_lost: -3,
            highest_seq: 0x0001_0005,
            jitter: 120,
            last_sr: 7,
            delay_since_last_sr: 9,
        }
    }

    #[test]
    fn rr_roundtrip() {
        let rr = build_receiver_report(42, &[block()]);
        assert_eq!(rr.len(), 32);
        assert_eq!(rr[..4], [0x81, 201, 0, 7]);
        validate(&rr).unwrap();
        let pkts: Vec<_> = parse_compound(&rr).collect::<Result<_, _>>().unwrap();
        match &pkts[..] {
            [RtcpPacket::ReceiverReport { ssrc: 42, blocks }] => {
                assert_eq!(blocks.clone().collect::<Vec<_>>(), vec![block()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compound_sr_then_sdes() {
        let info = SenderInfo {
            ntp_timestamp: 0x0102_0304_0506_0708,
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        let mut sr = build_sender_report(1, &info, &[block()]);
        // SDES with one empty chunk: SSRC + END + padding to a word.
        sr.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]);
        validate(&sr).unwrap();
        let pkts: Vec<_> = parse_compound(&sr).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts.len(), 2);
        match &pkts[0] {
            RtcpPacket::SenderReport {
                ssrc: 1, info: i, ..
            } => assert_eq!(*i, info),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            pkts[1],
            RtcpPacket::Other {
                packet_type: 202,
                count: 1,
                ..
            }
        ));
        assert_eq!(first_report_block(&sr), Some(block()));
    }

    #[test]
    fn rejects_malformed() {
        let rr = build_receiver_report(42, &[block()]);
        assert_eq!(validate(&rr[..3]), Err(RtcpError::TooShort));
        assert_eq!(validate(&rr[..20]), Err(RtcpError::BadLength));
        let mut v = rr.clone();
        v[0] = 0x41;
        assert_eq!(validate(&v), Err(RtcpError::BadVersion(1)));
        let mut v = rr.clone();
        v[1] = 0;
        assert_eq!(validate(&v), Err(RtcpError::NotRtcp(0)));
        // Count says 2 blocks, length has room for 1.
        let mut v = rr.clone();
        v[0] = 0x82;
        assert_eq!(validate(&v), Err(RtcpError::TooShort));
        // Trailing garbage that is not a whole packet.
        let mut v = rr;
        v.extend_from_slice(&[0x80, 201]);
        assert_eq!(validate(&v), Err(RtcpError::TooShort));
        for len in 0..64 {
            let _ = validate(&vec![0x81; len]);
            let _ = first_report_block(&vec![0xa1; len]);
        }
    }

    #[test]
    fn mux_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8])); // PCMA with marker
        assert!(!is_rtcp(&[0x80]));
    }
}
