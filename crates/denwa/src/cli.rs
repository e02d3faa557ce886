//! Command-line interface. Every subcommand takes the global database options and works whether
//! or not `serve` is running. Password rules come from `engine::policy`, the settings from
//! `engine::settings`, the same definitions the panel and the API use.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use web::engine::policy;

/// Help of the SIP password options, from the policy's numbers.
fn sip_password_help(what: &str) -> String {
    format!(
        "{what} ({}-{} printable ASCII characters, mixing at least {} of lower case, upper case, \
         digits and symbols); generated when omitted",
        policy::SIP_PASSWORD_LEN.start(),
        policy::SIP_PASSWORD_LEN.end(),
        policy::SIP_PASSWORD_CLASSES
    )
}

/// Help of the administrator password option, from the policy's numbers.
fn admin_password_help() -> String {
    format!(
        "Password (at least {} characters); generated when omitted",
        policy::ADMIN_PASSWORD_MIN
    )
}

/// Denwa IP-PBX.
#[derive(Debug, Parser)]
#[command(
    name = "denwa",
    version,
    about = "Denwa IP-PBX: SIP registrar, B2BUA calls with relayed media, call records, control panel"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// TOML file with node-local settings [env: DENWA_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite file, recordings, prompts) [env: DENWA_DATA_DIR; default ./denwa-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://... [env: DENWA_DATABASE_URL; default SQLite in the data dir]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log level or tracing filter (error, warn, info, debug, trace) [env: DENWA_LOG_LEVEL]
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the PBX: SIP on UDP and TCP, RTP relay, HTTP (control panel, REST API, /healthz, /metrics).
    Serve(ServeArgs),
    /// Manage extensions (phones' accounts).
    #[command(subcommand)]
    Extension(ExtensionCmd),
    /// Show registered phones (location bindings).
    #[command(subcommand)]
    Registration(RegistrationCmd),
    /// Show call records.
    #[command(subcommand)]
    Cdr(CdrCmd),
    /// SIP trunks to providers: add, edit, remove, and their live state.
    #[command(subcommand)]
    Trunk(TrunkCmd),
    /// Outbound routes (dial patterns -> trunks), and what the dialplan decides for a call.
    #[command(subcommand)]
    Route(RouteCmd),
    /// Inbound routes: which destination each DID (dialled number from a trunk) goes to.
    #[command(subcommand)]
    Did(DidCmd),
    /// The tenant's outbound policy: main number, emergency numbers, toll-fraud limits.
    #[command(subcommand)]
    Outbound(OutboundCmd),
    /// IVR menus (auto-attendants): greeting, options per digit, timeouts, fallback.
    #[command(subcommand)]
    Ivr(crate::ivr_cmd::IvrCmd),
    /// Conference rooms: number, PIN, size, join muted, join tones.
    #[command(subcommand)]
    Conf(crate::conf_cmd::ConfCmd),
    /// Ring groups: members, strategy, ring times, caller-ID prefix, no-answer destination.
    #[command(subcommand)]
    Group(crate::group_cmd::GroupCmd),
    /// Page groups (page:NAME): members paged at once, one-way, auto-answered (intercom: *80).
    #[command(subcommand)]
    Page(crate::page_cmd::PageCmd),
    /// Per-extension call forwarding (always, busy, no answer, unreachable) and follow-me.
    #[command(subcommand)]
    Forward(crate::group_cmd::ForwardCmd),
    /// Do not disturb for an extension: on, off or toggle (busy or voicemail treatment).
    Dnd(crate::group_cmd::DndArgs),
    /// Feature codes (*8 pickup, *28N day/night, ...): list, change, switch off, reset.
    #[command(subcommand)]
    Features(crate::codes_cmd::FeaturesCmd),
    /// Time conditions (timecond:NAME): weekly hours, date rules, holidays, day/night override.
    #[command(subcommand)]
    Timecond(crate::codes_cmd::TimecondCmd),
    /// Call pickup groups of extensions (*8 group pickup, **EXT directed pickup).
    #[command(subcommand)]
    Pickup(crate::codes_cmd::PickupCmd),
    /// Call park: the park lot (slots, timeout, hold music, fallback) and the parked calls.
    #[command(subcommand)]
    Park(crate::park_cmd::ParkCmd),
    /// Voicemail: mailbox settings and PINs, messages (vm:EXT; *97 / *98 by phone).
    #[command(subcommand)]
    Voicemail(crate::vm_cmd::VmCmd),
    /// Call recording: policies per extension/route/trunk, settings, recordings, retention.
    #[command(subcommand)]
    Recording(crate::recording_cmd::RecordingCmd),
    /// Manage control-panel administrators.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Create or restore a complete backup (database and data-dir files).
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Show or change runtime settings kept in the database (a running server applies them).
    #[command(subcommand)]
    Setting(SettingCmd),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCmd),
    /// SIP tools.
    #[command(subcommand)]
    Sip(SipCmd),
    /// The licence: show what is in force (limits, usage, this node's id) or install one.
    #[command(subcommand)]
    License(crate::license_cmd::LicenseCmd),
    /// Reports: aggregate call records into the report tables (the server does it every minute).
    #[command(subcommand)]
    Report(crate::report_cmd::ReportCmd),
    /// Prompts (English/Japanese): list, install the default set, upload replacements, reset.
    #[command(subcommand)]
    Prompt(crate::prompt_cmd::PromptCmd),
    /// Music on hold: classes of audio files per tenant.
    #[command(subcommand)]
    Moh(crate::prompt_cmd::MohCmd),
    /// The active/standby pair: status of both nodes, manual switchover (talks to the local
    /// server started with `serve --cluster`); `init-db` sets up a node's own PostgreSQL.
    ///
    /// Writes are fenced by epochs: each takeover's epoch is stamped in the database, and a
    /// node writes only while it is active under exactly that epoch; an old active that comes
    /// back (frozen, partitioned) has every write refused and demotes itself.
    #[command(subcommand)]
    Cluster(crate::cluster_cmd::ClusterCmd),
}

/// `denwa serve` options.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// SIP listen address, UDP and TCP; repeat for several network segments [env: DENWA_SIP_LISTEN, comma-separated; default 0.0.0.0:5060]
    #[arg(long = "sip-listen", value_name = "ADDR:PORT")]
    pub sip_listen: Vec<String>,
    /// HTTP listen address: control panel, REST API /api/v1, /healthz, /metrics [env: DENWA_HTTP_LISTEN; default 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<String>,
    /// RTP port range for the media relay [env: DENWA_RTP_PORTS; default 10000-20000]
    #[arg(long, value_name = "LOW-HIGH")]
    pub rtp_ports: Option<String>,
    /// Address written into SDP and Contact instead of the local one (public address behind NAT) [env: DENWA_ADVERTISE]
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<String>,
    /// This node's name (shown in registrations) [env: DENWA_NODE_NAME; default: the host name]
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// SIP timer T1 in milliseconds (RTT estimate; T2 and timeouts scale from it) [default 500]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub sip_t1_ms: Option<u64>,
    /// Media relay threads, each serving its share of the calls' RTP sockets [env: DENWA_RELAY_THREADS; default: half the CPUs, at least 1]
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=crate::config::MAX_RELAY_THREADS as u64))]
    pub relay_threads: Option<usize>,
    /// Also run the backup/report server (topology standalone-backup) with its HTTPS listener on this address, e.g. 0.0.0.0:8443 [env: DENWA_BACKUP_LISTEN]
    #[arg(long, value_name = "ADDR:PORT", env = "DENWA_BACKUP_LISTEN")]
    pub backup_listen: Option<std::net::SocketAddr>,
    /// Run as one node of an active/standby pair described by this TOML file (heartbeat paths,
    /// witness, application addresses); needs an active-standby licence. See docs/ha.md
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<std::path::PathBuf>,
}

/// `denwa extension ...`
#[derive(Debug, Subcommand)]
pub enum ExtensionCmd {
    /// Add an extension; prints the generated password when none is given.
    Add {
        /// Extension number (digits, also * # +)
        number: String,
        #[arg(long, help = sip_password_help("SIP password"))]
        password: Option<String>,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        /// Prompt language this extension hears: en, ja or inherit (the tenant's default)
        #[arg(long, value_name = "LANG")]
        language: Option<String>,
    },
    /// List extensions.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Remove an extension (and its registrations).
    Remove {
        /// Extension number
        number: String,
    },
    /// Change an extension's name, class of service, outbound caller ID or limits.
    Edit {
        /// Extension number
        number: String,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        /// Class of service: internal, local, national, mobile or international (international is never a default)
        #[arg(long, value_name = "CLASS")]
        cos: Option<String>,
        /// Caller ID on outside calls ("" for the tenant's main number)
        #[arg(long, value_name = "NUMBER")]
        outbound_cid: Option<String>,
        /// Withhold caller ID on outside calls (Privacy: id): true or false
        #[arg(long, value_name = "BOOL")]
        anonymous: Option<bool>,
        /// Outside calls in progress at once
        #[arg(long, value_name = "N")]
        max_outbound_calls: Option<u32>,
        /// Outside calls started per hour
        #[arg(long, value_name = "N")]
        max_calls_per_hour: Option<u32>,
        /// International minutes per day
        #[arg(long, value_name = "MIN")]
        intl_minutes: Option<u32>,
        /// Enable or disable: true or false
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        /// Prompt language this extension hears: en, ja or inherit (the tenant's default)
        #[arg(long, value_name = "LANG")]
        language: Option<String>,
    },
    /// Set a new password; prints the generated one when none is given.
    Passwd {
        /// Extension number
        number: String,
        #[arg(long, help = sip_password_help("New SIP password"))]
        password: Option<String>,
    },
}

/// `denwa registration ...`
#[derive(Debug, Subcommand)]
pub enum RegistrationCmd {
    /// List current (unexpired) registrations.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}

/// `denwa cdr ...`
#[derive(Debug, Subcommand)]
pub enum CdrCmd {
    /// List the most recent call records, newest first.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        /// How many records
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only internal, inbound or outbound calls
        #[arg(long)]
        direction: Option<String>,
        /// Only calls over this trunk
        #[arg(long)]
        trunk: Option<String>,
        /// Only calls to this DID
        #[arg(long)]
        did: Option<String>,
    },
}

/// Trunk settings (on `add`, `--host` is required; on `edit`, only what is given changes).
#[derive(Debug, Args, Clone, Default)]
pub struct TrunkFlags {
    /// Provider host name or address, optionally with :PORT
    #[arg(long, value_name = "HOST[:PORT]")]
    pub host: Option<String>,
    /// udp or tcp
    #[arg(long)]
    pub transport: Option<String>,
    /// Account (registration AOR user and default From user)
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Digest user when it differs from --username
    #[arg(long, value_name = "USER")]
    pub auth_username: Option<String>,
    /// Digest password (stored for answering the provider's challenges; never shown)
    #[arg(long)]
    pub password: Option<String>,
    /// Register to the provider (a registration trunk); --register false for an IP trunk
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub register: Option<bool>,
    /// Where the DID of inbound calls is: ruri (Request-URI) or to (To header)
    #[arg(long, value_name = "ruri|to")]
    pub did_from: Option<String>,
    /// Send every request to this proxy instead of the host ("" for none)
    #[arg(long, value_name = "HOST[:PORT]")]
    pub outbound_proxy: Option<String>,
    /// From user on calls (default: the caller ID, or the account with --identity pai/ppi)
    #[arg(long, value_name = "USER")]
    pub from_user: Option<String>,
    /// From domain (default: the host)
    #[arg(long, value_name = "DOMAIN")]
    pub from_domain: Option<String>,
    /// Caller ID presentation: from, pai (P-Asserted-Identity) or ppi (P-Preferred-Identity)
    #[arg(long)]
    pub identity: Option<String>,
    /// Codecs offered, comma-separated (PCMU, PCMA, G722, opus)
    #[arg(long, value_name = "LIST")]
    pub codecs: Option<String>,
    /// DTMF: rfc4733, inband or info
    #[arg(long)]
    pub dtmf: Option<String>,
    /// Most simultaneous calls (0: no limit)
    #[arg(long, value_name = "N")]
    pub max_calls: Option<u32>,
    /// Seconds between OPTIONS health checks (0: off)
    #[arg(long, value_name = "S")]
    pub ping_interval: Option<u32>,
    /// Registration interval asked for, seconds
    #[arg(long, value_name = "S")]
    pub expires: Option<u32>,
    /// More source addresses (IP or CIDR) whose requests are this trunk's; repeat
    #[arg(long = "inbound-addr", value_name = "CIDR")]
    pub inbound_addr: Vec<String>,
    /// Enable or disable: true or false
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
}

/// `denwa trunk ...`
#[derive(Debug, Subcommand)]
pub enum TrunkCmd {
    /// Add a trunk.
    Add {
        /// Trunk name (letters, digits, - _ .)
        name: String,
        #[command(flatten)]
        flags: TrunkFlags,
    },
    /// Change a trunk.
    Edit {
        /// Trunk name
        name: String,
        #[command(flatten)]
        flags: TrunkFlags,
    },
    /// List trunks.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show one trunk's settings.
    Show {
        /// Trunk name
        name: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Remove a trunk (refused while a route uses it).
    Remove {
        /// Trunk name
        name: String,
    },
    /// Registration state, last OPTIONS answer and calls in progress, as the server last stored them.
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}

/// Outbound route settings (on `edit`, only what is given changes; --pattern and --trunk
/// replace the lists).
#[derive(Debug, Args, Clone, Default)]
pub struct RouteFlags {
    /// Dial pattern, FreePBX style (0|0ZXXXXXXXX, 9|1NXXNXXXXXX, X Z N [1-5] . !); repeat
    #[arg(long = "pattern", value_name = "P")]
    pub patterns: Vec<String>,
    /// Trunk to try, in order; repeat
    #[arg(long = "trunk", value_name = "T")]
    pub trunks: Vec<String>,
    /// Digits removed after the pattern's PREFIX| part
    #[arg(long, value_name = "N")]
    pub strip: Option<u32>,
    /// Digits put in front of the number sent
    #[arg(long, value_name = "DIGITS")]
    pub prepend: Option<String>,
    /// Class of service a caller needs: local, national, mobile or international
    #[arg(long, value_name = "CLASS")]
    pub cos: Option<String>,
    /// Caller ID on this route ("" for the extension's or the main number)
    #[arg(long, value_name = "NUMBER")]
    pub caller_id: Option<String>,
    /// Emergency calls go out through this route's trunks first: true or false
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub emergency: Option<bool>,
    /// Position among the routes (1 is tried first)
    #[arg(long, value_name = "N")]
    pub position: Option<i64>,
    /// Enable or disable: true or false
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
}

/// `denwa did ...`
#[derive(Debug, Subcommand)]
pub enum DidCmd {
    /// Add an inbound route: a DID (0312345678), a pattern (03123456XX) or `any` (catch-all).
    Add {
        /// DID, pattern or `any`
        pattern: String,
        /// Destination: ext:1001, group:NAME, ivr:NAME, vm:1001, timecond:NAME or hangup
        #[arg(long, value_name = "DEST")]
        to: String,
        /// Only calls from this trunk
        #[arg(long, value_name = "T")]
        trunk: Option<String>,
        /// A note
        #[arg(long)]
        description: Option<String>,
    },
    /// Change an inbound route's destination (or trunk, or note).
    Edit {
        /// DID, pattern or `any`
        pattern: String,
        /// Destination
        #[arg(long, value_name = "DEST")]
        to: Option<String>,
        /// Only calls from this trunk ("" for any)
        #[arg(long, value_name = "T")]
        trunk: Option<String>,
        /// A note
        #[arg(long)]
        description: Option<String>,
    },
    /// List inbound routes.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Remove an inbound route.
    Remove {
        /// DID, pattern or `any`
        pattern: String,
    },
}

/// `denwa outbound ...`
#[derive(Debug, Subcommand)]
pub enum OutboundCmd {
    /// Show the policy.
    Show {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Change the policy (only what is given changes).
    Set {
        /// The company's main number (caller ID for extensions without their own)
        #[arg(long, value_name = "NUMBER")]
        main_number: Option<String>,
        /// Emergency numbers, comma-separated (always routed, whatever the class of service)
        #[arg(long, value_name = "LIST")]
        emergency: Option<String>,
        /// Outside calls in progress at once, whole tenant
        #[arg(long, value_name = "N")]
        max_calls: Option<u32>,
        /// Outside calls started per hour, whole tenant
        #[arg(long, value_name = "N")]
        max_per_hour: Option<u32>,
        /// International minutes per day, whole tenant
        #[arg(long, value_name = "MIN")]
        intl_minutes: Option<u32>,
    },
}

/// `denwa route ...`
#[derive(Debug, Subcommand)]
pub enum RouteCmd {
    /// Add an outbound route (at the end, or at --position).
    Add {
        /// Route name (letters, digits, - _ .)
        name: String,
        #[command(flatten)]
        flags: RouteFlags,
    },
    /// Change an outbound route.
    Edit {
        /// Route name
        name: String,
        #[command(flatten)]
        flags: RouteFlags,
    },
    /// List outbound routes in the order they are tried.
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Remove an outbound route.
    Remove {
        /// Route name
        name: String,
    },
    /// The dialplan's decision for a call from an extension to a number: the destination
    /// (ext:, group:, ivr:, vm:, conf:, park, timecond:, route:, hangup) or the SIP rejection.
    Test {
        /// Calling extension
        #[arg(long, value_name = "EXT")]
        from: String,
        /// Dialled digits
        #[arg(long, value_name = "DIGITS")]
        number: String,
        /// When the call is placed, RFC 3339 (e.g. 2026-12-24T18:30:00+09:00) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}

/// `denwa admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Add a control-panel administrator; prints the generated password when none is given.
    Add {
        /// User name (letters, digits and . _ - @)
        user: String,
        #[arg(long, help = admin_password_help())]
        password: Option<String>,
        /// Role: admin or viewer
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

/// `denwa backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Write a consistent backup archive (safe while the server runs).
    Create {
        /// Output file
        file: PathBuf,
    },
    /// Validate a backup archive and replace all data with it (nothing changes if it is invalid).
    Restore {
        /// Backup file
        file: PathBuf,
    },
    /// Only validate a backup archive.
    Verify {
        /// Backup file
        file: PathBuf,
    },
    /// PBX: pair with a backup server (topology standalone-backup) using a one-time code made
    /// on the server (its panel, or `denwa backup pair-code` there).
    Pair {
        /// The server's backup address, HOST[:PORT] or https://HOST[:PORT] (default port 8443)
        address: String,
        /// The one-time pairing code (XXXX-XXXX-XXXX-XXXX)
        code: String,
    },
    /// PBX: forget the pairing with the backup server.
    Unpair,
    /// PBX: make a backup and ship it to the paired backup server now.
    Ship,
    /// PBX: ship daily at this time (HH:MM or HH:MM:SS in the reports.timezone zone); "off" for on demand only.
    Schedule {
        /// HH:MM, HH:MM:SS or off
        at: String,
    },
    /// PBX: pairing, schedule and the last shipping outcome.
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// PBX: the generations the paired backup server keeps.
    Generations {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// PBX: fetch a generation from the backup server and restore it here (database and
    /// prompts, voicemail, recordings, music on hold).
    RestoreRemote {
        /// Generation number (see `denwa backup generations`)
        id: i64,
    },
    /// Backup server: make a one-time pairing code (valid 15 minutes, single use).
    PairCode,
    /// Backup server: the uploads received (kept generations and refused ones).
    Received {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Backup server: how many generations to keep (older ones are deleted).
    Keep {
        /// 1-1000
        generations: i64,
    },
    /// Backup server: the paired nodes.
    Peers {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Backup server: revoke a paired node (its uploads are refused from then on).
    Revoke {
        /// Paired node id (see `denwa backup peers`)
        id: i64,
    },
}

/// `denwa setting ...`
#[derive(Debug, Subcommand)]
pub enum SettingCmd {
    /// List the settings with their values (defaults are shown for unset keys).
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Set a setting (the value is checked against the key's type).
    Set {
        /// Key, e.g. calls.no_answer_timeout_s
        key: String,
        /// Value
        value: String,
        /// Set the tenant's own value instead of the node's (keys a tenant may override:
        /// blf.show_caller, intercom.audio, recording.beep)
        #[arg(long)]
        tenant: bool,
    },
    /// Remove a setting (back to its default; with --tenant, back to the node's value).
    Unset {
        /// Key
        key: String,
        /// Remove the tenant's own value (the node's applies again)
        #[arg(long)]
        tenant: bool,
    },
}

/// `denwa db ...`
#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// Apply pending schema migrations (also done automatically at start).
    Migrate,
}

/// `denwa sip ...`
#[derive(Debug, Subcommand)]
pub enum SipCmd {
    /// Parse raw SIP messages from files: exit 0 when all are valid, 1 otherwise.
    Lint {
        /// Files holding one raw SIP message each (CRLF or LF line ends)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}
