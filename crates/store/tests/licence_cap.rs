//! The licence's creation caps against real SQLite and PostgreSQL: the count and the insert
//! are one serialised step, so many concurrent creates at the limit leave exactly the limit
//! (the others are refused with `Error::Limit`, nothing half-written).

mod common;

use store::{Backend, Error, NewExtension};

both_backends!(concurrent_extension_creates_stop_at_the_cap, tenant_cap);

/// How many creates race for the last free places.
const RACERS: usize = 16;

async fn concurrent_extension_creates_stop_at_the_cap(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    // 3 exist, the cap is 5: of 16 concurrent creates exactly 2 may succeed.
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
    // Several rounds: one lucky interleaving must not hide a race.
    for round in 0..3u64 {
        let cap = 5 + round * 2;
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let (s, start) = (s.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                s.create_extension_capped(
                    t,
                    NewExtension {
                        number: format!("2{round}{i:02}"),
                        ..Default::default()
                    },
                    Some(cap),
                )
                .await
            }));
        }
        let (mut ok, mut limited) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::Limit {
                    what,
                    limit,
                    current,
                }) => {
                    assert_eq!((what, limit, current), ("extensions", cap, cap));
                    limited += 1;
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!((ok, limited), (2, RACERS - 2), "round {round}");
        assert_eq!(s.count_extensions(t, None).await.unwrap() as u64, cap);
    }
    // The message says what the limit is; no cap means none.
    let e = s
        .create_extension_capped(
            t,
            NewExtension {
                number: "3000".into(),
                ..Default::default()
            },
            Some(9),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "the limit allows 9 extensions; 9 exist");
    s.create_extension_capped(
        t,
        NewExtension {
            number: "3000".into(),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
}

async fn tenant_cap(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    // The default tenant exists: a cap of 3 admits 2 more of 8 racing.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_tenant_capped(&format!("t{i}"), &format!("r{i}"), Some(3))
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Limit {
                what: "tenants", ..
            }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(s.list_tenants().await.unwrap().len(), 3);
}
