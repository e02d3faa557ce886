//! Leaving a voicemail message (`vm:EXT`): the caller hears the owner's recorded greeting for
//! why the call came here (busy or unavailable) or the default one composed from prompts ("the
//! person at extension 1 0 0 2 is not available"), then "please leave a message after the
//! tone", a beep, and is recorded until silence, the box's maximum length or hang-up.
//!
//! The message is a WAV file under `voicemail/<tenant>/<extension>/` in the data directory,
//! indexed in the database ([`VmOp::Index`]) when the recording ends — also when the caller
//! hung up mid-message, since the media engine still reports the finished file. A recording
//! shorter than [`MIN_MESSAGE_MS`] is not a message: its file is removed ([`VmOp::Discard`]).
//!
//! Database and file work goes out as [`crate::DbOp::Vm`]; the driver answers
//! [`crate::DbAnswer::Vm`].

use std::collections::HashMap;
use std::time::SystemTime;

use apps::vmail::{BoxSpec, Greeting, Message, Verdict};
use tracing::{info, warn};

use crate::media::{MediaCommand, PlayItem};
use crate::{Engine, Now};

/// Longest message when the box has no setting, seconds.
pub(crate) const MAX_MESSAGE_S: u32 = 180;
/// Silence that ends a message, seconds.
pub(crate) const SILENCE_S: u32 = 5;
/// Shorter recordings are not kept (a caller who hung up at the beep).
pub const MIN_MESSAGE_MS: u64 = 1_000;
/// Most recordings waiting for their end at once (bounded; more callers hear "mailbox full").
const MAX_PENDING: usize = 4_096;

/// Why a call reached voicemail: decides which greeting plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmReason {
    /// The owner did not answer, is not registered, or the caller dialled the box directly.
    #[default]
    Unavailable,
    /// The owner is on another call (486/600).
    Busy,
}

impl VmReason {
    /// The stored name (`unavailable`, `busy`).
    pub fn as_str(self) -> &'static str {
        match self {
            VmReason::Unavailable => "unavailable",
            VmReason::Busy => "busy",
        }
    }
}

/// A mailbox as call control sees it (from the database's `vm_boxes`; a box without a row
/// has the defaults and no PIN).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmBoxEntry {
    /// Settings.
    pub spec: BoxSpec,
    /// A PIN is set.
    pub has_pin: bool,
}

/// A message to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Mailbox (extension number).
    pub mailbox: String,
    /// Caller's number.
    pub caller: String,
    /// Caller's display name.
    pub caller_name: String,
    /// SIP Call-ID.
    pub call_id: String,
    /// Why it reached voicemail.
    pub reason: VmReason,
    /// Length, milliseconds.
    pub duration_ms: u64,
    /// When the recording started.
    pub received_at: SystemTime,
    /// File, relative to the data directory.
    pub path: String,
}

/// Voicemail work for the driver (database and files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmOp {
    /// Index a new message (answered `Done`).
    Index {
        /// Tenant.
        tenant: i64,
        /// The message.
        msg: NewMessage,
    },
    /// Remove a recording that is too short to keep (answered `Done`).
    Discard {
        /// File relative to the data directory.
        path: String,
    },
    /// Check a PIN (answered `Verdict`); see `store::Store::check_vm_pin`.
    Verify {
        /// Tenant.
        tenant: i64,
        /// Mailbox.
        mailbox: String,
        /// Digits entered (`None`: the owner's phone skipping the PIN).
        pin: Option<String>,
    },
    /// The box's messages (answered `Messages`, envelope times in the tenant's time zone).
    Load {
        /// Tenant.
        tenant: i64,
        /// Mailbox.
        mailbox: String,
    },
    /// Move a message to the saved folder (answered `Done`).
    Save {
        /// Tenant.
        tenant: i64,
        /// Message id.
        id: i64,
    },
    /// Delete a message and its file (answered `Done`).
    Delete {
        /// Tenant.
        tenant: i64,
        /// Message id.
        id: i64,
    },
    /// Set a new PIN (answered `PinSet`).
    SetPin {
        /// Tenant.
        tenant: i64,
        /// Mailbox.
        mailbox: String,
        /// The PIN.
        pin: String,
    },
    /// Store an event subscription (answered `Done`).
    SaveSub(Box<crate::subs::SubRecord>),
    /// Forget a stored subscription (answered `Done`).
    DropSub {
        /// Its Call-ID.
        call_id: String,
        /// Our tag.
        local_tag: String,
    },
    /// A prompt recorded by phone (`record_prompt`) becomes the tenant's replacement: the
    /// scratch file is converted and stored like an upload, then removed (answered `Done`).
    KeepPrompt {
        /// Tenant.
        tenant: i64,
        /// Prompt language (`en`, `ja`).
        lang: String,
        /// Prompt id.
        id: String,
        /// Scratch file relative to the data directory
        /// (`apps::prompt_files::scratch_rel_path`).
        scratch: String,
        /// The extension that recorded it.
        by: String,
    },
    /// Remove a prompt recording's scratch file (cancelled, re-recorded, hung up; answered
    /// `Done`).
    DropPromptScratch {
        /// Scratch file relative to the data directory.
        path: String,
    },
    /// The scratch recording becomes the box's greeting (answered `Done`).
    KeepGreeting {
        /// Tenant.
        tenant: i64,
        /// Mailbox.
        mailbox: String,
        /// Which greeting.
        greeting: Greeting,
    },
}

/// The driver's answer to a [`VmOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmAnswer {
    /// Done (or why not).
    Done(Result<(), String>),
    /// A PIN check.
    Verdict(Result<Verdict, String>),
    /// A box's messages.
    Messages(Result<Vec<Message>, String>),
    /// A new PIN: `Ok(false)` when refused as too weak.
    PinSet(Result<bool, String>),
}

/// Recordings of messages waiting for their end, by call id (the call may be gone by then).
#[derive(Debug, Default)]
pub(crate) struct VmState {
    pending: HashMap<u64, (i64, NewMessage)>,
}

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
    pub reason: VmReason,
}

impl VmLeave {
    /// A caller about to hear `ext`'s greeting.
    pub(crate) fn new(ext: String, reason: VmReason) -> VmLeave {
        VmLeave {
            ext,
            stage: VmStage::Greeting,
            reason,
        }
    }
}

/// The directory of a box, relative to the data directory.
pub fn box_dir(tenant: i64, ext: &str) -> String {
    format!("voicemail/{tenant}/{ext}")
}

/// A kept greeting's file, relative to the data directory.
pub fn greeting_path(tenant: i64, ext: &str, g: Greeting) -> String {
    format!("{}/{}", box_dir(tenant, ext), apps::vmail::greeting_name(g))
}

/// The message file, relative to the data directory: unique per call and time.
pub(crate) fn message_path(tenant: i64, ext: &str, at: SystemTime, call: u64) -> String {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}/msg-{ms}-{call}.wav", box_dir(tenant, ext))
}

/// What the greeting of a box is for `reason`: the owner's recording, else the default greeting
/// composed from prompts — with the owner's recorded name when there is one ("<name> is not
/// available"), else with the extension number read digit by digit.
pub fn greeting_items(
    tenant: i64,
    ext: &str,
    spec: &BoxSpec,
    reason: VmReason,
    lang: &str,
) -> Vec<PlayItem> {
    let g = match reason {
        VmReason::Busy => Greeting::Busy,
        VmReason::Unavailable => Greeting::Unavailable,
    };
    let prompt = |p: &str| PlayItem::Prompt {
        id: p.to_string(),
        tenant,
        lang: lang.to_string(),
    };
    let mut items = if spec.has_greeting(g) {
        vec![PlayItem::File {
            path: greeting_path(tenant, ext, g),
        }]
    } else if spec.has_greeting(Greeting::Name) {
        // "<name> is not available": the owner's recorded name instead of the number.
        vec![
            PlayItem::File {
                path: greeting_path(tenant, ext, Greeting::Name),
            },
            prompt(if reason == VmReason::Busy {
                "vm-name-is-busy"
            } else {
                "vm-name-is-unavailable"
            }),
        ]
    } else {
        let lang_code: apps::prompt::Lang = lang.parse().unwrap_or(apps::prompt::Lang::En);
        apps::prompt::default_greeting(ext, reason == VmReason::Busy, lang_code)
            .unwrap_or_default()
            .into_iter()
            .map(prompt)
            .collect()
    };
    items.push(prompt("vm-leave-message"));
    items
}

impl Engine {
    /// The mailbox of (tenant, ext) as call control knows it.
    pub(crate) fn vm_box(&self, tenant: i64, ext: &str) -> VmBoxEntry {
        self.snap
            .apps
            .vm_boxes
            .get(&(tenant, ext.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Voicemail work for the driver on behalf of call `id` (0: nobody waits).
    pub(crate) fn vm_op(&mut self, id: u64, op: VmOp) {
        self.db(crate::DbOp::Vm(op), crate::Pending::Vm(id));
    }

    /// The caller was answered: the greeting (or "no mailbox" when the box is off).
    pub(crate) fn vm_start(&mut self, id: u64, _now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some((ext, reason)) = call
            .anchor
            .as_deref()
            .and_then(|a| a.vm())
            .map(|v| (v.ext.clone(), v.reason))
        else {
            return;
        };
        let bx = self.vm_box(tenant, &ext);
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        let lang = anchor.lang().to_string();
        let items = if bx.spec.enabled {
            greeting_items(tenant, &ext, &bx.spec, reason, &lang)
        } else {
            if let Some(vm) = anchor.vm_mut() {
                vm.stage = VmStage::Done;
            }
            vec![PlayItem::Prompt {
                id: "vm-no-mailbox".into(),
                tenant,
                lang,
            }]
        };
        let cmd = anchor.play_cmd(items, false);
        self.media(cmd);
    }

    /// A playback of a voicemail caller ended: after the greeting, record.
    pub(crate) fn vm_play_done(&mut self, id: u64, now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let (caller, caller_name, call_id) = (
            call.caller.clone(),
            call.caller_name.clone(),
            call.legs[crate::b2bua::A_LEG].call_id.clone(),
        );
        let Some(ext) = call
            .anchor
            .as_deref()
            .and_then(|a| a.vm())
            .map(|v| v.ext.clone())
        else {
            return;
        };
        let max_s = self.vm_box(tenant, &ext).spec.max_message_s;
        let full = self.vm.pending.len() >= MAX_PENDING;
        let Some(anchor) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) else {
            return;
        };
        let ep = anchor.caller_endpoint();
        let lang = anchor.lang().to_string();
        let Some(vm) = anchor.vm_mut() else {
            return;
        };
        match vm.stage {
            VmStage::Greeting if full => {
                warn!(
                    call = id,
                    "too many voicemail recordings at once: refusing this one"
                );
                vm.stage = VmStage::Done;
                let cmd = anchor.play_cmd(
                    vec![PlayItem::Prompt {
                        id: "vm-mailbox-full".into(),
                        tenant,
                        lang,
                    }],
                    false,
                );
                self.media(cmd);
            }
            VmStage::Greeting => {
                let path = message_path(tenant, &vm.ext, now.wall, id);
                info!(call = id, mailbox = %vm.ext, %path, "recording a voicemail message");
                vm.stage = VmStage::Recording { path: path.clone() };
                let msg = NewMessage {
                    mailbox: vm.ext.clone(),
                    caller,
                    caller_name,
                    call_id,
                    reason: vm.reason,
                    duration_ms: 0,
                    received_at: now.wall,
                    path: path.clone(),
                };
                self.vm.pending.insert(id, (tenant, msg));
                self.media(MediaCommand::Record {
                    endpoint: ep,
                    id,
                    path,
                    max_s: if max_s == 0 { MAX_MESSAGE_S } else { max_s },
                    silence_s: SILENCE_S,
                    beep: true,
                });
            }
            VmStage::Done => self.anchored_hangup(id, "voicemail left", now),
            VmStage::Recording { .. } => {}
        }
    }

    /// A recording ended, whether or not its call still exists: a message recording is
    /// indexed (or discarded when too short).
    pub(crate) fn vm_recorded(&mut self, rec: u64, path: &str, duration_ms: u64, reason: &str) {
        let Some((tenant, mut msg)) = self.vm.pending.remove(&rec) else {
            return;
        };
        if msg.path != path {
            warn!(call = rec, expected = %msg.path, got = %path, "recording of another file");
        }
        if let Some(k) = crate::vm_disk::failure(reason) {
            // Not indexed; the media engine removed the partial file (Discard makes sure).
            self.vm_write_failed(rec, &msg.mailbox, "message", k);
            return self.vm_op(0, VmOp::Discard { path: msg.path });
        }
        if duration_ms < MIN_MESSAGE_MS {
            info!(call = rec, mailbox = %msg.mailbox, duration_ms, %reason, "recording too short: not kept");
            return self.vm_op(0, VmOp::Discard { path: msg.path });
        }
        msg.duration_ms = duration_ms;
        info!(call = rec, mailbox = %msg.mailbox, duration_ms, %reason, "voicemail message kept");
        self.vm_op(0, VmOp::Index { tenant, msg });
    }

    /// The recording of a live call ended (silence, the maximum length, `#`): "goodbye".
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
        if anchor.vm_menu_mut().is_some() {
            if let Some(k) = crate::vm_disk::failure(reason) {
                return self.vm_menu_write_failed(id, path, k);
            }
            return self.vm_menu_recorded(id, duration_ms, now);
        }
        if anchor.prompt_rec_mut().is_some() {
            return self.prompt_rec_recorded(id, duration_ms, now);
        }
        let lang = anchor.lang().to_string();
        let Some(vm) = anchor.vm_mut() else {
            return;
        };
        info!(call = id, mailbox = %vm.ext, %path, duration_ms, %reason, "voicemail message ended");
        vm.stage = VmStage::Done;
        let prompt = match reason {
            _ if crate::vm_disk::failure(reason).is_some() => crate::vm_disk::MAILBOX_FULL_PROMPT,
            _ if duration_ms < MIN_MESSAGE_MS => "vm-too-short",
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
    }

    /// Background voicemail work answered (nobody waits for it).
    pub(crate) fn vm_answer(&mut self, id: u64, answer: VmAnswer, now: Now) {
        if id != 0 {
            let prompt_rec = self
                .b2bua
                .get_mut(id)
                .and_then(|c| c.anchor.as_deref_mut())
                .is_some_and(|a| a.prompt_rec_mut().is_some());
            if prompt_rec {
                return self.prompt_rec_kept(id, answer, now);
            }
            return self.vm_menu_answer(id, answer, now);
        }
        if let VmAnswer::Done(Err(e)) = answer {
            warn!(error = %e, "voicemail index or file not updated");
        }
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

    fn ids(items: &[PlayItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                PlayItem::Prompt { id, .. } => id.clone(),
                PlayItem::File { path } => path.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_greeting_follows_the_reason_and_what_the_owner_recorded() {
        let mut spec = BoxSpec::default();
        assert_eq!(
            ids(&greeting_items(1, "12", &spec, VmReason::Busy, "en")),
            [
                "vm-person-at-ext",
                "digit-1",
                "digit-2",
                "vm-is-busy",
                "vm-leave-message"
            ]
        );
        spec.greeting_busy = true;
        assert_eq!(
            ids(&greeting_items(1, "12", &spec, VmReason::Busy, "en")),
            ["voicemail/1/12/greeting-busy.wav", "vm-leave-message"]
        );
        assert_eq!(
            ids(&greeting_items(1, "12", &spec, VmReason::Unavailable, "en"))[3],
            "vm-is-unavailable",
            "the busy recording is not the unavailable one"
        );
        // A recorded name replaces the number in the default greeting, not a recorded one.
        spec.greeting_name = true;
        assert_eq!(
            ids(&greeting_items(1, "12", &spec, VmReason::Unavailable, "ja")),
            [
                "voicemail/1/12/greeting-name.wav",
                "vm-name-is-unavailable",
                "vm-leave-message"
            ]
        );
        assert_eq!(
            ids(&greeting_items(1, "12", &spec, VmReason::Busy, "en")),
            ["voicemail/1/12/greeting-busy.wav", "vm-leave-message"]
        );
        spec.greeting_busy = false;
        assert_eq!(
            ids(&greeting_items(1, "12", &spec, VmReason::Busy, "en")),
            [
                "voicemail/1/12/greeting-name.wav",
                "vm-name-is-busy",
                "vm-leave-message"
            ]
        );
    }
}
