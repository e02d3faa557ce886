//! `testkit`: helpers for Denwa's tests. Not part of the product.
//!
//! Tests that need a server start it themselves here, on 127.0.0.1 with free ports, and stop it
//! when the guard drops. Real peers we did not write (baresip, sipp) are driven by [`baresip`] and
//! [`sipp`]; [`tone`] proves that audio crossed a call in both directions. Everything here is
//! blocking (std threads and sockets): from an async test call it through `spawn_blocking`.

pub mod baresip;
pub mod carrier;
pub mod failure;
pub mod flood;
pub mod licence;
pub mod netns;
pub mod pg;
pub mod ports;
pub mod proc;
pub mod rtp_probe;
pub mod sipp;
pub mod tone;

use std::path::PathBuf;

/// The repository root, for tests that need shared files such as `tests/sipp/`.
pub fn repo_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is crates/testkit at build time; the workspace root is two levels up.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

/// The directory holding the sipp scenarios (`tests/sipp/` in the repository).
pub fn sipp_scenario_dir() -> PathBuf {
    repo_root().join("tests").join("sipp")
}

/// Finds `program` on `PATH`, or explains how to install it (CI runs `scripts/test-deps.sh`).
pub fn require_binary(program: &str) -> Result<PathBuf, MissingBinary> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(MissingBinary {
        program: program.to_owned(),
    })
}

/// A binary a test needs is not installed.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{program}` is not installed (not on PATH); run scripts/test-deps.sh to install the test dependencies"
)]
pub struct MissingBinary {
    /// The program looked for.
    pub program: String,
}

/// The UTC time of day now, `HH:MM:SS.mmm`: a test's own progress lines carry it so they line up
/// with the servers' log lines (which are stamped in UTC).
pub fn utc_time_of_day() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = since.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}
