//! `/api/v1/license` (what is in force, this node's id, usage; install a new licence), the
//! read-only guard that refuses configuration writes once the licence has expired, and their
//! part of the OpenAPI document.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use crate::Web;
use crate::api::{ApiError, Key};
use crate::license::LicenseView;

/// `GET /license`: the report, this node's id and usage.
pub async fn get_license(State(w): State<Web>, _k: Key) -> Result<Json<LicenseView>, ApiError> {
    let usage = w.license_usage().await?;
    Ok(Json(w.licensing().view(usage, Utc::now())))
}

/// `PUT /license`: the body is the licence file's text. Full scope (the key extractor refuses
/// read keys on writes). Refused files answer 422 with the refusal's code and change nothing.
pub async fn put_license(
    State(w): State<Web>,
    _k: Key,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    w.licensing().install(&body, Utc::now())?;
    let usage = w.license_usage().await?;
    Ok(Json(w.licensing().view(usage, Utc::now())))
}

/// API writes that stay allowed after expiry: installing a licence, hanging up calls, and
/// managing administrators and API keys (needed to install one).
fn allowed_when_read_only(path: &str) -> bool {
    let p = path.strip_prefix("/api/v1").unwrap_or(path);
    p == "/license"
        || p.starts_with("/calls/")
        || p == "/admins"
        || p.starts_with("/admins/")
        || p == "/api-keys"
        || p.starts_with("/api-keys/")
}

/// Middleware on `/api/v1`: once the licence has expired, every write outside
/// [`allowed_when_read_only`] is refused with 403 `license_read_only` and the licence message.
/// Calls are not affected.
pub async fn read_only_guard(State(w): State<Web>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if write
        && !allowed_when_read_only(req.uri().path())
        && let Err(e) = w.check_writable()
    {
        return e.into_response();
    }
    next.run(req).await
}

/// Adds `/license`, the `License` schema and the licence error codes to the OpenAPI document.
pub fn extend_document(doc: &mut Value) {
    let err = json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let ok = json!({ "description": "what is in force", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/License" } } } });
    let errors = |codes: &[&str]| -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("200".into(), ok.clone());
        for c in codes {
            m.insert((*c).into(), err.clone());
        }
        m
    };
    doc["paths"]["/license"] = json!({
        "get": { "summary": "The licence in force (or the free allowance), this node's id (send it to the vendor) and how much of each limit is used",
                 "responses": errors(&["401", "403"]) },
        "put": { "summary": "Install a licence: the body is the licence file's text. Verified for this node and now; a refused file answers 422 with the reason's code (malformed, unknown_key, bad_signature, not_yet_valid, expired, wrong_node, ...) and changes nothing. Full scope.",
                 "requestBody": { "required": true, "content": { "text/plain": { "schema": { "type": "string", "maxLength": license::MAX_LICENSE_BYTES } } } },
                 "responses": errors(&["401", "403", "422"]) }
    });
    let limit = json!({ "oneOf": [{ "type": "integer", "minimum": 0 }, { "type": "string", "enum": ["unlimited"] }] });
    let count = json!({ "type": "integer", "minimum": 0 });
    doc["components"]["schemas"]["License"] = json!({
        "type": "object", "required": ["node_id", "dev_mode", "usage", "free", "topology", "limits", "status", "config_writable", "summary"],
        "properties": {
            "node_id": { "type": "string" },
            "dev_mode": { "type": "boolean", "description": "licences signed by the public TEST key are accepted (never in production)" },
            "file": { "type": "string", "nullable": true },
            "problem": { "type": "object", "nullable": true, "description": "why the installed file is not in force (then the free allowance is)",
                "properties": { "code": { "type": "string" }, "message": { "type": "string" } } },
            "usage": { "type": "object", "properties": { "extensions": count, "concurrent_calls": { "type": "integer", "nullable": true }, "tenants": count, "trunks": count } },
            "free": { "type": "boolean" },
            "topology": { "type": "string", "enum": ["standalone", "standalone-backup", "active-standby", "cloud"] },
            "limits": { "type": "object", "properties": { "extensions": limit, "concurrent_calls": limit, "tenants": limit, "trunks": limit } },
            "features": { "type": "array", "items": { "type": "string" } },
            "status": { "type": "object", "required": ["status"], "properties": {
                "status": { "type": "string", "enum": ["valid", "expires_soon", "expired"] },
                "days_left": { "type": "integer" }, "since": { "type": "string", "format": "date-time" } } },
            "config_writable": { "type": "boolean" },
            "summary": { "type": "string" },
            "license": { "type": "object", "nullable": true, "description": "the signed terms and the key that signed them" }
        }
    });
    if let Some(codes) = doc
        .pointer_mut("/components/schemas/Error/properties/error/properties/code/enum")
        .and_then(Value::as_array_mut)
    {
        for c in [
            "license_limit",
            "license_read_only",
            "too_large",
            "malformed",
            "unknown_version",
            "unknown_key",
            "bad_signature",
            "not_yet_valid",
            "expired",
            "wrong_node",
            "invalid_terms",
        ] {
            codes.push(Value::from(c));
        }
    }
}
