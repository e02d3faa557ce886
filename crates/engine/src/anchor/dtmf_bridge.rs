//! DTMF carried across anchored bridges. When two legs are bridged through Denwa's media
//! endpoints (a transcoded call, a call an IVR connected, an outside call from an endpoint),
//! RTP telephone-events are not audio: the bridge does not carry them. A digit one phone sends
//! is therefore regenerated on the other leg, in the form that leg negotiated:
//!
//! | received as | other leg has telephone-event | other leg has none |
//! |---|---|---|
//! | RFC 4733 event | RFC 4733 events | in-band tones |
//! | SIP INFO | RFC 4733 events | in-band tones |
//! | in-band tone | RFC 4733 events (the tone's tail is replaced by the events) | nothing: the tone already crosses in the audio |
//!
//! [`regenerate`] is that table as a pure function; [`crate::Engine`]'s hook in the anchor's
//! digit handling applies it once the call is bridged (digits before that belong to the
//! application). A digit Denwa's own feature consumes on that leg is handled before the hook
//! and so never crosses.
//!
//! SIP INFO is received on either leg and regenerated; it is not generated: calls to trunks are
//! relayed phone to trunk (telephone-events pass through the relay untouched), so a trunk's
//! `inband`/`info` DTMF mode would need every call through it anchored, which Denwa does not do
//! (docs/trunks.md).

use tracing::debug;

use super::Anchor;
use crate::media::{EndpointId, MediaCommand};
use crate::{Engine, Now};

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Received {
    /// RFC 4733 telephone-event packets (the default: what an endpoint reports unqualified).
    #[default]
    Event,
    /// Tones in the audio, found by the in-band detector.
    Inband,
    /// A SIP INFO request (`application/dtmf-relay` or `application/dtmf`).
    Info,
}

/// How the other leg gets the digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regen {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// DTMF tones in the audio.
    Inband,
    /// Nothing: the digit reaches the other leg already (an in-band tone in the bridged audio).
    Pass,
}

/// The form a digit `received` takes on a leg whose phone negotiated telephone-event
/// (`peer_events`) or not.
pub fn regenerate(received: Received, peer_events: bool) -> Regen {
    match (received, peer_events) {
        (_, true) => Regen::Rfc4733,
        (Received::Inband, false) => Regen::Pass,
        (Received::Event | Received::Info, false) => Regen::Inband,
    }
}

/// The media command that regenerates `digit` on `peer`'s endpoint, if any.
pub fn command(
    digit: char,
    received: Received,
    peer: EndpointId,
    peer_events: bool,
) -> Option<MediaCommand> {
    let inband = match regenerate(received, peer_events) {
        Regen::Pass => return None,
        Regen::Rfc4733 => false,
        Regen::Inband => true,
    };
    Some(MediaCommand::SendDigits {
        endpoint: peer,
        digits: digit.to_string(),
        inband,
    })
}

impl Anchor {
    /// For an endpoint of a bridged call: whether it is the caller's, the other endpoint and
    /// whether that one's phone negotiated telephone-event. `None` before the callee answered.
    fn bridged_peer(&self, ep: EndpointId) -> Option<(bool, EndpointId, bool)> {
        let (_, b_ep) = self.winner?;
        let events = |e: &super::Ep| e.codec.as_ref().is_some_and(|(_, te)| te.is_some());
        if ep == self.a.id {
            let b = self.b.iter().find(|e| e.id == b_ep)?;
            Some((true, b_ep, events(b)))
        } else if ep == b_ep {
            Some((false, self.a.id, events(&self.a)))
        } else {
            None
        }
    }
}

impl Engine {
    /// The anchor's digit hook: when call `id` is bridged (its callee answered), a digit from
    /// either endpoint is regenerated on the other and true is returned (the digit is the far
    /// party's, not the application's). False when the call is not bridged.
    pub(crate) fn dtmf_across_bridge(&mut self, id: u64, ep: EndpointId, digit: char) -> bool {
        let received = self.dtmf_received;
        let Some((from_a, peer, peer_events)) = self
            .b2bua
            .get(id)
            .and_then(|c| c.anchor.as_deref())
            .and_then(|a| a.bridged_peer(ep))
        else {
            return false;
        };
        debug!(call = id, %digit, ?received, from_caller = from_a, "digit across the bridge");
        if let Some(cmd) = command(digit, received, peer, peer_events) {
            self.media(cmd);
        }
        true
    }

    /// A digit detected in an endpoint's audio: handled as any digit, but not regenerated
    /// in-band (the tone crosses the bridge by itself).
    pub(crate) fn inband_digit(&mut self, id: u64, ep: EndpointId, digit: char, now: Now) {
        self.dtmf_received = Received::Inband;
        self.app_digit(id, ep, digit, now);
        self.dtmf_received = Received::Event;
    }

    /// A digit in a SIP INFO from `ep`'s phone.
    pub(crate) fn info_digit(&mut self, id: u64, ep: EndpointId, digit: char, now: Now) {
        self.dtmf_received = Received::Info;
        self.app_digit(id, ep, digit, now);
        self.dtmf_received = Received::Event;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Received::*;
        assert_eq!(regenerate(Event, true), Regen::Rfc4733);
        assert_eq!(regenerate(Event, false), Regen::Inband);
        assert_eq!(regenerate(Info, true), Regen::Rfc4733);
        assert_eq!(regenerate(Info, false), Regen::Inband);
        assert_eq!(regenerate(Inband, true), Regen::Rfc4733);
        assert_eq!(regenerate(Inband, false), Regen::Pass);
        assert_eq!(command('5', Inband, EndpointId(2), false), None);
        assert_eq!(
            command('#', Info, EndpointId(2), false),
            Some(MediaCommand::SendDigits {
                endpoint: EndpointId(2),
                digits: "#".into(),
                inband: true
            })
        );
    }
}
