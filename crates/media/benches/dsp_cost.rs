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

fn main() {
    let frames = 500; // 10 s
    let s8 = signal(8000, 10_000);
    let s16 = signal(16000, 10_000);
    let s48 = signal(48000, 10_000);
    let f8 = |i: usize| &s8[i * 160..(i + 1) * 160];
    let f16 = |i: usize| &s16[i * 320..(i + 1) * 320];
    let f48 = |i: usize| &s48[i * 960..(i + 1) * 960];
    let mut rows: Vec<(String, Duration)> = Vec::new();

    // G.711 µ-law encode + decode.
    let mut enc = codec::encoder(CodecKind::Pcmu).expect("pcmu");
    let mut dec = codec::decoder(CodecKind::Pcmu).expect("pcmu");
    let (mut p, mut o) = (Vec::with_capacity(200), Vec::with_capacity(200));
    let g711 = per_frame(frames, |i| {
        p.clear();
        o.clear();
        enc.encode(f8(i), &mut p).expect("enc");
        dec.decode(&p, &mut o).expect("dec");
        black_box(&o);
    });
    rows.push(("G.711 µ-law encode + decode (160 samples)".into(), g711));
    let g711_enc = per_frame(frames, |i| {
        p.clear();
        enc.encode(f8(i), &mut p).expect("enc");
        black_box(&p);
    });
    rows.push(("G.711 µ-law encode only".into(), g711_enc));

    // G.722.
    let mut enc = codec::encoder(CodecKind::G722).expect("g722");
    let mut dec = codec::decoder(CodecKind::G722).expect("g722");
    let g722 = per_frame(frames, |i| {
        p.clear();
        o.clear();
        enc.encode(f16(i), &mut p).expect("enc");
        dec.decode(&p, &mut o).expect("dec");
        black_box(&o);
    });
    rows.push(("G.722 encode + decode (320 samples)".into(), g722));

    // Opus at several complexities, 48 kHz PCM, and at 8 kHz PCM (no resampler needed).
    let mut opus_default = Duration::ZERO;
    for complexity in [0, 1, 2, 5, 10] {
        let cfg = OpusConfig {
            complexity,
            ..OpusConfig::default()
        };
        let mut enc = OpusEncoder::new(48000, cfg).expect("opus");
        let mut dec = OpusDecoder::new(48000).expect("opus");
        let d = per_frame(frames, |i| {
            p.clear();
            o.clear();
            enc.encode(f48(i), &mut p).expect("enc");
            dec.decode(&p, &mut o).expect("dec");
            black_box(&o);
        });
        if complexity == OpusConfig::default().complexity {
            opus_default = d;
        }
        rows.push((
            format!("Opus 48 kHz encode + decode, complexity {complexity}"),
            d,
        ));
        let mut enc = OpusEncoder::new(8000, cfg).expect("opus");
        let mut dec = OpusDecoder::new(8000).expect("opus");
        let d = per_frame(frames, |i| {
            p.clear();
            o.clear();
            enc.encode(f8(i), &mut p).expect("enc");
            dec.decode(&p, &mut o).expect("dec");
            black_box(&o);
        });
        rows.push((
            format!("Opus 8 kHz PCM encode + decode, complexity {complexity}"),
            d,
        ));
    }

    // Decoding alone (the receive side of a transcoded call).
    let mut enc = OpusEncoder::new(48000, OpusConfig::default()).expect("opus");
    let packets: Vec<Vec<u8>> = (0..frames)
        .map(|i| {
            let mut p = Vec::new();
            enc.encode(f48(i), &mut p).expect("enc");
            p
        })
        .collect();
    for rate in [48000, 8000] {
        let mut dec = OpusDecoder::new(rate).expect("opus");
        let d = per_frame(frames, |i| {
            o.clear();
            dec.decode(&packets[i], &mut o).expect("dec");
            black_box(&o);
        });
        rows.push((format!("Opus decode only, to {rate} Hz PCM"), d));
    }

    // Resampling.
    let mut up = Resampler::new(8000, 48000).expect("rate");
    let mut out = Vec::with_capacity(1000);
    let r_up = per_frame(frames, |i| {
        out.clear();
        up.process(f8(i), &mut out);
        black_box(&out);
    });
    rows.push(("resample 8 -> 48 kHz".into(), r_up));
    let mut down = Resampler::new(48000, 8000).expect("rate");
    let r_down = per_frame(frames, |i| {
        out.clear();
        down.process(f48(i), &mut out);
        black_box(&out);
    });
    rows.push(("resample 48 -> 8 kHz".into(), r_down));
    let mut up16 = Resampler::new(8000, 16000).expect("rate");
    let r_up16 = per_frame(frames, |i| {
        out.clear();
        up16.process(f8(i), &mut out);
        black_box(&out);
    });
    rows.push(("resample 8 -> 16 kHz".into(), r_up16));

    // In-band DTMF detection.
    let mut det = DtmfDetector::new(8000);
    let mut digits = Vec::new();
    let inband = per_frame(frames, |i| {
        det.process(f8(i), &mut digits);
        black_box(&digits);
    });
    rows.push(("in-band DTMF detector, 8 kHz".into(), inband));
    let mut det16 = DtmfDetector::new(16000);
    let inband16 = per_frame(frames, |i| {
        det16.process(f16(i), &mut digits);
        black_box(&digits);
    });
    rows.push(("in-band DTMF detector, 16 kHz".into(), inband16));

    // Conference N-1 mix of 10 parties.
    let parties: Vec<Vec<i16>> = (0..10).map(|k| signal(8000 + k * 10, 1000)).collect();
    let mut mixer = ConferenceMixer::new(Clip::Soft);
    let mut outs = Vec::new();
    let mix10 = per_frame(frames, |i| {
        let j = i % 50;
        let inputs: Vec<&[i16]> = parties.iter().map(|p| &p[j * 160..(j + 1) * 160]).collect();
        mixer.mix(&inputs, &mut outs);
        black_box(&outs);
    });
    rows.push(("N-1 mix of 10 parties, 8 kHz".into(), mix10));
    let parties16: Vec<Vec<i16>> = (0..10).map(|k| signal(16000 + k * 10, 1000)).collect();
    let mix10w = per_frame(frames, |i| {
        let j = i % 50;
        let inputs: Vec<&[i16]> = parties16
            .iter()
            .map(|p| &p[j * 320..(j + 1) * 320])
            .collect();
        mixer.mix(&inputs, &mut outs);
        black_box(&outs);
    });
    rows.push(("N-1 mix of 10 parties, 16 kHz".into(), mix10w));

    // Progress tone generation.
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
    let frame = Duration::from_millis(20);
    let cap = |d: Duration| frame.as_secs_f64() / d.as_secs_f64().max(1e-12);
    // A G.711 prompt leg: encode one frame per 20 ms.
    println!("\nDSP-only capacity per core (20 ms / work per call per frame):");
    println!(
        "  G.711 prompt legs (encode)                                {:>10.0}",
        cap(g711_enc)
    );
    // Opus<->G.711 via 48 kHz: decode G.711, 8->48, Opus enc; Opus dec, 48->8, G.711 enc.
    let via48 = g711 + r_up + r_down + opus_default;
    println!(
        "  Opus<->G.711 calls, Opus at 48 kHz + resampling         {:>10.0}",
        cap(via48)
    );
    // Opus fed and read at 8 kHz directly (codec::encoder_at / decoder_at, which pick
    // OpusConfig::for_pcm_rate(8000): complexity 0).
    let mut enc = codec::encoder_at(CodecKind::Opus, 8000).expect("opus");
    let mut dec = codec::decoder_at(CodecKind::Opus, 8000).expect("opus");
    let opus_8k_at = per_frame(frames, |i| {
        p.clear();
        o.clear();
        enc.encode(f8(i), &mut p).expect("enc");
        dec.decode(&p, &mut o).expect("dec");
        black_box(&o);
    });
    let via8 = g711 + opus_8k_at;
    println!(
        "  Opus<->G.711 calls, Opus PCM at 8 kHz (encoder_at)      {:>10.0}",
        cap(via8)
    );
    println!(
        "  conference participants, 10-party rooms, G.711 (mix + codec) {:>5.0}",
        cap(mix10 / 10 + g711 + inband)
    );
}
