//! A private PostgreSQL cluster for tests: its own data directory in a temporary directory, its
//! own free port on 127.0.0.1, trust authentication, stopped and deleted when done.
//!
//! Most tests want [`fresh_database`]: one cluster per test binary (started on first use and
//! stopped when the process exits) and a new, empty database per test, so tests run in parallel
//! without seeing each other. [`PgCluster::start`] gives a cluster of your own.
//!
//! Missing PostgreSQL binaries are an error that says how to install them; tests must not skip.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, anyhow, bail};

/// Where Debian puts PostgreSQL 15.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// What to run when the binaries are missing.
pub const INSTALL_HINT: &str = "apt-get install -y postgresql";

/// A running cluster. Dropping it stops the server (`pg_ctl stop -m immediate`) and deletes its
/// directory.
#[derive(Debug)]
pub struct PgCluster {
    root: Option<tempfile::TempDir>,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    watchdog: Option<std::process::Child>,
}

/// Finds the directory holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Result<PathBuf> {
    let preferred = PathBuf::from(PG_BIN_DIR);
    if preferred.join("pg_ctl").exists() {
        return Ok(preferred);
    }
    // Any other installed major version will do.
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut dirs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .collect();
        dirs.sort();
        if let Some(d) = dirs.pop() {
            return Ok(d);
        }
    }
    bail!(
        "PostgreSQL server binaries not found (looked for {PG_BIN_DIR}/pg_ctl). \
         Install them with: {INSTALL_HINT}"
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` OS user (PostgreSQL refuses to run as root).
fn postgres_ids() -> Result<(u32, u32)> {
    let name = std::ffi::CString::new("postgres")?;
    // SAFETY: getpwnam gets a valid C string; the returned record is read at once, before any
    // other call could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("OS user `postgres` does not exist; install PostgreSQL with: {INSTALL_HINT}");
    }
    // SAFETY: non-null pointer from getpwnam, see above.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A command that runs a server-side binary as the `postgres` user when we are root.
fn server_cmd(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

fn chown(path: &Path, ids: (u32, u32)) -> Result<()> {
    std::os::unix::fs::chown(path, Some(ids.0), Some(ids.1))
        .with_context(|| format!("chown {}", path.display()))
}

impl PgCluster {
    /// Creates and starts a cluster on a free port (retrying if another process takes the port
    /// between our probe and the server's bind).
    pub fn start() -> Result<PgCluster> {
        let bin = find_bin_dir()?;
        let root = tempfile::Builder::new()
            .prefix("denwa-pg-")
            .tempdir()
            .context("creating the cluster directory")?;
        let data = root.path().join("data");
        let sock = root.path().join("sock");
        std::fs::create_dir(&sock)?;
        if is_root() {
            let ids = postgres_ids()?;
            chown(root.path(), ids)?;
            chown(&sock, ids)?;
        }
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700))?;

        let mut initdb = server_cmd(&bin, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;

        let mut last_err = anyhow!("no attempt made");
        for _ in 0..5 {
            let port = free_port()?;
            let mut ctl = server_cmd(&bin, "pg_ctl");
            ctl.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(root.path().join("server.log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
                    sock.display()
                ))
                .args(["-w", "-t", "60", "start"]);
            match run(ctl, "pg_ctl start") {
                Ok(()) => {
                    let mut c = PgCluster {
                        root: Some(root),
                        data,
                        bin,
                        port,
                        watchdog: None,
                    };
                    c.watchdog = c.spawn_watchdog().ok();
                    return Ok(c);
                }
                Err(e) => {
                    let log =
                        std::fs::read_to_string(root.path().join("server.log")).unwrap_or_default();
                    last_err = e.context(format!("server log:\n{log}"));
                }
            }
        }
        Err(last_err.context("could not start PostgreSQL"))
    }

    /// A process that stops the server if this test process dies without cleaning up (killed by
    /// a timeout, say), so no orphaned postgres outlives the test run.
    fn spawn_watchdog(&self) -> Result<std::process::Child> {
        let root = self
            .root
            .as_ref()
            .map(|r| r.path().to_path_buf())
            .unwrap_or_default();
        let stop = if is_root() {
            format!("runuser -u postgres -- {}/pg_ctl", self.bin.display())
        } else {
            format!("{}/pg_ctl", self.bin.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            data = self.data.display(),
            root = root.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the cluster watchdog")
    }

    /// URL of database `name` over the cluster's Unix socket: reachable from every network
    /// namespace of this host (they share the file system), unlike 127.0.0.1.
    pub fn socket_url_for(&self, name: &str) -> String {
        let dir = self
            .root
            .as_ref()
            .map(|r| r.path().join("sock").display().to_string())
            .unwrap_or_default();
        format!(
            "postgres://postgres@localhost:{}/{name}?host={dir}",
            self.port
        )
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `name` as the superuser `postgres`.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// URL of the default `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let mut c = Command::new(self.bin.join("createdb"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]);
        run(c, "createdb")?;
        Ok(self.url_for(name))
    }

    /// Drops a database, disconnecting its users.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        let mut c = Command::new(self.bin.join("dropdb"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "--if-exists",
            "--force",
            name,
        ]);
        run(c, "dropdb")
    }

    /// Stops the server at once (like a crash) and deletes the directory. Idempotent.
    pub fn stop(&mut self) {
        if let Some(root) = self.root.take() {
            let mut c = server_cmd(&self.bin, "pg_ctl");
            c.arg("-D")
                .arg(&self.data)
                .args(["stop", "-m", "immediate"]);
            if let Err(e) = run(c, "pg_ctl stop") {
                eprintln!("testkit::pg: {e:#}");
            }
            if let Err(e) = root.close() {
                eprintln!("testkit::pg: removing the cluster directory: {e}");
            }
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A database of its own in the shared cluster; dropped (forcibly) with the guard.
#[derive(Debug)]
pub struct PgDatabase {
    name: String,
    url: String,
}

impl PgDatabase {
    /// `postgres://` URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Database name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(c) = shared() {
            // Best effort: the whole cluster is deleted at exit anyway.
            let _ = c.drop_database(&self.name);
        }
    }
}

static SHARED: OnceLock<std::result::Result<std::sync::Mutex<PgCluster>, String>> = OnceLock::new();
static SHARED_PORT: OnceLock<u16> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(Ok(m)) = SHARED.get() {
        // A test that panicked while holding the lock poisons it; the cluster must still stop.
        let mut c = m.lock().unwrap_or_else(|p| p.into_inner());
        c.stop();
    }
}

/// The cluster shared by all tests of this process, started on first use and stopped at exit.
pub fn shared() -> Result<SharedCluster> {
    let r = SHARED.get_or_init(|| match PgCluster::start() {
        Ok(c) => {
            let _ = SHARED_PORT.set(c.port());
            // SAFETY: registering a plain extern "C" function without arguments.
            unsafe {
                libc::atexit(stop_shared_at_exit);
            }
            Ok(std::sync::Mutex::new(c))
        }
        Err(e) => Err(format!("{e:#}")),
    });
    match r {
        Ok(_) => SHARED_PORT
            .get()
            .map(|p| SharedCluster { port: *p })
            .ok_or_else(|| anyhow!("shared cluster has no port")),
        Err(e) => Err(anyhow!("{e}")),
    }
}

/// A handle to the shared cluster.
#[derive(Debug, Clone, Copy)]
pub struct SharedCluster {
    port: u16,
}

impl SharedCluster {
    /// URL of database `name`.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn with<T>(&self, f: impl FnOnce(&PgCluster) -> Result<T>) -> Result<T> {
        match SHARED.get() {
            Some(Ok(m)) => {
                let c = m.lock().unwrap_or_else(|p| p.into_inner());
                f(&c)
            }
            _ => bail!("shared cluster not started"),
        }
    }

    /// Creates a database; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        self.with(|c| c.create_database(name))
    }

    /// Drops a database.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        self.with(|c| c.drop_database(name))
    }
}

/// A new empty database in the shared cluster, for one test.
pub fn fresh_database() -> Result<PgDatabase> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let c = shared()?;
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = c.create_database(&name)?;
    Ok(PgDatabase { name, url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_starts_accepts_connections_and_stops() {
        let mut c = PgCluster::start().unwrap();
        let url = c.create_database("probe").unwrap();
        assert!(url.ends_with("/probe"));
        let port = c.port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        let dir = c.data.clone();
        c.stop();
        assert!(!dir.exists(), "cluster directory removed");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn fresh_databases_are_distinct() {
        let a = fresh_database().unwrap();
        let b = fresh_database().unwrap();
        assert_ne!(a.url(), b.url());
    }
}
