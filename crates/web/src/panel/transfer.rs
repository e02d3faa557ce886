//! Transfer from the live calls page: a number field and a Transfer button on each connected
//! call (administrators). The core's blind transfer does the work (`engine::transfer`); a
//! refusal (class of service, unknown number, call gone) is shown with its reason.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, notice};
use crate::Web;

/// The transfer route of the panel.
pub(super) fn routes() -> Router<Web> {
    Router::new().route("/calls/{id}/transfer", post(transfer))
}

/// The transfer form of call `id` (a cell of the live calls table).
pub(super) fn form(ctx: &Ctx, id: u64) -> Markup {
    html! {
        form.inline.transfer method="post" action={ "/calls/" (id) "/transfer" } {
            (csrf_field(ctx))
            input type="text" name="to" size="8" required pattern="[0-9*#+]{1,64}"
                placeholder=(ctx.t("calls.transfer_to")) aria-label=(ctx.t("calls.transfer_to"));
            button type="submit" { (ctx.t("calls.transfer")) }
        }
    }
}

async fn transfer(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.error",
            ctx.t("calls.gone"),
        );
    };
    let to = f
        .get("to")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    match w.control().transfer(id, to).await {
        Ok(()) => Redirect::to("/calls").into_response(),
        Err(r) => {
            let status = crate::api::transfer_refusal(&r).status;
            let msg = format!("{} {}", ctx.t("calls.transfer_refused"), r.reason);
            notice(&ctx, status, "title.error", &msg)
        }
    }
}
