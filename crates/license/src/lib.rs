//! `license`: Denwa's licence files — format, Ed25519 verification, topology, limits and the
//! free allowance. A pure library: it reads no file, clock, environment or random source; the
//! binary hands it bytes, the node id and the time.
//!
//! # Use from the binary
//!
//! - Start-up and reload: read `<data-dir>/`[`node::NODE_ID_FILE`] (create it with
//!   [`node::new_node_id`] on first start), read the installed licence file if any, and build the
//!   [`Entitlement`] with [`Entitlement::from_installed`]; without a file, or when it is refused,
//!   use [`Entitlement::free`] and show the refusal.
//! - `denwa license install FILE`: [`verify`] with the node id and the current time; on `Ok`
//!   store the file's bytes unchanged, on `Err` change nothing and print the error.
//! - Where objects are created: [`Entitlement::check_writable`] then [`Entitlement::check_limit`];
//!   both errors' messages are meant to be shown as they are.
//! - Panel and CLI: [`Entitlement::summary`], [`Entitlement::status`] (warn on
//!   [`Status::ExpiresSoon`]); `--json` and the API: [`Entitlement::report`].
//!
//! # Dev mode
//!
//! [`Keyring::vendor`] trusts only the vendor key embedded from `keys/vendor.pub`; that is what a
//! production binary uses. [`Keyring::with_test_key`] also trusts the test key
//! (`keys/test.pub`; its private half `keys/test.key` is committed, TEST ONLY), for tests, the
//! bench and development. The crate reads no environment: the binary decides. The intended rule
//! is that `denwa` uses [`Keyring::with_test_key`] when the environment variable
//! [`DEV_MODE_ENV`] (`DENWA_LICENSE_DEV`) is `1`, logs [`DEV_MODE_WARNING`] at start-up, and shows
//! it in `denwa license show` and the panel ([`Keyring::trusts_test_key`],
//! [`Verified::test_key`]).
//!
//! # Issuing
//!
//! With the `issuer` feature: the [`issuer`] module and the vendor tool `denwa-license`
//! (`keygen`, `issue`, `verify`). See the crate README.

pub mod entitlement;
mod format;
#[cfg(feature = "issuer")]
pub mod issuer;
pub mod keys;
pub mod node;
pub mod terms;
pub mod topology;
mod verify;

pub use entitlement::{
    EXPIRY_WARNING_DAYS, Entitlement, FREE_CONCURRENT_CALLS, FREE_EXTENSIONS, FREE_LIMITS,
    FREE_TENANTS, FREE_TOPOLOGY, FREE_TRUNKS, LimitError, ReadOnlyError, Report, Status,
};
pub use format::{FORMAT_VERSION, MAX_LICENSE_BYTES};
pub use keys::{KeyId, KeyRole, Keyring, PublicKey};
pub use terms::{License, LicenseKind, LimitKind, Limits};
pub use topology::Topology;
pub use verify::{LicenseError, Verified, verify, verify_signature};

/// The environment variable the `denwa` binary reads to enter licence dev mode (`1` = trust the
/// test key too). This crate only names it.
pub const DEV_MODE_ENV: &str = "DENWA_LICENSE_DEV";

/// What the binary logs and shows while in dev mode.
pub const DEV_MODE_WARNING: &str = "WARNING: licence dev mode (DENWA_LICENSE_DEV=1): licences signed by the public TEST key are accepted. Never run a production system like this.";
