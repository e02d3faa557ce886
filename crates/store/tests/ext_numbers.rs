//! Numbers and the park lot, and what deleting an extension leaves behind, against real SQLite
//! and PostgreSQL: an extension, page group or conference room number inside the park lot's
//! slot range (the defaults 701–720, or the stored lot) is refused with a precise error, on
//! create and on renumbering; deleting an extension takes it out of the page groups that list
//! it and its pickup-group rows in the same transaction, refuses (changing nothing) when it is
//! a page group's only member, and ring groups naming it still refuse the delete.

mod common;

use engine::page::PageGroup;
use store::{Backend, Error, NewExtension};

both_backends!(
    numbers_in_the_park_lot,
    deleting_an_extension_leaves_no_membership
);

fn reason(e: Error) -> (&'static str, String) {
    match e {
        Error::Invalid { field, reason } => (field, reason),
        other => panic!("not a validation error: {other}"),
    }
}

fn ext(n: &str) -> NewExtension {
    NewExtension {
        number: n.into(),
        ..Default::default()
    }
}

fn page(name: &str, members: &[&str]) -> PageGroup {
    PageGroup::new(name, members.iter().map(|m| m.to_string()).collect())
}

async fn numbers_in_the_park_lot(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    // No stored lot: the defaults (701-720) are in force.
    let (field, why) = reason(s.create_extension(t, ext("705")).await.unwrap_err());
    assert_eq!(field, "number");
    assert!(
        why.contains("705 is a slot of the park lot (701-720)"),
        "{why}"
    );
    s.create_extension(t, ext("1001")).await.unwrap();
    s.create_extension(t, ext("721")).await.unwrap();
    let (_, why) = reason(
        s.save_page_group(t, "720", &page("all", &["1001"]), true)
            .await
            .unwrap_err(),
    );
    assert!(why.contains("park lot"), "{why}");
    let (_, why) = reason(
        s.put_conf(t, "701", &apps::conf::RoomSpec::default(), true)
            .await
            .unwrap_err(),
    );
    assert!(why.contains("park lot"), "{why}");
    // Renumbering into the range is refused too.
    s.save_page_group(t, "800", &page("all", &["1001"]), true)
        .await
        .unwrap();
    let (_, why) = reason(
        s.save_page_group(t, "710", &page("all", &["1001"]), false)
            .await
            .unwrap_err(),
    );
    assert!(why.contains("710 is a slot"), "{why}");
    // The lot moved: its new range is refused, the old one is free.
    let mut lot = s.park_lot(t).await.unwrap();
    lot.first = 900;
    lot.last = 905;
    s.set_park_lot(t, &lot).await.unwrap();
    s.create_extension(t, ext("705")).await.unwrap();
    let (_, why) = reason(s.create_extension(t, ext("903")).await.unwrap_err());
    assert!(why.contains("(900-905)"), "{why}");
    // The reverse check still holds: a lot over an existing number is refused.
    lot.first = 700;
    lot.last = 710;
    let (field, _) = reason(s.set_park_lot(t, &lot).await.unwrap_err());
    assert_eq!(field, "slots");
}

async fn deleting_an_extension_leaves_no_membership(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    for n in ["1001", "1002", "1003"] {
        s.create_extension(t, ext(n)).await.unwrap();
    }
    s.save_page_group(t, "", &page("all", &["1001", "1002", "1003"]), true)
        .await
        .unwrap();
    s.save_page_group(t, "", &page("desk", &["1002"]), true)
        .await
        .unwrap();
    s.set_pickup_groups(t, "1003", &["floor".to_string()])
        .await
        .unwrap();
    // 1002 is the only member of "desk": refused, nothing changed.
    let (field, why) = reason(s.delete_extension(t, "1002").await.unwrap_err());
    assert_eq!(field, "number");
    assert!(
        why.contains("extension 1002 is the only member of page group desk"),
        "{why}"
    );
    let all = s.page_group(t, "all").await.unwrap().unwrap();
    assert_eq!(all.group.members, ["1001", "1002", "1003"]);
    assert!(s.extension(t, "1002").await.unwrap().is_some());
    // 1003: out of "all" and of its pickup group, with the extension.
    s.delete_extension(t, "1003").await.unwrap();
    let all = s.page_group(t, "all").await.unwrap().unwrap();
    assert_eq!(all.group.members, ["1001", "1002"]);
    let pickup = s.pickup_groups(t).await.unwrap();
    assert!(
        pickup.iter().all(|(_, m)| !m.iter().any(|n| n == "1003")),
        "{pickup:?}"
    );
    // Deleting "desk" lets 1002 go.
    s.delete_page_group(t, "desk").await.unwrap();
    s.delete_extension(t, "1002").await.unwrap();
    let all = s.page_group(t, "all").await.unwrap().unwrap();
    assert_eq!(all.group.members, ["1001"]);
}
