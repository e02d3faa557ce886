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
    /// Routing: see what the dialplan decides for a call, without placing it.
    #[command(subcommand)]
    Route(RouteCmd),
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
    },
}

/// `denwa route ...`
#[derive(Debug, Subcommand)]
pub enum RouteCmd {
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
    },
    /// Remove a setting (back to its default).
    Unset {
        /// Key
        key: String,
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
