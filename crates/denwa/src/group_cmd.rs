//! `denwa group ...` (ring groups), `denwa forward ...` and `denwa dnd ...` (per-extension
//! forwarding, follow-me and do-not-disturb). Validation is the store's (the same words as the
//! API); this module only turns flags into settings and prints them.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use engine::hunt::{DndMode, ForwardKind, Forwarding, GroupSpec, Member, Strategy};
use store::Store;

/// `denwa group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Add a ring group: members, strategy, ring times, a no-answer destination.
    Add {
        /// Group name (callers reach it as group:NAME)
        name: String,
        #[command(flatten)]
        flags: GroupFlags,
    },
    /// Change a group; --member given replaces the whole member list.
    Edit {
        /// Group name
        name: String,
        #[command(flatten)]
        flags: GroupFlags,
    },
    /// List groups.
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Show one group.
    Show {
        /// Group name
        name: String,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Remove a group (refused while a DID, a menu, another group or a forward names it).
    Remove {
        /// Group name
        name: String,
    },
}

/// A group's settings as flags.
#[derive(Debug, Args, Default)]
pub struct GroupFlags {
    /// Internal number that dials the group (e.g. 600); "" for none
    #[arg(long, value_name = "N")]
    pub number: Option<String>,
    /// simultaneous, sequential, round_robin or first_available (default simultaneous)
    #[arg(long, value_name = "STRATEGY")]
    pub strategy: Option<String>,
    /// A member: an extension or outside number, optionally NUMBER:SECONDS for its own ring
    /// time (repeatable, in order)
    #[arg(long = "member", value_name = "N[:S]")]
    pub members: Vec<String>,
    /// Ring time of one member in sequential strategies, seconds (default 15)
    #[arg(long, value_name = "S")]
    pub ring: Option<u32>,
    /// The group rings at most this long, seconds (default 60)
    #[arg(long, value_name = "S")]
    pub timeout: Option<u32>,
    /// Where unanswered calls go: ext:N, vm:N, ivr:NAME, group:NAME, a number or hangup
    #[arg(long, value_name = "DEST")]
    pub no_answer: Option<String>,
    /// Caller-ID name prefix members see ("Sales" shows "Sales: Tanaka")
    #[arg(long, value_name = "TEXT")]
    pub cid_prefix: Option<String>,
    /// Class of service for outside members (internal, local, national, mobile, international)
    #[arg(long, value_name = "CLASS")]
    pub cos: Option<String>,
}

fn apply(spec: &mut GroupSpec, f: &GroupFlags) -> Result<()> {
    if let Some(s) = &f.strategy {
        spec.strategy = s
            .parse::<Strategy>()
            .map_err(|e| anyhow!("--strategy: {e}"))?;
    }
    if !f.members.is_empty() {
        spec.members = f
            .members
            .iter()
            .map(|m| match m.split_once(':') {
                Some((n, s)) => s
                    .parse()
                    .map(|ring_s| Member {
                        number: n.trim().to_string(),
                        ring_s,
                    })
                    .map_err(|_| anyhow!("--member: {m:?}: the ring time after : is seconds")),
                None => Ok(Member {
                    number: m.trim().to_string(),
                    ring_s: 0,
                }),
            })
            .collect::<Result<_>>()?;
    }
    if let Some(r) = f.ring {
        spec.ring_s = r;
    }
    if let Some(t) = f.timeout {
        spec.timeout_s = t;
    }
    if let Some(d) = &f.no_answer {
        spec.no_answer = d.clone();
    }
    if let Some(p) = &f.cid_prefix {
        spec.cid_prefix = p.clone();
    }
    if let Some(c) = &f.cos {
        spec.cos = c.parse().map_err(|e| anyhow!("--cos: {e}"))?;
    }
    Ok(())
}

/// A refusal with the field named as the flag.
fn flag_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => match field {
            "name" => anyhow!("{reason}"),
            "members" => anyhow!("--member: {reason}"),
            "ring_s" => anyhow!("--ring: {reason}"),
            "timeout_s" => anyhow!("--timeout: {reason}"),
            other => anyhow!("--{}: {reason}", other.replace('_', "-")),
        },
        other => anyhow!(other),
    }
}

fn write_group(g: &store::RingGroup, out: &mut impl Write) -> Result<()> {
    writeln!(
        out,
        "group:{}  number {}",
        g.name,
        if g.number.is_empty() { "-" } else { &g.number }
    )?;
    writeln!(
        out,
        "  strategy {}, ring {} s, timeout {} s, no answer -> {}, class {}",
        g.spec.strategy.as_str(),
        g.spec.ring_s,
        g.spec.timeout_s,
        g.spec.no_answer,
        g.spec.cos
    )?;
    if !g.spec.cid_prefix.is_empty() {
        writeln!(out, "  caller-ID prefix \"{}: \"", g.spec.cid_prefix)?;
    }
    for m in &g.spec.members {
        match m.ring_s {
            0 => writeln!(out, "  member {}", m.number)?,
            s => writeln!(out, "  member {} ({s} s)", m.number)?,
        }
    }
    if !g.last_member.is_empty() {
        writeln!(out, "  tried last: {}", g.last_member)?;
    }
    Ok(())
}

/// Runs `denwa group ...`.
pub async fn group(cmd: GroupCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        GroupCmd::Add { name, flags } => {
            let mut spec = GroupSpec::default();
            apply(&mut spec, &flags)?;
            let number = flags.number.clone().unwrap_or_default();
            let g = store
                .put_group(tenant, &name, &number, &spec, true)
                .await
                .map_err(flag_error)?;
            writeln!(out, "ring group {} added", g.name)?;
            write_group(&g, out)?;
        }
        GroupCmd::Edit { name, flags } => {
            let Some(mut g) = store.group(tenant, &name).await? else {
                bail!("no ring group {name}");
            };
            apply(&mut g.spec, &flags)?;
            let number = flags.number.clone().unwrap_or(g.number.clone());
            let g = store
                .put_group(tenant, &name, &number, &g.spec, false)
                .await
                .map_err(flag_error)?;
            writeln!(out, "ring group {} changed", g.name)?;
            write_group(&g, out)?;
        }
        GroupCmd::List { json } => {
            let list = store.list_groups(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(
                    out,
                    "{:<20} {:<8} {:<16} {:<8} NO ANSWER",
                    "NAME", "NUMBER", "STRATEGY", "MEMBERS"
                )?;
                for g in list {
                    writeln!(
                        out,
                        "{:<20} {:<8} {:<16} {:<8} {}",
                        g.name,
                        g.number,
                        g.spec.strategy.as_str(),
                        g.spec.members.len(),
                        g.spec.no_answer
                    )?;
                }
            }
        }
        GroupCmd::Show { name, json } => {
            let Some(g) = store.group(tenant, &name).await? else {
                bail!("no ring group {name}");
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&g)?)?;
            } else {
                write_group(&g, out)?;
            }
        }
        GroupCmd::Remove { name } => {
            store
                .delete_group(tenant, &name)
                .await
                .map_err(flag_error)?;
            writeln!(out, "ring group {name} removed")?;
        }
    }
    Ok(())
}

/// `denwa forward` subcommands.
#[derive(Debug, Subcommand)]
pub enum ForwardCmd {
    /// Forward an extension's calls: always, busy, no_answer or unreachable.
    Set {
        /// Extension number
        ext: String,
        /// always, busy, no_answer or unreachable
        kind: String,
        /// Destination: a number (extension or outside), vm:N, ext:N, group:NAME, ivr:NAME
        destination: String,
        /// Ring time before a no-answer forward, seconds (0: the system's)
        #[arg(long, value_name = "S")]
        ring: Option<u32>,
    },
    /// Turn one forward off.
    Clear {
        /// Extension number
        ext: String,
        /// always, busy, no_answer or unreachable
        kind: String,
    },
    /// Follow-me: numbers rung after the desk (none: off).
    FollowMe {
        /// Extension number
        ext: String,
        /// Numbers (extensions or outside numbers), in order
        numbers: Vec<String>,
        /// Ring them at once instead of in turn
        #[arg(long)]
        together: bool,
        /// Ring time of the desk before follow-me starts, seconds (0: the system's)
        #[arg(long, value_name = "S")]
        desk: Option<u32>,
        /// Ring time of each follow-me step, seconds (0: the desk's)
        #[arg(long, value_name = "S")]
        ring: Option<u32>,
    },
    /// Show an extension's forwarding, follow-me and DND.
    Show {
        /// Extension number
        ext: String,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
}

/// `denwa dnd` arguments.
#[derive(Debug, Args)]
pub struct DndArgs {
    /// Extension number
    pub ext: String,
    /// on, off or toggle
    pub state: String,
    /// What DND does: busy (486) or voicemail
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
}

fn fwd_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => anyhow!("{field}: {reason}"),
        other => anyhow!(other),
    }
}

fn write_forwarding(ext: &str, f: &Forwarding, out: &mut impl Write) -> Result<()> {
    let show = |v: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    writeln!(out, "extension {ext}")?;
    writeln!(out, "  always      {}", show(&f.always))?;
    writeln!(out, "  busy        {}", show(&f.busy))?;
    writeln!(
        out,
        "  no answer   {} (after {} s)",
        show(&f.no_answer),
        f.no_answer_s
    )?;
    writeln!(out, "  unreachable {}", show(&f.unreachable))?;
    let mode = match f.dnd_mode {
        DndMode::Busy => "busy",
        DndMode::Voicemail => "voicemail",
    };
    writeln!(
        out,
        "  dnd         {} ({mode})",
        if f.dnd { "on" } else { "off" }
    )?;
    if !f.follow_me.is_empty() {
        let how = if f.follow_me_together {
            "together"
        } else {
            "in turn"
        };
        writeln!(out, "  follow-me   {} ({how})", f.follow_me.join(", "))?;
    }
    Ok(())
}

/// Runs `denwa forward ...`.
pub async fn forward(
    cmd: ForwardCmd,
    store: &Store,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    let kind = |k: &str| k.parse::<ForwardKind>().map_err(|e| anyhow!(e));
    let f = match cmd {
        ForwardCmd::Set {
            ext,
            kind: k,
            destination,
            ring,
        } => {
            let k = kind(&k)?;
            let mut f = store.forwarding(tenant, &ext).await.map_err(fwd_error)?;
            *f.get_mut(k) = destination.trim().to_string();
            if let Some(r) = ring {
                f.no_answer_s = r;
            }
            (
                ext.clone(),
                store
                    .put_forwarding(tenant, &ext, &f)
                    .await
                    .map_err(fwd_error)?,
            )
        }
        ForwardCmd::Clear { ext, kind: k } => {
            let f = store
                .set_forward(tenant, &ext, kind(&k)?, None)
                .await
                .map_err(fwd_error)?;
            (ext, f)
        }
        ForwardCmd::FollowMe {
            ext,
            numbers,
            together,
            desk,
            ring,
        } => {
            let mut f = store.forwarding(tenant, &ext).await.map_err(fwd_error)?;
            f.follow_me = numbers;
            f.follow_me_together = together;
            if let Some(d) = desk {
                f.no_answer_s = d;
            }
            if let Some(r) = ring {
                f.follow_me_s = r;
            }
            (
                ext.clone(),
                store
                    .put_forwarding(tenant, &ext, &f)
                    .await
                    .map_err(fwd_error)?,
            )
        }
        ForwardCmd::Show { ext, json } => {
            let f = store.forwarding(tenant, &ext).await.map_err(fwd_error)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&f)?)?;
                return Ok(());
            }
            (ext, f)
        }
    };
    write_forwarding(&f.0, &f.1, out)
}

/// Runs `denwa dnd EXT on|off|toggle`.
pub async fn dnd(a: DndArgs, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    let on = match a.state.trim().to_ascii_lowercase().as_str() {
        "on" => Some(true),
        "off" => Some(false),
        "toggle" => None,
        other => bail!("unknown DND state {other:?}: use on, off or toggle"),
    };
    if let Some(m) = &a.mode {
        let mut f = store.forwarding(tenant, &a.ext).await.map_err(fwd_error)?;
        f.dnd_mode = match m.trim().to_ascii_lowercase().as_str() {
            "busy" => DndMode::Busy,
            "voicemail" | "vm" => DndMode::Voicemail,
            other => bail!("--mode: unknown DND mode {other:?}: use busy or voicemail"),
        };
        store
            .put_forwarding(tenant, &a.ext, &f)
            .await
            .map_err(fwd_error)?;
    }
    let now = store.set_dnd(tenant, &a.ext, on).await.map_err(fwd_error)?;
    writeln!(
        out,
        "extension {}: DND {}",
        a.ext,
        if now { "on" } else { "off" }
    )?;
    Ok(())
}
