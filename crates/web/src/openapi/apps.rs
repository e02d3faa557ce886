//! The voice-application part of the OpenAPI document: IVR menus.

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param, r};

fn menu_props() -> Value {
    let int = |min: u32, max: u32, d: &str| json!({ "type": "integer", "minimum": min, "maximum": max, "description": d });
    json!({
        "number": { "type": "string", "pattern": "^[0-9*]{0,20}$", "description": "internal number that reaches the menu (empty: none); not an extension's" },
        "description": { "type": "string" },
        "greeting": { "type": "string", "description": "prompt id of the greeting" },
        "options": { "type": "object", "description": "digit (0-9 * #) -> destination (ext:N, group:NAME, ivr:NAME, vm:N, voicemail, conf:N, park, park:SLOT, page:NAME, timecond:NAME, hangup) or a number (an extension, an internal number, an outside number through the outbound routes); each must exist; refusals name `options` and say which option and target",
            "additionalProperties": { "type": "string" } },
        "dial_by_extension": { "type": "boolean" },
        "timeout_s": int(1, 60, "seconds to wait for a choice after the greeting"),
        "digit_timeout_s": int(1, 20, "seconds to wait for the next digit of an extension number"),
        "retries": int(0, 10, "replays of the greeting after a timeout or an invalid choice"),
        "fallback": { "type": "string", "description": "destination when the retries are used up (hangup says goodbye)" },
        "announce_transfer": { "type": "boolean" },
        "cos": { "type": "string", "enum": ["", "internal", "local", "national", "mobile", "international"], "description": "class of service for outside numbers the menu sends callers to (empty: mobile); the caller ID is the tenant's main number" }
    })
}

/// Adds the schemas.
pub(super) fn schemas(s: &mut Value) {
    let ts = json!({ "type": "string", "format": "date-time" });
    let mut menu = menu_props();
    for (k, v) in [
        ("id", json!({ "type": "integer" })),
        ("tenant_id", json!({ "type": "integer" })),
        ("name", json!({ "type": "string" })),
        ("created_at", ts.clone()),
        ("updated_at", ts),
    ] {
        menu[k] = v;
    }
    let mut new = menu_props();
    new["name"] = json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,40}$" });
    s["IvrMenu"] = json!({ "type": "object", "required": ["name", "greeting", "options"], "properties": menu });
    s["NewIvrMenu"] = json!({ "type": "object", "required": ["name", "greeting"], "additionalProperties": false, "properties": new });
    s["IvrMenuPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": menu_props() });
    let room = json!({
        "name": { "type": "string", "maxLength": 64 },
        "pin": { "type": "string", "pattern": "^([0-9]{4,12})?$", "writeOnly": true, "description": "4-12 digits; empty: no PIN (never returned: see has_pin)" },
        "max_participants": { "type": "integer", "minimum": 2, "maximum": 200 },
        "join_muted": { "type": "boolean" },
        "join_tones": { "type": "boolean" }
    });
    let mut shown = room.clone();
    shown["number"] = json!({ "type": "string" });
    shown["has_pin"] = json!({ "type": "boolean" });
    s["ConfParticipant"] = json!({ "type": "object", "required": ["call", "caller", "muted"], "properties": {
        "call": { "type": "integer", "description": "call id (for mute and kick)" },
        "caller": { "type": "string" }, "caller_name": { "type": "string" },
        "muted": { "type": "boolean" }, "duration_s": { "type": "integer", "description": "seconds since the call started" },
        "joined_at_s": { "type": "integer", "description": "when it entered the room (Unix seconds; 0 while entering the PIN)" } } });
    shown["participants"] = json!({ "type": "array", "items": r("ConfParticipant") });
    shown["created_at"] = json!({ "type": "string", "format": "date-time" });
    shown["updated_at"] = json!({ "type": "string", "format": "date-time" });
    let mut new = room.clone();
    new["number"] = json!({ "type": "string", "pattern": "^[0-9*]{1,20}$" });
    s["ConfRoom"] =
        json!({ "type": "object", "required": ["number", "participants"], "properties": shown });
    s["NewConfRoom"] = json!({ "type": "object", "required": ["number"], "additionalProperties": false, "properties": new });
    s["ConfRoomPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": room });
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/ivrs",
        json!({
            "get": op("IVR menus", json!({ "responses": { "200": ok_json("all", list_of("IvrMenu")) } }), &[]),
            "post": op("Create an IVR menu", json!({ "requestBody": body(r("NewIvrMenu")), "responses": { "201": ok_json("created", r("IvrMenu")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/ivrs/{name}",
        json!({
            "parameters": [path_param("name", json!({ "type": "string" }))],
            "get": op("An IVR menu", json!({ "responses": { "200": ok_json("found", r("IvrMenu")) } }), &["404"]),
            "put": op("Change an IVR menu (members given replace the stored ones; `options` replaces the whole table)", json!({ "requestBody": body(r("IvrMenuPatch")), "responses": { "200": ok_json("changed", r("IvrMenu")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete an IVR menu; refused (422, field name) while a DID or another menu uses it", json!({ "responses": { "204": { "description": "done" } } }), &["404", "422"])
        }),
    );
    add(
        "/conferences",
        json!({
            "get": op("Conference rooms and who is in them now", json!({ "responses": { "200": ok_json("all", list_of("ConfRoom")) } }), &[]),
            "post": op("Create a conference room", json!({ "requestBody": body(r("NewConfRoom")), "responses": { "201": ok_json("created", r("ConfRoom")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/conferences/{number}",
        json!({
            "parameters": [path_param("number", json!({ "type": "string" }))],
            "get": op("A conference room", json!({ "responses": { "200": ok_json("found", r("ConfRoom")) } }), &["404"]),
            "put": op("Change a room (members given replace the stored ones)", json!({ "requestBody": body(r("ConfRoomPatch")), "responses": { "200": ok_json("changed", r("ConfRoom")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete a room; refused (422, field number) while a DID or an IVR menu uses it", json!({ "responses": { "204": { "description": "done" } } }), &["404", "422"])
        }),
    );
    add(
        "/conferences/{number}/participants",
        json!({
            "parameters": [path_param("number", json!({ "type": "string" }))],
            "get": op("Who is in a room now, in joining order", json!({ "responses": { "200": ok_json("all", list_of("ConfParticipant")) } }), &["404"])
        }),
    );
    add(
        "/conferences/{number}/participants/{call}",
        json!({
            "parameters": [path_param("number", json!({ "type": "string" })), path_param("call", json!({ "type": "integer" }))],
            "delete": op("Drop a participant from the room (its call is hung up)", json!({ "responses": { "204": { "description": "done" } } }), &["400", "404"])
        }),
    );
    add(
        "/conferences/{number}/participants/{call}/mute",
        json!({
            "parameters": [path_param("number", json!({ "type": "string" })), path_param("call", json!({ "type": "integer" }))],
            "put": op("Mute or unmute a participant", json!({ "requestBody": body(json!({ "type": "object", "required": ["muted"], "properties": { "muted": { "type": "boolean" } } })), "responses": { "204": { "description": "done" } } }), &["400", "404", "415", "422"])
        }),
    );
}
