//! A real Kamailio playing a telephone carrier (ITSP) for Denwa's SIP-trunk tests.
//!
//! [`Carrier::start`] writes a Kamailio 5.6 configuration into a temporary directory of its own
//! and runs `kamailio` on `127.0.0.1` at a free port (UDP and TCP), until [`Carrier::stop`] or
//! drop. Two kinds of carrier are emulated ([`CarrierMode`]):
//!
//! - **Registration** — a registration provider like a typical ITSP: each trunk account
//!   REGISTERs with digest authentication (401, realm [`CarrierConfig::realm`]); INVITEs from the
//!   PBX are challenged with 407 and must authenticate as an account. A call to one of the
//!   account's DIDs is sent to the contact the account registered.
//! - **IpTrust** — an IP-only SBC (peering/"IP authentication" trunk): no REGISTER (403), no
//!   digest; INVITEs to non-DID numbers are accepted only from the trusted source addresses
//!   (others get 403), and calls to DIDs are sent to a fixed PBX address.
//!
//! Routing, for both modes: an initial INVITE whose Request-URI user is a DID (exact, or a prefix
//! written `"0312*"`) is **inbound** — from the "public phone" to the PBX, whoever sends it, as
//! on a real carrier — and is sent to the account's registered contact (Registration) or to
//! [`CarrierConfig::pbx`] (IpTrust), with the DID in the Request-URI or only in To
//! ([`DidIn`]). Any other INVITE is **outbound**: from the PBX to the public network; once
//! authenticated (or trusted) it goes to [`CarrierConfig::pstn`] with the Request-URI's user
//! kept and its host and port replaced. [`CarrierConfig::answer_invites`] makes the carrier
//! answer every outbound INVITE with a fixed status instead (e.g. 503, before authentication, as
//! an overloaded SBC does) for failover tests. The carrier record-routes, so in-dialog requests
//! (ACK, BYE, re-INVITE) pass through it; preloaded Route headers on initial requests are
//! dropped.
//!
//! What happened is read from Kamailio itself: every REGISTER and INVITE decision is written by
//! `xlog` as one line with the marker `CARRIER|` and hex-encoded fields to Kamailio's stderr,
//! which is captured to a file ([`Carrier::invites`], [`Carrier::registers`]); the registrar's
//! real state comes over a private JSON-RPC socket (`jsonrpcs` on a unix datagram socket in the
//! temporary directory, [`Carrier::contacts`]). Registrations live in memory (usrloc
//! `db_mode` 0), so [`Carrier::restart`] loses them as a real carrier's registrar restart does.
//!
//! Kamailio modules used: `tm`, `tmx`, `sl`, `rr`, `pv`, `maxfwd`, `textops`, `siputils`, `usrloc`,
//! `registrar`, `auth` (`pv_auth_check` with plain passwords held in an `htable`, no database),
//! `htable`, `xlog`, `jsonrpcs`.
//!
//! Gotchas (Kamailio 5.6.3, sipp 3.6.1):
//! - REGISTER authentication also requires the To user to equal the digest user (Kamailio's
//!   `pv_auth_check` check 1; a wrong pairing is answered 403). For INVITE the same check on the
//!   From user is off unless [`CarrierConfig::from_must_match`] is set — many carriers do enforce
//!   it, so a trunk's default From user matters there.
//! - A wrong password or an unknown user is answered 403 (not a fresh 401/407): a UA that retries
//!   a challenge forever would otherwise loop.
//! - The registrar caps Expires at [`CarrierConfig::max_expires`] and raises it to at least
//!   `min(60, max_expires)`; usrloc's timer removes expired contacts every 5 s.
//! - With several contacts for one account only the best one (highest q, newest) is called
//!   (`append_branches` 0).
//! - `xlog` prints an absent header and an empty one the same way: both read back as `None`.
//!   Only the first P-Asserted-Identity / P-Preferred-Identity header is recorded.
//! - Header values (display name, identities) are recorded raw; a quoted display name is
//!   returned without its quotes.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::ports;
use crate::proc::Proc;

/// Where Debian installs Kamailio's modules.
const MODULE_PATH: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";
/// The marker starting every decision line in Kamailio's log.
const MARKER: &str = "CARRIER|";
/// How long a start (process up, RPC and SIP answering) may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one RPC may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the wait helpers poll.
const POLL: Duration = Duration::from_millis(50);
/// Start attempts with a new port when the one picked is taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// How the carrier authenticates the PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierMode {
    /// A registration provider: REGISTER (401) and outbound INVITE (407) both digest-authenticated
    /// against [`CarrierConfig::accounts`].
    Registration,
    /// An IP-only SBC: no authentication; outbound INVITEs only from these source addresses
    /// (others 403); REGISTER is refused (403).
    IpTrust {
        /// Source addresses allowed to place outbound calls.
        trusted: Vec<IpAddr>,
    },
}

/// Where the DID goes in an inbound INVITE sent to the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DidIn {
    /// The Request-URI's user is the DID (Registration: the registered contact with its user
    /// part replaced by the DID; IpTrust: `sip:DID@pbx`).
    RequestUri,
    /// The Request-URI is the registered contact as is (IpTrust: `sip:ACCOUNT@pbx`); the DID is
    /// only in To (as the public phone sent it).
    To,
}

/// What the carrier is.
#[derive(Debug, Clone)]
pub struct CarrierConfig {
    /// Digest realm (default `carrier.test`).
    pub realm: String,
    /// Trunk accounts: username, password (plain). Usernames: letters, digits, `+._-`.
    pub accounts: Vec<(String, String)>,
    /// Registration provider or IP-only SBC.
    pub mode: CarrierMode,
    /// Where outbound calls go (the "public phone": a sipp UAS or a baresip); without it outbound
    /// INVITEs are answered 480.
    pub pstn: Option<SocketAddr>,
    /// Inbound routing: a DID (exact, or a prefix ending in `*`) and the account it belongs to.
    /// First match wins. Characters: digits, letters, `+._-`.
    pub dids: Vec<(String, String)>,
    /// IpTrust: where inbound calls go; without it they are answered 480.
    pub pbx: Option<SocketAddr>,
    /// Where the DID goes in inbound INVITEs.
    pub did_in: DidIn,
    /// Answer every outbound INVITE with this status (before authentication), e.g. 503.
    pub answer_invites: Option<u16>,
    /// The registrar's `max_expires` in seconds (default 60).
    pub max_expires: u32,
    /// Outbound INVITEs must carry a From user equal to the digest user (403 otherwise), as many
    /// carriers require. Default off.
    pub from_must_match: bool,
    /// The loopback address it listens on (default 127.0.0.1). A PBX under test that tells
    /// trunks from phones by source address needs the carrier on another one (127.0.0.2):
    /// the phones run on 127.0.0.1.
    pub bind: IpAddr,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            realm: "carrier.test".into(),
            accounts: Vec::new(),
            mode: CarrierMode::Registration,
            pstn: None,
            dids: Vec::new(),
            pbx: None,
            did_in: DidIn::RequestUri,
            answer_invites: None,
            max_expires: 60,
            from_must_match: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl CarrierConfig {
    /// A registration provider with these accounts (username, password).
    pub fn registration<'a>(accounts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        CarrierConfig {
            accounts: accounts
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
            ..Self::default()
        }
    }

    /// An IP-only SBC trusting these source addresses; inbound calls go to `pbx`.
    pub fn ip_trust(trusted: impl IntoIterator<Item = IpAddr>, pbx: Option<SocketAddr>) -> Self {
        CarrierConfig {
            mode: CarrierMode::IpTrust {
                trusted: trusted.into_iter().collect(),
            },
            pbx,
            ..Self::default()
        }
    }

    /// Adds a DID (or prefix ending in `*`) routed to `account`.
    pub fn with_did(mut self, did: &str, account: &str) -> Self {
        self.dids.push((did.to_owned(), account.to_owned()));
        self
    }

    /// Sets where outbound calls go.
    pub fn with_pstn(mut self, pstn: SocketAddr) -> Self {
        self.pstn = Some(pstn);
        self
    }

    /// Listens on `ip` (a loopback address) instead of 127.0.0.1.
    pub fn bound_to(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self
    }
}

/// Direction of an INVITE as the carrier classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the PBX to the public network (not a DID).
    Outbound,
    /// To a DID: from the public network to the PBX.
    Inbound,
}

/// One initial INVITE the carrier received and what it did with it.
///
/// `decision` is one of: `challenge` (401/407 sent), `unknown-user`, `wrong-password`,
/// `user-mismatch` (From/To user is not the digest user), `untrusted` (IpTrust, 403),
/// `answered` ([`CarrierConfig::answer_invites`]), `no-route` (no `pstn`/`pbx` configured, 480),
/// `not-registered` (inbound, the account has no contact, 480), `forward` (relayed; `status` is
/// then the final answer that came back, `None` while none has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierInvite {
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// Where it came from.
    pub source: SocketAddr,
    /// Transport it came over (`UDP`, `TCP`).
    pub transport: String,
    /// Outbound or inbound.
    pub direction: Direction,
    /// What the carrier did (see the type's docs).
    pub decision: String,
    /// The final status (sent by the carrier or relayed back from the callee), if any yet.
    pub status: Option<u16>,
    /// The Request-URI user as received.
    pub request_user: Option<String>,
    /// The From user.
    pub from_user: Option<String>,
    /// The From display name, without quotes.
    pub from_display: Option<String>,
    /// The To user.
    pub to_user: Option<String>,
    /// The first P-Asserted-Identity header value.
    pub p_asserted_identity: Option<String>,
    /// The first P-Preferred-Identity header value.
    pub p_preferred_identity: Option<String>,
    /// The Privacy header value.
    pub privacy: Option<String>,
    /// The digest user that authenticated (Registration mode, once authenticated).
    pub auth_user: Option<String>,
    /// The Request-URI it was relayed with (decision `forward`).
    pub forwarded_to: Option<String>,
}

/// One REGISTER the carrier received and what it did with it.
///
/// `decision`: `challenge` (401), `unknown-user`, `wrong-password`, `user-mismatch` (To user is
/// not the digest user), `ip-trunk` (IpTrust mode refuses REGISTER), `saved` (200),
/// `save-failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierRegister {
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// Where it came from.
    pub source: SocketAddr,
    /// What the carrier did.
    pub decision: String,
    /// The status answered.
    pub status: u16,
    /// The To user (the AOR registered).
    pub to_user: Option<String>,
    /// The digest user, when credentials were present.
    pub auth_user: Option<String>,
    /// The Contact header value.
    pub contact: Option<String>,
    /// The Expires header value.
    pub expires: Option<String>,
}

/// A running Kamailio carrier; stopped on drop.
#[derive(Debug)]
pub struct Carrier {
    /// Where it listens (UDP and TCP), `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    cfg: CarrierConfig,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
    runs: u32,
}

static RPC_SEQ: AtomicU64 = AtomicU64::new(0);

impl Carrier {
    /// Writes the configuration and starts Kamailio; returns once it answers SIP and RPC.
    pub fn start(cfg: CarrierConfig) -> Result<Carrier> {
        crate::require_binary("kamailio").or_else(|_| {
            if Path::new("/usr/sbin/kamailio").is_file() {
                Ok(PathBuf::from("/usr/sbin/kamailio"))
            } else {
                Err(anyhow!(
                    "kamailio is not installed; run scripts/test-deps.sh to install the test dependencies"
                ))
            }
        })?;
        validate(&cfg)?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-carrier-")
            .tempdir()
            .context("carrier temp dir")?;
        let mut carrier = Carrier {
            addr: SocketAddr::new(cfg.bind, 0),
            cfg,
            dir,
            proc: None,
            runs: 0,
        };
        let mut last = anyhow!("no start attempted");
        for _ in 0..START_ATTEMPTS {
            carrier.addr.set_port(ports::free_port()?);
            match carrier.launch() {
                Ok(()) => return Ok(carrier),
                // Someone took the port between the check and Kamailio's bind: try another.
                Err(e) if format!("{e:#}").contains("in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Stops Kamailio and starts it again on the same port with the same configuration:
    /// registrations are lost; the log of earlier runs is kept for [`Carrier::invites`].
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        while !ports::is_free(self.addr.port()) {
            if Instant::now() >= deadline {
                bail!("carrier port {} still busy after stop", self.addr.port());
            }
            std::thread::sleep(POLL);
        }
        let mut last = anyhow!("no start attempted");
        for _ in 0..START_ATTEMPTS {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(last)
    }

    /// Stops Kamailio (SIGTERM to its process group, then SIGKILL); a no-op when stopped.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// Whether Kamailio is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &CarrierConfig {
        &self.cfg
    }

    /// `HOST:PORT` to point a trunk or sipp at.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `sip:USER@127.0.0.1:PORT`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr)
    }

    /// The generated Kamailio configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("kamailio.cfg")
    }

    /// Kamailio's stderr of every run so far, oldest first.
    pub fn log(&self) -> String {
        let mut all = String::new();
        for run in 1..=self.runs {
            let path = self.run_dir(run).join("stderr.log");
            if let Ok(b) = fs::read(&path) {
                let _ = writeln!(all, "----- carrier run {run} ({}) -----", path.display());
                all.push_str(&String::from_utf8_lossy(&b));
            }
        }
        all
    }

    /// Every initial INVITE received so far (all runs), in order, with its final status.
    pub fn invites(&self) -> Vec<CarrierInvite> {
        parse_invites(&self.log())
    }

    /// Every REGISTER received so far (all runs), in order.
    pub fn registers(&self) -> Vec<CarrierRegister> {
        parse_registers(&self.log())
    }

    /// The unexpired contacts the registrar holds for `user`, from Kamailio (`ul.lookup`).
    pub fn contacts(&self, user: &str) -> Result<Vec<String>> {
        let reply = self.rpc("ul.lookup", json!(["location", user]))?;
        if let Some(err) = reply.get("error") {
            // usrloc answers 500 "AOR not found" for a user without contacts.
            if err["message"]
                .as_str()
                .is_some_and(|m| m.contains("not found"))
            {
                return Ok(Vec::new());
            }
            bail!("ul.lookup {user}: {err}");
        }
        Ok(active_contacts(&reply["result"]))
    }

    /// Whether `user` has at least one unexpired contact.
    pub fn registered(&self, user: &str) -> Result<bool> {
        Ok(!self.contacts(user)?.is_empty())
    }

    /// Waits up to `timeout` until `user` is registered; returns its contacts.
    pub fn wait_registered(&self, user: &str, timeout: Duration) -> Result<Vec<String>> {
        let mut found = Vec::new();
        self.wait_for(&format!("{user} registered"), timeout, || {
            found = self.contacts(user)?;
            Ok(!found.is_empty())
        })?;
        Ok(found)
    }

    /// Waits up to `timeout` until `user` has no contact left.
    pub fn wait_unregistered(&self, user: &str, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("{user} unregistered"), timeout, || {
            Ok(!self.registered(user)?)
        })
    }

    /// Waits up to `timeout` for an INVITE matching `pred` (e.g. one with a final status).
    pub fn wait_invite(
        &self,
        timeout: Duration,
        pred: impl Fn(&CarrierInvite) -> bool,
    ) -> Result<CarrierInvite> {
        self.wait_find("a matching INVITE", timeout, || self.invites(), pred)
    }

    /// Waits up to `timeout` for a REGISTER matching `pred`.
    pub fn wait_register(
        &self,
        timeout: Duration,
        pred: impl Fn(&CarrierRegister) -> bool,
    ) -> Result<CarrierRegister> {
        self.wait_find("a matching REGISTER", timeout, || self.registers(), pred)
    }

    /// The first item of `list()` matching `pred`, polling up to `timeout`.
    fn wait_find<T>(
        &self,
        what: &str,
        timeout: Duration,
        list: impl Fn() -> Vec<T>,
        pred: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let mut found = None;
        self.wait_for(what, timeout, || {
            found = list().into_iter().find(|i| pred(i));
            Ok(found.is_some())
        })?;
        found.ok_or_else(|| anyhow!("{what}: found and lost"))
    }

    /// Polls `cond` until it is true, up to `timeout`; the error names `what` and carries the
    /// tail of Kamailio's log. An error from `cond` ends the wait.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if cond()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "carrier: not {what} within {timeout:?}\n{}",
                    crate::proc::tail(&self.log(), 16 * 1024)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Calls a Kamailio RPC command over the private JSON-RPC socket; returns the whole reply
    /// (`result` or `error`).
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value> {
        let seq = RPC_SEQ.fetch_add(1, Ordering::Relaxed);
        let client = self
            .dir
            .path()
            .join(format!("rpc-{}-{seq}.sock", std::process::id()));
        let _ = fs::remove_file(&client);
        let sock = UnixDatagram::bind(&client).context("rpc client socket")?;
        let result = (|| {
            sock.set_read_timeout(Some(RPC_TIMEOUT))?;
            let request = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": seq});
            sock.send_to(request.to_string().as_bytes(), self.rpc_socket())
                .with_context(|| format!("rpc {method}: send"))?;
            let mut buf = vec![0u8; 256 * 1024];
            let n = sock
                .recv(&mut buf)
                .with_context(|| format!("rpc {method}: no answer within {RPC_TIMEOUT:?}"))?;
            serde_json::from_slice::<Value>(&buf[..n])
                .with_context(|| format!("rpc {method}: reply is not JSON"))
        })();
        let _ = fs::remove_file(&client);
        result
    }

    fn rpc_socket(&self) -> PathBuf {
        self.dir.path().join("rpc.sock")
    }

    fn run_dir(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("run-{run}"))
    }

    /// Writes the configuration for the current port and starts one run; waits until it answers.
    fn launch(&mut self) -> Result<()> {
        let cfg_path = self.config_path();
        let rpc = self.rpc_socket();
        let rpc_str = rpc.to_str().context("temp dir path is not UTF-8")?;
        // sun_path holds 108 bytes.
        if rpc_str.len() > 100 {
            bail!("carrier: RPC socket path {rpc_str} is too long for a unix socket (TMPDIR?)");
        }
        fs::write(&cfg_path, render_config(&self.cfg, self.addr, rpc_str))
            .context("write kamailio.cfg")?;
        let _ = fs::remove_file(&rpc);
        self.runs += 1;
        let run_dir = self.run_dir(self.runs);
        fs::create_dir_all(&run_dir).context("carrier run dir")?;
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-a", "no"])
            .arg("-P")
            .arg(run_dir.join("kamailio.pid"))
            .arg("-Y")
            .arg(&run_dir)
            .arg("-w")
            .arg(&run_dir);
        let mut proc = Proc::spawn_in(&format!("kamailio-carrier-{}", self.runs), cmd, &run_dir)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = proc.try_status() {
                let logs = proc.logs();
                proc.set_print_on_panic(false);
                bail!("kamailio exited ({status}) during start-up\n{logs}");
            }
            if rpc.exists() && self.rpc("core.version", json!([])).is_ok() && sip_ping(self.addr) {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs = proc.logs();
                proc.stop();
                proc.set_print_on_panic(false);
                bail!("kamailio did not answer within {START_TIMEOUT:?}\n{logs}");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A sipp scenario shipped with testkit for carrier tests (`crates/testkit/sipp/NAME`), e.g.
/// `carrier_uac_refused.xml`; the general scenarios stay in `tests/sipp/` (bare names).
pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

/// One SIP OPTIONS to `addr` over UDP; true when any response comes back within 300 ms.
fn sip_ping(addr: SocketAddr) -> bool {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    let Ok(local) = sock.local_addr() else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(300)));
    let tag = RPC_SEQ.fetch_add(1, Ordering::Relaxed);
    let msg = format!(
        "OPTIONS sip:ping@{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKtkping{tag}x{port};rport\r\n\
         From: <sip:ping@{local}>;tag=p{tag}\r\nTo: <sip:ping@{addr}>\r\n\
         Call-ID: tkping{tag}-{port}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        port = local.port()
    );
    if sock.send_to(msg.as_bytes(), addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    matches!(sock.recv(&mut buf), Ok(n) if buf[..n].starts_with(b"SIP/2.0 "))
}

/// Contacts in an `ul.lookup` result that have not expired.
fn active_contacts(result: &Value) -> Vec<String> {
    let Some(list) = result["Contacts"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|c| &c["Contact"])
        .filter(|c| match &c["Expires"] {
            Value::Number(n) => n.as_i64().is_some_and(|s| s > 0),
            Value::String(s) => s == "permanent",
            _ => false,
        })
        .filter_map(|c| c["Address"].as_str().map(str::to_owned))
        .collect()
}

fn is_token(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// Refuses values that cannot be written safely into the generated configuration.
fn validate(cfg: &CarrierConfig) -> Result<()> {
    if !is_token(&cfg.realm, ".-") {
        bail!(
            "carrier realm {:?}: letters, digits, '.', '-' only",
            cfg.realm
        );
    }
    for (user, _) in &cfg.accounts {
        if !is_token(user, "+._-") {
            bail!("carrier account {user:?}: letters, digits, '+._-' only");
        }
    }
    for (did, account) in &cfg.dids {
        if !is_token(did.strip_suffix('*').unwrap_or(did), "+._-") {
            bail!("carrier DID {did:?}: letters, digits, '+._-' (and a final '*') only");
        }
        if !is_token(account, "+._-") {
            bail!("carrier DID {did:?}: account {account:?} is not a valid user");
        }
        if cfg.mode == CarrierMode::Registration && !cfg.accounts.iter().any(|(u, _)| u == account)
        {
            bail!("carrier DID {did:?}: account {account:?} is not among the accounts");
        }
    }
    if let Some(code) = cfg.answer_invites
        && !(300..=699).contains(&code)
    {
        bail!("carrier answer_invites {code}: a final non-2xx status (300-699) is needed");
    }
    if cfg.max_expires == 0 {
        bail!("carrier max_expires must be at least 1 s");
    }
    Ok(())
}

/// `prefix` as a POSIX regular expression (its only metacharacters are `+` and `.`).
fn prefix_regex(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| match c {
            '+' | '.' => format!("[{c}]"),
            c => c.to_string(),
        })
        .collect()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn reason(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Refused",
    }
}

/// Sets the Request-URI's host and port to `addr` (user kept).
fn set_target(out: &mut String, addr: SocketAddr) {
    let _ = writeln!(out, "\t$rd = \"{}\";\n\t$rp = {};", addr.ip(), addr.port());
}

/// The Kamailio configuration for `cfg` listening on `addr`, RPC on the unix socket `rpc`.
fn render_config(cfg: &CarrierConfig, addr: SocketAddr, rpc: &str) -> String {
    let realm = &cfg.realm;
    let registration = cfg.mode == CarrierMode::Registration;
    let mut c = String::new();
    let _ = write!(
        c,
        r#"#!KAMAILIO
# Generated by testkit::carrier: a telephone carrier for Denwa's trunk tests.
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:{addr}
listen=tcp:{addr}
server_signature=no
server_header="Server: testkit-carrier"
mpath="{MODULE_PATH}"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "xlog.so"
loadmodule "jsonrpcs.so"

modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "{rpc}")
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "timer_interval", 5)
modparam("registrar", "max_expires", {max})
modparam("registrar", "min_expires", {min})
modparam("registrar", "default_expires", {max})
modparam("registrar", "append_branches", 0)
modparam("htable", "htable", "pw=>size=4;")
modparam("rr", "enable_full_lr", 1)

event_route[htable:mod-init] {{
	$var(p) = "";
"#,
        max = cfg.max_expires,
        min = cfg.max_expires.min(60),
    );
    // Passwords go through hex so that no character of theirs can break the configuration.
    for (user, pass) in &cfg.accounts {
        let _ = writeln!(
            c,
            "\t$var(p) = \"{}\";\n\t$sht(pw=>{user}) = $(var(p){{s.decode.hexa}});",
            hex(pass)
        );
    }
    c.push_str(
        r#"}

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (has_totag()) {
		if (loose_route()) {
			t_relay();
			exit;
		}
		if (is_method("ACK")) {
			if (t_check_trans()) {
				t_relay();
			}
			exit;
		}
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}
	t_check_trans();
	remove_hf("Route");
	if (is_method("OPTIONS")) {
		sl_send_reply("200", "OK");
		exit;
	}
	if (is_method("REGISTER")) {
		route(REGISTER);
		exit;
	}
	if (is_method("INVITE")) {
		route(INVITE);
		exit;
	}
	sl_send_reply("405", "Method Not Allowed");
}

route[LOG_REGISTER] {
	xlog("L_NOTICE", "CARRIER|register|ci=$(ci{s.encode.hexa})|cs=$cs|src=$si:$sp|dec=$var(dec)|st=$var(st)|tu=$(tU{s.encode.hexa})|au=$(var(au){s.encode.hexa})|ct=$(ct{s.encode.hexa})|exp=$(hdr(Expires){s.encode.hexa})\n");
}

route[LOG_INVITE] {
	xlog("L_NOTICE", "CARRIER|invite|ci=$(ci{s.encode.hexa})|cs=$cs|src=$si:$sp|proto=$pr|dir=$var(dir)|dec=$var(dec)|st=$var(st)|ru=$(var(ruser){s.encode.hexa})|fu=$(fU{s.encode.hexa})|fn=$(fn{s.encode.hexa})|tu=$(tU{s.encode.hexa})|pai=$(hdr(P-Asserted-Identity){s.encode.hexa})|ppi=$(hdr(P-Preferred-Identity){s.encode.hexa})|priv=$(hdr(Privacy){s.encode.hexa})|au=$(var(au){s.encode.hexa})|out=$(var(out){s.encode.hexa})\n");
}

# Answers the current INVITE locally with $var(st) / $var(reason) and logs the decision.
route[REFUSE] {
	route(LOG_INVITE);
	sl_send_reply("$var(st)", "$var(reason)");
	exit;
}

onreply_route[REPLY] {
	if ($rs >= 200) {
		xlog("L_NOTICE", "CARRIER|reply|ci=$(ci{s.encode.hexa})|cs=$cs|st=$rs\n");
	}
}

failure_route[FAIL] {
	xlog("L_NOTICE", "CARRIER|reply|ci=$(ci{s.encode.hexa})|cs=$cs|st=$T_reply_code\n");
}

route[RELAY] {
	record_route();
	$var(out) = $ru;
	$var(dec) = "forward";
	$var(st) = 0;
	route(LOG_INVITE);
	t_on_reply("REPLY");
	t_on_failure("FAIL");
	if (!t_relay()) {
		xlog("L_NOTICE", "CARRIER|reply|ci=$(ci{s.encode.hexa})|cs=$cs|st=500\n");
		sl_reply_error();
	}
	exit;
}

"#,
    );

    // REGISTER.
    c.push_str("route[REGISTER] {\n\t$var(dec) = \"\";\n\t$var(au) = \"\";\n");
    if registration {
        let _ = write!(
            c,
            r#"	if (!has_credentials("{realm}")) {{
		$var(dec) = "challenge";
		$var(st) = 401;
		route(LOG_REGISTER);
		www_challenge("{realm}", "1");
		exit;
	}}
	$var(au) = $au;
	if ($sht(pw=>$au) == $null) {{
		$var(dec) = "unknown-user";
		$var(st) = 403;
		route(LOG_REGISTER);
		sl_send_reply("403", "Forbidden");
		exit;
	}}
	pv_auth_check("{realm}", "$sht(pw=>$au)", "0", "1");
	$var(rc) = $rc;
	if ($var(rc) < 0) {{
		if ($var(rc) == -2) {{
			$var(dec) = "wrong-password";
		}} else if ($var(rc) == -8) {{
			$var(dec) = "user-mismatch";
		}} else {{
			$var(dec) = "challenge";
			$var(st) = 401;
			route(LOG_REGISTER);
			www_challenge("{realm}", "1");
			exit;
		}}
		$var(st) = 403;
		route(LOG_REGISTER);
		sl_send_reply("403", "Forbidden");
		exit;
	}}
	if (!save("location")) {{
		$var(dec) = "save-failed";
		$var(st) = 500;
		route(LOG_REGISTER);
		sl_reply_error();
		exit;
	}}
	$var(dec) = "saved";
	$var(st) = 200;
	route(LOG_REGISTER);
}}

"#
        );
    } else {
        c.push_str(
            "\t$var(dec) = \"ip-trunk\";\n\t$var(st) = 403;\n\troute(LOG_REGISTER);\n\
             \tsl_send_reply(\"403\", \"Forbidden (IP trunk, no registration)\");\n}\n\n",
        );
    }

    // INVITE: classify by DID.
    c.push_str(
        "route[INVITE] {\n\t$var(dec) = \"\";\n\t$var(au) = \"\";\n\t$var(out) = \"\";\n\
         \t$var(st) = 0;\n\t$var(ruser) = $rU;\n\t$var(acct) = \"\";\n",
    );
    for (i, (did, account)) in cfg.dids.iter().enumerate() {
        let cond = match did.strip_suffix('*') {
            Some(prefix) => format!("$rU =~ \"^{}\"", prefix_regex(prefix)),
            None => format!("$rU == \"{did}\""),
        };
        let kw = if i == 0 { "if" } else { "} else if" };
        let _ = writeln!(
            c,
            "\t{kw} ($rU != $null && {cond}) {{\n\t\t$var(acct) = \"{account}\";"
        );
    }
    if !cfg.dids.is_empty() {
        c.push_str("\t}\n");
    }
    c.push_str(
        "\tif ($var(acct) != \"\") {\n\t\t$var(dir) = \"in\";\n\t\troute(INBOUND);\n\t\texit;\n\t}\n\
         \t$var(dir) = \"out\";\n\troute(OUTBOUND);\n}\n\n",
    );

    // Inbound: to the account's contact or the PBX.
    c.push_str("route[INBOUND] {\n");
    if registration {
        c.push_str(
            "\t$rU = $var(acct);\n\tif (!lookup(\"location\")) {\n\
             \t\t$var(dec) = \"not-registered\";\n\t\t$var(st) = 480;\n\
             \t\t$var(reason) = \"Temporarily Unavailable\";\n\t\troute(REFUSE);\n\t}\n",
        );
        if cfg.did_in == DidIn::RequestUri {
            c.push_str("\t$rU = $var(ruser);\n");
        }
    } else if let Some(pbx) = cfg.pbx {
        if cfg.did_in == DidIn::To {
            c.push_str("\t$rU = $var(acct);\n");
        }
        set_target(&mut c, pbx);
    } else {
        c.push_str(
            "\t$var(dec) = \"no-route\";\n\t$var(st) = 480;\n\
             \t$var(reason) = \"No PBX configured\";\n\troute(REFUSE);\n",
        );
    }
    c.push_str("\troute(RELAY);\n}\n\n");

    // Outbound: forced answer, authentication or trust, then to the PSTN.
    c.push_str("route[OUTBOUND] {\n");
    if let Some(code) = cfg.answer_invites {
        let _ = writeln!(
            c,
            "\t$var(dec) = \"answered\";\n\t$var(st) = {code};\n\
             \t$var(reason) = \"{}\";\n\troute(REFUSE);",
            reason(code)
        );
    }
    match &cfg.mode {
        CarrierMode::Registration => {
            let checks = if cfg.from_must_match { "1" } else { "0" };
            let _ = write!(
                c,
                r#"	if (!has_credentials("{realm}")) {{
		$var(dec) = "challenge";
		$var(st) = 407;
		route(LOG_INVITE);
		proxy_challenge("{realm}", "1");
		exit;
	}}
	$var(au) = $au;
	$var(st) = 403;
	$var(reason) = "Forbidden";
	if ($sht(pw=>$au) == $null) {{
		$var(dec) = "unknown-user";
		route(REFUSE);
	}}
	pv_auth_check("{realm}", "$sht(pw=>$au)", "0", "{checks}");
	$var(rc) = $rc;
	if ($var(rc) == -2) {{
		$var(dec) = "wrong-password";
		route(REFUSE);
	}}
	if ($var(rc) == -8) {{
		$var(dec) = "user-mismatch";
		route(REFUSE);
	}}
	if ($var(rc) < 0) {{
		$var(dec) = "challenge";
		$var(st) = 407;
		route(LOG_INVITE);
		proxy_challenge("{realm}", "1");
		exit;
	}}
	consume_credentials();
"#
            );
        }
        CarrierMode::IpTrust { trusted } => {
            c.push_str("\t$var(trusted) = 0;\n");
            for ip in trusted {
                let _ = writeln!(c, "\tif ($si == \"{ip}\") {{\n\t\t$var(trusted) = 1;\n\t}}");
            }
            c.push_str(
                "\tif ($var(trusted) != 1) {\n\t\t$var(dec) = \"untrusted\";\n\
                 \t\t$var(st) = 403;\n\t\t$var(reason) = \"Forbidden (untrusted source)\";\n\
                 \t\troute(REFUSE);\n\t}\n",
            );
        }
    }
    match cfg.pstn {
        Some(pstn) => set_target(&mut c, pstn),
        None => c.push_str(
            "\t$var(dec) = \"no-route\";\n\t$var(st) = 480;\n\
             \t$var(reason) = \"No PSTN route\";\n\troute(REFUSE);\n",
        ),
    }
    c.push_str("\troute(RELAY);\n}\n");
    c
}

/// Decodes lowercase/uppercase hex; `None` for empty or malformed text.
fn unhex(s: &str) -> Option<String> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// The `CARRIER|kind|k=v|...` lines of `log` as (kind, fields).
fn marker_lines(log: &str) -> impl Iterator<Item = (&str, Vec<(&str, &str)>)> {
    log.lines().filter_map(|line| {
        let rest = &line[line.find(MARKER)? + MARKER.len()..];
        let mut parts = rest.trim_end().split('|');
        let kind = parts.next()?;
        let fields = parts.filter_map(|p| p.split_once('=')).collect();
        Some((kind, fields))
    })
}

fn field<'a>(fields: &[(&str, &'a str)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or("")
}

fn hex_field(fields: &[(&str, &str)], key: &str) -> Option<String> {
    unhex(field(fields, key))
}

fn source(fields: &[(&str, &str)]) -> SocketAddr {
    field(fields, "src")
        .parse()
        .unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
}

fn parse_invites(log: &str) -> Vec<CarrierInvite> {
    let mut out: Vec<CarrierInvite> = Vec::new();
    for (kind, f) in marker_lines(log) {
        let call_id = hex_field(&f, "ci").unwrap_or_default();
        let cseq = field(&f, "cs").parse().unwrap_or(0);
        let status = field(&f, "st").parse::<u16>().ok().filter(|s| *s >= 100);
        match kind {
            "invite" => out.push(CarrierInvite {
                call_id,
                cseq,
                source: source(&f),
                transport: field(&f, "proto").to_ascii_uppercase(),
                direction: if field(&f, "dir") == "in" {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                },
                decision: field(&f, "dec").to_owned(),
                status,
                request_user: hex_field(&f, "ru"),
                from_user: hex_field(&f, "fu"),
                from_display: hex_field(&f, "fn")
                    .map(|d| d.trim().trim_matches('"').to_owned())
                    .filter(|d| !d.is_empty()),
                to_user: hex_field(&f, "tu"),
                p_asserted_identity: hex_field(&f, "pai"),
                p_preferred_identity: hex_field(&f, "ppi"),
                privacy: hex_field(&f, "priv"),
                auth_user: hex_field(&f, "au"),
                forwarded_to: hex_field(&f, "out"),
            }),
            "reply" => {
                // The final answer to the newest forwarded INVITE of that transaction.
                if let Some(inv) = out
                    .iter_mut()
                    .rev()
                    .find(|i| i.call_id == call_id && i.cseq == cseq && i.decision == "forward")
                {
                    inv.status = status.or(inv.status);
                }
            }
            _ => {}
        }
    }
    out
}

fn parse_registers(log: &str) -> Vec<CarrierRegister> {
    marker_lines(log)
        .filter(|(kind, _)| *kind == "register")
        .map(|(_, f)| CarrierRegister {
            call_id: hex_field(&f, "ci").unwrap_or_default(),
            cseq: field(&f, "cs").parse().unwrap_or(0),
            source: source(&f),
            decision: field(&f, "dec").to_owned(),
            status: field(&f, "st").parse().unwrap_or(0),
            to_user: hex_field(&f, "tu"),
            auth_user: hex_field(&f, "au"),
            contact: hex_field(&f, "ct"),
            expires: hex_field(&f, "exp"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_lines_parse_and_replies_complete_them() {
        let log = format!(
            " 1(99) NOTICE: <script>: CARRIER|invite|ci={ci}|cs=1|src=127.0.0.1:5070|proto=udp|dir=out|dec=challenge|st=407|ru={ru}|fu={fu}|fn={fnm}|tu=|pai={pai}|ppi=|priv={pr}|au=|out=\n\
             noise\n\
             CARRIER|invite|ci={ci}|cs=2|src=127.0.0.1:5070|proto=udp|dir=out|dec=forward|st=0|ru={ru}|fu={fu}|fn=|tu=|pai=|ppi=|priv=|au={au}|out={out}\n\
             CARRIER|reply|ci={ci}|cs=2|st=200\n",
            ci = hex("abc@h"),
            ru = hex("0311112222"),
            fu = hex("trunk1"),
            fnm = hex("\"Front Desk\""),
            pai = hex("<sip:+81312345678@pbx>"),
            pr = hex("id"),
            au = hex("trunk1"),
            out = hex("sip:0311112222@127.0.0.1:6000"),
        );
        let inv = parse_invites(&log);
        assert_eq!(inv.len(), 2);
        assert_eq!(inv[0].decision, "challenge");
        assert_eq!(inv[0].status, Some(407));
        assert_eq!(inv[0].from_display.as_deref(), Some("Front Desk"));
        assert_eq!(
            inv[0].p_asserted_identity.as_deref(),
            Some("<sip:+81312345678@pbx>")
        );
        assert_eq!(inv[0].privacy.as_deref(), Some("id"));
        assert_eq!(inv[0].to_user, None);
        assert_eq!(inv[1].status, Some(200));
        assert_eq!(inv[1].auth_user.as_deref(), Some("trunk1"));
        assert_eq!(inv[1].call_id, "abc@h");
        assert_eq!(inv[1].source, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(inv[1].transport, "UDP");
    }

    #[test]
    fn config_escapes_passwords_and_rejects_unsafe_names() {
        let cfg = CarrierConfig::registration([("trunk1", "p\"w$x")]).with_did("0312*", "trunk1");
        validate(&cfg).unwrap();
        let text = render_config(&cfg, "127.0.0.1:5060".parse().unwrap(), "/tmp/x.sock");
        assert!(!text.contains("p\"w$x"));
        assert!(text.contains(&hex("p\"w$x")));
        assert!(text.contains("$rU =~ \"^0312\""));
        let bad = CarrierConfig::registration([("a\"b", "x")]);
        assert!(validate(&bad).is_err());
        let orphan = CarrierConfig::registration([("a", "x")]).with_did("1", "b");
        assert!(validate(&orphan).is_err());
    }

    /// Every branch of the generator (modes, DID placement, missing routes, forced answers)
    /// starts: `kamailio -c` alone misses errors found only when fixing up the script.
    #[test]
    fn every_generated_variant_starts() {
        if crate::require_binary("kamailio").is_err() {
            panic!("kamailio is not installed; run scripts/test-deps.sh");
        }
        let pstn: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let reg = CarrierConfig::registration([("trunk1", "pw")])
            .with_did("0312345678", "trunk1")
            .with_did("+8150*", "trunk1");
        let variants = [
            reg.clone().with_pstn(pstn),
            CarrierConfig {
                did_in: DidIn::To,
                answer_invites: Some(503),
                from_must_match: true,
                ..reg
            },
            CarrierConfig::ip_trust(["127.0.0.1".parse().unwrap()], Some(pstn))
                .with_did("0312*", "trunk1")
                .with_pstn(pstn),
            CarrierConfig {
                did_in: DidIn::To,
                ..CarrierConfig::ip_trust(Vec::new(), None).with_did("1", "x")
            },
        ];
        for cfg in variants {
            let mut carrier = Carrier::start(cfg).unwrap();
            assert!(carrier.is_running());
            carrier.stop();
            assert!(!carrier.is_running());
        }
    }

    #[test]
    fn only_unexpired_contacts_count() {
        let result = json!({"AoR": "a", "Contacts": [
            {"Contact": {"Address": "sip:a@1", "Expires": 9}},
            {"Contact": {"Address": "sip:a@2", "Expires": "expired"}},
            {"Contact": {"Address": "sip:a@3", "Expires": "permanent"}},
        ]});
        assert_eq!(active_contacts(&result), vec!["sip:a@1", "sip:a@3"]);
    }
}
