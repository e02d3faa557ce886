//! `denwa license show|install`, the licence checks every CLI change goes through, and the
//! licensing `serve` runs with (node id, installed file, reload while running).
//!
//! Where things are: `<data-dir>/node-id` (made on first use) and `<data-dir>/license.txt` (the
//! installed file, byte for byte). Both are node-local: not in the database, not in backups.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use web::license::{self as lic, Licensing, LimitKind, Status};

use crate::cli::{
    BackupCmd, Command, DidCmd, ExtensionCmd, OutboundCmd, RouteCmd, SettingCmd, TrunkCmd,
};
use crate::config::Config;
use crate::ivr_cmd::IvrCmd;

/// `denwa license ...`
#[derive(Debug, Subcommand)]
pub enum LicenseCmd {
    /// What is in force: licence, topology, limits with current usage, validity, this node's id.
    Show {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Verify a licence file for this node and install it (a refused file changes nothing).
    Install {
        /// The licence file from the vendor
        file: PathBuf,
    },
}

/// This node's licensing from its data dir (creates the node id on first use).
pub fn open(cfg: &Config) -> Result<Licensing> {
    Licensing::open(&cfg.data_dir, lic::dev_mode_from_env())
        .map_err(anyhow::Error::msg)
        .context("licence")
}

/// For `serve`: opens the licensing, says loudly when in dev mode, and re-reads the licence
/// file every few seconds so `denwa license install` applies without a restart.
pub fn start(cfg: &Config) -> Result<Licensing> {
    let l = open(cfg)?;
    if l.dev_mode() {
        tracing::warn!("{}", lic::DEV_MODE_WARNING);
        eprintln!("{}", lic::DEV_MODE_WARNING);
    }
    let now = Utc::now();
    tracing::info!(node_id = l.node_id(), licence = %l.entitlement().summary(now), "licence in force");
    if let Status::ExpiresSoon { .. } | Status::Expired { .. } = l.entitlement().status(now) {
        tracing::warn!(status = %l.entitlement().status(now), "licence");
    }
    let watch = l.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(lic::RELOAD_INTERVAL);
        loop {
            tick.tick().await;
            let w = watch.clone();
            // A stat (and, rarely, a small read): off the async threads all the same.
            let _ = tokio::task::spawn_blocking(move || w.reload_if_changed(Utc::now())).await;
        }
    });
    Ok(l)
}

/// What a command does to configuration: nothing, a change, or creating one of a limited kind.
enum Effect {
    Read,
    Change,
    Create(LimitKind),
}

fn effect(cmd: &Command) -> Effect {
    use Effect::*;
    match cmd {
        Command::Extension(ExtensionCmd::Add { .. }) => Create(LimitKind::Extensions),
        Command::Trunk(TrunkCmd::Add { .. }) => Create(LimitKind::Trunks),
        Command::Extension(ExtensionCmd::List { .. })
        | Command::Trunk(TrunkCmd::List { .. } | TrunkCmd::Show { .. } | TrunkCmd::Status { .. })
        | Command::Route(RouteCmd::List { .. } | RouteCmd::Test { .. })
        | Command::Did(DidCmd::List { .. })
        | Command::Ivr(IvrCmd::List { .. } | IvrCmd::Show { .. })
        | Command::Conf(crate::conf_cmd::ConfCmd::List { .. })
        | Command::Group(
            crate::group_cmd::GroupCmd::List { .. } | crate::group_cmd::GroupCmd::Show { .. },
        )
        | Command::Forward(crate::group_cmd::ForwardCmd::Show { .. })
        | Command::Features(crate::codes_cmd::FeaturesCmd::List { .. })
        | Command::Timecond(
            crate::codes_cmd::TimecondCmd::List { .. }
            | crate::codes_cmd::TimecondCmd::Calendar(crate::codes_cmd::CalendarCmd::Show { .. }),
        )
        | Command::Pickup(crate::codes_cmd::PickupCmd::List)
        | Command::Park(
            crate::park_cmd::ParkCmd::Show { .. } | crate::park_cmd::ParkCmd::List { .. },
        )
        | Command::Page(crate::page_cmd::PageCmd::List { .. })
        | Command::Voicemail(_)
        | Command::Recording(
            crate::recording_cmd::RecordingCmd::List { .. }
            | crate::recording_cmd::RecordingCmd::Policies { .. }
            | crate::recording_cmd::RecordingCmd::Sweep,
        )
        | Command::Outbound(OutboundCmd::Show { .. })
        | Command::Setting(SettingCmd::List { .. })
        | Command::Backup(
            BackupCmd::Create { .. }
            | BackupCmd::Verify { .. }
            | BackupCmd::Status { .. }
            | BackupCmd::Generations { .. }
            | BackupCmd::Received { .. }
            | BackupCmd::Peers { .. }
            | BackupCmd::Ship,
        )
        | Command::Prompt(crate::prompt_cmd::PromptCmd::List { .. })
        | Command::Prompt(crate::prompt_cmd::PromptCmd::Custom(
            crate::custom_prompt_cmd::CustomCmd::List { .. },
        ))
        | Command::Moh(crate::prompt_cmd::MohCmd::List { .. }) => Read,
        Command::Extension(_)
        | Command::Trunk(_)
        | Command::Route(_)
        | Command::Did(_)
        | Command::Ivr(_)
        | Command::Conf(_)
        | Command::Group(_)
        | Command::Page(_)
        | Command::Forward(_)
        | Command::Dnd(_)
        | Command::Recording(_)
        | Command::Features(_)
        | Command::Timecond(_)
        | Command::Pickup(_)
        | Command::Park(_)
        | Command::Outbound(_)
        | Command::Setting(_)
        | Command::Backup(_)
        | Command::Prompt(_)
        | Command::Moh(_) => Change,
        // Accounts stay manageable after expiry (someone must install the new licence); the
        // rest changes no configuration.
        Command::Admin(_)
        | Command::License(_)
        | Command::Report(_)
        | Command::Registration(_)
        | Command::Cdr(_)
        | Command::Serve(_)
        | Command::Cluster(_)
        | Command::Db(_)
        | Command::Sip(_) => Read,
    }
}

/// Refuses a configuration change after expiry, and a creation past a limit, with the licence's
/// message (which names the limit).
pub async fn guard(cmd: &Command, store: &store::Store, l: &Licensing) -> Result<()> {
    let now = Utc::now();
    match effect(cmd) {
        Effect::Read => Ok(()),
        Effect::Change => Ok(l.check_writable(now)?),
        Effect::Create(kind) => {
            let usage = lic::usage(store).await?;
            let current = usage.get(kind).unwrap_or(0);
            Ok(lic::check_create(&l.entitlement(), kind, current, now)?)
        }
    }
}

fn days_left(until: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let secs = (until - now).num_seconds();
    if secs <= 0 {
        0
    } else {
        (secs + 86_399) / 86_400
    }
}

/// Runs `denwa license ...`.
pub async fn run(
    cmd: LicenseCmd,
    store: &store::Store,
    l: &Licensing,
    out: &mut impl Write,
) -> Result<()> {
    let now = Utc::now();
    match cmd {
        LicenseCmd::Install { file } => {
            let text =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let v = l.install(&text, now).with_context(|| {
                format!("{} was not installed; nothing changed", file.display())
            })?;
            writeln!(
                out,
                "licence {} for {} installed: {} ({}), valid until {}{}",
                v.license.id,
                v.license.customer,
                v.license.topology,
                v.license.kind,
                v.license
                    .valid_until
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if v.test_key {
                    " [signed by the TEST key: dev mode]"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "a running denwa serve on this node applies it within {} s",
                lic::RELOAD_INTERVAL.as_secs()
            )?;
        }
        LicenseCmd::Show { json } => {
            let view = l.view(lic::usage(store).await?, now);
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
                return Ok(());
            }
            let ent = l.entitlement();
            if l.dev_mode() {
                writeln!(out, "{}", lic::DEV_MODE_WARNING)?;
            }
            writeln!(out, "{}", ent.summary(now))?;
            if let Some(p) = &view.problem {
                writeln!(out, "problem:            {}", p.message)?;
            }
            writeln!(out, "node id:            {}", l.node_id())?;
            match ent.license() {
                None => writeln!(
                    out,
                    "licence:            none installed (free allowance: {} extensions, {} simultaneous calls, {} tenant, {} trunks); send the node id to the vendor for a licence",
                    lic::FREE_EXTENSIONS,
                    lic::FREE_CONCURRENT_CALLS,
                    lic::FREE_TENANTS,
                    lic::FREE_TRUNKS
                )?,
                Some(v) => {
                    let t = &v.license;
                    writeln!(out, "licence:            {} ({})", t.id, t.kind)?;
                    writeln!(out, "customer:           {}", t.customer)?;
                    writeln!(
                        out,
                        "valid:              {} to {} ({} days left)",
                        t.valid_from
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        t.valid_until
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        days_left(t.valid_until, now)
                    )?;
                    writeln!(out, "status:             {}", ent.status(now))?;
                    writeln!(
                        out,
                        "nodes:              {}",
                        if t.nodes.is_empty() {
                            "any (evaluation)".to_string()
                        } else {
                            t.nodes.join(", ")
                        }
                    )?;
                    if v.test_key {
                        writeln!(out, "signed by:          the TEST key (dev mode only)")?;
                    }
                }
            }
            writeln!(out, "topology:           {}", ent.topology())?;
            for k in LimitKind::ALL {
                writeln!(out, "{:<19} {}", k.plural(), view.usage.against(k, &ent))?;
            }
            let features = ent.features();
            if !features.is_empty() {
                let f: Vec<&str> = features.iter().map(String::as_str).collect();
                writeln!(out, "features:           {}", f.join(", "))?;
            }
            if let Some(p) = l.path() {
                writeln!(out, "file:               {}", p.display())?;
            }
        }
    }
    Ok(())
}
