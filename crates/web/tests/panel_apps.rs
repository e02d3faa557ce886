//! The IVR panel pages through their HTML forms: a menu tree with nested menus, refusals shown
//! at the field with the input kept, a menu in use kept, in English and Japanese.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};

#[tokio::test]
async fn ivr_menus_through_the_panel() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    a.store
        .create_extension(
            t,
            store::NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/ivrs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("No IVR menus yet."));
    let token = csrf(&b.get("/ivrs/new").await.text());
    // A bad option: shown at the options field, the input kept.
    let r = b
        .post(
            "/ivrs",
            &[
                ("csrf", token.as_str()),
                ("name", "main"),
                ("number", "500"),
                ("greeting", "main-greeting"),
                ("options", "1=ext:1001\n2=ext:4040"),
                ("timeout_s", "5"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text();
    assert!(html.contains("data-field=\"options\""), "{html}");
    assert!(html.contains("2=ext:4040"), "input kept");
    let r = b
        .post(
            "/ivrs",
            &[
                ("csrf", token.as_str()),
                ("name", "sales"),
                ("greeting", "sales-greeting"),
                ("options", "1=ext:1001"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = b
        .post(
            "/ivrs",
            &[
                ("csrf", token.as_str()),
                ("name", "main"),
                ("number", "500"),
                ("greeting", "main-greeting"),
                ("options", "1=ext:1001\n2=ivr:sales"),
                ("dial_by_extension", "on"),
                ("timeout_s", "7"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // The tree: main at the root, sales nested under option 2 (not repeated as a root).
    let html = b.get("/ivrs").await.text();
    let main_at = html.find("data-ivr=\"main\"").expect("main drawn");
    let sales_at = html.find("data-ivr=\"sales\"").expect("sales drawn");
    assert!(main_at < sales_at, "sales under main");
    assert_eq!(html.matches("data-ivr=\"sales\"").count(), 1);
    assert!(html.contains("Dial by extension number"));
    assert!(html.contains("(7 s × 3)"), "{html}");
    // A menu in use is kept, with the reason.
    let token = csrf(&b.get("/ivrs/sales/edit").await.text());
    let r = b
        .post("/ivrs/sales/delete", &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("used by IVR menu main"), "{}", r.text());
    // Editing keeps the name.
    let r = b
        .post(
            "/ivrs/main/edit",
            &[
                ("csrf", token.as_str()),
                ("name", "renamed"),
                ("number", "500"),
                ("greeting", "main-greeting"),
                ("options", "1=ext:1001"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(a.store.ivr(t, "main").await.unwrap().is_some());
    assert!(a.store.ivr(t, "renamed").await.unwrap().is_none());
    b.lang = Some("ja");
    let html = b.get("/ivrs").await.text();
    assert!(
        html.contains("内線番号の直接ダイヤル") || html.contains("未選択・誤選択"),
        "{html}"
    );
    assert!(b.get("/ivrs/new").await.text().contains("案内ガイダンス"));
}

#[tokio::test]
async fn conference_rooms_through_the_panel() {
    let a = app().await;
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/conferences").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("No conference rooms yet."));
    let token = csrf(&page.text());
    let r = b
        .post(
            "/conferences",
            &[("csrf", token.as_str()), ("number", "800"), ("pin", "12")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"pin\""), "{}", r.text());
    let r = b
        .post(
            "/conferences",
            &[
                ("csrf", token.as_str()),
                ("number", "800"),
                ("name", "Weekly"),
                ("pin", "2468"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let html = r.text();
    assert!(html.contains("data-room=\"800\""));
    assert!(!html.contains("2468"), "the PIN is not shown");
    b.lang = Some("ja");
    assert!(b.get("/conferences").await.text().contains("電話会議室"));
    let r = b
        .post("/conferences/800/delete", &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(a.store.list_confs(1).await.unwrap().is_empty());
}
