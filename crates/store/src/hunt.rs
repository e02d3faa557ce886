//! Ring groups and per-extension forwarding / follow-me / DND (migration `9 ring groups and
//! forwarding`).
//!
//! A group is a row with its settings as a JSON document of `engine::hunt::GroupSpec` and the
//! round-robin memory (`last_member`, written by the engine as calls are hunted, so a restart
//! keeps it). Forwarding is one row per extension (JSON of `engine::hunt::Forwarding`),
//! removed with the extension. Every write announces [`Change::Apps`]: the engine loads groups
//! and forwarding with the voice applications.
//!
//! References are checked inside the writing transaction: members, forwards and no-answer
//! destinations name extensions and groups that exist; a group that a group or a forward names
//! cannot be removed, nor an extension that a no-answer destination or another's forward names
//! (see [`hunt_referrer`]); a member leaves its groups with the extension (`ext_members`).

use chrono::Utc;
use engine::dialplan::Destination;
use engine::hunt::{ForwardKind, Forwarding, GroupSpec, Target};
use serde::Serialize;

use crate::db::{RowGet, conflict, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::numbers::{Kind, number_owner};
use crate::{Error, Result, Store};
use {crate::DidSpec, apps::ivr::MenuSpec};

/// A ring group as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingGroup {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name (`group:NAME`).
    pub name: String,
    /// Internal number that dials the group (empty: only through destinations).
    pub number: String,
    /// Settings.
    #[serde(flatten)]
    pub spec: GroupSpec,
    /// Round-robin memory: the member tried last.
    pub last_member: String,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

const COLS: &str = "id, tenant_id, name, number, spec, last_member, created_at, updated_at";

fn group_from(r: &impl RowGet) -> Result<RingGroup> {
    let spec: GroupSpec = serde_json::from_str(&r.text("spec")?)
        .map_err(|e| invalid("spec", format!("stored ring group unreadable: {e}")))?;
    Ok(RingGroup {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: r.text("name")?,
        number: r.text("number")?,
        spec,
        last_member: r.text("last_member")?,
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

/// What a forward or member text names that must exist: `("ext", number)` for an extension
/// or mailbox named as a destination, `("group", name)`, `("ivr", name)`. Bare numbers need
/// not be extensions (outside numbers are allowed).
fn must_exist(text: &str) -> Option<(&'static str, String)> {
    match Target::from_str_opt(text)? {
        Target::Dest(Destination::Ext(n) | Destination::Vm(n)) => Some(("ext", n)),
        Target::Dest(Destination::Group(g)) => Some(("group", g)),
        Target::Dest(Destination::Ivr(n)) => Some(("ivr", n)),
        _ => None,
    }
}

trait FromStrOpt: Sized {
    fn from_str_opt(s: &str) -> Option<Self>;
}

impl FromStrOpt for Target {
    fn from_str_opt(s: &str) -> Option<Target> {
        s.parse().ok()
    }
}

/// Whether `(kind, name)` exists in the tenant (inside a transaction).
macro_rules! named_exists {
    ($tx:ident, $tenant:expr, $kind:expr, $name:expr) => {{
        let sql = match $kind {
            "ext" => "SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2",
            "group" => "SELECT id FROM ring_groups WHERE tenant_id = $1 AND name = $2",
            _ => "SELECT id FROM ivr_menus WHERE tenant_id = $1 AND name = $2",
        };
        sqlx::query(sql)
            .bind($tenant)
            .bind($name)
            .fetch_optional(&mut *$tx)
            .await?
            .is_some()
    }};
}

/// What in the tenant's ring groups and forwarding names `target` (`ext:1001`, `group:sales`,
/// `ivr:main`), inside a transaction: `Some("a member of ring group sales")`, … The group
/// named `skip_group` (the one being removed) does not count. An extension is named by
/// `ext:N`, `vm:N` or its bare number.
macro_rules! hunt_referrer {
    ($tx:ident, $tenant:expr, $target:expr, $skip_group:expr) => {{
        let target: &str = &$target;
        let bare = target.strip_prefix("ext:").map(str::to_string);
        let names = |t: &str| -> bool {
            t == target
                || bare.as_deref().is_some_and(|n| {
                    t == n || t == format!("vm:{n}") || t == format!("ext:{n}")
                })
        };
        let mut found: Option<String> = None;
        for r in sqlx::query("SELECT name, spec FROM ring_groups WHERE tenant_id = $1 AND name <> $2")
            .bind($tenant)
            .bind($skip_group)
            .fetch_all(&mut *$tx)
            .await?
        {
            let spec: engine::hunt::GroupSpec = match serde_json::from_str(&r.text("spec")?) {
                Ok(s) => s,
                Err(_) => continue,
            };
            let name = r.text("name")?;
            if spec.members.iter().any(|m| names(&m.number)) {
                found = Some(format!("a member of ring group {name}"));
                break;
            }
            if names(&spec.no_answer) {
                found = Some(format!("the no-answer destination of ring group {name}"));
                break;
            }
        }
        if found.is_none() {
            for r in sqlx::query(
                "SELECT e.number, f.spec FROM ext_forwarding f JOIN extensions e ON e.id = f.extension_id
                 WHERE e.tenant_id = $1",
            )
            .bind($tenant)
            .fetch_all(&mut *$tx)
            .await?
            {
                let f: engine::hunt::Forwarding =
                    serde_json::from_str(&r.text("spec")?).unwrap_or_default();
                let owner = r.text("number")?;
                if bare.as_deref() == Some(owner.as_str()) {
                    continue; // its own settings go with it
                }
                if f.names().iter().any(|t| names(t)) {
                    found = Some(format!("named by the forwarding of extension {owner}"));
                    break;
                }
            }
        }
        found
    }};
}
pub(crate) use hunt_referrer;

fn validate_name(name: &str) -> Result<()> {
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

fn validate_group_number(number: &str) -> Result<()> {
    if !number.is_empty()
        && (number.len() > 20 || !number.chars().all(|c| c.is_ascii_digit() || c == '*'))
    {
        return Err(invalid("number", "digits (and *) only, at most 20"));
    }
    Ok(())
}

impl Store {
    /// Creates (`create_only`) or replaces a ring group. Its number must be nobody else's; its
    /// no-answer destination must exist; members that are extensions must exist (other
    /// numbers are outside numbers, rung through the outbound routes).
    pub async fn put_group(
        &self,
        tenant_id: i64,
        name: &str,
        number: &str,
        spec: &GroupSpec,
        create_only: bool,
    ) -> Result<RingGroup> {
        validate_name(name)?;
        validate_group_number(number)?;
        spec.validate().map_err(|e| invalid(e.field, e.reason))?;
        let doc = serde_json::to_string(spec).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            if let Some((k, n)) = must_exist(&spec.no_answer) {
                let self_ref = k == "group" && n == name;
                if !self_ref && !named_exists!(tx, tenant_id, k, &n) {
                    return Err(invalid("no_answer", format!("{}: {k} {n} does not exist", spec.no_answer)));
                }
            }
            if !number.is_empty()
                && let Some(why) = number_owner!(tx, tenant_id, number, Some((Kind::Group, name)))
            {
                return Err(invalid("number", why));
            }
            let existing = sqlx::query("SELECT id FROM ring_groups WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = match (&existing, create_only) {
                (Some(_), true) => return Err(Error::Conflict(format!("ring group {name}"))),
                (None, false) => return Err(Error::NotFound(format!("ring group {name}"))),
                (Some(_), false) => format!(
                    "UPDATE ring_groups SET number = $3, spec = $4, updated_at = $5
                     WHERE tenant_id = $1 AND name = $2 RETURNING {COLS}"
                ),
                (None, true) => format!(
                    "INSERT INTO ring_groups (tenant_id, name, number, spec, last_member, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, '', $5, $5) RETURNING {COLS}"
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
                .map_err(|e| conflict(e, || format!("ring group {name}")))?;
            announce!(tx, kind, Change::Apps);
            group_from(&r)?
        }))
    }

    /// Removes a ring group nothing refers to (routes, IVR options, other groups, forwards).
    pub async fn delete_group(&self, tenant_id: i64, name: &str) -> Result<()> {
        let target = format!("group:{name}");
        write_tx!(self.db(), tx, kind => {
            if let Some(why) = crate::apps::referrer!(tx, tenant_id, target, "") {
                return Err(invalid("name", format!("ring group {name} is {why}")));
            }
            if let Some(why) = hunt_referrer!(tx, tenant_id, target, name) {
                return Err(invalid("name", format!("ring group {name} is {why}")));
            }
            let n = sqlx::query("DELETE FROM ring_groups WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("ring group {name}")));
            }
            announce!(tx, kind, Change::Apps);
        });
        Ok(())
    }

    /// A ring group by name.
    pub async fn group(&self, tenant_id: i64, name: &str) -> Result<Option<RingGroup>> {
        let sql = format!("SELECT {COLS} FROM ring_groups WHERE tenant_id = $1 AND name = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(group_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// A tenant's ring groups by name.
    pub async fn list_groups(&self, tenant_id: i64) -> Result<Vec<RingGroup>> {
        let sql = format!("SELECT {COLS} FROM ring_groups WHERE tenant_id = $1 ORDER BY name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(group_from).collect()
        })
    }

    /// Every tenant's ring groups (for the engine).
    pub async fn all_groups(&self) -> Result<Vec<RingGroup>> {
        let sql = format!("SELECT {COLS} FROM ring_groups ORDER BY tenant_id, name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(group_from).collect()
        })
    }

    /// Round-robin memory: the member group `group_id` tried last. Not announced (the engine
    /// that writes it knows it already; others read it at their next load).
    pub async fn set_group_position(&self, group_id: i64, member: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE ring_groups SET last_member = $2 WHERE id = $1")
                .bind(group_id)
                .bind(member)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The forwarding settings of an extension (defaults: nothing set).
    pub async fn forwarding(&self, tenant_id: i64, number: &str) -> Result<Forwarding> {
        read_pool!(self.db(), pool, kind => {
            let ext = sqlx::query("SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id).bind(number).fetch_optional(pool).await?;
            let Some(ext) = ext else {
                return Err(Error::NotFound(format!("extension {number}")));
            };
            let id = ext.i64("id")?;
            let r = sqlx::query("SELECT spec FROM ext_forwarding WHERE extension_id = $1")
                .bind(id).fetch_optional(pool).await?;
            match r {
                Some(r) => serde_json::from_str(&r.text("spec")?)
                    .map_err(|e| invalid("spec", format!("stored forwarding unreadable: {e}"))),
                None => Ok(Forwarding::default()),
            }
        })
    }

    /// Every extension's forwarding (for the engine): (extension id, settings).
    pub async fn all_forwarding(&self) -> Result<Vec<(i64, Forwarding)>> {
        read_pool!(self.db(), pool, kind => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT extension_id, spec FROM ext_forwarding ORDER BY extension_id")
                .fetch_all(pool)
                .await?
            {
                if let Ok(f) = serde_json::from_str::<Forwarding>(&r.text("spec")?) {
                    out.push((r.i64("extension_id")?, f));
                }
            }
            Ok(out)
        })
    }

    /// Replaces an extension's forwarding, follow-me and DND settings. Destinations that name
    /// extensions, groups or menus must exist; a forward may not name the extension itself.
    pub async fn put_forwarding(
        &self,
        tenant_id: i64,
        number: &str,
        f: &Forwarding,
    ) -> Result<Forwarding> {
        f.validate().map_err(|e| invalid(e.field, e.reason))?;
        for (field, v) in [
            ("always", &f.always),
            ("busy", &f.busy),
            ("no_answer", &f.no_answer),
            ("unreachable", &f.unreachable),
        ] {
            if v == number || *v == format!("ext:{number}") {
                return Err(invalid(
                    field,
                    format!("{v}: an extension cannot forward to itself"),
                ));
            }
        }
        let doc = serde_json::to_string(f).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            let ext = sqlx::query("SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id).bind(number).fetch_optional(&mut *tx).await?;
            let Some(ext) = ext else {
                return Err(Error::NotFound(format!("extension {number}")));
            };
            let id = ext.i64("id")?;
            for (field, v) in [("always", &f.always), ("busy", &f.busy), ("no_answer", &f.no_answer), ("unreachable", &f.unreachable)] {
                if let Some((k, n)) = must_exist(v)
                    && !named_exists!(tx, tenant_id, k, &n)
                {
                    return Err(invalid(field, format!("{v}: {k} {n} does not exist")));
                }
            }
            sqlx::query("DELETE FROM ext_forwarding WHERE extension_id = $1")
                .bind(id).execute(&mut *tx).await?;
            if !f.is_off() || f.no_answer_s != 0 {
                sqlx::query("INSERT INTO ext_forwarding (extension_id, spec, updated_at) VALUES ($1, $2, $3)")
                    .bind(id).bind(&doc).bind(now).execute(&mut *tx).await?;
            }
            announce!(tx, kind, Change::Apps);
        });
        Ok(f.clone())
    }

    /// Sets (`Some(target)`) or clears (`None`) one forward of an extension, keeping the rest
    /// (what the feature codes `*72`/`*73`, `*90`/`*91`, `*92`/`*93` do).
    pub async fn set_forward(
        &self,
        tenant_id: i64,
        number: &str,
        kind: ForwardKind,
        target: Option<&str>,
    ) -> Result<Forwarding> {
        let mut f = self.forwarding(tenant_id, number).await?;
        *f.get_mut(kind) = target.unwrap_or("").trim().to_string();
        self.put_forwarding(tenant_id, number, &f).await
    }

    /// Sets DND on or off, keeping the rest (what `*78`/`*79` do); `None` toggles. Returns the
    /// new state.
    pub async fn set_dnd(&self, tenant_id: i64, number: &str, on: Option<bool>) -> Result<bool> {
        let mut f = self.forwarding(tenant_id, number).await?;
        f.dnd = on.unwrap_or(!f.dnd);
        self.put_forwarding(tenant_id, number, &f).await?;
        Ok(f.dnd)
    }
}
