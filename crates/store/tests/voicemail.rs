//! Voicemail boxes and the message index against real SQLite and PostgreSQL: no default PIN,
//! hashed PINs with a lockout after repeated failures, exact counts per folder, a bound per
//! box, paths confined to the box, and both tables in backups.

mod common;

use apps::vmail::{BoxSpec, Folder, Greeting, Verdict};
use chrono::{Duration, Utc};
use store::{Backend, Error, NewExtension, NewVmMessage};

both_backends!(mailboxes_pins_and_messages,);

fn field(e: Error) -> &'static str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other}"),
    }
}

fn message(n: i64) -> NewVmMessage {
    NewVmMessage {
        mailbox: "1002".into(),
        caller: "1001".into(),
        caller_name: "Alice".into(),
        call_id: format!("call-{n}"),
        reason: "unavailable".into(),
        duration_ms: 4_000 + n,
        received_at_ms: 1_790_000_000_000 + n,
        path: format!("voicemail/1/1002/msg-{n}.wav"),
    }
}

async fn mailboxes_pins_and_messages(b: Backend) {
    let (s, url, _g) = common::store(b).await;
    let t = s.default_tenant().await.unwrap().id;
    assert_eq!(t, 1, "paths below assume the default tenant is 1");
    s.create_extension(
        t,
        NewExtension {
            number: "1002".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Every extension has a box with defaults and no PIN: not enterable by phone.
    let bx = s.vm_box(t, "1002").await.unwrap().expect("box");
    assert!(!bx.has_pin && bx.spec == BoxSpec::default());
    assert!(s.vm_box(t, "4040").await.unwrap().is_none());
    let now = Utc::now();
    assert_eq!(
        s.check_vm_pin(t, "1002", Some("0000"), now).await.unwrap(),
        Verdict::NoPin
    );
    assert_eq!(
        s.check_vm_pin(t, "4040", Some("2580"), now).await.unwrap(),
        Verdict::Wrong,
        "an unknown box looks like a wrong PIN"
    );

    // Settings are checked; a box of a missing extension is refused.
    let mut spec = BoxSpec {
        email: "alice@example.com".into(),
        max_message_s: 5,
        ..BoxSpec::default()
    };
    assert_eq!(
        field(s.put_vm_box(t, "1002", &spec).await.unwrap_err()),
        "max_message_s"
    );
    spec.max_message_s = 120;
    assert!(matches!(
        s.put_vm_box(t, "4040", &spec).await,
        Err(Error::NotFound(_))
    ));
    let bx = s.put_vm_box(t, "1002", &spec).await.unwrap();
    assert_eq!(bx.spec.max_message_s, 120);
    let bx = s
        .set_vm_greeting(t, "1002", Greeting::Busy, true)
        .await
        .unwrap();
    assert!(bx.spec.greeting_busy && bx.spec.email == "alice@example.com");

    // PINs: weak ones refused; stored hashed; right and wrong answers.
    assert_eq!(
        field(s.set_vm_pin(t, "1002", Some("1234")).await.unwrap_err()),
        "pin"
    );
    s.set_vm_pin(t, "1002", Some("2580")).await.unwrap();
    assert!(s.vm_box(t, "1002").await.unwrap().unwrap().has_pin);
    assert_eq!(
        s.check_vm_pin(t, "1002", Some("2580"), now).await.unwrap(),
        Verdict::Ok
    );
    assert_eq!(
        s.check_vm_pin(t, "1002", None, now).await.unwrap(),
        Verdict::Wrong,
        "skipping the PIN needs skip_pin_own_phone"
    );
    // The lockout: LOCK_AFTER wrong PINs lock the box, even for the right PIN, until it expires.
    for _ in 0..store::LOCK_AFTER {
        assert_eq!(
            s.check_vm_pin(t, "1002", Some("9999"), now).await.unwrap(),
            Verdict::Wrong
        );
    }
    assert_eq!(
        s.check_vm_pin(t, "1002", Some("2580"), now).await.unwrap(),
        Verdict::Locked
    );
    let later = now + Duration::seconds(store::LOCK_FOR_S + 1);
    assert_eq!(
        s.check_vm_pin(t, "1002", Some("2580"), later)
            .await
            .unwrap(),
        Verdict::Ok
    );
    // Setting a PIN (the administrator) clears a lock.
    for _ in 0..store::LOCK_AFTER {
        s.check_vm_pin(t, "1002", Some("9999"), now).await.unwrap();
    }
    s.set_vm_pin(t, "1002", Some("135790")).await.unwrap();
    assert_eq!(
        s.check_vm_pin(t, "1002", Some("135790"), now)
            .await
            .unwrap(),
        Verdict::Ok
    );

    // Messages: indexed new, counted exactly, moved, deleted.
    assert_eq!(s.vm_counts(t, "1002").await.unwrap(), (0, 0));
    let m1 = s.insert_vm_message(t, &message(1)).await.unwrap();
    let m2 = s.insert_vm_message(t, &message(2)).await.unwrap();
    assert_eq!(m1.folder, "new");
    assert_eq!(s.vm_counts(t, "1002").await.unwrap(), (2, 0));
    let mut bad = message(3);
    bad.path = "voicemail/1/1003/msg-3.wav".into();
    assert_eq!(
        field(s.insert_vm_message(t, &bad).await.unwrap_err()),
        "path"
    );
    s.set_vm_folder(t, m1.id, Folder::Saved).await.unwrap();
    assert_eq!(s.vm_counts(t, "1002").await.unwrap(), (1, 1));
    let list = s.list_vm_messages(t, "1002").await.unwrap();
    assert_eq!(
        list.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m2.id, m1.id],
        "new first"
    );
    assert_eq!(list[0].caller_name, "Alice");
    let gone = s.delete_vm_message(t, m2.id).await.unwrap();
    assert_eq!(gone.path, "voicemail/1/1002/msg-2.wav");
    assert!(matches!(
        s.delete_vm_message(t, m2.id).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(s.vm_counts(t, "1002").await.unwrap(), (0, 1));
    assert_eq!(
        s.all_vm_counts().await.unwrap(),
        vec![((t, "1002".to_string()), (0, 1))]
    );
    assert!(s.vm_message(t, m1.id).await.unwrap().is_some());
    assert!(
        s.vm_message(t + 1, m1.id).await.unwrap().is_none(),
        "tenant-scoped"
    );

    // A message change elsewhere (the CLI, the panel) is announced with the voice applications,
    // which carry the counts call control sends message-waiting indications from.
    let mut rx = s.subscribe();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await;
    assert!(matches!(ready, Ok(Ok(store::Change::All))), "{ready:?}");
    let other = store::Store::open(&url, common::opts()).await.unwrap();
    other.insert_vm_message(t, &message(5)).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(store::Change::Apps) => return true,
                Ok(_) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(got, "the message change must be announced");
    assert_eq!(s.vm_counts(t, "1002").await.unwrap(), (1, 1));

    // The outbox keeps the state of a box's newest finished e-mails only.
    let mut bx = s.vm_box(t, "1002").await.unwrap().unwrap().spec;
    bx.email = "bob@example.com".into();
    s.put_vm_box(t, "1002", &bx).await.unwrap();
    for n in 0..(store::OUTBOX_KEPT + 5) {
        s.insert_vm_message(t, &message(1000 + n)).await.unwrap();
        for m in s.due_vm_mail(Utc::now(), 10).await.unwrap() {
            s.vm_mail_sent(m.id).await.unwrap();
        }
        let ids: Vec<i64> = s
            .list_vm_messages(t, "1002")
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        if let Some(last) = ids.iter().max() {
            s.delete_vm_message(t, *last).await.unwrap();
        }
    }
    let kept = s.vm_mail_status(t, "1002").await.unwrap();
    assert!(kept.iter().all(|m| m.status == "sent"));
    assert_eq!(
        kept.len() as i64,
        store::OUTBOX_KEPT,
        "older finished e-mails dropped"
    );
    assert_eq!(s.vm_mail_pending().await.unwrap(), 0);
    bx.email.clear();
    s.put_vm_box(t, "1002", &bx).await.unwrap();

    // The box is bounded.
    for n in 10..(10 + store::MAX_MESSAGES - 2) {
        s.insert_vm_message(t, &message(n)).await.unwrap();
    }
    assert_eq!(
        field(s.insert_vm_message(t, &message(9_999)).await.unwrap_err()),
        "mailbox"
    );

    // Both tables travel in backups: restored into a fresh database, box and index are back.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("b.tar.gz");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    store::backup::create(&s, &data, &archive).await.unwrap();
    let (s2, _url2, _g2) = common::store(b).await;
    store::backup::restore(&s2, &data, &archive).await.unwrap();
    assert_eq!(
        s2.vm_counts(t, "1002").await.unwrap(),
        s.vm_counts(t, "1002").await.unwrap()
    );
    let bx = s2.vm_box(t, "1002").await.unwrap().expect("box restored");
    assert!(bx.has_pin && bx.spec.greeting_busy);
    assert_eq!(
        s2.check_vm_pin(t, "1002", Some("135790"), now)
            .await
            .unwrap(),
        Verdict::Ok
    );
}

both_backends!(subscriptions_are_kept,);

async fn subscriptions_are_kept(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let now = Utc::now();
    let rec = |id: &str, expires_at_ms: i64| engine::subs::SubRecord {
        call_id: id.into(),
        local_tag: "t1".into(),
        remote_tag: "r1".into(),
        tenant: 1,
        ext: "1001".into(),
        package: "message-summary".into(),
        resource: String::new(),
        version: 0,
        local: "<sip:1001@example.com>;tag=t1".into(),
        remote: "<sip:1001@example.com>;tag=r1".into(),
        remote_target: "sip:1001@192.0.2.21:5060".into(),
        route_set: Vec::new(),
        local_seq: Some(3),
        remote_seq: Some(2),
        destination: "192.0.2.21:5060".parse().unwrap(),
        transport: "udp".into(),
        local_addr: None,
        expires_at_ms,
    };
    let live = rec("a", now.timestamp_millis() + 600_000);
    s.put_event_sub(&live).await.unwrap();
    s.put_event_sub(&rec("gone", now.timestamp_millis() - 1))
        .await
        .unwrap();
    // Replacing keeps one row.
    let mut again = live.clone();
    again.local_seq = Some(4);
    s.put_event_sub(&again).await.unwrap();
    assert_eq!(
        s.event_subs(now).await.unwrap(),
        vec![again.clone()],
        "expired ones dropped"
    );
    s.delete_event_sub("a", "t1").await.unwrap();
    assert!(s.event_subs(now).await.unwrap().is_empty());
}

both_backends!(subscription_changes_are_applied_in_order_in_one_batch,);

/// The driver's subscription writer applies a burst in one transaction, in order: a put then a
/// drop of one dialog leaves nothing, two puts leave the last, others are untouched.
async fn subscription_changes_are_applied_in_order_in_one_batch(b: Backend) {
    use store::EventSubWrite::{Drop, Put};
    let (s, _url, _g) = common::store(b).await;
    let now = Utc::now();
    let later = now.timestamp_millis() + 600_000;
    let rec = |id: &str, seq: u32| engine::subs::SubRecord {
        call_id: id.into(),
        local_tag: "t1".into(),
        remote_tag: "r1".into(),
        tenant: 1,
        ext: "1001".into(),
        package: "dialog".into(),
        resource: "1002".into(),
        version: 0,
        local: "<sip:1002@example.com>;tag=t1".into(),
        remote: "<sip:1001@example.com>;tag=r1".into(),
        remote_target: "sip:1001@192.0.2.21:5060".into(),
        route_set: Vec::new(),
        local_seq: Some(seq),
        remote_seq: Some(2),
        destination: "192.0.2.21:5060".parse().unwrap(),
        transport: "udp".into(),
        local_addr: None,
        expires_at_ms: later,
    };
    s.put_event_sub(&rec("kept", 1)).await.unwrap();
    let mut burst = Vec::new();
    for i in 0..300 {
        burst.push(Put(Box::new(rec(&format!("k{i:03}"), 1))));
    }
    burst.push(Put(Box::new(rec("short", 1))));
    burst.push(Drop {
        call_id: "short".into(),
        local_tag: "t1".into(),
    });
    burst.push(Put(Box::new(rec("k000", 7))));
    s.apply_event_subs(&burst).await.unwrap();
    let rows = s.event_subs(now).await.unwrap();
    assert_eq!(rows.len(), 301, "300 new + the one stored before");
    assert!(
        rows.iter().all(|r| r.call_id != "short"),
        "put then drop: gone"
    );
    let k0 = rows.iter().find(|r| r.call_id == "k000").expect("k000");
    assert_eq!(k0.local_seq, Some(7), "the later put wins");
    assert!(rows.iter().any(|r| r.call_id == "kept"));
}
