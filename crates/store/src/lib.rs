//! `store`: the only crate that writes SQL. SQLite (default) and PostgreSQL behind one typed API.
//!
//! Open a [`Store`] with a `sqlite://PATH`, a bare file path or a `postgres://…` URL; the schema
//! is migrated on open. Hot-path writes (location refreshes, call records) are group-committed:
//! many callers share one transaction and each returns once its row is durable. Configuration
//! changes are announced to every process using the database through [`Store::subscribe`].
//! Backups that move between backends are in [`backup`].
//!
//! This crate does no SIP and no policy: the registrar in `pbx` decides what to store.

mod apps;
pub mod backup;
pub mod backupsrv;
mod cdr;
mod cdr_events;
mod codes;
mod config;
mod custom_prompts;
pub use custom_prompts::{
    CustomPromptRow, IN_USE as CUSTOM_PROMPT_IN_USE, NewCustomPrompt,
    UploadError as CustomUploadError, Uploaded as CustomUploaded,
};
mod db;
pub mod fence;
mod group;
mod hunt;
mod ivr_dest;
mod live_calls;
mod location;
mod location_tx;
pub use location_tx::LocationWrite;
pub mod migrate;
pub mod recording;
#[macro_use]
mod model;
mod moh_use;
mod notify;
#[macro_use]
mod numbers;
mod ext_members;
mod limits;
mod outside;
mod page;
mod park;
mod park_numbers;
pub mod report;
mod subs;
pub use subs::EventSubWrite;
mod tenant_settings;
mod vm_greeting;
mod vmbox;
pub use vm_greeting::GreetingError as VmGreetingError;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{broadcast, mpsc};

pub use apps::{ConfRoom, IvrMenu, validate_menu_name};
pub use cdr_events::{CdrEvent, MAX_EVENTS_PER_CALL};
pub use codes::{FeatureCodeRow, TimeCondRow};
pub use config::{ha1_md5, ha1_sha256, validate_extension_number, validate_language};
pub use group::WriteStats;
pub use hunt::RingGroup;
pub use model::*;
pub use notify::Change;
pub use outside::OutsideConfig;
pub use page::PageGroupRow;
pub use vmbox::{
    LOCK_AFTER, LOCK_FOR_S, MAIL_ATTEMPTS, MAX_MESSAGES, MAX_OUTBOX, NewVmMessage, OUTBOX_KEPT,
    VmBox, VmMail, VmMessage, mail_backoff_s,
};

use db::Db;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database reported an error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("schema migration failed: {0}")]
    Migrate(String),
    /// The database was written by a newer Denwa.
    #[error(
        "the database has schema version {found}, but this Denwa knows versions up to {supported}: \
         it was written by a newer Denwa; refusing to run (upgrade Denwa or use another database)"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// The schema is older than this build and migrations were not requested.
    #[error(
        "the database has schema version {found}, this Denwa needs {latest}: run `denwa db migrate`"
    )]
    SchemaTooOld {
        /// Version found in the database.
        found: i64,
        /// Version this build needs.
        latest: i64,
    },
    /// An input value was rejected.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was invalid.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A row that was asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique constraint refused the row.
    #[error("{0} already exists")]
    Conflict(String),
    /// The URL names no supported backend.
    #[error("unsupported database URL {0:?}: use sqlite://PATH, a file path, or postgres://…")]
    BadUrl(String),
    /// Password hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A backup archive is unusable (corrupt, truncated, foreign, too new …).
    #[error("backup rejected: {0}")]
    Backup(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The group-commit writer has stopped (the store is closing).
    #[error("the store is closed")]
    Closed,
    /// The cluster write fence refused the write (`fence`): this node is not the active node
    /// of its pair, its authority ended, or the database holds another epoch. Nothing of the
    /// transaction was committed.
    #[error("write refused: {0}")]
    Fenced(fence::Refusal),
    /// A cap passed by the caller (the licence's limit) allows no more rows of this kind;
    /// checked in the insert's own transaction (`limits`), so concurrent creates cannot pass it.
    #[error("the limit allows {limit} {what}; {current} exist")]
    Limit {
        /// What is capped ("extensions", "tenants").
        what: &'static str,
        /// The cap.
        limit: u64,
        /// How many exist.
        current: u64,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Embedded SQLite file (WAL mode).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Apply pending migrations (default true). When false, an older schema is an error.
    pub migrate: bool,
    /// Connection pool size (default 8; SQLite's writer is always one extra connection).
    pub max_connections: u32,
    /// How long a SQLite writer waits for another process's lock (default 5 s).
    pub busy_timeout: Duration,
    /// Most rows one group commit carries (default 1000).
    pub max_batch: usize,
    /// How often SQLite's change counters are polled (default 250 ms).
    pub poll_interval: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            migrate: true,
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            max_batch: 1000,
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// Handle to the database; cheap to clone, shared by all tasks.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    writer: mpsc::Sender<group::Job>,
    counters: Arc<group::Counters>,
    changes: broadcast::Sender<Change>,
    watcher: OnceLock<tokio::task::JoinHandle<()>>,
    poll_interval: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.watcher.get() {
            h.abort();
        }
    }
}

/// The SQLite file name inside the data dir.
pub const SQLITE_FILE: &str = "denwa.db";

/// The default database URL for a data dir: the SQLite file [`SQLITE_FILE`] inside it.
pub fn default_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}", data_dir.join(SQLITE_FILE).display())
}

/// SQLite options shared by [`Store::open`] and [`Store::migrate_to`]; creates the file's
/// directory so a fresh data dir needs no setup.
fn sqlite_options(url: &str, given: &str, busy: Duration) -> Result<SqliteConnectOptions> {
    let opts = SqliteConnectOptions::from_str(url).map_err(|_| Error::BadUrl(given.to_string()))?;
    let file = opts.get_filename();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && file != std::path::Path::new(":memory:")
    {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(opts
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk when it returns (NORMAL in WAL mode may lose the last
        // commits on power loss, which would break "acknowledged = durable").
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy)
        .foreign_keys(true))
}

/// Connects a SQLite pool, retrying while the file is locked for up to `busy`.
///
/// Switching a fresh file to WAL takes an exclusive lock, and SQLite answers a second process
/// doing the same at that moment with `SQLITE_BUSY` at once, without its busy handler; two
/// Denwa processes started together on a new data dir must both come up.
async fn sqlite_pool(opts: SqliteConnectOptions, max: u32, busy: Duration) -> Result<SqlitePool> {
    let deadline = tokio::time::Instant::now() + busy;
    loop {
        match SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts.clone())
            .await
        {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("5") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Turns what the user gave (`sqlite://…`, `postgres://…`, or a path) into a backend and URL.
fn classify(url_or_path: &str) -> Result<(Backend, String)> {
    let s = url_or_path.trim();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok((Backend::Postgres, s.to_string()))
    } else if s.starts_with("sqlite:") {
        Ok((Backend::Sqlite, s.to_string()))
    } else if s.is_empty() || s.contains("://") {
        Err(Error::BadUrl(s.to_string()))
    } else {
        Ok((Backend::Sqlite, format!("sqlite://{s}")))
    }
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn open(url_or_path: &str, opts: OpenOptions) -> Result<Store> {
        let (backend, url) = classify(url_or_path)?;
        let db = match backend {
            Backend::Sqlite => {
                let base = sqlite_options(&url, url_or_path, opts.busy_timeout)?;
                let write = sqlite_pool(base.clone(), 1, opts.busy_timeout).await?;
                let read =
                    sqlite_pool(base, opts.max_connections.max(1), opts.busy_timeout).await?;
                Db::Sqlite {
                    read,
                    write,
                    fence: fence::Fence::new(),
                }
            }
            Backend::Postgres => Db::Pg(
                PgPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .connect(&url)
                    .await?,
                fence::Fence::new(),
            ),
        };
        let found = migrate::current_version(&db).await?;
        if found > migrate::LATEST {
            db.close().await;
            return Err(migrate::too_new(found));
        }
        if found < migrate::LATEST {
            if opts.migrate {
                migrate::migrate_to(&db, migrate::LATEST).await?;
            } else {
                db.close().await;
                return Err(Error::SchemaTooOld {
                    found,
                    latest: migrate::LATEST,
                });
            }
        }
        config::ensure_default_tenant(&db).await?;
        let (writer, rx) = mpsc::channel(opts.max_batch.max(1) * 4);
        let counters = Arc::new(group::Counters::default());
        tokio::spawn(group::run(
            db.clone(),
            rx,
            opts.max_batch.max(1),
            counters.clone(),
        ));
        let (changes, _) = broadcast::channel(256);
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                writer,
                counters,
                changes,
                watcher: OnceLock::new(),
                poll_interval: opts.poll_interval,
            }),
        })
    }

    /// Applies pending migrations to the database at `url_or_path` without starting a store;
    /// returns the versions applied (empty when already current). This is `denwa db migrate`.
    pub async fn migrate(url_or_path: &str) -> Result<Vec<i64>> {
        Self::migrate_to(url_or_path, migrate::LATEST).await
    }

    /// Like [`Store::migrate`] but stops at `version` (tests build old databases with this).
    pub async fn migrate_to(url_or_path: &str, version: i64) -> Result<Vec<i64>> {
        let (backend, url) = classify(url_or_path)?;
        let db = match backend {
            Backend::Sqlite => {
                let busy = Duration::from_secs(5);
                let pool = sqlite_pool(sqlite_options(&url, url_or_path, busy)?, 1, busy).await?;
                Db::Sqlite {
                    read: pool.clone(),
                    write: pool,
                    fence: fence::Fence::new(),
                }
            }
            Backend::Postgres => Db::Pg(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&url)
                    .await?,
                fence::Fence::new(),
            ),
        };
        let found = migrate::current_version(&db).await?;
        let res = if found > migrate::LATEST {
            Err(migrate::too_new(found))
        } else {
            migrate::migrate_to(&db, version).await
        };
        db.close().await;
        res
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.inner.db.backend()
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        migrate::current_version(&self.inner.db).await
    }

    /// Closes the pools: a commit in progress completes, later calls on any clone fail.
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_urls() {
        assert_eq!(classify("postgres://u@h/db").unwrap().0, Backend::Postgres);
        assert_eq!(classify("sqlite://x.db").unwrap().0, Backend::Sqlite);
        assert_eq!(
            classify("/var/lib/denwa/denwa.db").unwrap(),
            (
                Backend::Sqlite,
                "sqlite:///var/lib/denwa/denwa.db".to_string()
            )
        );
        assert!(matches!(classify("mysql://h/db"), Err(Error::BadUrl(_))));
        assert!(matches!(classify(""), Err(Error::BadUrl(_))));
    }

    #[tokio::test]
    async fn bare_path_in_missing_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("fresh/data-dir");
        let url = default_url(&data);
        let s = Store::open(
            data.join(SQLITE_FILE).to_str().unwrap(),
            OpenOptions::default(),
        )
        .await
        .unwrap();
        assert!(data.join(SQLITE_FILE).exists());
        s.close().await;
        let s = Store::open(&url, OpenOptions::default()).await.unwrap();
        assert_eq!(s.backend(), Backend::Sqlite);
        assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    }
}
