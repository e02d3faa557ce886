//! Call recording in the driver: the recording I/O of what call control decides
//! ([`engine::rec_ctl`]). For a relayed call it puts a tap on the relay session (its RFC 4733
//! digits go back to call control as [`MediaEvent::RelayDigit`]) and runs the recorder through
//! it; for a call anchored on endpoints it has the caller's endpoint record. It writes the
//! `recordings` rows, and sweeps expired files.
//!
//! The driver only hands over what it is told ([`RecService::answered`],
//! [`RecService::command`], [`RecService::closed`]); everything that waits (database, closing
//! files) runs on this module's own task, so the driver loop never waits for a disk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chrono::Utc;
use engine::Input;
use engine::media::{MediaCommand, MediaEvent, SessionId, Side};
use engine::rec_ctl::{RecFormat, RecTarget};
use engine::recording::Answered;
use media::codec::CodecKind;
use media::recorder::{
    AlignerConfig, DEFAULT_QUEUE, Format, Layout, RecordTap, RecorderMetrics, Recording,
    RecordingSpec, StopReason, is_disk_full,
};
use store::Store;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Digits queued from the relay to this module at most (the rest are dropped).
const DIGIT_QUEUE: usize = 1024;
/// Messages queued from the driver to this module's task at most. A call answered or an
/// anchored recording started holds a slot for its end from the start (so an end is never
/// lost to a full queue); when none is left, the call is not recordable and said so. The task
/// only waits on the database for recording rows, so this fills only while the database
/// stalls under a high call rate.
const MSG_QUEUE: usize = 65_536;
/// How often expired recordings are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Expired recordings deleted per sweep step.
const SWEEP_BATCH: i64 = 500;

/// A recording call control asked for.
struct Start {
    tenant: i64,
    call_id: String,
    path: String,
    format: RecFormat,
    stereo: bool,
}

enum Msg {
    Answered {
        session: SessionId,
        info: Box<Answered>,
        tap: Arc<RecordTap>,
    },
    Closed {
        session: SessionId,
    },
    Record {
        session: SessionId,
        start: Box<Start>,
    },
    Stop {
        session: SessionId,
    },
    WatchInband {
        session: SessionId,
    },
    AnchoredStarted {
        start: Box<Start>,
    },
    AnchoredDone {
        path: String,
        duration_ms: u64,
        reason: String,
    },
}

/// Longest recording of a call anchored on endpoints (the endpoint recorder needs a bound).
const ANCHORED_MAX_S: u32 = 8 * 3600;
/// Record ids of anchored recordings: apart from the voice applications' own.
const ANCHORED_ID_BASE: u64 = 1 << 62;

/// An answered relayed call the task knows.
struct LiveCall {
    /// Negotiated codecs (for the beep).
    codecs: Vec<(u8, CodecKind)>,
    /// The queue slot its `Closed` goes in.
    close: mpsc::OwnedPermit<Msg>,
}

/// The driver's handle.
pub(crate) struct RecService {
    tx: mpsc::Sender<Msg>,
    digits: mpsc::Sender<(SessionId, Side, char)>,
    metrics: Arc<RecorderMetrics>,
    next_id: u64,
    /// Each answered relayed call the task knows, until it closes.
    calls: HashMap<SessionId, LiveCall>,
    /// Each running anchored recording (by the file its endpoint writes): the slot of its end.
    anchored_ends: HashMap<String, mpsc::OwnedPermit<Msg>>,
    /// Messages refused because the queue was full (logged at the first and every 1,000th).
    refused: u64,
}

impl RecService {
    /// Starts the service task on the current runtime; digits seen by the taps go to call
    /// control through `engine_tx`.
    pub(crate) fn start(
        store: Store,
        data_dir: PathBuf,
        metrics: Arc<RecorderMetrics>,
        engine_tx: crate::driver::Back,
    ) -> Self {
        let (tx, rx) = mpsc::channel(MSG_QUEUE);
        let (dtx, drx) = mpsc::channel(DIGIT_QUEUE);
        let task = Task {
            store,
            data_dir,
            metrics: metrics.clone(),
            calls: HashMap::new(),
            anchored: HashMap::new(),
            engine_tx,
            inband: None,
        };
        tokio::spawn(task.run(rx, (dtx.clone(), drx)));
        Self::with_queue(tx, dtx, metrics)
    }

    /// The handle on a task's queue `tx` (its digit queue `digits`).
    fn with_queue(
        tx: mpsc::Sender<Msg>,
        digits: mpsc::Sender<(SessionId, Side, char)>,
        metrics: Arc<RecorderMetrics>,
    ) -> Self {
        RecService {
            tx,
            digits,
            metrics,
            next_id: ANCHORED_ID_BASE,
            calls: HashMap::new(),
            anchored_ends: HashMap::new(),
            refused: 0,
        }
    }

    /// Two slots: one for a start message now, one kept for its end. `None` (said in the log)
    /// when the queue is full.
    fn two_slots(
        &mut self,
        what: &str,
    ) -> Option<(mpsc::OwnedPermit<Msg>, mpsc::OwnedPermit<Msg>)> {
        match (
            self.tx.clone().try_reserve_owned(),
            self.tx.clone().try_reserve_owned(),
        ) {
            (Ok(a), Ok(b)) => Some((a, b)),
            _ => {
                self.full(what);
                None
            }
        }
    }

    /// A message that could not be queued.
    fn full(&mut self, what: &str) {
        if self.refused.is_multiple_of(1000) {
            warn!(
                refused_so_far = self.refused + 1,
                "recording service queue full (database slow?): {what}"
            );
        }
        self.refused += 1;
    }

    /// Queues a command that may be lost under overload (a recording not started or stopped).
    fn send_or_say(&mut self, m: Msg, what: &str) {
        if self.tx.try_send(m).is_err() {
            self.full(what);
        }
    }

    /// A relayed call was answered: tap its media (digits to call control; recordings).
    pub(crate) fn answered(&mut self, s: &media::Session, session: SessionId, info: Box<Answered>) {
        let codecs = codecs_of(&info);
        let digits = self.digits.clone();
        let tap = RecordTap::new(
            self.metrics.clone(),
            Some(Box::new(move |leg, d| {
                let side = match leg {
                    media::Leg::A => Side::A,
                    media::Leg::B => Side::B,
                };
                // Full: the digit is lost, never the relay's time.
                let _ = digits.try_send((session, side, d));
            })),
        );
        // Each phone sends events with the type from the other's SDP; both are in the list.
        let te = info.telephone_events();
        for leg in [media::Leg::A, media::Leg::B] {
            tap.set_telephone_event(leg, te.first().copied());
        }
        s.set_tap(Some(tap.clone()));
        // The tap carries the call's digits whatever happens; without a slot for its end the
        // task does not learn of the call, which then cannot be recorded.
        if let Some((now, end)) = self.two_slots("a call answered now cannot be recorded") {
            now.send(Msg::Answered { session, info, tap });
            self.calls.insert(session, LiveCall { codecs, close: end });
        }
    }

    /// Carries out [`MediaCommand::RecordCall`] / [`MediaCommand::StopRecordCall`]; returns
    /// the endpoint commands an anchored call's recording needs (for the driver to run).
    pub(crate) fn command(&mut self, cmd: MediaCommand) -> Vec<MediaCommand> {
        match cmd {
            MediaCommand::RecordCall {
                target,
                tenant,
                call_id,
                path,
                format,
                stereo,
                beep,
            } => {
                let start = Box::new(Start {
                    tenant,
                    call_id,
                    path,
                    format,
                    stereo,
                });
                match target {
                    RecTarget::Session(session) => {
                        self.send_or_say(
                            Msg::Record { session, start },
                            "a recording asked for was not started",
                        );
                        Vec::new()
                    }
                    RecTarget::Endpoints { caller, .. } => {
                        let Some((now, end)) =
                            self.two_slots("a recording asked for was not started")
                        else {
                            return Vec::new();
                        };
                        self.next_id += 1;
                        let rec = MediaCommand::Record {
                            endpoint: caller,
                            id: self.next_id,
                            path: anchored_file(&start.path, start.format),
                            max_s: ANCHORED_MAX_S,
                            silence_s: 0,
                            beep,
                        };
                        self.metrics.active.fetch_add(1, Relaxed);
                        self.metrics.started.fetch_add(1, Relaxed);
                        self.anchored_ends
                            .insert(anchored_file(&start.path, start.format), end);
                        now.send(Msg::AnchoredStarted { start });
                        vec![rec]
                    }
                }
            }
            MediaCommand::StopRecordCall { target, .. } => match target {
                RecTarget::Session(session) => {
                    self.send_or_say(
                        Msg::Stop { session },
                        "a recording asked to stop goes on until the call ends",
                    );
                    Vec::new()
                }
                RecTarget::Endpoints { caller, .. } => {
                    vec![MediaCommand::StopRecord { endpoint: caller }]
                }
            },
            _ => Vec::new(),
        }
    }

    /// Takes the end of an anchored call's recording (true: it was ours, not for call control).
    pub(crate) fn media_event(&mut self, e: &MediaEvent) -> bool {
        match e {
            MediaEvent::RecordDone {
                id,
                path,
                duration_ms,
                reason,
                ..
            } if *id >= ANCHORED_ID_BASE => {
                // Its slot was kept when it started.
                if let Some(slot) = self.anchored_ends.remove(path) {
                    slot.send(Msg::AnchoredDone {
                        path: path.clone(),
                        duration_ms: *duration_ms,
                        reason: reason.clone(),
                    });
                }
                true
            }
            _ => false,
        }
    }

    /// Watch a relayed call's audio for in-band digits (its recording is on demand).
    pub(crate) fn watch_inband(&mut self, session: SessionId) {
        self.send_or_say(
            Msg::WatchInband { session },
            "in-band digits of a call are not watched",
        );
    }

    /// The beep a [`MediaCommand::RecordCall`] / [`MediaCommand::StopRecordCall`] on a relayed
    /// call asks for: its session and the beep in its codecs (the driver hands it to the relay).
    pub(crate) fn relay_beep(
        &self,
        cmd: &MediaCommand,
    ) -> Option<(SessionId, Arc<media::relay_beep::BeepSpec>)> {
        let (MediaCommand::RecordCall {
            target: RecTarget::Session(session),
            beep: true,
            ..
        }
        | MediaCommand::StopRecordCall {
            target: RecTarget::Session(session),
            beep: true,
        }) = cmd
        else {
            return None;
        };
        let spec = media::relay_beep::BeepSpec::new(&self.calls.get(session)?.codecs);
        (!spec.is_empty()).then_some((*session, spec))
    }

    /// A session closed (call ended): any recording stops.
    pub(crate) fn closed(&mut self, session: SessionId) {
        // Its slot was kept when it was answered.
        if let Some(c) = self.calls.remove(&session) {
            c.close.send(Msg::Closed { session });
        }
    }
}

/// The negotiated audio payload types of a relayed call and their codecs.
fn codecs_of(info: &Answered) -> Vec<(u8, CodecKind)> {
    info.payloads
        .iter()
        .filter_map(|(pt, name, clock)| Some((*pt, CodecKind::from_rtpmap(name, *clock)?)))
        .collect()
}

/// The file an endpoint records an anchored call into: the endpoint writes WAV, so an Ogg
/// Opus recording is written as `PATH.wav` first and converted when it ends.
fn anchored_file(path: &str, format: RecFormat) -> String {
    match format {
        RecFormat::Wav => path.to_string(),
        RecFormat::Opus => format!("{path}.wav"),
    }
}

/// Both ends of the queue of digits the taps (and the in-band worker) see.
type DigitQueue = (
    mpsc::Sender<(SessionId, Side, char)>,
    mpsc::Receiver<(SessionId, Side, char)>,
);

struct CallRec {
    info: Box<Answered>,
    tap: Arc<RecordTap>,
}

struct Task {
    store: Store,
    data_dir: PathBuf,
    metrics: Arc<RecorderMetrics>,
    calls: HashMap<SessionId, CallRec>,
    /// Running anchored recordings: file the endpoint writes → (row, Call-ID, final path,
    /// format).
    anchored: HashMap<String, (Option<i64>, String, String, RecFormat)>,
    engine_tx: crate::driver::Back,
    /// The in-band digit thread, started with the first on-demand relayed call.
    inband: Option<media::tap_inband::InbandWorker>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, (digits_tx, mut digits): DigitQueue) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Msg::Answered { session, info, tap }) => {
                        self.calls.insert(session, CallRec { info, tap });
                    }
                    Some(Msg::Closed { session }) => {
                        if let Some(c) = self.calls.remove(&session) {
                            c.tap.stop_recording();
                        }
                    }
                    Some(Msg::Record { session, start }) => self.start(session, *start).await,
                    Some(Msg::Stop { session }) => {
                        if let Some(c) = self.calls.get(&session) {
                            c.tap.stop_recording();
                        }
                    }
                    Some(Msg::WatchInband { session }) => self.watch_inband(session, &digits_tx),
                    Some(Msg::AnchoredStarted { start }) => self.anchored_started(*start).await,
                    Some(Msg::AnchoredDone { path, duration_ms, reason }) => {
                        self.anchored_done(&path, duration_ms, &reason).await
                    }
                    None => break,
                },
                Some((session, side, digit)) = digits.recv() => {
                    let ev = MediaEvent::RelayDigit { session, side, digit };
                    let _ = self.engine_tx.send(Input::Media(ev)).await;
                }
                _ = sweep.tick() => {
                    let n = sweep_expired(&self.store, &self.data_dir).await;
                    if n > 0 {
                        info!(expired = n, "recordings past their retention deleted");
                    }
                }
            }
        }
        for (_, c) in std::mem::take(&mut self.calls) {
            c.tap.stop_recording();
        }
    }

    /// Copies a relayed call's audio to the in-band digit thread; its digits join the taps'.
    fn watch_inband(&mut self, session: SessionId, digits: &mpsc::Sender<(SessionId, Side, char)>) {
        let Some(c) = self.calls.get(&session) else {
            return;
        };
        if self.inband.is_none() {
            match media::tap_inband::InbandWorker::start() {
                Ok(w) => self.inband = Some(w),
                Err(e) => {
                    warn!(error = %e, "in-band digit thread not started: in-band *1 not watched");
                    return;
                }
            }
        }
        let Some(worker) = &self.inband else {
            return;
        };
        let codecs = codecs_of(&c.info);
        let digits = digits.clone();
        let sink: media::tap_inband::InbandSink = Arc::new(move |leg, d| {
            let side = match leg {
                media::Leg::A => Side::A,
                media::Leg::B => Side::B,
            };
            let _ = digits.try_send((session, side, d));
        });
        c.tap.watch_inband(worker.watch(session.0, codecs, sink));
    }

    /// An anchored call's recording began on its caller's endpoint: its row.
    async fn anchored_started(&mut self, s: Start) {
        let row = match self
            .store
            .recording_started(s.tenant, &s.call_id, &s.path, s.format.as_str(), Utc::now())
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                error!(call_id = %s.call_id, error = %e, "recording row not written");
                None
            }
        };
        info!(call_id = %s.call_id, path = %s.path, "recording started (anchored call)");
        self.anchored.insert(
            anchored_file(&s.path, s.format),
            (row, s.call_id, s.path, s.format),
        );
    }

    async fn anchored_done(&mut self, path: &str, duration_ms: u64, reason: &str) {
        let Some((row, call_id, final_path, format)) = self.anchored.remove(path) else {
            return;
        };
        self.metrics.active.fetch_sub(1, Relaxed);
        let mut status = match reason {
            "disk-full" => "disk-full",
            "error" => "error",
            _ => "stopped",
        };
        let mut detail = match status {
            "disk-full" => "No space left on device".to_string(),
            "error" => "write error".to_string(),
            _ => String::new(),
        };
        if status == "stopped" && format == RecFormat::Opus {
            let (wav, opus) = (self.data_dir.join(path), self.data_dir.join(&final_path));
            let r =
                tokio::task::spawn_blocking(move || crate::rec_convert::wav_to_opus(&wav, &opus))
                    .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    status = if is_disk_full(&e) {
                        "disk-full"
                    } else {
                        "error"
                    };
                    detail = format!("converting to Ogg Opus: {e}");
                }
                Err(e) => {
                    status = "error";
                    detail = format!("converting to Ogg Opus: {e}");
                }
            }
        }
        if status != "stopped" {
            self.metrics.failures.fetch_add(1, Relaxed);
            error!(%call_id, reason = status, %detail, "ALERT: call recording stopped early; the call goes on");
        }
        if let Some(id) = row
            && let Err(e) = self
                .store
                .recording_stopped(
                    id,
                    Utc::now(),
                    duration_ms as i64,
                    status,
                    &detail,
                    status == "stopped",
                )
                .await
        {
            error!(%call_id, error = %e, "recording row not completed");
        }
    }

    /// Starts recording a relayed call through its tap.
    async fn start(&mut self, session: SessionId, s: Start) {
        let Some(c) = self.calls.get(&session) else {
            warn!(call_id = %s.call_id, "recording asked for a call the relay no longer has");
            return;
        };
        let format = match s.format {
            RecFormat::Wav => Format::Wav,
            RecFormat::Opus => Format::OggOpus,
        };
        let layout = if s.stereo {
            Layout::Stereo
        } else {
            Layout::Mono
        };
        let payloads = codecs_of(&c.info);
        let mut aligner = AlignerConfig::for_codecs(payloads, layout);
        aligner.telephone_event = c.info.telephone_events();
        let now = Utc::now();
        let spec = RecordingSpec {
            path: self.data_dir.join(&s.path),
            format,
            aligner,
            queue: DEFAULT_QUEUE,
        };
        let fmt = s.format.as_str();
        match c.tap.start_recording(spec) {
            Ok(rec) => {
                let row = match self
                    .store
                    .recording_started(s.tenant, &s.call_id, &s.path, fmt, now)
                    .await
                {
                    Ok(id) => Some(id),
                    Err(e) => {
                        error!(call_id = %s.call_id, error = %e, "recording row not written");
                        None
                    }
                };
                info!(call_id = %s.call_id, path = %s.path, "recording started");
                tokio::spawn(finish(self.store.clone(), s.call_id, row, rec));
            }
            Err(e) => {
                let status = if is_disk_full(&e) {
                    "disk-full"
                } else {
                    "error"
                };
                self.metrics.failures.fetch_add(1, Relaxed);
                error!(call_id = %s.call_id, path = %s.path, error = %e, status, "ALERT: call recording could not start; the call goes on unrecorded");
                if let Ok(id) = self
                    .store
                    .recording_started(s.tenant, &s.call_id, &s.path, fmt, now)
                    .await
                {
                    let _ = self
                        .store
                        .recording_stopped(id, now, 0, status, &e.to_string(), false)
                        .await;
                }
            }
        }
    }
}

/// Recording policies and settings of every tenant, for call control's snapshot.
pub async fn load_config(store: &Store) -> anyhow::Result<engine::rec_ctl::RecConfig> {
    let mut c = engine::rec_ctl::RecConfig::default();
    for (t, r) in store.all_recording_policies().await? {
        c.policies.insert((t, r.kind, r.name), r.policy);
    }
    for (t, s) in store.all_recording_settings().await? {
        let format = if s.format == "opus" {
            RecFormat::Opus
        } else {
            RecFormat::Wav
        };
        let stereo = s.layout == "stereo";
        c.tenants
            .insert(t, engine::rec_ctl::RecTenant { format, stereo });
    }
    Ok(c)
}

/// Waits for a recorder to end (stopped by the call, or by itself on a full disk or a write
/// error) and completes its row.
async fn finish(store: Store, call_id: String, row: Option<i64>, rec: Recording) {
    let r = rec.finished().await;
    if r.reason != StopReason::Stopped {
        error!(%call_id, reason = r.reason.as_str(), error = ?r.error, "ALERT: call recording stopped early; the call goes on");
    }
    if r.dropped > 0 {
        warn!(%call_id, dropped = r.dropped, "the recorder fell behind and dropped packets");
    }
    let Some(id) = row else {
        return;
    };
    if let Err(e) = store
        .recording_stopped(
            id,
            Utc::now(),
            r.duration_ms as i64,
            r.reason.as_str(),
            r.error.as_deref().unwrap_or(""),
            r.file_kept,
        )
        .await
    {
        error!(%call_id, error = %e, "recording row not completed");
    }
}

/// Deletes the files of recordings past their tenant's retention and marks them expired
/// (path cleared, row kept for the call history); answers how many. Used by the PBX's
/// hourly sweep and by `denwa recording sweep`.
pub async fn sweep_expired(store: &Store, data_dir: &std::path::Path) -> usize {
    let mut n = 0;
    loop {
        let rows = match store.expired_recordings(Utc::now(), SWEEP_BATCH).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "recording retention sweep failed");
                return n;
            }
        };
        let mut progress = 0;
        for r in &rows {
            // Only files under recordings/ are ever deleted, whatever a row says.
            if r.path.starts_with("recordings/") && !r.path.contains("..") {
                match std::fs::remove_file(data_dir.join(&r.path)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        warn!(path = %r.path, error = %e, "expired recording not deleted");
                        continue;
                    }
                }
            }
            if store.mark_recording_expired(r.id).await.is_ok() {
                progress += 1;
            }
        }
        n += progress;
        if progress == 0 || (rows.len() as i64) < SWEEP_BATCH {
            return n;
        }
    }
}

/// Appends the recording counters to a `/metrics` page.
pub(crate) fn render_metrics(m: &RecorderMetrics, out: &mut String) {
    crate::metrics::write_simple(
        out,
        &[
            (
                "denwa_recordings_active",
                "gauge",
                "Call recordings running.",
                m.active.load(Relaxed),
            ),
            (
                "denwa_recording_packets_dropped_total",
                "counter",
                "RTP packets a call recorder dropped because it fell behind (the call was not slowed).",
                m.dropped.load(Relaxed),
            ),
            (
                "denwa_recording_failures_total",
                "counter",
                "Call recordings that failed to start or stopped early (full disk, write error, unreadable policy).",
                m.failures.load(Relaxed),
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::recording::RecSettings;

    /// A scratch directory of this test's own (removed at the end).
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record_anchored(n: u64) -> MediaCommand {
        MediaCommand::RecordCall {
            target: RecTarget::Endpoints {
                caller: engine::media::EndpointId(2 * n),
                callee: engine::media::EndpointId(2 * n + 1),
            },
            tenant: 1,
            call_id: format!("call-{n}"),
            path: format!("recordings/1/call-{n}.wav"),
            format: RecFormat::Wav,
            stereo: false,
            beep: false,
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_new_recordings_but_never_loses_an_end() {
        // A queue of 4 nobody drains (the task stalled on its database): each recording takes
        // a slot for its start and keeps one for its end.
        let (tx, mut rx) = mpsc::channel(4);
        let (dtx, _drx) = mpsc::channel(1);
        let metrics = Arc::new(RecorderMetrics::default());
        let mut rec = RecService::with_queue(tx, dtx, metrics.clone());
        assert_eq!(rec.command(record_anchored(1)).len(), 1);
        assert_eq!(rec.command(record_anchored(2)).len(), 1);
        // Full: the third is not started (no endpoint recording, not counted), and said so.
        assert!(rec.command(record_anchored(3)).is_empty());
        assert_eq!(metrics.started.load(Relaxed), 2);
        assert_eq!(rec.refused, 1);
        // The first one's end still goes in, in its kept slot.
        let done = MediaEvent::RecordDone {
            endpoint: engine::media::EndpointId(2),
            id: ANCHORED_ID_BASE + 1,
            path: "recordings/1/call-1.wav".into(),
            duration_ms: 1500,
            reason: "stopped".into(),
        };
        assert!(rec.media_event(&done));
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(match m {
                Msg::AnchoredStarted { start } => format!("started {}", start.call_id),
                Msg::AnchoredDone { path, .. } => format!("done {path}"),
                _ => "other".into(),
            });
        }
        assert_eq!(
            got,
            [
                "started call-1",
                "started call-2",
                "done recordings/1/call-1.wav"
            ]
        );
        // The slots freed by reading let the next one start; an end arriving twice is ignored.
        assert_eq!(rec.command(record_anchored(4)).len(), 1);
        assert!(rec.media_event(&done));
        assert!(matches!(rx.try_recv(), Ok(Msg::AnchoredStarted { .. })));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_sweep_deletes_expired_files_only_under_recordings() {
        let dir = Scratch(std::env::temp_dir().join(format!(
            "dnwrec-sweep-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        )));
        let data = dir.0.join("data");
        std::fs::create_dir_all(data.join("recordings/1/2026/01/01")).expect("dirs");
        let s = Store::open(
            dir.0.join("t.db").to_str().expect("path"),
            store::OpenOptions::default(),
        )
        .await
        .expect("store");
        let t = s.default_tenant().await.expect("tenant").id;
        let old = Utc::now() - chrono::Duration::days(10);
        let mut ids = Vec::new();
        for (call, rel) in [
            ("a", "recordings/1/2026/01/01/a.wav"),
            ("b", "recordings/../outside.wav"),
            ("c", "recordings/1/2026/01/01/c.wav"),
        ] {
            let id = s
                .recording_started(t, call, rel, "wav", old)
                .await
                .expect("row");
            s.recording_stopped(id, old, 1000, "stopped", "", true)
                .await
                .expect("stop");
            ids.push(id);
        }
        std::fs::write(data.join("recordings/1/2026/01/01/a.wav"), b"RIFF").expect("file");
        std::fs::write(data.join("outside.wav"), b"keep me").expect("file");
        // "c" has no file any more (deleted by hand): still expired.
        // Retention 0 keeps everything.
        assert_eq!(sweep_expired(&s, &data).await, 0);
        s.set_recording_settings(
            t,
            &RecSettings {
                retention_days: 7,
                ..RecSettings::default()
            },
        )
        .await
        .expect("settings");
        assert_eq!(sweep_expired(&s, &data).await, 3);
        assert!(!data.join("recordings/1/2026/01/01/a.wav").exists());
        assert!(
            data.join("outside.wav").exists(),
            "never outside recordings/"
        );
        for id in ids {
            let r = s.recording(t, id).await.expect("get").expect("row");
            assert_eq!((r.status.as_str(), r.path.as_str()), ("expired", ""));
        }
        assert_eq!(sweep_expired(&s, &data).await, 0);
    }
}
