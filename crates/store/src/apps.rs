//! Voice applications' configuration: IVR menus (a JSON document of `apps::ivr::MenuSpec`
//! per menu, plus the internal number that reaches it).
//!
//! References are checked inside the writing transaction: a menu's options name extensions
//! and menus that exist, its number is not an extension's, and a menu that a DID or another
//! menu sends callers to cannot be removed.

use apps::conf::RoomSpec;
use apps::ivr::MenuSpec;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::db::{RowGet, conflict, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::numbers::{Kind, number_owner};
use crate::{DidSpec, Error, Result, Store};

/// An IVR menu as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IvrMenu {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name (`ivr:NAME`).
    pub name: String,
    /// Internal number that reaches the menu (empty: none).
    pub number: String,
    /// The menu.
    #[serde(flatten)]
    pub spec: MenuSpec,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

/// A conference room as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfRoom {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The number callers dial (`conf:NUMBER`).
    pub number: String,
    /// Settings (the PIN is never returned by the API: see `has_pin`).
    #[serde(flatten)]
    pub spec: RoomSpec,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

const CONF_COLS: &str = "id, tenant_id, number, spec, created_at, updated_at";

fn conf_from(r: &impl RowGet) -> Result<ConfRoom> {
    let spec: RoomSpec = serde_json::from_str(&r.text("spec")?).map_err(|e| Error::Invalid {
        field: "spec",
        reason: format!("stored conference room unreadable: {e}"),
    })?;
    Ok(ConfRoom {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        number: r.text("number")?,
        spec,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

const IVR_COLS: &str = "id, tenant_id, name, number, spec, created_at, updated_at";

fn ivr_from(r: &impl RowGet) -> Result<IvrMenu> {
    let spec: MenuSpec = serde_json::from_str(&r.text("spec")?).map_err(|e| Error::Invalid {
        field: "spec",
        reason: format!("stored IVR menu unreadable: {e}"),
    })?;
    Ok(IvrMenu {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: r.text("name")?,
        number: r.text("number")?,
        spec,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// The field name of a spec error, as the API reports it.
fn spec_field(f: &str) -> &'static str {
    match f.split('.').next().unwrap_or("") {
        "greeting" => "greeting",
        "options" => "options",
        "timeout_s" => "timeout_s",
        "digit_timeout_s" => "digit_timeout_s",
        "retries" => "retries",
        "fallback" => "fallback",
        "cos" => "cos",
        _ => "spec",
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks a menu name: what `ivr:NAME` allows.
pub fn validate_menu_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 40 {
        return Err(invalid("name", "1-40 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid("name", "letters, digits, - _ . only"));
    }
    Ok(())
}

fn validate_number(number: &str) -> Result<()> {
    if number.is_empty() {
        return Ok(());
    }
    if number.len() > 20 || !number.chars().all(|c| c.is_ascii_digit() || c == '*') {
        return Err(invalid("number", "digits (and *) only, at most 20"));
    }
    Ok(())
}

/// Whether `dest` names something that exists in the tenant (inside a transaction).
macro_rules! destination_exists {
    ($tx:ident, $tenant:expr, $dest:expr) => {{
        let (sql, key) = match $dest {
            Destination::Ext(n) | Destination::Vm(n) => (
                "SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2",
                n.as_str(),
            ),
            Destination::Ivr(n) => (
                "SELECT id FROM ivr_menus WHERE tenant_id = $1 AND name = $2",
                n.as_str(),
            ),
            Destination::Group(n) => (
                "SELECT id FROM ring_groups WHERE tenant_id = $1 AND name = $2",
                n.as_str(),
            ),
            Destination::Timecond(n) => (
                "SELECT id FROM time_conditions WHERE tenant_id = $1 AND name = $2",
                n.as_str(),
            ),
            _ => ("", ""),
        };
        if sql.is_empty() {
            false
        } else {
            sqlx::query(sql)
                .bind($tenant)
                .bind(key)
                .fetch_optional(&mut *$tx)
                .await?
                .is_some()
        }
    }};
}
pub(crate) use destination_exists;

/// What sends callers to `target` (`ivr:main`, `conf:800`) in the tenant, inside a transaction:
/// `Some("the destination of inbound route …")` or `Some("used by IVR menu …")`; the menu named
/// `skip_menu` (the one being removed) does not count.
macro_rules! referrer {
    ($tx:ident, $tenant:expr, $target:expr, $skip_menu:expr) => {{
        let mut found: Option<String> = None;
        for r in sqlx::query("SELECT pattern, spec FROM inbound_routes WHERE tenant_id = $1")
            .bind($tenant)
            .fetch_all(&mut *$tx)
            .await?
        {
            let spec: DidSpec = serde_json::from_str(&r.text("spec")?).unwrap_or_default();
            if spec.destination == $target {
                found = Some(format!(
                    "the destination of inbound route {}",
                    r.text("pattern")?
                ));
                break;
            }
        }
        if found.is_none() {
            for r in
                sqlx::query("SELECT name, spec FROM ivr_menus WHERE tenant_id = $1 AND name <> $2")
                    .bind($tenant)
                    .bind($skip_menu)
                    .fetch_all(&mut *$tx)
                    .await?
            {
                let spec: MenuSpec = serde_json::from_str(&r.text("spec")?).unwrap_or_default();
                if spec.destinations().any(|(_, d)| d == $target) {
                    found = Some(format!("used by IVR menu {}", r.text("name")?));
                    break;
                }
            }
        }
        found
    }};
}
pub(crate) use referrer;

impl Store {
    /// Creates a menu (`create_only`) or replaces the settings of an existing one.
    pub async fn put_ivr(
        &self,
        tenant_id: i64,
        name: &str,
        number: &str,
        spec: &MenuSpec,
        create_only: bool,
    ) -> Result<IvrMenu> {
        validate_menu_name(name)?;
        validate_number(number)?;
        spec.validate()
            .map_err(|e| invalid(spec_field(&e.field), format!("{}: {}", e.field, e.reason)))?;
        let doc = serde_json::to_string(spec).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            if let Some((field, why)) =
                crate::ivr_dest::ivr_destinations_problem!(tx, tenant_id, name, spec)
            {
                return Err(invalid(spec_field(&field), format!("{field}: {why}")));
            }
            if !number.is_empty()
                && let Some(why) = number_owner!(tx, tenant_id, number, Some((Kind::Ivr, name)))
            {
                return Err(invalid("number", why));
            }
            let existing = sqlx::query("SELECT id FROM ivr_menus WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = match (&existing, create_only) {
                (Some(_), true) => return Err(Error::Conflict(format!("IVR menu {name}"))),
                (None, false) => return Err(Error::NotFound(format!("IVR menu {name}"))),
                (Some(_), false) => format!(
                    "UPDATE ivr_menus SET number = $3, spec = $4, updated_at = $5
                     WHERE tenant_id = $1 AND name = $2 RETURNING {IVR_COLS}"
                ),
                (None, true) => format!(
                    "INSERT INTO ivr_menus (tenant_id, name, number, spec, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING {IVR_COLS}"
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
                .map_err(|e| conflict(e, || format!("IVR menu {name} or number {number}")))?;
            announce!(tx, kind, Change::Apps);
            ivr_from(&r)?
        }))
    }

    /// Removes a menu nothing refers to.
    pub async fn delete_ivr(&self, tenant_id: i64, name: &str) -> Result<()> {
        let target = format!("ivr:{name}");
        write_tx!(self.db(), tx, kind => {
            if let Some(why) = referrer!(tx, tenant_id, target, name) {
                return Err(invalid("name", format!("IVR menu {name} is {why}")));
            }
            if let Some(why) = crate::hunt::hunt_referrer!(tx, tenant_id, target, "") {
                return Err(invalid("name", format!("IVR menu {name} is {why}")));
            }
            let n = sqlx::query("DELETE FROM ivr_menus WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("IVR menu {name}")));
            }
            announce!(tx, kind, Change::Apps);
        });
        Ok(())
    }

    /// A menu by name.
    pub async fn ivr(&self, tenant_id: i64, name: &str) -> Result<Option<IvrMenu>> {
        let sql = format!("SELECT {IVR_COLS} FROM ivr_menus WHERE tenant_id = $1 AND name = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(ivr_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// A tenant's menus by name.
    pub async fn list_ivrs(&self, tenant_id: i64) -> Result<Vec<IvrMenu>> {
        let sql = format!("SELECT {IVR_COLS} FROM ivr_menus WHERE tenant_id = $1 ORDER BY name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(ivr_from).collect()
        })
    }

    /// Creates (`create_only`) or replaces a conference room. Its number must be nobody
    /// else's (no extension, no IVR menu number).
    pub async fn put_conf(
        &self,
        tenant_id: i64,
        number: &str,
        spec: &RoomSpec,
        create_only: bool,
    ) -> Result<ConfRoom> {
        if number.is_empty() {
            return Err(invalid("number", "required"));
        }
        validate_number(number)?;
        spec.validate().map_err(|e| {
            let field = match e.field.as_str() {
                "pin" => "pin",
                "max_participants" => "max_participants",
                _ => "name",
            };
            invalid(field, e.reason)
        })?;
        let doc = serde_json::to_string(spec).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            if let Some(why) = number_owner!(tx, tenant_id, number, Some((Kind::Conf, number))) {
                return Err(invalid("number", why));
            }
            let existing = sqlx::query("SELECT id FROM conf_rooms WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id)
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = match (&existing, create_only) {
                (Some(_), true) => return Err(Error::Conflict(format!("conference room {number}"))),
                (None, false) => return Err(Error::NotFound(format!("conference room {number}"))),
                (Some(_), false) => format!(
                    "UPDATE conf_rooms SET spec = $3, updated_at = $4
                     WHERE tenant_id = $1 AND number = $2 RETURNING {CONF_COLS}"
                ),
                (None, true) => format!(
                    "INSERT INTO conf_rooms (tenant_id, number, spec, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $4) RETURNING {CONF_COLS}"
                ),
            };
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(number)
                .bind(&doc)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("conference room {number}")))?;
            announce!(tx, kind, Change::Apps);
            conf_from(&r)?
        }))
    }

    /// Removes a room no DID or menu sends callers to.
    pub async fn delete_conf(&self, tenant_id: i64, number: &str) -> Result<()> {
        let target = format!("conf:{number}");
        write_tx!(self.db(), tx, kind => {
            if let Some(why) = referrer!(tx, tenant_id, target, "") {
                return Err(invalid("number", format!("conference room {number} is {why}")));
            }
            let n = sqlx::query("DELETE FROM conf_rooms WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id)
                .bind(number)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("conference room {number}")));
            }
            announce!(tx, kind, Change::Apps);
        });
        Ok(())
    }

    /// A tenant's rooms by number.
    pub async fn list_confs(&self, tenant_id: i64) -> Result<Vec<ConfRoom>> {
        let sql =
            format!("SELECT {CONF_COLS} FROM conf_rooms WHERE tenant_id = $1 ORDER BY number");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(conf_from).collect()
        })
    }

    /// Every tenant's rooms (call control's snapshot).
    pub async fn all_confs(&self) -> Result<Vec<ConfRoom>> {
        let sql = format!("SELECT {CONF_COLS} FROM conf_rooms ORDER BY tenant_id, number");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(conf_from).collect()
        })
    }

    /// Every tenant's menus (call control's snapshot).
    pub async fn all_ivrs(&self) -> Result<Vec<IvrMenu>> {
        let sql = format!("SELECT {IVR_COLS} FROM ivr_menus ORDER BY tenant_id, name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(ivr_from).collect()
        })
    }
}
