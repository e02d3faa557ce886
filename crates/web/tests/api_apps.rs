//! The IVR menu API (`/ivrs`) against a real store: CRUD, read-only keys refused, refusals
//! naming the field, options replaced as a whole, a menu in use kept.

mod common;

use axum::http::StatusCode;
use common::{App, Resp, app};
use serde_json::{Value, json};

fn refused(r: &Resp, field: &str) {
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}: {}",
        r.text()
    );
    assert_eq!(r.json()["error"]["field"], field, "{}", r.text());
}

async fn call(a: &App, m: &str, path: &str, body: Option<Value>) -> Resp {
    a.api(m, path, Some(&a.full), body).await
}

#[tokio::test]
async fn ivr_menus_crud_and_refusals() {
    let a = app().await;
    let r = call(&a, "POST", "/extensions", Some(json!({ "number": "1001" }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let menu = json!({ "name": "main", "number": "500", "greeting": "main-greeting",
                       "options": { "1": "ext:1001" }, "dial_by_extension": true });
    // Read-only keys cannot create.
    let r = a
        .api("POST", "/ivrs", Some(&a.read), Some(menu.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Refusals name the field and create nothing.
    for (body, field) in [
        (
            json!({ "name": "m", "greeting": "g", "options": { "1": "ext:4040" } }),
            "options",
        ),
        (
            json!({ "name": "m", "greeting": "g", "options": { "x": "ext:1001" } }),
            "options",
        ),
        (
            json!({ "name": "m", "greeting": "g", "options": { "1": "ext:1001" }, "timeout_s": 0 }),
            "timeout_s",
        ),
        (
            json!({ "name": "m", "greeting": "g", "options": { "1": "ext:1001" }, "retries": "two" }),
            "retries",
        ),
        (
            json!({ "name": "m", "number": "1001", "greeting": "g", "options": { "1": "ext:1001" } }),
            "number",
        ),
        (
            json!({ "greeting": "g", "options": { "1": "ext:1001" } }),
            "name",
        ),
        (
            json!({ "name": "m", "greeting": "g", "options": { "1": "ext:1001" }, "colour": "red" }),
            "colour",
        ),
    ] {
        refused(&call(&a, "POST", "/ivrs", Some(body)).await, field);
    }
    assert_eq!(a.get("/ivrs").await["total"], 0);
    let r = call(&a, "POST", "/ivrs", Some(menu)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["timeout_s"], 5, "defaults fill the rest");
    let r = call(
        &a,
        "POST",
        "/ivrs",
        Some(json!({ "name": "sales", "greeting": "s", "options": { "1": "ivr:main" } })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // `options` replaces the whole table.
    let r = call(
        &a,
        "PUT",
        "/ivrs/main",
        Some(json!({ "options": { "2": "ivr:sales", "0": "hangup" } })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let m = a.get("/ivrs/main").await;
    assert_eq!(m["options"], json!({ "0": "hangup", "2": "ivr:sales" }));
    assert_eq!(m["number"], "500", "kept");
    // A DID can send callers to it; then it cannot be removed.
    let r = call(
        &a,
        "POST",
        "/dids",
        Some(json!({ "pattern": "0312345678", "destination": "ivr:main" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    refused(&call(&a, "DELETE", "/ivrs/main", None).await, "name");
    refused(&call(&a, "DELETE", "/ivrs/sales", None).await, "name");
    let r = call(&a, "DELETE", "/dids/0312345678", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // main and sales refer to each other: one is edited first.
    refused(&call(&a, "DELETE", "/ivrs/main", None).await, "name");
    let r = call(
        &a,
        "PUT",
        "/ivrs/sales",
        Some(json!({ "options": { "1": "hangup" } })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&a, "DELETE", "/ivrs/main", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(
        call(&a, "GET", "/ivrs/main", None).await.status,
        StatusCode::NOT_FOUND
    );
    // Documented.
    let doc = a.get("/openapi.json").await;
    assert!(
        doc["paths"]["/ivrs/{name}"]["put"].is_object(),
        "{}",
        doc["paths"]
    );
}

#[tokio::test]
async fn conference_rooms_crud_and_the_pin_stays_secret() {
    let a = app().await;
    for (body, field) in [
        (json!({ "number": "800", "pin": "12" }), "pin"),
        (
            json!({ "number": "800", "max_participants": 1 }),
            "max_participants",
        ),
        (json!({ "pin": "1234" }), "number"),
        (json!({ "number": "800", "colour": "red" }), "colour"),
    ] {
        refused(&call(&a, "POST", "/conferences", Some(body)).await, field);
    }
    let r = call(
        &a,
        "POST",
        "/conferences",
        Some(json!({ "number": "800", "name": "Weekly", "pin": "2468" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = a.get("/conferences").await;
    assert_eq!(body["items"][0]["has_pin"], true);
    assert_eq!(body["items"][0]["participants"], json!([]));
    assert!(
        !body.to_string().contains("2468"),
        "the PIN is never returned: {body}"
    );
    let r = call(
        &a,
        "PUT",
        "/conferences/800",
        Some(json!({ "join_muted": true })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(a.get("/conferences/800").await["join_muted"], true);
    // The number is taken: no extension, no menu on it.
    refused(
        &call(&a, "POST", "/extensions", Some(json!({ "number": "800" }))).await,
        "number",
    );
    // Nobody is in the room: muting is a 404.
    let r = call(
        &a,
        "PUT",
        "/conferences/800/participants/7/mute",
        Some(json!({ "muted": true })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    refused(
        &call(
            &a,
            "PUT",
            "/conferences/800/participants/7/mute",
            Some(json!({})),
        )
        .await,
        "muted",
    );
    let r = call(&a, "DELETE", "/conferences/800", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn conference_participants_listed_muted_and_dropped() {
    let a = app().await;
    let r = call(&a, "POST", "/conferences", Some(json!({ "number": "800" }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = call(&a, "POST", "/conferences", Some(json!({ "number": "801" }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = a
        .api("GET", "/conferences/800/participants", Some(&a.read), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["total"], 0);
    a.control.join_conf(1, "800", 7, "1001");
    a.control.join_conf(1, "800", 9, "1002");
    a.control.join_conf(1, "801", 11, "1003");
    // Another tenant's room of the same number is not this one.
    a.control.join_conf(2, "800", 13, "2001");
    let r = a
        .api("GET", "/conferences/800/participants", Some(&a.read), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let items = r.json()["items"].clone();
    let calls: Vec<u64> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["call"].as_u64().unwrap())
        .collect();
    assert_eq!(calls, [7, 9], "{items}");
    assert_eq!(items[0]["caller"], "1001");
    assert_eq!(items[0]["muted"], false);
    let r = call(
        &a,
        "PUT",
        "/conferences/800/participants/9/mute",
        Some(json!({ "muted": true })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = call(&a, "GET", "/conferences/800/participants", None).await;
    assert_eq!(r.json()["items"][1]["muted"], true, "{}", r.text());
    // A call of another room (or tenant) is refused by this room's URL.
    for other in [11, 13] {
        let r = call(
            &a,
            "DELETE",
            &format!("/conferences/800/participants/{other}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}: {}", r.text());
        let r = call(
            &a,
            "PUT",
            &format!("/conferences/800/participants/{other}/mute"),
            Some(json!({ "muted": true })),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}: {}", r.text());
    }
    assert!(a.control.hangups.lock().unwrap().is_empty());
    // A read-only key may look, not drop.
    let r = a
        .api(
            "DELETE",
            "/conferences/800/participants/7",
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = call(&a, "DELETE", "/conferences/800/participants/7", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(*a.control.hangups.lock().unwrap(), [7]);
    let r = call(&a, "GET", "/conferences/800/participants", None).await;
    assert_eq!(r.json()["total"], 1, "{}", r.text());
    let r = call(&a, "GET", "/conferences/802/participants", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
}

#[tokio::test]
async fn backup_server_settings_through_the_api() {
    let a = app().await;
    // The free licence is standalone: pairing and codes are refused, naming the topology.
    let r = call(
        &a,
        "POST",
        "/backup/remote/pair",
        Some(json!({ "address": "192.0.2.9:8443", "code": "abcd" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "topology");
    let r = call(&a, "POST", "/backup/server/codes", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Settings that need no peer work and are checked.
    refused(
        &call(
            &a,
            "PUT",
            "/backup/remote/schedule",
            Some(json!({ "daily_at": "25:00" })),
        )
        .await,
        "daily_at",
    );
    let r = call(
        &a,
        "PUT",
        "/backup/remote/schedule",
        Some(json!({ "daily_at": "02:30" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    refused(
        &call(&a, "PUT", "/backup/server/keep", Some(json!({ "keep": 0 }))).await,
        "keep",
    );
    let r = call(&a, "PUT", "/backup/server/keep", Some(json!({ "keep": 5 }))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let st = a.get("/backup/remote").await;
    assert_eq!(st["paired"], false);
    assert_eq!(st["state"]["daily_at"], "02:30");
    assert!(st["topology_refusal"].is_string());
    assert!(
        !st.to_string().contains("token"),
        "the token is never shown: {st}"
    );
    assert_eq!(a.get("/backup/server").await["state"]["keep"], 5);
    // Read-only keys cannot change anything.
    let r = a
        .api(
            "PUT",
            "/backup/server/keep",
            Some(&a.read),
            Some(json!({ "keep": 3 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
