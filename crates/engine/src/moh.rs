//! Music on hold for calls relayed phone to phone. When one party puts the call on hold (a
//! re-INVITE `sendonly`/`inactive`), the re-INVITE forwarded to the other party offers it a media
//! endpoint of ours instead of the relay, and the endpoint plays the tenant's hold music to it;
//! when the holder resumes, the forwarded re-INVITE points the held party back at the relay and
//! the endpoint closes. The relay session stays as it was, so resuming needs no new ports.

use sip::transaction::TransactionId;
use sip::{Method, Request, Response};
use tracing::{info, warn};

use crate::b2bua::LegIdx;
use crate::media::{EndpointId, MediaCommand};
use crate::{Engine, Now, nathelper, sdp, sdp_local};

/// Where the music stands.
#[derive(Debug)]
pub(crate) enum Stage {
    /// The endpoint is opening; the holder's re-INVITE waits.
    Opening {
        txn: TransactionId,
        req: Box<Request>,
        from: LegIdx,
    },
    /// Our offer went to the held party in this transaction.
    Offered(TransactionId),
    /// Music plays.
    Playing,
    /// The holder resumed; its re-INVITE is about to be forwarded.
    ResumePending,
    /// The held party is being pointed back at the relay in this transaction.
    Resuming(TransactionId),
    /// Music for a transferee while the transfer target rings: the endpoint is opening
    /// ([`crate::transfer`] sends the offer itself).
    TransferOpening,
}

/// Music on hold for one call.
#[derive(Debug)]
pub(crate) struct Moh {
    pub endpoint: EndpointId,
    /// The held party's leg.
    pub held: LegIdx,
    pub stage: Stage,
}

fn sdp_of(req_body: &[u8]) -> Option<sdp::Summary> {
    if req_body.is_empty() {
        return None;
    }
    sdp::summarize(req_body).ok()
}

impl Engine {
    /// A re-INVITE across a relayed call's bridge: holding starts the music (true: the request
    /// waits for the endpoint); resuming marks the music to stop once the peer answers.
    pub(crate) fn moh_intercept(
        &mut self,
        id: u64,
        txn: TransactionId,
        req: &Request,
        from: LegIdx,
        _now: Now,
    ) -> bool {
        if req.method != Method::Invite {
            return false;
        }
        let Some(s) = sdp_of(&req.body) else {
            return false;
        };
        let Some(call) = self.b2bua.get(id) else {
            return false;
        };
        if call.anchor.is_some() {
            return false;
        }
        let Some(to) = call.bridge.and_then(|b| b.peer(from)) else {
            return false;
        };
        let ip = call.legs[to].local.ip();
        let call_id = call.legs[to].call_id.clone();
        match (&call.moh, s.is_hold()) {
            (None, true) => {
                let ep = self.b2bua.new_endpoint(id);
                if let Some(c) = self.b2bua.get_mut(id) {
                    c.moh = Some(Box::new(Moh {
                        endpoint: ep,
                        held: to,
                        stage: Stage::Opening {
                            txn,
                            req: Box::new(req.clone()),
                            from,
                        },
                    }));
                }
                info!(call = id, "on hold: music for the other party");
                self.media(MediaCommand::OpenEndpoint {
                    endpoint: ep,
                    call_id,
                    ip,
                    group: id,
                });
                true
            }
            (Some(m), false) if matches!(m.stage, Stage::Playing) => {
                // Forwarded as usual (the held party goes back to the relay); the music stops
                // when it answers.
                if let Some(m) = self.b2bua.get_mut(id).and_then(|c| c.moh.as_mut()) {
                    m.stage = Stage::ResumePending;
                }
                false
            }
            _ => false,
        }
    }

    /// The music endpoint opened (or failed): forward the holder's re-INVITE with our offer.
    pub(crate) fn moh_opened(&mut self, id: u64, r: Result<std::net::SocketAddr, ()>, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(m) = call.moh.as_mut() else {
            return;
        };
        let held_local = call.legs[m.held].local;
        let stage = std::mem::replace(&mut m.stage, Stage::Playing);
        if matches!(stage, Stage::TransferOpening) {
            return self.transfer_music_opened(id, r, now);
        }
        let Stage::Opening { txn, req, from } = stage else {
            return;
        };
        let codec = call.codec.clone();
        let body = match r {
            Ok(local) => {
                let addr = std::net::SocketAddr::new(
                    nathelper::advertised_ip(adv, held_local),
                    local.port(),
                );
                let mut offer = sdp_local::offer(addr, Some(&codec), 1);
                // We only send.
                let text = String::from_utf8_lossy(&offer).replace("a=sendrecv", "a=sendonly");
                offer = text.into_bytes();
                Some(offer)
            }
            Err(()) => {
                warn!(
                    call = id,
                    "no endpoint for hold music: the hold is forwarded as is"
                );
                let ep = m.endpoint;
                call.moh = None;
                self.b2bua.by_endpoint.remove(&ep);
                None
            }
        };
        let with_music = body.is_some();
        let out = self.forward_request_with(id, txn, *req, from, body, now);
        if let (true, Some(t)) = (with_music, out)
            && let Some(m) = self.b2bua.get_mut(id).and_then(|c| c.moh.as_mut())
        {
            m.stage = Stage::Offered(t);
        }
    }

    /// A request was forwarded in client transaction `t`: a resume's answer will stop the music.
    pub(crate) fn moh_forwarded(&mut self, id: u64, t: TransactionId) {
        if let Some(m) = self.b2bua.get_mut(id).and_then(|c| c.moh.as_mut())
            && matches!(m.stage, Stage::ResumePending)
        {
            m.stage = Stage::Resuming(t);
        }
    }

    /// A response to a request forwarded across a relayed call: starts or stops the music.
    pub(crate) fn moh_response(&mut self, id: u64, txn: TransactionId, resp: &Response, _now: Now) {
        if resp.status < 200 {
            return;
        }
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(m) = call.moh.as_mut() else {
            return;
        };
        let ep = m.endpoint;
        match &m.stage {
            Stage::Offered(t) if *t == txn => {
                let answer = (200..300)
                    .contains(&resp.status)
                    .then(|| sdp_of(&resp.body))
                    .flatten();
                match answer
                    .as_ref()
                    .and_then(|a| sdp_local::choose(a).map(|c| (a, c)))
                {
                    Some((a, (codec, te))) => {
                        m.stage = Stage::Playing;
                        self.media(MediaCommand::ConfigureEndpoint {
                            endpoint: ep,
                            rtp: a.rtp,
                            rtcp: a.rtcp,
                            codec,
                            telephone_event: te,
                            ptime: 20,
                        });
                        let music = self.hold_music(tenant);
                        self.media(MediaCommand::Play {
                            endpoint: ep,
                            id: 0,
                            items: vec![music],
                            stop_on_dtmf: false,
                            repeat: true,
                        });
                    }
                    None => {
                        info!(
                            call = id,
                            status = resp.status,
                            "hold music refused by the held party"
                        );
                        call.moh = None;
                        self.b2bua.by_endpoint.remove(&ep);
                        self.media(MediaCommand::CloseEndpoint { endpoint: ep });
                    }
                }
            }
            Stage::Resuming(t) if *t == txn => {
                if (200..300).contains(&resp.status) {
                    info!(call = id, "resumed: hold music stops");
                    call.moh = None;
                    self.b2bua.by_endpoint.remove(&ep);
                    self.media(MediaCommand::CloseEndpoint { endpoint: ep });
                } else {
                    // The resume failed: still on hold, the music goes on.
                    m.stage = Stage::Playing;
                }
            }
            _ => {}
        }
    }
}
