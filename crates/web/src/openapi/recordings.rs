//! The call-recording part of the OpenAPI document (`/recordings`, `/recording-policies`,
//! `/recording-settings`).

use serde_json::{Value, json};

use super::{body, ok_json, op, path_param, query};

fn recording() -> Value {
    json!({ "type": "object", "required": ["id", "call_id", "path", "format", "started_at", "duration_ms", "status"], "properties": {
        "id": { "type": "integer" },
        "tenant_id": { "type": "integer" },
        "call_id": { "type": "string", "description": "SIP Call-ID of the call, as in its call record" },
        "path": { "type": "string", "description": "file relative to the data directory; empty once expired or when no file was left" },
        "format": { "type": "string", "enum": ["wav", "opus"] },
        "started_at": { "type": "string", "format": "date-time" },
        "stopped_at": { "type": "string", "format": "date-time", "nullable": true },
        "duration_ms": { "type": "integer" },
        "status": { "type": "string", "enum": ["recording", "stopped", "disk-full", "error", "expired"] },
        "detail": { "type": "string", "description": "the error, for disk-full and error" } } })
}

fn policy() -> Value {
    json!({ "type": "object", "required": ["kind", "name", "policy"], "properties": {
        "kind": { "type": "string", "enum": ["extension", "route", "trunk"] },
        "name": { "type": "string", "description": "extension number, outbound route name or trunk name" },
        "policy": { "type": "string", "enum": ["never", "always", "on_demand"] } } })
}

fn settings() -> Value {
    json!({ "type": "object", "required": ["retention_days", "format", "layout"], "additionalProperties": false, "properties": {
        "retention_days": { "type": "integer", "minimum": 0, "maximum": 36500, "description": "days a recording is kept; 0 keeps them forever" },
        "format": { "type": "string", "enum": ["wav", "opus"], "description": "opus: Ogg Opus, mono" },
        "layout": { "type": "string", "enum": ["mono", "stereo"], "description": "stereo: caller left, callee right (WAV only)" } } })
}

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/recordings",
        json!({ "get": op("Call recordings, newest first", json!({ "parameters": [
                query("call_id", json!({ "type": "string" }), "only this call's recordings"),
                query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 1000 }), "at most this many (default 100)") ],
            "responses": { "200": ok_json("recordings", json!({ "type": "array", "items": recording() })) } }), &["400", "422"]) }),
    );
    add(
        "/recordings/{id}",
        json!({ "parameters": [path_param("id", json!({ "type": "integer" }))],
            "get": op("One recording", json!({ "responses": { "200": ok_json("the recording", recording()) } }), &["400", "404"]) }),
    );
    add(
        "/recordings/{id}/audio",
        json!({ "parameters": [path_param("id", json!({ "type": "integer" }))],
            "get": op("The recording's audio (inline to play, or download=true as an attachment)", json!({
                "parameters": [query("download", json!({ "type": "boolean" }), "send as an attachment")],
                "responses": { "200": { "description": "audio", "content": {
                    "audio/wav": { "schema": { "type": "string", "format": "binary" } },
                    "audio/ogg": { "schema": { "type": "string", "format": "binary" } } } } } }), &["400", "404"]) }),
    );
    add(
        "/recording-policies",
        json!({ "get": op("Recording policies that are not `never` (the default). Precedence: any `always` among the call's extensions, outbound route and trunk records it; else any `on_demand` lets a party toggle recording with *1", json!({
            "responses": { "200": ok_json("policies", json!({ "type": "array", "items": policy() })) } }), &[]) }),
    );
    add(
        "/recording-policies/{kind}/{name}",
        json!({ "parameters": [path_param("kind", json!({ "type": "string", "enum": ["extension", "route", "trunk"] })), path_param("name", json!({ "type": "string" }))],
            "put": op("Set the recording policy of an extension, outbound route or trunk", json!({
                "requestBody": body(json!({ "type": "object", "required": ["policy"], "additionalProperties": false, "properties": { "policy": { "type": "string", "enum": ["never", "always", "on_demand"] } } })),
                "responses": { "200": ok_json("the policy", policy()) } }), &["400", "404", "415", "422"]) }),
    );
    add(
        "/recording-settings",
        json!({ "get": op("Recording settings", json!({ "responses": { "200": ok_json("settings", settings()) } }), &[]),
            "put": op("Replace the recording settings", json!({ "requestBody": body(settings()),
                "responses": { "200": ok_json("settings", settings()) } }), &["400", "415", "422"]) }),
    );
}
