//! New calls during a switchover's hand-over.
//!
//! Between `StopNewWork` (the standby is catching up; calls still ringing are ended, see
//! [`Engine::end_ringing_calls`]) and the release of the application address, a new call
//! would start ringing on a node about to give the address away: its INVITE transaction and
//! forks cannot be handed over, so the caller would wait for a final response that never
//! comes (Timer B, 32 s). Instead the node answers new out-of-dialog INVITEs at once with
//! `503 Service Unavailable` and `Retry-After: 1` — the hand-over takes a few hundred
//! milliseconds, and a phone that redials reaches the new active. In-dialog requests (BYE,
//! re-INVITE, REFER of answered calls), REGISTER and SUBSCRIBE are served as usual: their
//! state is in the database (synchronously replicated) or in the answered calls' rows.
//! An aborted switchover (`ResumeWork`) and taking the address clear the refusal.

use sip::transaction::TransactionId;
use sip::{HeaderName, Request, Response};
use std::net::SocketAddr;
use tracing::info;

use crate::{Engine, Now};

impl Engine {
    /// Refuse (true) or take (false) new calls; the cluster driver sets it on `StopNewWork`
    /// and clears it on `ResumeWork` and when this node takes the application address.
    pub fn set_new_calls_refused(&mut self, refused: bool) {
        if self.live.new_calls_refused != refused {
            info!(
                refused,
                "new calls {} (switchover hand-over)",
                if refused { "refused" } else { "taken again" }
            );
        }
        self.live.new_calls_refused = refused;
    }

    /// Whether new calls are refused now.
    pub fn new_calls_refused(&self) -> bool {
        self.live.new_calls_refused
    }

    pub(crate) fn refuse_new_call(
        &mut self,
        txn: TransactionId,
        req: &Request,
        source: SocketAddr,
        now: Now,
    ) {
        info!(peer = %source, call_id = req.call_id().unwrap_or(""),
            "new call refused with 503: a switchover is handing over");
        let r = Response::for_request(req, 503, Some("Switchover In Progress"))
            .with_header(HeaderName::RetryAfter, "1");
        self.respond(txn, r, now);
    }
}
