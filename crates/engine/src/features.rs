//! Feature codes: the star codes a phone dials to act on the PBX (`*78` do not disturb, `*8`
//! pick up a ringing call, `*28` + index day/night toggle, …). One table per tenant: the
//! defaults below, any of them changed or switched off per tenant; changes that would make
//! dialling ambiguous are refused with the reason.
//!
//! Matching: a code without an argument matches only the whole dialled number; a code with an
//! argument ([`FeatureAction::takes_arg`]) matches a dialled number that starts with it, and the
//! rest is the argument (`**1001` → directed pickup of 1001). Hence the conflict rules: codes
//! may not be equal; no code may start with a code that takes an argument (it would be read as
//! that code plus digits); a code without an argument may be a prefix of a longer code (`*8`
//! and `*80`+ext both work: `*8` is only the whole number). No extension, group, IVR,
//! conference or DID number may equal a code or start with a code that takes an argument.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What a feature code does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureAction {
    /// Listen to one's own voicemail box.
    VmOwnBox,
    /// Voicemail main menu (asks for the box).
    VmMain,
    /// Record the call on demand (DTMF during a call, not dialled).
    RecordToggle,
    /// Forward always on (argument: the target, or asked for).
    FwdAlwaysOn,
    /// Forward always off.
    FwdAlwaysOff,
    /// Forward on busy on.
    FwdBusyOn,
    /// Forward on busy off.
    FwdBusyOff,
    /// Forward on no answer on.
    FwdNoAnswerOn,
    /// Forward on no answer off.
    FwdNoAnswerOff,
    /// Do not disturb toggle.
    DndToggle,
    /// Do not disturb off.
    DndOff,
    /// Answer a call ringing in one's pickup groups.
    GroupPickup,
    /// Answer the call ringing at the extension given.
    DirectedPickup,
    /// Park the call (park slot announced).
    Park,
    /// Day/night toggle of the time condition with the index given.
    DayNight,
    /// Intercom to the extension given.
    Intercom,
    /// Record a prompt (argument: prompt id).
    RecordPrompt,
    /// Straight into an extension's voicemail box (argument: the extension), without ringing
    /// it: dialled, or the target of a transfer ("send the caller to 1003's voicemail").
    VmDirect,
}

/// Description of one feature code.
#[derive(Debug, Clone, Copy)]
pub struct FeatureDef {
    /// The action.
    pub action: FeatureAction,
    /// Stable key (API, CLI, database).
    pub key: &'static str,
    /// Default code.
    pub default: &'static str,
    /// Digits after the code are its argument.
    pub takes_arg: bool,
    /// Used as DTMF during a call, not dialled (not part of the dialplan).
    pub in_call: bool,
    /// What it does (English, for `denwa features list` and the API).
    pub about: &'static str,
}

const fn def(
    action: FeatureAction,
    key: &'static str,
    default: &'static str,
    takes_arg: bool,
    about: &'static str,
) -> FeatureDef {
    FeatureDef {
        action,
        key,
        default,
        takes_arg,
        in_call: false,
        about,
    }
}

/// Every feature code with its default.
pub const DEFS: &[FeatureDef] = &[
    def(
        FeatureAction::VmOwnBox,
        "vm_own_box",
        "*97",
        false,
        "own voicemail box",
    ),
    def(
        FeatureAction::VmMain,
        "vm_main",
        "*98",
        false,
        "voicemail main menu",
    ),
    FeatureDef {
        action: FeatureAction::RecordToggle,
        key: "record_toggle",
        default: "*1",
        takes_arg: false,
        in_call: true,
        about: "record the call on demand (DTMF during a call)",
    },
    def(
        FeatureAction::FwdAlwaysOn,
        "fwd_always_on",
        "*72",
        true,
        "call forward always on (+ number)",
    ),
    def(
        FeatureAction::FwdAlwaysOff,
        "fwd_always_off",
        "*73",
        false,
        "call forward always off",
    ),
    def(
        FeatureAction::FwdBusyOn,
        "fwd_busy_on",
        "*90",
        true,
        "call forward on busy on (+ number)",
    ),
    def(
        FeatureAction::FwdBusyOff,
        "fwd_busy_off",
        "*91",
        false,
        "call forward on busy off",
    ),
    def(
        FeatureAction::FwdNoAnswerOn,
        "fwd_noanswer_on",
        "*92",
        true,
        "call forward on no answer on (+ number)",
    ),
    def(
        FeatureAction::FwdNoAnswerOff,
        "fwd_noanswer_off",
        "*93",
        false,
        "call forward on no answer off",
    ),
    def(
        FeatureAction::DndToggle,
        "dnd_toggle",
        "*78",
        false,
        "do not disturb toggle",
    ),
    def(
        FeatureAction::DndOff,
        "dnd_off",
        "*79",
        false,
        "do not disturb off",
    ),
    def(
        FeatureAction::GroupPickup,
        "group_pickup",
        "*8",
        false,
        "answer a call ringing in my pickup groups",
    ),
    def(
        FeatureAction::DirectedPickup,
        "directed_pickup",
        "**",
        true,
        "answer the call ringing at an extension (+ extension)",
    ),
    def(FeatureAction::Park, "park", "*70", false, "park the call"),
    def(
        FeatureAction::DayNight,
        "day_night",
        "*28",
        true,
        "day/night toggle of a time condition (+ index)",
    ),
    def(
        FeatureAction::Intercom,
        "intercom",
        "*80",
        true,
        "intercom (+ extension)",
    ),
    def(
        FeatureAction::RecordPrompt,
        "record_prompt",
        "*77",
        true,
        "record a prompt by phone (+ prompt number; extensions in prompts.recorders only)",
    ),
    def(
        FeatureAction::VmDirect,
        "vm_direct",
        "*99",
        true,
        "leave a message in an extension's voicemail box without ringing it (+ extension); transfer a caller there",
    ),
];

impl FeatureAction {
    /// Its definition.
    pub fn def(self) -> &'static FeatureDef {
        DEFS.iter().find(|d| d.action == self).unwrap_or(&DEFS[0])
    }

    /// Stable key.
    pub fn key(self) -> &'static str {
        self.def().key
    }

    /// Digits after the code are its argument.
    pub fn takes_arg(self) -> bool {
        self.def().takes_arg
    }
}

impl fmt::Display for FeatureAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for FeatureAction {
    type Err = FeatureError;
    fn from_str(s: &str) -> Result<FeatureAction, FeatureError> {
        DEFS.iter()
            .find(|d| d.key == s.trim())
            .map(|d| d.action)
            .ok_or_else(|| FeatureError::UnknownFeature(s.to_string()))
    }
}

/// Why a feature code change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// No such feature.
    #[error("unknown feature {0:?} (see `denwa features list` for the keys)")]
    UnknownFeature(String),
    /// Bad characters or length.
    #[error(
        "feature code {0:?} must be 1 to 10 characters of 0-9, * and #, with at least one * or #"
    )]
    BadCode(String),
    /// Same code twice.
    #[error("feature code {code:?} is already used by {other}")]
    Duplicate {
        /// The code.
        code: String,
        /// The feature holding it.
        other: FeatureAction,
    },
    /// A code starts with a code that takes an argument.
    #[error(
        "feature code {code:?} ({feature}) starts with {prefix:?} ({other}), which takes digits after it: dialling {code:?} would be read as {other}"
    )]
    Prefix {
        /// The longer code.
        code: String,
        /// Its feature.
        feature: FeatureAction,
        /// The shorter code.
        prefix: String,
        /// Its feature.
        other: FeatureAction,
    },
    /// A number of the tenant collides with a code.
    #[error("feature code {code:?} ({feature}) collides with {what} {number:?}")]
    Number {
        /// The code.
        code: String,
        /// Its feature.
        feature: FeatureAction,
        /// Extension, group, IVR, conference or DID.
        what: String,
        /// The number.
        number: String,
    },
}

/// A dialled number recognised as a feature code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureCall {
    /// The action.
    pub action: FeatureAction,
    /// Digits after the code (empty for codes without an argument).
    pub arg: String,
}

/// One tenant's feature codes: the defaults with the tenant's changes (`None`: switched off).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureTable {
    /// Changes from the defaults.
    pub overrides: BTreeMap<FeatureAction, Option<String>>,
}

/// Checks the form of a code.
pub fn check_code(code: &str) -> Result<(), FeatureError> {
    let ok = (1..=10).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        && code.contains(['*', '#']);
    if ok {
        Ok(())
    } else {
        Err(FeatureError::BadCode(code.to_string()))
    }
}

impl FeatureTable {
    /// The code of `action` now (`None`: switched off).
    pub fn code(&self, action: FeatureAction) -> Option<&str> {
        match self.overrides.get(&action) {
            Some(c) => c.as_deref(),
            None => Some(action.def().default),
        }
    }

    /// Every feature with its code, in the order of [`DEFS`].
    pub fn all(&self) -> Vec<(&'static FeatureDef, Option<&str>)> {
        DEFS.iter().map(|d| (d, self.code(d.action))).collect()
    }

    /// Recognises a dialled number (codes used during calls are not dialled).
    pub fn recognise(&self, digits: &str) -> Option<FeatureCall> {
        DEFS.iter().filter(|d| !d.in_call).find_map(|d| {
            let code = self.code(d.action)?;
            if d.takes_arg {
                digits.strip_prefix(code).map(|rest| FeatureCall {
                    action: d.action,
                    arg: rest.to_string(),
                })
            } else {
                (digits == code).then(|| FeatureCall {
                    action: d.action,
                    arg: String::new(),
                })
            }
        })
    }

    /// Checks the whole table for conflicts among codes and with the tenant's `numbers`
    /// (`(what, number)`: extensions, groups, IVRs, rooms, DIDs).
    pub fn validate<'a>(
        &self,
        numbers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), FeatureError> {
        self.validate_focus(None, numbers)
    }

    /// [`FeatureTable::validate`], the changed feature checked first (errors name the other).
    fn validate_focus<'a>(
        &self,
        focus: Option<FeatureAction>,
        numbers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), FeatureError> {
        let mut codes: Vec<(&FeatureDef, &str)> = DEFS
            .iter()
            .filter_map(|d| self.code(d.action).map(|c| (d, c)))
            .collect();
        codes.sort_by_key(|(d, _)| Some(d.action) != focus);
        for (d, c) in &codes {
            check_code(c)?;
            for (o, oc) in &codes {
                if d.action == o.action || d.in_call != o.in_call {
                    continue;
                }
                if c == oc {
                    return Err(FeatureError::Duplicate {
                        code: c.to_string(),
                        other: o.action,
                    });
                }
                if o.takes_arg && c.starts_with(oc) {
                    return Err(FeatureError::Prefix {
                        code: c.to_string(),
                        feature: d.action,
                        prefix: oc.to_string(),
                        other: o.action,
                    });
                }
            }
        }
        for (what, n) in numbers {
            for (d, c) in codes.iter().filter(|(d, _)| !d.in_call) {
                if n == *c || (d.takes_arg && n.starts_with(c)) {
                    return Err(FeatureError::Number {
                        code: c.to_string(),
                        feature: d.action,
                        what: what.to_string(),
                        number: n.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The table with `action` set to `code` (`None`: off; `Some(default)` clears the change),
    /// checked against the other codes and the tenant's numbers.
    pub fn with<'a>(
        &self,
        action: FeatureAction,
        code: Option<&str>,
        numbers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<FeatureTable, FeatureError> {
        let mut t = self.clone();
        match code {
            Some(c) if c == action.def().default => {
                t.overrides.remove(&action);
            }
            Some(c) => {
                check_code(c)?;
                t.overrides.insert(action, Some(c.to_string()));
            }
            None => {
                t.overrides.insert(action, None);
            }
        }
        t.validate_focus(Some(action), numbers)?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_consistent_and_recognised() {
        let t = FeatureTable::default();
        t.validate([("extension", "1001"), ("extension", "2000")])
            .expect("defaults are valid");
        assert_eq!(
            t.recognise("**1001"),
            Some(FeatureCall {
                action: FeatureAction::DirectedPickup,
                arg: "1001".into()
            })
        );
        assert_eq!(
            t.recognise("*8").map(|f| f.action),
            Some(FeatureAction::GroupPickup)
        );
        let ic = t.recognise("*801002").expect("intercom");
        assert_eq!(
            (ic.action, ic.arg.as_str()),
            (FeatureAction::Intercom, "1002")
        );
        let dn = t.recognise("*282").expect("day/night");
        assert_eq!((dn.action, dn.arg.as_str()), (FeatureAction::DayNight, "2"));
        assert_eq!(
            t.recognise("*78").map(|f| f.action),
            Some(FeatureAction::DndToggle)
        );
        assert_eq!(t.recognise("*1"), None, "in-call code is not dialled");
        assert_eq!(t.recognise("1001"), None);
        assert_eq!(t.recognise("*781"), None, "no argument after *78");
        // Keys round-trip.
        for d in DEFS {
            assert_eq!(d.key.parse::<FeatureAction>(), Ok(d.action));
        }
    }

    #[test]
    fn conflicts_are_refused_with_the_reason() {
        let t = FeatureTable::default();
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            t.with(FeatureAction::DndToggle, Some("*97"), none),
            Err(FeatureError::Duplicate {
                code: "*97".into(),
                other: FeatureAction::VmOwnBox
            })
        );
        // *2 with an argument would swallow *28.
        let e = t
            .with(FeatureAction::DirectedPickup, Some("*2"), none)
            .expect_err("prefix");
        assert!(
            matches!(e, FeatureError::Prefix { ref prefix, .. } if prefix == "*2"),
            "{e}"
        );
        // A code that starts with a prefix code.
        let e = t
            .with(FeatureAction::DndOff, Some("**5"), none)
            .expect_err("prefix");
        assert!(e.to_string().contains("directed_pickup"), "{e}");
        // Equal to an extension, or an extension shadowed by a prefix code.
        let e = t
            .with(FeatureAction::DndOff, Some("*500"), [("extension", "*500")])
            .expect_err("number");
        assert_eq!(
            e.to_string(),
            "feature code \"*500\" (dnd_off) collides with extension \"*500\""
        );
        assert!(
            t.with(
                FeatureAction::DirectedPickup,
                Some("#9"),
                [("DID", "#9123")]
            )
            .is_err()
        );
        assert_eq!(
            t.with(FeatureAction::DndOff, Some("79"), none),
            Err(FeatureError::BadCode("79".into()))
        );
        assert!(
            t.with(FeatureAction::DndOff, Some("*12345678901"), none)
                .is_err()
        );
        // A good change, then back to the default clears it; switching off frees the code.
        let t2 = t
            .with(FeatureAction::DndToggle, Some("*55"), none)
            .expect("free code");
        assert_eq!(t2.code(FeatureAction::DndToggle), Some("*55"));
        assert_eq!(t2.recognise("*78"), None);
        let t3 = t2
            .with(FeatureAction::DndToggle, Some("*78"), none)
            .expect("default");
        assert!(t3.overrides.is_empty());
        let off = t.with(FeatureAction::VmOwnBox, None, none).expect("off");
        assert_eq!(off.recognise("*97"), None);
        off.with(FeatureAction::DndToggle, Some("*97"), none)
            .expect("freed code can be reused");
        // The in-call code does not conflict with dialled codes.
        t.with(FeatureAction::RecordToggle, Some("*8"), none)
            .expect("in-call codes are separate");
    }
}

/// The per-tenant configuration of feature codes, time conditions and pickup groups, as call
/// control sees it (part of [`crate::Snapshot`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodesConfig {
    /// Feature code tables by tenant (absent: the defaults).
    pub tables: std::collections::HashMap<i64, FeatureTable>,
    /// Time conditions by (tenant, name).
    pub timeconds: std::collections::HashMap<(i64, String), crate::timecond::TimeCond>,
    /// Holiday calendar by tenant (absent: none).
    pub calendars: std::collections::HashMap<i64, crate::timecond::Calendar>,
    /// Time zone by tenant (absent: UTC).
    pub timezones: std::collections::HashMap<i64, chrono_tz::Tz>,
    /// Pickup groups by (tenant, extension).
    pub pickup: std::collections::HashMap<(i64, String), Vec<String>>,
    /// Internal numbers of time conditions by (tenant, number) -> name.
    pub numbers: std::collections::HashMap<(i64, String), String>,
    /// Park lots by tenant ([`crate::park`]).
    pub park: crate::park::ParkLots,
    /// Seconds added to the clock time conditions see (tests only:
    /// `DENWA_TEST_TIMECOND_AT`; 0 in production).
    pub clock_offset_s: i64,
    /// Recording policies and settings ([`crate::rec_ctl`]).
    pub recording: crate::rec_ctl::RecConfig,
}

impl CodesConfig {
    /// The time time conditions see at `now` (shifted by the test offset).
    pub fn clock(&self, now: std::time::SystemTime) -> std::time::SystemTime {
        let d = std::time::Duration::from_secs(self.clock_offset_s.unsigned_abs());
        if self.clock_offset_s >= 0 {
            now + d
        } else {
            now.checked_sub(d).unwrap_or(now)
        }
    }

    /// A tenant's feature code table.
    pub fn table(&self, tenant: i64) -> std::borrow::Cow<'_, FeatureTable> {
        match self.tables.get(&tenant) {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => std::borrow::Cow::Owned(FeatureTable::default()),
        }
    }

    /// A tenant's time zone.
    pub fn timezone(&self, tenant: i64) -> chrono_tz::Tz {
        self.timezones
            .get(&tenant)
            .copied()
            .unwrap_or(chrono_tz::Tz::UTC)
    }

    /// The time condition of a tenant with the day/night index `index`.
    pub fn timecond_by_index(&self, tenant: i64, index: u8) -> Option<&crate::timecond::TimeCond> {
        self.timeconds
            .iter()
            .find(|((t, _), c)| *t == tenant && c.index == index && index != 0)
            .map(|(_, c)| c)
    }

    /// True when extensions `a` and `b` share a pickup group.
    pub fn share_pickup_group(&self, tenant: i64, a: &str, b: &str) -> bool {
        let (Some(ga), Some(gb)) = (
            self.pickup.get(&(tenant, a.to_string())),
            self.pickup.get(&(tenant, b.to_string())),
        ) else {
            return false;
        };
        ga.iter().any(|g| gb.contains(g))
    }
}

/// The dialplan's feature-code step: a dialled feature code becomes a
/// [`crate::dialplan::Decision::Feature`].
pub fn decide(
    tenant: i64,
    digits: &str,
    snap: &crate::config::Snapshot,
) -> Option<crate::dialplan::Decision> {
    let call = snap.codes.table(tenant).recognise(digits)?;
    let reason = format!(
        "feature code {} ({})",
        &digits[..digits.len() - call.arg.len()],
        call.action
    );
    // The voicemail codes lead to a destination like any number does (so `denwa route test`
    // shows where they go and a transfer or IVR can name them).
    let destination = match call.action {
        FeatureAction::VmOwnBox => Some(crate::dialplan::Destination::VmOwn),
        FeatureAction::VmMain => Some(crate::dialplan::Destination::VmMain),
        FeatureAction::VmDirect => {
            if !snap.extensions.contains_key(&(tenant, call.arg.clone())) {
                return Some(crate::dialplan::Decision::Reject {
                    status: 404,
                    reason: format!("{reason}: no voicemail box {:?}", call.arg),
                });
            }
            Some(crate::dialplan::Destination::Vm(call.arg.clone()))
        }
        _ => None,
    };
    Some(match destination {
        Some(destination) => crate::dialplan::Decision::Route {
            destination,
            reason,
        },
        None => crate::dialplan::Decision::Feature {
            feature: call,
            reason,
        },
    })
}
