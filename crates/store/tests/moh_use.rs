//! Who uses a music-on-hold class, on both backends: the node's `moh.class`, a tenant's own
//! (which hides the node's for that tenant) and the park lot; removal refused naming them.

mod common;

use engine::park::ParkLot;

async fn users_of_a_class(b: store::Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    let other = s.create_tenant("Other", "other.example").await.unwrap().id;
    assert!(s.moh_class_users(t, "jazz").await.unwrap().is_empty());
    s.moh_class_removable(t, "jazz").await.unwrap();
    // The node's setting applies to every tenant without its own.
    s.set_setting(None, "moh.class", &"jazz").await.unwrap();
    let u = s.moh_class_users(t, "jazz").await.unwrap();
    assert_eq!(u, vec!["the node's setting moh.class".to_string()]);
    assert_eq!(s.moh_class_users(other, "jazz").await.unwrap().len(), 1);
    // A tenant's own value hides the node's.
    s.set_setting(Some(other), "moh.class", &"calm")
        .await
        .unwrap();
    assert!(s.moh_class_users(other, "jazz").await.unwrap().is_empty());
    assert_eq!(
        s.moh_class_users(other, "calm").await.unwrap(),
        vec!["the tenant's setting moh.class".to_string()]
    );
    // The park lot.
    let lot = ParkLot {
        moh_class: "calm".into(),
        ..ParkLot::default()
    };
    s.set_park_lot(other, &lot).await.unwrap();
    let e = s
        .moh_class_removable(other, "calm")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("moh.class") && e.contains("park lot") && e.contains("calm"),
        "{e}"
    );
    s.moh_class_removable(other, "jazz").await.unwrap();
}

both_backends!(users_of_a_class);
