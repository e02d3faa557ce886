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
