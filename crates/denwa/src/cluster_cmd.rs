//! `denwa serve --cluster FILE` (the active/standby pair: checks and wiring) and
//! `denwa cluster status|switchover`, which talk to the local clustered server through its
//! control socket `<data-dir>/cluster.sock` (owner-only; the role machine's state lives in the
//! running server, not in the database), and `denwa cluster init-db`, which sets up this node's
//! own PostgreSQL from the cluster file's `[postgres]` section (`pbx::cluster_pg`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Subcommand;
use pbx::cluster::ClusterConfig;
use web::license::{Licensing, Topology};

/// The control socket's file name in the data dir.
pub const CONTROL_SOCKET: &str = "cluster.sock";

/// `denwa cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Both nodes' roles, heartbeat paths, witness, application addresses, recent events.
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Hand the application address over to the standby (run on the active node); refused with
    /// the reason when the pair is not ready.
    Switchover,
    /// Initialise this node's own PostgreSQL from the cluster file's `[postgres]` section: on
    /// the first active node `initdb`, replication settings, the replication role, the PBX
    /// database (migrated) and the peer's slot; with `--standby`, a `pg_basebackup` clone of the
    /// active node that then streams from it. Leaves the server running; refuses a data
    /// directory that is not empty.
    InitDb {
        /// The cluster file (the one given to `serve --cluster`)
        #[arg(long)]
        cluster: PathBuf,
        /// Clone the peer (the active node, initialised first) instead of creating a database
        #[arg(long)]
        standby: bool,
    },
}

/// For `serve --cluster FILE`, before the store opens: when the file has a `[postgres]`
/// section, this node's own PostgreSQL is started (read-only, as the peer's standby, if it was
/// stopped; the role machine promotes it when this node becomes active).
pub async fn start_local_postgres(file: &Path) -> Result<()> {
    let c = ClusterConfig::load(file)?;
    if let Some(pg) = c.postgres {
        let node = pbx::cluster_pg::PgNode::new(pg)?;
        tokio::task::spawn_blocking(move || pbx::cluster_pg::ensure_started(&node)).await??;
    }
    Ok(())
}

async fn init_db(config: &Path, standby: bool, out: &mut impl Write) -> Result<bool> {
    let c = ClusterConfig::load(config)?;
    let Some(pg) = c.postgres else {
        bail!(
            "{} has no [postgres] section: this pair shares one PostgreSQL",
            config.display()
        );
    };
    let node = pbx::cluster_pg::PgNode::new(pg)?;
    let url = node.config().store_url();
    let n = node.clone();
    tokio::task::spawn_blocking(move || {
        if standby {
            n.init_standby()
        } else {
            n.init_primary()
        }
    })
    .await??;
    if standby {
        writeln!(
            out,
            "this node's PostgreSQL is a standby of the peer, streaming"
        )?;
    } else {
        let applied = store::Store::migrate(&url).await?;
        writeln!(
            out,
            "this node's PostgreSQL is the primary; PBX database created ({} migrations)",
            applied.len()
        )?;
    }
    writeln!(out, "serve with: --database-url '{url}'")?;
    Ok(true)
}

/// The control socket of the server on `data_dir`.
pub fn control_socket(data_dir: &Path) -> PathBuf {
    data_dir.join(CONTROL_SOCKET)
}

/// For `serve --cluster FILE`: the file, validated, and only under an `active-standby` licence.
pub fn prepare(file: &Path, licensing: &Licensing) -> Result<ClusterConfig> {
    let topology = licensing.entitlement().topology();
    if topology != Topology::ActiveStandby {
        bail!(
            "--cluster needs a licence for the active-standby topology; the licence in force \
             allows {topology} (install one with `denwa license install FILE`)"
        );
    }
    Ok(ClusterConfig::load(file)?)
}

/// SIP also listens on every application address (on each configured SIP port), bound with
/// `IP_FREEBIND`: the standby binds them without holding them, and answers there as soon as it
/// takes them over.
pub fn extend_listen(pcfg: &mut pbx::PbxConfig, c: &ClusterConfig) {
    let mut ports: Vec<u16> = pcfg.sip_listen.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    for ip in c.app_ips() {
        for p in &ports {
            let a = SocketAddr::new(ip, *p);
            if !pcfg.sip_listen.contains(&a) {
                pcfg.sip_listen.push(a);
            }
        }
    }
    pcfg.transport.freebind = c.app_ips();
}

/// Runs `denwa cluster ...` against the server on `data_dir`.
pub async fn run(cmd: ClusterCmd, data_dir: &Path, out: &mut impl Write) -> Result<bool> {
    let sock = control_socket(data_dir);
    match cmd {
        ClusterCmd::InitDb { cluster, standby } => init_db(&cluster, standby, out).await,
        ClusterCmd::Status { json } => {
            let v = pbx::cluster::control_request(&sock, "status").await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                write_status(&v, out)?;
            }
            Ok(true)
        }
        ClusterCmd::Switchover => {
            let v = pbx::cluster::control_request(&sock, "switchover").await?;
            let ok = v["ok"].as_bool().unwrap_or(false);
            let msg = v["message"].as_str().unwrap_or("");
            if ok {
                writeln!(out, "{msg}")?;
            } else {
                writeln!(out, "switchover refused: {msg}")?;
            }
            Ok(ok)
        }
    }
}

fn write_status(v: &serde_json::Value, out: &mut impl Write) -> Result<()> {
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let st = &v["status"];
    writeln!(out, "cluster   {}", s(&v["cluster"]))?;
    writeln!(
        out,
        "this node {}  role {}  epoch {}  holds the address: {}",
        s(&v["node"]),
        s(&st["role"]),
        s(&st["epoch"]),
        if v["holds_ip"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    )?;
    writeln!(
        out,
        "peer      {}  role {}",
        s(&v["peer"]),
        s(&st["peer_role"])
    )?;
    writeln!(
        out,
        "witness   reachable {}  lease held {}  authority {}",
        s(&st["witness_reachable"]),
        s(&st["lease_held"]),
        s(&st["authority"])
    )?;
    if v["db"].is_object() {
        writeln!(
            out,
            "database  {}  streaming {}  lag {} bytes  synchronous replication {}",
            s(&v["db"]["state"]),
            s(&v["db"]["streaming"]),
            s(&v["db"]["lag_bytes"]),
            s(&st["sync_replication"])
        )?;
    }
    if st["alone"] == true {
        writeln!(
            out,
            "running alone: the witness records that only this node has every acknowledged \
             write (the standby takes over automatically only once it has caught up)"
        )?;
    }
    for (i, p) in v["paths"].as_array().into_iter().flatten().enumerate() {
        writeln!(
            out,
            "path {i}    {} -> {}  {}",
            s(&p["local"]),
            s(&p["peer"]),
            if p["healthy"].as_bool() == Some(true) {
                "healthy"
            } else {
                "DEGRADED"
            }
        )?;
    }
    for a in v["app_addrs"].as_array().into_iter().flatten() {
        writeln!(out, "address   {}", s(a))?;
    }
    if let Some(b) = st["blocked"].as_str() {
        writeln!(out, "takeover blocked: {b}")?;
    }
    match v["switchover_refused"].as_str() {
        None => writeln!(out, "switchover: ready")?,
        Some(r) => writeln!(out, "switchover: not possible now ({r})")?,
    }
    let events = v["events"].as_array().cloned().unwrap_or_default();
    let skip = events.len().saturating_sub(10);
    for e in events.iter().skip(skip) {
        writeln!(
            out,
            "{}  {:<16} {:<11} {}",
            s(&e["at"]),
            s(&e["kind"]),
            s(&e["role"]),
            s(&e["reason"])
        )?;
    }
    Ok(())
}
