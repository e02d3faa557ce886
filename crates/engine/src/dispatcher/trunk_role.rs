//! Trunks run on the active node of a pair only. Registration to a provider and OPTIONS
//! health checks are done by one node: the one holding the application address. A standby
//! that registered too would give the provider a second binding (calls forked to a node that
//! does not serve phones) and its trunk state writes would be refused by its read-only
//! database. A standalone node keeps its trunks active all the time.
//!
//! Stopping sends `Expires: 0` for each binding in force (the transport drops it when it would
//! leave from an application address this node no longer holds: then the new active's
//! REGISTER, with the same Contact, replaces it anyway). Starting makes a REGISTER due at
//! once.

use super::*;

impl Engine {
    /// Starts (`true`) or stops (`false`) trunk registrations and health checks: a pair's node
    /// on taking and releasing the application address. Trunks are active by default. Returns
    /// whether anything changed.
    pub fn set_trunks_active(&mut self, active: bool, now: Now) -> bool {
        if self.dispatcher.idle != active {
            return false;
        }
        self.dispatcher.idle = !active;
        let ids: Vec<i64> = self.dispatcher.rt.keys().copied().collect();
        if active {
            info!(trunks = ids.len(), "trunks started: this node is active");
            for rt in self.dispatcher.rt.values_mut() {
                if let Some(reg) = rt.reg.as_mut() {
                    reg.start(now.mono);
                }
            }
            self.trunk_timers(now);
        } else {
            info!(
                trunks = ids.len(),
                "trunks stopped: this node is not active"
            );
            for id in ids {
                let Some(mut rt) = self.dispatcher.rt.remove(&id) else {
                    continue;
                };
                self.unregister_trunk(&mut rt, now);
                self.dispatcher.rt.insert(id, rt);
            }
        }
        true
    }

    /// Whether this node registers its trunks and checks their health now.
    pub fn trunks_active(&self) -> bool {
        !self.dispatcher.idle
    }

    /// Stops a trunk's registration client; a binding in force is removed (`Expires: 0`).
    /// Returns whether a removal was sent.
    pub(super) fn unregister_trunk(&mut self, rt: &mut TrunkRt, now: Now) -> bool {
        // A client exists only for a trunk with an address (`new_trunk_rt`).
        let (Some(reg), Some(dest)) = (rt.reg.as_mut(), rt.dest) else {
            return false;
        };
        let Some(local) = self.local_for(dest.0) else {
            return false;
        };
        let registered = reg.is_registered(now.mono);
        let via = self.our_via(local, dest.1);
        match reg.unregister(now.mono, &via) {
            Some(req) if registered => {
                let target = Target {
                    destination: dest.0,
                    transport: dest.1,
                    local: Some(local),
                };
                self.send_request(req, target, Owner::TrunkGone, now);
                true
            }
            // Nothing in force to remove: just stopped.
            _ => false,
        }
    }
}
