//! Panel page for page groups (list, add, change members, remove). Validation is the store's;
//! a refusal is shown next to the field it names, with the input kept.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::page::{AutoAnswer, PageGroup};
use maud::{Markup, html};

use super::outside::{FormErr, checked, err_at, err_top, localize, num, on, pairs, tenant, val};
use super::{Ctx, Signed, check_write, csrf_field, fail, layout, table_text, url_encode};
use crate::Web;
use crate::api::ApiError;

type Fields = Vec<(String, String)>;

/// This page's texts (the menu entry and title are in `i18n`).
const TEXT: &[(&str, &str, &str)] = &[
    (
        "pg.none",
        "No page groups yet.",
        "一斉放送グループはまだありません。",
    ),
    ("pg.name", "Name", "名前"),
    ("pg.number", "Number", "番号"),
    (
        "pg.members",
        "Member extensions (one per line)",
        "メンバー内線(1行に1つ)",
    ),
    ("pg.members_short", "Members", "メンバー"),
    (
        "pg.barge",
        "Page members in a call or on DND too",
        "通話中・着信拒否中のメンバーにも放送する",
    ),
    (
        "pg.answer_s",
        "Seconds a phone has to answer by itself",
        "電話機が自動応答するまでの待ち時間(秒)",
    ),
    ("pg.max_s", "Longest page (seconds)", "最長放送時間(秒)"),
    ("pg.auto_answer", "Auto-answer headers", "自動応答ヘッダー"),
    ("pg.add", "Add a page group", "一斉放送グループを追加"),
    ("pg.edit", "Change", "変更"),
    (
        "pg.created",
        "Page group added.",
        "一斉放送グループを追加しました。",
    ),
    (
        "pg.saved",
        "Page group saved.",
        "一斉放送グループを保存しました。",
    ),
    (
        "pg.deleted",
        "Page group removed.",
        "一斉放送グループを削除しました。",
    ),
    (
        "pg.hint",
        "Dialling the group's number pages every registered phone of every member at once: the phones answer by themselves and hear the caller, nobody hears them. Intercom to one extension: *80 + extension.",
        "グループの番号にかけると、全メンバーの登録済み電話機を一斉に呼び出します。電話機は自動応答して発信者の声を流し、電話機側の音声は誰にも聞こえません。1つの内線へのインターホン: *80 + 内線番号。",
    ),
];

fn tx(ctx: &Ctx, key: &str) -> &'static str {
    table_text(TEXT, ctx.lang, key)
}

/// Routes of the page group pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/pages", get(list).post(create))
        .route("/pages/{name}/edit", get(edit).post(save))
        .route("/pages/{name}/delete", post(delete))
}

fn page(ctx: &Ctx, status: StatusCode, body: Markup) -> Response {
    (status, layout(ctx, ctx.t("title.pages"), body)).into_response()
}

fn ok_msg(ctx: &Ctx, key: &str) -> Markup {
    html! { p.ok role="status" id="form-ok" { (tx(ctx, key)) } }
}

fn fields(number: &str, g: &PageGroup) -> Fields {
    pairs(&[
        ("name", g.name.clone()),
        ("number", number.to_string()),
        ("members", g.members.join("\n")),
        ("barge", on(g.barge)),
        ("answer_s", g.answer_s.to_string()),
        ("max_s", g.max_s.to_string()),
        ("auto_answer", g.auto_answer.as_str().to_string()),
    ])
}

fn from_form(ctx: &Ctx, f: &Fields) -> Result<PageGroup, FormErr> {
    let d = PageGroup::default();
    Ok(PageGroup {
        name: val(f, "name").trim().to_string(),
        members: val(f, "members")
            .split(['\n', ',', ' '])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        barge: checked(f, "barge"),
        answer_s: num(f, "answer_s", d.answer_s).map_err(|e| localize(ctx, e))?,
        max_s: num(f, "max_s", d.max_s).map_err(|e| localize(ctx, e))?,
        auto_answer: val(f, "auto_answer")
            .parse()
            .map_err(|e: String| FormErr::new("auto_answer", e))?,
    })
}

fn form(ctx: &Ctx, f: &Fields, e: Option<&FormErr>, editing: bool) -> Markup {
    let action = if editing {
        format!("/pages/{}/edit", url_encode(val(f, "name")))
    } else {
        "/pages".to_string()
    };
    let text = |name: &str, key: &str| html! { label { (tx(ctx, key)) input type="text" name=(name) value=(val(f, name)); (err_at(e, name)) } };
    html! {
        form method="post" action=(action) id="page-form" {
            (csrf_field(ctx))
            label { (tx(ctx, "pg.name")) input type="text" name="name" value=(val(f, "name")) required readonly[editing] placeholder="all"; (err_at(e, "name")) }
            (text("number", "pg.number"))
            label { (tx(ctx, "pg.members"))
                textarea name="members" rows="5" placeholder="1001\n1002" { (val(f, "members")) }
                (err_at(e, "members"))
            }
            label { input type="checkbox" name="barge" value="on" checked[checked(f, "barge")]; (tx(ctx, "pg.barge")) }
            (text("answer_s", "pg.answer_s"))
            (text("max_s", "pg.max_s"))
            label { (tx(ctx, "pg.auto_answer"))
                select name="auto_answer" { @for a in AutoAnswer::ALL {
                    option value=(a.as_str()) selected[val(f, "auto_answer") == a.as_str()] { (a.as_str()) }
                } }
                (err_at(e, "auto_answer"))
            }
            button type="submit" { (ctx.t("save")) }
        }
        p.hint { (tx(ctx, "pg.hint")) }
    }
}

async fn view(
    w: &Web,
    ctx: &Ctx,
    status: StatusCode,
    msg: Markup,
    f: &Fields,
    err: Option<&FormErr>,
) -> Response {
    let list =
        async { Ok::<_, ApiError>(w.store().list_page_groups(tenant(w).await?).await?) }.await;
    let list = match list {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let defaults;
    let f = if f.is_empty() {
        defaults = fields("", &PageGroup::default());
        &defaults
    } else {
        f
    };
    let body = html! {
        (msg)
        (err_top(err))
        @if list.is_empty() { p.empty id="no-pages" { (tx(ctx, "pg.none")) } } @else {
            table id="pages" {
                thead { tr {
                    th { (tx(ctx, "pg.name")) } th { (tx(ctx, "pg.number")) }
                    th { (tx(ctx, "pg.members_short")) } th { (tx(ctx, "pg.max_s")) } th {}
                } }
                tbody { @for r in &list {
                    tr data-page=(r.name) {
                        td { code { "page:" (r.name) } }
                        td { (r.number) }
                        td { (r.group.members.join(", ")) }
                        td { (r.group.max_s) }
                        td { @if ctx.is_admin() {
                            a href={ "/pages/" (url_encode(&r.name)) "/edit" } { (tx(ctx, "pg.edit")) }
                            " "
                            form.inline method="post" action={ "/pages/" (url_encode(&r.name)) "/delete" } {
                                (csrf_field(ctx))
                                button.danger type="submit" { (ctx.t("delete")) }
                            }
                        } }
                    }
                } }
            }
        }
        @if ctx.is_admin() {
            h2 { (tx(ctx, "pg.add")) }
            (form(ctx, f, err, false))
        }
    };
    page(ctx, status, body)
}

async fn list(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    view(&w, &ctx, StatusCode::OK, html! {}, &Vec::new(), None).await
}

/// Saves a group from the form; `create` for a new one.
async fn put(w: &Web, ctx: &Ctx, f: &Fields, create: bool) -> Result<(), FormErr> {
    let g = from_form(ctx, f)?;
    let res = async {
        let t = tenant(w).await?;
        let number = val(f, "number").trim().to_string();
        Ok::<_, ApiError>(w.store().save_page_group(t, &number, &g, create).await?)
    }
    .await;
    res.map(|_| ()).map_err(|e| FormErr::from_api(ctx, &e))
}

async fn create(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<Fields>) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    match put(&w, &ctx, &f, true).await {
        Ok(()) => {
            let msg = ok_msg(&ctx, "pg.created");
            view(&w, &ctx, StatusCode::CREATED, msg, &Vec::new(), None).await
        }
        Err(e) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            view(&w, &ctx, status, html! {}, &f, Some(&e)).await
        }
    }
}

async fn edit(State(w): State<Web>, Signed(ctx): Signed, Path(name): Path<String>) -> Response {
    let r =
        async { Ok::<_, ApiError>(w.store().page_group(tenant(&w).await?, &name).await?) }.await;
    match r {
        Ok(Some(r)) => {
            let f = fields(&r.number, &r.group);
            page(&ctx, StatusCode::OK, form(&ctx, &f, None, ctx.is_admin()))
        }
        Ok(None) => fail(&ctx, ApiError::not_found(format!("page group {name}"))),
        Err(e) => fail(&ctx, e),
    }
}

async fn save(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(mut f): Form<Fields>,
) -> Response {
    if let Some(r) = super::outside::edit_form(&ctx, &mut f, "name", &name) {
        return r;
    }
    match put(&w, &ctx, &f, false).await {
        Ok(()) => {
            let msg = ok_msg(&ctx, "pg.saved");
            view(&w, &ctx, StatusCode::OK, msg, &Vec::new(), None).await
        }
        Err(e) => {
            let body = html! { (err_top(Some(&e))) (form(&ctx, &f, Some(&e), true)) };
            page(&ctx, StatusCode::UNPROCESSABLE_ENTITY, body)
        }
    }
}

async fn delete(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        let t = tenant(&w).await?;
        Ok::<_, ApiError>(w.store().delete_page_group(t, &name).await?)
    }
    .await;
    match res {
        Ok(()) => {
            let msg = ok_msg(&ctx, "pg.deleted");
            view(&w, &ctx, StatusCode::OK, msg, &Vec::new(), None).await
        }
        Err(e) if e.code == "not_found" => {
            let msg =
                html! { p.error role="alert" id="form-error" { (super::err_text(&ctx, &e)) } };
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            view(&w, &ctx, status, msg, &Vec::new(), None).await
        }
        Err(e) => fail(&ctx, e),
    }
}
