//! The HTTP listener: the control panel and REST API of the `web` crate, `/healthz`, `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use web::control::{BoxFuture, CallControl, CallSummary};

/// The running SIP core (and the pair's driver, when clustered) as the `web` crate sees it.
pub struct PbxControl(pub pbx::Pbx, pub Option<ClusterControl>);

/// The active/standby driver as the `web` crate sees it.
pub struct ClusterControl(pub pbx::cluster::Cluster);

impl web::cluster::ClusterControl for ClusterControl {
    fn report(&self) -> ha::report::ClusterReport {
        self.0.report()
    }

    fn switchover(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.0.switchover())
    }
}

impl CallControl for PbxControl {
    fn sip_addrs(&self) -> Vec<SocketAddr> {
        self.0.sip_addrs().to_vec()
    }

    fn calls(&self) -> BoxFuture<'_, Vec<CallSummary>> {
        Box::pin(self.0.calls())
    }

    fn hangup(&self, id: u64) -> BoxFuture<'_, bool> {
        Box::pin(self.0.hangup(id))
    }

    fn render_metrics(&self) -> String {
        self.0.render_metrics()
    }

    fn core_alive(&self) -> bool {
        self.0.core_alive()
    }

    fn trunk_statuses(&self) -> Vec<web::engine::TrunkStatus> {
        self.0.trunk_statuses()
    }

    fn transfer(
        &self,
        id: u64,
        to: String,
    ) -> BoxFuture<'_, Result<(), web::engine::transfer::TransferRefused>> {
        Box::pin(self.0.transfer(id, to))
    }

    fn conferences(&self) -> BoxFuture<'_, Vec<web::engine::control::ConfSummary>> {
        Box::pin(self.0.conferences())
    }

    fn parked_calls(&self, tenant: i64) -> BoxFuture<'_, Vec<web::engine::park::ParkedCall>> {
        Box::pin(self.0.parked_calls(tenant))
    }

    fn conf_mute(&self, call: u64, muted: bool) -> BoxFuture<'_, bool> {
        Box::pin(self.0.conf_mute(call, muted))
    }

    fn cluster(&self) -> Option<&dyn web::cluster::ClusterControl> {
        self.1
            .as_ref()
            .map(|c| c as &dyn web::cluster::ClusterControl)
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct State {
    pub pbx: pbx::Pbx,
    pub store: store::Store,
    pub started: Instant,
    /// The node's resolved bootstrap configuration (data dir, RTP range, ...).
    pub config: crate::config::Config,
    /// The node's licence (node id, installed file, entitlement).
    pub licensing: web::license::Licensing,
    /// The backup server's bound HTTPS address, when this node runs that role.
    pub backup_listen: Option<SocketAddr>,
    /// The active/standby driver (`serve --cluster`).
    pub cluster: Option<pbx::cluster::Cluster>,
}

/// Binds the HTTP listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding HTTP on {addr}"))
}

/// Serves until the task is aborted, on `l` and the same application on the `extra` listeners
/// (an active/standby node's application addresses). With no administrator yet, prints a
/// one-time setup link.
pub async fn serve_also(l: TcpListener, extra: Vec<TcpListener>, state: State) {
    let local = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let cfg = &state.config;
    let info = web::NodeInfo {
        node: cfg.node_name.clone(),
        http_listen: local.clone(),
        sip_listen: state
            .pbx
            .sip_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect(),
        rtp_ports: Some(cfg.rtp_ports),
        advertise: cfg.advertise.map(|a| a.to_string()),
        database: state.store.backend().as_str().to_string(),
        log_level: cfg.log_level.clone(),
        data_dir: cfg.data_dir.clone(),
        backup_listen: state.backup_listen.map(|a| a.to_string()),
    };
    let w = web::Web::new_licensed(
        Arc::new(PbxControl(state.pbx, state.cluster.map(ClusterControl))),
        state.store,
        state.started,
        info,
        state.licensing,
    );
    match w.first_run_setup_path().await {
        Ok(Some(path)) => {
            // Printed to the console on purpose: whoever started the server may create the
            // first administrator; the token is random and works once.
            // A wildcard listener is reachable as localhost at least; say which host to use.
            let host = match l.local_addr() {
                Ok(a) if a.ip().is_unspecified() => format!("localhost:{}", a.port()),
                _ => local.clone(),
            };
            println!(
                "No administrator exists yet. Create the first one at: http://{host}{path}  \
                 (or run `denwa admin add USER`)"
            );
            // The log gets no token: logs travel further than the console.
            tracing::warn!(
                "no administrator yet: a one-time setup link was printed on the console"
            );
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not check for administrators"),
    }
    let app = web::router(w);
    for x in extra {
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(x, app).await {
                tracing::error!(error = %e, "HTTP server (application address) stopped");
            }
        });
    }
    if let Err(e) = axum::serve(l, app).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}
