//! The runtime settings the PBX reads from the database: keys, types, ranges, defaults and
//! whether a running node applies a change at once. One table shared by the core, the CLI, the
//! panel and the API, so a value accepted anywhere is a value the core understands.

use serde::Serialize;
use serde_json::Value;

use crate::core::keys;

/// The shape of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Whole number between `min` and `max`.
    Integer {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// Comma-separated digest algorithms out of `MD5`, `SHA-256`.
    DigestAlgorithms,
}

/// A default value.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum DefaultValue {
    /// A number.
    Int(u64),
    /// A text.
    Text(&'static str),
}

impl DefaultValue {
    /// As JSON.
    pub fn to_json(self) -> Value {
        match self {
            DefaultValue::Int(n) => Value::from(n),
            DefaultValue::Text(t) => Value::from(t),
        }
    }
}

/// One known setting (node-global scope).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spec {
    /// Database key.
    pub key: &'static str,
    /// Value type and range.
    pub kind: Kind,
    /// Value used when the key is not stored.
    pub default: DefaultValue,
    /// True when the node reads it only at start.
    pub restart_required: bool,
    /// What it does (English; the panel translates by key).
    pub help: &'static str,
}

/// Every setting, in display order.
pub const SPECS: &[Spec] = &[
    Spec {
        key: keys::NO_ANSWER,
        kind: Kind::Integer { min: 5, max: 600 },
        default: DefaultValue::Int(30),
        restart_required: false,
        help: "seconds an unanswered call rings before the caller gets 480",
    },
    Spec {
        key: keys::MIN_EXPIRES,
        kind: Kind::Integer { min: 10, max: 3600 },
        default: DefaultValue::Int(60),
        restart_required: false,
        help: "shortest registration interval accepted (423 Interval Too Brief below it)",
    },
    Spec {
        key: keys::MAX_EXPIRES,
        kind: Kind::Integer {
            min: 60,
            max: 86_400,
        },
        default: DefaultValue::Int(3600),
        restart_required: false,
        help: "longest registration interval granted",
    },
    Spec {
        key: keys::DEFAULT_EXPIRES,
        kind: Kind::Integer {
            min: 60,
            max: 86_400,
        },
        default: DefaultValue::Int(3600),
        restart_required: false,
        help: "registration interval granted when the phone asks for none",
    },
    Spec {
        key: keys::KEEPALIVE,
        kind: Kind::Integer { min: 0, max: 3600 },
        default: DefaultValue::Int(30),
        restart_required: false,
        help: "seconds between NAT keep-alive OPTIONS to UDP phones behind NAT (0 = off)",
    },
    Spec {
        key: keys::MEDIA_TIMEOUT,
        kind: Kind::Integer { min: 5, max: 3600 },
        default: DefaultValue::Int(60),
        restart_required: true,
        help: "seconds without RTP (not on hold) after which a call is hung up",
    },
    Spec {
        key: keys::DIGEST_ALGORITHMS,
        kind: Kind::DigestAlgorithms,
        default: DefaultValue::Text("MD5"),
        restart_required: false,
        help: "digest algorithms offered, in order (MD5, SHA-256); SHA-256 breaks some older phones",
    },
];

/// The spec of `key`.
pub fn spec(key: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.key == key)
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not a whole number.
    #[error("must be a whole number")]
    NotInteger,
    /// Out of range.
    #[error("must be between {min} and {max}")]
    Range {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// Not a list of known algorithms.
    #[error("must be a comma-separated list of MD5, SHA-256")]
    Algorithms,
}

impl Spec {
    /// Checks a JSON value (numbers may also come as decimal text, as forms and the command line
    /// send them) and returns the canonical value to store.
    pub fn validate(&self, v: &Value) -> Result<Value, Invalid> {
        match self.kind {
            Kind::Integer { min, max } => {
                let n = match v {
                    Value::Number(n) => n.as_u64().ok_or(Invalid::NotInteger)?,
                    Value::String(s) => s.trim().parse::<u64>().map_err(|_| Invalid::NotInteger)?,
                    _ => return Err(Invalid::NotInteger),
                };
                if n < min || n > max {
                    return Err(Invalid::Range { min, max });
                }
                Ok(Value::from(n))
            }
            Kind::DigestAlgorithms => {
                let s = v.as_str().ok_or(Invalid::Algorithms)?;
                let mut out = Vec::new();
                for a in s.split(',').map(str::trim) {
                    let canon = match a.to_ascii_uppercase().as_str() {
                        "MD5" => "MD5",
                        "SHA-256" => "SHA-256",
                        _ => return Err(Invalid::Algorithms),
                    };
                    if !out.contains(&canon) {
                        out.push(canon);
                    }
                }
                Ok(Value::from(out.join(",")))
            }
        }
    }
}

/// Checks `value` (as typed on a command line) for `key`; the JSON to store or a precise error.
pub fn parse(key: &str, value: &str) -> Result<Value, String> {
    let Some(s) = spec(key) else {
        let known: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
        return Err(format!(
            "unknown setting {key:?}; known settings: {}",
            known.join(", ")
        ));
    };
    s.validate(&Value::from(value))
        .map_err(|e| format!("{key}: {value:?} {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_range_checked() {
        let d = spec(keys::NO_ANSWER).unwrap();
        assert_eq!(d.validate(&json!(45)), Ok(json!(45)));
        assert_eq!(d.validate(&json!("45")), Ok(json!(45)));
        assert_eq!(
            d.validate(&json!(1)),
            Err(Invalid::Range { min: 5, max: 600 })
        );
        assert_eq!(d.validate(&json!(-3)), Err(Invalid::NotInteger));
        assert_eq!(d.validate(&json!(4.5)), Err(Invalid::NotInteger));
        assert_eq!(d.validate(&json!("x")), Err(Invalid::NotInteger));
        assert_eq!(d.validate(&json!(null)), Err(Invalid::NotInteger));
    }

    #[test]
    fn algorithms_are_canonical() {
        let d = spec(keys::DIGEST_ALGORITHMS).unwrap();
        assert_eq!(
            d.validate(&json!("sha-256, md5,MD5")),
            Ok(json!("SHA-256,MD5"))
        );
        assert_eq!(d.validate(&json!("MD5-sess")), Err(Invalid::Algorithms));
        assert_eq!(d.validate(&json!(5)), Err(Invalid::Algorithms));
    }

    #[test]
    fn command_line_values() {
        assert_eq!(parse(keys::NO_ANSWER, "45").unwrap(), json!(45));
        assert!(
            parse(keys::NO_ANSWER, "4")
                .unwrap_err()
                .contains("between 5 and 600")
        );
        assert!(
            parse(keys::NO_ANSWER, "abc")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(parse("nope", "1").unwrap_err().contains("unknown setting"));
    }
}
