//! The driver's side of "running alone" (see `ha`'s `alone.rs` and docs/ha.md, "Running
//! alone"): the witness's row records which node runs without a synchronous standby; the lease
//! SQL (`ha::witness::SQL_MARK_ALONE`, `SQL_CLEAR_ALONE`, the acquire's condition) carries it
//! out, so the driver only has to add the columns to an older witness table
//! (`ha::witness::SQL_MIGRATE`, run with the table's creation) and leave the database of a node
//! that stops while marked as it is.

use ha::{Epoch, Status};

/// Local health is probed fast (every `HEALTH_SWITCHING`, not every second) while a switchover
/// waits for the standby, and while the witness still records this node as running alone with
/// synchronous replication back on: the mark is cleared on the first report that shows the
/// standby caught up, and until then no other node can take over automatically.
pub fn probe_fast(st: &Status) -> bool {
    st.switching || (st.alone && st.sync_replication)
}

/// `Output::DemoteDb { keep: true }`: this node ran alone, so its database is the only copy of
/// the writes it acknowledged meanwhile. It is neither stopped nor re-attached (a rewind onto the
/// peer would discard them): the store's fence already refuses every write since the role
/// machine revoked the grant, and the witness lets no other node take over until this one is
/// back, serves again and has turned synchronous replication on with the standby caught up.
pub fn keep_db(epoch: Epoch) {
    tracing::warn!(
        %epoch,
        "cluster: stopped serving while running alone: keeping this node's database as it is \
         (the only copy of writes acknowledged meanwhile); no re-attach"
    );
}
