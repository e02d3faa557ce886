//! The greetings section of a mailbox page: the unavailable, busy and name greetings with a
//! player, upload (any common format, converted like prompt uploads; a refused file gets its
//! reason) and delete. The same code as `/api/v1/voicemail/{number}/greetings`.

use std::collections::HashMap;

use apps::vmail::Greeting;
use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fail, field, notice, url_encode};
use crate::Web;
use crate::api::prompts as papi;
use crate::api::voicemail as api;
use crate::i18n::Lang;

/// `(key, English, Japanese)`: this section's texts.
const TEXTS: &[(&str, &str, &str)] = &[
    ("greetings", "Greetings", "応答メッセージ"),
    (
        "intro",
        "Upload the owner's greetings (any common audio format), or record them by phone from the voicemail menu (3). Without an unavailable or busy greeting callers hear the default one, spoken with the recorded name when there is one.",
        "応答メッセージをアップロード（一般的な音声形式）するか、ボイスメールのメニュー（3）から電話で録音します。不在・通話中のメッセージがない場合は既定のメッセージが流れ、名前が録音されていればその名前で案内します。",
    ),
    ("g.unavailable", "Unavailable", "不在時"),
    ("g.busy", "Busy", "通話中"),
    ("g.name", "Name", "名前"),
    ("default", "default greeting", "既定のメッセージ"),
    ("upload", "Upload", "アップロード"),
    ("delete", "Delete", "削除"),
    ("download", "Download", "ダウンロード"),
    ("saved", "Greeting saved:", "応答メッセージを保存しました："),
    (
        "removed",
        "Greeting deleted:",
        "応答メッセージを削除しました：",
    ),
    (
        "refused",
        "Greeting refused:",
        "応答メッセージを保存できません：",
    ),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    super::table_text(TEXTS, lang, key)
}

/// Routes of the section's actions.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route(
            "/voicemail/{number}/greetings/{kind}/upload",
            post(upload).layer(DefaultBodyLimit::max(papi::MAX_UPLOAD_BODY)),
        )
        .route("/voicemail/{number}/greetings/{kind}/delete", post(delete))
        .route("/voicemail/{number}/greetings/{kind}/audio", get(audio))
}

/// The outcome of the last greeting action, from the mailbox page's query
/// (`greeting_saved`, `greeting_removed`), shown on top of the page.
pub(super) fn outcome(ctx: &Ctx, q: &HashMap<String, String>) -> Markup {
    let l = ctx.lang;
    html! {
        @for (k, key) in [("greeting_saved", "saved"), ("greeting_removed", "removed")] {
            @if kind_of(field(q, k)).is_some() {
                p.ok role="status" id={ "vm-" (k) } { (tr(l, key)) " " (tr(l, &format!("g.{}", field(q, k)))) }
            }
        }
    }
}

/// The section for mailbox `b` of tenant `t` (shown on the mailbox page).
pub(super) fn section(w: &Web, ctx: &Ctx, t: i64, b: &store::VmBox) -> Markup {
    let l = ctx.lang;
    let base = format!("/voicemail/{}/greetings", url_encode(&b.number));
    let views = api::greetings_of(w, t, b);
    html! {
        h2 id="greetings" { (tr(l, "greetings")) }
        p.hint { (tr(l, "intro")) }
        table id="vm-greetings" { tbody { @for g in &views {
            tr data-greeting=(g.kind) data-present=(g.present) {
                th { (tr(l, &format!("g.{}", g.kind))) }
                td { @if g.present {
                    @let src = format!("{base}/{}/audio", g.kind);
                    audio controls preload="none" src=(src) {}
                    " " @if let Some(s) = g.duration_s { (format!("{s:.1} s")) " " }
                    a href={ (src) "?download=1" } { (tr(l, "download")) }
                } @else { (tr(l, "default")) } }
                @if ctx.is_admin() { td {
                    form.inline method="post" action={ (base) "/" (g.kind) "/upload" } enctype="multipart/form-data" {
                        (csrf_field(ctx))
                        input type="file" name="file" accept="audio/*,.wav,.mp3,.ogg,.flac" required aria-label=(tr(l, "upload"));
                        button type="submit" { (tr(l, "upload")) }
                    }
                    @if g.present {
                        form.inline method="post" action={ (base) "/" (g.kind) "/delete" } {
                            (csrf_field(ctx)) button.danger type="submit" { (tr(l, "delete")) }
                        }
                    }
                } }
            }
        } } }
    }
}

fn kind_of(kind: &str) -> Option<Greeting> {
    Greeting::parse(kind)
}

fn back(number: &str, key: &str, kind: &str) -> Response {
    Redirect::to(&format!(
        "/voicemail/{}?{key}={kind}#greetings",
        url_encode(number)
    ))
    .into_response()
}

async fn upload(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, kind)): Path<(String, String)>,
    mp: Multipart,
) -> Response {
    let up = papi::read_upload(mp, &papi::spool_dir(&w)).await;
    let (fields, up) = match up {
        Ok(u) => (u.fields.clone(), Ok(u)),
        Err((status, e)) => (HashMap::new(), Err((status, e))),
    };
    if let Some(r) = check_write(&ctx, &fields) {
        return r;
    }
    let Some(g) = kind_of(&kind) else {
        return fail(&ctx, papi::not_found(format!("no greeting {kind:?}")));
    };
    let l = ctx.lang;
    let refused = |status: StatusCode, msg: String| {
        notice(
            &ctx,
            status,
            "title.voicemail",
            &format!("{} {msg}", tr(l, "refused")),
        )
    };
    let up = match up {
        Ok(u) => u,
        Err((status, e)) => return refused(status, e),
    };
    let t = match papi::tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    match api::store_greeting(&w, t, &number, g, up).await {
        Ok(_) => back(&number, "greeting_saved", g.as_str()),
        Err(e) => refused(e.status, e.message),
    }
}

async fn delete(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, kind)): Path<(String, String)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let Some(g) = kind_of(&kind) else {
        return fail(&ctx, papi::not_found(format!("no greeting {kind:?}")));
    };
    let t = match papi::tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    match w
        .store()
        .remove_vm_greeting(&w.info().data_dir, t, &number, g)
        .await
    {
        Ok(()) => back(&number, "greeting_removed", g.as_str()),
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn audio(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, kind)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let download = papi::is_yes(q.get("download").map(String::as_str));
    api::greeting_wav(&w, &number, &kind, download)
        .await
        .unwrap_or_else(|e| fail(&ctx, e))
}
