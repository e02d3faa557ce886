//! Verification keys: key ids, key files and the [`Keyring`] a verifier trusts.
//!
//! Key files are text: any number of `#` comment lines and blank lines, and exactly one line
//! `denwa-license-public-key-v1: <base64 of the 32-byte Ed25519 public key>` (or, for the
//! issuer's private key, `denwa-license-secret-key-v1: <base64 of the 32-byte seed>`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The label of the key line in a public key file.
pub const PUBLIC_KEY_LABEL: &str = "denwa-license-public-key-v1";
/// The label of the key line in a private (signing) key file.
pub const SECRET_KEY_LABEL: &str = "denwa-license-secret-key-v1";

/// The vendor's public key, embedded in every build.
const VENDOR_PUB: &str = include_str!("../keys/vendor.pub");
/// The test public key (its private half is `keys/test.key`, TEST ONLY).
const TEST_PUB: &str = include_str!("../keys/test.pub");

/// Names a key: the first 8 bytes of SHA-256 of the 32-byte public key, as 16 lowercase hex
/// digits. Carried in the licence's `Key-Id` header, shown in errors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of a public key.
    pub fn of(key: &VerifyingKey) -> KeyId {
        KeyId(hex::encode(&Sha256::digest(key.as_bytes())[..8]))
    }

    /// Checks the text form (16 lowercase hex digits).
    pub fn parse(s: &str) -> Option<KeyId> {
        (s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| KeyId(s.to_owned()))
    }

    /// The 16 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a key file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// No key line, or more than one.
    #[error("expected exactly one line starting with \"{expected}:\" (found {found})")]
    NoKeyLine {
        /// The label looked for.
        expected: &'static str,
        /// How many were found.
        found: usize,
    },
    /// A public key was given where a private one is needed, or the other way round.
    #[error("this is a {found} key file; a {wanted} key is needed here")]
    WrongKind {
        /// "public" or "private".
        found: &'static str,
        /// "public" or "private".
        wanted: &'static str,
    },
    /// The key line's value is not base64 of 32 bytes, or not a valid Ed25519 point.
    #[error("the key is not valid: {0}")]
    BadKey(String),
}

/// Finds the one `label: base64` line in a key file and decodes 32 bytes from it.
pub(crate) fn read_key_line(text: &str, label: &'static str) -> Result<[u8; 32], KeyFileError> {
    let (other, other_kind, kind) = if label == PUBLIC_KEY_LABEL {
        (SECRET_KEY_LABEL, "private", "public")
    } else {
        (PUBLIC_KEY_LABEL, "public", "private")
    };
    let lines = || {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    };
    let values: Vec<&str> = lines()
        .filter_map(|l| l.strip_prefix(label).and_then(|r| r.strip_prefix(':')))
        .collect();
    if values.is_empty() && lines().any(|l| l.starts_with(other)) {
        return Err(KeyFileError::WrongKind {
            found: other_kind,
            wanted: kind,
        });
    }
    let [value] = values.as_slice() else {
        return Err(KeyFileError::NoKeyLine {
            expected: label,
            found: values.len(),
        });
    };
    let bytes = B64
        .decode(value.trim())
        .map_err(|e| KeyFileError::BadKey(format!("not base64 ({e})")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| KeyFileError::BadKey(format!("{} bytes; an Ed25519 key is 32", bytes.len())))
}

/// An Ed25519 public key that verifies licences, with its [`KeyId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    /// Reads a public key file (see the module docs).
    pub fn parse(text: &str) -> Result<PublicKey, KeyFileError> {
        let bytes = read_key_line(text, PUBLIC_KEY_LABEL)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyFileError::BadKey("not a point on Ed25519".to_owned()))?;
        Ok(PublicKey::from_verifying_key(key))
    }

    pub(crate) fn from_verifying_key(key: VerifyingKey) -> PublicKey {
        PublicKey {
            id: KeyId::of(&key),
            key,
        }
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The key as a public key file, with a comment line naming its id.
    pub fn to_file_text(&self, comment: &str) -> String {
        let mut out = String::new();
        for line in comment.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("# key id {}\n", self.id));
        out.push_str(&format!(
            "{PUBLIC_KEY_LABEL}: {}\n",
            B64.encode(self.key.as_bytes())
        ));
        out
    }

    /// The vendor's public key embedded in this build (`keys/vendor.pub`).
    pub fn vendor() -> PublicKey {
        embedded(VENDOR_PUB)
    }

    /// The test public key (`keys/test.pub`).
    pub fn test() -> PublicKey {
        embedded(TEST_PUB)
    }
}

fn embedded(text: &str) -> PublicKey {
    // The text is part of this crate's source; a unit test parses both embedded keys.
    PublicKey::parse(text).expect("the public keys under crates/license/keys/ are valid")
}

/// Where a trusted key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// The vendor key embedded in the binary.
    Vendor,
    /// The test key: only in dev mode, tests and the bench.
    Test,
    /// A key the caller added with [`Keyring::add`].
    Added,
}

/// The public keys a verifier trusts.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<(PublicKey, KeyRole)>,
}

impl Keyring {
    /// Production: the embedded vendor key only.
    pub fn vendor() -> Keyring {
        Keyring {
            keys: vec![(PublicKey::vendor(), KeyRole::Vendor)],
        }
    }

    /// Dev mode, tests and the bench: the vendor key and the test key. See the crate docs for how
    /// the binary turns dev mode on.
    pub fn with_test_key() -> Keyring {
        let mut ring = Keyring::vendor();
        ring.keys.push((PublicKey::test(), KeyRole::Test));
        ring
    }

    /// Trusts no key (add some with [`Keyring::add`]).
    pub fn empty() -> Keyring {
        Keyring { keys: Vec::new() }
    }

    /// Also trusts `key` (e.g. a key a test configured). Adding a key twice is harmless.
    pub fn add(&mut self, key: PublicKey) -> &mut Keyring {
        if self.get(key.id()).is_none() {
            self.keys.push((key, KeyRole::Added));
        }
        self
    }

    /// The trusted key with this id, and its role.
    pub fn get(&self, id: &KeyId) -> Option<(&PublicKey, KeyRole)> {
        self.keys
            .iter()
            .find(|(k, _)| k.id() == id)
            .map(|(k, r)| (k, *r))
    }

    /// The ids of every trusted key.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|(k, _)| k.id().clone()).collect()
    }

    /// True when the test key is trusted (dev mode): the binary should say so loudly.
    pub fn trusts_test_key(&self) -> bool {
        self.keys.iter().any(|(_, r)| *r == KeyRole::Test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_keys_parse_and_differ() {
        let vendor = PublicKey::vendor();
        let test = PublicKey::test();
        assert_ne!(vendor.id(), test.id());
        assert_eq!(vendor.id().as_str().len(), 16);
        assert_eq!(
            KeyId::parse(vendor.id().as_str()).as_ref(),
            Some(vendor.id())
        );
    }

    #[test]
    fn keyrings_hold_what_they_say() {
        let vendor = Keyring::vendor();
        assert!(!vendor.trusts_test_key());
        assert!(vendor.get(PublicKey::test().id()).is_none());
        let dev = Keyring::with_test_key();
        assert!(dev.trusts_test_key());
        assert_eq!(
            dev.get(PublicKey::test().id()).map(|(_, r)| r),
            Some(KeyRole::Test)
        );
        let mut added = Keyring::empty();
        added.add(PublicKey::test()).add(PublicKey::test());
        assert_eq!(added.ids(), vec![PublicKey::test().id().clone()]);
    }

    #[test]
    fn public_key_files_round_trip_and_bad_ones_are_refused() {
        let key = PublicKey::test();
        let text = key.to_file_text("a comment\nover two lines");
        assert_eq!(PublicKey::parse(&text).as_ref(), Ok(&key));
        assert!(matches!(
            PublicKey::parse(""),
            Err(KeyFileError::NoKeyLine { found: 0, .. })
        ));
        assert!(matches!(
            PublicKey::parse(&format!("{SECRET_KEY_LABEL}: AAAA")),
            Err(KeyFileError::WrongKind {
                found: "private",
                ..
            })
        ));
        assert!(matches!(
            PublicKey::parse(&format!("{PUBLIC_KEY_LABEL}: AAAA")),
            Err(KeyFileError::BadKey(_))
        ));
        assert!(matches!(
            PublicKey::parse(&format!("{PUBLIC_KEY_LABEL}: not base64!")),
            Err(KeyFileError::BadKey(_))
        ));
        assert!(matches!(
            PublicKey::parse(&format!("{text}{text}")),
            Err(KeyFileError::NoKeyLine { found: 2, .. })
        ));
    }
}
