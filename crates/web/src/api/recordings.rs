//! `/api/v1/recordings`: call recordings of the tenant (listed per call, played inline or
//! downloaded), recording policies per extension/route/trunk, and the recording settings
//! (retention days, format, layout). See docs/recording.md.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use engine::recording::{RecObject, RecPolicy};
use serde::Deserialize;
use store::recording::{PolicyRow, RecSettings, RecordingRow};

use super::prompts::{is_yes, tenant};
use super::{ApiError, ApiResult, J, Key, P, Q};
use crate::Web;

/// The recording routes (merged into `/api/v1`).
pub(crate) fn routes() -> Router<Web> {
    Router::new()
        .route("/recordings", get(list))
        .route("/recordings/{id}", get(one))
        .route("/recordings/{id}/audio", get(audio))
        .route("/recording-policies", get(policies))
        .route("/recording-policies/{kind}/{name}", put(set_policy))
        .route("/recording-settings", get(settings).put(set_settings))
}

/// Query of `GET /recordings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    call_id: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(w): State<Web>,
    _k: Key,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<Vec<RecordingRow>>> {
    let t = tenant(&w).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1 to 1000"));
    }
    Ok(Json(
        w.store()
            .list_recordings(t, q.call_id.as_deref(), limit)
            .await?,
    ))
}

async fn find(w: &Web, id: i64) -> ApiResult<RecordingRow> {
    let t = tenant(w).await?;
    w.store()
        .recording(t, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recording {id}")))
}

async fn one(State(w): State<Web>, _k: Key, P(id): P<i64>) -> ApiResult<Json<RecordingRow>> {
    Ok(Json(find(&w, id).await?))
}

/// Query of the audio download.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AudioQuery {
    /// `true`/`1`: as an attachment (download) instead of inline (play).
    download: Option<String>,
}

async fn audio(
    State(w): State<Web>,
    _k: Key,
    P(id): P<i64>,
    Q(q): Q<AudioQuery>,
) -> ApiResult<Response> {
    let r = find(&w, id).await?;
    recording_response(&w, &r, is_yes(q.download.as_deref())).await
}

/// The audio of a recording, with its content type (`audio/wav`, `audio/ogg`); 404 when the
/// file was never written, expired or is gone. Used by the API and the panel.
pub(crate) async fn recording_response(
    w: &Web,
    r: &RecordingRow,
    download: bool,
) -> ApiResult<Response> {
    if r.path.is_empty() || !r.path.starts_with("recordings/") || r.path.contains("..") {
        return Err(ApiError::not_found(
            "this recording has no file (expired or failed)",
        ));
    }
    let bytes = tokio::fs::read(w.info().data_dir.join(&r.path))
        .await
        .map_err(|_| ApiError::not_found("the recording file is gone"))?;
    let (ctype, ext) = if r.format == "opus" {
        ("audio/ogg", "opus")
    } else {
        ("audio/wav", "wav")
    };
    let name = format!("recording-{}.{ext}", r.id);
    let disposition = format!(
        "{}; filename=\"{name}\"",
        if download { "attachment" } else { "inline" }
    );
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

async fn policies(State(w): State<Web>, _k: Key) -> ApiResult<Json<Vec<PolicyRow>>> {
    let t = tenant(&w).await?;
    Ok(Json(w.store().recording_policies(t).await?))
}

/// Body of `PUT /recording-policies/{kind}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    policy: String,
}

async fn set_policy(
    State(w): State<Web>,
    _k: Key,
    P((kind, name)): P<(String, String)>,
    J(b): J<PolicyBody>,
) -> ApiResult<Json<PolicyRow>> {
    let kind = RecObject::parse(&kind)
        .ok_or_else(|| ApiError::invalid("kind must be extension, route or trunk"))?;
    let policy = RecPolicy::parse(&b.policy)
        .ok_or_else(|| ApiError::invalid("policy must be never, always or on_demand"))?;
    let t = tenant(&w).await?;
    w.store()
        .set_recording_policy(t, kind, &name, policy)
        .await?;
    Ok(Json(PolicyRow { kind, name, policy }))
}

async fn settings(State(w): State<Web>, _k: Key) -> ApiResult<Json<RecSettings>> {
    let t = tenant(&w).await?;
    Ok(Json(w.store().recording_settings(t).await?))
}

async fn set_settings(
    State(w): State<Web>,
    _k: Key,
    J(s): J<RecSettings>,
) -> ApiResult<Json<RecSettings>> {
    let t = tenant(&w).await?;
    w.store().set_recording_settings(t, &s).await?;
    Ok(Json(s))
}
