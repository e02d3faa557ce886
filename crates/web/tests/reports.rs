//! Reports through the REST API and the panel: the figures of a known set of call records,
//! computed here with a plain loop, equal what `/api/v1/reports/...` answers; the panel page
//! renders in English and Japanese with SVG bars, a CSV export and a printable view.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use common::app;
use common::browser::signed_in;
use store::{CdrRoute, Direction, Disposition, HangupBy, LegStats, NewCdr};

/// offered, answered, missed, abandoned, busy, failed, talk_s.
type Figures = (i64, i64, i64, i64, i64, i64, i64);

fn calls(tenant: i64) -> Vec<NewCdr> {
    let base = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let disps = [
        Disposition::Answered,
        Disposition::NoAnswer,
        Disposition::Canceled,
        Disposition::Answered,
        Disposition::Busy,
        Disposition::Failed,
    ];
    (0..90)
        .map(|i: i64| {
            let start = base + Duration::minutes(47 * i);
            let disposition = disps[i as usize % disps.len()];
            let answer = (disposition == Disposition::Answered)
                .then(|| start + Duration::seconds(i % 9 + 1));
            let direction =
                [Direction::Outbound, Direction::Inbound, Direction::Internal][i as usize % 3];
            NewCdr {
                tenant_id: tenant,
                call_id: format!("r-{i}"),
                caller: format!("10{:02}", i % 5),
                callee: format!("20{:02}", i % 4),
                caller_name: String::new(),
                start_time: start,
                answer_time: answer,
                end_time: start + Duration::seconds(100),
                duration_s: 100,
                billsec: if answer.is_some() { 30 + i } else { 0 },
                disposition,
                hangup_by: HangupBy::Caller,
                hangup_cause: String::new(),
                codec: String::new(),
                a: LegStats::default(),
                b: LegStats::default(),
                route: CdrRoute {
                    direction,
                    trunk: if direction == Direction::Internal {
                        String::new()
                    } else {
                        ["carrier-a", "carrier-b"][i as usize / 3 % 2].into()
                    },
                    did: if direction == Direction::Inbound {
                        "0312345678".into()
                    } else {
                        String::new()
                    },
                    ..CdrRoute::default()
                },
            }
        })
        .collect()
}

async fn loaded() -> (common::App, Vec<NewCdr>) {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    let cdrs = calls(t);
    for c in &cdrs {
        a.store.insert_cdr(c.clone()).await.unwrap();
    }
    let o = a.store.aggregate_reports("UTC", 1000, None).await.unwrap();
    assert_eq!(o.records, 90);
    (a, cdrs)
}

#[tokio::test]
async fn api_figures_equal_an_independent_count() {
    let (a, cdrs) = loaded().await;
    // Per day, all calls.
    let mut want: BTreeMap<String, Figures> = BTreeMap::new();
    for c in &cdrs {
        let e = want
            .entry(c.start_time.format("%Y-%m-%d").to_string())
            .or_default();
        e.0 += 1;
        match c.disposition {
            Disposition::Answered => {
                e.1 += 1;
                e.6 += c.billsec;
            }
            Disposition::NoAnswer => e.2 += 1,
            Disposition::Canceled => e.3 += 1,
            Disposition::Busy => e.4 += 1,
            Disposition::Failed => e.5 += 1,
        }
    }
    let r = a
        .api(
            "GET",
            "/reports/calls?period=day&from=2026-03-01&to=2026-03-10",
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["aggregation"]["timezone"], "UTC");
    let got: BTreeMap<String, Figures> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap();
            (
                r["bucket"].as_str().unwrap().to_string(),
                (
                    n("offered"),
                    n("answered"),
                    n("missed"),
                    n("abandoned"),
                    n("busy"),
                    n("failed"),
                    n("talk_s"),
                ),
            )
        })
        .collect();
    assert_eq!(got, want);

    // Trunk ASR and ACD over outbound calls, totals per trunk.
    let r = a
        .get("/reports/calls?dimension=trunk_out&totals=true&from=2026-03-01&to=2026-03-10")
        .await;
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let trunk = row["key"].as_str().unwrap();
        let mine: Vec<&NewCdr> = cdrs
            .iter()
            .filter(|c| c.route.direction == Direction::Outbound && c.route.trunk == trunk)
            .collect();
        let answered: Vec<&&NewCdr> = mine
            .iter()
            .filter(|c| c.disposition == Disposition::Answered)
            .collect();
        let talk: i64 = answered.iter().map(|c| c.billsec).sum();
        assert_eq!(row["offered"].as_i64().unwrap() as usize, mine.len());
        let asr = answered.len() as f64 / mine.len() as f64;
        assert!((row["asr"].as_f64().unwrap() - asr).abs() < 0.001, "{row}");
        let acd = talk as f64 / answered.len() as f64;
        assert!(
            (row["acd_s"].as_f64().unwrap() - acd).abs() < 0.001,
            "{row}"
        );
        let max_wait = answered
            .iter()
            .map(|c| (c.answer_time.unwrap() - c.start_time).num_seconds())
            .max()
            .unwrap();
        assert_eq!(row["max_wait_s"].as_f64().unwrap(), max_wait as f64);
    }

    // Busiest hours.
    let h = a.get("/reports/hours?from=2026-03-01&to=2026-03-10").await;
    let hours = h["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    for (i, v) in hours.iter().enumerate() {
        let n = cdrs
            .iter()
            .filter(|c| chrono::Timelike::hour(&c.start_time) as usize == i)
            .count();
        assert_eq!(v["offered"].as_i64().unwrap() as usize, n, "hour {i}");
    }

    // CSV: a header and one line per day.
    let r = a
        .api(
            "GET",
            "/reports/calls.csv?from=2026-03-01&to=2026-03-10",
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text();
    assert!(text.starts_with("bucket,bucket_start,key,offered"));
    assert_eq!(text.lines().count(), 1 + want.len());

    // Today vs last week has 24 hours.
    let t = a.get("/reports/today").await;
    assert_eq!(t["hours"].as_array().unwrap().len(), 24);

    // Refusals name the field.
    for (q, field) in [
        ("period=week", "period"),
        ("dimension=queue", "dimension"),
        ("from=2026-13-01", "from"),
        ("from=2026-03-05&to=2026-03-01", "to"),
        (
            "period=hour&dimension=ext_in&from=2026-01-01&to=2026-03-01",
            "period",
        ),
    ] {
        let r = a
            .api("GET", &format!("/reports/calls?{q}"), Some(&a.read), None)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert_eq!(r.json()["error"]["field"], field, "{q}");
    }
    let r = a.api("GET", "/reports/calls", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn panel_page_in_english_and_japanese() {
    let (a, _cdrs) = loaded().await;
    let mut b = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let q = "/reports?from=2026-03-01&to=2026-03-10&period=day";
    let r = b.get(q).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.text();
    assert!(page.contains("href=\"/reports\""), "nav link");
    assert!(page.contains("<svg class=\"chart\" id=\"report-chart\""));
    assert!(
        page.matches("class=\"bar answered\"").count() >= 3,
        "bars per day"
    );
    assert!(page.contains("id=\"hours-chart\"") && page.contains("id=\"today-chart\""));
    assert!(page.contains("Answered") && page.contains("Busiest hours"));
    assert!(page.contains("/static/reports.css"));
    assert!(
        page.contains("href=\"/reports.csv?from=2026-03-01&amp;to=2026-03-10&amp;period=day\"")
    );
    // By extension: one row per extension.
    let page = b
        .get("/reports?from=2026-03-01&to=2026-03-10&dimension=ext_out")
        .await
        .text();
    assert!(page.contains("data-key=\"1000\""), "{page}");
    // Printable view: no navigation.
    let page = b.get(&format!("{q}&print=1")).await.text();
    assert!(page.contains("report-chart") && !page.contains("href=\"/trunks\""));
    let css = b.get("/static/reports.css").await.text();
    assert!(css.contains("@media print"));
    // CSV from the panel.
    let r = b.get("/reports.csv?from=2026-03-01&to=2026-03-10").await;
    assert!(r.text().starts_with("bucket,"));
    // Japanese.
    b.lang = Some("ja");
    let page = b.get(q).await.text();
    assert!(page.contains("lang=\"ja\""));
    for text in [
        "レポート",
        "応答",
        "時間帯別",
        "本日と先週同曜日の比較",
        "CSV をダウンロード",
    ] {
        assert!(page.contains(text), "{text}");
    }
    // A bad date is shown, not a crash.
    let r = b.get("/reports?from=yesterday").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The whole-year page over the report bench's database (issue 16: under 300 ms). Run after
/// `REPORT_BENCH_DIR=DIR cargo run --release -p store --example report_bench`:
/// `REPORT_BENCH_DIR=DIR cargo test -p web --test reports -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn whole_year_page_timing() {
    let Some(dir) = std::env::var_os("REPORT_BENCH_DIR") else {
        return;
    };
    let db = std::path::Path::new(&dir).join("denwa.db");
    let store = store::Store::open(db.to_str().unwrap(), store::OpenOptions::default())
        .await
        .unwrap();
    let control = std::sync::Arc::new(common::FakeControl::new());
    let data = tempfile::tempdir().unwrap();
    let web = web::Web::new(
        control.clone(),
        store.clone(),
        std::time::Instant::now(),
        web::NodeInfo::default(),
    );
    let a = common::App {
        router: web::router(web.clone()),
        web,
        store: store.clone(),
        control,
        data,
        full: String::new(),
        read: String::new(),
    };
    let mut b = signed_in(&a, "bench-viewer", store::AdminRole::Viewer).await;
    let tz = store.report_tz().await.unwrap();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let from = today - Duration::days(365);
    for (name, q) in [
        (
            "days, all calls",
            format!("/reports?from={from}&to={today}&period=day"),
        ),
        (
            "months, all calls",
            format!("/reports?from={from}&to={today}&period=month"),
        ),
        (
            "per extension (made)",
            format!("/reports?from={from}&to={today}&dimension=ext_out"),
        ),
        (
            "per trunk (outbound)",
            format!("/reports?from={from}&to={today}&dimension=trunk_out"),
        ),
    ] {
        let mut best = f64::MAX;
        let mut size = 0;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let r = b.get(&q).await;
            assert_eq!(r.status, StatusCode::OK);
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
            size = r.body.len();
        }
        println!(
            "whole-year report page, {name}: {best:.0} ms ({} kB)",
            size / 1000
        );
    }
    let _ = a.store.delete_admin("bench-viewer").await;
}
