//! Prompt language in the panel: the tenant's default on the Settings page and each
//! extension's own choice in the extension form (empty = inherit). See docs/prompts.md.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fail, field, table_text};
use crate::Web;
use crate::api::ApiError;
use crate::i18n::Lang;

const TEXTS: &[(&str, &str, &str)] = &[
    ("heading", "Prompt language", "音声ガイダンスの言語"),
    (
        "tenant_note",
        "The language callers of this company hear: extensions set to “inherit”, and outside callers. “Node setting” uses prompts.language above.",
        "この会社の発信者が聞く言語です（「継承」の内線と外線からの発信者）。「ノード設定」は上の prompts.language に従います。",
    ),
    ("tenant_label", "Company default", "会社の既定"),
    ("ext_label", "Prompt language", "音声ガイダンスの言語"),
    ("inherit_node", "Node setting", "ノード設定"),
    ("inherit_tenant", "Company default", "会社の既定"),
    ("en", "English", "英語"),
    ("ja", "Japanese", "日本語"),
    (
        "bad",
        "Choose one of the listed languages.",
        "一覧の言語から選んでください。",
    ),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    table_text(TEXTS, lang, key)
}

/// Routes of the tenant language form (merged into the panel).
pub(super) fn routes() -> Router<Web> {
    Router::new().route("/settings/language", post(save_tenant))
}

fn options(ctx: &Ctx, inherit_key: &str, current: &str) -> Markup {
    html! {
        option value="" selected[current.is_empty()] { (tr(ctx.lang, inherit_key)) }
        @for l in engine::settings::PROMPT_LANGUAGES {
            option value=(l) selected[current == *l] { (tr(ctx.lang, l)) " (" (l) ")" }
        }
    }
}

/// The language select of the extension form; `form` is a refused form's input, `err` the
/// store's message when the language was refused.
pub(super) fn ext_field(
    ctx: &Ctx,
    ext: &store::Extension,
    form: Option<&HashMap<String, String>>,
    err: Option<(&str, &str)>,
) -> Markup {
    let current = form.map_or(ext.language.as_str(), |f| field(f, "language"));
    html! {
        label { (tr(ctx.lang, "ext_label"))
            select name="language" id="ext-language" { (options(ctx, "inherit_tenant", current)) }
            @if let Some((_, msg)) = err.filter(|(f, _)| *f == "language") {
                span.error.field-error id="err-language" data-field="language" { (msg) }
            }
        }
    }
}

/// The language an extension form sets: `None` when the form has no such field.
pub(super) fn ext_form_value(f: &HashMap<String, String>) -> Option<String> {
    f.get("language").map(|l| l.trim().to_string())
}

/// The tenant default section of the Settings page.
pub(super) async fn tenant_section(w: &Web, ctx: &Ctx, error: bool) -> Result<Markup, ApiError> {
    let t = w.store().default_tenant().await?;
    Ok(html! {
        h2 id="prompt-language" { (tr(ctx.lang, "heading")) }
        p.hint { (tr(ctx.lang, "tenant_note")) }
        form method="post" action="/settings/language" id="tenant-language" {
            (csrf_field(ctx))
            label { (tr(ctx.lang, "tenant_label"))
                select name="language" id="tenant-language-select" disabled[!ctx.is_admin()] {
                    (options(ctx, "inherit_node", &t.language))
                }
                @if error { span.error.field-error id="err-tenant-language" { (tr(ctx.lang, "bad")) } }
            }
            @if ctx.is_admin() { button type="submit" { (ctx.t("save")) } }
        }
    })
}

async fn save_tenant(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e.into()),
    };
    let lang = field(&f, "language").trim();
    if store::validate_language(lang).is_err() {
        let mut errors = HashMap::new();
        errors.insert("tenant.language", tr(ctx.lang, "bad").to_string());
        return super::settings_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, &errors, false)
            .await;
    }
    match w.store().set_tenant_language(t.id, lang).await {
        Ok(_) => super::settings_view(&w, &ctx, StatusCode::OK, &HashMap::new(), true).await,
        Err(e) => fail(&ctx, e.into()),
    }
}
