//! The player of one endpoint: turns a [`PlayRequest`] into one frame of PCM (or one RFC 4733
//! event step) per tick. Files arrive decoded from the loader; until then it plays silence.

use std::f64::consts::PI;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DigitMode, EndpointId, EngineEvent, PlayItem, PlayRequest, ToneSpec};
use crate::tone;

/// Frames a file may take to load before it counts as unreadable (5 s).
const LOAD_TIMEOUT_FRAMES: u32 = 250;
/// Frames of one RFC 4733 digit: 5 with the event growing, 2 repeating the end, 3 of silence.
pub(crate) const EVENT_ON_FRAMES: u32 = 5;
const EVENT_FRAMES: u32 = 10;
/// In-band digit: 100 ms tone, 60 ms silence.
const INBAND_ON_MS: usize = 100;
const INBAND_OFF_MS: usize = 60;

/// A file the player waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadRequest {
    /// Answer with this in [`Player::file_loaded`].
    pub ticket: u64,
    pub path: PathBuf,
    /// The rate the PCM is wanted at.
    pub rate: u32,
}

/// What the frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// The PCM frame.
    Audio,
    /// Step `step` (0-based) of an RFC 4733 event instead of audio.
    Event { event: u8, step: u32 },
}

#[derive(Debug, Clone)]
enum Cur {
    Start,
    Pcm {
        data: Arc<[i16]>,
        pos: usize,
    },
    Waiting {
        ticket: u64,
        frames: u32,
    },
    Tones {
        specs: Vec<ToneSpec>,
        i: usize,
        pos: usize,
    },
    Silence {
        left: usize,
    },
    Digits {
        digits: Vec<char>,
        i: usize,
        /// Samples (in-band) or frames (RFC 4733) into the current digit.
        pos: usize,
        rfc: bool,
    },
}

/// A file of the play: requested from the loader when the play starts (all of them at once, so
/// one prompt follows another without a gap), kept for repeats.
#[derive(Debug, Clone)]
struct FileSlot {
    path: PathBuf,
    ticket: u64,
    result: Option<Result<Arc<[i16]>, String>>,
    /// Its `FileError` was sent (once per play, however often it repeats).
    reported: bool,
}

impl FileSlot {
    /// What to play for it now that its result is known (or `Waiting`).
    fn cur(&mut self, ep: EndpointId, events: &mut Vec<EngineEvent>) -> Cur {
        match &self.result {
            None => Cur::Waiting {
                ticket: self.ticket,
                frames: 0,
            },
            Some(Ok(data)) => Cur::Pcm {
                data: data.clone(),
                pos: 0,
            },
            Some(Err(reason)) => {
                if !self.reported {
                    self.reported = true;
                    events.push(EngineEvent::FileError {
                        ep,
                        path: self.path.clone(),
                        reason: reason.clone(),
                    });
                }
                Cur::Tones {
                    specs: ToneSpec::error_tone(),
                    i: 0,
                    pos: 0,
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Active {
    id: u64,
    files: Vec<FileSlot>,
    /// The rate the files were requested at (0: not yet).
    files_rate: u32,
    items: Vec<PlayItem>,
    repeat: u32,
    round: u32,
    index: usize,
    stop_on_dtmf: bool,
    cur: Cur,
}

/// The play state of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Player {
    active: Option<Active>,
    ticket: u64,
}

impl Player {
    pub(crate) fn is_playing(&self) -> bool {
        self.active.is_some()
    }

    /// Starts `req`, ending (interrupted) whatever played.
    pub(crate) fn play(&mut self, ep: EndpointId, req: PlayRequest, events: &mut Vec<EngineEvent>) {
        self.stop(ep, events);
        if req.items.is_empty() {
            events.push(EngineEvent::PlayDone {
                ep,
                id: req.id,
                interrupted: false,
            });
            return;
        }
        self.active = Some(Active {
            id: req.id,
            files: Vec::new(),
            files_rate: 0,
            items: req.items,
            repeat: req.repeat,
            round: 0,
            index: 0,
            stop_on_dtmf: req.stop_on_dtmf,
            cur: Cur::Start,
        });
    }

    /// Ends the play (interrupted), if any.
    pub(crate) fn stop(&mut self, ep: EndpointId, events: &mut Vec<EngineEvent>) {
        if let Some(a) = self.active.take() {
            events.push(EngineEvent::PlayDone {
                ep,
                id: a.id,
                interrupted: true,
            });
        }
    }

    /// A digit arrived: stops a play that asked for barge-in.
    pub(crate) fn on_dtmf(&mut self, ep: EndpointId, events: &mut Vec<EngineEvent>) {
        if self.active.as_ref().is_some_and(|a| a.stop_on_dtmf) {
            self.stop(ep, events);
        }
    }

    /// The loader's answer for request `ticket`.
    pub(crate) fn file_loaded(
        &mut self,
        ep: EndpointId,
        ticket: u64,
        result: Result<Arc<[i16]>, String>,
        events: &mut Vec<EngineEvent>,
    ) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let Some(slot) = a.files.iter_mut().find(|f| f.ticket == ticket) else {
            return;
        };
        slot.result = Some(result);
        if matches!(a.cur, Cur::Waiting { ticket: t, .. } if t == ticket) {
            a.cur = slot.cur(ep, events);
        }
    }

    /// Fills `frame` (zeroed by the caller, `rate` Hz) with the next 20 ms.
    pub(crate) fn fill(
        &mut self,
        ep: EndpointId,
        rate: u32,
        rfc4733: bool,
        frame: &mut [i16],
        events: &mut Vec<EngineEvent>,
        loads: &mut Vec<LoadRequest>,
    ) -> Out {
        let Some(a) = self.active.as_mut() else {
            return Out::Audio;
        };
        if a.files_rate != rate {
            a.files_rate = rate;
            a.files.clear();
            for item in &a.items {
                if let PlayItem::File(path) = item
                    && !a.files.iter().any(|f| &f.path == path)
                {
                    self.ticket += 1;
                    loads.push(LoadRequest {
                        ticket: self.ticket,
                        path: path.clone(),
                        rate,
                    });
                    a.files.push(FileSlot {
                        path: path.clone(),
                        ticket: self.ticket,
                        result: None,
                        reported: false,
                    });
                }
            }
            if let Cur::Waiting { .. } | Cur::Pcm { .. } = a.cur {
                // Files at the old rate: start the item again.
                a.cur = Cur::Start;
            }
        }
        let mut filled = 0;
        // Each pass either fills samples or moves to the next item; a list of empty items that
        // repeats forever must still end the frame.
        let mut budget = 2 * a.items.len() + 4;
        while filled < frame.len() && budget > 0 {
            budget -= 1;
            let Some(item) = a.items.get(a.index) else {
                a.round += 1;
                if a.repeat != 0 && a.round >= a.repeat {
                    events.push(EngineEvent::PlayDone {
                        ep,
                        id: a.id,
                        interrupted: false,
                    });
                    self.active = None;
                    return Out::Audio;
                }
                a.index = 0;
                a.cur = Cur::Start;
                continue;
            };
            if let Cur::Start = a.cur {
                a.cur = match item {
                    PlayItem::File(path) => match a.files.iter_mut().find(|f| &f.path == path) {
                        Some(slot) => slot.cur(ep, events),
                        None => Cur::Silence { left: 0 },
                    },
                    PlayItem::Tone(spec) => Cur::Tones {
                        specs: vec![spec.clone()],
                        i: 0,
                        pos: 0,
                    },
                    PlayItem::Silence(d) => Cur::Silence {
                        left: tone::sample_count(*d, rate),
                    },
                    PlayItem::Digits(s, mode) => Cur::Digits {
                        digits: s
                            .chars()
                            .filter(|c| tone::dtmf_frequencies(*c).is_some())
                            .collect(),
                        i: 0,
                        pos: 0,
                        rfc: *mode == DigitMode::Rfc4733 && rfc4733,
                    },
                };
            }
            let rest = &mut frame[filled..];
            let done = match &mut a.cur {
                Cur::Start => true,
                Cur::Pcm { data, pos } => {
                    let n = rest.len().min(data.len() - *pos);
                    rest[..n].copy_from_slice(&data[*pos..*pos + n]);
                    *pos += n;
                    filled += n;
                    *pos >= data.len()
                }
                Cur::Waiting { ticket, frames } => {
                    *frames += 1;
                    if *frames > LOAD_TIMEOUT_FRAMES {
                        let ticket = *ticket;
                        if let Some(slot) = a.files.iter_mut().find(|f| f.ticket == ticket) {
                            slot.result = Some(Err("file took too long to load".to_string()));
                            a.cur = slot.cur(ep, events);
                        } else {
                            a.cur = Cur::Silence { left: 0 };
                        }
                        continue;
                    }
                    // Silence until the loader answers.
                    filled = frame.len();
                    false
                }
                Cur::Tones { specs, i, pos } => {
                    let Some(spec) = specs.get(*i) else {
                        a.cur = Cur::Start;
                        a.index += 1;
                        continue;
                    };
                    let total = tone::sample_count(spec.duration, rate);
                    let n = rest.len().min(total.saturating_sub(*pos));
                    tone_into(spec, rate, *pos, &mut rest[..n]);
                    *pos += n;
                    filled += n;
                    if *pos >= total {
                        *i += 1;
                        *pos = 0;
                    }
                    *i >= specs.len()
                }
                Cur::Silence { left } => {
                    let n = rest.len().min(*left);
                    *left -= n;
                    filled += n;
                    *left == 0
                }
                Cur::Digits {
                    digits,
                    i,
                    pos,
                    rfc,
                } => {
                    let Some(&digit) = digits.get(*i) else {
                        a.cur = Cur::Start;
                        a.index += 1;
                        continue;
                    };
                    if *rfc {
                        if filled > 0 {
                            // Events take whole frames: start with the next one.
                            break;
                        }
                        let step = *pos as u32;
                        *pos += 1;
                        if *pos as u32 >= EVENT_FRAMES {
                            *i += 1;
                            *pos = 0;
                        }
                        let out = if step < EVENT_ON_FRAMES + 2 {
                            crate::dtmf::event_for_digit(digit)
                                .map(|event| Out::Event { event, step })
                        } else {
                            None
                        };
                        if *i >= digits.len() {
                            a.cur = Cur::Start;
                            a.index += 1;
                        }
                        return out.unwrap_or(Out::Audio);
                    }
                    let on = rate as usize * INBAND_ON_MS / 1000;
                    let len = on + rate as usize * INBAND_OFF_MS / 1000;
                    let n = rest.len().min(len - *pos);
                    if let Some((lo, hi)) = tone::dtmf_frequencies(digit) {
                        let spec = ToneSpec {
                            freqs: vec![lo, hi],
                            on: std::time::Duration::from_millis(INBAND_ON_MS as u64),
                            off: std::time::Duration::from_millis(INBAND_OFF_MS as u64),
                            duration: std::time::Duration::from_millis(
                                (INBAND_ON_MS + INBAND_OFF_MS) as u64,
                            ),
                            amplitude: 12000,
                        };
                        tone_into(&spec, rate, *pos, &mut rest[..n]);
                    }
                    *pos += n;
                    filled += n;
                    if *pos >= len {
                        *i += 1;
                        *pos = 0;
                    }
                    *i >= digits.len()
                }
            };
            if done {
                a.cur = Cur::Start;
                a.index += 1;
            }
        }
        Out::Audio
    }
}

/// Writes samples `start..start + out.len()` of a cadenced tone.
pub(crate) fn tone_into(spec: &ToneSpec, rate: u32, start: usize, out: &mut [i16]) {
    if spec.freqs.is_empty() || rate == 0 {
        return;
    }
    let on = tone::sample_count(spec.on, rate);
    let cycle = on + tone::sample_count(spec.off, rate);
    let per = f64::from(spec.amplitude) / spec.freqs.len() as f64;
    let r = f64::from(rate);
    for (k, s) in out.iter_mut().enumerate() {
        let n = start + k;
        if cycle > 0 && n % cycle >= on {
            *s = 0;
            continue;
        }
        let t = n as f64 / r;
        let v: f64 = spec
            .freqs
            .iter()
            .map(|f| (2.0 * PI * f * t).sin() * per)
            .sum();
        *s = v as i16;
    }
}
