//! A simulated pair: two [`ha::Node`]s and a witness whose lease row behaves as the PostgreSQL
//! compare-and-set does ([`ha::witness::LeaseRow`]), on one fake clock. The test can cut any link,
//! freeze a node (its inputs are buffered and its timers do not run, as under SIGSTOP), kill and
//! restart nodes, stop the witness, and advance time. After every event the invariants are
//! checked:
//!
//! - never two nodes holding the application IP while serving (Active with unexpired authority)
//!   at the same instant — no split brain;
//! - a serving node's epoch is the highest token ever issued (by the witness or a fencing
//!   takeover) — the data writer is always the newest;
//! - a running (not frozen) node holds the IP only while Active;
//! - no acknowledged write is lost: writes are made on the serving node every
//!   [`WRITE_EVERY`] and acknowledged as PostgreSQL would (at once with synchronous replication
//!   off; with it on, once the standby has them — waiting commits are released when it is turned
//!   off and dropped when the database is demoted or the node dies); a node that takes over by
//!   lease must hold every acknowledged write, and the witness's row must not say that the
//!   other node runs alone (`alone.rs` in the crate).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ha::witness::{LeaseRequest, LeaseRow};
use ha::{
    Authority, Command, Config, DbHealth, Epoch, Heartbeat, Input, LocalHealth, Node, NodeId,
    Output, PathId, Role, WitnessReply,
};

pub const MS: Duration = Duration::from_millis(1);
const KEY: &[u8] = b"simulation key";
/// A frozen process's socket buffer, in messages.
const BUFFER: usize = 256;
/// The serving node takes a write this often.
pub const WRITE_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
enum Msg {
    Hb {
        to: usize,
        path: u8,
        wire: Vec<u8>,
    },
    ToWitness {
        from: usize,
        inc: u64,
        req: LeaseRequest,
    },
    FromWitness {
        to: usize,
        inc: u64,
        reply: WitnessReply,
    },
    FenceDone {
        to: usize,
        inc: u64,
        id: u64,
    },
}

pub struct Slot {
    pub node: Option<Node>,
    pub frozen: bool,
    buffered: VecDeque<Input>,
    pub ip: bool,
    pub db_primary: bool,
    pub stopped_work: bool,
    /// The local PostgreSQL has failed.
    pub db_down: bool,
    /// Powered off by a fencing hook: stays off until the survivor holds a lease again.
    pub fenced_off: bool,
    /// The highest epoch stamped in this node's database (on disk: survives kills).
    pub db_epoch: Epoch,
    inc: u64,
    next_health: Instant,
    /// The writes in this node's database, in order (on disk: survives kills).
    pub log: Vec<u64>,
    /// Synchronous replication configured on this node's PostgreSQL.
    pub sync: bool,
    /// Commits waiting for the standby (synchronous replication on).
    pending: Vec<u64>,
}

/// Which links are cut.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cuts {
    /// Heartbeat paths between the nodes (0 = service network, 1 = dedicated link).
    pub path: [bool; 2],
    /// Node i ↔ witness.
    pub witness: [bool; 2],
}

pub struct Sim {
    pub t0: Instant,
    pub now: Instant,
    pub slots: [Slot; 2],
    pub row: LeaseRow,
    pub witness_up: bool,
    pub cuts: Cuts,
    queue: BTreeMap<(Instant, u64), Msg>,
    msg_seq: u64,
    rng: u64,
    /// Random latencies (0.5–5 ms) instead of fixed ones.
    pub jitter: bool,
    /// Drop 10 % and duplicate 10 % of the messages (heartbeats and witness traffic).
    pub lossy: bool,
    pub fencing: bool,
    pub issued_max: Epoch,
    pub log: VecDeque<String>,
    pub steps: u64,
    next_inc: u64,
    /// When each node last started serving (for takeover measurements).
    pub took_ip_at: [Option<Instant>; 2],
    /// How many takeovers (TakeIp) happened.
    pub takeovers: u64,
    /// Events observed with a node serving on each authority: lease, peer acks, fence.
    pub authority_seen: [u64; 3],
    pub released_ip_at: [Option<Instant>; 2],
    /// Each node's clock rate against real (= the witness's) time: 1.0 is exact.
    pub rate: [f64; 2],
    /// Panic on a violation (default), or record it in `violations`.
    pub strict: bool,
    pub violations: Vec<String>,
    next_write_at: Instant,
    next_write: u64,
    /// Writes acknowledged to clients.
    pub acked: Vec<u64>,
    /// Takeovers by lease checked to hold every acknowledged write.
    pub loss_checks: u64,
    /// Takeovers refused because the row said the other node runs alone.
    pub behind_refusals: u64,
    /// Acknowledged writes a fencing takeover (which cannot read the row) went on without.
    pub fence_lost: usize,
}

pub fn config(i: usize, fencing: bool) -> Config {
    let me = NodeId(i as u32 + 1);
    let peer = NodeId(2 - i as u32);
    let mut c = Config::new(me, peer);
    c.fencing = fencing;
    c
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        Sim::with(seed, false)
    }

    /// A pair whose nodes have a fencing hook (`fencing`) or not.
    pub fn with(seed: u64, fencing: bool) -> Sim {
        let t0 = Instant::now();
        let slot = || Slot {
            node: None,
            frozen: false,
            buffered: VecDeque::new(),
            ip: false,
            db_primary: false,
            stopped_work: false,
            db_down: false,
            fenced_off: false,
            db_epoch: Epoch(0),
            inc: 0,
            next_health: t0,
            log: Vec::new(),
            sync: false,
            pending: Vec::new(),
        };
        let mut s = Sim {
            t0,
            now: t0,
            slots: [slot(), slot()],
            row: LeaseRow::default(),
            witness_up: true,
            cuts: Cuts::default(),
            queue: BTreeMap::new(),
            msg_seq: 0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            jitter: false,
            lossy: false,
            fencing,
            issued_max: Epoch(0),
            log: VecDeque::new(),
            steps: 0,
            next_inc: 1,
            took_ip_at: [None, None],
            takeovers: 0,
            authority_seen: [0; 3],
            rate: [1.0, 1.0],
            strict: true,
            violations: Vec::new(),
            released_ip_at: [None, None],
            next_write_at: t0,
            next_write: 1,
            acked: Vec::new(),
            loss_checks: 0,
            behind_refusals: 0,
            fence_lost: 0,
        };
        s.start(0);
        s.start(1);
        s
    }

    pub fn rand(&mut self) -> u64 {
        // xorshift64*: deterministic, seeded; no dependency.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    /// Node `i`'s clock reading at real time `t`.
    pub fn local(&self, i: usize, t: Instant) -> Instant {
        if self.rate[i] == 1.0 {
            t
        } else {
            self.t0 + (t - self.t0).mul_f64(self.rate[i])
        }
    }

    /// The real time at which node `i`'s clock reads `l` (rounded up).
    fn real(&self, i: usize, l: Instant) -> Instant {
        if self.rate[i] == 1.0 {
            l
        } else {
            self.t0
                + l.saturating_duration_since(self.t0).div_f64(self.rate[i])
                + Duration::from_micros(1)
        }
    }

    /// Real time of node `i`'s next timer.
    fn due(&self, i: usize) -> Option<Instant> {
        let s = &self.slots[i];
        let t = s.node.as_ref().and_then(|n| n.poll_timeout())?;
        Some(self.real(i, t))
    }

    fn violation(&mut self, what: String) {
        let msg = format!("{what} (at {} ms)\n{}", self.ms(), self.dump());
        if self.strict {
            panic!("{msg}");
        }
        self.violations.push(what);
    }

    fn note(&mut self, line: String) {
        if self.log.len() == 400 {
            self.log.pop_front();
        }
        let at = self.ms();
        self.log.push_back(format!("{at:>8} ms  {line}"));
    }

    pub fn dump(&self) -> String {
        self.log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    pub fn role(&self, i: usize) -> Option<Role> {
        self.slots[i].node.as_ref().map(|n| n.role())
    }

    /// Answers on the application IP: running (not frozen), holds the IP, believes it is
    /// Active. This is what phones would see; two at once is split brain.
    pub fn answering(&self, i: usize) -> bool {
        let s = &self.slots[i];
        s.ip && !s.frozen && s.node.as_ref().is_some_and(|n| n.role() == Role::Active)
    }

    pub fn serving(&self, i: usize) -> bool {
        self.slots[i].ip
            && self.slots[i]
                .node
                .as_ref()
                .is_some_and(|n| n.serving(self.local(i, self.now)))
    }

    pub fn node(&self, i: usize) -> &Node {
        self.slots[i].node.as_ref().expect("node up")
    }

    // ---- faults -------------------------------------------------------------------------

    pub fn start(&mut self, i: usize) {
        if self.slots[i].node.is_some() || self.slots[i].fenced_off {
            return;
        }
        let mut c = config(i, self.fencing);
        c.incarnation = self.next_inc;
        self.next_inc += 1;
        self.slots[i].inc = c.incarnation;
        self.slots[i].frozen = false;
        self.slots[i].buffered.clear();
        self.slots[i].db_primary = false;
        self.slots[i].stopped_work = false;
        self.slots[i].sync = false;
        self.slots[i].pending.clear();
        self.slots[i].next_health = self.now;
        let local = self.local(i, self.now);
        self.slots[i].node = Some(Node::new(c, local).expect("valid config"));
        self.note(format!("n{} started", i + 1));
        self.drain(i);
    }

    pub fn kill(&mut self, i: usize) {
        if self.slots[i].node.take().is_some() {
            self.note(format!("n{} killed", i + 1));
        }
        // Commits waiting for the standby die with the process: never acknowledged.
        self.slots[i].pending.clear();
        self.slots[i].ip = false;
        self.slots[i].frozen = false;
        self.slots[i].buffered.clear();
    }

    pub fn freeze(&mut self, i: usize) {
        if self.slots[i].node.is_some() && !self.slots[i].frozen {
            self.slots[i].frozen = true;
            self.note(format!("n{} frozen (SIGSTOP)", i + 1));
        }
    }

    pub fn resume(&mut self, i: usize) {
        if !self.slots[i].frozen {
            return;
        }
        self.slots[i].frozen = false;
        self.note(format!("n{} resumed (SIGCONT)", i + 1));
        // Everything that queued in its sockets is read now, then its timers run.
        while let Some(input) = self.slots[i].buffered.pop_front() {
            self.feed(i, input);
        }
        self.feed(i, Input::Timer);
    }

    pub fn cut_all(&mut self, i: usize, cut: bool) {
        self.cuts.path = [cut, cut];
        self.cuts.witness[i] = cut;
    }

    pub fn heal(&mut self) {
        self.cuts = Cuts::default();
        self.witness_up = true;
        self.lossy = false;
        self.slots[0].db_down = false;
        self.slots[1].db_down = false;
    }

    pub fn command(&mut self, i: usize, c: Command) {
        self.feed(i, Input::Command(c));
    }

    // ---- the event loop ---------------------------------------------------------------------

    fn latency(&mut self, base: Duration) -> Duration {
        if self.jitter {
            Duration::from_micros(500 + self.rand() % 4500)
        } else {
            base
        }
    }

    fn send(&mut self, delay: Duration, msg: Msg) {
        // A lossy network drops and duplicates datagrams (not the fencing hook's answer).
        let lossy = self.lossy && !matches!(msg, Msg::FenceDone { .. });
        if lossy && self.rand() % 100 < 10 {
            return;
        }
        if lossy && self.rand() % 100 < 10 {
            self.msg_seq += 1;
            let again = delay + Duration::from_micros(self.rand() % 20_000);
            self.queue
                .insert((self.now + again, self.msg_seq), msg.clone());
        }
        self.msg_seq += 1;
        self.queue.insert((self.now + delay, self.msg_seq), msg);
    }

    /// The network between primary `p`'s database and the other node's is up.
    fn repl_link(&self, p: usize) -> bool {
        let (me, other) = (&self.slots[p], &self.slots[1 - p]);
        me.db_primary
            && !me.db_down
            && !other.db_down
            && other.node.is_some()
            && !other.frozen
            && !self.cuts.path[0]
    }

    /// Running, Active and serving: what the peer's re-attach watch must see.
    fn is_active(&self, i: usize) -> bool {
        !self.slots[i].frozen && self.serving(i)
    }

    /// The other node's database follows primary `p`'s: a replica on the same history, or any
    /// replica once `p` is Active (the re-attach rewinds it).
    fn streams(&self, p: usize) -> bool {
        let (me, other) = (&self.slots[p], &self.slots[1 - p]);
        let prefix = other.log.len() <= me.log.len() && other.log[..] == me.log[..other.log.len()];
        self.repl_link(p) && !other.db_primary && (prefix || self.is_active(p))
    }

    /// Streaming replication from primary `p`: the replica follows its log, and commits waiting
    /// for it are acknowledged. Once `p` is Active, the other node re-attaches (as the driver
    /// does on `DemoteDb` and its re-attach watch: a database still primary on a node that is
    /// not Active, or a diverged replica, is rewound onto the Active's).
    fn replicate(&mut self, p: usize) {
        let o = 1 - p;
        if self.repl_link(p) && self.is_active(p) && !self.is_active(o) {
            if self.slots[o].db_primary {
                self.slots[o].db_primary = false;
                self.slots[o].pending.clear();
                self.slots[o].sync = false;
                self.note(format!("n{} re-attaches to n{}", o + 1, p + 1));
            }
            let log = &self.slots[p].log;
            let r = &self.slots[o].log;
            if !(r.len() <= log.len() && r[..] == log[..r.len()]) {
                self.slots[o].log.clear();
                self.note(format!("n{} rewound onto n{}", o + 1, p + 1));
            }
        }
        if !self.streams(p) {
            return;
        }
        let log = self.slots[p].log.clone();
        let r = &mut self.slots[1 - p];
        if !(r.log.len() <= log.len() && r.log[..] == log[..r.log.len()]) {
            r.log.clear();
        }
        let have = r.log.len();
        r.log.extend_from_slice(&log[have..]);
        if self.slots[p].sync {
            let done = std::mem::take(&mut self.slots[p].pending);
            self.acked.extend(done);
        }
    }

    /// A client's write on node `i` (serving): committed locally, acknowledged as PostgreSQL
    /// would.
    fn write(&mut self, i: usize) {
        let id = self.next_write;
        self.next_write += 1;
        self.slots[i].log.push(id);
        if self.slots[i].sync {
            self.slots[i].pending.push(id);
            self.replicate(i);
        } else {
            self.acked.push(id);
        }
    }

    fn health(&mut self, i: usize) -> LocalHealth {
        for p in 0..2 {
            self.replicate(p);
        }
        let streams_to_me = self.streams(1 - i);
        let streams_from_me = self.streams(i);
        let other = &self.slots[1 - i];
        let other_running = other.node.is_some() && !other.frozen;
        // Replication runs over the service network (path 0).
        let repl_link = !self.cuts.path[0] && other_running;
        if streams_to_me {
            // Streaming: the replica has the primary's stamped writes.
            let e = other.db_epoch;
            self.slots[i].db_epoch = self.slots[i].db_epoch.max(e);
        }
        let me = &self.slots[i];
        let other = &self.slots[1 - i];
        let db = if me.db_down {
            DbHealth::Down
        } else if me.db_primary {
            DbHealth::Primary {
                standby_streaming: streams_from_me,
                lag_bytes: if other.log == me.log { 0 } else { 8192 },
            }
        } else {
            DbHealth::Replica {
                streaming: repl_link && streams_to_me,
                lag_bytes: 0,
            }
        };
        LocalHealth {
            db,
            sip_bound: true,
            db_epoch: me.db_epoch,
        }
    }

    /// Give one input to node `i` now (buffered if frozen, dropped if down).
    pub fn feed(&mut self, i: usize, input: Input) {
        let local = self.local(i, self.now);
        let slot = &mut self.slots[i];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        if slot.frozen {
            if slot.buffered.len() < BUFFER && !matches!(input, Input::Timer) {
                slot.buffered.push_back(input);
            }
            return;
        }
        node.handle_input(input, local);
        self.drain(i);
        self.check();
    }

    fn drain(&mut self, i: usize) {
        while let Some(o) = self.slots[i].node.as_mut().and_then(|n| n.poll_output()) {
            self.apply(i, o);
        }
    }

    fn apply(&mut self, i: usize, o: Output) {
        let n = i + 1;
        match o {
            Output::SendHeartbeat { path, heartbeat } => {
                if !self.cuts.path[usize::from(path.0)] {
                    let d = self.latency(MS);
                    self.send(
                        d,
                        Msg::Hb {
                            to: 1 - i,
                            path: path.0,
                            wire: heartbeat.encode(KEY),
                        },
                    );
                }
            }
            Output::Witness(req) => {
                if !self.cuts.witness[i] {
                    let d = self.latency(2 * MS);
                    let inc = self.slots[i].inc;
                    self.send(d, Msg::ToWitness { from: i, inc, req });
                }
            }
            Output::RunFence { id, .. } => {
                let victim = 1 - i;
                self.note(format!("n{n} fences n{}", victim + 1));
                self.kill(victim);
                self.slots[victim].fenced_off = true;
                let inc = self.slots[i].inc;
                self.send(50 * MS, Msg::FenceDone { to: i, inc, id });
            }
            Output::TakeIp { epoch } => {
                self.check_takeover(i);
                self.slots[i].ip = true;
                self.took_ip_at[i] = Some(self.now);
                self.takeovers += 1;
                self.issued_max = self.issued_max.max(epoch);
                self.note(format!("n{n} TAKES IP with {epoch}"));
            }
            Output::ReleaseIp { epoch, .. } => {
                if self.slots[i].ip {
                    self.released_ip_at[i] = Some(self.now);
                    self.note(format!("n{n} releases IP ({epoch})"));
                }
                self.slots[i].ip = false;
            }
            Output::PromoteDb { .. } => {
                self.slots[i].db_primary = true;
                // Promotion leaves synchronous replication off (`cluster_pg`).
                self.slots[i].sync = false;
            }
            Output::DemoteDb { keep: true, .. } => {
                // Left as it is: still a primary (the store's fence refuses writes), waiting
                // commits still wait for the standby.
                self.slots[i].stopped_work = false;
                self.note(format!("n{n} keeps its database (it ran alone)"));
            }
            Output::DemoteDb { keep: false, .. } => {
                self.slots[i].db_primary = false;
                self.slots[i].stopped_work = false;
                // The database stops: waiting commits end unacknowledged; the re-attach drops
                // synchronous_standby_names.
                self.slots[i].pending.clear();
                self.slots[i].sync = false;
            }
            Output::Epoch { epoch } => {
                // The database refuses writes stamped older than what it holds; a node must
                // never be in that position.
                if epoch < self.slots[i].db_epoch {
                    let stamped = self.slots[i].db_epoch;
                    self.violation(format!(
                        "n{n} writes with {epoch} over data stamped {stamped}"
                    ));
                }
                self.slots[i].db_epoch = epoch;
                self.issued_max = self.issued_max.max(epoch);
            }
            Output::StopNewWork => self.slots[i].stopped_work = true,
            Output::ResumeWork => self.slots[i].stopped_work = false,
            Output::Event(e) => self.note(format!("n{n} [{:?}] {}", e.kind, e.reason)),
            Output::SetSyncReplication { on } => {
                self.slots[i].sync = on;
                if !on {
                    // Turning it off releases the commits that were waiting.
                    let done = std::mem::take(&mut self.slots[i].pending);
                    self.acked.extend(done);
                }
                self.note(format!(
                    "n{n} synchronous replication {}",
                    if on { "on" } else { "off" }
                ));
            }
            Output::Status(_) => {}
        }
    }

    fn next_time(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = self.queue.keys().next().map(|k| k.0).into_iter().collect();
        for i in 0..2 {
            let s = &self.slots[i];
            if s.node.is_some() && !s.frozen {
                t.extend(self.due(i));
                t.push(s.next_health);
            }
        }
        t.push(self.next_write_at);
        t.into_iter().min()
    }

    /// Run every event up to `end`, checking the invariants after each.
    pub fn run_until(&mut self, end: Instant) {
        while let Some(t) = self.next_time().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.steps += 1;
            if let Some((&k, _)) = self.queue.iter().next().filter(|(k, _)| k.0 <= self.now) {
                let msg = self.queue.remove(&k).expect("present");
                self.deliver(msg);
                continue;
            }
            if self.next_write_at <= self.now {
                self.next_write_at = self.now + WRITE_EVERY;
                for i in 0..2 {
                    let s = &self.slots[i];
                    if self.serving(i) && s.db_primary && !s.db_down && !s.stopped_work {
                        self.write(i);
                    }
                }
            }
            for i in 0..2 {
                let s = &self.slots[i];
                if s.node.is_none() || s.frozen {
                    continue;
                }
                if s.next_health <= self.now {
                    self.slots[i].next_health = self.now + 500 * MS;
                    let h = self.health(i);
                    self.feed(i, Input::Health(h));
                }
                if self.due(i).is_some_and(|t| t <= self.now) {
                    self.feed(i, Input::Timer);
                }
            }
        }
        self.now = self.now.max(end);
        self.check();
        // Clear a fence once the survivor holds a lease again (the operator's step).
        for i in 0..2 {
            let local = self.local(1 - i, self.now);
            let survivor_leased = self.slots[1 - i]
                .node
                .as_ref()
                .is_some_and(|n| n.status(local).lease_held && n.role() == Role::Active);
            if self.slots[i].fenced_off && (survivor_leased || self.slots[1 - i].node.is_none()) {
                self.slots[i].fenced_off = false;
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Run until node `i` serves, at most `limit`; the time it took.
    pub fn run_until_serving(&mut self, i: usize, limit: Duration) -> Option<Duration> {
        let start = self.now;
        let end = self.now + limit;
        while self.now < end {
            if self.serving(i) {
                return Some(self.now - start);
            }
            let step = (self.now + 5 * MS).min(end);
            self.run_until(step);
        }
        self.serving(i).then(|| self.now - start)
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Hb { to, path, wire } => {
                if self.cuts.path[usize::from(path)] {
                    return;
                }
                match Heartbeat::decode(&wire, KEY) {
                    Ok(heartbeat) => self.feed(
                        to,
                        Input::Heartbeat {
                            path: PathId(path),
                            heartbeat,
                        },
                    ),
                    Err(e) => panic!("simulated heartbeat failed to decode: {e}"),
                }
            }
            Msg::ToWitness { from, inc, req } => {
                if self.cuts.witness[from] {
                    return;
                }
                let answer = if self.witness_up {
                    let a = self.row.apply(&req, self.now);
                    self.issued_max = self.issued_max.max(self.row.token);
                    self.note(format!("witness: n{} {:?} -> {:?}", from + 1, req.op, a));
                    a
                } else {
                    ha::LeaseAnswer::Error("connection refused".to_string())
                };
                let d = self.latency(2 * MS);
                self.send(
                    d,
                    Msg::FromWitness {
                        to: from,
                        inc,
                        reply: WitnessReply { id: req.id, answer },
                    },
                );
            }
            Msg::FromWitness { to, inc, reply } => {
                if self.cuts.witness[to] || self.slots[to].inc != inc {
                    return;
                }
                self.feed(to, Input::Witness(reply));
            }
            Msg::FenceDone { to, inc, id } => {
                if self.slots[to].inc != inc {
                    return;
                }
                self.feed(
                    to,
                    Input::FenceResult {
                        id,
                        ok: true,
                        detail: "powered off".to_string(),
                    },
                );
            }
        }
    }

    /// Node `i` takes over: by lease, the row must not say the other runs alone, and its
    /// database must hold every acknowledged write. (A fencing takeover cannot read the row:
    /// not checked — see docs/ha.md, "Running alone".)
    fn check_takeover(&mut self, i: usize) {
        let local = self.local(i, self.now);
        let fence = self.slots[i]
            .node
            .as_ref()
            .is_some_and(|n| n.authority(local) == Some(Authority::Fence));
        let have: HashSet<u64> = self.slots[i].log.iter().copied().collect();
        if fence || self.fencing {
            // A fencing takeover cannot read the row, and the fencing node's writes are not
            // recorded as alone: accepted by design (docs/ha.md), counted, and no longer
            // expected anywhere.
            let before = self.acked.len();
            self.acked.retain(|w| have.contains(w));
            self.fence_lost += before - self.acked.len();
            return;
        }
        let me = NodeId(i as u32 + 1);
        if let Some((n, since)) = self.row.alone.filter(|(n, _)| *n != me) {
            self.violation(format!(
                "n{} takes over while the row says {n} runs alone since {since}",
                i + 1
            ));
        }
        let missing: Vec<u64> = self
            .acked
            .iter()
            .copied()
            .filter(|w| !have.contains(w))
            .collect();
        self.loss_checks += 1;
        if !missing.is_empty() {
            let tail = |l: &Vec<u64>| l[l.len().saturating_sub(5)..].to_vec();
            self.violation(format!(
                "n{} takes over without {} acknowledged writes ({:?}…; logs end {:?} / {:?})",
                i + 1,
                missing.len(),
                &missing[..missing.len().min(5)],
                tail(&self.slots[0].log),
                tail(&self.slots[1].log),
            ));
        }
    }

    /// The row says node `i` runs alone (the other must not take over).
    pub fn alone(&self, i: usize) -> bool {
        self.row
            .alone
            .is_some_and(|(n, _)| n == NodeId(i as u32 + 1))
    }

    /// The invariants; panics with the recent history on a violation.
    pub fn check(&mut self) {
        let mut found = Vec::new();
        for i in 0..2 {
            let local = self.local(i, self.now);
            if let Some(a) = self.slots[i].node.as_ref().and_then(|n| n.authority(local)) {
                let k = match a {
                    Authority::Lease => 0,
                    Authority::PeerAck => 1,
                    Authority::Fence => 2,
                };
                self.authority_seen[k] += 1;
            }
        }
        if (0..2).filter(|i| self.answering(*i)).count() > 1 {
            found.push("SPLIT BRAIN: both nodes answer on the application IP".to_string());
        }
        for i in 0..2 {
            // Answering past the end of its authority, with no timer due now to end it.
            let due = self.due(i).is_some_and(|t| t <= self.now);
            if self.answering(i) && !self.serving(i) && !due {
                found.push(format!(
                    "n{} answers on the IP after its authority ended",
                    i + 1
                ));
            }
        }
        for i in (0..2).filter(|i| self.serving(*i)) {
            // Serving on the witness's lease or on the peer's promise: the newest token the
            // witness issued. (A fencing takeover, which cannot reach the witness, serves above
            // every epoch it knows — checked when it stamps its database — and lifts the
            // witness's tokens above its own as soon as it reaches it.)
            let n = self.node(i);
            let a = n.authority(self.local(i, self.now));
            let e = n.epoch();
            if a != Some(Authority::Fence) && e != self.row.token {
                found.push(format!(
                    "n{} serves with {e} ({a:?}) but the witness issued {}",
                    i + 1,
                    self.row.token
                ));
            }
        }
        for (i, s) in self.slots.iter().enumerate() {
            if let (Some(n), false, true) = (&s.node, s.frozen, s.ip)
                && n.role() != Role::Active
            {
                found.push(format!("n{} holds the IP as {}", i + 1, n.role()));
            }
        }
        for f in found {
            self.violation(f);
        }
    }
}
