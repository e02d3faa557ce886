//! `GET /api/v1/subscriptions`: the event subscriptions in force on this node (BLF `dialog`,
//! `presence`, `message-summary`), read-only. Any key may read it (read scope suffices); a key
//! limited to a tenant sees that tenant's only. See `engine::subs_list`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{ApiResult, Key};
use crate::Web;

/// The route (merged into `/api/v1`).
pub(crate) fn routes() -> Router<Web> {
    Router::new().route("/subscriptions", get(list))
}

/// One subscription as the API answers it.
#[derive(Debug, Serialize)]
pub(crate) struct Subscription {
    pub tenant_id: i64,
    pub subscriber: String,
    pub contact: String,
    pub source: String,
    pub event: String,
    pub resource: String,
    pub expires_at: DateTime<Utc>,
    pub last_notify_at: Option<DateTime<Utc>>,
    pub last_state: String,
}

/// The subscriptions of `tenant` (all tenants: `None`), with times made absolute.
pub(crate) async fn subscriptions(w: &Web, tenant: Option<i64>) -> Vec<Subscription> {
    let now = Utc::now();
    let secs = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
    w.control()
        .subscriptions(tenant)
        .await
        .into_iter()
        .map(|s| Subscription {
            tenant_id: s.tenant_id,
            subscriber: s.subscriber,
            contact: s.contact,
            source: s.source,
            event: s.event,
            resource: s.resource,
            expires_at: now + secs(s.expires_in_s),
            last_notify_at: s.last_notify_s_ago.map(|a| now - secs(a)),
            last_state: s.last_state,
        })
        .collect()
}

async fn list(State(w): State<Web>, Key(k): Key) -> ApiResult<Json<serde_json::Value>> {
    let items = subscriptions(&w, k.tenant_id).await;
    let n = items.len();
    Ok(Json(
        serde_json::json!({ "items": items, "total": n, "limit": n, "offset": 0 }),
    ))
}
