//! The page group page through its HTML forms: a refusal shown at the field with the input
//! kept, a group added, its members changed, removed, in English and Japanese.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};

#[tokio::test]
async fn page_groups_through_the_panel() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    for n in ["1001", "1002", "1003"] {
        a.store
            .create_extension(
                t,
                store::NewExtension {
                    number: n.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/pages").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("No page groups yet."));
    let token = csrf(&page.text());
    let form = |members: &'static str, max: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("name", "all".to_string()),
            ("number", "650".to_string()),
            ("members", members.to_string()),
            ("answer_s", "5".to_string()),
            ("max_s", max.to_string()),
            ("auto_answer", "common".to_string()),
        ]
    };
    let bad = form("1001\n4040", "60");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/pages", &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text();
    assert!(html.contains("data-field=\"members\""), "{html}");
    assert!(html.contains("4040"), "input kept");
    let good = form("1001\n1002", "30");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/pages", &good).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.text().contains("data-page=\"all\""));
    let stored = a.store.page_group(t, "all").await.unwrap().expect("stored");
    assert_eq!(stored.group.members, vec!["1001", "1002"]);
    assert_eq!(stored.group.max_s, 30);
    // Change the members from its edit page.
    let edit = b.get("/pages/all/edit").await.text();
    assert!(edit.contains("1001\n1002"), "{edit}");
    let change = form("1003", "30");
    let change: Vec<(&str, &str)> = change.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/pages/all/edit", &change).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stored = a.store.page_group(t, "all").await.unwrap().expect("stored");
    assert_eq!(stored.group.members, vec!["1003"]);
    // Japanese.
    b.lang = Some("ja");
    let ja = b.get("/pages").await.text();
    assert!(ja.contains("一斉放送グループ"), "{ja}");
    // Removed.
    let r = b
        .post("/pages/all/delete", &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(a.store.page_group(t, "all").await.unwrap().is_none());
}
