//! Trunks, outbound routes, inbound routes and classes of service against real SQLite and
//! PostgreSQL: validation names the field, references are checked in the transaction, and
//! nothing changes when a write is refused.

mod common;

use chrono::Utc;
use store::{
    Backend, CallClass, CdrQuery, CdrRoute, DidSpec, Direction, Disposition, Error, ExtLimits,
    ExtensionUpdate, HangupBy, LegStats, NewCdr, NewExtension, RouteSpec, TenantOutbound,
    TrunkSpec,
};

both_backends!(
    trunks_routes_and_dids,
    refusals_change_nothing,
    extension_class_of_service,
    outbound_history_for_the_limits,
);

fn trunk(host: &str) -> TrunkSpec {
    TrunkSpec {
        host: host.into(),
        username: "acct".into(),
        register: true,
        ..TrunkSpec::default()
    }
}

fn route(patterns: &[&str], trunks: &[&str]) -> RouteSpec {
    RouteSpec {
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        trunks: trunks.iter().map(|s| s.to_string()).collect(),
        ..RouteSpec::default()
    }
}

fn field(e: Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    }
}

async fn trunks_routes_and_dids(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    s.create_extension(
        t,
        NewExtension {
            number: "1001".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = s
        .create_trunk(t, "carrier-a", &trunk("sip.example.jp"), "s3cret")
        .await
        .unwrap();
    assert!(a.has_password);
    s.create_trunk(t, "carrier-b", &trunk("192.0.2.10"), "")
        .await
        .unwrap();
    assert!(matches!(
        s.create_trunk(t, "carrier-a", &trunk("x.example"), "")
            .await,
        Err(Error::Conflict(_))
    ));
    // Routes keep their order; inserting at 1 moves the others down.
    s.create_route(
        t,
        "national",
        &route(&["0|0ZXXXXXXXX"], &["carrier-a", "carrier-b"]),
        None,
    )
    .await
    .unwrap();
    s.create_route(
        t,
        "mobile",
        &route(&["0|0[789]0XXXXXXXX"], &["carrier-b"]),
        Some(1),
    )
    .await
    .unwrap();
    let names: Vec<_> = s
        .list_routes(t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.position))
        .collect();
    assert_eq!(
        names,
        [("mobile".to_string(), 1), ("national".to_string(), 2)]
    );
    // Moving a route renumbers the rest.
    let spec = s.route(t, "national").await.unwrap().unwrap().spec;
    s.update_route(t, "national", &spec, Some(1)).await.unwrap();
    let names: Vec<_> = s
        .list_routes(t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.position))
        .collect();
    assert_eq!(
        names,
        [("national".to_string(), 1), ("mobile".to_string(), 2)]
    );
    // DIDs: exact, catch-all; a destination that exists.
    let did = |to: &str, trunk: &str| DidSpec {
        destination: to.into(),
        trunk: trunk.into(),
        description: String::new(),
    };
    s.put_did(t, "0312345678", &did("ext:1001", "carrier-a"), true)
        .await
        .unwrap();
    s.put_did(t, "ANY", &did("hangup", ""), true).await.unwrap();
    let dids = s.list_dids(t).await.unwrap();
    assert_eq!(dids.len(), 2);
    assert!(dids.iter().any(|d| d.pattern == "any"));
    // A trunk in use cannot go.
    let e = s.delete_trunk(t, "carrier-b").await.unwrap_err();
    assert_eq!(field(e), "trunk");
    let e = s.delete_trunk(t, "carrier-a").await.unwrap_err();
    assert_eq!(field(e), "trunk");
    // Everything call control loads.
    let cfg = s.outside_config().await.unwrap();
    assert_eq!(cfg.trunks.len(), 2);
    assert!(
        cfg.trunks
            .iter()
            .any(|(t, pw)| t.name == "carrier-a" && pw == "s3cret")
    );
    assert_eq!(cfg.routes.len(), 2);
    assert_eq!(cfg.dids.len(), 2);
    // Tenant policy round trip.
    let p = TenantOutbound {
        main_number: "0312345600".into(),
        ..TenantOutbound::default()
    };
    s.set_tenant_outbound(t, &p).await.unwrap();
    assert_eq!(s.tenant_outbound(t).await.unwrap(), p);
    // Trunk status per node.
    s.set_trunk_status(a.id, "node-a", &serde_json::json!({"state": "registered"}))
        .await
        .unwrap();
    s.set_trunk_status(a.id, "node-a", &serde_json::json!({"state": "failing"}))
        .await
        .unwrap();
    let st = s.trunk_statuses(t).await.unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].status["state"], "failing");
    // Remove in dependency order.
    s.delete_did(t, "0312345678").await.unwrap();
    s.delete_route(t, "national").await.unwrap();
    s.delete_trunk(t, "carrier-a").await.unwrap();
    assert_eq!(s.list_routes(t).await.unwrap()[0].position, 1);
    // Call records filter by direction and trunk.
    let q = CdrQuery {
        direction: Some(Direction::Outbound),
        trunk: Some("carrier-b".into()),
        ..CdrQuery::default()
    };
    assert_eq!(s.count_cdrs(&q).await.unwrap(), 0);
}

async fn refusals_change_nothing(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    s.create_trunk(t, "carrier", &trunk("sip.example.jp"), "")
        .await
        .unwrap();
    let cases: Vec<(&str, Error)> = vec![
        (
            "name",
            s.create_trunk(t, "bad name", &trunk("h.example"), "")
                .await
                .unwrap_err(),
        ),
        (
            "host",
            s.create_trunk(t, "t2", &trunk("not a host"), "")
                .await
                .unwrap_err(),
        ),
        (
            "pattern",
            s.create_route(t, "r", &route(&["0|0Q"], &["carrier"]), None)
                .await
                .unwrap_err(),
        ),
        (
            "trunk",
            s.create_route(t, "r", &route(&["0|0X."], &["nope"]), None)
                .await
                .unwrap_err(),
        ),
        (
            "to",
            s.put_did(
                t,
                "0312345678",
                &DidSpec {
                    destination: "ext:4040".into(),
                    ..DidSpec::default()
                },
                true,
            )
            .await
            .unwrap_err(),
        ),
        (
            "to",
            s.put_did(
                t,
                "0312345678",
                &DidSpec {
                    destination: "route:out".into(),
                    ..DidSpec::default()
                },
                true,
            )
            .await
            .unwrap_err(),
        ),
        (
            "pattern",
            s.put_did(
                t,
                "03[",
                &DidSpec {
                    destination: "hangup".into(),
                    ..DidSpec::default()
                },
                true,
            )
            .await
            .unwrap_err(),
        ),
    ];
    for (want, e) in cases {
        assert_eq!(field(e), want);
    }
    assert_eq!(s.list_trunks(t).await.unwrap().len(), 1);
    assert!(s.list_routes(t).await.unwrap().is_empty());
    assert!(s.list_dids(t).await.unwrap().is_empty());
    let bad = TenantOutbound {
        main_number: "03-1234".into(),
        ..TenantOutbound::default()
    };
    assert_eq!(
        field(s.set_tenant_outbound(t, &bad).await.unwrap_err()),
        "main_number"
    );
    assert_eq!(
        s.tenant_outbound(t).await.unwrap(),
        TenantOutbound::default()
    );
}

async fn extension_class_of_service(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let e = s
        .create_extension(
            t,
            NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.cos, CallClass::Mobile, "international is never a default");
    let limits = ExtLimits {
        max_concurrent: 1,
        max_per_hour: 5,
        intl_minutes_per_day: 10,
    };
    let e = s
        .update_extension(
            t,
            "1001",
            ExtensionUpdate {
                cos: Some(CallClass::International),
                outbound_cid: Some("0312345601".into()),
                anonymous: Some(true),
                limits: Some(limits),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (e.cos, e.outbound_cid.as_str(), e.anonymous, e.limits),
        (CallClass::International, "0312345601", true, limits)
    );
    let err = s
        .update_extension(
            t,
            "1001",
            ExtensionUpdate {
                outbound_cid: Some("call me".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field(err), "outbound_cid");
}

async fn outbound_history_for_the_limits(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let now = Utc::now();
    let cdr = |mins_ago: i64, direction: Direction, dialled: &str| NewCdr {
        tenant_id: t,
        call_id: format!("c{mins_ago}{dialled}"),
        caller: "1001".into(),
        callee: dialled.into(),
        caller_name: String::new(),
        start_time: now - chrono::Duration::minutes(mins_ago),
        answer_time: None,
        end_time: now - chrono::Duration::minutes(mins_ago),
        duration_s: 0,
        billsec: 42,
        disposition: Disposition::Answered,
        hangup_by: HangupBy::Caller,
        hangup_cause: String::new(),
        codec: String::new(),
        a: LegStats::default(),
        b: LegStats::default(),
        route: CdrRoute {
            direction,
            dialled: dialled.into(),
            ..CdrRoute::default()
        },
    };
    s.insert_cdr(cdr(5, Direction::Outbound, "00312345678"))
        .await
        .unwrap();
    s.insert_cdr(cdr(6, Direction::Internal, "1002"))
        .await
        .unwrap();
    s.insert_cdr(cdr(120, Direction::Outbound, "0010441234"))
        .await
        .unwrap();
    let h = s
        .outbound_calls_since(now - chrono::Duration::minutes(60), 100)
        .await
        .unwrap();
    assert_eq!(h.len(), 1, "outbound only, in the window");
    assert_eq!(
        (h[0].1.as_str(), h[0].3.as_str(), h[0].4),
        ("1001", "00312345678", 42)
    );
}
