//! `denwa voicemail list EXT`: the messages left in an extension's mailbox (newest first).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

/// `denwa voicemail` subcommands.
#[derive(Debug, Subcommand)]
pub enum VmCmd {
    /// Messages in EXT's mailbox, newest first: file, time, length.
    List {
        /// Extension number
        ext: String,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
}

/// Runs `denwa voicemail ...`.
pub fn run(cmd: VmCmd, data_dir: &Path, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        VmCmd::List { ext, json } => {
            if ext.is_empty() || !ext.chars().all(|c| c.is_ascii_alphanumeric()) {
                anyhow::bail!("{ext:?} is not an extension number");
            }
            let dir = data_dir
                .join("voicemail")
                .join(tenant.to_string())
                .join(&ext);
            let mut rows = Vec::new();
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    if !name.starts_with("msg-") || !name.ends_with(".wav") {
                        continue;
                    }
                    let ms: u64 = name
                        .trim_start_matches("msg-")
                        .split('-')
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let seconds = media::wav::read_file(&p)
                        .map(|w| w.samples.len() as f64 / f64::from(w.sample_rate.max(1)))
                        .unwrap_or(0.0);
                    rows.push((ms, p.display().to_string(), seconds));
                }
            }
            rows.sort_by_key(|r| std::cmp::Reverse(r.0));
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(ms, path, s)| {
                        serde_json::json!({ "left_at_ms": ms, "path": path,
                            "seconds": (s * 10.0).round() / 10.0 })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "{:<25} {:>7}  FILE", "LEFT AT (UTC)", "SECONDS")?;
                for (ms, path, s) in rows {
                    let at = chrono::DateTime::from_timestamp_millis(ms as i64)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default();
                    writeln!(out, "{at:<25} {s:>7.1}  {path}")?;
                }
            }
        }
    }
    Ok(())
}
