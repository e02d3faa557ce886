//! `pike`: brute-force throttle (Kamailio's `pike`, fail2ban-style): a source address that fails
//! authentication too often is ignored for a while. Sans-IO: `now` comes in as an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of the throttle.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Failures within `window` that trigger a ban.
    pub max_failures: u32,
    /// Sliding window over which failures count.
    pub window: Duration,
    /// How long a banned source is ignored.
    pub ban: Duration,
    /// Upper bound on tracked sources (oldest entries are dropped first).
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 10,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    first: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

/// Outcome of recording one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still under the limit.
    Counted(u32),
    /// This failure crossed the limit; the source is now banned until the given instant.
    Banned,
}

/// Per-source failure counter with temporary bans.
#[derive(Debug)]
pub struct Throttle {
    cfg: ThrottleConfig,
    entries: HashMap<IpAddr, Entry>,
}

impl Throttle {
    /// A throttle with the given limits.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Throttle {
            cfg,
            entries: HashMap::new(),
        }
    }

    /// Is this source currently banned?
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        matches!(self.entries.get(&ip), Some(Entry { banned_until: Some(t), .. }) if *t > now)
    }

    /// Record an authentication failure from `ip`.
    pub fn failure(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.entries.len() >= self.cfg.max_tracked && !self.entries.contains_key(&ip) {
            self.sweep(now);
            if self.entries.len() >= self.cfg.max_tracked {
                // Still full of live entries: drop the oldest one rather than grow without bound.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.first)
                    .map(|(k, _)| *k)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        let cfg = self.cfg;
        let e = self.entries.entry(ip).or_insert(Entry {
            first: now,
            failures: 0,
            banned_until: None,
        });
        if let Some(t) = e.banned_until {
            if t > now {
                return Verdict::Banned;
            }
            *e = Entry {
                first: now,
                failures: 0,
                banned_until: None,
            };
        }
        if now.duration_since(e.first) > cfg.window {
            *e = Entry {
                first: now,
                failures: 0,
                banned_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= cfg.max_failures {
            e.banned_until = Some(now + cfg.ban);
            Verdict::Banned
        } else {
            Verdict::Counted(e.failures)
        }
    }

    /// A successful authentication clears the source's count (not an active ban).
    pub fn success(&mut self, ip: IpAddr, now: Instant) {
        if !self.is_banned(ip, now) {
            self.entries.remove(&ip);
        }
    }

    /// Forget entries whose window and ban have both passed.
    pub fn sweep(&mut self, now: Instant) {
        let cfg = self.cfg;
        self.entries.retain(|_, e| match e.banned_until {
            Some(t) => t > now,
            None => now.duration_since(e.first) <= cfg.window,
        });
    }

    /// Number of currently tracked sources.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_after_limit_and_expires() {
        let cfg = ThrottleConfig {
            max_failures: 3,
            window: Duration::from_secs(10),
            ban: Duration::from_secs(60),
            max_tracked: 10,
        };
        let mut t = Throttle::new(cfg);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(t.failure(a, now), Verdict::Counted(1));
        assert_eq!(t.failure(a, now), Verdict::Counted(2));
        assert_eq!(t.failure(a, now), Verdict::Banned);
        assert!(t.is_banned(a, now + Duration::from_secs(59)));
        assert!(!t.is_banned(ip("192.0.2.2"), now));
        assert!(!t.is_banned(a, now + Duration::from_secs(61)));
        assert_eq!(
            t.failure(a, now + Duration::from_secs(61)),
            Verdict::Counted(1)
        );
    }

    #[test]
    fn window_slides_and_success_clears() {
        let cfg = ThrottleConfig {
            max_failures: 2,
            window: Duration::from_secs(10),
            ban: Duration::from_secs(60),
            max_tracked: 10,
        };
        let mut t = Throttle::new(cfg);
        let now = Instant::now();
        let a = ip("198.51.100.7");
        assert_eq!(t.failure(a, now), Verdict::Counted(1));
        assert_eq!(
            t.failure(a, now + Duration::from_secs(11)),
            Verdict::Counted(1)
        );
        t.success(a, now + Duration::from_secs(12));
        assert_eq!(
            t.failure(a, now + Duration::from_secs(12)),
            Verdict::Counted(1)
        );
    }

    #[test]
    fn bounded_memory() {
        let cfg = ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(10),
            ban: Duration::from_secs(60),
            max_tracked: 4,
        };
        let mut t = Throttle::new(cfg);
        let now = Instant::now();
        for i in 0..100u8 {
            t.failure(
                IpAddr::from([10, 0, 0, i]),
                now + Duration::from_millis(i as u64),
            );
        }
        assert!(t.tracked() <= 4);
    }
}
