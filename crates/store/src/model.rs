//! The typed rows callers see. Timestamps are UTC; the database keeps them as milliseconds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use engine::outside::{CallClass, DidSpec, ExtLimits, RouteSpec, TenantOutbound, TrunkSpec};

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok($name::$var),)+
                    other => Err(Error::Invalid {
                        field: stringify!($name),
                        reason: format!("unknown value {other:?}"),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a control-panel administrator may do.
    AdminRole { /// Everything.
        Admin = "admin", /// Read only.
        Viewer = "viewer" }
);
text_enum!(
    /// What an API key may do.
    ApiScope { /// GET only.
        Read = "read", /// Everything.
        Full = "full" }
);
text_enum!(
    /// The transport a registration arrived on.
    Transport { /// UDP.
        Udp = "udp", /// TCP.
        Tcp = "tcp", /// TLS over TCP.
        Tls = "tls", /// WebSocket.
        Ws = "ws", /// Secure WebSocket.
        Wss = "wss" }
);
text_enum!(
    /// How a call ended, in the words CDR tools use.
    Disposition { /// Answered.
        Answered = "ANSWERED", /// Nobody answered.
        NoAnswer = "NO ANSWER", /// Callee busy.
        Busy = "BUSY", /// Failed (error, unreachable).
        Failed = "FAILED", /// Caller gave up before an answer.
        Canceled = "CANCELED" }
);
text_enum!(
    /// Who hung up.
    HangupBy { /// The calling party.
        Caller = "caller", /// The called party.
        Callee = "callee", /// Denwa itself (timeout, error, shutdown).
        System = "system" }
);

/// A company: every configuration row belongs to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Digest authentication realm; the extensions' HA1 values are computed with it.
    pub realm: String,
    /// True for the tenant created on first start.
    pub is_default: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Default prompt language of its callers (`en`, `ja`; empty: the node's `prompts.language`).
    pub language: String,
}

/// An extension (a SIP user that phones register as).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Extension number (digits, `*`, `#`, `+`), unique per tenant; also the SIP user name.
    pub number: String,
    /// Display name.
    pub display_name: String,
    /// True when a password has been set (the HA1 values exist).
    pub has_password: bool,
    /// Disabled extensions cannot register or call.
    pub enabled: bool,
    /// Maximum simultaneous registered contacts.
    pub max_contacts: i64,
    /// Class of service (how far it may call out).
    pub cos: CallClass,
    /// Caller ID on outside calls (empty: the tenant's main number).
    pub outbound_cid: String,
    /// Outside calls withhold caller ID.
    pub anonymous: bool,
    /// Outbound limits.
    pub limits: ExtLimits,
    /// Prompt language this extension hears (`en`, `ja`; empty: the tenant's default).
    pub language: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What a new extension starts with.
#[derive(Debug, Clone, Default)]
pub struct NewExtension {
    /// Extension number (validated: 1–32 of `0-9 * # +`).
    pub number: String,
    /// Display name.
    pub display_name: String,
    /// Plaintext password; only its HA1 digests are stored. `None` leaves the extension unable to
    /// authenticate until [`crate::Store::set_extension_password`] is called.
    pub password: Option<String>,
    /// `None` means enabled.
    pub enabled: Option<bool>,
    /// `None` means 3.
    pub max_contacts: Option<i64>,
}

/// A partial update; `None` fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct ExtensionUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// New contact limit.
    pub max_contacts: Option<i64>,
    /// New class of service.
    pub cos: Option<CallClass>,
    /// New outbound caller ID (empty: the tenant's main number).
    pub outbound_cid: Option<String>,
    /// Withhold caller ID on outside calls.
    pub anonymous: Option<bool>,
    /// New outbound limits.
    pub limits: Option<ExtLimits>,
    /// New prompt language (`en`, `ja`; empty: inherit the tenant's).
    pub language: Option<String>,
}

/// What the registrar and call authentication need about an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionAuth {
    /// Row id (for binding upserts).
    pub extension_id: i64,
    /// MD5(number:realm:password) in lowercase hex; `None` when no password is set.
    pub ha1_md5: Option<String>,
    /// SHA-256(number:realm:password) in lowercase hex; `None` when no password is set.
    pub ha1_sha256: Option<String>,
    /// Disabled extensions must be refused.
    pub enabled: bool,
}

/// A page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// At most this many rows (clamped to 1..=10000).
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: 100,
            offset: 0,
        }
    }
}

impl Page {
    pub(crate) fn clamped(self) -> (i64, i64) {
        (self.limit.clamp(1, 10_000), self.offset.max(0))
    }
}

/// A control-panel administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admin {
    /// Row id.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// Role.
    pub role: AdminRole,
    /// Consecutive failed logins.
    pub failed_logins: i64,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The result of a password check.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminLogin {
    /// Correct password; the failure counter was reset.
    Ok(Admin),
    /// Unknown user or wrong password (deliberately not told apart).
    BadCredentials,
    /// Too many failures; refused until the given time.
    Locked(DateTime<Utc>),
}

/// An API key (the token itself is shown once at creation and stored only as a hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Tenant the key is limited to; `None` for a node-wide key.
    pub tenant_id: Option<i64>,
    /// Human label.
    pub name: String,
    /// First characters of the token, for recognising it in listings.
    pub prefix: String,
    /// Scope.
    pub scope: ApiScope,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A location binding (one registered contact of an extension), as Kamailio's usrloc keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Row id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// Extension the contact belongs to.
    pub extension_id: i64,
    /// Address of record (e.g. `sip:1001@example.com`).
    pub aor: String,
    /// Contact URI as registered.
    pub contact_uri: String,
    /// When the binding expires.
    pub expires_at: DateTime<Utc>,
    /// Contact q-value.
    pub q: f64,
    /// Call-ID of the last REGISTER.
    pub call_id: String,
    /// CSeq of the last REGISTER.
    pub cseq: i64,
    /// User-Agent header.
    pub user_agent: String,
    /// Source `ip:port` the REGISTER came from (where requests must be sent behind NAT).
    pub received_addr: String,
    /// Transport it came over.
    pub transport: Transport,
    /// Local socket `ip:port` that received it (replies and requests leave from there).
    pub local_addr: String,
    /// RFC 5626 `+sip.instance`.
    pub instance_id: Option<String>,
    /// RFC 5626 `reg-id`.
    pub reg_id: Option<i64>,
    /// Node that holds the connection.
    pub node: String,
    /// Bit flags (see [`Registration::FLAG_UNREACHABLE`]).
    pub flags: i64,
    /// Last REGISTER refresh.
    pub last_seen: DateTime<Utc>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
}

impl Registration {
    /// The contact did not answer the last keep-alive / OPTIONS probe.
    pub const FLAG_UNREACHABLE: i64 = 1;
}

/// A binding to insert or refresh; keyed by `(extension_id, contact_uri)`.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingUpsert {
    /// Tenant.
    pub tenant_id: i64,
    /// Extension.
    pub extension_id: i64,
    /// Address of record.
    pub aor: String,
    /// Contact URI.
    pub contact_uri: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// q-value.
    pub q: f64,
    /// Call-ID.
    pub call_id: String,
    /// CSeq.
    pub cseq: i64,
    /// User-Agent.
    pub user_agent: String,
    /// Source address.
    pub received_addr: String,
    /// Transport.
    pub transport: Transport,
    /// Receiving local socket.
    pub local_addr: String,
    /// RFC 5626 instance.
    pub instance_id: Option<String>,
    /// RFC 5626 reg-id.
    pub reg_id: Option<i64>,
    /// Node name.
    pub node: String,
    /// Flags.
    pub flags: i64,
    /// The time of this REGISTER (becomes `last_seen` and `updated_at`).
    pub now: DateTime<Utc>,
}

/// RTP statistics of one call leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LegStats {
    /// Packets received from this leg.
    pub pkts_rx: i64,
    /// Packets sent to this leg.
    pub pkts_tx: i64,
    /// Packets lost.
    pub lost: i64,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
}

/// A call record to insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCdr {
    /// Tenant.
    pub tenant_id: i64,
    /// SIP Call-ID of the A leg.
    pub call_id: String,
    /// Calling number.
    pub caller: String,
    /// Called number.
    pub callee: String,
    /// Calling display name.
    pub caller_name: String,
    /// INVITE received.
    pub start_time: DateTime<Utc>,
    /// 200 OK sent, if answered.
    pub answer_time: Option<DateTime<Utc>>,
    /// Call ended.
    pub end_time: DateTime<Utc>,
    /// Whole seconds from start to end.
    pub duration_s: i64,
    /// Whole seconds from answer to end.
    pub billsec: i64,
    /// Outcome.
    pub disposition: Disposition,
    /// Who hung up.
    pub hangup_by: HangupBy,
    /// Cause text (SIP status or reason).
    pub hangup_cause: String,
    /// Negotiated codec.
    pub codec: String,
    /// Caller leg RTP statistics.
    pub a: LegStats,
    /// Callee leg RTP statistics.
    pub b: LegStats,
    /// Direction, trunk, DID and numbers.
    #[serde(flatten, default)]
    pub route: CdrRoute,
}

text_enum!(
    /// Which way a call went.
    #[derive(Default)]
    Direction { /// Extension to extension.
        #[default]
        Internal = "internal", /// From a trunk.
        Inbound = "inbound", /// To a trunk.
        Outbound = "outbound" }
);

/// The routing facts of a call record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrRoute {
    /// Internal, inbound or outbound.
    pub direction: Direction,
    /// The trunk that carried it (inbound or outbound), empty for internal calls.
    pub trunk: String,
    /// The DID an inbound call was for.
    pub did: String,
    /// What the caller dialled.
    pub dialled: String,
    /// The number sent to the trunk (after strip/prepend).
    pub sent_number: String,
    /// Caller ID presented (outbound) or received (inbound).
    pub caller_id: String,
}

/// A stored call record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// Row id.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: NewCdr,
}

/// Filters for [`crate::Store::list_cdrs`]; all optional.
#[derive(Debug, Clone, Default)]
pub struct CdrQuery {
    /// Only this tenant.
    pub tenant_id: Option<i64>,
    /// Calls that started at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this time.
    pub to: Option<DateTime<Utc>>,
    /// Calls where this number is the caller or the callee.
    pub number: Option<String>,
    /// Only this outcome.
    pub disposition: Option<Disposition>,
    /// Only this direction.
    pub direction: Option<Direction>,
    /// Only calls over this trunk.
    pub trunk: Option<String>,
    /// Only calls to this DID.
    pub did: Option<String>,
    /// Paging (newest first).
    pub page: Page,
}

/// A trunk (its password is never read back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trunk {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name, unique per tenant.
    pub name: String,
    /// Settings.
    #[serde(flatten)]
    pub spec: TrunkSpec,
    /// True when a digest password is stored.
    pub has_password: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An outbound route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRoute {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name, unique per tenant.
    pub name: String,
    /// Order among the tenant's routes (1 is tried first).
    pub position: i64,
    /// Settings.
    #[serde(flatten)]
    pub spec: RouteSpec,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An inbound route (DID).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundRoute {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The DID, a pattern, or `any`.
    pub pattern: String,
    /// Settings.
    #[serde(flatten)]
    pub spec: DidSpec,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A trunk's live state as a node last wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrunkStatusRow {
    /// The trunk.
    pub trunk_id: i64,
    /// The node that wrote it.
    pub node: String,
    /// The state document (registration, health, calls), as the engine reports it.
    pub status: serde_json::Value,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
}
