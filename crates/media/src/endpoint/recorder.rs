//! The recording writer: a thread that turns [`RecordOp`]s into WAV files. Each recording is
//! written to `PATH.part` and renamed to `PATH` when it completes, so a reader never sees half
//! a file. A write error (disk full or any other) deletes the partial file, tells the endpoint
//! to stop feeding it, and reports `DiskFull`/`Error`; nothing panics.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use super::core::RecordOp;
use super::{EndpointId, EngineEvent, EventSink, RecordReason};

/// Something a WAV can be written to, its header patched in and its end cut off.
pub trait Sink: Write + Seek + Send {
    /// Cuts the file to `len` bytes (after a flush).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl Sink for BufWriter<File> {
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.flush()?;
        self.get_ref().set_len(len)
    }
}

/// Opens the file a recording is written to (a test passes one that fails).
pub type Opener = fn(&Path) -> io::Result<Box<dyn Sink>>;

fn open_file(p: &Path) -> io::Result<Box<dyn Sink>> {
    Ok(Box::new(BufWriter::with_capacity(
        32 * 1024,
        File::create(p)?,
    )))
}

/// Writer counters.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Chunks dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events that did not fit the event channel.
    pub events_dropped: AtomicU64,
}

/// The handle to the writer thread.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: SyncSender<RecordOp>,
    counters: Arc<WriterCounters>,
}

struct Open {
    /// `None` once closed (or never opened).
    sink: Option<Box<dyn Sink>>,
    tmp: PathBuf,
    path: PathBuf,
    ep: EndpointId,
    id: u64,
    rate: u32,
    samples: u64,
    failed: Arc<AtomicBool>,
}

/// `PATH.part` for `PATH`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

impl Writer {
    /// Starts the writer thread with a queue of `queue` operations.
    pub fn start(queue: usize, events: EventSink) -> io::Result<Writer> {
        Writer::start_with(queue, events, open_file)
    }

    /// As [`Writer::start`], opening files with `opener`.
    pub fn start_with(queue: usize, events: EventSink, opener: Opener) -> io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<RecordOp>(queue.max(4));
        let counters = Arc::new(WriterCounters::default());
        let c = counters.clone();
        std::thread::Builder::new()
            .name("media-writer".to_string())
            .spawn(move || {
                let mut open: HashMap<u64, Open> = HashMap::new();
                while let Ok(op) = rx.recv() {
                    handle(op, &mut open, &events, opener, &c);
                }
                // The engine is gone: complete what was open.
                for (_, o) in open.drain() {
                    finish(o, RecordReason::Closed, &events, &c);
                }
            })?;
        Ok(Writer { tx, counters })
    }

    /// Counters.
    pub fn counters(&self) -> &WriterCounters {
        &self.counters
    }

    /// Queues an operation. Audio chunks are dropped (and counted) when the queue is full;
    /// starts and finishes wait for room, so a recording is never left open.
    pub fn send(&self, op: RecordOp) {
        match self.tx.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(op @ RecordOp::Data { .. })) => {
                drop(op);
                self.counters.dropped.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(op)) => {
                let _ = self.tx.send(op);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn emit(events: &EventSink, ev: EngineEvent, c: &WriterCounters) {
    if events.try_send(ev).is_err() {
        c.events_dropped.fetch_add(1, Relaxed);
    }
}

fn handle(
    op: RecordOp,
    open: &mut HashMap<u64, Open>,
    events: &EventSink,
    opener: Opener,
    c: &WriterCounters,
) {
    match op {
        RecordOp::Start {
            key,
            ep,
            id,
            path,
            rate,
            failed,
        } => {
            let tmp = part_path(&path);
            let started = opener(&tmp).and_then(|mut sink| {
                sink.write_all(&header(rate, 0))?;
                Ok(sink)
            });
            let mut o = Open {
                sink: None,
                tmp,
                path,
                ep,
                id,
                rate,
                samples: 0,
                failed,
            };
            match started {
                Ok(sink) => {
                    o.sink = Some(sink);
                    open.insert(key, o);
                }
                Err(e) => fail(o, &e, events, c),
            }
        }
        RecordOp::Data { key, pcm } => {
            let Some(o) = open.get_mut(&key) else {
                return;
            };
            let mut bytes = Vec::with_capacity(pcm.len() * 2);
            for s in &pcm {
                bytes.extend_from_slice(&s.to_le_bytes());
            }
            let room = (u64::from(u32::MAX) - 44) / 2;
            if o.samples + pcm.len() as u64 > room {
                return;
            }
            let written = match o.sink.as_mut() {
                Some(sink) => sink.write_all(&bytes),
                None => Ok(()),
            };
            if let Err(e) = written {
                if let Some(o) = open.remove(&key) {
                    fail(o, &e, events, c);
                }
                return;
            }
            o.samples += pcm.len() as u64;
        }
        RecordOp::Finish { key, reason, trim } => {
            if let Some(mut o) = open.remove(&key) {
                o.samples = o.samples.saturating_sub(trim as u64);
                finish(o, reason, events, c);
            }
        }
    }
}

fn finish(mut o: Open, reason: RecordReason, events: &EventSink, c: &WriterCounters) {
    let done = (|| -> io::Result<()> {
        if let Some(sink) = o.sink.as_mut() {
            sink.flush()?;
            sink.truncate(44 + 2 * o.samples)?;
            sink.seek(SeekFrom::Start(0))?;
            sink.write_all(&header(o.rate, o.samples))?;
            sink.flush()?;
        }
        // Close before renaming.
        o.sink = None;
        std::fs::rename(&o.tmp, &o.path)
    })();
    if let Err(e) = done {
        fail(o, &e, events, c);
        return;
    }
    done_event(o, reason, events, c);
}

fn fail(mut o: Open, e: &io::Error, events: &EventSink, c: &WriterCounters) {
    o.failed.store(true, Relaxed);
    o.sink = None;
    let _ = std::fs::remove_file(&o.tmp);
    // ENOSPC and EDQUOT: the disk (or the quota) is full.
    let full =
        matches!(e.raw_os_error(), Some(28) | Some(122)) || e.kind() == io::ErrorKind::StorageFull;
    tracing::warn!(path = %o.path.display(), error = %e, "recording stopped");
    let reason = if full {
        RecordReason::DiskFull
    } else {
        RecordReason::Error
    };
    done_event(o, reason, events, c);
}

fn done_event(o: Open, reason: RecordReason, events: &EventSink, c: &WriterCounters) {
    let duration = Duration::from_secs_f64(o.samples as f64 / f64::from(o.rate.max(1)));
    let ev = EngineEvent::RecordDone {
        ep: o.ep,
        id: o.id,
        path: o.path,
        duration,
        reason,
    };
    emit(events, ev, c);
}

/// A 44-byte WAV header for `samples` 16-bit mono samples at `rate`.
fn header(rate: u32, samples: u64) -> [u8; 44] {
    let data = (samples * 2).min(u64::from(u32::MAX) - 36) as u32;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(key: u64, path: &Path, failed: &Arc<AtomicBool>) -> RecordOp {
        RecordOp::Start {
            key,
            ep: EndpointId(7),
            id: 3,
            path: path.to_path_buf(),
            rate: 8000,
            failed: failed.clone(),
        }
    }

    #[test]
    fn writes_renames_and_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("msg.wav");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let w = Writer::start(16, tx).expect("writer");
        let failed = Arc::new(AtomicBool::new(false));
        w.send(start(1, &path, &failed));
        w.send(RecordOp::Data {
            key: 1,
            pcm: vec![5; 8000],
        });
        w.send(RecordOp::Finish {
            key: 1,
            reason: RecordReason::MaxLength,
            trim: 0,
        });
        let ev = rx.blocking_recv().expect("event");
        assert_eq!(
            ev,
            EngineEvent::RecordDone {
                ep: EndpointId(7),
                id: 3,
                path: path.clone(),
                duration: Duration::from_secs(1),
                reason: RecordReason::MaxLength
            }
        );
        let wav = crate::wav::read_file(&path).expect("complete WAV");
        assert_eq!((wav.sample_rate, wav.samples.len()), (8000, 8000));
        assert!(!part_path(&path).exists());
    }

    #[test]
    fn trailing_silence_is_cut_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vm.wav");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let w = Writer::start(16, tx).expect("writer");
        let failed = Arc::new(AtomicBool::new(false));
        w.send(start(1, &path, &failed));
        w.send(RecordOp::Data {
            key: 1,
            pcm: vec![500; 8000],
        });
        w.send(RecordOp::Data {
            key: 1,
            pcm: vec![0; 8000],
        });
        w.send(RecordOp::Finish {
            key: 1,
            reason: RecordReason::Silence,
            trim: 6400,
        });
        let ev = rx.blocking_recv().expect("event");
        assert!(
            matches!(ev, EngineEvent::RecordDone { duration, reason: RecordReason::Silence, .. } if duration == Duration::from_millis(1200)),
            "{ev:?}"
        );
        assert_eq!(std::fs::metadata(&path).expect("file").len(), 44 + 2 * 9600);
        let wav = crate::wav::read_file(&path).expect("WAV");
        assert_eq!(wav.samples.len(), 9600);
        assert!(wav.samples[..8000].iter().all(|&s| s == 500));
    }

    /// Writes fail as on a full disk after the header.
    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 >= 44 {
                return Err(io::Error::from_raw_os_error(28));
            }
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Sink for Full {
        fn truncate(&mut self, _: u64) -> io::Result<()> {
            Ok(())
        }
    }
    impl Seek for Full {
        fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn disk_full_stops_deletes_and_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("msg.wav");
        // A real partial file exists, so deleting it is observable.
        std::fs::write(part_path(&path), b"partial").expect("write");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let w = Writer::start_with(16, tx, |_| Ok(Box::new(Full(0)))).expect("writer");
        let failed = Arc::new(AtomicBool::new(false));
        w.send(start(1, &path, &failed));
        w.send(RecordOp::Data {
            key: 1,
            pcm: vec![5; 800],
        });
        let ev = rx.blocking_recv().expect("event");
        assert!(
            matches!(
                ev,
                EngineEvent::RecordDone {
                    reason: RecordReason::DiskFull,
                    ..
                }
            ),
            "{ev:?}"
        );
        assert!(failed.load(Relaxed), "the endpoint is told to stop");
        assert!(!part_path(&path).exists() && !path.exists());
        // A finish after the failure is ignored (no second event).
        w.send(RecordOp::Finish {
            key: 1,
            reason: RecordReason::Stopped,
            trim: 0,
        });
        drop(w);
        assert!(rx.blocking_recv().is_none());
    }
}
