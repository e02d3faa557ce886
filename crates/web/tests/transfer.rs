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

fn record(tenant: i64, call_id: &str) -> store::NewCdr {
    use chrono::TimeZone;
    let t = chrono::Utc
        .timestamp_opt(1_790_000_000, 0)
        .single()
        .unwrap();
    store::NewCdr {
        tenant_id: tenant,
        call_id: call_id.into(),
        caller: "1001".into(),
        callee: "1002".into(),
        caller_name: String::new(),
        start_time: t,
        answer_time: Some(t),
        end_time: t,
        duration_s: 30,
        billsec: 30,
        disposition: store::Disposition::Answered,
        hangup_by: store::HangupBy::Caller,
        hangup_cause: "BYE".into(),
        codec: "PCMU".into(),
        a: Default::default(),
        b: Default::default(),
        route: Default::default(),
    }
}

#[tokio::test]
async fn call_events_in_the_api_and_the_history_page() {
    use chrono::TimeZone;
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    let at = chrono::Utc
        .timestamp_opt(1_790_000_005, 0)
        .single()
        .unwrap();
    let ev = |seq: i64, kind: &str, status: i64| store::CdrEvent {
        seq,
        at,
        kind: kind.into(),
        by: "1002".into(),
        party: "1001".into(),
        target: "1003".into(),
        status,
    };
    a.store
        .insert_cdr_events(t, "xfer-1", &[ev(0, "failed", 486), ev(1, "callback", 200)])
        .await
        .unwrap();
    let id = a.store.insert_cdr(record(t, "xfer-1")).await.unwrap();
    let plain = a.store.insert_cdr(record(t, "plain-1")).await.unwrap();
    let l = a.get(&format!("/cdrs/{id}/events")).await;
    assert_eq!(l["total"], 2, "{l}");
    assert_eq!(l["items"][0]["kind"], "failed");
    assert_eq!(l["items"][0]["status"], 486);
    assert_eq!(l["items"][1]["kind"], "callback");
    assert_eq!(l["items"][1]["target"], "1003");
    assert_eq!(a.get(&format!("/cdrs/{plain}/events")).await["total"], 0);
    let doc = a.get("/openapi.json").await;
    assert!(doc["paths"]["/cdrs/{id}/events"]["get"].is_object());
    assert!(doc["components"]["schemas"]["CdrEvent"].is_object());

    let mut b = signed_in(&a, "admin", store::AdminRole::Viewer).await;
    let hist = b.get("/history").await.text();
    assert!(hist.contains(&format!(r#"href="/history/{id}""#)), "{hist}");
    let page = b.get(&format!("/history/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    let failed = text.find("transfer failed").expect("the failure");
    let back = text.find("called back").expect("the callback");
    assert!(failed < back, "in order: {text}");
    assert!(
        b.get(&format!("/history/{plain}"))
            .await
            .text()
            .contains("No transfer or pickup")
    );
    b.get("/lang?set=ja&back=%2Fhistory").await;
    assert!(
        b.get(&format!("/history/{id}"))
            .await
            .text()
            .contains("コールバック")
    );
}
