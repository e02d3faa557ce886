//! The prompt-language part of the OpenAPI document (`/tenant-settings`, the extensions'
//! `language` field).

use serde_json::{Value, json};

use super::{body, ok_json, op};

fn language() -> Value {
    let mut all: Vec<&str> = vec![""];
    all.extend(engine::settings::PROMPT_LANGUAGES);
    json!({ "type": "string", "enum": all,
        "description": "prompt language: en, ja, or empty to inherit (an extension: its tenant's default; a tenant: the node's prompts.language). Another value is refused with 422, error.field = \"language\"" })
}

/// Adds the `language` field to the extension schemas.
pub(super) fn schemas(s: &mut Value) {
    for k in ["Extension", "NewExtension", "ExtensionPatch"] {
        s[k]["properties"]["language"] = language();
    }
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let settings = json!({ "type": "object", "required": ["language", "effective_language"], "properties": {
        "language": language(),
        "effective_language": { "type": "string", "enum": engine::settings::PROMPT_LANGUAGES, "description": "what the tenant's callers hear when their extension inherits" } } });
    let put = json!({ "type": "object", "required": ["language"], "additionalProperties": false, "properties": { "language": language() } });
    add(
        "/tenant-settings",
        json!({ "get": op("The tenant's settings: its default prompt language", json!({ "responses": { "200": ok_json("settings", settings.clone()) } }), &[]),
            "put": op("Set the tenant's default prompt language", json!({ "requestBody": body(put),
                "responses": { "200": ok_json("settings", settings) } }), &["400", "415", "422"]) }),
    );
}
