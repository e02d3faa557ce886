//! Page groups (migration `14 page groups`): one row per group, its settings as a JSON
//! document of `engine::page::PageGroup` (members, barge, answer time, longest page,
//! auto-answer headers). The group's number joins the tenant's number space
//! ([`crate::numbers`]). Every write announces [`Change::Apps`]: the engine loads page groups
//! with the voice applications.
//!
//! Members must be extensions of the group's tenant when the group is saved. An extension
//! removed later is simply not paged (the engine skips numbers it does not know).

use chrono::Utc;
use engine::page::PageGroup;
use serde::Serialize;

use crate::db::{RowGet, conflict, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::numbers::Kind;
use crate::{Error, Result, Store};

/// A page group as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageGroupRow {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name (`page:NAME`).
    pub name: String,
    /// Internal number that dials the group (empty: none).
    pub number: String,
    /// Settings (its `name` is the row's).
    #[serde(flatten)]
    pub group: PageGroup,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

const COLS: &str = "id, tenant_id, name, number, spec, created_at, updated_at";

fn row_from(r: &impl RowGet) -> Result<PageGroupRow> {
    let mut group: PageGroup = serde_json::from_str(&r.text("spec")?)
        .map_err(|e| invalid("spec", format!("stored page group unreadable: {e}")))?;
    group.name = r.text("name")?;
    Ok(PageGroupRow {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: group.name.clone(),
        number: r.text("number")?,
        group,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks a name: 1-40 of letters, digits, `-_.`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid("name", "1-40 letters, digits, - _ ."))
    }
}

impl Store {
    /// Creates (`create_only`) or replaces a page group. Its number must be nobody else's; its
    /// members must be extensions of the tenant.
    pub async fn save_page_group(
        &self,
        tenant_id: i64,
        number: &str,
        group: &PageGroup,
        create_only: bool,
    ) -> Result<PageGroupRow> {
        let name = group.name.as_str();
        check_name(name)?;
        if number.len() > 20 || !number.chars().all(|c| c.is_ascii_digit() || c == '*') {
            return Err(invalid("number", "digits (and *) only, at most 20"));
        }
        group.validate().map_err(|(field, e)| invalid(field, e))?;
        let doc = serde_json::to_string(group).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            for m in &group.members {
                let found = sqlx::query("SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2")
                    .bind(tenant_id)
                    .bind(m)
                    .fetch_optional(&mut *tx)
                    .await?;
                if found.is_none() {
                    return Err(invalid("members", format!("extension {m} does not exist")));
                }
            }
            if !number.is_empty()
                && let Some(why) = number_owner!(tx, tenant_id, number, Some((Kind::Page, name)))
            {
                return Err(invalid("number", why));
            }
            let existing = sqlx::query("SELECT id FROM page_groups WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = match (&existing, create_only) {
                (Some(_), true) => return Err(Error::Conflict(format!("page group {name}"))),
                (None, false) => return Err(Error::NotFound(format!("page group {name}"))),
                (Some(_), false) => format!(
                    "UPDATE page_groups SET number = $3, spec = $4, updated_at = $5
                     WHERE tenant_id = $1 AND name = $2 RETURNING {COLS}"
                ),
                (None, true) => format!(
                    "INSERT INTO page_groups (tenant_id, name, number, spec, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLS}"
                ),
            };
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(number)
                .bind(&doc)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("page group {name}")))?;
            announce!(tx, kind, Change::Apps);
            row_from(&r)?
        }))
    }

    /// Removes a page group.
    pub async fn delete_page_group(&self, tenant_id: i64, name: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            // A menu option paging it (issue 14 §4) keeps it.
            let target = format!("page:{name}");
            if let Some(why) = {
                use apps::ivr::MenuSpec;
                use crate::DidSpec;
                crate::apps::referrer!(tx, tenant_id, target, "")
            } {
                return Err(Error::Invalid {
                    field: "name",
                    reason: format!("page group {name} is {why}"),
                });
            }
            let n = sqlx::query("DELETE FROM page_groups WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("page group {name}")));
            }
            announce!(tx, kind, Change::Apps);
        });
        Ok(())
    }

    /// A page group by name.
    pub async fn page_group(&self, tenant_id: i64, name: &str) -> Result<Option<PageGroupRow>> {
        let sql = format!("SELECT {COLS} FROM page_groups WHERE tenant_id = $1 AND name = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(row_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// A tenant's page groups by name.
    pub async fn list_page_groups(&self, tenant_id: i64) -> Result<Vec<PageGroupRow>> {
        let sql = format!("SELECT {COLS} FROM page_groups WHERE tenant_id = $1 ORDER BY name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(row_from).collect()
        })
    }

    /// Every tenant's page groups (for the engine).
    pub async fn all_page_groups(&self) -> Result<Vec<PageGroupRow>> {
        let sql = format!("SELECT {COLS} FROM page_groups ORDER BY tenant_id, name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(row_from).collect()
        })
    }
}
