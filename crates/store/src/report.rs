//! Reports: call counts aggregated from the call records into hour, day and month buckets.
//!
//! The aggregation is incremental and exactly-once. [`Store::aggregate_reports`] reads the
//! records above a watermark (`report_state.last_cdr_id`) in id order, in bounded batches, adds
//! them into `report_calls` with upserts (`offered = offered + excluded.offered`, …) and moves
//! the watermark in the same transaction: a run that fails changes nothing, a run with nothing
//! new changes nothing, and a run costs in proportion to the records added since the last one.
//!
//! Ids and commit order: on SQLite one writer at a time assigns ids and commits, so no record
//! can appear below the watermark later. On PostgreSQL identity values are taken when a row is
//! inserted, not when its transaction commits: two nodes (or the group writer and an import)
//! may commit out of order, and a record with an id below the watermark can become visible after
//! the watermark passed it. So on PostgreSQL every id skipped while the watermark moves (an id
//! between two records read) is remembered in `report_gaps`; each run first aggregates the
//! records that have since appeared at those ids, in the same transaction that deletes the gap
//! rows, and forgets gaps older than [`GAP_TTL_MS`] (a rolled-back insert leaves a gap that never
//! fills; no Denwa transaction stays open that long). A gap wider than [`MAX_GAP_IDS`] ids is not
//! a transaction in flight (deleted records, a sequence jump) and is not remembered.
//!
//! Buckets are cut in the report time zone (setting `reports.timezone`, an IANA name, default
//! UTC), remembered in `report_state.timezone`; aggregating with another zone rebuilds the tables
//! from scratch first. Bucket starts are stored as UTC milliseconds of the local hour, day or
//! month start. A call is counted in the bucket of its `start_time`.
//!
//! Definitions (docs/operations.md, "Reports"): offered = every record; answered, missed
//! (NO ANSWER), abandoned (CANCELED: the caller gave up), busy, failed by disposition; talk =
//! billsec; wait = answer time − start time of answered calls (ring time), total and longest.
//! Dimensions: `all`; `direction` (internal/inbound/outbound); `ext_out` (calls an extension
//! made: internal and outbound, by caller); `ext_in` (calls an extension received: internal and
//! inbound, by callee); `trunk_out` / `trunk_in` (outbound / inbound calls by trunk); `did`
//! (inbound calls by DID); `group` (ring groups: filled once ring groups exist).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::db::{Db, RowGet, read_pool, write_tx};
use crate::{Backend, Error, Result, Store};

/// Gaps in the id sequence older than this are forgotten (ms).
pub const GAP_TTL_MS: i64 = 3_600_000;
/// A run of more missing ids than this is not remembered as a gap.
pub const MAX_GAP_IDS: i64 = 10_000;
/// Default records per aggregation batch (one transaction each).
pub const DEFAULT_BATCH: i64 = 50_000;

/// Empties the report tables and puts the watermark back to the start (restore, rebuild).
/// (One statement each: a `raw_sql` future is not `Send`, and a restore runs in a web handler.)
pub(crate) const RESET_SQL: [&str; 3] = [
    "DELETE FROM report_calls",
    "DELETE FROM report_gaps",
    "UPDATE report_state SET last_cdr_id = 0, records = 0 WHERE id = 1",
];

text_enum!(
    /// Bucket size.
    Period { /// Local hours.
        Hour = "hour", /// Local days.
        Day = "day", /// Local calendar months.
        Month = "month" }
);

text_enum!(
    /// What a report row is keyed by.
    Dimension {
        /// Every call; the key is empty.
        All = "all",
        /// By direction: `internal`, `inbound`, `outbound`.
        Direction = "direction",
        /// Calls an extension made (internal and outbound), keyed by the caller.
        ExtOut = "ext_out",
        /// Calls an extension received (internal and inbound), keyed by the callee.
        ExtIn = "ext_in",
        /// Outbound calls by trunk.
        TrunkOut = "trunk_out",
        /// Inbound calls by trunk.
        TrunkIn = "trunk_in",
        /// Inbound calls by DID.
        Did = "did",
        /// Ring groups (filled once ring groups exist).
        Group = "group",
    }
);

/// The counters of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Every call record.
    pub offered: i64,
    /// Disposition ANSWERED.
    pub answered: i64,
    /// NO ANSWER.
    pub missed: i64,
    /// CANCELED: the caller hung up before an answer.
    pub abandoned: i64,
    /// BUSY.
    pub busy: i64,
    /// FAILED.
    pub failed: i64,
    /// Sum of billsec.
    pub talk_s: i64,
    /// Sum of answer − start over answered calls (ms).
    pub wait_ms: i64,
    /// Longest answer − start of an answered call (ms).
    pub wait_max_ms: i64,
}

impl Counts {
    /// Adds `o` into `self` (sums, and the larger longest wait).
    pub fn add(&mut self, o: &Counts) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.missed += o.missed;
        self.abandoned += o.abandoned;
        self.busy += o.busy;
        self.failed += o.failed;
        self.talk_s += o.talk_s;
        self.wait_ms += o.wait_ms;
        self.wait_max_ms = self.wait_max_ms.max(o.wait_max_ms);
    }

    /// The counters of one call record.
    pub fn of_call(
        disposition: crate::Disposition,
        start: DateTime<Utc>,
        answer: Option<DateTime<Utc>>,
        billsec: i64,
    ) -> Counts {
        use crate::Disposition as D;
        let mut c = Counts {
            offered: 1,
            ..Counts::default()
        };
        match disposition {
            D::Answered => {
                c.answered = 1;
                c.talk_s = billsec.max(0);
                let w = answer.map_or(0, |a| (a - start).num_milliseconds().max(0));
                c.wait_ms = w;
                c.wait_max_ms = w;
            }
            D::NoAnswer => c.missed = 1,
            D::Canceled => c.abandoned = 1,
            D::Busy => c.busy = 1,
            D::Failed => c.failed = 1,
        }
        c
    }

    /// Answer-seizure ratio: answered / offered (0 when nothing was offered).
    pub fn asr(&self) -> f64 {
        ratio(self.answered as f64, self.offered)
    }

    /// Average call duration: talk time / answered calls (s).
    pub fn acd_s(&self) -> f64 {
        ratio(self.talk_s as f64, self.answered)
    }

    /// Average wait before answer (s).
    pub fn avg_wait_s(&self) -> f64 {
        ratio(self.wait_ms as f64 / 1000.0, self.answered)
    }
}

fn ratio(n: f64, d: i64) -> f64 {
    if d == 0 { 0.0 } else { n / d as f64 }
}

/// One row of a report: a bucket (or a whole range, for totals) of one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    /// Start of the bucket (UTC); for totals, the start of the range.
    pub bucket_start: DateTime<Utc>,
    /// The bucket in the report time zone: `2026-03-01 14:00`, `2026-03-01`, `2026-03`.
    pub bucket: String,
    /// The key within the dimension (extension, trunk, DID …; empty for `all`).
    pub key: String,
    /// The counters.
    #[serde(flatten)]
    pub counts: Counts,
}

/// What to report.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// Tenant.
    pub tenant_id: i64,
    /// Bucket size.
    pub period: Period,
    /// Keyed by.
    pub dimension: Dimension,
    /// First local day (in the report time zone).
    pub from: NaiveDate,
    /// Last local day, included.
    pub to: NaiveDate,
    /// Only this key.
    pub key: Option<String>,
}

/// Where the aggregation stands.
#[derive(Debug, Clone, Serialize)]
pub struct ReportState {
    /// Highest call-record id aggregated.
    pub last_cdr_id: i64,
    /// IANA zone the buckets are cut in.
    pub timezone: String,
    /// Records aggregated since the last rebuild.
    pub records: i64,
    /// When the last run that aggregated something committed (None: never).
    pub updated_at: Option<DateTime<Utc>>,
}

/// What one [`Store::aggregate_reports`] call did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AggregateOutcome {
    /// Records aggregated (late ones included).
    pub records: u64,
    /// Records that appeared below the watermark (PostgreSQL commits out of id order).
    pub late: u64,
    /// Bucket rows upserted.
    pub buckets: u64,
    /// Transactions committed.
    pub batches: u64,
    /// The tables were emptied first (time-zone change or rebuild).
    pub rebuilt: bool,
    /// The watermark after the run.
    pub last_cdr_id: i64,
    /// Wall time (ms).
    pub elapsed_ms: u64,
}

/// Today against the same weekday a week before, per local hour.
#[derive(Debug, Clone, Serialize)]
pub struct TodayCompare {
    /// Today in the report time zone.
    pub today: NaiveDate,
    /// The same weekday a week before.
    pub last_week: NaiveDate,
    /// The report time zone.
    pub timezone: String,
    /// 24 entries, hour 0 to 23: `(today, last week)`.
    pub hours: Vec<HourCompare>,
    /// Whole-day totals so far.
    pub today_total: Counts,
    /// Whole-day totals a week before.
    pub last_week_total: Counts,
}

/// One hour of [`TodayCompare`].
#[derive(Debug, Clone, Serialize)]
pub struct HourCompare {
    /// Local hour of day.
    pub hour: u32,
    /// Today.
    pub today: Counts,
    /// The same weekday a week before.
    pub last_week: Counts,
}

/// Parses an IANA zone name.
pub fn parse_tz(name: &str) -> Result<Tz> {
    name.trim().parse::<Tz>().map_err(|_| Error::Invalid {
        field: "timezone",
        reason: format!("{name:?} is not an IANA time zone name"),
    })
}

/// The first instant of local `day` in `tz` (the first valid time when midnight is skipped).
pub fn local_day_start(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    for minutes in (0..=240).step_by(15) {
        let t = day.and_time(NaiveTime::MIN) + chrono::Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&t).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// Cuts instants into local hour, day and month starts (UTC milliseconds).
struct Bucketer {
    tz: Tz,
    /// Hour start → (day start, month start).
    days: HashMap<i64, (i64, i64)>,
}

impl Bucketer {
    fn new(tz: Tz) -> Bucketer {
        Bucketer {
            tz,
            days: HashMap::new(),
        }
    }

    fn hour(&self, ms: i64) -> i64 {
        let Some(utc) = DateTime::from_timestamp_millis(ms) else {
            return ms;
        };
        let off = self
            .tz
            .offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc() as i64;
        let local = ms + off * 1000;
        ms - local.rem_euclid(3_600_000)
    }

    fn day_month(&mut self, hour_start: i64) -> (i64, i64) {
        let tz = self.tz;
        *self.days.entry(hour_start).or_insert_with(|| {
            let utc = DateTime::from_timestamp_millis(hour_start).unwrap_or_default();
            let d = utc.with_timezone(&tz).date_naive();
            let first = d.with_day(1).unwrap_or(d);
            (
                local_day_start(tz, d).timestamp_millis(),
                local_day_start(tz, first).timestamp_millis(),
            )
        })
    }
}

/// The label of a bucket in the report time zone.
fn label(tz: Tz, period: Period, start: DateTime<Utc>) -> String {
    let l = start.with_timezone(&tz);
    match period {
        Period::Hour => l.format("%Y-%m-%d %H:00").to_string(),
        Period::Day => l.format("%Y-%m-%d").to_string(),
        Period::Month => l.format("%Y-%m").to_string(),
    }
}

/// One record as the aggregation needs it.
struct Rec {
    tenant: i64,
    start: i64,
    counts: Counts,
    direction: String,
    caller: String,
    callee: String,
    trunk: String,
    did: String,
}

const REC_COLS: &str =
    "c.id, c.tenant_id, c.start_time, c.answer_time, c.billsec, c.disposition, c.direction,
     c.caller, c.callee, c.trunk, c.did";

fn rec_from(r: &impl RowGet) -> Result<(i64, Rec)> {
    let start = r.ts("start_time")?;
    let counts = Counts::of_call(
        r.text("disposition")?.parse()?,
        start,
        r.opt_ts("answer_time")?,
        r.i64("billsec")?,
    );
    Ok((
        r.i64("id")?,
        Rec {
            tenant: r.i64("tenant_id")?,
            start: start.timestamp_millis(),
            counts,
            direction: r.text("direction")?,
            caller: r.text("caller")?,
            callee: r.text("callee")?,
            trunk: r.text("trunk")?,
            did: r.text("did")?,
        },
    ))
}

/// The (dimension, key) pairs a record counts under.
fn keys_of(r: &Rec) -> Vec<(Dimension, &str)> {
    let mut out = vec![
        (Dimension::All, ""),
        (Dimension::Direction, r.direction.as_str()),
    ];
    let (internal, inbound, outbound) = match r.direction.as_str() {
        "internal" => (true, false, false),
        "inbound" => (false, true, false),
        _ => (false, false, true),
    };
    if (internal || outbound) && !r.caller.is_empty() {
        out.push((Dimension::ExtOut, &r.caller));
    }
    if (internal || inbound) && !r.callee.is_empty() {
        out.push((Dimension::ExtIn, &r.callee));
    }
    if outbound && !r.trunk.is_empty() {
        out.push((Dimension::TrunkOut, &r.trunk));
    }
    if inbound && !r.trunk.is_empty() {
        out.push((Dimension::TrunkIn, &r.trunk));
    }
    if inbound && !r.did.is_empty() {
        out.push((Dimension::Did, &r.did));
    }
    out
}

type BucketKey = (i64, Period, Dimension, String, i64);

/// Adds records into hour buckets, then rolls the hours up into days and months.
fn bucket_deltas(b: &mut Bucketer, recs: &[Rec]) -> Vec<(BucketKey, Counts)> {
    let mut hours: HashMap<(i64, Dimension, &str, i64), Counts> = HashMap::new();
    for r in recs {
        let h = b.hour(r.start);
        for (dim, key) in keys_of(r) {
            hours
                .entry((r.tenant, dim, key, h))
                .or_default()
                .add(&r.counts);
        }
    }
    let mut all: HashMap<BucketKey, Counts> = HashMap::with_capacity(hours.len() * 2);
    for ((tenant, dim, key, h), c) in &hours {
        let (d, m) = b.day_month(*h);
        all.entry((*tenant, Period::Day, *dim, key.to_string(), d))
            .or_default()
            .add(c);
        all.entry((*tenant, Period::Month, *dim, key.to_string(), m))
            .or_default()
            .add(c);
    }
    let mut out: Vec<(BucketKey, Counts)> = hours
        .into_iter()
        .map(|((t, dim, key, h), c)| ((t, Period::Hour, dim, key.to_string(), h), c))
        .collect();
    out.extend(all);
    out
}

/// The counters that add up (the longest wait is a maximum).
const SUMMED: [&str; 8] = [
    "offered",
    "answered",
    "missed",
    "abandoned",
    "busy",
    "failed",
    "talk_s",
    "wait_ms",
];

const UPSERT_COLS: usize = 14;
/// Rows per multi-row upsert statement, largest first (a batch takes few statements).
const UPSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];

fn upsert_sql(backend: Backend, rows: usize) -> String {
    let mut values = Vec::with_capacity(rows);
    for r in 0..rows {
        let marks: Vec<String> = (1..=UPSERT_COLS)
            .map(|c| match backend {
                // Anonymous parameters: SQLite finds a numbered one by a linear scan.
                Backend::Sqlite => "?".to_string(),
                Backend::Postgres => format!("${}", r * UPSERT_COLS + c),
            })
            .collect();
        values.push(format!("({})", marks.join(", ")));
    }
    let add = |c: &str| format!("{c} = report_calls.{c} + excluded.{c}");
    format!(
        "INSERT INTO report_calls (tenant_id, period, dimension, key, bucket_start, offered,
            answered, missed, abandoned, busy, failed, talk_s, wait_ms, wait_max_ms)
         VALUES {}
         ON CONFLICT (tenant_id, period, dimension, key, bucket_start) DO UPDATE SET {},
            wait_max_ms = CASE WHEN excluded.wait_max_ms > report_calls.wait_max_ms
                THEN excluded.wait_max_ms ELSE report_calls.wait_max_ms END",
        values.join(", "),
        SUMMED.map(add).join(", ")
    )
}

/// Runs the upserts of `deltas` on `$tx`.
macro_rules! upsert_all {
    ($tx:ident, $kind:ident, $deltas:expr) => {{
        let deltas = $deltas;
        let mut at = 0usize;
        for &size in &UPSERT_CHUNKS {
            if deltas.len() - at < size {
                continue;
            }
            let sql = upsert_sql($kind, size);
            while deltas.len() - at >= size {
                let mut q = sqlx::query(&sql);
                for ((tenant, period, dim, key, bucket), c) in &deltas[at..at + size] {
                    q = q
                        .bind(*tenant)
                        .bind(period.as_str())
                        .bind(dim.as_str())
                        .bind(key.as_str())
                        .bind(*bucket)
                        .bind(c.offered)
                        .bind(c.answered)
                        .bind(c.missed)
                        .bind(c.abandoned)
                        .bind(c.busy)
                        .bind(c.failed)
                        .bind(c.talk_s)
                        .bind(c.wait_ms)
                        .bind(c.wait_max_ms);
                }
                q.execute(&mut *$tx).await?;
                at += size;
            }
        }
    }};
}

/// One batch: late records at remembered gaps, then up to `batch` records above the
/// watermark; upserts and the new watermark in one transaction. Returns (records, late,
/// buckets, new watermark, reached the end).
async fn run_batch(db: &Db, tz: Tz, batch: i64, now_ms: i64) -> Result<(u64, u64, u64, i64, bool)> {
    let sel_new = format!("SELECT {REC_COLS} FROM cdrs c WHERE c.id > $1 ORDER BY c.id LIMIT $2");
    let sel_late = format!(
        "SELECT {REC_COLS} FROM cdrs c JOIN report_gaps g ON g.cdr_id = c.id ORDER BY c.id LIMIT $1"
    );
    Ok(write_tx!(db, tx, kind => {
        let lock = match kind {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let state = sqlx::query(&format!(
            "SELECT last_cdr_id FROM report_state WHERE id = 1{lock}"
        ))
        .fetch_one(&mut *tx)
        .await?;
        let mark = state.i64("last_cdr_id")?;
        let mut recs = Vec::new();
        let mut late_ids = Vec::new();
        if kind == Backend::Postgres {
            for row in sqlx::query(&sel_late).bind(batch).fetch_all(&mut *tx).await? {
                let (id, r) = rec_from(&row)?;
                late_ids.push(id);
                recs.push(r);
            }
        }
        let late = recs.len() as u64;
        let rows = sqlx::query(&sel_new).bind(mark).bind(batch).fetch_all(&mut *tx).await?;
        let done = (rows.len() as i64) < batch;
        let mut gaps = Vec::new();
        let mut prev = mark;
        for row in &rows {
            let (id, r) = rec_from(row)?;
            if kind == Backend::Postgres && id - prev - 1 <= MAX_GAP_IDS {
                gaps.extend(prev + 1..id);
            }
            prev = id;
            recs.push(r);
        }
        let mut b = Bucketer::new(tz);
        let deltas = bucket_deltas(&mut b, &recs);
        upsert_all!(tx, kind, &deltas);
        for id in &late_ids {
            sqlx::query("DELETE FROM report_gaps WHERE cdr_id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        for id in &gaps {
            sqlx::query("INSERT INTO report_gaps (cdr_id, seen_at) VALUES ($1, $2) ON CONFLICT (cdr_id) DO NOTHING")
                .bind(*id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        if kind == Backend::Postgres {
            sqlx::query("DELETE FROM report_gaps WHERE seen_at < $1")
                .bind(now_ms - GAP_TTL_MS)
                .execute(&mut *tx)
                .await?;
        }
        if !recs.is_empty() {
            sqlx::query(
                "UPDATE report_state SET last_cdr_id = $1, records = records + $2, updated_at = $3 WHERE id = 1",
            )
            .bind(prev)
            .bind(recs.len() as i64)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        (recs.len() as u64, late, deltas.len() as u64, prev, done)
    }))
}

impl Store {
    /// Where the aggregation stands.
    pub async fn report_state(&self) -> Result<ReportState> {
        read_pool!(self.db(), pool, kind => {
            let r = sqlx::query(
                "SELECT last_cdr_id, timezone, records, updated_at FROM report_state WHERE id = 1",
            )
            .fetch_one(pool)
            .await?;
            let updated = r.i64("updated_at")?;
            Ok(ReportState {
                last_cdr_id: r.i64("last_cdr_id")?,
                timezone: r.text("timezone")?,
                records: r.i64("records")?,
                updated_at: if updated > 0 { Some(crate::db::from_ms(updated)?) } else { None },
            })
        })
    }

    /// The report time zone the tables are cut in.
    pub async fn report_tz(&self) -> Result<Tz> {
        parse_tz(&self.report_state().await?.timezone)
    }

    /// Empties the report tables and cuts them in `timezone` from now on; the next
    /// [`Store::aggregate_reports`] starts from the first record.
    pub async fn reset_reports(&self, timezone: &str) -> Result<()> {
        let tz = parse_tz(timezone)?;
        write_tx!(self.db(), tx, kind => {
            for sql in RESET_SQL {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE report_state SET timezone = $1, updated_at = 0 WHERE id = 1")
                .bind(tz.name())
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Aggregates every record added since the last run, `batch` records per transaction
    /// (at most `max_batches` transactions; `None`: until none is left). Buckets are cut in
    /// `timezone`; when it differs from the zone the tables were built in, they are rebuilt.
    pub async fn aggregate_reports(
        &self,
        timezone: &str,
        batch: i64,
        max_batches: Option<u64>,
    ) -> Result<AggregateOutcome> {
        let started = Instant::now();
        let tz = parse_tz(timezone)?;
        let mut out = AggregateOutcome::default();
        if self.report_state().await?.timezone != tz.name() {
            self.reset_reports(tz.name()).await?;
            out.rebuilt = true;
        }
        let batch = batch.clamp(1, 1_000_000);
        loop {
            let now = Utc::now().timestamp_millis();
            let (n, late, buckets, mark, done) = run_batch(self.db(), tz, batch, now).await?;
            out.records += n;
            out.late += late;
            out.buckets += buckets;
            out.batches += 1;
            out.last_cdr_id = mark;
            if done || max_batches.is_some_and(|m| out.batches >= m) {
                break;
            }
        }
        out.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(out)
    }

    /// Empties the tables and aggregates every record again in `timezone`.
    pub async fn rebuild_reports(&self, timezone: &str, batch: i64) -> Result<AggregateOutcome> {
        self.reset_reports(timezone).await?;
        let mut out = self.aggregate_reports(timezone, batch, None).await?;
        out.rebuilt = true;
        Ok(out)
    }

    /// The UTC range of local days `from..=to` in the report zone.
    async fn day_range(&self, from: NaiveDate, to: NaiveDate) -> Result<(Tz, i64, i64)> {
        if to < from {
            return Err(Error::Invalid {
                field: "to",
                reason: "the range ends before it starts".into(),
            });
        }
        let tz = self.report_tz().await?;
        let start = local_day_start(tz, from).timestamp_millis();
        let end = local_day_start(tz, to.succ_opt().unwrap_or(to)).timestamp_millis();
        Ok((tz, start, end))
    }

    /// Report rows, one per bucket and key, in bucket then key order.
    ///
    /// Month rows cover whole calendar months: `from` is taken back to the first of its month.
    pub async fn report(&self, q: &ReportQuery) -> Result<Vec<ReportRow>> {
        let from = match q.period {
            Period::Month => q.from.with_day(1).unwrap_or(q.from),
            Period::Hour | Period::Day => q.from,
        };
        let (tz, start, end) = self.day_range(from, q.to).await?;
        let key_cond = if q.key.is_some() { " AND key = $6" } else { "" };
        let sql = format!(
            "SELECT bucket_start, key, offered, answered, missed, abandoned, busy, failed, talk_s,
                wait_ms, wait_max_ms FROM report_calls
             WHERE tenant_id = $1 AND period = $2 AND dimension = $3 AND bucket_start >= $4
                AND bucket_start < $5{key_cond}
             ORDER BY bucket_start, key"
        );
        let rows: Vec<(i64, String, Counts)> = read_pool!(self.db(), pool, kind => {
            let mut qq = sqlx::query(&sql)
                .bind(q.tenant_id)
                .bind(q.period.as_str())
                .bind(q.dimension.as_str())
                .bind(start)
                .bind(end);
            if let Some(k) = &q.key {
                qq = qq.bind(k.clone());
            }
            qq.fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.i64("bucket_start")?, r.text("key")?, counts_from(r)?)))
                .collect::<Result<_>>()?
        });
        rows.into_iter()
            .map(|(b, key, counts)| {
                let t = crate::db::from_ms(b)?;
                Ok(ReportRow {
                    bucket_start: t,
                    bucket: label(tz, q.period, t),
                    key,
                    counts,
                })
            })
            .collect()
    }

    /// Sums of the `period` buckets in `[start, end)` grouped by `group` (an SQL expression
    /// giving text): `(group value, counts)`.
    #[allow(clippy::too_many_arguments)]
    async fn sum_grouped(
        &self,
        tenant_id: i64,
        period: Period,
        dimension: Dimension,
        key: Option<&str>,
        start: i64,
        end: i64,
        group: &str,
    ) -> Result<Vec<(String, Counts)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let key_cond = if key.is_some() { " AND key = $6" } else { "" };
        let sum = |c: &str| format!("CAST(SUM({c}) AS BIGINT) AS {c}");
        let sql = format!(
            "SELECT {group} AS g, {}, MAX(wait_max_ms) AS wait_max_ms FROM report_calls
             WHERE tenant_id = $1 AND period = $2 AND dimension = $3 AND bucket_start >= $4
                AND bucket_start < $5{key_cond}
             GROUP BY {group}",
            SUMMED.map(sum).join(", ")
        );
        read_pool!(self.db(), pool, kind => {
            let mut qq = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(period.as_str())
                .bind(dimension.as_str())
                .bind(start)
                .bind(end);
            if let Some(k) = key {
                qq = qq.bind(k.to_string());
            }
            qq.fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.text("g")?, counts_from(r)?)))
                .collect()
        })
    }

    /// Totals over the whole range, one row per key (largest `offered` first): whole months
    /// inside the range are read from the month buckets, the days before and after them from
    /// the day buckets.
    pub async fn report_totals(&self, q: &ReportQuery) -> Result<Vec<ReportRow>> {
        let (tz, start, end) = self.day_range(q.from, q.to).await?;
        // The first month starting on or after `from`, and the start of the month holding
        // the day after `to`: whole months lie between them.
        let next_month = |d: NaiveDate| {
            let first = d.with_day(1).unwrap_or(d);
            if first == d {
                d
            } else {
                first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(d)
            }
        };
        let after = q.to.succ_opt().unwrap_or(q.to);
        let m_start = local_day_start(tz, next_month(q.from)).timestamp_millis();
        let m_end = local_day_start(tz, after.with_day(1).unwrap_or(after)).timestamp_millis();
        let parts = if m_start < m_end {
            vec![
                (Period::Day, start, m_start),
                (Period::Month, m_start, m_end),
                (Period::Day, m_end, end),
            ]
        } else {
            vec![(Period::Day, start, end)]
        };
        let mut by_key: HashMap<String, Counts> = HashMap::new();
        for (period, a, b) in parts {
            for (k, c) in self
                .sum_grouped(
                    q.tenant_id,
                    period,
                    q.dimension,
                    q.key.as_deref(),
                    a,
                    b,
                    "key",
                )
                .await?
            {
                by_key.entry(k).or_default().add(&c);
            }
        }
        let from_t = crate::db::from_ms(start)?;
        let mut rows: Vec<ReportRow> = by_key
            .into_iter()
            .map(|(key, counts)| ReportRow {
                bucket_start: from_t,
                bucket: format!("{} – {}", q.from, q.to),
                key,
                counts,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.counts
                .offered
                .cmp(&a.counts.offered)
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(rows)
    }

    /// Calls by local hour of day (0–23) over the range, summed over the days. The database
    /// sums the hour buckets by UTC time of day, per stretch of constant UTC offset (a DST
    /// change starts a new stretch), so a year costs a few small queries.
    pub async fn busiest_hours(
        &self,
        tenant_id: i64,
        dimension: Dimension,
        key: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Counts>> {
        let (tz, start, end) = self.day_range(from, to).await?;
        let offset_ms = |ms: i64| {
            let t = DateTime::from_timestamp_millis(ms).unwrap_or_default();
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc() as i64
                * 1000
        };
        // Stretches of one offset, found day by day.
        let mut stretches = Vec::new();
        let (mut a, mut off) = (start, offset_ms(start));
        let mut t = start;
        while t < end {
            let next = (t + 86_400_000).min(end);
            let o = offset_ms(next - 1);
            if o != off {
                // The change lies within (t, next]: find its hour.
                let mut h = t;
                while offset_ms(h) == off {
                    h += 3_600_000;
                }
                stretches.push((a, h, off));
                a = h;
                off = o;
            }
            t = next;
        }
        stretches.push((a, end, off));
        let mut hours = vec![Counts::default(); 24];
        for (a, b, off) in stretches {
            let grouped = self
                .sum_grouped(
                    tenant_id,
                    Period::Hour,
                    dimension,
                    key,
                    a,
                    b,
                    "CAST(bucket_start % 86400000 AS TEXT)",
                )
                .await?;
            for (tod, c) in grouped {
                let tod: i64 = tod.parse().unwrap_or(0);
                let h = ((tod + off).rem_euclid(86_400_000) / 3_600_000) as usize;
                hours[h.min(23)].add(&c);
            }
        }
        Ok(hours)
    }

    /// Today (in the report zone, as of the last aggregation) against the same weekday a week
    /// before, per local hour.
    pub async fn compare_today(&self, tenant_id: i64, now: DateTime<Utc>) -> Result<TodayCompare> {
        let tz = self.report_tz().await?;
        let today = now.with_timezone(&tz).date_naive();
        let last_week = today - chrono::Duration::days(7);
        let a = self
            .busiest_hours(tenant_id, Dimension::All, Some(""), today, today)
            .await?;
        let b = self
            .busiest_hours(tenant_id, Dimension::All, Some(""), last_week, last_week)
            .await?;
        let mut today_total = Counts::default();
        let mut last_week_total = Counts::default();
        let hours = (0..24)
            .map(|h| {
                today_total.add(&a[h]);
                last_week_total.add(&b[h]);
                HourCompare {
                    hour: h as u32,
                    today: a[h],
                    last_week: b[h],
                }
            })
            .collect();
        Ok(TodayCompare {
            today,
            last_week,
            timezone: tz.name().to_string(),
            hours,
            today_total,
            last_week_total,
        })
    }
}

fn counts_from(r: &impl RowGet) -> Result<Counts> {
    Ok(Counts {
        offered: r.i64("offered")?,
        answered: r.i64("answered")?,
        missed: r.i64("missed")?,
        abandoned: r.i64("abandoned")?,
        busy: r.i64("busy")?,
        failed: r.i64("failed")?,
        talk_s: r.i64("talk_s")?,
        wait_ms: r.i64("wait_ms")?,
        wait_max_ms: r.i64("wait_max_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_and_day_buckets_follow_the_zone() {
        let tz: Tz = "Asia/Tokyo".parse().unwrap();
        let mut b = Bucketer::new(tz);
        // 2026-03-01 15:30 UTC = 2026-03-02 00:30 JST.
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 15, 30, 0).unwrap();
        let h = b.hour(t.timestamp_millis());
        assert_eq!(
            h,
            Utc.with_ymd_and_hms(2026, 3, 1, 15, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        let (d, m) = b.day_month(h);
        assert_eq!(
            d,
            Utc.with_ymd_and_hms(2026, 3, 1, 15, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(
            m,
            Utc.with_ymd_and_hms(2026, 2, 28, 15, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        // India: hours start at :30 UTC.
        let b = Bucketer::new("Asia/Kolkata".parse().unwrap());
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 10, 0).unwrap();
        assert_eq!(
            b.hour(t.timestamp_millis()),
            Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0)
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn upsert_statements_are_well_formed() {
        let s = upsert_sql(Backend::Postgres, 2);
        assert!(s.contains("$28") && !s.contains("$29"));
        assert_eq!(upsert_sql(Backend::Sqlite, 3).matches('?').count(), 42);
    }
}
