//! `web`: the control panel (server-rendered, English and Japanese) and the REST API `/api/v1`.
//!
//! What it is: one axum [`Router`] built by [`router`] over a [`Web`] handle that holds the
//! database ([`store::Store`]) and the narrow call-control handle ([`pbx::Pbx`]). Every page,
//! style sheet and script is compiled into the binary. What it is not: the HTTP listener (the
//! `denwa` binary binds it) or a place for SQL (all of that is in `store`).

pub mod api;
mod csv;
pub mod i18n;
mod openapi;
mod panel;
mod session;
pub mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use crate::api::ApiError;

/// Node facts shown on the dashboard and in `/api/v1/status` (bootstrap config, read-only here).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeInfo {
    /// Node name.
    pub node: String,
    /// HTTP listen address.
    pub http_listen: String,
    /// SIP listen addresses (UDP and TCP).
    pub sip_listen: Vec<String>,
    /// RTP port range.
    pub rtp_ports: Option<(u16, u16)>,
    /// Address written into SDP/Contact.
    pub advertise: Option<String>,
    /// Database backend name (`sqlite`, `postgres`).
    pub database: String,
    /// Log filter.
    pub log_level: String,
    /// Data directory (backups include its files).
    pub data_dir: PathBuf,
}

/// Shared state of every handler: cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

struct Inner {
    pbx: pbx::Pbx,
    store: store::Store,
    started: Instant,
    info: NodeInfo,
    sessions: Mutex<HashMap<String, session::Session>>,
    setup_token: Mutex<Option<String>>,
}

impl Web {
    /// A handle over a running PBX and its store.
    pub fn new(pbx: pbx::Pbx, store: store::Store, started: Instant, info: NodeInfo) -> Web {
        Web {
            inner: Arc::new(Inner {
                pbx,
                store,
                started,
                info,
                sessions: Mutex::new(HashMap::new()),
                setup_token: Mutex::new(None),
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &store::Store {
        &self.inner.store
    }

    /// Call control.
    pub fn pbx(&self) -> &pbx::Pbx {
        &self.inner.pbx
    }

    /// Node facts.
    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    /// Seconds since start.
    pub fn uptime_s(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// When no administrator exists yet, makes a one-time setup token and returns the path
    /// (`/setup?token=…`) that creates the first administrator; `None` once one exists.
    pub async fn first_run_setup_path(&self) -> Result<Option<String>, store::Error> {
        if !self.inner.store.list_admins().await?.is_empty() {
            return Ok(None);
        }
        let token = hex::encode(rand::random::<[u8; 24]>());
        let path = format!("/setup?token={token}");
        *lock(&self.inner.setup_token) = Some(token);
        Ok(Some(path))
    }

    /// True when `token` is the live setup token and still no administrator exists (one may
    /// have been added with `denwa admin add` since the link was printed: then it is void).
    async fn setup_allowed(&self, token: &str) -> bool {
        let matches = lock(&self.inner.setup_token)
            .as_deref()
            .is_some_and(|t| session::constant_time_eq(t.as_bytes(), token.as_bytes()));
        if !matches {
            return false;
        }
        match self.inner.store.list_admins().await {
            Ok(a) if a.is_empty() => true,
            Ok(_) => {
                self.clear_setup_token();
                false
            }
            Err(_) => false,
        }
    }

    /// Spends the setup token (first administrator created).
    fn clear_setup_token(&self) {
        *lock(&self.inner.setup_token) = None;
    }
}

/// Locks a mutex, recovering from a poisoned one (the maps stay usable after a panic elsewhere).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every route: the panel at `/`, the API at `/api/v1`, `/healthz` and `/metrics`.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api::routes())
        .merge(panel::routes())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

/// Headers every response carries: no framing (clickjacking), no MIME sniffing, only our own
/// scripts and styles, and no caching of pages unless the handler said otherwise (pages show
/// one-time passwords and API tokens).
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn healthz(State(w): State<Web>) -> impl IntoResponse {
    // Healthy means: the database answers and the SIP core is running.
    match w.store().schema_version().await {
        Ok(v) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "status": "ok",
                "node": w.info().node,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": w.uptime_s(),
                "schema_version": v,
                "backend": w.store().backend().as_str(),
                "sip": w.pbx().sip_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
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

/// The group-commit writer's counters: a growing `denwa_store_writes_waiting` means the database
/// (its fsync) is the bottleneck, and every REGISTER and call end waits behind it.
fn render_store_metrics(out: &mut String, s: &store::WriteStats) {
    pbx::metrics::write_simple(
        out,
        &[
            (
                "denwa_store_commits_total",
                "counter",
                "Group-commit transactions written (one fsync each).",
                s.batches,
            ),
            (
                "denwa_store_commit_rows_total",
                "counter",
                "Rows (registrations, call records) written by group commit.",
                s.rows,
            ),
            (
                "denwa_store_writes_waiting",
                "gauge",
                "Writes queued for the next commit or in the one being written.",
                s.queued as u64 + s.in_flight,
            ),
        ],
    );
}

async fn metrics(State(w): State<Web>) -> impl IntoResponse {
    let mut body = w.pbx().render_metrics();
    render_store_metrics(&mut body, &w.store().write_stats());
    body.push_str("# HELP denwa_up 1 while the node runs.\n# TYPE denwa_up gauge\ndenwa_up 1\n");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
