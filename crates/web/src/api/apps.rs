//! `/api/v1/ivrs`: IVR menus. Validation is the store's (the menu spec's own checks plus the
//! references checked in the writing transaction); a refusal is a 422 naming the field.

use apps::ivr::MenuSpec;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Map, Value};

use super::outside::{all, merge, required, take_str, tenant};
use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;

/// The voice-application routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/ivrs", get(list_ivrs).post(create_ivr))
        .route(
            "/ivrs/{name}",
            get(get_ivr).put(update_ivr).delete(delete_ivr),
        )
}

async fn list_ivrs(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(w.store().list_ivrs(tenant(&w).await?).await?))
}

async fn create_ivr(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<store::IvrMenu>)> {
    let name = required("name", take_str(&mut b, "name")?)?;
    let number = take_str(&mut b, "number")?.unwrap_or_default();
    let spec: MenuSpec = merge(&MenuSpec::default(), b)?;
    let m = w
        .store()
        .put_ivr(tenant(&w).await?, &name, number.trim(), &spec, true)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(m)))
}

async fn find(w: &Web, name: &str) -> ApiResult<store::IvrMenu> {
    w.store()
        .ivr(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("IVR menu {name} not found")))
}

async fn get_ivr(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
) -> ApiResult<axum::Json<store::IvrMenu>> {
    Ok(axum::Json(find(&w, &name).await?))
}

/// Changes the members given; `options`, when given, replaces the whole option table.
async fn update_ivr(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<store::IvrMenu>> {
    let m = find(&w, &name).await?;
    if let Some(n) = take_str(&mut b, "name")?
        && n != m.name
    {
        return Err(super::outside::field_error(
            "name",
            "a menu cannot be renamed: create a new one and remove this one",
        ));
    }
    let number = take_str(&mut b, "number")?.unwrap_or(m.number.clone());
    let spec: MenuSpec = merge(&m.spec, b)?;
    let m = w
        .store()
        .put_ivr(m.tenant_id, &m.name, number.trim(), &spec, false)
        .await?;
    Ok(axum::Json(m))
}

async fn delete_ivr(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<StatusCode> {
    let m = find(&w, &name).await?;
    w.store().delete_ivr(m.tenant_id, &m.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
