//! Ring groups and forwarding against real SQLite and PostgreSQL: validation names the field,
//! references must exist, a group or an extension that a group's no-answer or a forward names
//! cannot be removed (a member leaves its groups), the round-robin position is stored, feature-code style set/clear/toggle.

mod common;

use engine::hunt::{ForwardKind, Forwarding};
use store::{Backend, Error, NewExtension};

both_backends!(groups_and_forwarding,);

fn field(e: Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    }
}

use common::group_spec as spec;

async fn groups_and_forwarding(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    for n in ["1001", "1002", "1003"] {
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
    // Refusals name the field.
    let e = s
        .put_group(t, "sales", "1001", &spec(&["1002"], "hangup"), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "number", "an extension's number");
    let e = s
        .put_group(t, "sales", "600", &spec(&[], "hangup"), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "members");
    let e = s
        .put_group(t, "sales", "600", &spec(&["1002"], "vm:1999"), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "no_answer");
    let e = s
        .put_group(t, "bad name", "600", &spec(&["1002"], "hangup"), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "name");
    // A group with an outside member and a voicemail fallback.
    let g = s
        .put_group(
            t,
            "sales",
            "600",
            &spec(&["1002", "1003", "0312345678"], "vm:1001"),
            true,
        )
        .await
        .unwrap();
    assert_eq!(g.number, "600");
    assert!(matches!(
        s.put_group(t, "sales", "600", &spec(&["1002"], "hangup"), true)
            .await,
        Err(Error::Conflict(_))
    ));
    let e = s
        .put_group(t, "support", "600", &spec(&["1002"], "hangup"), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "number", "another group's number");
    s.put_group(t, "support", "601", &spec(&["1003"], "group:sales"), true)
        .await
        .unwrap();
    // An extension cannot take a group's number.
    let e = s
        .create_extension(
            t,
            NewExtension {
                number: "601".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ring group support"), "{e}");
    // A DID may send callers to a group; a menu option cannot yet.
    s.put_did(
        t,
        "0312345600",
        &store::DidSpec {
            destination: "group:sales".into(),
            ..Default::default()
        },
        true,
    )
    .await
    .unwrap();
    let menu = apps::ivr::MenuSpec {
        greeting: "g".into(),
        options: [('1', "group:sales".to_string())].into_iter().collect(),
        ..Default::default()
    };
    // A menu option rings the group (issue 14 §4).
    s.put_ivr(t, "main", "", &menu, true).await.unwrap();
    // Round-robin memory.
    s.set_group_position(g.id, "1003").await.unwrap();
    assert_eq!(
        s.group(t, "sales").await.unwrap().unwrap().last_member,
        "1003"
    );
    // Forwarding: validation, existence, set/clear/toggle.
    let bad = Forwarding {
        busy: "vm:1999".into(),
        ..Forwarding::default()
    };
    assert_eq!(
        field(s.put_forwarding(t, "1003", &bad).await.unwrap_err()),
        "busy"
    );
    let own = Forwarding {
        always: "1003".into(),
        ..Forwarding::default()
    };
    assert_eq!(
        field(s.put_forwarding(t, "1003", &own).await.unwrap_err()),
        "always"
    );
    let f = s
        .set_forward(t, "1001", ForwardKind::Busy, Some("vm:1001"))
        .await
        .unwrap();
    assert_eq!(f.busy, "vm:1001");
    s.set_forward(t, "1001", ForwardKind::Always, Some("1003"))
        .await
        .unwrap();
    assert!(s.set_dnd(t, "1001", None).await.unwrap(), "toggled on");
    let f = s.forwarding(t, "1001").await.unwrap();
    assert_eq!(
        (f.always.as_str(), f.busy.as_str(), f.dnd),
        ("1003", "vm:1001", true)
    );
    assert_eq!(s.all_forwarding().await.unwrap().len(), 1);
    // A member leaves its groups with it; the last member of a group is refused.
    let e = s.delete_extension(t, "1003").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("extension 1003 is the last member of ring group support"),
        "{e}"
    );
    s.delete_extension(t, "1002").await.unwrap();
    let sales = s.group(t, "sales").await.unwrap().unwrap();
    let left: Vec<&str> = sales
        .spec
        .members
        .iter()
        .map(|m| m.number.as_str())
        .collect();
    assert_eq!(left, ["1003", "0312345678"]);
    let e = s.delete_group(t, "sales").await.unwrap_err();
    assert!(e.to_string().contains("inbound route"), "{e}");
    s.delete_did(t, "0312345600").await.unwrap();
    let e = s.delete_group(t, "sales").await.unwrap_err();
    assert!(e.to_string().contains("IVR menu main"), "{e}");
    s.delete_ivr(t, "main").await.unwrap();
    let e = s.delete_group(t, "sales").await.unwrap_err();
    assert!(e.to_string().contains("ring group support"), "{e}");
    s.delete_group(t, "support").await.unwrap();
    s.delete_group(t, "sales").await.unwrap();
    // 1003 is still named by 1001's forward always.
    let e = s.delete_extension(t, "1003").await.unwrap_err();
    assert!(
        e.to_string().contains("forwarding of extension 1001"),
        "{e}"
    );
    s.set_forward(t, "1001", ForwardKind::Always, None)
        .await
        .unwrap();
    s.delete_extension(t, "1003").await.unwrap();
    // An extension's own settings go with it.
    s.delete_extension(t, "1001").await.unwrap();
    assert!(s.all_forwarding().await.unwrap().is_empty());
    assert!(s.list_groups(t).await.unwrap().is_empty());
}
