//! Carrying out a dialled feature code ([`crate::features`]): the engine answers the phone,
//! acts, says what it did and hangs up: day/night toggles, pickups, forwarding and DND (stored
//! through the database; the configuration reload that follows brings them into effect). The
//! voicemail codes are destinations ([`crate::features::decide`]); a code used without what it
//! needs (e.g. a forwarding code dialled from a trunk) answers "that feature code is not valid"
//! (the `feature-invalid` prompt). Recording a prompt by phone has its own module
//! ([`crate::prompt_rec`]), park ([`crate::park`]) and intercom ([`crate::page`]) theirs.

use tracing::info;

use crate::b2bua::{Entry, Origin};
use crate::config::ExtEntry;
use crate::db::DbOp;
use crate::features::{FeatureAction, FeatureCall};
use crate::hunt::ForwardKind;
use crate::media::PlayItem;
use crate::timecond::Mode;
use crate::{Engine, Now, Pending};

/// Prompt for a feature this node does not carry out (or a bad argument).
pub const NOT_AVAILABLE_PROMPT: &str = "feature-invalid";

impl Engine {
    /// A call that dialled a feature code.
    pub(crate) fn feature_call(
        &mut self,
        entry: Entry,
        o: Origin,
        feature: FeatureCall,
        caller: Option<ExtEntry>,
        now: Now,
    ) {
        info!(caller = %o.caller, feature = %feature.action, arg = %feature.arg, "feature code");
        let prompt = match (feature.action, caller) {
            (FeatureAction::DayNight, Some(_)) => {
                self.toggle_day_night(o.tenant, &feature.arg, now)
            }
            (FeatureAction::GroupPickup, Some(picker)) => {
                return self.pickup(entry, o, &picker, None, now);
            }
            (FeatureAction::DirectedPickup, Some(picker)) => {
                return self.pickup(entry, o, &picker, Some(&feature.arg), now);
            }
            (FeatureAction::FwdAlwaysOn, Some(ext)) => {
                self.feature_forward(o.tenant, &ext, ForwardKind::Always, Some(&feature.arg))
            }
            (FeatureAction::FwdAlwaysOff, Some(ext)) => {
                self.feature_forward(o.tenant, &ext, ForwardKind::Always, None)
            }
            (FeatureAction::FwdBusyOn, Some(ext)) => {
                self.feature_forward(o.tenant, &ext, ForwardKind::Busy, Some(&feature.arg))
            }
            (FeatureAction::FwdBusyOff, Some(ext)) => {
                self.feature_forward(o.tenant, &ext, ForwardKind::Busy, None)
            }
            (FeatureAction::FwdNoAnswerOn, Some(ext)) => {
                self.feature_forward(o.tenant, &ext, ForwardKind::NoAnswer, Some(&feature.arg))
            }
            (FeatureAction::FwdNoAnswerOff, Some(ext)) => {
                self.feature_forward(o.tenant, &ext, ForwardKind::NoAnswer, None)
            }
            (FeatureAction::DndToggle, Some(ext)) => self.feature_dnd(o.tenant, &ext, None),
            (FeatureAction::DndOff, Some(ext)) => self.feature_dnd(o.tenant, &ext, Some(false)),
            (FeatureAction::Park, caller) => return self.park_dialled(entry, o, caller, now),
            (FeatureAction::Intercom, Some(caller)) => {
                return self.intercom(entry, o, &caller, &feature.arg, now);
            }
            (FeatureAction::RecordPrompt, caller) => {
                return self.record_prompt_call(entry, o, &feature.arg, caller, now);
            }
            _ => NOT_AVAILABLE_PROMPT,
        };
        self.start_announce(entry, o, vec![prompt.to_string()], now);
    }

    /// `*72`+number / `*73` and the busy / no-answer pairs: checks the new forward like the
    /// panel does and asks the database to store it; the reload that follows the write puts it
    /// into the snapshot. Returns the prompt to play.
    fn feature_forward(
        &mut self,
        tenant: i64,
        ext: &ExtEntry,
        kind: ForwardKind,
        target: Option<&str>,
    ) -> &'static str {
        let target = target.map(str::trim);
        if target == Some("") {
            return NOT_AVAILABLE_PROMPT;
        }
        let mut f = self
            .snap
            .apps
            .hunt
            .forwarding
            .get(&ext.id)
            .cloned()
            .unwrap_or_default();
        *f.get_mut(kind) = target.unwrap_or("").to_string();
        if let Err(e) = f.validate() {
            info!(tenant, ext = %ext.number, error = %e, "forward by feature code refused");
            return NOT_AVAILABLE_PROMPT;
        }
        info!(tenant, ext = %ext.number, ?kind, to = ?target, "forward set by feature code");
        self.db(
            DbOp::Forward {
                tenant,
                number: ext.number.clone(),
                kind,
                target: target.map(str::to_string),
            },
            Pending::Background("forward by feature code"),
        );
        if target.is_some() {
            "fwd-on"
        } else {
            "fwd-off"
        }
    }

    /// `*78` (toggle) / `*79` (off). Returns the prompt to play.
    fn feature_dnd(&mut self, tenant: i64, ext: &ExtEntry, on: Option<bool>) -> &'static str {
        let now_on = self
            .snap
            .apps
            .hunt
            .forwarding
            .get(&ext.id)
            .is_some_and(|f| f.dnd);
        let on = on.unwrap_or(!now_on);
        info!(tenant, ext = %ext.number, on, "do not disturb set by feature code");
        self.db(
            DbOp::Dnd {
                tenant,
                number: ext.number.clone(),
                on,
            },
            Pending::Background("do not disturb by feature code"),
        );
        if on { "dnd-on" } else { "dnd-off" }
    }

    /// `*28` + index: flips the time condition to the opposite of what it is now (forced day
    /// or forced night) by asking the database to store it; the configuration reload that
    /// follows the write puts it into effect (memory changes only after the write). Returns
    /// the prompt to play.
    fn toggle_day_night(&mut self, tenant: i64, arg: &str, now: Now) -> &'static str {
        let Ok(index) = arg.parse::<u8>() else {
            return NOT_AVAILABLE_PROMPT;
        };
        let codes = &self.snap.codes;
        let Some(tc) = codes.timecond_by_index(tenant, index) else {
            return NOT_AVAILABLE_PROMPT;
        };
        let cal = codes.calendars.get(&tenant).cloned().unwrap_or_default();
        let state = tc.state(codes.clock(now.wall), codes.timezone(tenant), &cal);
        let mode = if state.open { Mode::Night } else { Mode::Day };
        let name = tc.name.clone();
        info!(tenant, timecond = %name, %mode, "day/night toggled by feature code");
        self.db(
            DbOp::TimecondMode { tenant, name, mode },
            Pending::Background("time condition mode"),
        );
        match mode {
            Mode::Night => "daynight-night",
            _ => "daynight-day",
        }
    }

    /// The announcement call's endpoint is open and answered: play, then hang up.
    pub(crate) fn announce_start(&mut self, id: u64, _now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let prompts = anchor.announcement();
        let lang = anchor.lang().to_string();
        let items = prompts
            .into_iter()
            .map(|id| PlayItem::Prompt {
                id,
                tenant,
                lang: lang.clone(),
            })
            .collect();
        anchor.hangup_after_play();
        let cmd = anchor.play_cmd(items, false);
        self.media(cmd);
    }
}
