//! Voicemail retrieval by phone: the owner's feature code (`*97`) or the main voicemail number
//! (`*98`, which asks for the mailbox first), the PIN, "you have N new messages", then menus to
//! listen, repeat, go back and forth, save, delete and call back, record greetings and change
//! the PIN.
//!
//! [`Retrieval`] is a sans-IO state machine like [`crate::ivr::Ivr`]: the engine feeds it digits,
//! the end of each playback and recording, its deadline and the answers to the database work it
//! asked for ([`Action::Verify`], [`Action::Load`], [`Action::SetPin`]); it drains
//! [`Retrieval::poll_action`] after each call and re-arms its timer from
//! [`Retrieval::deadline`]. Nothing here touches files, the database or the clock.
//!
//! Keys (the prompts of the catalogue say them): main menu `1` new messages, `2` saved messages,
//! `3` greetings, `4` PIN, `*` goodbye. While a message plays: `4` previous, `5` repeat, `6` next,
//! `7` delete, `8` call back, `9` save, `*` main menu. Greetings: `1` unavailable, `2` busy,
//! `3` name, then record, `#` ends the recording, `1` keeps it, `2` records again, `*` back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::prompt::Lang;

/// Prompt ids the retrieval menus play (all in [`crate::prompt::CATALOGUE`]).
pub mod prompts {
    /// "Please enter your mailbox number, followed by the pound key."
    pub const ENTER_MAILBOX: &str = "vm-enter-mailbox";
    /// "Please enter your PIN, followed by the pound key."
    pub const ENTER_PIN: &str = "vm-enter-pin";
    /// "That mailbox number or PIN is not correct."
    pub const WRONG_PIN: &str = "vm-wrong-pin";
    /// "This mailbox has no PIN yet …"
    pub const NO_PIN: &str = "vm-no-pin";
    /// "Too many wrong PINs: this mailbox is locked for a while."
    pub const LOCKED: &str = "vm-locked";
    /// Main menu, one prompt per option.
    pub const MAIN_MENU: [&str; 5] = [
        "vm-menu-new",
        "vm-menu-saved",
        "vm-menu-greetings",
        "vm-menu-pin",
        "vm-menu-exit",
    ];
    /// Options after a message.
    pub const MESSAGE_MENU: [&str; 7] = [
        "vm-opt-repeat",
        "vm-opt-next",
        "vm-opt-previous",
        "vm-opt-delete",
        "vm-opt-callback",
        "vm-opt-save",
        "vm-opt-main-menu",
    ];
    /// Greetings menu.
    pub const GREETING_MENU: [&str; 4] = [
        "vm-greeting-menu-unavailable",
        "vm-greeting-menu-busy",
        "vm-greeting-menu-name",
        "vm-opt-main-menu",
    ];
    /// "Record after the tone, then press the pound key."
    pub const GREETING_RECORD: &str = "vm-greeting-record";
    /// "To keep it, press 1. To record again, press 2."
    pub const GREETING_REVIEW: &str = "vm-greeting-review";
    /// "Your greeting has been saved."
    pub const GREETING_SAVED: &str = "vm-greeting-saved";
    /// "First message."
    pub const FIRST: &str = "vm-first-message";
    /// "Next message."
    pub const NEXT: &str = "vm-next-message";
    /// "Received at"
    pub const RECEIVED_AT: &str = "vm-received-at";
    /// "From"
    pub const FROM: &str = "vm-from-number";
    /// "The caller's number was not given."
    pub const NO_CALLER_ID: &str = "vm-no-caller-id";
    /// "Message saved."
    pub const SAVED: &str = "vm-message-saved";
    /// "Message deleted."
    pub const DELETED: &str = "vm-message-deleted";
    /// "There are no more messages."
    pub const NO_MORE: &str = "vm-no-more-messages";
    /// "Calling back."
    pub const CALLING_BACK: &str = "vm-calling-back";
    /// "Please enter your new PIN, followed by the pound key."
    pub const PIN_NEW: &str = "vm-pin-new";
    /// "Please enter the new PIN again."
    pub const PIN_AGAIN: &str = "vm-pin-again";
    /// "Your PIN has been changed."
    pub const PIN_CHANGED: &str = "vm-pin-changed";
    /// "The two PINs did not match."
    pub const PIN_MISMATCH: &str = "vm-pin-mismatch";
    /// "That PIN cannot be used. Please choose another."
    pub const PIN_REJECTED: &str = "vm-pin-rejected";
    /// "That is not a valid option."
    pub const INVALID: &str = "ivr-invalid";
    /// "That message was too short." (a greeting under half a second)
    pub const TOO_SHORT: &str = "vm-too-short";
    /// "Goodbye."
    pub const GOODBYE: &str = "goodbye";
}

/// A mailbox's settings (stored as JSON; every field has a default so older documents load).
/// The PIN is not here: it is stored hashed beside it, and a box has none until one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoxSpec {
    /// Callers may leave messages (`vm:EXT` answers).
    pub enabled: bool,
    /// Where new messages are mailed (empty: not mailed).
    pub email: String,
    /// Attach the WAV to the e-mail.
    pub attach: bool,
    /// Delete the message once mailed.
    pub delete_after_mail: bool,
    /// Longest message, seconds.
    pub max_message_s: u32,
    /// The owner's own phones enter without the PIN (the box must still have one).
    pub skip_pin_own_phone: bool,
    /// The owner recorded (or uploaded) an unavailable greeting.
    pub greeting_unavailable: bool,
    /// The owner recorded a busy greeting.
    pub greeting_busy: bool,
    /// The owner recorded their name.
    pub greeting_name: bool,
}

impl Default for BoxSpec {
    fn default() -> Self {
        BoxSpec {
            enabled: true,
            email: String::new(),
            attach: true,
            delete_after_mail: false,
            max_message_s: 180,
            skip_pin_own_phone: false,
            greeting_unavailable: false,
            greeting_busy: false,
            greeting_name: false,
        }
    }
}

/// Why mailbox settings were refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl BoxSpec {
    /// Checks ranges and the e-mail address's shape.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(10..=600).contains(&self.max_message_s) {
            return Err(SpecError {
                field: "max_message_s",
                reason: "must be 10-600 seconds".into(),
            });
        }
        let e = &self.email;
        if !e.is_empty() {
            let ok = e.len() <= 254
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
                && e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
            if !ok {
                return Err(SpecError {
                    field: "email",
                    reason: format!("{e:?} is not an e-mail address"),
                });
            }
        }
        if self.delete_after_mail && e.is_empty() {
            return Err(SpecError {
                field: "delete_after_mail",
                reason: "needs an e-mail address (messages would be lost)".into(),
            });
        }
        Ok(())
    }

    /// Whether the owner has a greeting of this kind.
    pub fn has_greeting(&self, g: Greeting) -> bool {
        match g {
            Greeting::Unavailable => self.greeting_unavailable,
            Greeting::Busy => self.greeting_busy,
            Greeting::Name => self.greeting_name,
        }
    }

    /// Records whether the owner has a greeting of this kind.
    pub fn set_greeting(&mut self, g: Greeting, present: bool) {
        match g {
            Greeting::Unavailable => self.greeting_unavailable = present,
            Greeting::Busy => self.greeting_busy = present,
            Greeting::Name => self.greeting_name = present,
        }
    }
}

/// Wrong PINs in one call before "goodbye".
pub const MAX_PIN_TRIES: u32 = 3;
/// Silent menus (no key pressed) before "goodbye".
pub const MAX_TIMEOUTS: u32 = 3;
/// Seconds to wait for a key after a menu ends.
pub const MENU_TIMEOUT_S: u64 = 6;
/// Seconds to wait for the next digit of a number or PIN.
pub const DIGIT_TIMEOUT_S: u64 = 5;
/// Longest greeting, seconds.
pub const MAX_GREETING_S: u32 = 60;
/// Most digits in a mailbox number or PIN.
pub const MAX_DIGITS: usize = 16;

/// Which of the box's greetings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Greeting {
    /// Played when the owner does not answer (or is not registered).
    Unavailable,
    /// Played when the owner is on another call.
    Busy,
    /// The owner's recorded name (spoken in the default greetings).
    Name,
}

impl Greeting {
    /// Every greeting, in menu order.
    pub const ALL: [Greeting; 3] = [Greeting::Unavailable, Greeting::Busy, Greeting::Name];

    /// The name used in file names and the API (`unavailable`, `busy`, `name`).
    pub fn as_str(self) -> &'static str {
        match self {
            Greeting::Unavailable => "unavailable",
            Greeting::Busy => "busy",
            Greeting::Name => "name",
        }
    }

    /// Parses [`Greeting::as_str`].
    pub fn parse(s: &str) -> Option<Greeting> {
        Greeting::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A message folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Not listened to yet.
    New,
    /// Listened to and kept.
    Saved,
}

impl Folder {
    /// The stored name (`new`, `saved`).
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Saved => "saved",
        }
    }

    /// Parses [`Folder::as_str`].
    pub fn parse(s: &str) -> Option<Folder> {
        match s {
            "new" => Some(Folder::New),
            "saved" => Some(Folder::Saved),
            _ => None,
        }
    }
}

/// One message as the menus need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id in the message index.
    pub id: i64,
    /// Its folder.
    pub folder: Folder,
    /// The caller's number (empty: not given).
    pub caller: String,
    /// Local time it was left: hour (0-23) and minute.
    pub at: (u8, u8),
    /// The audio, relative to the data directory.
    pub path: String,
}

/// Something the menus play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sound {
    /// A prompt by id.
    Prompt(String),
    /// A message's or a fresh recording's audio file (relative to the data directory).
    File(String),
    /// The name greeting recorded for this mailbox, when it has one (else nothing): confirms
    /// the box a caller of the main voicemail number typed.
    BoxName(String),
}

/// The answer to [`Action::Verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The PIN is right (or the owner's phone may skip it).
    Ok,
    /// Wrong PIN, or no such mailbox (the caller is not told which).
    Wrong,
    /// The mailbox has no PIN: it cannot be entered by phone until one is set.
    NoPin,
    /// Too many wrong PINs recently: locked for a while.
    Locked,
}

/// What the menus want done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these, in order; a key stops them. Ends with [`Retrieval::on_play_done`].
    Play(Vec<Sound>),
    /// Stop what plays (a key was pressed).
    StopPlay,
    /// Check `pin` for `mailbox` (`None`: the owner's own phone, which may skip the PIN — the
    /// box must still have one); answer with [`Retrieval::on_verdict`]. Failures count towards
    /// the box's lockout.
    Verify {
        /// Mailbox (extension number).
        mailbox: String,
        /// Digits entered.
        pin: Option<String>,
    },
    /// Load the box's messages; answer with [`Retrieval::on_messages`].
    Load {
        /// Mailbox.
        mailbox: String,
    },
    /// Move a message to the saved folder (fire and forget; counts follow from the index).
    Save {
        /// Message id.
        id: i64,
    },
    /// Delete a message and its file.
    Delete {
        /// Message id.
        id: i64,
    },
    /// Record a greeting (after a beep) into a scratch file; ends with
    /// [`Retrieval::on_record_done`] (`#` stops it: the engine stops the recording).
    Record {
        /// Which greeting.
        greeting: Greeting,
        /// Longest, seconds.
        max_s: u32,
    },
    /// Stop the recording in progress.
    StopRecord,
    /// The reviewed scratch recording becomes the box's `greeting` (see [`scratch_name`]).
    KeepGreeting {
        /// Which greeting the scratch file becomes.
        greeting: Greeting,
    },
    /// Store a new PIN (hashed by the store); answer with [`Retrieval::on_pin_set`].
    SetPin {
        /// Mailbox.
        mailbox: String,
        /// The new PIN.
        pin: String,
    },
    /// Call the caller of a message back (through the dialplan as the box owner).
    CallBack {
        /// The number to dial.
        number: String,
    },
    /// End the call.
    Hangup,
}

/// How the caller came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The owner's feature code from one of the owner's phones.
    Own {
        /// Mailbox (the caller's extension).
        mailbox: String,
        /// Ask the PIN anyway (the box's setting "skip PIN from own phone" off).
        ask_pin: bool,
    },
    /// The main voicemail number: asks for the box first.
    Main,
}

/// Where the menus are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Collecting the mailbox number.
    Mailbox,
    /// Collecting the PIN.
    Pin,
    /// Waiting for the PIN check.
    Verifying,
    /// Waiting for the message list.
    Loading,
    /// In the main menu.
    Main,
    /// In a folder, at message `idx`.
    Listening { folder: Folder, idx: usize },
    /// Choosing which greeting.
    GreetMenu,
    /// Recording a greeting (`true` once the recording runs, after its prompt).
    Recording(Greeting, bool),
    /// Reviewing it: `1` keep, `2` again.
    Review(Greeting),
    /// Entering a new PIN.
    PinNew,
    /// Entering it again.
    PinAgain(String),
    /// Waiting for the PIN to be stored.
    PinSaving,
    /// Saying the last prompt, then hanging up (or calling back).
    Leaving,
    /// Finished.
    Done,
}

/// Does a menu want digits collected up to `#`?
fn collects(s: &State) -> bool {
    matches!(
        s,
        State::Mailbox | State::Pin | State::PinNew | State::PinAgain(_)
    )
}

/// One caller in the voicemail menus.
#[derive(Debug)]
pub struct Retrieval {
    state: State,
    lang: Lang,
    /// The caller typed the box number (main voicemail number).
    entered_mailbox: bool,
    mailbox: String,
    digits: String,
    pin_tries: u32,
    timeouts: u32,
    /// The current menu's prompt has finished (keys now wait on the deadline).
    menu_ended: bool,
    deadline: Option<Instant>,
    messages: Vec<Message>,
    actions: VecDeque<Action>,
    /// What to do once the leaving prompt ends.
    then: Option<Action>,
}

fn prompt(id: &str) -> Sound {
    Sound::Prompt(id.to_string())
}

fn prompts_of(ids: &[&str]) -> Vec<Sound> {
    ids.iter().map(|i| prompt(i)).collect()
}

impl Retrieval {
    /// A caller entering the menus.
    pub fn new(entry: Entry, lang: Lang) -> Retrieval {
        let (state, mailbox) = match entry {
            Entry::Own { mailbox, ask_pin } => (
                if ask_pin {
                    State::Pin
                } else {
                    State::Verifying
                },
                mailbox,
            ),
            Entry::Main => (State::Mailbox, String::new()),
        };
        Retrieval {
            state,
            lang,
            entered_mailbox: false,
            mailbox,
            digits: String::new(),
            pin_tries: 0,
            timeouts: 0,
            menu_ended: false,
            deadline: None,
            messages: Vec::new(),
            actions: VecDeque::new(),
            then: None,
        }
    }

    /// Starts: asks for the box or the PIN (or checks the owner's phone straight away).
    pub fn start(&mut self, _now: Instant) {
        match self.state {
            State::Mailbox => self.ask(vec![prompt(prompts::ENTER_MAILBOX)]),
            State::Pin => self.ask(vec![prompt(prompts::ENTER_PIN)]),
            _ => self.actions.push_back(Action::Verify {
                mailbox: self.mailbox.clone(),
                pin: None,
            }),
        }
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Retrieval::on_timeout`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The mailbox, once known.
    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    /// True once the caller has been let in (PIN accepted).
    pub fn is_in(&self) -> bool {
        !matches!(
            self.state,
            State::Mailbox | State::Pin | State::Verifying | State::Leaving | State::Done
        ) || self.then.is_some()
    }

    /// True once finished.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// New and saved counts of the loaded list.
    pub fn counts(&self) -> (u64, u64) {
        let new = self
            .messages
            .iter()
            .filter(|m| m.folder == Folder::New)
            .count() as u64;
        (new, self.messages.len() as u64 - new)
    }

    fn ask(&mut self, sounds: Vec<Sound>) {
        self.digits.clear();
        self.menu_ended = false;
        self.deadline = None;
        self.actions.push_back(Action::Play(sounds));
    }

    fn leave(&mut self, sounds: Vec<Sound>, then: Action) {
        self.state = State::Leaving;
        self.deadline = None;
        self.then = Some(then);
        self.actions.push_back(Action::Play(sounds));
    }

    fn goodbye(&mut self, first: Option<&str>) {
        let mut s: Vec<Sound> = first.into_iter().map(prompt).collect();
        s.push(prompt(prompts::GOODBYE));
        self.leave(s, Action::Hangup);
    }

    /// A playback ended (or was stopped).
    pub fn on_play_done(&mut self, now: Instant) {
        match self.state {
            State::Leaving => {
                self.state = State::Done;
                if let Some(a) = self.then.take() {
                    self.actions.push_back(a);
                }
            }
            State::Recording(g, false) => {
                self.state = State::Recording(g, true);
                self.actions.push_back(Action::Record {
                    greeting: g,
                    max_s: MAX_GREETING_S,
                });
            }
            State::Verifying
            | State::Loading
            | State::PinSaving
            | State::Done
            | State::Recording(_, true) => {}
            _ => {
                self.menu_ended = true;
                let s = if collects(&self.state) && !self.digits.is_empty() {
                    DIGIT_TIMEOUT_S
                } else {
                    MENU_TIMEOUT_S
                };
                self.deadline = Some(now + Duration::from_secs(s));
            }
        }
    }

    /// The deadline passed.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        if collects(&self.state) && !self.digits.is_empty() {
            // The caller stopped typing without '#': take what was typed.
            return self.entered(now);
        }
        self.timeouts += 1;
        if self.timeouts >= MAX_TIMEOUTS {
            return self.goodbye(None);
        }
        self.replay_menu(None);
    }

    /// A key from the caller (`0`-`9`, `*`, `#`).
    pub fn on_digit(&mut self, digit: char, now: Instant) {
        if !(digit.is_ascii_digit() || digit == '*' || digit == '#') {
            return;
        }
        match self.state {
            State::Verifying | State::Loading | State::PinSaving | State::Leaving | State::Done => {
                return;
            }
            State::Recording(_, started) => {
                if digit == '#' && started {
                    self.actions.push_back(Action::StopRecord);
                }
                return;
            }
            _ => {}
        }
        if !self.menu_ended {
            self.actions.push_back(Action::StopPlay);
            self.menu_ended = true;
        }
        self.timeouts = 0;
        if collects(&self.state) {
            if digit == '#' {
                return self.entered(now);
            }
            if digit == '*' && self.state == State::Mailbox {
                return self.goodbye(None);
            }
            if self.digits.len() >= MAX_DIGITS {
                return self.entered(now);
            }
            self.digits.push(digit);
            self.deadline = Some(now + Duration::from_secs(DIGIT_TIMEOUT_S));
            return;
        }
        self.deadline = None;
        self.key(digit);
    }

    /// A number or PIN was entered (`#` or a pause).
    fn entered(&mut self, _now: Instant) {
        let d = std::mem::take(&mut self.digits);
        self.deadline = None;
        match std::mem::replace(&mut self.state, State::Verifying) {
            State::Mailbox => {
                if d.is_empty() {
                    self.state = State::Mailbox;
                    return self.replay_menu(Some(prompts::INVALID));
                }
                self.mailbox = d.clone();
                self.entered_mailbox = true;
                self.state = State::Pin;
                self.ask(vec![Sound::BoxName(d), prompt(prompts::ENTER_PIN)]);
            }
            State::Pin => {
                self.actions.push_back(Action::Verify {
                    mailbox: self.mailbox.clone(),
                    pin: Some(d),
                });
            }
            State::PinNew => {
                if !pin_acceptable(&d) {
                    self.state = State::PinNew;
                    return self.ask(prompts_of(&[prompts::PIN_REJECTED, prompts::PIN_NEW]));
                }
                self.state = State::PinAgain(d);
                self.ask(vec![prompt(prompts::PIN_AGAIN)]);
            }
            State::PinAgain(first) => {
                if first != d {
                    self.state = State::PinNew;
                    return self.ask(prompts_of(&[prompts::PIN_MISMATCH, prompts::PIN_NEW]));
                }
                self.state = State::PinSaving;
                self.actions.push_back(Action::SetPin {
                    mailbox: self.mailbox.clone(),
                    pin: d,
                });
            }
            other => self.state = other,
        }
    }

    /// The answer to [`Action::Verify`].
    pub fn on_verdict(&mut self, verdict: Verdict, _now: Instant) {
        if self.state != State::Verifying {
            return;
        }
        match verdict {
            Verdict::Ok => {
                self.state = State::Loading;
                self.actions.push_back(Action::Load {
                    mailbox: self.mailbox.clone(),
                });
            }
            Verdict::NoPin => self.goodbye(Some(prompts::NO_PIN)),
            Verdict::Locked => self.goodbye(Some(prompts::LOCKED)),
            Verdict::Wrong => {
                self.pin_tries += 1;
                if self.pin_tries >= MAX_PIN_TRIES {
                    return self.goodbye(Some(prompts::WRONG_PIN));
                }
                // The main number asks for the box again (a mistyped box is a "wrong PIN" too).
                if self.mailbox.is_empty() || self.asked_mailbox() {
                    self.state = State::Mailbox;
                    self.ask(prompts_of(&[prompts::WRONG_PIN, prompts::ENTER_MAILBOX]));
                } else {
                    self.state = State::Pin;
                    self.ask(prompts_of(&[prompts::WRONG_PIN, prompts::ENTER_PIN]));
                }
            }
        }
    }

    /// Whether this caller came through the main number (the box was typed).
    fn asked_mailbox(&self) -> bool {
        self.entered_mailbox
    }

    /// The box's messages, oldest first within each folder (answer to [`Action::Load`]).
    pub fn on_messages(&mut self, mut messages: Vec<Message>, _now: Instant) {
        if self.state != State::Loading {
            return;
        }
        messages.sort_by_key(|m| (m.folder == Folder::Saved, m.id));
        self.messages = messages;
        self.state = State::Main;
        let (new, saved) = self.counts();
        let mut s: Vec<Sound> = crate::prompt::message_counts(new, saved, self.lang)
            .into_iter()
            .map(prompt)
            .collect();
        s.extend(prompts_of(&prompts::MAIN_MENU));
        self.ask(s);
    }

    /// The answer to [`Action::SetPin`]: `false` when the store refused it.
    pub fn on_pin_set(&mut self, ok: bool, _now: Instant) {
        if self.state != State::PinSaving {
            return;
        }
        if ok {
            self.state = State::Main;
            let mut s = vec![prompt(prompts::PIN_CHANGED)];
            s.extend(prompts_of(&prompts::MAIN_MENU));
            self.ask(s);
        } else {
            self.state = State::PinNew;
            self.ask(prompts_of(&[prompts::PIN_REJECTED, prompts::PIN_NEW]));
        }
    }

    /// A greeting recording ended (`#`, silence, the maximum or an error); `duration_ms` of
    /// audio was kept.
    pub fn on_record_done(&mut self, duration_ms: u64, _now: Instant) {
        let State::Recording(g, true) = self.state else {
            return;
        };
        if duration_ms < 500 {
            // Nothing usable: offer the greetings menu again.
            self.state = State::GreetMenu;
            let mut s = vec![prompt(prompts::TOO_SHORT)];
            s.extend(prompts_of(&prompts::GREETING_MENU));
            return self.ask(s);
        }
        self.state = State::Review(g);
        self.ask(vec![
            Sound::File(scratch_name(g)),
            prompt(prompts::GREETING_REVIEW),
        ]);
    }

    /// Replays the current menu after a timeout (or an error prompt `first`).
    fn replay_menu(&mut self, first: Option<&str>) {
        let mut s: Vec<Sound> = first.into_iter().map(prompt).collect();
        match &self.state {
            State::Mailbox => s.push(prompt(prompts::ENTER_MAILBOX)),
            State::Pin => s.push(prompt(prompts::ENTER_PIN)),
            State::PinNew => s.push(prompt(prompts::PIN_NEW)),
            State::PinAgain(_) => s.push(prompt(prompts::PIN_AGAIN)),
            State::Main => s.extend(prompts_of(&prompts::MAIN_MENU)),
            State::Listening { .. } => s.extend(prompts_of(&prompts::MESSAGE_MENU)),
            State::GreetMenu => s.extend(prompts_of(&prompts::GREETING_MENU)),
            State::Review(_) => s.push(prompt(prompts::GREETING_REVIEW)),
            _ => return,
        }
        self.ask(s);
    }

    /// Messages of `folder`, in order.
    fn folder(&self, folder: Folder) -> Vec<usize> {
        (0..self.messages.len())
            .filter(|&i| self.messages[i].folder == folder)
            .collect()
    }

    /// Plays message `pos` of `folder` with its envelope and the options.
    fn play_message(&mut self, folder: Folder, pos: usize, intro: Option<&str>) {
        let list = self.folder(folder);
        let Some(&i) = list.get(pos) else {
            self.state = State::Main;
            let mut s = vec![prompt(prompts::NO_MORE)];
            s.extend(prompts_of(&prompts::MAIN_MENU));
            return self.ask(s);
        };
        self.state = State::Listening { folder, idx: pos };
        let m = &self.messages[i];
        let mut s: Vec<Sound> = intro.into_iter().map(prompt).collect();
        s.push(prompt(prompts::RECEIVED_AT));
        s.extend(
            crate::prompt::time_of_day(m.at.0, m.at.1, self.lang)
                .into_iter()
                .map(prompt),
        );
        match crate::prompt::digits(&m.caller) {
            Some(d) if !m.caller.is_empty() => {
                s.push(prompt(prompts::FROM));
                s.extend(d.into_iter().map(prompt));
            }
            _ => s.push(prompt(prompts::NO_CALLER_ID)),
        }
        s.push(Sound::File(m.path.clone()));
        s.extend(prompts_of(&prompts::MESSAGE_MENU));
        self.ask(s);
    }

    fn key(&mut self, k: char) {
        match self.state.clone() {
            State::Main => match k {
                '1' => self.play_message(Folder::New, 0, Some(prompts::FIRST)),
                '2' => self.play_message(Folder::Saved, 0, Some(prompts::FIRST)),
                '3' => {
                    self.state = State::GreetMenu;
                    self.ask(prompts_of(&prompts::GREETING_MENU));
                }
                '4' => {
                    self.state = State::PinNew;
                    self.ask(vec![prompt(prompts::PIN_NEW)]);
                }
                '*' => self.goodbye(None),
                _ => self.replay_menu(Some(prompts::INVALID)),
            },
            State::Listening { folder, idx } => {
                let list = self.folder(folder);
                let Some(&i) = list.get(idx) else {
                    return self.play_message(folder, idx, None);
                };
                let id = self.messages[i].id;
                match k {
                    '5' => self.play_message(folder, idx, None),
                    '6' => self.play_message(folder, idx + 1, Some(prompts::NEXT)),
                    '4' => self.play_message(folder, idx.saturating_sub(1), None),
                    '7' => {
                        self.actions.push_back(Action::Delete { id });
                        self.messages.remove(i);
                        // The next message slides into this position.
                        self.play_message(folder, idx, Some(prompts::DELETED));
                    }
                    '9' => {
                        if folder == Folder::New {
                            self.actions.push_back(Action::Save { id });
                            self.messages[i].folder = Folder::Saved;
                            self.play_message(folder, idx, Some(prompts::SAVED));
                        } else {
                            self.play_message(folder, idx + 1, Some(prompts::SAVED));
                        }
                    }
                    '8' => {
                        let number = self.messages[i].caller.clone();
                        if number.is_empty() {
                            return self.replay_menu(Some(prompts::NO_CALLER_ID));
                        }
                        if folder == Folder::New {
                            // Called back: it has been heard.
                            self.actions.push_back(Action::Save { id });
                        }
                        self.leave(
                            vec![prompt(prompts::CALLING_BACK)],
                            Action::CallBack { number },
                        );
                    }
                    '*' => {
                        self.state = State::Main;
                        self.ask(prompts_of(&prompts::MAIN_MENU));
                    }
                    _ => self.replay_menu(Some(prompts::INVALID)),
                }
            }
            State::GreetMenu => {
                let g = match k {
                    '1' => Greeting::Unavailable,
                    '2' => Greeting::Busy,
                    '3' => Greeting::Name,
                    '*' => {
                        self.state = State::Main;
                        return self.ask(prompts_of(&prompts::MAIN_MENU));
                    }
                    _ => return self.replay_menu(Some(prompts::INVALID)),
                };
                self.record(g);
            }
            State::Review(g) => match k {
                '1' => {
                    self.actions.push_back(Action::KeepGreeting { greeting: g });
                    self.state = State::GreetMenu;
                    let mut s = vec![prompt(prompts::GREETING_SAVED)];
                    s.extend(prompts_of(&prompts::GREETING_MENU));
                    self.ask(s);
                }
                '2' => self.record(g),
                '*' => {
                    self.state = State::GreetMenu;
                    self.ask(prompts_of(&prompts::GREETING_MENU));
                }
                _ => self.replay_menu(Some(prompts::INVALID)),
            },
            _ => {}
        }
    }

    /// "Record after the tone", then (when it ends) the recording itself.
    fn record(&mut self, g: Greeting) {
        self.state = State::Recording(g, false);
        self.deadline = None;
        self.menu_ended = true;
        self.actions
            .push_back(Action::Play(vec![prompt(prompts::GREETING_RECORD)]));
    }
}

/// The scratch file name of a greeting being recorded (the engine places it in the box's
/// directory; [`Action::KeepGreeting`] makes it the greeting).
pub fn scratch_name(g: Greeting) -> String {
    format!("greeting-{}.new.wav", g.as_str())
}

/// The file name of a kept greeting in the box's directory.
pub fn greeting_name(g: Greeting) -> String {
    format!("greeting-{}.wav", g.as_str())
}

/// Rules for a PIN: 4-12 digits, not all the same digit, not a straight run (`1234`, `9876`).
pub fn pin_acceptable(pin: &str) -> bool {
    let b = pin.as_bytes();
    if !(4..=12).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if b.iter().all(|&c| c == b[0]) {
        return false;
    }
    let step = |d: i16| b.windows(2).all(|w| i16::from(w[1]) - i16::from(w[0]) == d);
    !(step(1) || step(-1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut Retrieval) -> Vec<Action> {
        std::iter::from_fn(|| r.poll_action()).collect()
    }

    fn played(actions: &[Action]) -> Vec<Sound> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Play(s) => Some(s.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn has_prompt(actions: &[Action], id: &str) -> bool {
        played(actions).contains(&Sound::Prompt(id.to_string()))
    }

    fn msg(id: i64, folder: Folder, caller: &str) -> Message {
        Message {
            id,
            folder,
            caller: caller.into(),
            at: (15, 5),
            path: format!("voicemail/1/1002/msg-{id}.wav"),
        }
    }

    fn keys(r: &mut Retrieval, s: &str, now: Instant) {
        for c in s.chars() {
            r.on_digit(c, now);
        }
    }

    /// Owner's phone without PIN question, two new messages and one saved loaded.
    fn logged_in(t0: Instant) -> Retrieval {
        let mut r = Retrieval::new(
            Entry::Own {
                mailbox: "1002".into(),
                ask_pin: false,
            },
            Lang::En,
        );
        r.start(t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Verify {
                mailbox: "1002".into(),
                pin: None
            }]
        );
        r.on_verdict(Verdict::Ok, t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Load {
                mailbox: "1002".into()
            }]
        );
        r.on_messages(
            vec![
                msg(9, Folder::Saved, "1003"),
                msg(4, Folder::New, "1001"),
                msg(7, Folder::New, ""),
            ],
            t0,
        );
        r
    }

    /// [`logged_in`], its greeting drained.
    fn at_main_menu(t0: Instant) -> Retrieval {
        let mut r = logged_in(t0);
        drain(&mut r);
        r
    }

    #[test]
    fn own_box_says_the_counts_then_the_main_menu() {
        let t0 = Instant::now();
        let mut r = logged_in(t0);
        assert!(r.is_in());
        assert_eq!(r.counts(), (2, 1));
        let a = drain(&mut r);
        let ids: Vec<String> = played(&a)
            .into_iter()
            .filter_map(|s| match s {
                Sound::Prompt(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(
            ids[..7],
            [
                "vm-you-have",
                "num-2",
                "vm-new-messages",
                "vm-and",
                "num-1",
                "vm-saved-message",
                "vm-menu-new"
            ]
        );
    }

    #[test]
    fn main_number_asks_box_then_pin_and_checks_both() {
        let t0 = Instant::now();
        let mut r = Retrieval::new(Entry::Main, Lang::En);
        r.start(t0);
        assert!(has_prompt(&drain(&mut r), prompts::ENTER_MAILBOX));
        keys(&mut r, "1002#", t0);
        let a = drain(&mut r);
        assert_eq!(a[0], Action::StopPlay);
        assert!(has_prompt(&a, prompts::ENTER_PIN));
        assert_eq!(
            played(&a)[..2],
            [
                Sound::BoxName("1002".into()),
                Sound::Prompt(prompts::ENTER_PIN.into())
            ],
            "the box is confirmed by its recorded name before the PIN is asked"
        );
        keys(&mut r, "2468#", t0);
        let a = drain(&mut r);
        assert_eq!(
            a.last(),
            Some(&Action::Verify {
                mailbox: "1002".into(),
                pin: Some("2468".into())
            })
        );
        assert!(!r.is_in());
    }

    #[test]
    fn a_pin_typed_without_pound_is_taken_after_the_digit_timeout() {
        let t0 = Instant::now();
        let mut r = Retrieval::new(
            Entry::Own {
                mailbox: "1002".into(),
                ask_pin: true,
            },
            Lang::En,
        );
        r.start(t0);
        drain(&mut r);
        r.on_play_done(t0);
        keys(&mut r, "2468", t0);
        drain(&mut r);
        let due = r.deadline().expect("digit timer");
        r.on_timeout(due - Duration::from_millis(1));
        assert!(drain(&mut r).is_empty(), "not yet due");
        r.on_timeout(due);
        assert_eq!(
            drain(&mut r),
            vec![Action::Verify {
                mailbox: "1002".into(),
                pin: Some("2468".into())
            }]
        );
    }

    #[test]
    fn three_wrong_pins_say_goodbye_and_hang_up() {
        let t0 = Instant::now();
        let mut r = Retrieval::new(Entry::Main, Lang::En);
        r.start(t0);
        for i in 0..MAX_PIN_TRIES {
            keys(&mut r, "1002#9999#", t0);
            drain(&mut r);
            r.on_verdict(Verdict::Wrong, t0);
            let a = drain(&mut r);
            assert!(has_prompt(&a, prompts::WRONG_PIN), "try {i}");
            if i + 1 < MAX_PIN_TRIES {
                assert!(
                    has_prompt(&a, prompts::ENTER_MAILBOX),
                    "asked the box again"
                );
            } else {
                assert!(has_prompt(&a, prompts::GOODBYE));
            }
        }
        keys(&mut r, "1", t0);
        assert!(drain(&mut r).is_empty(), "keys are ignored while leaving");
        r.on_play_done(t0);
        assert_eq!(drain(&mut r), vec![Action::Hangup]);
        assert!(r.is_done());
    }

    #[test]
    fn no_pin_and_locked_boxes_are_not_entered() {
        let t0 = Instant::now();
        for (v, p) in [
            (Verdict::NoPin, prompts::NO_PIN),
            (Verdict::Locked, prompts::LOCKED),
        ] {
            let mut r = Retrieval::new(
                Entry::Own {
                    mailbox: "1002".into(),
                    ask_pin: false,
                },
                Lang::En,
            );
            r.start(t0);
            drain(&mut r);
            r.on_verdict(v, t0);
            let a = drain(&mut r);
            assert!(has_prompt(&a, p));
            assert!(!a.iter().any(|x| matches!(x, Action::Load { .. })));
            r.on_play_done(t0);
            assert_eq!(drain(&mut r), vec![Action::Hangup]);
        }
    }

    #[test]
    fn listen_save_delete_next_previous() {
        let t0 = Instant::now();
        let mut r = at_main_menu(t0);
        // First new message: the oldest (id 4) with its envelope and audio.
        keys(&mut r, "1", t0);
        let a = drain(&mut r);
        let s = played(&a);
        assert!(s.contains(&Sound::Prompt(prompts::RECEIVED_AT.into())));
        assert!(s.contains(&Sound::Prompt("time-pm".into())));
        assert!(s.contains(&Sound::Prompt("digit-1".into())));
        assert!(s.contains(&Sound::File("voicemail/1/1002/msg-4.wav".into())));
        // Next: message 7 without a caller id.
        keys(&mut r, "6", t0);
        let s = played(&drain(&mut r));
        assert!(s.contains(&Sound::Prompt(prompts::NO_CALLER_ID.into())));
        assert!(s.contains(&Sound::File("voicemail/1/1002/msg-7.wav".into())));
        // Previous, then save it: message 4 moves to saved, 7 is now first of the new ones.
        keys(&mut r, "4", t0);
        assert!(played(&drain(&mut r)).contains(&Sound::File("voicemail/1/1002/msg-4.wav".into())));
        keys(&mut r, "9", t0);
        let a = drain(&mut r);
        assert!(a.contains(&Action::Save { id: 4 }));
        assert!(played(&a).contains(&Sound::File("voicemail/1/1002/msg-7.wav".into())));
        assert_eq!(r.counts(), (1, 2));
        // Delete 7: no more new messages, back in the main menu.
        keys(&mut r, "7", t0);
        let a = drain(&mut r);
        assert!(a.contains(&Action::Delete { id: 7 }));
        assert!(has_prompt(&a, prompts::NO_MORE));
        assert_eq!(r.counts(), (0, 2));
        // Saved folder holds 4 and 9, oldest first; repeat plays the same again.
        keys(&mut r, "2", t0);
        assert!(played(&drain(&mut r)).contains(&Sound::File("voicemail/1/1002/msg-4.wav".into())));
        keys(&mut r, "5", t0);
        assert!(played(&drain(&mut r)).contains(&Sound::File("voicemail/1/1002/msg-4.wav".into())));
        keys(&mut r, "*", t0);
        assert!(has_prompt(&drain(&mut r), "vm-menu-new"));
    }

    #[test]
    fn call_back_says_so_then_dials_the_caller() {
        let t0 = Instant::now();
        let mut r = at_main_menu(t0);
        keys(&mut r, "18", t0);
        let a = drain(&mut r);
        assert!(
            a.contains(&Action::Save { id: 4 }),
            "a message called back is heard"
        );
        assert!(has_prompt(&a, prompts::CALLING_BACK));
        r.on_play_done(t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::CallBack {
                number: "1001".into()
            }]
        );
    }

    #[test]
    fn silence_replays_the_menu_then_says_goodbye() {
        let t0 = Instant::now();
        let mut r = at_main_menu(t0);
        let mut now = t0;
        for i in 0..MAX_TIMEOUTS {
            r.on_play_done(now);
            now = r.deadline().expect("menu timer");
            r.on_timeout(now);
            let a = drain(&mut r);
            if i + 1 < MAX_TIMEOUTS {
                assert!(has_prompt(&a, "vm-menu-new"));
            } else {
                assert!(has_prompt(&a, prompts::GOODBYE));
            }
        }
        r.on_play_done(now);
        assert_eq!(drain(&mut r), vec![Action::Hangup]);
    }

    #[test]
    fn pin_change_needs_the_same_acceptable_pin_twice() {
        let t0 = Instant::now();
        let mut r = at_main_menu(t0);
        keys(&mut r, "4", t0);
        assert!(has_prompt(&drain(&mut r), prompts::PIN_NEW));
        keys(&mut r, "1234#", t0);
        assert!(has_prompt(&drain(&mut r), prompts::PIN_REJECTED));
        keys(&mut r, "2580#", t0);
        assert!(has_prompt(&drain(&mut r), prompts::PIN_AGAIN));
        keys(&mut r, "2581#", t0);
        assert!(has_prompt(&drain(&mut r), prompts::PIN_MISMATCH));
        keys(&mut r, "2580#2580#", t0);
        assert_eq!(
            drain(&mut r).last(),
            Some(&Action::SetPin {
                mailbox: "1002".into(),
                pin: "2580".into()
            })
        );
        r.on_pin_set(true, t0);
        assert!(has_prompt(&drain(&mut r), prompts::PIN_CHANGED));
    }

    #[test]
    fn greeting_is_recorded_reviewed_and_kept() {
        let t0 = Instant::now();
        let mut r = at_main_menu(t0);
        keys(&mut r, "3", t0);
        assert!(has_prompt(&drain(&mut r), "vm-greeting-menu-busy"));
        keys(&mut r, "2", t0);
        let a = drain(&mut r);
        assert!(has_prompt(&a, prompts::GREETING_RECORD));
        assert!(!a.iter().any(|x| matches!(x, Action::Record { .. })));
        keys(&mut r, "#", t0);
        assert!(
            drain(&mut r).is_empty(),
            "# before the recording runs does nothing"
        );
        r.on_play_done(t0);
        assert_eq!(
            drain(&mut r),
            vec![Action::Record {
                greeting: Greeting::Busy,
                max_s: MAX_GREETING_S
            }]
        );
        keys(&mut r, "#", t0);
        assert_eq!(drain(&mut r), vec![Action::StopRecord]);
        r.on_record_done(2_000, t0);
        let s = played(&drain(&mut r));
        assert_eq!(s[0], Sound::File(scratch_name(Greeting::Busy)));
        assert!(s.contains(&Sound::Prompt(prompts::GREETING_REVIEW.into())));
        keys(&mut r, "1", t0);
        let a = drain(&mut r);
        assert!(a.contains(&Action::KeepGreeting {
            greeting: Greeting::Busy
        }));
        assert!(has_prompt(&a, prompts::GREETING_SAVED));
    }

    #[test]
    fn a_too_short_greeting_is_not_offered_for_review() {
        let t0 = Instant::now();
        let mut r = at_main_menu(t0);
        keys(&mut r, "31", t0);
        drain(&mut r);
        r.on_play_done(t0);
        drain(&mut r);
        r.on_record_done(100, t0);
        let a = drain(&mut r);
        assert!(has_prompt(&a, prompts::TOO_SHORT));
        assert!(!played(&a).iter().any(|s| matches!(s, Sound::File(_))));
    }

    #[test]
    fn every_prompt_used_is_in_the_catalogue() {
        let all = [
            prompts::ENTER_MAILBOX,
            prompts::ENTER_PIN,
            prompts::WRONG_PIN,
            prompts::NO_PIN,
            prompts::LOCKED,
            prompts::GREETING_RECORD,
            prompts::GREETING_REVIEW,
            prompts::GREETING_SAVED,
            prompts::FIRST,
            prompts::NEXT,
            prompts::RECEIVED_AT,
            prompts::FROM,
            prompts::NO_CALLER_ID,
            prompts::SAVED,
            prompts::DELETED,
            prompts::NO_MORE,
            prompts::CALLING_BACK,
            prompts::PIN_NEW,
            prompts::PIN_AGAIN,
            prompts::PIN_CHANGED,
            prompts::PIN_MISMATCH,
            prompts::PIN_REJECTED,
            prompts::INVALID,
            prompts::TOO_SHORT,
            prompts::GOODBYE,
        ];
        for id in all
            .iter()
            .chain(prompts::MAIN_MENU.iter())
            .chain(prompts::MESSAGE_MENU.iter())
            .chain(prompts::GREETING_MENU.iter())
        {
            assert!(crate::prompt::get(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn box_settings_are_checked() {
        assert_eq!(BoxSpec::default().validate(), Ok(()));
        let bad = |f: fn(&mut BoxSpec)| {
            let mut s = BoxSpec::default();
            f(&mut s);
            s.validate().map_err(|e| e.field)
        };
        assert_eq!(bad(|s| s.max_message_s = 5), Err("max_message_s"));
        assert_eq!(bad(|s| s.email = "alice".into()), Err("email"));
        assert_eq!(bad(|s| s.email = "a b@example.com".into()), Err("email"));
        assert_eq!(bad(|s| s.email = "a@b@example.com".into()), Err("email"));
        assert_eq!(
            bad(|s| s.delete_after_mail = true),
            Err("delete_after_mail")
        );
        assert_eq!(bad(|s| s.email = "alice@example.com".into()), Ok(()));
        let old: BoxSpec = serde_json::from_str(r#"{"email":"a@example.com"}"#).expect("loads");
        assert!(old.enabled && old.attach && old.max_message_s == 180);
        let mut s = BoxSpec::default();
        s.set_greeting(Greeting::Busy, true);
        assert!(s.has_greeting(Greeting::Busy) && !s.has_greeting(Greeting::Unavailable));
    }

    #[test]
    fn pin_rules() {
        assert!(pin_acceptable("2580"));
        assert!(pin_acceptable("135790"));
        for bad in ["", "123", "1234", "9876", "0000", "12a4", "1234567890123"] {
            assert!(!pin_acceptable(bad), "{bad}");
        }
    }
}
