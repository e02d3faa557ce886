//! `denwa-license`: the vendor's tool. Makes signing keys, issues licence files, checks them.
//! Built only with `--features issuer`; never part of the shipped `denwa` binary.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, SubsecRound as _, Utc};
use clap::{Parser, Subcommand};
use license::issuer::{SigningKey, issue, new_license_id};
use license::terms::{parse_limit, parse_utc, rfc3339};
use license::{
    Entitlement, Keyring, License, LicenseKind, Limits, MAX_LICENSE_BYTES, PublicKey, Topology,
    verify_signature,
};

#[derive(Parser)]
#[command(
    name = "denwa-license",
    version,
    about = "Denwa's vendor tool: make signing keys, issue licence files, check them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new signing key: writes the private key file (mode 0600) and prints the public key
    /// file's text and the key id.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// Also write the public key file here.
        #[arg(long)]
        public_out: Option<PathBuf>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Sign a licence; prints its id.
    Issue {
        /// The private signing key file.
        #[arg(long)]
        key: PathBuf,
        /// Who the licence is for.
        #[arg(long)]
        customer: String,
        /// standalone, standalone-backup, active-standby or cloud.
        #[arg(long)]
        topology: Topology,
        /// A node id the licence is bound to (repeat for each node; see `denwa license show`).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// An evaluation licence: may name no node (runs anywhere), at most 90 days.
        #[arg(long)]
        evaluation: bool,
        /// Extensions allowed (a number or "unlimited").
        #[arg(long, value_parser = limit_arg)]
        extensions: LimitArg,
        /// Simultaneous calls allowed (a number or "unlimited").
        #[arg(long, value_parser = limit_arg)]
        calls: LimitArg,
        /// Tenants allowed (a number or "unlimited").
        #[arg(long, value_parser = limit_arg)]
        tenants: LimitArg,
        /// SIP trunks allowed (a number or "unlimited").
        #[arg(long, value_parser = limit_arg)]
        trunks: LimitArg,
        /// Start of validity: RFC 3339 UTC, or YYYY-MM-DD (00:00:00Z that day). Default: now.
        #[arg(long, value_parser = date_arg)]
        valid_from: Option<DateTime<Utc>>,
        /// End of validity (exclusive): RFC 3339 UTC, or YYYY-MM-DD (00:00:00Z that day).
        #[arg(long, value_parser = date_arg)]
        valid_until: DateTime<Utc>,
        /// A feature flag (repeat for each).
        #[arg(long = "feature")]
        features: Vec<String>,
        /// The licence id (default: DL-<date>-<random>).
        #[arg(long)]
        id: Option<String>,
        /// Where to write the licence file.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a licence file and print its terms. Exit 0 when valid, 1 when refused.
    Verify {
        /// The licence file.
        file: PathBuf,
        /// Check that it is bound to this node id.
        #[arg(long)]
        node: Option<String>,
        /// Also trust the TEST key (as a Denwa in dev mode does).
        #[arg(long)]
        test_key: bool,
        /// Also trust this public key file.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Check validity at this instant instead of now (RFC 3339 UTC or YYYY-MM-DD).
        #[arg(long, value_parser = date_arg)]
        at: Option<DateTime<Utc>>,
        /// Print the verified licence as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy)]
struct LimitArg(Option<u32>);

fn limit_arg(s: &str) -> Result<LimitArg, String> {
    parse_limit(s).map(LimitArg)
}

fn date_arg(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    parse_utc(s)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("denwa-license: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Keygen {
            out,
            public_out,
            force,
        } => {
            let key = SigningKey::generate();
            let comment = format!(
                "Denwa licence signing key (PRIVATE). Made {}.\nWhoever holds this file can issue Denwa licences: keep it offline, never in a repository.",
                rfc3339(Utc::now())
            );
            write_file(&out, &key.to_file_text(&comment), 0o600, force)?;
            let public = key
                .public_key()
                .to_file_text("Denwa licence verification key (public)");
            if let Some(path) = public_out {
                write_file(&path, &public, 0o644, force)?;
            }
            print!("{public}");
            eprintln!(
                "wrote private key {} (key id {})",
                out.display(),
                key.key_id()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Issue {
            key,
            customer,
            topology,
            nodes,
            evaluation,
            extensions,
            calls,
            tenants,
            trunks,
            valid_from,
            valid_until,
            features,
            id,
            out,
            force,
        } => {
            let key = read_text(&key, 64 * 1024)?;
            let key = SigningKey::parse(&key).map_err(|e| format!("--key: {e}"))?;
            let now = Utc::now().trunc_subsecs(0);
            let id = match id {
                Some(id) => id,
                None => new_license_id(now, rand::random()),
            };
            let terms = License {
                id,
                customer,
                kind: if evaluation {
                    LicenseKind::Evaluation
                } else {
                    LicenseKind::Standard
                },
                topology,
                nodes,
                limits: Limits {
                    extensions: extensions.0,
                    concurrent_calls: calls.0,
                    tenants: tenants.0,
                    trunks: trunks.0,
                },
                features: features.into_iter().collect::<BTreeSet<_>>(),
                valid_from: valid_from.unwrap_or(now),
                valid_until,
                issued_at: now,
            };
            let text = issue(&terms, &key).map_err(|e| e.to_string())?;
            write_file(&out, &text, 0o644, force)?;
            println!("{}", terms.id);
            eprintln!("wrote {} signed by key {}", out.display(), key.key_id());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            file,
            node,
            test_key,
            public_key,
            at,
            json,
        } => {
            let mut keys = if test_key {
                Keyring::with_test_key()
            } else {
                Keyring::vendor()
            };
            if let Some(path) = public_key {
                let text = read_text(&path, 64 * 1024)?;
                keys.add(PublicKey::parse(&text).map_err(|e| format!("--public-key: {e}"))?);
            }
            let bytes = read_bytes(&file, MAX_LICENSE_BYTES)?;
            let now = at.unwrap_or_else(Utc::now);
            let checked = verify_signature(&bytes, &keys).and_then(|v| {
                v.check_time(now)?;
                if let Some(node) = &node {
                    v.check_node(node)?;
                }
                Ok(v)
            });
            let verified = match checked {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("refused ({}): {e}", e.code());
                    return Ok(ExitCode::FAILURE);
                }
            };
            if json {
                let text = serde_json::to_string_pretty(&verified).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                let l = &verified.license;
                println!(
                    "valid: {}",
                    Entitlement::licensed(verified.clone()).summary(now)
                );
                println!("  kind: {}", l.kind);
                println!(
                    "  signed by key: {}{}",
                    verified.key_id,
                    if verified.test_key { " (TEST key)" } else { "" }
                );
                println!(
                    "  nodes: {}",
                    if l.nodes.is_empty() {
                        "any".to_owned()
                    } else {
                        l.nodes.join(", ")
                    }
                );
                println!("  valid from: {}", rfc3339(l.valid_from));
                println!("  issued at: {}", rfc3339(l.issued_at));
                let features: Vec<&str> = l.features.iter().map(String::as_str).collect();
                println!(
                    "  features: {}",
                    if features.is_empty() {
                        "none".to_owned()
                    } else {
                        features.join(", ")
                    }
                );
                if node.is_none() {
                    println!("  (not checked against a node: pass --node ID)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads at most `max` bytes; a longer file is refused rather than read whole.
fn read_bytes(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

fn read_text(path: &Path, max: usize) -> Result<String, String> {
    let bytes = read_bytes(path, max)?;
    if bytes.len() > max {
        return Err(format!("{}: larger than {max} bytes", path.display()));
    }
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

fn write_file(path: &Path, text: &str, mode: u32, force: bool) -> Result<(), String> {
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}
