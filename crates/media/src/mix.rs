//! Mixing PCM frames: the sum of N parties, and the conference "everyone but me" (N-1) mix in
//! O(N) — the total is summed once in 32 bits and each party gets the total minus its own frame,
//! then a soft clipper brings the sum back into 16 bits without the harsh distortion of hard
//! clipping (a compressor-like knee above ~-3 dBFS, hard ceiling at full scale).

/// Level above which the soft clipper starts compressing (about -3 dBFS).
const KNEE: i32 = 23_170;

/// Brings a 32-bit sum back into 16 bits: linear below [`KNEE`], a smooth curve that approaches
/// full scale above it. Monotonic and odd-symmetric.
#[inline]
pub fn soft_clip(v: i32) -> i16 {
    let a = v.unsigned_abs() as i64;
    let knee = i64::from(KNEE);
    if a <= knee {
        return v as i16;
    }
    // Above the knee: y = knee + room * x / (x + room), x = a - knee, room = 32767 - knee.
    let room = 32_767 - knee;
    let x = a - knee;
    let y = knee + room * x / (x + room);
    let y = y.min(32_767) as i16;
    if v < 0 { -y } else { y }
}

/// Saturating (hard-clipping) conversion of a sum to 16 bits.
#[inline]
pub fn saturate(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Clipping behaviour for a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clip {
    /// Soft knee (the default for conferences).
    #[default]
    Soft,
    /// Hard saturation at full scale.
    Hard,
}

impl Clip {
    #[inline]
    fn apply(self, v: i32) -> i16 {
        match self {
            Clip::Soft => soft_clip(v),
            Clip::Hard => saturate(v),
        }
    }
}

/// Mixes `inputs` (frames of equal length at one rate) into `out`, which is resized to the
/// frame length. Shorter inputs count as silence past their end.
pub fn mix_into(inputs: &[&[i16]], clip: Clip, out: &mut Vec<i16>) {
    let len = inputs.iter().map(|f| f.len()).max().unwrap_or(0);
    out.clear();
    out.resize(len, 0);
    let mut acc = vec![0i32; len];
    for f in inputs {
        for (a, &s) in acc.iter_mut().zip(f.iter()) {
            *a += i32::from(s);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = clip.apply(a);
    }
}

/// The N-1 mixer of a conference: reusable buffers, no allocation per frame once warmed up.
#[derive(Debug, Default, Clone)]
pub struct ConferenceMixer {
    total: Vec<i32>,
    clip: Clip,
}

impl ConferenceMixer {
    /// A mixer clipping with `clip`.
    pub fn new(clip: Clip) -> ConferenceMixer {
        ConferenceMixer {
            total: Vec::new(),
            clip,
        }
    }

    /// Mixes one frame period. `inputs[i]` is party i's frame (an empty slice for a muted or
    /// silent party); `outputs[i]` receives everyone's audio except party i's own, resized to
    /// the frame length. `outputs` is grown to `inputs.len()` entries as needed.
    ///
    /// Cost: one pass to sum, one pass per party to subtract and clip — O(N·frame).
    pub fn mix(&mut self, inputs: &[&[i16]], outputs: &mut Vec<Vec<i16>>) {
        let len = inputs.iter().map(|f| f.len()).max().unwrap_or(0);
        self.total.clear();
        self.total.resize(len, 0);
        for f in inputs {
            for (t, &s) in self.total.iter_mut().zip(f.iter()) {
                *t += i32::from(s);
            }
        }
        if outputs.len() < inputs.len() {
            outputs.resize_with(inputs.len(), Vec::new);
        }
        for (own, out) in inputs.iter().zip(outputs.iter_mut()) {
            out.clear();
            out.resize(len, 0);
            let clip = self.clip;
            for (i, (o, &t)) in out.iter_mut().zip(self.total.iter()).enumerate() {
                let mine = own.get(i).copied().map_or(0, i32::from);
                *o = clip.apply(t - mine);
            }
        }
    }

    /// The full mix (everyone) of the last [`ConferenceMixer::mix`] call, for a listener that
    /// is not a party (a recording of the room).
    pub fn total(&self, out: &mut Vec<i16>) {
        out.clear();
        out.extend(self.total.iter().map(|&t| self.clip.apply(t)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_clip_shape() {
        assert_eq!(soft_clip(0), 0);
        assert_eq!(soft_clip(1000), 1000);
        assert_eq!(soft_clip(-1000), -1000);
        assert_eq!(soft_clip(KNEE), KNEE as i16);
        assert_eq!(soft_clip(-KNEE), -(KNEE as i16));
        assert!(soft_clip(1_000_000) > 32_000);
        assert!(soft_clip(-1_000_000) >= -32_767);
        assert!(soft_clip(i32::MIN) >= -32_767);
        assert!(soft_clip(i32::MAX) > 32_000);
        // Monotonic.
        let mut prev = soft_clip(-200_000);
        for v in (-200_000..200_000).step_by(97) {
            let y = soft_clip(v);
            assert!(y >= prev, "{v}");
            prev = y;
        }
        assert_eq!(saturate(40_000), 32_767);
        assert_eq!(saturate(-40_000), -32_768);
    }

    #[test]
    fn mix_sums_and_clips() {
        let a = [1000i16, -2000, 30_000, -30_000];
        let b = [500i16, 500, 30_000, -30_000];
        let mut out = Vec::new();
        mix_into(&[&a, &b], Clip::Hard, &mut out);
        assert_eq!(out, vec![1500, -1500, 32_767, -32_768]);
        mix_into(&[&a, &b], Clip::Soft, &mut out);
        assert_eq!(&out[..2], &[1500, -1500]);
        assert!(out[2] > 30_000);
        assert!(out[3] < -30_000 && out[3] >= -32_767);
        // A shorter input is silence past its end; nothing at all is an empty frame.
        mix_into(&[&a, &b[..1]], Clip::Hard, &mut out);
        assert_eq!(out, vec![1500, -2000, 30_000, -30_000]);
        mix_into(&[], Clip::Soft, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn n_minus_one_equals_naive_mix() {
        // Ten parties with distinct deterministic signals; compare with the O(N²) definition.
        let n = 10;
        let frames: Vec<Vec<i16>> = (0..n)
            .map(|p| {
                (0..160)
                    .map(|i| (((i * (p + 3) * 131) % 9000) as i32 - 4500) as i16)
                    .collect()
            })
            .collect();
        let mut inputs: Vec<&[i16]> = frames.iter().map(|f| f.as_slice()).collect();
        inputs[4] = &[]; // a muted party
        let mut mixer = ConferenceMixer::new(Clip::Soft);
        let mut outs = Vec::new();
        mixer.mix(&inputs, &mut outs);
        assert_eq!(outs.len(), n);
        for (me, out) in outs.iter().enumerate() {
            let others: Vec<&[i16]> = (0..n).filter(|&p| p != me).map(|p| inputs[p]).collect();
            let mut naive = Vec::new();
            mix_into(&others, Clip::Soft, &mut naive);
            assert_eq!(*out, naive, "party {me}");
        }
        // The muted party hears everyone; nobody hears the muted party.
        let mut total = Vec::new();
        mixer.total(&mut total);
        assert_eq!(outs[4], total);
    }

    #[test]
    fn a_party_never_hears_itself() {
        let talker = vec![8000i16; 160];
        let silent = vec![0i16; 160];
        let mut mixer = ConferenceMixer::new(Clip::Soft);
        let mut outs = Vec::new();
        mixer.mix(&[&talker, &silent, &silent], &mut outs);
        assert!(outs[0].iter().all(|&s| s == 0));
        assert!(outs[1].iter().all(|&s| s == 8000));
        assert!(outs[2].iter().all(|&s| s == 8000));
        // Fewer parties next frame: extra outputs are left alone, the ones in use are resized.
        mixer.mix(&[&silent[..80]], &mut outs);
        assert_eq!(outs[0].len(), 80);
    }
}
