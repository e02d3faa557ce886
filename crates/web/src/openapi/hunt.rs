//! The ring group and forwarding part of the OpenAPI document.

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param, r};

fn ring(d: &str) -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 600, "description": d })
}

fn group_props() -> Value {
    json!({
        "number": { "type": "string", "pattern": "^[0-9*]{0,20}$", "description": "internal number that dials the group (empty: none); nobody else's" },
        "strategy": { "type": "string", "enum": ["simultaneous", "sequential", "round_robin", "first_available"],
            "description": "simultaneous: all at once; sequential: in order, each for its ring time; round_robin: sequential starting after the member tried last (kept across restarts); first_available: only the first member not busy, on DND or unregistered. Busy, DND and unregistered members are always skipped" },
        "members": { "type": "array", "maxItems": 64, "description": "extension numbers or outside numbers (rung through the outbound routes with the group's class of service)",
            "items": { "oneOf": [ { "type": "string", "pattern": "^[0-9+*#]{1,32}$" },
                { "type": "object", "required": ["number"], "properties": { "number": { "type": "string" },
                  "ring_s": { "type": "integer", "minimum": 0, "maximum": 600, "description": "this member's ring time (0: the group's ring_s)" } } } ] } },
        "ring_s": ring("ring time of one member in sequential strategies (default 15)"),
        "timeout_s": ring("the group rings at most this long (default 60)"),
        "no_answer": { "type": "string", "description": "destination when nobody answers: ext:N, vm:N, ivr:NAME, group:NAME, a number, or hangup (default)" },
        "cid_prefix": { "type": "string", "maxLength": 32, "description": "caller-ID name prefix members see (\"Sales: Tanaka\")" },
        "cos": { "type": "string", "enum": ["internal", "local", "national", "mobile", "international"], "description": "class of service of outside members" }
    })
}

fn forwarding_props() -> Value {
    let dest = |d: &str| json!({ "type": "string", "description": format!("{d}: ext:N, vm:N, group:NAME, ivr:NAME, an extension or outside number (the extension's class of service applies), or empty for off") });
    json!({
        "always": dest("forward every call"),
        "busy": dest("forward when the phone answers busy"),
        "no_answer": dest("forward when nobody answers within no_answer_s"),
        "no_answer_s": { "type": "integer", "minimum": 0, "maximum": 600, "description": "ring time before the no-answer forward or follow-me (0: the system's no-answer time)" },
        "unreachable": dest("forward when no phone is registered"),
        "dnd": { "type": "boolean", "description": "do not disturb" },
        "dnd_mode": { "type": "string", "enum": ["busy", "voicemail"], "description": "DND answers 486 Busy or sends callers to the extension's voicemail (reason busy)" },
        "follow_me": { "type": "array", "maxItems": 64, "items": { "type": "string", "pattern": "^[0-9+*#]{1,32}$" }, "description": "numbers rung after the desk" },
        "follow_me_together": { "type": "boolean", "description": "ring the follow-me numbers at once (else in turn)" },
        "follow_me_s": { "type": "integer", "minimum": 0, "maximum": 600, "description": "ring time of each follow-me step (0: no_answer_s)" }
    })
}

/// Adds the schemas.
pub(super) fn schemas(s: &mut Value) {
    let ts = json!({ "type": "string", "format": "date-time" });
    let mut g = group_props();
    for (k, v) in [
        ("id", json!({ "type": "integer" })),
        ("tenant_id", json!({ "type": "integer" })),
        ("name", json!({ "type": "string" })),
        (
            "last_member",
            json!({ "type": "string", "description": "round-robin memory: the member tried last" }),
        ),
        ("created_at", ts.clone()),
        ("updated_at", ts),
    ] {
        g[k] = v;
    }
    let mut new = group_props();
    new["name"] = json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,40}$" });
    s["RingGroup"] =
        json!({ "type": "object", "required": ["name", "strategy", "members"], "properties": g });
    s["NewRingGroup"] = json!({ "type": "object", "required": ["name", "members"], "additionalProperties": false, "properties": new });
    s["RingGroupPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": group_props() });
    s["Forwarding"] = json!({ "type": "object", "additionalProperties": false, "properties": forwarding_props() });
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/groups",
        json!({
            "get": op("Ring groups", json!({ "responses": { "200": ok_json("all", list_of("RingGroup")) } }), &[]),
            "post": op("Create a ring group", json!({ "requestBody": body(r("NewRingGroup")), "responses": { "201": ok_json("created", r("RingGroup")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/groups/{name}",
        json!({
            "parameters": [path_param("name", json!({ "type": "string" }))],
            "get": op("A ring group", json!({ "responses": { "200": ok_json("found", r("RingGroup")) } }), &["404"]),
            "put": op("Change a ring group (members given replace the stored ones; `members` replaces the whole list)", json!({ "requestBody": body(r("RingGroupPatch")), "responses": { "200": ok_json("changed", r("RingGroup")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete a ring group; refused (422, field name) while a DID, an IVR menu, another group or a forward names it", json!({ "responses": { "204": { "description": "done" } } }), &["404", "422"])
        }),
    );
    add(
        "/extensions/{number}/forwarding",
        json!({
            "parameters": [path_param("number", json!({ "type": "string" }))],
            "get": op("An extension's forwarding, follow-me and DND", json!({ "responses": { "200": ok_json("found", r("Forwarding")) } }), &["404"]),
            "put": op("Change an extension's forwarding, follow-me and DND (members given replace the stored ones; an empty string turns a forward off)", json!({ "requestBody": body(r("Forwarding")), "responses": { "200": ok_json("changed", r("Forwarding")) } }), &["400", "404", "415", "422"])
        }),
    );
}
