//! Trunks, outbound routes, inbound routes (DIDs) and each tenant's outbound policy.
//!
//! Settings are stored as JSON documents of the `engine::outside` types, validated by those
//! types' own checks before every write; references (a route's trunks, a DID's destination
//! and trunk) are checked inside the writing transaction, so a trunk in use cannot be removed
//! and a route cannot name a trunk that is not there.

use chrono::Utc;
use engine::dialplan::Destination;
use engine::outside::{self, FieldError};

use crate::db::{RowGet, conflict, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::{
    DidSpec, Error, InboundRoute, OutboundRoute, Result, RouteSpec, Store, TenantOutbound, Trunk,
    TrunkSpec, TrunkStatusRow,
};

fn invalid(e: FieldError) -> Error {
    Error::Invalid {
        field: e.field,
        reason: e.reason,
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid {
        field: "spec",
        reason: e.to_string(),
    })
}

/// Reads a stored settings document; fields this build does not know are an error a newer
/// node caused, reported rather than silently dropped.
fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Invalid {
        field: "spec",
        reason: format!("stored {what} settings unreadable: {e}"),
    })
}

const TRUNK_COLS: &str = "id, tenant_id, name, spec, password, created_at, updated_at";
const ROUTE_COLS: &str = "id, tenant_id, name, position, spec, created_at, updated_at";
const DID_COLS: &str = "id, tenant_id, pattern, spec, created_at, updated_at";

fn trunk_from(r: &impl RowGet) -> Result<Trunk> {
    Ok(Trunk {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: r.text("name")?,
        spec: from_json("trunk", &r.text("spec")?)?,
        has_password: !r.text("password")?.is_empty(),
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn route_from(r: &impl RowGet) -> Result<OutboundRoute> {
    Ok(OutboundRoute {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: r.text("name")?,
        position: r.i64("position")?,
        spec: from_json("route", &r.text("spec")?)?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn did_from(r: &impl RowGet) -> Result<InboundRoute> {
    Ok(InboundRoute {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        pattern: r.text("pattern")?,
        spec: from_json("inbound route", &r.text("spec")?)?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Everything call control needs about the public network, for every tenant.
#[derive(Debug, Clone, Default)]
pub struct OutsideConfig {
    /// Trunks with their passwords.
    pub trunks: Vec<(Trunk, String)>,
    /// Outbound routes, per tenant in order.
    pub routes: Vec<OutboundRoute>,
    /// Inbound routes.
    pub dids: Vec<InboundRoute>,
    /// Tenant outbound policies (tenant id, policy).
    pub policies: Vec<(i64, TenantOutbound)>,
}

/// Why a destination cannot take calls in a tenant (`None`: it can). `exists` tells whether
/// the object the destination names exists (the extension of `ext:`/`vm:`, the menu of
/// `ivr:`).
pub(crate) fn destination_problem(dest: &Destination, exists: bool) -> Option<String> {
    match dest {
        Destination::Ext(n) if !exists => Some(format!("extension {n} does not exist")),
        Destination::Ext(_) | Destination::Hangup => None,
        Destination::Vm(n) if !exists => Some(format!("extension {n} does not exist")),
        Destination::Vm(_) | Destination::VmMain => None,
        Destination::VmOwn => Some(format!(
            "{dest}: only a phone's own feature code reaches its own box"
        )),
        Destination::Group(n) if !exists => Some(format!("ring group {n} does not exist")),
        Destination::Group(_) => None,
        Destination::Ivr(n) if !exists => Some(format!("IVR menu {n} does not exist")),
        Destination::Ivr(_) => None,
        Destination::Timecond(n) if !exists => Some(format!("time condition {n} does not exist")),
        Destination::Timecond(_) => None,
        Destination::Conf(n) if !exists => Some(format!("conference room {n} does not exist")),
        Destination::Conf(_) => None,
        // A slot may be empty; the caller is then told so.
        Destination::ParkSlot(_) => None,
        Destination::Park | Destination::Route(_) => Some(format!("{dest} is not available here")),
        // Paging is for the tenant's own extensions (its number), not for outside callers.
        Destination::Page(_) => Some(format!("{dest} is reached by its number only")),
    }
}

impl Store {
    // ----- trunks -----

    /// Creates a trunk. The password is kept for digest authentication towards the provider
    /// (it has to be usable, so it is stored as given) and never read back by the API.
    pub async fn create_trunk(
        &self,
        tenant_id: i64,
        name: &str,
        spec: &TrunkSpec,
        password: &str,
    ) -> Result<Trunk> {
        outside::validate_name("name", name).map_err(invalid)?;
        spec.validate().map_err(invalid)?;
        let doc = to_json(spec)?;
        let sql = format!(
            "INSERT INTO trunks (tenant_id, name, spec, password, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {TRUNK_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(&doc)
                .bind(password)
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("trunk {name}")))?;
            announce!(tx, kind, Change::Outside);
            trunk_from(&r)?
        }))
    }

    /// Replaces a trunk's settings; `password: None` keeps the stored one.
    pub async fn update_trunk(
        &self,
        tenant_id: i64,
        name: &str,
        spec: &TrunkSpec,
        password: Option<&str>,
    ) -> Result<Trunk> {
        spec.validate().map_err(invalid)?;
        let doc = to_json(spec)?;
        let sql = format!(
            "UPDATE trunks SET spec = $3, password = COALESCE($4, password), updated_at = $5
             WHERE tenant_id = $1 AND name = $2 RETURNING {TRUNK_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(&doc)
                .bind(password)
                .bind(to_ms(Utc::now()))
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("trunk {name}")))?;
            announce!(tx, kind, Change::Outside);
            trunk_from(&r)?
        }))
    }

    /// Removes a trunk; refused while a route or an inbound route names it.
    pub async fn delete_trunk(&self, tenant_id: i64, name: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let routes = sqlx::query(
                "SELECT name, spec FROM outbound_routes WHERE tenant_id = $1 ORDER BY position",
            )
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?;
            for r in &routes {
                let spec: RouteSpec = from_json("route", &r.text("spec")?)?;
                if spec.trunks.iter().any(|t| t == name) {
                    return Err(Error::Invalid {
                        field: "trunk",
                        reason: format!(
                            "trunk {name} is used by outbound route {}: remove it from the route first",
                            r.text("name")?
                        ),
                    });
                }
            }
            let dids = sqlx::query("SELECT pattern, spec FROM inbound_routes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?;
            for r in &dids {
                let spec: DidSpec = from_json("inbound route", &r.text("spec")?)?;
                if spec.trunk == name {
                    return Err(Error::Invalid {
                        field: "trunk",
                        reason: format!(
                            "trunk {name} is used by inbound route {}",
                            r.text("pattern")?
                        ),
                    });
                }
            }
            let n = sqlx::query("DELETE FROM trunks WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("trunk {name}")));
            }
            announce!(tx, kind, Change::Outside);
        });
        Ok(())
    }

    /// A trunk by name.
    pub async fn trunk(&self, tenant_id: i64, name: &str) -> Result<Option<Trunk>> {
        let sql = format!("SELECT {TRUNK_COLS} FROM trunks WHERE tenant_id = $1 AND name = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(trunk_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// A tenant's trunks by name.
    pub async fn list_trunks(&self, tenant_id: i64) -> Result<Vec<Trunk>> {
        let sql = format!("SELECT {TRUNK_COLS} FROM trunks WHERE tenant_id = $1 ORDER BY name");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(trunk_from).collect()
        })
    }

    /// Records a trunk's live state as `node` sees it.
    pub async fn set_trunk_status(
        &self,
        trunk_id: i64,
        node: &str,
        status: &serde_json::Value,
    ) -> Result<()> {
        let doc = to_json(status)?;
        write_tx!(self.db(), tx, kind => {
            sqlx::query(
                "INSERT INTO trunk_status (trunk_id, node, status, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (trunk_id, node) DO UPDATE SET status = excluded.status,
                     updated_at = excluded.updated_at",
            )
            .bind(trunk_id)
            .bind(node)
            .bind(&doc)
            .bind(to_ms(Utc::now()))
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The live state of a tenant's trunks, as each node last wrote it.
    pub async fn trunk_statuses(&self, tenant_id: i64) -> Result<Vec<TrunkStatusRow>> {
        read_pool!(self.db(), pool, kind => {
            sqlx::query(
                "SELECT s.trunk_id, s.node, s.status, s.updated_at FROM trunk_status s
                 JOIN trunks t ON t.id = s.trunk_id WHERE t.tenant_id = $1 ORDER BY t.name, s.node",
            )
            .bind(tenant_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(TrunkStatusRow {
                    trunk_id: r.i64("trunk_id")?,
                    node: r.text("node")?,
                    status: serde_json::from_str(&r.text("status")?).unwrap_or_default(),
                    updated_at: r.ts("updated_at")?,
                })
            })
            .collect()
        })
    }

    // ----- outbound routes -----

    /// Creates an outbound route at `position` (1 = tried first; `None`: last), moving the
    /// routes at and after it down.
    pub async fn create_route(
        &self,
        tenant_id: i64,
        name: &str,
        spec: &RouteSpec,
        position: Option<i64>,
    ) -> Result<OutboundRoute> {
        outside::validate_name("name", name).map_err(invalid)?;
        let doc = to_json(spec)?;
        let sql = format!(
            "INSERT INTO outbound_routes (tenant_id, name, position, spec, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {ROUTE_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let trunks: Vec<String> = sqlx::query("SELECT name FROM trunks WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.text("name"))
                .collect::<Result<_>>()?;
            spec.validate(|t| trunks.iter().any(|n| n == t)).map_err(invalid)?;
            let count = sqlx::query("SELECT COUNT(*) AS n FROM outbound_routes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
            let pos = position.unwrap_or(count + 1).clamp(1, count + 1);
            sqlx::query(
                "UPDATE outbound_routes SET position = position + 1
                 WHERE tenant_id = $1 AND position >= $2",
            )
            .bind(tenant_id)
            .bind(pos)
            .execute(&mut *tx)
            .await?;
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(pos)
                .bind(&doc)
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("route {name}")))?;
            announce!(tx, kind, Change::Outside);
            route_from(&r)?
        }))
    }

    /// Replaces a route's settings; `position: Some(n)` also moves it.
    pub async fn update_route(
        &self,
        tenant_id: i64,
        name: &str,
        spec: &RouteSpec,
        position: Option<i64>,
    ) -> Result<OutboundRoute> {
        let doc = to_json(spec)?;
        let sql = format!(
            "UPDATE outbound_routes SET spec = $3, position = $4, updated_at = $5
             WHERE tenant_id = $1 AND name = $2 RETURNING {ROUTE_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let trunks: Vec<String> = sqlx::query("SELECT name FROM trunks WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.text("name"))
                .collect::<Result<_>>()?;
            spec.validate(|t| trunks.iter().any(|n| n == t)).map_err(invalid)?;
            let names: Vec<String> = sqlx::query(
                "SELECT name FROM outbound_routes WHERE tenant_id = $1 ORDER BY position, id",
            )
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.text("name"))
            .collect::<Result<_>>()?;
            let Some(old) = names.iter().position(|n| n == name) else {
                return Err(Error::NotFound(format!("route {name}")));
            };
            let mut order = names.clone();
            let moved = order.remove(old);
            let new_pos = position.map_or(old, |p| (p.max(1) - 1) as usize).min(order.len());
            order.insert(new_pos, moved);
            for (i, n) in order.iter().enumerate() {
                sqlx::query(
                    "UPDATE outbound_routes SET position = $3 WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant_id)
                .bind(n)
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
            }
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(&doc)
                .bind(new_pos as i64 + 1)
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await?;
            announce!(tx, kind, Change::Outside);
            route_from(&r)?
        }))
    }

    /// Removes a route (the others close the gap).
    pub async fn delete_route(&self, tenant_id: i64, name: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let pos = sqlx::query("SELECT position FROM outbound_routes WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("route {name}")))?
                .i64("position")?;
            sqlx::query("DELETE FROM outbound_routes WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE outbound_routes SET position = position - 1 WHERE tenant_id = $1 AND position > $2",
            )
            .bind(tenant_id)
            .bind(pos)
            .execute(&mut *tx)
            .await?;
            announce!(tx, kind, Change::Outside);
        });
        Ok(())
    }

    /// A route by name.
    pub async fn route(&self, tenant_id: i64, name: &str) -> Result<Option<OutboundRoute>> {
        let sql =
            format!("SELECT {ROUTE_COLS} FROM outbound_routes WHERE tenant_id = $1 AND name = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(route_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// A tenant's outbound routes in the order they are tried.
    pub async fn list_routes(&self, tenant_id: i64) -> Result<Vec<OutboundRoute>> {
        let sql = format!(
            "SELECT {ROUTE_COLS} FROM outbound_routes WHERE tenant_id = $1 ORDER BY position, id"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(route_from).collect()
        })
    }

    // ----- inbound routes -----

    /// Creates or replaces the inbound route for `pattern` (a DID, a pattern or `any`).
    pub async fn put_did(
        &self,
        tenant_id: i64,
        pattern: &str,
        spec: &DidSpec,
        create_only: bool,
    ) -> Result<InboundRoute> {
        let pattern = pattern.trim().to_string();
        let doc = to_json(spec)?;
        let now = to_ms(Utc::now());
        Ok(write_tx!(self.db(), tx, kind => {
            let dest: Option<Destination> = spec.destination.parse().ok();
            let problem = match &dest {
                Some(d) => {
                    let exists = crate::apps::destination_exists!(tx, tenant_id, d);
                    destination_problem(d, exists)
                }
                None => None,
            };
            let trunk_ok = if spec.trunk.is_empty() {
                true
            } else {
                sqlx::query("SELECT id FROM trunks WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant_id)
                    .bind(&spec.trunk)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some()
            };
            let parsed = spec
                .validate(
                    &pattern,
                    |_| problem.clone().map_or(Ok(()), Err),
                    |_| trunk_ok,
                )
                .map_err(invalid)?;
            let pattern = parsed.to_string();
            let existing = sqlx::query("SELECT id FROM inbound_routes WHERE tenant_id = $1 AND pattern = $2")
                .bind(tenant_id)
                .bind(&pattern)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = match (&existing, create_only) {
                (Some(_), true) => return Err(Error::Conflict(format!("inbound route {pattern}"))),
                (Some(_), false) => format!(
                    "UPDATE inbound_routes SET spec = $3, updated_at = $4
                     WHERE tenant_id = $1 AND pattern = $2 RETURNING {DID_COLS}"
                ),
                (None, _) => format!(
                    "INSERT INTO inbound_routes (tenant_id, pattern, spec, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $4) RETURNING {DID_COLS}"
                ),
            };
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(&pattern)
                .bind(&doc)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("inbound route {pattern}")))?;
            announce!(tx, kind, Change::Outside);
            did_from(&r)?
        }))
    }

    /// Removes an inbound route.
    pub async fn delete_did(&self, tenant_id: i64, pattern: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("DELETE FROM inbound_routes WHERE tenant_id = $1 AND pattern = $2")
                .bind(tenant_id)
                .bind(pattern.trim())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("inbound route {pattern}")));
            }
            announce!(tx, kind, Change::Outside);
        });
        Ok(())
    }

    /// A tenant's inbound routes by pattern.
    pub async fn list_dids(&self, tenant_id: i64) -> Result<Vec<InboundRoute>> {
        let sql =
            format!("SELECT {DID_COLS} FROM inbound_routes WHERE tenant_id = $1 ORDER BY pattern");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(did_from).collect()
        })
    }

    // ----- tenant outbound policy -----

    /// A tenant's outbound policy (defaults where nothing is stored).
    pub async fn tenant_outbound(&self, tenant_id: i64) -> Result<TenantOutbound> {
        read_pool!(self.db(), pool, kind => {
            let r = sqlx::query("SELECT outbound FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| Error::NotFound(format!("tenant {tenant_id}")))?;
            from_json("tenant outbound", &r.text("outbound")?)
        })
    }

    /// Replaces a tenant's outbound policy.
    pub async fn set_tenant_outbound(&self, tenant_id: i64, p: &TenantOutbound) -> Result<()> {
        p.validate().map_err(invalid)?;
        let doc = to_json(p)?;
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("UPDATE tenants SET outbound = $2 WHERE id = $1")
                .bind(tenant_id)
                .bind(&doc)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("tenant {tenant_id}")));
            }
            announce!(tx, kind, Change::Outside);
        });
        Ok(())
    }

    /// Every tenant's trunks (with passwords), routes, DIDs and policies: what call control
    /// loads. A row whose settings this build cannot read is skipped with a warning rather
    /// than keeping the rest of the configuration from loading.
    pub async fn outside_config(&self) -> Result<OutsideConfig> {
        let trunk_sql = format!("SELECT {TRUNK_COLS} FROM trunks ORDER BY tenant_id, name");
        let route_sql =
            format!("SELECT {ROUTE_COLS} FROM outbound_routes ORDER BY tenant_id, position, id");
        let did_sql = format!("SELECT {DID_COLS} FROM inbound_routes ORDER BY tenant_id, id");
        read_pool!(self.db(), pool, kind => {
            let mut out = OutsideConfig::default();
            for r in sqlx::query(&trunk_sql).fetch_all(pool).await? {
                match trunk_from(&r) {
                    Ok(t) => out.trunks.push((t, r.text("password")?)),
                    Err(e) => tracing::warn!(error = %e, "trunk skipped"),
                }
            }
            for r in sqlx::query(&route_sql).fetch_all(pool).await? {
                match route_from(&r) {
                    Ok(x) => out.routes.push(x),
                    Err(e) => tracing::warn!(error = %e, "outbound route skipped"),
                }
            }
            for r in sqlx::query(&did_sql).fetch_all(pool).await? {
                match did_from(&r) {
                    Ok(x) => out.dids.push(x),
                    Err(e) => tracing::warn!(error = %e, "inbound route skipped"),
                }
            }
            for r in sqlx::query("SELECT id, outbound FROM tenants").fetch_all(pool).await? {
                let p: TenantOutbound =
                    from_json("tenant outbound", &r.text("outbound")?).unwrap_or_default();
                out.policies.push((r.i64("id")?, p));
            }
            Ok(out)
        })
    }
}
