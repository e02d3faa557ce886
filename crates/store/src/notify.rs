//! Change notification across processes.
//!
//! Configuration writes made through this crate announce themselves inside their own transaction,
//! so the announcement exists exactly when the change does: on PostgreSQL with
//! `pg_notify('denwa_changes', kind)` (delivered at commit to every listener), on SQLite by
//! bumping a row of `change_counters`, which every process polls. [`crate::Store::subscribe`]
//! turns either into a broadcast of [`Change`] values.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::db::Db;
use crate::{Backend, Error, Result, Store};

/// The PostgreSQL channel name.
pub(crate) const CHANNEL: &str = "denwa_changes";

/// What kind of configuration changed. Caches keyed on that kind must be reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Tenants or their SIP domains.
    Tenants,
    /// Extensions (including passwords).
    Extensions,
    /// Settings.
    Settings,
    /// Administrators.
    Admins,
    /// API keys.
    ApiKeys,
    /// Trunks, outbound and inbound routes, tenant outbound policy.
    Outside,
    /// Voice applications (IVR menus).
    Apps,
    /// Feature codes, time conditions, holiday calendars, pickup groups.
    Codes,
    /// Everything (after a restore, or when notifications may have been missed).
    All,
}

impl Change {
    /// Every kind.
    pub const KINDS: &'static [Change] = &[
        Change::Tenants,
        Change::Extensions,
        Change::Settings,
        Change::Admins,
        Change::ApiKeys,
        Change::Outside,
        Change::Apps,
        Change::Codes,
        Change::All,
    ];

    /// The name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Tenants => "tenants",
            Change::Extensions => "extensions",
            Change::Settings => "settings",
            Change::Admins => "admins",
            Change::ApiKeys => "api_keys",
            Change::Outside => "outside",
            Change::Apps => "apps",
            Change::Codes => "codes",
            Change::All => "all",
        }
    }

    /// Parses [`Change::as_str`] output.
    pub fn parse(s: &str) -> Option<Change> {
        Change::KINDS.iter().copied().find(|c| c.as_str() == s)
    }
}

/// The statement that announces a change inside a transaction (one text parameter: the kind).
pub(crate) fn announce_sql(kind: Backend) -> &'static str {
    match kind {
        Backend::Sqlite => "UPDATE change_counters SET counter = counter + 1 WHERE kind = $1",
        Backend::Postgres => "SELECT pg_notify('denwa_changes', $1)",
    }
}

/// Announces `$change` inside the transaction `$tx` of a `write_tx!` body.
macro_rules! announce {
    ($tx:ident, $kind:ident, $change:expr) => {
        sqlx::query($crate::notify::announce_sql($kind))
            .bind($change.as_str())
            .execute(&mut *$tx)
            .await?;
    };
}
pub(crate) use announce;

impl Store {
    /// Receives every configuration change made through any store on this database, by this
    /// process or another, typically within a second. Lagging receivers get
    /// `RecvError::Lagged` and should reload everything. Call it inside the tokio runtime: the
    /// first call starts the watcher task (LISTEN on PostgreSQL, polling on SQLite), which sends
    /// one [`Change::All`] once it is watching — anything changed before that may have been
    /// missed, so a cache loaded before that point should be reloaded then.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        let rx = self.inner.changes.subscribe();
        self.inner.watcher.get_or_init(|| {
            let db = self.inner.db.clone();
            let tx = self.inner.changes.clone();
            let every = self.inner.poll_interval;
            tokio::spawn(async move {
                let res = match db {
                    Db::Sqlite { read, .. } => poll_sqlite(read, tx, every).await,
                    Db::Pg(pool, _) => listen_pg(pool, tx).await,
                };
                if let Err(e) = res {
                    tracing::error!(error = %e, "change watcher stopped");
                }
            })
        });
        rx
    }
}

async fn read_counters(pool: &sqlx::SqlitePool) -> Result<HashMap<String, i64>> {
    let rows = sqlx::query("SELECT kind, counter FROM change_counters")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("kind")?,
                r.try_get::<i64, _>("counter")?,
            ))
        })
        .collect()
}

async fn poll_sqlite(
    pool: sqlx::SqlitePool,
    tx: broadcast::Sender<Change>,
    every: Duration,
) -> Result<()> {
    let mut last = read_counters(&pool).await?;
    let _ = tx.send(Change::All);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = match read_counters(&pool).await {
            Ok(n) => n,
            Err(Error::Db(sqlx::Error::PoolClosed)) => return Ok(()),
            Err(e) => {
                // Transient (e.g. the file is being restored); try again next tick.
                tracing::warn!(error = %e, "polling change counters failed");
                continue;
            }
        };
        for (kind, counter) in &now {
            if last.get(kind) != Some(counter)
                && let Some(c) = Change::parse(kind)
            {
                // No receivers is fine: nobody is interested right now.
                let _ = tx.send(c);
            }
        }
        last = now;
    }
}

async fn listen_pg(pool: sqlx::PgPool, tx: broadcast::Sender<Change>) -> Result<()> {
    // A hot standby (a cluster's standby node) refuses LISTEN until it is promoted: keep
    // trying, and tell subscribers to reload everything once watching (the replicated changes
    // they missed included).
    let mut refused = 0u64;
    let mut listener = loop {
        let r = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        match r {
            Ok(l) => break l,
            Err(sqlx::Error::PoolClosed) => return Ok(()),
            Err(e) => {
                refused += 1;
                if refused.is_power_of_two() {
                    tracing::warn!(error = %e, attempts = refused, "cannot LISTEN for changes yet; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let _ = tx.send(Change::All);
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                if let Some(c) = Change::parse(n.payload()) {
                    let _ = tx.send(c);
                }
            }
            // The connection dropped and will be re-established on the next call; anything
            // sent meanwhile is lost, so tell subscribers to reload everything.
            Ok(None) => {
                let _ = tx.send(Change::All);
            }
            Err(sqlx::Error::PoolClosed) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_names_round_trip() {
        for c in Change::KINDS {
            assert_eq!(Change::parse(c.as_str()), Some(*c));
        }
        assert_eq!(Change::parse("nope"), None);
    }
}
