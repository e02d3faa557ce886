//! The control panel through its HTML forms, as a browser without JavaScript would use it.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::app;
use common::browser::{Browser, csrf, enc, pairs, signed_in};

#[tokio::test]
async fn first_run_setup_link() {
    let a = app().await;
    let path = a
        .web
        .first_run_setup_path()
        .await
        .unwrap()
        .expect("no admin yet");
    let mut b = Browser::new(&a);
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.get("/setup?token=guess").await.status,
        StatusCode::NOT_FOUND
    );
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    let token = path.split_once("token=").unwrap().1.to_string();
    let pre = csrf(&page.text());
    let form = |pre: &str, p2: &str| {
        vec![
            ("csrf".to_string(), pre.to_string()),
            ("token".into(), token.clone()),
            ("username".into(), "root".into()),
            ("password".into(), "long enough pw".into()),
            ("password2".into(), p2.to_string()),
        ]
    };
    let f = form("0".repeat(64).as_str(), "long enough pw");
    let r = b.post("/setup", &pairs(&f)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Every form page rotates the pre-session token.
    let stale = form(&pre, "long enough pw");
    assert_eq!(
        b.post("/setup", &pairs(&stale)).await.status,
        StatusCode::FORBIDDEN
    );
    let f = form(&csrf(&b.get(&path).await.text()), "different pw!!");
    let r = b.post("/setup", &pairs(&f)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.store.list_admins().await.unwrap().is_empty());
    let pre = csrf(&r.text());
    let f = form(&pre, "long enough pw");
    let r = b.post("/setup", &pairs(&f)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure")
    );
    let admins = a.store.list_admins().await.unwrap();
    assert_eq!((admins.len(), admins[0].role), (1, store::AdminRole::Admin));
    let dash = b.get("/").await;
    assert!(dash.text().contains("Node status"));
    assert_eq!(dash.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(dash.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(
        dash.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // The link works once.
    assert_eq!(
        Browser::new(&a).get(&path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.web.first_run_setup_path().await.unwrap(), None);
}

#[tokio::test]
async fn setup_link_dies_when_an_admin_is_added_elsewhere() {
    let a = app().await;
    let path = a
        .web
        .first_run_setup_path()
        .await
        .unwrap()
        .expect("no admin yet");
    assert_eq!(Browser::new(&a).get(&path).await.status, StatusCode::OK);
    // As `denwa admin add` would, from another process.
    a.store
        .create_admin("cli", "long enough pw", store::AdminRole::Admin)
        .await
        .unwrap();
    assert_eq!(
        Browser::new(&a).get(&path).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn sign_in_lockout_and_sign_out() {
    let a = app().await;
    a.store
        .create_admin("alice", "correct horse", store::AdminRole::Admin)
        .await
        .unwrap();
    let mut b = Browser::new(&a);
    b.https = true;
    let mut page = b.get("/login").await;
    assert!(
        page.headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    // Without the pre-session token the form is refused outright.
    let r = b
        .post(
            "/login",
            &[("username", "alice"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    page = r;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let t = csrf(&page.text());
        page = b
            .post(
                "/login",
                &[("csrf", &t), ("username", "alice"), ("password", "wrong")],
            )
            .await;
        statuses.push(page.status);
    }
    assert_eq!(statuses[..4], [StatusCode::UNAUTHORIZED; 4]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    assert!(page.text().contains("locked"));
    // Locked: even the right password is refused.
    let t = csrf(&page.text());
    let r = b
        .post(
            "/login",
            &[
                ("csrf", &t),
                ("username", "alice"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    a.store
        .set_admin_password("alice", "correct horse")
        .await
        .unwrap();
    let t = csrf(&r.text());
    let r = b
        .post(
            "/login",
            &[
                ("csrf", &t),
                ("username", "alice"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    let dash = b.get("/").await;
    assert_eq!(dash.status, StatusCode::OK);
    let t = csrf(&dash.text());
    // Sign-out needs the session's token too.
    b.post("/logout", &[("csrf", "x")]).await;
    let kept = b.cookies.clone();
    b.post("/logout", &[("csrf", &t)]).await;
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    // The old cookie is dead on the server, not just forgotten by the browser.
    b.cookies = kept;
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn extensions_forms_csrf_and_validation() {
    let a = app().await;
    let mut b = signed_in(&a, "alice", store::AdminRole::Admin).await;
    let page = b.get("/extensions").await;
    let t = csrf(&page.text());
    let r = b
        .post("/extensions", &[("csrf", "bad"), ("number", "1001")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let tenant = a.store.default_tenant().await.unwrap().id;
    assert_eq!(a.store.count_extensions(tenant, None).await.unwrap(), 0);

    let r = b
        .post(
            "/extensions",
            &[
                ("csrf", &t),
                ("number", "1001"),
                ("display_name", "Aoki"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let html = r.text();
    let at = html.find("id=\"new-password\">").unwrap() + 18;
    let pw = &html[at..at + 16];
    let auth = a
        .store
        .extension_auth(tenant, "1001")
        .await
        .unwrap()
        .unwrap();
    let realm = a.store.default_tenant().await.unwrap().realm;
    assert_eq!(auth.ha1_md5.unwrap(), store::ha1_md5("1001", &realm, pw));
    assert!(html.contains("data-state=\"unregistered\""));

    for (num, pass, msg) in [
        ("1001", "", "already exists"),
        ("10a1", "", "0-9 * # +"),
        ("1002", "short", "at least 8"),
        ("1002", "x1002Secret", "must not contain"),
    ] {
        let r = b
            .post(
                "/extensions",
                &[("csrf", &t), ("number", num), ("password", pass)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{num}");
        assert!(r.text().contains(msg), "{num}: {msg}");
    }
    assert_eq!(a.store.count_extensions(tenant, None).await.unwrap(), 1);

    let r = b
        .post(
            "/extensions/1001",
            &[
                ("csrf", &t),
                ("display_name", "Aoki Taro"),
                ("max_contacts", "2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let e = a.store.extension(tenant, "1001").await.unwrap().unwrap();
    assert_eq!(
        (e.display_name.as_str(), e.max_contacts, e.enabled),
        ("Aoki Taro", 2, false)
    );
    let r = b
        .post(
            "/extensions/1001",
            &[
                ("csrf", &t),
                ("display_name", "x"),
                ("max_contacts", "0"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.store.extension(tenant, "1001").await.unwrap().unwrap(), e);

    let r = b.post("/extensions/1001/password", &[("csrf", &t)]).await;
    assert!(r.text().contains("id=\"new-password\""));
    let found = b.get("/extensions?q=taro").await.text();
    assert!(found.contains("data-number=\"1001\""));
    assert!(
        !b.get("/extensions?q=nobody")
            .await
            .text()
            .contains("data-number=\"1001\"")
    );
    let r = b.post("/extensions/1001/delete", &[("csrf", &t)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(a.store.count_extensions(tenant, None).await.unwrap(), 0);
    assert_eq!(
        b.get("/extensions/1001").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn viewer_is_read_only() {
    let a = app().await;
    let mut b = signed_in(&a, "vera", store::AdminRole::Viewer).await;
    let page = b.get("/extensions").await.text();
    assert!(!page.contains("id=\"new-extension\""));
    let t = csrf(&page);
    let r = b
        .post("/extensions", &[("csrf", &t), ("number", "1001")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post(
            "/settings",
            &[("csrf", &t), ("calls.no_answer_timeout_s", "40")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let tenant = a.store.default_tenant().await.unwrap().id;
    assert_eq!(a.store.count_extensions(tenant, None).await.unwrap(), 0);
    assert_eq!(
        a.store
            .setting_json(None, "calls.no_answer_timeout_s")
            .await
            .unwrap(),
        None
    );
    for p in [
        "/",
        "/calls",
        "/history",
        "/settings",
        "/backup",
        "/admins",
        "/fragments/calls",
        "/fragments/dashboard",
        "/fragments/extensions",
    ] {
        assert_eq!(b.get(p).await.status, StatusCode::OK, "{p}");
    }
    assert_eq!(
        b.get("/backup/download").await.status,
        StatusCode::FORBIDDEN
    );
    // Fragments need a session like pages do.
    for p in [
        "/fragments/calls",
        "/fragments/dashboard",
        "/fragments/extensions",
    ] {
        assert_eq!(
            Browser::new(&a).get(p).await.status,
            StatusCode::SEE_OTHER,
            "{p}"
        );
    }
}

#[tokio::test]
async fn japanese_pages_and_language_switch() {
    let a = app().await;
    let mut anon = Browser::new(&a);
    anon.lang = Some("ja-JP,ja;q=0.9,en;q=0.5");
    let p = anon.get("/login").await.text();
    assert!(
        p.contains("<html lang=\"ja\"") && p.contains("サインイン") && p.contains("ユーザー名")
    );
    let t = csrf(&p);
    let r = anon
        .post(
            "/login",
            &[("csrf", &t), ("username", "x"), ("password", "y")],
        )
        .await;
    assert!(r.text().contains("ユーザー名またはパスワードが違います"));

    let mut b = signed_in(&a, "alice", store::AdminRole::Admin).await;
    assert!(
        b.get("/extensions")
            .await
            .text()
            .contains("<html lang=\"en\"")
    );
    let r = b.get("/lang?set=ja&back=%2Fextensions").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/extensions");
    let page = b.get("/extensions").await.text();
    assert!(page.contains("<html lang=\"ja\"") && page.contains("内線を追加"));
    let t = csrf(&page);
    let r = b
        .post("/extensions", &[("csrf", &t), ("number", "abc")])
        .await;
    assert!(
        r.text()
            .contains("内線番号は 0-9 * # + の 1〜32 文字にしてください。")
    );
    for p in ["/", "/calls", "/history", "/settings", "/backup", "/admins"] {
        let html = b.get(p).await.text();
        assert!(html.contains("<html lang=\"ja\""), "{p}");
    }
    // No open redirect through the language switch.
    for back in ["//evil.example/", "https://evil.example/", "/\\evil"] {
        let r = b.get(&format!("/lang?set=en&back={}", enc(back))).await;
        assert_eq!(r.headers[header::LOCATION], "/", "{back}");
    }
}

#[tokio::test]
async fn settings_history_and_backup_forms() {
    let a = app().await;
    let mut b = signed_in(&a, "alice", store::AdminRole::Admin).await;
    let page = b.get("/settings").await.text();
    assert!(page.contains("applies after a restart"));
    let t = csrf(&page);
    let r = b
        .post(
            "/settings",
            &[
                ("csrf", &t),
                ("calls.no_answer_timeout_s", "40"),
                ("registrar.min_expires_s", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        a.store
            .setting_json(None, "calls.no_answer_timeout_s")
            .await
            .unwrap(),
        None,
        "all or nothing"
    );
    let r = b
        .post(
            "/settings",
            &[
                ("csrf", &t),
                ("calls.no_answer_timeout_s", "40"),
                ("registrar.min_expires_s", "120"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        a.store
            .setting::<u64>(None, "calls.no_answer_timeout_s")
            .await
            .unwrap(),
        Some(40)
    );

    assert_eq!(
        b.get("/history?from=someday").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = b.get("/history.csv?disposition=ANSWERED").await;
    assert!(r.text().starts_with("id,start_time"));

    let r = b.get("/backup/download").await;
    assert_eq!(r.status, StatusCode::OK);
    let archive = r.body.clone();
    let tenant = a.store.default_tenant().await.unwrap().id;
    a.store
        .create_extension(
            tenant,
            store::NewExtension {
                number: "1009".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let multipart = |csrf: &str, file: &[u8]| {
        let mut body = Vec::new();
        body.extend_from_slice(format!("--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.tar\"\r\nContent-Type: application/x-tar\r\n\r\n").as_bytes());
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    };
    let post = |body: Vec<u8>| {
        (
            Request::post("/backup/restore")
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ"),
            Body::from(body),
        )
    };
    let (rq, body) = post(multipart("bad", &archive));
    assert_eq!(b.send(rq, body).await.status, StatusCode::FORBIDDEN);
    let (rq, body) = post(multipart(&t, b"garbage"));
    let r = b.send(rq, body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"restore-error\""));
    assert!(a.store.extension(tenant, "1009").await.unwrap().is_some());
    let (rq, body) = post(multipart(&t, &archive));
    let r = b.send(rq, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(a.store.extension(tenant, "1009").await.unwrap().is_none());
}

#[tokio::test]
async fn admins_and_keys_forms() {
    let a = app().await;
    let mut b = signed_in(&a, "alice", store::AdminRole::Admin).await;
    let t = csrf(&b.get("/admins").await.text());
    let r = b
        .post(
            "/admins",
            &[
                ("csrf", &t),
                ("username", "bob"),
                ("password", "short"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/admins",
            &[
                ("csrf", &t),
                ("username", "bob"),
                ("password", "long enough pw"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        a.store.admin("bob").await.unwrap().unwrap().role,
        store::AdminRole::Viewer
    );
    let r = b.post("/admins/alice/delete", &[("csrf", &t)]).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no self-deletion"
    );
    let r = b
        .post(
            "/api-keys",
            &[("csrf", &t), ("name", "ci"), ("scope", "full")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let html = r.text();
    let at = html.find("id=\"new-token\">").unwrap() + 15;
    let token = &html[at..at + 44];
    assert_eq!(
        a.api("GET", "/calls", Some(token), None).await.status,
        StatusCode::OK
    );
    let r = b.post("/admins/bob/delete", &[("csrf", &t)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(a.store.admin("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn anyone_changes_their_own_password() {
    let a = app().await;
    let mut b = signed_in(&a, "vera", store::AdminRole::Viewer).await;
    let t = csrf(&b.get("/admins").await.text());
    let r = b
        .post(
            "/account/password",
            &[
                ("csrf", &t),
                ("current", "wrong"),
                ("password", "new long pass"),
                ("password2", "new long pass"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/account/password",
            &[
                ("csrf", &t),
                ("current", "correct horse"),
                ("password", "new long pass"),
                ("password2", "other"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/account/password",
            &[
                ("csrf", "x"),
                ("current", "correct horse"),
                ("password", "new long pass"),
                ("password2", "new long pass"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(matches!(
        a.store
            .verify_admin("vera", "correct horse", chrono::Utc::now())
            .await
            .unwrap(),
        store::AdminLogin::Ok(_)
    ));
    let r = b
        .post(
            "/account/password",
            &[
                ("csrf", &t),
                ("current", "correct horse"),
                ("password", "new long pass"),
                ("password2", "new long pass"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(matches!(
        a.store
            .verify_admin("vera", "new long pass", chrono::Utc::now())
            .await
            .unwrap(),
        store::AdminLogin::Ok(_)
    ));
}
