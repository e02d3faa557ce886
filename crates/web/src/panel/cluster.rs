//! The panel's "Cluster" page: both nodes' roles, heartbeat paths, witness, application
//! addresses, recent events, and a switchover button that asks for confirmation (a second form,
//! no script needed) and shows the reason when the pair is not ready.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, notice, page, table_text};
use crate::Web;

/// This page's texts (the menu entry and title are in `i18n`).
const TEXT: &[(&str, &str, &str)] = &[
    ("cluster.unknown", "not heard", "応答なし"),
    ("cluster.role.active", "ACT (active)", "ACT（運用系）"),
    ("cluster.role.standby", "SBY (standby)", "SBY（待機系）"),
    ("cluster.role.starting", "starting", "起動中"),
    (
        "cluster.role.fenced",
        "fenced (hold-down)",
        "フェンス中（ホールドダウン）",
    ),
    ("cluster.role.maintenance", "maintenance", "保守"),
    ("cluster.name", "Cluster", "クラスタ"),
    ("cluster.this_node", "This node", "このノード"),
    ("cluster.peer_node", "Peer node", "相手ノード"),
    (
        "cluster.holds_ip",
        "Holds the application address",
        "アプリケーションIPを保持",
    ),
    (
        "cluster.addresses",
        "Application addresses",
        "アプリケーションIP",
    ),
    ("cluster.witness", "Witness", "ウィットネス"),
    ("cluster.reachable", "reachable", "到達可能"),
    ("cluster.lease", "lease held", "リース保持"),
    ("cluster.blocked", "Takeover blocked", "切替ブロック中"),
    (
        "cluster.alone",
        "Running alone: the witness records that only this node has every acknowledged write; the standby takes over automatically only once it has caught up",
        "単独運転中: 確認済みの書き込みをすべて持つのはこのノードだけとウィットネスに記録されています。スタンバイは追い付くまで自動では切り替わりません",
    ),
    ("cluster.paths", "Heartbeat paths", "ハートビート経路"),
    ("cluster.local", "Local", "自ノード側"),
    ("cluster.peer", "Peer", "相手側"),
    ("cluster.health", "Health", "状態"),
    ("cluster.healthy", "healthy", "正常"),
    ("cluster.degraded", "degraded", "劣化"),
    ("cluster.switchover", "Switch over", "系切替"),
    (
        "cluster.switchover_note",
        "Hands the application address to the standby node. Calls in progress are not kept yet.",
        "アプリケーションIPを待機系へ引き渡します。通話中の呼はまだ維持されません。",
    ),
    (
        "cluster.not_ready",
        "Switchover is not possible now:",
        "現在は系切替できません：",
    ),
    (
        "cluster.confirm",
        "Really switch over? Phones will reach the other node at the same address.",
        "本当に系切替しますか？電話機は同じアドレスで相手ノードに接続します。",
    ),
    (
        "cluster.switchover_confirm",
        "Yes, switch over",
        "はい、系切替する",
    ),
    ("cluster.cancel", "Cancel", "キャンセル"),
    ("cluster.events", "Recent events", "最近のイベント"),
    ("cluster.time", "Time (UTC)", "時刻（UTC）"),
    ("cluster.kind", "Kind", "種別"),
    ("cluster.role", "Role after", "変化後の役割"),
    ("cluster.reason", "Reason", "理由"),
    (
        "cluster.not_clustered",
        "This node is not part of an active/standby pair (start it with serve --cluster).",
        "このノードは二重化構成ではありません（serve --cluster で起動してください）。",
    ),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

pub(super) fn routes() -> Router<Web> {
    Router::new().route("/cluster", get(show).post(switchover))
}

fn role_text(ctx: &Ctx, role: Option<ha::Role>) -> &'static str {
    match role {
        None => tx(ctx, "cluster.unknown"),
        Some(ha::Role::Active) => tx(ctx, "cluster.role.active"),
        Some(ha::Role::Standby) => tx(ctx, "cluster.role.standby"),
        Some(ha::Role::Starting) => tx(ctx, "cluster.role.starting"),
        Some(ha::Role::Fenced) => tx(ctx, "cluster.role.fenced"),
        Some(ha::Role::Maintenance) => tx(ctx, "cluster.role.maintenance"),
    }
}

fn yes_no(ctx: &Ctx, b: bool) -> &'static str {
    if b { ctx.t("yes") } else { ctx.t("no") }
}

fn body(ctx: &Ctx, r: &ha::report::ClusterReport, msg: Markup) -> Markup {
    let st = &r.status;
    html! {
        (msg)
        table.kv id="cluster" { tbody {
            tr { th { (tx(ctx, "cluster.name")) } td { (r.cluster) } }
            tr { th { (tx(ctx, "cluster.this_node")) " " (r.node) } td id="cluster-role" data-role=(st.role.as_str()) { (role_text(ctx, Some(st.role))) " (" (st.epoch) ")" } }
            tr { th { (tx(ctx, "cluster.peer_node")) " " (r.peer) } td id="cluster-peer-role" { (role_text(ctx, st.peer_role)) } }
            tr { th { (tx(ctx, "cluster.holds_ip")) } td id="cluster-holds-ip" { (yes_no(ctx, r.holds_ip)) } }
            tr { th { (tx(ctx, "cluster.addresses")) } td { @for a in &r.app_addrs { code { (a) } " " } } }
            tr { th { (tx(ctx, "cluster.witness")) } td id="cluster-witness" {
                (tx(ctx, "cluster.reachable")) ": " (yes_no(ctx, st.witness_reachable)) ", "
                (tx(ctx, "cluster.lease")) ": " (yes_no(ctx, st.lease_held))
            } }
            @if let Some(b) = &st.blocked {
                tr { th { (tx(ctx, "cluster.blocked")) } td.error { (b) } }
            }
            @if st.alone {
                tr { td id="cluster-alone" colspan="2" { span.error { (tx(ctx, "cluster.alone")) } } }
            }
        } }
        h2 { (tx(ctx, "cluster.paths")) }
        table id="cluster-paths" {
            thead { tr { th { "#" } th { (tx(ctx, "cluster.local")) } th { (tx(ctx, "cluster.peer")) } th { (tx(ctx, "cluster.health")) } } }
            tbody { @for (i, p) in r.paths.iter().enumerate() {
                tr { td { (i) } td { code { (p.local) } } td { code { (p.peer) } }
                     td { @if p.healthy { span.ok { (tx(ctx, "cluster.healthy")) } } @else { span.error { (tx(ctx, "cluster.degraded")) } } } }
            } }
        }
        h2 { (tx(ctx, "cluster.switchover")) }
        @match &r.switchover_refused {
            None => {
                form method="post" action="/cluster" {
                    (csrf_field(ctx))
                    p { (tx(ctx, "cluster.switchover_note")) }
                    button type="submit" id="switchover" { (tx(ctx, "cluster.switchover")) }
                }
            }
            Some(reason) => {
                p id="switchover-refused" { (tx(ctx, "cluster.not_ready")) " " (reason) }
            }
        }
        h2 { (tx(ctx, "cluster.events")) }
        table id="cluster-events" {
            thead { tr { th { (tx(ctx, "cluster.time")) } th { (tx(ctx, "cluster.kind")) } th { (tx(ctx, "cluster.role")) } th { (tx(ctx, "cluster.reason")) } } }
            tbody { @for e in r.events.iter().rev() {
                tr { td { (e.at) } td { (format!("{:?}", e.kind)) } td { (role_text(ctx, Some(e.role))) } td { (e.reason) } }
            } }
        }
    }
}

async fn show(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let Some(c) = w.control().cluster() else {
        return notice(
            &ctx,
            StatusCode::OK,
            "cluster.title",
            tx(&ctx, "cluster.not_clustered"),
        );
    };
    page(
        &ctx,
        StatusCode::OK,
        "cluster.title",
        body(&ctx, &c.report(), html! {}),
    )
}

/// First POST: a confirmation form; second POST (`confirm=yes`): the switchover.
async fn switchover(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let Some(c) = w.control().cluster() else {
        return notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.error",
            tx(&ctx, "cluster.not_clustered"),
        );
    };
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return page(
            &ctx,
            StatusCode::OK,
            "cluster.title",
            html! {
                form method="post" action="/cluster" {
                    (csrf_field(&ctx))
                    input type="hidden" name="confirm" value="yes";
                    p.error role="alert" { (tx(&ctx, "cluster.confirm")) }
                    button type="submit" id="switchover-confirm" { (tx(&ctx, "cluster.switchover_confirm")) }
                    " " a href="/cluster" { (tx(&ctx, "cluster.cancel")) }
                }
            },
        );
    }
    match c.switchover().await {
        Ok(()) => Redirect::to("/cluster").into_response(),
        Err(reason) => page(
            &ctx,
            StatusCode::CONFLICT,
            "cluster.title",
            body(
                &ctx,
                &c.report(),
                html! { p.error role="alert" id="switchover-error" { (tx(&ctx, "cluster.not_ready")) " " (reason) } },
            ),
        ),
    }
}
