//! Licences through the API and the panel: `GET/PUT /api/v1/license`, refusals that change
//! nothing, the extension limit, read-only configuration after expiry, the panel's licence page
//! (upload form, banners). Licences are minted here with the TEST key (`issuer` feature).

mod common;

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeDelta, Utc};
use common::{App, Resp, app};
use license::issuer::{SigningKey, issue, test_signing_key};
use license::{License, LicenseKind, Limits, Topology};
use serde_json::json;
use web::license::Licensing;

/// The test app with real licensing in its data dir, in dev mode (the TEST key is trusted).
async fn licensed_app() -> App {
    licensed_app_in(app().await).await
}

fn terms(node: &str, extensions: u32, days: (i64, i64)) -> License {
    let now = Utc::now();
    License {
        id: format!("T-{extensions}-{}", days.1),
        customer: "Test KK".into(),
        kind: LicenseKind::Standard,
        topology: Topology::Standalone,
        nodes: vec![node.to_string()],
        limits: Limits {
            extensions: Some(extensions),
            concurrent_calls: None,
            tenants: Some(1),
            trunks: Some(4),
        },
        features: Default::default(),
        valid_from: now + TimeDelta::days(days.0),
        valid_until: now + TimeDelta::days(days.1),
        issued_at: now,
    }
}

fn mint(t: &License) -> String {
    issue(t, &test_signing_key()).expect("sane terms")
}

async fn put(a: &App, key: &str, text: &str) -> Resp {
    a.send(
        Request::put("/api/v1/license")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(text.to_string()))
            .unwrap(),
    )
    .await
}

fn installed(a: &App) -> Option<Vec<u8>> {
    std::fs::read(a.data.path().join(web::license::LICENSE_FILE)).ok()
}

#[tokio::test]
async fn get_shows_the_free_allowance_node_id_and_usage() {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    assert!(node.starts_with("dn-"), "{node}");
    assert_eq!(
        std::fs::read_to_string(a.data.path().join("node-id"))
            .unwrap()
            .trim(),
        node
    );
    let v = a.api("GET", "/license", Some(&a.read), None).await.json();
    assert_eq!(v["node_id"], json!(node));
    assert_eq!(v["free"], json!(true));
    assert_eq!(v["dev_mode"], json!(true));
    assert_eq!(v["limits"]["extensions"], json!(25));
    assert_eq!(v["usage"]["extensions"], json!(0));
    assert_eq!(v["usage"]["concurrent_calls"], json!(0));
    assert!(
        v["summary"].as_str().unwrap().contains("free allowance"),
        "{v}"
    );
}

#[tokio::test]
async fn put_installs_a_valid_licence_and_refusals_change_nothing() {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    let good = mint(&terms(&node, 100, (-1, 365)));
    // A read key may not install.
    let r = put(&a, &a.read, &good).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Each refusal: 422 with the reason's code, nothing stored, still the free allowance.
    let mut tampered = good.clone().into_bytes();
    // A character in the middle of the first base64 line of the body: the payload changes.
    let begin = good.find("-----BEGIN").unwrap();
    let at = begin + good[begin..].find("\n\n").unwrap() + 7;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let other_vendor = issue(&terms(&node, 100, (-1, 365)), &SigningKey::generate()).unwrap();
    for (text, code) in [
        ("garbage".to_string(), "malformed"),
        (String::from_utf8(tampered).unwrap(), "bad_signature"),
        (mint(&terms(&node, 100, (-30, -1))), "expired"),
        (mint(&terms(&node, 100, (2, 30))), "not_yet_valid"),
        (mint(&terms("dn-someone-else", 100, (-1, 30))), "wrong_node"),
        (other_vendor, "unknown_key"),
    ] {
        let r = put(&a, &a.full, &text).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}: {}",
            r.text()
        );
        assert_eq!(r.code(), code, "{}", r.text());
        assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
        assert_eq!(installed(&a), None, "{code}");
        let v = a.api("GET", "/license", Some(&a.read), None).await.json();
        assert_eq!(v["free"], json!(true), "{code}");
    }
    let r = put(&a, &a.full, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        installed(&a).as_deref(),
        Some(good.as_bytes()),
        "byte for byte"
    );
    let v = a.api("GET", "/license", Some(&a.read), None).await.json();
    assert_eq!(v["free"], json!(false));
    assert_eq!(v["license"]["license"]["id"], json!("T-100-365"));
    assert_eq!(v["limits"]["extensions"], json!(100));
    assert_eq!(v["limits"]["concurrent_calls"], json!("unlimited"));
    assert_eq!(v["license"]["test_key"], json!(true));
    // A refusal after an install leaves the installed one in force.
    let r = put(&a, &a.full, "garbage").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(installed(&a).as_deref(), Some(good.as_bytes()));
}

/// A licensed app allowing `limit` extensions, with extensions 201 and 202 created.
async fn licensed_with_two_extensions(limit: u32) -> App {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    assert_eq!(
        put(&a, &a.full, &mint(&terms(&node, limit, (-1, 365))))
            .await
            .status,
        StatusCode::OK
    );
    for n in ["201", "202"] {
        let r = a
            .api(
                "POST",
                "/extensions",
                Some(&a.full),
                Some(json!({ "number": n })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    a
}

#[tokio::test]
async fn the_extension_limit_is_enforced_with_a_message_naming_it() {
    let a = licensed_with_two_extensions(2).await;
    let r = a
        .api(
            "POST",
            "/extensions",
            Some(&a.full),
            Some(json!({ "number": "203" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "license_limit");
    assert_eq!(
        r.json()["error"]["message"],
        json!("the licence allows 2 extensions; 2 exist")
    );
    let v = a.api("GET", "/license", Some(&a.read), None).await.json();
    assert_eq!(v["usage"]["extensions"], json!(2));
}

#[tokio::test]
async fn concurrent_creates_at_the_limit_cannot_pass_it() {
    let a = licensed_with_two_extensions(3).await;
    // Six creates at once for the one free place: each counts 2 before any inserts, so only
    // the store's check in the insert's transaction keeps the third the last.
    let post = |n: &str| {
        a.api(
            "POST",
            "/extensions",
            Some(&a.full),
            Some(json!({ "number": n })),
        )
    };
    let rs = tokio::join!(
        post("301"),
        post("302"),
        post("303"),
        post("304"),
        post("305"),
        post("306")
    );
    let rs = [rs.0, rs.1, rs.2, rs.3, rs.4, rs.5];
    let created = rs
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly the limit");
    for r in rs.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert_eq!(r.code(), "license_limit");
    }
    let v = a.api("GET", "/license", Some(&a.read), None).await.json();
    assert_eq!(v["usage"]["extensions"], json!(3));
}

/// Writes an expired licence straight into the data dir (as if it had run out) and reopens.
async fn expired_app() -> (App, String) {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    std::fs::write(
        a.data.path().join(web::license::LICENSE_FILE),
        mint(&terms(&node, 100, (-60, -1))),
    )
    .unwrap();
    (licensed_app_in(a).await, node)
}

async fn licensed_app_in(mut a: App) -> App {
    let lic = Licensing::open(a.data.path(), true).expect("licensing");
    let info = a.web.info().clone();
    a.web = web::Web::new_licensed(
        a.control.clone(),
        a.store.clone(),
        Instant::now(),
        info,
        lic,
    );
    a.router = web::router(a.web.clone());
    a
}

#[tokio::test]
async fn after_expiry_configuration_is_read_only_until_a_new_licence() {
    let (a, node) = expired_app().await;
    let v = a.api("GET", "/license", Some(&a.read), None).await.json();
    assert_eq!(v["status"]["status"], json!("expired"));
    assert_eq!(v["config_writable"], json!(false));
    for (m, p, b) in [
        ("POST", "/extensions", Some(json!({ "number": "301" }))),
        (
            "PUT",
            "/settings/calls.no_answer_timeout_s",
            Some(json!({ "value": 30 })),
        ),
        ("DELETE", "/extensions/301", None),
    ] {
        let r = a.api(m, p, Some(&a.full), b).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}");
        assert_eq!(r.code(), "license_read_only", "{m} {p}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{}",
            r.text()
        );
    }
    // Reads, hang-ups and API keys still work.
    assert_eq!(
        a.api("GET", "/extensions", Some(&a.read), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        a.api("DELETE", "/calls/42", Some(&a.full), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = a
        .api(
            "POST",
            "/api-keys",
            Some(&a.full),
            Some(json!({ "name": "k", "scope": "read" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // A new licence makes it writable again, at once.
    let r = put(&a, &a.full, &mint(&terms(&node, 100, (-1, 365)))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = a
        .api(
            "POST",
            "/extensions",
            Some(&a.full),
            Some(json!({ "number": "301" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn reload_picks_up_a_file_installed_by_another_process() {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    assert!(!a.web.licensing().reload_if_changed(Utc::now()));
    // What `denwa license install` does from another process: a new file in place.
    let other = Licensing::open(a.data.path(), true).unwrap();
    let mut t = terms(&node, 100, (-1, 365));
    t.topology = Topology::ActiveStandby;
    other.install(mint(&t).as_bytes(), Utc::now()).unwrap();
    assert!(a.web.licensing().entitlement().is_free());
    assert!(a.web.licensing().reload_if_changed(Utc::now()));
    assert_eq!(
        a.web.licensing().entitlement().topology(),
        Topology::ActiveStandby
    );
}

// ----- panel -----

/// A signed-in administrator's cookies.
async fn sign_in(a: &App) -> String {
    a.store
        .create_admin("alice", "correct horse", store::AdminRole::Admin)
        .await
        .unwrap();
    let r = a
        .send(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    let pre = cookies(&r);
    let token = csrf(&r.text());
    let r = a
        .send(
            Request::post("/login")
                .header(header::COOKIE, &pre)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "csrf={token}&username=alice&password=correct%20horse"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    cookies(&r)
}

fn cookies(r: &Resp) -> String {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    page[at..at + 64].to_string()
}

async fn get_page(a: &App, c: &str, path: &str) -> Resp {
    a.send(
        Request::get(path)
            .header(header::COOKIE, c)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn get_page_ja(a: &App, c: &str, path: &str) -> Resp {
    a.send(
        Request::get(path)
            .header(header::COOKIE, c)
            .header(header::ACCEPT_LANGUAGE, "ja")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn upload(a: &App, c: &str, token: &str, text: &str) -> Resp {
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"l.lic\"\r\nContent-Type: text/plain\r\n\r\n{text}\r\n--XyZ--\r\n"
    );
    a.send(
        Request::post("/license")
            .header(header::COOKIE, c)
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn panel_licence_page_upload_form_and_banners() {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    let c = sign_in(&a).await;
    // Free allowance: the dashboard says so; dev mode has its banner everywhere.
    let dash = get_page(&a, &c, "/").await.text();
    assert!(dash.contains("id=\"license-free\""), "{dash}");
    assert!(dash.contains("id=\"license-dev\""), "{dash}");
    assert!(dash.contains("href=\"/license\""));
    let p = get_page(&a, &c, "/license").await;
    assert_eq!(p.status, StatusCode::OK);
    let page = p.text();
    assert!(page.contains(&node), "{page}");
    assert!(page.contains("id=\"license-upload\""));
    assert!(page.contains("0 / 25"), "{page}");
    let token = csrf(&page);
    // A refused file: the reason, nothing changed.
    let r = upload(&a, &c, &token, &mint(&terms("dn-elsewhere", 50, (-1, 30)))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let t = r.text();
    assert!(t.contains("id=\"license-refused\""), "{t}");
    assert!(t.contains("dn-elsewhere"), "{t}");
    assert_eq!(installed(&a), None);
    // A wrong CSRF token changes nothing either.
    let good = mint(&terms(&node, 50, (-1, 20)));
    assert_eq!(
        upload(&a, &c, "bad", &good).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(installed(&a), None);
    // Accepted: installed, shown, and 20 days left warns.
    let r = upload(&a, &c, &token, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = r.text();
    assert!(t.contains("id=\"license-installed\""), "{t}");
    assert!(t.contains("T-50-20"), "{t}");
    assert!(t.contains("id=\"license-expiring\""), "{t}");
    assert!(!t.contains("id=\"license-free\""), "{t}");
    assert_eq!(installed(&a).as_deref(), Some(good.as_bytes()));
    // Japanese.
    let ja = get_page_ja(&a, &c, "/license").await.text();
    assert!(ja.contains("ライセンス"), "{ja}");
}

#[tokio::test]
async fn panel_refuses_changes_after_expiry_and_the_26th_extension() {
    let (a, _) = expired_app().await;
    let c = sign_in(&a).await;
    let page = get_page(&a, &c, "/extensions").await.text();
    assert!(page.contains("id=\"license-expired\""), "{page}");
    let token = csrf(&page);
    let r = a
        .send(
            Request::post("/extensions")
                .header(header::COOKIE, &c)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={token}&number=401")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("read-only"), "{}", r.text());

    // Free allowance: 25 extensions, then the panel form names the limit.
    let a = licensed_app().await;
    let c = sign_in(&a).await;
    let t = a.store.default_tenant().await.unwrap().id;
    for n in 0..25 {
        a.store
            .create_extension(
                t,
                store::NewExtension {
                    number: format!("{}", 500 + n),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let token = csrf(&get_page(&a, &c, "/extensions").await.text());
    let r = a
        .send(
            Request::post("/extensions")
                .header(header::COOKIE, &c)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={token}&number=600")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let t = r.text();
    assert!(
        t.contains("the free allowance (no licence installed) allows 25 extensions; 25 exist"),
        "{t}"
    );
}

// ----- the backup server page, gated by the topology -----

async fn post_form(a: &App, c: &str, path: &str, body: &str) -> Resp {
    a.send(
        Request::post(path)
            .header(header::COOKIE, c)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn backup_server_page_needs_the_standalone_backup_topology() {
    // This node also runs the backup server role (the page then has both halves).
    let mut a = licensed_app().await;
    let mut info = a.web.info().clone();
    info.backup_listen = Some("127.0.0.1:8443".into());
    a.web = web::Web::new_licensed(
        a.control.clone(),
        a.store.clone(),
        Instant::now(),
        info,
        a.web.licensing().clone(),
    );
    a.router = web::router(a.web.clone());
    let node = a.web.licensing().node_id().to_string();
    let c = sign_in(&a).await;
    let p = get_page(&a, &c, "/backup/remote").await;
    assert_eq!(p.status, StatusCode::OK);
    let page = p.text();
    assert!(page.contains("id=\"backup-licence\""), "{page}");
    assert!(page.contains("standalone-backup"), "{page}");
    assert!(page.contains("id=\"backup-not-paired\""), "{page}");
    let token = csrf(&page);
    let r = post_form(
        &a,
        &c,
        "/backup/remote/pair",
        &format!("csrf={token}&address=127.0.0.1%3A1&code=ABCD-EFGH-JKMN-PQRS"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("standalone-backup"));
    let ja = get_page_ja(&a, &c, "/backup/remote").await.text();
    assert!(ja.contains("バックアップサーバー"), "{ja}");
    assert!(ja.contains("現在のライセンスでは利用できません"), "{ja}");

    // With the topology: pairing is attempted, and its failures are precise.
    let mut t = terms(&node, 50, (-1, 30));
    t.topology = Topology::StandaloneBackup;
    a.web
        .licensing()
        .install(mint(&t).as_bytes(), Utc::now())
        .expect("installed");
    let page = get_page(&a, &c, "/backup/remote").await.text();
    assert!(!page.contains("id=\"backup-licence\""), "{page}");
    let r = post_form(
        &a,
        &c,
        "/backup/remote/pair",
        &format!("csrf={token}&address=127.0.0.1%3A1&code=nope"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("not a pairing code"), "{}", r.text());
    let r = post_form(
        &a,
        &c,
        "/backup/remote/pair",
        &format!("csrf={token}&address=127.0.0.1%3A1&code=ABCD-EFGH-JKMN-PQRS"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("unreachable"), "{}", r.text());
    assert!(!a.store.ship_state().await.unwrap().paired());
    let r = post_form(
        &a,
        &c,
        "/backup/remote/schedule",
        &format!("csrf={token}&at=25%3A00"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = post_form(
        &a,
        &c,
        "/backup/remote/schedule",
        &format!("csrf={token}&at=02%3A30"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(a.store.ship_state().await.unwrap().daily_at, "02:30");

    // Failing shipments are alerted on the dashboard, which also compares today with last week.
    a.store
        .record_ship_attempt(Utc::now(), Err("backup server unreachable"))
        .await
        .unwrap();
    let dash = get_page(&a, &c, "/").await.text();
    assert!(dash.contains("id=\"dash-backup-failing\""), "{dash}");
    assert!(dash.contains("backup server unreachable"), "{dash}");
    assert!(dash.contains("id=\"dash-today\""), "{dash}");
    assert!(dash.contains("id=\"today-chart\""), "{dash}");

    // As a backup server the page makes one-time codes and lists paired nodes and uploads.
    let r = post_form(&a, &c, "/backup/remote/code", &format!("csrf={token}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.text();
    let at = t.find("id=\"pairing-code\">").expect("a code shown") + 18;
    let code = &t[at..at + 19];
    assert!(backup::proto::normalize_code(code).is_some(), "{code}");
    assert_eq!(a.store.live_pair_codes(Utc::now()).await.unwrap().len(), 1);
    assert!(t.contains("id=\"rejected-total\""), "{t}");

    // A paired node that has sent nothing for more than a day is alerted on the dashboard.
    let then = Utc::now() - TimeDelta::days(2);
    a.store
        .create_pair_code("old", then, then + TimeDelta::minutes(15))
        .await
        .unwrap();
    a.store
        .pair_peer("old", "pbx1", "dn-x", "tokhash", then)
        .await
        .unwrap()
        .expect("paired");
    let dash = get_page(&a, &c, "/").await.text();
    assert!(dash.contains("id=\"dash-backup-stale\""), "{dash}");
    a.store
        .add_generation(
            store::backupsrv::NewGeneration {
                source: "pbx1".into(),
                ok: true,
                file: "g.tar".into(),
                ..Default::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let dash = get_page(&a, &c, "/").await.text();
    assert!(!dash.contains("id=\"dash-backup-stale\""), "{dash}");
    let page = get_page(&a, &c, "/backup/remote").await.text();
    assert!(page.contains("id=\"received-generations\""), "{page}");
    assert!(page.contains("pbx1"), "{page}");
}

/// The PBX's panel against a real backup server (in this process, on a loopback port): pair
/// with a code, back up now, lose an extension and a prompt file, restore from the server's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_panel_pairs_ships_and_restores_against_a_real_backup_server() {
    let a = licensed_app().await;
    let node = a.web.licensing().node_id().to_string();
    let mut t = terms(&node, 50, (-1, 30));
    t.topology = Topology::StandaloneBackup;
    a.web
        .licensing()
        .install(mint(&t).as_bytes(), Utc::now())
        .expect("installed");
    let srv_dir = tempfile::tempdir().unwrap();
    let srv_store = store::Store::open(
        srv_dir.path().join("bak.db").to_str().unwrap(),
        store::OpenOptions::default(),
    )
    .await
    .unwrap();
    let (addr, fp, task) = backup::server::start(
        "127.0.0.1:0".parse().unwrap(),
        backup::server::Config {
            store: srv_store.clone(),
            dir: backup::server::dir_in(srv_dir.path()),
            name: "bak1".into(),
            gate: std::sync::Arc::new(|| Ok(())),
            max_upload: backup::server::DEFAULT_MAX_UPLOAD,
        },
    )
    .await
    .unwrap();
    let (code, _) = backup::server::create_code(&srv_store).await.unwrap();

    let c = sign_in(&a).await;
    let token = csrf(&get_page(&a, &c, "/backup/remote").await.text());
    let r = post_form(
        &a,
        &c,
        "/backup/remote/pair",
        &format!("csrf={token}&address={addr}&code={code}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = r.text();
    assert!(t.contains("id=\"backup-paired\""), "{t}");
    assert!(t.contains(&fp), "the pinned fingerprint is shown: {t}");

    a.store
        .create_extension(
            1,
            store::NewExtension {
                number: "2001".into(),
                password: Some("Kite-Runner-55x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let prompt = a.data.path().join("prompts/en/greeting.wav");
    std::fs::create_dir_all(prompt.parent().unwrap()).unwrap();
    std::fs::write(&prompt, b"RIFF-test-prompt").unwrap();
    let r = post_form(&a, &c, "/backup/remote/ship", &format!("csrf={token}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("id=\"backup-ok\""));
    let gens = srv_store.list_generations(true, 10).await.unwrap();
    assert_eq!(gens.len(), 1);

    a.store.delete_extension(1, "2001").await.unwrap();
    std::fs::remove_file(&prompt).unwrap();
    let page = get_page(&a, &c, "/backup/remote").await.text();
    assert!(page.contains("id=\"remote-generations\""), "{page}");
    let action = format!("/backup/remote/restore/{}", gens[0].id);
    assert!(page.contains(&action), "{page}");
    let r = post_form(&a, &c, &action, &format!("csrf={token}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("id=\"backup-ok\""), "{}", r.text());
    assert!(a.store.extension(1, "2001").await.unwrap().is_some());
    assert_eq!(std::fs::read(&prompt).unwrap(), b"RIFF-test-prompt");
    assert!(
        a.store.ship_state().await.unwrap().paired(),
        "the restore keeps the pairing"
    );
    task.abort();
}
