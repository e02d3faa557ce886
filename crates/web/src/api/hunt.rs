//! `/api/v1/groups` (ring groups) and `/api/v1/extensions/{number}/forwarding` (forwarding,
//! follow-me, DND). Validation is the store's (the settings' own checks plus the references
//! checked in the writing transaction); a refusal is a 422 naming the field.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use engine::hunt::{Forwarding, GroupSpec};
use serde_json::{Map, Value};

use super::outside::{all, field_error, merge, required, take_str, tenant};
use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;

/// The ring group and forwarding routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/groups", get(list_groups).post(create_group))
        .route(
            "/groups/{name}",
            get(get_group).put(update_group).delete(delete_group),
        )
        .route(
            "/extensions/{number}/forwarding",
            get(get_forwarding).put(put_forwarding),
        )
}

async fn list_groups(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(w.store().list_groups(tenant(&w).await?).await?))
}

async fn create_group(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<store::RingGroup>)> {
    let name = required("name", take_str(&mut b, "name")?)?;
    let number = take_str(&mut b, "number")?.unwrap_or_default();
    let spec: GroupSpec = merge(&GroupSpec::default(), b)?;
    let g = w
        .store()
        .put_group(tenant(&w).await?, &name, number.trim(), &spec, true)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(g)))
}

async fn find(w: &Web, name: &str) -> ApiResult<store::RingGroup> {
    w.store()
        .group(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("ring group {name} not found")))
}

async fn get_group(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
) -> ApiResult<axum::Json<store::RingGroup>> {
    Ok(axum::Json(find(&w, &name).await?))
}

/// Changes the members given; `members`, when given, replaces the whole list.
async fn update_group(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<store::RingGroup>> {
    let g = find(&w, &name).await?;
    if let Some(n) = take_str(&mut b, "name")?
        && n != g.name
    {
        return Err(field_error(
            "name",
            "a group cannot be renamed: create a new one and remove this one",
        ));
    }
    for k in ["id", "tenant_id", "last_member", "created_at", "updated_at"] {
        b.remove(k);
    }
    let number = take_str(&mut b, "number")?.unwrap_or(g.number.clone());
    let spec: GroupSpec = merge(&g.spec, b)?;
    let g = w
        .store()
        .put_group(g.tenant_id, &g.name, number.trim(), &spec, false)
        .await?;
    Ok(axum::Json(g))
}

async fn delete_group(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<StatusCode> {
    let g = find(&w, &name).await?;
    w.store().delete_group(g.tenant_id, &g.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_forwarding(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
) -> ApiResult<axum::Json<Forwarding>> {
    let f = w.store().forwarding(tenant(&w).await?, &number).await?;
    Ok(axum::Json(f))
}

/// Changes the settings given (an empty string turns a forward off).
async fn put_forwarding(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
    J(b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Forwarding>> {
    let t = tenant(&w).await?;
    let f = w.store().forwarding(t, &number).await?;
    let f: Forwarding = merge(&f, b)?;
    Ok(axum::Json(w.store().put_forwarding(t, &number, &f).await?))
}
