//! Packet-loss concealment for waveform codecs (G.711, G.722), in the manner of ITU-T G.711
//! Appendix I: when a frame is lost, find the pitch period of the last audio received and keep
//! playing that period, so the waveform continues without a jump; hold the level for 10 ms, then
//! fade 20 % per 10 ms to silence at 60 ms; when audio returns, cross-fade from the synthetic
//! continuation into it (4 ms, plus 4 ms per further 10 ms lost, at most 10 ms).
//!
//! Repeating a whole 20 ms frame instead puts a phase jump at every frame edge (a 50 Hz buzz)
//! unless the voice's pitch happens to divide 20 ms. Opus has its own, better concealment.

/// Pitch range searched: 66–200 Hz covers most voices' fundamental.
const PITCH_MIN_HZ: u32 = 200;
const PITCH_MAX_HZ: u32 = 66;

/// The concealment state of one decoder.
#[derive(Debug, Clone)]
pub struct Plc {
    rate: u32,
    /// The most recent audio (2 × the longest pitch period plus a margin), oldest first.
    hist: Vec<f32>,
    cap: usize,
    /// Samples concealed in the current loss; 0 while audio flows.
    lost: usize,
    /// Pitch period used for the current loss.
    pitch: usize,
    /// One pitch period copied from the history when the loss began.
    period: Vec<f32>,
}

impl Plc {
    /// Concealment for audio at `rate` Hz.
    pub fn new(rate: u32) -> Plc {
        let rate = rate.max(8000);
        let cap = 2 * (rate / PITCH_MAX_HZ) as usize + (rate / 200) as usize;
        Plc {
            rate,
            hist: Vec::with_capacity(cap + 2000),
            cap,
            lost: 0,
            pitch: 0,
            period: Vec::with_capacity((rate / PITCH_MAX_HZ) as usize + 1),
        }
    }

    fn ms(&self, ms: usize) -> usize {
        self.rate as usize * ms / 1000
    }

    /// Gain of concealed sample `k` of a loss: 1 for 10 ms, then −20 % per 10 ms, 0 from 60 ms.
    fn gain(&self, k: usize) -> f32 {
        let ten = self.ms(10).max(1);
        if k < ten {
            return 1.0;
        }
        let g = 1.0 - 0.2 * (k - ten) as f32 / ten as f32;
        g.max(0.0)
    }

    /// The synthetic continuation's sample `k` of the current loss.
    fn synth(&self, k: usize) -> f32 {
        if self.period.is_empty() {
            return 0.0;
        }
        self.period[k % self.period.len()] * self.gain(k)
    }

    /// Takes a frame decoded from a packet that arrived. After a loss the frame's start is
    /// cross-faded from the concealment, so the frame is modified in place.
    pub fn good(&mut self, frame: &mut [i16]) {
        if self.lost > 0 {
            let extra = self.lost.saturating_sub(self.ms(10)) / self.ms(10).max(1);
            let ola = (self.ms(4) * (1 + extra)).min(self.ms(10)).min(frame.len());
            for (i, s) in frame.iter_mut().take(ola).enumerate() {
                let w = (i + 1) as f32 / (ola + 1) as f32;
                let v = self.synth(self.lost + i) * (1.0 - w) + f32::from(*s) * w;
                *s = v.round().clamp(-32768.0, 32767.0) as i16;
            }
            self.lost = 0;
        }
        self.push(frame.iter().map(|&s| f32::from(s)));
    }

    fn push(&mut self, samples: impl Iterator<Item = f32>) {
        self.hist.extend(samples);
        if self.hist.len() > self.cap {
            let drop = self.hist.len() - self.cap;
            self.hist.drain(..drop);
        }
    }

    /// Appends `samples` samples standing in for lost audio.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        if self.lost == 0 {
            self.start_loss();
        }
        let start = self.lost;
        let first = out.len();
        out.extend((0..samples).map(|i| {
            let v = self.synth(start + i);
            v.round().clamp(-32768.0, 32767.0) as i16
        }));
        self.lost += samples;
        // What was played becomes history, so a loss soon after this one continues from it.
        self.push(out[first..].iter().map(|&s| f32::from(s)));
    }

    /// The pitch period (in samples) the current or last loss used; 0 before any loss.
    pub fn pitch(&self) -> usize {
        self.pitch
    }

    fn start_loss(&mut self) {
        self.period.clear();
        self.pitch = 0;
        let pmin = (self.rate / PITCH_MIN_HZ) as usize;
        let pmax = (self.rate / PITCH_MAX_HZ) as usize;
        let n = self.hist.len();
        // With less history than two of the longest periods, search the periods it can hold.
        let pmax = pmax.min(n / 2);
        if pmax < pmin {
            // Too little audio to find a pitch: repeat what there is (or stay silent).
            self.pitch = n;
            self.period.extend_from_slice(&self.hist);
            return;
        }
        // Normalised cross-correlation of the last `w` samples with the same length `p`
        // samples earlier; the best `p` is the pitch period.
        let w = pmax.min(n - pmax);
        let target = &self.hist[n - w..];
        let mut best = (f32::MIN, pmin);
        for p in pmin..=pmax {
            let lagged = &self.hist[n - w - p..n - p];
            let (mut c, mut e) = (0f32, 0f32);
            for (a, b) in target.iter().zip(lagged) {
                c += a * b;
                e += b * b;
            }
            let score = if e > 0.0 { c / e.sqrt() } else { 0.0 };
            if score > best.0 {
                best = (score, p);
            }
        }
        self.pitch = best.1;
        self.period.extend_from_slice(&self.hist[n - self.pitch..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::sine;
    use std::time::Duration;

    /// Plays `signal` in 20 ms frames, losing the frames in `lost`; returns what a listener hears.
    fn play(signal: &[i16], rate: u32, lost: &[usize]) -> Vec<i16> {
        let per = (rate / 50) as usize;
        let mut plc = Plc::new(rate);
        let mut out = Vec::new();
        for (i, f) in signal.chunks(per).enumerate() {
            if lost.contains(&i) {
                plc.conceal(f.len(), &mut out);
            } else {
                let mut frame = f.to_vec();
                plc.good(&mut frame);
                out.extend_from_slice(&frame);
            }
        }
        out
    }

    fn snr(want: &[i16], got: &[i16]) -> f64 {
        let (mut s, mut e) = (0f64, 0f64);
        for (a, b) in want.iter().zip(got) {
            let (a, b) = (f64::from(*a), f64::from(*b));
            s += a * a;
            e += (a - b) * (a - b);
        }
        10.0 * (s / e.max(1e-9)).log10()
    }

    /// A voiced-speech-like signal: harmonics of `f0` with falling amplitude.
    fn voiced(f0: f64, rate: u32, ms: u64) -> Vec<i16> {
        let n = (u64::from(rate) * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let v: f64 = (1..=8)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum();
                (v * 5000.0) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_pitch_and_continues_the_waveform() {
        for (rate, f0) in [(8000, 125.0), (8000, 160.0), (16000, 100.0), (16000, 200.0)] {
            let signal = voiced(f0, rate, 400);
            let heard = play(&signal, rate, &[10]);
            let per = (rate / 50) as usize;
            let mut plc = Plc::new(rate);
            let mut first = signal[..10 * per].to_vec();
            plc.good(&mut first);
            plc.conceal(per, &mut Vec::new());
            let want = f64::from(rate) / f0;
            assert!(
                (plc.pitch() as f64 - want).abs() <= 1.0,
                "{rate} Hz, f0 {f0}: pitch {} vs {want}",
                plc.pitch()
            );
            // The first 10 ms of the gap follow the real waveform closely.
            let gap = 10 * per..10 * per + per / 2;
            let s = snr(&signal[gap.clone()], &heard[gap]);
            assert!(s > 15.0, "{rate} Hz, f0 {f0}: SNR {s:.1} dB");
        }
    }

    #[test]
    fn beats_repeating_the_last_frame() {
        // 310 Hz does not divide 20 ms: a repeated frame jumps in phase, a pitch period does not.
        let signal = sine(310.0, Duration::from_millis(400), 8000, 10000);
        let heard = play(&signal, 8000, &[10]);
        let gap = 1600..1680;
        let pitch_snr = snr(&signal[gap.clone()], &heard[gap.clone()]);
        let repeated: Vec<i16> = signal[1440..1520].to_vec();
        let repeat_snr = snr(&signal[gap], &repeated);
        println!("PLC 310 Hz: pitch repeat {pitch_snr:.1} dB, frame repeat {repeat_snr:.1} dB");
        assert!(pitch_snr > repeat_snr + 10.0);
        // No jump where the loss starts: the step there is like any other step of the sine.
        let max_step = |s: &[i16]| {
            s.windows(2)
                .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
                .max()
                .unwrap_or(0)
        };
        let normal = max_step(&signal[..1600]);
        assert!(max_step(&heard[1590..1610]) <= normal * 5 / 4);
    }

    #[test]
    fn fades_to_silence_and_recovers_smoothly() {
        let signal = voiced(125.0, 8000, 600);
        // Lose four frames (80 ms): loud for 10 ms, silent from 60 ms on.
        let heard = play(&signal, 8000, &[10, 11, 12, 13]);
        let rms = |s: &[i16]| {
            (s.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / s.len() as f64).sqrt()
        };
        let before = rms(&signal[1400..1600]);
        assert!(rms(&heard[1600..1680]) > 0.7 * before);
        assert!(
            rms(&heard[1920..2000]) < 0.45 * before,
            "40-50 ms: gain 0.4 to 0.2"
        );
        assert!(
            heard[1600 + 480..1600 + 640].iter().all(|&s| s == 0),
            "silent after 60 ms"
        );
        // Recovery at sample 2240 cross-fades from silence: no jump bigger than the signal's.
        let normal = signal
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        let at_recovery = heard[2235..2260]
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        assert!(at_recovery <= normal, "{at_recovery} vs {normal}");
        // After the cross-fade the real audio is back untouched.
        assert_eq!(&heard[2240 + 80..2400], &signal[2240 + 80..2400]);
    }

    #[test]
    fn loss_before_any_audio_is_silence() {
        let mut plc = Plc::new(8000);
        let mut out = Vec::new();
        plc.conceal(160, &mut out);
        assert_eq!(out, vec![0; 160]);
        let mut frame = vec![1000i16; 160];
        plc.good(&mut frame);
        assert!(
            frame[..32].iter().all(|&s| s < 1000),
            "faded in from silence"
        );
        assert_eq!(frame[159], 1000);
    }
}
