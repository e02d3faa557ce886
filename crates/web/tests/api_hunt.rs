//! The ring group (`/groups`) and forwarding (`/extensions/{n}/forwarding`) API against a real
//! store: CRUD, read-only keys refused, refusals naming the field, references kept.

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
async fn ring_groups_and_forwarding_through_the_api() {
    let a = app().await;
    for n in ["1001", "1002"] {
        let r = call(&a, "POST", "/extensions", Some(json!({ "number": n }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let group = json!({ "name": "sales", "number": "600", "strategy": "round_robin",
        "members": ["1001", { "number": "1002", "ring_s": 20 }], "no_answer": "vm:1001",
        "cid_prefix": "Sales" });
    let r = a
        .api("POST", "/groups", Some(&a.read), Some(group.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (
            json!({ "name": "g", "members": ["1001"], "strategy": "random" }),
            "strategy",
        ),
        (json!({ "name": "g", "members": [] }), "members"),
        (json!({ "name": "g", "members": ["10a1"] }), "members"),
        (
            json!({ "name": "g", "members": ["1001"], "no_answer": "ext:4040" }),
            "no_answer",
        ),
        (
            json!({ "name": "g", "members": ["1001"], "timeout_s": 0 }),
            "timeout_s",
        ),
        (
            json!({ "name": "g", "members": ["1001"], "colour": "red" }),
            "colour",
        ),
        (
            json!({ "name": "g", "number": "1002", "members": ["1001"] }),
            "number",
        ),
        (json!({ "members": ["1001"] }), "name"),
    ] {
        refused(&call(&a, "POST", "/groups", Some(body)).await, field);
    }
    let r = call(&a, "POST", "/groups", Some(group)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["members"][1]["ring_s"], 20);
    assert_eq!(r.json()["strategy"], "round_robin");
    let r = call(
        &a,
        "PUT",
        "/groups/sales",
        Some(json!({ "strategy": "simultaneous", "members": ["1002"] })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.json()["no_answer"], "vm:1001", "unchanged members kept");
    let r = call(&a, "GET", "/groups", None).await;
    assert_eq!(r.json()["total"], 1);
    // Forwarding.
    let r = call(&a, "GET", "/extensions/1001/forwarding", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["dnd"], false);
    refused(
        &call(
            &a,
            "PUT",
            "/extensions/1001/forwarding",
            Some(json!({ "busy": "vm:4040" })),
        )
        .await,
        "busy",
    );
    refused(
        &call(
            &a,
            "PUT",
            "/extensions/1001/forwarding",
            Some(json!({ "dnd_mode": "silent" })),
        )
        .await,
        "dnd_mode",
    );
    let r = call(
        &a,
        "PUT",
        "/extensions/1001/forwarding",
        Some(json!({ "busy": "vm:1001", "always": "group:sales", "dnd": true, "follow_me": ["0312345678"] })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&a, "GET", "/extensions/1001/forwarding", None).await;
    assert_eq!(r.json()["always"], "group:sales");
    assert_eq!(r.json()["follow_me"][0], "0312345678");
    assert_eq!(
        call(&a, "GET", "/extensions/4040/forwarding", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // References: the group is named by 1001's forward; 1002 is a member.
    refused(&call(&a, "DELETE", "/groups/sales", None).await, "name");
    let r = call(&a, "DELETE", "/extensions/1002", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("ring group sales"), "{}", r.text());
    let r = call(
        &a,
        "PUT",
        "/extensions/1001/forwarding",
        Some(json!({ "always": "" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&a, "DELETE", "/groups/sales", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    // Documented.
    let doc = a.get("/openapi.json").await;
    assert!(doc["paths"]["/groups/{name}"]["put"].is_object());
    assert!(doc["paths"]["/extensions/{number}/forwarding"]["put"].is_object());
}
