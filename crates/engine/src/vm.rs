//! Leaving a voicemail message (`vm:EXT`): the caller hears the mailbox greeting (the default
//! one composed from prompts: "the person at extension 1 0 0 2 is not available", then "please
//! leave a message after the tone"), a beep, and is recorded until silence, the maximum length
//! or hang-up. A caller who hangs up mid-message leaves what was said. The message is a WAV file
//! under `voicemail/<tenant>/<extension>/` in the data directory.

use std::time::SystemTime;

use tracing::info;

use crate::media::{MediaCommand, PlayItem};
use crate::{Engine, Now};

/// Longest message, seconds.
pub(crate) const MAX_MESSAGE_S: u32 = 180;
/// Silence that ends a message, seconds.
pub(crate) const SILENCE_S: u32 = 5;

/// Where the caller is in leaving a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VmStage {
    /// The greeting plays.
    Greeting,
    /// Recording this file.
    Recording { path: String },
    /// Done: "goodbye" plays, then the call ends.
    Done,
}

/// A caller leaving a message in `ext`'s mailbox.
#[derive(Debug)]
pub(crate) struct VmLeave {
    pub ext: String,
    pub stage: VmStage,
}

/// The message file, relative to the data directory: unique per call and time.
pub(crate) fn message_path(tenant: i64, ext: &str, at: SystemTime, call: u64) -> String {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("voicemail/{tenant}/{ext}/msg-{ms}-{call}.wav")
}

impl Engine {
    /// The caller was answered: the greeting.
    pub(crate) fn vm_start(&mut self, id: u64, _now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let lang = anchor.lang().to_string();
        let Some(vm) = anchor.vm_mut() else {
            return;
        };
        let lang_code: apps::prompt::Lang = lang.parse().unwrap_or(apps::prompt::Lang::En);
        let mut ids: Vec<&str> =
            apps::prompt::default_greeting(&vm.ext, false, lang_code).unwrap_or_default();
        ids.push("vm-leave-message");
        let items = ids
            .into_iter()
            .map(|p| PlayItem::Prompt {
                id: p.to_string(),
                tenant,
                lang: lang.clone(),
            })
            .collect();
        let cmd = anchor.play_cmd(items, false);
        self.media(cmd);
    }

    /// A playback of a voicemail caller ended: after the greeting, record.
    pub(crate) fn vm_play_done(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let ep = anchor.caller_endpoint();
        let Some(vm) = anchor.vm_mut() else {
            return;
        };
        match vm.stage {
            VmStage::Greeting => {
                let path = message_path(tenant, &vm.ext, now.wall, id);
                info!(call = id, mailbox = %vm.ext, %path, "recording a voicemail message");
                vm.stage = VmStage::Recording { path: path.clone() };
                self.media(MediaCommand::Record {
                    endpoint: ep,
                    id,
                    path,
                    max_s: MAX_MESSAGE_S,
                    silence_s: SILENCE_S,
                    beep: true,
                });
            }
            VmStage::Done => self.anchored_hangup(id, "voicemail left", now),
            VmStage::Recording { .. } => {}
        }
    }

    /// The recording ended (silence or the maximum length; a hang-up ends the call first).
    pub(crate) fn vm_record_done(
        &mut self,
        id: u64,
        path: &str,
        duration_ms: u64,
        reason: &str,
        now: Now,
    ) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let lang = anchor.lang().to_string();
        let Some(vm) = anchor.vm_mut() else {
            return;
        };
        info!(call = id, mailbox = %vm.ext, %path, duration_ms, %reason, "voicemail message ended");
        vm.stage = VmStage::Done;
        let prompt = match reason {
            "disk-full" | "error" => "vm-mailbox-full",
            _ => "goodbye",
        };
        let cmd = anchor.play_cmd(
            vec![PlayItem::Prompt {
                id: prompt.into(),
                tenant,
                lang,
            }],
            false,
        );
        self.media(cmd);
        let _ = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn message_paths_are_per_mailbox_and_unique() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
        assert_eq!(
            message_path(1, "1002", t, 7),
            "voicemail/1/1002/msg-1790000000123-7.wav"
        );
        assert_ne!(message_path(1, "1002", t, 7), message_path(1, "1002", t, 8));
    }
}
