//! Rows of calls in progress (`engine::live_calls`): written in the order the engine issued
//! them by one task (a delete never overtakes the save of the same call), and read back when
//! this node takes the application address over.

use engine::Input;
use engine::db::{DbAnswer, OpId};
use engine::live_calls::LiveCallOp;
use tokio::sync::mpsc;

/// Row writes queued at most; past it a write is refused (answered with an error at once).
const QUEUE: usize = 4_096;

/// The writer task's queue.
pub(crate) struct LiveWriter {
    tx: mpsc::Sender<(OpId, LiveCallOp)>,
}

impl LiveWriter {
    /// Starts the writer; answers go to `back`.
    pub(crate) fn start(store: store::Store, back: mpsc::UnboundedSender<Input>) -> LiveWriter {
        let (tx, mut rx) = mpsc::channel::<(OpId, LiveCallOp)>(QUEUE);
        tokio::spawn(async move {
            while let Some((id, op)) = rx.recv().await {
                let r = match &op {
                    LiveCallOp::Save(rec) => store.live_call_save(rec).await,
                    LiveCallOp::Delete { tenant, call_id } => {
                        store.live_call_delete(*tenant, call_id).await
                    }
                };
                let _ = back.send(Input::Db(id, DbAnswer::Done(r.map_err(|e| e.to_string()))));
            }
        });
        LiveWriter { tx }
    }

    /// Queues a write; false when the queue is full (the write is not done).
    pub(crate) fn write(&self, id: OpId, op: LiveCallOp) -> bool {
        self.tx.try_send((id, op)).is_ok()
    }
}

/// Why this node takes the address over, for the calls it continues: `switchover` when the
/// peer is alive, `failover` when it is not; `None` when the peer was never seen active since
/// this node started (both nodes started together): nobody served the stored calls since, so
/// their rows are stale.
pub(crate) fn take_event(peer_was_active: bool, peer_alive: bool) -> Option<&'static str> {
    match (peer_was_active, peer_alive) {
        (false, _) => None,
        (true, true) => Some("switchover"),
        (true, false) => Some("failover"),
    }
}

/// At a take-over: continues the calls stored by the peer (`event` given), or, after a cold
/// start, deletes the stale rows saved before now (once the database is writable: promotion
/// runs aside). Bounded by `timeout` for the reload (the address waits for it).
pub(crate) async fn take(
    pbx: &crate::Pbx,
    store: &store::Store,
    event: Option<&'static str>,
    timeout: std::time::Duration,
) {
    let Some(event) = event else {
        let store = store.clone();
        let before = std::time::SystemTime::now();
        tokio::spawn(async move {
            for _ in 0..120 {
                match store.live_calls_clear(before).await {
                    Ok(0) => return,
                    Ok(n) => {
                        tracing::info!(
                            rows = n,
                            "cluster: stale calls in progress deleted (cold start)"
                        );
                        return;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
                }
            }
            tracing::warn!("cluster: stale calls in progress could not be deleted");
        });
        return;
    };
    match tokio::time::timeout(timeout, pbx.reload_live_calls(store, event)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(calls = n, event, "cluster: calls in progress continued"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cluster: continuing calls in progress"),
        Err(_) => tracing::warn!(
            "cluster: reading calls in progress took too long: taking the address first"
        ),
    }
}

/// A switchover starts and this node still holds the application address: calls still
/// ringing are ended cleanly from here (CANCEL, `480`, one record each) instead of vanishing
/// with the address; answered calls are carried over by their rows.
pub(crate) async fn end_ringing(pbx: crate::Pbx) {
    match pbx.end_ringing_calls("switchover").await {
        Ok(0) => {}
        Ok(n) => tracing::info!(calls = n, "cluster: switchover: calls still ringing ended"),
        Err(e) => tracing::warn!(error = %e, "cluster: switchover: ending ringing calls"),
    }
}

#[cfg(test)]
mod tests {
    use super::take_event;

    #[test]
    fn stored_calls_are_continued_only_after_the_peer_served() {
        assert_eq!(take_event(false, true), None, "cold start: peer starting");
        assert_eq!(take_event(false, false), None, "cold start alone");
        assert_eq!(take_event(true, true), Some("switchover"));
        assert_eq!(take_event(true, false), Some("failover"));
    }
}
