//! A tenant's own `blf.show_caller` (`/api/v1/tenant-settings/{key}` and the Settings page):
//! it overrides the node's for that tenant, is checked like the node setting, goes back to
//! inheriting on DELETE / "inherit"; other keys are not tenant settings (404).

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};
use serde_json::json;

#[tokio::test]
async fn blf_show_caller_per_tenant() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let t = a.store.default_tenant().await.unwrap().id;
    let v = a.get("/tenant-settings/blf.show_caller").await;
    assert_eq!(
        (&v["value"], &v["inherited"], &v["tenant_value"]),
        (&json!("show"), &json!(true), &json!(null)),
        "{v}"
    );
    let r = a
        .api(
            "PUT",
            "/tenant-settings/blf.show_caller",
            k,
            Some(json!({"value": "hide"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["value"], "hide");
    assert_eq!(r.json()["node_value"], "show");
    let stored: Option<String> = a.store.setting(Some(t), "blf.show_caller").await.unwrap();
    assert_eq!(stored.as_deref(), Some("hide"));
    let node: Option<String> = a.store.setting(None, "blf.show_caller").await.unwrap();
    assert_eq!(node, None, "the node's is untouched");
    // The engine's loader sees it.
    assert_eq!(
        a.store
            .tenant_setting_values("blf.show_caller")
            .await
            .unwrap(),
        [(t, json!("hide"))]
    );
    let r = a
        .api(
            "PUT",
            "/tenant-settings/blf.show_caller",
            k,
            Some(json!({"value": "maybe"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = a
        .api(
            "PUT",
            "/tenant-settings/calls.no_answer_timeout_s",
            k,
            Some(json!({"value": 30})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .api(
            "PUT",
            "/tenant-settings/blf.show_caller",
            Some(a.read.as_str()),
            Some(json!({"value": "show"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a
        .api("DELETE", "/tenant-settings/blf.show_caller", k, None)
        .await;
    assert_eq!(r.json()["inherited"], true);
    let doc = a.get("/openapi.json").await;
    assert!(doc["paths"]["/tenant-settings/{key}"]["put"].is_object());

    // The Settings page: set it, see it in force, back to inherit; Japanese.
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/settings").await.text();
    assert!(page.contains(r#"id="tenant-blf.show_caller""#), "{page}");
    let token = csrf(&page);
    let r = b
        .post(
            "/settings/tenant",
            &[("csrf", token.as_str()), ("blf.show_caller", "hide")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = b.get("/settings").await.text();
    assert!(page.contains("in force: hide"), "{page}");
    let r = b
        .post(
            "/settings/tenant",
            &[("csrf", token.as_str()), ("blf.show_caller", "loud")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    b.post(
        "/settings/tenant",
        &[("csrf", token.as_str()), ("blf.show_caller", "")],
    )
    .await;
    let stored: Option<String> = a.store.setting(Some(t), "blf.show_caller").await.unwrap();
    assert_eq!(stored, None, "inherit again");
    b.get("/lang?set=ja&back=%2Fsettings").await;
    assert!(
        b.get("/settings")
            .await
            .text()
            .contains("このテナントの設定")
    );
}
