//! Child processes for tests: output captured to files, waited on by pattern, killed on drop.
//!
//! stdout and stderr go to `stdout.log` and `stderr.log` in a directory of the guard's own (a
//! temporary one unless the caller gives one), so nothing is lost if a pipe would fill and a
//! test can read the whole history at any time. The child runs in its own process group and is
//! stopped by that id on drop: SIGTERM, then SIGKILL if it has not exited after a grace period.
//! If the test is panicking when the guard drops, the logs are printed to stderr.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

/// How long a child gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// How often output files and exit status are polled.
const POLL: Duration = Duration::from_millis(20);
/// At most this much of each log is printed when a test fails.
const PRINT_LIMIT: usize = 64 * 1024;

/// What can go wrong with a child process.
#[derive(thiserror::Error)]
pub enum ProcError {
    /// The program could not be started.
    #[error("cannot start {name}: {source}")]
    Spawn {
        /// The guard's name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// Log files or the temporary directory could not be created or read.
    #[error("{name}: I/O error on its logs: {source}")]
    Io {
        /// The guard's name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// No output line matched before the deadline.
    #[error("{name}: no output line matched {pattern} within {timeout:?}\n{logs}")]
    Timeout {
        /// The guard's name.
        name: String,
        /// The pattern waited for.
        pattern: String,
        /// How long we waited.
        timeout: Duration,
        /// The tail of its logs.
        logs: String,
    },
    /// The process exited before a line matched.
    #[error("{name} exited ({status}) before any output line matched {pattern}\n{logs}")]
    Exited {
        /// The guard's name.
        name: String,
        /// The pattern waited for.
        pattern: String,
        /// How it exited.
        status: ExitStatus,
        /// The tail of its logs.
        logs: String,
    },
}

// `unwrap()` in tests prints Debug: make it the readable message with the logs.
impl std::fmt::Debug for ProcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A pattern to find in a child's output: a substring or a regular expression.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// The line contains this text.
    Substring(String),
    /// The line matches this regular expression.
    Regex(Regex),
}

impl Pattern {
    /// Whether `line` matches.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Substring(s) => line.contains(s.as_str()),
            Pattern::Regex(r) => r.is_match(line),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Self {
        Pattern::Substring(s.to_owned())
    }
}

impl From<String> for Pattern {
    fn from(s: String) -> Self {
        Pattern::Substring(s)
    }
}

impl From<Regex> for Pattern {
    fn from(r: Regex) -> Self {
        Pattern::Regex(r)
    }
}

/// Where a guard keeps its logs: its own temporary directory or one the caller owns.
#[derive(Debug)]
enum LogDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl LogDir {
    fn path(&self) -> &Path {
        match self {
            LogDir::Temp(t) => t.path(),
            LogDir::Given(p) => p,
        }
    }
}

/// A running child process; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    dir: LogDir,
    status: Option<ExitStatus>,
    print_on_drop: bool,
}

impl Proc {
    /// Starts `cmd`, with stdout/stderr captured to files in a new temporary directory.
    pub fn spawn(name: &str, cmd: Command) -> Result<Proc, ProcError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("testkit-{name}-"))
            .tempdir()
            .map_err(|source| ProcError::Io {
                name: name.to_owned(),
                source,
            })?;
        Self::spawn_with_dir(name, cmd, LogDir::Temp(dir))
    }

    /// Starts `cmd`, with stdout/stderr captured to `stdout.log`/`stderr.log` in `dir`.
    pub fn spawn_in(name: &str, cmd: Command, dir: &Path) -> Result<Proc, ProcError> {
        Self::spawn_with_dir(name, cmd, LogDir::Given(dir.to_path_buf()))
    }

    fn spawn_with_dir(name: &str, mut cmd: Command, dir: LogDir) -> Result<Proc, ProcError> {
        crate::failure::remember_panics();
        let io_err = |source| ProcError::Io {
            name: name.to_owned(),
            source,
        };
        let out = fs::File::create(dir.path().join("stdout.log")).map_err(io_err)?;
        let err = fs::File::create(dir.path().join("stderr.log")).map_err(io_err)?;
        use std::os::unix::process::CommandExt;
        // Own process group: stopping the group also stops anything the child forked.
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|source| ProcError::Spawn {
            name: name.to_owned(),
            source,
        })?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            dir,
            status: None,
            print_on_drop: true,
        })
    }

    /// The name given at spawn (used in messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding `stdout.log` and `stderr.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the captured stdout.
    pub fn stdout_path(&self) -> PathBuf {
        self.dir().join("stdout.log")
    }

    /// Path of the captured stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.dir().join("stderr.log")
    }

    /// Whether logs are printed when the guard drops during a panic (default: yes).
    pub fn set_print_on_panic(&mut self, on: bool) {
        self.print_on_drop = on;
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Everything written to stdout so far (lossy UTF-8).
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path())
    }

    /// Everything written to stderr so far (lossy UTF-8).
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path())
    }

    /// Both logs, labelled, each cut to its last 64 KiB: for error messages.
    pub fn logs(&self) -> String {
        format!(
            "----- {} stdout ({}) -----\n{}\n----- {} stderr -----\n{}\n----- end of {} logs -----",
            self.name,
            self.stdout_path().display(),
            tail(&self.stdout(), PRINT_LIMIT),
            self.name,
            tail(&self.stderr(), PRINT_LIMIT),
            self.name
        )
    }

    /// Prints [`Proc::logs`] to stderr (the test harness shows it for failed tests).
    pub fn print_logs(&self) {
        eprintln!("{}", self.logs());
    }

    /// The first line of stdout or stderr matching `pattern`, waiting up to `timeout`.
    ///
    /// Searches all output since the start, so a line printed before the call is found too.
    pub fn wait_for_line(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<String, ProcError> {
        let pattern = pattern.into();
        let deadline = Instant::now() + timeout;
        loop {
            // Read the status first: output written before exit is then surely in the files.
            let status = self.try_status();
            if let Some(line) = self.find_line(&pattern) {
                return Ok(line);
            }
            if let Some(status) = status {
                return Err(ProcError::Exited {
                    name: self.name.clone(),
                    pattern: pattern.to_string(),
                    status,
                    logs: self.logs(),
                });
            }
            if Instant::now() >= deadline {
                return Err(ProcError::Timeout {
                    name: self.name.clone(),
                    pattern: pattern.to_string(),
                    timeout,
                    logs: self.logs(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The first line of output so far matching `pattern`, without waiting.
    pub fn find_line(&self, pattern: &Pattern) -> Option<String> {
        [self.stdout(), self.stderr()]
            .iter()
            .flat_map(|text| text.lines())
            .find(|l| pattern.matches(l))
            .map(str::to_owned)
    }

    /// Waits up to `timeout` for the child to exit by itself; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` to the child's process group (a no-op once it has exited).
    pub fn signal(&mut self, signal: i32) {
        if self.try_status().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals the process group we created at spawn.
        unsafe {
            libc::kill(-pid, signal);
        }
    }

    /// Stops the child: SIGTERM, then SIGKILL after a grace period; returns its exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_timeout(TERM_GRACE) {
            return Some(s);
        }
        self.signal(libc::SIGKILL);
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if self.print_on_drop && std::thread::panicking() {
            self.print_logs();
            // The panic message is far above these logs by now: say it again below them.
            if let Some(why) = crate::failure::panic_message() {
                eprintln!("----- the test failed (logs of {} above): {why}", self.name);
            }
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `limit` bytes of `text`, cut at a character boundary.
pub(crate) fn tail(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn waits_for_substring_and_regex_on_both_streams() {
        let mut p = Proc::spawn(
            "sh",
            sh("echo starting; sleep 0.2; echo 'ready on port 5071' >&2; sleep 30"),
        )
        .unwrap();
        let line = p.wait_for_line("ready", Duration::from_secs(10)).unwrap();
        assert_eq!(line, "ready on port 5071");
        let line = p
            .wait_for_line(Regex::new(r"port \d+").unwrap(), Duration::from_secs(1))
            .unwrap();
        assert!(line.ends_with("5071"));
        assert!(p.stdout().contains("starting"));
        assert!(p.is_running());
        let status = p.stop().unwrap();
        assert!(!status.success(), "killed by a signal, not a clean exit");
        assert!(!p.is_running());
    }

    #[test]
    fn exit_before_match_is_reported_with_logs() {
        let mut p = Proc::spawn("early", sh("echo some-diagnostic; exit 3")).unwrap();
        let err = p
            .wait_for_line("never", Duration::from_secs(10))
            .unwrap_err();
        match &err {
            ProcError::Exited { status, logs, .. } => {
                assert_eq!(status.code(), Some(3));
                assert!(logs.contains("some-diagnostic"));
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn timeout_is_reported() {
        let mut p = Proc::spawn("quiet", sh("sleep 30")).unwrap();
        let err = p
            .wait_for_line("never", Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, ProcError::Timeout { .. }), "{err}");
    }

    #[test]
    fn drop_kills_the_child_and_ignoring_term_gets_kill() {
        let mut p = Proc::spawn("stubborn", sh("trap '' TERM; echo armed; sleep 60")).unwrap();
        p.wait_for_line("armed", Duration::from_secs(10)).unwrap();
        let pid = p.pid();
        drop(p);
        // SAFETY: signal 0 only checks whether the pid exists.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!alive, "child {pid} survived drop");
    }

    #[test]
    fn spawn_failure_names_the_program() {
        let err = Proc::spawn("nope", Command::new("/nonexistent/testkit-binary")).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }
}
