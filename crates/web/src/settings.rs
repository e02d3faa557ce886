//! The settings the panel and the API may change. Their types, ranges, defaults and whether
//! they apply at once come from `engine::settings` (the one table the core reads); this module adds
//! the panel's translated labels.

use engine::settings::keys;
pub use engine::settings::{DefaultValue, Invalid, Kind, Spec as Def};

/// Every setting the panel and the API know, in display order.
pub const ALL: &[Def] = engine::settings::SPECS;

/// The definition of `key`.
pub fn find(key: &str) -> Option<&'static Def> {
    engine::settings::spec(key)
}

/// Message key of the translated "wrong format" message for a setting of `kind`.
pub fn format_message(kind: Kind) -> &'static str {
    match kind {
        Kind::Integer { .. } => "set.integer",
        Kind::DigestAlgorithms => "set.algorithms",
        Kind::ListenAddresses => "set.fmt_listen",
        Kind::PortRange => "set.fmt_range",
        Kind::Address => "set.fmt_address",
        Kind::LogLevel => "set.fmt_log",
        Kind::TimeZone => "set.fmt_tz",
        Kind::Choice(_) => "set.fmt_choice",
        Kind::Token => "set.fmt_token",
        Kind::ClassName => "set.fmt_class",
    }
}

/// Message key of the translated description of `key` (see [`crate::i18n`]).
pub fn label(key: &str) -> &'static str {
    match key {
        keys::NO_ANSWER => "set.no_answer",
        keys::MIN_EXPIRES => "set.min_expires",
        keys::MAX_EXPIRES => "set.max_expires",
        keys::DEFAULT_EXPIRES => "set.default_expires",
        keys::KEEPALIVE => "set.keepalive",
        keys::MEDIA_TIMEOUT => "set.media_timeout",
        keys::DIGEST_ALGORITHMS => "set.digest",
        keys::NODE_SIP_LISTEN => "set.node_sip",
        keys::NODE_ADVERTISE => "set.node_advertise",
        keys::NODE_RTP_PORTS => "set.node_rtp",
        keys::NODE_LOG_LEVEL => "set.node_log",
        keys::REPORTS_TIMEZONE => "set.reports_tz",
        keys::PROMPTS_LANGUAGE => "set.prompts_language",
        keys::PROMPTS_RECORDERS => "set.prompts_recorders",
        keys::MAIL_HOST => "set.mail_host",
        keys::MAIL_PORT => "set.mail_port",
        keys::MAIL_SECURITY => "set.mail_security",
        keys::MAIL_USERNAME => "set.mail_username",
        keys::MAIL_FROM => "set.mail_from",
        keys::TRANSFER_ON_FAILURE => "set.transfer_on_failure",
        keys::TRANSFER_TRANSFEREE_HEARS => "set.transfer_transferee_hears",
        keys::BLF_SHOW_CALLER => "set.blf_show_caller",
        keys::INTERCOM_AUDIO => "set.intercom_audio",
        keys::BLF_MAX_KEYS => "set.blf_max_keys",
        keys::MAIL_CA_FILE => "set.mail_ca_file",
        keys::MAIL_RETRY_S => "set.mail_retry_s",
        keys::TONES_COUNTRY => "set.tones_country",
        keys::MOH_CLASS => "set.moh_class",
        keys::RECORDING_BEEP => "set.recording_beep",
        _ => "set.unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_translated() {
        for d in ALL {
            let l = label(d.key);
            assert_ne!(l, "set.unknown", "{} has no label", d.key);
            assert!(crate::i18n::has(l), "{l}");
        }
    }
}
