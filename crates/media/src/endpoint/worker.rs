//! The I/O shell: worker threads, each a mio loop over its endpoints' sockets with a 20 ms tick
//! on absolute deadlines (start + k × 20 ms, so the pace never drifts). A tick that starts
//! later than the late threshold is counted; a worker that fell behind runs at most
//! [`MAX_CATCH_UP`] ticks back to back and skips (and counts) the rest, so it never bursts more
//! than that many frames at a phone.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;

use super::core::{CoreConfig, EndpointCore, ntp_of};
use super::files::{LoadResult, Loader};
use super::group::Group;
use super::recorder::Writer;
use super::{
    BridgeId, DetectorFactory, DigitMode, Direction, EndpointId, EndpointStats, EngineConfig,
    EngineMetrics, Error, EventSink, FRAME_MS, Negotiated, PlayRequest, RecordRequest,
};
use crate::ports::PortPool;

/// Ticks run back to back at most when a worker fell behind.
pub const MAX_CATCH_UP: u32 = 3;
const WAKER: Token = Token(usize::MAX);
const BUF_LEN: usize = 2048;
/// Datagrams read from one socket per wake before the others get a turn.
const READ_BATCH: usize = 32;

#[derive(Debug, Default)]
struct Counters {
    endpoints: AtomicU64,
    packets_rx: AtomicU64,
    packets_tx: AtomicU64,
    underruns_closed: AtomicU64,
    late_ticks: AtomicU64,
    skipped_ticks: AtomicU64,
    events_dropped: AtomicU64,
    commands_dropped: AtomicU64,
    bridge_splits: AtomicU64,
    bridge_moves: AtomicU64,
    tick_busy_us: AtomicU64,
    ticks: AtomicU64,
}

/// The engine handle: cheap to clone, shareable between tasks.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    ports: Arc<PortPool>,
    events: EventSink,
    counters: Arc<Counters>,
    workers: Mutex<Option<Arc<[Arc<WorkerHandle>]>>>,
    /// Loader and writer, started with the first worker.
    io: Mutex<Option<(Loader, Writer)>>,
    open: AtomicUsize,
    serial: AtomicU64,
    /// Bridge → (worker of its first member, members): members on another worker cannot mix.
    bridges: Mutex<HashMap<BridgeId, (usize, usize)>>,
}

impl MediaEngine {
    /// An engine binding ports from `ports` and reporting to `events`. Threads start with the
    /// first [`MediaEngine::open`].
    pub fn new(config: EngineConfig, ports: Arc<PortPool>, events: EventSink) -> MediaEngine {
        MediaEngine {
            inner: Arc::new(Inner {
                config,
                ports,
                events,
                counters: Arc::new(Counters::default()),
                workers: Mutex::new(None),
                io: Mutex::new(None),
                open: AtomicUsize::new(0),
                serial: AtomicU64::new(1),
                bridges: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Worker threads (or, before the first endpoint, how many will start).
    pub fn workers(&self) -> usize {
        match self.inner.config.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get() / 2)
                .unwrap_or(1)
                .max(1),
            n => n,
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> EngineMetrics {
        let c = &self.inner.counters;
        let mut m = EngineMetrics {
            endpoints: c.endpoints.load(Relaxed),
            packets_rx: c.packets_rx.load(Relaxed),
            packets_tx: c.packets_tx.load(Relaxed),
            underruns: c.underruns_closed.load(Relaxed),
            late_ticks: c.late_ticks.load(Relaxed),
            skipped_ticks: c.skipped_ticks.load(Relaxed),
            events_dropped: c.events_dropped.load(Relaxed),
            commands_dropped: c.commands_dropped.load(Relaxed),
            bridge_splits: c.bridge_splits.load(Relaxed),
            bridge_moves: c.bridge_moves.load(Relaxed),
            tick_busy_us: c.tick_busy_us.load(Relaxed),
            ticks: c.ticks.load(Relaxed),
            ..EngineMetrics::default()
        };
        if let Some(w) = &*lock(&self.inner.workers) {
            m.underruns += w
                .iter()
                .map(|w| w.live_underruns.load(Relaxed))
                .sum::<u64>();
        }
        if let Some((loader, writer)) = &*lock(&self.inner.io) {
            let l = loader.counters();
            m.files_loaded = l.loaded.load(Relaxed);
            m.cache_hits = l.hits.load(Relaxed);
            m.cache_bytes = l.bytes.load(Relaxed);
            let w = writer.counters();
            m.record_chunks_dropped = w.dropped.load(Relaxed);
            m.events_dropped += w.events_dropped.load(Relaxed);
        }
        m
    }

    fn worker(&self, group: u64) -> Result<(usize, Arc<WorkerHandle>), Error> {
        let mut guard = lock(&self.inner.workers);
        let workers = match &*guard {
            Some(w) => w.clone(),
            None => {
                let cfg = &self.inner.config;
                let loader =
                    Loader::start(2, cfg.loader_queue, cfg.cache_bytes).map_err(Error::Worker)?;
                let writer = Writer::start(cfg.writer_queue, self.inner.events.clone())
                    .map_err(Error::Worker)?;
                *lock(&self.inner.io) = Some((loader.clone(), writer.clone()));
                let w: Arc<[Arc<WorkerHandle>]> = (0..self.workers())
                    .map(|i| {
                        WorkerHandle::start(i, &self.inner, loader.clone(), writer.clone())
                            .map(Arc::new)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Error::Worker)?
                    .into();
                *guard = Some(w.clone());
                w
            }
        };
        drop(guard);
        let i = (group % workers.len() as u64) as usize;
        Ok((i, workers[i].clone()))
    }

    /// Binds an RTP/RTCP pair on `ip` and starts a terminating leg on the worker `group` picks
    /// (legs that will share a bridge pass the same group).
    pub fn open(
        &self,
        id: EndpointId,
        ip: IpAddr,
        group: u64,
        call_id: &str,
    ) -> Result<Endpoint, Error> {
        self.open_with(id, group, call_id, || self.inner.ports.bind_pair(ip))
    }

    /// Like [`MediaEngine::open`], on the given RTP port (RTCP on the next) with
    /// `IP_FREEBIND`: the endpoint another node had (hold music continued after a take-over,
    /// `engine::live_calls`), bound before the address arrives.
    pub fn open_at(
        &self,
        id: EndpointId,
        rtp: SocketAddr,
        group: u64,
        call_id: &str,
    ) -> Result<Endpoint, Error> {
        self.open_with(id, group, call_id, || crate::ports::bind_pair_at(rtp))
    }

    fn open_with(
        &self,
        id: EndpointId,
        group: u64,
        call_id: &str,
        bind: impl FnOnce() -> Result<(std::net::UdpSocket, std::net::UdpSocket), crate::relay::Error>,
    ) -> Result<Endpoint, Error> {
        let max = self.inner.config.max_endpoints;
        if self
            .inner
            .open
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_err()
        {
            return Err(Error::Full(max));
        }
        let guard = OpenGuard(&self.inner);
        let (worker_index, worker) = self.worker(group)?;
        let (rtp, rtcp) = bind()?;
        let local = rtp.local_addr().map_err(Error::Worker)?;
        let local_rtcp = rtcp.local_addr().map_err(Error::Worker)?;
        let rtp = UdpSocket::from_std(rtp);
        let rtcp = UdpSocket::from_std(rtcp);
        let cfg = &self.inner.config;
        let now = Instant::now();
        let core = EndpointCore::new(
            id,
            local,
            local_rtcp,
            CoreConfig {
                media_timeout: cfg.media_timeout,
                relatch_packets: cfg.relatch_packets,
                silence_energy: cfg.silence_energy,
            },
            &mut rand::thread_rng(),
            now,
            ntp_of(SystemTime::now()),
        );
        let serial = self.inner.serial.fetch_add(1, Relaxed);
        worker.send_blocking(Cmd::Add {
            serial,
            core: Box::new(core),
            sockets: Box::new([rtp, rtcp]),
        });
        std::mem::forget(guard);
        self.inner.counters.endpoints.fetch_add(1, Relaxed);
        tracing::debug!(call_id, ep = id.0, %local, "media endpoint opened");
        Ok(Endpoint {
            id,
            local,
            local_rtcp,
            worker,
            serial,
            engine: self.inner.clone(),
            worker_index: AtomicUsize::new(worker_index),
            bridge: Mutex::new(None),
            closed: false,
        })
    }
}

/// Gives back the reserved endpoint count when `open` fails half-way.
struct OpenGuard<'a>(&'a Inner);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// One terminating leg. Commands go to its worker; dropping it closes the leg.
#[derive(Debug)]
pub struct Endpoint {
    id: EndpointId,
    local: SocketAddr,
    local_rtcp: SocketAddr,
    worker: Arc<WorkerHandle>,
    /// The endpoint's identity on its worker (never reused).
    serial: u64,
    engine: Arc<Inner>,
    /// The worker it runs on now (it moves to a bridge's worker when it joins one); commands
    /// still go to the worker it was opened on, which forwards them after a move.
    worker_index: AtomicUsize,
    /// The bridge joined, for the engine's check that a bridge stays on one worker.
    bridge: Mutex<Option<BridgeId>>,
    closed: bool,
}

enum Ctl {
    Remote(SocketAddr, Option<SocketAddr>),
    Codec(Negotiated),
    PcmRateLimit(Option<u32>),
    Play(PlayRequest),
    StopPlay,
    Record(RecordRequest),
    StopRecord,
    Join(BridgeId),
    Leave,
    Mute(bool),
    Inband(bool),
    Digits(String, DigitMode),
    Direction(Direction),
    Stats(oneshot::Sender<EndpointStats>),
    /// A file load the endpoint waited for on the worker it left.
    Loaded(u64, LoadResult),
}

impl Endpoint {
    /// The endpoint's id.
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// Our RTP address (for SDP).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Our RTCP address.
    pub fn local_rtcp(&self) -> SocketAddr {
        self.local_rtcp
    }

    fn ctl(&self, c: Ctl) {
        self.worker.send(Cmd::Ctl {
            serial: self.serial,
            c,
        });
    }

    /// The phone's addresses from SDP (latching as in the relay; 0.0.0.0 / port 0 ignored).
    pub fn set_remote(&self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        self.ctl(Ctl::Remote(rtp, rtcp));
    }

    /// What SDP negotiated.
    pub fn set_codec(&self, neg: Negotiated) {
        self.ctl(Ctl::Codec(neg));
    }

    /// Caps an Opus leg's PCM rate (`Some(8000)` for an Opus leg bridged only to G.711 legs;
    /// see [`super::core::EndpointCore::set_pcm_rate_limit`]).
    pub fn set_pcm_rate_limit(&self, limit: Option<u32>) {
        self.ctl(Ctl::PcmRateLimit(limit));
    }

    /// Plays to this leg (ending the current play as interrupted).
    pub fn play(&self, req: PlayRequest) {
        self.ctl(Ctl::Play(req));
    }

    /// Stops the play.
    pub fn stop_play(&self) {
        self.ctl(Ctl::StopPlay);
    }

    /// Records what this leg receives (and its bridge's mix when joined).
    pub fn record(&self, req: RecordRequest) {
        self.ctl(Ctl::Record(req));
    }

    /// Stops recording.
    pub fn stop_record(&self) {
        self.ctl(Ctl::StopRecord);
    }

    /// Joins a bridge: hears every other member, not itself. Members mix on one worker: legs
    /// opened with the same `group` are there already; one opened elsewhere (a caller who
    /// comes to a conference room from an IVR) is moved to the bridge's worker first, with its
    /// sockets, state and queued commands (no re-INVITE, nothing lost).
    pub fn join(&self, bridge: BridgeId) {
        self.leave_bridge();
        let mut bridges = lock(&self.engine.bridges);
        let here = self.worker_index.load(Relaxed);
        let entry = bridges.entry(bridge).or_insert((here, 0));
        if entry.0 != here {
            let to = lock(&self.engine.workers)
                .as_ref()
                .and_then(|w| w.get(entry.0).cloned());
            match to {
                Some(to) => {
                    self.engine.counters.bridge_moves.fetch_add(1, Relaxed);
                    tracing::debug!(
                        ep = self.id.0,
                        bridge = bridge.0,
                        from = here,
                        to = entry.0,
                        "media endpoint moves to its bridge's worker"
                    );
                    self.worker.send_blocking(Cmd::Move {
                        serial: self.serial,
                        to: Arc::downgrade(&to),
                    });
                    self.worker_index.store(entry.0, Relaxed);
                }
                None => {
                    self.engine.counters.bridge_splits.fetch_add(1, Relaxed);
                    tracing::warn!(
                        ep = self.id.0,
                        bridge = bridge.0,
                        "bridge members on different media workers do not hear each other"
                    );
                }
            }
        }
        entry.1 += 1;
        drop(bridges);
        *lock(&self.bridge) = Some(bridge);
        self.ctl(Ctl::Join(bridge));
    }

    /// Leaves its bridge.
    pub fn leave(&self) {
        self.leave_bridge();
        self.ctl(Ctl::Leave);
    }

    /// Detects DTMF tones in what the phone sends (for phones without RFC 4733), with the
    /// engine's [`EngineConfig::inband_detector`]; a no-op when it has none.
    pub fn set_inband_dtmf(&self, on: bool) {
        self.ctl(Ctl::Inband(on));
    }

    /// Sends DTMF digits to the phone over what it hears (a digit pressed on the other leg of
    /// its bridge): RFC 4733 with telephone-event negotiated and `mode` `Rfc4733`, else in-band.
    pub fn send_digits(&self, digits: &str, mode: DigitMode) {
        self.ctl(Ctl::Digits(digits.to_string(), mode));
    }

    /// Hold and resume: what SDP says about the direction, from our side. Not sending keeps
    /// time running (plays go on, timestamps advance); not receiving suspends the media timeout.
    pub fn set_direction(&self, direction: Direction) {
        self.ctl(Ctl::Direction(direction));
    }

    /// A muted member is not heard by the others.
    pub fn set_mute(&self, muted: bool) {
        self.ctl(Ctl::Mute(muted));
    }

    /// The leg's statistics now (default values if the worker is gone or the queue full).
    pub async fn stats(&self) -> EndpointStats {
        let (tx, rx) = oneshot::channel();
        self.ctl(Ctl::Stats(tx));
        rx.await.unwrap_or_default()
    }

    /// Closes the leg (play ends interrupted, a recording completes as `Closed`) and returns
    /// its final statistics once the ports are released.
    pub async fn close(mut self) -> EndpointStats {
        self.closed = true;
        let (tx, rx) = oneshot::channel();
        self.worker.send_blocking(Cmd::Close {
            serial: self.serial,
            done: Some(tx),
        });
        self.released();
        rx.await.unwrap_or_default()
    }

    fn leave_bridge(&self) {
        let Some(b) = lock(&self.bridge).take() else {
            return;
        };
        let mut bridges = lock(&self.engine.bridges);
        if let Some(e) = bridges.get_mut(&b) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                bridges.remove(&b);
            }
        }
    }

    fn released(&self) {
        self.leave_bridge();
        self.engine.open.fetch_sub(1, Relaxed);
        self.engine.counters.endpoints.fetch_sub(1, Relaxed);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if !self.closed {
            self.worker.send_blocking(Cmd::Close {
                serial: self.serial,
                done: None,
            });
            self.released();
        }
    }
}

enum Cmd {
    Add {
        serial: u64,
        core: Box<EndpointCore>,
        sockets: Box<[UdpSocket; 2]>,
    },
    Ctl {
        serial: u64,
        c: Ctl,
    },
    Close {
        serial: u64,
        done: Option<oneshot::Sender<EndpointStats>>,
    },
    /// Hand the endpoint (state and sockets) to another worker; later commands for it are
    /// forwarded there in order.
    Move {
        serial: u64,
        to: Weak<WorkerHandle>,
    },
    Shutdown,
}

#[derive(Debug)]
struct WorkerHandle {
    tx: SyncSender<Cmd>,
    waker: Arc<Waker>,
    counters: Arc<Counters>,
    live_underruns: Arc<AtomicU64>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

type Loaded = ((PathBuf, u32), LoadResult);
/// An endpoint waiting for a file: (slot, serial, load ticket).
type Waiter = (usize, u64, u64);

impl WorkerHandle {
    fn start(
        index: usize,
        inner: &Inner,
        loader: Loader,
        writer: Writer,
    ) -> io::Result<WorkerHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::sync_channel(inner.config.command_queue.max(16));
        let (loaded_tx, loaded_rx) = mpsc::channel();
        let live_underruns = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            poll,
            rx,
            loaded_rx,
            loaded_tx,
            waker: waker.clone(),
            group: Group::new(),
            by_serial: HashMap::new(),
            forward: HashMap::new(),
            sockets: Vec::new(),
            serials: Vec::new(),
            loads: HashMap::new(),
            loader,
            writer,
            events: inner.events.clone(),
            counters: inner.counters.clone(),
            live_underruns: live_underruns.clone(),
            late_threshold: inner.config.late_threshold,
            detector: inner.config.inband_detector,
            buf: vec![0; BUF_LEN],
            pending: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("media-{index}"))
            .spawn(move || worker.run())?;
        Ok(WorkerHandle {
            tx,
            waker,
            counters: inner.counters.clone(),
            live_underruns,
        })
    }

    fn send(&self, cmd: Cmd) {
        match self.tx.try_send(cmd) {
            Ok(()) => self.wake(),
            Err(TrySendError::Full(_)) => {
                self.counters.commands_dropped.fetch_add(1, Relaxed);
                tracing::warn!("media worker command queue full; command dropped");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// For what must not be lost (adding and closing legs): waits for room.
    fn send_blocking(&self, cmd: Cmd) {
        if self.tx.send(cmd).is_ok() {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "cannot wake a media worker");
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.send_blocking(Cmd::Shutdown);
    }
}

/// What a worker does when it wakes at `now` with a tick due at `deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Due {
    /// Ticks to run now (1 on time, up to [`MAX_CATCH_UP`] when behind).
    run: u32,
    /// Ticks dropped because the worker is further behind than that.
    skipped: u32,
    /// The first of them started later than the threshold.
    late: bool,
    /// The next deadline: still on the grid start + k × period.
    next: Instant,
}

/// The tick schedule: `None` before the deadline.
fn schedule(
    deadline: Instant,
    now: Instant,
    period: Duration,
    late_after: Duration,
) -> Option<Due> {
    let behind = now.checked_duration_since(deadline)?;
    let due =
        1 + (behind.as_nanos() / period.as_nanos().max(1)).min(u128::from(u32::MAX - 1)) as u32;
    let run = due.min(MAX_CATCH_UP);
    Some(Due {
        run,
        skipped: due - run,
        late: behind > late_after,
        next: deadline + period * due,
    })
}

struct Worker {
    poll: Poll,
    rx: Receiver<Cmd>,
    loaded_rx: Receiver<Loaded>,
    loaded_tx: mpsc::Sender<Loaded>,
    waker: Arc<Waker>,
    group: Group,
    /// Endpoint serial → its slot (socket tokens are `slot * 2 + socket`).
    by_serial: HashMap<u64, usize>,
    /// Endpoints moved to another worker: their commands go on there (until closed).
    forward: HashMap<u64, Weak<WorkerHandle>>,
    sockets: Vec<Option<Box<[UdpSocket; 2]>>>,
    serials: Vec<u64>,
    /// Loads in flight: who waits for each (slot, serial, ticket).
    loads: HashMap<(PathBuf, u32), Vec<Waiter>>,
    loader: Loader,
    writer: Writer,
    events: EventSink,
    counters: Arc<Counters>,
    live_underruns: Arc<AtomicU64>,
    late_threshold: Duration,
    detector: Option<DetectorFactory>,
    buf: Vec<u8>,
    /// Sockets left with datagrams after a full batch: read again before waiting.
    pending: Vec<(usize, usize)>,
}

impl Worker {
    fn run(mut self) {
        let period = Duration::from_millis(u64::from(FRAME_MS));
        let mut events = Events::with_capacity(1024);
        let mut deadline = Instant::now() + period;
        let mut ticks: u64 = 0;
        loop {
            let timeout = if self.pending.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media worker: epoll_wait failed");
                    std::thread::sleep(Duration::from_millis(5));
                }
                continue;
            }
            for (slot, sock) in std::mem::take(&mut self.pending) {
                self.read(slot, sock);
            }
            for ev in events.iter() {
                let Token(t) = ev.token();
                if t == WAKER.0 {
                    continue;
                }
                self.read(t / 2, t % 2);
            }
            if self.commands() {
                return;
            }
            self.loaded();
            let now = Instant::now();
            let Some(due) = schedule(deadline, now, period, self.late_threshold) else {
                continue;
            };
            if due.late {
                self.counters.late_ticks.fetch_add(1, Relaxed);
            }
            if due.skipped > 0 {
                self.counters
                    .skipped_ticks
                    .fetch_add(u64::from(due.skipped), Relaxed);
            }
            let started = Instant::now();
            for _ in 0..due.run {
                self.group.tick(now);
                self.flush_all();
            }
            deadline = due.next;
            let run = due.run;
            let before = ticks;
            ticks += u64::from(run);
            let busy = started.elapsed();
            self.counters
                .tick_busy_us
                .fetch_add(busy.as_micros() as u64, Relaxed);
            self.counters.ticks.fetch_add(u64::from(run), Relaxed);
            if before / 25 != ticks / 25 {
                let u: u64 = self
                    .group
                    .iter_mut()
                    .map(|(_, c)| c.stats().underruns)
                    .sum();
                self.live_underruns.store(u, Relaxed);
            }
        }
    }

    fn read(&mut self, slot: usize, sock: usize) {
        for _ in 0..READ_BATCH {
            let Some(Some(socks)) = self.sockets.get(slot) else {
                return;
            };
            let (n, from) = match socks[sock].recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error about an earlier send: that datagram only; read on.
                Err(_) => continue,
            };
            self.counters.packets_rx.fetch_add(1, Relaxed);
            if n >= BUF_LEN {
                continue;
            }
            let Some(core) = self.group.get_mut(slot) else {
                return;
            };
            let now = Instant::now();
            if sock == 0 {
                core.on_rtp(&self.buf[..n], from, now);
            } else {
                core.on_rtcp(&self.buf[..n], from, now);
            }
        }
        // More may be queued: come back after the others had their turn.
        self.pending.push((slot, sock));
    }

    /// Applies queued commands; true on shutdown.
    fn commands(&mut self) -> bool {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            };
            match cmd {
                Cmd::Add {
                    serial,
                    core,
                    mut sockets,
                } => {
                    self.forward.remove(&serial);
                    let slot = self.group.insert(*core);
                    let registry = self.poll.registry();
                    let registered = sockets.iter_mut().enumerate().try_for_each(|(j, s)| {
                        registry.register(s, Token(slot * 2 + j), Interest::READABLE)
                    });
                    if let Err(e) = registered {
                        tracing::error!(error = %e, "media worker cannot watch an endpoint's sockets");
                        for s in sockets.iter_mut() {
                            let _ = registry.deregister(s);
                        }
                        self.group.remove(slot);
                        continue;
                    }
                    if self.sockets.len() <= slot {
                        self.sockets.resize_with(slot + 1, || None);
                        self.serials.resize(slot + 1, 0);
                    }
                    self.sockets[slot] = Some(sockets);
                    self.serials[slot] = serial;
                    self.by_serial.insert(serial, slot);
                    // Datagrams may have come before the endpoint was here.
                    self.read(slot, 0);
                    self.read(slot, 1);
                }
                Cmd::Ctl { serial, c } => {
                    let Some(&slot) = self.by_serial.get(&serial) else {
                        if let Some(to) = self.forward.get(&serial).and_then(Weak::upgrade) {
                            to.send(Cmd::Ctl { serial, c });
                        }
                        continue;
                    };
                    match c {
                        Ctl::Join(b) => self.group.join(slot, b),
                        Ctl::Leave => self.group.leave(slot),
                        c => {
                            let Some(core) = self.group.get_mut(slot) else {
                                continue;
                            };
                            let now = Instant::now();
                            match c {
                                Ctl::Remote(rtp, rtcp) => core.set_remote(rtp, rtcp, now),
                                Ctl::Codec(n) => core.set_codec(n),
                                Ctl::PcmRateLimit(r) => core.set_pcm_rate_limit(r),
                                Ctl::Play(r) => core.play(r),
                                Ctl::StopPlay => core.stop_play(),
                                Ctl::Record(r) => core.record(r),
                                Ctl::StopRecord => core.stop_record(),
                                Ctl::Mute(m) => core.muted = m,
                                Ctl::Direction(d) => core.set_direction(d, now),
                                Ctl::Stats(tx) => {
                                    let _ = tx.send(core.stats());
                                }
                                Ctl::Inband(on) => {
                                    core.set_detector(self.detector.filter(|_| on).map(|f| f()))
                                }
                                Ctl::Loaded(ticket, result) => core.file_loaded(ticket, result),
                                Ctl::Digits(d, mode) => {
                                    core.send_digits(&d, mode);
                                }
                                Ctl::Join(_) | Ctl::Leave => {}
                            }
                        }
                    }
                    self.flush(slot);
                }
                Cmd::Close { serial, done } => {
                    let Some(slot) = self.by_serial.remove(&serial) else {
                        match self.forward.remove(&serial).and_then(|w| w.upgrade()) {
                            Some(to) => to.send_blocking(Cmd::Close { serial, done }),
                            None => {
                                if let Some(done) = done {
                                    let _ = done.send(EndpointStats::default());
                                }
                            }
                        }
                        continue;
                    };
                    let stats = match self.group.get_mut(slot) {
                        Some(core) => core.close(),
                        None => EndpointStats::default(),
                    };
                    self.flush(slot);
                    self.group.remove(slot);
                    self.counters
                        .underruns_closed
                        .fetch_add(stats.underruns, Relaxed);
                    if let Some(Some(mut socks)) = self.sockets.get_mut(slot).map(Option::take) {
                        for s in socks.iter_mut() {
                            let _ = self.poll.registry().deregister(s);
                        }
                    }
                    self.serials[slot] = 0;
                    for waiters in self.loads.values_mut() {
                        waiters.retain(|w| w.0 != slot);
                    }
                    if let Some(done) = done {
                        let _ = done.send(stats);
                    }
                }
                Cmd::Move { serial, to } => self.move_out(serial, to),
                Cmd::Shutdown => return true,
            }
        }
    }

    /// Hands endpoint `serial` to the worker `to`: out of its bridge here, sockets no longer
    /// watched here, core and sockets sent on; what was queued for it after the move follows
    /// through [`Worker::forward`]. File loads it waits for are forwarded when they come.
    fn move_out(&mut self, serial: u64, to: Weak<WorkerHandle>) {
        let Some(slot) = self.by_serial.get(&serial).copied() else {
            // Moved on already: pass the move along.
            if let Some(next) = self.forward.get(&serial).and_then(Weak::upgrade) {
                next.send_blocking(Cmd::Move { serial, to });
            }
            return;
        };
        let Some(target) = to.upgrade() else {
            return;
        };
        self.flush(slot);
        let Some(core) = self.group.remove(slot) else {
            return;
        };
        let Some(mut sockets) = self.sockets.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for s in sockets.iter_mut() {
            let _ = self.poll.registry().deregister(s);
        }
        self.by_serial.remove(&serial);
        self.serials[slot] = 0;
        self.forward.insert(serial, to);
        target.send_blocking(Cmd::Add {
            serial,
            core: Box::new(core),
            sockets,
        });
    }

    fn loaded(&mut self) {
        while let Ok((key, result)) = self.loaded_rx.try_recv() {
            let Some(waiters) = self.loads.remove(&key) else {
                continue;
            };
            for (slot, serial, ticket) in waiters {
                if self.serials.get(slot) != Some(&serial) {
                    if let Some(to) = self.forward.get(&serial).and_then(Weak::upgrade) {
                        to.send(Cmd::Ctl {
                            serial,
                            c: Ctl::Loaded(ticket, result.clone()),
                        });
                    }
                    continue;
                }
                if let Some(core) = self.group.get_mut(slot) {
                    core.file_loaded(ticket, result.clone());
                }
                self.flush(slot);
            }
        }
    }

    fn flush_all(&mut self) {
        for slot in 0..self.sockets.len() {
            self.flush(slot);
        }
    }

    /// Sends what the endpoint in `slot` produced and hands its events, loads and recording
    /// work on.
    fn flush(&mut self, slot: usize) {
        let serial = self.serials.get(slot).copied().unwrap_or(0);
        let Some(core) = self.group.get_mut(slot) else {
            return;
        };
        if let Some(Some(socks)) = self.sockets.get(slot) {
            let mut sent = 0;
            for t in core.drain_transmits() {
                let s = &socks[usize::from(t.rtcp)];
                if s.send_to(&t.data, t.to).is_ok() {
                    sent += 1;
                }
            }
            if sent > 0 {
                self.counters.packets_tx.fetch_add(sent, Relaxed);
            }
        }
        for ev in core.drain_events() {
            if self.events.try_send(ev).is_err() {
                self.counters.events_dropped.fetch_add(1, Relaxed);
            }
        }
        if core.has_record_ops() {
            for op in core.drain_record_ops() {
                self.writer.send(op);
            }
        }
        if core.has_loads() {
            for (ticket, path, rate) in core.take_loads() {
                let key = (path, rate);
                let waiters = self.loads.entry(key.clone()).or_default();
                waiters.push((slot, serial, ticket));
                if waiters.len() == 1 {
                    let tx = self.loaded_tx.clone();
                    let waker = self.waker.clone();
                    let k = key.clone();
                    self.loader.load(
                        key.0,
                        key.1,
                        Box::new(move |r| {
                            if tx.send((k, r)).is_ok() {
                                let _ = waker.wake();
                            }
                        }),
                    );
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_on_the_grid_and_catch_up_boundedly() {
        let p = Duration::from_millis(20);
        let late = Duration::from_millis(10);
        let d = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(schedule(d, d - ms(1), p, late), None, "not yet");
        // On time or a little late: one tick, the next deadline 20 ms after this one (not after now).
        let on = schedule(d, d + ms(3), p, late).expect("due");
        assert_eq!((on.run, on.skipped, on.late, on.next), (1, 0, false, d + p));
        let l = schedule(d, d + ms(15), p, late).expect("due");
        assert_eq!((l.run, l.skipped, l.late, l.next), (1, 0, true, d + p));
        // 50 ms behind: this tick and the two missed ones run back to back.
        let c = schedule(d, d + ms(50), p, late).expect("due");
        assert_eq!((c.run, c.skipped, c.next), (3, 0, d + 3 * p));
        // A second behind: at most 3 run, the rest is skipped, the grid is kept.
        let s = schedule(d, d + ms(1010), p, late).expect("due");
        assert_eq!((s.run, s.skipped, s.next), (3, 48, d + 51 * p));
    }
}
