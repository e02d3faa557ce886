//! Which country's call-progress tones a call hears: `tones.country` (`jp` Japan, `na` North
//! America), the call's tenant's own value over the node's ([`crate::tenant_settings`]). The
//! tone tables are `media::progress`; the driver renders each country's tones once.
//!
//! Call waiting is the phone's job: a second call to a busy extension reaches its phone as a
//! second INVITE (Denwa forks to it like any call), and the phone plays its own call-waiting
//! beep to its user; the engine never holds a call for a phone that is talking.

use crate::media::{PlayItem, ToneKind};
use crate::{Engine, settings};

/// The tone `kind` of `country` as a play item (`country` not in
/// [`settings::TONE_COUNTRIES`]: the first, Japan).
pub fn tone_item(kind: ToneKind, country: &str) -> PlayItem {
    let country = if settings::TONE_COUNTRIES.contains(&country) {
        country
    } else {
        settings::TONE_COUNTRIES[0]
    };
    PlayItem::CountryTone {
        tone: kind,
        country: country.to_string(),
    }
}

impl Engine {
    /// Call-progress tone `kind` in the country of call `id`'s tenant.
    pub(crate) fn progress_tone(&self, id: u64, kind: ToneKind) -> PlayItem {
        let tenant = self.b2bua.get(id).map_or(1, |c| c.tenant_id);
        tone_item(kind, self.tone_country(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_countries_fall_back_to_japan() {
        assert_eq!(
            tone_item(ToneKind::Busy, "na"),
            PlayItem::CountryTone {
                tone: ToneKind::Busy,
                country: "na".into()
            }
        );
        assert_eq!(
            tone_item(ToneKind::Ringback, "xx"),
            PlayItem::CountryTone {
                tone: ToneKind::Ringback,
                country: "jp".into()
            }
        );
    }
}
