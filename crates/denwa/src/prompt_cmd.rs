//! `denwa prompt ...` and `denwa moh ...`: the prompt set (EN/JA) and music on hold on disk
//! (see `apps::prompt_files`, `apps::moh` and docs/prompts.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use apps::moh;
use apps::prompt::Lang;
use apps::prompt_files;
use clap::Subcommand;

/// `denwa prompt ...`
#[derive(Debug, Subcommand)]
pub enum PromptCmd {
    /// Every prompt per language: whether a file is there, where it came from (default-tts,
    /// uploaded, recorded), its path and length.
    List {
        /// Only this language (en, ja).
        #[arg(long, value_name = "LANG")]
        lang: Option<Lang>,
        /// The tenant (id) whose replacements to show; default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Synthesise the default prompt set from the catalogue text with espeak-ng (./scripts/run.sh
    /// runs this); files already made from the same text by the same engine are kept.
    InstallDefaults {
        /// Only this language (repeatable; default: en and ja).
        #[arg(long, value_name = "LANG")]
        lang: Vec<Lang>,
        /// Only this prompt id (repeatable; default: all).
        #[arg(long, value_name = "ID")]
        id: Vec<String>,
        /// Synthesise again even when up to date.
        #[arg(long)]
        force: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a prompt with an audio file (WAV, MP3, Ogg Vorbis, FLAC, AIFF, AU; any rate),
    /// converted to 16 kHz mono WAV.
    Upload {
        /// Prompt id (`denwa prompt list` shows them).
        id: String,
        /// Language of the replacement.
        #[arg(long, value_name = "LANG")]
        lang: Lang,
        /// The audio file.
        file: PathBuf,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// Remove a replacement: the default prompt plays again.
    Reset {
        /// Prompt id.
        id: String,
        /// Language.
        #[arg(long, value_name = "LANG")]
        lang: Lang,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// Show or set the tenant's default prompt language: what its callers hear when their
    /// extension inherits (`denwa extension edit N --language` sets an extension's own), and
    /// what outside callers hear.
    Language {
        /// en, ja, or inherit (the node's prompts.language); none: show it.
        #[arg(value_name = "LANG")]
        language: Option<String>,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// Named custom prompts ("system recordings"): the tenant's own recordings under names of
    /// its choosing, played by IVR menus (`--greeting NAME`).
    #[command(subcommand)]
    Custom(crate::custom_prompt_cmd::CustomCmd),
}

/// `denwa moh ...`
#[derive(Debug, Subcommand)]
pub enum MohCmd {
    /// Music-on-hold classes and their files (the tenant's own and the installed ones).
    List {
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add an audio file (any format `prompt upload` takes) to a class, creating it.
    Add {
        /// Class name (a-z, 0-9, -, _).
        class: String,
        /// The audio file.
        file: PathBuf,
        /// Name to store it under (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// Remove one file of a class, or the whole class.
    Remove {
        /// Class name.
        class: String,
        /// File name as `moh list` shows it (default: the whole class).
        file: Option<String>,
        /// The tenant (id); default: the default tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<i64>,
    },
    /// Write the installed class `default` (generated music) if it is missing (./scripts/run.sh
    /// runs this).
    InstallDefault {
        /// Write it again.
        #[arg(long)]
        force: bool,
    },
}

/// True for the commands that need no database (run at install time, before `serve`).
pub fn needs_no_database(p: Option<&PromptCmd>, m: Option<&MohCmd>) -> bool {
    matches!(p, Some(PromptCmd::InstallDefaults { .. }))
        || matches!(m, Some(MohCmd::InstallDefault { .. }))
}

/// Runs `denwa prompt install-defaults`.
pub fn install_defaults(
    data_dir: &Path,
    cmd: PromptCmd,
    out: &mut impl Write,
) -> Result<std::process::ExitCode> {
    let PromptCmd::InstallDefaults {
        lang,
        id,
        force,
        json,
    } = cmd
    else {
        bail!("not install-defaults");
    };
    let langs = if lang.is_empty() {
        Lang::ALL.to_vec()
    } else {
        lang
    };
    let only = (!id.is_empty()).then_some(id.as_slice());
    let r = prompt_files::install_defaults(data_dir, &langs, only, force)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        writeln!(
            out,
            "prompts in {}: {} synthesised, {} up to date, {} failed ({} {}, {:.1} s)",
            prompt_files::default_dir(data_dir).display(),
            r.synthesised,
            r.cached,
            r.failed.len(),
            prompt_files::TTS_ENGINE,
            r.engine_version,
            r.seconds
        )?;
        for f in &r.failed {
            writeln!(out, "  failed: {f}")?;
        }
    }
    Ok(if r.failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Runs `denwa moh install-default`.
pub fn install_default_moh(data_dir: &Path, force: bool, out: &mut impl Write) -> Result<()> {
    let (path, written) = moh::install_default(data_dir, force)?;
    if written {
        writeln!(out, "music on hold: wrote {}", path.display())?;
    } else {
        writeln!(out, "music on hold: {} is there", path.display())?;
    }
    Ok(())
}

/// The tenant a command means: `--tenant` when given (it must exist), else the default one.
async fn which_tenant(store: &store::Store, given: Option<i64>) -> Result<i64> {
    match given {
        Some(id) => match store.tenant(id).await? {
            Some(t) => Ok(t.id),
            None => bail!("no tenant with id {id}"),
        },
        None => Ok(store.default_tenant().await?.id),
    }
}

/// Runs `denwa prompt ...` (other than install-defaults).
pub async fn run_prompt(
    data_dir: &Path,
    store: &store::Store,
    cmd: PromptCmd,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        PromptCmd::List { lang, tenant, json } => {
            let tenant = which_tenant(store, tenant).await?;
            let langs = lang.map(|l| vec![l]).unwrap_or_else(|| Lang::ALL.to_vec());
            let rows: Vec<_> = langs
                .iter()
                .flat_map(|l| prompt_files::list(data_dir, Some(tenant), *l))
                .collect();
            // The tenant's custom prompts follow the catalogue (category `custom`); with
            // `--lang`, the variants callers of that language can hear (theirs and `any`).
            let custom: Vec<serde_json::Value> =
                crate::custom_prompt_cmd::entries(data_dir, store, tenant)
                    .await?
                    .into_iter()
                    .filter(|c| {
                        lang.is_none_or(
                    |l| matches!(c["lang"].as_str(), Some(x) if x == "any" || x == l.as_str()),
                )
                    })
                    .collect();
            if json {
                let mut all = serde_json::to_value(&rows)?;
                if let Some(a) = all.as_array_mut() {
                    a.extend(custom);
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:>4} {:<30} {:<4} {:<26} {:>7}  TEXT",
                "NO", "ID", "LANG", "SOURCE", "SECONDS"
            )?;
            for r in &rows {
                let secs = r
                    .duration_s
                    .map(|s| format!("{s:.2}"))
                    .unwrap_or_else(|| "-".into());
                let source = match &r.recorded_by {
                    Some(by) => format!("recorded by phone {by}"),
                    None => r.source.as_str().to_string(),
                };
                writeln!(
                    out,
                    "{:>4} {:<30} {:<4} {:<26} {:>7}  {}",
                    r.number, r.id, r.lang, source, secs, r.text
                )?;
            }
            for c in &custom {
                writeln!(
                    out,
                    "{:>4} {:<30} {:<4} {:<26} {:>7.2}  {}",
                    "-",
                    c["id"].as_str().unwrap_or(""),
                    c["lang"].as_str().unwrap_or(""),
                    format!("custom, {}", c["source"].as_str().unwrap_or("")),
                    c["duration_s"].as_f64().unwrap_or(0.0),
                    c["description"].as_str().unwrap_or("")
                )?;
            }
            let missing = rows.iter().filter(|r| !r.present).count();
            if missing > 0 {
                writeln!(
                    out,
                    "{missing} prompt file(s) missing: run `denwa prompt install-defaults`"
                )?;
            }
        }
        PromptCmd::Upload {
            id,
            lang,
            file,
            tenant,
        } => {
            let tenant = which_tenant(store, tenant).await?;
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            let l = prompt_files::upload(data_dir, tenant, lang, &id, &file, name.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            writeln!(
                out,
                "prompt {id} ({lang}) replaced for tenant {tenant}: {} ({:.2} s)",
                l.path.unwrap_or_default(),
                l.duration_s.unwrap_or(0.0)
            )?;
        }
        PromptCmd::Reset { id, lang, tenant } => {
            let tenant = which_tenant(store, tenant).await?;
            let l = prompt_files::reset(data_dir, tenant, lang, &id)?;
            writeln!(
                out,
                "prompt {id} ({lang}) reset for tenant {tenant}: {}",
                if l.present {
                    "the default plays again"
                } else {
                    "no default file (run `denwa prompt install-defaults`)"
                }
            )?;
        }
        PromptCmd::Language { language, tenant } => {
            let tenant = which_tenant(store, tenant).await?;
            if let Some(l) = language {
                let l = cli_language(&l)?;
                store.set_tenant_language(tenant, &l).await?;
            }
            let t = store
                .tenant(tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant with id {tenant}"))?;
            let node: Option<String> = store
                .setting(None, engine::settings::keys::PROMPTS_LANGUAGE)
                .await?;
            let effective =
                engine::prompt_lang::pick(None, Some(&t.language), node.as_deref().unwrap_or(""));
            if t.language.is_empty() {
                writeln!(
                    out,
                    "tenant {tenant}: prompt language inherited from prompts.language ({effective})"
                )?;
            } else {
                writeln!(out, "tenant {tenant}: prompt language {effective}")?;
            }
        }
        PromptCmd::Custom(cmd) => {
            let tenant = which_tenant(store, crate::custom_prompt_cmd::tenant_of(&cmd)).await?;
            crate::custom_prompt_cmd::run(data_dir, store, tenant, cmd, out).await?;
        }
        PromptCmd::InstallDefaults { .. } => bail!("install-defaults runs without a tenant"),
    }
    Ok(())
}

/// A `--language` value of the CLI: `en`, `ja`, or `inherit` / empty (stored empty).
pub fn cli_language(v: &str) -> Result<String> {
    let v = v.trim();
    let v = if v.eq_ignore_ascii_case("inherit") {
        ""
    } else {
        v
    };
    store::validate_language(v)
        .map_err(|_| anyhow::anyhow!("language {v:?}: use en, ja or inherit"))?;
    Ok(v.to_string())
}

/// Runs `denwa moh ...` (other than install-default).
pub async fn run_moh(
    data_dir: &Path,
    store: &store::Store,
    cmd: MohCmd,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        MohCmd::List { tenant, json } => {
            let t = which_tenant(store, tenant).await?;
            let classes = moh::classes(data_dir, Some(t));
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&classes)?)?;
                return Ok(());
            }
            for c in &classes {
                writeln!(out, "{} ({}, {} file(s))", c.name, c.scope, c.files.len())?;
                for f in &c.files {
                    writeln!(out, "  {:<40} {:>8.2} s", f.name, f.duration_s)?;
                }
            }
            if classes.is_empty() {
                writeln!(
                    out,
                    "no music-on-hold classes: run `denwa moh install-default`"
                )?;
            }
        }
        MohCmd::Add {
            class,
            file,
            name,
            tenant,
        } => {
            let tenant = which_tenant(store, tenant).await?;
            let name = name.unwrap_or_else(|| {
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let f = moh::add(data_dir, tenant, &class, &file, &name)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            writeln!(
                out,
                "added {} ({:.2} s) to class {class} of tenant {tenant}",
                f.name, f.duration_s
            )?;
        }
        MohCmd::Remove {
            class,
            file,
            tenant,
        } => {
            let tenant = which_tenant(store, tenant).await?;
            if file.is_none()
                && moh::tenant_has_class(data_dir, tenant, &class)
                && let Err(store::Error::Invalid { reason, .. }) =
                    store.moh_class_removable(tenant, &class).await
            {
                anyhow::bail!("{reason}");
            }
            let n = moh::remove(data_dir, tenant, &class, file.as_deref())?;
            match file {
                Some(f) => writeln!(out, "removed {f} from class {class}")?,
                None => writeln!(out, "removed class {class} ({n} file(s))")?,
            }
        }
        MohCmd::InstallDefault { force } => install_default_moh(data_dir, force, out)?,
    }
    Ok(())
}
