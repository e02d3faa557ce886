//! The Custom prompts page (独自ガイダンス, `/prompts/custom`): the tenant's named recordings
//! with a player per language variant, upload (a refused file gets its reason next to the
//! form), rename/describe and delete (refused, with the menus named, while an IVR plays it).
//! The same rules and code as `/api/v1/custom-prompts`.

use std::collections::HashMap;

use apps::custom_prompt::Variant;
use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fail, field, page, url_encode};
use crate::Web;
use crate::api::custom_prompts as api;
use crate::api::prompts as papi;
use crate::i18n::Lang;

/// `(key, English, Japanese)`: this page's texts.
const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Custom prompts", "独自ガイダンス"),
    (
        "intro",
        "Your own recordings under names of your choosing (main-greeting, holiday-closed …), for IVR menus: give the name as the menu's greeting. Upload one file for every caller (any) or one per language; callers hear their language's file, else the one for any, else the other language's. Any common audio format; converted to 16 kHz mono.",
        "任意の名前（main-greeting、holiday-closed など）で登録する独自の録音です。IVR メニューの挨拶にこの名前を指定して使います。全員向け（any）のファイル、または言語ごとのファイルをアップロードします。発信者の言語のファイル、なければ any、なければもう一方の言語のファイルを再生します。一般的な音声形式に対応し、16 kHz モノラルに変換して保存します。",
    ),
    ("name", "Name", "名前"),
    ("lang", "Callers", "対象"),
    ("lang.any", "any", "全員"),
    ("lang.en", "English", "英語"),
    ("lang.ja", "Japanese", "日本語"),
    ("description", "Description", "説明"),
    ("file", "Audio file", "音声ファイル"),
    ("length", "Length", "長さ"),
    ("listen", "Listen", "再生"),
    ("used_by", "Played by", "使用中のメニュー"),
    (
        "none",
        "No custom prompts yet.",
        "独自ガイダンスはまだありません。",
    ),
    ("upload", "Upload", "アップロード"),
    (
        "add",
        "Add or replace a custom prompt",
        "独自ガイダンスの追加・差し替え",
    ),
    ("rename", "Rename", "名前を変更"),
    ("new_name", "New name", "新しい名前"),
    ("delete", "Delete", "削除"),
    ("saved", "Saved:", "保存しました："),
    ("removed", "Deleted:", "削除しました："),
    ("renamed", "Renamed:", "名前を変更しました："),
    ("missing", "file missing", "ファイルなし"),
    ("download", "Download", "ダウンロード"),
    ("back", "All prompts", "ガイダンス一覧"),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    super::table_text(TEXTS, lang, key)
}

/// Routes of the page.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/prompts/custom", get(custom_page))
        .route(
            "/prompts/custom/upload",
            post(upload).layer(DefaultBodyLimit::max(papi::MAX_UPLOAD_BODY)),
        )
        .route("/prompts/custom/delete", post(delete))
        .route("/prompts/custom/rename", post(rename))
        .route("/prompts/custom/audio/{name}/{lang}", get(audio))
}

/// The page, with a notice on top and an error shown with the upload form or on top.
async fn view(
    w: &Web,
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<Markup>,
    error: Option<String>,
) -> Response {
    let t = match papi::tenant(w).await {
        Ok(t) => t,
        Err(e) => return fail(ctx, e),
    };
    let prompts = match api::views(w, t).await {
        Ok(p) => p,
        Err(e) => return fail(ctx, e),
    };
    let l = ctx.lang;
    let body = html! {
        h2 { (tr(l, "title")) }
        p.hint { (tr(l, "intro")) " " a href="/prompts" { (tr(l, "back")) } }
        @if let Some(n) = notice { (n) }
        @if let Some(e) = &error { p.error role="alert" id="custom-error" { (e) } }
        @if prompts.is_empty() { p.empty id="no-custom-prompts" { (tr(l, "none")) } } @else {
            table id="custom-prompts" {
                thead { tr {
                    th { (tr(l, "name")) } th { (tr(l, "description")) } th { (tr(l, "lang")) }
                    th { (tr(l, "length")) } th { (tr(l, "listen")) } th { (tr(l, "used_by")) }
                    @if ctx.is_admin() { th {} }
                } }
                tbody { @for p in &prompts { @for (i, v) in p.variants.iter().enumerate() {
                    tr id={ "c-" (p.name) "-" (v.lang) } data-name=(p.name) data-lang=(v.lang) {
                        td { @if i == 0 { code { (p.name) } } }
                        td { @if i == 0 { (p.description) } }
                        td { (tr(l, &format!("lang.{}", v.lang))) }
                        td { (format!("{:.1} s", v.duration_s)) }
                        td {
                            @if v.present {
                                @let src = format!("/prompts/custom/audio/{}/{}", url_encode(&p.name), v.lang);
                                audio controls preload="none" src=(src) {}
                                " " a href={ (src) "?download=1" } download { (tr(l, "download")) }
                            } @else { span.error { (tr(l, "missing")) } }
                        }
                        td { @if i == 0 { @for u in &p.used_by { a href={ "/ivrs/" (url_encode(u)) "/edit" } { "ivr:" (u) } " " } } }
                        @if ctx.is_admin() { td {
                            form.inline method="post" action="/prompts/custom/delete" {
                                (csrf_field(ctx))
                                input type="hidden" name="name" value=(p.name);
                                input type="hidden" name="lang" value=(v.lang);
                                button.danger type="submit" { (tr(l, "delete")) " (" (tr(l, &format!("lang.{}", v.lang))) ")" }
                            }
                            @if i == 0 {
                                form.inline method="post" action="/prompts/custom/rename" {
                                    (csrf_field(ctx))
                                    input type="hidden" name="name" value=(p.name);
                                    input type="text" name="to" required aria-label=(tr(l, "new_name")) placeholder=(tr(l, "new_name"));
                                    button type="submit" { (tr(l, "rename")) }
                                }
                            }
                        } }
                    }
                } } }
            }
        }
        @if ctx.is_admin() {
            h3 { (tr(l, "add")) }
            form method="post" action="/prompts/custom/upload" enctype="multipart/form-data" id="custom-upload" {
                (csrf_field(ctx))
                label { (tr(l, "name")) " " input type="text" name="name" required pattern="[a-z][a-z0-9-]{0,39}"; }
                label { (tr(l, "lang")) " " select name="lang" {
                    @for v in Variant::ALL { option value=(v.as_str()) { (tr(l, &format!("lang.{}", v.as_str()))) } }
                } }
                label { (tr(l, "description")) " " input type="text" name="description" maxlength="200"; }
                label { (tr(l, "file")) " " input type="file" name="file" accept="audio/*,.wav,.mp3,.ogg,.flac" required; }
                button type="submit" { (tr(l, "upload")) }
            }
        }
    };
    page(ctx, status, "nav.prompts", body)
}

async fn custom_page(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let l = ctx.lang;
    let notice = [("saved", "saved"), ("removed", "removed"), ("renamed", "renamed")]
        .into_iter()
        .find(|(k, _)| !field(&q, k).is_empty())
        .map(|(k, t)| html! { p.ok role="status" id={ "custom-" (k) } { (tr(l, t)) " " code { (field(&q, k)) } } });
    view(&w, &ctx, StatusCode::OK, notice, None).await
}

async fn upload(State(w): State<Web>, Signed(ctx): Signed, mp: Multipart) -> Response {
    let up = match papi::read_upload(mp, &papi::spool_dir(&w)).await {
        Ok(u) => u,
        Err((status, e)) => return view(&w, &ctx, status, None, Some(e)).await,
    };
    if let Some(r) = check_write(&ctx, &up.fields) {
        return r;
    }
    let name = field(&up.fields, "name").trim().to_string();
    let Some(v) = Variant::parse(field(&up.fields, "lang")) else {
        return view(
            &w,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("lang: any, en or ja".into()),
        )
        .await;
    };
    let t = match papi::tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    match api::store_upload(&w, t, &name, v, up).await {
        Ok(_) => {
            Redirect::to(&format!("/prompts/custom?saved={}", url_encode(&name))).into_response()
        }
        Err(e) => view(&w, &ctx, e.status, None, Some(e.message)).await,
    }
}

/// What the delete and rename forms ask for.
enum Change {
    Delete,
    Rename,
}

async fn delete(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    change(&w, &ctx, &f, Change::Delete).await
}

async fn rename(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    change(&w, &ctx, &f, Change::Rename).await
}

/// Deletes (one variant of) or renames a prompt; back to the page with the outcome, or the
/// page with the refusal (a menu playing it is named).
async fn change(w: &Web, ctx: &Ctx, f: &HashMap<String, String>, what: Change) -> Response {
    if let Some(r) = check_write(ctx, f) {
        return r;
    }
    let name = field(f, "name");
    let t = match papi::tenant(w).await {
        Ok(t) => t,
        Err(e) => return fail(ctx, e),
    };
    let dir = &w.info().data_dir;
    let (result, key, shown) = match what {
        Change::Delete => {
            let lang = Some(field(f, "lang")).filter(|l| !l.is_empty());
            let r = w.store().remove_custom_prompt(dir, t, name, lang).await;
            (r, "removed", name)
        }
        Change::Rename => {
            let to = field(f, "to").trim();
            let r = w
                .store()
                .rename_custom_prompt(dir, t, name, Some(to), None)
                .await;
            (r, "renamed", to)
        }
    };
    match result {
        Ok(_) => {
            Redirect::to(&format!("/prompts/custom?{key}={}", url_encode(shown))).into_response()
        }
        Err(e) => {
            let e = api::store_error(e);
            view(w, ctx, e.status, None, Some(e.message)).await
        }
    }
}

async fn audio(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((name, lang)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let download = papi::is_yes(q.get("download").map(String::as_str));
    api::custom_audio(&w, &name, Some(&lang), download)
        .await
        .unwrap_or_else(|e| fail(&ctx, e))
}
