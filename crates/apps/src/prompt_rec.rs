//! Recording a prompt from a phone (`record_prompt`, default `*77` + the prompt's number): a
//! sans-IO state machine in the shape of the voicemail greeting recording
//! ([`crate::vmail::Retrieval`]).
//!
//! The caller hears the prompt as it plays today, then "record after the tone, then press the
//! pound key"; a beep; the recording (at most [`MAX_RECORD_S`] seconds, ended by `#` or
//! [`SILENCE_S`] seconds of silence); the recording played back, then "1 keep, 2 record again,
//! `*` cancel". Keeping asks the engine to store the recording as the tenant's replacement
//! ([`Action::Keep`]); every other way out (cancel, no answer, hang-up) asks it to remove the
//! scratch file ([`Action::Discard`]).
//!
//! Who may record, and which number names which prompt ([`crate::prompt::by_number`]), is
//! decided before the caller reaches this machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::prompt::Prompt;

/// Longest recording, seconds.
pub const MAX_RECORD_S: u32 = 60;
/// Silence that ends a recording, seconds.
pub const SILENCE_S: u32 = 3;
/// A recording shorter than this is not offered for keeping, milliseconds.
pub const MIN_RECORD_MS: u64 = 500;
/// Seconds the review menu waits for a key once it has been said.
pub const REVIEW_TIMEOUT_S: u64 = 6;
/// Unanswered review menus before the call ends (nothing kept).
pub const MAX_TIMEOUTS: u32 = 3;

/// Prompt ids this machine plays.
pub mod prompts {
    /// "Record after the tone, then press the pound key."
    pub const RECORD: &str = "vm-greeting-record";
    /// "To keep this recording, press 1. To record it again, press 2. To cancel, press star."
    pub const REVIEW: &str = "prompt-review";
    /// "The new prompt has been saved."
    pub const SAVED: &str = "prompt-saved";
    /// "The recording could not be saved."
    pub const NOT_SAVED: &str = "prompt-not-saved";
    /// "Your recording was too short and was not kept."
    pub const TOO_SHORT: &str = "vm-too-short";
    /// "That is not a valid option."
    pub const INVALID: &str = "ivr-invalid";
    /// "Goodbye."
    pub const GOODBYE: &str = "goodbye";
}

/// Something to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sound {
    /// A catalogue prompt (the tenant's replacement if it has one).
    Prompt(String),
    /// The recording just made (the engine's scratch file).
    Recording,
}

/// What the machine asks the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these in order (a key stops the playback); ends with
    /// [`PromptRecorder::on_play_done`].
    Play(Vec<Sound>),
    /// Record the caller after a beep into the scratch file; ends with
    /// [`PromptRecorder::on_record_done`].
    Record {
        /// Longest recording, seconds.
        max_s: u32,
        /// Silence that ends it, seconds.
        silence_s: u32,
    },
    /// Stop the recording (`#`, or `*` to cancel).
    StopRecord,
    /// Store the scratch file as the tenant's replacement of the prompt (the scratch file
    /// goes either way); answer with [`PromptRecorder::on_kept`].
    Keep,
    /// Remove the scratch file (nothing is kept).
    Discard,
    /// Hang up.
    Hangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The prompt as it is, then "record after the tone" (or just the latter on a re-record).
    Intro,
    /// The recording runs; `cancel` once `*` asked to throw it away.
    Recording { cancel: bool },
    /// The recording played back, then the keep / again / cancel menu.
    Review,
    /// Waiting for the answer to [`Action::Keep`].
    Saving,
    /// A last prompt, then [`PromptRecorder::then`].
    Leaving,
    /// Finished (or hung up).
    Done,
}

/// One caller recording one prompt.
#[derive(Debug)]
pub struct PromptRecorder {
    id: &'static str,
    state: State,
    actions: VecDeque<Action>,
    deadline: Option<Instant>,
    timeouts: u32,
    then: Option<Action>,
    /// A scratch file may exist (a recording was started and not yet kept or discarded).
    scratch: bool,
}

fn prompt(id: &str) -> Sound {
    Sound::Prompt(id.to_string())
}

impl PromptRecorder {
    /// A caller about to record `target`.
    pub fn new(target: &'static Prompt) -> PromptRecorder {
        PromptRecorder {
            id: target.id,
            state: State::Intro,
            actions: VecDeque::new(),
            deadline: None,
            timeouts: 0,
            then: None,
            scratch: false,
        }
    }

    /// The prompt being recorded.
    pub fn prompt_id(&self) -> &'static str {
        self.id
    }

    /// The caller is answered: the prompt as it is today, then the instructions.
    pub fn start(&mut self, _now: Instant) {
        self.state = State::Intro;
        self.actions
            .push_back(Action::Play(vec![prompt(self.id), prompt(prompts::RECORD)]));
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`PromptRecorder::on_timeout`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// True while a recording runs (its end, [`Action::Record`]'s answer, is still to come).
    pub fn recording(&self) -> bool {
        matches!(self.state, State::Recording { .. })
    }

    /// True once the machine has finished.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn leave(&mut self, sounds: Vec<Sound>, then: Action) {
        self.state = State::Leaving;
        self.deadline = None;
        self.then = Some(then);
        self.actions.push_back(Action::Play(sounds));
    }

    fn discard(&mut self) {
        if self.scratch {
            self.scratch = false;
            self.actions.push_back(Action::Discard);
        }
    }

    fn cancel(&mut self) {
        self.discard();
        self.leave(vec![prompt(prompts::GOODBYE)], Action::Hangup);
    }

    fn record_again(&mut self, first: Option<&str>) {
        self.state = State::Intro;
        self.deadline = None;
        let mut s: Vec<Sound> = first.into_iter().map(prompt).collect();
        s.push(prompt(prompts::RECORD));
        self.actions.push_back(Action::Play(s));
    }

    /// A playback ended (or was stopped by a key).
    pub fn on_play_done(&mut self, now: Instant) {
        match self.state {
            State::Intro => {
                self.state = State::Recording { cancel: false };
                self.scratch = true;
                self.actions.push_back(Action::Record {
                    max_s: MAX_RECORD_S,
                    silence_s: SILENCE_S,
                });
            }
            State::Review => {
                self.deadline = Some(now + Duration::from_secs(REVIEW_TIMEOUT_S));
            }
            State::Leaving => {
                self.state = State::Done;
                if let Some(a) = self.then.take() {
                    self.actions.push_back(a);
                }
            }
            State::Recording { .. } | State::Saving | State::Done => {}
        }
    }

    /// A key from the caller (`0`-`9`, `*`, `#`).
    pub fn on_digit(&mut self, digit: char, _now: Instant) {
        match self.state {
            // Any other key skips to the beep (the playback stops on it).
            State::Intro if digit == '*' => self.cancel(),
            State::Intro => {}
            State::Recording { cancel: false } if digit == '#' || digit == '*' => {
                self.state = State::Recording {
                    cancel: digit == '*',
                };
                self.actions.push_back(Action::StopRecord);
            }
            State::Review => {
                self.deadline = None;
                self.timeouts = 0;
                match digit {
                    '1' => {
                        self.scratch = false;
                        self.state = State::Saving;
                        self.actions.push_back(Action::Keep);
                    }
                    '2' => {
                        self.discard();
                        self.record_again(None);
                    }
                    '*' => self.cancel(),
                    _ => self.actions.push_back(Action::Play(vec![
                        prompt(prompts::INVALID),
                        prompt(prompts::REVIEW),
                    ])),
                }
            }
            State::Recording { .. } | State::Saving | State::Leaving | State::Done => {}
        }
    }

    /// The answer to [`Action::Keep`]: stored ("saved", goodbye), or refused (a silent or
    /// unreadable recording: "could not be saved", then record again).
    pub fn on_kept(&mut self, ok: bool, _now: Instant) {
        if self.state != State::Saving {
            return;
        }
        if ok {
            self.leave(
                vec![prompt(prompts::SAVED), prompt(prompts::GOODBYE)],
                Action::Hangup,
            );
        } else {
            self.record_again(Some(prompts::NOT_SAVED));
        }
    }

    /// The recording ended (`#`, silence, the maximum length or an error); `duration_ms` of
    /// audio was written.
    pub fn on_record_done(&mut self, duration_ms: u64, _now: Instant) {
        let State::Recording { cancel } = self.state else {
            return;
        };
        if cancel {
            return self.cancel();
        }
        if duration_ms < MIN_RECORD_MS {
            self.discard();
            return self.record_again(Some(prompts::TOO_SHORT));
        }
        self.state = State::Review;
        self.actions.push_back(Action::Play(vec![
            Sound::Recording,
            prompt(prompts::REVIEW),
        ]));
    }

    /// The deadline passed.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        if self.state != State::Review {
            return;
        }
        self.timeouts += 1;
        if self.timeouts >= MAX_TIMEOUTS {
            return self.cancel();
        }
        self.actions
            .push_back(Action::Play(vec![prompt(prompts::REVIEW)]));
    }

    /// The caller hung up: whatever was recorded goes ([`Action::Discard`]; when
    /// [`PromptRecorder::recording`] was true, the engine discards again once the recording's
    /// end arrives, as the file is only complete then).
    pub fn on_hangup(&mut self) {
        self.deadline = None;
        self.then = None;
        self.actions.clear();
        self.discard();
        self.state = State::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> &'static Prompt {
        crate::prompt::get("ivr-welcome").expect("catalogue")
    }

    fn drain(r: &mut PromptRecorder) -> Vec<Action> {
        std::iter::from_fn(|| r.poll_action()).collect()
    }

    fn p(id: &str) -> Sound {
        Sound::Prompt(id.to_string())
    }

    /// Started, intro played: the recording runs.
    fn recording(t0: Instant) -> PromptRecorder {
        let mut r = PromptRecorder::new(target());
        r.start(t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Play(vec![p("ivr-welcome"), p(prompts::RECORD)])]
        );
        r.on_play_done(t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Record {
                max_s: 60,
                silence_s: 3
            }]
        );
        assert!(r.recording());
        r
    }

    /// Recorded 2 s and ended with '#': the review plays.
    fn reviewing(t0: Instant) -> PromptRecorder {
        let mut r = recording(t0);
        r.on_digit('#', t0);
        assert_eq!(drain(&mut r), vec![Action::StopRecord]);
        r.on_record_done(2000, t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Play(vec![Sound::Recording, p(prompts::REVIEW)])]
        );
        r
    }

    #[test]
    fn every_prompt_used_is_in_the_catalogue() {
        use prompts::*;
        for id in [
            RECORD, REVIEW, SAVED, NOT_SAVED, TOO_SHORT, INVALID, GOODBYE,
        ] {
            assert!(crate::prompt::get(id).is_some(), "{id}");
        }
    }

    #[test]
    fn keep_stores_it_says_so_and_hangs_up() {
        let t0 = Instant::now();
        let mut r = reviewing(t0);
        r.on_play_done(t0);
        assert_eq!(
            r.deadline(),
            Some(t0 + Duration::from_secs(REVIEW_TIMEOUT_S))
        );
        r.on_digit('1', t0);
        assert_eq!(drain(&mut r), vec![Action::Keep]);
        assert_eq!(r.deadline(), None);
        // Keys while it is stored do nothing.
        r.on_digit('2', t0);
        assert_eq!(drain(&mut r), vec![]);
        r.on_kept(true, t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Play(vec![p(prompts::SAVED), p(prompts::GOODBYE)])]
        );
        r.on_play_done(t0);
        assert_eq!(drain(&mut r), vec![Action::Hangup]);
        assert!(r.is_done());
        // A late hang-up does not throw the kept prompt away.
        r.on_hangup();
        assert_eq!(drain(&mut r), vec![]);
    }

    #[test]
    fn record_again_discards_the_first_take() {
        let t0 = Instant::now();
        let mut r = reviewing(t0);
        r.on_digit('2', t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Discard, Action::Play(vec![p(prompts::RECORD)])]
        );
        r.on_play_done(t0);
        assert!(matches!(drain(&mut r)[..], [Action::Record { .. }]));
        // Silence ended the second take.
        r.on_record_done(1500, t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Play(vec![Sound::Recording, p(prompts::REVIEW)])]
        );
        r.on_digit('9', t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Play(vec![p(prompts::INVALID), p(prompts::REVIEW)])]
        );
        r.on_digit('1', t0);
        assert_eq!(drain(&mut r), vec![Action::Keep]);
        // Refused (silent, say): said so, and recorded again.
        r.on_kept(false, t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Play(vec![
                p(prompts::NOT_SAVED),
                p(prompts::RECORD)
            ])]
        );
        r.on_play_done(t0);
        assert!(matches!(drain(&mut r)[..], [Action::Record { .. }]));
    }

    #[test]
    fn cancel_keeps_nothing() {
        let t0 = Instant::now();
        // From the review.
        let mut r = reviewing(t0);
        r.on_digit('*', t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Discard, Action::Play(vec![p(prompts::GOODBYE)])]
        );
        r.on_play_done(t0);
        assert_eq!(drain(&mut r), vec![Action::Hangup]);

        // While recording: the recording stops, then goes.
        let mut r = recording(t0);
        r.on_digit('*', t0);
        assert_eq!(drain(&mut r), vec![Action::StopRecord]);
        r.on_record_done(4000, t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Discard, Action::Play(vec![p(prompts::GOODBYE)])]
        );

        // During the introduction: nothing was recorded, nothing to discard.
        let mut r = PromptRecorder::new(target());
        r.start(t0);
        drain(&mut r);
        r.on_digit('*', t0);
        assert_eq!(drain(&mut r), vec![Action::Play(vec![p(prompts::GOODBYE)])]);
    }

    #[test]
    fn too_short_records_again() {
        let t0 = Instant::now();
        let mut r = recording(t0);
        r.on_record_done(200, t0);
        assert_eq!(
            drain(&mut r),
            vec![
                Action::Discard,
                Action::Play(vec![p(prompts::TOO_SHORT), p(prompts::RECORD)])
            ]
        );
        r.on_play_done(t0);
        assert!(matches!(drain(&mut r)[..], [Action::Record { .. }]));
    }

    #[test]
    fn unanswered_review_repeats_then_ends_without_keeping() {
        let t0 = Instant::now();
        let mut r = reviewing(t0);
        let mut now = t0;
        for _ in 1..MAX_TIMEOUTS {
            r.on_play_done(now);
            let due = now + Duration::from_secs(REVIEW_TIMEOUT_S);
            // Not yet.
            r.on_timeout(due - Duration::from_millis(1));
            assert_eq!(drain(&mut r), vec![]);
            r.on_timeout(due);
            assert_eq!(drain(&mut r), vec![Action::Play(vec![p(prompts::REVIEW)])]);
            now = due;
        }
        r.on_play_done(now);
        r.on_timeout(now + Duration::from_secs(REVIEW_TIMEOUT_S));
        assert_eq!(
            drain(&mut r),
            vec![Action::Discard, Action::Play(vec![p(prompts::GOODBYE)])]
        );
        r.on_play_done(now);
        assert_eq!(drain(&mut r), vec![Action::Hangup]);
    }

    #[test]
    fn hang_up_mid_recording_discards() {
        let t0 = Instant::now();
        let mut r = recording(t0);
        r.on_hangup();
        assert_eq!(drain(&mut r), vec![Action::Discard]);
        assert!(r.is_done());
        // The recording's end arriving afterwards keeps nothing.
        r.on_record_done(5000, t0);
        r.on_digit('1', t0);
        assert_eq!(drain(&mut r), vec![]);

        // Hung up before any recording: nothing to discard.
        let mut r = PromptRecorder::new(target());
        r.start(t0);
        drain(&mut r);
        r.on_hangup();
        assert_eq!(drain(&mut r), vec![]);
    }
}
