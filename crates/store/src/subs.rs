//! Event subscriptions (`engine::subs`), kept so a restart does not need phones to subscribe
//! again: one row per subscription dialog, its state as JSON, dropped when it ends.

use chrono::{DateTime, Utc};
use engine::subs::SubRecord;

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::{Error, Result, Store};

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
