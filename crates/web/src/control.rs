//! The narrow view of call control the panel and the API work through. The `denwa` binary
//! implements it over the running SIP core; tests implement it with a fake, so `web` needs no
//! SIP sockets and no media relay.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

pub use engine::control::{CallState, CallSummary};

/// A boxed future, so [`CallControl`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `web` needs of call control.
pub trait CallControl: Send + Sync + 'static {
    /// The bound SIP addresses (UDP and TCP share them).
    fn sip_addrs(&self) -> Vec<SocketAddr>;

    /// Calls in progress (empty when the core does not answer).
    fn calls(&self) -> BoxFuture<'_, Vec<CallSummary>>;

    /// Hangs up call `id`; false when no such call exists (or the core does not answer).
    fn hangup(&self, id: u64) -> BoxFuture<'_, bool>;

    /// Prometheus text of the SIP and media counters (`/metrics` appends the store's own).
    fn render_metrics(&self) -> String;

    /// True while the SIP core runs (`/healthz` answers 503 when it does not).
    fn core_alive(&self) -> bool;

    /// Live trunk states (registration, health, calls) of every tenant; empty when the core
    /// does not run here (the panel and the API then show the state each node stored).
    fn trunk_statuses(&self) -> Vec<engine::TrunkStatus> {
        Vec::new()
    }

    /// Blind-transfers call `id` to the number `to`, routed with the class of service of the
    /// call's transferring extension; refused with a SIP-like status and reason.
    fn transfer(
        &self,
        _id: u64,
        _to: String,
    ) -> BoxFuture<'_, Result<(), engine::transfer::TransferRefused>> {
        Box::pin(async {
            Err(engine::transfer::TransferRefused {
                status: 503,
                reason: "call control does not run on this node".into(),
            })
        })
    }

    /// Blind-transfers call `id` to `to`, moving party `moves` (the other party is the
    /// transferor: its class of service applies and it is released once `to` answers).
    fn transfer_moving(
        &self,
        _id: u64,
        _to: String,
        _moves: engine::xfer_party::Party,
    ) -> BoxFuture<'_, Result<(), engine::transfer::TransferRefused>> {
        Box::pin(async {
            Err(engine::transfer::TransferRefused {
                status: 503,
                reason: "call control does not run on this node".into(),
            })
        })
    }

    /// The event subscriptions in force, of `tenant` or of all tenants (empty when the core
    /// does not run here).
    fn subscriptions(
        &self,
        _tenant: Option<i64>,
    ) -> BoxFuture<'_, Vec<engine::subs_list::SubscriptionInfo>> {
        Box::pin(async { Vec::new() })
    }

    /// Conference rooms with participants (empty when the core does not run here).
    fn conferences(&self) -> BoxFuture<'_, Vec<engine::control::ConfSummary>> {
        Box::pin(async { Vec::new() })
    }

    /// The parked calls of `tenant`, by slot (empty when the core does not run here).
    fn parked_calls(&self, _tenant: i64) -> BoxFuture<'_, Vec<engine::park::ParkedCall>> {
        Box::pin(async { Vec::new() })
    }

    /// Mutes or unmutes a conference participant; false when it is in no room.
    fn conf_mute(&self, _call: u64, _muted: bool) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }

    /// The active/standby driver when this node runs as one of a pair (`serve --cluster`).
    fn cluster(&self) -> Option<&dyn crate::cluster::ClusterControl> {
        None
    }
}
