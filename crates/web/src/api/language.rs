//! `/api/v1/tenant-settings`: the tenant's default prompt language (extensions set theirs with
//! the `language` field of `/extensions`). See docs/prompts.md.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{ApiResult, J, Key};
use crate::Web;

/// The routes (merged into `/api/v1`).
pub(crate) fn routes() -> Router<Web> {
    Router::new().route("/tenant-settings", get(show).put(set))
}

/// Body of `PUT /tenant-settings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSettingsPut {
    language: String,
}

/// What `GET /tenant-settings` answers.
#[derive(Debug, Serialize)]
struct TenantSettings {
    /// `en`, `ja`, or empty (the node's `prompts.language`).
    language: String,
    /// What the tenant's callers hear when their extension inherits.
    effective_language: String,
}

async fn settings_of(w: &Web) -> ApiResult<TenantSettings> {
    let t = w.store().default_tenant().await?;
    let node: Option<String> = w
        .store()
        .setting(None, engine::settings::keys::PROMPTS_LANGUAGE)
        .await
        .ok()
        .flatten();
    let effective =
        engine::prompt_lang::pick(None, Some(&t.language), node.as_deref().unwrap_or(""));
    Ok(TenantSettings {
        language: t.language,
        effective_language: effective,
    })
}

async fn show(State(w): State<Web>, _k: Key) -> ApiResult<Json<TenantSettings>> {
    Ok(Json(settings_of(&w).await?))
}

async fn set(
    State(w): State<Web>,
    _k: Key,
    J(b): J<TenantSettingsPut>,
) -> ApiResult<Json<TenantSettings>> {
    let t = w.store().default_tenant().await?;
    w.store()
        .set_tenant_language(t.id, b.language.trim())
        .await?;
    Ok(Json(settings_of(&w).await?))
}
