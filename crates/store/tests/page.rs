//! Page groups against real SQLite and PostgreSQL: validation names the field, members must be
//! extensions of the tenant, the number is in the tenant's one number space (both ways),
//! create/replace/delete, the settings document round-trips.

mod common;

use engine::page::{AutoAnswer, PageGroup};
use store::{Backend, Error, NewExtension};

both_backends!(page_groups,);

fn field(e: Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    }
}

fn group(name: &str, members: &[&str]) -> PageGroup {
    PageGroup::new(name, members.iter().map(|m| m.to_string()).collect())
}

async fn page_groups(b: Backend) {
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
    // Refusals name the field.
    let e = s
        .save_page_group(t, "1001", &group("all", &["1002"]), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "number", "an extension's number");
    let e = s
        .save_page_group(t, "600", &group("all", &["1009"]), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "members", "no such extension");
    let e = s.save_page_group(t, "600", &group("all", &[]), true).await;
    assert_eq!(field(e.unwrap_err()), "members");
    let e = s
        .save_page_group(t, "600", &group("a b", &["1001"]), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "name");
    let e = s
        .save_page_group(t, "6x", &group("all", &["1001"]), true)
        .await;
    assert_eq!(field(e.unwrap_err()), "number");
    // Created, read back with its settings.
    let mut g = group("all", &["1001", "1002"]);
    g.barge = true;
    g.max_s = 30;
    g.auto_answer = AutoAnswer::CallInfo;
    let row = s.save_page_group(t, "600", &g, true).await.unwrap();
    assert_eq!((row.name.as_str(), row.number.as_str()), ("all", "600"));
    assert_eq!(row.group, g);
    assert!(matches!(
        s.save_page_group(t, "601", &g, true).await,
        Err(Error::Conflict(_))
    ));
    // The number space is shared: a ring group cannot take 600 now, nor another page group.
    let spec: engine::hunt::GroupSpec = serde_json::from_str(
        r#"{"strategy":"simultaneous","members":["1001"],"ring_s":10,"timeout_s":30,"no_answer":"hangup","cid_prefix":"","cos":"internal"}"#,
    )
    .expect("group spec");
    let e = s
        .put_group(t, "sales", "600", &spec, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("page group all"), "{e}");
    let other = group("floor2", &["1001"]);
    let e = s.save_page_group(t, "600", &other, true).await.unwrap_err();
    assert!(e.to_string().contains("page group all"), "{e}");
    // Replaced (its own number kept), listed, found.
    g.members = vec!["1002".into()];
    let row = s.save_page_group(t, "600", &g, false).await.unwrap();
    assert_eq!(row.group.members, vec!["1002".to_string()]);
    s.save_page_group(t, "", &other, true).await.unwrap();
    let names: Vec<String> = s
        .list_page_groups(t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["all".to_string(), "floor2".to_string()]);
    assert_eq!(s.all_page_groups().await.unwrap().len(), 2);
    assert!(s.page_group(t, "all").await.unwrap().is_some());
    // Replacing a group that does not exist, deleting twice.
    assert!(matches!(
        s.save_page_group(t, "", &group("none", &["1001"]), false)
            .await,
        Err(Error::NotFound(_))
    ));
    s.delete_page_group(t, "all").await.unwrap();
    assert!(matches!(
        s.delete_page_group(t, "all").await,
        Err(Error::NotFound(_))
    ));
    assert!(s.page_group(t, "all").await.unwrap().is_none());
}
