//! Location service (registrations), in Kamailio's usrloc vocabulary.

use chrono::{DateTime, Utc};

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::group::Job;
use crate::{BindingUpsert, Error, Page, Registration, Result, Store};

const REG_COLS: &str = "id, tenant_id, extension_id, aor, contact_uri, expires_at, q, call_id,
    cseq, user_agent, received_addr, transport, local_addr, instance_id, reg_id, node, flags,
    last_seen, updated_at";

fn registration_from(r: &impl RowGet) -> Result<Registration> {
    Ok(Registration {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        extension_id: r.i64("extension_id")?,
        aor: r.text("aor")?,
        contact_uri: r.text("contact_uri")?,
        expires_at: r.ts("expires_at")?,
        q: r.f64("q")?,
        call_id: r.text("call_id")?,
        cseq: r.i64("cseq")?,
        user_agent: r.text("user_agent")?,
        received_addr: r.text("received_addr")?,
        transport: r.text("transport")?.parse()?,
        local_addr: r.text("local_addr")?,
        instance_id: r.opt_text("instance_id")?,
        reg_id: r.opt_i64("reg_id")?,
        node: r.text("node")?,
        flags: r.i64("flags")?,
        last_seen: r.ts("last_seen")?,
        updated_at: r.ts("updated_at")?,
    })
}

impl Store {
    /// Inserts or refreshes the binding `(extension_id, contact_uri)`; returns its id once it is
    /// durable. Group-committed with concurrent callers.
    pub async fn upsert_binding(&self, b: BindingUpsert) -> Result<i64> {
        self.submit(|tx| Job::Binding(Box::new(b), true, tx)).await
    }

    /// Inserts or refreshes many bindings; the outcome of each, in order, once all are durable.
    /// One queue hand-off per row and no task or future per row: the registrar writes every
    /// REGISTER of a core loop turn with one call. No row ids come back, which lets the writer
    /// use statements without RETURNING.
    pub async fn upsert_bindings(&self, rows: Vec<BindingUpsert>) -> Vec<Result<()>> {
        let mut waiting = Vec::with_capacity(rows.len());
        for b in rows {
            waiting.push(
                self.enqueue(|tx| Job::Binding(Box::new(b), false, tx))
                    .await,
            );
        }
        outcomes(waiting).await
    }

    /// Removes one binding; false if it did not exist.
    pub async fn delete_binding(&self, extension_id: i64, contact_uri: &str) -> Result<bool> {
        Ok(write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM registrations WHERE extension_id = $1 AND contact_uri = $2")
                .bind(extension_id)
                .bind(contact_uri)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// Removes every binding of an address of record (`Contact: *`); returns how many.
    pub async fn delete_bindings_for_aor(&self, tenant_id: i64, aor: &str) -> Result<u64> {
        Ok(write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM registrations WHERE tenant_id = $1 AND aor = $2")
                .bind(tenant_id)
                .bind(aor)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }))
    }

    /// Removes every binding of an extension, whatever AOR (domain) it was registered under
    /// (`Contact: *`); returns how many.
    pub async fn delete_bindings_for_extension(&self, extension_id: i64) -> Result<u64> {
        Ok(write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM registrations WHERE extension_id = $1")
                .bind(extension_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }))
    }

    /// Live bindings of an extension (expiring after `now`), best q first, then most recent.
    pub async fn bindings_for_extension(
        &self,
        extension_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>> {
        let sql = format!(
            "SELECT {REG_COLS} FROM registrations WHERE extension_id = $1 AND expires_at > $2
             ORDER BY q DESC, last_seen DESC, id"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql)
                .bind(extension_id)
                .bind(to_ms(now))
                .fetch_all(pool)
                .await?
                .iter()
                .map(registration_from)
                .collect()
        })
    }

    /// Live bindings of an address of record, ordered like [`Store::bindings_for_extension`].
    pub async fn bindings_for_aor(
        &self,
        tenant_id: i64,
        aor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>> {
        let sql = format!(
            "SELECT {REG_COLS} FROM registrations WHERE tenant_id = $1 AND aor = $2 AND expires_at > $3
             ORDER BY q DESC, last_seen DESC, id"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql)
                .bind(tenant_id)
                .bind(aor)
                .bind(to_ms(now))
                .fetch_all(pool)
                .await?
                .iter()
                .map(registration_from)
                .collect()
        })
    }

    /// All bindings (expired or not) by id, paged.
    pub async fn list_bindings(&self, page: Page) -> Result<Vec<Registration>> {
        let (limit, offset) = page.clamped();
        let sql = format!("SELECT {REG_COLS} FROM registrations ORDER BY id LIMIT $1 OFFSET $2");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?
                .iter()
                .map(registration_from)
                .collect()
        })
    }

    /// Sets a binding's flags (e.g. [`Registration::FLAG_UNREACHABLE`]); false if it is gone.
    pub async fn set_binding_flags(&self, id: i64, flags: i64) -> Result<bool> {
        Ok(write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE registrations SET flags = $2 WHERE id = $1")
                .bind(id)
                .bind(flags)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// Deletes bindings that expired at or before `now`; returns how many.
    pub async fn purge_expired_bindings(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }))
    }

    /// Number of bindings; only live ones (expiring after `now`) when `now` is given.
    pub async fn count_bindings(&self, now: Option<DateTime<Utc>>) -> Result<i64> {
        read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT COUNT(*) AS n FROM registrations WHERE expires_at > $1")
                .bind(now.map(to_ms).unwrap_or(i64::MIN))
                .fetch_one(pool)
                .await?
                .i64("n")
        })
    }
}

/// The outcome of each queued write, in order, once all are durable.
pub(crate) async fn outcomes(
    waiting: Vec<Result<tokio::sync::oneshot::Receiver<Result<i64>>>>,
) -> Vec<Result<()>> {
    let mut out = Vec::with_capacity(waiting.len());
    for w in waiting {
        out.push(match w {
            Ok(rx) => rx
                .await
                .map_err(|_| Error::Closed)
                .and_then(|r| r.map(drop)),
            Err(e) => Err(e),
        });
    }
    out
}
