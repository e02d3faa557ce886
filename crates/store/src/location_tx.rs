//! One REGISTER, one transaction: the location changes a REGISTER makes (refresh some
//! contacts, remove others, or `Contact: *`) are written together or not at all, so a crash or
//! a refused write never leaves half a registration in the database.
//!
//! REGISTERs that only add or refresh contacts stay group-committed ([`Store::upsert_registrations`]:
//! each REGISTER's rows are one job of the writer, never split between its transactions);
//! one that also removes contacts is written by [`Store::write_location`] in one transaction.

use crate::db::write_tx;
use crate::group::{BINDING_CHUNKS, Job, bind_binding, upsert_bindings_sql};
use crate::{BindingUpsert, Error, Result, Store};

/// One change to the location table, as a REGISTER makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationWrite {
    /// Insert or refresh a binding (keyed by extension and contact URI).
    Upsert(Box<BindingUpsert>),
    /// Remove one contact of an extension.
    Delete {
        /// Extension id.
        extension_id: i64,
        /// Contact URI.
        contact_uri: String,
    },
    /// Remove every contact of an extension (`Contact: *`).
    DeleteAll {
        /// Extension id.
        extension_id: i64,
    },
}

impl Store {
    /// Applies one REGISTER's changes in order, in one transaction: all of them or none (the
    /// first failure rolls back the earlier ones and is returned).
    pub async fn write_location(&self, writes: &[LocationWrite]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        // The one-row statement of the group writer's upsert.
        let one = BINDING_CHUNKS.len() - 1;
        write_tx!(self.db(), tx, kind => {
            for w in writes {
                match w {
                    LocationWrite::Upsert(b) => {
                        let q = sqlx::query(upsert_bindings_sql(kind, one, false));
                        let n = bind_binding!(q, b).execute(&mut *tx).await?.rows_affected();
                        if n != 1 {
                            return Err(Error::Invalid {
                                field: "registration",
                                reason: format!("upsert of {} wrote {n} rows", b.contact_uri),
                            });
                        }
                    }
                    LocationWrite::Delete { extension_id, contact_uri } => {
                        sqlx::query("DELETE FROM registrations WHERE extension_id = $1 AND contact_uri = $2")
                            .bind(extension_id)
                            .bind(contact_uri)
                            .execute(&mut *tx)
                            .await?;
                    }
                    LocationWrite::DeleteAll { extension_id } => {
                        sqlx::query("DELETE FROM registrations WHERE extension_id = $1")
                            .bind(extension_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
        });
        Ok(())
    }

    /// Inserts or refreshes the bindings of many REGISTERs that only upsert, group-committed
    /// with concurrent writers; each REGISTER's rows (one inner `Vec`) commit in the same
    /// transaction or not at all. The outcome of each REGISTER, in order, once all are durable.
    pub async fn upsert_registrations(&self, regs: Vec<Vec<BindingUpsert>>) -> Vec<Result<()>> {
        let mut waiting = Vec::with_capacity(regs.len());
        for rows in regs {
            waiting.push(self.enqueue(|tx| Job::Register(rows, tx)).await);
        }
        crate::location::outcomes(waiting).await
    }
}
