//! The feature-code and time-condition panel pages through their HTML forms: a code changed
//! and a conflict refused with the reason, pickup groups set, a time condition added with its
//! state shown, the day/night override toggled, holidays listed, in English and Japanese.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};

#[tokio::test]
async fn feature_codes_and_time_conditions_through_the_panel() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    for n in ["1001", "1002"] {
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
    let page = b.get("/features").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("data-feature=\"group_pickup\""));
    let token = csrf(&page.text());
    // A conflict: refused with the reason.
    let r = b
        .post(
            "/features/dnd_toggle",
            &[("csrf", token.as_str()), ("code", "*8"), ("action", "save")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text().contains("already used by group_pickup"),
        "{}",
        r.text()
    );
    let r = b
        .post(
            "/features/dnd_toggle",
            &[
                ("csrf", token.as_str()),
                ("code", "*55"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("value=\"*55\""));
    let r = b
        .post(
            "/pickup",
            &[
                ("csrf", token.as_str()),
                ("extension", "1001"),
                ("groups", "sales, floor"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("id=\"pickup-groups\""));

    // Time conditions.
    let r = b.get("/timeconds").await;
    assert!(r.text().contains("No time conditions yet."));
    let r = b
        .post(
            "/holiday-calendar",
            &[
                ("csrf", token.as_str()),
                ("timezone", "Asia/Tokyo"),
                ("japan", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("元日"), "Japanese holidays listed");
    let r = b
        .post(
            "/timeconds",
            &[
                ("csrf", token.as_str()),
                ("name", "office"),
                ("number", "600"),
                ("index", "1"),
                ("weekly", "mon-fri 09:00-18:00\nsat 10:00-12:00"),
                ("use_holidays", "on"),
                ("matched", "ext:1001"),
                ("unmatched", "ext:4040"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text().contains("data-field=\"unmatched\""),
        "{}",
        r.text()
    );
    let r = b
        .post(
            "/timeconds",
            &[
                ("csrf", token.as_str()),
                ("name", "office"),
                ("number", "600"),
                ("index", "1"),
                ("weekly", "mon-fri 09:00-18:00\nsat 10:00-12:00"),
                ("use_holidays", "on"),
                ("matched", "ext:1001"),
                ("unmatched", "vm:1002"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("data-timecond=\"office\""));
    let r = b
        .post(
            "/timeconds/office/mode",
            &[("csrf", token.as_str()), ("mode", "night")],
        )
        .await;
    let html = r.text();
    assert!(html.contains("data-state=\"night\""), "{html}");
    assert!(html.contains("forced night"));
    assert_eq!(
        a.store.timecond(t, "office").await.unwrap().unwrap().mode,
        engine::timecond::Mode::Night
    );
    // The extension page shows and sets the extension's pickup groups.
    let html = b.get("/extensions/1002").await.text();
    assert!(html.contains("id=\"ext-pickup-form\""), "{html}");
    let r = b
        .post(
            "/pickup",
            &[
                ("csrf", token.as_str()),
                ("extension", "1002"),
                ("from", "extension"),
                ("groups", "sales"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("value=\"sales\""), "{}", r.text());
    b.lang = Some("ja");
    let html = b.get("/timeconds").await.text();
    assert!(
        html.contains("時間条件(昼/夜)") && html.contains("夜"),
        "{html}"
    );
    let html = b.get("/features").await.text();
    assert!(html.contains("ピックアップグループ"));
}
