//! What a running node of a pair reports about itself: the driver (`pbx::cluster`) fills a
//! [`ClusterReport`] from the role machine's [`Status`] and its own facts (addresses, the event
//! history with wall-clock times); the panel, the API and `denwa cluster status` show it. Plain
//! data, so the crates that show it need no driver.

use crate::{DbHealth, EventKind, Role, Status};

/// One heartbeat path as configured, with its health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathReport {
    /// This node's address on the path.
    pub local: String,
    /// The peer's address on the path.
    pub peer: String,
    /// Link up and the peer heard within `path_degraded_after`.
    pub healthy: bool,
}

/// One record of the event history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRecord {
    /// Wall-clock time (RFC 3339, UTC) the driver saw it.
    pub at: String,
    /// What kind.
    pub kind: EventKind,
    /// The role after it.
    pub role: Role,
    /// Why, in words for the operator.
    pub reason: String,
}

/// A node's view of the pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterReport {
    /// The cluster's name (its witness lease row).
    pub cluster: String,
    /// This node's id.
    pub node: u32,
    /// The peer's id.
    pub peer: u32,
    /// The role machine's status (roles, epoch, witness, lease, authority, block reason).
    pub status: Status,
    /// The heartbeat paths.
    pub paths: Vec<PathReport>,
    /// The application addresses (`ADDR/PREFIX dev IFACE`).
    pub app_addrs: Vec<String>,
    /// This node has the application addresses configured now (as far as the driver knows).
    pub holds_ip: bool,
    /// `None` when a switchover could start now; otherwise why not.
    pub switchover_refused: Option<String>,
    /// The newest events last (bounded).
    pub events: Vec<EventRecord>,
    /// This node's own PostgreSQL as last measured (`None` when the pair shares one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<DbReport>,
}

/// This node's own PostgreSQL, for the status, the panel and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DbReport {
    /// `primary`, `replica` or `down`.
    pub state: &'static str,
    /// Primary: the peer streams from it; replica: it streams from the peer.
    pub streaming: bool,
    /// Primary: how far the peer's replay is behind; replica: received but not replayed (bytes).
    pub lag_bytes: u64,
}

impl DbReport {
    /// From the health fed to the role machine.
    pub fn of(h: DbHealth) -> DbReport {
        match h {
            DbHealth::Down => DbReport {
                state: "down",
                streaming: false,
                lag_bytes: 0,
            },
            DbHealth::Primary {
                standby_streaming,
                lag_bytes,
            } => DbReport {
                state: "primary",
                streaming: standby_streaming,
                lag_bytes,
            },
            DbHealth::Replica {
                streaming,
                lag_bytes,
            } => DbReport {
                state: "replica",
                streaming,
                lag_bytes,
            },
        }
    }
}
