//! Named custom prompts (migration 19 `custom prompts`): one row per tenant, name and language
//! variant (`any`, `en`, `ja`) with where the audio came from. The audio itself is a file
//! (`apps::custom_prompt`); the callers write the file first and the row after, and remove
//! the row before the file.
//!
//! A prompt an IVR menu plays (its `greeting`, or any `*_prompt` member of its settings) cannot
//! be deleted or renamed: the refusal names the menus ([`IN_USE`]).

use apps::custom_prompt::{MAX_PER_TENANT, check_name};
use chrono::Utc;
use serde::Serialize;

use crate::db::{RowGet, read_pool, to_ms, write_tx};
use crate::{Error, Result, Store};

/// The `field` of the [`Error::Invalid`] that refuses deleting or renaming a prompt an IVR
/// menu plays (the API answers 409 for it).
pub const IN_USE: &str = "in_use";

/// One language variant of a custom prompt as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomPromptRow {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name (what an IVR's greeting names).
    pub name: String,
    /// `any`, `en` or `ja`.
    pub lang: String,
    /// Free text.
    pub description: String,
    /// `uploaded` or `recorded`.
    pub source: String,
    /// File name given by the uploader.
    pub original_name: String,
    /// Format uploaded (`WAV`, `MP3`, …) or `recording`.
    pub original_format: String,
    /// The extension that recorded it by phone, if it was.
    pub recorded_by: String,
    /// Length, milliseconds.
    pub duration_ms: i64,
    /// SHA-256 of the stored WAV.
    pub sha256: String,
    /// First stored.
    pub created_at: chrono::DateTime<Utc>,
    /// Last replaced or edited.
    pub updated_at: chrono::DateTime<Utc>,
}

/// What [`Store::put_custom_prompt`] stores.
#[derive(Debug, Clone, Default)]
pub struct NewCustomPrompt {
    /// Name.
    pub name: String,
    /// `any`, `en` or `ja`.
    pub lang: String,
    /// Free text (`None` keeps the stored one, empty for a new prompt).
    pub description: Option<String>,
    /// `uploaded` or `recorded`.
    pub source: String,
    /// File name given by the uploader.
    pub original_name: String,
    /// Format uploaded.
    pub original_format: String,
    /// The extension that recorded it.
    pub recorded_by: String,
    /// Length, milliseconds.
    pub duration_ms: i64,
    /// SHA-256 of the stored WAV.
    pub sha256: String,
}

const COLS: &str = "id, tenant_id, name, lang, description, source, original_name, \
     original_format, recorded_by, duration_ms, sha256, created_at, updated_at";

fn row_from(r: &impl RowGet) -> Result<CustomPromptRow> {
    Ok(CustomPromptRow {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        name: r.text("name")?,
        lang: r.text("lang")?,
        description: r.text("description")?,
        source: r.text("source")?,
        original_name: r.text("original_name")?,
        original_format: r.text("original_format")?,
        recorded_by: r.text("recorded_by")?,
        duration_ms: r.i64("duration_ms")?,
        sha256: r.text("sha256")?,
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

fn name_ok(name: &str) -> Result<()> {
    check_name(name).map_err(|e| invalid("name", e.to_string()))
}

fn check_lang(lang: &str) -> Result<()> {
    if matches!(lang, "any" | "en" | "ja") {
        Ok(())
    } else {
        Err(invalid("lang", "any, en or ja"))
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// True when an IVR menu's settings document plays custom prompt `name`: its `greeting`, or
/// any top-level string member ending in `_prompt`.
pub(crate) fn menu_plays(spec: &str, name: &str) -> bool {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(spec) else {
        return false;
    };
    m.iter().any(|(k, v)| {
        (k == "greeting" || k.ends_with("_prompt")) && v.as_str().is_some_and(|s| s == name)
    })
}

/// The names of `$tenant`'s IVR menus that play `$name` (inside a transaction; `?` on errors).
macro_rules! menus_playing {
    ($tx:ident, $tenant:expr, $name:expr) => {{
        let rows =
            sqlx::query("SELECT name, spec FROM ivr_menus WHERE tenant_id = $1 ORDER BY name")
                .bind($tenant)
                .fetch_all(&mut *$tx)
                .await?;
        let mut users = Vec::new();
        for r in &rows {
            if menu_plays(&r.text("spec")?, $name) {
                users.push(r.text("name")?);
            }
        }
        users
    }};
}

fn in_use(name: &str, menus: &[String], doing: &str) -> Error {
    let list = menus
        .iter()
        .map(|m| format!("ivr:{m}"))
        .collect::<Vec<_>>()
        .join(", ");
    invalid(
        IN_USE,
        format!(
            "custom prompt {name} is played by IVR menu {list}: choose another prompt there before {doing} it"
        ),
    )
}

impl Store {
    /// Stores (or replaces) one language variant of a custom prompt. A new name is refused
    /// when the tenant already has [`MAX_PER_TENANT`] names.
    pub async fn put_custom_prompt(
        &self,
        tenant_id: i64,
        p: &NewCustomPrompt,
    ) -> Result<CustomPromptRow> {
        name_ok(&p.name)?;
        check_lang(&p.lang)?;
        if !matches!(p.source.as_str(), "uploaded" | "recorded") {
            return Err(invalid("source", "uploaded or recorded"));
        }
        let desc = p.description.as_deref().map(|d| clip(d, 200));
        let now = to_ms(Utc::now());
        let sql_update = format!(
            "UPDATE custom_prompts SET description = COALESCE($4, description), source = $5,
             original_name = $6, original_format = $7, recorded_by = $8, duration_ms = $9,
             sha256 = $10, updated_at = $11
             WHERE tenant_id = $1 AND name = $2 AND lang = $3 RETURNING {COLS}"
        );
        let sql_insert = format!(
            "INSERT INTO custom_prompts (tenant_id, name, lang, description, source,
             original_name, original_format, recorded_by, duration_ms, sha256, created_at,
             updated_at)
             VALUES ($1, $2, $3, COALESCE($4, ''), $5, $6, $7, $8, $9, $10, $11, $11)
             RETURNING {COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let exists = sqlx::query(
                "SELECT COUNT(*) AS n FROM custom_prompts WHERE tenant_id = $1 AND name = $2 AND lang = $3",
            )
            .bind(tenant_id)
            .bind(&p.name)
            .bind(&p.lang)
            .fetch_one(&mut *tx)
            .await?
            .i64("n")?
                > 0;
            if !exists {
                let same_name = sqlx::query(
                    "SELECT COUNT(*) AS n FROM custom_prompts WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant_id)
                .bind(&p.name)
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
                let names = sqlx::query(
                    "SELECT COUNT(DISTINCT name) AS n FROM custom_prompts WHERE tenant_id = $1",
                )
                .bind(tenant_id)
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
                if same_name == 0 && names >= MAX_PER_TENANT as i64 {
                    return Err(Error::Limit {
                        what: "custom prompts",
                        limit: MAX_PER_TENANT as u64,
                        current: u64::try_from(names).unwrap_or(0),
                    });
                }
            }
            let r = sqlx::query(if exists { &sql_update } else { &sql_insert })
                .bind(tenant_id)
                .bind(&p.name)
                .bind(&p.lang)
                .bind(desc.as_deref())
                .bind(&p.source)
                .bind(clip(&p.original_name, 200))
                .bind(clip(&p.original_format, 40))
                .bind(clip(&p.recorded_by, 64))
                .bind(p.duration_ms)
                .bind(&p.sha256)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| crate::db::conflict(e, || format!("custom prompt {} ({})", p.name, p.lang)))?;
            row_from(&r)?
        }))
    }

    /// A tenant's custom prompts, by name then language (`any`, `en`, `ja`).
    pub async fn custom_prompts(&self, tenant_id: i64) -> Result<Vec<CustomPromptRow>> {
        let sql =
            format!("SELECT {COLS} FROM custom_prompts WHERE tenant_id = $1 ORDER BY name, lang");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).fetch_all(pool).await?.iter().map(row_from).collect()
        })
    }

    /// The variants of one custom prompt (empty: no such prompt).
    pub async fn custom_prompt(&self, tenant_id: i64, name: &str) -> Result<Vec<CustomPromptRow>> {
        let sql = format!(
            "SELECT {COLS} FROM custom_prompts WHERE tenant_id = $1 AND name = $2 ORDER BY lang"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).bind(name).fetch_all(pool).await?.iter().map(row_from).collect()
        })
    }

    /// The IVR menus of the tenant that play custom prompt `name`.
    pub async fn custom_prompt_users(&self, tenant_id: i64, name: &str) -> Result<Vec<String>> {
        read_pool!(self.db(), pool, kind => {
            let rows = sqlx::query("SELECT name, spec FROM ivr_menus WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?;
            let mut users = Vec::new();
            for r in &rows {
                if menu_plays(&r.text("spec")?, name) {
                    users.push(r.text("name")?);
                }
            }
            Ok(users)
        })
    }

    /// Removes custom prompt `name` (every variant), or only its `lang` variant; returns the
    /// rows removed (the caller removes their files). Refused ([`IN_USE`]) when an IVR menu
    /// plays it and no variant would be left.
    pub async fn delete_custom_prompt(
        &self,
        tenant_id: i64,
        name: &str,
        lang: Option<&str>,
    ) -> Result<Vec<CustomPromptRow>> {
        if let Some(l) = lang {
            check_lang(l)?;
        }
        let sql = format!(
            "SELECT {COLS} FROM custom_prompts WHERE tenant_id = $1 AND name = $2 ORDER BY lang"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let rows: Vec<CustomPromptRow> = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(row_from)
                .collect::<Result<_>>()?;
            let (gone, kept): (Vec<_>, Vec<_>) =
                rows.into_iter().partition(|r| lang.is_none_or(|l| r.lang == l));
            if gone.is_empty() {
                return Err(Error::NotFound(match lang {
                    Some(l) => format!("custom prompt {name} ({l})"),
                    None => format!("custom prompt {name}"),
                }));
            }
            if kept.is_empty() {
                let users = menus_playing!(tx, tenant_id, name);
                if !users.is_empty() {
                    return Err(in_use(name, &users, "deleting"));
                }
            }
            for r in &gone {
                sqlx::query("DELETE FROM custom_prompts WHERE id = $1")
                    .bind(r.id)
                    .execute(&mut *tx)
                    .await?;
            }
            gone
        }))
    }

    /// Renames custom prompt `from` to `to` and/or sets its description; returns its variants.
    /// A rename is refused when `to` exists or an IVR menu plays `from` ([`IN_USE`]).
    pub async fn edit_custom_prompt(
        &self,
        tenant_id: i64,
        from: &str,
        to: Option<&str>,
        description: Option<&str>,
    ) -> Result<Vec<CustomPromptRow>> {
        if let Some(t) = to {
            name_ok(t)?;
        }
        let desc = description.map(|d| clip(d, 200));
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            let n = sqlx::query("SELECT COUNT(*) AS n FROM custom_prompts WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(from)
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
            if n == 0 {
                return Err(Error::NotFound(format!("custom prompt {from}")));
            }
            if let Some(to) = to.filter(|t| *t != from) {
                let taken = sqlx::query("SELECT COUNT(*) AS n FROM custom_prompts WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant_id)
                    .bind(to)
                    .fetch_one(&mut *tx)
                    .await?
                    .i64("n")?;
                if taken > 0 {
                    return Err(Error::Conflict(format!("custom prompt {to}")));
                }
                let users = menus_playing!(tx, tenant_id, from);
                if !users.is_empty() {
                    return Err(in_use(from, &users, "renaming"));
                }
                sqlx::query("UPDATE custom_prompts SET name = $3, updated_at = $4 WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant_id)
                    .bind(from)
                    .bind(to)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let name = to.unwrap_or(from);
            if let Some(d) = &desc {
                sqlx::query("UPDATE custom_prompts SET description = $3, updated_at = $4 WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant_id)
                    .bind(name)
                    .bind(d)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        self.custom_prompt(tenant_id, to.unwrap_or(from)).await
    }
}

/// Why an upload of a custom prompt failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The name or the file was refused (the reason is for people).
    #[error(transparent)]
    Refused(#[from] apps::custom_prompt::CustomError),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// What an upload stored.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The variant's row.
    pub row: CustomPromptRow,
    /// True when the prompt (any variant) did not exist before.
    pub new_prompt: bool,
}

impl Store {
    /// Converts `file` (any format a catalogue prompt upload takes) into `variant` of custom
    /// prompt `name` under `data_dir` and records it: the one path the CLI, the API and the
    /// panel use. A refused file changes nothing; a failed database write removes a file it
    /// created.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_custom_prompt(
        &self,
        data_dir: &std::path::Path,
        tenant_id: i64,
        name: &str,
        variant: apps::custom_prompt::Variant,
        file: &std::path::Path,
        original_name: Option<&str>,
        description: Option<&str>,
    ) -> std::result::Result<Uploaded, UploadError> {
        check_name(name)?;
        let new_prompt = self.custom_prompt(tenant_id, name).await?.is_empty();
        let (dir, n, f) = (data_dir.to_path_buf(), name.to_string(), file.to_path_buf());
        let stored = tokio::task::spawn_blocking(move || {
            apps::custom_prompt::upload(&dir, tenant_id, variant, &n, &f)
        })
        .await
        .map_err(|e| Error::Io {
            path: file.to_path_buf(),
            source: std::io::Error::other(format!("conversion task failed: {e}")),
        })??;
        let row = NewCustomPrompt {
            name: name.to_string(),
            lang: variant.as_str().to_string(),
            description: description.map(str::to_string),
            source: "uploaded".into(),
            original_name: original_name.unwrap_or("").to_string(),
            original_format: stored.original_format.clone(),
            recorded_by: String::new(),
            duration_ms: stored.duration_ms,
            sha256: stored.sha256.clone(),
        };
        match self.put_custom_prompt(tenant_id, &row).await {
            Ok(row) => Ok(Uploaded { row, new_prompt }),
            Err(e) => {
                if stored.created {
                    let _ = apps::custom_prompt::remove(data_dir, tenant_id, variant, name);
                }
                Err(e.into())
            }
        }
    }

    /// Deletes custom prompt `name` (or its `lang` variant) and its files; see
    /// [`Store::delete_custom_prompt`] for the refusals.
    pub async fn remove_custom_prompt(
        &self,
        data_dir: &std::path::Path,
        tenant_id: i64,
        name: &str,
        lang: Option<&str>,
    ) -> Result<Vec<CustomPromptRow>> {
        let gone = self.delete_custom_prompt(tenant_id, name, lang).await?;
        for r in &gone {
            if let Some(v) = apps::custom_prompt::Variant::parse(&r.lang)
                && let Err(e) = apps::custom_prompt::remove(data_dir, tenant_id, v, name)
            {
                tracing::warn!(prompt = %name, lang = %r.lang, error = %e, "custom prompt file not removed");
            }
        }
        Ok(gone)
    }

    /// Renames custom prompt `from` to `to` (rows and files) and/or sets its description; see
    /// [`Store::edit_custom_prompt`] for the refusals. A failed file rename puts the old name
    /// back.
    pub async fn rename_custom_prompt(
        &self,
        data_dir: &std::path::Path,
        tenant_id: i64,
        from: &str,
        to: Option<&str>,
        description: Option<&str>,
    ) -> Result<Vec<CustomPromptRow>> {
        let rows = self
            .edit_custom_prompt(tenant_id, from, to, description)
            .await?;
        if let Some(to) = to.filter(|t| *t != from)
            && let Err(e) = apps::custom_prompt::rename(data_dir, tenant_id, from, to)
        {
            let _ = self
                .edit_custom_prompt(tenant_id, to, Some(from), None)
                .await;
            return Err(Error::Io {
                path: apps::custom_prompt::dir(data_dir, tenant_id),
                source: std::io::Error::other(e.to_string()),
            });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::menu_plays;

    #[test]
    fn a_menu_plays_its_greeting_and_prompt_members() {
        let spec =
            r#"{"greeting":"main-greeting","options":{"1":"ext:1001"},"invalid_prompt":"oops"}"#;
        assert!(menu_plays(spec, "main-greeting"));
        assert!(menu_plays(spec, "oops"));
        assert!(!menu_plays(spec, "ext:1001"));
        assert!(!menu_plays(spec, "main"));
        assert!(!menu_plays("not json", "main-greeting"));
    }
}
