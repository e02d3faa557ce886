//! The typed API against real SQLite and PostgreSQL databases.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use store::{
    AdminLogin, AdminRole, ApiScope, Backend, BindingUpsert, CdrQuery, Change, Disposition, Error,
    ExtensionUpdate, HangupBy, LegStats, NewCdr, NewExtension, Page, Transport,
};

both_backends!(
    default_tenant_and_domains,
    extension_crud_and_constraints,
    extension_auth_has_ha1_for_realm,
    extensions_with_auth_page_through_every_tenant,
    administrators_and_lockout,
    api_keys,
    settings_scopes,
    registrations_lifecycle,
    group_commit_many_callers_and_bad_row_isolated,
    many_bindings_in_one_call_answer_in_order,
    call_records,
    change_notification_reaches_other_store,
    reopen_keeps_data,
    two_stores_write_the_same_database_at_once,
    writes_queued_during_a_commit_share_one_transaction,
    one_batch_writes_the_same_binding_several_times,
);

/// Adds extension 1001 to the default tenant; returns the tenant's id and the extension.
async fn add_1001(s: &store::Store) -> (i64, store::Extension) {
    let t1 = s.default_tenant().await.unwrap().id;
    let e = s
        .create_extension(
            t1,
            NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (t1, e)
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

async fn default_tenant_and_domains(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let d = s.default_tenant().await.unwrap();
    assert_eq!(d.realm, "denwa");
    assert!(d.is_default);
    // A single-company install: any domain (or IP) maps to the only tenant.
    assert_eq!(
        s.tenant_for_domain("192.0.2.1").await.unwrap().unwrap().id,
        d.id
    );

    let acme = s.create_tenant("acme", "acme.example").await.unwrap();
    assert!(!acme.is_default);
    assert!(matches!(
        s.create_tenant("acme", "x").await,
        Err(Error::Conflict(_))
    ));
    // Two tenants: an unknown domain identifies nobody.
    assert_eq!(s.tenant_for_domain("unknown.example").await.unwrap(), None);
    s.add_domain(acme.id, "PBX.Acme.Example").await.unwrap();
    assert_eq!(
        s.tenant_for_domain("pbx.acme.example")
            .await
            .unwrap()
            .unwrap()
            .id,
        acme.id
    );
    assert!(matches!(
        s.add_domain(d.id, "pbx.acme.example").await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(s.domains(acme.id).await.unwrap(), vec!["pbx.acme.example"]);
    assert!(s.remove_domain("pbx.acme.example").await.unwrap());
    assert!(!s.remove_domain("pbx.acme.example").await.unwrap());
    assert_eq!(s.list_tenants().await.unwrap().len(), 2);
}

async fn extension_crud_and_constraints(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t1 = s.default_tenant().await.unwrap().id;
    let t2 = s.create_tenant("other", "other").await.unwrap().id;
    for (n, name) in [
        ("1001", "Alice"),
        ("1002", "Bob"),
        ("2001", "alicia"),
        ("*123", "Star"),
    ] {
        let e = s
            .create_extension(
                t1,
                NewExtension {
                    number: n.into(),
                    display_name: name.into(),
                    password: Some("pw".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(e.number, n);
        assert!(e.enabled && e.has_password);
        assert_eq!(e.max_contacts, 3);
    }
    // Unique per tenant, in the database.
    let dup = s
        .create_extension(
            t1,
            NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    // The same number in another tenant is fine.
    s.create_extension(
        t2,
        NewExtension {
            number: "1001".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.create_extension(
            t1,
            NewExtension {
                number: "10a".into(),
                ..Default::default()
            }
        )
        .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        s.create_extension(
            9999,
            NewExtension {
                number: "1".into(),
                ..Default::default()
            }
        )
        .await,
        Err(Error::NotFound(_))
    ));

    let all = s.list_extensions(t1, None, Page::default()).await.unwrap();
    let nums: Vec<_> = all.iter().map(|e| e.number.as_str()).collect();
    assert_eq!(nums, ["*123", "1001", "1002", "2001"]);
    let found = s
        .list_extensions(t1, Some("ALI"), Page::default())
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(s.count_extensions(t1, Some("ali")).await.unwrap(), 2);
    assert_eq!(
        s.count_extensions(t1, Some("%")).await.unwrap(),
        0,
        "LIKE wildcards are escaped"
    );
    let page2 = s
        .list_extensions(
            t1,
            None,
            Page {
                limit: 2,
                offset: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(page2.len(), 2);
    assert_eq!(page2[0].number, "1002");

    let u = s
        .update_extension(
            t1,
            "1002",
            ExtensionUpdate {
                display_name: Some("Robert".into()),
                enabled: Some(false),
                max_contacts: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (u.display_name.as_str(), u.enabled, u.max_contacts),
        ("Robert", false, 5)
    );
    assert!(matches!(
        s.update_extension(
            t1,
            "1002",
            ExtensionUpdate {
                max_contacts: Some(0),
                ..Default::default()
            }
        )
        .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        s.update_extension(t1, "9", ExtensionUpdate::default())
            .await,
        Err(Error::NotFound(_))
    ));
    let got = s.extension(t1, "1002").await.unwrap().unwrap();
    assert_eq!(s.extension_by_id(got.id).await.unwrap().unwrap(), got);
    s.delete_extension(t1, "1002").await.unwrap();
    assert!(matches!(
        s.delete_extension(t1, "1002").await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(s.extension(t1, "1002").await.unwrap(), None);
}

async fn extension_auth_has_ha1_for_realm(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let (t1, e) = add_1001(&s).await;
    assert!(!e.has_password);
    let a = s.extension_auth(t1, "1001").await.unwrap().unwrap();
    assert_eq!((a.ha1_md5, a.ha1_sha256, a.enabled), (None, None, true));
    s.set_extension_password(t1, "1001", "secret")
        .await
        .unwrap();
    let a = s.extension_auth(t1, "1001").await.unwrap().unwrap();
    assert_eq!(a.extension_id, e.id);
    assert_eq!(
        a.ha1_md5.unwrap(),
        store::ha1_md5("1001", "denwa", "secret")
    );
    assert_eq!(
        a.ha1_sha256.unwrap(),
        store::ha1_sha256("1001", "denwa", "secret")
    );
    assert!(matches!(
        s.set_extension_password(t1, "1002", "x").await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(s.extension_auth(t1, "1002").await.unwrap(), None);
}

async fn extensions_with_auth_page_through_every_tenant(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    assert!(
        s.extensions_with_auth_after(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let (t1, e1) = add_1001(&s).await;
    s.set_extension_password(t1, "1001", "secret")
        .await
        .unwrap();
    let t2 = s.create_tenant("Beta", "beta.example").await.unwrap().id;
    for (t, n) in [(t2, "1001"), (t1, "200"), (t2, "100")] {
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
    s.update_extension(
        t2,
        "100",
        ExtensionUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let all = s.extensions_with_auth_after(None, 100).await.unwrap();
    // Pages of two continue where the last one ended, across tenants.
    let first = s.extensions_with_auth_after(None, 2).await.unwrap();
    let (e, _) = &first[1];
    let rest = s
        .extensions_with_auth_after(Some((e.tenant_id, &e.number)), 2)
        .await
        .unwrap();
    let paged: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(paged, all);
    let (e, _) = &all[3];
    assert!(
        s.extensions_with_auth_after(Some((e.tenant_id, &e.number)), 2)
            .await
            .unwrap()
            .is_empty()
    );
    let keys: Vec<(i64, &str)> = all
        .iter()
        .map(|(e, _)| (e.tenant_id, e.number.as_str()))
        .collect();
    assert_eq!(keys, [(t1, "1001"), (t1, "200"), (t2, "100"), (t2, "1001")]);
    // Each row carries the same credentials as the one-extension lookup.
    for (e, a) in &all {
        assert_eq!(
            Some(a),
            s.extension_auth(e.tenant_id, &e.number)
                .await
                .unwrap()
                .as_ref()
        );
    }
    let (e, a) = &all[0];
    assert_eq!(e.id, e1.id);
    assert!(e.has_password);
    assert_eq!(
        a.ha1_md5.as_deref(),
        Some(store::ha1_md5("1001", "denwa", "secret").as_str())
    );
    assert!(!all[2].1.enabled, "the disabled flag comes along");
}

async fn administrators_and_lockout(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let a = s
        .create_admin("root", "correct horse", AdminRole::Admin)
        .await
        .unwrap();
    assert_eq!(a.role, AdminRole::Admin);
    assert!(matches!(
        s.create_admin("root", "x", AdminRole::Viewer).await,
        Err(Error::Conflict(_))
    ));
    let now = t(0);
    assert!(matches!(
        s.verify_admin("root", "correct horse", now).await.unwrap(),
        AdminLogin::Ok(_)
    ));
    assert_eq!(
        s.verify_admin("nobody", "x", now).await.unwrap(),
        AdminLogin::BadCredentials
    );
    for _ in 0..4 {
        assert_eq!(
            s.verify_admin("root", "wrong", now).await.unwrap(),
            AdminLogin::BadCredentials
        );
    }
    let AdminLogin::Locked(until) = s.verify_admin("root", "wrong", now).await.unwrap() else {
        panic!("fifth failure must lock");
    };
    assert!(until > now);
    // Even the right password is refused while locked, and accepted after the lock.
    assert!(matches!(
        s.verify_admin("root", "correct horse", now).await.unwrap(),
        AdminLogin::Locked(_)
    ));
    let AdminLogin::Ok(a) = s
        .verify_admin("root", "correct horse", until)
        .await
        .unwrap()
    else {
        panic!("lock must expire");
    };
    assert_eq!(a.failed_logins, 0);
    s.set_admin_password("root", "new").await.unwrap();
    assert!(matches!(
        s.verify_admin("root", "new", now).await.unwrap(),
        AdminLogin::Ok(_)
    ));
    assert_eq!(s.list_admins().await.unwrap().len(), 1);
    s.delete_admin("root").await.unwrap();
    assert_eq!(s.admin("root").await.unwrap(), None);
}

async fn api_keys(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t1 = s.default_tenant().await.unwrap().id;
    let (k, token) = s
        .create_api_key(Some(t1), "ci", ApiScope::Read)
        .await
        .unwrap();
    assert!(token.starts_with(&k.prefix));
    assert_eq!(k.last_used_at, None);
    let (_, global) = s.create_api_key(None, "ops", ApiScope::Full).await.unwrap();
    let used = s.verify_api_key(&token, t(5)).await.unwrap().unwrap();
    assert_eq!(
        (used.id, used.scope, used.last_used_at),
        (k.id, ApiScope::Read, Some(t(5)))
    );
    assert_eq!(s.verify_api_key("dnw_bogus", t(5)).await.unwrap(), None);
    // Use is recorded at most once a minute.
    let again = s.verify_api_key(&token, t(30)).await.unwrap().unwrap();
    assert_eq!(again.last_used_at, Some(t(5)));
    let later = s.verify_api_key(&token, t(100)).await.unwrap().unwrap();
    assert_eq!(later.last_used_at, Some(t(100)));
    assert_eq!(
        s.list_api_keys(Some(t1)).await.unwrap()[0].last_used_at,
        Some(t(100))
    );
    assert_eq!(s.list_api_keys(Some(t1)).await.unwrap().len(), 1);
    assert_eq!(s.list_api_keys(None).await.unwrap().len(), 2);
    s.delete_api_key(k.id).await.unwrap();
    assert_eq!(s.verify_api_key(&token, t(6)).await.unwrap(), None);
    assert!(s.verify_api_key(&global, t(6)).await.unwrap().is_some());
}

async fn settings_scopes(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t1 = s.default_tenant().await.unwrap().id;
    assert_eq!(s.setting::<u32>(None, "rtp.low").await.unwrap(), None);
    s.set_setting(None, "rtp.low", &10000u32).await.unwrap();
    s.set_setting(Some(t1), "rtp.low", &20000u32).await.unwrap();
    s.set_setting(None, "rtp.low", &10002u32).await.unwrap();
    assert_eq!(
        s.setting::<u32>(None, "rtp.low").await.unwrap(),
        Some(10002)
    );
    assert_eq!(
        s.setting::<u32>(Some(t1), "rtp.low").await.unwrap(),
        Some(20000)
    );
    s.set_setting(None, "lang", &"ja").await.unwrap();
    let list = s.list_settings(None).await.unwrap();
    assert_eq!(
        list,
        vec![
            ("lang".to_string(), serde_json::json!("ja")),
            ("rtp.low".to_string(), serde_json::json!(10002))
        ]
    );
    assert!(matches!(
        s.setting::<String>(None, "rtp.low").await,
        Err(Error::Invalid { .. })
    ));
    assert!(s.delete_setting(None, "lang").await.unwrap());
    assert!(!s.delete_setting(None, "lang").await.unwrap());
}

use common::binding;

async fn registrations_lifecycle(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let (t1, e) = add_1001(&s).await;
    let id1 = s
        .upsert_binding(binding(t1, e.id, "sip:a@1", t(0), 60))
        .await
        .unwrap();
    let mut refresh = binding(t1, e.id, "sip:a@1", t(30), 60);
    refresh.cseq = 2;
    refresh.transport = Transport::Tcp;
    refresh.instance_id = Some("<urn:uuid:1>".into());
    refresh.reg_id = Some(1);
    refresh.q = 0.5;
    assert_eq!(
        s.upsert_binding(refresh).await.unwrap(),
        id1,
        "same contact, same row"
    );
    s.upsert_binding(binding(t1, e.id, "sip:b@2", t(0), 10))
        .await
        .unwrap();

    let live = s.bindings_for_extension(e.id, t(20)).await.unwrap();
    assert_eq!(live.len(), 1, "b expired at t(10)");
    let r = &live[0];
    assert_eq!(
        (r.cseq, r.transport, r.q, r.reg_id),
        (2, Transport::Tcp, 0.5, Some(1))
    );
    assert_eq!(r.instance_id.as_deref(), Some("<urn:uuid:1>"));
    assert_eq!((r.last_seen, r.expires_at), (t(30), t(90)));
    assert_eq!(
        s.bindings_for_aor(t1, "sip:1001@denwa", t(0))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.count_bindings(None).await.unwrap(), 2);
    assert_eq!(s.count_bindings(Some(t(20))).await.unwrap(), 1);
    assert!(
        s.set_binding_flags(id1, store::Registration::FLAG_UNREACHABLE)
            .await
            .unwrap()
    );
    assert_eq!(s.list_bindings(Page::default()).await.unwrap()[0].flags, 1);
    assert_eq!(s.purge_expired_bindings(t(20)).await.unwrap(), 1);
    assert_eq!(s.count_bindings(None).await.unwrap(), 1);
    assert!(s.delete_binding(e.id, "sip:a@1").await.unwrap());
    assert!(!s.delete_binding(e.id, "sip:a@1").await.unwrap());

    s.upsert_binding(binding(t1, e.id, "sip:c@3", t(0), 60))
        .await
        .unwrap();
    s.upsert_binding(binding(t1, e.id, "sip:d@4", t(0), 60))
        .await
        .unwrap();
    assert_eq!(
        s.delete_bindings_for_aor(t1, "sip:1001@denwa")
            .await
            .unwrap(),
        2
    );
    // Deleting the extension cascades to its bindings (foreign key in the schema).
    s.upsert_binding(binding(t1, e.id, "sip:e@5", t(0), 60))
        .await
        .unwrap();
    s.delete_extension(t1, "1001").await.unwrap();
    assert_eq!(s.count_bindings(None).await.unwrap(), 0);
}

async fn group_commit_many_callers_and_bad_row_isolated(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let (t1, e) = add_1001(&s).await;
    let mut tasks = Vec::new();
    for i in 0..400 {
        let s = s.clone();
        // Every 100th row names an extension that does not exist: the database refuses it.
        let ext = if i % 100 == 99 { 999_999 } else { e.id };
        tasks.push(tokio::spawn(async move {
            s.upsert_binding(binding(t1, ext, &format!("sip:{i}@x"), t(0), 60))
                .await
        }));
    }
    let mut ok = std::collections::HashSet::new();
    let mut failed = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(id) => assert!(ok.insert(id), "ids are distinct"),
            Err(e) => {
                assert_eq!(i % 100, 99, "only the bad rows fail: {e}");
                failed += 1;
            }
        }
    }
    assert_eq!((ok.len(), failed), (396, 4));
    assert_eq!(s.count_bindings(None).await.unwrap(), 396);
}

/// `upsert_bindings` (the registrar's path): one outcome per row, in the order given; a row the
/// database refuses fails alone; a binding given twice ends as its last write.
async fn many_bindings_in_one_call_answer_in_order(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let (t1, e) = add_1001(&s).await;
    let mut rows: Vec<BindingUpsert> = (0..300)
        .map(|i| {
            let ext = if i % 100 == 50 { 999_999 } else { e.id };
            binding(t1, ext, &format!("sip:{i}@x"), t(0), 60)
        })
        .collect();
    let mut again = binding(t1, e.id, "sip:7@x", t(0), 60);
    again.cseq = 9;
    rows.push(again);
    let out = s.upsert_bindings(rows).await;
    assert_eq!(out.len(), 301);
    for (i, r) in out.iter().enumerate().take(300) {
        assert_eq!(r.is_err(), i % 100 == 50, "row {i}: {r:?}");
    }
    assert_eq!(
        out[300].as_ref().ok(),
        out[7].as_ref().ok(),
        "same binding, same row"
    );
    assert_eq!(s.count_bindings(None).await.unwrap(), 297);
    let live = s.bindings_for_extension(e.id, t(1)).await.unwrap();
    let seven = live.iter().find(|r| r.contact_uri == "sip:7@x").unwrap();
    assert_eq!(seven.cseq, 9, "the later write of a binding wins");
    // Refreshes of existing rows are counted as written too.
    let refresh: Vec<BindingUpsert> = (0..40)
        .map(|i| binding(t1, e.id, &format!("sip:{i}@x"), t(5), 60))
        .collect();
    assert!(s.upsert_bindings(refresh).await.iter().all(Result::is_ok));
    assert_eq!(s.count_bindings(None).await.unwrap(), 297);
    assert!(s.upsert_bindings(Vec::new()).await.is_empty());
}

fn cdr(tenant: i64, caller: &str, callee: &str, start: i64, d: Disposition) -> NewCdr {
    let answered = d == Disposition::Answered;
    NewCdr {
        tenant_id: tenant,
        call_id: format!("{caller}-{callee}-{start}"),
        caller: caller.into(),
        callee: callee.into(),
        caller_name: "Alice".into(),
        start_time: t(start),
        answer_time: answered.then(|| t(start + 2)),
        end_time: t(start + 12),
        duration_s: 12,
        billsec: if answered { 10 } else { 0 },
        disposition: d,
        hangup_by: HangupBy::Caller,
        hangup_cause: "BYE".into(),
        codec: "PCMU".into(),
        a: LegStats {
            pkts_rx: 500,
            pkts_tx: 499,
            lost: 1,
            jitter_ms: 1.5,
        },
        b: LegStats {
            pkts_rx: 499,
            pkts_tx: 500,
            lost: 0,
            jitter_ms: 0.25,
        },
        route: Default::default(),
    }
}

async fn call_records(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t1 = s.default_tenant().await.unwrap().id;
    let first = cdr(t1, "1001", "1002", 0, Disposition::Answered);
    let id = s.insert_cdr(first.clone()).await.unwrap();
    s.insert_cdr(cdr(t1, "1002", "1003", 100, Disposition::Busy))
        .await
        .unwrap();
    s.insert_cdr(cdr(t1, "1003", "1001", 200, Disposition::NoAnswer))
        .await
        .unwrap();
    s.insert_cdr(cdr(t1, "1001", "1003", 86_400 * 2, Disposition::Answered))
        .await
        .unwrap();

    let all = s.list_cdrs(&CdrQuery::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2)
            .all(|w| w[0].record.start_time >= w[1].record.start_time)
    );
    let stored = all.iter().find(|c| c.id == id).unwrap();
    assert_eq!(stored.record, first, "every field round-trips");

    let q = |f: fn(&mut CdrQuery)| {
        let mut q = CdrQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        s.count_cdrs(&q(|q| q.number = Some("1001".into())))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.count_cdrs(&q(|q| q.disposition = Some(Disposition::Busy)))
            .await
            .unwrap(),
        1
    );
    let ranged = s
        .list_cdrs(&q(|q| {
            q.from = Some(t(50));
            q.to = Some(t(300));
        }))
        .await
        .unwrap();
    assert_eq!(ranged.len(), 2);
    let paged = s
        .list_cdrs(&q(|q| {
            q.page = Page {
                limit: 1,
                offset: 1,
            }
        }))
        .await
        .unwrap();
    assert_eq!(paged[0].record.start_time, t(200));

    let day = t(0).date_naive();
    let counts = s.cdr_counts_for_day(Some(t1), day).await.unwrap();
    let get = |d| counts.iter().find(|(x, _)| *x == d).unwrap().1;
    assert_eq!(
        (
            get(Disposition::Answered),
            get(Disposition::Busy),
            get(Disposition::NoAnswer),
            get(Disposition::Failed)
        ),
        (1, 1, 1, 0)
    );
}

async fn change_notification_reaches_other_store(b: Backend) {
    let (a, url, _g) = common::store(b).await;
    // A second store on the same database stands in for the CLI or another node.
    let other = store::Store::open(&url, common::opts()).await.unwrap();
    let mut rx = a.subscribe();
    // The watcher announces that it is watching with Change::All; changes after that arrive.
    let ready = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert!(matches!(ready, Ok(Ok(Change::All))), "{ready:?}");
    add_1001(&other).await;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(Change::Extensions) => return true,
                Ok(_) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(got, "the change must arrive");
    other.set_setting(None, "x", &1).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Change::Settings) = rx.recv().await {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(got, "settings change must arrive");
}

async fn reopen_keeps_data(b: Backend) {
    let (s, url, _g) = common::store(b).await;
    let (t1, _) = add_1001(&s).await;
    s.close().await;
    drop(s);
    let s = store::Store::open(&url, common::opts()).await.unwrap();
    assert_eq!(
        s.list_tenants().await.unwrap().len(),
        1,
        "no second default tenant"
    );
    assert!(s.extension(t1, "1001").await.unwrap().is_some());
    assert_eq!(s.schema_version().await.unwrap(), store::migrate::LATEST);
}

/// A running server and the CLI (two stores, as two processes would have) writing at once:
/// SQLite's busy handling and IMMEDIATE transactions keep every write from failing.
async fn two_stores_write_the_same_database_at_once(b: Backend) {
    let (server, url, _g) = common::store(b).await;
    let cli = store::Store::open(&url, common::opts()).await.unwrap();
    let (t1, e) = add_1001(&server).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = server.clone();
        tasks.push(tokio::spawn(async move {
            s.upsert_binding(binding(t1, e.id, &format!("sip:{i}@x"), t(0), 60))
                .await
                .map(|_| ())
        }));
    }
    for i in 0..40 {
        let c = cli.clone();
        tasks.push(tokio::spawn(async move {
            c.create_extension(
                t1,
                NewExtension {
                    number: format!("2{i:03}"),
                    password: Some("p".into()),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(cli.count_bindings(None).await.unwrap(), 200);
    assert_eq!(server.count_extensions(t1, None).await.unwrap(), 41);
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Writes that queue up while a transaction commits share the next one: 400 refreshes, two
/// transactions. The first write is held in its transaction by a lock from outside, while the
/// other 399 queue behind it.
async fn writes_queued_during_a_commit_share_one_transaction(b: Backend) {
    let (url, _g) = common::fresh(b);
    let opts = store::OpenOptions {
        busy_timeout: Duration::from_secs(60),
        ..common::opts()
    };
    let s = store::Store::open(&url, opts).await.unwrap();
    let (t1, e) = add_1001(&s).await;
    // Another connection takes the write lock (SQLite) / locks the table (PostgreSQL).
    enum Blocker {
        Lite(sqlx::SqliteConnection),
        Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    }
    let blocker = match b {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut c)
                .await
                .unwrap();
            Blocker::Lite(c)
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE registrations IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            Blocker::Pg(tx)
        }
    };
    let before = s.write_stats();
    let first = {
        let s = s.clone();
        tokio::spawn(async move {
            s.upsert_binding(binding(t1, e.id, "sip:first@x", t(0), 60))
                .await
        })
    };
    // The writer has taken the first write and is stuck in its transaction.
    until("the first write to be taken", || {
        s.write_stats().in_flight == 1
    })
    .await;
    let mut rest = Vec::new();
    for i in 0..399 {
        let s = s.clone();
        rest.push(tokio::spawn(async move {
            s.upsert_binding(binding(t1, e.id, &format!("sip:{i}@x"), t(0), 60))
                .await
        }));
    }
    until("399 queued writes", || s.write_stats().queued == 399).await;
    match blocker {
        Blocker::Lite(mut c) => {
            sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
        }
        Blocker::Pg(tx) => tx.rollback().await.unwrap(),
    }
    first.await.unwrap().unwrap();
    for r in rest {
        r.await.unwrap().unwrap();
    }
    let after = s.write_stats();
    assert_eq!(after.rows - before.rows, 400);
    assert_eq!(
        after.batches - before.batches,
        2,
        "one for the first write, one for the rest"
    );
    assert_eq!(s.count_bindings(None).await.unwrap(), 400);
}

/// Writes queued together go out as multi-row statements. Several writes of one binding in a
/// batch (a phone refreshing twice, two clients racing) end as if written one by one: the last
/// one's values stay, and every writer gets the same row id.
async fn one_batch_writes_the_same_binding_several_times(b: Backend) {
    let (s, _url, _g) = common::store(b).await;
    let t1 = s.default_tenant().await.unwrap().id;
    let mut exts = Vec::new();
    for n in ["1001", "1002"] {
        let e = s
            .create_extension(
                t1,
                NewExtension {
                    number: n.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        exts.push(e.id);
    }
    // 3 rounds x 2 extensions x 150 contacts: batches of every size, duplicates in each. Each
    // write is polled once, in order, so the queue holds them in this order.
    let before = s.write_stats();
    let mut writes = Vec::new();
    for round in 0..3i64 {
        for &ext in &exts {
            for c in 0..150 {
                let b = binding(t1, ext, &format!("sip:{c}@x"), t(0), 60 + round);
                writes.push(((ext, c), Box::pin(s.upsert_binding(b))));
            }
        }
    }
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for (_, w) in &mut writes {
        assert!(std::future::Future::poll(w.as_mut(), &mut cx).is_pending());
    }
    let mut ids = std::collections::HashMap::new();
    for (key, w) in writes {
        let id = w.await.unwrap();
        assert_eq!(*ids.entry(key).or_insert(id), id, "one row per binding");
    }
    let after = s.write_stats();
    assert!(
        after.batches - before.batches < 900,
        "the writes shared transactions"
    );
    let distinct: std::collections::HashSet<i64> = ids.values().copied().collect();
    assert_eq!(distinct.len(), 300);
    assert_eq!(s.count_bindings(None).await.unwrap(), 300);
    for &ext in &exts {
        let regs = s.bindings_for_extension(ext, t(0)).await.unwrap();
        assert_eq!(regs.len(), 150);
        for r in regs {
            assert_eq!(
                r.expires_at,
                t(62),
                "the last write wins: {}",
                r.contact_uri
            );
            let c: i32 = r.contact_uri["sip:".len()..r.contact_uri.len() - "@x".len()]
                .parse()
                .unwrap();
            assert_eq!(Some(&r.id), ids.get(&(ext, c)));
        }
    }
}
