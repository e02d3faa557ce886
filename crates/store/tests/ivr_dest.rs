//! Where an IVR menu may send callers, checked when it is saved (issue 14 §4), against real
//! SQLite and PostgreSQL: ring groups, the main voicemail number, park, page groups, rooms,
//! time conditions and outside numbers are accepted when they exist (an outside number: when
//! an outbound route takes it with the menu's class of service); anything else is refused
//! with the option and the target named, and nothing is stored.

mod common;

use apps::ivr::MenuSpec;
use store::{Backend, CallClass, Error, NewExtension, RouteSpec, TrunkSpec};

both_backends!(ivr_options_to_every_destination_kind,);

fn refusal(e: Error) -> (&'static str, String) {
    match e {
        Error::Invalid { field, reason } => (field, reason),
        other => panic!("not a validation error: {other}"),
    }
}

fn menu(options: &[(char, &str)], cos: &str) -> MenuSpec {
    MenuSpec {
        greeting: "main-greeting".into(),
        options: options.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        cos: cos.into(),
        ..MenuSpec::default()
    }
}

async fn ivr_options_to_every_destination_kind(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    for n in ["1001", "1002"] {
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
    // The office manager's first menu, before the ring groups exist: refused, naming option
    // 1 and the group.
    let first = [
        ('1', "group:sales"),
        ('2', "group:support"),
        ('3', "voicemail"),
        ('0', "ext:1001"),
        ('9', "009012345678"),
    ];
    let (field, why) = refusal(
        s.put_ivr(t, "main", "500", &menu(&first, ""), true)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "options");
    assert!(
        why.starts_with("options.1: group:sales: ring group sales does not exist"),
        "{why}"
    );
    for g in ["sales", "support"] {
        let spec = engine::hunt::GroupSpec {
            members: vec![engine::hunt::Member {
                number: "1002".into(),
                ring_s: 0,
            }],
            ..Default::default()
        };
        s.put_group(t, g, "", &spec, true).await.unwrap();
    }
    // Now the outside number: no route takes it yet.
    let (field, why) = refusal(
        s.put_ivr(t, "main", "500", &menu(&first, ""), true)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "options");
    assert!(
        why.starts_with("options.9: 009012345678:") && why.contains("no outbound route"),
        "{why}"
    );
    s.create_trunk(
        t,
        "carrier",
        &TrunkSpec {
            host: "192.0.2.10".into(),
            ..TrunkSpec::default()
        },
        "",
    )
    .await
    .unwrap();
    s.create_route(
        t,
        "mobile",
        &RouteSpec {
            patterns: vec!["0|0[789]0XXXXXXXX".into()],
            trunks: vec!["carrier".into()],
            class: CallClass::Mobile,
            ..RouteSpec::default()
        },
        None,
    )
    .await
    .unwrap();
    // A route takes it, but a menu of class internal may not use it.
    let (field, why) = refusal(
        s.put_ivr(t, "main", "500", &menu(&first, "internal"), true)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "options");
    assert!(why.contains("needs class of service mobile"), "{why}");
    let (field, _) = refusal(
        s.put_ivr(t, "main", "500", &menu(&first, "everything"), true)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "cos");
    assert!(s.list_ivrs(t).await.unwrap().is_empty(), "nothing stored");
    // The default class (mobile): saved.
    let m = s
        .put_ivr(t, "main", "500", &menu(&first, ""), true)
        .await
        .unwrap();
    assert_eq!(
        m.spec.options.get(&'1').map(String::as_str),
        Some("group:sales")
    );
    // Park, a park slot, extensions by number are fine; unknown rooms, pages, time
    // conditions and mailboxes, and route: without a number, are refused by name.
    let ok = [
        ('7', "park"),
        ('8', "park:701"),
        ('4', "1002"),
        ('5', "vm:1002"),
        ('6', "ivr:main"),
    ];
    s.put_ivr(t, "main", "500", &menu(&ok, ""), false)
        .await
        .unwrap();
    for (text, want) in [
        ("conf:800", "conference room 800 does not exist"),
        ("page:all", "page group all does not exist"),
        ("timecond:office", "time condition office does not exist"),
        ("vm:4040", "mailbox (extension) 4040 does not exist"),
        ("ivr:nowhere", "IVR menu nowhere does not exist"),
        ("route:mobile", "give the outside number itself"),
        ("voicemail:own", "own feature code"),
        ("fax:1", "unknown destination"),
    ] {
        let (field, why) = refusal(
            s.put_ivr(t, "main", "500", &menu(&[('2', text)], ""), false)
                .await
                .unwrap_err(),
        );
        assert_eq!(field, "options", "{text}");
        assert!(
            why.starts_with(&format!("options.2: {text}: ")) && why.contains(want),
            "{text}: {why}"
        );
    }
    // The fallback is checked the same way.
    let mut m = menu(&ok, "");
    m.fallback = "group:nobody".into();
    let (field, why) = refusal(s.put_ivr(t, "main", "500", &m, false).await.unwrap_err());
    assert_eq!(field, "fallback");
    assert!(why.contains("ring group nobody does not exist"), "{why}");
    // What was saved last is still there.
    let kept = s.ivr(t, "main").await.unwrap().expect("menu");
    assert_eq!(
        kept.spec.options.get(&'7').map(String::as_str),
        Some("park")
    );
}
