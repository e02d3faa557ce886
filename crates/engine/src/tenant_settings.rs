//! Settings a tenant overrides for itself (its own row of the setting; without one the node's
//! value applies): `blf.show_caller` — whether BLF NOTIFYs name the other party — and
//! `intercom.audio` — whether `*80` intercom calls are one-way.

use std::collections::HashMap;

use crate::Engine;

/// The keys a tenant may set for itself.
pub const TENANT_KEYS: &[&str] = &[
    crate::settings::keys::BLF_SHOW_CALLER,
    crate::settings::keys::INTERCOM_AUDIO,
    crate::settings::keys::TONES_COUNTRY,
    crate::settings::keys::MOH_CLASS,
    crate::settings::keys::RECORDING_BEEP,
];

/// A tenant's stored `intercom.audio` as "one-way?"; `None` when invalid.
pub fn one_way_value(v: &serde_json::Value) -> Option<bool> {
    match v.as_str()? {
        "one-way" => Some(true),
        "two-way" => Some(false),
        _ => None,
    }
}

/// `blf.show_caller` of `tenant`: its own choice, else the node's.
pub fn show_caller(node: bool, tenants: &HashMap<i64, bool>, tenant: i64) -> bool {
    tenants.get(&tenant).copied().unwrap_or(node)
}

/// A tenant's stored `tones.country` (`jp`, `na`); `None` when invalid.
pub fn tone_country_value(v: &serde_json::Value) -> Option<String> {
    let s = v.as_str()?.trim().to_ascii_lowercase();
    crate::settings::TONE_COUNTRIES
        .contains(&s.as_str())
        .then_some(s)
}

/// A tenant's stored `blf.show_caller` value as a flag (`show`/`hide`); `None` when invalid.
pub fn show_caller_value(v: &serde_json::Value) -> Option<bool> {
    match v.as_str()? {
        "show" => Some(true),
        "hide" => Some(false),
        _ => None,
    }
}

impl Engine {
    /// Whether BLF NOTIFYs of `tenant` name the other party of a call.
    pub(crate) fn blf_show_caller(&self, tenant: i64) -> bool {
        let s = &self.snap.settings;
        show_caller(s.blf_show_caller, &s.blf_show_caller_tenants, tenant)
    }

    /// The country of the call-progress tones `tenant`'s callers hear (`tones.country`).
    pub(crate) fn tone_country(&self, tenant: i64) -> &str {
        let s = &self.snap.settings;
        s.tone_country_tenants
            .get(&tenant)
            .map_or(s.tone_country.as_str(), String::as_str)
    }

    /// Whether `tenant`'s intercom calls are one-way (the called phone muted).
    pub(crate) fn intercom_one_way(&self, tenant: i64) -> bool {
        let s = &self.snap.settings;
        show_caller(s.intercom_one_way, &s.intercom_one_way_tenants, tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_choice_overrides_the_node() {
        let mut t = HashMap::new();
        t.insert(2, false);
        t.insert(3, true);
        assert!(show_caller(true, &t, 1));
        assert!(!show_caller(true, &t, 2));
        assert!(show_caller(false, &t, 3));
        assert!(!show_caller(false, &t, 1));
        assert_eq!(show_caller_value(&"hide".into()), Some(false));
        assert_eq!(show_caller_value(&"show".into()), Some(true));
        assert_eq!(show_caller_value(&"maybe".into()), None);
    }
}
