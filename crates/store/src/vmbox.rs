//! Voicemail: mailbox settings and PINs per extension, and the message index.
//!
//! A mailbox exists for every extension; its row is created the first time its settings or PIN
//! are written (until then the defaults of `apps::vmail::BoxSpec` apply and it has no PIN, so it
//! cannot be entered by phone). PINs are Argon2 hashes; [`LOCK_AFTER`] wrong PINs in a row lock
//! the box for [`LOCK_FOR_S`] seconds, whoever tries. Messages are indexed here (the audio stays
//! a WAV file under the data directory's `voicemail/`), so new/saved counts are exact.

use apps::vmail::{BoxSpec, Folder, Verdict};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{hash_password, verify_password};
use crate::db::{RowGet, from_ms, read_pool, to_ms, write_tx};
use crate::notify::{Change, announce};
use crate::{Error, Result, Store};

/// Wrong PINs in a row that lock a mailbox.
pub const LOCK_AFTER: i64 = 5;
/// How long a locked mailbox stays locked, seconds.
pub const LOCK_FOR_S: i64 = 300;
/// Most messages one mailbox holds (a full box refuses new messages).
pub const MAX_MESSAGES: i64 = 200;

/// A mailbox as stored (the PIN itself is never returned).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmBox {
    /// Owning tenant.
    pub tenant_id: i64,
    /// The extension number.
    pub number: String,
    /// Settings.
    #[serde(flatten)]
    pub spec: BoxSpec,
    /// A PIN is set (the box can be entered by phone).
    pub has_pin: bool,
    /// Locked after wrong PINs until then.
    pub locked_until: Option<DateTime<Utc>>,
}

/// One indexed message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmMessage {
    /// Id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Mailbox (extension number).
    pub mailbox: String,
    /// `new` or `saved`.
    pub folder: String,
    /// Caller's number (empty: withheld).
    pub caller: String,
    /// Caller's display name.
    pub caller_name: String,
    /// SIP Call-ID of the call that left it.
    pub call_id: String,
    /// Why the call reached voicemail (`busy`, `unavailable`, or empty).
    pub reason: String,
    /// Length, milliseconds.
    pub duration_ms: i64,
    /// When it was left.
    pub received_at: DateTime<Utc>,
    /// The WAV file, relative to the data directory.
    pub path: String,
}

/// A message to index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewVmMessage {
    /// Mailbox.
    pub mailbox: String,
    /// Caller's number.
    pub caller: String,
    /// Caller's display name.
    pub caller_name: String,
    /// Call-ID.
    pub call_id: String,
    /// `busy` / `unavailable`.
    pub reason: String,
    /// Length, milliseconds.
    pub duration_ms: i64,
    /// When it was left (ms since the epoch).
    pub received_at_ms: i64,
    /// File relative to the data directory (`voicemail/<tenant>/<box>/msg-….wav`).
    pub path: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

const BOX_COLS: &str = "tenant_id, number, spec, pin_hash, locked_until";
const MSG_COLS: &str = "id, tenant_id, mailbox, folder, caller, caller_name, call_id, reason, \
                        duration_ms, received_at, path";

fn box_from(r: &impl RowGet) -> Result<VmBox> {
    let spec: BoxSpec = serde_json::from_str(&r.text("spec")?)
        .map_err(|e| invalid("spec", format!("stored mailbox unreadable: {e}")))?;
    Ok(VmBox {
        tenant_id: r.i64("tenant_id")?,
        number: r.text("number")?,
        spec,
        has_pin: r.opt_text("pin_hash")?.is_some_and(|h| !h.is_empty()),
        locked_until: r.opt_i64("locked_until")?.map(from_ms).transpose()?,
    })
}

fn msg_from(r: &impl RowGet) -> Result<VmMessage> {
    Ok(VmMessage {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        mailbox: r.text("mailbox")?,
        folder: r.text("folder")?,
        caller: r.text("caller")?,
        caller_name: r.text("caller_name")?,
        call_id: r.text("call_id")?,
        reason: r.text("reason")?,
        duration_ms: r.i64("duration_ms")?,
        received_at: r.ts("received_at")?,
        path: r.text("path")?,
    })
}

/// The path of a message file must stay inside the box's directory.
fn valid_message_path(tenant: i64, mailbox: &str, path: &str) -> bool {
    let prefix = format!("voicemail/{tenant}/{mailbox}/");
    path.strip_prefix(&prefix).is_some_and(|name| {
        !name.is_empty()
            && name.ends_with(".wav")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.contains("..")
    })
}

/// Inside a write transaction: the extension must exist.
macro_rules! require_extension {
    ($tx:ident, $tenant:expr, $number:expr) => {{
        let found = sqlx::query("SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2")
            .bind($tenant)
            .bind($number)
            .fetch_optional(&mut *$tx)
            .await?;
        if found.is_none() {
            return Err(Error::NotFound(format!("extension {}", $number)));
        }
    }};
}

/// Inside a write transaction: creates the box's row with default settings if it has none.
macro_rules! ensure_box {
    ($tx:ident, $tenant:expr, $number:expr, $now:expr) => {{
        let doc = serde_json::to_string(&BoxSpec::default())
            .map_err(|e| invalid("spec", e.to_string()))?;
        sqlx::query(
            "INSERT INTO vm_boxes (tenant_id, number, spec, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (tenant_id, number) DO NOTHING",
        )
        .bind($tenant)
        .bind($number)
        .bind(&doc)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// A mailbox's settings (defaults when none were written); `None` when there is no such
    /// extension.
    pub async fn vm_box(&self, tenant_id: i64, number: &str) -> Result<Option<VmBox>> {
        if self.extension(tenant_id, number).await?.is_none() {
            return Ok(None);
        }
        let sql = format!("SELECT {BOX_COLS} FROM vm_boxes WHERE tenant_id = $1 AND number = $2");
        let row = read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(number).fetch_optional(pool).await? {
                Some(r) => Some(box_from(&r)?),
                None => None,
            }
        });
        Ok(Some(row.unwrap_or_else(|| VmBox {
            tenant_id,
            number: number.to_string(),
            spec: BoxSpec::default(),
            has_pin: false,
            locked_until: None,
        })))
    }

    /// Every mailbox with stored settings (call control's snapshot).
    pub async fn all_vm_boxes(&self) -> Result<Vec<VmBox>> {
        let sql = format!("SELECT {BOX_COLS} FROM vm_boxes ORDER BY tenant_id, number");
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).fetch_all(pool).await?.iter().map(box_from).collect()
        })
    }

    /// Replaces a mailbox's settings (the extension must exist).
    pub async fn put_vm_box(&self, tenant_id: i64, number: &str, spec: &BoxSpec) -> Result<VmBox> {
        spec.validate().map_err(|e| invalid(e.field, e.reason))?;
        let doc = serde_json::to_string(spec).map_err(|e| invalid("spec", e.to_string()))?;
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            require_extension!(tx, tenant_id, number);
            ensure_box!(tx, tenant_id, number, now);
            sqlx::query("UPDATE vm_boxes SET spec = $3, updated_at = $4 WHERE tenant_id = $1 AND number = $2")
                .bind(tenant_id)
                .bind(number)
                .bind(&doc)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            announce!(tx, kind, Change::Apps);
        });
        self.vm_box(tenant_id, number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("extension {number}")))
    }

    /// Sets (or with `None` removes) a mailbox's PIN; clears any lockout. The PIN must pass
    /// `apps::vmail::pin_acceptable`.
    pub async fn set_vm_pin(&self, tenant_id: i64, number: &str, pin: Option<&str>) -> Result<()> {
        let hash = match pin {
            Some(p) if !apps::vmail::pin_acceptable(p) => {
                return Err(invalid(
                    "pin",
                    "4-12 digits, not all the same digit and not a straight run such as 1234",
                ));
            }
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            require_extension!(tx, tenant_id, number);
            ensure_box!(tx, tenant_id, number, now);
            sqlx::query(
                "UPDATE vm_boxes SET pin_hash = $3, pin_failures = 0, locked_until = NULL, updated_at = $4
                 WHERE tenant_id = $1 AND number = $2",
            )
            .bind(tenant_id)
            .bind(number)
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            announce!(tx, kind, Change::Apps);
        });
        Ok(())
    }

    /// Checks a PIN entered by phone at `now`. `pin: None` is the owner's own phone skipping the
    /// PIN (allowed only when the box has a PIN and `skip_pin_own_phone`; a refused skip is not
    /// counted). Wrong PINs count
    /// towards the lockout; a right one resets the count. An unknown box answers
    /// [`Verdict::Wrong`] (the caller is not told that it does not exist).
    pub async fn check_vm_pin(
        &self,
        tenant_id: i64,
        number: &str,
        pin: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Verdict> {
        let Some(b) = self.vm_box(tenant_id, number).await? else {
            return Ok(Verdict::Wrong);
        };
        if !b.has_pin {
            return Ok(Verdict::NoPin);
        }
        if b.locked_until.is_some_and(|t| t > now) {
            return Ok(Verdict::Locked);
        }
        let right = match pin {
            // Nobody typed anything: not a guess, so it does not count towards the lockout.
            None if !b.spec.skip_pin_own_phone => return Ok(Verdict::Wrong),
            None => true,
            Some(p) => {
                let hash: Option<String> = read_pool!(self.db(), pool, kind => {
                    sqlx::query("SELECT pin_hash FROM vm_boxes WHERE tenant_id = $1 AND number = $2")
                        .bind(tenant_id)
                        .bind(number)
                        .fetch_optional(pool)
                        .await?
                        .map(|r| r.opt_text("pin_hash"))
                        .transpose()?
                        .flatten()
                });
                match hash {
                    Some(h) => verify_password(p, &h).await?,
                    None => false,
                }
            }
        };
        let now_ms = to_ms(now);
        write_tx!(self.db(), tx, kind => {
            if right {
                sqlx::query("UPDATE vm_boxes SET pin_failures = 0 WHERE tenant_id = $1 AND number = $2")
                    .bind(tenant_id)
                    .bind(number)
                    .execute(&mut *tx)
                    .await?;
            } else {
                // The count and the lock move in one statement: concurrent wrong PINs all count.
                sqlx::query(
                    "UPDATE vm_boxes SET
                        locked_until = CASE WHEN pin_failures + 1 >= $3 THEN $4 ELSE locked_until END,
                        pin_failures = CASE WHEN pin_failures + 1 >= $3 THEN 0 ELSE pin_failures + 1 END
                     WHERE tenant_id = $1 AND number = $2",
                )
                .bind(tenant_id)
                .bind(number)
                .bind(LOCK_AFTER)
                .bind(now_ms + LOCK_FOR_S * 1000)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(if right { Verdict::Ok } else { Verdict::Wrong })
    }

    /// Records that the owner has (or no longer has) a greeting of this kind.
    pub async fn set_vm_greeting(
        &self,
        tenant_id: i64,
        number: &str,
        greeting: apps::vmail::Greeting,
        present: bool,
    ) -> Result<VmBox> {
        let mut spec = self
            .vm_box(tenant_id, number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("extension {number}")))?
            .spec;
        spec.set_greeting(greeting, present);
        self.put_vm_box(tenant_id, number, &spec).await
    }

    /// Indexes a message just recorded (in the `new` folder) and, when the box has an e-mail
    /// address, queues its e-mail. Refused when the box already holds [`MAX_MESSAGES`].
    pub async fn insert_vm_message(&self, tenant_id: i64, m: &NewVmMessage) -> Result<VmMessage> {
        let msg = self.index_vm_message(tenant_id, m).await?;
        if let Some(b) = self.vm_box(tenant_id, &m.mailbox).await?
            && !b.spec.email.is_empty()
        {
            self.queue_vm_mail(tenant_id, msg.id, &m.mailbox, &b.spec.email)
                .await?;
        }
        Ok(msg)
    }

    async fn index_vm_message(&self, tenant_id: i64, m: &NewVmMessage) -> Result<VmMessage> {
        if !valid_message_path(tenant_id, &m.mailbox, &m.path) {
            return Err(invalid(
                "path",
                format!("{:?} is not a file of mailbox {}", m.path, m.mailbox),
            ));
        }
        if m.duration_ms < 0 {
            return Err(invalid("duration_ms", "negative"));
        }
        let sql = format!(
            "INSERT INTO vm_messages (tenant_id, mailbox, folder, caller, caller_name, call_id,
                reason, duration_ms, received_at, path)
             VALUES ($1, $2, 'new', $3, $4, $5, $6, $7, $8, $9) RETURNING {MSG_COLS}"
        );
        Ok(write_tx!(self.db(), tx, kind => {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM vm_messages WHERE tenant_id = $1 AND mailbox = $2")
                .bind(tenant_id)
                .bind(&m.mailbox)
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
            if n >= MAX_MESSAGES {
                return Err(invalid("mailbox", format!("mailbox {} is full ({MAX_MESSAGES} messages)", m.mailbox)));
            }
            let r = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(&m.mailbox)
                .bind(&m.caller)
                .bind(&m.caller_name)
                .bind(&m.call_id)
                .bind(&m.reason)
                .bind(m.duration_ms)
                .bind(m.received_at_ms)
                .bind(&m.path)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| crate::db::conflict(e, || format!("message file {}", m.path)))?;
            // Message counts travel with the voice applications (message-waiting indication).
            announce!(tx, kind, Change::Apps);
            msg_from(&r)?
        }))
    }

    /// A box's messages: new first, each folder oldest first.
    pub async fn list_vm_messages(&self, tenant_id: i64, mailbox: &str) -> Result<Vec<VmMessage>> {
        let sql = format!(
            "SELECT {MSG_COLS} FROM vm_messages WHERE tenant_id = $1 AND mailbox = $2
             ORDER BY CASE WHEN folder = 'new' THEN 0 ELSE 1 END, received_at, id"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).bind(mailbox).fetch_all(pool).await?.iter().map(msg_from).collect()
        })
    }

    /// A box's messages as the phone menus need them: envelope times in the tenant's report
    /// time zone (`reports.timezone`, UTC when unset or unknown).
    pub async fn vm_messages_for_phone(
        &self,
        tenant_id: i64,
        mailbox: &str,
    ) -> Result<Vec<apps::vmail::Message>> {
        use chrono::Timelike;
        let tz: chrono_tz::Tz = self
            .setting::<String>(None, "reports.timezone")
            .await
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        Ok(self
            .list_vm_messages(tenant_id, mailbox)
            .await?
            .into_iter()
            .map(|m| {
                let local = m.received_at.with_timezone(&tz);
                apps::vmail::Message {
                    id: m.id,
                    folder: Folder::parse(&m.folder).unwrap_or(Folder::New),
                    caller: m.caller,
                    at: (local.hour() as u8, local.minute() as u8),
                    path: m.path,
                }
            })
            .collect())
    }

    /// One message by id.
    pub async fn vm_message(&self, tenant_id: i64, id: i64) -> Result<Option<VmMessage>> {
        let sql = format!("SELECT {MSG_COLS} FROM vm_messages WHERE tenant_id = $1 AND id = $2");
        read_pool!(self.db(), pool, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(msg_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// New and saved counts of a box.
    pub async fn vm_counts(&self, tenant_id: i64, mailbox: &str) -> Result<(u64, u64)> {
        let rows = read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT folder, COUNT(*) AS n FROM vm_messages WHERE tenant_id = $1 AND mailbox = $2 GROUP BY folder")
                .bind(tenant_id)
                .bind(mailbox)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.text("folder")?, r.i64("n")?)))
                .collect::<Result<Vec<_>>>()?
        });
        let get = |f: &str| {
            rows.iter()
                .find(|(k, _)| k == f)
                .map_or(0, |(_, n)| (*n).max(0) as u64)
        };
        Ok((get("new"), get("saved")))
    }

    /// New and saved counts of every box holding messages (call control's message-waiting
    /// indication): ((tenant, mailbox), (new, saved)).
    pub async fn all_vm_counts(&self) -> Result<Vec<((i64, String), (u64, u64))>> {
        let rows = read_pool!(self.db(), pool, kind => {
            sqlx::query(
                "SELECT tenant_id, mailbox, folder, COUNT(*) AS n FROM vm_messages
                 GROUP BY tenant_id, mailbox, folder ORDER BY tenant_id, mailbox",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.i64("tenant_id")?, r.text("mailbox")?, r.text("folder")?, r.i64("n")?)))
            .collect::<Result<Vec<_>>>()?
        });
        let mut out: Vec<((i64, String), (u64, u64))> = Vec::new();
        for (t, m, folder, n) in rows {
            let n = n.max(0) as u64;
            if out.last().is_none_or(|(k, _)| *k != (t, m.clone())) {
                out.push(((t, m.clone()), (0, 0)));
            }
            if let Some((_, c)) = out.last_mut() {
                if folder == "new" {
                    c.0 += n;
                } else {
                    c.1 += n;
                }
            }
        }
        Ok(out)
    }

    /// Moves a message to a folder; `NotFound` when there is no such message.
    pub async fn set_vm_folder(
        &self,
        tenant_id: i64,
        id: i64,
        folder: Folder,
    ) -> Result<VmMessage> {
        let sql = format!(
            "UPDATE vm_messages SET folder = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {MSG_COLS}"
        );
        write_tx!(self.db(), tx, kind => {
            match sqlx::query(&sql)
                .bind(tenant_id)
                .bind(id)
                .bind(folder.as_str())
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(r) => {
                    announce!(tx, kind, Change::Apps);
                    Ok(msg_from(&r)?)
                }
                None => Err(Error::NotFound(format!("voicemail message {id}"))),
            }
        })
    }

    /// Removes a message from the index and returns it (the caller deletes its file, which
    /// a missing index row would otherwise leave unreachable but harmless).
    pub async fn delete_vm_message(&self, tenant_id: i64, id: i64) -> Result<VmMessage> {
        let sql = format!(
            "DELETE FROM vm_messages WHERE tenant_id = $1 AND id = $2 RETURNING {MSG_COLS}"
        );
        write_tx!(self.db(), tx, kind => {
            match sqlx::query(&sql).bind(tenant_id).bind(id).fetch_optional(&mut *tx).await? {
                Some(r) => {
                    announce!(tx, kind, Change::Apps);
                    Ok(msg_from(&r)?)
                }
                None => Err(Error::NotFound(format!("voicemail message {id}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::valid_message_path;

    #[test]
    fn message_paths_stay_in_their_box() {
        assert!(valid_message_path(
            1,
            "1002",
            "voicemail/1/1002/msg-17-3.wav"
        ));
        for bad in [
            "voicemail/2/1002/msg-1.wav",
            "voicemail/1/1003/msg-1.wav",
            "voicemail/1/1002/../1003/msg-1.wav",
            "voicemail/1/1002/sub/msg-1.wav",
            "voicemail/1/1002/msg-1.mp3",
            "voicemail/1/1002/",
            "/etc/passwd",
        ] {
            assert!(!valid_message_path(1, "1002", bad), "{bad}");
        }
    }
}

/// Most e-mails waiting in the outbox; past it new messages are not mailed (the row records
/// why, status `failed`).
pub const MAX_OUTBOX: i64 = 10_000;
/// Finished (sent or failed) e-mails whose state a box keeps.
pub const OUTBOX_KEPT: i64 = 50;
/// Attempts before an e-mail is given up (`failed`).
pub const MAIL_ATTEMPTS: i64 = 8;

/// One e-mail in the outbox, with what it needs to be sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmMail {
    /// Outbox row id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// The message (it may have been deleted since: then the row is dropped).
    pub message_id: i64,
    /// Mailbox.
    pub mailbox: String,
    /// Recipient.
    pub email: String,
    /// `pending`, `sent`, `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: String,
    /// Queued at.
    pub created_at: DateTime<Utc>,
}

const MAIL_COLS: &str =
    "id, tenant_id, message_id, mailbox, email, status, attempts, last_error, created_at";

fn mail_from(r: &impl RowGet) -> Result<VmMail> {
    Ok(VmMail {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        message_id: r.i64("message_id")?,
        mailbox: r.text("mailbox")?,
        email: r.text("email")?,
        status: r.text("status")?,
        attempts: r.i64("attempts")?,
        last_error: r.text("last_error")?,
        created_at: r.ts("created_at")?,
    })
}

/// The wait before attempt `attempts + 1`: 30 s, doubling, at most an hour.
pub fn mail_backoff_s(attempts: i64) -> i64 {
    mail_backoff_from(30, attempts)
}

/// The wait before attempt `attempts + 1` when the first retry waits `first_s`
/// (`mail.retry_first_s`): doubling, at most an hour.
pub fn mail_backoff_from(first_s: i64, attempts: i64) -> i64 {
    first_s
        .clamp(1, 3600)
        .saturating_mul(1 << attempts.clamp(0, 7))
        .min(3600)
}

impl Store {
    /// Queues the e-mail of message `message_id` to `email` (inside nothing: its own write).
    pub(crate) async fn queue_vm_mail(
        &self,
        tenant_id: i64,
        message_id: i64,
        mailbox: &str,
        email: &str,
    ) -> Result<()> {
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM vm_outbox WHERE status = 'pending'")
                .fetch_one(&mut *tx)
                .await?
                .i64("n")?;
            let (status, err) = if n >= MAX_OUTBOX {
                ("failed", format!("outbox full ({MAX_OUTBOX} e-mails waiting)"))
            } else {
                ("pending", String::new())
            };
            sqlx::query(
                "INSERT INTO vm_outbox (tenant_id, message_id, mailbox, email, status, next_at, last_error, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $6)",
            )
            .bind(tenant_id)
            .bind(message_id)
            .bind(mailbox)
            .bind(email)
            .bind(status)
            .bind(now)
            .bind(&err)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// E-mails due at `now` (oldest first, at most `limit`).
    pub async fn due_vm_mail(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<VmMail>> {
        let sql = format!(
            "SELECT {MAIL_COLS} FROM vm_outbox WHERE status = 'pending' AND next_at <= $1
             ORDER BY next_at, id LIMIT $2"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(to_ms(now)).bind(limit).fetch_all(pool).await?.iter().map(mail_from).collect()
        })
    }

    /// The outbox rows of a box (newest first, at most 100), for the panel, API and CLI.
    pub async fn vm_mail_status(&self, tenant_id: i64, mailbox: &str) -> Result<Vec<VmMail>> {
        let sql = format!(
            "SELECT {MAIL_COLS} FROM vm_outbox WHERE tenant_id = $1 AND mailbox = $2 ORDER BY id DESC LIMIT 100"
        );
        read_pool!(self.db(), pool, kind => {
            sqlx::query(&sql).bind(tenant_id).bind(mailbox).fetch_all(pool).await?.iter().map(mail_from).collect()
        })
    }

    /// E-mails waiting to be sent (all tenants): the `/metrics` queue length.
    pub async fn vm_mail_pending(&self) -> Result<i64> {
        read_pool!(self.db(), pool, kind => {
            sqlx::query("SELECT COUNT(*) AS n FROM vm_outbox WHERE status = 'pending'")
                .fetch_one(pool)
                .await?
                .i64("n")
        })
    }

    /// The e-mail went out. The box keeps the state of its newest [`OUTBOX_KEPT`] finished
    /// e-mails (older sent or failed rows are dropped: the table stays bounded).
    pub async fn vm_mail_sent(&self, id: i64) -> Result<()> {
        let now = to_ms(Utc::now());
        write_tx!(self.db(), tx, kind => {
            sqlx::query("UPDATE vm_outbox SET status = 'sent', attempts = attempts + 1, sent_at = $2, last_error = '' WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let me = sqlx::query("SELECT tenant_id, mailbox FROM vm_outbox WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(me) = me {
                let (t, mailbox) = (me.i64("tenant_id")?, me.text("mailbox")?);
                let cutoff = sqlx::query(
                    "SELECT id FROM vm_outbox WHERE tenant_id = $1 AND mailbox = $2 AND status <> 'pending'
                     ORDER BY id DESC LIMIT 1 OFFSET $3",
                )
                .bind(t)
                .bind(&mailbox)
                .bind(OUTBOX_KEPT)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(c) = cutoff {
                    sqlx::query(
                        "DELETE FROM vm_outbox WHERE tenant_id = $1 AND mailbox = $2 AND status <> 'pending' AND id <= $3",
                    )
                    .bind(t)
                    .bind(&mailbox)
                    .bind(c.i64("id")?)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        });
        Ok(())
    }

    /// An attempt failed with `error`: retried after [`mail_backoff_s`], given up after
    /// [`MAIL_ATTEMPTS`] (or at once when `permanent`). Returns whether it was given up.
    pub async fn vm_mail_failed(&self, id: i64, error: &str, permanent: bool) -> Result<bool> {
        self.vm_mail_retry(id, error, permanent, 30).await
    }

    /// [`Store::vm_mail_failed`] with the first retry after `first_s` seconds
    /// ([`mail_backoff_from`]).
    pub async fn vm_mail_retry(
        &self,
        id: i64,
        error: &str,
        permanent: bool,
        first_s: i64,
    ) -> Result<bool> {
        let now = Utc::now();
        let error: String = error.chars().take(500).collect();
        Ok(write_tx!(self.db(), tx, kind => {
            let attempts: i64 = match sqlx::query("SELECT attempts FROM vm_outbox WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(r) => r.i64("attempts")? + 1,
                None => return Ok(true),
            };
            let give_up = permanent || attempts >= MAIL_ATTEMPTS;
            let next = to_ms(now) + mail_backoff_from(first_s, attempts - 1) * 1000;
            sqlx::query("UPDATE vm_outbox SET status = $2, attempts = $3, next_at = $4, last_error = $5 WHERE id = $1")
                .bind(id)
                .bind(if give_up { "failed" } else { "pending" })
                .bind(attempts)
                .bind(next)
                .bind(&error)
                .execute(&mut *tx)
                .await?;
            give_up
        }))
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn retries_double_from_the_first_wait_up_to_an_hour() {
        let waits: Vec<i64> = (0..9).map(mail_backoff_s).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        let short: Vec<i64> = (0..4).map(|a| mail_backoff_from(1, a)).collect();
        assert_eq!(short, [1, 2, 4, 8]);
        assert_eq!(mail_backoff_from(0, 0), 1, "never a zero wait");
        assert_eq!(mail_backoff_from(3000, 3), 3600);
        assert_eq!(mail_backoff_from(i64::MAX, 7), 3600);
    }
}
