//! The terminating media engine: legs whose media Denwa itself decodes, plays, records and mixes
//! (IVR, voicemail, conferences, music on hold, recording).
//!
//! Split as the relay is: [`core::EndpointCore`] is one leg's sans-IO logic (RTP in with `now`,
//! packets out of `tick(now)`, events out), [`group::Group`] runs the cores of one worker and mixes
//! their bridges, and `worker` is the small mio shell around them (sockets, the 20 ms tick on
//! absolute deadlines, commands). Files are read by a loader thread ([`files`]) and recordings
//! written by a writer thread ([`recorder`]), so a slow disk never stalls a tick.
//!
//! The handles: [`MediaEngine`] (one per process; `open` binds a leg from the shared
//! [`crate::ports::PortPool`]) and [`Endpoint`] (commands to the leg's worker over a bounded
//! channel). Events go to an [`EventSink`], a bounded tokio channel the driver awaits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::CodecKind;

pub mod core;
pub mod digits;
pub mod files;
pub mod group;
pub mod jitter;
mod player;
pub mod rate;
pub mod recorder;
mod worker;

pub use worker::{Endpoint, MediaEngine};

/// An endpoint's identity, chosen by the caller and echoed in every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

/// A mixing bridge (two-party transcoding bridge or conference room).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BridgeId(pub u64);

/// Where events go: a bounded channel (`try_send`; what does not fit is counted in
/// [`EngineMetrics::events_dropped`]).
pub type EventSink = tokio::sync::mpsc::Sender<EngineEvent>;

/// What SDP negotiated for a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec sent.
    pub codec: CodecKind,
    /// Its payload type.
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type and clock rate used when sending digits.
    pub telephone_event: Option<(u8, u32)>,
    /// Packetization time of what is sent, in ms (a multiple of 20; others are rounded).
    pub ptime_ms: u32,
    /// Every audio payload type accepted on receive (the send codec's PT is always accepted).
    pub receive: Vec<(u8, CodecKind)>,
    /// Telephone-event payload types accepted on receive.
    pub receive_events: Vec<u8>,
}

impl Negotiated {
    /// The common case: one codec on its static payload type, telephone-event 101 at 8 kHz.
    pub fn simple(codec: CodecKind) -> Negotiated {
        let pt = codec.static_payload_type().unwrap_or(111);
        Negotiated {
            codec,
            payload_type: pt,
            telephone_event: Some((101, codec.rtp_clock_rate())),
            ptime_ms: 20,
            receive: vec![(pt, codec)],
            receive_events: vec![101],
        }
    }
}

/// The media direction from our side (SDP `a=sendrecv` etc. as we answer it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Send and receive.
    #[default]
    SendRecv,
    /// We send only (we hold the phone, e.g. with music): no media timeout.
    SendOnly,
    /// We receive only (the phone holds us with `a=sendonly`): nothing is sent, time still runs
    /// (plays and timestamps go on); no media timeout.
    RecvOnly,
    /// Neither: nothing sent, no media timeout.
    Inactive,
}

impl Direction {
    /// Whether RTP goes out.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// How digits are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitMode {
    /// RFC 4733 telephone-event packets (falls back to in-band without a negotiated PT).
    Rfc4733,
    /// DTMF tones in the audio.
    Inband,
}

/// A tone: frequencies summed, on/off cadence repeated for `duration`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpec {
    /// Frequencies in Hz (1–4).
    pub freqs: Vec<f64>,
    /// Tone-on time of one cadence cycle.
    pub on: Duration,
    /// Silence after it (zero = continuous).
    pub off: Duration,
    /// Total length.
    pub duration: Duration,
    /// Peak amplitude of the sum.
    pub amplitude: i16,
}

impl ToneSpec {
    /// The tone played instead of a missing or unreadable file: the three rising SIT segments
    /// (950/1400/1800 Hz, 330 ms each), about one second.
    pub fn error_tone() -> Vec<ToneSpec> {
        [950.0, 1400.0, 1800.0]
            .into_iter()
            .map(|f| ToneSpec {
                freqs: vec![f],
                on: Duration::from_millis(330),
                off: Duration::ZERO,
                duration: Duration::from_millis(330),
                amplitude: 8000,
            })
            .collect()
    }

    /// The beep before a recording: 1 kHz, 400 ms.
    pub fn beep() -> ToneSpec {
        ToneSpec {
            freqs: vec![1000.0],
            on: Duration::from_millis(400),
            off: Duration::ZERO,
            duration: Duration::from_millis(400),
            amplitude: 8000,
        }
    }
}

/// One thing to play.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayItem {
    /// A WAV file (16-bit mono PCM at any rate; converted to the leg's rate).
    File(PathBuf),
    /// A generated tone.
    Tone(ToneSpec),
    /// Silence.
    Silence(Duration),
    /// DTMF digits (0-9 * # A-D; others are skipped).
    Digits(String, DigitMode),
}

/// A play command.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayRequest {
    /// Echoed in [`EngineEvent::PlayDone`].
    pub id: u64,
    /// Played in order.
    pub items: Vec<PlayItem>,
    /// Times to play the list (0 = until stopped).
    pub repeat: u32,
    /// A received digit stops the play (barge-in).
    pub stop_on_dtmf: bool,
}

/// A record command.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRequest {
    /// Echoed in [`EngineEvent::RecordDone`].
    pub id: u64,
    /// Final WAV path; written as `path.part` and renamed on completion.
    pub path: PathBuf,
    /// Longest recording.
    pub max_len: Duration,
    /// Stop after this much silence (energy below the engine's threshold).
    pub silence: Option<Duration>,
    /// Play a beep first; recording starts after it.
    pub beep: bool,
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event.
    Rfc4733,
    /// Detected in the audio.
    Inband,
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordReason {
    /// Reached `max_len`.
    MaxLength,
    /// Silence for the requested time.
    Silence,
    /// `stop_record`.
    Stopped,
    /// The endpoint closed.
    Closed,
    /// The disk is full; the partial file was deleted.
    DiskFull,
    /// Another write error; the partial file was deleted.
    Error,
}

/// What the engine tells the call layer.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// One digit (once per key press).
    Dtmf {
        /// Endpoint.
        ep: EndpointId,
        /// 0-9 * # A-D.
        digit: char,
        /// How it arrived.
        source: DtmfSource,
    },
    /// A play request finished.
    PlayDone {
        /// Endpoint.
        ep: EndpointId,
        /// The request's id.
        id: u64,
        /// Stopped early (`stop_play`, barge-in, a new play, close).
        interrupted: bool,
    },
    /// A recording ended (its file complete, or deleted on `DiskFull`/`Error`).
    RecordDone {
        /// Endpoint.
        ep: EndpointId,
        /// The request's id.
        id: u64,
        /// Final path.
        path: PathBuf,
        /// Audio written.
        duration: Duration,
        /// Why it ended.
        reason: RecordReason,
    },
    /// A file could not be played (an error tone was played instead).
    FileError {
        /// Endpoint.
        ep: EndpointId,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No RTP for the configured media timeout (reported once until media resumes).
    MediaTimeout {
        /// Endpoint.
        ep: EndpointId,
    },
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads; 0 = half the CPUs (at least one).
    pub workers: usize,
    /// Most endpoints open at once (all workers).
    pub max_endpoints: usize,
    /// No RTP this long → [`EngineEvent::MediaTimeout`].
    pub media_timeout: Duration,
    /// Consecutive in-sequence packets a new source needs to take over a latched leg.
    pub relatch_packets: u16,
    /// Bytes of decoded prompts kept in the cache.
    pub cache_bytes: usize,
    /// Commands queued per worker.
    pub command_queue: usize,
    /// File loads queued for the loader.
    pub loader_queue: usize,
    /// Chunks queued for the recording writer.
    pub writer_queue: usize,
    /// Mean-square level (0..1 of full scale squared) under which a frame is silence for the
    /// recorder's silence stop.
    pub silence_energy: f64,
    /// A tick starting this long after its deadline counts as late.
    pub late_threshold: Duration,
    /// In-band DTMF detection for endpoints that ask for it
    /// ([`Endpoint::set_inband_dtmf`]); `None` = not available.
    pub inband_detector: Option<DetectorFactory>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 0,
            max_endpoints: 4096,
            media_timeout: Duration::from_secs(60),
            relatch_packets: 4,
            cache_bytes: 64 << 20,
            command_queue: 8192,
            loader_queue: 1024,
            writer_queue: 4096,
            silence_energy: 1e-5,
            late_threshold: Duration::from_millis(10),
            inband_detector: None,
        }
    }
}

/// Engine-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineMetrics {
    /// Endpoints open.
    pub endpoints: u64,
    /// RTP/RTCP packets received.
    pub packets_rx: u64,
    /// RTP/RTCP packets sent.
    pub packets_tx: u64,
    /// Jitter-buffer underruns (a frame was due and nothing had arrived).
    pub underruns: u64,
    /// Ticks that started later than the late threshold.
    pub late_ticks: u64,
    /// Ticks skipped because the worker fell more than the catch-up bound behind.
    pub skipped_ticks: u64,
    /// Files decoded by the loader (cache misses).
    pub files_loaded: u64,
    /// Plays served from the cache.
    pub cache_hits: u64,
    /// Bytes of decoded audio in the cache.
    pub cache_bytes: u64,
    /// Events that did not fit the event channel.
    pub events_dropped: u64,
    /// Commands refused because a worker's queue was full.
    pub commands_dropped: u64,
    /// Joins of a bridge from a worker other than its first member's that could not be
    /// mended by moving the endpoint (they cannot mix).
    pub bridge_splits: u64,
    /// Endpoints moved to their bridge's worker when they joined it (opened elsewhere, e.g. a
    /// caller coming from an IVR to a conference room).
    pub bridge_moves: u64,
    /// Recording chunks dropped because the writer queue was full.
    pub record_chunks_dropped: u64,
    /// Time the workers spent ticking, in microseconds (for CPU per endpoint).
    pub tick_busy_us: u64,
    /// Ticks run.
    pub ticks: u64,
}

/// Final (or current) statistics of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EndpointStats {
    /// RTP packets received and accepted.
    pub packets_rx: u64,
    /// RTP packets sent.
    pub packets_tx: u64,
    /// Packets lost (sequence gaps).
    pub lost: u64,
    /// Interarrival jitter in seconds.
    pub jitter_secs: f64,
    /// Jitter-buffer underruns.
    pub underruns: u64,
    /// Packets that arrived after their play-out time.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Current jitter-buffer target delay.
    pub target_delay_ms: u32,
    /// Digits received.
    pub digits: u64,
    /// RTCP packets received.
    pub rtcp_rx: u64,
    /// RTCP packets sent.
    pub rtcp_tx: u64,
    /// Malformed or unexpected datagrams dropped.
    pub dropped: u64,
    /// The phone's own RTCP view of what we send it (its latest report block), if it sent one.
    pub reported: Option<crate::ReportedQuality>,
}

/// Why an endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No port pair (or a bind failure): see [`crate::relay::Error`].
    #[error(transparent)]
    Ports(#[from] crate::relay::Error),
    /// [`EngineConfig::max_endpoints`] are open.
    #[error("media engine full: {0} endpoints open")]
    Full(usize),
    /// A worker thread could not start or register the sockets.
    #[error("media engine worker: {0}")]
    Worker(std::io::Error),
}

/// A datagram to send: from the endpoint's RTP or RTCP socket to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Send from the RTCP socket (else RTP).
    pub rtcp: bool,
    /// Destination.
    pub to: SocketAddr,
    /// Datagram.
    pub data: Vec<u8>,
}

/// Recognises DTMF key presses in received audio. The engine has none of its own: the caller
/// plugs one in (e.g. `media::inband`'s Goertzel detector) through
/// [`EngineConfig::inband_detector`].
pub trait DigitDetector: Send {
    /// Feeds one 20 ms frame at `rate` Hz; returns a digit once per key press.
    fn process(&mut self, pcm: &[i16], rate: u32) -> Option<char>;
}

/// Makes a detector for one endpoint.
pub type DetectorFactory = fn() -> Box<dyn DigitDetector>;

/// Frame length of every tick, in ms.
pub const FRAME_MS: u32 = 20;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_digits;
