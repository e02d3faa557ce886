//! Media commands the engine gives the relay, and the events it gets back. A call's media
//! session has two endpoints, one per [`Side`]; the driver owns the relay.

use std::net::{IpAddr, SocketAddr};

use crate::db::LegStats;

/// Identifies one terminating media endpoint (an `apps` leg: prompts, IVR, bridges that
/// decode and re-encode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

/// A codec as negotiated in SDP: encoding name, payload type, clock rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name as SDP spells it (`PCMU`, `opus` …).
    pub name: String,
    /// Payload type.
    pub pt: u8,
    /// RTP clock rate.
    pub clock: u32,
}

/// Call-progress tones an endpoint can play (the country comes from the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToneKind {
    /// Ringback ("the other phone is ringing").
    Ringback,
    /// Busy.
    Busy,
    /// Congestion / reorder ("cannot complete").
    Congestion,
    /// A short beep (before recording).
    Beep,
}

/// One thing an endpoint plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayItem {
    /// A prompt by id, resolved for the tenant and language (tenant upload, then default set).
    Prompt {
        /// Prompt id.
        id: String,
        /// Tenant whose uploads win.
        tenant: i64,
        /// Language (`en`, `ja`).
        lang: String,
    },
    /// A call-progress tone.
    Tone(ToneKind),
    /// Music on hold of a tenant's class.
    Moh {
        /// Tenant.
        tenant: i64,
        /// Class name (`default`).
        class: String,
    },
    /// Silence.
    Silence {
        /// Milliseconds.
        ms: u32,
    },
    /// An audio file under the data directory (voicemail messages and greetings); a missing
    /// or unreadable file plays the error tone.
    File {
        /// Path relative to the data directory (`voicemail/1/1002/msg-….wav`).
        path: String,
    },
    /// A call-progress tone of a country's plan (`tones.country` of the call's tenant).
    CountryTone {
        /// The tone.
        tone: ToneKind,
        /// `jp` or `na` (anything else: `jp`).
        country: String,
    },
}

/// Identifies one relay session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// The two sides of a bridge: A faces the caller, B the callee. Every "which side sent this"
/// question is answered by a leg's side and [`Side::other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Caller side.
    A,
    /// Callee side.
    B,
}

impl Side {
    /// The opposite side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A command for the media relay.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Open a session: side A's socket on `a_ip`, side B's on `b_ip` (each the address of the
    /// network segment that side's phone reaches us on). Answer with
    /// [`MediaEvent::Allocated`] or [`MediaEvent::AllocationFailed`].
    Allocate {
        /// The new session.
        session: SessionId,
        /// SIP Call-ID (for logs).
        call_id: String,
        /// Local address for side A.
        a_ip: IpAddr,
        /// Local address for side B.
        b_ip: IpAddr,
    },
    /// Where a side's phone wants RTP (and RTCP).
    SetRemote {
        /// Session.
        session: SessionId,
        /// Side.
        side: Side,
        /// RTP address.
        rtp: SocketAddr,
        /// RTCP address, when given explicitly.
        rtcp: Option<SocketAddr>,
    },
    /// On hold: no media timeout while set.
    SetHold {
        /// Session.
        session: SessionId,
        /// Held or not.
        on_hold: bool,
    },
    /// The clock rate of a payload type (for jitter figures).
    SetClockRate {
        /// Session.
        session: SessionId,
        /// Side.
        side: Side,
        /// RTP payload type.
        payload_type: u8,
        /// Hz.
        hz: u32,
    },
    /// A relayed call was answered on `session`: the driver puts a tap on it (RFC 4733 digits
    /// come back as [`MediaEvent::RelayDigit`]; recordings need the payloads). Needs no answer.
    Answered {
        /// Session.
        session: SessionId,
        /// Parties and negotiated payloads.
        info: Box<crate::recording::Answered>,
    },
    /// Close a session and report its statistics with [`MediaEvent::Closed`].
    Close {
        /// Session.
        session: SessionId,
    },
    /// Re-bind a relay session on the given RTP ports (RTCP on RTP + 1), as another node had
    /// them, to continue its call ([`crate::live_calls`]); answered like `Allocate`.
    Adopt {
        /// Session.
        session: SessionId,
        /// The caller's Call-ID (logs).
        call_id: String,
        /// Our RTP socket facing side A.
        a: SocketAddr,
        /// Our RTP socket facing side B.
        b: SocketAddr,
    },
    /// Open a terminating endpoint with its socket on `ip`. Endpoints that will be bridged
    /// pass the same `group`. Answer with [`MediaEvent::EndpointOpened`] or
    /// [`MediaEvent::EndpointFailed`].
    OpenEndpoint {
        /// The new endpoint.
        endpoint: EndpointId,
        /// SIP Call-ID (for logs).
        call_id: String,
        /// Local address.
        ip: IpAddr,
        /// Placement group (the call).
        group: u64,
    },
    /// Where the endpoint's phone is and what was negotiated with it.
    ConfigureEndpoint {
        /// Endpoint.
        endpoint: EndpointId,
        /// The phone's RTP address (`None`: learn it from the first packet).
        rtp: Option<SocketAddr>,
        /// Explicit RTCP address.
        rtcp: Option<SocketAddr>,
        /// Codec to send (and receive).
        codec: Codec,
        /// RFC 4733 telephone-event payload type and clock, when negotiated.
        telephone_event: Option<(u8, u32)>,
        /// Packet time in milliseconds.
        ptime: u32,
    },
    /// Play `items` in order (`repeat`: loop until stopped). Ends with
    /// [`MediaEvent::PlayDone`] carrying `id`; a new `Play` replaces the current one.
    Play {
        /// Endpoint.
        endpoint: EndpointId,
        /// Caller's id for this playback.
        id: u64,
        /// What to play.
        items: Vec<PlayItem>,
        /// A digit from the phone stops the playback (barge-in).
        stop_on_dtmf: bool,
        /// Loop until stopped.
        repeat: bool,
    },
    /// Stop what the endpoint plays.
    StopPlay {
        /// Endpoint.
        endpoint: EndpointId,
    },
    /// Mix the endpoint into `bridge`: every member hears the others.
    Join {
        /// Endpoint.
        endpoint: EndpointId,
        /// Bridge id (the engine's choice).
        bridge: u64,
    },
    /// Record what the endpoint hears (the bridge's mix when joined) to `path`, relative to the
    /// data directory; ends with [`MediaEvent::RecordDone`] carrying `id`.
    Record {
        /// Endpoint.
        endpoint: EndpointId,
        /// Caller's id for this recording.
        id: u64,
        /// File, relative to the data directory (`voicemail/1/1001/msg-....wav`).
        path: String,
        /// Longest recording, seconds.
        max_s: u32,
        /// Stop after this many seconds of silence (0: never).
        silence_s: u32,
        /// A beep first.
        beep: bool,
    },
    /// Stop the endpoint's recording (it ends with [`MediaEvent::RecordDone`], `stopped`).
    StopRecord {
        /// Endpoint.
        endpoint: EndpointId,
    },
    /// Cap the PCM rate an endpoint's codec works at (an Opus leg bridged only to G.711 legs
    /// works at 8 kHz: no 48 kHz coding and no resamplers); `None` lifts the cap.
    LimitRate {
        /// Endpoint.
        endpoint: EndpointId,
        /// Highest PCM rate, Hz.
        hz: Option<u32>,
    },
    /// What one side's phone sends on a relay session is not relayed (or is again): the
    /// called phone of a one-way intercom. Needs no answer.
    MuteSide {
        /// Session.
        session: SessionId,
        /// Side.
        side: Side,
        /// Muted.
        muted: bool,
    },
    /// Mute (the bridge does not hear it) or unmute an endpoint.
    SetMute {
        /// Endpoint.
        endpoint: EndpointId,
        /// Muted.
        muted: bool,
    },
    /// Take the endpoint out of its bridge.
    Leave {
        /// Endpoint.
        endpoint: EndpointId,
    },
    /// Close an endpoint; it answers [`MediaEvent::EndpointClosed`].
    CloseEndpoint {
        /// Endpoint.
        endpoint: EndpointId,
    },
    /// Open a terminating endpoint on the given RTP port (RTCP on the next) with
    /// `IP_FREEBIND`, as another node had it: hold music continued after a take-over
    /// ([`crate::live_calls`]). Answered like `OpenEndpoint`.
    AdoptEndpoint {
        /// The new endpoint.
        endpoint: EndpointId,
        /// SIP Call-ID (for logs).
        call_id: String,
        /// Its RTP address.
        at: SocketAddr,
        /// Placement group (the call).
        group: u64,
    },
    /// Send DTMF `digits` to the endpoint's phone over what it hears (a digit pressed on the
    /// other leg of its bridge, [`crate::dtmf_bridge`]): RFC 4733 events when its phone
    /// negotiated telephone-event, else (or with `inband`) tones in the audio. Needs no answer.
    SendDigits {
        /// Endpoint.
        endpoint: EndpointId,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digits: String,
        /// Tones in the audio even with telephone-event.
        inband: bool,
    },
    /// Start recording a call ([`crate::rec_ctl`]): a relay session through its tap, or an
    /// anchored call on the caller's endpoint. The driver writes the `recordings` row.
    RecordCall {
        /// What to record.
        target: crate::rec_ctl::RecTarget,
        /// Tenant.
        tenant: i64,
        /// The call's Call-ID (the row links to the call record by it).
        call_id: String,
        /// File relative to the data directory.
        path: String,
        /// File format.
        format: crate::rec_ctl::RecFormat,
        /// One party per channel (relayed calls, WAV only).
        stereo: bool,
        /// Both parties hear a beep first.
        beep: bool,
    },
    /// Watch a relayed call's audio for in-band digits too (its recording is on demand):
    /// they come back as [`MediaEvent::RelayDigit`] like RFC 4733 ones. Needs no answer.
    WatchInband {
        /// Session.
        session: SessionId,
    },
    /// Stop a call's recording started by [`MediaCommand::RecordCall`].
    StopRecordCall {
        /// What is recorded.
        target: crate::rec_ctl::RecTarget,
        /// Both parties hear a beep.
        beep: bool,
    },
}

/// News from the media relay.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A session is open: where each side's socket listens.
    Allocated {
        /// Session.
        session: SessionId,
        /// Side A's local RTP address.
        a: SocketAddr,
        /// Side B's local RTP address.
        b: SocketAddr,
    },
    /// No ports were free (or binding failed).
    AllocationFailed {
        /// Session.
        session: SessionId,
        /// Why.
        reason: String,
    },
    /// No RTP for the media timeout while not on hold.
    Timeout {
        /// Session.
        session: SessionId,
    },
    /// A terminating endpoint is open at `local`.
    EndpointOpened {
        /// Endpoint.
        endpoint: EndpointId,
        /// Its RTP address.
        local: SocketAddr,
    },
    /// An endpoint could not be opened.
    EndpointFailed {
        /// Endpoint.
        endpoint: EndpointId,
        /// Why.
        reason: String,
    },
    /// A digit from the endpoint's phone (RFC 4733 or in-band).
    Dtmf {
        /// Endpoint.
        endpoint: EndpointId,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
    },
    /// A playback ended.
    PlayDone {
        /// Endpoint.
        endpoint: EndpointId,
        /// The id given in [`MediaCommand::Play`].
        id: u64,
        /// Stopped (digit, `StopPlay`, replaced) rather than played to the end.
        interrupted: bool,
    },
    /// A recording ended; `reason` is `max-length`, `silence`, `stopped`, `closed`, `disk-full`
    /// or `error` (the last two leave no file).
    RecordDone {
        /// Endpoint.
        endpoint: EndpointId,
        /// The id given in [`MediaCommand::Record`].
        id: u64,
        /// The file, relative to the data directory.
        path: String,
        /// Audio written, milliseconds.
        duration_ms: u64,
        /// Why it ended.
        reason: String,
    },
    /// No RTP from the endpoint's phone for the media timeout.
    EndpointTimeout {
        /// Endpoint.
        endpoint: EndpointId,
    },
    /// An endpoint closed, with what its phone sent and received.
    EndpointClosed {
        /// Endpoint.
        endpoint: EndpointId,
        /// Statistics.
        stats: LegStats,
    },
    /// A session closed, with its final statistics.
    Closed {
        /// Session.
        session: SessionId,
        /// Side A.
        a: LegStats,
        /// Side B.
        b: LegStats,
    },
    /// A digit detected in the endpoint's audio (in-band tones); handled as [`MediaEvent::Dtmf`]
    /// but not regenerated in-band across a bridge (the tone crosses in the audio).
    DtmfInband {
        /// Endpoint.
        endpoint: EndpointId,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
    },
    /// A digit one side of a relay session sent (RFC 4733, seen by the session's tap).
    RelayDigit {
        /// Session.
        session: SessionId,
        /// Who sent it.
        side: Side,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
    },
}

impl MediaEvent {
    /// The terminating endpoint the event is about (`None`: a relay session's event).
    pub fn endpoint(&self) -> Option<EndpointId> {
        match self {
            MediaEvent::EndpointOpened { endpoint, .. }
            | MediaEvent::EndpointFailed { endpoint, .. }
            | MediaEvent::Dtmf { endpoint, .. }
            | MediaEvent::DtmfInband { endpoint, .. }
            | MediaEvent::PlayDone { endpoint, .. }
            | MediaEvent::EndpointTimeout { endpoint }
            | MediaEvent::RecordDone { endpoint, .. }
            | MediaEvent::EndpointClosed { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }
}
