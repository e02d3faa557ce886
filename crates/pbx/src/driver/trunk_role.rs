//! Trunk registrations follow the application address: the engine's trunks are started when
//! this node takes the address and stopped when it releases it
//! ([`crate::Pbx::set_holds_app_address`] records the wish; the loop applies it at its next
//! turn, at most a tick later). The logic is the engine's ([`engine::Engine::set_trunks_active`]).

use std::sync::atomic::Ordering;

use super::{Driver, now};

impl Driver {
    /// Starts or stops the trunks when the node's role changed since the last loop turn.
    pub(super) fn follow_trunk_role(&mut self) {
        let want = self.shared.trunks_active.load(Ordering::Relaxed);
        if self.engine.trunks_active() != want {
            self.engine.set_trunks_active(want, now());
        }
    }
}
