//! IVR (auto-attendant): a greeting, one option per digit, dial-by-extension, timeouts and
//! invalid input with retries, then a fallback destination.
//!
//! [`Ivr`] is a sans-IO state machine. The engine calls [`Ivr::start`], feeds it digits
//! ([`Ivr::on_digit`]), the end of each prompt ([`Ivr::on_play_done`]) and its deadline
//! ([`Ivr::on_timeout`]); after each call it drains [`Ivr::poll_action`] and re-arms its
//! timer from [`Ivr::deadline`]. Destinations are the dialplan's text form (`ext:1001`,
//! `ivr:sales`, `vm:1001`, `hangup` …); the engine parses and routes them. A nested menu is
//! an option whose destination is another `ivr:NAME`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Prompt ids the IVR plays besides the menu's own greeting.
pub mod prompts {
    /// "That is not a valid option."
    pub const INVALID: &str = "ivr-invalid";
    /// "I did not hear a selection."
    pub const TIMEOUT: &str = "ivr-timeout";
    /// "Goodbye."
    pub const GOODBYE: &str = "goodbye";
    /// "Please hold while I transfer your call."
    pub const TRANSFER: &str = "transfer-hold";
}

/// Something the IVR plays: a prompt by id (resolved per tenant and language) or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sound {
    /// A prompt of the catalogue or an uploaded one, by id.
    Prompt(String),
    /// A silence of this many milliseconds.
    Silence(u32),
}

/// A menu's configuration (stored as JSON; every field has a default so older documents load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MenuSpec {
    /// Free text for the panel.
    pub description: String,
    /// Prompt id of the greeting (an uploaded prompt such as `main-greeting`).
    pub greeting: String,
    /// Digit (`0`-`9`, `*`, `#`) → destination.
    pub options: BTreeMap<char, String>,
    /// Callers may dial an extension number directly.
    pub dial_by_extension: bool,
    /// Seconds to wait for the first digit after the greeting ends.
    pub timeout_s: u32,
    /// Seconds to wait for the next digit of an extension number.
    pub digit_timeout_s: u32,
    /// How many times the greeting is replayed after a timeout or an invalid choice.
    pub retries: u32,
    /// Where the caller goes when the retries are used up (`hangup` says goodbye).
    pub fallback: String,
    /// Play "please hold while I transfer your call" before leaving the menu for an
    /// extension.
    pub announce_transfer: bool,
    /// Class of service for outside numbers the menu sends callers to (`internal`, `local`,
    /// `national`, `mobile`, `international`; empty: `mobile`, a new extension's default).
    /// Checked by the store, which knows the words.
    pub cos: String,
}

impl Default for MenuSpec {
    fn default() -> Self {
        MenuSpec {
            description: String::new(),
            greeting: String::new(),
            options: BTreeMap::new(),
            dial_by_extension: false,
            timeout_s: 5,
            digit_timeout_s: 3,
            retries: 2,
            fallback: "hangup".to_string(),
            announce_transfer: false,
            cos: String::new(),
        }
    }
}

/// Why a menu configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The offending field (`options.3`, `timeout_s` …).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl MenuSpec {
    /// Checks ranges and digit keys. Destinations are checked by the caller, which knows the
    /// dialplan's syntax and the objects that exist.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |field: &str, reason: &str| {
            Err(SpecError {
                field: field.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.greeting.is_empty() {
            return err("greeting", "a menu needs a greeting prompt");
        }
        if !(1..=60).contains(&self.timeout_s) {
            return err("timeout_s", "must be 1-60 seconds");
        }
        if !(1..=20).contains(&self.digit_timeout_s) {
            return err("digit_timeout_s", "must be 1-20 seconds");
        }
        if self.retries > 10 {
            return err("retries", "must be 0-10");
        }
        for (k, v) in &self.options {
            if !is_key(*k) {
                return err(&format!("options.{k}"), "keys are 0-9, * and #");
            }
            if v.trim().is_empty() {
                return err(&format!("options.{k}"), "needs a destination");
            }
        }
        if self.options.is_empty() && !self.dial_by_extension {
            return err(
                "options",
                "a menu needs at least one option or dial-by-extension",
            );
        }
        if self.fallback.trim().is_empty() {
            return err("fallback", "needs a destination (hangup to end the call)");
        }
        Ok(())
    }

    /// Every destination the menu can send a caller to (options, then the fallback).
    pub fn destinations(&self) -> impl Iterator<Item = (String, &str)> {
        self.options
            .iter()
            .map(|(k, v)| (format!("options.{k}"), v.as_str()))
            .chain(std::iter::once((
                "fallback".to_string(),
                self.fallback.as_str(),
            )))
    }
}

fn is_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

/// What the IVR wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these sounds, in order; a digit interrupts them. Ends with [`Ivr::on_play_done`].
    Play(Vec<Sound>),
    /// Stop what is playing (a digit arrived).
    StopPlay,
    /// Leave the menu for this destination.
    Goto(String),
}

/// The answer to "is this an extension?" for dial-by-extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtMatch {
    /// These digits are an extension.
    pub exact: bool,
    /// Some longer extension starts with these digits.
    pub longer: bool,
}

/// Where the menu is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Playing the greeting (or an error prompt followed by it).
    Greeting,
    /// The greeting ended: waiting for the first digit.
    Waiting,
    /// Digits arrived: waiting for more.
    Collecting,
    /// Playing the last prompt before leaving.
    Leaving,
    /// Done.
    Done,
}

/// Most digits collected for one entry (longer input is invalid).
const MAX_DIGITS: usize = 12;

/// One caller's pass through a menu.
#[derive(Debug)]
pub struct Ivr {
    spec: MenuSpec,
    state: State,
    digits: String,
    failures: u32,
    deadline: Option<Instant>,
    actions: VecDeque<Action>,
    /// Where the caller goes once the leaving prompt ends.
    pending: Option<String>,
}

impl Ivr {
    /// A caller entering `spec`'s menu.
    pub fn new(spec: MenuSpec) -> Ivr {
        Ivr {
            spec,
            state: State::Greeting,
            digits: String::new(),
            failures: 0,
            deadline: None,
            actions: VecDeque::new(),
            pending: None,
        }
    }

    /// Plays the greeting.
    pub fn start(&mut self, _now: Instant) {
        self.state = State::Greeting;
        self.actions.push_back(Action::Play(vec![Sound::Prompt(
            self.spec.greeting.clone(),
        )]));
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Ivr::on_timeout`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// True once the menu has handed the caller on.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The digits of the entry in progress.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The current prompt finished (or was stopped).
    pub fn on_play_done(&mut self, now: Instant) {
        match self.state {
            State::Greeting => {
                self.state = State::Waiting;
                self.deadline = Some(now + secs(self.spec.timeout_s));
            }
            State::Leaving => self.leave_now(),
            _ => {}
        }
    }

    /// A digit from the caller. `directory` tells whether digits name an extension.
    pub fn on_digit(&mut self, digit: char, now: Instant, directory: &dyn Fn(&str) -> ExtMatch) {
        if !is_key(digit) || matches!(self.state, State::Leaving | State::Done) {
            return;
        }
        if self.state == State::Greeting {
            self.actions.push_back(Action::StopPlay);
        }
        if digit == '#' && !self.digits.is_empty() && !self.spec.options.contains_key(&'#') {
            // '#' ends an extension number early.
            return self.decide(now, directory, true);
        }
        self.digits.push(digit);
        self.state = State::Collecting;
        if self.digits.len() > MAX_DIGITS {
            return self.invalid(now);
        }
        self.decide(now, directory, false);
    }

    /// The deadline passed.
    pub fn on_timeout(&mut self, now: Instant, directory: &dyn Fn(&str) -> ExtMatch) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match self.state {
            State::Waiting => {
                self.failures += 1;
                if self.failures > self.spec.retries {
                    self.fallback();
                } else {
                    self.replay(prompts::TIMEOUT);
                }
            }
            State::Collecting => self.decide(now, directory, true),
            _ => {}
        }
    }

    /// Acts on the digits so far; `final_` when no more will come (timeout or `#`).
    fn decide(&mut self, now: Instant, directory: &dyn Fn(&str) -> ExtMatch, final_: bool) {
        let d = self.digits.clone();
        let ext = if self.spec.dial_by_extension {
            directory(&d)
        } else {
            ExtMatch::default()
        };
        let option = single(&d).and_then(|c| self.spec.options.get(&c)).cloned();
        if !final_ && ext.longer {
            // An extension may follow: wait for the next digit.
            self.deadline = Some(now + secs(self.spec.digit_timeout_s));
            return;
        }
        if let Some(dest) = option {
            return self.go(dest, false);
        }
        if ext.exact {
            return self.go(format!("ext:{d}"), true);
        }
        if !final_ && self.spec.dial_by_extension && d.len() < MAX_DIGITS && ext.longer {
            self.deadline = Some(now + secs(self.spec.digit_timeout_s));
            return;
        }
        self.invalid(now);
    }

    fn invalid(&mut self, _now: Instant) {
        self.failures += 1;
        if self.failures > self.spec.retries {
            self.fallback();
        } else {
            self.replay(prompts::INVALID);
        }
    }

    /// An error prompt, then the greeting again.
    fn replay(&mut self, prompt: &str) {
        self.digits.clear();
        self.deadline = None;
        self.state = State::Greeting;
        self.actions.push_back(Action::Play(vec![
            Sound::Prompt(prompt.to_string()),
            Sound::Prompt(self.spec.greeting.clone()),
        ]));
    }

    fn fallback(&mut self) {
        let dest = self.spec.fallback.clone();
        if dest == "hangup" {
            self.digits.clear();
            self.deadline = None;
            self.state = State::Leaving;
            self.pending = Some(dest);
            self.actions
                .push_back(Action::Play(vec![Sound::Prompt(prompts::GOODBYE.into())]));
        } else {
            self.go(dest, false);
        }
    }

    fn go(&mut self, dest: String, to_extension: bool) {
        self.digits.clear();
        self.deadline = None;
        if to_extension && self.spec.announce_transfer {
            self.state = State::Leaving;
            self.pending = Some(dest);
            self.actions
                .push_back(Action::Play(vec![Sound::Prompt(prompts::TRANSFER.into())]));
            return;
        }
        self.pending = Some(dest);
        self.leave_now();
    }

    fn leave_now(&mut self) {
        if let Some(dest) = self.pending.take() {
            self.state = State::Done;
            self.deadline = None;
            self.actions.push_back(Action::Goto(dest));
        }
    }
}

fn single(d: &str) -> Option<char> {
    let mut it = d.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MenuSpec {
        let mut s = MenuSpec {
            greeting: "main-greeting".into(),
            dial_by_extension: true,
            fallback: "ext:1000".into(),
            ..MenuSpec::default()
        };
        s.options.insert('1', "ext:1001".into());
        s.options.insert('2', "ivr:sales".into());
        s.options.insert('0', "ext:1000".into());
        s
    }

    /// Extensions 1000-1002 and 4001: '1' starts several, '2' and '3' none.
    fn dir(d: &str) -> ExtMatch {
        let exts = ["1000", "1001", "1002", "4001"];
        ExtMatch {
            exact: exts.contains(&d),
            longer: exts.iter().any(|e| e.len() > d.len() && e.starts_with(d)),
        }
    }

    fn drain(ivr: &mut Ivr) -> Vec<Action> {
        std::iter::from_fn(|| ivr.poll_action()).collect()
    }

    fn greeting() -> Action {
        Action::Play(vec![Sound::Prompt("main-greeting".into())])
    }

    #[test]
    fn option_digit_goes_at_once_when_no_extension_starts_with_it() {
        let t = Instant::now();
        let mut ivr = Ivr::new(spec());
        ivr.start(t);
        assert_eq!(drain(&mut ivr), vec![greeting()]);
        ivr.on_digit('2', t, &dir);
        assert_eq!(
            drain(&mut ivr),
            vec![Action::StopPlay, Action::Goto("ivr:sales".into())]
        );
        assert!(ivr.is_done());
    }

    #[test]
    fn option_digit_that_starts_an_extension_waits_for_more() {
        let t = Instant::now();
        let mut ivr = Ivr::new(spec());
        ivr.start(t);
        ivr.on_play_done(t);
        drain(&mut ivr);
        ivr.on_digit('1', t, &dir);
        assert!(drain(&mut ivr).is_empty(), "waits: 1 may start 1001");
        let d = ivr.deadline().expect("inter-digit timer");
        assert_eq!(d, t + Duration::from_secs(3));
        // Nothing more: the single digit is the option.
        ivr.on_timeout(d, &dir);
        assert_eq!(drain(&mut ivr), vec![Action::Goto("ext:1001".into())]);
    }

    #[test]
    fn dial_by_extension() {
        let t = Instant::now();
        let mut ivr = Ivr::new(spec());
        ivr.start(t);
        drain(&mut ivr);
        for c in "100".chars() {
            ivr.on_digit(c, t, &dir);
        }
        assert_eq!(drain(&mut ivr), vec![Action::StopPlay]);
        ivr.on_digit('2', t, &dir);
        assert_eq!(drain(&mut ivr), vec![Action::Goto("ext:1002".into())]);
    }

    #[test]
    fn hash_ends_an_extension_number() {
        let t = Instant::now();
        let mut s = spec();
        s.options.clear();
        let mut ivr = Ivr::new(s);
        ivr.start(t);
        ivr.on_play_done(t);
        drain(&mut ivr);
        // "100" is a prefix only; '#' ends it: invalid, replay.
        for c in "100#".chars() {
            ivr.on_digit(c, t, &dir);
        }
        assert_eq!(
            drain(&mut ivr),
            vec![Action::Play(vec![
                Sound::Prompt(prompts::INVALID.into()),
                Sound::Prompt("main-greeting".into())
            ])]
        );
    }

    #[test]
    fn announce_transfer_plays_before_leaving() {
        let t = Instant::now();
        let mut s = spec();
        s.announce_transfer = true;
        let mut ivr = Ivr::new(s);
        ivr.start(t);
        ivr.on_play_done(t);
        drain(&mut ivr);
        for c in "4001".chars() {
            ivr.on_digit(c, t, &dir);
        }
        assert_eq!(
            drain(&mut ivr),
            vec![Action::Play(vec![Sound::Prompt(prompts::TRANSFER.into())])]
        );
        assert!(!ivr.is_done());
        ivr.on_play_done(t);
        assert_eq!(drain(&mut ivr), vec![Action::Goto("ext:4001".into())]);
    }

    #[test]
    fn timeouts_replay_then_fall_back() {
        let mut t = Instant::now();
        let mut ivr = Ivr::new(spec());
        ivr.start(t);
        drain(&mut ivr);
        for round in 0..2 {
            ivr.on_play_done(t);
            let d = ivr.deadline().expect("waiting for a digit");
            assert_eq!(d, t + Duration::from_secs(5));
            // Early timer calls do nothing.
            ivr.on_timeout(d - Duration::from_millis(1), &dir);
            assert!(drain(&mut ivr).is_empty());
            t = d;
            ivr.on_timeout(t, &dir);
            assert_eq!(
                drain(&mut ivr),
                vec![Action::Play(vec![
                    Sound::Prompt(prompts::TIMEOUT.into()),
                    Sound::Prompt("main-greeting".into())
                ])],
                "round {round}"
            );
        }
        ivr.on_play_done(t);
        t += Duration::from_secs(5);
        ivr.on_timeout(t, &dir);
        assert_eq!(drain(&mut ivr), vec![Action::Goto("ext:1000".into())]);
        assert_eq!(ivr.deadline(), None);
    }

    #[test]
    fn invalid_choices_count_and_hangup_fallback_says_goodbye() {
        let t = Instant::now();
        let mut s = spec();
        s.fallback = "hangup".into();
        s.retries = 1;
        let mut ivr = Ivr::new(s);
        ivr.start(t);
        ivr.on_play_done(t);
        drain(&mut ivr);
        ivr.on_digit('3', t, &dir);
        assert_eq!(
            drain(&mut ivr),
            vec![Action::Play(vec![
                Sound::Prompt(prompts::INVALID.into()),
                Sound::Prompt("main-greeting".into())
            ])]
        );
        // A digit during the replayed prompts interrupts them.
        ivr.on_digit('9', t, &dir);
        assert_eq!(
            drain(&mut ivr),
            vec![
                Action::StopPlay,
                Action::Play(vec![Sound::Prompt(prompts::GOODBYE.into())])
            ]
        );
        // Digits while saying goodbye are ignored.
        ivr.on_digit('1', t, &dir);
        assert!(drain(&mut ivr).is_empty());
        ivr.on_play_done(t);
        assert_eq!(drain(&mut ivr), vec![Action::Goto("hangup".into())]);
    }

    #[test]
    fn without_dial_by_extension_digits_are_options_only() {
        let t = Instant::now();
        let mut s = spec();
        s.dial_by_extension = false;
        let mut ivr = Ivr::new(s);
        ivr.start(t);
        drain(&mut ivr);
        ivr.on_digit('1', t, &dir);
        assert_eq!(
            drain(&mut ivr),
            vec![Action::StopPlay, Action::Goto("ext:1001".into())]
        );
    }

    #[test]
    fn too_many_digits_are_invalid() {
        let t = Instant::now();
        let mut ivr = Ivr::new(spec());
        ivr.start(t);
        drain(&mut ivr);
        let long_prefix = |d: &str| ExtMatch {
            exact: false,
            longer: d.len() < 40,
        };
        for _ in 0..=MAX_DIGITS {
            ivr.on_digit('1', t, &long_prefix);
        }
        let acts = drain(&mut ivr);
        assert!(
            acts.contains(&Action::Play(vec![
                Sound::Prompt(prompts::INVALID.into()),
                Sound::Prompt("main-greeting".into())
            ])),
            "{acts:?}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = spec();
        assert_eq!(s.validate(), Ok(()));
        s.options.insert('x', "ext:1".into());
        assert_eq!(s.validate().map_err(|e| e.field), Err("options.x".into()));
        let mut s = spec();
        s.timeout_s = 0;
        assert_eq!(s.validate().map_err(|e| e.field), Err("timeout_s".into()));
        let mut s = spec();
        s.greeting.clear();
        assert_eq!(s.validate().map_err(|e| e.field), Err("greeting".into()));
        let s = MenuSpec {
            greeting: "g".into(),
            ..MenuSpec::default()
        };
        assert_eq!(s.validate().map_err(|e| e.field), Err("options".into()));
        let json = serde_json::to_string(&spec()).expect("json");
        let back: MenuSpec = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, spec());
        let partial: MenuSpec =
            serde_json::from_str(r#"{"greeting":"g","options":{"1":"ext:1"}}"#).expect("defaults");
        assert_eq!(partial.timeout_s, 5);
    }
}
