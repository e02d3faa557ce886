//! `web`: the control panel (server-rendered, English and Japanese) and the REST API `/api/v1`.
//!
//! What it is: one axum [`Router`] built by [`router`] over a [`Web`] handle that holds the
//! database ([`store::Store`]) and call control seen through the narrow [`CallControl`] trait.
//! Every page, style sheet and script is compiled into the binary. What it is not: the HTTP
//! listener or the SIP core (the `denwa` binary binds the one and implements [`CallControl`] over
//! the other), or a place for SQL (all of that is in `store`). Account rules (password strength,
//! contact limits) come from [`engine::policy`], settings from [`engine::settings`].

pub mod api;
mod api_license;
pub mod cluster;
pub mod conf_live;
pub mod control;
mod csv;
pub mod i18n;
pub mod license;
mod openapi;
mod panel;
mod session;
pub mod settings;
pub mod standby;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// The sans-IO engine, re-exported for the `denwa` binary (account policy, settings table) so
/// the CLI applies the same definitions as the panel and the API.
pub use engine;

pub use crate::api::ApiError;
pub use crate::control::{BoxFuture, CallControl};

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
    /// The backup server's HTTPS listen address, when this node runs that role.
    pub backup_listen: Option<String>,
}

/// Shared state of every handler: cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

struct Inner {
    control: Arc<dyn CallControl>,
    store: store::Store,
    started: Instant,
    info: NodeInfo,
    sessions: Mutex<HashMap<String, session::Session>>,
    setup_token: Mutex<Option<String>>,
    licensing: license::Licensing,
    conf_hub: conf_live::Hub,
}

impl Web {
    /// A handle over call control and the store, on the free allowance with nothing on disk
    /// (tests); `denwa serve` uses [`Web::new_licensed`].
    pub fn new(
        control: Arc<dyn CallControl>,
        store: store::Store,
        started: Instant,
        info: NodeInfo,
    ) -> Web {
        let licensing = license::Licensing::in_memory("dn-unbound", false);
        Web::new_licensed(control, store, started, info, licensing)
    }

    /// A handle over call control, the store and the node's licensing.
    pub fn new_licensed(
        control: Arc<dyn CallControl>,
        store: store::Store,
        started: Instant,
        info: NodeInfo,
        licensing: license::Licensing,
    ) -> Web {
        Web {
            inner: Arc::new(Inner {
                control,
                store,
                started,
                info,
                sessions: Mutex::new(HashMap::new()),
                setup_token: Mutex::new(None),
                licensing,
                conf_hub: conf_live::Hub::default(),
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &store::Store {
        &self.inner.store
    }

    /// Call control.
    pub fn control(&self) -> &dyn CallControl {
        &*self.inner.control
    }

    /// The conference participant streams' watcher.
    pub(crate) fn conf_hub(&self) -> &conf_live::Hub {
        &self.inner.conf_hub
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
        .nest(
            "/api/v1",
            api::routes()
                .layer(axum::middleware::from_fn_with_state(
                    web.clone(),
                    api_license::read_only_guard,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    web.clone(),
                    standby::api_guard,
                )),
        )
        .merge(panel::routes().layer(axum::middleware::from_fn_with_state(
            web.clone(),
            standby::panel_guard,
        )))
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

/// How long `/healthz` waits for the database before calling it unavailable.
const HEALTH_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// 200 with node details when the database answers and the SIP core runs; 503 with the reasons
/// (`problems`) otherwise.
async fn healthz(State(w): State<Web>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let core_alive = w.control().core_alive();
    if !core_alive {
        problems.push("sip core: not running".to_string());
    }
    let schema = match tokio::time::timeout(HEALTH_DB_TIMEOUT, w.store().schema_version()).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            problems.push(format!("database: {e}"));
            None
        }
        Err(_) => {
            problems.push(format!(
                "database: no answer within {} s",
                HEALTH_DB_TIMEOUT.as_secs()
            ));
            None
        }
    };
    let mut body = serde_json::json!({
        "status": if problems.is_empty() { "ok" } else { "unavailable" },
        "node": w.info().node,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": w.uptime_s(),
        "schema_version": schema,
        "backend": w.store().backend().as_str(),
        "sip_core": if core_alive { "running" } else { "stopped" },
        "sip": w.control().sip_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    });
    cluster::health_fields(&w, &mut body);
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        tracing::warn!(?problems, "health check failed");
        body["problems"] = serde_json::Value::from(problems);
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Appends unlabelled metrics, each `(name, "counter" | "gauge", help, value)`, in Prometheus
/// text format.
fn write_simple(out: &mut String, rows: &[(&str, &str, &str, u64)]) {
    use std::fmt::Write as _;
    for (name, kind, help, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

/// The group-commit writer's counters: a growing `denwa_store_writes_waiting` means the database
/// (its fsync) is the bottleneck, and every REGISTER and call end waits behind it.
fn render_store_metrics(out: &mut String, s: &store::WriteStats) {
    write_simple(
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
    let mut body = w.control().render_metrics();
    render_store_metrics(&mut body, &w.store().write_stats());
    body.push_str(&backup::render_metrics(w.store()).await);
    cluster::render_metrics(&w, &mut body);
    write_simple(
        &mut body,
        &[
            ("denwa_up", "gauge", "1 while the node runs.", 1),
            (
                "denwa_sip_core_up",
                "gauge",
                "1 while the SIP core runs (0: /healthz answers 503).",
                u64::from(w.control().core_alive()),
            ),
        ],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
