//! The runtime settings the PBX reads from the database: their keys, types, defaults and limits,
//! in one table that the CLI, the API and the core share.

use serde_json::Value;

/// Type and limits of one setting.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Whole number within `min..=max`.
    Int {
        /// Lowest accepted value.
        min: u64,
        /// Highest accepted value.
        max: u64,
    },
    /// Comma-separated list of digest algorithms.
    DigestAlgorithms,
}

/// One known setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Key in the settings table (node-global).
    pub key: &'static str,
    /// Type and limits.
    pub kind: Kind,
    /// Default as shown to users.
    pub default: &'static str,
    /// Whether a running server applies a change at once (else after a restart).
    pub live: bool,
    /// What it does.
    pub help: &'static str,
}

/// Every setting the PBX reads.
pub const SPECS: &[Spec] = &[
    Spec {
        key: crate::core::keys::NO_ANSWER,
        kind: Kind::Int { min: 5, max: 600 },
        default: "30",
        live: true,
        help: "seconds an unanswered call rings before the caller gets 480",
    },
    Spec {
        key: crate::core::keys::MIN_EXPIRES,
        kind: Kind::Int { min: 10, max: 3600 },
        default: "60",
        live: true,
        help: "shortest registration interval accepted (423 Interval Too Brief below it)",
    },
    Spec {
        key: crate::core::keys::MAX_EXPIRES,
        kind: Kind::Int {
            min: 60,
            max: 86_400,
        },
        default: "3600",
        live: true,
        help: "longest registration interval granted",
    },
    Spec {
        key: crate::core::keys::DEFAULT_EXPIRES,
        kind: Kind::Int {
            min: 60,
            max: 86_400,
        },
        default: "3600",
        live: true,
        help: "registration interval granted when the phone asks for none",
    },
    Spec {
        key: crate::core::keys::KEEPALIVE,
        kind: Kind::Int { min: 0, max: 3600 },
        default: "30",
        live: true,
        help: "seconds between NAT keep-alive OPTIONS to UDP phones behind NAT (0 = off)",
    },
    Spec {
        key: crate::core::keys::MEDIA_TIMEOUT,
        kind: Kind::Int { min: 5, max: 3600 },
        default: "60",
        live: false,
        help: "seconds without RTP (not on hold) after which a call is hung up",
    },
    Spec {
        key: crate::core::keys::DIGEST_ALGORITHMS,
        kind: Kind::DigestAlgorithms,
        default: "MD5",
        live: true,
        help: "digest algorithms offered, in order (MD5, SHA-256); SHA-256 breaks some older phones",
    },
];

/// The spec of `key`.
pub fn spec(key: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.key == key)
}

/// Checks `value` for `key`; returns the JSON value to store or a precise error.
pub fn parse(key: &str, value: &str) -> Result<Value, String> {
    let Some(s) = spec(key) else {
        let known: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
        return Err(format!(
            "unknown setting {key:?}; known settings: {}",
            known.join(", ")
        ));
    };
    match s.kind {
        Kind::Int { min, max } => {
            let v: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{key}: {value:?} is not a whole number"))?;
            if v < min || v > max {
                return Err(format!("{key}: {v} is out of range {min}..={max}"));
            }
            Ok(Value::from(v))
        }
        Kind::DigestAlgorithms => {
            let mut out = Vec::new();
            for a in value.split(',') {
                let a = a.trim();
                match sip::auth::Algorithm::from_token(a) {
                    Some(alg) if !alg.is_sess() => out.push(alg.as_str().to_string()),
                    _ => {
                        return Err(format!(
                            "{key}: unknown digest algorithm {a:?} (use MD5, SHA-256)"
                        ));
                    }
                }
            }
            if out.is_empty() {
                return Err(format!("{key}: give at least one algorithm"));
            }
            Ok(Value::from(out.join(",")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(
            parse(crate::core::keys::NO_ANSWER, "45").unwrap(),
            Value::from(45u64)
        );
        assert!(
            parse(crate::core::keys::NO_ANSWER, "4")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            parse(crate::core::keys::NO_ANSWER, "abc")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(parse("nope", "1").unwrap_err().contains("unknown setting"));
        assert_eq!(
            parse(crate::core::keys::DIGEST_ALGORITHMS, "SHA-256, MD5").unwrap(),
            Value::from("SHA-256,MD5")
        );
        assert!(parse(crate::core::keys::DIGEST_ALGORITHMS, "SHA1").is_err());
    }
}
