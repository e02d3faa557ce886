//! The voicemail panel pages through their HTML forms: mailboxes with counts, a mailbox's
//! messages played and downloaded as audio/wav, marked read, deleted with their file; settings
//! refused at the field; the PIN set (never shown) and removed; English and Japanese.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};

#[tokio::test]
async fn voicemail_through_the_panel() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    a.store
        .create_extension(
            t,
            store::NewExtension {
                number: "1002".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rel = format!("voicemail/{t}/1002/msg-1-1.wav");
    let file = a.data.path().join(&rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"RIFF-test-wav").unwrap();
    let m = a
        .store
        .insert_vm_message(
            t,
            &store::NewVmMessage {
                mailbox: "1002".into(),
                caller: "1001".into(),
                caller_name: "Alice".into(),
                duration_ms: 4200,
                received_at_ms: 1_790_000_000_000,
                path: rel,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;

    let list = b.get("/voicemail").await;
    assert_eq!(list.status, StatusCode::OK);
    let html = list.text();
    assert!(html.contains(r#"data-box="1002""#), "{html}");
    assert!(
        html.contains(r#"<td class="new">1</td>"#),
        "one new message: {html}"
    );

    let page = b.get("/voicemail/1002").await;
    let html = page.text();
    assert!(html.contains("Alice"), "{html}");
    let audio = format!("/voicemail/1002/messages/{}/audio", m.id);
    assert!(
        html.contains(&format!(r#"<audio controls preload="none" src="{audio}">"#)),
        "{html}"
    );
    assert!(html.contains("cannot be entered by phone"), "no PIN yet");
    let wav = b.get(&audio).await;
    assert_eq!(wav.status, StatusCode::OK);
    assert_eq!(wav.headers["content-type"], "audio/wav");
    assert_eq!(wav.body, b"RIFF-test-wav");

    // Settings: a bad e-mail is refused at its field, the input kept.
    let token = csrf(&html);
    let r = b
        .post(
            "/voicemail/1002",
            &[
                ("csrf", token.as_str()),
                ("enabled", "on"),
                ("email", "nobody"),
                ("max_message_s", "90"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains(r#"data-field="email""#), "{}", r.text());
    assert!(r.text().contains(r#"value="nobody""#));
    let r = b
        .post(
            "/voicemail/1002",
            &[
                ("csrf", token.as_str()),
                ("enabled", "on"),
                ("email", "bob@example.com"),
                ("max_message_s", "90"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let bx = a.store.vm_box(t, "1002").await.unwrap().unwrap();
    assert_eq!(
        (bx.spec.email.as_str(), bx.spec.max_message_s),
        ("bob@example.com", 90)
    );

    // PIN: weak refused, then set (not shown), then removed.
    let r = b
        .post(
            "/voicemail/1002/pin",
            &[("csrf", token.as_str()), ("pin", "1111")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/voicemail/1002/pin",
            &[("csrf", token.as_str()), ("pin", "2580")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text().contains("2580"), "the PIN is never shown");
    assert!(a.store.vm_box(t, "1002").await.unwrap().unwrap().has_pin);
    let r = b
        .post(
            "/voicemail/1002/pin",
            &[("csrf", token.as_str()), ("clear", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!a.store.vm_box(t, "1002").await.unwrap().unwrap().has_pin);

    // Mark read, then delete (the file goes too).
    let base = format!("/voicemail/1002/messages/{}", m.id);
    let r = b
        .post(&format!("{base}/read"), &[("csrf", token.as_str())])
        .await;
    assert!(r.text().contains(r#"data-folder="saved""#), "{}", r.text());
    assert_eq!(a.store.vm_counts(t, "1002").await.unwrap(), (0, 1));
    let r = b
        .post(&format!("{base}/delete"), &[("csrf", token.as_str())])
        .await;
    assert!(r.text().contains("No messages."), "{}", r.text());
    assert!(!file.exists());

    // Japanese.
    let ja = b.get("/lang?set=ja&back=/voicemail/1002").await;
    assert!(ja.status.is_redirection() || ja.status == StatusCode::OK);
    let html = b.get("/voicemail/1002").await.text();
    assert!(html.contains("留守番電話"), "{html}");
}
