//! `GET /api/v1/subscriptions` and the Subscriptions page: the core's subscriptions with times
//! made absolute; a tenant's key sees its tenant only, read scope suffices; documented in
//! OpenAPI; the page lists them in EN and JA, viewers included.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::signed_in;
use web::engine::subs_list::SubscriptionInfo;

fn sub(tenant: i64, subscriber: &str, event: &str, resource: &str) -> SubscriptionInfo {
    SubscriptionInfo {
        tenant_id: tenant,
        subscriber: subscriber.into(),
        contact: format!("sip:{subscriber}@192.0.2.23:5062"),
        source: "192.0.2.23:5062 UDP".into(),
        event: event.into(),
        resource: resource.into(),
        expires_in_s: 600,
        last_notify_s_ago: Some(3),
        last_state: "confirmed".into(),
    }
}

#[tokio::test]
async fn subscriptions_are_listed_per_tenant() {
    let a = app().await;
    let t1 = a.store.default_tenant().await.unwrap().id;
    let t2 = a
        .store
        .create_tenant("other", "other.example.com")
        .await
        .unwrap()
        .id;
    *a.control.subs.lock().unwrap() = vec![
        sub(t1, "1003", "dialog", "1002"),
        sub(t2, "2001", "presence", "2002"),
    ];
    // A node-wide read key sees both.
    let r = a
        .api("GET", "/subscriptions", Some(a.read.as_str()), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["total"], 2, "{v}");
    let first = &v["items"][0];
    assert_eq!(first["subscriber"], "1003");
    assert_eq!(first["event"], "dialog");
    assert_eq!(first["resource"], "1002");
    assert_eq!(first["last_state"], "confirmed");
    assert_eq!(first["source"], "192.0.2.23:5062 UDP");
    let exp = chrono::DateTime::parse_from_rfc3339(first["expires_at"].as_str().unwrap()).unwrap();
    let left = exp.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!((590..=600).contains(&left.num_seconds()), "{first}");
    assert!(first["last_notify_at"].is_string(), "{first}");
    // A key of tenant 2 sees its own only.
    let (_, k2) = a
        .store
        .create_api_key(Some(t2), "t2", store::ApiScope::Read)
        .await
        .unwrap();
    let v = a
        .api("GET", "/subscriptions", Some(k2.as_str()), None)
        .await
        .json();
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["subscriber"], "2001");
    // No key: 401. Documented.
    let r = a.api("GET", "/subscriptions", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let doc = a.get("/openapi.json").await;
    assert!(doc["paths"]["/subscriptions"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Subscription"]["properties"]["last_state"].is_object());

    // The page: the panel's tenant only, for a viewer too; Japanese.
    let mut b = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let page = b.get("/subscriptions").await.text();
    assert!(page.contains(r#"data-subscriber="1003""#), "{page}");
    assert!(!page.contains("2001"), "another tenant's: {page}");
    assert!(page.contains("State notified"), "{page}");
    assert!(
        page.contains(r#"href="/subscriptions""#),
        "in the navigation"
    );
    b.get("/lang?set=ja&back=%2Fsubscriptions").await;
    let page = b.get("/subscriptions").await.text();
    assert!(page.contains("監視対象"), "{page}");
    a.control.subs.lock().unwrap().clear();
    let page = b.get("/subscriptions").await.text();
    assert!(page.contains("サブスクリプションはありません"), "{page}");
}
