//! REST API `/api/v1`: JSON in and out, `Authorization: Bearer <API key>`, read or full scope,
//! errors as `{"error": {"code": "...", "message": "..."}}` with a stable code, lists paged as
//! `{"items": [...], "total": N, "limit": L, "offset": O}`.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use engine::policy;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{AdminRole, ApiScope, CdrQuery, Disposition, Page};

use crate::{Web, settings};

mod apps;
mod backup_remote;
mod codes;
pub(crate) mod custom_prompts;
mod hunt;
mod language;
pub(crate) mod outside;
mod page;
pub(crate) mod park;
pub mod prompts;
pub(crate) mod recordings;
pub(crate) mod reports;
pub(crate) mod subs;
pub(crate) mod tenant_settings;
mod transfer;
pub(crate) use transfer::refusal as transfer_refusal;
pub(crate) mod voicemail;

/// Largest backup upload accepted (bytes).
pub const MAX_BACKUP_BYTES: usize = 512 * 1024 * 1024;
/// Most rows one CSV export holds.
pub const MAX_CSV_ROWS: i64 = 100_000;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;
/// Largest offset (deeper paging is a mistake or an attack, not a use).
pub const MAX_OFFSET: i64 = 1_000_000_000;

/// An API error: HTTP status, stable machine code and a human message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`unauthorized`, `forbidden`, `not_found`, `invalid`, `conflict`,
    /// `bad_request`, `backup_rejected`, `unavailable`, `internal`).
    pub code: &'static str,
    /// Explanation.
    pub message: String,
    /// The refused input field, as the store names it (validation errors only).
    pub field: Option<String>,
}

impl ApiError {
    /// An error with the given parts.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(f) = self.field {
            error["field"] = Value::from(f);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        use store::Error as E;
        match &e {
            E::Invalid { field, .. } => ApiError {
                field: Some((*field).to_string()),
                ..ApiError::invalid(e.to_string())
            },
            E::NotFound(_) => ApiError::not_found(e.to_string()),
            E::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            E::Backup(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "backup_rejected",
                e.to_string(),
            ),
            // The cluster write fence (`store::fence`): this node may not write (it lost or
            // never had the active role); nothing was committed. The same answer as a
            // standby's refusal.
            E::Fenced(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "standby_read_only",
                e.to_string(),
            ),
            // A licence cap re-checked in the insert's transaction (a create that raced past
            // `check_create`).
            E::Limit { .. } => ApiError::new(StatusCode::FORBIDDEN, "license_limit", e.to_string()),
            E::Db(_) | E::Closed => {
                tracing::warn!(error = %e, "API: database error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable",
                )
            }
            _ => {
                tracing::warn!(error = %e, "API: internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections come back as API errors.
pub struct J<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for J<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(J(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let (status, code) = match &r {
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_request")
        }
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    ApiError::new(status, code, r.body_text())
}

/// Query parameters whose rejections come back as API errors.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|r: QueryRejection| ApiError::bad_request(r.body_text()))
    }
}

/// Path parameters whose rejections come back as API errors.
pub struct P<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|r: PathRejection| ApiError::bad_request(r.body_text()))
    }
}

/// The caller's API key (read or full scope).
pub struct Key(pub store::ApiKey);

impl FromRequestParts<Web> for Key {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> ApiResult<Self> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let h = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <API key>"))?;
        let token = h
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <API key>"))?;
        match web.store().verify_api_key(token, Utc::now()).await? {
            Some(k) => {
                let write = !matches!(parts.method.as_str(), "GET" | "HEAD");
                if write && k.scope != ApiScope::Full {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "this API key has read scope; this request needs full scope",
                    ));
                }
                Ok(Key(k))
            }
            None => Err(unauthorized("unknown or revoked API key")),
        }
    }
}

/// A page of a listing.
#[derive(Debug, Serialize)]
pub struct List<T> {
    /// Rows of this page.
    pub items: Vec<T>,
    /// Rows in all pages.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// `limit` and `offset` query parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    limit: Option<i64>,
    offset: Option<i64>,
}

fn page(limit: Option<i64>, offset: Option<i64>) -> ApiResult<Page> {
    let limit = limit.unwrap_or(100);
    let offset = offset.unwrap_or(0);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(ApiError::invalid(format!(
            "offset must be 0 to {MAX_OFFSET}"
        )));
    }
    Ok(Page { limit, offset })
}

/// All API routes (mounted at `/api/v1`).
pub fn routes() -> Router<Web> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/status", get(status))
        .route("/extensions", get(list_extensions).post(create_extension))
        .route(
            "/extensions/{number}",
            get(get_extension)
                .patch(update_extension)
                .delete(delete_extension),
        )
        .route("/extensions/{number}/password", post(set_password))
        .route("/registrations", get(list_registrations))
        .route("/calls", get(list_calls))
        .route("/calls/{id}", axum::routing::delete(hangup))
        .route("/cdrs", get(list_cdrs))
        .route("/cdrs.csv", get(cdrs_csv))
        .route("/settings", get(list_settings))
        .route(
            "/settings/{key}",
            put(put_setting).get(get_setting).delete(reset_setting),
        )
        .route("/backup", get(download_backup))
        .route(
            "/backup/restore",
            post(restore_backup).layer(DefaultBodyLimit::max(MAX_BACKUP_BYTES)),
        )
        .route("/admins", get(list_admins).post(create_admin))
        .route("/admins/{username}", axum::routing::delete(delete_admin))
        .route("/admins/{username}/password", put(set_admin_password))
        .route("/api-keys", get(list_keys).post(create_key))
        .route("/api-keys/{id}", axum::routing::delete(delete_key))
        .merge(outside::routes())
        .merge(apps::routes())
        .merge(hunt::routes())
        .merge(page::routes())
        .merge(codes::routes())
        .merge(backup_remote::routes())
        .merge(reports::routes())
        .merge(prompts::routes())
        .merge(custom_prompts::routes())
        .merge(language::routes())
        .merge(subs::routes())
        .merge(tenant_settings::routes())
        .merge(recordings::routes())
        .merge(transfer::routes())
        .merge(voicemail::routes())
        .merge(park::routes())
        .merge(crate::cluster::routes())
        .route(
            "/license",
            get(crate::api_license::get_license).put(crate::api_license::put_license),
        )
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
}

async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

async fn status(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let today = Utc::now().date_naive();
    let counts = w.store().cdr_counts_for_day(None, today).await?;
    let regs = w.store().count_bindings(Some(Utc::now())).await?;
    let calls = w.control().calls().await.len();
    Ok(Json(json!({
        "node": w.info(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": w.uptime_s(),
        "schema_version": w.store().schema_version().await?,
        "registrations": regs,
        "calls_in_progress": calls,
        "today": counts.iter().map(|(d, n)| (d.as_str().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
    })))
}

// ----- extensions -----

/// Query of `GET /extensions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtQuery {
    search: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_extensions(
    State(w): State<Web>,
    _k: Key,
    Q(q): Q<ExtQuery>,
) -> ApiResult<Json<List<store::Extension>>> {
    let p = page(q.limit, q.offset)?;
    let t = w.store().default_tenant().await?;
    let search = q.search.as_deref().map(str::trim);
    let items = w.store().list_extensions(t.id, search, p).await?;
    let total = w.store().count_extensions(t.id, search).await?;
    Ok(Json(List {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

/// Body of `POST /extensions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewExt {
    number: String,
    #[serde(default)]
    display_name: String,
    password: Option<String>,
    enabled: Option<bool>,
    max_contacts: Option<i64>,
    language: Option<String>,
}

fn check_number(n: &str) -> ApiResult<()> {
    store::validate_extension_number(n).map_err(ApiError::from)
}

/// An account-policy violation as a 422 whose message names the rule.
fn policy_error(e: policy::PolicyError) -> ApiError {
    ApiError::invalid(e.to_string())
}

fn check_password(number: &str, p: &str) -> ApiResult<()> {
    policy::check_extension_password(number, p).map_err(policy_error)
}

fn check_display_name(n: &str) -> ApiResult<()> {
    policy::check_display_name(n).map_err(policy_error)
}

fn check_max_contacts(m: Option<i64>) -> ApiResult<()> {
    m.map_or(Ok(()), policy::check_max_contacts)
        .map_err(policy_error)
}

/// A generated SIP password for extension `number`, from the thread's random source (see
/// [`policy::generate_extension_password`]). The panel, the API and the CLI all draw from here.
pub fn generate_password(number: &str) -> String {
    policy::generate_extension_password(&mut rand::thread_rng(), number)
}

/// A generated administrator password, from the thread's random source (see
/// [`policy::generate_admin_password`]).
pub fn generate_admin_password() -> String {
    policy::generate_admin_password(&mut rand::thread_rng())
}

async fn create_extension(
    State(w): State<Web>,
    _k: Key,
    J(b): J<NewExt>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_number(&b.number)?;
    check_display_name(&b.display_name)?;
    check_max_contacts(b.max_contacts)?;
    if let Some(l) = &b.language {
        store::validate_language(l)?;
    }
    let (password, generated) = match b.password {
        Some(p) => {
            check_password(&b.number, &p)?;
            (p, false)
        }
        None => (generate_password(&b.number), true),
    };
    w.check_create(crate::license::LimitKind::Extensions)
        .await?;
    let t = w.store().default_tenant().await?;
    let ext = w
        .store()
        .create_extension_capped(
            t.id,
            store::NewExtension {
                number: b.number,
                display_name: b.display_name,
                password: Some(password.clone()),
                enabled: b.enabled,
                max_contacts: b.max_contacts,
            },
            w.licence_cap(crate::license::LimitKind::Extensions),
        )
        .await?;
    let ext = match b.language {
        Some(l) if !l.is_empty() => {
            let upd = store::ExtensionUpdate {
                language: Some(l),
                ..Default::default()
            };
            w.store().update_extension(t.id, &ext.number, upd).await?
        }
        _ => ext,
    };
    let mut out = json!({ "extension": ext });
    if generated {
        out["password"] = Value::from(password);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

async fn get_extension(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
) -> ApiResult<Json<Value>> {
    let t = w.store().default_tenant().await?;
    let ext = w
        .store()
        .extension(t.id, &number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("extension {number} not found")))?;
    let regs = w.store().bindings_for_extension(ext.id, Utc::now()).await?;
    Ok(Json(json!({ "extension": ext, "registrations": regs })))
}

/// Body of `PATCH /extensions/{number}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtPatch {
    display_name: Option<String>,
    enabled: Option<bool>,
    max_contacts: Option<i64>,
    cos: Option<store::CallClass>,
    outbound_cid: Option<String>,
    anonymous: Option<bool>,
    limits: Option<outside::LimitsPatch>,
    language: Option<String>,
}

async fn update_extension(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
    J(b): J<ExtPatch>,
) -> ApiResult<Json<store::Extension>> {
    if let Some(n) = &b.display_name {
        check_display_name(n)?;
    }
    check_max_contacts(b.max_contacts)?;
    let t = w.store().default_tenant().await?;
    let limits = match b.limits {
        Some(l) => Some(outside::patch_limits(w.store(), t.id, &number, l).await?),
        None => None,
    };
    let ext = w
        .store()
        .update_extension(
            t.id,
            &number,
            store::ExtensionUpdate {
                display_name: b.display_name,
                enabled: b.enabled,
                max_contacts: b.max_contacts,
                cos: b.cos,
                outbound_cid: b.outbound_cid,
                anonymous: b.anonymous,
                limits,
                language: b.language,
            },
        )
        .await?;
    Ok(Json(ext))
}

async fn delete_extension(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
) -> ApiResult<StatusCode> {
    let t = w.store().default_tenant().await?;
    w.store().delete_extension(t.id, &number).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /extensions/{number}/password` (empty body: generate one).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: Option<String>,
}

fn optional_json<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::invalid(e.to_string())
        } else {
            ApiError::bad_request(e.to_string())
        }
    })
}

async fn set_password(
    State(w): State<Web>,
    _k: Key,
    P(number): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: PasswordBody = optional_json(&body)?;
    let (password, generated) = match b.password {
        Some(p) => {
            check_password(&number, &p)?;
            (p, false)
        }
        None => (generate_password(&number), true),
    };
    let t = w.store().default_tenant().await?;
    w.store()
        .set_extension_password(t.id, &number, &password)
        .await?;
    Ok(Json(if generated {
        json!({ "password": password })
    } else {
        json!({})
    }))
}

// ----- registrations and calls -----

async fn list_registrations(
    State(w): State<Web>,
    _k: Key,
    Q(q): Q<Paging>,
) -> ApiResult<Json<List<store::Registration>>> {
    let p = page(q.limit, q.offset)?;
    let items = w.store().list_bindings(p).await?;
    let total = w.store().count_bindings(None).await?;
    Ok(Json(List {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
    }))
}

async fn list_calls(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let calls = w.control().calls().await;
    let n = calls.len();
    Ok(Json(
        json!({ "items": calls, "total": n, "limit": n, "offset": 0 }),
    ))
}

async fn hangup(State(w): State<Web>, _k: Key, P(id): P<u64>) -> ApiResult<StatusCode> {
    if w.control().hangup(id).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("call {id} not found")))
    }
}

// ----- call records -----

/// Filters of the CDR listing and CSV export (also used by the panel).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct CdrFilter {
    /// Start of the range: RFC 3339 time or `YYYY-MM-DD` (UTC midnight).
    pub from: Option<String>,
    /// End of the range (exclusive): RFC 3339 time or `YYYY-MM-DD` (the whole day included).
    pub to: Option<String>,
    /// Caller or callee.
    pub number: Option<String>,
    /// `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CANCELED` (case and `_` tolerated).
    pub disposition: Option<String>,
    /// `internal`, `inbound` or `outbound`.
    pub direction: Option<String>,
    /// Trunk name.
    pub trunk: Option<String>,
    /// DID (inbound calls).
    pub did: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Rows skipped.
    pub offset: Option<i64>,
}

fn parse_time(s: &str, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let d = if end { d.succ_opt()? } else { d };
    Some(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
}

/// Parses a disposition as written by people and forms.
pub fn parse_disposition(s: &str) -> Option<Disposition> {
    let norm = s.trim().to_ascii_uppercase().replace('_', " ");
    Disposition::ALL
        .iter()
        .copied()
        .find(|d| d.as_str() == norm)
}

impl CdrFilter {
    /// The store query; errors name the bad field.
    pub fn to_query(&self) -> ApiResult<CdrQuery> {
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let from = match nonempty(&self.from) {
            Some(s) => Some(
                parse_time(&s, false)
                    .ok_or_else(|| ApiError::invalid("from: use an RFC 3339 time or YYYY-MM-DD"))?,
            ),
            None => None,
        };
        let to = match nonempty(&self.to) {
            Some(s) => Some(
                parse_time(&s, true)
                    .ok_or_else(|| ApiError::invalid("to: use an RFC 3339 time or YYYY-MM-DD"))?,
            ),
            None => None,
        };
        let disposition = match nonempty(&self.disposition) {
            Some(s) => Some(parse_disposition(&s).ok_or_else(|| {
                ApiError::invalid("disposition: one of ANSWERED, NO ANSWER, BUSY, FAILED, CANCELED")
            })?),
            None => None,
        };
        let direction =
            match nonempty(&self.direction) {
                Some(s) => Some(s.to_ascii_lowercase().parse::<store::Direction>().map_err(
                    |_| ApiError::invalid("direction: one of internal, inbound, outbound"),
                )?),
                None => None,
            };
        Ok(CdrQuery {
            tenant_id: None,
            from,
            to,
            number: nonempty(&self.number),
            disposition,
            direction,
            trunk: nonempty(&self.trunk),
            did: nonempty(&self.did),
            page: page(self.limit, self.offset)?,
        })
    }
}

async fn list_cdrs(
    State(w): State<Web>,
    _k: Key,
    Q(f): Q<CdrFilter>,
) -> ApiResult<Json<List<store::Cdr>>> {
    let q = f.to_query()?;
    let items = w.store().list_cdrs(&q).await?;
    let total = w.store().count_cdrs(&q).await?;
    Ok(Json(List {
        items,
        total,
        limit: q.page.limit,
        offset: q.page.offset,
    }))
}

/// The whole filter (paging ignored) as CSV, at most [`MAX_CSV_ROWS`] rows.
pub async fn csv_export(store: &store::Store, mut q: CdrQuery) -> Result<String, store::Error> {
    let mut out = String::from(crate::csv::CDR_HEADER);
    let mut done = 0i64;
    q.page = Page {
        limit: 10_000,
        offset: 0,
    };
    while done < MAX_CSV_ROWS {
        let rows = store.list_cdrs(&q).await?;
        for c in &rows {
            crate::csv::cdr_row(&mut out, c);
        }
        done += rows.len() as i64;
        if (rows.len() as i64) < q.page.limit {
            break;
        }
        q.page.offset += q.page.limit;
    }
    Ok(out)
}

/// A CSV download response.
pub fn csv_response(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"denwa-calls.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

async fn cdrs_csv(State(w): State<Web>, _k: Key, Q(f): Q<CdrFilter>) -> ApiResult<Response> {
    let q = f.to_query()?;
    Ok(csv_response(csv_export(w.store(), q).await?))
}

// ----- settings -----

/// A setting as the API shows it.
pub async fn setting_view(store: &store::Store, d: &settings::Def) -> ApiResult<Value> {
    let stored = store.setting_json(None, d.key).await?;
    Ok(json!({
        "key": d.key,
        "value": stored.clone().unwrap_or_else(|| d.default.to_json()),
        "is_default": stored.is_none(),
        "default": d.default.to_json(),
        "kind": d.kind,
        "restart_required": d.restart_required,
        "description": crate::i18n::t(crate::i18n::Lang::En, settings::label(d.key)),
    }))
}

fn find_setting(key: &str) -> ApiResult<&'static settings::Def> {
    settings::find(key).ok_or_else(|| ApiError::not_found(format!("no setting {key:?}")))
}

async fn list_settings(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for d in settings::ALL {
        items.push(setting_view(w.store(), d).await?);
    }
    Ok(Json(json!({ "items": items, "node": w.info() })))
}

async fn get_setting(State(w): State<Web>, _k: Key, P(key): P<String>) -> ApiResult<Json<Value>> {
    let d = find_setting(&key)?;
    Ok(Json(setting_view(w.store(), d).await?))
}

/// Body of `PUT /settings/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingBody {
    value: Value,
}

async fn put_setting(
    State(w): State<Web>,
    _k: Key,
    P(key): P<String>,
    J(b): J<SettingBody>,
) -> ApiResult<Json<Value>> {
    let d = find_setting(&key)?;
    let v = d
        .validate(&b.value)
        .map_err(|e| ApiError::invalid(format!("{key}: {e}")))?;
    w.store().set_setting(None, d.key, &v).await?;
    Ok(Json(setting_view(w.store(), d).await?))
}

async fn reset_setting(State(w): State<Web>, _k: Key, P(key): P<String>) -> ApiResult<Json<Value>> {
    let d = find_setting(&key)?;
    w.store().delete_setting(None, d.key).await?;
    Ok(Json(setting_view(w.store(), d).await?))
}

// ----- backup -----

/// Makes a backup archive in memory: `(file name, bytes)`.
pub async fn make_backup(w: &Web) -> ApiResult<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("temporary directory: {e}"),
        )
    })?;
    let path = tmp.path().join("backup.tar");
    store::backup::create(w.store(), &w.info().data_dir, &path).await?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("reading backup: {e}"),
        )
    })?;
    let name = format!("denwa-backup-{}.tar", Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok((name, bytes))
}

/// Validates and restores an uploaded archive; nothing changes when it is refused.
pub async fn restore_bytes(w: &Web, bytes: &[u8]) -> ApiResult<store::backup::Manifest> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "backup_rejected",
            "the uploaded file is empty",
        ));
    }
    let internal = |e: std::io::Error| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    };
    let tmp = tempfile::tempdir().map_err(internal)?;
    let path = tmp.path().join("upload.tar");
    tokio::fs::write(&path, bytes).await.map_err(internal)?;
    store::backup::verify(&path).await?;
    Ok(store::backup::restore(w.store(), &w.info().data_dir, &path).await?)
}

async fn download_backup(State(w): State<Web>, Key(k): Key) -> ApiResult<Response> {
    // A backup holds every password hash and key hash: reading it is not a read-scope matter.
    if k.scope != ApiScope::Full {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "downloading a backup needs a full-scope key (it holds password and key hashes)",
        ));
    }
    let (name, bytes) = make_backup(&w).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn restore_backup(State(w): State<Web>, _k: Key, body: Bytes) -> ApiResult<Json<Value>> {
    let m = restore_bytes(&w, &body).await?;
    Ok(Json(json!({ "restored": true, "manifest": m })))
}

// ----- administrators and API keys -----

async fn list_admins(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let items = w.store().list_admins().await?;
    let n = items.len();
    Ok(Json(
        json!({ "items": items, "total": n, "limit": n, "offset": 0 }),
    ))
}

/// Body of `POST /admins`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdmin {
    username: String,
    password: String,
    role: AdminRole,
}

/// Why an administrator's name (trimmed here) or password is refused, if it is.
pub fn check_admin(username: &str, password: &str) -> Result<(), policy::PolicyError> {
    policy::check_admin_username(username.trim())?;
    policy::check_admin_password(password)
}

async fn create_admin(
    State(w): State<Web>,
    _k: Key,
    J(b): J<NewAdmin>,
) -> ApiResult<(StatusCode, Json<store::Admin>)> {
    check_admin(&b.username, &b.password).map_err(policy_error)?;
    let a = w
        .store()
        .create_admin(b.username.trim(), &b.password, b.role)
        .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

async fn delete_admin(
    State(w): State<Web>,
    _k: Key,
    P(username): P<String>,
) -> ApiResult<StatusCode> {
    w.store().delete_admin(&username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PUT /admins/{username}/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminPassword {
    password: String,
}

async fn set_admin_password(
    State(w): State<Web>,
    _k: Key,
    P(username): P<String>,
    J(b): J<AdminPassword>,
) -> ApiResult<StatusCode> {
    policy::check_admin_password(&b.password).map_err(policy_error)?;
    w.store().set_admin_password(&username, &b.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let items = w.store().list_api_keys(None).await?;
    let n = items.len();
    Ok(Json(
        json!({ "items": items, "total": n, "limit": n, "offset": 0 }),
    ))
}

/// Body of `POST /api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scope: ApiScope,
}

async fn create_key(
    State(w): State<Web>,
    _k: Key,
    J(b): J<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid("name: 1 to 64 characters"));
    }
    let (key, token) = w.store().create_api_key(None, name, b.scope).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "token": token })),
    ))
}

async fn delete_key(State(w): State<Web>, _k: Key, P(id): P<i64>) -> ApiResult<StatusCode> {
    w.store().delete_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_errors_are_precise_422s() {
        let e = check_password("1001", "x1001abcdef").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
        );
        assert_eq!(e.message, "password must not contain the extension number");
        let e = check_max_contacts(Some(0)).unwrap_err();
        assert_eq!(e.message, "max_contacts must be 1 to 100");
        assert!(check_max_contacts(None).is_ok());
        for _ in 0..50 {
            assert!(check_password("2345", &generate_password("2345")).is_ok());
        }
    }

    #[test]
    fn dispositions_and_times() {
        assert_eq!(parse_disposition("no_answer"), Some(Disposition::NoAnswer));
        assert_eq!(parse_disposition("ANSWERED"), Some(Disposition::Answered));
        assert_eq!(parse_disposition("maybe"), None);
        let from = parse_time("2026-01-02", false).unwrap();
        let to = parse_time("2026-01-02", true).unwrap();
        assert_eq!((to - from).num_hours(), 24);
        assert!(parse_time("yesterday", false).is_none());
    }

    #[test]
    fn admin_rules() {
        use policy::PolicyError as P;
        assert_eq!(check_admin("", "0123456789"), Err(P::AdminUsername));
        assert_eq!(check_admin("a b", "0123456789"), Err(P::AdminUsername));
        assert_eq!(check_admin("alice", "short"), Err(P::AdminPasswordShort));
        assert_eq!(check_admin(" alice ", "long enough pw"), Ok(()));
    }
}
