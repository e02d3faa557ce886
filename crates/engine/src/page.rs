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

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sip::dialog::Dialog;
use sip::transaction::TransactionId;
use sip::{HeaderName, Method, Request, Response};
use tracing::{debug, info, warn};

use crate::anchor::App;
use crate::b2bua::{A_LEG, Call, Entry, Origin, Targets};
use crate::config::ExtEntry;
use crate::db::Disposition;
use crate::media::{EndpointId, MediaCommand, MediaEvent, PlayItem, ToneKind};
use crate::transfer::TransferEvent;
use crate::usrloc::Binding;
use crate::{Engine, Now, Owner, nathelper, sdp, sdp_local};

/// Which auto-answer headers an intercom (or page) INVITE carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// Do-not-disturb is on for extension `id`.
    fn ext_dnd(&self, id: i64) -> bool {
        let fwd = self.snap.apps.hunt.forwarding.get(&id);
        fwd.is_some_and(|f| f.dnd)
    }

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
        let (txn, source) = (entry.0, entry.2);
        let contacts = |e: &ExtEntry| -> Vec<Binding> {
            let live = |b: &&Binding| b.expires_at > now.wall && b.received != source;
            self.usrloc.get(e.id).iter().filter(live).cloned().collect()
        };
        let (bindings, refusal) = match &target {
            None => (Vec::new(), Some((404, "Not Found"))),
            Some(t) if !t.enabled => (Vec::new(), Some((404, "Not Found"))),
            Some(t) if t.id == caller.id => (Vec::new(), Some((403, "Intercom To Self"))),
            Some(t) if self.ext_dnd(t.id) => (Vec::new(), Some((480, "Do Not Disturb"))),
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
        let o_tenant = o.tenant;
        let segments: Vec<_> = bindings.iter().map(|b| b.local.ip()).collect();
        self.start_call(entry, o, Targets::Contacts(bindings), &segments, now);
        // The forks go out once the relay sessions are open; they read this then.
        let one_way = self.intercom_one_way(o_tenant);
        if let Some(&(id, A_LEG)) = self.b2bua.by_call_id.get(&call_id)
            && let Some(call) = self.b2bua.get_mut(id)
        {
            call.auto_answer = Some(AutoAnswer::default());
            call.one_way = one_way;
        }
    }
}

/// Members of a page group, at most.
pub const MAX_MEMBERS: usize = 64;
/// Phones one page rings, at most (members × their registered contacts).
pub const MAX_PHONES: usize = 128;
/// Pages in progress on the node, at most (more are refused with 503).
pub const MAX_PAGES: usize = 64;
/// Seconds a member's phone has to answer by itself, by default.
pub const DEFAULT_ANSWER_S: u32 = 5;
/// Longest page, by default (seconds).
pub const DEFAULT_MAX_S: u32 = 60;

/// A page group (`page:NAME`): dialling it pages every member at once, one-way. Stored as
/// a JSON document of everything but the name (which is the row's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageGroup {
    /// Name (the destination `page:NAME`).
    #[serde(skip)]
    pub name: String,
    /// Member extension numbers, in the page group's tenant.
    pub members: Vec<String>,
    /// Page members that are in a call or have DND on too (off: they are skipped).
    pub barge: bool,
    /// Seconds a phone has to answer by itself before it is cancelled.
    pub answer_s: u32,
    /// Longest page, seconds; then every party is hung up.
    pub max_s: u32,
    /// Auto-answer headers sent to the members' phones.
    pub auto_answer: AutoAnswer,
}

impl Default for PageGroup {
    fn default() -> PageGroup {
        PageGroup::new("", Vec::new())
    }
}

impl PageGroup {
    /// A group with the defaults.
    pub fn new(name: &str, members: Vec<String>) -> PageGroup {
        PageGroup {
            name: name.to_string(),
            members,
            barge: false,
            answer_s: DEFAULT_ANSWER_S,
            max_s: DEFAULT_MAX_S,
            auto_answer: AutoAnswer::default(),
        }
    }

    /// Checks the limits: the field and the reason when something is out of range.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let members = |r: String| Err(("members", r));
        if self.members.is_empty() {
            return members("a page group needs at least one member".into());
        }
        if self.members.len() > MAX_MEMBERS {
            return members(format!("at most {MAX_MEMBERS} members"));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.members {
            if m.is_empty() || m.len() > 20 || !m.chars().all(|c| c.is_ascii_digit()) {
                return members(format!("member {m:?} is not an extension number"));
            }
            if !seen.insert(m) {
                return members(format!("member {m} is listed twice"));
            }
        }
        if !(1..=60).contains(&self.answer_s) {
            return Err(("answer_s", "1-60 seconds".into()));
        }
        if !(1..=3600).contains(&self.max_s) {
            return Err(("max_s", "1-3600 seconds".into()));
        }
        Ok(())
    }
}

/// The pager's side of a page (the anchored call's application): who is paged.
#[derive(Debug)]
pub(crate) struct Pager {
    group: PageGroup,
    /// (member number, phone) to ring once the pager is answered.
    targets: Vec<(String, Binding)>,
    bridge: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// Its endpoint is opening.
    Opening,
    /// Its INVITE is out.
    Ringing,
    /// Answered, hearing the pager.
    Up,
    /// Cancelled, refused, hung up.
    Gone,
}

/// One phone of a page.
struct Member {
    number: String,
    binding: Binding,
    endpoint: EndpointId,
    call_id: String,
    txn: Option<TransactionId>,
    dialog: Option<Dialog>,
    /// The ACK of its 2xx, to resend when the 2xx is.
    ack: Option<Bytes>,
    /// Cancelled when still ringing then.
    answer_by: Instant,
    state: MemberState,
}

/// A page in progress, by the pager's call.
struct Page {
    tenant: i64,
    pager: String,
    bridge: u64,
    pager_ep: EndpointId,
    auto_answer: AutoAnswer,
    members: Vec<Member>,
    ends_at: Instant,
    /// Members answered (for the call's events).
    events: Vec<TransferEvent>,
}

/// Pages in progress and the indexes that find a member.
#[derive(Default)]
pub(crate) struct Pages {
    pages: HashMap<u64, Page>,
    /// SIP Call-ID of a member's dialog -> (page, member).
    by_call_id: HashMap<String, (u64, usize)>,
    /// A member's endpoint -> (page, member).
    by_endpoint: HashMap<EndpointId, (u64, usize)>,
}

impl Pages {
    /// True when `req` is in a member's dialog.
    pub(crate) fn owns_request(&self, req: &Request) -> bool {
        req.call_id()
            .is_some_and(|c| self.by_call_id.contains_key(c))
    }

    /// True when `ev` is about a member's endpoint.
    pub(crate) fn owns_event(&self, ev: &MediaEvent) -> bool {
        ev.endpoint()
            .is_some_and(|e| self.by_endpoint.contains_key(&e))
    }
}

impl Engine {
    /// A call to page group `name`: checks, picks the phones to page, answers the pager on an
    /// endpoint (the phones are rung once it is answered, [`Engine::page_start`]).
    pub(crate) fn start_page(
        &mut self,
        entry: Entry,
        mut o: Origin,
        name: &str,
        caller: Option<ExtEntry>,
        now: Now,
    ) {
        o.digits = format!("page:{name}");
        let group = self
            .snap
            .apps
            .pages
            .get(&(o.tenant, name.to_string()))
            .cloned();
        let checked = match (group, caller) {
            (None, _) => Err((404, "Not Found")),
            // Class of service: only the tenant's own extensions page.
            (Some(_), None) => Err((403, "Forbidden")),
            (Some(_), Some(_)) if self.pages.pages.len() >= MAX_PAGES => {
                Err((503, "Too Many Pages"))
            }
            (Some(g), Some(c)) => {
                let targets = self.page_targets(o.tenant, &g, &c, entry.2, now);
                let offer = sdp::summarize(&entry.1.body);
                match (targets.is_empty(), offer) {
                    (true, _) => Err((480, "No Member Available")),
                    (false, Err(_)) => Err((488, "SDP offer required")),
                    (false, Ok(offer)) if sdp_local::choose(&offer).is_none() => {
                        Err((488, "Not Acceptable Here"))
                    }
                    (false, Ok(offer)) => {
                        let bridge =
                            crate::conf::bridge_id(o.tenant, &format!("page:{}", o.call_id));
                        info!(tenant = o.tenant, caller = %o.caller, group = %g.name, phones = targets.len(), "page");
                        let pager = Pager {
                            group: g,
                            targets,
                            bridge,
                        };
                        Ok((App::Page(Box::new(pager)), None, bridge, offer))
                    }
                }
            }
        };
        if let Err((status, reason)) = &checked {
            info!(tenant = o.tenant, caller = %o.caller, group = %name, status, reason, "page refused");
        }
        self.launch_app(entry, o, checked, &format!("page:{name}"), now);
    }

    /// The phones a page rings: every live contact of every member, skipping the pager
    /// itself, members that are disabled, and (without barge) those in a call or on DND.
    fn page_targets(
        &self,
        tenant: i64,
        g: &PageGroup,
        caller: &ExtEntry,
        source: std::net::SocketAddr,
        now: Now,
    ) -> Vec<(String, Binding)> {
        let busy = if g.barge {
            Default::default()
        } else {
            self.busy_numbers(tenant)
        };
        let mut out = Vec::new();
        for number in g.members.iter().take(MAX_MEMBERS) {
            let Some(e) = self.snap.extensions.get(&(tenant, number.clone())) else {
                continue;
            };
            let dnd = self.ext_dnd(e.id);
            if !e.enabled || e.id == caller.id || (!g.barge && (dnd || busy.contains(number))) {
                debug!(tenant, member = %number, dnd, "page member skipped");
                continue;
            }
            let live = |b: &&Binding| b.expires_at > now.wall && b.received != source;
            for b in self.usrloc.get(e.id).iter().filter(live) {
                if out.len() < MAX_PHONES {
                    out.push((number.clone(), b.clone()));
                }
            }
        }
        out
    }

    /// The pager is answered: it joins the page's bridge, and every member phone gets an
    /// endpoint in that bridge (its INVITE goes out once the endpoint is open).
    pub(crate) fn page_start(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let (tenant, pager) = (call.tenant_id, call.caller.clone());
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let pager_ep = anchor.caller_endpoint();
        let Some(p) = anchor.pager_mut() else {
            return;
        };
        let targets = std::mem::take(&mut p.targets);
        let (bridge, group) = (p.bridge, p.group.clone());
        self.media(MediaCommand::Join {
            endpoint: pager_ep,
            bridge,
        });
        let mut page = Page {
            tenant,
            pager,
            bridge,
            pager_ep,
            auto_answer: group.auto_answer,
            members: Vec::new(),
            ends_at: now.mono + Duration::from_secs(u64::from(group.max_s)),
            events: Vec::new(),
        };
        let answer_by = now.mono + Duration::from_secs(u64::from(group.answer_s));
        for (i, (number, binding)) in targets.into_iter().enumerate() {
            let endpoint = self.b2bua.new_endpoint(id);
            self.b2bua.by_endpoint.remove(&endpoint);
            let call_id = self.new_call_id();
            self.media(MediaCommand::OpenEndpoint {
                endpoint,
                call_id: call_id.clone(),
                ip: binding.local.ip(),
                group: bridge,
            });
            self.pages.by_endpoint.insert(endpoint, (id, i));
            self.pages.by_call_id.insert(call_id.clone(), (id, i));
            page.members.push(Member {
                number,
                binding,
                endpoint,
                call_id,
                txn: None,
                dialog: None,
                ack: None,
                answer_by,
                state: MemberState::Opening,
            });
        }
        self.pages.pages.insert(id, page);
    }

    /// News from a member's endpoint: once open, the member's INVITE goes out.
    pub(crate) fn page_endpoint_event(&mut self, ev: MediaEvent, now: Now) {
        let Some(&(pid, i)) = ev.endpoint().and_then(|e| self.pages.by_endpoint.get(&e)) else {
            return;
        };
        match ev {
            MediaEvent::EndpointOpened { local, .. } => self.page_invite(pid, i, local, now),
            MediaEvent::EndpointFailed { reason, .. } => {
                warn!(call = pid, member = i, %reason, "page member endpoint not opened");
                self.page_member_gone(pid, i, now);
            }
            // Members are asked to send nothing: no RTP from them is no reason to hang up.
            _ => {}
        }
    }

    /// Sends a member's INVITE: our endpoint's offer with the auto-answer headers. The offer
    /// is `sendrecv`, not `sendonly`: baresip 1.0 answers a `sendonly` offer and then plays
    /// (and records) nothing; what a member sends is dropped anyway (muted in the bridge).
    fn page_invite(&mut self, pid: u64, i: usize, local: std::net::SocketAddr, now: Now) {
        let adv = self.cfg.advertise;
        let Some(page) = self.pages.pages.get(&pid) else {
            return;
        };
        let (pager, aa) = (page.pager.clone(), page.auto_answer);
        let Some(m) = page
            .members
            .get(i)
            .filter(|m| m.state == MemberState::Opening)
        else {
            return;
        };
        let b = m.binding.clone();
        let (number, call_id) = (m.number.clone(), m.call_id.clone());
        let addr = std::net::SocketAddr::new(nathelper::advertised_ip(adv, b.local), local.port());
        let body = sdp_local::offer(addr, None, 1);
        let name = self
            .b2bua
            .get(pid)
            .map(|c| c.caller_name.clone())
            .unwrap_or_default();
        let (mut inv, _, _) = self.fork_request(&b, (&pager, &name, &number), 70, body, Some(aa));
        // The member's dialog keeps the Call-ID its endpoint was opened with.
        inv.headers.set(HeaderName::CallId, call_id.as_str());
        let txn = self.send_request(inv, b.target(), Owner::Page(pid, i), now);
        let Some(m) = self
            .pages
            .pages
            .get_mut(&pid)
            .and_then(|p| p.members.get_mut(i))
        else {
            return;
        };
        match txn {
            Some(t) => {
                m.txn = Some(t);
                m.state = MemberState::Ringing;
            }
            None => self.page_member_gone(pid, i, now),
        }
    }

    /// A response to a member's INVITE (or to our BYE to it).
    pub(crate) fn page_response(
        &mut self,
        pid: u64,
        i: usize,
        txn: TransactionId,
        resp: &Response,
        source: std::net::SocketAddr,
        now: Now,
    ) {
        let is_invite = resp.cseq().is_some_and(|c| c.method == Method::Invite);
        if !is_invite || resp.status < 200 {
            return;
        }
        let Some(m) = self
            .pages
            .pages
            .get(&pid)
            .and_then(|p| p.members.get(i))
            .filter(|m| m.txn == Some(txn))
        else {
            // The page ended meanwhile: an answer is ACKed and hung up.
            if (200..300).contains(&resp.status) {
                self.late_answer(txn, resp, source, now);
            }
            return;
        };
        match (resp.status, m.state) {
            (200..=299, MemberState::Ringing) => self.page_answered(pid, i, txn, resp, now),
            (200..=299, MemberState::Up) => {
                // A retransmitted 2xx: our ACK was lost.
                if let Some(ack) = m.ack.clone() {
                    self.layer.send_raw(ack, m.binding.target());
                }
            }
            (200..=299, _) => self.late_answer(txn, resp, source, now),
            (status, _) => {
                debug!(call = pid, member = %m.number, status, "page member did not answer");
                self.page_member_gone(pid, i, now);
            }
        }
    }

    /// A member's phone answered: ACK, point its endpoint at the phone, join it to the bridge
    /// muted (the page is one-way), note the event.
    fn page_answered(&mut self, pid: u64, i: usize, txn: TransactionId, resp: &Response, now: Now) {
        let Some(invite) = self.layer.request(txn).cloned() else {
            return;
        };
        let Some(target) = self
            .pages
            .pages
            .get(&pid)
            .and_then(|p| p.members.get(i))
            .map(|m| m.binding.clone())
        else {
            return;
        };
        let mut dialog = match Dialog::uac(&invite, resp) {
            Ok(d) => d,
            Err(e) => {
                warn!(call = pid, error = %e, "unusable 2xx from a paged phone");
                return;
            }
        };
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let via = self.our_via(target.local, target.transport);
        let ack = Bytes::from(dialog.ack(seq, &via).to_bytes());
        self.layer.send_raw(ack.clone(), target.target());
        self.layer.release_request(txn);
        let answer = sdp::summarize(&resp.body).ok();
        let chosen = answer.as_ref().and_then(sdp_local::choose);
        let Some((codec, te)) = chosen else {
            warn!(call = pid, "paged phone answered without a codec we speak");
            let via = self.our_via(target.local, target.transport);
            let bye = dialog.new_request(Method::Bye, &via);
            self.send_request(bye, target.target(), Owner::Page(pid, i), now);
            return self.page_member_gone(pid, i, now);
        };
        let (rtp, rtcp) = answer.map(|s| (s.rtp, s.rtcp)).unwrap_or((None, None));
        let Some(page) = self.pages.pages.get_mut(&pid) else {
            return;
        };
        let first = page.members.iter().all(|m| m.state != MemberState::Up);
        let (bridge, pager_ep) = (page.bridge, page.pager_ep);
        let Some(m) = page.members.get_mut(i) else {
            return;
        };
        m.dialog = Some(dialog);
        m.ack = Some(ack);
        m.state = MemberState::Up;
        let endpoint = m.endpoint;
        info!(call = pid, member = %m.number, contact = %target.received, "page member answered");
        page.events.push(TransferEvent {
            at: now.wall,
            kind: "paged",
            by: page.pager.clone(),
            party: page.pager.clone(),
            to: m.number.clone(),
            status: resp.status,
        });
        self.media(MediaCommand::ConfigureEndpoint {
            endpoint,
            rtp,
            rtcp,
            codec,
            telephone_event: te,
            ptime: 20,
        });
        self.media(MediaCommand::SetMute {
            endpoint,
            muted: true,
        });
        self.media(MediaCommand::Join { endpoint, bridge });
        if first {
            // The pager hears a beep: the first phone is listening.
            self.media(MediaCommand::Play {
                endpoint: pager_ep,
                id: 0,
                items: vec![PlayItem::Tone(ToneKind::Beep)],
                stop_on_dtmf: false,
                repeat: false,
            });
        }
    }

    /// A member's INVITE got no answer at all.
    pub(crate) fn page_tx_failed(&mut self, pid: u64, i: usize, now: Now) {
        let ringing = self
            .pages
            .pages
            .get(&pid)
            .and_then(|p| p.members.get(i))
            .is_some_and(|m| m.state == MemberState::Ringing);
        if ringing {
            self.page_member_gone(pid, i, now);
        }
    }

    /// A member is out of the page (refused, cancelled, hung up): its endpoint is closed;
    /// when no phone is left ringing or listening, the page ends.
    fn page_member_gone(&mut self, pid: u64, i: usize, now: Now) {
        let Some(page) = self.pages.pages.get_mut(&pid) else {
            return;
        };
        let Some(m) = page.members.get_mut(i) else {
            return;
        };
        if m.state == MemberState::Gone {
            return;
        }
        m.state = MemberState::Gone;
        let endpoint = m.endpoint;
        let left = page.members.iter().any(|m| m.state != MemberState::Gone);
        self.pages.by_endpoint.remove(&endpoint);
        self.media(MediaCommand::CloseEndpoint { endpoint });
        if !left {
            info!(call = pid, "page ends: no phone left");
            self.anchored_hangup(pid, "no page member left", now);
        }
    }

    /// An in-dialog request from a member's phone: BYE takes it out of the page.
    pub(crate) fn page_in_dialog(&mut self, txn: TransactionId, req: &Request, now: Now) {
        let Some(&(pid, i)) = req.call_id().and_then(|c| self.pages.by_call_id.get(c)) else {
            return;
        };
        let up = self
            .pages
            .pages
            .get(&pid)
            .and_then(|p| p.members.get(i))
            .is_some_and(|m| m.state == MemberState::Up);
        let status = match req.method {
            Method::Bye if up => 200,
            Method::Options | Method::Info if up => 200,
            // The page's media stays as offered.
            Method::Invite | Method::Update if up => 488,
            _ if up => 501,
            _ => 481,
        };
        self.respond(txn, Response::for_request(req, status, None), now);
        if req.method == Method::Bye && up {
            info!(call = pid, member = i, "page member hung up");
            self.page_member_gone(pid, i, now);
        }
    }

    /// Periodic: phones that did not answer in time are cancelled; pages past their longest
    /// time are ended.
    pub(crate) fn page_timeouts(&mut self, now: Now) {
        let mut late = Vec::new();
        let mut over = Vec::new();
        for (pid, page) in &self.pages.pages {
            if now.mono >= page.ends_at {
                over.push(*pid);
                continue;
            }
            for (i, m) in page.members.iter().enumerate() {
                if matches!(m.state, MemberState::Opening | MemberState::Ringing)
                    && now.mono >= m.answer_by
                {
                    late.push((*pid, i, m.txn));
                }
            }
        }
        for (pid, i, txn) in late {
            debug!(
                call = pid,
                member = i,
                "paged phone did not answer: cancelled"
            );
            if let Some(t) = txn {
                let _ = self.layer.cancel(t, now.mono);
            }
            self.page_member_gone(pid, i, now);
        }
        for pid in over {
            info!(call = pid, "page reached its longest time");
            self.anchored_hangup(pid, "page max duration", now);
        }
    }

    /// The pager's call ended: every phone still in the page is hung up or cancelled, the
    /// answers are stored as the call's events.
    pub(crate) fn page_call_ended(&mut self, call: &Call, now: Now) {
        let Some(page) = self.pages.pages.remove(&call.id) else {
            return;
        };
        for (i, mut m) in page.members.into_iter().enumerate() {
            self.pages.by_call_id.remove(&m.call_id);
            if self.pages.by_endpoint.remove(&m.endpoint).is_some() {
                self.media(MediaCommand::CloseEndpoint {
                    endpoint: m.endpoint,
                });
            }
            match (m.state, m.txn, m.dialog.as_mut()) {
                (MemberState::Ringing, Some(t), _) => {
                    let _ = self.layer.cancel(t, now.mono);
                }
                (MemberState::Up, _, Some(d)) => {
                    let via = self.our_via(m.binding.local, m.binding.transport);
                    let bye = d.new_request(Method::Bye, &via);
                    self.send_request(bye, m.binding.target(), Owner::Page(call.id, i), now);
                }
                _ => {}
            }
        }
        if !page.events.is_empty() {
            let op = crate::DbOp::CdrEvents {
                tenant: page.tenant,
                call_id: call.legs[A_LEG].call_id.clone(),
                events: page.events,
            };
            self.db(op, crate::Pending::Background("storing page events"));
        }
    }
}

impl Engine {
    /// Anchored call `id` (a caller in a menu whose option is `page:NAME`) pages group
    /// `name`: the members' phones are rung into the page's bridge and the caller's endpoint
    /// joins it, as for a phone dialling the group's number. An administrator chose the
    /// option, so an outside caller may page too. False (nothing changed) when the group is
    /// gone, too many pages run or no member can be paged.
    pub(crate) fn page_from_anchored(&mut self, id: u64, name: &str, now: Now) -> bool {
        let Some(call) = self.b2bua.get(id) else {
            return false;
        };
        let (tenant, caller) = (call.tenant_id, call.caller.clone());
        let source = call.legs[A_LEG].target.destination;
        let Some(g) = self
            .snap
            .apps
            .pages
            .get(&(tenant, name.to_string()))
            .cloned()
        else {
            return false;
        };
        if self.pages.pages.len() >= MAX_PAGES {
            return false;
        }
        let me = self
            .snap
            .extensions
            .get(&(tenant, caller))
            .cloned()
            .unwrap_or_default();
        let targets = self.page_targets(tenant, &g, &me, source, now);
        if targets.is_empty() {
            info!(call = id, group = %name, "page: no member available (menu choice)");
            return false;
        }
        let bridge = crate::conf::bridge_id(tenant, &format!("page:{id}"));
        info!(call = id, group = %g.name, phones = targets.len(), "page (menu choice)");
        let pager = Pager {
            group: g,
            targets,
            bridge,
        };
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.set_app(App::Page(Box::new(pager)));
        }
        self.page_start(id, now);
        true
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
    fn a_group_document_round_trips_and_is_checked() {
        let mut g = PageGroup::new("all", vec!["1001".into(), "1002".into()]);
        g.auto_answer = AutoAnswer::PolycomLegacy;
        let doc = serde_json::to_string(&g).expect("json");
        assert!(!doc.contains("\"name\""), "{doc}");
        assert!(doc.contains("\"polycom_legacy\""), "{doc}");
        let mut back: PageGroup = serde_json::from_str(&doc).expect("parses");
        back.name = "all".into();
        assert_eq!(back, g);
        let d: PageGroup = serde_json::from_str(r#"{"members":["1001"]}"#).expect("defaults");
        assert_eq!((d.answer_s, d.max_s, d.barge), (5, 60, false));
        assert!(serde_json::from_str::<PageGroup>(r#"{"member":[]}"#).is_err());
        assert!(g.validate().is_ok());
        for bad in [
            PageGroup::new("x", vec![]),
            PageGroup::new("x", vec!["1001".into(), "1001".into()]),
            PageGroup::new("x", vec!["page:all".into()]),
            PageGroup::new("x", vec!["1".into(); MAX_MEMBERS + 1]),
            PageGroup {
                max_s: 0,
                ..g.clone()
            },
            PageGroup {
                answer_s: 61,
                ..g.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
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
