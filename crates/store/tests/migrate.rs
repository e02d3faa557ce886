//! Schema versions: upgrade from the first version, refusal of newer databases.

mod common;

use store::{Backend, CdrQuery, Error, LegStats, OpenOptions, Store};

both_backends!(
    upgrades_database_created_by_first_version,
    refuses_database_from_newer_denwa,
    migrate_is_idempotent_and_explicit,
    concurrent_first_starts_create_one_schema,
);

/// Runs raw SQL statements directly, as an old Denwa or a newer one would have.
async fn exec_raw(b: Backend, url: &str, sql: &str) {
    match b {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

async fn upgrades_database_created_by_first_version(b: Backend) {
    let (url, _g) = common::fresh(b);
    assert_eq!(Store::migrate_to(&url, 1).await.unwrap(), vec![1]);
    // Rows written by a version-1 Denwa (no RTP statistics in call records yet).
    exec_raw(
        b,
        &url,
        "INSERT INTO tenants (id, name, realm, is_default, created_at)
             VALUES (1, 'default', 'denwa', TRUE, 1700000000000);
         INSERT INTO extensions (tenant_id, number, display_name, ha1_md5, enabled, max_contacts,
                                 created_at, updated_at)
             VALUES (1, '1001', 'Old', 'abc', TRUE, 2, 1700000000000, 1700000000000);
         INSERT INTO cdrs (tenant_id, call_id, caller, callee, start_time, end_time, duration_s,
                           billsec, disposition, hangup_by)
             VALUES (1, 'c1', '1001', '1002', 1700000000000, 1700000005000, 5, 0, 'BUSY', 'callee');",
    )
    .await;

    let s = Store::open(&url, common::opts()).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), store::migrate::LATEST);
    let tenants = s.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1, "the existing default tenant is kept");
    let e = s.extension(1, "1001").await.unwrap().unwrap();
    assert_eq!((e.display_name.as_str(), e.max_contacts), ("Old", 2));
    let cdrs = s.list_cdrs(&CdrQuery::default()).await.unwrap();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].record.call_id, "c1");
    assert_eq!(
        cdrs[0].record.a,
        LegStats::default(),
        "new columns take their defaults"
    );
}

async fn refuses_database_from_newer_denwa(b: Backend) {
    let (url, _g) = common::fresh(b);
    Store::open(&url, common::opts())
        .await
        .unwrap()
        .close()
        .await;
    exec_raw(
        b,
        &url,
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
    )
    .await;
    let err = Store::open(&url, common::opts()).await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, supported } if supported == store::migrate::LATEST),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer Denwa"), "{err}");
    assert!(matches!(
        Store::migrate(&url).await,
        Err(Error::SchemaTooNew { .. })
    ));
}

async fn migrate_is_idempotent_and_explicit(b: Backend) {
    let (url, _g) = common::fresh(b);
    Store::migrate_to(&url, 1).await.unwrap();
    let no_auto = OpenOptions {
        migrate: false,
        ..common::opts()
    };
    let err = Store::open(&url, no_auto.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooOld { found: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("denwa db migrate"));
    assert_eq!(Store::migrate(&url).await.unwrap(), vec![2, 3, 4, 5, 6]);
    assert_eq!(Store::migrate(&url).await.unwrap(), Vec::<i64>::new());
    let s = Store::open(&url, no_auto).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), store::migrate::LATEST);
}

async fn concurrent_first_starts_create_one_schema(b: Backend) {
    let (url, _g) = common::fresh(b);
    let (a, c) = tokio::join!(
        Store::open(&url, common::opts()),
        Store::open(&url, common::opts())
    );
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(a.list_tenants().await.unwrap().len(), 1);
    assert_eq!(c.schema_version().await.unwrap(), store::migrate::LATEST);
}

/// The same tables, columns and NOT NULL constraints on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_the_same_on_both_backends() {
    let (lite_url, _g1) = common::fresh(Backend::Sqlite);
    let (pg_url, _g2) = common::fresh(Backend::Postgres);
    Store::migrate(&lite_url).await.unwrap();
    Store::migrate(&pg_url).await.unwrap();

    let lite = sqlx::SqlitePool::connect(&lite_url).await.unwrap();
    let mut a: Vec<(String, String, bool)> = Vec::new();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&lite)
            .await
            .unwrap();
    for t in tables {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "SELECT name, \"notnull\", pk FROM pragma_table_info('{t}')"
        ))
        .fetch_all(&lite)
        .await
        .unwrap();
        for (c, notnull, pk) in rows {
            // SQLite does not mark primary keys NOT NULL; PostgreSQL does.
            a.push((t.clone(), c, notnull == 1 || pk > 0));
        }
    }
    let pg = sqlx::PgPool::connect(&pg_url).await.unwrap();
    let mut b: Vec<(String, String, bool)> = sqlx::query_as::<_, (String, String, String)>(
        "SELECT table_name::text, column_name::text, is_nullable::text FROM information_schema.columns
         WHERE table_schema = 'public'",
    )
    .fetch_all(&pg)
    .await
    .unwrap()
    .into_iter()
    .map(|(t, c, n)| (t, c, n == "NO"))
    .collect();
    a.sort();
    b.sort();
    assert!(a.len() > 50);
    assert_eq!(a, b);
}
