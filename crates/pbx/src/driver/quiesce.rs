//! New calls during a switchover's hand-over follow the cluster driver's wish
//! ([`crate::Pbx::set_new_calls_refused`]), applied at the next loop turn; the logic is the
//! engine's ([`engine::Engine::set_new_calls_refused`]).

use std::sync::atomic::Ordering;

use super::Driver;

impl Driver {
    /// Refuses or takes new calls when the wish changed since the last loop turn.
    pub(super) fn follow_new_calls(&mut self) {
        let want = self.shared.new_calls_refused.load(Ordering::Relaxed);
        if self.engine.new_calls_refused() != want {
            self.engine.set_new_calls_refused(want);
        }
    }
}
