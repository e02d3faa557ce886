//! Shared harness of the end-to-end tests: a real `denwa serve` process on free 127.0.0.1 ports
//! with its own data directory, and the CLI run against the same database.

#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod mail;
pub mod xfer;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::proc::Proc;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_denwa"))
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// `postgres://` URL; SQLite in the data dir when `None`.
    pub database_url: Option<String>,
    /// Extra `serve` flags.
    pub extra: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Address to listen on for SIP and HTTP (default 127.0.0.1).
    pub ip: Option<String>,
    /// Network namespace to run the server in (`ip netns exec NAME denwa ...`).
    pub netns: Option<String>,
    /// A command the server runs under (`WRAP... denwa serve ...`); `{data}` in it becomes the
    /// data directory (e.g. `unshare -m` with a small tmpfs mounted in it).
    pub wrap: Vec<String>,
}

impl Opts {
    /// The server in its own mount namespace with a tmpfs of `size` (e.g. `12k`) mounted over
    /// `DATA_DIR/sub` (a full disk there; the CLI, outside it, does not see that tmpfs).
    pub fn small_tmpfs(sub: &str, size: &str) -> Opts {
        let script = format!(
            "mkdir -p \"$0/{sub}\" && mount -t tmpfs -o size={size} dnw-full \"$0/{sub}\" && exec \"$@\""
        );
        Opts {
            wrap: ["unshare", "-m", "--propagation", "private", "sh", "-c"]
                .iter()
                .map(|s| s.to_string())
                .chain([script, "{data}".to_string()])
                .collect(),
            ..Default::default()
        }
    }
}

/// A running `denwa serve`.
pub struct Denwa {
    pub proc: Option<Proc>,
    pub data: tempfile::TempDir,
    pub sip_port: u16,
    pub http_port: u16,
    pub rtp_base: u16,
    pub opts: Opts,
}

impl Denwa {
    /// Starts a server with SQLite in a fresh data directory.
    pub fn start() -> Denwa {
        Denwa::start_with(Opts::default())
    }

    /// Starts a server with options.
    pub fn start_with(opts: Opts) -> Denwa {
        let data = tempfile::Builder::new()
            .prefix("denwa-e2e-")
            .tempdir()
            .expect("temp dir");
        let sip_port = testkit::ports::free_port().expect("free SIP port");
        let http_port = testkit::ports::free_port().expect("free HTTP port");
        let rtp_base = testkit::ports::free_block(40).expect("free RTP ports");
        let mut d = Denwa {
            proc: None,
            data,
            sip_port,
            http_port,
            rtp_base,
            opts,
        };
        d.spawn();
        d
    }

    fn base_args(&self) -> Vec<String> {
        let mut a = vec![
            "--data-dir".to_string(),
            self.data.path().display().to_string(),
        ];
        if let Some(u) = &self.opts.database_url {
            a.push("--database-url".into());
            a.push(u.clone());
        }
        a
    }

    /// (Re)starts the server process and waits until it serves.
    pub fn spawn(&mut self) {
        let ip = self.opts.ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin());
                c
            }
            None if !self.opts.wrap.is_empty() => {
                let data = self.data.path().display().to_string();
                let w: Vec<String> = self
                    .opts
                    .wrap
                    .iter()
                    .map(|a| a.replace("{data}", &data))
                    .collect();
                let mut c = Command::new(&w[0]);
                c.args(&w[1..]).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("serve")
            .args(self.base_args())
            .args(["--sip-listen", &format!("{ip}:{}", self.sip_port)])
            .args(["--http-listen", &format!("{ip}:{}", self.http_port)])
            .args([
                "--rtp-ports",
                &format!("{}-{}", self.rtp_base, self.rtp_base + 39),
            ])
            .args(["--log-level", "info,pbx=debug,sqlx=warn"])
            .args(&self.opts.extra);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let mut p = Proc::spawn("denwa", cmd).expect("spawn denwa");
        if let Err(e) = p.wait_for_line("denwa serving", Duration::from_secs(30)) {
            p.print_logs();
            panic!("denwa did not start: {e}");
        }
        self.proc = Some(p);
    }

    /// `IP:PORT` of the SIP listener.
    pub fn sip_addr(&self) -> String {
        format!(
            "{}:{}",
            self.opts.ip.as_deref().unwrap_or("127.0.0.1"),
            self.sip_port
        )
    }

    /// Runs a CLI subcommand against the same database, in the server's environment.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .args(self.base_args())
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run denwa CLI")
    }

    /// Starts a server in licence dev mode with a TEST-key licence that lifts the free
    /// allowance's limits (for tests with more than 25 extensions, 10 calls or 2 trunks).
    pub fn start_licensed(mut opts: Opts) -> Denwa {
        let (k, v) = testkit::licence::DEV_ENV;
        opts.env.push((k.into(), v.into()));
        let d = Denwa::start_with(opts);
        d.install_test_licence();
        d
    }

    /// Installs a TEST-key licence with generous limits, bound to this server's node id. The
    /// server (and so [`Denwa::cli`]) must run with `testkit::licence::DEV_ENV`.
    pub fn install_test_licence(&self) {
        let file = self.data_dir().join("test-licence.lic");
        std::fs::write(&file, testkit::licence::generous_for(self.data_dir())).expect("write");
        self.cli_ok(&["license", "install", file.to_str().expect("UTF-8 path")]);
    }

    /// Runs a CLI subcommand and requires success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "denwa {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds an extension with a password.
    pub fn add_extension(&self, number: &str, password: &str) {
        self.cli_ok(&["extension", "add", number, "--password", password]);
    }

    /// `cdr list --json` parsed.
    pub fn cdrs(&self) -> Vec<serde_json::Value> {
        let out = self.cli_ok(&["cdr", "list", "--json", "--limit", "100"]);
        serde_json::from_str(&out).expect("cdr JSON")
    }

    /// `registration list --json` parsed.
    pub fn registrations(&self) -> Vec<serde_json::Value> {
        let out = self.cli_ok(&["registration", "list", "--json"]);
        serde_json::from_str(&out).expect("registration JSON")
    }

    /// Waits until `f` holds (polling), or panics with the server log.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.print_logs();
        panic!("timed out waiting for {what}");
    }

    /// Prints the server log (for failing tests).
    pub fn print_logs(&self) {
        if let Some(p) = &self.proc {
            p.print_logs();
        }
    }

    /// The server log so far.
    pub fn logs(&self) -> String {
        self.proc.as_ref().map(|p| p.logs()).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.set_print_on_panic(false);
            p.signal(9);
            let _ = p.wait_timeout(Duration::from_secs(10));
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut p = self.proc.take()?;
        p.signal(15);
        let st = p.wait_timeout(Duration::from_secs(20));
        st.and_then(|s| s.code())
    }

    /// Data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Waits until a call through an application has freed its media endpoint and its call
    /// record is written; returns that record.
    pub fn call_cleaned_up(&self) -> serde_json::Value {
        self.wait_until("the endpoint freed", Duration::from_secs(10), || {
            self.logs().contains("media endpoint closed")
        });
        let mut cdrs = Vec::new();
        self.wait_until("the call record", Duration::from_secs(10), || {
            cdrs = self.cdrs();
            !cdrs.is_empty()
        });
        cdrs.swap_remove(0)
    }
}

impl Drop for Denwa {
    fn drop(&mut self) {
        // Proc stops the process (and prints its log when the test panicked).
        drop(self.proc.take());
    }
}

/// CSV for sipp's `-inf` with one user (`user;[authentication ...];password`).
pub fn sipp_user(user: &str, password: &str) -> String {
    testkit::sipp::auth_csv([(user, password)])
}

/// Registers `user` from a sipp on a fresh port with `register.xml` (binding kept) and returns
/// the port, so a sipp UAS can then listen there and get the user's calls.
pub fn sipp_register(d: &Denwa, user: &str, password: &str) -> u16 {
    let port = testkit::ports::free_port().expect("port");
    let mut s = testkit::sipp::Sipp::uac("register.xml", &d.sip_addr());
    s.local_port = Some(port);
    s.inject_text = Some(sipp_user(user, password));
    s.run().expect("the user registers");
    port
}

/// Writes `freqs` (a known tone sequence, `lead_ms` of silence first) as a WAV of at least
/// `min_ms` into `dir/name`: what a baresip phone sends.
pub fn tone_wav(dir: &Path, name: &str, freqs: &[u32], lead_ms: u32, min_ms: u32) -> PathBuf {
    let path = dir.join(name);
    let layout = testkit::tone::ToneLayout {
        lead_ms,
        ..testkit::tone::ToneLayout::default()
    };
    testkit::tone::write_tone_wav(&path, freqs, &layout, min_ms).expect("tone file");
    path
}

/// A baresip phone registered as `user` to `d`, sending `wav`.
pub fn registered_phone(
    d: &Denwa,
    user: &str,
    password: &str,
    wav: &Path,
) -> testkit::baresip::Phone {
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let cfg = testkit::baresip::PhoneConfig::new(user)
        .registering(&d.sip_addr(), password, 600)
        .with_audio(wav);
    let mut p = testkit::baresip::Phone::start(cfg).expect("baresip starts");
    p.wait_event("REGISTER_OK", Duration::from_secs(20))
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("{user} did not register: {e}")
        });
    p
}

/// `a` dials `number` on `d` and both `a` and the ringing `b` (auto-answering) reach
/// CALL_ESTABLISHED.
pub fn answered_call(
    d: &Denwa,
    a: &mut testkit::baresip::Phone,
    b: &mut testkit::baresip::Phone,
    number: &str,
) {
    let timeout = Duration::from_secs(20);
    a.dial(&format!("sip:{number}@{}", d.sip_addr()))
        .expect("dial");
    if let Err(e) = a.wait_event("CALL_ESTABLISHED", timeout) {
        d.print_logs();
        panic!("caller: {e}");
    }
    b.wait_event("CALL_ESTABLISHED", timeout)
        .expect("callee established");
}
