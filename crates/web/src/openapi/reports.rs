//! The reports part of the OpenAPI document (`/reports/...`).

use serde_json::{Value, json};

use super::{ok_json, op, query};

fn words(all: &[&str]) -> Value {
    json!({ "type": "string", "enum": all })
}

fn params(with_period: bool) -> Vec<Value> {
    let dims: Vec<&str> = store::report::Dimension::ALL
        .iter()
        .map(|d| d.as_str())
        .collect();
    let mut p = vec![
        query(
            "from",
            json!({ "type": "string", "format": "date" }),
            "first local day in the report time zone (default: 30 days before `to`)",
        ),
        query(
            "to",
            json!({ "type": "string", "format": "date" }),
            "last local day, included (default: today)",
        ),
        query(
            "dimension",
            words(&dims),
            "what rows are keyed by (default all): ext_out = calls an extension made, ext_in = received, trunk_out/trunk_in by trunk, did, direction; group is filled once ring groups exist",
        ),
        query(
            "key",
            json!({ "type": "string" }),
            "only this extension, trunk, DID …",
        ),
    ];
    if with_period {
        p.push(query(
            "period",
            words(&["hour", "day", "month"]),
            "bucket size (default day); hourly rows of a keyed dimension without key cover at most 31 days",
        ));
        p.push(query(
            "totals",
            json!({ "type": "boolean" }),
            "one row per key over the whole range instead of one per bucket",
        ));
    }
    p
}

fn counts() -> Value {
    let int = json!({ "type": "integer" });
    let num = json!({ "type": "number" });
    json!({
        "offered": int, "answered": int, "missed": int, "abandoned": int, "busy": int, "failed": int,
        "talk_s": int, "asr": num, "acd_s": num, "avg_wait_s": num, "max_wait_s": num
    })
}

fn row() -> Value {
    let mut p = counts();
    p["bucket"] = json!({ "type": "string", "description": "2026-03-01 14:00, 2026-03-01 or 2026-03 in the report time zone" });
    p["bucket_start"] = json!({ "type": "string", "format": "date-time" });
    p["key"] = json!({ "type": "string" });
    json!({ "type": "object", "properties": p })
}

fn aggregation() -> Value {
    json!({ "type": "object", "properties": {
        "timezone": { "type": "string" }, "last_cdr_id": { "type": "integer" },
        "updated_at": { "type": "string", "format": "date-time", "nullable": true } } })
}

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/reports/calls",
        json!({ "get": op("Call report: offered, answered, missed, abandoned, busy, failed, talk and wait per bucket (or per key with totals=true), as of the last aggregation", json!({
            "parameters": params(true),
            "responses": { "200": ok_json("rows", json!({ "type": "object", "properties": {
                "period": { "type": "string" }, "dimension": { "type": "string" },
                "from": { "type": "string", "format": "date" }, "to": { "type": "string", "format": "date" },
                "totals": { "type": "boolean" }, "aggregation": aggregation(),
                "rows": { "type": "array", "items": row() } } })) } }), &["400", "422"]) }),
    );
    add(
        "/reports/calls.csv",
        json!({ "get": op("The call report as CSV", json!({ "parameters": params(true),
            "responses": { "200": { "description": "CSV", "content": { "text/csv": { "schema": { "type": "string" } } } } } }), &["400", "422"]) }),
    );
    add(
        "/reports/hours",
        json!({ "get": op("Busiest hours: calls by local hour of day over the range (a keyed dimension without key: at most 31 days)", json!({ "parameters": params(false),
            "responses": { "200": ok_json("24 hours", json!({ "type": "object", "properties": {
                "aggregation": aggregation(),
                "hours": { "type": "array", "items": { "type": "object", "properties": counts() } } } })) } }), &["400", "422"]) }),
    );
    add(
        "/reports/today",
        json!({ "get": op("Today against the same weekday last week, per local hour", json!({
            "responses": { "200": ok_json("comparison", json!({ "type": "object", "properties": {
                "today": { "type": "string", "format": "date" }, "last_week": { "type": "string", "format": "date" },
                "timezone": { "type": "string" }, "aggregation": aggregation(),
                "today_total": { "type": "object", "properties": counts() },
                "last_week_total": { "type": "object", "properties": counts() },
                "hours": { "type": "array", "items": { "type": "object", "properties": {
                    "hour": { "type": "integer" },
                    "today": { "type": "object", "properties": counts() },
                    "last_week": { "type": "object", "properties": counts() } } } } } })) } }), &[]) }),
    );
}
