//! The cluster write fence (`store::fence`) on both backends: a write with a stale epoch is
//! refused and nothing of it is committed; a newer epoch in the database is announced.

mod common;

use std::time::{Duration, Instant};

use store::fence::{Refusal, Stamp};
use store::{Error, NewExtension, Store};

both_backends!(
    stale_epoch_write_is_refused_and_nothing_is_committed,
    ended_authority_and_missing_grant_refuse_before_anything,
    unstamped_epoch_is_refused,
    group_commit_writes_are_fenced_too,
);

fn ext(n: &str) -> NewExtension {
    NewExtension {
        number: n.into(),
        ..Default::default()
    }
}

async fn add(s: &Store, n: &str) -> Result<store::Extension, Error> {
    let t = s.default_tenant().await.expect("tenant").id;
    s.create_extension(t, ext(n)).await
}

async fn exists(s: &Store, n: &str) -> bool {
    let t = s.default_tenant().await.expect("tenant").id;
    s.extension(t, n).await.expect("read").is_some()
}

fn fenced(r: Result<store::Extension, Error>) -> Refusal {
    match r {
        Err(Error::Fenced(why)) => why,
        other => panic!("expected a fenced refusal, got {other:?}"),
    }
}

/// Two "nodes" on one database: node 1 active under epoch 5, node 2 takes over with epoch 6;
/// node 1, still believing in its grant, writes: refused, not committed, the newer epoch
/// announced.
async fn stale_epoch_write_is_refused_and_nothing_is_committed(b: store::Backend) {
    let (old, url, _g) = common::store(b).await;
    let new = Store::open(&url, common::opts())
        .await
        .expect("second store");
    assert_eq!(old.cluster_epoch().await.expect("epoch"), 0);
    old.fence().enable();
    new.fence().enable();
    assert_eq!(
        old.stamp_epoch(5, 1).await.expect("stamp"),
        Stamp::Stamped { was: 0 }
    );
    old.fence()
        .grant(5, Some(Instant::now() + Duration::from_secs(60)));
    add(&old, "1001")
        .await
        .expect("the active writes under its epoch");
    assert_eq!(new.cluster_epoch().await.expect("epoch"), 5);

    let mut newer = old.fence().watch_newer();
    assert_eq!(
        new.stamp_epoch(6, 2).await.expect("stamp"),
        Stamp::Stamped { was: 5 }
    );
    new.fence().grant(6, None);
    let why = fenced(add(&old, "1002").await);
    assert_eq!(why, Refusal::NewerEpoch { ours: 5, db: 6 });
    assert!(
        !exists(&new, "1002").await,
        "nothing of the stale write committed"
    );
    assert!(newer.has_changed().expect("open"));
    assert_eq!(*newer.borrow_and_update(), 6);
    assert!(old.fence().refused() >= 1);
    // The old node cannot stamp itself back either.
    assert_eq!(old.stamp_epoch(5, 1).await.expect("stamp"), Stamp::Newer(6));
    assert_eq!(new.cluster_epoch().await.expect("epoch"), 6);
    // The new active writes; the old one's row of before is there (acknowledged, kept).
    add(&new, "1003").await.expect("the new active writes");
    assert!(exists(&new, "1001").await);
    assert!(exists(&old, "1003").await);
    new.close().await;
}

async fn ended_authority_and_missing_grant_refuse_before_anything(b: store::Backend) {
    let (s, _url, _g) = common::store(b).await;
    add(&s, "2001")
        .await
        .expect("a standalone store is not fenced");
    s.fence().enable();
    assert_eq!(fenced(add(&s, "2002").await), Refusal::NotActive);
    s.stamp_epoch(3, 1).await.expect("stamp");
    // A grant whose end has passed: the process was frozen past its lease.
    s.fence()
        .grant(3, Some(Instant::now() - Duration::from_millis(1)));
    assert_eq!(
        fenced(add(&s, "2003").await),
        Refusal::AuthorityEnded { epoch: 3 }
    );
    s.fence()
        .grant(3, Some(Instant::now() + Duration::from_secs(60)));
    add(&s, "2004").await.expect("granted");
    s.fence().revoke();
    assert_eq!(fenced(add(&s, "2005").await), Refusal::NotActive);
    for n in ["2002", "2003", "2005"] {
        assert!(!exists(&s, n).await, "{n} was refused, not written");
    }
    assert!(exists(&s, "2004").await);
    // Reads are never fenced.
    assert_eq!(
        s.list_extensions(
            s.default_tenant().await.expect("t").id,
            None,
            store::Page::default()
        )
        .await
        .expect("list")
        .len(),
        2
    );
}

async fn unstamped_epoch_is_refused(b: store::Backend) {
    let (s, _url, _g) = common::store(b).await;
    s.fence().enable();
    s.stamp_epoch(4, 1).await.expect("stamp");
    s.fence().grant(9, None);
    assert_eq!(
        fenced(add(&s, "3001").await),
        Refusal::NotStamped { ours: 9, db: 4 }
    );
    assert_eq!(
        s.stamp_epoch(9, 1).await.expect("stamp"),
        Stamp::Stamped { was: 4 }
    );
    add(&s, "3001").await.expect("stamped now");
    // Stamping the same epoch again is harmless.
    assert_eq!(
        s.stamp_epoch(9, 1).await.expect("stamp"),
        Stamp::Stamped { was: 9 }
    );
}

/// The hot path (registrations, call records) goes through the group-commit writer: fenced in
/// the same place.
async fn group_commit_writes_are_fenced_too(b: store::Backend) {
    let (s, _url, _g) = common::store(b).await;
    s.fence().enable();
    s.stamp_epoch(2, 1).await.expect("stamp");
    let cdr = || store::NewCdr {
        tenant_id: 1,
        call_id: "fence-test".into(),
        caller: "1001".into(),
        callee: "1002".into(),
        caller_name: String::new(),
        start_time: chrono::Utc::now(),
        answer_time: None,
        end_time: chrono::Utc::now(),
        duration_s: 0,
        billsec: 0,
        disposition: store::Disposition::NoAnswer,
        hangup_by: store::HangupBy::Caller,
        hangup_cause: "CANCEL".into(),
        codec: String::new(),
        a: Default::default(),
        b: Default::default(),
        route: Default::default(),
    };
    match s.insert_cdr(cdr()).await {
        Err(Error::Fenced(Refusal::NotActive)) => {}
        other => panic!("expected a fenced refusal, got {other:?}"),
    }
    s.fence().grant(2, None);
    s.insert_cdr(cdr()).await.expect("granted");
    let n = s
        .count_cdrs(&store::CdrQuery::default())
        .await
        .expect("count");
    assert_eq!(n, 1, "only the granted record was written");
}

/// An old Active frozen in the middle of a fenced transaction (here: a raw connection that ran
/// the fence's statement and a write, then went silent) can neither hold the new Active's stamp
/// up for long nor commit after it: PostgreSQL ends its idle session, the stamp goes through,
/// and its COMMIT fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_frozen_transaction_cannot_block_the_stamp_or_commit_after_it() {
    use sqlx::Connection as _;
    let (old, url, _g) = common::store(store::Backend::Postgres).await;
    old.fence().enable();
    old.stamp_epoch(5, 1).await.expect("stamp");
    let mut frozen = sqlx::PgConnection::connect(&url).await.expect("connect");
    let mut tx = frozen.begin().await.expect("begin");
    let row = sqlx::query(store::fence::SQL_PG_CHECK)
        .fetch_one(&mut *tx)
        .await
        .expect("fence statement");
    assert_eq!(sqlx::Row::get::<i64, _>(&row, "epoch"), 5);
    sqlx::query("UPDATE tenants SET name = 'frozen-write' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .expect("write");
    // The new Active stamps, retrying while the old transaction holds the row.
    let new = Store::open(&url, common::opts())
        .await
        .expect("second store");
    let mut attempts = 0;
    let stamped = loop {
        attempts += 1;
        match new.stamp_epoch(6, 2).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(attempts < 40, "the stamp never went through: {e}");
            }
        }
    };
    assert_eq!(stamped, Stamp::Stamped { was: 5 });
    assert!(
        attempts > 1,
        "the first attempt waited for the open transaction"
    );
    assert!(
        tx.commit().await.is_err(),
        "the frozen transaction cannot commit"
    );
    assert_ne!(
        new.default_tenant().await.expect("tenant").name,
        "frozen-write"
    );
    new.close().await;
}
