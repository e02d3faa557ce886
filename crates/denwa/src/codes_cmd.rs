//! `denwa features ...`, `denwa timecond ...` and `denwa pickup ...`: the feature code table,
//! time conditions with their holiday calendar and manual override, and pickup groups.
//! Validation is the store's (and `engine::features` / `engine::timecond`'s).

use std::io::Write;
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use engine::timecond::{CalendarSpec, Mode, TimeCondSpec};
use store::Store;

/// `denwa features` subcommands.
#[derive(Debug, Subcommand)]
pub enum FeaturesCmd {
    /// List every feature code: key, code in force, default, what it does.
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Set a feature's code (refused when it conflicts with another code or a number).
    Set {
        /// Feature key (see `denwa features list`), e.g. dnd_toggle
        feature: String,
        /// New code: 1-10 of 0-9 * #, with a * or #
        code: String,
    },
    /// Switch a feature code off (dialling it then reaches nothing).
    Off {
        /// Feature key
        feature: String,
    },
    /// Back to the default code.
    Reset {
        /// Feature key
        feature: String,
    },
}

/// A time condition's settings as flags.
#[derive(Debug, Args, Default)]
pub struct TimecondFlags {
    /// Internal number that reaches it (digits; "" for none)
    #[arg(long, value_name = "DIGITS")]
    pub number: Option<String>,
    /// Number after the day/night feature code (*28 + N), 1-99; 0 for none
    #[arg(long, value_name = "N")]
    pub index: Option<u8>,
    /// Open hours, repeatable, e.g. "mon-fri 09:00-18:00" (replaces the list when given)
    #[arg(long, value_name = "DAYS HH:MM-HH:MM")]
    pub weekly: Vec<String>,
    /// Date rule, repeatable, e.g. "2026-12-29..2027-01-03 closed" (replaces the list)
    #[arg(long, value_name = "RULE")]
    pub date: Vec<String>,
    /// Remove every date rule
    #[arg(long)]
    pub no_dates: bool,
    /// Holidays of the tenant's calendar are closed (true/false)
    #[arg(long, value_name = "BOOL")]
    pub holidays: Option<bool>,
    /// Destination when open (day), e.g. ext:1001, ivr:main, group:sales
    #[arg(long, value_name = "DEST")]
    pub matched: Option<String>,
    /// Destination when closed (night), e.g. vm:1001
    #[arg(long, value_name = "DEST")]
    pub unmatched: Option<String>,
}

/// `denwa timecond` subcommands.
#[derive(Debug, Subcommand)]
pub enum TimecondCmd {
    /// Add a time condition (calls reach it through timecond:NAME).
    Add {
        /// Name
        name: String,
        #[command(flatten)]
        flags: TimecondFlags,
    },
    /// Change a time condition's rules or destinations.
    Edit {
        /// Name
        name: String,
        #[command(flatten)]
        flags: TimecondFlags,
    },
    /// List time conditions with their state now (or at --at).
    List {
        /// RFC 3339 time to evaluate at instead of now
        #[arg(long)]
        at: Option<String>,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Set the manual override: auto (follow the schedule), day or night.
    Mode {
        /// Name
        name: String,
        /// auto, day or night
        mode: String,
    },
    /// Remove a time condition (refused while something sends callers to it).
    Remove {
        /// Name
        name: String,
    },
    /// The tenant's time zone and holiday calendar.
    #[command(subcommand)]
    Calendar(CalendarCmd),
}

/// `denwa timecond calendar` subcommands.
#[derive(Debug, Subcommand)]
pub enum CalendarCmd {
    /// Show the time zone, settings and the holidays of a year.
    Show {
        /// Year (default: this year)
        #[arg(long)]
        year: Option<i32>,
    },
    /// Set the time zone and whether Japanese national holidays apply.
    Set {
        /// IANA time zone, e.g. Asia/Tokyo
        #[arg(long)]
        timezone: Option<String>,
        /// Japanese national holidays (computed by rule) apply (true/false)
        #[arg(long, value_name = "BOOL")]
        japan: Option<bool>,
    },
    /// Make a day a holiday.
    Add {
        /// YYYY-MM-DD
        date: String,
        /// What it is
        name: String,
        /// Every year on this month and day
        #[arg(long)]
        yearly: bool,
    },
    /// Make a day a working day (also a built-in holiday).
    Remove {
        /// YYYY-MM-DD
        date: String,
    },
    /// Add the all-day events of an iCalendar file as holidays.
    Import {
        /// .ics file
        file: std::path::PathBuf,
    },
}

/// `denwa pickup` subcommands.
#[derive(Debug, Subcommand)]
pub enum PickupCmd {
    /// Set an extension's pickup groups (none: no pickup).
    Set {
        /// Extension number
        extension: String,
        /// Group names
        groups: Vec<String>,
    },
    /// List pickup groups and their members.
    List,
}

fn flag_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => match field {
            "name" | "code" | "feature" => anyhow!("{reason}"),
            "dates" => anyhow!("--date: {reason}"),
            other => anyhow!("--{}: {reason}", other.replace('_', "-")),
        },
        other => anyhow!(other),
    }
}

fn apply(spec: &mut TimeCondSpec, index: &mut u8, number: &mut String, f: &TimecondFlags) {
    if let Some(n) = &f.number {
        *number = n.clone();
    }
    if let Some(i) = f.index {
        *index = i;
    }
    if !f.weekly.is_empty() {
        spec.weekly = f.weekly.clone();
    }
    if f.no_dates {
        spec.dates.clear();
    }
    if !f.date.is_empty() {
        spec.dates = f.date.clone();
    }
    if let Some(h) = f.holidays {
        spec.use_holidays = h;
    }
    if let Some(d) = &f.matched {
        spec.matched = d.clone();
    }
    if let Some(d) = &f.unmatched {
        spec.unmatched = d.clone();
    }
}

/// Runs `denwa features ...`.
pub async fn features(
    cmd: FeaturesCmd,
    store: &Store,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        FeaturesCmd::List { json } => {
            let list = store.list_feature_codes(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(());
            }
            writeln!(out, "{:<18} {:<8} {:<8} WHAT", "FEATURE", "CODE", "DEFAULT")?;
            for r in list {
                writeln!(
                    out,
                    "{:<18} {:<8} {:<8} {}",
                    r.feature,
                    r.code.as_deref().unwrap_or("(off)"),
                    r.default,
                    r.about
                )?;
            }
        }
        FeaturesCmd::Set { feature, code } => {
            store
                .set_feature_code(tenant, &feature, Some(&code))
                .await
                .map_err(flag_error)?;
            writeln!(out, "{feature}: {code}")?;
        }
        FeaturesCmd::Off { feature } => {
            store
                .set_feature_code(tenant, &feature, None)
                .await
                .map_err(flag_error)?;
            writeln!(out, "{feature}: off")?;
        }
        FeaturesCmd::Reset { feature } => {
            let action: engine::features::FeatureAction =
                feature.parse().map_err(|e| anyhow!("{e}"))?;
            let code = action.def().default;
            store
                .set_feature_code(tenant, &feature, Some(code))
                .await
                .map_err(flag_error)?;
            writeln!(out, "{feature}: {code} (default)")?;
        }
    }
    Ok(())
}

fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| anyhow!("date {s:?}: use YYYY-MM-DD"))
}

/// Runs `denwa timecond ...`.
pub async fn timecond(
    cmd: TimecondCmd,
    store: &Store,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        TimecondCmd::Add { name, flags } => {
            let mut spec = TimeCondSpec::default();
            let mut index = 0;
            let mut number = String::new();
            apply(&mut spec, &mut index, &mut number, &flags);
            if spec.matched.is_empty() || spec.unmatched.is_empty() {
                bail!("--matched and --unmatched are required");
            }
            store
                .put_timecond(tenant, &name, &number, index, &spec, true)
                .await
                .map_err(flag_error)?;
            writeln!(out, "time condition {name} added")?;
        }
        TimecondCmd::Edit { name, flags } => {
            let Some(mut r) = store.timecond(tenant, &name).await? else {
                bail!("no time condition {name}");
            };
            apply(&mut r.spec, &mut r.index, &mut r.number, &flags);
            store
                .put_timecond(tenant, &name, &r.number, r.index, &r.spec, false)
                .await
                .map_err(flag_error)?;
            writeln!(out, "time condition {name} changed")?;
        }
        TimecondCmd::List { at, json } => {
            let at: SystemTime = match at {
                Some(t) => chrono::DateTime::parse_from_rfc3339(t.trim())
                    .map_err(|e| anyhow!("--at {t:?} is not an RFC 3339 time ({e})"))?
                    .with_timezone(&chrono::Utc)
                    .into(),
                None => SystemTime::now(),
            };
            let cal = store.calendar(tenant).await?;
            let (tz, calendar) = cal.build().map_err(|(_, e)| anyhow!(e))?;
            let mut rows = Vec::new();
            for r in store.list_timeconds(tenant).await? {
                let state = r
                    .spec
                    .build(&r.name, r.index, r.mode)
                    .map(|tc| tc.state(at, tz, &calendar));
                rows.push((r, state));
            }
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(r, s)| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        if let (Some(o), Ok(s)) = (v.as_object_mut(), s) {
                            o.insert(
                                "state".into(),
                                (if s.open { "day" } else { "night" }).into(),
                            );
                            o.insert("why".into(), s.why.clone().into());
                        }
                        v
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<14} {:<8} {:<5} {:<6} {:<6} {:<14} {:<14} WHY",
                "NAME", "NUMBER", "INDEX", "MODE", "STATE", "DAY", "NIGHT"
            )?;
            for (r, s) in rows {
                let (state, why) = match s {
                    Ok(s) => ((if s.open { "day" } else { "night" }).to_string(), s.why),
                    Err((f, e)) => ("?".into(), format!("{f}: {e}")),
                };
                writeln!(
                    out,
                    "{:<14} {:<8} {:<5} {:<6} {:<6} {:<14} {:<14} {why}",
                    r.name,
                    r.number,
                    r.index,
                    r.mode.as_str(),
                    state,
                    r.spec.matched,
                    r.spec.unmatched
                )?;
            }
        }
        TimecondCmd::Mode { name, mode } => {
            let m: Mode = mode.parse().map_err(|e: String| anyhow!(e))?;
            store.set_timecond_mode(tenant, &name, m).await?;
            writeln!(out, "time condition {name}: {m}")?;
        }
        TimecondCmd::Remove { name } => {
            store
                .delete_timecond(tenant, &name)
                .await
                .map_err(flag_error)?;
            writeln!(out, "time condition {name} removed")?;
        }
        TimecondCmd::Calendar(c) => calendar(c, store, tenant, out).await?,
    }
    Ok(())
}

async fn calendar(
    cmd: CalendarCmd,
    store: &Store,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    let mut spec: CalendarSpec = store.calendar(tenant).await?;
    match cmd {
        CalendarCmd::Show { year } => {
            let (tz, cal) = spec.build().map_err(|(_, e)| anyhow!(e))?;
            let year = year.unwrap_or_else(|| {
                use chrono::Datelike;
                chrono::Utc::now().with_timezone(&tz).year()
            });
            writeln!(out, "time zone          {}", spec.timezone)?;
            writeln!(
                out,
                "Japanese holidays  {}",
                if spec.japan { "on" } else { "off" }
            )?;
            writeln!(out, "holidays in {year}:")?;
            let Some(mut d) = NaiveDate::from_ymd_opt(year, 1, 1) else {
                bail!("year {year} out of range");
            };
            use chrono::Datelike;
            while d.year() == year {
                if let Some(name) = cal.holiday(d) {
                    writeln!(out, "  {d} {}  {name}", d.format("%a"))?;
                }
                let Some(n) = d.succ_opt() else { break };
                d = n;
            }
            return Ok(());
        }
        CalendarCmd::Set { timezone, japan } => {
            if let Some(t) = timezone {
                spec.timezone = t;
            }
            if let Some(j) = japan {
                spec.japan = j;
            }
        }
        CalendarCmd::Add { date, name, yearly } => spec.add(parse_date(&date)?, &name, yearly),
        CalendarCmd::Remove { date } => spec.remove(parse_date(&date)?),
        CalendarCmd::Import { file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            let list = engine::timecond::import_ical(&text)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            let n = list.len();
            for h in list {
                spec.add(h.date, &h.name, h.yearly);
            }
            writeln!(out, "{n} holidays imported")?;
        }
    }
    store
        .put_calendar(tenant, &spec)
        .await
        .map_err(flag_error)?;
    writeln!(out, "calendar saved")?;
    Ok(())
}

/// Runs `denwa pickup ...`.
pub async fn pickup(
    cmd: PickupCmd,
    store: &Store,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        PickupCmd::Set { extension, groups } => {
            let g = store
                .set_pickup_groups(tenant, &extension, &groups)
                .await
                .map_err(flag_error)?;
            if g.is_empty() {
                writeln!(out, "extension {extension}: no pickup group")?;
            } else {
                writeln!(out, "extension {extension}: pickup groups {}", g.join(", "))?;
            }
        }
        PickupCmd::List => {
            writeln!(out, "{:<16} MEMBERS", "GROUP")?;
            for (g, members) in store.pickup_groups(tenant).await? {
                writeln!(out, "{g:<16} {}", members.join(", "))?;
            }
        }
    }
    Ok(())
}
