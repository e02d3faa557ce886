//! Panel pages for voicemail: every extension's mailbox with its counts, and one mailbox's page
//! — its messages (play in the browser, download, mark read, delete), its settings, its PIN (set
//! or removed, never shown) and the state of its e-mails. Validation is the store's.

use std::collections::HashMap;

use apps::vmail::{BoxSpec, Folder};
use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::outside::{FormErr, check, checked, localize, num, ok_msg, pairs, tenant, val};
use super::{Ctx, Signed, check_write, csrf_field, fail, page, url_encode};
use crate::Web;
use crate::api::ApiError;

type Fields = Vec<(String, String)>;

/// Routes of the voicemail pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/voicemail", get(boxes))
        .route("/voicemail/{number}", get(one_box).post(save_box))
        .route("/voicemail/{number}/pin", post(save_pin))
        .route(
            "/voicemail/{number}/messages/{id}/{action}",
            post(message_action),
        )
        .route("/voicemail/{number}/messages/{id}/audio", get(audio))
}

async fn boxes(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let res = async {
        let t = tenant(&w).await?;
        let exts = w
            .store()
            .list_extensions(
                t,
                None,
                store::Page {
                    limit: 10_000,
                    offset: 0,
                },
            )
            .await?;
        let counts: HashMap<(i64, String), (u64, u64)> =
            w.store().all_vm_counts().await?.into_iter().collect();
        let boxes: HashMap<String, store::VmBox> = w
            .store()
            .all_vm_boxes()
            .await?
            .into_iter()
            .filter(|b| b.tenant_id == t)
            .map(|b| (b.number.clone(), b))
            .collect();
        Ok::<_, ApiError>((t, exts, counts, boxes))
    }
    .await;
    let (t, exts, counts, boxes) = match res {
        Ok(x) => x,
        Err(e) => return fail(&ctx, e),
    };
    let body = html! {
        @if exts.is_empty() { p.empty id="no-boxes" { (ctx.t("vm.none")) } } @else {
            table id="boxes" {
                thead { tr {
                    th { (ctx.t("vm.box")) } th { (ctx.t("vm.new")) } th { (ctx.t("vm.saved")) }
                    th { (ctx.t("vm.pin")) } th { (ctx.t("vm.email")) }
                } }
                tbody { @for e in &exts {
                    @let (new, saved) = counts.get(&(t, e.number.clone())).copied().unwrap_or((0, 0));
                    @let b = boxes.get(&e.number);
                    tr data-box=(e.number) {
                        td { a href={ "/voicemail/" (url_encode(&e.number)) } { (e.number) } " " (e.display_name) }
                        td.new { (new) } td { (saved) }
                        td { @if b.is_some_and(|b| b.has_pin) { (ctx.t("yes")) } @else { (ctx.t("vm.no_pin")) } }
                        td { (b.map(|b| b.spec.email.as_str()).unwrap_or("")) }
                    }
                } }
            }
        }
    };
    page(&ctx, StatusCode::OK, "title.voicemail", body)
}

fn settings_fields(s: &BoxSpec) -> Fields {
    let on = |b: bool| if b { "on".to_string() } else { String::new() };
    pairs(&[
        ("enabled", on(s.enabled)),
        ("email", s.email.clone()),
        ("attach", on(s.attach)),
        ("delete_after_mail", on(s.delete_after_mail)),
        ("max_message_s", s.max_message_s.to_string()),
        ("skip_pin_own_phone", on(s.skip_pin_own_phone)),
    ])
}

async fn box_view(
    w: &Web,
    ctx: &Ctx,
    number: &str,
    status: StatusCode,
    msg: Markup,
    form: Option<&Fields>,
) -> Response {
    let res = async {
        let t = tenant(w).await?;
        let b = w
            .store()
            .vm_box(t, number)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("extension {number} not found")))?;
        let msgs = w.store().list_vm_messages(t, number).await?;
        let mails = w.store().vm_mail_status(t, number).await?;
        Ok::<_, ApiError>((t, b, msgs, mails))
    }
    .await;
    let (t, b, msgs, mails) = match res {
        Ok(x) => x,
        Err(e) => return fail(ctx, e),
    };
    let f = form.cloned().unwrap_or_else(|| settings_fields(&b.spec));
    let base = format!("/voicemail/{}", url_encode(number));
    let body = html! {
        (msg)
        h2 { (ctx.t("vm.messages")) }
        @if msgs.is_empty() { p.empty id="no-messages" { (ctx.t("vm.no_messages")) } } @else {
            table id="messages" {
                thead { tr {
                    th { (ctx.t("vm.folder")) } th { (ctx.t("vm.left_at")) } th { (ctx.t("vm.caller")) }
                    th { (ctx.t("vm.seconds")) } th {} th {}
                } }
                tbody { @for m in &msgs {
                    @let audio = format!("{base}/messages/{}/audio", m.id);
                    tr data-message=(m.id) data-folder=(m.folder) {
                        td { @if m.folder == "new" { strong { (ctx.t("vm.new")) } } @else { (ctx.t("vm.saved")) } }
                        td { (m.received_at.format("%Y-%m-%d %H:%M:%S")) " UTC" }
                        td { (m.caller) @if !m.caller_name.is_empty() { " (" (m.caller_name) ")" } }
                        td { (m.duration_ms / 1000) }
                        td {
                            audio controls preload="none" src=(audio) {}
                            " " a href={ (audio) "?download=1" } { (ctx.t("vm.download")) }
                        }
                        td { @if ctx.is_admin() {
                            @if m.folder == "new" {
                                form.inline method="post" action={ (base) "/messages/" (m.id) "/read" } {
                                    (csrf_field(ctx)) button type="submit" { (ctx.t("vm.mark_read")) }
                                }
                            }
                            form.inline method="post" action={ (base) "/messages/" (m.id) "/delete" } {
                                (csrf_field(ctx)) button.danger type="submit" { (ctx.t("delete")) }
                            }
                        } }
                    }
                } }
            }
        }
        @if !mails.is_empty() {
            h2 { (ctx.t("vm.mail")) }
            ul id="mails" { @for m in mails.iter().take(10) {
                li data-status=(m.status) { (m.email) ": " (m.status) " (" (m.attempts) ")"
                    @if !m.last_error.is_empty() { " — " (m.last_error) } }
            } }
        }
        (super::vm_greetings::section(w, ctx, t, &b))
        h2 { (ctx.t("vm.settings")) }
        p id="pin-state" { (ctx.t("vm.pin")) ": " @if b.has_pin { (ctx.t("yes")) } @else { (ctx.t("vm.no_pin_long")) } }
        @if ctx.is_admin() {
            form method="post" action=(base) id="box-form" {
                (csrf_field(ctx))
                (check(ctx, &f, "enabled", "vm.enabled"))
                label { (ctx.t("vm.email")) input type="email" name="email" value=(val(&f, "email")); }
                (check(ctx, &f, "attach", "vm.attach"))
                (check(ctx, &f, "delete_after_mail", "vm.delete_after_mail"))
                label { (ctx.t("vm.max_message_s")) input type="text" name="max_message_s" value=(val(&f, "max_message_s")); }
                (check(ctx, &f, "skip_pin_own_phone", "vm.skip_pin"))
                button type="submit" { (ctx.t("save")) }
            }
            form method="post" action={ (base) "/pin" } id="pin-form" {
                (csrf_field(ctx))
                label { (ctx.t("vm.new_pin")) input type="password" name="pin" inputmode="numeric" autocomplete="off"; }
                button type="submit" { (ctx.t("save")) }
                " " button type="submit" name="clear" value="on" { (ctx.t("vm.clear_pin")) }
            }
        }
    };
    page(ctx, status, "title.voicemail", body)
}

async fn one_box(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let msg = super::vm_greetings::outcome(&ctx, &q);
    box_view(&w, &ctx, &number, StatusCode::OK, msg, None).await
}

fn refused(ctx: &Ctx, e: &ApiError) -> Markup {
    let fe = FormErr::from_api(ctx, e);
    html! { p.error role="alert" id="form-error" data-field=(fe.field) { (fe.msg) } }
}

async fn save_box(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    let max = match num(&f, "max_message_s", 180u32) {
        Ok(m) => m,
        Err(e) => {
            let e = localize(&ctx, e);
            let msg =
                html! { p.error role="alert" id="form-error" data-field=(e.field) { (e.msg) } };
            return box_view(
                &w,
                &ctx,
                &number,
                StatusCode::UNPROCESSABLE_ENTITY,
                msg,
                Some(&f),
            )
            .await;
        }
    };
    let res = async {
        let t = tenant(&w).await?;
        let old = w
            .store()
            .vm_box(t, &number)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("extension {number} not found")))?;
        let spec = BoxSpec {
            enabled: checked(&f, "enabled"),
            email: val(&f, "email").trim().to_string(),
            attach: checked(&f, "attach"),
            delete_after_mail: checked(&f, "delete_after_mail"),
            max_message_s: max,
            skip_pin_own_phone: checked(&f, "skip_pin_own_phone"),
            ..old.spec
        };
        Ok::<_, ApiError>(w.store().put_vm_box(t, &number, &spec).await?)
    }
    .await;
    match res {
        Ok(_) => {
            box_view(
                &w,
                &ctx,
                &number,
                StatusCode::OK,
                ok_msg(&ctx, "vm.saved_settings"),
                None,
            )
            .await
        }
        Err(e) if e.code == "invalid" => {
            box_view(
                &w,
                &ctx,
                &number,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused(&ctx, &e),
                Some(&f),
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn save_pin(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let pin = if f.get("clear").is_some_and(|v| v == "on") {
        None
    } else {
        f.get("pin").map(|p| p.trim().to_string())
    };
    let res = async {
        let t = tenant(&w).await?;
        Ok::<_, ApiError>(w.store().set_vm_pin(t, &number, pin.as_deref()).await?)
    }
    .await;
    match res {
        Ok(()) => {
            let key = if pin.is_some() {
                "vm.pin_set"
            } else {
                "vm.pin_cleared"
            };
            box_view(&w, &ctx, &number, StatusCode::OK, ok_msg(&ctx, key), None).await
        }
        Err(e) if e.code == "invalid" => {
            box_view(
                &w,
                &ctx,
                &number,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused(&ctx, &e),
                None,
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn message_of(w: &Web, number: &str, id: i64) -> Result<(i64, store::VmMessage), ApiError> {
    let t = tenant(w).await?;
    match w.store().vm_message(t, id).await? {
        Some(m) if m.mailbox == number => Ok((t, m)),
        _ => Err(ApiError::not_found(format!(
            "no message {id} in mailbox {number}"
        ))),
    }
}

/// `read` (to the saved folder) or `delete` (with its file) a message.
async fn message_action(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, id, action)): Path<(String, i64, String)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = async {
        let (t, _) = message_of(&w, &number, id).await?;
        match action.as_str() {
            "read" => {
                w.store().set_vm_folder(t, id, Folder::Saved).await?;
                Ok::<_, ApiError>(None)
            }
            "delete" => Ok(Some(w.store().delete_vm_message(t, id).await?)),
            _ => Err(ApiError::not_found("no such action")),
        }
    }
    .await;
    match res {
        Ok(None) => box_view(&w, &ctx, &number, StatusCode::OK, html! {}, None).await,
        Ok(Some(m)) => {
            let file = w.info().data_dir.join(&m.path);
            if let Err(e) = tokio::fs::remove_file(&file).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %file.display(), error = %e, "voicemail file not removed");
            }
            box_view(
                &w,
                &ctx,
                &number,
                StatusCode::OK,
                ok_msg(&ctx, "vm.deleted"),
                None,
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn audio(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path((number, id)): Path<(String, i64)>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    match message_of(&w, &number, id).await {
        Ok((_, m)) => {
            let download = crate::api::prompts::is_yes(q.get("download").map(String::as_str));
            let name = format!("voicemail-{number}-{id}.wav");
            match crate::api::prompts::wav_response(
                &w.info().data_dir.join(&m.path),
                &name,
                download,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => fail(&ctx, e),
            }
        }
        Err(e) => fail(&ctx, e),
    }
}
