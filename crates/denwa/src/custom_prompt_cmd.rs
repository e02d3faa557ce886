//! `denwa prompt custom ...`: a tenant's named custom prompts ("system recordings": files
//! `apps::custom_prompt`, rows `store`'s `custom_prompts`; docs/prompts.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use apps::custom_prompt::{self, Variant};
use clap::Subcommand;
use serde_json::{Value, json};

/// `denwa prompt custom ...`
#[derive(Debug, Subcommand)]
pub enum CustomCmd {
    /// Add (or replace) a custom prompt from an audio file (any format `prompt upload` takes),
    /// for every caller or only those of one language.
    Add {
        /// Name (lowercase letters, digits, -; not a catalogue id), e.g. main-greeting.
        name: String,
        /// The audio file.
        file: PathBuf,
        /// Which callers hear this file: any (default), en or ja.
        #[arg(long, value_name = "LANG", default_value = "any")]
        lang: String,
        /// Free text shown in listings.
        #[arg(long)]
        description: Option<String>,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// The tenant's custom prompts: variants, lengths, files and the IVR menus that play them.
    List {
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename a custom prompt and/or change its description (a rename is refused while an
    /// IVR menu plays it).
    Edit {
        /// Its name.
        name: String,
        /// New name.
        #[arg(long, value_name = "NAME")]
        rename: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// Remove a custom prompt (refused while an IVR menu plays it), or only one language
    /// variant of it.
    Remove {
        /// Its name.
        name: String,
        /// Only this variant (any, en, ja).
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
}

fn variant(lang: &str) -> Result<Variant> {
    Variant::parse(lang).ok_or_else(|| anyhow!("language {lang:?}: use any, en or ja"))
}

/// The tenant's custom prompts as `prompt list --json` and `prompt custom list --json` show
/// them: one entry per variant (`category` `custom`, `lang` `any`/`en`/`ja`, `path`, `present`,
/// `duration_s`, `description`, `used_by`).
pub async fn entries(data_dir: &Path, store: &store::Store, tenant: i64) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for r in store.custom_prompts(tenant).await? {
        let path =
            Variant::parse(&r.lang).map(|v| custom_prompt::path(data_dir, tenant, v, &r.name));
        let present = path.as_ref().is_some_and(|p| p.is_file());
        let used_by = store.custom_prompt_users(tenant, &r.name).await?;
        out.push(json!({
            "id": r.name,
            "category": "custom",
            "lang": r.lang,
            "text": r.description,
            "description": r.description,
            "present": present,
            "source": r.source,
            "recorded_by": (!r.recorded_by.is_empty()).then_some(&r.recorded_by),
            "original_name": r.original_name,
            "path": path.map(|p| p.display().to_string()),
            "duration_s": r.duration_ms as f64 / 1000.0,
            "used_by": used_by,
        }));
    }
    Ok(out)
}

/// Runs `denwa prompt custom ...` for `tenant`.
pub async fn run(
    data_dir: &Path,
    store: &store::Store,
    tenant: i64,
    cmd: CustomCmd,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        CustomCmd::Add {
            name,
            file,
            lang,
            description,
            ..
        } => {
            let v = variant(&lang)?;
            let original = file.file_name().map(|n| n.to_string_lossy().into_owned());
            let up = store
                .upload_custom_prompt(
                    data_dir,
                    tenant,
                    &name,
                    v,
                    &file,
                    original.as_deref(),
                    description.as_deref(),
                )
                .await
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            writeln!(
                out,
                "custom prompt {name} ({v}) {} for tenant {tenant} ({:.2} s): {}",
                if up.new_prompt { "added" } else { "stored" },
                up.row.duration_ms as f64 / 1000.0,
                custom_prompt::path(data_dir, tenant, v, &name).display()
            )?;
        }
        CustomCmd::List { json, .. } => {
            let rows = entries(data_dir, store, tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(());
            }
            if rows.is_empty() {
                writeln!(
                    out,
                    "no custom prompts (add one: denwa prompt custom add NAME FILE)"
                )?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<30} {:<4} {:>7} {:<12} {:<20} DESCRIPTION",
                "NAME", "LANG", "SECONDS", "SOURCE", "USED BY"
            )?;
            for r in &rows {
                let used: Vec<String> = r["used_by"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(|s| format!("ivr:{s}")))
                            .collect()
                    })
                    .unwrap_or_default();
                let source = if r["present"].as_bool() == Some(true) {
                    r["source"].as_str().unwrap_or("").to_string()
                } else {
                    "FILE MISSING".to_string()
                };
                writeln!(
                    out,
                    "{:<30} {:<4} {:>7.2} {:<12} {:<20} {}",
                    r["id"].as_str().unwrap_or(""),
                    r["lang"].as_str().unwrap_or(""),
                    r["duration_s"].as_f64().unwrap_or(0.0),
                    source,
                    if used.is_empty() {
                        "-".to_string()
                    } else {
                        used.join(",")
                    },
                    r["description"].as_str().unwrap_or("")
                )?;
            }
        }
        CustomCmd::Edit {
            name,
            rename,
            description,
            ..
        } => {
            if rename.is_none() && description.is_none() {
                return Err(anyhow!(
                    "nothing to change: give --rename and/or --description"
                ));
            }
            store
                .rename_custom_prompt(
                    data_dir,
                    tenant,
                    &name,
                    rename.as_deref(),
                    description.as_deref(),
                )
                .await?;
            writeln!(
                out,
                "custom prompt {} updated",
                rename.as_deref().unwrap_or(&name)
            )?;
        }
        CustomCmd::Remove { name, lang, .. } => {
            if let Some(l) = &lang {
                variant(l)?;
            }
            let gone = store
                .remove_custom_prompt(data_dir, tenant, &name, lang.as_deref())
                .await?;
            let langs: Vec<&str> = gone.iter().map(|r| r.lang.as_str()).collect();
            writeln!(out, "custom prompt {name} removed ({})", langs.join(", "))?;
        }
    }
    Ok(())
}

/// The `--tenant` of a custom-prompt command.
pub fn tenant_of(cmd: &CustomCmd) -> Option<i64> {
    match cmd {
        CustomCmd::Add { tenant, .. }
        | CustomCmd::List { tenant, .. }
        | CustomCmd::Edit { tenant, .. }
        | CustomCmd::Remove { tenant, .. } => *tenant,
    }
}
