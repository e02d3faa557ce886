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
    /// Calls still ringing ended for a switchover, and who waits for their records.
    ringing: Option<(usize, tokio::sync::oneshot::Sender<usize>)>,
}

impl LiveWriter {
    /// Starts the writer; answers go to `back`.
    pub(crate) fn start(store: store::Store, back: crate::driver::Back) -> LiveWriter {
        let (tx, mut rx) = mpsc::channel::<(OpId, LiveCallOp)>(QUEUE);
        tokio::spawn(async move {
            while let Some((id, op)) = rx.recv().await {
                let r = match &op {
                    LiveCallOp::Save(rec) => store.live_call_save(rec).await,
                    LiveCallOp::Delete { tenant, call_id } => {
                        store.live_call_delete(*tenant, call_id).await
                    }
                };
                let _ = back
                    .send(Input::Db(id, DbAnswer::Done(r.map_err(|e| e.to_string()))))
                    .await;
            }
        });
        LiveWriter { tx, ringing: None }
    }

    /// `count` calls still ringing were ended: `done` gets the count once their records are
    /// written (and their callers' `480`s sent), see [`LiveWriter::ringing_check`].
    pub(crate) fn await_ringing(
        &mut self,
        count: usize,
        done: tokio::sync::oneshot::Sender<usize>,
    ) {
        self.ringing = Some((count, done));
    }

    /// After each turn of the driver: answers the wait of [`LiveWriter::await_ringing`] when
    /// the engine holds no more records of those calls.
    pub(crate) fn ringing_check(&mut self, engine: &engine::Engine) {
        if self.ringing.is_some()
            && !engine.ringing_records_pending()
            && let Some((n, done)) = self.ringing.take()
        {
            let _ = done.send(n);
        }
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
/// The hand-over waits for it (the address and the database are about to move), at most
/// [`RINGING_WAIT`].
pub(crate) async fn end_ringing(pbx: &crate::Pbx) {
    match tokio::time::timeout(RINGING_WAIT, pbx.end_ringing_calls("switchover")).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(calls = n, "cluster: switchover: calls still ringing ended"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cluster: switchover: ending ringing calls"),
        Err(_) => tracing::warn!(
            "cluster: switchover: records of ringing calls not written within 500 ms: handing over"
        ),
    }
}

/// How long a switchover waits for the calls still ringing to be ended and recorded.
const RINGING_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

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
