//! `pbx`: the tokio driver around the sans-IO call engine.
//!
//! What it is: the part of Denwa that owns sockets, timers, the database connection and the
//! media relay for SIP. [`start`] binds the SIP transports, loads the engine's caches and the
//! location table from the database and runs the driver task; the returned [`Pbx`] is the narrow
//! handle the binary and the control panel use (calls in progress, hang-up, health, metrics,
//! shutdown). It holds no policy: every decision is `engine`'s. What it is not: a SIP parser
//! (`sip`), call control (`engine`), a media engine (`media`) or a database layer (`store`).

mod apps_media;
pub mod cluster;
mod cluster_alone;
mod cluster_epoch;
pub mod cluster_pg;
pub mod codes_load;
pub mod drain;
mod driver;
mod live_calls;
pub mod load;
pub mod metrics;
mod rec_convert;
pub mod recording;
pub mod resolve;
pub mod stale;
mod sub_writer;
pub mod transport;
pub mod transport_limits;
mod vm_io;
mod vm_mail;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};

pub use crate::metrics::Metrics;
use crate::transport::Transports;
pub use engine::control::{CallState, CallSummary};
pub use engine::pike::ThrottleConfig;
pub use engine::settings;
pub use engine::settings::keys as setting_keys;

/// Node-local settings of the PBX.
#[derive(Debug, Clone)]
pub struct PbxConfig {
    /// SIP listen addresses (UDP and TCP on each); wildcards are expanded per interface.
    pub sip_listen: Vec<SocketAddr>,
    /// Address written into SDP and Contact instead of the local one (NAT/public).
    pub advertise: Option<IpAddr>,
    /// This node's name (stored with registrations).
    pub node_name: String,
    /// Transaction timers (see [`engine::EngineConfig::timers`] for the Timer J choice).
    pub timers: sip::transaction::Timers,
    /// Brute-force protection.
    pub throttle: ThrottleConfig,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Connection caps and timeouts of the SIP transports.
    pub transport: transport::TransportLimits,
    /// DNS server for trunk host names (`None`: the system's, from /etc/resolv.conf).
    pub dns_server: Option<SocketAddr>,
    /// The data directory: prompts, music on hold, rendered tones.
    pub data_dir: std::path::PathBuf,
    /// A terminating media leg that receives nothing this long is hung up.
    pub media_timeout: std::time::Duration,
    /// One node of an active/standby pair: stored parked calls are resumed when this node
    /// takes the application address ([`Pbx::reload_parked`]), not at start.
    pub clustered: bool,
}

impl Default for PbxConfig {
    fn default() -> Self {
        let e = engine::EngineConfig::default();
        PbxConfig {
            sip_listen: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            advertise: None,
            node_name: "denwa".into(),
            timers: e.timers,
            throttle: e.throttle,
            user_agent: format!("Denwa/{}", env!("CARGO_PKG_VERSION")),
            transport: transport::TransportLimits::default(),
            dns_server: None,
            data_dir: std::path::PathBuf::from("."),
            media_timeout: std::time::Duration::from_secs(60),
            clustered: false,
        }
    }
}

/// Requests from the control plane to the driver.
pub(crate) enum Control {
    ListCalls(oneshot::Sender<Vec<CallSummary>>),
    Hangup(u64, oneshot::Sender<bool>),
    Transfer(
        u64,
        String,
        oneshot::Sender<Result<(), engine::transfer::TransferRefused>>,
    ),
    /// A transfer that names the party it moves (the panel's drag and drop).
    TransferMoving(
        u64,
        String,
        engine::xfer_party::Party,
        oneshot::Sender<Result<(), engine::transfer::TransferRefused>>,
    ),
    Conferences(oneshot::Sender<Vec<engine::control::ConfSummary>>),
    /// The subscriptions in force (of one tenant, or all).
    Subscriptions(
        Option<i64>,
        oneshot::Sender<Vec<engine::subs_list::SubscriptionInfo>>,
    ),
    /// The parked calls of a tenant.
    ParkedCalls(i64, oneshot::Sender<Vec<engine::park::ParkedCall>>),
    ConfMute(u64, bool, oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<()>),
    /// Registrations read from the database, to load into the location table (answers how many
    /// were loaded).
    LoadBindings(Vec<engine::usrloc::Binding>, oneshot::Sender<usize>),
    /// Parked calls read from the database, to resume (answers how many there were).
    LoadParked(Vec<engine::park::ParkRecord>, oneshot::Sender<usize>),
    /// The peer serves the parked calls now: drop them here silently (answers how many).
    ForgetParked(oneshot::Sender<usize>),
    /// Calls in progress read from the database, to continue, and why (`switchover` or
    /// `failover`); answers how many were rebuilt, once their relay ports are bound.
    LoadLiveCalls(
        Vec<engine::live_calls::LiveCallRecord>,
        &'static str,
        oneshot::Sender<usize>,
    ),
    /// The peer serves the calls in progress now: drop them here silently (answers how many).
    ForgetLiveCalls(oneshot::Sender<usize>),
    /// As `ForgetLiveCalls`, their relay sessions kept relaying until the instant, in the
    /// drain (`crate::drain`).
    DrainLiveCalls(Instant, drain::RelayDrain, oneshot::Sender<usize>),
    /// A switchover starts: end the calls still ringing (answers how many).
    EndRingingCalls(&'static str, oneshot::Sender<usize>),
}

/// State the driver shares with the handle.
pub(crate) struct Shared {
    /// Milliseconds since `epoch` at the driver's last loop turn (0: never).
    heartbeat_ms: AtomicU64,
    epoch: Instant,
    /// Whether the engine should register trunks: always on a standalone node, while it holds
    /// the application address on a pair's node (`driver::trunk_role`).
    trunks_active: std::sync::atomic::AtomicBool,
    /// A switchover is handing over: new calls are refused with 503 (`driver::quiesce`).
    new_calls_refused: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(ms.max(1), Ordering::Relaxed);
    }
}

/// The driver turns its loop at least every housekeeping tick (250 ms); a core silent for this
/// long is stuck.
const STALL: Duration = Duration::from_secs(5);

/// Handle to a running PBX.
#[derive(Clone)]
pub struct Pbx {
    control: mpsc::Sender<Control>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    relay: media::Relay,
    /// The terminating media engine (voice applications), for its counters.
    apps: media::endpoint::MediaEngine,
    sip_addrs: Vec<SocketAddr>,
    transports: Arc<transport::Transports>,
}

/// Queue depth between the transports and the driver. Deep enough to ride out bursts, shallow
/// enough that a message never waits so long in it that the peer retransmits (which would only
/// add load): past it, UDP input is dropped and counted, and the sender retransmits later.
/// 2,048 messages are about 170 ms at 12,000 messages/s; together with the socket buffer
/// a message waits well under T1 (500 ms).
const INBOUND_QUEUE: usize = 2_048;

/// Binds the SIP transports and starts the driver on the current tokio runtime.
pub async fn start(cfg: PbxConfig, store: store::Store, relay: media::Relay) -> Result<Pbx> {
    let metrics = Arc::new(Metrics::default());
    let transports =
        Transports::bind_with(&cfg.sip_listen, Arc::clone(&metrics), cfg.transport).await?;
    let sip_addrs = transports.local_addrs();
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut seed);
    let ecfg = engine::EngineConfig {
        locals: sip_addrs.clone(),
        advertise: cfg.advertise,
        node_name: cfg.node_name.clone(),
        timers: cfg.timers,
        throttle: cfg.throttle,
        user_agent: cfg.user_agent.clone(),
        digest_secret: load::digest_secret(&store).await?,
        seed,
        ..Default::default()
    };
    // Caches first, so the first REGISTER after a restart already finds its extension.
    let mut snap = load::snapshot(&store).await?;
    // Trunk host names resolved, so registrations and calls can start at once.
    let resolver = match cfg.dns_server {
        Some(s) => resolve::Resolver::with_server(s),
        None => resolve::Resolver::system(),
    };
    snap.outside = load::outside(&store, &resolver).await?;
    let mut eng = engine::Engine::new(ecfg, snap);
    // A pair's node stores its calls in progress for the peer (`live_calls`).
    eng.set_live_calls(cfg.clustered);
    // A pair's node registers its trunks only while it holds the application address.
    eng.set_trunks_active(
        !cfg.clustered,
        engine::Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        },
    );
    let now = engine::Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    };
    for b in load::bindings(&store, now.wall).await? {
        eng.load_binding(b, now);
    }
    // Event subscriptions made before this start (message-waiting).
    match store.event_subs(chrono::Utc::now()).await {
        Ok(subs) => {
            for s in &subs {
                eng.load_subscription(s, now);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "stored subscriptions unreadable: phones subscribe again")
        }
    }
    // Calls parked before this start: their legs are re-INVITEd onto new endpoints (on a
    // pair, by the node that takes the application address, when it takes it).
    if !cfg.clustered {
        match store.park_calls().await {
            Ok(parked) => eng.load_parked(parked),
            Err(e) => tracing::warn!(error = %e, "stored parked calls unreadable"),
        }
    }
    // The toll-fraud limits count the calls made before this start, too.
    match load::outbound_history(&store, now.wall).await {
        Ok(h) => eng.seed_outbound_history(&h, now),
        Err(e) => {
            tracing::warn!(error = %e, "outbound call history unreadable: limits start from zero")
        }
    }
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let (ctl_tx, ctl_rx) = mpsc::channel(64);
    let shared = Arc::new(Shared {
        heartbeat_ms: AtomicU64::new(0),
        epoch: Instant::now(),
        trunks_active: std::sync::atomic::AtomicBool::new(!cfg.clustered),
        new_calls_refused: std::sync::atomic::AtomicBool::new(false),
    });
    transports.start(tx);
    let (apps, app_events) =
        apps_media::AppMedia::new(&relay, cfg.data_dir.clone(), cfg.media_timeout);
    let apps_engine = apps.engine();
    tokio::spawn(vm_mail::run(
        store.clone(),
        cfg.data_dir.clone(),
        Arc::clone(&metrics),
    ));
    let d = driver::Driver::new(
        eng,
        store,
        relay.clone(),
        Arc::clone(&transports),
        Arc::clone(&metrics),
        Arc::clone(&shared),
        cfg.node_name,
        resolver,
        (apps, app_events),
    );
    shared.beat();
    tokio::spawn(d.run(rx, ctl_rx));
    Ok(Pbx {
        control: ctl_tx,
        shared,
        metrics,
        relay,
        apps: apps_engine,
        sip_addrs,
        transports,
    })
}

impl Pbx {
    /// Whether this node holds its application (freebound) addresses: while it does not,
    /// nothing is sent from them (see [`transport::Transports::set_holds_app_address`]) and
    /// its trunks are not registered.
    pub fn set_holds_app_address(&self, held: bool) {
        self.transports.set_holds_app_address(held);
        // Trunks register from the active only (the driver starts or stops them).
        self.shared.trunks_active.store(held, Ordering::Relaxed);
        if held {
            // A node taking the address takes new calls (a refusal of an earlier hand-over of
            // this node is over).
            self.shared
                .new_calls_refused
                .store(false, Ordering::Relaxed);
        }
    }

    /// A switchover hands over (`StopNewWork`: true) or was aborted (`ResumeWork`: false): new
    /// calls are refused with `503` + `Retry-After: 1` meanwhile (`engine::quiesce`). Applied
    /// by the SIP core at its next loop turn.
    pub fn set_new_calls_refused(&self, refused: bool) {
        self.shared
            .new_calls_refused
            .store(refused, Ordering::Relaxed);
    }

    /// The bound SIP addresses (UDP and TCP share them).
    pub fn sip_addrs(&self) -> &[SocketAddr] {
        &self.sip_addrs
    }

    /// True while the SIP core is running and turning its loop (for `/healthz`).
    pub fn core_alive(&self) -> bool {
        if self.control.is_closed() {
            return false;
        }
        let last = self.shared.heartbeat_ms.load(Ordering::Relaxed);
        let now = self.shared.epoch.elapsed().as_millis() as u64;
        last > 0 && now.saturating_sub(last) < STALL.as_millis() as u64
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Prometheus text of the SIP and relay counters.
    pub fn render_metrics(&self) -> String {
        let mut s = String::new();
        self.metrics.render(&mut s);
        let m = self.relay.metrics();
        metrics::write_simple(
            &mut s,
            &[
                (
                    "denwa_rtp_packets_relayed_total",
                    "counter",
                    "RTP/RTCP packets relayed.",
                    m.packets_relayed,
                ),
                (
                    "denwa_rtp_packets_dropped_total",
                    "counter",
                    "Media packets dropped (malformed, unlatched).",
                    m.packets_dropped,
                ),
                (
                    "denwa_media_sessions",
                    "gauge",
                    "Media relay sessions open.",
                    m.active_sessions,
                ),
            ],
        );
        crate::recording::render_metrics(&self.metrics.recorder, &mut s);
        transport_limits::render_metrics(self.transports.transport_limits(), &mut s);
        let e = self.apps.metrics();
        metrics::write_simple(
            &mut s,
            &[
                (
                    "denwa_media_endpoints",
                    "gauge",
                    "Terminating media endpoints open (voice applications, transcoding, hold music).",
                    e.endpoints,
                ),
                (
                    "denwa_media_endpoint_underruns_total",
                    "counter",
                    "Jitter-buffer underruns of terminating endpoints (a frame was due, none had arrived).",
                    e.underruns,
                ),
                (
                    "denwa_media_late_ticks_total",
                    "counter",
                    "Media-engine ticks that started more than 10 ms late.",
                    e.late_ticks,
                ),
                (
                    "denwa_media_skipped_ticks_total",
                    "counter",
                    "Media-engine ticks skipped because a worker fell too far behind.",
                    e.skipped_ticks,
                ),
                (
                    "denwa_media_events_dropped_total",
                    "counter",
                    "Media-engine events that did not fit the queue to call control.",
                    e.events_dropped,
                ),
            ],
        );
        s
    }

    /// Trunk states (registration, health, calls), as of the last quarter second.
    pub fn trunk_statuses(&self) -> Vec<engine::TrunkStatus> {
        match self.metrics.trunks.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Calls in progress.
    pub async fn calls(&self) -> Vec<CallSummary> {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::ListCalls(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Hangs up a call; false when no such call exists.
    pub async fn hangup(&self, id: u64) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Hangup(id, tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Blind-transfers call `id` to the number `to` (see [`engine::Engine::transfer`]).
    pub async fn transfer(
        &self,
        id: u64,
        to: String,
    ) -> Result<(), engine::transfer::TransferRefused> {
        let (tx, rx) = oneshot::channel();
        let gone = || engine::transfer::TransferRefused {
            status: 503,
            reason: "call control is not running".into(),
        };
        if self
            .control
            .send(Control::Transfer(id, to, tx))
            .await
            .is_err()
        {
            return Err(gone());
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Blind-transfers call `id` to `to`, moving party `moves` (see
    /// [`engine::Engine::transfer_moving`]).
    pub async fn transfer_moving(
        &self,
        id: u64,
        to: String,
        moves: engine::xfer_party::Party,
    ) -> Result<(), engine::transfer::TransferRefused> {
        let (tx, rx) = oneshot::channel();
        let gone = || engine::transfer::TransferRefused {
            status: 503,
            reason: "call control is not running".into(),
        };
        let c = Control::TransferMoving(id, to, moves, tx);
        if self.control.send(c).await.is_err() {
            return Err(gone());
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// The event subscriptions in force, of `tenant` or of all tenants.
    pub async fn subscriptions(
        &self,
        tenant: Option<i64>,
    ) -> Vec<engine::subs_list::SubscriptionInfo> {
        let (tx, rx) = oneshot::channel();
        let c = Control::Subscriptions(tenant, tx);
        if self.control.send(c).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Conference rooms with participants.
    pub async fn conferences(&self) -> Vec<engine::control::ConfSummary> {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Conferences(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The parked calls of `tenant`, by slot.
    pub async fn parked_calls(&self, tenant: i64) -> Vec<engine::park::ParkedCall> {
        let (tx, rx) = oneshot::channel();
        if self
            .control
            .send(Control::ParkedCalls(tenant, tx))
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Mutes or unmutes a conference participant; false when `call` is in no room.
    pub async fn conf_mute(&self, call: u64, muted: bool) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .control
            .send(Control::ConfMute(call, muted, tx))
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Loads every unexpired registration from the database into the location table (a node
    /// that becomes Active picks up the phones that registered with its peer). Returns how many
    /// were loaded.
    pub async fn reload_bindings(&self, store: &store::Store) -> Result<usize> {
        let b = load::bindings(store, SystemTime::now()).await?;
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::LoadBindings(b, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before loading registrations"))
    }

    /// Resumes the parked calls stored in the database (their legs re-INVITEd onto new
    /// endpoints of this node); slots this node already holds are left as they are. Called by
    /// the active/standby driver once this node holds the application address.
    pub async fn reload_parked(&self, store: &store::Store) -> Result<usize> {
        let parked = store.park_calls().await?;
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::LoadParked(parked, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before resuming parked calls"))
    }

    /// This node gave up the application address: the calls parked here are dropped without
    /// signalling (rows kept), since the node taking over resumes them from the database.
    pub async fn forget_parked(&self) -> Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::ForgetParked(tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before dropping parked calls"))
    }

    /// Continues the calls in progress stored by the peer (relay ports re-bound with
    /// `IP_FREEBIND`, dialogs rebuilt); `event` (`switchover` or `failover`) goes with each
    /// call's record. Call before the application address comes up: the answer comes once the
    /// relay sockets are bound. Returns how many calls were rebuilt.
    pub async fn reload_live_calls(
        &self,
        store: &store::Store,
        event: &'static str,
    ) -> Result<usize> {
        let mut rows = store.live_calls().await?;
        // A call parked since its row was written is resumed from its park row instead.
        if !rows.is_empty() {
            let parked: std::collections::HashSet<String> = store
                .park_calls()
                .await?
                .into_iter()
                .map(|p| p.call_id)
                .collect();
            rows.retain(|r| {
                !parked.contains(&r.a.call_id)
                    && r.b.as_ref().is_none_or(|b| !parked.contains(&b.call_id))
            });
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::LoadLiveCalls(rows, event, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before continuing calls"))
    }

    /// This node gave up the application address: its calls in progress are dropped without
    /// signalling or records (rows kept), since the node taking over continues them.
    pub async fn forget_live_calls(&self) -> Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::ForgetLiveCalls(tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before dropping calls"))
    }

    /// As [`Pbx::forget_live_calls`] on a graceful release: the calls' relay sessions keep
    /// relaying until `until` (make-before-break, `crate::drain`), then close.
    pub async fn drain_live_calls(
        &self,
        until: Instant,
        relays: drain::RelayDrain,
    ) -> Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::DrainLiveCalls(until, relays, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before dropping calls"))
    }

    /// A switchover starts while this node holds the application address: calls still ringing
    /// are ended (CANCEL to the ringing phones, `480` to the caller, one record each; see
    /// `Engine::end_ringing_calls`). Returns how many, once their records are written and the
    /// `480`s sent.
    pub async fn end_ringing_calls(&self, event: &'static str) -> Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::EndRingingCalls(event, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the SIP core is not running"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the SIP core stopped before ending ringing calls"))
    }

    /// Ends all calls (BYE/CANCEL, records written) and stops the driver.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
