//! Voicemail work call control asks for ([`engine::vm::VmOp`]): the message index and PINs on
//! `store`, and the files under the data directory (short recordings discarded, deleted
//! messages' files removed, a reviewed greeting moved into place).

use std::path::{Path, PathBuf};

use engine::vm::{VmAnswer, VmOp};
use store::Store;
use tracing::{info, warn};

/// A data-directory-relative voicemail path, refused unless it stays under `voicemail/`.
fn vm_file(data_dir: &Path, rel: &str) -> Option<PathBuf> {
    let ok = rel.starts_with("voicemail/")
        && !rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    ok.then(|| data_dir.join(rel))
}

fn remove(data_dir: &Path, rel: &str) {
    match vm_file(data_dir, rel) {
        Some(p) => {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(path = %p.display(), error = %e, "voicemail file not removed");
            }
        }
        None => warn!(path = %rel, "refusing to remove a file outside voicemail/"),
    }
}

fn done<E: std::fmt::Display>(r: Result<impl Sized, E>) -> VmAnswer {
    VmAnswer::Done(r.map(drop).map_err(|e| e.to_string()))
}

/// Carries out one operation.
pub(crate) async fn run(store: &Store, data_dir: &Path, op: VmOp) -> VmAnswer {
    match op {
        VmOp::Index { tenant, msg } => {
            let m = store::NewVmMessage {
                mailbox: msg.mailbox,
                caller: msg.caller,
                caller_name: msg.caller_name,
                call_id: msg.call_id,
                reason: msg.reason.as_str().to_string(),
                duration_ms: i64::try_from(msg.duration_ms).unwrap_or(i64::MAX),
                received_at_ms: msg
                    .received_at
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
                path: msg.path,
            };
            done(store.insert_vm_message(tenant, &m).await)
        }
        VmOp::Discard { path } => {
            remove(data_dir, &path);
            VmAnswer::Done(Ok(()))
        }
        VmOp::Verify {
            tenant,
            mailbox,
            pin,
        } => VmAnswer::Verdict(
            store
                .check_vm_pin(tenant, &mailbox, pin.as_deref(), chrono::Utc::now())
                .await
                .map_err(|e| e.to_string()),
        ),
        VmOp::Load { tenant, mailbox } => VmAnswer::Messages(
            store
                .vm_messages_for_phone(tenant, &mailbox)
                .await
                .map_err(|e| e.to_string()),
        ),
        VmOp::Save { tenant, id } => done(
            store
                .set_vm_folder(tenant, id, apps::vmail::Folder::Saved)
                .await,
        ),
        VmOp::Delete { tenant, id } => match store.delete_vm_message(tenant, id).await {
            Ok(m) => {
                remove(data_dir, &m.path);
                VmAnswer::Done(Ok(()))
            }
            Err(e) => VmAnswer::Done(Err(e.to_string())),
        },
        VmOp::SetPin {
            tenant,
            mailbox,
            pin,
        } => match store.set_vm_pin(tenant, &mailbox, Some(&pin)).await {
            Ok(()) => VmAnswer::PinSet(Ok(true)),
            Err(store::Error::Invalid { .. }) => VmAnswer::PinSet(Ok(false)),
            Err(e) => VmAnswer::PinSet(Err(e.to_string())),
        },
        VmOp::SaveSub(r) => done(store.put_event_sub(&r).await),
        VmOp::DropSub { call_id, local_tag } => {
            done(store.delete_event_sub(&call_id, &local_tag).await)
        }
        VmOp::KeepPrompt {
            tenant,
            lang,
            id,
            scratch,
            by,
        } => {
            if !apps::prompt_files::is_scratch_rel_path(&scratch) {
                return VmAnswer::Done(Err(format!("bad prompt scratch path {scratch:?}")));
            }
            let lang: apps::prompt::Lang = lang.parse().unwrap_or(apps::prompt::Lang::En);
            let dir = data_dir.to_path_buf();
            let from = data_dir.join(&scratch);
            let r = tokio::task::spawn_blocking(move || {
                apps::prompt_files::keep_recording(&dir, tenant, lang, &id, &from, &by)
                    .map(|l| (l.id, l.recorded_by))
            })
            .await;
            match r {
                Ok(Ok((id, by))) => {
                    info!(tenant, prompt = id, by = ?by, lang = lang.as_str(), "prompt recorded by phone kept");
                    VmAnswer::Done(Ok(()))
                }
                Ok(Err(e)) => {
                    warn!(tenant, error = %e, "prompt recorded by phone not kept");
                    VmAnswer::Done(Err(e.to_string()))
                }
                Err(e) => {
                    warn!(tenant, error = %e, "prompt recorded by phone not kept");
                    VmAnswer::Done(Err(e.to_string()))
                }
            }
        }
        VmOp::DropPromptScratch { path } => {
            if !apps::prompt_files::is_scratch_rel_path(&path) {
                return VmAnswer::Done(Err(format!("bad prompt scratch path {path:?}")));
            }
            match std::fs::remove_file(data_dir.join(&path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    VmAnswer::Done(Err(format!("prompt scratch {path} not removed: {e}")))
                }
                _ => VmAnswer::Done(Ok(())),
            }
        }
        VmOp::KeepGreeting {
            tenant,
            mailbox,
            greeting,
        } => {
            let dir = engine::vm::box_dir(tenant, &mailbox);
            let scratch = format!("{dir}/{}", apps::vmail::scratch_name(greeting));
            let kept = engine::vm::greeting_path(tenant, &mailbox, greeting);
            let (Some(from), Some(to)) = (vm_file(data_dir, &scratch), vm_file(data_dir, &kept))
            else {
                return VmAnswer::Done(Err(format!("bad mailbox {mailbox:?}")));
            };
            if let Err(e) = std::fs::rename(&from, &to) {
                return VmAnswer::Done(Err(format!("greeting not kept: {e}")));
            }
            done(
                store
                    .set_vm_greeting(tenant, &mailbox, greeting, true)
                    .await,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::vm_file;
    use std::path::Path;

    #[test]
    fn only_voicemail_files() {
        let d = Path::new("/data");
        assert_eq!(
            vm_file(d, "voicemail/1/1002/msg-1.wav"),
            Some(d.join("voicemail/1/1002/msg-1.wav"))
        );
        for bad in [
            "voicemail/../denwa.db",
            "prompts/x.wav",
            "/etc/passwd",
            "voicemail//x",
            "voicemail/1/./x",
        ] {
            assert_eq!(vm_file(d, bad), None, "{bad}");
        }
    }
}
