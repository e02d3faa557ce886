//! The transaction layer's deadlines, in first-in first-out lanes.
//!
//! Almost every timer is set to `now + d` for one of a few durations (T1, 64·T1, T4, ...), and
//! `now` never goes back, so the deadlines of one duration arrive in order: a FIFO per duration
//! keeps them sorted for free, and setting or firing a timer costs O(1) instead of a binary
//! heap's O(log n) over every pending deadline (a busy BLF server holds a million: each NOTIFY
//! leaves a cancelled Timer F for 32 s). Entries that arrive out of order (a clock that went
//! back, more durations than lanes) go to a binary heap. The order of [`TimerQueue::pop`] is
//! exactly a heap's over all entries: by deadline, then transaction, then timer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// (deadline, transaction id, timer index).
pub(crate) type Entry = (Instant, u64, u8);

/// Lanes kept at most (durations in use are far fewer).
const MAX_LANES: usize = 24;

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    lanes: Vec<(Duration, VecDeque<Entry>)>,
    heap: BinaryHeap<Reverse<Entry>>,
    len: usize,
}

impl TimerQueue {
    /// Adds a deadline set `after` from some `now` (`entry.0 == now + after`).
    pub(crate) fn push(&mut self, after: Duration, entry: Entry) {
        self.len += 1;
        let lane = match self.lanes.iter().position(|(d, _)| *d == after) {
            Some(i) => Some(i),
            None if self.lanes.len() < MAX_LANES => {
                self.lanes.push((after, VecDeque::new()));
                Some(self.lanes.len() - 1)
            }
            None => None,
        };
        if let Some(i) = lane {
            let q = &mut self.lanes[i].1;
            if q.back().is_none_or(|b| *b <= entry) {
                q.push_back(entry);
                return;
            }
        }
        self.heap.push(Reverse(entry));
    }

    /// Where the earliest entry is: `None` = the heap, `Some(i)` = lane `i`.
    fn earliest(&self) -> Option<(Entry, Option<usize>)> {
        let mut best: Option<(Entry, Option<usize>)> =
            self.heap.peek().map(|Reverse(e)| (*e, None));
        for (i, (_, q)) in self.lanes.iter().enumerate() {
            if let Some(f) = q.front()
                && best.is_none_or(|(b, _)| *f < b)
            {
                best = Some((*f, Some(i)));
            }
        }
        best
    }

    /// The earliest entry.
    pub(crate) fn peek(&self) -> Option<Entry> {
        self.earliest().map(|(e, _)| e)
    }

    /// Takes the earliest entry out.
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let (e, at) = self.earliest()?;
        match at {
            Some(i) => {
                self.lanes[i].1.pop_front();
            }
            None => {
                self.heap.pop();
            }
        }
        self.len -= 1;
        Some(e)
    }

    /// Entries held (cancelled ones included until they are dropped).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keeps the entries `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        for (_, q) in &mut self.lanes {
            q.retain(|e| keep(e));
        }
        self.heap.retain(|Reverse(e)| keep(e));
        self.lanes.retain(|(_, q)| !q.is_empty());
        self.len = self.heap.len() + self.lanes.iter().map(|(_, q)| q.len()).sum::<usize>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency for a test).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn pops_in_the_order_of_a_binary_heap() {
        let t0 = Instant::now();
        let durations: Vec<Duration> = (0..30).map(|i| Duration::from_millis(100 * i)).collect();
        let mut q = TimerQueue::default();
        let mut heap = BinaryHeap::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let mut now = t0;
        for id in 0..5_000u64 {
            // Time mostly moves on, sometimes stands still, now and then goes back.
            match next(&mut rng) % 10 {
                0 => now = now.checked_sub(Duration::from_millis(3)).unwrap_or(now),
                1..=3 => {}
                _ => now += Duration::from_millis(next(&mut rng) % 7),
            }
            let after = durations[(next(&mut rng) % 30) as usize];
            let e = (now + after, next(&mut rng) % 50, (id % 14) as u8);
            q.push(after, e);
            heap.push(Reverse(e));
            if next(&mut rng).is_multiple_of(3) {
                assert_eq!(q.pop(), heap.pop().map(|Reverse(e)| e));
            }
            assert_eq!(q.peek(), heap.peek().map(|Reverse(e)| *e));
            assert_eq!(q.len(), heap.len());
        }
        q.retain(|e| e.1.is_multiple_of(2));
        heap.retain(|Reverse(e)| e.1.is_multiple_of(2));
        assert_eq!(q.len(), heap.len());
        while let Some(Reverse(e)) = heap.pop() {
            assert_eq!(q.pop(), Some(e));
        }
        assert_eq!(q.pop(), None);
        assert_eq!(q.len(), 0);
    }
}
