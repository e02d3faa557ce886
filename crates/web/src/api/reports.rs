//! `/api/v1/reports`: call counts aggregated from the call records (see `store::report` and
//! docs/operations.md, "Reports"). Read-scope keys may use all of it.

use std::fmt::Write as _;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use store::report::{Counts, Dimension, Period, ReportQuery, ReportRow};

use super::{ApiError, ApiResult, Key, Q};
use crate::Web;

/// Longest range of an hourly report of a dimension other than `all`/`direction` (days).
pub const MAX_HOURLY_KEYED_DAYS: i64 = 31;
/// Longest range of any report (days).
pub const MAX_DAYS: i64 = 3 * 366;

/// The report routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/reports/calls", get(calls))
        .route("/reports/calls.csv", get(calls_csv))
        .route("/reports/hours", get(hours))
        .route("/reports/today", get(today))
}

/// Query parameters of the report endpoints and the panel's form.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// `hour`, `day` (default) or `month`.
    pub period: Option<String>,
    /// First local day `YYYY-MM-DD` (default: 30 days before `to`).
    pub from: Option<String>,
    /// Last local day, included (default: today in the report zone).
    pub to: Option<String>,
    /// `all` (default), `direction`, `ext_out`, `ext_in`, `trunk_out`, `trunk_in`, `did`, `group`.
    pub dimension: Option<String>,
    /// Only this key of the dimension.
    pub key: Option<String>,
    /// `true`: one row per key over the whole range instead of one per bucket.
    pub totals: Option<String>,
}

/// A checked report request.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The store query.
    pub query: ReportQuery,
    /// Totals per key instead of buckets.
    pub totals: bool,
}

fn nonempty(o: &Option<String>) -> Option<String> {
    o.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn field_err(field: &str, msg: impl std::fmt::Display) -> ApiError {
    super::outside::field_error(field, msg)
}

impl ReportParams {
    /// Checks the parameters; `today` is today's date in the report zone.
    pub fn check(&self, tenant_id: i64, today: NaiveDate) -> ApiResult<Checked> {
        let date = |name: &str, v: &Option<String>| -> ApiResult<Option<NaiveDate>> {
            nonempty(v)
                .map(|s| {
                    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                        .map_err(|_| field_err(name, "use YYYY-MM-DD"))
                })
                .transpose()
        };
        let to = date("to", &self.to)?.unwrap_or(today);
        let from = date("from", &self.from)?.unwrap_or(to - Duration::days(30));
        if to < from {
            return Err(field_err("to", "the range ends before it starts"));
        }
        let period: Period = match nonempty(&self.period) {
            Some(p) => p
                .to_ascii_lowercase()
                .parse()
                .map_err(|e: store::Error| field_err("period", e))?,
            None => Period::Day,
        };
        let dimension: Dimension = match nonempty(&self.dimension) {
            Some(d) => d
                .to_ascii_lowercase()
                .parse()
                .map_err(|e: store::Error| field_err("dimension", e))?,
            None => Dimension::All,
        };
        let key = nonempty(&self.key);
        let totals = match nonempty(&self.totals).as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some(_) => return Err(field_err("totals", "use true or false")),
        };
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS {
            return Err(field_err(
                "from",
                format!("a report covers at most {MAX_DAYS} days"),
            ));
        }
        let keyed = !matches!(dimension, Dimension::All | Dimension::Direction);
        if period == Period::Hour
            && keyed
            && key.is_none()
            && !totals
            && days > MAX_HOURLY_KEYED_DAYS
        {
            return Err(field_err(
                "period",
                format!(
                    "hourly rows of every {} cover at most {MAX_HOURLY_KEYED_DAYS} days; pick a key, a day or month period, or totals",
                    dimension.as_str()
                ),
            ));
        }
        Ok(Checked {
            query: ReportQuery {
                tenant_id,
                period,
                dimension,
                from,
                to,
                key,
            },
            totals,
        })
    }
}

/// The tenant a key reports on: its own, or the default tenant for a node-wide key.
pub(crate) async fn tenant_of(w: &Web, key: &store::ApiKey) -> ApiResult<i64> {
    match key.tenant_id {
        Some(t) => Ok(t),
        None => Ok(w.store().default_tenant().await?.id),
    }
}

/// Today in the report time zone.
pub(crate) async fn report_today(w: &Web) -> ApiResult<NaiveDate> {
    let tz = w.store().report_tz().await?;
    Ok(Utc::now().with_timezone(&tz).date_naive())
}

/// Runs a checked request.
pub(crate) async fn run(w: &Web, c: &Checked) -> ApiResult<Vec<ReportRow>> {
    Ok(if c.totals {
        w.store().report_totals(&c.query).await?
    } else {
        w.store().report(&c.query).await?
    })
}

/// Counters with the derived figures, as JSON members.
pub(crate) fn counts_json(c: &Counts) -> Value {
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "offered": c.offered,
        "answered": c.answered,
        "missed": c.missed,
        "abandoned": c.abandoned,
        "busy": c.busy,
        "failed": c.failed,
        "talk_s": c.talk_s,
        "asr": round(c.asr()),
        "acd_s": round(c.acd_s()),
        "avg_wait_s": round(c.avg_wait_s()),
        "max_wait_s": round(c.wait_max_ms as f64 / 1000.0),
    })
}

fn row_json(r: &ReportRow) -> Value {
    let mut v = counts_json(&r.counts);
    v["bucket"] = Value::from(r.bucket.clone());
    v["bucket_start"] = Value::from(r.bucket_start.to_rfc3339());
    v["key"] = Value::from(r.key.clone());
    v
}

async fn state_json(w: &Web) -> ApiResult<Value> {
    let s = w.store().report_state().await?;
    Ok(json!({
        "timezone": s.timezone,
        "last_cdr_id": s.last_cdr_id,
        "updated_at": s.updated_at.map(|t| t.to_rfc3339()),
    }))
}

async fn calls(State(w): State<Web>, Key(k): Key, Q(p): Q<ReportParams>) -> ApiResult<Json<Value>> {
    let tenant = tenant_of(&w, &k).await?;
    let c = p.check(tenant, report_today(&w).await?)?;
    let rows = run(&w, &c).await?;
    Ok(Json(json!({
        "period": c.query.period.as_str(),
        "dimension": c.query.dimension.as_str(),
        "from": c.query.from.to_string(),
        "to": c.query.to.to_string(),
        "totals": c.totals,
        "aggregation": state_json(&w).await?,
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
    })))
}

/// CSV header of [`csv`].
pub const CSV_HEADER: &str = "bucket,bucket_start,key,offered,answered,missed,abandoned,busy,failed,talk_s,asr,acd_s,avg_wait_s,max_wait_s\r\n";

/// Report rows as CSV.
pub fn csv(rows: &[ReportRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    for r in rows {
        let c = &r.counts;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{:.3},{:.1},{:.1},{:.1}\r\n",
            crate::csv::field(&r.bucket),
            r.bucket_start.to_rfc3339(),
            crate::csv::field(&r.key),
            c.offered,
            c.answered,
            c.missed,
            c.abandoned,
            c.busy,
            c.failed,
            c.talk_s,
            c.asr(),
            c.acd_s(),
            c.avg_wait_s(),
            c.wait_max_ms as f64 / 1000.0,
        );
    }
    out
}

/// A CSV download of a report.
pub(crate) fn csv_response(body: String) -> Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"denwa-report.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

async fn calls_csv(
    State(w): State<Web>,
    Key(k): Key,
    Q(p): Q<ReportParams>,
) -> ApiResult<Response> {
    let tenant = tenant_of(&w, &k).await?;
    let c = p.check(tenant, report_today(&w).await?)?;
    Ok(csv_response(csv(&run(&w, &c).await?)))
}

async fn hours(State(w): State<Web>, Key(k): Key, Q(p): Q<ReportParams>) -> ApiResult<Json<Value>> {
    let tenant = tenant_of(&w, &k).await?;
    let c = p.check(tenant, report_today(&w).await?)?;
    let q = &c.query;
    let keyed = !matches!(q.dimension, Dimension::All | Dimension::Direction);
    if keyed && q.key.is_none() && (q.to - q.from).num_days() + 1 > MAX_HOURLY_KEYED_DAYS {
        return Err(field_err(
            "key",
            format!(
                "busiest hours of every {} cover at most {MAX_HOURLY_KEYED_DAYS} days; pick a key",
                q.dimension.as_str()
            ),
        ));
    }
    let hours = w
        .store()
        .busiest_hours(tenant, q.dimension, q.key.as_deref(), q.from, q.to)
        .await?;
    let items: Vec<Value> = hours
        .iter()
        .enumerate()
        .map(|(h, c)| {
            let mut v = counts_json(c);
            v["hour"] = Value::from(h);
            v
        })
        .collect();
    Ok(Json(json!({
        "from": q.from.to_string(),
        "to": q.to.to_string(),
        "dimension": q.dimension.as_str(),
        "aggregation": state_json(&w).await?,
        "hours": items,
    })))
}

async fn today(State(w): State<Web>, Key(k): Key) -> ApiResult<Json<Value>> {
    let tenant = tenant_of(&w, &k).await?;
    let cmp = w.store().compare_today(tenant, Utc::now()).await?;
    Ok(Json(json!({
        "today": cmp.today.to_string(),
        "last_week": cmp.last_week.to_string(),
        "timezone": cmp.timezone,
        "today_total": counts_json(&cmp.today_total),
        "last_week_total": counts_json(&cmp.last_week_total),
        "aggregation": state_json(&w).await?,
        "hours": cmp.hours.iter().map(|h| json!({
            "hour": h.hour,
            "today": counts_json(&h.today),
            "last_week": counts_json(&h.last_week),
        })).collect::<Vec<_>>(),
    })))
}
