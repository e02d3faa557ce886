//! The outside-line API (`/trunks`, `/routes`, `/dids`, `/outbound`, extension outbound fields)
//! against a real store and a fake call control: CRUD, scopes, refusals naming the store's
//! field, the trunk password never returned, a trunk in use kept, route order.

mod common;

use axum::http::StatusCode;
use common::{App, Resp, app};
use serde_json::{Value, json};

/// Asserts a 422 whose `error.field` is `field`.
fn refused(r: &Resp, field: &str) {
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}: {}",
        r.text()
    );
    let e = &r.json()["error"];
    assert_eq!(e["code"], "invalid", "{e}");
    assert_eq!(e["field"], field, "{e}");
}

async fn post(a: &App, path: &str, body: Value) -> Resp {
    a.api("POST", path, Some(&a.full), Some(body)).await
}

async fn put(a: &App, path: &str, body: Value) -> Resp {
    a.api("PUT", path, Some(&a.full), Some(body)).await
}

async fn trunk(a: &App, name: &str) {
    let r = post(a, "/trunks", json!({ "name": name, "host": "192.0.2.10" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

/// Everything the outside-line endpoints can change.
async fn snapshot(a: &App) -> Value {
    json!([
        a.get("/trunks").await,
        a.get("/routes").await,
        a.get("/dids").await,
        a.get("/outbound").await
    ])
}

#[tokio::test]
async fn trunks_crud_and_the_password_stays_secret() {
    let a = app().await;
    let r = post(
        &a,
        "/trunks",
        json!({ "name": "ntt", "host": "sip.example.jp:5080", "register": true,
                "username": "0312345678", "password": "s3cret-trunk-pw", "codecs": ["PCMU"] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let t = r.json();
    assert_eq!(
        (&t["host"], &t["port"], &t["has_password"]),
        (&json!("sip.example.jp"), &json!(5080), &json!(true))
    );
    assert_eq!(t["expires_s"], 600, "defaults fill what is not given");
    for path in ["/trunks", "/trunks/ntt", "/trunks/status"] {
        let body = a.api("GET", path, Some(&a.read), None).await.text();
        assert!(!body.contains("s3cret-trunk-pw"), "{path}: {body}");
        assert!(!body.contains("\"password\""), "{path}: {body}");
    }
    assert_eq!(a.get("/trunks").await["total"], 1);

    // Partial update: members given replace, the rest (and the password) stay.
    let r = put(
        &a,
        "/trunks/ntt",
        json!({ "max_calls": 8, "identity": "ppi" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = r.json();
    assert_eq!(
        (&t["max_calls"], &t["identity"]),
        (&json!(8), &json!("ppi"))
    );
    assert_eq!(
        (&t["username"], &t["has_password"]),
        (&json!("0312345678"), &json!(true))
    );
    let tenant = a.store.default_tenant().await.unwrap();
    let cfg = a.store.outside_config().await.unwrap();
    assert_eq!(cfg.trunks[0].1, "s3cret-trunk-pw", "the password was kept");
    let r = put(&a, "/trunks/ntt", json!({ "password": "n3w-password" })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        a.store.outside_config().await.unwrap().trunks[0].1,
        "n3w-password"
    );

    // Refusals name the field as the store does; nothing changes.
    let before = snapshot(&a).await;
    for (body, field) in [
        (json!({ "name": "x", "host": "bad host" }), "host"),
        (
            json!({ "name": "x", "host": "h.example", "port": 0 }),
            "port",
        ),
        (json!({ "name": "x", "host": "h.example:99999" }), "host"),
        (
            json!({ "name": "x", "host": "h.example", "codecs": ["GSM"] }),
            "codecs",
        ),
        (
            json!({ "name": "x", "host": "h.example", "expires_s": 5 }),
            "expires_s",
        ),
        (
            json!({ "name": "x", "host": "h.example", "ping_interval_s": 1 }),
            "ping_interval_s",
        ),
        (
            json!({ "name": "x", "host": "h.example", "inbound_addrs": ["10.0.0.0/33"] }),
            "inbound_addrs",
        ),
        (
            json!({ "name": "x", "host": "h.example", "register": true, "password": "p" }),
            "username",
        ),
        (
            json!({ "name": "x", "host": "h.example", "register": true, "username": "u" }),
            "password",
        ),
        (
            json!({ "name": "x", "host": "h.example", "transport": "sctp" }),
            "transport",
        ),
        (
            json!({ "name": "x", "host": "h.example", "max_calls": "many" }),
            "max_calls",
        ),
        (
            json!({ "name": "x", "host": "h.example", "colour": "red" }),
            "colour",
        ),
        (json!({ "name": "bad name", "host": "h.example" }), "name"),
        (json!({ "host": "h.example" }), "name"),
        (json!({ "name": "x" }), "host"),
    ] {
        refused(&post(&a, "/trunks", body.clone()).await, field);
    }
    refused(
        &put(
            &a,
            "/trunks/ntt",
            json!({ "register": true, "username": "" }),
        )
        .await,
        "username",
    );
    refused(
        &put(&a, "/trunks/ntt", json!({ "name": "other" })).await,
        "name",
    );
    assert_eq!(snapshot(&a).await, before);

    let r = post(&a, "/trunks", json!({ "name": "ntt", "host": "192.0.2.1" })).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );
    let r = a.api("GET", "/trunks/nope", Some(&a.full), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.api("DELETE", "/trunks/ntt", Some(&a.full), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(a.store.trunk(tenant.id, "ntt").await.unwrap().is_none());
}

#[tokio::test]
async fn read_keys_may_only_look() {
    let a = app().await;
    trunk(&a, "carrier").await;
    let before = snapshot(&a).await;
    for (m, p, b) in [
        (
            "POST",
            "/trunks",
            Some(json!({ "name": "x", "host": "h.example" })),
        ),
        ("PUT", "/trunks/carrier", Some(json!({ "max_calls": 1 }))),
        ("DELETE", "/trunks/carrier", None),
        (
            "POST",
            "/routes",
            Some(json!({ "name": "r", "patterns": ["0|0ZXXXXXXXX"], "trunks": ["carrier"] })),
        ),
        ("PUT", "/routes/r", Some(json!({}))),
        ("DELETE", "/routes/r", None),
        (
            "POST",
            "/dids",
            Some(json!({ "pattern": "any", "destination": "hangup" })),
        ),
        ("PUT", "/dids/any", Some(json!({}))),
        ("DELETE", "/dids/any", None),
        (
            "PUT",
            "/outbound",
            Some(json!({ "main_number": "0312345678" })),
        ),
        (
            "PATCH",
            "/extensions/1001",
            Some(json!({ "cos": "internal" })),
        ),
    ] {
        let r = a.api(m, p, Some(&a.read), b).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{m} {p}"
        );
    }
    for p in [
        "/trunks",
        "/trunks/carrier",
        "/trunks/status",
        "/routes",
        "/dids",
        "/outbound",
    ] {
        let r = a.api("GET", p, Some(&a.read), None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.text());
    }
    assert_eq!(snapshot(&a).await, before);
}

#[tokio::test]
async fn routes_in_order_and_a_trunk_in_use_is_kept() {
    let a = app().await;
    trunk(&a, "primary").await;
    trunk(&a, "backup").await;
    for (name, pattern) in [
        ("national", "0|0ZXXXXXXXX"),
        ("mobile", "0|0[789]0XXXXXXXX"),
        ("intl", "0|010."),
    ] {
        let r = post(
            &a,
            "/routes",
            json!({ "name": name, "patterns": [pattern], "trunks": ["primary", "backup"], "class": if name == "intl" { "international" } else { "mobile" } }),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}{}", r["position"], r["name"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(
        names(&a.get("/routes").await),
        ["1national", "2mobile", "3intl"]
    );
    // Insert at a position, then move with PUT.
    let r = post(&a, "/routes", json!({ "name": "free", "patterns": ["0|0120XXXXXX"], "trunks": ["backup"], "position": 1 })).await;
    assert_eq!(r.json()["position"], 1);
    let r = put(&a, "/routes/free", json!({ "position": 4 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json()["patterns"],
        json!(["0|0120XXXXXX"]),
        "settings kept"
    );
    assert_eq!(
        names(&a.get("/routes").await),
        ["1national", "2mobile", "3intl", "4free"]
    );
    let r = put(
        &a,
        "/routes/intl",
        json!({ "position": 1, "strip": 1, "prepend": "+81" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        names(&a.get("/routes").await),
        ["1intl", "2national", "3mobile", "4free"]
    );
    assert_eq!(a.get("/routes/intl").await["prepend"], "+81");

    let before = snapshot(&a).await;
    for (body, field) in [
        (
            json!({ "name": "x", "patterns": ["0|0Q"], "trunks": ["primary"] }),
            "pattern",
        ),
        (
            json!({ "name": "x", "patterns": [], "trunks": ["primary"] }),
            "pattern",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["nope"] }),
            "trunk",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": [] }),
            "trunk",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary", "primary"] }),
            "trunk",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary"], "prepend": "12a" }),
            "prepend",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary"], "class": "internal" }),
            "cos",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary"], "class": "premium" }),
            "class",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary"], "caller_id": "abc" }),
            "caller_id",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary"], "strip": 33 }),
            "strip",
        ),
        (
            json!({ "name": "x", "patterns": "0XX", "trunks": ["primary"] }),
            "patterns",
        ),
        (
            json!({ "name": "x", "patterns": ["0XX"], "trunks": ["primary"], "position": "first" }),
            "position",
        ),
    ] {
        refused(&post(&a, "/routes", body.clone()).await, field);
    }
    refused(
        &put(&a, "/routes/intl", json!({ "patterns": ["[1-"] })).await,
        "pattern",
    );
    // The store's reason comes back with its field: the trunk is still used.
    let r = a.api("DELETE", "/trunks/backup", Some(&a.full), None).await;
    refused(&r, "trunk");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used by outbound route intl"),
        "{}",
        r.text()
    );
    assert_eq!(snapshot(&a).await, before);

    let r = a
        .api("DELETE", "/routes/national", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        names(&a.get("/routes").await),
        ["1intl", "2mobile", "3free"]
    );
    assert_eq!(
        a.api("GET", "/routes/national", Some(&a.full), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn dids_with_patterns_in_the_path() {
    let a = app().await;
    trunk(&a, "carrier").await;
    a.api(
        "POST",
        "/extensions",
        Some(&a.full),
        Some(json!({ "number": "1001" })),
    )
    .await;
    for (pattern, dest) in [
        ("any", "hangup"),
        ("03123456[0-4]X", "ext:1001"),
        ("0312345678", "ext:1001"),
    ] {
        let r = post(&a, "/dids", json!({ "pattern": pattern, "destination": dest, "trunk": "carrier", "description": "main" })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let order: Vec<Value> = a.get("/dids").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pattern"].clone())
        .collect();
    assert_eq!(
        order,
        [json!("0312345678"), json!("03123456[0-4]X"), json!("any")],
        "catch-all last"
    );
    // Brackets URL-encoded in the path; ANY is the catch-all.
    let d = a.get("/dids/03123456%5B0-4%5DX").await;
    assert_eq!(d["destination"], "ext:1001");
    let r = put(&a, "/dids/ANY", json!({ "description": "everything else" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (&r.json()["destination"], &r.json()["description"]),
        (&json!("hangup"), &json!("everything else"))
    );

    let before = snapshot(&a).await;
    for (body, field) in [
        (
            json!({ "pattern": "0|03X", "destination": "ext:1001" }),
            "pattern",
        ),
        (
            json!({ "pattern": "0399", "destination": "route:out" }),
            "to",
        ),
        (
            json!({ "pattern": "0399", "destination": "ext:1999" }),
            "to",
        ),
        (json!({ "pattern": "0399", "destination": "nowhere" }), "to"),
        (
            json!({ "pattern": "0399", "destination": "ext:1001", "trunk": "nope" }),
            "trunk",
        ),
        (json!({ "destination": "ext:1001" }), "pattern"),
        (
            json!({ "pattern": "0399", "destination": 1001 }),
            "destination",
        ),
    ] {
        refused(&post(&a, "/dids", body.clone()).await, field);
    }
    refused(
        &put(&a, "/dids/0312345678", json!({ "destination": "conf:800" })).await,
        "to",
    );
    refused(
        &put(&a, "/dids/0312345678", json!({ "pattern": "0399" })).await,
        "pattern",
    );
    let r = post(
        &a,
        "/dids",
        json!({ "pattern": "0312345678", "destination": "hangup" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // A trunk named by an inbound route cannot go either.
    let r = a
        .api("DELETE", "/trunks/carrier", Some(&a.full), None)
        .await;
    refused(&r, "trunk");
    assert_eq!(snapshot(&a).await, before);

    let r = a
        .api("DELETE", "/dids/03123456%5B0-4%5DX", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(a.get("/dids").await["total"], 2);
    let r = a.api("GET", "/dids/0399", Some(&a.full), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn outbound_policy_and_extension_limits() {
    let a = app().await;
    let p = a.get("/outbound").await;
    assert_eq!(
        p["emergency_numbers"],
        json!(["110", "118", "119", "911", "112"])
    );
    let r = put(
        &a,
        "/outbound",
        json!({ "main_number": "0312345678", "max_per_hour": 50 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (
            &r.json()["main_number"],
            &r.json()["max_per_hour"],
            &r.json()["max_concurrent"]
        ),
        (&json!("0312345678"), &json!(50), &p["max_concurrent"])
    );
    let before = snapshot(&a).await;
    for (body, field) in [
        (json!({ "main_number": "03-1234" }), "main_number"),
        (json!({ "emergency_numbers": ["11x"] }), "emergency_numbers"),
        (json!({ "max_concurrent": -1 }), "max_concurrent"),
        (json!({ "limit": 1 }), "limit"),
    ] {
        refused(&put(&a, "/outbound", body.clone()).await, field);
    }
    assert_eq!(snapshot(&a).await, before);

    a.api(
        "POST",
        "/extensions",
        Some(&a.full),
        Some(json!({ "number": "1001" })),
    )
    .await;
    let e = a.get("/extensions/1001").await["extension"].clone();
    assert_eq!(
        (&e["cos"], &e["anonymous"]),
        (&json!("mobile"), &json!(false))
    );
    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            Some(&a.full),
            Some(
                json!({ "cos": "international", "outbound_cid": "0312345679", "anonymous": true,
                         "limits": { "max_per_hour": 5 } }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json();
    assert_eq!(
        (&e["cos"], &e["outbound_cid"], &e["anonymous"]),
        (&json!("international"), &json!("0312345679"), &json!(true))
    );
    assert_eq!(
        e["limits"],
        json!({ "max_concurrent": 2, "max_per_hour": 5, "intl_minutes_per_day": 30 })
    );
    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            Some(&a.full),
            Some(json!({ "outbound_cid": "abc" })),
        )
        .await;
    refused(&r, "outbound_cid");
    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            Some(&a.full),
            Some(json!({ "cos": "premium" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cos"),
        "{}",
        r.text()
    );
    let e2 = a.get("/extensions/1001").await["extension"].clone();
    assert_eq!(
        e2["outbound_cid"], "0312345679",
        "a refused change changes nothing"
    );
    assert_eq!(e2["cos"], "international");
}

#[tokio::test]
async fn trunk_status_live_and_stored() {
    let a = app().await;
    trunk(&a, "carrier").await;
    let t = a.store.default_tenant().await.unwrap();
    let tr = a.store.trunk(t.id, "carrier").await.unwrap().unwrap();
    // The core is not running here: the state the node stored is shown.
    a.store
        .set_trunk_status(
            tr.id,
            "pbx1",
            &json!({ "registration": "failing", "health": "down", "calls": 0,
            "last_register_answer": "403 Forbidden", "next_attempt_at": 1_900_000_000u64 }),
        )
        .await
        .unwrap();
    let s = a.get("/trunks/status").await;
    assert_eq!(s["items"][0]["name"], "carrier");
    assert_eq!(s["items"][0]["live"], Value::Null);
    assert_eq!(s["items"][0]["nodes"][0]["node"], "pbx1");
    assert_eq!(
        s["items"][0]["nodes"][0]["status"]["last_register_answer"],
        "403 Forbidden"
    );
    // With the core running, its live view comes too.
    a.control
        .trunks
        .lock()
        .unwrap()
        .push(web::engine::TrunkStatus {
            id: tr.id,
            tenant: t.id,
            name: "carrier".into(),
            registration: "off".into(),
            last_register_answer: None,
            failure: None,
            registered_until: None,
            next_attempt_at: None,
            health: "up".into(),
            last_ping_answer: Some("200 OK".into()),
            rtt_ms: Some(12),
            calls: 3,
            usable: true,
        });
    let s = a.get("/trunks/status").await;
    assert_eq!(
        (
            &s["items"][0]["live"]["health"],
            &s["items"][0]["live"]["calls"]
        ),
        (&json!("up"), &json!(3))
    );
    assert_eq!(s["core_running"], true);
}
