//! The page group API (`/pages`) against a real store: CRUD, read-only keys refused,
//! refusals naming the field, the number in the tenant's number space.

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
async fn page_groups_through_the_api() {
    let a = app().await;
    for n in ["1001", "1002"] {
        let r = call(&a, "POST", "/extensions", Some(json!({ "number": n }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let page = json!({ "name": "all", "number": "650", "members": ["1001", "1002"],
        "max_s": 30, "auto_answer": "call_info" });
    let r = a
        .api("POST", "/pages", Some(&a.read), Some(page.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (json!({ "name": "p", "members": [] }), "members"),
        (json!({ "name": "p", "members": ["1009"] }), "members"),
        (
            json!({ "name": "p", "members": ["1001"], "max_s": 0 }),
            "max_s",
        ),
        (
            json!({ "name": "p", "members": ["1001"], "answer_s": 61 }),
            "answer_s",
        ),
        (
            json!({ "name": "p", "members": ["1001", "1001"] }),
            "members",
        ),
        (
            json!({ "name": "p", "members": ["1001"], "auto_answer": "yealink" }),
            "auto_answer",
        ),
        (
            json!({ "name": "p", "members": ["1001"], "colour": "red" }),
            "colour",
        ),
        (
            json!({ "name": "p", "number": "1002", "members": ["1001"] }),
            "number",
        ),
        (json!({ "members": ["1001"] }), "name"),
    ] {
        refused(&call(&a, "POST", "/pages", Some(body)).await, field);
    }
    let r = call(&a, "POST", "/pages", Some(page)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            &j["name"],
            &j["number"],
            &j["max_s"],
            &j["answer_s"],
            &j["auto_answer"]
        ),
        (
            &json!("all"),
            &json!("650"),
            &json!(30),
            &json!(5),
            &json!("call_info")
        )
    );
    let r = call(
        &a,
        "PUT",
        "/pages/all",
        Some(json!({ "members": ["1002"], "barge": true })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["members"], json!(["1002"]));
    assert_eq!(r.json()["max_s"], 30, "settings not given are kept");
    assert_eq!(r.json()["number"], "650");
    refused(
        &call(&a, "PUT", "/pages/all", Some(json!({ "name": "other" }))).await,
        "name",
    );
    let r = call(&a, "GET", "/pages", None).await;
    assert_eq!(r.json()["total"], 1, "{}", r.text());
    // Its number is taken for everything else of the tenant.
    let r = call(&a, "POST", "/extensions", Some(json!({ "number": "650" }))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = call(&a, "DELETE", "/pages/all", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&a, "GET", "/pages/all", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
