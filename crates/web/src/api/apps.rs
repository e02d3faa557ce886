//! `/api/v1/ivrs`: IVR menus. Validation is the store's (the menu spec's own checks plus the
//! references checked in the writing transaction); a refusal is a 422 naming the field.

use apps::conf::RoomSpec;
use apps::ivr::MenuSpec;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Map, Value, json};

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
        .route("/conferences", get(list_confs).post(create_conf))
        .route(
            "/conferences/{number}",
            get(get_conf).put(update_conf).delete(delete_conf),
        )
        .route(
            "/conferences/{number}/participants/{call}/mute",
            axum::routing::put(mute),
        )
        .route("/conferences/{number}/participants", get(participants))
        .route(
            "/conferences/{number}/participants/{call}",
            axum::routing::delete(kick),
        )
}

/// A room as the API shows it: settings without the PIN (`has_pin`), and who is in it now.
fn room_json(r: &store::ConfRoom, live: &[engine::control::ConfSummary]) -> Value {
    let members = live
        .iter()
        .find(|c| c.tenant_id == r.tenant_id && c.number == r.number)
        .map(|c| c.members.clone())
        .unwrap_or_default();
    json!({
        "number": r.number, "name": r.spec.name, "has_pin": !r.spec.pin.is_empty(),
        "max_participants": r.spec.max_participants, "join_muted": r.spec.join_muted,
        "join_tones": r.spec.join_tones, "participants": members,
        "created_at": r.created_at, "updated_at": r.updated_at,
    })
}

async fn list_confs(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let rooms = w.store().list_confs(tenant(&w).await?).await?;
    let live = w.control().conferences().await;
    let items: Vec<Value> = rooms.iter().map(|r| room_json(r, &live)).collect();
    Ok(all(items))
}

async fn find_conf(w: &Web, number: &str) -> ApiResult<store::ConfRoom> {
    w.store()
        .list_confs(tenant(w).await?)
        .await?
        .into_iter()
        .find(|r| r.number == number)
        .ok_or_else(|| ApiError::not_found(format!("conference room {number} not found")))
}

async fn get_conf(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
) -> ApiResult<axum::Json<Value>> {
    let r = find_conf(&w, &number).await?;
    let live = w.control().conferences().await;
    Ok(axum::Json(room_json(&r, &live)))
}

async fn create_conf(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let number = required("number", take_str(&mut b, "number")?)?;
    let spec: RoomSpec = merge(&RoomSpec::default(), b)?;
    let r = w
        .store()
        .put_conf(tenant(&w).await?, &number, &spec, true)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(room_json(&r, &[]))))
}

async fn update_conf(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
    J(b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let r = find_conf(&w, &number).await?;
    if b.contains_key("number") {
        return Err(super::outside::field_error(
            "number",
            "a room's number cannot change: create a new room and remove this one",
        ));
    }
    let spec: RoomSpec = merge(&r.spec, b)?;
    let r = w
        .store()
        .put_conf(r.tenant_id, &number, &spec, false)
        .await?;
    Ok(axum::Json(room_json(&r, &[])))
}

async fn delete_conf(State(w): State<Web>, _k: Key, P(number): P<String>) -> ApiResult<StatusCode> {
    let r = find_conf(&w, &number).await?;
    w.store().delete_conf(r.tenant_id, &r.number).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"muted": true|false}` for participant `call` of room `number`.
async fn mute(
    State(w): State<Web>,
    _k: Key,
    P((number, call)): P<(String, u64)>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let muted = match b.remove("muted") {
        Some(Value::Bool(m)) => m,
        _ => {
            return Err(super::outside::field_error(
                "muted",
                "required: true or false",
            ));
        }
    };
    if !crate::conf_live::mute(&w, tenant(&w).await?, &number, call, muted).await {
        return Err(ApiError::not_found(format!(
            "call {call} is not in conference room {number}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Who is in room `number` now (joining order).
async fn participants(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
) -> ApiResult<axum::Json<Value>> {
    let r = find_conf(&w, &number).await?;
    let live = w.control().conferences().await;
    Ok(all(crate::conf_live::members(
        &live,
        r.tenant_id,
        &r.number,
    )))
}

/// Drops participant `call` from room `number` (its call is hung up).
async fn kick(
    State(w): State<Web>,
    _k: Key,
    P((number, call)): P<(String, u64)>,
) -> ApiResult<StatusCode> {
    let r = find_conf(&w, &number).await?;
    if !crate::conf_live::kick(&w, r.tenant_id, &r.number, call).await {
        return Err(ApiError::not_found(format!(
            "call {call} is not in conference room {number}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
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
