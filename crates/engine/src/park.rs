//! Call park (issue 15 §3): a caller is held in a numbered slot of the tenant's park lot,
//! hearing music on hold, until a phone of the tenant dials the slot number (retrieval), or the
//! lot's timeout rings the parker back, and when the parker does not answer the lot's fallback
//! destination takes the call (default: a prompt, then hang up).
//!
//! How a call gets parked here: the caller who dials the park code (`*70`, the feature table's
//! `park` row) is answered on a media endpoint of ours ([`crate::anchor`]), hears the slot
//! ("Your call has been parked on slot seven hundred one") and then the lot's hold music.
//! Retrieval is a second anchored call whose endpoint joins the parked call's endpoint in one
//! bridge; either side hanging up ends both.
//!
//! State: the slot table ([`ParkState`]) is bounded by the lot's size (at most
//! [`MAX_SLOTS`] slots per tenant). A slot is reserved while its database row is written
//! ([`ParkOp::Save`]); the caller hears the slot only once the row is stored, and a failed
//! write frees the reservation and says "no slot is free". A freed slot's row is deleted
//! ([`ParkOp::Free`]) and the slot leaves memory when the delete is answered.
//!
//! For the BLF module: [`Engine::park_slot`] answers "is slot N occupied, and by whom".

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use crate::anchor::App;
use crate::b2bua::{A_LEG, Entry, Origin};
use crate::config::{ExtEntry, Snapshot};
use crate::db::DbOp;
use crate::dialplan::{Decision, Destination};
use crate::media::{MediaCommand, PlayItem};
use crate::transfer::TransferEvent;
use crate::{Engine, Now, Pending};

/// Slots a lot may have at most (the slot table is bounded by it).
pub const MAX_SLOTS: u32 = 100;

/// A tenant's park lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkLot {
    /// First slot number.
    pub first: u32,
    /// Last slot number (inclusive).
    pub last: u32,
    /// How long a call stays parked before the parker is rung back.
    pub timeout: Duration,
    /// Music-on-hold class parked callers hear.
    pub moh_class: String,
    /// Where the call goes when the parker does not take it back (`hangup`: a prompt, then
    /// hang up; otherwise a destination such as `ext:1000`, `vm:1000`, `ivr:main`).
    pub fallback: String,
}

impl Default for ParkLot {
    fn default() -> ParkLot {
        ParkLot {
            first: 701,
            last: 720,
            timeout: Duration::from_secs(120),
            moh_class: "default".into(),
            fallback: "hangup".into(),
        }
    }
}

impl ParkLot {
    /// Checks the lot's settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.first == 0 || self.last < self.first {
            return Err(format!(
                "slot range {}-{} is empty: the last slot must not be below the first",
                self.first, self.last
            ));
        }
        if self.last - self.first + 1 > MAX_SLOTS {
            return Err(format!("a lot has at most {MAX_SLOTS} slots"));
        }
        if self.timeout < Duration::from_secs(10) || self.timeout > Duration::from_secs(3600) {
            return Err("the park timeout must be between 10 and 3600 seconds".into());
        }
        if self.moh_class.trim().is_empty() {
            return Err("the music-on-hold class must not be empty".into());
        }
        self.fallback
            .parse::<Destination>()
            .map_err(|e| format!("fallback: {e}"))?;
        Ok(())
    }

    /// The slot `digits` names, when it is one of this lot's.
    pub fn slot_of(&self, digits: &str) -> Option<u32> {
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let n: u32 = digits.parse().ok()?;
        (self.first..=self.last).contains(&n).then_some(n)
    }
}

/// Park lots by tenant (absent: the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParkLots {
    /// Stored lots.
    pub lots: HashMap<i64, ParkLot>,
}

impl ParkLots {
    /// The lot of `tenant`.
    pub fn lot(&self, tenant: i64) -> ParkLot {
        self.lots.get(&tenant).cloned().unwrap_or_default()
    }
}

/// The dialplan's answer for a slot number of the tenant's lot (retrieval), if `digits` is one.
pub(crate) fn route_slot(tenant: i64, digits: &str, snap: &Snapshot) -> Option<Decision> {
    let lot = snap.codes.park.lots.get(&tenant);
    let slot = match lot {
        Some(l) => l.slot_of(digits),
        None => ParkLot::default().slot_of(digits),
    }?;
    Some(Decision::Route {
        destination: Destination::ParkSlot(slot.to_string()),
        reason: format!("park slot {slot}"),
    })
}

/// Database work of the park lot; answered with [`crate::DbAnswer::Done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParkOp {
    /// Store (insert or replace) a parked call's row.
    Save(Box<ParkRecord>),
    /// Delete a slot's row.
    Free {
        /// Tenant.
        tenant: i64,
        /// Slot number.
        slot: u32,
    },
}

/// A parked call as stored (table `park_calls`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParkRecord {
    /// Tenant.
    pub tenant: i64,
    /// Slot number.
    pub slot: u32,
    /// The parked party's number and name (caller ID).
    pub caller: String,
    /// Display name.
    pub caller_name: String,
    /// The extension that parked the call.
    pub parker: String,
    /// When it was parked.
    pub parked_at: SystemTime,
    /// When the parker is rung back.
    pub timeout_at: SystemTime,
    /// The parked leg's SIP Call-ID.
    pub call_id: String,
    /// The parked leg's dialog, to re-INVITE it after a restart (`None`: it cannot be).
    #[serde(default)]
    pub leg: Option<LegRecord>,
}

/// What re-INVITEing a parked leg after a restart needs: the caller's INVITE as received
/// (Call-ID, From tag, CSeq, Contact = remote target, Record-Route = route set, last SDP
/// offer), our tag, where the phone is and how we reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegRecord {
    /// The caller's INVITE, as text.
    pub invite: String,
    /// Our tag (the To tag of our 200).
    pub our_tag: String,
    /// The phone's address (where in-dialog requests go).
    pub peer: std::net::SocketAddr,
    /// Our address the call arrived on.
    pub local: std::net::SocketAddr,
    /// `UDP`, `TCP`, `TLS`.
    pub transport: String,
    /// The phone's last CSeq in the dialog.
    pub remote_seq: Option<u32>,
    /// Our last CSeq in the dialog.
    pub local_seq: Option<u32>,
}

fn transport_of(s: &str) -> Option<sip::transaction::Transport> {
    use sip::transaction::Transport;
    Some(match s {
        "UDP" => Transport::Udp,
        "TCP" => Transport::Tcp,
        "TLS" => Transport::Tls,
        _ => return None,
    })
}

/// One parked call, as the panel and API list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParkedCall {
    /// Slot number.
    pub slot: u32,
    /// Caller number.
    pub caller: String,
    /// Caller display name.
    pub caller_name: String,
    /// Who parked it.
    pub parked_by: String,
    /// Since when (seconds since the Unix epoch).
    pub since: u64,
    /// `parked`, `ringing-back` (the parker is being rung), `retrieved`.
    pub state: &'static str,
}

/// What a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reserved; its row is being written.
    Saving,
    /// Parked, music playing.
    Parked,
    /// The timeout passed: the parker is rung.
    Callback,
    /// Taken by the retrieving call (its id).
    Retrieved(u64),
    /// The call left the slot; its row is being deleted.
    Leaving,
    /// Reloaded after a restart: its leg is being re-INVITEd onto a new endpoint.
    Resuming,
}

#[derive(Debug, Clone)]
struct Slot {
    call: u64,
    caller: String,
    caller_name: String,
    parker: String,
    call_id: String,
    since: SystemTime,
    timeout: Duration,
    stage: Stage,
    events: Vec<TransferEvent>,
}

/// The slot table of every tenant: (tenant, slot) -> slot.
#[derive(Debug, Default)]
pub(crate) struct ParkState {
    slots: BTreeMap<(i64, u32), Slot>,
    /// Retrieving calls -> the parked call they took.
    retrievers: HashMap<u64, u64>,
    /// Reloaded parked calls whose endpoint is opening: endpoint -> (call id, record).
    resuming: HashMap<crate::media::EndpointId, (u64, ParkRecord)>,
}

fn lang_of(s: &str) -> apps::prompt::Lang {
    s.parse().unwrap_or(apps::prompt::Lang::En)
}

impl ParkState {
    fn slot_of_call(&self, call: u64) -> Option<(i64, u32)> {
        self.slots
            .iter()
            .find(|(_, s)| s.call == call)
            .map(|(k, _)| *k)
    }
}

impl Engine {
    /// Is `slot` of `tenant` occupied, and by which caller (number, name)? For BLF keys.
    pub fn park_slot(&self, tenant: i64, slot: u32) -> (bool, Option<(String, String)>) {
        match self.park.slots.get(&(tenant, slot)) {
            Some(s) if s.stage != Stage::Saving && s.stage != Stage::Leaving => {
                (true, Some((s.caller.clone(), s.caller_name.clone())))
            }
            _ => (false, None),
        }
    }

    /// The parked calls of `tenant`, by slot (panel, API, CLI).
    pub fn parked_calls(&self, tenant: i64) -> Vec<ParkedCall> {
        self.park
            .slots
            .range((tenant, 0)..=(tenant, u32::MAX))
            .filter_map(|((_, n), s)| {
                let state = match s.stage {
                    Stage::Parked | Stage::Resuming => "parked",
                    Stage::Callback => "ringing-back",
                    Stage::Retrieved(_) => "retrieved",
                    Stage::Saving | Stage::Leaving => return None,
                };
                Some(ParkedCall {
                    slot: *n,
                    caller: s.caller.clone(),
                    caller_name: s.caller_name.clone(),
                    parked_by: s.parker.clone(),
                    since: s
                        .since
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    state,
                })
            })
            .collect()
    }

    /// The caller dialled the park code: reserve the lowest free slot and answer the call on a
    /// media endpoint (the slot is announced once its row is stored).
    pub(crate) fn park_dialled(
        &mut self,
        entry: Entry,
        o: Origin,
        parker: Option<ExtEntry>,
        now: Now,
    ) {
        let lot = self.snap.codes.park.lot(o.tenant);
        let Some(parker) = parker else {
            return self.start_announce(entry, o, vec!["feature-invalid".into()], now);
        };
        let free = (lot.first..=lot.last.min(lot.first.saturating_add(MAX_SLOTS - 1)))
            .find(|n| !self.park.slots.contains_key(&(o.tenant, *n)));
        let Some(slot) = free else {
            info!(tenant = o.tenant, caller = %o.caller, "park lot full");
            return self.start_announce(entry, o, vec!["park-no-free-slot".into()], now);
        };
        let (tenant, caller, caller_name, call_id) = (
            o.tenant,
            o.caller.clone(),
            o.caller_name.clone(),
            o.call_id.clone(),
        );
        let app = App::Park;
        let Some(id) = self.start_with_app(entry, o, app, 0, "park", now) else {
            return;
        };
        info!(call = id, tenant, slot, parker = %parker.number, "parking");
        self.park.slots.insert(
            (tenant, slot),
            Slot {
                call: id,
                caller,
                caller_name,
                parker: parker.number.clone(),
                call_id,
                since: now.wall,
                timeout: lot.timeout,
                stage: Stage::Saving,
                events: Vec::new(),
            },
        );
    }

    /// Is a slot of `tenant`'s lot free (a transfer to the park code checks before it
    /// accepts)?
    pub(crate) fn park_has_free_slot(&self, tenant: i64) -> bool {
        let lot = self.snap.codes.park.lot(tenant);
        (lot.first..=lot.last.min(lot.first.saturating_add(MAX_SLOTS - 1)))
            .any(|n| !self.park.slots.contains_key(&(tenant, n)))
    }

    /// Anchored call `id` (a transferee moved onto our endpoint by a blind transfer to the
    /// park code, [`crate::xfer_app`]) parks: the lowest free slot is reserved for it with
    /// `parker` (the transferor) as the parker, and the row is stored as for a caller who
    /// dialled the code; a full lot says so and hangs up.
    pub(crate) fn park_transferred(&mut self, id: u64, parker: &str, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let lot = self.snap.codes.park.lot(tenant);
        let free = (lot.first..=lot.last.min(lot.first.saturating_add(MAX_SLOTS - 1)))
            .find(|n| !self.park.slots.contains_key(&(tenant, *n)));
        let Some(slot) = free else {
            info!(call = id, tenant, "park lot full");
            return self.park_say_and_hang_up(id, vec!["park-no-free-slot".into()], now);
        };
        info!(call = id, tenant, slot, %parker, "parking a transferred call");
        self.park.slots.insert(
            (tenant, slot),
            Slot {
                call: id,
                caller: call.caller.clone(),
                caller_name: call.caller_name.clone(),
                parker: parker.to_string(),
                call_id: call.legs[A_LEG].call_id.clone(),
                since: now.wall,
                timeout: lot.timeout,
                stage: Stage::Saving,
                events: Vec::new(),
            },
        );
        self.park_answered(id, now);
    }

    /// Is call `id` waiting in a slot (stored, music playing)?
    pub(crate) fn park_is_parked(&self, id: u64) -> bool {
        self.park
            .slot_of_call(id)
            .and_then(|k| self.park.slots.get(&k))
            .is_some_and(|s| s.stage == Stage::Parked)
    }

    /// Another party took the parked caller's place in call `id` (attended transfer onto the
    /// parking dialog, [`crate::xfer_app`]): the slot shows it, the event is noted (`by` the
    /// transferor; the parker stays) and the row is stored again with the new leg.
    pub(crate) fn park_replaced(&mut self, id: u64, by: &str, now: Now) {
        let Some(key) = self.park.slot_of_call(id) else {
            return;
        };
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let (caller, caller_name, call_id) = (
            call.caller.clone(),
            call.caller_name.clone(),
            call.legs[A_LEG].call_id.clone(),
        );
        let Some(s) = self.park.slots.get_mut(&key) else {
            return;
        };
        s.events.push(TransferEvent {
            at: now.wall,
            kind: "attended",
            by: by.to_string(),
            party: caller.clone(),
            to: key.1.to_string(),
            status: 200,
        });
        s.caller = caller;
        s.caller_name = caller_name;
        s.call_id = call_id;
        self.park_answered(id, now);
    }

    /// The parked caller is answered: store the slot's row.
    pub(crate) fn park_answered(&mut self, id: u64, now: Now) {
        let Some((tenant, slot)) = self.park.slot_of_call(id) else {
            return self.anchored_hangup(id, "park slot gone", now);
        };
        let Some(s) = self.park.slots.get(&(tenant, slot)) else {
            return;
        };
        let leg = self.b2bua.get(id).and_then(|c| {
            let a = &c.legs[A_LEG];
            let d = a.dialog.as_ref()?;
            let invite = c.anchor.as_deref()?.invite();
            Some(LegRecord {
                invite: String::from_utf8_lossy(&invite.to_bytes()).into_owned(),
                our_tag: a.tag.clone(),
                peer: a.target.destination,
                local: a.local,
                transport: a.target.transport.as_str().to_string(),
                remote_seq: d.remote_seq,
                local_seq: d.local_seq,
            })
        });
        let rec = ParkRecord {
            tenant,
            slot,
            caller: s.caller.clone(),
            caller_name: s.caller_name.clone(),
            parker: s.parker.clone(),
            parked_at: now.wall,
            timeout_at: now.wall + s.timeout,
            call_id: s.call_id.clone(),
            leg,
        };
        self.db(
            DbOp::Park(ParkOp::Save(Box::new(rec))),
            Pending::Park(tenant, slot, true),
        );
    }

    /// A park row was written (`save`) or deleted.
    pub(crate) fn park_db_answer(
        &mut self,
        tenant: i64,
        slot: u32,
        save: bool,
        r: Result<(), String>,
        now: Now,
    ) {
        if !save {
            if let Err(e) = r {
                warn!(tenant, slot, error = %e, "park row not deleted");
            }
            if self
                .park
                .slots
                .get(&(tenant, slot))
                .is_some_and(|s| s.stage == Stage::Leaving)
            {
                self.park.slots.remove(&(tenant, slot));
            }
            return;
        }
        let Some(s) = self.park.slots.get_mut(&(tenant, slot)) else {
            return;
        };
        let id = s.call;
        match (s.stage, &r) {
            (Stage::Saving, _) => {}
            (Stage::Leaving, Ok(())) => {
                // Hung up while the row was written: delete it again.
                self.db(
                    DbOp::Park(ParkOp::Free { tenant, slot }),
                    Pending::Park(tenant, slot, false),
                );
                return;
            }
            (Stage::Leaving, Err(_)) => {
                self.park.slots.remove(&(tenant, slot));
                return;
            }
            _ => return,
        }
        if let Err(e) = r {
            warn!(call = id, tenant, slot, error = %e, "park row not stored: call not parked");
            self.park.slots.remove(&(tenant, slot));
            return self.park_say_and_hang_up(id, vec!["park-no-free-slot".into()], now);
        }
        s.stage = Stage::Parked;
        s.since = now.wall;
        self.blf_changed(tenant, &slot.to_string());
        let Some(s) = self.park.slots.get_mut(&(tenant, slot)) else {
            return;
        };
        s.events.push(TransferEvent {
            at: now.wall,
            kind: "parked",
            by: s.parker.clone(),
            party: s.caller.clone(),
            to: slot.to_string(),
            status: 200,
        });
        let deadline = now.mono + s.timeout;
        info!(call = id, tenant, slot, "call parked");
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        let lang = lang_of(anchor.lang());
        let items = apps::prompt::parked_on(u64::from(slot), lang)
            .into_iter()
            .map(|p| PlayItem::Prompt {
                id: p.to_string(),
                tenant,
                lang: anchor.lang().to_string(),
            })
            .collect();
        anchor.set_deadline(Some(deadline));
        let cmd = anchor.play_cmd(items, false);
        self.app_timers.insert((deadline, id));
        self.media(cmd);
    }

    /// Plays `prompts` to an anchored call, then hangs up.
    fn park_say_and_hang_up(&mut self, id: u64, prompts: Vec<String>, now: Now) {
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.set_app(App::Announce(prompts));
        }
        self.announce_start(id, now);
    }

    /// A playback of a parked call ended (the slot announcement): the hold music starts.
    pub(crate) fn park_play_done(&mut self, id: u64) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let parked = self
            .park
            .slot_of_call(id)
            .and_then(|k| self.park.slots.get(&k))
            .is_some_and(|s| s.stage == Stage::Parked);
        if !parked {
            return;
        }
        let class = self.snap.codes.park.lot(tenant).moh_class;
        if let Some(ep) = call.anchor.as_deref().map(|a| a.caller_endpoint()) {
            self.media(MediaCommand::Play {
                endpoint: ep,
                id: 0,
                items: vec![PlayItem::Moh { tenant, class }],
                stop_on_dtmf: false,
                repeat: true,
            });
        }
    }

    /// The parked call's timer fell due: ring the parker back (or go to the fallback).
    pub(crate) fn park_timeout(&mut self, id: u64, now: Now) {
        let Some(key) = self.park.slot_of_call(id) else {
            return;
        };
        let Some(s) = self.park.slots.get_mut(&key) else {
            return;
        };
        if s.stage == Stage::Resuming {
            return self.anchored_hangup(id, "parked call not resumed", now);
        }
        if s.stage != Stage::Parked {
            return;
        }
        s.stage = Stage::Callback;
        s.events.push(TransferEvent {
            at: now.wall,
            kind: "park-timeout",
            by: String::new(),
            party: s.caller.clone(),
            to: s.parker.clone(),
            status: 408,
        });
        let parker = s.parker.clone();
        let label = format!("Parked {}: {}", key.1, s.caller);
        info!(call = id, tenant = key.0, slot = key.1, %parker, "park timeout: ringing the parker back");
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        call.caller_name = label;
        // The parker's phones other than the parked one itself (a caller who parked himself).
        let source = call.legs[A_LEG].target.destination;
        let reachable = self
            .snap
            .extensions
            .get(&(key.0, parker.clone()))
            .filter(|e| e.enabled)
            .is_some_and(|e| {
                self.usrloc
                    .get(e.id)
                    .iter()
                    .any(|b| b.expires_at > now.wall && b.received != source)
            });
        if !reachable {
            self.park_fallback(id, now);
            return;
        }
        self.app_goto(id, &format!("ext:{parker}"), now);
    }

    /// A parked call's callback found no one (or nobody answered): the lot's fallback.
    /// True when the call is a parked one (and so handled here).
    pub(crate) fn park_fallback(&mut self, id: u64, now: Now) -> bool {
        let Some(key) = self.park.slot_of_call(id) else {
            return false;
        };
        if self.park.slots.get(&key).map(|s| s.stage) != Some(Stage::Callback) {
            return false;
        }
        let fallback = self.snap.codes.park.lot(key.0).fallback;
        self.park_leave(key, "park-fallback", &fallback, now);
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.clear_app();
        }
        info!(call = id, %fallback, "park: the parker did not answer");
        if fallback == "hangup" {
            self.unavailable(id, now);
        } else {
            self.app_goto(id, &fallback, now);
        }
        true
    }

    /// A parked call's callback was answered by the parker: the slot is free.
    pub(crate) fn park_callback_answered(&mut self, id: u64, now: Now) {
        let Some(key) = self.park.slot_of_call(id) else {
            return;
        };
        if self.park.slots.get(&key).map(|s| s.stage) != Some(Stage::Callback) {
            return;
        }
        let parker = self
            .park
            .slots
            .get(&key)
            .map(|s| s.parker.clone())
            .unwrap_or_default();
        self.park_leave(key, "park-callback", &parker, now);
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.clear_app();
        }
    }

    /// The call leaves its slot: the event is noted and the row deleted.
    fn park_leave(&mut self, key: (i64, u32), kind: &'static str, to: &str, now: Now) {
        let Some(s) = self.park.slots.get_mut(&key) else {
            return;
        };
        if s.stage == Stage::Leaving {
            return;
        }
        s.events.push(TransferEvent {
            at: now.wall,
            kind,
            by: String::new(),
            party: s.caller.clone(),
            to: to.to_string(),
            status: 200,
        });
        let saving = s.stage == Stage::Saving;
        s.stage = Stage::Leaving;
        let (tenant, call_id, events) = (key.0, s.call_id.clone(), std::mem::take(&mut s.events));
        if !saving {
            self.blf_changed(tenant, &key.1.to_string());
        }
        if !events.is_empty() {
            self.db(
                DbOp::CdrEvents {
                    tenant,
                    call_id,
                    events,
                },
                Pending::Background("storing park events"),
            );
        }
        if saving {
            // The Save answer finds it leaving and deletes the row then.
            return;
        }
        self.db(
            DbOp::Park(ParkOp::Free {
                tenant,
                slot: key.1,
            }),
            Pending::Park(tenant, key.1, false),
        );
    }

    /// A phone dialled slot `slot`: take the parked call, or say the slot is empty.
    pub(crate) fn park_retrieve(&mut self, entry: Entry, o: Origin, slot: &str, now: Now) {
        let tenant = o.tenant;
        let target = slot
            .parse::<u32>()
            .ok()
            .and_then(|n| self.park.slots.get(&(tenant, n)).map(|s| (n, s)))
            .filter(|(_, s)| s.stage == Stage::Parked)
            .map(|(n, s)| (n, s.call));
        let Some((n, parked)) = target else {
            info!(tenant, %slot, caller = %o.caller, "park slot empty");
            return self.start_announce(entry, o, vec!["park-slot-empty".into()], now);
        };
        let app = App::ParkRetrieve;
        let caller = o.caller.clone();
        // The retriever's endpoint shares the parked call's media worker (one bridge).
        let Some(id) = self.start_with_app(entry, o, app, parked, "park retrieval", now) else {
            return;
        };
        if let Some(s) = self.park.slots.get_mut(&(tenant, n)) {
            s.stage = Stage::Retrieved(id);
            s.events.push(TransferEvent {
                at: now.wall,
                kind: "retrieved",
                by: caller.clone(),
                party: s.caller.clone(),
                to: caller,
                status: 200,
            });
        }
        self.park.retrievers.insert(id, parked);
        // The parked call's timer no longer applies.
        if let Some(a) = self
            .b2bua
            .get_mut(parked)
            .and_then(|c| c.anchor.as_deref_mut())
        {
            a.set_deadline(None);
        }
        info!(
            call = id,
            parked,
            tenant,
            slot = n,
            "retrieving a parked call"
        );
    }

    /// The retrieving caller is answered: join both endpoints in one bridge.
    pub(crate) fn park_retriever_answered(&mut self, id: u64, now: Now) {
        let Some(&parked) = self.park.retrievers.get(&id) else {
            return;
        };
        let parked_ep = self
            .b2bua
            .get(parked)
            .and_then(|c| c.anchor.as_deref())
            .map(|a| a.caller_endpoint());
        let mine = self
            .b2bua
            .get(id)
            .and_then(|c| c.anchor.as_deref())
            .map(|a| a.caller_endpoint());
        let (Some(p), Some(m)) = (parked_ep, mine) else {
            return self.anchored_hangup(id, "parked call gone", now);
        };
        if let Some(key) = self.park.slot_of_call(parked) {
            let by = self
                .b2bua
                .get(id)
                .map(|c| c.caller.clone())
                .unwrap_or_default();
            self.park_leave(key, "park-retrieved", &by, now);
        }
        self.media(MediaCommand::StopPlay { endpoint: p });
        self.media(MediaCommand::Join {
            endpoint: p,
            bridge: parked,
        });
        self.media(MediaCommand::Join {
            endpoint: m,
            bridge: parked,
        });
        info!(call = id, parked, "parked call retrieved");
    }

    /// A call ended (hook in `finish_with`): a parked call frees its slot and ends its
    /// retriever; a retriever ends the call it took.
    pub(crate) fn park_call_ended(&mut self, id: u64, now: Now) {
        if let Some(parked) = self.park.retrievers.remove(&id) {
            if let Some(key) = self.park.slot_of_call(parked)
                && let Some(s) = self.park.slots.get_mut(&key)
                && s.stage == Stage::Retrieved(id)
            {
                // Hung up before it was answered: the call stays parked, its timer anew.
                s.stage = Stage::Parked;
                let at = now.mono + s.timeout;
                if let Some(a) = self
                    .b2bua
                    .get_mut(parked)
                    .and_then(|c| c.anchor.as_deref_mut())
                {
                    a.set_deadline(Some(at));
                    self.app_timers.insert((at, parked));
                }
                return;
            }
            self.anchored_hangup(parked, "retriever hung up", now);
            return;
        }
        let retriever = self
            .park
            .retrievers
            .iter()
            .find(|(_, p)| **p == id)
            .map(|(r, _)| *r);
        if let Some(key) = self.park.slot_of_call(id) {
            self.park_leave(key, "park-hangup", "", now);
        }
        if let Some(r) = retriever {
            self.park.retrievers.remove(&r);
            self.anchored_hangup(r, "parked caller hung up", now);
        }
    }

    /// Loads the parked calls stored before a restart (or before a switchover, on the node
    /// that takes over): each slot is occupied again at once, and each parked leg is
    /// re-INVITEd onto a new media endpoint of ours (`Engine::send_endpoint_reinvite`), so
    /// hold music resumes and retrieval works; the timeout runs on from the stored time. A row
    /// without a usable leg, or of a slot taken already, is deleted. Call before any input.
    pub fn load_parked(&mut self, records: Vec<ParkRecord>) {
        for r in records {
            let key = (r.tenant, r.slot);
            let usable = r.leg.as_ref().is_some_and(|l| {
                transport_of(&l.transport).is_some()
                    && matches!(
                        sip::parse_message(l.invite.as_bytes()),
                        Ok(sip::Message::Request(_))
                    )
            });
            if self.park.slots.contains_key(&key) {
                // Already held here (a node taking the address back): nothing to resume.
                debug!(
                    tenant = r.tenant,
                    slot = r.slot,
                    "stored parked call already held"
                );
                continue;
            }
            if !usable || self.park.slots.len() >= 10_000 {
                warn!(
                    tenant = r.tenant,
                    slot = r.slot,
                    "stored parked call cannot be resumed: dropped"
                );
                self.db(
                    DbOp::Park(ParkOp::Free {
                        tenant: r.tenant,
                        slot: r.slot,
                    }),
                    Pending::Background("dropping a stored parked call"),
                );
                continue;
            }
            let Some(leg) = r.leg.as_ref() else {
                continue;
            };
            let id = self.b2bua.next_call_id();
            let ep = self.b2bua.new_endpoint(id);
            self.park.slots.insert(
                key,
                Slot {
                    call: id,
                    caller: r.caller.clone(),
                    caller_name: r.caller_name.clone(),
                    parker: r.parker.clone(),
                    call_id: r.call_id.clone(),
                    since: r.parked_at,
                    timeout: r.timeout_at.duration_since(r.parked_at).unwrap_or_default(),
                    stage: Stage::Resuming,
                    events: Vec::new(),
                },
            );
            info!(
                call = id,
                tenant = r.tenant,
                slot = r.slot,
                "resuming a stored parked call"
            );
            self.blf_changed(r.tenant, &r.slot.to_string());
            self.media(MediaCommand::OpenEndpoint {
                endpoint: ep,
                call_id: r.call_id.clone(),
                ip: leg.local.ip(),
                group: id,
            });
            self.park.resuming.insert(ep, (id, r));
        }
    }

    /// A reloaded parked call's endpoint opened: rebuild the call and re-INVITE its leg. True
    /// when `ep` was one.
    pub(crate) fn park_resume_opened(
        &mut self,
        id: u64,
        ep: crate::media::EndpointId,
        r: Result<std::net::SocketAddr, ()>,
        now: Now,
    ) -> bool {
        let Some((call, rec)) = self.park.resuming.remove(&ep) else {
            return false;
        };
        let key = (rec.tenant, rec.slot);
        let built = r
            .ok()
            .and_then(|l| self.park_rebuild(call, ep, l, &rec, now));
        if built.is_none() {
            warn!(
                call = id,
                tenant = key.0,
                slot = key.1,
                "stored parked call not resumed"
            );
            self.b2bua.by_endpoint.remove(&ep);
            self.media(MediaCommand::CloseEndpoint { endpoint: ep });
            self.park_leave(key, "park-lost", "", now);
        }
        true
    }

    /// The call of a reloaded parked leg, anchored on endpoint `ep` (open at `ep_local`).
    fn park_rebuild(
        &mut self,
        id: u64,
        ep: crate::media::EndpointId,
        ep_local: std::net::SocketAddr,
        rec: &ParkRecord,
        now: Now,
    ) -> Option<()> {
        let leg = rec.leg.as_ref()?;
        let sip::Message::Request(invite) = sip::parse_message(leg.invite.as_bytes()).ok()? else {
            return None;
        };
        let transport = transport_of(&leg.transport)?;
        let contact = self.contact_uri(None, leg.local, transport);
        let mut ok = sip::Response::for_request(&invite, 200, None).with_to_tag(&leg.our_tag);
        ok.headers
            .push(sip::HeaderName::Contact, format!("<{contact}>"));
        let mut dialog = sip::dialog::Dialog::uas(&invite, &ok).ok()?;
        dialog.remote_seq = leg.remote_seq.or(dialog.remote_seq);
        dialog.local_seq = leg.local_seq;
        let mut anchor = crate::anchor::Anchor::for_dialog(
            invite,
            ep,
            leg.local.ip(),
            App::Park,
            self.prompt_language(rec.tenant, Some(&rec.caller)),
        )?;
        Engine::caller_endpoint_opened(&mut anchor, ep_local);
        let left = rec.timeout_at.duration_since(now.wall).unwrap_or_default();
        let deadline = now.mono + left;
        anchor.set_deadline(Some(deadline));
        let target = sip::transaction::Target {
            destination: leg.peer,
            transport,
            local: Some(leg.local),
        };
        // The leg's INVITE transaction is our re-INVITE (the phone's own ended before).
        let txn = self.send_endpoint_reinvite(id, &mut dialog, &mut anchor, target, now)?;
        let mut a = crate::b2bua::Leg::caller(
            rec.call_id.clone(),
            txn,
            (leg.peer, leg.local, transport),
            leg.our_tag.clone(),
        );
        a.dialog = Some(dialog);
        let o = Origin {
            tenant: rec.tenant,
            caller: rec.caller.clone(),
            caller_name: rec.caller_name.clone(),
            call_id: rec.call_id.clone(),
            digits: rec.slot.to_string(),
            route: crate::db::CallRoute::default(),
        };
        let mut call = Box::new(crate::b2bua::Call::new(
            id,
            o,
            a,
            Vec::new(),
            now,
            self.snap.settings.no_answer,
        ));
        call.state = crate::control::CallState::Up;
        call.answer = Some(rec.parked_at);
        call.anchor = Some(Box::new(anchor));
        self.b2bua.insert(call);
        self.app_timers.insert((deadline, id));
        Some(())
    }

    /// The reloaded parked leg answered our re-INVITE: music again, retrievable again.
    pub(crate) fn park_resumed(&mut self, id: u64, now: Now) {
        let Some(key) = self.park.slot_of_call(id) else {
            return;
        };
        if let Some(s) = self.park.slots.get_mut(&key)
            && s.stage == Stage::Resuming
        {
            s.stage = Stage::Parked;
            info!(
                call = id,
                tenant = key.0,
                slot = key.1,
                "parked call resumed"
            );
        }
        let _ = now;
        self.park_play_done(id);
    }

    /// True for a call waiting in a slot with its row stored (not while its parker is rung
    /// back): a shutdown leaves it (no BYE),
    /// so the next start resumes it.
    /// This node stops serving (on an active/standby pair the application address moved to
    /// the peer, which resumes the parked calls from their rows): the calls parked here are
    /// dropped without a word to their phones and without touching their rows, so neither
    /// their timeout nor their music runs twice. Answers how many were dropped.
    pub fn forget_parked(&mut self) -> usize {
        let held: Vec<((i64, u32), u64)> = self
            .park
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.stage, Stage::Parked | Stage::Resuming))
            .map(|(k, s)| (*k, s.call))
            .collect();
        for (key, id) in &held {
            self.park.slots.remove(key);
            self.app_timers.retain(|(_, c)| c != id);
            if let Some(call) = self.b2bua.remove(*id)
                && let Some(anchor) = &call.anchor
            {
                for ep in anchor.endpoints() {
                    self.b2bua.by_endpoint.remove(&ep);
                    self.media(MediaCommand::CloseEndpoint { endpoint: ep });
                }
            }
            self.park.resuming.retain(|_, (c, _)| c != id);
            info!(
                call = id,
                tenant = key.0,
                slot = key.1,
                "parked call handed to the peer"
            );
            self.blf_changed(key.0, &key.1.to_string());
        }
        held.len()
    }

    pub(crate) fn park_survives_shutdown(&self, id: u64) -> bool {
        self.park
            .slot_of_call(id)
            .and_then(|k| self.park.slots.get(&k))
            .is_some_and(|s| matches!(s.stage, Stage::Parked | Stage::Resuming))
    }

    /// A configuration reload brought `lots`: logged when they differ from those in use.
    pub(crate) fn park_lots_loaded(&self, lots: &ParkLots) {
        if *lots != self.snap.codes.park {
            for (tenant, l) in &lots.lots {
                info!(tenant, first = l.first, last = l.last, timeout_s = l.timeout.as_secs(), fallback = %l.fallback, "park lot loaded");
            }
        }
    }
}

impl Engine {
    /// Anchored call `id` (a caller in a menu whose option is `park:SLOT`) takes the call
    /// parked in `slot`, as a phone dialling the slot would: its endpoint joins the parked
    /// call's. False (nothing changed) when the slot holds no parked call.
    pub(crate) fn park_take(&mut self, id: u64, slot: &str, now: Now) -> bool {
        let Some(call) = self.b2bua.get(id) else {
            return false;
        };
        let (tenant, caller) = (call.tenant_id, call.caller.clone());
        let target = slot
            .parse::<u32>()
            .ok()
            .and_then(|n| self.park.slots.get(&(tenant, n)).map(|s| (n, s)))
            .filter(|(_, s)| s.stage == Stage::Parked && s.call != id)
            .map(|(n, s)| (n, s.call));
        let Some((n, parked)) = target else {
            info!(call = id, tenant, %slot, "park slot empty (menu choice)");
            return false;
        };
        if let Some(s) = self.park.slots.get_mut(&(tenant, n)) {
            s.stage = Stage::Retrieved(id);
            s.events.push(TransferEvent {
                at: now.wall,
                kind: "retrieved",
                by: caller.clone(),
                party: s.caller.clone(),
                to: caller,
                status: 200,
            });
        }
        self.park.retrievers.insert(id, parked);
        if let Some(a) = self
            .b2bua
            .get_mut(parked)
            .and_then(|c| c.anchor.as_deref_mut())
        {
            a.set_deadline(None);
        }
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.set_app(App::ParkRetrieve);
        }
        info!(
            call = id,
            parked,
            tenant,
            slot = n,
            "menu caller takes a parked call"
        );
        self.park_retriever_answered(id, now);
        true
    }
}
