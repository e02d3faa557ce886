//! The settings the panel and the API may change: their type, range, default and whether the
//! running node applies them at once or after a restart.

use serde::Serialize;
use serde_json::Value;

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

/// One known setting (node-global scope).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Def {
    /// Database key.
    pub key: &'static str,
    /// Value type and range.
    pub kind: Kind,
    /// Value used when the key is not stored.
    pub default: DefaultValue,
    /// True when the node reads it only at start.
    pub restart_required: bool,
    /// Message key of the human description (see [`crate::i18n`]).
    pub label: &'static str,
}

/// A default value (integers or text only).
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

/// Every setting the panel and the API know, in display order.
pub const ALL: &[Def] = &[
    Def {
        key: pbx::setting_keys::NO_ANSWER,
        kind: Kind::Integer { min: 5, max: 600 },
        default: DefaultValue::Int(30),
        restart_required: false,
        label: "set.no_answer",
    },
    Def {
        key: pbx::setting_keys::MIN_EXPIRES,
        kind: Kind::Integer { min: 10, max: 3600 },
        default: DefaultValue::Int(60),
        restart_required: false,
        label: "set.min_expires",
    },
    Def {
        key: pbx::setting_keys::MAX_EXPIRES,
        kind: Kind::Integer {
            min: 60,
            max: 86_400,
        },
        default: DefaultValue::Int(3600),
        restart_required: false,
        label: "set.max_expires",
    },
    Def {
        key: pbx::setting_keys::DEFAULT_EXPIRES,
        kind: Kind::Integer {
            min: 60,
            max: 86_400,
        },
        default: DefaultValue::Int(3600),
        restart_required: false,
        label: "set.default_expires",
    },
    Def {
        key: pbx::setting_keys::KEEPALIVE,
        kind: Kind::Integer { min: 0, max: 3600 },
        default: DefaultValue::Int(30),
        restart_required: false,
        label: "set.keepalive",
    },
    Def {
        key: pbx::setting_keys::MEDIA_TIMEOUT,
        kind: Kind::Integer { min: 5, max: 3600 },
        default: DefaultValue::Int(60),
        restart_required: true,
        label: "set.media_timeout",
    },
    Def {
        // Read by the core since the digest-algorithm work; kept literal so this crate does not
        // depend on when that key constant lands.
        key: "auth.digest_algorithms",
        kind: Kind::DigestAlgorithms,
        default: DefaultValue::Text("MD5"),
        restart_required: false,
        label: "set.digest",
    },
];

/// The definition of `key`.
pub fn find(key: &str) -> Option<&'static Def> {
    ALL.iter().find(|d| d.key == key)
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

impl Def {
    /// Checks a JSON value (numbers may also come as decimal text, as forms send them) and
    /// returns the canonical value to store.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_range_checked() {
        let d = find(pbx::setting_keys::NO_ANSWER).unwrap();
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
        let d = find("auth.digest_algorithms").unwrap();
        assert_eq!(
            d.validate(&json!("sha-256, md5,MD5")),
            Ok(json!("SHA-256,MD5"))
        );
        assert_eq!(d.validate(&json!("MD5-sess")), Err(Invalid::Algorithms));
        assert_eq!(d.validate(&json!(5)), Err(Invalid::Algorithms));
    }

    #[test]
    fn every_label_is_translated() {
        for d in ALL {
            assert!(crate::i18n::has(d.label), "{}", d.label);
        }
    }
}
