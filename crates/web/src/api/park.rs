//! `/api/v1/park`: the tenant's park lot (slot range, timeout, hold music class, fallback
//! destination), and `/api/v1/park/calls`: the calls parked now (slot, caller, parked by,
//! since). The park code itself is the feature-code table's `park` row (`/feature-codes/park`).
//! Validation is `engine::park::ParkLot::validate` and the store's number-space check; a
//! refusal is a 422 naming the field.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use engine::park::ParkLot;
use serde_json::{Map, Value, json};

use super::outside::{all, field_error, tenant};
use super::{ApiResult, J, Key};
use crate::Web;

/// The routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/park", get(get_lot).put(put_lot))
        .route("/park/calls", get(list_calls))
}

/// A lot as the API (and CLI `--json`) shows it.
pub(crate) fn lot_json(l: &ParkLot) -> Value {
    json!({
        "first_slot": l.first,
        "last_slot": l.last,
        "timeout_s": l.timeout.as_secs(),
        "moh_class": l.moh_class,
        "fallback": l.fallback,
    })
}

async fn get_lot(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let l = w.store().park_lot(tenant(&w).await?).await?;
    Ok(axum::Json(lot_json(&l)))
}

fn take_u32(b: &mut Map<String, Value>, key: &str, cur: u32) -> ApiResult<u32> {
    match b.remove(key) {
        None => Ok(cur),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| field_error(key, "a whole number")),
    }
}

fn take_text(b: &mut Map<String, Value>, key: &str, cur: String) -> ApiResult<String> {
    match b.remove(key) {
        None => Ok(cur),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(_) => Err(field_error(key, "a string")),
    }
}

/// Changes the fields given (the others keep their value).
async fn put_lot(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let t = tenant(&w).await?;
    let cur = w.store().park_lot(t).await?;
    let cur_s = u32::try_from(cur.timeout.as_secs()).unwrap_or(u32::MAX);
    let timeout_s = take_u32(&mut b, "timeout_s", cur_s)?;
    let lot = ParkLot {
        first: take_u32(&mut b, "first_slot", cur.first)?,
        last: take_u32(&mut b, "last_slot", cur.last)?,
        timeout: Duration::from_secs(u64::from(timeout_s)),
        moh_class: take_text(&mut b, "moh_class", cur.moh_class)?,
        fallback: take_text(&mut b, "fallback", cur.fallback)?,
    };
    if let Some(k) = b.keys().next() {
        return Err(field_error(k, "unknown field"));
    }
    w.store().set_park_lot(t, &lot).await?;
    Ok(axum::Json(lot_json(&lot)))
}

async fn list_calls(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let t = tenant(&w).await?;
    Ok(all(w.control().parked_calls(t).await))
}
