//! `/api/v1/custom-prompts`: the tenant's named custom prompts ("system recordings") — upload
//! per language variant (`any`, `en`, `ja`; converted like catalogue prompt uploads), list,
//! rename/describe, delete (refused, 409 `in_use`, while an IVR menu plays it) and play.
//! Names, files and rows: `apps::custom_prompt`, `store` (`custom_prompts`).

use apps::custom_prompt::{self, CustomError, Variant};
use axum::Json;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::outside::field_error;
use super::prompts::{MAX_UPLOAD_BODY, Upload, is_yes, no_file, wav_response};
use super::{ApiError, ApiResult, J, Key, P, Q};
use crate::Web;

/// The routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/custom-prompts", get(list))
        .route(
            "/custom-prompts/{name}",
            get(one)
                .put(upload)
                .patch(edit)
                .delete(remove)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY)),
        )
        .route("/custom-prompts/{name}/audio", get(audio))
}

/// One language variant as listed.
#[derive(Debug, Clone, Serialize)]
pub struct VariantView {
    /// `any`, `en` or `ja`.
    pub lang: String,
    /// `uploaded` or `recorded`.
    pub source: String,
    /// File name given by the uploader.
    pub original_name: String,
    /// Format uploaded.
    pub original_format: String,
    /// Length in seconds.
    pub duration_s: f64,
    /// The file is on disk (false: it plays the error tone until uploaded again).
    pub present: bool,
    /// Last replaced.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A custom prompt as the API, the panel and the CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct CustomPromptView {
    /// Name (what an IVR menu's `greeting` names).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Its variants, `any` then `en` then `ja`.
    pub variants: Vec<VariantView>,
    /// IVR menus that play it.
    pub used_by: Vec<String>,
}

/// The tenant's custom prompts grouped by name, with their users.
pub(crate) async fn views(w: &Web, tenant: i64) -> ApiResult<Vec<CustomPromptView>> {
    let rows = w.store().custom_prompts(tenant).await?;
    let dir = &w.info().data_dir;
    let mut out: Vec<CustomPromptView> = Vec::new();
    for r in rows {
        let present = Variant::parse(&r.lang)
            .is_some_and(|v| custom_prompt::path(dir, tenant, v, &r.name).is_file());
        let v = VariantView {
            lang: r.lang.clone(),
            source: r.source.clone(),
            original_name: r.original_name.clone(),
            original_format: r.original_format.clone(),
            duration_s: r.duration_ms as f64 / 1000.0,
            present,
            updated_at: r.updated_at,
        };
        match out.last_mut() {
            Some(last) if last.name == r.name => {
                if last.description.is_empty() {
                    last.description = r.description;
                }
                last.variants.push(v);
            }
            _ => out.push(CustomPromptView {
                name: r.name.clone(),
                description: r.description,
                variants: vec![v],
                used_by: w.store().custom_prompt_users(tenant, &r.name).await?,
            }),
        }
    }
    for p in &mut out {
        p.variants.sort_by_key(|v| Variant::parse(&v.lang));
    }
    Ok(out)
}

/// One custom prompt, or 404.
pub(crate) async fn view(w: &Web, tenant: i64, name: &str) -> ApiResult<CustomPromptView> {
    views(w, tenant)
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found(format!("custom prompt {name} not found")))
}

/// Query naming a language variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LangQuery {
    lang: Option<String>,
}

fn variant(lang: Option<&str>) -> ApiResult<Variant> {
    Variant::parse(lang.unwrap_or("any")).ok_or_else(|| field_error("lang", "any, en or ja"))
}

/// The refusal of an upload, as the API answers it (the panel shows the message).
pub(crate) fn upload_error(e: store::CustomUploadError) -> ApiError {
    match e {
        store::CustomUploadError::Refused(CustomError::BadName { .. }) => {
            field_error("name", e.to_string())
        }
        store::CustomUploadError::Refused(CustomError::Convert(c)) => {
            super::prompts::convert_error(c)
        }
        store::CustomUploadError::Refused(CustomError::Io(io)) => super::prompts::internal(io),
        store::CustomUploadError::Store(s) => s.into(),
    }
}

/// A store error; deleting or renaming a prompt in use is 409 `in_use`.
pub(crate) fn store_error(e: store::Error) -> ApiError {
    match e {
        store::Error::Invalid { field, reason } if field == store::CUSTOM_PROMPT_IN_USE => {
            ApiError {
                field: Some("name".into()),
                ..ApiError::new(StatusCode::CONFLICT, "in_use", reason)
            }
        }
        other => other.into(),
    }
}

/// Stores an upload read from a form as `name` in `variant` (the API and the panel).
pub(crate) async fn store_upload(
    w: &Web,
    tenant: i64,
    name: &str,
    variant: Variant,
    up: Upload,
) -> ApiResult<store::CustomUploaded> {
    let Some(file) = up.file else {
        return Err(no_file());
    };
    let desc = up
        .fields
        .get("description")
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    w.store()
        .upload_custom_prompt(
            &w.info().data_dir,
            tenant,
            name,
            variant,
            file.path(),
            up.file_name.as_deref(),
            desc.as_deref(),
        )
        .await
        .map_err(upload_error)
}

async fn list(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let t = super::prompts::tenant(&w).await?;
    Ok(super::outside::all(views(&w, t).await?))
}

async fn one(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
) -> ApiResult<Json<CustomPromptView>> {
    let t = super::prompts::tenant(&w).await?;
    Ok(Json(view(&w, t, &name).await?))
}

async fn upload(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    Q(q): Q<LangQuery>,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<CustomPromptView>)> {
    let v = variant(q.lang.as_deref())?;
    custom_prompt::check_name(&name).map_err(|e| field_error("name", e))?;
    let t = super::prompts::tenant(&w).await?;
    let up = super::prompts::api_form(&w, mp).await?;
    let done = store_upload(&w, t, &name, v, up).await?;
    let status = if done.new_prompt {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&w, t, &name).await?)))
}

/// `{"name": "new-name", "description": "..."}`: rename and/or describe.
async fn edit(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<Json<CustomPromptView>> {
    let text = |b: &mut Map<String, Value>, k: &str| -> ApiResult<Option<String>> {
        match b.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(field_error(k, "must be a string")),
        }
    };
    let to = text(&mut b, "name")?;
    let desc = text(&mut b, "description")?;
    if let Some(k) = b.keys().next() {
        return Err(field_error(k, "unknown member"));
    }
    let t = super::prompts::tenant(&w).await?;
    w.store()
        .rename_custom_prompt(&w.info().data_dir, t, &name, to.as_deref(), desc.as_deref())
        .await
        .map_err(store_error)?;
    Ok(Json(view(&w, t, to.as_deref().unwrap_or(&name)).await?))
}

/// Deletes the prompt, or only its `?lang=` variant.
async fn remove(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    Q(q): Q<LangQuery>,
) -> ApiResult<StatusCode> {
    if let Some(l) = q.lang.as_deref() {
        variant(Some(l))?;
    }
    let t = super::prompts::tenant(&w).await?;
    w.store()
        .remove_custom_prompt(&w.info().data_dir, t, &name, q.lang.as_deref())
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the audio download: the variant (default: the first there is) and download.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomAudioQuery {
    lang: Option<String>,
    download: Option<String>,
}

/// The WAV of `name` in variant `lang` (or its first variant), inline or as a download.
pub(crate) async fn custom_audio(
    w: &Web,
    name: &str,
    lang: Option<&str>,
    download: bool,
) -> ApiResult<Response> {
    let t = super::prompts::tenant(w).await?;
    let dir = &w.info().data_dir;
    let v = match lang {
        Some(l) => Some(variant(Some(l))?),
        None => custom_prompt::present(dir, t, name).into_iter().next(),
    };
    let path = v
        .map(|v| custom_prompt::path(dir, t, v, name))
        .filter(|p| custom_prompt::valid_name(name) && p.is_file())
        .ok_or_else(|| ApiError::not_found(format!("custom prompt {name} has no such file")))?;
    let suffix = v.map(|v| v.as_str()).unwrap_or("any");
    wav_response(&path, &format!("{name}-{suffix}.wav"), download).await
}

async fn audio(
    State(w): State<Web>,
    _k: Key,
    P(name): P<String>,
    Q(q): Q<CustomAudioQuery>,
) -> ApiResult<Response> {
    custom_audio(&w, &name, q.lang.as_deref(), is_yes(q.download.as_deref())).await
}
