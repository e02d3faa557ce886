//! `/api/v1/pages` (page groups: paging with one-way audio). Validation is the store's; a
//! refusal is a 422 naming the field.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use engine::page::PageGroup;
use serde_json::{Map, Value};

use super::outside::{all, field_error, merge, required, take_str, tenant};
use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;

/// The page group routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/pages", get(list).post(create))
        .route("/pages/{name}", get(show).put(update).delete(delete))
}

async fn list(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(w.store().list_page_groups(tenant(&w).await?).await?))
}

async fn create(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<store::PageGroupRow>)> {
    let name = required("name", take_str(&mut b, "name")?)?;
    let number = take_str(&mut b, "number")?.unwrap_or_default();
    let mut g: PageGroup = merge(&PageGroup::default(), b)?;
    g.name = name;
    let r = w
        .store()
        .save_page_group(tenant(&w).await?, number.trim(), &g, true)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

async fn find(w: &Web, name: &str) -> ApiResult<store::PageGroupRow> {
    w.store()
        .page_group(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("page group {name} not found")))
}

async fn show(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
) -> ApiResult<axum::Json<store::PageGroupRow>> {
    Ok(axum::Json(find(&w, &name).await?))
}

/// Changes the settings given; `members`, when given, replaces the whole list.
async fn update(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<store::PageGroupRow>> {
    let r = find(&w, &name).await?;
    if let Some(n) = take_str(&mut b, "name")?
        && n != r.name
    {
        return Err(field_error(
            "name",
            "a page group cannot be renamed: create a new one and remove this one",
        ));
    }
    for k in ["id", "tenant_id", "created_at", "updated_at"] {
        b.remove(k);
    }
    let number = take_str(&mut b, "number")?.unwrap_or(r.number.clone());
    let mut g: PageGroup = merge(&r.group, b)?;
    g.name = r.name.clone();
    let r = w
        .store()
        .save_page_group(r.tenant_id, number.trim(), &g, false)
        .await?;
    Ok(axum::Json(r))
}

async fn delete(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<StatusCode> {
    let r = find(&w, &name).await?;
    w.store().delete_page_group(r.tenant_id, &r.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
