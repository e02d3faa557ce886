//! Configuration rows: tenants and domains, extensions, administrators, API keys, settings.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use md5::{Digest, Md5};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::db::{Db, RowGet, conflict, read_pool, to_ms, write_tx};
use crate::notify::announce;
use crate::numbers::{Kind, number_owner};
use crate::{
    Admin, AdminLogin, AdminRole, ApiKey, ApiScope, Change, Error, Extension, ExtensionAuth,
    ExtensionUpdate, NewExtension, Page, Result, Store, Tenant,
};

/// Name and realm of the tenant created on first start.
pub const DEFAULT_TENANT: (&str, &str) = ("default", "denwa");

/// Failed logins in a row before an administrator is locked out.
const MAX_FAILED_LOGINS: i64 = 5;
/// How long such a lock lasts.
const LOCK_MINUTES: i64 = 15;

const TENANT_COLS: &str = "id, name, realm, is_default, created_at, language";
const EXT_COLS: &str = "id, tenant_id, number, display_name, ha1_md5, enabled, max_contacts, cos,
    outbound_cid, anonymous, out_limits, created_at, updated_at, language";
const ADMIN_COLS: &str = "id, username, role, failed_logins, locked_until, created_at";
const KEY_COLS: &str = "id, tenant_id, name, prefix, scope, created_at, last_used_at";

/// Checks an extension number: 1 to 32 characters of `0-9`, `*`, `#`, `+`.
pub fn validate_extension_number(number: &str) -> Result<()> {
    let ok_len = (1..=32).contains(&number.len());
    if ok_len
        && number
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+'))
    {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "extension number",
            reason: format!("{number:?}: use 1 to 32 of the characters 0-9 * # +"),
        })
    }
}

/// Checks a prompt language of a tenant or extension: `en`, `ja`, or empty (inherit).
pub fn validate_language(lang: &str) -> Result<()> {
    if lang.is_empty() || engine::settings::PROMPT_LANGUAGES.contains(&lang) {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "language",
            reason: format!(
                "{lang:?}: use one of {} or empty (inherit)",
                engine::settings::PROMPT_LANGUAGES.join(", ")
            ),
        })
    }
}

/// Digest HA1 with MD5: `hex(MD5(user:realm:password))` (RFC 2617).
pub fn ha1_md5(user: &str, realm: &str, password: &str) -> String {
    hex::encode(Md5::digest(format!("{user}:{realm}:{password}").as_bytes()))
}

/// Digest HA1 with SHA-256: `hex(SHA-256(user:realm:password))` (RFC 7616).
pub fn ha1_sha256(user: &str, realm: &str, password: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{user}:{realm}:{password}").as_bytes(),
    ))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn tenant_from(r: &impl RowGet) -> Result<Tenant> {
    Ok(Tenant {
        id: r.i64("id")?,
        name: r.text("name")?,
        realm: r.text("realm")?,
        is_default: r.boolean("is_default")?,
        created_at: r.ts("created_at")?,
        language: r.text("language")?,
    })
}

fn extension_from(r: &impl RowGet) -> Result<Extension> {
    Ok(Extension {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        number: r.text("number")?,
        display_name: r.text("display_name")?,
        has_password: r.opt_text("ha1_md5")?.is_some(),
        enabled: r.boolean("enabled")?,
        max_contacts: r.i64("max_contacts")?,
        // A value this build does not know reads as the most restrictive class.
        cos: r.text("cos")?.parse().unwrap_or(crate::CallClass::Internal),
        outbound_cid: r.text("outbound_cid")?,
        anonymous: r.boolean("anonymous")?,
        limits: serde_json::from_str(&r.text("out_limits")?).unwrap_or_default(),
        language: r.text("language")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn admin_from(r: &impl RowGet) -> Result<Admin> {
    Ok(Admin {
        id: r.i64("id")?,
        username: r.text("username")?,
        role: r.text("role")?.parse()?,
        failed_logins: r.i64("failed_logins")?,
        locked_until: r.opt_ts("locked_until")?,
        created_at: r.ts("created_at")?,
    })
}

fn key_from(r: &impl RowGet) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.i64("id")?,
        tenant_id: r.opt_i64("tenant_id")?,
        name: r.text("name")?,
        prefix: r.text("prefix")?,
        scope: r.text("scope")?.parse()?,
        created_at: r.ts("created_at")?,
        last_used_at: r.opt_ts("last_used_at")?,
    })
}

/// Creates the default tenant unless one exists (first start).
pub(crate) async fn ensure_default_tenant(db: &Db) -> Result<()> {
    // Read first: a read-only database (a cluster's hot standby) already has it, by replication.
    let exists = read_pool!(db, pool, kind => {
        sqlx::query("SELECT 1 FROM tenants WHERE is_default")
            .fetch_optional(pool)
            .await?
            .is_some()
    });
    if exists {
        return Ok(());
    }
    write_tx!(db, tx, kind => {
        // DO NOTHING: another process may have created it a moment ago.
        let done = sqlx::query(
            "INSERT INTO tenants (name, realm, is_default, created_at) VALUES ($1, $2, TRUE, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(DEFAULT_TENANT.0)
        .bind(DEFAULT_TENANT.1)
        .bind(to_ms(Utc::now()))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            announce!(tx, kind, Change::Tenants);
        }
    });
    Ok(())
}

/// An Argon2 hash verified for unknown user names (see `verify_admin`).
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

pub(crate) async fn hash_password(password: &str) -> Result<String> {
    let pw = password.to_string();
    let salt_bytes: [u8; 16] = rand::random();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Hash(e.to_string()))?;
        argon2::Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Hash(e.to_string()))
    })
    .await
    .map_err(|e| Error::Hash(e.to_string()))?
}

pub(crate) async fn verify_password(password: &str, phc: &str) -> Result<bool> {
    let pw = password.to_string();
    let phc = phc.to_string();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| Error::Hash(e.to_string()))?;
        Ok(argon2::Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Hash(e.to_string()))?
}

fn like_pattern(term: &str) -> String {
    let mut p = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    // ----- tenants and domains -----

    /// The tenant created on first start.
    pub async fn default_tenant(&self) -> Result<Tenant> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE is_default");
        let row = read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).fetch_optional(pool).await? {
                Some(r) => Some(tenant_from(&r)?),
                None => None,
            }
        });
        row.ok_or_else(|| Error::NotFound("default tenant".into()))
    }

    /// A tenant by id.
    pub async fn tenant(&self, id: i64) -> Result<Option<Tenant>> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
        Ok(read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(tenant_from(&r)?),
                None => None,
            }
        }))
    }

    /// All tenants, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants ORDER BY id");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(tenant_from).collect()
        })
    }

    /// Creates a tenant with the given digest realm.
    pub async fn create_tenant(&self, name: &str, realm: &str) -> Result<Tenant> {
        self.create_tenant_capped(name, realm, None).await
    }

    /// [`Store::create_tenant`] refused with [`Error::Limit`] when `cap` tenants already exist
    /// (`None`: no cap); the count and the insert are one serialised step (`limits`).
    pub async fn create_tenant_capped(
        &self,
        name: &str,
        realm: &str,
        cap: Option<u64>,
    ) -> Result<Tenant> {
        if name.is_empty() || realm.is_empty() {
            return Err(Error::Invalid {
                field: "tenant",
                reason: "name and realm must not be empty".into(),
            });
        }
        let sql = format!(
            "INSERT INTO tenants (name, realm, is_default, created_at) VALUES ($1, $2, FALSE, $3)
             RETURNING {TENANT_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            crate::limits::cap_check!(tx, kind, cap, crate::limits::LOCK_TENANTS, "tenants", "tenants");
            let r = sqlx::query(&sql)
                .bind(name)
                .bind(realm)
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("tenant {name:?}")))?;
            announce!(tx, kind, Change::Tenants);
            tenant_from(&r)?
        }))
    }

    /// Sets a tenant's default prompt language (`en`, `ja`; empty: the node's
    /// `prompts.language`).
    pub async fn set_tenant_language(&self, tenant_id: i64, lang: &str) -> Result<Tenant> {
        validate_language(lang)?;
        let sql = format!("UPDATE tenants SET language = $2 WHERE id = $1 RETURNING {TENANT_COLS}");
        Ok(write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(lang)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("tenant {tenant_id}")))?;
            announce!(tx, kind, Change::Tenants);
            tenant_from(&r)?
        }))
    }

    /// Makes a SIP domain (case-insensitive) identify a tenant.
    pub async fn add_domain(&self, tenant_id: i64, domain: &str) -> Result<()> {
        let d = domain.trim().to_ascii_lowercase();
        if d.is_empty() {
            return Err(Error::Invalid {
                field: "domain",
                reason: "empty".into(),
            });
        }
        write_tx!(self.db(), tx, kind => {
            sqlx::query("INSERT INTO domains (domain, tenant_id) VALUES ($1, $2)")
                .bind(&d)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("domain {d:?}")))?;
            announce!(tx, kind, Change::Tenants);
        });
        Ok(())
    }

    /// Removes a domain; false if it did not exist.
    pub async fn remove_domain(&self, domain: &str) -> Result<bool> {
        let d = domain.trim().to_ascii_lowercase();
        Ok(write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("DELETE FROM domains WHERE domain = $1")
                .bind(&d)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                announce!(tx, kind, Change::Tenants);
            }
            n > 0
        }))
    }

    /// The domains of a tenant, sorted.
    pub async fn domains(&self, tenant_id: i64) -> Result<Vec<String>> {
        read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT domain FROM domains WHERE tenant_id = $1 ORDER BY domain")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.text("domain"))
                .collect()
        })
    }

    /// The tenant a SIP domain belongs to. An unknown domain maps to the only tenant when there is
    /// exactly one (a single-company install works with the server's IP or any name), else `None`.
    pub async fn tenant_for_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        let d = domain.trim().to_ascii_lowercase();
        let sql = format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE id = (SELECT tenant_id FROM domains WHERE domain = $1)"
        );
        let all = format!("SELECT {TENANT_COLS} FROM tenants ORDER BY id LIMIT 2");
        read_pool!(self.db(), pool, kind => {
            if let Some(r) = sqlx::query(&sql).bind(&d).fetch_optional(pool).await? {
                return Ok(Some(tenant_from(&r)?));
            }
            let rows = sqlx::query(&all).fetch_all(pool).await?;
            if rows.len() == 1 {
                Ok(Some(tenant_from(&rows[0])?))
            } else {
                Ok(None)
            }
        })
    }

    // ----- extensions -----

    /// Creates an extension; the password (if any) is stored only as HA1 digests.
    pub async fn create_extension(&self, tenant_id: i64, new: NewExtension) -> Result<Extension> {
        self.create_extension_capped(tenant_id, new, None).await
    }

    /// [`Store::create_extension`] refused with [`Error::Limit`] when `cap` extensions (all
    /// tenants) already exist (`None`: no cap); the count and the insert are one serialised
    /// step (`limits`), so concurrent creates at the limit cannot pass it.
    pub async fn create_extension_capped(
        &self,
        tenant_id: i64,
        new: NewExtension,
        cap: Option<u64>,
    ) -> Result<Extension> {
        validate_extension_number(&new.number)?;
        let max_contacts = new.max_contacts.unwrap_or(3);
        if max_contacts < 1 {
            return Err(Error::Invalid {
                field: "max_contacts",
                reason: "must be at least 1".into(),
            });
        }
        let sql = format!(
            "INSERT INTO extensions (tenant_id, number, display_name, ha1_md5, ha1_sha256, enabled,
                                     max_contacts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {EXT_COLS}"
        );
        let number = new.number.clone();
        Ok(write_tx!(self.db(), tx, kind => {
            crate::limits::cap_check!(tx, kind, cap, crate::limits::LOCK_EXTENSIONS, "extensions", "extensions");
            let realm: Option<String> = match sqlx::query("SELECT realm FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(r) => Some(r.text("realm")?),
                None => None,
            };
            let realm = realm.ok_or_else(|| Error::NotFound(format!("tenant {tenant_id}")))?;
            // An extension of the same number is left to the unique key (a conflict).
            if let Some(why) = number_owner!(tx, tenant_id, &number, Some((Kind::Extension, number.as_str()))) {
                return Err(Error::Invalid { field: "number", reason: why });
            }
            let (md5, sha) = match &new.password {
                Some(p) => (
                    Some(ha1_md5(&number, &realm, p)),
                    Some(ha1_sha256(&number, &realm, p)),
                ),
                None => (None, None),
            };
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(&number)
                .bind(&new.display_name)
                .bind(md5)
                .bind(sha)
                .bind(new.enabled.unwrap_or(true))
                .bind(max_contacts)
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("extension {number}")))?;
            announce!(tx, kind, Change::Extensions);
            extension_from(&r)?
        }))
    }

    /// An extension by number.
    pub async fn extension(&self, tenant_id: i64, number: &str) -> Result<Option<Extension>> {
        let sql = format!("SELECT {EXT_COLS} FROM extensions WHERE tenant_id = $1 AND number = $2");
        Ok(read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(number).fetch_optional(pool).await? {
                Some(r) => Some(extension_from(&r)?),
                None => None,
            }
        }))
    }

    /// An extension by row id.
    pub async fn extension_by_id(&self, id: i64) -> Result<Option<Extension>> {
        let sql = format!("SELECT {EXT_COLS} FROM extensions WHERE id = $1");
        Ok(read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(extension_from(&r)?),
                None => None,
            }
        }))
    }

    /// Extensions of a tenant by number; `search` matches number or name, case-insensitively.
    pub async fn list_extensions(
        &self,
        tenant_id: i64,
        search: Option<&str>,
        page: Page,
    ) -> Result<Vec<Extension>> {
        let (limit, offset) = page.clamped();
        let filter = search.filter(|s| !s.is_empty()).map(like_pattern);
        let sql = format!(
            "SELECT {EXT_COLS} FROM extensions WHERE tenant_id = $1 {} ORDER BY number LIMIT $2 OFFSET $3",
            if filter.is_some() {
                "AND (LOWER(number) LIKE $4 ESCAPE '\\' OR LOWER(display_name) LIKE $4 ESCAPE '\\')"
            } else {
                ""
            }
        );
        read_pool!(self.db(), pool, kind => {
            let mut q = sqlx::query(&sql).bind(tenant_id).bind(limit).bind(offset);
            if let Some(f) = &filter {
                q = q.bind(f.clone());
            }
            q.fetch_all(pool).await?.iter().map(extension_from).collect()
        })
    }

    /// How many extensions [`Store::list_extensions`] would page through.
    pub async fn count_extensions(&self, tenant_id: i64, search: Option<&str>) -> Result<i64> {
        let filter = search.filter(|s| !s.is_empty()).map(like_pattern);
        let sql = format!(
            "SELECT COUNT(*) AS n FROM extensions WHERE tenant_id = $1 {}",
            if filter.is_some() {
                "AND (LOWER(number) LIKE $2 ESCAPE '\\' OR LOWER(display_name) LIKE $2 ESCAPE '\\')"
            } else {
                ""
            }
        );
        read_pool!(self.db(), pool, kind => {
            let mut q = sqlx::query(&sql).bind(tenant_id);
            if let Some(f) = &filter {
                q = q.bind(f.clone());
            }
            q.fetch_one(pool).await?.i64("n")
        })
    }

    /// Changes the given fields of an extension.
    pub async fn update_extension(
        &self,
        tenant_id: i64,
        number: &str,
        upd: ExtensionUpdate,
    ) -> Result<Extension> {
        if upd.max_contacts.is_some_and(|m| m < 1) {
            return Err(Error::Invalid {
                field: "max_contacts",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(cid) = &upd.outbound_cid {
            engine::outside::validate_number("outbound_cid", cid, true).map_err(|e| {
                Error::Invalid {
                    field: e.field,
                    reason: e.reason,
                }
            })?;
        }
        if let Some(l) = &upd.language {
            validate_language(l)?;
        }
        let limits = match &upd.limits {
            Some(l) => Some(serde_json::to_string(l).map_err(|e| Error::Invalid {
                field: "limits",
                reason: e.to_string(),
            })?),
            None => None,
        };
        let sql = format!(
            "UPDATE extensions SET display_name = COALESCE($3, display_name),
                 enabled = COALESCE($4, enabled), max_contacts = COALESCE($5, max_contacts),
                 updated_at = $6, cos = COALESCE($7, cos),
                 outbound_cid = COALESCE($8, outbound_cid), anonymous = COALESCE($9, anonymous),
                 out_limits = COALESCE($10, out_limits), language = COALESCE($11, language)
             WHERE tenant_id = $1 AND number = $2 RETURNING {EXT_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(number)
                .bind(upd.display_name.clone())
                .bind(upd.enabled)
                .bind(upd.max_contacts)
                .bind(to_ms(Utc::now()))
                .bind(upd.cos.map(|c| c.as_str()))
                .bind(upd.outbound_cid.clone())
                .bind(upd.anonymous)
                .bind(limits.clone())
                .bind(upd.language.clone())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("extension {number}")))?;
            announce!(tx, kind, Change::Extensions);
            extension_from(&r)?
        }))
    }

    /// Sets the password: stores HA1 (MD5 and SHA-256) for the tenant's realm, never the text.
    pub async fn set_extension_password(
        &self,
        tenant_id: i64,
        number: &str,
        password: &str,
    ) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let realm = match sqlx::query("SELECT realm FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(r) => r.text("realm")?,
                None => return Err(Error::NotFound(format!("tenant {tenant_id}"))),
            };
            let n = sqlx::query(
                "UPDATE extensions SET ha1_md5 = $3, ha1_sha256 = $4, updated_at = $5
                 WHERE tenant_id = $1 AND number = $2",
            )
            .bind(tenant_id)
            .bind(number)
            .bind(ha1_md5(number, &realm, password))
            .bind(ha1_sha256(number, &realm, password))
            .bind(to_ms(Utc::now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("extension {number}")));
            }
            announce!(tx, kind, Change::Extensions);
        });
        Ok(())
    }

    /// Deletes an extension (its registrations go with it). It leaves the ring, page and
    /// pickup groups that list it in the same transaction; refused, naming the first one, when
    /// it is the last member of a group or something routes callers to it (`ext_members`).
    pub async fn delete_extension(&self, tenant_id: i64, number: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let refuse = |why: String| Error::Invalid { field: "number", reason: format!("extension {number} is {why}") };
            // Memberships first, so that what remains for `hunt_referrer!` is references.
            let (refused, grouped) = crate::ext_members::leave_ring_groups!(tx, tenant_id, number);
            if let Some(why) = refused {
                return Err(refuse(why));
            }
            if let Some(why) = crate::hunt::hunt_referrer!(tx, tenant_id, format!("ext:{number}"), "") {
                return Err(refuse(why));
            }
            if let Some(why) = crate::ext_members::ext_referrer!(tx, tenant_id, number) {
                return Err(refuse(why));
            }
            let (refused, paged) = crate::ext_members::leave_page_groups!(tx, tenant_id, number);
            if let Some(why) = refused {
                return Err(refuse(why));
            }
            if paged || grouped {
                announce!(tx, kind, Change::Apps);
            }
            let n = sqlx::query("DELETE FROM extensions WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id)
                .bind(number)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("extension {number}")));
            }
            announce!(tx, kind, Change::Extensions);
        });
        Ok(())
    }

    /// What digest authentication needs; `None` for an unknown extension.
    pub async fn extension_auth(
        &self,
        tenant_id: i64,
        number: &str,
    ) -> Result<Option<ExtensionAuth>> {
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(
                "SELECT id, ha1_md5, ha1_sha256, enabled FROM extensions
                 WHERE tenant_id = $1 AND number = $2",
            )
            .bind(tenant_id)
            .bind(number)
            .fetch_optional(pool)
            .await?
            {
                Some(r) => Ok(Some(ExtensionAuth {
                    extension_id: r.i64("id")?,
                    ha1_md5: r.opt_text("ha1_md5")?,
                    ha1_sha256: r.opt_text("ha1_sha256")?,
                    enabled: r.boolean("enabled")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Extensions of every tenant with their digest credentials, in (tenant, number) order,
    /// starting after `after` (`None`: from the first), at most `limit` of them: what the call
    /// core loads into its cache, a page per round trip. Keyset paging (not OFFSET) keeps each
    /// page as cheap as the first, and pages (not one result set) keep the load's peak memory
    /// small however many extensions there are.
    pub async fn extensions_with_auth_after(
        &self,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<(Extension, ExtensionAuth)>> {
        let (tenant, number) = after.unwrap_or((i64::MIN, ""));
        let sql = format!(
            "SELECT {EXT_COLS}, ha1_sha256 FROM extensions
             WHERE tenant_id > $1 OR (tenant_id = $1 AND number > $2)
             ORDER BY tenant_id, number LIMIT $3"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql)
                .bind(tenant)
                .bind(number)
                .bind(limit.max(1))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    let e = extension_from(r)?;
                    let auth = ExtensionAuth {
                        extension_id: e.id,
                        ha1_md5: r.opt_text("ha1_md5")?,
                        ha1_sha256: r.opt_text("ha1_sha256")?,
                        enabled: e.enabled,
                    };
                    Ok((e, auth))
                })
                .collect()
        })
    }

    // ----- administrators -----

    /// Creates an administrator; the password is hashed with Argon2id.
    pub async fn create_admin(
        &self,
        username: &str,
        password: &str,
        role: AdminRole,
    ) -> Result<Admin> {
        if username.trim().is_empty() || password.is_empty() {
            return Err(Error::Invalid {
                field: "administrator",
                reason: "user name and password must not be empty".into(),
            });
        }
        let hash = hash_password(password).await?;
        let sql = format!(
            "INSERT INTO administrators (username, password_hash, role, failed_logins, created_at)
             VALUES ($1, $2, $3, 0, $4) RETURNING {ADMIN_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(&sql)
                .bind(username)
                .bind(&hash)
                .bind(role.as_str())
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("administrator {username:?}")))?;
            announce!(tx, kind, Change::Admins);
            admin_from(&r)?
        }))
    }

    /// An administrator by user name.
    pub async fn admin(&self, username: &str) -> Result<Option<Admin>> {
        let sql = format!("SELECT {ADMIN_COLS} FROM administrators WHERE username = $1");
        Ok(read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(username).fetch_optional(pool).await? {
                Some(r) => Some(admin_from(&r)?),
                None => None,
            }
        }))
    }

    /// All administrators by user name.
    pub async fn list_admins(&self) -> Result<Vec<Admin>> {
        let sql = format!("SELECT {ADMIN_COLS} FROM administrators ORDER BY username");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(admin_from).collect()
        })
    }

    /// Replaces an administrator's password and clears any lockout.
    pub async fn set_admin_password(&self, username: &str, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(Error::Invalid {
                field: "password",
                reason: "empty".into(),
            });
        }
        let hash = hash_password(password).await?;
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query(
                "UPDATE administrators SET password_hash = $2, failed_logins = 0, locked_until = NULL
                 WHERE username = $1",
            )
            .bind(username)
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("administrator {username:?}")));
            }
            announce!(tx, kind, Change::Admins);
        });
        Ok(())
    }

    /// Deletes an administrator.
    pub async fn delete_admin(&self, username: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("DELETE FROM administrators WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("administrator {username:?}")));
            }
            announce!(tx, kind, Change::Admins);
        });
        Ok(())
    }

    /// Checks a login. Five failures in a row lock the account for 15 minutes.
    pub async fn verify_admin(
        &self,
        username: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<AdminLogin> {
        let sql =
            format!("SELECT {ADMIN_COLS}, password_hash FROM administrators WHERE username = $1");
        let found = read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(username).fetch_optional(pool).await? {
                Some(r) => Some((admin_from(&r)?, r.text("password_hash")?)),
                None => None,
            }
        });
        let Some((admin, phc)) = found else {
            // Spend the same time as for a real account, so response times do not tell which
            // user names exist.
            let dummy = DUMMY_HASH
                .get_or_try_init(|| hash_password("denwa-no-such-user"))
                .await?;
            let _ = verify_password(password, dummy).await?;
            return Ok(AdminLogin::BadCredentials);
        };
        if let Some(until) = admin.locked_until.filter(|u| *u > now) {
            return Ok(AdminLogin::Locked(until));
        }
        let ok = verify_password(password, &phc).await?;
        let reset = format!(
            "UPDATE administrators SET failed_logins = 0, locked_until = NULL WHERE id = $1
             RETURNING {ADMIN_COLS}"
        );
        write_tx!(self.db(), tx, kind => {
            if ok {
                return match sqlx::query(&reset).bind(admin.id).fetch_optional(&mut *tx).await? {
                    Some(r) => {
                        let a = admin_from(&r)?;
                        tx.commit().await?;
                        Ok(AdminLogin::Ok(a))
                    }
                    // Deleted meanwhile.
                    None => Ok(AdminLogin::BadCredentials),
                };
            }
            // Counted in the database with one atomic increment, so that parallel guesses
            // (from several nodes, say) all add up.
            let failed = match sqlx::query(
                "UPDATE administrators SET failed_logins = failed_logins + 1 WHERE id = $1
                 RETURNING failed_logins",
            )
            .bind(admin.id)
            .fetch_optional(&mut *tx)
            .await?
            {
                Some(r) => r.i64("failed_logins")?,
                None => return Ok(AdminLogin::BadCredentials),
            };
            if failed >= MAX_FAILED_LOGINS {
                let until = now + Duration::minutes(LOCK_MINUTES);
                sqlx::query(
                    "UPDATE administrators SET failed_logins = 0, locked_until = $2 WHERE id = $1",
                )
                .bind(admin.id)
                .bind(to_ms(until))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(AdminLogin::Locked(until));
            }
        });
        Ok(AdminLogin::BadCredentials)
    }

    // ----- API keys -----

    /// Creates an API key; returns it with the token, which is shown once and stored only hashed.
    pub async fn create_api_key(
        &self,
        tenant_id: Option<i64>,
        name: &str,
        scope: ApiScope,
    ) -> Result<(ApiKey, String)> {
        let token = format!("dnw_{}", hex::encode(rand::random::<[u8; 20]>()));
        let prefix = token[..12].to_string();
        let sql = format!(
            "INSERT INTO api_keys (tenant_id, name, prefix, token_hash, scope, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLS}"
        );
        let key = write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .bind(&prefix)
                .bind(sha256_hex(&token))
                .bind(scope.as_str())
                .bind(to_ms(Utc::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict(e, || "API key".into()))?;
            announce!(tx, kind, Change::ApiKeys);
            key_from(&r)?
        });
        Ok((key, token))
    }

    /// API keys, all or of one tenant.
    pub async fn list_api_keys(&self, tenant_id: Option<i64>) -> Result<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM api_keys {} ORDER BY id",
            if tenant_id.is_some() {
                "WHERE tenant_id = $1"
            } else {
                ""
            }
        );
        read_pool!(self.db(), pool, kind => {
            let mut q = sqlx::query(&sql);
            if let Some(t) = tenant_id {
                q = q.bind(t);
            }
            q.fetch_all(pool).await?.iter().map(key_from).collect()
        })
    }

    /// Revokes an API key.
    pub async fn delete_api_key(&self, id: i64) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::NotFound(format!("API key {id}")));
            }
            announce!(tx, kind, Change::ApiKeys);
        });
        Ok(())
    }

    /// The key a bearer token belongs to (recording its use), or `None`.
    pub async fn verify_api_key(&self, token: &str, now: DateTime<Utc>) -> Result<Option<ApiKey>> {
        let hash = sha256_hex(token);
        let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE token_hash = $1");
        let found = read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(&hash).fetch_optional(pool).await? {
                Some(r) => Some(key_from(&r)?),
                None => None,
            }
        });
        let Some(mut key) = found else {
            return Ok(None);
        };
        // Record use at most once a minute: a busy API client must not turn every read into
        // a database write.
        if key
            .last_used_at
            .is_none_or(|t| now - t > Duration::seconds(60))
        {
            // Best effort: a read-only database (a cluster's standby) still verifies keys.
            let recorded: Result<()> = async {
                write_tx!(self.db(), tx, kind => {
                    sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                        .bind(key.id)
                        .bind(to_ms(now))
                        .execute(&mut *tx)
                        .await?;
                });
                Ok(())
            }
            .await;
            match recorded {
                Ok(()) => key.last_used_at = Some(now),
                Err(e) => tracing::debug!(error = %e, "API key use not recorded"),
            }
        }
        Ok(Some(key))
    }

    // ----- settings -----

    /// A setting as JSON; `tenant_id` `None` is the node-global scope.
    pub async fn setting_json(
        &self,
        tenant_id: Option<i64>,
        key: &str,
    ) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = read_pool!(self.db(), pool, kind => {
            match sqlx::query("SELECT value FROM settings WHERE COALESCE(tenant_id, 0) = $1 AND key = $2")
                .bind(tenant_id.unwrap_or(0))
                .bind(key)
                .fetch_optional(pool)
                .await?
            {
                Some(r) => Some(r.text("value")?),
                None => None,
            }
        });
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| Error::Invalid {
                field: "setting",
                reason: format!("{key}: stored value is not JSON: {e}"),
            })
        })
        .transpose()
    }

    /// A setting decoded into `T`.
    pub async fn setting<T: DeserializeOwned>(
        &self,
        tenant_id: Option<i64>,
        key: &str,
    ) -> Result<Option<T>> {
        self.setting_json(tenant_id, key)
            .await?
            .map(|v| {
                serde_json::from_value(v).map_err(|e| Error::Invalid {
                    field: "setting",
                    reason: format!("{key}: {e}"),
                })
            })
            .transpose()
    }

    /// Stores a setting (insert or replace).
    pub async fn set_setting<T: Serialize>(
        &self,
        tenant_id: Option<i64>,
        key: &str,
        value: &T,
    ) -> Result<()> {
        if key.is_empty() {
            return Err(Error::Invalid {
                field: "setting",
                reason: "empty key".into(),
            });
        }
        let text = serde_json::to_string(value).map_err(|e| Error::Invalid {
            field: "setting",
            reason: format!("{key}: {e}"),
        })?;
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query(
                "UPDATE settings SET value = $3, updated_at = $4
                 WHERE COALESCE(tenant_id, 0) = $1 AND key = $2",
            )
            .bind(tenant_id.unwrap_or(0))
            .bind(key)
            .bind(&text)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                sqlx::query("INSERT INTO settings (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4)")
                    .bind(tenant_id)
                    .bind(key)
                    .bind(&text)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict(e, || format!("setting {key}")))?;
            }
            announce!(tx, kind, Change::Settings);
        });
        Ok(())
    }

    /// Removes a setting; false if it was not set.
    pub async fn delete_setting(&self, tenant_id: Option<i64>, key: &str) -> Result<bool> {
        Ok(write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("DELETE FROM settings WHERE COALESCE(tenant_id, 0) = $1 AND key = $2")
                .bind(tenant_id.unwrap_or(0))
                .bind(key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                announce!(tx, kind, Change::Settings);
            }
            n > 0
        }))
    }

    /// All settings of one scope, by key.
    pub async fn list_settings(
        &self,
        tenant_id: Option<i64>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let rows: Vec<(String, String)> = read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT key, value FROM settings WHERE COALESCE(tenant_id, 0) = $1 ORDER BY key")
                .bind(tenant_id.unwrap_or(0))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.text("key")?, r.text("value")?)))
                .collect::<Result<_>>()?
        });
        rows.into_iter()
            .map(|(k, v)| {
                let val = serde_json::from_str(&v).map_err(|e| Error::Invalid {
                    field: "setting",
                    reason: format!("{k}: stored value is not JSON: {e}"),
                })?;
                Ok((k, val))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_numbers() {
        for ok in ["1001", "*97", "#1", "+81312345678", "0"] {
            assert!(validate_extension_number(ok).is_ok(), "{ok}");
        }
        for bad in ["", "10a1", "1001 ", "sip:1001", &"1".repeat(33)] {
            assert!(validate_extension_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ha1_known_values() {
        // RFC 2617 §3.5 example: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
        // RFC 7616 §3.9.1: SHA-256 of the same triple with realm http-auth@example.org.
        assert_eq!(
            ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    #[test]
    fn like_escapes() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
