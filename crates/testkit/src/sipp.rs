//! Runs sipp scenarios (UAC or UAS) with hard bounds and reads back what happened.
//!
//! Every run gets `-m` (call count), `-timeout` (global bound, also enforced from here),
//! `-trace_stat`, `-trace_err`, `-trace_screen` and optionally `-trace_msg`, with their files in
//! the run's own log directory, and `-trace_counts` (sipp writes that one into its working
//! directory, which is the log directory unless [`Sipp::workdir`] is set). [`SippOutcome`] holds the successful and failed call
//! counts (from the stat file), per-message counters and sipp's exit code; a failed run's error
//! carries sipp's error log, the tail of its message trace and its final screen.
//!
//! sipp exit codes: 0 all calls succeeded, 1 some failed, 97 stopped by an internal command,
//! 99 normal exit without calls processed, 254/255 fatal (e.g. cannot bind).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::ports;
use crate::proc::{Proc, ProcError, tail};

/// Extra time over sipp's own `-timeout` before we kill it.
const KILL_MARGIN: Duration = Duration::from_secs(10);
/// How much of each diagnostic file goes into an error message.
const DIAG_LIMIT: usize = 8 * 1024;

/// What can go wrong running sipp.
#[derive(thiserror::Error)]
pub enum SippError {
    /// sipp is not installed.
    #[error(transparent)]
    Missing(#[from] crate::MissingBinary),
    /// No free port.
    #[error(transparent)]
    Ports(#[from] ports::NoFreePort),
    /// The process could not be started.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The scenario or a file it needs is missing.
    #[error("sipp: {0}")]
    Setup(String),
    /// sipp did not finish within its timeout plus a margin and was killed.
    #[error("sipp {scenario} did not finish within {limit:?}; killed\n{diagnostics}")]
    Hung {
        /// Scenario file name.
        scenario: String,
        /// The limit applied.
        limit: Duration,
        /// Error log, message trace tail and screen.
        diagnostics: String,
    },
    /// sipp ran but not every call succeeded.
    #[error(
        "sipp {scenario}: exit code {exit_code:?}, {successful} successful and {failed} failed calls (wanted {wanted} successful)\n{diagnostics}"
    )]
    Failed {
        /// Scenario file name.
        scenario: String,
        /// sipp's exit code (`None` if killed by a signal).
        exit_code: Option<i32>,
        /// Successful calls.
        successful: u64,
        /// Failed calls.
        failed: u64,
        /// Successful calls wanted.
        wanted: u64,
        /// Error log, message trace tail and screen.
        diagnostics: String,
    },
}

// `unwrap()` in tests prints Debug: make it the readable message with the diagnostics.
impl std::fmt::Debug for SippError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// SIP transport for sipp (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SippTransport {
    /// UDP, one socket (`-t u1`).
    Udp,
    /// TCP, one connection (`-t t1`).
    Tcp,
}

/// One sipp invocation. Build with [`Sipp::uac`] or [`Sipp::uas`] and change fields.
#[derive(Debug, Clone)]
pub struct Sipp {
    /// Scenario XML file; a bare name is looked up in `tests/sipp/`.
    pub scenario: PathBuf,
    /// `HOST:PORT` to send to (UAC); `None` for a UAS that only answers.
    pub remote: Option<String>,
    /// Local address (`-i`, also the media address).
    pub local_ip: String,
    /// Local SIP port (`-p`); `None` picks a free one.
    pub local_port: Option<u16>,
    /// Local media port (`-mp`); `None` picks a free one.
    pub media_port: Option<u16>,
    /// Transport.
    pub transport: SippTransport,
    /// Calls to make or answer before exiting (`-m`).
    pub calls: u32,
    /// Call rate per second (`-r`); sipp's default is 10.
    pub rate: Option<u32>,
    /// Simultaneous calls at most (`-l`).
    pub max_concurrent: Option<u32>,
    /// Hard bound for the whole run (`-timeout`, and we kill sipp a little after it).
    pub timeout: Duration,
    /// Default timeout of each `recv` (`-recv_timeout`); a call fails past it.
    pub recv_timeout: Option<Duration>,
    /// Service / called user (`-s`, `[service]` in scenarios).
    pub service: Option<String>,
    /// CSV file injected with `-inf`; a bare name is looked up in `tests/sipp/`.
    pub inject: Option<PathBuf>,
    /// CSV text injected with `-inf`, written to the run directory (overrides `inject`).
    pub inject_text: Option<String>,
    /// Working directory (files named in scenarios, e.g. `rtp_stream`, are relative to it);
    /// `None` runs in the log directory.
    pub workdir: Option<PathBuf>,
    /// Global variables set with `-set NAME VALUE`.
    pub vars: Vec<(String, String)>,
    /// Whether to write every message to a trace file (`-trace_msg`); off for load runs.
    pub trace_msg: bool,
    /// Network namespace to run in (`ip netns exec NAME sipp ...`).
    pub netns: Option<String>,
    /// Length of each `<pause/>` without its own duration (`-d`).
    pub call_duration: Duration,
    /// Any further arguments.
    pub extra_args: Vec<String>,
}

/// What a sipp run did.
#[derive(Debug, Clone)]
pub struct SippOutcome {
    /// sipp's exit code (`None` if it died by a signal).
    pub exit_code: Option<i32>,
    /// `SuccessfulCall(C)` from the stat file.
    pub successful: u64,
    /// `FailedCall(C)` from the stat file.
    pub failed: u64,
    /// The last row of the stat file, by column name.
    pub stats: BTreeMap<String, String>,
    /// The last row of the per-message counts file (`-trace_counts`), by column name, e.g.
    /// `3_200_Retrans` = retransmissions received of the scenario's message 3.
    pub counts: BTreeMap<String, String>,
    /// sipp's error log (empty if it wrote none).
    pub error_log: String,
    /// The local SIP port used.
    pub local_port: u16,
    /// The directory with the run's files (stat, errors, messages, screen); removed when the
    /// last clone of the outcome drops.
    pub logs: Arc<tempfile::TempDir>,
}

impl SippOutcome {
    /// A counter from the stat file as a number (0 when absent).
    pub fn stat(&self, column: &str) -> u64 {
        self.stats
            .get(column)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sum of per-message counters whose column name ends with `suffix` and whose message
    /// part contains `message` (e.g. `("200", "_Retrans")`).
    pub fn message_count(&self, message: &str, suffix: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| k.ends_with(suffix) && k.contains(message))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    }
}

/// A sipp started in the background (typically a UAS waiting for calls).
#[derive(Debug)]
pub struct RunningSipp {
    sipp: Sipp,
    proc: Proc,
    local_port: u16,
    files: RunFiles,
    _logs: tempfile::TempDir,
}

#[derive(Debug, Clone)]
struct RunFiles {
    dir: PathBuf,
    stat: PathBuf,
    /// sipp's working directory, where it writes the counts file.
    cwd: PathBuf,
    errors: PathBuf,
    messages: PathBuf,
    screen: PathBuf,
}

impl Sipp {
    /// A UAC placing one call with `scenario` to `remote` (`HOST:PORT`).
    pub fn uac(scenario: impl AsRef<Path>, remote: &str) -> Sipp {
        Sipp {
            remote: Some(remote.to_owned()),
            ..Sipp::uas(scenario)
        }
    }

    /// A UAS answering one call with `scenario`.
    pub fn uas(scenario: impl AsRef<Path>) -> Sipp {
        Sipp {
            scenario: scenario.as_ref().to_path_buf(),
            remote: None,
            local_ip: "127.0.0.1".into(),
            local_port: None,
            media_port: None,
            transport: SippTransport::Udp,
            calls: 1,
            rate: None,
            max_concurrent: None,
            timeout: Duration::from_secs(30),
            recv_timeout: None,
            service: None,
            inject: None,
            inject_text: None,
            workdir: None,
            vars: Vec::new(),
            trace_msg: true,
            netns: None,
            call_duration: Duration::from_secs(1),
            extra_args: Vec::new(),
        }
    }

    /// Runs to completion and requires every one of the `calls` calls to succeed.
    pub fn run(&self) -> Result<SippOutcome, SippError> {
        self.spawn()?.finish()
    }

    /// Runs to completion and returns the outcome whatever the calls did (for runs expected to
    /// fail); errors only if sipp could not run or hung.
    pub fn run_unchecked(&self) -> Result<SippOutcome, SippError> {
        self.spawn()?.finish_unchecked()
    }

    /// Starts sipp in the background; finish with [`RunningSipp::finish`].
    pub fn spawn(&self) -> Result<RunningSipp, SippError> {
        crate::require_binary("sipp")?;
        let scenario = resolve(&self.scenario);
        if !scenario.is_file() {
            return Err(SippError::Setup(format!(
                "scenario {} not found",
                scenario.display()
            )));
        }
        let logs = tempfile::Builder::new()
            .prefix("testkit-sipp-")
            .tempdir()
            .map_err(|e| SippError::Setup(format!("temp dir: {e}")))?;
        let dir = logs.path().to_path_buf();
        let files = RunFiles {
            stat: dir.join("stat.csv"),
            cwd: self.workdir.clone().unwrap_or_else(|| dir.clone()),
            errors: dir.join("errors.log"),
            messages: dir.join("messages.log"),
            screen: dir.join("screen.log"),
            dir,
        };
        let local_port = match self.local_port {
            Some(p) => p,
            None => ports::free_port()?,
        };
        let media_port = match self.media_port {
            Some(p) => p,
            None => ports::free_block(4)?,
        };

        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sipp"]);
                c
            }
            None => Command::new("sipp"),
        };
        if let Some(remote) = &self.remote {
            cmd.arg(remote);
        }
        cmd.arg("-sf").arg(&scenario);
        cmd.args(["-i", &self.local_ip, "-mi", &self.local_ip]);
        cmd.args([
            "-p",
            &local_port.to_string(),
            "-mp",
            &media_port.to_string(),
        ]);
        cmd.args([
            "-t",
            match self.transport {
                SippTransport::Udp => "u1",
                SippTransport::Tcp => "t1",
            },
        ]);
        cmd.args(["-m", &self.calls.to_string()]);
        cmd.args(["-d", &self.call_duration.as_millis().to_string()]);
        cmd.args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))]);
        // Exit with a failed call rather than hang when the scenario's last message never comes.
        cmd.args(["-timeout_error", "-nostdin"]);
        if let Some(r) = self.rate {
            cmd.args(["-r", &r.to_string()]);
        }
        if let Some(l) = self.max_concurrent {
            cmd.args(["-l", &l.to_string()]);
        }
        if let Some(t) = self.recv_timeout {
            cmd.args(["-recv_timeout", &t.as_millis().to_string()]);
        }
        if let Some(s) = &self.service {
            cmd.args(["-s", s]);
        }
        if let Some(text) = &self.inject_text {
            let path = files.dir.join("inject.csv");
            fs::write(&path, text).map_err(|e| SippError::Setup(format!("inject file: {e}")))?;
            cmd.arg("-inf").arg(path);
        } else if let Some(inf) = &self.inject {
            let path = resolve(inf);
            if !path.is_file() {
                return Err(SippError::Setup(format!(
                    "inject file {} not found",
                    path.display()
                )));
            }
            cmd.arg("-inf").arg(path);
        }
        for (k, v) in &self.vars {
            cmd.args(["-set", k, v]);
        }
        cmd.args(["-trace_stat", "-fd", "1"])
            .arg("-stf")
            .arg(&files.stat);
        // sipp has no option naming the counts file: it writes <scenario>_<pid>_counts.csv
        // into its working directory (see RunFiles::counts_file).
        cmd.arg("-trace_counts");
        cmd.arg("-trace_err").arg("-error_file").arg(&files.errors);
        cmd.arg("-trace_screen")
            .arg("-screen_file")
            .arg(&files.screen);
        if self.trace_msg {
            cmd.arg("-trace_msg")
                .arg("-message_file")
                .arg(&files.messages);
        }
        cmd.args(&self.extra_args);
        cmd.current_dir(&files.cwd);

        let name = format!("sipp-{}", file_name(&scenario));
        let proc = Proc::spawn_in(&name, cmd, &files.dir)?;
        Ok(RunningSipp {
            sipp: self.clone(),
            proc,
            local_port,
            files,
            _logs: logs,
        })
    }
}

impl RunningSipp {
    /// The local SIP port sipp listens on.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// `IP:PORT` sipp listens on, e.g. as a Contact or a dial target.
    pub fn local_addr(&self) -> String {
        format!("{}:{}", self.sipp.local_ip, self.local_port)
    }

    /// Waits until sipp has bound its SIP port (outside namespaces), or up to `timeout`.
    pub fn wait_listening(&mut self, timeout: Duration) -> Result<(), SippError> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.sipp.netns.is_some() {
                // Cannot probe another namespace's ports from here; give it a moment.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(());
            }
            if !ports::is_free(self.local_port) {
                return Ok(());
            }
            if let Some(status) = self.proc.try_status() {
                return Err(SippError::Setup(format!(
                    "sipp exited ({status}) before listening\n{}",
                    self.diagnostics()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(SippError::Setup(format!(
            "sipp did not bind port {} within {timeout:?}\n{}",
            self.local_port,
            self.diagnostics()
        )))
    }

    /// Waits for sipp to exit and requires all `calls` calls to have succeeded.
    pub fn finish(self) -> Result<SippOutcome, SippError> {
        let wanted = u64::from(self.sipp.calls);
        self.finish_at_least(wanted)
    }

    /// Waits for sipp to exit and requires at least `wanted` successful calls and no failed
    /// one (for a UAS that also answers calls it cannot count ahead, such as keep-alives, and
    /// stops itself after the call that matters).
    pub fn finish_at_least(self, wanted: u64) -> Result<SippOutcome, SippError> {
        let scenario = file_name(&self.sipp.scenario);
        let (outcome, diagnostics) = self.finish_inner()?;
        if outcome.exit_code == Some(0) && outcome.successful >= wanted && outcome.failed == 0 {
            return Ok(outcome);
        }
        Err(SippError::Failed {
            scenario,
            exit_code: outcome.exit_code,
            successful: outcome.successful,
            failed: outcome.failed,
            wanted,
            diagnostics,
        })
    }

    /// Waits for sipp to exit and returns the outcome whatever the calls did.
    pub fn finish_unchecked(self) -> Result<SippOutcome, SippError> {
        self.finish_inner().map(|(o, _)| o)
    }

    fn finish_inner(mut self) -> Result<(SippOutcome, String), SippError> {
        let limit = self.sipp.timeout + KILL_MARGIN;
        let Some(status) = self.proc.wait_timeout(limit) else {
            self.proc.stop();
            return Err(SippError::Hung {
                scenario: file_name(&self.sipp.scenario),
                limit,
                diagnostics: self.diagnostics(),
            });
        };
        let diagnostics = self.diagnostics();
        let stats = last_csv_row(&read(&self.files.stat));
        let counts = last_csv_row(&read(&self.counts_file()));
        let num = |k: &str| {
            stats
                .get(k)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let outcome = SippOutcome {
            exit_code: status.code(),
            successful: num("SuccessfulCall(C)"),
            failed: num("FailedCall(C)"),
            stats: stats.clone(),
            counts,
            error_log: read(&self.files.errors),
            local_port: self.local_port,
            logs: Arc::new(self._logs),
        };
        Ok((outcome, diagnostics))
    }

    /// `<scenario>_<pid>_counts.csv` in sipp's working directory.
    fn counts_file(&self) -> PathBuf {
        let suffix = format!("_{}_counts.csv", self.proc.pid());
        fs::read_dir(&self.files.cwd)
            .ok()
            .and_then(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .find(|p| file_name(p).ends_with(&suffix))
            })
            .unwrap_or_default()
    }

    /// Error log, the tail of the message trace, the screen and sipp's own output.
    pub fn diagnostics(&self) -> String {
        let section = |title: &str, path: &Path| {
            let text = read(path);
            if text.trim().is_empty() {
                String::new()
            } else {
                format!(
                    "----- sipp {title} ({}) -----\n{}\n",
                    path.display(),
                    tail(&text, DIAG_LIMIT)
                )
            }
        };
        format!(
            "{}{}{}{}",
            section("error log", &self.files.errors),
            section("messages (tail)", &self.files.messages),
            section("screen", &self.files.screen),
            self.proc.logs()
        )
    }
}

/// CSV text for `Sipp::inject_text` in the layout the scenarios expect:
/// `USER;[authentication username=USER password=PASS];PASS`, one line per user, used in order.
pub fn auth_csv<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut csv = String::from("SEQUENTIAL\n");
    for (user, pass) in users {
        csv.push_str(&format!(
            "{user};[authentication username={user} password={pass}];{pass}\n"
        ));
    }
    csv
}

/// A bare file name is taken from `tests/sipp/`; anything with a directory part as given.
fn resolve(p: &Path) -> PathBuf {
    if p.components().count() == 1 && !p.exists() {
        crate::sipp_scenario_dir().join(p)
    } else {
        p.to_path_buf()
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// sipp's CSV files: a header row and data rows, `;`-separated; returns the last data row.
fn last_csv_row(text: &str) -> BTreeMap<String, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let Some(last) = lines.next_back() else {
        return BTreeMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl RunningSipp {
    /// The message trace (`-trace_msg`) written so far while sipp still runs, e.g. to read the
    /// INVITE a ringing UAS got before its call ends; empty when tracing is off or nothing is
    /// written yet.
    pub fn messages_so_far(&self) -> String {
        read(&self.files.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_csv_has_the_scenarios_layout() {
        assert_eq!(
            auth_csv([("1001", "a"), ("1002", "b")]),
            "SEQUENTIAL\n1001;[authentication username=1001 password=a];a\n\
             1002;[authentication username=1002 password=b];b\n"
        );
    }

    #[test]
    fn stat_csv_last_row_by_column() {
        let text = "StartTime;SuccessfulCall(C);FailedCall(C);\n\
                    t0;0;0;\n\
                    t1;3;1;\n";
        let row = last_csv_row(text);
        assert_eq!(row["SuccessfulCall(C)"], "3");
        assert_eq!(row["FailedCall(C)"], "1");
        assert!(last_csv_row("only;a;header\n").is_empty());
        assert!(last_csv_row("").is_empty());
    }

    #[test]
    fn bare_scenario_names_resolve_to_the_repository_dir() {
        let p = resolve(Path::new("uac_call.xml"));
        assert!(p.ends_with("tests/sipp/uac_call.xml"), "{}", p.display());
        assert_eq!(resolve(Path::new("/x/y.xml")), PathBuf::from("/x/y.xml"));
    }

    #[test]
    fn message_count_sums_matching_columns() {
        let o = SippOutcome {
            exit_code: Some(0),
            successful: 1,
            failed: 0,
            stats: BTreeMap::new(),
            counts: [
                ("3_200_Retrans", "2"),
                ("7_200_Retrans", "1"),
                ("3_200_Recv", "1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            error_log: String::new(),
            local_port: 1,
            logs: Arc::new(tempfile::tempdir().unwrap()),
        };
        assert_eq!(o.message_count("200", "_Retrans"), 3);
        assert_eq!(o.message_count("200", "_Recv"), 1);
        assert_eq!(o.message_count("BYE", "_Recv"), 0);
    }
}
