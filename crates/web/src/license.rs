//! Licensing as a running node sees it: this node's identity, the installed licence file, the
//! [`Entitlement`] in force, and the checks every place that creates objects calls.
//!
//! - Node id: `<data-dir>/node-id` ([`license::node::NODE_ID_FILE`]), made on first use from 10
//!   random bytes of the OS and read back ever after. Not in the database and not in backups
//!   (`store::backup` archives only `prompts/`, `recordings/` and `voicemail/`), so it never
//!   travels to another server with a restored or replicated database.
//! - The installed licence: `<data-dir>/license.txt` ([`LICENSE_FILE`]), the verified file's
//!   bytes unchanged. Node-local on purpose: a licence is bound to node ids, and an
//!   active/standby pair has one data dir per node.
//! - Reload: [`Licensing::reload_if_changed`] compares the file's inode, size and mtime with
//!   what was loaded; `denwa serve` calls it every few seconds, so `denwa license install` on
//!   the same machine takes effect without a restart.
//! - Keys: [`license::Keyring::vendor`], or [`license::Keyring::with_test_key`] in dev mode
//!   ([`dev_mode_from_env`]: `DENWA_LICENSE_DEV=1`).
//!
//! Where objects are created, call [`crate::Web::check_create`] (API and panel handlers), or
//! [`usage`] + [`check_create`] (the CLI): both refuse after expiry (configuration is read-only)
//! and at the limit, with the licence crate's message, which names the limit.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
pub use license::{
    DEV_MODE_ENV, DEV_MODE_WARNING, Entitlement, FREE_CONCURRENT_CALLS, FREE_EXTENSIONS,
    FREE_TENANTS, FREE_TRUNKS, Keyring, LicenseError, LimitError, LimitKind, ReadOnlyError, Report,
    Status, Topology, Verified,
};
use serde::Serialize;

use crate::api::ApiError;

/// The installed licence, under the data dir.
pub const LICENSE_FILE: &str = "license.txt";

/// How often `denwa serve` looks at the licence file for changes.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

/// True when `DENWA_LICENSE_DEV=1`: licences signed by the public TEST key are accepted too.
pub fn dev_mode_from_env() -> bool {
    std::env::var(DEV_MODE_ENV).is_ok_and(|v| v.trim() == "1")
}

/// The keyring for the mode: the vendor key, plus the test key in dev mode.
pub fn keyring(dev_mode: bool) -> Keyring {
    if dev_mode {
        Keyring::with_test_key()
    } else {
        Keyring::vendor()
    }
}

/// Reads `<data_dir>/node-id`, creating it on first use. Safe when several processes start at
/// once: the id is written to a private file first and linked into place, so a reader never
/// sees a half-written id and the first writer wins.
pub fn node_id(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(license::node::NODE_ID_FILE);
    let read = |p: &Path| -> Result<Option<String>, String> {
        match std::fs::read_to_string(p) {
            Ok(s) => license::node::parse_node_id_file(&s)
                .map(Some)
                .map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", p.display())),
        }
    };
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let id = license::node::new_node_id(rand::random());
    let mut tmp = tempfile::Builder::new()
        .prefix(".node-id.")
        .tempfile_in(data_dir)
        .map_err(|e| format!("cannot write in {}: {e}", data_dir.display()))?;
    writeln!(tmp, "{id}")
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("cannot write the node id: {e}"))?;
    match std::fs::hard_link(tmp.path(), &path) {
        Ok(()) => Ok(id),
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| format!("{} vanished while being created", path.display()))
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// What the node runs on, shared by the HTTP handlers, the reload task and the CLI. Cheap to
/// clone.
#[derive(Clone)]
pub struct Licensing {
    inner: Arc<Shared>,
}

struct Shared {
    node_id: String,
    keys: Keyring,
    dev_mode: bool,
    /// `None`: nothing on disk (tests of this crate that need no data dir).
    path: Option<PathBuf>,
    state: RwLock<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    entitlement: Entitlement,
    /// Why the installed file is not in force (then the free allowance is).
    problem: Option<Problem>,
    /// Inode, size and mtime of the file that was loaded (`None`: no file).
    stamp: Option<(u64, u64, std::time::SystemTime)>,
}

/// Why the installed licence file is not in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// [`LicenseError::code`], or `unreadable`.
    pub code: String,
    /// What to show.
    pub message: String,
}

/// `license install` / `PUT /api/v1/license` refused the file or could not store it; nothing
/// changed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Verification refused the file.
    #[error(transparent)]
    Refused(#[from] LicenseError),
    /// The verified file could not be written.
    #[error("the licence is valid but could not be stored: {0}")]
    Io(String),
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> ApiError {
        match &e {
            InstallError::Refused(r) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, r.code(), r.to_string())
            }
            InstallError::Io(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

fn stamp(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

impl Licensing {
    /// This node's licensing from its data dir: creates the node id on first use, loads
    /// `license.txt` if there is one.
    pub fn open(data_dir: &Path, dev_mode: bool) -> Result<Licensing, String> {
        let node_id = node_id(data_dir)?;
        let l = Licensing::build(node_id, dev_mode, Some(data_dir.join(LICENSE_FILE)));
        l.reload(Utc::now());
        Ok(l)
    }

    /// The free allowance with nothing on disk; installs are verified and held in memory only.
    pub fn in_memory(node_id: &str, dev_mode: bool) -> Licensing {
        Licensing::build(node_id.to_string(), dev_mode, None)
    }

    fn build(node_id: String, dev_mode: bool, path: Option<PathBuf>) -> Licensing {
        Licensing {
            inner: Arc::new(Shared {
                node_id,
                keys: keyring(dev_mode),
                dev_mode,
                path,
                state: RwLock::new(Loaded {
                    entitlement: Entitlement::free(),
                    problem: None,
                    stamp: None,
                }),
            }),
        }
    }

    /// This node's id (what the vendor binds a licence to).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// True in dev mode (the TEST key is trusted).
    pub fn dev_mode(&self) -> bool {
        self.inner.dev_mode
    }

    /// Where the installed licence is kept.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn state(&self) -> Loaded {
        self.inner
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, l: Loaded) {
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = l;
    }

    /// What is in force.
    pub fn entitlement(&self) -> Entitlement {
        self.state().entitlement
    }

    /// Why the installed file is not in force, if it is not.
    pub fn problem(&self) -> Option<Problem> {
        self.state().problem
    }

    /// Reads the installed file again (or finds it gone): the free allowance when there is
    /// none or it is refused. Logs what changed.
    fn reload(&self, now: DateTime<Utc>) {
        let Some(path) = self.path() else { return };
        let st = stamp(path);
        let loaded = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded {
                entitlement: Entitlement::free(),
                problem: None,
                stamp: None,
            },
            Err(e) => Loaded {
                entitlement: Entitlement::free(),
                problem: Some(Problem {
                    code: "unreadable".into(),
                    message: format!("cannot read {}: {e}", path.display()),
                }),
                stamp: st,
            },
            Ok(bytes) => {
                match Entitlement::from_installed(&bytes, &self.inner.keys, self.node_id(), now) {
                    Ok(ent) => Loaded {
                        entitlement: ent,
                        problem: None,
                        stamp: st,
                    },
                    Err(e) => Loaded {
                        entitlement: Entitlement::free(),
                        problem: Some(Problem {
                            code: e.code().into(),
                            message: format!(
                                "the installed licence {} is not in force: {e}",
                                path.display()
                            ),
                        }),
                        stamp: st,
                    },
                }
            }
        };
        match &loaded.problem {
            Some(p) => {
                tracing::warn!(problem = %p.message, "licence: running on the free allowance")
            }
            None => tracing::info!(licence = %loaded.entitlement.summary(now), "licence loaded"),
        }
        self.set(loaded);
    }

    /// Reloads when the licence file changed since it was loaded (installed by another
    /// process, removed, replaced). True when it reloaded.
    pub fn reload_if_changed(&self, now: DateTime<Utc>) -> bool {
        let Some(path) = self.path() else {
            return false;
        };
        if stamp(path) == self.state().stamp {
            return false;
        }
        self.reload(now);
        true
    }

    /// Verifies `text` for this node at `now` and, when it passes, stores it byte for byte and
    /// puts it in force. A refused file changes nothing.
    pub fn install(&self, text: &[u8], now: DateTime<Utc>) -> Result<Verified, InstallError> {
        let verified = license::verify(text, &self.inner.keys, self.node_id(), now)?;
        let mut st = None;
        if let Some(path) = self.path() {
            let dir = path.parent().unwrap_or(Path::new("."));
            let write = || -> std::io::Result<()> {
                let mut tmp = tempfile::Builder::new()
                    .prefix(".license.")
                    .tempfile_in(dir)?;
                tmp.write_all(text)?;
                tmp.as_file().sync_all()?;
                tmp.persist(path).map_err(|e| e.error)?;
                Ok(())
            };
            write().map_err(|e| InstallError::Io(format!("{}: {e}", path.display())))?;
            st = stamp(path);
        }
        self.set(Loaded {
            entitlement: Entitlement::licensed(verified.clone()),
            problem: None,
            stamp: st,
        });
        tracing::info!(licence = %verified.license.id, customer = %verified.license.customer,
            topology = %verified.license.topology, "licence installed");
        Ok(verified)
    }

    /// Refuses configuration changes after expiry.
    pub fn check_writable(&self, now: DateTime<Utc>) -> Result<(), Refusal> {
        self.entitlement()
            .check_writable(now)
            .map_err(Refusal::ReadOnly)
    }

    /// Everything `denwa license show --json` and `GET /api/v1/license` show.
    pub fn view(&self, usage: Usage, now: DateTime<Utc>) -> LicenseView {
        let s = self.state();
        LicenseView {
            node_id: self.node_id().to_string(),
            dev_mode: self.dev_mode(),
            file: self.path().map(|p| p.display().to_string()),
            problem: s.problem,
            usage,
            report: s.entitlement.report(now),
        }
    }
}

/// `GET /api/v1/license` and `denwa license show --json`.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseView {
    /// This node's id: send it to the vendor.
    pub node_id: String,
    /// True in dev mode (licences signed by the TEST key are accepted).
    pub dev_mode: bool,
    /// Where the installed licence is kept on this node.
    pub file: Option<String>,
    /// Why the installed file is not in force (then the free allowance is).
    pub problem: Option<Problem>,
    /// How much of each limit is used.
    pub usage: Usage,
    /// What is in force.
    #[serde(flatten)]
    pub report: Report,
}

/// How many of each limited thing exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Extensions, all tenants.
    pub extensions: u64,
    /// Simultaneous calls in progress (`None` where call control is not reachable: the CLI).
    pub concurrent_calls: Option<u64>,
    /// Tenants.
    pub tenants: u64,
    /// Trunks, all tenants.
    pub trunks: u64,
}

impl Usage {
    /// The count for `kind` (`None`: not known here).
    pub fn get(&self, kind: LimitKind) -> Option<u64> {
        match kind {
            LimitKind::Extensions => Some(self.extensions),
            LimitKind::ConcurrentCalls => self.concurrent_calls,
            LimitKind::Tenants => Some(self.tenants),
            LimitKind::Trunks => Some(self.trunks),
        }
    }

    /// "12 / 25", "3 / unlimited", "- / 10" (not counted here).
    pub fn against(&self, kind: LimitKind, ent: &Entitlement) -> String {
        let used = self.get(kind).map_or("-".to_string(), |n| n.to_string());
        match ent.limits().get(kind) {
            Some(l) => format!("{used} / {l}"),
            None => format!("{used} / unlimited"),
        }
    }
}

/// Counts what the licence limits, from the database (calls are left `None`).
pub async fn usage(store: &store::Store) -> Result<Usage, store::Error> {
    let tenants = store.list_tenants().await?;
    let mut u = Usage {
        tenants: tenants.len() as u64,
        ..Usage::default()
    };
    for t in &tenants {
        u.extensions += store.count_extensions(t.id, None).await?.max(0) as u64;
        u.trunks += store.list_trunks(t.id).await?.len() as u64;
    }
    Ok(u)
}

/// A creation or change the licence does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The licence expired: configuration is read-only.
    #[error("{0}")]
    ReadOnly(ReadOnlyError),
    /// One more would pass a limit.
    #[error("{0}")]
    Limit(LimitError),
}

impl Refusal {
    /// `license_read_only` or `license_limit` (the API's error code).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::ReadOnly(_) => "license_read_only",
            Refusal::Limit(_) => "license_limit",
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, r.code(), r.to_string())
    }
}

/// THE check before creating one more object of `kind` when `current` exist: configuration must
/// be writable (not expired) and the limit must allow one more. The refusal's message names the
/// limit ("the licence allows 25 extensions; 25 exist"). Never used on calls in progress.
pub fn check_create(
    ent: &Entitlement,
    kind: LimitKind,
    current: u64,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    ent.check_writable(now).map_err(Refusal::ReadOnly)?;
    ent.check_limit(kind, current, 1).map_err(Refusal::Limit)
}

impl crate::Web {
    /// The node's licensing.
    pub fn licensing(&self) -> &Licensing {
        &self.inner.licensing
    }

    /// For API and panel handlers that create an object of `kind` (extension, trunk, tenant):
    /// counts what exists and applies [`check_create`]. `Err` is a 403 with code
    /// `license_limit` or `license_read_only` and the message to show.
    ///
    /// ```ignore
    /// w.check_create(web::license::LimitKind::Trunks).await?;   // before store.create_trunk
    /// ```
    pub async fn check_create(&self, kind: LimitKind) -> Result<(), ApiError> {
        let now = Utc::now();
        let ent = self.licensing().entitlement();
        // Nothing to count when the answer does not depend on it.
        ent.check_writable(now).map_err(Refusal::ReadOnly)?;
        if ent.limits().get(kind).is_none() {
            return Ok(());
        }
        let current = match kind {
            LimitKind::ConcurrentCalls => self.control().calls().await.len() as u64,
            _ => usage(self.store()).await?.get(kind).unwrap_or(0),
        };
        Ok(check_create(&ent, kind, current, now)?)
    }

    /// The cap on `kind` to pass to the store's `create_*_capped` (`None`: unlimited): the
    /// store re-checks it in the insert's own transaction, so two creates racing past
    /// [`Web::check_create`] cannot both pass the limit (the loser gets a 403 `license_limit`).
    pub fn licence_cap(&self, kind: LimitKind) -> Option<u64> {
        self.licensing()
            .entitlement()
            .limits()
            .get(kind)
            .map(u64::from)
    }

    /// For handlers that change configuration: refused (403 `license_read_only`) once the
    /// licence has expired.
    pub fn check_writable(&self) -> Result<(), ApiError> {
        Ok(self.licensing().check_writable(Utc::now())?)
    }

    /// [`usage`] plus the calls in progress.
    pub async fn license_usage(&self) -> Result<Usage, ApiError> {
        let mut u = usage(self.store()).await?;
        u.concurrent_calls = Some(self.control().calls().await.len() as u64);
        Ok(u)
    }
}
