//! Call park on both backends: the lot's defaults, a stored lot (reloaded by the change
//! notice), a range over another number refused with its owner, parked-call rows written,
//! replaced, listed and deleted.

mod common;

use std::time::{Duration, SystemTime};

use engine::park::{LegRecord, ParkLot, ParkRecord};
use store::NewExtension;

fn record(slot: u32, caller: &str) -> ParkRecord {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    ParkRecord {
        tenant: 1,
        slot,
        caller: caller.into(),
        caller_name: "Front desk".into(),
        parker: "1002".into(),
        parked_at: at,
        timeout_at: at + Duration::from_secs(120),
        call_id: format!("call-{slot}"),
        leg: Some(LegRecord {
            invite: "INVITE sip:*70@pbx SIP/2.0\r\n\r\n".into(),
            our_tag: "t1".into(),
            peer: "127.0.0.1:5062".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            transport: "UDP".into(),
            remote_seq: Some(2),
            local_seq: None,
        }),
    }
}

async fn lot_and_rows(b: store::Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    assert_eq!(s.park_lot(t).await.unwrap(), ParkLot::default());
    let lot = ParkLot {
        first: 801,
        last: 810,
        timeout: Duration::from_secs(45),
        moh_class: "jazz".into(),
        fallback: "vm:1001".into(),
    };
    s.set_park_lot(t, &lot).await.unwrap();
    assert_eq!(s.park_lot(t).await.unwrap(), lot);
    assert_eq!(s.park_lots().await.unwrap().len(), 1);
    // A range over an extension's number is refused, naming it; nothing changes.
    s.create_extension(
        t,
        NewExtension {
            number: "905".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let over = ParkLot {
        first: 900,
        last: 910,
        ..ParkLot::default()
    };
    let e = s.set_park_lot(t, &over).await.unwrap_err().to_string();
    assert!(e.contains("905") && e.contains("extension"), "{e}");
    let bad = ParkLot {
        timeout: Duration::from_secs(1),
        ..ParkLot::default()
    };
    assert!(s.set_park_lot(t, &bad).await.is_err());
    assert_eq!(s.park_lot(t).await.unwrap(), lot);

    // Rows: written, replaced per slot, listed by slot, deleted.
    s.park_save(&record(702, "1001")).await.unwrap();
    s.park_save(&record(701, "1003")).await.unwrap();
    s.park_save(&record(702, "1004")).await.unwrap();
    let rows = s.park_calls().await.unwrap();
    assert_eq!(rows, vec![record(701, "1003"), record(702, "1004")]);
    s.park_free(t, 701).await.unwrap();
    s.park_free(t, 701).await.unwrap();
    assert_eq!(s.park_calls().await.unwrap(), vec![record(702, "1004")]);
}

both_backends!(lot_and_rows);
