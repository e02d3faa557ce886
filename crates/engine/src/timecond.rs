//! Time conditions (`timecond:NAME`): "is the office open now?" decided from weekly
//! schedules, date rules and a holiday calendar in the tenant's time zone, with a manual
//! override (force day / force night / automatic) that the phone toggles by feature code
//! (`*28` + the condition's index) or the panel sets.
//!
//! Pure: the time is an input (`SystemTime`), so `denwa route test --at` and the fake-clock
//! tests see exactly what a call would. Order of evaluation: the override, then date rules
//! (first match wins), then the holiday calendar (a holiday is closed), then the weekly
//! schedule. "Day" (open) sends the call to the `matched` destination, "night" to `unmatched`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::dialplan::Destination;

/// Most weekly ranges, date rules or holidays one object holds (network input is bounded).
pub const MAX_RULES: usize = 500;

/// The manual override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Follow the schedule.
    #[default]
    Auto,
    /// Always open (the matched destination).
    Day,
    /// Always closed (the unmatched destination).
    Night,
}

impl Mode {
    /// The stored/shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Day => "day",
            Mode::Night => "night",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim() {
            "auto" => Ok(Mode::Auto),
            "day" => Ok(Mode::Day),
            "night" => Ok(Mode::Night),
            other => Err(format!("mode {other:?}: use auto, day or night")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Days of the week as a bit set (bit 0 Monday … bit 6 Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days(pub u8);

impl Days {
    /// True when `d` is in the set.
    pub fn has(self, d: Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl FromStr for Days {
    type Err = String;
    /// `mon-fri`, `sat,sun`, `mon,wed-fri`.
    fn from_str(s: &str) -> Result<Days, String> {
        let idx = |n: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(n.trim()))
                .ok_or_else(|| format!("day {n:?}: use mon, tue, wed, thu, fri, sat, sun"))
        };
        let mut bits = 0u8;
        for part in s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (idx(a)?, idx(b)?);
                    if a > b {
                        return Err(format!("day range {part:?} runs backwards (mon..sun)"));
                    }
                    for i in a..=b {
                        bits |= 1 << i;
                    }
                }
                None => bits |= 1 << idx(part)?,
            }
        }
        Ok(Days(bits))
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Runs of three days or more as ranges: `mon-fri`, `mon,wed-fri`, `sat,sun`.
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < 7 {
            if self.0 & (1 << i) == 0 {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < 7 && self.0 & (1 << (i + 1)) != 0 {
                i += 1;
            }
            match i - start {
                0 => parts.push(DAY_NAMES[start].into()),
                1 => parts.extend([DAY_NAMES[start].into(), DAY_NAMES[i].into()]),
                _ => parts.push(format!("{}-{}", DAY_NAMES[start], DAY_NAMES[i])),
            }
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// Minutes since midnight from `HH:MM` (`24:00` allowed as an end).
fn parse_hm(s: &str) -> Result<u16, String> {
    let bad = || format!("time {s:?}: use HH:MM (00:00 to 24:00)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Open on these days between these times. An end before the start runs past midnight into
/// the next day (`mon 22:00-06:00` is Monday night to Tuesday morning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyRange {
    /// Days the range starts on.
    pub days: Days,
    /// Start, minutes after midnight.
    pub start: u16,
    /// End (exclusive), minutes after midnight.
    pub end: u16,
}

impl WeeklyRange {
    fn matches(&self, day: Weekday, minute: u16) -> bool {
        if self.start < self.end {
            self.days.has(day) && minute >= self.start && minute < self.end
        } else {
            (self.days.has(day) && minute >= self.start)
                || (self.days.has(day.pred()) && minute < self.end)
        }
    }
}

impl FromStr for WeeklyRange {
    type Err = String;
    /// `mon-fri 09:00-17:00`.
    fn from_str(s: &str) -> Result<WeeklyRange, String> {
        let (days, times) = s.trim().split_once(' ').ok_or_else(|| {
            format!("weekly range {s:?}: use DAYS HH:MM-HH:MM, e.g. mon-fri 09:00-17:00")
        })?;
        let (a, b) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("weekly range {s:?}: times as HH:MM-HH:MM"))?;
        let (start, end) = (parse_hm(a)?, parse_hm(b)?);
        if start == end {
            return Err(format!("weekly range {s:?} is empty (start equals end)"));
        }
        if start == 24 * 60 {
            return Err(format!("weekly range {s:?} cannot start at 24:00"));
        }
        Ok(WeeklyRange {
            days: days.parse()?,
            start,
            end,
        })
    }
}

impl fmt::Display for WeeklyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            self.days,
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Whole days (inclusive) that are open or closed whatever the weekly schedule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRule {
    /// First day.
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// Open (day) or closed (night).
    pub open: bool,
}

impl FromStr for DateRule {
    type Err = String;
    /// `2026-12-29..2027-01-03 closed`, `2026-05-02 open`.
    fn from_str(s: &str) -> Result<DateRule, String> {
        let usage = || format!("date rule {s:?}: use YYYY-MM-DD[..YYYY-MM-DD] open|closed");
        let (range, state) = s.trim().rsplit_once(' ').ok_or_else(usage)?;
        let open = match state {
            "open" => true,
            "closed" => false,
            _ => return Err(usage()),
        };
        let date = |d: &str| {
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|_| format!("date {d:?}: use YYYY-MM-DD"))
        };
        let (from, to) = match range.split_once("..") {
            Some((a, b)) => (date(a)?, date(b)?),
            None => (date(range)?, date(range)?),
        };
        if to < from {
            return Err(format!("date rule {s:?} ends before it starts"));
        }
        Ok(DateRule { from, to, open })
    }
}

impl fmt::Display for DateRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.open { "open" } else { "closed" };
        if self.from == self.to {
            write!(f, "{} {state}", self.from)
        } else {
            write!(f, "{}..{} {state}", self.from, self.to)
        }
    }
}

/// One holiday of a calendar: a date, or a month and day every year from that date on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    /// The date (the first year, when yearly).
    pub date: NaiveDate,
    /// Repeats every year on the same month and day.
    pub yearly: bool,
    /// What it is.
    pub name: String,
}

/// A tenant's holiday calendar: Japanese national holidays (by rule) if on, plus added days,
/// minus removed days.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    /// Japanese national holidays computed by rule.
    pub japan: bool,
    /// Extra holidays (added by hand or imported from iCalendar).
    pub added: Vec<Holiday>,
    /// Days that are not holidays after all.
    pub removed: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// The holiday on `d`, if any (its name).
    pub fn holiday(&self, d: NaiveDate) -> Option<String> {
        if self.removed.contains(&d) {
            return None;
        }
        if let Some(h) = self.added.iter().find(|h| {
            h.date == d
                || (h.yearly
                    && d.year() > h.date.year()
                    && d.month() == h.date.month()
                    && d.day() == h.date.day())
        }) {
            return Some(h.name.clone());
        }
        if self.japan {
            return japan::holiday(d).map(str::to_string);
        }
        None
    }
}

/// A time condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCond {
    /// Name (`timecond:NAME`).
    pub name: String,
    /// Number after the day/night feature code (`*28` + index); 0: none.
    pub index: u8,
    /// Open hours.
    pub weekly: Vec<WeeklyRange>,
    /// Date rules, first match wins.
    pub dates: Vec<DateRule>,
    /// Holidays of the tenant's calendar are closed.
    pub use_holidays: bool,
    /// Where calls go when open.
    pub matched: Destination,
    /// Where calls go when closed.
    pub unmatched: Destination,
    /// Manual override.
    pub mode: Mode,
}

/// Open or closed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    /// Open (the matched destination).
    pub open: bool,
    /// What decided it.
    pub why: String,
}

impl TimeCond {
    /// The state at `at` in zone `tz`, with `cal` for holidays.
    pub fn state(&self, at: SystemTime, tz: Tz, cal: &Calendar) -> State {
        match self.mode {
            Mode::Day => {
                return State {
                    open: true,
                    why: "forced day".into(),
                };
            }
            Mode::Night => {
                return State {
                    open: false,
                    why: "forced night".into(),
                };
            }
            Mode::Auto => {}
        }
        let local = DateTime::<Utc>::from(at).with_timezone(&tz);
        let date = local.date_naive();
        let stamp = local.format("%Y-%m-%d %H:%M %Z");
        if let Some(r) = self.dates.iter().find(|r| r.from <= date && date <= r.to) {
            return State {
                open: r.open,
                why: format!("{stamp}: date rule {r}"),
            };
        }
        if self.use_holidays
            && let Some(name) = cal.holiday(date)
        {
            return State {
                open: false,
                why: format!("{stamp}: holiday ({name})"),
            };
        }
        let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
        match self
            .weekly
            .iter()
            .find(|r| r.matches(local.weekday(), minute))
        {
            Some(r) => State {
                open: true,
                why: format!("{stamp}: within {r}"),
            },
            None => State {
                open: false,
                why: format!("{stamp}: outside the weekly schedule"),
            },
        }
    }

    /// Where a call goes in `state`.
    pub fn destination(&self, state: &State) -> &Destination {
        if state.open {
            &self.matched
        } else {
            &self.unmatched
        }
    }
}

/// Parses a time zone name (`Asia/Tokyo`, `UTC`).
pub fn parse_tz(s: &str) -> Result<Tz, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("time zone {s:?}: use an IANA name such as Asia/Tokyo or UTC"))
}

/// Japanese national holidays (国民の祝日に関する法律) by rule, as in force since 2020 (the
/// Emperor's Birthday on 23 February); 2020 and 2021 Olympic moves are included. Equinoxes by
/// the usual formula valid 1980–2099.
pub mod japan {
    use chrono::{Datelike, NaiveDate, Weekday};

    /// The holiday on `d` (Japanese name), including substitute (振替休日) and citizens'
    /// holidays (国民の休日).
    pub fn holiday(d: NaiveDate) -> Option<&'static str> {
        if let Some(n) = named(d) {
            return Some(n);
        }
        // Substitute holiday: a holiday on Sunday moves to the next day that is no holiday.
        let mut p = d.pred_opt()?;
        while named(p).is_some() {
            if p.weekday() == Weekday::Sun {
                return Some("振替休日");
            }
            p = p.pred_opt()?;
        }
        // A day between two holidays is a holiday.
        if d.weekday() != Weekday::Sun
            && named(d.pred_opt()?).is_some()
            && named(d.succ_opt()?).is_some()
        {
            return Some("国民の休日");
        }
        None
    }

    /// Every holiday of `year`, in order.
    pub fn year(year: i32) -> Vec<(NaiveDate, &'static str)> {
        let mut out = Vec::new();
        let Some(mut d) = NaiveDate::from_ymd_opt(year, 1, 1) else {
            return out;
        };
        while d.year() == year {
            if let Some(n) = holiday(d) {
                out.push((d, n));
            }
            let Some(next) = d.succ_opt() else { break };
            d = next;
        }
        out
    }

    /// The `n`th Monday of a month.
    fn nth_monday(year: i32, month: u32, n: u32) -> u32 {
        let first = NaiveDate::from_ymd_opt(year, month, 1)
            .map(|d| d.weekday().num_days_from_monday())
            .unwrap_or(0);
        1 + (7 - first) % 7 + 7 * (n - 1)
    }

    /// Day of March of the vernal equinox.
    fn vernal(year: i32) -> u32 {
        equinox(20_843_100, year)
    }

    /// Day of September of the autumnal equinox.
    fn autumnal(year: i32) -> u32 {
        equinox(23_248_800, year)
    }

    fn equinox(base_micro: i64, year: i32) -> u32 {
        let y = i64::from(year) - 1980;
        let day = (base_micro + 242_194 * y).div_euclid(1_000_000) - y.div_euclid(4);
        u32::try_from(day).unwrap_or(20)
    }

    /// Holidays named by the law (no substitutes).
    fn named(d: NaiveDate) -> Option<&'static str> {
        let (y, m, day) = (d.year(), d.month(), d.day());
        if y < 1980 {
            return None;
        }
        Some(match (m, day) {
            (1, 1) => "元日",
            (1, x) if x == nth_monday(y, 1, 2) => "成人の日",
            (2, 11) => "建国記念の日",
            (2, 23) if y >= 2020 => "天皇誕生日",
            (3, x) if x == vernal(y) => "春分の日",
            (4, 29) => "昭和の日",
            (5, 3) => "憲法記念日",
            (5, 4) => "みどりの日",
            (5, 5) => "こどもの日",
            (7, 23) if y == 2020 => "海の日",
            (7, 22) if y == 2021 => "海の日",
            (7, x) if y != 2020 && y != 2021 && x == nth_monday(y, 7, 3) => "海の日",
            (8, 10) if y == 2020 => "山の日",
            (8, 8) if y == 2021 => "山の日",
            (8, 11) if y != 2020 && y != 2021 => "山の日",
            (9, x) if x == nth_monday(y, 9, 3) => "敬老の日",
            (9, x) if x == autumnal(y) => "秋分の日",
            (7, 24) if y == 2020 => "スポーツの日",
            (7, 23) if y == 2021 => "スポーツの日",
            (10, x) if y != 2020 && y != 2021 && x == nth_monday(y, 10, 2) => "スポーツの日",
            (11, 3) => "文化の日",
            (11, 23) => "勤労感謝の日",
            _ => return None,
        })
    }
}

/// Why an iCalendar file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcalError {
    /// Not a VCALENDAR.
    #[error("not an iCalendar file: no BEGIN:VCALENDAR")]
    NotCalendar,
    /// An event that is not all-day.
    #[error(
        "line {line}: event {summary:?} is not all-day (DTSTART must be VALUE=DATE, YYYYMMDD); only all-day holidays are imported"
    )]
    NotAllDay {
        /// Line number (1-based).
        line: usize,
        /// The event's SUMMARY.
        summary: String,
    },
    /// A repeat rule other than plain yearly.
    #[error(
        "line {line}: RRULE {rule:?} is not supported: only FREQ=YEARLY (optionally with INTERVAL=1, COUNT or UNTIL ignored) is"
    )]
    Rrule {
        /// Line number.
        line: usize,
        /// The rule.
        rule: String,
    },
    /// A bad date.
    #[error("line {line}: bad date {value:?} (YYYYMMDD expected)")]
    Date {
        /// Line number.
        line: usize,
        /// The value.
        value: String,
    },
    /// An event without DTSTART.
    #[error("event {0:?} has no DTSTART")]
    NoStart(String),
    /// Too many events.
    #[error("more than {MAX_RULES} holidays")]
    TooMany,
}

/// Reads the all-day events of an iCalendar file (RFC 5545) as holidays. Multi-day events
/// (DTEND after the next day) give one holiday per day (at most 31); `RRULE:FREQ=YEARLY`
/// repeats the day every year.
pub fn import_ical(text: &str) -> Result<Vec<Holiday>, IcalError> {
    // Unfold continuation lines (a line starting with a space or tab continues the previous).
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some((_, last)) = lines.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        lines.push((i + 1, raw.to_string()));
    }
    if !lines
        .iter()
        .any(|(_, l)| l.eq_ignore_ascii_case("BEGIN:VCALENDAR"))
    {
        return Err(IcalError::NotCalendar);
    }
    struct Ev {
        start: Option<(usize, NaiveDate)>,
        end: Option<NaiveDate>,
        yearly: bool,
        summary: String,
        start_line: Option<(usize, String)>,
    }
    let mut out = Vec::new();
    let mut ev: Option<Ev> = None;
    for (n, line) in &lines {
        let (n, line) = (*n, line.as_str());
        let Some((name_params, value)) = line.split_once(':') else {
            continue;
        };
        let mut parts = name_params.split(';');
        let name = parts.next().unwrap_or("").to_ascii_uppercase();
        let params: Vec<String> = parts.map(str::to_ascii_uppercase).collect();
        match (name.as_str(), value) {
            ("BEGIN", v) if v.eq_ignore_ascii_case("VEVENT") => {
                ev = Some(Ev {
                    start: None,
                    end: None,
                    yearly: false,
                    summary: String::new(),
                    start_line: None,
                });
            }
            ("END", v) if v.eq_ignore_ascii_case("VEVENT") => {
                let Some(e) = ev.take() else { continue };
                if let Some((line, raw)) = e.start_line {
                    return Err(IcalError::NotAllDay {
                        line,
                        summary: if e.summary.is_empty() { raw } else { e.summary },
                    });
                }
                let Some((_, start)) = e.start else {
                    return Err(IcalError::NoStart(e.summary));
                };
                let days = e
                    .end
                    .map(|end| (end - start).num_days().clamp(1, 31))
                    .unwrap_or(1);
                let mut d = start;
                for _ in 0..days {
                    if out.len() >= MAX_RULES {
                        return Err(IcalError::TooMany);
                    }
                    out.push(Holiday {
                        date: d,
                        yearly: e.yearly,
                        name: e.summary.clone(),
                    });
                    match d.succ_opt() {
                        Some(x) => d = x,
                        None => break,
                    }
                }
            }
            ("DTSTART", v) | ("DTEND", v) => {
                let Some(e) = ev.as_mut() else { continue };
                let all_day = params.iter().any(|p| p == "VALUE=DATE") || v.trim().len() == 8;
                if !all_day {
                    if name == "DTSTART" {
                        e.start_line = Some((n, v.to_string()));
                    }
                    continue;
                }
                let date =
                    NaiveDate::parse_from_str(v.trim(), "%Y%m%d").map_err(|_| IcalError::Date {
                        line: n,
                        value: v.to_string(),
                    })?;
                if name == "DTSTART" {
                    e.start = Some((n, date));
                } else {
                    e.end = Some(date);
                }
            }
            ("SUMMARY", v) => {
                if let Some(e) = ev.as_mut() {
                    e.summary = v.replace("\\,", ",").replace("\\;", ";");
                }
            }
            ("RRULE", v) => {
                let Some(e) = ev.as_mut() else { continue };
                let mut yearly = false;
                for p in v.split(';') {
                    let (k, val) = p.split_once('=').unwrap_or((p, ""));
                    match (k.to_ascii_uppercase().as_str(), val) {
                        ("FREQ", f) if f.eq_ignore_ascii_case("YEARLY") => yearly = true,
                        ("INTERVAL", "1") | ("COUNT", _) | ("UNTIL", _) | ("WKST", _) => {}
                        _ => {
                            return Err(IcalError::Rrule {
                                line: n,
                                rule: v.to_string(),
                            });
                        }
                    }
                }
                if !yearly {
                    return Err(IcalError::Rrule {
                        line: n,
                        rule: v.to_string(),
                    });
                }
                e.yearly = true;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn at(s: &str) -> SystemTime {
        let t = DateTime::parse_from_rfc3339(s).expect("rfc3339");
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).expect("pos"))
    }

    fn days(list: &[(NaiveDate, &str)]) -> Vec<String> {
        list.iter()
            .map(|(d, _)| d.format("%m-%d").to_string())
            .collect()
    }

    #[test]
    fn japanese_holidays_2025_and_2026_in_full() {
        // Cabinet Office list (内閣府「国民の祝日について」).
        assert_eq!(
            days(&japan::year(2025)),
            [
                "01-01", "01-13", "02-11", "02-23", "02-24", "03-20", "04-29", "05-03", "05-04",
                "05-05", "05-06", "07-21", "08-11", "09-15", "09-23", "10-13", "11-03", "11-23",
                "11-24"
            ]
        );
        assert_eq!(
            days(&japan::year(2026)),
            [
                "01-01", "01-12", "02-11", "02-23", "03-20", "04-29", "05-03", "05-04", "05-05",
                "05-06", "07-20", "08-11", "09-21", "09-22", "09-23", "10-12", "11-03", "11-23"
            ]
        );
        assert_eq!(japan::holiday(d(2026, 9, 22)), Some("国民の休日"));
        assert_eq!(japan::holiday(d(2025, 2, 24)), Some("振替休日"));
    }

    #[test]
    fn japanese_holidays_2027_to_2030() {
        assert_eq!(
            days(&japan::year(2027)),
            [
                "01-01", "01-11", "02-11", "02-23", "03-21", "03-22", "04-29", "05-03", "05-04",
                "05-05", "07-19", "08-11", "09-20", "09-23", "10-11", "11-03", "11-23"
            ]
        );
        // Equinoxes (国立天文台 暦要項 / the usual formula).
        let eq = |y| {
            japan::year(y)
                .into_iter()
                .filter(|(_, n)| n.contains("分の日"))
                .map(|(d, _)| d)
                .collect::<Vec<_>>()
        };
        assert_eq!(eq(2028), [d(2028, 3, 20), d(2028, 9, 22)]);
        assert_eq!(eq(2029), [d(2029, 3, 20), d(2029, 9, 23)]);
        assert_eq!(eq(2030), [d(2030, 3, 20), d(2030, 9, 23)]);
        // 2029: autumnal equinox on Sunday, Monday the 24th is the substitute.
        assert_eq!(japan::holiday(d(2029, 9, 24)), Some("振替休日"));
        // 2028: Golden Week falls Wednesday to Friday, no substitute.
        assert_eq!(japan::holiday(d(2028, 5, 6)), None);
        // 2030: 5 May is a Sunday, the 6th a substitute.
        assert_eq!(japan::holiday(d(2030, 5, 6)), Some("振替休日"));
        for y in 2025..=2030 {
            let n = japan::year(y).len();
            assert!((16..=20).contains(&n), "{y}: {n} holidays");
        }
    }

    #[test]
    fn calendar_edits_add_and_remove() {
        let mut c = Calendar {
            japan: true,
            ..Calendar::default()
        };
        assert!(c.holiday(d(2026, 1, 1)).is_some());
        c.removed.insert(d(2026, 1, 1));
        assert_eq!(c.holiday(d(2026, 1, 1)), None);
        c.added.push(Holiday {
            date: d(2026, 12, 29),
            yearly: true,
            name: "year-end".into(),
        });
        assert_eq!(c.holiday(d(2027, 12, 29)).as_deref(), Some("year-end"));
        assert_eq!(
            c.holiday(d(2025, 12, 29)),
            None,
            "yearly starts at its date"
        );
    }

    fn office() -> TimeCond {
        TimeCond {
            name: "office".into(),
            index: 1,
            weekly: vec!["mon-fri 09:00-17:00".parse().expect("range")],
            dates: vec![],
            use_holidays: true,
            matched: Destination::Ext("1001".into()),
            unmatched: Destination::Vm("1001".into()),
            mode: Mode::Auto,
        }
    }

    #[test]
    fn weekly_schedule_in_tokyo() {
        let tz = parse_tz("Asia/Tokyo").expect("tz");
        let cal = Calendar {
            japan: true,
            ..Calendar::default()
        };
        let t = office();
        // Tue 2026-12-08 10:00 JST = 01:00 UTC.
        assert!(t.state(at("2026-12-08T01:00:00Z"), tz, &cal).open);
        // 17:00 JST: closed (end exclusive).
        assert!(!t.state(at("2026-12-08T08:00:00Z"), tz, &cal).open);
        // Saturday.
        assert!(!t.state(at("2026-12-12T01:00:00Z"), tz, &cal).open);
        // Monday 2026-09-21 敬老の日: holiday, closed, and says so.
        let s = t.state(at("2026-09-21T01:00:00Z"), tz, &cal);
        assert!(!s.open);
        assert!(s.why.contains("敬老の日"), "{}", s.why);
        assert_eq!(t.destination(&s), &Destination::Vm("1001".into()));
    }

    #[test]
    fn schedule_across_midnight() {
        let tz = parse_tz("UTC").expect("tz");
        let cal = Calendar::default();
        let mut t = office();
        t.weekly = vec!["fri 22:00-06:00".parse().expect("range")];
        t.use_holidays = false;
        assert!(
            t.state(at("2026-12-11T23:30:00Z"), tz, &cal).open,
            "Fri 23:30"
        );
        assert!(
            t.state(at("2026-12-12T05:59:00Z"), tz, &cal).open,
            "Sat 05:59"
        );
        assert!(
            !t.state(at("2026-12-12T06:00:00Z"), tz, &cal).open,
            "Sat 06:00"
        );
        assert!(
            !t.state(at("2026-12-12T23:30:00Z"), tz, &cal).open,
            "Sat 23:30"
        );
        assert!(
            !t.state(at("2026-12-11T05:00:00Z"), tz, &cal).open,
            "Fri 05:00"
        );
        t.weekly = vec!["mon-fri 00:00-24:00".parse().expect("whole day")];
        assert!(t.state(at("2026-12-11T23:59:00Z"), tz, &cal).open);
    }

    #[test]
    fn daylight_saving_follows_local_time() {
        let tz = parse_tz("America/New_York").expect("tz");
        let cal = Calendar::default();
        let t = office();
        // 13:30 UTC is 08:30 EST in winter (closed), 09:30 EDT after 8 March 2026 (open).
        assert!(!t.state(at("2026-03-06T13:30:00Z"), tz, &cal).open);
        assert!(t.state(at("2026-03-09T13:30:00Z"), tz, &cal).open);
        // Europe/London autumn: 08:30 UTC is 09:30 BST (open) on Fri 23 Oct, 08:30 GMT on 30 Oct.
        let lon = parse_tz("Europe/London").expect("tz");
        assert!(t.state(at("2026-10-23T08:30:00Z"), lon, &cal).open);
        assert!(!t.state(at("2026-10-30T08:30:00Z"), lon, &cal).open);
    }

    #[test]
    fn date_rules_and_override() {
        let tz = parse_tz("Asia/Tokyo").expect("tz");
        let cal = Calendar {
            japan: true,
            ..Calendar::default()
        };
        let mut t = office();
        t.dates = vec![
            "2026-12-29..2027-01-03 closed".parse().expect("rule"),
            "2026-09-21 open".parse().expect("rule"),
        ];
        assert!(
            !t.state(at("2026-12-29T01:00:00Z"), tz, &cal).open,
            "year-end"
        );
        assert!(
            t.state(at("2026-09-21T01:00:00Z"), tz, &cal).open,
            "open on a holiday"
        );
        t.mode = Mode::Night;
        let s = t.state(at("2026-12-08T01:00:00Z"), tz, &cal);
        assert!(!s.open);
        assert_eq!(s.why, "forced night");
        t.mode = Mode::Day;
        assert!(t.state(at("2026-12-12T01:00:00Z"), tz, &cal).open);
    }

    #[test]
    fn bad_schedule_text_is_refused_precisely() {
        let e = "mon-fri 9-17".parse::<WeeklyRange>().expect_err("bad");
        assert!(e.contains("HH:MM"), "{e}");
        let e = "fri-mon 09:00-10:00"
            .parse::<WeeklyRange>()
            .expect_err("bad");
        assert!(e.contains("backwards"), "{e}");
        let e = "mon 10:00-10:00".parse::<WeeklyRange>().expect_err("bad");
        assert!(e.contains("empty"), "{e}");
        let e = "2026-01-05..2026-01-01 open"
            .parse::<DateRule>()
            .expect_err("bad");
        assert!(e.contains("before"), "{e}");
        assert!("2026-13-01 open".parse::<DateRule>().is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(
            "mon,wed-fri 08:30-24:00"
                .parse::<WeeklyRange>()
                .expect("ok")
                .to_string(),
            "mon,wed-fri 08:30-24:00"
        );
    }

    #[test]
    fn ical_import() {
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261226\r\nSUMMARY:Christmas\r\n  Day\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261229\r\nDTEND;VALUE=DATE:20261231\r\nSUMMARY:Shutdown\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let h = import_ical(ics).expect("import");
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].name, "Christmas Day");
        assert!(h[0].yearly);
        assert_eq!(h[2].date, d(2026, 12, 30));
        let cal = Calendar {
            japan: false,
            added: h,
            removed: BTreeSet::new(),
        };
        assert!(cal.holiday(d(2030, 12, 25)).is_some());
        assert!(cal.holiday(d(2027, 12, 29)).is_none(), "not yearly");

        let timed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261225T090000Z\nSUMMARY:Party\nEND:VEVENT\nEND:VCALENDAR\n";
        assert_eq!(
            import_ical(timed),
            Err(IcalError::NotAllDay {
                line: 3,
                summary: "Party".into()
            })
        );
        let monthly = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=MONTHLY\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(matches!(
            import_ical(monthly),
            Err(IcalError::Rrule { line: 4, .. })
        ));
        let byday = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=YEARLY;BYMONTH=1;BYDAY=2MO\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(matches!(import_ical(byday), Err(IcalError::Rrule { .. })));
        assert_eq!(import_ical("hello"), Err(IcalError::NotCalendar));
        let bad = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:2026-01-01\nEND:VEVENT\nEND:VCALENDAR\n";
        assert!(matches!(
            import_ical(bad),
            Err(IcalError::Date { line: 3, .. })
        ));
    }
}

/// Most time conditions followed for one call (one may name another).
const MAX_HOPS: usize = 8;

/// The dialplan's answer for `dest`: a time condition is followed (through chained ones, at
/// most [`MAX_HOPS`]) to the destination it picks at `at`, and the reason says why.
pub fn route_to(
    tenant: i64,
    dest: Destination,
    reason: String,
    at: SystemTime,
    snap: &crate::config::Snapshot,
) -> crate::dialplan::Decision {
    use crate::dialplan::Decision;
    let mut dest = dest;
    let mut reason = reason;
    for _ in 0..MAX_HOPS {
        let Destination::Timecond(name) = &dest else {
            if dest == Destination::Hangup {
                return Decision::Reject {
                    status: 603,
                    reason: "Declined".into(),
                };
            }
            return Decision::Route {
                destination: dest,
                reason,
            };
        };
        let Some(tc) = snap.codes.timeconds.get(&(tenant, name.clone())) else {
            return Decision::Reject {
                status: 404,
                reason: format!("no time condition {name}"),
            };
        };
        let cal = snap
            .codes
            .calendars
            .get(&tenant)
            .cloned()
            .unwrap_or_default();
        let state = tc.state(snap.codes.clock(at), snap.codes.timezone(tenant), &cal);
        let next = tc.destination(&state).clone();
        reason = format!(
            "{reason}; timecond {name}: {} ({}) -> {next}",
            if state.open { "day" } else { "night" },
            state.why
        );
        dest = next;
    }
    Decision::Reject {
        status: 482,
        reason: format!("time conditions loop ({reason})"),
    }
}

/// A time condition as stored and edited (text forms of the rules, checked by
/// [`TimeCondSpec::build`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeCondSpec {
    /// Open hours, e.g. `mon-fri 09:00-18:00` (an end before the start runs past midnight).
    #[serde(default)]
    pub weekly: Vec<String>,
    /// Date rules, e.g. `2026-12-29..2027-01-03 closed`, `2026-05-02 open`.
    #[serde(default)]
    pub dates: Vec<String>,
    /// The tenant's holidays are closed.
    #[serde(default)]
    pub use_holidays: bool,
    /// Destination when open (day).
    pub matched: String,
    /// Destination when closed (night).
    pub unmatched: String,
}

impl TimeCondSpec {
    /// The condition, or the field at fault and why.
    pub fn build(
        &self,
        name: &str,
        index: u8,
        mode: Mode,
    ) -> Result<TimeCond, (&'static str, String)> {
        if self.weekly.len() > MAX_RULES || self.dates.len() > MAX_RULES {
            return Err(("weekly", format!("at most {MAX_RULES} rules")));
        }
        let weekly = self
            .weekly
            .iter()
            .map(|w| w.parse())
            .collect::<Result<Vec<WeeklyRange>, String>>()
            .map_err(|e| ("weekly", e))?;
        let dates = self
            .dates
            .iter()
            .map(|w| w.parse())
            .collect::<Result<Vec<DateRule>, String>>()
            .map_err(|e| ("dates", e))?;
        let dest = |field: &'static str, s: &str| -> Result<Destination, (&'static str, String)> {
            let d: Destination = s
                .parse()
                .map_err(|e: crate::dialplan::DestinationError| (field, e.to_string()))?;
            if d == Destination::Timecond(name.to_string()) {
                return Err((field, format!("{s} is this time condition itself")));
            }
            Ok(d)
        };
        Ok(TimeCond {
            name: name.to_string(),
            index,
            weekly,
            dates,
            use_holidays: self.use_holidays,
            matched: dest("matched", &self.matched)?,
            unmatched: dest("unmatched", &self.unmatched)?,
            mode,
        })
    }
}

/// A tenant's time zone and holiday calendar as stored and edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarSpec {
    /// IANA time zone of the tenant's time conditions.
    pub timezone: String,
    /// Japanese national holidays by rule.
    #[serde(default)]
    pub japan: bool,
    /// Extra holidays.
    #[serde(default)]
    pub added: Vec<Holiday>,
    /// Days that are no holiday after all.
    #[serde(default)]
    pub removed: Vec<NaiveDate>,
}

impl Default for CalendarSpec {
    fn default() -> Self {
        CalendarSpec {
            timezone: "UTC".into(),
            japan: false,
            added: Vec::new(),
            removed: Vec::new(),
        }
    }
}

impl CalendarSpec {
    /// The zone and calendar, or the field at fault and why.
    pub fn build(&self) -> Result<(Tz, Calendar), (&'static str, String)> {
        let tz = parse_tz(&self.timezone).map_err(|e| ("timezone", e))?;
        if self.added.len() > MAX_RULES || self.removed.len() > MAX_RULES {
            return Err(("holidays", format!("at most {MAX_RULES} days")));
        }
        if let Some(h) = self.added.iter().find(|h| h.name.chars().count() > 100) {
            return Err((
                "holidays",
                format!("name of {} longer than 100 characters", h.date),
            ));
        }
        Ok((
            tz,
            Calendar {
                japan: self.japan,
                added: self.added.clone(),
                removed: self.removed.iter().copied().collect(),
            },
        ))
    }

    /// Makes `date` a holiday (`name`, `yearly`): un-removes it, or adds it.
    pub fn add(&mut self, date: NaiveDate, name: &str, yearly: bool) {
        self.removed.retain(|d| *d != date);
        self.added.retain(|h| h.date != date);
        self.added.push(Holiday {
            date,
            yearly,
            name: name.to_string(),
        });
        self.added.sort_by_key(|h| h.date);
    }

    /// Makes `date` a working day: drops an added holiday on it, and marks it removed when
    /// the built-in calendar has a holiday then.
    pub fn remove(&mut self, date: NaiveDate) {
        self.added.retain(|h| h.date != date);
        if self.japan && japan::holiday(date).is_some() && !self.removed.contains(&date) {
            self.removed.push(date);
            self.removed.sort();
        }
    }
}
