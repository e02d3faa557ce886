//! The backup server's rows: single-use pairing codes, peers, generations kept and pruned, the
//! PBX's shipping state, and importing an archive's call records once (also after the PBX was
//! restored from an older backup and numbers its records again).

mod common;

use chrono::{TimeDelta, TimeZone, Utc};
use store::backupsrv::{MAX_LIVE_CODES, NewGeneration};
use store::{Backend, Disposition, HangupBy, NewCdr, Store};

fn t(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

both_backends!(
    pairing_codes_are_single_use_expire_and_are_bounded,
    generations_are_counted_and_pruned,
    ship_state_records_outcomes,
    call_records_are_imported_once_and_after_a_rewind,
);

async fn pairing_codes_are_single_use_expire_and_are_bounded(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let now = t(0);
    s.create_pair_code("h1", now, now + TimeDelta::minutes(15))
        .await
        .unwrap();
    s.create_pair_code("h2", now, now + TimeDelta::seconds(10))
        .await
        .unwrap();
    assert_eq!(s.live_pair_codes(now).await.unwrap(), ["h1", "h2"]);
    assert_eq!(
        s.live_pair_codes(now + TimeDelta::seconds(11))
            .await
            .unwrap(),
        ["h1"],
        "expired codes are not offered"
    );
    let id = s
        .pair_peer("h1", "pbx1", "dn-1", "tok1", now)
        .await
        .unwrap()
        .expect("paired");
    assert_eq!(
        s.pair_peer("h1", "pbx2", "dn-2", "tok2", now)
            .await
            .unwrap(),
        None,
        "a code pairs once"
    );
    assert_eq!(
        s.pair_peer("h2", "pbx2", "dn-2", "tok2", now + TimeDelta::seconds(11))
            .await
            .unwrap(),
        None,
        "an expired code pairs nothing"
    );
    let p = s.peer_by_token("tok1", now).await.unwrap().expect("peer");
    assert_eq!((p.id, p.name.as_str()), (id, "pbx1"));
    assert!(s.peer_by_token("nope", now).await.unwrap().is_none());
    s.revoke_peer(id).await.unwrap();
    assert!(
        s.peer_by_token("tok1", now).await.unwrap().is_none(),
        "revoked"
    );
    assert!(s.revoke_peer(999).await.is_err());

    // h1 is spent and h2 expired: both are cleared, so MAX_LIVE_CODES fit again.
    let now = now + TimeDelta::seconds(11);
    for i in 0..MAX_LIVE_CODES {
        s.create_pair_code(&format!("x{i}"), now, now + TimeDelta::minutes(15))
            .await
            .unwrap();
    }
    assert!(
        s.create_pair_code("one-too-many", now, now + TimeDelta::minutes(15))
            .await
            .is_err()
    );
    // Once they expire, they are cleared and new ones can be made.
    let later = now + TimeDelta::minutes(16);
    s.create_pair_code("fresh", later, later + TimeDelta::minutes(15))
        .await
        .unwrap();
}

async fn generations_are_counted_and_pruned(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    for i in 0..4 {
        s.add_generation(
            NewGeneration {
                source: "pbx1".into(),
                size: 100 + i,
                sha256: format!("{i:064}"),
                ok: true,
                file: format!("g{i}.tar"),
                ..Default::default()
            },
            t(i),
        )
        .await
        .unwrap();
    }
    s.add_generation(
        NewGeneration {
            source: "pbx1".into(),
            ok: false,
            detail: "corrupt".into(),
            ..Default::default()
        },
        t(10),
    )
    .await
    .unwrap();
    let st = s.backup_server_state().await.unwrap();
    assert_eq!((st.received_total, st.rejected_total, st.keep), (4, 1, 7));
    let gone = s.prune_generations(2).await.unwrap();
    let mut gone = gone;
    gone.sort();
    assert_eq!(gone, ["g0.tar", "g1.tar"], "the oldest go");
    let ok = s.list_generations(true, 100).await.unwrap();
    assert_eq!(
        ok.iter().map(|g| g.file.as_str()).collect::<Vec<_>>(),
        ["g3.tar", "g2.tar"]
    );
    assert_eq!(s.list_generations(false, 100).await.unwrap().len(), 3);
    let g = s.generation(ok[0].id).await.unwrap().expect("row");
    assert_eq!((g.size, g.status.as_str()), (103, "ok"));
    assert!(s.set_backup_keep(0).await.is_err());
    s.set_backup_keep(3).await.unwrap();
    assert_eq!(s.backup_server_state().await.unwrap().keep, 3);
}

async fn ship_state_records_outcomes(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let st = s.ship_state().await.unwrap();
    assert!(!st.paired());
    s.set_ship_pairing("https://b:8443", "ff", "tok", "bak1", t(0))
        .await
        .unwrap();
    s.set_ship_schedule("02:00").await.unwrap();
    s.record_ship_attempt(t(1), Err("unreachable"))
        .await
        .unwrap();
    s.record_ship_attempt(t(2), Err("disk full")).await.unwrap();
    let st = s.ship_state().await.unwrap();
    assert!(st.paired());
    assert_eq!(
        (st.failures, st.failures_total, st.last_error.as_str()),
        (2, 2, "disk full")
    );
    assert_eq!(st.last_attempt_at, Some(t(2)));
    s.record_ship_attempt(t(3), Ok(1234)).await.unwrap();
    let st = s.ship_state().await.unwrap();
    assert_eq!(
        (st.failures, st.failures_total, st.successes_total),
        (0, 2, 1)
    );
    assert_eq!((st.last_success_at, st.last_size), (Some(t(3)), 1234));
    assert_eq!(st.daily_at, "02:00");
    s.clear_ship_pairing().await.unwrap();
    let st = s.ship_state().await.unwrap();
    assert!(!st.paired());
    assert_eq!((st.daily_at.as_str(), st.successes_total), ("02:00", 1));
}

fn cdr(call: &str, start: i64, disp: Disposition) -> NewCdr {
    NewCdr {
        tenant_id: 1,
        call_id: call.into(),
        caller: "1001".into(),
        callee: "1002".into(),
        caller_name: String::new(),
        start_time: t(start),
        answer_time: (disp == Disposition::Answered).then(|| t(start + 2)),
        end_time: t(start + 10),
        duration_s: 10,
        billsec: if disp == Disposition::Answered { 8 } else { 0 },
        disposition: disp,
        hangup_by: HangupBy::Caller,
        hangup_cause: String::new(),
        codec: "PCMU".into(),
        a: Default::default(),
        b: Default::default(),
        route: Default::default(),
    }
}

/// A SQLite source "PBX" with these records, backed up and extracted into a directory.
async fn archive_of(records: &[NewCdr]) -> (tempfile::TempDir, i64) {
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(
        dir.path().join("src.db").to_str().unwrap(),
        store::OpenOptions::default(),
    )
    .await
    .unwrap();
    for r in records {
        src.insert_cdr(r.clone()).await.unwrap();
    }
    let file = dir.path().join("a.tar");
    store::backup::create(&src, &dir.path().join("data"), &file)
        .await
        .unwrap();
    src.close().await;
    let x = dir.path().join("x");
    let m = store::backup::verify_into(&file, &x).unwrap();
    (dir, m.schema_version)
}

async fn call_records_are_imported_once_and_after_a_rewind(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let first: Vec<NewCdr> = (0..5)
        .map(|i| cdr(&format!("c{i}"), i * 60, Disposition::Answered))
        .collect();
    let (a, v) = archive_of(&first).await;
    let o = s.import_backup_cdrs(&a.path().join("x"), v).await.unwrap();
    assert_eq!((o.imported, o.skipped, o.rewound), (5, 0, false));
    let o = s.import_backup_cdrs(&a.path().join("x"), v).await.unwrap();
    assert_eq!(
        (o.imported, o.skipped),
        (0, 5),
        "the same generation again adds nothing"
    );

    // The next day's backup holds the old records and two new ones.
    let mut second = first.clone();
    second.push(cdr("c5", 400, Disposition::NoAnswer));
    second.push(cdr("c6", 500, Disposition::Busy));
    let (a2, v2) = archive_of(&second).await;
    let o = s
        .import_backup_cdrs(&a2.path().join("x"), v2)
        .await
        .unwrap();
    assert_eq!((o.imported, o.skipped), (2, 5));

    // The PBX was restored from the first backup and made one new call: its ids go back.
    let mut rewound = first.clone();
    rewound.push(cdr("c7", 600, Disposition::Answered));
    let (a3, v3) = archive_of(&rewound).await;
    let o = s
        .import_backup_cdrs(&a3.path().join("x"), v3)
        .await
        .unwrap();
    assert_eq!((o.imported, o.skipped, o.rewound), (1, 5, true));

    let agg = s.aggregate_reports("UTC", 1000, None).await.unwrap();
    assert_eq!(agg.records, 8);
    let q = store::report::ReportQuery {
        tenant_id: 1,
        period: store::report::Period::Day,
        dimension: store::report::Dimension::All,
        from: t(0).date_naive(),
        to: t(0).date_naive(),
        key: None,
    };
    let c = s.report_totals(&q).await.unwrap()[0].counts;
    assert_eq!((c.offered, c.answered, c.missed, c.busy), (8, 6, 1, 1));
}
