//! The configuration the engine decides with: node settings given at start, and the snapshot of
//! database configuration (tenants, extensions, runtime settings) the driver loads and refreshes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::dialplan::Destination;
use crate::outside::{
    CallClass, DialPattern, DidPattern, DidSpec, ExtLimits, RouteSpec, TenantOutbound, TrunkSpec,
};
use crate::pike::ThrottleConfig;

/// Node-local settings of the engine (from the TOML file, environment and flags).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The local SIP addresses the driver bound (one per network segment).
    pub locals: Vec<SocketAddr>,
    /// Address written into SDP and Contact instead of the local one (NAT/public).
    pub advertise: Option<IpAddr>,
    /// This node's name (stored with registrations).
    pub node_name: String,
    /// Transaction timers. Timer J defaults to 5 s here, not RFC 3261's 64·T1 (32 s), as in
    /// Kamailio and OpenSIPS (`wait_timer`): a completed non-INVITE transaction over UDP keeps
    /// its key and final response that long to answer retransmissions. A client retransmits at
    /// most T2 (4 s) apart, so 5 s still answers the retransmission that follows a lost
    /// response; at 10,000 REGISTER/s the RFC value kept ~700 MB of finished transactions.
    pub timers: sip::transaction::Timers,
    /// Brute-force protection.
    pub throttle: ThrottleConfig,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Digest nonce secret (shared by the nodes through the database, so nonces survive a
    /// restart).
    pub digest_secret: [u8; 32],
    /// Seed of the engine's random source (tags, branches, Call-IDs, nonces).
    pub seed: [u8; 32],
    /// Most database lookups of unknown users in flight at once (work an unauthenticated peer
    /// can cause is bounded).
    pub max_lookups: usize,
    /// Database operations outstanding at most before new registrations are refused with 503
    /// and Retry-After: a stuck database must not grow memory without end (call records are
    /// never refused).
    pub max_pending_db: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            locals: Vec::new(),
            advertise: None,
            node_name: "denwa".into(),
            timers: sip::transaction::Timers {
                j: Duration::from_secs(5),
                ..sip::transaction::Timers::default()
            },
            throttle: ThrottleConfig::default(),
            user_agent: "Denwa".into(),
            digest_secret: [0; 32],
            seed: [0; 32],
            max_lookups: 64,
            max_pending_db: 20_000,
        }
    }
}

/// Runtime settings read from the database (`settings` table, node-global rows). Defaults and
/// ranges are defined once, in [`crate::settings::SPECS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How long an unanswered call rings.
    pub no_answer: Duration,
    /// Shortest registration interval accepted (423 below).
    pub min_expires: u32,
    /// Longest registration interval granted.
    pub max_expires: u32,
    /// Interval granted when the phone asks for none.
    pub default_expires: u32,
    /// NAT keep-alive interval (zero: off).
    pub keepalive: Duration,
    /// Digest algorithms offered, one challenge each, in order.
    pub digest_algorithms: Vec<sip::auth::Algorithm>,
    /// Language of the prompts voice applications play (`en`, `ja`).
    pub prompt_language: String,
    /// A failed blind transfer rings the transferor back (else the transferee is hung up).
    pub transfer_callback: bool,
    /// A blind transfer's transferee hears hold music while the target rings.
    pub transfer_music: bool,
    /// Extensions allowed to record prompts by phone: `NUMBER` (the default tenant) or
    /// `NUMBER@DOMAIN` (`prompts.recorders`).
    pub prompt_recorders: Vec<String>,
    /// BLF NOTIFYs name the other party of a call (`blf.show_caller`).
    pub blf_show_caller: bool,
    /// Tenants' own `blf.show_caller` ([`crate::tenant_settings`]), overriding the node's.
    pub blf_show_caller_tenants: std::collections::HashMap<i64, bool>,
    /// Intercom calls are one-way (`intercom.audio` = `one-way`).
    pub intercom_one_way: bool,
    /// Tenants' own `intercom.audio`, overriding the node's.
    pub intercom_one_way_tenants: std::collections::HashMap<i64, bool>,
    /// Most `dialog`/`presence` subscriptions per extension (`blf.max_keys`).
    pub blf_max_keys: u32,
    /// Country of the call-progress tones played (`tones.country`: `jp`, `na`).
    pub tone_country: String,
    /// Tenants' own `tones.country`, overriding the node's.
    pub tone_country_tenants: std::collections::HashMap<i64, String>,
    /// Music-on-hold class played on hold and while waiting (`moh.class`).
    pub moh_class: String,
    /// Tenants' own `moh.class`, overriding the node's.
    pub moh_class_tenants: std::collections::HashMap<i64, String>,
    /// When both parties hear a recording beep (`recording.beep`).
    pub recording_beep: crate::rec_ctl::BeepMode,
    /// Tenants' own `recording.beep`, overriding the node's.
    pub recording_beep_tenants: std::collections::HashMap<i64, crate::rec_ctl::BeepMode>,
}

impl Default for Settings {
    fn default() -> Self {
        use crate::settings::keys;
        let secs = |k| Duration::from_secs(default_int(k));
        let int = |k| u32::try_from(default_int(k)).unwrap_or(u32::MAX);
        Settings {
            no_answer: secs(keys::NO_ANSWER),
            min_expires: int(keys::MIN_EXPIRES),
            max_expires: int(keys::MAX_EXPIRES),
            default_expires: int(keys::DEFAULT_EXPIRES),
            keepalive: secs(keys::KEEPALIVE),
            // MD5 only by default: widely deployed clients (baresip/libre 1.x among them) fail
            // the whole authentication when any offered challenge uses an algorithm they lack.
            digest_algorithms: vec![sip::auth::Algorithm::Md5],
            prompt_language: crate::settings::PROMPT_LANGUAGES[0].to_string(),
            transfer_callback: true,
            transfer_music: true,
            prompt_recorders: Vec::new(),
            blf_show_caller: true,
            blf_show_caller_tenants: std::collections::HashMap::new(),
            intercom_one_way: false,
            intercom_one_way_tenants: std::collections::HashMap::new(),
            blf_max_keys: int(keys::BLF_MAX_KEYS),
            tone_country: crate::settings::TONE_COUNTRIES[0].to_string(),
            tone_country_tenants: std::collections::HashMap::new(),
            moh_class: crate::moh_class::DEFAULT_CLASS.to_string(),
            moh_class_tenants: std::collections::HashMap::new(),
            recording_beep: crate::rec_ctl::BeepMode::default(),
            recording_beep_tenants: std::collections::HashMap::new(),
        }
    }
}

impl Settings {
    /// Settings from stored values (`key -> text`), each checked against its spec; a missing or
    /// invalid value takes the default.
    pub fn from_values(get: impl Fn(&str) -> Option<String>) -> Settings {
        use crate::settings::{keys, spec};
        let d = Settings::default();
        let int = |key: &str, default: u64| -> u64 {
            get(key)
                .and_then(|v| spec(key).and_then(|s| s.validate(&parse_json(&v)).ok()))
                .and_then(|v| v.as_u64())
                .unwrap_or(default)
        };
        let to_u32 = |v: u64, d: u32| u32::try_from(v).unwrap_or(d);
        Settings {
            no_answer: Duration::from_secs(int(keys::NO_ANSWER, d.no_answer.as_secs()).max(1)),
            min_expires: to_u32(
                int(keys::MIN_EXPIRES, u64::from(d.min_expires)),
                d.min_expires,
            ),
            max_expires: to_u32(
                int(keys::MAX_EXPIRES, u64::from(d.max_expires)),
                d.max_expires,
            ),
            default_expires: to_u32(
                int(keys::DEFAULT_EXPIRES, u64::from(d.default_expires)),
                d.default_expires,
            ),
            keepalive: Duration::from_secs(int(keys::KEEPALIVE, d.keepalive.as_secs())),
            prompt_language: get(keys::PROMPTS_LANGUAGE)
                .and_then(|v| {
                    spec(keys::PROMPTS_LANGUAGE).and_then(|s| s.validate(&parse_json(&v)).ok())
                })
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or(d.prompt_language),
            transfer_callback: get(keys::TRANSFER_ON_FAILURE)
                .and_then(|v| {
                    spec(keys::TRANSFER_ON_FAILURE).and_then(|s| s.validate(&parse_json(&v)).ok())
                })
                .and_then(|v| v.as_str().map(|c| c != "hangup"))
                .unwrap_or(d.transfer_callback),
            transfer_music: get(keys::TRANSFER_TRANSFEREE_HEARS)
                .and_then(|v| {
                    spec(keys::TRANSFER_TRANSFEREE_HEARS)
                        .and_then(|s| s.validate(&parse_json(&v)).ok())
                })
                .and_then(|v| v.as_str().map(|c| c != "silence"))
                .unwrap_or(d.transfer_music),
            // Taken as text: a single extension (`1001`) would parse as a JSON number.
            prompt_recorders: get(keys::PROMPTS_RECORDERS)
                .and_then(|v| {
                    spec(keys::PROMPTS_RECORDERS)
                        .and_then(|s| s.validate(&serde_json::Value::from(v)).ok())
                })
                .and_then(|v| v.as_str().map(str::to_string))
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            digest_algorithms: get(keys::DIGEST_ALGORITHMS)
                .map(|v| {
                    v.split(',')
                        .filter_map(|a| sip::auth::Algorithm::from_token(a.trim()))
                        .filter(|a| !a.is_sess())
                        .collect::<Vec<_>>()
                })
                .filter(|l| !l.is_empty())
                .unwrap_or(d.digest_algorithms),
            blf_show_caller: get(keys::BLF_SHOW_CALLER)
                .and_then(|v| {
                    spec(keys::BLF_SHOW_CALLER).and_then(|s| s.validate(&parse_json(&v)).ok())
                })
                .and_then(|v| v.as_str().map(|c| c != "hide"))
                .unwrap_or(d.blf_show_caller),
            blf_show_caller_tenants: std::collections::HashMap::new(),
            intercom_one_way: get(keys::INTERCOM_AUDIO)
                .and_then(|v| {
                    spec(keys::INTERCOM_AUDIO).and_then(|s| s.validate(&parse_json(&v)).ok())
                })
                .and_then(|v| v.as_str().map(|c| c == "one-way"))
                .unwrap_or(d.intercom_one_way),
            intercom_one_way_tenants: std::collections::HashMap::new(),
            blf_max_keys: to_u32(
                int(keys::BLF_MAX_KEYS, u64::from(d.blf_max_keys)),
                d.blf_max_keys,
            ),
            tone_country: get(keys::TONES_COUNTRY)
                .and_then(|v| crate::tenant_settings::tone_country_value(&parse_json(&v)))
                .unwrap_or(d.tone_country),
            tone_country_tenants: std::collections::HashMap::new(),
            moh_class: get(keys::MOH_CLASS)
                .and_then(|v| crate::moh_class::class_value(&serde_json::Value::from(v)))
                .unwrap_or(d.moh_class),
            moh_class_tenants: std::collections::HashMap::new(),
            recording_beep: get(keys::RECORDING_BEEP)
                .and_then(|v| crate::rec_ctl::BeepMode::from_json(&parse_json(&v)))
                .unwrap_or(d.recording_beep),
            recording_beep_tenants: std::collections::HashMap::new(),
        }
    }
}

/// The default of an integer setting, from its spec (0 for an unknown key: a programming error
/// the unit tests catch).
fn default_int(key: &str) -> u64 {
    match crate::settings::spec(key).map(|s| s.default) {
        Some(crate::settings::DefaultValue::Int(n)) => n,
        _ => 0,
    }
}

/// A stored value is JSON (numbers) or plain text; both are accepted.
fn parse_json(v: &str) -> serde_json::Value {
    serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::from(v))
}

/// An extension as call control needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtEntry {
    /// Database id.
    pub id: i64,
    /// Extension number (also the SIP user name).
    pub number: String,
    /// Display name for caller ID.
    pub display_name: String,
    /// Digest HA1 for MD5.
    pub ha1_md5: Option<String>,
    /// Digest HA1 for SHA-256.
    pub ha1_sha256: Option<String>,
    /// Disabled extensions neither register nor call nor ring.
    pub enabled: bool,
    /// Most simultaneous registered contacts.
    pub max_contacts: usize,
    /// Class of service: how far it may call out.
    pub cos: CallClass,
    /// Caller ID on outside calls (empty: the tenant's main number).
    pub outbound_cid: String,
    /// Outside calls withhold caller ID (Privacy: id).
    pub anonymous: bool,
    /// Outbound limits.
    pub limits: ExtLimits,
    /// Prompt language (`en`, `ja`; empty: the tenant's default).
    pub language: String,
}

/// Tenants and SIP domains.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    /// The default tenant (a single-company install has only this one).
    pub default_id: i64,
    /// Lower-case SIP domain -> tenant.
    pub by_domain: HashMap<String, i64>,
    /// Tenant -> digest realm.
    pub realms: HashMap<i64, String>,
    /// Tenant -> default prompt language (absent or empty: `prompts.language`).
    pub languages: HashMap<i64, String>,
}

impl Tenants {
    /// True when extension `number` of `tenant` is named in `list` (`prompts.recorders`
    /// entries: `NUMBER` for the default tenant, `NUMBER@DOMAIN` for the domain's tenant).
    pub fn listed(&self, list: &[String], tenant: i64, number: &str) -> bool {
        list.iter().any(|e| match e.split_once('@') {
            Some((n, domain)) => {
                n == number && self.by_domain.get(&domain.to_ascii_lowercase()) == Some(&tenant)
            }
            None => e == number && tenant == self.default_id,
        })
    }

    /// The tenant a SIP domain belongs to. A single-company install accepts every domain.
    pub fn for_domain(&self, domain: &str) -> Option<i64> {
        if let Some(t) = self.by_domain.get(&domain.to_ascii_lowercase()) {
            return Some(*t);
        }
        if self.realms.len() <= 1 {
            Some(self.default_id)
        } else {
            None
        }
    }

    /// True when `host` names one of the tenant's domains (or, in a single-company install,
    /// any domain).
    pub fn owns_domain(&self, tenant: i64, host: &str) -> bool {
        match self.by_domain.get(&host.to_ascii_lowercase()) {
            Some(t) => *t == tenant,
            None => self.realms.len() <= 1,
        }
    }
}

/// The database configuration call control decides with.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Tenants and domains.
    pub tenants: Tenants,
    /// Extensions by (tenant, number).
    pub extensions: HashMap<(i64, String), ExtEntry>,
    /// Runtime settings.
    pub settings: Settings,
    /// Trunks, routes, DIDs and tenant outbound policy.
    pub outside: Outside,
    /// Voice applications: IVR menus and the numbers that reach applications.
    pub apps: Apps,
    /// Feature codes, time conditions and pickup groups.
    pub codes: crate::features::CodesConfig,
}

/// An IVR menu as call control needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvrEntry {
    /// Owning tenant.
    pub tenant: i64,
    /// Name (`ivr:NAME`).
    pub name: String,
    /// Internal number that reaches it (empty: only through DIDs and other destinations).
    pub number: String,
    /// The menu.
    pub spec: apps::ivr::MenuSpec,
}

/// Voice applications of every tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Apps {
    /// IVR menus by (tenant, name).
    pub ivrs: HashMap<(i64, String), IvrEntry>,
    /// Conference rooms by (tenant, number).
    pub confs: HashMap<(i64, String), apps::conf::RoomSpec>,
    /// Internal numbers of applications by (tenant, number).
    pub numbers: HashMap<(i64, String), crate::dialplan::Destination>,
    /// Ring groups and per-extension forwarding (loaded with the applications).
    pub hunt: crate::hunt::HuntConfig,
    /// Voicemail boxes with stored settings by (tenant, extension number).
    pub vm_boxes: HashMap<(i64, String), crate::vm::VmBoxEntry>,
    /// New and saved message counts of boxes holding messages (message-waiting indication).
    pub vm_counts: crate::mwi::Counts,
    /// Page groups by (tenant, name) ([`crate::page`]).
    pub pages: HashMap<(i64, String), crate::page::PageGroup>,
}

impl Apps {
    /// Builds the number index from the menus and rooms (`(tenant, number, room)`).
    pub fn with_rooms(
        ivrs: Vec<IvrEntry>,
        rooms: Vec<(i64, String, apps::conf::RoomSpec)>,
    ) -> Apps {
        let mut a = Apps::new(ivrs);
        for (t, n, r) in rooms {
            a.numbers.insert(
                (t, n.clone()),
                crate::dialplan::Destination::Conf(n.clone()),
            );
            a.confs.insert((t, n), r);
        }
        a
    }

    /// Builds the number index from the menus.
    pub fn new(ivrs: Vec<IvrEntry>) -> Apps {
        let mut a = Apps::default();
        for m in ivrs {
            if !m.number.is_empty() {
                a.numbers.insert(
                    (m.tenant, m.number.clone()),
                    crate::dialplan::Destination::Ivr(m.name.clone()),
                );
            }
            a.ivrs.insert((m.tenant, m.name.clone()), m);
        }
        a
    }
}

/// A trunk as call control needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkEntry {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant: i64,
    /// Name (routes name it).
    pub name: String,
    /// Settings.
    pub spec: TrunkSpec,
    /// Digest password (empty: none).
    pub password: String,
    /// Where requests to it go (the outbound proxy's or the host's resolved addresses; the
    /// first is used). Filled by the driver, which resolves names.
    pub addrs: Vec<SocketAddr>,
    /// Addresses whose requests are this trunk's (host and proxy), besides
    /// `spec.inbound_addrs`.
    pub sources: Vec<IpAddr>,
}

/// An outbound route, in its tenant's order.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEntry {
    /// Name.
    pub name: String,
    /// Settings.
    pub spec: RouteSpec,
    /// `spec.patterns`, parsed (a stored pattern that no longer parses is left out).
    pub patterns: Vec<DialPattern>,
}

impl RouteEntry {
    /// A route from stored settings.
    pub fn new(name: String, spec: RouteSpec) -> RouteEntry {
        let patterns = spec
            .patterns
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        RouteEntry {
            name,
            spec,
            patterns,
        }
    }
}

/// An inbound route.
#[derive(Debug, Clone, PartialEq)]
pub struct DidEntry {
    /// The DIDs it takes.
    pub pattern: DidPattern,
    /// Settings.
    pub spec: DidSpec,
    /// `spec.destination`, parsed.
    pub destination: Destination,
}

/// Everything about the public network, per tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outside {
    /// Trunks by id.
    pub trunks: HashMap<i64, TrunkEntry>,
    /// Outbound routes per tenant, in order.
    pub routes: HashMap<i64, Vec<RouteEntry>>,
    /// Inbound routes per tenant, in order of preference (exact, patterns, catch-all).
    pub dids: HashMap<i64, Vec<DidEntry>>,
    /// Outbound policy per tenant (absent: the defaults).
    pub tenants: HashMap<i64, TenantOutbound>,
}

impl Outside {
    /// A tenant's trunk by name.
    pub fn trunk(&self, tenant: i64, name: &str) -> Option<&TrunkEntry> {
        self.trunks
            .values()
            .find(|t| t.tenant == tenant && t.name == name)
    }

    /// A tenant's outbound policy.
    pub fn policy(&self, tenant: i64) -> TenantOutbound {
        self.tenants.get(&tenant).cloned().unwrap_or_default()
    }

    /// Puts inbound routes in the order they are tried: exact numbers, then patterns in the
    /// order given, then the catch-all.
    pub fn sort_dids(&mut self) {
        for v in self.dids.values_mut() {
            v.sort_by_key(|d| d.pattern.rank());
        }
    }
}

/// Users looked up in the database and not found (bounded: a scanner trying random names must
/// not grow it forever; cleared whenever the extensions are reloaded).
#[derive(Debug, Default)]
pub(crate) struct Absent {
    set: HashSet<(i64, String)>,
}

impl Absent {
    const MAX: usize = 10_000;

    pub fn contains(&self, key: &(i64, String)) -> bool {
        self.set.contains(key)
    }

    pub fn insert(&mut self, key: (i64, String)) {
        if self.set.len() >= Self::MAX {
            self.set.clear();
        }
        self.set.insert(key);
    }

    pub fn clear(&mut self) {
        self.set.clear();
    }
}
