//! Who is in a conference room now, for the panel's live participant list and the API: the
//! rooms call control reports, narrowed to one tenant's room, and the mute/kick actions checked
//! against that room (a call id of another room or tenant is refused). The panel's list is
//! pushed as server-sent events: one watcher asks call control every [`WATCH_EVERY`] while any
//! stream is open and sends a change to every stream (bounded per stream, [`MAX_STREAMS`] at
//! most); each renders its own room in its own language.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use engine::control::{ConfMember, ConfSummary};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::Web;

/// The participants of `tenant`'s room `number` in `live`, in joining order.
pub(crate) fn members(live: &[ConfSummary], tenant: i64, number: &str) -> Vec<ConfMember> {
    live.iter()
        .find(|c| c.tenant_id == tenant && c.number == number)
        .map(|c| c.members.clone())
        .unwrap_or_default()
}

/// Whether `call` is in `tenant`'s room `number` now.
async fn in_room(w: &Web, tenant: i64, number: &str, call: u64) -> bool {
    let live = w.control().conferences().await;
    members(&live, tenant, number)
        .iter()
        .any(|m| m.call == call)
}

/// Drops `call` from the room (hangs it up); false when it is not in that room.
pub(crate) async fn kick(w: &Web, tenant: i64, number: &str, call: u64) -> bool {
    in_room(w, tenant, number, call).await && w.control().hangup(call).await
}

/// Mutes or unmutes `call` in the room; false when it is not in that room.
pub(crate) async fn mute(w: &Web, tenant: i64, number: &str, call: u64, muted: bool) -> bool {
    in_room(w, tenant, number, call).await && w.control().conf_mute(call, muted).await
}

// ----- the participant list pushed to the panel (server-sent events) -----

/// Most participant streams open at once (all rooms, all browsers); past it a page gets 503
/// and its script falls back to reloading the list.
pub const MAX_STREAMS: usize = 64;
/// Room states one stream may have waiting; a stream further behind skips to the newest.
pub const STREAM_BUFFER: usize = 8;
/// How often call control is asked while at least one stream is open (one question for every
/// stream together; a change reaches the browsers within it).
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// A stream ends after this and the browser reconnects, signed in again (a session that ended
/// stops receiving).
pub const STREAM_LIFETIME: Duration = Duration::from_secs(300);

type Rooms = Arc<Vec<ConfSummary>>;

/// One watcher of call control's rooms for every open stream.
pub(crate) struct Hub {
    tx: broadcast::Sender<Rooms>,
    slots: Arc<Semaphore>,
    watching: AtomicBool,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(STREAM_BUFFER).0,
            slots: Arc::new(Semaphore::new(MAX_STREAMS)),
            watching: AtomicBool::new(false),
        }
    }
}

/// What a change is made of: who is in which room and whether muted (not the running
/// durations, which change every second).
fn shape(live: &[ConfSummary]) -> Vec<(i64, &str, u64, bool)> {
    live.iter()
        .flat_map(|c| {
            c.members
                .iter()
                .map(move |m| (c.tenant_id, c.number.as_str(), m.call, m.muted))
        })
        .collect()
}

/// Starts the watcher unless it runs; it stops by itself once no stream is open.
fn watch(w: &Web) {
    if w.conf_hub().watching.swap(true, SeqCst) {
        return;
    }
    let w = w.clone();
    tokio::spawn(async move {
        let hub = w.conf_hub();
        let mut last: Option<Rooms> = None;
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if hub.tx.receiver_count() == 0 {
                hub.watching.store(false, SeqCst);
                // A stream that opened just now saw the flag still set: go on for it.
                if hub.tx.receiver_count() == 0 || hub.watching.swap(true, SeqCst) {
                    return;
                }
            }
            let live = Arc::new(w.control().conferences().await);
            if last.as_ref().is_none_or(|l| shape(l) != shape(&live)) {
                last = Some(live.clone());
                let _ = hub.tx.send(live);
            }
        }
    });
}

/// One browser's stream of a room.
struct Stream<R> {
    w: Web,
    rx: broadcast::Receiver<Rooms>,
    tenant: i64,
    number: String,
    render: R,
    last: Option<String>,
    first: bool,
    until: tokio::time::Instant,
    _slot: OwnedSemaphorePermit,
}

impl<R: Fn(&[ConfMember]) -> String> Stream<R> {
    /// The next list to send (`None`: the stream ends).
    async fn next(&mut self) -> Option<String> {
        loop {
            let live = if self.first {
                self.first = false;
                Arc::new(self.w.control().conferences().await)
            } else {
                match tokio::time::timeout_at(self.until, self.rx.recv()).await {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        // Too far behind: what the room is like now.
                        Arc::new(self.w.control().conferences().await)
                    }
                    Ok(Ok(live)) => live,
                }
            };
            let html = (self.render)(&members(&live, self.tenant, &self.number));
            if self.last.as_deref() != Some(html.as_str()) {
                self.last = Some(html.clone());
                return Some(html);
            }
        }
    }
}

/// The participant list of `tenant`'s room `number` as server-sent events: a `members` event
/// with the list's HTML (`render`) now and after every change, keep-alive comments between.
/// 503 when [`MAX_STREAMS`] are open.
pub(crate) fn events<R>(w: &Web, tenant: i64, number: String, render: R) -> Response
where
    R: Fn(&[ConfMember]) -> String + Send + 'static,
{
    let hub = w.conf_hub();
    let Ok(slot) = hub.slots.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "10")],
            "too many live lists open",
        )
            .into_response();
    };
    let stream = Stream {
        w: w.clone(),
        rx: hub.tx.subscribe(),
        tenant,
        number,
        render,
        last: None,
        first: true,
        until: tokio::time::Instant::now() + STREAM_LIFETIME,
        _slot: slot,
    };
    watch(w);
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let html = s.next().await?;
        let ev = Event::default()
            .event("members")
            .retry(Duration::from_secs(1))
            .data(html);
        Some((Ok::<_, Infallible>(ev), s))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
