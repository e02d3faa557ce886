//! [`Node`]: the role machine. See the crate docs for the rules.

use std::collections::VecDeque;
use std::time::Instant;

use crate::witness::{LeaseAnswer, LeaseClient, LeaseOp, LeaseOutcome};
use crate::{
    Ack, Authority, Command, Config, ConfigError, DbHealth, Epoch, Event, EventKind, Health,
    Heartbeat, Input, LocalHealth, NodeId, NotReady, Output, PathId, Role, Status,
};

/// How many of our own heartbeat send times we remember (for acks). An ack older than this many
/// rounds is worthless anyway: `dead_after` is a few intervals.
const SENT_HISTORY: usize = 64;

#[derive(Debug, Clone, Copy)]
struct PathState {
    link_up: bool,
    last_rx: Option<Instant>,
    healthy: bool,
}

#[derive(Debug, Clone, Copy)]
struct PeerView {
    hb: Heartbeat,
    last_rx: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Switching {
    since: Instant,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
struct PendingFence {
    id: u64,
    deadline: Instant,
}

/// One node's role machine. Feed it with [`Node::handle_input`], drain [`Node::poll_output`]
/// after every input, and call again with [`Input::Timer`] at [`Node::poll_timeout`].
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    role: Role,
    boot: Instant,
    /// Epoch while Active.
    epoch: Epoch,
    /// Highest epoch known (ours, the peer's, the witness's).
    highest: Epoch,
    /// Active by a successful fence, not (yet) by a lease.
    fence_authority: bool,
    lease: LeaseClient,
    witness_ok: bool,
    lease_holder_seen: Option<NodeId>,
    paths: Vec<PathState>,
    peer: Option<PeerView>,
    peer_alive_reported: bool,
    heard_peer: bool,
    seq: u64,
    /// First heartbeat sequence number sent in the current Active stint: only acks of these
    /// count as a promise.
    active_first_seq: u64,
    next_hb: Instant,
    sent: VecDeque<(u64, Instant)>,
    health: LocalHealth,
    fenced_until: Option<Instant>,
    switch_hold_until: Option<Instant>,
    switching: Option<Switching>,
    offering_until: Option<Instant>,
    /// A graceful handover waits for the witness to confirm the lease release before it offers
    /// the handover: offered earlier, the peer's acquire can reach the witness first, be refused,
    /// and wait a heartbeat interval to try again.
    offer_after_release: bool,
    fence: Option<PendingFence>,
    next_fence_id: u64,
    next_attempt: Instant,
    peer_idle_since: Option<Instant>,
    sync_on: bool,
    /// The witness's row records this node (Active) as running alone: the only state in which
    /// synchronous replication may be off (see `alone.rs`).
    alone_marked: bool,
    /// The row may say this node runs alone (marked, or a mark or clear whose answer was
    /// lost): a clear is still due, and no other node can get the lease meanwhile.
    alone_row: bool,
    /// A health report after synchronous replication came on showed the standby caught up.
    caught_up: bool,
    /// When synchronous replication was last turned on.
    sync_on_since: Option<Instant>,
    /// Reported that writes wait for the witness's "running alone" mark.
    waiting_for_mark: bool,
    /// The fencing hook powered the peer off and it has not been heard since: this node's
    /// acquires override the row's "the peer runs alone" ([`LeaseOp::AcquireAfterFence`]).
    peer_fenced: bool,
    blocked: Option<String>,
    renew_failing: bool,
    /// Local health bad since (database down or SIP not bound).
    unhealthy_since: Option<Instant>,
    hb_now: bool,
    /// The `now` of the last input: everything due by then has been done.
    last_now: Instant,
    out: VecDeque<Output>,
    last_status: Option<Status>,
}

impl Node {
    /// A node starting now, in [`Role::Starting`]; the configuration is checked first
    /// ([`Config::validate`]).
    ///
    /// Its first output is [`Output::ReleaseIp`]: a node that crashed while Active may still have
    /// the address configured. PostgreSQL must start read-only (as a standby); only
    /// [`Output::PromoteDb`] makes it writable.
    pub fn new(cfg: Config, now: Instant) -> Result<Node, ConfigError> {
        cfg.validate()?;
        let lease = LeaseClient::new(cfg.node, cfg.lease, cfg.drift_ppm, cfg.witness_timeout);
        let paths = vec![
            PathState {
                link_up: true,
                last_rx: None,
                healthy: false,
            };
            usize::from(cfg.paths)
        ];
        let mut n = Node {
            role: Role::Starting,
            boot: now,
            epoch: Epoch(0),
            highest: Epoch(0),
            fence_authority: false,
            lease,
            witness_ok: false,
            lease_holder_seen: None,
            paths,
            peer: None,
            peer_alive_reported: false,
            heard_peer: false,
            seq: 0,
            active_first_seq: u64::MAX,
            next_hb: now,
            sent: VecDeque::with_capacity(SENT_HISTORY),
            health: LocalHealth {
                db: DbHealth::Down,
                sip_bound: false,
                db_epoch: Epoch(0),
            },
            fenced_until: None,
            switch_hold_until: None,
            switching: None,
            offering_until: None,
            offer_after_release: false,
            fence: None,
            next_fence_id: 1,
            next_attempt: now,
            peer_idle_since: None,
            sync_on: false,
            alone_marked: false,
            alone_row: false,
            caught_up: false,
            sync_on_since: None,
            waiting_for_mark: false,
            peer_fenced: false,
            blocked: None,
            renew_failing: false,
            unhealthy_since: Some(now),
            hb_now: false,
            last_now: now,
            out: VecDeque::new(),
            last_status: None,
            cfg,
        };
        n.out.push_back(Output::ReleaseIp {
            epoch: Epoch(0),
            graceful: false,
        });
        n.event(EventKind::RoleChanged, "started".to_string());
        Ok(n)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The epoch while Active, else the highest known.
    pub fn epoch(&self) -> Epoch {
        if self.role == Role::Active {
            self.epoch
        } else {
            self.highest
        }
    }

    /// Active and its authority has not ended at `now`: it may hold the IP and write.
    pub fn serving(&self, now: Instant) -> bool {
        self.role == Role::Active
            && (self.fence_authority || self.authority_until().is_some_and(|t| now < t))
    }

    /// The end of this node's authority (lease or peer promise, minus margins), if it has one
    /// that ends. A fencing takeover's authority has no end until a lease replaces it.
    pub fn authority_until(&self) -> Option<Instant> {
        let lease = self
            .lease
            .held()
            .filter(|h| self.role == Role::Active && h.token == self.epoch)
            .and_then(|h| h.expires.checked_sub(self.cfg.expiry_margin));
        lease.max(self.promise_until())
    }

    /// What this node's right to serve rests on at `now` (`None` unless serving).
    pub fn authority(&self, now: Instant) -> Option<Authority> {
        if !self.serving(now) {
            return None;
        }
        let lease = self
            .lease
            .held()
            .filter(|h| h.token == self.epoch)
            .and_then(|h| h.expires.checked_sub(self.cfg.expiry_margin))
            .is_some_and(|e| now < e);
        Some(if lease {
            Authority::Lease
        } else if self.fence_authority {
            Authority::Fence
        } else {
            Authority::PeerAck
        })
    }

    /// The end of the peer's promise not to take over (see the crate docs, "witness down").
    fn promise_until(&self) -> Option<Instant> {
        if self.role != Role::Active {
            return None;
        }
        let p = self.peer?;
        if p.hb.role == Role::Active {
            return None;
        }
        let ack = p.hb.ack?;
        if ack.incarnation != self.cfg.incarnation || ack.seq < self.active_first_seq {
            return None;
        }
        let sent = self
            .sent
            .iter()
            .find(|(s, _)| *s == ack.seq)
            .map(|(_, t)| *t)?;
        let d = self.cfg.dead_after;
        let d = d.saturating_sub(d.mul_f64(f64::from(self.cfg.drift_ppm) / 1_000_000.0));
        (sent + d).checked_sub(self.cfg.expiry_margin)
    }

    /// Next output, if any. Drain after every [`Node::handle_input`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Node::handle_input`] with [`Input::Timer`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = vec![Some(self.next_hb), self.lease.poll_timeout()];
        t.push(self.fence.map(|f| f.deadline));
        t.push(self.offering_until);
        match self.role {
            Role::Starting => t.push(Some(self.boot + self.cfg.dead_after)),
            Role::Fenced => t.push(self.fenced_until),
            Role::Standby => {
                t.push(Some(self.next_attempt));
                t.push(self.peer.map(|p| p.last_rx + self.cfg.dead_after));
            }
            Role::Active => {
                t.push(self.authority_until());
                t.push(self.lease.last_sent().map(|s| s + self.cfg.lease / 3));
                t.push(self.switching.map(|s| s.deadline));
                t.push(self.unhealthy_since.map(|u| u + self.cfg.dead_after));
            }
            Role::Maintenance => {}
        }
        // Whatever was due by the last input has been done; a deadline still in the past is
        // one that cannot progress yet (e.g. a retry while a request is in flight).
        t.into_iter().flatten().filter(|t| *t > self.last_now).min()
    }

    /// Whether a switchover could start now, and if not, why (for the panel's button and the
    /// API, before sending [`Command::Switchover`]).
    pub fn switchover_readiness(&self, now: Instant) -> Result<(), NotReady> {
        if self.role != Role::Active {
            return Err(NotReady::NotActive(self.role));
        }
        if self.switching.is_some() {
            return Err(NotReady::InProgress);
        }
        if let Some(t) = self.switch_hold_until.filter(|t| now < *t) {
            return Err(NotReady::HoldDown((t - now).as_millis()));
        }
        let Some(peer) = self.peer.filter(|_| self.peer_alive(now)) else {
            return Err(NotReady::PeerDead);
        };
        if peer.hb.role != Role::Standby {
            return Err(NotReady::PeerRole(peer.hb.role));
        }
        if !matches!(
            peer.hb.health.db,
            DbHealth::Replica {
                streaming: true,
                ..
            }
        ) {
            return Err(NotReady::NotReplicating);
        }
        if !peer.hb.health.ready {
            return Err(NotReady::PeerNotReady);
        }
        for (i, p) in self.paths.iter().enumerate() {
            if !self.path_healthy(p, now) {
                return Err(NotReady::PathDegraded(u8::try_from(i).unwrap_or(u8::MAX)));
            }
        }
        match self.health.db {
            DbHealth::Primary {
                standby_streaming: true,
                lag_bytes,
            } => {
                if lag_bytes > self.cfg.max_lag_bytes {
                    return Err(NotReady::Lagging {
                        lag: lag_bytes,
                        max: self.cfg.max_lag_bytes,
                    });
                }
            }
            _ => return Err(NotReady::NotReplicating),
        }
        let lease_ok = self.lease.held().is_some_and(|h| {
            h.token == self.epoch
                && h.expires
                    .checked_sub(self.cfg.expiry_margin)
                    .is_some_and(|e| now < e)
        });
        if !lease_ok || !self.witness_ok {
            return Err(NotReady::WitnessUnreachable);
        }
        if self.alone_row {
            return Err(NotReady::RunningAlone);
        }
        Ok(())
    }

    /// The current status (also emitted as [`Output::Status`] whenever it changes).
    pub fn status(&self, now: Instant) -> Status {
        Status {
            role: self.role,
            epoch: self.epoch(),
            peer_role: self
                .peer
                .filter(|_| self.peer_alive(now))
                .map(|p| p.hb.role),
            paths: self
                .paths
                .iter()
                .map(|p| self.path_healthy(p, now))
                .collect(),
            witness_reachable: self.witness_ok,
            lease_held: self.lease.held().is_some_and(|h| now < h.expires),
            sync_replication: self.sync_on,
            alone: self.role == Role::Active && self.alone_row,
            switching: self.switching.is_some() || self.offer_after_release,
            authority: self.authority(now),
            blocked: self.blocked.clone(),
        }
    }

    /// Feed one input observed at `now`.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        // First of all: an Active whose authority ended (e.g. it was frozen and just resumed)
        // releases the IP before it looks at anything else.
        self.last_now = self.last_now.max(now);
        self.guard(now);
        match input {
            Input::Heartbeat { path, heartbeat } => self.on_heartbeat(path, heartbeat, now),
            Input::PathLink { path, up } => {
                if let Some(p) = self.paths.get_mut(usize::from(path.0)) {
                    p.link_up = up;
                }
            }
            Input::Witness(reply) => {
                if let Some(outcome) = self.lease.on_reply(reply) {
                    self.on_lease(outcome, now);
                }
            }
            Input::FenceResult { id, ok, detail } => self.on_fence(id, ok, detail, now),
            Input::Command(c) => self.on_command(c, now),
            Input::Health(h) => self.on_health(h, now),
            Input::Timer => {}
        }
        self.step(now);
        self.guard(now);
        let st = self.status(now);
        if self.last_status.as_ref() != Some(&st) {
            self.last_status = Some(st.clone());
            self.out.push_back(Output::Status(st));
        }
    }

    fn event(&mut self, kind: EventKind, reason: String) {
        self.out.push_back(Output::Event(Event {
            kind,
            role: self.role,
            reason,
        }));
    }

    fn health_ok(&self) -> bool {
        self.health.sip_bound && self.health.db != DbHealth::Down
    }

    fn peer_alive(&self, now: Instant) -> bool {
        self.peer
            .is_some_and(|p| now.saturating_duration_since(p.last_rx) < self.cfg.dead_after)
    }

    fn path_healthy(&self, p: &PathState, now: Instant) -> bool {
        p.link_up
            && p.last_rx
                .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.path_degraded_after)
    }

    fn guard(&mut self, now: Instant) {
        if self.role == Role::Active && !self.serving(now) {
            let why = if self.lease.held().is_some_and(|h| h.token == self.epoch) {
                "lease not renewed in time (witness unreachable) and no acknowledgement from the peer"
            } else {
                "no lease and no acknowledgement from the peer"
            };
            self.demote(now, format!("authority ended: {why}"), true);
        }
    }

    fn on_heartbeat(&mut self, path: PathId, hb: Heartbeat, now: Instant) {
        if hb.from != self.cfg.peer || usize::from(path.0) >= self.paths.len() {
            return;
        }
        let key = (hb.incarnation, hb.seq);
        let current = self.peer.map(|p| (p.hb.incarnation, p.hb.seq));
        if current.is_some_and(|c| key < c) {
            // Older than what we have (reordered, or replayed): ignore entirely.
            return;
        }
        if let Some(p) = self.paths.get_mut(usize::from(path.0)) {
            p.last_rx = Some(now);
        }
        if current == Some(key) {
            // The same round on another path: it proves this path, nothing else.
            if let Some(p) = self.peer.as_mut() {
                p.last_rx = now;
            }
            return;
        }
        let offered_before = self
            .peer
            .is_some_and(|p| p.hb.handover_to == Some(self.cfg.node));
        self.peer = Some(PeerView { hb, last_rx: now });
        self.heard_peer = true;
        self.peer_fenced = false;
        if hb.handover_to == Some(self.cfg.node) && !offered_before {
            // The peer offers its freed lease: ask at once, whatever back-off an earlier
            // refusal set (a designated standby may have tried, and been refused, in the
            // moment between the peer's demotion and its offer).
            self.next_attempt = self.next_attempt.min(now);
        }
        self.highest = self.highest.max(hb.epoch);
        if self.role == Role::Active
            && hb.role == Role::Active
            && (hb.epoch > self.epoch || (hb.epoch == self.epoch && hb.from < self.cfg.node))
        {
            self.demote(
                now,
                format!(
                    "the peer is active with {} (ours: {})",
                    hb.epoch, self.epoch
                ),
                true,
            );
        }
        if self.role == Role::Starting && hb.role == Role::Active {
            self.set_role(Role::Standby, format!("{} is active", hb.from));
        }
    }

    fn on_lease(&mut self, o: LeaseOutcome, now: Instant) {
        let reachable = !matches!(o.answer, LeaseAnswer::Error(_));
        if reachable != self.witness_ok {
            self.witness_ok = reachable;
            let why = match &o.answer {
                LeaseAnswer::Error(e) => format!("witness unreachable: {e}"),
                _ => "witness reachable".to_string(),
            };
            self.event(EventKind::Witness, why);
        }
        match (o.op, o.answer) {
            (
                LeaseOp::Acquire { .. } | LeaseOp::AcquireAfterFence { .. },
                LeaseAnswer::Granted { token, .. },
            ) => {
                self.highest = self.highest.max(token);
                self.lease_holder_seen = Some(self.cfg.node);
                match self.role {
                    Role::Standby => {
                        self.become_active(token, now, format!("lease granted ({token})"));
                        // The acquire recorded this node as running alone.
                        self.alone_marked = true;
                        self.alone_row = true;
                    }
                    Role::Active if self.fence_authority && token > self.epoch => {
                        self.alone_marked = true;
                        self.alone_row = true;
                        self.fence_authority = false;
                        self.epoch = token;
                        self.out.push_back(Output::Epoch { epoch: token });
                        self.event(
                            EventKind::Witness,
                            format!("lease granted after fencing: now {token}"),
                        );
                    }
                    _ => {
                        // Not wanted any more (maintenance, fenced): give it back at once.
                        if let Some(r) = self.lease.start(LeaseOp::Release { token }, now) {
                            self.out.push_back(Output::Witness(r));
                        }
                    }
                }
            }
            (
                LeaseOp::Acquire { .. } | LeaseOp::AcquireAfterFence { .. },
                LeaseAnswer::Denied {
                    holder,
                    token,
                    ttl,
                    alone,
                },
            ) => {
                self.highest = self.highest.max(token);
                self.lease_holder_seen = holder;
                if self.role == Role::Standby
                    && let Some((n, since)) = alone.filter(|(n, _)| *n != self.cfg.node)
                {
                    self.behind(n, since, now);
                    return;
                }
                if self.role == Role::Active && self.fence_authority && token > self.epoch {
                    self.demote(
                        now,
                        format!(
                            "the witness has issued {token}, newer than ours ({})",
                            self.epoch
                        ),
                        true,
                    );
                } else if self.role == Role::Standby {
                    let who = holder.map_or("nobody".to_string(), |h| h.to_string());
                    self.block(format!(
                        "the witness refuses the lease: held by {who} ({token})"
                    ));
                    let handing_to_us = self
                        .peer
                        .is_some_and(|p| p.hb.handover_to == Some(self.cfg.node));
                    self.next_attempt = if handing_to_us {
                        // The peer's release may not have reached the witness yet.
                        now + self.cfg.interval
                    } else {
                        now + ttl.min(self.cfg.lease).max(self.cfg.interval)
                    };
                }
            }
            (
                LeaseOp::Acquire { .. } | LeaseOp::AcquireAfterFence { .. },
                LeaseAnswer::Error(e),
            ) => {
                if self.role == Role::Standby {
                    self.no_lease(e, now);
                }
            }
            (
                op @ (LeaseOp::Renew { .. }
                | LeaseOp::MarkAlone { .. }
                | LeaseOp::ClearAlone { .. }),
                LeaseAnswer::Granted { .. },
            ) => {
                self.lease_holder_seen = Some(self.cfg.node);
                if op.held_token() == Some(self.epoch) && self.role == Role::Active {
                    self.on_alone_answer(op);
                }
                if self.renew_failing {
                    self.renew_failing = false;
                    self.event(EventKind::Witness, "lease renewed again".to_string());
                }
            }
            (
                op @ (LeaseOp::Renew { .. }
                | LeaseOp::MarkAlone { .. }
                | LeaseOp::ClearAlone { .. }),
                LeaseAnswer::Denied { holder, token, .. },
            ) => {
                let ours = op.held_token().unwrap_or_default();
                self.highest = self.highest.max(token);
                self.lease_holder_seen = holder;
                if self.role == Role::Active && ours == self.epoch {
                    let who = holder.map_or("nobody".to_string(), |h| h.to_string());
                    self.demote(
                        now,
                        format!("the witness refused the renewal: lease held by {who} ({token})"),
                        true,
                    );
                }
            }
            (
                op @ (LeaseOp::Renew { .. }
                | LeaseOp::MarkAlone { .. }
                | LeaseOp::ClearAlone { .. }),
                LeaseAnswer::Error(e),
            ) => {
                self.on_alone_error(op);
                if self.role == Role::Active && !self.renew_failing {
                    self.renew_failing = true;
                    self.event(
                        EventKind::Witness,
                        format!("cannot renew the lease ({e}); serving while the lease or the peer's acknowledgements last"),
                    );
                }
            }
            (LeaseOp::Release { .. }, _) => {
                // Released (or the witness did not answer: the peer then acquires once the
                // lease runs out): offer the handover now, in a heartbeat sent at once.
                if std::mem::take(&mut self.offer_after_release) && self.role == Role::Standby {
                    self.offering_until = Some(now + self.cfg.handover_timeout);
                    self.hb_now = true;
                }
            }
        }
    }

    /// A takeover is wanted but the witness cannot be asked: fence, or stay and say why.
    fn no_lease(&mut self, err: String, now: Instant) {
        self.next_attempt = now + self.cfg.lease / 3;
        let peer_dead = !self.peer_alive(now);
        if self.cfg.fencing && peer_dead && self.heard_peer {
            if self.fence.is_none() {
                let id = self.next_fence_id;
                self.next_fence_id += 1;
                self.fence = Some(PendingFence {
                    id,
                    deadline: now + self.cfg.fence_timeout,
                });
                self.out.push_back(Output::RunFence {
                    id,
                    peer: self.cfg.peer,
                });
                self.event(
                    EventKind::Fence,
                    format!("witness unreachable ({err}): fencing {}", self.cfg.peer),
                );
            }
            return;
        }
        let why = if !self.cfg.fencing {
            "no fencing hook is configured"
        } else if !peer_dead {
            "the peer is alive (fencing only a silent peer)"
        } else {
            "the peer was never heard since this node started (fencing only a known peer)"
        };
        self.block(format!("no lease (witness unreachable) and {why}"));
    }

    fn on_fence(&mut self, id: u64, ok: bool, detail: String, now: Instant) {
        if self.fence.is_none_or(|f| f.id != id) {
            return;
        }
        self.fence = None;
        if !ok {
            self.event(EventKind::Fence, format!("fencing failed: {detail}"));
            self.block(format!("no lease and fencing failed: {detail}"));
            self.next_attempt = now + self.cfg.lease / 3;
            return;
        }
        self.event(
            EventKind::Fence,
            format!("fenced {}: {detail}", self.cfg.peer),
        );
        self.peer_fenced = true;
        if self.role == Role::Standby && self.health_ok() {
            let epoch = Epoch(self.highest.0.saturating_add(1));
            self.fence_authority = true;
            self.become_active(epoch, now, format!("peer fenced ({epoch})"));
        }
    }

    fn on_command(&mut self, c: Command, now: Instant) {
        match c {
            Command::Switchover => match self.switchover_readiness(now) {
                Ok(()) => {
                    self.switching = Some(Switching {
                        since: now,
                        deadline: now + self.cfg.handover_timeout,
                    });
                    self.out.push_back(Output::StopNewWork);
                    self.event(
                        EventKind::Switchover,
                        "switchover started: new work stopped, waiting for the standby to catch up"
                            .to_string(),
                    );
                }
                Err(why) => self.event(EventKind::Switchover, format!("switchover refused: {why}")),
            },
            Command::MaintenanceOn => match self.role {
                Role::Active => self.event(
                    EventKind::Maintenance,
                    "maintenance refused: this node is active, switch over first".to_string(),
                ),
                Role::Maintenance => {}
                _ => self.set_role(Role::Maintenance, "maintenance on".to_string()),
            },
            Command::MaintenanceOff => {
                if self.role == Role::Maintenance {
                    self.set_role(Role::Standby, "maintenance off".to_string());
                }
            }
        }
    }

    fn on_health(&mut self, h: LocalHealth, now: Instant) {
        self.health = h;
        self.highest = self.highest.max(h.db_epoch);
        if self.role == Role::Active && h.db_epoch > self.epoch {
            // The database was written under a newer epoch (the store's fence saw it, or the
            // probe read it): another node has taken over; this one must not write.
            self.demote(
                now,
                format!(
                    "the database holds {}, newer than ours ({}): another node took over",
                    h.db_epoch, self.epoch
                ),
                true,
            );
            return;
        }
        self.note_caught_up(h.db, now);
        if self.health_ok() {
            self.unhealthy_since = None;
        } else if self.unhealthy_since.is_none() {
            self.unhealthy_since = Some(now);
        }
        let Some(sw) = self.switching else { return };
        if self.role != Role::Active || now < sw.since {
            return;
        }
        if let DbHealth::Primary {
            standby_streaming: true,
            lag_bytes: 0,
        } = h.db
        {
            self.switching = None;
            self.hand_over(now, "switchover: the standby caught up".to_string());
        }
    }

    /// Graceful: release the IP, stop writes, release the lease and offer it to the peer.
    fn hand_over(&mut self, now: Instant, why: String) {
        let releasing = self.lease.held().is_some_and(|h| h.token == self.epoch);
        self.demote(
            now,
            format!("{why}; handing over to {}", self.cfg.peer),
            false,
        );
        if releasing {
            // Offered when the witness has answered the release (`on_lease`).
            self.offer_after_release = true;
        } else {
            self.offering_until = Some(now + self.cfg.handover_timeout);
        }
        self.event(
            EventKind::Switchover,
            format!("lease released for {}", self.cfg.peer),
        );
    }

    fn block(&mut self, reason: String) {
        if self.blocked.as_deref() != Some(reason.as_str()) {
            self.event(EventKind::TakeoverBlocked, reason.clone());
            self.blocked = Some(reason);
        }
    }

    fn set_role(&mut self, role: Role, reason: String) {
        if self.role != role {
            let from = self.role;
            self.role = role;
            self.event(EventKind::RoleChanged, format!("{from} → {role}: {reason}"));
            // Tell the peer at once.
            self.hb_now = true;
        }
    }

    fn become_active(&mut self, epoch: Epoch, now: Instant, reason: String) {
        self.epoch = epoch;
        self.highest = self.highest.max(epoch);
        self.alone_marked = false;
        self.alone_row = false;
        self.caught_up = false;
        self.sync_on_since = None;
        self.offering_until = None;
        self.offer_after_release = false;
        self.switching = None;
        self.blocked = None;
        self.peer_idle_since = None;
        self.active_first_seq = self.seq + 1;
        self.switch_hold_until = Some(now + self.cfg.hold_down);
        self.sync_on = false;
        self.renew_failing = false;
        self.set_role(Role::Active, reason);
        self.out.push_back(Output::PromoteDb { epoch });
        self.out.push_back(Output::Epoch { epoch });
        self.out.push_back(Output::TakeIp { epoch });
    }

    /// Stop being Active: release the IP first, then stop writes. `failure`: lost authority (go
    /// Fenced for the hold-down); otherwise a graceful handover (release the lease).
    fn demote(&mut self, now: Instant, reason: String, failure: bool) {
        let epoch = self.epoch;
        self.out.push_back(Output::ReleaseIp {
            epoch,
            graceful: !failure,
        });
        self.out.push_back(Output::DemoteDb {
            epoch,
            keep: self.alone_marked,
        });
        // Synchronous replication is not turned off here: that would release commits waiting
        // for the standby, acknowledging writes the next Active may not have. `DemoteDb` stops
        // the database (the waiting sessions end unacknowledged) and re-attaches it as a standby.
        self.sync_on = false;
        self.alone_marked = false;
        self.alone_row = false;
        if self.switching.take().is_some() && failure {
            self.event(
                EventKind::Switchover,
                "switchover aborted: authority lost".to_string(),
            );
        }
        let held = self.lease.held().filter(|h| h.token == epoch);
        if let (false, Some(h)) = (failure, held) {
            if let Some(r) = self.lease.start(LeaseOp::Release { token: h.token }, now) {
                self.out.push_back(Output::Witness(r));
            }
        } else {
            self.lease.forget();
        }
        self.fence_authority = false;
        self.active_first_seq = u64::MAX;
        self.switch_hold_until = Some(now + self.cfg.hold_down);
        if failure {
            self.fenced_until = Some(now + self.cfg.hold_down);
            self.set_role(Role::Fenced, reason);
        } else {
            self.set_role(Role::Standby, reason);
        }
    }

    fn step(&mut self, now: Instant) {
        if let Some(o) = self.lease.on_timeout(now) {
            self.on_lease(o, now);
        }
        if let Some(f) = self.fence.filter(|f| now >= f.deadline) {
            self.on_fence(
                f.id,
                false,
                "no answer from the fencing hook".to_string(),
                now,
            );
        }
        self.watch_paths(now);
        if self.offering_until.is_some_and(|t| now >= t) {
            self.offering_until = None;
        }
        match self.role {
            Role::Starting => {
                if now >= self.boot + self.cfg.dead_after {
                    self.set_role(Role::Standby, "listened for dead_after".to_string());
                }
            }
            Role::Fenced => {
                if self.fenced_until.is_none_or(|t| now >= t) {
                    self.set_role(Role::Standby, "hold-down over".to_string());
                }
            }
            Role::Standby => self.consider_takeover(now),
            Role::Active => self.active_step(now),
            Role::Maintenance => self.blocked = None,
        }
        if self.hb_now || now >= self.next_hb {
            self.hb_now = false;
            self.send_heartbeats(now);
        }
    }

    fn watch_paths(&mut self, now: Instant) {
        for i in 0..self.paths.len() {
            let p = self.paths[i];
            let h = self.path_healthy(&p, now);
            if h != p.healthy {
                self.paths[i].healthy = h;
                let what = if h { "healthy" } else { "degraded" };
                self.event(EventKind::Path, format!("heartbeat path {i} {what}"));
            }
        }
        let alive = self.peer_alive(now);
        if alive != self.peer_alive_reported {
            self.peer_alive_reported = alive;
            let why = if alive {
                format!("{} heard", self.cfg.peer)
            } else {
                format!(
                    "{} silent on all paths for {} ms",
                    self.cfg.peer,
                    self.cfg.dead_after.as_millis()
                )
            };
            self.event(EventKind::Peer, why);
        }
    }

    /// This node should be the one to take over when both are up and neither is Active.
    fn designated(&self, peer: &Heartbeat) -> bool {
        let peer_can = peer.role == Role::Starting
            || (peer.role == Role::Standby
                && peer.health.sip_bound
                && peer.health.db != DbHealth::Down);
        if !peer_can {
            return true;
        }
        self.cfg
            .preferred
            .map_or(self.cfg.node < self.cfg.peer, |p| p == self.cfg.node)
    }

    fn consider_takeover(&mut self, now: Instant) {
        let alive = self.peer_alive(now);
        let want: Option<String> = match self.peer.filter(|_| alive) {
            None => Some(if self.heard_peer {
                format!("{} silent on all paths", self.cfg.peer)
            } else {
                format!("{} not heard since start", self.cfg.peer)
            }),
            Some(p) if p.hb.role == Role::Active => {
                self.peer_idle_since = None;
                None
            }
            Some(p) => {
                let since = *self.peer_idle_since.get_or_insert(now);
                if p.hb.handover_to == Some(self.cfg.node) {
                    Some("switchover: the peer handed over".to_string())
                } else if self.offering_until.is_some() || self.offer_after_release {
                    None
                } else if self.designated(&p.hb) {
                    Some(format!(
                        "{} is {}, none is active",
                        self.cfg.peer, p.hb.role
                    ))
                } else if now.saturating_duration_since(since)
                    >= self.cfg.dead_after * 2 + self.cfg.lease
                {
                    Some(format!(
                        "{} is {} and did not take over",
                        self.cfg.peer, p.hb.role
                    ))
                } else {
                    None
                }
            }
        };
        if want.is_none() {
            self.blocked = None;
            return;
        }
        if now < self.boot + self.cfg.dead_after {
            return;
        }
        if !self.health_ok() {
            self.block("local health: database down or SIP not bound".to_string());
            return;
        }
        if self.lease.busy() || self.fence.is_some() || now < self.next_attempt {
            return;
        }
        let min_token = self.highest;
        let op = if self.peer_fenced {
            LeaseOp::AcquireAfterFence { min_token }
        } else {
            LeaseOp::Acquire { min_token }
        };
        if let Some(r) = self.lease.start(op, now) {
            self.next_attempt = now + self.cfg.lease / 3;
            self.out.push_back(Output::Witness(r));
        }
    }

    fn active_step(&mut self, now: Instant) {
        // An Active that cannot serve (database down, SIP not bound) for `dead_after` hands over
        // to a standby that can.
        // (Not while the witness records this node as running alone: the peer may lack writes
        // and the witness would refuse it the lease.)
        let peer_can_serve = self.peer.is_some_and(|p| {
            p.hb.role == Role::Standby && p.hb.health.sip_bound && p.hb.health.db != DbHealth::Down
        }) && self.peer_alive(now)
            && !self.alone_row;
        if let Some(t) = self.unhealthy_since
            && now >= t + self.cfg.dead_after
            && peer_can_serve
        {
            self.switching = None;
            let why = if self.health.db == DbHealth::Down {
                "local database down"
            } else {
                "SIP sockets not bound"
            };
            self.hand_over(
                now,
                format!("{why} for {} ms", self.cfg.dead_after.as_millis()),
            );
            return;
        }
        // Synchronous replication while the standby is there to acknowledge; off only once the
        // witness records that this node runs alone (`alone.rs`).
        let want_sync = self.want_sync(now);
        self.follow_sync(want_sync, now);
        // Keep the lease (or get one, after a fencing takeover), setting or clearing the
        // "running alone" mark when that is due.
        if !self.lease.busy() {
            let due = self
                .lease
                .last_sent()
                .is_none_or(|s| now >= s + self.cfg.lease / 3);
            let op = match self.lease.held() {
                Some(h) if h.token == self.epoch => self.alone_op(want_sync, h.token),
                _ => LeaseOp::AcquireAfterFence {
                    min_token: self.epoch,
                },
            };
            let urgent = matches!(op, LeaseOp::MarkAlone { .. } | LeaseOp::ClearAlone { .. })
                && self
                    .lease
                    .last_sent()
                    .is_none_or(|s| now >= s + self.cfg.interval);
            if (due || urgent)
                && let Some(r) = self.lease.start(op, now)
            {
                self.out.push_back(Output::Witness(r));
            }
        }
        if let Some(sw) = self.switching.filter(|s| now >= s.deadline) {
            self.switching = None;
            self.out.push_back(Output::ResumeWork);
            self.event(
                EventKind::Switchover,
                format!(
                    "switchover aborted: the standby did not catch up within {} ms",
                    (sw.deadline - sw.since).as_millis()
                ),
            );
        }
    }

    fn send_heartbeats(&mut self, now: Instant) {
        self.seq += 1;
        if self.sent.len() == SENT_HISTORY {
            self.sent.pop_front();
        }
        self.sent.push_back((self.seq, now));
        let ready = self.role == Role::Standby
            && self.health_ok()
            && matches!(
                self.health.db,
                DbHealth::Replica {
                    streaming: true,
                    ..
                }
            )
            && now >= self.boot + self.cfg.dead_after;
        let hb = Heartbeat {
            from: self.cfg.node,
            incarnation: self.cfg.incarnation,
            seq: self.seq,
            role: self.role,
            epoch: self.epoch(),
            health: Health {
                db: self.health.db,
                sip_bound: self.health.sip_bound,
                ready,
                lease_holder_seen: self.lease_holder_seen,
            },
            ack: if self.role == Role::Active {
                None
            } else {
                self.peer.map(|p| Ack {
                    incarnation: p.hb.incarnation,
                    seq: p.hb.seq,
                })
            },
            handover_to: self.offering_until.map(|_| self.cfg.peer),
        };
        for (i, p) in self.paths.iter().enumerate() {
            if p.link_up {
                self.out.push_back(Output::SendHeartbeat {
                    path: PathId(u8::try_from(i).unwrap_or(u8::MAX)),
                    heartbeat: hb,
                });
            }
        }
        self.next_hb = now + self.cfg.interval;
    }
}

#[path = "alone.rs"]
mod alone;

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
