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
use crate::i18n::Lang;

/// Why this node refuses writes now: `Some` when it is clustered and not active (English: the
/// API's messages are English throughout).
pub fn refusal(w: &Web) -> Option<String> {
    refusal_in(w, Lang::En)
}

/// [`refusal`] in `lang` (the panel's banner and refusal page).
pub fn refusal_in(w: &Web, lang: Lang) -> Option<String> {
    let c = w.control().cluster()?;
    let r = c.report();
    if r.status.role == ha::Role::Active {
        return None;
    }
    let peer_ip = r
        .paths
        .first()
        .and_then(|p| p.peer.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_string());
    Some(refusal_text(
        lang,
        r.status.role,
        r.peer,
        peer_ip.as_deref(),
    ))
}

/// The refusal's words.
fn refusal_text(lang: Lang, role: ha::Role, peer: u32, peer_ip: Option<&str>) -> String {
    match lang {
        Lang::En => {
            let ip = peer_ip.map(|i| format!(", {i}")).unwrap_or_default();
            format!("this node is {role}; make changes on the active node (node {peer}{ip})")
        }
        Lang::Ja => {
            let role = match role {
                ha::Role::Standby => "待機系（SBY）",
                ha::Role::Starting => "起動中",
                ha::Role::Fenced => "切り離し中",
                ha::Role::Maintenance => "保守中",
                ha::Role::Active => "運用系（ACT）",
            };
            let ip = peer_ip.map(|i| format!("、{i}")).unwrap_or_default();
            format!(
                "このノードは{role}です。変更は運用系ノード（ノード {peer}{ip}）で行ってください"
            )
        }
    }
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
    let lang = crate::i18n::negotiate(
        crate::session::cookie(req.headers(), crate::session::LANG_COOKIE).as_deref(),
        req.headers()
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let Some(message) = refusal_in(&w, lang) else {
        return next.run(req).await;
    };
    if w.session(req.headers()).is_none() {
        return next.run(req).await;
    }
    let page = maud::html! {
        (maud::DOCTYPE)
        html {
            head { meta charset="utf-8"; title { "Denwa — " (crate::i18n::t(lang, "nav.cluster")) } }
            body {
                p.error role="alert" id="standby-read-only" { (message) }
                p { a href="/cluster" { (crate::i18n::t(lang, "nav.cluster")) } }
            }
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_in_both_languages() {
        let en = refusal_text(Lang::En, ha::Role::Standby, 1, Some("10.77.0.1"));
        assert_eq!(
            en,
            "this node is standby; make changes on the active node (node 1, 10.77.0.1)"
        );
        let ja = refusal_text(Lang::Ja, ha::Role::Standby, 1, Some("10.77.0.1"));
        assert_eq!(
            ja,
            "このノードは待機系（SBY）です。変更は運用系ノード（ノード 1、10.77.0.1）で行ってください"
        );
        let ja = refusal_text(Lang::Ja, ha::Role::Fenced, 2, None);
        assert!(
            ja.contains("切り離し中") && ja.contains("ノード 2）"),
            "{ja}"
        );
    }
}
