//! IVR menus against real SQLite and PostgreSQL: options must name destinations that exist,
//! the menu number must not be an extension's, a menu in use cannot be removed, and the menus
//! come back in backups.

mod common;

use apps::ivr::MenuSpec;
use store::{Backend, DidSpec, Error, NewExtension};

both_backends!(ivr_menus_and_their_references,);

fn field(e: Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    }
}

fn menu(options: &[(char, &str)]) -> MenuSpec {
    MenuSpec {
        greeting: "main-greeting".into(),
        options: options.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..MenuSpec::default()
    }
}

async fn ivr_menus_and_their_references(b: Backend) {
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
    // Refusals name the field and change nothing.
    let e = s
        .put_ivr(t, "main", "500", &menu(&[('1', "ext:4040")]), true)
        .await
        .unwrap_err();
    assert_eq!(field(e), "options");
    let e = s
        .put_ivr(t, "main", "1001", &menu(&[('1', "ext:1001")]), true)
        .await
        .unwrap_err();
    assert_eq!(field(e), "number");
    let e = s
        .put_ivr(t, "main", "500", &menu(&[('1', "ivr:sales")]), true)
        .await
        .unwrap_err();
    assert_eq!(field(e), "options");
    let e = s
        .put_ivr(t, "bad name", "", &menu(&[('1', "ext:1001")]), true)
        .await
        .unwrap_err();
    assert_eq!(field(e), "name");
    assert!(s.list_ivrs(t).await.unwrap().is_empty());
    // Nested menus: sales first, then main pointing at it (and at itself to repeat).
    s.put_ivr(t, "sales", "", &menu(&[('1', "ext:1001")]), true)
        .await
        .unwrap();
    let m = s
        .put_ivr(
            t,
            "main",
            "500",
            &menu(&[('1', "ext:1001"), ('2', "ivr:sales"), ('*', "ivr:main")]),
            true,
        )
        .await
        .unwrap();
    assert_eq!(m.number, "500");
    assert!(matches!(
        s.put_ivr(t, "main", "", &menu(&[('1', "ext:1001")]), true)
            .await,
        Err(Error::Conflict(_))
    ));
    // Nor an extension.
    let e = s
        .create_extension(
            t,
            NewExtension {
                number: "500".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field(e), "number");
    // Another menu cannot take the same number.
    assert!(
        s.put_ivr(t, "other", "500", &menu(&[('1', "ext:1001")]), true)
            .await
            .is_err()
    );
    // A DID may now send callers to the menu.
    s.put_did(
        t,
        "0312345678",
        &DidSpec {
            destination: "ivr:main".into(),
            ..DidSpec::default()
        },
        true,
    )
    .await
    .unwrap();
    let e = s.delete_ivr(t, "main").await.unwrap_err();
    assert_eq!(field(e), "name");
    let e = s.delete_ivr(t, "sales").await.unwrap_err();
    assert_eq!(field(e), "name", "main's option 2 uses it");
    s.delete_did(t, "0312345678").await.unwrap();
    s.delete_ivr(t, "main").await.unwrap();
    assert_eq!(s.list_ivrs(t).await.unwrap().len(), 1);
    // Backups carry menus.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar.gz");
    store::backup::create(&s, dir.path(), &file).await.unwrap();
    s.delete_ivr(t, "sales").await.unwrap();
    store::backup::restore(&s, dir.path(), &file).await.unwrap();
    let back = s.ivr(t, "sales").await.unwrap().expect("restored");
    assert_eq!(
        back.spec.options.get(&'1').map(String::as_str),
        Some("ext:1001")
    );
}
