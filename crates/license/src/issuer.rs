//! Signing: the vendor's side. Compiled only with the `issuer` feature, which the shipped
//! `denwa` binary never enables.
//!
//! Other crates' tests and the bench mint licences with [`test_signing_key`] (TEST ONLY; accepted
//! only by [`crate::Keyring::with_test_key`]):
//!
//! ```
//! use license::issuer::{issue, test_signing_key};
//! use license::{Keyring, License, LicenseKind, Limits, Topology};
//! use chrono::{TimeDelta, Utc};
//!
//! let now = Utc::now();
//! let terms = License {
//!     id: "T-1".into(),
//!     customer: "bench".into(),
//!     kind: LicenseKind::Standard,
//!     topology: Topology::Standalone,
//!     nodes: vec!["dn-bench".into()],
//!     limits: Limits { extensions: Some(10_001), concurrent_calls: None, tenants: Some(1), trunks: Some(4) },
//!     features: Default::default(),
//!     valid_from: now - TimeDelta::days(1),
//!     valid_until: now + TimeDelta::days(60),
//!     issued_at: now,
//! };
//! let text = issue(&terms, &test_signing_key()).expect("sane terms");
//! let v = license::verify(text.as_bytes(), &Keyring::with_test_key(), "dn-bench", now).expect("valid");
//! assert!(v.test_key);
//! ```

use ed25519_dalek::Signer as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::format::{self, FORMAT_VERSION};
use crate::keys::{KeyFileError, KeyId, PublicKey, SECRET_KEY_LABEL, read_key_line};
use crate::terms::{License, rfc3339};
use crate::verify::{LicenseError, Payload};

/// The test signing key's file (`keys/test.key`). TEST ONLY.
const TEST_KEY: &str = include_str!("../keys/test.key");

/// An Ed25519 signing key. Its file form holds the 32-byte seed; keep it 0600.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id())
    }
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Reads a private key file (`denwa-license-secret-key-v1: <base64 seed>`).
    pub fn parse(text: &str) -> Result<SigningKey, KeyFileError> {
        let seed = read_key_line(text, SECRET_KEY_LABEL)?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The private key file's text, with `comment` as `#` lines.
    pub fn to_file_text(&self, comment: &str) -> String {
        let mut out = String::new();
        for line in comment.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("# key id {}\n", self.key_id()));
        out.push_str(&format!(
            "{SECRET_KEY_LABEL}: {}\n",
            B64.encode(self.0.to_bytes())
        ));
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(self.0.verifying_key())
    }

    /// The matching key id.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.0.verifying_key())
    }
}

/// The TEST ONLY signing key committed as `crates/license/keys/test.key`. Licences it signs are
/// refused by [`crate::Keyring::vendor`].
pub fn test_signing_key() -> SigningKey {
    // Part of this crate's source; a unit test checks it matches keys/test.pub.
    SigningKey::parse(TEST_KEY).expect("crates/license/keys/test.key is a valid key file")
}

/// The canonical payload bytes for `license` (what gets signed).
pub fn payload_bytes(license: &License) -> Vec<u8> {
    // Serialising plain strings, numbers and sets to JSON cannot fail.
    serde_json::to_vec(&Payload {
        format: FORMAT_VERSION,
        license,
    })
    .expect("a licence always serialises")
}

/// Signs `license` and returns the licence file's text. Refuses terms that verification would
/// refuse ([`LicenseError::InvalidTerms`]), so the vendor cannot mint an unusable file.
pub fn issue(license: &License, key: &SigningKey) -> Result<String, LicenseError> {
    license
        .check_terms()
        .map_err(|reason| LicenseError::InvalidTerms { reason })?;
    let comment = format!(
        "Denwa licence {} for {}\n{} {}, nodes: {}, valid {} to {}\nThese comment lines are informational and not signed; `denwa license show` shows the signed terms.",
        license.id,
        license.customer,
        license.kind,
        license.topology,
        if license.nodes.is_empty() {
            "any".to_owned()
        } else {
            license.nodes.join(", ")
        },
        rfc3339(license.valid_from),
        rfc3339(license.valid_until),
    );
    Ok(sign_payload(&comment, &payload_bytes(license), key))
}

/// Signs arbitrary payload bytes into the armour, without checking them. For tests that need a
/// licence with an odd payload (unknown version, nonsense terms); use [`issue`] otherwise.
pub fn sign_payload(comment: &str, payload: &[u8], key: &SigningKey) -> String {
    let signature = key.0.sign(payload).to_bytes();
    format::write(comment, &key.key_id(), &signature, payload)
}

/// A licence id: `DL-` + the UTC date + 8 hex digits from `random`, e.g. `DL-20260501-3f9a0c1e`.
pub fn new_license_id(now: chrono::DateTime<chrono::Utc>, random: [u8; 4]) -> String {
    format!("DL-{}-{}", now.format("%Y%m%d"), hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_key_matches_test_pub_and_is_not_the_vendor_key() {
        let key = test_signing_key();
        assert_eq!(&key.public_key(), &PublicKey::test());
        assert_ne!(key.key_id(), *PublicKey::vendor().id());
        assert!(TEST_KEY.contains("TEST ONLY"));
    }

    #[test]
    fn key_files_round_trip_and_public_keys_are_refused_as_signing_keys() {
        let key = SigningKey::generate();
        let again = SigningKey::parse(&key.to_file_text("x")).expect("round trip");
        assert_eq!(again.key_id(), key.key_id());
        let err = SigningKey::parse(&key.public_key().to_file_text("x")).expect_err("public");
        assert!(err.to_string().contains("public key file"), "{err}");
        assert!(format!("{key:?}").contains(key.key_id().as_str()));
        assert!(!format!("{key:?}").contains(&B64.encode(key.0.to_bytes())));
    }
}
