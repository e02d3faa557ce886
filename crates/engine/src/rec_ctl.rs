//! Recording control in call control: the recording decision for an answered call (relayed or
//! anchored on media endpoints), the on-demand toggle (`record_toggle`, default `*1`) from every
//! DTMF form — RFC 4733 seen by the relay's tap, SIP INFO, and digits the endpoints detect
//! (RFC 4733 or in-band) — the confirmation beep, and the `recording_start` /
//! `recording_stop` call events.
//!
//! The policies and per-tenant recording settings come from the configuration snapshot
//! ([`RecConfig`], in [`crate::features::CodesConfig`]); the driver only carries out
//! [`MediaCommand::RecordCall`] / [`MediaCommand::StopRecordCall`] (tap, recorder, rows).

use std::collections::HashMap;
use std::time::SystemTime;

use tracing::info;

use crate::b2bua::Call;
use crate::media::{EndpointId, MediaCommand, PlayItem, SessionId, Side, ToneKind};
use crate::recording::{
    CallParties, RecDecision, RecObject, RecPolicy, ToggleDetector, decide, file_path,
};
use crate::transfer::TransferEvent;
use crate::{Engine, Now};

/// Call event kind of a recording that started.
pub const EV_START: &str = "recording_start";
/// Call event kind of a recording that stopped.
pub const EV_STOP: &str = "recording_stop";
/// `by` of events the policy (not a phone) caused.
pub const BY_POLICY: &str = "policy";

/// The file format of recordings (per-tenant setting `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecFormat {
    /// 16-bit PCM WAV.
    #[default]
    Wav,
    /// Ogg Opus.
    Opus,
}

impl RecFormat {
    /// The stored spelling (also the file extension's source).
    pub fn as_str(self) -> &'static str {
        match self {
            RecFormat::Wav => "wav",
            RecFormat::Opus => "opus",
        }
    }
}

/// One tenant's recording settings as call control needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecTenant {
    /// File format.
    pub format: RecFormat,
    /// One party per channel (relayed calls, WAV only).
    pub stereo: bool,
}

/// When both parties hear a beep (setting `recording.beep`, per tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BeepMode {
    /// Only when a phone starts or stops a recording with the toggle code (the default).
    #[default]
    Toggle,
    /// Also when an `always` recording starts at the answer (notice to both parties).
    All,
    /// Never.
    Off,
}

/// The choices of `recording.beep`.
pub const BEEP_CHOICES: &[&str] = &["toggle", "all", "off"];

impl BeepMode {
    /// Parses a stored value (`None`: not one of [`BEEP_CHOICES`]).
    pub fn parse(s: &str) -> Option<BeepMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "toggle" => Some(BeepMode::Toggle),
            "all" => Some(BeepMode::All),
            "off" => Some(BeepMode::Off),
            _ => None,
        }
    }

    /// A tenant's stored JSON value.
    pub fn from_json(v: &serde_json::Value) -> Option<BeepMode> {
        BeepMode::parse(v.as_str()?)
    }
}

/// Recording policies and settings of every tenant (part of the configuration snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecConfig {
    /// Stored (non-`never`) policies by (tenant, kind, name).
    pub policies: HashMap<(i64, RecObject, String), RecPolicy>,
    /// Settings by tenant (absent: defaults).
    pub tenants: HashMap<i64, RecTenant>,
}

impl RecConfig {
    /// The decision for a call with `parties`.
    pub fn decide(&self, parties: &CallParties) -> RecDecision {
        decide(
            parties
                .objects()
                .into_iter()
                .filter_map(|(k, n)| self.policies.get(&(parties.tenant, k, n)).copied()),
        )
    }
}

/// What is recorded: a relay session (through its tap), or a call anchored on endpoints
/// (the caller's endpoint records what its phone sends plus what the bridge sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecTarget {
    /// A relayed call's session.
    Session(SessionId),
    /// An anchored call: the caller's and the callee's endpoints.
    Endpoints {
        /// Records (both parties).
        caller: EndpointId,
        /// Hears the beep.
        callee: EndpointId,
    },
}

/// A call's recording state.
#[derive(Debug)]
pub struct RecCtl {
    /// The decision taken at the answer.
    pub decision: RecDecision,
    /// What to record.
    pub target: RecTarget,
    toggle: ToggleDetector,
    /// A recording runs.
    pub running: bool,
    /// Recordings started so far (names the files `-2`, `-3` ...).
    pub part: u32,
    /// The file of the current (or last) recording.
    pub path: String,
    /// Events not yet handed to the call's record.
    events: Vec<TransferEvent>,
}

impl RecCtl {
    /// The call events recorded so far (start/stop), oldest first.
    pub fn events(&self) -> &[TransferEvent] {
        &self.events
    }
}

impl Engine {
    /// A relayed call was answered on `session`: apply the recording decision.
    pub(crate) fn rec_relayed_answered(&mut self, id: u64, session: SessionId, now: Now) {
        self.rec_answered(id, RecTarget::Session(session), now);
    }

    /// An anchored call's callee answered and was joined to the caller: apply the recording
    /// decision.
    pub(crate) fn rec_anchored_answered(
        &mut self,
        id: u64,
        caller: EndpointId,
        callee: EndpointId,
        now: Now,
    ) {
        self.rec_answered(id, RecTarget::Endpoints { caller, callee }, now);
    }

    fn rec_answered(&mut self, id: u64, target: RecTarget, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let parties = CallParties::of_call(call);
        let rec = &self.snap.codes.recording;
        let decision = rec.decide(&parties);
        if decision == RecDecision::Never {
            return;
        }
        let table = self.snap.codes.table(parties.tenant);
        let toggle = ToggleDetector::new(table.code(crate::features::FeatureAction::RecordToggle));
        let ctl = RecCtl {
            decision,
            target,
            toggle,
            running: false,
            part: 0,
            path: String::new(),
            events: Vec::new(),
        };
        let beep = self.rec_beep(parties.tenant) == BeepMode::All;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        call.rec = Some(Box::new(ctl));
        info!(call = id, decision = ?decision, "recording policy applied");
        if let (RecDecision::OnDemand, RecTarget::Session(session)) = (decision, target) {
            // A phone may send the code as tones in its audio: the tap's copy is watched.
            self.media(MediaCommand::WatchInband { session });
        }
        if decision == RecDecision::Always {
            self.rec_start(id, BY_POLICY, beep, now);
        }
    }

    /// A digit from a relay session's side (RFC 4733 seen by its tap).
    pub(crate) fn rec_relay_digit(&mut self, session: SessionId, side: Side, d: char, now: Now) {
        if let Some(id) = self.b2bua.bridged_call_of(session) {
            self.rec_digit(id, side, d, now);
        }
    }

    /// A digit an endpoint of call `id` detected (RFC 4733 or in-band).
    pub(crate) fn rec_endpoint_digit(&mut self, id: u64, ep: EndpointId, d: char, now: Now) {
        let side = match self.b2bua.get(id).and_then(|c| c.rec.as_deref()) {
            Some(RecCtl {
                target: RecTarget::Endpoints { caller, callee },
                ..
            }) => {
                if *caller == ep {
                    Side::A
                } else if *callee == ep {
                    Side::B
                } else {
                    return;
                }
            }
            _ => return,
        };
        self.rec_digit(id, side, d, now);
    }

    /// A SIP INFO from the leg on `side` of call `id` (digits in `application/dtmf-relay`
    /// or `application/dtmf`); other INFOs are ignored.
    pub(crate) fn rec_info(&mut self, id: u64, side: Side, req: &sip::Request, now: Now) {
        if let Some(d) = crate::anchor::info_digit(req) {
            self.rec_digit(id, side, d, now);
        }
    }

    /// One digit from a party of call `id`: toggles an on-demand recording when it completes
    /// the tenant's code.
    pub(crate) fn rec_digit(&mut self, id: u64, side: Side, d: char, now: Now) {
        let Some(ctl) = self.b2bua.get_mut(id).and_then(|c| c.rec.as_deref_mut()) else {
            return;
        };
        // `always` recordings cannot be stopped from a phone.
        if ctl.decision != RecDecision::OnDemand || !ctl.toggle.digit(side, d, now.mono) {
            return;
        }
        let running = ctl.running;
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let by = party_number(call, side);
        let beep = self.rec_beep(call.tenant_id) != BeepMode::Off;
        if running {
            self.rec_stop(id, &by, beep, now);
        } else {
            self.rec_start(id, &by, beep, now);
        }
    }

    fn rec_start(&mut self, id: u64, by: &str, beep: bool, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let call_id = call.legs[crate::b2bua::A_LEG].call_id.clone();
        let settings = self
            .snap
            .codes
            .recording
            .tenants
            .get(&tenant)
            .copied()
            .unwrap_or_default();
        let Some(ctl) = call.rec.as_deref_mut() else {
            return;
        };
        ctl.part += 1;
        ctl.running = true;
        let path = file_path(
            tenant,
            utc_date(now.wall),
            &call_id,
            ctl.part,
            settings.format.as_str(),
        );
        ctl.path = path.clone();
        ctl.events.push(TransferEvent {
            at: now.wall,
            kind: EV_START,
            by: by.to_string(),
            party: String::new(),
            to: path.clone(),
            status: 0,
        });
        let target = ctl.target;
        info!(call = id, %path, by, "recording started");
        self.media(MediaCommand::RecordCall {
            target,
            tenant,
            call_id,
            path,
            format: settings.format,
            stereo: settings.stereo,
            beep,
        });
        if beep && let RecTarget::Endpoints { callee, .. } = target {
            // The caller's endpoint beeps before it records (`RecordCall`); the callee's too.
            self.media(beep_cmd(callee));
        }
    }

    fn rec_stop(&mut self, id: u64, by: &str, beep: bool, now: Now) {
        let Some(ctl) = self.b2bua.get_mut(id).and_then(|c| c.rec.as_deref_mut()) else {
            return;
        };
        ctl.running = false;
        ctl.events.push(TransferEvent {
            at: now.wall,
            kind: EV_STOP,
            by: by.to_string(),
            party: String::new(),
            to: ctl.path.clone(),
            status: 0,
        });
        let target = ctl.target;
        info!(call = id, path = %ctl.path, by, "recording stopped");
        self.media(MediaCommand::StopRecordCall { target, beep });
        if beep && let RecTarget::Endpoints { caller, callee } = target {
            self.media(beep_cmd(caller));
            self.media(beep_cmd(callee));
        }
    }

    /// The call ends: a running recording's stop goes into the call's events (the media
    /// side stops it with the session or endpoint), and every recording event joins the
    /// call's events.
    pub(crate) fn rec_call_ended(&mut self, call: &mut Call, now: Now) {
        let Some(mut ctl) = call.rec.take() else {
            return;
        };
        if ctl.running {
            ctl.events.push(TransferEvent {
                at: now.wall,
                kind: EV_STOP,
                by: "hangup".into(),
                party: String::new(),
                to: ctl.path.clone(),
                status: 0,
            });
        }
        if !ctl.events.is_empty() {
            call.xfer
                .get_or_insert_with(Box::default)
                .events
                .append(&mut ctl.events);
        }
    }

    /// A tenant's `recording.beep`.
    pub(crate) fn rec_beep(&self, tenant: i64) -> BeepMode {
        let s = &self.snap.settings;
        s.recording_beep_tenants
            .get(&tenant)
            .copied()
            .unwrap_or(s.recording_beep)
    }
}

/// A short beep on an endpoint (mixed over what the bridge sends it).
fn beep_cmd(endpoint: EndpointId) -> MediaCommand {
    MediaCommand::Play {
        endpoint,
        id: 0,
        items: vec![PlayItem::Tone(ToneKind::Beep)],
        stop_on_dtmf: false,
        repeat: false,
    }
}

/// The number of the party on `side` (who keyed the code), as the call record names it.
fn party_number(call: &Call, side: Side) -> String {
    match side {
        Side::A => call.caller.clone(),
        Side::B => call.callee.clone(),
    }
}

/// The UTC date of `t`.
fn utc_date(t: SystemTime) -> (i32, u32, u32) {
    use chrono::Datelike;
    let d = chrono::DateTime::<chrono::Utc>::from(t);
    (d.year(), d.month(), d.day())
}

impl Engine {
    /// An INFO from leg `from` of relayed call `id`, about to be forwarded.
    pub(crate) fn rec_info_from(
        &mut self,
        id: u64,
        from: crate::b2bua::LegIdx,
        req: &sip::Request,
        now: Now,
    ) {
        let Some(side) = self
            .b2bua
            .get(id)
            .and_then(|c| c.legs.get(from))
            .map(|l| l.side)
        else {
            return;
        };
        self.rec_info(id, side, req, now);
    }
}

impl Engine {
    /// A reloaded snapshot part holds `rec` and `settings`: says so when what recording
    /// decides with changed (the next answered call uses it).
    pub(crate) fn rec_config_loaded(&self, rec: &RecConfig, settings: &crate::config::Settings) {
        let old = &self.snap.settings;
        if *rec != self.snap.codes.recording
            || settings.recording_beep != old.recording_beep
            || settings.recording_beep_tenants != old.recording_beep_tenants
        {
            info!(
                policies = rec.policies.len(),
                tenants = rec.tenants.len(),
                beep = ?settings.recording_beep,
                "recording policies loaded"
            );
        }
    }
}
