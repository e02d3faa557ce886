//! `page`: intercom (`*80` + extension) and the auto-answer signalling it sends (issue 15 §7).
//!
//! Intercom calls ONE extension of the caller's own tenant, rings every registered contact of
//! it at once, and puts auto-answer headers on each fork's INVITE so the phone answers by
//! itself (speaker on); audio flows both ways through the ordinary relay. The call ignores
//! the target's forwarding (an intercom is not diverted to voicemail or a mobile) and is
//! refused when:
//! - the number is no extension of the caller's tenant (404: other tenants' extensions are
//!   never reachable, which is the class of service of intercom),
//! - the target is the caller itself (403),
//! - the target has do-not-disturb on (480 "Do Not Disturb"),
//! - the target has no registered contact (480).
//!
//! The call keeps one ordinary call record (caller → target, the dialled `*80…` in the route).
//!
//! Which phone reads which header ([`AutoAnswer::headers`]):
//!
//! | Header | Read by |
//! |---|---|
//! | `Call-Info: <sip:SERVER>;answer-after=0` | Polycom, Yealink, Snom, Grandstream, Cisco SPA, Fanvil |
//! | `Alert-Info: <http://127.0.0.1>;info=alert-autoanswer;delay=0` | Yealink, Grandstream (and Snom's `alert-autoanswer` match) |
//! | `Alert-Info: Auto Answer` | older Polycom (SoundPoint) firmware, only in [`AutoAnswer::PolycomLegacy`] |
//! | `Answer-Mode: Auto` | RFC 5373 phones and soft clients |

use std::fmt;
use std::str::FromStr;

use sip::HeaderName;
use tracing::info;

use crate::b2bua::{A_LEG, Entry, Origin, Targets};
use crate::config::ExtEntry;
use crate::db::Disposition;
use crate::usrloc::Binding;
use crate::{Engine, Now};

/// Which auto-answer headers an intercom (or page) INVITE carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoAnswer {
    /// `Call-Info` + `Alert-Info` (URI form) + `Answer-Mode`: what most phones read.
    #[default]
    Common,
    /// Only `Call-Info: …;answer-after=0`.
    CallInfo,
    /// Only `Alert-Info: <http://127.0.0.1>;info=alert-autoanswer;delay=0`.
    AlertInfo,
    /// Only `Answer-Mode: Auto` (RFC 5373).
    AnswerMode,
    /// The common set plus `Alert-Info: Auto Answer` for old Polycom firmware.
    PolycomLegacy,
}

impl AutoAnswer {
    /// Every profile.
    pub const ALL: &'static [AutoAnswer] = &[
        AutoAnswer::Common,
        AutoAnswer::CallInfo,
        AutoAnswer::AlertInfo,
        AutoAnswer::AnswerMode,
        AutoAnswer::PolycomLegacy,
    ];

    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoAnswer::Common => "common",
            AutoAnswer::CallInfo => "call_info",
            AutoAnswer::AlertInfo => "alert_info",
            AutoAnswer::AnswerMode => "answer_mode",
            AutoAnswer::PolycomLegacy => "polycom_legacy",
        }
    }

    /// The headers (name, value) to add to an INVITE sent to a phone of `domain` (the
    /// tenant's SIP domain, named in `Call-Info`).
    pub fn headers(self, domain: &str) -> Vec<(HeaderName, String)> {
        let call_info = || {
            (
                HeaderName::Other(bytes::Bytes::from_static(b"Call-Info")),
                format!("<sip:{domain}>;answer-after=0"),
            )
        };
        let alert_info = || {
            (
                HeaderName::Other(bytes::Bytes::from_static(b"Alert-Info")),
                "<http://127.0.0.1>;info=alert-autoanswer;delay=0".to_string(),
            )
        };
        let answer_mode = || {
            (
                HeaderName::Other(bytes::Bytes::from_static(b"Answer-Mode")),
                "Auto".to_string(),
            )
        };
        match self {
            AutoAnswer::Common => vec![call_info(), alert_info(), answer_mode()],
            AutoAnswer::CallInfo => vec![call_info()],
            AutoAnswer::AlertInfo => vec![alert_info()],
            AutoAnswer::AnswerMode => vec![answer_mode()],
            AutoAnswer::PolycomLegacy => vec![
                call_info(),
                alert_info(),
                (
                    HeaderName::Other(bytes::Bytes::from_static(b"Alert-Info")),
                    "Auto Answer".to_string(),
                ),
                answer_mode(),
            ],
        }
    }
}

impl fmt::Display for AutoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AutoAnswer {
    type Err = String;

    fn from_str(s: &str) -> Result<AutoAnswer, String> {
        AutoAnswer::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let words: Vec<&str> = AutoAnswer::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown auto-answer set {s:?} (one of {})",
                    words.join(", ")
                )
            })
    }
}

impl Engine {
    /// `*80` + extension dialled by `caller`: rings that extension's contacts with the
    /// auto-answer headers, or refuses (see the module documentation).
    pub(crate) fn intercom(
        &mut self,
        entry: Entry,
        mut o: Origin,
        caller: &ExtEntry,
        arg: &str,
        now: Now,
    ) {
        let number = arg.trim().to_string();
        let target = self
            .snap
            .extensions
            .get(&(o.tenant, number.clone()))
            .cloned();
        let dnd = |e: &ExtEntry| {
            self.snap
                .apps
                .hunt
                .forwarding
                .get(&e.id)
                .is_some_and(|f| f.dnd)
        };
        let (txn, source) = (entry.0, entry.2);
        let contacts = |e: &ExtEntry| -> Vec<Binding> {
            let live = |b: &&Binding| b.expires_at > now.wall && b.received != source;
            self.usrloc.get(e.id).iter().filter(live).cloned().collect()
        };
        let (bindings, refusal) = match &target {
            None => (Vec::new(), Some((404, "Not Found"))),
            Some(t) if !t.enabled => (Vec::new(), Some((404, "Not Found"))),
            Some(t) if t.id == caller.id => (Vec::new(), Some((403, "Intercom To Self"))),
            Some(t) if dnd(t) => (Vec::new(), Some((480, "Do Not Disturb"))),
            Some(t) => match contacts(t) {
                b if b.is_empty() => (b, Some((480, "Temporarily Unavailable"))),
                b => (b, None),
            },
        };
        o.digits = number.clone();
        if let Some((status, reason)) = refusal {
            info!(tenant = o.tenant, caller = %o.caller, target = %number, status, reason, "intercom refused");
            let req = &entry.1;
            let failed = Disposition::Failed;
            return self.refuse_call(txn, req, source, &o, status, reason, failed, now);
        }
        info!(tenant = o.tenant, caller = %o.caller, target = %number, contacts = bindings.len(), "intercom");
        let call_id = o.call_id.clone();
        let segments: Vec<_> = bindings.iter().map(|b| b.local.ip()).collect();
        self.start_call(entry, o, Targets::Contacts(bindings), &segments, now);
        // The forks go out once the relay sessions are open; they read this then.
        if let Some(&(id, A_LEG)) = self.b2bua.by_call_id.get(&call_id)
            && let Some(call) = self.b2bua.get_mut(id)
        {
            call.auto_answer = Some(AutoAnswer::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_set_names_the_domain_and_every_style() {
        let h: Vec<(String, String)> = AutoAnswer::Common
            .headers("pbx.example")
            .into_iter()
            .map(|(n, v)| (n.as_str().to_string(), v))
            .collect();
        assert_eq!(
            h,
            vec![
                (
                    "Call-Info".into(),
                    "<sip:pbx.example>;answer-after=0".into()
                ),
                (
                    "Alert-Info".into(),
                    "<http://127.0.0.1>;info=alert-autoanswer;delay=0".into()
                ),
                ("Answer-Mode".into(), "Auto".into()),
            ]
        );
        let legacy = AutoAnswer::PolycomLegacy.headers("d");
        assert!(legacy.iter().any(|(_, v)| v == "Auto Answer"));
        assert_eq!(AutoAnswer::CallInfo.headers("d").len(), 1);
    }

    #[test]
    fn words_round_trip_and_bad_words_are_refused() {
        for a in AutoAnswer::ALL {
            assert_eq!(a.as_str().parse::<AutoAnswer>(), Ok(*a));
        }
        let e = "yealink".parse::<AutoAnswer>().expect_err("unknown");
        assert!(e.contains("common"), "{e}");
    }
}
