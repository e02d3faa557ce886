//! Feature codes, time conditions, holiday calendars and pickup groups (issue 15).
//!
//! A tenant's feature code table is the defaults of `engine::features` plus the rows here;
//! every change is checked against the whole table and the tenant's numbers (extensions, IVR
//! and conference numbers, DIDs) inside the writing transaction. Time conditions keep their
//! rules as a JSON `engine::timecond::TimeCondSpec`; the manual override (`mode`) is its own
//! column so a `*28` toggle writes one value.

use std::collections::HashMap;

use chrono::Utc;
use engine::dialplan::Destination;
use engine::features::{FeatureAction, FeatureTable};
use engine::timecond::{CalendarSpec, Mode, TimeCondSpec};
use serde::Serialize;

use crate::apps::{destination_exists, referrer};
use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::{DidSpec, Error, Result, Store};
use apps::ivr::MenuSpec;

/// One feature code of a tenant, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureCodeRow {
    /// Stable key (`dnd_toggle`).
    pub feature: String,
    /// The code in force (`None`: switched off).
    pub code: Option<String>,
    /// The default code.
    pub default: String,
    /// Digits after the code are its argument.
    pub takes_arg: bool,
    /// Used during a call (DTMF), not dialled.
    pub in_call: bool,
    /// What it does.
    pub about: String,
}

/// A time condition as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeCondRow {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name (`timecond:NAME`).
    pub name: String,
    /// Internal number that reaches it (empty: only through DIDs and other destinations).
    pub number: String,
    /// Number after the day/night feature code (0: none).
    pub index: u8,
    /// Rules and destinations.
    #[serde(flatten)]
    pub spec: TimeCondSpec,
    /// Manual override.
    pub mode: Mode,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

const TC_COLS: &str =
    "id, tenant_id, name, number, day_night_index, spec, mode, created_at, updated_at";

fn tc_from(r: &impl RowGet) -> Result<TimeCondRow> {
    let spec: TimeCondSpec = serde_json::from_str(&r.text("spec")?)
        .map_err(|e| invalid("spec", format!("stored time condition unreadable: {e}")))?;
    Ok(TimeCondRow {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: r.text("name")?,
        number: r.text("number")?,
        index: u8::try_from(r.i64("day_night_index")?).unwrap_or(0),
        spec,
        mode: r.text("mode")?.parse().unwrap_or_default(),
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Checks a time condition or pickup group name.
fn validate_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(field, "1-40 letters, digits, - _ . only"));
    }
    Ok(())
}

fn table_from(rows: impl IntoIterator<Item = (String, Option<String>)>) -> FeatureTable {
    let mut t = FeatureTable::default();
    for (feature, code) in rows {
        if let Ok(a) = feature.parse::<FeatureAction>() {
            t.overrides.insert(a, code);
        }
    }
    t
}

/// The numbers of a tenant a feature code may not shadow (inside a transaction).
macro_rules! tenant_numbers {
    ($tx:ident, $tenant:expr) => {{
        let mut out: Vec<(String, String)> = Vec::new();
        for (sql, what) in [
            (
                "SELECT number AS n FROM extensions WHERE tenant_id = $1",
                "extension",
            ),
            (
                "SELECT number AS n FROM ivr_menus WHERE tenant_id = $1 AND number <> ''",
                "IVR menu number",
            ),
            (
                "SELECT number AS n FROM conf_rooms WHERE tenant_id = $1",
                "conference room",
            ),
            (
                "SELECT pattern AS n FROM inbound_routes WHERE tenant_id = $1",
                "DID",
            ),
            (
                "SELECT number AS n FROM time_conditions WHERE tenant_id = $1 AND number <> ''",
                "time condition number",
            ),
        ] {
            for r in sqlx::query(sql).bind($tenant).fetch_all(&mut *$tx).await? {
                out.push((what.to_string(), r.text("n")?));
            }
        }
        out
    }};
}

impl Store {
    /// A tenant's feature code table.
    pub async fn feature_table(&self, tenant_id: i64) -> Result<FeatureTable> {
        read_pool!(self.db(), pool, kind => {
            let rows = sqlx::query("SELECT feature, code FROM feature_codes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?;
            let mut v = Vec::new();
            for r in &rows {
                v.push((r.text("feature")?, r.opt_text("code")?));
            }
            Ok(table_from(v))
        })
    }

    /// A tenant's feature codes, listed with defaults and descriptions.
    pub async fn list_feature_codes(&self, tenant_id: i64) -> Result<Vec<FeatureCodeRow>> {
        let t = self.feature_table(tenant_id).await?;
        Ok(t.all()
            .into_iter()
            .map(|(d, code)| FeatureCodeRow {
                feature: d.key.to_string(),
                code: code.map(str::to_string),
                default: d.default.to_string(),
                takes_arg: d.takes_arg,
                in_call: d.in_call,
                about: d.about.to_string(),
            })
            .collect())
    }

    /// Sets a feature's code (`None`: switch it off; the default: back to the default),
    /// refused when it would conflict with another code or one of the tenant's numbers.
    pub async fn set_feature_code(
        &self,
        tenant_id: i64,
        feature: &str,
        code: Option<&str>,
    ) -> Result<FeatureTable> {
        let action: FeatureAction = feature
            .parse()
            .map_err(|e: engine::features::FeatureError| invalid("feature", e.to_string()))?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            let rows = sqlx::query("SELECT feature, code FROM feature_codes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?;
            let mut v = Vec::new();
            for r in &rows {
                v.push((r.text("feature")?, r.opt_text("code")?));
            }
            let numbers = tenant_numbers!(tx, tenant_id);
            let table = table_from(v)
                .with(action, code, numbers.iter().map(|(w, n)| (w.as_str(), n.as_str())))
                .map_err(|e| invalid("code", e.to_string()))?;
            sqlx::query("DELETE FROM feature_codes WHERE tenant_id = $1 AND feature = $2")
                .bind(tenant_id)
                .bind(action.key())
                .execute(&mut *tx)
                .await?;
            if let Some(c) = table.overrides.get(&action) {
                sqlx::query(
                    "INSERT INTO feature_codes (tenant_id, feature, code, updated_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant_id)
                .bind(action.key())
                .bind(c.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            announce!(tx, kind, Change::Codes);
            table
        }))
    }

    /// Every tenant's feature code tables (call control's snapshot).
    pub async fn all_feature_tables(&self) -> Result<HashMap<i64, FeatureTable>> {
        read_pool!(self.db(), pool, kind => {
            let rows = sqlx::query("SELECT tenant_id, feature, code FROM feature_codes")
                .fetch_all(pool)
                .await?;
            let mut by: HashMap<i64, Vec<(String, Option<String>)>> = HashMap::new();
            for r in &rows {
                by.entry(r.i64("tenant_id")?)
                    .or_default()
                    .push((r.text("feature")?, r.opt_text("code")?));
            }
            Ok(by.into_iter().map(|(t, v)| (t, table_from(v))).collect())
        })
    }

    /// Creates (`create_only`) or replaces a time condition. Its destinations must exist;
    /// its day/night index (1-99, 0: none) and its internal number (empty: none) must be free
    /// in the tenant.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_timecond(
        &self,
        tenant_id: i64,
        name: &str,
        number: &str,
        index: u8,
        spec: &TimeCondSpec,
        create_only: bool,
    ) -> Result<TimeCondRow> {
        validate_name("name", name)?;
        if index > 99 {
            return Err(invalid("index", "0 (none) or 1-99"));
        }
        if number.len() > 20 || !number.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid("number", "digits only, at most 20 (empty: none)"));
        }
        let tc = spec
            .build(name, index, Mode::Auto)
            .map_err(|(f, e)| invalid(f, e))?;
        let doc = serde_json::to_string(spec).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            for (field, d) in [("matched", &tc.matched), ("unmatched", &tc.unmatched)] {
                let exists = match d {
                    Destination::Ext(_) | Destination::Vm(_) | Destination::Ivr(_) => {
                        destination_exists!(tx, tenant_id, d)
                    }
                    Destination::Timecond(other) => sqlx::query(
                        "SELECT id FROM time_conditions WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant_id)
                    .bind(other)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some(),
                    _ => true,
                };
                if !exists {
                    return Err(invalid(field, format!("{d} does not exist")));
                }
            }
            if !number.is_empty() {
                for (sql, what) in [
                    ("SELECT number AS n FROM extensions WHERE tenant_id = $1 AND number = $2 AND $3 <> ''", "an extension's"),
                    ("SELECT number AS n FROM ivr_menus WHERE tenant_id = $1 AND number = $2 AND $3 <> ''", "an IVR menu's"),
                    ("SELECT number AS n FROM conf_rooms WHERE tenant_id = $1 AND number = $2 AND $3 <> ''", "a conference room's"),
                    ("SELECT number AS n FROM time_conditions WHERE tenant_id = $1 AND number = $2 AND name <> $3", "another time condition's"),
                ] {
                    if sqlx::query(sql).bind(tenant_id).bind(number).bind(name).fetch_optional(&mut *tx).await?.is_some() {
                        return Err(invalid("number", format!("{number} is {what} number")));
                    }
                }
                let table = {
                    let rows = sqlx::query("SELECT feature, code FROM feature_codes WHERE tenant_id = $1")
                        .bind(tenant_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut v = Vec::new();
                    for r in &rows {
                        v.push((r.text("feature")?, r.opt_text("code")?));
                    }
                    table_from(v)
                };
                table
                    .validate([("time condition number", number)])
                    .map_err(|e| invalid("number", e.to_string()))?;
            }
            if index != 0 {
                let taken = sqlx::query(
                    "SELECT name FROM time_conditions WHERE tenant_id = $1 AND day_night_index = $2 AND name <> $3",
                )
                .bind(tenant_id)
                .bind(i64::from(index))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = taken {
                    return Err(invalid("index", format!("{index} is already time condition {}'s", r.text("name")?)));
                }
            }
            let existing = sqlx::query("SELECT id FROM time_conditions WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = match (&existing, create_only) {
                (Some(_), true) => return Err(Error::Conflict(format!("time condition {name}"))),
                (None, false) => return Err(Error::NotFound(format!("time condition {name}"))),
                (Some(_), false) => format!(
                    "UPDATE time_conditions SET day_night_index = $3, spec = $4, updated_at = $5, number = $6
                     WHERE tenant_id = $1 AND name = $2 RETURNING {TC_COLS}"
                ),
                (None, true) => format!(
                    "INSERT INTO time_conditions (tenant_id, name, day_night_index, spec, mode, created_at, updated_at, number)
                     VALUES ($1, $2, $3, $4, 'auto', $5, $5, $6) RETURNING {TC_COLS}"
                ),
            };
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(i64::from(index))
                .bind(&doc)
                .bind(now)
                .bind(number)
                .fetch_one(&mut *tx)
                .await?;
            announce!(tx, kind, Change::Codes);
            tc_from(&r)?
        }))
    }

    /// Sets a time condition's manual override (panel, API, CLI, or a `*28` feature code).
    pub async fn set_timecond_mode(&self, tenant_id: i64, name: &str, mode: Mode) -> Result<()> {
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query(
                "UPDATE time_conditions SET mode = $3, updated_at = $4 WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(mode.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("time condition {name}")));
            }
            announce!(tx, kind, Change::Codes);
        });
        Ok(())
    }

    /// Removes a time condition nothing sends callers to.
    pub async fn delete_timecond(&self, tenant_id: i64, name: &str) -> Result<()> {
        let target = format!("timecond:{name}");
        write_tx!(self.db(), tx, kind => {
            if let Some(why) = referrer!(tx, tenant_id, target, "") {
                return Err(invalid("name", format!("time condition {name} is {why}")));
            }
            for r in sqlx::query("SELECT name, spec FROM time_conditions WHERE tenant_id = $1 AND name <> $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
            {
                let s: TimeCondSpec = serde_json::from_str(&r.text("spec")?).unwrap_or_default();
                if s.matched == target || s.unmatched == target {
                    return Err(invalid("name", format!("time condition {name} is used by time condition {}", r.text("name")?)));
                }
            }
            let n = sqlx::query("DELETE FROM time_conditions WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("time condition {name}")));
            }
            announce!(tx, kind, Change::Codes);
        });
        Ok(())
    }

    /// One time condition.
    pub async fn timecond(&self, tenant_id: i64, name: &str) -> Result<Option<TimeCondRow>> {
        let sql =
            format!("SELECT {TC_COLS} FROM time_conditions WHERE tenant_id = $1 AND name = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(tc_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// A tenant's time conditions by name.
    pub async fn list_timeconds(&self, tenant_id: i64) -> Result<Vec<TimeCondRow>> {
        let sql =
            format!("SELECT {TC_COLS} FROM time_conditions WHERE tenant_id = $1 ORDER BY name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(tc_from).collect()
        })
    }

    /// Every tenant's time conditions (call control's snapshot).
    pub async fn all_timeconds(&self) -> Result<Vec<TimeCondRow>> {
        let sql = format!("SELECT {TC_COLS} FROM time_conditions ORDER BY tenant_id, name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(tc_from).collect()
        })
    }

    /// A tenant's time zone and holiday calendar (the defaults when never set: UTC, none).
    pub async fn calendar(&self, tenant_id: i64) -> Result<CalendarSpec> {
        read_pool!(self.db(), pool, kind => {
            match sqlx::query("SELECT spec FROM holiday_calendars WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(pool)
                .await?
            {
                Some(r) => serde_json::from_str(&r.text("spec")?)
                    .map_err(|e| invalid("spec", format!("stored calendar unreadable: {e}"))),
                None => Ok(CalendarSpec::default()),
            }
        })
    }

    /// Replaces a tenant's time zone and holiday calendar.
    pub async fn put_calendar(&self, tenant_id: i64, spec: &CalendarSpec) -> Result<()> {
        spec.build().map_err(|(f, e)| invalid(f, e))?;
        let doc = serde_json::to_string(spec).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM holiday_calendars WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO holiday_calendars (tenant_id, spec, updated_at) VALUES ($1, $2, $3)")
                .bind(tenant_id)
                .bind(&doc)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            announce!(tx, kind, Change::Codes);
        });
        Ok(())
    }

    /// Every tenant's calendar (call control's snapshot).
    pub async fn all_calendars(&self) -> Result<Vec<(i64, CalendarSpec)>> {
        read_pool!(self.db(), pool, kind => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT tenant_id, spec FROM holiday_calendars")
                .fetch_all(pool)
                .await?
            {
                if let Ok(s) = serde_json::from_str(&r.text("spec")?) {
                    out.push((r.i64("tenant_id")?, s));
                }
            }
            Ok(out)
        })
    }

    /// Sets the pickup groups of an extension (at most 16 names).
    pub async fn set_pickup_groups(
        &self,
        tenant_id: i64,
        number: &str,
        groups: &[String],
    ) -> Result<Vec<String>> {
        if groups.len() > 16 {
            return Err(invalid("pickup_groups", "at most 16 groups"));
        }
        let mut groups: Vec<String> = groups.iter().map(|g| g.trim().to_string()).collect();
        for g in &groups {
            validate_name("pickup_groups", g)?;
        }
        groups.sort();
        groups.dedup();
        write_tx!(self.db(), tx, kind => {
            let Some(r) = sqlx::query("SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id)
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Err(Error::NotFound(format!("extension {number}")));
            };
            let id = r.i64("id")?;
            sqlx::query("DELETE FROM pickup_groups WHERE extension_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for g in &groups {
                sqlx::query("INSERT INTO pickup_groups (extension_id, name) VALUES ($1, $2)")
                    .bind(id)
                    .bind(g)
                    .execute(&mut *tx)
                    .await?;
            }
            announce!(tx, kind, Change::Codes);
        });
        Ok(groups)
    }

    /// Every extension's pickup groups by (tenant, number).
    pub async fn all_pickup_groups(&self) -> Result<HashMap<(i64, String), Vec<String>>> {
        read_pool!(self.db(), pool, kind => {
            let mut out: HashMap<(i64, String), Vec<String>> = HashMap::new();
            for r in sqlx::query(
                "SELECT e.tenant_id, e.number, p.name FROM pickup_groups p
                 JOIN extensions e ON e.id = p.extension_id ORDER BY e.tenant_id, e.number, p.name",
            )
            .fetch_all(pool)
            .await?
            {
                out.entry((r.i64("tenant_id")?, r.text("number")?))
                    .or_default()
                    .push(r.text("name")?);
            }
            Ok(out)
        })
    }

    /// A tenant's pickup groups: group name -> member extensions.
    pub async fn pickup_groups(&self, tenant_id: i64) -> Result<Vec<(String, Vec<String>)>> {
        let all = self.all_pickup_groups().await?;
        let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for ((t, number), groups) in all {
            if t != tenant_id {
                continue;
            }
            for g in groups {
                by.entry(g).or_default().push(number.clone());
            }
        }
        Ok(by
            .into_iter()
            .map(|(g, mut m)| {
                m.sort();
                (g, m)
            })
            .collect())
    }
}

/// Inside a transaction: refuses `$number` (an IVR or conference number being created) when it equals a feature code of the tenant or starts with one that takes an
/// argument — the dialplan matches feature codes first, so the number could not be reached.
macro_rules! feature_code_conflict {
    ($tx:ident, $tenant:expr, $what:expr, $number:expr) => {{
        let rows = sqlx::query("SELECT feature, code FROM feature_codes WHERE tenant_id = $1")
            .bind($tenant)
            .fetch_all(&mut *$tx)
            .await?;
        let mut v = Vec::new();
        for r in &rows {
            v.push((r.text("feature")?, r.opt_text("code")?));
        }
        $crate::codes::table_of(v)
            .validate([($what, $number)])
            .map_err(|e| $crate::Error::Invalid {
                field: "number",
                reason: e.to_string(),
            })?;
    }};
}
pub(crate) use feature_code_conflict;

/// A feature code table from stored rows.
pub(crate) fn table_of(rows: Vec<(String, Option<String>)>) -> FeatureTable {
    table_from(rows)
}
