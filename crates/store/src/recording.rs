//! Call recording: per-object policies (extension, outbound route, trunk), per-tenant settings
//! (retention, format, layout) and the recordings made, linked to calls by Call-ID.
//!
//! A recording row is written when the recorder starts (`status = recording`) and completed
//! when it stops (`stopped`, `disk-full`, `error`); the retention sweep deletes the file and
//! marks the row `expired` with an empty path (the call history still shows that there was
//! one). The policy rule itself lives in `engine::recording`.

use chrono::{DateTime, Utc};
use engine::recording::{RecObject, RecPolicy};
use serde::{Deserialize, Serialize};

use crate::db::{RowGet, from_ms, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::{Error, Result, Store};

/// One object's policy as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRow {
    /// Extension, route or trunk.
    pub kind: RecObject,
    /// Extension number, route name or trunk name.
    pub name: String,
    /// The policy.
    pub policy: RecPolicy,
}

/// Per-tenant recording settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecSettings {
    /// Days a recording is kept (0: forever).
    pub retention_days: i64,
    /// `wav` or `opus` (Ogg Opus, mono).
    pub format: String,
    /// `mono` (both parties mixed) or `stereo` (one party per channel; WAV only).
    pub layout: String,
}

impl Default for RecSettings {
    fn default() -> Self {
        RecSettings {
            retention_days: 0,
            format: "wav".into(),
            layout: "mono".into(),
        }
    }
}

impl RecSettings {
    /// Checks the values (the same rules the schema enforces, with readable errors).
    pub fn validate(&self) -> Result<()> {
        if !(0..=36500).contains(&self.retention_days) {
            return Err(invalid("retention_days", "0 (keep) to 36500 days"));
        }
        if !["wav", "opus"].contains(&self.format.as_str()) {
            return Err(invalid("format", "wav or opus"));
        }
        if !["mono", "stereo"].contains(&self.layout.as_str()) {
            return Err(invalid("layout", "mono or stereo"));
        }
        Ok(())
    }
}

/// One recording as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    /// Row id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// SIP Call-ID of the call (as in its call record).
    pub call_id: String,
    /// File relative to the data directory (empty once expired).
    pub path: String,
    /// `wav` or `opus`.
    pub format: String,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When it stopped (`None` while running).
    pub stopped_at: Option<DateTime<Utc>>,
    /// Audio written, milliseconds.
    pub duration_ms: i64,
    /// `recording`, `stopped`, `disk-full`, `error` or `expired`.
    pub status: String,
    /// The error, for `disk-full` and `error`.
    pub detail: String,
}

const COLS: &str =
    "id, tenant_id, call_id, path, format, started_at, stopped_at, duration_ms, status, detail";

fn row_from(r: &impl RowGet) -> Result<RecordingRow> {
    Ok(RecordingRow {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        call_id: r.text("call_id")?,
        path: r.text("path")?,
        format: r.text("format")?,
        started_at: r.ts("started_at")?,
        stopped_at: r.opt_i64("stopped_at")?.map(from_ms).transpose()?,
        duration_ms: r.i64("duration_ms")?,
        status: r.text("status")?,
        detail: r.text("detail")?,
    })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Statuses a finished recording may end with.
pub const END_STATUSES: [&str; 3] = ["stopped", "disk-full", "error"];

impl Store {
    /// Sets an object's policy. The object must exist in the tenant; `never` (the default)
    /// removes the stored row.
    pub async fn set_recording_policy(
        &self,
        tenant_id: i64,
        kind: RecObject,
        name: &str,
        policy: RecPolicy,
    ) -> Result<()> {
        let (table, col, what) = match kind {
            RecObject::Extension => ("extensions", "number", "extension"),
            RecObject::Route => ("outbound_routes", "name", "outbound route"),
            RecObject::Trunk => ("trunks", "name", "trunk"),
        };
        let check = format!("SELECT id FROM {table} WHERE tenant_id = $1 AND {col} = $2");
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind_ => {
            if sqlx::query(&check).bind(tenant_id).bind(name).fetch_optional(&mut *tx).await?.is_none() {
                return Err(Error::NotFound(format!("{what} {name}")));
            }
            sqlx::query("DELETE FROM recording_policies WHERE tenant_id = $1 AND kind = $2 AND name = $3")
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if policy != RecPolicy::Never {
                sqlx::query(
                    "INSERT INTO recording_policies (tenant_id, kind, name, policy, updated_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(name)
                .bind(policy.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            // Call control decides with the policies (its snapshot's feature codes part).
            announce!(tx, kind_, Change::Codes);
        });
        Ok(())
    }

    /// Every stored (non-`never`) policy of a tenant.
    pub async fn recording_policies(&self, tenant_id: i64) -> Result<Vec<PolicyRow>> {
        let sql = "SELECT kind, name, policy FROM recording_policies WHERE tenant_id = $1
                   ORDER BY kind, name";
        let rows: Vec<(String, String, String)> = read_pool!(self.db(), pool, kind => {
            sqlx::query(sql).bind(tenant_id).fetch_all(pool).await?.iter()
                .map(|r| Ok((r.text("kind")?, r.text("name")?, r.text("policy")?)))
                .collect::<Result<Vec<_>>>()?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(k, n, p)| {
                Some(PolicyRow {
                    kind: RecObject::parse(&k)?,
                    name: n,
                    policy: RecPolicy::parse(&p)?,
                })
            })
            .collect())
    }

    /// Every tenant's stored (non-`never`) policies: (tenant, kind, name, policy).
    pub async fn all_recording_policies(&self) -> Result<Vec<(i64, PolicyRow)>> {
        let sql = "SELECT tenant_id, kind, name, policy FROM recording_policies";
        let rows: Vec<(i64, String, String, String)> = read_pool!(self.db(), pool, kind => {
            sqlx::query(sql).fetch_all(pool).await?.iter()
                .map(|r| Ok((r.i64("tenant_id")?, r.text("kind")?, r.text("name")?, r.text("policy")?)))
                .collect::<Result<Vec<_>>>()?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(t, k, n, p)| {
                let row = PolicyRow {
                    kind: RecObject::parse(&k)?,
                    name: n,
                    policy: RecPolicy::parse(&p)?,
                };
                Some((t, row))
            })
            .collect())
    }

    /// Every tenant's stored recording settings.
    pub async fn all_recording_settings(&self) -> Result<Vec<(i64, RecSettings)>> {
        let sql = "SELECT tenant_id, retention_days, format, layout FROM recording_settings";
        let rows = read_pool!(self.db(), pool, kind => {
            sqlx::query(sql).fetch_all(pool).await?.iter()
                .map(|r| Ok((r.i64("tenant_id")?, RecSettings {
                    retention_days: r.i64("retention_days")?,
                    format: r.text("format")?,
                    layout: r.text("layout")?,
                })))
                .collect::<Result<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// The policies of the given objects (missing ones are `never` and left out).
    pub async fn recording_policies_of(
        &self,
        tenant_id: i64,
        objects: &[(RecObject, String)],
    ) -> Result<Vec<RecPolicy>> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.recording_policies(tenant_id).await?;
        Ok(all
            .into_iter()
            .filter(|r| objects.iter().any(|(k, n)| *k == r.kind && *n == r.name))
            .map(|r| r.policy)
            .collect())
    }

    /// A tenant's recording settings (defaults when never set).
    pub async fn recording_settings(&self, tenant_id: i64) -> Result<RecSettings> {
        let sql =
            "SELECT retention_days, format, layout FROM recording_settings WHERE tenant_id = $1";
        let got: Option<RecSettings> = read_pool!(self.db(), pool, kind => {
            match sqlx::query(sql).bind(tenant_id).fetch_optional(pool).await? {
                Some(r) => Some(RecSettings {
                    retention_days: r.i64("retention_days")?,
                    format: r.text("format")?,
                    layout: r.text("layout")?,
                }),
                None => None,
            }
        });
        Ok(got.unwrap_or_default())
    }

    /// Replaces a tenant's recording settings.
    pub async fn set_recording_settings(&self, tenant_id: i64, s: &RecSettings) -> Result<()> {
        s.validate()?;
        write_tx!(self.db(), tx, kind => {
            sqlx::query("DELETE FROM recording_settings WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO recording_settings (tenant_id, retention_days, format, layout)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant_id)
            .bind(s.retention_days)
            .bind(&s.format)
            .bind(&s.layout)
            .execute(&mut *tx)
            .await?;
            announce!(tx, kind, Change::Codes);
        });
        Ok(())
    }

    /// Notes a recording that started; returns its id.
    pub async fn recording_started(
        &self,
        tenant_id: i64,
        call_id: &str,
        path: &str,
        format: &str,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(write_tx!(self.db(), tx, kind => {
            let r = sqlx::query(
                "INSERT INTO recordings (tenant_id, call_id, path, format, started_at, status)
                 VALUES ($1, $2, $3, $4, $5, 'recording') RETURNING id",
            )
            .bind(tenant_id)
            .bind(call_id)
            .bind(path)
            .bind(format)
            .bind(to_ms(at))
            .fetch_one(&mut *tx)
            .await?;
            r.i64("id")?
        }))
    }

    /// Completes a recording row: when it stopped, how much audio, and how it ended (one of
    /// [`END_STATUSES`]). A recording that left no file gets an empty path.
    pub async fn recording_stopped(
        &self,
        id: i64,
        at: DateTime<Utc>,
        duration_ms: i64,
        status: &str,
        detail: &str,
        file_kept: bool,
    ) -> Result<()> {
        if !END_STATUSES.contains(&status) {
            return Err(invalid("status", "stopped, disk-full or error"));
        }
        let detail: String = detail.chars().take(500).collect();
        write_tx!(self.db(), tx, kind => {
            sqlx::query(
                "UPDATE recordings SET stopped_at = $2, duration_ms = $3, status = $4, detail = $5,
                 path = CASE WHEN $6 THEN path ELSE '' END WHERE id = $1",
            )
            .bind(id)
            .bind(to_ms(at))
            .bind(duration_ms)
            .bind(status)
            .bind(&detail)
            .bind(file_kept)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// A tenant's recordings, newest first; only those of `call_id` when given.
    pub async fn list_recordings(
        &self,
        tenant_id: i64,
        call_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RecordingRow>> {
        let limit = limit.clamp(1, 10_000);
        let sql = format!(
            "SELECT {COLS} FROM recordings WHERE tenant_id = $1 AND ($2 = '' OR call_id = $2)
             ORDER BY started_at DESC, id DESC LIMIT $3"
        );
        let call = call_id.unwrap_or("");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).bind(call).bind(limit).fetch_all(pool).await?
                .iter().map(row_from).collect()
        })
    }

    /// The recordings of several calls of a tenant (a page of call history), oldest first.
    pub async fn recordings_of_calls(
        &self,
        tenant_id: i64,
        call_ids: &[String],
    ) -> Result<Vec<RecordingRow>> {
        let ids: Vec<&String> = call_ids.iter().take(500).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {COLS} FROM recordings WHERE tenant_id = $1 AND call_id IN ({})
             ORDER BY started_at, id",
            marks.join(", ")
        );
        read_pool!(self.db(), pool, kind => {
            let mut q = sqlx::query(&sql).bind(tenant_id);
            for id in &ids {
                q = q.bind(id.as_str());
            }
            q.fetch_all(pool).await?.iter().map(row_from).collect()
        })
    }

    /// One recording of a tenant.
    pub async fn recording(&self, tenant_id: i64, id: i64) -> Result<Option<RecordingRow>> {
        let sql = format!("SELECT {COLS} FROM recordings WHERE tenant_id = $1 AND id = $2");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).bind(id).fetch_optional(pool).await?
                .as_ref().map(row_from).transpose()
        })
    }

    /// Finished recordings older than their tenant's retention (tenants with a retention of
    /// 0 keep everything), at most `limit`.
    pub async fn expired_recordings(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RecordingRow>> {
        let sql = format!(
            "SELECT {} FROM recordings r JOIN recording_settings s ON s.tenant_id = r.tenant_id
             WHERE s.retention_days > 0 AND r.status <> 'recording' AND r.status <> 'expired'
               AND r.started_at < $1 - s.retention_days * 86400000
             ORDER BY r.started_at LIMIT $2",
            COLS.split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let now = to_ms(now);
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(now).bind(limit.clamp(1, 10_000)).fetch_all(pool).await?
                .iter().map(row_from).collect()
        })
    }

    /// Marks a recording expired (its file deleted): the path is cleared, the row stays.
    pub async fn mark_recording_expired(&self, id: i64) -> Result<()> {
        write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE recordings SET status = 'expired', path = '' WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Recordings still marked running, oldest first, at most `limit`: at start-up these were
    /// left by a crash (the PBX repairs their files and closes them, see `pbx::stale`).
    pub async fn stale_recordings(&self, limit: i64) -> Result<Vec<RecordingRow>> {
        let sql = format!(
            "SELECT {COLS} FROM recordings WHERE status = 'recording' ORDER BY started_at, id LIMIT $1"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(limit.clamp(1, 10_000)).fetch_all(pool).await?
                .iter().map(row_from).collect()
        })
    }

    /// Recordings still marked running (left by a crash): closed as `error` at start-up.
    pub async fn close_stale_recordings(&self, at: DateTime<Utc>) -> Result<u64> {
        Ok(write_tx!(self.db(), tx, kind => {
            sqlx::query(
                "UPDATE recordings SET status = 'error', stopped_at = $1,
                 detail = 'the server stopped during the recording' WHERE status = 'recording'",
            )
            .bind(to_ms(at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Store, i64, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(
            dir.path().join("t.db").to_str().expect("path"),
            crate::OpenOptions::default(),
        )
        .await
        .expect("open");
        let t = s.default_tenant().await.expect("tenant").id;
        (s, t, dir)
    }

    #[tokio::test]
    async fn policies_need_the_object_and_never_is_the_default() {
        let (s, t, _d) = store().await;
        s.create_extension(
            t,
            crate::NewExtension {
                number: "1001".into(),
                display_name: "A".into(),
                password: None,
                enabled: None,
                max_contacts: None,
            },
        )
        .await
        .expect("ext");
        let e = s
            .set_recording_policy(t, RecObject::Extension, "1999", RecPolicy::Always)
            .await;
        assert!(matches!(e, Err(Error::NotFound(_))), "{e:?}");
        let e = s
            .set_recording_policy(t, RecObject::Trunk, "nope", RecPolicy::Always)
            .await;
        assert!(matches!(e, Err(Error::NotFound(_))));
        s.set_recording_policy(t, RecObject::Extension, "1001", RecPolicy::OnDemand)
            .await
            .expect("set");
        s.set_recording_policy(t, RecObject::Extension, "1001", RecPolicy::Always)
            .await
            .expect("set again");
        let all = s.recording_policies(t).await.expect("list");
        assert_eq!(
            all,
            vec![PolicyRow {
                kind: RecObject::Extension,
                name: "1001".into(),
                policy: RecPolicy::Always
            }]
        );
        let of = s
            .recording_policies_of(
                t,
                &[
                    (RecObject::Extension, "1001".into()),
                    (RecObject::Extension, "1002".into()),
                ],
            )
            .await
            .expect("of");
        assert_eq!(of, vec![RecPolicy::Always]);
        s.set_recording_policy(t, RecObject::Extension, "1001", RecPolicy::Never)
            .await
            .expect("never");
        assert!(s.recording_policies(t).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn settings_default_validate_and_round_trip() {
        let (s, t, _d) = store().await;
        assert_eq!(
            s.recording_settings(t).await.expect("get"),
            RecSettings::default()
        );
        let bad = RecSettings {
            format: "mp3".into(),
            ..RecSettings::default()
        };
        assert!(s.set_recording_settings(t, &bad).await.is_err());
        let good = RecSettings {
            retention_days: 30,
            format: "opus".into(),
            layout: "stereo".into(),
        };
        s.set_recording_settings(t, &good).await.expect("set");
        assert_eq!(s.recording_settings(t).await.expect("get"), good);
    }

    #[tokio::test]
    async fn recordings_are_listed_completed_and_expire_by_retention() {
        let (s, t, _d) = store().await;
        let now = Utc::now();
        let old = now - chrono::Duration::days(40);
        let a = s
            .recording_started(t, "call-old", "recordings/1/a.wav", "wav", old)
            .await
            .expect("start");
        s.recording_stopped(a, old, 5000, "stopped", "", true)
            .await
            .expect("stop");
        let b = s
            .recording_started(t, "call-new", "recordings/1/b.wav", "wav", now)
            .await
            .expect("start");
        s.recording_stopped(b, now, 1200, "disk-full", "No space left on device", true)
            .await
            .expect("stop");
        let running = s
            .recording_started(t, "call-run", "recordings/1/c.wav", "wav", old)
            .await
            .expect("start");
        assert!(
            s.recording_stopped(b, now, 1, "bogus", "", true)
                .await
                .is_err()
        );
        let list = s.list_recordings(t, None, 100).await.expect("list");
        assert_eq!(list.len(), 3);
        let one = s
            .list_recordings(t, Some("call-new"), 100)
            .await
            .expect("one");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].status, "disk-full");
        assert_eq!(one[0].duration_ms, 1200);
        assert!(s.recording(t + 1, b).await.expect("other tenant").is_none());
        // No retention set: nothing expires.
        assert!(
            s.expired_recordings(now, 100)
                .await
                .expect("exp")
                .is_empty()
        );
        s.set_recording_settings(
            t,
            &RecSettings {
                retention_days: 30,
                ..RecSettings::default()
            },
        )
        .await
        .expect("set");
        let exp = s.expired_recordings(now, 100).await.expect("exp");
        assert_eq!(exp.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);
        s.mark_recording_expired(a).await.expect("mark");
        let r = s.recording(t, a).await.expect("get").expect("row");
        assert_eq!((r.status.as_str(), r.path.as_str()), ("expired", ""));
        assert!(
            s.expired_recordings(now, 100)
                .await
                .expect("exp")
                .is_empty()
        );
        // A crash leaves a running row: listed, then closed at start-up.
        let stale = s.stale_recordings(100).await.expect("stale rows");
        assert_eq!(
            stale.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![running]
        );
        assert_eq!(s.close_stale_recordings(now).await.expect("stale"), 1);
        assert!(
            s.stale_recordings(100)
                .await
                .expect("stale rows")
                .is_empty()
        );
        let r = s.recording(t, running).await.expect("get").expect("row");
        assert_eq!(r.status, "error");
    }
}
