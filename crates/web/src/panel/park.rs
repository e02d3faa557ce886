//! The panel's "Call park" page: the tenant's park lot (slot range, timeout, hold music class,
//! fallback destination) and the calls parked now (slot, caller, parked by, since), in English
//! and Japanese. Viewers see both; only administrators change the lot.

use std::collections::HashMap;
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use engine::park::{ParkLot, ParkedCall};
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, page, table_text};
use crate::Web;

/// This page's texts (the menu entry and title are in `i18n`).
const TEXT: &[(&str, &str, &str)] = &[
    ("park.lot", "Park lot", "パーキング設定"),
    ("park.first", "First slot", "最初の番号"),
    ("park.last", "Last slot", "最後の番号"),
    ("park.timeout", "Timeout (seconds)", "タイムアウト（秒）"),
    ("park.moh", "Music-on-hold class", "保留音クラス"),
    (
        "park.fallback",
        "When the parker does not answer",
        "パーク元が応答しない場合",
    ),
    (
        "park.fallback_help",
        "hangup (a prompt, then hang up) or a destination such as ext:1000, vm:1000, ivr:main",
        "hangup（案内の後に切断）または ext:1000、vm:1000、ivr:main などの宛先",
    ),
    (
        "park.code_help",
        "Callers dial the park code (feature code park, default *70) to be parked; any phone dials the slot number to take the call.",
        "パーク番号（機能コード park、既定 *70）をダイヤルすると保留され、どの電話機からでも保留番号をダイヤルすると応答できます。",
    ),
    ("park.save", "Save", "保存"),
    ("park.saved", "Saved.", "保存しました。"),
    ("park.calls", "Parked calls", "パーク中の通話"),
    ("park.slot", "Slot", "保留番号"),
    ("park.caller", "Caller", "発信者"),
    ("park.parked_by", "Parked by", "パーク元"),
    ("park.since", "Since (UTC)", "開始（UTC）"),
    ("park.state", "State", "状態"),
    ("park.state.parked", "parked", "保留中"),
    (
        "park.state.ringing-back",
        "ringing the parker",
        "パーク元を呼出中",
    ),
    ("park.state.retrieved", "retrieved", "応答済み"),
    (
        "park.none",
        "No call is parked.",
        "パーク中の通話はありません。",
    ),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

pub(super) fn routes() -> Router<Web> {
    Router::new().route("/park", get(show).post(save))
}

fn since(s: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(s).unwrap_or(0), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn state_text(ctx: &Ctx, state: &str) -> &'static str {
    match state {
        "ringing-back" => tx(ctx, "park.state.ringing-back"),
        "retrieved" => tx(ctx, "park.state.retrieved"),
        _ => tx(ctx, "park.state.parked"),
    }
}

fn body(ctx: &Ctx, lot: &ParkLot, calls: &[ParkedCall], msg: Markup) -> Markup {
    html! {
        p { (tx(ctx, "park.code_help")) }
        (msg)
        h2 { (tx(ctx, "park.lot")) }
        form method="post" action="/park" id="park-lot" {
            (csrf_field(ctx))
            label { (tx(ctx, "park.first")) " " input type="number" name="first_slot" min="1" value=(lot.first); }
            label { (tx(ctx, "park.last")) " " input type="number" name="last_slot" min="1" value=(lot.last); }
            label { (tx(ctx, "park.timeout")) " " input type="number" name="timeout_s" min="10" max="3600" value=(lot.timeout.as_secs()); }
            label { (tx(ctx, "park.moh")) " " input type="text" name="moh_class" value=(lot.moh_class); }
            label { (tx(ctx, "park.fallback")) " " input type="text" name="fallback" value=(lot.fallback); }
            small { (tx(ctx, "park.fallback_help")) }
            @if ctx.is_admin() {
                button type="submit" id="park-save" { (tx(ctx, "park.save")) }
            }
        }
        h2 { (tx(ctx, "park.calls")) }
        @if calls.is_empty() {
            p id="park-none" { (tx(ctx, "park.none")) }
        } @else {
            table id="park-calls" {
                thead { tr {
                    th { (tx(ctx, "park.slot")) } th { (tx(ctx, "park.caller")) }
                    th { (tx(ctx, "park.parked_by")) } th { (tx(ctx, "park.since")) }
                    th { (tx(ctx, "park.state")) }
                } }
                tbody { @for c in calls {
                    tr data-slot=(c.slot) {
                        td { (c.slot) }
                        td { (c.caller) @if !c.caller_name.is_empty() { " (" (c.caller_name) ")" } }
                        td { (c.parked_by) }
                        td { (since(c.since)) }
                        td { (state_text(ctx, c.state)) }
                    }
                } }
            }
        }
    }
}

async fn current(w: &Web) -> Result<(i64, ParkLot, Vec<ParkedCall>), store::Error> {
    let t = w.store().default_tenant().await?.id;
    let lot = w.store().park_lot(t).await?;
    let calls = w.control().parked_calls(t).await;
    Ok((t, lot, calls))
}

async fn show(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    match current(&w).await {
        Ok((_, lot, calls)) => page(
            &ctx,
            StatusCode::OK,
            "park.title",
            body(&ctx, &lot, &calls, html! {}),
        ),
        Err(e) => page(
            &ctx,
            StatusCode::INTERNAL_SERVER_ERROR,
            "park.title",
            html! { p.error role="alert" { (e) } },
        ),
    }
}

fn num(f: &HashMap<String, String>, key: &str, cur: u32) -> Result<u32, String> {
    match f.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(cur),
        Some(v) => v.parse().map_err(|_| format!("{key}: a whole number")),
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
    let (t, cur, calls) = match current(&w).await {
        Ok(x) => x,
        Err(e) => {
            return page(
                &ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                "park.title",
                html! { p.error role="alert" { (e) } },
            );
        }
    };
    let text = |k: &str, c: &str| {
        f.get(k)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| c.to_string())
    };
    let cur_s = u32::try_from(cur.timeout.as_secs()).unwrap_or(u32::MAX);
    let parsed = (|| -> Result<ParkLot, String> {
        Ok(ParkLot {
            first: num(&f, "first_slot", cur.first)?,
            last: num(&f, "last_slot", cur.last)?,
            timeout: Duration::from_secs(u64::from(num(&f, "timeout_s", cur_s)?)),
            moh_class: text("moh_class", &cur.moh_class),
            fallback: text("fallback", &cur.fallback),
        })
    })();
    let result = match &parsed {
        Ok(lot) => w
            .store()
            .set_park_lot(t, lot)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    match (result, parsed) {
        (Ok(()), _) => Redirect::to("/park").into_response(),
        (Err(e), lot) => {
            let shown = lot.unwrap_or(cur);
            page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "park.title",
                body(
                    &ctx,
                    &shown,
                    &calls,
                    html! { p.error role="alert" id="form-error" { (e) } },
                ),
            )
        }
    }
}
