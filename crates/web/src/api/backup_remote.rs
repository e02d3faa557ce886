//! `/api/v1/backup/remote` (a PBX shipping its backups to a backup server) and
//! `/api/v1/backup/server` (the backup server's side): the panel's Backup server page as an API.
//! The licence's topology must be `standalone-backup` for pairing, shipping and restoring.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde_json::{Map, Value, json};

use super::outside::{field_error, required, take_str};
use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;

/// The routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/backup/remote", get(remote_status))
        .route("/backup/remote/pair", post(pair).delete(unpair))
        .route("/backup/remote/schedule", put(schedule))
        .route("/backup/remote/ship", post(ship))
        .route("/backup/remote/restore", post(restore))
        .route("/backup/server", get(server_status))
        .route("/backup/server/codes", post(code))
        .route("/backup/server/keep", put(keep))
        .route("/backup/server/peers/{id}", delete(revoke))
}

fn topology(w: &Web) -> ApiResult<()> {
    match backup::topology_refusal(w.licensing().entitlement().topology()) {
        Some(why) => Err(ApiError::new(StatusCode::FORBIDDEN, "topology", why)),
        None => Ok(()),
    }
}

fn failed(status: StatusCode, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(status, "backup_failed", format!("{e:#}"))
}

async fn remote_status(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let refusal = backup::topology_refusal(w.licensing().entitlement().topology());
    let st = w.store().ship_state().await?;
    let generations = if st.paired() {
        match backup::client::generations(w.store()).await {
            Ok(g) => json!({ "items": g }),
            Err(e) => json!({ "error": format!("{e:#}") }),
        }
    } else {
        Value::Null
    };
    Ok(axum::Json(json!({
        "topology_refusal": refusal, "paired": st.paired(), "state": st,
        "generations": generations,
    })))
}

async fn pair(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    topology(&w)?;
    let address = required("address", take_str(&mut b, "address")?)?;
    let code = required("code", take_str(&mut b, "code")?)?;
    let name = backup::client::pair(
        w.store(),
        &address,
        &code,
        w.licensing().node_id(),
        &w.info().node,
    )
    .await
    .map_err(|e| field_error("code", format!("{e:#}")))?;
    Ok(axum::Json(json!({ "paired": true, "server_name": name })))
}

async fn unpair(State(w): State<Web>, _k: Key) -> ApiResult<StatusCode> {
    w.store().clear_ship_pairing().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn schedule(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let at = take_str(&mut b, "daily_at")?.unwrap_or_default();
    backup::schedule::parse_daily_at(&at).map_err(|e| field_error("daily_at", e))?;
    w.store().set_ship_schedule(at.trim()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ship(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    topology(&w)?;
    let g = backup::client::ship(w.store(), &w.info().data_dir, &w.info().node)
        .await
        .map_err(|e| failed(StatusCode::BAD_GATEWAY, e))?;
    Ok(axum::Json(json!({ "generation": g })))
}

async fn restore(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    topology(&w)?;
    let id = match b.remove("generation") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| field_error("generation", "must be an integer"))?,
        _ => return Err(field_error("generation", "required: the generation number")),
    };
    let m = backup::client::restore_remote(w.store(), &w.info().data_dir, id)
        .await
        .map_err(|e| failed(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    Ok(axum::Json(
        json!({ "restored": true, "created_at": m.created_at }),
    ))
}

async fn server_status(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let state = w.store().backup_server_state().await?;
    let peers = w.store().list_peers().await?;
    let received = w.store().list_generations(false, 100).await?;
    Ok(axum::Json(json!({
        "listening": w.info().backup_listen, "state": state, "peers": peers, "received": received,
    })))
}

async fn code(State(w): State<Web>, _k: Key) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    topology(&w)?;
    let (code, until) = backup::server::create_code(w.store())
        .await
        .map_err(|e| failed(StatusCode::CONFLICT, e))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "code": code, "expires_at": until })),
    ))
}

async fn keep(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let n = match b.remove("keep") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => return Err(field_error("keep", "required: 1-1000")),
    };
    if !(1..=1000).contains(&n) {
        return Err(field_error("keep", "must be 1-1000"));
    }
    w.store().set_backup_keep(n).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke(State(w): State<Web>, _k: Key, P(id): P<i64>) -> ApiResult<StatusCode> {
    w.store().revoke_peer(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
