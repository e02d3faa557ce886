//! `denwa conf ...`: conference rooms. Validation is the store's; the PIN is never printed.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use apps::conf::RoomSpec;
use clap::{Args, Subcommand};
use store::Store;

/// `denwa conf` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfCmd {
    /// Add a room callers reach by dialling NUMBER (or through conf:NUMBER).
    Add {
        /// Room number
        number: String,
        #[command(flatten)]
        flags: ConfFlags,
    },
    /// Change a room's settings.
    Edit {
        /// Room number
        number: String,
        #[command(flatten)]
        flags: ConfFlags,
    },
    /// List rooms.
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Remove a room (refused while a DID or an IVR menu sends callers to it).
    Remove {
        /// Room number
        number: String,
    },
}

/// A room's settings as flags.
#[derive(Debug, Args, Default)]
pub struct ConfFlags {
    /// Name shown in the panel
    #[arg(long)]
    pub name: Option<String>,
    /// PIN callers must enter (4-12 digits); "" for none
    #[arg(long)]
    pub pin: Option<String>,
    /// Most participants at once (2-200, default 20)
    #[arg(long, value_name = "N")]
    pub max_participants: Option<u32>,
    /// Participants join muted until they press * (true/false)
    #[arg(long, value_name = "BOOL")]
    pub join_muted: Option<bool>,
    /// A tone when someone joins or leaves (true/false, default true)
    #[arg(long, value_name = "BOOL")]
    pub join_tones: Option<bool>,
}

fn apply(spec: &mut RoomSpec, f: &ConfFlags) {
    if let Some(n) = &f.name {
        spec.name = n.clone();
    }
    if let Some(p) = &f.pin {
        spec.pin = p.clone();
    }
    if let Some(m) = f.max_participants {
        spec.max_participants = m;
    }
    if let Some(b) = f.join_muted {
        spec.join_muted = b;
    }
    if let Some(b) = f.join_tones {
        spec.join_tones = b;
    }
}

fn flag_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => match field {
            "number" => anyhow!("{reason}"),
            other => anyhow!("--{}: {reason}", other.replace('_', "-")),
        },
        other => anyhow!(other),
    }
}

/// Runs `denwa conf ...`.
pub async fn run(cmd: ConfCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        ConfCmd::Add { number, flags } => {
            let mut spec = RoomSpec::default();
            apply(&mut spec, &flags);
            let r = store
                .put_conf(tenant, &number, &spec, true)
                .await
                .map_err(flag_error)?;
            writeln!(out, "conference room {} added", r.number)?;
        }
        ConfCmd::Edit { number, flags } => {
            let Some(mut r) = store
                .list_confs(tenant)
                .await?
                .into_iter()
                .find(|r| r.number == number)
            else {
                bail!("no conference room {number}");
            };
            apply(&mut r.spec, &flags);
            store
                .put_conf(tenant, &number, &r.spec, false)
                .await
                .map_err(flag_error)?;
            writeln!(out, "conference room {number} changed")?;
        }
        ConfCmd::List { json } => {
            let list = store.list_confs(tenant).await?;
            if json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|r| {
                        serde_json::json!({ "number": r.number, "name": r.spec.name,
                            "has_pin": !r.spec.pin.is_empty(), "max_participants": r.spec.max_participants,
                            "join_muted": r.spec.join_muted, "join_tones": r.spec.join_tones })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:<10} {:<24} {:<5} {:<5} MUTED",
                    "NUMBER", "NAME", "PIN", "MAX"
                )?;
                for r in list {
                    writeln!(
                        out,
                        "{:<10} {:<24} {:<5} {:<5} {}",
                        r.number,
                        r.spec.name,
                        if r.spec.pin.is_empty() { "no" } else { "yes" },
                        r.spec.max_participants,
                        r.spec.join_muted
                    )?;
                }
            }
        }
        ConfCmd::Remove { number } => {
            store
                .delete_conf(tenant, &number)
                .await
                .map_err(flag_error)?;
            writeln!(out, "conference room {number} removed")?;
        }
    }
    Ok(())
}
