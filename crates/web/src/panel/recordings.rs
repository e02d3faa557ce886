//! The Recordings page (通話録音): recording settings (retention, format, layout), the policy of
//! each extension, outbound route and trunk, and the latest recordings with a player; plus the
//! recording column of the call history. Same rules as `/api/v1/recordings`.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use engine::recording::{RecObject, RecPolicy};
use maud::{Markup, html};
use store::recording::{RecSettings, RecordingRow};

use super::{Ctx, Signed, check_write, csrf_field, fail, field};
use crate::Web;
use crate::api::prompts::{is_yes, tenant};
use crate::i18n::Lang;

/// `(key, English, Japanese)`: this page's own texts.
const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Recordings", "通話録音"),
    (
        "intro",
        "Calls are recorded by policy: if any extension, outbound route or trunk on a call says \"always\", the call is recorded from the answer; otherwise if any says \"on demand\", either party starts and stops a recording by keying *1; otherwise the call is not recorded.",
        "録音ポリシーに従って通話を録音します。通話に関わる内線・発信ルート・トランクのいずれかが「常に録音」なら応答時から録音します。そうでなく「オンデマンド」があれば、どちらかの通話者が *1 を押すと録音を開始・停止します。それ以外は録音しません。",
    ),
    ("settings", "Settings", "設定"),
    (
        "retention",
        "Keep recordings (days, 0 = forever)",
        "保存日数（0 = 無期限）",
    ),
    ("format", "Format", "形式"),
    ("layout", "Channels", "チャンネル"),
    (
        "mono",
        "mono (both parties mixed)",
        "モノラル（両者をミックス）",
    ),
    (
        "stereo",
        "stereo (caller left, callee right; WAV)",
        "ステレオ（左: 発信者、右: 着信者。WAV のみ）",
    ),
    ("wav", "WAV", "WAV"),
    (
        "opus",
        "Ogg Opus (smaller, mono)",
        "Ogg Opus（小さい、モノラル）",
    ),
    ("save", "Save", "保存"),
    ("policies", "Policies", "録音ポリシー"),
    ("kind", "Object", "対象"),
    ("name", "Number or name", "番号・名前"),
    ("policy", "Policy", "ポリシー"),
    ("extension", "extension", "内線"),
    ("route", "outbound route", "発信ルート"),
    ("trunk", "trunk", "トランク"),
    ("never", "never", "録音しない"),
    ("always", "always", "常に録音"),
    ("on_demand", "on demand (*1)", "オンデマンド（*1）"),
    ("set", "Set", "設定"),
    (
        "none",
        "No policies: nothing is recorded.",
        "ポリシーがありません。録音はしません。",
    ),
    ("latest", "Latest recordings", "最近の録音"),
    ("call", "Call-ID", "Call-ID"),
    ("started", "Started", "開始"),
    ("length", "Length", "長さ"),
    ("status", "Status", "状態"),
    ("listen", "Listen", "再生"),
    ("download", "Download", "ダウンロード"),
    ("saved", "Saved.", "保存しました。"),
    ("recording", "Recording", "録音"),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    super::table_text(TEXTS, lang, key)
}

/// Routes of the recordings page and its audio.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/recordings", get(recordings_page))
        .route("/recordings/settings", post(save_settings))
        .route("/recordings/policy", post(save_policy))
        .route("/recordings/{id}/audio", get(audio))
}

fn player(l: Lang, r: &RecordingRow) -> Markup {
    html! {
        @if !r.path.is_empty() && r.status != "recording" {
            @let src = format!("/recordings/{}/audio", r.id);
            audio controls preload="none" src=(src) {}
            " " a href={ (src) "?download=1" } download data-recording=(r.id) { (tr(l, "download")) }
        } @else {
            span data-status=(r.status) { (r.status) }
        }
    }
}

async fn view(w: &Web, ctx: &Ctx, status: StatusCode, notice: Option<Markup>) -> Response {
    let t = match tenant(w).await {
        Ok(t) => t,
        Err(e) => return fail(ctx, e),
    };
    let (settings, policies, latest) = match (
        w.store().recording_settings(t).await,
        w.store().recording_policies(t).await,
        w.store().list_recordings(t, None, 50).await,
    ) {
        (Ok(s), Ok(p), Ok(l)) => (s, p, l),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(ctx, e.into()),
    };
    let l = ctx.lang;
    let admin = ctx.is_admin();
    let body = html! {
        p.hint { (tr(l, "intro")) }
        @if let Some(n) = notice { (n) }
        h2 { (tr(l, "settings")) }
        form method="post" action="/recordings/settings" id="rec-settings" {
            (csrf_field(ctx))
            label { (tr(l, "retention")) input type="number" name="retention_days" min="0" max="36500" value=(settings.retention_days) disabled[!admin]; }
            label { (tr(l, "format")) select name="format" disabled[!admin] {
                @for f in ["wav", "opus"] { option value=(f) selected[settings.format == f] { (tr(l, f)) } }
            } }
            label { (tr(l, "layout")) select name="layout" disabled[!admin] {
                @for f in ["mono", "stereo"] { option value=(f) selected[settings.layout == f] { (tr(l, f)) } }
            } }
            @if admin { button type="submit" { (tr(l, "save")) } }
        }
        h2 { (tr(l, "policies")) }
        @if policies.is_empty() { p id="rec-no-policies" { (tr(l, "none")) } }
        table id="rec-policies" { thead { tr { th { (tr(l, "kind")) } th { (tr(l, "name")) } th { (tr(l, "policy")) } } }
            tbody { @for p in &policies {
                tr data-kind=(p.kind.as_str()) data-name=(p.name) data-policy=(p.policy.as_str()) {
                    td { (tr(l, p.kind.as_str())) } td { (p.name) } td { (tr(l, p.policy.as_str())) }
                }
            } }
        }
        @if admin {
            form method="post" action="/recordings/policy" id="rec-policy" {
                (csrf_field(ctx))
                select name="kind" aria-label=(tr(l, "kind")) { @for k in RecObject::ALL { option value=(k.as_str()) { (tr(l, k.as_str())) } } }
                input type="text" name="name" required aria-label=(tr(l, "name")) placeholder=(tr(l, "name"));
                select name="policy" aria-label=(tr(l, "policy")) { @for p in RecPolicy::ALL { option value=(p.as_str()) { (tr(l, p.as_str())) } } }
                button type="submit" { (tr(l, "set")) }
            }
        }
        h2 { (tr(l, "latest")) }
        table id="recordings" { thead { tr {
            th { (tr(l, "started")) } th { (tr(l, "call")) } th { (tr(l, "length")) } th { (tr(l, "status")) } th { (tr(l, "listen")) }
        } } tbody { @for r in &latest {
            tr data-id=(r.id) data-call-id=(r.call_id) data-status=(r.status) {
                td { (r.started_at.format("%Y-%m-%d %H:%M:%S")) } td { code { (r.call_id) } }
                td { (format!("{:.1} s", r.duration_ms as f64 / 1000.0)) } td { (r.status) @if !r.detail.is_empty() { " (" (r.detail) ")" } }
                td { (player(l, r)) }
            }
        } } }
    };
    page_titled(ctx, status, body)
}

fn page_titled(ctx: &Ctx, status: StatusCode, body: Markup) -> Response {
    (status, super::layout(ctx, tr(ctx.lang, "title"), body)).into_response()
}

async fn recordings_page(
    State(w): State<Web>,
    Signed(ctx): Signed,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let notice = (!field(&q, "saved").is_empty())
        .then(|| html! { p.ok role="status" id="rec-saved" { (tr(ctx.lang, "saved")) } });
    view(&w, &ctx, StatusCode::OK, notice).await
}

/// The navigation link.
pub(super) fn nav(ctx: &Ctx) -> Markup {
    html! { a href="/recordings" { (tr(ctx.lang, "title")) } }
}

async fn save_settings(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let t = match tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    let Ok(days) = field(&f, "retention_days").trim().parse::<i64>() else {
        return fail(
            &ctx,
            crate::api::ApiError::invalid("retention_days: a whole number of days"),
        );
    };
    let s = RecSettings {
        retention_days: days,
        format: field(&f, "format").to_string(),
        layout: field(&f, "layout").to_string(),
    };
    match w.store().set_recording_settings(t, &s).await {
        Ok(()) => Redirect::to("/recordings?saved=1").into_response(),
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn save_policy(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let (Some(kind), Some(policy)) = (
        RecObject::parse(field(&f, "kind")),
        RecPolicy::parse(field(&f, "policy")),
    ) else {
        return fail(
            &ctx,
            crate::api::ApiError::invalid("kind and policy from the lists"),
        );
    };
    let t = match tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    match w
        .store()
        .set_recording_policy(t, kind, field(&f, "name").trim(), policy)
        .await
    {
        Ok(()) => {
            view(
                &w,
                &ctx,
                StatusCode::OK,
                Some(html! { p.ok role="status" id="rec-saved" { (tr(ctx.lang, "saved")) } }),
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn audio(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let t = match tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    let r = match w.store().recording(t, id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return fail(
                &ctx,
                crate::api::ApiError::not_found(format!("recording {id}")),
            );
        }
        Err(e) => return fail(&ctx, e.into()),
    };
    let download = is_yes(q.get("download").map(String::as_str));
    match crate::api::recordings::recording_response(&w, &r, download).await {
        Ok(resp) => resp,
        Err(e) => fail(&ctx, e),
    }
}

/// The recordings of a page of call history, by Call-ID (empty when unreadable: the history
/// still shows).
pub(super) async fn for_calls(w: &Web, rows: &[store::Cdr]) -> HashMap<String, Vec<RecordingRow>> {
    let mut by_call: HashMap<String, Vec<RecordingRow>> = HashMap::new();
    let Ok(t) = tenant(w).await else {
        return by_call;
    };
    let ids: Vec<String> = rows.iter().map(|c| c.record.call_id.clone()).collect();
    if let Ok(recs) = w.store().recordings_of_calls(t, &ids).await {
        for r in recs {
            by_call.entry(r.call_id.clone()).or_default().push(r);
        }
    }
    by_call
}

/// The call-history column head.
pub(super) fn history_head(ctx: &Ctx) -> Markup {
    html! { th { (tr(ctx.lang, "recording")) } }
}

/// The call-history cell of one call: a player and download link per recording.
pub(super) fn history_cell(
    ctx: &Ctx,
    recs: &HashMap<String, Vec<RecordingRow>>,
    call_id: &str,
) -> Markup {
    html! { td.recording { @if let Some(rs) = recs.get(call_id) { @for r in rs { (player(ctx.lang, r)) } } } }
}
