//! Caps on how many rows of a kind may exist (the licence's extension and tenant limits),
//! checked in the same serialised write transaction as the insert they guard.
//!
//! Counting first and inserting in a second transaction lets two concurrent creates both see
//! "one below the limit" and both insert. Here the count and the insert are one step: SQLite's
//! `BEGIN IMMEDIATE` (in `write_tx!`) already serialises writers; on PostgreSQL the transaction
//! first takes a transaction-scoped advisory lock per kind (`pg_advisory_xact_lock`), held until
//! COMMIT, so the next creator's count (a new statement snapshot under READ COMMITTED) sees the
//! previous creator's row. The store applies no policy: the caller passes the cap in force.

/// Advisory-lock keys (one per capped kind; arbitrary constants, "dnw" + kind).
pub(crate) const LOCK_EXTENSIONS: i64 = 0x646e_7701;
/// See [`LOCK_EXTENSIONS`].
pub(crate) const LOCK_TENANTS: i64 = 0x646e_7702;

/// Inside a write transaction: refuses with [`crate::Error::Limit`] when `$cap`
/// (`Option<u64>`, `None`: unlimited) rows of `$table` (all tenants) already exist. Takes the
/// kind's advisory lock on PostgreSQL first. Uses `?` on database errors.
macro_rules! cap_check {
    ($tx:ident, $kind:ident, $cap:expr, $lock:expr, $table:literal, $what:literal) => {{
        if let Some(limit) = $cap {
            if $kind == $crate::Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind($lock)
                    .execute(&mut *$tx)
                    .await?;
            }
            let n = sqlx::query(concat!("SELECT COUNT(*) AS n FROM ", $table))
                .fetch_one(&mut *$tx)
                .await?
                .i64("n")?;
            let current = u64::try_from(n).unwrap_or(0);
            if current >= limit {
                return Err($crate::Error::Limit {
                    what: $what,
                    limit,
                    current,
                });
            }
        }
    }};
}
pub(crate) use cap_check;
