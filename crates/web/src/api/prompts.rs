//! `/api/v1/prompts` and `/api/v1/moh`: the prompt set (EN/JA) and music on hold of the tenant,
//! as files in the data directory (`apps::prompt_files`, `apps::moh`; docs/prompts.md).
//! Uploads are multipart (`file` field), bounded in size, converted to 16 kHz mono WAV.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use apps::audio_file::MAX_INPUT_BYTES;
use apps::moh::{self, MohError};
use apps::prompt::{self, Lang};
use apps::prompt_files::{self, PromptError};
use axum::Json;
use axum::Router;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Key, P, Q};
use crate::Web;

/// Largest request body of an upload: the largest audio file accepted plus room for the
/// multipart framing and small fields.
pub const MAX_UPLOAD_BODY: usize = MAX_INPUT_BYTES as usize + 64 * 1024;

/// The prompt and music-on-hold routes (merged into `/api/v1`).
pub(crate) fn routes() -> Router<Web> {
    Router::new()
        .route("/prompts", get(list))
        .route(
            "/prompts/{lang}/{id}",
            get(one)
                .put(upload)
                .delete(reset)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY)),
        )
        .route("/prompts/{lang}/{id}/audio", get(audio))
        .route("/moh", get(moh_list))
        .route(
            "/moh/{class}",
            axum::routing::post(moh_add)
                .delete(moh_remove_class)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY)),
        )
        .route(
            "/moh/{class}/{file}",
            axum::routing::delete(moh_remove_file),
        )
        .route("/moh/{class}/{file}/audio", get(moh_audio_get))
}

/// The default tenant's id (a standalone install has one tenant).
pub(crate) async fn tenant(w: &Web) -> ApiResult<i64> {
    Ok(w.store().default_tenant().await?.id)
}

fn lang(s: &str) -> ApiResult<Lang> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("no prompt language {s:?}; use en or ja")))
}

fn entry(id: &str) -> ApiResult<&'static prompt::Prompt> {
    prompt::get(id).ok_or_else(|| ApiError::not_found(format!("no prompt {id:?}")))
}

/// What an upload without a file is told.
pub(crate) fn no_file_message() -> &'static str {
    "no audio file in the `file` field"
}

/// The refusal of an upload without a file (422, field `file`).
pub(crate) fn no_file() -> ApiError {
    refused(no_file_message().to_string())
}

/// A 404 with `message` (for the panel's pages too).
pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::not_found(message)
}

/// The form of an API upload (the file may be absent), or the error to answer (JSON, like
/// every API error; a refusal names the field `file`).
pub(crate) async fn api_form(
    w: &Web,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<Upload> {
    let mp = mp.map_err(|r| ApiError::new(r.status(), "bad_request", r.body_text()))?;
    read_upload(mp, &spool_dir(w))
        .await
        .map_err(|(status, m)| match status {
            StatusCode::UNPROCESSABLE_ENTITY => refused(m),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "too_large", m),
            StatusCode::BAD_REQUEST => ApiError::bad_request(m),
            _ => internal(m),
        })
}

/// The upload of an API request, or the error to answer (JSON, like every API error).
async fn api_upload(
    w: &Web,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<(tempfile::NamedTempFile, Upload)> {
    let mut up = api_form(w, mp).await?;
    match up.file.take() {
        Some(f) => Ok((f, up)),
        None => Err(no_file()),
    }
}

/// A refusal of an uploaded file: 422 naming the `file` field.
fn refused(message: String) -> ApiError {
    ApiError {
        field: Some("file".to_string()),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

fn prompt_error(e: PromptError) -> ApiError {
    match e {
        PromptError::UnknownId(_) | PromptError::NotReplaced { .. } => {
            ApiError::not_found(e.to_string())
        }
        PromptError::Convert(c) => convert_error(c),
        PromptError::Io(io) => internal(io),
    }
}

pub(crate) fn convert_error(e: apps::audio_file::ConvertError) -> ApiError {
    use apps::audio_file::ConvertError as C;
    match e {
        C::Io(io) => internal(io),
        C::Tool { .. } => {
            tracing::warn!(error = %e, "audio conversion unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        }
        other => refused(other.to_string()),
    }
}

fn moh_error(e: MohError) -> ApiError {
    match e {
        MohError::BadClass(_) => ApiError::invalid(e.to_string()),
        MohError::Full(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        MohError::NotFound(_) => ApiError::not_found(e.to_string()),
        MohError::Convert(c) => convert_error(c),
        MohError::Io(io) => internal(io),
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "prompt files: I/O error");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("file system: {e}"),
    )
}

/// An uploaded multipart form: the `file` field spooled to a temporary file, the other (small)
/// fields as text.
pub(crate) struct Upload {
    /// The file's bytes (`None`: no `file` field, or an empty one).
    pub file: Option<tempfile::NamedTempFile>,
    /// The name the browser gave the file.
    pub file_name: Option<String>,
    /// Other fields (at most 4 KiB each).
    pub fields: HashMap<String, String>,
}

/// Why an upload could not be read: the status to answer and a sentence for people.
pub(crate) type UploadError = (StatusCode, String);

/// Reads a multipart form, writing the `file` field to a temporary file in `spool` and
/// refusing one larger than [`MAX_INPUT_BYTES`] (413).
pub(crate) async fn read_upload(mut mp: Multipart, spool: &Path) -> Result<Upload, UploadError> {
    let mut up = Upload {
        file: None,
        file_name: None,
        fields: HashMap::new(),
    };
    let broken = |e: MultipartError| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            (
                status,
                format!("the upload is larger than the {MAX_UPLOAD_BODY} bytes accepted"),
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                format!("the upload is broken: {}", e.body_text()),
            )
        }
    };
    let io = |e: std::io::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    while let Some(mut f) = mp.next_field().await.map_err(broken)? {
        let name = f.name().unwrap_or("").to_string();
        if name == "file" {
            up.file_name = f.file_name().map(|n| n.chars().take(200).collect());
            std::fs::create_dir_all(spool).map_err(io)?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".upload-")
                .tempfile_in(spool)
                .map_err(io)?;
            let mut size = 0u64;
            while let Some(chunk) = f.chunk().await.map_err(broken)? {
                size += chunk.len() as u64;
                if size > MAX_INPUT_BYTES {
                    return Err((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the file is larger than the {MAX_INPUT_BYTES} bytes accepted"),
                    ));
                }
                tmp.write_all(&chunk).map_err(io)?;
            }
            if size > 0 {
                up.file = Some(tmp);
            }
        } else if up.fields.len() < 16 {
            let mut text = Vec::new();
            while let Some(chunk) = f.chunk().await.map_err(broken)? {
                if text.len() + chunk.len() > 4096 {
                    return Err((
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("the field {name:?} is too long"),
                    ));
                }
                text.extend_from_slice(&chunk);
            }
            up.fields
                .insert(name, String::from_utf8_lossy(&text).into_owned());
        }
    }
    Ok(up)
}

/// Where uploads are spooled while converted: in the data directory, outside the backed-up
/// folders.
pub(crate) fn spool_dir(w: &Web) -> PathBuf {
    w.info().data_dir.join(".upload-spool")
}

/// Query of `GET /prompts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    lang: Option<String>,
}

async fn list(State(w): State<Web>, _k: Key, Q(q): Q<ListQuery>) -> ApiResult<Json<Value>> {
    let langs = match q.lang.as_deref() {
        None | Some("") => Lang::ALL.to_vec(),
        Some(l) => vec![l.parse().map_err(|e: String| ApiError {
            field: Some("lang".into()),
            ..ApiError::invalid(e)
        })?],
    };
    let t = tenant(&w).await?;
    let dir = w.info().data_dir.clone();
    let items: Vec<_> = langs
        .iter()
        .flat_map(|l| prompt_files::list(&dir, Some(t), *l))
        .collect();
    Ok(Json(json!({ "total": items.len(), "items": items })))
}

async fn one(
    State(w): State<Web>,
    _k: Key,
    P((l, id)): P<(String, String)>,
) -> ApiResult<Json<prompt_files::Listed>> {
    let l = lang(&l)?;
    let p = entry(&id)?;
    let t = tenant(&w).await?;
    Ok(Json(prompt_files::listed(
        &w.info().data_dir,
        Some(t),
        l,
        p,
    )))
}

/// Query of the audio downloads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AudioQuery {
    /// `true`/`1`: send as an attachment (download) instead of inline (play).
    pub download: Option<String>,
}

/// A WAV file as a response (inline to play, or as an attachment named `name`).
pub(crate) async fn wav_response(path: &Path, name: &str, download: bool) -> ApiResult<Response> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|_| ApiError::not_found("the audio file is gone"))?;
    let disposition = format!(
        "{}; filename=\"{}\"",
        if download { "attachment" } else { "inline" },
        name.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

fn wants_download(q: &AudioQuery) -> bool {
    is_yes(q.download.as_deref())
}

/// `1`, `true` or `yes`.
pub(crate) fn is_yes(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "yes"))
}

/// The audio of prompt `id` in `lang` as the default tenant hears it (API and panel).
pub(crate) async fn prompt_audio(
    w: &Web,
    lang_code: &str,
    id: &str,
    download: bool,
) -> ApiResult<Response> {
    let l = lang(lang_code)?;
    let p = entry(id)?;
    let t = tenant(w).await?;
    let listed = prompt_files::listed(&w.info().data_dir, Some(t), l, p);
    let Some(path) = listed.path else {
        return Err(ApiError::not_found(format!(
            "prompt {id} has no {l} file (run `denwa prompt install-defaults` or upload one)"
        )));
    };
    wav_response(Path::new(&path), &format!("{id}-{l}.wav"), download).await
}

async fn audio(
    State(w): State<Web>,
    _k: Key,
    P((l, id)): P<(String, String)>,
    Q(q): Q<AudioQuery>,
) -> ApiResult<Response> {
    prompt_audio(&w, &l, &id, wants_download(&q)).await
}

async fn upload(
    State(w): State<Web>,
    _k: Key,
    P((l, id)): P<(String, String)>,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<prompt_files::Listed>> {
    let l = lang(&l)?;
    entry(&id)?;
    let t = tenant(&w).await?;
    let (file, up) = api_upload(&w, mp).await?;
    let dir = w.info().data_dir.clone();
    let name = up.file_name;
    let r = tokio::task::spawn_blocking(move || {
        prompt_files::upload(&dir, t, l, &id, file.path(), name.as_deref())
    })
    .await
    .map_err(internal)?;
    r.map(Json).map_err(prompt_error)
}

async fn reset(
    State(w): State<Web>,
    _k: Key,
    P((l, id)): P<(String, String)>,
) -> ApiResult<Json<prompt_files::Listed>> {
    let l = lang(&l)?;
    entry(&id)?;
    let t = tenant(&w).await?;
    prompt_files::reset(&w.info().data_dir, t, l, &id)
        .map(Json)
        .map_err(prompt_error)
}

async fn moh_list(State(w): State<Web>, _k: Key) -> ApiResult<Json<Value>> {
    let t = tenant(&w).await?;
    let items = moh::classes(&w.info().data_dir, Some(t));
    Ok(Json(json!({ "total": items.len(), "items": items })))
}

async fn moh_add(
    State(w): State<Web>,
    _k: Key,
    P(class): P<String>,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<moh::MohFile>)> {
    if !moh::valid_class(&class) {
        return Err(moh_error(MohError::BadClass(class)));
    }
    let t = tenant(&w).await?;
    let (file, up) = api_upload(&w, mp).await?;
    let name = up
        .fields
        .get("name")
        .filter(|n| !n.trim().is_empty())
        .cloned()
        .or(up.file_name)
        .unwrap_or_else(|| "music".to_string());
    let dir = w.info().data_dir.clone();
    let r = tokio::task::spawn_blocking(move || moh::add(&dir, t, &class, file.path(), &name))
        .await
        .map_err(internal)?;
    r.map(|f| (StatusCode::CREATED, Json(f))).map_err(moh_error)
}

async fn moh_remove_class(
    State(w): State<Web>,
    _k: Key,
    P(class): P<String>,
) -> ApiResult<Json<Value>> {
    let t = tenant(&w).await?;
    // A class the tenant does not own is "not found" below, whoever plays it.
    if moh::tenant_has_class(&w.info().data_dir, t, &class)
        && let Err(store::Error::Invalid { reason, .. }) =
            w.store().moh_class_removable(t, &class).await
    {
        return Err(ApiError::new(StatusCode::CONFLICT, "in_use", reason));
    }
    let n = moh::remove(&w.info().data_dir, t, &class, None).map_err(moh_error)?;
    Ok(Json(json!({ "removed": n })))
}

async fn moh_remove_file(
    State(w): State<Web>,
    _k: Key,
    P((class, file)): P<(String, String)>,
) -> ApiResult<Json<Value>> {
    let t = tenant(&w).await?;
    let n = moh::remove(&w.info().data_dir, t, &class, Some(&file)).map_err(moh_error)?;
    Ok(Json(json!({ "removed": n })))
}

/// File `file` of class `class` as the default tenant hears it (its own class, else the
/// installed one), as audio (API and panel).
pub(crate) async fn moh_audio(
    w: &Web,
    class: &str,
    file: &str,
    download: bool,
) -> ApiResult<Response> {
    let t = tenant(w).await?;
    let path = moh::class_files(&w.info().data_dir, Some(t), class)
        .into_iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(file))
        .ok_or_else(|| ApiError::not_found(format!("no file {file:?} in class {class:?}")))?;
    wav_response(&path, file, download).await
}

async fn moh_audio_get(
    State(w): State<Web>,
    _k: Key,
    P((class, file)): P<(String, String)>,
    Q(q): Q<AudioQuery>,
) -> ApiResult<Response> {
    moh_audio(&w, &class, &file, wants_download(&q)).await
}
