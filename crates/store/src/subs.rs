//! Event subscriptions (`engine::subs`), kept so a restart does not need phones to subscribe
//! again: one row per subscription dialog, its state as JSON, dropped when it ends.

use chrono::{DateTime, Utc};
use engine::subs::SubRecord;

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::{Error, Result, Store};

/// One change of [`Store::apply_event_subs`].
#[derive(Debug, Clone)]
pub enum EventSubWrite {
    /// Store (or replace) this subscription.
    Put(Box<SubRecord>),
    /// Forget the subscription of this dialog.
    Drop {
        /// Its Call-ID.
        call_id: String,
        /// Our tag in it.
        local_tag: String,
    },
}

impl EventSubWrite {
    /// The dialog the change is about.
    pub fn key(&self) -> (&str, &str) {
        match self {
            EventSubWrite::Put(r) => (&r.call_id, &r.local_tag),
            EventSubWrite::Drop { call_id, local_tag } => (call_id, local_tag),
        }
    }
}

impl Store {
    /// Stores (or replaces) a subscription.
    pub async fn put_event_sub(&self, r: &SubRecord) -> Result<()> {
        let doc = serde_json::to_string(r).map_err(|e| Error::Invalid {
            field: "subscription",
            reason: e.to_string(),
        })?;
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM event_subs WHERE call_id = $1 AND local_tag = $2")
                .bind(&r.call_id)
                .bind(&r.local_tag)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO event_subs (call_id, local_tag, tenant_id, record, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&r.call_id)
            .bind(&r.local_tag)
            .bind(r.tenant)
            .bind(&doc)
            .bind(r.expires_at_ms)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Applies many subscription changes in order in ONE transaction (the driver's
    /// subscription writer batches them: 1,000 phones subscribing 50 keys each after a restart
    /// would otherwise take one pool connection per row and starve call records of
    /// connections). `None` = forget (`call_id`, `local_tag`).
    pub async fn apply_event_subs(&self, ops: &[EventSubWrite]) -> Result<()> {
        let mut docs = Vec::with_capacity(ops.len());
        for op in ops {
            docs.push(match op {
                EventSubWrite::Put(r) => {
                    Some(
                        serde_json::to_string(r.as_ref()).map_err(|e| Error::Invalid {
                            field: "subscription",
                            reason: e.to_string(),
                        })?,
                    )
                }
                EventSubWrite::Drop { .. } => None,
            });
        }
        write_tx!(self.db(), tx, kind => {
            for (op, doc) in ops.iter().zip(&docs) {
                let (call_id, local_tag) = op.key();
                sqlx::query("DELETE FROM event_subs WHERE call_id = $1 AND local_tag = $2")
                    .bind(call_id)
                    .bind(local_tag)
                    .execute(&mut *tx)
                    .await?;
                if let (EventSubWrite::Put(r), Some(doc)) = (op, doc) {
                    sqlx::query(
                        "INSERT INTO event_subs (call_id, local_tag, tenant_id, record, expires_at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&r.call_id)
                    .bind(&r.local_tag)
                    .bind(r.tenant)
                    .bind(doc)
                    .bind(r.expires_at_ms)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        });
        Ok(())
    }

    /// Forgets a subscription.
    pub async fn delete_event_sub(&self, call_id: &str, local_tag: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM event_subs WHERE call_id = $1 AND local_tag = $2")
                .bind(call_id)
                .bind(local_tag)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The subscriptions that have not run out at `now` (those that have are removed).
    pub async fn event_subs(&self, now: DateTime<Utc>) -> Result<Vec<SubRecord>> {
        let now = to_ms(now);
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM event_subs WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        });
        let rows = read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT record FROM event_subs ORDER BY expires_at")
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.text("record"))
                .collect::<Result<Vec<_>>>()?
        });
        // A row this build cannot read is skipped (the phone subscribes again).
        Ok(rows
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }
}
