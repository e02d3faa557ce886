//! Backups: portable between backends, validated before anything changes, older ones upgraded.

mod common;

use std::io::Read;
use std::path::Path;

use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};
use store::backup::{self, Manifest};
use store::{
    AdminLogin, AdminRole, ApiScope, Backend, BindingUpsert, CdrQuery, Disposition, Error,
    HangupBy, LegStats, NewCdr, NewExtension, Page, Store, Transport,
};

fn t(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

struct Fixture {
    token: String,
}

/// Fills a store with one of everything, and its data dir with files.
async fn populate(s: &Store, data: &Path) -> Fixture {
    let d = s.default_tenant().await.unwrap().id;
    let acme = s.create_tenant("acme", "acme.example").await.unwrap().id;
    s.add_domain(acme, "acme.example").await.unwrap();
    for (tenant, n) in [(d, "1001"), (d, "1002"), (acme, "1001")] {
        s.create_extension(
            tenant,
            NewExtension {
                number: n.into(),
                display_name: format!("User {n}"),
                password: Some(format!("pw{n}")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    s.create_admin("root", "rootpw", AdminRole::Admin)
        .await
        .unwrap();
    let (_, token) = s
        .create_api_key(Some(d), "ci", ApiScope::Full)
        .await
        .unwrap();
    s.set_setting(None, "lang", &"ja").await.unwrap();
    s.set_setting(
        Some(acme),
        "moh",
        &serde_json::json!({"file": "jazz.wav", "vol": 0.5}),
    )
    .await
    .unwrap();
    let ext = s.extension(d, "1001").await.unwrap().unwrap();
    s.upsert_binding(BindingUpsert {
        tenant_id: d,
        extension_id: ext.id,
        aor: "sip:1001@denwa".into(),
        contact_uri: "sip:1001@192.0.2.10:5060".into(),
        expires_at: t(3600),
        q: 0.7,
        call_id: "reg-1".into(),
        cseq: 7,
        user_agent: "Phone/1.0".into(),
        received_addr: "192.0.2.10:5060".into(),
        transport: Transport::Tls,
        local_addr: "192.0.2.1:5061".into(),
        instance_id: Some("<urn:uuid:abc>".into()),
        reg_id: Some(1),
        node: "n1".into(),
        flags: 0,
        now: t(0),
    })
    .await
    .unwrap();
    for i in 0..5 {
        s.insert_cdr(NewCdr {
            tenant_id: d,
            call_id: format!("call-{i}"),
            caller: "1001".into(),
            callee: "1002".into(),
            caller_name: "日本語 name".into(),
            start_time: t(i * 60),
            answer_time: (i % 2 == 0).then(|| t(i * 60 + 3)),
            end_time: t(i * 60 + 30),
            duration_s: 30,
            billsec: if i % 2 == 0 { 27 } else { 0 },
            disposition: if i % 2 == 0 {
                Disposition::Answered
            } else {
                Disposition::NoAnswer
            },
            hangup_by: HangupBy::Callee,
            hangup_cause: "BYE".into(),
            codec: "PCMA".into(),
            a: LegStats {
                pkts_rx: 1500,
                pkts_tx: 1498,
                lost: 2,
                jitter_ms: 3.25,
            },
            b: LegStats {
                pkts_rx: 1498,
                pkts_tx: 1500,
                lost: 0,
                jitter_ms: 0.5,
            },
            route: Default::default(),
        })
        .await
        .unwrap();
    }
    std::fs::create_dir_all(data.join("prompts/en")).unwrap();
    std::fs::write(
        data.join("prompts/en/welcome.wav"),
        b"RIFF....WAVEfmt prompt",
    )
    .unwrap();
    std::fs::create_dir_all(data.join("recordings")).unwrap();
    std::fs::write(data.join("recordings/call-0.wav"), vec![7u8; 100_000]).unwrap();
    Fixture { token }
}

/// Everything visible through the API, for comparing two stores.
async fn snapshot(s: &Store) -> String {
    let mut out = String::new();
    let tenants = s.list_tenants().await.unwrap();
    out += &format!("{tenants:?}\n");
    for t in &tenants {
        out += &format!("{:?}\n", s.domains(t.id).await.unwrap());
        let exts = s
            .list_extensions(t.id, None, Page::default())
            .await
            .unwrap();
        out += &format!("{exts:?}\n");
        for e in exts {
            out += &format!("{:?}\n", s.extension_auth(t.id, &e.number).await.unwrap());
        }
        out += &format!("{:?}\n", s.list_settings(Some(t.id)).await.unwrap());
    }
    out += &format!("{:?}\n", s.list_settings(None).await.unwrap());
    out += &format!("{:?}\n", s.list_admins().await.unwrap());
    out += &format!("{:?}\n", s.list_api_keys(None).await.unwrap());
    out += &format!("{:?}\n", s.list_bindings(Page::default()).await.unwrap());
    out += &format!("{:?}\n", s.list_cdrs(&CdrQuery::default()).await.unwrap());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back() {
    let work = tempfile::tempdir().unwrap();
    let (src, _u1, _g1) = common::store(Backend::Sqlite).await;
    let src_data = work.path().join("src-data");
    let fx = populate(&src, &src_data).await;
    let before = snapshot(&src).await;

    let archive1 = work.path().join("one.tar");
    let m = backup::create(&src, &src_data, &archive1).await.unwrap();
    assert_eq!(m.source_backend, "sqlite");
    assert_eq!(m.schema_version, store::migrate::LATEST);
    assert!(
        m.entries
            .iter()
            .any(|e| e.path == "files/recordings/call-0.wav")
    );
    assert_eq!(backup::verify(&archive1).await.unwrap(), m);

    // Into PostgreSQL, over existing data that must disappear.
    let (pg, _u2, _g2) = common::store(Backend::Postgres).await;
    let pg_data = work.path().join("pg-data");
    let pd = pg.default_tenant().await.unwrap().id;
    pg.create_extension(
        pd,
        NewExtension {
            number: "9999".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    std::fs::create_dir_all(pg_data.join("prompts")).unwrap();
    std::fs::write(pg_data.join("prompts/stale.wav"), b"old").unwrap();
    backup::restore(&pg, &pg_data, &archive1).await.unwrap();
    assert_eq!(
        snapshot(&pg).await,
        before,
        "PostgreSQL holds exactly the SQLite data"
    );
    assert!(!pg_data.join("prompts/stale.wav").exists());
    assert_eq!(
        std::fs::read(pg_data.join("recordings/call-0.wav")).unwrap(),
        vec![7u8; 100_000]
    );
    // Secrets survived: API token and administrator password still work.
    assert!(pg.verify_api_key(&fx.token, t(1)).await.unwrap().is_some());
    assert!(matches!(
        pg.verify_admin("root", "rootpw", t(1)).await.unwrap(),
        AdminLogin::Ok(_)
    ));
    // Sequences follow the restored ids: new rows get fresh ids.
    let new = pg
        .create_extension(
            pd,
            NewExtension {
                number: "2000".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(new.id > 3);
    pg.delete_extension(pd, "2000").await.unwrap();
    pg.verify_api_key(&fx.token, t(1000)).await.unwrap();

    // And back into a fresh SQLite database.
    let archive2 = work.path().join("two.tar");
    let m2 = backup::create(&pg, &pg_data, &archive2).await.unwrap();
    assert_eq!(m2.source_backend, "postgres");
    let (back, _u3, _g3) = common::store(Backend::Sqlite).await;
    let back_data = work.path().join("back-data");
    backup::restore(&back, &back_data, &archive2).await.unwrap();
    // The API key's last use was recorded on PostgreSQL at t(1000); mirror that on the source.
    src.verify_api_key(&fx.token, t(1000)).await.unwrap();
    assert_eq!(snapshot(&back).await, snapshot(&src).await);
    assert_eq!(
        std::fs::read(back_data.join("prompts/en/welcome.wav")).unwrap(),
        b"RIFF....WAVEfmt prompt"
    );
}

/// Rewrites an archive member by member and recomputes the manifest's sizes and checksums.
fn rewrite(
    src: &Path,
    dst: &Path,
    mut edit: impl FnMut(&str, &mut Vec<u8>),
    mut edit_manifest: impl FnMut(&mut Manifest),
) {
    let mut ar = tar::Archive::new(std::fs::File::open(src).unwrap());
    let mut members = Vec::new();
    let mut manifest: Option<Manifest> = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_str().unwrap().to_string();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        if name == "manifest.json" {
            manifest = Some(serde_json::from_slice(&buf).unwrap());
        } else {
            edit(&name, &mut buf);
            members.push((name, buf));
        }
    }
    let mut m = manifest.unwrap();
    for (name, buf) in &members {
        let ent = m.entries.iter_mut().find(|e| &e.path == name).unwrap();
        ent.size = buf.len() as u64;
        ent.sha256 = hex::encode(Sha256::digest(buf));
    }
    edit_manifest(&mut m);
    let mut b = tar::Builder::new(std::fs::File::create(dst).unwrap());
    let json = serde_json::to_vec(&m).unwrap();
    for (name, buf) in members.iter().chain([&("manifest.json".to_string(), json)]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(buf.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, buf.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

async fn bad_archives_change_nothing(b: Backend) {
    let work = tempfile::tempdir().unwrap();
    let (src, _u1, _g1) = common::store(Backend::Sqlite).await;
    let src_data = work.path().join("src");
    populate(&src, &src_data).await;
    let good = work.path().join("good.tar");
    backup::create(&src, &src_data, &good).await.unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let (dst, _u2, _g2) = common::store(b).await;
    let dst_data = work.path().join("dst");
    let d = dst.default_tenant().await.unwrap().id;
    dst.create_extension(
        d,
        NewExtension {
            number: "555".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    std::fs::create_dir_all(dst_data.join("voicemail")).unwrap();
    std::fs::write(dst_data.join("voicemail/msg.wav"), b"keep me").unwrap();
    let before = snapshot(&dst).await;

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // A flipped byte inside the extensions table.
    let mut corrupt = bytes.clone();
    let at = bytes.windows(9).position(|w| w == b"User 1002").unwrap();
    corrupt[at + 5] = b'7';
    cases.push(("corrupt", corrupt, "checksum"));
    cases.push(("truncated", bytes[..bytes.len() / 2].to_vec(), ""));
    cases.push((
        "cut before manifest",
        bytes[..bytes.len() - 2048].to_vec(),
        "",
    ));
    cases.push(("foreign", b"hello, this is not a backup\n".repeat(100), ""));
    cases.push(("empty", Vec::new(), "manifest"));
    let mut foreign_tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    foreign_tar
        .append_data(&mut h, "etc/motd", &b"hi\n"[..])
        .unwrap();
    cases.push((
        "foreign tar",
        foreign_tar.into_inner().unwrap(),
        "not a Denwa backup",
    ));

    for (what, data, needle) in cases {
        let path = work.path().join(format!("{what}.tar"));
        std::fs::write(&path, &data).unwrap();
        let err = backup::restore(&dst, &dst_data, &path).await.unwrap_err();
        assert!(matches!(err, Error::Backup(_)), "{what}: {err:?}");
        assert!(err.to_string().contains(needle), "{what}: {err}");
        assert!(backup::verify(&path).await.is_err(), "{what}");
        assert_eq!(snapshot(&dst).await, before, "{what}: database unchanged");
        assert_eq!(
            std::fs::read(dst_data.join("voicemail/msg.wav")).unwrap(),
            b"keep me"
        );
        assert!(
            !dst_data.join("prompts").exists(),
            "{what}: files unchanged"
        );
    }

    // A consistent archive from a newer Denwa.
    let newer = work.path().join("newer.tar");
    rewrite(&good, &newer, |_, _| {}, |m| m.schema_version = 99);
    let err = backup::restore(&dst, &dst_data, &newer).await.unwrap_err();
    assert!(err.to_string().contains("upgrade Denwa"), "{err}");
    // Checksums fine but a row violates a constraint: the transaction rolls back.
    let violating = work.path().join("violating.tar");
    rewrite(
        &good,
        &violating,
        |name, buf| {
            if name == "tables/extensions.jsonl" {
                let text = String::from_utf8(buf.clone()).unwrap();
                *buf = text.replace("\"1002\"", "\"1001\"").into_bytes();
            }
        },
        |_| {},
    );
    let err = backup::restore(&dst, &dst_data, &violating)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("extensions"), "{err}");
    assert_eq!(
        snapshot(&dst).await,
        before,
        "violation: database unchanged"
    );
    assert!(!dst_data.join("prompts").exists());
    // The good one still restores.
    backup::restore(&dst, &dst_data, &good).await.unwrap();
    assert_eq!(snapshot(&dst).await, snapshot(&src).await);
}

async fn older_backup_is_migrated_forward(b: Backend) {
    let work = tempfile::tempdir().unwrap();
    let (src, _u1, _g1) = common::store(Backend::Sqlite).await;
    let src_data = work.path().join("src");
    populate(&src, &src_data).await;
    let good = work.path().join("good.tar");
    backup::create(&src, &src_data, &good).await.unwrap();
    // What a schema-1 Denwa wrote: call records without the RTP columns.
    let v1 = work.path().join("v1.tar");
    rewrite(
        &good,
        &v1,
        |name, buf| {
            if name == "tables/cdrs.jsonl" {
                let mut out = Vec::new();
                for line in buf.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                    let mut row: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(line).unwrap();
                    row.retain(|k, _| !k.starts_with("a_") && !k.starts_with("b_"));
                    out.extend(serde_json::to_vec(&row).unwrap());
                    out.push(b'\n');
                }
                *buf = out;
            }
        },
        |m| m.schema_version = 1,
    );
    assert_eq!(backup::verify(&v1).await.unwrap().schema_version, 1);
    let (dst, _u2, _g2) = common::store(b).await;
    backup::restore(&dst, &work.path().join("dst"), &v1)
        .await
        .unwrap();
    let cdrs = dst.list_cdrs(&CdrQuery::default()).await.unwrap();
    assert_eq!(cdrs.len(), 5);
    assert!(cdrs.iter().all(|c| c.record.a == LegStats::default()));
    assert_eq!(cdrs[0].record.caller_name, "日本語 name");
}

async fn backup_while_writing_is_consistent(b: Backend) {
    let work = tempfile::tempdir().unwrap();
    let (s, _u, _g) = common::store(b).await;
    let data = work.path().join("data");
    populate(&s, &data).await;
    let d = s.default_tenant().await.unwrap().id;
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                s.insert_cdr(NewCdr {
                    tenant_id: d,
                    call_id: format!("bg-{i}"),
                    caller: "1".into(),
                    callee: "2".into(),
                    caller_name: String::new(),
                    start_time: t(i),
                    answer_time: None,
                    end_time: t(i),
                    duration_s: 0,
                    billsec: 0,
                    disposition: Disposition::Failed,
                    hangup_by: HangupBy::System,
                    hangup_cause: "503".into(),
                    codec: String::new(),
                    a: LegStats::default(),
                    b: LegStats::default(),
                    route: Default::default(),
                })
                .await
                .unwrap();
            }
        })
    };
    let archive = work.path().join("live.tar");
    let m = backup::create(&s, &data, &archive).await.unwrap();
    writer.await.unwrap();
    let rows = m
        .entries
        .iter()
        .find(|e| e.path == "tables/cdrs.jsonl")
        .and_then(|e| e.rows)
        .unwrap();
    assert!((5..=305).contains(&rows));
    let (dst, _u2, _g2) = common::store(b).await;
    backup::restore(&dst, &work.path().join("dst"), &archive)
        .await
        .unwrap();
    assert_eq!(
        dst.count_cdrs(&CdrQuery::default()).await.unwrap(),
        rows as i64
    );
}

both_backends!(
    bad_archives_change_nothing,
    older_backup_is_migrated_forward,
    backup_while_writing_is_consistent,
);
