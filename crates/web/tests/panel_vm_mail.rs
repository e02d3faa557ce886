//! A voicemail e-mail that failed is visible: the mailbox page of the panel and the REST API
//! show it still pending, with its attempts and the last error, and then sent.

mod common;

use common::app;
use common::browser::signed_in;

#[tokio::test]
async fn a_failing_e_mail_shows_its_attempts_and_last_error_then_sent() {
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
    let spec = apps::vmail::BoxSpec {
        email: "bob@example.com".into(),
        ..Default::default()
    };
    a.store.put_vm_box(t, "1002", &spec).await.unwrap();
    a.store
        .insert_vm_message(
            t,
            &store::NewVmMessage {
                mailbox: "1002".into(),
                caller: "1001".into(),
                duration_ms: 4200,
                received_at_ms: 1_790_000_000_000,
                path: format!("voicemail/{t}/1002/msg-1-1.wav"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let row = a.store.vm_mail_status(t, "1002").await.unwrap()[0].clone();
    let err = "Connection error: Connection refused (os error 111)";
    for _ in 0..2 {
        let gave_up = a.store.vm_mail_retry(row.id, err, false, 1).await.unwrap();
        assert!(!gave_up);
    }

    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let html = b.get("/voicemail/1002").await.text();
    assert!(
        html.contains(r#"<li data-status="pending">bob@example.com: pending (2) — Connection error: Connection refused (os error 111)</li>"#),
        "{html}"
    );
    let api = a.get("/voicemail/1002").await;
    assert_eq!(api["mail"][0]["status"], "pending", "{api}");
    assert_eq!(api["mail"][0]["attempts"], 2, "{api}");
    assert_eq!(api["mail"][0]["last_error"], err, "{api}");

    a.store.vm_mail_sent(row.id).await.unwrap();
    let html = b.get("/voicemail/1002").await.text();
    assert!(
        html.contains(r#"<li data-status="sent">bob@example.com: sent (3)</li>"#),
        "{html}"
    );
}
