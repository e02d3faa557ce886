//! Panel pages for IVR menus: every menu drawn as a tree (options, nested menus, dial by
//! extension, the timeout path), and a form to add or change one. Validation is the store's; a
//! refusal is shown next to the field it names, with the input kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use apps::ivr::MenuSpec;
use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use store::IvrMenu;

use super::outside::{
    FormErr, check, edit_form, err_at, err_top, localize, num, ok_msg, on, pairs, tenant,
    text_input, val,
};
use super::{Ctx, Signed, check_write, csrf_field, fail, page, url_encode};
use crate::Web;
use crate::api::ApiError;

type Fields = Vec<(String, String)>;

/// Routes of the IVR pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/ivrs", get(ivrs).post(create_ivr))
        .route("/ivrs/new", get(new_ivr))
        .route("/ivrs/{name}/edit", get(edit_ivr).post(save_ivr))
        .route("/ivrs/{name}/delete", post(delete_ivr))
        .route("/conferences", get(rooms).post(create_room))
        .route("/conferences/{number}/delete", post(delete_room))
        .route("/conferences/{number}/mute/{call}", post(mute_member))
        .route("/conferences/{number}/kick/{call}", post(kick_member))
        .route("/fragments/conferences/{number}", get(members_fragment))
        .route("/events/conferences/{number}", get(members_events))
}

// ----- conference rooms -----

async fn rooms_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup, f: &Fields) -> Response {
    let list = async { Ok::<_, ApiError>(w.store().list_confs(tenant(w).await?).await?) }.await;
    let list = match list {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let live = w.control().conferences().await;
    let body = html! {
        (msg)
        @if list.is_empty() { p.empty id="no-rooms" { (ctx.t("conf.none")) } } @else {
            table.rooms id="rooms" {
                thead { tr {
                    th { (ctx.t("conf.number")) } th { (ctx.t("conf.name")) } th { (ctx.t("conf.pin")) }
                    th { (ctx.t("conf.participants")) } th {}
                } }
                tbody { @for r in &list {
                    @let members = crate::conf_live::members(&live, r.tenant_id, &r.number);
                    tr data-room=(r.number) {
                        td { code { (r.number) } }
                        td { (r.spec.name) }
                        td { @if r.spec.pin.is_empty() { (ctx.t("no")) } @else { (ctx.t("yes")) } }
                        td {
                            div.members id={ "members-" (r.number) } data-live={ "/fragments/conferences/" (url_encode(&r.number)) } data-stream={ "/events/conferences/" (url_encode(&r.number)) } {
                                (members_list(ctx, &r.number, &members))
                            }
                        }
                        td { @if ctx.is_admin() {
                            form.inline method="post" action={ "/conferences/" (url_encode(&r.number)) "/delete" } {
                                (csrf_field(ctx))
                                button.danger type="submit" { (ctx.t("delete")) }
                            }
                        } }
                    }
                } }
            }
        }
        @if ctx.is_admin() {
            h2 { (ctx.t("conf.add")) }
            form method="post" action="/conferences" id="room-form" {
                (csrf_field(ctx))
                label { (ctx.t("conf.number")) input type="text" name="number" value=(val(f, "number")) required placeholder="800"; }
                label { (ctx.t("conf.name")) input type="text" name="name" value=(val(f, "name")); }
                label { (ctx.t("conf.pin")) input type="text" name="pin" value="" inputmode="numeric" autocomplete="off"; }
                label { (ctx.t("conf.max")) input type="text" name="max_participants" value=(val(f, "max_participants")); }
                (check(ctx, f, "join_muted", "conf.join_muted"))
                button type="submit" { (ctx.t("save")) }
            }
        }
    };
    page(ctx, status, "title.conferences", body)
}

/// The participants of one room (when each joined, muted or not) with mute and drop buttons
/// (administrators): the part of the rooms page pushed to the panel's script on every change
/// (`/events/conferences/N`; reloaded every two seconds where no stream can be had).
fn members_list(ctx: &Ctx, number: &str, members: &[engine::control::ConfMember]) -> Markup {
    let base = format!("/conferences/{}", url_encode(number));
    html! {
        @if members.is_empty() { span.empty { (ctx.t("conf.empty")) } }
        ul { @for m in members {
            li data-call=(m.call) data-muted=(m.muted) {
                span.caller { (m.caller) } @if !m.caller_name.is_empty() { " (" (m.caller_name) ")" }
                " " span.joined data-joined=(m.joined_at_s) { (ctx.t("conf.joined")) " " (joined_at(m.joined_at_s)) }
                @if m.muted { " " span.muted { (ctx.t("conf.is_muted")) } }
                @if ctx.is_admin() {
                    " "
                    form.inline method="post" action={ (base) "/mute/" (m.call) } {
                        (csrf_field(ctx))
                        input type="hidden" name="muted" value=(if m.muted { "false" } else { "true" });
                        button.mute type="submit" {
                            @if m.muted { (ctx.t("conf.unmute")) } @else { (ctx.t("conf.mute")) }
                        }
                    }
                    form.inline method="post" action={ (base) "/kick/" (m.call) } {
                        (csrf_field(ctx))
                        button.kick.danger type="submit" { (ctx.t("conf.kick")) }
                    }
                }
            }
        } }
    }
}

async fn members_fragment(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
) -> Response {
    let t = match tenant(&w).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let live = w.control().conferences().await;
    let members = crate::conf_live::members(&live, t, &number);
    members_list(&ctx, &number, &members).into_response()
}

/// When a participant joined, `HH:MM:SS UTC` (`-` while it is still entering the PIN).
fn joined_at(unix_s: u64) -> String {
    i64::try_from(unix_s)
        .ok()
        .filter(|s| *s > 0)
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| "-".into(), |t| t.format("%H:%M:%S UTC").to_string())
}

/// The room's participant list pushed as server-sent events (see [`crate::conf_live::events`]).
async fn members_events(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let t = tenant(&w).await?;
    let room = number.clone();
    Ok(crate::conf_live::events(&w, t, number, move |m| {
        members_list(&ctx, &room, m).into_string()
    }))
}

async fn rooms(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    rooms_view(&w, &ctx, StatusCode::OK, html! {}, &Vec::new()).await
}

async fn create_room(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<Fields>) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    let d = apps::conf::RoomSpec::default();
    let max = match num(&f, "max_participants", d.max_participants) {
        Ok(m) => m,
        Err(e) => {
            let e = localize(&ctx, e);
            let msg =
                html! { p.error role="alert" id="form-error" data-field=(e.field) { (e.msg) } };
            return rooms_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, msg, &f).await;
        }
    };
    let spec = apps::conf::RoomSpec {
        name: val(&f, "name").trim().to_string(),
        pin: val(&f, "pin").trim().to_string(),
        max_participants: max,
        join_muted: super::outside::checked(&f, "join_muted"),
        ..d
    };
    let res = async {
        Ok::<_, ApiError>(
            w.store()
                .put_conf(tenant(&w).await?, val(&f, "number").trim(), &spec, true)
                .await?,
        )
    }
    .await;
    match res {
        Ok(_) => {
            rooms_view(
                &w,
                &ctx,
                StatusCode::CREATED,
                ok_msg(&ctx, "conf.created"),
                &Vec::new(),
            )
            .await
        }
        Err(e) if e.code == "invalid" || e.code == "conflict" => {
            let fe = FormErr::from_api(&ctx, &e);
            let msg =
                html! { p.error role="alert" id="form-error" data-field=(fe.field) { (fe.msg) } };
            rooms_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, msg, &f).await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn delete_room(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res =
        async { Ok::<_, ApiError>(w.store().delete_conf(tenant(&w).await?, &number).await?) }.await;
    match res {
        Ok(()) => {
            rooms_view(
                &w,
                &ctx,
                StatusCode::OK,
                ok_msg(&ctx, "conf.deleted"),
                &Vec::new(),
            )
            .await
        }
        Err(e) if e.code == "invalid" || e.code == "not_found" => {
            let msg =
                html! { p.error role="alert" id="form-error" { (super::err_text(&ctx, &e)) } };
            rooms_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, msg, &Vec::new()).await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn mute_member(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, call)): Path<(String, u64)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let muted = f.get("muted").is_some_and(|m| m == "true");
    let done = match tenant(&w).await {
        Ok(t) => crate::conf_live::mute(&w, t, &number, call, muted).await,
        Err(e) => return fail(&ctx, e),
    };
    let msg = if done {
        ok_msg(&ctx, if muted { "conf.muted" } else { "conf.unmuted" })
    } else {
        html! { p.error role="alert" id="form-error" { (ctx.t("conf.gone")) } }
    };
    rooms_view(&w, &ctx, StatusCode::OK, msg, &Vec::new()).await
}

async fn kick_member(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, call)): Path<(String, u64)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let done = match tenant(&w).await {
        Ok(t) => crate::conf_live::kick(&w, t, &number, call).await,
        Err(e) => return fail(&ctx, e),
    };
    let msg = if done {
        ok_msg(&ctx, "conf.kicked")
    } else {
        html! { p.error role="alert" id="form-error" { (ctx.t("conf.gone")) } }
    };
    rooms_view(&w, &ctx, StatusCode::OK, msg, &Vec::new()).await
}

fn fields(name: &str, number: &str, m: &MenuSpec) -> Fields {
    let options: Vec<String> = m.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs(&[
        ("name", name.to_string()),
        ("number", number.to_string()),
        ("greeting", m.greeting.clone()),
        ("options", options.join("\n")),
        ("dial_by_extension", on(m.dial_by_extension)),
        ("timeout_s", m.timeout_s.to_string()),
        ("digit_timeout_s", m.digit_timeout_s.to_string()),
        ("retries", m.retries.to_string()),
        ("fallback", m.fallback.clone()),
        ("announce_transfer", on(m.announce_transfer)),
        ("description", m.description.clone()),
        ("cos", m.cos.clone()),
    ])
}

fn from_form(ctx: &Ctx, f: &Fields) -> Result<MenuSpec, FormErr> {
    let d = MenuSpec::default();
    let mut options = BTreeMap::new();
    for line in val(f, "options")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let parsed = line.split_once('=').and_then(|(k, v)| {
            let mut c = k.trim().chars();
            match (c.next(), c.next()) {
                (Some(k), None) => Some((k, v.trim().to_string())),
                _ => None,
            }
        });
        let Some((k, v)) = parsed else {
            return Err(FormErr::new(
                "options",
                format!("{}: {line}", ctx.t("ivr.option_syntax")),
            ));
        };
        options.insert(k, v);
    }
    Ok(MenuSpec {
        description: val(f, "description").trim().to_string(),
        greeting: val(f, "greeting").trim().to_string(),
        options,
        dial_by_extension: super::outside::checked(f, "dial_by_extension"),
        timeout_s: num(f, "timeout_s", d.timeout_s).map_err(|e| localize(ctx, e))?,
        digit_timeout_s: num(f, "digit_timeout_s", d.digit_timeout_s)
            .map_err(|e| localize(ctx, e))?,
        retries: num(f, "retries", d.retries).map_err(|e| localize(ctx, e))?,
        fallback: match val(f, "fallback").trim() {
            "" => d.fallback,
            s => s.to_string(),
        },
        announce_transfer: super::outside::checked(f, "announce_transfer"),
        cos: val(f, "cos").trim().to_string(),
    })
}

fn form_page(
    ctx: &Ctx,
    status: StatusCode,
    f: &Fields,
    err: Option<&FormErr>,
    editing: bool,
) -> Response {
    let e = err;
    let action = if editing {
        format!("/ivrs/{}/edit", url_encode(val(f, "name")))
    } else {
        "/ivrs".to_string()
    };
    let body = html! {
        (err_top(e))
        form method="post" action=(action) id="ivr-form" {
            (csrf_field(ctx))
            label { (ctx.t("ivr.name")) input type="text" name="name" value=(val(f, "name")) required readonly[editing] placeholder="main"; (err_at(e, "name")) }
            (text_input(ctx, f, e, "number", "ivr.number"))
            label { (ctx.t("ivr.greeting")) input type="text" name="greeting" value=(val(f, "greeting")) required placeholder="main-greeting"; (err_at(e, "greeting")) }
            label { (ctx.t("ivr.options"))
                textarea name="options" rows="6" placeholder="1=ext:1001\n2=ivr:sales\n0=hangup" { (val(f, "options")) }
                (err_at(e, "options"))
            }
            (check(ctx, f, "dial_by_extension", "ivr.dial_by_extension"))
            (text_input(ctx, f, e, "timeout_s", "ivr.timeout"))
            (text_input(ctx, f, e, "digit_timeout_s", "ivr.digit_timeout"))
            (text_input(ctx, f, e, "retries", "ivr.retries"))
            (text_input(ctx, f, e, "fallback", "ivr.fallback"))
            (check(ctx, f, "announce_transfer", "ivr.announce_transfer"))
            (text_input(ctx, f, e, "description", "ivr.description"))
            (text_input(ctx, f, e, "cos", "ivr.cos"))
            button type="submit" { (ctx.t("save")) }
        }
        p.hint { (ctx.t("ivr.hint")) }
        p.hint { (ctx.t("ivr.hint_more")) }
        @if editing {
            form.inline method="post" action={ "/ivrs/" (url_encode(val(f, "name"))) "/delete" } {
                (csrf_field(ctx))
                button.danger type="submit" id="delete-ivr" { (ctx.t("delete")) }
            }
        }
        p { a href="/ivrs" { (ctx.t("back")) } }
    };
    page(
        ctx,
        status,
        if editing {
            "title.ivr"
        } else {
            "title.ivr_new"
        },
        body,
    )
}

/// One menu as a nested list: its options, the menus they lead to (each once), dial by
/// extension and the timeout path.
fn tree(
    ctx: &Ctx,
    m: &IvrMenu,
    menus: &BTreeMap<String, IvrMenu>,
    seen: &mut HashSet<String>,
) -> Markup {
    seen.insert(m.name.clone());
    html! {
        li.menu data-ivr=(m.name) {
            a href={ "/ivrs/" (url_encode(&m.name)) "/edit" } { code { "ivr:" (m.name) } }
            @if !m.number.is_empty() { " (" (ctx.t("ivr.number")) " " (m.number) ")" }
            " — " (ctx.t("ivr.greeting")) " " code { (m.spec.greeting) }
            ul {
                @for (k, dest) in &m.spec.options {
                    li.option data-digit=(k) {
                        kbd { (k) } " → " code { (dest) }
                        @if let Some(sub) = dest.strip_prefix("ivr:").and_then(|n| menus.get(n)) {
                            @if !seen.contains(&sub.name) {
                                ul { (tree(ctx, sub, menus, seen)) }
                            }
                        }
                    }
                }
                @if m.spec.dial_by_extension {
                    li.option { (ctx.t("ivr.dial_by_extension")) " → " code { "ext:N" } }
                }
                li.option.timeout {
                    (ctx.t("ivr.no_choice")) " (" (m.spec.timeout_s) " s × " (m.spec.retries + 1) ") → " code { (m.spec.fallback) }
                }
            }
        }
    }
}

async fn list_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let list = async { Ok::<_, ApiError>(w.store().list_ivrs(tenant(w).await?).await?) }.await;
    let list = match list {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let menus: BTreeMap<String, IvrMenu> =
        list.iter().map(|m| (m.name.clone(), m.clone())).collect();
    // Roots: menus no other menu leads to (a cycle's members are roots too).
    let reached: HashSet<&str> = list
        .iter()
        .flat_map(|m| {
            m.spec
                .options
                .values()
                .filter_map(|d| d.strip_prefix("ivr:"))
                .filter(move |n| *n != m.name)
        })
        .collect();
    let mut seen = HashSet::new();
    let body = html! {
        (msg)
        @if list.is_empty() { p.empty id="no-ivrs" { (ctx.t("ivr.none")) } } @else {
            ul.ivr-tree id="ivr-tree" {
                @for m in list.iter().filter(|m| !reached.contains(m.name.as_str())) {
                    (tree(ctx, m, &menus, &mut seen))
                }
                @for m in &list {
                    @if !seen.contains(&m.name) { (tree(ctx, m, &menus, &mut seen)) }
                }
            }
        }
        @if ctx.is_admin() { p { a.button href="/ivrs/new" id="add-ivr" { (ctx.t("ivr.add")) } } }
    };
    page(ctx, status, "title.ivrs", body)
}

async fn ivrs(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    list_view(&w, &ctx, StatusCode::OK, html! {}).await
}

async fn new_ivr(Signed(ctx): Signed) -> Response {
    let f = fields("", "", &MenuSpec::default());
    form_page(&ctx, StatusCode::OK, &f, None, false)
}

async fn put(w: &Web, ctx: &Ctx, f: &Fields, editing: bool) -> Response {
    let spec = match from_form(ctx, f) {
        Ok(s) => s,
        Err(e) => return form_page(ctx, StatusCode::UNPROCESSABLE_ENTITY, f, Some(&e), editing),
    };
    let res = async {
        Ok::<_, ApiError>(
            w.store()
                .put_ivr(
                    tenant(w).await?,
                    val(f, "name").trim(),
                    val(f, "number").trim(),
                    &spec,
                    !editing,
                )
                .await?,
        )
    }
    .await;
    match res {
        Ok(_) => {
            let status = if editing {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let key = if editing { "saved" } else { "ivr.created" };
            list_view(w, ctx, status, ok_msg(ctx, key)).await
        }
        Err(e) if e.code == "invalid" || e.code == "conflict" => {
            let mut fe = FormErr::from_api(ctx, &e);
            if e.code == "conflict" {
                fe.field = "name".into();
            }
            form_page(ctx, StatusCode::UNPROCESSABLE_ENTITY, f, Some(&fe), editing)
        }
        Err(e) => fail(ctx, e),
    }
}

async fn create_ivr(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<Fields>) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    put(&w, &ctx, &f, false).await
}

async fn find(w: &Web, name: &str) -> Result<IvrMenu, ApiError> {
    w.store()
        .ivr(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("IVR menu {name} not found")))
}

async fn edit_ivr(State(w): State<Web>, Signed(ctx): Signed, Path(name): Path<String>) -> Response {
    match find(&w, &name).await {
        Ok(m) => {
            let f = fields(&m.name, &m.number, &m.spec);
            form_page(&ctx, StatusCode::OK, &f, None, true)
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn save_ivr(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(mut f): Form<Fields>,
) -> Response {
    let m = match find(&w, &name).await {
        Ok(m) => m,
        Err(e) => return fail(&ctx, e),
    };
    if let Some(r) = edit_form(&ctx, &mut f, "name", &m.name) {
        return r;
    }
    put(&w, &ctx, &f, true).await
}

async fn delete_ivr(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = match find(&w, &name).await {
        Ok(m) => w
            .store()
            .delete_ivr(m.tenant_id, &m.name)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => list_view(&w, &ctx, StatusCode::OK, ok_msg(&ctx, "ivr.deleted")).await,
        Err(e) if e.code == "invalid" => {
            let msg =
                html! { p.error role="alert" id="form-error" { (super::err_text(&ctx, &e)) } };
            list_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, msg).await
        }
        Err(e) => fail(&ctx, e),
    }
}
