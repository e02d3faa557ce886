//! The outside-line part of the OpenAPI document: trunks, outbound and inbound routes, the
//! outbound policy, and the extension fields they add.

use engine::outside::{CallClass, DidFrom, DtmfMode, Identity, KNOWN_CODECS, TrunkTransport};
use serde_json::{Value, json};

use super::{body, ok_json, op, path_param, r};

fn words(all: &[&str]) -> Value {
    json!({ "type": "string", "enum": all })
}

fn classes() -> Value {
    words(
        &CallClass::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
    )
}

fn list(name: &str) -> Value {
    json!({ "type": "object", "required": ["items", "total"], "properties": {
        "items": { "type": "array", "items": r(name) }, "total": { "type": "integer" },
        "limit": { "type": "integer" }, "offset": { "type": "integer" } } })
}

/// The settings of a trunk (`engine::outside::TrunkSpec`), every member optional.
fn trunk_props() -> Value {
    let u32_ = |min: u32, max: u32, d: &str| json!({ "type": "integer", "minimum": min, "maximum": max, "description": d });
    json!({
        "host": { "type": "string", "description": "the provider's host name or address; `host:port` is split when `port` is not given" },
        "port": { "type": "integer", "minimum": 1, "maximum": 65535, "nullable": true, "description": "null: DNS SRV, else 5060" },
        "transport": words(&TrunkTransport::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
        "outbound_proxy": { "type": "string", "nullable": true, "description": "host[:port] every request is sent to" },
        "register": { "type": "boolean", "description": "register to the provider (needs username and password)" },
        "username": { "type": "string", "maxLength": 128 },
        "auth_username": { "type": "string", "maxLength": 128, "description": "digest user when it differs from username" },
        "from_user": { "type": "string", "maxLength": 128 },
        "from_domain": { "type": "string" },
        "did_from": words(&DidFrom::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
        "identity": words(&Identity::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
        "codecs": { "type": "array", "minItems": 1, "items": words(KNOWN_CODECS) },
        "dtmf": words(&DtmfMode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
        "max_calls": u32_(0, 10_000, "0: no limit"),
        "ping_interval_s": u32_(0, 3600, "OPTIONS every N seconds: 0 (off) or 5 to 3600"),
        "expires_s": u32_(60, 86_400, "registration interval"),
        "inbound_addrs": { "type": "array", "items": { "type": "string" }, "description": "more source addresses (IP or CIDR) of the trunk" },
        "enabled": { "type": "boolean" }
    })
}

fn route_props() -> Value {
    json!({
        "patterns": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "type": "string", "maxLength": 64 },
            "description": "FreePBX dial patterns: X N Z [1-5] . ! and PREFIX|REST (refusals name the field `pattern`)" },
        "trunks": { "type": "array", "minItems": 1, "items": { "type": "string" }, "description": "trunks tried in turn (refusals name `trunk`)" },
        "strip": { "type": "integer", "minimum": 0, "maximum": 32 },
        "prepend": { "type": "string" },
        "class": { "allOf": [classes()], "description": "class of service a caller needs; not internal (refusals name `cos`)" },
        "caller_id": { "type": "string" },
        "emergency": { "type": "boolean" },
        "enabled": { "type": "boolean" }
    })
}

fn did_props() -> Value {
    json!({
        "destination": { "type": "string", "description": "ext:1001, group:NAME, ivr:NAME, vm:1001, timecond:NAME or hangup (refusals name `to`)" },
        "trunk": { "type": "string", "description": "only calls from this trunk; empty: any" },
        "description": { "type": "string", "maxLength": 200 }
    })
}

fn outbound_props() -> Value {
    json!({
        "main_number": { "type": "string", "description": "caller ID of extensions without their own" },
        "emergency_numbers": { "type": "array", "maxItems": 20, "items": { "type": "string" } },
        "max_concurrent": { "type": "integer", "minimum": 0 },
        "max_per_hour": { "type": "integer", "minimum": 0 },
        "intl_minutes_per_day": { "type": "integer", "minimum": 0 }
    })
}

fn limits_props() -> Value {
    json!({
        "max_concurrent": { "type": "integer", "minimum": 0 },
        "max_per_hour": { "type": "integer", "minimum": 0 },
        "intl_minutes_per_day": { "type": "integer", "minimum": 0 }
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

fn object(props: Value, required: &[&str], closed: bool) -> Value {
    json!({ "type": "object", "required": required, "additionalProperties": !closed, "properties": props })
}

/// Adds the outside-line schemas, and the members they add to existing ones.
pub(super) fn schemas(s: &mut Value) {
    let ts = json!({ "type": "string", "format": "date-time" });
    let row = json!({ "id": { "type": "integer" }, "tenant_id": { "type": "integer" }, "created_at": ts, "updated_at": ts });
    let new: [(&str, Value); 14] = [
        (
            "Trunk",
            object(
                with(
                    with(row.clone(), trunk_props()),
                    json!({ "name": { "type": "string" },
            "has_password": { "type": "boolean", "description": "the password itself is never returned" } }),
                ),
                &["name", "host"],
                false,
            ),
        ),
        (
            "NewTrunk",
            object(
                with(
                    trunk_props(),
                    json!({ "name": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
            "password": { "type": "string", "writeOnly": true } }),
                ),
                &["name", "host"],
                true,
            ),
        ),
        (
            "TrunkPatch",
            object(
                with(
                    trunk_props(),
                    json!({ "password": { "type": "string", "writeOnly": true, "description": "absent: unchanged" } }),
                ),
                &[],
                true,
            ),
        ),
        (
            "TrunkStatus",
            json!({ "type": "object", "properties": {
            "id": { "type": "integer" }, "tenant": { "type": "integer" }, "name": { "type": "string" },
            "registration": words(&["registered", "registering", "failing", "unregistered", "off"]),
            "last_register_answer": { "type": "string", "nullable": true }, "failure": { "type": "string", "nullable": true },
            "registered_until": { "type": "integer", "nullable": true, "description": "UNIX seconds" },
            "next_attempt_at": { "type": "integer", "nullable": true, "description": "UNIX seconds" },
            "health": words(&["up", "down", "unknown", "off"]), "last_ping_answer": { "type": "string", "nullable": true },
            "rtt_ms": { "type": "integer", "nullable": true }, "calls": { "type": "integer" }, "usable": { "type": "boolean" } } }),
        ),
        (
            "TrunkState",
            json!({ "type": "object", "properties": {
            "name": { "type": "string" }, "enabled": { "type": "boolean" }, "register": { "type": "boolean" },
            "live": { "allOf": [r("TrunkStatus")], "nullable": true, "description": "the running core's state (null: not running on this node)" },
            "nodes": { "type": "array", "description": "the state each node last stored", "items": { "type": "object", "properties": {
                "trunk_id": { "type": "integer" }, "node": { "type": "string" }, "status": r("TrunkStatus"), "updated_at": ts } } } } }),
        ),
        (
            "Route",
            object(
                with(
                    with(row.clone(), route_props()),
                    json!({ "name": { "type": "string" },
            "position": { "type": "integer", "minimum": 1, "description": "1 is tried first" } }),
                ),
                &["name", "position"],
                false,
            ),
        ),
        (
            "NewRoute",
            object(
                with(
                    route_props(),
                    json!({ "name": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
            "position": { "type": "integer", "minimum": 1, "description": "absent: last" } }),
                ),
                &["name", "patterns", "trunks"],
                true,
            ),
        ),
        (
            "RoutePatch",
            object(
                with(
                    route_props(),
                    json!({ "position": { "type": "integer", "minimum": 1, "description": "moves the route" } }),
                ),
                &[],
                true,
            ),
        ),
        (
            "Did",
            object(
                with(
                    with(row, did_props()),
                    json!({ "pattern": { "type": "string", "description": "a number, a pattern (03XXXXXXXX) or any" } }),
                ),
                &["pattern", "destination"],
                false,
            ),
        ),
        (
            "NewDid",
            object(
                with(did_props(), json!({ "pattern": { "type": "string" } })),
                &["pattern", "destination"],
                true,
            ),
        ),
        ("DidPatch", object(did_props(), &[], true)),
        ("OutboundPolicy", object(outbound_props(), &[], true)),
        ("ExtLimits", object(limits_props(), &[], true)),
        (
            "FieldError",
            json!({ "type": "string", "description": "error.field: the refused field as the store names it (pattern, trunk, cos, to, host, …)" }),
        ),
    ];
    for (k, v) in new {
        s[k] = v;
    }
    s["Error"]["properties"]["error"]["properties"]["field"] = r("FieldError");
    let ext_props = json!({ "cos": classes(), "outbound_cid": { "type": "string" }, "anonymous": { "type": "boolean" } });
    for (k, v) in ext_props.as_object().into_iter().flatten() {
        s["Extension"]["properties"][k] = v.clone();
        s["ExtensionPatch"]["properties"][k] = v.clone();
    }
    s["Extension"]["properties"]["limits"] = r("ExtLimits");
    s["ExtensionPatch"]["properties"]["limits"] = json!({ "allOf": [r("ExtLimits")], "description": "members given replace the extension's own" });
    s["Cdr"]["properties"]["direction"] = words(&["internal", "inbound", "outbound"]);
    for k in ["trunk", "did", "dialled", "sent_number", "caller_id"] {
        s["Cdr"]["properties"][k] = json!({ "type": "string" });
    }
}

/// Query parameters the CDR listing gains.
pub(super) fn cdr_params() -> Vec<Value> {
    vec![
        super::query(
            "direction",
            words(&["internal", "inbound", "outbound"]),
            "which way the call went",
        ),
        super::query("trunk", json!({ "type": "string" }), "trunk name"),
        super::query(
            "did",
            json!({ "type": "string" }),
            "the DID of inbound calls",
        ),
    ]
}

/// Adds the outside-line paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let no_content = json!({ "description": "done" });
    let name = path_param("name", json!({ "type": "string" }));
    add(
        "/trunks",
        json!({
            "get": op("Trunks (passwords are never returned)", json!({ "responses": { "200": ok_json("all", list("Trunk")) } }), &[]),
            "post": op("Create a trunk", json!({ "requestBody": body(r("NewTrunk")), "responses": { "201": ok_json("created", r("Trunk")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/trunks/status",
        json!({ "get": op("Trunk states: the running core's (live) and what each node last stored", json!({ "responses": { "200": ok_json("states",
            json!({ "type": "object", "properties": { "items": { "type": "array", "items": r("TrunkState") }, "total": { "type": "integer" }, "core_running": { "type": "boolean" } } })) } }), &[]) }),
    );
    add(
        "/trunks/{name}",
        json!({
            "parameters": [name.clone()],
            "get": op("A trunk", json!({ "responses": { "200": ok_json("found", r("Trunk")) } }), &["404"]),
            "put": op("Change a trunk (members given replace the stored ones)", json!({ "requestBody": body(r("TrunkPatch")), "responses": { "200": ok_json("changed", r("Trunk")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete a trunk; refused (422, field trunk) while a route uses it", json!({ "responses": { "204": no_content } }), &["404", "422"])
        }),
    );
    add(
        "/routes",
        json!({
            "get": op("Outbound routes in the order they are tried", json!({ "responses": { "200": ok_json("all", list("Route")) } }), &[]),
            "post": op("Create an outbound route", json!({ "requestBody": body(r("NewRoute")), "responses": { "201": ok_json("created", r("Route")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/routes/{name}",
        json!({
            "parameters": [name],
            "get": op("An outbound route", json!({ "responses": { "200": ok_json("found", r("Route")) } }), &["404"]),
            "put": op("Change an outbound route; `position` moves it", json!({ "requestBody": body(r("RoutePatch")), "responses": { "200": ok_json("changed", r("Route")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete an outbound route (the others close the gap)", json!({ "responses": { "204": no_content } }), &["404"])
        }),
    );
    add(
        "/dids",
        json!({
            "get": op("Inbound routes: numbers, then patterns, then the catch-all", json!({ "responses": { "200": ok_json("all", list("Did")) } }), &[]),
            "post": op("Create an inbound route", json!({ "requestBody": body(r("NewDid")), "responses": { "201": ok_json("created", r("Did")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/dids/{pattern}",
        json!({
            "parameters": [path_param("pattern", json!({ "type": "string", "description": "URL-encoded ([ and ] as %5B %5D)" }))],
            "get": op("An inbound route", json!({ "responses": { "200": ok_json("found", r("Did")) } }), &["404"]),
            "put": op("Change an inbound route", json!({ "requestBody": body(r("DidPatch")), "responses": { "200": ok_json("changed", r("Did")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete an inbound route", json!({ "responses": { "204": no_content } }), &["404"])
        }),
    );
    add(
        "/outbound",
        json!({
            "get": op("The outbound policy: main number, emergency numbers, limits", json!({ "responses": { "200": ok_json("policy", r("OutboundPolicy")) } }), &[]),
            "put": op("Change the outbound policy (members given replace the stored ones)", json!({ "requestBody": body(r("OutboundPolicy")), "responses": { "200": ok_json("changed", r("OutboundPolicy")) } }), &["400", "415", "422"])
        }),
    );
}
