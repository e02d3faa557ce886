//! `/api/v1/voicemail/{number}`: a mailbox's settings (never its PIN: `has_pin`), its PIN, its
//! messages (list, play or download the WAV, mark read, delete), its greetings (upload in any
//! format prompt uploads take, play, delete) and its e-mail outbox state.
//! Message changes here update the phones' message-waiting lamps like any other path (the
//! store announces them; call control NOTIFYs).

use apps::vmail::{BoxSpec, Folder, Greeting};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::outside::{all, field_error, merge, tenant};
use super::prompts::{AudioQuery, is_yes, wav_response};
use super::{ApiError, ApiResult, J, Key, P, Q};
use crate::Web;

/// The voicemail routes (merged into `/api/v1`).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/voicemail/{number}", get(get_box).put(update_box))
        .route("/voicemail/{number}/pin", axum::routing::put(set_pin))
        .route("/voicemail/{number}/messages", get(list_messages))
        .route(
            "/voicemail/{number}/messages/{id}",
            axum::routing::put(update_message).delete(delete_message),
        )
        .route("/voicemail/{number}/messages/{id}/audio", get(audio))
        .route("/voicemail/{number}/greetings", get(list_greetings))
        .route(
            "/voicemail/{number}/greetings/{kind}",
            axum::routing::put(upload_greeting)
                .delete(delete_greeting)
                .layer(axum::extract::DefaultBodyLimit::max(
                    super::prompts::MAX_UPLOAD_BODY,
                )),
        )
        .route(
            "/voicemail/{number}/greetings/{kind}/audio",
            get(greeting_audio),
        )
}

async fn the_box(w: &Web, ext: &str) -> ApiResult<(i64, store::VmBox)> {
    let t = tenant(w).await?;
    let b = w
        .store()
        .vm_box(t, ext)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("extension {ext} not found")))?;
    Ok((t, b))
}

async fn box_json(w: &Web, t: i64, b: &store::VmBox) -> ApiResult<Value> {
    let (new, saved) = w.store().vm_counts(t, &b.number).await?;
    let mail = w.store().vm_mail_status(t, &b.number).await?;
    let mut v = serde_json::to_value(b).map_err(|e| ApiError::invalid(e.to_string()))?;
    v["new"] = json!(new);
    v["saved"] = json!(saved);
    v["mail"] = serde_json::to_value(mail).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(v)
}

async fn get_box(State(w): State<Web>, _k: Key, P(ext): P<String>) -> ApiResult<axum::Json<Value>> {
    let (t, b) = the_box(&w, &ext).await?;
    Ok(axum::Json(box_json(&w, t, &b).await?))
}

async fn update_box(
    State(w): State<Web>,
    _k: Key,
    P(ext): P<String>,
    J(patch): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let (t, b) = the_box(&w, &ext).await?;
    for k in ["greeting_unavailable", "greeting_busy", "greeting_name"] {
        if patch.contains_key(k) {
            return Err(field_error(
                k,
                "set by uploading the greeting (PUT /voicemail/{number}/greetings/{kind}) or recording it by phone",
            ));
        }
    }
    let spec: BoxSpec = merge(&b.spec, patch)?;
    let b = w.store().put_vm_box(t, &ext, &spec).await?;
    Ok(axum::Json(box_json(&w, t, &b).await?))
}

/// `{"pin": "2580"}` sets the PIN, `{"pin": null}` removes it.
async fn set_pin(
    State(w): State<Web>,
    _k: Key,
    P(ext): P<String>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let (t, _) = the_box(&w, &ext).await?;
    let pin = match b.remove("pin") {
        Some(Value::String(p)) => Some(p),
        Some(Value::Null) => None,
        Some(_) => return Err(field_error("pin", "must be a string of digits or null")),
        None => return Err(field_error("pin", "required (null removes the PIN)")),
    };
    if let Some(k) = b.keys().next() {
        return Err(field_error(k, "unknown member"));
    }
    w.store().set_vm_pin(t, &ext, pin.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_messages(
    State(w): State<Web>,
    _k: Key,
    P(ext): P<String>,
) -> ApiResult<axum::Json<Value>> {
    let (t, _) = the_box(&w, &ext).await?;
    Ok(all(w.store().list_vm_messages(t, &ext).await?))
}

async fn message_of(w: &Web, ext: &str, id: i64) -> ApiResult<(i64, store::VmMessage)> {
    let (t, _) = the_box(w, ext).await?;
    match w.store().vm_message(t, id).await? {
        Some(m) if m.mailbox == ext => Ok((t, m)),
        _ => Err(ApiError::not_found(format!(
            "no message {id} in mailbox {ext}"
        ))),
    }
}

/// `{"folder": "saved"}` marks a message read; `"new"` marks it unread again.
async fn update_message(
    State(w): State<Web>,
    _k: Key,
    P((ext, id)): P<(String, i64)>,
    J(mut b): J<Map<String, Value>>,
) -> ApiResult<axum::Json<Value>> {
    let (t, _) = message_of(&w, &ext, id).await?;
    let folder = match b.remove("folder") {
        Some(Value::String(f)) => {
            Folder::parse(&f).ok_or_else(|| field_error("folder", "new or saved"))?
        }
        _ => return Err(field_error("folder", "required: new or saved")),
    };
    if let Some(k) = b.keys().next() {
        return Err(field_error(k, "unknown member"));
    }
    let m = w.store().set_vm_folder(t, id, folder).await?;
    Ok(axum::Json(
        serde_json::to_value(m).map_err(|e| ApiError::invalid(e.to_string()))?,
    ))
}

async fn delete_message(
    State(w): State<Web>,
    _k: Key,
    P((ext, id)): P<(String, i64)>,
) -> ApiResult<StatusCode> {
    let (t, _) = message_of(&w, &ext, id).await?;
    let m = w.store().delete_vm_message(t, id).await?;
    let file = w.info().data_dir.join(&m.path);
    if let Err(e) = tokio::fs::remove_file(&file).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %file.display(), error = %e, "voicemail file not removed");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The message's WAV (`?download=1` as an attachment).
async fn audio(
    State(w): State<Web>,
    _k: Key,
    P((ext, id)): P<(String, i64)>,
    Q(q): Q<AudioQuery>,
) -> ApiResult<Response> {
    let (_, m) = message_of(&w, &ext, id).await?;
    let name = format!("voicemail-{ext}-{id}.wav");
    wav_response(
        &w.info().data_dir.join(&m.path),
        &name,
        is_yes(q.download.as_deref()),
    )
    .await
}

fn greeting_kind(kind: &str) -> ApiResult<Greeting> {
    Greeting::parse(kind).ok_or_else(|| {
        ApiError::not_found(format!(
            "no greeting {kind:?}: use unavailable, busy or name"
        ))
    })
}

/// A greeting as listed: its kind, whether one is recorded and its length.
#[derive(Debug, serde::Serialize)]
pub(crate) struct GreetingView {
    /// `unavailable`, `busy` or `name`.
    pub kind: &'static str,
    /// The owner recorded or uploaded one (else the default greeting plays).
    pub present: bool,
    /// Length in seconds, when present.
    pub duration_s: Option<f64>,
}

/// The box's three greetings (API and panel).
pub(crate) fn greetings_of(w: &Web, t: i64, b: &store::VmBox) -> Vec<GreetingView> {
    Greeting::ALL
        .iter()
        .map(|g| {
            let present = b.spec.has_greeting(*g);
            let path = w
                .info()
                .data_dir
                .join(engine::vm::greeting_path(t, &b.number, *g));
            GreetingView {
                kind: g.as_str(),
                present,
                duration_s: present
                    .then(|| apps::audio_file::wav_seconds(&path))
                    .flatten()
                    .map(|s| (s * 100.0).round() / 100.0),
            }
        })
        .collect()
}

async fn list_greetings(
    State(w): State<Web>,
    _k: Key,
    P(ext): P<String>,
) -> ApiResult<axum::Json<Value>> {
    let (t, b) = the_box(&w, &ext).await?;
    Ok(all(greetings_of(&w, t, &b)))
}

/// The refusal of a greeting upload, as the API answers it (the panel shows the message).
pub(crate) fn greeting_error(e: store::VmGreetingError) -> ApiError {
    match e {
        store::VmGreetingError::Refused(c) => super::prompts::convert_error(c),
        store::VmGreetingError::Store(s) => s.into(),
    }
}

/// Stores the `file` of an upload as `ext`'s greeting `g` (API and panel).
pub(crate) async fn store_greeting(
    w: &Web,
    t: i64,
    ext: &str,
    g: Greeting,
    up: super::prompts::Upload,
) -> ApiResult<f64> {
    let Some(file) = up.file else {
        return Err(super::prompts::no_file());
    };
    w.store()
        .upload_vm_greeting(&w.info().data_dir, t, ext, g, file.path())
        .await
        .map_err(greeting_error)
}

/// Multipart `file`: the greeting, converted like a prompt upload (422 with the reason when
/// refused).
async fn upload_greeting(
    State(w): State<Web>,
    _k: Key,
    P((ext, kind)): P<(String, String)>,
    mp: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<axum::Json<Value>> {
    let g = greeting_kind(&kind)?;
    let (t, _) = the_box(&w, &ext).await?;
    let up = super::prompts::api_form(&w, mp).await?;
    store_greeting(&w, t, &ext, g, up).await?;
    let (t, b) = the_box(&w, &ext).await?;
    let v = greetings_of(&w, t, &b)
        .into_iter()
        .find(|v| v.kind == g.as_str());
    Ok(axum::Json(
        serde_json::to_value(v).map_err(|e| ApiError::invalid(e.to_string()))?,
    ))
}

async fn delete_greeting(
    State(w): State<Web>,
    _k: Key,
    P((ext, kind)): P<(String, String)>,
) -> ApiResult<StatusCode> {
    let g = greeting_kind(&kind)?;
    let (t, b) = the_box(&w, &ext).await?;
    if !b.spec.has_greeting(g) {
        return Err(ApiError::not_found(format!(
            "mailbox {ext} has no {kind} greeting"
        )));
    }
    w.store()
        .remove_vm_greeting(&w.info().data_dir, t, &ext, g)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The greeting's WAV (`?download=1` as an attachment).
pub(crate) async fn greeting_wav(
    w: &Web,
    ext: &str,
    kind: &str,
    download: bool,
) -> ApiResult<Response> {
    let g = greeting_kind(kind)?;
    let (t, b) = the_box(w, ext).await?;
    if !b.spec.has_greeting(g) {
        return Err(ApiError::not_found(format!(
            "mailbox {ext} has no {kind} greeting"
        )));
    }
    let path = w.info().data_dir.join(engine::vm::greeting_path(t, ext, g));
    wav_response(&path, &format!("greeting-{ext}-{kind}.wav"), download).await
}

async fn greeting_audio(
    State(w): State<Web>,
    _k: Key,
    P((ext, kind)): P<(String, String)>,
    Q(q): Q<AudioQuery>,
) -> ApiResult<Response> {
    greeting_wav(&w, &ext, &kind, is_yes(q.download.as_deref())).await
}
