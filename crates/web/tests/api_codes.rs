//! Feature codes, time conditions, the holiday calendar and pickup groups over the API against
//! a real store: listing, changes, refusals naming the field, the override, iCal import.

mod common;

use axum::http::StatusCode;
use common::{App, Resp, app};
use serde_json::{Value, json};

fn refused(r: &Resp, field: &str) {
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}: {}",
        r.text()
    );
    assert_eq!(r.json()["error"]["field"], field, "{}", r.text());
}

async fn call(a: &App, m: &str, path: &str, body: Option<Value>) -> Resp {
    a.api(m, path, Some(&a.full), body).await
}

#[tokio::test]
async fn feature_codes_time_conditions_calendar_and_pickup() {
    let a = app().await;
    for n in ["1001", "1002"] {
        let r = call(&a, "POST", "/extensions", Some(json!({ "number": n }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    // Feature codes.
    let list = a.get("/feature-codes").await;
    assert!(list["items"].as_array().is_some_and(|l| {
        l.iter()
            .any(|c| c["feature"] == "group_pickup" && c["code"] == "*8")
    }));
    let r = call(
        &a,
        "PUT",
        "/feature-codes/dnd_toggle",
        Some(json!({ "code": "*97" })),
    )
    .await;
    refused(&r, "code");
    assert!(
        r.text().contains("already used by vm_own_box"),
        "{}",
        r.text()
    );
    let r = call(
        &a,
        "PUT",
        "/feature-codes/dnd_toggle",
        Some(json!({ "code": "*55" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["code"], "*55");
    let r = call(
        &a,
        "PUT",
        "/feature-codes/park",
        Some(json!({ "code": null })),
    )
    .await;
    assert_eq!(r.json()["code"], Value::Null);
    let r = call(&a, "DELETE", "/feature-codes/dnd_toggle", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &a,
        "PUT",
        "/feature-codes/nope",
        Some(json!({ "code": "*1" })),
    )
    .await;
    refused(&r, "feature");
    // Read-only keys cannot change.
    let r = a
        .api(
            "PUT",
            "/feature-codes/park",
            Some(&a.read),
            Some(json!({ "code": "*70" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Calendar and time conditions.
    let r = call(
        &a,
        "PUT",
        "/holiday-calendar",
        Some(json!({ "timezone": "Mars/Base" })),
    )
    .await;
    refused(&r, "timezone");
    let r = call(
        &a,
        "PUT",
        "/holiday-calendar",
        Some(json!({ "timezone": "Asia/Tokyo", "japan": true })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261228\r\nSUMMARY:Year end\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = call(
        &a,
        "POST",
        "/holiday-calendar/import",
        Some(json!({ "ics": ics })),
    )
    .await;
    assert_eq!(r.json()["imported"], 1, "{}", r.text());
    let r = call(&a, "POST", "/holiday-calendar/import", Some(json!({ "ics": "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nRRULE:FREQ=WEEKLY\nEND:VEVENT\nEND:VCALENDAR\n" }))).await;
    refused(&r, "ics");
    let tc = json!({ "name": "office", "number": "600", "index": 1, "weekly": ["mon-fri 09:00-18:00"],
                     "use_holidays": true, "matched": "ext:1001", "unmatched": "vm:1001" });
    for (body, field) in [
        (
            json!({ "name": "x", "weekly": ["9-5"], "matched": "ext:1001", "unmatched": "hangup" }),
            "weekly",
        ),
        (
            json!({ "name": "x", "matched": "ext:4040", "unmatched": "hangup" }),
            "matched",
        ),
        (json!({ "name": "x", "matched": "ext:1001" }), "unmatched"),
        (
            json!({ "name": "x", "number": "1002", "matched": "ext:1001", "unmatched": "hangup" }),
            "number",
        ),
        (
            json!({ "name": "x", "matched": "ext:1001", "unmatched": "hangup", "colour": 1 }),
            "colour",
        ),
    ] {
        refused(&call(&a, "POST", "/timeconds", Some(body)).await, field);
    }
    let r = call(&a, "POST", "/timeconds", Some(tc)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["mode"].as_str(), v["number"].as_str()),
        (Some("auto"), Some("600"))
    );
    assert!(v["state"] == "day" || v["state"] == "night");
    let r = call(
        &a,
        "PUT",
        "/timeconds/office/mode",
        Some(json!({ "mode": "night" })),
    )
    .await;
    assert_eq!(
        (r.json()["mode"].as_str(), r.json()["state"].as_str()),
        (Some("night"), Some("night"))
    );
    assert_eq!(r.json()["why"], "forced night");
    refused(
        &call(
            &a,
            "PUT",
            "/timeconds/office/mode",
            Some(json!({ "mode": "dusk" })),
        )
        .await,
        "mode",
    );
    let r = call(
        &a,
        "PUT",
        "/timeconds/office",
        Some(json!({ "weekly": ["sat,sun 10:00-12:00"] })),
    )
    .await;
    assert_eq!(r.json()["weekly"][0], "sat,sun 10:00-12:00");
    assert_eq!(r.json()["mode"], "night", "an edit keeps the override");
    // Pickup groups.
    let r = call(
        &a,
        "PUT",
        "/extensions/1001/pickup-groups",
        Some(json!({ "groups": ["sales"] })),
    )
    .await;
    assert_eq!(r.json()["groups"], json!(["sales"]));
    call(
        &a,
        "PUT",
        "/extensions/1002/pickup-groups",
        Some(json!({ "groups": ["sales", "all"] })),
    )
    .await;
    refused(
        &call(
            &a,
            "PUT",
            "/extensions/1002/pickup-groups",
            Some(json!({ "groups": ["a b"] })),
        )
        .await,
        "pickup_groups",
    );
    let g = a.get("/pickup-groups").await;
    assert_eq!(
        g["items"],
        json!([{ "name": "all", "members": ["1002"] }, { "name": "sales", "members": ["1001", "1002"] }])
    );
    let r = call(
        &a,
        "PUT",
        "/extensions/4040/pickup-groups",
        Some(json!({ "groups": [] })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&a, "DELETE", "/timeconds/office", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}
