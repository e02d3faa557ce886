//! Backup shipping state (issue 16): what a PBX remembers about its backup server
//! (`backup_ship`), and what a backup server keeps (pairing codes, paired nodes, received
//! generations, the import watermark). The protocol itself is in the `backup` crate; this is
//! only its rows, and the import of a verified archive's call records into this database so the
//! backup server's report tables show the PBX's figures.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backup::{Cell, TABLES, parse_row, table_entry};
use crate::db::{RowGet, from_ms, read_pool, to_ms, write_tx};
use crate::{Error, Result, Store};

/// Most pairing codes alive at once (creating one more is refused).
pub const MAX_LIVE_CODES: i64 = 10;
/// Most paired nodes a backup server accepts.
pub const MAX_PEERS: i64 = 16;
/// Call records imported per transaction.
pub const IMPORT_BATCH: usize = 5_000;
/// Refused uploads remembered (older ones are forgotten; the counter keeps counting).
pub const KEEP_REJECTED: i64 = 50;

/// What a PBX knows about shipping its backups.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShipState {
    /// `https://host:port` of the backup server; empty when not paired.
    pub url: String,
    /// SHA-256 (hex) of the server's certificate, pinned at pairing.
    pub fingerprint: String,
    /// The bearer secret the server gave at pairing (never shown).
    #[serde(skip)]
    pub token: String,
    /// The server's node name.
    pub server_name: String,
    /// When the pairing was made.
    pub paired_at: Option<DateTime<Utc>>,
    /// Daily time `HH:MM` or `HH:MM:SS` (report time zone); empty: on demand only.
    pub daily_at: String,
    /// Last attempt to ship.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last successful shipment.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (empty after a success).
    pub last_error: String,
    /// Failed attempts since the last success.
    pub failures: i64,
    /// Failed attempts ever.
    pub failures_total: i64,
    /// Successful shipments ever.
    pub successes_total: i64,
    /// Size of the last shipped archive.
    pub last_size: i64,
}

impl ShipState {
    /// True when a backup server is paired.
    pub fn paired(&self) -> bool {
        !self.url.is_empty() && !self.token.is_empty()
    }
}

/// A node paired with this backup server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    /// Row id.
    pub id: i64,
    /// The node's name, as it gave it.
    pub name: String,
    /// The node's licence node id.
    pub node_id: String,
    /// When it paired.
    pub paired_at: DateTime<Utc>,
    /// Last authenticated request.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Revoked peers are refused.
    pub revoked: bool,
}

/// A received upload, kept (`ok`) or refused (`rejected`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// Row id (the generation number).
    pub id: i64,
    /// The paired node that sent it.
    pub peer_id: Option<i64>,
    /// Its name.
    pub source: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// When the backup was taken (from its manifest).
    pub created_at: Option<DateTime<Utc>>,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the whole archive, hex.
    pub sha256: String,
    /// `ok` or `rejected`.
    pub status: String,
    /// Why it was refused, or a summary.
    pub detail: String,
    /// File name under the generations directory (empty for refused uploads).
    #[serde(skip)]
    pub file: String,
    /// Schema version of its tables.
    pub schema_version: Option<i64>,
    /// Archive members.
    pub entries: i64,
    /// Call records it added to this server's database.
    pub cdrs_imported: i64,
}

/// A generation to record.
#[derive(Debug, Clone, Default)]
pub struct NewGeneration {
    /// Sender.
    pub peer_id: Option<i64>,
    /// Sender's name.
    pub source: String,
    /// Taken at.
    pub created_at: Option<DateTime<Utc>>,
    /// Bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Accepted?
    pub ok: bool,
    /// Reason or summary.
    pub detail: String,
    /// File name.
    pub file: String,
    /// Schema version.
    pub schema_version: Option<i64>,
    /// Members.
    pub entries: i64,
    /// Records imported.
    pub cdrs_imported: i64,
}

/// A backup server's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerState {
    /// Generations kept.
    pub keep: i64,
    /// Highest source call-record id imported.
    pub cdr_mark: i64,
    /// Uploads accepted, ever.
    pub received_total: i64,
    /// Uploads refused after authentication (corrupt, too large, disk full), ever.
    pub rejected_total: i64,
}

/// What importing an archive's call records did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    /// Records added.
    pub imported: u64,
    /// Records already here (or below the watermark).
    pub skipped: u64,
    /// Records whose tenant is unknown here.
    pub orphaned: u64,
    /// The archive's ids went back (the PBX was restored): every record was compared.
    pub rewound: bool,
}

fn opt_ts(v: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    v.map(from_ms).transpose()
}

fn gen_from(r: &impl RowGet) -> Result<Generation> {
    Ok(Generation {
        id: r.i64("id")?,
        peer_id: r.opt_i64("peer_id")?,
        source: r.text("source")?,
        received_at: r.ts("received_at")?,
        created_at: r.opt_ts("created_at")?,
        size: r.i64("size")?,
        sha256: r.text("sha256")?,
        status: r.text("status")?,
        detail: r.text("detail")?,
        file: r.text("file")?,
        schema_version: r.opt_i64("schema_version")?,
        entries: r.i64("entries")?,
        cdrs_imported: r.i64("cdrs_imported")?,
    })
}

const GEN_COLS: &str = "id, peer_id, source, received_at, created_at, size, sha256, status, \
                        detail, file, schema_version, entries, cdrs_imported";

impl Store {
    // ----- the PBX side -----

    /// Where and when this node ships its backups.
    pub async fn ship_state(&self) -> Result<ShipState> {
        read_pool!(self.db(), pool, kind => {
            let r = sqlx::query("SELECT * FROM backup_ship WHERE id = 1").fetch_one(pool).await?;
            Ok(ShipState {
                url: r.text("url")?,
                fingerprint: r.text("fingerprint")?,
                token: r.text("token")?,
                server_name: r.text("server_name")?,
                paired_at: opt_ts(r.opt_i64("paired_at")?)?,
                daily_at: r.text("daily_at")?,
                last_attempt_at: opt_ts(r.opt_i64("last_attempt_at")?)?,
                last_success_at: opt_ts(r.opt_i64("last_success_at")?)?,
                last_error: r.text("last_error")?,
                failures: r.i64("failures")?,
                failures_total: r.i64("failures_total")?,
                successes_total: r.i64("successes_total")?,
                last_size: r.i64("last_size")?,
            })
        })
    }

    /// Remembers a pairing (replacing any earlier one).
    pub async fn set_ship_pairing(
        &self,
        url: &str,
        fingerprint: &str,
        token: &str,
        server_name: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query(
                "UPDATE backup_ship SET url = $1, fingerprint = $2, token = $3, server_name = $4,
                 paired_at = $5, failures = 0, last_error = '' WHERE id = 1",
            )
            .bind(url)
            .bind(fingerprint)
            .bind(token)
            .bind(server_name)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Forgets the pairing (the schedule and counters stay).
    pub async fn clear_ship_pairing(&self) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query(
                "UPDATE backup_ship SET url = '', fingerprint = '', token = '', server_name = '',
                 paired_at = NULL, failures = 0, last_error = '' WHERE id = 1",
            )
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Sets the daily shipping time (already validated by the caller; empty: on demand only).
    pub async fn set_ship_schedule(&self, daily_at: &str) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE backup_ship SET daily_at = $1 WHERE id = 1")
                .bind(daily_at)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Records the outcome of one shipping attempt: `Ok(size)` or `Err(reason)`.
    pub async fn record_ship_attempt(
        &self,
        now: DateTime<Utc>,
        outcome: std::result::Result<i64, &str>,
    ) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            match outcome {
                Ok(size) => {
                    sqlx::query(
                        "UPDATE backup_ship SET last_attempt_at = $1, last_success_at = $1,
                         last_error = '', failures = 0, successes_total = successes_total + 1,
                         last_size = $2 WHERE id = 1",
                    )
                    .bind(to_ms(now))
                    .bind(size)
                    .execute(&mut *tx)
                    .await?;
                }
                Err(reason) => {
                    let reason: String = reason.chars().take(500).collect();
                    sqlx::query(
                        "UPDATE backup_ship SET last_attempt_at = $1, last_error = $2,
                         failures = failures + 1, failures_total = failures_total + 1 WHERE id = 1",
                    )
                    .bind(to_ms(now))
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        });
        Ok(())
    }

    // ----- the backup server side -----

    /// Stores a new pairing code's hash, valid until `expires_at`; refused when
    /// [`MAX_LIVE_CODES`] are alive. Used and expired codes are forgotten here.
    pub async fn create_pair_code(
        &self,
        code_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM backup_pair_codes WHERE used_at IS NOT NULL OR expires_at <= $1")
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?;
            let live = sqlx::query("SELECT COUNT(*) AS n FROM backup_pair_codes")
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
            if live >= MAX_LIVE_CODES {
                return Err(Error::Invalid {
                    field: "pairing code",
                    reason: format!("{live} codes are still unused; wait until they expire"),
                });
            }
            sqlx::query(
                "INSERT INTO backup_pair_codes (code_hash, created_at, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(code_hash)
            .bind(to_ms(now))
            .bind(to_ms(expires_at))
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Hashes of the codes still usable at `now`.
    pub async fn live_pair_codes(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        read_pool!(self.db(), pool, kind => {
            let rows = sqlx::query(
                "SELECT code_hash FROM backup_pair_codes WHERE used_at IS NULL AND expires_at > $1
                 ORDER BY created_at LIMIT 100",
            )
            .bind(to_ms(now))
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| r.text("code_hash")).collect()
        })
    }

    /// Spends a code and adds the peer in one transaction; `Ok(None)` when the code was used or
    /// expired meanwhile, an error when [`MAX_PEERS`] are paired.
    pub async fn pair_peer(
        &self,
        code_hash: &str,
        name: &str,
        node_id: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let id = write_tx!(self.db(), tx, kind => {
            let spent = sqlx::query(
                "UPDATE backup_pair_codes SET used_at = $2
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(code_hash)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if spent != 1 {
                None
            } else {
                let n = sqlx::query("SELECT COUNT(*) AS n FROM backup_peers WHERE NOT revoked")
                    .fetch_one(&mut *tx)
                    .await?
                    .i64("n")?;
                if n >= MAX_PEERS {
                    return Err(Error::Invalid {
                        field: "pairing",
                        reason: format!("{n} nodes are paired already; revoke one first"),
                    });
                }
                let r = sqlx::query(
                    "INSERT INTO backup_peers (name, node_id, token_hash, paired_at)
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(name)
                .bind(node_id)
                .bind(token_hash)
                .bind(to_ms(now))
                .fetch_one(&mut *tx)
                .await?;
                Some(r.i64("id")?)
            }
        });
        Ok(id)
    }

    /// The live (not revoked) peer holding the token with this hash, marked as seen now.
    pub async fn peer_by_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Peer>> {
        let p = self.peers_where(Some(token_hash)).await?.into_iter().next();
        if let Some(p) = &p {
            write_tx!(self.db(), tx, kind => {
                sqlx::query("UPDATE backup_peers SET last_seen_at = $1 WHERE id = $2")
                    .bind(to_ms(now))
                    .bind(p.id)
                    .execute(&mut *tx)
                    .await?;
            });
        }
        Ok(p)
    }

    /// Every paired node, revoked ones included.
    pub async fn list_peers(&self) -> Result<Vec<Peer>> {
        self.peers_where(None).await
    }

    async fn peers_where(&self, token_hash: Option<&str>) -> Result<Vec<Peer>> {
        read_pool!(self.db(), pool, kind => {
            let rows = match token_hash {
                Some(h) => sqlx::query(
                    "SELECT * FROM backup_peers WHERE token_hash = $1 AND NOT revoked",
                )
                .bind(h)
                .fetch_all(pool)
                .await?,
                None => sqlx::query("SELECT * FROM backup_peers ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            };
            rows.iter()
                .map(|r| {
                    Ok(Peer {
                        id: r.i64("id")?,
                        name: r.text("name")?,
                        node_id: r.text("node_id")?,
                        paired_at: r.ts("paired_at")?,
                        last_seen_at: r.opt_ts("last_seen_at")?,
                        revoked: r.boolean("revoked")?,
                    })
                })
                .collect()
        })
    }

    /// Revokes a paired node: its uploads are refused from now on.
    pub async fn revoke_peer(&self, id: i64) -> Result<()> {
        let n = write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE backup_peers SET revoked = TRUE WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(Error::NotFound(format!("paired node {id}")));
        }
        Ok(())
    }

    /// The backup server's own figures.
    pub async fn backup_server_state(&self) -> Result<ServerState> {
        read_pool!(self.db(), pool, kind => {
            let r = sqlx::query("SELECT * FROM backup_server_state WHERE id = 1")
                .fetch_one(pool)
                .await?;
            Ok(ServerState {
                keep: r.i64("keep")?,
                cdr_mark: r.i64("cdr_mark")?,
                received_total: r.i64("received_total")?,
                rejected_total: r.i64("rejected_total")?,
            })
        })
    }

    /// How many generations the server keeps (1–1000).
    pub async fn set_backup_keep(&self, keep: i64) -> Result<()> {
        if !(1..=1000).contains(&keep) {
            return Err(Error::Invalid {
                field: "generations to keep",
                reason: format!("{keep} is not between 1 and 1000"),
            });
        }
        write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE backup_server_state SET keep = $1 WHERE id = 1")
                .bind(keep)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Records a received upload (accepted or refused) and counts it; returns its id.
    pub async fn add_generation(&self, g: NewGeneration, now: DateTime<Utc>) -> Result<i64> {
        let id = write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(
                "INSERT INTO backup_generations (peer_id, source, received_at, created_at, size,
                 sha256, status, detail, file, schema_version, entries, cdrs_imported)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            )
            .bind(g.peer_id)
            .bind(&g.source)
            .bind(to_ms(now))
            .bind(g.created_at.map(to_ms))
            .bind(g.size)
            .bind(&g.sha256)
            .bind(if g.ok { "ok" } else { "rejected" })
            .bind(g.detail.chars().take(500).collect::<String>())
            .bind(&g.file)
            .bind(g.schema_version)
            .bind(g.entries)
            .bind(g.cdrs_imported)
            .fetch_one(&mut *tx)
            .await?;
            let col = if g.ok { "received_total" } else { "rejected_total" };
            sqlx::query(&format!(
                "UPDATE backup_server_state SET {col} = {col} + 1 WHERE id = 1"
            ))
            .execute(&mut *tx)
            .await?;
            r.i64("id")?
        });
        Ok(id)
    }

    /// Received uploads, newest first (`only_ok`: the kept generations only).
    pub async fn list_generations(&self, only_ok: bool, limit: i64) -> Result<Vec<Generation>> {
        read_pool!(self.db(), pool, kind => {
            let sql = format!(
                "SELECT {GEN_COLS} FROM backup_generations {} ORDER BY id DESC LIMIT $1",
                if only_ok { "WHERE status = 'ok'" } else { "" }
            );
            let rows = sqlx::query(&sql).bind(limit.clamp(1, 10_000)).fetch_all(pool).await?;
            rows.iter().map(gen_from).collect()
        })
    }

    /// One generation.
    pub async fn generation(&self, id: i64) -> Result<Option<Generation>> {
        read_pool!(self.db(), pool, kind => {
            let sql = format!("SELECT {GEN_COLS} FROM backup_generations WHERE id = $1");
            let r = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
            r.as_ref().map(gen_from).transpose()
        })
    }

    /// Forgets kept generations beyond the newest `keep` and refused uploads beyond the newest
    /// [`KEEP_REJECTED`]; returns the archive files to delete.
    pub async fn prune_generations(&self, keep: i64) -> Result<Vec<String>> {
        let files = write_tx!(self.db(), tx, kind => {
            let old = sqlx::query(
                "SELECT id, file FROM backup_generations WHERE status = 'ok'
                 ORDER BY id DESC LIMIT 100000 OFFSET $1",
            )
            .bind(keep.max(1))
            .fetch_all(&mut *tx)
            .await?;
            let mut files = Vec::new();
            for r in &old {
                files.push(r.text("file")?);
                sqlx::query("DELETE FROM backup_generations WHERE id = $1")
                    .bind(r.i64("id")?)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "DELETE FROM backup_generations WHERE status = 'rejected' AND id NOT IN
                 (SELECT id FROM backup_generations WHERE status = 'rejected' ORDER BY id DESC LIMIT $1)",
            )
            .bind(KEEP_REJECTED)
            .execute(&mut *tx)
            .await?;
            files
        });
        Ok(files)
    }

    /// Adds the call records (and the tenants they belong to) of an extracted, verified backup
    /// in `dir` (laid out as in the archive) into this database.
    ///
    /// Records are new rows here (this database numbers them), so the report aggregation picks
    /// them up incrementally. A record is skipped when its source id is at or below the
    /// watermark of earlier imports, or when a record with the same call id and start time is
    /// already here; when the archive's highest id is below the watermark (the PBX was restored
    /// from an older backup and numbers again from there) every record is compared instead.
    /// The file is read as a stream and written in transactions of [`IMPORT_BATCH`] records,
    /// each moving the watermark with it, so memory stays flat and an interrupted import
    /// resumes where it stopped.
    pub async fn import_backup_cdrs(
        &self,
        dir: &Path,
        schema_version: i64,
    ) -> Result<ImportOutcome> {
        let table = |name: &str| {
            TABLES
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| Error::Backup(format!("no {name} table")))
        };
        let (tenants_t, cdrs_t) = (table("tenants")?, table("cdrs")?);
        let open = |name: &str| -> Result<std::io::Lines<BufReader<File>>> {
            let path = dir.join(table_entry(name));
            let f = File::open(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            Ok(BufReader::new(f).lines())
        };
        let line_err = |name: &str, e: std::io::Error| Error::Backup(format!("table {name}: {e}"));
        let tenants: Vec<Vec<Cell>> = open("tenants")?
            .enumerate()
            .map(|(i, l)| {
                parse_row(
                    tenants_t,
                    schema_version,
                    &l.map_err(|e| line_err("tenants", e))?,
                    i + 1,
                )
            })
            .collect::<Result<_>>()?;
        // First pass: the highest id (only the id is decoded).
        #[derive(serde::Deserialize)]
        struct IdOnly {
            id: i64,
        }
        let mut max_id = 0i64;
        for (i, l) in open("cdrs")?.enumerate() {
            let l = l.map_err(|e| line_err("cdrs", e))?;
            let r: IdOnly = serde_json::from_str(&l)
                .map_err(|e| Error::Backup(format!("table cdrs line {}: {e}", i + 1)))?;
            max_id = max_id.max(r.id);
        }
        let mut out = ImportOutcome::default();
        let mark = self.backup_server_state().await?.cdr_mark;
        out.rewound = max_id < mark;
        let marks = |n: usize| {
            (1..=n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let t_cols: Vec<&str> = tenants_t.cols.iter().map(|c| c.0).collect();
        let t_sql = format!(
            "INSERT INTO tenants ({}) VALUES ({}) ON CONFLICT DO NOTHING",
            t_cols.join(", "),
            marks(t_cols.len())
        );
        // Every column but the id; the record is added only when its tenant exists here and no
        // record with the same call id and start time does.
        let c_cols: Vec<&str> = cdrs_t.cols.iter().skip(1).map(|c| c.0).collect();
        let pos = |name: &str| c_cols.iter().position(|c| *c == name).map(|p| p + 1);
        let (Some(p_tenant), Some(p_call), Some(p_start)) =
            (pos("tenant_id"), pos("call_id"), pos("start_time"))
        else {
            return Err(Error::Backup("cdrs columns changed".into()));
        };
        let c_sql = format!(
            "INSERT INTO cdrs ({}) SELECT {} WHERE NOT EXISTS
             (SELECT 1 FROM cdrs WHERE call_id = ${p_call} AND start_time = ${p_start})",
            c_cols.join(", "),
            marks(c_cols.len())
        );
        macro_rules! bind_cells {
            ($q:expr, $cells:expr) => {{
                let mut q = $q;
                for c in $cells {
                    q = match c {
                        Cell::Int(v) => q.bind(*v),
                        Cell::Real(v) => q.bind(*v),
                        Cell::Text(v) => q.bind(v.clone()),
                        Cell::Bool(v) => q.bind(*v),
                    };
                }
                q
            }};
        }
        let known: std::collections::HashSet<i64> = write_tx!(self.db(), tx, kind => {
            for t in &tenants {
                bind_cells!(sqlx::query(&t_sql), t.iter()).execute(&mut *tx).await?;
            }
            sqlx::query("SELECT id FROM tenants")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.i64("id"))
                .collect::<Result<_>>()?
        });
        let id_of = |cells: &[Cell]| match cells.first() {
            Some(Cell::Int(Some(id))) => *id,
            _ => 0,
        };
        let mut lines = open("cdrs")?.enumerate();
        let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(IMPORT_BATCH);
        loop {
            batch.clear();
            for (i, l) in lines.by_ref() {
                let l = l.map_err(|e| line_err("cdrs", e))?;
                let cells = parse_row(cdrs_t, schema_version, &l, i + 1)?;
                if !out.rewound && id_of(&cells) <= mark {
                    out.skipped += 1;
                    continue;
                }
                if let Some(Cell::Int(Some(t))) = cells.get(p_tenant)
                    && !known.contains(t)
                {
                    out.orphaned += 1;
                    continue;
                }
                batch.push(cells);
                if batch.len() >= IMPORT_BATCH {
                    break;
                }
            }
            let last = batch.len() < IMPORT_BATCH;
            let upto = if last {
                max_id
            } else {
                batch.last().map_or(max_id, |c| id_of(c))
            };
            let (added, dup) = write_tx!(self.db(), tx, kind => {
                let (mut added, mut dup) = (0u64, 0u64);
                for cells in &batch {
                    let n = bind_cells!(sqlx::query(&c_sql), cells.iter().skip(1))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n == 1 { added += 1 } else { dup += 1 }
                }
                // After a rewind the mark only ever moves down to the archive's highest id.
                if !out.rewound || last {
                    sqlx::query("UPDATE backup_server_state SET cdr_mark = $1 WHERE id = 1")
                        .bind(upto)
                        .execute(&mut *tx)
                        .await?;
                }
                (added, dup)
            });
            out.imported += added;
            out.skipped += dup;
            if last {
                break;
            }
        }
        Ok(out)
    }
}
