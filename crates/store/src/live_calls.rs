//! Calls in progress of an active/standby pair (`engine::live_calls`): one row per relayed,
//! answered call (`live_calls`, the engine's record as JSON), written by the node that serves
//! the call and read by the node that takes the application address over. Not in backups: a
//! row describes sockets of a running node, meaningless after a restore.

use chrono::Utc;
use engine::live_calls::LiveCallRecord;

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::{Error, Result, Store};

/// Rows read at a take-over at most (the engine's own bound).
const MAX_ROWS: i64 = engine::live_calls::MAX_LIVE_CALLS as i64;

impl Store {
    /// Stores (or replaces) a call's row.
    pub async fn live_call_save(&self, r: &LiveCallRecord) -> Result<()> {
        let doc = serde_json::to_string(r).map_err(|e| Error::Invalid {
            field: "live call record",
            reason: e.to_string(),
        })?;
        let at = to_ms(chrono::DateTime::<Utc>::from(r.saved_at));
        write_tx!(self.db(), tx, kind => {
            sqlx::query(
                "INSERT INTO live_calls (tenant_id, call_id, saved_at, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, call_id) DO UPDATE SET saved_at = $3, record = $4",
            )
            .bind(r.tenant)
            .bind(&r.call_id)
            .bind(at)
            .bind(&doc)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Deletes a call's row (nothing to delete is fine).
    pub async fn live_call_delete(&self, tenant_id: i64, call_id: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM live_calls WHERE tenant_id = $1 AND call_id = $2")
                .bind(tenant_id)
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Deletes the rows saved before `before` (stale after a cold start of both nodes);
    /// answers how many.
    pub async fn live_calls_clear(&self, before: std::time::SystemTime) -> Result<u64> {
        let at = to_ms(chrono::DateTime::<Utc>::from(before));
        let n = write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM live_calls WHERE saved_at < $1")
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n)
    }

    /// Every stored call in progress, oldest first (at most the engine's bound). A row this
    /// build cannot read is skipped.
    pub async fn live_calls(&self) -> Result<Vec<LiveCallRecord>> {
        let rows = read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT record FROM live_calls ORDER BY saved_at LIMIT $1")
                .bind(MAX_ROWS)
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::live_calls::{DialogRecord, LiveLeg};
    use std::time::{Duration, SystemTime};

    fn leg(n: u16) -> LiveLeg {
        LiveLeg {
            call_id: format!("leg-{n}"),
            our_tag: format!("t{n}"),
            dialog: DialogRecord {
                role: "uas".into(),
                local: format!("<sip:a@x>;tag=t{n}"),
                remote: "<sip:b@y>;tag=r".into(),
                remote_tag: "r".into(),
                remote_target: "sip:b@192.0.2.2:5060".into(),
                local_target: None,
                route_set: vec![],
                local_seq: None,
                remote_seq: Some(1),
                secure: false,
            },
            peer: "192.0.2.2:5060".parse().unwrap(),
            transport: "UDP".into(),
            local: "192.0.2.1:5060".parse().unwrap(),
            relay: format!("192.0.2.1:{}", 20000 + n).parse().unwrap(),
            remote_rtp: Some("192.0.2.2:4000".parse().unwrap()),
            remote_rtcp: None,
            sdp: None,
            trunk: None,
        }
    }

    #[tokio::test]
    async fn rows_are_saved_replaced_listed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            dir.path().join("x.db").to_str().unwrap(),
            crate::OpenOptions::default(),
        )
        .await
        .unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let mut r = LiveCallRecord {
            tenant: 1,
            call_id: "c1".into(),
            caller: "1001".into(),
            caller_name: String::new(),
            callee: "1002".into(),
            start: t0,
            answer: t0 + Duration::from_secs(2),
            codec: "PCMU".into(),
            direction: "internal".into(),
            trunk: String::new(),
            did: String::new(),
            dialled: "1002".into(),
            sent_number: String::new(),
            caller_id: String::new(),
            on_hold: false,
            a: leg(0),
            b: Some(leg(2)),
            anchored: false,
            moh: None,
            saved_at: t0 + Duration::from_secs(2),
        };
        s.live_call_save(&r).await.unwrap();
        r.on_hold = true;
        // Hold music comes back as stored.
        r.moh = Some(engine::live_calls::LiveMoh {
            held: "b".into(),
            endpoint: "192.0.2.10:10100".parse().unwrap(),
            class: "default".into(),
        });
        r.saved_at += Duration::from_secs(5);
        s.live_call_save(&r).await.unwrap();
        assert_eq!(
            s.live_calls().await.unwrap(),
            vec![r.clone()],
            "replaced, not added"
        );
        assert_eq!(
            s.live_calls_clear(r.saved_at).await.unwrap(),
            0,
            "not older"
        );
        assert_eq!(
            s.live_calls_clear(r.saved_at + Duration::from_millis(1))
                .await
                .unwrap(),
            1
        );
        assert!(s.live_calls().await.unwrap().is_empty());
        s.live_call_save(&r).await.unwrap();
        s.live_call_delete(1, "c1").await.unwrap();
        assert!(s.live_calls().await.unwrap().is_empty());
        s.live_call_delete(1, "c1").await.unwrap();
    }
}
