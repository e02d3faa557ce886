//! The voicemail API (`/voicemail/{ext}`) against a real store: settings with refusals naming
//! the field, the PIN (never shown, weak ones refused), messages listed, played as audio/wav,
//! marked read and deleted with their file; read-only keys cannot change anything.

mod common;

use axum::http::StatusCode;
use common::{App, Resp, app};
use serde_json::{Value, json};

async fn call(a: &App, m: &str, path: &str, body: Option<Value>) -> Resp {
    a.api(m, path, Some(&a.full), body).await
}

fn refused(r: &Resp, field: &str) {
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}: {}",
        r.text()
    );
    assert_eq!(r.json()["error"]["field"], field, "{}", r.text());
}

#[tokio::test]
async fn mailbox_settings_pin_and_messages() {
    let a = app().await;
    let r = call(&a, "POST", "/extensions", Some(json!({ "number": "1002" }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        call(&a, "GET", "/voicemail/4040", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Defaults, no PIN.
    let r = call(&a, "GET", "/voicemail/1002", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["has_pin"], false);
    assert_eq!(
        (v["new"].as_i64(), v["max_message_s"].as_i64()),
        (Some(0), Some(180))
    );
    assert!(v.get("pin").is_none() && v.get("pin_hash").is_none());

    // Settings: refusals name the field; a change is kept.
    for (body, field) in [
        (json!({ "email": "not-an-address" }), "email"),
        (json!({ "max_message_s": 3 }), "max_message_s"),
        (json!({ "greeting_busy": true }), "greeting_busy"),
        (json!({ "colour": "red" }), "colour"),
    ] {
        refused(&call(&a, "PUT", "/voicemail/1002", Some(body)).await, field);
    }
    let r = call(
        &a,
        "PUT",
        "/voicemail/1002",
        Some(json!({ "email": "bob@example.com", "max_message_s": 60 })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["email"], "bob@example.com");

    // The PIN: weak refused, read keys refused, set and removed.
    refused(
        &call(
            &a,
            "PUT",
            "/voicemail/1002/pin",
            Some(json!({ "pin": "1234" })),
        )
        .await,
        "pin",
    );
    let r = a
        .api(
            "PUT",
            "/voicemail/1002/pin",
            Some(&a.read),
            Some(json!({ "pin": "2580" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &a,
        "PUT",
        "/voicemail/1002/pin",
        Some(json!({ "pin": "2580" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(
        call(&a, "GET", "/voicemail/1002", None).await.json()["has_pin"],
        true
    );

    // A message (as call control indexes it), with its file.
    let rel = "voicemail/1/1002/msg-1-1.wav";
    let file = a.data.path().join(rel);
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, b"RIFF....WAVEfmt ").expect("write");
    let m = a
        .store
        .insert_vm_message(
            1,
            &store::NewVmMessage {
                mailbox: "1002".into(),
                caller: "1001".into(),
                duration_ms: 3000,
                received_at_ms: 1_790_000_000_000,
                path: rel.into(),
                ..Default::default()
            },
        )
        .await
        .expect("indexed");
    let v = call(&a, "GET", "/voicemail/1002", None).await.json();
    assert_eq!(v["new"], 1);
    assert_eq!(v["mail"][0]["status"], "pending", "queued for e-mail: {v}");
    let list = call(&a, "GET", "/voicemail/1002/messages", None)
        .await
        .json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["caller"], "1001");
    let audio = call(
        &a,
        "GET",
        &format!("/voicemail/1002/messages/{}/audio", m.id),
        None,
    )
    .await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(audio.headers["content-type"], "audio/wav");
    assert_eq!(audio.body, b"RIFF....WAVEfmt ");
    let dl = call(
        &a,
        "GET",
        &format!("/voicemail/1002/messages/{}/audio?download=1", m.id),
        None,
    )
    .await;
    assert!(
        dl.headers["content-disposition"]
            .to_str()
            .unwrap_or("")
            .starts_with("attachment")
    );
    assert_eq!(
        call(&a, "GET", "/voicemail/1002/messages/999/audio", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Mark read, then delete (file too).
    let path = format!("/voicemail/1002/messages/{}", m.id);
    refused(
        &call(&a, "PUT", &path, Some(json!({ "folder": "trash" }))).await,
        "folder",
    );
    let r = call(&a, "PUT", &path, Some(json!({ "folder": "saved" }))).await;
    assert_eq!(r.json()["folder"], "saved");
    let v = call(&a, "GET", "/voicemail/1002", None).await.json();
    assert_eq!((v["new"].as_i64(), v["saved"].as_i64()), (Some(0), Some(1)));
    let r = a.api("DELETE", &path, Some(&a.read), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&a, "DELETE", &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(!file.exists(), "the file went with the message");
    assert_eq!(
        call(&a, "GET", "/voicemail/1002/messages", None)
            .await
            .json()["total"],
        0
    );
    assert_eq!(
        call(&a, "DELETE", &path, None).await.status,
        StatusCode::NOT_FOUND
    );
}
