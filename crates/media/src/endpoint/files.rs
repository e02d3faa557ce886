//! Prompt files: read and decoded off the media threads by a small loader pool, converted to the
//! rate a leg wants, and kept in a cache bounded by bytes (least recently used out first), so
//! 2,000 legs playing one prompt share one `Arc` of it. A cached file is re-read when its size or
//! modification time changes (an administrator replaced the prompt).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::rate;
use crate::wav;

/// Largest file the loader reads (a 16-bit mono WAV this size is over 50 min at 8 kHz).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Decoded PCM or why not.
pub type LoadResult = Result<Arc<[i16]>, String>;

/// Called (on a loader thread) with the result of a load.
pub type Reply = Box<dyn FnOnce(LoadResult) + Send>;

/// Loader counters.
#[derive(Debug, Default)]
pub struct LoaderCounters {
    /// Files decoded (cache misses).
    pub loaded: AtomicU64,
    /// Loads answered from the cache.
    pub hits: AtomicU64,
    /// Bytes of PCM cached.
    pub bytes: AtomicU64,
}

struct Entry {
    pcm: Arc<[i16]>,
    modified: Option<SystemTime>,
    len: u64,
    used: u64,
}

struct Cache {
    map: HashMap<(PathBuf, u32), Entry>,
    bytes: usize,
    limit: usize,
    clock: u64,
}

impl Cache {
    fn get(
        &mut self,
        key: &(PathBuf, u32),
        modified: Option<SystemTime>,
        len: u64,
    ) -> Option<Arc<[i16]>> {
        self.clock += 1;
        let e = self.map.get_mut(key)?;
        if e.modified != modified || e.len != len {
            return None;
        }
        e.used = self.clock;
        Some(e.pcm.clone())
    }

    fn put(
        &mut self,
        key: (PathBuf, u32),
        pcm: Arc<[i16]>,
        modified: Option<SystemTime>,
        len: u64,
    ) {
        let size = pcm.len() * 2;
        if size > self.limit {
            return;
        }
        if let Some(old) = self.map.remove(&key) {
            self.bytes -= old.pcm.len() * 2;
        }
        while self.bytes + size > self.limit {
            let Some(victim) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.map.remove(&victim) {
                self.bytes -= e.pcm.len() * 2;
            }
        }
        self.clock += 1;
        self.bytes += size;
        self.map.insert(
            key,
            Entry {
                pcm,
                modified,
                len,
                used: self.clock,
            },
        );
    }
}

struct Job {
    path: PathBuf,
    rate: u32,
    reply: Reply,
}

/// The loader pool and its cache.
#[derive(Clone)]
pub struct Loader {
    tx: SyncSender<Job>,
    counters: Arc<LoaderCounters>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").finish_non_exhaustive()
    }
}

impl Loader {
    /// Starts `threads` loader threads with a queue of `queue` jobs and a cache of
    /// `cache_bytes`. The threads end when the last `Loader` clone is dropped.
    pub fn start(threads: usize, queue: usize, cache_bytes: usize) -> std::io::Result<Loader> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(LoaderCounters::default());
        let cache = Arc::new(Mutex::new(Cache {
            map: HashMap::new(),
            bytes: 0,
            limit: cache_bytes,
            clock: 0,
        }));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let cache = cache.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("media-loader-{i}"))
                .spawn(move || run(&rx, &cache, &counters))?;
        }
        Ok(Loader { tx, counters })
    }

    /// Counters.
    pub fn counters(&self) -> &LoaderCounters {
        &self.counters
    }

    /// Queues a load of `path` at `rate` Hz; `reply` is called with the result. A full queue
    /// answers at once with an error.
    pub fn load(&self, path: PathBuf, rate: u32, reply: Reply) {
        match self.tx.try_send(Job { path, rate, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => (job.reply)(Err("file loader busy".to_string())),
            Err(TrySendError::Disconnected(job)) => {
                (job.reply)(Err("file loader stopped".to_string()))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(rx: &Mutex<Receiver<Job>>, cache: &Mutex<Cache>, counters: &LoaderCounters) {
    loop {
        let job = match lock(rx).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let result = load(&job.path, job.rate, cache, counters);
        if let Err(reason) = &result {
            tracing::warn!(path = %job.path.display(), %reason, "cannot play file");
        }
        (job.reply)(result);
    }
}

fn load(path: &Path, rate: u32, cache: &Mutex<Cache>, counters: &LoaderCounters) -> LoadResult {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot open: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("file too large ({} bytes)", meta.len()));
    }
    let key = (path.to_path_buf(), rate);
    let modified = meta.modified().ok();
    if let Some(pcm) = lock(cache).get(&key, modified, meta.len()) {
        counters.hits.fetch_add(1, Relaxed);
        return Ok(pcm);
    }
    let w = wav::read_file(path).map_err(|e| e.to_string())?;
    if w.sample_rate < 1000 || w.sample_rate > 192_000 {
        return Err(format!("unsupported sample rate {} Hz", w.sample_rate));
    }
    if w.samples.is_empty() {
        return Err("no audio in the file".to_string());
    }
    let pcm: Arc<[i16]> = rate::convert_all(&w.samples, w.sample_rate, rate).into();
    counters.loaded.fetch_add(1, Relaxed);
    let mut c = lock(cache);
    c.put(key, pcm.clone(), modified, meta.len());
    counters.bytes.store(c.bytes as u64, Relaxed);
    Ok(pcm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load_sync(l: &Loader, path: &Path, rate: u32) -> LoadResult {
        let (tx, rx) = mpsc::channel();
        l.load(
            path.to_path_buf(),
            rate,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv_timeout(Duration::from_secs(10))
            .expect("loader answers")
    }

    #[test]
    fn shares_one_copy_converts_and_reports_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.wav");
        let sig = crate::tone::sine(400.0, Duration::from_millis(500), 16000, 8000);
        wav::write_file(&a, 16000, &sig).expect("write");
        let l = Loader::start(2, 8, 1 << 20).expect("loader");
        let x = load_sync(&l, &a, 8000).expect("loads");
        let y = load_sync(&l, &a, 8000).expect("loads");
        assert!(
            Arc::ptr_eq(&x, &y),
            "the second play shares the cached copy"
        );
        assert_eq!(x.len(), 4000);
        assert_eq!(l.counters().loaded.load(Relaxed), 1);
        assert_eq!(l.counters().hits.load(Relaxed), 1);
        // Another rate is another entry.
        assert_eq!(load_sync(&l, &a, 16000).expect("loads").len(), 8000);
        // Missing and corrupt files are errors, not panics.
        let e = load_sync(&l, &dir.path().join("none.wav"), 8000).expect_err("missing");
        assert!(e.contains("cannot open"), "{e}");
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"RIFF....WAVEjunk").expect("write");
        assert!(load_sync(&l, &bad, 8000).is_err());
    }

    #[test]
    fn cache_is_bounded_by_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 8,000 bytes of PCM each; the cache holds two.
        let l = Loader::start(1, 8, 17_000).expect("loader");
        for i in 0..5 {
            let p = dir.path().join(format!("{i}.wav"));
            wav::write_file(&p, 8000, &vec![100i16; 4000]).expect("write");
            load_sync(&l, &p, 8000).expect("loads");
            assert!(l.counters().bytes.load(Relaxed) <= 17_000);
        }
        assert_eq!(l.counters().bytes.load(Relaxed), 16_000);
    }
}
