//! The feature-code, time-condition, holiday-calendar and pickup-group part of the OpenAPI
//! document.

use serde_json::{Value, json};

use super::{body, list_of, ok_json, op, path_param, r};

fn tc_props() -> Value {
    json!({
        "number": { "type": "string", "pattern": "^[0-9]{0,20}$", "description": "internal number that reaches it (empty: none)" },
        "index": { "type": "integer", "minimum": 0, "maximum": 99, "description": "number after the day/night feature code (*28 + index); 0: none" },
        "weekly": { "type": "array", "maxItems": 500, "items": { "type": "string" }, "description": "open hours, e.g. `mon-fri 09:00-18:00`; an end before the start runs past midnight" },
        "dates": { "type": "array", "maxItems": 500, "items": { "type": "string" }, "description": "date rules, first match wins: `2026-12-29..2027-01-03 closed`, `2026-05-02 open`" },
        "use_holidays": { "type": "boolean", "description": "the tenant's holidays are closed" },
        "matched": { "type": "string", "description": "destination when open (day)" },
        "unmatched": { "type": "string", "description": "destination when closed (night)" }
    })
}

/// Adds the schemas.
pub(super) fn schemas(s: &mut Value) {
    s["FeatureCode"] = json!({ "type": "object", "required": ["feature", "code", "default", "takes_arg", "in_call", "about"], "properties": {
        "feature": { "type": "string", "description": "stable key, e.g. dnd_toggle" },
        "code": { "type": "string", "nullable": true, "description": "code in force; null: switched off" },
        "default": { "type": "string" },
        "takes_arg": { "type": "boolean", "description": "digits dialled after the code are its argument (**1001)" },
        "in_call": { "type": "boolean", "description": "used as DTMF during a call, not dialled" },
        "about": { "type": "string" } } });
    let mut tc = tc_props();
    for (k, v) in [
        ("id", json!({ "type": "integer" })),
        ("tenant_id", json!({ "type": "integer" })),
        ("name", json!({ "type": "string" })),
        (
            "mode",
            json!({ "type": "string", "enum": ["auto", "day", "night"], "description": "manual override" }),
        ),
        (
            "state",
            json!({ "type": "string", "enum": ["day", "night"], "description": "now" }),
        ),
        ("why", json!({ "type": "string" })),
        (
            "created_at",
            json!({ "type": "string", "format": "date-time" }),
        ),
        (
            "updated_at",
            json!({ "type": "string", "format": "date-time" }),
        ),
    ] {
        tc[k] = v;
    }
    s["TimeCondition"] = json!({ "type": "object", "required": ["name", "mode", "matched", "unmatched"], "properties": tc });
    let mut new = tc_props();
    new["name"] = json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,40}$" });
    s["NewTimeCondition"] = json!({ "type": "object", "required": ["name", "matched", "unmatched"], "additionalProperties": false, "properties": new });
    s["TimeConditionPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": tc_props() });
    let holiday = json!({ "type": "object", "required": ["date", "yearly", "name"], "properties": {
        "date": { "type": "string", "format": "date" }, "yearly": { "type": "boolean" }, "name": { "type": "string", "maxLength": 100 } } });
    let cal = json!({
        "timezone": { "type": "string", "description": "IANA time zone of the time conditions, e.g. Asia/Tokyo" },
        "japan": { "type": "boolean", "description": "Japanese national holidays computed by rule (equinoxes, substitute holidays)" },
        "added": { "type": "array", "maxItems": 500, "items": holiday },
        "removed": { "type": "array", "maxItems": 500, "items": { "type": "string", "format": "date" }, "description": "days that are no holiday after all" }
    });
    s["HolidayCalendar"] = json!({ "type": "object", "required": ["timezone", "japan", "added", "removed"], "properties": cal });
    s["HolidayCalendarPatch"] =
        json!({ "type": "object", "additionalProperties": false, "properties": cal });
    s["PickupGroup"] = json!({ "type": "object", "required": ["name", "members"], "properties": {
        "name": { "type": "string" }, "members": { "type": "array", "items": { "type": "string" } } } });
    s["ExtensionPickupGroups"] = json!({ "type": "object", "required": ["extension", "groups"], "properties": {
        "extension": { "type": "string" }, "groups": { "type": "array", "items": { "type": "string" } } } });
}

/// Adds the paths.
pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let done = json!({ "description": "done" });
    let name = path_param("name", json!({ "type": "string" }));
    add(
        "/feature-codes",
        json!({ "get": op("The feature code table (defaults with this tenant's changes)", json!({ "responses": { "200": ok_json("all", list_of("FeatureCode")) } }), &[]) }),
    );
    add(
        "/feature-codes/{feature}",
        json!({
            "parameters": [path_param("feature", json!({ "type": "string" }))],
            "put": op("Set a feature's code (null: off); refused (422, field code) when it equals or shadows another code or a number", json!({ "requestBody": body(json!({ "type": "object", "required": ["code"], "properties": { "code": { "type": "string", "nullable": true } } })), "responses": { "200": ok_json("changed", r("FeatureCode")) } }), &["400", "404", "415", "422"]),
            "delete": op("Back to the default code", json!({ "responses": { "204": done } }), &["404", "422"])
        }),
    );
    add(
        "/timeconds",
        json!({
            "get": op("Time conditions with their state now", json!({ "responses": { "200": ok_json("all", list_of("TimeCondition")) } }), &[]),
            "post": op("Create a time condition", json!({ "requestBody": body(r("NewTimeCondition")), "responses": { "201": ok_json("created", r("TimeCondition")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/timeconds/{name}",
        json!({
            "parameters": [name],
            "get": op("A time condition", json!({ "responses": { "200": ok_json("found", r("TimeCondition")) } }), &["404"]),
            "put": op("Change a time condition (members given replace the stored ones)", json!({ "requestBody": body(r("TimeConditionPatch")), "responses": { "200": ok_json("changed", r("TimeCondition")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete a time condition; refused (422) while a DID, menu or other condition uses it", json!({ "responses": { "204": done } }), &["404", "422"])
        }),
    );
    add(
        "/timeconds/{name}/mode",
        json!({
            "parameters": [name],
            "put": op("Set the manual override: auto (schedule), day or night", json!({ "requestBody": body(json!({ "type": "object", "required": ["mode"], "properties": { "mode": { "type": "string", "enum": ["auto", "day", "night"] } } })), "responses": { "200": ok_json("changed", r("TimeCondition")) } }), &["400", "404", "415", "422"])
        }),
    );
    add(
        "/holiday-calendar",
        json!({
            "get": op("The tenant's time zone and holiday calendar", json!({ "responses": { "200": ok_json("found", r("HolidayCalendar")) } }), &[]),
            "put": op("Change the time zone or the calendar (members given replace the stored ones)", json!({ "requestBody": body(r("HolidayCalendarPatch")), "responses": { "200": ok_json("changed", r("HolidayCalendar")) } }), &["400", "415", "422"])
        }),
    );
    add(
        "/holiday-calendar/import",
        json!({
            "post": op("Add the all-day events of an iCalendar file (RRULE FREQ=YEARLY supported) as holidays", json!({ "requestBody": body(json!({ "type": "object", "required": ["ics"], "properties": { "ics": { "type": "string" } } })), "responses": { "200": ok_json("imported", json!({ "type": "object", "required": ["imported", "calendar"], "properties": { "imported": { "type": "integer" }, "calendar": r("HolidayCalendar") } })) } }), &["400", "415", "422"])
        }),
    );
    add(
        "/pickup-groups",
        json!({ "get": op("Pickup groups and their member extensions", json!({ "responses": { "200": ok_json("all", list_of("PickupGroup")) } }), &[]) }),
    );
    add(
        "/extensions/{number}/pickup-groups",
        json!({
            "parameters": [path_param("number", json!({ "type": "string" }))],
            "get": op("An extension's pickup groups", json!({ "responses": { "200": ok_json("found", r("ExtensionPickupGroups")) } }), &[]),
            "put": op("Set an extension's pickup groups (at most 16)", json!({ "requestBody": body(json!({ "type": "object", "required": ["groups"], "properties": { "groups": { "type": "array", "maxItems": 16, "items": { "type": "string" } } } })), "responses": { "200": ok_json("changed", r("ExtensionPickupGroups")) } }), &["400", "404", "415", "422"])
        }),
    );
}
