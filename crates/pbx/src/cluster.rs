//! The active/standby driver: the tokio I/O around the sans-IO role machine [`ha::Node`].
//!
//! What it does: sends and receives authenticated heartbeats on every configured path (UDP),
//! runs the witness lease's SQL (`ha::witness`) on the witness's PostgreSQL, runs the optional
//! fencing command, measures local health every second (the store answers a query, the SIP core
//! runs), and moves the application addresses: `TakeIp` → load the registrations from the
//! database into the SIP core, `ip addr add`, then `arping -U` (IPv4) or an unsolicited
//! neighbour advertisement (IPv6) at once and again after 1 s; `ReleaseIp` → `ip addr del`,
//! complete before the next output (a graceful one parks the address on `lo` first and keeps
//! relaying the released calls' media for a drain: make-before-break, `crate::drain`). A
//! release guard process removes the addresses when this process dies or freezes. Events are kept in a bounded ring with wall-clock times and logged;
//! a [`ClusterReport`] snapshot is shared with the panel and API.
//!
//! With a `[postgres]` section each node runs its own PostgreSQL (`crate::cluster_pg`):
//! `PromoteDb` promotes it, `DemoteDb` re-attaches it to the peer (pg_rewind), synchronous
//! replication follows `SetSyncReplication`, and the health fed to the role machine is the real
//! one (primary/replica, streaming, lag); a node that sees the peer active while its own
//! database does not stream from it re-attaches by itself. Without it both nodes share one
//! PostgreSQL, reported as streaming with no lag while it answers.
//!
//! Epochs: the epoch of each takeover is stamped into the database and every store write is
//! fenced by it (`crate::cluster_epoch`, `store::fence`).
//!
//! Calls in progress: `TakeIp` continues the peer's stored calls (`Pbx::reload_live_calls`,
//! relay ports re-bound before the address comes up); `ReleaseIp` drops this node's silently
//! (`Pbx::forget_live_calls`). See `engine::live_calls`.
//!
//! What it is not (yet): link-state monitoring of the paths (silence alone degrades a path).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};
use ha::report::{ClusterReport, EventRecord, PathReport};
use ha::{
    Command, DbHealth, Epoch, Heartbeat, Input, LeaseAnswer, LeaseRequest, LocalHealth, Node,
    NodeId, Output, PathId, Role, WitnessReply,
};
use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::Pbx;

/// Events kept for the panel (newest last).
pub const EVENT_HISTORY: usize = 200;
/// Inputs queued for the role machine (heartbeats beyond it are dropped: the next comes soon).
const INPUT_QUEUE: usize = 256;
/// Lease requests queued for the witness (one is in flight at a time; more is a bug).
const WITNESS_QUEUE: usize = 8;
/// Longest heartbeat path list.
const MAX_PATHS: usize = 8;
/// Longest application address list (segments).
const MAX_ADDRESSES: usize = 16;
/// How long `ip` may take: the driver waits for it (a release must be complete before the next
/// heartbeat), so it is kept well under `dead_after`.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// How long `arping` may take (it lingers about a second after sending; it runs aside).
const ARPING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long loading the registrations may delay a takeover.
const RELOAD_TIMEOUT: Duration = Duration::from_millis(500);
/// How long `DemoteDb` waits inline for the local PostgreSQL to stop (heartbeats pause
/// meanwhile: if it takes longer than `dead_after` the peer takes over, as it is about to anyway).
const PG_STOP_INLINE: Duration = Duration::from_secs(3);
/// Local health is measured this often.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// Local health while a switchover waits for the standby to catch up.
const HEALTH_SWITCHING: Duration = Duration::from_millis(100);

/// One heartbeat path: this node's UDP address and the peer's.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// Local `ADDR:PORT` (bound).
    pub local: SocketAddr,
    /// The peer's `ADDR:PORT` (heartbeats go there; only datagrams from it are accepted).
    pub peer: SocketAddr,
}

/// One application address (per segment that carries phones).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppAddress {
    /// The address phones use.
    pub addr: IpAddr,
    /// Its prefix length on the segment.
    pub prefix: u8,
    /// The interface it goes on.
    pub iface: String,
}

impl AppAddress {
    /// `ADDR/PREFIX dev IFACE`.
    pub fn describe(&self) -> String {
        format!("{}/{} dev {}", self.addr, self.prefix, self.iface)
    }
}

/// The `--cluster FILE` settings (TOML).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The pair's name: the witness's lease row.
    pub cluster: String,
    /// This node's id (1..2^31).
    pub node_id: u32,
    /// The peer's id.
    pub peer_id: u32,
    /// The node that wins a cold start of both (default: the lower id).
    #[serde(default)]
    pub preferred: Option<u32>,
    /// Heartbeat HMAC key, hex, at least 16 bytes; the same on both nodes.
    pub heartbeat_key: String,
    /// `postgres://…` URL of the witness's database (the lease row lives there).
    pub witness_url: String,
    /// Heartbeat paths (at least 2: the service network and a dedicated link).
    pub paths: Vec<PathConfig>,
    /// Application addresses this pair moves.
    pub addresses: Vec<AppAddress>,
    /// Fencing command (argv; the peer id is in `DENWA_FENCE_PEER`); exit 0 = the peer is off.
    #[serde(default)]
    pub fence_command: Option<Vec<String>>,
    /// Heartbeat interval override, ms (100).
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Peer-dead time override, ms (600).
    #[serde(default)]
    pub dead_after_ms: Option<u64>,
    /// Lease duration override, ms (800).
    #[serde(default)]
    pub lease_ms: Option<u64>,
    /// Hold-down after a role change override, ms (10000).
    #[serde(default)]
    pub hold_down_ms: Option<u64>,
    /// Make-before-break drain of a graceful release, ms (2000; 0: remove the address at
    /// once). See `crate::drain`.
    #[serde(default)]
    pub drain_ms: Option<u64>,
    /// This node's own PostgreSQL, replicated with the peer's (`crate::cluster_pg`). Without it
    /// both nodes share one PostgreSQL (promotion and replication are no-ops).
    #[serde(default)]
    pub postgres: Option<crate::cluster_pg::PgPairConfig>,
    /// The node's data dir (not in the file; `denwa serve` sets it): the start-up clean-up
    /// (`crate::stale`) runs on it each time this node becomes active.
    #[serde(skip)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Why a cluster file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterConfigError {
    /// Unreadable file.
    #[error("cannot read the cluster file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML, or wrong fields.
    #[error("cluster file: {0}")]
    Syntax(String),
    /// A value is wrong.
    #[error("cluster file: {0}")]
    Invalid(String),
}

impl ClusterConfig {
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ClusterConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(m) = std::fs::metadata(path)
                && m.permissions().mode() & 0o004 != 0
            {
                tracing::warn!(file = %path.display(),
                    "the cluster file (with the heartbeat key) is readable by every user: chmod 600 it");
            }
        }
        ClusterConfig::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<ClusterConfig, ClusterConfigError> {
        let c: ClusterConfig =
            toml::from_str(text).map_err(|e| ClusterConfigError::Syntax(e.message().into()))?;
        c.validate()?;
        Ok(c)
    }

    /// The heartbeat key's bytes.
    pub fn key(&self) -> Result<Vec<u8>, ClusterConfigError> {
        let k = hex::decode(self.heartbeat_key.trim())
            .map_err(|e| ClusterConfigError::Invalid(format!("heartbeat_key is not hex: {e}")))?;
        if k.len() < 16 {
            return Err(ClusterConfigError::Invalid(format!(
                "heartbeat_key must be at least 16 bytes (32 hex digits), got {}",
                k.len()
            )));
        }
        if k.len() > 64 {
            return Err(ClusterConfigError::Invalid(
                "heartbeat_key must be at most 64 bytes".into(),
            ));
        }
        Ok(k)
    }

    /// Checks every value; the role machine's own rules included.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        let bad = |m: String| Err(ClusterConfigError::Invalid(m));
        if self.cluster.is_empty()
            || self.cluster.len() > 64
            || !self
                .cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad("cluster must be 1-64 characters of letters, digits, - _ .".into());
        }
        for (name, id) in [("node_id", self.node_id), ("peer_id", self.peer_id)] {
            if id == 0 || i32::try_from(id).is_err() {
                return bad(format!("{name} must be between 1 and 2147483647, got {id}"));
            }
        }
        if let Some(p) = self.preferred
            && p != self.node_id
            && p != self.peer_id
        {
            return bad(format!(
                "preferred ({p}) must be node_id ({}) or peer_id ({})",
                self.node_id, self.peer_id
            ));
        }
        self.key()?;
        if !(self.witness_url.starts_with("postgres://")
            || self.witness_url.starts_with("postgresql://"))
        {
            return bad("witness_url must be a postgres:// URL".into());
        }
        if self.paths.len() < 2 {
            return bad(format!(
                "at least 2 heartbeat paths are required ([[paths]] local/peer), got {}",
                self.paths.len()
            ));
        }
        if self.paths.len() > MAX_PATHS {
            return bad(format!("at most {MAX_PATHS} heartbeat paths"));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if p.local.port() == 0 || p.peer.port() == 0 {
                return bad(format!("paths[{i}]: ports must not be 0"));
            }
            if p.local.ip().is_unspecified() || p.peer.ip().is_unspecified() {
                return bad(format!(
                    "paths[{i}]: local and peer must be concrete addresses, not wildcards"
                ));
            }
            if p.local.is_ipv4() != p.peer.is_ipv4() {
                return bad(format!(
                    "paths[{i}]: local and peer are of different families"
                ));
            }
            if self.paths[..i].iter().any(|q| q.local == p.local) {
                return bad(format!("paths[{i}]: local {} is used twice", p.local));
            }
        }
        if self.addresses.is_empty() {
            return bad(
                "at least one application address ([[addresses]] addr/prefix/iface) is required"
                    .into(),
            );
        }
        if self.addresses.len() > MAX_ADDRESSES {
            return bad(format!("at most {MAX_ADDRESSES} application addresses"));
        }
        for (i, a) in self.addresses.iter().enumerate() {
            let max = if a.addr.is_ipv4() { 32 } else { 128 };
            if a.prefix == 0 || a.prefix > max {
                return bad(format!(
                    "addresses[{i}]: prefix must be 1-{max} for {}, got {}",
                    a.addr, a.prefix
                ));
            }
            if a.addr.is_unspecified() || a.addr.is_loopback() || a.addr.is_multicast() {
                return bad(format!(
                    "addresses[{i}]: {} cannot be an application address",
                    a.addr
                ));
            }
            if a.iface.is_empty()
                || a.iface.len() > 15
                || !a
                    .iface
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            {
                return bad(format!(
                    "addresses[{i}]: iface must be an interface name (1-15 characters), got {:?}",
                    a.iface
                ));
            }
            if self.addresses[..i].iter().any(|b| b.addr == a.addr) {
                return bad(format!("addresses[{i}]: {} is listed twice", a.addr));
            }
        }
        if let Some(f) = &self.fence_command
            && f.first().is_none_or(|p| p.trim().is_empty())
        {
            return bad("fence_command must name a program (argv list)".into());
        }
        if let Some(pg) = &self.postgres {
            pg.validate().map_err(ClusterConfigError::Invalid)?;
        }
        let drain = self.drain();
        if drain > crate::drain::MAX_DRAIN {
            return bad(format!(
                "drain_ms must be at most {} ms, got {}",
                crate::drain::MAX_DRAIN.as_millis(),
                drain.as_millis()
            ));
        }
        let hold_down = self.ha_config(0).hold_down;
        if drain >= hold_down {
            return bad(format!(
                "drain_ms ({} ms) must be shorter than the hold-down ({} ms)",
                drain.as_millis(),
                hold_down.as_millis()
            ));
        }
        self.ha_config(0)
            .validate()
            .map_err(|e| ClusterConfigError::Invalid(e.to_string()))
    }

    /// The role machine's settings for this run.
    pub fn ha_config(&self, incarnation: u64) -> ha::Config {
        let mut c = ha::Config::new(NodeId(self.node_id), NodeId(self.peer_id));
        c.preferred = self.preferred.map(NodeId);
        c.incarnation = incarnation;
        c.paths = u8::try_from(self.paths.len()).unwrap_or(u8::MAX);
        let ms = Duration::from_millis;
        if let Some(v) = self.interval_ms {
            c.interval = ms(v);
            // Degraded after three missed heartbeats, as with the defaults.
            c.path_degraded_after = ms(v.saturating_mul(3));
        }
        if let Some(v) = self.dead_after_ms {
            c.dead_after = ms(v);
        }
        if let Some(v) = self.lease_ms {
            c.lease = ms(v);
        }
        if let Some(v) = self.hold_down_ms {
            c.hold_down = ms(v);
        }
        c.fencing = self.fence_command.is_some();
        c
    }

    /// The drain of a graceful release (`crate::drain`).
    pub fn drain(&self) -> Duration {
        self.drain_ms
            .map_or(crate::drain::DEFAULT_DRAIN, Duration::from_millis)
    }

    /// The application addresses' IPs (SIP binds them with `IP_FREEBIND`).
    pub fn app_ips(&self) -> Vec<IpAddr> {
        self.addresses.iter().map(|a| a.addr).collect()
    }
}

/// What the driver task receives.
enum In {
    Node(Input),
    /// Local health measured: database answered, SIP core running.
    Probe {
        db_ok: bool,
        sip_bound: bool,
        /// This node's own PostgreSQL (`[postgres]` configured), measured.
        db: Option<DbHealth>,
    },
    Switchover(oneshot::Sender<Result<(), String>>),
    /// Time for the second announcement of the take with this generation.
    Garp(u64),
    /// The drain of the release with this generation may end (`crate::drain`).
    DrainEnd(u64),
    /// Epoch stamped, or a newer one found in the database (`crate::cluster_epoch`).
    Epoch(crate::cluster_epoch::EpochNews),
}

/// What the address mover does.
enum Move {
    Take(Epoch),
    /// Graceful: drain (`crate::drain`).
    Release(Epoch, bool),
    /// The drain of the release with this generation may end.
    DrainEnd(u64),
    /// The second gratuitous ARP of the take with this generation.
    Garp(u64),
    /// While Active: put back an address that is missing (the release guard fired during a
    /// stall the node survived with its authority intact). Only before the authority's end
    /// (`None`: no end, a fencing takeover): the checks take a while, and a node frozen in
    /// the middle of them has lost its authority when it resumes.
    Verify(Option<Instant>),
}

/// Handle to the running driver (cheap to clone).
#[derive(Clone)]
pub struct Cluster {
    tx: mpsc::Sender<In>,
    report: Arc<Mutex<ClusterReport>>,
    addresses: Arc<Vec<AppAddress>>,
    /// The end of the current drain (`crate::drain`), for a clean stop to wait for.
    draining: Arc<Mutex<Option<Instant>>>,
}

/// How long the release guard waits for a sign of life: half of `dead_after`, so a frozen node
/// has given up its address well before its peer may take over.
fn guard_timeout(dead_after: Duration) -> Duration {
    (dead_after / 2).max(Duration::from_millis(100))
}

/// Spawns a release guard: a small bash process, in its own process group and deaf to
/// SIGINT/SIGTERM/SIGHUP, that reads a line from its stdin at least every `timeout` and, on
/// end-of-file (this process died, `kill -9` included) or silence (this process is frozen,
/// SIGSTOP, or stalled), removes the application addresses and exits. A machine that dies
/// takes its addresses with it; this covers a process that dies or freezes on a live machine.
fn spawn_guard(addrs: &[AppAddress], timeout: Duration) -> Result<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    let mut c = std::process::Command::new("bash");
    c.args([
        "-c",
        "trap '' INT TERM HUP; t=$1; shift; while read -r -t \"$t\" _x; do :; done; \
         while [ $# -ge 2 ]; do ip addr del \"$1\" dev \"$2\" 2>/dev/null; shift 2; done",
        "denwa-release-guard",
    ]);
    c.arg(format!("{:.3}", timeout.as_secs_f64()));
    for a in addrs {
        c.arg(format!("{}/{}", a.addr, a.prefix)).arg(&a.iface);
        // A drained address parked on lo (`crate::drain`) goes too.
        c.arg(crate::drain::host_cidr(a.addr))
            .arg(crate::drain::HOST_IFACE);
    }
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    c.spawn()
        .context("starting the address release guard (bash)")
}

/// Starts the release guard and the OS thread that feeds it a line every quarter of its
/// timeout (a thread of its own, so a busy async runtime is no false alarm; a frozen process
/// freezes it too). When the guard has fired while this process lives (a stall), it is
/// restarted; the driver's once-a-second check puts back an address an Active node lost so.
fn start_guard(addrs: Vec<AppAddress>, timeout: Duration) -> Result<()> {
    let first = spawn_guard(&addrs, timeout)?;
    std::thread::Builder::new()
        .name("denwa-release-guard".into())
        .spawn(move || feed_guard(first, &addrs, timeout))
        .context("starting the release guard's thread")?;
    Ok(())
}

fn feed_guard(mut child: std::process::Child, addrs: &[AppAddress], timeout: Duration) {
    use std::io::Write as _;
    let every = timeout / 4;
    loop {
        let alive = child
            .stdin
            .as_mut()
            .is_some_and(|s| s.write_all(b"\n").and_then(|()| s.flush()).is_ok());
        if alive {
            std::thread::sleep(every);
            continue;
        }
        let _ = child.wait();
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "cluster: the release guard fired while this process lives (it stalled): restarting it"
        );
        loop {
            match spawn_guard(addrs, timeout) {
                Ok(c) => {
                    child = c;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cluster: restarting the release guard");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// Binds the heartbeat paths and starts the driver, the witness client, the health probe and
    /// the address mover on the current runtime.
    pub async fn start(cfg: ClusterConfig, pbx: Pbx, store: store::Store) -> Result<Cluster> {
        cfg.validate()?;
        let key = cfg.key()?;
        let incarnation = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(1);
        let hcfg = cfg.ha_config(incarnation);
        let now = Instant::now();
        let node = Node::new(hcfg.clone(), now).map_err(|e| anyhow!("cluster: {e}"))?;
        start_guard(cfg.addresses.clone(), guard_timeout(hcfg.dead_after))?;
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let mut socks = Vec::new();
        for (i, p) in cfg.paths.iter().enumerate() {
            let s = UdpSocket::bind(p.local)
                .await
                .with_context(|| format!("binding heartbeat path {i} on {}", p.local))?;
            let s = Arc::new(s);
            let id = PathId(u8::try_from(i).unwrap_or(u8::MAX));
            tokio::spawn(read_path(
                Arc::clone(&s),
                id,
                p.peer,
                key.clone(),
                tx.clone(),
            ));
            socks.push(s);
        }
        let report = Arc::new(Mutex::new(ClusterReport {
            cluster: cfg.cluster.clone(),
            node: cfg.node_id,
            peer: cfg.peer_id,
            status: node.status(now),
            paths: cfg
                .paths
                .iter()
                .map(|p| PathReport {
                    local: p.local.to_string(),
                    peer: p.peer.to_string(),
                    healthy: false,
                })
                .collect(),
            app_addrs: cfg.addresses.iter().map(AppAddress::describe).collect(),
            holds_ip: false,
            switchover_refused: Some("starting".into()),
            events: Vec::new(),
            db: None,
        }));
        let (wtx, wrx) = mpsc::channel(WITNESS_QUEUE);
        tokio::spawn(witness_task(
            cfg.witness_url.clone(),
            cfg.cluster.clone(),
            hcfg.witness_timeout,
            wrx,
            tx.clone(),
        ));
        let addresses = Arc::new(cfg.addresses.clone());
        // Make-before-break needs the segments to answer ARP only for their own addresses.
        let v4_ifaces: Vec<&str> = cfg
            .addresses
            .iter()
            .filter(|a| a.addr.is_ipv4())
            .map(|a| a.iface.as_str())
            .collect();
        let drain_ok = if cfg.drain().is_zero() {
            false
        } else {
            match crate::drain::prepare_segments(v4_ifaces) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e,
                        "cluster: cannot set arp_ignore=1/arp_announce=2 on the segments: a switchover removes the address at once (no drain)");
                    false
                }
            }
        };
        let draining = Arc::new(Mutex::new(None));
        let mover = Mover {
            drain: crate::drain::Drain::new(cfg.drain(), drain_ok),
            relays: crate::drain::RelayDrain::default(),
            draining: Arc::clone(&draining),
            addrs: Arc::clone(&addresses),
            generation: 0,
            holding: false,
            pbx: pbx.clone(),
            store: store.clone(),
            tx: tx.clone(),
            take_event: None,
            peer_was_active: false,
        };
        let pg = match &cfg.postgres {
            Some(p) => {
                let node = crate::cluster_pg::PgNode::new(p.clone())?;
                let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let ops = crate::cluster_pg::spawn_worker(node.clone(), Arc::clone(&busy));
                Some(PgWire {
                    node,
                    ops,
                    busy,
                    health: None,
                    watch: crate::cluster_pg::ReattachWatch::default(),
                })
            }
            None => None,
        };
        let news_tx = tx.clone();
        let epochs = crate::cluster_epoch::EpochWire::new(
            store.clone(),
            cfg.node_id,
            cfg.data_dir.clone(),
            Arc::new(move |n| {
                let t = news_tx.clone();
                tokio::spawn(async move { t.send(In::Epoch(n)).await });
                !news_tx.is_closed()
            }),
        );
        tokio::spawn(probe_task(
            pbx,
            store,
            pg.as_ref().map(|p| p.node.clone()),
            tx.clone(),
            epochs.seen_handle(),
            Arc::clone(&report),
        ));
        let d = Driver {
            node,
            key,
            socks,
            peers: cfg.paths.iter().map(|p| p.peer).collect(),
            witness: wtx,
            mover,
            fence: cfg.fence_command.clone(),
            fence_timeout: hcfg.fence_timeout,
            tx: tx.clone(),
            probe: (false, false),
            events: VecDeque::with_capacity(EVENT_HISTORY),
            report: Arc::clone(&report),
            send_errors: 0,
            pg,
            epochs,
        };
        tokio::spawn(d.run(rx));
        Ok(Cluster {
            tx,
            report,
            addresses,
            draining,
        })
    }

    /// The current report.
    pub fn report(&self) -> ClusterReport {
        lock(&self.report).clone()
    }

    /// This node's role now.
    pub fn role(&self) -> Role {
        lock(&self.report).status.role
    }

    /// Starts a graceful switchover (on the Active node); refused with the reason when the pair
    /// is not ready.
    pub async fn switchover(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(In::Switchover(tx))
            .await
            .map_err(|_| "the cluster driver is not running".to_string())?;
        rx.await
            .map_err(|_| "the cluster driver stopped".to_string())?
    }

    /// For a clean stop: an Active node hands over first when the pair is ready (waiting up to
    /// 3 s for it to complete), so the standby serves at once instead of after the lease runs
    /// out; then the addresses are removed.
    pub async fn stop(&self) {
        if self.role() == Role::Active {
            match self.switchover().await {
                Ok(()) => {
                    // Until the handover has been offered: the role machine offers it once the
                    // witness has answered the lease release, after the role changed.
                    let end = Instant::now() + Duration::from_secs(3);
                    while (self.role() == Role::Active || lock(&self.report).status.switching)
                        && Instant::now() < end
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tracing::info!(role = %self.role(), "cluster: stopping: handed over to the peer");
                    // Make-before-break: relay what still comes here until the drain ends.
                    let until = *lock(&self.draining);
                    if let Some(t) = until {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
                    }
                }
                Err(reason) => tracing::warn!(
                    %reason,
                    "cluster: stopping without a handover: the peer takes over when the lease runs out"
                ),
            }
        }
        self.release_addresses().await;
    }

    /// Removes the application addresses (on shutdown: a stopped node must not keep them),
    /// drained ones included.
    pub async fn release_addresses(&self) {
        for a in self.addresses.iter() {
            release_one(a).await;
            release_host(a).await;
        }
    }

    /// Answers `denwa cluster status|switchover` on a Unix socket (mode 0600) at `path`, one
    /// request per connection, one at a time.
    pub async fn serve_control(self, path: std::path::PathBuf) -> Result<()> {
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("binding the cluster control socket {}", path.display()))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        loop {
            let s = match l.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors, say: do not spin.
                    tracing::warn!(error = %e, "cluster control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), self.answer_control(s)).await;
        }
    }

    async fn answer_control(&self, s: tokio::net::UnixStream) -> Result<()> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        let (r, mut w) = s.into_split();
        let mut line = String::new();
        tokio::io::BufReader::new(r.take(64))
            .read_line(&mut line)
            .await?;
        let body = match line.trim() {
            "status" => serde_json::to_value(self.report())?,
            "switchover" => match self.switchover().await {
                Ok(()) => serde_json::json!({"ok": true, "message": "switchover started"}),
                Err(e) => serde_json::json!({"ok": false, "message": e}),
            },
            other => {
                serde_json::json!({"ok": false, "message": format!("unknown request {other:?}")})
            }
        };
        w.write_all(format!("{body}\n").as_bytes()).await?;
        w.shutdown().await?;
        Ok(())
    }
}

/// Sends one request (`status` or `switchover`) to a running server's control socket and
/// returns its JSON answer.
pub async fn control_request(path: &Path, request: &str) -> Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::UnixStream::connect(path).await.with_context(|| {
        format!(
            "no clustered `denwa serve` answers on {} (is it running with --cluster on this data dir?)",
            path.display()
        )
    })?;
    s.write_all(format!("{request}\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        (&mut s).take(4 << 20).read_to_end(&mut buf),
    )
    .await
    .context("the server did not answer within 5 s")??;
    serde_json::from_slice(&buf).context("the server's answer is not JSON")
}

/// The role machine and what it drives.
struct Driver {
    node: Node,
    key: Vec<u8>,
    socks: Vec<Arc<UdpSocket>>,
    peers: Vec<SocketAddr>,
    witness: mpsc::Sender<LeaseRequest>,
    /// Moves the addresses. Called inline: a release completes before any later output (a
    /// heartbeat offering the handover, a lease release) leaves, as the role machine requires.
    mover: Mover,
    fence: Option<Vec<String>>,
    fence_timeout: Duration,
    tx: mpsc::Sender<In>,
    /// Last probe: (database answered, SIP core running).
    probe: (bool, bool),
    events: VecDeque<EventRecord>,
    report: Arc<Mutex<ClusterReport>>,
    send_errors: u64,
    /// This node's own PostgreSQL, when `[postgres]` is configured.
    pg: Option<PgWire>,
    /// Epochs stamped on writes: the store's write fence follows the role machine.
    epochs: crate::cluster_epoch::EpochWire,
}

/// The driver's side of `crate::cluster_pg`.
struct PgWire {
    node: crate::cluster_pg::PgNode,
    ops: mpsc::Sender<crate::cluster_pg::DbOp>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    /// Last measured.
    health: Option<DbHealth>,
    watch: crate::cluster_pg::ReattachWatch,
}

impl PgWire {
    fn send(&self, op: crate::cluster_pg::DbOp) {
        if let Err(e) = self.ops.try_send(op) {
            tracing::error!(?op, error = %e, "cluster: PostgreSQL operation not queued");
        }
    }
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<In>) {
        loop {
            // The store's grant first: a demotion stops writes before anything slow runs.
            self.epochs.sync(&self.node, Instant::now());
            self.carry_out().await;
            self.epochs.sync(&self.node, Instant::now());
            self.publish();
            let deadline = self
                .node
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                m = rx.recv() => match m {
                    Some(In::Node(i)) => self.node.handle_input(i, Instant::now()),
                    Some(In::Probe { db_ok, sip_bound, db }) => {
                        self.probe = (db_ok, sip_bound);
                        if let Some(p) = &mut self.pg {
                            p.health = db;
                        }
                        self.feed_health();
                        // Checked after the input, which re-checks the authority first.
                        let now = Instant::now();
                        if self.node.serving(now) {
                            // Serving past `authority_until` means a fencing takeover: no end.
                            let until = self.node.authority_until().filter(|t| *t > now);
                            self.mover.apply(Move::Verify(until)).await;
                        }
                    }
                    Some(In::Garp(g)) => self.mover.apply(Move::Garp(g)).await,
                    Some(In::DrainEnd(g)) => self.mover.apply(Move::DrainEnd(g)).await,
                    Some(In::Epoch(n)) => {
                        self.epochs.on_news(n);
                        self.feed_health();
                    }
                    Some(In::Switchover(reply)) => {
                        let now = Instant::now();
                        let r = self.node.switchover_readiness(now).map_err(|e| e.to_string());
                        if r.is_ok() {
                            self.node.handle_input(Input::Command(Command::Switchover), now);
                        }
                        let _ = reply.send(r);
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    self.node.handle_input(Input::Timer, Instant::now());
                }
            }
        }
    }

    /// Health as the role machine wants it. One PostgreSQL serves both nodes in this slice, so
    /// "replication" is the shared database itself: streaming with no lag while it answers.
    fn feed_health(&mut self) {
        let now = Instant::now();
        let (db_ok, sip_bound) = self.probe;
        let st = self.node.status(now);
        let db = match &mut self.pg {
            // The store answering is not required: on a node whose database is being
            // re-attached it may not, and the role machine wants the database's own state.
            Some(p) => {
                let db = p.health.unwrap_or(DbHealth::Down);
                let busy = p.busy.load(std::sync::atomic::Ordering::SeqCst);
                if p.watch.observe(now, st.role, st.peer_role, db, busy) {
                    tracing::warn!(
                        ?db,
                        "cluster: the peer is active and this database does not stream from it: re-attaching"
                    );
                    p.send(crate::cluster_pg::DbOp::Reattach);
                }
                db
            }
            None => shared_db_health(db_ok, st.role, st.peer_role),
        };
        self.node.handle_input(
            Input::Health(LocalHealth {
                db,
                sip_bound,
                db_epoch: self.epochs.db_epoch(),
            }),
            now,
        );
    }

    async fn carry_out(&mut self) {
        // A health report can produce outputs, and some outputs want a fresh health report:
        // bounded rounds.
        for _ in 0..4 {
            let mut refresh = false;
            while let Some(o) = self.node.poll_output() {
                refresh |= self.output(o).await;
            }
            if !refresh {
                return;
            }
            self.feed_health();
        }
    }

    /// Carries out one output; true when local health should be fed again at once.
    async fn output(&mut self, o: Output) -> bool {
        match o {
            Output::SendHeartbeat { path, heartbeat } => {
                let i = usize::from(path.0);
                if let (Some(s), Some(peer)) = (self.socks.get(i), self.peers.get(i)) {
                    let bytes = heartbeat.encode(&self.key);
                    if let Err(e) = s.try_send_to(&bytes, *peer) {
                        self.send_errors += 1;
                        if self.send_errors.is_power_of_two() {
                            tracing::debug!(path = i, error = %e, count = self.send_errors, "heartbeat not sent");
                        }
                    }
                }
                false
            }
            Output::Witness(req) => {
                if let Err(e) = self.witness.try_send(req) {
                    let id = req.id;
                    let detail = format!("witness queue: {e}");
                    let _ = self.tx.try_send(In::Node(Input::Witness(WitnessReply {
                        id,
                        answer: LeaseAnswer::Error(detail),
                    })));
                }
                false
            }
            Output::RunFence { id, peer } => {
                tokio::spawn(run_fence(
                    self.fence.clone(),
                    id,
                    peer.0,
                    self.fence_timeout,
                    self.tx.clone(),
                ));
                false
            }
            Output::TakeIp { epoch } => {
                let peer_alive = self.node.status(Instant::now()).peer_role.is_some();
                self.mover.take_event =
                    crate::live_calls::take_event(self.mover.peer_was_active, peer_alive);
                self.mover.apply(Move::Take(epoch)).await;
                true
            }
            Output::ReleaseIp { epoch, graceful } => {
                self.mover.apply(Move::Release(epoch, graceful)).await;
                true
            }
            Output::PromoteDb { epoch } => {
                match &self.pg {
                    Some(p) => {
                        tracing::info!(%epoch, "cluster: promoting this node's PostgreSQL");
                        p.send(crate::cluster_pg::DbOp::Promote);
                    }
                    None => {
                        tracing::info!(%epoch, "cluster: database writable here (shared PostgreSQL: nothing to promote)");
                    }
                }
                false
            }
            Output::DemoteDb { epoch, keep: true } => {
                crate::cluster_alone::keep_db(epoch);
                false
            }
            Output::DemoteDb { epoch, keep: false } => {
                match &self.pg {
                    Some(p) => {
                        // Writes end here, inline: the clean stop hands the last WAL to the
                        // standby before the lease release that follows lets it promote, so its
                        // new timeline forks after everything this node wrote.
                        let n = p.node.clone();
                        let t0 = Instant::now();
                        let r = tokio::time::timeout(
                            PG_STOP_INLINE,
                            tokio::task::spawn_blocking(move || n.stop()),
                        )
                        .await;
                        let ms = t0.elapsed().as_millis() as u64;
                        match r {
                            Ok(Ok(Ok(()))) => {
                                tracing::info!(%epoch, ms, "cluster: PostgreSQL stopped")
                            }
                            Ok(Ok(Err(e))) => {
                                tracing::warn!(%epoch, error = %format!("{e:#}"), "cluster: stopping PostgreSQL")
                            }
                            _ => {
                                tracing::warn!(%epoch, ms, "cluster: PostgreSQL still stopping; handing over meanwhile")
                            }
                        }
                        tracing::info!(%epoch, "cluster: re-attaching this node's PostgreSQL as the peer's standby");
                        p.send(crate::cluster_pg::DbOp::Reattach);
                    }
                    None => {
                        tracing::info!(%epoch, "cluster: stop writing (shared PostgreSQL: nothing to re-attach)");
                    }
                }
                false
            }
            Output::Epoch { epoch } => {
                tracing::info!(%epoch, "cluster: serving under this epoch");
                self.epochs.serve_under(epoch);
                false
            }
            Output::SetSyncReplication { on } => {
                match &self.pg {
                    Some(p) => p.send(crate::cluster_pg::DbOp::Sync(on)),
                    None => tracing::debug!(
                        on,
                        "cluster: synchronous replication (shared PostgreSQL: no-op)"
                    ),
                }
                false
            }
            Output::StopNewWork => {
                tracing::info!("cluster: switchover: handing over");
                // New calls get 503 + Retry-After until the address moves (or the switchover
                // is aborted): one arriving now would ring on a node about to leave.
                self.mover.pbx.set_new_calls_refused(true);
                if self.mover.holding {
                    // Before the hand-over can release the address (bounded).
                    crate::live_calls::end_ringing(&self.mover.pbx).await;
                }
                true
            }
            Output::ResumeWork => {
                tracing::info!("cluster: switchover aborted: resuming");
                self.mover.pbx.set_new_calls_refused(false);
                false
            }
            Output::Event(e) => {
                tracing::info!(kind = ?e.kind, role = %e.role, reason = %e.reason, "cluster event");
                if self.events.len() == EVENT_HISTORY {
                    self.events.pop_front();
                }
                self.events.push_back(EventRecord {
                    at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    kind: e.kind,
                    role: e.role,
                    reason: e.reason,
                });
                false
            }
            Output::Status(st) => {
                if st.peer_role == Some(Role::Active) {
                    self.mover.peer_was_active = true;
                }
                false
            }
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let st = self.node.status(now);
        let refused = self
            .node
            .switchover_readiness(now)
            .err()
            .map(|e| e.to_string());
        let mut r = lock(&self.report);
        for (p, ok) in r.paths.iter_mut().zip(st.paths.iter()) {
            p.healthy = *ok;
        }
        r.status = st;
        r.switchover_refused = refused;
        r.holds_ip = self.mover.holding;
        r.db = self
            .pg
            .as_ref()
            .map(|p| ha::report::DbReport::of(p.health.unwrap_or(DbHealth::Down)));
        if r.events.len() != self.events.len() || r.events.last() != self.events.back() {
            r.events = self.events.iter().cloned().collect();
        }
    }
}

/// The database state reported to the role machine while both nodes share one PostgreSQL: the
/// active node is the primary with its standby "streaming" (no lag) while the peer is in
/// Standby; any other node is a replica streaming with no lag; down when the store does not
/// answer.
fn shared_db_health(db_ok: bool, role: Role, peer_role: Option<Role>) -> DbHealth {
    if !db_ok {
        DbHealth::Down
    } else if role == Role::Active {
        DbHealth::Primary {
            standby_streaming: peer_role == Some(Role::Standby),
            lag_bytes: 0,
        }
    } else {
        DbHealth::Replica {
            streaming: true,
            lag_bytes: 0,
        }
    }
}

/// Receives heartbeats on one path: only from the configured peer address, only authentic ones.
async fn read_path(
    s: Arc<UdpSocket>,
    path: PathId,
    peer: SocketAddr,
    key: Vec<u8>,
    tx: mpsc::Sender<In>,
) {
    let mut buf = [0u8; 512];
    let mut bad: u64 = 0;
    loop {
        let (n, from) = match s.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on Linux (the peer's port closed); keep reading.
                tracing::trace!(path = path.0, error = %e, "heartbeat receive error");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if from != peer {
            bad += 1;
            if bad.is_power_of_two() {
                tracing::warn!(path = path.0, %from, count = bad, "heartbeat from an unexpected address dropped");
            }
            continue;
        }
        match Heartbeat::decode(&buf[..n], &key) {
            Ok(heartbeat) => {
                if tx.is_closed() {
                    return;
                }
                let _ = tx.try_send(In::Node(Input::Heartbeat { path, heartbeat }));
            }
            Err(e) => {
                bad += 1;
                if bad.is_power_of_two() {
                    tracing::warn!(path = path.0, %from, error = %e, count = bad, "bad heartbeat dropped");
                }
            }
        }
    }
}

/// Runs lease requests on the witness's PostgreSQL, one at a time, each bounded by `timeout`.
async fn witness_task(
    url: String,
    cluster: String,
    timeout: Duration,
    mut rx: mpsc::Receiver<LeaseRequest>,
    tx: mpsc::Sender<In>,
) {
    let pool = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(timeout)
        .connect_lazy(&url)
    {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(error = %e, "cluster: witness URL unusable");
            None
        }
    };
    let mut ready = false;
    while let Some(req) = rx.recv().await {
        let answer = match &pool {
            None => LeaseAnswer::Error("the witness URL is unusable".into()),
            Some(pool) => {
                match tokio::time::timeout(timeout, lease(pool, &cluster, &req, &mut ready)).await {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => {
                        ready = false;
                        LeaseAnswer::Error(format!("witness: {e}"))
                    }
                    Err(_) => LeaseAnswer::Error(format!(
                        "witness: no answer within {} ms",
                        timeout.as_millis()
                    )),
                }
            }
        };
        if tx
            .send(In::Node(Input::Witness(WitnessReply {
                id: req.id,
                answer,
            })))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// One lease operation: the UPDATE, and when it returned nothing the row as it is.
async fn lease(
    pool: &sqlx::PgPool,
    cluster: &str,
    req: &LeaseRequest,
    ready: &mut bool,
) -> Result<LeaseAnswer, sqlx::Error> {
    use ha::witness::{SQL_CREATE, SQL_INIT, SQL_MIGRATE, SQL_READ, SqlRow, answer_from_rows};
    if !*ready {
        sqlx::query(SQL_CREATE).execute(pool).await?;
        sqlx::query(SQL_MIGRATE).execute(pool).await?;
        sqlx::query(SQL_INIT).bind(cluster).execute(pool).await?;
        *ready = true;
    }
    let call = match req.sql() {
        Ok(c) => c,
        Err(e) => return Ok(LeaseAnswer::Error(e.to_string())),
    };
    let mut q = sqlx::query_as::<_, SqlRow>(call.sql)
        .bind(cluster)
        .bind(call.holder)
        .bind(call.token);
    if let Some(ms) = call.duration_ms {
        q = q.bind(ms);
    }
    let updated = q.fetch_optional(pool).await?;
    let read = if updated.is_none() {
        sqlx::query_as::<_, SqlRow>(SQL_READ)
            .bind(cluster)
            .fetch_optional(pool)
            .await?
    } else {
        None
    };
    Ok(answer_from_rows(updated, read))
}

/// Runs the fencing command (argv, `DENWA_FENCE_PEER` = the peer id) and reports the result.
async fn run_fence(
    argv: Option<Vec<String>>,
    id: u64,
    peer: u32,
    timeout: Duration,
    tx: mpsc::Sender<In>,
) {
    let (ok, detail) = match argv.as_deref() {
        Some([program, args @ ..]) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args)
                .env("DENWA_FENCE_PEER", peer.to_string())
                .kill_on_drop(true);
            match tokio::time::timeout(timeout, c.output()).await {
                Ok(Ok(out)) => (
                    out.status.success(),
                    format!(
                        "{}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                ),
                Ok(Err(e)) => (false, format!("cannot run {program}: {e}")),
                Err(_) => (
                    false,
                    format!("{program} did not finish within {} s", timeout.as_secs()),
                ),
            }
        }
        _ => (false, "no fence_command is configured".into()),
    };
    let _ = tx
        .send(In::Node(Input::FenceResult { id, ok, detail }))
        .await;
}

/// Measures local health every second — every [`HEALTH_SWITCHING`] while a switchover waits
/// for the standby to catch up (it starts on a report of lag 0; writes go on meanwhile, so a
/// report a second old would hold it up to a second): the store answers, the SIP core runs.
async fn probe_task(
    pbx: Pbx,
    store: store::Store,
    pg: Option<crate::cluster_pg::PgNode>,
    tx: mpsc::Sender<In>,
    db_epoch: Arc<std::sync::atomic::AtomicU64>,
    report: Arc<Mutex<ClusterReport>>,
) {
    let mut first = true;
    loop {
        if !first {
            let wait = if crate::cluster_alone::probe_fast(&lock(&report).status) {
                HEALTH_SWITCHING
            } else {
                HEALTH_EVERY
            };
            let end = tokio::time::Instant::now() + wait;
            // Re-checked while waiting: a switchover started meanwhile is probed at once.
            while tokio::time::Instant::now() < end {
                let left = end.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(HEALTH_SWITCHING.min(left)).await;
                if wait == HEALTH_EVERY && crate::cluster_alone::probe_fast(&lock(&report).status) {
                    break;
                }
            }
        }
        first = false;
        // The stamped epoch (replicated on a standby) doubles as the "database answers" probe.
        let db_ok =
            match tokio::time::timeout(Duration::from_millis(800), store.cluster_epoch()).await {
                Ok(Ok(e)) => {
                    db_epoch.fetch_max(e, std::sync::atomic::Ordering::SeqCst);
                    true
                }
                _ => false,
            };
        let sip_bound = pbx.core_alive();
        let db = match &pg {
            Some(n) => {
                let n = n.clone();
                Some(
                    tokio::task::spawn_blocking(move || n.health())
                        .await
                        .unwrap_or(DbHealth::Down),
                )
            }
            None => None,
        };
        if tx
            .send(In::Probe {
                db_ok,
                sip_bound,
                db,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Runs `program args` with a time bound; Ok(()) on exit 0, the stderr otherwise.
async fn run_cmd(program: &str, args: &[&str], limit: Duration) -> Result<(), String> {
    let mut c = tokio::process::Command::new(program);
    c.args(args).kill_on_drop(true);
    match tokio::time::timeout(limit, c.output()).await {
        Ok(Ok(o)) if o.status.success() => Ok(()),
        Ok(Ok(o)) => Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("cannot run {program}: {e}")),
        Err(_) => Err(format!(
            "`{program} {}` did not finish within {} ms",
            args.join(" "),
            limit.as_millis()
        )),
    }
}

async fn add_one(a: &AppAddress) {
    let cidr = format!("{}/{}", a.addr, a.prefix);
    ip_add(
        &cidr,
        &a.iface,
        a.addr.is_ipv6(),
        "adding the application address",
    )
    .await;
}

/// `ip addr add CIDR dev IFACE` (IPv6: `nodad` — no duplicate address detection: the peer
/// released it, and a tentative address could neither be used nor advertised for about a
/// second); present already is fine.
async fn ip_add(cidr: &str, iface: &str, v6: bool, what: &str) {
    let mut args = vec!["addr", "add", cidr, "dev", iface];
    if v6 {
        args.push("nodad");
    }
    match run_cmd("ip", &args, COMMAND_TIMEOUT).await {
        Ok(()) => {}
        Err(e) if e.contains("File exists") => {}
        Err(e) => tracing::error!(error = %e, "cluster: {what}"),
    }
}

/// `ip addr del CIDR dev IFACE`: true when it was there and is gone; absent already (the usual
/// case at start) is fine.
async fn ip_del(cidr: &str, iface: &str, what: &str) -> bool {
    match run_cmd("ip", &["addr", "del", cidr, "dev", iface], COMMAND_TIMEOUT).await {
        Ok(()) => true,
        Err(e) if e.contains("Cannot assign requested address") || e.contains("not found") => false,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: {what}");
            false
        }
    }
}

/// The address is configured on its interface (`ip -o addr show dev IFACE`).
async fn address_present(a: &AppAddress) -> bool {
    let mut c = tokio::process::Command::new("ip");
    c.args(["-o", "addr", "show", "dev", &a.iface])
        .kill_on_drop(true);
    match tokio::time::timeout(COMMAND_TIMEOUT, c.output()).await {
        Ok(Ok(o)) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).contains(&format!(" {}/{} ", a.addr, a.prefix))
        }
        // Unknown: assume present rather than adding blindly.
        _ => true,
    }
}

async fn release_one(a: &AppAddress) {
    let cidr = format!("{}/{}", a.addr, a.prefix);
    if ip_del(&cidr, &a.iface, "releasing the application address").await {
        tracing::info!(addr = %a.describe(), "cluster: application address released");
    }
}

/// Parks the address on lo as a host address (`crate::drain`): still local, not answered for on
/// the segment.
async fn add_host(a: &AppAddress) {
    let cidr = crate::drain::host_cidr(a.addr);
    ip_add(
        &cidr,
        crate::drain::HOST_IFACE,
        a.addr.is_ipv6(),
        "parking the application address on lo",
    )
    .await;
}

/// Removes the address parked on lo (absent: nothing to do).
async fn release_host(a: &AppAddress) {
    let cidr = crate::drain::host_cidr(a.addr);
    let what = "removing the drained application address";
    if ip_del(&cidr, crate::drain::HOST_IFACE, what).await {
        tracing::info!(addr = %cidr, "cluster: drained application address removed from lo");
    }
}

/// An unsolicited neighbour advertisement (RFC 4861 §4.4, §7.2.6): ICMPv6 type 136, Override
/// set (Solicited and Router clear), the target address, and the target link-layer address
/// option. The kernel fills in the checksum of a raw ICMPv6 socket.
fn na_packet(target: std::net::Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 136;
    p[4] = 0x20;
    p[8..24].copy_from_slice(&target.octets());
    p[24] = 2;
    p[25] = 1;
    p[26..32].copy_from_slice(&mac);
    p
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Sends an unsolicited neighbour advertisement for `target` to all nodes on `iface`, from
/// `target` itself (added with `nodad`, so it is usable at once).
fn unsolicited_na(target: std::net::Ipv6Addr, iface: &str) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mac_text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    let mac = parse_mac(&mac_text).ok_or_else(|| {
        std::io::Error::other(format!("{iface} has no Ethernet address ({mac_text:?})"))
    })?;
    let name = std::ffi::CString::new(iface).map_err(std::io::Error::other)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let s = Socket::new(
        Domain::IPV6,
        Type::from(libc::SOCK_RAW),
        Some(Protocol::ICMPV6),
    )?;
    s.set_multicast_hops_v6(255)?;
    s.set_multicast_if_v6(index)?;
    s.bind(&std::net::SocketAddrV6::new(target, 0, 0, 0).into())?;
    let all_nodes = std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        0,
        0,
        index,
    );
    s.send_to(&na_packet(target, mac), &all_nodes.into())?;
    Ok(())
}

async fn garp(a: &AppAddress) {
    if let IpAddr::V6(v6) = a.addr {
        if let Err(e) = unsolicited_na(v6, &a.iface) {
            tracing::warn!(addr = %a.describe(), error = %e, "cluster: unsolicited neighbour advertisement");
        }
        return;
    }
    let addr = a.addr.to_string();
    if let Err(e) = run_cmd(
        "arping",
        &["-U", "-c", "1", "-I", &a.iface, &addr],
        ARPING_TIMEOUT,
    )
    .await
    {
        tracing::warn!(error = %e, "cluster: gratuitous ARP");
    }
}

/// Adds and removes the application addresses and announces them; run inline by the driver.
struct Mover {
    addrs: Arc<Vec<AppAddress>>,
    generation: u64,
    holding: bool,
    pbx: Pbx,
    store: store::Store,
    tx: mpsc::Sender<In>,
    /// Why the next take happens (`switchover`: the peer is alive; `failover`), kept with
    /// the records of the calls in progress it continues; `None`: the peer was never seen
    /// active since this node started (a cold start), so stored calls are stale.
    take_event: Option<&'static str>,
    /// The peer has been seen active since this node started.
    peer_was_active: bool,
    /// Make-before-break on a graceful release (`crate::drain`).
    drain: crate::drain::Drain,
    /// The released calls' relay sessions while draining.
    relays: crate::drain::RelayDrain,
    /// The drain's end, shared with [`Cluster::stop`].
    draining: Arc<Mutex<Option<Instant>>>,
}

impl Mover {
    /// Carries out drain steps on every address (each address's steps in order, the addresses
    /// at once).
    async fn steps(&self, steps: &[crate::drain::Step]) {
        use crate::drain::Step;
        let mut set = tokio::task::JoinSet::new();
        for a in self.addrs.iter() {
            let a = a.clone();
            let steps = steps.to_vec();
            set.spawn(async move {
                for st in steps {
                    match st {
                        Step::AddHost => add_host(&a).await,
                        Step::DelSegment => release_one(&a).await,
                        Step::DelHost => release_host(&a).await,
                        Step::AddSegment => add_one(&a).await,
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
    }
}

impl Mover {
    async fn apply(&mut self, m: Move) {
        let addrs = Arc::clone(&self.addrs);
        match m {
            Move::Release(epoch, graceful) => {
                self.generation += 1;
                self.holding = false;
                // Nothing leaves from the address once it is going (ARP would point at us).
                self.pbx.set_holds_app_address(false);
                let steps = self.drain.release(graceful, Instant::now());
                self.steps(&steps).await;
                let until = self.drain.poll_timeout();
                *lock(&self.draining) = until;
                if let Some(t) = until {
                    tracing::info!(%epoch, drain_ms = t.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "cluster: application address parked on lo: relaying what still comes here until the drain ends");
                    let g = self.generation;
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
                        let _ = tx.send(In::DrainEnd(g)).await;
                    });
                }
                if until.is_none() && self.relays.open() > 0 {
                    // A failure (or a start) while draining: nothing may relay from here.
                    self.relays.cut(Duration::from_millis(200)).await;
                }
                tracing::debug!(%epoch, "cluster: release done");
                // The peer resumes the parked calls from their rows; none may ring back from
                // here. Off the release path: it must not wait for the SIP core.
                let pbx = self.pbx.clone();
                tokio::spawn(async move {
                    match pbx.forget_parked().await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(parked = n, "cluster: parked calls left to the peer")
                        }
                        Err(e) => tracing::warn!(error = %e, "cluster: dropping parked calls"),
                    }
                });
                // Calls in progress likewise: the peer continues them from their rows (their
                // relay sessions drain here meanwhile).
                let pbx = self.pbx.clone();
                let relays = self.relays.for_drain();
                tokio::spawn(async move {
                    let r = match until {
                        Some(t) => pbx.drain_live_calls(t, relays).await,
                        None => pbx.forget_live_calls().await,
                    };
                    match r {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(calls = n, "cluster: calls in progress left to the peer")
                        }
                        Err(e) => tracing::warn!(error = %e, "cluster: dropping calls in progress"),
                    }
                });
            }
            Move::DrainEnd(g) => {
                if g != self.generation {
                    return;
                }
                let steps = self.drain.on_timer(Instant::now());
                if !steps.is_empty() {
                    self.steps(&steps).await;
                    *lock(&self.draining) = None;
                    tracing::info!(
                        relays = self.relays.open(),
                        "cluster: drain over: application address removed from lo"
                    );
                }
            }
            Move::Take(epoch) => {
                self.generation += 1;
                self.holding = true;
                let t0 = Instant::now();
                // A drain still running ends first: its relay sockets hold the ports the
                // calls taken over re-bind.
                let steps = self.drain.take();
                *lock(&self.draining) = None;
                if steps.len() > 1 {
                    self.relays.cut(Duration::from_millis(200)).await;
                    self.steps(&steps[..steps.len() - 1]).await;
                }
                // The peer's phones registered there (one PostgreSQL serves both): loaded before
                // the address comes up, so the first request on it finds them.
                match tokio::time::timeout(RELOAD_TIMEOUT, self.pbx.reload_bindings(&self.store))
                    .await
                {
                    Ok(Ok(n)) => tracing::info!(
                        registrations = n,
                        "cluster: registrations loaded from the database"
                    ),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cluster: loading registrations"),
                    Err(_) => tracing::warn!(
                        "cluster: loading registrations took over 500 ms: taking the address without them"
                    ),
                }
                // Calls in progress on the peer: their relay ports are bound (IP_FREEBIND) before
                // the address comes up, so the first packet that reaches us finds its socket.
                crate::live_calls::take(&self.pbx, &self.store, self.take_event, RELOAD_TIMEOUT)
                    .await;
                for a in addrs.iter() {
                    add_one(a).await;
                }
                self.pbx.set_holds_app_address(true);
                tracing::info!(%epoch, addrs = ?addrs.iter().map(AppAddress::describe).collect::<Vec<_>>(),
                    ms = t0.elapsed().as_millis() as u64, "cluster: application address taken");
                // Calls parked on the peer: their legs are re-INVITEd from here, now that the
                // address is ours (the answers come to it).
                match tokio::time::timeout(RELOAD_TIMEOUT, self.pbx.reload_parked(&self.store))
                    .await
                {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(parked = n, "cluster: parked calls resumed"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cluster: resuming parked calls"),
                    Err(_) => tracing::warn!("cluster: reading parked calls took over 500 ms"),
                }
                // arping lingers after sending: it must not delay the next move.
                tokio::spawn(garp_all(Arc::clone(&addrs)));
                let g = self.generation;
                let again = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = again.send(In::Garp(g)).await;
                });
            }
            Move::Garp(g) => {
                if self.holding && g == self.generation {
                    tokio::spawn(garp_all(Arc::clone(&addrs)));
                }
            }
            Move::Verify(until) => {
                if !self.holding {
                    return;
                }
                let mut missing = false;
                for a in addrs.iter() {
                    let present = address_present(a).await;
                    // Re-checked after the await: a node frozen (SIGSTOP) during it resumes
                    // without authority, its address taken by the peer meanwhile.
                    if until.is_some_and(|t| Instant::now() >= t) {
                        tracing::warn!(
                            "cluster: authority ended while checking the application addresses: not putting any back"
                        );
                        return;
                    }
                    if !present {
                        tracing::warn!(addr = %a.describe(), "cluster: the application address went missing while active: adding it again");
                        add_one(a).await;
                        missing = true;
                    }
                }
                if missing {
                    tokio::spawn(garp_all(Arc::clone(&addrs)));
                }
            }
        }
    }
}

/// Announces every address at once (`arping` lingers about a second after sending; one
/// address must not wait for another's).
async fn garp_all(addrs: Arc<Vec<AppAddress>>) {
    let mut set = tokio::task::JoinSet::new();
    for a in addrs.iter() {
        let a = a.clone();
        set.spawn(async move { garp(&a).await });
    }
    while set.join_next().await.is_some() {}
    tracing::debug!("cluster: gratuitous ARP / unsolicited NA sent");
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cluster = "pair-1"
node_id = 1
peer_id = 2
preferred = 1
heartbeat_key = "00112233445566778899aabbccddeeff"
witness_url = "postgres://witness.example/denwa"
hold_down_ms = 3000
[[paths]]
local = "10.0.0.1:7410"
peer = "10.0.0.2:7410"
[[paths]]
local = "192.168.9.1:7410"
peer = "192.168.9.2:7410"
[[addresses]]
addr = "10.0.0.10"
prefix = 24
iface = "eth0"
"#;

    fn err(text: &str) -> String {
        match ClusterConfig::parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_file_parses_into_role_machine_settings() {
        let c = ClusterConfig::parse(GOOD).expect("valid");
        let h = c.ha_config(7);
        assert_eq!(h.node, NodeId(1));
        assert_eq!(h.peer, NodeId(2));
        assert_eq!(h.preferred, Some(NodeId(1)));
        assert_eq!(h.paths, 2);
        assert_eq!(h.incarnation, 7);
        assert_eq!(h.hold_down, Duration::from_secs(3));
        assert!(!h.fencing);
        assert_eq!(
            c.app_ips(),
            vec!["10.0.0.10".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(c.addresses[0].describe(), "10.0.0.10/24 dev eth0");
    }

    #[test]
    fn postgres_section_is_checked_with_the_file() {
        let pg = "\n[postgres]\ndata_dir = \"/var/lib/denwa/pg\"\nrun_dir = \"/run/denwa-pg\"\n\
                  port = 5432\nlisten = \"192.168.9.1\"\npeer = \"192.168.9.2\"\n\
                  replication_user = \"denwa_repl\"\n\
                  replication_password_file = \"/etc/denwa/repl.pass\"\n\
                  application_name = \"node1\"\npeer_application_name = \"node2\"\n";
        let c = ClusterConfig::parse(&format!("{GOOD}{pg}")).expect("valid");
        assert_eq!(
            c.postgres
                .as_ref()
                .map(|p| p.peer_application_name.as_str()),
            Some("node2")
        );
        assert!(
            ClusterConfig::parse(GOOD)
                .expect("valid")
                .postgres
                .is_none()
        );
        let same = format!("{GOOD}{}", pg.replace("\"node2\"", "\"node1\""));
        assert!(err(&same).contains("must differ"), "{}", err(&same));
        let unknown = format!("{GOOD}{pg}slot = \"x\"\n");
        assert!(err(&unknown).contains("slot"), "{}", err(&unknown));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let one_path = GOOD.replacen(
            "[[paths]]\nlocal = \"192.168.9.1:7410\"\npeer = \"192.168.9.2:7410\"\n",
            "",
            1,
        );
        assert!(
            err(&one_path).contains("at least 2 heartbeat paths"),
            "{}",
            err(&one_path)
        );
        let same = GOOD.replace("peer_id = 2", "peer_id = 1");
        assert!(err(&same).contains("must differ"), "{}", err(&same));
        let short = GOOD.replace("00112233445566778899aabbccddeeff", "0011");
        assert!(err(&short).contains("at least 16 bytes"), "{}", err(&short));
        let nothex = GOOD.replace(
            "00112233445566778899aabbccddeeff",
            "zz112233445566778899aabbccddeeff",
        );
        assert!(err(&nothex).contains("not hex"), "{}", err(&nothex));
        let prefix = GOOD.replace("prefix = 24", "prefix = 33");
        assert!(
            err(&prefix).contains("prefix must be 1-32"),
            "{}",
            err(&prefix)
        );
        let iface = GOOD.replace("iface = \"eth0\"", "iface = \"eth0; rm -rf /\"");
        assert!(
            err(&iface).contains("iface must be an interface name"),
            "{}",
            err(&iface)
        );
        let url = GOOD.replace("postgres://witness.example/denwa", "mysql://x");
        assert!(err(&url).contains("witness_url"), "{}", err(&url));
        let pref = GOOD.replace("preferred = 1", "preferred = 3");
        assert!(err(&pref).contains("preferred (3)"), "{}", err(&pref));
        let unknown = GOOD.replace("hold_down_ms", "hold_dwn_ms");
        assert!(err(&unknown).contains("unknown field"), "{}", err(&unknown));
        let lease = GOOD.replace("hold_down_ms = 3000", "hold_down_ms = 3000\nlease_ms = 500");
        assert!(
            err(&lease).contains("lease must be longer than dead_after"),
            "{}",
            err(&lease)
        );
        let wild = GOOD.replace("local = \"10.0.0.1:7410\"", "local = \"0.0.0.0:7410\"");
        assert!(err(&wild).contains("not wildcards"), "{}", err(&wild));
        let noaddr = GOOD.replace(
            "[[addresses]]\naddr = \"10.0.0.10\"\nprefix = 24\niface = \"eth0\"\n",
            "",
        );
        assert!(err(&noaddr).contains("addresses"), "{}", err(&noaddr));
        let fence = GOOD.replace(
            "hold_down_ms = 3000",
            "hold_down_ms = 3000\nfence_command = []",
        );
        assert!(err(&fence).contains("fence_command"), "{}", err(&fence));
    }

    #[test]
    fn shared_database_health_lets_a_switchover_complete() {
        assert_eq!(
            shared_db_health(false, Role::Active, Some(Role::Standby)),
            DbHealth::Down
        );
        // The switchover completes on a primary report with its standby streaming at lag 0.
        assert_eq!(
            shared_db_health(true, Role::Active, Some(Role::Standby)),
            DbHealth::Primary {
                standby_streaming: true,
                lag_bytes: 0
            }
        );
        // No standby heard: running alone (synchronous replication off, switchover refused).
        assert_eq!(
            shared_db_health(true, Role::Active, None),
            DbHealth::Primary {
                standby_streaming: false,
                lag_bytes: 0
            }
        );
        // A standby reports itself ready to take over.
        for role in [Role::Standby, Role::Starting, Role::Fenced] {
            assert_eq!(
                shared_db_health(true, role, Some(Role::Active)),
                DbHealth::Replica {
                    streaming: true,
                    lag_bytes: 0
                }
            );
        }
    }

    #[test]
    fn neighbour_advertisement_layout() {
        let target: std::net::Ipv6Addr = "fd77::10".parse().expect("ip");
        let mac = parse_mac("02:aa:bb:cc:dd:0e\n").expect("mac");
        let p = na_packet(target, mac);
        assert_eq!(p[0], 136, "type: neighbour advertisement");
        assert_eq!(p[1], 0, "code");
        assert_eq!(&p[4..8], &[0x20, 0, 0, 0], "Override only");
        assert_eq!(&p[8..24], &target.octets());
        assert_eq!(
            &p[24..26],
            &[2, 1],
            "target link-layer address option, 8 bytes"
        );
        assert_eq!(&p[26..32], &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0e]);
        assert_eq!(parse_mac("02:aa:bb:cc:dd"), None);
        assert_eq!(parse_mac("02:aa:bb:cc:dd:0e:ff"), None);
        assert_eq!(parse_mac("zz:aa:bb:cc:dd:0e"), None);
    }

    #[test]
    fn drain_time_defaults_to_two_seconds_and_stays_under_the_hold_down() {
        let c = ClusterConfig::parse(GOOD).expect("valid");
        assert_eq!(c.drain(), Duration::from_secs(2));
        let off = ClusterConfig::parse(
            &GOOD.replace("hold_down_ms = 3000", "hold_down_ms = 3000\ndrain_ms = 0"),
        )
        .expect("valid");
        assert!(off.drain().is_zero());
        let long = GOOD.replace(
            "hold_down_ms = 3000",
            "hold_down_ms = 3000\ndrain_ms = 3000",
        );
        assert!(
            err(&long).contains("drain_ms (3000 ms) must be shorter than the hold-down"),
            "{}",
            err(&long)
        );
        let huge = GOOD.replace(
            "hold_down_ms = 3000",
            "hold_down_ms = 30000\ndrain_ms = 20000",
        );
        assert!(err(&huge).contains("at most 10000 ms"), "{}", err(&huge));
    }

    #[test]
    fn fencing_setting_follows_the_command() {
        let c = ClusterConfig::parse(&GOOD.replace(
            "hold_down_ms = 3000",
            "hold_down_ms = 3000\nfence_command = [\"/bin/true\"]",
        ))
        .expect("valid");
        assert!(c.ha_config(1).fencing);
    }

    #[tokio::test]
    async fn fence_command_result_reaches_the_role_machine() {
        let (tx, mut rx) = mpsc::channel(4);
        run_fence(
            Some(vec!["/bin/false".into()]),
            9,
            2,
            Duration::from_secs(5),
            tx.clone(),
        )
        .await;
        match rx.recv().await {
            Some(In::Node(Input::FenceResult {
                id: 9, ok: false, ..
            })) => {}
            _ => panic!("expected a failed fence result"),
        }
        run_fence(
            Some(vec!["/bin/true".into()]),
            10,
            2,
            Duration::from_secs(5),
            tx.clone(),
        )
        .await;
        match rx.recv().await {
            Some(In::Node(Input::FenceResult {
                id: 10, ok: true, ..
            })) => {}
            _ => panic!("expected a successful fence result"),
        }
        run_fence(None, 11, 2, Duration::from_secs(5), tx).await;
        match rx.recv().await {
            Some(In::Node(Input::FenceResult {
                id: 11,
                ok: false,
                detail,
            })) => {
                assert!(detail.contains("no fence_command"));
            }
            _ => panic!("expected a refused fence result"),
        }
    }
}
