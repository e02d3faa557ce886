//! `/api/v1/feature-codes`, `/api/v1/timeconds`, `/api/v1/holiday-calendar` and pickup
//! groups: the tenant's feature code table, time conditions (with their state now and the
//! manual override), the time zone and holiday calendar, and each extension's pickup groups.
//! Validation is the store's (and `engine::features`/`engine::timecond`'s); a refusal is a 422
//! naming the field.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use engine::timecond::{CalendarSpec, Mode, TimeCondSpec};
use serde_json::{Map, Value, json};

use super::outside::{all, field_error, merge, required, take_str, tenant};
use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;

/// The routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/feature-codes", get(list_codes))
        .route("/feature-codes/{feature}", put(set_code).delete(reset_code))
        .route("/timeconds", get(list_tcs).post(create_tc))
        .route(
            "/timeconds/{name}",
            get(get_tc).put(update_tc).delete(delete_tc),
        )
        .route("/timeconds/{name}/mode", put(set_mode))
        .route("/holiday-calendar", get(get_cal).put(put_cal))
        .route("/holiday-calendar/import", axum::routing::post(import_cal))
        .route("/pickup-groups", get(list_pickup))
        .route(
            "/extensions/{number}/pickup-groups",
            get(get_ext_pickup).put(set_ext_pickup),
        )
}

async fn list_codes(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(w.store().list_feature_codes(tenant(&w).await?).await?))
}

/// `{"code": "*55"}`, or `{"code": null}` to switch the code off.
async fn set_code(
    State(w): State<Web>,
    _k: Key,
    P(feature): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    if !b.contains_key("code") {
        return Err(field_error(
            "code",
            "required: a code, or null to switch it off",
        ));
    }
    let code = take_str(&mut b, "code")?;
    let t = tenant(&w).await?;
    w.store()
        .set_feature_code(t, &feature, code.as_deref())
        .await?;
    let row = w
        .store()
        .list_feature_codes(t)
        .await?
        .into_iter()
        .find(|r| r.feature == feature);
    Ok(axum::Json(json!(row)))
}

async fn reset_code(State(w): State<Web>, _k: Key, P(feature): P<String>) -> ApiResult<StatusCode> {
    let action: engine::features::FeatureAction = feature
        .parse()
        .map_err(|e: engine::features::FeatureError| ApiError::not_found(e.to_string()))?;
    w.store()
        .set_feature_code(tenant(&w).await?, &feature, Some(action.def().default))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A time condition with its state now (`day`/`night` and why).
async fn tc_json(w: &Web, r: &store::TimeCondRow) -> ApiResult<Value> {
    let cal = w.store().calendar(r.tenant_id).await?;
    let mut v = serde_json::to_value(r)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if let (Ok((tz, cal)), Ok(tc)) = (cal.build(), r.spec.build(&r.name, r.index, r.mode)) {
        let s = tc.state(std::time::SystemTime::now(), tz, &cal);
        v["state"] = json!(if s.open { "day" } else { "night" });
        v["why"] = json!(s.why);
    }
    Ok(v)
}

async fn find_tc(w: &Web, name: &str) -> ApiResult<store::TimeCondRow> {
    w.store()
        .timecond(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("time condition {name} not found")))
}

async fn list_tcs(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let mut items = Vec::new();
    for r in w.store().list_timeconds(tenant(&w).await?).await? {
        items.push(tc_json(&w, &r).await?);
    }
    Ok(all(items))
}

async fn get_tc(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<axum::Json<Value>> {
    let r = find_tc(&w, &name).await?;
    Ok(axum::Json(tc_json(&w, &r).await?))
}

fn take_index(b: &mut Map<String, Value>, default: u8) -> ApiResult<u8> {
    match b.remove("index") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| field_error("index", "an integer, 0 (none) or 1-99")),
    }
}

async fn create_tc(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let name = required("name", take_str(&mut b, "name")?)?;
    let number = take_str(&mut b, "number")?.unwrap_or_default();
    let index = take_index(&mut b, 0)?;
    for k in ["matched", "unmatched"] {
        if !b.contains_key(k) {
            return Err(field_error(k, "required"));
        }
    }
    let spec: TimeCondSpec = merge(&TimeCondSpec::default(), b)?;
    let r = w
        .store()
        .put_timecond(tenant(&w).await?, &name, &number, index, &spec, true)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(tc_json(&w, &r).await?)))
}

async fn update_tc(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let r = find_tc(&w, &name).await?;
    if b.contains_key("name") || b.contains_key("mode") {
        return Err(field_error(
            "name",
            "a time condition's name cannot change; the mode is set by PUT …/mode",
        ));
    }
    let number = take_str(&mut b, "number")?.unwrap_or(r.number.clone());
    let index = take_index(&mut b, r.index)?;
    let spec: TimeCondSpec = merge(&r.spec, b)?;
    let r = w
        .store()
        .put_timecond(r.tenant_id, &name, &number, index, &spec, false)
        .await?;
    Ok(axum::Json(tc_json(&w, &r).await?))
}

async fn delete_tc(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<StatusCode> {
    let r = find_tc(&w, &name).await?;
    w.store().delete_timecond(r.tenant_id, &r.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"mode": "auto"|"day"|"night"}`.
async fn set_mode(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let mode: Mode = required("mode", take_str(&mut b, "mode")?)?
        .parse()
        .map_err(|e: String| field_error("mode", e))?;
    let r = find_tc(&w, &name).await?;
    w.store()
        .set_timecond_mode(r.tenant_id, &name, mode)
        .await?;
    let r = find_tc(&w, &name).await?;
    Ok(axum::Json(tc_json(&w, &r).await?))
}

async fn get_cal(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(json!(
        w.store().calendar(tenant(&w).await?).await?
    )))
}

async fn put_cal(
    State(w): State<Web>,
    _k: Key,
    J(b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let t = tenant(&w).await?;
    let spec: CalendarSpec = merge(&w.store().calendar(t).await?, b)?;
    w.store().put_calendar(t, &spec).await?;
    Ok(axum::Json(json!(spec)))
}

/// `{"ics": "BEGIN:VCALENDAR…"}`: adds the file's all-day events as holidays.
async fn import_cal(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let ics = required("ics", take_str(&mut b, "ics")?)?;
    if ics.len() > 1_000_000 {
        return Err(field_error("ics", "larger than 1 MB"));
    }
    let list = engine::timecond::import_ical(&ics).map_err(|e| field_error("ics", e))?;
    let t = tenant(&w).await?;
    let mut spec = w.store().calendar(t).await?;
    let n = list.len();
    for h in list {
        spec.add(h.date, &h.name, h.yearly);
    }
    w.store().put_calendar(t, &spec).await?;
    Ok(axum::Json(json!({ "imported": n, "calendar": spec })))
}

async fn list_pickup(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let groups = w.store().pickup_groups(tenant(&w).await?).await?;
    Ok(all(groups
        .into_iter()
        .map(|(name, members)| json!({ "name": name, "members": members }))
        .collect()))
}

async fn get_ext_pickup(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
) -> ApiResult<axum::Json<Value>> {
    let t = tenant(&w).await?;
    let all = w.store().all_pickup_groups().await?;
    let groups = all.get(&(t, number.clone())).cloned().unwrap_or_default();
    Ok(axum::Json(json!({ "extension": number, "groups": groups })))
}

/// `{"groups": ["sales", "warehouse"]}`.
async fn set_ext_pickup(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let groups: Vec<String> = match b.remove("groups") {
        Some(v @ Value::Array(_)) => serde_json::from_value(v)
            .map_err(|_| field_error("groups", "an array of group names"))?,
        _ => return Err(field_error("groups", "required: an array of group names")),
    };
    let g = w
        .store()
        .set_pickup_groups(tenant(&w).await?, &number, &groups)
        .await?;
    Ok(axum::Json(json!({ "extension": number, "groups": g })))
}
