//! IVR options to every destination kind through the API (issue 14 §4): a menu naming a ring
//! group that does not exist is refused with the option and the group named; once the group
//! exists the same menu is saved, with its class of service for outside numbers; a bad class
//! is refused as `cos`.

mod common;

use axum::http::StatusCode;
use common::app;
use serde_json::json;

#[tokio::test]
async fn a_menu_naming_a_missing_group_is_refused_then_saved_once_it_exists() {
    let a = app().await;
    for n in ["1001", "1002"] {
        let r = a
            .api(
                "POST",
                "/extensions",
                Some(&a.full),
                Some(json!({ "number": n })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let menu = json!({ "name": "main", "number": "500", "greeting": "main-greeting",
        "options": { "1": "group:sales", "3": "voicemail", "7": "park", "0": "ext:1001" } });
    let r = a
        .api("POST", "/ivrs", Some(&a.full), Some(menu.clone()))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["field"], "options", "{}", r.text());
    let msg = e["message"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("options.1") && msg.contains("ring group sales does not exist"),
        "{msg}"
    );
    let r = a
        .api(
            "POST",
            "/groups",
            Some(&a.full),
            Some(json!({ "name": "sales", "members": ["1002"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut bad = menu.clone();
    bad["cos"] = json!("everything");
    let r = a.api("POST", "/ivrs", Some(&a.full), Some(bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["error"]["field"], "cos", "{}", r.text());
    let mut good = menu;
    good["cos"] = json!("national");
    let r = a.api("POST", "/ivrs", Some(&a.full), Some(good)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["options"]["1"], "group:sales");
    assert_eq!(r.json()["cos"], "national");
    // The group a menu uses is kept.
    let r = a.api("DELETE", "/groups/sales", Some(&a.full), None).await;
    assert_ne!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(r.text().contains("IVR menu main"), "{}", r.text());
}
