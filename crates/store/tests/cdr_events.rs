//! A call's events (transfers) stored beside its one record, read back in order by the
//! record's id, on both backends.

mod common;

use chrono::{TimeZone, Utc};
use store::{CdrEvent, Disposition, HangupBy, LegStats, NewCdr};

fn record(tenant: i64, call_id: &str) -> NewCdr {
    let t = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    NewCdr {
        tenant_id: tenant,
        call_id: call_id.into(),
        caller: "1001".into(),
        callee: "1002".into(),
        caller_name: String::new(),
        start_time: t,
        answer_time: Some(t),
        end_time: t,
        duration_s: 0,
        billsec: 0,
        disposition: Disposition::Answered,
        hangup_by: HangupBy::Caller,
        hangup_cause: "BYE".into(),
        codec: "PCMU".into(),
        a: LegStats::default(),
        b: LegStats::default(),
        route: Default::default(),
    }
}

fn ev(seq: i64, kind: &str) -> CdrEvent {
    CdrEvent {
        seq,
        at: Utc
            .timestamp_millis_opt(1_790_000_001_250)
            .single()
            .unwrap(),
        kind: kind.into(),
        by: "1002".into(),
        party: "1001".into(),
        target: "1003".into(),
        status: if kind == "failed" { 486 } else { 200 },
    }
}

async fn events_follow_their_record(b: store::Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    s.insert_cdr_events(t, "call-x", &[ev(0, "failed"), ev(1, "callback")])
        .await
        .unwrap();
    let id = s.insert_cdr(record(t, "call-x")).await.unwrap();
    assert_eq!(
        s.cdr_events(id).await.unwrap(),
        vec![ev(0, "failed"), ev(1, "callback")]
    );
    let other = s.insert_cdr(record(t, "call-y")).await.unwrap();
    assert!(s.cdr_events(other).await.unwrap().is_empty());
    // The same Call-ID in another tenant is another call.
    let t2 = s.create_tenant("other", "other.example").await.unwrap().id;
    let id2 = s.insert_cdr(record(t2, "call-x")).await.unwrap();
    assert!(s.cdr_events(id2).await.unwrap().is_empty());
}

both_backends!(events_follow_their_record);
