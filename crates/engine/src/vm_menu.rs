//! Voicemail retrieval by phone inside call control: the caller is answered on a media
//! endpoint and driven by `apps::vmail::Retrieval` (a sans-IO state machine); this module
//! carries out what it asks — prompts and message files to play, recordings, database work
//! ([`crate::vm::VmOp`]), calling back through the dialplan as the box owner, hanging up.
//!
//! Reached through the tenant's feature-code table ([`crate::features`]): `vm_own_box`
//! (default `*97`) is the caller's own box, `vm_main` (default `*98`) asks for a box number and
//! PIN.

use apps::vmail::{Action, Entry, Retrieval, Sound};
use tracing::{debug, info, warn};

use crate::dialplan::{Decision, Destination, RouteRequest};
use crate::media::{MediaCommand, PlayItem};
use crate::vm::{VmAnswer, VmOp, box_dir};
use crate::{Engine, Now};

/// Silence that ends a greeting recording, seconds.
const GREETING_SILENCE_S: u32 = 3;

/// A caller in the voicemail menus.
#[derive(Debug)]
pub(crate) struct VmSession {
    pub ret: Retrieval,
    /// The calling extension (whose class of service a call-back uses), if any.
    pub owner: Option<String>,
}

impl VmSession {
    /// A caller from `caller` (an extension, or `None` from a trunk) entering by `dest`.
    pub(crate) fn new(
        dest: &Destination,
        caller: Option<(&str, bool)>,
        lang: apps::prompt::Lang,
    ) -> Option<VmSession> {
        let entry = match (dest, caller) {
            (Destination::VmOwn, Some((ext, skip_pin))) => Entry::Own {
                mailbox: ext.to_string(),
                ask_pin: !skip_pin,
            },
            (Destination::VmMain, _) => Entry::Main,
            _ => return None,
        };
        Some(VmSession {
            ret: Retrieval::new(entry, lang),
            owner: caller.map(|(e, _)| e.to_string()),
        })
    }
}

/// The recorded name of mailbox `b`, when the box has one (the main voicemail number confirms
/// the box typed by its name; a box without one, or no box at all, says nothing).
fn box_name_item(
    boxes: &std::collections::HashMap<(i64, String), crate::vm::VmBoxEntry>,
    tenant: i64,
    b: &str,
) -> Option<PlayItem> {
    let g = apps::vmail::Greeting::Name;
    boxes
        .get(&(tenant, b.to_string()))
        .filter(|e| e.spec.enabled && e.spec.has_greeting(g))
        .map(|_| PlayItem::File {
            path: crate::vm::greeting_path(tenant, b, g),
        })
}

impl Engine {
    /// The caller was answered: the menus start.
    pub(crate) fn vm_menu_start(&mut self, id: u64, now: Now) {
        if let Some(s) = self.vm_session(id) {
            s.ret.start(now.mono);
        }
        self.vm_menu_run(id, now);
    }

    fn vm_session(&mut self, id: u64) -> Option<&mut VmSession> {
        self.b2bua.get_mut(id)?.anchor.as_deref_mut()?.vm_menu_mut()
    }

    /// A key from the caller.
    pub(crate) fn vm_menu_digit(&mut self, id: u64, digit: char, now: Now) {
        if let Some(s) = self.vm_session(id) {
            s.ret.on_digit(digit, now.mono);
        }
        self.vm_menu_run(id, now);
    }

    /// The current playback ended.
    pub(crate) fn vm_menu_play_done(&mut self, id: u64, now: Now) {
        if let Some(s) = self.vm_session(id) {
            s.ret.on_play_done(now.mono);
        }
        self.vm_menu_run(id, now);
    }

    /// The menu's deadline passed.
    pub(crate) fn vm_menu_timeout(&mut self, id: u64, now: Now) {
        if let Some(s) = self.vm_session(id) {
            s.ret.on_timeout(now.mono);
        }
        self.vm_menu_run(id, now);
    }

    /// A greeting recording ended.
    pub(crate) fn vm_menu_recorded(&mut self, id: u64, duration_ms: u64, now: Now) {
        if let Some(s) = self.vm_session(id) {
            s.ret.on_record_done(duration_ms, now.mono);
        }
        self.vm_menu_run(id, now);
    }

    /// The driver answered voicemail work for call `id`.
    pub(crate) fn vm_menu_answer(&mut self, id: u64, answer: VmAnswer, now: Now) {
        let Some(s) = self.vm_session(id) else {
            return;
        };
        match answer {
            VmAnswer::Verdict(Ok(v)) => {
                let mailbox = s.ret.mailbox().to_string();
                if v == apps::vmail::Verdict::Ok {
                    info!(call = id, %mailbox, "voicemail menus: mailbox opened");
                } else {
                    info!(call = id, %mailbox, verdict = ?v, "voicemail menus: entry refused");
                }
                s.ret.on_verdict(v, now.mono)
            }
            VmAnswer::Messages(Ok(m)) => s.ret.on_messages(m, now.mono),
            VmAnswer::PinSet(Ok(ok)) => s.ret.on_pin_set(ok, now.mono),
            VmAnswer::Done(Ok(())) => return,
            VmAnswer::Verdict(Err(e))
            | VmAnswer::Messages(Err(e))
            | VmAnswer::PinSet(Err(e))
            | VmAnswer::Done(Err(e)) => {
                warn!(call = id, error = %e, "voicemail database work failed: ending the call");
                return self.anchored_hangup(id, "voicemail unavailable", now);
            }
        }
        self.vm_menu_run(id, now);
    }

    /// Carries out what the menus asked for.
    fn vm_menu_run(&mut self, id: u64, now: Now) {
        loop {
            let Some(call) = self.b2bua.get_mut(id) else {
                return;
            };
            let tenant = call.tenant_id;
            let Some(anchor) = call.anchor.as_deref_mut() else {
                return;
            };
            let ep = anchor.caller_endpoint();
            let lang = anchor.lang().to_string();
            let Some(s) = anchor.vm_menu_mut() else {
                return;
            };
            let mailbox = s.ret.mailbox().to_string();
            let owner = s.owner.clone();
            let Some(action) = s.ret.poll_action() else {
                let deadline = s.ret.deadline();
                if deadline != anchor.deadline() {
                    anchor.set_deadline(deadline);
                    if let Some(d) = deadline {
                        self.app_timers.insert((d, id));
                    }
                }
                return;
            };
            let dir = box_dir(tenant, &mailbox);
            match action {
                Action::Play(sounds) => {
                    let boxes = &self.snap.apps.vm_boxes;
                    let items = sounds
                        .into_iter()
                        .filter_map(|s| match s {
                            Sound::Prompt(p) => Some(PlayItem::Prompt {
                                id: p,
                                tenant,
                                lang: lang.clone(),
                            }),
                            // Message files carry their path; scratch greetings a bare name.
                            Sound::File(p) if p.contains('/') => Some(PlayItem::File { path: p }),
                            Sound::File(p) => Some(PlayItem::File {
                                path: format!("{dir}/{p}"),
                            }),
                            Sound::BoxName(b) => box_name_item(boxes, tenant, &b),
                        })
                        .collect();
                    let cmd = anchor.play_cmd(items, true);
                    self.media(cmd);
                }
                Action::StopPlay => self.media(MediaCommand::StopPlay { endpoint: ep }),
                Action::Record { greeting, max_s } => self.media(MediaCommand::Record {
                    endpoint: ep,
                    id,
                    path: format!("{dir}/{}", apps::vmail::scratch_name(greeting)),
                    max_s,
                    silence_s: GREETING_SILENCE_S,
                    beep: true,
                }),
                Action::StopRecord => self.media(MediaCommand::StopRecord { endpoint: ep }),
                Action::Verify { mailbox, pin } => {
                    self.vm_op(
                        id,
                        VmOp::Verify {
                            tenant,
                            mailbox,
                            pin,
                        },
                    );
                }
                Action::Load { mailbox } => self.vm_op(id, VmOp::Load { tenant, mailbox }),
                Action::Save { id: msg } => self.vm_op(id, VmOp::Save { tenant, id: msg }),
                Action::Delete { id: msg } => self.vm_op(id, VmOp::Delete { tenant, id: msg }),
                Action::SetPin { mailbox, pin } => self.vm_op(
                    id,
                    VmOp::SetPin {
                        tenant,
                        mailbox,
                        pin,
                    },
                ),
                Action::KeepGreeting { greeting } => self.vm_op(
                    id,
                    VmOp::KeepGreeting {
                        tenant,
                        mailbox,
                        greeting,
                    },
                ),
                Action::CallBack { number } => {
                    anchor.clear_app();
                    return self.vm_call_back(id, tenant, owner.as_deref(), &number, now);
                }
                Action::Hangup => return self.anchored_hangup(id, "voicemail menu ended", now),
            }
        }
    }

    /// Dials the caller of a message through the dialplan, as the box owner would.
    fn vm_call_back(&mut self, id: u64, tenant: i64, owner: Option<&str>, number: &str, now: Now) {
        let decision = crate::dialplan::route(
            &RouteRequest {
                tenant,
                caller: owner.unwrap_or(""),
                digits: number,
                at: now.wall,
            },
            &self.snap,
        );
        match decision {
            Decision::Route { destination, .. } => {
                info!(call = id, %number, %destination, "voicemail call-back");
                self.app_goto(id, &destination.to_string(), now);
            }
            Decision::Outside { call, .. } => {
                // Out through the trunks as the box owner (limits and caller ID are theirs).
                if let Err((status, reason)) =
                    self.anchored_outside(id, call, owner.unwrap_or(""), now)
                {
                    warn!(call = id, %number, status, %reason, "call-back to an outside number refused");
                    self.unavailable(id, now);
                }
            }
            Decision::Feature { .. } => {
                debug!(call = id, %number, "call-back to a feature code refused");
                self.unavailable(id, now);
            }
            Decision::Reject { status, reason } => {
                debug!(call = id, %number, status, %reason, "call-back refused by the dialplan");
                self.unavailable(id, now);
            }
        }
    }
}
