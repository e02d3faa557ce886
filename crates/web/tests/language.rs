//! Prompt language through the API and the panel: the extensions' `language` field, the
//! tenant default (`/api/v1/tenant-settings`, the Settings page), and precise refusals that
//! change nothing.

mod common;

use axum::http::StatusCode;
use common::browser::{csrf, signed_in};
use common::{App, app};
use serde_json::json;

async fn ext_lang(a: &App, n: &str) -> String {
    let t = a.store.default_tenant().await.unwrap().id;
    a.store.extension(t, n).await.unwrap().unwrap().language
}

#[tokio::test]
async fn api_extension_language_and_tenant_default() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let r = a
        .api(
            "POST",
            "/extensions",
            k,
            Some(json!({ "number": "1001", "language": "ja" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["extension"]["language"], "ja");
    let r = a
        .api("POST", "/extensions", k, Some(json!({ "number": "1002" })))
        .await;
    assert_eq!(r.json()["extension"]["language"], "", "inherits by default");

    // A language this build does not have: 422 naming the field; nothing created.
    let r = a
        .api(
            "POST",
            "/extensions",
            k,
            Some(json!({ "number": "1003", "language": "fr" })),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    );
    assert_eq!(r.json()["error"]["field"], "language");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"fr\""),
        "{}",
        r.text()
    );
    assert_eq!(
        a.api("GET", "/extensions/1003", k, None).await.status,
        StatusCode::NOT_FOUND
    );

    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            k,
            Some(json!({ "language": "en" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["language"], "en");
    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            k,
            Some(json!({ "language": "JA" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["field"], "language");
    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            k,
            Some(json!({ "language": 7 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "not a string");
    assert_eq!(ext_lang(&a, "1001").await, "en", "refusals change nothing");
    // Other changes keep it; an empty value inherits again.
    a.api(
        "PATCH",
        "/extensions/1001",
        k,
        Some(json!({ "display_name": "Aiko" })),
    )
    .await;
    assert_eq!(ext_lang(&a, "1001").await, "en");
    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            k,
            Some(json!({ "language": "" })),
        )
        .await;
    assert_eq!(r.json()["language"], "");
    assert_eq!(a.get("/extensions/1001").await["extension"]["language"], "");

    // The tenant default.
    assert_eq!(
        a.get("/tenant-settings").await,
        json!({ "language": "", "effective_language": "en" })
    );
    a.store
        .set_setting(None, "prompts.language", &"ja")
        .await
        .unwrap();
    assert_eq!(
        a.get("/tenant-settings").await["effective_language"],
        "ja",
        "the node's"
    );
    let r = a
        .api(
            "PUT",
            "/tenant-settings",
            k,
            Some(json!({ "language": "en" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({ "language": "en", "effective_language": "en" })
    );
    assert_eq!(a.store.default_tenant().await.unwrap().language, "en");
    for bad in [
        json!({ "language": "de" }),
        json!({}),
        json!({ "language": "en", "x": 1 }),
    ] {
        let r = a.api("PUT", "/tenant-settings", k, Some(bad.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text()
        );
    }
    let r = a
        .api(
            "PUT",
            "/tenant-settings",
            k,
            Some(json!({ "language": "de" })),
        )
        .await;
    assert_eq!(r.json()["error"]["field"], "language");
    let r = a
        .api(
            "PUT",
            "/tenant-settings",
            Some(&a.read),
            Some(json!({ "language": "ja" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "read keys only read");
    assert_eq!(a.store.default_tenant().await.unwrap().language, "en");

    // Documented.
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    assert!(doc["paths"]["/tenant-settings"]["put"].is_object());
    for s in ["Extension", "NewExtension", "ExtensionPatch"] {
        assert_eq!(
            doc["components"]["schemas"][s]["properties"]["language"]["enum"],
            json!(["", "en", "ja"]),
            "{s}"
        );
    }
}

#[tokio::test]
async fn panel_sets_extension_and_tenant_language() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    a.store
        .create_extension(
            t,
            store::NewExtension {
                number: "1001".into(),
                display_name: "Aiko".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/extensions/1001").await.text();
    assert!(page.contains("id=\"ext-language\""), "{page}");
    let form = |token: &str, lang: &'static str| {
        vec![
            ("csrf".to_string(), token.to_string()),
            ("display_name".into(), "Aiko".into()),
            ("max_contacts".into(), "3".into()),
            ("enabled".into(), "on".into()),
            ("language".into(), lang.to_string()),
        ]
    };
    let f = form(&csrf(&page), "ja");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = b.post("/extensions/1001", &f).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(ext_lang(&a, "1001").await, "ja");
    assert!(
        r.text().contains("<option value=\"ja\" selected>"),
        "the saved choice shows"
    );

    let f = form(&csrf(&r.text()), "xx");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = b.post("/extensions/1001", &f).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"err-language\""), "{}", r.text());
    assert_eq!(ext_lang(&a, "1001").await, "ja");

    // The Settings page's company default.
    let page = b.get("/settings").await.text();
    assert!(page.contains("id=\"tenant-language\""), "{page}");
    let token = csrf(&page);
    let r = b
        .post(
            "/settings/language",
            &[("csrf", &token), ("language", "ja")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(a.store.default_tenant().await.unwrap().language, "ja");
    let r = b
        .post(
            "/settings/language",
            &[("csrf", &token), ("language", "fr")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"err-tenant-language\""));
    assert_eq!(a.store.default_tenant().await.unwrap().language, "ja");
    // Without the form token nothing changes.
    let r = b.post("/settings/language", &[("language", "en")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(a.store.default_tenant().await.unwrap().language, "ja");
}
