//! Ring group and forwarding pages through their HTML forms: a refusal shown at the field with
//! the input kept, a group added, changed and (once nothing names it) removed, an extension's
//! forwarding and DND saved, in English and Japanese.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};

#[tokio::test]
async fn ring_groups_and_forwarding_through_the_panel() {
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
    let page = b.get("/groups").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("No ring groups yet."));
    let token = csrf(&page.text());
    let r = b
        .post(
            "/groups",
            &[
                ("csrf", token.as_str()),
                ("name", "sales"),
                ("number", "600"),
                ("strategy", "sequential"),
                ("members", "1001\n1002:20"),
                ("no_answer", "vm:4040"),
                ("cos", "internal"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text();
    assert!(html.contains("data-field=\"no_answer\""), "{html}");
    assert!(html.contains("1002:20"), "input kept");
    let r = b
        .post(
            "/groups",
            &[
                ("csrf", token.as_str()),
                ("name", "sales"),
                ("number", "600"),
                ("strategy", "sequential"),
                ("members", "1001\n1002:20"),
                ("no_answer", "vm:1001"),
                ("cid_prefix", "Sales"),
                ("cos", "internal"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.text().contains("data-group=\"sales\""));
    let stored = a.store.group(t, "sales").await.unwrap().expect("stored");
    assert_eq!(stored.spec.members[1].ring_s, 20);
    // Change it from its edit page.
    let edit = b.get("/groups/sales/edit").await.text();
    assert!(edit.contains("1002:20"), "{edit}");
    let r = b
        .post(
            "/groups/sales/edit",
            &[
                ("csrf", token.as_str()),
                ("name", "sales"),
                ("number", "600"),
                ("strategy", "round_robin"),
                ("members", "1002"),
                ("no_answer", "hangup"),
                ("cos", "internal"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stored = a.store.group(t, "sales").await.unwrap().expect("stored");
    assert_eq!(stored.spec.members.len(), 1);
    // Forwarding of 1001, reached from the extension page.
    assert!(
        b.get("/extensions/1001")
            .await
            .text()
            .contains("/extensions/1001/forwarding")
    );
    let r = b
        .post(
            "/extensions/1001/forwarding",
            &[("csrf", token.as_str()), ("busy", "vm:9999")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("data-field=\"busy\""), "{}", r.text());
    let r = b
        .post(
            "/extensions/1001/forwarding",
            &[
                ("csrf", token.as_str()),
                ("busy", "vm:1001"),
                ("always", "group:sales"),
                ("dnd", "on"),
                ("dnd_mode", "voicemail"),
                ("follow_me", "0312345678"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let f = a.store.forwarding(t, "1001").await.unwrap();
    assert_eq!(
        (f.always.as_str(), f.busy.as_str(), f.dnd),
        ("group:sales", "vm:1001", true)
    );
    // The group is named by the forward: removal refused with the reason.
    let r = b
        .post("/groups/sales/delete", &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text().contains("forwarding of extension 1001"),
        "{}",
        r.text()
    );
    // Japanese.
    b.lang = Some("ja");
    let html = b.get("/groups").await.text();
    assert!(html.contains("着信グループ"), "{html}");
    assert!(html.contains("ラウンドロビン"));
    let html = b.get("/extensions/1001/forwarding").await.text();
    assert!(html.contains("着信拒否"), "{html}");
    // A viewer sees the pages but cannot change anything.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let page = v.get("/groups").await.text();
    assert!(!page.contains("id=\"group-form\""));
    let r = v
        .post(
            "/extensions/1001/forwarding",
            &[("csrf", csrf(&page).as_str()), ("dnd", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
