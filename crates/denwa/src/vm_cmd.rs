//! `denwa voicemail ...`: mailboxes (settings, PIN) and their messages. Validation is the
//! store's; the PIN is never printed. Deleting a message removes its file too.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use apps::vmail::{BoxSpec, Folder};
use clap::Subcommand;
use store::Store;

/// `denwa voicemail` subcommands.
#[derive(Debug, Subcommand)]
pub enum VmCmd {
    /// Messages in EXT's mailbox: new first, each folder oldest first.
    List {
        /// Extension number
        ext: String,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// A mailbox's settings (whether it has a PIN; never the PIN).
    Show {
        /// Extension number
        ext: String,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Change a mailbox's settings.
    Edit {
        /// Extension number
        ext: String,
        /// Callers may leave messages (true/false)
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        /// Mail new messages here ("" for none)
        #[arg(long)]
        email: Option<String>,
        /// Attach the WAV to the e-mail (true/false)
        #[arg(long, value_name = "BOOL")]
        attach: Option<bool>,
        /// Delete a message once mailed (true/false; needs --email)
        #[arg(long, value_name = "BOOL")]
        delete_after_mail: Option<bool>,
        /// Longest message, seconds (10-600)
        #[arg(long, value_name = "S")]
        max_message_s: Option<u32>,
        /// The owner's own phones enter without the PIN (true/false; a PIN must still be set)
        #[arg(long, value_name = "BOOL")]
        skip_pin_own_phone: Option<bool>,
    },
    /// Set the PIN (4-12 digits, not 1111 or 1234-like), or remove it with --clear (the box
    /// then cannot be entered by phone).
    Pin {
        /// Extension number
        ext: String,
        /// The new PIN
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        pin: Option<String>,
        /// Remove the PIN
        #[arg(long)]
        clear: bool,
    },
    /// Delete a message (its index entry and its file).
    Delete {
        /// Extension number
        ext: String,
        /// Message id (from `list`)
        id: i64,
    },
    /// Mark a message as listened to (moves it to the saved folder).
    Read {
        /// Extension number
        ext: String,
        /// Message id
        id: i64,
    },
    /// Upload a greeting (any format sox reads; converted, refused with a reason if unreadable,
    /// silent or too long), or remove it with --remove (the default greeting plays again).
    Greeting {
        /// Extension number
        ext: String,
        /// unavailable, busy or name
        kind: String,
        /// The audio file
        #[arg(conflicts_with = "remove", required_unless_present = "remove")]
        file: Option<std::path::PathBuf>,
        /// Remove the greeting
        #[arg(long)]
        remove: bool,
    },
    /// Set the SMTP password voicemail e-mails authenticate with (the other SMTP settings are
    /// `mail.*` in `denwa setting`); never listed with the settings.
    MailPassword {
        /// The password
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        password: Option<String>,
        /// Remove it
        #[arg(long)]
        clear: bool,
    },
}

async fn require_box(store: &Store, tenant: i64, ext: &str) -> Result<store::VmBox> {
    store
        .vm_box(tenant, ext)
        .await?
        .ok_or_else(|| anyhow!("no extension {ext}"))
}

/// A message of `ext`'s box, or an error naming it.
async fn message_of(store: &Store, tenant: i64, ext: &str, id: i64) -> Result<store::VmMessage> {
    match store.vm_message(tenant, id).await? {
        Some(m) if m.mailbox == ext => Ok(m),
        _ => bail!("no message {id} in mailbox {ext}"),
    }
}

/// Runs `denwa voicemail ...`.
pub async fn run(
    cmd: VmCmd,
    store: &Store,
    data_dir: &Path,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        VmCmd::List { ext, json } => {
            require_box(store, tenant, &ext).await?;
            let msgs = store.list_vm_messages(tenant, &ext).await?;
            if json {
                let v: Vec<serde_json::Value> = msgs
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "id": m.id,
                            "folder": m.folder,
                            "caller": m.caller,
                            "caller_name": m.caller_name,
                            "reason": m.reason,
                            "left_at": m.received_at.to_rfc3339(),
                            "left_at_ms": m.received_at.timestamp_millis(),
                            "seconds": (m.duration_ms as f64 / 100.0).round() / 10.0,
                            "path": data_dir.join(&m.path).display().to_string(),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(
                    out,
                    "{:>5} {:<6} {:<20} {:<16} {:>7}  FILE",
                    "ID", "FOLDER", "LEFT AT (UTC)", "CALLER", "SECONDS"
                )?;
                for m in msgs {
                    writeln!(
                        out,
                        "{:>5} {:<6} {:<20} {:<16} {:>7.1}  {}",
                        m.id,
                        m.folder,
                        m.received_at.format("%Y-%m-%d %H:%M:%S"),
                        m.caller,
                        m.duration_ms as f64 / 1000.0,
                        data_dir.join(&m.path).display()
                    )?;
                }
            }
        }
        VmCmd::Show { ext, json } => {
            let b = require_box(store, tenant, &ext).await?;
            let (new, saved) = store.vm_counts(tenant, &ext).await?;
            let mails = store.vm_mail_status(tenant, &ext).await?;
            if json {
                let mut v = serde_json::to_value(&b)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("new".into(), new.into());
                    o.insert("saved".into(), saved.into());
                    o.insert("mail".into(), serde_json::to_value(&mails)?);
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let s = &b.spec;
                writeln!(out, "mailbox {ext}: {new} new, {saved} saved")?;
                writeln!(out, "enabled: {}", s.enabled)?;
                writeln!(
                    out,
                    "pin: {}",
                    if b.has_pin {
                        "set"
                    } else {
                        "none (cannot be entered by phone until one is set)"
                    }
                )?;
                if let Some(t) = b.locked_until {
                    writeln!(out, "locked until: {}", t.to_rfc3339())?;
                }
                writeln!(out, "email: {}", s.email)?;
                writeln!(out, "attach: {}", s.attach)?;
                writeln!(out, "delete after mail: {}", s.delete_after_mail)?;
                writeln!(out, "max message: {} s", s.max_message_s)?;
                writeln!(out, "skip PIN from own phone: {}", s.skip_pin_own_phone)?;
                writeln!(
                    out,
                    "greetings recorded: unavailable {}, busy {}, name {}",
                    s.greeting_unavailable, s.greeting_busy, s.greeting_name
                )?;
                for m in mails.iter().take(10) {
                    writeln!(
                        out,
                        "e-mail of message {} to {}: {} after {} attempt(s){}",
                        m.message_id,
                        m.email,
                        m.status,
                        m.attempts,
                        if m.last_error.is_empty() {
                            String::new()
                        } else {
                            format!(", last error: {}", m.last_error)
                        }
                    )?;
                }
            }
        }
        VmCmd::Edit {
            ext,
            enabled,
            email,
            attach,
            delete_after_mail,
            max_message_s,
            skip_pin_own_phone,
        } => {
            let mut s: BoxSpec = require_box(store, tenant, &ext).await?.spec;
            if let Some(v) = enabled {
                s.enabled = v;
            }
            if let Some(v) = email {
                s.email = v.trim().to_string();
            }
            if let Some(v) = attach {
                s.attach = v;
            }
            if let Some(v) = delete_after_mail {
                s.delete_after_mail = v;
            }
            if let Some(v) = max_message_s {
                s.max_message_s = v;
            }
            if let Some(v) = skip_pin_own_phone {
                s.skip_pin_own_phone = v;
            }
            store.put_vm_box(tenant, &ext, &s).await?;
            writeln!(out, "mailbox {ext} updated")?;
        }
        VmCmd::Pin { ext, pin, clear } => {
            let pin = if clear { None } else { pin };
            store.set_vm_pin(tenant, &ext, pin.as_deref()).await?;
            match pin {
                Some(_) => writeln!(out, "PIN of mailbox {ext} set")?,
                None => writeln!(
                    out,
                    "PIN of mailbox {ext} removed: it cannot be entered by phone until one is set"
                )?,
            }
        }
        VmCmd::Delete { ext, id } => {
            message_of(store, tenant, &ext, id).await?;
            let m = store.delete_vm_message(tenant, id).await?;
            let file = data_dir.join(&m.path);
            if let Err(e) = std::fs::remove_file(&file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                bail!(
                    "message {id} removed from the index, but its file {} was not: {e}",
                    file.display()
                );
            }
            writeln!(out, "message {id} deleted")?;
        }
        VmCmd::Read { ext, id } => {
            message_of(store, tenant, &ext, id).await?;
            store.set_vm_folder(tenant, id, Folder::Saved).await?;
            writeln!(out, "message {id} saved")?;
        }
        VmCmd::Greeting {
            ext,
            kind,
            file,
            remove,
        } => {
            let g = apps::vmail::Greeting::parse(&kind)
                .ok_or_else(|| anyhow!("{kind:?}: use unavailable, busy or name"))?;
            require_box(store, tenant, &ext).await?;
            match (file, remove) {
                (Some(f), false) => {
                    let secs = store
                        .upload_vm_greeting(data_dir, tenant, &ext, g, &f)
                        .await
                        .map_err(|e| anyhow!("{}: {e}", f.display()))?;
                    writeln!(out, "{kind} greeting of mailbox {ext} set ({secs:.1} s)")?;
                }
                _ => {
                    store.remove_vm_greeting(data_dir, tenant, &ext, g).await?;
                    writeln!(out, "{kind} greeting of mailbox {ext} removed")?;
                }
            }
        }
        VmCmd::MailPassword { password, clear } => {
            let key = engine::settings::keys::MAIL_PASSWORD;
            match (password, clear) {
                (Some(p), false) => {
                    store.set_setting(None, key, &p).await?;
                    writeln!(out, "SMTP password set")?;
                }
                _ => {
                    store.delete_setting(None, key).await?;
                    writeln!(out, "SMTP password removed")?;
                }
            }
        }
    }
    Ok(())
}
