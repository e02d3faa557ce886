//! Reports against real SQLite and PostgreSQL: aggregates of a fixture set of call records
//! equal what a plain loop over the fixtures computes; aggregating twice changes nothing; an
//! increment equals a rebuild from scratch; days are cut in the report time zone.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use store::report::{Counts, Dimension, Period, ReportQuery};
use store::{Backend, CdrRoute, Direction, Disposition, HangupBy, LegStats, NewCdr, Store};

both_backends!(
    aggregates_match_the_fixtures,
    incremental_equals_rebuild,
    tokyo_day_boundary,
    busiest_hours_across_a_dst_change,
);

/// A deterministic fixture set: `n` calls from `base` on, every 7 minutes, mixing directions
/// and outcomes.
pub fn fixtures(tenant: i64, base: DateTime<Utc>, n: usize, seed: usize) -> Vec<NewCdr> {
    let disps = [
        Disposition::Answered,
        Disposition::NoAnswer,
        Disposition::Answered,
        Disposition::Busy,
        Disposition::Canceled,
        Disposition::Failed,
        Disposition::Answered,
    ];
    (0..n)
        .map(|i| {
            let k = i + seed;
            let start = base
                + Duration::minutes(7 * i as i64)
                + Duration::milliseconds(k as i64 * 37 % 1000);
            let disposition = disps[k % disps.len()];
            let ring = (k % 13) as i64 + 1;
            let talk = (k % 50) as i64 * 7;
            let answer =
                (disposition == Disposition::Answered).then(|| start + Duration::seconds(ring));
            let direction = [Direction::Internal, Direction::Inbound, Direction::Outbound][k % 3];
            let ext = |j: usize| format!("{}", 1001 + j % 4);
            let (caller, callee, trunk, did) = match direction {
                Direction::Internal => (ext(k), ext(k + 1), "", ""),
                Direction::Inbound => (
                    "0901234567".to_string(),
                    ext(k + 2),
                    ["carrier-a", "carrier-b"][k % 2],
                    ["0312345678", "0312345679"][k / 3 % 2],
                ),
                Direction::Outbound => (
                    ext(k + 3),
                    "0398765432".to_string(),
                    ["carrier-a", "carrier-b"][k / 3 % 2],
                    "",
                ),
            };
            NewCdr {
                tenant_id: tenant,
                call_id: format!("fx-{seed}-{i}"),
                caller,
                callee,
                caller_name: String::new(),
                start_time: start,
                answer_time: answer,
                end_time: answer.unwrap_or(start) + Duration::seconds(talk),
                duration_s: ring + talk,
                billsec: if answer.is_some() { talk } else { 0 },
                disposition,
                hangup_by: HangupBy::Caller,
                hangup_cause: String::new(),
                codec: String::new(),
                a: LegStats::default(),
                b: LegStats::default(),
                route: CdrRoute {
                    direction,
                    trunk: trunk.into(),
                    did: did.into(),
                    ..CdrRoute::default()
                },
            }
        })
        .collect()
}

/// The expected counters, computed independently: per (dimension, key, local day label).
fn expected(cdrs: &[NewCdr], tz: chrono_tz::Tz) -> BTreeMap<(String, String, String), Counts> {
    let mut out: BTreeMap<(String, String, String), Counts> = BTreeMap::new();
    for c in cdrs {
        let day = c
            .start_time
            .with_timezone(&tz)
            .format("%Y-%m-%d")
            .to_string();
        let mut keys = vec![
            ("all", String::new()),
            ("direction", c.route.direction.as_str().to_string()),
        ];
        match c.route.direction {
            Direction::Internal => {
                keys.push(("ext_out", c.caller.clone()));
                keys.push(("ext_in", c.callee.clone()));
            }
            Direction::Inbound => {
                keys.push(("ext_in", c.callee.clone()));
                keys.push(("trunk_in", c.route.trunk.clone()));
                keys.push(("did", c.route.did.clone()));
            }
            Direction::Outbound => {
                keys.push(("ext_out", c.caller.clone()));
                keys.push(("trunk_out", c.route.trunk.clone()));
            }
        }
        for (dim, key) in keys {
            let e = out.entry((dim.to_string(), key, day.clone())).or_default();
            e.offered += 1;
            match c.disposition {
                Disposition::Answered => {
                    e.answered += 1;
                    e.talk_s += c.billsec;
                    let w = (c.answer_time.unwrap() - c.start_time).num_milliseconds();
                    e.wait_ms += w;
                    e.wait_max_ms = e.wait_max_ms.max(w);
                }
                Disposition::NoAnswer => e.missed += 1,
                Disposition::Canceled => e.abandoned += 1,
                Disposition::Busy => e.busy += 1,
                Disposition::Failed => e.failed += 1,
            }
        }
    }
    out
}

async fn actual(
    s: &Store,
    tenant: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, String, String), Counts> {
    let mut out = BTreeMap::new();
    for dim in Dimension::ALL {
        let rows = s
            .report(&ReportQuery {
                tenant_id: tenant,
                period: Period::Day,
                dimension: *dim,
                from,
                to,
                key: None,
            })
            .await
            .unwrap();
        for r in rows {
            assert!(
                out.insert((dim.as_str().to_string(), r.key, r.bucket), r.counts)
                    .is_none()
            );
        }
    }
    out
}

async fn insert(s: &Store, cdrs: &[NewCdr]) {
    for c in cdrs {
        s.insert_cdr(c.clone()).await.unwrap();
    }
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 20, 0, 0).unwrap()
}

async fn aggregates_match_the_fixtures(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let cdrs = fixtures(t, base(), 400, 0);
    insert(&s, &cdrs).await;
    let o = s.aggregate_reports("UTC", 64, None).await.unwrap();
    assert_eq!(o.records, 400);
    assert!(o.batches >= 7, "bounded batches: {o:?}");
    let (from, to) = (
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
    );
    let want = expected(&cdrs, chrono_tz::UTC);
    assert_eq!(actual(&s, t, from, to).await, want);
    // Hours and months sum to the same totals; the totals per key match too.
    for period in [Period::Hour, Period::Month] {
        let rows = s
            .report(&ReportQuery {
                tenant_id: t,
                period,
                dimension: Dimension::All,
                from,
                to,
                key: None,
            })
            .await
            .unwrap();
        let mut sum = Counts::default();
        rows.iter().for_each(|r| sum.add(&r.counts));
        assert_eq!(sum.offered, 400, "{period:?}");
        assert_eq!(
            sum.talk_s,
            cdrs.iter().map(|c| c.billsec).sum::<i64>(),
            "{period:?}"
        );
    }
    let totals = s
        .report_totals(&ReportQuery {
            tenant_id: t,
            period: Period::Day,
            dimension: Dimension::TrunkOut,
            from,
            to,
            key: None,
        })
        .await
        .unwrap();
    for row in &totals {
        let mine: Vec<&NewCdr> = cdrs
            .iter()
            .filter(|c| c.route.direction == Direction::Outbound && c.route.trunk == row.key)
            .collect();
        let answered = mine
            .iter()
            .filter(|c| c.disposition == Disposition::Answered)
            .count();
        assert_eq!(row.counts.offered as usize, mine.len());
        assert_eq!(row.counts.answered as usize, answered);
        assert!((row.counts.asr() - answered as f64 / mine.len() as f64).abs() < 1e-9);
    }
    assert_eq!(totals.len(), 2);
    // Busiest hours: one call every 7 minutes, so every hour of the day has calls.
    let hours = s
        .busiest_hours(t, Dimension::All, None, from, to)
        .await
        .unwrap();
    assert_eq!(hours.iter().map(|h| h.offered).sum::<i64>(), 400);
    for (h, c) in hours.iter().enumerate() {
        let n = cdrs
            .iter()
            .filter(|x| chrono::Timelike::hour(&x.start_time) as usize == h)
            .count();
        assert_eq!(c.offered as usize, n, "hour {h}");
    }
    // Idempotent: nothing new, nothing changes.
    let o = s.aggregate_reports("UTC", 64, None).await.unwrap();
    assert_eq!(o.records, 0);
    assert_eq!(actual(&s, t, from, to).await, want);
    // Today vs last week.
    let now = base() + Duration::days(7) + Duration::hours(1);
    let later = fixtures(t, base() + Duration::days(7), 5, 0);
    insert(&s, &later).await;
    s.aggregate_reports("UTC", 64, None).await.unwrap();
    let cmp = s.compare_today(t, now).await.unwrap();
    assert_eq!(cmp.today_total.offered, 5);
    let last_week_day = (base() + Duration::days(0)).date_naive();
    assert_eq!(cmp.last_week, last_week_day);
    let lw = cdrs
        .iter()
        .filter(|c| c.start_time.date_naive() == last_week_day)
        .count();
    assert_eq!(cmp.last_week_total.offered as usize, lw);
    assert_eq!(cmp.hours[20].today.offered, 5);
}

async fn incremental_equals_rebuild(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let first = fixtures(t, base(), 150, 1);
    let second = fixtures(t, base() + Duration::minutes(3), 170, 2);
    insert(&s, &first).await;
    s.aggregate_reports("UTC", 40, None).await.unwrap();
    insert(&s, &second).await;
    // Bounded work: one batch of 40 per call.
    let o = s.aggregate_reports("UTC", 40, Some(1)).await.unwrap();
    assert_eq!(o.records, 40);
    s.aggregate_reports("UTC", 40, None).await.unwrap();
    let (from, to) = (
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
    );
    let incremental = actual(&s, t, from, to).await;
    let all: Vec<NewCdr> = first.iter().chain(&second).cloned().collect();
    assert_eq!(incremental, expected(&all, chrono_tz::UTC));
    let o = s.rebuild_reports("UTC", 1000).await.unwrap();
    assert_eq!(o.records, 320);
    assert_eq!(actual(&s, t, from, to).await, incremental);
    // Month rows are whole months: a range starting mid-month still shows all of March.
    let months = s
        .report(&ReportQuery {
            tenant_id: t,
            period: Period::Month,
            dimension: Dimension::All,
            from: NaiveDate::from_ymd_opt(2026, 3, 20).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 25).unwrap(),
            key: None,
        })
        .await
        .unwrap();
    assert_eq!(months.len(), 1);
    assert_eq!(months[0].counts.offered, 320);
}

async fn tokyo_day_boundary(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    // 14:59:59 UTC is 23:59:59 JST on the 2nd; 15:00:00 UTC is midnight JST, the 3rd.
    let mut cdrs = fixtures(
        t,
        Utc.with_ymd_and_hms(2026, 3, 2, 14, 59, 59).unwrap(),
        1,
        0,
    );
    cdrs.extend(fixtures(
        t,
        Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(),
        1,
        3,
    ));
    cdrs[0].start_time = Utc.with_ymd_and_hms(2026, 3, 2, 14, 59, 59).unwrap();
    cdrs[1].start_time = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
    for c in &mut cdrs {
        if c.answer_time.is_some() {
            c.answer_time = Some(c.start_time + Duration::seconds(2));
        }
    }
    insert(&s, &cdrs).await;
    s.aggregate_reports("UTC", 100, None).await.unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let q = |period| ReportQuery {
        tenant_id: t,
        period,
        dimension: Dimension::All,
        from: day(1),
        to: day(4),
        key: None,
    };
    let utc = s.report(&q(Period::Day)).await.unwrap();
    assert_eq!(utc.len(), 1);
    assert_eq!(utc[0].bucket, "2026-03-02");
    // Another zone rebuilds the tables.
    let o = s.aggregate_reports("Asia/Tokyo", 100, None).await.unwrap();
    assert!(o.rebuilt);
    assert_eq!(o.records, 2);
    assert_eq!(s.report_state().await.unwrap().timezone, "Asia/Tokyo");
    let jst = s.report(&q(Period::Day)).await.unwrap();
    let labels: Vec<(&str, i64)> = jst
        .iter()
        .map(|r| (r.bucket.as_str(), r.counts.offered))
        .collect();
    assert_eq!(labels, [("2026-03-02", 1), ("2026-03-03", 1)]);
    assert_eq!(
        jst[1].bucket_start,
        Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
    );
    assert_eq!(
        expected(&cdrs, chrono_tz::Asia::Tokyo).len(),
        actual(&s, t, day(1), day(4)).await.len()
    );
    assert_eq!(
        expected(&cdrs, chrono_tz::Asia::Tokyo),
        actual(&s, t, day(1), day(4)).await
    );
    // A range given in local days: the 3rd alone holds the midnight call only.
    let q3 = ReportQuery {
        from: day(3),
        to: day(3),
        ..q(Period::Hour)
    };
    let rows = s.report(&q3).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bucket, "2026-03-03 00:00");
    let hours = s
        .busiest_hours(t, Dimension::All, None, day(1), day(4))
        .await
        .unwrap();
    assert_eq!((hours[23].offered, hours[0].offered), (1, 1));
    let months = s.report(&q(Period::Month)).await.unwrap();
    assert_eq!(months.len(), 1);
    assert_eq!(months[0].bucket, "2026-03");
    assert_eq!(
        months[0].bucket_start,
        Utc.with_ymd_and_hms(2026, 2, 28, 15, 0, 0).unwrap()
    );
}

/// PostgreSQL assigns an id at insert, not at commit: a record whose transaction commits after
/// a later record was aggregated is still counted, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_late_commit_is_counted_once() {
    use sqlx::Connection;
    let (s, url, _g) = common::store(Backend::Postgres).await;
    let t = s.default_tenant().await.unwrap().id;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let at = base().timestamp_millis();
    sqlx::query(
        "INSERT INTO cdrs (tenant_id, call_id, caller, callee, start_time, end_time, duration_s,
            billsec, disposition, hangup_by) VALUES ($1, 'late', '1001', '1002', $2, $2, 0, 0, 'BUSY', 'caller')",
    )
    .bind(t)
    .bind(at)
    .execute(&mut *tx)
    .await
    .unwrap();
    let later = fixtures(t, base(), 3, 1);
    insert(&s, &later).await;
    let o = s.aggregate_reports("UTC", 100, None).await.unwrap();
    assert_eq!((o.records, o.late), (3, 0));
    tx.commit().await.unwrap();
    let o = s.aggregate_reports("UTC", 100, None).await.unwrap();
    assert_eq!((o.records, o.late), (1, 1));
    let o = s.aggregate_reports("UTC", 100, None).await.unwrap();
    assert_eq!(o.records, 0);
    let day = base().date_naive();
    let rows = s
        .report(&ReportQuery {
            tenant_id: t,
            period: Period::Day,
            dimension: Dimension::All,
            from: day,
            to: day,
            key: None,
        })
        .await
        .unwrap();
    let busy_before = later
        .iter()
        .filter(|c| c.disposition == Disposition::Busy)
        .count() as i64;
    assert_eq!(rows[0].counts.offered, 4);
    assert_eq!(rows[0].counts.busy, busy_before + 1);
}

/// New York moves its clocks on 2026-03-08: a call at 09:30 local every day is at 14:30 UTC
/// before and 13:30 UTC after, and counts in hour 9 throughout.
async fn busiest_hours_across_a_dst_change(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let tz = chrono_tz::America::New_York;
    let mut cdrs = Vec::new();
    for d in 1..=14 {
        let local = NaiveDate::from_ymd_opt(2026, 3, d)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap();
        let start = tz.from_local_datetime(&local).unwrap().with_timezone(&Utc);
        let mut c = fixtures(t, start, 1, d as usize).remove(0);
        c.start_time = start;
        c.answer_time = c.answer_time.map(|_| start + Duration::seconds(3));
        cdrs.push(c);
    }
    insert(&s, &cdrs).await;
    s.aggregate_reports("America/New_York", 100, None)
        .await
        .unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let hours = s
        .busiest_hours(t, Dimension::All, None, day(1), day(14))
        .await
        .unwrap();
    assert_eq!(hours[9].offered, 14, "{hours:?}");
    assert_eq!(hours.iter().map(|h| h.offered).sum::<i64>(), 14);
    let days = s
        .report(&ReportQuery {
            tenant_id: t,
            period: Period::Day,
            dimension: Dimension::All,
            from: day(1),
            to: day(14),
            key: None,
        })
        .await
        .unwrap();
    assert_eq!(days.len(), 14);
    assert!(days.iter().all(|r| r.counts.offered == 1));
}
