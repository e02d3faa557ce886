//! Portable, consistent backups and validated, transactional restores.
//!
//! An archive is a plain tar file:
//!
//! ```text
//! tables/<table>.jsonl     one JSON object per row, columns by name, in a backend-neutral form
//! files/<dir>/<path>       data-dir files (prompts, recordings, voicemail, moh) as they were read
//! manifest.json            last: format, Denwa and schema versions, time, size + SHA-256 per entry
//! ```
//!
//! Tables are read in one snapshot transaction (REPEATABLE READ on PostgreSQL, a read
//! transaction in WAL mode on SQLite), so a backup taken while the server runs is consistent.
//! Timestamps are the integer milliseconds the schema stores, booleans are JSON booleans, so a
//! SQLite backup restores into PostgreSQL and back unchanged.
//!
//! A restore first extracts and checks everything (manifest, sizes, checksums, every row's
//! columns and types, schema version — older backups are upgraded row by row), and only then
//! replaces all tables in one transaction; a file that fails any check changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::db::{Db, RowGet, write_tx};
use crate::notify::announce;
use crate::{Backend, Change, Error, Result, Store};

/// Value of [`Manifest::format`].
pub const FORMAT: &str = "denwa-backup";
/// Archive layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Data-dir subdirectories that are backed up and restored.
pub const DATA_DIRS: &[&str] = &["prompts", "recordings", "voicemail", "moh"];
const MANIFEST: &str = "manifest.json";

/// What an archive holds; written last into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version, [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Version of the Denwa that wrote it.
    pub denwa_version: String,
    /// Schema version of the tables in it.
    pub schema_version: i64,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// Backend it was taken from (informational).
    pub source_backend: String,
    /// Every other entry of the archive.
    pub entries: Vec<ManifestEntry>,
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path inside the archive.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Rows, for tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Int,
    Real,
    Text,
    Bool,
}

/// A table as backups see it: columns of the latest schema, in parent-before-child order.
pub(crate) struct TableDef {
    pub(crate) name: &'static str,
    pub(crate) cols: &'static [(&'static str, Ty)],
    /// Has an auto-numbered `id` (PostgreSQL sequences must follow restored ids).
    identity: bool,
    /// The schema version that created the table: older backups do not have it (restored
    /// empty).
    since: i64,
}

use Ty::{Bool, Int, Real, Text};

/// Not backed up: `schema_migrations` and `change_counters` (bookkeeping) and `trunk_status`
/// (each node's live view of its trunks, rewritten within seconds of a start), and the report
/// tables `report_calls`, `report_state` and `report_gaps` (derived from the call records: a
/// restore empties them and the next aggregation rebuilds them from the restored records), and
/// the `backup_*` tables (pairing and shipping state are node-local: a restore keeps them), and
/// `vm_outbox` (this node's e-mail delivery state; a restore must not mail messages again) and
/// `event_subs` (this node's SIP subscriptions; phones re-subscribe), and `cluster_epoch` (the
/// pair's fencing token: a restore must never carry an old epoch back; see `crate::fence`).
pub(crate) const TABLES: &[TableDef] = &[
    TableDef {
        name: "tenants",
        cols: &[
            ("id", Int),
            ("name", Text),
            ("realm", Text),
            ("is_default", Bool),
            ("created_at", Int),
            ("outbound", Text),
            ("language", Text),
        ],
        identity: true,
        since: 1,
    },
    TableDef {
        name: "domains",
        cols: &[("domain", Text), ("tenant_id", Int)],
        identity: false,
        since: 1,
    },
    TableDef {
        name: "extensions",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("number", Text),
            ("display_name", Text),
            ("ha1_md5", Text),
            ("ha1_sha256", Text),
            ("enabled", Bool),
            ("max_contacts", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("cos", Text),
            ("outbound_cid", Text),
            ("anonymous", Bool),
            ("out_limits", Text),
            ("language", Text),
        ],
        identity: true,
        since: 1,
    },
    TableDef {
        name: "trunks",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("spec", Text),
            ("password", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 4,
    },
    TableDef {
        name: "outbound_routes",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("position", Int),
            ("spec", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 4,
    },
    TableDef {
        name: "inbound_routes",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("pattern", Text),
            ("spec", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 4,
    },
    TableDef {
        name: "ivr_menus",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("number", Text),
            ("spec", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 6,
    },
    TableDef {
        name: "conf_rooms",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("number", Text),
            ("spec", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 7,
    },
    TableDef {
        name: "ring_groups",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("number", Text),
            ("spec", Text),
            ("last_member", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 9,
    },
    TableDef {
        name: "ext_forwarding",
        cols: &[("extension_id", Int), ("spec", Text), ("updated_at", Int)],
        identity: false,
        since: 9,
    },
    TableDef {
        name: "recording_policies",
        cols: &[
            ("tenant_id", Int),
            ("kind", Text),
            ("name", Text),
            ("policy", Text),
            ("updated_at", Int),
        ],
        identity: false,
        since: 10,
    },
    TableDef {
        name: "recording_settings",
        cols: &[
            ("tenant_id", Int),
            ("retention_days", Int),
            ("format", Text),
            ("layout", Text),
        ],
        identity: false,
        since: 10,
    },
    TableDef {
        name: "recordings",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("call_id", Text),
            ("path", Text),
            ("format", Text),
            ("started_at", Int),
            ("stopped_at", Int),
            ("duration_ms", Int),
            ("status", Text),
            ("detail", Text),
        ],
        identity: true,
        since: 10,
    },
    TableDef {
        name: "vm_boxes",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("number", Text),
            ("spec", Text),
            ("pin_hash", Text),
            ("pin_failures", Int),
            ("locked_until", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 11,
    },
    TableDef {
        name: "vm_messages",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("mailbox", Text),
            ("folder", Text),
            ("caller", Text),
            ("caller_name", Text),
            ("call_id", Text),
            ("reason", Text),
            ("duration_ms", Int),
            ("received_at", Int),
            ("path", Text),
        ],
        identity: true,
        since: 11,
    },
    TableDef {
        name: "feature_codes",
        cols: &[
            ("tenant_id", Int),
            ("feature", Text),
            ("code", Text),
            ("updated_at", Int),
        ],
        identity: false,
        since: 12,
    },
    TableDef {
        name: "time_conditions",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("number", Text),
            ("day_night_index", Int),
            ("spec", Text),
            ("mode", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 12,
    },
    TableDef {
        name: "holiday_calendars",
        cols: &[("tenant_id", Int), ("spec", Text), ("updated_at", Int)],
        identity: false,
        since: 12,
    },
    TableDef {
        name: "pickup_groups",
        cols: &[("extension_id", Int), ("name", Text)],
        identity: false,
        since: 12,
    },
    TableDef {
        name: "cdr_events",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("call_id", Text),
            ("seq", Int),
            ("at", Int),
            ("kind", Text),
            ("by_number", Text),
            ("party", Text),
            ("target", Text),
            ("status", Int),
        ],
        identity: true,
        since: 13,
    },
    TableDef {
        name: "park_lots",
        cols: &[
            ("tenant_id", Int),
            ("first_slot", Int),
            ("last_slot", Int),
            ("timeout_s", Int),
            ("moh_class", Text),
            ("fallback", Text),
            ("updated_at", Int),
        ],
        identity: false,
        since: 14,
    },
    TableDef {
        name: "park_calls",
        cols: &[
            ("tenant_id", Int),
            ("slot", Int),
            ("parked_at", Int),
            ("record", Text),
        ],
        identity: false,
        since: 14,
    },
    TableDef {
        name: "page_groups",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("number", Text),
            ("spec", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 15,
    },
    TableDef {
        name: "custom_prompts",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("lang", Text),
            ("description", Text),
            ("source", Text),
            ("original_name", Text),
            ("original_format", Text),
            ("recorded_by", Text),
            ("duration_ms", Int),
            ("sha256", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 19,
    },
    TableDef {
        name: "administrators",
        cols: &[
            ("id", Int),
            ("username", Text),
            ("password_hash", Text),
            ("role", Text),
            ("failed_logins", Int),
            ("locked_until", Int),
            ("created_at", Int),
        ],
        identity: true,
        since: 1,
    },
    TableDef {
        name: "api_keys",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("name", Text),
            ("prefix", Text),
            ("token_hash", Text),
            ("scope", Text),
            ("created_at", Int),
            ("last_used_at", Int),
        ],
        identity: true,
        since: 1,
    },
    TableDef {
        name: "settings",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("key", Text),
            ("value", Text),
            ("updated_at", Int),
        ],
        identity: true,
        since: 1,
    },
    TableDef {
        name: "registrations",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("extension_id", Int),
            ("aor", Text),
            ("contact_uri", Text),
            ("expires_at", Int),
            ("q", Real),
            ("call_id", Text),
            ("cseq", Int),
            ("user_agent", Text),
            ("received_addr", Text),
            ("transport", Text),
            ("local_addr", Text),
            ("instance_id", Text),
            ("reg_id", Int),
            ("node", Text),
            ("flags", Int),
            ("last_seen", Int),
            ("updated_at", Int),
        ],
        identity: true,
        since: 1,
    },
    TableDef {
        name: "cdrs",
        cols: &[
            ("id", Int),
            ("tenant_id", Int),
            ("call_id", Text),
            ("caller", Text),
            ("callee", Text),
            ("caller_name", Text),
            ("start_time", Int),
            ("answer_time", Int),
            ("end_time", Int),
            ("duration_s", Int),
            ("billsec", Int),
            ("disposition", Text),
            ("hangup_by", Text),
            ("hangup_cause", Text),
            ("codec", Text),
            ("a_pkts_rx", Int),
            ("a_pkts_tx", Int),
            ("a_lost", Int),
            ("a_jitter_ms", Real),
            ("b_pkts_rx", Int),
            ("b_pkts_tx", Int),
            ("b_lost", Int),
            ("b_jitter_ms", Real),
            ("direction", Text),
            ("trunk", Text),
            ("did", Text),
            ("dialled", Text),
            ("sent_number", Text),
            ("caller_id", Text),
        ],
        identity: true,
        since: 1,
    },
];

/// Brings a row written at schema `from` to the latest schema. One arm per migration that
/// changed a backed-up table, applied in order.
fn upgrade_row(table: &str, from: i64, row: &mut Map<String, Value>) {
    if from < 2 && table == "cdrs" {
        for c in [
            "a_pkts_rx",
            "a_pkts_tx",
            "a_lost",
            "b_pkts_rx",
            "b_pkts_tx",
            "b_lost",
        ] {
            row.entry(c).or_insert(Value::from(0));
        }
        for c in ["a_jitter_ms", "b_jitter_ms"] {
            row.entry(c).or_insert(Value::from(0.0));
        }
    }
    if from < 4 {
        let defaults: &[(&str, Value)] = match table {
            "tenants" => &[("outbound", Value::from("{}"))][..],
            "extensions" => &[
                ("cos", Value::from("mobile")),
                ("outbound_cid", Value::from("")),
                ("anonymous", Value::from(false)),
                ("out_limits", Value::from("{}")),
            ][..],
            "cdrs" => &[
                ("direction", Value::from("internal")),
                ("trunk", Value::from("")),
                ("did", Value::from("")),
                ("dialled", Value::from("")),
                ("sent_number", Value::from("")),
                ("caller_id", Value::from("")),
            ][..],
            _ => &[][..],
        };
        for (c, v) in defaults {
            row.entry(*c).or_insert_with(|| v.clone());
        }
    }
    if from < 16 && matches!(table, "tenants" | "extensions") {
        row.entry("language").or_insert(Value::from(""));
    }
}

pub(crate) fn table_entry(name: &str) -> String {
    format!("tables/{name}.jsonl")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Backup(msg.into())
}

// ----- writing -----

/// Reads through while hashing and counting.
struct HashRead<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

fn cell_json(row: &impl RowGet, col: &str, ty: Ty) -> Result<Value> {
    Ok(match ty {
        Int => row.opt_i64(col)?.map_or(Value::Null, Value::from),
        Text => row.opt_text(col)?.map_or(Value::Null, Value::from),
        Real => row.opt_f64(col)?.map_or(Value::Null, Value::from),
        Bool => row.opt_bool(col)?.map_or(Value::Null, Value::from),
    })
}

/// Writes the snapshot of every table into `dir` (one JSONL file each); returns the schema version.
async fn dump_tables(db: &Db, dir: &Path) -> Result<(i64, Vec<ManifestEntry>)> {
    macro_rules! dump_in {
        ($tx:ident) => {{
            let version: i64 = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
                .fetch_one(&mut *$tx)
                .await?
                .opt_i64("v")?
                .unwrap_or(0);
            if version != crate::migrate::LATEST {
                return Err(bad(format!(
                    "the database is at schema {version}, this Denwa writes {}: migrate first",
                    crate::migrate::LATEST
                )));
            }
            let mut entries = Vec::new();
            for t in TABLES {
                let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
                let order = if t.identity { "id" } else { cols[0] };
                let sql = format!(
                    "SELECT {} FROM {} ORDER BY {order}",
                    cols.join(", "),
                    t.name
                );
                let path = dir.join(format!("{}.jsonl", t.name));
                let file = File::create(&path).map_err(io_err(&path))?;
                let mut w = BufWriter::new(file);
                let mut rows = 0u64;
                let mut stream = sqlx::query(&sql).fetch(&mut *$tx);
                while let Some(r) = stream.try_next().await? {
                    let mut obj = Map::new();
                    for (c, ty) in t.cols {
                        obj.insert((*c).to_string(), cell_json(&r, c, *ty)?);
                    }
                    serde_json::to_writer(&mut w, &obj).map_err(|e| bad(e.to_string()))?;
                    w.write_all(b"\n").map_err(io_err(&path))?;
                    rows += 1;
                }
                drop(stream);
                w.flush().map_err(io_err(&path))?;
                entries.push(ManifestEntry {
                    path: table_entry(t.name),
                    size: 0,
                    sha256: String::new(),
                    rows: Some(rows),
                });
            }
            (version, entries)
        }};
    }
    let out = match db {
        Db::Sqlite { read, .. } => {
            // A read transaction in WAL mode sees one snapshot for all statements.
            let mut tx = read.begin().await?;
            let out = dump_in!(tx);
            tx.rollback().await?;
            out
        }
        Db::Pg(pool, _) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            let out = dump_in!(tx);
            tx.rollback().await?;
            out
        }
    };
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for e in rd {
        let e = e.map_err(io_err(dir))?;
        let ft = e.file_type().map_err(io_err(&e.path()))?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        } else {
            tracing::warn!(path = %e.path().display(), "not a regular file; left out of the backup");
        }
    }
    Ok(())
}

fn append(
    b: &mut tar::Builder<BufWriter<File>>,
    name: &str,
    src: &Path,
    mtime: u64,
) -> Result<ManifestEntry> {
    let f = File::open(src).map_err(io_err(src))?;
    let len = f.metadata().map_err(io_err(src))?.len();
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    // A file still being written is taken as far as it was when we looked at its size.
    let mut r = HashRead {
        inner: f.take(len),
        hash: Sha256::new(),
        n: 0,
    };
    b.append_data(&mut h, name, &mut r).map_err(io_err(src))?;
    if r.n != len {
        return Err(bad(format!(
            "{} shrank while it was being read; run the backup again",
            src.display()
        )));
    }
    Ok(ManifestEntry {
        path: name.to_string(),
        size: len,
        sha256: hex::encode(r.hash.finalize()),
        rows: None,
    })
}

fn write_archive(
    out: &Path,
    tables_dir: &Path,
    mut manifest: Manifest,
    data_dir: &Path,
) -> Result<Manifest> {
    let tmp = out.with_extension(format!("partial-{}", std::process::id()));
    let res = (|| {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut b = tar::Builder::new(BufWriter::new(file));
        let mtime = manifest.created_at.timestamp().max(0) as u64;
        let mut entries = Vec::new();
        for e in &manifest.entries {
            let t = e.path.trim_start_matches("tables/");
            let mut got = append(&mut b, &e.path, &tables_dir.join(t), mtime)?;
            got.rows = e.rows;
            entries.push(got);
        }
        for d in DATA_DIRS {
            let root = data_dir.join(d);
            let mut files = Vec::new();
            walk(&root, &mut files)?;
            files.sort();
            for f in files {
                let rel = f
                    .strip_prefix(data_dir)
                    .map_err(|_| bad("path outside data dir"))?;
                let rel = rel
                    .to_str()
                    .ok_or_else(|| bad(format!("{}: file name is not UTF-8", f.display())))?;
                entries.push(append(&mut b, &format!("files/{rel}"), &f, mtime)?);
            }
        }
        manifest.entries = entries;
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| bad(e.to_string()))?;
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, MANIFEST, json.as_slice())
            .map_err(io_err(&tmp))?;
        let w = b.into_inner().map_err(io_err(&tmp))?;
        let file = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, out).map_err(io_err(out))?;
        Ok(manifest)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Writes a consistent backup of the database and the data-dir files to `out` (atomically:
/// the file appears complete or not at all).
pub async fn create(store: &Store, data_dir: &Path, out: &Path) -> Result<Manifest> {
    // Next to the output, not in /tmp: table dumps can be as large as the archive.
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let scratch = tempfile::Builder::new()
        .prefix(".denwa-backup-")
        .tempdir_in(&out_dir)
        .map_err(io_err(&out_dir))?;
    let created_at = Utc::now();
    let (schema_version, entries) = dump_tables(store.db(), scratch.path()).await?;
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        denwa_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        created_at,
        source_backend: store.backend().as_str().into(),
        entries,
    };
    let (tables_dir, data_dir, out) = (
        scratch.path().to_path_buf(),
        data_dir.to_path_buf(),
        out.to_path_buf(),
    );
    let m =
        tokio::task::spawn_blocking(move || write_archive(&out, &tables_dir, manifest, &data_dir))
            .await
            .map_err(|e| bad(e.to_string()))??;
    drop(scratch);
    Ok(m)
}

// ----- reading and checking -----

/// Only relative, normal paths under `tables/` or `files/`, or the manifest.
fn safe_member(p: &str) -> bool {
    let path = Path::new(p);
    (p == MANIFEST || p.starts_with("tables/") || p.starts_with("files/"))
        && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Extracts `archive` into `dest`, checking everything except table contents; returns the manifest.
pub(crate) fn extract_checked(archive: &Path, dest: &Path) -> Result<Manifest> {
    let f = File::open(archive).map_err(io_err(archive))?;
    let mut ar = tar::Archive::new(BufReader::new(f));
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a readable archive: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| bad(format!("corrupt or truncated archive: {e}")))?;
        if e.header().entry_type() != tar::EntryType::Regular {
            return Err(bad("unexpected non-file member: not a Denwa backup"));
        }
        let name = e
            .path()
            .map_err(|e| bad(format!("bad member name: {e}")))?
            .to_str()
            .ok_or_else(|| bad("member name is not UTF-8"))?
            .to_string();
        if !safe_member(&name) {
            return Err(bad(format!(
                "unexpected member {name:?}: not a Denwa backup"
            )));
        }
        if seen.contains_key(&name) || (name == MANIFEST && manifest.is_some()) {
            return Err(bad(format!("member {name:?} appears twice")));
        }
        if name == MANIFEST {
            let mut buf = Vec::new();
            (&mut e)
                .take(16 << 20)
                .read_to_end(&mut buf)
                .map_err(|e| bad(format!("corrupt or truncated archive: {e}")))?;
            manifest = Some(buf);
            continue;
        }
        let target = dest.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let out = File::create(&target).map_err(io_err(&target))?;
        let mut w = BufWriter::new(out);
        let mut r = HashRead {
            inner: &mut e,
            hash: Sha256::new(),
            n: 0,
        };
        std::io::copy(&mut r, &mut w)
            .map_err(|err| bad(format!("corrupt or truncated archive at {name}: {err}")))?;
        w.flush().map_err(io_err(&target))?;
        seen.insert(name, (r.n, hex::encode(r.hash.finalize())));
    }
    let raw = manifest
        .ok_or_else(|| bad("no manifest.json: the file is truncated or not a Denwa backup"))?;
    let m: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| bad(format!("manifest.json is not a Denwa manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(bad(format!("format {:?} is not {FORMAT:?}", m.format)));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "archive layout version {} is not supported (this Denwa reads {FORMAT_VERSION})",
            m.format_version
        )));
    }
    if m.schema_version > crate::migrate::LATEST {
        return Err(bad(format!(
            "the backup has schema version {} from Denwa {}, this Denwa knows up to {}: upgrade Denwa",
            m.schema_version,
            m.denwa_version,
            crate::migrate::LATEST
        )));
    }
    if m.schema_version < 1 {
        return Err(bad(format!("invalid schema version {}", m.schema_version)));
    }
    let mut listed = HashSet::new();
    for ent in &m.entries {
        if !listed.insert(ent.path.as_str()) {
            return Err(bad(format!("manifest lists {} twice", ent.path)));
        }
        match seen.get(&ent.path) {
            None => {
                return Err(bad(format!(
                    "{} is listed in the manifest but missing",
                    ent.path
                )));
            }
            Some((size, _)) if *size != ent.size => {
                return Err(bad(format!(
                    "{}: size {size} does not match the manifest ({})",
                    ent.path, ent.size
                )));
            }
            Some((_, sum)) if *sum != ent.sha256 => {
                return Err(bad(format!("{}: checksum mismatch (corrupt)", ent.path)));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().find(|k| !listed.contains(k.as_str())) {
        return Err(bad(format!("{extra} is not listed in the manifest")));
    }
    for t in TABLES.iter().filter(|t| t.since <= m.schema_version) {
        if !listed.contains(table_entry(t.name).as_str()) {
            return Err(bad(format!("table {} is missing", t.name)));
        }
    }
    Ok(m)
}

/// A checked cell, ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

pub(crate) fn parse_row(t: &TableDef, from: i64, line: &str, lineno: usize) -> Result<Vec<Cell>> {
    let at = || format!("table {} line {lineno}", t.name);
    let mut row: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| bad(format!("{}: not a JSON object: {e}", at())))?;
    upgrade_row(t.name, from, &mut row);
    if row.len() != t.cols.len() {
        return Err(bad(format!(
            "{}: {} columns, expected {}",
            at(),
            row.len(),
            t.cols.len()
        )));
    }
    t.cols
        .iter()
        .map(|(c, ty)| {
            let v = row
                .get(*c)
                .ok_or_else(|| bad(format!("{}: column {c} missing", at())))?;
            let wrong = || bad(format!("{}: column {c} has the wrong type", at()));
            Ok(match (ty, v) {
                (Int, Value::Null) => Cell::Int(None),
                (Int, v) => Cell::Int(Some(v.as_i64().ok_or_else(wrong)?)),
                (Real, Value::Null) => Cell::Real(None),
                (Real, v) => Cell::Real(Some(v.as_f64().ok_or_else(wrong)?)),
                (Text, Value::Null) => Cell::Text(None),
                (Text, Value::String(s)) => Cell::Text(Some(s.clone())),
                (Bool, Value::Null) => Cell::Bool(None),
                (Bool, Value::Bool(b)) => Cell::Bool(Some(*b)),
                _ => return Err(wrong()),
            })
        })
        .collect()
}

/// Reads every row of every table file, checking it; calls `f` per table with the file path.
pub(crate) fn check_tables(dir: &Path, from: i64) -> Result<()> {
    for t in TABLES.iter().filter(|t| t.since <= from) {
        let path = dir.join(table_entry(t.name));
        let f = File::open(&path).map_err(io_err(&path))?;
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| bad(format!("table {}: {e}", t.name)))?;
            parse_row(t, from, &line, i + 1)?;
        }
    }
    Ok(())
}

/// Checks an archive completely (members, checksums, manifest, every row) without changing
/// anything; returns its manifest.
pub async fn verify(archive: &Path) -> Result<Manifest> {
    let archive = archive.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let scratch = tempfile::Builder::new()
            .prefix("denwa-verify-")
            .tempdir()
            .map_err(io_err(Path::new("temporary directory")))?;
        let m = extract_checked(&archive, scratch.path())?;
        check_tables(scratch.path(), m.schema_version)?;
        Ok(m)
    })
    .await
    .map_err(|e| bad(e.to_string()))?
}

/// Checks an archive completely like [`verify`], leaving its members extracted in `dest`
/// (tables under `tables/`, files under `files/`); blocking. The backup server uses this to
/// verify an arrival and import its call records from the same extraction.
pub fn verify_into(archive: &Path, dest: &Path) -> Result<Manifest> {
    let m = extract_checked(archive, dest)?;
    check_tables(dest, m.schema_version)?;
    Ok(m)
}

// ----- restoring -----

async fn load_tables(db: &Db, dir: &Path, from: i64) -> Result<()> {
    write_tx!(db, tx, kind => {
        if kind == Backend::Postgres {
            // Another node writing registrations meanwhile must wait, not interleave.
            let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            let sql = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", names.join(", "));
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        for t in TABLES.iter().rev() {
            let sql = format!("DELETE FROM {}", t.name);
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        for sql in crate::report::RESET_SQL {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        for t in TABLES {
            let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                t.name,
                cols.join(", "),
                marks.join(", ")
            );
            let path = dir.join(table_entry(t.name));
            if t.since > from {
                continue; // newer than the backup: stays empty
            }
            let f = File::open(&path).map_err(io_err(&path))?;
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| bad(format!("table {}: {e}", t.name)))?;
                let cells = parse_row(t, from, &line, i + 1)?;
                let mut q = sqlx::query(&sql);
                for c in cells {
                    q = match c {
                        Cell::Int(v) => q.bind(v),
                        Cell::Real(v) => q.bind(v),
                        Cell::Text(v) => q.bind(v),
                        Cell::Bool(v) => q.bind(v),
                    };
                }
                q.execute(&mut *tx)
                    .await
                    .map_err(|e| bad(format!("table {} line {}: {e}", t.name, i + 1)))?;
            }
            if kind == Backend::Postgres && t.identity {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'),
                                   COALESCE((SELECT MAX(id) FROM {0}), 0) + 1, false)",
                    t.name
                );
                sqlx::query(&sql).execute(&mut *tx).await?;
            }
        }
        announce!(tx, kind, Change::All);
    });
    Ok(())
}

/// Moves the restored data-dir files into place, keeping nothing of the old ones.
fn swap_files(staging: &Path, data_dir: &Path) -> Result<()> {
    let old = staging.join("old");
    std::fs::create_dir_all(&old).map_err(io_err(&old))?;
    for d in DATA_DIRS {
        let live = data_dir.join(d);
        if live.exists() {
            std::fs::rename(&live, old.join(d)).map_err(io_err(&live))?;
        }
        let new = staging.join("files").join(d);
        if new.exists() {
            std::fs::rename(&new, &live).map_err(io_err(&new))?;
        } else {
            std::fs::create_dir_all(&live).map_err(io_err(&live))?;
        }
    }
    Ok(())
}

/// Validates `archive` completely, then replaces every table in one transaction and the
/// data-dir files after the commit. Older backups are upgraded to the current schema; anything
/// wrong with the archive is reported before the database or the files are touched.
pub async fn restore(store: &Store, data_dir: &Path, archive: &Path) -> Result<Manifest> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    // In the data dir, so that moving the files into place is a rename on the same filesystem.
    let staging = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(data_dir)
        .map_err(io_err(data_dir))?;
    let (arch, dir) = (archive.to_path_buf(), staging.path().to_path_buf());
    let manifest = tokio::task::spawn_blocking(move || {
        let m = extract_checked(&arch, &dir)?;
        check_tables(&dir, m.schema_version)?;
        Ok::<_, Error>(m)
    })
    .await
    .map_err(|e| bad(e.to_string()))??;
    load_tables(store.db(), staging.path(), manifest.schema_version).await?;
    let (dir, dd) = (staging.path().to_path_buf(), data_dir.to_path_buf());
    tokio::task::spawn_blocking(move || swap_files(&dir, &dd))
        .await
        .map_err(|e| bad(e.to_string()))??;
    drop(staging);
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table and column of the latest schema is in the backup, so a migration that adds
    /// one cannot be forgotten here.
    #[tokio::test]
    async fn backup_covers_the_whole_schema() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            dir.path().join("x.db").to_str().unwrap(),
            crate::OpenOptions::default(),
        )
        .await
        .unwrap();
        let Db::Sqlite { read, .. } = s.db() else {
            panic!("sqlite expected");
        };
        let mut tables: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT IN ('schema_migrations', 'change_counters', 'trunk_status',
                 'report_calls', 'report_state', 'report_gaps', 'backup_ship',
                 'backup_pair_codes', 'backup_peers', 'backup_generations',
                 'backup_server_state', 'vm_outbox', 'event_subs', 'cluster_epoch',
                 'live_calls')
             ORDER BY name",
        )
        .fetch_all(read)
        .await
        .unwrap()
        .iter()
        .map(|r| r.text("name").unwrap())
        .collect();
        let mut ours: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
        ours.sort();
        tables.sort();
        assert_eq!(tables, ours);
        for t in TABLES {
            let sql = format!(
                "SELECT name FROM pragma_table_info('{}') ORDER BY name",
                t.name
            );
            let cols: Vec<String> = sqlx::query(&sql)
                .fetch_all(read)
                .await
                .unwrap()
                .iter()
                .map(|r| r.text("name").unwrap())
                .collect();
            let mut ours: Vec<String> = t.cols.iter().map(|c| c.0.to_string()).collect();
            ours.sort();
            assert_eq!(cols, ours, "table {}", t.name);
        }
    }

    #[test]
    fn member_names_are_confined() {
        assert!(safe_member("tables/cdrs.jsonl"));
        assert!(safe_member("files/prompts/en/hello.wav"));
        assert!(safe_member(MANIFEST));
        assert!(!safe_member("files/../../etc/passwd"));
        assert!(!safe_member("/etc/passwd"));
        assert!(!safe_member("other/x"));
    }

    #[test]
    fn old_cdr_rows_are_upgraded() {
        let t = TABLES.iter().find(|t| t.name == "cdrs").unwrap();
        let v1 = r#"{"id":1,"tenant_id":1,"call_id":"c","caller":"1","callee":"2","caller_name":"",
            "start_time":0,"answer_time":null,"end_time":1,"duration_s":1,"billsec":0,
            "disposition":"BUSY","hangup_by":"callee","hangup_cause":"","codec":""}"#
            .replace('\n', "");
        let cells = parse_row(t, 1, &v1, 1).unwrap();
        assert_eq!(cells.len(), t.cols.len());
        assert_eq!(cells[18], Cell::Real(Some(0.0)));
        // The same row claimed to be at the latest schema is missing columns.
        assert!(parse_row(t, crate::migrate::LATEST, &v1, 1).is_err());
    }

    #[test]
    fn wrong_types_are_rejected() {
        let t = TABLES.iter().find(|t| t.name == "domains").unwrap();
        assert!(parse_row(t, 2, r#"{"domain":"a","tenant_id":1}"#, 1).is_ok());
        assert!(parse_row(t, 2, r#"{"domain":"a","tenant_id":"1"}"#, 1).is_err());
        assert!(parse_row(t, 2, r#"{"domain":"a"}"#, 1).is_err());
        assert!(parse_row(t, 2, r#"[1]"#, 1).is_err());
    }
}
