//! Call-progress tones per country, as a streaming generator: dial tone, ringback, busy,
//! congestion (reorder) and call waiting, at any rate (8/16/48 kHz for calls).
//!
//! Japan follows the Ordinance for Telecommunications Business Facilities (事業用電気通信設備規則,
//! 別表第五号) and NTT's published tones: every tone is 400 Hz; ringback (呼出音) is 400 Hz
//! amplitude-modulated by 16 Hz, 1 s on / 2 s off; busy (話中音) 0.5 s / 0.5 s; dial tone
//! (発信音) continuous. Japanese exchanges give congestion with the busy tone, so congestion is
//! 400 Hz 0.5/0.5 too; call waiting (割込音) is a 16 Hz-modulated 400 Hz burst every few seconds.
//!
//! North America follows the Precise Tone Plan (ANSI T1.401): dial 350+440 Hz continuous at
//! -13 dBm0 per tone, ringback 440+480 Hz 2 s / 4 s at -19 dBm0, busy 480+620 Hz 0.5/0.5 and
//! reorder 480+620 Hz 0.25/0.25 at -24 dBm0, call waiting 440 Hz 0.3 s then 9.7 s silence.
//!
//! Every burst starts and ends with a 4 ms ramp so the cadence does not click.

use std::f64::consts::PI;

/// A country's tone plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Country {
    /// Japan (NTT).
    Japan,
    /// North America (NANP, Precise Tone Plan).
    NorthAmerica,
}

impl Country {
    /// The country for an ISO 3166 alpha-2 code (`"JP"`, `"US"`, `"CA"`) or `"NA"` (the
    /// `tones.country` setting's North America), case-insensitive.
    pub fn from_code(code: &str) -> Option<Country> {
        match code.to_ascii_uppercase().as_str() {
            "JP" => Some(Country::Japan),
            "US" | "CA" | "NA" | "NANP" => Some(Country::NorthAmerica),
            _ => None,
        }
    }
}

/// A call-progress tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tone {
    /// Ready for dialling.
    Dial,
    /// The called phone is ringing.
    Ringback,
    /// The called party is busy.
    Busy,
    /// No route or no resources (reorder / fast busy).
    Congestion,
    /// A second call is waiting.
    CallWaiting,
}

/// One part of a cadence: `ms` milliseconds of the tone (`on`) or of silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Whether the tone sounds.
    pub on: bool,
    /// Length in milliseconds.
    pub ms: u32,
}

/// What a tone sounds like: frequencies, level, optional amplitude modulation and cadence.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpec {
    /// Component frequencies in Hz, summed.
    pub freqs: &'static [f64],
    /// Level of each component in dBm0.
    pub level_dbm0: f64,
    /// Amplitude modulation frequency (Japan's 16 Hz), if any.
    pub modulation_hz: Option<f64>,
    /// Repeating cadence; a single `on` segment is a continuous tone.
    pub cadence: &'static [Segment],
}

/// The tone's description for a country.
pub fn spec(country: Country, tone: Tone) -> ToneSpec {
    match (country, tone) {
        (Country::Japan, Tone::Dial) => ToneSpec {
            freqs: &[400.0],
            level_dbm0: -15.0,
            modulation_hz: None,
            cadence: &[Segment { on: true, ms: 1000 }],
        },
        (Country::Japan, Tone::Ringback) => ToneSpec {
            freqs: &[400.0],
            level_dbm0: -15.0,
            modulation_hz: Some(16.0),
            cadence: &[
                Segment { on: true, ms: 1000 },
                Segment {
                    on: false,
                    ms: 2000,
                },
            ],
        },
        (Country::Japan, Tone::Busy | Tone::Congestion) => ToneSpec {
            freqs: &[400.0],
            level_dbm0: -15.0,
            modulation_hz: None,
            cadence: &[
                Segment { on: true, ms: 500 },
                Segment { on: false, ms: 500 },
            ],
        },
        (Country::Japan, Tone::CallWaiting) => ToneSpec {
            freqs: &[400.0],
            level_dbm0: -15.0,
            modulation_hz: Some(16.0),
            cadence: &[
                Segment { on: true, ms: 500 },
                Segment {
                    on: false,
                    ms: 8000,
                },
            ],
        },
        (Country::NorthAmerica, Tone::Dial) => ToneSpec {
            freqs: &[350.0, 440.0],
            level_dbm0: -13.0,
            modulation_hz: None,
            cadence: &[Segment { on: true, ms: 1000 }],
        },
        (Country::NorthAmerica, Tone::Ringback) => ToneSpec {
            freqs: &[440.0, 480.0],
            level_dbm0: -19.0,
            modulation_hz: None,
            cadence: &[
                Segment { on: true, ms: 2000 },
                Segment {
                    on: false,
                    ms: 4000,
                },
            ],
        },
        (Country::NorthAmerica, Tone::Busy) => ToneSpec {
            freqs: &[480.0, 620.0],
            level_dbm0: -24.0,
            modulation_hz: None,
            cadence: &[
                Segment { on: true, ms: 500 },
                Segment { on: false, ms: 500 },
            ],
        },
        (Country::NorthAmerica, Tone::Congestion) => ToneSpec {
            freqs: &[480.0, 620.0],
            level_dbm0: -24.0,
            modulation_hz: None,
            cadence: &[
                Segment { on: true, ms: 250 },
                Segment { on: false, ms: 250 },
            ],
        },
        (Country::NorthAmerica, Tone::CallWaiting) => ToneSpec {
            freqs: &[440.0],
            level_dbm0: -13.0,
            modulation_hz: None,
            cadence: &[
                Segment { on: true, ms: 300 },
                Segment {
                    on: false,
                    ms: 9700,
                },
            ],
        },
    }
}

/// Peak amplitude of a sine at `dbm0` in 16-bit linear PCM (G.711: +3.17 dBm0 is full scale).
pub fn dbm0_to_peak(dbm0: f64) -> f64 {
    32767.0 * 10f64.powf((dbm0 - 3.17) / 20.0)
}

/// Length of the on/off ramps.
const RAMP_MS: u32 = 4;

/// A streaming tone generator: call [`ProgressTone::next_frame`] once per frame.
#[derive(Debug, Clone)]
pub struct ProgressTone {
    spec: ToneSpec,
    rate: u32,
    /// Cadence segment boundaries in samples (cumulative end of each segment).
    ends: Vec<u64>,
    period: u64,
    /// Samples generated so far.
    pos: u64,
    /// Per-sample phase increments (radians) of each component and of the modulation.
    steps: Vec<f64>,
    mod_step: f64,
    peak: f64,
    ramp: u64,
}

impl ProgressTone {
    /// A generator of `tone` as `country` sounds it, at `rate` samples per second (non-zero).
    pub fn new(country: Country, tone: Tone, rate: u32) -> ProgressTone {
        ProgressTone::from_spec(spec(country, tone), rate)
    }

    /// A generator for any [`ToneSpec`].
    pub fn from_spec(spec: ToneSpec, rate: u32) -> ProgressTone {
        let rate = rate.max(1);
        let mut ends = Vec::with_capacity(spec.cadence.len());
        let mut acc = 0u64;
        for seg in spec.cadence {
            acc += u64::from(seg.ms) * u64::from(rate) / 1000;
            ends.push(acc);
        }
        let r = f64::from(rate);
        let steps = spec.freqs.iter().map(|f| 2.0 * PI * f / r).collect();
        let mod_step = spec.modulation_hz.map_or(0.0, |m| 2.0 * PI * m / r);
        let peak = dbm0_to_peak(spec.level_dbm0);
        ProgressTone {
            spec,
            rate,
            ends,
            period: acc.max(1),
            pos: 0,
            steps,
            mod_step,
            peak,
            ramp: u64::from(RAMP_MS) * u64::from(rate) / 1000,
        }
    }

    /// The sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The description being played.
    pub fn spec(&self) -> &ToneSpec {
        &self.spec
    }

    /// Starts the cadence again from its beginning.
    pub fn restart(&mut self) {
        self.pos = 0;
    }

    /// Gain (0..=1) of the envelope at position `p` within the period.
    fn envelope(&self, p: u64) -> f64 {
        let continuous = self.spec.cadence.len() == 1 && self.spec.cadence[0].on;
        let mut start = 0u64;
        for (seg, &end) in self.spec.cadence.iter().zip(&self.ends) {
            if p < end {
                if !seg.on {
                    return 0.0;
                }
                if continuous || self.ramp == 0 {
                    return 1.0;
                }
                let from_start = p - start;
                let to_end = end - p - 1;
                let edge = from_start.min(to_end);
                return if edge < self.ramp {
                    edge as f64 / self.ramp as f64
                } else {
                    1.0
                };
            }
            start = end;
        }
        0.0
    }

    /// Fills `frame` with the next samples of the tone.
    pub fn next_frame(&mut self, frame: &mut [i16]) {
        for s in frame.iter_mut() {
            let p = self.pos % self.period;
            let env = self.envelope(p);
            let v = if env == 0.0 {
                0.0
            } else {
                // Phase from the absolute position keeps the tone continuous across frames
                // and exact over long runs (the position is reduced per component).
                let n = self.pos as f64;
                let mut v: f64 = self.steps.iter().map(|st| (st * n).sin()).sum();
                if self.mod_step > 0.0 {
                    // 85 % AM: the 16 Hz warble of Japanese ringback.
                    v *= 0.575 + 0.425 * (self.mod_step * n).sin();
                }
                v * self.peak * env
            };
            *s = v.round().clamp(-32768.0, 32767.0) as i16;
            self.pos += 1;
            if self.pos == self.period * 1_000_000 {
                // Keep the f64 phase argument small; whole periods of the cadence are whole
                // seconds' multiples of 1 ms, so integer-Hz tones restart on a zero crossing.
                self.pos = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{energy, goertzel};

    /// Generates `ms` milliseconds in 20 ms frames.
    fn run(g: &mut ProgressTone, ms: u32) -> Vec<i16> {
        let per = (g.rate() / 50) as usize;
        let mut out = Vec::new();
        let mut frame = vec![0i16; per];
        for _ in 0..ms / 20 {
            g.next_frame(&mut frame);
            out.extend_from_slice(&frame);
        }
        out
    }

    /// On/off pattern per 10 ms block: true where the block carries tone energy.
    fn pattern(samples: &[i16], rate: u32) -> Vec<bool> {
        samples
            .chunks((rate / 100) as usize)
            .map(|c| energy(c) > 1e-5)
            .collect()
    }

    /// Lengths of the runs of equal values, in 10 ms blocks.
    fn runs(p: &[bool]) -> Vec<(bool, usize)> {
        let mut v: Vec<(bool, usize)> = Vec::new();
        for &b in p {
            match v.last_mut() {
                Some((x, n)) if *x == b => *n += 1,
                _ => v.push((b, 1)),
            }
        }
        v
    }

    #[test]
    fn cadences_match_the_plans() {
        type Case = (Country, Tone, &'static [(bool, usize)]);
        let cases: &[Case] = &[
            (Country::Japan, Tone::Ringback, &[(true, 100), (false, 200)]),
            (Country::Japan, Tone::Busy, &[(true, 50), (false, 50)]),
            (Country::Japan, Tone::Congestion, &[(true, 50), (false, 50)]),
            (
                Country::NorthAmerica,
                Tone::Ringback,
                &[(true, 200), (false, 400)],
            ),
            (
                Country::NorthAmerica,
                Tone::Busy,
                &[(true, 50), (false, 50)],
            ),
            (
                Country::NorthAmerica,
                Tone::Congestion,
                &[(true, 25), (false, 25)],
            ),
            (
                Country::NorthAmerica,
                Tone::CallWaiting,
                &[(true, 30), (false, 970)],
            ),
            (
                Country::Japan,
                Tone::CallWaiting,
                &[(true, 50), (false, 800)],
            ),
        ];
        for &(country, tone, want) in cases {
            for rate in [8000, 16000, 48000] {
                let mut g = ProgressTone::new(country, tone, rate);
                let period: u32 = g.spec().cadence.iter().map(|s| s.ms).sum();
                let out = run(&mut g, period * 2);
                let r = runs(&pattern(&out, rate));
                let mut expect = want.to_vec();
                expect.extend_from_slice(want);
                assert_eq!(r, expect, "{country:?} {tone:?} at {rate}");
            }
        }
    }

    #[test]
    fn dial_tone_is_continuous() {
        for country in [Country::Japan, Country::NorthAmerica] {
            let mut g = ProgressTone::new(country, Tone::Dial, 8000);
            let out = run(&mut g, 3000);
            assert!(pattern(&out, 8000).iter().all(|&b| b), "{country:?}");
        }
    }

    #[test]
    fn frequencies_match_the_plans() {
        let cases: &[(Country, Tone, &[f64], &[f64])] = &[
            (
                Country::Japan,
                Tone::Busy,
                &[400.0],
                &[350.0, 440.0, 480.0, 620.0],
            ),
            (Country::Japan, Tone::Dial, &[400.0], &[350.0, 440.0]),
            (
                Country::NorthAmerica,
                Tone::Dial,
                &[350.0, 440.0],
                &[400.0, 480.0],
            ),
            (
                Country::NorthAmerica,
                Tone::Ringback,
                &[440.0, 480.0],
                &[400.0, 620.0],
            ),
            (
                Country::NorthAmerica,
                Tone::Busy,
                &[480.0, 620.0],
                &[400.0, 440.0],
            ),
            (
                Country::NorthAmerica,
                Tone::CallWaiting,
                &[440.0],
                &[480.0, 620.0],
            ),
        ];
        for &(country, tone, present, absent) in cases {
            for rate in [8000, 16000, 48000] {
                let mut g = ProgressTone::new(country, tone, rate);
                let out = run(&mut g, 200);
                let burst = &out[..(rate / 10) as usize]; // first 100 ms are on for every tone
                let e = energy(burst);
                for &f in present {
                    let p = goertzel(burst, f, rate) / (2.0 * e);
                    assert!(p > 0.3, "{country:?} {tone:?} {f} Hz at {rate}: {p}");
                }
                for &f in absent {
                    let p = goertzel(burst, f, rate) / (2.0 * e);
                    assert!(p < 0.05, "{country:?} {tone:?} {f} Hz at {rate}: {p}");
                }
            }
        }
    }

    #[test]
    fn japanese_ringback_is_modulated_at_16_hz() {
        let mut g = ProgressTone::new(Country::Japan, Tone::Ringback, 8000);
        let out = run(&mut g, 1000);
        // Envelope per 5 ms block over the burst swings up and down 16 times a second.
        let env: Vec<f64> = out[80..7920].chunks(40).map(|c| energy(c).sqrt()).collect();
        let mean = env.iter().sum::<f64>() / env.len() as f64;
        let crossings = env
            .windows(2)
            .filter(|w| (w[0] < mean) != (w[1] < mean))
            .count();
        // ~0.98 s of burst: about 31 crossings of the mean for a 16 Hz envelope.
        assert!((28..=34).contains(&crossings), "{crossings}");
        // Sidebands at 400 ± 16 Hz carry energy, the carrier dominates.
        let burst = &out[..8000];
        assert!(goertzel(burst, 416.0, 8000) > 0.02 * goertzel(burst, 400.0, 8000));
    }

    #[test]
    fn levels_follow_dbm0() {
        // NA busy: two tones at -24 dBm0 each.
        let mut g = ProgressTone::new(Country::NorthAmerica, Tone::Busy, 8000);
        let out = run(&mut g, 500);
        let on = &out[400..3600];
        let per = dbm0_to_peak(-24.0);
        let want_rms = (2.0 * per * per / 2.0).sqrt();
        let rms = (energy(on)).sqrt() * 32768.0;
        assert!((rms / want_rms - 1.0).abs() < 0.05, "{rms} vs {want_rms}");
        assert!(
            out.iter()
                .all(|&s| f64::from(s.unsigned_abs()) <= 2.0 * per + 1.0)
        );
    }

    #[test]
    fn no_clicks_at_cadence_edges_or_frame_edges() {
        let mut g = ProgressTone::new(Country::NorthAmerica, Tone::Congestion, 8000);
        let out = run(&mut g, 1000);
        let peak = 2.0 * dbm0_to_peak(-24.0);
        // Max step of the two-tone signal is ≈ peak·2π·620/8000 ≈ 0.49 peak; a hard on/off edge
        // could jump by the full peak.
        let max_step = out
            .windows(2)
            .map(|w| f64::from((i32::from(w[1]) - i32::from(w[0])).abs()))
            .fold(0.0, f64::max);
        assert!(max_step < 0.55 * peak, "{max_step} vs {peak}");
        // Frame size does not change the signal.
        let mut a = ProgressTone::new(Country::Japan, Tone::Ringback, 16000);
        let mut b = ProgressTone::new(Country::Japan, Tone::Ringback, 16000);
        let mut whole = vec![0i16; 16000];
        a.next_frame(&mut whole);
        let mut pieces = Vec::new();
        for n in [7usize, 320, 1000, 14673] {
            let mut f = vec![0i16; n];
            b.next_frame(&mut f);
            pieces.extend_from_slice(&f);
        }
        assert_eq!(whole, pieces);
        b.restart();
        let mut again = vec![0i16; 16000];
        b.next_frame(&mut again);
        assert_eq!(whole, again);
    }

    #[test]
    fn country_codes() {
        assert_eq!(Country::from_code("jp"), Some(Country::Japan));
        assert_eq!(Country::from_code("US"), Some(Country::NorthAmerica));
        assert_eq!(Country::from_code("de"), None);
    }
}
