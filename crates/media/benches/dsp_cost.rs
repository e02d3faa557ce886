//! Per-frame cost of the media engine's DSP blocks, and what they mean for calls per core.
//!
//! `cargo bench -p media --bench dsp_cost` (release build). Each figure is the median over
//! several runs of the time one 20 ms frame takes on one core; the capacity lines divide
//! 20 ms by the per-call work (DSP only: no sockets, no jitter buffer).

use media::codec::{self, CodecKind, Decoder, Encoder};
use media::inband::DtmfDetector;
use media::mix::{Clip, ConferenceMixer};
use media::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use media::progress::{Country, ProgressTone, Tone};
use media::resample::Resampler;
use std::hint::black_box;
use std::time::Duration;

/// A speech-like test signal (a few harmonics with a wandering pitch) at `rate`.
fn signal(rate: u32, ms: u32) -> Vec<i16> {
    let n = (rate / 1000 * ms) as usize;
    let r = f64::from(rate);
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / r;
            let f0 = 140.0 + 40.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
            phase += f0 / r;
            let p = 2.0 * std::f64::consts::PI * phase;
            let v = p.sin() + 0.5 * (2.0 * p).sin() + 0.3 * (3.0 * p).sin() + 0.2 * (5.0 * p).sin();
            (v * 6000.0) as i16
        })
        .collect()
}

/// CPU time this thread has used. Measured instead of wall time because the machine is shared:
/// time spent preempted by other processes is not the code's cost.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median CPU time per frame of `f`, called once per 20 ms frame over 10 s of audio, 5 runs.
fn per_frame(frames: usize, mut f: impl FnMut(usize)) -> Duration {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = thread_cpu();
        for i in 0..frames {
            f(i);
        }
        runs.push((thread_cpu() - t) / frames as u32);
    }
    runs.sort();
    runs[2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The 20 ms frames of a signal.
fn frames_of(s: &[i16], rate: u32) -> Vec<&[i16]> {
    s.chunks_exact((rate / 50) as usize).collect()
}

/// CPU time per frame to encode and decode every frame with `enc`/`dec`.
fn codec_cost(enc: &mut dyn Encoder, dec: &mut dyn Decoder, frames: &[&[i16]]) -> Duration {
    let (mut p, mut o) = (Vec::with_capacity(1500), Vec::with_capacity(1000));
    per_frame(frames.len(), |i| {
        p.clear();
        o.clear();
        enc.encode(frames[i], &mut p).expect("enc");
        dec.decode(&p, &mut o).expect("dec");
        black_box(&o);
    })
}

/// CPU time per frame to resample every frame from `from` to `to`.
fn resample_cost(from: u32, to: u32, frames: &[&[i16]]) -> Duration {
    let mut r = Resampler::new(from, to).expect("rate");
    let mut out = Vec::with_capacity(1000);
    per_frame(frames.len(), |i| {
        out.clear();
        r.process(frames[i], &mut out);
        black_box(&out);
    })
}

/// CPU time per frame of in-band DTMF detection at `rate`.
fn inband_cost(rate: u32, frames: &[&[i16]]) -> Duration {
    let mut det = DtmfDetector::new(rate);
    let mut digits = Vec::new();
    per_frame(frames.len(), |i| {
        det.process(frames[i], &mut digits);
        black_box(&digits);
    })
}

/// CPU time per frame of the N-1 mix of `n` parties at `rate`.
fn mix_cost(n: u32, rate: u32, frames: usize) -> Duration {
    let parties: Vec<Vec<i16>> = (0..n).map(|k| signal(rate + k * 10, 1000)).collect();
    let per = (rate / 50) as usize;
    let mut mixer = ConferenceMixer::new(Clip::Soft);
    let mut outs = Vec::new();
    per_frame(frames, |i| {
        let j = i % 50;
        let inputs: Vec<&[i16]> = parties.iter().map(|p| &p[j * per..(j + 1) * per]).collect();
        mixer.mix(&inputs, &mut outs);
        black_box(&outs);
    })
}

fn main() {
    let (s8, s16, s48) = (
        signal(8000, 10_000),
        signal(16000, 10_000),
        signal(48000, 10_000),
    );
    let (f8, f16, f48) = (
        frames_of(&s8, 8000),
        frames_of(&s16, 16000),
        frames_of(&s48, 48000),
    );
    let frames = f8.len();
    let mut rows: Vec<(String, Duration)> = Vec::new();

    let mut pcmu = codec::encoder(CodecKind::Pcmu).expect("pcmu");
    let g711 = codec_cost(
        pcmu.as_mut(),
        codec::decoder(CodecKind::Pcmu).expect("pcmu").as_mut(),
        &f8,
    );
    rows.push(("G.711 µ-law encode + decode (160 samples)".into(), g711));
    let mut p = Vec::with_capacity(200);
    let g711_enc = per_frame(frames, |i| {
        p.clear();
        pcmu.encode(f8[i], &mut p).expect("enc");
        black_box(&p);
    });
    rows.push(("G.711 µ-law encode only".into(), g711_enc));
    let g722 = codec_cost(
        codec::encoder(CodecKind::G722).expect("g722").as_mut(),
        codec::decoder(CodecKind::G722).expect("g722").as_mut(),
        &f16,
    );
    rows.push(("G.722 encode + decode (320 samples)".into(), g722));

    // Opus at several complexities, from 48 kHz PCM and from 8 kHz PCM.
    let mut opus_default = Duration::ZERO;
    for complexity in [0, 1, 2, 5, 10] {
        let cfg = OpusConfig {
            complexity,
            ..OpusConfig::default()
        };
        for (rate, fr) in [(48000, &f48), (8000, &f8)] {
            let d = codec_cost(
                &mut OpusEncoder::new(rate, cfg).expect("opus"),
                &mut OpusDecoder::new(rate).expect("opus"),
                fr,
            );
            if rate == 48000 && complexity == OpusConfig::default().complexity {
                opus_default = d;
            }
            rows.push((
                format!("Opus {rate} Hz PCM encode + decode, complexity {complexity}"),
                d,
            ));
        }
    }
    // What codec::encoder_at/decoder_at pick for 8 kHz PCM (OpusConfig::for_pcm_rate).
    let opus_8k_at = codec_cost(
        codec::encoder_at(CodecKind::Opus, 8000)
            .expect("opus")
            .as_mut(),
        codec::decoder_at(CodecKind::Opus, 8000)
            .expect("opus")
            .as_mut(),
        &f8,
    );
    rows.push(("Opus via encoder_at/decoder_at(8000)".into(), opus_8k_at));

    // Decoding alone (the receive side of a transcoded call).
    let mut enc = OpusEncoder::new(48000, OpusConfig::default()).expect("opus");
    let packets: Vec<Vec<u8>> = f48
        .iter()
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p).expect("enc");
            p
        })
        .collect();
    let mut o = Vec::with_capacity(1000);
    for rate in [48000, 8000] {
        let mut dec = OpusDecoder::new(rate).expect("opus");
        let d = per_frame(frames, |i| {
            o.clear();
            dec.decode(&packets[i], &mut o).expect("dec");
            black_box(&o);
        });
        rows.push((format!("Opus decode only, to {rate} Hz PCM"), d));
    }

    let r_up = resample_cost(8000, 48000, &f8);
    rows.push(("resample 8 -> 48 kHz".into(), r_up));
    let r_down = resample_cost(48000, 8000, &f48);
    rows.push(("resample 48 -> 8 kHz".into(), r_down));
    rows.push((
        "resample 8 -> 16 kHz".into(),
        resample_cost(8000, 16000, &f8),
    ));
    rows.push((
        "resample 16 -> 8 kHz".into(),
        resample_cost(16000, 8000, &f16),
    ));

    let inband = inband_cost(8000, &f8);
    rows.push(("in-band DTMF detector, 8 kHz".into(), inband));
    rows.push((
        "in-band DTMF detector, 16 kHz".into(),
        inband_cost(16000, &f16),
    ));

    let mix10 = mix_cost(10, 8000, frames);
    rows.push(("N-1 mix of 10 parties, 8 kHz".into(), mix10));
    rows.push((
        "N-1 mix of 10 parties, 16 kHz".into(),
        mix_cost(10, 16000, frames),
    ));

    let mut tone = ProgressTone::new(Country::Japan, Tone::Ringback, 8000);
    let mut frame = vec![0i16; 160];
    let ringback = per_frame(frames, |_| {
        tone.next_frame(&mut frame);
        black_box(&frame);
    });
    rows.push(("JP ringback tone, 8 kHz".into(), ringback));

    println!("\nCPU time per 20 ms frame, one core (median of 5 runs over 10 s of audio):");
    for (name, d) in &rows {
        println!("  {name:<52} {:>8.2} µs", us(*d));
    }
    let cap = |d: Duration| 0.020 / d.as_secs_f64().max(1e-12);
    println!("\nDSP-only capacity per core (20 ms / work per call per frame):");
    println!(
        "  G.711 prompt legs (encode)                           {:>10.0}",
        cap(g711_enc)
    );
    // Opus<->G.711 via 48 kHz: decode G.711, 8->48, Opus enc; Opus dec, 48->8, G.711 enc.
    println!(
        "  Opus<->G.711 calls, Opus at 48 kHz + resampling      {:>10.0}",
        cap(g711 + r_up + r_down + opus_default)
    );
    println!(
        "  Opus<->G.711 calls, Opus PCM at 8 kHz (encoder_at)   {:>10.0}",
        cap(g711 + opus_8k_at)
    );
    println!(
        "  conference participants, 10-party G.711 rooms        {:>10.0}",
        cap(mix10 / 10 + g711 + inband)
    );
}
