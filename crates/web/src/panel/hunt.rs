//! Panel pages for ring groups (list, add, change, remove) and an extension's forwarding,
//! follow-me and DND (linked from the extension page). Validation is the store's; a refusal is
//! shown next to the field it names, with the input kept.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::hunt::{DndMode, Forwarding, GroupSpec, Member, Strategy};
use engine::outside::CallClass;
use maud::{Markup, html};

use super::outside::{FormErr, checked, err_at, err_top, localize, num, on, pairs, tenant, val};
use super::{Ctx, Signed, check_write, csrf_field, fail, layout, table_text, url_encode};
use crate::Web;
use crate::api::ApiError;

type Fields = Vec<(String, String)>;

/// This page's texts (the menu entry and titles are in `i18n`).
const TEXT: &[(&str, &str, &str)] = &[
    (
        "grp.none",
        "No ring groups yet.",
        "着信グループはまだありません。",
    ),
    ("grp.name", "Name", "名前"),
    ("grp.number", "Number", "番号"),
    ("grp.strategy", "Strategy", "着信方式"),
    (
        "grp.members",
        "Members (one per line; NUMBER or NUMBER:SECONDS)",
        "メンバー(1行に1つ。番号 または 番号:秒数)",
    ),
    ("grp.members_short", "Members", "メンバー"),
    (
        "grp.ring",
        "Ring time per member (seconds)",
        "メンバーごとの呼出時間(秒)",
    ),
    (
        "grp.timeout",
        "Overall timeout (seconds)",
        "全体の呼出時間(秒)",
    ),
    (
        "grp.no_answer",
        "When nobody answers",
        "応答がない場合の転送先",
    ),
    ("grp.cid_prefix", "Caller-ID prefix", "発信者名の接頭辞"),
    (
        "grp.cos",
        "Class of service for outside members",
        "外線メンバーの発信規制クラス",
    ),
    ("grp.add", "Add a ring group", "着信グループを追加"),
    ("grp.edit", "Change", "変更"),
    (
        "grp.created",
        "Ring group added.",
        "着信グループを追加しました。",
    ),
    (
        "grp.saved",
        "Ring group saved.",
        "着信グループを保存しました。",
    ),
    (
        "grp.deleted",
        "Ring group removed.",
        "着信グループを削除しました。",
    ),
    ("grp.simultaneous", "all at once", "一斉呼出"),
    ("grp.sequential", "in order (hunt)", "順次呼出(ハント)"),
    ("grp.round_robin", "round robin", "ラウンドロビン"),
    (
        "grp.first_available",
        "first available",
        "空いている最初のメンバー",
    ),
    (
        "grp.hint",
        "Members that are busy, on DND or not registered are skipped. Outside numbers ring through the outbound routes with the class of service above. Destinations: ext:N, vm:N, ivr:NAME, group:NAME, a number, or hangup.",
        "通話中・着信拒否(DND)中・未登録のメンバーは飛ばします。外線番号は上記の発信規制クラスで発信ルート経由で呼び出します。転送先: ext:番号、vm:番号、ivr:名前、group:名前、番号、hangup。",
    ),
    (
        "fwd.link",
        "Forwarding, follow-me and DND",
        "転送・フォローミー・着信拒否",
    ),
    ("fwd.always", "Forward every call to", "常時転送先"),
    ("fwd.busy", "When busy, forward to", "話中時の転送先"),
    (
        "fwd.no_answer",
        "When not answered, forward to",
        "無応答時の転送先",
    ),
    (
        "fwd.no_answer_s",
        "Ring time before that (seconds, 0: system default)",
        "それまでの呼出時間(秒、0は既定値)",
    ),
    (
        "fwd.unreachable",
        "When not registered, forward to",
        "未登録時の転送先",
    ),
    ("fwd.dnd", "Do not disturb", "着信拒否(DND)"),
    (
        "fwd.dnd_mode",
        "Callers on DND get",
        "DND中の発信者への応答",
    ),
    ("fwd.dnd_busy", "busy", "話中"),
    ("fwd.dnd_vm", "voicemail", "ボイスメール"),
    (
        "fwd.follow_me",
        "Follow-me numbers, rung after the desk (one per line)",
        "フォローミー番号(内線の後に呼出。1行に1つ)",
    ),
    (
        "fwd.follow_me_together",
        "Ring the follow-me numbers together",
        "フォローミー番号を一斉に呼び出す",
    ),
    (
        "fwd.follow_me_s",
        "Ring time of each follow-me step (seconds, 0: as above)",
        "フォローミー各段の呼出時間(秒、0は上と同じ)",
    ),
    ("fwd.saved", "Forwarding saved.", "転送設定を保存しました。"),
    (
        "fwd.hint",
        "Leave a field empty to turn that forward off. Destinations: an extension or outside number (the extension's class of service applies), vm:N, ext:N, group:NAME, ivr:NAME.",
        "空欄にするとその転送は無効です。転送先: 内線または外線番号(この内線の発信規制クラスが適用されます)、vm:番号、ext:番号、group:名前、ivr:名前。",
    ),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

/// Routes of the ring group and forwarding pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/groups", get(groups).post(create_group))
        .route("/groups/{name}/edit", get(edit_group).post(save_group))
        .route("/groups/{name}/delete", post(delete_group))
        .route(
            "/extensions/{number}/forwarding",
            get(forwarding).post(save_forwarding),
        )
}

/// The link the extension page shows.
pub(super) fn extension_link(ctx: &Ctx, number: &str) -> Markup {
    html! { p { a href={ "/extensions/" (url_encode(number)) "/forwarding" } id="forwarding-link" { (tx(ctx, "fwd.link")) } } }
}

fn page(ctx: &Ctx, status: StatusCode, title_key: &str, body: Markup) -> Response {
    (status, layout(ctx, ctx.t(title_key), body)).into_response()
}

fn strategy_text(ctx: &Ctx, s: Strategy) -> &'static str {
    tx(ctx, &format!("grp.{}", s.as_str()))
}

fn group_fields(name: &str, number: &str, g: &GroupSpec) -> Fields {
    let members: Vec<String> = g
        .members
        .iter()
        .map(|m| match m.ring_s {
            0 => m.number.clone(),
            s => format!("{}:{s}", m.number),
        })
        .collect();
    pairs(&[
        ("name", name.to_string()),
        ("number", number.to_string()),
        ("strategy", g.strategy.as_str().to_string()),
        ("members", members.join("\n")),
        ("ring_s", g.ring_s.to_string()),
        ("timeout_s", g.timeout_s.to_string()),
        ("no_answer", g.no_answer.clone()),
        ("cid_prefix", g.cid_prefix.clone()),
        ("cos", g.cos.as_str().to_string()),
    ])
}

fn group_from_form(ctx: &Ctx, f: &Fields) -> Result<GroupSpec, FormErr> {
    let d = GroupSpec::default();
    let mut members = Vec::new();
    for line in val(f, "members")
        .split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let m = match line.split_once(':') {
            Some((n, s)) => Member {
                number: n.trim().to_string(),
                ring_s: s
                    .trim()
                    .parse()
                    .map_err(|_| FormErr::new("members", format!("{line}: NUMBER:SECONDS")))?,
            },
            None => Member {
                number: line.to_string(),
                ring_s: 0,
            },
        };
        members.push(m);
    }
    Ok(GroupSpec {
        strategy: val(f, "strategy")
            .parse()
            .map_err(|e: String| FormErr::new("strategy", e))?,
        members,
        ring_s: num(f, "ring_s", d.ring_s).map_err(|e| localize(ctx, e))?,
        timeout_s: num(f, "timeout_s", d.timeout_s).map_err(|e| localize(ctx, e))?,
        no_answer: match val(f, "no_answer").trim() {
            "" => d.no_answer,
            s => s.to_string(),
        },
        cid_prefix: val(f, "cid_prefix").trim().to_string(),
        cos: val(f, "cos")
            .parse()
            .map_err(|e: String| FormErr::new("cos", e))?,
    })
}

fn group_form(ctx: &Ctx, f: &Fields, e: Option<&FormErr>, editing: bool) -> Markup {
    let action = if editing {
        format!("/groups/{}/edit", url_encode(val(f, "name")))
    } else {
        "/groups".to_string()
    };
    let text = |name: &str, key: &str| html! { label { (tx(ctx, key)) input type="text" name=(name) value=(val(f, name)); (err_at(e, name)) } };
    html! {
        form method="post" action=(action) id="group-form" {
            (csrf_field(ctx))
            label { (tx(ctx, "grp.name")) input type="text" name="name" value=(val(f, "name")) required readonly[editing] placeholder="sales"; (err_at(e, "name")) }
            (text("number", "grp.number"))
            label { (tx(ctx, "grp.strategy"))
                select name="strategy" { @for s in Strategy::ALL {
                    option value=(s.as_str()) selected[val(f, "strategy") == s.as_str()] { (strategy_text(ctx, *s)) }
                } }
                (err_at(e, "strategy"))
            }
            label { (tx(ctx, "grp.members"))
                textarea name="members" rows="5" placeholder="1001\n1002:20\n09012345678" { (val(f, "members")) }
                (err_at(e, "members"))
            }
            (text("ring_s", "grp.ring"))
            (text("timeout_s", "grp.timeout"))
            (text("no_answer", "grp.no_answer"))
            (text("cid_prefix", "grp.cid_prefix"))
            label { (tx(ctx, "grp.cos"))
                select name="cos" { @for c in CallClass::ALL {
                    option value=(c.as_str()) selected[val(f, "cos") == c.as_str()] { (ctx.t(&format!("cos.{}", c.as_str()))) }
                } }
                (err_at(e, "cos"))
            }
            button type="submit" { (ctx.t("save")) }
        }
        p.hint { (tx(ctx, "grp.hint")) }
    }
}

async fn groups_view(
    w: &Web,
    ctx: &Ctx,
    status: StatusCode,
    msg: Markup,
    f: &Fields,
    err: Option<&FormErr>,
) -> Response {
    let list = async { Ok::<_, ApiError>(w.store().list_groups(tenant(w).await?).await?) }.await;
    let list = match list {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let defaults;
    let f = if f.is_empty() {
        defaults = group_fields("", "", &GroupSpec::default());
        &defaults
    } else {
        f
    };
    let body = html! {
        (msg)
        (err_top(err))
        @if list.is_empty() { p.empty id="no-groups" { (tx(ctx, "grp.none")) } } @else {
            table id="groups" {
                thead { tr {
                    th { (tx(ctx, "grp.name")) } th { (tx(ctx, "grp.number")) } th { (tx(ctx, "grp.strategy")) }
                    th { (tx(ctx, "grp.members_short")) } th { (tx(ctx, "grp.no_answer")) } th {}
                } }
                tbody { @for g in &list {
                    tr data-group=(g.name) {
                        td { code { "group:" (g.name) } }
                        td { (g.number) }
                        td { (strategy_text(ctx, g.spec.strategy)) }
                        td { @for (i, m) in g.spec.members.iter().enumerate() { @if i > 0 { ", " } (m.number) } }
                        td { (g.spec.no_answer) }
                        td { @if ctx.is_admin() {
                            a href={ "/groups/" (url_encode(&g.name)) "/edit" } { (tx(ctx, "grp.edit")) }
                            " "
                            form.inline method="post" action={ "/groups/" (url_encode(&g.name)) "/delete" } {
                                (csrf_field(ctx))
                                button.danger type="submit" { (ctx.t("delete")) }
                            }
                        } }
                    }
                } }
            }
        }
        @if ctx.is_admin() {
            h2 { (tx(ctx, "grp.add")) }
            (group_form(ctx, f, err, false))
        }
    };
    page(ctx, status, "title.groups", body)
}

async fn groups(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    groups_view(&w, &ctx, StatusCode::OK, html! {}, &Vec::new(), None).await
}

/// Saves a group from the form; `create` for a new one.
async fn put_group(w: &Web, ctx: &Ctx, f: &Fields, create: bool) -> Result<(), FormErr> {
    let spec = group_from_form(ctx, f)?;
    let res = async {
        Ok::<_, ApiError>(
            w.store()
                .put_group(
                    tenant(w).await?,
                    val(f, "name").trim(),
                    val(f, "number").trim(),
                    &spec,
                    create,
                )
                .await?,
        )
    }
    .await;
    res.map(|_| ()).map_err(|e| FormErr::from_api(ctx, &e))
}

async fn create_group(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    match put_group(&w, &ctx, &f, true).await {
        Ok(()) => {
            groups_view(
                &w,
                &ctx,
                StatusCode::CREATED,
                ok_msg_tx(&ctx, "grp.created"),
                &Vec::new(),
                None,
            )
            .await
        }
        Err(e) => {
            groups_view(
                &w,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {},
                &f,
                Some(&e),
            )
            .await
        }
    }
}

fn ok_msg_tx(ctx: &Ctx, key: &str) -> Markup {
    html! { p.ok role="status" id="form-ok" { (tx(ctx, key)) } }
}

async fn edit_group(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
) -> Response {
    let g = async { Ok::<_, ApiError>(w.store().group(tenant(&w).await?, &name).await?) }.await;
    match g {
        Ok(Some(g)) => {
            let f = group_fields(&g.name, &g.number, &g.spec);
            page(
                &ctx,
                StatusCode::OK,
                "title.groups",
                group_form(&ctx, &f, None, ctx.is_admin()),
            )
        }
        Ok(None) => fail(&ctx, ApiError::not_found(format!("ring group {name}"))),
        Err(e) => fail(&ctx, e),
    }
}

async fn save_group(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(mut f): Form<Fields>,
) -> Response {
    if let Some(r) = super::outside::edit_form(&ctx, &mut f, "name", &name) {
        return r;
    }
    match put_group(&w, &ctx, &f, false).await {
        Ok(()) => {
            groups_view(
                &w,
                &ctx,
                StatusCode::OK,
                ok_msg_tx(&ctx, "grp.saved"),
                &Vec::new(),
                None,
            )
            .await
        }
        Err(e) => {
            let body = html! { (err_top(Some(&e))) (group_form(&ctx, &f, Some(&e), true)) };
            page(&ctx, StatusCode::UNPROCESSABLE_ENTITY, "title.groups", body)
        }
    }
}

async fn delete_group(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res =
        async { Ok::<_, ApiError>(w.store().delete_group(tenant(&w).await?, &name).await?) }.await;
    match res {
        Ok(()) => {
            groups_view(
                &w,
                &ctx,
                StatusCode::OK,
                ok_msg_tx(&ctx, "grp.deleted"),
                &Vec::new(),
                None,
            )
            .await
        }
        Err(e) if e.code == "invalid" || e.code == "not_found" => {
            let msg =
                html! { p.error role="alert" id="form-error" { (super::err_text(&ctx, &e)) } };
            groups_view(
                &w,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                msg,
                &Vec::new(),
                None,
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

// ----- forwarding -----

fn fwd_fields(f: &Forwarding) -> Fields {
    pairs(&[
        ("always", f.always.clone()),
        ("busy", f.busy.clone()),
        ("no_answer", f.no_answer.clone()),
        ("no_answer_s", f.no_answer_s.to_string()),
        ("unreachable", f.unreachable.clone()),
        ("dnd", on(f.dnd)),
        (
            "dnd_mode",
            if f.dnd_mode == DndMode::Voicemail {
                "voicemail"
            } else {
                "busy"
            }
            .to_string(),
        ),
        ("follow_me", f.follow_me.join("\n")),
        ("follow_me_together", on(f.follow_me_together)),
        ("follow_me_s", f.follow_me_s.to_string()),
    ])
}

fn fwd_from_form(ctx: &Ctx, f: &Fields) -> Result<Forwarding, FormErr> {
    let text = |k: &str| val(f, k).trim().to_string();
    Ok(Forwarding {
        always: text("always"),
        busy: text("busy"),
        no_answer: text("no_answer"),
        no_answer_s: num(f, "no_answer_s", 0).map_err(|e| localize(ctx, e))?,
        unreachable: text("unreachable"),
        dnd: checked(f, "dnd"),
        dnd_mode: if val(f, "dnd_mode") == "voicemail" {
            DndMode::Voicemail
        } else {
            DndMode::Busy
        },
        follow_me: val(f, "follow_me")
            .split(['\n', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        follow_me_together: checked(f, "follow_me_together"),
        follow_me_s: num(f, "follow_me_s", 0).map_err(|e| localize(ctx, e))?,
    })
}

fn fwd_page(
    ctx: &Ctx,
    number: &str,
    status: StatusCode,
    msg: Markup,
    f: &Fields,
    e: Option<&FormErr>,
) -> Response {
    let text = |name: &str, key: &str| html! { label { (tx(ctx, key)) input type="text" name=(name) value=(val(f, name)) readonly[!ctx.is_admin()]; (err_at(e, name)) } };
    let body = html! {
        (msg)
        (err_top(e))
        h2 { (number) }
        form method="post" action={ "/extensions/" (url_encode(number)) "/forwarding" } id="forwarding-form" {
            (csrf_field(ctx))
            (check_tx(ctx, f, "dnd", "fwd.dnd"))
            label { (tx(ctx, "fwd.dnd_mode"))
                select name="dnd_mode" {
                    option value="busy" selected[val(f, "dnd_mode") != "voicemail"] { (tx(ctx, "fwd.dnd_busy")) }
                    option value="voicemail" selected[val(f, "dnd_mode") == "voicemail"] { (tx(ctx, "fwd.dnd_vm")) }
                }
            }
            (text("always", "fwd.always"))
            (text("busy", "fwd.busy"))
            (text("no_answer", "fwd.no_answer"))
            (text("no_answer_s", "fwd.no_answer_s"))
            (text("unreachable", "fwd.unreachable"))
            label { (tx(ctx, "fwd.follow_me"))
                textarea name="follow_me" rows="3" placeholder="09012345678" { (val(f, "follow_me")) }
                (err_at(e, "follow_me"))
            }
            (check_tx(ctx, f, "follow_me_together", "fwd.follow_me_together"))
            (text("follow_me_s", "fwd.follow_me_s"))
            @if ctx.is_admin() { button type="submit" { (ctx.t("save")) } }
        }
        p.hint { (tx(ctx, "fwd.hint")) }
        p { a href={ "/extensions/" (url_encode(number)) } { (ctx.t("back")) } }
    };
    page(ctx, status, "title.forwarding", body)
}

fn check_tx(ctx: &Ctx, f: &Fields, name: &str, key: &str) -> Markup {
    html! { label.check { input type="checkbox" name=(name) value="on" checked[checked(f, name)]; (tx(ctx, key)) } }
}

async fn forwarding(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
) -> Response {
    let r =
        async { Ok::<_, ApiError>(w.store().forwarding(tenant(&w).await?, &number).await?) }.await;
    match r {
        Ok(fw) => fwd_page(
            &ctx,
            &number,
            StatusCode::OK,
            html! {},
            &fwd_fields(&fw),
            None,
        ),
        Err(e) => fail(&ctx, e),
    }
}

async fn save_forwarding(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    let fw = match fwd_from_form(&ctx, &f) {
        Ok(fw) => fw,
        Err(e) => {
            return fwd_page(
                &ctx,
                &number,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {},
                &f,
                Some(&e),
            );
        }
    };
    let r = async {
        Ok::<_, ApiError>(
            w.store()
                .put_forwarding(tenant(&w).await?, &number, &fw)
                .await?,
        )
    }
    .await;
    match r {
        Ok(fw) => fwd_page(
            &ctx,
            &number,
            StatusCode::OK,
            ok_msg_tx(&ctx, "fwd.saved"),
            &fwd_fields(&fw),
            None,
        ),
        Err(e) if e.code == "invalid" => {
            let fe = FormErr::from_api(&ctx, &e);
            fwd_page(
                &ctx,
                &number,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {},
                &f,
                Some(&fe),
            )
        }
        Err(e) => fail(&ctx, e),
    }
}
