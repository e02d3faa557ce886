//! The active/standby pair in the API, `/healthz`, `/metrics` and the panel, over a fake driver.

mod common;

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::browser::{csrf, signed_in};
use common::{App, FakeCluster, app};
use ha::report::{ClusterReport, EventRecord, PathReport};
use ha::{Epoch, EventKind, Role, Status};

fn report(role: Role, refused: Option<&str>) -> ClusterReport {
    ClusterReport {
        cluster: "pair".into(),
        node: 1,
        peer: 2,
        status: Status {
            role,
            epoch: Epoch(4),
            peer_role: Some(Role::Standby),
            paths: vec![true, false],
            witness_reachable: true,
            lease_held: role == Role::Active,
            sync_replication: false,
            alone: false,
            switching: false,
            authority: None,
            blocked: None,
        },
        paths: vec![
            PathReport {
                local: "10.0.0.1:7410".into(),
                peer: "10.0.0.2:7410".into(),
                healthy: true,
            },
            PathReport {
                local: "192.168.9.1:7410".into(),
                peer: "192.168.9.2:7410".into(),
                healthy: false,
            },
        ],
        app_addrs: vec!["10.0.0.10/24 dev eth0".into()],
        holds_ip: role == Role::Active,
        switchover_refused: refused.map(str::to_string),
        events: vec![EventRecord {
            at: "2026-12-06T10:00:00.000Z".into(),
            kind: EventKind::RoleChanged,
            role,
            reason: "standby → active: lease granted (epoch 4)".into(),
        }],
        db: Some(ha::report::DbReport::of(if role == Role::Active {
            ha::DbHealth::Primary {
                standby_streaming: true,
                lag_bytes: 4096,
            }
        } else {
            ha::DbHealth::Replica {
                streaming: true,
                lag_bytes: 0,
            }
        })),
    }
}

fn clustered(a: &App, role: Role, refused: Option<&str>) {
    let ok = a.control.cluster.set(FakeCluster {
        report: Mutex::new(report(role, refused)),
        refusal: Mutex::new(refused.map(str::to_string)),
        switchovers: Default::default(),
    });
    assert!(ok.is_ok());
}

async fn get(a: &App, path: &str) -> common::Resp {
    a.send(Request::get(path).body(Body::empty()).unwrap())
        .await
}

#[tokio::test]
async fn unclustered_node_says_so() {
    let a = app().await;
    let r = a.api("GET", "/cluster", Some(&a.read), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["clustered"], false);
    let r = a
        .api("POST", "/cluster/switchover", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("serve --cluster"), "{}", r.text());
    let m = get(&a, "/metrics").await.text();
    assert!(!m.contains("denwa_cluster_role"));
    let h = get(&a, "/healthz").await.json();
    assert!(h.get("role").is_none());
}

#[tokio::test]
async fn api_metrics_and_healthz_tell_act_from_sby() {
    let a = app().await;
    clustered(&a, Role::Standby, Some("this node is standby, not active"));
    assert_eq!(
        a.api("GET", "/cluster", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = a.api("GET", "/cluster", Some(&a.read), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["clustered"], true);
    assert_eq!(v["status"]["role"], "standby");
    assert_eq!(v["status"]["peer_role"], "standby");
    assert_eq!(v["paths"][1]["healthy"], false);
    assert_eq!(v["events"][0]["kind"], "role_changed");
    // Read scope cannot switch over; full scope is refused with the driver's reason.
    let r = a
        .api("POST", "/cluster/switchover", Some(&a.read), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a
        .api("POST", "/cluster/switchover", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "not_ready");
    assert!(r.text().contains("not active"));
    let m = get(&a, "/metrics").await.text();
    assert!(m.contains("denwa_cluster_role{role=\"standby\"} 1"), "{m}");
    assert!(m.contains("denwa_cluster_role{role=\"active\"} 0"), "{m}");
    assert!(m.contains("denwa_cluster_holds_address 0"), "{m}");
    assert!(
        m.contains("denwa_cluster_path_healthy{path=\"1\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("denwa_cluster_replication_streaming{state=\"replica\"} 1"),
        "{m}"
    );
    assert!(m.contains("denwa_cluster_replication_lag_bytes 0"), "{m}");
    let r = a.api("GET", "/cluster", Some(&a.read), None).await;
    assert_eq!(r.json()["db"]["state"], "replica", "{}", r.text());
    let h = get(&a, "/healthz").await.json();
    assert_eq!(h["role"], "standby");
    assert_eq!(h["holds_address"], false);
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    assert!(doc["paths"]["/cluster/switchover"]["post"].is_object());
    let codes = doc
        .pointer("/components/schemas/Error/properties/error/properties/code/enum")
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(codes.contains("standby_read_only"), "{codes}");
}

#[tokio::test]
async fn api_switchover_on_a_ready_active_node() {
    let a = app().await;
    clustered(&a, Role::Active, None);
    let r = a
        .api("POST", "/cluster/switchover", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let c = a.control.cluster.get().unwrap();
    assert_eq!(c.switchovers.load(Ordering::SeqCst), 1);
    let h = get(&a, "/healthz").await.json();
    assert_eq!(h["role"], "active");
}

#[tokio::test]
async fn panel_page_asks_for_confirmation_before_switching_over() {
    let a = app().await;
    clustered(&a, Role::Active, None);
    let mut b = signed_in(&a, "root", store::AdminRole::Admin).await;
    let p = b.get("/cluster").await;
    assert_eq!(p.status, StatusCode::OK);
    let html = p.text();
    assert!(
        html.contains("id=\"cluster-role\" data-role=\"active\""),
        "{html}"
    );
    assert!(html.contains("10.0.0.10/24 dev eth0"));
    assert!(html.contains("degraded"));
    assert!(html.contains("lease granted (epoch 4)"));
    assert!(html.contains("id=\"switchover\""));
    assert!(!html.contains("id=\"cluster-alone\""));
    // Running alone: the page says so.
    let set_alone = |on: bool| {
        a.control
            .cluster
            .get()
            .unwrap()
            .report
            .lock()
            .unwrap()
            .status
            .alone = on
    };
    set_alone(true);
    let alone = b.get("/cluster").await.text();
    assert!(
        alone.contains("id=\"cluster-alone\"") && alone.contains("Running alone: the witness"),
        "{alone}"
    );
    set_alone(false);
    // First POST: only a confirmation form, nothing happens.
    let r = b.post("/cluster", &[("csrf", &csrf(&html))]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("id=\"switchover-confirm\""));
    let c = a.control.cluster.get().unwrap();
    assert_eq!(c.switchovers.load(Ordering::SeqCst), 0);
    // Confirmed: it runs.
    let r = b
        .post(
            "/cluster",
            &[("csrf", &csrf(&r.text())), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(c.switchovers.load(Ordering::SeqCst), 1);
    // Refused: the reason is shown.
    *c.refusal.lock().unwrap() = Some("heartbeat path 1 is degraded".into());
    let p = b.get("/cluster").await;
    let r = b
        .post(
            "/cluster",
            &[("csrf", &csrf(&p.text())), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("heartbeat path 1 is degraded"));
    // Japanese.
    let p = b.get("/lang?set=ja&back=/cluster").await;
    assert!(p.status.is_redirection());
    let p = b.get("/cluster").await;
    assert!(p.text().contains("ACT（運用系）"), "{}", p.text());
    // A viewer sees the page but cannot switch over.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let p = v.get("/cluster").await;
    assert_eq!(p.status, StatusCode::OK);
    let r = v
        .post(
            "/cluster",
            &[("csrf", &csrf(&p.text())), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(c.switchovers.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn panel_page_on_an_unclustered_node() {
    let a = app().await;
    let mut b = signed_in(&a, "root", store::AdminRole::Admin).await;
    let p = b.get("/cluster").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.text().contains("serve --cluster"));
}

#[tokio::test]
async fn standby_serves_reads_and_refuses_writes_after_authentication() {
    let a = app().await;
    clustered(&a, Role::Standby, Some("this node is standby, not active"));
    // API: reads served; a write refused with where to go; nothing told without a key.
    let r = a.api("GET", "/cluster", Some(&a.read), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a.api("GET", "/extensions", Some(&a.read), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = serde_json::json!({ "number": "2001" });
    let r = a
        .api("POST", "/extensions", Some(&a.full), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(
        r.json()["error"]["code"],
        "standby_read_only",
        "{}",
        r.text()
    );
    assert!(
        r.text()
            .contains("this node is standby; make changes on the active node (node 2, 10.0.0.2)"),
        "{}",
        r.text()
    );
    let r = a.api("POST", "/extensions", None, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.text().contains("10.0.0.2"), "{}", r.text());
    let r = a
        .api("POST", "/extensions", Some(&a.read), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "read scope first");
    // The switchover endpoint gives its own answer.
    let r = a
        .api("POST", "/cluster/switchover", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.text().contains("not_ready"), "{}", r.text());
    let t = a.store.default_tenant().await.unwrap();
    assert!(a.store.extension(t.id, "2001").await.unwrap().is_none());

    // Panel: a banner on every page; a write refused with the same words; the cluster page
    // still answers its switchover form.
    let mut b = signed_in(&a, "root", store::AdminRole::Admin).await;
    let p = b.get("/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.text().contains("id=\"standby-banner\""), "{}", p.text());
    let p = b.get("/extensions").await;
    assert_eq!(p.status, StatusCode::OK);
    let r = b
        .post(
            "/extensions",
            &[("csrf", &csrf(&p.text())), ("number", "2002")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(
        r.text().contains("id=\"standby-read-only\""),
        "{}",
        r.text()
    );
    assert!(
        r.text()
            .contains("make changes on the active node (node 2, 10.0.0.2)")
    );
    let p = b.get("/cluster").await;
    let r = b
        .post(
            "/cluster",
            &[("csrf", &csrf(&p.text())), ("confirm", "yes")],
        )
        .await;
    assert_ne!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    // In Japanese: the banner and the refusal page follow the panel's language.
    let p = b.get("/lang?set=ja&back=/").await;
    assert!(p.status.is_redirection());
    let ja =
        "このノードは待機系（SBY）です。変更は運用系ノード（ノード 2、10.0.0.2）で行ってください";
    let p = b.get("/extensions").await;
    assert!(p.text().contains(ja), "{}", p.text());
    let form = [("csrf", csrf(&p.text())), ("number", "2004".into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/extensions", &form).await;
    assert!(r.text().contains(ja) && r.status == 503, "{}", r.text());
    let p = b.get("/lang?set=en&back=/").await;
    assert!(p.status.is_redirection());
    // Without a session the panel tells nothing.
    let mut anon = common::browser::Browser::new(&a);
    let r = anon
        .post("/extensions", &[("csrf", "x"), ("number", "2003")])
        .await;
    assert_ne!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!r.text().contains("10.0.0.2"), "{}", r.text());

    // Active again: writes pass the guard.
    *a.control.cluster.get().unwrap().report.lock().unwrap() = report(Role::Active, None);
    let m = get(&a, "/metrics").await.text();
    assert!(
        m.contains("denwa_cluster_replication_streaming{state=\"primary\"} 1")
            && m.contains("denwa_cluster_replication_lag_bytes 4096"),
        "{m}"
    );
    let r = a
        .api("POST", "/extensions", Some(&a.full), Some(body))
        .await;
    assert_ne!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let p = b.get("/").await;
    assert!(!p.text().contains("id=\"standby-banner\""));
}
