//! The DSP blocks chained the way a transcoding leg chains them: in-band digits and progress
//! tones generated at one rate, carried through a codec and the resampler, detected at the
//! other end — 20 ms frame by 20 ms frame, as the media engine will run them.

use media::codec::{self, CodecKind};
use media::inband::{self, DtmfDetector};
use media::progress::{Country, ProgressTone, Tone};
use media::resample::Resampler;
use media::tone::{energy, goertzel};

const DIGITS: &str = "0123456789*#ABCD";

/// Frames `pcm` (at `rate`) through encoder → decoder of `kind` (created for `rate`).
fn through_codec(kind: CodecKind, rate: u32, pcm: &[i16]) -> Vec<i16> {
    let mut enc = codec::encoder_at(kind, rate).expect("encoder");
    let mut dec = codec::decoder_at(kind, rate).expect("decoder");
    let mut out = Vec::with_capacity(pcm.len());
    let mut payload = Vec::new();
    for frame in pcm.chunks_exact((rate / 50) as usize) {
        payload.clear();
        enc.encode(frame, &mut payload).expect("encode");
        dec.decode(&payload, &mut out).expect("decode");
    }
    out
}

fn resample(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    let mut r = Resampler::new(from, to).expect("rate");
    let mut out = Vec::new();
    for frame in pcm.chunks((from / 50) as usize) {
        r.process(frame, &mut out);
    }
    out
}

fn detect(pcm: &[i16], rate: u32) -> String {
    let mut det = DtmfDetector::new(rate);
    let mut found = Vec::new();
    for frame in pcm.chunks((rate / 50) as usize) {
        det.process(frame, &mut found);
    }
    det.flush(&mut found);
    found.iter().map(|d| d.digit).collect()
}

/// Digits with a trailing pause, padded to whole 20 ms frames.
fn digits_at(rate: u32) -> Vec<i16> {
    let mut pcm = inband::generate(DIGITS, rate, 80, 80, -10.0);
    pcm.resize(
        pcm.len().next_multiple_of((rate / 50) as usize) + (rate / 5) as usize,
        0,
    );
    pcm
}

#[test]
fn inband_digits_survive_g711_and_g722() {
    for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
        let out = through_codec(kind, 8000, &digits_at(8000));
        assert_eq!(detect(&out, 8000), DIGITS, "{kind}");
    }
    let out = through_codec(CodecKind::G722, 16000, &digits_at(16000));
    assert_eq!(detect(&out, 16000), DIGITS, "G.722");
}

#[test]
fn inband_digits_from_a_g711_phone_reach_an_opus_phone_and_back() {
    // 8 kHz phone → resample to 48 kHz → Opus (48 kHz settings) → decode → resample to 8 kHz.
    let at48 = resample(&digits_at(8000), 8000, 48000);
    let back = resample(&through_codec(CodecKind::Opus, 48000, &at48), 48000, 8000);
    assert_eq!(detect(&back, 8000), DIGITS, "Opus at 48 kHz");
    // The cheap transcoding path: Opus fed 8 kHz PCM directly (complexity 0, 16 kbit/s).
    let direct = through_codec(CodecKind::Opus, 8000, &digits_at(8000));
    assert_eq!(detect(&direct, 8000), DIGITS, "Opus at 8 kHz");
}

#[test]
fn progress_tones_survive_resampling_and_codecs() {
    // Japanese ringback made at 8 kHz, heard by a 48 kHz Opus phone: 400 Hz dominates the
    // first second and the next two are silent.
    let mut g = ProgressTone::new(Country::Japan, Tone::Ringback, 8000);
    let mut pcm = vec![0i16; 8000 * 3];
    for frame in pcm.chunks_mut(160) {
        g.next_frame(frame);
    }
    let at48 = resample(&pcm, 8000, 48000);
    let heard = through_codec(CodecKind::Opus, 48000, &at48);
    let on = &heard[4800..43200];
    let share = goertzel(on, 400.0, 48000) / (2.0 * energy(on));
    assert!(share > 0.6, "400 Hz share {share}");
    let off = &heard[60000..140000];
    assert!(energy(off) < energy(on) / 1000.0, "silence between bursts");
    // North American busy through G.722 at 16 kHz: 480 + 620 Hz.
    let mut g = ProgressTone::new(Country::NorthAmerica, Tone::Busy, 16000);
    let mut pcm = vec![0i16; 16000];
    for frame in pcm.chunks_mut(320) {
        g.next_frame(frame);
    }
    let heard = through_codec(CodecKind::G722, 16000, &pcm);
    let on = &heard[800..7200];
    let both = (goertzel(on, 480.0, 16000) + goertzel(on, 620.0, 16000)) / (2.0 * energy(on));
    assert!(both > 0.9, "{both}");
}
