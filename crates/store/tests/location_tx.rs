//! One REGISTER, one transaction, against real SQLite and PostgreSQL: a REGISTER's location
//! changes (removals and refreshes together, or several refreshed contacts) are written all or
//! none, so a failure part-way leaves the previous registration intact, never half of the new.

mod common;

use chrono::{DateTime, Utc};
use store::{Backend, BindingUpsert, LocationWrite, NewExtension, Store};

both_backends!(
    mixed_register_is_one_transaction,
    upsert_only_registers_commit_whole
);

/// An extension id that does not exist: its row fails the foreign key, like a write that
/// fails part-way (a crash between two transactions leaves the same half state).
const NO_SUCH_EXTENSION: i64 = 999_999;

fn binding(tenant: i64, ext: i64, contact: &str, now: DateTime<Utc>) -> BindingUpsert {
    common::binding(tenant, ext, contact, now, 3600)
}

async fn setup(s: &Store) -> (i64, i64) {
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
    (t, e.id)
}

async fn contacts(s: &Store, ext: i64) -> Vec<String> {
    let mut v: Vec<String> = s
        .bindings_for_extension(ext, Utc::now())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.contact_uri)
        .collect();
    v.sort();
    v
}

async fn mixed_register_is_one_transaction(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let (t, ext) = setup(&s).await;
    let now = Utc::now();
    s.write_location(&[
        LocationWrite::Upsert(Box::new(binding(t, ext, "sip:a@192.0.2.10", now))),
        LocationWrite::Upsert(Box::new(binding(t, ext, "sip:b@192.0.2.10", now))),
    ])
    .await
    .unwrap();
    assert_eq!(
        contacts(&s, ext).await,
        ["sip:a@192.0.2.10", "sip:b@192.0.2.10"]
    );
    // Remove a, refresh b, add c — and the last write fails: nothing of it is kept.
    let failing = [
        LocationWrite::Delete {
            extension_id: ext,
            contact_uri: "sip:a@192.0.2.10".into(),
        },
        LocationWrite::Upsert(Box::new(binding(t, ext, "sip:c@192.0.2.10", now))),
        LocationWrite::Upsert(Box::new(binding(
            t,
            NO_SUCH_EXTENSION,
            "sip:d@192.0.2.10",
            now,
        ))),
    ];
    assert!(s.write_location(&failing).await.is_err());
    assert_eq!(
        contacts(&s, ext).await,
        ["sip:a@192.0.2.10", "sip:b@192.0.2.10"],
        "a failed REGISTER left half a registration"
    );
    // The same REGISTER without the failing write: applied whole, in order.
    s.write_location(&failing[..2]).await.unwrap();
    assert_eq!(
        contacts(&s, ext).await,
        ["sip:b@192.0.2.10", "sip:c@192.0.2.10"]
    );
    // `Contact: *` then a new contact (order matters): only the new one remains.
    s.write_location(&[
        LocationWrite::DeleteAll { extension_id: ext },
        LocationWrite::Upsert(Box::new(binding(t, ext, "sip:e@192.0.2.10", now))),
    ])
    .await
    .unwrap();
    assert_eq!(contacts(&s, ext).await, ["sip:e@192.0.2.10"]);
    s.write_location(&[]).await.unwrap();
}

async fn upsert_only_registers_commit_whole(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let (t, ext) = setup(&s).await;
    let now = Utc::now();
    // Three REGISTERs in one call (one core-loop turn); the second refreshes two contacts
    // and one of its rows fails.
    let results = s
        .upsert_registrations(vec![
            vec![binding(t, ext, "sip:a@192.0.2.10", now)],
            vec![
                binding(t, ext, "sip:b@192.0.2.10", now),
                binding(t, NO_SUCH_EXTENSION, "sip:x@192.0.2.10", now),
            ],
            vec![
                binding(t, ext, "sip:c@192.0.2.10", now),
                binding(t, ext, "sip:d@192.0.2.10", now),
            ],
        ])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "{results:?}");
    assert!(results[2].is_ok(), "{results:?}");
    assert_eq!(
        contacts(&s, ext).await,
        ["sip:a@192.0.2.10", "sip:c@192.0.2.10", "sip:d@192.0.2.10"],
        "the failed REGISTER's other contact must not be written"
    );
    // What the per-row path did before: the failed REGISTER's good row was kept (half).
    let per_row = s
        .upsert_bindings(vec![
            binding(t, ext, "sip:b@192.0.2.10", now),
            binding(t, NO_SUCH_EXTENSION, "sip:x@192.0.2.10", now),
        ])
        .await;
    assert!(per_row[0].is_ok() && per_row[1].is_err(), "{per_row:?}");
    assert!(
        contacts(&s, ext)
            .await
            .contains(&"sip:b@192.0.2.10".to_string())
    );
}
