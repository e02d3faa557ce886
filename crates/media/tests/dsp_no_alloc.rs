//! The per-frame DSP paths of a terminating leg must not allocate once warmed up: count heap
//! allocations over 500 frames (10 s) of each (its own test binary, so nothing else allocates).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use media::codec::{self, CodecKind};
use media::inband::{DtmfDetector, DtmfGenerator};
use media::mix::{Clip, ConferenceMixer};
use media::progress::{Country, ProgressTone, Tone};
use media::resample::Resampler;

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator as it is; allocations are only counted.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller upholds GlobalAlloc::realloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds GlobalAlloc::dealloc's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTER: CountingAllocator = CountingAllocator;

/// Allocations made by `frames` calls of `f` after `f` has run a few times to warm up.
fn allocations(frames: usize, mut f: impl FnMut(usize)) -> u64 {
    for i in 0..5 {
        f(i);
    }
    let before = ALLOCATIONS.load(Relaxed);
    for i in 0..frames {
        f(i);
    }
    ALLOCATIONS.load(Relaxed) - before
}

#[test]
fn dsp_frame_paths_do_not_allocate() {
    let speech: Vec<i16> = media::inband::generate("123456789*0#", 48000, 200, 100, -10.0);
    let f48 = |i: usize| {
        let j = i % (speech.len() / 960);
        &speech[j * 960..(j + 1) * 960]
    };
    let s8: Vec<i16> = speech.iter().step_by(6).copied().collect();
    let f8 = |i: usize| {
        let j = i % (s8.len() / 160);
        &s8[j * 160..(j + 1) * 160]
    };
    let s16: Vec<i16> = speech.iter().step_by(3).copied().collect();
    let f16 = |i: usize| {
        let j = i % (s16.len() / 320);
        &s16[j * 320..(j + 1) * 320]
    };
    let mut pcm = Vec::with_capacity(4000);
    let mut bytes = Vec::with_capacity(4000);
    let mut results = Vec::new();

    for (from, to) in [(8000, 48000), (48000, 8000), (16000, 8000), (8000, 16000)] {
        let mut r = Resampler::new(from, to).expect("rate");
        let n = allocations(500, |i| {
            pcm.clear();
            let input = match from {
                8000 => f8(i),
                16000 => f16(i),
                _ => f48(i),
            };
            r.process(input, &mut pcm);
        });
        results.push((format!("resample {from}->{to}"), n));
    }

    let mut digits = Vec::with_capacity(64);
    for rate in [8000, 16000] {
        let mut det = DtmfDetector::new(rate);
        let n = allocations(500, |i| {
            det.process(if rate == 8000 { f8(i) } else { f16(i) }, &mut digits);
            if digits.len() > 32 {
                digits.clear();
            }
        });
        results.push((format!("in-band detector {rate}"), n));
    }

    let parties: Vec<&[i16]> = (0..10).map(|k| f8(k * 7)).collect();
    let mut mixer = ConferenceMixer::new(Clip::Soft);
    let mut outs = Vec::new();
    let n = allocations(500, |_| mixer.mix(&parties, &mut outs));
    results.push(("N-1 mix of 10".into(), n));

    let mut tone = ProgressTone::new(Country::Japan, Tone::Ringback, 16000);
    let mut frame = vec![0i16; 320];
    let n = allocations(500, |_| tone.next_frame(&mut frame));
    results.push(("progress tone".into(), n));
    let mut gen_dtmf = DtmfGenerator::new("0123456789", 8000, 100, 100, -10.0);
    let n = allocations(500, |_| gen_dtmf.next_frame(&mut frame[..160]));
    results.push(("DTMF generator".into(), n));

    for (kind, rate) in [
        (CodecKind::Pcmu, 8000),
        (CodecKind::Pcma, 8000),
        (CodecKind::G722, 16000),
        (CodecKind::Opus, 48000),
        (CodecKind::Opus, 8000),
    ] {
        let mut enc = codec::encoder_at(kind, rate).expect("encoder");
        let mut dec = codec::decoder_at(kind, rate).expect("decoder");
        let n = allocations(500, |i| {
            bytes.clear();
            pcm.clear();
            let input = match rate {
                8000 => f8(i),
                16000 => f16(i),
                _ => f48(i),
            };
            enc.encode(input, &mut bytes).expect("encode");
            dec.decode(&bytes, &mut pcm).expect("decode");
            if i % 10 == 0 {
                dec.conceal(input.len(), &mut pcm);
            }
        });
        results.push((format!("{kind} at {rate} encode+decode+conceal"), n));
    }

    println!("allocations over 500 frames: {results:?}");
    for (what, n) in &results {
        assert_eq!(*n, 0, "{what} allocated {n} times in 500 frames");
    }
}
