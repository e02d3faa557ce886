//! In-band DTMF on relayed calls, off the relay's fast path: for calls whose recording is on
//! demand, the relay's [`crate::recorder::RecordTap`] hands a copy of each audio payload to
//! one shared worker thread (a bounded queue; a full queue drops the copy and counts it),
//! which decodes it (G.711 µ/A-law, G.722 — the codecs phones that send in-band tones use)
//! and runs the Goertzel detector ([`crate::inband::DtmfDetector`], with its talk-off
//! protection) per direction. Digits go to the call's sink, as the tap's RFC 4733 digits do.
//!
//! [`InbandWatch`] is the I/O-free part (one call, both directions), unit-tested on encoded
//! tone frames; [`InbandWorker`] is the thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::codec::{CodecKind, Decoder};
use crate::inband::{DtmfDetector, InbandDigit};
use crate::relay::Leg;

/// Copies queued to the worker at most (about 1 s of 100 calls' audio both ways).
pub const INBAND_QUEUE: usize = 20_000;
/// Calls the worker watches at most (a watch beyond it is refused and counted).
pub const MAX_WATCHED: usize = 20_000;
/// Longest payload copied (a 20 ms G.722 frame is 160 bytes; 60 ms G.711 480).
const MAX_PAYLOAD: usize = 1500;

/// Where a call's digits go: (direction, digit).
pub type InbandSink = Arc<dyn Fn(Leg, char) + Send + Sync>;

struct LegState {
    /// Payload type → decoder, made on first use.
    dec: Option<(u8, Box<dyn Decoder>)>,
    det: Option<DtmfDetector>,
    pcm: Vec<i16>,
    found: Vec<InbandDigit>,
}

impl LegState {
    fn new() -> LegState {
        LegState {
            dec: None,
            det: None,
            pcm: Vec::with_capacity(320),
            found: Vec::new(),
        }
    }
}

/// In-band digit detection on one relayed call's two directions.
pub struct InbandWatch {
    codecs: Vec<(u8, CodecKind)>,
    legs: [LegState; 2],
}

impl InbandWatch {
    /// A watch decoding the call's negotiated `codecs` (payload type → codec); Opus and
    /// unknown payload types are not decoded (phones that speak Opus send RFC 4733).
    pub fn new(codecs: Vec<(u8, CodecKind)>) -> InbandWatch {
        let codecs = codecs
            .into_iter()
            .filter(|(_, k)| *k != CodecKind::Opus)
            .collect();
        InbandWatch {
            codecs,
            legs: [LegState::new(), LegState::new()],
        }
    }

    /// One RTP payload from `leg`'s phone; digits that ended in it are appended to `out`.
    pub fn packet(&mut self, leg: Leg, pt: u8, payload: &[u8], out: &mut Vec<char>) {
        let Some(kind) = self.codecs.iter().find(|(p, _)| *p == pt).map(|(_, k)| *k) else {
            return;
        };
        let l = &mut self.legs[match leg {
            Leg::A => 0,
            Leg::B => 1,
        }];
        if l.dec.as_ref().is_none_or(|(p, _)| *p != pt) {
            let Ok(d) = crate::codec::decoder(kind) else {
                return;
            };
            // A new codec (re-INVITE): a detector at its rate.
            if l.det
                .as_ref()
                .is_none_or(|x| x.rate() != kind.sample_rate())
            {
                l.det = Some(DtmfDetector::new(kind.sample_rate()));
            }
            l.dec = Some((pt, d));
        }
        let (Some((_, dec)), Some(det)) = (l.dec.as_mut(), l.det.as_mut()) else {
            return;
        };
        l.pcm.clear();
        if dec.decode(payload, &mut l.pcm).is_err() {
            return;
        }
        det.process(&l.pcm, &mut l.found);
        out.extend(l.found.drain(..).map(|d| d.digit));
    }
}

enum Job {
    Watch {
        key: u64,
        codecs: Vec<(u8, CodecKind)>,
        sink: InbandSink,
    },
    Packet {
        key: u64,
        leg: Leg,
        pt: u8,
        payload: Vec<u8>,
    },
}

/// Counters of the worker.
#[derive(Debug, Default)]
pub struct InbandCounters {
    /// Copies dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Watches refused because [`MAX_WATCHED`] calls were watched.
    pub refused: AtomicU64,
    /// Digits found.
    pub digits: AtomicU64,
}

/// The shared detection thread.
#[derive(Clone)]
pub struct InbandWorker {
    tx: SyncSender<Job>,
    counters: Arc<InbandCounters>,
    /// Calls whose feed is gone (bounded by the calls): the worker drops their state.
    forgotten: Arc<Mutex<Vec<u64>>>,
}

impl InbandWorker {
    /// Starts the thread (it ends when every handle and feed is gone).
    pub fn start() -> std::io::Result<InbandWorker> {
        let (tx, rx) = std::sync::mpsc::sync_channel(INBAND_QUEUE);
        let counters = Arc::new(InbandCounters::default());
        let forgotten = Arc::new(Mutex::new(Vec::new()));
        let (c, f) = (counters.clone(), forgotten.clone());
        std::thread::Builder::new()
            .name("inband-dtmf".into())
            .spawn(move || run(rx, &c, &f))?;
        Ok(InbandWorker {
            tx,
            counters,
            forgotten,
        })
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<InbandCounters> {
        &self.counters
    }

    /// Watches call `key` (unique per call) with its `codecs`; digits go to `sink`. The
    /// returned feed copies a tap's packets to the worker and ends the watch when dropped.
    pub fn watch(&self, key: u64, codecs: Vec<(u8, CodecKind)>, sink: InbandSink) -> InbandFeed {
        // Blocking here would stall the caller (the driver): a full queue refuses the watch.
        if self.tx.try_send(Job::Watch { key, codecs, sink }).is_err() {
            self.counters.refused.fetch_add(1, Relaxed);
        }
        InbandFeed {
            key,
            tx: Mutex::new(self.tx.clone()),
            counters: self.counters.clone(),
            forgotten: self.forgotten.clone(),
        }
    }
}

/// A call's copy path to the worker (held by the call's tap).
pub struct InbandFeed {
    key: u64,
    /// `SyncSender` is `Send` but not `Sync`: the tap is shared by the relay and the driver.
    tx: Mutex<SyncSender<Job>>,
    counters: Arc<InbandCounters>,
    forgotten: Arc<Mutex<Vec<u64>>>,
}

impl InbandFeed {
    /// Copies one payload from `leg` (never waits: a full queue drops it).
    pub fn packet(&self, leg: Leg, pt: u8, payload: &[u8]) {
        if payload.len() > MAX_PAYLOAD {
            return;
        }
        let job = Job::Packet {
            key: self.key,
            leg,
            pt,
            payload: payload.to_vec(),
        };
        if let Err(TrySendError::Full(_)) = lock(&self.tx).try_send(job) {
            self.counters.dropped.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for InbandFeed {
    fn drop(&mut self) {
        lock(&self.forgotten).push(self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn run(rx: Receiver<Job>, counters: &InbandCounters, forgotten: &Mutex<Vec<u64>>) {
    let mut calls: HashMap<u64, (InbandWatch, InbandSink)> = HashMap::new();
    let mut out = Vec::new();
    while let Ok(job) = rx.recv() {
        if !calls.is_empty() {
            for key in lock(forgotten).drain(..) {
                calls.remove(&key);
            }
        }
        match job {
            Job::Watch { key, codecs, sink } => {
                if calls.len() >= MAX_WATCHED && !calls.contains_key(&key) {
                    counters.refused.fetch_add(1, Relaxed);
                    continue;
                }
                calls.insert(key, (InbandWatch::new(codecs), sink));
            }
            Job::Packet {
                key,
                leg,
                pt,
                payload,
            } => {
                let Some((w, sink)) = calls.get_mut(&key) else {
                    continue;
                };
                w.packet(leg, pt, &payload, &mut out);
                for d in out.drain(..) {
                    counters.digits.fetch_add(1, Relaxed);
                    sink(leg, d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `digits` as in-band tones (80 ms on, 80 ms off) after 200 ms of silence, at `rate`.
    fn tones(digits: &str, rate: u32) -> Vec<i16> {
        let mut pcm = vec![0i16; rate as usize / 5];
        for d in digits.chars() {
            pcm.extend(
                crate::tone::dtmf_tone(d, Duration::from_millis(80), rate, 9000).expect("digit"),
            );
            pcm.extend(vec![0i16; rate as usize * 80 / 1000]);
        }
        pcm.extend(vec![0i16; rate as usize / 5]);
        pcm
    }

    /// Encoded 20 ms payloads of `pcm`.
    fn frames(kind: CodecKind, pcm: &[i16]) -> Vec<Vec<u8>> {
        let mut enc = crate::codec::encoder(kind).expect("encoder");
        pcm.chunks(kind.sample_rate() as usize / 50)
            .map(|c| {
                let mut out = Vec::new();
                enc.encode(c, &mut out).expect("encode");
                out
            })
            .collect()
    }

    fn detect(kind: CodecKind, pt: u8, digits: &str) -> Vec<char> {
        let mut w = InbandWatch::new(vec![(pt, kind), (101, CodecKind::Pcmu)]);
        let mut out = Vec::new();
        for f in frames(kind, &tones(digits, kind.sample_rate())) {
            w.packet(Leg::B, pt, &f, &mut out);
        }
        out
    }

    #[test]
    fn star_one_is_found_in_g711_and_g722_tap_frames() {
        assert_eq!(detect(CodecKind::Pcmu, 0, "*1"), vec!['*', '1']);
        assert_eq!(detect(CodecKind::Pcma, 8, "*1#"), vec!['*', '1', '#']);
        assert_eq!(detect(CodecKind::G722, 9, "*1"), vec!['*', '1']);
    }

    #[test]
    fn speech_like_audio_other_payloads_and_directions_stay_apart() {
        // A chord of two non-DTMF tones (talk-off) gives nothing.
        let rate = 8000;
        let pcm: Vec<i16> = (0..rate * 2)
            .map(|i| {
                let t = f64::from(i) / f64::from(rate);
                ((t * 2.0 * std::f64::consts::PI * 620.0).sin() * 6000.0
                    + (t * 2.0 * std::f64::consts::PI * 1500.0).sin() * 6000.0)
                    as i16
            })
            .collect();
        let mut w = InbandWatch::new(vec![(0, CodecKind::Pcmu)]);
        let mut out = Vec::new();
        for f in frames(CodecKind::Pcmu, &pcm) {
            w.packet(Leg::A, 0, &f, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        // A payload type not negotiated (or Opus) is not decoded.
        let mut w = InbandWatch::new(vec![(111, CodecKind::Opus)]);
        for f in frames(CodecKind::Pcmu, &tones("*1", 8000)) {
            w.packet(Leg::A, 0, &f, &mut out);
            w.packet(Leg::A, 111, &f, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        // Half a digit on each leg is no digit.
        let mut w = InbandWatch::new(vec![(0, CodecKind::Pcmu)]);
        let fs = frames(CodecKind::Pcmu, &tones("5", 8000));
        for (i, f) in fs.iter().enumerate() {
            let leg = if i % 2 == 0 { Leg::A } else { Leg::B };
            w.packet(leg, 0, f, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_worker_reports_digits_to_the_calls_sink_and_forgets_dropped_feeds() {
        let worker = InbandWorker::start().expect("thread");
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: InbandSink = Arc::new(move |leg, d| {
            let _ = tx.lock().map(|t| t.send((leg, d)));
        });
        let feed = worker.watch(7, vec![(0, CodecKind::Pcmu)], sink);
        for f in frames(CodecKind::Pcmu, &tones("*1", 8000)) {
            feed.packet(Leg::A, 0, &f);
        }
        let got: Vec<(Leg, char)> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("digit"))
            .collect();
        assert_eq!(got, vec![(Leg::A, '*'), (Leg::A, '1')]);
        drop(feed);
        assert_eq!(worker.counters().digits.load(Relaxed), 2);
    }

    /// The cost of in-band detection per relayed packet (decode + Goertzel), printed for the
    /// report: `cargo test -p media --release tap_inband -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_per_packet() {
        for (kind, pt) in [(CodecKind::Pcmu, 0), (CodecKind::G722, 9)] {
            let fs = frames(kind, &tones("*1#0", kind.sample_rate()));
            let mut w = InbandWatch::new(vec![(pt, kind)]);
            let mut out = Vec::new();
            let n = 200_000;
            let start = std::time::Instant::now();
            for i in 0..n {
                w.packet(Leg::A, pt, &fs[i % fs.len()], &mut out);
                out.clear();
            }
            let per = start.elapsed().as_nanos() as f64 / n as f64;
            println!("{kind:?}: {per:.0} ns per 20 ms packet (decode + detect)");
        }
    }
}
