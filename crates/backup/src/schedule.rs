//! When a PBX ships a backup: a pure function of the time, the daily slot and what the database
//! remembers of earlier attempts (sans-IO: no clock read here, unit-tested on a fake clock).
//!
//! A slot (the daily time in the report time zone) is due once it has passed and nothing was
//! shipped since it (nor since the pairing: a slot before the pairing is not owed). A failed
//! attempt, scheduled or on demand, is retried after a backoff that doubles from
//! [`FIRST_RETRY`] up to [`MAX_RETRY`], until one succeeds.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Wait before the first retry.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);
/// Longest wait between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Parses a daily time: `HH:MM` or `HH:MM:SS`; empty means on demand only.
pub fn parse_daily_at(s: &str) -> Result<Option<NaiveTime>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .map(Some)
        .map_err(|_| format!("{s:?} is not a time of day (HH:MM or HH:MM:SS)"))
}

/// The wait after `failures` failed attempts in a row (1 → [`FIRST_RETRY`]).
pub fn backoff(failures: i64) -> Duration {
    let n = failures.clamp(1, 20) as u32 - 1;
    FIRST_RETRY.saturating_mul(1u32 << n.min(16)).min(MAX_RETRY)
}

/// The latest slot at or before `now`, in zone `tz`.
pub fn last_slot(now: DateTime<Utc>, at: NaiveTime, tz: Tz) -> Option<DateTime<Utc>> {
    let local_day = now.with_timezone(&tz).date_naive();
    for back in 0..=2u64 {
        let day = local_day.checked_sub_days(Days::new(back))?;
        // A time skipped by a DST change has no instant: take the next day's instead.
        if let Some(t) = tz.from_local_datetime(&day.and_time(at)).earliest() {
            let t = t.with_timezone(&Utc);
            if t <= now {
                return Some(t);
            }
        }
    }
    None
}

/// The next slot after `now`.
pub fn next_slot(now: DateTime<Utc>, at: NaiveTime, tz: Tz) -> Option<DateTime<Utc>> {
    let local_day = now.with_timezone(&tz).date_naive();
    for ahead in 0..=2u64 {
        let day = local_day.checked_add_days(Days::new(ahead))?;
        if let Some(t) = tz.from_local_datetime(&day.and_time(at)).earliest() {
            let t = t.with_timezone(&Utc);
            if t > now {
                return Some(t);
            }
        }
    }
    None
}

/// What the decision needs from the database's shipping row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Paired with a backup server.
    pub paired: bool,
    /// When the pairing was made.
    pub paired_at: Option<DateTime<Utc>>,
    /// Daily time, if scheduled.
    pub daily_at: Option<NaiveTime>,
    /// Last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last success.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub failures: i64,
}

/// Whether a backup should be shipped at `now`.
pub fn due(now: DateTime<Utc>, tz: Tz, p: &Plan) -> bool {
    if !p.paired {
        return false;
    }
    if p.failures > 0 {
        let Some(last) = p.last_attempt_at else {
            return true;
        };
        let wait = chrono::TimeDelta::from_std(backoff(p.failures)).unwrap_or_default();
        return now >= last + wait;
    }
    let Some(at) = p.daily_at else {
        return false;
    };
    let Some(slot) = last_slot(now, at, tz) else {
        return false;
    };
    let since = p.last_success_at.max(p.paired_at);
    since.is_none_or(|s| s < slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn plan(daily: &str) -> Plan {
        Plan {
            paired: true,
            paired_at: Some(t("2026-03-01T00:00:00Z")),
            daily_at: parse_daily_at(daily).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_daily_at("").unwrap(), None);
        assert_eq!(
            parse_daily_at("02:30").unwrap(),
            NaiveTime::from_hms_opt(2, 30, 0)
        );
        assert_eq!(
            parse_daily_at(" 23:59:58 ").unwrap(),
            NaiveTime::from_hms_opt(23, 59, 58)
        );
        assert!(parse_daily_at("25:00").is_err());
        assert!(parse_daily_at("noon").is_err());
    }

    #[test]
    fn a_slot_is_due_once_it_passed_and_until_shipped() {
        let mut p = plan("02:00");
        let tz = chrono_tz::UTC;
        assert!(!due(t("2026-03-05T01:59:59Z"), tz, &{
            let mut q = p;
            q.last_success_at = Some(t("2026-03-04T02:00:05Z"));
            q
        }));
        p.last_success_at = Some(t("2026-03-04T02:00:05Z"));
        assert!(due(t("2026-03-05T02:00:00Z"), tz, &p));
        assert!(
            due(t("2026-03-05T09:00:00Z"), tz, &p),
            "missed while down: owed"
        );
        p.last_success_at = Some(t("2026-03-05T02:00:03Z"));
        assert!(!due(t("2026-03-05T09:00:00Z"), tz, &p));
        assert!(due(t("2026-03-06T02:00:00Z"), tz, &p));
    }

    #[test]
    fn slots_before_pairing_are_not_owed() {
        let mut p = plan("02:00");
        p.paired_at = Some(t("2026-03-05T10:00:00Z"));
        assert!(!due(t("2026-03-05T12:00:00Z"), chrono_tz::UTC, &p));
        assert!(due(t("2026-03-06T02:00:00Z"), chrono_tz::UTC, &p));
    }

    #[test]
    fn the_slot_is_in_the_report_time_zone() {
        let tz: Tz = "Asia/Tokyo".parse().unwrap();
        let p = plan("02:00");
        // 02:00 in Tokyo is 17:00 UTC the day before.
        assert!(!due(t("2026-03-04T16:59:59Z"), tz, &{
            let mut q = p;
            q.last_success_at = Some(t("2026-03-03T17:00:01Z"));
            q
        }));
        assert_eq!(
            last_slot(
                t("2026-03-04T17:00:00Z"),
                NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
                tz
            ),
            Some(t("2026-03-04T17:00:00Z"))
        );
        assert_eq!(
            next_slot(
                t("2026-03-04T17:00:00Z"),
                NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
                tz
            ),
            Some(t("2026-03-05T17:00:00Z"))
        );
    }

    #[test]
    fn failures_are_retried_with_backoff() {
        let mut p = plan("");
        p.failures = 1;
        p.last_attempt_at = Some(t("2026-03-05T10:00:00Z"));
        assert!(!due(t("2026-03-05T10:00:29Z"), chrono_tz::UTC, &p));
        assert!(due(t("2026-03-05T10:00:30Z"), chrono_tz::UTC, &p));
        p.failures = 3;
        assert!(!due(t("2026-03-05T10:01:59Z"), chrono_tz::UTC, &p));
        assert!(due(t("2026-03-05T10:02:00Z"), chrono_tz::UTC, &p));
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(40), MAX_RETRY);
        assert_eq!(backoff(0), FIRST_RETRY);
    }

    #[test]
    fn nothing_without_a_pairing_or_a_schedule() {
        let mut p = plan("02:00");
        p.paired = false;
        assert!(!due(t("2026-03-06T02:00:00Z"), chrono_tz::UTC, &p));
        let p = plan("");
        assert!(!due(t("2026-03-06T02:00:00Z"), chrono_tz::UTC, &p));
    }

    #[test]
    fn a_skipped_local_time_takes_the_next_instant() {
        // 02:30 does not exist in New York on 2026-03-08 (clocks jump 02:00 → 03:00).
        let tz: Tz = "America/New_York".parse().unwrap();
        let at = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let s = next_slot(t("2026-03-08T05:00:00Z"), at, tz).unwrap();
        assert_eq!(s, t("2026-03-09T06:30:00Z"));
    }
}
