//! The tenant's own values of the settings it may override (`blf.show_caller`,
//! `intercom.audio`), on the
//! Settings page below the node's: "inherit" (the node's value) or one of the setting's choices.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fail, notice, table_text};
use crate::{Web, settings};

const TEXT: &[(&str, &str, &str)] = &[
    ("ts.heading", "This tenant's settings", "このテナントの設定"),
    (
        "ts.note",
        "A value here overrides the node's setting above for this tenant only.",
        "ここでの値は、このテナントに限り上のノード設定より優先されます。",
    ),
    ("ts.inherit", "inherit the node's", "ノードの設定に従う"),
    ("ts.in_force", "in force:", "適用中："),
    (
        "ts.bad",
        "Not a value of this setting.",
        "この設定の値ではありません。",
    ),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

/// The form's route.
pub(super) fn routes() -> Router<Web> {
    Router::new().route("/settings/tenant", post(save))
}

/// The section of the Settings page.
pub(super) async fn section(w: &Web, ctx: &Ctx) -> Markup {
    let t = match w.store().default_tenant().await {
        Ok(t) => t.id,
        Err(e) => return html! { p.error role="alert" { (e.to_string()) } },
    };
    let mut rows = Vec::new();
    for key in engine::tenant_settings::TENANT_KEYS {
        let Some(d) = settings::find(key) else {
            continue;
        };
        match crate::api::tenant_settings::view(w, t, d).await {
            Ok(v) => rows.push((d, v)),
            Err(e) => return html! { p.error role="alert" { (e.message) } },
        }
    }
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or_default();
    html! {
        h2 id="tenant-settings" { (tx(ctx, "ts.heading")) }
        p.hint { (tx(ctx, "ts.note")) }
        form method="post" action="/settings/tenant" id="tenant-settings-form" {
            (csrf_field(ctx))
            table.kv { tbody {
                @for (d, v) in &rows {
                    @let own = text(&v["tenant_value"]);
                    tr {
                        th { label for={ "tenant-" (d.key) } { (ctx.t(settings::label(d.key))) } br; code { (d.key) } }
                        td {
                            select id={ "tenant-" (d.key) } name=(d.key) disabled[!ctx.is_admin()] {
                                option value="" selected[own.is_empty()] { (tx(ctx, "ts.inherit")) }
                                @if let settings::Kind::Choice(allowed) = d.kind {
                                    @for a in allowed { option value=(a) selected[own == *a] { (a) } }
                                }
                            }
                            " " span.in-force data-key=(d.key) { (tx(ctx, "ts.in_force")) " " (text(&v["value"])) }
                        }
                    }
                }
            } }
            @if ctx.is_admin() { button type="submit" { (ctx.t("save")) } }
        }
    }
}

async fn save(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let t = match w.store().default_tenant().await {
        Ok(t) => t.id,
        Err(e) => return fail(&ctx, e.into()),
    };
    for key in engine::tenant_settings::TENANT_KEYS {
        let Some(d) = settings::find(key) else {
            continue;
        };
        let given = f.get(*key).map(|s| s.trim()).unwrap_or("");
        let r = if given.is_empty() {
            w.store().delete_setting(Some(t), d.key).await.map(|_| ())
        } else {
            match d.validate(&serde_json::Value::from(given)) {
                Ok(v) => w.store().set_setting(Some(t), d.key, &v).await,
                Err(_) => {
                    let msg = format!("{}: {}", d.key, tx(&ctx, "ts.bad"));
                    return notice(&ctx, StatusCode::UNPROCESSABLE_ENTITY, "title.error", &msg);
                }
            }
        };
        if let Err(e) = r {
            return fail(&ctx, e.into());
        }
    }
    Redirect::to("/settings#tenant-settings").into_response()
}
