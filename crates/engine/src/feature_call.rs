//! Carrying out a dialled feature code ([`crate::features`]): the engine answers the phone,
//! acts, says what it did and hangs up. Day/night toggles are served here; the codes other
//! modules own answer "that feature code is not valid" (the `feature-invalid` prompt) until
//! they are wired to their module.

use tracing::info;

use crate::b2bua::{Entry, Origin};
use crate::config::ExtEntry;
use crate::db::DbOp;
use crate::features::{FeatureAction, FeatureCall};
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
            _ => NOT_AVAILABLE_PROMPT,
        };
        self.start_announce(entry, o, vec![prompt.to_string()], now);
    }

    /// `*28` + index: flips the time condition to the opposite of what it is now (forced day
    /// or forced night), in memory at once and in the database. Returns the prompt to play.
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
        if let Some(t) = self.snap.codes.timeconds.get_mut(&(tenant, name.clone())) {
            t.mode = mode;
        }
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
