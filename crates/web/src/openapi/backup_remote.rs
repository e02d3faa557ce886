//! The backup-server part of the OpenAPI document (the panel's Backup server page as an API).

use serde_json::{Value, json};

use super::{body, ok_json, op};

fn obj(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let done = json!({ "description": "done" });
    let any = json!({ "type": "object" });
    add(
        "/backup/remote",
        json!({ "get": op("Shipping to the backup server: pairing, schedule, last results, the server's generations", json!({ "responses": { "200": ok_json("state", any.clone()) } }), &[]) }),
    );
    add(
        "/backup/remote/pair",
        json!({
            "post": op("Pair with a backup server using the one-time code it showed (pins its certificate); 403 `topology` unless the licence is standalone-backup", json!({ "requestBody": body(obj(json!({ "address": { "type": "string", "description": "host:port or https://host:port" }, "code": { "type": "string" } }), &["address", "code"])), "responses": { "200": ok_json("paired", any.clone()) } }), &["400", "415", "422"]),
            "delete": op("Forget the pairing", json!({ "responses": { "204": done.clone() } }), &[])
        }),
    );
    add(
        "/backup/remote/schedule",
        json!({ "put": op("Daily shipping time HH:MM in the report time zone (empty: on demand only)", json!({ "requestBody": body(obj(json!({ "daily_at": { "type": "string" } }), &["daily_at"])), "responses": { "204": done.clone() } }), &["400", "415", "422"]) }),
    );
    add(
        "/backup/remote/ship",
        json!({ "post": op("Ship a backup now", json!({ "responses": { "200": ok_json("shipped", any.clone()) } }), &["502"]) }),
    );
    add(
        "/backup/remote/restore",
        json!({ "post": op("Restore a generation from the backup server (database, prompts, voicemail, recordings, music on hold)", json!({ "requestBody": body(obj(json!({ "generation": { "type": "integer" } }), &["generation"])), "responses": { "200": ok_json("restored", any.clone()) } }), &["400", "415", "422"]) }),
    );
    add(
        "/backup/server",
        json!({ "get": op("The backup server's side: state, paired nodes, received uploads", json!({ "responses": { "200": ok_json("state", any.clone()) } }), &[]) }),
    );
    add(
        "/backup/server/codes",
        json!({ "post": op("A one-time pairing code (15 minutes, single use)", json!({ "responses": { "201": ok_json("code", obj(json!({ "code": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" } }), &["code"])) } }), &["409"]) }),
    );
    add(
        "/backup/server/keep",
        json!({ "put": op("Generations to keep (1-1000)", json!({ "requestBody": body(obj(json!({ "keep": { "type": "integer", "minimum": 1, "maximum": 1000 } }), &["keep"])), "responses": { "204": done.clone() } }), &["400", "415", "422"]) }),
    );
    add(
        "/backup/server/peers/{id}",
        json!({ "parameters": [super::path_param("id", json!({ "type": "integer" }))],
            "delete": op("Revoke a paired node", json!({ "responses": { "204": done } }), &["400", "404"]) }),
    );
}
