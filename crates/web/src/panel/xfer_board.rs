//! Drag-and-drop transfer on the live calls page: the tenant's extensions are listed beside the
//! calls in progress with their state (idle, ringing, busy, DND, offline); an administrator
//! drags a call's caller or callee onto an extension, confirms which party moves, and the
//! panel's transfer route (`panel/transfer.rs`, the same blind transfer as the API) does it.
//! A refusal (class of service, unknown number, call not answered) is shown in the page.
//! Without the script the transfer form of each call (number and party) does the same.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use engine::control::{CallState, CallSummary};
use engine::xfer_party::Party;
use maud::{Markup, html};
use store::Page;

use super::{Ctx, Signed, csrf_field, table_text};
use crate::Web;
use crate::api::ApiError;

const SCRIPT: &str = include_str!("../../static/xfer.js");
/// Extensions listed as drop targets (the list is for a receptionist's screen, not a directory).
const MAX_EXTENSIONS: i64 = 200;

const TEXT: &[(&str, &str, &str)] = &[
    ("xb.extensions", "Extensions", "内線"),
    (
        "xb.hint",
        "Drag a caller or callee onto an extension to transfer that party there.",
        "発信者または着信者を内線にドラッグすると、その相手をその内線へ転送します。",
    ),
    ("xb.none", "No extensions yet.", "内線はまだありません。"),
    ("xb.idle", "idle", "待機中"),
    ("xb.ringing", "ringing", "呼出中"),
    ("xb.busy", "busy", "通話中"),
    ("xb.dnd", "do not disturb", "応答不可"),
    ("xb.offline", "offline", "未登録"),
    (
        "xb.confirm_title",
        "Transfer the call?",
        "通話を転送しますか？",
    ),
    ("xb.moves", "Party that moves", "転送する相手"),
    ("xb.caller", "caller", "発信者"),
    ("xb.callee", "callee", "着信者"),
    ("xb.to", "Transfer to", "転送先"),
    (
        "xb.released",
        "The other party is released once the target answers.",
        "転送先が応答すると、もう一方の相手は切断されます。",
    ),
    (
        "xb.target_warn",
        "The target is not idle; the transfer may fail.",
        "転送先は待機中ではありません。転送できない場合があります。",
    ),
    ("xb.confirm", "Transfer", "転送"),
    ("xb.cancel", "Cancel", "キャンセル"),
    (
        "xb.started",
        "Transfer started: the target is ringing.",
        "転送を開始しました。転送先を呼び出しています。",
    ),
    (
        "xb.refused_403",
        "the extension that hands the call on may not call this number.",
        "転送元の内線にはこの番号への発信が許可されていません。",
    ),
    (
        "xb.refused_404",
        "no such call or number.",
        "通話または番号が存在しません。",
    ),
    (
        "xb.refused_409",
        "the call is not answered yet, or a transfer is already in progress.",
        "通話がまだ応答されていないか、すでに転送中です。",
    ),
    (
        "xb.refused_400",
        "the target must be a number.",
        "転送先は番号で指定してください。",
    ),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

/// Routes of the board: the extension list fragment and its script.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/fragments/ext-states", get(states_fragment))
        .route("/static/xfer.js", get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        SCRIPT,
    )
}

/// The caller and callee cells of a call row; for administrators they can be dragged onto an
/// extension of the board.
pub(super) fn party_cells(ctx: &Ctx, c: &CallSummary) -> Markup {
    let cell = |party: Party, number: &str| {
        html! {
            @if ctx.is_admin() {
                td { span.party draggable="true" data-call=(c.id) data-party=(party.as_str())
                    data-number=(number) data-caller=(c.caller) data-callee=(c.callee)
                    title=(tx(ctx, "xb.hint")) { (number) } }
            } @else {
                td { (number) }
            }
        }
    };
    html! { (cell(Party::Caller, &c.caller)) (cell(Party::Callee, &c.callee)) }
}

/// The party select of the transfer form (the keyboard way to do what dragging does).
pub(super) fn moves_select(ctx: &Ctx) -> Markup {
    html! {
        select name="moves" aria-label=(tx(ctx, "xb.moves")) {
            option value="caller" selected { (tx(ctx, "xb.caller")) }
            option value="callee" { (tx(ctx, "xb.callee")) }
        }
    }
}

/// The localized text of a refused transfer: the core's reason, then what it means.
pub(super) fn refusal_text(ctx: &Ctx, r: &engine::transfer::TransferRefused) -> String {
    let key = match r.status {
        400 => Some("xb.refused_400"),
        403 => Some("xb.refused_403"),
        404 => Some("xb.refused_404"),
        409 | 491 => Some("xb.refused_409"),
        _ => None,
    };
    let head = format!("{} {}", ctx.t("calls.transfer_refused"), r.reason);
    match key {
        Some(k) => format!("{head} — {}", tx(ctx, k)),
        None => head,
    }
}

/// State of an extension as the board shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtState {
    Idle,
    Ringing,
    Busy,
    Dnd,
    Offline,
}

impl ExtState {
    fn as_str(self) -> &'static str {
        match self {
            ExtState::Idle => "idle",
            ExtState::Ringing => "ringing",
            ExtState::Busy => "busy",
            ExtState::Dnd => "dnd",
            ExtState::Offline => "offline",
        }
    }
}

/// The state of extension `number`: offline without a live registration; busy in an answered
/// call (or while calling out); ringing while called; else DND when set; else idle.
pub(crate) fn ext_state(
    number: &str,
    registered: bool,
    dnd: bool,
    calls: &[CallSummary],
) -> ExtState {
    if !registered {
        return ExtState::Offline;
    }
    let mut ringing = false;
    for c in calls {
        // An answered call names who is in it now (a transfer changes that); a ringing one
        // has its caller busy and its callee ringing.
        let busy = if c.state == CallState::Up {
            c.parties.iter().any(|p| p == number)
        } else {
            c.caller == number
        };
        if busy {
            return ExtState::Busy;
        }
        ringing |= c.state == CallState::Ringing && c.callee == number;
    }
    if ringing {
        ExtState::Ringing
    } else if dnd {
        ExtState::Dnd
    } else {
        ExtState::Idle
    }
}

async fn states(w: &Web) -> Result<Vec<(store::Extension, ExtState)>, ApiError> {
    let t = w.store().default_tenant().await?;
    let page = Page {
        limit: MAX_EXTENSIONS,
        offset: 0,
    };
    let exts = w.store().list_extensions(t.id, None, page).await?;
    let ids: HashSet<i64> = exts.iter().map(|e| e.id).collect();
    let dnd: HashMap<i64, bool> = w
        .store()
        .all_forwarding()
        .await?
        .into_iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(id, f)| (id, f.dnd))
        .collect();
    let calls: Vec<CallSummary> = w
        .control()
        .calls()
        .await
        .into_iter()
        .filter(|c| c.tenant_id == t.id)
        .collect();
    let now = Utc::now();
    let mut out = Vec::with_capacity(exts.len());
    for e in exts {
        let registered = !w
            .store()
            .bindings_for_extension(e.id, now)
            .await?
            .is_empty();
        let d = dnd.get(&e.id).copied().unwrap_or(false);
        let s = ext_state(&e.number, registered, d, &calls);
        out.push((e, s));
    }
    Ok(out)
}

fn states_list(ctx: &Ctx, rows: &[(store::Extension, ExtState)]) -> Markup {
    html! {
        @if rows.is_empty() { p.empty { (tx(ctx, "xb.none")) } } @else {
            ul.ext-states {
                @for (e, s) in rows {
                    li.ext data-ext=(e.number) data-state=(s.as_str()) {
                        span.number { (e.number) } " "
                        span.name { (e.display_name) } " "
                        span.state { "(" (tx(ctx, &format!("xb.{}", s.as_str()))) ")" }
                    }
                }
            }
        }
    }
}

async fn states_fragment(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    match states(&w).await {
        Ok(rows) => states_list(&ctx, &rows).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The board below the calls table: the extensions with their state (reloaded live), the
/// confirmation dialog and where the outcome is shown.
pub(super) async fn board(w: &Web, ctx: &Ctx) -> Markup {
    let list = match states(w).await {
        Ok(rows) => states_list(ctx, &rows),
        Err(e) => html! { p.error role="alert" { (e.message) } },
    };
    html! {
        section.xfer-board {
            h2 { (tx(ctx, "xb.extensions")) }
            @if ctx.is_admin() { p.hint { (tx(ctx, "xb.hint")) } }
            div id="ext-states" data-live="/fragments/ext-states" { (list) }
            p id="xfer-result" role="status" aria-live="polite"
                data-started=(tx(ctx, "xb.started")) {}
            @if ctx.is_admin() {
                dialog id="xfer-dialog" {
                    form id="xfer-form" method="post" action="/calls" {
                        (csrf_field(ctx))
                        h3 { (tx(ctx, "xb.confirm_title")) }
                        p id="xfer-call" {}
                        fieldset {
                            legend { (tx(ctx, "xb.moves")) }
                            label { input type="radio" name="moves" value="caller" checked;
                                " " (tx(ctx, "xb.caller")) " " span id="xfer-caller" {} }
                            label { input type="radio" name="moves" value="callee";
                                " " (tx(ctx, "xb.callee")) " " span id="xfer-callee" {} }
                        }
                        p { (tx(ctx, "xb.to")) " " strong id="xfer-to-label" {}
                            input type="hidden" name="to" id="xfer-to"; }
                        p.warn id="xfer-warn" hidden { (tx(ctx, "xb.target_warn")) }
                        p.hint { (tx(ctx, "xb.released")) }
                        button type="submit" id="xfer-confirm" { (tx(ctx, "xb.confirm")) }
                        " "
                        button type="button" id="xfer-cancel" { (tx(ctx, "xb.cancel")) }
                    }
                }
                script src="/static/xfer.js" defer {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    fn call(caller: &str, callee: &str, state: CallState) -> CallSummary {
        CallSummary {
            id: 1,
            call_id: "c".into(),
            caller: caller.into(),
            callee: callee.into(),
            state,
            duration_s: 0,
            codec: String::new(),
            tenant_id: 1,
            parties: if state == CallState::Up {
                vec![caller.into(), callee.into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn states_follow_registration_calls_and_dnd() {
        let calls = [
            call("1001", "1002", CallState::Up),
            call("1003", "1004", CallState::Ringing),
        ];
        assert_eq!(ext_state("1001", true, false, &calls), ExtState::Busy);
        assert_eq!(ext_state("1002", true, true, &calls), ExtState::Busy);
        assert_eq!(ext_state("1003", true, false, &calls), ExtState::Busy);
        assert_eq!(ext_state("1004", true, false, &calls), ExtState::Ringing);
        assert_eq!(ext_state("1005", true, true, &calls), ExtState::Dnd);
        assert_eq!(ext_state("1005", true, false, &calls), ExtState::Idle);
        assert_eq!(ext_state("1002", false, false, &calls), ExtState::Offline);
        // After a transfer the answered call names its new parties.
        let mut moved = call("1001", "1002", CallState::Up);
        moved.parties = vec!["1001".into(), "1003".into()];
        assert_eq!(
            ext_state("1002", true, false, &[moved.clone()]),
            ExtState::Idle
        );
        assert_eq!(ext_state("1003", true, false, &[moved]), ExtState::Busy);
    }

    #[test]
    fn every_text_is_translated() {
        for (k, en, ja) in TEXT {
            assert_ne!(en, ja, "{k}");
            assert_eq!(table_text(TEXT, Lang::Ja, k), *ja);
        }
    }
}
