//! Which music-on-hold class a call hears, and music while waiting alone in a conference.
//!
//! The class is `moh.class`: the tenant's own value ([`crate::tenant_settings`]) over the
//! node's, `default` (the class installed with Denwa) when neither is set. It is what a held
//! party hears (relayed and anchored calls), what a transferee hears while the target rings and
//! what the first participant of a conference hears until a second joins. Parked callers hear
//! their park lot's class (`denwa park set --moh-class`). A class with no files plays `default`
//! (the driver falls back), so a deleted class never means silence.

use tracing::info;

use crate::media::{EndpointId, MediaCommand, PlayItem};
use crate::{Engine, Now};

/// The class installed with Denwa.
pub const DEFAULT_CLASS: &str = "default";

/// A stored `moh.class` value as a class name; `None` when it is not a valid one
/// (lower-case letters, digits, `-`, `_`; 1 to 32 characters).
pub fn class_value(v: &serde_json::Value) -> Option<String> {
    let s = v.as_str()?.trim();
    apps::moh::valid_class(s).then(|| s.to_string())
}

/// The class of `tenant`: its own choice, else the node's.
pub fn class_for<'a>(
    node: &'a str,
    tenants: &'a std::collections::HashMap<i64, String>,
    tenant: i64,
) -> &'a str {
    tenants.get(&tenant).map_or(node, String::as_str)
}

impl Engine {
    /// The hold music of `tenant` as a play item.
    pub(crate) fn hold_music(&self, tenant: i64) -> PlayItem {
        let s = &self.snap.settings;
        PlayItem::Moh {
            tenant,
            class: class_for(&s.moh_class, &s.moh_class_tenants, tenant).to_string(),
        }
    }

    /// Music for a conference member alone in its room, looping until stopped.
    fn conf_music(&mut self, tenant: i64, endpoint: EndpointId) {
        let music = self.hold_music(tenant);
        self.media(MediaCommand::Play {
            endpoint,
            id: 0,
            items: vec![music],
            stop_on_dtmf: false,
            repeat: true,
        });
    }

    /// The join prompts of conference caller `id` ended: alone in the room, it hears music.
    pub(crate) fn conf_play_done(&mut self, id: u64, _now: Now) {
        let Some(call) = self.b2bua.get(id) else {
            return;
        };
        let tenant = call.tenant_id;
        let Some(anchor) = call.anchor.as_deref() else {
            return;
        };
        let Some(seat) = anchor.seat() else {
            return;
        };
        if !seat.joined {
            return;
        }
        let members = self.rooms.get(&seat.bridge).map_or(0, Vec::len);
        if members == 1 {
            info!(
                call = id,
                "alone in the conference: music until someone joins"
            );
            let ep = anchor.caller_endpoint();
            self.conf_music(tenant, ep);
        }
    }

    /// Someone joins a room whose members were `others`: a lone member's music stops.
    pub(crate) fn conf_music_stop(&mut self, others: &[EndpointId]) {
        if let [lone] = others {
            self.media(MediaCommand::StopPlay { endpoint: *lone });
        }
    }

    /// A member left room `bridge`: one left alone hears music again.
    pub(crate) fn conf_music_alone(&mut self, bridge: u64) {
        let Some(&[(call, ep)]) = self.rooms.get(&bridge).map(Vec::as_slice) else {
            return;
        };
        let Some(tenant) = self.b2bua.get(call).map(|c| c.tenant_id) else {
            return;
        };
        self.conf_music(tenant, ep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_over_node_and_valid_names() {
        let mut t = std::collections::HashMap::new();
        t.insert(2, "jazz".to_string());
        assert_eq!(class_for("default", &t, 1), "default");
        assert_eq!(class_for("default", &t, 2), "jazz");
        assert_eq!(class_for("calm", &t, 3), "calm");
        assert_eq!(class_value(&" jazz ".into()), Some("jazz".into()));
        assert_eq!(class_value(&"Jazz Club".into()), None);
        assert_eq!(class_value(&"../x".into()), None);
        assert_eq!(class_value(&serde_json::json!(5)), None);
    }
}
