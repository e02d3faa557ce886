//! Verification: armour → key → signature → payload → terms → node → time.

use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::format::{self, ArmourError, FORMAT_VERSION, MAX_LICENSE_BYTES};
use crate::keys::{KeyId, Keyring, PublicKey};
use crate::terms::{License, rfc3339};

/// The signed payload: canonical JSON `{"format":1,"license":{...}}`, fields in declaration
/// order, features sorted, times as RFC 3339 UTC seconds, no whitespace.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Payload<L> {
    pub format: u32,
    pub license: L,
}

/// Reads only the version, so an unknown version is reported as such, not as a parse error.
#[derive(Deserialize)]
struct VersionProbe {
    format: serde_json::Value,
}

/// Why a licence file was refused. Every variant's message says what is wrong in words an
/// operator can act on; [`LicenseError::code`] gives a stable token for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// Larger than [`MAX_LICENSE_BYTES`]; not even looked at.
    #[error("the licence file is {len} bytes; a Denwa licence is at most {max} bytes")]
    TooLarge {
        /// The size given.
        len: usize,
        /// [`MAX_LICENSE_BYTES`].
        max: usize,
    },
    /// Not a licence file, or a damaged one.
    #[error("the licence file is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A format version this build does not read.
    #[error(
        "the licence is in format version {found}; this Denwa reads version {supported} (a newer Denwa may be needed)"
    )]
    UnknownVersion {
        /// The version the file says.
        found: String,
        /// [`FORMAT_VERSION`].
        supported: u32,
    },
    /// Signed by a key this keyring does not trust (another vendor, or the test key outside dev
    /// mode).
    #[error("{}", unknown_key_message(.key_id, *.test_key, .trusted))]
    UnknownKey {
        /// The key the file names.
        key_id: KeyId,
        /// True when that is the test key.
        test_key: bool,
        /// The keys that are trusted.
        trusted: Vec<KeyId>,
    },
    /// The signature does not match the payload: the file was altered after signing.
    #[error(
        "the licence signature does not match its contents: the file was altered after key {key_id} signed it"
    )]
    BadSignature {
        /// The key the file names.
        key_id: KeyId,
    },
    /// Validity has not started.
    #[error("the licence is not valid until {} (it is now {})", rfc3339(*.valid_from), rfc3339(*.now))]
    NotYetValid {
        /// When it starts.
        valid_from: DateTime<Utc>,
        /// The time checked against.
        now: DateTime<Utc>,
    },
    /// Validity has ended.
    #[error("the licence expired on {}", rfc3339(*.valid_until))]
    Expired {
        /// When it ended.
        valid_until: DateTime<Utc>,
    },
    /// Bound to other nodes.
    #[error("the licence is for node{} {}; this node is {this_node}", if .nodes.len() == 1 { "" } else { "s" }, .nodes.join(", "))]
    WrongNode {
        /// The node ids the licence names.
        nodes: Vec<String>,
        /// This node's id.
        this_node: String,
    },
    /// Signed, but its terms make no sense (zero extensions, an empty validity period, ...).
    #[error("the licence's terms are not usable: {reason}")]
    InvalidTerms {
        /// What is wrong.
        reason: String,
    },
}

fn unknown_key_message(key_id: &KeyId, test_key: bool, trusted: &[KeyId]) -> String {
    if test_key {
        format!(
            "the licence is signed by the TEST key {key_id}, which only a Denwa in licence dev mode accepts ({}=1); it is not a licence from the vendor",
            crate::DEV_MODE_ENV
        )
    } else {
        let list: Vec<&str> = trusted.iter().map(KeyId::as_str).collect();
        format!(
            "the licence is signed by key {key_id}, which is not a Denwa vendor key (this Denwa trusts {})",
            if list.is_empty() {
                "no key".to_owned()
            } else {
                list.join(", ")
            }
        )
    }
}

impl LicenseError {
    /// A stable snake_case token for the API and logs: `too_large`, `malformed`,
    /// `unknown_version`, `unknown_key`, `bad_signature`, `not_yet_valid`, `expired`,
    /// `wrong_node`, `invalid_terms`.
    pub fn code(&self) -> &'static str {
        match self {
            LicenseError::TooLarge { .. } => "too_large",
            LicenseError::Malformed { .. } => "malformed",
            LicenseError::UnknownVersion { .. } => "unknown_version",
            LicenseError::UnknownKey { .. } => "unknown_key",
            LicenseError::BadSignature { .. } => "bad_signature",
            LicenseError::NotYetValid { .. } => "not_yet_valid",
            LicenseError::Expired { .. } => "expired",
            LicenseError::WrongNode { .. } => "wrong_node",
            LicenseError::InvalidTerms { .. } => "invalid_terms",
        }
    }

    fn malformed(reason: impl Into<String>) -> LicenseError {
        LicenseError::Malformed {
            reason: reason.into(),
        }
    }
}

/// A licence whose signature checked out against a trusted key, with its terms sane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The signed terms.
    pub license: License,
    /// The key that signed it.
    pub key_id: KeyId,
    /// True when that key is the test key (dev mode): the binary should say so wherever it shows
    /// the licence.
    pub test_key: bool,
}

impl Verified {
    /// Refuses when the licence is not bound to `node_id`.
    pub fn check_node(&self, node_id: &str) -> Result<(), LicenseError> {
        if self.license.allows_node(node_id) {
            Ok(())
        } else {
            Err(LicenseError::WrongNode {
                nodes: self.license.nodes.clone(),
                this_node: node_id.to_owned(),
            })
        }
    }

    /// Refuses when `now` is before `valid_from`.
    pub fn check_started(&self, now: DateTime<Utc>) -> Result<(), LicenseError> {
        if now < self.license.valid_from {
            Err(LicenseError::NotYetValid {
                valid_from: self.license.valid_from,
                now,
            })
        } else {
            Ok(())
        }
    }

    /// Refuses when `now` is before `valid_from` or at/after `valid_until`.
    pub fn check_time(&self, now: DateTime<Utc>) -> Result<(), LicenseError> {
        self.check_started(now)?;
        if now >= self.license.valid_until {
            return Err(LicenseError::Expired {
                valid_until: self.license.valid_until,
            });
        }
        Ok(())
    }
}

/// Everything `license install` needs: the file is well-formed, signed by a trusted key, its terms
/// are sane, it names `node_id` (or is an unbound evaluation) and `now` is inside its validity.
pub fn verify(
    text: &[u8],
    keys: &Keyring,
    node_id: &str,
    now: DateTime<Utc>,
) -> Result<Verified, LicenseError> {
    let verified = verify_signature(text, keys)?;
    verified.check_time(now)?;
    verified.check_node(node_id)?;
    Ok(verified)
}

/// The checks that do not depend on where or when: size, armour, version, trusted key,
/// signature, payload and terms. Used by the vendor tool and by [`crate::Entitlement`]; combine
/// with [`Verified::check_node`] and [`Verified::check_time`].
pub fn verify_signature(text: &[u8], keys: &Keyring) -> Result<Verified, LicenseError> {
    if text.len() > MAX_LICENSE_BYTES {
        return Err(LicenseError::TooLarge {
            len: text.len(),
            max: MAX_LICENSE_BYTES,
        });
    }
    let text = std::str::from_utf8(text)
        .map_err(|e| LicenseError::malformed(format!("the file is not UTF-8 text ({e})")))?;
    let armoured = format::parse(text).map_err(|e| match e {
        ArmourError::Malformed(reason) => LicenseError::Malformed { reason },
        ArmourError::UnknownVersion(found) => LicenseError::UnknownVersion {
            found,
            supported: FORMAT_VERSION,
        },
    })?;
    let is_test_key = &armoured.key_id == PublicKey::test().id();
    let Some((key, _role)) = keys.get(&armoured.key_id) else {
        return Err(LicenseError::UnknownKey {
            test_key: is_test_key,
            key_id: armoured.key_id,
            trusted: keys.ids(),
        });
    };
    let signature = Signature::from_bytes(&armoured.signature);
    key.verifying_key()
        .verify_strict(&armoured.payload, &signature)
        .map_err(|_| LicenseError::BadSignature {
            key_id: armoured.key_id.clone(),
        })?;
    // From here on the bytes are the vendor's; parse exactly them.
    let probe: VersionProbe = serde_json::from_slice(&armoured.payload).map_err(|e| {
        LicenseError::malformed(format!("the payload is not a licence object ({e})"))
    })?;
    if probe.format.as_u64() != Some(u64::from(FORMAT_VERSION)) {
        return Err(LicenseError::UnknownVersion {
            found: probe.format.to_string(),
            supported: FORMAT_VERSION,
        });
    }
    let payload: Payload<License> = serde_json::from_slice(&armoured.payload)
        .map_err(|e| LicenseError::malformed(format!("the payload does not parse ({e})")))?;
    payload
        .license
        .check_terms()
        .map_err(|reason| LicenseError::InvalidTerms { reason })?;
    Ok(Verified {
        license: payload.license,
        key_id: armoured.key_id,
        test_key: is_test_key,
    })
}
