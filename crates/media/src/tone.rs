//! Tone generation and detection for prompts, ringback and tests that check audio crossed the relay.

use std::f64::consts::PI;
use std::time::Duration;

/// Number of samples in `duration` at `sample_rate`.
pub fn sample_count(duration: Duration, sample_rate: u32) -> usize {
    (duration.as_secs_f64() * f64::from(sample_rate)).round() as usize
}

/// A sine tone of `freq_hz` lasting `duration`, with peak `amplitude`.
pub fn sine(freq_hz: f64, duration: Duration, sample_rate: u32, amplitude: i16) -> Vec<i16> {
    mix(&[freq_hz], duration, sample_rate, amplitude)
}

/// The sum of several equal-level sines; `amplitude` is the peak of the sum.
pub fn mix(freqs_hz: &[f64], duration: Duration, sample_rate: u32, amplitude: i16) -> Vec<i16> {
    let n = sample_count(duration, sample_rate);
    if freqs_hz.is_empty() || sample_rate == 0 {
        return vec![0; n];
    }
    let per = f64::from(amplitude) / freqs_hz.len() as f64;
    let rate = f64::from(sample_rate);
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let v: f64 = freqs_hz
                .iter()
                .map(|f| (2.0 * PI * f * t).sin() * per)
                .sum();
            v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

/// The (low, high) frequency pair of a DTMF digit.
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [[char; 4]; 4] = [
        ['1', '2', '3', 'A'],
        ['4', '5', '6', 'B'],
        ['7', '8', '9', 'C'],
        ['*', '0', '#', 'D'],
    ];
    let d = digit.to_ascii_uppercase();
    KEYS.iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == d).map(|c| (LOW[r], HIGH[c])))
}

/// An in-band DTMF tone for `digit`, or `None` for a non-DTMF character.
pub fn dtmf_tone(
    digit: char,
    duration: Duration,
    sample_rate: u32,
    amplitude: i16,
) -> Option<Vec<i16>> {
    let (lo, hi) = dtmf_frequencies(digit)?;
    Some(mix(&[lo, hi], duration, sample_rate, amplitude))
}

/// Goertzel power of `freq_hz` in `samples`, normalised so a full-scale sine gives about 1.0.
pub fn goertzel(samples: &[i16], freq_hz: f64, sample_rate: u32) -> f64 {
    if samples.is_empty() || sample_rate == 0 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let coeff = 2.0 * (2.0 * PI * freq_hz / f64::from(sample_rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power * 4.0 / (n * n)
}

/// Mean signal power of `samples`, normalised so a full-scale sine gives about 0.5.
pub fn energy(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&s| {
            let v = f64::from(s) / 32768.0;
            v * v
        })
        .sum::<f64>()
        / samples.len() as f64
}

/// The candidate frequency that dominates `frame`, if its Goertzel power is at least
/// `min_share` of the frame's total energy (use ~0.5 for a clean single tone).
pub fn dominant_tone(
    frame: &[i16],
    candidates: &[f64],
    sample_rate: u32,
    min_share: f64,
) -> Option<f64> {
    let e = energy(frame);
    if e <= 0.0 {
        return None;
    }
    let (f, p) = candidates
        .iter()
        .map(|&f| (f, goertzel(frame, f, sample_rate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    // A sine of power e has Goertzel power about 2e with this normalisation.
    (p / (2.0 * e) >= min_share).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_shape() {
        let s = sine(1000.0, Duration::from_millis(20), 8000, 16000);
        assert_eq!(s.len(), 160);
        assert_eq!(s[0], 0);
        assert_eq!(s[2], 16000); // quarter period of 1 kHz at 8 kHz
        assert_eq!(s[6], -16000);
        assert!(s.iter().all(|v| v.abs() <= 16000));
    }

    #[test]
    fn goertzel_finds_the_right_tone() {
        let freqs = [400.0, 1000.0, 1400.0, 2000.0];
        for &f in &freqs {
            let s = sine(f, Duration::from_millis(20), 8000, 20000);
            assert_eq!(dominant_tone(&s, &freqs, 8000, 0.5), Some(f), "{f}");
        }
        assert_eq!(dominant_tone(&[0; 160], &freqs, 8000, 0.5), None);
        let full = sine(1000.0, Duration::from_millis(100), 8000, i16::MAX);
        let g = goertzel(&full, 1000.0, 8000);
        assert!((0.9..1.1).contains(&g), "{g}");
        assert!(goertzel(&full, 1400.0, 8000) < 0.01);
    }

    #[test]
    fn dtmf_pairs() {
        assert_eq!(dtmf_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(dtmf_frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(dtmf_frequencies('x'), None);
        let t = dtmf_tone('1', Duration::from_millis(40), 8000, 20000).unwrap();
        let lo = goertzel(&t, 697.0, 8000);
        let hi = goertzel(&t, 1209.0, 8000);
        let off = goertzel(&t, 941.0, 8000);
        assert!(lo > 10.0 * off && hi > 10.0 * off, "{lo} {hi} {off}");
    }
}
