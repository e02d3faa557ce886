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
