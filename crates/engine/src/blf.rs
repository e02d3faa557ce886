//! Busy-lamp fields and presence: the `dialog` (RFC 4235, `application/dialog-info+xml`) and
//! `presence` (RFC 3856, `application/pidf+xml`) event packages of [`crate::subs`].
//!
//! A phone subscribes (digest-authenticated as its extension) to a resource of its own tenant:
//! an extension number (`sip:1001@domain`) or a day/night code (`sip:*281@domain`). Another
//! tenant's domain gets 403, an unknown resource 404 (both logged with the peer address).
//!
//! State comes from one place per kind:
//! - calls: the call table notes every call changed, added or removed
//!   ([`crate::blf_calls::CallTable`]); after an input the engine rebuilds the dialog elements
//!   of those calls only, compares them with what it saw last and marks the extensions whose
//!   dialogs changed — b2bua legs, hunt/ring-group forks (the extension of each ringing fork's
//!   contact), picked-up, parked and transferred legs, anchored calls alike. Idle calls cost
//!   nothing ([`Engine::blf_stats`] counts the calls looked at);
//! - registrations, DND, time conditions: presence and day/night resources are looked at on a
//!   location write and swept once a second (registrations run out without an input); a
//!   configuration reload looks at everything watched (and at every call: which numbers are
//!   extensions may have changed);
//! - anything else (park slots...): [`Engine::blf_changed`].
//!
//! NOTIFY fan-out: watchers are indexed by resource ([`crate::subs::Subs::by_resource`]); the
//! body of a changed resource is built once per flush and shared by its watchers (only the
//! `dialog-info` version differs); a subscription gets at most one NOTIFY per [`MIN_GAP`] —
//! a change inside the gap is sent when the gap ends, with the state of that moment (latest
//! wins, the final state is never lost); an unchanged state sends nothing.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip::{Request, Response};
use tracing::info;

use crate::b2bua::{A_LEG, Call};
use crate::control::CallState;
use crate::db::Direction;
use crate::features::FeatureAction;
use crate::media::Side;
use crate::subs::{Package, SubKey};
use crate::{Engine, Now};

/// Shortest time between two NOTIFYs of one subscription.
pub const MIN_GAP: Duration = Duration::from_millis(25);
/// How often registrations, DND and time conditions are looked at without a trigger.
const SWEEP: Duration = Duration::from_secs(1);

/// One dialog element of a `dialog-info` document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DialogEl {
    id: String,
    call_id: String,
    local_tag: String,
    remote_tag: String,
    /// Direction: the watched extension placed the call.
    initiator: bool,
    state: &'static str,
    /// The other party: (number, display name).
    remote: (String, String),
}

/// A dialog element and the (tenant, resource) it belongs to.
type Entry = ((i64, String), DialogEl);

/// Bookkeeping of the BLF packages (bounded by the calls and the watched resources).
#[derive(Debug, Default)]
pub(crate) struct BlfState {
    /// Watched resources whose state may have changed since the last flush.
    dirty: HashSet<(i64, String)>,
    /// Everything watched is to be looked at in the next flush.
    sweep_all: bool,
    /// Presence and day/night resources are to be looked at in the next flush.
    sweep_state: bool,
    last_sweep: Option<Instant>,
    /// NOTIFYs held back by [`MIN_GAP`]: (when, subscription).
    due: BTreeSet<(Instant, SubKey)>,
    due_keys: HashSet<SubKey>,
    /// Calls as last seen: their dialog elements by resource.
    calls: HashMap<u64, Vec<Entry>>,
    /// Every call is to be looked at (tracking started, the extensions changed).
    rescan: bool,
    /// Calls looked at since start ([`Engine::blf_stats`]).
    examined: u64,
    /// Unmarked calls found changed (debug builds check; always 0 when the marking is right).
    missed: u64,
    /// Resource -> calls with a dialog element for it.
    by_res: HashMap<(i64, String), HashSet<u64>>,
    /// Dialogs that ended since the last flush (sent once as `terminated`).
    ended: HashMap<(i64, String), Vec<DialogEl>>,
    /// Calls are being followed (some `dialog`/`presence` subscription exists).
    tracking: bool,
    /// Bodies built in this flush: (tenant, package) -> resource -> the part every watcher's
    /// NOTIFY shares (looked up by `&str`: no key is built per NOTIFY).
    bodies: HashMap<(i64, Package), HashMap<String, Part>>,
}

/// The body of a resource's NOTIFYs as built once per flush and shared by its watchers.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// Hash of the state shown (unchanged state sends nothing).
    hash: u64,
    /// `presence`: the whole document; `dialog`: everything after the version number.
    text: Arc<str>,
    /// What the subscription listing shows as the last state ([`crate::subs_list`]).
    pub(crate) summary: Arc<str>,
}

/// A `dialog-info` document up to its version number.
const DIALOG_INFO_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"";

impl BlfState {
    /// The earliest held-back NOTIFY.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(t, _)| *t)
    }
}

/// What the BLF call tracking has done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlfStats {
    /// Calls whose dialog elements were rebuilt (changed calls only, plus full rescans when
    /// tracking starts or the extensions change).
    pub examined: u64,
    /// Calls found changed without having been marked (checked in debug builds; a bug if > 0).
    pub missed: u64,
}

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// XML text escaping (attribute-safe).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

/// The `<dialog>` elements of a `dialog-info` document (`show` = the remote party shown).
pub(crate) fn dialog_elements(els: &[DialogEl], realm: &str, show: bool) -> String {
    let mut o = String::new();
    for e in els {
        o.push_str(&format!(
            "<dialog id=\"{}\" call-id=\"{}\"",
            esc(&e.id),
            esc(&e.call_id)
        ));
        if !e.local_tag.is_empty() {
            o.push_str(&format!(" local-tag=\"{}\"", esc(&e.local_tag)));
        }
        if !e.remote_tag.is_empty() {
            o.push_str(&format!(" remote-tag=\"{}\"", esc(&e.remote_tag)));
        }
        o.push_str(&format!(
            " direction=\"{}\"><state>{}</state>",
            if e.initiator {
                "initiator"
            } else {
                "recipient"
            },
            e.state
        ));
        if show && !e.remote.0.is_empty() {
            let uri = esc(&format!("sip:{}@{realm}", e.remote.0));
            let display = if e.remote.1.is_empty() {
                String::new()
            } else {
                format!(" display=\"{}\"", esc(&e.remote.1))
            };
            o.push_str(&format!(
                "<remote><identity{display}>{uri}</identity><target uri=\"{uri}\"/></remote>"
            ));
        }
        o.push_str("</dialog>");
    }
    o
}

/// A whole `dialog-info` document (`state="full"`).
#[cfg(test)]
pub(crate) fn dialog_info(version: u32, entity: &str, elements: &str) -> String {
    dialog_info_from(version, &dialog_info_tail(entity, elements))
}

/// A `dialog-info` document after its version number (the same for every watcher).
fn dialog_info_tail(entity: &str, elements: &str) -> String {
    format!(
        "\" state=\"full\" entity=\"{}\">{elements}</dialog-info>\r\n",
        esc(entity)
    )
}

/// A `dialog-info` document from its version and its [`dialog_info_tail`].
fn dialog_info_from(version: u32, tail: &str) -> String {
    use std::fmt::Write;
    let mut o = String::with_capacity(DIALOG_INFO_HEAD.len() + 10 + tail.len());
    o.push_str(DIALOG_INFO_HEAD);
    // Writing into a String cannot fail.
    let _ = write!(o, "{version}");
    o.push_str(tail);
    o
}

/// Presence of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Presence {
    open: bool,
    /// RPID activity (`on-the-phone`, `busy`).
    activity: Option<&'static str>,
    note: &'static str,
}

/// A PIDF document (RFC 3863, with RPID activities, RFC 4480).
pub(crate) fn pidf(entity: &str, p: &Presence) -> String {
    let person = match p.activity {
        Some(a) => format!(
            "<dm:person id=\"p1\"><rpid:activities><rpid:{a}/></rpid:activities><dm:note>{}</dm:note></dm:person>",
            p.note
        ),
        None => format!(
            "<dm:person id=\"p1\"><dm:note>{}</dm:note></dm:person>",
            p.note
        ),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{}\"><tuple id=\"t1\"><status><basic>{}</basic></status><note>{}</note></tuple>{person}</presence>\r\n",
        esc(entity),
        if p.open { "open" } else { "closed" },
        p.note
    )
}

/// Whether an input may change a call: answers to NOTIFYs and SUBSCRIBEs (the bulk of a BLF
/// load) cannot, and skip the scan of the calls.
pub(crate) fn may_move_calls(input: &crate::Input) -> bool {
    let crate::Input::Receive(r) = input else {
        return true;
    };
    match &r.message {
        sip::Message::Response(resp) => resp.cseq().is_none_or(|c| c.method != sip::Method::Notify),
        sip::Message::Request(req) => req.method != sip::Method::Subscribe,
    }
}

/// The user part of an AOR (`sip:1001@x` -> `1001`).
fn aor_user(aor: &str) -> Option<&str> {
    let user = aor.trim_start_matches("sip:").trim_start_matches("sips:");
    user.split('@').next().filter(|u| !u.is_empty())
}

impl Engine {
    /// A watched resource's state changed (a park slot filled, ...): its watchers get a NOTIFY
    /// in this input's flush. Cheap when nobody watches it. `resource` is what phones
    /// subscribe to (the user part of the URI: `1001`, `*281`, a park slot's number).
    pub fn blf_changed(&mut self, tenant: i64, resource: &str) {
        let key = (tenant, resource.to_string());
        if self.subs.by_resource.contains_key(&key) {
            self.subs.blf.dirty.insert(key);
        }
    }

    /// Registrations, DND or time conditions may have changed: look at the presence and
    /// day/night resources watched (an extension's `dialog` state depends on calls only).
    pub(crate) fn blf_sweep_soon(&mut self) {
        self.subs.blf.sweep_state = true;
    }

    /// The configuration was reloaded: look at everything watched, and at every call (which
    /// numbers are extensions, or the caller's visibility, may have changed).
    pub(crate) fn blf_config_changed(&mut self) {
        self.subs.blf.sweep_all = true;
        self.subs.blf.rescan = true;
    }

    /// What the BLF call tracking has done since start (calls looked at).
    pub fn blf_stats(&self) -> BlfStats {
        BlfStats {
            examined: self.subs.blf.examined,
            missed: self.subs.blf.missed,
        }
    }

    /// Whether a subscriber of `tenant` may watch `resource`; `Ok(resource)` or the refusal.
    pub(crate) fn blf_admit(
        &mut self,
        req: &Request,
        tenant: i64,
        subscriber: &str,
        resource: &str,
        source: SocketAddr,
    ) -> Result<String, Response> {
        let domain = crate::registrar::uri_domain(&req.uri).unwrap_or_default();
        if let Some(t) = self.snap.tenants.for_domain(&domain)
            && t != tenant
        {
            info!(peer = %source, extension = %subscriber, %domain, "BLF subscription refused: another tenant's resource");
            return Err(Response::for_request(req, 403, Some("Not your tenant")));
        }
        if resource.is_empty() || !self.blf_known(tenant, resource) {
            info!(peer = %source, extension = %subscriber, %resource, "BLF subscription refused: unknown resource");
            return Err(Response::for_request(req, 404, Some("Unknown resource")));
        }
        Ok(resource.to_string())
    }

    fn blf_known(&self, tenant: i64, resource: &str) -> bool {
        self.snap
            .extensions
            .contains_key(&(tenant, resource.to_string()))
            || self.blf_timecond(tenant, resource).is_some()
            || self.blf_park_slot(tenant, resource).is_some()
    }

    /// The park slot a resource names: a number of the tenant's park lot that is not an
    /// extension (an extension's number is the extension's key).
    fn blf_park_slot(&self, tenant: i64, resource: &str) -> Option<u32> {
        if self
            .snap
            .extensions
            .contains_key(&(tenant, resource.to_string()))
        {
            return None;
        }
        self.snap.codes.park.lot(tenant).slot_of(resource)
    }

    /// The time condition a day/night code resource (`*28N`) names.
    fn blf_timecond(&self, tenant: i64, resource: &str) -> Option<&crate::timecond::TimeCond> {
        let codes = &self.snap.codes;
        let f = codes.table(tenant).recognise(resource)?;
        if f.action != FeatureAction::DayNight {
            return None;
        }
        let index = f.arg.parse::<u8>().ok()?;
        codes.timecond_by_index(tenant, index)
    }

    /// Whether a day/night resource shows night (closed) now.
    fn blf_night(&self, tenant: i64, resource: &str, now: Now) -> Option<bool> {
        let tc = self.blf_timecond(tenant, resource)?;
        let codes = &self.snap.codes;
        let cal = codes.calendars.get(&tenant).cloned().unwrap_or_default();
        Some(
            !tc.state(codes.clock(now.wall), codes.timezone(tenant), &cal)
                .open,
        )
    }

    /// The dialog elements of one call, by extension.
    fn blf_call_entries(&self, call: &Call) -> Vec<Entry> {
        let t = call.tenant_id;
        let is_ext = |n: &str| self.snap.extensions.contains_key(&(t, n.to_string()));
        let up = call.state == CallState::Up;
        let mut out: Vec<Entry> = Vec::new();
        if call.route.direction != Direction::Inbound && is_ext(&call.caller) {
            let a = &call.legs[A_LEG];
            let early = call
                .legs
                .iter()
                .any(|l| l.side == Side::B && l.dialog.is_some());
            let (local_tag, remote_tag) = match &a.dialog {
                Some(d) => (d.id.remote_tag.clone(), d.id.local_tag.clone()),
                None => (String::new(), a.tag.clone()),
            };
            out.push((
                (t, call.caller.clone()),
                DialogEl {
                    id: format!("{}-0", call.id),
                    call_id: a.call_id.clone(),
                    local_tag,
                    remote_tag,
                    initiator: true,
                    state: if up {
                        "confirmed"
                    } else if early {
                        "early"
                    } else {
                        "trying"
                    },
                    remote: (call.callee.clone(), String::new()),
                },
            ));
        }
        if call.route.direction != Direction::Outbound {
            for (i, l) in call.legs.iter().enumerate() {
                if l.side != Side::B || l.trunk.is_some() {
                    continue;
                }
                let answered = call.bridge.is_some_and(|b| b.a == i || b.b == i);
                let ringing = !up && l.final_status.is_none();
                if !answered && !ringing {
                    continue;
                }
                let ext = call
                    .rung
                    .iter()
                    .find(|b| b.received == l.target.destination)
                    .and_then(|b| aor_user(&b.aor))
                    .unwrap_or(call.callee.as_str());
                if !is_ext(ext) || out.iter().any(|((_, e), d)| e == ext && !d.initiator) {
                    continue;
                }
                let (local_tag, remote_tag) = match &l.dialog {
                    Some(d) => (d.id.remote_tag.clone(), d.id.local_tag.clone()),
                    None => (String::new(), l.tag.clone()),
                };
                out.push((
                    (t, ext.to_string()),
                    DialogEl {
                        id: format!("{}-{i}", call.id),
                        call_id: l.call_id.clone(),
                        local_tag,
                        remote_tag,
                        initiator: false,
                        // Ringing once its phone said so (a 1xx with a tag); before that, trying.
                        state: if answered {
                            "confirmed"
                        } else if l.dialog.is_some() {
                            "early"
                        } else {
                            "trying"
                        },
                        remote: (call.caller.clone(), call.caller_name.clone()),
                    },
                ));
            }
        }
        out
    }

    /// Rebuilds the dialog elements of the calls changed since the last look (every call after
    /// a rescan request) and marks the watched resources whose dialogs changed.
    fn blf_scan_calls(&mut self) {
        let ids: Vec<u64> = if std::mem::take(&mut self.subs.blf.rescan) {
            self.b2bua.calls.take_touched();
            self.blf_all_call_ids()
        } else {
            self.b2bua.calls.take_touched()
        };
        for id in ids {
            self.subs.blf.examined += 1;
            self.blf_look_at(id);
        }
        #[cfg(debug_assertions)]
        self.blf_check_unmarked();
    }

    /// Every call alive or still shown (sorted).
    fn blf_all_call_ids(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .b2bua
            .calls
            .keys()
            .chain(self.subs.blf.calls.keys())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Compares one call's dialog elements with what was seen last (`id` gone: all ended).
    fn blf_look_at(&mut self, id: u64) {
        let entries = match self.b2bua.get(id) {
            Some(call) => self.blf_call_entries(call),
            None => Vec::new(),
        };
        let old = if entries.is_empty() {
            self.subs.blf.calls.remove(&id).unwrap_or_default()
        } else {
            self.subs
                .blf
                .calls
                .insert(id, entries.clone())
                .unwrap_or_default()
        };
        if old == entries {
            return;
        }
        for (res, _) in &old {
            self.blf_unindex(res, id);
        }
        for (res, _) in &entries {
            self.subs
                .blf
                .by_res
                .entry(res.clone())
                .or_default()
                .insert(id);
        }
        for (res, el) in old {
            if !entries.iter().any(|(r, e)| *r == res && e.id == el.id) {
                self.blf_ended(res, el);
            } else {
                self.blf_changed(res.0, &res.1);
            }
        }
        for (res, _) in entries {
            self.blf_changed(res.0, &res.1);
        }
    }

    /// Debug builds: every call not marked still shows what BLF last saw (a change that
    /// bypassed the marking is logged, counted in [`BlfStats::missed`] and then applied).
    #[cfg(debug_assertions)]
    fn blf_check_unmarked(&mut self) {
        for id in self.blf_all_call_ids() {
            let now = match self.b2bua.get(id) {
                Some(call) => self.blf_call_entries(call),
                None => Vec::new(),
            };
            let seen = self.subs.blf.calls.get(&id).map_or(&[][..], |v| &v[..]);
            if now != seen {
                tracing::error!(call = id, "BLF: a call changed without being marked");
                self.subs.blf.missed += 1;
                self.blf_look_at(id);
            }
        }
    }

    fn blf_unindex(&mut self, res: &(i64, String), id: u64) {
        if let Some(set) = self.subs.blf.by_res.get_mut(res) {
            set.remove(&id);
            if set.is_empty() {
                self.subs.blf.by_res.remove(res);
            }
        }
    }

    /// A dialog of a watched resource ended: shown once as terminated.
    fn blf_ended(&mut self, res: (i64, String), mut el: DialogEl) {
        if !self.subs.by_resource.contains_key(&res) {
            return;
        }
        el.state = "terminated";
        self.subs.blf.dirty.insert(res.clone());
        self.subs.blf.ended.entry(res).or_default().push(el);
    }

    /// The live dialog elements of a resource (and those ended since the last flush).
    fn blf_dialogs(&self, tenant: i64, resource: &str, now: Now) -> (Vec<DialogEl>, usize) {
        let key = (tenant, resource.to_string());
        if let Some(night) = self.blf_night(tenant, resource, now) {
            let el = DialogEl {
                id: "daynight".into(),
                call_id: format!("daynight-{resource}"),
                local_tag: String::new(),
                remote_tag: String::new(),
                initiator: false,
                state: if night { "confirmed" } else { "terminated" },
                remote: (String::new(), String::new()),
            };
            return (vec![el], 1);
        }
        if let Some(slot) = self.blf_park_slot(tenant, resource) {
            // A park slot: one dialog, confirmed while a call is parked there.
            let (occupied, caller) = self.park_slot(tenant, slot);
            if !occupied {
                return (Vec::new(), 0);
            }
            let el = DialogEl {
                id: format!("park-{slot}"),
                call_id: format!("park-{resource}"),
                local_tag: String::new(),
                remote_tag: String::new(),
                initiator: false,
                state: "confirmed",
                remote: caller.unwrap_or_default(),
            };
            return (vec![el], 1);
        }
        let mut ids: Vec<u64> = self
            .subs
            .blf
            .by_res
            .get(&key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        let mut els: Vec<DialogEl> = ids
            .iter()
            .filter_map(|id| self.subs.blf.calls.get(id))
            .flat_map(|v| v.iter().filter(|(r, _)| *r == key).map(|(_, e)| e.clone()))
            .collect();
        let live = els.len();
        if let Some(ended) = self.subs.blf.ended.get(&key) {
            els.extend(ended.iter().cloned());
        }
        (els, live)
    }

    /// The presence of a resource now.
    fn blf_presence(&self, tenant: i64, resource: &str, now: Now) -> Presence {
        if let Some(night) = self.blf_night(tenant, resource, now) {
            return Presence {
                open: !night,
                activity: None,
                note: if night { "Night" } else { "Day" },
            };
        }
        if let Some(slot) = self.blf_park_slot(tenant, resource) {
            let occupied = self.park_slot(tenant, slot).0;
            return Presence {
                open: true,
                activity: occupied.then_some("on-the-phone"),
                note: if occupied { "Parked call" } else { "Empty" },
            };
        }
        let Some(e) = self.snap.extensions.get(&(tenant, resource.to_string())) else {
            return Presence {
                open: false,
                activity: None,
                note: "Unknown",
            };
        };
        let registered = self
            .usrloc
            .get(e.id)
            .iter()
            .any(|b| b.expires_at > now.wall);
        let dnd = self
            .snap
            .apps
            .hunt
            .forwarding
            .get(&e.id)
            .is_some_and(|f| f.dnd);
        let on_phone = self
            .subs
            .blf
            .by_res
            .get(&(tenant, resource.to_string()))
            .is_some_and(|s| !s.is_empty());
        match (registered, dnd, on_phone) {
            (false, _, _) => Presence {
                open: false,
                activity: None,
                note: "Offline",
            },
            (true, true, _) => Presence {
                open: false,
                activity: Some("busy"),
                note: "Do not disturb",
            },
            (true, false, true) => Presence {
                open: true,
                activity: Some("on-the-phone"),
                note: "On the phone",
            },
            (true, false, false) => Presence {
                open: true,
                activity: None,
                note: "Available",
            },
        }
    }

    /// The part of a resource's body for `package` shared by its watchers, and its hash
    /// (built once per flush).
    fn blf_part(&mut self, tenant: i64, resource: &str, package: Package, now: Now) -> Part {
        if let Some(b) = self
            .subs
            .blf
            .bodies
            .get(&(tenant, package))
            .and_then(|m| m.get(resource))
        {
            return b.clone();
        }
        let realm = self
            .snap
            .tenants
            .realms
            .get(&tenant)
            .cloned()
            .unwrap_or_default();
        let entity = format!("sip:{resource}@{realm}");
        let (hash, text): (u64, Arc<str>) = match package {
            Package::Presence => {
                let p = self.blf_presence(tenant, resource, now);
                (hash_of(&p), pidf(&entity, &p).into())
            }
            _ => {
                let (els, live) = self.blf_dialogs(tenant, resource, now);
                let show = self.blf_show_caller(tenant);
                let entity = crate::subs::sip_account(&self.snap, tenant, resource);
                let elements = dialog_elements(&els, &realm, show);
                (
                    hash_of(&(&els[..live], show)),
                    dialog_info_tail(&entity, &elements).into(),
                )
            }
        };
        let summary = crate::subs_list::summarize(package.as_str(), text.as_bytes()).into();
        let b = Part {
            hash,
            text,
            summary,
        };
        self.subs
            .blf
            .bodies
            .entry((tenant, package))
            .or_default()
            .insert(resource.to_string(), b.clone());
        b
    }

    /// The NOTIFY body of a `dialog`/`presence` subscription (its version moves on).
    pub(crate) fn blf_body(
        &mut self,
        sub: &mut crate::subs::Sub,
        now: Now,
    ) -> (sip::MediaType, String) {
        let media = |sub: &str| sip::MediaType {
            mtype: "application".into(),
            subtype: sub.into(),
            params: sip::Params(Vec::new()),
        };
        let media = match sub.package {
            Package::Presence => media("pidf+xml"),
            _ => media("dialog-info+xml"),
        };
        (media, self.blf_body_text(sub, now).0)
    }

    /// The body of [`Engine::blf_body`] without its media type, and the state summary.
    pub(crate) fn blf_body_text(
        &mut self,
        sub: &mut crate::subs::Sub,
        now: Now,
    ) -> (String, Arc<str>) {
        if !self.subs.blf.tracking {
            // The first BLF subscription: learn the calls in progress before answering it.
            self.blf_start_tracking();
            self.blf_scan_calls();
        }
        let part = self.blf_part(sub.tenant, &sub.resource, sub.package, now);
        sub.last_hash = part.hash;
        match sub.package {
            Package::Presence => (part.text.to_string(), part.summary),
            _ => {
                sub.version = sub.version.wrapping_add(1);
                (dialog_info_from(sub.version, &part.text), part.summary)
            }
        }
    }

    /// Follows calls from now on: every call is looked at in the next scan, changes after
    /// that are noted by the call table.
    fn blf_start_tracking(&mut self) {
        self.subs.blf.tracking = true;
        self.subs.blf.rescan = true;
        self.b2bua.calls.set_tracking(true);
    }

    /// Sends what changed: called after every input; `calls_moved` is false for inputs that
    /// cannot change a call (answers to our NOTIFYs, SUBSCRIBEs), which skip even the look at
    /// the calls marked changed.
    pub(crate) fn blf_flush(&mut self, now: Now, calls_moved: bool) {
        if !self.subs.any_blf() {
            if self.subs.blf.tracking {
                self.b2bua.calls.set_tracking(false);
                let blf = &mut self.subs.blf;
                blf.tracking = false;
                blf.rescan = false;
                blf.calls = HashMap::new();
                blf.by_res = HashMap::new();
                blf.ended.clear();
                blf.dirty.clear();
                blf.due.clear();
                blf.due_keys.clear();
            }
            return;
        }
        self.subs.blf.bodies.clear();
        if !self.subs.blf.tracking {
            self.blf_start_tracking();
        }
        if calls_moved || self.subs.blf.rescan {
            self.blf_scan_calls();
        }
        let timed = self
            .subs
            .blf
            .last_sweep
            .is_none_or(|t| now.mono.saturating_duration_since(t) >= SWEEP);
        if std::mem::take(&mut self.subs.blf.sweep_all) {
            let all: Vec<(i64, String)> = self.subs.by_resource.keys().cloned().collect();
            self.subs.blf.dirty.extend(all);
        } else if timed || self.subs.blf.sweep_state {
            let swept: Vec<(i64, String)> = self
                .subs
                .by_resource
                .keys()
                .filter(|r| self.subs.presence_watched(r) || self.blf_timecond(r.0, &r.1).is_some())
                .cloned()
                .collect();
            self.subs.blf.dirty.extend(swept);
        }
        if timed || self.subs.blf.sweep_state {
            self.subs.blf.sweep_state = false;
            self.subs.blf.last_sweep = Some(now.mono);
        }
        let dirty: Vec<(i64, String)> = self.subs.blf.dirty.drain().collect();
        for res in dirty {
            let keys: Vec<SubKey> = self
                .subs
                .by_resource
                .get(&res)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                self.blf_schedule(k, now);
            }
        }
        while let Some((t, _)) = self.subs.blf.due.first()
            && *t <= now.mono
        {
            let Some((_, k)) = self.subs.blf.due.pop_first() else {
                break;
            };
            self.subs.blf.due_keys.remove(&k);
            self.blf_send(k, now);
        }
        // An ended dialog stays until every watcher of its resource has been sent it: one
        // held back by the gap shows it as `terminated` too, not just as gone.
        let (subs, blf) = (&self.subs.by_resource, &mut self.subs.blf);
        let due = &blf.due_keys;
        blf.ended.retain(|res, _| {
            !due.is_empty()
                && subs
                    .get(res)
                    .is_some_and(|keys| keys.iter().any(|k| due.contains(k)))
        });
        self.subs.blf.bodies.clear();
    }

    /// A watcher's resource changed: NOTIFY now, or when its gap ends.
    fn blf_schedule(&mut self, k: SubKey, now: Now) {
        if self.subs.blf.due_keys.contains(&k) {
            return;
        }
        let Some(s) = self.subs.get(&k) else {
            return;
        };
        match s.last_sent.map(|t| t + MIN_GAP) {
            Some(at) if at > now.mono => {
                self.subs.blf.due.insert((at, k.clone()));
                self.subs.blf.due_keys.insert(k);
            }
            _ => self.blf_send(k, now),
        }
    }

    /// NOTIFYs a watcher the current state, unless it has it already.
    fn blf_send(&mut self, k: SubKey, now: Now) {
        let Some(s) = self.subs.get(&k) else {
            return;
        };
        let (tenant, resource, package, last) =
            (s.tenant, s.resource.clone(), s.package, s.last_hash);
        let hash = self.blf_part(tenant, &resource, package, now).hash;
        let ended =
            package == Package::Dialog && self.subs.blf.ended.contains_key(&(tenant, resource));
        if hash == last && !ended {
            return;
        }
        // Out of the table while its NOTIFY is built, its indexes untouched: it stays.
        if let Some(mut s) = self.subs.take_for_notify(&k) {
            self.notify_blf(&mut s, now);
            self.subs.put_back(k, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_info_escapes_and_names_the_dialog() {
        let el = DialogEl {
            id: "7-1".into(),
            call_id: "c@h".into(),
            local_tag: "lt".into(),
            remote_tag: "rt".into(),
            initiator: false,
            state: "early",
            remote: ("1002".into(), "A <&> B".into()),
        };
        let inner = dialog_elements(std::slice::from_ref(&el), "ex.com", true);
        assert!(inner.contains(
            "<dialog id=\"7-1\" call-id=\"c@h\" local-tag=\"lt\" remote-tag=\"rt\" direction=\"recipient\"><state>early</state>"
        ));
        assert!(inner.contains("display=\"A &lt;&amp;&gt; B\">sip:1002@ex.com</identity>"));
        assert!(!dialog_elements(&[el], "ex.com", false).contains("<remote>"));
        let doc = dialog_info(3, "sip:1001@ex.com", "");
        assert!(doc.contains("version=\"3\" state=\"full\" entity=\"sip:1001@ex.com\""));
    }

    #[test]
    fn pidf_busy_when_dnd() {
        let p = Presence {
            open: false,
            activity: Some("busy"),
            note: "Do not disturb",
        };
        let d = pidf("sip:1001@ex.com", &p);
        assert!(d.contains("<basic>closed</basic>"));
        assert!(d.contains("<rpid:busy/>"));
        assert!(d.contains("Do not disturb"));
    }
}
