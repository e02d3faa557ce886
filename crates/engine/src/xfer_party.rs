//! Which party of a call an administrator's transfer moves (the panel's drag and drop: drag the
//! caller or the callee onto an extension). The party that moves is the transferee; the other
//! one is the transferor: its extension's class of service routes the target and it is released
//! once the target answers. Without a choice the callee hands the caller on (the historical
//! behaviour of [`crate::Engine::transfer`]).

use serde::{Deserialize, Serialize};

use crate::Engine;
use crate::Now;
use crate::b2bua::{Call, LegIdx};
use crate::transfer::TransferRefused;

/// The party of a two-party call that a transfer moves to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// The calling side (leg A) moves; the callee is released.
    Caller,
    /// The called side moves; the caller is released.
    Callee,
}

impl Party {
    /// `caller` or `callee`.
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Callee => "callee",
        }
    }

    /// Parses `caller` / `callee` (the API's and the panel's `moves` field).
    pub fn parse(s: &str) -> Option<Party> {
        match s.trim() {
            "caller" => Some(Party::Caller),
            "callee" => Some(Party::Callee),
            _ => None,
        }
    }
}

/// The transferor leg and its extension number for a transfer of the call bridging `caller`
/// (leg A's side) and `callee` that moves `moves`; refused (403) when the party that would stay
/// behind is no extension, since nothing then decides the class of service for the target.
pub(crate) fn transferor(
    call: &Call,
    (caller, callee): (LegIdx, LegIdx),
    moves: Option<Party>,
    snap: &crate::config::Snapshot,
) -> Result<(LegIdx, String), TransferRefused> {
    let ext = |leg| crate::transfer::leg_ext(call, leg, snap);
    let refuse = |reason: &str| TransferRefused {
        status: 403,
        reason: reason.to_string(),
    };
    match moves {
        None => match (ext(callee), ext(caller)) {
            (Some(n), _) => Ok((callee, n)),
            (None, Some(n)) => Ok((caller, n)),
            (None, None) => Err(refuse("No extension in this call may transfer it")),
        },
        Some(Party::Caller) => ext(callee)
            .map(|n| (callee, n))
            .ok_or_else(|| refuse("The callee is no extension: only the callee can be moved")),
        Some(Party::Callee) => ext(caller)
            .map(|n| (caller, n))
            .ok_or_else(|| refuse("The caller is no extension: only the caller can be moved")),
    }
}

impl Engine {
    /// Blind transfer started by an administrator (panel, API): the call's answering
    /// extension (or, when the callee is no extension, the caller) hands its peer to `to`,
    /// routed with that extension's class of service, and is released once `to` answers.
    pub fn transfer(&mut self, id: u64, to: &str, now: Now) -> Result<(), TransferRefused> {
        self.transfer_moving(id, to, None, now)
    }
}

impl Engine {
    /// Sets each answered call's `parties`: the extensions behind its bridged legs now.
    pub(crate) fn fill_parties(&self, calls: &mut [crate::control::CallSummary]) {
        for s in calls {
            let Some(call) = self.b2bua.get(s.id) else {
                continue;
            };
            let Some(bridge) = call.bridge else {
                continue;
            };
            s.parties = [bridge.a, bridge.b]
                .into_iter()
                .filter_map(|l| crate::transfer::leg_ext(call, l, &self.snap))
                .collect();
        }
    }
}
