//! Call recording in the driver: applies the recording policy to answered relayed calls, runs
//! the recorder through the relay session's tap, toggles on-demand recordings on
//! [`engine::recording::REC_TOGGLE`], writes the `recordings` rows, and sweeps expired files.
//!
//! The driver only hands over what it learns ([`RecService::answered`], [`RecService::closed`]);
//! everything that waits (database, closing files) runs on this module's own task, so the
//! driver loop never waits for a disk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use engine::features::FeatureAction;
use engine::media::{EndpointId, MediaCommand, MediaEvent, SessionId, Side};
use engine::recording::{Answered, RecDecision, ToggleDetector, decide, file_path};
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
/// How often expired recordings are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Expired recordings deleted per sweep step.
const SWEEP_BATCH: i64 = 500;

enum Msg {
    Answered {
        session: SessionId,
        info: Box<Answered>,
        tap: Arc<RecordTap>,
    },
    Closed {
        session: SessionId,
    },
    Anchored {
        endpoint: EndpointId,
        info: Box<Answered>,
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

/// The driver's handle.
pub(crate) struct RecService {
    /// Bounded by calls: one `Answered` and one `Closed` per relayed call the engine runs.
    tx: mpsc::UnboundedSender<Msg>,
    digits: mpsc::Sender<(SessionId, Side, char)>,
    metrics: Arc<RecorderMetrics>,
    /// `Record` commands for endpoints, carried out by the driver (which owns them). Bounded
    /// by calls: at most one per anchored call.
    commands: std::sync::mpsc::Receiver<MediaCommand>,
}

impl RecService {
    /// Starts the service task on the current runtime.
    pub(crate) fn start(store: Store, data_dir: PathBuf, metrics: Arc<RecorderMetrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (dtx, drx) = mpsc::channel(DIGIT_QUEUE);
        let (ctx, crx) = std::sync::mpsc::channel();
        let task = Task {
            store,
            data_dir,
            metrics: metrics.clone(),
            calls: HashMap::new(),
            commands: ctx,
            anchored: HashMap::new(),
            next_id: ANCHORED_ID_BASE,
        };
        tokio::spawn(task.run(rx, drx));
        RecService {
            tx,
            digits: dtx,
            metrics,
            commands: crx,
        }
    }

    /// A relayed call was answered: watch its media (the tap) and apply the policy.
    pub(crate) fn answered(&self, s: &media::Session, session: SessionId, info: Box<Answered>) {
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
        let _ = self.tx.send(Msg::Answered { session, info, tap });
    }

    /// A call anchored on endpoints was answered (`endpoint`: the caller's).
    pub(crate) fn anchored(&self, endpoint: EndpointId, info: Box<Answered>) {
        let _ = self.tx.send(Msg::Anchored { endpoint, info });
    }

    /// Endpoint commands this module asks the driver to carry out.
    pub(crate) fn take_commands(&self) -> Vec<MediaCommand> {
        self.commands.try_iter().collect()
    }

    /// Takes the end of an anchored call's recording (true: it was ours, not for call control).
    pub(crate) fn media_event(&self, e: &MediaEvent) -> bool {
        match e {
            MediaEvent::RecordDone {
                id,
                path,
                duration_ms,
                reason,
                ..
            } if *id >= ANCHORED_ID_BASE => {
                let _ = self.tx.send(Msg::AnchoredDone {
                    path: path.clone(),
                    duration_ms: *duration_ms,
                    reason: reason.clone(),
                });
                true
            }
            _ => false,
        }
    }

    /// A session closed (call ended): any recording stops.
    pub(crate) fn closed(&self, session: SessionId) {
        let _ = self.tx.send(Msg::Closed { session });
    }
}

struct CallRec {
    info: Box<Answered>,
    tap: Arc<RecordTap>,
    decision: RecDecision,
    toggle: ToggleDetector,
    /// A recording was started and not stopped by the call (it may have ended by itself on
    /// a full disk: the tap then no longer records).
    running: bool,
    part: u32,
}

struct Task {
    store: Store,
    data_dir: PathBuf,
    metrics: Arc<RecorderMetrics>,
    calls: HashMap<SessionId, CallRec>,
    commands: std::sync::mpsc::Sender<MediaCommand>,
    /// Running anchored recordings: path → (row, Call-ID).
    anchored: HashMap<String, (Option<i64>, String)>,
    next_id: u64,
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut digits: mpsc::Receiver<(SessionId, Side, char)>,
    ) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Msg::Answered { session, info, tap }) => self.answered(session, info, tap).await,
                    Some(Msg::Closed { session }) => {
                        if let Some(mut c) = self.calls.remove(&session) {
                            self.stop(&mut c);
                        }
                    }
                    Some(Msg::Anchored { endpoint, info }) => self.anchored_answered(endpoint, info).await,
                    Some(Msg::AnchoredDone { path, duration_ms, reason }) => {
                        self.anchored_done(&path, duration_ms, &reason).await
                    }
                    None => break,
                },
                Some((session, side, d)) = digits.recv() => self.digit(session, side, d).await,
                _ = sweep.tick() => {
                    let n = sweep_expired(&self.store, &self.data_dir).await;
                    if n > 0 {
                        info!(expired = n, "recordings past their retention deleted");
                    }
                }
            }
        }
        for (_, mut c) in std::mem::take(&mut self.calls) {
            self.stop(&mut c);
        }
    }

    async fn answered(&mut self, session: SessionId, info: Box<Answered>, tap: Arc<RecordTap>) {
        let p = &info.parties;
        let decision = match self
            .store
            .recording_policies_of(p.tenant, &p.objects())
            .await
        {
            Ok(pols) => decide(pols),
            Err(e) => {
                // Recording is a policy the tenant set: say loudly that it could not be read.
                error!(call_id = %p.call_id, error = %e, "recording policy unreadable; call not recorded");
                self.metrics.failures.fetch_add(1, Relaxed);
                RecDecision::Never
            }
        };
        // The tenant's record-toggle code (feature-code table; switched off: no toggling).
        let toggle = if decision == RecDecision::Never {
            ToggleDetector::new(None)
        } else {
            match self.store.feature_table(p.tenant).await {
                Ok(t) => ToggleDetector::new(t.code(FeatureAction::RecordToggle)),
                Err(e) => {
                    warn!(call_id = %p.call_id, error = %e, "feature codes unreadable; the default record code applies");
                    ToggleDetector::default()
                }
            }
        };
        let mut c = CallRec {
            info,
            tap,
            decision,
            toggle,
            running: false,
            part: 0,
        };
        if decision == RecDecision::Always {
            self.start(&mut c).await;
        }
        if decision != RecDecision::Never {
            self.calls.insert(session, c);
        }
    }

    /// An anchored call: recorded from the caller's endpoint (what its phone sends plus what
    /// the bridge sends it: both parties) when a policy says `always`. `on_demand` is not
    /// offered on anchored calls (their digits belong to the voice application).
    async fn anchored_answered(&mut self, endpoint: EndpointId, info: Box<Answered>) {
        let p = &info.parties;
        match self
            .store
            .recording_policies_of(p.tenant, &p.objects())
            .await
        {
            Ok(pols) if decide(pols.iter().copied()) == RecDecision::Always => {}
            Ok(_) => return,
            Err(e) => {
                error!(call_id = %p.call_id, error = %e, "recording policy unreadable; call not recorded");
                self.metrics.failures.fetch_add(1, Relaxed);
                return;
            }
        }
        let now = Utc::now();
        let rel = file_path(
            p.tenant,
            (now.year(), now.month(), now.day()),
            &p.call_id,
            1,
            "wav",
        );
        let row = self
            .store
            .recording_started(p.tenant, &p.call_id, &rel, "wav", now)
            .await
            .ok();
        self.next_id += 1;
        self.metrics.active.fetch_add(1, Relaxed);
        self.metrics.started.fetch_add(1, Relaxed);
        self.anchored.insert(rel.clone(), (row, p.call_id.clone()));
        info!(call_id = %p.call_id, path = %rel, "recording started (anchored call)");
        let _ = self.commands.send(MediaCommand::Record {
            endpoint,
            id: self.next_id,
            path: rel,
            max_s: ANCHORED_MAX_S,
            silence_s: 0,
            beep: false,
        });
    }

    async fn anchored_done(&mut self, path: &str, duration_ms: u64, reason: &str) {
        let Some((row, call_id)) = self.anchored.remove(path) else {
            return;
        };
        self.metrics.active.fetch_sub(1, Relaxed);
        let status = match reason {
            "disk-full" => "disk-full",
            "error" => "error",
            _ => "stopped",
        };
        if status != "stopped" {
            self.metrics.failures.fetch_add(1, Relaxed);
            error!(%call_id, reason = status, "ALERT: call recording stopped early; the call goes on");
        }
        if let Some(id) = row {
            let detail = if status == "disk-full" {
                "No space left on device"
            } else if status == "error" {
                "write error"
            } else {
                ""
            };
            if let Err(e) = self
                .store
                .recording_stopped(
                    id,
                    Utc::now(),
                    duration_ms as i64,
                    status,
                    detail,
                    status == "stopped",
                )
                .await
            {
                error!(%call_id, error = %e, "recording row not completed");
            }
        }
    }

    async fn digit(&mut self, session: SessionId, side: Side, d: char) {
        let Some(mut c) = self.calls.remove(&session) else {
            return;
        };
        // `always` recordings cannot be stopped from a phone.
        if c.decision == RecDecision::OnDemand && c.toggle.digit(side, d, Instant::now()) {
            if c.running && c.tap.is_recording() {
                info!(call_id = %c.info.parties.call_id, "on-demand recording stopped");
                self.stop(&mut c);
            } else {
                info!(call_id = %c.info.parties.call_id, "on-demand recording started");
                self.start(&mut c).await;
            }
        }
        self.calls.insert(session, c);
    }

    async fn start(&mut self, c: &mut CallRec) {
        let p = &c.info.parties;
        let settings = self
            .store
            .recording_settings(p.tenant)
            .await
            .unwrap_or_default();
        let format = if settings.format == "opus" {
            Format::OggOpus
        } else {
            Format::Wav
        };
        let layout = if settings.layout == "stereo" {
            Layout::Stereo
        } else {
            Layout::Mono
        };
        let payloads: Vec<(u8, CodecKind)> = c
            .info
            .payloads
            .iter()
            .filter_map(|(pt, name, clock)| Some((*pt, CodecKind::from_rtpmap(name, *clock)?)))
            .collect();
        let mut aligner = AlignerConfig::for_codecs(payloads, layout);
        aligner.telephone_event = c.info.telephone_events();
        c.part += 1;
        let now = Utc::now();
        let rel = file_path(
            p.tenant,
            (now.year(), now.month(), now.day()),
            &p.call_id,
            c.part,
            format.extension(),
        );
        let spec = RecordingSpec {
            path: self.data_dir.join(&rel),
            format,
            aligner,
            queue: DEFAULT_QUEUE,
        };
        let fmt = match format {
            Format::Wav => "wav",
            Format::OggOpus => "opus",
        };
        match c.tap.start_recording(spec) {
            Ok(rec) => {
                let row = match self
                    .store
                    .recording_started(p.tenant, &p.call_id, &rel, fmt, now)
                    .await
                {
                    Ok(id) => Some(id),
                    Err(e) => {
                        error!(call_id = %p.call_id, error = %e, "recording row not written");
                        None
                    }
                };
                info!(call_id = %p.call_id, path = %rel, "recording started");
                c.running = true;
                tokio::spawn(finish(self.store.clone(), p.call_id.clone(), row, rec));
            }
            Err(e) => {
                let status = if is_disk_full(&e) {
                    "disk-full"
                } else {
                    "error"
                };
                self.metrics.failures.fetch_add(1, Relaxed);
                error!(call_id = %p.call_id, path = %rel, error = %e, status, "ALERT: call recording could not start; the call goes on unrecorded");
                if let Ok(id) = self
                    .store
                    .recording_started(p.tenant, &p.call_id, &rel, fmt, now)
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

    /// Stops the running recording: the tap stops copying and the recorder thread closes
    /// the file; [`finish`] completes the row.
    fn stop(&mut self, c: &mut CallRec) {
        c.tap.stop_recording();
        c.running = false;
    }
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
