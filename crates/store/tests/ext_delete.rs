//! Deleting an extension against real SQLite and PostgreSQL: it leaves every ring group,
//! page group and pickup group in the delete's own transaction; the last member of a group is
//! refused with the group's name and nothing changes; whatever routes callers to it (inbound
//! route, IVR option, time condition, park fallback, a group's no-answer, another's forward)
//! refuses the delete naming that reference.

mod common;

use engine::hunt::GroupSpec;
use store::{Backend, DidSpec, Error, NewExtension, Store};

both_backends!(delete_leaves_groups, delete_refused_by_references);

fn reason(e: Error) -> (&'static str, String) {
    match e {
        Error::Invalid { field, reason } => (field, reason),
        other => panic!("not a validation error: {other}"),
    }
}

fn spec(members: &[&str]) -> GroupSpec {
    common::group_spec(members, "hangup")
}

async fn exts(s: &Store, t: i64, numbers: &[&str]) {
    for n in numbers {
        s.create_extension(
            t,
            NewExtension {
                number: n.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect("extension");
    }
}

async fn members(s: &Store, t: i64, group: &str) -> Vec<String> {
    let g = s.group(t, group).await.expect("read").expect("group");
    g.spec.members.into_iter().map(|m| m.number).collect()
}

async fn delete_leaves_groups(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    exts(&s, t, &["1001", "1002", "1003"]).await;
    // 1002 is a member of two ring groups and of a page and a pickup group; 1003 is the only member of "night".
    s.put_group(
        t,
        "sales",
        "600",
        &spec(&["1001", "1002", "0312345678"]),
        true,
    )
    .await
    .unwrap();
    s.put_group(t, "support", "601", &spec(&["1002", "1003"]), true)
        .await
        .unwrap();
    s.put_group(t, "night", "602", &spec(&["1003"]), true)
        .await
        .unwrap();
    s.save_page_group(
        t,
        "",
        &engine::page::PageGroup::new("all", vec!["1001".into(), "1002".into()]),
        true,
    )
    .await
    .unwrap();
    s.set_pickup_groups(t, "1002", &["floor".to_string()])
        .await
        .unwrap();
    s.set_pickup_groups(t, "1001", &["floor".to_string()])
        .await
        .unwrap();
    let mut changes = s.subscribe();
    // Watching once the watcher's first `All` arrives (changes before it may be missed).
    loop {
        let c = tokio::time::timeout(std::time::Duration::from_secs(10), changes.recv())
            .await
            .expect("watcher started")
            .expect("change");
        if c == store::Change::All {
            break;
        }
    }

    s.delete_extension(t, "1002").await.unwrap();
    assert!(s.extension(t, "1002").await.unwrap().is_none());
    assert_eq!(members(&s, t, "sales").await, ["1001", "0312345678"]);
    assert_eq!(members(&s, t, "support").await, ["1003"]);
    let page = s.page_group(t, "all").await.unwrap().unwrap();
    assert_eq!(page.group.members, ["1001"]);
    let pickup = s.pickup_groups(t).await.unwrap();
    assert_eq!(pickup, [("floor".to_string(), vec!["1001".to_string()])]);
    // The engine hears that the groups changed (it reloads them).
    let mut saw_apps = false;
    while let Ok(Ok(c)) =
        tokio::time::timeout(std::time::Duration::from_secs(5), changes.recv()).await
    {
        if c == store::Change::Apps {
            saw_apps = true;
            break;
        }
    }
    assert!(saw_apps, "ring groups changed without Change::Apps");

    // 1003 is the last member of "night" (and a member of "support"): refused, naming
    // the group, and nothing changed — not even "support".
    let (field, why) = reason(s.delete_extension(t, "1003").await.unwrap_err());
    assert_eq!(field, "number");
    assert!(
        why.contains("extension 1003 is the last member of ring group night"),
        "{why}"
    );
    assert!(s.extension(t, "1003").await.unwrap().is_some());
    assert_eq!(members(&s, t, "support").await, ["1003"]);
    assert_eq!(members(&s, t, "night").await, ["1003"]);
    // Once "night" has another member, 1003 goes; "support" (its last member) refuses it.
    s.put_group(t, "night", "602", &spec(&["1003", "1001"]), false)
        .await
        .unwrap();
    let (_, why) = reason(s.delete_extension(t, "1003").await.unwrap_err());
    assert!(why.contains("last member of ring group support"), "{why}");
    assert_eq!(
        members(&s, t, "night").await,
        ["1003", "1001"],
        "rolled back"
    );
    s.delete_group(t, "support").await.unwrap();
    s.delete_extension(t, "1003").await.unwrap();
    assert_eq!(members(&s, t, "night").await, ["1001"]);
}

async fn delete_refused_by_references(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    exts(&s, t, &["1001", "1002"]).await;
    s.put_group(t, "sales", "600", &spec(&["1001", "1002"]), true)
        .await
        .unwrap();
    let refused = |e: Error, what: &str| {
        let (field, why) = reason(e);
        assert_eq!(field, "number");
        assert!(why.starts_with("extension 1002 is "), "{why}");
        assert!(why.contains(what), "{why} (expected {what:?})");
    };
    let still_there = |s: Store| async move {
        assert!(s.extension(t, "1002").await.unwrap().is_some());
        assert_eq!(
            members(&s, t, "sales").await,
            ["1001", "1002"],
            "rolled back"
        );
    };

    // An inbound route.
    let did = DidSpec {
        destination: "ext:1002".into(),
        ..DidSpec::default()
    };
    s.put_did(t, "0312345600", &did, true).await.unwrap();
    refused(
        s.delete_extension(t, "1002").await.unwrap_err(),
        "the destination of inbound route 0312345600",
    );
    still_there(s.clone()).await;
    s.delete_did(t, "0312345600").await.unwrap();

    // An IVR option (to the extension's voicemail).
    let menu = apps::ivr::MenuSpec {
        greeting: "g".into(),
        options: [('1', "ext:1001".to_string()), ('2', "vm:1002".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    s.put_ivr(t, "main", "", &menu, true).await.unwrap();
    refused(
        s.delete_extension(t, "1002").await.unwrap_err(),
        "option 2 of IVR menu main",
    );
    still_there(s.clone()).await;
    s.delete_ivr(t, "main").await.unwrap();

    // A time condition.
    let tc = engine::timecond::TimeCondSpec {
        weekly: vec!["mon-fri 09:00-18:00".into()],
        dates: vec![],
        use_holidays: false,
        matched: "ext:1001".into(),
        unmatched: "ext:1002".into(),
    };
    s.put_timecond(t, "office", "", 0, &tc, true).await.unwrap();
    refused(
        s.delete_extension(t, "1002").await.unwrap_err(),
        "the unmatched destination of time condition office",
    );
    still_there(s.clone()).await;
    s.delete_timecond(t, "office").await.unwrap();

    // The park lot's fallback.
    let lot = engine::park::ParkLot {
        fallback: "ext:1002".into(),
        ..engine::park::ParkLot::default()
    };
    s.set_park_lot(t, &lot).await.unwrap();
    refused(
        s.delete_extension(t, "1002").await.unwrap_err(),
        "the timeout fallback of the park lot",
    );
    still_there(s.clone()).await;
    s.set_park_lot(t, &engine::park::ParkLot::default())
        .await
        .unwrap();

    // A group's no-answer destination and another extension's forward (kept from before).
    let mut g = spec(&["1001"]);
    g.no_answer = "vm:1002".into();
    s.put_group(t, "support", "601", &g, true).await.unwrap();
    refused(
        s.delete_extension(t, "1002").await.unwrap_err(),
        "the no-answer destination of ring group support",
    );
    still_there(s.clone()).await;
    s.delete_group(t, "support").await.unwrap();
    s.set_forward(t, "1001", engine::hunt::ForwardKind::Busy, Some("1002"))
        .await
        .unwrap();
    refused(
        s.delete_extension(t, "1002").await.unwrap_err(),
        "named by the forwarding of extension 1001",
    );
    still_there(s.clone()).await;
    s.set_forward(t, "1001", engine::hunt::ForwardKind::Busy, None)
        .await
        .unwrap();

    // Nothing left pointing at it: deleted, and out of "sales".
    s.delete_extension(t, "1002").await.unwrap();
    assert_eq!(members(&s, t, "sales").await, ["1001"]);
}
