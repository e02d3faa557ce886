//! Call recording tables against real SQLite and PostgreSQL: policies need their objects,
//! settings are validated, recordings are completed, found per call, expire by their tenant's
//! retention, and come back in backups.

mod common;

use chrono::{Duration, Utc};
use engine::recording::{RecObject, RecPolicy};
use store::recording::{PolicyRow, RecSettings};
use store::{Backend, Error, NewExtension};

both_backends!(recording_policies_settings_and_rows,);

async fn recording_policies_settings_and_rows(b: Backend) {
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
    let e = s
        .set_recording_policy(t, RecObject::Route, "nope", RecPolicy::Always)
        .await;
    assert!(matches!(e, Err(Error::NotFound(_))), "{e:?}");
    s.set_recording_policy(t, RecObject::Extension, "1001", RecPolicy::Always)
        .await
        .unwrap();
    assert_eq!(
        s.recording_policies_of(t, &[(RecObject::Extension, "1001".into())])
            .await
            .unwrap(),
        vec![RecPolicy::Always]
    );
    let bad = RecSettings {
        layout: "surround".into(),
        ..RecSettings::default()
    };
    assert!(matches!(
        s.set_recording_settings(t, &bad).await,
        Err(Error::Invalid {
            field: "layout",
            ..
        })
    ));
    let set = RecSettings {
        retention_days: 7,
        format: "opus".into(),
        layout: "mono".into(),
    };
    s.set_recording_settings(t, &set).await.unwrap();

    let now = Utc::now();
    let old = now - Duration::days(8);
    let a = s
        .recording_started(t, "old@x", "recordings/1/a.opus", "opus", old)
        .await
        .unwrap();
    s.recording_stopped(a, old, 2500, "stopped", "", true)
        .await
        .unwrap();
    let c = s
        .recording_started(t, "new@x", "recordings/1/c.opus", "opus", now)
        .await
        .unwrap();
    s.recording_stopped(c, now, 100, "error", "boom", false)
        .await
        .unwrap();
    let r = s.recording(t, c).await.unwrap().unwrap();
    assert_eq!(
        (r.status.as_str(), r.path.as_str()),
        ("error", ""),
        "no file kept"
    );
    assert_eq!(r.detail, "boom");
    let of = s
        .recordings_of_calls(t, &["old@x".into(), "new@x".into()])
        .await
        .unwrap();
    assert_eq!(of.len(), 2);
    assert_eq!(
        s.list_recordings(t, Some("old@x"), 10).await.unwrap().len(),
        1
    );
    let exp = s.expired_recordings(now, 100).await.unwrap();
    assert_eq!(exp.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);

    // Backups carry all three tables.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar.gz");
    store::backup::create(&s, dir.path(), &file).await.unwrap();
    s.set_recording_policy(t, RecObject::Extension, "1001", RecPolicy::Never)
        .await
        .unwrap();
    s.set_recording_settings(t, &RecSettings::default())
        .await
        .unwrap();
    s.mark_recording_expired(a).await.unwrap();
    store::backup::restore(&s, dir.path(), &file).await.unwrap();
    assert_eq!(
        s.recording_policies(t).await.unwrap(),
        vec![PolicyRow {
            kind: RecObject::Extension,
            name: "1001".into(),
            policy: RecPolicy::Always
        }]
    );
    assert_eq!(s.recording_settings(t).await.unwrap(), set);
    assert_eq!(s.recording(t, a).await.unwrap().unwrap().status, "stopped");
    // Ids continue after a restore (PostgreSQL sequences follow restored ids).
    let d = s
        .recording_started(t, "after@x", "recordings/1/d.wav", "wav", now)
        .await
        .unwrap();
    assert!(d > c);
}
