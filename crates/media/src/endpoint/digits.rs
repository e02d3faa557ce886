//! Digits regenerated towards an endpoint's phone on top of what it hears: a digit the other
//! leg of a bridge pressed (RFC 4733 or SIP INFO there) goes out here as RFC 4733 events when
//! this leg negotiated telephone-event, else as DTMF tones in the audio. Unlike a play
//! ([`super::PlayItem::Digits`]) it neither stops nor waits for the current play, and the
//! bridge keeps flowing between digits.
//!
//! Per digit, one frame (20 ms) at a time:
//! - RFC 4733 (§2.5): 7 event packets sharing the timestamp of the first — 4 updates with the
//!   duration growing by one frame (the first with the marker bit), then the end packet sent 3
//!   times with the final duration (100 ms) — then 3 frames of the bridge's audio before the
//!   next digit. No audio goes out while the event is sent.
//! - In-band: 100 ms of the digit's two frequencies replacing the bridge's audio, then 60 ms of
//!   silence (so a receiver's detector sees two presses of the same digit as two).

use std::collections::VecDeque;
use std::time::Duration;

use super::player::{EVENT_ON_FRAMES, Out, tone_into};
use super::{DigitMode, ToneSpec};
use crate::tone;

/// Digits waiting to go out at most; more are dropped (a hostile peer cannot grow the queue).
pub const MAX_QUEUED_DIGITS: usize = 32;
/// Frames of one RFC 4733 digit: events, the end repeated, then the gap.
const EVENT_FRAMES: u32 = 10;
/// Frames of one in-band digit: 100 ms tone, 60 ms silence.
const INBAND_ON_FRAMES: u32 = 5;
const INBAND_FRAMES: u32 = 8;
/// Peak amplitude of an in-band digit's two tones together (about -7 dBm0 per tone).
const INBAND_AMPLITUDE: i16 = 12_000;

/// The digits queued for one endpoint.
#[derive(Debug, Default)]
pub(crate) struct DigitSender {
    queue: VecDeque<(char, DigitMode)>,
    /// Frames into the digit at the head of the queue.
    frame: u32,
    /// The head digit's form, fixed when its first frame went out.
    rfc: Option<bool>,
}

impl DigitSender {
    /// Queues `digits` (0-9 * # A-D; others are skipped); returns how many were queued.
    pub(crate) fn push(&mut self, digits: &str, mode: DigitMode) -> usize {
        let mut n = 0;
        for c in digits.chars() {
            let c = c.to_ascii_uppercase();
            if tone::dtmf_frequencies(c).is_none() || self.queue.len() >= MAX_QUEUED_DIGITS {
                continue;
            }
            self.queue.push_back((c, mode));
            n += 1;
        }
        n
    }

    /// Whether a digit is being sent or waits.
    #[cfg(test)]
    pub(crate) fn is_active(&self) -> bool {
        !self.queue.is_empty()
    }

    /// This tick's part of the head digit. `rfc4733`: the leg negotiated telephone-event.
    /// `None`: the frame is the bridge's audio as it is (idle, or the gap after an event);
    /// `Some(Out::Event)`: send this event step instead of audio; `Some(Out::Audio)`: `frame`
    /// (`rate` Hz) was overwritten with the tone or the silence after it.
    pub(crate) fn next(&mut self, rate: u32, rfc4733: bool, frame: &mut [i16]) -> Option<Out> {
        let &(digit, mode) = self.queue.front()?;
        let rfc = *self
            .rfc
            .get_or_insert(mode == DigitMode::Rfc4733 && rfc4733);
        let step = self.frame;
        self.frame += 1;
        let total = if rfc { EVENT_FRAMES } else { INBAND_FRAMES };
        if self.frame >= total {
            self.queue.pop_front();
            self.frame = 0;
            self.rfc = None;
        }
        if rfc {
            if step < EVENT_ON_FRAMES + 2 {
                return crate::dtmf::event_for_digit(digit).map(|event| Out::Event { event, step });
            }
            return None;
        }
        frame.iter_mut().for_each(|s| *s = 0);
        if step < INBAND_ON_FRAMES
            && let Some((lo, hi)) = tone::dtmf_frequencies(digit)
        {
            let ms = u64::from(INBAND_ON_FRAMES) * 20;
            let spec = ToneSpec {
                freqs: vec![lo, hi],
                on: Duration::from_millis(ms),
                off: Duration::ZERO,
                duration: Duration::from_millis(ms),
                amplitude: INBAND_AMPLITUDE,
            };
            let start = step as usize * frame.len();
            tone_into(&spec, rate, start, frame);
        }
        Some(Out::Audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4733_digit_is_seven_event_steps_then_a_gap() {
        let mut d = DigitSender::default();
        assert_eq!(d.push("5x#", DigitMode::Rfc4733), 2);
        let mut f = vec![7i16; 160];
        let outs: Vec<_> = (0..20).map(|_| d.next(8000, true, &mut f)).collect();
        for (k, o) in outs[..7].iter().enumerate() {
            assert_eq!(
                *o,
                Some(Out::Event {
                    event: 5,
                    step: k as u32
                })
            );
        }
        assert!(outs[7..10].iter().all(Option::is_none));
        assert_eq!(outs[10], Some(Out::Event { event: 11, step: 0 }));
        assert!(!d.is_active());
        // The bridge's audio was left alone.
        assert!(f.iter().all(|&s| s == 7));
    }

    #[test]
    fn without_telephone_event_digits_go_in_band() {
        let mut d = DigitSender::default();
        d.push("1", DigitMode::Rfc4733);
        let mut pcm = Vec::new();
        for _ in 0..INBAND_FRAMES {
            let mut f = vec![3000i16; 160];
            assert_eq!(d.next(8000, false, &mut f), Some(Out::Audio));
            pcm.extend(f);
        }
        assert!(!d.is_active());
        let on = &pcm[..800];
        let (lo, hi) = tone::dtmf_frequencies('1').expect("digit");
        assert!(tone::goertzel(on, lo, 8000) > 10.0 * tone::goertzel(on, 1000.0, 8000));
        assert!(tone::goertzel(on, hi, 8000) > 10.0 * tone::goertzel(on, 1000.0, 8000));
        // The gap is silence, not the bridge's audio.
        assert!(pcm[800..].iter().all(|&s| s == 0));
        // In-band mode stays in-band even with telephone-event.
        d.push("2", DigitMode::Inband);
        let mut f = vec![0i16; 160];
        assert_eq!(d.next(8000, true, &mut f), Some(Out::Audio));
        assert!(f.iter().any(|&s| s != 0));
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut d = DigitSender::default();
        let many = "1".repeat(100);
        assert_eq!(d.push(&many, DigitMode::Rfc4733), MAX_QUEUED_DIGITS);
        assert_eq!(d.push("2", DigitMode::Rfc4733), 0);
    }
}
