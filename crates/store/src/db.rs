//! The two connection pools behind one enum, and the macros that run the same code on either.
//!
//! Every query in this crate is written once, with `$1`-style placeholders that both SQLite and
//! PostgreSQL accept; the macros expand the body once per backend so that sqlx sees concrete
//! types and no `Any` driver (with its narrower type support) is needed.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::{Error, Result};

/// The pools of one store.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    /// SQLite: many readers, one writer connection (SQLite allows a single writer anyway; one
    /// connection serializes our own writers without lock errors and keeps busy waits for
    /// other processes only).
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        /// The cluster write fence (`crate::fence`), checked by every `write_tx!`.
        fence: crate::fence::Fence,
    },
    /// PostgreSQL: one pool for everything, and the cluster write fence.
    Pg(PgPool, crate::fence::Fence),
}

impl Db {
    pub(crate) fn backend(&self) -> crate::Backend {
        match self {
            Db::Sqlite { .. } => crate::Backend::Sqlite,
            Db::Pg(..) => crate::Backend::Postgres,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite { read, write, .. } => {
                write.close().await;
                read.close().await;
            }
            Db::Pg(pool, _) => pool.close().await,
        }
    }

    pub(crate) fn fence(&self) -> &crate::fence::Fence {
        match self {
            Db::Sqlite { fence, .. } | Db::Pg(_, fence) => fence,
        }
    }
}

/// Runs `$body` inside a write transaction on `$db` (a `&Db`), binding the transaction to `$tx`
/// and the backend to `$kind`; commits when the body evaluates without `?` returning early
/// (an early return drops the transaction, which rolls it back).
///
/// On a clustered node every transaction is fenced here, the one place all writes pass
/// (`crate::fence`): refused before `BEGIN` without a live grant, refused unless the
/// database's `cluster_epoch` equals the grant's epoch (first statement), and refused before
/// `COMMIT` if the grant was revoked or ran out meanwhile.
macro_rules! write_tx {
    ($db:expr, $tx:ident, $kind:ident => $body:expr) => {{
        match $db {
            $crate::db::Db::Sqlite { write, fence, .. } => {
                #[allow(unused_variables)]
                let $kind = $crate::Backend::Sqlite;
                let permit = fence.permit_wait().await?;
                // IMMEDIATE takes the write lock up front, so a read-then-write transaction
                // never fails with SQLITE_BUSY_SNAPSHOT; waits are covered by busy_timeout.
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                if let Some(epoch) = permit {
                    $crate::fence::fence_db_check!(
                        fence,
                        $tx,
                        $crate::fence::SQL_SQLITE_CHECK,
                        epoch
                    );
                }
                let out = $body;
                fence.permit()?;
                $tx.commit().await?;
                out
            }
            $crate::db::Db::Pg(pool, fence) => {
                #[allow(unused_variables)]
                let $kind = $crate::Backend::Postgres;
                let permit = fence.permit_wait().await?;
                let mut $tx = pool.begin().await?;
                if let Some(epoch) = permit {
                    $crate::fence::fence_db_check!(fence, $tx, $crate::fence::SQL_PG_CHECK, epoch);
                }
                let out = $body;
                fence.permit()?;
                $tx.commit().await?;
                out
            }
        }
    }};
}

/// Runs `$body` with `$pool` bound to a reader pool of `$db` (a `&Db`) and `$kind` to the backend.
macro_rules! read_pool {
    ($db:expr, $pool:ident, $kind:ident => $body:expr) => {{
        match $db {
            $crate::db::Db::Sqlite { read: $pool, .. } => {
                #[allow(unused_variables)]
                let $kind = $crate::Backend::Sqlite;
                $body
            }
            $crate::db::Db::Pg($pool, _) => {
                #[allow(unused_variables)]
                let $kind = $crate::Backend::Postgres;
                $body
            }
        }
    }};
}

pub(crate) use read_pool;
pub(crate) use write_tx;

/// Column access that reads the same way from a SQLite or a PostgreSQL row.
pub(crate) trait RowGet {
    fn i64(&self, col: &str) -> Result<i64>;
    fn opt_i64(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn boolean(&self, col: &str) -> Result<bool>;
    fn f64(&self, col: &str) -> Result<f64>;
    fn opt_f64(&self, col: &str) -> Result<Option<f64>>;
    fn opt_bool(&self, col: &str) -> Result<Option<bool>>;
    /// A timestamp stored as integer milliseconds since the Unix epoch (UTC).
    fn ts(&self, col: &str) -> Result<DateTime<Utc>> {
        from_ms(self.i64(col)?)
    }
    /// A nullable timestamp.
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_i64(col)?.map(from_ms).transpose()
    }
}

macro_rules! impl_row_get {
    ($row:ty) => {
        impl RowGet for $row {
            fn i64(&self, col: &str) -> Result<i64> {
                Ok(self.try_get::<i64, _>(col)?)
            }
            fn opt_i64(&self, col: &str) -> Result<Option<i64>> {
                Ok(self.try_get::<Option<i64>, _>(col)?)
            }
            fn text(&self, col: &str) -> Result<String> {
                Ok(self.try_get::<String, _>(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                Ok(self.try_get::<Option<String>, _>(col)?)
            }
            fn boolean(&self, col: &str) -> Result<bool> {
                Ok(self.try_get::<bool, _>(col)?)
            }
            fn f64(&self, col: &str) -> Result<f64> {
                Ok(self.try_get::<f64, _>(col)?)
            }
            fn opt_f64(&self, col: &str) -> Result<Option<f64>> {
                Ok(self.try_get::<Option<f64>, _>(col)?)
            }
            fn opt_bool(&self, col: &str) -> Result<Option<bool>> {
                Ok(self.try_get::<Option<bool>, _>(col)?)
            }
        }
    };
}

impl_row_get!(SqliteRow);
impl_row_get!(PgRow);

/// Milliseconds since the epoch, the one timestamp representation of the schema.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_ms`]; fails only for values outside chrono's range (a corrupt row).
pub(crate) fn from_ms(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Invalid {
        field: "timestamp",
        reason: format!("{ms} ms is out of range"),
    })
}

/// Maps a unique-constraint violation to [`Error::Conflict`] naming `what`, anything else unchanged.
pub(crate) fn conflict(err: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => Error::Conflict(what()),
        Some(db) if db.is_foreign_key_violation() => Error::Invalid {
            field: "reference",
            reason: format!("{} refers to a row that does not exist", what()),
        },
        _ => Error::Db(err),
    }
}
