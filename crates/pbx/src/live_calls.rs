//! Rows of calls in progress (`engine::live_calls`): written in the order the engine issued
//! them by one task (a delete never overtakes the save of the same call), and read back when
//! this node takes the application address over.

use engine::db::{DbAnswer, OpId};
use engine::live_calls::LiveCallOp;
use engine::{Input, Now};
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

    /// Queues a write; `Err` carries the answer to give at once when the queue is full.
    pub(crate) fn write(&self, id: OpId, op: LiveCallOp) -> Result<(), Input> {
        self.tx.try_send((id, op)).map_err(|_| {
            Input::Db(
                id,
                DbAnswer::Done(Err("too many call rows waiting to be written".into())),
            )
        })
    }
}

/// What `Move::Take` tells the engine: the stored calls to continue, and why this node takes
/// over (`switchover` or `failover`, kept with each call's record).
pub(crate) fn load(
    eng: &mut engine::Engine,
    rows: Vec<engine::live_calls::LiveCallRecord>,
    event: &'static str,
    now: Now,
) -> usize {
    eng.load_live_calls(rows, event, now)
}
