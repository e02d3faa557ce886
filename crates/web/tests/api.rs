//! The REST API against a real store and a fake call control: every endpoint, bad input of every kind,
//! and that every refused request leaves the data as it was.

mod common;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use common::{App, Resp, app};
use serde_json::{Value, json};

/// Everything a refused request could have touched, for before/after comparison.
async fn snapshot(a: &App) -> Value {
    let mut exts = a.get("/extensions?limit=1000").await;
    // The API key used to read is stamped with its last use; drop volatile fields.
    let keys: Vec<Value> = a.get("/api-keys").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| json!([k["id"], k["name"], k["scope"]]))
        .collect();
    let admins: Vec<Value> = a.get("/admins").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| json!([k["username"], k["role"]]))
        .collect();
    let auth: Vec<Value> = {
        let t = a.store.default_tenant().await.unwrap();
        let mut v = Vec::new();
        for e in exts["items"].as_array().unwrap() {
            let n = e["number"].as_str().unwrap();
            let au = a.store.extension_auth(t.id, n).await.unwrap().unwrap();
            v.push(json!([n, au.ha1_md5]));
        }
        v
    };
    exts["auth"] = Value::from(auth);
    json!({ "exts": exts, "settings": a.get("/settings").await["items"], "keys": keys,
            "admins": admins, "cdrs": a.get("/cdrs").await })
}

#[tokio::test]
async fn authentication_and_scope() {
    let a = app().await;
    let r = a.api("GET", "/extensions", None, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = a.api("GET", "/extensions", Some("dnw_wrong"), None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = a
        .send(
            axum::http::Request::get("/api/v1/extensions")
                .header("authorization", format!("Basic {}", a.full))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let before = snapshot(&a).await;
    // A read key may look but not touch, on every kind of write.
    let body = json!({ "number": "1001", "password": "Secret123x" });
    for (m, p, b) in [
        ("POST", "/extensions", Some(body.clone())),
        ("DELETE", "/calls/1", None),
        (
            "PUT",
            "/settings/calls.no_answer_timeout_s",
            Some(json!({ "value": 40 })),
        ),
        (
            "POST",
            "/api-keys",
            Some(json!({ "name": "x", "scope": "full" })),
        ),
        (
            "POST",
            "/admins",
            Some(json!({ "username": "x", "password": "0123456789", "role": "admin" })),
        ),
        ("POST", "/backup/restore", None),
        ("GET", "/backup", None),
    ] {
        let r = a.api(m, p, Some(&a.read), b).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{m} {p}"
        );
    }
    assert_eq!(
        a.api("GET", "/extensions", Some(&a.read), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(snapshot(&a).await, before);

    // No key needed for the document; unknown endpoints are JSON 404s.
    assert_eq!(
        a.api("GET", "/openapi.json", None, None).await.status,
        StatusCode::OK
    );
    let r = a.api("GET", "/nope", Some(&a.full), None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn extensions_crud() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let r = a
        .api(
            "POST",
            "/extensions",
            k,
            Some(json!({ "number": "1001", "display_name": "Aoki", "password": "Secret123x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["extension"]["number"], "1001");
    assert!(
        r.json().get("password").is_none(),
        "a given password is not echoed"
    );

    let r = a
        .api("POST", "/extensions", k, Some(json!({ "number": "1002" })))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let generated = r.json()["password"].as_str().unwrap().to_string();
    assert_eq!(
        web::engine::policy::check_extension_password("1002", &generated),
        Ok(())
    );
    // Refusals name the rule, in the words the CLI uses (one policy, engine::policy).
    for (body, message) in [
        (
            json!({ "number": "1003", "password": "short" }),
            "password too short: at least 8 characters",
        ),
        (
            json!({ "number": "1003", "password": "x1003Secret" }),
            "password must not contain the extension number",
        ),
        (
            json!({ "number": "1003", "max_contacts": 101 }),
            "max_contacts must be 1 to 100",
        ),
    ] {
        let r = a.api("POST", "/extensions", k, Some(body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["error"]["message"], message);
    }
    // The generated password is the one the digest check will use.
    let t = a.store.default_tenant().await.unwrap();
    let auth = a.store.extension_auth(t.id, "1002").await.unwrap().unwrap();
    assert_eq!(
        auth.ha1_md5.unwrap(),
        store::ha1_md5("1002", &t.realm, &generated)
    );

    for n in 0..5 {
        let r = a
            .api(
                "POST",
                "/extensions",
                k,
                Some(json!({ "number": format!("20{n}"), "display_name": format!("Sales {n}") })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let l = a.get("/extensions?limit=2&offset=1").await;
    assert_eq!(l["total"], 7);
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    assert_eq!(l["items"][0]["number"], "1002");
    let l = a.get("/extensions?search=sales").await;
    assert_eq!(l["total"], 5);

    let e = a.get("/extensions/1001").await;
    assert_eq!(e["extension"]["display_name"], "Aoki");
    assert_eq!(e["registrations"], json!([]));

    let r = a
        .api(
            "PATCH",
            "/extensions/1001",
            k,
            Some(json!({ "display_name": "青木", "enabled": false })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["display_name"], "青木");
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["max_contacts"], 3);

    // Regenerate (empty body and {}), then set a chosen one.
    for body in [Vec::new(), b"{}".to_vec()] {
        let r = a
            .raw(
                "POST",
                "/extensions/1001/password",
                &a.full,
                Some("application/json"),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let p = r.json()["password"].as_str().unwrap().to_string();
        let auth = a.store.extension_auth(t.id, "1001").await.unwrap().unwrap();
        assert_eq!(auth.ha1_md5.unwrap(), store::ha1_md5("1001", &t.realm, &p));
    }
    let r = a
        .api(
            "POST",
            "/extensions/1001/password",
            k,
            Some(json!({ "password": "Another9pass" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({}));
    let auth = a.store.extension_auth(t.id, "1001").await.unwrap().unwrap();
    assert_eq!(
        auth.ha1_md5.unwrap(),
        store::ha1_md5("1001", &t.realm, "Another9pass")
    );

    let r = a.api("DELETE", "/extensions/1001", k, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.api("GET", "/extensions/1001", k, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn extension_bad_input_changes_nothing() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let r = a
        .api(
            "POST",
            "/extensions",
            k,
            Some(json!({ "number": "1001", "password": "Secret123x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let before = snapshot(&a).await;

    let cases: Vec<(&str, &str, Option<Value>, StatusCode, &str)> = vec![
        (
            "POST",
            "/extensions",
            Some(json!({ "number": 1002 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "display_name": "x" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "colour": "red" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "10a2" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "password": "short" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "password": "abcdefghij" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "password": "x1002Secret" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "max_contacts": 0 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "enabled": "yes" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1002", "display_name": "a\u{7}b" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions",
            Some(json!({ "number": "1001", "password": "Secret123y" })),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "POST",
            "/extensions",
            Some(json!([1, 2])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PATCH",
            "/extensions/1001",
            Some(json!({ "max_contacts": "many" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PATCH",
            "/extensions/1001",
            Some(json!({ "max_contacts": -1 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PATCH",
            "/extensions/1001",
            Some(json!({ "number": "1003" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PATCH",
            "/extensions/9999",
            Some(json!({ "display_name": "x" })),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            "/extensions/9999",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/extensions/9999/password",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/extensions/1001/password",
            Some(json!({ "password": "weak" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/extensions/1001/password",
            Some(json!({ "password": 12345678 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "GET",
            "/extensions?limit=0",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "GET",
            "/extensions?limit=abc",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/extensions?offset=-1",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "GET",
            "/extensions?sort=name",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (m, p, b, status, code) in cases {
        let r = a.api(m, p, Some(&a.full), b.clone()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{m} {p} {b:?}: {}",
            r.text()
        );
        assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
    }
    // Malformed JSON and a missing content type.
    let r = a
        .raw(
            "POST",
            "/extensions",
            &a.full,
            Some("application/json"),
            b"{\"number\": ".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = a
        .raw(
            "POST",
            "/extensions",
            &a.full,
            None,
            b"{\"number\": \"1005\"}".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_request")
    );
    let r = a
        .raw(
            "POST",
            "/extensions/1001/password",
            &a.full,
            Some("application/json"),
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert_eq!(snapshot(&a).await, before);
}

#[tokio::test]
async fn registrations_and_calls() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let r = a
        .api("POST", "/extensions", k, Some(json!({ "number": "1001" })))
        .await;
    let ext_id = r.json()["extension"]["id"].as_i64().unwrap();
    let t = a.store.default_tenant().await.unwrap();
    a.store
        .upsert_binding(store::BindingUpsert {
            tenant_id: t.id,
            extension_id: ext_id,
            aor: "sip:1001@denwa".into(),
            contact_uri: "sip:1001@127.0.0.1:5070".into(),
            expires_at: Utc::now() + Duration::seconds(300),
            q: 1.0,
            call_id: "c1".into(),
            cseq: 1,
            user_agent: "baresip".into(),
            received_addr: "127.0.0.1:5070".into(),
            transport: store::Transport::Udp,
            local_addr: "127.0.0.1:5060".into(),
            instance_id: None,
            reg_id: None,
            node: "test".into(),
            flags: 0,
            now: Utc::now(),
        })
        .await
        .unwrap();
    let l = a.get("/registrations").await;
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["user_agent"], "baresip");
    assert_eq!(
        a.get("/extensions/1001").await["registrations"][0]["contact_uri"],
        "sip:1001@127.0.0.1:5070"
    );
    let r = a.api("GET", "/registrations?limit=100000", k, None).await;
    assert_eq!(r.code(), "invalid");

    let l = a.get("/calls").await;
    assert_eq!(l["items"], json!([]));
    let r = a.api("DELETE", "/calls/42", k, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = a.api("DELETE", "/calls/abc", k, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    let s = a.get("/status").await;
    assert_eq!(s["registrations"], 1);
    assert_eq!(s["calls_in_progress"], 0);
    assert_eq!(s["today"]["ANSWERED"], 0);

    // Calls in progress come from call control; a hang-up goes to it.
    a.control
        .add_call(7, "1001", "1002", web::control::CallState::Up);
    a.control
        .add_call(8, "1003", "1001", web::control::CallState::Ringing);
    let l = a.get("/calls").await;
    assert_eq!(l["total"], 2);
    assert_eq!(l["items"][0]["id"], 7);
    assert_eq!(l["items"][0]["state"], "up");
    assert_eq!(l["items"][1]["state"], "ringing");
    assert_eq!(a.get("/status").await["calls_in_progress"], 2);
    let r = a.api("DELETE", "/calls/7", Some(&a.read), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a read key cannot hang up");
    let r = a.api("DELETE", "/calls/7", k, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(*a.control.hangups.lock().unwrap(), [42, 7]);
    let l = a.get("/calls").await;
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["id"], 8);
}

fn cdr(
    caller: &str,
    callee: &str,
    d: store::Disposition,
    start: chrono::DateTime<Utc>,
) -> store::NewCdr {
    store::NewCdr {
        tenant_id: 1,
        call_id: format!("{caller}-{callee}-{}", start.timestamp()),
        caller: caller.into(),
        callee: callee.into(),
        caller_name: "=HYPERLINK(\"x\")".into(),
        start_time: start,
        answer_time: (d == store::Disposition::Answered).then_some(start),
        end_time: start + Duration::seconds(10),
        duration_s: 10,
        billsec: if d == store::Disposition::Answered {
            10
        } else {
            0
        },
        disposition: d,
        hangup_by: store::HangupBy::Caller,
        hangup_cause: "BYE".into(),
        codec: "PCMU".into(),
        a: Default::default(),
        b: Default::default(),
        route: Default::default(),
    }
}

#[tokio::test]
async fn call_records_query_and_csv() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let tenant = a.store.default_tenant().await.unwrap().id;
    let day = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
    use store::Disposition::*;
    for (i, (c, e, d)) in [
        ("1001", "1002", Answered),
        ("1002", "1001", NoAnswer),
        ("1003", "1001", Busy),
        ("1001", "1003", Answered),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = cdr(c, e, d, day + Duration::hours(i as i64 * 24));
        r.tenant_id = tenant;
        a.store.insert_cdr(r).await.unwrap();
    }
    let l = a.get("/cdrs").await;
    assert_eq!(l["total"], 4);
    assert_eq!(l["items"][0]["caller"], "1001", "newest first");
    assert_eq!(a.get("/cdrs?number=1003").await["total"], 2);
    assert_eq!(a.get("/cdrs?disposition=ANSWERED").await["total"], 2);
    assert_eq!(a.get("/cdrs?disposition=no_answer").await["total"], 1);
    assert_eq!(
        a.get("/cdrs?from=2026-03-11&to=2026-03-12").await["total"],
        2
    );
    assert_eq!(
        a.get("/cdrs?from=2026-03-11T00:00:00Z&to=2026-03-12T00:00:00Z")
            .await["total"],
        1
    );
    let p = a.get("/cdrs?limit=3&offset=3").await;
    assert_eq!(
        (p["total"].as_i64(), p["items"].as_array().unwrap().len()),
        (Some(4), 1)
    );
    for bad in [
        "/cdrs?disposition=MAYBE",
        "/cdrs?from=yesterday",
        "/cdrs?to=2026-13-01",
        "/cdrs?limit=-5",
    ] {
        let r = a.api("GET", bad, k, None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{bad}"
        );
    }
    let r = a
        .api("GET", "/cdrs?number=1001&disposition=ANSWERED", k, None)
        .await;
    assert_eq!(r.json()["total"], 2);

    let r = a.api("GET", "/cdrs.csv?number=1003", k, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("id,start_time"));
    assert!(lines[1].contains(",BUSY,") || lines[1].contains(",ANSWERED,"));
    // Caller-controlled text cannot become a spreadsheet formula.
    assert!(
        lines[1].contains("\"'=HYPERLINK(\"\"x\"\")\""),
        "{}",
        lines[1]
    );
    let r = a.api("GET", "/cdrs.csv?disposition=nope", k, None).await;
    assert_eq!(r.code(), "invalid");
}

#[tokio::test]
async fn settings_validation() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let l = a.get("/settings").await;
    let items = l["items"].as_array().unwrap();
    let media = items
        .iter()
        .find(|s| s["key"] == "calls.media_timeout_s")
        .unwrap();
    assert_eq!(media["restart_required"], true);
    let na = items
        .iter()
        .find(|s| s["key"] == "calls.no_answer_timeout_s")
        .unwrap();
    assert_eq!(
        (
            na["value"].clone(),
            na["is_default"].clone(),
            na["restart_required"].clone()
        ),
        (json!(30), json!(true), json!(false))
    );

    let r = a
        .api(
            "PUT",
            "/settings/calls.no_answer_timeout_s",
            k,
            Some(json!({ "value": 45 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["value"], 45);
    assert_eq!(
        a.store
            .setting::<u64>(None, "calls.no_answer_timeout_s")
            .await
            .unwrap(),
        Some(45)
    );

    let before = snapshot(&a).await;
    for (p, b, status, code) in [
        (
            "/settings/calls.no_answer_timeout_s",
            json!({ "value": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "/settings/calls.no_answer_timeout_s",
            json!({ "value": "soon" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "/settings/calls.no_answer_timeout_s",
            json!({ "value": true }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "/settings/calls.no_answer_timeout_s",
            json!({ "val": 40 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "/settings/auth.digest_algorithms",
            json!({ "value": "MD5,SHA-1" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "/settings/no.such.key",
            json!({ "value": 1 }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let r = a.api("PUT", p, k, Some(b.clone())).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{p} {b}");
    }
    assert_eq!(
        a.api("GET", "/settings/no.such.key", k, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(snapshot(&a).await, before);

    let r = a
        .api(
            "PUT",
            "/settings/auth.digest_algorithms",
            k,
            Some(json!({ "value": "sha-256,md5" })),
        )
        .await;
    assert_eq!(r.json()["value"], "SHA-256,MD5");
    let r = a
        .api("DELETE", "/settings/calls.no_answer_timeout_s", k, None)
        .await;
    assert_eq!(
        (r.json()["value"].clone(), r.json()["is_default"].clone()),
        (json!(30), json!(true))
    );
    assert_eq!(
        a.get("/settings/calls.no_answer_timeout_s").await["value"],
        30
    );
}

#[tokio::test]
async fn backup_download_and_restore() {
    let a = app().await;
    let k = Some(a.full.as_str());
    a.api(
        "POST",
        "/extensions",
        k,
        Some(json!({ "number": "1001", "display_name": "Kept" })),
    )
    .await;
    let r = a.api("GET", "/backup", k, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("denwa-backup-")
    );
    let archive = r.body.clone();
    assert!(archive.len() > 512);

    a.api("DELETE", "/extensions/1001", k, None).await;
    a.api("POST", "/extensions", k, Some(json!({ "number": "1002" })))
        .await;
    let before = snapshot(&a).await;

    // Refused files change nothing.
    // Change a byte of table content (tar padding is not covered by the checksums).
    let mut corrupt = archive.clone();
    let at = corrupt
        .windows(4)
        .position(|w| w == b"Kept")
        .expect("row in archive");
    corrupt[at] = b'k';
    for body in [
        Vec::new(),
        b"not a backup".to_vec(),
        corrupt,
        archive[..archive.len() / 3].to_vec(),
    ] {
        let r = a
            .raw(
                "POST",
                "/backup/restore",
                &a.full,
                Some("application/octet-stream"),
                body,
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "backup_rejected"),
            "{}",
            r.text()
        );
    }
    assert_eq!(snapshot(&a).await, before);

    let r = a
        .raw(
            "POST",
            "/backup/restore",
            &a.full,
            Some("application/octet-stream"),
            archive,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["restored"], true);
    let l = a.get("/extensions").await;
    let numbers: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1001"]);
    assert_eq!(l["items"][0]["display_name"], "Kept");
}

#[tokio::test]
async fn administrators_and_api_keys() {
    let a = app().await;
    let k = Some(a.full.as_str());
    let r = a
        .api(
            "POST",
            "/admins",
            k,
            Some(json!({ "username": "alice", "password": "correct horse", "role": "admin" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["role"], "admin");
    assert!(r.json().get("password_hash").is_none());

    let before = snapshot(&a).await;
    for (m, p, b, status, code) in [
        (
            "POST",
            "/admins",
            Some(json!({ "username": "alice", "password": "correct horse", "role": "admin" })),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "POST",
            "/admins",
            Some(json!({ "username": "bob", "password": "short", "role": "admin" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/admins",
            Some(json!({ "username": "bob", "password": "correct horse", "role": "root" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/admins",
            Some(json!({ "username": "b o b", "password": "correct horse", "role": "viewer" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/admins",
            Some(json!({ "username": "bob" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "DELETE",
            "/admins/nobody",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "PUT",
            "/admins/alice/password",
            Some(json!({ "password": "short" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PUT",
            "/admins/nobody/password",
            Some(json!({ "password": "long enough pw" })),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/api-keys",
            Some(json!({ "name": "", "scope": "read" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api-keys",
            Some(json!({ "name": "ci", "scope": "admin" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "DELETE",
            "/api-keys/9999",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            "/api-keys/x",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let r = a.api(m, p, k, b.clone()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{m} {p} {b:?}: {}",
            r.text()
        );
    }
    assert_eq!(snapshot(&a).await, before);

    let r = a
        .api(
            "PUT",
            "/admins/alice/password",
            k,
            Some(json!({ "password": "battery staple" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(matches!(
        a.store
            .verify_admin("alice", "battery staple", Utc::now())
            .await
            .unwrap(),
        store::AdminLogin::Ok(_)
    ));
    let r = a.api("DELETE", "/admins/alice", k, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(a.get("/admins").await["total"], 0);

    // A new key works at once and stops working when revoked.
    let r = a
        .api(
            "POST",
            "/api-keys",
            k,
            Some(json!({ "name": "ci", "scope": "read" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let id = r.json()["key"]["id"].as_i64().unwrap();
    assert_eq!(
        a.api("GET", "/calls", Some(&token), None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        a.api("DELETE", &format!("/api-keys/{id}"), k, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.api("GET", "/calls", Some(&token), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let listed = a.get("/api-keys").await;
    assert!(
        listed.to_string().find(&token).is_none(),
        "tokens are never listed"
    );
}

/// Every operation the document lists exists on the server (no 405, no fallback 404), and the
/// document lists exactly the operations this test knows the router has.
#[tokio::test]
async fn openapi_matches_routes() {
    let a = app().await;
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(m) {
                ops.push(format!("{} {path}", m.to_uppercase()));
                assert!(op["responses"].get("401").is_some(), "{m} {path}");
                for r in op["responses"].as_object().unwrap().values() {
                    if let Some(s) = r.pointer("/content/application~1json/schema/$ref") {
                        let name = s.as_str().unwrap().rsplit('/').next().unwrap();
                        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
                    }
                }
            }
        }
    }
    ops.sort();
    let mut expected = vec![
        "GET /status",
        "GET /extensions",
        "POST /extensions",
        "GET /extensions/{number}",
        "PATCH /extensions/{number}",
        "DELETE /extensions/{number}",
        "POST /extensions/{number}/password",
        "GET /registrations",
        "GET /calls",
        "DELETE /calls/{id}",
        "GET /cdrs",
        "GET /cdrs.csv",
        "GET /settings",
        "GET /settings/{key}",
        "PUT /settings/{key}",
        "DELETE /settings/{key}",
        "GET /backup",
        "POST /backup/restore",
        "GET /admins",
        "POST /admins",
        "DELETE /admins/{username}",
        "PUT /admins/{username}/password",
        "GET /api-keys",
        "POST /api-keys",
        "DELETE /api-keys/{id}",
        "GET /trunks",
        "POST /trunks",
        "GET /trunks/status",
        "GET /trunks/{name}",
        "PUT /trunks/{name}",
        "DELETE /trunks/{name}",
        "GET /routes",
        "POST /routes",
        "GET /routes/{name}",
        "PUT /routes/{name}",
        "DELETE /routes/{name}",
        "GET /dids",
        "POST /dids",
        "GET /dids/{pattern}",
        "PUT /dids/{pattern}",
        "DELETE /dids/{pattern}",
        "GET /outbound",
        "PUT /outbound",
        "GET /license",
        "PUT /license",
        "GET /reports/calls",
        "GET /reports/calls.csv",
        "GET /reports/hours",
        "GET /reports/today",
        "GET /ivrs",
        "POST /ivrs",
        "GET /ivrs/{name}",
        "PUT /ivrs/{name}",
        "DELETE /ivrs/{name}",
        "GET /conferences",
        "POST /conferences",
        "GET /conferences/{number}",
        "PUT /conferences/{number}",
        "DELETE /conferences/{number}",
        "PUT /conferences/{number}/participants/{call}/mute",
        "GET /conferences/{number}/participants",
        "DELETE /conferences/{number}/participants/{call}",
        "GET /backup/remote",
        "POST /backup/remote/pair",
        "DELETE /backup/remote/pair",
        "PUT /backup/remote/schedule",
        "POST /backup/remote/ship",
        "POST /backup/remote/restore",
        "GET /backup/server",
        "POST /backup/server/codes",
        "PUT /backup/server/keep",
        "DELETE /backup/server/peers/{id}",
        "GET /prompts",
        "GET /prompts/{lang}/{id}",
        "PUT /prompts/{lang}/{id}",
        "DELETE /prompts/{lang}/{id}",
        "GET /prompts/{lang}/{id}/audio",
        "GET /moh",
        "POST /moh/{class}",
        "DELETE /moh/{class}",
        "DELETE /moh/{class}/{file}",
        "GET /moh/{class}/{file}/audio",
        "GET /custom-prompts",
        "GET /custom-prompts/{name}",
        "PUT /custom-prompts/{name}",
        "PATCH /custom-prompts/{name}",
        "DELETE /custom-prompts/{name}",
        "GET /custom-prompts/{name}/audio",
        "GET /cluster",
        "POST /cluster/switchover",
        "GET /groups",
        "POST /groups",
        "GET /groups/{name}",
        "PUT /groups/{name}",
        "DELETE /groups/{name}",
        "GET /pages",
        "POST /pages",
        "GET /pages/{name}",
        "PUT /pages/{name}",
        "DELETE /pages/{name}",
        "GET /extensions/{number}/forwarding",
        "PUT /extensions/{number}/forwarding",
        "GET /recordings",
        "GET /recordings/{id}",
        "GET /recordings/{id}/audio",
        "GET /recording-policies",
        "PUT /recording-policies/{kind}/{name}",
        "GET /recording-settings",
        "PUT /recording-settings",
        "GET /subscriptions",
        "GET /tenant-settings",
        "PUT /tenant-settings",
        "GET /tenant-settings/{key}",
        "PUT /tenant-settings/{key}",
        "DELETE /tenant-settings/{key}",
        "GET /feature-codes",
        "PUT /feature-codes/{feature}",
        "DELETE /feature-codes/{feature}",
        "GET /timeconds",
        "POST /timeconds",
        "GET /timeconds/{name}",
        "PUT /timeconds/{name}",
        "DELETE /timeconds/{name}",
        "PUT /timeconds/{name}/mode",
        "GET /holiday-calendar",
        "PUT /holiday-calendar",
        "POST /holiday-calendar/import",
        "GET /pickup-groups",
        "GET /extensions/{number}/pickup-groups",
        "PUT /extensions/{number}/pickup-groups",
        "POST /calls/{id}/transfer",
        "GET /cdrs/{id}/events",
        "GET /voicemail/{number}",
        "PUT /voicemail/{number}",
        "PUT /voicemail/{number}/pin",
        "GET /voicemail/{number}/messages",
        "PUT /voicemail/{number}/messages/{id}",
        "DELETE /voicemail/{number}/messages/{id}",
        "GET /voicemail/{number}/messages/{id}/audio",
        "GET /voicemail/{number}/greetings",
        "PUT /voicemail/{number}/greetings/{kind}",
        "DELETE /voicemail/{number}/greetings/{kind}",
        "GET /voicemail/{number}/greetings/{kind}/audio",
        "GET /park",
        "PUT /park",
        "GET /park/calls",
    ];
    expected.sort();
    assert_eq!(ops, expected);
    for op in &ops {
        let (m, p) = op.split_once(' ').unwrap();
        let p = p
            .replace("{number}", "7777")
            .replace("{id}", "7777")
            .replace("{key}", "calls.no_answer_timeout_s")
            .replace("{username}", "nobody")
            .replace("{name}", "nobody")
            .replace("{pattern}", "0312345678")
            .replace("{lang}", "en")
            .replace("{class}", "nobody")
            .replace("{file}", "nobody.wav")
            .replace("{kind}", "extension");
        // A read key: writes stop at the scope check, reads run; neither may be unrouted.
        let r = a.api(m, &p, Some(&a.read), None).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{op}");
        if r.status == StatusCode::NOT_FOUND {
            assert_ne!(r.json()["error"]["message"], "no such API endpoint", "{op}");
        }
    }
}

async fn get_plain(a: &App, path: &str) -> Resp {
    a.send(
        axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn healthz_and_metrics() {
    let a = app().await;
    let r = get_plain(&a, "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["sip_core"], "running");
    assert_eq!(h["sip"], json!([common::FAKE_SIP]));
    assert!(h["schema_version"].as_i64().unwrap() > 0, "{h}");
    assert!(h.get("problems").is_none(), "{h}");
    let text = get_plain(&a, "/metrics").await.text();
    for m in [
        common::FAKE_METRIC,
        "denwa_store_commits_total",
        "denwa_store_writes_waiting 0",
        "denwa_up 1",
        "denwa_sip_core_up 1",
    ] {
        assert!(text.contains(m), "{m} missing:\n{text}");
    }
}

#[tokio::test]
async fn healthz_is_503_when_the_sip_core_is_dead() {
    let a = app().await;
    a.control.set_alive(false);
    let r = get_plain(&a, "/healthz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let h = r.json();
    assert_eq!(h["status"], "unavailable");
    assert_eq!(h["sip_core"], "stopped");
    assert_eq!(h["problems"], json!(["sip core: not running"]));
    assert!(
        get_plain(&a, "/metrics")
            .await
            .text()
            .contains("denwa_sip_core_up 0")
    );
    // Back to 200 once the core runs again.
    a.control.set_alive(true);
    assert_eq!(get_plain(&a, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn healthz_is_503_when_the_database_does_not_answer() {
    let a = app().await;
    a.store.close().await;
    let r = get_plain(&a, "/healthz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let h = r.json();
    assert_eq!(h["status"], "unavailable");
    assert_eq!(h["sip_core"], "running");
    let problems = h["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{h}");
    assert!(
        problems[0].as_str().unwrap().starts_with("database: "),
        "{h}"
    );
    // Both at once: both reasons.
    a.control.set_alive(false);
    let h = get_plain(&a, "/healthz").await.json();
    assert_eq!(h["problems"].as_array().unwrap().len(), 2, "{h}");
}
