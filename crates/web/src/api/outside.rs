//! `/api/v1` for outside lines: trunks (and their live state), outbound routes, inbound routes
//! (DIDs), the tenant's outbound policy and extensions' outbound limits. Validation is the
//! `engine::outside` types' own, applied by the store; a refusal is a 422 whose `error.field`
//! is the store's field name, as the CLI names it as a flag.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use store::{DidSpec, ExtLimits, RouteSpec, TenantOutbound, TrunkSpec};

use super::{ApiError, ApiResult, J, Key, P};
use crate::Web;
use engine::outside::{self, DidPattern};

/// The outside-line routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/trunks", get(list_trunks).post(create_trunk))
        .route("/trunks/status", get(trunk_status))
        .route(
            "/trunks/{name}",
            get(get_trunk).put(update_trunk).delete(delete_trunk),
        )
        .route("/routes", get(list_routes).post(create_route))
        .route(
            "/routes/{name}",
            get(get_route).put(update_route).delete(delete_route),
        )
        .route("/dids", get(list_dids).post(create_did))
        .route(
            "/dids/{pattern}",
            get(get_did).put(update_did).delete(delete_did),
        )
        .route("/outbound", get(get_outbound).put(put_outbound))
}

/// A 422 about `field`.
pub(crate) fn field_error(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        field: Some(field.to_string()),
        ..ApiError::invalid(format!("{field}: {message}"))
    }
}

/// Applies a JSON object of settings onto `base`. Each key is tried alone first, so an
/// unknown key or a value of the wrong type is refused naming that key.
pub(crate) fn merge<T: Serialize + DeserializeOwned>(
    base: &T,
    patch: Map<String, Value>,
) -> ApiResult<T> {
    let internal = |e: serde_json::Error| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    };
    let mut doc = match serde_json::to_value(base).map_err(internal)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (k, v) in patch {
        let alone = Value::Object(Map::from_iter([(k.clone(), v.clone())]));
        if let Err(e) = serde_json::from_value::<T>(alone) {
            return Err(field_error(&k, e));
        }
        doc.insert(k, v);
    }
    serde_json::from_value(Value::Object(doc)).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Removes a string member (`null` or absent: `None`).
pub(crate) fn take_str(m: &mut Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_error(key, "must be a string")),
    }
}

/// Removes an integer member (`null` or absent: `None`).
fn take_int(m: &mut Map<String, Value>, key: &str) -> ApiResult<Option<i64>> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| field_error(key, "must be an integer")),
    }
}

pub(crate) fn required(key: &str, v: Option<String>) -> ApiResult<String> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| field_error(key, "required"))
}

pub(crate) async fn tenant(w: &Web) -> ApiResult<i64> {
    Ok(w.store().default_tenant().await?.id)
}

pub(crate) fn all<T: Serialize>(items: Vec<T>) -> axum::Json<Value> {
    let n = items.len();
    axum::Json(json!({ "items": items, "total": n, "limit": n, "offset": 0 }))
}

// ----- trunks -----

/// `host` given as `host:port` (no separate `port`) is split, as the CLI's `--host` is.
fn split_host_port(m: &mut Map<String, Value>) -> ApiResult<()> {
    if m.contains_key("port") {
        return Ok(());
    }
    let Some(Value::String(h)) = m.get("host") else {
        return Ok(());
    };
    let h = h.trim().to_string();
    if h.parse::<std::net::IpAddr>().is_ok() || !(h.contains(':') || h.starts_with('[')) {
        m.insert("host".into(), Value::from(h));
        return Ok(());
    }
    let (host, port) =
        outside::parse_host_port("host", &h).map_err(|e| field_error(e.field, e.reason))?;
    m.insert("host".into(), Value::from(host));
    m.insert("port".into(), json!(port));
    Ok(())
}

/// A registration trunk cannot authenticate without a password (the CLI refuses the same).
fn check_register_password(spec: &TrunkSpec, has_password: bool) -> ApiResult<()> {
    if spec.register && !has_password {
        return Err(field_error(
            "password",
            "a registration trunk needs the account's password",
        ));
    }
    Ok(())
}

async fn list_trunks(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(w.store().list_trunks(tenant(&w).await?).await?))
}

async fn create_trunk(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<store::Trunk>)> {
    let name = required("name", take_str(&mut b, "name")?)?;
    let password = take_str(&mut b, "password")?.unwrap_or_default();
    split_host_port(&mut b)?;
    if !b.contains_key("host") {
        return Err(field_error(
            "host",
            "required (the provider's host name or address)",
        ));
    }
    let spec: TrunkSpec = merge(&TrunkSpec::default(), b)?;
    check_register_password(&spec, !password.is_empty())?;
    w.check_create(crate::license::LimitKind::Trunks).await?;
    let t = w
        .store()
        .create_trunk(tenant(&w).await?, &name, &spec, &password)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(t)))
}

async fn find_trunk(w: &Web, name: &str) -> ApiResult<store::Trunk> {
    w.store()
        .trunk(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("trunk {name} not found")))
}

async fn get_trunk(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
) -> ApiResult<axum::Json<store::Trunk>> {
    Ok(axum::Json(find_trunk(&w, &name).await?))
}

async fn update_trunk(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<store::Trunk>> {
    let t = find_trunk(&w, &name).await?;
    if let Some(n) = take_str(&mut b, "name")?
        && n != t.name
    {
        return Err(field_error("name", "a trunk cannot be renamed"));
    }
    let password = take_str(&mut b, "password")?;
    split_host_port(&mut b)?;
    let spec: TrunkSpec = merge(&t.spec, b)?;
    let has = match &password {
        Some(p) => !p.is_empty(),
        None => t.has_password,
    };
    check_register_password(&spec, has)?;
    let t = w
        .store()
        .update_trunk(t.tenant_id, &name, &spec, password.as_deref())
        .await?;
    Ok(axum::Json(t))
}

async fn delete_trunk(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<StatusCode> {
    w.store().delete_trunk(tenant(&w).await?, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A trunk's state for the API and the panel: the running core's view (`live`, `None` when the
/// core does not run on this node) and what every node last stored (`nodes`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TrunkState {
    /// Trunk name.
    pub name: String,
    /// Enabled in its settings.
    pub enabled: bool,
    /// A registration trunk.
    pub register: bool,
    /// The core's state now.
    pub live: Option<engine::TrunkStatus>,
    /// Stored states, one per node.
    pub nodes: Vec<store::TrunkStatusRow>,
}

impl TrunkState {
    /// The state to show: the live one, else the most recently stored one.
    pub fn current(&self) -> Option<Value> {
        if let Some(l) = &self.live {
            return serde_json::to_value(l).ok();
        }
        self.nodes
            .iter()
            .max_by_key(|n| n.updated_at)
            .map(|n| n.status.clone())
    }
}

/// Every trunk of the tenant with its state.
pub(crate) async fn trunk_states(w: &Web) -> ApiResult<Vec<TrunkState>> {
    let tid = tenant(w).await?;
    let trunks = w.store().list_trunks(tid).await?;
    let stored = w.store().trunk_statuses(tid).await?;
    let live = w.control().trunk_statuses();
    Ok(trunks
        .into_iter()
        .map(|t| TrunkState {
            live: live
                .iter()
                .find(|s| s.id == t.id && s.tenant == tid)
                .cloned(),
            nodes: stored
                .iter()
                .filter(|s| s.trunk_id == t.id)
                .cloned()
                .collect(),
            name: t.name,
            enabled: t.spec.enabled,
            register: t.spec.register,
        })
        .collect())
}

async fn trunk_status(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    let items = trunk_states(&w).await?;
    let n = items.len();
    Ok(axum::Json(json!({
        "items": items,
        "total": n,
        "limit": n,
        "offset": 0,
        "core_running": w.control().core_alive(),
    })))
}

// ----- outbound routes -----

async fn list_routes(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(w.store().list_routes(tenant(&w).await?).await?))
}

async fn create_route(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<store::OutboundRoute>)> {
    let name = required("name", take_str(&mut b, "name")?)?;
    let position = take_int(&mut b, "position")?;
    let spec: RouteSpec = merge(&RouteSpec::default(), b)?;
    let r = w
        .store()
        .create_route(tenant(&w).await?, &name, &spec, position)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

async fn find_route(w: &Web, name: &str) -> ApiResult<store::OutboundRoute> {
    w.store()
        .route(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("route {name} not found")))
}

async fn get_route(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
) -> ApiResult<axum::Json<store::OutboundRoute>> {
    Ok(axum::Json(find_route(&w, &name).await?))
}

async fn update_route(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<store::OutboundRoute>> {
    let r = find_route(&w, &name).await?;
    if let Some(n) = take_str(&mut b, "name")?
        && n != r.name
    {
        return Err(field_error("name", "a route cannot be renamed"));
    }
    let position = take_int(&mut b, "position")?;
    let spec: RouteSpec = merge(&r.spec, b)?;
    let r = w
        .store()
        .update_route(r.tenant_id, &name, &spec, position)
        .await?;
    Ok(axum::Json(r))
}

async fn delete_route(State(w): State<Web>, _k: Key, P(name): P<String>) -> ApiResult<StatusCode> {
    w.store().delete_route(tenant(&w).await?, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- inbound routes -----

/// The tenant's inbound routes in the order the dialplan tries them: numbers, patterns, then
/// the catch-all.
pub(crate) async fn dids_in_order(w: &Web) -> ApiResult<Vec<store::InboundRoute>> {
    let mut list = w.store().list_dids(tenant(w).await?).await?;
    list.sort_by_key(|d| d.pattern.parse::<DidPattern>().map_or(3, |p| p.rank()));
    Ok(list)
}

async fn list_dids(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<Value>> {
    Ok(all(dids_in_order(&w).await?))
}

async fn create_did(
    State(w): State<Web>,
    _k: Key,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<(StatusCode, axum::Json<store::InboundRoute>)> {
    let pattern = required("pattern", take_str(&mut b, "pattern")?)?;
    let spec: DidSpec = merge(&DidSpec::default(), b)?;
    let d = w
        .store()
        .put_did(tenant(&w).await?, &pattern, &spec, true)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(d)))
}

/// The inbound route for `pattern` (`ANY` and `any` are the same route).
pub(crate) async fn find_did(w: &Web, pattern: &str) -> ApiResult<store::InboundRoute> {
    let key = pattern.trim();
    w.store()
        .list_dids(tenant(w).await?)
        .await?
        .into_iter()
        .find(|d| d.pattern.eq_ignore_ascii_case(key))
        .ok_or_else(|| ApiError::not_found(format!("inbound route {key} not found")))
}

async fn get_did(
    State(w): State<Web>,
    _k: Key,
    P(pattern): P<String>,
) -> ApiResult<axum::Json<store::InboundRoute>> {
    Ok(axum::Json(find_did(&w, &pattern).await?))
}

async fn update_did(
    State(w): State<Web>,
    _k: Key,
    P(pattern): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<store::InboundRoute>> {
    let d = find_did(&w, &pattern).await?;
    if let Some(p) = take_str(&mut b, "pattern")?
        && !p.trim().eq_ignore_ascii_case(&d.pattern)
    {
        return Err(field_error(
            "pattern",
            "the pattern is the route's name: create a new route and delete this one",
        ));
    }
    let spec: DidSpec = merge(&d.spec, b)?;
    let d = w
        .store()
        .put_did(d.tenant_id, &d.pattern, &spec, false)
        .await?;
    Ok(axum::Json(d))
}

async fn delete_did(State(w): State<Web>, _k: Key, P(pattern): P<String>) -> ApiResult<StatusCode> {
    let d = find_did(&w, &pattern).await?;
    w.store().delete_did(d.tenant_id, &d.pattern).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- outbound policy and extension limits -----

async fn get_outbound(State(w): State<Web>, _k: Key) -> ApiResult<axum::Json<TenantOutbound>> {
    Ok(axum::Json(
        w.store().tenant_outbound(tenant(&w).await?).await?,
    ))
}

async fn put_outbound(
    State(w): State<Web>,
    _k: Key,
    J(b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<TenantOutbound>> {
    let tid = tenant(&w).await?;
    let p: TenantOutbound = merge(&w.store().tenant_outbound(tid).await?, b)?;
    w.store().set_tenant_outbound(tid, &p).await?;
    Ok(axum::Json(w.store().tenant_outbound(tid).await?))
}

/// `limits` of `PATCH /extensions/{number}`: the members given replace the extension's own.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsPatch {
    max_concurrent: Option<u32>,
    max_per_hour: Option<u32>,
    intl_minutes_per_day: Option<u32>,
}

/// The extension's limits with `p` applied.
pub(super) async fn patch_limits(
    store: &store::Store,
    tenant_id: i64,
    number: &str,
    p: LimitsPatch,
) -> ApiResult<ExtLimits> {
    let e = store
        .extension(tenant_id, number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("extension {number} not found")))?;
    Ok(ExtLimits {
        max_concurrent: p.max_concurrent.unwrap_or(e.limits.max_concurrent),
        max_per_hour: p.max_per_hour.unwrap_or(e.limits.max_per_hour),
        intl_minutes_per_day: p
            .intl_minutes_per_day
            .unwrap_or(e.limits.intl_minutes_per_day),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_names_the_key() {
        let base = TrunkSpec::default();
        let e = merge(&base, Map::from_iter([("max_calls".into(), json!("many"))])).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("max_calls"));
        let e = merge(&base, Map::from_iter([("colour".into(), json!(1))])).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        let t = merge(&base, Map::from_iter([("max_calls".into(), json!(4))])).unwrap();
        assert_eq!((t.max_calls, t.expires_s), (4, base.expires_s));
    }

    #[test]
    fn host_and_port_split() {
        let mut m = Map::from_iter([("host".into(), json!("sip.example.jp:5080"))]);
        split_host_port(&mut m).unwrap();
        assert_eq!(
            (m["host"].clone(), m["port"].clone()),
            (json!("sip.example.jp"), json!(5080))
        );
        let mut m = Map::from_iter([("host".into(), json!("2001:db8::1"))]);
        split_host_port(&mut m).unwrap();
        assert!(!m.contains_key("port"));
        let mut m = Map::from_iter([("host".into(), json!("x:99999"))]);
        assert_eq!(
            split_host_port(&mut m).unwrap_err().field.as_deref(),
            Some("host")
        );
    }
}
