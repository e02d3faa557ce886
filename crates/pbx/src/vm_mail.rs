//! Voicemail e-mail: the durable outbox (`store`, one row per message of a box with an e-mail
//! address) is worked through by this task — due rows are mailed over SMTP (`lettre`, rustls;
//! STARTTLS, implicit TLS or plain per `mail.smtp_security`, optional authentication) with the
//! WAV attached when the box says so; failures are retried with backoff and their last error
//! kept for the panel, API and CLI; `delete_after_mail` removes the message once sent (file,
//! index row and so the MWI count). A private relay's CA is trusted from `mail.smtp_ca_file`;
//! the first retry waits `mail.retry_first_s`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use engine::settings::keys;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use store::Store;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// How often the outbox is looked at.
const POLL: Duration = Duration::from_secs(2);
/// E-mails sent per look.
const BATCH: i64 = 20;
/// One SMTP exchange's limit.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// SMTP settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Smtp {
    host: String,
    port: u16,
    security: String,
    username: String,
    password: String,
    from: String,
    /// PEM file of extra trusted CAs (empty: public roots only).
    ca_file: String,
    /// Seconds before the first retry.
    retry_s: i64,
}

async fn text(store: &Store, key: &str) -> String {
    store
        .setting::<String>(None, key)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn smtp(store: &Store) -> Option<Smtp> {
    let host = text(store, keys::MAIL_HOST).await;
    if host.is_empty() {
        return None;
    }
    let port = store
        .setting::<u64>(None, keys::MAIL_PORT)
        .await
        .ok()
        .flatten()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(587);
    let security = Some(text(store, keys::MAIL_SECURITY).await)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "starttls".into());
    let from = Some(text(store, keys::MAIL_FROM).await)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "voicemail@localhost".into());
    Some(Smtp {
        host,
        port,
        security,
        username: text(store, keys::MAIL_USERNAME).await,
        password: text(store, keys::MAIL_PASSWORD).await,
        from,
        ca_file: text(store, keys::MAIL_CA_FILE).await,
        retry_s: engine::settings::effective_int(
            keys::MAIL_RETRY_S,
            store
                .setting::<u64>(None, keys::MAIL_RETRY_S)
                .await
                .ok()
                .flatten(),
        ) as i64,
    })
}

fn transport(s: &Smtp) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host).port(s.port);
    let b = match s.security.as_str() {
        "none" => b,
        "tls" => b.tls(Tls::Wrapper(tls_parameters(s)?)),
        _ => b.tls(Tls::Required(tls_parameters(s)?)),
    };
    let mut b = b.timeout(Some(SMTP_TIMEOUT));
    if !s.username.is_empty() {
        b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
    }
    Ok(b.build())
}

/// Certificate checks against the public roots plus the CAs of `mail.smtp_ca_file`.
fn tls_parameters(s: &Smtp) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(s.host.clone());
    if !s.ca_file.is_empty() {
        let pem = std::fs::read(&s.ca_file)
            .map_err(|e| format!("mail.smtp_ca_file {}: {e}", s.ca_file))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("mail.smtp_ca_file {}: no PEM certificate: {e}", s.ca_file))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| format!("TLS settings: {e}"))
}

/// Works the outbox for ever.
pub(crate) async fn run(store: Store, data_dir: PathBuf, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !store.fence().writable() {
            // A standby of a pair: the active node mails (sending would write the outbox).
            continue;
        }
        if let Ok(n) = store.vm_mail_pending().await {
            metrics.vm_mail_queue.store(n, Relaxed);
        }
        let Some(cfg) = smtp(&store).await else {
            continue;
        };
        let due = match store.due_vm_mail(chrono::Utc::now(), BATCH).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "voicemail outbox unreadable");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let mailer = match transport(&cfg) {
            Ok(m) => m,
            Err(e) => {
                // Shown on each waiting e-mail (panel, API, CLI) and retried as a failure.
                warn!(error = %e, host = %cfg.host, "SMTP settings unusable");
                for m in due {
                    metrics.vm_mail_failures.fetch_add(1, Relaxed);
                    let _ = store.vm_mail_retry(m.id, &e, false, cfg.retry_s).await;
                }
                continue;
            }
        };
        for m in due {
            match send_one(&store, &data_dir, &cfg, &mailer, &m).await {
                Ok(()) => {
                    metrics.vm_mail_sent.fetch_add(1, Relaxed);
                    info!(mailbox = %m.mailbox, to = %m.email, message = m.message_id, "voicemail e-mailed");
                }
                Err((e, permanent)) => {
                    metrics.vm_mail_failures.fetch_add(1, Relaxed);
                    let gave_up = store
                        .vm_mail_retry(m.id, &e, permanent, cfg.retry_s)
                        .await
                        .unwrap_or(false);
                    warn!(mailbox = %m.mailbox, to = %m.email, error = %e, gave_up, "voicemail e-mail failed");
                }
            }
        }
    }
}

/// Sends one e-mail; `Err((why, permanent))`.
async fn send_one(
    store: &Store,
    data_dir: &Path,
    cfg: &Smtp,
    mailer: &AsyncSmtpTransport<Tokio1Executor>,
    m: &store::VmMail,
) -> Result<(), (String, bool)> {
    let db = |e: store::Error| (e.to_string(), false);
    let Some(msg) = store
        .vm_message(m.tenant_id, m.message_id)
        .await
        .map_err(db)?
    else {
        return Err(("the message was deleted before it was mailed".into(), true));
    };
    let spec = store
        .vm_box(m.tenant_id, &m.mailbox)
        .await
        .map_err(db)?
        .map(|b| b.spec)
        .unwrap_or_default();
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| (format!("mail.from {:?}: {e}", cfg.from), false))?;
    let to: Mailbox = m
        .email
        .parse()
        .map_err(|e| (format!("address {:?}: {e}", m.email), true))?;
    let who = if msg.caller.is_empty() {
        "an unknown caller".to_string()
    } else if msg.caller_name.is_empty() {
        msg.caller.clone()
    } else {
        format!("{} ({})", msg.caller_name, msg.caller)
    };
    let seconds = msg.duration_ms / 1000;
    let body = format!(
        "A new voicemail message for extension {} from {who}, {seconds} s, left at {} UTC.\n",
        msg.mailbox,
        msg.received_at.format("%Y-%m-%d %H:%M:%S")
    );
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body));
    if spec.attach {
        let wav = std::fs::read(data_dir.join(&msg.path))
            .map_err(|e| (format!("message file {}: {e}", msg.path), false))?;
        let ct = ContentType::parse("audio/wav").map_err(|e| (e.to_string(), true))?;
        let name = format!("voicemail-{}-{}.wav", msg.mailbox, msg.id);
        parts = parts.singlepart(Attachment::new(name).body(wav, ct));
    }
    let email = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Voicemail from {who} ({seconds} s)"))
        .multipart(parts)
        .map_err(|e| (e.to_string(), true))?;
    mailer
        .send(email)
        .await
        .map_err(|e| (e.to_string(), e.is_permanent()))?;
    store.vm_mail_sent(m.id).await.map_err(db)?;
    if spec.delete_after_mail {
        match store.delete_vm_message(m.tenant_id, msg.id).await {
            Ok(gone) => {
                let _ = std::fs::remove_file(data_dir.join(&gone.path));
            }
            Err(e) => warn!(error = %e, "message mailed but not deleted"),
        }
    }
    Ok(())
}
