//! `denwa backup pair|unpair|ship|schedule|status|generations|restore-remote` (the PBX side)
//! and `denwa backup pair-code|received|keep|peers|revoke` (the backup server side), the
//! licence gate of the backup role, and starting the backup server in `denwa serve`.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Result, bail};
use store::Store;
use web::license::Licensing;

use crate::cli::BackupCmd;
use crate::config::Config;

/// Why the backup role is not allowed by the licence in force, if it is not.
pub fn refusal(l: &Licensing) -> Option<String> {
    backup::topology_refusal(l.entitlement().topology())
}

/// The licence gate the backup server and the scheduler consult on every use.
pub fn gate(l: &Licensing) -> backup::Gate {
    let l = l.clone();
    std::sync::Arc::new(move || refusal(&l).map_or(Ok(()), Err))
}

/// Starts the backup server's HTTPS listener.
pub async fn start_server(
    addr: SocketAddr,
    cfg: &Config,
    store: &Store,
    gate: backup::Gate,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let (bound, fp, task) = backup::server::start(
        addr,
        backup::server::Config {
            store: store.clone(),
            dir: backup::server::dir_in(&cfg.data_dir),
            name: cfg.node_name.clone(),
            gate: gate.clone(),
            max_upload: backup::server::DEFAULT_MAX_UPLOAD,
        },
    )
    .await?;
    tracing::info!(listen = %bound, fingerprint = %fp, "backup server listening");
    if let Err(why) = gate() {
        tracing::warn!(reason = %why, "backup server: pairing and uploads are refused");
    }
    Ok((bound, task))
}

fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Runs a `denwa backup ...` subcommand other than create/restore/verify.
pub async fn run(
    cmd: BackupCmd,
    cfg: &Config,
    store: &Store,
    l: &Licensing,
    out: &mut impl Write,
) -> Result<()> {
    let need_licence = || match refusal(l) {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    };
    match cmd {
        BackupCmd::Pair { address, code } => {
            need_licence()?;
            let name =
                backup::client::pair(store, &address, &code, l.node_id(), &cfg.node_name).await?;
            let st = store.ship_state().await?;
            writeln!(
                out,
                "paired with backup server {name} at {} (certificate {})",
                st.url, st.fingerprint
            )?;
        }
        BackupCmd::Unpair => {
            store.clear_ship_pairing().await?;
            writeln!(out, "pairing forgotten")?;
        }
        BackupCmd::Ship => {
            need_licence()?;
            let g = backup::client::ship(store, &cfg.data_dir, &cfg.node_name).await?;
            writeln!(
                out,
                "backup shipped: generation {} ({} bytes) {}",
                g.id, g.size, g.detail
            )?;
        }
        BackupCmd::Schedule { at } => {
            let at = if at.trim().eq_ignore_ascii_case("off") {
                String::new()
            } else {
                at.trim().to_string()
            };
            backup::schedule::parse_daily_at(&at).map_err(anyhow::Error::msg)?;
            store.set_ship_schedule(&at).await?;
            if at.is_empty() {
                writeln!(out, "backups are shipped on demand only")?;
            } else {
                writeln!(out, "backups are shipped daily at {at} (reports.timezone)")?;
            }
        }
        BackupCmd::Status { json } => {
            let st = store.ship_state().await?;
            if json {
                let mut v = serde_json::to_value(&st)?;
                v["paired"] = serde_json::Value::from(st.paired());
                v["licence_refusal"] = serde_json::json!(refusal(l));
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                if let Some(why) = refusal(l) {
                    writeln!(out, "NOTE: {why}")?;
                }
                if st.paired() {
                    writeln!(
                        out,
                        "paired with {} at {} since {}",
                        st.server_name,
                        st.url,
                        ts(st.paired_at)
                    )?;
                } else {
                    writeln!(out, "not paired with a backup server")?;
                }
                writeln!(
                    out,
                    "schedule: {}",
                    if st.daily_at.is_empty() {
                        "on demand only".to_string()
                    } else {
                        format!("daily at {}", st.daily_at)
                    }
                )?;
                writeln!(
                    out,
                    "last success: {} ({} bytes)",
                    ts(st.last_success_at),
                    st.last_size
                )?;
                if st.failures > 0 {
                    writeln!(
                        out,
                        "FAILING: {} attempts since the last success; last error: {}",
                        st.failures, st.last_error
                    )?;
                }
            }
        }
        BackupCmd::Generations { json } => {
            let g = backup::client::generations(store).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&g)?)?;
            } else {
                writeln!(
                    out,
                    "{:>6}  {:<25} {:<16} {:>12}  DETAIL",
                    "ID", "TAKEN", "FROM", "BYTES"
                )?;
                for x in g {
                    writeln!(
                        out,
                        "{:>6}  {:<25} {:<16} {:>12}  {}",
                        x.id,
                        x.created_at.as_deref().unwrap_or("-"),
                        x.source,
                        x.size,
                        x.detail
                    )?;
                }
            }
        }
        BackupCmd::RestoreRemote { id } => {
            need_licence()?;
            let m = backup::client::restore_remote(store, &cfg.data_dir, id).await?;
            writeln!(
                out,
                "restored generation {id}: backup of {} (schema {}, {} members)",
                m.created_at,
                m.schema_version,
                m.entries.len()
            )?;
        }
        BackupCmd::PairCode => {
            need_licence()?;
            let (code, until) = backup::server::create_code(store).await?;
            writeln!(
                out,
                "pairing code: {code} (single use, valid until {} UTC)",
                ts(Some(until))
            )?;
        }
        BackupCmd::Received { json } => {
            let g = store.list_generations(false, 1000).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&g)?)?;
            } else {
                writeln!(
                    out,
                    "{:>6}  {:<19} {:<16} {:>12} {:<8}  DETAIL",
                    "ID", "RECEIVED", "FROM", "BYTES", "RESULT"
                )?;
                for x in g {
                    writeln!(
                        out,
                        "{:>6}  {:<19} {:<16} {:>12} {:<8}  {}",
                        x.id,
                        ts(Some(x.received_at)),
                        x.source,
                        x.size,
                        x.status,
                        x.detail
                    )?;
                }
            }
        }
        BackupCmd::Keep { generations } => {
            store.set_backup_keep(generations).await?;
            writeln!(out, "keeping the newest {generations} generations")?;
        }
        BackupCmd::Peers { json } => {
            let p = store.list_peers().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&p)?)?;
            } else {
                for x in p {
                    writeln!(
                        out,
                        "{:>4}  {:<20} {:<28} paired {}  seen {}{}",
                        x.id,
                        x.name,
                        x.node_id,
                        ts(Some(x.paired_at)),
                        ts(x.last_seen_at),
                        if x.revoked { "  REVOKED" } else { "" }
                    )?;
                }
            }
        }
        BackupCmd::Revoke { id } => {
            store.revoke_peer(id).await?;
            writeln!(out, "paired node {id} revoked")?;
        }
        BackupCmd::Create { .. } | BackupCmd::Restore { .. } | BackupCmd::Verify { .. } => {}
    }
    Ok(())
}
