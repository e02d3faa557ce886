//! Call recording of relayed calls, off the relay's fast path.
//!
//! The relay hands a copy of every RTP packet it forwards (both directions, with its arrival
//! time) to a [`RecordTap`]; the tap puts it on a bounded queue read by one recorder thread per
//! recording and never waits: when the queue is full the packet is dropped and counted. The
//! thread feeds an [`Aligner`] (I/O-free, tested on synthetic packets) that decodes each
//! direction with the negotiated codec, places every packet on a common timeline — by RTP
//! timestamp within a stream, by arrival time where a stream starts, restarts or jumps — fills
//! gaps with silence, puts reordered packets back in order within a short window, drops packets
//! that come later than that, and mixes the two directions (mono) or puts one party per channel
//! (stereo). The result goes to a WAV file, or Ogg Opus (mono) where configured.
//!
//! The same tap watches RFC 4733 telephone-events on each leg and reports every digit, so an
//! on-demand feature code typed during a relayed call is seen without changing what is
//! forwarded.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audio::WavWriter;
use crate::codec::{CodecKind, Decoder};
use crate::dtmf::TelephoneEvent;
use crate::mix::saturate;
use crate::oggopus::OggOpusWriter;
use crate::relay::Leg;
use crate::resample::Resampler;
use crate::rtp::RtpPacket;

/// How long a packet may wait for an earlier one that was reordered behind it.
pub const REORDER_WINDOW: Duration = Duration::from_millis(120);
/// A stream whose RTP timestamps disagree with arrival times by more than this is re-anchored
/// at its arrival (a new talk spurt after a long pause, a jump, a new source).
const REANCHOR: Duration = Duration::from_secs(1);
/// Packets one direction may hold waiting for reordering before the oldest is decoded anyway.
const MAX_PENDING: usize = 64;
/// Packets queued between the relay and a recorder thread.
pub const DEFAULT_QUEUE: usize = 1024;
/// How often a recorder thread takes what its queue holds (100 packets/s per call: about 5).
const DRAIN_EVERY: Duration = Duration::from_millis(50);
/// RTP comfort noise (RFC 3389): not audio to decode.
const PT_CN: u8 = 13;

/// How the two parties are laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Both parties mixed into one channel.
    #[default]
    Mono,
    /// Caller (leg A) left, callee (leg B) right.
    Stereo,
}

/// File format of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// 16-bit PCM WAV.
    #[default]
    Wav,
    /// Opus in Ogg (mono only: a stereo request is written as a mono mix).
    OggOpus,
}

impl Format {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::OggOpus => "opus",
        }
    }

    /// The HTTP content type of such a file.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Wav => "audio/wav",
            Format::OggOpus => "audio/ogg",
        }
    }
}

/// What the aligner needs to know about the call's media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignerConfig {
    /// Output sample rate (8000 or 16000 Hz).
    pub rate: u32,
    /// Mono mix or one party per channel.
    pub layout: Layout,
    /// Dynamic payload types negotiated in SDP (static ones are known).
    pub payloads: Vec<(u8, CodecKind)>,
    /// RFC 4733 telephone-event payload types (not audio).
    pub telephone_event: Vec<u8>,
}

impl AlignerConfig {
    /// The usual setting: 16 kHz when a wideband codec was negotiated, 8 kHz otherwise.
    pub fn for_codecs(payloads: Vec<(u8, CodecKind)>, layout: Layout) -> AlignerConfig {
        let wide = payloads.iter().any(|(_, k)| k.is_wideband());
        AlignerConfig {
            rate: if wide { 16000 } else { 8000 },
            layout,
            payloads,
            telephone_event: Vec::new(),
        }
    }
}

/// What the aligner did with the packets it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlignStats {
    /// Audio packets placed on the timeline.
    pub packets: u64,
    /// Packets that came after their place had been written (or duplicates).
    pub late: u64,
    /// Packets that were not RTP, or whose payload type or payload could not be decoded.
    pub undecodable: u64,
    /// Times a stream was (re-)anchored at its arrival time.
    pub anchors: u64,
}

/// One decoder per payload type, with a resampler to the output rate when needed.
struct Dec {
    pt: u8,
    dec: Box<dyn Decoder>,
    resampler: Option<Resampler>,
}

/// One direction of the call.
#[derive(Default)]
struct Track {
    ssrc: Option<u32>,
    clock: u32,
    base_ts: u32,
    base_pos: i64,
    /// Packets waiting for the reorder window: timeline position → (payload type, payload).
    pending: BTreeMap<i64, (u8, Vec<u8>)>,
    /// Decoded samples not yet written; `decoded[0]` sits at `end - decoded.len()`.
    decoded: VecDeque<i16>,
    /// Timeline position just after the last decoded sample.
    end: i64,
    decoders: Vec<Dec>,
}

/// Puts both directions of a call on one timeline and produces the file's samples.
pub struct Aligner {
    cfg: AlignerConfig,
    start: Option<Instant>,
    /// Newest arrival seen, as a timeline position.
    newest: i64,
    /// Samples (per channel) produced so far.
    written: i64,
    tracks: [Track; 2],
    out: Vec<i16>,
    scratch: Vec<i16>,
    scratch2: Vec<i16>,
    stats: AlignStats,
}

impl Aligner {
    /// An aligner producing PCM as configured.
    pub fn new(cfg: AlignerConfig) -> Aligner {
        Aligner {
            cfg,
            start: None,
            newest: 0,
            written: 0,
            tracks: Default::default(),
            out: Vec::new(),
            scratch: Vec::new(),
            scratch2: Vec::new(),
            stats: AlignStats::default(),
        }
    }

    /// The output sample rate.
    pub fn rate(&self) -> u32 {
        self.cfg.rate
    }

    /// Channels in the output (1 or 2).
    pub fn channels(&self) -> u16 {
        match self.cfg.layout {
            Layout::Mono => 1,
            Layout::Stereo => 2,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AlignStats {
        self.stats
    }

    /// Samples per channel produced so far.
    pub fn samples_written(&self) -> u64 {
        self.written.max(0) as u64
    }

    fn samples_of(&self, d: Duration) -> i64 {
        (d.as_nanos() * u128::from(self.cfg.rate) / 1_000_000_000) as i64
    }

    fn codec_of(&self, pt: u8) -> Option<CodecKind> {
        self.cfg
            .payloads
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, k)| *k)
            .or_else(|| CodecKind::from_static_payload_type(pt))
    }

    /// Takes one forwarded RTP datagram that arrived from `leg`'s phone at `at`.
    pub fn push(&mut self, leg: Leg, at: Instant, datagram: &[u8]) {
        let Ok(p) = RtpPacket::parse(datagram) else {
            self.stats.undecodable += 1;
            return;
        };
        if p.payload_type == PT_CN || self.cfg.telephone_event.contains(&p.payload_type) {
            return;
        }
        let Some(kind) = self.codec_of(p.payload_type) else {
            self.stats.undecodable += 1;
            return;
        };
        let start = *self.start.get_or_insert(at);
        let arrival = self.samples_of(at.saturating_duration_since(start));
        self.newest = self.newest.max(arrival);
        let rate = i64::from(self.cfg.rate);
        let reanchor = self.samples_of(REANCHOR);
        let written = self.written;
        let t = &mut self.tracks[leg_idx(leg)];
        let clock = kind.rtp_clock_rate();
        let mut pos = if t.ssrc == Some(p.ssrc) && t.clock == clock {
            let dts = i64::from(p.timestamp.wrapping_sub(t.base_ts) as i32);
            t.base_pos + dts * rate / i64::from(clock)
        } else {
            i64::MIN
        };
        if pos == i64::MIN || (pos - arrival).abs() > reanchor {
            // Anchor at arrival, but never before what this direction already holds.
            pos = arrival.max(t.end).max(written);
            t.ssrc = Some(p.ssrc);
            t.clock = clock;
            t.base_ts = p.timestamp;
            t.base_pos = pos;
            self.stats.anchors += 1;
        }
        if pos < t.end.max(written) || t.pending.contains_key(&pos) {
            self.stats.late += 1;
            return;
        }
        t.pending.insert(pos, (p.payload_type, p.payload.to_vec()));
        self.stats.packets += 1;
        let horizon = self.newest - self.samples_of(REORDER_WINDOW);
        self.advance(horizon, false);
    }

    /// Decodes what waited longer than the reorder window and produces output up to there.
    fn advance(&mut self, horizon: i64, all: bool) {
        for i in 0..2 {
            loop {
                let t = &self.tracks[i];
                let Some((&pos, _)) = t.pending.first_key_value() else {
                    break;
                };
                if !all && pos > horizon && t.pending.len() <= MAX_PENDING {
                    break;
                }
                let Some((pos, (pt, payload))) = self.tracks[i].pending.pop_first() else {
                    break;
                };
                self.decode_into(i, pos, pt, &payload);
            }
        }
        let to = if all {
            self.tracks.iter().map(|t| t.end).max().unwrap_or(0)
        } else {
            horizon
        };
        self.emit(to);
    }

    fn decode_into(&mut self, i: usize, pos: i64, pt: u8, payload: &[u8]) {
        let Some(kind) = self.codec_of(pt) else {
            return;
        };
        let rate = self.cfg.rate;
        let t = &mut self.tracks[i];
        let di = match t.decoders.iter().position(|d| d.pt == pt) {
            Some(di) => di,
            None => {
                let dec = match crate::codec::decoder_at(kind, rate)
                    .or_else(|_| crate::codec::decoder(kind))
                {
                    Ok(d) => d,
                    Err(_) => {
                        self.stats.undecodable += 1;
                        return;
                    }
                };
                let resampler = if dec.pcm_rate() == rate {
                    None
                } else {
                    match Resampler::new(dec.pcm_rate(), rate) {
                        Ok(r) => Some(r),
                        Err(_) => {
                            self.stats.undecodable += 1;
                            return;
                        }
                    }
                };
                t.decoders.push(Dec { pt, dec, resampler });
                t.decoders.len() - 1
            }
        };
        let d = &mut t.decoders[di];
        self.scratch.clear();
        if d.dec.decode(payload, &mut self.scratch).is_err() {
            self.stats.undecodable += 1;
            return;
        }
        let pcm: &[i16] = match &mut d.resampler {
            Some(r) => {
                self.scratch2.clear();
                r.process(&self.scratch, &mut self.scratch2);
                &self.scratch2
            }
            None => &self.scratch,
        };
        // Nothing before what was already written can change any more.
        if t.end < self.written {
            t.decoded.clear();
            t.end = self.written;
        }
        let mut skip = 0usize;
        if pos > t.end {
            let gap = (pos - t.end) as usize;
            t.decoded.extend(std::iter::repeat_n(0i16, gap));
            t.end = pos;
        } else if pos < t.end {
            // Overlaps what is held (a re-anchor or an overlapping frame): keep the first.
            skip = (t.end - pos) as usize;
        }
        if skip < pcm.len() {
            t.decoded.extend(&pcm[skip..]);
            t.end += (pcm.len() - skip) as i64;
        }
    }

    /// Produces samples for every timeline position before `to`.
    fn emit(&mut self, to: i64) {
        if to <= self.written {
            return;
        }
        let n = (to - self.written) as usize;
        let stereo = self.cfg.layout == Layout::Stereo;
        self.out.reserve(n * if stereo { 2 } else { 1 });
        let written = self.written;
        let take = |t: &mut Track, k: i64| -> i16 {
            let first = t.end - t.decoded.len() as i64;
            if k >= first && k < t.end {
                t.decoded.pop_front().unwrap_or(0)
            } else {
                0
            }
        };
        let [ta, tb] = &mut self.tracks;
        for k in written..to {
            let a = take(ta, k);
            let b = take(tb, k);
            if stereo {
                self.out.push(a);
                self.out.push(b);
            } else {
                self.out.push(saturate(i32::from(a) + i32::from(b)));
            }
        }
        self.written = to;
    }

    /// Samples produced since the last call (interleaved when stereo).
    pub fn take_output(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.out)
    }

    /// Appends the samples produced since the last call to `out` (interleaved when stereo).
    pub fn drain_output(&mut self, out: &mut Vec<i16>) {
        out.append(&mut self.out);
    }

    /// Decodes and produces everything still held (the call ended or recording stopped).
    pub fn finish(&mut self) {
        self.advance(i64::MAX, true);
    }
}

fn leg_idx(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Stopped by the call (hang-up, on-demand toggle).
    Stopped,
    /// The disk (or quota) was full: what was written before is kept.
    DiskFull,
    /// Another write error.
    Error,
}

impl StopReason {
    /// The word stored with the recording.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Stopped => "stopped",
            StopReason::DiskFull => "disk-full",
            StopReason::Error => "error",
        }
    }
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingResult {
    /// Why.
    pub reason: StopReason,
    /// The error, when there was one.
    pub error: Option<String>,
    /// Audio written, milliseconds.
    pub duration_ms: u64,
    /// Packets dropped because the recorder fell behind.
    pub dropped: u64,
    /// What the aligner saw.
    pub align: AlignStats,
    /// Whether a playable file is left at the path.
    pub file_kept: bool,
}

/// Process-wide recording counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RecorderMetrics {
    /// Recordings running now.
    pub active: AtomicU64,
    /// Packets dropped because a recorder's queue was full.
    pub dropped: AtomicU64,
    /// Recordings that ended on a write error (full disk included).
    pub failures: AtomicU64,
    /// Recordings started.
    pub started: AtomicU64,
}

/// What a recording is asked to do.
#[derive(Debug, Clone)]
pub struct RecordingSpec {
    /// The file to write (its directory is created).
    pub path: PathBuf,
    /// File format.
    pub format: Format,
    /// Codecs and layout.
    pub aligner: AlignerConfig,
    /// Packets queued between relay and recorder at most.
    pub queue: usize,
}

enum FileOut {
    Wav(WavWriter<BufWriter<File>>),
    Ogg(OggOpusWriter<BufWriter<File>>, Vec<i16>, usize),
}

impl FileOut {
    fn create(path: &Path, format: Format, rate: u32, channels: u16) -> io::Result<FileOut> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = BufWriter::new(File::create(path)?);
        Ok(match format {
            Format::Wav => FileOut::Wav(WavWriter::with_channels(f, rate, channels)?),
            Format::OggOpus => {
                let w = OggOpusWriter::new(f, rate, 1).map_err(to_io)?;
                FileOut::Ogg(w, Vec::new(), (rate / 50) as usize)
            }
        })
    }

    fn write(&mut self, pcm: &[i16]) -> io::Result<()> {
        match self {
            FileOut::Wav(w) => w.write_frame(pcm),
            FileOut::Ogg(w, buf, frame) => {
                buf.extend_from_slice(pcm);
                let mut off = 0;
                while buf.len() - off >= *frame {
                    w.write_frame(&buf[off..off + *frame]).map_err(to_io)?;
                    off += *frame;
                }
                buf.drain(..off);
                Ok(())
            }
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            FileOut::Wav(w) => w.finish().and_then(|mut f| io::Write::flush(&mut f)),
            FileOut::Ogg(mut w, mut buf, frame) => {
                if !buf.is_empty() {
                    buf.resize(frame, 0);
                    w.write_frame(&buf).map_err(to_io)?;
                }
                w.finish()
                    .map_err(to_io)
                    .and_then(|mut f| io::Write::flush(&mut f))
            }
        }
    }
}

fn to_io(e: crate::oggopus::OggError) -> io::Error {
    match e {
        crate::oggopus::OggError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Whether an I/O error means the disk (or a quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(libc::ENOSPC)
        || e.raw_os_error() == Some(libc::EDQUOT)
}

/// A packet on its way to a recorder thread.
struct TapPacket {
    leg: Leg,
    at: Instant,
    data: Vec<u8>,
}

/// A running recording: a thread reading the tap's queue. Stopping it (or the tap dropping the
/// queue) makes the thread write what it holds and close the file.
pub struct Recording {
    done: Option<tokio::sync::oneshot::Receiver<RecordingResult>>,
}

impl Recording {
    /// Waits for the recorder thread to finish (after [`RecordTap::stop_recording`]).
    pub async fn finished(mut self) -> RecordingResult {
        match self.done.take() {
            Some(rx) => rx.await.unwrap_or_else(|_| lost_result()),
            None => lost_result(),
        }
    }

    /// Blocking variant of [`Recording::finished`] for threads outside a runtime (tests).
    pub fn wait(mut self) -> RecordingResult {
        match self.done.take() {
            Some(rx) => rx.blocking_recv().unwrap_or_else(|_| lost_result()),
            None => lost_result(),
        }
    }
}

fn lost_result() -> RecordingResult {
    RecordingResult {
        reason: StopReason::Error,
        error: Some("recorder thread ended without a result".into()),
        duration_ms: 0,
        dropped: 0,
        align: AlignStats::default(),
        file_kept: false,
    }
}

/// A digit seen in an RFC 4733 event on a leg.
pub type DigitSink = Box<dyn Fn(Leg, char) + Send + Sync>;

/// No telephone-event payload type on a leg.
const NO_PT: u16 = u16::MAX;

#[derive(Default)]
struct DtmfWatch {
    /// RTP timestamp of the last event reported per leg (an event's end is sent three times).
    last: [Option<u32>; 2],
}

/// What the relay calls for each forwarded RTP packet of a session: copies it to the running
/// recording, if any, and reports RFC 4733 digits. Never blocks.
pub struct RecordTap {
    queue: Mutex<Option<SyncSender<TapPacket>>>,
    recording: AtomicBool,
    dropped: Arc<AtomicU64>,
    metrics: Arc<RecorderMetrics>,
    /// Telephone-event payload type per leg ([`NO_PT`]: none), read for every packet.
    te_pt: [std::sync::atomic::AtomicU16; 2],
    /// Only locked for telephone-event packets.
    dtmf: Mutex<DtmfWatch>,
    on_digit: Option<DigitSink>,
    /// In-band digit watch (on-demand calls only): audio payloads copied to the shared
    /// detection thread ([`crate::tap_inband`]).
    inband_on: AtomicBool,
    inband: Mutex<Option<crate::tap_inband::InbandFeed>>,
}

impl RecordTap {
    /// A tap reporting digits to `on_digit` (if given) and counting into `metrics`.
    pub fn new(metrics: Arc<RecorderMetrics>, on_digit: Option<DigitSink>) -> Arc<RecordTap> {
        Arc::new(RecordTap {
            queue: Mutex::new(None),
            recording: AtomicBool::new(false),
            dropped: Arc::new(AtomicU64::new(0)),
            metrics,
            te_pt: [
                std::sync::atomic::AtomicU16::new(NO_PT),
                std::sync::atomic::AtomicU16::new(NO_PT),
            ],
            dtmf: Mutex::new(DtmfWatch::default()),
            on_digit,
            inband_on: AtomicBool::new(false),
            inband: Mutex::new(None),
        })
    }

    /// Copies this call's audio payloads to `feed` from now on (in-band digit detection).
    pub fn watch_inband(&self, feed: crate::tap_inband::InbandFeed) {
        *lock(&self.inband) = Some(feed);
        self.inband_on.store(true, Relaxed);
    }

    /// The telephone-event payload type a leg's phone sends (from its SDP).
    pub fn set_telephone_event(&self, leg: Leg, pt: Option<u8>) {
        self.te_pt[leg_idx(leg)].store(pt.map_or(NO_PT, u16::from), Relaxed);
    }

    /// Whether a recording is running.
    pub fn is_recording(&self) -> bool {
        self.recording.load(Relaxed)
    }

    /// Called by the relay worker for each RTP packet it accepted from `leg`'s phone.
    pub fn packet(&self, leg: Leg, at: Instant, p: &RtpPacket<'_>, datagram: &[u8]) {
        if self.on_digit.is_some() {
            self.watch_dtmf(leg, p);
        }
        if self.inband_on.load(Relaxed)
            && p.payload_type != PT_CN
            && self.te_pt[leg_idx(leg)].load(Relaxed) != u16::from(p.payload_type)
            && let Some(f) = lock(&self.inband).as_ref()
        {
            f.packet(leg, p.payload_type, p.payload);
        }
        if !self.recording.load(Relaxed) {
            return;
        }
        let q = lock(&self.queue);
        let Some(tx) = q.as_ref() else {
            return;
        };
        let msg = TapPacket {
            leg,
            at,
            data: datagram.to_vec(),
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Relaxed);
                self.metrics.dropped.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                // The recorder stopped by itself (disk full): stop copying.
                self.recording.store(false, Relaxed);
            }
        }
    }

    fn watch_dtmf(&self, leg: Leg, p: &RtpPacket<'_>) {
        let i = leg_idx(leg);
        if self.te_pt[i].load(Relaxed) != u16::from(p.payload_type) {
            return;
        }
        let digit = {
            let mut w = lock(&self.dtmf);
            let Ok(ev) = TelephoneEvent::parse(p.payload) else {
                return;
            };
            if !ev.end || w.last[i] == Some(p.timestamp) {
                return;
            }
            w.last[i] = Some(p.timestamp);
            ev.digit()
        };
        if let (Some(d), Some(f)) = (digit, &self.on_digit) {
            f(leg, d);
        }
    }

    /// Starts recording to `spec.path` on a new thread. Fails if one is running already or
    /// the file cannot be created (the error says why; a full disk is [`is_disk_full`]).
    pub fn start_recording(&self, spec: RecordingSpec) -> io::Result<Recording> {
        let mut q = lock(&self.queue);
        if q.is_some() && self.recording.load(Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a recording is already running",
            ));
        }
        let aligner = Aligner::new(spec.aligner.clone());
        let file = FileOut::create(
            &spec.path,
            spec.format,
            aligner.rate(),
            if spec.format == Format::Wav {
                aligner.channels()
            } else {
                1
            },
        )?;
        let (tx, rx) = std::sync::mpsc::sync_channel(spec.queue.max(1));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let metrics = self.metrics.clone();
        let dropped = self.dropped.clone();
        dropped.store(0, Relaxed);
        let mut aligner = aligner;
        if spec.format == Format::OggOpus {
            aligner.cfg.layout = Layout::Mono;
        }
        let path = spec.path.clone();
        metrics.active.fetch_add(1, Relaxed);
        metrics.started.fetch_add(1, Relaxed);
        let m2 = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("denwa-rec".into())
            .spawn(move || {
                let r = run_recorder(rx, aligner, file, &path, &dropped);
                if r.reason != StopReason::Stopped {
                    m2.failures.fetch_add(1, Relaxed);
                }
                m2.active.fetch_sub(1, Relaxed);
                let _ = done_tx.send(r);
            });
        if let Err(e) = spawned {
            metrics.active.fetch_sub(1, Relaxed);
            return Err(e);
        }
        *q = Some(tx);
        self.recording.store(true, Relaxed);
        Ok(Recording {
            done: Some(done_rx),
        })
    }

    /// Stops copying packets; the recorder thread then finishes its file.
    pub fn stop_recording(&self) {
        self.recording.store(false, Relaxed);
        lock(&self.queue).take();
    }
}

impl std::fmt::Debug for RecordTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordTap")
            .field("recording", &self.is_recording())
            .field("dropped", &self.dropped.load(Relaxed))
            .finish()
    }
}

impl Drop for RecordTap {
    fn drop(&mut self) {
        self.stop_recording();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_recorder(
    rx: Receiver<TapPacket>,
    mut aligner: Aligner,
    mut file: FileOut,
    path: &Path,
    dropped: &AtomicU64,
) -> RecordingResult {
    let mut buf = Vec::new();
    let mut failure: Option<io::Error> = None;
    // Drained in batches: a wake-up per packet (a futex wake from the relay thread each time)
    // cost more than all the decoding; the queue holds far more than one interval's packets.
    'run: loop {
        loop {
            match rx.try_recv() {
                Ok(p) => aligner.push(p.leg, p.at, &p.data),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break 'run,
            }
        }
        aligner.drain_output(&mut buf);
        if buf.len() >= 1600 {
            if let Err(e) = file.write(&buf) {
                failure = Some(e);
                break;
            }
            buf.clear();
        }
        std::thread::sleep(DRAIN_EVERY);
    }
    // Whatever arrived between the last batch and the disconnect.
    if failure.is_none() {
        while let Ok(p) = rx.try_recv() {
            aligner.push(p.leg, p.at, &p.data);
        }
    }
    // Stop reading (the tap sees the queue disconnected) before the final flush.
    drop(rx);
    if failure.is_none() {
        aligner.finish();
        aligner.drain_output(&mut buf);
        if let Err(e) = file.write(&buf) {
            failure = Some(e);
        }
    }
    let finished = file.finish();
    let rate = u64::from(aligner.rate());
    let duration_ms = aligner.samples_written() * 1000 / rate.max(1);
    let (reason, error) = match failure.or(finished.as_ref().err().map(copy_err)) {
        None => (StopReason::Stopped, None),
        Some(e) if is_disk_full(&e) => (StopReason::DiskFull, Some(e.to_string())),
        Some(e) => (StopReason::Error, Some(e.to_string())),
    };
    let file_kept = finished.is_ok();
    if !file_kept {
        let _ = std::fs::remove_file(path);
    }
    if let Some(e) = &error {
        tracing::error!(path = %path.display(), error = %e, reason = reason.as_str(), "recording stopped");
    }
    RecordingResult {
        reason,
        error,
        duration_ms,
        dropped: dropped.load(Relaxed),
        align: aligner.stats(),
        file_kept,
    }
}

fn copy_err(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;

    /// A PCMU packet whose samples all decode to the µ-law value `code`.
    fn pcmu(seq: u16, ts: u32, ssrc: u32, code: u8) -> Vec<u8> {
        RtpHeader::new(0, seq, ts, ssrc)
            .build(&[code; 160])
            .expect("packet")
    }

    fn level(code: u8) -> i16 {
        crate::g711::decode_ulaw(&[code])[0]
    }

    /// The interleaved samples of a WAV file this module wrote (44-byte header).
    fn wav_samples(data: &[u8]) -> (u16, u32, Vec<i16>) {
        let channels = u16::from_le_bytes([data[22], data[23]]);
        let rate = u32::from_le_bytes([data[24], data[25], data[26], data[27]]);
        let pcm = data[44..]
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        (channels, rate, pcm)
    }

    fn cfg(layout: Layout) -> AlignerConfig {
        AlignerConfig {
            rate: 8000,
            layout,
            payloads: vec![],
            telephone_event: vec![101],
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Stereo output split into (left, right).
    fn split(v: &[i16]) -> (Vec<i16>, Vec<i16>) {
        (
            v.chunks(2).map(|c| c[0]).collect(),
            v.chunks(2).map(|c| c[1]).collect(),
        )
    }

    #[test]
    fn both_directions_land_on_one_timeline() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Stereo));
        // A talks from 0 ms, B starts 100 ms later.
        for i in 0..20u16 {
            let at = t0 + ms(u64::from(i) * 20);
            al.push(Leg::A, at, &pcmu(i, u32::from(i) * 160, 1, 0x90));
            if i >= 5 {
                let j = i - 5;
                al.push(Leg::B, at, &pcmu(j, 5000 + u32::from(j) * 160, 2, 0xa0));
            }
        }
        al.finish();
        let (l, r) = split(&al.take_output());
        assert_eq!(l.len(), 20 * 160, "A: 400 ms");
        assert!(l.iter().all(|&s| s == level(0x90)));
        assert!(r[..800].iter().all(|&s| s == 0), "B silent for 100 ms");
        assert!(r[800..].iter().all(|&s| s == level(0xa0)));
        assert_eq!(al.stats().late, 0);
    }

    #[test]
    fn gaps_are_filled_with_silence_by_timestamp() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        // Packets 3 and 4 lost (60 ms of gap).
        for i in (0..10u16).filter(|i| *i != 3 && *i != 4) {
            al.push(
                Leg::A,
                t0 + ms(u64::from(i) * 20),
                &pcmu(i, u32::from(i) * 160, 7, 0x90),
            );
        }
        al.finish();
        let out = al.take_output();
        assert_eq!(out.len(), 1600);
        assert!(out[..480].iter().all(|&s| s == level(0x90)));
        assert!(
            out[480..800].iter().all(|&s| s == 0),
            "lost packets are silence"
        );
        assert!(out[800..].iter().all(|&s| s == level(0x90)));
    }

    #[test]
    fn reordered_packets_are_put_back_in_order() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        let codes = [0x90u8, 0x91, 0x92, 0x93, 0x94, 0x95];
        // Packet 2 arrives after packet 3 (40 ms late, inside the window).
        let order = [0usize, 1, 3, 2, 4, 5];
        for (k, &i) in order.iter().enumerate() {
            let at = t0 + ms(k as u64 * 20);
            al.push(Leg::A, at, &pcmu(i as u16, i as u32 * 160, 7, codes[i]));
        }
        al.finish();
        let out = al.take_output();
        for (i, &c) in codes.iter().enumerate() {
            assert!(
                out[i * 160..(i + 1) * 160].iter().all(|&s| s == level(c)),
                "frame {i} in place"
            );
        }
        assert_eq!(al.stats().late, 0);
    }

    #[test]
    fn packets_later_than_the_window_are_dropped_and_counted() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        for i in 0..30u16 {
            if i == 2 {
                continue;
            }
            al.push(
                Leg::A,
                t0 + ms(u64::from(i) * 20),
                &pcmu(i, u32::from(i) * 160, 7, 0x90),
            );
        }
        // Packet 2 shows up half a second late: its place is written already (as silence).
        al.push(Leg::A, t0 + ms(600), &pcmu(2, 320, 7, 0xa0));
        al.finish();
        let out = al.take_output();
        assert_eq!(al.stats().late, 1);
        assert!(out[320..480].iter().all(|&s| s == 0));
        assert!(!out.contains(&level(0xa0)));
        // A duplicate is late too.
        let mut al = Aligner::new(cfg(Layout::Mono));
        al.push(Leg::A, t0, &pcmu(0, 0, 7, 0x90));
        al.push(Leg::A, t0, &pcmu(0, 0, 7, 0x90));
        assert_eq!(al.stats().late, 1);
    }

    #[test]
    fn mono_mix_sums_both_parties() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        for i in 0..5u16 {
            let at = t0 + ms(u64::from(i) * 20);
            al.push(Leg::A, at, &pcmu(i, u32::from(i) * 160, 1, 0x90));
            al.push(Leg::B, at, &pcmu(i, u32::from(i) * 160, 2, 0x10));
        }
        al.finish();
        let out = al.take_output();
        let want = saturate(i32::from(level(0x90)) + i32::from(level(0x10)));
        assert_eq!(out.len(), 800);
        assert!(out.iter().all(|&s| s == want));
    }

    #[test]
    fn a_new_source_or_timestamp_jump_is_anchored_at_arrival() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        for i in 0..5u16 {
            al.push(
                Leg::A,
                t0 + ms(u64::from(i) * 20),
                &pcmu(i, u32::from(i) * 160, 1, 0x90),
            );
        }
        // After 1 s of nothing (hold), a new SSRC with unrelated timestamps at 1100 ms.
        for i in 0..5u16 {
            let at = t0 + ms(1100 + u64::from(i) * 20);
            al.push(Leg::A, at, &pcmu(i, 999_000 + u32::from(i) * 160, 2, 0xa0));
        }
        // And the same SSRC jumping its timestamps far ahead at 1300 ms.
        for i in 0..5u16 {
            let at = t0 + ms(1300 + u64::from(i) * 20);
            al.push(
                Leg::A,
                at,
                &pcmu(5 + i, 5_000_000 + u32::from(i) * 160, 2, 0xb0),
            );
        }
        al.finish();
        let out = al.take_output();
        assert_eq!(out.len(), (1400 * 8) as usize);
        assert!(out[..800].iter().all(|&s| s == level(0x90)));
        assert!(out[800..8800].iter().all(|&s| s == 0), "hold is silence");
        assert!(out[8800..9600].iter().all(|&s| s == level(0xa0)));
        assert!(out[9600..10400].iter().all(|&s| s == 0));
        assert!(out[10400..].iter().all(|&s| s == level(0xb0)));
        assert_eq!(al.stats().anchors, 3);
    }

    #[test]
    fn a_codec_change_mid_call_is_decoded_with_the_new_codec() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        let alaw = crate::g711::encode_alaw(&[1000i16; 160]);
        for i in 0..10u16 {
            let at = t0 + ms(u64::from(i) * 20);
            let pkt = if i < 5 {
                pcmu(i, u32::from(i) * 160, 1, 0x90)
            } else {
                RtpHeader::new(8, i, u32::from(i) * 160, 1)
                    .build(&alaw)
                    .expect("packet")
            };
            al.push(Leg::A, at, &pkt);
        }
        al.finish();
        let out = al.take_output();
        assert_eq!(out.len(), 1600);
        assert!(out[..800].iter().all(|&s| s == level(0x90)));
        assert!(
            out[800..].iter().all(|&s| (s - 1000).abs() < 40),
            "A-law decoded"
        );
    }

    #[test]
    fn wideband_codecs_are_resampled_to_the_recording_rate() {
        // G.722 at 16 kHz into an 8 kHz recording, and PCMU into a 16 kHz one.
        let t0 = Instant::now();
        let mut enc = crate::codec::encoder(CodecKind::G722).expect("g722");
        let tone = crate::tone::sine(1000.0, ms(500), 16000, 8000);
        let mut al = Aligner::new(AlignerConfig {
            rate: 8000,
            layout: Layout::Mono,
            payloads: vec![],
            telephone_event: vec![],
        });
        for (i, frame) in tone.chunks(320).enumerate() {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).expect("encode");
            let pkt = RtpHeader::new(9, i as u16, i as u32 * 160, 3)
                .build(&payload)
                .expect("packet");
            al.push(Leg::B, t0 + ms(i as u64 * 20), &pkt);
        }
        al.finish();
        let out = al.take_output();
        assert_eq!(out.len(), 25 * 160);
        let p = crate::tone::goertzel(&out[1600..3200], 1000.0, 8000);
        let q = crate::tone::goertzel(&out[1600..3200], 1700.0, 8000);
        assert!(p > q * 100.0, "the 1 kHz tone survives: {p} vs {q}");

        let mut al = Aligner::new(AlignerConfig::for_codecs(
            vec![(9, CodecKind::G722)],
            Layout::Mono,
        ));
        assert_eq!(al.rate(), 16000);
        for i in 0..5u16 {
            al.push(
                Leg::A,
                t0 + ms(u64::from(i) * 20),
                &pcmu(i, u32::from(i) * 160, 1, 0x90),
            );
        }
        al.finish();
        assert_eq!(al.take_output().len(), 5 * 320);
    }

    #[test]
    fn opus_with_a_dynamic_payload_type_is_decoded() {
        let t0 = Instant::now();
        let mut enc = crate::codec::encoder(CodecKind::Opus).expect("opus");
        let tone = crate::tone::sine(800.0, ms(600), 48000, 8000);
        let mut al = Aligner::new(AlignerConfig::for_codecs(
            vec![(111, CodecKind::Opus)],
            Layout::Mono,
        ));
        assert_eq!(al.rate(), 16000);
        for (i, frame) in tone.chunks(960).enumerate() {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).expect("encode");
            let pkt = RtpHeader::new(111, i as u16, i as u32 * 960, 5)
                .build(&payload)
                .expect("packet");
            al.push(Leg::A, t0 + ms(i as u64 * 20), &pkt);
        }
        al.finish();
        let out = al.take_output();
        assert_eq!(out.len(), 30 * 320);
        let mid = &out[3200..6400];
        let p = crate::tone::goertzel(mid, 800.0, 16000);
        let q = crate::tone::goertzel(mid, 1300.0, 16000);
        assert!(p > q * 100.0, "the 800 Hz tone survives Opus: {p} vs {q}");
    }

    #[test]
    fn ogg_opus_recordings_are_mono_and_playable() {
        let dir = tempfile::tempdir().expect("tmp");
        let tap = RecordTap::new(Arc::new(RecorderMetrics::default()), None);
        let path = dir.path().join("r.opus");
        let rec = tap
            .start_recording(RecordingSpec {
                path: path.clone(),
                format: Format::OggOpus,
                // Stereo asked for: Ogg Opus recordings are mono mixes.
                aligner: cfg(Layout::Stereo),
                queue: 4096,
            })
            .expect("start");
        let t0 = Instant::now();
        let tone = crate::tone::sine(600.0, ms(1000), 8000, 8000);
        for (i, frame) in tone.chunks(160).enumerate() {
            let raw = RtpHeader::new(0, i as u16, i as u32 * 160, 1)
                .build(&crate::g711::encode_ulaw(frame))
                .expect("pkt");
            let p = RtpPacket::parse(&raw).expect("rtp");
            tap.packet(Leg::A, t0 + ms(i as u64 * 20), &p, &raw);
        }
        tap.stop_recording();
        let r = rec.wait();
        assert_eq!(r.reason, StopReason::Stopped, "{r:?}");
        assert_eq!(r.duration_ms, 1000);
        let (rate, pcm) = crate::oggopus::read_file(&path).expect("a valid Ogg Opus file");
        let secs = pcm.len() as f64 / f64::from(rate);
        assert!((0.95..1.1).contains(&secs), "{secs} s");
        let mid = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
        let p = crate::tone::goertzel(mid, 600.0, rate);
        let q = crate::tone::goertzel(mid, 1100.0, rate);
        assert!(p > q * 100.0, "the tone survives: {p} vs {q}");
        assert!(
            std::fs::metadata(&path).expect("file").len() < 16000 / 4,
            "smaller than WAV"
        );
    }

    #[test]
    fn telephone_events_comfort_noise_and_garbage_are_not_audio() {
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        let ev = RtpHeader::new(101, 1, 0, 1)
            .build(&[10, 0x80, 0, 160])
            .expect("ev");
        al.push(Leg::A, t0, &ev);
        let cn = RtpHeader::new(13, 2, 0, 1).build(&[40]).expect("cn");
        al.push(Leg::A, t0, &cn);
        al.push(Leg::A, t0, b"not rtp");
        let unknown = RtpHeader::new(96, 3, 0, 1).build(&[1, 2, 3]).expect("dyn");
        al.push(Leg::A, t0, &unknown);
        al.finish();
        assert!(al.take_output().is_empty());
        assert_eq!(al.stats().undecodable, 2);
        assert_eq!(al.stats().packets, 0);
    }

    #[test]
    fn output_is_bounded_while_a_stream_runs() {
        // A long call keeps only the reorder window (plus a frame) in memory.
        let t0 = Instant::now();
        let mut al = Aligner::new(cfg(Layout::Mono));
        let mut total = 0;
        for i in 0..3000u16 {
            al.push(
                Leg::A,
                t0 + ms(u64::from(i) * 20),
                &pcmu(i, u32::from(i) * 160, 1, 0x90),
            );
            total += al.take_output().len();
            let held: usize = al.tracks.iter().map(|t| t.decoded.len()).sum();
            let pending: usize = al.tracks.iter().map(|t| t.pending.len()).sum();
            assert!(
                held <= 160 * 8 && pending <= 8,
                "held {held}, pending {pending}"
            );
        }
        al.finish();
        total += al.take_output().len();
        assert_eq!(total, 3000 * 160);
    }

    #[test]
    fn tap_records_to_a_wav_and_reports_digits_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Arc::new(RecorderMetrics::default());
        let digits = Arc::new(Mutex::new(Vec::new()));
        let d2 = digits.clone();
        let tap = RecordTap::new(
            metrics.clone(),
            Some(Box::new(move |leg, d| lock(&d2).push((leg, d)))),
        );
        tap.set_telephone_event(Leg::B, Some(101));
        let path = dir.path().join("t/1/2026/12/06/call.wav");
        let rec = tap
            .start_recording(RecordingSpec {
                path: path.clone(),
                format: Format::Wav,
                aligner: AlignerConfig {
                    telephone_event: vec![101],
                    ..cfg(Layout::Stereo)
                },
                queue: 4096,
            })
            .expect("start");
        assert!(tap.is_recording());
        let t0 = Instant::now();
        for i in 0..50u16 {
            let at = t0 + ms(u64::from(i) * 20);
            for (leg, ssrc, code) in [(Leg::A, 1, 0x90u8), (Leg::B, 2, 0xa0)] {
                let raw = pcmu(i, u32::from(i) * 160, ssrc, code);
                let p = RtpPacket::parse(&raw).expect("rtp");
                tap.packet(leg, at, &p, &raw);
            }
        }
        // `*` then `1`, each ending with the usual three end packets.
        for (ts, ev) in [(9000u32, 10u8), (9800, 1)] {
            for k in 0..4u8 {
                let end = if k > 0 { 0x80 } else { 0 };
                let raw = RtpHeader::new(101, 100 + u16::from(k), ts, 2)
                    .build(&[ev, end, 0, 160])
                    .expect("ev");
                let p = RtpPacket::parse(&raw).expect("rtp");
                tap.packet(Leg::B, t0 + ms(1000), &p, &raw);
            }
        }
        assert_eq!(*lock(&digits), vec![(Leg::B, '*'), (Leg::B, '1')]);
        assert_eq!(metrics.active.load(Relaxed), 1);
        tap.stop_recording();
        let r = rec.wait();
        assert_eq!(r.reason, StopReason::Stopped);
        assert!(r.file_kept);
        assert_eq!(r.duration_ms, 1000);
        assert_eq!(metrics.active.load(Relaxed), 0);
        let data = std::fs::read(&path).expect("file");
        let (channels, rate, pcm) = wav_samples(&data);
        assert_eq!((channels, rate), (2, 8000));
        let (l, r) = split(&pcm);
        assert_eq!(l.len(), 8000);
        assert!(l.iter().all(|&s| s == level(0x90)));
        assert!(r.iter().all(|&s| s == level(0xa0)));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Arc::new(RecorderMetrics::default());
        let tap = RecordTap::new(metrics.clone(), None);
        // A recorder that cannot keep up: hold the queue's only slot by never running it —
        // simulate with queue 1 and a burst far faster than any thread drains.
        let rec = tap
            .start_recording(RecordingSpec {
                path: dir.path().join("q.wav"),
                format: Format::Wav,
                aligner: cfg(Layout::Mono),
                queue: 1,
            })
            .expect("start");
        let t0 = Instant::now();
        let raw = pcmu(0, 0, 1, 0x90);
        let p = RtpPacket::parse(&raw).expect("rtp");
        let mut sent = 0u64;
        while metrics.dropped.load(Relaxed) == 0 {
            tap.packet(Leg::A, t0, &p, &raw);
            sent += 1;
            assert!(sent < 10_000_000, "never dropped");
        }
        tap.stop_recording();
        let r = rec.wait();
        assert!(r.dropped >= 1);
        assert_eq!(r.dropped, metrics.dropped.load(Relaxed));
    }

    #[test]
    fn a_full_disk_stops_the_recording_and_says_so() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(libc::EACCES)));
        // /dev/full fails every write with ENOSPC: the recorder stops on its own, reports
        // disk-full, and the queue disconnects so the tap stops copying.
        let Ok(dev) = File::options().write(true).open("/dev/full") else {
            panic!("/dev/full is part of every Linux system");
        };
        let file = FileOut::Wav(
            WavWriter::with_channels(BufWriter::with_capacity(4096, dev), 8000, 1)
                .expect("header fits the buffer"),
        );
        let (tx, rx) = std::sync::mpsc::sync_channel(4096);
        let t0 = Instant::now();
        for i in 0..200u16 {
            let data = pcmu(i, u32::from(i) * 160, 1, 0x90);
            let at = t0 + ms(u64::from(i) * 20);
            tx.send(TapPacket {
                leg: Leg::A,
                at,
                data,
            })
            .expect("queued");
        }
        let dir = tempfile::tempdir().expect("tmp");
        let gone = dir.path().join("never-created.wav");
        let dropped = AtomicU64::new(0);
        let r = run_recorder(rx, Aligner::new(cfg(Layout::Mono)), file, &gone, &dropped);
        assert_eq!(r.reason, StopReason::DiskFull, "{r:?}");
        assert!(r.error.is_some());
        assert!(!r.file_kept);
        let more = pcmu(0, 0, 1, 0x90);
        assert!(
            tx.send(TapPacket {
                leg: Leg::A,
                at: t0,
                data: more
            })
            .is_err()
        );
    }
}
