//! The witness lease: the protocol the nodes speak, the SQL that holds it in the witness's
//! PostgreSQL, the sans-IO client each node runs, and a reference model of the row.
//!
//! # The lease row
//!
//! One row per cluster in the witness's PostgreSQL (the backup/report server or any small host):
//! `holder` (a node id or NULL), `token` (the fencing token, only ever increased) and `until` (the
//! lease's end, on the witness database's clock). Every operation is one `UPDATE … WHERE …` on that
//! row — a compare-and-set:
//!
//! - [`SQL_ACQUIRE`]: succeeds only if the row is free (`holder IS NULL`) or expired
//!   (`until <= clock_timestamp()`); it sets the holder, `token = GREATEST(token, min_token) + 1` and
//!   `until = clock_timestamp() + duration`.
//! - [`SQL_RENEW`]: succeeds only if `holder` and `token` are still the caller's — no other acquire
//!   happened, because every acquire increases the token. It moves `until` on.
//! - [`SQL_RELEASE`]: same condition; frees the row (graceful switchover, maintenance).
//! - When an UPDATE returns no row the driver runs [`SQL_READ`] and answers
//!   [`LeaseAnswer::Denied`] with what it read (informational only: safety rests on the CAS).
//!
//! # Why it is linearizable
//!
//! Each operation is a single-row UPDATE in one PostgreSQL server. PostgreSQL takes the row lock
//! and re-evaluates the WHERE clause on the newest committed version of the row (READ COMMITTED's
//! EvalPlanQual), so concurrent operations on the row are serialised and each one's condition is
//! checked against the effect of every operation before it: the row's history is a sequence, and
//! each operation takes effect at one instant between its send and its answer. Two acquires can
//! therefore never both succeed on the same unexpired lease, and tokens are unique and increasing.
//! The witness is a proven store used as designed; no consensus of our own.
//!
//! # Clock assumptions that remain
//!
//! - The lease's end is decided on the witness database's clock; the holder measures it on its
//!   own monotonic clock **from the moment it sent the request** (the witness's `until` was set
//!   later than that, so the holder's estimate is early, never late), shortened by a drift bound
//!   (`drift_ppm`, default 0.1 %) — so only bounded *rate* drift between the two clocks is
//!   assumed, never synchronised wall clocks.
//! - The holder stops serving a further `expiry_margin` before that estimate (time to release the
//!   IP and stop writes), see [`crate::Config`].
//! - A frozen holder (SIGSTOP, VM pause) cannot act on an expired lease: on resume, the node checks
//!   its authority against the current time before doing anything else and demotes.
//! - The driver must never deliver a witness answer whose request it did not send; answers are
//!   matched by request id and late ones are ignored.

use std::time::{Duration, Instant};

use crate::{Epoch, NodeId};

/// Creates the lease table (idempotent).
pub const SQL_CREATE: &str = "CREATE TABLE IF NOT EXISTS denwa_ha_lease (
    cluster text PRIMARY KEY,
    holder integer,
    token bigint NOT NULL DEFAULT 0,
    until timestamptz NOT NULL DEFAULT 'epoch',
    alone integer,
    alone_since bigint
)";

/// Adds the "running alone" columns to a lease table created before they existed (idempotent;
/// run after [`SQL_CREATE`]). `alone` is the node that runs without a synchronous standby,
/// `alone_since` the token it did so under first (see "Running alone" in the module docs).
pub const SQL_MIGRATE: &str = "ALTER TABLE denwa_ha_lease
    ADD COLUMN IF NOT EXISTS alone integer,
    ADD COLUMN IF NOT EXISTS alone_since bigint";

/// Creates the cluster's row if missing. `$1` cluster name.
pub const SQL_INIT: &str =
    "INSERT INTO denwa_ha_lease (cluster) VALUES ($1) ON CONFLICT (cluster) DO NOTHING";

/// Acquire. `$1` cluster, `$2` holder (int4), `$3` min_token (int8), `$4` duration in ms (int8).
/// Returns `holder, token, ttl_ms, alone, alone_since` when granted, no row when refused.
/// Refused too while the row says another node runs alone (this one may be behind); granted, it
/// records the new holder as running alone (it has no synchronous standby yet).
pub const SQL_ACQUIRE: &str = "UPDATE denwa_ha_lease
   SET holder = $2, token = GREATEST(token, $3) + 1,
       until = clock_timestamp() + $4 * interval '1 millisecond',
       alone = $2,
       alone_since = CASE WHEN alone = $2 THEN alone_since ELSE GREATEST(token, $3) + 1 END
 WHERE cluster = $1 AND (holder IS NULL OR until <= clock_timestamp())
   AND (alone IS NULL OR alone = $2)
 RETURNING holder, token,
       GREATEST(0, (EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000)::bigint) AS ttl_ms,
       alone, alone_since";

/// Acquire after a fencing takeover (the node already serves, the peer is powered off): as
/// [`SQL_ACQUIRE`] but whatever the row says about the peer running alone — the fencing
/// takeover went on without the peer's data already; the mark becomes the fencing node's.
pub const SQL_ACQUIRE_AFTER_FENCE: &str = "UPDATE denwa_ha_lease
   SET holder = $2, token = GREATEST(token, $3) + 1,
       until = clock_timestamp() + $4 * interval '1 millisecond',
       alone = $2,
       alone_since = CASE WHEN alone = $2 THEN alone_since ELSE GREATEST(token, $3) + 1 END
 WHERE cluster = $1 AND (holder IS NULL OR until <= clock_timestamp())
 RETURNING holder, token,
       GREATEST(0, (EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000)::bigint) AS ttl_ms,
       alone, alone_since";

/// Renew. `$1` cluster, `$2` holder, `$3` token, `$4` duration in ms. Succeeds while nobody else
/// acquired (even after `until` passed: the token proves no one took over in between).
pub const SQL_RENEW: &str = "UPDATE denwa_ha_lease
   SET until = clock_timestamp() + $4 * interval '1 millisecond'
 WHERE cluster = $1 AND holder = $2 AND token = $3
 RETURNING holder, token,
       GREATEST(0, (EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000)::bigint) AS ttl_ms,
       alone, alone_since";

/// Renew and record that the holder runs alone (before it turns synchronous replication off).
/// `$1` cluster, `$2` holder, `$3` token, `$4` duration in ms.
pub const SQL_MARK_ALONE: &str = "UPDATE denwa_ha_lease
   SET until = clock_timestamp() + $4 * interval '1 millisecond',
       alone = $2,
       alone_since = CASE WHEN alone = $2 THEN alone_since ELSE token END
 WHERE cluster = $1 AND holder = $2 AND token = $3
 RETURNING holder, token,
       GREATEST(0, (EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000)::bigint) AS ttl_ms,
       alone, alone_since";

/// Renew and clear the "running alone" mark (synchronous replication is back on and the standby
/// has caught up). `$1` cluster, `$2` holder, `$3` token, `$4` duration in ms.
pub const SQL_CLEAR_ALONE: &str = "UPDATE denwa_ha_lease
   SET until = clock_timestamp() + $4 * interval '1 millisecond',
       alone = NULL, alone_since = NULL
 WHERE cluster = $1 AND holder = $2 AND token = $3
 RETURNING holder, token,
       GREATEST(0, (EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000)::bigint) AS ttl_ms,
       alone, alone_since";

/// Release. `$1` cluster, `$2` holder, `$3` token. The "running alone" mark stays: the node that
/// ran alone is the only one with every acknowledged write.
pub const SQL_RELEASE: &str = "UPDATE denwa_ha_lease
   SET holder = NULL, until = clock_timestamp()
 WHERE cluster = $1 AND holder = $2 AND token = $3
 RETURNING holder, token, 0::bigint AS ttl_ms, alone, alone_since";

/// Read the row after a refused UPDATE. `$1` cluster. Returns `holder, token, ttl_ms, alone,
/// alone_since`.
pub const SQL_READ: &str = "SELECT holder, token,
       GREATEST(0, (EXTRACT(EPOCH FROM (until - clock_timestamp())) * 1000)::bigint) AS ttl_ms,
       alone, alone_since
  FROM denwa_ha_lease WHERE cluster = $1";

/// What a node asks of the witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOp {
    /// Take the lease if free or expired, with a token above `min_token` (the highest epoch the
    /// node knows, so tokens stay above any epoch a fencing takeover used).
    Acquire {
        /// Lower bound for the new token.
        min_token: Epoch,
    },
    /// [`LeaseOp::Acquire`] by a node serving after a fencing takeover: granted whatever the
    /// row says about the (powered-off) peer running alone.
    AcquireAfterFence {
        /// Lower bound for the new token.
        min_token: Epoch,
    },
    /// Extend the lease held under `token`.
    Renew {
        /// The token held.
        token: Epoch,
    },
    /// Give up the lease held under `token`.
    Release {
        /// The token held.
        token: Epoch,
    },
    /// Renew the lease held under `token` and record in the row that this node runs alone
    /// (before it turns synchronous replication off).
    MarkAlone {
        /// The token held.
        token: Epoch,
    },
    /// Renew the lease held under `token` and clear the "running alone" mark (synchronous
    /// replication is on again and the standby has caught up).
    ClearAlone {
        /// The token held.
        token: Epoch,
    },
}

impl LeaseOp {
    /// The token held, for the operations of a holder (`None` for an acquire).
    pub fn held_token(&self) -> Option<Epoch> {
        match *self {
            LeaseOp::Acquire { .. } | LeaseOp::AcquireAfterFence { .. } => None,
            LeaseOp::Renew { token }
            | LeaseOp::Release { token }
            | LeaseOp::MarkAlone { token }
            | LeaseOp::ClearAlone { token } => Some(token),
        }
    }

    /// An acquire (plain or after a fencing takeover).
    pub fn acquires(&self) -> bool {
        matches!(
            self,
            LeaseOp::Acquire { .. } | LeaseOp::AcquireAfterFence { .. }
        )
    }

    /// A renewal (plain, or one that sets or clears the "running alone" mark).
    pub fn renews(&self) -> bool {
        matches!(
            self,
            LeaseOp::Renew { .. } | LeaseOp::MarkAlone { .. } | LeaseOp::ClearAlone { .. }
        )
    }
}

/// A request to the witness (run [`SQL_ACQUIRE`]/[`SQL_RENEW`]/[`SQL_RELEASE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Request id; echo it in the [`WitnessReply`].
    pub id: u64,
    /// The requesting node.
    pub holder: NodeId,
    /// What to do.
    pub op: LeaseOp,
    /// Lease duration asked for.
    pub duration: Duration,
}

/// The witness's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The operation succeeded: the caller holds `token` for `ttl` from when the witness answered
    /// (for a release: no longer holds it).
    Granted {
        /// Fencing token (= epoch).
        token: Epoch,
        /// Remaining lease time on the witness's clock.
        ttl: Duration,
    },
    /// Refused: the row as read afterwards.
    Denied {
        /// Current holder, if any.
        holder: Option<NodeId>,
        /// Current token.
        token: Epoch,
        /// Remaining time of the current holder's lease (zero if expired).
        ttl: Duration,
        /// The row says this node runs alone since this token (no synchronous standby): any
        /// other node may be behind and must not take over.
        alone: Option<(NodeId, Epoch)>,
    },
    /// The witness could not be asked (connection refused, timeout, SQL error).
    Error(String),
}

/// An answer for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReply {
    /// The request's id.
    pub id: u64,
    /// The answer.
    pub answer: LeaseAnswer,
}

/// A finished lease operation, as the client reports it to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// What was asked.
    pub op: LeaseOp,
    /// What came back (a timeout becomes [`LeaseAnswer::Error`]).
    pub answer: LeaseAnswer,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    op: LeaseOp,
    sent: Instant,
    deadline: Instant,
}

/// A lease the client holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Fencing token.
    pub token: Epoch,
    /// Conservative local end: send time + ttl shortened by the drift bound.
    pub expires: Instant,
}

/// The sans-IO lease client: one request in flight at a time, each answered or timed out; tracks
/// the lease held and its conservative local expiry.
#[derive(Debug, Clone)]
pub struct LeaseClient {
    holder: NodeId,
    duration: Duration,
    drift_ppm: u32,
    timeout: Duration,
    next_id: u64,
    pending: Option<Pending>,
    held: Option<Held>,
    last_sent: Option<Instant>,
}

impl LeaseClient {
    /// A client for `holder` asking for `duration` leases; requests unanswered after `timeout`
    /// count as errors.
    pub fn new(holder: NodeId, duration: Duration, drift_ppm: u32, timeout: Duration) -> Self {
        LeaseClient {
            holder,
            duration,
            drift_ppm,
            timeout,
            next_id: 1,
            pending: None,
            held: None,
            last_sent: None,
        }
    }

    /// Start an operation. `None` if one is already in flight (releases excepted: a release
    /// replaces whatever is in flight, whose answer will then be ignored).
    pub fn start(&mut self, op: LeaseOp, now: Instant) -> Option<LeaseRequest> {
        let is_release = matches!(op, LeaseOp::Release { .. });
        if self.pending.is_some() && !is_release {
            return None;
        }
        if is_release {
            // Stop relying on the lease the moment we decide to give it up.
            self.held = None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending = Some(Pending {
            id,
            op,
            sent: now,
            deadline: now + self.timeout,
        });
        self.last_sent = Some(now);
        Some(LeaseRequest {
            id,
            holder: self.holder,
            op,
            duration: self.duration,
        })
    }

    /// Feed an answer; `None` if it answers no request in flight (late or unknown: ignored).
    pub fn on_reply(&mut self, reply: WitnessReply) -> Option<LeaseOutcome> {
        let p = self.pending.filter(|p| p.id == reply.id)?;
        self.pending = None;
        match (&p.op, &reply.answer) {
            (op, LeaseAnswer::Granted { token, ttl }) if op.acquires() || op.renews() => {
                let ttl = (*ttl).min(self.duration);
                let shrink = ttl.mul_f64(f64::from(self.drift_ppm) / 1_000_000.0);
                self.held = Some(Held {
                    token: *token,
                    expires: p.sent + ttl.saturating_sub(shrink),
                });
            }
            (op, LeaseAnswer::Denied { .. }) if op.renews() => self.held = None,
            _ => {}
        }
        Some(LeaseOutcome {
            op: p.op,
            answer: reply.answer,
        })
    }

    /// Time out the request in flight if its deadline passed.
    pub fn on_timeout(&mut self, now: Instant) -> Option<LeaseOutcome> {
        let p = self.pending.filter(|p| now >= p.deadline)?;
        self.pending = None;
        Some(LeaseOutcome {
            op: p.op,
            answer: LeaseAnswer::Error(format!("no answer within {} ms", self.timeout.as_millis())),
        })
    }

    /// Forget the held lease (the node no longer relies on it).
    pub fn forget(&mut self) {
        self.held = None;
    }

    /// The lease held, if any (it may have expired: compare `expires` with now).
    pub fn held(&self) -> Option<Held> {
        self.held
    }

    /// A request is in flight.
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// The operation in flight, if any.
    pub fn in_flight(&self) -> Option<LeaseOp> {
        self.pending.map(|p| p.op)
    }

    /// When the last request was sent.
    pub fn last_sent(&self) -> Option<Instant> {
        self.last_sent
    }

    /// Deadline of the request in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.map(|p| p.deadline)
    }
}

/// The arguments of a request's statement: run `sql` with `$1` = cluster name, `$2` = `holder`,
/// `$3` = `token`, and `$4` = `duration_ms` when it is `Some` (acquire and renew).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlCall {
    /// [`SQL_ACQUIRE`], [`SQL_RENEW`] or [`SQL_RELEASE`].
    pub sql: &'static str,
    /// `$2` (int4).
    pub holder: i32,
    /// `$3` (int8): min_token for acquire, the held token otherwise.
    pub token: i64,
    /// `$4` (int8): the lease duration in milliseconds (not for release).
    pub duration_ms: Option<i64>,
}

/// A row as the statements ([`SQL_ACQUIRE`] … [`SQL_READ`]) return it:
/// `holder, token, ttl_ms, alone, alone_since`.
pub type SqlRow = (Option<i32>, i64, i64, Option<i32>, Option<i64>);

/// Why a request or a row cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// A node id above `i32::MAX` (the column is `integer`).
    #[error("node id {0} does not fit the witness's integer column")]
    NodeId(u32),
    /// A token above `i64::MAX`.
    #[error("token {0} does not fit the witness's bigint column")]
    Token(u64),
    /// The row holds a value no node could have written.
    #[error("witness row has an invalid {0}")]
    Row(&'static str),
}

impl LeaseRequest {
    /// The statement and arguments that carry out this request on the witness.
    pub fn sql(&self) -> Result<SqlCall, SqlError> {
        let holder = i32::try_from(self.holder.0).map_err(|_| SqlError::NodeId(self.holder.0))?;
        let tok = |e: Epoch| i64::try_from(e.0).map_err(|_| SqlError::Token(e.0));
        let ms = i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX);
        let (sql, token) = match self.op {
            LeaseOp::Acquire { min_token } => (SQL_ACQUIRE, min_token),
            LeaseOp::AcquireAfterFence { min_token } => (SQL_ACQUIRE_AFTER_FENCE, min_token),
            LeaseOp::Renew { token } => (SQL_RENEW, token),
            LeaseOp::Release { token } => (SQL_RELEASE, token),
            LeaseOp::MarkAlone { token } => (SQL_MARK_ALONE, token),
            LeaseOp::ClearAlone { token } => (SQL_CLEAR_ALONE, token),
        };
        Ok(SqlCall {
            sql,
            holder,
            token: tok(token)?,
            // A release takes no duration.
            duration_ms: (sql != SQL_RELEASE).then_some(ms),
        })
    }
}

/// A row mapped: holder, token, ttl, and who runs alone since which token.
type Row = (Option<NodeId>, Epoch, Duration, Option<(NodeId, Epoch)>);

fn from_row(row: SqlRow) -> Result<Row, SqlError> {
    let (holder, token, ttl_ms, alone, alone_since) = row;
    let node = |h: i32, what| {
        u32::try_from(h)
            .map(NodeId)
            .map_err(|_| SqlError::Row(what))
    };
    let holder = holder.map(|h| node(h, "holder")).transpose()?;
    let token = Epoch(u64::try_from(token).map_err(|_| SqlError::Row("token"))?);
    let ttl = Duration::from_millis(u64::try_from(ttl_ms).map_err(|_| SqlError::Row("ttl_ms"))?);
    let alone = match (alone, alone_since) {
        (Some(a), Some(since)) => Some((
            node(a, "alone")?,
            Epoch(u64::try_from(since).map_err(|_| SqlError::Row("alone_since"))?),
        )),
        (None, None) => None,
        _ => return Err(SqlError::Row("alone/alone_since pair")),
    };
    Ok((holder, token, ttl, alone))
}

/// The answer to a request from what the witness returned: the UPDATE's row (`Some` when it
/// succeeded) and, when it returned none, the row [`SQL_READ`] found (`None`: the cluster's row is
/// missing — run [`SQL_INIT`]).
pub fn answer_from_rows(updated: Option<SqlRow>, read: Option<SqlRow>) -> LeaseAnswer {
    let mapped = match (updated, read) {
        (Some(row), _) => {
            from_row(row).map(|(_, token, ttl, _)| LeaseAnswer::Granted { token, ttl })
        }
        (None, Some(row)) => from_row(row).map(|(holder, token, ttl, alone)| LeaseAnswer::Denied {
            holder,
            token,
            ttl,
            alone,
        }),
        (None, None) => {
            return LeaseAnswer::Error("the witness has no lease row for this cluster".to_string());
        }
    };
    mapped.unwrap_or_else(|e| LeaseAnswer::Error(e.to_string()))
}

/// The lease row as the SQL above behaves, in memory: the reference model the partition-matrix
/// simulation uses as its witness, and the executable statement of the SQL's semantics (the
/// PostgreSQL test runs the same sequence against the real statements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRow {
    /// Current holder.
    pub holder: Option<NodeId>,
    /// Highest token issued.
    pub token: Epoch,
    /// Lease end on the witness's clock (`None`: never held / released).
    pub until: Option<Instant>,
    /// The node recorded as running alone, and the token it first did so under.
    pub alone: Option<(NodeId, Epoch)>,
}

impl LeaseRow {
    fn ttl(&self, now: Instant) -> Duration {
        self.until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
    }

    fn denied(&self, now: Instant) -> LeaseAnswer {
        LeaseAnswer::Denied {
            holder: self.holder,
            token: self.token,
            ttl: self.ttl(now),
            alone: self.alone,
        }
    }

    /// The caller holds the row under `token`.
    fn holds(&self, req: &LeaseRequest, token: Epoch) -> bool {
        self.holder == Some(req.holder) && self.token == token
    }

    /// Apply a request at witness time `now`, exactly as the SQL statement would.
    pub fn apply(&mut self, req: &LeaseRequest, now: Instant) -> LeaseAnswer {
        match req.op {
            LeaseOp::Acquire { min_token } | LeaseOp::AcquireAfterFence { min_token } => {
                let free = self.holder.is_none() || self.until.is_none_or(|u| u <= now);
                let fenced = matches!(req.op, LeaseOp::AcquireAfterFence { .. });
                let behind = !fenced && self.alone.is_some_and(|(n, _)| n != req.holder);
                if !free || behind {
                    return self.denied(now);
                }
                self.holder = Some(req.holder);
                self.token = Epoch(self.token.0.max(min_token.0).saturating_add(1));
                self.until = Some(now + req.duration);
                if self.alone.is_none_or(|(n, _)| n != req.holder) {
                    self.alone = Some((req.holder, self.token));
                }
                LeaseAnswer::Granted {
                    token: self.token,
                    ttl: req.duration,
                }
            }
            LeaseOp::Renew { token }
            | LeaseOp::MarkAlone { token }
            | LeaseOp::ClearAlone { token } => {
                if !self.holds(req, token) {
                    return self.denied(now);
                }
                self.until = Some(now + req.duration);
                match req.op {
                    LeaseOp::MarkAlone { .. }
                        if self.alone.is_none_or(|(n, _)| n != req.holder) =>
                    {
                        self.alone = Some((req.holder, token));
                    }
                    LeaseOp::ClearAlone { .. } => self.alone = None,
                    _ => {}
                }
                LeaseAnswer::Granted {
                    token,
                    ttl: req.duration,
                }
            }
            LeaseOp::Release { token } => {
                if !self.holds(req, token) {
                    return self.denied(now);
                }
                self.holder = None;
                self.until = Some(now);
                LeaseAnswer::Granted {
                    token,
                    ttl: Duration::ZERO,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn row_grants_one_holder_at_a_time_with_increasing_tokens() {
        let t0 = Instant::now();
        let mut row = LeaseRow::default();
        let req = |holder, op| LeaseRequest {
            id: 0,
            holder: NodeId(holder),
            op,
            duration: 1500 * MS,
        };
        let acq = |m| LeaseOp::Acquire {
            min_token: Epoch(m),
        };
        assert_eq!(
            row.apply(&req(1, acq(0)), t0),
            LeaseAnswer::Granted {
                token: Epoch(1),
                ttl: 1500 * MS
            }
        );
        // Held and unexpired: refused, with the holder's remaining time.
        assert_eq!(
            row.apply(&req(2, acq(0)), t0 + 500 * MS),
            LeaseAnswer::Denied {
                holder: Some(NodeId(1)),
                token: Epoch(1),
                ttl: 1000 * MS,
                alone: Some((NodeId(1), Epoch(1)))
            }
        );
        // Not even the holder may re-acquire an unexpired lease (a restarted node waits).
        assert!(matches!(
            row.apply(&req(1, acq(0)), t0 + 500 * MS),
            LeaseAnswer::Denied { .. }
        ));
        // Renew moves until on (clearing the "running alone" mark the acquire set); a wrong
        // token is refused.
        assert!(matches!(
            row.apply(
                &req(1, LeaseOp::ClearAlone { token: Epoch(1) }),
                t0 + 1000 * MS
            ),
            LeaseAnswer::Granted { .. }
        ));
        assert!(matches!(
            row.apply(&req(1, LeaseOp::Renew { token: Epoch(9) }), t0 + 1000 * MS),
            LeaseAnswer::Denied { .. }
        ));
        assert!(matches!(
            row.apply(&req(2, acq(0)), t0 + 2400 * MS),
            LeaseAnswer::Denied { .. }
        ));
        // Expired: node 2 gets token 2; min_token lifts the token above a fencing epoch.
        assert_eq!(
            row.apply(&req(2, acq(0)), t0 + 2500 * MS),
            LeaseAnswer::Granted {
                token: Epoch(2),
                ttl: 1500 * MS
            }
        );
        // The old holder's renew is refused now: its token is stale.
        assert!(matches!(
            row.apply(&req(1, LeaseOp::Renew { token: Epoch(1) }), t0 + 2600 * MS),
            LeaseAnswer::Denied {
                holder: Some(NodeId(2)),
                token: Epoch(2),
                ..
            }
        ));
        assert!(matches!(
            row.apply(
                &req(2, LeaseOp::ClearAlone { token: Epoch(2) }),
                t0 + 2650 * MS
            ),
            LeaseAnswer::Granted { .. }
        ));
        assert!(matches!(
            row.apply(
                &req(2, LeaseOp::Release { token: Epoch(2) }),
                t0 + 2700 * MS
            ),
            LeaseAnswer::Granted { .. }
        ));
        assert_eq!(
            row.apply(&req(1, acq(10)), t0 + 2700 * MS),
            LeaseAnswer::Granted {
                token: Epoch(11),
                ttl: 1500 * MS
            }
        );
    }

    #[test]
    fn row_refuses_an_acquire_to_the_node_left_behind_while_another_runs_alone() {
        let t0 = Instant::now();
        let mut row = LeaseRow::default();
        let req = |holder, op| LeaseRequest {
            id: 0,
            holder: NodeId(holder),
            op,
            duration: 1500 * MS,
        };
        let acq = LeaseOp::Acquire {
            min_token: Epoch(0),
        };
        // Node 1 acquires: recorded as running alone (no synchronous standby yet), then clears
        // the mark once its standby caught up, and marks again when the standby is lost.
        assert!(matches!(
            row.apply(&req(1, acq), t0),
            LeaseAnswer::Granted { .. }
        ));
        assert_eq!(row.alone, Some((NodeId(1), Epoch(1))));
        let clear = LeaseOp::ClearAlone { token: Epoch(1) };
        assert!(matches!(
            row.apply(&req(1, clear), t0 + 100 * MS),
            LeaseAnswer::Granted { .. }
        ));
        assert_eq!(row.alone, None);
        // Only the holder, under its token, can mark or clear.
        assert!(matches!(
            row.apply(
                &req(2, LeaseOp::MarkAlone { token: Epoch(1) }),
                t0 + 150 * MS
            ),
            LeaseAnswer::Denied { alone: None, .. }
        ));
        let mark = LeaseOp::MarkAlone { token: Epoch(1) };
        assert!(matches!(
            row.apply(&req(1, mark), t0 + 200 * MS),
            LeaseAnswer::Granted { .. }
        ));
        assert_eq!(row.alone, Some((NodeId(1), Epoch(1))));
        // Node 1 dies: its lease runs out, yet node 2 (behind) is refused, with the reason.
        assert_eq!(
            row.apply(&req(2, acq), t0 + 5000 * MS),
            LeaseAnswer::Denied {
                holder: Some(NodeId(1)),
                token: Epoch(1),
                ttl: Duration::ZERO,
                alone: Some((NodeId(1), Epoch(1)))
            }
        );
        // A release keeps the mark; node 1 itself may come back and acquire, keeping "since".
        assert!(matches!(
            row.apply(
                &req(1, LeaseOp::Release { token: Epoch(1) }),
                t0 + 5000 * MS
            ),
            LeaseAnswer::Granted { .. }
        ));
        assert!(matches!(
            row.apply(&req(2, acq), t0 + 5050 * MS),
            LeaseAnswer::Denied {
                holder: None,
                alone: Some(_),
                ..
            }
        ));
        assert!(matches!(
            row.apply(&req(1, acq), t0 + 5100 * MS),
            LeaseAnswer::Granted {
                token: Epoch(2),
                ..
            }
        ));
        assert_eq!(row.alone, Some((NodeId(1), Epoch(1))));
        // After a fencing takeover the peer's mark is overridden: it becomes the fencer's.
        assert!(matches!(
            row.apply(
                &req(
                    2,
                    LeaseOp::AcquireAfterFence {
                        min_token: Epoch(0)
                    }
                ),
                t0 + 9000 * MS
            ),
            LeaseAnswer::Granted {
                token: Epoch(3),
                ..
            }
        ));
        assert_eq!(row.alone, Some((NodeId(2), Epoch(3))));
    }

    #[test]
    fn requests_map_to_statements_and_rows_to_answers() {
        let req = |holder, op| LeaseRequest {
            id: 1,
            holder: NodeId(holder),
            op,
            duration: 1500 * MS,
        };
        let c = req(
            2,
            LeaseOp::Acquire {
                min_token: Epoch(7),
            },
        )
        .sql();
        assert_eq!(
            c,
            Ok(SqlCall {
                sql: SQL_ACQUIRE,
                holder: 2,
                token: 7,
                duration_ms: Some(1500)
            })
        );
        let c = req(2, LeaseOp::Release { token: Epoch(8) })
            .sql()
            .expect("fits");
        assert_eq!((c.sql, c.duration_ms), (SQL_RELEASE, None));
        assert_eq!(
            req(u32::MAX, LeaseOp::Renew { token: Epoch(1) }).sql(),
            Err(SqlError::NodeId(u32::MAX))
        );
        assert_eq!(
            req(
                1,
                LeaseOp::Renew {
                    token: Epoch(u64::MAX)
                }
            )
            .sql(),
            Err(SqlError::Token(u64::MAX))
        );
        assert_eq!(
            answer_from_rows(Some((Some(2), 8, 1499, Some(2), Some(8))), None),
            LeaseAnswer::Granted {
                token: Epoch(8),
                ttl: 1499 * MS
            }
        );
        assert_eq!(
            answer_from_rows(None, Some((Some(1), 7, 200, Some(1), Some(6)))),
            LeaseAnswer::Denied {
                holder: Some(NodeId(1)),
                token: Epoch(7),
                ttl: 200 * MS,
                alone: Some((NodeId(1), Epoch(6)))
            }
        );
        assert_eq!(
            answer_from_rows(None, Some((None, 7, 0, None, None))),
            LeaseAnswer::Denied {
                holder: None,
                token: Epoch(7),
                ttl: Duration::ZERO,
                alone: None
            }
        );
        assert_eq!(
            answer_from_rows(None, Some((Some(-1), 7, 0, None, None))),
            LeaseAnswer::Error("witness row has an invalid holder".to_string())
        );
        assert_eq!(
            answer_from_rows(None, Some((Some(1), 7, 0, Some(1), None))),
            LeaseAnswer::Error("witness row has an invalid alone/alone_since pair".to_string())
        );
        assert_eq!(
            req(2, LeaseOp::MarkAlone { token: Epoch(8) }).sql(),
            Ok(SqlCall {
                sql: SQL_MARK_ALONE,
                holder: 2,
                token: 8,
                duration_ms: Some(1500)
            })
        );
        assert_eq!(
            req(2, LeaseOp::ClearAlone { token: Epoch(8) })
                .sql()
                .map(|c| c.sql),
            Ok(SQL_CLEAR_ALONE)
        );
        assert!(matches!(
            answer_from_rows(None, None),
            LeaseAnswer::Error(_)
        ));
    }

    #[test]
    fn client_measures_expiry_from_send_time_and_ignores_late_answers() {
        let t0 = Instant::now();
        let mut c = LeaseClient::new(NodeId(1), 1500 * MS, 1000, 300 * MS);
        let r = c
            .start(
                LeaseOp::Acquire {
                    min_token: Epoch(0),
                },
                t0,
            )
            .expect("idle");
        assert!(
            c.start(
                LeaseOp::Acquire {
                    min_token: Epoch(0)
                },
                t0
            )
            .is_none(),
            "one at a time"
        );
        // Answered 100 ms later: the lease still counts from the send time, minus 0.1 % drift.
        let out = c.on_reply(WitnessReply {
            id: r.id,
            answer: LeaseAnswer::Granted {
                token: Epoch(1),
                ttl: 1500 * MS,
            },
        });
        assert!(out.is_some());
        assert_eq!(
            c.held(),
            Some(Held {
                token: Epoch(1),
                expires: t0 + 1500 * MS - Duration::from_micros(1500)
            })
        );
        // A duplicate answer is ignored.
        assert!(
            c.on_reply(WitnessReply {
                id: r.id,
                answer: LeaseAnswer::Error("x".into())
            })
            .is_none()
        );
        // A request unanswered past the timeout becomes an error; its late answer is ignored.
        let r2 = c
            .start(LeaseOp::Renew { token: Epoch(1) }, t0 + 500 * MS)
            .expect("idle");
        assert!(c.on_timeout(t0 + 799 * MS).is_none());
        assert!(matches!(
            c.on_timeout(t0 + 800 * MS),
            Some(LeaseOutcome {
                answer: LeaseAnswer::Error(_),
                ..
            })
        ));
        assert!(
            c.on_reply(WitnessReply {
                id: r2.id,
                answer: LeaseAnswer::Granted {
                    token: Epoch(1),
                    ttl: 1500 * MS
                },
            })
            .is_none()
        );
        // A witness claiming a longer ttl than asked is capped to the duration asked.
        let r3 = c
            .start(LeaseOp::Renew { token: Epoch(1) }, t0 + 900 * MS)
            .expect("idle");
        c.on_reply(WitnessReply {
            id: r3.id,
            answer: LeaseAnswer::Granted {
                token: Epoch(1),
                ttl: 3600 * 1000 * MS,
            },
        });
        assert_eq!(
            c.held().map(|h| h.expires),
            Some(t0 + 900 * MS + 1500 * MS - Duration::from_micros(1500))
        );
        // Release stops relying on the lease at once.
        assert!(
            c.start(LeaseOp::Release { token: Epoch(1) }, t0 + 1000 * MS)
                .is_some()
        );
        assert_eq!(c.held(), None);
    }
}
