//! Call park through the API (`/api/v1/park`, `/api/v1/park/calls`) and the panel's Call park
//! page: the lot's defaults, partial changes, refusals naming the field (a range over an
//! extension names it), read keys and viewers cannot change it; the live list of parked calls
//! in English and Japanese.

mod common;

use axum::http::StatusCode;
use common::app;
use common::browser::{csrf, signed_in};
use serde_json::json;
use web::engine::park::ParkedCall;

fn parked() -> ParkedCall {
    ParkedCall {
        slot: 701,
        caller: "1001".into(),
        caller_name: "Front desk".into(),
        parked_by: "1002".into(),
        since: 1_790_000_000,
        state: "parked",
    }
}

#[tokio::test]
async fn park_lot_through_the_api() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let r = a.api("GET", "/park", k, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"first_slot": 701, "last_slot": 720, "timeout_s": 120, "moh_class": "default", "fallback": "hangup"})
    );
    let r = a
        .api(
            "PUT",
            "/park",
            k,
            Some(json!({"first_slot": 801, "last_slot": 810, "timeout_s": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = a.api("GET", "/park", k, None).await.json();
    assert_eq!(got["first_slot"], 801);
    assert_eq!(got["timeout_s"], 60);
    assert_eq!(
        got["fallback"], "hangup",
        "fields not given keep their value"
    );
    // Refusals name the field; nothing changes.
    let r = a
        .api("POST", "/extensions", k, Some(json!({"number": "805"})))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a slot: {}",
        r.text()
    );
    let r = a
        .api("POST", "/extensions", k, Some(json!({"number": "815"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    for (bad, needle) in [
        (json!({"first_slot": 720, "last_slot": 701}), "empty"),
        (json!({"first_slot": 1, "last_slot": 500}), "at most"),
        (json!({"timeout_s": 5}), "timeout"),
        (json!({"fallback": "nowhere:1"}), "fallback"),
        (json!({"first_slot": "x"}), "first_slot"),
        (json!({"slots": 3}), "slots"),
        (json!({"first_slot": 811, "last_slot": 816}), "815"),
    ] {
        let r = a.api("PUT", "/park", k, Some(bad.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text()
        );
        assert!(r.text().contains(needle), "{bad}: {}", r.text());
    }
    assert_eq!(a.api("GET", "/park", k, None).await.json(), got);
    let r = a
        .api(
            "PUT",
            "/park",
            Some(a.read.as_str()),
            Some(json!({"timeout_s": 30})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a read key cannot change it"
    );
    // The live list.
    let r = a.api("GET", "/park/calls", k, None).await;
    assert_eq!(r.json()["items"], json!([]));
    a.control.parked.lock().unwrap().push(parked());
    let r = a
        .api("GET", "/park/calls", Some(a.read.as_str()), None)
        .await;
    assert_eq!(r.json()["items"][0]["slot"], 701);
    assert_eq!(r.json()["items"][0]["parked_by"], "1002");
    // Documented.
    let doc = a.get("/openapi.json").await;
    assert!(doc["paths"]["/park"]["put"].is_object());
    assert!(doc["paths"]["/park/calls"]["get"].is_object());
}

#[tokio::test]
async fn call_park_page_in_both_languages() {
    let a = app().await;
    a.control.parked.lock().unwrap().push(parked());
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/park").await.text();
    assert!(page.contains(r#"id="park-calls""#), "{page}");
    assert!(page.contains("Front desk"));
    assert!(page.contains("Parked by"));
    assert!(
        page.contains(r#"value="701""#),
        "the lot's defaults in the form"
    );
    let token = csrf(&page);
    let r = b
        .post(
            "/park",
            &[
                ("csrf", token.as_str()),
                ("first_slot", "901"),
                ("last_slot", "905"),
                ("timeout_s", "45"),
                ("moh_class", "default"),
                ("fallback", "ext:1000"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let lot = a.store.park_lot(1).await.unwrap();
    assert_eq!((lot.first, lot.last, lot.timeout.as_secs()), (901, 905, 45));
    assert_eq!(lot.fallback, "ext:1000");
    let r = b
        .post("/park", &[("csrf", token.as_str()), ("timeout_s", "1")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains(r#"id="form-error""#));
    // Japanese.
    let _ = b.get("/lang?set=ja&back=/park").await;
    let page = b.get("/park").await.text();
    assert!(page.contains("パーク中の通話"), "{page}");
    assert!(page.contains("保留中"));
    // A viewer sees the page but cannot save.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let page = v.get("/park").await.text();
    assert!(!page.contains(r#"id="park-save""#));
    let token = csrf(&page);
    let r = v
        .post("/park", &[("csrf", token.as_str()), ("timeout_s", "30")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
