//! The Prompts page (音声ガイダンス) and the Music on hold page (保留音): every prompt per
//! language with a player, download, upload (the refusal shown next to the file field) and reset;
//! music-on-hold classes with their files, upload and delete. Files live in the data directory
//! (`apps::prompt_files`, `apps::moh`); the same rules as `/api/v1/prompts` and `/api/v1/moh`.

use std::collections::HashMap;

use apps::moh;
use apps::prompt::{self, Lang as PLang};
use apps::prompt_files::{self, Source};
use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fail, field, page, url_encode};
use crate::Web;
use crate::api::prompts as api;
use crate::i18n::Lang;

/// `(key, English, Japanese)`: these pages' own texts.
const TEXTS: &[(&str, &str, &str)] = &[
    (
        "intro",
        "What callers hear from the PBX. Replace any prompt with your own recording (WAV, MP3, Ogg Vorbis, FLAC; any rate; at most 10 minutes): it is converted to 16 kHz mono. Reset returns to the default. Extensions in the prompts.recorders setting can also record a prompt from their phone: dial *77 and the prompt's number.",
        "PBX が発信者に流す音声です。どのガイダンスも独自の録音（WAV、MP3、Ogg Vorbis、FLAC。サンプルレート不問、最長 10 分）に差し替えられます。16 kHz モノラルに変換して保存します。「リセット」で既定の音声に戻ります。設定 prompts.recorders の内線は、電話から *77 とガイダンス番号をダイヤルして録音することもできます。",
    ),
    ("language", "Language", "言語"),
    (
        "custom",
        "Custom prompts: your own named recordings for IVR menus",
        "独自ガイダンス：IVR メニュー用の名前付き録音",
    ),
    ("number", "No.", "番号"),
    ("id", "Prompt", "ガイダンス"),
    ("category", "Application", "用途"),
    ("text", "Text", "文言"),
    ("source", "Source", "音源"),
    ("length", "Length", "長さ"),
    ("listen", "Listen", "再生"),
    ("replace", "Replace", "差し替え"),
    ("upload", "Upload", "アップロード"),
    ("reset", "Reset", "リセット"),
    ("download", "Download", "ダウンロード"),
    (
        "src.default-tts",
        "default (synthesised)",
        "既定（音声合成）",
    ),
    ("src.uploaded", "uploaded", "アップロード"),
    ("src.recorded", "recorded by phone", "電話で録音"),
    ("src.missing", "missing", "なし"),
    ("saved", "Saved:", "保存しました："),
    ("was_reset", "Reset to the default:", "既定に戻しました："),
    (
        "missing_note",
        "Some prompt files are missing: run `denwa prompt install-defaults` on the server.",
        "一部の音声ファイルがありません。サーバーで `denwa prompt install-defaults` を実行してください。",
    ),
    (
        "moh_intro",
        "Music callers hear while on hold, parked or waiting. A class plays its files in name order, round and round. A class of yours named like an installed one replaces it.",
        "保留中・パーク中・待ち時間に流す音楽です。クラス内のファイルを名前順に繰り返し再生します。既定のクラスと同じ名前のクラスを作ると、そちらに置き換わります。",
    ),
    ("class", "Class", "クラス"),
    ("files", "Files", "ファイル"),
    ("scope.default", "installed", "既定"),
    ("scope.tenant", "yours", "独自"),
    ("add_file", "Add a file", "ファイルを追加"),
    ("delete", "Delete", "削除"),
    ("delete_class", "Delete class", "クラスを削除"),
    (
        "no_classes",
        "No music-on-hold classes: run `denwa moh install-default` on the server.",
        "保留音クラスがありません。サーバーで `denwa moh install-default` を実行してください。",
    ),
    ("added", "Added:", "追加しました："),
    ("removed", "Removed:", "削除しました："),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    super::table_text(TEXTS, lang, key)
}

/// Routes of the prompt and music-on-hold pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/prompts", get(prompts_page))
        .route(
            "/prompts/upload",
            post(prompt_upload).layer(DefaultBodyLimit::max(api::MAX_UPLOAD_BODY)),
        )
        .route("/prompts/reset", post(prompt_reset))
        .route("/prompts/audio/{lang}/{id}", get(prompt_audio))
        .route("/moh", get(moh_page))
        .route(
            "/moh/upload",
            post(moh_upload).layer(DefaultBodyLimit::max(api::MAX_UPLOAD_BODY)),
        )
        .route("/moh/delete", post(moh_delete))
        .route("/moh/audio/{class}/{file}", get(moh_audio))
}

fn prompt_lang(s: &str, ctx: &Ctx) -> PLang {
    s.parse().unwrap_or(match ctx.lang {
        Lang::En => PLang::En,
        Lang::Ja => PLang::Ja,
    })
}

/// The page, with an optional notice on top and an error next to one row's file field.
async fn prompts_view(
    w: &Web,
    ctx: &Ctx,
    lang: PLang,
    status: StatusCode,
    notice: Option<Markup>,
    error: Option<(&str, String)>,
) -> Response {
    let t = match api::tenant(w).await {
        Ok(t) => t,
        Err(e) => return fail(ctx, e),
    };
    let rows = prompt_files::list(&w.info().data_dir, Some(t), lang);
    let missing = rows.iter().any(|r| !r.present);
    let l = ctx.lang;
    let body = html! {
        p.hint { (tr(l, "intro")) }
        p id="custom-prompts-link" { a href="/prompts/custom" { (tr(l, "custom")) } }
        @if let Some(n) = notice { (n) }
        @if missing { p.error id="prompts-missing" { (tr(l, "missing_note")) } }
        p id="prompt-langs" {
            (tr(l, "language")) ": "
            @for pl in PLang::ALL {
                @if pl == lang { strong { (pl.as_str()) } } @else {
                    a href={ "/prompts?lang=" (pl.as_str()) } { (pl.as_str()) }
                }
                " "
            }
        }
        table id="prompts" { thead { tr {
            th { (tr(l, "number")) } th { (tr(l, "id")) } th { (tr(l, "category")) } th { (tr(l, "text")) }
            th { (tr(l, "source")) } th { (tr(l, "length")) } th { (tr(l, "listen")) }
            @if ctx.is_admin() { th { (tr(l, "replace")) } }
        } } tbody {
            @for r in &rows {
                tr id={ "p-" (r.id) } data-source=(r.source.as_str()) {
                    td.number { (r.number) }
                    td { code { (r.id) } }
                    td { (r.category) }
                    td lang=(lang.as_str()) { (r.text) }
                    td {
                        (tr(l, &format!("src.{}", r.source.as_str())))
                        @if let Some(by) = &r.recorded_by { " " (by) }
                    }
                    td { @if let Some(s) = r.duration_s { (format!("{s:.1} s")) } }
                    td {
                        @if r.present {
                            @let src = format!("/prompts/audio/{}/{}", lang.as_str(), r.id);
                            audio controls preload="none" src=(src) {}
                            " " a href={ (src) "?download=1" } download { (tr(l, "download")) }
                        }
                    }
                    @if ctx.is_admin() {
                        td {
                            form.inline method="post" action="/prompts/upload" enctype="multipart/form-data" {
                                (csrf_field(ctx))
                                input type="hidden" name="lang" value=(lang.as_str());
                                input type="hidden" name="id" value=(r.id);
                                input type="file" name="file" accept="audio/*,.wav,.mp3,.ogg,.flac" required aria-label=(tr(l, "upload"));
                                button type="submit" { (tr(l, "upload")) }
                                @if let Some((id, msg)) = &error {
                                    @if *id == r.id { " " span.error role="alert" id="upload-error" { (msg) } }
                                }
                            }
                            @if matches!(r.source, Source::Uploaded | Source::Recorded) {
                                form.inline method="post" action="/prompts/reset" {
                                    (csrf_field(ctx))
                                    input type="hidden" name="lang" value=(lang.as_str());
                                    input type="hidden" name="id" value=(r.id);
                                    button type="submit" { (tr(l, "reset")) }
                                }
                            }
                        }
                    }
                }
            }
        } }
    };
    page(ctx, status, "nav.prompts", body)
}

async fn prompts_page(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = prompt_lang(field(&q, "lang"), &ctx);
    let l = ctx.lang;
    let notice = match (field(&q, "saved"), field(&q, "reset")) {
        (id, _) if !id.is_empty() => Some(
            html! { p.ok role="status" id="prompt-saved" { (tr(l, "saved")) " " code { (id) } } },
        ),
        (_, id) if !id.is_empty() => Some(
            html! { p.ok role="status" id="prompt-reset" { (tr(l, "was_reset")) " " code { (id) } } },
        ),
        _ => None,
    };
    prompts_view(&w, &ctx, lang, StatusCode::OK, notice, None).await
}

/// The uploaded file and the name the browser gave it, or why there is none.
type Received = Result<(tempfile::NamedTempFile, Option<String>), String>;

/// Reads an upload form and checks its CSRF token and the user's role (the refusal to send
/// otherwise); returns the other fields and the file.
async fn signed_upload(
    w: &Web,
    ctx: &Ctx,
    mp: Multipart,
) -> Result<(HashMap<String, String>, Received), Response> {
    let (fields, file) = match api::read_upload(mp, &api::spool_dir(w)).await {
        Ok(u) => {
            let file = match u.file {
                Some(f) => Ok((f, u.file_name)),
                None => Err(api::no_file_message().to_string()),
            };
            (u.fields, file)
        }
        Err((_, e)) => (HashMap::new(), Err(e)),
    };
    match check_write(ctx, &fields) {
        Some(r) => Err(r),
        None => Ok((fields, file)),
    }
}

async fn prompt_upload(State(w): State<Web>, Signed(ctx): Signed, mp: Multipart) -> Response {
    let (fields, file) = match signed_upload(&w, &ctx, mp).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let lang = prompt_lang(field(&fields, "lang"), &ctx);
    let id = field(&fields, "id").to_string();
    if prompt::get(&id).is_none() {
        return fail(&ctx, api::not_found(format!("no prompt {id:?}")));
    }
    let result = match file {
        Err(e) => Err(e),
        Ok((file, file_name)) => {
            let t = match api::tenant(&w).await {
                Ok(t) => t,
                Err(e) => return fail(&ctx, e),
            };
            let dir = w.info().data_dir.clone();
            let id2 = id.clone();
            match tokio::task::spawn_blocking(move || {
                prompt_files::upload(&dir, t, lang, &id2, file.path(), file_name.as_deref())
            })
            .await
            {
                Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match result {
        Ok(()) => Redirect::to(&format!(
            "/prompts?lang={}&saved={}#p-{}",
            lang.as_str(),
            url_encode(&id),
            url_encode(&id)
        ))
        .into_response(),
        Err(msg) => {
            prompts_view(
                &w,
                &ctx,
                lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some((&id, msg)),
            )
            .await
        }
    }
}

async fn prompt_reset(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let lang = prompt_lang(field(&f, "lang"), &ctx);
    let id = field(&f, "id");
    let t = match api::tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    match prompt_files::reset(&w.info().data_dir, t, lang, id) {
        Ok(_) => Redirect::to(&format!(
            "/prompts?lang={}&reset={}#p-{}",
            lang.as_str(),
            url_encode(id),
            url_encode(id)
        ))
        .into_response(),
        Err(e) => fail(&ctx, api::not_found(e.to_string())),
    }
}

async fn prompt_audio(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((lang, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let download = api::is_yes(q.get("download").map(String::as_str));
    api::prompt_audio(&w, &lang, &id, download)
        .await
        .unwrap_or_else(|e| fail(&ctx, e))
}

async fn moh_view(w: &Web, ctx: &Ctx, status: StatusCode, notice: Option<Markup>) -> Response {
    let t = match api::tenant(w).await {
        Ok(t) => t,
        Err(e) => return fail(ctx, e),
    };
    let classes = moh::classes(&w.info().data_dir, Some(t));
    let l = ctx.lang;
    let body = html! {
        p.hint { (tr(l, "moh_intro")) }
        @if let Some(n) = notice { (n) }
        @if classes.is_empty() { p.error { (tr(l, "no_classes")) } }
        table id="moh" { thead { tr {
            th { (tr(l, "class")) } th { (tr(l, "files")) }
        } } tbody {
            @for c in &classes {
                tr id={ "moh-" (c.name) } data-scope=(c.scope) {
                    td {
                        strong { (c.name) } " (" (tr(l, &format!("scope.{}", c.scope))) ")"
                        @if ctx.is_admin() && c.scope == "tenant" {
                            form.inline method="post" action="/moh/delete" {
                                (csrf_field(ctx))
                                input type="hidden" name="class" value=(c.name);
                                button type="submit" { (tr(l, "delete_class")) }
                            }
                        }
                    }
                    td { ul { @for f in &c.files {
                        @let src = format!("/moh/audio/{}/{}", c.name, f.name);
                        li {
                            code { (f.name) } " " (format!("{:.1} s", f.duration_s)) " "
                            audio controls preload="none" src=(src) {}
                            " " a href={ (src) "?download=1" } download { (tr(l, "download")) }
                            @if ctx.is_admin() && c.scope == "tenant" {
                                form.inline method="post" action="/moh/delete" {
                                    (csrf_field(ctx))
                                    input type="hidden" name="class" value=(c.name);
                                    input type="hidden" name="file" value=(f.name);
                                    button type="submit" { (tr(l, "delete")) }
                                }
                            }
                        }
                    } } }
                }
            }
        } }
        @if ctx.is_admin() {
            h2 { (tr(l, "add_file")) }
            form method="post" action="/moh/upload" enctype="multipart/form-data" id="moh-upload" {
                (csrf_field(ctx))
                label { (tr(l, "class")) " " input type="text" name="class" value="default" pattern="[a-z0-9_-]{1,32}" required; }
                " "
                input type="file" name="file" accept="audio/*,.wav,.mp3,.ogg,.flac" required;
                button type="submit" { (tr(l, "upload")) }
            }
        }
    };
    page(ctx, status, "nav.moh", body)
}

async fn moh_page(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    moh_view(&w, &ctx, StatusCode::OK, None).await
}

async fn moh_upload(State(w): State<Web>, Signed(ctx): Signed, mp: Multipart) -> Response {
    let (fields, file) = match signed_upload(&w, &ctx, mp).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let l = ctx.lang;
    let class = field(&fields, "class").trim().to_string();
    let result = match file {
        Err(e) => Err(e),
        Ok((file, file_name)) => {
            let t = match api::tenant(&w).await {
                Ok(t) => t,
                Err(e) => return fail(&ctx, e),
            };
            let dir = w.info().data_dir.clone();
            let name = file_name.unwrap_or_else(|| "music".to_string());
            let class2 = class.clone();
            match tokio::task::spawn_blocking(move || {
                moh::add(&dir, t, &class2, file.path(), &name)
            })
            .await
            {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match result {
        Ok(f) => {
            let n = html! { p.ok role="status" id="moh-added" { (tr(l, "added")) " " code { (class) "/" (f.name) } } };
            moh_view(&w, &ctx, StatusCode::OK, Some(n)).await
        }
        Err(msg) => {
            let n = html! { p.error role="alert" id="upload-error" { (msg) } };
            moh_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, Some(n)).await
        }
    }
}

async fn moh_delete(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let t = match api::tenant(&w).await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e),
    };
    let class = field(&f, "class");
    let file = Some(field(&f, "file")).filter(|s| !s.is_empty());
    if file.is_none()
        && moh::tenant_has_class(&w.info().data_dir, t, class)
        && let Err(store::Error::Invalid { reason, .. }) =
            w.store().moh_class_removable(t, class).await
    {
        return fail(
            &ctx,
            crate::api::ApiError::new(StatusCode::CONFLICT, "in_use", reason),
        );
    }
    match moh::remove(&w.info().data_dir, t, class, file) {
        Ok(_) => {
            let what = match file {
                Some(f) => format!("{class}/{f}"),
                None => class.to_string(),
            };
            let n = html! { p.ok role="status" id="moh-removed" { (tr(ctx.lang, "removed")) " " code { (what) } } };
            moh_view(&w, &ctx, StatusCode::OK, Some(n)).await
        }
        Err(e) => fail(&ctx, api::not_found(e.to_string())),
    }
}

async fn moh_audio(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((class, file)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let download = api::is_yes(q.get("download").map(String::as_str));
    api::moh_audio(&w, &class, &file, download)
        .await
        .unwrap_or_else(|e| fail(&ctx, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_and_scope_has_a_text() {
        for s in [
            Source::DefaultTts,
            Source::Uploaded,
            Source::Recorded,
            Source::Missing,
        ] {
            let k = format!("src.{}", s.as_str());
            assert!(TEXTS.iter().any(|(t, _, _)| *t == k), "{k}");
        }
        for (k, en, ja) in TEXTS {
            assert!(!en.is_empty() && !ja.is_empty() && en != ja, "{k}");
        }
    }
}
