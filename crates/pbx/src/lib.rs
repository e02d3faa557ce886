//! `pbx`: call control around the sans-IO `sip` stack: transports, registrar, B2BUA calls, CDRs.
//!
//! What it is: the part of Denwa that owns sockets and time for SIP. [`start`] binds the SIP
//! transports, loads the location cache from the database and runs the core task; the returned
//! [`Pbx`] is the narrow handle the binary and the control panel use (calls in progress, hang-up,
//! metrics, shutdown). What it is not: a SIP parser (see `sip`), a media engine (see `media`) or
//! a database layer (see `store`).

pub mod call;
mod core;
pub mod metrics;
mod registrar;
pub mod sdp;
pub use engine::settings;
pub mod throttle;
pub mod transport;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};

pub use crate::call::{CallState, CallSummary};
pub use crate::core::keys as setting_keys;
use crate::core::{Control, Core, Internal};
pub use crate::metrics::Metrics;
use crate::throttle::ThrottleConfig;
use crate::transport::Transports;

/// Node-local settings of the PBX core.
#[derive(Debug, Clone)]
pub struct PbxConfig {
    /// SIP listen addresses (UDP and TCP on each); wildcards are expanded per interface.
    pub sip_listen: Vec<SocketAddr>,
    /// Address written into SDP and Contact instead of the local one (NAT/public).
    pub advertise: Option<IpAddr>,
    /// This node's name (stored with registrations).
    pub node_name: String,
    /// Transaction timers (T1, T2, T4, D, J). Timer J defaults to 5 s here, not RFC 3261's
    /// 64·T1 (32 s), as in Kamailio and OpenSIPS (`wait_timer`): a completed REGISTER, BYE or
    /// OPTIONS transaction over UDP keeps its key and final response that long to answer
    /// retransmissions. A client retransmits at most T2 (4 s) apart, so 5 s still answers the
    /// retransmission that follows a lost response. At 10,000 REGISTER/s the RFC value kept
    /// 640,000 finished transactions (about 700 MB); 5 s keeps a sixth of that.
    pub timers: sip::transaction::Timers,
    /// Brute-force protection.
    pub throttle: ThrottleConfig,
    /// Server / User-Agent header value.
    pub user_agent: String,
}

impl Default for PbxConfig {
    fn default() -> Self {
        PbxConfig {
            sip_listen: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            advertise: None,
            node_name: "denwa".into(),
            timers: sip::transaction::Timers {
                j: std::time::Duration::from_secs(5),
                ..sip::transaction::Timers::default()
            },
            throttle: ThrottleConfig::default(),
            user_agent: format!("Denwa/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Handle to a running PBX core.
#[derive(Clone)]
pub struct Pbx {
    internal: mpsc::UnboundedSender<Internal>,
    metrics: Arc<Metrics>,
    relay: media::Relay,
    sip_addrs: Vec<SocketAddr>,
}

/// Queue depth between the transports and the core. Deep enough to ride out bursts, shallow
/// enough that a message never waits so long in it that the peer retransmits (which would only
/// add load): past it, UDP input is dropped and counted, and the sender retransmits later.
/// 2,048 messages are about 170 ms at 12,000 messages/s; together with the socket buffer
/// (see `transport::set_buffers`) a message waits well under T1 (500 ms). At 8,192 an overloaded
/// core let queueing delay pass T1, every phone retransmitted, and the retransmissions (twice
/// the offered load in a REGISTER storm) took the CPU the new requests needed.
const INBOUND_QUEUE: usize = 2_048;

/// Binds the SIP transports and starts the core on the current tokio runtime.
pub async fn start(cfg: PbxConfig, store: store::Store, relay: media::Relay) -> Result<Pbx> {
    let metrics = Arc::new(Metrics::default());
    let transports = Transports::bind(&cfg.sip_listen, Arc::clone(&metrics)).await?;
    let sip_addrs = transports.local_addrs();
    let (itx, irx) = mpsc::unbounded_channel();
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let secret = core::digest_secret(&store).await?;
    let mut core = Core::new(
        cfg,
        store.clone(),
        relay.clone(),
        Arc::clone(&transports),
        Arc::clone(&metrics),
        itx.clone(),
        secret,
    );
    // Caches first, so the first REGISTER after a restart already finds its extension.
    core.settings = core::load_settings(&store).await;
    core.tenants = core::load_tenants(&store).await?;
    core.rebuild_digest();
    core.exts = core::load_extensions(&store).await?;
    core.load_location().await?;
    transports.start(tx);
    tokio::spawn(core.run(rx, irx));
    Ok(Pbx {
        internal: itx,
        metrics,
        relay,
        sip_addrs,
    })
}

impl Pbx {
    /// The bound SIP addresses (UDP and TCP share them).
    pub fn sip_addrs(&self) -> &[SocketAddr] {
        &self.sip_addrs
    }

    /// True while the SIP core is running and turning its loop (for `/healthz`).
    pub fn core_alive(&self) -> bool {
        !self.internal.is_closed()
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
        s.push_str(&format!(
            "# HELP denwa_rtp_packets_relayed_total RTP/RTCP packets relayed.\n# TYPE denwa_rtp_packets_relayed_total counter\ndenwa_rtp_packets_relayed_total {}\n",
            m.packets_relayed
        ));
        s.push_str(&format!(
            "# HELP denwa_rtp_packets_dropped_total Media packets dropped (malformed, unlatched).\n# TYPE denwa_rtp_packets_dropped_total counter\ndenwa_rtp_packets_dropped_total {}\n",
            m.packets_dropped
        ));
        s.push_str(&format!(
            "# HELP denwa_media_sessions Media relay sessions open.\n# TYPE denwa_media_sessions gauge\ndenwa_media_sessions {}\n",
            m.active_sessions
        ));
        s
    }

    /// Calls in progress.
    pub async fn calls(&self) -> Vec<CallSummary> {
        let (tx, rx) = oneshot::channel();
        if self
            .internal
            .send(Internal::Control(Control::ListCalls(tx)))
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Hangs up a call; false when no such call exists.
    pub async fn hangup(&self, id: u64) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .internal
            .send(Internal::Control(Control::Hangup(id, tx)))
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Ends all calls (BYE/CANCEL, records written) and stops the core.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .internal
            .send(Internal::Control(Control::Shutdown(tx)))
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}
