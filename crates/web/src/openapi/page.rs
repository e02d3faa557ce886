//! The page group part of the OpenAPI document.

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param, r};

fn page_props() -> Value {
    json!({
        "number": { "type": "string", "pattern": "^[0-9*]{0,20}$", "description": "internal number that dials the group (empty: none); nobody else's" },
        "members": { "type": "array", "minItems": 1, "maxItems": 64, "items": { "type": "string", "pattern": "^[0-9]{1,20}$" },
            "description": "extension numbers of the tenant; every registered phone of each is paged at once" },
        "barge": { "type": "boolean", "description": "page members in a call or on DND too (default false: they are skipped)" },
        "answer_s": { "type": "integer", "minimum": 1, "maximum": 60, "description": "seconds a phone has to answer by itself before it is cancelled (default 5)" },
        "max_s": { "type": "integer", "minimum": 1, "maximum": 3600, "description": "longest page; then every party is hung up (default 60)" },
        "auto_answer": { "type": "string", "enum": ["common", "call_info", "alert_info", "answer_mode", "polycom_legacy"],
            "description": "auto-answer headers sent to the phones (default common: Call-Info answer-after=0, Alert-Info info=alert-autoanswer, Answer-Mode: Auto)" }
    })
}

/// Adds the schemas.
pub(super) fn schemas(s: &mut Value) {
    let ts = json!({ "type": "string", "format": "date-time" });
    let mut g = page_props();
    for (k, v) in [
        ("id", json!({ "type": "integer" })),
        ("tenant_id", json!({ "type": "integer" })),
        ("name", json!({ "type": "string" })),
        ("created_at", ts.clone()),
        ("updated_at", ts),
    ] {
        g[k] = v;
    }
    let mut new = page_props();
    new["name"] = json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,40}$" });
    s["PageGroup"] = json!({ "type": "object", "required": ["name", "members"], "properties": g });
    s["NewPageGroup"] = json!({ "type": "object", "required": ["name", "members"], "additionalProperties": false, "properties": new });
    s["PageGroupPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": page_props() });
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/pages",
        json!({
            "get": op("Page groups", json!({ "responses": { "200": ok_json("all", list_of("PageGroup")) } }), &[]),
            "post": op("Create a page group", json!({ "requestBody": body(r("NewPageGroup")), "responses": { "201": ok_json("created", r("PageGroup")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/pages/{name}",
        json!({
            "parameters": [path_param("name", json!({ "type": "string" }))],
            "get": op("A page group", json!({ "responses": { "200": ok_json("found", r("PageGroup")) } }), &["404"]),
            "put": op("Change a page group (settings given replace the stored ones; `members` replaces the whole list)", json!({ "requestBody": body(r("PageGroupPatch")), "responses": { "200": ok_json("changed", r("PageGroup")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete a page group", json!({ "responses": { "204": { "description": "done" } } }), &["404"])
        }),
    );
}
