//! Streaming sample-rate conversion between any two rates with a small rational ratio
//! (8/16/48 kHz for calls; 44.1/22.05/11.025/32 kHz for uploaded prompt files).
//!
//! A polyphase FIR: the input is conceptually upsampled by `L`, low-pass filtered by a
//! Kaiser-windowed sinc and decimated by `M` (`from * L / M == to`), computing only the outputs
//! that survive decimation. The filter state (the last taps' worth of input) is carried from one
//! frame to the next, so a stream resampled frame by frame is bit-identical to the same stream
//! resampled in one piece — no clicks at frame boundaries. After [`Resampler::new`] nothing
//! allocates unless a frame is larger than every frame before it.
//!
//! The pass band reaches 85 % of the lower rate's Nyquist frequency (3.4 kHz for 8 kHz,
//! 6.8 kHz for 16 kHz) and the stop band starts at the lower rate minus that edge (4.6 kHz for
//! 8 kHz), ~65 dB down: images of telephone-band audio land in the stop band, and what aliases
//! between 3.4 and 4 kHz is already outside the telephone band.

use std::fmt;

/// Why a resampler could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// A rate of zero, or a ratio whose reduced terms are too large to filter.
    #[error("cannot resample from {from} Hz to {to} Hz")]
    Unsupported {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
}

/// Largest upsampling factor `L` (after reduction) accepted: 44.1 kHz → 8 kHz needs 80.
const MAX_L: u32 = 640;
/// Stop-band attenuation the filter is designed for, dB.
const ATTENUATION_DB: f64 = 65.0;

/// A frame-by-frame sample-rate converter for 16-bit mono PCM.
#[derive(Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    l: usize,
    m: usize,
    /// Taps per phase.
    k: usize,
    /// `l` phases of `k` taps each, every phase stored reversed so an output is a dot product
    /// of two contiguous slices.
    coeffs: Vec<f32>,
    /// `k - 1` samples of history followed by the current frame.
    buf: Vec<f32>,
    /// Position of the next output, in 1/L input samples, from the first sample of the frame.
    next: usize,
}

impl fmt::Debug for Resampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("taps", &self.coeffs.len())
            .finish()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Modified Bessel function of the first kind, order zero (for the Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= (half / f64::from(k)) * (half / f64::from(k));
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Resampler, ResampleError> {
        let err = ResampleError::Unsupported { from, to };
        if from == 0 || to == 0 {
            return Err(err);
        }
        let g = gcd(from, to);
        let (l, m) = (to / g, from / g);
        if l > MAX_L || m > 4 * MAX_L {
            return Err(err);
        }
        let (l, m) = (l as usize, m as usize);
        let low = f64::from(from.min(to));
        let proto_rate = f64::from(from) * l as f64;
        // Pass band to 0.425 × the lower rate, stop band from 0.575 × it: cutoff at its Nyquist.
        let transition = 0.15 * low;
        let cutoff = 0.5 * low / proto_rate; // cycles per prototype sample
        let n_min =
            (ATTENUATION_DB - 8.0) * proto_rate / (2.285 * 2.0 * std::f64::consts::PI * transition);
        // Taps per phase rounded up to a multiple of 8: the dot product then runs in whole
        // SIMD-width chunks (the extra taps only lengthen the window).
        let k = if l == 1 && m == 1 {
            1
        } else {
            ((n_min / l as f64).ceil() as usize)
                .max(2)
                .next_multiple_of(8)
        };
        let n = k * l;
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let i0_beta = bessel_i0(beta);
        let centre = (n as f64 - 1.0) / 2.0;
        let proto: Vec<f64> = (0..n)
            .map(|i| {
                if n == 1 {
                    return 1.0;
                }
                let t = i as f64 - centre;
                let x = 2.0 * cutoff * t;
                let sinc = if x.abs() < 1e-12 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let r = 2.0 * t / (n as f64 - 1.0);
                let w = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
                sinc * w
            })
            .collect();
        // Phase p holds prototype taps p, p+L, p+2L, ...; each phase normalised to unit DC gain
        // and stored reversed.
        let mut coeffs = vec![0f32; n];
        for p in 0..l {
            let sum: f64 = (0..k).map(|j| proto[p + j * l]).sum();
            let norm = if sum.abs() > 1e-9 { 1.0 / sum } else { 0.0 };
            for j in 0..k {
                coeffs[p * k + (k - 1 - j)] = (proto[p + j * l] * norm) as f32;
            }
        }
        Ok(Resampler {
            from,
            to,
            l,
            m,
            k,
            coeffs,
            buf: vec![0.0; k - 1],
            next: 0,
        })
    }

    /// Input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Delay the filter adds, in output samples (a tone comes out this much later).
    pub fn delay(&self) -> usize {
        (self.k * self.l) / 2 / self.m
    }

    /// Forgets the history (a new stream starts).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.k - 1, 0.0);
        self.next = 0;
    }

    /// Resamples one frame, appending the output to `out`. A 20 ms frame at the input rate
    /// gives exactly a 20 ms frame at the output rate whenever 20 ms is a whole number of
    /// `from / gcd` samples (always for 8/16/48 kHz).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.l == 1 && self.m == 1 {
            out.extend_from_slice(input);
            return;
        }
        let hist = self.k - 1;
        self.buf.truncate(hist);
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        let len = input.len();
        let (l, m, k) = (self.l, self.m, self.k);
        out.reserve((len * l).div_ceil(m) + 1);
        let mut next = self.next;
        while next / l < len {
            let idx = next / l;
            let phase = next % l;
            let h = &self.coeffs[phase * k..phase * k + k];
            let x = &self.buf[idx..idx + k];
            let y = dot(h, x);
            // `as` saturates: no clamp needed.
            out.push(y.round() as i16);
            next += m;
        }
        self.next = next - len * l;
        // Keep the last k-1 samples as history for the next frame.
        let total = self.buf.len();
        self.buf.copy_within(total - hist..total, 0);
        self.buf.truncate(hist);
    }
}

/// Dot product with eight independent accumulators, so the compiler can use SIMD lanes.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (ra, rb) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// Resamples a whole clip in one go (prompt files); `from == to` returns a copy.
pub fn resample_all(input: &[i16], from: u32, to: u32) -> Result<Vec<i16>, ResampleError> {
    let mut r = Resampler::new(from, to)?;
    let delay = r.delay();
    let mut out = Vec::with_capacity(input.len() * to as usize / from.max(1) as usize + delay + 1);
    r.process(input, &mut out);
    // Flush the filter so the end of the clip is not cut off, then drop the leading delay.
    let pad_in = (delay * from as usize).div_ceil(to as usize) + 1;
    let tail = vec![0i16; pad_in];
    r.process(&tail, &mut out);
    let want = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let start = delay.min(out.len());
    let mut v = out.split_off(start);
    v.truncate(want);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{goertzel, sine};
    use std::time::Duration;

    fn stream(r: &mut Resampler, input: &[i16], frame: usize) -> Vec<i16> {
        let mut out = Vec::new();
        for c in input.chunks(frame) {
            r.process(c, &mut out);
        }
        out
    }

    /// Power at `f` relative to the total, via Goertzel (both normalised the same way).
    fn share(samples: &[i16], f: f64, rate: u32) -> f64 {
        let e = crate::tone::energy(samples);
        goertzel(samples, f, rate) / (2.0 * e)
    }

    #[test]
    fn rejects_bad_rates() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(8000, 0).is_err());
        assert!(Resampler::new(8000, 7919).is_err()); // L = 7919 (prime)
        assert!(Resampler::new(44100, 8000).is_ok());
    }

    #[test]
    fn frames_come_out_whole_for_telephony_rates() {
        for (from, to) in [
            (8000, 16000),
            (8000, 48000),
            (16000, 48000),
            (16000, 8000),
            (48000, 8000),
            (48000, 16000),
        ] {
            let mut r = Resampler::new(from, to).expect("rate");
            let frame = vec![100i16; (from / 50) as usize];
            for _ in 0..5 {
                let mut out = Vec::new();
                r.process(&frame, &mut out);
                assert_eq!(out.len(), (to / 50) as usize, "{from}->{to}");
            }
        }
    }

    #[test]
    fn tone_frequency_preserved_both_ways() {
        for (from, to) in [
            (8000, 16000),
            (8000, 48000),
            (16000, 48000),
            (16000, 8000),
            (48000, 8000),
            (48000, 16000),
        ] {
            for f in [300.0, 1000.0, 3000.0] {
                let input = sine(f, Duration::from_millis(500), from, 16000);
                let mut r = Resampler::new(from, to).expect("rate");
                let out = stream(&mut r, &input, (from / 50) as usize);
                let settled = &out[(to / 10) as usize..]; // skip the first 100 ms
                let s = share(settled, f, to);
                assert!(s > 0.97, "{from}->{to} {f} Hz: share {s}");
                // Level kept within 0.5 dB.
                let rms_in = crate::tone::energy(&input).sqrt();
                let rms_out = crate::tone::energy(settled).sqrt();
                let db = 20.0 * (rms_out / rms_in).log10();
                assert!(db.abs() < 0.5, "{from}->{to} {f} Hz: gain {db} dB");
            }
        }
    }

    #[test]
    fn no_energy_above_target_nyquist() {
        // Upsampling: the images of a 3 kHz tone at 8 kHz (5 kHz, 11 kHz, ...) are gone.
        let input = sine(3000.0, Duration::from_millis(500), 8000, 16000);
        let mut r = Resampler::new(8000, 48000).expect("rate");
        let out = stream(&mut r, &input, 160);
        let settled = &out[4800..];
        for image in [5000.0, 11000.0, 13000.0, 19000.0, 21000.0] {
            let p = goertzel(settled, image, 48000);
            let t = goertzel(settled, 3000.0, 48000);
            let db = 10.0 * (p / t).log10();
            assert!(db < -55.0, "image at {image} Hz only {db} dB down");
        }
        // Downsampling: tones above the target's Nyquist do not alias into the output.
        for (from, to, f) in [
            (48000, 8000, 6000.0),
            (48000, 8000, 10000.0),
            (16000, 8000, 5000.0),
            (48000, 16000, 12000.0),
        ] {
            let input = sine(f, Duration::from_millis(500), from, 16000);
            let mut r = Resampler::new(from, to).expect("rate");
            let out = stream(&mut r, &input, (from / 50) as usize);
            let settled = &out[(to / 10) as usize..];
            let rms_in = crate::tone::energy(&input).sqrt();
            let rms_out = crate::tone::energy(settled).sqrt();
            let db = 20.0 * (rms_out.max(1e-9) / rms_in).log10();
            assert!(db < -55.0, "{from}->{to}: {f} Hz leaks at {db} dB");
        }
    }

    #[test]
    fn frame_split_invariance() {
        // A chirp-like signal resampled whole, in 20 ms frames and in odd pieces is identical.
        let input: Vec<i16> = (0..9600)
            .map(|i| {
                let t = f64::from(i) / 48000.0;
                (12000.0 * (2.0 * std::f64::consts::PI * (200.0 + 1500.0 * t) * t).sin()) as i16
            })
            .collect();
        for (from, to) in [(48000, 8000), (48000, 16000), (16000, 48000), (8000, 48000)] {
            let input = &input[..input.len() * from as usize / 48000];
            let whole = stream(
                &mut Resampler::new(from, to).expect("rate"),
                input,
                usize::MAX,
            );
            let frames = stream(
                &mut Resampler::new(from, to).expect("rate"),
                input,
                (from / 50) as usize,
            );
            let odd = stream(&mut Resampler::new(from, to).expect("rate"), input, 37);
            assert_eq!(whole, frames, "{from}->{to}");
            assert_eq!(whole, odd, "{from}->{to}");
        }
    }

    #[test]
    fn no_click_at_frame_boundaries() {
        // The sample-to-sample step of a resampled low tone never jumps at a frame edge.
        let input = sine(440.0, Duration::from_millis(400), 8000, 20000);
        let mut r = Resampler::new(8000, 48000).expect("rate");
        let out = stream(&mut r, &input, 160);
        let max_step = out[960..]
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        // 440 Hz at 48 kHz, amplitude 20000: the steepest step is 2π·440/48000·20000 ≈ 1152.
        assert!(max_step < 1250, "step {max_step}");
    }

    #[test]
    fn whole_clip_conversion_keeps_length_and_alignment() {
        let input = sine(1000.0, Duration::from_millis(300), 44100, 10000);
        let out = resample_all(&input, 44100, 8000).expect("rate");
        assert_eq!(out.len(), 2400);
        assert!(share(&out[200..2200], 1000.0, 8000) > 0.97);
        // No leading silence beyond a couple of samples: the delay was removed.
        assert!(
            out[3..10].iter().any(|&s| s.abs() > 1000),
            "{:?}",
            &out[..10]
        );
        assert_eq!(resample_all(&input, 8000, 8000).expect("same"), input);
    }
}
