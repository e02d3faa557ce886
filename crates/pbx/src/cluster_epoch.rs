//! Epochs on writes: the cluster driver's side of the store's write fence (`store::fence`).
//!
//! - When the role machine announces an epoch (`Output::Epoch`, right after `PromoteDb`), the
//!   epoch is stamped into the local database (`cluster_epoch`) — retried every 100 ms while
//!   the database is still read-only (a promotion in progress) or a transaction of an old
//!   Active holds the row. Only when the stamp is in does the store get its grant.
//! - After every input the grant follows the role machine: granted (epoch, authority's end)
//!   while serving and stamped, revoked otherwise. A process frozen past its lease finds its
//!   grant expired on its own monotonic clock before the driver has run a single step.
//! - The highest epoch seen in the database — read by the health probe every second, or found
//!   by a refused write at once (`store::fence::Fence::watch_newer`) — is `db_epoch` in the
//!   role machine's health input: an Active that finds a newer one demotes itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ha::{Authority, Epoch, Node};

/// Pause between stamp attempts.
const STAMP_RETRY: Duration = Duration::from_millis(100);

/// What the epoch side tells the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochNews {
    /// The epoch is stamped in the local database.
    Stamped(Epoch),
    /// The database holds this newer epoch.
    Newer(Epoch),
}

/// Delivers news to the driver; false when the driver is gone.
pub(crate) type NewsFn = Arc<dyn Fn(EpochNews) -> bool + Send + Sync>;

/// The driver's epoch state.
pub(crate) struct EpochWire {
    store: store::Store,
    node_id: u32,
    news: NewsFn,
    /// The epoch stamped by this run (writes may be granted under it).
    stamped: Option<Epoch>,
    /// The stamp in progress (aborted when another epoch replaces it).
    stamping: Option<(Epoch, tokio::task::JoinHandle<()>)>,
    /// Highest epoch seen in the database (probe or refused write).
    seen: Arc<AtomicU64>,
    /// Last grant state given to the store (to log changes only).
    granted: Option<Epoch>,
    /// Where the start-up clean-up runs when this node becomes active.
    data_dir: Option<std::path::PathBuf>,
}

impl EpochWire {
    /// Enables the store's fence (nothing writes without a grant from now on) and watches it
    /// for newer epochs.
    pub(crate) fn new(
        store: store::Store,
        node_id: u32,
        data_dir: Option<std::path::PathBuf>,
        news: NewsFn,
    ) -> EpochWire {
        store.fence().enable();
        store.fence().revoke();
        let mut rx = store.fence().watch_newer();
        let seen = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&seen);
        let n = Arc::clone(&news);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let e = *rx.borrow_and_update();
                s.fetch_max(e, Ordering::SeqCst);
                if !n(EpochNews::Newer(Epoch(e))) {
                    return;
                }
            }
        });
        EpochWire {
            store,
            node_id,
            news,
            stamped: None,
            stamping: None,
            seen,
            granted: None,
            data_dir,
        }
    }

    /// The shared "highest epoch seen" the health probe raises.
    pub(crate) fn seen_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.seen)
    }

    /// The highest epoch seen in the database.
    pub(crate) fn db_epoch(&self) -> Epoch {
        Epoch(self.seen.load(Ordering::SeqCst))
    }

    /// `Output::Epoch`: stamp it (in the background, retrying).
    pub(crate) fn serve_under(&mut self, epoch: Epoch) {
        if self.stamped == Some(epoch) || self.stamping.as_ref().is_some_and(|s| s.0 == epoch) {
            return;
        }
        if let Some((_, h)) = self.stamping.take() {
            h.abort();
        }
        let store = self.store.clone();
        let node = self.node_id;
        let news = Arc::clone(&self.news);
        let t0 = Instant::now();
        let h = tokio::spawn(async move {
            let mut attempt: u32 = 0;
            loop {
                attempt += 1;
                match store.stamp_epoch(epoch.0, node).await {
                    Ok(store::fence::Stamp::Stamped { was }) => {
                        tracing::info!(%epoch, was, attempts = attempt,
                            ms = t0.elapsed().as_millis() as u64,
                            "cluster: epoch stamped in the database; writes allowed under it");
                        news(EpochNews::Stamped(epoch));
                        return;
                    }
                    Ok(store::fence::Stamp::Newer(n)) => {
                        tracing::warn!(%epoch, newer = n,
                            "cluster: the database already holds a newer epoch: not writing");
                        news(EpochNews::Newer(Epoch(n)));
                        return;
                    }
                    Err(e) => {
                        if attempt.is_power_of_two() {
                            tracing::info!(%epoch, attempt, error = %e,
                                "cluster: stamping the epoch (retrying: database not writable yet)");
                        }
                    }
                }
                tokio::time::sleep(STAMP_RETRY).await;
            }
        });
        self.stamping = Some((epoch, h));
    }

    /// News from the stamp task or the fence.
    pub(crate) fn on_news(&mut self, n: EpochNews) {
        match n {
            EpochNews::Stamped(e) => {
                if self.stamping.as_ref().is_some_and(|s| s.0 == e) {
                    self.stamping = None;
                }
                self.stamped = Some(e);
                self.seen.fetch_max(e.0, Ordering::SeqCst);
                // What a crash of the previous active left behind (recordings marked running,
                // scratch files): cleaned by the node that now writes. Not before: on a shared
                // database the peer may have been recording.
                if let Some(dir) = self.data_dir.clone() {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        let r = crate::stale::at_start(&store, &dir).await;
                        tracing::info!(
                            recordings_closed = r.recordings_closed,
                            scratch_removed = r.scratch_removed,
                            "cluster: start-up clean-up done on becoming active"
                        );
                    });
                }
            }
            EpochNews::Newer(e) => {
                self.seen.fetch_max(e.0, Ordering::SeqCst);
            }
        }
    }

    /// Makes the store's grant follow the role machine (after every input).
    pub(crate) fn sync(&mut self, node: &Node, now: Instant) {
        let epoch = node.epoch();
        let grant = decide_grant(
            node.serving(now),
            node.authority(now),
            node.authority_until(),
            epoch,
            self.stamped,
        );
        match grant {
            Some(until) => self.store.fence().grant(epoch.0, until),
            None => {
                // Serving with authority but the takeover's stamp not in yet: writes wait for
                // the grant (bounded) instead of being refused — the address moved first, and
                // phones re-registering right after a switchover should get an answer.
                let stamping = node.serving(now)
                    && node.authority(now).is_some()
                    && self.stamped != Some(epoch);
                self.store
                    .fence()
                    .revoke_pending(stamping.then(|| now + store::fence::PENDING_MAX));
                if node.role() != ha::Role::Active
                    && let Some((_, h)) = self.stamping.take()
                {
                    h.abort();
                }
            }
        }
        let now_granted = grant.map(|_| epoch);
        if now_granted != self.granted {
            match now_granted {
                Some(e) => tracing::info!(%e, "cluster: store writes granted"),
                None => tracing::info!(
                    refused_so_far = self.store.fence().refused(),
                    "cluster: store writes revoked"
                ),
            }
            self.granted = now_granted;
        }
    }
}

/// The grant for the store: `Some(until)` (until `None` = no end) while serving under a stamped
/// epoch, `None` (no writes) otherwise.
fn decide_grant(
    serving: bool,
    authority: Option<Authority>,
    until: Option<Instant>,
    epoch: Epoch,
    stamped: Option<Epoch>,
) -> Option<Option<Instant>> {
    if !serving || stamped != Some(epoch) {
        return None;
    }
    match authority {
        Some(Authority::Fence) => Some(None),
        Some(_) => until.map(Some),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_only_while_serving_under_the_stamped_epoch() {
        let t = Instant::now() + Duration::from_secs(1);
        let (e5, e6) = (Epoch(5), Epoch(6));
        assert_eq!(
            decide_grant(true, Some(Authority::Lease), Some(t), e5, Some(e5)),
            Some(Some(t))
        );
        assert_eq!(
            decide_grant(true, Some(Authority::PeerAck), Some(t), e5, Some(e5)),
            Some(Some(t))
        );
        assert_eq!(
            decide_grant(true, Some(Authority::Fence), None, e6, Some(e6)),
            Some(None),
            "a fencing takeover has no end until a lease replaces it"
        );
        assert_eq!(
            decide_grant(true, Some(Authority::Lease), Some(t), e6, Some(e5)),
            None,
            "not stamped yet"
        );
        assert_eq!(
            decide_grant(true, Some(Authority::Lease), Some(t), e5, None),
            None
        );
        assert_eq!(
            decide_grant(false, None, Some(t), e5, Some(e5)),
            None,
            "not serving"
        );
        assert_eq!(
            decide_grant(true, Some(Authority::Lease), None, e5, Some(e5)),
            None,
            "a lease without an end cannot be"
        );
    }
}
