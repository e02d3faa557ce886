//! Events of a call, in order (who transferred the call to whom, when; pickups), stored beside
//! its one call record and found by the record's tenant and Call-ID.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::{Result, Store};

/// Most events stored per call (the engine caps transfers per call lower than this).
pub const MAX_EVENTS_PER_CALL: usize = 64;

/// One event of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdrEvent {
    /// Position in the call (0 first).
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Transfers: `blind`, `attended`, `failed`, `callback`, `replaces`; pickups: `pickup`,
    /// `directed_pickup`; ring groups and forwarding: `hunt`, `skipped`, `no_answer`,
    /// `answered`, `forward_always`, `forward_busy`, `forward_no_answer`,
    /// `forward_unreachable`, `group_no_answer`, `dnd` (docs/transfer.md lists what each means).
    pub kind: String,
    /// Who did it (extension number).
    pub by: String,
    /// Who was moved (number).
    pub party: String,
    /// To whom.
    pub target: String,
    /// SIP status of the outcome (200, 486, ...).
    pub status: i64,
}

const COLS: &str = "e.seq, e.at, e.kind, e.by_number, e.party, e.target, e.status";

fn event_from(r: &impl RowGet) -> Result<CdrEvent> {
    Ok(CdrEvent {
        seq: r.i64("seq")?,
        at: r.ts("at")?,
        kind: r.text("kind")?,
        by: r.text("by_number")?,
        party: r.text("party")?,
        target: r.text("target")?,
        status: r.i64("status")?,
    })
}

impl Store {
    /// Stores the events of call `call_id` (its record's Call-ID), in the given order.
    pub async fn insert_cdr_events(
        &self,
        tenant_id: i64,
        call_id: &str,
        events: &[CdrEvent],
    ) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            for e in events.iter().take(MAX_EVENTS_PER_CALL) {
                sqlx::query(
                    "INSERT INTO cdr_events (tenant_id, call_id, seq, at, kind, by_number, party, target, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(tenant_id)
                .bind(call_id)
                .bind(e.seq)
                .bind(to_ms(e.at))
                .bind(&e.kind)
                .bind(&e.by)
                .bind(&e.party)
                .bind(&e.target)
                .bind(e.status)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// The events of the call whose record is `cdr_id`, in order (empty when there were none).
    pub async fn cdr_events(&self, cdr_id: i64) -> Result<Vec<CdrEvent>> {
        let sql = format!(
            "SELECT {COLS} FROM cdr_events e JOIN cdrs c ON c.tenant_id = e.tenant_id AND c.call_id = e.call_id
             WHERE c.id = $1 ORDER BY e.at, e.seq, e.id"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(cdr_id).fetch_all(pool).await?.iter().map(event_from).collect()
        })
    }
}
