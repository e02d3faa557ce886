//! `POST /api/v1/calls/{id}/transfer {"to": "1003", "moves": "caller"}`: blind transfer of a
//! call in progress by the administrator. `moves` (optional, `caller` or `callee`) names the
//! party that goes to `to`; the other party is the transferring side. Without it the call's
//! answering extension (or its caller, when the callee is no extension) is the transferring side: the number is routed with its class of service, its
//! peer rings `to`, and it is released once `to` answers (see `engine::transfer`).
//! `GET /api/v1/cdrs/{id}/events`: a call record's transfer events, in order.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Map, Value};

use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;

/// The transfer route (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/calls/{id}/transfer", post(transfer))
        .route("/cdrs/{id}/events", get(events))
}

/// The events of call record `id` (transfers, pickups), in order; empty when it had none.
async fn events(State(w): State<Web>, _k: Key, P(id): P<i64>) -> ApiResult<axum::Json<Value>> {
    let items = w.store().cdr_events(id).await?;
    let n = items.len();
    Ok(axum::Json(
        serde_json::json!({ "items": items, "total": n, "limit": n, "offset": 0 }),
    ))
}

/// The API error for a refusal's SIP-like status.
pub(crate) fn refusal(r: &engine::transfer::TransferRefused) -> ApiError {
    let status = match r.status {
        400 => StatusCode::UNPROCESSABLE_ENTITY,
        403 => StatusCode::FORBIDDEN,
        404 => StatusCode::NOT_FOUND,
        409 | 491 => StatusCode::CONFLICT,
        503 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let code = match status {
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "invalid",
    };
    ApiError::new(status, code, r.reason.clone())
}

async fn transfer(
    State(w): State<Web>,
    _k: Key,
    P(id): P<u64>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let to = match b.remove("to") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Err(super::outside::field_error(
                "to",
                "required: the number to transfer to",
            ));
        }
    };
    let moves = match b.remove("moves") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match engine::xfer_party::Party::parse(&s) {
            Some(p) => Some(p),
            None => return Err(super::outside::field_error("moves", "caller or callee")),
        },
        Some(_) => return Err(super::outside::field_error("moves", "caller or callee")),
    };
    if let Some(k) = b.keys().next() {
        return Err(super::outside::field_error(k, "unknown field"));
    }
    let r = match moves {
        Some(m) => w.control().transfer_moving(id, to, m).await,
        None => w.control().transfer(id, to).await,
    };
    match r {
        Ok(()) => Ok(StatusCode::ACCEPTED),
        Err(r) => Err(refusal(&r)),
    }
}
