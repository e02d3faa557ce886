//! The runtime settings the PBX reads from the database: keys, types, ranges, defaults and
//! whether a running node applies a change at once. One table shared by the core, the CLI, the
//! panel and the API, so a value accepted anywhere is a value the core understands.

use serde::Serialize;
use serde_json::Value;

/// Setting keys (`denwa setting list` and docs/operations.md describe each).
pub mod keys {
    /// Seconds an unanswered call rings before 480.
    pub const NO_ANSWER: &str = "calls.no_answer_timeout_s";
    /// Shortest registration interval accepted (423 below).
    pub const MIN_EXPIRES: &str = "registrar.min_expires_s";
    /// Longest registration interval granted.
    pub const MAX_EXPIRES: &str = "registrar.max_expires_s";
    /// Interval granted when the phone asks for none.
    pub const DEFAULT_EXPIRES: &str = "registrar.default_expires_s";
    /// Seconds between NAT keep-alive OPTIONS to UDP phones behind NAT (0 = off).
    pub const KEEPALIVE: &str = "nat.keepalive_interval_s";
    /// Seconds without RTP (not on hold) after which a call is hung up.
    pub const MEDIA_TIMEOUT: &str = "calls.media_timeout_s";
    /// Digest algorithms offered, comma-separated in order of preference (`MD5`, `SHA-256`).
    pub const DIGEST_ALGORITHMS: &str = "auth.digest_algorithms";
    /// Node bootstrap overrides saved from the panel (applied at the next start; flags and
    /// `DENWA_*` variables still win): SIP listen addresses, advertised address, RTP range, log.
    pub const NODE_SIP_LISTEN: &str = "node.sip_listen";
    /// See [`NODE_SIP_LISTEN`].
    pub const NODE_ADVERTISE: &str = "node.advertise";
    /// See [`NODE_SIP_LISTEN`].
    pub const NODE_RTP_PORTS: &str = "node.rtp_ports";
    /// See [`NODE_SIP_LISTEN`].
    pub const NODE_LOG_LEVEL: &str = "node.log_level";
    /// The node's secret for stateless digest nonces (hex; generated on first start).
    pub const DIGEST_SECRET: &str = "auth.digest_secret";
    /// IANA time zone in which report buckets (hours, days, months) are cut.
    pub const REPORTS_TIMEZONE: &str = "reports.timezone";
    /// Language of the prompts callers hear (`en`, `ja`).
    pub const PROMPTS_LANGUAGE: &str = "prompts.language";
    /// Extensions allowed to record prompts by phone (`record_prompt`, `*77` + number):
    /// comma-separated `NUMBER` (the default tenant) or `NUMBER@DOMAIN`; empty = nobody.
    pub const PROMPTS_RECORDERS: &str = "prompts.recorders";
    /// SMTP server voicemail e-mails go through (empty: no e-mail).
    pub const MAIL_HOST: &str = "mail.smtp_host";
    /// Its port.
    pub const MAIL_PORT: &str = "mail.smtp_port";
    /// `starttls`, `tls` (implicit TLS) or `none`.
    pub const MAIL_SECURITY: &str = "mail.smtp_security";
    /// SMTP user name (empty: no authentication).
    pub const MAIL_USERNAME: &str = "mail.smtp_username";
    /// SMTP password: not listed with the settings (set by `denwa voicemail mail-password`).
    pub const MAIL_PASSWORD: &str = "mail.smtp_password";
    /// Sender address of voicemail e-mails.
    pub const MAIL_FROM: &str = "mail.from";
    /// What happens when a blind transfer's target does not answer or is busy and the
    /// transferor has hung up: `callback` (ring the transferor again) or `hangup`.
    pub const TRANSFER_ON_FAILURE: &str = "transfer.on_failure";
    /// What a blind transfer's transferee hears while the target rings: `music` (hold music,
    /// by a re-INVITE to a music endpoint) or `silence` (its media is left alone).
    pub const TRANSFER_TRANSFEREE_HEARS: &str = "transfer.transferee_hears";
    /// BLF (`dialog`) NOTIFYs name the other party of a call (`show`) or not (`hide`).
    pub const BLF_SHOW_CALLER: &str = "blf.show_caller";
    /// Most `dialog`/`presence` subscriptions one extension may hold (BLF keys).
    pub const BLF_MAX_KEYS: &str = "blf.max_keys";
    /// Intercom (`*80` + extension) audio: `two-way`, or `one-way` (the called phone is muted).
    pub const INTERCOM_AUDIO: &str = "intercom.audio";
    /// PEM file of extra CA certificates trusted for the SMTP server (a private relay's own
    /// CA); empty = the public web roots only.
    pub const MAIL_CA_FILE: &str = "mail.smtp_ca_file";
    /// Seconds before the first retry of a failed voicemail e-mail (doubling, at most an hour).
    pub const MAIL_RETRY_S: &str = "mail.retry_first_s";
    /// Country whose call-progress tones (ringback, busy, congestion) Denwa plays: `jp`, `na`.
    pub const TONES_COUNTRY: &str = "tones.country";
    /// Music-on-hold class held parties, transferees and lone conference members hear.
    pub const MOH_CLASS: &str = "moh.class";
    /// When both parties of a call hear a beep about its recording: `toggle` (when a phone
    /// starts or stops one with the record-toggle code), `all` (also when an `always`
    /// recording starts at the answer) or `off`.
    pub const RECORDING_BEEP: &str = "recording.beep";
}

/// The choices of `tones.country`: Japan (NTT) and North America (Precise Tone Plan).
pub const TONE_COUNTRIES: &[&str] = &["jp", "na"];

/// The choices of `intercom.audio`.
pub const INTERCOM_AUDIO_CHOICES: &[&str] = &["two-way", "one-way"];

/// The choices of `blf.show_caller`.
pub const BLF_SHOW_CALLER_CHOICES: &[&str] = &["show", "hide"];

/// The ways to secure the SMTP connection (`mail.smtp_security`).
pub const MAIL_SECURITIES: &[&str] = &["starttls", "tls", "none"];
/// The choices of `transfer.transferee_hears`.
pub const TRANSFER_TRANSFEREE_HEARS_CHOICES: &[&str] = &["music", "silence"];

/// The choices of `transfer.on_failure`.
pub const TRANSFER_ON_FAILURE_CHOICES: &[&str] = &["callback", "hangup"];

/// The languages prompts come in (`prompts.language`).
pub const PROMPT_LANGUAGES: &[&str] = &["en", "ja"];

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
    /// Comma-separated `IP:PORT` list (SIP listen addresses, one per network segment); empty
    /// means "from the configuration file".
    ListenAddresses,
    /// `LOW-HIGH` port range; empty means "from the configuration file".
    PortRange,
    /// An IP address; empty means "from the configuration file".
    Address,
    /// A log level or tracing filter; empty means "from the configuration file".
    LogLevel,
    /// An IANA time zone name such as `Asia/Tokyo` or `UTC`.
    TimeZone,
    /// One of a fixed list of words (stored lower case).
    Choice(&'static [&'static str]),
    /// A word without spaces or control characters, at most 255 characters (host names, e-mail
    /// addresses, user names); may be empty.
    Token,
    /// A music-on-hold class name: lower-case letters, digits, `-` and `_`, 1 to 32 characters.
    ClassName,
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

impl std::fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DefaultValue::Int(n) => write!(f, "{n}"),
            DefaultValue::Text(t) => f.write_str(t),
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
        key: keys::NODE_SIP_LISTEN,
        kind: Kind::ListenAddresses,
        default: DefaultValue::Text(""),
        restart_required: true,
        help: "SIP listen addresses (UDP and TCP), one per network segment, e.g. 10.0.0.5:5060, 192.168.1.5:5060; empty = configuration file",
    },
    Spec {
        key: keys::NODE_ADVERTISE,
        kind: Kind::Address,
        default: DefaultValue::Text(""),
        restart_required: true,
        help: "public address written into SDP and Contact behind NAT; empty = configuration file",
    },
    Spec {
        key: keys::NODE_RTP_PORTS,
        kind: Kind::PortRange,
        default: DefaultValue::Text(""),
        restart_required: true,
        help: "RTP port range of the media relay, e.g. 10000-20000; empty = configuration file",
    },
    Spec {
        key: keys::NODE_LOG_LEVEL,
        kind: Kind::LogLevel,
        default: DefaultValue::Text(""),
        restart_required: true,
        help: "log level (error, warn, info, debug, trace) or filter; empty = configuration file",
    },
    Spec {
        key: keys::DIGEST_ALGORITHMS,
        kind: Kind::DigestAlgorithms,
        default: DefaultValue::Text("MD5"),
        restart_required: false,
        help: "digest algorithms offered, in order (MD5, SHA-256); SHA-256 breaks some older phones",
    },
    Spec {
        key: keys::REPORTS_TIMEZONE,
        kind: Kind::TimeZone,
        default: DefaultValue::Text("UTC"),
        restart_required: false,
        help: "IANA time zone (e.g. Asia/Tokyo) for report hours, days and months; a change rebuilds the reports",
    },
    Spec {
        key: keys::PROMPTS_LANGUAGE,
        kind: Kind::Choice(PROMPT_LANGUAGES),
        default: DefaultValue::Text("en"),
        restart_required: false,
        help: "language of the prompts callers hear: en (English) or ja (Japanese)",
    },
    Spec {
        key: keys::PROMPTS_RECORDERS,
        kind: Kind::Token,
        default: DefaultValue::Text(""),
        restart_required: false,
        help: "extensions allowed to record prompts by phone (record_prompt, *77 + prompt number): comma-separated NUMBER (default tenant) or NUMBER@DOMAIN, no spaces; empty = nobody",
    },
    Spec {
        key: keys::MAIL_HOST,
        kind: Kind::Token,
        default: DefaultValue::Text(""),
        restart_required: false,
        help: "SMTP server for voicemail e-mails (empty = no e-mail)",
    },
    Spec {
        key: keys::MAIL_PORT,
        kind: Kind::Integer {
            min: 1,
            max: 65_535,
        },
        default: DefaultValue::Int(587),
        restart_required: false,
        help: "SMTP port (587 submission with STARTTLS, 465 implicit TLS, 25)",
    },
    Spec {
        key: keys::MAIL_SECURITY,
        kind: Kind::Choice(MAIL_SECURITIES),
        default: DefaultValue::Text("starttls"),
        restart_required: false,
        help: "SMTP connection security: starttls (required), tls (implicit) or none",
    },
    Spec {
        key: keys::MAIL_USERNAME,
        kind: Kind::Token,
        default: DefaultValue::Text(""),
        restart_required: false,
        help: "SMTP user name (empty = no authentication; the password is set with denwa voicemail mail-password)",
    },
    Spec {
        key: keys::MAIL_FROM,
        kind: Kind::Token,
        default: DefaultValue::Text(""),
        restart_required: false,
        help: "sender address of voicemail e-mails",
    },
    Spec {
        key: keys::TRANSFER_ON_FAILURE,
        kind: Kind::Choice(TRANSFER_ON_FAILURE_CHOICES),
        default: DefaultValue::Text("callback"),
        restart_required: false,
        help: "when a transfer target is busy or does not answer after the transferor hung up: callback (ring the transferor again) or hangup",
    },
    Spec {
        key: keys::TRANSFER_TRANSFEREE_HEARS,
        kind: Kind::Choice(TRANSFER_TRANSFEREE_HEARS_CHOICES),
        default: DefaultValue::Text("music"),
        restart_required: false,
        help: "what a transferred caller hears while the transfer target rings: music (hold music) or silence",
    },
    Spec {
        key: keys::BLF_SHOW_CALLER,
        kind: Kind::Choice(BLF_SHOW_CALLER_CHOICES),
        default: DefaultValue::Text("show"),
        restart_required: false,
        help: "whether BLF (dialog) notifications name the other party of a call: show or hide",
    },
    Spec {
        key: keys::BLF_MAX_KEYS,
        kind: Kind::Integer { min: 1, max: 1000 },
        default: DefaultValue::Int(100),
        restart_required: false,
        help: "most BLF/presence subscriptions (keys) one extension may hold",
    },
    Spec {
        key: keys::INTERCOM_AUDIO,
        kind: Kind::Choice(INTERCOM_AUDIO_CHOICES),
        default: DefaultValue::Text("two-way"),
        restart_required: false,
        help: "intercom (*80 + extension) audio: two-way, or one-way (the called phone's microphone is muted in the relay, as a page)",
    },
    Spec {
        key: keys::MAIL_CA_FILE,
        kind: Kind::Token,
        default: DefaultValue::Text(""),
        restart_required: false,
        help: "PEM file of CA certificates to trust for the SMTP server besides the public roots (a private relay's CA); empty = public roots only",
    },
    Spec {
        key: keys::MAIL_RETRY_S,
        kind: Kind::Integer { min: 1, max: 3600 },
        default: DefaultValue::Int(30),
        restart_required: false,
        help: "seconds before the first retry of a failed voicemail e-mail (then doubling, at most an hour; given up after 8 attempts)",
    },
    Spec {
        key: keys::TONES_COUNTRY,
        kind: Kind::Choice(TONE_COUNTRIES),
        default: DefaultValue::Text("jp"),
        restart_required: false,
        help: "call-progress tones Denwa plays (ringback while an anchored call rings): jp (Japan, 400 Hz) or na (North America, 440+480 Hz)",
    },
    Spec {
        key: keys::MOH_CLASS,
        kind: Kind::ClassName,
        default: DefaultValue::Text("default"),
        restart_required: false,
        help: "music-on-hold class held parties, transferred callers and a lone conference member hear (denwa moh list); a class without files plays default",
    },
    Spec {
        key: keys::RECORDING_BEEP,
        kind: Kind::Choice(crate::rec_ctl::BEEP_CHOICES),
        default: DefaultValue::Text("toggle"),
        restart_required: false,
        help: "when both parties hear a beep about call recording: toggle (a phone starts or stops a recording with the record-toggle code, *1), all (also when an always-recorded call is answered: notice where the law asks for it) or off",
    },
];

/// The spec of `key`.
pub fn spec(key: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.key == key)
}

/// The value a node uses for the integer setting `key` given what the database holds: the
/// table's default when nothing (or something unreadable) is stored, the stored number clamped
/// into the table's range otherwise (a value written by hand or before a range changed).
/// Unknown keys and text settings give the stored number, or 0.
pub fn effective_int(key: &str, stored: Option<u64>) -> u64 {
    match spec(key) {
        Some(s) => s.effective_int(stored),
        None => stored.unwrap_or(0),
    }
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
    /// Not in the expected format (the text says which).
    #[error("must be {0}")]
    Format(&'static str),
    /// Not one of the allowed words.
    #[error("must be one of {}", .0.join(", "))]
    Choice(&'static [&'static str]),
}

impl Spec {
    /// The default of an integer setting (`None` for a text setting).
    pub fn default_int(&self) -> Option<u64> {
        match self.default {
            DefaultValue::Int(n) => Some(n),
            DefaultValue::Text(_) => None,
        }
    }

    /// See [`effective_int`].
    pub fn effective_int(&self, stored: Option<u64>) -> u64 {
        match (self.kind, stored) {
            (Kind::Integer { min, max }, Some(v)) => v.clamp(min, max),
            (_, Some(v)) => v,
            (_, None) => self.default_int().unwrap_or(0),
        }
    }

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
            Kind::ListenAddresses => {
                let s = text(v)?;
                if s.is_empty() {
                    return Ok(Value::from(""));
                }
                let mut out = Vec::new();
                for a in s.split(',').map(str::trim) {
                    let addr: std::net::SocketAddr = a
                        .parse()
                        .map_err(|_| Invalid::Format("IP:PORT, separated by commas"))?;
                    if addr.port() == 0 {
                        return Err(Invalid::Format("IP:PORT with a port other than 0"));
                    }
                    out.push(addr.to_string());
                }
                Ok(Value::from(out.join(",")))
            }
            Kind::PortRange => {
                let s = text(v)?;
                if s.is_empty() {
                    return Ok(Value::from(""));
                }
                let bad = Invalid::Format("LOW-HIGH with 1024 <= LOW < HIGH, e.g. 10000-20000");
                let (lo, hi) = s.split_once('-').ok_or(bad.clone())?;
                let (lo, hi): (u16, u16) = match (lo.trim().parse(), hi.trim().parse()) {
                    (Ok(l), Ok(h)) => (l, h),
                    _ => return Err(bad),
                };
                if lo < 1024 || hi <= lo || hi - lo < 3 {
                    return Err(bad);
                }
                Ok(Value::from(format!("{lo}-{hi}")))
            }
            Kind::Address => {
                let s = text(v)?;
                if s.is_empty() {
                    return Ok(Value::from(""));
                }
                let ip: std::net::IpAddr =
                    s.parse().map_err(|_| Invalid::Format("an IP address"))?;
                Ok(Value::from(ip.to_string()))
            }
            Kind::LogLevel => {
                let s = text(v)?;
                let ok = s.split(',').all(|d| {
                    let level = d.rsplit('=').next().unwrap_or("").trim();
                    matches!(
                        level,
                        "" | "off" | "error" | "warn" | "info" | "debug" | "trace"
                    ) && d
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_=:,.-".contains(c))
                });
                if !ok {
                    return Err(Invalid::Format(
                        "error, warn, info, debug or trace (or a filter such as info,pbx=debug)",
                    ));
                }
                Ok(Value::from(s))
            }
            Kind::TimeZone => {
                let s = text(v)?;
                let tz: chrono_tz::Tz = s.parse().map_err(|_| {
                    Invalid::Format("an IANA time zone name such as Asia/Tokyo or UTC")
                })?;
                Ok(Value::from(tz.name()))
            }
            Kind::Choice(allowed) => {
                let s = text(v)
                    .map_err(|_| Invalid::Choice(allowed))?
                    .to_ascii_lowercase();
                allowed
                    .iter()
                    .find(|a| **a == s)
                    .map(|a| Value::from(*a))
                    .ok_or(Invalid::Choice(allowed))
            }
            Kind::ClassName => {
                let s = text(v)?;
                if !apps::moh::valid_class(&s) {
                    return Err(Invalid::Format(
                        "a class name: lower-case letters, digits, - and _, 1 to 32 characters",
                    ));
                }
                Ok(Value::from(s))
            }
            Kind::Token => {
                let s = text(v)?;
                if s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(Invalid::Format(
                        "a value without spaces, at most 255 characters",
                    ));
                }
                Ok(Value::from(s))
            }
        }
    }
}

/// A text value, trimmed.
fn text(v: &Value) -> Result<String, Invalid> {
    v.as_str()
        .map(|s| s.trim().to_string())
        .ok_or(Invalid::Format("text"))
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
    fn defaults_lie_within_their_ranges() {
        for s in SPECS {
            if let Kind::Integer { min, max } = s.kind {
                let d = s.default_int().expect(s.key);
                assert!((min..=max).contains(&d), "{}: default {d}", s.key);
                assert_eq!(s.validate(&s.default.to_json()), Ok(Value::from(d)));
            } else {
                assert!(s.default_int().is_none(), "{}", s.key);
                assert!(s.validate(&s.default.to_json()).is_ok(), "{}", s.key);
            }
        }
    }

    #[test]
    fn effective_integers() {
        assert_eq!(effective_int(keys::MEDIA_TIMEOUT, None), 60);
        assert_eq!(effective_int(keys::MEDIA_TIMEOUT, Some(90)), 90);
        assert_eq!(effective_int(keys::MEDIA_TIMEOUT, Some(1)), 5);
        assert_eq!(effective_int(keys::NO_ANSWER, Some(100_000)), 600);
        assert_eq!(effective_int("nope", Some(7)), 7);
        assert_eq!(DefaultValue::Int(30).to_string(), "30");
        assert_eq!(DefaultValue::Text("MD5").to_string(), "MD5");
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
    fn node_settings() {
        let l = spec(keys::NODE_SIP_LISTEN).unwrap();
        assert_eq!(
            l.validate(&json!("10.0.0.5:5060, 192.168.1.5:5070")),
            Ok(json!("10.0.0.5:5060,192.168.1.5:5070"))
        );
        assert_eq!(l.validate(&json!("")), Ok(json!("")));
        assert!(l.validate(&json!("10.0.0.5")).is_err());
        assert!(l.validate(&json!("10.0.0.5:0")).is_err());
        let r = spec(keys::NODE_RTP_PORTS).unwrap();
        assert_eq!(r.validate(&json!("30000-30100")), Ok(json!("30000-30100")));
        assert!(r.validate(&json!("20000-10000")).is_err());
        assert!(r.validate(&json!("80-90")).is_err());
        let a = spec(keys::NODE_ADVERTISE).unwrap();
        assert_eq!(a.validate(&json!("203.0.113.5")), Ok(json!("203.0.113.5")));
        assert!(a.validate(&json!("example.com")).is_err());
        let g = spec(keys::NODE_LOG_LEVEL).unwrap();
        assert_eq!(
            g.validate(&json!("info,pbx=debug")),
            Ok(json!("info,pbx=debug"))
        );
        assert!(g.validate(&json!("loud")).is_err());
        assert!(g.validate(&json!("info; rm -rf")).is_err());
    }

    #[test]
    fn prompt_language_is_a_choice() {
        let l = spec(keys::PROMPTS_LANGUAGE).unwrap();
        assert_eq!(l.validate(&json!(" JA ")), Ok(json!("ja")));
        assert_eq!(l.validate(&json!("en")), Ok(json!("en")));
        assert_eq!(
            l.validate(&json!("fr")),
            Err(Invalid::Choice(PROMPT_LANGUAGES))
        );
        assert!(
            parse(keys::PROMPTS_LANGUAGE, "de")
                .unwrap_err()
                .contains("must be one of en, ja")
        );
    }

    #[test]
    fn tone_country_and_moh_class() {
        assert_eq!(parse(keys::TONES_COUNTRY, "NA").unwrap(), json!("na"));
        assert!(
            parse(keys::TONES_COUNTRY, "uk")
                .unwrap_err()
                .contains("one of jp, na")
        );
        assert_eq!(parse(keys::MOH_CLASS, " jazz ").unwrap(), json!("jazz"));
        assert!(
            parse(keys::MOH_CLASS, "Jazz")
                .unwrap_err()
                .contains("class name")
        );
        assert!(parse(keys::MOH_CLASS, "../x").is_err());
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
