//! Running alone: when an Active may turn synchronous replication off, and when a Standby may
//! not take over because it may lack acknowledged writes (Patroni's `/sync` key, in the
//! witness's lease row).
//!
//! The order is what makes it safe:
//! - **Off.** The Active keeps synchronous replication on (writes wait for the standby) until
//!   the witness has answered a [`LeaseOp::MarkAlone`]: the row then says "this node runs alone
//!   since epoch E". Only then [`Output::SetSyncReplication`] `{ on: false }` releases the waiting
//!   commits. Witness unreachable: it stays on — writes wait, and if the lease or the peer's
//!   promise runs out the node demotes (no write it acknowledged is lost; availability yields).
//!   An acquire records the new holder as running alone too: a new Active starts without a
//!   synchronous standby.
//! - **Takeover.** The witness refuses an acquire while the row says another node runs alone
//!   ([`crate::witness::SQL_ACQUIRE`]); the Standby says why (status `blocked`, an event) and
//!   waits — the node that ran alone may come back and resume.
//! - **Back on.** When the standby streams again: synchronous replication on, then a health
//!   report, at least a heartbeat interval later, showing the standby has replayed everything
//!   (lag 0), and only then [`LeaseOp::ClearAlone`]. A mark or clear whose answer is lost leaves
//!   the row unknown: a new mark is needed before synchronous replication goes off again, and a
//!   clear is still due.
//! - **Stopping while marked.** [`Output::DemoteDb`] `{ keep: true }`: the database is the only
//!   copy of writes acknowledged alone, so it is not rewound onto the peer; this node resumes
//!   with it when it takes over again (the row lets only it do so).
//! - **Fencing.** A node that powered its peer off with the fencing hook cannot read the row
//!   first (the witness is unreachable — that is why it fenced); once it reaches the witness
//!   it acquires with [`LeaseOp::AcquireAfterFence`], which overrides the peer's mark. Writes
//!   the fenced peer acknowledged alone are lost by that choice (docs/ha.md).

use std::time::Instant;

use super::Node;
use crate::witness::LeaseOp;
use crate::{DbHealth, Epoch, EventKind, NodeId, Output, Role};

impl Node {
    /// Synchronous replication is wanted: the standby is alive, not Active, and streaming. With
    /// the local database down nothing is known: no change.
    pub(super) fn want_sync(&self, now: Instant) -> bool {
        if self.health.db == DbHealth::Down {
            return self.sync_on;
        }
        let peer_standby = self
            .peer
            .is_some_and(|p| self.peer_alive(now) && p.hb.role != Role::Active);
        peer_standby
            && matches!(
                self.health.db,
                DbHealth::Primary {
                    standby_streaming: true,
                    ..
                }
            )
    }

    /// Turn synchronous replication on at once when wanted; off only when the witness records
    /// that this node runs alone and no clear of that mark is in flight.
    pub(super) fn follow_sync(&mut self, want: bool, now: Instant) {
        if want && !self.sync_on {
            self.sync_on = true;
            self.sync_on_since = Some(now);
            self.caught_up = false;
            self.out.push_back(Output::SetSyncReplication { on: true });
            self.event(
                EventKind::Peer,
                "synchronous replication on: writes are acknowledged when the standby has them"
                    .to_string(),
            );
        } else if !want && self.sync_on {
            let clearing = matches!(self.lease.in_flight(), Some(LeaseOp::ClearAlone { .. }));
            if self.alone_marked && !clearing {
                self.sync_on = false;
                self.sync_on_since = None;
                self.caught_up = false;
                self.out.push_back(Output::SetSyncReplication { on: false });
                self.event(
                    EventKind::Peer,
                    format!(
                        "synchronous replication off: running alone, recorded by the witness \
                         ({}; the standby is not replicating)",
                        self.epoch
                    ),
                );
            } else if !self.waiting_for_mark {
                self.waiting_for_mark = true;
                self.event(
                    EventKind::Witness,
                    "the standby is not replicating: writes wait until the witness records \
                     that this node runs alone"
                        .to_string(),
                );
            }
        }
        if want || !self.sync_on {
            self.waiting_for_mark = false;
        }
    }

    /// The holder's next lease operation: mark, clear, or a plain renewal.
    pub(super) fn alone_op(&self, want_sync: bool, token: Epoch) -> LeaseOp {
        if !want_sync && self.sync_on && !self.alone_marked {
            LeaseOp::MarkAlone { token }
        } else if want_sync && self.sync_on && self.alone_row && self.caught_up {
            LeaseOp::ClearAlone { token }
        } else {
            LeaseOp::Renew { token }
        }
    }

    /// A health report on the Active: the standby has replayed everything. Counts only once
    /// synchronous replication has been on for a heartbeat interval (the driver applies it by
    /// then), so every write acknowledged while alone is on the standby.
    pub(super) fn note_caught_up(&mut self, db: DbHealth, now: Instant) {
        let settled = self
            .sync_on_since
            .is_some_and(|t| now >= t + self.cfg.interval);
        if self.role == Role::Active
            && self.sync_on
            && settled
            && db
                == (DbHealth::Primary {
                    standby_streaming: true,
                    lag_bytes: 0,
                })
        {
            self.caught_up = true;
        }
    }

    /// The witness answered a renewal of ours (the lease is still this epoch's).
    pub(super) fn on_alone_answer(&mut self, op: LeaseOp) {
        match op {
            LeaseOp::MarkAlone { .. } if !self.alone_marked => {
                self.alone_marked = true;
                self.alone_row = true;
                self.event(
                    EventKind::Witness,
                    format!(
                        "the witness records this node as running alone ({})",
                        self.epoch
                    ),
                );
            }
            LeaseOp::ClearAlone { .. } => {
                self.alone_marked = false;
                self.alone_row = false;
                self.event(
                    EventKind::Witness,
                    "the witness no longer records this node as running alone: the standby \
                     has every acknowledged write"
                        .to_string(),
                );
            }
            _ => {}
        }
    }

    /// A mark or clear of ours got no answer: it may or may not have reached the row. Not
    /// marked for sure (a new mark is needed before synchronous replication goes off), and
    /// perhaps marked (a clear is still due).
    pub(super) fn on_alone_error(&mut self, op: LeaseOp) {
        match op {
            LeaseOp::ClearAlone { .. } => self.alone_marked = false,
            LeaseOp::MarkAlone { .. } => self.alone_row = true,
            _ => {}
        }
    }

    /// The witness refused our acquire because the row says `node` runs alone since `since`:
    /// this node may lack writes `node` acknowledged.
    pub(super) fn behind(&mut self, node: NodeId, since: Epoch, now: Instant) {
        self.block(format!(
            "the witness records that {node} runs alone since {since}: this node may lack \
             writes it acknowledged, so no automatic takeover until {node} is back with \
             synchronous replication on and this node has caught up"
        ));
        self.next_attempt = now + self.cfg.lease / 3;
    }
}
