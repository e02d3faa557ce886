//! `denwa recording ...`: recording policies, settings, the recordings made, and the retention
//! sweep. Validation is the store's; the precedence rule is `engine::recording::decide`.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use engine::recording::{RecObject, RecPolicy};
use store::Store;
use store::recording::RecSettings;

/// `denwa recording` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecordingCmd {
    /// Set the recording policy of an extension, outbound route or trunk.
    Policy {
        /// extension, route or trunk
        kind: String,
        /// Extension number, route name or trunk name
        name: String,
        /// never, always or on_demand (*1 toggles during the call)
        policy: String,
    },
    /// List the policies that are not `never`.
    Policies {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Show or change the tenant's recording settings.
    Settings {
        /// Days recordings are kept (0: forever)
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<i64>,
        /// wav or opus (Ogg Opus, mono)
        #[arg(long)]
        format: Option<String>,
        /// mono or stereo (caller left, callee right; WAV only)
        #[arg(long)]
        layout: Option<String>,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// List recordings, newest first.
    List {
        /// Only this call's recordings
        #[arg(long)]
        call_id: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Delete recordings past the retention now (the server does it every hour).
    Sweep,
}

/// Runs `denwa recording ...`.
pub async fn run(
    cmd: RecordingCmd,
    store: &Store,
    data_dir: &Path,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        RecordingCmd::Policy { kind, name, policy } => {
            let k = RecObject::parse(&kind)
                .ok_or_else(|| anyhow!("kind must be extension, route or trunk"))?;
            let p = RecPolicy::parse(&policy)
                .ok_or_else(|| anyhow!("policy must be never, always or on_demand"))?;
            store.set_recording_policy(tenant, k, &name, p).await?;
            writeln!(out, "{} {name}: recording {}", k.as_str(), p.as_str())?;
        }
        RecordingCmd::Policies { json } => {
            let rows = store.recording_policies(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(out, "{:<10} {:<24} POLICY", "KIND", "NAME")?;
                for r in rows {
                    writeln!(
                        out,
                        "{:<10} {:<24} {}",
                        r.kind.as_str(),
                        r.name,
                        r.policy.as_str()
                    )?;
                }
            }
        }
        RecordingCmd::Settings {
            retention_days,
            format,
            layout,
            json,
        } => {
            let mut s = store.recording_settings(tenant).await?;
            let change = retention_days.is_some() || format.is_some() || layout.is_some();
            if let Some(d) = retention_days {
                s.retention_days = d;
            }
            if let Some(f) = format {
                s.format = f;
            }
            if let Some(l) = layout {
                s.layout = l;
            }
            if change {
                store
                    .set_recording_settings(tenant, &s)
                    .await
                    .map_err(|e| match e {
                        store::Error::Invalid { field, reason } => {
                            anyhow!("--{}: {reason}", field.replace('_', "-"))
                        }
                        other => anyhow!(other),
                    })?;
            }
            print_settings(out, &s, json)?;
        }
        RecordingCmd::List {
            call_id,
            limit,
            json,
        } => {
            let rows = store
                .list_recordings(tenant, call_id.as_deref(), limit)
                .await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:<6} {:<20} {:<10} {:<10} {:<32} PATH",
                    "ID", "STARTED", "LENGTH", "STATUS", "CALL-ID"
                )?;
                for r in rows {
                    writeln!(
                        out,
                        "{:<6} {:<20} {:<10} {:<10} {:<32} {}",
                        r.id,
                        r.started_at.format("%Y-%m-%d %H:%M:%S"),
                        format!("{:.1}s", r.duration_ms as f64 / 1000.0),
                        r.status,
                        r.call_id,
                        r.path
                    )?;
                }
            }
        }
        RecordingCmd::Sweep => {
            let n = pbx::recording::sweep_expired(store, data_dir).await;
            writeln!(out, "{n} recording(s) past their retention deleted")?;
        }
    }
    Ok(())
}

fn print_settings(out: &mut impl Write, s: &RecSettings, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(s)?)?;
    } else {
        writeln!(
            out,
            "retention_days {}\nformat {}\nlayout {}",
            s.retention_days, s.format, s.layout
        )?;
    }
    Ok(())
}
