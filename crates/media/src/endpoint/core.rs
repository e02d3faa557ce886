//! One terminating leg, sans-IO: datagrams and `now` in; datagrams, events, file loads and
//! recording chunks out. No sockets, no clock reads, no threads: the worker (or a test) drives it.
//!
//! Every tick (20 ms) the worker calls [`EndpointCore::tick_receive`] (one frame out of the
//! jitter buffer, decoded or concealed, into [`EndpointCore::heard`]), mixes bridges, then
//! [`EndpointCore::tick_send`] (player + bridge audio encoded and packetized; recorder fed).
//! [`EndpointCore::tick`] does both for a leg outside any bridge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::digits::DigitSender;
use super::jitter::{Inserted, JitterBuffer, Next, Packet};
use super::player::{self, EVENT_ON_FRAMES, LoadRequest, Out, Player};
use super::rate::{self, Resampler};
use super::{
    BridgeId, DigitDetector, DigitMode, Direction, DtmfSource, EndpointId, EndpointStats,
    EngineEvent, FRAME_MS, Negotiated, PlayRequest, RecordReason, RecordRequest, ToneSpec,
    Transmit,
};
use crate::codec::{self, Decoder, Encoder};
use crate::dtmf::TelephoneEvent;
use crate::rtcp::{self, ReportBlock, SenderInfo};
use crate::rtp::{RtpHeader, RtpPacket};
use crate::stats::RxStats;

/// Receive payload types decoded at most (a hostile SDP cannot make us build hundreds).
const MAX_DECODERS: usize = 8;
/// RTCP report interval.
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Silence kept at the end of a recording that stopped for silence.
const SILENCE_TAIL_MS: usize = 200;
/// Recorded PCM is handed to the writer in chunks of this many ms.
const RECORD_CHUNK_MS: usize = 200;

/// Settings a core needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// No RTP this long → [`EngineEvent::MediaTimeout`].
    pub media_timeout: Duration,
    /// Consecutive in-sequence packets a new source needs to take over.
    pub relatch_packets: u16,
    /// Mean-square level under which a recorded frame is silence.
    pub silence_energy: f64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            media_timeout: Duration::from_secs(60),
            relatch_packets: 4,
            silence_energy: 1e-5,
        }
    }
}

/// Work for the recording writer.
#[derive(Debug)]
pub enum RecordOp {
    /// Open `path.part` for a WAV at `rate`.
    Start {
        /// Recording key (unique per process).
        key: u64,
        /// Endpoint.
        ep: EndpointId,
        /// Request id.
        id: u64,
        /// Final path.
        path: PathBuf,
        /// Sample rate.
        rate: u32,
        /// Set by the writer when it gave up (disk full, write error).
        failed: Arc<AtomicBool>,
    },
    /// Append samples.
    Data {
        /// Recording key.
        key: u64,
        /// PCM.
        pcm: Vec<i16>,
    },
    /// Complete (rename) with this reason.
    Finish {
        /// Recording key.
        key: u64,
        /// Why it ended.
        reason: RecordReason,
        /// Samples to cut from the end (the silence that ended it, but for a short tail).
        trim: usize,
    },
}

static RECORD_KEYS: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct Recording {
    key: u64,
    max_samples: usize,
    silence_samples: Option<usize>,
    silent_run: usize,
    written: usize,
    beep_pos: Option<usize>,
    chunk: Vec<i16>,
    failed: Arc<AtomicBool>,
    /// The WAV's rate (the leg's rate when it started; a later codec change is converted).
    rate: u32,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    last_seq: u16,
    count: u16,
}

/// The send side, once a codec is set.
struct Send {
    neg: Negotiated,
    encoder: Box<dyn Encoder>,
    rate: u32,
    frame_len: usize,
    step: u32,
    frames_per_packet: usize,
    pending: Vec<i16>,
    pending_ts: u32,
    /// RTP timestamp of the current event (RFC 4733) while one is sent.
    event_ts: u32,
}

struct RxCodec {
    pt: u8,
    decoder: Box<dyn Decoder>,
}

/// One terminating leg's logic.
pub struct EndpointCore {
    id: EndpointId,
    cfg: CoreConfig,
    epoch: Instant,
    ntp_epoch: u64,
    own: [SocketAddr; 2],
    // Addresses and latching (as the relay does it).
    sdp_rtp: Option<SocketAddr>,
    rtp_dest: Option<SocketAddr>,
    rtcp_dest: Option<SocketAddr>,
    rtp_latched: bool,
    rtcp_latched: bool,
    candidate: Option<Candidate>,
    // Receive.
    decoders: Vec<RxCodec>,
    events_pt: Vec<u8>,
    jb: Option<JitterBuffer>,
    rx_rate: u32,
    last_pt: Option<u8>,
    pcm_in: Vec<i16>,
    rx_conv: Option<Box<dyn Resampler>>,
    heard: Vec<i16>,
    last_event: Option<(u32, u32, u8)>,
    detector: Option<Box<dyn DigitDetector>>,
    rx: RxStats,
    rx_ssrc: Option<u32>,
    /// Highest sequence number received, extended with wrap cycles.
    rx_ext_seq: Option<u32>,
    last_sr: Option<(u32, Instant)>,
    rr_expected_prior: u64,
    rr_received_prior: u64,
    // Send.
    send: Option<Send>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
    sent_packets: u32,
    sent_octets: u32,
    next_rtcp: Instant,
    scratch: Vec<i16>,
    payload: Vec<u8>,
    // Media.
    player: Player,
    /// Digits regenerated from the other leg of a bridge ([`EndpointCore::send_digits`]).
    digits: DigitSender,
    recording: Option<Recording>,
    pub(crate) bridge: Option<BridgeId>,
    pub(crate) muted: bool,
    /// Highest PCM rate an Opus leg works at ([`EndpointCore::set_pcm_rate_limit`]).
    pcm_rate_limit: Option<u32>,
    direction: Direction,
    /// Converters to and from a bridge's mixing rate.
    pub(crate) mix_conv: Option<(Box<dyn Resampler>, Box<dyn Resampler>)>,
    // Supervision.
    last_activity: Instant,
    timed_out: bool,
    stats: EndpointStats,
    // Outputs.
    out: Vec<Transmit>,
    events: Vec<EngineEvent>,
    loads: Vec<LoadRequest>,
    record_ops: Vec<RecordOp>,
}

impl std::fmt::Debug for EndpointCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCore")
            .field("id", &self.id)
            .field("rtp_dest", &self.rtp_dest)
            .finish_non_exhaustive()
    }
}

/// NTP time (RFC 3550 64-bit) of a `SystemTime`, for [`EndpointCore::new`].
pub fn ntp_of(t: std::time::SystemTime) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    ((d.as_secs() + UNIX_TO_NTP) << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

impl EndpointCore {
    /// A leg whose sockets are `own_rtp`/`own_rtcp`; SSRC, first sequence number and timestamp
    /// come from `rng`; `ntp_now` is the wall clock (NTP format) at `now`, for sender reports.
    pub fn new(
        id: EndpointId,
        own_rtp: SocketAddr,
        own_rtcp: SocketAddr,
        cfg: CoreConfig,
        rng: &mut dyn RngCore,
        now: Instant,
        ntp_now: u64,
    ) -> EndpointCore {
        EndpointCore {
            id,
            cfg,
            epoch: now,
            ntp_epoch: ntp_now,
            own: [own_rtp, own_rtcp],
            sdp_rtp: None,
            rtp_dest: None,
            rtcp_dest: None,
            rtp_latched: false,
            rtcp_latched: false,
            candidate: None,
            decoders: Vec::new(),
            events_pt: Vec::new(),
            jb: None,
            rx_rate: 8000,
            last_pt: None,
            pcm_in: Vec::new(),
            rx_conv: None,
            heard: Vec::new(),
            last_event: None,
            detector: None,
            rx: RxStats::default(),
            rx_ssrc: None,
            rx_ext_seq: None,
            last_sr: None,
            rr_expected_prior: 0,
            rr_received_prior: 0,
            send: None,
            ssrc: rng.next_u32(),
            seq: rng.next_u32() as u16,
            ts: rng.next_u32(),
            marker: true,
            sent_packets: 0,
            sent_octets: 0,
            next_rtcp: now + RTCP_INTERVAL,
            scratch: Vec::new(),
            payload: Vec::with_capacity(256),
            player: Player::default(),
            digits: DigitSender::default(),
            recording: None,
            bridge: None,
            muted: false,
            pcm_rate_limit: None,
            direction: Direction::SendRecv,
            mix_conv: None,
            last_activity: now,
            timed_out: false,
            stats: EndpointStats::default(),
            out: Vec::new(),
            events: Vec::new(),
            loads: Vec::new(),
            record_ops: Vec::new(),
        }
    }

    /// The endpoint's id.
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The PCM rate the leg works at (its send codec's rate; 8 kHz before a codec is set).
    pub fn rate(&self) -> u32 {
        self.send.as_ref().map_or(8000, |s| s.rate)
    }

    /// Samples per 20 ms frame at [`EndpointCore::rate`].
    pub fn frame_len(&self) -> usize {
        (self.rate() / 1000 * FRAME_MS) as usize
    }

    /// What the leg received this tick (one frame at [`EndpointCore::rate`]).
    pub fn heard(&self) -> &[i16] {
        &self.heard
    }

    /// Where RTP goes now (SDP address or latched source).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.rtp_dest
    }

    /// Counters so far.
    pub fn stats(&self) -> EndpointStats {
        let mut s = self.stats;
        s.lost = self.rx.lost();
        s.jitter_secs = self.rx.jitter_secs();
        if let Some(jb) = &self.jb {
            let j = jb.stats();
            s.underruns = j.underruns;
            s.late = j.late;
            s.duplicates = j.duplicates;
            s.target_delay_ms = jb.target_ms();
        }
        s
    }

    /// The peer's addresses from SDP; an unspecified address or port 0 (hold) is ignored.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>, now: Instant) {
        self.last_activity = now;
        self.timed_out = false;
        if rtp.ip().is_unspecified() || rtp.port() == 0 || self.own.contains(&rtp) {
            return;
        }
        let moved = self.sdp_rtp.is_some_and(|old| old != rtp);
        self.sdp_rtp = Some(rtp);
        if moved || !self.rtp_latched {
            self.rtp_dest = Some(rtp);
            self.rtp_latched = false;
            self.candidate = None;
        }
        if moved || !self.rtcp_latched {
            self.rtcp_dest = rtcp.or_else(|| {
                rtp.port()
                    .checked_add(1)
                    .map(|p| SocketAddr::new(rtp.ip(), p))
            });
            self.rtcp_latched = false;
        }
    }

    /// Caps the PCM rate of an Opus leg (`Some(8000)`: encode from and decode to 8 kHz, Opus
    /// complexity 0, [`crate::opus::OpusConfig::for_pcm_rate`]); `None` = the codec's own rate.
    /// Meant for an Opus leg bridged only to G.711 legs: nothing above 4 kHz can cross the
    /// bridge, and the leg (and its bridge's mix) then needs no 48 kHz codec work and no
    /// resamplers — about a fifth of the CPU (docs/media-dsp.md). The RTP clock stays 48 kHz.
    /// Other codecs keep their own rate. Applies to the current codec at once (new codec
    /// state, as after a codec change).
    pub fn set_pcm_rate_limit(&mut self, limit: Option<u32>) {
        if self.pcm_rate_limit == limit {
            return;
        }
        self.pcm_rate_limit = limit;
        if let Some(neg) = self.send.as_ref().map(|s| s.neg.clone()) {
            self.set_codec(neg);
        }
    }

    /// The PCM rate to build `kind`'s codec for, when not its own.
    fn codec_rate(&self, kind: codec::CodecKind) -> Option<u32> {
        self.pcm_rate_limit
            .filter(|&r| kind == codec::CodecKind::Opus && r < kind.sample_rate())
    }

    /// Sets what SDP negotiated. Codecs this build lacks are skipped on receive; a send codec it
    /// lacks leaves the leg silent (and is logged).
    pub fn set_codec(&mut self, neg: Negotiated) {
        let mut decoders: Vec<RxCodec> = Vec::new();
        let listed = std::iter::once((neg.payload_type, neg.codec)).chain(neg.receive.clone());
        for (pt, kind) in listed {
            if decoders.len() >= MAX_DECODERS || decoders.iter().any(|d| d.pt == pt) {
                continue;
            }
            if let Ok(decoder) = self
                .codec_rate(kind)
                .map_or_else(|| codec::decoder(kind), |r| codec::decoder_at(kind, r))
            {
                decoders.push(RxCodec { pt, decoder });
            }
        }
        self.decoders = decoders;
        self.events_pt = neg
            .receive_events
            .iter()
            .take(MAX_DECODERS)
            .copied()
            .collect();
        let encoder = match self.codec_rate(neg.codec).map_or_else(
            || codec::encoder(neg.codec),
            |r| codec::encoder_at(neg.codec, r),
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(ep = self.id.0, error = %e, "send codec unavailable");
                self.send = None;
                return;
            }
        };
        let rate = encoder.pcm_rate();
        let frames_per_packet = (neg.ptime_ms / FRAME_MS).clamp(1, 6) as usize;
        let old_rate = self.rate();
        self.send = Some(Send {
            encoder,
            rate,
            frame_len: (rate / 1000 * FRAME_MS) as usize,
            step: neg.codec.timestamp_step(FRAME_MS),
            frames_per_packet,
            pending: Vec::new(),
            pending_ts: self.ts,
            event_ts: 0,
            neg,
        });
        if old_rate != rate {
            self.mix_conv = None;
            self.rx_conv = None;
        }
        self.marker = true;
    }

    /// Detects DTMF in the received audio with `detector` (`None` stops detecting).
    pub fn set_detector(&mut self, detector: Option<Box<dyn DigitDetector>>) {
        self.detector = detector;
    }

    /// Sets the media direction (hold/resume). Changing it starts a fresh media-timeout window.
    pub fn set_direction(&mut self, direction: Direction, now: Instant) {
        self.direction = direction;
        self.last_activity = now;
        self.timed_out = false;
    }

    /// Starts a play (ending the current one as interrupted).
    pub fn play(&mut self, req: PlayRequest) {
        self.player.play(self.id, req, &mut self.events);
    }

    /// Stops the play, if any.
    pub fn stop_play(&mut self) {
        self.player.stop(self.id, &mut self.events);
    }

    /// Sends `digits` to the phone over whatever it hears, without touching the play: RFC 4733
    /// events when telephone-event was negotiated and `mode` allows, else in-band tones (see
    /// [`super::digits`]). Returns how many were queued (at most
    /// [`super::digits::MAX_QUEUED_DIGITS`] wait).
    pub fn send_digits(&mut self, digits: &str, mode: DigitMode) -> usize {
        self.digits.push(digits, mode)
    }

    /// Whether something plays.
    pub fn is_playing(&self) -> bool {
        self.player.is_playing()
    }

    /// The loader's answer for a [`EndpointCore::take_loads`] request.
    pub fn file_loaded(&mut self, ticket: u64, result: Result<Arc<[i16]>, String>) {
        self.player
            .file_loaded(self.id, ticket, result, &mut self.events);
    }

    /// Starts recording (ending a running recording as `Stopped`).
    pub fn record(&mut self, req: RecordRequest) {
        self.finish_record(RecordReason::Stopped);
        let rate = self.rate();
        let key = RECORD_KEYS.fetch_add(1, Relaxed);
        let failed = Arc::new(AtomicBool::new(false));
        self.record_ops.push(RecordOp::Start {
            key,
            ep: self.id,
            id: req.id,
            path: req.path,
            rate,
            failed: failed.clone(),
        });
        self.recording = Some(Recording {
            key,
            max_samples: crate::tone::sample_count(req.max_len, rate),
            silence_samples: req.silence.map(|d| crate::tone::sample_count(d, rate)),
            silent_run: 0,
            written: 0,
            beep_pos: req.beep.then_some(0),
            chunk: Vec::new(),
            failed,
            rate,
        });
    }

    /// Stops recording, if it runs.
    pub fn stop_record(&mut self) {
        self.finish_record(RecordReason::Stopped);
    }

    /// Whether a recording runs.
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    fn finish_record(&mut self, reason: RecordReason) {
        if let Some(mut r) = self.recording.take() {
            if !r.chunk.is_empty() {
                let pcm = std::mem::take(&mut r.chunk);
                self.record_ops.push(RecordOp::Data { key: r.key, pcm });
            }
            let trim = if reason == RecordReason::Silence {
                r.silent_run
                    .saturating_sub(r.rate as usize * SILENCE_TAIL_MS / 1000)
            } else {
                0
            };
            self.record_ops.push(RecordOp::Finish {
                key: r.key,
                reason,
                trim,
            });
        }
    }

    /// Ends everything (play interrupted, recording `Closed`) and returns the final counters.
    pub fn close(&mut self) -> EndpointStats {
        self.stop_play();
        self.finish_record(RecordReason::Closed);
        self.stats()
    }

    /// Datagrams to send, oldest first.
    pub fn drain_transmits(&mut self) -> std::vec::Drain<'_, Transmit> {
        self.out.drain(..)
    }

    /// Events for the call layer.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, EngineEvent> {
        self.events.drain(..)
    }

    /// Files the player waits for: `(ticket, path, rate)`; answer with [`EndpointCore::file_loaded`].
    pub fn take_loads(&mut self) -> Vec<(u64, PathBuf, u32)> {
        self.loads
            .drain(..)
            .map(|l| (l.ticket, l.path, l.rate))
            .collect()
    }

    /// Whether file loads are waiting to be taken.
    pub fn has_loads(&self) -> bool {
        !self.loads.is_empty()
    }

    /// Work for the recording writer.
    pub fn drain_record_ops(&mut self) -> std::vec::Drain<'_, RecordOp> {
        self.record_ops.drain(..)
    }

    /// Whether recording work is waiting.
    pub fn has_record_ops(&self) -> bool {
        !self.record_ops.is_empty()
    }

    fn clock_units(&self, now: Instant, hz: u32) -> u32 {
        let d = now.saturating_duration_since(self.epoch);
        let rate = u64::from(hz);
        (d.as_secs() * rate + u64::from(d.subsec_nanos()) * rate / 1_000_000_000) as u32
    }

    /// A datagram arrived on the RTP socket.
    pub fn on_rtp(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        if rtcp::is_rtcp(data) {
            // RTCP multiplexed on the RTP port (RFC 5761).
            if self.rtp_latched && self.rtp_dest == Some(from) {
                self.on_rtcp_checked(data, now);
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let Ok(p) = RtpPacket::parse(data) else {
            self.stats.dropped += 1;
            return;
        };
        let is_event = self.events_pt.contains(&p.payload_type);
        let codec_idx = self.decoders.iter().position(|d| d.pt == p.payload_type);
        if !is_event && codec_idx.is_none() {
            // Comfort noise, a codec we did not offer, or garbage: not media.
            self.stats.dropped += 1;
            return;
        }
        if !self.accept_source(from, p.sequence) {
            self.stats.dropped += 1;
            return;
        }
        self.stats.packets_rx += 1;
        self.last_activity = now;
        self.timed_out = false;
        self.rx.on_sequence(p.sequence, p.ssrc);
        self.rx_ssrc = Some(p.ssrc);
        self.rx_ext_seq = Some(match self.rx_ext_seq {
            None => u32::from(p.sequence),
            Some(ext) => {
                let delta = p.sequence.wrapping_sub(ext as u16) as i16;
                if delta > 0 {
                    ext.wrapping_add(delta as u32)
                } else {
                    ext
                }
            }
        });
        if is_event {
            self.on_event(p.ssrc, p.timestamp, p.payload);
            return;
        }
        let Some(idx) = codec_idx else {
            return;
        };
        let kind = self.decoders[idx].decoder.kind();
        let pcm_rate = self.decoders[idx].decoder.pcm_rate();
        let clock = kind.rtp_clock_rate();
        let arrival = self.clock_units(now, clock);
        self.rx
            .on_timing(p.payload_type, p.timestamp, arrival, clock);
        if self.jb.as_ref().is_none_or(|j| j.clock() != clock) || self.rx_rate != pcm_rate {
            self.jb = Some(JitterBuffer::new(clock));
            self.pcm_in.clear();
            self.rx_rate = pcm_rate;
        }
        if let Some(jb) = self.jb.as_mut()
            && jb.insert(
                Packet {
                    ts: p.timestamp,
                    seq: p.sequence,
                    pt: p.payload_type,
                    payload: p.payload.to_vec(),
                },
                arrival,
            ) != Inserted::Queued
        {
            self.stats.dropped += 1;
        }
    }

    fn on_event(&mut self, ssrc: u32, ts: u32, payload: &[u8]) {
        let Ok(ev) = TelephoneEvent::parse(payload) else {
            self.stats.dropped += 1;
            return;
        };
        // One key press is one event timestamp: its updates and end retransmissions repeat it,
        // and a reordered packet of an earlier press (an older timestamp) is not a new one.
        if let Some((last_ssrc, last_ts, last_ev)) = self.last_event
            && last_ssrc == ssrc
            && ((last_ts == ts && last_ev == ev.event) || (ts.wrapping_sub(last_ts) as i32) < 0)
        {
            return;
        }
        self.last_event = Some((ssrc, ts, ev.event));
        if let Some(digit) = ev.digit() {
            self.stats.digits += 1;
            self.events.push(EngineEvent::Dtmf {
                ep: self.id,
                digit,
                source: DtmfSource::Rfc4733,
            });
            self.player.on_dtmf(self.id, &mut self.events);
        }
    }

    fn accept_source(&mut self, src: SocketAddr, seq: u16) -> bool {
        if self.rtp_latched && self.rtp_dest == Some(src) {
            self.candidate = None;
            return true;
        }
        if self.own.contains(&src) {
            return false;
        }
        if self.rtp_latched {
            let need = self.cfg.relatch_packets.max(1);
            let c = match self.candidate {
                Some(c) if c.addr == src && seq == c.last_seq.wrapping_add(1) => Candidate {
                    addr: src,
                    last_seq: seq,
                    count: c.count.saturating_add(1),
                },
                _ => Candidate {
                    addr: src,
                    last_seq: seq,
                    count: 1,
                },
            };
            if c.count < need {
                self.candidate = Some(c);
                return false;
            }
            tracing::info!(ep = self.id.0, from = ?self.rtp_dest, to = %src, "media source moved, re-latching");
        }
        self.candidate = None;
        self.rtp_dest = Some(src);
        self.rtp_latched = true;
        if !self.rtcp_latched {
            self.rtcp_dest = src
                .port()
                .checked_add(1)
                .map(|p| SocketAddr::new(src.ip(), p));
        }
        true
    }

    /// A datagram arrived on the RTCP socket.
    pub fn on_rtcp(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        if rtcp::validate(data).is_err() {
            self.stats.dropped += 1;
            return;
        }
        if self.rtcp_dest != Some(from) || !self.rtcp_latched {
            let same_host = !self.rtp_latched || self.rtp_dest.map(|d| d.ip()) == Some(from.ip());
            if !same_host {
                self.stats.dropped += 1;
                return;
            }
            self.rtcp_dest = Some(from);
            self.rtcp_latched = true;
        }
        self.on_rtcp_checked(data, now);
    }

    fn on_rtcp_checked(&mut self, data: &[u8], now: Instant) {
        self.stats.rtcp_rx += 1;
        if let Some(b) = rtcp::first_report_block(data)
            && b.ssrc == self.ssrc
        {
            let clock = self
                .send
                .as_ref()
                .map_or(8000, |s| s.neg.codec.rtp_clock_rate());
            self.stats.reported = Some(crate::ReportedQuality {
                fraction_lost: f64::from(b.fraction_lost) / 256.0,
                cumulative_lost: i64::from(b.cumulative_lost),
                jitter_ms: f64::from(b.jitter) * 1000.0 / f64::from(clock),
            });
        }
        for p in rtcp::parse_compound(data).flatten() {
            if let rtcp::RtcpPacket::SenderReport { info, .. } = p {
                self.last_sr = Some(((info.ntp_timestamp >> 16) as u32, now));
            }
        }
    }

    /// One tick for a leg outside any bridge.
    pub fn tick(&mut self, now: Instant) {
        self.tick_receive(now);
        self.tick_send(now, None);
    }

    /// Takes one frame of received audio into [`EndpointCore::heard`] and checks the timeout.
    pub fn tick_receive(&mut self, now: Instant) {
        if !self.timed_out
            && self.direction == Direction::SendRecv
            && now.saturating_duration_since(self.last_activity) >= self.cfg.media_timeout
        {
            self.timed_out = true;
            self.events.push(EngineEvent::MediaTimeout { ep: self.id });
        }
        let native = self.rate();
        let frame = self.frame_len();
        self.heard.clear();
        let Some(jb) = self.jb.as_mut() else {
            self.heard.resize(frame, 0);
            return;
        };
        let rx_rate = self.rx_rate;
        let clock = jb.clock();
        let need = (rx_rate / 1000 * FRAME_MS) as usize;
        let mut guard = 8;
        while self.pcm_in.len() < need && guard > 0 {
            guard -= 1;
            if self.decoders.is_empty() {
                break;
            }
            let next = jb.next_frame();
            let last = self
                .last_pt
                .and_then(|pt| self.decoders.iter().position(|d| d.pt == pt))
                .unwrap_or(0);
            match next {
                Next::Packet(p) => {
                    let before = self.pcm_in.len();
                    let di = self
                        .decoders
                        .iter()
                        .position(|d| d.pt == p.pt)
                        .unwrap_or(last);
                    let dec = &mut self.decoders[di];
                    self.last_pt = Some(dec.pt);
                    let dec_rate = dec.decoder.pcm_rate();
                    if dec.decoder.decode(&p.payload, &mut self.pcm_in).is_err() {
                        self.pcm_in.truncate(before);
                        dec.decoder.conceal(need, &mut self.pcm_in);
                        self.stats.concealed += 1;
                    } else if dec_rate != rx_rate {
                        let got = self.pcm_in.split_off(before);
                        self.pcm_in
                            .extend(rate::convert_all(&got, dec_rate, rx_rate));
                    }
                    let samples = (self.pcm_in.len() - before) as u64;
                    let units = samples * u64::from(clock) / u64::from(rx_rate.max(1));
                    jb.advance(units.max(1) as u32);
                }
                Next::Lost(units) => {
                    let samples = u64::from(units) * u64::from(rx_rate) / u64::from(clock);
                    self.decoders[last]
                        .decoder
                        .conceal(samples as usize, &mut self.pcm_in);
                    self.stats.concealed += 1;
                }
                Next::Underrun | Next::Stretch => {
                    self.decoders[last].decoder.conceal(need, &mut self.pcm_in);
                    self.stats.concealed += 1;
                }
                Next::Idle => {
                    self.pcm_in.resize(need, 0);
                }
            }
        }
        if self.pcm_in.len() < need {
            self.pcm_in.resize(need, 0);
        }
        if rx_rate == native {
            self.heard.extend(self.pcm_in.drain(..need));
        } else {
            let conv = match &mut self.rx_conv {
                Some(c) if c.input_rate() == rx_rate && c.output_rate() == native => c,
                slot => slot.insert(rate::converter(rx_rate, native)),
            };
            conv.process(&self.pcm_in[..need], &mut self.heard);
            self.pcm_in.drain(..need);
            self.heard.resize(frame, 0);
        }
        if let Some(d) = self.detector.as_mut()
            && let Some(digit) = d.process(&self.heard, native)
        {
            self.stats.digits += 1;
            self.events.push(EngineEvent::Dtmf {
                ep: self.id,
                digit,
                source: DtmfSource::Inband,
            });
            self.player.on_dtmf(self.id, &mut self.events);
        }
    }

    /// Builds this tick's outgoing frame (player over `bridge` audio), sends it, feeds the
    /// recorder (what was heard, plus `bridge` when in one), and sends RTCP when due.
    pub fn tick_send(&mut self, now: Instant, bridge: Option<&[i16]>) {
        let Some(send) = self.send.as_mut() else {
            return;
        };
        let frame = send.frame_len;
        let rate = send.rate;
        let step = send.step;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.resize(frame, 0);
        let rfc = send.neg.telephone_event.is_some();
        let out = self.player.fill(
            self.id,
            rate,
            rfc,
            &mut buf,
            &mut self.events,
            &mut self.loads,
        );
        if let Some(b) = bridge {
            for (o, &s) in buf.iter_mut().zip(b) {
                *o = o.saturating_add(s);
            }
        }
        // Regenerated digits go over the play and the bridge.
        let out = self.digits.next(rate, rfc, &mut buf).unwrap_or(out);
        // Recorder: the beep goes out first; then what the leg hears (and the bridge).
        let mut rec_done = None;
        if let Some(r) = self.recording.as_mut() {
            if r.failed.load(Relaxed) {
                self.recording = None;
            } else if let Some(pos) = r.beep_pos {
                let spec = ToneSpec::beep();
                let total = crate::tone::sample_count(spec.duration, rate);
                let mut beep = vec![0i16; frame.min(total.saturating_sub(pos))];
                player::tone_into(&spec, rate, pos, &mut beep);
                for (o, &s) in buf.iter_mut().zip(&beep) {
                    *o = o.saturating_add(s);
                }
                r.beep_pos = (pos + frame < total).then_some(pos + frame);
            } else {
                let start = r.chunk.len();
                let mut mix = self.heard.clone();
                if let Some(b) = bridge {
                    for (o, &s) in mix.iter_mut().zip(b) {
                        *o = o.saturating_add(s);
                    }
                }
                if r.rate != rate {
                    mix = rate::convert_all(&mix, rate, r.rate);
                }
                let room = r.max_samples.saturating_sub(r.written);
                let n = mix.len().min(room);
                r.chunk.extend_from_slice(&mix[..n]);
                r.written += n;
                if crate::tone::energy(&r.chunk[start..]) < self.cfg.silence_energy {
                    r.silent_run += n;
                } else {
                    r.silent_run = 0;
                }
                if r.chunk.len() >= r.rate as usize * RECORD_CHUNK_MS / 1000 {
                    let pcm = std::mem::take(&mut r.chunk);
                    self.record_ops.push(RecordOp::Data { key: r.key, pcm });
                }
                if r.written >= r.max_samples {
                    rec_done = Some(RecordReason::MaxLength);
                } else if r.silence_samples.is_some_and(|s| r.silent_run >= s) {
                    rec_done = Some(RecordReason::Silence);
                }
            }
        }
        if let Some(reason) = rec_done {
            self.finish_record(reason);
        }
        let Some(send) = self.send.as_mut() else {
            return;
        };
        match out {
            Out::Audio => {
                if send.pending.is_empty() {
                    send.pending_ts = self.ts;
                }
                send.pending.extend_from_slice(&buf);
                if send.pending.len() >= send.frame_len * send.frames_per_packet {
                    self.payload.clear();
                    let ok = send
                        .encoder
                        .encode(&send.pending, &mut self.payload)
                        .is_ok();
                    let ts = send.pending_ts;
                    let pt = send.neg.payload_type;
                    send.pending.clear();
                    if ok {
                        let marker = std::mem::take(&mut self.marker);
                        let payload = std::mem::take(&mut self.payload);
                        self.emit_rtp(pt, marker, ts, &payload);
                        self.payload = payload;
                    }
                }
            }
            Out::Event { event, step: k } => {
                // Flush partial audio of a longer ptime before the event.
                if !send.pending.is_empty() {
                    send.pending.clear();
                }
                if let Some((pt, ev_clock)) = send.neg.telephone_event {
                    if k == 0 {
                        send.event_ts = self.ts;
                    }
                    let on = EVENT_ON_FRAMES;
                    let unit = ev_clock / 1000 * FRAME_MS;
                    let ev = TelephoneEvent {
                        event,
                        end: k + 1 >= on,
                        volume: 10,
                        duration: (unit * (k + 1).min(on)).min(u32::from(u16::MAX)) as u16,
                    };
                    let ts = send.event_ts;
                    self.emit_rtp(pt, k == 0, ts, &ev.to_bytes());
                    // The first audio after an event starts a talkspurt.
                    self.marker = true;
                }
            }
        }
        self.scratch = buf;
        self.ts = self.ts.wrapping_add(step);
        if now >= self.next_rtcp {
            self.next_rtcp = now + RTCP_INTERVAL;
            self.send_rtcp(now);
        }
    }

    fn emit_rtp(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        if !self.direction.sends() {
            // The first packet after the pause starts a talkspurt.
            self.marker = true;
            return;
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let Some(to) = self.rtp_dest else {
            return;
        };
        let mut h = RtpHeader::new(pt, seq, ts, self.ssrc);
        h.marker = marker;
        if let Ok(data) = h.build(payload) {
            self.sent_packets = self.sent_packets.wrapping_add(1);
            self.sent_octets = self.sent_octets.wrapping_add(payload.len() as u32);
            self.stats.packets_tx += 1;
            self.out.push(Transmit {
                rtcp: false,
                to,
                data,
            });
        }
    }

    fn send_rtcp(&mut self, now: Instant) {
        let Some(to) = self.rtcp_dest else {
            return;
        };
        let mut blocks = Vec::new();
        if let Some(ssrc) = self.rx_ssrc {
            let lost = self.rx.lost();
            let expected = self.stats.packets_rx + lost;
            let exp_int = expected.saturating_sub(self.rr_expected_prior);
            let rec_int = self.stats.packets_rx.saturating_sub(self.rr_received_prior);
            self.rr_expected_prior = expected;
            self.rr_received_prior = self.stats.packets_rx;
            let fraction = if exp_int == 0 || rec_int >= exp_int {
                0
            } else {
                ((exp_int - rec_int) * 256 / exp_int).min(255) as u8
            };
            let clock = self.jb.as_ref().map_or(8000, |j| j.clock());
            let (lsr, dlsr) = match self.last_sr {
                Some((lsr, at)) => {
                    let d = now.saturating_duration_since(at);
                    (lsr, (d.as_secs_f64() * 65536.0) as u32)
                }
                None => (0, 0),
            };
            blocks.push(ReportBlock {
                ssrc,
                fraction_lost: fraction,
                cumulative_lost: lost.min(0x7f_ffff) as i32,
                highest_seq: self.rx_ext_seq.unwrap_or(0),
                jitter: (self.rx.jitter_secs() * f64::from(clock)) as u32,
                last_sr: lsr,
                delay_since_last_sr: dlsr,
            });
        }
        let data = if self.sent_packets > 0 {
            let elapsed = now.saturating_duration_since(self.epoch);
            let frac = (u64::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000;
            let ntp = self
                .ntp_epoch
                .wrapping_add((elapsed.as_secs() << 32) | frac);
            let info = SenderInfo {
                ntp_timestamp: ntp,
                rtp_timestamp: self.ts,
                packet_count: self.sent_packets,
                octet_count: self.sent_octets,
            };
            rtcp::build_sender_report(self.ssrc, &info, &blocks)
        } else {
            rtcp::build_receiver_report(self.ssrc, &blocks)
        };
        self.stats.rtcp_tx += 1;
        self.out.push(Transmit {
            rtcp: true,
            to,
            data,
        });
    }
}
