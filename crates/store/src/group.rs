//! Group commit for the hot-path writes (location refreshes and call records).
//!
//! One writer task owns a queue. It takes everything waiting (up to `max_batch` rows), writes it
//! in one transaction and answers every caller only after COMMIT returned, i.e. after the single
//! fsync (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`) that made all of them
//! durable. While one batch commits, the next one accumulates, so the batch size follows the
//! load: one caller pays one commit, a thousand concurrent callers share a handful.
//!
//! If a batch fails (say one row violates a constraint), it is rolled back and its rows are
//! retried one transaction each, so one bad row never fails its neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, RowGet, to_ms, write_tx};
use crate::{Backend, BindingUpsert, Error, NewCdr, Result, Store};

/// Counters of the writer task, for metrics and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
    in_flight: AtomicU64,
}

/// What group commit has done so far in this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed by the writer (each one fsync).
    pub batches: u64,
    /// Rows those transactions wrote.
    pub rows: u64,
    /// Writes waiting for the next transaction.
    pub queued: usize,
    /// Writes in the transaction being written now.
    pub in_flight: u64,
}

/// One queued write and where to send its outcome (the row id).
#[derive(Debug)]
pub(crate) enum Job {
    /// A binding upsert; the flag says whether the caller wants the row id back (the
    /// registrar does not, and a statement without RETURNING answers with one message instead
    /// of one per row from the SQLite worker thread).
    Binding(Box<BindingUpsert>, bool, oneshot::Sender<Result<i64>>),
    Cdr(Box<NewCdr>, oneshot::Sender<Result<i64>>),
    /// All the upserts of one REGISTER (`location_tx`): one job, so never split between two
    /// transactions (a batch commits whole, a failed batch is retried job by job). Answers 0.
    Register(Vec<BindingUpsert>, oneshot::Sender<Result<i64>>),
}

impl Job {
    fn reply(self, r: Result<i64>) {
        let tx = match self {
            Job::Binding(_, _, tx) | Job::Cdr(_, tx) | Job::Register(_, tx) => tx,
        };
        // The caller may have given up (dropped its future); the row is written regardless.
        let _ = tx.send(r);
    }
}

/// Rows per multi-row binding upsert: a batch is cut into statements of these sizes (largest
/// first, i.e. its binary digits), so a few prepared statements serve every batch and a batch
/// of n rows takes at most popcount(n) statements. With sqlx each statement is one round trip to
/// the database (for SQLite, a hand-off to its worker thread and back, two context switches
/// when both share a core); one per row cost more than the writes themselves in a REGISTER
/// storm.
pub(crate) const BINDING_CHUNKS: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];
const BINDING_COLS: usize = 18;

/// Binds one binding's `BINDING_COLS` values to an upsert statement, in column order.
macro_rules! bind_binding {
    ($q:expr, $b:expr) => {{
        let b: &$crate::BindingUpsert = $b;
        $q.bind(b.tenant_id)
            .bind(b.extension_id)
            .bind(b.aor.as_str())
            .bind(b.contact_uri.as_str())
            .bind($crate::db::to_ms(b.expires_at))
            .bind(b.q)
            .bind(b.call_id.as_str())
            .bind(b.cseq)
            .bind(b.user_agent.as_str())
            .bind(b.received_addr.as_str())
            .bind(b.transport.as_str())
            .bind(b.local_addr.as_str())
            .bind(b.instance_id.as_deref())
            .bind(b.reg_id)
            .bind(b.node.as_str())
            .bind(b.flags)
            .bind($crate::db::to_ms(b.now))
            .bind($crate::db::to_ms(b.now))
    }};
}
pub(crate) use bind_binding;

/// The upsert for `BINDING_CHUNKS[chunk]` bindings. SQLite gets anonymous `?`
/// parameters: sqlx looks up every parameter's name, and SQLite finds a numbered one by a
/// linear scan, which made a 128-row statement (2,304 parameters) quadratic.
pub(crate) fn upsert_bindings_sql(backend: Backend, chunk: usize, returning: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 4]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [
            (Backend::Sqlite, false),
            (Backend::Postgres, false),
            (Backend::Sqlite, true),
            (Backend::Postgres, true),
        ]
        .map(|(backend, returning)| {
            BINDING_CHUNKS
                .iter()
                .map(|&n| {
                    let values: Vec<String> = (0..n)
                        .map(|r| {
                            let p = |c: usize| match backend {
                                Backend::Sqlite => "?".to_owned(),
                                Backend::Postgres => format!("${}", r * BINDING_COLS + c),
                            };
                            let cols: Vec<String> = (1..=BINDING_COLS).map(p).collect();
                            format!("({})", cols.join(", "))
                        })
                        .collect();
                    format!(
                        "INSERT INTO registrations (tenant_id, extension_id, aor, contact_uri,
        expires_at, q, call_id, cseq, user_agent, received_addr, transport, local_addr,
        instance_id, reg_id, node, flags, last_seen, updated_at)
    VALUES {}
    ON CONFLICT (extension_id, contact_uri) DO UPDATE SET
        aor = excluded.aor, expires_at = excluded.expires_at, q = excluded.q,
        call_id = excluded.call_id, cseq = excluded.cseq, user_agent = excluded.user_agent,
        received_addr = excluded.received_addr, transport = excluded.transport,
        local_addr = excluded.local_addr, instance_id = excluded.instance_id,
        reg_id = excluded.reg_id, node = excluded.node, flags = excluded.flags,
        last_seen = excluded.last_seen, updated_at = excluded.updated_at{}",
                        values.join(",\n        "),
                        if returning {
                            "\n    RETURNING id, extension_id, contact_uri"
                        } else {
                            ""
                        }
                    )
                })
                .collect()
        })
    });
    &all[usize::from(backend == Backend::Postgres) + 2 * usize::from(returning)][chunk]
}

const INSERT_CDR: &str = "INSERT INTO cdrs (tenant_id, call_id, caller, callee, caller_name,
        start_time, answer_time, end_time, duration_s, billsec, disposition, hangup_by,
        hangup_cause, codec, a_pkts_rx, a_pkts_tx, a_lost, a_jitter_ms,
        b_pkts_rx, b_pkts_tx, b_lost, b_jitter_ms, direction, trunk, did, dialled, sent_number,
        caller_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)
    RETURNING id";

/// The bindings of a batch, one per (extension, contact): a later write of the same binding
/// in the batch wins, as it would written one by one, and every job of that binding gets its
/// id. PostgreSQL refuses to upsert one row twice in a statement, so this is needed, not only
/// cheaper.
fn unique_bindings(jobs: &[Job]) -> Vec<Unique<'_>> {
    let mut out: Vec<Unique<'_>> = Vec::new();
    let mut by_key: std::collections::HashMap<(i64, &str), usize> = Default::default();
    let rows = jobs.iter().enumerate().flat_map(|(i, job)| {
        let (rows, want_id): (&[BindingUpsert], bool) = match job {
            Job::Binding(b, want_id, _) => (std::slice::from_ref(&**b), *want_id),
            Job::Register(rows, _) => (rows.as_slice(), false),
            Job::Cdr(..) => (&[], false),
        };
        rows.iter().map(move |b| (i, b, want_id))
    });
    for (i, b, want_id) in rows {
        match by_key.entry((b.extension_id, b.contact_uri.as_str())) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let slot = &mut out[*e.get()];
                slot.row = b;
                slot.jobs.push(i);
                slot.want_id |= want_id;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(Unique {
                    row: b,
                    jobs: vec![i],
                    want_id,
                });
            }
        }
    }
    out
}

/// One binding of a batch: its last write, the jobs that wrote it, and whether any of them
/// wants the row id.
struct Unique<'a> {
    row: &'a BindingUpsert,
    jobs: Vec<usize>,
    want_id: bool,
}

/// Writes `jobs` in one transaction; the ids in job order.
async fn exec(db: &Db, jobs: &[Job]) -> Result<Vec<i64>> {
    let bindings = unique_bindings(jobs);
    // The jobs of each binding, to hand the returned ids back (RETURNING has no set order).
    let jobs_of: std::collections::HashMap<(i64, &str), &[usize]> = bindings
        .iter()
        .filter(|u| u.want_id)
        .map(|u| {
            (
                (u.row.extension_id, u.row.contact_uri.as_str()),
                u.jobs.as_slice(),
            )
        })
        .collect();
    // Statements of the largest sizes first; the last size is 1, so nothing is left over.
    let mut pieces = Vec::new();
    let mut rest = bindings.as_slice();
    for (size, &n) in BINDING_CHUNKS.iter().enumerate() {
        while rest.len() >= n {
            let (chunk, tail) = rest.split_at(n);
            pieces.push((size, chunk));
            rest = tail;
        }
    }
    Ok(write_tx!(db, tx, kind => {
        let mut ids = vec![0i64; jobs.len()];
        for &(size, chunk) in &pieces {
            let returning = chunk.iter().any(|u| u.want_id);
            let mut q = sqlx::query(upsert_bindings_sql(kind, size, returning));
            for b in chunk.iter().map(|u| u.row) {
                q = bind_binding!(q, b);
            }
            let written = if returning {
                let rows = q.fetch_all(&mut *tx).await?;
                for row in &rows {
                    let (ext, contact) = (row.i64("extension_id")?, row.text("contact_uri")?);
                    if let Some(at) = jobs_of.get(&(ext, contact.as_str())) {
                        let id = row.i64("id")?;
                        for &i in *at {
                            ids[i] = id;
                        }
                    }
                }
                rows.len() as u64
            } else {
                q.execute(&mut *tx).await?.rows_affected()
            };
            if written != chunk.len() as u64 {
                return Err(Error::Invalid {
                    field: "registration batch",
                    reason: format!("upsert wrote {written} rows for {}", chunk.len()),
                });
            }
        }
        for (i, job) in jobs.iter().enumerate() {
            let Job::Cdr(c, _) = job else { continue };
            let row = sqlx::query(INSERT_CDR)
                .bind(c.tenant_id)
                .bind(&c.call_id)
                .bind(&c.caller)
                .bind(&c.callee)
                .bind(&c.caller_name)
                .bind(to_ms(c.start_time))
                .bind(c.answer_time.map(to_ms))
                .bind(to_ms(c.end_time))
                .bind(c.duration_s)
                .bind(c.billsec)
                .bind(c.disposition.as_str())
                .bind(c.hangup_by.as_str())
                .bind(&c.hangup_cause)
                .bind(&c.codec)
                .bind(c.a.pkts_rx)
                .bind(c.a.pkts_tx)
                .bind(c.a.lost)
                .bind(c.a.jitter_ms)
                .bind(c.b.pkts_rx)
                .bind(c.b.pkts_tx)
                .bind(c.b.lost)
                .bind(c.b.jitter_ms)
                .bind(c.route.direction.as_str())
                .bind(&c.route.trunk)
                .bind(&c.route.did)
                .bind(&c.route.dialled)
                .bind(&c.route.sent_number)
                .bind(&c.route.caller_id)
                .fetch_one(&mut *tx)
                .await?;
            ids[i] = row.i64("id")?;
        }
        ids
    }))
}

/// The writer task; ends when every [`Store`] clone (every queue sender) is gone.
pub(crate) async fn run(
    db: Db,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let committed = |rows: usize| {
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.rows.fetch_add(rows as u64, Ordering::Relaxed);
    };
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let jobs = std::mem::take(&mut batch);
        counters
            .in_flight
            .store(jobs.len() as u64, Ordering::Relaxed);
        let res = exec(&db, &jobs).await;
        counters.in_flight.store(0, Ordering::Relaxed);
        match res {
            Ok(ids) => {
                committed(ids.len());
                for (job, id) in jobs.into_iter().zip(ids) {
                    job.reply(Ok(id));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some(job) = jobs.into_iter().next() {
                    job.reply(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, rows = jobs.len(), "group commit failed; retrying rows one by one");
                for job in jobs {
                    let r = exec(&db, std::slice::from_ref(&job))
                        .await
                        .and_then(|ids| ids.first().copied().ok_or(Error::Closed));
                    if r.is_ok() {
                        committed(1);
                    }
                    job.reply(r);
                }
            }
        }
    }
}

impl Store {
    /// Group-commit counters (for metrics): transactions, rows, and the current queue.
    pub fn write_stats(&self) -> WriteStats {
        let w = &self.inner.writer;
        WriteStats {
            batches: self.inner.counters.batches.load(Ordering::Relaxed),
            rows: self.inner.counters.rows.load(Ordering::Relaxed),
            queued: w.max_capacity() - w.capacity(),
            in_flight: self.inner.counters.in_flight.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn submit(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<i64>>) -> Job,
    ) -> Result<i64> {
        let rx = self.enqueue(make).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Queues a write; the receiver gets its outcome once it is durable.
    pub(crate) async fn enqueue(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<i64>>) -> Job,
    ) -> Result<oneshot::Receiver<Result<i64>>> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .send(make(tx))
            .await
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }
}
