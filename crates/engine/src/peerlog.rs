//! Bounded, per-peer rate-limited logging, sans-IO.
//!
//! A flood of bad input (malformed datagrams, framing errors, refused connections) must not turn
//! into a flood of log lines: 2,400 malformed datagrams a second once wrote 2,400 WARN lines a
//! second. [`PeerLog`] decides, per event, whether the caller logs it in full
//! ([`Decision::Log`]) or only counts it ([`Decision::Suppress`]); at the end of each window it
//! hands back one [`Summary`] per noisy peer ("peer 192.0.2.7: 12,000 malformed SIP messages in
//! the last 10 s (11,995 not logged individually); first: ...").
//!
//! Bounds, all per window (default 10 s), whatever the input:
//! - at most [`PeerLogConfig::burst`] full lines per peer, and at most
//!   [`PeerLogConfig::global_burst`] full lines over all peers;
//! - at most [`PeerLogConfig::max_summaries`] per-peer summaries (the noisiest peers), plus one
//!   "other peers" summary that folds in the rest and every peer evicted from the table;
//! - at most [`PeerLogConfig::max_peers`] peers tracked (the oldest entry of the window is evicted
//!   when a new peer arrives at a full table).
//!
//! So one category of events writes at most `global_burst + max_summaries + 1` lines per window.
//!
//! Sans-IO: no clock is read and no log is written here. The caller passes `now` in, performs
//! the tracing call for [`Decision::Log`], and calls [`PeerLog::flush`] from a periodic timer (or
//! after any event) to collect the summaries that are due.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Limits of one [`PeerLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLogConfig {
    /// Length of a window; summaries cover one window each.
    pub window: Duration,
    /// Events per peer per window that are logged in full.
    pub burst: u32,
    /// Events over all peers per window that are logged in full.
    pub global_burst: u32,
    /// Peers tracked at once; the oldest of the window is evicted beyond this.
    pub max_peers: usize,
    /// Per-peer summaries per window; the rest are folded into the "other peers" summary.
    pub max_summaries: usize,
    /// Longest detail text kept for a summary (bytes, cut at a character boundary).
    pub max_detail: usize,
}

impl Default for PeerLogConfig {
    fn default() -> Self {
        PeerLogConfig {
            window: Duration::from_secs(10),
            burst: 5,
            global_burst: 50,
            max_peers: 1_024,
            max_summaries: 20,
            max_detail: 200,
        }
    }
}

/// What the caller does with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Log it in full. `last` is true for the last full line this peer gets in this window (the
    /// caller may say that further ones are summarised).
    Log {
        /// No further full lines for this peer in this window.
        last: bool,
    },
    /// Only counted; it appears in the peer's summary.
    Suppress,
}

impl Decision {
    /// True for [`Decision::Log`].
    pub fn is_log(self) -> bool {
        matches!(self, Decision::Log { .. })
    }
}

/// Counts of one peer (or of the "other peers") over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<K> {
    /// The peer; `None` for the aggregate of peers without their own summary.
    pub peer: Option<K>,
    /// How many peers the aggregate covers (1 for a single peer).
    pub peers: u64,
    /// Events in the window.
    pub events: u64,
    /// Of them, not logged in full.
    pub suppressed: u64,
    /// From the window's start to its close.
    pub period: Duration,
    /// Detail of the first event in the window.
    pub first: Option<String>,
}

impl<K: fmt::Display> Summary<K> {
    /// A log line naming the events `what` (plural noun, e.g. "malformed SIP messages").
    pub fn line<'a>(&'a self, what: &'a str) -> SummaryLine<'a, K> {
        SummaryLine { s: self, what }
    }
}

/// [`Summary`] rendered as a line (see [`Summary::line`]).
pub struct SummaryLine<'a, K> {
    s: &'a Summary<K>,
    what: &'a str,
}

impl<K: fmt::Display> fmt::Display for SummaryLine<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        match &s.peer {
            Some(p) => write!(f, "peer {p}: ")?,
            None => write!(f, "{} other peers: ", Thousands(s.peers))?,
        }
        write!(
            f,
            "{} {} in the last {} s ({} not logged individually)",
            Thousands(s.events),
            self.what,
            s.period.as_secs().max(1),
            Thousands(s.suppressed)
        )?;
        if let Some(first) = &s.first {
            write!(f, "; first: {first}")?;
        }
        Ok(())
    }
}

/// A number with thousands separators (12,000).
#[derive(Debug, Clone, Copy)]
pub struct Thousands(pub u64);

impl fmt::Display for Thousands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let n = digits.len();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (n - i).is_multiple_of(3) {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Entry {
    events: u64,
    logged: u32,
    first: Option<String>,
    /// Position in `order` (to tell a live queue slot from a stale one).
    seq: u64,
}

#[derive(Debug, Default)]
struct Other {
    peers: u64,
    events: u64,
    suppressed: u64,
    first: Option<String>,
}

impl Other {
    fn fold(&mut self, events: u64, suppressed: u64, first: Option<String>) {
        self.peers += 1;
        self.events += events;
        self.suppressed += suppressed;
        if self.first.is_none() {
            self.first = first;
        }
    }
}

/// Per-peer log rate limiter over fixed windows (see the module docs).
#[derive(Debug)]
pub struct PeerLog<K> {
    cfg: PeerLogConfig,
    /// Start of the current window; `None` before the first event.
    start: Option<Instant>,
    peers: HashMap<K, Entry>,
    /// Peers in arrival order within the window, for eviction.
    order: VecDeque<(K, u64)>,
    next_seq: u64,
    logged: u32,
    other: Other,
    /// Summaries of closed windows not yet collected by `flush`.
    pending: Vec<Summary<K>>,
    evicted_total: u64,
    suppressed_total: u64,
}

impl<K: Hash + Eq + Clone> PeerLog<K> {
    /// An empty limiter.
    pub fn new(cfg: PeerLogConfig) -> PeerLog<K> {
        PeerLog {
            cfg: PeerLogConfig {
                max_peers: cfg.max_peers.max(1),
                window: cfg.window.max(Duration::from_millis(1)),
                ..cfg
            },
            start: None,
            peers: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            logged: 0,
            other: Other::default(),
            pending: Vec::new(),
            evicted_total: 0,
            suppressed_total: 0,
        }
    }

    /// The limits.
    pub fn config(&self) -> &PeerLogConfig {
        &self.cfg
    }

    /// Records one event from `peer` at `now`. `detail` is called at most once, only when the
    /// text is kept for the summary (the first event of a peer in a window).
    pub fn event(&mut self, peer: K, now: Instant, detail: impl FnOnce() -> String) -> Decision {
        self.roll(now);
        if !self.peers.contains_key(&peer) {
            if self.peers.len() >= self.cfg.max_peers {
                self.evict_oldest();
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.push_back((peer.clone(), seq));
            let first = Some(cut(detail(), self.cfg.max_detail));
            self.peers.insert(
                peer.clone(),
                Entry {
                    events: 0,
                    logged: 0,
                    first,
                    seq,
                },
            );
        }
        let Some(e) = self.peers.get_mut(&peer) else {
            return Decision::Suppress;
        };
        e.events += 1;
        if e.logged < self.cfg.burst && self.logged < self.cfg.global_burst {
            e.logged += 1;
            self.logged += 1;
            Decision::Log {
                last: e.logged == self.cfg.burst || self.logged == self.cfg.global_burst,
            }
        } else {
            self.suppressed_total += 1;
            Decision::Suppress
        }
    }

    /// Closes the window if it is over and returns every summary due (empty most of the time;
    /// cheap to call after each event or from a timer).
    pub fn flush(&mut self, now: Instant) -> Vec<Summary<K>> {
        self.roll(now);
        std::mem::take(&mut self.pending)
    }

    /// Peers tracked right now.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Peers evicted from a full table since creation.
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// Events not logged in full since creation.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }

    fn evict_oldest(&mut self) {
        while let Some((k, seq)) = self.order.pop_front() {
            if self.peers.get(&k).is_some_and(|e| e.seq == seq)
                && let Some(e) = self.peers.remove(&k)
            {
                let suppressed = e.events - u64::from(e.logged);
                self.other.fold(e.events, suppressed, e.first);
                self.evicted_total += 1;
                return;
            }
        }
    }

    /// Starts the window at the first event; closes it when `now` is past its end.
    fn roll(&mut self, now: Instant) {
        let Some(start) = self.start else {
            self.start = Some(now);
            return;
        };
        if now.saturating_duration_since(start) < self.cfg.window {
            return;
        }
        let period = now.saturating_duration_since(start);
        // Noisy peers (something suppressed), noisiest first; beyond `max_summaries` they join
        // the "other peers" line.
        let mut noisy: Vec<(K, Entry)> = self
            .peers
            .drain()
            .filter(|(_, e)| e.events > u64::from(e.logged))
            .collect();
        noisy.sort_by_key(|(_, e)| std::cmp::Reverse(e.events));
        let mut other = std::mem::take(&mut self.other);
        for (i, (k, e)) in noisy.into_iter().enumerate() {
            let suppressed = e.events - u64::from(e.logged);
            if i < self.cfg.max_summaries {
                self.pending.push(Summary {
                    peer: Some(k),
                    peers: 1,
                    events: e.events,
                    suppressed,
                    period,
                    first: e.first,
                });
            } else {
                other.fold(e.events, suppressed, e.first);
            }
        }
        if other.suppressed > 0 {
            self.pending.push(Summary {
                peer: None,
                peers: other.peers,
                events: other.events,
                suppressed: other.suppressed,
                period,
                first: other.first,
            });
        }
        // Bounded even when nobody calls `flush`: keep only the newest window's worth.
        let keep = self.cfg.max_summaries + 1;
        if self.pending.len() > keep * 2 {
            let drop = self.pending.len() - keep;
            self.pending.drain(..drop);
        }
        self.order.clear();
        self.logged = 0;
        self.start = Some(now);
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut i = max;
        while i > 0 && !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PeerLogConfig {
        PeerLogConfig {
            window: Duration::from_secs(10),
            burst: 3,
            global_burst: 10,
            max_peers: 4,
            max_summaries: 2,
            max_detail: 40,
        }
    }

    #[test]
    fn first_lines_in_full_then_counted_then_one_summary() {
        let t0 = Instant::now();
        let mut l = PeerLog::new(cfg());
        let mut decisions = Vec::new();
        for i in 0..12_000u64 {
            let now = t0 + Duration::from_micros(i * 400); // 2,500/s for 4.8 s
            decisions.push(l.event("192.0.2.7", now, || format!("bad header {i}")));
            assert!(l.flush(now).is_empty(), "no summary inside the window");
        }
        assert_eq!(
            decisions[..3],
            [
                Decision::Log { last: false },
                Decision::Log { last: false },
                Decision::Log { last: true }
            ]
        );
        assert!(decisions[3..].iter().all(|d| *d == Decision::Suppress));
        assert_eq!(l.suppressed_total(), 11_997);
        let s = l.flush(t0 + Duration::from_secs(10));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].peer, Some("192.0.2.7"));
        assert_eq!((s[0].events, s[0].suppressed), (12_000, 11_997));
        assert_eq!(s[0].first.as_deref(), Some("bad header 0"));
        assert_eq!(
            s[0].line("malformed SIP messages").to_string(),
            "peer 192.0.2.7: 12,000 malformed SIP messages in the last 10 s \
             (11,997 not logged individually); first: bad header 0"
        );
        // Collected once; a new window starts afresh.
        assert!(l.flush(t0 + Duration::from_secs(11)).is_empty());
        assert_eq!(l.peers(), 0);
        let later = t0 + Duration::from_secs(12);
        assert!(l.event("192.0.2.7", later, String::new).is_log());
    }

    #[test]
    fn a_quiet_peer_gets_no_summary() {
        let t0 = Instant::now();
        let mut l = PeerLog::new(cfg());
        for i in 0..3 {
            assert!(
                l.event(1u32, t0 + Duration::from_secs(i), String::new)
                    .is_log()
            );
        }
        assert!(l.flush(t0 + Duration::from_secs(30)).is_empty());
    }

    #[test]
    fn the_global_budget_caps_full_lines_over_all_peers() {
        let t0 = Instant::now();
        let mut l = PeerLog::new(PeerLogConfig {
            max_peers: 1_000,
            ..cfg()
        });
        let mut full = 0;
        for p in 0..500u32 {
            for _ in 0..5 {
                if l.event(p, t0, String::new).is_log() {
                    full += 1;
                }
            }
        }
        assert_eq!(full, 10);
        let s = l.flush(t0 + Duration::from_secs(10));
        // Two peer summaries (max_summaries) and one line for the rest.
        assert_eq!(s.len(), 3, "{s:?}");
        let total: u64 = s.iter().map(|x| x.events).sum();
        assert_eq!(total, 2_500);
        let other = s.last().expect("other");
        assert_eq!(other.peer, None);
        assert_eq!(other.peers, 498);
        assert!(
            other
                .line("x")
                .to_string()
                .starts_with("498 other peers: 2,490 x in the last 10 s")
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest_peer_into_other_peers() {
        let t0 = Instant::now();
        let mut l = PeerLog::new(cfg());
        for p in 0..10u32 {
            for k in 0..4 {
                let now = t0 + Duration::from_millis(u64::from(p * 10 + k));
                l.event(p, now, || format!("peer {p}"));
            }
            assert!(l.peers() <= 4);
        }
        assert_eq!(l.peers(), 4);
        assert_eq!(l.evicted_total(), 6);
        let s = l.flush(t0 + Duration::from_secs(10));
        // Peers 6..9 stay: the two noisiest summarised (ties: any two), the others folded in.
        let other = s.iter().find(|x| x.peer.is_none()).expect("other peers");
        assert_eq!(other.peers, 6 + 2);
        assert_eq!(other.events, 8 * 4);
        assert_eq!(other.first.as_deref(), Some("peer 0"));
        assert_eq!(s.len(), 3);
        let own: Vec<u32> = s.iter().filter_map(|x| x.peer).collect();
        assert!(own.iter().all(|p| (6..10).contains(p)), "{own:?}");
    }

    #[test]
    fn a_returning_evicted_peer_is_tracked_again() {
        let t0 = Instant::now();
        let mut l = PeerLog::new(PeerLogConfig {
            max_peers: 2,
            ..cfg()
        });
        l.event(1u32, t0, String::new);
        l.event(2u32, t0, String::new);
        l.event(3u32, t0, String::new); // evicts 1
        l.event(1u32, t0, String::new); // evicts 2
        l.event(4u32, t0, String::new); // evicts 3
        assert_eq!(l.peers(), 2);
        assert_eq!(l.evicted_total(), 3);
    }

    #[test]
    fn lines_per_window_are_bounded_under_a_spoofed_flood() {
        let t0 = Instant::now();
        let c = cfg();
        let mut l = PeerLog::new(c);
        let mut lines = 0u64;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = t0 + Duration::from_micros(i * 100); // 10 s in all
            if l.event(x % 5_000, now, || "x".repeat(100)).is_log() {
                lines += 1;
            }
            lines += l.flush(now).len() as u64;
        }
        lines += l.flush(t0 + Duration::from_secs(20)).len() as u64;
        // Two windows at most: each ≤ global_burst + max_summaries + 1.
        let per_window = u64::from(c.global_burst) + c.max_summaries as u64 + 1;
        assert!(lines <= 2 * per_window, "{lines} lines");
        assert!(l.peers() <= c.max_peers);
    }

    #[test]
    fn details_are_cut_and_thousands_grouped() {
        assert_eq!(cut("abcdef".into(), 3), "abc…");
        assert_eq!(cut("ああ".into(), 4), "あ…");
        assert_eq!(Thousands(0).to_string(), "0");
        assert_eq!(Thousands(999).to_string(), "999");
        assert_eq!(Thousands(1_000).to_string(), "1,000");
        assert_eq!(Thousands(1_234_567).to_string(), "1,234,567");
    }
}
