//! Sample-rate conversion behind a small trait, so a better converter (`media::resample`) can
//! replace the linear interpolator here without touching the engine.

/// Converts a stream of 16-bit mono PCM from one rate to another, frame by frame, keeping what
/// it needs between frames so that consecutive frames join without a click.
pub trait Resampler: Send {
    /// Input rate.
    fn input_rate(&self) -> u32;
    /// Output rate.
    fn output_rate(&self) -> u32;
    /// Appends the converted `input` to `out`.
    fn process(&mut self, input: &[i16], out: &mut Vec<i16>);
}

/// A converter from `from` to `to` Hz: the polyphase windowed-sinc [`crate::resample`] where
/// it takes the pair (8/16/48 kHz and other small ratios), linear interpolation otherwise.
pub fn converter(from: u32, to: u32) -> Box<dyn Resampler> {
    match crate::resample::Resampler::new(from, to) {
        Ok(r) => Box::new(Sinc(r)),
        Err(_) => Box::new(Linear::new(from, to)),
    }
}

/// Converts a whole clip (a prompt file) at once, with the same converter as [`converter`].
pub fn convert_all(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || from == 0 || to == 0 {
        return input.to_vec();
    }
    if let Ok(out) = crate::resample::resample_all(input, from, to) {
        return out;
    }
    let mut out = Vec::with_capacity(input.len() * to as usize / from as usize + 1);
    Linear::new(from, to).process(input, &mut out);
    out
}

/// [`crate::resample::Resampler`] behind this module's trait.
struct Sinc(crate::resample::Resampler);

impl Resampler for Sinc {
    fn input_rate(&self) -> u32 {
        self.0.from_rate()
    }

    fn output_rate(&self) -> u32 {
        self.0.to_rate()
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.0.process(input, out);
    }
}

/// Linear interpolation (no anti-alias filter): the fallback for rate pairs the sinc resampler
/// does not take.
///
/// Output sample `j` of the stream sits at input position `j * from / to`; an integer ratio
/// turns every frame of `n` samples into exactly `n * to / from`.
#[derive(Debug, Clone)]
pub struct Linear {
    from: u32,
    to: u32,
    /// Input samples taken so far (the global index of this frame's first sample).
    consumed: u64,
    /// Output samples produced so far.
    produced: u64,
}

impl Linear {
    /// A converter from `from` to `to` Hz.
    pub fn new(from: u32, to: u32) -> Linear {
        Linear {
            from: from.max(1),
            to: to.max(1),
            consumed: 0,
            produced: 0,
        }
    }
}

impl Resampler for Linear {
    fn input_rate(&self) -> u32 {
        self.from
    }

    fn output_rate(&self) -> u32 {
        self.to
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        if input.is_empty() {
            return;
        }
        let (from, to) = (u64::from(self.from), u64::from(self.to));
        let end = self.consumed + input.len() as u64;
        let last = input.len() - 1;
        loop {
            let pos = self.produced * from;
            let whole = pos / to;
            if whole >= end {
                break;
            }
            let i = (whole - self.consumed.min(whole)) as usize;
            let a = i64::from(input[i.min(last)]);
            let b = i64::from(input[(i + 1).min(last)]);
            let frac = (pos % to) as i64;
            out.push((a + (b - a) * frac / to as i64) as i16);
            self.produced += 1;
        }
        self.consumed = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;
    use std::time::Duration;

    #[test]
    fn integer_ratios_keep_frame_lengths_and_the_tone() {
        for (from, to) in [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 8000)] {
            let mut r = converter(from, to);
            let sig = tone::sine(440.0, Duration::from_millis(200), from, 10000);
            let frame = (from / 50) as usize;
            let mut out = Vec::new();
            for chunk in sig.chunks(frame) {
                let before = out.len();
                r.process(chunk, &mut out);
                assert_eq!(out.len() - before, frame * to as usize / from as usize);
            }
            let g = tone::goertzel(&out[out.len() / 2..], 440.0, to);
            assert!(g > 0.05, "{from}->{to}: 440 Hz power {g}");
            assert!(tone::goertzel(&out[out.len() / 2..], 1000.0, to) < g / 50.0);
        }
    }

    #[test]
    fn whole_clip_conversion() {
        let sig = tone::sine(500.0, Duration::from_millis(100), 44100, 10000);
        let out = convert_all(&sig, 44100, 8000);
        assert!((799..=801).contains(&out.len()), "{}", out.len());
        assert!(tone::goertzel(&out, 500.0, 8000) > 0.05);
        assert_eq!(convert_all(&[1, 2, 3], 8000, 8000), vec![1, 2, 3]);
    }
}
