//! Each node of an active/standby pair runs its own PostgreSQL; this module manages it: the
//! `[postgres]` section of the cluster file, initialising a node (`initdb` on the first Active,
//! `pg_basebackup` on the Standby), starting it, promoting it (`pg_ctl promote`), re-attaching an
//! old Active as the new Standby (`pg_rewind` against the new Active, falling back to a fresh
//! `pg_basebackup`), synchronous replication on/off (`ALTER SYSTEM SET
//! synchronous_standby_names` + `pg_reload_conf()`), and the database health the role machine
//! needs (primary or replica, streaming, lag in WAL bytes).
//!
//! Everything here runs PostgreSQL's own tools as the OS user that owns the data directory
//! (`runuser -u USER --` when Denwa runs as root) and blocks; the driver calls it on blocking
//! threads. Node-specific settings (port, listen address, socket directory) are given on the
//! server's command line, never in a file, because `pg_basebackup`/`pg_rewind` copy the
//! configuration files from the peer.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ha::DbHealth;
use serde::Deserialize;

/// Where Debian puts PostgreSQL 15's server tools.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How long a start, stop or promotion may take.
const CTL_TIMEOUT_S: u32 = 60;
/// How long a re-attached standby may take to stream before it is cloned again.
const STREAM_WAIT: Duration = Duration::from_secs(15);
/// How long a health query may take (the driver measures health every second).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(800);

fn default_bin_dir() -> PathBuf {
    PathBuf::from(DEFAULT_BIN_DIR)
}

fn default_os_user() -> String {
    "postgres".into()
}

fn default_database() -> String {
    "denwa".into()
}

/// The `[postgres]` section of the cluster file: this node's own PostgreSQL and how it
/// replicates with the peer's.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PgPairConfig {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// PostgreSQL's server tools (`initdb`, `pg_ctl`, `pg_rewind`, `pg_basebackup`, `psql`).
    #[serde(default = "default_bin_dir")]
    pub bin_dir: PathBuf,
    /// Directory for the Unix socket, the server log and the replication password file
    /// (absolute; created, owned by `os_user`, mode 0700).
    pub run_dir: PathBuf,
    /// This node's PostgreSQL port.
    pub port: u16,
    /// This node's address on the replication path (the server listens here).
    pub listen: IpAddr,
    /// The peer's address on the replication path.
    pub peer: IpAddr,
    /// The peer's PostgreSQL port (default: `port`).
    #[serde(default)]
    pub peer_port: Option<u16>,
    /// The replication role (created by `init-db` on the first Active).
    pub replication_user: String,
    /// File holding the replication role's password (first line).
    pub replication_password_file: PathBuf,
    /// This node's name as a standby (`application_name`; its replication slot on the peer is
    /// `denwa_<name>`).
    pub application_name: String,
    /// The peer's `application_name` (what `synchronous_standby_names` names on this node).
    pub peer_application_name: String,
    /// The OS user that owns the data directory and runs the server.
    #[serde(default = "default_os_user")]
    pub os_user: String,
    /// The PBX database `init-db` creates on the first Active.
    #[serde(default = "default_database")]
    pub database: String,
}

fn simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn safe_path(p: &Path) -> bool {
    p.is_absolute()
        && p.to_str().is_some_and(|s| {
            s.len() < 200
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "'\"\\:=".contains(c))
        })
}

impl PgPairConfig {
    /// Checks the section; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("data_dir", &self.data_dir),
            ("bin_dir", &self.bin_dir),
            ("run_dir", &self.run_dir),
            ("replication_password_file", &self.replication_password_file),
        ] {
            if !safe_path(p) {
                return Err(format!(
                    "postgres.{name} must be an absolute path without spaces, quotes, \\ : or =, got {}",
                    p.display()
                ));
            }
        }
        if self.run_dir.starts_with(&self.data_dir) || self.data_dir.starts_with(&self.run_dir) {
            return Err(
                "postgres.run_dir and postgres.data_dir must not contain each other".into(),
            );
        }
        if self.port == 0 || self.peer_port == Some(0) {
            return Err("postgres.port and postgres.peer_port must not be 0".into());
        }
        for (name, ip) in [("listen", self.listen), ("peer", self.peer)] {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!(
                    "postgres.{name} must be a concrete address, got {ip}"
                ));
            }
        }
        if self.listen == self.peer && self.port == self.peer_port() {
            return Err("postgres.peer is this node's own listen address and port".into());
        }
        for (name, v) in [
            ("replication_user", &self.replication_user),
            ("application_name", &self.application_name),
            ("peer_application_name", &self.peer_application_name),
            ("os_user", &self.os_user),
            ("database", &self.database),
        ] {
            if !simple_name(v) {
                return Err(format!(
                    "postgres.{name} must be 1-40 characters of a-z, 0-9 and _ (not starting with a digit), got {v:?}"
                ));
            }
        }
        if self.application_name == self.peer_application_name {
            return Err("postgres.application_name and peer_application_name must differ".into());
        }
        Ok(())
    }

    /// The peer's PostgreSQL port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port.unwrap_or(self.port)
    }

    /// The replication slot a node with this application name streams through.
    pub fn slot_of(app: &str) -> String {
        format!("denwa_{app}")
    }

    /// The store URL of the PBX database on this node (over the Unix socket).
    pub fn store_url(&self) -> String {
        format!(
            "postgres://{}@localhost:{}/{}?host={}",
            self.os_user,
            self.port,
            self.database,
            self.run_dir.display()
        )
    }
}

/// What [`PgNode::reattach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reattach {
    /// `pg_rewind` brought the old data in line with the new Active.
    Rewound,
    /// `pg_rewind` failed; the data directory was cloned again with `pg_basebackup`.
    Recloned,
}

/// This node's PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgNode {
    cfg: PgPairConfig,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn user_ids(name: &str) -> Result<(u32, u32)> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: getpwnam gets a valid C string; the record is read at once, before any other call
    // could overwrite it.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        bail!(
            "OS user {name:?} does not exist (install PostgreSQL: apt-get install -y postgresql)"
        );
    }
    // SAFETY: non-null record from getpwnam, see above.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Quotes a value for postgresql.conf.
fn conf_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// Escapes a field of a libpq password file.
fn pgpass_field(v: &str) -> String {
    v.replace('\\', "\\\\").replace(':', "\\:")
}

fn output_text(out: &std::process::Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let o = String::from_utf8_lossy(&out.stdout);
    if s.is_empty() {
        s = o.trim().to_string();
    }
    s
}

impl PgNode {
    /// Wraps a validated section.
    pub fn new(cfg: PgPairConfig) -> Result<PgNode> {
        cfg.validate().map_err(|e| anyhow!("cluster file: {e}"))?;
        Ok(PgNode { cfg })
    }

    /// The section.
    pub fn config(&self) -> &PgPairConfig {
        &self.cfg
    }

    fn tool(&self, name: &str) -> Command {
        let bin = self.cfg.bin_dir.join(name);
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", &self.cfg.os_user, "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        c.env("PGPASSFILE", self.passfile())
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .current_dir("/");
        c
    }

    fn run(&self, mut c: Command, what: &str) -> Result<String> {
        let out = c
            .output()
            .with_context(|| format!("{what}: cannot run {:?}", c.get_program()))?;
        if !out.status.success() {
            bail!("{what} failed ({}): {}", out.status, output_text(&out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn passfile(&self) -> PathBuf {
        self.cfg.run_dir.join("repl.pgpass")
    }

    fn log_file(&self) -> PathBuf {
        self.cfg.run_dir.join("postgresql.log")
    }

    fn password(&self) -> Result<String> {
        let p = &self.cfg.replication_password_file;
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading the replication password file {}", p.display()))?;
        let pw = text.lines().next().unwrap_or("").trim_end().to_string();
        if pw.len() < 8 {
            bail!(
                "the replication password in {} must be at least 8 characters",
                p.display()
            );
        }
        Ok(pw)
    }

    fn owned_dir(&self, p: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        if is_root() {
            let (u, g) = user_ids(&self.cfg.os_user)?;
            std::os::unix::fs::chown(p, Some(u), Some(g))
                .with_context(|| format!("chown {}", p.display()))?;
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", p.display()))
    }

    fn write_owned(&self, p: &Path, text: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", p.display()))?;
        if is_root() {
            let (u, g) = user_ids(&self.cfg.os_user)?;
            std::os::unix::fs::chown(p, Some(u), Some(g))
                .with_context(|| format!("chown {}", p.display()))?;
        }
        Ok(())
    }

    /// Creates the run directory and the libpq password file for the replication role.
    fn prepare_run_dir(&self) -> Result<()> {
        self.owned_dir(&self.cfg.run_dir)?;
        let pw = self.password()?;
        self.write_owned(
            &self.passfile(),
            &format!(
                "*:*:*:{}:{}\n",
                pgpass_field(&self.cfg.replication_user),
                pgpass_field(&pw)
            ),
        )
    }

    fn data_empty(&self) -> bool {
        std::fs::read_dir(&self.cfg.data_dir).map_or(true, |mut d| d.next().is_none())
    }

    /// libpq connection string to the peer (replication role, password from the password file).
    fn peer_conninfo(&self, dbname: Option<&str>) -> String {
        let mut s = format!(
            "host={} port={} user={} application_name={} passfile={} connect_timeout=5",
            self.cfg.peer,
            self.cfg.peer_port(),
            self.cfg.replication_user,
            self.cfg.application_name,
            self.passfile().display()
        );
        if let Some(d) = dbname {
            s.push_str(" dbname=");
            s.push_str(d);
        }
        s
    }

    /// Runs SQL on the local server over its socket as the superuser; stdout, trimmed.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_db("postgres", sql)
    }

    /// Like [`PgNode::psql`], in database `db`.
    pub fn psql_db(&self, db: &str, sql: &str) -> Result<String> {
        let mut c = self.tool("psql");
        c.arg("-h")
            .arg(&self.cfg.run_dir)
            .arg("-p")
            .arg(self.cfg.port.to_string())
            .args(["-U", &self.cfg.os_user, "-d", db, "-X", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql]);
        self.run(c, "psql")
    }

    /// Runs SQL given on stdin (kept out of the process list: passwords).
    fn psql_stdin(&self, sql: &str) -> Result<()> {
        use std::io::Write as _;
        let mut c = self.tool("psql");
        c.arg("-h")
            .arg(&self.cfg.run_dir)
            .arg("-p")
            .arg(self.cfg.port.to_string())
            .args(["-U", &self.cfg.os_user, "-d", "postgres", "-X", "-q"])
            .args(["-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().context("psql: cannot run it")?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(sql.as_bytes())
                .context("psql: writing the SQL")?;
        }
        let out = child.wait_with_output().context("psql")?;
        if !out.status.success() {
            bail!("psql failed ({}): {}", out.status, output_text(&out));
        }
        Ok(())
    }

    /// Is the server running (`pg_ctl status`)?
    pub fn running(&self) -> bool {
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(&self.cfg.data_dir)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().is_ok_and(|s| s.success())
    }

    /// Starts the server with this node's own settings, waiting until it accepts connections
    /// (a standby accepts read-only ones).
    pub fn start(&self) -> Result<()> {
        self.prepare_run_dir()?;
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(&self.cfg.data_dir)
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses={} -c cluster_name={}",
                self.cfg.port,
                self.cfg.run_dir.display(),
                self.cfg.listen,
                self.cfg.application_name
            ))
            .args(["-w", "-t", &CTL_TIMEOUT_S.to_string(), "start"]);
        self.run(c, "pg_ctl start").map(drop).map_err(|e| {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            e.context(format!("server log (last lines):\n{}", tail.join("\n")))
        })
    }

    /// Stops the server: `fast` (clean shutdown, sessions cut) or, if that fails, `immediate`.
    pub fn stop(&self) -> Result<()> {
        if !self.running() {
            return Ok(());
        }
        let mut c = self.tool("pg_ctl");
        c.arg("-D").arg(&self.cfg.data_dir).args([
            "-m",
            "fast",
            "-w",
            "-t",
            &CTL_TIMEOUT_S.to_string(),
            "stop",
        ]);
        if let Err(e) = self.run(c, "pg_ctl stop -m fast") {
            tracing::warn!(error = %format!("{e:#}"), "cluster: PostgreSQL did not stop cleanly: immediate stop");
            let mut c = self.tool("pg_ctl");
            c.arg("-D")
                .arg(&self.cfg.data_dir)
                .args(["-m", "immediate", "-w", "stop"]);
            self.run(c, "pg_ctl stop -m immediate")?;
        }
        Ok(())
    }

    /// Initialises the first Active: `initdb`, replication settings, the replication role (with
    /// the functions `pg_rewind` needs), the PBX database and the peer's replication slot; leaves
    /// the server running as a primary. Refuses a data directory that is not empty.
    pub fn init_primary(&self) -> Result<()> {
        if !self.data_empty() {
            bail!(
                "{} is not empty: this node's PostgreSQL is already initialised",
                self.cfg.data_dir.display()
            );
        }
        let pw = self.password()?;
        self.prepare_run_dir()?;
        self.owned_dir(&self.cfg.data_dir)?;
        let mut c = self.tool("initdb");
        c.arg("-D").arg(&self.cfg.data_dir).args([
            "-U",
            &self.cfg.os_user,
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]);
        self.run(c, "initdb")?;
        let conf = self.cfg.data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).context("reading postgresql.conf")?;
        text.push_str(
            "\n# Denwa active/standby pair (the same on both nodes; node-specific settings are\n\
             # given on the command line)\n\
             wal_level = replica\n\
             max_wal_senders = 8\n\
             max_replication_slots = 8\n\
             wal_log_hints = on\n\
             hot_standby = on\n\
             hot_standby_feedback = on\n\
             max_slot_wal_keep_size = 4GB\n\
             wal_keep_size = 256MB\n\
             wal_receiver_status_interval = 1s\n\
             wal_sender_timeout = 10s\n\
             wal_receiver_timeout = 10s\n\
             wal_retrieve_retry_interval = 1s\n",
        );
        self.write_owned(&conf, &text)?;
        let hba = self.cfg.data_dir.join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).context("reading pg_hba.conf")?;
        text.push_str("\n# Denwa active/standby pair: the replication role from either node\n");
        for ip in [self.cfg.listen, self.cfg.peer] {
            let mask = if ip.is_ipv4() { 32 } else { 128 };
            for db in ["replication", "postgres"] {
                text.push_str(&format!(
                    "host {db} {} {ip}/{mask} scram-sha-256\n",
                    self.cfg.replication_user
                ));
            }
        }
        self.write_owned(&hba, &text)?;
        self.start()?;
        let user = &self.cfg.replication_user;
        let pw_lit = pw.replace('\'', "''");
        self.psql_stdin(&format!(
            "SET password_encryption = 'scram-sha-256';\n\
             CREATE ROLE {user} WITH LOGIN REPLICATION PASSWORD '{pw_lit}';\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {user};\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {user};\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {user};\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {user};\n\
             CREATE DATABASE {};\n",
            self.cfg.database
        ))?;
        self.ensure_peer_slot()?;
        Ok(())
    }

    /// Initialises the Standby: clones the peer (the Active) with `pg_basebackup` through this
    /// node's slot, writes the standby settings and starts streaming. Refuses a data directory
    /// that is not empty.
    pub fn init_standby(&self) -> Result<()> {
        if !self.data_empty() {
            bail!(
                "{} is not empty: this node's PostgreSQL is already initialised",
                self.cfg.data_dir.display()
            );
        }
        self.prepare_run_dir()?;
        self.clone_peer()?;
        self.write_standby_conf()?;
        self.start()
    }

    fn clone_peer(&self) -> Result<()> {
        self.owned_dir(&self.cfg.data_dir)?;
        let mut c = self.tool("pg_basebackup");
        c.arg("-d")
            .arg(self.peer_conninfo(None))
            .arg("-D")
            .arg(&self.cfg.data_dir)
            .args(["-X", "stream", "-c", "fast", "-S"])
            .arg(PgPairConfig::slot_of(&self.cfg.application_name));
        self.run(c, "pg_basebackup from the peer")
            .map(drop)
            .context(
                "cloning the peer's database (is the peer's PostgreSQL running as the primary, \
                 with this node's slot? run `denwa cluster init-db` there first)",
            )
    }

    /// Makes the data directory start as a hot standby of the peer: `standby.signal`, and
    /// `primary_conninfo`/`primary_slot_name` in postgresql.auto.conf (replacing what a copy
    /// from the peer brought, and dropping its `synchronous_standby_names`).
    fn write_standby_conf(&self) -> Result<()> {
        let auto = self.cfg.data_dir.join("postgresql.auto.conf");
        let old = std::fs::read_to_string(&auto).unwrap_or_default();
        let mut text: String = old
            .lines()
            .filter(|l| {
                let k = l.trim_start();
                !(k.starts_with("primary_conninfo")
                    || k.starts_with("primary_slot_name")
                    || k.starts_with("synchronous_standby_names"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!(
            "primary_conninfo = {}\nprimary_slot_name = {}\n",
            conf_quote(&self.peer_conninfo(None)),
            conf_quote(&PgPairConfig::slot_of(&self.cfg.application_name))
        ));
        self.write_owned(&auto, &text)?;
        self.write_owned(&self.cfg.data_dir.join("standby.signal"), "")
    }

    /// Makes sure the peer's replication slot exists here (on the primary), so WAL the peer has
    /// not received yet is kept (bounded by `max_slot_wal_keep_size`).
    pub fn ensure_peer_slot(&self) -> Result<()> {
        let slot = PgPairConfig::slot_of(&self.cfg.peer_application_name);
        self.psql(&format!(
            "SELECT pg_create_physical_replication_slot('{slot}') WHERE NOT EXISTS \
             (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
        ))
        .map(drop)
    }

    /// Is the local server in recovery (a standby)? `None` when it does not answer.
    pub fn in_recovery(&self) -> Option<bool> {
        match self.psql("SELECT pg_is_in_recovery()").ok()?.as_str() {
            "t" => Some(true),
            "f" => Some(false),
            _ => None,
        }
    }

    /// Promotes the local standby and waits until it accepts writes; synchronous replication
    /// starts off (the role machine turns it on when the peer streams) and the peer's slot is
    /// made. Nothing to do on a primary.
    pub fn promote(&self) -> Result<()> {
        if !self.running() {
            self.start()?;
        }
        if self.in_recovery() == Some(true) {
            let mut c = self.tool("pg_ctl");
            c.arg("-D").arg(&self.cfg.data_dir).args([
                "-w",
                "-t",
                &CTL_TIMEOUT_S.to_string(),
                "promote",
            ]);
            self.run(c, "pg_ctl promote")?;
        }
        match self.in_recovery() {
            Some(false) => {}
            Some(true) => bail!("PostgreSQL is still in recovery after pg_ctl promote"),
            None => bail!("PostgreSQL does not answer after pg_ctl promote"),
        }
        self.set_sync(false)?;
        self.ensure_peer_slot()
    }

    /// Turns synchronous replication on (commits wait until the peer has flushed them) or off.
    /// Turning it off releases commits that are waiting.
    pub fn set_sync(&self, on: bool) -> Result<()> {
        let sql = if on {
            format!(
                "ALTER SYSTEM SET synchronous_standby_names = '\"{}\"'",
                self.cfg.peer_application_name
            )
        } else {
            "ALTER SYSTEM RESET synchronous_standby_names".to_string()
        };
        self.psql(&sql)?;
        self.psql("SELECT pg_reload_conf()").map(drop)
    }

    /// Is synchronous replication configured on this server now?
    pub fn sync_on(&self) -> Result<bool> {
        Ok(!self.psql("SHOW synchronous_standby_names")?.is_empty())
    }

    /// Asks the peer whether it is a primary (`Some(false)` = standby; `None` = no answer).
    pub fn peer_is_primary(&self) -> Option<bool> {
        let mut c = self.tool("psql");
        c.arg(self.peer_conninfo(Some("postgres"))).args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT pg_is_in_recovery()",
        ]);
        match self.run(c, "psql to the peer").ok()?.as_str() {
            "f" => Some(true),
            "t" => Some(false),
            _ => None,
        }
    }

    /// Re-attaches this node (an old Active, running or not, crashed or not) as the standby of
    /// the peer: stops the local server first (no write after this; a clean stop also hands
    /// every WAL record to a standby still streaming, so a switchover needs no rewind), waits
    /// (up to `peer_wait`) until the peer is a primary, `pg_rewind`s the data against it (a
    /// fresh `pg_basebackup` if that fails), writes the standby settings and starts it. It
    /// streams soon after (see [`PgNode::health`]).
    pub fn reattach(&self, peer_wait: Duration) -> Result<Reattach> {
        self.stop()?;
        let until = Instant::now() + peer_wait;
        while self.peer_is_primary() != Some(true) {
            if Instant::now() >= until {
                bail!(
                    "the peer's PostgreSQL ({}:{}) is not a reachable primary; not re-attaching",
                    self.cfg.peer,
                    self.cfg.peer_port()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.prepare_run_dir()?;
        let mut c = self.tool("pg_rewind");
        c.arg("--target-pgdata")
            .arg(&self.cfg.data_dir)
            .arg("--source-server")
            .arg(self.peer_conninfo(Some("postgres")));
        match self.run(c, "pg_rewind") {
            Ok(_) => match self.start_streaming() {
                Ok(()) => return Ok(Reattach::Rewound),
                // e.g. "no rewind required" when the peer forked exactly at this node's last
                // checkpoint, after which the timeline cannot be followed.
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cluster: rewound, but not streaming: cloning the peer again")
                }
            },
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cluster: pg_rewind failed: cloning the peer again");
            }
        }
        self.stop()?;
        std::fs::remove_dir_all(&self.cfg.data_dir)
            .with_context(|| format!("removing {}", self.cfg.data_dir.display()))?;
        self.clone_peer()?;
        self.start_streaming()?;
        Ok(Reattach::Recloned)
    }

    /// Writes the standby settings, starts the server and waits (up to [`STREAM_WAIT`]) until it
    /// streams from the peer; drops the peer's stale slot (`pg_rewind` keeps the target's slots,
    /// and one here would hold WAL forever).
    fn start_streaming(&self) -> Result<()> {
        self.write_standby_conf()?;
        self.start()?;
        let until = Instant::now() + STREAM_WAIT;
        while !matches!(
            self.health(),
            DbHealth::Replica {
                streaming: true,
                ..
            }
        ) {
            if Instant::now() >= until {
                let _ = self.stop();
                bail!(
                    "not streaming from the peer {} s after the start",
                    STREAM_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let slot = PgPairConfig::slot_of(&self.cfg.peer_application_name);
        if let Err(e) = self.psql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = '{slot}' AND NOT active"
        )) {
            tracing::warn!(error = %format!("{e:#}"), "cluster: dropping the stale replication slot");
        }
        Ok(())
    }

    /// The database health for the role machine: primary (whether the peer streams and how far
    /// its replay is behind, `pg_stat_replication`) or replica (whether the WAL receiver streams,
    /// received-but-not-replayed bytes); `Down` when the server does not answer in time.
    pub fn health(&self) -> DbHealth {
        let sql = format!(
            "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica|' || \
             (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') || '|' || \
             COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint \
             ELSE 'primary|' || \
             (SELECT count(*) FROM pg_stat_replication WHERE application_name = '{peer}' AND state = 'streaming') \
             || '|' || COALESCE((SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) \
             FROM pg_stat_replication WHERE application_name = '{peer}'), 0)::bigint END",
            peer = self.cfg.peer_application_name
        );
        let mut c = self.tool("psql");
        c.arg("-h")
            .arg(&self.cfg.run_dir)
            .arg("-p")
            .arg(self.cfg.port.to_string())
            .args(["-U", &self.cfg.os_user, "-d", "postgres", "-X", "-A", "-t"])
            .args(["-c", &sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let Ok(mut child) = c.spawn() else {
            return DbHealth::Down;
        };
        let until = Instant::now() + HEALTH_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => break,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return DbHealth::Down;
                }
            }
        }
        let mut text = String::new();
        if let Some(mut o) = child.stdout.take() {
            use std::io::Read as _;
            let _ = o.read_to_string(&mut text);
        }
        parse_health(text.trim()).unwrap_or(DbHealth::Down)
    }
}

/// Parses the health query's answer: `primary|STREAMING|LAG` or `replica|STREAMING|LAG`.
pub fn parse_health(s: &str) -> Option<DbHealth> {
    let mut it = s.split('|');
    let kind = it.next()?;
    let streaming = it.next()?.parse::<u64>().ok()? > 0;
    let lag = it.next()?.parse::<i64>().ok()?;
    if it.next().is_some() {
        return None;
    }
    let lag_bytes = u64::try_from(lag).unwrap_or(0);
    match kind {
        "primary" => Some(DbHealth::Primary {
            standby_streaming: streaming,
            lag_bytes,
        }),
        "replica" => Some(DbHealth::Replica {
            streaming,
            lag_bytes,
        }),
        _ => None,
    }
}

/// How long a node must see the peer Active while its own database is not streaming from it
/// (or is still a primary) before it re-attaches by itself.
pub const REATTACH_AFTER: Duration = Duration::from_secs(5);
/// Least time between two automatic re-attach attempts.
pub const REATTACH_RETRY: Duration = Duration::from_secs(30);
/// How long a re-attach waits for the peer to be a primary.
pub const PEER_PRIMARY_WAIT: Duration = Duration::from_secs(60);

/// Decides when a node that is not Active must re-attach its PostgreSQL to the Active peer on
/// its own (sans-IO, `now` in): after a restart with the data of an old primary, or when a
/// standby stopped streaming or is down (its history diverged, or an earlier re-attach failed). The role
/// machine only asks for a re-attach when a node leaves Active (`DemoteDb`).
#[derive(Debug, Default)]
pub struct ReattachWatch {
    bad_since: Option<Instant>,
    last_try: Option<Instant>,
}

impl ReattachWatch {
    /// Feeds one health observation; true when a re-attach should start now.
    pub fn observe(
        &mut self,
        now: Instant,
        role: ha::Role,
        peer_role: Option<ha::Role>,
        db: DbHealth,
        busy: bool,
    ) -> bool {
        let bad = !busy
            && role != ha::Role::Active
            && peer_role == Some(ha::Role::Active)
            && matches!(
                db,
                DbHealth::Primary { .. }
                    | DbHealth::Down
                    | DbHealth::Replica {
                        streaming: false,
                        ..
                    }
            );
        if !bad {
            self.bad_since = None;
            return false;
        }
        let since = *self.bad_since.get_or_insert(now);
        if now.duration_since(since) < REATTACH_AFTER {
            return false;
        }
        if self
            .last_try
            .is_some_and(|t| now.duration_since(t) < REATTACH_RETRY)
        {
            return false;
        }
        self.last_try = Some(now);
        true
    }
}

/// What the database worker does, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbOp {
    /// `PromoteDb`.
    Promote,
    /// `DemoteDb`, or an automatic re-attach ([`ReattachWatch`]).
    Reattach,
    /// `SetSyncReplication`.
    Sync(bool),
}

/// Runs [`DbOp`]s one after another on blocking threads (a promotion must finish before the
/// synchronous replication that follows it is set). `busy` is true while one runs.
pub fn spawn_worker(
    node: PgNode,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::sync::mpsc::Sender<DbOp> {
    use std::sync::atomic::Ordering;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<DbOp>(16);
    tokio::spawn(async move {
        while let Some(op) = rx.recv().await {
            busy.store(true, Ordering::SeqCst);
            let n = node.clone();
            let t0 = Instant::now();
            let r = tokio::task::spawn_blocking(move || match op {
                DbOp::Promote => n.promote().map(|()| "promoted: writable".to_string()),
                DbOp::Reattach => n
                    .reattach(PEER_PRIMARY_WAIT)
                    .map(|h| format!("re-attached as the peer's standby ({h:?})")),
                DbOp::Sync(on) => n
                    .set_sync(on)
                    .map(|()| format!("synchronous replication {}", if on { "on" } else { "off" })),
            })
            .await;
            busy.store(false, Ordering::SeqCst);
            let ms = t0.elapsed().as_millis() as u64;
            match r {
                Ok(Ok(what)) => tracing::info!(?op, ms, "cluster: PostgreSQL {what}"),
                Ok(Err(e)) => {
                    tracing::error!(?op, ms, error = %format!("{e:#}"), "cluster: PostgreSQL operation failed")
                }
                Err(e) => tracing::error!(?op, error = %e, "cluster: PostgreSQL worker panicked"),
            }
        }
    });
    tx
}

/// For `denwa serve --cluster` before the store opens: makes sure this node's PostgreSQL runs.
/// A stopped server starts read-only — as a standby of the peer — whatever it was before; only
/// a promotion makes it writable again.
pub fn ensure_started(node: &PgNode) -> Result<()> {
    if node.running() {
        return Ok(());
    }
    if node.data_empty() {
        bail!(
            "{} is empty: initialise this node's PostgreSQL with `denwa cluster init-db --cluster FILE`",
            node.cfg.data_dir.display()
        );
    }
    node.write_standby_conf()?;
    node.start()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PgPairConfig {
        toml::from_str(
            r#"
            data_dir = "/var/lib/denwa/pg"
            run_dir = "/run/denwa-pg"
            port = 5433
            listen = "192.168.100.1"
            peer = "192.168.100.2"
            replication_user = "denwa_repl"
            replication_password_file = "/etc/denwa/repl.pass"
            application_name = "node1"
            peer_application_name = "node2"
            "#,
        )
        .expect("section")
    }

    #[test]
    fn a_good_section_passes_and_has_defaults() {
        let c = cfg();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.bin_dir, PathBuf::from(DEFAULT_BIN_DIR));
        assert_eq!(c.os_user, "postgres");
        assert_eq!(c.peer_port(), 5433);
        assert_eq!(
            c.store_url(),
            "postgres://postgres@localhost:5433/denwa?host=/run/denwa-pg"
        );
        assert_eq!(PgPairConfig::slot_of("node1"), "denwa_node1");
    }

    #[test]
    fn bad_sections_are_refused_naming_the_field() {
        type Case = (fn(&mut PgPairConfig), &'static str);
        let cases: Vec<Case> = vec![
            (|c| c.data_dir = "relative/pg".into(), "postgres.data_dir"),
            (|c| c.run_dir = "/run/it's".into(), "postgres.run_dir"),
            (
                |c| c.run_dir = "/var/lib/denwa/pg/run".into(),
                "contain each other",
            ),
            (|c| c.port = 0, "port"),
            (|c| c.peer = "0.0.0.0".parse().expect("ip"), "postgres.peer"),
            (|c| c.peer = c.listen, "own listen address"),
            (
                |c| c.application_name = "Node-1".into(),
                "postgres.application_name",
            ),
            (|c| c.peer_application_name = "node1".into(), "must differ"),
            (
                |c| c.replication_user = "x'; DROP".into(),
                "postgres.replication_user",
            ),
            (|c| c.database = String::new(), "postgres.database"),
        ];
        for (f, want) in cases {
            let mut c = cfg();
            f(&mut c);
            let e = c.validate().expect_err("refused");
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
        let mut c = cfg();
        c.peer = c.listen;
        c.peer_port = Some(5434);
        assert_eq!(
            c.validate(),
            Ok(()),
            "same host, other port: two servers on one machine"
        );
    }

    #[test]
    fn health_answers_parse() {
        assert_eq!(
            parse_health("primary|1|0"),
            Some(DbHealth::Primary {
                standby_streaming: true,
                lag_bytes: 0
            })
        );
        assert_eq!(
            parse_health("replica|0|8192"),
            Some(DbHealth::Replica {
                streaming: false,
                lag_bytes: 8192
            })
        );
        assert_eq!(
            parse_health("primary|0|-5"),
            Some(DbHealth::Primary {
                standby_streaming: false,
                lag_bytes: 0
            })
        );
        for bad in ["", "primary", "primary|x|0", "other|1|0", "replica|1|0|9"] {
            assert_eq!(parse_health(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn conf_and_pgpass_quoting() {
        assert_eq!(conf_quote("a'b"), "'a''b'");
        assert_eq!(pgpass_field("a:b\\c"), "a\\:b\\\\c");
    }

    #[test]
    fn reattach_watch_waits_then_retries_slowly() {
        use ha::Role;
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let stale = DbHealth::Replica {
            streaming: false,
            lag_bytes: 0,
        };
        let mut w = ReattachWatch::default();
        let peer = Some(Role::Active);
        assert!(!w.observe(s(0), Role::Standby, peer, stale, false));
        assert!(!w.observe(s(4_999), Role::Standby, peer, stale, false));
        assert!(w.observe(s(5_000), Role::Standby, peer, stale, false));
        assert!(
            !w.observe(s(6_000), Role::Standby, peer, stale, false),
            "not again at once"
        );
        assert!(
            w.observe(s(35_000), Role::Standby, peer, stale, false),
            "retried later"
        );
        // Healthy streaming, an Active node, a peer not Active, or a busy worker: never.
        let mut w = ReattachWatch::default();
        let good = DbHealth::Replica {
            streaming: true,
            lag_bytes: 0,
        };
        let primary = DbHealth::Primary {
            standby_streaming: false,
            lag_bytes: 0,
        };
        for ms in (0..60_000).step_by(1_000) {
            assert!(!w.observe(s(ms), Role::Standby, peer, good, false));
            assert!(!w.observe(s(ms), Role::Active, peer, primary, false));
            assert!(!w.observe(s(ms), Role::Standby, Some(Role::Standby), stale, false));
            assert!(!w.observe(s(ms), Role::Standby, None, primary, false));
            assert!(!w.observe(s(ms), Role::Fenced, peer, primary, true));
        }
        // A database that is down beside an Active peer (a start that failed) re-attaches.
        let mut w = ReattachWatch::default();
        assert!(!w.observe(s(0), Role::Standby, peer, DbHealth::Down, false));
        assert!(w.observe(s(5_000), Role::Standby, peer, DbHealth::Down, false));
        // An old primary beside an Active peer re-attaches.
        let mut w = ReattachWatch::default();
        assert!(!w.observe(s(0), Role::Fenced, peer, primary, false));
        assert!(w.observe(s(5_000), Role::Fenced, peer, primary, false));
    }
}
