//! Fixtures: one fresh database per test on each backend.
#![allow(dead_code)]

use store::{OpenOptions, Store};

/// Keeps the database alive for the test (a temp dir or a PostgreSQL database).
pub enum Guard {
    Dir(tempfile::TempDir),
    Pg(testkit::pg::PgDatabase),
}

/// A fresh empty database: its URL and the guard that owns it.
pub fn fresh(backend: store::Backend) -> (String, Guard) {
    match backend {
        store::Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("denwa.db").display());
            (url, Guard::Dir(dir))
        }
        store::Backend::Postgres => {
            let db = testkit::pg::fresh_database().unwrap();
            (db.url().to_string(), Guard::Pg(db))
        }
    }
}

/// Options for tests: quick change polling.
pub fn opts() -> OpenOptions {
    OpenOptions {
        poll_interval: std::time::Duration::from_millis(50),
        ..OpenOptions::default()
    }
}

/// A fresh store.
pub async fn store(backend: store::Backend) -> (Store, String, Guard) {
    let (url, g) = fresh(backend);
    let s = Store::open(&url, opts()).await.unwrap();
    assert_eq!(s.backend(), backend);
    (s, url, g)
}

/// Runs an async test body once per backend, as two tests `sqlite` and `postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(store::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(store::Backend::Postgres).await
                }
            }
        )+
    };
}

/// A binding of `ext` (AOR `sip:1001@denwa`) expiring `expires` seconds after `now`.
pub fn binding(
    tenant: i64,
    ext: i64,
    contact: &str,
    now: chrono::DateTime<chrono::Utc>,
    expires: i64,
) -> store::BindingUpsert {
    store::BindingUpsert {
        tenant_id: tenant,
        extension_id: ext,
        aor: "sip:1001@denwa".into(),
        contact_uri: contact.into(),
        expires_at: now + chrono::Duration::seconds(expires),
        q: 1.0,
        call_id: "cid".into(),
        cseq: 1,
        user_agent: "test".into(),
        received_addr: "192.0.2.10:5060".into(),
        transport: store::Transport::Udp,
        local_addr: "192.0.2.1:5060".into(),
        instance_id: None,
        reg_id: None,
        node: "n1".into(),
        flags: 0,
        now,
    }
}

/// A sequential ring group of `members` (caller-ID prefix "Sales", internal class).
pub fn group_spec(members: &[&str], no_answer: &str) -> engine::hunt::GroupSpec {
    engine::hunt::GroupSpec {
        strategy: engine::hunt::Strategy::Sequential,
        members: members
            .iter()
            .map(|n| engine::hunt::Member {
                number: n.to_string(),
                ring_s: 0,
            })
            .collect(),
        ring_s: 10,
        timeout_s: 30,
        no_answer: no_answer.into(),
        cid_prefix: "Sales".into(),
        cos: engine::outside::CallClass::Internal,
    }
}
