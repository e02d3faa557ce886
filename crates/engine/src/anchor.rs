//! Calls whose media Denwa terminates: the caller talks to a voice application (an IVR
//! menu) on a media endpoint, and when the application hands the call to an extension the
//! callee gets an endpoint of its own, joined to the caller's in a bridge that decodes,
//! mixes and re-encodes (so the two phones need no codec in common).
//!
//! The caller's leg is answered by us with our own SDP ([`crate::sdp_local`]), so in-dialog
//! requests are answered here rather than forwarded: a re-INVITE updates the endpoint, a hold
//! starts music for the other party, INFO carries digits.

pub mod dtmf_bridge;
mod ivr_goto;
mod out;
mod xfer;

pub(crate) use ivr_goto::GotoRun;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use apps::ivr::{Action, ExtMatch, Ivr, Sound};
use bytes::Bytes;
use sip::dialog::Dialog;
use sip::transaction::TransactionId;
use sip::{HeaderName, MediaType, Method, Request, Response};
use tracing::{debug, info, warn};

use crate::b2bua::{A_LEG, Call, Ending, Entry, Leg, LegIdx, Origin};
use crate::control::CallState;
use crate::db::{Disposition, HangupBy};
use crate::dialplan::Destination;
use crate::media::{Codec, EndpointId, MediaCommand, MediaEvent, PlayItem, Side, ToneKind};
use crate::sdp::{self, Direction};
use crate::usrloc::Binding;
use crate::{ALLOW, Engine, Now, nathelper, sdp_local};

/// Prompt played when the destination an application chose cannot be reached.
pub const UNAVAILABLE_PROMPT: &str = "ext-unavailable";

/// One terminating endpoint of a call.
#[derive(Debug, Clone)]
pub(crate) struct Ep {
    pub id: EndpointId,
    /// The segment address it is opened on.
    pub ip: IpAddr,
    /// Its RTP address once open.
    pub local: Option<SocketAddr>,
    pub failed: bool,
    /// What was negotiated with its phone.
    pub codec: Option<(Codec, Option<(u8, u32)>)>,
    /// Where its phone wants RTP.
    pub remote: Option<(SocketAddr, Option<SocketAddr>)>,
}

impl Ep {
    fn new(id: EndpointId, ip: IpAddr) -> Ep {
        Ep {
            id,
            ip,
            local: None,
            failed: false,
            codec: None,
            remote: None,
        }
    }
}

/// The application driving the caller's leg.
pub(crate) enum App {
    /// An IVR menu, by name.
    Ivr { name: String, ivr: Box<Ivr> },
    /// A conference room.
    Conf(Box<crate::conf::Seat>),
    /// Leaving a voicemail message.
    Vm(Box<crate::vm::VmLeave>),
    /// In the voicemail menus (listening to one's messages).
    VmMenu(Box<crate::vm_menu::VmSession>),
    /// Prompts, then hang up (feature codes: "day mode is on", "not valid").
    Announce(Vec<String>),
    /// Recording a prompt by phone (`record_prompt`).
    PromptRec(Box<crate::prompt_rec::PromptRecSession>),
    /// Parked in a slot ([`crate::park`]).
    Park,
    /// Retrieving a parked call ([`crate::park`]).
    ParkRetrieve,
    /// Paging a group ([`crate::page`]).
    Page(Box<crate::page::Pager>),
}

/// A call to an application about to start: the application, the menu to return to, the
/// placement group of its media (0: by call) and the caller's offer.
pub(crate) type AppStart = (App, Option<String>, u64, sdp::Summary);

/// What happens when the current playback ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPlay {
    /// Back to the menu the caller came from.
    Menu,
    /// Hang up.
    Hangup,
}

/// The terminated-media part of a call.
pub(crate) struct Anchor {
    /// The caller's INVITE and its offer.
    invite: Request,
    offer: sdp::Summary,
    /// The caller's endpoint.
    a: Ep,
    /// Endpoints towards the callee's forks, one per segment.
    b: Vec<Ep>,
    /// The fork that answered and its endpoint.
    winner: Option<(LegIdx, EndpointId)>,
    app: Option<App>,
    /// The menu to return to when a destination fails.
    menu: Option<String>,
    /// Forks are ringing (or their endpoints opening).
    pub connecting: bool,
    /// Contacts to ring once the B endpoints are open.
    targets: Option<Vec<Binding>>,
    play_id: u64,
    after_play: Option<AfterPlay>,
    sdp_version: u64,
    /// Prompt language.
    lang: String,
    /// The timer the application asked for.
    deadline: Option<Instant>,
    /// Who put the call on hold (music goes to the other).
    held_by: Option<Side>,
    /// The caller is answered only when the callee answers (a direct call whose phones share
    /// no codec, decoded and re-encoded here), not when its endpoint opens.
    defer_answer: bool,
    /// A 180 went to the caller (deferred answer only).
    sent_ringing: bool,
    /// Our re-INVITE moving the caller's established dialog onto `a`
    /// ([`Engine::send_endpoint_reinvite`]), until it is answered.
    reinvite: Option<TransactionId>,
    /// The extension whose forward (or follow-me) sends this call out through a trunk now, the
    /// RFC 5806 reason and the forwards counted: the trunk call's `Diversion` (a menu choice
    /// followed an extension's forwarding, [`crate::anchor::GotoRun`]).
    pub(crate) diverted: Option<(String, &'static str, u8)>,
}

impl Anchor {
    /// The media part of a call whose caller's dialog is established already (a parked call
    /// reloaded after a restart): `invite` is the caller's original INVITE, `ep` the endpoint
    /// opened for it on `ip`; [`Engine::send_endpoint_reinvite`] then moves the dialog's media
    /// onto the endpoint.
    pub(crate) fn for_dialog(
        invite: Request,
        ep: EndpointId,
        ip: IpAddr,
        app: App,
        lang: String,
    ) -> Option<Anchor> {
        let offer = sdp::summarize(&invite.body).ok()?;
        Some(Anchor {
            invite,
            offer,
            a: Ep::new(ep, ip),
            b: Vec::new(),
            winner: None,
            app: Some(app),
            menu: None,
            connecting: false,
            targets: None,
            play_id: 0,
            after_play: None,
            sdp_version: 1,
            lang,
            deadline: None,
            held_by: None,
            defer_answer: false,
            sent_ringing: false,
            reinvite: None,
            diverted: None,
        })
    }

    /// The codec the caller's offer put first that we speak.
    fn offer_codec(&self) -> Option<String> {
        sdp_local::choose(&self.offer).map(|(c, _)| c.name)
    }

    /// Another phone takes the caller's place on the caller's endpoint (attended transfer
    /// onto a parked call): `invite` stands for its dialog ([`crate::xfer_app`]). False (and
    /// nothing changed) when its SDP is unusable.
    pub(crate) fn replace_caller(&mut self, invite: Request) -> bool {
        let Ok(offer) = sdp::summarize(&invite.body) else {
            return false;
        };
        self.invite = invite;
        self.offer = offer;
        true
    }

    /// Our re-INVITE onto the caller's endpoint, while it is unanswered.
    pub(crate) fn reinvite_pending(&self) -> Option<TransactionId> {
        self.reinvite
    }

    /// The caller's INVITE (the one that started the call).
    pub(crate) fn invite(&self) -> &Request {
        &self.invite
    }

    /// Every endpoint of the call.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = EndpointId> + '_ {
        std::iter::once(self.a.id).chain(self.b.iter().map(|e| e.id))
    }

    /// The conference room the caller sits in (its bridge), once joined.
    pub(crate) fn room(&self) -> Option<u64> {
        match &self.app {
            Some(App::Conf(seat)) if seat.joined => Some(seat.bridge),
            _ => None,
        }
    }

    /// The caller's endpoint.
    pub(crate) fn caller_endpoint(&self) -> EndpointId {
        self.a.id
    }

    /// The conference seat, if the caller is in a room's application.
    pub(crate) fn seat(&self) -> Option<&crate::conf::Seat> {
        match &self.app {
            Some(App::Conf(seat)) => Some(seat),
            _ => None,
        }
    }

    /// Mutable access to the conference seat, if the caller is in a room's application.
    pub(crate) fn seat_mut(&mut self) -> Option<&mut crate::conf::Seat> {
        match &mut self.app {
            Some(App::Conf(seat)) => Some(seat),
            _ => None,
        }
    }

    /// The voicemail caller's state, if leaving a message.
    pub(crate) fn vm_mut(&mut self) -> Option<&mut crate::vm::VmLeave> {
        match &mut self.app {
            Some(App::Vm(v)) => Some(v),
            _ => None,
        }
    }

    /// The voicemail caller's state, if leaving a message.
    pub(crate) fn vm(&self) -> Option<&crate::vm::VmLeave> {
        match &self.app {
            Some(App::Vm(v)) => Some(v),
            _ => None,
        }
    }

    /// The voicemail menus, if the caller is in them.
    pub(crate) fn vm_menu_mut(&mut self) -> Option<&mut crate::vm_menu::VmSession> {
        match &mut self.app {
            Some(App::VmMenu(s)) => Some(s),
            _ => None,
        }
    }

    /// The page, if the caller is paging a group.
    pub(crate) fn pager_mut(&mut self) -> Option<&mut crate::page::Pager> {
        match self.app.as_mut() {
            Some(App::Page(p)) => Some(p),
            _ => None,
        }
    }

    /// The prompt recorder, if the caller is recording a prompt.
    pub(crate) fn prompt_rec_mut(&mut self) -> Option<&mut crate::prompt_rec::PromptRecSession> {
        match &mut self.app {
            Some(App::PromptRec(s)) => Some(s),
            _ => None,
        }
    }

    /// The application's timer.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The application let go of the caller (it is handed on).
    pub(crate) fn clear_app(&mut self) {
        self.app = None;
        self.deadline = None;
    }

    /// Hands the caller to another application (its timer cleared).
    pub(crate) fn set_app(&mut self, app: App) {
        self.app = Some(app);
        self.deadline = None;
    }

    /// Arms the application timer.
    pub(crate) fn set_deadline(&mut self, at: Option<Instant>) {
        self.deadline = at;
    }

    /// Plays `items` after the current playback is replaced; returns the command.
    pub(crate) fn play_cmd(&mut self, items: Vec<PlayItem>, stop_on_dtmf: bool) -> MediaCommand {
        self.play_id += 1;
        MediaCommand::Play {
            endpoint: self.a.id,
            id: self.play_id,
            items,
            stop_on_dtmf,
            repeat: false,
        }
    }

    /// The prompts of an announcement call.
    pub(crate) fn announcement(&self) -> Vec<String> {
        match &self.app {
            Some(App::Announce(p)) => p.clone(),
            _ => Vec::new(),
        }
    }

    /// Hang up once the current playback ends.
    pub(crate) fn hangup_after_play(&mut self) {
        self.after_play = Some(AfterPlay::Hangup);
    }

    /// The prompt language.
    pub(crate) fn lang(&self) -> &str {
        &self.lang
    }

    /// The leg that answered, when the call is bridged to a callee.
    pub(crate) fn winner_leg(&self) -> Option<LegIdx> {
        self.winner.map(|(l, _)| l)
    }

    fn ep_mut(&mut self, id: EndpointId) -> Option<&mut Ep> {
        if self.a.id == id {
            Some(&mut self.a)
        } else {
            self.b.iter_mut().find(|e| e.id == id)
        }
    }

    /// The endpoint facing leg `leg`.
    fn ep_of_leg(&self, leg: LegIdx) -> Option<&Ep> {
        if leg == A_LEG {
            return Some(&self.a);
        }
        let (w, ep) = self.winner?;
        (w == leg).then(|| self.b.iter().find(|e| e.id == ep))?
    }
}

/// Dial-by-extension lookup: is `d` an extension of `tenant`, or the start of a longer one?
fn ext_match(snap: &crate::config::Snapshot, tenant: i64, d: &str) -> ExtMatch {
    ExtMatch {
        exact: snap
            .extensions
            .get(&(tenant, d.to_string()))
            .is_some_and(|e| e.enabled),
        longer: snap
            .extensions
            .keys()
            .any(|(t, n)| *t == tenant && n.len() > d.len() && n.starts_with(d)),
    }
}

/// Parses a SIP INFO body carrying a digit (`application/dtmf-relay` `Signal=5`, or
/// `application/dtmf` `5`).
pub(crate) fn info_digit(req: &Request) -> Option<char> {
    let ct = req.content_type()?;
    let body = std::str::from_utf8(&req.body).ok()?;
    let text = if ct.is("application", "dtmf-relay") {
        body.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
            })?
            .to_string()
    } else if ct.is("application", "dtmf") {
        body.trim().to_string()
    } else {
        return None;
    };
    let c = match text.as_str() {
        "10" => '*',
        "11" => '#',
        t => {
            let mut it = t.chars();
            let c = it.next()?;
            if it.next().is_some() {
                return None;
            }
            c.to_ascii_uppercase()
        }
    };
    (c.is_ascii_digit() || "*#ABCD".contains(c)).then_some(c)
}

impl Engine {
    /// What a call to an application needs: the application and the caller's offer, or the
    /// status to refuse the call with.
    fn app_checks(
        &self,
        o: &Origin,
        dest: &Destination,
        req: &Request,
    ) -> Result<AppStart, (u16, &'static str)> {
        let (app, menu, group) = match dest {
            Destination::Ivr(name) => {
                let menu = self
                    .snap
                    .apps
                    .ivrs
                    .get(&(o.tenant, name.clone()))
                    .ok_or((404, "Not Found"))?;
                let app = App::Ivr {
                    name: name.clone(),
                    ivr: Box::new(Ivr::new(menu.spec.clone())),
                };
                (app, Some(name.clone()), None)
            }
            Destination::Vm(ext) => {
                let e = self
                    .snap
                    .extensions
                    .get(&(o.tenant, ext.clone()))
                    .ok_or((404, "Not Found"))?;
                let app = App::Vm(Box::new(crate::vm::VmLeave::new(
                    e.number.clone(),
                    crate::vm::VmReason::Unavailable,
                )));
                (app, None, None)
            }
            Destination::VmOwn | Destination::VmMain => {
                // The own box needs a calling extension; trunk callers use the main number.
                let own = self
                    .snap
                    .extensions
                    .get(&(o.tenant, o.caller.clone()))
                    .filter(|_| o.route.direction != crate::db::Direction::Inbound)
                    .map(|e| {
                        let skip = self.vm_box(o.tenant, &e.number).spec.skip_pin_own_phone;
                        (e.number.as_str(), skip)
                    });
                let lang = self
                    .origin_language(o)
                    .parse()
                    .unwrap_or(apps::prompt::Lang::En);
                let s =
                    crate::vm_menu::VmSession::new(dest, own, lang).ok_or((403, "Forbidden"))?;
                (App::VmMenu(Box::new(s)), None, None)
            }
            Destination::Conf(number) => {
                let room = self
                    .snap
                    .apps
                    .confs
                    .get(&(o.tenant, number.clone()))
                    .ok_or((404, "Not Found"))?;
                let seat = crate::conf::Seat::new(o.tenant, number, room.clone());
                let bridge = seat.bridge;
                (App::Conf(Box::new(seat)), None, Some(bridge))
            }
            _ => return Err((503, "Destination Not Available")),
        };
        // Late offer (an INVITE without SDP) is not supported for applications.
        let offer = sdp::summarize(&req.body).map_err(|_| (488, "SDP offer required"))?;
        if sdp_local::choose(&offer).is_none() {
            return Err((488, "Not Acceptable Here"));
        }
        Ok((app, menu, group.unwrap_or(0), offer))
    }

    /// A call to a voice application: answer it on an endpoint and start the application.
    pub(crate) fn start_app(&mut self, entry: Entry, o: Origin, dest: Destination, now: Now) {
        let checked = self.app_checks(&o, &dest, &entry.1);
        self.launch_app(entry, o, checked, &dest.to_string(), now);
    }

    /// Answers the caller with prompts, then hangs up (feature codes).
    pub(crate) fn start_announce(
        &mut self,
        entry: Entry,
        o: Origin,
        prompts: Vec<String>,
        now: Now,
    ) {
        let checked = sdp::summarize(&entry.1.body)
            .map_err(|_| (488, "SDP offer required"))
            .and_then(|offer| match sdp_local::choose(&offer) {
                Some(_) => Ok((App::Announce(prompts), None, 0, offer)),
                None => Err((488, "Not Acceptable Here")),
            });
        self.launch_app(entry, o, checked, "announcement", now);
    }

    /// Answers the caller into the prompt recorder (`record_prompt`).
    pub(crate) fn start_prompt_rec(
        &mut self,
        entry: Entry,
        o: Origin,
        session: crate::prompt_rec::PromptRecSession,
        now: Now,
    ) {
        let checked = sdp::summarize(&entry.1.body)
            .map_err(|_| (488, "SDP offer required"))
            .and_then(|offer| match sdp_local::choose(&offer) {
                Some(_) => Ok((App::PromptRec(Box::new(session)), None, 0, offer)),
                None => Err((488, "Not Acceptable Here")),
            });
        self.launch_app(entry, o, checked, "record-prompt", now);
    }

    /// Answers the caller on an endpoint into `app` (opened in placement `group`, 0: by
    /// call); returns the new call's id, `None` when the call was refused (no usable offer).
    pub(crate) fn start_with_app(
        &mut self,
        entry: Entry,
        o: Origin,
        app: App,
        group: u64,
        dest: &str,
        now: Now,
    ) -> Option<u64> {
        let checked = sdp::summarize(&entry.1.body)
            .map_err(|_| (488, "SDP offer required"))
            .and_then(|offer| match sdp_local::choose(&offer) {
                Some(_) => Ok((app, None, group, offer)),
                None => Err((488, "Not Acceptable Here")),
            });
        let ok = checked.is_ok();
        let call_id = o.call_id.clone();
        self.launch_app(entry, o, checked, dest, now);
        if !ok {
            return None;
        }
        self.b2bua.by_call_id.get(&call_id).map(|(id, _)| *id)
    }

    /// Starts a checked application on a new call (or refuses the call).
    pub(crate) fn launch_app(
        &mut self,
        entry: Entry,
        o: Origin,
        checked: Result<AppStart, (u16, &'static str)>,
        dest: &str,
        now: Now,
    ) {
        let (txn, req, source, local, transport) = entry;
        let (app, menu, group, offer) = match checked {
            Ok(x) => x,
            Err((status, reason)) => {
                return self.refuse_call(
                    txn,
                    &req,
                    source,
                    &o,
                    status,
                    reason,
                    Disposition::Failed,
                    now,
                );
            }
        };
        let lang = self.origin_language(&o);
        let id = self.b2bua.next_call_id();
        let a_tag = self.new_tag();
        let a_leg = Leg::caller(o.call_id.clone(), txn, (source, local, transport), a_tag);
        let call_id = o.call_id.clone();
        let mut call = Box::new(Call::new(
            id,
            o,
            a_leg,
            Vec::new(),
            now,
            self.snap.settings.no_answer,
        ));
        let ep = self.b2bua.new_endpoint(id);
        call.anchor = Some(Box::new(Anchor {
            invite: req.clone(),
            offer,
            a: Ep::new(ep, local.ip()),
            b: Vec::new(),
            winner: None,
            app: Some(app),
            menu,
            connecting: false,
            targets: None,
            play_id: 0,
            after_play: None,
            sdp_version: 1,
            lang,
            deadline: None,
            held_by: None,
            defer_answer: false,
            sent_ringing: false,
            reinvite: None,
            diverted: None,
        }));
        info!(call = id, %call_id, caller = %call.caller, destination = %dest, "call to an application");
        self.respond(txn, Response::for_request(&req, 100, None), now);
        self.b2bua.insert(call);
        self.media(MediaCommand::OpenEndpoint {
            endpoint: ep,
            call_id,
            ip: local.ip(),
            // A room's members share a worker (they mix without locks); others go by call.
            group: if group != 0 { group } else { id },
        });
    }

    /// News from a terminating endpoint.
    pub(crate) fn on_endpoint_event(&mut self, ev: MediaEvent, now: Now) {
        let Some(ep) = ev.endpoint() else {
            return;
        };
        if let MediaEvent::RecordDone {
            id,
            path,
            duration_ms,
            reason,
            ..
        } = &ev
        {
            // A message is indexed even when its caller has hung up meanwhile.
            self.vm_recorded(*id, path, *duration_ms, reason);
            // A prompt recording whose caller hung up is removed.
            self.prompt_rec_orphan_recorded(*id);
        }
        let Some(id) = self.b2bua.by_endpoint.get(&ep).copied() else {
            if let MediaEvent::EndpointOpened { endpoint, .. } = ev {
                // The call ended meanwhile.
                self.media(MediaCommand::CloseEndpoint { endpoint });
            }
            return;
        };
        match ev {
            MediaEvent::EndpointOpened { local, .. } => self.ep_opened(id, ep, Ok(local), now),
            MediaEvent::EndpointFailed { reason, .. } => {
                warn!(call = id, %reason, "media endpoint not opened");
                self.ep_opened(id, ep, Err(()), now)
            }
            MediaEvent::Dtmf { digit, .. } => self.app_digit(id, ep, digit, now),
            MediaEvent::DtmfInband { digit, .. } => self.inband_digit(id, ep, digit, now),
            MediaEvent::PlayDone { id: play, .. } => self.play_done(id, ep, play, now),
            MediaEvent::RecordDone {
                path,
                duration_ms,
                reason,
                ..
            } => self.vm_record_done(id, &path, duration_ms, &reason, now),
            MediaEvent::EndpointTimeout { .. } => {
                warn!(call = id, "media stopped: hanging up");
                self.anchored_hangup(id, "media timeout", now);
            }
            _ => {}
        }
    }

    fn ep_opened(&mut self, id: u64, ep: EndpointId, r: Result<SocketAddr, ()>, now: Now) {
        if self.live_moh_opened(id, ep, r)
            || self.park_resume_opened(id, ep, r, now)
            || self.xfer_app_opened(id, ep, r, now)
            || self.anchored_join_opened(id, ep, r, now)
        {
            return;
        }
        if self
            .b2bua
            .get(id)
            .is_some_and(|c| c.moh.as_ref().is_some_and(|m| m.endpoint == ep))
        {
            return self.moh_opened(id, r, now);
        }
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        let is_a = anchor.a.id == ep;
        if let Some(e) = anchor.ep_mut(ep) {
            match r {
                Ok(l) => e.local = Some(l),
                Err(()) => e.failed = true,
            }
        }
        if is_a && anchor.defer_answer {
            if anchor.a.failed {
                warn!(call = id, "no media ports for transcoding");
                self.anchored_hangup(id, "no media ports", now);
            }
        } else if is_a {
            self.answer_caller(id, now);
        } else if anchor.b.iter().all(|e| e.local.is_some() || e.failed) {
            self.send_anchored_forks(id, now);
        }
    }

    /// The caller's endpoint is open: answer the caller with it and start the application.
    fn answer_caller(&mut self, id: u64, now: Now) {
        if !self.answer_a_leg(id, now) {
            return;
        }
        let is_conf = match self
            .b2bua
            .get_mut(id)
            .and_then(|c| c.anchor.as_deref_mut())
            .and_then(|a| a.app.as_mut())
        {
            Some(App::Ivr { ivr, .. }) => {
                ivr.start(now.mono);
                false
            }
            Some(App::Conf(_)) => true,
            Some(App::Vm(_)) => return self.vm_start(id, now),
            Some(App::VmMenu(_)) => return self.vm_menu_start(id, now),
            Some(App::Announce(_)) => return self.announce_start(id, now),
            Some(App::PromptRec(_)) => return self.prompt_rec_start(id, now),
            Some(App::Park) => return self.park_answered(id, now),
            Some(App::ParkRetrieve) => return self.park_retriever_answered(id, now),
            Some(App::Page(_)) => return self.page_start(id, now),
            None => false,
        };
        if is_conf {
            return self.conf_start(id, now);
        }
        self.run_app(id, now);
    }

    /// Answers the caller with its endpoint's SDP; false when it could not be answered (the
    /// call is then ended).
    fn answer_a_leg(&mut self, id: u64, now: Now) -> bool {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let a_txn = call.legs[A_LEG].txn;
        let a_tag = call.legs[A_LEG].tag.clone();
        let a_local = call.legs[A_LEG].local;
        let a_transport = call.legs[A_LEG].target.transport;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return false;
        };
        let Some(ep_local) = anchor.a.local else {
            let r = Response::for_request(&anchor.invite, 503, Some("No media ports"));
            self.respond(a_txn, r, now);
            let ending = Ending {
                disposition: Disposition::Failed,
                hangup_by: HangupBy::System,
                cause: "no media ports".into(),
            };
            self.finish_call(id, ending, None, now);
            return false;
        };
        let Some((codec, te)) = sdp_local::choose(&anchor.offer) else {
            return false;
        };
        anchor.a.codec = Some((codec.clone(), te));
        anchor.a.remote = anchor.offer.rtp.map(|r| (r, anchor.offer.rtcp));
        let addr = SocketAddr::new(nathelper::advertised_ip(adv, a_local), ep_local.port());
        let dir = sdp_local::answer_direction(anchor.offer.direction);
        let body = sdp_local::answer(addr, &codec, te, dir, anchor.sdp_version);
        let mut ok = Response::for_request(&anchor.invite, 200, None).with_to_tag(&a_tag);
        let contact = nathelper::contact_uri(adv, None, a_local, a_transport);
        ok.headers.push(HeaderName::Contact, format!("<{contact}>"));
        ok.headers.push(HeaderName::Allow, ALLOW);
        ok.set_body(&MediaType::sdp(), Bytes::from(body));
        match Dialog::uas(&anchor.invite, &ok) {
            Ok(d) => call.legs[A_LEG].dialog = Some(d),
            Err(e) => warn!(call = id, error = %e, "caller dialog not created"),
        }
        let cmd = MediaCommand::ConfigureEndpoint {
            endpoint: anchor.a.id,
            rtp: anchor.offer.rtp,
            rtcp: anchor.offer.rtcp,
            codec: codec.clone(),
            telephone_event: te,
            ptime: 20,
        };
        call.state = CallState::Up;
        call.answer = Some(now.wall);
        call.codec = codec.name.clone();
        info!(call = id, codec = %codec.name, "caller answered on a media endpoint");
        self.media(cmd);
        self.respond(a_txn, ok, now);
        self.live_call_save(id, now);
        true
    }

    /// Carries out what the application asked for.
    fn run_app(&mut self, id: u64, now: Now) {
        loop {
            let Some(call) = self.b2bua.get_mut(id) else {
                return;
            };
            let tenant = call.tenant_id;
            let Some(anchor) = call.anchor.as_deref_mut() else {
                return;
            };
            let Some(App::Ivr { ivr, name }) = anchor.app.as_mut() else {
                return;
            };
            let menu = name.clone();
            let Some(action) = ivr.poll_action() else {
                let deadline = ivr.deadline();
                if deadline != anchor.deadline {
                    anchor.deadline = deadline;
                    if let Some(d) = deadline {
                        self.app_timers.insert((d, id));
                    }
                }
                return;
            };
            match action {
                Action::Play(sounds) => {
                    let lang = anchor.lang.clone();
                    let items = sounds
                        .into_iter()
                        .map(|s| match s {
                            Sound::Prompt(p) => PlayItem::Prompt {
                                id: p,
                                tenant,
                                lang: lang.clone(),
                            },
                            Sound::Silence(ms) => PlayItem::Silence { ms },
                        })
                        .collect();
                    self.play(id, items, true, false);
                }
                Action::StopPlay => {
                    let ep = anchor.a.id;
                    self.media(MediaCommand::StopPlay { endpoint: ep });
                }
                Action::Goto(dest) => {
                    debug!(call = id, %menu, destination = %dest, "menu choice");
                    anchor.app = None;
                    anchor.deadline = None;
                    self.ivr_goto(id, &dest, now);
                    return;
                }
            }
        }
    }

    /// Plays `items` to the caller; returns the playback id.
    fn play(&mut self, id: u64, items: Vec<PlayItem>, stop_on_dtmf: bool, repeat: bool) {
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        anchor.play_id += 1;
        let cmd = MediaCommand::Play {
            endpoint: anchor.a.id,
            id: anchor.play_id,
            items,
            stop_on_dtmf,
            repeat,
        };
        self.media(cmd);
    }

    /// The application handed the caller to `dest`.
    pub(crate) fn app_goto(&mut self, id: u64, dest: &str, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let source = call.legs[A_LEG].target.destination;
        let parsed: Result<Destination, _> = dest.parse();
        info!(call = id, destination = %dest, "application transfers the call");
        match parsed {
            Ok(Destination::Hangup) => self.anchored_hangup(id, "application hung up", now),
            Ok(tc @ Destination::Timecond(_)) => {
                match crate::timecond::route_to(tenant, tc, String::new(), now.wall, &self.snap) {
                    crate::dialplan::Decision::Route { destination, .. } => {
                        self.app_goto(id, &destination.to_string(), now)
                    }
                    crate::dialplan::Decision::Reject { status: 603, .. } => {
                        self.anchored_hangup(id, "application hung up", now)
                    }
                    _ => self.unavailable(id, now),
                }
            }
            Ok(Destination::Vm(ext)) => {
                self.goto_voicemail(id, ext, crate::vm::VmReason::Unavailable, now)
            }
            Ok(Destination::Conf(number)) => {
                // A menu option into a room: the caller's endpoint moves to the room's seat
                // (placement may differ from the room's other members: counted, still mixed
                // where the engine can).
                let Some(room) = self.snap.apps.confs.get(&(tenant, number.clone())) else {
                    return self.unavailable(id, now);
                };
                let seat = crate::conf::Seat::new(tenant, &number, room.clone());
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.app = Some(App::Conf(Box::new(seat)));
                }
                self.conf_start(id, now);
            }
            Ok(Destination::Ivr(name)) => {
                let Some(menu) = self.snap.apps.ivrs.get(&(tenant, name.clone())) else {
                    warn!(call = id, menu = %name, "IVR menu not found");
                    return self.unavailable(id, now);
                };
                let mut ivr = Box::new(Ivr::new(menu.spec.clone()));
                ivr.start(now.mono);
                if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                    a.app = Some(App::Ivr {
                        name: name.clone(),
                        ivr,
                    });
                    a.menu = Some(name);
                }
                self.run_app(id, now);
            }
            Ok(Destination::Ext(number)) => {
                let Some(e) = self.snap.extensions.get(&(tenant, number.clone())) else {
                    return self.unavailable(id, now);
                };
                if !e.enabled {
                    return self.unavailable(id, now);
                }
                let bindings: Vec<Binding> = self
                    .usrloc
                    .get(e.id)
                    .iter()
                    .filter(|b| b.expires_at > now.wall && b.received != source)
                    .cloned()
                    .collect();
                if bindings.is_empty() {
                    return self.unavailable(id, now);
                }
                if let Some(call) = self.b2bua.get_mut(id) {
                    call.callee = number;
                }
                self.connect(id, bindings, now);
            }
            Ok(other) => self.goto_more(id, other, now),
            Err(e) => {
                warn!(call = id, error = %e, "application chose an invalid destination");
                self.unavailable(id, now);
            }
        }
    }

    /// Hands an answered (anchored) call to `ext`'s mailbox: the greeting for `reason` plays,
    /// then the message is recorded. What forwarding on busy / no answer calls.
    pub(crate) fn goto_voicemail(
        &mut self,
        id: u64,
        ext: String,
        reason: crate::vm::VmReason,
        now: Now,
    ) {
        let Some(tenant) = self.b2bua.get(id).map(|c| c.tenant_id) else {
            return;
        };
        if !self.snap.extensions.contains_key(&(tenant, ext.clone())) {
            return self.unavailable(id, now);
        }
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.app = Some(App::Vm(Box::new(crate::vm::VmLeave::new(ext, reason))));
        }
        self.vm_start(id, now);
    }

    /// The destination cannot be reached: say so, then back to the menu (or hang up).
    pub(crate) fn unavailable(&mut self, id: u64, now: Now) {
        if self.goto_step_failed(id, now) {
            return;
        }
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        anchor.connecting = false;
        anchor.after_play = Some(if anchor.menu.is_some() {
            AfterPlay::Menu
        } else {
            AfterPlay::Hangup
        });
        let lang = anchor.lang.clone();
        let items = vec![PlayItem::Prompt {
            id: UNAVAILABLE_PROMPT.into(),
            tenant,
            lang,
        }];
        let _ = now;
        self.play(id, items, false, false);
    }

    /// Rings `bindings` from endpoints of their own, with ringback to the caller.
    fn connect(&mut self, id: u64, bindings: Vec<Binding>, now: Now) {
        let no_answer = self.snap.settings.no_answer;
        let mut opens = Vec::new();
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        call.no_answer_at = now.mono + no_answer;
        let call_id = call.legs[A_LEG].call_id.clone();
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        anchor.connecting = true;
        let mut segments: Vec<IpAddr> = Vec::new();
        for b in &bindings {
            if !segments.contains(&b.local.ip()) {
                segments.push(b.local.ip());
            }
        }
        anchor.targets = Some(bindings);
        for ip in segments {
            opens.push(ip);
        }
        for ip in opens {
            let ep = self.b2bua.new_endpoint(id);
            if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
                a.b.push(Ep::new(ep, ip));
            }
            self.media(MediaCommand::OpenEndpoint {
                endpoint: ep,
                call_id: call_id.clone(),
                ip,
                group: id,
            });
        }
        let deferred = self
            .b2bua
            .get(id)
            .and_then(|c| c.anchor.as_deref())
            .is_some_and(|a| a.defer_answer);
        if !deferred {
            let ringback = self.progress_tone(id, ToneKind::Ringback);
            self.play(id, vec![ringback], false, true);
        }
    }

    /// The callee endpoints are open: send the forks with our own offer.
    fn send_anchored_forks(&mut self, id: u64, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let who = (
            call.caller.clone(),
            call.caller_name.clone(),
            call.callee.clone(),
        );
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let Some(targets) = anchor.targets.take() else {
            self.anchored_trunk_leg(id, now);
            return;
        };
        let mf = anchor.invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let first = anchor.a.codec.as_ref().map(|(c, _)| c.name.clone());
        anchor.sdp_version += 1;
        let version = anchor.sdp_version;
        let eps: Vec<(IpAddr, SocketAddr)> = anchor
            .b
            .iter()
            .filter_map(|e| e.local.map(|l| (e.ip, l)))
            .collect();
        let mut legs = Vec::new();
        for b in &targets {
            let Some((_, l)) = eps.iter().find(|(ip, _)| *ip == b.local.ip()) else {
                continue;
            };
            let addr = SocketAddr::new(nathelper::advertised_ip(adv, b.local), l.port());
            let body = sdp_local::offer(addr, first.as_deref(), version);
            let w = (who.0.as_str(), who.1.as_str(), who.2.as_str());
            if let Some(leg) = self.send_fork(id, b, w, mf, body, now) {
                legs.push(leg);
            }
        }
        if legs.is_empty() {
            self.close_b_endpoints(id, None);
            return self.unavailable(id, now);
        }
        if let Some(call) = self.b2bua.calls.get_mut(&id) {
            let first = call.legs.len();
            for (i, l) in legs.into_iter().enumerate() {
                self.b2bua
                    .by_call_id
                    .insert(l.call_id.clone(), (id, first + i));
                call.legs.push(l);
            }
        }
    }

    /// Closes the callee-side endpoints except `keep`.
    fn close_b_endpoints(&mut self, id: u64, keep: Option<EndpointId>) {
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        let gone: Vec<EndpointId> = anchor
            .b
            .iter()
            .filter(|e| Some(e.id) != keep)
            .map(|e| e.id)
            .collect();
        anchor.b.retain(|e| Some(e.id) == keep);
        for ep in gone {
            self.b2bua.by_endpoint.remove(&ep);
            self.media(MediaCommand::CloseEndpoint { endpoint: ep });
        }
    }

    /// A fork of an anchored call answered (its dialog is set up and ACKed): join it.
    pub(crate) fn anchored_answered(&mut self, id: u64, i: LegIdx, resp: &Response, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let leg_ip = call.legs[i].local.ip();
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let Some(ep) = anchor.b.iter_mut().find(|e| e.ip == leg_ip) else {
            return;
        };
        let answer = sdp::summarize(&resp.body).ok();
        let chosen = answer.as_ref().and_then(sdp_local::choose);
        let Some((codec, te)) = chosen else {
            warn!(call = id, "callee answered without a codec we speak");
            return self.anchored_hangup(id, "no common codec", now);
        };
        let (rtp, rtcp) = answer
            .as_ref()
            .map(|s| (s.rtp, s.rtcp))
            .unwrap_or((None, None));
        ep.codec = Some((codec.clone(), te));
        ep.remote = rtp.map(|r| (r, rtcp));
        let b_ep = ep.id;
        let a_ep = anchor.a.id;
        anchor.winner = Some((i, b_ep));
        anchor.connecting = false;
        let a_codec = anchor
            .a
            .codec
            .as_ref()
            .map(|(c, _)| c.name.clone())
            .unwrap_or_default();
        call.codec = if a_codec == codec.name {
            codec.name.clone()
        } else {
            format!("{a_codec}/{}", codec.name)
        };
        info!(call = id, codec = %call.codec, contact = %call.legs[i].target.destination, "call answered (bridged)");
        let others: Vec<TransactionId> = call
            .legs
            .iter()
            .enumerate()
            .filter(|(j, l)| *j != i && l.side == Side::B && l.final_status.is_none())
            .map(|(_, l)| l.txn)
            .collect();
        let b_codec = codec.name.clone();
        self.media(MediaCommand::ConfigureEndpoint {
            endpoint: b_ep,
            rtp,
            rtcp,
            codec,
            telephone_event: te,
            ptime: 20,
        });
        // An Opus leg bridged to a narrowband one gains nothing from 48 kHz: cap it at 8 kHz.
        let narrow = |n: &str| n.eq_ignore_ascii_case("PCMU") || n.eq_ignore_ascii_case("PCMA");
        let opus = |n: &str| n.eq_ignore_ascii_case("opus");
        let cap = match (a_codec.as_str(), b_codec.as_str()) {
            (a, b) if opus(a) && narrow(b) => Some(a_ep),
            (a, b) if narrow(a) && opus(b) => Some(b_ep),
            _ => None,
        };
        self.media(MediaCommand::StopPlay { endpoint: a_ep });
        self.media(MediaCommand::Join {
            endpoint: a_ep,
            bridge: id,
        });
        self.media(MediaCommand::Join {
            endpoint: b_ep,
            bridge: id,
        });
        self.rec_anchored_answered(id, a_ep, b_ep, now);
        self.close_b_endpoints(id, Some(b_ep));
        for t in others {
            let _ = self.layer.cancel(t, now.mono);
        }
        let deferred = self
            .b2bua
            .get(id)
            .and_then(|c| c.anchor.as_deref())
            .is_some_and(|a| a.defer_answer);
        if deferred && self.answer_a_leg(id, now) {
            let Some(call) = self.b2bua.get_mut(id) else {
                return;
            };
            if let Some(a) = call.anchor.as_deref_mut() {
                a.defer_answer = false;
                let b =
                    a.b.first()
                        .and_then(|e| e.codec.as_ref())
                        .map(|(c, _)| c.name.clone())
                        .unwrap_or_default();
                let first =
                    a.a.codec
                        .as_ref()
                        .map(|(c, _)| c.name.clone())
                        .unwrap_or_default();
                call.codec = if first == b {
                    first
                } else {
                    format!("{first}/{b}")
                };
            }
            info!(call = id, codec = %call.codec, "call answered (transcoded)");
        }
        // After every codec is set (a deferred caller's just above).
        if let Some(endpoint) = cap {
            self.media(MediaCommand::LimitRate {
                endpoint,
                hz: Some(8000),
            });
        }
        self.park_callback_answered(id, now);
        self.goto_answered(id, i, now);
    }

    /// Every fork of an anchored call failed: tell the caller and go back to the menu.
    /// True when the call is anchored (and so handled here).
    pub(crate) fn anchored_forks_failed(&mut self, id: u64, now: Now) -> bool {
        let Some(call) = self.b2bua.get(id) else {
            return false;
        };
        let Some(anchor) = call.anchor.as_deref() else {
            return false;
        };
        if !anchor.connecting
            || anchor.winner.is_some()
            || anchor.targets.is_some()
            || call
                .legs
                .iter()
                .any(|l| l.side == Side::B && l.final_status.is_none())
        {
            return true;
        }
        info!(call = id, callee = %call.callee, "no fork answered");
        if anchor.defer_answer {
            let statuses: Vec<u16> = call.legs.iter().filter_map(|l| l.final_status).collect();
            let (status, ending) = crate::b2bua::fork_failure(&statuses, false);
            self.finish_call(id, ending, Some(status), now);
            return true;
        }
        self.close_b_endpoints(id, None);
        self.anchored_outside_done(id);
        if self.park_fallback(id, now) {
            return true;
        }
        self.unavailable(id, now);
        true
    }

    /// A direct call whose every fork refused the caller's codecs (488/415/606): try again with
    /// media terminated here, the caller's codec on its side and any codec we speak on the
    /// callee's. True when the call was converted (its forks go out again).
    pub(crate) fn try_transcode(&mut self, id: u64, bindings: Vec<Binding>, now: Now) -> bool {
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let forks: Vec<u16> = call
            .legs
            .iter()
            .filter(|l| l.side == Side::B)
            .filter_map(|l| l.final_status)
            .collect();
        if call.anchor.is_some()
            || call.outside.is_some()
            || bindings.is_empty()
            || forks.is_empty()
            || !forks.iter().all(|s| matches!(s, 415 | 488 | 606))
        {
            return false;
        }
        let a_txn = call.legs[A_LEG].txn;
        let a_ip = call.legs[A_LEG].local.ip();
        let Some(invite) = self.layer.request(a_txn).cloned() else {
            return false;
        };
        let Ok(offer) = sdp::summarize(&invite.body) else {
            return false;
        };
        let Some(chosen) = sdp_local::choose(&offer) else {
            return false;
        };
        info!(
            call = id,
            "no codec in common: the call is decoded and re-encoded here"
        );
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let gone: Vec<String> = call.legs.drain(1..).map(|l| l.call_id).collect();
        let sessions: Vec<(crate::media::SessionId, bool)> = call
            .media
            .drain(..)
            .map(|m| (m.id, m.ports.is_some()))
            .collect();
        let call_id = call.legs[A_LEG].call_id.clone();
        let (tenant, caller, direction) =
            (call.tenant_id, call.caller.clone(), call.route.direction);
        for c in gone {
            self.b2bua.by_call_id.remove(&c);
        }
        for (sid, open) in sessions {
            self.b2bua.forget_session(sid);
            if open {
                self.media(MediaCommand::Close { session: sid });
            }
        }
        let ep = self.b2bua.new_endpoint(id);
        let mut a = Ep::new(ep, a_ip);
        a.codec = Some(chosen);
        a.remote = offer.rtp.map(|r| (r, offer.rtcp));
        let anchor = Anchor {
            invite,
            offer,
            a,
            b: Vec::new(),
            winner: None,
            app: None,
            menu: None,
            connecting: false,
            targets: None,
            play_id: 0,
            after_play: None,
            sdp_version: 1,
            lang: self.caller_language(tenant, &caller, direction),
            deadline: None,
            held_by: None,
            defer_answer: true,
            sent_ringing: false,
            reinvite: None,
            diverted: None,
        };
        if let Some(call) = self.b2bua.get_mut(id) {
            call.anchor = Some(Box::new(anchor));
        }
        self.media(MediaCommand::OpenEndpoint {
            endpoint: ep,
            call_id,
            ip: a_ip,
            group: id,
        });
        self.connect(id, bindings, now);
        true
    }

    /// A callee's fork of a deferred (transcoded) call rings: the caller hears it (one 180).
    pub(crate) fn anchored_ringing(&mut self, id: u64, now: Now) {
        let adv = self.cfg.advertise;
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let a = &call.legs[A_LEG];
        let (a_txn, a_tag, a_local, a_transport) =
            (a.txn, a.tag.clone(), a.local, a.target.transport);
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        if !anchor.defer_answer || anchor.sent_ringing {
            return;
        }
        anchor.sent_ringing = true;
        let mut r = Response::for_request(&anchor.invite, 180, None).with_to_tag(&a_tag);
        let contact = nathelper::contact_uri(adv, None, a_local, a_transport);
        r.headers.push(HeaderName::Contact, format!("<{contact}>"));
        self.respond(a_txn, r, now);
    }

    /// An anchored call rang too long.
    pub(crate) fn anchored_no_answer(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let pending: Vec<TransactionId> = call
            .legs
            .iter_mut()
            .filter(|l| l.side == Side::B && l.final_status.is_none())
            .map(|l| {
                l.final_status = Some(408);
                l.txn
            })
            .collect();
        for t in pending {
            let _ = self.layer.cancel(t, now.mono);
        }
        self.anchored_forks_failed(id, now);
    }

    fn app_digit(&mut self, id: u64, ep: EndpointId, digit: char, now: Now) {
        self.rec_endpoint_digit(id, ep, digit, now);
        if self.dtmf_across_bridge(id, ep, digit) {
            return;
        }
        let snap = &self.snap;
        let Some(call) = self.b2bua.calls.get_mut(&id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        if anchor.a.id != ep {
            return;
        }
        if matches!(anchor.app, Some(App::Conf(_))) {
            return self.conf_digit(id, digit, now);
        }
        if matches!(anchor.app, Some(App::VmMenu(_))) {
            return self.vm_menu_digit(id, digit, now);
        }
        if matches!(anchor.app, Some(App::PromptRec(_))) {
            return self.prompt_rec_digit(id, digit, now);
        }
        let Some(App::Ivr { ivr, .. }) = anchor.app.as_mut() else {
            return;
        };
        debug!(call = id, %digit, "digit");
        let directory = |d: &str| ext_match(snap, tenant, d);
        ivr.on_digit(digit, now.mono, &directory);
        self.run_app(id, now);
    }

    fn play_done(&mut self, id: u64, ep: EndpointId, play: u64, now: Now) {
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        if anchor.a.id != ep || anchor.play_id != play {
            return;
        }
        match anchor.after_play.take() {
            Some(AfterPlay::Hangup) => return self.anchored_hangup(id, "unavailable", now),
            Some(AfterPlay::Menu) => {
                if let Some(menu) = anchor.menu.clone() {
                    return self.app_goto(id, &format!("ivr:{menu}"), now);
                }
                return self.anchored_hangup(id, "unavailable", now);
            }
            None => {}
        }
        if matches!(anchor.app, Some(App::Vm(_))) {
            return self.vm_play_done(id, now);
        }
        if matches!(anchor.app, Some(App::VmMenu(_))) {
            return self.vm_menu_play_done(id, now);
        }
        if matches!(anchor.app, Some(App::PromptRec(_))) {
            return self.prompt_rec_play_done(id, now);
        }
        if matches!(anchor.app, Some(App::Park)) {
            return self.park_play_done(id);
        }
        if matches!(anchor.app, Some(App::Conf(_))) {
            return self.conf_play_done(id, now);
        }
        if let Some(App::Ivr { ivr, .. }) = anchor.app.as_mut() {
            ivr.on_play_done(now.mono);
            self.run_app(id, now);
        }
    }

    /// Application timers that fell due.
    pub(crate) fn app_timeouts(&mut self, now: Now) {
        while let Some(&(at, id)) = self.app_timers.first() {
            if at > now.mono {
                break;
            }
            self.app_timers.pop_first();
            let snap = &self.snap;
            let Some(call) = self.b2bua.calls.get_mut(&id) else {
                continue;
            };
            let tenant = call.tenant_id;
            let Some(anchor) = call.anchor.as_deref_mut() else {
                continue;
            };
            if anchor.deadline != Some(at) {
                continue; // re-armed or cleared since
            }
            anchor.deadline = None;
            if matches!(anchor.app, Some(App::Conf(_))) {
                self.conf_timeout(id, now);
                continue;
            }
            if matches!(anchor.app, Some(App::VmMenu(_))) {
                self.vm_menu_timeout(id, now);
                continue;
            }
            if matches!(anchor.app, Some(App::PromptRec(_))) {
                self.prompt_rec_timeout(id, now);
                continue;
            }
            if matches!(anchor.app, Some(App::Park)) {
                self.park_timeout(id, now);
                continue;
            }
            let Some(App::Ivr { ivr, .. }) = anchor.app.as_mut() else {
                continue;
            };
            let directory = |d: &str| ext_match(snap, tenant, d);
            ivr.on_timeout(now.mono, &directory);
            self.run_app(id, now);
        }
    }

    /// Ends an anchored call from our side: BYE whoever is connected, CANCEL pending forks.
    pub(crate) fn anchored_hangup(&mut self, id: u64, reason: &str, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let answered = call.legs[A_LEG].dialog.is_some();
        let winner = call.anchor.as_deref().and_then(Anchor::winner_leg);
        let pending: Vec<TransactionId> = call
            .legs
            .iter()
            .filter(|l| l.side == Side::B && l.final_status.is_none())
            .map(|l| l.txn)
            .collect();
        for t in pending {
            let _ = self.layer.cancel(t, now.mono);
        }
        if let Some(w) = winner {
            self.bye_leg(id, w, now);
        }
        let ending = Ending {
            disposition: if answered {
                Disposition::Answered
            } else {
                Disposition::Failed
            },
            hangup_by: HangupBy::System,
            cause: reason.to_string(),
        };
        if answered {
            self.bye_leg(id, A_LEG, now);
            self.finish_call(id, ending, None, now);
        } else {
            self.finish_call(id, ending, Some(480), now);
        }
    }

    /// An in-dialog request on an anchored call, from the caller or the answered callee (its
    /// dialog already checked): answered here.
    pub(crate) fn anchored_in_dialog(
        &mut self,
        id: u64,
        leg: LegIdx,
        txn: TransactionId,
        req: Request,
        source: SocketAddr,
        now: Now,
    ) {
        let adv = self.cfg.advertise;
        let hold_music = self.hold_music(self.b2bua.get(id).map_or(1, |c| c.tenant_id));
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let Some(anchor) = call.anchor.as_deref() else {
            return;
        };
        let winner = anchor.winner_leg();
        let peer = if leg == A_LEG { winner } else { Some(A_LEG) };
        match req.method {
            Method::Bye => {
                let by = if leg == A_LEG {
                    HangupBy::Caller
                } else {
                    HangupBy::Callee
                };
                info!(call = id, peer = %source, by = ?by, "hang-up");
                if let Some(p) = peer {
                    self.bye_leg(id, p, now);
                }
                let pending: Vec<TransactionId> = self
                    .b2bua
                    .get(id)
                    .map(|c| {
                        c.legs
                            .iter()
                            .filter(|l| l.side == Side::B && l.final_status.is_none())
                            .map(|l| l.txn)
                            .collect()
                    })
                    .unwrap_or_default();
                for t in pending {
                    let _ = self.layer.cancel(t, now.mono);
                }
                let ok = Response::for_request(&req, 200, None);
                let ending = Ending {
                    disposition: Disposition::Answered,
                    hangup_by: by,
                    cause: "BYE".into(),
                };
                self.finish_with(id, ending, Some((txn, ok)), now);
            }
            Method::Invite | Method::Update => {
                let (l_local, l_transport) =
                    (call.legs[leg].local, call.legs[leg].target.transport);
                let Some(anchor) = call.anchor.as_deref_mut() else {
                    return;
                };
                let Some(ep) = anchor.ep_of_leg(leg).cloned() else {
                    return self.respond(txn, Response::for_request(&req, 491, None), now);
                };
                let (Some(ep_local), Some((codec, te))) = (ep.local, ep.codec.clone()) else {
                    return self.respond(txn, Response::for_request(&req, 491, None), now);
                };
                let mut dir = Direction::SendRecv;
                let mut cmds = Vec::new();
                if !req.body.is_empty() {
                    let Ok(s) = sdp::summarize(&req.body) else {
                        let r = Response::for_request(&req, 488, Some("Unusable SDP"));
                        return self.respond(txn, r, now);
                    };
                    dir = sdp_local::answer_direction(s.direction);
                    if s.rtp.is_some() && s.rtp != ep.remote.map(|r| r.0) {
                        cmds.push(MediaCommand::ConfigureEndpoint {
                            endpoint: ep.id,
                            rtp: s.rtp,
                            rtcp: s.rtcp,
                            codec: codec.clone(),
                            telephone_event: te,
                            ptime: 20,
                        });
                        if let Some(e) = anchor.ep_mut(ep.id) {
                            e.remote = s.rtp.map(|r| (r, s.rtcp));
                        }
                    }
                    let side = if leg == A_LEG { Side::A } else { Side::B };
                    let peer_ep = peer.and_then(|p| anchor.ep_of_leg(p)).map(|e| e.id);
                    if s.is_hold() && anchor.held_by.is_none() {
                        anchor.held_by = Some(side);
                        if let Some(p) = peer_ep {
                            info!(call = id, "on hold: music for the other party");
                            cmds.push(MediaCommand::Play {
                                endpoint: p,
                                id: 0,
                                items: vec![hold_music.clone()],
                                stop_on_dtmf: false,
                                repeat: true,
                            });
                        }
                    } else if !s.is_hold() && anchor.held_by == Some(side) {
                        anchor.held_by = None;
                        if let Some(p) = peer_ep {
                            info!(call = id, "resumed");
                            cmds.push(MediaCommand::StopPlay { endpoint: p });
                        }
                    }
                }
                anchor.sdp_version += 1;
                let addr = SocketAddr::new(nathelper::advertised_ip(adv, l_local), ep_local.port());
                let body = sdp_local::answer(addr, &codec, te, dir, anchor.sdp_version);
                let mut ok = Response::for_request(&req, 200, None);
                let contact = nathelper::contact_uri(adv, None, l_local, l_transport);
                ok.headers.push(HeaderName::Contact, format!("<{contact}>"));
                ok.set_body(&MediaType::sdp(), Bytes::from(body));
                for c in cmds {
                    self.media(c);
                }
                self.respond(txn, ok, now);
            }
            Method::Info => {
                let digit = info_digit(&req);
                let ep = anchor.ep_of_leg(leg).map(|e| e.id);
                self.respond(txn, Response::for_request(&req, 200, None), now);
                if let (Some(d), Some(ep)) = (digit, ep) {
                    self.info_digit(id, ep, d, now);
                } else if let (Some(d), false) = (digit, leg == A_LEG) {
                    self.rec_digit(id, Side::B, d, now);
                }
            }
            Method::Options => self.respond(txn, Response::for_request(&req, 200, None), now),
            _ => self.respond(txn, Response::for_request(&req, 501, None), now),
        }
    }
}

impl Engine {
    /// Moves an established dialog `d` (a caller's leg, reaching the phone at `target`) onto
    /// `anchor`'s caller endpoint, open already: a re-INVITE offering the endpoint's address.
    /// The answer arrives in [`Engine::anchored_reinvite_response`], which ACKs it, configures
    /// the endpoint and hands the call to its application (a parked call: hold music); no
    /// answer or a refusal ends the call. What a reloaded parked call uses after a restart
    /// ([`crate::park`]); a transfer of a relayed leg to an IVR or voicemail gives the call an
    /// anchor ([`Anchor::for_dialog`]), opens the endpoint and calls this the same way.
    /// Returns (and remembers in the anchor) the re-INVITE's transaction.
    pub(crate) fn send_endpoint_reinvite(
        &mut self,
        id: u64,
        d: &mut Dialog,
        anchor: &mut Anchor,
        target: sip::transaction::Target,
        now: Now,
    ) -> Option<TransactionId> {
        let adv = self.cfg.advertise;
        let local = target
            .local
            .or_else(|| self.local_for(target.destination))?;
        let ep_local = anchor.a.local?;
        let via = self.our_via(local, target.transport);
        let contact = self.contact_uri(None, local, target.transport);
        let mut inv = d.new_request(Method::Invite, &via);
        inv.headers
            .push(HeaderName::Contact, format!("<{contact}>"));
        inv.headers.push(HeaderName::Allow, ALLOW);
        anchor.sdp_version += 1;
        let addr = SocketAddr::new(nathelper::advertised_ip(adv, local), ep_local.port());
        let first = anchor.offer_codec();
        let body = sdp_local::offer(addr, first.as_deref(), anchor.sdp_version);
        inv.set_body(&MediaType::sdp(), Bytes::from(body));
        let t = self.send_request(inv, target, crate::Owner::Call(id), now)?;
        anchor.reinvite = Some(t);
        info!(call = id, "re-INVITE onto a media endpoint");
        Some(t)
    }

    /// Where the caller's endpoint is open (the endpoint was opened before the anchor was
    /// made).
    pub(crate) fn caller_endpoint_opened(anchor: &mut Anchor, local: SocketAddr) {
        anchor.a.local = Some(local);
    }

    /// A response to our [`Engine::send_endpoint_reinvite`] re-INVITE: ACK a 2xx, point the
    /// endpoint at the phone's media and let the application go on; a refusal ends the call.
    /// True when `txn` was that re-INVITE.
    pub(crate) fn anchored_reinvite_response(
        &mut self,
        id: u64,
        txn: TransactionId,
        resp: &Response,
        now: Now,
    ) -> bool {
        let Some(call) = self.b2bua.get_mut(id) else {
            return false;
        };
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return false;
        };
        if anchor.reinvite != Some(txn) {
            return false;
        }
        if resp.status < 200 {
            return true;
        }
        anchor.reinvite = None;
        let answer = sdp::summarize(&resp.body).ok();
        let chosen = answer.as_ref().and_then(sdp_local::choose);
        let ok = (200..300).contains(&resp.status);
        if ok {
            self.ack_reinvite(id, A_LEG, txn, resp);
        }
        let (Some(s), Some((codec, te)), true) = (answer, chosen, ok) else {
            warn!(
                call = id,
                status = resp.status,
                "re-INVITE onto our endpoint refused"
            );
            self.anchored_hangup(id, "re-INVITE refused", now);
            return true;
        };
        let Some(call) = self.b2bua.get_mut(id) else {
            return true;
        };
        call.codec = codec.name.clone();
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return true;
        };
        anchor.a.codec = Some((codec.clone(), te));
        anchor.a.remote = s.rtp.map(|r| (r, s.rtcp));
        let cmd = MediaCommand::ConfigureEndpoint {
            endpoint: anchor.a.id,
            rtp: s.rtp,
            rtcp: s.rtcp,
            codec,
            telephone_event: te,
            ptime: 20,
        };
        let park = matches!(anchor.app, Some(App::Park));
        self.media(cmd);
        if self.xfer_app_reinvited(id, now) {
            return true;
        }
        if park {
            self.park_resumed(id, now);
        }
        true
    }

    /// Our re-INVITE got no answer (the phone is gone): the call ends. True when `txn` was it.
    pub(crate) fn anchored_reinvite_failed(
        &mut self,
        id: u64,
        txn: TransactionId,
        now: Now,
    ) -> bool {
        let mine = self
            .b2bua
            .get(id)
            .and_then(|c| c.anchor.as_deref())
            .is_some_and(|a| a.reinvite == Some(txn));
        if mine {
            warn!(call = id, "re-INVITE onto our endpoint unanswered");
            self.anchored_hangup(id, "re-INVITE unanswered", now);
        }
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ct: &str, body: &str) -> Request {
        let text = format!(
            "INFO sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INFO\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sip::parse_message(text.as_bytes()) {
            Ok(sip::Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn info_digits() {
        assert_eq!(
            info_digit(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Signal= #\r\n")),
            Some('#')
        );
        assert_eq!(info_digit(&info("application/dtmf", "11")), Some('#'));
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Signal=55\r\n")),
            None
        );
        assert_eq!(info_digit(&info("text/plain", "5")), None);
    }
}
