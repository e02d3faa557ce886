//! Report aggregation at scale (issue 16): one year of a 500-extension company (about 5 million
//! call records, generated) aggregated from scratch, then a one-day increment, then whole-year
//! report queries, on SQLite.
//!
//! `cargo run --release -p store --example report_bench [DAYS]` (default 365). The database is
//! written to `$REPORT_BENCH_DIR/denwa.db` when that is set (kept, so a panel can be timed over
//! it), else to a temporary directory. Figures: bench/RESULTS.md, "Reports (issue 16)".

use std::str::FromStr;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;
use store::report::{Dimension, Period, ReportQuery};
use store::{OpenOptions, Store};

const EXTENSIONS: u32 = 500;
const TRUNKS: [&str; 2] = ["ntt-hikari", "kddi"];
const DIDS: u32 = 20;
const TZ: &str = "Asia/Tokyo";
/// Share of the day's calls starting in each local hour (office hours heavy).
const HOUR_WEIGHT: [u32; 24] = [
    1, 1, 1, 1, 1, 2, 4, 10, 40, 80, 100, 95, 60, 85, 100, 95, 85, 60, 30, 15, 8, 5, 3, 2,
];

/// Calls on a day: about 17,000 on weekdays, 5,000 at weekends (about 13,600 a day on average).
fn calls_on(day: NaiveDate, rng: &mut StdRng) -> u32 {
    use chrono::Datelike;
    let base = if day.weekday().number_from_monday() >= 6 {
        5_000
    } else {
        17_000
    };
    base + rng.gen_range(0..1000)
}

struct Gen {
    rng: StdRng,
    tz: chrono_tz::Tz,
    hour_cdf: Vec<u32>,
    /// Write a weekday's volume whatever the day (the increment measured).
    busy_day: bool,
}

impl Gen {
    fn new() -> Gen {
        let mut acc = 0;
        let hour_cdf = HOUR_WEIGHT
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        Gen {
            rng: StdRng::seed_from_u64(16),
            tz: TZ.parse().unwrap(),
            hour_cdf,
            busy_day: false,
        }
    }

    /// Writes one day's calls with the prepared statement on `conn`.
    async fn day(&mut self, conn: &mut sqlx::SqliteConnection, tenant: i64, day: NaiveDate) -> u32 {
        let n = if self.busy_day {
            17_000 + self.rng.gen_range(0..1000)
        } else {
            calls_on(day, &mut self.rng)
        };
        let day_start = store::report::local_day_start(self.tz, day);
        let total = *self.hour_cdf.last().unwrap();
        for i in 0..n {
            let r = &mut self.rng;
            let pick = r.gen_range(0..total);
            let hour = self.hour_cdf.iter().position(|&c| pick < c).unwrap() as i64;
            let start = day_start
                + Duration::seconds(hour * 3600 + r.gen_range(0..3600))
                + Duration::milliseconds(r.gen_range(0..1000));
            let ext = |r: &mut StdRng| format!("{}", 2000 + r.gen_range(0..EXTENSIONS));
            let kind = r.gen_range(0..10);
            let (direction, caller, callee, trunk, did) = match kind {
                0..=3 => ("internal", ext(r), ext(r), String::new(), String::new()),
                4..=6 => {
                    let did = format!("035550{:04}", r.gen_range(0..DIDS));
                    let t = TRUNKS[r.gen_range(0..2)].to_string();
                    (
                        "inbound",
                        format!("090{:08}", r.gen_range(0..99_999_999)),
                        ext(r),
                        t,
                        did,
                    )
                }
                _ => {
                    let t = TRUNKS[r.gen_range(0..2)].to_string();
                    (
                        "outbound",
                        ext(r),
                        format!("03{:08}", r.gen_range(0..99_999_999)),
                        t,
                        String::new(),
                    )
                }
            };
            let d = r.gen_range(0..100);
            let (disp, ring, talk) = match d {
                0..=69 => ("ANSWERED", r.gen_range(1..25), r.gen_range(5..900)),
                70..=84 => ("NO ANSWER", 30, 0),
                85..=91 => ("BUSY", 0, 0),
                92..=96 => ("CANCELED", r.gen_range(1..30), 0),
                _ => ("FAILED", 0, 0),
            };
            let answer = (disp == "ANSWERED").then(|| start + Duration::seconds(ring));
            let end = start + Duration::seconds(ring + talk);
            sqlx::query(
                "INSERT INTO cdrs (tenant_id, call_id, caller, callee, start_time, answer_time,
                    end_time, duration_s, billsec, disposition, hangup_by, direction, trunk, did)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'caller', ?, ?, ?)",
            )
            .bind(tenant)
            .bind(format!("{day}-{i}"))
            .bind(caller)
            .bind(callee)
            .bind(start.timestamp_millis())
            .bind(answer.map(|a| a.timestamp_millis()))
            .bind(end.timestamp_millis())
            .bind(ring + talk)
            .bind(talk)
            .bind(disp)
            .bind(direction)
            .bind(trunk)
            .bind(did)
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        n
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let days: i64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("DAYS"))
        .unwrap_or(365);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("REPORT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("denwa.db");
    // REPORT_BENCH_REUSE=1: keep a database a previous run generated and aggregated (from
    // scratch) and go on with the increment and the queries.
    let reuse = std::env::var_os("REPORT_BENCH_REUSE").is_some() && path.exists();
    if !reuse {
        let _ = std::fs::remove_file(&path);
    }
    let url = format!("sqlite://{}", path.display());
    let s = Store::open(&url, OpenOptions::default()).await.unwrap();
    let tenant = s.default_tenant().await.unwrap().id;
    let tz: chrono_tz::Tz = TZ.parse().unwrap();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let first = today - Duration::days(days);

    // 1. Generate the year minus its last day, in one transaction per 30 days.
    let mut conn = sqlx::SqliteConnection::connect_with(
        &SqliteConnectOptions::from_str(&url)
            .unwrap()
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
    )
    .await
    .unwrap();
    let mut g = Gen::new();
    let t = Instant::now();
    let mut n_year = 0u64;
    let mut day = first;
    if reuse {
        day = today;
        n_year = s.count_cdrs(&store::CdrQuery::default()).await.unwrap() as u64;
        println!(
            "reusing {n_year} aggregated call records in {}",
            path.display()
        );
    }
    while day < today - Duration::days(1) {
        let mut tx = conn.begin().await.unwrap();
        for _ in 0..30 {
            if day >= today - Duration::days(1) {
                break;
            }
            n_year += u64::from(g.day(&mut tx, tenant, day).await);
            day += Duration::days(1);
        }
        tx.commit().await.unwrap();
    }
    println!(
        "generated {n_year} call records over {} days ({EXTENSIONS} extensions) in {:.1} s",
        days - 1,
        secs(t)
    );

    // 2. From scratch.
    if !reuse {
        let t = Instant::now();
        let o = s
            .rebuild_reports(TZ, store::report::DEFAULT_BATCH)
            .await
            .unwrap();
        let scratch = secs(t);
        println!(
            "from scratch: {} records, {} bucket upserts, {} transactions in {scratch:.1} s ({:.0} records/s)",
            o.records,
            o.buckets,
            o.batches,
            o.records as f64 / scratch
        );
    }
    let rows: i64 = {
        let q = ReportQuery {
            tenant_id: tenant,
            period: Period::Month,
            dimension: Dimension::All,
            from: first,
            to: today,
            key: None,
        };
        s.report(&q)
            .await
            .unwrap()
            .iter()
            .map(|r| r.counts.offered)
            .sum()
    };
    assert_eq!(rows as u64, n_year);

    // 3. One more day (a weekday's volume), then the increment.
    g.busy_day = true;
    let mut tx = conn.begin().await.unwrap();
    let n_day = g.day(&mut tx, tenant, today - Duration::days(1)).await;
    tx.commit().await.unwrap();
    let t = Instant::now();
    let o = s
        .aggregate_reports(TZ, store::report::DEFAULT_BATCH, None)
        .await
        .unwrap();
    println!(
        "daily increment: {} records ({n_day} added), {} bucket upserts in {:.2} s",
        o.records,
        o.buckets,
        secs(t)
    );
    let t = Instant::now();
    let o = s
        .aggregate_reports(TZ, store::report::DEFAULT_BATCH, None)
        .await
        .unwrap();
    println!(
        "nothing new: {} records in {:.1} ms",
        o.records,
        t.elapsed().as_secs_f64() * 1000.0
    );

    // 4. Whole-year queries (each timed on its second run, caches warm as a panel's would be).
    let year = |period, dimension| ReportQuery {
        tenant_id: tenant,
        period,
        dimension,
        from: first,
        to: today,
        key: None,
    };
    for (name, q, totals) in [
        ("days, all calls", year(Period::Day, Dimension::All), false),
        (
            "months, all calls",
            year(Period::Month, Dimension::All),
            false,
        ),
        (
            "hours, all calls",
            year(Period::Hour, Dimension::All),
            false,
        ),
        (
            "months by trunk (outbound)",
            year(Period::Month, Dimension::TrunkOut),
            false,
        ),
        (
            "totals per extension (received)",
            year(Period::Day, Dimension::ExtIn),
            true,
        ),
        (
            "totals per extension (made)",
            year(Period::Day, Dimension::ExtOut),
            true,
        ),
    ] {
        let mut n = 0;
        let mut ms = 0.0;
        for _ in 0..2 {
            let t = Instant::now();
            n = if totals {
                s.report_totals(&q).await.unwrap().len()
            } else {
                s.report(&q).await.unwrap().len()
            };
            ms = t.elapsed().as_secs_f64() * 1000.0;
        }
        println!("whole year, {name}: {n} rows in {ms:.1} ms");
    }
    let t = Instant::now();
    let h = s
        .busiest_hours(tenant, Dimension::All, None, first, today)
        .await
        .unwrap();
    println!(
        "whole year, busiest hours: {} calls in {:.1} ms",
        h.iter().map(|c| c.offered).sum::<i64>(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    s.compare_today(
        tenant,
        Utc.from_utc_datetime(&today.and_hms_opt(3, 0, 0).unwrap()),
    )
    .await
    .unwrap();
    println!(
        "today vs last week: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("database file: {} MB", size / 1_000_000);
}
