//! In-band DTMF: a streaming Goertzel detector with talk-off protection, and a generator.
//!
//! The detector cuts the PCM stream into blocks of ~13 ms (105 samples at 8 kHz, 210 at
//! 16 kHz — long enough to tell adjacent DTMF rows apart) and runs a Goertzel filter for each
//! of the eight DTMF frequencies. A block *hits* a digit only if, in the spirit of ITU-T Q.24:
//! - both tones are above a minimum level ([`DetectorConfig::min_level_dbm0`]);
//! - the twist is within limits (high tone weaker than the low one by at most
//!   [`DetectorConfig::max_normal_twist_db`], stronger by at most
//!   [`DetectorConfig::max_reverse_twist_db`]);
//! - each tone stands [`DetectorConfig::relative_peak_db`] above the other frequencies of its
//!   group (speech spreads energy over several);
//! - the two tones carry most of the block's energy ([`DetectorConfig::min_energy_share`]);
//! - neither tone has a strong second or third harmonic (voices and instruments do, DTMF
//!   does not);
//! - neither tone is off its nominal frequency by more than ~2.5 % (Q.24: accept 1.5 %,
//!   reject 3.5 %).
//!
//! A digit is reported once it ends, with its start sample and duration, if it lasted at least
//! [`DetectorConfig::min_duration_ms`]. The duration is measured, not counted in blocks: a block
//! the tone only partly covers contributes its covered share (the Goertzel amplitude grows with
//! the number of tone samples in the block), so a 20 ms burst is not mistaken for a 40 ms one.
//! A single missed block inside a tone (a dropout of up to ~10 ms) is bridged; two missed
//! blocks end it, so digits separated by a 40 ms pause are told apart.

use std::f64::consts::PI;

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The (row, column) frequencies of a DTMF digit (`0-9 * # A-D`, case-insensitive).
pub fn digit_frequencies(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase();
    KEYS.iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == d).map(|c| (ROWS[r], COLS[c])))
}

/// Squared peak amplitude (full scale = 1) of a sine at `dbm0` (G.711: +3.17 dBm0 full scale).
fn dbm0_power(dbm0: f64) -> f64 {
    10f64.powf((dbm0 - 3.17) / 10.0)
}

/// Detector thresholds; [`Default`] follows Q.24 figures used in North America and Japan.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Minimum level of each tone, dBm0.
    pub min_level_dbm0: f64,
    /// How much weaker the high tone may be than the low tone, dB.
    pub max_normal_twist_db: f64,
    /// How much stronger the high tone may be than the low tone, dB.
    pub max_reverse_twist_db: f64,
    /// How far each tone must stand above the other frequencies of its group, dB.
    pub relative_peak_db: f64,
    /// Share of the block's energy the two tones must carry (0..1).
    pub min_energy_share: f64,
    /// How far below its fundamental a tone's second harmonic must be, dB.
    pub harmonic_rejection_db: f64,
    /// Shortest tone reported, milliseconds.
    pub min_duration_ms: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_level_dbm0: -33.0,
            max_normal_twist_db: 8.0,
            max_reverse_twist_db: 4.0,
            relative_peak_db: 8.0,
            min_energy_share: 0.8,
            harmonic_rejection_db: 12.0,
            min_duration_ms: 30,
        }
    }
}

/// A detected in-band digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InbandDigit {
    /// `0-9`, `*`, `#`, `A-D`.
    pub digit: char,
    /// Sample index (from the start of the stream) where the tone began.
    pub start: u64,
    /// Length of the tone in samples.
    pub duration: u64,
}

impl InbandDigit {
    /// Duration in milliseconds at `rate`.
    pub fn duration_ms(&self, rate: u32) -> u64 {
        self.duration * 1000 / u64::from(rate.max(1))
    }
}

/// State of the digit being heard.
#[derive(Debug, Clone, Copy)]
struct Run {
    digit: char,
    /// Row and column index of the digit's tones.
    row: usize,
    col: usize,
    /// Block index of the first hit.
    first_block: u64,
    /// Tone amplitude in the block before the first hit (a partly covered edge block that
    /// failed the spectral tests still holds part of the tone).
    lead_amp: f64,
    /// Tone amplitude in the first missed block after the last hit.
    tail_amp: f64,
    peak_amp: f64,
    /// Sum of hit amplitudes (full blocks contribute the peak).
    amp_sum: f64,
    misses: u32,
}

/// What one block holds: the eight tone powers and the digit it hits, if any.
#[derive(Debug, Clone, Copy)]
struct BlockResult {
    p: [f64; 8],
    hit: Option<(char, usize, usize)>,
}

impl BlockResult {
    /// Amplitude of the weaker of two tones (row index, column index).
    fn amp(&self, row: usize, col: usize) -> f64 {
        self.p[row].min(self.p[4 + col]).sqrt()
    }
}

/// The streaming detector. Feed any number of samples at a time; it keeps no more than one
/// block of audio.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    cfg: DetectorConfig,
    rate: u32,
    block: Vec<f32>,
    block_len: usize,
    /// Goertzel coefficients: 4 rows, 4 columns.
    coeff: [f32; 8],
    /// Coefficients of the second and third harmonics of the 8 tones (a third harmonic above
    /// 95 % of the Nyquist frequency is not checked: `None`).
    harm: [[f32; 3]; 8],
    harm3: [Option<[f32; 3]>; 8],
    /// Coefficients 1.5 % below and above each tone (the edge of Q.24's tolerance).
    near: [[f32; 2]; 8],
    /// Coefficients 5 % below and above each tone (frequency deviation probes).
    dev_lo: [f32; 8],
    dev_hi: [f32; 8],
    blocks_done: u64,
    run: Option<Run>,
    /// Tone powers of the previous block.
    prev: [f64; 8],
    min_power: f64,
}

fn goertzel_coeff(freq: f64, rate: u32) -> f32 {
    (2.0 * (2.0 * PI * freq / f64::from(rate)).cos()) as f32
}

/// Goertzel power normalised so a sine of amplitude A (full scale 1) gives about A².
fn goertzel(block: &[f32], coeff: f32) -> f64 {
    let (mut s1, mut s2) = (0f32, 0f32);
    for &x in block {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = f64::from(s1 * s1 + s2 * s2 - coeff * s1 * s2);
    let n = block.len() as f64;
    p * 4.0 / (n * n)
}

impl DtmfDetector {
    /// A detector for PCM at `rate` Hz (8000 or 16000; any rate ≥ 8000 works).
    pub fn new(rate: u32) -> DtmfDetector {
        DtmfDetector::with_config(rate, DetectorConfig::default())
    }

    /// A detector with explicit thresholds.
    pub fn with_config(rate: u32, cfg: DetectorConfig) -> DtmfDetector {
        let rate = rate.max(8000);
        // 105 samples at 8 kHz: ~76 Hz resolution separates adjacent rows and columns.
        let block_len = (105 * rate as usize).div_ceil(8000);
        let mut coeff = [0f32; 8];
        let mut harm = [[0f32; 3]; 8];
        let mut harm3 = [None; 8];
        let mut near = [[0f32; 2]; 8];
        let mut dev_lo = [0f32; 8];
        let mut dev_hi = [0f32; 8];
        for (i, f) in ROWS.iter().chain(COLS.iter()).enumerate() {
            coeff[i] = goertzel_coeff(*f, rate);
            // Each harmonic is looked for at its nominal frequency and 2 % either side, so a
            // slightly detuned source cannot slip its harmonics between the filters.
            let probes = |h: f64| [0.98, 1.0, 1.02].map(|k| goertzel_coeff(h * f * k, rate));
            harm[i] = probes(2.0);
            near[i] = [0.985, 1.015].map(|k| goertzel_coeff(f * k, rate));
            if 3.0 * f * 1.02 < 0.95 * f64::from(rate) / 2.0 {
                harm3[i] = Some(probes(3.0));
            }
            dev_lo[i] = goertzel_coeff(f * 0.95, rate);
            dev_hi[i] = goertzel_coeff(f * 1.05, rate);
        }
        let min_power = dbm0_power(cfg.min_level_dbm0);
        DtmfDetector {
            cfg,
            rate,
            block: Vec::with_capacity(block_len),
            block_len,
            coeff,
            harm,
            harm3,
            near,
            dev_lo,
            dev_hi,
            blocks_done: 0,
            run: None,
            prev: [0.0; 8],
            min_power,
        }
    }

    /// The sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Feeds samples; digits that ended within them are appended to `out`.
    pub fn process(&mut self, pcm: &[i16], out: &mut Vec<InbandDigit>) {
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (self.block_len - self.block.len()).min(rest.len());
            self.block
                .extend(rest[..take].iter().map(|&s| f32::from(s) / 32768.0));
            rest = &rest[take..];
            if self.block.len() == self.block_len {
                let res = self.analyse();
                self.block.clear();
                self.step(&res, out);
                self.prev = res.p;
                self.blocks_done += 1;
            }
        }
    }

    /// Reports a digit still sounding at the end of the stream (call it on hang-up).
    pub fn flush(&mut self, out: &mut Vec<InbandDigit>) {
        if let Some(run) = self.run.take() {
            self.finish(run, out);
        }
    }

    /// The tone powers of the current block and the digit it carries, if any.
    fn analyse(&self) -> BlockResult {
        let mut res = BlockResult {
            p: [0.0; 8],
            hit: None,
        };
        res.p = self.powers();
        res.hit = self.check(&res.p);
        res
    }

    fn powers(&self) -> [f64; 8] {
        let mut p = [0f64; 8];
        for (i, c) in self.coeff.iter().enumerate() {
            p[i] = goertzel(&self.block, *c);
        }
        p
    }

    /// The Q.24-style tests on one block; the digit's (key, row, column) if all pass.
    fn check(&self, p: &[f64; 8]) -> Option<(char, usize, usize)> {
        let b = &self.block;
        let (r, pr) = best(&p[..4]);
        let (c, pc) = best(&p[4..]);
        if pr < self.min_power || pc < self.min_power {
            return None;
        }
        let cfg = &self.cfg;
        // Twist: normal = high tone weaker.
        let twist_db = 10.0 * (pr / pc).log10();
        if twist_db > cfg.max_normal_twist_db || -twist_db > cfg.max_reverse_twist_db {
            return None;
        }
        let rel = 10f64.powf(cfg.relative_peak_db / 10.0);
        for (i, &q) in p[..4].iter().enumerate() {
            if i != r && q * rel > pr {
                return None;
            }
        }
        for (i, &q) in p[4..].iter().enumerate() {
            if i != c && q * rel > pc {
                return None;
            }
        }
        // Mean power of the block; a sine of amplitude A has mean power A²/2.
        let energy: f64 =
            b.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / b.len() as f64;
        // The tones' power is taken at the nominal frequency or 1.5 % either side, whichever is
        // highest, so a tone within Q.24's tolerance is not under-counted.
        let near = |k: usize, p0: f64| {
            self.near[k]
                .iter()
                .map(|&c| goertzel(b, c))
                .fold(p0, f64::max)
        };
        if (near(r, pr) + near(4 + c, pc)) / 2.0 < cfg.min_energy_share * energy {
            return None;
        }
        // Second harmonics. The row's lands near a column tone for some digits (2 x 697 Hz is
        // 1394 Hz, 58 Hz from 1336 Hz), where the column's own energy would be mistaken for it:
        // check it only when it is well clear of the detected column.
        let harm = 10f64.powf(cfg.harmonic_rejection_db / 10.0);
        let row_clear = (2.0 * ROWS[r] - COLS[c]).abs() > 150.0;
        let strongest = |probes: &[f32; 3]| {
            probes
                .iter()
                .map(|&h| goertzel(b, h))
                .fold(0.0f64, f64::max)
        };
        if (row_clear && strongest(&self.harm[r]) * harm > pr)
            || strongest(&self.harm[4 + c]) * harm > pc
        {
            return None;
        }
        // Third harmonics: square-ish waveforms (organs, synthesisers, buzzers) have strong odd
        // harmonics and no even ones.
        for (k, p0) in [(r, pr), (4 + c, pc)] {
            if let Some(h3) = &self.harm3[k]
                && strongest(h3) * harm > p0
            {
                return None;
            }
        }
        // Frequency deviation: a tone nearer to f·(1 ± 5 %) than to f is 2.5 % off or more
        // (Q.24 accepts deviations up to 1.5 % and rejects those beyond 3.5 %).
        for (k, p0) in [(r, pr), (4 + c, pc)] {
            if goertzel(b, self.dev_lo[k]) > p0 || goertzel(b, self.dev_hi[k]) > p0 {
                return None;
            }
        }
        Some((KEYS[r][c], r, c))
    }

    fn step(&mut self, res: &BlockResult, out: &mut Vec<InbandDigit>) {
        let block = self.blocks_done;
        match (self.run.as_mut(), res.hit) {
            (Some(run), Some((d, _, _))) if run.digit == d => {
                // A bridged miss adds nothing to the measured length.
                let amp = res.amp(run.row, run.col);
                run.misses = 0;
                run.tail_amp = 0.0;
                run.amp_sum += amp;
                run.peak_amp = run.peak_amp.max(amp);
            }
            (Some(run), None) if run.misses == 0 => {
                run.misses = 1;
                run.tail_amp = res.amp(run.row, run.col);
            }
            (Some(_), _) => {
                if let Some(run) = self.run.take() {
                    self.finish(run, out);
                }
                self.start(block, res);
            }
            (None, _) => self.start(block, res),
        }
    }

    fn start(&mut self, block: u64, res: &BlockResult) {
        let prev = BlockResult {
            p: self.prev,
            hit: None,
        };
        self.run = res.hit.map(|(digit, row, col)| {
            let amp = res.amp(row, col);
            Run {
                digit,
                row,
                col,
                first_block: block,
                lead_amp: prev.amp(row, col),
                tail_amp: 0.0,
                peak_amp: amp,
                amp_sum: amp,
                misses: 0,
            }
        });
    }

    fn finish(&self, run: Run, out: &mut Vec<InbandDigit>) {
        let n = self.block_len as f64;
        let peak = run.peak_amp.max(1e-12);
        // Each block's share of tone is its amplitude over the steady amplitude; edge blocks
        // count only when they hold a noticeable part of the tone.
        let edge = |a: f64| {
            let c = (a / peak).min(1.0);
            if c > 0.15 { c } else { 0.0 }
        };
        let lead = edge(run.lead_amp);
        let covered = (run.amp_sum / peak + lead + edge(run.tail_amp)) * n;
        let start = (run.first_block as f64 * n - lead * n).max(0.0);
        let duration = covered.round() as u64;
        let min = u64::from(self.cfg.min_duration_ms) * u64::from(self.rate) / 1000;
        if duration >= min {
            out.push(InbandDigit {
                digit: run.digit,
                start: start.round() as u64,
                duration,
            });
        }
    }
}

fn best(p: &[f64]) -> (usize, f64) {
    let mut bi = 0;
    for i in 1..p.len() {
        if p[i] > p[bi] {
            bi = i;
        }
    }
    (bi, p[bi])
}

/// A streaming generator of in-band digits: each digit's tone pair for `on_ms`, then `off_ms`
/// of silence.
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    rate: u32,
    digits: Vec<(f64, f64)>,
    on: u64,
    off: u64,
    amp_low: f64,
    amp_high: f64,
    pos: u64,
}

impl DtmfGenerator {
    /// Plays `digits` (characters that are not DTMF digits are skipped) at `rate`, each tone
    /// `on_ms` long with `off_ms` pauses, the low tone at `level_dbm0` and the high tone 2 dB
    /// louder (the usual pre-emphasis).
    pub fn new(digits: &str, rate: u32, on_ms: u32, off_ms: u32, level_dbm0: f64) -> Self {
        let rate = rate.max(1);
        DtmfGenerator {
            rate,
            digits: digits.chars().filter_map(digit_frequencies).collect(),
            on: u64::from(on_ms) * u64::from(rate) / 1000,
            off: u64::from(off_ms) * u64::from(rate) / 1000,
            amp_low: dbm0_power(level_dbm0).sqrt() * 32767.0,
            amp_high: dbm0_power(level_dbm0 + 2.0).sqrt() * 32767.0,
            pos: 0,
        }
    }

    /// Total length in samples.
    pub fn len(&self) -> u64 {
        self.digits.len() as u64 * (self.on + self.off)
    }

    /// Whether there is nothing to play.
    pub fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    /// Whether every digit has been played.
    pub fn is_done(&self) -> bool {
        self.pos >= self.len()
    }

    /// Fills `frame` with the next samples (silence after the last digit).
    pub fn next_frame(&mut self, frame: &mut [i16]) {
        let period = (self.on + self.off).max(1);
        let r = f64::from(self.rate);
        for s in frame.iter_mut() {
            let i = (self.pos / period) as usize;
            let t = self.pos % period;
            *s = match self.digits.get(i) {
                Some(&(lo, hi)) if t < self.on => {
                    let tt = t as f64 / r;
                    let v = self.amp_low * (2.0 * PI * lo * tt).sin()
                        + self.amp_high * (2.0 * PI * hi * tt).sin();
                    v.round().clamp(-32768.0, 32767.0) as i16
                }
                _ => 0,
            };
            self.pos += 1;
        }
    }
}

/// Convenience: the whole digit sequence as PCM.
pub fn generate(digits: &str, rate: u32, on_ms: u32, off_ms: u32, level_dbm0: f64) -> Vec<i16> {
    let mut g = DtmfGenerator::new(digits, rate, on_ms, off_ms, level_dbm0);
    let mut v = vec![0i16; g.len() as usize];
    g.next_frame(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &str = "123A456B789C*0#D";

    use crate::testrng::Rng;

    fn detect(pcm: &[i16], rate: u32, frame: usize) -> Vec<InbandDigit> {
        let mut d = DtmfDetector::new(rate);
        let mut out = Vec::new();
        for c in pcm.chunks(frame) {
            d.process(c, &mut out);
        }
        d.flush(&mut out);
        out
    }

    fn digits(v: &[InbandDigit]) -> String {
        v.iter().map(|d| d.digit).collect()
    }

    fn add_noise(pcm: &mut [i16], rms: f64, seed: u64) {
        let mut rng = Rng(seed);
        for s in pcm.iter_mut() {
            let v = f64::from(*s) + rng.gauss() * rms;
            *s = v.round().clamp(-32768.0, 32767.0) as i16;
        }
    }

    #[test]
    fn every_digit_at_several_levels() {
        for rate in [8000, 16000] {
            for level in [-3.0, -10.0, -20.0, -27.0] {
                let pcm = generate(ALL, rate, 60, 60, level);
                let got = detect(&pcm, rate, (rate / 50) as usize);
                assert_eq!(digits(&got), ALL, "{rate} Hz, {level} dBm0");
                for (i, d) in got.iter().enumerate() {
                    let start = i as u64 * u64::from(rate) * 120 / 1000;
                    let slack = u64::from(rate) / 200; // 5 ms
                    assert!(
                        d.start + slack >= start && d.start <= start + slack,
                        "{d:?} should start near {start}"
                    );
                    let ms = d.duration_ms(rate);
                    assert!((52..=68).contains(&ms), "{d:?}: {ms} ms");
                }
            }
        }
    }

    #[test]
    fn digits_with_noise() {
        // White noise 15 dB below the tone pair (per tone -10 dBm0, noise ~ -22 dBm0).
        let rate = 8000;
        let mut pcm = generate(ALL, rate, 50, 50, -10.0);
        let tone_rms = dbm0_power(-10.0).sqrt() * 32767.0; // per-tone peak
        add_noise(&mut pcm, tone_rms / 5.6, 7);
        assert_eq!(digits(&detect(&pcm, rate, 160)), ALL);
        // And 16 kHz with noise at 20 ms frames.
        let mut pcm = generate(ALL, 16000, 50, 50, -15.0);
        let tone_rms = dbm0_power(-15.0).sqrt() * 32767.0;
        add_noise(&mut pcm, tone_rms / 5.6, 11);
        assert_eq!(digits(&detect(&pcm, 16000, 320)), ALL);
    }

    #[test]
    fn noise_down_to_12_db_snr() {
        // Tone pair power is 1.29·A² (high tone 2 dB up); noise at A/3.5 rms is 12 dB below.
        let rate = 8000;
        for seed in [1, 2, 3] {
            let mut pcm = generate(ALL, rate, 60, 60, -10.0);
            let a = dbm0_power(-10.0).sqrt() * 32767.0;
            add_noise(&mut pcm, a / 3.5, seed);
            assert_eq!(digits(&detect(&pcm, rate, 160)), ALL, "seed {seed}");
        }
        // Pure noise, loud, is never a digit.
        let mut pcm = vec![0i16; 80_000];
        add_noise(&mut pcm, 5000.0, 4);
        assert_eq!(digits(&detect(&pcm, rate, 160)), "");
    }

    /// A digit whose tones are both off by `dev` (a fraction: 0.015 = +1.5 %).
    fn detuned(digit: char, dev: f64, rate: u32) -> Vec<i16> {
        let (lo, hi) = digit_frequencies(digit).expect("digit");
        let a = dbm0_power(-10.0).sqrt() * 32767.0;
        (0..rate as usize / 10)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let v = a * (2.0 * PI * lo * (1.0 + dev) * t).sin()
                    + a * (2.0 * PI * hi * (1.0 + dev) * t).sin();
                v as i16
            })
            .collect()
    }

    #[test]
    fn frequency_deviation_limits() {
        // Q.24: deviations up to 1.5 % are accepted, beyond 3.5 % rejected.
        for rate in [8000, 16000] {
            for d in ALL.chars() {
                for dev in [-0.015, -0.01, 0.0, 0.01, 0.015] {
                    let got = detect(&detuned(d, dev, rate), rate, 160);
                    assert_eq!(digits(&got), d.to_string(), "{d} {dev} at {rate}");
                }
                for dev in [-0.035, -0.05, 0.035, 0.05] {
                    let got = detect(&detuned(d, dev, rate), rate, 160);
                    assert_eq!(digits(&got), "", "{d} {dev} at {rate}");
                }
            }
        }
    }

    #[test]
    fn short_gaps_and_repeated_digits() {
        // 40 ms tones with 40 ms pauses, including the same digit twice in a row.
        let seq = "1155##00";
        let pcm = generate(seq, 8000, 40, 40, -12.0);
        let got = detect(&pcm, 8000, 160);
        assert_eq!(digits(&got), seq, "{got:?}");
        // Odd frame sizes change nothing.
        assert_eq!(digits(&detect(&pcm, 8000, 37)), seq);
        let pcm16 = generate(seq, 16000, 40, 40, -12.0);
        assert_eq!(digits(&detect(&pcm16, 16000, 320)), seq);
    }

    #[test]
    fn short_bursts_and_quiet_tones_are_rejected() {
        // 20 ms bursts are below the minimum duration.
        for level in [-3.0, -20.0] {
            let pcm = generate("123", 8000, 20, 80, level);
            assert_eq!(digits(&detect(&pcm, 8000, 160)), "", "{level}");
        }
        // Far below the minimum level.
        let pcm = generate("123", 8000, 80, 80, -45.0);
        assert_eq!(digits(&detect(&pcm, 8000, 160)), "");
    }

    #[test]
    fn a_short_dropout_is_bridged() {
        let mut pcm = generate("5", 8000, 200, 0, -10.0);
        for s in &mut pcm[800..840] {
            *s = 0; // 5 ms hole
        }
        let got = detect(&pcm, 8000, 160);
        assert_eq!(digits(&got), "5");
    }

    #[test]
    fn twist_limits() {
        // High tone 10 dB weaker than the low one (beyond the 8 dB normal twist) is rejected;
        // 6 dB is accepted.
        let make = |twist_db: f64| -> Vec<i16> {
            let lo = dbm0_power(-8.0).sqrt() * 32767.0;
            let hi = dbm0_power(-8.0 - twist_db).sqrt() * 32767.0;
            (0..800)
                .map(|i| {
                    let t = f64::from(i) / 8000.0;
                    (lo * (2.0 * PI * 770.0 * t).sin() + hi * (2.0 * PI * 1336.0 * t).sin()) as i16
                })
                .collect()
        };
        assert_eq!(digits(&detect(&make(6.0), 8000, 160)), "5");
        assert_eq!(digits(&detect(&make(10.0), 8000, 160)), "");
        assert_eq!(digits(&detect(&make(-3.0), 8000, 160)), "5");
        assert_eq!(digits(&detect(&make(-6.0), 8000, 160)), "");
    }

    /// Speech-like signal: a glottal pulse train (rich harmonics) with a wandering pitch,
    /// shaped by moving formant resonators, with syllable-like amplitude envelope.
    fn speech_like(rate: u32, seconds: f64, seed: u64) -> Vec<i16> {
        let mut rng = Rng(seed);
        let n = (seconds * f64::from(rate)) as usize;
        let r = f64::from(rate);
        let mut out = Vec::with_capacity(n);
        let mut phase = 0.0f64;
        // Two-pole resonators for three formants.
        let mut st = [[0.0f64; 2]; 3];
        for i in 0..n {
            let t = i as f64 / r;
            let f0 = 110.0 + 60.0 * (2.0 * PI * 0.7 * t).sin() + 30.0 * (2.0 * PI * 2.3 * t).sin();
            phase += f0 / r;
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            let excitation = pulse + 0.02 * rng.gauss();
            let formants = [
                500.0 + 300.0 * (2.0 * PI * 1.1 * t).sin(),
                1500.0 + 600.0 * (2.0 * PI * 0.9 * t + 1.0).sin(),
                2500.0 + 300.0 * (2.0 * PI * 0.5 * t).sin(),
            ];
            let mut y = 0.0;
            for (k, f) in formants.iter().enumerate() {
                let bw = 80.0 + 40.0 * k as f64;
                let rr = (-PI * bw / r).exp();
                let a1 = 2.0 * rr * (2.0 * PI * f / r).cos();
                let a2 = -rr * rr;
                let v = excitation + a1 * st[k][0] + a2 * st[k][1];
                st[k][1] = st[k][0];
                st[k][0] = v;
                y += v / (k as f64 + 1.0);
            }
            let syllable = (0.5 + 0.5 * (2.0 * PI * 4.0 * t).sin()).powi(2);
            out.push(y * syllable);
        }
        normalise(&out, 12000.0)
    }

    /// Music-like signal: notes of an equal-tempered scale with 2–6 harmonics and decay, two
    /// voices. (Two *pure* sines on F5 and E6 are within 1.5 % of DTMF "2" and would rightly be
    /// detected by any Q.24 receiver; instruments have overtones.)
    fn music_like(rate: u32, seconds: f64, seed: u64) -> Vec<i16> {
        let mut rng = Rng(seed);
        let n = (seconds * f64::from(rate)) as usize;
        let r = f64::from(rate);
        let note_len = (0.15 * r) as usize;
        let mut out = vec![0.0f64; n];
        let mut start = 0;
        while start < n {
            for voice in 0..2 {
                let semis = (rng.next() % 36) as f64 - 12.0 + 12.0 * voice as f64;
                let f = 440.0 * 2f64.powf(semis / 12.0);
                let harmonics = 2 + (rng.next() % 5) as usize;
                for (j, o) in out[start..(start + note_len).min(n)].iter_mut().enumerate() {
                    let t = j as f64 / r;
                    let env = (-t * 6.0).exp();
                    for h in 1..=harmonics {
                        let fh = f * h as f64;
                        if fh < r / 2.0 {
                            *o += env * (2.0 * PI * fh * t).sin() / h as f64;
                        }
                    }
                }
            }
            start += note_len;
        }
        normalise(&out, 14000.0)
    }

    /// Sweeps (sirens, whistles, sliding voices) across the whole DTMF band up and down,
    /// alone and in pairs, each with its 2nd and 3rd harmonics. (A pair of *pure* sines gliding
    /// slower than ~1 kHz/s through a DTMF pair is, for ~30 ms, a DTMF tone by Q.24's own
    /// definition; natural sounds carry overtones.)
    fn chirps(rate: u32, seconds: f64) -> Vec<i16> {
        let n = (seconds * f64::from(rate)) as usize;
        let r = f64::from(rate);
        let rich = |phase: f64| {
            (2.0 * PI * phase).sin()
                + 0.5 * (4.0 * PI * phase).sin()
                + 0.33 * (6.0 * PI * phase).sin()
        };
        let v: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 / r;
                let tt = t % 1.0;
                let a = rich(600.0 * tt + 600.0 * tt * tt);
                let b = rich(1700.0 * tt - 300.0 * tt * tt);
                if (t as u64).is_multiple_of(2) {
                    a
                } else {
                    a + b
                }
            })
            .collect();
        normalise(&v, 12000.0)
    }

    fn normalise(v: &[f64], peak: f64) -> Vec<i16> {
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-9);
        v.iter().map(|x| (x / max * peak).round() as i16).collect()
    }

    #[test]
    fn no_talk_off_on_speech_music_and_chirps() {
        let mut talk_offs = 0;
        let mut material_seconds = 0.0;
        for rate in [8000, 16000] {
            for seed in 1..=4u64 {
                for (name, pcm) in [
                    ("speech", speech_like(rate, 20.0, seed)),
                    ("music", music_like(rate, 20.0, seed + 100)),
                ] {
                    let got = detect(&pcm, rate, (rate / 50) as usize);
                    if !got.is_empty() {
                        // Shown so a regression can be reproduced from the seed.
                        eprintln!("talk-off in {name} seed {seed} at {rate}: {got:?}");
                    }
                    talk_offs += got.len();
                    material_seconds += 20.0;
                }
            }
            let got = detect(&chirps(rate, 20.0), rate, (rate / 50) as usize);
            if !got.is_empty() {
                eprintln!("talk-off in chirps at {rate}: {got:?}");
            }
            talk_offs += got.len();
            material_seconds += 20.0;
        }
        println!(
            "talk-off: {talk_offs} false digits over {material_seconds} s of speech/music/chirps"
        );
        assert_eq!(talk_offs, 0);
    }

    /// Talk-off over real recordings: every WAV/Ogg file in `$DENWA_TALKOFF_DIR` (speech,
    /// music), at 8 and 16 kHz, at its own level and 10 dB louder. Recordings are not shipped
    /// in the repository; e.g. make some with `espeak-ng -f text.txt -w en.wav` and run
    /// `DENWA_TALKOFF_DIR=dir cargo test -p media talk_off_on_recordings -- --ignored --nocapture`.
    #[test]
    #[ignore = "needs recordings in $DENWA_TALKOFF_DIR"]
    fn talk_off_on_recordings() {
        let dir = std::env::var("DENWA_TALKOFF_DIR").expect("set DENWA_TALKOFF_DIR");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| crate::audio::load(p).is_ok())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no audio files in {dir}");
        let (mut talk_offs, mut seconds) = (0, 0.0);
        for path in &files {
            for rate in [8000, 16000] {
                let pcm = crate::audio::load_at(path, rate).expect("load");
                for gain in [1.0, 3.16] {
                    let scaled: Vec<i16> = pcm
                        .iter()
                        .map(|&s| (f64::from(s) * gain).clamp(-32768.0, 32767.0) as i16)
                        .collect();
                    let got = detect(&scaled, rate, (rate / 50) as usize);
                    if !got.is_empty() {
                        eprintln!("talk-off in {} at {rate} x{gain}: {got:?}", path.display());
                    }
                    talk_offs += got.len();
                    seconds += scaled.len() as f64 / f64::from(rate);
                }
            }
        }
        println!("talk-off: {talk_offs} false digits over {seconds:.0} s of recordings");
        assert_eq!(talk_offs, 0);
    }

    #[test]
    fn digits_survive_speech_like_background() {
        // Digits over quiet speech (20 dB down) are still found.
        let rate = 8000;
        let mut pcm = generate("2580", rate, 80, 80, -8.0);
        let bg = speech_like(rate, 1.0, 9);
        for (s, b) in pcm.iter_mut().zip(bg) {
            *s = s.saturating_add(b / 10);
        }
        assert_eq!(digits(&detect(&pcm, rate, 160)), "2580");
    }

    #[test]
    fn generator_shape() {
        let g = DtmfGenerator::new("1x2", 8000, 100, 50, -10.0);
        assert_eq!(g.len(), 2 * 1200);
        assert!(!g.is_empty());
        let pcm = generate("1x2", 8000, 100, 50, -10.0);
        assert!(pcm[800..1200].iter().all(|&s| s == 0));
        assert!(pcm[..800].iter().any(|&s| s != 0));
        let mut g = DtmfGenerator::new("9", 8000, 40, 40, -10.0);
        let mut frame = [0i16; 160];
        for _ in 0..4 {
            assert!(!g.is_done());
            g.next_frame(&mut frame);
        }
        assert!(g.is_done());
        g.next_frame(&mut frame);
        assert!(frame.iter().all(|&s| s == 0));
        assert_eq!(digit_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(digit_frequencies('x'), None);
    }
}
