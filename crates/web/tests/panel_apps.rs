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
    // Who is in the room: on the page, in the fragment the script reloads, mute and drop.
    a.control.join_conf(1, "800", 7, "1001");
    a.control.join_conf(1, "800", 9, "1002");
    a.control.join_conf(2, "800", 13, "2001");
    let html = b.get("/conferences").await.text();
    assert!(
        html.contains("data-live=\"/fragments/conferences/800\""),
        "{html}"
    );
    let frag = b.get("/fragments/conferences/800").await;
    assert_eq!(frag.status, StatusCode::OK);
    let f = frag.text();
    assert!(
        f.contains("data-call=\"7\"") && f.contains("data-call=\"9\""),
        "{f}"
    );
    assert!(!f.contains("2001"), "another tenant's room: {f}");
    assert!(f.contains("/conferences/800/kick/9"), "{f}");
    let r = b
        .post(
            "/conferences/800/mute/9",
            &[("csrf", token.as_str()), ("muted", "true")],
        )
        .await;
    assert!(r.text().contains("Muted."), "{}", r.text());
    let f = b.get("/fragments/conferences/800").await.text();
    assert!(f.contains("data-muted=\"true\""), "{f}");
    let r = b
        .post("/conferences/800/kick/13", &[("csrf", token.as_str())])
        .await;
    assert!(
        r.text().contains("That participant has left."),
        "not this room's call"
    );
    let r = b
        .post("/conferences/800/kick/7", &[("csrf", token.as_str())])
        .await;
    assert!(r.text().contains("Participant dropped"), "{}", r.text());
    assert_eq!(*a.control.hangups.lock().unwrap(), [7]);
    let f = b.get("/fragments/conferences/800").await.text();
    assert!(!f.contains("data-call=\"7\""), "{f}");
    // Without the CSRF token nothing is dropped.
    let r = b.post("/conferences/800/kick/9", &[]).await;
    assert_ne!(r.status, StatusCode::OK);
    assert_eq!(a.control.hangups.lock().unwrap().len(), 1);
    b.lang = Some("ja");
    let f = b.get("/fragments/conferences/800").await.text();
    assert!(f.contains("退出させる"), "{f}");
    assert!(b.get("/conferences").await.text().contains("電話会議室"));
    let r = b
        .post("/conferences/800/delete", &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(a.store.list_confs(1).await.unwrap().is_empty());
}
