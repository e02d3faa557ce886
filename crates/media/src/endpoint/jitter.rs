//! The adaptive jitter buffer: packets in (any order), one frame's worth of "what to play next"
//! out per tick. Works in RTP timestamp units; decoding is the caller's.
//!
//! Play-out starts once the buffer spans the target delay. The target follows the measured
//! interarrival jitter (RFC 3550 A.8) and the underruns: `frame + 3 × jitter + boost`, within
//! 20–200 ms, where every underrun adds 20 ms to the boost and the boost fades by 1 ms every
//! 2 s, so a network that stalls now and then keeps a deeper buffer instead of underrunning at
//! every stall. When a frame is due
//! and nothing has arrived (an underrun), the play-out position holds, so the delay grows by one
//! frame; when the buffer stays deeper than the target plus two frames, one frame is dropped, so
//! the delay shrinks. Packets older than the play-out position (late) and repeats are dropped.
//! After 100 ms without any packet the stream is idle (sender stopped, on hold) and the next
//! packet starts a new fill, without counting underruns meanwhile.

use std::collections::VecDeque;

/// Packets held at most (about 1.3 s of 20 ms packets): a flood cannot grow it.
pub const CAPACITY: usize = 64;
/// Bounds of the target delay, ms.
pub const MIN_DELAY_MS: u32 = 20;
/// Upper bound of the target delay, ms.
pub const MAX_DELAY_MS: u32 = 200;
/// Consecutive too-deep frames before one is dropped.
const SHRINK_AFTER: u32 = 10;
/// Frames between 1 ms decrements of the underrun boost (2 s).
const BOOST_DECAY_FRAMES: u32 = 100;
/// Empty frames after which the stream counts as stopped.
const IDLE_AFTER: u32 = 5;

/// One buffered packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// RTP timestamp.
    pub ts: u32,
    /// Sequence number.
    pub seq: u16,
    /// Payload type.
    pub pt: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What to do for the next piece of audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Decode this packet, then call [`JitterBuffer::advance`] with its duration.
    Packet(Packet),
    /// A packet is missing: conceal this many timestamp units (the position moved on).
    Lost(u32),
    /// Nothing arrived in time: conceal one frame (the position holds; counted).
    Underrun,
    /// The buffer grows towards a raised target: conceal one frame (position holds).
    Stretch,
    /// Not playing (filling, or the stream stopped): play silence.
    Idle,
}

/// What happened to an inserted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Buffered.
    Queued,
    /// Its play-out time has passed.
    Late,
    /// Already buffered.
    Duplicate,
}

/// Jitter-buffer counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Frames due with nothing buffered.
    pub underruns: u64,
    /// Packets that came after their play-out time.
    pub late: u64,
    /// Repeated packets.
    pub duplicates: u64,
    /// Timestamp gaps concealed (lost packets).
    pub lost: u64,
    /// Frames dropped to shrink the delay (or on overflow).
    pub dropped: u64,
    /// Frames inserted to grow the delay.
    pub stretched: u64,
}

/// The adaptive jitter buffer of one received stream.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    /// RTP clock (timestamp units per second).
    clock: u32,
    /// Timestamp units per frame (20 ms).
    frame_ts: u32,
    /// Sorted by timestamp.
    packets: VecDeque<Packet>,
    /// The next timestamp to play; `None` while filling.
    cursor: Option<u32>,
    /// Newest timestamp seen in this segment.
    newest: Option<u32>,
    /// Interarrival jitter in timestamp units.
    jitter: f64,
    last_transit: Option<(u32, i64)>,
    target_ms: u32,
    /// Extra delay learned from underruns, ms.
    boost_ms: u32,
    frames: u32,
    empty: u32,
    deep: u32,
    stats: JitterStats,
}

/// `a - b` on the wrapping timestamp circle.
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl JitterBuffer {
    /// A buffer for a stream with RTP clock `clock` Hz.
    pub fn new(clock: u32) -> JitterBuffer {
        let clock = clock.max(1000);
        JitterBuffer {
            clock,
            frame_ts: clock / 50,
            packets: VecDeque::with_capacity(16),
            cursor: None,
            newest: None,
            // A cautious start (5 ms) that real measurements replace within a second.
            jitter: f64::from(clock) * 0.005,
            last_transit: None,
            target_ms: 35,
            boost_ms: 0,
            frames: 0,
            empty: 0,
            deep: 0,
            stats: JitterStats::default(),
        }
    }

    /// The RTP clock this buffer runs at.
    pub fn clock(&self) -> u32 {
        self.clock
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current target delay, ms.
    pub fn target_ms(&self) -> u32 {
        self.target_ms
    }

    /// The measured interarrival jitter, ms.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock)
    }

    /// Packets buffered.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Buffered audio ahead of the play-out position, ms (one frame per newest packet assumed).
    pub fn depth_ms(&self) -> u32 {
        match (self.cursor, self.newest) {
            (Some(c), Some(n)) => {
                let d = diff(n, c) + self.frame_ts as i32;
                (d.max(0) as u64 * 1000 / u64::from(self.clock)) as u32
            }
            _ => 0,
        }
    }

    /// Adds a packet; `arrival` is its arrival time in timestamp units (any fixed origin).
    pub fn insert(&mut self, p: Packet, arrival: u32) -> Inserted {
        self.note_timing(p.ts, arrival);
        if let Some(c) = self.cursor {
            let behind = diff(c, p.ts);
            if behind > 0 {
                if behind as u32 > self.clock {
                    // A second or more in the past: the sender restarted its timeline.
                    self.reset();
                } else {
                    self.stats.late += 1;
                    return Inserted::Late;
                }
            }
        }
        // Newest last; a reordered packet is found from the back.
        let mut at = self.packets.len();
        while at > 0 {
            let d = diff(self.packets[at - 1].ts, p.ts);
            if d == 0 {
                self.stats.duplicates += 1;
                return Inserted::Duplicate;
            }
            if d < 0 {
                break;
            }
            at -= 1;
        }
        if self.packets.len() >= CAPACITY {
            // Only a sender far ahead of real time gets here: make room at the old end.
            self.packets.pop_front();
            self.stats.dropped += 1;
            at = at.saturating_sub(1);
        }
        if self.newest.is_none_or(|n| diff(p.ts, n) > 0) {
            self.newest = Some(p.ts);
        }
        self.packets.insert(at, p);
        Inserted::Queued
    }

    fn note_timing(&mut self, ts: u32, arrival: u32) {
        let transit = i64::from(arrival) - i64::from(ts);
        if let Some((last_ts, last)) = self.last_transit {
            if last_ts == ts {
                return;
            }
            // Wrap-safe: the difference of two transits fits an i32 for sane streams.
            let d = f64::from((transit - last) as i32).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some((ts, transit));
        self.update_target();
    }

    fn update_target(&mut self) {
        let ms = 20.0 + 3.0 * self.jitter_ms() + f64::from(self.boost_ms);
        self.target_ms = (ms.ceil() as u32).clamp(MIN_DELAY_MS, MAX_DELAY_MS);
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.cursor = None;
        self.newest = None;
        self.empty = 0;
        self.deep = 0;
    }

    /// What to play next; call once per frame (and again after a packet shorter than a frame).
    pub fn next_frame(&mut self) -> Next {
        self.frames += 1;
        if self.frames >= BOOST_DECAY_FRAMES {
            self.frames = 0;
            if self.boost_ms > 0 {
                self.boost_ms -= 1;
                self.update_target();
            }
        }
        let target_ts = self.target_ms * self.clock / 1000;
        let Some(cursor) = self.cursor else {
            let (Some(first), Some(newest)) = (self.packets.front(), self.newest) else {
                return Next::Idle;
            };
            let span = diff(newest, first.ts) + self.frame_ts as i32;
            if span < target_ts as i32 {
                return Next::Idle;
            }
            self.cursor = Some(first.ts);
            self.empty = 0;
            return self.next_frame();
        };
        // Too deep for a while: skip one frame.
        if self.depth_ms() > self.target_ms + 2 * 20 {
            self.deep += 1;
            if self.deep >= SHRINK_AFTER {
                self.deep = 0;
                let c = cursor.wrapping_add(self.frame_ts);
                self.cursor = Some(c);
                while self.packets.front().is_some_and(|p| diff(p.ts, c) < 0) {
                    self.packets.pop_front();
                }
                self.stats.dropped += 1;
                return self.next_frame();
            }
        } else {
            self.deep = 0;
        }
        loop {
            let Some(front) = self.packets.front() else {
                self.empty += 1;
                if self.empty > IDLE_AFTER {
                    self.reset();
                    return Next::Idle;
                }
                self.stats.underruns += 1;
                self.boost_ms = (self.boost_ms + 20).min(MAX_DELAY_MS);
                self.update_target();
                return Next::Underrun;
            };
            let d = diff(front.ts, cursor);
            if d < 0 {
                // Left behind by a shrink or a long packet.
                self.packets.pop_front();
                continue;
            }
            self.empty = 0;
            if d == 0 {
                let p = self.packets.pop_front();
                return match p {
                    Some(p) => Next::Packet(p),
                    None => Next::Idle,
                };
            }
            if d as u32 > self.clock {
                // A jump of more than a second (silence suppression, a new timeline): refill.
                self.cursor = None;
                self.newest = self.packets.back().map(|p| p.ts);
                return self.next_frame();
            }
            if self.depth_ms() + 2 * 20 < self.target_ms {
                self.stats.stretched += 1;
                return Next::Stretch;
            }
            let gap = (d as u32).min(self.frame_ts);
            self.cursor = Some(cursor.wrapping_add(gap));
            self.stats.lost += 1;
            return Next::Lost(gap);
        }
    }

    /// Moves the play-out position past a decoded packet of `ts_units`.
    pub fn advance(&mut self, ts_units: u32) {
        if let Some(c) = self.cursor {
            self.cursor = Some(c.wrapping_add(ts_units));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(i: u32) -> Packet {
        Packet {
            ts: 1000 + i * 160,
            seq: i as u16,
            pt: 0,
            payload: vec![i as u8; 160],
        }
    }

    /// Plays one frame the way the endpoint does; returns what was played.
    fn play(jb: &mut JitterBuffer) -> Next {
        let n = jb.next_frame();
        if let Next::Packet(_) = &n {
            jb.advance(160);
        }
        n
    }

    fn seqs(out: &[Next]) -> Vec<i32> {
        out.iter()
            .map(|n| match n {
                Next::Packet(p) => i32::from(p.seq),
                Next::Lost(_) => -1,
                Next::Underrun => -2,
                Next::Stretch => -3,
                Next::Idle => -4,
            })
            .collect()
    }

    #[test]
    fn reorders_and_plays_in_timestamp_order() {
        let mut jb = JitterBuffer::new(8000);
        for i in [0, 2, 1, 3, 5, 4] {
            assert_eq!(jb.insert(pkt(i), i * 160), Inserted::Queued);
        }
        let out: Vec<Next> = (0..6).map(|_| play(&mut jb)).collect();
        assert_eq!(seqs(&out), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn fills_to_the_target_before_playing() {
        let mut jb = JitterBuffer::new(8000);
        assert_eq!(jb.target_ms(), 35);
        jb.insert(pkt(0), 0);
        assert_eq!(play(&mut jb), Next::Idle);
        jb.insert(pkt(1), 160);
        assert!(matches!(play(&mut jb), Next::Packet(p) if p.seq == 0));
    }

    #[test]
    fn loss_is_concealed_and_counted_late_and_duplicates_dropped() {
        let mut jb = JitterBuffer::new(8000);
        for i in [0, 1, 3, 4] {
            jb.insert(pkt(i), i * 160);
        }
        assert_eq!(jb.insert(pkt(1), 5 * 160), Inserted::Duplicate);
        let out: Vec<Next> = (0..3).map(|_| play(&mut jb)).collect();
        assert_eq!(seqs(&out), vec![0, 1, -1]);
        assert_eq!(jb.stats().lost, 1);
        // Packet 2 turns up after its slot was concealed: late.
        assert_eq!(jb.insert(pkt(2), 6 * 160), Inserted::Late);
        assert!(matches!(play(&mut jb), Next::Packet(p) if p.seq == 3));
        let s = jb.stats();
        assert_eq!((s.late, s.duplicates), (1, 1));
    }

    #[test]
    fn underrun_holds_position_then_goes_idle() {
        let mut jb = JitterBuffer::new(8000);
        jb.insert(pkt(0), 0);
        jb.insert(pkt(1), 160);
        play(&mut jb);
        play(&mut jb);
        // Packet 2 is late in the network: an underrun, and the position waits for it.
        assert_eq!(play(&mut jb), Next::Underrun);
        jb.insert(pkt(2), 3 * 160 + 100);
        assert!(matches!(play(&mut jb), Next::Packet(p) if p.seq == 2));
        assert_eq!(jb.stats().underruns, 1);
        // The sender stops: a few underruns, then idle without counting.
        let out: Vec<Next> = (0..20).map(|_| play(&mut jb)).collect();
        assert_eq!(jb.stats().underruns, 1 + u64::from(IDLE_AFTER));
        assert_eq!(out.last(), Some(&Next::Idle));
    }

    #[test]
    fn target_follows_jitter_and_depth_shrinks_back() {
        let mut jb = JitterBuffer::new(8000);
        // Steady arrivals: the target stays at its floor region.
        for i in 0..50 {
            jb.insert(pkt(i), i * 160);
            play(&mut jb);
        }
        let calm = jb.target_ms();
        assert!(calm <= 25, "{calm}");
        // Arrivals jittering by ±30 ms raise the target.
        for i in 50..150 {
            let wobble = if i % 2 == 0 { 240 } else { 0 };
            jb.insert(pkt(i), i * 160 + wobble);
            play(&mut jb);
        }
        let rough = jb.target_ms();
        assert!((60..=MAX_DELAY_MS).contains(&rough), "{rough}");
        // A burst puts 300 ms in the buffer; steady arrivals then drain it back down.
        let base = 150;
        for i in base..base + 15 {
            jb.insert(pkt(i), base * 160);
        }
        assert!(jb.depth_ms() >= 250);
        let mut t = base * 160;
        for i in base + 15..base + 400 {
            t += 160;
            jb.insert(pkt(i), t);
            play(&mut jb);
        }
        assert!(jb.stats().dropped > 0);
        assert!(
            jb.depth_ms() <= jb.target_ms() + 60,
            "depth {} target {}",
            jb.depth_ms(),
            jb.target_ms()
        );
    }

    #[test]
    fn flood_is_bounded_and_timeline_jump_refills() {
        let mut jb = JitterBuffer::new(8000);
        for i in 0..500 {
            jb.insert(pkt(i), 0);
        }
        assert_eq!(jb.len(), CAPACITY);
        let mut jb = JitterBuffer::new(8000);
        for i in 0..3 {
            jb.insert(pkt(i), i * 160);
            play(&mut jb);
        }
        while let Next::Packet(_) = play(&mut jb) {}
        // 10 s ahead: not 500 frames of concealment, a fresh start.
        for i in 500..503 {
            jb.insert(pkt(i), i * 160);
        }
        let n = play(&mut jb);
        assert!(matches!(&n, Next::Packet(p) if p.seq == 500), "{n:?}");
    }
}

#[cfg(test)]
mod spike_tests {
    use super::*;

    /// Plays 20 s of a stream whose packets now and then arrive in a burst after a stall of
    /// `stall_ms` (every 2 s); returns the underruns counted in the first and the last 10 s.
    fn underruns_with_stalls(stall_ms: u32) -> (u64, u64) {
        let mut jb = JitterBuffer::new(8000);
        let n = 1000u32;
        // Arrival time (ms) of packet i: on time, except that a stall holds back everything
        // sent during it, which then arrives at once.
        let arrival = |i: u32| -> u32 {
            let t = i * 20;
            let period = 2000;
            let in_cycle = t % period;
            if in_cycle >= 1000 && in_cycle < 1000 + stall_ms {
                t - in_cycle + 1000 + stall_ms
            } else {
                t
            }
        };
        let mut next = 0u32;
        let mut first_half = 0;
        // Up to the last packet's play-out (after it, the stream ends: not a stall).
        for tick in 0..n {
            if tick == n / 2 {
                first_half = jb.stats().underruns;
            }
            let now = tick * 20 + 10;
            while next < n && arrival(next) <= now {
                let p = Packet {
                    ts: next * 160,
                    seq: next as u16,
                    pt: 0,
                    payload: vec![0; 160],
                };
                jb.insert(p, arrival(next) * 8);
                next += 1;
            }
            let r = jb.next_frame();
            if let Next::Packet(_) = r {
                jb.advance(160);
            }
        }
        (first_half, jb.stats().underruns - first_half)
    }

    #[test]
    fn repeated_stalls_raise_the_delay_instead_of_underrunning_each_time() {
        // Ten stalls of 80 ms: the first ones cost underruns, later ones find a deeper buffer.
        let (early, late) = underruns_with_stalls(80);
        assert!(early > 0 && early <= 10, "{early}");
        assert_eq!(late, 0);
    }
}
