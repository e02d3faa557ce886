//! Recording a prompt by phone inside call control (`record_prompt`, default `*77` + the
//! prompt's number): the caller is answered on a media endpoint and driven by
//! `apps::prompt_rec::PromptRecorder` (a sans-IO state machine); this module carries out what
//! it asks — prompts and the recording to play, the recording itself into a per-call scratch
//! file (`apps::prompt_files::scratch_rel_path`), keeping it as the tenant's replacement or
//! removing it ([`VmOp::KeepPrompt`], [`VmOp::DropPromptScratch`], done by the driver), and
//! hanging up.
//!
//! Only extensions named in the `prompts.recorders` setting may record; anyone else, and an
//! unknown prompt number, hears "that feature code is not valid" and is hung up on.

use std::collections::HashMap;

use apps::prompt_rec::{Action, PromptRecorder, Sound};
use tracing::{info, warn};

use crate::b2bua::{Entry, Origin};
use crate::config::ExtEntry;
use crate::feature_call::NOT_AVAILABLE_PROMPT;
use crate::media::{MediaCommand, PlayItem};
use crate::vm::VmOp;
use crate::{Engine, Now};

/// A caller recording a prompt.
#[derive(Debug)]
pub(crate) struct PromptRecSession {
    pub rec: PromptRecorder,
    /// The recording extension (kept with the prompt: "recorded by phone 1001").
    pub ext: String,
}

/// Most recordings whose end is awaited after their call ended (each normally waits only the
/// moment the media engine takes to close the file).
const MAX_ORPHANS: usize = 1024;

/// Recordings whose call ended while they ran, by call id: their scratch file is removed when
/// the recording's end arrives (the file is complete only then). At most [`MAX_ORPHANS`].
#[derive(Debug, Default)]
pub(crate) struct PromptRecState {
    orphans: HashMap<u64, String>,
}

/// Why a `record_prompt` call is refused (logged; the caller hears "not valid").
fn refusal(
    engine: &Engine,
    tenant: i64,
    caller: Option<&ExtEntry>,
    arg: &str,
) -> Result<&'static apps::prompt::Prompt, &'static str> {
    let Some(ext) = caller else {
        return Err("not from an extension");
    };
    let s = &engine.snap;
    if !s
        .tenants
        .listed(&s.settings.prompt_recorders, tenant, &ext.number)
    {
        return Err("extension not in prompts.recorders");
    }
    arg.parse::<u16>()
        .ok()
        .and_then(apps::prompt::by_number)
        .ok_or("no prompt has that number")
}

impl Engine {
    /// `*77` + number: answers a permitted extension into the recorder, anyone else with
    /// "not valid".
    pub(crate) fn record_prompt_call(
        &mut self,
        entry: Entry,
        o: Origin,
        arg: &str,
        caller: Option<ExtEntry>,
        now: Now,
    ) {
        match refusal(self, o.tenant, caller.as_ref(), arg) {
            Ok(p) => {
                let ext = caller.map(|c| c.number).unwrap_or_default();
                info!(tenant = o.tenant, %ext, prompt = p.id, number = p.number, "recording a prompt by phone");
                let s = PromptRecSession {
                    rec: PromptRecorder::new(p),
                    ext,
                };
                self.start_prompt_rec(entry, o, s, now);
            }
            Err(why) => {
                info!(tenant = o.tenant, caller = %o.caller, %arg, reason = why, "prompt recording by phone refused");
                self.start_announce(entry, o, vec![NOT_AVAILABLE_PROMPT.to_string()], now);
            }
        }
    }

    fn prompt_rec(&mut self, id: u64) -> Option<&mut PromptRecSession> {
        self.b2bua
            .get_mut(id)?
            .anchor
            .as_deref_mut()?
            .prompt_rec_mut()
    }

    /// Gives the call's recorder one event, then carries out what it asks.
    fn prompt_rec_event(&mut self, id: u64, now: Now, event: impl FnOnce(&mut PromptRecorder)) {
        if let Some(s) = self.prompt_rec(id) {
            event(&mut s.rec);
        }
        self.prompt_rec_run(id, now);
    }

    /// The caller was answered: the prompt as it is, then the instructions.
    pub(crate) fn prompt_rec_start(&mut self, id: u64, now: Now) {
        self.prompt_rec_event(id, now, |r| r.start(now.mono));
    }

    /// A key from the caller.
    pub(crate) fn prompt_rec_digit(&mut self, id: u64, digit: char, now: Now) {
        self.prompt_rec_event(id, now, |r| r.on_digit(digit, now.mono));
    }

    /// The current playback ended.
    pub(crate) fn prompt_rec_play_done(&mut self, id: u64, now: Now) {
        self.prompt_rec_event(id, now, |r| r.on_play_done(now.mono));
    }

    /// The review menu's deadline passed.
    pub(crate) fn prompt_rec_timeout(&mut self, id: u64, now: Now) {
        self.prompt_rec_event(id, now, |r| r.on_timeout(now.mono));
    }

    /// The recording of a live call ended.
    pub(crate) fn prompt_rec_recorded(&mut self, id: u64, duration_ms: u64, now: Now) {
        self.prompt_rec_event(id, now, |r| r.on_record_done(duration_ms, now.mono));
    }

    /// The answer to keeping the recording.
    pub(crate) fn prompt_rec_kept(&mut self, id: u64, answer: crate::vm::VmAnswer, now: Now) {
        let ok = match answer {
            crate::vm::VmAnswer::Done(Ok(())) => true,
            other => {
                info!(call = id, answer = ?other, "prompt recorded by phone not kept");
                false
            }
        };
        self.prompt_rec_event(id, now, |r| r.on_kept(ok, now.mono));
    }

    /// A recording ended, whether or not its call still exists: one whose call is gone is
    /// removed.
    pub(crate) fn prompt_rec_orphan_recorded(&mut self, rec: u64) {
        if let Some(path) = self.prompt_rec_state.orphans.remove(&rec) {
            info!(call = rec, %path, "prompt recording of a call that hung up: removed");
            self.vm_op(0, VmOp::DropPromptScratch { path });
        }
    }

    /// The call ended (hung up, or we hung up): nothing unkept stays behind.
    pub(crate) fn prompt_rec_call_ended(&mut self, id: u64, tenant: i64, s: &mut PromptRecSession) {
        let was_recording = s.rec.recording();
        s.rec.on_hangup();
        let path = apps::prompt_files::scratch_rel_path(tenant, id);
        while let Some(a) = s.rec.poll_action() {
            if a == Action::Discard {
                info!(
                    call = id,
                    prompt = s.rec.prompt_id(),
                    "prompt recording dropped: the call ended"
                );
                self.vm_op(0, VmOp::DropPromptScratch { path: path.clone() });
            }
        }
        if was_recording {
            if self.prompt_rec_state.orphans.len() >= MAX_ORPHANS {
                warn!(call = id, %path, "too many prompt recordings awaiting their end: this scratch file stays");
            } else {
                self.prompt_rec_state.orphans.insert(id, path);
            }
        }
    }

    /// Carries out what the recorder asked for.
    fn prompt_rec_run(&mut self, id: u64, now: Now) {
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
            let Some(s) = anchor.prompt_rec_mut() else {
                return;
            };
            let scratch = apps::prompt_files::scratch_rel_path(tenant, id);
            let Some(action) = s.rec.poll_action() else {
                let deadline = s.rec.deadline();
                if deadline != anchor.deadline() {
                    anchor.set_deadline(deadline);
                    if let Some(d) = deadline {
                        self.app_timers.insert((d, id));
                    }
                }
                return;
            };
            match action {
                Action::Play(sounds) => {
                    let items = sounds
                        .into_iter()
                        .map(|s| match s {
                            Sound::Prompt(p) => PlayItem::Prompt {
                                id: p,
                                tenant,
                                lang: lang.clone(),
                            },
                            Sound::Recording => PlayItem::File {
                                path: scratch.clone(),
                            },
                        })
                        .collect();
                    let cmd = anchor.play_cmd(items, true);
                    self.media(cmd);
                }
                Action::Record { max_s, silence_s } => self.media(MediaCommand::Record {
                    endpoint: ep,
                    id,
                    path: scratch,
                    max_s,
                    silence_s,
                    beep: true,
                }),
                Action::StopRecord => self.media(MediaCommand::StopRecord { endpoint: ep }),
                Action::Keep => {
                    let op = VmOp::KeepPrompt {
                        tenant,
                        lang,
                        id: s.rec.prompt_id().to_string(),
                        scratch,
                        by: s.ext.clone(),
                    };
                    info!(call = id, tenant, prompt = s.rec.prompt_id(), ext = %s.ext, "prompt recorded by phone: keeping it");
                    // Answered to this call ([`Engine::prompt_rec_kept`]).
                    self.vm_op(id, op);
                }
                Action::Discard => self.vm_op(0, VmOp::DropPromptScratch { path: scratch }),
                Action::Hangup => return self.anchored_hangup(id, "prompt recording ended", now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Tenants;

    #[test]
    fn recorders_are_named_per_tenant() {
        let mut t = Tenants {
            default_id: 1,
            ..Default::default()
        };
        t.by_domain.insert("b.example".into(), 2);
        let list: Vec<String> = vec!["1001".into(), "2002@B.example".into()];
        assert!(t.listed(&list, 1, "1001"));
        assert!(
            !t.listed(&list, 2, "1001"),
            "a bare number is the default tenant's"
        );
        assert!(t.listed(&list, 2, "2002"));
        assert!(!t.listed(&list, 1, "2002"));
        assert!(!t.listed(&list, 1, "100"));
        assert!(!t.listed(&[], 1, "1001"), "nobody by default");
    }

    #[test]
    fn the_setting_is_read_as_a_list_even_when_it_looks_like_a_number() {
        use crate::settings::keys::PROMPTS_RECORDERS;
        let read = |v: &'static str| {
            crate::config::Settings::from_values(|k| (k == PROMPTS_RECORDERS).then(|| v.into()))
                .prompt_recorders
        };
        assert_eq!(read("1001"), ["1001"]);
        assert_eq!(read("1001,2002@b.example,"), ["1001", "2002@b.example"]);
        assert!(read("").is_empty());
        assert!(
            read("10 01").is_empty(),
            "an invalid value is the default: nobody"
        );
        assert!(
            crate::config::Settings::from_values(|_| None)
                .prompt_recorders
                .is_empty()
        );
    }
}
