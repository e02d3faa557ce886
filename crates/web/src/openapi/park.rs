//! OpenAPI paths of call park (`api/park.rs`).

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, r};

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/park",
        json!({
            "get": op("The tenant's park lot (the defaults when never set): slots 701-720, 120 s, class `default`, fallback `hangup`. The park code is the feature code `park`",
                json!({ "responses": { "200": ok_json("the lot", r("ParkLot")) } }), &[]),
            "put": op("Change the park lot (fields not given keep their value). 422: a range that is empty, longer than 100 slots or covers a number something else owns (named), a timeout outside 10-3600 s, a fallback that is no destination",
                json!({ "requestBody": body(r("ParkLot")),
                    "responses": { "200": ok_json("the lot as stored", r("ParkLot")) } }),
                &["400", "415", "422"])
        }),
    );
    add(
        "/park/calls",
        json!({
            "get": op("The calls parked now, by slot (empty when call control does not run on this node)",
                json!({ "responses": { "200": ok_json("all", list_of("ParkedCall")) } }), &[])
        }),
    );
}

pub(super) fn schemas(s: &mut Value) {
    s["ParkLot"] = json!({ "type": "object", "additionalProperties": false, "properties": {
        "first_slot": { "type": "integer", "minimum": 1 },
        "last_slot": { "type": "integer", "minimum": 1 },
        "timeout_s": { "type": "integer", "minimum": 10, "maximum": 3600 },
        "moh_class": { "type": "string" },
        "fallback": { "type": "string", "description": "`hangup` (a prompt, then hang up) or a destination: `ext:1000`, `vm:1000`, `ivr:main`..." }
    } });
    s["ParkedCall"] = json!({ "type": "object", "properties": {
        "slot": { "type": "integer" },
        "caller": { "type": "string" },
        "caller_name": { "type": "string" },
        "parked_by": { "type": "string" },
        "since": { "type": "integer", "description": "seconds since the Unix epoch" },
        "state": { "type": "string", "enum": ["parked", "ringing-back", "retrieved"] }
    } });
}
