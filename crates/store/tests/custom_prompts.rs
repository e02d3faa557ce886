//! Named custom prompts against real SQLite and PostgreSQL: names are checked, variants per
//! language replace each other, a prompt an IVR menu plays can be neither deleted nor renamed
//! (the refusal names the menu), and rows and files come back from a backup.

mod common;

use apps::ivr::MenuSpec;
use store::{Backend, CUSTOM_PROMPT_IN_USE, Error, NewCustomPrompt, NewExtension};

both_backends!(custom_prompts,);

fn field(e: Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    }
}

fn new(name: &str, lang: &str, sha: &str) -> NewCustomPrompt {
    NewCustomPrompt {
        name: name.into(),
        lang: lang.into(),
        description: None,
        source: "uploaded".into(),
        original_name: "greeting.mp3".into(),
        original_format: "MP3".into(),
        recorded_by: String::new(),
        duration_ms: 2500,
        sha256: sha.into(),
    }
}

async fn custom_prompts(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    // Names and languages are checked; a catalogue id is not a custom name.
    for (bad, f) in [
        (new("Main", "any", "x"), "name"),
        (new("goodbye", "any", "x"), "name"),
        (new("main-greeting", "fr", "x"), "lang"),
    ] {
        assert_eq!(field(s.put_custom_prompt(t, &bad).await.unwrap_err()), f);
    }
    let mut first = new("main-greeting", "any", "aa");
    first.description = Some("Weekday greeting".into());
    let row = s.put_custom_prompt(t, &first).await.unwrap();
    assert_eq!(
        (
            row.name.as_str(),
            row.lang.as_str(),
            row.description.as_str()
        ),
        ("main-greeting", "any", "Weekday greeting")
    );
    // Replacing the variant keeps its description and creation time.
    let again = s
        .put_custom_prompt(t, &new("main-greeting", "any", "bb"))
        .await
        .unwrap();
    assert_eq!(again.id, row.id);
    assert_eq!(again.sha256, "bb");
    assert_eq!(again.description, "Weekday greeting");
    assert_eq!(again.created_at, row.created_at);
    s.put_custom_prompt(t, &new("main-greeting", "ja", "cc"))
        .await
        .unwrap();
    s.put_custom_prompt(t, &new("holiday-closed", "en", "dd"))
        .await
        .unwrap();
    let all = s.custom_prompts(t).await.unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|r| (r.name.as_str(), r.lang.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("holiday-closed", "en"),
            ("main-greeting", "any"),
            ("main-greeting", "ja")
        ]
    );

    // An IVR plays main-greeting: it cannot go, nor be renamed; one variant of two can go.
    s.create_extension(
        t,
        NewExtension {
            number: "1001".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let menu = MenuSpec {
        greeting: "main-greeting".into(),
        options: [('1', "ext:1001".to_string())].into_iter().collect(),
        ..MenuSpec::default()
    };
    s.put_ivr(t, "main", "500", &menu, true).await.unwrap();
    assert_eq!(
        s.custom_prompt_users(t, "main-greeting").await.unwrap(),
        ["main"]
    );
    let e = s
        .delete_custom_prompt(t, "main-greeting", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ivr:main"), "{e}");
    assert_eq!(field(e), CUSTOM_PROMPT_IN_USE);
    let e = s
        .edit_custom_prompt(t, "main-greeting", Some("weekday"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ivr:main"), "{e}");
    let gone = s
        .delete_custom_prompt(t, "main-greeting", Some("ja"))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    let e = s
        .delete_custom_prompt(t, "main-greeting", Some("any"))
        .await
        .unwrap_err();
    assert_eq!(field(e), CUSTOM_PROMPT_IN_USE, "the last variant stays");
    assert!(matches!(
        s.delete_custom_prompt(t, "nope", None).await,
        Err(Error::NotFound(_))
    ));

    // An unused prompt is renamed (not onto a taken name) and described.
    assert!(matches!(
        s.edit_custom_prompt(t, "holiday-closed", Some("main-greeting"), None)
            .await,
        Err(Error::Conflict(_))
    ));
    let renamed = s
        .edit_custom_prompt(t, "holiday-closed", Some("closed"), Some("Closed days"))
        .await
        .unwrap();
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].name, "closed");
    assert_eq!(renamed[0].description, "Closed days");
    assert!(
        s.custom_prompt(t, "holiday-closed")
            .await
            .unwrap()
            .is_empty()
    );

    // Rows and files are in backups.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("b.tar");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let src = apps::custom_prompt::path(
        &data,
        t,
        apps::custom_prompt::Variant::Lang(apps::prompt::Lang::En),
        "closed",
    );
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::write(&src, b"RIFF-not-really").unwrap();
    store::backup::create(&s, &data, &archive).await.unwrap();
    s.delete_custom_prompt(t, "closed", None).await.unwrap();
    std::fs::remove_file(&src).unwrap();
    store::backup::restore(&s, &data, &archive).await.unwrap();
    let back = s.custom_prompt(t, "closed").await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].description, "Closed days");
    assert!(src.is_file(), "the prompt's file is restored too");
}
