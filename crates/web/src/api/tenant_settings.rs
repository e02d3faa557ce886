//! `/api/v1/tenant-settings/{key}`: settings a tenant overrides for itself (`blf.show_caller`,
//! `intercom.audio`, see `engine::tenant_settings`). `GET` shows the tenant's own value (if
//! any), the node's and the one in force; `PUT {"value": ...}` sets the tenant's (checked like
//! the node setting); `DELETE` returns to the node's. A key limited to a tenant works on that
//! tenant; a node-wide key on the default tenant.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, J, Key, P};
use crate::{Web, settings};

/// The routes (merged into `/api/v1`).
pub(crate) fn routes() -> Router<Web> {
    Router::new().route("/tenant-settings/{key}", get(show).put(set).delete(reset))
}

/// The definition of a key a tenant may override; 404 for others.
pub(crate) fn find(key: &str) -> ApiResult<&'static settings::Def> {
    if !engine::tenant_settings::TENANT_KEYS.contains(&key) {
        return Err(ApiError::not_found(format!(
            "{key:?} is not a setting a tenant may override (those are: {})",
            engine::tenant_settings::TENANT_KEYS.join(", ")
        )));
    }
    settings::find(key).ok_or_else(|| ApiError::not_found(format!("no setting {key:?}")))
}

/// The tenant a key works on.
async fn tenant_of(w: &Web, k: &store::ApiKey) -> ApiResult<i64> {
    match k.tenant_id {
        Some(t) => Ok(t),
        None => Ok(w.store().default_tenant().await?.id),
    }
}

/// What `GET` answers for `d` in `tenant`.
pub(crate) async fn view(w: &Web, tenant: i64, d: &settings::Def) -> ApiResult<Value> {
    let own = w.store().setting_json(Some(tenant), d.key).await?;
    let node = w
        .store()
        .setting_json(None, d.key)
        .await?
        .unwrap_or_else(|| d.default.to_json());
    Ok(json!({
        "key": d.key,
        "tenant_id": tenant,
        "tenant_value": own,
        "node_value": node,
        "value": own.clone().unwrap_or_else(|| node.clone()),
        "inherited": own.is_none(),
        "kind": d.kind,
    }))
}

async fn show(State(w): State<Web>, Key(k): Key, P(key): P<String>) -> ApiResult<Json<Value>> {
    let d = find(&key)?;
    let t = tenant_of(&w, &k).await?;
    Ok(Json(view(&w, t, d).await?))
}

/// Body of `PUT /tenant-settings/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    value: Value,
}

async fn set(
    State(w): State<Web>,
    Key(k): Key,
    P(key): P<String>,
    J(b): J<Body>,
) -> ApiResult<Json<Value>> {
    let d = find(&key)?;
    let v = d
        .validate(&b.value)
        .map_err(|e| ApiError::invalid(format!("{key}: {e}")))?;
    let t = tenant_of(&w, &k).await?;
    w.store().set_setting(Some(t), d.key, &v).await?;
    Ok(Json(view(&w, t, d).await?))
}

async fn reset(State(w): State<Web>, Key(k): Key, P(key): P<String>) -> ApiResult<Json<Value>> {
    let d = find(&key)?;
    let t = tenant_of(&w, &k).await?;
    w.store().delete_setting(Some(t), d.key).await?;
    Ok(Json(view(&w, t, d).await?))
}
