//! The live calls page's drag-and-drop board (`panel/xfer_board.rs`): extensions with their
//! state beside the calls, draggable parties for administrators, the party a transfer moves
//! through the API (`moves`) and the panel form, refusals explained in EN and JA.

mod common;

use axum::http::StatusCode;
use common::browser::{csrf, signed_in};
use common::{FORBIDDEN_NUMBER, app};
use serde_json::json;
use web::control::CallState;
use web::engine::xfer_party::Party;

#[tokio::test]
async fn moves_names_the_party_in_the_api() {
    let a = app().await;
    let k = Some(a.full.as_str());
    a.control.add_call(7, "1001", "1002", CallState::Up);
    let r = a
        .api(
            "POST",
            "/calls/7/transfer",
            k,
            Some(json!({"to": "1003", "moves": "callee"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(
        *a.control.moved.lock().unwrap(),
        [(7, "1003".to_string(), Party::Callee)]
    );
    for bad in [json!("both"), json!(1)] {
        let r = a
            .api(
                "POST",
                "/calls/7/transfer",
                k,
                Some(json!({"to": "1003", "moves": bad})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    }
    assert_eq!(a.control.moved.lock().unwrap().len(), 1);
    let doc = a.get("/openapi.json").await;
    let props = &doc["paths"]["/calls/{id}/transfer"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"];
    assert_eq!(
        props["moves"]["enum"],
        json!(["caller", "callee"]),
        "{props}"
    );
}

#[tokio::test]
async fn the_board_lists_extensions_and_explains_refusals() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    for n in ["1001", "1002", "1003"] {
        a.store
            .create_extension(
                t,
                store::NewExtension {
                    number: n.into(),
                    display_name: format!("Desk {n}"),
                    password: Some("Secret-pass-9x".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    a.control.add_call(7, "1001", "1002", CallState::Up);
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/calls").await.text();
    // Nobody registered here: every extension is offline.
    assert!(
        page.contains(r#"data-ext="1003" data-state="offline""#),
        "{page}"
    );
    assert!(
        page.contains(r#"data-call="7" data-party="caller""#),
        "{page}"
    );
    assert!(
        page.contains(r#"data-call="7" data-party="callee""#),
        "{page}"
    );
    assert!(page.contains(r#"id="xfer-dialog""#), "{page}");
    assert!(page.contains(r#"src="/static/xfer.js""#), "{page}");
    let frag = b.get("/fragments/ext-states").await.text();
    assert!(frag.contains(r#"data-ext="1002""#), "{frag}");
    let js = b.get("/static/xfer.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.text().contains("dragstart"));

    let token = csrf(&page);
    let r = b
        .post(
            "/calls/7/transfer",
            &[
                ("csrf", token.as_str()),
                ("to", "1003"),
                ("moves", "callee"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        *a.control.moved.lock().unwrap(),
        [(7, "1003".to_string(), Party::Callee)]
    );
    let r = b
        .post(
            "/calls/7/transfer",
            &[
                ("csrf", token.as_str()),
                ("to", FORBIDDEN_NUMBER),
                ("moves", "caller"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text().contains("may not call this number"),
        "{}",
        r.text()
    );
    b.get("/lang?set=ja&back=%2Fcalls").await;
    let r = b
        .post(
            "/calls/7/transfer",
            &[
                ("csrf", token.as_str()),
                ("to", FORBIDDEN_NUMBER),
                ("moves", "caller"),
            ],
        )
        .await;
    assert!(
        r.text().contains("この番号への発信が許可されていません"),
        "{}",
        r.text()
    );
    let page = b.get("/calls").await.text();
    assert!(page.contains("未登録"), "offline in Japanese: {page}");

    // A viewer sees the states but nothing to drag.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let page = v.get("/calls").await.text();
    assert!(page.contains(r#"data-ext="1001""#), "{page}");
    assert!(!page.contains("draggable"), "{page}");
    assert!(!page.contains("xfer-dialog"), "{page}");
}
