//! Call recording policy: who may be recorded, and the on-demand feature code.
//!
//! Each extension, outbound route and trunk carries a [`RecPolicy`] (default `never`). A call's
//! parties are the caller's and callee's extensions, the outbound route it took and the trunk
//! that carried it. Precedence ([`decide`]): any `always` records the call from the answer;
//! otherwise any `on_demand` lets either party start and stop a recording with
//! [`REC_TOGGLE`] (any DTMF form during the call); otherwise (all `never`) nothing is recorded.
//! Pure logic; [`crate::rec_ctl`] applies it to calls, the driver runs the recorder.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::media::Side;

/// The feature code that starts or stops a recording during a call (default `*1`). The only
/// place it is spelled; [`ToggleDetector`] recognises it.
pub const REC_TOGGLE: &str = "*1";

/// Longest pause between the digits of [`REC_TOGGLE`].
pub const TOGGLE_DIGIT_GAP: Duration = Duration::from_secs(3);

/// Recording policy of one extension, outbound route or trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecPolicy {
    /// Never recorded (unless another party's policy says otherwise).
    #[default]
    Never,
    /// Every answered call is recorded.
    Always,
    /// Recorded when a party keys [`REC_TOGGLE`].
    OnDemand,
}

impl RecPolicy {
    /// Every policy.
    pub const ALL: [RecPolicy; 3] = [RecPolicy::Never, RecPolicy::Always, RecPolicy::OnDemand];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecPolicy::Never => "never",
            RecPolicy::Always => "always",
            RecPolicy::OnDemand => "on_demand",
        }
    }

    /// Parses the stored spelling (`on-demand` accepted too).
    pub fn parse(s: &str) -> Option<RecPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "never" => Some(RecPolicy::Never),
            "always" => Some(RecPolicy::Always),
            "on_demand" | "on-demand" | "ondemand" => Some(RecPolicy::OnDemand),
            _ => None,
        }
    }
}

/// What kind of object a policy belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecObject {
    /// An extension, by number.
    Extension,
    /// An outbound route, by name.
    Route,
    /// A trunk, by name.
    Trunk,
}

impl RecObject {
    /// Every kind.
    pub const ALL: [RecObject; 3] = [RecObject::Extension, RecObject::Route, RecObject::Trunk];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecObject::Extension => "extension",
            RecObject::Route => "route",
            RecObject::Trunk => "trunk",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<RecObject> {
        match s.trim().to_ascii_lowercase().as_str() {
            "extension" | "ext" => Some(RecObject::Extension),
            "route" => Some(RecObject::Route),
            "trunk" => Some(RecObject::Trunk),
            _ => None,
        }
    }
}

/// What happens to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecDecision {
    /// Record from the answer (and [`REC_TOGGLE`] may stop and restart it).
    Always,
    /// Not recorded until a party keys [`REC_TOGGLE`].
    OnDemand,
    /// Never recorded.
    Never,
}

/// The precedence rule: any `always` wins, then any `on_demand`, else `never`.
pub fn decide(policies: impl IntoIterator<Item = RecPolicy>) -> RecDecision {
    let mut d = RecDecision::Never;
    for p in policies {
        match p {
            RecPolicy::Always => return RecDecision::Always,
            RecPolicy::OnDemand => d = RecDecision::OnDemand,
            RecPolicy::Never => {}
        }
    }
    d
}

/// The objects whose policies apply to a call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallParties {
    /// Tenant.
    pub tenant: i64,
    /// SIP Call-ID of the caller's leg (names the file, links it to the call record).
    pub call_id: String,
    /// Extension numbers on the call (caller, callee, the extensions rung).
    pub extensions: Vec<String>,
    /// Outbound route taken, if any.
    pub route: Option<String>,
    /// Trunk that carried the call, if any.
    pub trunk: Option<String>,
}

impl CallParties {
    /// The parties of a call: its tenant and Call-ID, the caller's extension (not for
    /// inbound calls), the callee's and the extensions rung (not for outbound calls), the
    /// outbound route and the trunk.
    pub(crate) fn of_call(call: &crate::b2bua::Call) -> CallParties {
        use crate::db::Direction;
        let mut extensions = Vec::new();
        if call.route.direction != Direction::Inbound {
            extensions.push(call.caller.clone());
        }
        if call.route.direction != Direction::Outbound {
            extensions.push(call.callee.clone());
            // The extensions actually rung (a DID or a group reaches them by another number).
            for b in &call.rung {
                let user = b.aor.trim_start_matches("sip:").trim_start_matches("sips:");
                if let Some(u) = user.split('@').next().filter(|u| !u.is_empty()) {
                    extensions.push(u.to_string());
                }
            }
        }
        CallParties {
            tenant: call.tenant_id,
            call_id: call.legs[crate::b2bua::A_LEG].call_id.clone(),
            extensions,
            route: call.outside.as_ref().map(|o| o.call.route.clone()),
            trunk: Some(call.route.trunk.clone()).filter(|t| !t.is_empty()),
        }
    }

    /// Every `(kind, name)` whose policy counts for this call.
    pub fn objects(&self) -> Vec<(RecObject, String)> {
        let mut v: Vec<(RecObject, String)> = self
            .extensions
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| (RecObject::Extension, e.clone()))
            .collect();
        v.extend(self.route.iter().map(|r| (RecObject::Route, r.clone())));
        v.extend(self.trunk.iter().map(|t| (RecObject::Trunk, t.clone())));
        v.sort();
        v.dedup();
        v
    }
}

/// A relayed call was answered: what recording needs to know (see [`crate::media::MediaCommand`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answered {
    /// Who is on the call.
    pub parties: CallParties,
    /// Payload types from both sides' SDP: (payload type, encoding, clock).
    pub payloads: Vec<(u8, String, u32)>,
}

impl Answered {
    /// What recording needs from a relayed call answered with `offer` (the caller's SDP) and
    /// `answer` (the callee's).
    pub(crate) fn of_call(call: &crate::b2bua::Call, offer: &[u8], answer: &[u8]) -> Answered {
        let mut payloads = Vec::new();
        for body in [answer, offer] {
            if let Ok(s) = crate::sdp::summarize(body) {
                for c in s.codecs {
                    if !payloads.iter().any(|(pt, _, _)| *pt == c.0) {
                        payloads.push(c);
                    }
                }
            }
        }
        Answered {
            parties: CallParties::of_call(call),
            payloads,
        }
    }

    /// Telephone-event payload types among the payloads.
    pub fn telephone_events(&self) -> Vec<u8> {
        self.payloads
            .iter()
            .filter(|(_, name, _)| name.eq_ignore_ascii_case("telephone-event"))
            .map(|(pt, _, _)| *pt)
            .collect()
    }
}

/// Recognises the record-toggle code (the tenant's `record_toggle` feature code, default
/// [`REC_TOGGLE`]) typed by one party: digits of one side, each within [`TOGGLE_DIGIT_GAP`] of
/// the previous one. Other digits reset the match.
#[derive(Debug)]
pub struct ToggleDetector {
    code: Vec<char>,
    state: [(usize, Option<Instant>); 2],
}

impl Default for ToggleDetector {
    fn default() -> Self {
        ToggleDetector::new(Some(REC_TOGGLE))
    }
}

impl ToggleDetector {
    /// A detector of `code` (`None`: the tenant switched the code off; nothing matches).
    pub fn new(code: Option<&str>) -> ToggleDetector {
        ToggleDetector {
            code: code.unwrap_or("").chars().collect(),
            state: [(0, None); 2],
        }
    }

    /// Feeds one digit; true when it completes the code.
    pub fn digit(&mut self, side: Side, d: char, now: Instant) -> bool {
        let i = match side {
            Side::A => 0,
            Side::B => 1,
        };
        let code = &self.code;
        if code.is_empty() {
            return false;
        }
        let (pos, last) = &mut self.state[i];
        if last.is_some_and(|t| now.saturating_duration_since(t) > TOGGLE_DIGIT_GAP) {
            *pos = 0;
        }
        *last = Some(now);
        if code.get(*pos) == Some(&d) {
            *pos += 1;
        } else {
            *pos = usize::from(code.first() == Some(&d));
        }
        if *pos == code.len() {
            *pos = 0;
            *last = None;
            return true;
        }
        false
    }
}

/// The file a recording goes to, relative to the data directory:
/// `recordings/<tenant>/<yyyy>/<mm>/<dd>/<call-id>[-n].<ext>`. The Call-ID is reduced to
/// characters safe in a file name (a Call-ID comes from the network).
pub fn file_path(
    tenant: i64,
    date: (i32, u32, u32),
    call_id: &str,
    part: u32,
    ext: &str,
) -> String {
    let mut id: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect();
    if id.is_empty() || id.starts_with('.') {
        id.insert(0, 'c');
    }
    let (y, m, d) = date;
    let suffix = if part > 1 {
        format!("-{part}")
    } else {
        String::new()
    };
    format!("recordings/{tenant}/{y:04}/{m:02}/{d:02}/{id}{suffix}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecPolicy::*;

    #[test]
    fn precedence_always_then_on_demand_then_never() {
        assert_eq!(decide([]), RecDecision::Never);
        assert_eq!(decide([Never, Never]), RecDecision::Never);
        assert_eq!(decide([Never, OnDemand]), RecDecision::OnDemand);
        assert_eq!(decide([OnDemand, Always, Never]), RecDecision::Always);
        assert_eq!(decide([Never, Always]), RecDecision::Always);
    }

    #[test]
    fn policies_parse_and_print() {
        for p in RecPolicy::ALL {
            assert_eq!(RecPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(RecPolicy::parse("On-Demand"), Some(OnDemand));
        assert_eq!(RecPolicy::parse("sometimes"), None);
        for o in RecObject::ALL {
            assert_eq!(RecObject::parse(o.as_str()), Some(o));
        }
        assert_eq!(RecObject::parse("did"), None);
    }

    #[test]
    fn toggle_code_is_matched_per_side_within_the_gap() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = ToggleDetector::default();
        assert!(!d.digit(Side::A, '*', t0));
        assert!(d.digit(Side::A, '1', t0 + s));
        // Split over both sides: no.
        assert!(!d.digit(Side::A, '*', t0));
        assert!(!d.digit(Side::B, '1', t0 + s));
        // Too slow: no.
        let mut d = ToggleDetector::default();
        assert!(!d.digit(Side::B, '*', t0));
        assert!(!d.digit(Side::B, '1', t0 + 4 * s));
        // Other digits in between reset; `**1` still matches.
        let mut d = ToggleDetector::default();
        assert!(!d.digit(Side::B, '*', t0));
        assert!(!d.digit(Side::B, '5', t0));
        assert!(!d.digit(Side::B, '1', t0));
        assert!(!d.digit(Side::B, '*', t0));
        assert!(!d.digit(Side::B, '*', t0));
        assert!(d.digit(Side::B, '1', t0));
    }

    #[test]
    fn the_tenants_code_replaces_the_default_and_off_matches_nothing() {
        let t0 = Instant::now();
        let mut d = ToggleDetector::new(Some("#55"));
        assert!(!d.digit(Side::A, '*', t0));
        assert!(!d.digit(Side::A, '1', t0), "the default no longer toggles");
        for c in ['#', '5'] {
            assert!(!d.digit(Side::A, c, t0));
        }
        assert!(d.digit(Side::A, '5', t0));
        let mut off = ToggleDetector::new(None);
        assert!(!off.digit(Side::A, '*', t0));
        assert!(!off.digit(Side::A, '1', t0));
    }

    #[test]
    fn file_paths_are_dated_and_safe() {
        assert_eq!(
            file_path(1, (2026, 12, 6), "abc@10.0.0.1", 1, "wav"),
            "recordings/1/2026/12/06/abc_10.0.0.1.wav"
        );
        assert_eq!(
            file_path(2, (2026, 1, 2), "../../etc/passwd", 2, "opus"),
            "recordings/2/2026/01/02/c.._.._etc_passwd-2.opus"
        );
        assert!(!file_path(1, (2026, 1, 1), "", 1, "wav").contains("/.wav"));
    }

    #[test]
    fn parties_list_each_object_once() {
        let p = CallParties {
            tenant: 1,
            call_id: "x".into(),
            extensions: vec!["1001".into(), "1002".into(), "1001".into(), String::new()],
            route: Some("out".into()),
            trunk: Some("carrier".into()),
        };
        assert_eq!(
            p.objects(),
            vec![
                (RecObject::Extension, "1001".into()),
                (RecObject::Extension, "1002".into()),
                (RecObject::Route, "out".into()),
                (RecObject::Trunk, "carrier".into()),
            ]
        );
    }

    #[test]
    fn telephone_event_payloads_are_found() {
        let a = Answered {
            parties: CallParties::default(),
            payloads: vec![
                (0, "PCMU".into(), 8000),
                (101, "telephone-event".into(), 8000),
            ],
        };
        assert_eq!(a.telephone_events(), vec![101]);
    }
}
