//! `denwa page ...`: page groups (`page:NAME`, paging with one-way audio). Validation is the
//! store's (the same words as the API); this module turns flags into settings and prints them.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use engine::page::PageGroup;
use store::Store;

/// `denwa page` subcommands.
#[derive(Debug, Subcommand)]
pub enum PageCmd {
    /// List page groups.
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Add a page group: its number and member extensions.
    Add {
        /// Group name (reached as page:NAME, or by its number)
        name: String,
        #[command(flatten)]
        flags: PageFlags,
    },
    /// Change a page group; --member given replaces the whole member list.
    Edit {
        /// Group name
        name: String,
        #[command(flatten)]
        flags: PageFlags,
    },
    /// Remove a page group.
    Delete {
        /// Group name
        name: String,
    },
}

/// A page group's settings as flags.
#[derive(Debug, Args, Default)]
pub struct PageFlags {
    /// Internal number that dials the group (e.g. 650); "" for none
    #[arg(long, value_name = "N")]
    pub number: Option<String>,
    /// A member extension (repeatable)
    #[arg(long = "member", value_name = "EXT")]
    pub members: Vec<String>,
    /// Page members in a call or on DND too: on or off (default off)
    #[arg(long, value_name = "on|off")]
    pub barge: Option<String>,
    /// Seconds a phone has to answer by itself before it is cancelled (default 5)
    #[arg(long, value_name = "S")]
    pub answer_time: Option<u32>,
    /// Longest page, seconds (default 60)
    #[arg(long, value_name = "S")]
    pub max: Option<u32>,
    /// Auto-answer headers: common, call_info, alert_info, answer_mode, polycom_legacy
    #[arg(long, value_name = "SET")]
    pub auto_answer: Option<String>,
}

fn apply(g: &mut PageGroup, f: &PageFlags) -> Result<()> {
    if !f.members.is_empty() {
        g.members = f.members.iter().map(|m| m.trim().to_string()).collect();
    }
    if let Some(b) = &f.barge {
        g.barge = match b.as_str() {
            "on" => true,
            "off" => false,
            other => bail!("--barge: {other:?}: on or off"),
        };
    }
    if let Some(s) = f.answer_time {
        g.answer_s = s;
    }
    if let Some(s) = f.max {
        g.max_s = s;
    }
    if let Some(a) = &f.auto_answer {
        g.auto_answer = a.parse().map_err(|e| anyhow!("--auto-answer: {e}"))?;
    }
    Ok(())
}

/// A refusal with the field named as the flag.
fn flag_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => match field {
            "name" => anyhow!("{reason}"),
            "members" => anyhow!("--member: {reason}"),
            "answer_s" => anyhow!("--answer-time: {reason}"),
            "max_s" => anyhow!("--max: {reason}"),
            other => anyhow!("--{other}: {reason}"),
        },
        other => anyhow!(other),
    }
}

fn write_group(r: &store::PageGroupRow, out: &mut impl Write) -> Result<()> {
    let g = &r.group;
    let number = if r.number.is_empty() { "-" } else { &r.number };
    writeln!(out, "page:{}  number {number}", r.name)?;
    writeln!(
        out,
        "  members {}; barge {}, answer within {} s, longest {} s, auto-answer {}",
        g.members.join(" "),
        if g.barge { "on" } else { "off" },
        g.answer_s,
        g.max_s,
        g.auto_answer
    )?;
    Ok(())
}

/// Runs `denwa page ...`.
pub async fn run(cmd: PageCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        PageCmd::List { json } => {
            let list = store.list_page_groups(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(());
            }
            if list.is_empty() {
                writeln!(out, "no page groups")?;
            }
            for r in &list {
                write_group(r, out)?;
            }
        }
        PageCmd::Add { name, flags } => {
            let mut g = PageGroup::new(&name, Vec::new());
            apply(&mut g, &flags)?;
            let number = flags.number.clone().unwrap_or_default();
            let r = store
                .save_page_group(tenant, &number, &g, true)
                .await
                .map_err(flag_error)?;
            writeln!(out, "page group {} added", r.name)?;
            write_group(&r, out)?;
        }
        PageCmd::Edit { name, flags } => {
            let Some(mut r) = store.page_group(tenant, &name).await? else {
                bail!("no page group {name}");
            };
            apply(&mut r.group, &flags)?;
            let number = flags.number.clone().unwrap_or(r.number.clone());
            let r = store
                .save_page_group(tenant, &number, &r.group, false)
                .await
                .map_err(flag_error)?;
            writeln!(out, "page group {} changed", r.name)?;
            write_group(&r, out)?;
        }
        PageCmd::Delete { name } => {
            store
                .delete_page_group(tenant, &name)
                .await
                .map_err(flag_error)?;
            writeln!(out, "page group {name} removed")?;
        }
    }
    Ok(())
}
