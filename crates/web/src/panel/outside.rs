//! Panel pages for outside lines: trunks with their live state, outbound routes (ordered),
//! inbound routes (DIDs), the outbound policy, and the outside-call fields of the extension
//! form, the dashboard and the call history. Validation is the store's (`engine::outside`); a
//! refusal is shown next to the field the store names, with the user's input kept.

use std::collections::HashMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::Value;
use store::{CallClass, DidSpec, ExtLimits, RouteSpec, TenantOutbound, TrunkSpec};

use super::{Ctx, Signed, check_write, csrf_field, err_text, fail, fmt_time, page, url_encode};
use crate::Web;
use crate::api::ApiError;
use crate::api::outside as api;
use engine::outside::{DidFrom, DtmfMode, Identity, KNOWN_CODECS, TrunkTransport};

/// Raw form fields in order (a route's trunks repeat `trunk`).
type Fields = Vec<(String, String)>;

/// Routes of the outside-line pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/trunks", get(trunks).post(create_trunk))
        .route("/trunks/new", get(new_trunk))
        .route("/trunks/{name}/edit", get(edit_trunk).post(save_trunk))
        .route("/trunks/{name}/delete", post(delete_trunk))
        .route("/fragments/trunks", get(trunks_fragment))
        .route("/routes", get(routes_page).post(create_route))
        .route("/routes/new", get(new_route))
        .route("/routes/{name}/edit", get(edit_route).post(save_route))
        .route("/routes/{name}/move", post(move_route))
        .route("/routes/{name}/delete", post(delete_route))
        .route("/dids", get(dids).post(create_did))
        .route("/dids/new", get(new_did))
        .route("/dids/{pattern}/edit", get(edit_did).post(save_did))
        .route("/dids/{pattern}/delete", post(delete_did))
        .route("/outbound", get(outbound).post(save_outbound))
}

/// A refused field and the message to show next to it.
#[derive(Debug, Clone, Default)]
pub(super) struct FormErr {
    pub(super) field: String,
    pub(super) msg: String,
}

impl FormErr {
    pub(super) fn new(field: &str, msg: impl Into<String>) -> FormErr {
        FormErr {
            field: field.to_string(),
            msg: msg.into(),
        }
    }

    /// A store or API refusal, shown at the field it names.
    pub(super) fn from_api(ctx: &Ctx, e: &ApiError) -> FormErr {
        FormErr {
            field: e.field.clone().unwrap_or_default(),
            msg: err_text(ctx, e),
        }
    }
}

pub(super) fn val<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

fn vals<'a>(f: &'a Fields, k: &str) -> Vec<&'a str> {
    f.iter()
        .filter(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(super) fn checked(f: &Fields, k: &str) -> bool {
    val(f, k) == "on"
}

pub(super) fn pairs(items: &[(&str, String)]) -> Fields {
    items
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

pub(super) fn on(b: bool) -> String {
    if b { "on".into() } else { String::new() }
}

fn lines(s: &str) -> Vec<String> {
    s.split(['\n', ',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The message next to `field`, if the error is about it.
pub(super) fn err_at(err: Option<&FormErr>, field: &str) -> Markup {
    html! {
        @if let Some(e) = err.filter(|e| e.field == field) {
            span.error.field-error id={ "err-" (field) } data-field=(field) { (e.msg) }
        }
    }
}

/// The error at the top of a form (for screen readers and fields without their own input).
pub(super) fn err_top(err: Option<&FormErr>) -> Markup {
    html! { @if let Some(e) = err { p.error role="alert" id="form-error" data-field=(e.field) { (e.msg) } } }
}

pub(super) fn text_input(
    ctx: &Ctx,
    f: &Fields,
    err: Option<&FormErr>,
    name: &str,
    key: &str,
) -> Markup {
    html! { label { (ctx.t(key)) input type="text" name=(name) value=(val(f, name)); (err_at(err, name)) } }
}

fn select(
    ctx: &Ctx,
    f: &Fields,
    err: Option<&FormErr>,
    name: &str,
    key: &str,
    options: &[(&str, &str)],
) -> Markup {
    html! { label { (ctx.t(key))
        select name=(name) { @for (v, label) in options { option value=(v) selected[val(f, name) == *v] { (label) } } }
        (err_at(err, name))
    } }
}

pub(super) fn check(ctx: &Ctx, f: &Fields, name: &str, key: &str) -> Markup {
    html! { label.check { input type="checkbox" name=(name) value="on" checked[checked(f, name)]; (ctx.t(key)) } }
}

/// Parses a whole number field (empty: `default`).
pub(super) fn num<T: std::str::FromStr>(f: &Fields, k: &str, default: T) -> Result<T, FormErr> {
    let s = val(f, k).trim();
    if s.is_empty() {
        return Ok(default);
    }
    s.parse().map_err(|_| FormErr::new(k, ""))
}

/// Refuses a form without the session's CSRF token or from a viewer; pins `key` to the path's
/// `value` (editing cannot rename).
pub(super) fn edit_form(ctx: &Ctx, f: &mut Fields, key: &str, value: &str) -> Option<Response> {
    let r = check_write(ctx, &f.iter().cloned().collect());
    f.retain(|(k, _)| k != key);
    f.push((key.to_string(), value.to_string()));
    r
}

fn sub_nav(ctx: &Ctx) -> Markup {
    html! {
        nav.sub {
            a href="/trunks" { (ctx.t("nav.trunks")) } " · "
            a href="/routes" { (ctx.t("nav.routes")) } " · "
            a href="/dids" { (ctx.t("nav.dids")) } " · "
            a href="/outbound" { (ctx.t("nav.outbound")) }
        }
    }
}

pub(super) fn ok_msg(ctx: &Ctx, key: &str) -> Markup {
    html! { p.ok role="status" id="form-ok" { (ctx.t(key)) } }
}

/// A form-number error made readable (`num` leaves the message empty).
pub(super) fn localize(ctx: &Ctx, mut e: FormErr) -> FormErr {
    if e.msg.is_empty() {
        e.msg = ctx.t("out.bad_number").to_string();
    }
    e
}

pub(super) async fn tenant(w: &Web) -> Result<i64, ApiError> {
    Ok(w.store().default_tenant().await?.id)
}

// ----- trunks -----

fn registration_key(s: &str) -> &'static str {
    match s {
        "registered" => "trunk.reg.registered",
        "registering" => "trunk.reg.registering",
        "failing" => "trunk.reg.failing",
        "unregistered" => "trunk.reg.unregistered",
        _ => "trunk.reg.off",
    }
}

fn health_key(s: &str) -> &'static str {
    match s {
        "up" => "trunk.health.up",
        "down" => "trunk.health.down",
        "unknown" => "trunk.health.unknown",
        _ => "trunk.health.off",
    }
}

fn unix_time(v: &Value) -> Option<String> {
    let n = v.as_u64()?;
    chrono::DateTime::from_timestamp(n as i64, 0).map(|t| fmt_time(&t))
}

fn trunk_table(ctx: &Ctx, trunks: &[store::Trunk], states: &[api::TrunkState]) -> Markup {
    html! {
        @if trunks.is_empty() { p.empty id="no-trunks" { (ctx.t("trunk.none")) } } @else {
        table.trunks {
            thead { tr {
                th { (ctx.t("trunk.name")) } th { (ctx.t("trunk.host")) } th { (ctx.t("trunk.kind")) }
                th { (ctx.t("trunk.registration")) } th { (ctx.t("trunk.health")) } th { (ctx.t("trunk.calls")) } th { (ctx.t("trunk.enabled")) }
            } }
            tbody { @for t in trunks {
                @let st = states.iter().find(|s| s.name == t.name).and_then(|s| s.current()).unwrap_or(Value::Null);
                @let reg = st.get("registration").and_then(Value::as_str).unwrap_or(if t.spec.register { "unregistered" } else { "off" });
                @let health = st.get("health").and_then(Value::as_str).unwrap_or("unknown");
                tr data-trunk=(t.name) {
                    td { a href={ "/trunks/" (url_encode(&t.name)) "/edit" } { (t.name) } }
                    td { (t.spec.host) @if let Some(p) = t.spec.port { ":" (p) } " " (t.spec.transport.as_str()) }
                    td { (ctx.t(if t.spec.register { "trunk.kind.register" } else { "trunk.kind.ip" })) }
                    td.state data-registration=(reg) {
                        (ctx.t(registration_key(reg)))
                        @if let Some(a) = st.get("last_register_answer").and_then(Value::as_str) { br; small { (ctx.t("trunk.last_answer")) ": " (a) } }
                        @if let Some(f) = st.get("failure").and_then(Value::as_str) { br; small.error { (f) } }
                        @if reg == "failing" { @if let Some(at) = st.get("next_attempt_at").and_then(unix_time) { br; small { (ctx.t("trunk.next_retry")) ": " (at) } } }
                    }
                    td.state data-health=(health) {
                        (ctx.t(health_key(health)))
                        @if let Some(a) = st.get("last_ping_answer").and_then(Value::as_str) { br; small { (a) } }
                        @if let Some(ms) = st.get("rtt_ms").and_then(Value::as_u64) { " (" (ms) " ms)" }
                    }
                    td data-calls { (st.get("calls").and_then(Value::as_u64).unwrap_or(0)) }
                    td { (ctx.t(if t.spec.enabled { "yes" } else { "no" })) }
                }
            } }
        }
        }
    }
}

async fn trunk_list(w: &Web, ctx: &Ctx) -> Result<Markup, ApiError> {
    let trunks = w.store().list_trunks(tenant(w).await?).await?;
    let states = api::trunk_states(w).await?;
    Ok(trunk_table(ctx, &trunks, &states))
}

async fn trunks_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let table = match trunk_list(w, ctx).await {
        Ok(m) => m,
        Err(e) => return fail(ctx, e),
    };
    let body = html! {
        (sub_nav(ctx))
        (msg)
        div id="trunk-table" data-live="/fragments/trunks" { (table) }
        @if ctx.is_admin() { p { a.button href="/trunks/new" id="add-trunk" { (ctx.t("trunk.add")) } } }
    };
    page(ctx, status, "title.trunks", body)
}

async fn trunks(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    trunks_view(&w, &ctx, StatusCode::OK, html! {}).await
}

async fn trunks_fragment(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    match trunk_list(&w, &ctx).await {
        Ok(m) => m.into_response(),
        Err(e) => e.into_response(),
    }
}

fn trunk_fields(name: &str, t: &TrunkSpec) -> Fields {
    pairs(&[
        ("name", name.to_string()),
        ("host", t.host.clone()),
        ("port", t.port.map(|p| p.to_string()).unwrap_or_default()),
        ("transport", t.transport.as_str().into()),
        ("register", on(t.register)),
        ("enabled", on(t.enabled)),
        ("username", t.username.clone()),
        ("auth_username", t.auth_username.clone()),
        ("from_user", t.from_user.clone()),
        ("from_domain", t.from_domain.clone()),
        ("identity", t.identity.as_str().into()),
        ("did_from", t.did_from.as_str().into()),
        (
            "outbound_proxy",
            t.outbound_proxy.clone().unwrap_or_default(),
        ),
        ("codecs", t.codecs.join(", ")),
        ("dtmf", t.dtmf.as_str().into()),
        ("max_calls", t.max_calls.to_string()),
        ("ping_interval_s", t.ping_interval_s.to_string()),
        ("expires_s", t.expires_s.to_string()),
        ("inbound_addrs", t.inbound_addrs.join("\n")),
    ])
}

fn word_parse<T: std::str::FromStr<Err = String>>(f: &Fields, k: &str) -> Result<T, FormErr> {
    val(f, k).parse::<T>().map_err(|e| FormErr::new(k, e))
}

/// The trunk a form describes (the password is read separately).
fn trunk_from_form(f: &Fields) -> Result<TrunkSpec, FormErr> {
    let port = match val(f, "port").trim() {
        "" => None,
        p => Some(p.parse::<u16>().map_err(|_| FormErr::new("port", ""))?),
    };
    let opt = |k: &str| Some(val(f, k).trim().to_string()).filter(|s| !s.is_empty());
    let d = TrunkSpec::default();
    Ok(TrunkSpec {
        host: val(f, "host").trim().to_string(),
        port,
        transport: word_parse::<TrunkTransport>(f, "transport")?,
        outbound_proxy: opt("outbound_proxy"),
        register: checked(f, "register"),
        username: val(f, "username").trim().to_string(),
        auth_username: val(f, "auth_username").trim().to_string(),
        from_user: val(f, "from_user").trim().to_string(),
        from_domain: val(f, "from_domain").trim().to_string(),
        did_from: word_parse::<DidFrom>(f, "did_from")?,
        identity: word_parse::<Identity>(f, "identity")?,
        codecs: lines(val(f, "codecs")),
        dtmf: word_parse::<DtmfMode>(f, "dtmf")?,
        max_calls: num(f, "max_calls", d.max_calls)?,
        ping_interval_s: num(f, "ping_interval_s", d.ping_interval_s)?,
        expires_s: num(f, "expires_s", d.expires_s)?,
        inbound_addrs: lines(val(f, "inbound_addrs")),
        enabled: checked(f, "enabled"),
    })
}

fn options<T: Copy>(
    all: &[T],
    word: impl Fn(T) -> &'static str,
) -> Vec<(&'static str, &'static str)> {
    all.iter().map(|v| (word(*v), word(*v))).collect()
}

fn trunk_form(ctx: &Ctx, f: &Fields, err: Option<&FormErr>, editing: Option<bool>) -> Markup {
    let action = match editing {
        Some(_) => format!("/trunks/{}/edit", url_encode(val(f, "name"))),
        None => "/trunks".to_string(),
    };
    let e = err;
    html! {
        (err_top(e))
        form method="post" action=(action) id="trunk-form" {
            (csrf_field(ctx))
            fieldset { legend { (ctx.t("trunk.group.basic")) }
                label { (ctx.t("trunk.name")) input type="text" name="name" value=(val(f, "name")) required readonly[editing.is_some()]; (err_at(e, "name")) }
                label { (ctx.t("trunk.host")) input type="text" name="host" value=(val(f, "host")) required placeholder="sip.example.jp"; (err_at(e, "host")) }
                label { (ctx.t("trunk.port")) input type="number" name="port" min="1" max="65535" value=(val(f, "port")) placeholder=(ctx.t("trunk.port_auto")); (err_at(e, "port")) }
                (select(ctx, f, e, "transport", "trunk.transport", &options(TrunkTransport::ALL, TrunkTransport::as_str)))
                (check(ctx, f, "register", "trunk.register"))
                (check(ctx, f, "enabled", "trunk.enabled"))
            }
            fieldset { legend { (ctx.t("trunk.group.auth")) }
                (text_input(ctx, f, e, "username", "trunk.username"))
                (text_input(ctx, f, e, "auth_username", "trunk.auth_username"))
                label { (ctx.t("trunk.password"))
                    input type="password" name="password" value="" autocomplete="new-password"
                        placeholder=(if editing == Some(true) { ctx.t("trunk.password_keep") } else { "" });
                    (err_at(e, "password"))
                }
            }
            fieldset { legend { (ctx.t("trunk.group.cid")) }
                (text_input(ctx, f, e, "from_user", "trunk.from_user"))
                (text_input(ctx, f, e, "from_domain", "trunk.from_domain"))
                (select(ctx, f, e, "identity", "trunk.identity", &options(Identity::ALL, Identity::as_str)))
                (select(ctx, f, e, "did_from", "trunk.did_from", &options(DidFrom::ALL, DidFrom::as_str)))
            }
            fieldset { legend { (ctx.t("trunk.group.advanced")) }
                (text_input(ctx, f, e, "outbound_proxy", "trunk.outbound_proxy"))
                label { (ctx.t("trunk.codecs")) input type="text" name="codecs" value=(val(f, "codecs")) placeholder=(KNOWN_CODECS.join(", ")); (err_at(e, "codecs")) }
                (select(ctx, f, e, "dtmf", "trunk.dtmf", &options(DtmfMode::ALL, DtmfMode::as_str)))
                label { (ctx.t("trunk.max_calls")) input type="number" name="max_calls" min="0" value=(val(f, "max_calls")); (err_at(e, "max_calls")) }
                label { (ctx.t("trunk.ping_interval")) input type="number" name="ping_interval_s" min="0" value=(val(f, "ping_interval_s")); (err_at(e, "ping_interval_s")) }
                label { (ctx.t("trunk.expires")) input type="number" name="expires_s" min="60" value=(val(f, "expires_s")); (err_at(e, "expires_s")) }
                label { (ctx.t("trunk.inbound_addrs")) textarea name="inbound_addrs" rows="3" { (val(f, "inbound_addrs")) } (err_at(e, "inbound_addrs")) }
            }
            button type="submit" { (ctx.t("save")) }
        }
        @if let Some(_) = editing {
            form.inline method="post" action={ "/trunks/" (url_encode(val(f, "name"))) "/delete" } {
                (csrf_field(ctx))
                button.danger type="submit" id="delete-trunk" { (ctx.t("delete")) }
            }
        }
        p { a href="/trunks" { (ctx.t("back")) } }
    }
}

fn trunk_page(
    ctx: &Ctx,
    status: StatusCode,
    f: &Fields,
    err: Option<&FormErr>,
    editing: Option<bool>,
) -> Response {
    let body = html! { (sub_nav(ctx)) (trunk_form(ctx, f, err, editing)) };
    page(
        ctx,
        status,
        if editing.is_some() {
            "title.trunk"
        } else {
            "title.trunk_new"
        },
        body,
    )
}

async fn new_trunk(Signed(ctx): Signed) -> Response {
    let f = trunk_fields("", &TrunkSpec::default());
    trunk_page(&ctx, StatusCode::OK, &f, None, None)
}

async fn create_trunk(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    let refused = |e: FormErr| {
        trunk_page(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            &f,
            Some(&localize(&ctx, e)),
            None,
        )
    };
    let spec = match trunk_from_form(&f) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let name = val(&f, "name").trim();
    let password = val(&f, "password");
    if spec.register && password.is_empty() {
        return refused(FormErr::new("password", ctx.t("trunk.password_needed")));
    }
    let res = async {
        w.check_create(crate::license::LimitKind::Trunks).await?;
        Ok::<_, ApiError>(
            w.store()
                .create_trunk(tenant(&w).await?, name, &spec, password)
                .await?,
        )
    }
    .await;
    match res {
        Ok(_) => trunks_view(&w, &ctx, StatusCode::CREATED, ok_msg(&ctx, "trunk.created")).await,
        // A licence limit is shown on the form, the input kept.
        Err(e) if matches!(e.code, "invalid" | "conflict" | "license_limit") => {
            let mut fe = FormErr::from_api(&ctx, &e);
            if e.code == "conflict" {
                fe.field = "name".into();
            }
            refused(fe)
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn edit_trunk(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
) -> Response {
    let t = async { Ok::<_, ApiError>(w.store().trunk(tenant(&w).await?, &name).await?) }.await;
    match t {
        Ok(Some(t)) => trunk_page(
            &ctx,
            StatusCode::OK,
            &trunk_fields(&t.name, &t.spec),
            None,
            Some(t.has_password),
        ),
        Ok(None) => fail(
            &ctx,
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("trunk {name}")),
        ),
        Err(e) => fail(&ctx, e),
    }
}

async fn save_trunk(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(mut f): Form<Fields>,
) -> Response {
    if let Some(r) = edit_form(&ctx, &mut f, "name", &name) {
        return r;
    }
    let old = async { Ok::<_, ApiError>(w.store().trunk(tenant(&w).await?, &name).await?) }.await;
    let old = match old {
        Ok(Some(t)) => t,
        Ok(None) => {
            return fail(
                &ctx,
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("trunk {name}")),
            );
        }
        Err(e) => return fail(&ctx, e),
    };
    let editing = Some(old.has_password);
    let refused = |e: FormErr| {
        trunk_page(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            &f,
            Some(&localize(&ctx, e)),
            editing,
        )
    };
    let spec = match trunk_from_form(&f) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    // An empty password field keeps the stored one (it is never shown).
    let password = Some(val(&f, "password")).filter(|p| !p.is_empty());
    if spec.register && password.is_none() && !old.has_password {
        return refused(FormErr::new("password", ctx.t("trunk.password_needed")));
    }
    match w
        .store()
        .update_trunk(old.tenant_id, &name, &spec, password)
        .await
    {
        Ok(_) => trunks_view(&w, &ctx, StatusCode::OK, ok_msg(&ctx, "saved")).await,
        Err(e) => {
            let e = ApiError::from(e);
            if e.code == "invalid" {
                refused(FormErr::from_api(&ctx, &e))
            } else {
                fail(&ctx, e)
            }
        }
    }
}

async fn delete_trunk(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res =
        async { Ok::<_, ApiError>(w.store().delete_trunk(tenant(&w).await?, &name).await?) }.await;
    match res {
        Ok(()) => trunks_view(&w, &ctx, StatusCode::OK, ok_msg(&ctx, "trunk.deleted")).await,
        Err(e) if e.code == "invalid" => {
            let msg = html! { p.error role="alert" id="form-error" { (err_text(&ctx, &e)) } };
            trunks_view(&w, &ctx, StatusCode::UNPROCESSABLE_ENTITY, msg).await
        }
        Err(e) => fail(&ctx, e),
    }
}

// ----- outbound routes -----

fn class_key(c: CallClass) -> &'static str {
    match c {
        CallClass::Internal => "cos.internal",
        CallClass::Local => "cos.local",
        CallClass::National => "cos.national",
        CallClass::Mobile => "cos.mobile",
        CallClass::International => "cos.international",
    }
}

fn class_options(ctx: &Ctx, with_internal: bool) -> Vec<(&'static str, &'static str)> {
    CallClass::ALL
        .iter()
        .filter(|c| with_internal || **c != CallClass::Internal)
        .map(|c| (c.as_str(), ctx.t(class_key(*c))))
        .collect()
}

fn route_fields(r: Option<&store::OutboundRoute>) -> Fields {
    let d = RouteSpec::default();
    let (name, s, pos) = match r {
        Some(r) => (r.name.clone(), &r.spec, r.position.to_string()),
        None => (String::new(), &d, String::new()),
    };
    let mut f = pairs(&[
        ("name", name),
        ("position", pos),
        ("pattern", s.patterns.join("\n")),
        ("strip", s.strip.to_string()),
        ("prepend", s.prepend.clone()),
        ("cos", s.class.as_str().into()),
        ("caller_id", s.caller_id.clone()),
        ("emergency", on(s.emergency)),
        ("enabled", on(s.enabled)),
    ]);
    f.extend(s.trunks.iter().map(|t| ("trunk".to_string(), t.clone())));
    f
}

fn route_from_form(f: &Fields) -> Result<(RouteSpec, Option<i64>), FormErr> {
    let position = match val(f, "position").trim() {
        "" => None,
        p => Some(p.parse::<i64>().map_err(|_| FormErr::new("position", ""))?),
    };
    let spec = RouteSpec {
        patterns: val(f, "pattern")
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        trunks: vals(f, "trunk")
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        strip: num(f, "strip", 0)?,
        prepend: val(f, "prepend").trim().to_string(),
        class: word_parse::<CallClass>(f, "cos")?,
        caller_id: val(f, "caller_id").trim().to_string(),
        emergency: checked(f, "emergency"),
        enabled: checked(f, "enabled"),
    };
    Ok((spec, position))
}

fn route_form(
    ctx: &Ctx,
    f: &Fields,
    err: Option<&FormErr>,
    editing: bool,
    trunks: &[String],
) -> Markup {
    let action = if editing {
        format!("/routes/{}/edit", url_encode(val(f, "name")))
    } else {
        "/routes".to_string()
    };
    let chosen = vals(f, "trunk");
    // One choice per trunk already in the route, and one more to add (up to every trunk).
    let slots = (chosen.len() + 1).min(trunks.len()).max(1);
    let e = err;
    html! {
        (err_top(e))
        @if trunks.is_empty() { p.hint id="no-trunks" { (ctx.t("route.need_trunk")) " " a href="/trunks/new" { (ctx.t("trunk.add")) } } }
        form method="post" action=(action) id="route-form" {
            (csrf_field(ctx))
            label { (ctx.t("route.name")) input type="text" name="name" value=(val(f, "name")) required readonly[editing]; (err_at(e, "name")) }
            label { (ctx.t("route.position")) input type="number" name="position" min="1" value=(val(f, "position")); (err_at(e, "position")) }
            label { (ctx.t("route.patterns")) textarea name="pattern" rows="4" placeholder="0|0ZXXXXXXXX" { (val(f, "pattern")) } (err_at(e, "pattern")) }
            fieldset { legend { (ctx.t("route.trunks")) }
                @for i in 0..slots {
                    label { (i + 1) "."
                        select name="trunk" {
                            option value="" { "—" }
                            @for t in trunks { option value=(t) selected[chosen.get(i) == Some(&t.as_str())] { (t) } }
                        }
                    }
                }
                (err_at(e, "trunk"))
            }
            label { (ctx.t("route.strip")) input type="number" name="strip" min="0" max="32" value=(val(f, "strip")); (err_at(e, "strip")) }
            (text_input(ctx, f, e, "prepend", "route.prepend"))
            (select(ctx, f, e, "cos", "route.class", &class_options(ctx, false)))
            (text_input(ctx, f, e, "caller_id", "route.caller_id"))
            (check(ctx, f, "emergency", "route.emergency"))
            (check(ctx, f, "enabled", "route.enabled"))
            button type="submit" { (ctx.t("save")) }
        }
        @if editing {
            form.inline method="post" action={ "/routes/" (url_encode(val(f, "name"))) "/delete" } {
                (csrf_field(ctx))
                button.danger type="submit" id="delete-route" { (ctx.t("delete")) }
            }
        }
        p { a href="/routes" { (ctx.t("back")) } }
    }
}

async fn route_page(
    w: &Web,
    ctx: &Ctx,
    status: StatusCode,
    f: &Fields,
    err: Option<&FormErr>,
    editing: bool,
) -> Response {
    let trunks = async { Ok::<_, ApiError>(w.store().list_trunks(tenant(w).await?).await?) }.await;
    let trunks: Vec<String> = match trunks {
        Ok(l) => l.into_iter().map(|t| t.name).collect(),
        Err(e) => return fail(ctx, e),
    };
    let body = html! { (sub_nav(ctx)) (route_form(ctx, f, err, editing, &trunks)) };
    page(
        ctx,
        status,
        if editing {
            "title.route"
        } else {
            "title.route_new"
        },
        body,
    )
}

async fn routes_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let list = async { Ok::<_, ApiError>(w.store().list_routes(tenant(w).await?).await?) }.await;
    let list = match list {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let n = list.len();
    let body = html! {
        (sub_nav(ctx))
        (msg)
        p.hint { (ctx.t("route.intro")) }
        @if list.is_empty() { p.empty id="no-routes" { (ctx.t("route.none")) } } @else {
        table.routes {
            thead { tr {
                th { "#" } th { (ctx.t("route.name")) } th { (ctx.t("route.patterns")) } th { (ctx.t("route.trunks")) }
                th { (ctx.t("route.class")) } th { (ctx.t("route.strip")) " / " (ctx.t("route.prepend")) } th { (ctx.t("route.caller_id")) }
                th { (ctx.t("route.enabled")) } @if ctx.is_admin() { th {} }
            } }
            tbody { @for (i, r) in list.iter().enumerate() {
                tr data-route=(r.name) data-position=(r.position) {
                    td { (r.position) }
                    td { a href={ "/routes/" (url_encode(&r.name)) "/edit" } { (r.name) }
                        @if r.spec.emergency { " " span.badge data-emergency { (ctx.t("route.emergency_badge")) } } }
                    td { @for p in &r.spec.patterns { code { (p) } " " } }
                    td { (r.spec.trunks.join(" → ")) }
                    td { (ctx.t(class_key(r.spec.class))) }
                    td { (r.spec.strip) " / " (r.spec.prepend) }
                    td { (r.spec.caller_id) }
                    td { (ctx.t(if r.spec.enabled { "yes" } else { "no" })) }
                    @if ctx.is_admin() { td {
                        @if i > 0 { (move_button(ctx, &r.name, "up")) }
                        @if i + 1 < n { (move_button(ctx, &r.name, "down")) }
                    } }
                }
            } }
        }
        }
        @if ctx.is_admin() { p { a.button href="/routes/new" id="add-route" { (ctx.t("route.add")) } } }
    };
    page(ctx, status, "title.routes", body)
}

fn move_button(ctx: &Ctx, name: &str, dir: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/routes/" (url_encode(name)) "/move" } {
            (csrf_field(ctx))
            input type="hidden" name="dir" value=(dir);
            button type="submit" data-move=(dir) title=(ctx.t(if dir == "up" { "route.up" } else { "route.down" })) {
                (if dir == "up" { "↑" } else { "↓" })
            }
        }
    }
}

async fn routes_page(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    routes_view(&w, &ctx, StatusCode::OK, html! {}).await
}

async fn new_route(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    route_page(&w, &ctx, StatusCode::OK, &route_fields(None), None, false).await
}

async fn create_route(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    let (spec, position) = match route_from_form(&f) {
        Ok(x) => x,
        Err(e) => {
            return route_page(
                &w,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &f,
                Some(&localize(&ctx, e)),
                false,
            )
            .await;
        }
    };
    let res = async {
        Ok::<_, ApiError>(
            w.store()
                .create_route(tenant(&w).await?, val(&f, "name").trim(), &spec, position)
                .await?,
        )
    }
    .await;
    match res {
        Ok(_) => routes_view(&w, &ctx, StatusCode::CREATED, ok_msg(&ctx, "route.created")).await,
        Err(e) if e.code == "invalid" || e.code == "conflict" => {
            let mut fe = FormErr::from_api(&ctx, &e);
            if e.code == "conflict" {
                fe.field = "name".into();
            }
            route_page(
                &w,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &f,
                Some(&fe),
                false,
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn find_route(w: &Web, name: &str) -> Result<store::OutboundRoute, ApiError> {
    w.store()
        .route(tenant(w).await?, name)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("route {name}")))
}

async fn edit_route(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
) -> Response {
    match find_route(&w, &name).await {
        Ok(r) => {
            route_page(
                &w,
                &ctx,
                StatusCode::OK,
                &route_fields(Some(&r)),
                None,
                true,
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn save_route(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(mut f): Form<Fields>,
) -> Response {
    if let Some(r) = edit_form(&ctx, &mut f, "name", &name) {
        return r;
    }
    let old = match find_route(&w, &name).await {
        Ok(r) => r,
        Err(e) => return fail(&ctx, e),
    };
    let (spec, position) = match route_from_form(&f) {
        Ok(x) => x,
        Err(e) => {
            return route_page(
                &w,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &f,
                Some(&localize(&ctx, e)),
                true,
            )
            .await;
        }
    };
    match w
        .store()
        .update_route(old.tenant_id, &name, &spec, position)
        .await
    {
        Ok(_) => routes_view(&w, &ctx, StatusCode::OK, ok_msg(&ctx, "saved")).await,
        Err(e) => {
            let e = ApiError::from(e);
            if e.code == "invalid" {
                route_page(
                    &w,
                    &ctx,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &f,
                    Some(&FormErr::from_api(&ctx, &e)),
                    true,
                )
                .await
            } else {
                fail(&ctx, e)
            }
        }
    }
}

async fn move_route(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let r = match find_route(&w, &name).await {
        Ok(r) => r,
        Err(e) => return fail(&ctx, e),
    };
    let to = if f.get("dir").map(String::as_str) == Some("up") {
        (r.position - 1).max(1)
    } else {
        r.position + 1
    };
    match w
        .store()
        .update_route(r.tenant_id, &name, &r.spec, Some(to))
        .await
    {
        Ok(_) => routes_view(&w, &ctx, StatusCode::OK, html! {}).await,
        Err(e) => fail(&ctx, e.into()),
    }
}

async fn delete_route(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res =
        async { Ok::<_, ApiError>(w.store().delete_route(tenant(&w).await?, &name).await?) }.await;
    match res {
        Ok(()) => routes_view(&w, &ctx, StatusCode::OK, ok_msg(&ctx, "route.deleted")).await,
        Err(e) => fail(&ctx, e),
    }
}

// ----- inbound routes -----

fn did_fields(pattern: &str, d: &DidSpec) -> Fields {
    pairs(&[
        ("pattern", pattern.to_string()),
        ("to", d.destination.clone()),
        ("trunk", d.trunk.clone()),
        ("description", d.description.clone()),
    ])
}

fn did_from_form(f: &Fields) -> DidSpec {
    DidSpec {
        destination: val(f, "to").trim().to_string(),
        trunk: val(f, "trunk").trim().to_string(),
        description: val(f, "description").trim().to_string(),
    }
}

async fn did_page(
    w: &Web,
    ctx: &Ctx,
    status: StatusCode,
    f: &Fields,
    err: Option<&FormErr>,
    editing: bool,
) -> Response {
    let trunks = async { Ok::<_, ApiError>(w.store().list_trunks(tenant(w).await?).await?) }.await;
    let trunks = match trunks {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let mut opts: Vec<(&str, &str)> = vec![("", ctx.t("did.any_trunk"))];
    opts.extend(trunks.iter().map(|t| (t.name.as_str(), t.name.as_str())));
    let action = if editing {
        format!("/dids/{}/edit", url_encode(val(f, "pattern")))
    } else {
        "/dids".to_string()
    };
    let e = err;
    let body = html! {
        (sub_nav(ctx))
        (err_top(e))
        form method="post" action=(action) id="did-form" {
            (csrf_field(ctx))
            label { (ctx.t("did.pattern")) input type="text" name="pattern" value=(val(f, "pattern")) required readonly[editing] placeholder="0312345678 / 03XXXXXXXX / any"; (err_at(e, "pattern")) }
            label { (ctx.t("did.destination")) input type="text" name="to" value=(val(f, "to")) required placeholder="ext:1001"; (err_at(e, "to")) }
            (select(ctx, f, e, "trunk", "did.trunk", &opts))
            (text_input(ctx, f, e, "description", "did.description"))
            button type="submit" { (ctx.t("save")) }
        }
        p.hint { (ctx.t("did.hint")) }
        @if editing {
            form.inline method="post" action={ "/dids/" (url_encode(val(f, "pattern"))) "/delete" } {
                (csrf_field(ctx))
                button.danger type="submit" id="delete-did" { (ctx.t("delete")) }
            }
        }
        p { a href="/dids" { (ctx.t("back")) } }
    };
    page(
        ctx,
        status,
        if editing {
            "title.did"
        } else {
            "title.did_new"
        },
        body,
    )
}

async fn dids_view(w: &Web, ctx: &Ctx, status: StatusCode, msg: Markup) -> Response {
    let list = match api::dids_in_order(w).await {
        Ok(l) => l,
        Err(e) => return fail(ctx, e),
    };
    let body = html! {
        (sub_nav(ctx))
        (msg)
        @if list.is_empty() { p.empty id="no-dids" { (ctx.t("did.none")) } } @else {
        table.dids {
            thead { tr { th { (ctx.t("did.pattern")) } th { (ctx.t("did.destination")) } th { (ctx.t("did.trunk")) } th { (ctx.t("did.description")) } } }
            tbody { @for d in &list {
                tr data-did=(d.pattern) {
                    td { a href={ "/dids/" (url_encode(&d.pattern)) "/edit" } {
                        @if d.pattern == "any" { (ctx.t("did.catch_all")) } @else { (d.pattern) }
                    } }
                    td { code { (d.spec.destination) } }
                    td { @if d.spec.trunk.is_empty() { (ctx.t("did.any_trunk")) } @else { (d.spec.trunk) } }
                    td { (d.spec.description) }
                }
            } }
        }
        }
        @if ctx.is_admin() { p { a.button href="/dids/new" id="add-did" { (ctx.t("did.add")) } } }
    };
    page(ctx, status, "title.dids", body)
}

async fn dids(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    dids_view(&w, &ctx, StatusCode::OK, html! {}).await
}

async fn new_did(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    did_page(
        &w,
        &ctx,
        StatusCode::OK,
        &did_fields("", &DidSpec::default()),
        None,
        false,
    )
    .await
}

async fn put_did(w: &Web, ctx: &Ctx, f: &Fields, editing: bool) -> Response {
    let spec = did_from_form(f);
    let res = async {
        Ok::<_, ApiError>(
            w.store()
                .put_did(tenant(w).await?, val(f, "pattern"), &spec, !editing)
                .await?,
        )
    }
    .await;
    match res {
        Ok(_) => {
            dids_view(
                w,
                ctx,
                if editing {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                ok_msg(ctx, if editing { "saved" } else { "did.created" }),
            )
            .await
        }
        Err(e) if e.code == "invalid" || e.code == "conflict" => {
            let mut fe = FormErr::from_api(ctx, &e);
            if e.code == "conflict" {
                fe.field = "pattern".into();
            }
            did_page(
                w,
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                f,
                Some(&fe),
                editing,
            )
            .await
        }
        Err(e) => fail(ctx, e),
    }
}

async fn create_did(State(w): State<Web>, Signed(ctx): Signed, Form(f): Form<Fields>) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    put_did(&w, &ctx, &f, false).await
}

async fn edit_did(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(pattern): Path<String>,
) -> Response {
    match api::find_did(&w, &pattern).await {
        Ok(d) => {
            did_page(
                &w,
                &ctx,
                StatusCode::OK,
                &did_fields(&d.pattern, &d.spec),
                None,
                true,
            )
            .await
        }
        Err(e) => fail(&ctx, e),
    }
}

async fn save_did(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(pattern): Path<String>,
    Form(mut f): Form<Fields>,
) -> Response {
    let d = match api::find_did(&w, &pattern).await {
        Ok(d) => d,
        Err(e) => return fail(&ctx, e),
    };
    if let Some(r) = edit_form(&ctx, &mut f, "pattern", &d.pattern) {
        return r;
    }
    put_did(&w, &ctx, &f, true).await
}

async fn delete_did(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Path(pattern): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f) {
        return r;
    }
    let res = match api::find_did(&w, &pattern).await {
        Ok(d) => w
            .store()
            .delete_did(d.tenant_id, &d.pattern)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => dids_view(&w, &ctx, StatusCode::OK, ok_msg(&ctx, "did.deleted")).await,
        Err(e) => fail(&ctx, e),
    }
}

// ----- outbound policy -----

fn policy_fields(p: &TenantOutbound) -> Fields {
    pairs(&[
        ("main_number", p.main_number.clone()),
        ("emergency_numbers", p.emergency_numbers.join(", ")),
        ("max_concurrent", p.max_concurrent.to_string()),
        ("max_per_hour", p.max_per_hour.to_string()),
        ("intl_minutes_per_day", p.intl_minutes_per_day.to_string()),
    ])
}

fn policy_page(
    ctx: &Ctx,
    status: StatusCode,
    f: &Fields,
    err: Option<&FormErr>,
    msg: Markup,
) -> Response {
    let e = err;
    let n = |name: &str, key: &str| {
        html! {
            label { (ctx.t(key)) input type="number" name=(name) min="0" value=(val(f, name)) disabled[!ctx.is_admin()]; (err_at(e, name)) }
        }
    };
    let body = html! {
        (sub_nav(ctx))
        (msg)
        (err_top(e))
        form method="post" action="/outbound" id="policy-form" {
            (csrf_field(ctx))
            label { (ctx.t("policy.main_number")) input type="text" name="main_number" value=(val(f, "main_number")) disabled[!ctx.is_admin()]; (err_at(e, "main_number")) }
            label { (ctx.t("policy.emergency")) input type="text" name="emergency_numbers" value=(val(f, "emergency_numbers")) disabled[!ctx.is_admin()]; (err_at(e, "emergency_numbers")) }
            fieldset { legend { (ctx.t("policy.limits")) }
                (n("max_concurrent", "limits.concurrent"))
                (n("max_per_hour", "limits.per_hour"))
                (n("intl_minutes_per_day", "limits.intl_minutes"))
            }
            @if ctx.is_admin() { button type="submit" { (ctx.t("save")) } }
        }
        p.hint { (ctx.t("policy.hint")) }
    };
    page(ctx, status, "title.outbound", body)
}

async fn outbound(State(w): State<Web>, Signed(ctx): Signed) -> Response {
    let p = async { Ok::<_, ApiError>(w.store().tenant_outbound(tenant(&w).await?).await?) }.await;
    match p {
        Ok(p) => policy_page(&ctx, StatusCode::OK, &policy_fields(&p), None, html! {}),
        Err(e) => fail(&ctx, e),
    }
}

async fn save_outbound(
    State(w): State<Web>,
    Signed(ctx): Signed,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = check_write(&ctx, &f.iter().cloned().collect()) {
        return r;
    }
    let refused = |e: FormErr| {
        policy_page(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            &f,
            Some(&e),
            html! {},
        )
    };
    let parsed = (|| {
        Ok::<_, FormErr>(TenantOutbound {
            main_number: val(&f, "main_number").trim().to_string(),
            emergency_numbers: lines(val(&f, "emergency_numbers")),
            max_concurrent: num(&f, "max_concurrent", 0)?,
            max_per_hour: num(&f, "max_per_hour", 0)?,
            intl_minutes_per_day: num(&f, "intl_minutes_per_day", 0)?,
        })
    })();
    let p = match parsed {
        Ok(p) => p,
        Err(e) => return refused(localize(&ctx, e)),
    };
    let res =
        async { Ok::<_, ApiError>(w.store().set_tenant_outbound(tenant(&w).await?, &p).await?) }
            .await;
    match res {
        Ok(()) => policy_page(
            &ctx,
            StatusCode::OK,
            &policy_fields(&p),
            None,
            ok_msg(&ctx, "saved"),
        ),
        Err(e) if e.code == "invalid" => refused(FormErr::from_api(&ctx, &e)),
        Err(e) => fail(&ctx, e),
    }
}

// ----- pieces of other pages -----

/// The outside-call fields of the extension form: from the form the user sent (`form`), else
/// from the extension.
pub(super) fn ext_fields(
    ctx: &Ctx,
    ext: &store::Extension,
    form: Option<&HashMap<String, String>>,
    err: Option<&FormErr>,
) -> Markup {
    let f: Fields = match form {
        Some(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        None => pairs(&[
            ("cos", ext.cos.as_str().into()),
            ("outbound_cid", ext.outbound_cid.clone()),
            ("anonymous", on(ext.anonymous)),
            ("max_concurrent", ext.limits.max_concurrent.to_string()),
            ("max_per_hour", ext.limits.max_per_hour.to_string()),
            (
                "intl_minutes_per_day",
                ext.limits.intl_minutes_per_day.to_string(),
            ),
        ]),
    };
    let e = err;
    html! {
        fieldset id="outside-calls" { legend { (ctx.t("ext.outside")) }
            (select(ctx, &f, e, "cos", "ext.cos", &class_options(ctx, true)))
            label { (ctx.t("ext.outbound_cid")) input type="text" name="outbound_cid" value=(val(&f, "outbound_cid")) placeholder=(ctx.t("ext.cid_main")); (err_at(e, "outbound_cid")) }
            (check(ctx, &f, "anonymous", "ext.anonymous"))
            @for (name, key) in [("max_concurrent", "limits.concurrent"), ("max_per_hour", "limits.per_hour"), ("intl_minutes_per_day", "limits.intl_minutes")] {
                label { (ctx.t(key)) input type="number" name=(name) min="0" value=(val(&f, name)); (err_at(e, name)) }
            }
        }
    }
}

/// The outside-call fields of a submitted extension form: `(class, caller ID, anonymous,
/// limits)`; fields absent from the form keep the extension's values.
pub(super) fn ext_from_form(
    ctx: &Ctx,
    ext: &store::Extension,
    m: &HashMap<String, String>,
) -> Result<(CallClass, String, bool, ExtLimits), FormErr> {
    let f: Fields = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let cos = match val(&f, "cos") {
        "" => ext.cos,
        _ => word_parse::<CallClass>(&f, "cos")?,
    };
    let l = ext.limits;
    let limits = ExtLimits {
        max_concurrent: num(&f, "max_concurrent", l.max_concurrent)
            .map_err(|e| localize(ctx, e))?,
        max_per_hour: num(&f, "max_per_hour", l.max_per_hour).map_err(|e| localize(ctx, e))?,
        intl_minutes_per_day: num(&f, "intl_minutes_per_day", l.intl_minutes_per_day)
            .map_err(|e| localize(ctx, e))?,
    };
    Ok((
        cos,
        val(&f, "outbound_cid").trim().to_string(),
        checked(&f, "anonymous"),
        limits,
    ))
}

/// Outside calls refused by toll-fraud limits, from the core's metrics text.
fn fraud_blocked(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("denwa_toll_fraud_blocked_total "))
        .and_then(|v| v.trim().parse().ok())
}

/// The dashboard's trunk panel: name, state, calls (nothing when there are no trunks).
pub(super) async fn dashboard_trunks(w: &Web, ctx: &Ctx) -> Result<Markup, ApiError> {
    let states = api::trunk_states(w).await?;
    if states.is_empty() {
        return Ok(html! {});
    }
    let fraud = fraud_blocked(&w.control().render_metrics());
    Ok(html! {
        section id="dash-trunks" {
            h2 { a href="/trunks" { (ctx.t("nav.trunks")) } }
            table.trunks { thead { tr { th { (ctx.t("trunk.name")) } th { (ctx.t("trunk.state")) } th { (ctx.t("trunk.calls")) } } }
            tbody { @for s in &states {
                @let cur = s.current().unwrap_or(Value::Null);
                @let reg = cur.get("registration").and_then(Value::as_str).unwrap_or(if s.register { "unregistered" } else { "off" });
                @let health = cur.get("health").and_then(Value::as_str).unwrap_or("unknown");
                tr data-trunk=(s.name) {
                    td { (s.name) }
                    td data-registration=(reg) data-health=(health) {
                        @if !s.enabled { (ctx.t("trunk.disabled")) }
                        @else if s.register { (ctx.t(registration_key(reg))) " · " (ctx.t(health_key(health))) }
                        @else { (ctx.t(health_key(health))) }
                    }
                    td { (cur.get("calls").and_then(Value::as_u64).unwrap_or(0)) }
                }
            } } }
            @if let Some(n) = fraud { p id="toll-fraud" { (ctx.t("dash.fraud_blocked")) ": " strong { (n) } } }
        }
    })
}

/// The call-history filters for direction, trunk and DID.
pub(super) fn history_filters(ctx: &Ctx, q: &HashMap<String, String>) -> Markup {
    let dir = q.get("direction").map(String::as_str).unwrap_or("");
    html! {
        label { (ctx.t("hist.direction"))
            select name="direction" {
                option value="" { (ctx.t("hist.any")) }
                @for d in ["internal", "inbound", "outbound"] { option value=(d) selected[dir == d] { (ctx.t(direction_key(d))) } }
            }
        }
        label { (ctx.t("hist.trunk")) input type="text" name="trunk" value=(q.get("trunk").map(String::as_str).unwrap_or("")); }
        label { (ctx.t("hist.did")) input type="text" name="did" value=(q.get("did").map(String::as_str).unwrap_or("")); }
    }
}

fn direction_key(d: &str) -> &'static str {
    match d {
        "inbound" => "dir.inbound",
        "outbound" => "dir.outbound",
        _ => "dir.internal",
    }
}

/// Column heads of the call-history route columns.
pub(super) fn history_heads(ctx: &Ctx) -> Markup {
    html! { th { (ctx.t("hist.direction")) } th { (ctx.t("hist.trunk")) } th { (ctx.t("hist.did")) } }
}

/// The route cells of a call record.
pub(super) fn history_cells(ctx: &Ctx, r: &store::NewCdr) -> Markup {
    let d = r.route.direction.as_str();
    html! { td data-direction=(d) { (ctx.t(direction_key(d))) } td { (r.route.trunk) } td { (r.route.did) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraud_counter_is_read_from_metrics() {
        let m = "# HELP x\ndenwa_toll_fraud_blocked_total 3\ndenwa_up 1\n";
        assert_eq!(fraud_blocked(m), Some(3));
        assert_eq!(fraud_blocked("denwa_up 1\n"), None);
    }

    #[test]
    fn trunk_form_round_trips() {
        let spec = TrunkSpec {
            host: "sip.example.jp".into(),
            port: Some(5080),
            register: true,
            username: "0312345678".into(),
            inbound_addrs: vec!["192.0.2.0/24".into()],
            ..TrunkSpec::default()
        };
        let f = trunk_fields("ntt", &spec);
        assert_eq!(trunk_from_form(&f).unwrap(), spec);
        let mut bad = f.clone();
        bad.retain(|(k, _)| k != "port");
        bad.push(("port".into(), "x".into()));
        assert_eq!(trunk_from_form(&bad).unwrap_err().field, "port");
    }

    #[test]
    fn route_form_keeps_trunk_order() {
        let mut f = pairs(&[
            ("pattern", "0|0ZXXXXXXXX\n\n0|0[789]0XXXXXXXX".into()),
            ("cos", "mobile".into()),
        ]);
        f.push(("trunk".into(), "b".into()));
        f.push(("trunk".into(), "".into()));
        f.push(("trunk".into(), "a".into()));
        let (spec, pos) = route_from_form(&f).unwrap();
        assert_eq!(spec.trunks, vec!["b", "a"]);
        assert_eq!(spec.patterns.len(), 2);
        assert_eq!(pos, None);
    }
}
