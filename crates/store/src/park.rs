//! Call park (`engine::park`): each tenant's lot settings (`park_lots`, absent: the defaults)
//! and the parked calls (`park_calls`, one row per occupied slot, the engine's record as JSON),
//! so parked calls are known again after a restart.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use engine::park::{ParkLot, ParkRecord};

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::{Error, Result, Store};

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

fn lot_of<R: RowGet>(r: &R) -> Result<ParkLot> {
    let u = |v: i64| u32::try_from(v).unwrap_or(0);
    Ok(ParkLot {
        first: u(r.i64("first_slot")?),
        last: u(r.i64("last_slot")?),
        timeout: Duration::from_secs(r.i64("timeout_s")?.max(0).unsigned_abs()),
        moh_class: r.text("moh_class")?,
        fallback: r.text("fallback")?,
    })
}

impl Store {
    /// Every stored lot by tenant (tenants without a row use [`ParkLot::default`]).
    pub async fn park_lots(&self) -> Result<HashMap<i64, ParkLot>> {
        read_pool!(self.db(), pool, kind => {
            let mut out = HashMap::new();
            for r in sqlx::query(
                "SELECT tenant_id, first_slot, last_slot, timeout_s, moh_class, fallback FROM park_lots",
            )
            .fetch_all(pool)
            .await?
            {
                out.insert(r.i64("tenant_id")?, lot_of(&r)?);
            }
            Ok(out)
        })
    }

    /// A tenant's lot (the defaults when none is stored).
    pub async fn park_lot(&self, tenant_id: i64) -> Result<ParkLot> {
        Ok(self
            .park_lots()
            .await?
            .remove(&tenant_id)
            .unwrap_or_default())
    }

    /// Stores a tenant's lot. Refused: settings [`ParkLot::validate`] refuses, and a slot range
    /// that covers a number something else of the tenant already has (named in the error).
    pub async fn set_park_lot(&self, tenant_id: i64, lot: &ParkLot) -> Result<()> {
        lot.validate().map_err(|e| invalid("park lot", e))?;
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            let taken = tenant_numbers!(tx, tenant_id);
            for (label, n) in taken {
                if label == "DID" {
                    continue;
                }
                if lot.slot_of(&n).is_some() {
                    return Err(invalid(
                        "slots",
                        format!("slot {n} is already the number of an {label}: choose another range"),
                    ));
                }
            }
            sqlx::query("DELETE FROM park_lots WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO park_lots (tenant_id, first_slot, last_slot, timeout_s, moh_class, fallback, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant_id)
            .bind(i64::from(lot.first))
            .bind(i64::from(lot.last))
            .bind(i64::try_from(lot.timeout.as_secs()).unwrap_or(i64::MAX))
            .bind(&lot.moh_class)
            .bind(&lot.fallback)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            announce!(tx, kind, Change::Codes);
        });
        Ok(())
    }

    /// Stores (or replaces) a parked call's row.
    pub async fn park_save(&self, r: &ParkRecord) -> Result<()> {
        let doc = serde_json::to_string(r).map_err(|e| invalid("park record", e.to_string()))?;
        let at = to_ms(chrono::DateTime::<Utc>::from(r.parked_at));
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM park_calls WHERE tenant_id = $1 AND slot = $2")
                .bind(r.tenant)
                .bind(i64::from(r.slot))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO park_calls (tenant_id, slot, parked_at, record) VALUES ($1, $2, $3, $4)",
            )
            .bind(r.tenant)
            .bind(i64::from(r.slot))
            .bind(at)
            .bind(&doc)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Deletes a slot's row (nothing to delete is fine).
    pub async fn park_free(&self, tenant_id: i64, slot: u32) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM park_calls WHERE tenant_id = $1 AND slot = $2")
                .bind(tenant_id)
                .bind(i64::from(slot))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Every stored parked call, by tenant and slot. A row this build cannot read is skipped.
    pub async fn park_calls(&self) -> Result<Vec<ParkRecord>> {
        let rows = read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT record FROM park_calls ORDER BY tenant_id, slot")
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.text("record"))
                .collect::<Result<Vec<_>>>()?
        });
        Ok(rows
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }
}
