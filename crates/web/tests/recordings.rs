//! Call recordings through the REST API and the panel: policies (validated against the
//! objects that exist), settings, listing per call, audio served inline or as a download with
//! its content type, the call-history column, and viewers who cannot change anything.

mod common;

use axum::http::{StatusCode, header};
use chrono::Utc;
use common::app;
use common::browser::{csrf, signed_in};
use serde_json::json;

/// A recording row with a small WAV file behind it; returns its id.
async fn recorded(a: &common::App, call_id: &str, rel: &str) -> i64 {
    let t = a.store.default_tenant().await.unwrap().id;
    let path = a.data.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    media::wav::write_file(&path, 8000, &[1000i16; 800]).unwrap();
    let id = a
        .store
        .recording_started(t, call_id, rel, "wav", Utc::now())
        .await
        .unwrap();
    a.store
        .recording_stopped(id, Utc::now(), 100, "stopped", "", true)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn policies_settings_and_audio_through_the_api() {
    let a = app().await;
    // Policies name objects that exist.
    let r = a
        .api(
            "PUT",
            "/recording-policies/extension/1001",
            Some(&a.full),
            Some(json!({ "policy": "always" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = a
        .api(
            "POST",
            "/extensions",
            Some(&a.full),
            Some(json!({ "number": "1001" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = a
        .api(
            "PUT",
            "/recording-policies/extension/1001",
            Some(&a.full),
            Some(json!({ "policy": "sometimes" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = a
        .api(
            "PUT",
            "/recording-policies/did/1001",
            Some(&a.full),
            Some(json!({ "policy": "always" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = a
        .api(
            "PUT",
            "/recording-policies/extension/1001",
            Some(&a.read),
            Some(json!({ "policy": "always" })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a read key cannot change policies"
    );
    let r = a
        .api(
            "PUT",
            "/recording-policies/extension/1001",
            Some(&a.full),
            Some(json!({ "policy": "on_demand" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        a.get("/recording-policies").await,
        json!([{ "kind": "extension", "name": "1001", "policy": "on_demand" }])
    );
    // Settings.
    assert_eq!(
        a.get("/recording-settings").await,
        json!({ "retention_days": 0, "format": "wav", "layout": "mono" })
    );
    let r = a
        .api(
            "PUT",
            "/recording-settings",
            Some(&a.full),
            Some(json!({ "retention_days": -1, "format": "wav", "layout": "mono" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let s = json!({ "retention_days": 90, "format": "opus", "layout": "stereo" });
    let r = a
        .api("PUT", "/recording-settings", Some(&a.full), Some(s.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(a.get("/recording-settings").await, s);
    // Recordings, per call, with their audio.
    let id = recorded(&a, "call-a@host", "recordings/1/2026/12/06/call-a_host.wav").await;
    let _other = recorded(&a, "call-b@host", "recordings/1/2026/12/06/call-b_host.wav").await;
    let list = a.get("/recordings?call_id=call-a%40host").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], json!(id));
    assert_eq!(list[0]["status"], json!("stopped"));
    let r = a
        .api(
            "GET",
            &format!("/recordings/{id}/audio"),
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "audio/wav");
    assert!(
        r.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(&r.body[..4], b"RIFF");
    let r = a
        .api(
            "GET",
            &format!("/recordings/{id}/audio?download=true"),
            Some(&a.read),
            None,
        )
        .await;
    assert!(
        r.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    // Without a key: refused.
    let r = a
        .api("GET", &format!("/recordings/{id}/audio"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Expired: the row stays, the audio is gone.
    a.store.mark_recording_expired(id).await.unwrap();
    let r = a
        .api(
            "GET",
            &format!("/recordings/{id}/audio"),
            Some(&a.full),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .api("GET", "/recordings/999999", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_panel_shows_policies_plays_recordings_and_lists_them_in_history() {
    let a = app().await;
    let id = recorded(&a, "call-p@host", "recordings/1/2026/12/06/call-p_host.wav").await;
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let p = b.get("/recordings").await;
    assert_eq!(p.status, StatusCode::OK);
    let page = p.text();
    assert!(page.contains("id=\"rec-no-policies\""), "{page}");
    assert!(page.contains(&format!("/recordings/{id}/audio")));
    let token = csrf(&page);
    let r = b
        .post(
            "/recordings/settings",
            &[
                ("csrf", &token),
                ("retention_days", "30"),
                ("format", "wav"),
                ("layout", "stereo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        a.store.recording_settings(1).await.unwrap().layout,
        "stereo"
    );
    let r = b
        .post(
            "/recordings/policy",
            &[
                ("csrf", &token),
                ("kind", "trunk"),
                ("name", "nope"),
                ("policy", "always"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let audio = b.get(&format!("/recordings/{id}/audio")).await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(audio.headers[header::CONTENT_TYPE], "audio/wav");
    // The call history links the call's recording.
    let t = a.store.default_tenant().await.unwrap().id;
    let now = Utc::now();
    let cdr = store::NewCdr {
        tenant_id: t,
        call_id: "call-p@host".into(),
        caller: "1001".into(),
        callee: "1002".into(),
        caller_name: String::new(),
        start_time: now,
        answer_time: Some(now),
        end_time: now,
        duration_s: 1,
        billsec: 1,
        disposition: store::Disposition::Answered,
        hangup_by: store::HangupBy::Caller,
        hangup_cause: "BYE".into(),
        codec: "PCMU".into(),
        a: Default::default(),
        b: Default::default(),
        route: Default::default(),
    };
    a.store.insert_cdr(cdr).await.unwrap();
    let h = b.get("/history").await.text();
    assert!(h.contains(&format!("/recordings/{id}/audio")), "{h}");
    // A viewer sees, but has no forms.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let p = v.get("/recordings").await.text();
    assert!(!p.contains("action=\"/recordings/policy\""));
}
