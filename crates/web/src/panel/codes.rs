//! Panel pages for feature codes and pickup groups (`/features`) and for time conditions with
//! their state now, the day/night override and the holiday calendar (`/timeconds`).
//! Validation is the store's; a refusal is shown above the forms with the reason.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::timecond::{Mode, TimeCondSpec};
use maud::{Markup, html};

use super::outside::tenant;
use super::{Ctx, Signed, check_write, csrf_field, err_text, fail, layout, table_text, url_encode};
use crate::Web;
use crate::api::ApiError;

type FormMap = HashMap<String, String>;

/// This page's texts (key, English, Japanese).
const TEXT: &[(&str, &str, &str)] = &[
    (
        "title.features",
        "Feature codes and pickup groups",
        "特番とピックアップグループ",
    ),
    (
        "title.timeconds",
        "Time conditions (day/night)",
        "時間条件(昼/夜)",
    ),
    ("feature", "Feature", "機能"),
    ("code", "Code", "特番"),
    ("default", "Default", "既定"),
    ("what", "What it does", "内容"),
    ("off", "off", "無効"),
    ("save", "Save", "保存"),
    ("switch_off", "Switch off", "無効にする"),
    ("reset", "Default", "既定に戻す"),
    ("saved", "Saved.", "保存しました。"),
    ("pickup", "Pickup groups", "ピックアップグループ"),
    (
        "pickup.about",
        "*8 answers a call ringing at an extension sharing a group; **EXT the call ringing at EXT, if you share a group.",
        "*8 で同じグループの内線で鳴っている着信に応答、**内線番号 でその内線の着信に応答(同じグループのみ)。",
    ),
    (
        "pickup.none",
        "No pickup groups yet.",
        "ピックアップグループはまだありません。",
    ),
    ("group", "Group", "グループ"),
    ("members", "Members", "メンバー"),
    ("extension", "Extension", "内線"),
    (
        "groups",
        "Groups (comma-separated; empty: none)",
        "グループ(カンマ区切り、空欄で解除)",
    ),
    (
        "tc.none",
        "No time conditions yet.",
        "時間条件はまだありません。",
    ),
    ("name", "Name", "名前"),
    ("number", "Number", "番号"),
    (
        "index",
        "Day/night index (*28 + index)",
        "昼夜切替番号(*28 + 番号)",
    ),
    ("mode", "Override", "手動切替"),
    ("state", "Now", "現在"),
    ("day", "day", "昼"),
    ("night", "night", "夜"),
    ("auto", "auto", "自動"),
    ("matched", "Day destination", "昼の転送先"),
    ("unmatched", "Night destination", "夜の転送先"),
    ("why", "Why", "理由"),
    (
        "weekly",
        "Open hours, one per line (mon-fri 09:00-18:00)",
        "営業時間(1行に1つ、例 mon-fri 09:00-18:00)",
    ),
    (
        "dates",
        "Date rules, one per line (2026-12-29..2027-01-03 closed)",
        "日付ルール(1行に1つ、例 2026-12-29..2027-01-03 closed)",
    ),
    (
        "use_holidays",
        "Closed on the calendar's holidays",
        "祝日は休業",
    ),
    ("add", "Add a time condition", "時間条件を追加"),
    ("delete", "Delete", "削除"),
    ("calendar", "Time zone and holidays", "タイムゾーンと祝日"),
    ("timezone", "Time zone", "タイムゾーン"),
    (
        "japan",
        "Japanese national holidays (computed by rule)",
        "日本の国民の祝日(法律の規則で計算)",
    ),
    ("holidays_year", "Holidays this year", "今年の祝日"),
    ("date", "Date", "日付"),
    ("yearly", "Every year", "毎年"),
    ("add_holiday", "Make a holiday", "休日にする"),
    ("remove_holiday", "Make a working day", "営業日にする"),
    (
        "import",
        "Import an iCalendar file (.ics text, all-day events)",
        "iCalendar(.ics)の取り込み(終日の予定)",
    ),
    ("imported", "Holidays imported.", "休日を取り込みました。"),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

/// Routes of these pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/features", get(features))
        .route("/features/{feature}", post(set_feature))
        .route("/pickup", post(set_pickup))
        .route("/timeconds", get(timeconds).post(create_tc))
        .route("/timeconds/{name}/mode", post(set_mode))
        .route("/timeconds/{name}/delete", post(delete_tc))
        .route("/holiday-calendar", post(set_calendar))
        .route("/holiday-calendar/day", post(holiday_day))
        .route("/holiday-calendar/import", post(import_ics))
}

fn ok(ctx: &Ctx, key: &str) -> Markup {
    html! { p.ok role="status" id="form-ok" { (tx(ctx, key)) } }
}

fn err(ctx: &Ctx, e: &ApiError) -> Markup {
    html! { p.error role="alert" id="form-error" data-field=(e.field.clone().unwrap_or_default()) { (err_text(ctx, e)) } }
}

fn status_of(r: &Result<(), ApiError>) -> (StatusCode, bool) {
    match r {
        Ok(()) => (StatusCode::OK, true),
        Err(e) if e.code == "invalid" || e.code == "conflict" || e.code == "not_found" => {
            (StatusCode::UNPROCESSABLE_ENTITY, false)
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, false),
    }
}

// ----- feature codes and pickup groups -----

async fn features_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let data = async {
        let t = tenant(w).await?;
        Ok::<_, ApiError>((
            w.store().list_feature_codes(t).await?,
            w.store().pickup_groups(t).await?,
        ))
    }
    .await;
    let (codes, groups) = match data {
        Ok(d) => d,
        Err(e) => return fail(ctx, e),
    };
    let body = html! {
        (msg)
        table.features id="feature-codes" {
            thead { tr { th { (tx(ctx, "feature")) } th { (tx(ctx, "code")) } th { (tx(ctx, "default")) } th { (tx(ctx, "what")) } } }
            tbody { @for c in &codes {
                tr data-feature=(c.feature) {
                    td { code { (c.feature) } }
                    td {
                        @if ctx.is_admin() {
                            form.inline method="post" action={ "/features/" (c.feature) } {
                                (csrf_field(ctx))
                                input type="text" name="code" size="6" value=(c.code.clone().unwrap_or_default()) aria-label=(tx(ctx, "code"));
                                button type="submit" name="action" value="save" { (tx(ctx, "save")) }
                                button type="submit" name="action" value="off" { (tx(ctx, "switch_off")) }
                                button type="submit" name="action" value="reset" { (tx(ctx, "reset")) }
                            }
                        } @else {
                            code { (c.code.clone().unwrap_or_else(|| tx(ctx, "off").to_string())) }
                        }
                    }
                    td { code { (c.default) } }
                    td { (c.about) }
                }
            } }
        }
        h2 { (tx(ctx, "pickup")) }
        p { (tx(ctx, "pickup.about")) }
        @if groups.is_empty() { p.empty id="no-pickup" { (tx(ctx, "pickup.none")) } } @else {
            table id="pickup-groups" {
                thead { tr { th { (tx(ctx, "group")) } th { (tx(ctx, "members")) } } }
                tbody { @for (g, m) in &groups { tr { td { (g) } td { (m.join(", ")) } } } }
            }
        }
        @if ctx.is_admin() {
            form method="post" action="/pickup" id="pickup-form" {
                (csrf_field(ctx))
                label { (tx(ctx, "extension")) input type="text" name="extension" required; }
                label { (tx(ctx, "groups")) input type="text" name="groups"; }
                button type="submit" { (tx(ctx, "save")) }
            }
        }
    };
    (status, layout(ctx, tx(ctx, "title.features"), body)).into_response()
}

async fn features(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    features_view(&w, &ctx, StatusCode::OK, html! {}).await
}

async fn set_feature(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(feature): Path<String>,
    Form(f): Form<FormMap>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let code = f
        .get("code")
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let res = async {
        let t = tenant(&w).await?;
        let code = match f.get("action").map(String::as_str) {
            Some("off") => None,
            Some("reset") => Some(
                feature
                    .parse::<engine::features::FeatureAction>()
                    .map_err(|e| ApiError::invalid(e.to_string()))?
                    .def()
                    .default
                    .to_string(),
            ),
            _ => Some(code),
        };
        w.store()
            .set_feature_code(t, &feature, code.as_deref())
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    let (status, _) = status_of(&res);
    let msg = match &res {
        Ok(()) => ok(&ctx, "saved"),
        Err(e) => err(&ctx, e),
    };
    features_view(&w, &ctx, status, msg).await
}

/// The pickup-group part of an extension's page: its groups and (admins) a form to set them.
pub(super) async fn pickup_section(w: &Web, ctx: &Ctx, tenant: i64, number: &str) -> Markup {
    let groups = w
        .store()
        .all_pickup_groups()
        .await
        .ok()
        .and_then(|all| all.get(&(tenant, number.to_string())).cloned())
        .unwrap_or_default();
    html! {
        h2 { (tx(ctx, "pickup")) }
        p { (tx(ctx, "pickup.about")) }
        @if ctx.is_admin() {
            form method="post" action="/pickup" id="ext-pickup-form" {
                (csrf_field(ctx))
                input type="hidden" name="extension" value=(number);
                input type="hidden" name="from" value="extension";
                label { (tx(ctx, "groups")) input type="text" name="groups" value=(groups.join(", ")); }
                button type="submit" { (tx(ctx, "save")) }
            }
        } @else {
            p id="ext-pickup" { (groups.join(", ")) }
        }
    }
}

async fn set_pickup(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<FormMap>) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let ext = f
        .get("extension")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let groups: Vec<String> = f
        .get("groups")
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let res = async {
        w.store()
            .set_pickup_groups(tenant(&w).await?, &ext, &groups)
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    let (status, _) = status_of(&res);
    let msg = match &res {
        Ok(()) => ok(&ctx, "saved"),
        Err(e) => err(&ctx, e),
    };
    if f.get("from").map(String::as_str) == Some("extension") && res.is_ok() {
        return super::extension_page(&w, &ctx, &ext, status, msg).await;
    }
    features_view(&w, &ctx, status, msg).await
}

// ----- time conditions and calendar -----

fn lines(s: Option<&String>) -> Vec<String> {
    s.map(|t| {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

async fn tc_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let data = async {
        let t = tenant(w).await?;
        Ok::<_, ApiError>((
            w.store().list_timeconds(t).await?,
            w.store().calendar(t).await?,
        ))
    }
    .await;
    let (list, cal) = match data {
        Ok(d) => d,
        Err(e) => return fail(ctx, e),
    };
    let built = cal.build().ok();
    let now = SystemTime::now();
    let year_holidays: Vec<(chrono::NaiveDate, String)> = match &built {
        Some((tz, c)) => {
            use chrono::Datelike;
            let year = chrono::DateTime::<chrono::Utc>::from(now)
                .with_timezone(tz)
                .year();
            let mut out = Vec::new();
            let mut d = chrono::NaiveDate::from_ymd_opt(year, 1, 1);
            while let Some(day) = d.filter(|x| x.year() == year) {
                if let Some(n) = c.holiday(day) {
                    out.push((day, n));
                }
                d = day.succ_opt();
            }
            out
        }
        None => Vec::new(),
    };
    let body = html! {
        (msg)
        @if list.is_empty() { p.empty id="no-timeconds" { (tx(ctx, "tc.none")) } } @else {
            table.timeconds id="timeconds" {
                thead { tr {
                    th { (tx(ctx, "name")) } th { (tx(ctx, "number")) } th { "*28" }
                    th { (tx(ctx, "state")) } th { (tx(ctx, "mode")) }
                    th { (tx(ctx, "matched")) } th { (tx(ctx, "unmatched")) } th { (tx(ctx, "why")) } th {}
                } }
                tbody { @for r in &list {
                    @let state = built.as_ref().and_then(|(tz, c)| r.spec.build(&r.name, r.index, r.mode).ok().map(|t| t.state(now, *tz, c)));
                    tr data-timecond=(r.name) {
                        td { code { (r.name) } }
                        td { (r.number) }
                        td { @if r.index > 0 { code { "*28" (r.index) } } }
                        td.state data-state=(state.as_ref().map_or("", |s| if s.open { "day" } else { "night" })) {
                            @if let Some(s) = &state { strong { (tx(ctx, if s.open { "day" } else { "night" })) } }
                        }
                        td {
                            @if ctx.is_admin() {
                                form.inline method="post" action={ "/timeconds/" (url_encode(&r.name)) "/mode" } {
                                    (csrf_field(ctx))
                                    @for m in ["auto", "day", "night"] {
                                        @if r.mode.as_str() == m {
                                            button type="submit" name="mode" value=(m) disabled aria-pressed="true" { (tx(ctx, m)) }
                                        } @else {
                                            button type="submit" name="mode" value=(m) { (tx(ctx, m)) }
                                        }
                                    }
                                }
                            } @else { (tx(ctx, r.mode.as_str())) }
                        }
                        td { code { (r.spec.matched) } }
                        td { code { (r.spec.unmatched) } }
                        td { @if let Some(s) = &state { (s.why) } }
                        td { @if ctx.is_admin() {
                            form.inline method="post" action={ "/timeconds/" (url_encode(&r.name)) "/delete" } {
                                (csrf_field(ctx))
                                button.danger type="submit" { (tx(ctx, "delete")) }
                            }
                        } }
                    }
                } }
            }
        }
        @if ctx.is_admin() {
            h2 { (tx(ctx, "add")) }
            form method="post" action="/timeconds" id="timecond-form" {
                (csrf_field(ctx))
                label { (tx(ctx, "name")) input type="text" name="name" required placeholder="office"; }
                label { (tx(ctx, "number")) input type="text" name="number" inputmode="numeric"; }
                label { (tx(ctx, "index")) input type="text" name="index" inputmode="numeric" placeholder="1"; }
                label { (tx(ctx, "weekly")) textarea name="weekly" rows="3" { "mon-fri 09:00-18:00" } }
                label { (tx(ctx, "dates")) textarea name="dates" rows="2" {} }
                label { input type="checkbox" name="use_holidays" checked; " " (tx(ctx, "use_holidays")) }
                label { (tx(ctx, "matched")) input type="text" name="matched" required placeholder="ext:1001"; }
                label { (tx(ctx, "unmatched")) input type="text" name="unmatched" required placeholder="vm:1001"; }
                button type="submit" { (tx(ctx, "save")) }
            }
        }
        h2 { (tx(ctx, "calendar")) }
        @if ctx.is_admin() {
            form method="post" action="/holiday-calendar" id="calendar-form" {
                (csrf_field(ctx))
                label { (tx(ctx, "timezone")) input type="text" name="timezone" value=(cal.timezone); }
                label { @if cal.japan { input type="checkbox" name="japan" checked; } @else { input type="checkbox" name="japan"; } " " (tx(ctx, "japan")) }
                button type="submit" { (tx(ctx, "save")) }
            }
        } @else {
            p { (tx(ctx, "timezone")) ": " (cal.timezone) }
        }
        h3 { (tx(ctx, "holidays_year")) }
        ul id="holidays" { @for (d, n) in &year_holidays { li data-date=(d.to_string()) { (d.format("%Y-%m-%d (%a)").to_string()) " " (n) } } }
        @if ctx.is_admin() {
            form method="post" action="/holiday-calendar/day" id="holiday-form" {
                (csrf_field(ctx))
                label { (tx(ctx, "date")) input type="date" name="date" required; }
                label { (tx(ctx, "name")) input type="text" name="name"; }
                label { input type="checkbox" name="yearly"; " " (tx(ctx, "yearly")) }
                button type="submit" name="action" value="add" { (tx(ctx, "add_holiday")) }
                button type="submit" name="action" value="remove" { (tx(ctx, "remove_holiday")) }
            }
            form method="post" action="/holiday-calendar/import" id="ics-form" {
                (csrf_field(ctx))
                label { (tx(ctx, "import")) textarea name="ics" rows="4" {} }
                button type="submit" { (tx(ctx, "save")) }
            }
        }
    };
    (status, layout(ctx, tx(ctx, "title.timeconds"), body)).into_response()
}

async fn timeconds(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    tc_view(&w, &ctx, StatusCode::OK, html! {}).await
}

/// Runs a change and shows the time-condition page with its outcome.
async fn tc_after(w: &Web, ctx: &Ctx, res: Result<(), ApiError>, ok_key: &str) -> Response {
    let (status, _) = status_of(&res);
    let msg = match &res {
        Ok(()) => ok(ctx, ok_key),
        Err(e) => err(ctx, e),
    };
    tc_view(w, ctx, status, msg).await
}

async fn create_tc(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<FormMap>) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let g = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let res = async {
        let index = match g("index").as_str() {
            "" => 0,
            s => s.parse::<u8>().map_err(|_| {
                super::super::api::outside::field_error("index", "0 (none) or 1-99")
            })?,
        };
        let spec = TimeCondSpec {
            weekly: lines(f.get("weekly")),
            dates: lines(f.get("dates")),
            use_holidays: f.contains_key("use_holidays"),
            matched: g("matched"),
            unmatched: g("unmatched"),
        };
        w.store()
            .put_timecond(
                tenant(&w).await?,
                &g("name"),
                &g("number"),
                index,
                &spec,
                true,
            )
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    tc_after(&w, &ctx, res, "saved").await
}

async fn set_mode(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<FormMap>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        let mode: Mode = f
            .get("mode")
            .map(String::as_str)
            .unwrap_or("")
            .parse()
            .map_err(|e: String| super::super::api::outside::field_error("mode", e))?;
        w.store()
            .set_timecond_mode(tenant(&w).await?, &name, mode)
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    tc_after(&w, &ctx, res, "saved").await
}

async fn delete_tc(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<FormMap>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        w.store().delete_timecond(tenant(&w).await?, &name).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    tc_after(&w, &ctx, res, "saved").await
}

async fn set_calendar(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<FormMap>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        let t = tenant(&w).await?;
        let mut spec = w.store().calendar(t).await?;
        if let Some(tz) = f.get("timezone") {
            spec.timezone = tz.trim().to_string();
        }
        spec.japan = f.contains_key("japan");
        w.store().put_calendar(t, &spec).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    tc_after(&w, &ctx, res, "saved").await
}

async fn holiday_day(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<FormMap>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        let date = f
            .get("date")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
            .ok_or_else(|| super::super::api::outside::field_error("date", "YYYY-MM-DD"))?;
        let t = tenant(&w).await?;
        let mut spec = w.store().calendar(t).await?;
        if f.get("action").map(String::as_str) == Some("remove") {
            spec.remove(date);
        } else {
            let name = f.get("name").map(|s| s.trim()).unwrap_or("");
            spec.add(date, name, f.contains_key("yearly"));
        }
        w.store().put_calendar(t, &spec).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    tc_after(&w, &ctx, res, "saved").await
}

async fn import_ics(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<FormMap>) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        let text = f.get("ics").map(String::as_str).unwrap_or("");
        let list = engine::timecond::import_ical(text)
            .map_err(|e| super::super::api::outside::field_error("ics", e))?;
        let t = tenant(&w).await?;
        let mut spec = w.store().calendar(t).await?;
        for h in list {
            spec.add(h.date, &h.name, h.yearly);
        }
        w.store().put_calendar(t, &spec).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    tc_after(&w, &ctx, res, "imported").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    #[test]
    fn every_text_has_both_languages() {
        for (k, en, ja) in TEXT {
            assert!(!en.is_empty() && !ja.is_empty(), "{k}");
            assert_eq!(table_text(TEXT, Lang::Ja, k), *ja);
        }
    }
}
