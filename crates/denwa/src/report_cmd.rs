//! `denwa report ...` and the server's periodic report aggregation (issue 16): call records are
//! added into the report tables every minute, in bounded batches, off the SIP core.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use store::Store;
use store::report::DEFAULT_BATCH;
use web::engine::settings;

/// How often the server aggregates new call records.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Records per transaction of the periodic run: small, because on SQLite the transaction holds
/// the one write connection that call records and registrations also wait for (5,000 records
/// take about 0.2 s; the CLI uses [`DEFAULT_BATCH`]).
pub const PERIODIC_BATCH: i64 = 5_000;
/// Most batches one periodic run takes; more continues a second later.
pub const MAX_BATCHES_PER_RUN: u64 = 100;

/// `denwa report ...`
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Add the call records written since the last run into the report tables (the server does
    /// this every minute); --rebuild empties the tables and aggregates every record again.
    Aggregate {
        /// Start from scratch (after changing reports.timezone this happens by itself).
        #[arg(long)]
        rebuild: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The report time zone setting (`reports.timezone`, default UTC).
pub async fn timezone(store: &Store) -> String {
    store
        .setting::<String>(None, settings::keys::REPORTS_TIMEZONE)
        .await
        .ok()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "UTC".to_string())
}

/// Runs `denwa report ...`.
pub async fn run(cmd: ReportCmd, store: &Store, out: &mut impl Write) -> Result<()> {
    match cmd {
        ReportCmd::Aggregate { rebuild, json } => {
            let tz = timezone(store).await;
            let o = if rebuild {
                store.rebuild_reports(&tz, DEFAULT_BATCH).await?
            } else {
                store.aggregate_reports(&tz, DEFAULT_BATCH, None).await?
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&o)?)?;
            } else {
                writeln!(
                    out,
                    "aggregated {} call records ({} late) into {} buckets in {} ms{}; watermark {}, time zone {tz}",
                    o.records,
                    o.late,
                    o.buckets,
                    o.elapsed_ms,
                    if o.rebuilt {
                        ", rebuilt from scratch"
                    } else {
                        ""
                    },
                    o.last_cdr_id
                )?;
            }
        }
    }
    Ok(())
}

/// The server's periodic aggregation: every [`INTERVAL`], at most [`MAX_BATCHES_PER_RUN`]
/// batches; when records remain it continues a second later. Errors are logged and retried.
pub fn spawn_periodic(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Let the node come up first.
        tokio::time::sleep(Duration::from_secs(5)).await;
        loop {
            if !store.fence().writable() {
                // A standby of a pair: the active node aggregates (it writes the report tables).
                tokio::time::sleep(INTERVAL).await;
                continue;
            }
            let tz = timezone(&store).await;
            let next = match store
                .aggregate_reports(&tz, PERIODIC_BATCH, Some(MAX_BATCHES_PER_RUN))
                .await
            {
                Ok(o) => {
                    if o.records > 0 || o.rebuilt {
                        tracing::info!(
                            records = o.records,
                            late = o.late,
                            buckets = o.buckets,
                            ms = o.elapsed_ms,
                            rebuilt = o.rebuilt,
                            watermark = o.last_cdr_id,
                            timezone = %tz,
                            "reports aggregated"
                        );
                    } else {
                        tracing::debug!(ms = o.elapsed_ms, "reports: nothing new");
                    }
                    if o.batches >= MAX_BATCHES_PER_RUN {
                        Duration::from_secs(1)
                    } else {
                        INTERVAL
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "report aggregation failed; retrying");
                    INTERVAL
                }
            };
            tokio::time::sleep(next).await;
        }
    })
}
