//! Fencing of writes on a node of an active/standby pair: the epoch as a fencing token, checked
//! in the one place every write transaction of this crate passes (`db::write_tx!`).
//!
//! The rule. A clustered node ([`Fence::enable`]) writes only while the cluster driver has
//! granted it an epoch ([`Fence::grant`]) whose authority has not ended (`until`, the role
//! machine's conservative end of its lease, on this process's monotonic clock), and only into a
//! database whose `cluster_epoch` row holds exactly that epoch. Each write transaction:
//!
//! 1. before `BEGIN`: refused unless granted and `now < until`;
//! 2. first statement: `SELECT epoch FROM cluster_epoch … FOR SHARE` (PostgreSQL; SQLite's
//!    `BEGIN IMMEDIATE` already holds the write lock). A database epoch *newer* than the grant
//!    means another node has taken over: refused, and the newer epoch is published
//!    ([`Fence::watch_newer`]) so the driver demotes the node at once. An *older* one means
//!    the takeover's stamp is not in yet: refused;
//! 3. right before `COMMIT`: the grant is checked again (revoked, or its time ran out while the
//!    transaction ran — a process frozen mid-transaction and resumed).
//!
//! The new Active stamps its epoch ([`crate::Store::stamp_epoch`]: `UPDATE … WHERE epoch <=
//! new`) before it is granted. The row lock makes the two orderable: on one PostgreSQL a stamp
//! waits for every transaction that read the old epoch to end, and every transaction that
//! starts its read after the stamp sees the new epoch — so no write of an old Active commits
//! after a newer Active's stamp. A transaction of a frozen old Active cannot hold the stamp up
//! for long: each fenced transaction sets `idle_in_transaction_session_timeout` (2 s) for
//! itself, so PostgreSQL ends a session whose client stopped talking mid-transaction.
//!
//! A node taking over is *serving* before its stamp is in (the address moves first, so the
//! phones' traffic reaches it at once); the driver marks that moment ([`Fence::expect_grant`])
//! and a write arriving then waits for the grant, at most [`PENDING_MAX`], instead of being
//! refused: a phone's REGISTER right after a switchover is answered once the database is
//! writable (a few hundred ms) rather than with `500` and `Retry-After`.
//!
//! A standalone node never enables the fence: no extra statement, nothing refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// PostgreSQL ends a fenced transaction's session after this long idle inside it (ms).
pub const IDLE_IN_TX_MS: u64 = 2000;
/// The longest a write waits for a grant that a takeover in progress is about to give.
pub const PENDING_MAX: Duration = Duration::from_secs(3);
/// Refused writes are logged at most this often (with the count since the last line).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a write was refused by the fence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node holds no grant (standby, starting, fenced, or the stamp is not done yet).
    #[error("this node is not the active node of the pair")]
    NotActive,
    /// The grant's authority ended (the lease was not renewed in time; a frozen process).
    #[error("this node's authority for epoch {epoch} has ended")]
    AuthorityEnded {
        /// The epoch granted.
        epoch: u64,
    },
    /// The database holds a newer epoch: another node has taken over.
    #[error("the database holds epoch {db}, newer than this node's epoch {ours}")]
    NewerEpoch {
        /// This node's epoch.
        ours: u64,
        /// The database's.
        db: u64,
    },
    /// The database holds an older epoch: this node's takeover stamp is not in it.
    #[error("epoch {ours} is not stamped in the database (it holds epoch {db})")]
    NotStamped {
        /// This node's epoch.
        ours: u64,
        /// The database's.
        db: u64,
    },
}

/// What the driver granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The epoch writes are stamped with.
    pub epoch: u64,
    /// The authority's end (`None`: no end, a fencing takeover).
    pub until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    enabled: bool,
    grant: Option<Grant>,
    /// A takeover is stamping its epoch: writes wait for the grant until then.
    pending_until: Option<Instant>,
    last_log: Option<Instant>,
    unlogged: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    newer: watch::Sender<u64>,
    refused: AtomicU64,
    /// Woken whenever the grant or the pending mark changes.
    changed: tokio::sync::Notify,
}

/// The write fence of one store (cheap to clone; all clones share it).
#[derive(Debug, Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

impl Default for Fence {
    fn default() -> Self {
        Fence::new()
    }
}

impl Fence {
    /// A disabled fence (standalone: nothing checked).
    pub fn new() -> Fence {
        Fence {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                newer: watch::Sender::new(0),
                refused: AtomicU64::new(0),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on every write needs a grant (a clustered node; call before anything writes).
    pub fn enable(&self) {
        self.state().enabled = true;
    }

    /// Whether writes are fenced.
    pub fn enabled(&self) -> bool {
        self.state().enabled
    }

    /// Allows writes under `epoch` until `until` (the driver calls this after the epoch is
    /// stamped, and again whenever the authority's end moves).
    pub fn grant(&self, epoch: u64, until: Option<Instant>) {
        let changed = {
            let mut s = self.state();
            let g = Some(Grant { epoch, until });
            let changed = s.grant != g || s.pending_until.is_some();
            s.grant = g;
            s.pending_until = None;
            changed
        };
        if changed {
            self.inner.changed.notify_waiters();
        }
    }

    /// No more writes (demoted, or not active). `pending`: a takeover is stamping its epoch and
    /// a grant is expected; writes wait for it until then (at most [`PENDING_MAX`] from now)
    /// instead of being refused. `None` refuses them at once (standby, demoted, fenced).
    pub fn revoke_pending(&self, pending: Option<Instant>) {
        let changed = {
            let mut s = self.state();
            let cap = Instant::now() + PENDING_MAX;
            let p = pending.map(|p| p.min(cap));
            // A mark already set keeps its deadline: a takeover that takes longer than its
            // first estimate does not make writes wait forever.
            let p = match (s.pending_until, p) {
                (Some(old), Some(_)) => Some(old),
                (_, p) => p,
            };
            let changed = s.grant.is_some() || s.pending_until != p;
            s.grant = None;
            s.pending_until = p;
            changed
        };
        if changed {
            self.inner.changed.notify_waiters();
        }
    }

    /// No more writes (demoted, or not active).
    pub fn revoke(&self) {
        self.revoke_pending(None);
    }

    /// Whether a write would be allowed now (background work skips its round when not: a
    /// standby does not try).
    pub fn writable(&self) -> bool {
        self.check(Instant::now()).is_ok()
    }

    /// The current grant.
    pub fn current(&self) -> Option<Grant> {
        self.state().grant
    }

    /// What a write transaction starting (or committing) at `now` may do: `Ok(None)` unfenced,
    /// `Ok(Some(epoch))` fenced and granted, else the refusal.
    pub fn check(&self, now: Instant) -> Result<Option<u64>, Refusal> {
        let s = self.state();
        decide(s.enabled, s.grant, now)
    }

    /// The epoch found in the database by a fenced transaction holding `ours`.
    pub fn check_db(&self, ours: u64, db: u64) -> Result<(), Refusal> {
        if db > ours {
            self.inner.newer.send_if_modified(|v| {
                let changed = db > *v;
                *v = (*v).max(db);
                changed
            });
            return Err(Refusal::NewerEpoch { ours, db });
        }
        if db < ours {
            return Err(Refusal::NotStamped { ours, db });
        }
        Ok(())
    }

    /// The highest epoch a write found in the database above its own (0: none); changes are
    /// announced on the receiver so the driver can demote at once.
    pub fn watch_newer(&self) -> watch::Receiver<u64> {
        self.inner.newer.subscribe()
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Counts and logs (at most every [`LOG_EVERY`], with the count) a refusal; the error to
    /// return.
    pub(crate) fn refuse(&self, why: Refusal) -> crate::Error {
        let n = self.inner.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut s = self.state();
        s.unlogged += 1;
        if s.last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(reason = %why, refused_total = n, since_last_log = s.unlogged,
                "store: write refused by the cluster fence");
            s.last_log = Some(now);
            s.unlogged = 0;
        }
        crate::Error::Fenced(why)
    }

    /// Step 3 of a write transaction (before `COMMIT`).
    pub(crate) fn permit(&self) -> crate::Result<Option<u64>> {
        self.check(Instant::now()).map_err(|r| self.refuse(r))
    }

    /// Step 1 (before `BEGIN`): like [`Fence::permit`], but while a takeover is stamping its
    /// epoch ([`Fence::revoke_pending`]) it waits for the grant, until the mark's deadline.
    pub(crate) async fn permit_wait(&self) -> crate::Result<Option<u64>> {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a grant given in between is not missed.
            notified.as_mut().enable();
            let now = Instant::now();
            let (decision, pending) = {
                let s = self.state();
                (decide(s.enabled, s.grant, now), s.pending_until)
            };
            match (decision, pending) {
                (Err(Refusal::NotActive), Some(p)) if p > now => {
                    let _ = tokio::time::timeout(p.saturating_duration_since(now), notified).await;
                }
                (d, _) => return d.map_err(|r| self.refuse(r)),
            }
        }
    }
}

/// The decision of [`Fence::check`], pure.
fn decide(enabled: bool, grant: Option<Grant>, now: Instant) -> Result<Option<u64>, Refusal> {
    if !enabled {
        return Ok(None);
    }
    let g = grant.ok_or(Refusal::NotActive)?;
    if g.until.is_some_and(|u| now >= u) {
        return Err(Refusal::AuthorityEnded { epoch: g.epoch });
    }
    Ok(Some(g.epoch))
}

/// The statement of step 2 on PostgreSQL (locks the row against a concurrent stamp, and limits
/// how long this transaction may sit idle).
pub const SQL_PG_CHECK: &str = "SELECT epoch, \
     set_config('idle_in_transaction_session_timeout', '2000', true) AS idle \
     FROM cluster_epoch WHERE id = 1 FOR SHARE";
/// The same on SQLite (the transaction already holds the write lock).
pub const SQL_SQLITE_CHECK: &str = "SELECT epoch FROM cluster_epoch WHERE id = 1";

/// Step 2: reads the database's epoch inside the transaction and compares.
macro_rules! fence_db_check {
    ($fence:expr, $tx:expr, $sql:expr, $epoch:expr) => {{
        let row = sqlx::query($sql).fetch_optional(&mut *$tx).await?;
        let db: i64 = match row {
            Some(r) => sqlx::Row::try_get::<i64, _>(&r, "epoch")?,
            None => 0,
        };
        let db = u64::try_from(db).unwrap_or(0);
        if let Err(r) = $fence.check_db($epoch, db) {
            return Err($fence.refuse(r));
        }
    }};
}
pub(crate) use fence_db_check;

/// What [`crate::Store::stamp_epoch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// The database now holds this node's epoch (it held an older one, or the same).
    Stamped {
        /// The epoch before.
        was: u64,
    },
    /// The database holds a newer epoch: this node must not write.
    Newer(u64),
}

/// How long a stamp waits for the row lock (transactions of an old Active) per attempt.
const STAMP_LOCK_TIMEOUT: &str = "500ms";

impl crate::Store {
    /// This store's write fence (`denwa serve --cluster` enables it; the cluster driver grants
    /// and revokes).
    pub fn fence(&self) -> &Fence {
        self.db().fence()
    }

    /// The epoch stamped in the database (`cluster_epoch`; 0 on a database never written by a
    /// pair). Reads the replica on a standby, so it follows replication.
    pub async fn cluster_epoch(&self) -> crate::Result<u64> {
        let v: Option<i64> = crate::db::read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT epoch FROM cluster_epoch WHERE id = 1")
                .fetch_optional(pool)
                .await?
                .map(|r| sqlx::Row::try_get::<i64, _>(&r, "epoch"))
                .transpose()?
        });
        Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }

    /// Stamps `epoch` (this node, `node`) into the database as the takeover's fencing token,
    /// unless it holds a newer one. Not fenced itself (it is what establishes the fence); on
    /// PostgreSQL it waits for the transactions that read the old epoch (at most 500 ms per
    /// attempt: a lock time-out is an error, retry).
    pub async fn stamp_epoch(&self, epoch: u64, node: u32) -> crate::Result<Stamp> {
        let e = i64::try_from(epoch).map_err(|_| crate::Error::Invalid {
            field: "epoch",
            reason: format!("{epoch} is out of range"),
        })?;
        let now = chrono::Utc::now().timestamp_millis();
        macro_rules! stamp {
            ($tx:ident, $sql_lock:expr) => {{
                let was: i64 = match sqlx::query($sql_lock).fetch_optional(&mut *$tx).await? {
                    Some(r) => sqlx::Row::try_get::<i64, _>(&r, "epoch")?,
                    None => {
                        sqlx::query("INSERT INTO cluster_epoch (id, epoch) VALUES (1, 0)")
                            .execute(&mut *$tx)
                            .await?;
                        0
                    }
                };
                if was > e {
                    $tx.rollback().await?;
                    return Ok(Stamp::Newer(u64::try_from(was).unwrap_or(0)));
                }
                sqlx::query(
                    "UPDATE cluster_epoch SET epoch = $1, node = $2, stamped_at = $3 WHERE id = 1",
                )
                .bind(e)
                .bind(i64::from(node))
                .bind(now)
                .execute(&mut *$tx)
                .await?;
                $tx.commit().await?;
                Ok(Stamp::Stamped {
                    was: u64::try_from(was).unwrap_or(0),
                })
            }};
        }
        match self.db() {
            crate::db::Db::Sqlite { write, .. } => {
                let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
                stamp!(tx, "SELECT epoch FROM cluster_epoch WHERE id = 1")
            }
            crate::db::Db::Pg(pool, _) => {
                let mut tx = pool.begin().await?;
                sqlx::query(&format!("SET LOCAL lock_timeout = '{STAMP_LOCK_TIMEOUT}'"))
                    .execute(&mut *tx)
                    .await?;
                stamp!(
                    tx,
                    "SELECT epoch FROM cluster_epoch WHERE id = 1 FOR UPDATE"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_on_a_fake_clock() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(decide(false, None, t0), Ok(None), "standalone");
        assert_eq!(decide(true, None, t0), Err(Refusal::NotActive));
        let g = Grant {
            epoch: 7,
            until: Some(t0 + s),
        };
        assert_eq!(decide(true, Some(g), t0), Ok(Some(7)));
        assert_eq!(
            decide(true, Some(g), t0 + s),
            Err(Refusal::AuthorityEnded { epoch: 7 }),
            "the end is exclusive"
        );
        assert_eq!(
            decide(true, Some(g), t0 + s * 60),
            Err(Refusal::AuthorityEnded { epoch: 7 }),
            "resumed after a freeze"
        );
        let forever = Grant {
            epoch: 8,
            until: None,
        };
        assert_eq!(decide(true, Some(forever), t0 + s * 3600), Ok(Some(8)));
    }

    #[test]
    fn database_epoch_comparison_announces_a_newer_one() {
        let f = Fence::new();
        let mut rx = f.watch_newer();
        assert_eq!(f.check_db(5, 5), Ok(()));
        assert_eq!(
            f.check_db(5, 4),
            Err(Refusal::NotStamped { ours: 5, db: 4 })
        );
        assert!(!rx.has_changed().expect("open"));
        assert_eq!(
            f.check_db(5, 6),
            Err(Refusal::NewerEpoch { ours: 5, db: 6 })
        );
        assert!(rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow_and_update(), 6);
        f.check_db(5, 6).expect_err("still refused");
        assert!(
            !rx.has_changed().expect("open"),
            "same epoch: no new announcement"
        );
    }

    #[test]
    fn idle_limit_in_the_statement_is_the_constant() {
        assert!(SQL_PG_CHECK.contains(&format!("'{IDLE_IN_TX_MS}'")));
    }

    #[tokio::test]
    async fn a_write_during_a_takeover_waits_for_the_grant() {
        let f = Fence::new();
        f.enable();
        assert!(
            f.permit_wait().await.is_err(),
            "no takeover: refused at once"
        );
        f.revoke_pending(Some(Instant::now() + Duration::from_secs(60)));
        let g = f.clone();
        let w = tokio::spawn(async move { g.permit_wait().await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!w.is_finished(), "waits while the epoch is being stamped");
        f.grant(9, None);
        let got = w.await.expect("joined").expect("granted");
        assert_eq!(got, Some(9), "written under the new epoch");

        // A stamp that never comes: refused once the mark's deadline has passed, never before.
        let deadline = Instant::now() + Duration::from_millis(150);
        f.revoke_pending(Some(deadline));
        let r = f.permit_wait().await;
        assert!(matches!(r, Err(crate::Error::Fenced(Refusal::NotActive))));
        assert!(
            Instant::now() >= deadline,
            "not refused before the deadline"
        );

        // Demoted while a write waits: refused at once.
        f.revoke_pending(Some(Instant::now() + Duration::from_secs(60)));
        let g = f.clone();
        let w = tokio::spawn(async move { g.permit_wait().await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        f.revoke();
        let r = w.await.expect("joined");
        assert!(matches!(r, Err(crate::Error::Fenced(Refusal::NotActive))));
    }

    #[test]
    fn a_pending_mark_keeps_its_first_deadline_and_is_capped() {
        let f = Fence::new();
        f.enable();
        let t = Instant::now();
        f.revoke_pending(Some(t + Duration::from_secs(3600)));
        let first = f.state().pending_until.expect("set");
        assert!(first <= Instant::now() + PENDING_MAX, "capped");
        f.revoke_pending(Some(t + Duration::from_secs(1)));
        assert_eq!(f.state().pending_until, Some(first), "kept, not extended");
        f.revoke();
        assert_eq!(f.state().pending_until, None);
    }

    #[test]
    fn grant_and_revoke() {
        let f = Fence::new();
        assert!(f.writable(), "standalone: background work runs");
        f.enable();
        assert!(f.enabled());
        assert!(!f.writable(), "a standby's background work skips its round");
        assert_eq!(f.check(Instant::now()), Err(Refusal::NotActive));
        f.grant(3, None);
        assert!(f.writable());
        assert_eq!(f.check(Instant::now()), Ok(Some(3)));
        f.revoke();
        assert_eq!(f.check(Instant::now()), Err(Refusal::NotActive));
        let _ = f.refuse(Refusal::NotActive);
        let _ = f.refuse(Refusal::NotActive);
        assert_eq!(f.refused(), 2);
    }
}
