//! The active/standby pair as the panel and the API see it: [`ClusterControl`] (implemented by
//! the `denwa` binary over `pbx::cluster`), `GET /api/v1/cluster`,
//! `POST /api/v1/cluster/switchover`, and the role lines of `/metrics` and `/healthz`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ha::report::ClusterReport;
use serde_json::{Value, json};

use crate::Web;
use crate::api::{ApiError, Key};
use crate::control::BoxFuture;

/// What `web` needs of the pair's driver.
pub trait ClusterControl: Send + Sync + 'static {
    /// The node's current report (roles, paths, witness, addresses, events).
    fn report(&self) -> ClusterReport;
    /// Starts a graceful switchover; `Err` carries why the pair is not ready.
    fn switchover(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Every role, in the order `/metrics` lists them.
pub const ROLES: [ha::Role; 5] = [
    ha::Role::Starting,
    ha::Role::Standby,
    ha::Role::Active,
    ha::Role::Fenced,
    ha::Role::Maintenance,
];

/// API routes (mounted at `/api/v1`).
pub(crate) fn routes() -> Router<Web> {
    Router::new()
        .route("/cluster", get(get_cluster))
        .route("/cluster/switchover", post(post_switchover))
}

async fn get_cluster(State(w): State<Web>, _k: Key) -> Json<Value> {
    Json(match w.control().cluster() {
        Some(c) => {
            let mut v = serde_json::to_value(c.report()).unwrap_or(Value::Null);
            v["clustered"] = json!(true);
            v
        }
        None => json!({ "clustered": false }),
    })
}

async fn post_switchover(
    State(w): State<Web>,
    _k: Key,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(c) = w.control().cluster() else {
        return Err(ApiError::not_found(
            "this node is not part of an active/standby pair (serve --cluster)",
        ));
    };
    match c.switchover().await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "message": "switchover started" })),
        )),
        Err(reason) => Err(ApiError::new(StatusCode::CONFLICT, "not_ready", reason)),
    }
}

/// `denwa_cluster_role{role="…"}` lines (1 for this node's role, 0 for the others), or nothing
/// when the node is not clustered.
pub(crate) fn render_metrics(w: &Web, out: &mut String) {
    let Some(c) = w.control().cluster() else {
        return;
    };
    let r = c.report();
    out.push_str(
        "# HELP denwa_cluster_role This node's role in the active/standby pair (1 = current).\n",
    );
    out.push_str("# TYPE denwa_cluster_role gauge\n");
    for role in ROLES {
        let v = u8::from(r.status.role == role);
        out.push_str(&format!("denwa_cluster_role{{role=\"{role}\"}} {v}\n"));
    }
    out.push_str(
        "# HELP denwa_cluster_holds_address 1 while this node holds the application address(es).\n",
    );
    out.push_str("# TYPE denwa_cluster_holds_address gauge\n");
    out.push_str(&format!(
        "denwa_cluster_holds_address {}\n",
        u8::from(r.holds_ip)
    ));
    out.push_str("# HELP denwa_cluster_path_healthy Heartbeat path health (1 = heard recently).\n");
    out.push_str("# TYPE denwa_cluster_path_healthy gauge\n");
    for (i, p) in r.paths.iter().enumerate() {
        out.push_str(&format!(
            "denwa_cluster_path_healthy{{path=\"{i}\"}} {}\n",
            u8::from(p.healthy)
        ));
    }
    if let Some(db) = r.db {
        out.push_str("# HELP denwa_cluster_replication_streaming 1 while this node's PostgreSQL streams with the peer's (as primary: the peer streams from it; as replica: from the peer).\n");
        out.push_str("# TYPE denwa_cluster_replication_streaming gauge\n");
        out.push_str(&format!(
            "denwa_cluster_replication_streaming{{state=\"{}\"}} {}\n",
            db.state,
            u8::from(db.streaming)
        ));
        out.push_str("# HELP denwa_cluster_replication_lag_bytes WAL bytes the standby's replay is behind (as primary), or received but not replayed (as replica).\n");
        out.push_str("# TYPE denwa_cluster_replication_lag_bytes gauge\n");
        out.push_str(&format!(
            "denwa_cluster_replication_lag_bytes {}\n",
            db.lag_bytes
        ));
    }
}

/// The `/healthz` fields: `role` and `peer_role` (`null` when not clustered / peer unheard).
pub(crate) fn health_fields(w: &Web, body: &mut Value) {
    if let Some(c) = w.control().cluster() {
        let r = c.report();
        body["role"] = json!(r.status.role);
        body["peer_role"] = json!(r.status.peer_role);
        body["holds_address"] = json!(r.holds_ip);
    }
}

/// Adds the cluster paths to the OpenAPI document.
pub(crate) fn extend_document(doc: &mut Value) {
    let err = json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    doc["paths"]["/cluster"] = json!({
        "get": { "summary": "The active/standby pair as this node sees it: `clustered`, and when true the role machine's status (role, peer_role, epoch, witness, lease, authority, blocked), heartbeat paths with health, application addresses, holds_ip, switchover_refused (null when ready) and the recent events",
                 "responses": { "200": { "description": "status", "content": { "application/json": { "schema": { "type": "object", "required": ["clustered"], "properties": { "clustered": { "type": "boolean" } } } } } }, "401": err.clone() } }
    });
    doc["paths"]["/cluster/switchover"] = json!({
        "post": { "summary": "Hand the application address over to the standby (on the active node). 409 `not_ready` with the reason when the pair is not ready. Full scope.",
                  "responses": { "202": { "description": "started", "content": { "application/json": { "schema": { "type": "object" } } } },
                                 "401": err.clone(), "403": err.clone(), "404": err.clone(), "409": err } }
    });
    if let Some(codes) = doc
        .pointer_mut("/components/schemas/Error/properties/error/properties/code/enum")
        .and_then(Value::as_array_mut)
    {
        for code in ["not_ready", "standby_read_only"] {
            if !codes.contains(&json!(code)) {
                codes.push(json!(code));
            }
        }
    }
}
