//! The HTTP listener: `/healthz` and `/metrics` (the control panel and API arrive with the web crate).

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct State {
    pub pbx: pbx::Pbx,
    pub store: store::Store,
    pub started: Instant,
    pub node: String,
}

/// Binds the HTTP listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding HTTP on {addr}"))
}

/// Serves until the task is aborted.
pub async fn serve(l: TcpListener, state: State) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    if let Err(e) = axum::serve(l, app).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn healthz(AxState(s): AxState<State>) -> impl IntoResponse {
    // Healthy means: the database answers and the SIP core is running.
    match s.store.schema_version().await {
        Ok(v) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "status": "ok",
                "node": s.node,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": s.started.elapsed().as_secs(),
                "schema_version": v,
                "backend": s.store.backend().as_str(),
                "sip": s.pbx.sip_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({ "status": "database unavailable", "error": e.to_string() }),
            ),
        ),
    }
}

async fn metrics(AxState(s): AxState<State>) -> impl IntoResponse {
    let mut body = s.pbx.render_metrics();
    body.push_str("# HELP denwa_up 1 while the node runs.\n# TYPE denwa_up gauge\ndenwa_up 1\n");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
