//! Transfer from the live calls page: a number field and a Transfer button on each connected
//! call (administrators). The core's blind transfer does the work (`engine::transfer`); a
//! refusal (class of service, unknown number, call gone) is shown with its reason. And a call
//! record's events (transfers, pickups, in order) at `/history/{id}`.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fail, fmt_time, notice, page};
use crate::Web;

/// The transfer route of the panel.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/calls/{id}/transfer", post(transfer))
        .route("/history/{id}", get(events))
}

/// The transfer form of call `id` (a cell of the live calls table).
pub(super) fn form(ctx: &Ctx, id: u64) -> Markup {
    html! {
        form.inline.transfer method="post" action={ "/calls/" (id) "/transfer" } {
            (csrf_field(ctx))
            input type="text" name="to" size="8" required pattern="[0-9*#+]{1,64}"
                placeholder=(ctx.t("calls.transfer_to")) aria-label=(ctx.t("calls.transfer_to"));
            (super::xfer_board::moves_select(ctx))
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
    let moves = f
        .get("moves")
        .and_then(|m| engine::xfer_party::Party::parse(m));
    let r = match moves {
        Some(m) => w.control().transfer_moving(id, to, m).await,
        None => w.control().transfer(id, to).await,
    };
    match r {
        Ok(()) => Redirect::to("/calls").into_response(),
        Err(r) => {
            let status = crate::api::transfer_refusal(&r).status;
            let msg = super::xfer_board::refusal_text(&ctx, &r);
            notice(&ctx, status, "title.error", &msg)
        }
    }
}

/// The events of call record `id`, in order.
async fn events(State(w): State<Web>, Signed(ctx): Signed, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.error",
            ctx.t("err.not_found"),
        );
    };
    let events = match w.store().cdr_events(id).await {
        Ok(e) => e,
        Err(e) => return fail(&ctx, e.into()),
    };
    let kind = |k: &str| match k {
        "blind" => ctx.t("ev.blind"),
        "attended" => ctx.t("ev.attended"),
        "failed" => ctx.t("ev.failed"),
        "callback" => ctx.t("ev.callback"),
        "replaces" => ctx.t("ev.replaces"),
        "pickup" => ctx.t("ev.pickup"),
        engine::rec_ctl::EV_START => ctx.t("ev.recording_start"),
        engine::rec_ctl::EV_STOP => ctx.t("ev.recording_stop"),
        _ => "",
    };
    let body = html! {
        p { a href="/history" { (ctx.t("title.history")) } }
        @if events.is_empty() {
            p.empty id="no-events" { (ctx.t("hist.no_events")) }
        } @else {
            table.events {
                thead { tr {
                    th { (ctx.t("hist.ev_time")) } th { (ctx.t("hist.ev_kind")) }
                    th { (ctx.t("hist.ev_by")) } th { (ctx.t("hist.ev_party")) }
                    th { (ctx.t("hist.ev_to")) } th { (ctx.t("hist.ev_status")) }
                } }
                tbody { @for e in &events { tr.event data-kind=(e.kind) {
                    td { (fmt_time(&e.at)) } td { (kind(&e.kind)) } td { (e.by) }
                    td { (e.party) } td { (e.target) } td { (e.status) }
                } } }
            }
        }
    };
    page(&ctx, StatusCode::OK, "title.call_events", body)
}
