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
