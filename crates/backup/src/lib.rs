//! `backup`: shipping a PBX's backups to the backup/report server of the `standalone-backup`
//! topology, and that server.
//!
//! What it is: the pairing protocol ([`proto`]), the sans-IO shipping schedule ([`schedule`]),
//! the TLS identity and certificate pinning ([`tls`]), the PBX's client and scheduler task
//! ([`client`]) and the server's HTTPS listener ([`server`]). The archive format itself is
//! `store::backup`; the rows (pairings, generations, shipping state) are `store::backupsrv`.
//! What it is not: the panel pages (in `web`) or the CLI (in `denwa`).

pub mod client;
pub mod proto;
pub mod schedule;
pub mod server;
pub mod tls;

use std::sync::Arc;

/// Reads `f` in 64 KiB chunks on a task of its own, as a stream for a request or answer body.
pub(crate) fn file_chunks(
    mut f: tokio::fs::File,
) -> tokio_stream::wrappers::ReceiverStream<Result<bytes::Bytes, std::io::Error>> {
    use tokio::io::AsyncReadExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let item = match f.read(&mut buf).await {
                Ok(0) => return,
                Ok(k) => {
                    buf.truncate(k);
                    Ok(bytes::Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Why the licence's topology does not allow the backup role (pairing, shipping, serving), if
/// it does not: only `standalone-backup` does, on both nodes.
pub fn topology_refusal(t: license::Topology) -> Option<String> {
    (t != license::Topology::StandaloneBackup).then(|| {
        format!(
            "the licence in force has topology {t}; the backup server needs a standalone-backup \
             licence on both nodes (install one from the Licence page or with `denwa license install`)"
        )
    })
}

/// Whether the licence allows the backup role now: `Err(reason)` when not.
pub type Gate = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The backup metrics in Prometheus text format: the PBX's shipping state and, on a backup
/// server, what it received (both read from the database, so they survive restarts).
pub async fn render_metrics(store: &store::Store) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut row = |name: &str, kind: &str, help: &str, v: i64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    if let Ok(st) = store.ship_state().await {
        row(
            "denwa_backup_paired",
            "gauge",
            "1 when this node is paired with a backup server.",
            i64::from(st.paired()),
        );
        row(
            "denwa_backup_last_success_timestamp_seconds",
            "gauge",
            "When a backup last reached the backup server (Unix time; 0: never).",
            st.last_success_at.map_or(0, |t| t.timestamp()),
        );
        row(
            "denwa_backup_last_attempt_timestamp_seconds",
            "gauge",
            "When shipping a backup was last tried (Unix time; 0: never).",
            st.last_attempt_at.map_or(0, |t| t.timestamp()),
        );
        row(
            "denwa_backup_consecutive_failures",
            "gauge",
            "Failed shipping attempts since the last success (alert when above 0).",
            st.failures,
        );
        row(
            "denwa_backup_failures_total",
            "counter",
            "Failed attempts to ship a backup.",
            st.failures_total,
        );
        row(
            "denwa_backup_shipped_total",
            "counter",
            "Backups shipped to the backup server.",
            st.successes_total,
        );
        row(
            "denwa_backup_last_size_bytes",
            "gauge",
            "Size of the last backup shipped.",
            st.last_size,
        );
    }
    if let Ok(s) = store.backup_server_state().await {
        let kept = store
            .list_generations(true, 10_000)
            .await
            .unwrap_or_default();
        row(
            "denwa_backup_server_last_received_timestamp_seconds",
            "gauge",
            "When the newest kept generation arrived (Unix time; 0: none). Alert when older than a day.",
            kept.first().map_or(0, |g| g.received_at.timestamp()),
        );
        let kept = kept.len() as i64;
        row(
            "denwa_backup_server_received_total",
            "counter",
            "Backups this backup server accepted after verification.",
            s.received_total,
        );
        row(
            "denwa_backup_server_rejected_total",
            "counter",
            "Uploads from paired nodes this backup server refused (corrupt, too large, disk full).",
            s.rejected_total,
        );
        row(
            "denwa_backup_server_generations",
            "gauge",
            "Generations this backup server keeps.",
            kept,
        );
    }
    row(
        "denwa_backup_server_unauthorized_total",
        "counter",
        "Backup-server requests refused as not paired, since start.",
        server::unauthorized_total() as i64,
    );
    out
}
