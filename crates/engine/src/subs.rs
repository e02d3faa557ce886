//! Server-side event subscriptions (RFC 6665): a phone SUBSCRIBEs (digest-authenticated as
//! its extension) to an event package of its own account; the subscription is a dialog, gets
//! a NOTIFY at once and on every change, is refreshed by in-dialog SUBSCRIBEs, ends with
//! `Expires: 0` or when it runs out (a final `terminated` NOTIFY either way).
//!
//! Packages: `message-summary` (RFC 3842, [`crate::mwi`]) of one's own mailbox; `dialog`
//! (RFC 4235) and `presence` (RFC 3856) of any extension or special resource of one's tenant
//! ([`crate::blf`]). Others are refused with 489.
//! Bounds: [`MAX_PER_EXTENSION`] `message-summary` subscriptions per extension (the oldest is
//! replaced), `blf.max_keys` `dialog`/`presence` subscriptions per subscribing extension (403
//! past it) and [`MAX_SUBSCRIPTIONS`] in all (503 past it).
//!
//! Subscriptions are stored ([`SubRecord`], `crate::vm::VmOp::SaveSub`) when made, refreshed
//! or ended, and loaded at start ([`Engine::load_subscription`]), so a restart does not need
//! the phones to subscribe again (the CSeq of our NOTIFYs jumps ahead on load, so a phone never
//! sees one go backwards). A 481 to a NOTIFY, or none at all, ends the subscription.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use sip::dialog::Dialog;
use sip::transaction::{Target, TransactionId, Transport};
use sip::{HeaderName, Method, Request, Response};
use tracing::{debug, info};

use crate::{Engine, Now, Owner};

/// Shortest subscription accepted, seconds (shorter: 423 with Min-Expires).
pub const MIN_EXPIRES: u32 = 60;
/// Longest subscription granted, seconds (longer requests are shortened).
pub const MAX_EXPIRES: u32 = 3600;
/// Subscriptions one extension may hold.
pub const MAX_PER_EXTENSION: usize = 8;
/// Subscriptions in all.
pub const MAX_SUBSCRIPTIONS: usize = 60_000;

/// An event package we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Package {
    /// RFC 3842 message-waiting.
    MessageSummary,
    /// RFC 4235 dialog state (BLF keys).
    Dialog,
    /// RFC 3856 presence.
    Presence,
}

/// The packages served (Allow-Events).
pub const ALLOW_EVENTS: &str = "message-summary, dialog, presence";

impl Package {
    fn parse(s: &str) -> Option<Package> {
        [Package::MessageSummary, Package::Dialog, Package::Presence]
            .into_iter()
            .find(|p| s.eq_ignore_ascii_case(p.as_str()))
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Package::MessageSummary => "message-summary",
            Package::Dialog => "dialog",
            Package::Presence => "presence",
        }
    }
}

/// One subscription.
#[derive(Debug)]
pub(crate) struct Sub {
    pub tenant: i64,
    /// The subscribing extension.
    pub ext: String,
    /// What it watches: its own number (`message-summary`), an extension or a special
    /// resource (`dialog`, `presence`).
    pub resource: String,
    pub package: Package,
    pub dialog: Dialog,
    pub target: Target,
    pub expires_at: Instant,
    /// `dialog-info` version of the last NOTIFY (RFC 4235 §4.1: +1 per NOTIFY).
    pub version: u32,
    /// Hash of the state last sent (unchanged state sends nothing).
    pub last_hash: u64,
    /// When the last NOTIFY went (coalescing).
    pub last_sent: Option<Instant>,
    /// Its NOTIFY as a template ([`crate::notify_wire`]), made by the first one.
    pub wire: Option<Box<crate::notify_wire::NotifyWire>>,
}

/// A subscription's key: (Call-ID, our tag).
pub(crate) type SubKey = (String, String);

/// Subscriptions by (Call-ID, our tag), indexed by watched resource and by subscriber.
#[derive(Debug, Default)]
pub(crate) struct Subs {
    by_id: HashMap<SubKey, Sub>,
    /// (tenant, resource) -> `dialog`/`presence` subscriptions watching it.
    pub(crate) by_resource: HashMap<(i64, String), std::collections::HashSet<SubKey>>,
    /// (tenant, subscribing extension) -> its `dialog`/`presence` subscriptions.
    by_owner: HashMap<(i64, String), std::collections::HashSet<SubKey>>,
    /// (tenant, resource) -> how many `presence` subscriptions watch it (swept once a second).
    presence: HashMap<(i64, String), usize>,
    /// BLF state: dirty resources, due NOTIFYs, calls seen ([`crate::blf`]).
    pub(crate) blf: crate::blf::BlfState,
}

impl Subs {
    /// Adds (or puts back) a subscription, keeping the indexes.
    pub(crate) fn insert(&mut self, key: SubKey, sub: Sub) {
        if sub.package != Package::MessageSummary {
            self.by_resource
                .entry((sub.tenant, sub.resource.clone()))
                .or_default()
                .insert(key.clone());
            self.by_owner
                .entry((sub.tenant, sub.ext.clone()))
                .or_default()
                .insert(key.clone());
            if sub.package == Package::Presence {
                *self
                    .presence
                    .entry((sub.tenant, sub.resource.clone()))
                    .or_default() += 1;
            }
        }
        if let Some(old) = self.by_id.insert(key.clone(), sub) {
            // The same key again (never done today): keep the presence count right.
            if old.package == Package::Presence {
                self.uncount_presence(&(old.tenant, old.resource));
            }
        }
    }

    /// Takes a subscription out of the table while its NOTIFY is built, leaving the indexes
    /// as they are (it goes back with [`Subs::put_back`]: cheaper than remove and insert).
    pub(crate) fn take_for_notify(&mut self, key: &SubKey) -> Option<Sub> {
        self.by_id.remove(key)
    }

    /// Puts back a subscription taken with [`Subs::take_for_notify`].
    pub(crate) fn put_back(&mut self, key: SubKey, sub: Sub) {
        self.by_id.insert(key, sub);
    }

    /// Takes a subscription out, keeping the indexes.
    pub(crate) fn remove(&mut self, key: &SubKey) -> Option<Sub> {
        let sub = self.by_id.remove(key)?;
        if sub.package != Package::MessageSummary {
            for (map, k) in [
                (&mut self.by_resource, (sub.tenant, sub.resource.clone())),
                (&mut self.by_owner, (sub.tenant, sub.ext.clone())),
            ] {
                if let Some(set) = map.get_mut(&k) {
                    set.remove(key);
                    if set.is_empty() {
                        map.remove(&k);
                    }
                }
            }
            if sub.package == Package::Presence {
                self.uncount_presence(&(sub.tenant, sub.resource.clone()));
            }
        }
        Some(sub)
    }

    fn uncount_presence(&mut self, res: &(i64, String)) {
        if let Some(n) = self.presence.get_mut(res) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.presence.remove(res);
            }
        }
    }

    /// Whether some `presence` subscription watches `res` (its state follows registrations).
    pub(crate) fn presence_watched(&self, res: &(i64, String)) -> bool {
        self.presence.contains_key(res)
    }

    /// A subscription.
    pub(crate) fn get(&self, key: &SubKey) -> Option<&Sub> {
        self.by_id.get(key)
    }

    /// `dialog`/`presence` subscriptions held by `ext`.
    pub(crate) fn owned_by(&self, tenant: i64, ext: &str) -> Vec<SubKey> {
        self.by_owner
            .get(&(tenant, ext.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether any `dialog`/`presence` subscription exists.
    pub(crate) fn any_blf(&self) -> bool {
        !self.by_resource.is_empty()
    }

    /// Every subscription (read-only, for [`crate::subs_list`]).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SubKey, &Sub)> {
        self.by_id.iter()
    }

    /// Subscriptions in all.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether `ext` has a subscription to `package` from the contact at `addr`.
    pub(crate) fn covers(
        &self,
        tenant: i64,
        ext: &str,
        package: Package,
        addr: SocketAddr,
    ) -> bool {
        self.by_id.values().any(|s| {
            s.tenant == tenant
                && s.ext == ext
                && s.package == package
                && s.target.destination == addr
        })
    }
}

/// A subscription as stored (what rebuilds it after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRecord {
    /// Call-ID of its dialog.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The subscriber's tag.
    pub remote_tag: String,
    /// Tenant.
    pub tenant: i64,
    /// Extension subscribed to.
    pub ext: String,
    /// Event package (`message-summary`, `dialog`, `presence`).
    pub package: String,
    /// What is watched (empty in records from before `dialog`/`presence`: the extension).
    #[serde(default)]
    pub resource: String,
    /// Last `dialog-info` version sent.
    #[serde(default)]
    pub version: u32,
    /// Our To/From name-address.
    pub local: String,
    /// The subscriber's name-address.
    pub remote: String,
    /// Where in-dialog requests go (the subscriber's Contact).
    pub remote_target: String,
    /// Record-Route set.
    pub route_set: Vec<String>,
    /// Our last CSeq.
    pub local_seq: Option<u32>,
    /// The subscriber's last CSeq.
    pub remote_seq: Option<u32>,
    /// Address NOTIFYs are sent to.
    pub destination: SocketAddr,
    /// `udp`, `tcp`, `tls`.
    pub transport: String,
    /// Our address it came in on.
    pub local_addr: Option<SocketAddr>,
    /// When it runs out (ms since the epoch).
    pub expires_at_ms: i64,
}

/// CSeq headroom after a restart (NOTIFYs sent since the last save are not stored).
const CSEQ_JUMP: u32 = 1000;

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Sctp => "sctp",
        _ => "udp",
    }
}

fn parse_transport(s: &str) -> Transport {
    match s {
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        "sctp" => Transport::Sctp,
        _ => Transport::Udp,
    }
}

fn wall_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Sub {
    fn record(&self, now: crate::Now) -> SubRecord {
        let left = self.expires_at.saturating_duration_since(now.mono);
        let d = &self.dialog;
        SubRecord {
            call_id: d.id.call_id.clone(),
            local_tag: d.id.local_tag.clone(),
            remote_tag: d.id.remote_tag.clone(),
            tenant: self.tenant,
            ext: self.ext.clone(),
            package: self.package.as_str().to_string(),
            resource: self.resource.clone(),
            version: self.version,
            local: d.local.to_string(),
            remote: d.remote.to_string(),
            remote_target: d.remote_target.to_string(),
            route_set: d.route_set.iter().map(|r| r.to_string()).collect(),
            local_seq: d.local_seq,
            remote_seq: d.remote_seq,
            destination: self.target.destination,
            transport: transport_name(self.target.transport).to_string(),
            local_addr: self.target.local,
            expires_at_ms: wall_ms(now.wall + left),
        }
    }

    fn from_record(r: &SubRecord, now: crate::Now) -> Option<Sub> {
        let left_ms = r.expires_at_ms.checked_sub(wall_ms(now.wall))?;
        let left = Duration::from_millis(u64::try_from(left_ms).ok().filter(|l| *l > 0)?);
        let dialog = Dialog {
            id: sip::dialog::DialogId {
                call_id: r.call_id.clone(),
                local_tag: r.local_tag.clone(),
                remote_tag: r.remote_tag.clone(),
            },
            state: sip::dialog::DialogState::Confirmed,
            role: sip::dialog::Role::Uas,
            local: sip::NameAddr::parse(&r.local).ok()?,
            remote: sip::NameAddr::parse(&r.remote).ok()?,
            remote_target: r.remote_target.parse().ok()?,
            local_target: None,
            route_set: r
                .route_set
                .iter()
                .map(|x| sip::NameAddr::parse(x))
                .collect::<Result<_, _>>()
                .ok()?,
            local_seq: Some(r.local_seq.unwrap_or(0).saturating_add(CSEQ_JUMP)),
            remote_seq: r.remote_seq,
            secure: false,
        };
        let resource = if r.resource.is_empty() {
            r.ext.clone()
        } else {
            r.resource.clone()
        };
        Some(Sub {
            tenant: r.tenant,
            ext: r.ext.clone(),
            resource,
            version: r.version.saturating_add(CSEQ_JUMP),
            last_hash: 0,
            last_sent: None,
            wire: None,
            package: Package::parse(&r.package)?,
            dialog,
            target: Target {
                destination: r.destination,
                transport: parse_transport(&r.transport),
                local: r.local_addr,
            },
            expires_at: now.mono + left,
        })
    }
}

/// The requested Expires (absent: the longest), checked: `Err(())` when too short.
fn granted(req: &Request) -> Result<u32, ()> {
    match req.expires() {
        None => Ok(MAX_EXPIRES),
        Some(0) => Ok(0),
        Some(e) if e < MIN_EXPIRES => Err(()),
        Some(e) => Ok(e.min(MAX_EXPIRES)),
    }
}

impl Engine {
    /// A SUBSCRIBE, new or within a subscription's dialog.
    pub(crate) fn on_subscribe(
        &mut self,
        txn: TransactionId,
        req: Request,
        (source, local, transport): (SocketAddr, SocketAddr, Transport),
        now: Now,
    ) {
        let Some(package) = req.headers.event().and_then(|e| Package::parse(&e.value)) else {
            let r = Response::for_request(&req, 489, None)
                .with_header(HeaderName::AllowEvents, ALLOW_EVENTS);
            return self.respond(txn, r, now);
        };
        let Ok(expires) = granted(&req) else {
            let r = Response::for_request(&req, 423, None)
                .with_header(HeaderName::MinExpires, MIN_EXPIRES.to_string());
            return self.respond(txn, r, now);
        };
        let in_dialog = req.to().and_then(|t| t.tag().map(str::to_string));
        if let Some(tag) = in_dialog {
            let key = (req.call_id().unwrap_or_default().to_string(), tag);
            return self.refresh_subscription(txn, req, key, expires, now);
        }
        let Some(from) = req.from() else {
            return self.respond(
                txn,
                Response::for_request(&req, 400, Some("Missing From")),
                now,
            );
        };
        let domain = crate::registrar::uri_domain(&from.uri).unwrap_or_default();
        let Some(tenant) = self.snap.tenants.for_domain(&domain) else {
            let r = Response::for_request(&req, 403, Some("Unknown domain"));
            return self.respond(txn, r, now);
        };
        let from_user = from.uri.user().unwrap_or_default().to_string();
        let Some((ext, req)) = self.authorize(
            txn,
            req,
            (source, local, transport),
            tenant,
            &from_user,
            &HeaderName::ProxyAuthorization,
            now,
        ) else {
            return;
        };
        let target_user = req.uri.user().unwrap_or_default().to_string();
        let resource = if package == Package::MessageSummary {
            // One's own account only.
            if !target_user.is_empty() && target_user != ext.number {
                let r = Response::for_request(&req, 403, Some("Not your mailbox"));
                return self.respond(txn, r, now);
            }
            ext.number.clone()
        } else {
            match self.blf_admit(&req, tenant, &ext.number, &target_user, source) {
                Ok(resource) => resource,
                Err(r) => return self.respond(txn, r, now),
            }
        };
        if !req.headers.contains(&HeaderName::Contact) {
            let r = Response::for_request(&req, 400, Some("Missing Contact"));
            return self.respond(txn, r, now);
        }
        let tag = self.new_tag();
        let ours = self.contact_uri(None, local, transport);
        let ok = Response::for_request(&req, 200, None)
            .with_to_tag(&tag)
            .with_header(HeaderName::Contact, format!("<{ours}>"))
            .with_header(HeaderName::Expires, expires.to_string());
        if expires == 0 {
            // A fetch: one NOTIFY, no subscription.
            let Ok(dialog) = Dialog::uas(&req, &ok) else {
                return self.respond(txn, Response::for_request(&req, 400, None), now);
            };
            self.respond(txn, ok, now);
            let target = Target {
                destination: source,
                transport,
                local: Some(local),
            };
            let mut sub = Sub {
                tenant,
                ext: ext.number.clone(),
                resource,
                package,
                dialog,
                target,
                expires_at: now.mono,
                version: 0,
                last_hash: 0,
                last_sent: None,
                wire: None,
            };
            return self.notify_sub(&mut sub, Some("timeout"), now);
        }
        if package != Package::MessageSummary {
            // The same key from the same phone again (it restarted): the old one goes.
            let again: Vec<SubKey> = self
                .subs
                .owned_by(tenant, &ext.number)
                .into_iter()
                .filter(|k| {
                    self.subs.get(k).is_some_and(|s| {
                        s.resource == resource
                            && s.package == package
                            && s.target.destination == source
                    })
                })
                .collect();
            for k in again {
                self.subs.remove(&k);
                self.drop_sub(&k);
            }
            let max = usize::try_from(self.snap.settings.blf_max_keys).unwrap_or(usize::MAX);
            if self.subs.owned_by(tenant, &ext.number).len() >= max {
                info!(peer = %source, extension = %ext.number, max, "BLF subscription refused: too many keys");
                let r = Response::for_request(&req, 403, Some("Too many subscriptions"));
                return self.respond(txn, r, now);
            }
        }
        let count = if package == Package::MessageSummary {
            self.subs
                .by_id
                .values()
                .filter(|s| {
                    s.tenant == tenant
                        && s.ext == ext.number
                        && s.package == Package::MessageSummary
                })
                .count()
        } else {
            0
        };
        if count >= MAX_PER_EXTENSION {
            // The oldest goes: a phone that lost its subscriptions should not lock itself out.
            if let Some(k) = self
                .subs
                .by_id
                .iter()
                .filter(|(_, s)| {
                    s.tenant == tenant
                        && s.ext == ext.number
                        && s.package == Package::MessageSummary
                })
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| k.clone())
            {
                self.subs.remove(&k);
                self.drop_sub(&k);
            }
        } else if self.subs.len() >= MAX_SUBSCRIPTIONS {
            let r = Response::for_request(&req, 503, Some("Too many subscriptions"))
                .with_header(HeaderName::RetryAfter, "60");
            return self.respond(txn, r, now);
        }
        let Ok(dialog) = Dialog::uas(&req, &ok) else {
            return self.respond(txn, Response::for_request(&req, 400, None), now);
        };
        self.respond(txn, ok, now);
        let key = (dialog.id.call_id.clone(), tag);
        let mut sub = Sub {
            tenant,
            ext: ext.number.clone(),
            resource,
            package,
            dialog,
            target: Target {
                destination: source,
                transport,
                local: Some(local),
            },
            expires_at: now.mono + Duration::from_secs(u64::from(expires)),
            version: 0,
            last_hash: 0,
            last_sent: None,
            wire: None,
        };
        info!(peer = %source, extension = %ext.number, resource = %sub.resource, event = package.as_str(), expires, "subscribed");
        self.notify_sub(&mut sub, None, now);
        self.save_sub(&sub, now);
        self.subs.insert(key, sub);
    }

    fn refresh_subscription(
        &mut self,
        txn: TransactionId,
        req: Request,
        key: (String, String),
        expires: u32,
        now: Now,
    ) {
        let Some(mut sub) = self.subs.remove(&key) else {
            return self.respond(txn, Response::for_request(&req, 481, None), now);
        };
        if sub.dialog.on_request(&req).is_err() {
            self.subs.insert(key, sub);
            let r = Response::for_request(&req, 500, Some("CSeq out of order"));
            return self.respond(txn, r, now);
        }
        let ok = Response::for_request(&req, 200, None)
            .with_header(HeaderName::Expires, expires.to_string());
        self.respond(txn, ok, now);
        if expires == 0 {
            info!(extension = %sub.ext, "unsubscribed");
            self.drop_sub(&key);
            return self.notify_sub(&mut sub, Some("timeout"), now);
        }
        sub.expires_at = now.mono + Duration::from_secs(u64::from(expires));
        // The refresh may have moved the dialog's remote target: a new template.
        sub.wire = None;
        debug!(extension = %sub.ext, expires, "subscription refreshed");
        self.notify_sub(&mut sub, None, now);
        self.save_sub(&sub, now);
        self.subs.insert(key, sub);
    }

    /// NOTIFYs the current state; `terminated` ends the subscription with that reason.
    pub(crate) fn notify_sub(&mut self, sub: &mut Sub, terminated: Option<&str>, now: Now) {
        if terminated.is_none() && sub.package != Package::MessageSummary {
            return self.notify_blf(sub, now);
        }
        let via = self.our_via(
            sub.target.local.unwrap_or(sub.target.destination),
            sub.target.transport,
        );
        let mut req = sub.dialog.new_request(Method::Notify, &via);
        req.headers.push(HeaderName::Event, sub.package.as_str());
        let state = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None => {
                let left = sub.expires_at.saturating_duration_since(now.mono).as_secs();
                format!("active;expires={left}")
            }
        };
        req.headers.push(HeaderName::SubscriptionState, state);
        match sub.package {
            Package::MessageSummary => {
                let counts = self
                    .snap
                    .apps
                    .vm_counts
                    .get(&(sub.tenant, sub.ext.clone()))
                    .copied()
                    .unwrap_or((0, 0));
                let account = sip_account(&self.snap, sub.tenant, &sub.ext);
                let ct = sip::MediaType {
                    mtype: "application".into(),
                    subtype: "simple-message-summary".into(),
                    params: sip::Params(Vec::new()),
                };
                let body = crate::mwi::summary_body(counts.0, counts.1, &account);
                req.set_body(&ct, bytes::Bytes::from(body));
            }
            Package::Dialog | Package::Presence => {
                let body = self.blf_body(sub, now);
                sub.last_sent = Some(now.mono);
                req.set_body(&body.0, bytes::Bytes::from(body.1));
            }
        }
        self.note_notify(sub, terminated.is_some(), &req.body, now);
        let owner = match terminated {
            Some(_) => Owner::Mwi,
            None => Owner::SubNotify(
                sub.dialog.id.call_id.clone(),
                sub.dialog.id.local_tag.clone(),
            ),
        };
        self.send_request(req, sub.target, owner, now);
    }

    /// NOTIFYs every subscription of `ext` to `package` (its state changed).
    pub(crate) fn notify_subscribers(
        &mut self,
        tenant: i64,
        ext: &str,
        package: Package,
        now: Now,
    ) {
        let keys: Vec<(String, String)> = self
            .subs
            .by_id
            .iter()
            .filter(|(_, s)| s.tenant == tenant && s.ext == ext && s.package == package)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(mut s) = self.subs.remove(&k) {
                self.notify_sub(&mut s, None, now);
                self.subs.insert(k, s);
            }
        }
    }

    /// Ends the subscriptions that ran out (a final NOTIFY each).
    pub(crate) fn expire_subscriptions(&mut self, now: Now) {
        let gone: Vec<(String, String)> = self
            .subs
            .by_id
            .iter()
            .filter(|(_, s)| s.expires_at <= now.mono)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(mut s) = self.subs.remove(&k) {
                debug!(extension = %s.ext, "subscription expired");
                self.drop_sub(&k);
                self.notify_sub(&mut s, Some("timeout"), now);
            }
        }
    }

    /// The subscriber answered a NOTIFY with 481 (or not at all): the subscription ends.
    pub(crate) fn subscription_gone(&mut self, key: &(String, String), why: &str) {
        if let Some(s) = self.subs.remove(key) {
            info!(extension = %s.ext, %why, "subscription ended by the subscriber");
            self.drop_sub(key);
        }
    }

    pub(crate) fn save_sub(&mut self, sub: &Sub, now: Now) {
        let r = sub.record(now);
        self.vm_op(0, crate::vm::VmOp::SaveSub(Box::new(r)));
    }

    fn drop_sub(&mut self, key: &(String, String)) {
        self.vm_op(
            0,
            crate::vm::VmOp::DropSub {
                call_id: key.0.clone(),
                local_tag: key.1.clone(),
            },
        );
    }

    /// A stored subscription, at start: kept if it has not run out (and within the bounds).
    pub fn load_subscription(&mut self, r: &SubRecord, now: Now) {
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return;
        }
        if let Some(s) = Sub::from_record(r, now) {
            self.subs
                .insert((r.call_id.clone(), r.local_tag.clone()), s);
        }
    }
}

/// The account URI of an extension (`sip:1002@realm`).
pub(crate) fn sip_account(snap: &crate::Snapshot, tenant: i64, ext: &str) -> String {
    let realm = snap
        .tenants
        .realms
        .get(&tenant)
        .cloned()
        .unwrap_or_default();
    format!("sip:{ext}@{realm}")
}
