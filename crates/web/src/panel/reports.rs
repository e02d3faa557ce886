//! The Reports page (レポート): a date-range form, server-drawn SVG charts (no script), a table
//! with CSV export, a printable view, busiest hours, and today against the same weekday last
//! week. Figures come from the report tables (`store::report`), as of the last aggregation.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use store::report::{Counts, Dimension, Period, ReportRow, TodayCompare};

use super::{Ctx, Signed, fail, field, page, url_encode};
use crate::Web;
use crate::api::ApiError;
use crate::api::reports::{self as api, ReportParams};
use crate::i18n::Lang;

const CSS: &str = r#"
.report-form { display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: end; margin-bottom: 1em; }
.chart { width: 100%; max-width: 960px; height: auto; border: 1px solid #ddd; background: #fff; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: middle; }
.sw-answered { background: #2e7d32; } .sw-missed { background: #f9a825; }
.sw-abandoned { background: #c62828; } .sw-busy { background: #6d4c41; }
.sw-today { background: #1565c0; } .sw-lastweek { background: #90a4ae; }
table.report td, table.report th { text-align: right; padding: .2em .5em; }
table.report td:first-child, table.report th:first-child { text-align: left; }
.report-links a { margin-right: 1em; }
@media print {
  header, nav, form, .report-links, .no-print { display: none !important; }
  body { font-size: 10pt; }
  .chart { border: none; max-width: 100%; }
  table.report { page-break-inside: auto; } table.report tr { page-break-inside: avoid; }
}
"#;

/// `(key, English, Japanese)`: this page's own texts.
const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Reports", "レポート"),
    ("from", "From", "開始日"),
    ("to", "To", "終了日"),
    ("period", "Period", "集計単位"),
    ("hour", "Hour", "時間"),
    ("day", "Day", "日"),
    ("month", "Month", "月"),
    ("dimension", "By", "集計軸"),
    ("all", "All calls", "全通話"),
    ("direction", "Direction", "方向"),
    ("ext_out", "Extension (calls made)", "内線（発信）"),
    ("ext_in", "Extension (calls received)", "内線（着信）"),
    ("trunk_out", "Trunk (outbound)", "外線トランク（発信）"),
    ("trunk_in", "Trunk (inbound)", "外線トランク（着信）"),
    ("did", "DID", "着信番号（DID）"),
    ("group", "Ring group", "着信グループ"),
    ("key", "Only", "対象"),
    ("show", "Show", "表示"),
    ("csv", "Download CSV", "CSV をダウンロード"),
    ("print", "Printable view", "印刷用表示"),
    ("bucket", "Period", "期間"),
    ("keycol", "Key", "キー"),
    ("offered", "Offered", "総数"),
    ("answered", "Answered", "応答"),
    ("missed", "Missed", "不在"),
    ("abandoned", "Abandoned", "放棄"),
    ("busy", "Busy", "話中"),
    ("failed", "Failed", "失敗"),
    ("talk", "Talk time", "通話時間"),
    ("asr", "ASR", "応答率"),
    ("acd", "Avg. duration", "平均通話時間"),
    ("avg_wait", "Avg. wait", "平均待ち時間"),
    ("max_wait", "Longest wait", "最長待ち時間"),
    ("total", "Total", "合計"),
    ("hours", "Busiest hours", "時間帯別"),
    (
        "today",
        "Today vs. the same weekday last week",
        "本日と先週同曜日の比較",
    ),
    ("today_s", "Today", "本日"),
    ("lastweek_s", "Last week", "先週"),
    (
        "empty",
        "No calls in this range.",
        "この期間の通話はありません。",
    ),
    ("asof", "As of the aggregation at", "集計時刻"),
    ("never", "not aggregated yet", "未集計"),
    ("tz", "time zone", "タイムゾーン"),
    (
        "too_many",
        "Too many bars to draw; choose a longer period.",
        "棒が多すぎて描けません。集計単位を長くしてください。",
    ),
    (
        "group_note",
        "Ring groups are counted once ring groups exist.",
        "着信グループは、着信グループ機能の導入後に集計されます。",
    ),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    super::table_text(TEXTS, lang, key)
}

/// Routes of the report pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/reports", get(reports))
        .route("/reports.csv", get(reports_csv))
        .route("/static/reports.css", get(css))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
}

fn params(q: &HashMap<String, String>) -> ReportParams {
    let get = |k: &str| Some(field(q, k).to_string()).filter(|s| !s.is_empty());
    ReportParams {
        period: get("period"),
        from: get("from"),
        to: get("to"),
        dimension: get("dimension"),
        key: get("key"),
        totals: get("totals"),
    }
}

/// The query string of the form's values (for the CSV and print links).
fn form_query(q: &HashMap<String, String>) -> String {
    ["from", "to", "period", "dimension", "key", "totals"]
        .iter()
        .filter(|k| !field(q, k).is_empty())
        .map(|k| format!("{k}={}", url_encode(field(q, k))))
        .collect::<Vec<_>>()
        .join("&")
}

async fn checked(w: &Web, q: &HashMap<String, String>) -> Result<api::Checked, ApiError> {
    let tenant = w.store().default_tenant().await?.id;
    let mut c = params(q).check(tenant, api::report_today(w).await?)?;
    // A keyed dimension without a key: one row per key over the range.
    if c.query.key.is_none() && !matches!(c.query.dimension, Dimension::All) {
        c.totals = true;
    }
    Ok(c)
}

/// Escapes text for SVG markup written by hand.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hms(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

const W: f64 = 960.0;
const H: f64 = 260.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 40.0;
/// Most bars one chart draws.
const MAX_BARS: usize = 1000;

/// Horizontal grid lines with their values (0 to `max` in quarters).
fn grid(svg: &mut String, max: f64, plot_h: f64) {
    use std::fmt::Write as _;
    for i in 0..=4 {
        let y = 10.0 + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{PAD_L}" y1="{y:.1}" x2="{W}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            PAD_L - 4.0,
            y + 3.0,
            (max * i as f64 / 4.0).round()
        );
    }
}

/// Stacked bars: answered, missed, abandoned, busy + failed, one bar per `(label, counts)`.
fn stacked_chart(lang: Lang, id: &str, bars: &[(String, Counts)]) -> Markup {
    if bars.len() > MAX_BARS {
        return html! { p.empty { (tr(lang, "too_many")) } };
    }
    let max = bars
        .iter()
        .map(|(_, c)| c.offered)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = W - PAD_L - 8.0;
    let plot_h = H - PAD_B - 10.0;
    let slot = plot_w / bars.len().max(1) as f64;
    let bw = (slot * 0.8).max(0.5);
    let label_every = (bars.len() / 12).max(1);
    let mut svg = String::new();
    use std::fmt::Write as _;
    let _ = write!(
        svg,
        r#"<svg class="chart" id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img">"#
    );
    grid(&mut svg, max, plot_h);
    for (i, (label, c)) in bars.iter().enumerate() {
        let x = PAD_L + slot * i as f64 + (slot - bw) / 2.0;
        let mut y = 10.0 + plot_h;
        let parts = [
            ("answered", c.answered, "#2e7d32"),
            ("missed", c.missed, "#f9a825"),
            ("abandoned", c.abandoned, "#c62828"),
            ("busy", c.busy + c.failed, "#6d4c41"),
        ];
        for (class, n, color) in parts {
            if n == 0 {
                continue;
            }
            let h = plot_h * n as f64 / max;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect class="bar {class}" x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{h:.2}" fill="{color}"><title>{} {}: {n}</title></rect>"#,
                esc(label),
                tr(lang, class),
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                x + bw / 2.0,
                H - PAD_B + 14.0,
                esc(label)
            );
        }
    }
    svg.push_str("</svg>");
    html! {
        (PreEscaped(svg))
        p.legend {
            span { i.sw-answered {} (tr(lang, "answered")) }
            span { i.sw-missed {} (tr(lang, "missed")) }
            span { i.sw-abandoned {} (tr(lang, "abandoned")) }
            span { i.sw-busy {} (tr(lang, "busy")) " / " (tr(lang, "failed")) }
        }
    }
}

/// Paired bars per hour: today and the same weekday last week.
fn compare_chart(lang: Lang, cmp: &TodayCompare) -> Markup {
    use std::fmt::Write as _;
    let max = cmp
        .hours
        .iter()
        .map(|h| h.today.offered.max(h.last_week.offered))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = W - PAD_L - 8.0;
    let plot_h = H - PAD_B - 10.0;
    let slot = plot_w / 24.0;
    let bw = slot * 0.38;
    let mut svg = format!(
        r#"<svg class="chart" id="today-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img">"#
    );
    grid(&mut svg, max, plot_h);
    for h in &cmp.hours {
        let x0 = PAD_L + slot * h.hour as f64 + slot * 0.1;
        for (j, (c, color, class)) in [
            (&h.last_week, "#90a4ae", "lastweek"),
            (&h.today, "#1565c0", "today"),
        ]
        .into_iter()
        .enumerate()
        {
            let hh = plot_h * c.offered as f64 / max;
            let _ = write!(
                svg,
                r#"<rect class="bar {class}" x="{:.2}" y="{:.2}" width="{bw:.2}" height="{hh:.2}" fill="{color}"><title>{:02}:00 {}: {}</title></rect>"#,
                x0 + j as f64 * bw,
                10.0 + plot_h - hh,
                h.hour,
                tr(
                    lang,
                    if class == "today" {
                        "today_s"
                    } else {
                        "lastweek_s"
                    }
                ),
                c.offered
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
            x0 + bw,
            H - PAD_B + 14.0,
            h.hour
        );
    }
    svg.push_str("</svg>");
    html! {
        (PreEscaped(svg))
        p.legend {
            span { i.sw-today {} (tr(lang, "today_s")) " " (cmp.today) ": " (cmp.today_total.offered) }
            span { i.sw-lastweek {} (tr(lang, "lastweek_s")) " " (cmp.last_week) ": " (cmp.last_week_total.offered) }
        }
    }
}

/// The dashboard's panel: today against the same weekday last week, per hour (from the report
/// tables, as of the last aggregation); empty when the figures cannot be read.
pub(super) async fn dashboard_today(w: &Web, ctx: &Ctx) -> Markup {
    let cmp = match w.store().default_tenant().await {
        Ok(t) => w.store().compare_today(t.id, chrono::Utc::now()).await,
        Err(e) => Err(e),
    };
    match cmp {
        Ok(cmp) => html! {
            section id="dash-today" {
                link rel="stylesheet" href="/static/reports.css";
                h2 { a href="/reports" { (tr(ctx.lang, "today")) } }
                (compare_chart(ctx.lang, &cmp))
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: today against last week");
            html! {}
        }
    }
}

fn table(lang: Lang, rows: &[ReportRow], keyed: bool) -> Markup {
    let mut total = Counts::default();
    rows.iter().for_each(|r| total.add(&r.counts));
    let cells = |c: &Counts| {
        html! {
            td.offered { (c.offered) } td { (c.answered) } td { (c.missed) } td { (c.abandoned) }
            td { (c.busy) } td { (c.failed) } td { (hms(c.talk_s as f64)) }
            td { (format!("{:.1}%", c.asr() * 100.0)) } td { (hms(c.acd_s())) }
            td { (format!("{:.1}", c.avg_wait_s())) } td { (format!("{:.1}", c.wait_max_ms as f64 / 1000.0)) }
        }
    };
    html! {
        table.report id="report-table" {
            thead { tr {
                th { (tr(lang, if keyed { "keycol" } else { "bucket" })) }
                @for k in ["offered", "answered", "missed", "abandoned", "busy", "failed", "talk", "asr", "acd", "avg_wait", "max_wait"] {
                    th { (tr(lang, k)) }
                }
            } }
            tbody {
                @for r in rows { tr.row data-key=(r.key) data-bucket=(r.bucket) {
                    td { @if keyed { (r.key) } @else { (r.bucket) } }
                    (cells(&r.counts))
                } }
            }
            tfoot { tr { th { (tr(lang, "total")) } (cells(&total)) } }
        }
    }
}

struct View {
    checked: Option<api::Checked>,
    error: Option<ApiError>,
    rows: Vec<ReportRow>,
    hours: Vec<Counts>,
    today: Option<TodayCompare>,
    state: Option<store::report::ReportState>,
}

async fn load(w: &Web, q: &HashMap<String, String>) -> Result<View, ApiError> {
    let state = Some(w.store().report_state().await?);
    let checked = match checked(w, q).await {
        Ok(c) => c,
        Err(e) if e.code == "invalid" => {
            return Ok(View {
                checked: None,
                error: Some(e),
                rows: Vec::new(),
                hours: Vec::new(),
                today: None,
                state,
            });
        }
        Err(e) => return Err(e),
    };
    let rows = api::run(w, &checked).await?;
    let cq = &checked.query;
    // Busiest hours of one key, or of all calls when a keyed dimension shows every key (the
    // hour buckets of every extension over a long range are too many to sum for a page).
    let dim = if cq.key.is_none() {
        Dimension::All
    } else {
        cq.dimension
    };
    let hours = w
        .store()
        .busiest_hours(cq.tenant_id, dim, cq.key.as_deref(), cq.from, cq.to)
        .await?;
    let today = Some(
        w.store()
            .compare_today(cq.tenant_id, chrono::Utc::now())
            .await?,
    );
    Ok(View {
        checked: Some(checked),
        error: None,
        rows,
        hours,
        today,
        state,
    })
}

fn body(ctx: &Ctx, q: &HashMap<String, String>, v: &View) -> Markup {
    let lang = ctx.lang;
    let sel = |k: &str, val: &str, default: &str| {
        let cur = field(q, k);
        if cur.is_empty() {
            val == default
        } else {
            cur == val
        }
    };
    let (from, to) = v
        .checked
        .as_ref()
        .map(|c| (c.query.from.to_string(), c.query.to.to_string()))
        .unwrap_or_else(|| (field(q, "from").to_string(), field(q, "to").to_string()));
    let fq = form_query(q);
    let keyed = v.checked.as_ref().is_some_and(|c| c.totals);
    let bars: Vec<(String, Counts)> = v
        .rows
        .iter()
        .map(|r| {
            (
                if keyed {
                    r.key.clone()
                } else {
                    r.bucket.clone()
                },
                r.counts,
            )
        })
        .collect();
    let hour_bars: Vec<(String, Counts)> = v
        .hours
        .iter()
        .enumerate()
        .map(|(h, c)| (format!("{h}"), *c))
        .collect();
    html! {
        link rel="stylesheet" href="/static/reports.css";
        @if let Some(e) = &v.error { p.error role="alert" { (ctx.t("err.invalid")) " (" (e.message) ")" } }
        @if let Some(s) = &v.state {
            p.asof { (tr(lang, "asof")) " "
                @match s.updated_at { Some(t) => { (super::fmt_time(&t)) " UTC" }, None => { (tr(lang, "never")) } }
                " · " (tr(lang, "tz")) ": " span id="report-tz" { (s.timezone) } }
        }
        form.report-form method="get" action="/reports" {
            label { (tr(lang, "from")) input type="date" name="from" value=(from); }
            label { (tr(lang, "to")) input type="date" name="to" value=(to); }
            label { (tr(lang, "period"))
                select name="period" { @for p in Period::ALL {
                    option value=(p.as_str()) selected[sel("period", p.as_str(), "day")] { (tr(lang, p.as_str())) }
                } }
            }
            label { (tr(lang, "dimension"))
                select name="dimension" { @for d in Dimension::ALL {
                    option value=(d.as_str()) selected[sel("dimension", d.as_str(), "all")] { (tr(lang, d.as_str())) }
                } }
            }
            label { (tr(lang, "key")) input type="text" name="key" value=(field(q, "key")) size="12"; }
            button type="submit" { (tr(lang, "show")) }
        }
        p.report-links {
            a id="report-csv" href={ "/reports.csv?" (fq) } { (tr(lang, "csv")) }
            a id="report-print" href={ "/reports?" (fq) (if fq.is_empty() { "" } else { "&" }) "print=1" } { (tr(lang, "print")) }
        }
        @if field(q, "dimension") == "group" { p.empty { (tr(lang, "group_note")) } }
        @if v.rows.is_empty() { p.empty id="report-empty" { (tr(lang, "empty")) } } @else {
            section { (stacked_chart(lang, "report-chart", &bars)) }
        }
        section { (table(lang, &v.rows, keyed)) }
        section {
            h2 { (tr(lang, "hours")) @if v.checked.as_ref().is_some_and(|c| c.query.key.is_none() && c.query.dimension != Dimension::All) { " (" (tr(lang, "all")) ")" } }
            (stacked_chart(lang, "hours-chart", &hour_bars))
        }
        @if let Some(cmp) = &v.today {
            section {
                h2 { (tr(lang, "today")) }
                (compare_chart(lang, cmp))
            }
        }
    }
}

async fn reports(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = match load(&w, &q).await {
        Ok(v) => v,
        Err(e) => return fail(&ctx, e),
    };
    let status = if v.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    if field(&q, "print") == "1" {
        let title = tr(ctx.lang, "title");
        let doc = html! {
            (DOCTYPE)
            html lang=(ctx.lang.code()) {
                head {
                    meta charset="utf-8";
                    title { (title) " — Denwa" }
                    link rel="stylesheet" href="/static/style.css";
                }
                body.print {
                    h1 { (title) @if let Some(c) = &v.checked { " " (c.query.from) " – " (c.query.to) } }
                    (body(&ctx, &q, &v))
                }
            }
        };
        return (status, doc).into_response();
    }
    page(&ctx, status, "nav.reports", body(&ctx, &q, &v))
}

async fn reports_csv(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let res = async {
        let c = checked(&w, &q).await?;
        Ok::<_, ApiError>(api::csv(&api::run(&w, &c).await?))
    }
    .await;
    match res {
        Ok(body) => api::csv_response(body),
        Err(e) => fail(&ctx, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_has_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for (k, en, ja) in TEXTS {
            assert!(seen.insert(*k), "duplicate {k}");
            assert_ne!(en, ja, "{k}");
        }
        for d in Dimension::ALL {
            assert_ne!(tr(Lang::En, d.as_str()), "?");
        }
        for p in Period::ALL {
            assert_ne!(tr(Lang::Ja, p.as_str()), "?");
        }
    }
}
