//! `denwa ivr ...`: IVR menus (auto-attendants). Validation is the store's (the same words as
//! the API); this module only turns flags into a menu and prints menus, nested menus as a tree.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use store::{IvrMenu, Store};

use apps::ivr::MenuSpec;

/// `denwa ivr` subcommands.
#[derive(Debug, Subcommand)]
pub enum IvrCmd {
    /// Add a menu: a greeting, one destination per digit, timeouts, a fallback.
    Add {
        /// Menu name (callers reach it as ivr:NAME)
        name: String,
        #[command(flatten)]
        flags: IvrFlags,
    },
    /// Change a menu; options given replace those digits, --remove-option deletes one.
    Edit {
        /// Menu name
        name: String,
        #[command(flatten)]
        flags: IvrFlags,
        /// Remove the option for this digit (repeatable)
        #[arg(long = "remove-option", value_name = "DIGIT")]
        remove_option: Vec<char>,
    },
    /// List menus.
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Show one menu and the menus under it, as a tree.
    Show {
        /// Menu name
        name: String,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Remove a menu (refused while a DID or another menu sends callers to it).
    Remove {
        /// Menu name
        name: String,
    },
}

/// A menu's settings as flags.
#[derive(Debug, Args, Default)]
pub struct IvrFlags {
    /// Internal number that reaches the menu (e.g. 500); "" for none
    #[arg(long, value_name = "N")]
    pub number: Option<String>,
    /// Prompt id of the greeting (an uploaded prompt, e.g. main-greeting)
    #[arg(long, value_name = "PROMPT")]
    pub greeting: Option<String>,
    /// An option: DIGIT=DESTINATION, e.g. 1=ext:1001, 2=ivr:sales, 0=hangup (repeatable)
    #[arg(long = "option", value_name = "D=DEST")]
    pub options: Vec<String>,
    /// Callers may dial an extension number directly (true/false)
    #[arg(long, value_name = "BOOL")]
    pub dial_by_extension: Option<bool>,
    /// Seconds to wait for a choice after the greeting (1-60, default 5)
    #[arg(long, value_name = "S")]
    pub timeout: Option<u32>,
    /// Seconds to wait for the next digit of an extension number (1-20, default 3)
    #[arg(long, value_name = "S")]
    pub digit_timeout: Option<u32>,
    /// Replays of the greeting after a timeout or an invalid choice (0-10, default 2)
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Where callers go when the retries are used up (default hangup)
    #[arg(long, value_name = "DEST")]
    pub fallback: Option<String>,
    /// Say "please hold while I transfer your call" before ringing an extension (true/false)
    #[arg(long, value_name = "BOOL")]
    pub announce_transfer: Option<bool>,
    /// A note
    #[arg(long)]
    pub description: Option<String>,
    /// Class of service for outside numbers the menu sends callers to: internal, local,
    /// national, mobile, international ("" for the default, mobile)
    #[arg(long, value_name = "CLASS")]
    pub cos: Option<String>,
}

/// Applies the flags to `spec`.
fn apply(spec: &mut MenuSpec, f: &IvrFlags) -> Result<()> {
    if let Some(g) = &f.greeting {
        spec.greeting = g.clone();
    }
    for o in &f.options {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("--option: {o:?} is not DIGIT=DESTINATION"))?;
        let mut chars = k.trim().chars();
        let (Some(d), None) = (chars.next(), chars.next()) else {
            bail!("--option: {k:?} is not a single digit");
        };
        spec.options.insert(d, v.trim().to_string());
    }
    if let Some(b) = f.dial_by_extension {
        spec.dial_by_extension = b;
    }
    if let Some(t) = f.timeout {
        spec.timeout_s = t;
    }
    if let Some(t) = f.digit_timeout {
        spec.digit_timeout_s = t;
    }
    if let Some(r) = f.retries {
        spec.retries = r;
    }
    if let Some(d) = &f.fallback {
        spec.fallback = d.clone();
    }
    if let Some(b) = f.announce_transfer {
        spec.announce_transfer = b;
    }
    if let Some(d) = &f.description {
        spec.description = d.clone();
    }
    if let Some(c) = &f.cos {
        spec.cos = c.trim().to_string();
    }
    Ok(())
}

/// A refusal with the field named as the flag.
fn flag_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => match field {
            "name" => anyhow!("{reason}"),
            "options" => anyhow!("--option: {reason}"),
            "timeout_s" => anyhow!("--timeout: {reason}"),
            "digit_timeout_s" => anyhow!("--digit-timeout: {reason}"),
            other => anyhow!("--{}: {reason}", other.replace('_', "-")),
        },
        other => anyhow!(other),
    }
}

/// Runs `denwa ivr ...`.
pub async fn run(cmd: IvrCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        IvrCmd::Add { name, flags } => {
            let mut spec = MenuSpec::default();
            apply(&mut spec, &flags)?;
            let number = flags.number.clone().unwrap_or_default();
            let m = store
                .put_ivr(tenant, &name, &number, &spec, true)
                .await
                .map_err(flag_error)?;
            writeln!(out, "IVR menu {} added", m.name)?;
            write_tree(store, tenant, &m, out).await?;
        }
        IvrCmd::Edit {
            name,
            flags,
            remove_option,
        } => {
            let Some(mut m) = store.ivr(tenant, &name).await? else {
                bail!("no IVR menu {name}");
            };
            apply(&mut m.spec, &flags)?;
            for d in remove_option {
                if m.spec.options.remove(&d).is_none() {
                    bail!("--remove-option: menu {name} has no option {d}");
                }
            }
            let number = flags.number.clone().unwrap_or(m.number.clone());
            let m = store
                .put_ivr(tenant, &name, &number, &m.spec, false)
                .await
                .map_err(flag_error)?;
            writeln!(out, "IVR menu {} changed", m.name)?;
            write_tree(store, tenant, &m, out).await?;
        }
        IvrCmd::List { json } => {
            let list = store.list_ivrs(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(
                    out,
                    "{:<20} {:<8} {:<24} {:<8} FALLBACK",
                    "NAME", "NUMBER", "GREETING", "OPTIONS"
                )?;
                for m in list {
                    writeln!(
                        out,
                        "{:<20} {:<8} {:<24} {:<8} {}",
                        m.name,
                        m.number,
                        m.spec.greeting,
                        m.spec.options.len(),
                        m.spec.fallback
                    )?;
                }
            }
        }
        IvrCmd::Show { name, json } => {
            let Some(m) = store.ivr(tenant, &name).await? else {
                bail!("no IVR menu {name}");
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&m)?)?;
            } else {
                write_tree(store, tenant, &m, out).await?;
            }
        }
        IvrCmd::Remove { name } => {
            store.delete_ivr(tenant, &name).await.map_err(flag_error)?;
            writeln!(out, "IVR menu {name} removed")?;
        }
    }
    Ok(())
}

/// Prints `root` and the menus its options lead to, indented; a menu met again is named, not
/// repeated.
async fn write_tree(
    store: &Store,
    tenant: i64,
    root: &IvrMenu,
    out: &mut impl Write,
) -> Result<()> {
    let menus: BTreeMap<String, IvrMenu> = store
        .list_ivrs(tenant)
        .await?
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    for line in tree_lines(root, &menus) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The tree as text lines.
pub fn tree_lines(root: &IvrMenu, menus: &BTreeMap<String, IvrMenu>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut seen = HashSet::new();
    walk(root, menus, 0, &mut seen, &mut lines);
    lines
}

fn walk(
    m: &IvrMenu,
    menus: &BTreeMap<String, IvrMenu>,
    depth: usize,
    seen: &mut HashSet<String>,
    lines: &mut Vec<String>,
) {
    let pad = "  ".repeat(depth);
    let number = if m.number.is_empty() {
        String::new()
    } else {
        format!(" (number {})", m.number)
    };
    lines.push(format!(
        "{pad}ivr:{}{number}  greeting {}",
        m.name, m.spec.greeting
    ));
    seen.insert(m.name.clone());
    for (k, dest) in &m.spec.options {
        lines.push(format!("{pad}  [{k}] -> {dest}"));
        if let Some(sub) = dest.strip_prefix("ivr:").and_then(|n| menus.get(n))
            && !seen.contains(&sub.name)
        {
            walk(sub, menus, depth + 2, seen, lines);
        }
    }
    if m.spec.dial_by_extension {
        lines.push(format!("{pad}  [extension number] -> ext:N"));
    }
    lines.push(format!(
        "{pad}  [no choice after {} s, {} retries] -> {}",
        m.spec.timeout_s, m.spec.retries, m.spec.fallback
    ));
}
