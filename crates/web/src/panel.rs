//! The control panel: server-rendered pages (maud), plain forms with CSRF tokens, a little
//! JavaScript only for the live parts (it polls HTML fragments; without it pages are static).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Multipart, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, extract::DefaultBodyLimit};
use chrono::Utc;
use engine::control::{CallState, CallSummary};
use engine::policy;
use maud::{DOCTYPE, Markup, html};
use store::{AdminLogin, AdminRole, ApiScope, Page};

use crate::api::{self, ApiError, CdrFilter};
use crate::i18n::{Lang, t};
use crate::session::{self, Session};
use crate::{Web, settings};

mod apps;
mod backup_remote;
mod cluster;
mod codes;
mod custom_prompts;
mod hunt;
mod language;
#[path = "license_page.rs"]
mod license_page;
mod outside;
mod page;
mod park;
mod prompts;
mod recordings;
mod reports;
mod subs;
mod tenant_settings;
mod transfer;
mod vm_greetings;
mod voicemail;
mod xfer_board;

const STYLE: &str = include_str!("../static/style.css");
const SCRIPT: &str = include_str!("../static/app.js");
/// Rows per page in panel listings.
const PAGE_ROWS: i64 = 50;

/// Routes of the panel (mounted at `/`).
pub fn routes() -> Router<Web> {
    Router::new()
        .route("/", get(dashboard))
        .route("/static/style.css", get(style))
        .route("/static/app.js", get(script))
        .route("/lang", get(set_lang))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/setup", get(setup_page).post(setup))
        .route("/fragments/calls", get(calls_fragment))
        .route("/fragments/dashboard", get(dashboard_fragment))
        .route("/fragments/extensions", get(extensions_fragment))
        .route("/extensions", get(extensions).post(create_extension))
        .route(
            "/extensions/{number}",
            get(extension).post(update_extension),
        )
        .route("/extensions/{number}/password", post(regenerate))
        .route("/extensions/{number}/delete", post(delete_extension))
        .route("/calls", get(calls))
        .route("/calls/{id}/hangup", post(hangup))
        .route("/history", get(history))
        .route("/history.csv", get(history_csv))
        .route("/settings", get(settings_page).post(save_settings))
        .route("/backup", get(backup_page))
        .route("/backup/download", get(backup_download))
        .route(
            "/backup/restore",
            post(backup_restore).layer(DefaultBodyLimit::max(api::MAX_BACKUP_BYTES)),
        )
        .route("/admins", get(admins).post(create_admin))
        .route("/account/password", post(change_my_password))
        .route("/admins/{username}/delete", post(delete_admin))
        .route("/api-keys", post(create_key))
        .route("/api-keys/{id}/delete", post(delete_key))
        .merge(outside::routes())
        .merge(apps::routes())
        .merge(hunt::routes())
        .merge(page::routes())
        .merge(codes::routes())
        .merge(voicemail::routes())
        .merge(reports::routes())
        .merge(prompts::routes())
        .merge(custom_prompts::routes())
        .merge(vm_greetings::routes())
        .merge(language::routes())
        .merge(recordings::routes())
        .merge(transfer::routes())
        .merge(xfer_board::routes())
        .merge(subs::routes())
        .merge(tenant_settings::routes())
        .merge(park::routes())
        .merge(backup_remote::routes())
        .merge(cluster::routes())
        .route(
            "/license",
            get(license_page::show).post(license_page::upload),
        )
}

/// Who is asking, in which language, on which page.
pub struct Ctx {
    lang: Lang,
    session: Option<Session>,
    path: String,
    headers: HeaderMap,
    license: license_page::Notices,
    /// `Some(why)` on a clustered node that is not active (writes refused).
    standby: Option<String>,
}

impl Ctx {
    fn t(&self, key: &str) -> &'static str {
        t(self.lang, key)
    }

    fn is_admin(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.role == AdminRole::Admin)
    }

    fn csrf(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.csrf.clone())
            .unwrap_or_default()
    }
}

impl FromRequestParts<Web> for Ctx {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let lang = crate::i18n::negotiate(
            session::cookie(&parts.headers, session::LANG_COOKIE).as_deref(),
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        Ok(Ctx {
            lang,
            session: web.session(&parts.headers),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            headers: parts.headers.clone(),
            license: license_page::Notices::of(web),
            standby: crate::standby::refusal_in(web, lang),
        })
    }
}

/// A signed-in request (any role); others are sent to the sign-in page.
pub struct Signed(Ctx);

impl FromRequestParts<Web> for Signed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let Ok(ctx) = Ctx::from_request_parts(parts, web).await;
        if ctx.session.is_some() {
            Ok(Signed(ctx))
        } else {
            Err(Redirect::to("/login").into_response())
        }
    }
}

fn layout(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let other = match ctx.lang {
        Lang::En => Lang::Ja,
        Lang::Ja => Lang::En,
    };
    let back = url_encode(&ctx.path);
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Denwa" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    strong.brand { "Denwa" }
                    @if let Some(s) = &ctx.session {
                        nav {
                            a href="/" { (ctx.t("nav.dashboard")) }
                            a href="/extensions" { (ctx.t("nav.extensions")) }
                            a href="/calls" { (ctx.t("nav.calls")) }
                            a href="/history" { (ctx.t("nav.history")) }
                            a href="/reports" { (ctx.t("nav.reports")) }
                            a href="/trunks" { (ctx.t("nav.trunks")) }
                            a href="/routes" { (ctx.t("nav.routes")) }
                            a href="/dids" { (ctx.t("nav.dids")) }
                            a href="/outbound" { (ctx.t("nav.outbound")) }
                            a href="/ivrs" { (ctx.t("nav.ivrs")) }
                            a href="/conferences" { (ctx.t("nav.conferences")) }
                            a href="/groups" { (ctx.t("nav.groups")) }
                            a href="/pages" { (ctx.t("nav.pages")) }
                            a href="/timeconds" { (ctx.t("nav.timeconds")) }
                            a href="/features" { (ctx.t("nav.features")) }
                            a href="/park" { (ctx.t("nav.park")) }
                            a href="/voicemail" { (ctx.t("nav.voicemail")) }
                            a href="/prompts" { (ctx.t("nav.prompts")) }
                            a href="/moh" { (ctx.t("nav.moh")) }
                            (recordings::nav(ctx))
                            a href="/subscriptions" { (table_text(subs::NAV, ctx.lang, "nav.subs")) }
                            a href="/settings" { (ctx.t("nav.settings")) }
                            a href="/backup" { (ctx.t("nav.backup")) }
                            a href="/backup/remote" { (ctx.t("nav.backup_server")) }
                            a href="/admins" { (ctx.t("nav.admins")) }
                            a href="/license" { (ctx.t("nav.license")) }
                            a href="/cluster" { (ctx.t("nav.cluster")) }
                        }
                        span.user { (s.username) " (" (ctx.t(role_key(s.role))) ")" }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" id="logout" { (ctx.t("nav.logout")) }
                        }
                    }
                    a.lang href={ "/lang?set=" (other.code()) "&back=" (back) } id="lang-switch" { (other.native_name()) }
                }
                main {
                    h1 { (title) }
                    @if ctx.session.is_some() { (license_page::banners(&ctx.license, ctx.lang, &ctx.path)) }
                    @if let (Some(_), Some(m)) = (&ctx.session, &ctx.standby) { p.error role="alert" id="standby-banner" { (m) } }
                    (body)
                }
            }
        }
    }
}

fn role_key(r: AdminRole) -> &'static str {
    match r {
        AdminRole::Admin => "role.admin",
        AdminRole::Viewer => "role.viewer",
    }
}

fn page(ctx: &Ctx, status: StatusCode, title_key: &str, body: Markup) -> Response {
    (status, layout(ctx, ctx.t(title_key), body)).into_response()
}

fn notice(ctx: &Ctx, status: StatusCode, title_key: &str, msg: &str) -> Response {
    page(
        ctx,
        status,
        title_key,
        html! { p.error role="alert" { (msg) } },
    )
}

/// Localized text for an API/store error.
fn err_text(ctx: &Ctx, e: &ApiError) -> String {
    let key = match e.code {
        "not_found" => "err.not_found",
        "conflict" => "err.conflict",
        "invalid" => "err.invalid",
        "backup_rejected" => "err.backup_rejected",
        "unavailable" => "err.unavailable",
        "license_limit" | "license_read_only" => "err.license",
        _ => "err.internal",
    };
    format!("{} ({})", ctx.t(key), e.message)
}

fn fail(ctx: &Ctx, e: ApiError) -> Response {
    notice(ctx, e.status, "title.error", &err_text(ctx, &e))
}

fn forbidden(ctx: &Ctx) -> Response {
    notice(
        ctx,
        StatusCode::FORBIDDEN,
        "title.error",
        ctx.t("err.viewer"),
    )
}

/// Checks the CSRF token of a signed-in form, and that the user may change things; returns
/// the refusal to send, if any.
fn check_write(ctx: &Ctx, form: &HashMap<String, String>) -> Option<Response> {
    let Some(s) = &ctx.session else {
        return Some(Redirect::to("/login").into_response());
    };
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if !session::constant_time_eq(given.as_bytes(), s.csrf.as_bytes()) {
        return Some(notice(
            ctx,
            StatusCode::FORBIDDEN,
            "title.error",
            ctx.t("err.csrf"),
        ));
    }
    if s.role != AdminRole::Admin {
        return Some(forbidden(ctx));
    }
    license_page::refuse_write(ctx)
}

/// The text of `key` in a page's own `(key, English, Japanese)` table.
fn table_text(table: &[(&str, &'static str, &'static str)], lang: Lang, key: &str) -> &'static str {
    match table.iter().find(|(k, _, _)| *k == key) {
        Some((_, en, ja)) => match lang {
            Lang::En => en,
            Lang::Ja => ja,
        },
        None => {
            debug_assert!(false, "missing page text {key:?}");
            "?"
        }
    }
}

fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf()); }
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page's own text from its `(key, English, Japanese)` table.
fn text_in(texts: &[(&str, &'static str, &'static str)], lang: Lang, key: &str) -> &'static str {
    match texts.iter().find(|(k, _, _)| *k == key) {
        Some((_, en, ja)) => match lang {
            Lang::En => en,
            Lang::Ja => ja,
        },
        None => {
            debug_assert!(false, "missing page text {key:?}");
            "?"
        }
    }
}

fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("")
}

fn fmt_time(t: &chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn fmt_duration(s: u64) -> String {
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

// ----- static assets and language -----

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
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

async fn set_lang(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let lang = Lang::parse(field(&q, "set")).unwrap_or(Lang::En);
    let back = field(&q, "back");
    // Only local paths: an open redirect would let other sites borrow our address.
    let back = if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        back
    } else {
        "/"
    };
    let cookie = session::set_cookie(
        &headers,
        session::LANG_COOKIE,
        lang.code(),
        Some(31_536_000),
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(back)).into_response()
}

// ----- sign-in, setup, sign-out -----

fn login_form(ctx: &Ctx, pre: &str, user: &str, error: Option<String>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" id="login-error" { (e) } }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(pre);
            label { (ctx.t("login.username")) input type="text" name="username" value=(user) required autofocus autocomplete="username"; }
            label { (ctx.t("login.password")) input type="password" name="password" required autocomplete="current-password"; }
            button type="submit" { (ctx.t("login.submit")) }
        }
        p.hint { (ctx.t("login.hint")) }
    }
}

/// A sign-in page with a fresh pre-session CSRF cookie.
fn login_response(ctx: &Ctx, status: StatusCode, user: &str, error: Option<String>) -> Response {
    let pre = session::token();
    let cookie = session::set_cookie(&ctx.headers, session::PRE_COOKIE, &pre, None);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        layout(
            ctx,
            ctx.t("title.login"),
            login_form(ctx, &pre, user, error),
        ),
    )
        .into_response()
}

async fn login_page(ctx: Ctx) -> Response {
    if ctx.session.is_some() {
        return Redirect::to("/").into_response();
    }
    login_response(&ctx, StatusCode::OK, "", None)
}

fn pre_csrf_ok(ctx: &Ctx, form: &HashMap<String, String>) -> bool {
    let cookie = session::cookie(&ctx.headers, session::PRE_COOKIE).unwrap_or_default();
    !cookie.is_empty()
        && session::constant_time_eq(cookie.as_bytes(), field(form, "csrf").as_bytes())
}

async fn login(State(w): State<Web>, ctx: Ctx, Form(f): Form<HashMap<String, String>>) -> Response {
    let user = field(&f, "username").trim().to_string();
    if !pre_csrf_ok(&ctx, &f) {
        return login_response(
            &ctx,
            StatusCode::FORBIDDEN,
            &user,
            Some(ctx.t("err.csrf").into()),
        );
    }
    match w
        .store()
        .verify_admin(&user, field(&f, "password"), Utc::now())
        .await
    {
        Ok(AdminLogin::Ok(a)) => {
            let id = w.open_session(&a.username, a.role);
            let c = session::set_cookie(&ctx.headers, session::SESSION_COOKIE, &id, None);
            tracing::info!(user = %a.username, "panel sign-in");
            ([(header::SET_COOKIE, c)], Redirect::to("/")).into_response()
        }
        Ok(AdminLogin::BadCredentials) => login_response(
            &ctx,
            StatusCode::UNAUTHORIZED,
            &user,
            Some(ctx.t("login.bad").into()),
        ),
        Ok(AdminLogin::Locked(until)) => login_response(
            &ctx,
            StatusCode::TOO_MANY_REQUESTS,
            &user,
            Some(format!(
                "{} {} UTC",
                ctx.t("login.locked"),
                fmt_time(&until)
            )),
        ),
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn logout(
    State(w): State<Web>,
    ctx: Ctx,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(s) = &ctx.session
        && session::constant_time_eq(field(&f, "csrf").as_bytes(), s.csrf.as_bytes())
    {
        w.close_session(&ctx.headers);
    }
    let c = session::set_cookie(&ctx.headers, session::SESSION_COOKIE, "", Some(0));
    ([(header::SET_COOKIE, c)], Redirect::to("/login")).into_response()
}

fn setup_form(ctx: &Ctx, token: &str, pre: &str, user: &str, error: Option<&str>) -> Markup {
    html! {
        p { (ctx.t("setup.intro")) }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/setup" {
            input type="hidden" name="csrf" value=(pre);
            input type="hidden" name="token" value=(token);
            label { (ctx.t("login.username")) input type="text" name="username" value=(user) required; }
            label { (ctx.t("login.password")) input type="password" name="password" required autocomplete="new-password"; }
            label { (ctx.t("setup.password2")) input type="password" name="password2" required autocomplete="new-password"; }
            button type="submit" { (ctx.t("setup.submit")) }
        }
    }
}

fn setup_response(
    ctx: &Ctx,
    status: StatusCode,
    token: &str,
    user: &str,
    error: Option<&str>,
) -> Response {
    let pre = session::token();
    let cookie = session::set_cookie(&ctx.headers, session::PRE_COOKIE, &pre, None);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        layout(
            ctx,
            ctx.t("title.setup"),
            setup_form(ctx, token, &pre, user, error),
        ),
    )
        .into_response()
}

async fn setup_page(
    State(w): State<Web>,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = field(&q, "token");
    if !w.setup_allowed(token).await {
        return notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.setup",
            ctx.t("setup.invalid"),
        );
    }
    setup_response(&ctx, StatusCode::OK, token, "", None)
}

async fn setup(State(w): State<Web>, ctx: Ctx, Form(f): Form<HashMap<String, String>>) -> Response {
    let token = field(&f, "token");
    if !w.setup_allowed(token).await {
        return notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.setup",
            ctx.t("setup.invalid"),
        );
    }
    let user = field(&f, "username").trim();
    if !pre_csrf_ok(&ctx, &f) {
        return setup_response(
            &ctx,
            StatusCode::FORBIDDEN,
            token,
            user,
            Some(ctx.t("err.csrf")),
        );
    }
    let pw = field(&f, "password");
    if pw != field(&f, "password2") {
        return setup_response(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            user,
            Some(ctx.t("setup.mismatch")),
        );
    }
    if let Err(e) = api::check_admin(user, pw) {
        return setup_response(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            user,
            Some(ctx.t(e.key())),
        );
    }
    match w.store().create_admin(user, pw, AdminRole::Admin).await {
        Ok(a) => {
            w.clear_setup_token();
            let id = w.open_session(&a.username, a.role);
            let c = session::set_cookie(&ctx.headers, session::SESSION_COOKIE, &id, None);
            tracing::info!(user = %a.username, "first administrator created through the setup link");
            ([(header::SET_COOKIE, c)], Redirect::to("/")).into_response()
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

// ----- dashboard -----

fn calls_table(ctx: &Ctx, calls: &[CallSummary]) -> Markup {
    html! {
        @if calls.is_empty() {
            p.empty id="no-calls" { (ctx.t("calls.none")) }
        } @else {
            table.calls {
                thead { tr {
                    th { (ctx.t("calls.caller")) } th { (ctx.t("calls.callee")) }
                    th { (ctx.t("calls.state")) } th { (ctx.t("calls.duration")) }
                    th { (ctx.t("calls.codec")) }
                    @if ctx.is_admin() { th {} }
                } }
                tbody {
                    @for c in calls {
                        tr.call data-caller=(c.caller) data-callee=(c.callee) {
                            (xfer_board::party_cells(ctx, c))
                            td { (ctx.t(match c.state { CallState::Ringing => "calls.ringing", CallState::Up => "calls.up" })) }
                            td { (fmt_duration(c.duration_s)) }
                            td { (c.codec) }
                            @if ctx.is_admin() {
                                td { form.inline method="post" action={ "/calls/" (c.id) "/hangup" } {
                                    (csrf_field(ctx))
                                    button type="submit" { (ctx.t("calls.hangup")) }
                                }
                                @if c.state == CallState::Up { (transfer::form(ctx, c.id)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The parts of the dashboard that change: today's counts and the registered phones.
async fn dashboard_live(w: &Web, ctx: &Ctx) -> Result<Markup, ApiError> {
    let now = Utc::now();
    let counts = w.store().cdr_counts_for_day(None, now.date_naive()).await?;
    let regs = w
        .store()
        .list_bindings(Page {
            limit: 200,
            offset: 0,
        })
        .await?;
    let trunks = outside::dashboard_trunks(w, ctx).await?;
    Ok(html! {
        (trunks)
        section {
            h2 { (ctx.t("dash.today")) }
            table.counts { tbody {
                @for (d, n) in &counts {
                    tr { th { (ctx.t(disp_key(*d))) } td data-disposition=(d.as_str()) { (n) } }
                }
            } }
        }
        section {
            h2 { (ctx.t("dash.phones")) }
            @let live: Vec<_> = regs.iter().filter(|r| r.expires_at > now).collect();
            @if live.is_empty() { p.empty { (ctx.t("dash.no_phones")) } } @else {
                table.phones { thead { tr { th { (ctx.t("ext.number")) } th { (ctx.t("reg.contact")) } th { (ctx.t("reg.ua")) } th { (ctx.t("reg.source")) } th { (ctx.t("reg.expires")) } } }
                tbody { @for r in live { tr {
                    td { (r.aor) } td { (r.contact_uri) } td { (r.user_agent) } td { (r.received_addr) " " (r.transport.as_str()) } td { (fmt_time(&r.expires_at)) }
                } } } }
            }
        }
    })
}

async fn dashboard(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let live = match dashboard_live(&w, &ctx).await {
        Ok(m) => m,
        Err(e) => return fail(&ctx, e),
    };
    let calls = w.control().calls().await;
    let info = w.info();
    let body = html! {
        section {
            h2 { (ctx.t("dash.calls")) }
            div id="live-calls" data-live="/fragments/calls" { (calls_table(&ctx, &calls)) }
        }
        (backup_remote::dashboard_alert(&w, &ctx).await)
        div id="live-dashboard" data-live="/fragments/dashboard" { (live) }
        (reports::dashboard_today(&w, &ctx).await)
        section {
            h2 { (ctx.t("dash.node")) }
            table.kv { tbody {
                tr { th { (ctx.t("node.name")) } td { (info.node) } }
                tr { th { (ctx.t("node.version")) } td { (env!("CARGO_PKG_VERSION")) } }
                tr { th { (ctx.t("node.uptime")) } td { (fmt_duration(w.uptime_s())) } }
                tr { th { (ctx.t("node.sip")) } td { (w.control().sip_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")) } }
                tr { th { (ctx.t("node.http")) } td { (info.http_listen) } }
                tr { th { (ctx.t("node.database")) } td { (w.store().backend().as_str()) } }
            } }
        }
    };
    page(&ctx, StatusCode::OK, "title.dashboard", body)
}

async fn dashboard_fragment(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    match dashboard_live(&w, &ctx).await {
        Ok(m) => m.into_response(),
        Err(e) => e.into_response(),
    }
}

fn disp_key(d: store::Disposition) -> &'static str {
    match d {
        store::Disposition::Answered => "disp.answered",
        store::Disposition::NoAnswer => "disp.no_answer",
        store::Disposition::Busy => "disp.busy",
        store::Disposition::Failed => "disp.failed",
        store::Disposition::Canceled => "disp.canceled",
    }
}

async fn calls_fragment(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let calls = w.control().calls().await;
    calls_table(&ctx, &calls).into_response()
}

// ----- calls in progress -----

async fn calls(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let calls = w.control().calls().await;
    let board = xfer_board::board(&w, &ctx).await;
    let body = html! {
        div id="live-calls" data-live="/fragments/calls" { (calls_table(&ctx, &calls)) }
        (board)
    };
    page(&ctx, StatusCode::OK, "title.calls", body)
}

async fn hangup(
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
            ctx.t("err.not_found"),
        );
    };
    if w.control().hangup(id).await {
        Redirect::to("/calls").into_response()
    } else {
        notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.error",
            ctx.t("calls.gone"),
        )
    }
}

// ----- extensions -----

struct ExtRow {
    ext: store::Extension,
    regs: Vec<store::Registration>,
}

async fn ext_rows(w: &Web, q: &str, offset: i64) -> Result<(Vec<ExtRow>, i64), ApiError> {
    let t = w.store().default_tenant().await?;
    let search = Some(q).filter(|s| !s.is_empty());
    let exts = w
        .store()
        .list_extensions(
            t.id,
            search,
            Page {
                limit: PAGE_ROWS,
                offset,
            },
        )
        .await?;
    let total = w.store().count_extensions(t.id, search).await?;
    let now = Utc::now();
    let mut rows = Vec::with_capacity(exts.len());
    for ext in exts {
        let regs = w.store().bindings_for_extension(ext.id, now).await?;
        rows.push(ExtRow { ext, regs });
    }
    Ok((rows, total))
}

fn ext_table(ctx: &Ctx, rows: &[ExtRow]) -> Markup {
    html! {
        @if rows.is_empty() { p.empty { (ctx.t("ext.none")) } } @else {
        table.extensions {
            thead { tr {
                th { (ctx.t("ext.number")) } th { (ctx.t("ext.name")) } th { (ctx.t("ext.enabled")) }
                th { (ctx.t("ext.state")) } th { (ctx.t("reg.contact")) } th { (ctx.t("reg.ua")) } th { (ctx.t("reg.source")) }
            } }
            tbody {
                @for r in rows {
                    tr data-number=(r.ext.number) {
                        td { a href={ "/extensions/" (url_encode(&r.ext.number)) } { (r.ext.number) } }
                        td { (r.ext.display_name) }
                        td { (ctx.t(if r.ext.enabled { "yes" } else { "no" })) }
                        @if let Some(b) = r.regs.first() {
                            td.state.registered data-state="registered" { (ctx.t("ext.registered")) @if r.regs.len() > 1 { " ×" (r.regs.len()) } }
                            td { (b.contact_uri) } td { (b.user_agent) } td { (b.received_addr) " " (b.transport.as_str()) }
                        } @else {
                            td.state data-state="unregistered" { (ctx.t("ext.unregistered")) } td {} td {} td {}
                        }
                    }
                }
            }
        }
        }
    }
}

fn new_ext_form(ctx: &Ctx, f: &HashMap<String, String>) -> Markup {
    html! {
        @if ctx.is_admin() {
            h2 { (ctx.t("ext.new")) }
            form method="post" action="/extensions" id="new-extension" {
                (csrf_field(ctx))
                label { (ctx.t("ext.number")) input type="text" name="number" value=(field(f, "number")) required pattern="[0-9*#+]{1,32}"; }
                label { (ctx.t("ext.name")) input type="text" name="display_name" value=(field(f, "display_name")); }
                label { (ctx.t("ext.password")) input type="text" name="password" value="" autocomplete="off" placeholder=(ctx.t("ext.password_auto")); }
                button type="submit" { (ctx.t("ext.create")) }
            }
        }
    }
}

async fn extensions_page(
    w: &Web,
    ctx: &Ctx,
    q: &HashMap<String, String>,
    status: StatusCode,
    extra: Markup,
    form: &HashMap<String, String>,
) -> Response {
    let search = field(q, "q").trim().to_string();
    let offset = field(q, "offset").parse::<i64>().unwrap_or(0).max(0);
    let (rows, total) = match ext_rows(w, &search, offset).await {
        Ok(x) => x,
        Err(e) => return fail(ctx, e),
    };
    let live = format!(
        "/fragments/extensions?q={}&offset={offset}",
        url_encode(&search)
    );
    let body = html! {
        (extra)
        form.search method="get" action="/extensions" {
            input type="search" name="q" value=(search) placeholder=(ctx.t("ext.search"));
            button type="submit" { (ctx.t("search")) }
        }
        p.count { (ctx.t("total")) ": " span id="ext-total" { (total) } }
        div id="ext-table" data-live=(live) { (ext_table(ctx, &rows)) }
        (pager(ctx, "/extensions", &format!("q={}", url_encode(&search)), offset, PAGE_ROWS, total))
        (new_ext_form(ctx, form))
    };
    page(ctx, status, "title.extensions", body)
}

fn pager(ctx: &Ctx, base: &str, query: &str, offset: i64, limit: i64, total: i64) -> Markup {
    html! {
        nav.pager {
            @if offset > 0 { a rel="prev" href={ (base) "?" (query) "&offset=" ((offset - limit).max(0)) } { (ctx.t("prev")) } }
            @if offset + limit < total { a rel="next" href={ (base) "?" (query) "&offset=" (offset + limit) } { (ctx.t("next")) } }
        }
    }
}

async fn extensions(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    extensions_page(&w, &ctx, &q, StatusCode::OK, html! {}, &HashMap::new()).await
}

async fn extensions_fragment(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let offset = field(&q, "offset").parse::<i64>().unwrap_or(0).max(0);
    match ext_rows(&w, field(&q, "q").trim(), offset).await {
        Ok((rows, _)) => ext_table(&ctx, &rows).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Validates an extension form; returns a localized message on the first problem.
fn ext_form_error(ctx: &Ctx, number: &str, name: &str, password: &str) -> Option<String> {
    if store::validate_extension_number(number).is_err() {
        return Some(ctx.t("ext.bad_number").into());
    }
    if let Err(e) = policy::check_display_name(name) {
        return Some(ctx.t(e.key()).into());
    }
    if !password.is_empty()
        && let Err(e) = policy::check_extension_password(number, password)
    {
        return Some(format!("{} {}", ctx.t("ext.weak"), ctx.t(e.key())));
    }
    None
}

fn password_once(ctx: &Ctx, number: &str, password: &str) -> Markup {
    html! {
        div.once role="status" {
            p { (ctx.t("ext.password_once")) }
            p { strong { (number) } ": " code id="new-password" { (password) } }
        }
    }
}

async fn create_extension(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let number = field(&f, "number").trim();
    let name = field(&f, "display_name").trim();
    let given = field(&f, "password");
    let err_page = |msg: String| {
        let ctx = &ctx;
        let f = &f;
        let w = &w;
        async move {
            let extra = html! { p.error role="alert" id="form-error" { (msg) } };
            extensions_page(
                w,
                ctx,
                &HashMap::new(),
                StatusCode::UNPROCESSABLE_ENTITY,
                extra,
                f,
            )
            .await
        }
    };
    if let Some(msg) = ext_form_error(&ctx, number, name, given) {
        return err_page(msg).await;
    }
    let password = if given.is_empty() {
        api::generate_password(number)
    } else {
        given.to_string()
    };
    if let Err(e) = w.check_create(crate::license::LimitKind::Extensions).await {
        return err_page(err_text(&ctx, &e)).await;
    }
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e.into()),
    };
    let res = w
        .store()
        .create_extension_capped(
            t.id,
            store::NewExtension {
                number: number.to_string(),
                display_name: name.to_string(),
                password: Some(password.clone()),
                enabled: None,
                max_contacts: None,
            },
            w.licence_cap(crate::license::LimitKind::Extensions),
        )
        .await;
    match res {
        Ok(_) => {
            let extra = html! {
                p.ok role="status" { (ctx.t("ext.created")) }
                (password_once(&ctx, number, &password))
            };
            extensions_page(
                &w,
                &ctx,
                &HashMap::new(),
                StatusCode::CREATED,
                extra,
                &HashMap::new(),
            )
            .await
        }
        Err(store::Error::Conflict(_)) => err_page(ctx.t("ext.duplicate").into()).await,
        Err(e) => {
            let e: ApiError = e.into();
            err_page(err_text(&ctx, &e)).await
        }
    }
}

async fn extension_page(
    w: &Web,
    ctx: &Ctx,
    number: &str,
    status: StatusCode,
    extra: Markup,
) -> Response {
    extension_page_with(w, ctx, number, status, extra, None).await
}

/// The extension page; `form` is the refused form (input kept, error at its field).
async fn extension_page_with(
    w: &Web,
    ctx: &Ctx,
    number: &str,
    status: StatusCode,
    extra: Markup,
    form: Option<(&HashMap<String, String>, &outside::FormErr)>,
) -> Response {
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(ctx, e.into()),
    };
    let ext = match w.store().extension(t.id, number).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return notice(
                ctx,
                StatusCode::NOT_FOUND,
                "title.error",
                ctx.t("err.not_found"),
            );
        }
        Err(e) => return fail(ctx, e.into()),
    };
    let regs = match w.store().bindings_for_extension(ext.id, Utc::now()).await {
        Ok(r) => r,
        Err(e) => return fail(ctx, e.into()),
    };
    let action = format!("/extensions/{}", url_encode(&ext.number));
    let pickup = codes::pickup_section(w, ctx, t.id, &ext.number).await;
    let body = html! {
        (extra)
        h2 { (ext.number) " " (ext.display_name) }
        @if ctx.is_admin() {
            form method="post" action=(action) id="edit-extension" {
                (csrf_field(ctx))
                label { (ctx.t("ext.name")) input type="text" name="display_name" value=(ext.display_name); }
                label { (ctx.t("ext.max_contacts")) input type="number" name="max_contacts" min=(policy::MAX_CONTACTS.start()) max=(policy::MAX_CONTACTS.end()) value=(ext.max_contacts); }
                label.check { input type="checkbox" name="enabled" value="on" checked[ext.enabled]; (ctx.t("ext.enabled")) }
                (outside::ext_fields(ctx, &ext, form.map(|f| f.0), form.map(|f| f.1)))
                (language::ext_field(ctx, &ext, form.map(|f| f.0), form.map(|f| (f.1.field.as_str(), f.1.msg.as_str()))))
                button type="submit" { (ctx.t("save")) }
            }
            form.inline method="post" action={ (action) "/password" } {
                (csrf_field(ctx))
                button type="submit" id="regenerate" { (ctx.t("ext.regenerate")) }
            }
            form.inline method="post" action={ (action) "/delete" } {
                (csrf_field(ctx))
                button.danger type="submit" id="delete-extension" { (ctx.t("ext.delete")) }
            }
        } @else {
            table.kv { tbody {
                tr { th { (ctx.t("ext.name")) } td { (ext.display_name) } }
                tr { th { (ctx.t("ext.enabled")) } td { (ctx.t(if ext.enabled { "yes" } else { "no" })) } }
                tr { th { (ctx.t("ext.max_contacts")) } td { (ext.max_contacts) } }
                tr { th { (ctx.t("ext.cos")) } td { (ext.cos.as_str()) } }
            } }
        }
        (hunt::extension_link(ctx, &ext.number))
        h2 { (ctx.t("ext.registrations")) }
        @if regs.is_empty() { p.empty data-state="unregistered" { (ctx.t("ext.unregistered")) } } @else {
            table { thead { tr { th { (ctx.t("reg.contact")) } th { (ctx.t("reg.ua")) } th { (ctx.t("reg.source")) } th { (ctx.t("reg.expires")) } } }
            tbody { @for r in &regs { tr data-state="registered" {
                td { (r.contact_uri) } td { (r.user_agent) } td { (r.received_addr) " " (r.transport.as_str()) } td { (fmt_time(&r.expires_at)) }
            } } } }
        }
        (pickup)
        p { a href="/extensions" { (ctx.t("back")) } }
    };
    page(ctx, status, "title.extension", body)
}

async fn extension(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
) -> Response {
    extension_page(&w, &ctx, &number, StatusCode::OK, html! {}).await
}

async fn update_extension(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let name = field(&f, "display_name").trim().to_string();
    let err = |msg: String| {
        extension_page(
            &w,
            &ctx,
            &number,
            StatusCode::UNPROCESSABLE_ENTITY,
            html! { p.error role="alert" id="form-error" { (msg) } },
        )
    };
    if let Some(m) = ext_form_error(&ctx, "0", &name, "") {
        return err(m).await;
    }
    let max = match field(&f, "max_contacts").trim().parse::<i64>() {
        Ok(m) => match policy::check_max_contacts(m) {
            Ok(()) => m,
            Err(e) => return err(ctx.t(e.key()).into()).await,
        },
        Err(_) => return err(ctx.t(policy::PolicyError::MaxContacts.key()).into()).await,
    };
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e.into()),
    };
    let ext = match w.store().extension(t.id, &number).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return notice(
                &ctx,
                StatusCode::NOT_FOUND,
                "title.error",
                ctx.t("err.not_found"),
            );
        }
        Err(e) => return fail(&ctx, e.into()),
    };
    let refused = |e: outside::FormErr| {
        let (w, ctx, number, f) = (&w, &ctx, &number, &f);
        async move {
            let top = outside::err_top(Some(&e));
            extension_page_with(
                w,
                ctx,
                number,
                StatusCode::UNPROCESSABLE_ENTITY,
                top,
                Some((f, &e)),
            )
            .await
        }
    };
    let (cos, cid, anonymous, limits) = match outside::ext_from_form(&ctx, &ext, &f) {
        Ok(x) => x,
        Err(e) => return refused(e).await,
    };
    let upd = store::ExtensionUpdate {
        display_name: Some(name),
        enabled: Some(field(&f, "enabled") == "on"),
        max_contacts: Some(max),
        cos: Some(cos),
        outbound_cid: Some(cid),
        anonymous: Some(anonymous),
        limits: Some(limits),
        language: language::ext_form_value(&f),
    };
    match w.store().update_extension(t.id, &number, upd).await {
        Ok(_) => {
            extension_page(
                &w,
                &ctx,
                &number,
                StatusCode::OK,
                html! { p.ok role="status" { (ctx.t("saved")) } },
            )
            .await
        }
        Err(store::Error::Invalid { field, reason }) => {
            let e = ApiError::from(store::Error::Invalid { field, reason });
            refused(outside::FormErr::from_api(&ctx, &e)).await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn regenerate(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let password = api::generate_password(&number);
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e.into()),
    };
    match w
        .store()
        .set_extension_password(t.id, &number, &password)
        .await
    {
        Ok(()) => {
            extension_page(
                &w,
                &ctx,
                &number,
                StatusCode::OK,
                password_once(&ctx, &number, &password),
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn delete_extension(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(number): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let t = match w.store().default_tenant().await {
        Ok(t) => t,
        Err(e) => return fail(&ctx, e.into()),
    };
    match w.store().delete_extension(t.id, &number).await {
        Ok(()) => {
            let extra = html! { p.ok role="status" { (ctx.t("ext.deleted")) " " (number) } };
            extensions_page(
                &w,
                &ctx,
                &HashMap::new(),
                StatusCode::OK,
                extra,
                &HashMap::new(),
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

// ----- call history -----

fn filter_from(q: &HashMap<String, String>, offset: i64, limit: i64) -> CdrFilter {
    let opt = |k: &str| q.get(k).cloned().filter(|s| !s.trim().is_empty());
    CdrFilter {
        from: opt("from"),
        to: opt("to"),
        number: opt("number"),
        disposition: opt("disposition"),
        direction: opt("direction"),
        trunk: opt("trunk"),
        did: opt("did"),
        limit: Some(limit),
        offset: Some(offset),
    }
}

fn filter_query(q: &HashMap<String, String>) -> String {
    [
        "from",
        "to",
        "number",
        "disposition",
        "direction",
        "trunk",
        "did",
    ]
    .iter()
    .map(|k| format!("{k}={}", url_encode(field(q, k))))
    .collect::<Vec<_>>()
    .join("&")
}

async fn history(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let offset = field(&q, "offset").parse::<i64>().unwrap_or(0).max(0);
    let (rows, total, error) = match filter_from(&q, offset, PAGE_ROWS).to_query() {
        Ok(cq) => match (
            w.store().list_cdrs(&cq).await,
            w.store().count_cdrs(&cq).await,
        ) {
            (Ok(r), Ok(n)) => (r, n, None),
            (Err(e), _) | (_, Err(e)) => return fail(&ctx, e.into()),
        },
        Err(e) => (Vec::new(), 0, Some(e)),
    };
    let recs = recordings::for_calls(&w, &rows).await;
    let fq = filter_query(&q);
    let disp = field(&q, "disposition");
    let body = html! {
        @if let Some(e) = &error { p.error role="alert" { (ctx.t("hist.bad_filter")) " (" (e.message) ")" } }
        form.filters method="get" action="/history" {
            label { (ctx.t("hist.from")) input type="date" name="from" value=(field(&q, "from")); }
            label { (ctx.t("hist.to")) input type="date" name="to" value=(field(&q, "to")); }
            label { (ctx.t("hist.number")) input type="text" name="number" value=(field(&q, "number")); }
            (outside::history_filters(&ctx, &q))
            label { (ctx.t("hist.disposition"))
                select name="disposition" {
                    option value="" { (ctx.t("hist.any")) }
                    @for d in store::Disposition::ALL {
                        option value=(d.as_str()) selected[api::parse_disposition(disp) == Some(*d)] { (ctx.t(disp_key(*d))) }
                    }
                }
            }
            button type="submit" { (ctx.t("search")) }
        }
        p { (ctx.t("total")) ": " span id="cdr-total" { (total) } " · " a href={ "/history.csv?" (fq) } id="csv" { (ctx.t("hist.csv")) } }
        table.history {
            thead { tr {
                th { (ctx.t("hist.start")) } th { (ctx.t("calls.caller")) } th { (ctx.t("calls.callee")) }
                th { (ctx.t("hist.disposition")) } th { (ctx.t("calls.duration")) } th { (ctx.t("hist.billsec")) } th { (ctx.t("calls.codec")) }
                (outside::history_heads(&ctx))
                (recordings::history_head(&ctx))
            } }
            tbody { @for c in &rows { @let r = &c.record; tr.cdr data-caller=(r.caller) data-callee=(r.callee) data-disposition=(r.disposition.as_str()) {
                td { a href={ "/history/" (c.id) } { (fmt_time(&r.start_time)) } } td { (r.caller) @if !r.caller_name.is_empty() { " (" (r.caller_name) ")" } } td { (r.callee) }
                td { (ctx.t(disp_key(r.disposition))) } td { (r.duration_s) } td { (r.billsec) } td { (r.codec) }
                (outside::history_cells(&ctx, r))
                (recordings::history_cell(&ctx, &recs, &r.call_id))
            } } }
        }
        (pager(&ctx, "/history", &fq, offset, PAGE_ROWS, total))
    };
    page(
        &ctx,
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        "title.history",
        body,
    )
}

async fn history_csv(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match filter_from(&q, 0, PAGE_ROWS).to_query() {
        Ok(cq) => match api::csv_export(w.store(), cq).await {
            Ok(body) => api::csv_response(body),
            Err(e) => fail(&ctx, e.into()),
        },
        Err(e) => fail(&ctx, e),
    }
}

// ----- settings -----

async fn settings_view(
    w: &Web,
    ctx: &Ctx,
    status: StatusCode,
    errors: &HashMap<&str, String>,
    saved: bool,
) -> Response {
    let mut values = Vec::new();
    for d in settings::ALL {
        match w.store().setting_json(None, d.key).await {
            Ok(v) => values.push((d, v.unwrap_or_else(|| d.default.to_json()))),
            Err(e) => return fail(ctx, e.into()),
        }
    }
    let tenant_language =
        match language::tenant_section(w, ctx, errors.contains_key("tenant.language")).await {
            Ok(m) => m,
            Err(e) => return fail(ctx, e),
        };
    let tenant_settings = tenant_settings::section(w, ctx).await;
    let info = w.info();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let body = html! {
        @if saved { p.ok role="status" { (ctx.t("saved")) } }
        @if !errors.is_empty() { p.error role="alert" id="form-error" { (ctx.t("set.errors")) } }
        form method="post" action="/settings" id="settings" {
            (csrf_field(ctx))
            table.kv { tbody {
                @for (d, v) in &values {
                    tr {
                        th { label for=(d.key) { (ctx.t(settings::label(d.key))) } br; code { (d.key) } }
                        td {
                            @match d.kind {
                                settings::Kind::Integer { min, max } => {
                                    input type="number" id=(d.key) name=(d.key) min=(min) max=(max) value=(text(v)) disabled[!ctx.is_admin()];
                                }
                                settings::Kind::Choice(allowed) => {
                                    select id=(d.key) name=(d.key) disabled[!ctx.is_admin()] {
                                        @for a in allowed {
                                            option value=(a) selected[text(v) == *a] { (a) }
                                        }
                                    }
                                }
                                _ => {
                                    input type="text" id=(d.key) name=(d.key) value=(text(v)) disabled[!ctx.is_admin()];
                                }
                            }
                            @if let Some(e) = errors.get(d.key) { span.error { (e) } }
                        }
                        td { (ctx.t(if d.restart_required { "set.restart" } else { "set.live" })) }
                    }
                }
            } }
            @if ctx.is_admin() { button type="submit" { (ctx.t("save")) } }
        }
        (tenant_language)
        (tenant_settings)
        h2 { (ctx.t("set.bootstrap")) }
        p.hint { (ctx.t("set.bootstrap_note")) }
        table.kv { tbody {
            tr { th { (ctx.t("node.sip")) } td { (info.sip_listen.join(", ")) } }
            tr { th { (ctx.t("node.http")) } td { (info.http_listen) } }
            tr { th { (ctx.t("node.rtp")) } td { @if let Some((a, b)) = info.rtp_ports { (a) "–" (b) } } }
            tr { th { (ctx.t("node.advertise")) } td { (info.advertise.clone().unwrap_or_default()) } }
            tr { th { (ctx.t("node.log")) } td { (info.log_level) } }
            tr { th { (ctx.t("node.database")) } td { (info.database) } }
        } }
    };
    page(ctx, status, "title.settings", body)
}

async fn settings_page(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    settings_view(&w, &ctx, StatusCode::OK, &HashMap::new(), false).await
}

async fn save_settings(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    // Validate everything first so a bad field saves nothing.
    let mut errors = HashMap::new();
    let mut good = Vec::new();
    for d in settings::ALL {
        let Some(raw) = f.get(d.key) else { continue };
        match d.validate(&serde_json::Value::from(raw.as_str())) {
            Ok(v) => good.push((d, v)),
            Err(e) => {
                let msg = match e {
                    settings::Invalid::Range { min, max } => {
                        format!("{} {min}–{max}", ctx.t("set.range"))
                    }
                    settings::Invalid::NotInteger
                    | settings::Invalid::Algorithms
                    | settings::Invalid::Format(_)
                    | settings::Invalid::Choice(_) => {
                        ctx.t(settings::format_message(d.kind)).to_string()
                    }
                };
                errors.insert(d.key, msg);
            }
        }
    }
    if !errors.is_empty() {
        return settings_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, &errors, false).await;
    }
    for (d, v) in good {
        if let Err(e) = w.store().set_setting(None, d.key, &v).await {
            return fail(&ctx, e.into());
        }
    }
    settings_view(&w, &ctx, StatusCode::OK, &errors, true).await
}

// ----- backup -----

fn backup_body(ctx: &Ctx, msg: Markup) -> Markup {
    html! {
        (msg)
        p { (ctx.t("backup.intro")) }
        @if ctx.is_admin() {
            p { a.button href="/backup/download" id="download-backup" { (ctx.t("backup.download")) } }
        }
        @if ctx.is_admin() {
            h2 { (ctx.t("backup.restore")) }
            p.hint { (ctx.t("backup.restore_note")) }
            form method="post" action="/backup/restore" enctype="multipart/form-data" id="restore" {
                (csrf_field(ctx))
                input type="file" name="file" required;
                button type="submit" { (ctx.t("backup.restore")) }
            }
        }
    }
}

async fn backup_page(Signed(ctx): Signed) -> Response {
    page(
        &ctx,
        StatusCode::OK,
        "title.backup",
        backup_body(&ctx, html! {}),
    )
}

async fn backup_download(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    // Viewers may not: the archive holds every password and key hash.
    if !ctx.is_admin() {
        return forbidden(&ctx);
    }
    match api::make_backup(&w).await {
        Ok((name, bytes)) => (
            [
                (header::CONTENT_TYPE, "application/x-tar".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => fail(&ctx, e),
    }
}

async fn backup_restore(State(w): State<Web>, Signed(ctx): Signed, mut mp: Multipart) -> Response {
    let mut csrf = String::new();
    let mut file: Option<Vec<u8>> = None;
    loop {
        match mp.next_field().await {
            Ok(Some(fl)) => {
                let name = fl.name().unwrap_or("").to_string();
                match fl.bytes().await {
                    Ok(b) if name == "csrf" => csrf = String::from_utf8_lossy(&b).into_owned(),
                    Ok(b) if name == "file" => file = Some(b.to_vec()),
                    Ok(_) => {}
                    Err(e) => {
                        return notice(
                            &ctx,
                            StatusCode::BAD_REQUEST,
                            "title.backup",
                            &format!("{} ({e})", ctx.t("backup.upload_failed")),
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                return notice(
                    &ctx,
                    StatusCode::BAD_REQUEST,
                    "title.backup",
                    &format!("{} ({e})", ctx.t("backup.upload_failed")),
                );
            }
        }
    }
    let form = HashMap::from([("csrf".to_string(), csrf)]);
    if let Some(r) = check_write(&ctx, &form) {
        return r;
    }
    let bytes = file.unwrap_or_default();
    match api::restore_bytes(&w, &bytes).await {
        Ok(m) => {
            let msg = html! { p.ok role="status" id="restore-ok" { (ctx.t("backup.restored")) " (" (fmt_time(&m.created_at)) ")" } };
            page(&ctx, StatusCode::OK, "title.backup", backup_body(&ctx, msg))
        }
        Err(e) => {
            let msg = html! { p.error role="alert" id="restore-error" { (ctx.t("backup.refused")) " " (e.message) } };
            page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "title.backup",
                backup_body(&ctx, msg),
            )
        }
    }
}

// ----- administrators and API keys -----

async fn admins_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let (admins, keys) = match (
        w.store().list_admins().await,
        w.store().list_api_keys(None).await,
    ) {
        (Ok(a), Ok(k)) => (a, k),
        (Err(e), _) | (_, Err(e)) => return fail(ctx, e.into()),
    };
    let me = ctx
        .session
        .as_ref()
        .map(|s| s.username.clone())
        .unwrap_or_default();
    let body = html! {
        (msg)
        h2 { (ctx.t("account.title")) }
        form method="post" action="/account/password" id="my-password" {
            (csrf_field(ctx))
            label { (ctx.t("account.current")) input type="password" name="current" required autocomplete="current-password"; }
            label { (ctx.t("login.password")) input type="password" name="password" required autocomplete="new-password"; }
            label { (ctx.t("setup.password2")) input type="password" name="password2" required autocomplete="new-password"; }
            button type="submit" { (ctx.t("save")) }
        }
        h2 { (ctx.t("nav.admins")) }
        table.admins {
            thead { tr { th { (ctx.t("login.username")) } th { (ctx.t("admin.role")) } th { (ctx.t("admin.locked")) } th {} } }
            tbody { @for a in &admins { tr {
                td { (a.username) } td { (ctx.t(role_key(a.role))) }
                td { @if let Some(u) = a.locked_until.filter(|u| *u > Utc::now()) { (fmt_time(&u)) } }
                td { @if ctx.is_admin() && a.username != me {
                    form.inline method="post" action={ "/admins/" (url_encode(&a.username)) "/delete" } {
                        (csrf_field(ctx)) button.danger type="submit" { (ctx.t("delete")) }
                    }
                } }
            } } }
        }
        @if ctx.is_admin() {
            h2 { (ctx.t("admin.new")) }
            form method="post" action="/admins" id="new-admin" {
                (csrf_field(ctx))
                label { (ctx.t("login.username")) input type="text" name="username" required; }
                label { (ctx.t("login.password")) input type="password" name="password" required autocomplete="new-password"; }
                label { (ctx.t("admin.role")) select name="role" {
                    option value="admin" { (ctx.t("role.admin")) } option value="viewer" { (ctx.t("role.viewer")) }
                } }
                button type="submit" { (ctx.t("create")) }
            }
        }
        h2 { (ctx.t("keys.title")) }
        table.keys {
            thead { tr { th { (ctx.t("keys.name")) } th { (ctx.t("keys.prefix")) } th { (ctx.t("keys.scope")) } th { (ctx.t("keys.last_used")) } th {} } }
            tbody { @for k in &keys { tr {
                td { (k.name) } td { code { (k.prefix) "…" } } td { (ctx.t(match k.scope { ApiScope::Read => "keys.read", ApiScope::Full => "keys.full" })) }
                td { @if let Some(u) = &k.last_used_at { (fmt_time(u)) } }
                td { @if ctx.is_admin() {
                    form.inline method="post" action={ "/api-keys/" (k.id) "/delete" } { (csrf_field(ctx)) button.danger type="submit" { (ctx.t("delete")) } }
                } }
            } } }
        }
        @if ctx.is_admin() {
            form method="post" action="/api-keys" id="new-key" {
                (csrf_field(ctx))
                label { (ctx.t("keys.name")) input type="text" name="name" required; }
                label { (ctx.t("keys.scope")) select name="scope" {
                    option value="read" { (ctx.t("keys.read")) } option value="full" { (ctx.t("keys.full")) }
                } }
                button type="submit" { (ctx.t("create")) }
            }
        }
    };
    page(ctx, status, "title.admins", body)
}

/// Any signed-in user (viewers too) may change their own password, knowing the current one.
async fn change_my_password(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(s) = ctx.session.clone() else {
        return Redirect::to("/login").into_response();
    };
    if !session::constant_time_eq(field(&f, "csrf").as_bytes(), s.csrf.as_bytes()) {
        return notice(
            &ctx,
            StatusCode::FORBIDDEN,
            "title.error",
            ctx.t("err.csrf"),
        );
    }
    let pw = field(&f, "password");
    if pw != field(&f, "password2") {
        return admins_view(
            &w,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            error_msg(ctx.t("setup.mismatch")),
        )
        .await;
    }
    if let Err(e) = api::check_admin(&s.username, pw) {
        return admins_view(
            &w,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            error_msg(ctx.t(e.key())),
        )
        .await;
    }
    // The current password goes through the normal check, so guesses here count toward the lockout.
    match w
        .store()
        .verify_admin(&s.username, field(&f, "current"), Utc::now())
        .await
    {
        Ok(AdminLogin::Ok(_)) => {}
        Ok(AdminLogin::BadCredentials) => {
            return admins_view(
                &w,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                error_msg(ctx.t("account.wrong")),
            )
            .await;
        }
        Ok(AdminLogin::Locked(until)) => {
            let m = format!("{} {} UTC", ctx.t("login.locked"), fmt_time(&until));
            return admins_view(&w, &ctx, StatusCode::TOO_MANY_REQUESTS, error_msg(&m)).await;
        }
        Err(e) => return fail(&ctx, e.into()),
    }
    match w.store().set_admin_password(&s.username, pw).await {
        Ok(()) => {
            admins_view(
                &w,
                &ctx,
                StatusCode::OK,
                html! { p.ok role="status" { (ctx.t("account.changed")) } },
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn admins(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    admins_view(&w, &ctx, StatusCode::OK, html! {}).await
}

fn error_msg(msg: &str) -> Markup {
    html! { p.error role="alert" id="form-error" { (msg) } }
}

async fn create_admin(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let user = field(&f, "username").trim();
    let pw = field(&f, "password");
    if let Err(e) = api::check_admin(user, pw) {
        return admins_view(
            &w,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            error_msg(ctx.t(e.key())),
        )
        .await;
    }
    let role = match field(&f, "role") {
        "viewer" => AdminRole::Viewer,
        _ => AdminRole::Admin,
    };
    match w.store().create_admin(user, pw, role).await {
        Ok(_) => {
            admins_view(
                &w,
                &ctx,
                StatusCode::CREATED,
                html! { p.ok role="status" { (ctx.t("saved")) } },
            )
            .await
        }
        Err(store::Error::Conflict(_)) => {
            admins_view(
                &w,
                &ctx,
                StatusCode::CONFLICT,
                error_msg(ctx.t("admin.duplicate")),
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn delete_admin(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(user): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    if ctx.session.as_ref().is_some_and(|s| s.username == user) {
        return admins_view(
            &w,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            error_msg(ctx.t("admin.self")),
        )
        .await;
    }
    match w.store().delete_admin(&user).await {
        Ok(()) => {
            w.close_sessions_of(&user);
            admins_view(
                &w,
                &ctx,
                StatusCode::OK,
                html! { p.ok role="status" { (ctx.t("saved")) } },
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn create_key(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let name = field(&f, "name").trim();
    if name.is_empty() || name.chars().count() > 64 {
        return admins_view(
            &w,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            error_msg(ctx.t("keys.bad_name")),
        )
        .await;
    }
    let scope = if field(&f, "scope") == "full" {
        ApiScope::Full
    } else {
        ApiScope::Read
    };
    match w.store().create_api_key(None, name, scope).await {
        Ok((_, token)) => {
            let msg = html! { div.once role="status" { p { (ctx.t("keys.once")) } p { code id="new-token" { (token) } } } };
            admins_view(&w, &ctx, StatusCode::CREATED, msg).await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn delete_key(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return notice(
            &ctx,
            StatusCode::NOT_FOUND,
            "title.error",
            ctx.t("err.not_found"),
        );
    };
    match w.store().delete_api_key(id).await {
        Ok(()) => {
            admins_view(
                &w,
                &ctx,
                StatusCode::OK,
                html! { p.ok role="status" { (ctx.t("saved")) } },
            )
            .await
        }
        Err(e) => fail(&ctx, e.into()),
    }
}
