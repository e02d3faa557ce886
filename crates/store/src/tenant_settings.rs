//! Settings a tenant may override (rows of `settings` with a `tenant_id`): read across
//! tenants for the call engine's snapshot. Written with [`Store::set_setting`] /
//! [`Store::delete_setting`] and the tenant's id.

use crate::db::{RowGet, read_pool};
use crate::{Result, Store};

impl Store {
    /// Every tenant's own value of `key` (tenants without one are absent), by tenant id.
    pub async fn tenant_setting_values(&self, key: &str) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows: Vec<(i64, String)> = read_pool!(self.db(), pool, kind => {
            sqlx::query(
                "SELECT tenant_id, value FROM settings WHERE tenant_id IS NOT NULL AND key = $1 ORDER BY tenant_id",
            )
            .bind(key)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.i64("tenant_id")?, r.text("value")?)))
            .collect::<Result<_>>()?
        });
        // A value this build cannot read is skipped (the node's value applies).
        Ok(rows
            .into_iter()
            .filter_map(|(t, v)| serde_json::from_str(&v).ok().map(|v| (t, v)))
            .collect())
    }
}
