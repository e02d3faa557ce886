//! Transfer of a call in progress through the API (`POST /api/v1/calls/{id}/transfer`) and the
//! live calls page's Transfer form: refusals keep their reason and map to HTTP statuses, read
//! keys and viewers cannot transfer, the form shows on connected calls only, in EN and JA.

mod common;

use axum::http::StatusCode;
use common::browser::{csrf, signed_in};
use common::{FORBIDDEN_NUMBER, app};
use serde_json::json;
use web::control::CallState;

#[tokio::test]
async fn transfer_through_the_api() {
    let a = app().await;
    let k = Some(a.full.as_str());
    a.control.add_call(7, "1001", "1002", CallState::Up);
    a.control.add_call(8, "1003", "1001", CallState::Ringing);
    let r = a
        .api("POST", "/calls/7/transfer", k, Some(json!({"to": "1003"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(
        *a.control.transfers.lock().unwrap(),
        [(7, "1003".to_string())]
    );
    let r = a
        .api(
            "POST",
            "/calls/7/transfer",
            k,
            Some(json!({"to": FORBIDDEN_NUMBER})),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(r.text().contains("class of service"), "{}", r.text());
    let r = a
        .api("POST", "/calls/8/transfer", k, Some(json!({"to": "1003"})))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );
    let r = a
        .api("POST", "/calls/99/transfer", k, Some(json!({"to": "1003"})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for bad in [
        json!({}),
        json!({"to": ""}),
        json!({"to": 1003}),
        json!({"to": "1003", "x": 1}),
    ] {
        let r = a
            .api("POST", "/calls/7/transfer", k, Some(bad.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text()
        );
    }
    let r = a
        .api(
            "POST",
            "/calls/7/transfer",
            Some(a.read.as_str()),
            Some(json!({"to": "1003"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a read key cannot transfer"
    );
    assert_eq!(a.control.transfers.lock().unwrap().len(), 1);
    // Documented.
    let doc = a.get("/openapi.json").await;
    assert!(doc["paths"]["/calls/{id}/transfer"]["post"].is_object());
}

#[tokio::test]
async fn transfer_from_the_live_calls_page() {
    let a = app().await;
    a.control.add_call(7, "1001", "1002", CallState::Up);
    a.control.add_call(8, "1003", "1001", CallState::Ringing);
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/calls").await.text();
    assert!(page.contains(r#"action="/calls/7/transfer""#), "{page}");
    assert!(
        !page.contains(r#"action="/calls/8/transfer""#),
        "a ringing call has no transfer form"
    );
    let token = csrf(&page);
    let r = b
        .post(
            "/calls/7/transfer",
            &[("csrf", token.as_str()), ("to", "1003")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        *a.control.transfers.lock().unwrap(),
        [(7, "1003".to_string())]
    );
    let r = b
        .post(
            "/calls/7/transfer",
            &[("csrf", token.as_str()), ("to", FORBIDDEN_NUMBER)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .contains("Transfer refused: international calls not allowed")
    );
    // Without the CSRF token nothing happens.
    let r = b.post("/calls/7/transfer", &[("to", "1003")]).await;
    assert_ne!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(a.control.transfers.lock().unwrap().len(), 1);
    // Japanese.
    b.get("/lang?set=ja&back=%2Fcalls").await;
    let page = b.get("/calls").await.text();
    assert!(page.contains("転送"), "{page}");
    // A viewer sees no transfer form and cannot post one.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let page = v.get("/calls").await.text();
    assert!(!page.contains("/transfer"), "{page}");
    let r = v
        .post(
            "/calls/7/transfer",
            &[("csrf", csrf(&page).as_str()), ("to", "1003")],
        )
        .await;
    assert_ne!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(a.control.transfers.lock().unwrap().len(), 1);
}
