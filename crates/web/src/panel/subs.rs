//! The Subscriptions page: every event subscription of the tenant in force on this node (BLF
//! keys, presence, message waiting) — subscriber, contact and source, package, watched
//! resource, expiry, and what the last NOTIFY said. Read-only, any signed-in role.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;

use super::{Ctx, Signed, fail, fmt_time, table_text};
use crate::Web;

/// The navigation link's text.
pub(super) const NAV: &[(&str, &str, &str)] =
    &[("nav.subs", "Subscriptions", "サブスクリプション")];

const TEXT: &[(&str, &str, &str)] = &[
    ("subs.title", "Subscriptions", "サブスクリプション"),
    (
        "subs.intro",
        "Phones watching keys (BLF dialog state), presence and message waiting, as this node serves them.",
        "このノードが処理している、電話機のキー監視（BLF ダイアログ状態）、プレゼンス、メッセージ待ちのサブスクリプションです。",
    ),
    (
        "subs.none",
        "No subscriptions.",
        "サブスクリプションはありません。",
    ),
    ("subs.subscriber", "Subscriber", "購読者"),
    ("subs.contact", "Contact", "コンタクト"),
    ("subs.source", "Source", "送信先"),
    ("subs.event", "Event", "イベント"),
    ("subs.resource", "Watched", "監視対象"),
    ("subs.expires", "Expires", "有効期限"),
    ("subs.last_notify", "Last NOTIFY", "最後の NOTIFY"),
    ("subs.state", "State notified", "通知した状態"),
    ("subs.never", "not yet", "未送信"),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

/// The page's route.
pub(super) fn routes() -> Router<Web> {
    Router::new().route("/subscriptions", get(list))
}

async fn list(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e.into()),
    };
    let subs = crate::api::subs::subscriptions(&w, Some(t.id)).await;
    let body = html! {
        p.hint { (tx(&ctx, "subs.intro")) }
        @if subs.is_empty() {
            p.empty id="no-subs" { (tx(&ctx, "subs.none")) }
        } @else {
            table.subscriptions {
                thead { tr {
                    th { (tx(&ctx, "subs.subscriber")) } th { (tx(&ctx, "subs.contact")) }
                    th { (tx(&ctx, "subs.source")) } th { (tx(&ctx, "subs.event")) }
                    th { (tx(&ctx, "subs.resource")) } th { (tx(&ctx, "subs.expires")) }
                    th { (tx(&ctx, "subs.last_notify")) } th { (tx(&ctx, "subs.state")) }
                } }
                tbody { @for s in &subs {
                    tr.sub data-subscriber=(s.subscriber) data-event=(s.event) data-resource=(s.resource) {
                        td { (s.subscriber) } td { (s.contact) } td { (s.source) }
                        td { (s.event) } td { (s.resource) } td { (fmt_time(&s.expires_at)) }
                        td { @match &s.last_notify_at { Some(at) => (fmt_time(at)), None => (tx(&ctx, "subs.never")) } }
                        td.state { (s.last_state) }
                    }
                } }
            }
        }
    };
    let title = tx(&ctx, "subs.title");
    (StatusCode::OK, super::layout(&ctx, title, body)).into_response()
}
