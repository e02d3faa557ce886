//! OpenAPI paths of call transfer (`api/transfer.rs`).

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param};

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/cdrs/{id}/events",
        json!({
            "parameters": [path_param("id", json!({ "type": "integer" }))],
            "get": op("A call record's events in order: transfers (blind, attended, failed, callback) and takeovers (replaces, pickup); empty when it had none",
                json!({ "responses": { "200": ok_json("all", list_of("CdrEvent")) } }), &["400"])
        }),
    );
    add(
        "/calls/{id}/transfer",
        json!({
            "parameters": [path_param("id", json!({ "type": "integer", "minimum": 0 }))],
            "post": op("Blind-transfer a call in progress: `moves` (caller or callee) names the party that goes to `to`, and the other party, which must be an extension, hands it on; without `moves` the call's answering extension (or its caller when the callee is no extension) hands its peer to `to`. The target is routed with the handing extension's class of service; that extension is released once `to` answers. 403: class of service, or the party left behind is no extension; 404: no such call or number; 409: not answered or already transferring",
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
        "kind": { "type": "string", "enum": ["blind", "attended", "failed", "callback", "replaces", "pickup", "parked", "retrieved", "park-retrieved", "park-timeout", "park-callback", "park-fallback", "park-hangup", "park-lost"] },
        "by": { "type": "string" }, "party": { "type": "string" }, "target": { "type": "string" },
        "status": { "type": "integer" }
    } });
}
