//! The Backup server page (バックアップサーバー): on a PBX, pairing with the backup server,
//! the daily schedule, "back up now", the last outcome (an alert while shipping fails) and the
//! server's generations with a restore button; on a backup server (`denwa serve
//! --backup-listen`), pairing codes, paired nodes, the generations received with size, time and
//! result, and how many to keep. The protocol is in the `backup` crate.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, field, fmt_time, layout};
use crate::Web;
use crate::i18n::Lang;

/// A backup server alerts when nothing arrived from its paired nodes for this long (a day's
/// schedule plus slack).
const STALE_HOURS: i64 = 26;

/// `(key, English, Japanese)`: this page's own texts.
const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Backup server", "バックアップサーバー"),
    (
        "intro",
        "With a standalone-backup licence, this PBX ships a full backup (database, prompts, voicemail, recordings, music on hold) to a paired backup server daily and on demand, over HTTPS with the server's certificate pinned at pairing. The backup server keeps the newest generations and builds the reports from them.",
        "standalone-backup ライセンスでは、この PBX は完全なバックアップ（データベース、音声ガイダンス、ボイスメール、録音、保留音）を、ペアリングしたバックアップサーバーへ毎日および任意の時に送ります。通信は HTTPS で、サーバー証明書はペアリング時に固定されます。バックアップサーバーは新しい世代を保管し、そこからレポートを作成します。",
    ),
    (
        "licence",
        "Not available with the licence in force",
        "現在のライセンスでは利用できません",
    ),
    ("pbx", "This PBX", "この PBX"),
    ("paired", "Paired with", "ペアリング先"),
    (
        "not_paired",
        "Not paired with a backup server.",
        "バックアップサーバーとペアリングしていません。",
    ),
    (
        "address",
        "Backup server address (HOST:PORT)",
        "バックアップサーバーのアドレス（ホスト:ポート）",
    ),
    (
        "code",
        "One-time pairing code",
        "ワンタイムペアリングコード",
    ),
    ("pair", "Pair", "ペアリング"),
    ("unpair", "Forget pairing", "ペアリング解除"),
    ("paired_ok", "Paired.", "ペアリングしました。"),
    (
        "schedule",
        "Daily at (HH:MM, empty: on demand only)",
        "毎日の実行時刻（HH:MM、空欄は手動のみ）",
    ),
    ("save", "Save", "保存"),
    ("saved", "Saved.", "保存しました。"),
    ("now", "Back up now", "今すぐバックアップ"),
    (
        "shipped",
        "Backup shipped: generation",
        "バックアップを送信しました。世代",
    ),
    ("last_ok", "Last success", "最終成功"),
    ("never", "never", "なし"),
    (
        "failing",
        "Shipping backups fails",
        "バックアップの送信に失敗しています",
    ),
    (
        "attempts",
        "attempts since the last success; retried automatically. Last error:",
        "回連続で失敗（自動で再試行します）。最後のエラー:",
    ),
    (
        "generations",
        "Generations on the backup server",
        "バックアップサーバー上の世代",
    ),
    ("restore", "Restore", "復元"),
    (
        "restore_note",
        "Restoring replaces every extension, setting, call record and the prompt, voicemail, recording and music-on-hold files of this PBX with the generation's.",
        "復元すると、この PBX の内線・設定・通話記録と音声ガイダンス・ボイスメール・録音・保留音のファイルが、選んだ世代の内容に置き換わります。",
    ),
    (
        "restored",
        "Restored the backup taken at",
        "次の時点のバックアップを復元しました:",
    ),
    (
        "unreachable",
        "The backup server could not be asked",
        "バックアップサーバーに問い合わせできませんでした",
    ),
    ("id", "No.", "番号"),
    ("taken", "Taken", "取得日時"),
    ("received", "Received", "受信日時"),
    ("from", "From", "送信元"),
    ("size", "Size (bytes)", "サイズ（バイト）"),
    ("result", "Result", "結果"),
    ("detail", "Detail", "詳細"),
    ("server", "This backup server", "このバックアップサーバー"),
    (
        "fingerprint",
        "Certificate fingerprint (SHA-256)",
        "証明書フィンガープリント（SHA-256）",
    ),
    ("listen", "Listening on", "待受アドレス"),
    ("new_code", "Make a pairing code", "ペアリングコードを作成"),
    (
        "code_made",
        "Pairing code (single use, valid 15 minutes):",
        "ペアリングコード（1回限り、15分間有効）:",
    ),
    ("peers", "Paired nodes", "ペアリング済みノード"),
    ("revoke", "Revoke", "取り消し"),
    ("revoked", "revoked", "取り消し済み"),
    ("keep", "Generations to keep", "保管する世代数"),
    (
        "rejected_total",
        "Refused uploads (corrupt, too large, disk full)",
        "拒否したアップロード（破損、サイズ超過、ディスク不足）",
    ),
    ("no_rows", "None yet.", "まだありません。"),
    (
        "stale",
        "No backup has arrived for more than a day; the last at",
        "1日以上バックアップが届いていません。最後の受信:",
    ),
    (
        "last_refused",
        "The last upload to this backup server was refused",
        "このバックアップサーバーへの最後のアップロードは拒否されました",
    ),
];

fn tr(lang: Lang, key: &str) -> &'static str {
    super::text_in(TEXTS, lang, key)
}

/// Routes of the page.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/backup/remote", get(show))
        .route("/backup/remote/pair", post(pair))
        .route("/backup/remote/unpair", post(unpair))
        .route("/backup/remote/schedule", post(schedule))
        .route("/backup/remote/ship", post(ship))
        .route("/backup/remote/restore/{id}", post(restore))
        .route("/backup/remote/code", post(code))
        .route("/backup/remote/keep", post(keep))
        .route("/backup/remote/revoke/{id}", post(revoke))
}

fn ok(msg: impl Into<String>) -> Markup {
    let msg = msg.into();
    html! { p.ok role="status" id="backup-ok" { (msg) } }
}

fn bad(msg: impl Into<String>) -> Markup {
    let msg = msg.into();
    html! { p.error role="alert" id="backup-error" { (msg) } }
}

async fn view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let l = ctx.lang;
    let refusal = backup::topology_refusal(w.licensing().entitlement().topology());
    let st = w.store().ship_state().await.unwrap_or_default();
    // Asked live, so the list is the server's own; a failure is shown, not fatal.
    let remote = if st.paired() && refusal.is_none() {
        Some(backup::client::generations(w.store()).await)
    } else {
        None
    };
    let server = w.info().backup_listen.clone();
    let body = html! {
        (msg)
        p { (tr(l, "intro")) }
        @if let Some(why) = &refusal {
            p.error role="alert" id="backup-licence" { (tr(l, "licence")) ": " (why) }
        }
        h2 { (tr(l, "pbx")) }
        @if st.failures > 0 {
            p.error role="alert" id="backup-failing" {
                (tr(l, "failing")) ": " (st.failures) " " (tr(l, "attempts")) " " (st.last_error)
            }
        }
        @if st.paired() {
            p id="backup-paired" {
                (tr(l, "paired")) ": " strong { (st.server_name) } " (" (st.url) ")"
            }
            p.hint { (tr(l, "fingerprint")) ": " code { (st.fingerprint) } }
            p id="backup-last" {
                (tr(l, "last_ok")) ": "
                @match &st.last_success_at {
                    Some(t) => { (fmt_time(t)) " UTC (" (st.last_size) " B)" }
                    None => { (tr(l, "never")) }
                }
            }
        } @else {
            p id="backup-not-paired" { (tr(l, "not_paired")) }
        }
        @if ctx.is_admin() {
            form method="post" action="/backup/remote/pair" id="backup-pair" {
                (csrf_field(ctx))
                label { (tr(l, "address")) " " input name="address" required placeholder="backup.example:8443"; }
                " "
                label { (tr(l, "code")) " " input name="code" required autocomplete="off" placeholder="XXXX-XXXX-XXXX-XXXX"; }
                " "
                button type="submit" { (tr(l, "pair")) }
            }
            @if st.paired() {
                form method="post" action="/backup/remote/schedule" id="backup-schedule" {
                    (csrf_field(ctx))
                    label { (tr(l, "schedule")) " " input name="at" value=(st.daily_at) placeholder="02:00"; }
                    " "
                    button type="submit" { (tr(l, "save")) }
                }
                form method="post" action="/backup/remote/ship" id="backup-now" {
                    (csrf_field(ctx))
                    button type="submit" { (tr(l, "now")) }
                }
                form method="post" action="/backup/remote/unpair" {
                    (csrf_field(ctx))
                    button type="submit" { (tr(l, "unpair")) }
                }
            }
        }
        @if let Some(list) = &remote {
            h3 { (tr(l, "generations")) }
            @match list {
                Ok(gens) if gens.is_empty() => { p { (tr(l, "no_rows")) } }
                Ok(gens) => {
                    p.hint { (tr(l, "restore_note")) }
                    table id="remote-generations" {
                        thead { tr { th { (tr(l, "id")) } th { (tr(l, "taken")) } th { (tr(l, "from")) } th { (tr(l, "size")) } th { (tr(l, "detail")) } th {} } }
                        tbody {
                            @for g in gens {
                                tr {
                                    td { (g.id) }
                                    td { (g.created_at.as_deref().unwrap_or("-")) }
                                    td { (g.source) }
                                    td { (g.size) }
                                    td { (g.detail) }
                                    td {
                                        @if ctx.is_admin() {
                                            form method="post" action=(format!("/backup/remote/restore/{}", g.id)) {
                                                (csrf_field(ctx))
                                                button type="submit" { (tr(l, "restore")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Err(e) => { p.error role="alert" { (tr(l, "unreachable")) ": " (format!("{e:#}")) } }
            }
        }
        @if let Some(listen) = &server {
            (server_section(w, ctx, listen).await)
        }
    };
    (status, layout(ctx, tr(l, "title"), body)).into_response()
}

async fn server_section(w: &Web, ctx: &Ctx, listen: &str) -> Markup {
    let l = ctx.lang;
    let dir = backup::server::dir_in(&w.info().data_dir);
    let fp =
        backup::tls::Identity::fingerprint_in(&backup::server::tls_dir(&dir)).unwrap_or_default();
    let state = w.store().backup_server_state().await.unwrap_or_default();
    let gens = w
        .store()
        .list_generations(false, 200)
        .await
        .unwrap_or_default();
    let peers = w.store().list_peers().await.unwrap_or_default();
    html! {
        h2 { (tr(l, "server")) }
        p { (tr(l, "listen")) ": " code { (listen) } }
        p { (tr(l, "fingerprint")) ": " code id="server-fingerprint" { (fp) } }
        p { (tr(l, "rejected_total")) ": " span id="rejected-total" { (state.rejected_total) } }
        @if ctx.is_admin() {
            form method="post" action="/backup/remote/code" id="backup-code" {
                (csrf_field(ctx))
                button type="submit" { (tr(l, "new_code")) }
            }
            form method="post" action="/backup/remote/keep" id="backup-keep" {
                (csrf_field(ctx))
                label { (tr(l, "keep")) " " input name="keep" type="number" min="1" max="1000" value=(state.keep); }
                " "
                button type="submit" { (tr(l, "save")) }
            }
        }
        h3 { (tr(l, "peers")) }
        @if peers.is_empty() { p { (tr(l, "no_rows")) } }
        @else {
            table id="backup-peers" {
                tbody {
                    @for p in &peers {
                        tr {
                            td { (p.id) }
                            td { (p.name) }
                            td { code { (p.node_id) } }
                            td { (fmt_time(&p.paired_at)) }
                            td {
                                @if p.revoked { (tr(l, "revoked")) }
                                @else if ctx.is_admin() {
                                    form method="post" action=(format!("/backup/remote/revoke/{}", p.id)) {
                                        (csrf_field(ctx))
                                        button type="submit" { (tr(l, "revoke")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h3 { (tr(l, "generations")) }
        @if gens.is_empty() { p { (tr(l, "no_rows")) } }
        @else {
            table id="received-generations" {
                thead { tr { th { (tr(l, "id")) } th { (tr(l, "received")) } th { (tr(l, "from")) } th { (tr(l, "size")) } th { (tr(l, "result")) } th { (tr(l, "detail")) } } }
                tbody {
                    @for g in &gens {
                        tr class=(if g.status == "ok" { "gen-ok" } else { "gen-rejected" }) {
                            td { (g.id) }
                            td { (fmt_time(&g.received_at)) }
                            td { (g.source) }
                            td { (g.size) }
                            td { (g.status) }
                            td { (g.detail) }
                        }
                    }
                }
            }
        }
    }
}

/// The dashboard's alert while shipping backups fails (PBX) or the last upload this backup
/// server received was refused; nothing otherwise.
pub(super) async fn dashboard_alert(w: &Web, ctx: &Ctx) -> Markup {
    let l = ctx.lang;
    let st = w.store().ship_state().await.unwrap_or_default();
    let serving = w.info().backup_listen.is_some();
    let newest = if serving {
        w.store()
            .list_generations(false, 1)
            .await
            .ok()
            .and_then(|g| g.into_iter().next())
    } else {
        None
    };
    let last_in = newest.clone().filter(|g| g.status != "ok");
    // A paired node that stopped shipping (unreachable, switched off) shows here too.
    let stale = if serving {
        let peers = w.store().list_peers().await.unwrap_or_default();
        let since = w
            .store()
            .list_generations(true, 1)
            .await
            .ok()
            .and_then(|g| g.into_iter().next())
            .map(|g| g.received_at)
            .or_else(|| {
                peers
                    .iter()
                    .filter(|p| !p.revoked)
                    .map(|p| p.paired_at)
                    .min()
            });
        let live = peers.iter().any(|p| !p.revoked);
        since.filter(|t| live && Utc::now() - *t > chrono::TimeDelta::hours(STALE_HOURS))
    } else {
        None
    };
    html! {
        @if st.failures > 0 {
            p.error role="alert" id="dash-backup-failing" {
                a href="/backup/remote" { (tr(l, "failing")) } ": " (st.failures) " " (tr(l, "attempts")) " " (st.last_error)
            }
        }
        @if let Some(t) = stale {
            p.error role="alert" id="dash-backup-stale" {
                a href="/backup/remote" { (tr(l, "stale")) } " " (fmt_time(&t)) " UTC"
            }
        }
        @if let Some(g) = last_in {
            p.error role="alert" id="dash-backup-refused" {
                a href="/backup/remote" { (tr(l, "last_refused")) } " (" (g.source) ", " (fmt_time(&g.received_at)) "): " (g.detail)
            }
        }
    }
}

async fn show(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    view(&w, &ctx, StatusCode::OK, html! {}).await
}

/// Checks the form and the licence; the refusal page, if any.
async fn allowed(
    w: &Web,
    ctx: &Ctx,
    f: &HashMap<String, String>,
    need_topology: bool,
) -> Option<Response> {
    if let Some(r) = check_write(ctx, f) {
        return Some(r);
    }
    if need_topology
        && let Some(why) = backup::topology_refusal(w.licensing().entitlement().topology())
    {
        let msg = format!("{}: {why}", tr(ctx.lang, "licence"));
        return Some(view(w, ctx, StatusCode::FORBIDDEN, bad(msg)).await);
    }
    None
}

/// The page after an action: its message on success, the error with `fail` status otherwise.
async fn after<E: std::fmt::Display>(
    w: &Web,
    ctx: &Ctx,
    fail: StatusCode,
    res: Result<String, E>,
) -> Response {
    match res {
        Ok(msg) => view(w, ctx, StatusCode::OK, ok(msg)).await,
        Err(e) => view(w, ctx, fail, bad(format!("{e:#}"))).await,
    }
}

type FormMap = Form<HashMap<String, String>>;

async fn pair(State(w): State<Web>, Signed(ctx): Signed, Form(f): FormMap) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, true).await {
        return r;
    }
    let (store, info) = (w.store(), w.info());
    let res = backup::client::pair(
        store,
        field(&f, "address"),
        field(&f, "code"),
        w.licensing().node_id(),
        &info.node,
    )
    .await
    .map(|name| format!("{} ({name})", tr(ctx.lang, "paired_ok")));
    after(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, res).await
}

async fn unpair(State(w): State<Web>, Signed(ctx): Signed, Form(f): FormMap) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, false).await {
        return r;
    }
    let res = w.store().clear_ship_pairing().await;
    let res = res.map(|()| tr(ctx.lang, "saved").to_string());
    after(&w, &ctx, StatusCode::INTERNAL_SERVER_ERROR, res).await
}

async fn schedule(State(w): State<Web>, Signed(ctx): Signed, Form(f): FormMap) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, false).await {
        return r;
    }
    let at = field(&f, "at").trim().to_string();
    let res = match backup::schedule::parse_daily_at(&at) {
        Ok(_) => w
            .store()
            .set_ship_schedule(&at)
            .await
            .map(|()| tr(ctx.lang, "saved").to_string())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    after(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, res).await
}

async fn ship(State(w): State<Web>, Signed(ctx): Signed, Form(f): FormMap) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, true).await {
        return r;
    }
    let res = backup::client::ship(w.store(), &w.info().data_dir, &w.info().node).await;
    let res = res.map(|g| format!("{} {} ({} B)", tr(ctx.lang, "shipped"), g.id, g.size));
    after(&w, &ctx, StatusCode::BAD_GATEWAY, res).await
}

async fn restore(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(id): Path<i64>,
    Form(f): FormMap,
) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, true).await {
        return r;
    }
    let res = backup::client::restore_remote(w.store(), &w.info().data_dir, id).await;
    let res = res.map(|m| {
        format!(
            "{} {} UTC",
            tr(ctx.lang, "restored"),
            fmt_time(&m.created_at)
        )
    });
    after(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, res).await
}

async fn code(State(w): State<Web>, Signed(ctx): Signed, Form(f): FormMap) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, true).await {
        return r;
    }
    match backup::server::create_code(w.store()).await {
        Ok((code, _)) => {
            let msg = html! { p.ok role="status" { (tr(ctx.lang, "code_made")) " " strong id="pairing-code" { (code) } } };
            view(&w, &ctx, StatusCode::OK, msg).await
        }
        Err(e) => view(&w, &ctx, StatusCode::CONFLICT, bad(format!("{e:#}"))).await,
    }
}

async fn keep(State(w): State<Web>, Signed(ctx): Signed, Form(f): FormMap) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, false).await {
        return r;
    }
    let n = field(&f, "keep").trim().parse::<i64>().unwrap_or(0);
    let res = w.store().set_backup_keep(n).await;
    let res = res.map(|()| tr(ctx.lang, "saved").to_string());
    after(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, res).await
}

async fn revoke(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(id): Path<i64>,
    Form(f): FormMap,
) -> Response {
    if let Some(r) = allowed(&w, &ctx, &f, false).await {
        return r;
    }
    let res = w.store().revoke_peer(id).await;
    let res = res.map(|()| tr(ctx.lang, "saved").to_string());
    after(&w, &ctx, StatusCode::NOT_FOUND, res).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_has_both_languages() {
        for (k, en, ja) in TEXTS {
            assert!(!en.is_empty() && !ja.is_empty(), "{k}");
        }
    }
}
