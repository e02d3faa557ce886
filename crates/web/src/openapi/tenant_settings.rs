//! OpenAPI of `/tenant-settings/{key}` (`api/tenant_settings.rs`).

use serde_json::{Value, json};

use super::{body, ok_json, op, path_param};

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let keys = engine::tenant_settings::TENANT_KEYS;
    let view = json!({ "type": "object", "properties": {
        "key": { "type": "string" }, "tenant_id": { "type": "integer" },
        "tenant_value": { "description": "the tenant's own value; null: it inherits the node's" },
        "node_value": { "description": "the node's value (or its default)" },
        "value": { "description": "the value in force for the tenant" },
        "inherited": { "type": "boolean" }, "kind": {} } });
    let put = json!({ "type": "object", "required": ["value"], "additionalProperties": false, "properties": { "value": { "description": "checked like the node setting (blf.show_caller: show or hide; intercom.audio: two-way or one-way; recording.beep: toggle, all or off)" } } });
    add(
        "/tenant-settings/{key}",
        json!({
            "parameters": [path_param("key", json!({ "type": "string", "enum": keys }))],
            "get": op("A setting the tenant may override: its own value, the node's, and the one in force (a tenant's key: that tenant; a node-wide key: the default tenant)",
                json!({ "responses": { "200": ok_json("the setting", view.clone()) } }), &["404"]),
            "put": op("Set the tenant's own value (overrides the node's)",
                json!({ "requestBody": body(put), "responses": { "200": ok_json("the setting", view.clone()) } }), &["400", "404", "415", "422"]),
            "delete": op("Remove the tenant's own value (the node's applies again)",
                json!({ "responses": { "200": ok_json("the setting", view) } }), &["404"]),
        }),
    );
}
