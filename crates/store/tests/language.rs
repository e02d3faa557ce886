//! Prompt languages of tenants and extensions: stored, checked, inherited as empty, and carried
//! by backups, on SQLite and PostgreSQL.

mod common;

use store::backup;
use store::{Backend, Error, ExtensionUpdate, NewExtension};

both_backends!(prompt_languages_are_stored_checked_and_backed_up);

fn lang_field(r: store::Result<impl std::fmt::Debug>) -> (&'static str, String) {
    match r {
        Err(Error::Invalid { field, reason }) => (field, reason),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn prompt_languages_are_stored_checked_and_backed_up(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap();
    assert_eq!(t.language, "", "a new tenant inherits the node setting");
    let acme = s.create_tenant("acme", "acme.example").await.unwrap();
    assert_eq!(acme.language, "");

    let t2 = s.set_tenant_language(t.id, "ja").await.unwrap();
    assert_eq!(t2.language, "ja");
    assert_eq!(s.default_tenant().await.unwrap().language, "ja");
    assert_eq!(s.tenant(acme.id).await.unwrap().unwrap().language, "");
    let (field, reason) = lang_field(s.set_tenant_language(t.id, "fr").await);
    assert_eq!(field, "language");
    assert!(
        reason.contains("\"fr\"") && reason.contains("en, ja"),
        "{reason}"
    );
    assert!(matches!(
        s.set_tenant_language(99_999, "en").await,
        Err(Error::NotFound(_))
    ));

    let e = s
        .create_extension(
            t.id,
            NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        e.language, "",
        "a new extension inherits the tenant's language"
    );
    let set = |l: &str| ExtensionUpdate {
        language: Some(l.into()),
        ..Default::default()
    };
    let e = s.update_extension(t.id, "1001", set("en")).await.unwrap();
    assert_eq!(e.language, "en");
    // Other updates leave it alone.
    let e = s
        .update_extension(
            t.id,
            "1001",
            ExtensionUpdate {
                display_name: Some("Aiko".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (e.display_name.as_str(), e.language.as_str()),
        ("Aiko", "en")
    );
    let (field, _) = lang_field(s.update_extension(t.id, "1001", set("EN")).await);
    assert_eq!(field, "language");
    assert_eq!(
        s.extension(t.id, "1001").await.unwrap().unwrap().language,
        "en",
        "a refused value changes nothing"
    );
    s.create_extension(
        t.id,
        NewExtension {
            number: "1002".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.update_extension(t.id, "1002", set("ja")).await.unwrap();
    s.update_extension(t.id, "1002", set("")).await.unwrap();
    assert_eq!(
        s.extension(t.id, "1002").await.unwrap().unwrap().language,
        ""
    );

    // A backup restored into a fresh database of the same backend keeps both.
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let archive = work.path().join("b.tar");
    backup::create(&s, &data, &archive).await.unwrap();
    let (r, _u2, _g2) = common::store(b).await;
    let rdata = work.path().join("rdata");
    backup::restore(&r, &rdata, &archive).await.unwrap();
    assert_eq!(r.default_tenant().await.unwrap().language, "ja");
    assert_eq!(
        r.extension(t.id, "1001").await.unwrap().unwrap().language,
        "en"
    );
    assert_eq!(
        r.extension(t.id, "1002").await.unwrap().unwrap().language,
        ""
    );
}
