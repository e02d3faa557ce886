//! Subscription rows (`event_subs`) written in batches by one task.
//!
//! Every SUBSCRIBE, refresh and end changes a row. Written one task and one pool connection
//! each, a burst — 1,000 phones subscribing 50 BLF keys each after a restart or a power cut
//! — queued 50,000 writes that held the pool for ~20 s (measured by `bench/blf.py`): call
//! records and BYEs waited up to 18 s for a connection. Here one task takes the changes in
//! order and applies up to [`BATCH`] per transaction ([`store::Store::apply_event_subs`]), so
//! subscriptions use one connection at a time and a burst costs tens of transactions.
//! Each change is still answered to the engine, with its batch's result.

use engine::Input;
use engine::db::{DbAnswer, OpId};
use engine::vm::VmAnswer;
use store::{EventSubWrite, Store};
use tokio::sync::mpsc;

/// Changes waiting at most (the engine's own bound on pending database work is lower).
const QUEUE: usize = 65_536;
/// Changes per transaction at most.
pub(crate) const BATCH: usize = 500;

/// The writer's queue.
pub(crate) struct SubWriter {
    tx: mpsc::Sender<(OpId, EventSubWrite)>,
}

impl SubWriter {
    /// Starts the writer; answers go to `back` as the engine's database answers.
    pub(crate) fn start(store: Store, back: crate::driver::Back) -> SubWriter {
        let (tx, mut rx) = mpsc::channel::<(OpId, EventSubWrite)>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(w) => batch.push(w),
                        Err(_) => break,
                    }
                }
                let (ids, writes): (Vec<OpId>, Vec<EventSubWrite>) = batch.drain(..).unzip();
                let r = store
                    .apply_event_subs(&writes)
                    .await
                    .map_err(|e| e.to_string());
                if let Err(e) = &r {
                    tracing::warn!(changes = writes.len(), error = %e, "storing subscriptions failed");
                }
                for id in ids {
                    let _ = back
                        .send(Input::Db(id, DbAnswer::Vm(VmAnswer::Done(r.clone()))))
                        .await;
                }
            }
        });
        SubWriter { tx }
    }

    /// Queues one change; `Err` (nothing queued) when the queue is full.
    pub(crate) fn submit(&self, id: OpId, w: EventSubWrite) -> Result<(), EventSubWrite> {
        self.tx.try_send((id, w)).map_err(|e| match e {
            mpsc::error::TrySendError::Full((_, w)) | mpsc::error::TrySendError::Closed((_, w)) => {
                w
            }
        })
    }
}
