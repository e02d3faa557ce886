//! Feature codes, time conditions, calendars and pickup groups against real SQLite and
//! PostgreSQL: conflicts refused with the reason, destinations checked, the override stored,
//! references kept, and everything back after a backup round trip is not tested here (the
//! backup table list is checked by the backup tests).

mod common;

use engine::timecond::{CalendarSpec, Mode, TimeCondSpec};
use store::{Backend, Error, NewExtension};

fn group(member: &str) -> engine::hunt::GroupSpec {
    engine::hunt::GroupSpec {
        strategy: engine::hunt::Strategy::Simultaneous,
        members: vec![engine::hunt::Member {
            number: member.into(),
            ring_s: 0,
        }],
        ring_s: 10,
        timeout_s: 30,
        no_answer: "hangup".into(),
        cid_prefix: String::new(),
        cos: engine::outside::CallClass::Internal,
    }
}

both_backends!(
    feature_codes_per_tenant,
    time_conditions_and_calendars,
    pickup_groups,
    one_number_space,
);

fn reason(e: Error) -> (&'static str, String) {
    match e {
        Error::Invalid { field, reason } => (field, reason),
        other => panic!("not a validation error: {other}"),
    }
}

async fn ext(s: &store::Store, t: i64, n: &str) {
    s.create_extension(
        t,
        NewExtension {
            number: n.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn feature_codes_per_tenant(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let t2 = s.create_tenant("other", "other.example").await.unwrap().id;
    ext(&s, t, "1001").await;
    let list = s.list_feature_codes(t).await.unwrap();
    let get = |l: &[store::FeatureCodeRow], k: &str| {
        l.iter()
            .find(|r| r.feature == k)
            .and_then(|r| r.code.clone())
    };
    assert_eq!(get(&list, "group_pickup").as_deref(), Some("*8"));
    assert_eq!(list.len(), engine::features::DEFS.len());
    // Conflicts are refused with the reason.
    let (f, why) = reason(
        s.set_feature_code(t, "dnd_toggle", Some("*97"))
            .await
            .unwrap_err(),
    );
    assert_eq!(f, "code");
    assert_eq!(why, "feature code \"*97\" is already used by vm_own_box");
    let (_, why) = reason(
        s.set_feature_code(t, "directed_pickup", Some("*2"))
            .await
            .unwrap_err(),
    );
    assert!(why.contains("*28"), "{why}");
    let (f, _) = reason(s.set_feature_code(t, "nope", Some("*5")).await.unwrap_err());
    assert_eq!(f, "feature");
    // A change, per tenant.
    s.set_feature_code(t, "dnd_toggle", Some("*55"))
        .await
        .unwrap();
    assert_eq!(
        get(&s.list_feature_codes(t).await.unwrap(), "dnd_toggle").as_deref(),
        Some("*55")
    );
    assert_eq!(
        get(&s.list_feature_codes(t2).await.unwrap(), "dnd_toggle").as_deref(),
        Some("*78")
    );
    // Off, and back to the default.
    s.set_feature_code(t, "park", None).await.unwrap();
    assert_eq!(get(&s.list_feature_codes(t).await.unwrap(), "park"), None);
    s.set_feature_code(t, "park", Some("*70")).await.unwrap();
    let all = s.all_feature_tables().await.unwrap();
    assert_eq!(all[&t].overrides.len(), 1, "only dnd_toggle differs");
    // Application numbers the dialplan could not reach behind a feature code are refused.
    let e = s
        .put_ivr(
            t,
            "main",
            "**5",
            &apps::ivr::MenuSpec {
                greeting: "g".into(),
                options: [('1', "hangup".to_string())].into_iter().collect(),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap_err();
    let (f, why) = reason(e);
    assert_eq!(f, "number");
    assert!(why.contains("directed_pickup"), "{why}");
    let e = s
        .put_conf(t, "*55", &apps::conf::RoomSpec::default(), true)
        .await
        .unwrap_err();
    assert_eq!(reason(e).0, "number");
}

fn office(matched: &str) -> TimeCondSpec {
    TimeCondSpec {
        weekly: vec!["mon-fri 09:00-18:00".into()],
        dates: vec!["2026-12-29..2027-01-03 closed".into()],
        use_holidays: true,
        matched: matched.into(),
        unmatched: "vm:1001".into(),
    }
}

async fn time_conditions_and_calendars(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    ext(&s, t, "1001").await;
    // Bad rules and missing destinations name the field.
    let mut bad = office("ext:1001");
    bad.weekly = vec!["weekdays 9-5".into()];
    assert_eq!(
        reason(
            s.put_timecond(t, "office", "", 1, &bad, true)
                .await
                .unwrap_err()
        )
        .0,
        "weekly"
    );
    assert_eq!(
        reason(
            s.put_timecond(t, "office", "", 1, &office("ext:4040"), true)
                .await
                .unwrap_err()
        ),
        ("matched", "ext:4040 does not exist".to_string())
    );
    assert_eq!(
        reason(
            s.put_timecond(t, "office", "", 1, &office("timecond:office"), true)
                .await
                .unwrap_err()
        )
        .0,
        "matched"
    );
    let row = s
        .put_timecond(t, "office", "", 1, &office("ext:1001"), true)
        .await
        .unwrap();
    assert_eq!((row.index, row.mode), (1, Mode::Auto));
    // The day/night index is unique in the tenant.
    assert_eq!(
        reason(
            s.put_timecond(t, "shop", "", 1, &office("ext:1001"), true)
                .await
                .unwrap_err()
        ),
        ("index", "1 is already time condition office's".to_string())
    );
    s.put_timecond(t, "shop", "", 2, &office("timecond:office"), true)
        .await
        .unwrap();
    // The override.
    s.set_timecond_mode(t, "office", Mode::Night).await.unwrap();
    assert_eq!(
        s.timecond(t, "office").await.unwrap().unwrap().mode,
        Mode::Night
    );
    assert!(matches!(
        s.set_timecond_mode(t, "gone", Mode::Day).await,
        Err(Error::NotFound(_))
    ));
    // Editing keeps the override.
    s.put_timecond(t, "office", "", 1, &office("vm:1001"), false)
        .await
        .unwrap();
    assert_eq!(
        s.timecond(t, "office").await.unwrap().unwrap().mode,
        Mode::Night
    );
    // In use by another condition: not removed.
    let (_, why) = reason(s.delete_timecond(t, "office").await.unwrap_err());
    assert_eq!(why, "time condition office is used by time condition shop");
    s.delete_timecond(t, "shop").await.unwrap();
    s.delete_timecond(t, "office").await.unwrap();
    assert!(s.list_timeconds(t).await.unwrap().is_empty());
    // Calendar.
    assert_eq!(s.calendar(t).await.unwrap(), CalendarSpec::default());
    let mut cal = CalendarSpec {
        timezone: "Asia/Tokyo".into(),
        japan: true,
        ..CalendarSpec::default()
    };
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    cal.add(d("2026-12-28"), "仕事納め", true);
    cal.remove(d("2026-11-03"));
    s.put_calendar(t, &cal).await.unwrap();
    assert_eq!(s.calendar(t).await.unwrap(), cal);
    cal.timezone = "Tokyo".into();
    assert_eq!(
        reason(s.put_calendar(t, &cal).await.unwrap_err()).0,
        "timezone"
    );
}

async fn pickup_groups(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    for n in ["1001", "1002", "1003"] {
        ext(&s, t, n).await;
    }
    let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s.set_pickup_groups(t, "1001", &g(&["sales", "all", "sales"]))
            .await
            .unwrap(),
        g(&["all", "sales"])
    );
    s.set_pickup_groups(t, "1002", &g(&["sales"]))
        .await
        .unwrap();
    assert_eq!(
        reason(
            s.set_pickup_groups(t, "1003", &g(&["bad name"]))
                .await
                .unwrap_err()
        )
        .0,
        "pickup_groups"
    );
    assert!(matches!(
        s.set_pickup_groups(t, "4040", &g(&["sales"])).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        s.pickup_groups(t).await.unwrap(),
        vec![
            ("all".to_string(), g(&["1001"])),
            ("sales".to_string(), g(&["1001", "1002"]))
        ]
    );
    let all = s.all_pickup_groups().await.unwrap();
    assert_eq!(all[&(t, "1002".to_string())], g(&["sales"]));
    s.set_pickup_groups(t, "1001", &[]).await.unwrap();
    assert_eq!(s.pickup_groups(t).await.unwrap().len(), 1);
}

/// Extensions, IVR menus, rooms, ring groups and time conditions share one number space per
/// tenant, and no number may be shadowed by a feature code: every kind refuses every other
/// kind's number with the owner named, an update keeps its own number, and another tenant
/// may use the same numbers.
async fn one_number_space(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let t2 = s.create_tenant("other", "other.example").await.unwrap().id;
    ext(&s, t, "1001").await;
    s.put_conf(t, "800", &apps::conf::RoomSpec::default(), true)
        .await
        .unwrap();
    s.put_group(t, "sales", "600", &group("1001"), true)
        .await
        .unwrap();
    s.put_timecond(t, "office", "700", 1, &office("ext:1001"), true)
        .await
        .unwrap();
    let taken = |r: Result<(), Error>, owner: &str| {
        let (field, why) = reason(r.unwrap_err());
        assert_eq!(field, "number");
        assert!(why.contains(owner), "{why} names {owner}");
    };
    // A ring group cannot take a room's, a time condition's or an extension's number.
    for (n, owner) in [
        ("800", "conference room 800"),
        ("700", "time condition office"),
        ("1001", "extension 1001"),
    ] {
        let r = s.put_group(t, "support", n, &group("1001"), true).await;
        taken(r.map(|_| ()), owner);
    }
    // A time condition cannot take a group's number; a room cannot take a time condition's.
    taken(
        s.put_timecond(t, "night", "600", 2, &office("ext:1001"), true)
            .await
            .map(|_| ()),
        "ring group sales",
    );
    taken(
        s.put_conf(t, "700", &apps::conf::RoomSpec::default(), true)
            .await
            .map(|_| ()),
        "time condition office",
    );
    // An extension cannot take a group's or a time condition's number, nor a feature code.
    for (n, owner) in [
        ("600", "ring group sales"),
        ("700", "time condition office"),
        ("*8", "*8"),
    ] {
        let r = s
            .create_extension(
                t,
                NewExtension {
                    number: n.into(),
                    ..Default::default()
                },
            )
            .await;
        taken(r.map(|_| ()), owner);
    }
    // Updates keep their own number.
    s.put_group(t, "sales", "600", &group("1001"), false)
        .await
        .unwrap();
    s.put_timecond(t, "office", "700", 1, &office("ext:1001"), false)
        .await
        .unwrap();
    // Another tenant has its own number space.
    ext(&s, t2, "600").await;
    s.put_group(t2, "sales", "800", &group("600"), true)
        .await
        .unwrap();
}
