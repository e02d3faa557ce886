//! The voicemail part of the OpenAPI document.

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param, r};

fn settings() -> Value {
    json!({
        "enabled": { "type": "boolean", "description": "callers may leave messages" },
        "email": { "type": "string", "description": "new messages are mailed here (empty: not mailed)" },
        "attach": { "type": "boolean", "description": "attach the WAV" },
        "delete_after_mail": { "type": "boolean", "description": "delete a message once mailed (needs email)" },
        "max_message_s": { "type": "integer", "minimum": 10, "maximum": 600 },
        "skip_pin_own_phone": { "type": "boolean", "description": "the owner's phones enter without the PIN (a PIN must still be set)" }
    })
}

/// Adds the schemas.
pub(super) fn schemas(s: &mut Value) {
    let mut shown = settings();
    for (k, v) in [
        ("number", json!({ "type": "string" })),
        ("tenant_id", json!({ "type": "integer" })),
        (
            "has_pin",
            json!({ "type": "boolean", "description": "false: the box cannot be entered by phone" }),
        ),
        (
            "locked_until",
            json!({ "type": "string", "format": "date-time", "nullable": true, "description": "locked after repeated wrong PINs" }),
        ),
        (
            "greeting_unavailable",
            json!({ "type": "boolean", "readOnly": true }),
        ),
        (
            "greeting_busy",
            json!({ "type": "boolean", "readOnly": true }),
        ),
        (
            "greeting_name",
            json!({ "type": "boolean", "readOnly": true }),
        ),
        ("new", json!({ "type": "integer" })),
        ("saved", json!({ "type": "integer" })),
        (
            "mail",
            json!({ "type": "array", "description": "the box's latest e-mails", "items": { "type": "object", "properties": {
            "id": { "type": "integer" }, "message_id": { "type": "integer" }, "email": { "type": "string" },
            "status": { "type": "string", "enum": ["pending", "sent", "failed"] }, "attempts": { "type": "integer" },
            "last_error": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" } } } }),
        ),
    ] {
        shown[k] = v;
    }
    s["VmBox"] = json!({ "type": "object", "required": ["number", "has_pin", "new", "saved"], "properties": shown });
    s["VmBoxPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": settings() });
    s["VmMessage"] = json!({ "type": "object", "required": ["id", "folder", "path"], "properties": {
        "id": { "type": "integer" }, "tenant_id": { "type": "integer" }, "mailbox": { "type": "string" },
        "folder": { "type": "string", "enum": ["new", "saved"] }, "caller": { "type": "string" },
        "caller_name": { "type": "string" }, "call_id": { "type": "string" },
        "reason": { "type": "string", "enum": ["unavailable", "busy", ""] },
        "duration_ms": { "type": "integer" }, "received_at": { "type": "string", "format": "date-time" },
        "path": { "type": "string", "description": "relative to the data directory" } } });
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let ext = path_param("number", json!({ "type": "string" }));
    let id = path_param("id", json!({ "type": "integer" }));
    add(
        "/voicemail/{number}",
        json!({
            "parameters": [ext],
            "get": op("A mailbox: settings, counts, e-mail state", json!({ "responses": { "200": ok_json("found", r("VmBox")) } }), &["404"]),
            "put": op("Change a mailbox's settings (members given replace the stored ones)", json!({ "requestBody": body(r("VmBoxPatch")), "responses": { "200": ok_json("changed", r("VmBox")) } }), &["400", "404", "415", "422"])
        }),
    );
    add(
        "/voicemail/{number}/pin",
        json!({
            "parameters": [ext],
            "put": op("Set the PIN (4-12 digits, not 1111 or 1234-like), or remove it with null", json!({ "requestBody": body(json!({ "type": "object", "required": ["pin"], "additionalProperties": false, "properties": { "pin": { "type": "string", "nullable": true, "writeOnly": true } } })), "responses": { "204": { "description": "done" } } }), &["400", "404", "415", "422"])
        }),
    );
    add(
        "/voicemail/{number}/messages",
        json!({
            "parameters": [ext],
            "get": op("A mailbox's messages: new first, each folder oldest first", json!({ "responses": { "200": ok_json("all", list_of("VmMessage")) } }), &["404"])
        }),
    );
    add(
        "/voicemail/{number}/messages/{id}",
        json!({
            "parameters": [ext, id],
            "put": op("Mark a message read (folder saved) or unread (new)", json!({ "requestBody": body(json!({ "type": "object", "required": ["folder"], "additionalProperties": false, "properties": { "folder": { "type": "string", "enum": ["new", "saved"] } } })), "responses": { "200": ok_json("changed", r("VmMessage")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete a message and its file", json!({ "responses": { "204": { "description": "done" } } }), &["400", "404"])
        }),
    );
    add(
        "/voicemail/{number}/messages/{id}/audio",
        json!({
            "parameters": [ext, id, { "name": "download", "in": "query", "required": false, "schema": { "type": "string" }, "description": "1: as an attachment" }],
            "get": op("The message's audio (audio/wav)", json!({ "responses": { "200": { "description": "WAV", "content": { "audio/wav": { "schema": { "type": "string", "format": "binary" } } } } } }), &["400", "404"])
        }),
    );
}
