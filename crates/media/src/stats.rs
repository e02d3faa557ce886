//! Receive-side statistics of one RTP stream: loss from sequence gaps (RFC 3550 A.1, simplified)
//! and interarrival jitter (RFC 3550 A.8). Plain `&mut self` state, no clock, no I/O.

/// A sequence jump at least this far ahead is a new stream segment, not loss.
const MAX_DROPOUT: u16 = 3000;
/// A packet at most this far behind the highest sequence is a late packet.
const MAX_MISORDER: u16 = 100;

/// Loss and jitter of the packets received from one phone.
#[derive(Debug, Clone, Default)]
pub(crate) struct RxStats {
    started: bool,
    ssrc: u32,
    base_seq: u16,
    max_seq: u16,
    cycles: u64,
    received: u64,
    /// Loss of earlier segments (before an SSRC change or a large jump).
    lost_before: u64,
    /// Interarrival jitter in seconds.
    jitter: f64,
    /// (payload type, RTP timestamp, transit) of the previous timed packet.
    last: Option<(u8, u32, i32)>,
}

impl RxStats {
    /// Accounts one packet's sequence number for loss.
    pub(crate) fn on_sequence(&mut self, seq: u16, ssrc: u32) {
        if !self.started || ssrc != self.ssrc {
            self.restart(seq, ssrc);
            return;
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta == 0 {
            // Duplicate of the newest packet: counting it would hide a loss.
        } else if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
            self.received += 1;
        } else if delta > u16::MAX - MAX_MISORDER {
            // Late or reordered packet: it fills a gap counted as lost so far.
            self.received += 1;
        } else {
            self.restart(seq, ssrc);
        }
    }

    fn restart(&mut self, seq: u16, ssrc: u32) {
        if self.started {
            self.lost_before += self.segment_lost();
        }
        self.started = true;
        self.ssrc = ssrc;
        self.base_seq = seq;
        self.max_seq = seq;
        self.cycles = 0;
        self.received = 1;
        self.last = None;
    }

    fn segment_lost(&self) -> u64 {
        let expected = (self.cycles << 16) + u64::from(self.max_seq) + 1 - u64::from(self.base_seq);
        expected.saturating_sub(self.received)
    }

    /// Packets lost so far.
    pub(crate) fn lost(&self) -> u64 {
        if self.started {
            self.lost_before + self.segment_lost()
        } else {
            0
        }
    }

    /// Updates jitter with one packet; `arrival` is the arrival time in units of `clock_rate`.
    pub(crate) fn on_timing(
        &mut self,
        payload_type: u8,
        timestamp: u32,
        arrival: u32,
        clock_rate: u32,
    ) {
        if clock_rate == 0 {
            return;
        }
        let transit = arrival.wrapping_sub(timestamp) as i32;
        if let Some((pt, ts, last_transit)) = self.last
            && pt == payload_type
        {
            if ts == timestamp {
                // Same media instant (an RFC 4733 event update or a redundant copy): no new sample.
                return;
            }
            let d = f64::from(transit.wrapping_sub(last_transit).unsigned_abs())
                / f64::from(clock_rate);
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last = Some((payload_type, timestamp, transit));
    }

    /// Interarrival jitter in seconds.
    pub(crate) fn jitter_secs(&self) -> f64 {
        self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u16]) -> RxStats {
        let mut s = RxStats::default();
        for &q in seqs {
            s.on_sequence(q, 1);
        }
        s
    }

    #[test]
    fn loss_table() {
        let cases: &[(&[u16], u64)] = &[
            (&[], 0),
            (&[5], 0),
            (&[1, 2, 3, 4], 0),
            (&[1, 2, 5, 6], 2),
            (&[1, 3, 2, 4], 0),                   // reordered, nothing lost
            (&[1, 2, 2, 2, 4], 1),                // duplicates do not hide the gap
            (&[65534, 65535, 0, 2], 1),           // across the wrap
            (&[10, 9, 11], 0),                    // late packet before base is tolerated
            (&[1, 2, 10_000, 10_001, 10_003], 1), // big jump starts a new segment
        ];
        for (seqs, want) in cases {
            assert_eq!(feed(seqs).lost(), *want, "{seqs:?}");
        }
    }

    #[test]
    fn long_stream_wraps_several_times() {
        let mut s = RxStats::default();
        let mut q = 100u16;
        for i in 0..200_000u32 {
            if i % 1000 != 0 {
                s.on_sequence(q, 7);
            }
            q = q.wrapping_add(1);
        }
        assert_eq!(s.lost(), 199);
    }

    #[test]
    fn ssrc_change_keeps_earlier_loss() {
        let mut s = feed(&[1, 3]);
        s.on_sequence(500, 2);
        s.on_sequence(502, 2);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut s = RxStats::default();
        // Perfectly paced 20 ms packets: no jitter.
        for i in 0..50u32 {
            s.on_timing(0, i * 160, 1000 + i * 160, 8000);
        }
        assert_eq!(s.jitter_secs(), 0.0);
        // Every packet arrives 10 ms (80 units) off the previous spacing, alternating.
        let mut s = RxStats::default();
        let mut want = 0.0;
        for i in 0..200u32 {
            let wobble = if i % 2 == 0 { 0 } else { 80 };
            s.on_timing(0, i * 160, 5000 + i * 160 + wobble, 8000);
            if i > 0 {
                want += (0.010 - want) / 16.0;
            }
        }
        assert!(
            (s.jitter_secs() - want).abs() < 1e-9,
            "{} vs {want}",
            s.jitter_secs()
        );
        assert!((s.jitter_secs() - 0.010).abs() < 1e-4);
    }

    #[test]
    fn jitter_ignores_event_updates_and_unknown_clocks() {
        let mut s = RxStats::default();
        s.on_timing(101, 1000, 0, 8000);
        // Same timestamp, later arrival: an RFC 4733 update, not a new sample.
        s.on_timing(101, 1000, 160, 8000);
        s.on_timing(101, 1000, 320, 8000);
        assert_eq!(s.jitter_secs(), 0.0);
        s.on_timing(96, 1000, 999, 0);
        assert_eq!(s.jitter_secs(), 0.0);
        // A payload-type switch restarts the reference instead of producing a jump.
        s.on_timing(0, 77_777, 400, 8000);
        assert_eq!(s.jitter_secs(), 0.0);
    }
}
