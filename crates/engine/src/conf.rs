//! Conference rooms (`conf:NUMBER`): a caller answered on an endpoint enters the PIN (when
//! the room has one), joins the room's bridge, where every member hears the others and not
//! itself, mutes and unmutes with `*`; the room hears a tone when someone joins or leaves.
//! Members of one room are opened in one placement group so they mix on one media worker.

use std::time::{Duration, Instant};

use apps::conf::{RoomSpec, prompts};
use tracing::info;

use crate::media::{MediaCommand, PlayItem, ToneKind};
use crate::{Engine, Now};

/// How long a caller has to enter the PIN.
const PIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Wrong PINs before the call is ended.
const PIN_TRIES: u32 = 3;

/// One caller's place in a room.
#[derive(Debug)]
pub(crate) struct Seat {
    pub number: String,
    pub room: RoomSpec,
    /// The room's bridge (and placement group).
    pub bridge: u64,
    /// Digits of the PIN being entered.
    pub digits: String,
    pub tries: u32,
    pub joined: bool,
    pub muted: bool,
    /// When it joined (Unix seconds; 0 before).
    pub joined_at_s: u64,
}

/// A room's bridge id: stable for (tenant, number), with the top bit set so it never equals
/// a call id (which the two-party bridges use).
pub(crate) fn bridge_id(tenant: i64, number: &str) -> u64 {
    // FNV-1a.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant.to_be_bytes().iter().chain(number.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | (1 << 63)
}

impl Seat {
    pub(crate) fn new(tenant: i64, number: &str, room: RoomSpec) -> Seat {
        let bridge = bridge_id(tenant, number);
        Seat {
            number: number.to_string(),
            bridge,
            room,
            digits: String::new(),
            tries: 0,
            joined: false,
            muted: false,
            joined_at_s: 0,
        }
    }
}

impl Engine {
    /// Rooms with participants, as the panel shows them.
    pub fn conferences(&self, now: Now) -> Vec<crate::control::ConfSummary> {
        let mut out: Vec<crate::control::ConfSummary> = Vec::new();
        for members in self.rooms.values() {
            let mut summary: Option<crate::control::ConfSummary> = None;
            for (call_id, _) in members {
                let Some(call) = self.b2bua.get(*call_id) else {
                    continue;
                };
                let Some(seat) = call.anchor.as_deref().and_then(|a| a.seat()) else {
                    continue;
                };
                let s = summary.get_or_insert_with(|| crate::control::ConfSummary {
                    tenant_id: call.tenant_id,
                    number: seat.number.clone(),
                    members: Vec::new(),
                });
                s.members.push(crate::control::ConfMember {
                    call: *call_id,
                    caller: call.caller.clone(),
                    caller_name: call.caller_name.clone(),
                    muted: seat.muted,
                    duration_s: now.mono.duration_since(call.start_mono).as_secs(),
                    joined_at_s: seat.joined_at_s,
                });
            }
            out.extend(summary);
        }
        out.sort_by(|a, b| (a.tenant_id, &a.number).cmp(&(b.tenant_id, &b.number)));
        out
    }

    /// Mutes or unmutes a participant (the panel); false when `call` is in no room.
    pub fn conf_set_mute(&mut self, call: u64, muted: bool, now: Now) -> bool {
        let Some((tenant, lang, anchor)) = self.seat_parts(call) else {
            return false;
        };
        let ep = anchor.caller_endpoint();
        let Some(seat) = anchor.seat_mut() else {
            return false;
        };
        if !seat.joined {
            return false;
        }
        if seat.muted != muted {
            seat.muted = muted;
            let prompt = if muted {
                prompts::MUTED
            } else {
                prompts::UNMUTED
            };
            info!(call, muted, "conference mute from the control panel");
            let play = anchor.play_cmd(vec![Self::prompt(tenant, &lang, prompt)], false);
            self.media(MediaCommand::SetMute {
                endpoint: ep,
                muted,
            });
            self.media(play);
            self.pump_public(now);
        }
        true
    }

    /// What the caller of room `id` hears and does next; `None` when the call is gone.
    fn seat_parts(&mut self, id: u64) -> Option<(i64, String, &mut crate::anchor::Anchor)> {
        let call = self.b2bua.get_mut(id)?;
        let tenant = call.tenant_id;
        let anchor = call.anchor.as_deref_mut()?;
        let lang = anchor.lang().to_string();
        Some((tenant, lang, anchor))
    }

    fn prompt(tenant: i64, lang: &str, id: &str) -> PlayItem {
        PlayItem::Prompt {
            id: id.to_string(),
            tenant,
            lang: lang.to_string(),
        }
    }

    /// The caller was answered: ask for the PIN, or join.
    pub(crate) fn conf_start(&mut self, id: u64, now: Now) {
        let Some((tenant, lang, anchor)) = self.seat_parts(id) else {
            return;
        };
        let Some(seat) = anchor.seat_mut() else {
            return;
        };
        let (bridge, max, has_pin) = (
            seat.bridge,
            seat.room.max_participants,
            !seat.room.pin.is_empty(),
        );
        let members = self.rooms.get(&bridge).map_or(0, Vec::len);
        let Some((_, _, anchor)) = self.seat_parts(id) else {
            return;
        };
        if members >= max as usize {
            info!(call = id, "conference room full");
            let cmd = anchor.play_cmd(vec![Self::prompt(tenant, &lang, prompts::FULL)], false);
            anchor.hangup_after_play();
            return self.media(cmd);
        }
        if has_pin {
            let cmd = anchor.play_cmd(vec![Self::prompt(tenant, &lang, prompts::ENTER_PIN)], true);
            self.arm(id, now.mono + PIN_TIMEOUT);
            return self.media(cmd);
        }
        self.conf_join(id, now);
    }

    fn arm(&mut self, id: u64, at: Instant) {
        if let Some(a) = self.b2bua.get_mut(id).and_then(|c| c.anchor.as_deref_mut()) {
            a.set_deadline(Some(at));
            self.app_timers.insert((at, id));
        }
    }

    /// Puts the caller in the room's bridge and tells everyone.
    fn conf_join(&mut self, id: u64, now: Now) {
        let Some((tenant, lang, anchor)) = self.seat_parts(id) else {
            return;
        };
        let ep = anchor.caller_endpoint();
        let Some(seat) = anchor.seat_mut() else {
            return;
        };
        seat.joined = true;
        seat.joined_at_s = now
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        seat.muted = seat.room.join_muted;
        let (bridge, muted, tones, number) = (
            seat.bridge,
            seat.muted,
            seat.room.join_tones,
            seat.number.clone(),
        );
        anchor.set_deadline(None);
        let members = self.rooms.entry(bridge).or_default();
        let others: Vec<crate::media::EndpointId> = members.iter().map(|(_, e)| *e).collect();
        members.push((id, ep));
        info!(call = id, room = %number, members = others.len() + 1, "joined the conference");
        let mut items = vec![Self::prompt(tenant, &lang, prompts::JOINED)];
        if others.is_empty() {
            items.push(Self::prompt(tenant, &lang, prompts::ONLY));
        }
        if muted {
            items.push(Self::prompt(tenant, &lang, prompts::MUTED));
        }
        let Some((_, _, anchor)) = self.seat_parts(id) else {
            return;
        };
        let play = anchor.play_cmd(items, false);
        self.media(MediaCommand::Join {
            endpoint: ep,
            bridge,
        });
        if muted {
            self.media(MediaCommand::SetMute {
                endpoint: ep,
                muted: true,
            });
        }
        self.media(play);
        self.conf_music_stop(&others);
        if tones {
            self.beep(&others);
        }
    }

    fn beep(&mut self, to: &[crate::media::EndpointId]) {
        for e in to {
            self.media(MediaCommand::Play {
                endpoint: *e,
                id: 0,
                items: vec![PlayItem::Tone(ToneKind::Beep)],
                stop_on_dtmf: false,
                repeat: false,
            });
        }
    }

    /// A member's call ended: out of the room, a tone for the others when the room has them.
    pub(crate) fn conf_left(&mut self, bridge: u64, id: u64, tones: bool) {
        let Some(members) = self.rooms.get_mut(&bridge) else {
            return;
        };
        members.retain(|(c, _)| *c != id);
        let others: Vec<crate::media::EndpointId> = members.iter().map(|(_, e)| *e).collect();
        if others.is_empty() {
            self.rooms.remove(&bridge);
            return;
        }
        // One left alone hears music instead of the tone.
        if tones && others.len() > 1 {
            self.beep(&others);
        }
        self.conf_music_alone(bridge);
    }

    /// A digit from a room's caller: PIN entry, or `*` to mute and unmute.
    pub(crate) fn conf_digit(&mut self, id: u64, digit: char, now: Now) {
        let Some((tenant, lang, anchor)) = self.seat_parts(id) else {
            return;
        };
        let ep = anchor.caller_endpoint();
        let Some(seat) = anchor.seat_mut() else {
            return;
        };
        if seat.joined {
            if digit != '*' {
                return;
            }
            seat.muted = !seat.muted;
            let muted = seat.muted;
            let prompt = if muted {
                prompts::MUTED
            } else {
                prompts::UNMUTED
            };
            info!(call = id, muted, "conference mute");
            let play = anchor.play_cmd(vec![Self::prompt(tenant, &lang, prompt)], false);
            self.media(MediaCommand::SetMute {
                endpoint: ep,
                muted,
            });
            return self.media(play);
        }
        if digit != '#' {
            if seat.digits.len() < 16 {
                seat.digits.push(digit);
            }
            self.media(MediaCommand::StopPlay { endpoint: ep });
            return self.arm(id, now.mono + PIN_TIMEOUT);
        }
        self.conf_check_pin(id, now);
    }

    fn conf_check_pin(&mut self, id: u64, now: Now) {
        let Some((tenant, lang, anchor)) = self.seat_parts(id) else {
            return;
        };
        let Some(seat) = anchor.seat_mut() else {
            return;
        };
        let entered = std::mem::take(&mut seat.digits);
        // Compare every byte, whatever the first difference (no timing hint).
        let pin = seat.room.pin.as_bytes();
        let same = entered.len() == pin.len()
            && entered
                .bytes()
                .zip(pin)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            return self.conf_join(id, now);
        }
        seat.tries += 1;
        let last = seat.tries >= PIN_TRIES;
        info!(call = id, tries = seat.tries, "wrong conference PIN");
        let mut items = vec![Self::prompt(tenant, &lang, prompts::WRONG_PIN)];
        if !last {
            items.push(Self::prompt(tenant, &lang, prompts::ENTER_PIN));
        }
        let play = anchor.play_cmd(items, !last);
        if last {
            anchor.hangup_after_play();
            anchor.set_deadline(None);
        }
        self.media(play);
        if !last {
            self.arm(id, now.mono + PIN_TIMEOUT);
        }
    }

    /// The PIN was not finished in time: as a wrong PIN.
    pub(crate) fn conf_timeout(&mut self, id: u64, now: Now) {
        self.conf_check_pin(id, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_bridges_are_stable_distinct_and_never_call_ids() {
        assert_eq!(bridge_id(1, "800"), bridge_id(1, "800"));
        assert_ne!(bridge_id(1, "800"), bridge_id(2, "800"));
        assert_ne!(bridge_id(1, "800"), bridge_id(1, "801"));
        assert!(bridge_id(1, "800") >= 1 << 63);
    }
}
