//! OpenAPI paths of call transfer (`api/transfer.rs`).

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param};

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/cdrs/{id}/events",
        json!({
            "parameters": [path_param("id", json!({ "type": "integer" }))],
            "get": op("A call record's events in order: transfers (blind, attended, failed, callback), takeovers and pickups (replaces, pickup, directed_pickup), ring-group and forwarding steps (hunt, skipped, no_answer, answered, forward_always, forward_busy, forward_no_answer, forward_unreachable, group_no_answer, dnd) and park events; empty when it had none",
                json!({ "responses": { "200": ok_json("all", list_of("CdrEvent")) } }), &["400"])
        }),
    );
    add(
        "/calls/{id}/transfer",
        json!({
            "parameters": [path_param("id", json!({ "type": "integer", "minimum": 0 }))],
            "post": op("Blind-transfer a call in progress: `moves` (caller or callee) names the party that goes to `to`, and the other party, which must be an extension, hands it on; without `moves` the call's answering extension (or its caller when the callee is no extension) hands its peer to `to`. The target is routed with the handing extension's class of service; that extension is released once `to` answers. `to` may be an extension, a ring group's number (the group rings with its strategy; nobody answering: its no-answer destination), the park code, an IVR, room or outside number, a voicemail code (`*97` the transferring extension's box behind its PIN, `*98` the main menu, `vm_direct` + extension straight into that mailbox). A call through a voice application or transcoding is transferred by its answering extension, the caller staying on its media endpoint. 403: class of service, or the party left behind is no extension; 404: no such call, number or ring group; 409: not answered or already transferring; 422: destination kind not supported for this call, or (a call through a voice application) the extension has no phone registered",
                json!({ "requestBody": body(json!({ "type": "object", "required": ["to"], "additionalProperties": false, "properties": { "to": { "type": "string", "pattern": "^[0-9*#+]{1,64}$" }, "moves": { "type": "string", "enum": ["caller", "callee"] } } })),
                    "responses": { "202": { "description": "the target is ringing" } } }),
                &["400", "403", "404", "409", "415", "422", "503"])
        }),
    );
}

pub(super) fn schemas(s: &mut Value) {
    s["CdrEvent"] = json!({ "type": "object", "properties": {
        "seq": { "type": "integer" },
        "at": { "type": "string", "format": "date-time" },
        "kind": { "type": "string", "enum": ["blind", "attended", "failed", "callback", "replaces", "pickup", "directed_pickup", "hunt", "skipped", "no_answer", "answered", "forward_always", "forward_busy", "forward_no_answer", "forward_unreachable", "group_no_answer", "dnd", "parked", "retrieved", "park-retrieved", "park-timeout", "park-callback", "park-fallback", "park-hangup", "park-lost", "recording_start", "recording_stop"] },
        "by": { "type": "string" }, "party": { "type": "string" }, "target": { "type": "string" },
        "status": { "type": "integer" }
    } });
}
