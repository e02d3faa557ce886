//! Conference rooms (`conf:NUMBER`): who may join (an optional PIN), how many, and how they
//! join. The engine runs the room itself (PIN entry, join and leave tones, mute by `*`); this
//! module is the room's configuration and its checks.

use serde::{Deserialize, Serialize};

use crate::ivr::SpecError;

/// A room's settings (stored as JSON; every field has a default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomSpec {
    /// Name shown in the panel.
    pub name: String,
    /// Digits a caller must enter to join (empty: none).
    pub pin: String,
    /// Most participants at once (the next caller hears "the conference is full").
    pub max_participants: u32,
    /// Participants join muted (listen only) until they press `*`.
    pub join_muted: bool,
    /// A tone tells the room when someone joins or leaves.
    pub join_tones: bool,
}

impl Default for RoomSpec {
    fn default() -> Self {
        RoomSpec {
            name: String::new(),
            pin: String::new(),
            max_participants: 20,
            join_muted: false,
            join_tones: true,
        }
    }
}

impl RoomSpec {
    /// Checks ranges and the PIN's form.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |field: &str, reason: &str| {
            Err(SpecError {
                field: field.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.name.chars().count() > 64 {
            return err("name", "at most 64 characters");
        }
        if !self.pin.is_empty()
            && (!(4..=12).contains(&self.pin.len())
                || !self.pin.bytes().all(|b| b.is_ascii_digit()))
        {
            return err("pin", "4-12 digits (or empty for no PIN)");
        }
        if !(2..=200).contains(&self.max_participants) {
            return err("max_participants", "must be 2-200");
        }
        Ok(())
    }
}

/// Prompt ids a room plays.
pub mod prompts {
    /// "Please enter the conference PIN, then press the hash key."
    pub const ENTER_PIN: &str = "conf-enter-pin";
    /// "That PIN is not correct."
    pub const WRONG_PIN: &str = "conf-wrong-pin";
    /// "You are now in the conference."
    pub const JOINED: &str = "conf-joined";
    /// "You are the only participant."
    pub const ONLY: &str = "conf-only-participant";
    /// "You are muted."
    pub const MUTED: &str = "conf-muted";
    /// "You are no longer muted."
    pub const UNMUTED: &str = "conf-unmuted";
    /// "The conference is full."
    pub const FULL: &str = "conf-full";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        assert_eq!(RoomSpec::default().validate(), Ok(()));
        let bad = |r: RoomSpec| r.validate().map_err(|e| e.field);
        assert_eq!(
            bad(RoomSpec {
                pin: "12a4".into(),
                ..RoomSpec::default()
            }),
            Err("pin".into())
        );
        assert_eq!(
            bad(RoomSpec {
                pin: "123".into(),
                ..RoomSpec::default()
            }),
            Err("pin".into())
        );
        assert_eq!(
            bad(RoomSpec {
                max_participants: 1,
                ..RoomSpec::default()
            }),
            Err("max_participants".into())
        );
        let r: RoomSpec = serde_json::from_str(r#"{"pin":"4321"}"#).expect("defaults");
        assert_eq!((r.max_participants, r.join_tones), (20, true));
        assert!(serde_json::from_str::<RoomSpec>(r#"{"colour":"red"}"#).is_err());
    }
}
