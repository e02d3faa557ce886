//! A headless baresip softphone driven over `ctrl_tcp`.
//!
//! Each [`Phone`] gets its own config directory with a minimal `config` (G.711, `aufile` as the
//! audio source, `sndfile` recording what it receives, `ctrl_tcp` on a free port, no console UI);
//! its one account is added with `uanew` once the control connection is up. baresip is started with `-t` so it exits by itself
//! even if the guard is leaked, and runs optionally inside a network namespace. Commands and
//! events travel as netstring-framed JSON over the control socket; events that arrive while a
//! command waits for its response are queued for [`Phone::wait_event`].
//!
//! Gotchas this module handles (baresip 1.0.0 from Debian):
//! - `net_interface` must be an IP address, or the SDP carries the host's main address.
//! - baresip binds TLS on SIP port + 1, so two phones' SIP ports are kept 2 apart.
//! - commands such as `dial` come from the `menu` module, which must be loaded.
//! - when the `aufile` source reaches the end of its file the call is hung up, so the source
//!   is padded with silence to the phone's lifetime.
//! - a SIP bind failure ("ua: init failed") does not make baresip exit; it is detected in the log.
//! - events are sent only to connected control clients: an account in the `accounts` file would
//!   register before we connect and its REGISTER_OK would be lost, hence `uanew` after connecting.
//! - with `answermode=auto` there is no CALL_INCOMING event, only CALL_ESTABLISHED.
//! - `dial` with `;transport=udp` in the URI gets it doubled; UDP URIs are given without it.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ports;
use crate::proc::{Proc, ProcError};
use crate::tone;

/// Where Debian installs baresip's modules.
const MODULE_PATH: &str = "/usr/lib/baresip/modules";
/// How long start-up may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a command waits for its response.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Read slice while waiting, so a dead process is noticed promptly.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Attempts at start-up when a port turns out to be taken.
const START_ATTEMPTS: usize = 3;
/// Largest control message accepted (baresip's own limit is far lower).
const MAX_MESSAGE: usize = 1 << 20;

/// What can go wrong driving baresip.
#[derive(thiserror::Error)]
pub enum BaresipError {
    /// baresip is not installed.
    #[error(transparent)]
    Missing(#[from] crate::MissingBinary),
    /// No free ports.
    #[error(transparent)]
    Ports(#[from] ports::NoFreePort),
    /// Writing the config directory or the audio file failed.
    #[error("baresip phone {phone}: {what}: {source}")]
    Io {
        /// The phone's name.
        phone: String,
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The audio source is not usable.
    #[error("baresip phone {phone}: audio source: {source}")]
    Audio {
        /// The phone's name.
        phone: String,
        /// Why.
        source: tone::ToneError,
    },
    /// The process could not be started or waited on.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// baresip started but did not come up.
    #[error("baresip phone {phone} failed to start: {reason}\n{logs}")]
    Start {
        /// The phone's name.
        phone: String,
        /// What went wrong.
        reason: String,
        /// Its logs.
        logs: String,
    },
    /// The control connection failed or sent something unreadable.
    #[error("baresip phone {phone}: control connection: {reason}\n{logs}")]
    Ctrl {
        /// The phone's name.
        phone: String,
        /// What went wrong.
        reason: String,
        /// Its logs.
        logs: String,
    },
    /// baresip answered a command with an error.
    #[error("baresip phone {phone}: command `{command}` failed: {data}")]
    Command {
        /// The phone's name.
        phone: String,
        /// The command sent.
        command: String,
        /// baresip's answer.
        data: String,
    },
    /// An awaited event did not come.
    #[error(
        "baresip phone {phone}: no {kind} event within {timeout:?}; events so far: {seen}\n{logs}"
    )]
    EventTimeout {
        /// The phone's name.
        phone: String,
        /// The event type waited for.
        kind: String,
        /// How long we waited.
        timeout: Duration,
        /// The event types received so far.
        seen: String,
        /// Its logs.
        logs: String,
    },
    /// The phone has no recording of received audio.
    #[error("baresip phone {phone}: no recording (*-dec.wav) in {dir}")]
    NoRecording {
        /// The phone's name.
        phone: String,
        /// Where we looked.
        dir: String,
    },
}

// `unwrap()` in tests prints Debug: make it the readable message with the logs.
impl std::fmt::Debug for BaresipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// How an incoming call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerMode {
    /// Answer at once.
    Auto,
    /// Ring until [`Phone::accept`].
    Manual,
}

/// SIP transport of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// How to set up one phone. Start from [`PhoneConfig::new`] and change fields.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// User part of the account, e.g. an extension number.
    pub user: String,
    /// Registrar/domain `HOST:PORT` of the account; `None` means the phone's own address and no
    /// registration (peer-to-peer calls).
    pub registrar: Option<String>,
    /// Digest password (`auth_pass`).
    pub password: Option<String>,
    /// Digest user name when it differs from `user` (`auth_user`).
    pub auth_user: Option<String>,
    /// Registration interval in seconds; 0 disables registering.
    pub regint: u32,
    /// How incoming calls are answered.
    pub answer: AnswerMode,
    /// Transport for the account.
    pub transport: Transport,
    /// Address to bind and to put in SDP (`net_interface` and `sip_listen`).
    pub ip: IpAddr,
    /// SIP port; `None` picks a free one (with port + 1 free for TLS).
    pub sip_port: Option<u16>,
    /// 8 kHz mono 16-bit WAV to send in calls; `None` sends silence.
    pub audio_source: Option<PathBuf>,
    /// baresip exits by itself after this long (`-t`); also the length audio is padded to.
    pub lifetime: Duration,
    /// Network namespace to run in (`ip netns exec NAME baresip ...`).
    pub netns: Option<String>,
    /// Extra `;key=value` parameters appended to the account line.
    pub account_params: Vec<String>,
    /// Extra lines appended to the config file.
    pub config_lines: Vec<String>,
    /// Files written into the config directory before start (name, text), e.g. `contacts`.
    pub files: Vec<(String, String)>,
}

impl PhoneConfig {
    /// A phone for `user` on 127.0.0.1, auto-answering, unregistered, silent, living 60 s.
    pub fn new(user: &str) -> PhoneConfig {
        PhoneConfig {
            user: user.to_owned(),
            registrar: None,
            password: None,
            auth_user: None,
            regint: 0,
            answer: AnswerMode::Auto,
            transport: Transport::Udp,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sip_port: None,
            audio_source: None,
            lifetime: Duration::from_secs(60),
            netns: None,
            account_params: Vec::new(),
            config_lines: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Registers with `registrar` (`HOST:PORT`) as `user`/`password`, every `regint` seconds.
    pub fn registering(mut self, registrar: &str, password: &str, regint: u32) -> PhoneConfig {
        self.registrar = Some(registrar.to_owned());
        self.password = Some(password.to_owned());
        self.regint = regint;
        self
    }

    /// Sends `wav` (8 kHz mono 16-bit) in every call.
    pub fn with_audio(mut self, wav: &Path) -> PhoneConfig {
        self.audio_source = Some(wav.to_path_buf());
        self
    }
}

/// One event from baresip (a JSON object with `"event": true`).
#[derive(Debug, Clone)]
pub struct Event {
    /// Event type, e.g. `REGISTER_OK`, `CALL_ESTABLISHED`, `CALL_CLOSED`, `CALL_DTMF_START`.
    pub kind: String,
    /// `param` field: reason text, peer URI or DTMF key depending on the event.
    pub param: String,
    /// baresip's call id (`id`), empty for non-call events.
    pub call_id: String,
    /// `peeruri` field.
    pub peer_uri: String,
    /// The whole JSON object.
    pub raw: Value,
}

impl Event {
    fn from_json(v: Value) -> Event {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Event {
            kind: s("type"),
            param: s("param"),
            call_id: s("id"),
            peer_uri: s("peeruri"),
            raw: v,
        }
    }
}

/// A running baresip phone; quits (and is killed if need be) when dropped.
#[derive(Debug)]
pub struct Phone {
    name: String,
    user: String,
    ip: IpAddr,
    sip_port: u16,
    transport: Transport,
    // Declared before `dir` so the process stops before its directory is removed.
    proc: Proc,
    ctrl: TcpStream,
    buf: Vec<u8>,
    pending: VecDeque<Event>,
    history: Vec<Event>,
    token: u64,
    dir: tempfile::TempDir,
}

impl Phone {
    /// Writes the config, starts baresip and connects to its control socket.
    ///
    /// Retries with new ports (when they were not fixed by the caller) if one was taken.
    pub fn start(cfg: PhoneConfig) -> Result<Phone, BaresipError> {
        crate::require_binary("baresip")?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&cfg) {
                Ok(p) => return Ok(p),
                Err(e @ BaresipError::Start { .. })
                    if cfg.sip_port.is_none() && e.to_string().contains("in use") =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| BaresipError::Start {
            phone: cfg.user.clone(),
            reason: "no attempt made".into(),
            logs: String::new(),
        }))
    }

    fn start_once(cfg: &PhoneConfig) -> Result<Phone, BaresipError> {
        let name = format!("baresip-{}", cfg.user);
        let io_err = |what: &str, source| BaresipError::Io {
            phone: name.clone(),
            what: what.to_owned(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("testkit-{name}-"))
            .tempdir()
            .map_err(|e| io_err("creating config dir", e))?;
        let sip_port = match cfg.sip_port {
            Some(p) => p,
            None => ports::free_block(2)?,
        };
        let ctrl_port = ports::free_port()?;
        let rtp_base = ports::free_block(16)?;

        let audio = dir.path().join("source.wav");
        write_source(cfg, &audio).map_err(|source| BaresipError::Audio {
            phone: name.clone(),
            source,
        })?;
        let config = config_text(cfg, dir.path(), &audio, sip_port, ctrl_port, rtp_base);
        fs::write(dir.path().join("config"), config).map_err(|e| io_err("writing config", e))?;
        // No account at start-up: it is added with `uanew` once the control connection is up,
        // so that no REGISTER_OK/REGISTER_FAIL event is emitted before anyone listens.
        let account = account_line(cfg, sip_port);
        fs::write(dir.path().join("accounts"), "").map_err(|e| io_err("writing accounts", e))?;
        for (file, text) in &cfg.files {
            fs::write(dir.path().join(file), text).map_err(|e| io_err("writing a file", e))?;
        }

        let lifetime = cfg.lifetime.as_secs().max(1).to_string();
        let mut cmd = match &cfg.netns {
            Some(ns) => {
                // A fresh namespace has its loopback down; ctrl_tcp listens on it.
                let _ = Command::new("ip")
                    .args(["netns", "exec", ns, "ip", "link", "set", "lo", "up"])
                    .status();
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "baresip"]);
                c
            }
            None => Command::new("baresip"),
        };
        cmd.arg("-f").arg(dir.path()).args(["-t", &lifetime]);
        let mut proc = Proc::spawn_in(&name, cmd, dir.path())?;

        let ready = proc.wait_for_line(
            regex::Regex::new(r"baresip is ready|init failed|Address already in use").map_err(
                |e| BaresipError::Start {
                    phone: name.clone(),
                    reason: e.to_string(),
                    logs: String::new(),
                },
            )?,
            START_TIMEOUT,
        );
        let start_err = |reason: String, proc: &Proc| BaresipError::Start {
            phone: name.clone(),
            reason,
            logs: proc.logs(),
        };
        match ready {
            Ok(line) if line.contains("ready") => {}
            Ok(line) => {
                return Err(start_err(
                    format!("port in use or init failed: {line}"),
                    &proc,
                ));
            }
            Err(e) => return Err(start_err(e.to_string(), &proc)),
        }
        if let Some(line) = proc.find_line(&"in use".into()) {
            return Err(start_err(format!("port in use: {line}"), &proc));
        }
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ctrl_port);
        let ctrl = connect_ctrl(cfg.netns.as_deref(), addr, START_TIMEOUT)
            .map_err(|e| start_err(format!("cannot connect to ctrl_tcp on {addr}: {e}"), &proc))?;
        ctrl.set_read_timeout(Some(READ_SLICE))
            .map_err(|e| io_err("configuring ctrl socket", e))?;
        let mut phone = Phone {
            name,
            user: cfg.user.clone(),
            ip: cfg.ip,
            sip_port,
            transport: cfg.transport,
            proc,
            ctrl,
            buf: Vec::new(),
            pending: VecDeque::new(),
            history: Vec::new(),
            token: 0,
            dir,
        };
        phone.command("uanew", Some(&account))?;
        Ok(phone)
    }

    /// The phone's name in messages (`baresip-USER`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SIP port it listens on.
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// The address it binds and advertises.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// A URI that reaches this phone directly, e.g. `sip:1001@127.0.0.1:21004`.
    pub fn direct_uri(&self) -> String {
        // baresip appends `;transport=udp` itself; only TCP needs saying.
        let transport = match self.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("sip:{}@{}:{}{transport}", self.user, self.ip, self.sip_port)
    }

    /// Its config directory (config, accounts, logs, recordings).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process guard (logs, pid).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Its stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> &[Event] {
        &self.history
    }

    /// Sends a command and returns its response text; events received meanwhile are queued.
    pub fn command(&mut self, command: &str, params: Option<&str>) -> Result<String, BaresipError> {
        self.token += 1;
        let token = self.token.to_string();
        let mut msg = json!({"command": command, "token": token});
        if let Some(p) = params {
            msg["params"] = Value::String(p.to_owned());
        }
        let body = msg.to_string();
        let frame = format!("{}:{},", body.len(), body);
        if let Err(e) = self.ctrl.write_all(frame.as_bytes()) {
            return Err(self.ctrl_err(format!("sending `{command}`: {e}")));
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let Some(v) = self.next_message(deadline)? else {
                return Err(self.ctrl_err(format!(
                    "no response to `{command}` within {COMMAND_TIMEOUT:?}"
                )));
            };
            if v.get("response").and_then(Value::as_bool) == Some(true)
                && v.get("token").and_then(Value::as_str) == Some(token.as_str())
            {
                let data = v.get("data").and_then(Value::as_str).unwrap_or("");
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    return Ok(data.to_owned());
                }
                return Err(BaresipError::Command {
                    phone: self.name.clone(),
                    command: format!("{command} {}", params.unwrap_or("")),
                    data: data.trim().to_owned(),
                });
            }
        }
    }

    /// Calls `uri` (e.g. `sip:1002@127.0.0.1:5060`).
    pub fn dial(&mut self, uri: &str) -> Result<(), BaresipError> {
        self.command("dial", Some(uri)).map(drop)
    }

    /// Answers the ringing incoming call (for [`AnswerMode::Manual`]).
    pub fn accept(&mut self) -> Result<(), BaresipError> {
        self.command("accept", None).map(drop)
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) -> Result<(), BaresipError> {
        self.command("hangup", None).map(drop)
    }

    /// The registration status text (`reginfo`).
    pub fn reginfo(&mut self) -> Result<String, BaresipError> {
        self.command("reginfo", None)
    }

    /// Sends DTMF `digits` in the current call (`sndcode`; RFC 4733 when negotiated).
    pub fn send_dtmf(&mut self, digits: &str) -> Result<(), BaresipError> {
        self.command("sndcode", Some(digits)).map(drop)
    }

    /// Asks baresip to quit and waits up to `timeout` for it to exit.
    pub fn quit(&mut self, timeout: Duration) -> Result<(), BaresipError> {
        // The connection may close before the response arrives; the exit is what counts.
        let _ = self.command("quit", None);
        if self.proc.wait_timeout(timeout).is_none() {
            self.proc.stop();
        }
        Ok(())
    }

    /// Waits for the next event of type `kind` (e.g. `CALL_ESTABLISHED`) and removes it from the
    /// queue; earlier events of other types stay queued.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Result<Event, BaresipError> {
        self.wait_event_where(kind, timeout, |_| true)
    }

    /// Like [`Phone::wait_event`], for the first event of type `kind` that also satisfies `pred`.
    pub fn wait_event_where(
        &mut self,
        kind: &str,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, BaresipError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|e| e.kind == kind && pred(e))
                && let Some(e) = self.pending.remove(i)
            {
                return Ok(e);
            }
            if self.next_message(deadline)?.is_none() {
                let seen = self
                    .history
                    .iter()
                    .map(|e| format!("{}({})", e.kind, e.param))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(BaresipError::EventTimeout {
                    phone: self.name.clone(),
                    kind: kind.to_owned(),
                    timeout,
                    seen,
                    logs: self.proc.logs(),
                });
            }
        }
    }

    /// Drops queued events (e.g. between two calls).
    pub fn clear_events(&mut self) {
        self.pending.clear();
    }

    /// Recordings of received audio (`*-dec.wav`, one per call), oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Names carry a timestamp (YYYY-MM-DD-hh-mm-ss), so name order is time order.
        files.sort();
        files
    }

    /// The newest recording of received audio; complete once the call's CALL_CLOSED arrived.
    pub fn last_recording(&self) -> Result<PathBuf, BaresipError> {
        self.recordings()
            .pop()
            .ok_or_else(|| BaresipError::NoRecording {
                phone: self.name.clone(),
                dir: self.dir.path().display().to_string(),
            })
    }

    fn ctrl_err(&self, reason: String) -> BaresipError {
        BaresipError::Ctrl {
            phone: self.name.clone(),
            reason,
            logs: self.proc.logs(),
        }
    }

    /// Reads the next control message; events are queued and also returned. `None` at deadline.
    fn next_message(&mut self, deadline: Instant) -> Result<Option<Value>, BaresipError> {
        loop {
            match parse_netstring(&self.buf) {
                Ok(Some((body, used))) => {
                    let parsed: Result<Value, _> = serde_json::from_slice(body);
                    self.buf.drain(..used);
                    let v = parsed.map_err(|e| self.ctrl_err(format!("bad JSON: {e}")))?;
                    if v.get("event").and_then(Value::as_bool) == Some(true) {
                        let ev = Event::from_json(v.clone());
                        self.history.push(ev.clone());
                        self.pending.push_back(ev);
                    }
                    return Ok(Some(v));
                }
                Ok(None) => {}
                Err(reason) => return Err(self.ctrl_err(reason)),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let mut chunk = [0u8; 4096];
            match self.ctrl.read(&mut chunk) {
                Ok(0) => {
                    return Err(self.ctrl_err("baresip closed the control connection".into()));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !self.proc.is_running() {
                        return Err(self.ctrl_err("baresip exited".into()));
                    }
                }
                Err(e) => return Err(self.ctrl_err(format!("read: {e}"))),
            }
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        // A polite quit lets sndfile close its WAV files; Proc's drop kills it if that fails.
        if self.proc.is_running() {
            let _ = self.quit(Duration::from_secs(2));
        }
    }
}

/// Splits one netstring (`LEN:BODY,`) off the front of `buf`: `(body, bytes used)`.
fn parse_netstring(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    let Some(colon) = buf.iter().position(|&b| b == b':') else {
        if buf.len() > 10 || !buf.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "bad netstring length prefix {:?}",
                String::from_utf8_lossy(buf)
            ));
        }
        return Ok(None);
    };
    let len: usize = std::str::from_utf8(&buf[..colon])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n <= MAX_MESSAGE)
        .ok_or_else(|| {
            format!(
                "bad netstring length {:?}",
                String::from_utf8_lossy(&buf[..colon])
            )
        })?;
    let end = colon + 1 + len;
    if buf.len() <= end {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err("netstring not terminated by ','".into());
    }
    Ok(Some((&buf[colon + 1..end], end + 1)))
}

/// Connects to `addr`, from inside network namespace `netns` when given, retrying until `timeout`.
fn connect_ctrl(netns: Option<&str>, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = match netns {
            None => TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
            Some(ns) => crate::netns::in_netns(ns, || {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            }),
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Writes the phone's audio source: the given WAV padded with silence to the lifetime.
fn write_source(cfg: &PhoneConfig, out: &Path) -> Result<(), tone::ToneError> {
    let lifetime_ms = u32::try_from(cfg.lifetime.as_millis()).unwrap_or(u32::MAX);
    let mut samples = match &cfg.audio_source {
        Some(path) => {
            let wav = tone::read_wav(path)?;
            if wav.sample_rate != tone::SAMPLE_RATE || wav.channels != 1 {
                return Err(tone::ToneError::BadWav {
                    path: path.display().to_string(),
                    reason: format!(
                        "{} Hz, {} channels; aufile needs {} Hz mono",
                        wav.sample_rate,
                        wav.channels,
                        tone::SAMPLE_RATE
                    ),
                });
            }
            wav.samples
        }
        None => Vec::new(),
    };
    // One extra second so the file outlives the process even if a call starts late.
    let min_len = (lifetime_ms as usize + 1000) * (tone::SAMPLE_RATE as usize / 1000);
    if samples.len() < min_len {
        samples.resize(min_len, 0);
    }
    tone::write_wav(out, &tone::Wav::mono(samples))
}

fn config_text(
    cfg: &PhoneConfig,
    dir: &Path,
    audio: &Path,
    sip_port: u16,
    ctrl_port: u16,
    rtp_base: u16,
) -> String {
    let sip_listen = SocketAddr::new(cfg.ip, sip_port);
    // aubridge is a player that plays nowhere; sndfile records the decoded audio before it.
    let device = format!("testkit{sip_port}");
    let mut c = String::new();
    let _ = writeln!(c, "poll_method\t\tepoll");
    let _ = writeln!(c, "sip_listen\t\t{sip_listen}");
    let _ = writeln!(c, "net_interface\t\t{}", cfg.ip);
    let _ = writeln!(c, "audio_player\t\taubridge,{device}");
    let _ = writeln!(c, "audio_alert\t\taubridge,{device}");
    let _ = writeln!(c, "audio_source\t\taufile,{}", audio.display());
    let _ = writeln!(c, "audio_path\t\t{}", dir.display());
    let _ = writeln!(c, "ausrc_srate\t\t8000");
    let _ = writeln!(c, "auplay_srate\t\t8000");
    let _ = writeln!(c, "ausrc_channels\t\t1");
    let _ = writeln!(c, "auplay_channels\t\t1");
    let _ = writeln!(c, "rtp_ports\t\t{}-{}", rtp_base, rtp_base + 15);
    let _ = writeln!(c, "rtp_timeout\t\t0");
    let _ = writeln!(c, "module_path\t\t{MODULE_PATH}");
    for m in ["g711", "aufile", "aubridge", "sndfile"] {
        let _ = writeln!(c, "module\t\t\t{m}.so");
    }
    for m in ["account", "menu", "ctrl_tcp"] {
        let _ = writeln!(c, "module_app\t\t{m}.so");
    }
    let _ = writeln!(c, "ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}");
    let _ = writeln!(c, "snd_path\t\t{}", dir.display());
    let _ = writeln!(c, "menu_bell\t\tno");
    let _ = writeln!(c, "statmode_default\toff");
    for line in &cfg.config_lines {
        let _ = writeln!(c, "{line}");
    }
    c
}

fn account_line(cfg: &PhoneConfig, sip_port: u16) -> String {
    let domain = cfg
        .registrar
        .clone()
        .unwrap_or_else(|| SocketAddr::new(cfg.ip, sip_port).to_string());
    let mut line = format!(
        "<sip:{}@{};transport={}>",
        cfg.user,
        domain,
        cfg.transport.param()
    );
    if let Some(p) = &cfg.password {
        let _ = write!(line, ";auth_pass={p}");
    }
    if let Some(u) = &cfg.auth_user {
        let _ = write!(line, ";auth_user={u}");
    }
    let answer = match cfg.answer {
        AnswerMode::Auto => "auto",
        AnswerMode::Manual => "manual",
    };
    let regint = if cfg.registrar.is_some() {
        cfg.regint
    } else {
        0
    };
    let _ = write!(line, ";answermode={answer};regint={regint}");
    for p in &cfg.account_params {
        let _ = write!(line, ";{p}");
    }
    line
}

/// Hangs up `caller`'s call, waits (up to `timeout` each) until both phones closed it, then
/// checks each side's recording: the other side's tones heard in order, none of its own
/// ([`tone::check_recording`]).
pub fn hang_up_and_check_tones(
    caller: &mut Phone,
    callee: &mut Phone,
    caller_tones: &[u32],
    callee_tones: &[u32],
    timeout: Duration,
) -> Result<(), String> {
    caller.hangup().map_err(|e| format!("hang up: {e}"))?;
    for p in [&mut *caller, &mut *callee] {
        p.wait_event("CALL_CLOSED", timeout)
            .map_err(|e| format!("{}: call not closed: {e}", p.name()))?;
    }
    let heard = |p: &Phone, expected: &[u32], own: &[u32]| {
        let rec = p.last_recording().map_err(|e| e.to_string())?;
        tone::check_recording(&rec, expected, own)
            .map_err(|e| format!("{} did not hear the other side: {e}", p.name()))
    };
    heard(caller, callee_tones, caller_tones)?;
    heard(callee, caller_tones, callee_tones)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_split_and_reject_garbage() {
        let buf = b"3:abc,2:hi,";
        let (body, used) = parse_netstring(buf).unwrap().unwrap();
        assert_eq!((body, used), (&b"abc"[..], 6));
        let (body, _) = parse_netstring(&buf[used..]).unwrap().unwrap();
        assert_eq!(body, b"hi");
        assert!(parse_netstring(b"5:ab").unwrap().is_none());
        assert!(parse_netstring(b"12").unwrap().is_none());
        assert!(parse_netstring(b"3:abcX").is_err());
        assert!(parse_netstring(b"x:abc,").is_err());
        assert!(parse_netstring(b"99999999999:").is_err());
    }

    #[test]
    fn account_line_for_registering_phone() {
        let cfg = PhoneConfig::new("1001").registering("127.0.0.1:5060", "s3cret", 600);
        assert_eq!(
            account_line(&cfg, 21000),
            "<sip:1001@127.0.0.1:5060;transport=udp>;auth_pass=s3cret;answermode=auto;regint=600"
        );
    }

    #[test]
    fn account_line_for_peer_to_peer_phone_never_registers() {
        let mut cfg = PhoneConfig::new("alice");
        cfg.regint = 300;
        cfg.answer = AnswerMode::Manual;
        cfg.transport = Transport::Tcp;
        assert_eq!(
            account_line(&cfg, 21000),
            "<sip:alice@127.0.0.1:21000;transport=tcp>;answermode=manual;regint=0"
        );
    }

    #[test]
    fn config_names_an_address_and_needed_modules_only() {
        let cfg = PhoneConfig::new("a");
        let text = config_text(
            &cfg,
            Path::new("/d"),
            Path::new("/d/s.wav"),
            21000,
            21010,
            21100,
        );
        for want in [
            "sip_listen\t\t127.0.0.1:21000",
            "net_interface\t\t127.0.0.1",
            "audio_source\t\taufile,/d/s.wav",
            "ctrl_tcp_listen\t\t127.0.0.1:21010",
            "rtp_ports\t\t21100-21115",
            "module_app\t\tmenu.so",
            "snd_path\t\t/d",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("stdio"), "console UI must stay off");
    }
}
