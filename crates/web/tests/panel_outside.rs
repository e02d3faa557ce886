//! The outside-line panel pages through their HTML forms: trunks, outbound routes, inbound
//! routes, the outbound policy and the extension's outside-call fields, in English and Japanese.

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, csrf, signed_in};
use common::{App, app};

async fn admin(a: &App) -> Browser<'_> {
    signed_in(a, "admin", store::AdminRole::Admin).await
}

/// Posts a form with the page's CSRF token.
async fn submit(
    b: &mut Browser<'_>,
    page: &str,
    action: &str,
    form: &[(&str, &str)],
) -> common::Resp {
    let token = csrf(&b.get(page).await.text());
    let mut f = vec![("csrf", token.as_str())];
    f.extend_from_slice(form);
    b.post(action, &f).await
}

#[tokio::test]
async fn pages_render_in_english_and_japanese() {
    let a = app().await;
    a.store
        .create_extension(
            a.store.default_tenant().await.unwrap().id,
            store::NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut b = admin(&a).await;
    let pages = [
        "/trunks",
        "/trunks/new",
        "/routes",
        "/routes/new",
        "/dids",
        "/dids/new",
        "/outbound",
        "/extensions/1001",
        "/history",
        "/",
    ];
    let en = [
        ("/trunks/new", "Provider host"),
        ("/trunks/new", "Authentication"),
        ("/trunks/new", "Caller ID"),
        ("/trunks/new", "Advanced"),
        ("/routes/new", "Dial patterns (one per line)"),
        ("/dids", "No inbound routes yet."),
        ("/outbound", "Emergency numbers"),
        ("/extensions/1001", "Class of service"),
        ("/extensions/1001", "Withhold caller ID"),
        ("/history", "Direction"),
    ];
    for p in pages {
        let r = b.get(p).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert!(r.text().contains("href=\"/trunks\""), "{p}: nav link");
    }
    for (p, text) in en {
        assert!(b.get(p).await.text().contains(text), "{p}: {text}");
    }
    b.lang = Some("ja");
    let ja = [
        ("/trunks", "外線トランク"),
        ("/trunks/new", "接続先ホスト"),
        ("/trunks/new", "認証"),
        ("/trunks/new", "発信者番号"),
        ("/trunks/new", "詳細設定"),
        ("/routes", "発信ルート"),
        ("/routes/new", "必要な規制クラス"),
        ("/routes/new", "緊急通報ルート"),
        ("/dids", "着信ルート(DID)"),
        ("/outbound", "緊急通報番号"),
        ("/outbound", "代表番号"),
        ("/extensions/1001", "規制クラス"),
        ("/extensions/1001", "非通知で発信"),
        ("/extensions/1001", "外線発信者番号"),
        ("/history", "着信番号(DID)"),
    ];
    for (p, text) in ja {
        let page = b.get(p).await.text();
        assert!(page.contains("lang=\"ja\""), "{p}");
        assert!(page.contains(text), "{p}: {text}");
    }
}

#[tokio::test]
async fn trunk_route_and_did_through_the_forms() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    let mut b = admin(&a).await;
    let r = submit(
        &mut b,
        "/trunks/new",
        "/trunks",
        &[
            ("name", "carrier"),
            ("host", "sip.example.jp"),
            ("port", "5080"),
            ("transport", "udp"),
            ("register", "on"),
            ("enabled", "on"),
            ("username", "0312345678"),
            ("password", "trunk-secret-1"),
            ("identity", "ppi"),
            ("did_from", "to"),
            ("codecs", "PCMA, PCMU"),
            ("dtmf", "rfc4733"),
            ("max_calls", "4"),
            ("ping_interval_s", "30"),
            ("expires_s", "600"),
            ("inbound_addrs", "192.0.2.0/24\n198.51.100.7"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.text().contains("data-trunk=\"carrier\""));
    let tr = a.store.trunk(t, "carrier").await.unwrap().unwrap();
    assert_eq!(tr.spec.port, Some(5080));
    assert_eq!(tr.spec.codecs, vec!["PCMA", "PCMU"]);
    assert_eq!(tr.spec.inbound_addrs.len(), 2);
    // The password is never sent back, not even in the edit form.
    let edit = b.get("/trunks/carrier/edit").await.text();
    assert!(!edit.contains("trunk-secret-1"));
    assert!(edit.contains("name=\"password\" value=\"\""), "{edit}");
    // Saving with an empty password keeps it.
    let r = submit(
        &mut b,
        "/trunks/carrier/edit",
        "/trunks/carrier/edit",
        &[
            ("host", "sip.example.jp"),
            ("transport", "tcp"),
            ("register", "on"),
            ("enabled", "on"),
            ("username", "0312345678"),
            ("password", ""),
            ("identity", "ppi"),
            ("did_from", "to"),
            ("codecs", "PCMU"),
            ("dtmf", "rfc4733"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cfg = a.store.outside_config().await.unwrap();
    assert_eq!(cfg.trunks[0].1, "trunk-secret-1");
    assert_eq!(cfg.trunks[0].0.spec.transport.as_str(), "tcp");

    // Two routes, then move the second up.
    for (name, pattern) in [
        ("national", "0|0ZXXXXXXXX"),
        ("mobile", "0|0[789]0XXXXXXXX"),
    ] {
        let r = submit(
            &mut b,
            "/routes/new",
            "/routes",
            &[
                ("name", name),
                ("pattern", pattern),
                ("trunk", "carrier"),
                ("trunk", ""),
                ("cos", "mobile"),
                ("strip", "1"),
                ("enabled", "on"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let order = |l: Vec<store::OutboundRoute>| l.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        order(a.store.list_routes(t).await.unwrap()),
        ["national", "mobile"]
    );
    let r = submit(&mut b, "/routes", "/routes/mobile/move", &[("dir", "up")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        order(a.store.list_routes(t).await.unwrap()),
        ["mobile", "national"]
    );
    let page = b.get("/routes").await.text();
    assert!(page.find("data-route=\"mobile\"") < page.find("data-route=\"national\""));

    // Inbound routes: the catch-all is listed last.
    for (pattern, to) in [("any", "hangup"), ("0312345678", "hangup")] {
        let r = submit(
            &mut b,
            "/dids/new",
            "/dids",
            &[("pattern", pattern), ("to", to), ("trunk", "carrier")],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let page = b.get("/dids").await.text();
    assert!(page.find("data-did=\"0312345678\"") < page.find("data-did=\"any\""));

    // The trunk is in use: deleting it is refused with the store's reason.
    let r = submit(
        &mut b,
        "/trunks/carrier/edit",
        "/trunks/carrier/delete",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("used by outbound route"), "{}", r.text());
    assert!(a.store.trunk(t, "carrier").await.unwrap().is_some());

    // Dashboard trunk panel.
    let dash = b.get("/").await.text();
    assert!(dash.contains("id=\"dash-trunks\""), "{dash}");
    assert!(dash.contains("data-trunk=\"carrier\""));
}

#[tokio::test]
async fn a_bad_pattern_is_shown_at_its_field_and_changes_nothing() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    a.store
        .create_trunk(
            t,
            "carrier",
            &store::TrunkSpec {
                host: "192.0.2.1".into(),
                ..Default::default()
            },
            "",
        )
        .await
        .unwrap();
    for lang in [None, Some("ja")] {
        let mut b = admin(&a).await;
        b.lang = lang;
        let r = submit(
            &mut b,
            "/routes/new",
            "/routes",
            &[
                ("name", "typo"),
                ("pattern", "0|0ZXXXXXXXX\n0|0Q12"),
                ("trunk", "carrier"),
                ("cos", "national"),
                ("prepend", "0033"),
                ("enabled", "on"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let page = r.text();
        let at = page
            .find("id=\"err-pattern\"")
            .expect("error at the pattern field");
        let field = page.find("name=\"pattern\"").unwrap();
        assert!(
            at > field && at - field < 400,
            "the error sits next to the field"
        );
        assert!(page[at..].contains("position 4"), "{page}");
        assert!(page.contains("0|0Q12"), "input kept");
        assert!(page.contains("value=\"typo\""), "name kept");
        assert!(page.contains("value=\"0033\""), "prepend kept");
        if lang.is_some() {
            assert!(
                page.contains("入力が正しくありません"),
                "Japanese error text: {page}"
            );
        }
        assert!(a.store.list_routes(t).await.unwrap().is_empty());
        // A bad number in the trunk form, a bad caller ID in the policy.
        let r = submit(
            &mut b,
            "/trunks/new",
            "/trunks",
            &[
                ("name", "x"),
                ("host", "h.example"),
                ("port", "abc"),
                ("transport", "udp"),
                ("identity", "from"),
                ("did_from", "ruri"),
                ("dtmf", "rfc4733"),
                ("codecs", "PCMU"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().contains("id=\"err-port\""));
        assert!(r.text().contains("value=\"abc\""));
        let r = submit(
            &mut b,
            "/outbound",
            "/outbound",
            &[
                ("main_number", "03-xx"),
                ("emergency_numbers", "110, 119"),
                ("max_concurrent", "5"),
                ("max_per_hour", "10"),
                ("intl_minutes_per_day", "0"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().contains("id=\"err-main_number\""));
        assert!(r.text().contains("value=\"03-xx\""));
        assert_eq!(
            a.store.tenant_outbound(t).await.unwrap(),
            store::TenantOutbound::default()
        );
        a.store.delete_admin("admin").await.unwrap();
    }
}

#[tokio::test]
async fn extension_outside_fields() {
    let a = app().await;
    let t = a.store.default_tenant().await.unwrap().id;
    a.store
        .create_extension(
            t,
            store::NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut b = admin(&a).await;
    let form = |cid: &'static str| {
        vec![
            ("display_name", "Aoki"),
            ("max_contacts", "3"),
            ("enabled", "on"),
            ("cos", "international"),
            ("outbound_cid", cid),
            ("anonymous", "on"),
            ("max_concurrent", "1"),
            ("max_per_hour", "9"),
            ("intl_minutes_per_day", "0"),
        ]
    };
    let r = submit(
        &mut b,
        "/extensions/1001",
        "/extensions/1001",
        &form("0312345670"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = a.store.extension(t, "1001").await.unwrap().unwrap();
    assert_eq!(e.cos, store::CallClass::International);
    assert_eq!((e.outbound_cid.as_str(), e.anonymous), ("0312345670", true));
    assert_eq!(
        (
            e.limits.max_concurrent,
            e.limits.max_per_hour,
            e.limits.intl_minutes_per_day
        ),
        (1, 9, 0)
    );
    let r = submit(
        &mut b,
        "/extensions/1001",
        "/extensions/1001",
        &form("03-bad"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"err-outbound_cid\""), "{}", r.text());
    assert!(r.text().contains("value=\"03-bad\""), "input kept");
    let e2 = a.store.extension(t, "1001").await.unwrap().unwrap();
    assert_eq!(e2.outbound_cid, "0312345670", "nothing changed");

    // Viewers see the pages but cannot change anything.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    assert_eq!(v.get("/trunks").await.status, StatusCode::OK);
    assert!(!v.get("/trunks").await.text().contains("id=\"add-trunk\""));
    let r = submit(
        &mut v,
        "/trunks",
        "/trunks",
        &[("name", "x"), ("host", "h.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(a.store.list_trunks(t).await.unwrap().is_empty());
}
