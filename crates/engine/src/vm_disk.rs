//! A voicemail recording that could not be written — a message or a greeting recorded by
//! phone, stopped by a full disk or another write error (the media engine has already removed
//! the partial file): an ERROR line with an `alert` key an operator's log alerting matches
//! (`alert="voicemail disk full"`, as call recording raises its own), a count per reason for
//! `/metrics` (`denwa_vm_failures_total{reason}`), nothing indexed, and the caller hears
//! "the mailbox is full" before the call ends.

use tracing::error;

use crate::Engine;
use crate::media::PlayItem;
use crate::vm::VmOp;

/// The failure reasons counted, in [`crate::Counters::vm_failures`] order: how the media
/// engine names a recording's end by a full disk and by any other write error.
pub const VM_FAILURE_REASONS: [&str; 2] = ["disk-full", "error"];

/// The prompt a caller hears when the recording failed.
pub(crate) const MAILBOX_FULL_PROMPT: &str = "vm-mailbox-full";

/// The counter index of a recording's end `reason` when it is a failure.
pub(crate) fn failure(reason: &str) -> Option<usize> {
    VM_FAILURE_REASONS.iter().position(|r| *r == reason)
}

impl Engine {
    /// Counts and reports a voicemail recording (`what`: message or greeting) of `mailbox`
    /// that ended by failure `k` ([`VM_FAILURE_REASONS`]).
    pub(crate) fn vm_write_failed(&mut self, call: u64, mailbox: &str, what: &str, k: usize) {
        if let Some(n) = self.counters.vm_failures.get_mut(k) {
            *n += 1;
        }
        let alert = if k == 0 {
            "voicemail disk full"
        } else {
            "voicemail write error"
        };
        error!(
            alert,
            call,
            %mailbox,
            what,
            reason = VM_FAILURE_REASONS.get(k).copied().unwrap_or("error"),
            "ALERT: voicemail {what} could not be written: the caller is told the mailbox is full"
        );
    }

    /// A greeting being recorded in the voicemail menus into `path` could not be written: the
    /// menus end, the caller hears that the mailbox is full and the call is hung up after it.
    pub(crate) fn vm_menu_write_failed(&mut self, id: u64, path: &str, k: usize) {
        let Some(call) = self.b2bua.get_mut(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref_mut() else {
            return;
        };
        let mailbox = anchor
            .vm_menu_mut()
            .map(|s| s.ret.mailbox().to_string())
            .unwrap_or_default();
        let lang = anchor.lang().to_string();
        anchor.clear_app();
        anchor.set_deadline(None);
        anchor.hangup_after_play();
        let cmd = anchor.play_cmd(
            vec![PlayItem::Prompt {
                id: MAILBOX_FULL_PROMPT.into(),
                tenant,
                lang,
            }],
            false,
        );
        self.media(cmd);
        self.vm_write_failed(id, &mailbox, "greeting", k);
        self.vm_op(
            0,
            VmOp::Discard {
                path: path.to_string(),
            },
        );
    }
}
