//! The panel's licence page (what is in force, usage against the limits, this node's id, an
//! upload form) and the licence banners every page shows: dev mode, expiry ahead, expired
//! (read-only), free allowance. A child of `panel`, so it uses the panel's context and helpers.

use std::collections::HashMap;

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::{Ctx, Signed, check_write, csrf_field, fmt_time, notice, page};
use crate::Web;
use crate::i18n::{Lang, t};
use crate::license::{LimitKind, Status, Usage};

/// What every page needs to know about the licence (taken once per request).
pub(super) struct Notices {
    dev_mode: bool,
    free: bool,
    status: Status,
    summary: String,
    /// The expired licence's read-only message.
    read_only: Option<String>,
}

impl Notices {
    pub(super) fn of(w: &Web) -> Notices {
        let now = Utc::now();
        let l = w.licensing();
        let ent = l.entitlement();
        Notices {
            dev_mode: l.dev_mode(),
            free: ent.is_free(),
            status: ent.status(now),
            summary: ent.summary(now),
            read_only: ent.check_writable(now).err().map(|e| e.to_string()),
        }
    }
}

/// Banners above every page's content: dev mode, expiry warning or expiry; the free-allowance
/// notice on the dashboard and the licence page.
pub(super) fn banners(n: &Notices, lang: Lang, path: &str) -> Markup {
    let show_free = n.free && (path == "/" || path.starts_with("/license"));
    html! {
        @if n.dev_mode {
            p.error role="alert" id="license-dev" { (t(lang, "lic.dev_banner")) }
        }
        @match n.status {
            Status::ExpiresSoon { days_left } => {
                p.error role="status" id="license-expiring" {
                    (t(lang, "lic.expiring")) " " (days_left) " " (t(lang, "lic.days")) " — " (n.summary)
                }
            }
            Status::Expired { .. } => {
                p.error role="alert" id="license-expired" {
                    (t(lang, "lic.expired")) " (" (n.read_only.as_deref().unwrap_or("")) ")"
                }
            }
            Status::Valid => {}
        }
        @if show_free {
            p.ok role="status" id="license-free" { (t(lang, "lic.free")) " (" (n.summary) ")" }
        }
    }
}

/// Panel writes that stay allowed after expiry (as in the API): installing a licence, hanging up
/// calls, one's own password, administrators and API keys.
fn allowed_when_read_only(path: &str) -> bool {
    ["/license", "/calls/", "/account/", "/admins", "/api-keys"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The refusal of a form that changes configuration after expiry (`check_write` calls it).
pub(super) fn refuse_write(ctx: &Ctx) -> Option<Response> {
    let msg = ctx.license.read_only.as_deref()?;
    if allowed_when_read_only(ctx.path.split('?').next().unwrap_or("")) {
        return None;
    }
    Some(notice(
        ctx,
        StatusCode::FORBIDDEN,
        "title.error",
        &format!("{} ({msg})", ctx.t("err.license")),
    ))
}

fn limit_key(k: LimitKind) -> &'static str {
    match k {
        LimitKind::Extensions => "lic.extensions",
        LimitKind::ConcurrentCalls => "lic.calls",
        LimitKind::Tenants => "lic.tenants",
        LimitKind::Trunks => "lic.trunks",
    }
}

async fn body(w: &Web, ctx: &Ctx, msg: Markup) -> Markup {
    let now = Utc::now();
    let l = w.licensing();
    let ent = l.entitlement();
    let usage = w.license_usage().await.unwrap_or(Usage::default());
    let problem = l.problem();
    html! {
        (msg)
        @if let Some(p) = &problem {
            p.error role="alert" id="license-problem" { (ctx.t("lic.problem")) " " (p.message) }
        }
        table.kv id="license" { tbody {
            tr { th { (ctx.t("lic.node_id")) } td { code id="node-id" { (l.node_id()) } } }
            tr { th { (ctx.t("lic.summary")) } td id="license-summary" { (ent.summary(now)) } }
            @if let Some(v) = ent.license() {
                tr { th { (ctx.t("lic.id")) } td id="license-id" { (v.license.id) } }
                tr { th { (ctx.t("lic.customer")) } td { (v.license.customer) } }
                tr { th { (ctx.t("lic.valid")) } td { (fmt_time(&v.license.valid_from)) " – " (fmt_time(&v.license.valid_until)) " UTC" } }
                tr { th { (ctx.t("lic.status")) } td id="license-status" { (ent.status(now)) } }
                @if v.test_key {
                    tr { th { (ctx.t("lic.key")) } td { (ctx.t("lic.test_key")) } }
                }
            }
            tr { th { (ctx.t("lic.topology")) } td id="license-topology" { (ent.topology()) } }
        } }
        h2 { (ctx.t("lic.limits")) }
        table.kv id="license-limits" { tbody {
            @for k in LimitKind::ALL {
                tr { th { (ctx.t(limit_key(k))) } td data-limit=(k.plural()) { (usage.against(k, &ent)) } }
            }
        } }
        @if ctx.is_admin() {
            h2 { (ctx.t("lic.install")) }
            p.hint { (ctx.t("lic.install_note")) }
            form method="post" action="/license" enctype="multipart/form-data" id="license-upload" {
                (csrf_field(ctx))
                input type="file" name="file";
                textarea name="text" rows="8" cols="70" placeholder="-----BEGIN DENWA LICENSE-----" {}
                button type="submit" { (ctx.t("lic.install")) }
            }
        }
    }
}

pub(super) async fn show(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let b = body(&w, &ctx, html! {}).await;
    page(&ctx, StatusCode::OK, "title.license", b)
}

pub(super) async fn upload(
    State(w): State<Web>,
    Signed(ctx): Signed,
    mut mp: Multipart,
) -> Response {
    let mut fields: HashMap<String, Vec<u8>> = HashMap::new();
    let mut broken = None;
    loop {
        match mp.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or("").to_string();
                match f.bytes().await {
                    Ok(b) => {
                        fields.insert(name, b.to_vec());
                    }
                    Err(e) => {
                        broken = Some(e.to_string());
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    let csrf = fields
        .get("csrf")
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    if let Some(r) = check_write(&ctx, &HashMap::from([("csrf".to_string(), csrf)])) {
        return r;
    }
    let text = match (fields.remove("file"), fields.remove("text")) {
        (Some(f), _) if !f.is_empty() => f,
        (_, Some(t)) => t,
        _ => Vec::new(),
    };
    let refused = |status: StatusCode, why: String| {
        let ctx = &ctx;
        let w = &w;
        async move {
            let msg = html! { p.error role="alert" id="license-refused" { (ctx.t("lic.refused")) " " (why) } };
            page(ctx, status, "title.license", body(w, ctx, msg).await)
        }
    };
    if let Some(e) = broken {
        return refused(StatusCode::BAD_REQUEST, e).await;
    }
    match w.licensing().install(&text, Utc::now()) {
        Ok(v) => {
            let msg = html! { p.ok role="status" id="license-installed" { (ctx.t("lic.installed")) " " (v.license.id) } };
            // The banners above were taken before the install: show the page as it is now.
            let ctx = Ctx {
                license: Notices::of(&w),
                ..ctx
            };
            let b = body(&w, &ctx, msg).await;
            page(&ctx, StatusCode::OK, "title.license", b)
        }
        Err(e) => {
            let e: crate::api::ApiError = e.into();
            refused(e.status, e.message).await
        }
    }
}
