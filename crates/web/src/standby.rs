//! A node of an active/standby pair that is not the active one serves reads — status, the
//! cluster page, every listing — from its read-only replica and refuses every write with a
//! precise answer: API `503 standby_read_only` "this node is standby; make changes on the active
//! node (node 2, 10.0.0.2)", the panel the same message on a 503 page and as a banner on every
//! page. The switchover endpoints are exempt (they give their own answer).
//!
//! Nothing leaks before authentication: an API write without a valid key gets the key's own
//! 401/403 first; a panel write without a session goes on to its handler, which refuses it.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Web;
use crate::api::{ApiError, Key};

/// Why this node refuses writes now: `Some` when it is clustered and not active.
pub fn refusal(w: &Web) -> Option<String> {
    let c = w.control().cluster()?;
    let r = c.report();
    if r.status.role == ha::Role::Active {
        return None;
    }
    let peer_ip = r
        .paths
        .first()
        .and_then(|p| p.peer.parse::<std::net::SocketAddr>().ok())
        .map(|a| format!(", {}", a.ip()))
        .unwrap_or_default();
    Some(format!(
        "this node is {}; make changes on the active node (node {}{peer_ip})",
        r.status.role, r.peer
    ))
}

fn is_write(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware on `/api/v1` (paths relative to it).
pub async fn api_guard(State(w): State<Web>, req: Request, next: Next) -> Response {
    if !is_write(req.method()) || req.uri().path() == "/cluster/switchover" {
        return next.run(req).await;
    }
    let Some(message) = refusal(&w) else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    if let Err(e) = Key::from_request_parts(&mut parts, &w).await {
        return e.into_response();
    }
    drop(body);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "standby_read_only",
        message,
    )
    .into_response()
}

/// Middleware on the panel.
pub async fn panel_guard(State(w): State<Web>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !is_write(req.method()) || matches!(path, "/login" | "/logout" | "/cluster") {
        return next.run(req).await;
    }
    let Some(message) = refusal(&w) else {
        return next.run(req).await;
    };
    if w.session(req.headers()).is_none() {
        return next.run(req).await;
    }
    let page = maud::html! {
        (maud::DOCTYPE)
        html {
            head { meta charset="utf-8"; title { "Denwa — standby" } }
            body {
                p.error role="alert" id="standby-read-only" { (message) }
                p { a href="/cluster" { "Cluster" } }
            }
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
}
