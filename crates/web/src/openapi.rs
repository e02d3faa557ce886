//! The OpenAPI 3.0 document of `/api/v1`, written by hand next to the routes it describes;
//! `tests/api.rs` checks that every documented operation exists and every route is documented.

use engine::policy;
use serde_json::{Value, json};

mod apps;
mod backup_remote;
mod codes;
mod custom_prompts;
mod hunt;
mod language;
mod outside;
mod page;
mod park;
mod prompts;
mod recordings;
mod reports;
mod subs;
mod tenant_settings;
mod transfer;
mod voicemail;

fn err_ref() -> Value {
    json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok_json(desc: &str, schema: Value) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": schema } } })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn list_of(name: &str) -> Value {
    json!({ "type": "object", "required": ["items", "total", "limit", "offset"], "properties": {
        "items": { "type": "array", "items": r(name) },
        "total": { "type": "integer" }, "limit": { "type": "integer" }, "offset": { "type": "integer" } } })
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn query(name: &str, schema: Value, desc: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": desc })
}

/// Adds the common error responses to an operation.
fn op(summary: &str, mut o: Value, errors: &[&str]) -> Value {
    o["summary"] = Value::from(summary);
    let responses = o["responses"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut all = serde_json::Map::new();
    all.extend(responses);
    for code in ["401", "403"].iter().chain(errors) {
        all.insert((*code).to_string(), err_ref());
    }
    o["responses"] = Value::Object(all);
    o
}

fn paging() -> [Value; 2] {
    [
        query(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
            "page size",
        ),
        query(
            "offset",
            json!({ "type": "integer", "minimum": 0, "maximum": crate::api::MAX_OFFSET, "default": 0 }),
            "rows skipped",
        ),
    ]
}

fn time_or_date() -> Value {
    // Empty means "no filter", as the panel's forms send it.
    json!({ "anyOf": [{ "type": "string", "format": "date" }, { "type": "string", "format": "date-time" }, { "type": "string", "maxLength": 0 }] })
}

/// Display names: at most `policy::DISPLAY_NAME_MAX` characters, no control characters.
fn display_name(nullable: bool) -> Value {
    json!({ "type": "string", "maxLength": policy::DISPLAY_NAME_MAX, "pattern": "^[^\\x00-\\x1F\\x7F-\\x9F]*$", "nullable": nullable })
}

/// SIP passwords as the API accepts them (strength rules are checked too and answered with 422).
fn sip_password() -> Value {
    json!({ "type": "string", "minLength": policy::SIP_PASSWORD_LEN.start(), "maxLength": policy::SIP_PASSWORD_LEN.end(), "pattern": "^[\\x21-\\x7E]+$", "nullable": true,
            "description": format!("printable ASCII without spaces, mixing at least {} of lower case, upper case, digits, symbols, not containing the number; omit or null to have one generated (returned once)", policy::SIP_PASSWORD_CLASSES) })
}

/// Contact limits of an extension.
fn max_contacts() -> Value {
    json!({ "type": "integer", "minimum": policy::MAX_CONTACTS.start(), "maximum": policy::MAX_CONTACTS.end(), "nullable": true })
}

/// Administrator passwords.
fn admin_password() -> Value {
    json!({ "type": "string", "minLength": policy::ADMIN_PASSWORD_MIN })
}

fn cdr_params() -> Vec<Value> {
    let [l, o] = paging();
    vec![
        query(
            "from",
            time_or_date(),
            "RFC 3339 time or YYYY-MM-DD (inclusive)",
        ),
        query(
            "to",
            time_or_date(),
            "RFC 3339 time (exclusive) or YYYY-MM-DD (whole day included)",
        ),
        query("number", json!({ "type": "string" }), "caller or callee"),
        query(
            "disposition",
            json!({ "type": "string", "enum": ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CANCELED"] }),
            "call result",
        ),
        l,
        o,
    ]
    .into_iter()
    .chain(outside::cdr_params())
    .collect()
}

fn schemas() -> Value {
    let mut s = schemas_wave1();
    outside::schemas(&mut s);
    apps::schemas(&mut s);
    hunt::schemas(&mut s);
    page::schemas(&mut s);
    codes::schemas(&mut s);
    transfer::schemas(&mut s);
    park::schemas(&mut s);
    voicemail::schemas(&mut s);
    language::schemas(&mut s);
    subs::schemas(&mut s);
    s
}

fn schemas_wave1() -> Value {
    let ts = json!({ "type": "string", "format": "date-time" });
    let ts_null = json!({ "type": "string", "format": "date-time", "nullable": true });
    let leg = json!({ "type": "object", "properties": { "pkts_rx": { "type": "integer" }, "pkts_tx": { "type": "integer" }, "lost": { "type": "integer" }, "jitter_ms": { "type": "number" } } });
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "string", "enum": ["unauthorized", "forbidden", "not_found", "invalid", "conflict", "bad_request", "backup_rejected", "unavailable", "internal", "topology", "backup_failed"] },
            "message": { "type": "string" } } } } },
        "Extension": { "type": "object", "required": ["id", "number", "display_name", "enabled", "max_contacts"], "properties": {
            "id": { "type": "integer" }, "tenant_id": { "type": "integer" }, "number": { "type": "string", "pattern": "^[0-9*#+]{1,32}$" },
            "display_name": { "type": "string" }, "has_password": { "type": "boolean" }, "enabled": { "type": "boolean" },
            "max_contacts": { "type": "integer" }, "created_at": ts, "updated_at": ts } },
        "NewExtension": { "type": "object", "required": ["number"], "additionalProperties": false, "properties": {
            "number": { "type": "string", "pattern": "^[0-9*#+]{1,32}$" }, "display_name": display_name(false),
            "password": sip_password(),
            "enabled": { "type": "boolean", "nullable": true }, "max_contacts": max_contacts() } },
        "ExtensionPatch": { "type": "object", "additionalProperties": false, "properties": {
            "display_name": display_name(true), "enabled": { "type": "boolean", "nullable": true }, "max_contacts": max_contacts() } },
        "Registration": { "type": "object", "properties": {
            "id": { "type": "integer" }, "tenant_id": { "type": "integer" }, "extension_id": { "type": "integer" }, "aor": { "type": "string" },
            "contact_uri": { "type": "string" }, "expires_at": ts, "q": { "type": "number" }, "call_id": { "type": "string" }, "cseq": { "type": "integer" },
            "user_agent": { "type": "string" }, "received_addr": { "type": "string" }, "transport": { "type": "string", "enum": ["udp", "tcp", "tls", "ws", "wss"] },
            "local_addr": { "type": "string" }, "instance_id": { "type": "string", "nullable": true }, "reg_id": { "type": "integer", "nullable": true },
            "node": { "type": "string" }, "flags": { "type": "integer" }, "last_seen": ts, "updated_at": ts } },
        "Call": { "type": "object", "properties": {
            "id": { "type": "integer" }, "call_id": { "type": "string" }, "caller": { "type": "string" }, "callee": { "type": "string" },
            "state": { "type": "string" }, "duration_s": { "type": "integer" }, "codec": { "type": "string" }, "tenant_id": { "type": "integer" }, "parties": { "type": "array", "items": { "type": "string" }, "description": "the extensions bridged in the call now (after transfers); empty until answered" } } },
        "Cdr": { "type": "object", "properties": {
            "id": { "type": "integer" }, "tenant_id": { "type": "integer" }, "call_id": { "type": "string" }, "caller": { "type": "string" },
            "callee": { "type": "string" }, "caller_name": { "type": "string" }, "start_time": ts, "answer_time": ts_null, "end_time": ts,
            "duration_s": { "type": "integer" }, "billsec": { "type": "integer" },
            "disposition": { "type": "string", "enum": ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CANCELED"] },
            "hangup_by": { "type": "string", "enum": ["caller", "callee", "system"] }, "hangup_cause": { "type": "string" }, "codec": { "type": "string" },
            "a": leg, "b": leg } },
        "Setting": { "type": "object", "properties": {
            "key": { "type": "string" }, "value": {}, "is_default": { "type": "boolean" }, "default": {}, "kind": {},
            "restart_required": { "type": "boolean" }, "description": { "type": "string" } } },
        "Admin": { "type": "object", "properties": {
            "id": { "type": "integer" }, "username": { "type": "string" }, "role": { "type": "string", "enum": ["admin", "viewer"] },
            "failed_logins": { "type": "integer" }, "locked_until": ts_null, "created_at": ts } },
        "NewAdmin": { "type": "object", "required": ["username", "password", "role"], "additionalProperties": false, "properties": {
            "username": { "type": "string", "pattern": format!("^[A-Za-z0-9._@-]{{1,{}}}$", policy::ADMIN_USERNAME_MAX) }, "password": admin_password(),
            "role": { "type": "string", "enum": ["admin", "viewer"] } } },
        "ApiKey": { "type": "object", "properties": {
            "id": { "type": "integer" }, "tenant_id": { "type": "integer", "nullable": true }, "name": { "type": "string" }, "prefix": { "type": "string" },
            "scope": { "type": "string", "enum": ["read", "full"] }, "created_at": ts, "last_used_at": ts_null } },
        "Manifest": { "type": "object", "properties": {
            "format": { "type": "string" }, "format_version": { "type": "integer" }, "denwa_version": { "type": "string" },
            "schema_version": { "type": "integer" }, "created_at": ts, "source_backend": { "type": "string" }, "entries": { "type": "array", "items": {} } } }
    })
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    let [limit, offset] = paging();
    let number = path_param("number", json!({ "type": "string" }));
    let no_content = json!({ "description": "done" });
    let mut paths = serde_json::Map::new();
    let mut add = |p: &str, v: Value| {
        paths.insert(p.to_string(), v);
    };
    add(
        "/status",
        json!({ "get": op("Node status, today's call counts", json!({ "responses": { "200": ok_json("status", json!({ "type": "object" })) } }), &[]) }),
    );
    add(
        "/extensions",
        json!({
            "get": op("List extensions", json!({ "parameters": [query("search", json!({ "type": "string" }), "number or name contains"), limit, offset],
                "responses": { "200": ok_json("a page", list_of("Extension")) } }), &["400", "422"]),
            "post": op("Create an extension", json!({ "requestBody": body(r("NewExtension")),
                "responses": { "201": ok_json("created; `password` is present (once) when it was generated", json!({ "type": "object", "required": ["extension"], "properties": { "extension": r("Extension"), "password": { "type": "string" } } })) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/extensions/{number}",
        json!({
            "parameters": [number.clone()],
            "get": op("An extension and its registrations", json!({ "responses": { "200": ok_json("found", json!({ "type": "object", "properties": { "extension": r("Extension"), "registrations": { "type": "array", "items": r("Registration") } } })) } }), &["404"]),
            "patch": op("Change an extension", json!({ "requestBody": body(r("ExtensionPatch")), "responses": { "200": ok_json("changed", r("Extension")) } }), &["400", "404", "415", "422"]),
            "delete": op("Delete an extension; refused (422, field number) while a ring group or another extension's forward names it", json!({ "responses": { "204": no_content } }), &["404", "422"])
        }),
    );
    add(
        "/extensions/{number}/password",
        json!({
            "parameters": [number],
            "post": op("Set or regenerate the SIP password (empty body or {} generates one, returned once)", json!({
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "password": sip_password() } } } } },
                "responses": { "200": ok_json("set", json!({ "type": "object", "properties": { "password": { "type": "string" } } })) } }), &["400", "404", "422"])
        }),
    );
    let [l2, o2] = paging();
    add(
        "/registrations",
        json!({ "get": op("Registered contacts (location)", json!({ "parameters": [l2, o2], "responses": { "200": ok_json("a page", list_of("Registration")) } }), &["400", "422"]) }),
    );
    add(
        "/calls",
        json!({ "get": op("Calls in progress", json!({ "responses": { "200": ok_json("all calls", list_of("Call")) } }), &[]) }),
    );
    add(
        "/calls/{id}",
        json!({ "parameters": [path_param("id", json!({ "type": "integer", "minimum": 0 }))],
        "delete": op("Hang up a call", json!({ "responses": { "204": no_content } }), &["400", "404"]) }),
    );
    add(
        "/cdrs",
        json!({ "get": op("Call records, newest first", json!({ "parameters": cdr_params(), "responses": { "200": ok_json("a page", list_of("Cdr")) } }), &["400", "422"]) }),
    );
    let mut csv_params = cdr_params();
    csv_params.truncate(4);
    csv_params.extend(outside::cdr_params());
    add(
        "/cdrs.csv",
        json!({ "get": op("Call records matching the filter as CSV (at most 100000 rows)", json!({ "parameters": csv_params,
        "responses": { "200": { "description": "CSV", "content": { "text/csv": { "schema": { "type": "string" } } } } } }), &["400", "422"]) }),
    );
    add(
        "/settings",
        json!({ "get": op("Every known setting with its value, default and whether it needs a restart", json!({ "responses": { "200": ok_json("settings", json!({ "type": "object", "properties": { "items": { "type": "array", "items": r("Setting") }, "node": { "type": "object" } } })) } }), &[]) }),
    );
    add(
        "/settings/{key}",
        json!({
            "parameters": [path_param("key", json!({ "type": "string" }))],
            "get": op("One setting", json!({ "responses": { "200": ok_json("setting", r("Setting")) } }), &["404"]),
            "put": op("Change a setting; the value is checked against the setting's kind and range (see GET), 422 otherwise", json!({ "requestBody": body(json!({ "type": "object", "required": ["value"], "additionalProperties": false, "properties": { "value": { "oneOf": [{ "type": "integer", "minimum": 0 }, { "type": "string" }] } } })),
                "responses": { "200": ok_json("changed", r("Setting")) } }), &["400", "404", "415", "422"]),
            "delete": op("Reset a setting to its default", json!({ "responses": { "200": ok_json("reset", r("Setting")) } }), &["404"])
        }),
    );
    add(
        "/backup",
        json!({ "get": op("Download a complete backup (tar); full scope only, as it holds password and key hashes", json!({ "responses": { "200": { "description": "backup archive", "content": { "application/x-tar": { "schema": { "type": "string", "format": "binary" } } } } } }), &[]) }),
    );
    add(
        "/backup/restore",
        json!({ "post": op("Restore an uploaded backup (checked first; refused files change nothing)", json!({
        "requestBody": { "required": true, "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
        "responses": { "200": ok_json("restored", json!({ "type": "object", "properties": { "restored": { "type": "boolean" }, "manifest": r("Manifest") } })) } }), &["413", "422"]) }),
    );
    add(
        "/admins",
        json!({
            "get": op("Administrators", json!({ "responses": { "200": ok_json("all", list_of("Admin")) } }), &[]),
            "post": op("Create an administrator", json!({ "requestBody": body(r("NewAdmin")), "responses": { "201": ok_json("created", r("Admin")) } }), &["400", "409", "415", "422"])
        }),
    );
    add(
        "/admins/{username}",
        json!({ "parameters": [path_param("username", json!({ "type": "string" }))],
        "delete": op("Delete an administrator", json!({ "responses": { "204": no_content } }), &["404"]) }),
    );
    add(
        "/admins/{username}/password",
        json!({ "parameters": [path_param("username", json!({ "type": "string" }))],
        "put": op("Set an administrator's password (clears a lockout)", json!({ "requestBody": body(json!({ "type": "object", "required": ["password"], "additionalProperties": false, "properties": { "password": admin_password() } })),
            "responses": { "204": no_content } }), &["400", "404", "415", "422"]) }),
    );
    add(
        "/api-keys",
        json!({
            "get": op("API keys (tokens are never shown again)", json!({ "responses": { "200": ok_json("all", list_of("ApiKey")) } }), &[]),
            "post": op("Create an API key; the token is returned once", json!({ "requestBody": body(json!({ "type": "object", "required": ["name", "scope"], "additionalProperties": false, "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 64 }, "scope": { "type": "string", "enum": ["read", "full"] } } })),
                "responses": { "201": ok_json("created", json!({ "type": "object", "properties": { "key": r("ApiKey"), "token": { "type": "string" } } })) } }), &["400", "415", "422"])
        }),
    );
    add(
        "/api-keys/{id}",
        json!({ "parameters": [path_param("id", json!({ "type": "integer" }))],
        "delete": op("Revoke an API key", json!({ "responses": { "204": no_content } }), &["400", "404"]) }),
    );
    outside::paths(&mut add);
    apps::paths(&mut add);
    hunt::paths(&mut add);
    page::paths(&mut add);
    codes::paths(&mut add);
    backup_remote::paths(&mut add);
    reports::paths(&mut add);
    prompts::paths(&mut add);
    custom_prompts::paths(&mut add);
    recordings::paths(&mut add);
    transfer::paths(&mut add);
    park::paths(&mut add);
    voicemail::paths(&mut add);
    language::paths(&mut add);
    subs::paths(&mut add);
    tenant_settings::paths(&mut add);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": { "title": "Denwa REST API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Everything the control panel does. Send `Authorization: Bearer <API key>`; read-scope keys may only GET. Errors are `{\"error\": {\"code\", \"message\"}}`." },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        }
    });
    crate::api_license::extend_document(&mut doc);
    crate::cluster::extend_document(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document states the limits of `engine::policy`, the ones the handlers apply.
    #[test]
    fn limits_come_from_the_policy() {
        let d = document();
        let s = &d["components"]["schemas"];
        let pw = &s["NewExtension"]["properties"]["password"];
        assert_eq!(pw["minLength"], json!(8));
        assert_eq!(pw["maxLength"], json!(128));
        for schema in ["NewExtension", "ExtensionPatch"] {
            let m = &s[schema]["properties"]["max_contacts"];
            assert_eq!((&m["minimum"], &m["maximum"]), (&json!(1), &json!(100)));
        }
        assert_eq!(
            s["NewAdmin"]["properties"]["password"]["minLength"],
            json!(10)
        );
        assert_eq!(
            s["NewAdmin"]["properties"]["username"]["pattern"],
            json!("^[A-Za-z0-9._@-]{1,64}$")
        );
    }
}
