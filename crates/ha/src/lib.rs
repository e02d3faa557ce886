//! `ha`: the active/standby role machine of a Denwa pair, sans-IO.
//!
//! What it is: the decisions — when this node is Active (holds the application IP, writes the
//! database), when it must stop, when it may take over, and whether a manual switchover is safe
//! now. It takes [`Input`]s (heartbeats, path state, witness answers, fencing results, operator
//! commands, local health, timers), each with the current monotonic time, through
//! [`Node::handle_input`], and produces [`Output`]s (heartbeats to send, lease requests, fencing,
//! take/release the IP, promote/demote PostgreSQL, synchronous replication, events, status)
//! through [`Node::poll_output`]; [`Node::poll_timeout`] says when to call it next.
//!
//! What it is not: it owns no socket, no clock, no random source and no task. The driver (wired
//! by `denwa`) sends heartbeats on the paths, runs the [`witness`] SQL on the witness's
//! PostgreSQL, moves the address (with gratuitous ARP), runs the fencing hook, and promotes or
//! re-attaches PostgreSQL. `docs/ha.md` is the operator's view of the same rules.
//!
//! # Roles
//!
//! ```text
//!            boot
//!              │
//!          Starting ── dead_after, or an Active peer heard ──► Standby ◄──── maintenance off
//!                                                               │   ▲  ╲
//!          takeover: lease granted (or fence succeeded) ◄───────┘   │   ╲── maintenance on ─► Maintenance
//!                     │                                             │
//!                     ▼                  graceful switchover ───────┤
//!                   Active ──────────────────────────────────────── ┤
//!                     │  authority lost (lease not renewed, higher   │
//!                     │  epoch seen, renew refused)                  │
//!                     ▼                                              │
//!                   Fenced ──────────── hold_down ───────────────────┘
//! ```
//!
//! # Rules
//!
//! - **Heartbeats** every `interval` (100 ms) on every path whose link is up (≥ 2 paths). The peer
//!   is dead only when *all* paths have been silent for `dead_after` (600 ms): one path cut is
//!   reported (event, status, switchover refused) but never causes a takeover.
//! - **Authority.** A Standby takes over only (a) holding a lease granted by the witness — the
//!   lease's fencing token becomes the epoch — or (b) after the fencing hook reported success
//!   (epoch above every one it knows: the peer's, its database's ([`LocalHealth::db_epoch`]), the
//!   witness's), only when the peer is silent on every path and was heard since this node
//!   started. With neither, it stays Standby and says why (event + status). The fencing hook must
//!   leave the peer off until an operator restores it after the survivor holds a lease again.
//!   [`Node::authority`] says what an Active serves on ([`Authority`]).
//! - **Staying Active.** An Active node serves while its *authority* lasts: its lease (measured from
//!   the renew's send time, minus drift and `expiry_margin`), renewed every `lease / 3`; or,
//!   while the witness cannot be reached, the peer's promise (see below); or a fencing takeover
//!   not yet replaced by a lease. It checks this before handling any input, so a node frozen with
//!   SIGSTOP and resumed releases the IP first thing. A refused renew, or a peer Active with a
//!   higher epoch, demotes at once.
//! - **Witness down** (the policy). Tokens are only issued by the witness, so with the witness down
//!   nobody can take over by lease. The Active keeps serving as long as the Standby keeps
//!   acknowledging its heartbeats: every heartbeat of a non-Active node carries an [`Ack`] of the
//!   highest heartbeat it received, and a node whose peer's latest heartbeat says Active never
//!   starts a takeover before `dead_after` of silence from it (a restarted node waits
//!   `dead_after` before any takeover; only acks of heartbeats sent while Active count). An ack of
//!   heartbeat *n* therefore guarantees no takeover before `sent(n) + dead_after` on the Active's
//!   clock (minus drift and margin), exactly like a lease measured from its send time. If the
//!   Active loses both the witness and the peer, it stops at the later of the two ends — no
//!   split brain, and no outage for a witness outage alone.
//! - **Local failure.** An Active whose database is down or SIP unbound for `dead_after` hands
//!   over to a live Standby that can serve.
//! - **Epochs.** Every takeover has a new, higher epoch (= fencing token). Outputs that write data
//!   or take the IP carry it ([`Output::Epoch`], [`Output::TakeIp`], [`Output::PromoteDb`]); the
//!   driver stamps replicated writes with it so an old Active can never overwrite newer data.
//! - **No flapping.** After any role change a switchover is refused for `hold_down`; a node that
//!   lost the Active role by failure stays [`Role::Fenced`] for `hold_down` and makes no takeover
//!   attempt. There is no automatic failback: the preferred node only wins a cold start.
//! - **Switchover** (graceful, on the Active): refused with a [`NotReady`] reason unless the
//!   Standby is ready (replicating, lag ≤ `max_lag_bytes`, every path healthy, witness reachable,
//!   no hold-down). Then: stop new work, wait until the standby has replayed everything, release
//!   the IP, demote, release the lease, offer the handover in the heartbeat; the Standby acquires
//!   the freed lease at once. No catch-up within `handover_timeout`: the switchover is aborted
//!   and work resumes.
//! - **Cold start of both**: each waits `dead_after`; then the preferred node (or the lower id)
//!   acquires; the other waits, and takes over itself if the first has not become Active within
//!   `2 × dead_after + lease`. The lease arbitrates any race.

mod heartbeat;
mod node;
pub mod report;
pub mod witness;

use std::fmt;
use std::time::Duration;

pub use crate::heartbeat::{Ack, DbHealth, DecodeError, Health, Heartbeat, WIRE_LEN};
pub use crate::node::Node;
pub use crate::witness::{LeaseAnswer, LeaseOp, LeaseRequest, WitnessReply};

/// A node of the pair (configured; the two must differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}

/// An epoch: the fencing token of the takeover that made a node Active. Only ever increases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// A heartbeat path (index into the configured paths: 0 = service network, 1 = dedicated link…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(pub u8);

/// A node's role (serialised lower-case, as [`Role::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Just started: listening for `dead_after` before any takeover.
    Starting,
    /// Replica of the Active, ready to take over.
    Standby,
    /// Holds the application IP and writes the database.
    Active,
    /// Lost the Active role by failure; waits `hold_down` before it may take over again.
    Fenced,
    /// Operator hold: never takes over.
    Maintenance,
}

impl Role {
    /// Lower-case name, for logs, metrics and the panel.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Standby => "standby",
            Role::Active => "active",
            Role::Fenced => "fenced",
            Role::Maintenance => "maintenance",
        }
    }

    fn code(self) -> u8 {
        match self {
            Role::Starting => 0,
            Role::Standby => 1,
            Role::Active => 2,
            Role::Fenced => 3,
            Role::Maintenance => 4,
        }
    }

    fn from_code(c: u8) -> Option<Role> {
        Some(match c {
            0 => Role::Starting,
            1 => Role::Standby,
            2 => Role::Active,
            3 => Role::Fenced,
            4 => Role::Maintenance,
            _ => return None,
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role machine's settings. [`Config::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node.
    pub node: NodeId,
    /// The peer.
    pub peer: NodeId,
    /// The preferred primary (a cluster-wide setting, the same on both nodes): it wins a cold
    /// start. `None`: the lower node id wins.
    pub preferred: Option<NodeId>,
    /// This run's incarnation; must grow across restarts (wall-clock ms at start will do).
    pub incarnation: u64,
    /// Number of heartbeat paths (≥ 2).
    pub paths: u8,
    /// Heartbeat interval (100 ms).
    pub interval: Duration,
    /// Silence on all paths after which the peer is dead (600 ms).
    pub dead_after: Duration,
    /// A path silent this long is degraded (300 ms): reported, refuses switchover.
    pub path_degraded_after: Duration,
    /// Lease duration asked of the witness (800 ms; must exceed `dead_after`). Renewed every
    /// third. A crash of the Active costs at most about this (the old lease must run out).
    pub lease: Duration,
    /// An Active stops serving this long before its authority's conservative end (150 ms): time to
    /// release the IP and stop writes.
    pub expiry_margin: Duration,
    /// Bound on clock rate difference between nodes and witness, parts per million (1000).
    pub drift_ppm: u32,
    /// A witness request unanswered this long is an error (300 ms).
    pub witness_timeout: Duration,
    /// Hold-down after a role change (10 s): no switchover, and no takeover by a node that lost
    /// the Active role by failure.
    pub hold_down: Duration,
    /// A switchover is refused while the standby lags more than this (1 MiB of WAL).
    pub max_lag_bytes: u64,
    /// A switchover whose standby has not caught up (or taken over) within this is aborted (3 s).
    pub handover_timeout: Duration,
    /// A fencing hook is configured.
    pub fencing: bool,
    /// A fencing hook that has not answered within this has failed (10 s).
    pub fence_timeout: Duration,
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// node == peer.
    #[error("node and peer ids must differ (both {0})")]
    SameId(u32),
    /// Fewer than two paths.
    #[error("at least 2 heartbeat paths are required, got {0}")]
    Paths(u8),
    /// A duration is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A duration longer than a day.
    #[error("{0} must be at most one day")]
    TooLong(&'static str),
    /// Two durations in the wrong order.
    #[error("{0}")]
    Order(&'static str),
}

/// No setting is longer than this (keeps every deadline computation far from overflow).
const MAX_DURATION: Duration = Duration::from_secs(86_400);

impl Config {
    /// Defaults for `node` paired with `peer`.
    pub fn new(node: NodeId, peer: NodeId) -> Config {
        Config {
            node,
            peer,
            preferred: None,
            incarnation: 0,
            paths: 2,
            interval: Duration::from_millis(100),
            dead_after: Duration::from_millis(600),
            path_degraded_after: Duration::from_millis(300),
            lease: Duration::from_millis(800),
            expiry_margin: Duration::from_millis(150),
            drift_ppm: 1000,
            witness_timeout: Duration::from_millis(300),
            hold_down: Duration::from_secs(10),
            max_lag_bytes: 1 << 20,
            handover_timeout: Duration::from_secs(3),
            fencing: false,
            fence_timeout: Duration::from_secs(10),
        }
    }

    /// Check the settings' relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node == self.peer {
            return Err(ConfigError::SameId(self.node.0));
        }
        for id in [self.node, self.peer] {
            if i32::try_from(id.0).is_err() {
                return Err(ConfigError::Order(
                    "node ids must fit a signed 32-bit integer (the witness's column)",
                ));
            }
        }
        if self.paths < 2 {
            return Err(ConfigError::Paths(self.paths));
        }
        for (name, d) in [
            ("interval", self.interval),
            ("dead_after", self.dead_after),
            ("lease", self.lease),
            ("witness_timeout", self.witness_timeout),
            ("handover_timeout", self.handover_timeout),
            ("fence_timeout", self.fence_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, d) in [
            ("interval", self.interval),
            ("dead_after", self.dead_after),
            ("path_degraded_after", self.path_degraded_after),
            ("lease", self.lease),
            ("expiry_margin", self.expiry_margin),
            ("witness_timeout", self.witness_timeout),
            ("hold_down", self.hold_down),
            ("handover_timeout", self.handover_timeout),
            ("fence_timeout", self.fence_timeout),
        ] {
            if d > MAX_DURATION {
                return Err(ConfigError::TooLong(name));
            }
        }
        if self.dead_after < self.interval * 3 {
            return Err(ConfigError::Order(
                "dead_after must be at least 3 heartbeat intervals",
            ));
        }
        if self.lease <= self.dead_after {
            return Err(ConfigError::Order("lease must be longer than dead_after"));
        }
        if self.expiry_margin + self.witness_timeout >= self.lease * 2 / 3 {
            return Err(ConfigError::Order(
                "expiry_margin + witness_timeout must be shorter than 2/3 of the lease \
                 (a renew sent at 1/3 must be able to answer before the margin)",
            ));
        }
        if self.drift_ppm >= 100_000 {
            return Err(ConfigError::Order("drift_ppm must be below 100000 (10 %)"));
        }
        Ok(())
    }
}

/// An operator command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Graceful switchover (on the Active node).
    Switchover,
    /// Enter maintenance (operator hold; refused on the Active node: switch over first).
    MaintenanceOn,
    /// Leave maintenance.
    MaintenanceOff,
}

/// Local health, as the driver measures it (send when it changes, and at least every second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalHealth {
    /// Local PostgreSQL.
    pub db: DbHealth,
    /// SIP sockets bound on the physical addresses.
    pub sip_bound: bool,
    /// The highest epoch stamped in the local database (replicated writes carry it, so it
    /// survives restarts and comes over with replication): a node never serves under an epoch
    /// older than data it holds.
    pub db_epoch: Epoch,
}

/// What an Active node's right to serve rests on now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    /// A witness lease it renews.
    Lease,
    /// The witness cannot be reached; the Standby's acknowledgements (its promise not to take
    /// over) carry it.
    PeerAck,
    /// It fenced the peer while the witness was unreachable, and has no lease yet.
    Fence,
}

/// What the driver feeds the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A heartbeat received (and decoded) on `path`.
    Heartbeat {
        /// The path it came on.
        path: PathId,
        /// The heartbeat.
        heartbeat: Heartbeat,
    },
    /// A path's link went up or down (carrier, interface, route).
    PathLink {
        /// The path.
        path: PathId,
        /// Up?
        up: bool,
    },
    /// The witness answered (or could not be asked).
    Witness(WitnessReply),
    /// The fencing hook finished.
    FenceResult {
        /// The id from [`Output::RunFence`].
        id: u64,
        /// It succeeded: the peer is powered off / cut off.
        ok: bool,
        /// What it said (for the event history).
        detail: String,
    },
    /// An operator command.
    Command(Command),
    /// Local health changed.
    Health(LocalHealth),
    /// The time from [`Node::poll_timeout`] came (or any time: spurious wake-ups are harmless).
    Timer,
}

/// Kinds of event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The role changed.
    RoleChanged,
    /// A takeover was wanted but not allowed (no lease and no fence, hold-down…).
    TakeoverBlocked,
    /// The peer was declared dead, or heard again.
    Peer,
    /// A heartbeat path degraded or recovered.
    Path,
    /// Witness reachability or lease changes.
    Witness,
    /// Fencing hook run and results.
    Fence,
    /// Switchover accepted, refused, completed or aborted.
    Switchover,
    /// Maintenance on/off, or refused.
    Maintenance,
}

/// A record for the event history (the driver adds the wall-clock time).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// What kind.
    pub kind: EventKind,
    /// The role after the event.
    pub role: Role,
    /// The reason, in words for the operator.
    pub reason: String,
}

/// Why a switchover is refused now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// Only the Active node can hand over.
    #[error("this node is {0}, not active: run the switchover on the active node")]
    NotActive(Role),
    /// One is already running.
    #[error("a switchover is already in progress")]
    InProgress,
    /// Within the hold-down after the last role change.
    #[error("in hold-down for another {0} ms after the last role change")]
    HoldDown(u128),
    /// The standby is silent on every path.
    #[error("the standby is not answering heartbeats")]
    PeerDead,
    /// The peer is not in Standby.
    #[error("the peer is {0}, not standby")]
    PeerRole(Role),
    /// The peer says it cannot take over.
    #[error("the standby reports it is not ready (database, SIP or hold-down)")]
    PeerNotReady,
    /// The standby is not streaming from us.
    #[error("the standby is not replicating")]
    NotReplicating,
    /// Too far behind.
    #[error("the standby lags {lag} bytes, more than the bound of {max}")]
    Lagging {
        /// Lag now.
        lag: u64,
        /// Configured bound.
        max: u64,
    },
    /// A heartbeat path is degraded.
    #[error("heartbeat path {0} is degraded")]
    PathDegraded(u8),
    /// The lease cannot be handed over without the witness.
    #[error("the witness is not reachable (the lease cannot be handed over)")]
    WitnessUnreachable,
    /// The witness still records this node as running alone (the standby has not caught up
    /// since it came back): it would refuse the standby the lease.
    #[error("running alone: the witness still records that the standby may lack writes")]
    RunningAlone,
}

/// The role machine's view, for the panel, `denwa cluster status`, `/metrics` and `/healthz`
/// (serialisable as JSON for the API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// This node's role.
    pub role: Role,
    /// This node's epoch if Active, else the highest known.
    pub epoch: Epoch,
    /// The peer's role as last heard, `None` if it is dead or never heard.
    pub peer_role: Option<Role>,
    /// Per path: healthy (link up and heard within `path_degraded_after`).
    pub paths: Vec<bool>,
    /// The witness answered the last request (granted or denied).
    pub witness_reachable: bool,
    /// This node holds a lease it believes valid.
    pub lease_held: bool,
    /// Synchronous replication is on (Active only).
    pub sync_replication: bool,
    /// The witness records this node (Active) as running alone: no other node may take over
    /// automatically, since only this one has every acknowledged write.
    pub alone: bool,
    /// A switchover is in progress: the standby is catching up, or the lease release has not
    /// been answered yet (the handover is offered after it).
    pub switching: bool,
    /// What this node's right to serve rests on (Active only).
    pub authority: Option<Authority>,
    /// The last reason a takeover was blocked (cleared when it happens or is no longer wanted).
    pub blocked: Option<String>,
}

/// What the node asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this heartbeat on this path ([`Heartbeat::encode`]).
    SendHeartbeat {
        /// The path.
        path: PathId,
        /// The heartbeat.
        heartbeat: Heartbeat,
    },
    /// Run this lease request on the witness and answer with [`Input::Witness`].
    Witness(LeaseRequest),
    /// Run the fencing hook against the peer; answer with [`Input::FenceResult`].
    RunFence {
        /// Echo in the result.
        id: u64,
        /// Whom to fence.
        peer: NodeId,
    },
    /// Promote the local PostgreSQL to primary; stamp writes with `epoch`.
    PromoteDb {
        /// The new epoch.
        epoch: Epoch,
    },
    /// Add the application IP(s) on every segment, send gratuitous ARP / unsolicited NA now and
    /// again after 1 s, rebind SIP and media sockets.
    TakeIp {
        /// The epoch this node serves under.
        epoch: Epoch,
    },
    /// Remove the application IP(s) now (before anything else).
    ReleaseIp {
        /// The epoch that is ending.
        epoch: Epoch,
        /// A graceful handover (switchover, clean stop, local failure handed over): this node
        /// is alive and keeps its authority until the release, so the driver may stop
        /// answering for the address at once but keep relaying the media that phones with
        /// stale ARP caches still send it for a short drain (make-before-break). Never set
        /// for a failure (lost lease, newer epoch, freeze) or at start: the address goes at
        /// once.
        graceful: bool,
    },
    /// Stop writes now and re-attach the local PostgreSQL as a standby of the peer (pg_rewind or
    /// re-clone) — unless `keep`.
    DemoteDb {
        /// The epoch that is ending.
        epoch: Epoch,
        /// The witness records this node as running alone: its database is the only copy of
        /// writes acknowledged meanwhile. Stop writing (the store's fence already refuses them)
        /// but leave the database as it is — no rewind onto the peer — so that this node can
        /// resume with it; only this node may take over until the mark is cleared.
        keep: bool,
    },
    /// From now on stamp replicated writes with this epoch (sent on every epoch change of an
    /// Active node, including when it becomes Active).
    Epoch {
        /// The current epoch.
        epoch: Epoch,
    },
    /// Turn synchronous replication (synchronous_standby_names) on or off.
    SetSyncReplication {
        /// On?
        on: bool,
    },
    /// Switchover: stop taking new calls and registrations; keep the ones in progress.
    StopNewWork,
    /// Switchover aborted: take new work again.
    ResumeWork,
    /// A record for the event history and the log.
    Event(Event),
    /// The status changed.
    Status(Status),
}
