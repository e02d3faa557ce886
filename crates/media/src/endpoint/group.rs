//! The endpoints of one worker and their bridges, sans-IO. Each tick every endpoint takes one
//! received frame; then each bridge sums its members' frames at the highest member rate and
//! gives every member the sum minus its own part (a muted member adds nothing); then every
//! endpoint builds and sends its frame. A two-member bridge is a transcoding bridge.

use std::collections::HashMap;
use std::time::Instant;

use super::BridgeId;
use super::core::EndpointCore;
use super::rate;

/// Endpoints in slots (the worker's socket tokens index the same slots) and their bridges.
#[derive(Debug, Default)]
pub struct Group {
    slots: Vec<Option<EndpointCore>>,
    free: Vec<usize>,
    bridges: HashMap<BridgeId, Vec<usize>>,
    sum: Vec<i32>,
    parts: Vec<Vec<i16>>,
    frame: Vec<i16>,
    live: usize,
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group::default()
    }

    /// Endpoints held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds an endpoint; returns its slot.
    pub fn insert(&mut self, core: EndpointCore) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(core);
                i
            }
            None => {
                self.slots.push(Some(core));
                self.slots.len() - 1
            }
        }
    }

    /// Takes an endpoint out (leaving its bridge).
    pub fn remove(&mut self, slot: usize) -> Option<EndpointCore> {
        self.leave(slot);
        let core = self.slots.get_mut(slot)?.take()?;
        self.live -= 1;
        self.free.push(slot);
        Some(core)
    }

    /// The endpoint in `slot`.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut EndpointCore> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// The endpoint in `slot`.
    pub fn get(&self, slot: usize) -> Option<&EndpointCore> {
        self.slots.get(slot)?.as_ref()
    }

    /// Every occupied slot with its endpoint.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut EndpointCore)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.as_mut().map(|c| (i, c)))
    }

    /// Puts `slot` into `bridge` (leaving any other).
    pub fn join(&mut self, slot: usize, bridge: BridgeId) {
        self.leave(slot);
        let Some(core) = self.get_mut(slot) else {
            return;
        };
        core.bridge = Some(bridge);
        self.bridges.entry(bridge).or_default().push(slot);
    }

    /// Takes `slot` out of its bridge.
    pub fn leave(&mut self, slot: usize) {
        let Some(core) = self.get_mut(slot) else {
            return;
        };
        let Some(b) = core.bridge.take() else {
            return;
        };
        core.mix_conv = None;
        if let Some(m) = self.bridges.get_mut(&b) {
            m.retain(|&s| s != slot);
            if m.is_empty() {
                self.bridges.remove(&b);
            }
        }
    }

    /// Members of `bridge`.
    pub fn members(&self, bridge: BridgeId) -> &[usize] {
        self.bridges.get(&bridge).map_or(&[], |m| m.as_slice())
    }

    /// One tick for every endpoint.
    pub fn tick(&mut self, now: Instant) {
        for c in self.slots.iter_mut().flatten() {
            c.tick_receive(now);
        }
        let mut bridged = std::mem::take(&mut self.bridges);
        for members in bridged.values_mut() {
            self.mix(members, now);
        }
        self.bridges = bridged;
        for c in self.slots.iter_mut().flatten() {
            if c.bridge.is_none() {
                c.tick_send(now, None);
            }
        }
    }

    fn mix(&mut self, members: &[usize], now: Instant) {
        let mix_rate = members
            .iter()
            .filter_map(|&s| self.get(s).map(|c| c.rate()))
            .max()
            .unwrap_or(8000);
        let mix_len = (mix_rate / 50) as usize;
        self.sum.clear();
        self.sum.resize(mix_len, 0);
        if self.parts.len() < members.len() {
            self.parts.resize_with(members.len(), Vec::new);
        }
        for (k, &slot) in members.iter().enumerate() {
            let part = &mut self.parts[k];
            part.clear();
            let Some(Some(c)) = self.slots.get_mut(slot) else {
                part.resize(mix_len, 0);
                continue;
            };
            if c.muted {
                part.resize(mix_len, 0);
                continue;
            }
            let rate = c.rate();
            if rate == mix_rate {
                part.extend_from_slice(c.heard());
            } else {
                let heard: Vec<i16> = c.heard().to_vec();
                if let Some((up, _)) = converters(c, mix_rate) {
                    up.process(&heard, part);
                }
            }
            part.resize(mix_len, 0);
            for (s, &v) in self.sum.iter_mut().zip(part.iter()) {
                *s += i32::from(v);
            }
        }
        for (k, &slot) in members.iter().enumerate() {
            let Some(Some(c)) = self.slots.get_mut(slot) else {
                continue;
            };
            self.frame.clear();
            let own = &self.parts[k];
            let others = self.sum.iter().zip(own).map(|(&s, &o)| {
                (s - i32::from(o)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
            });
            let rate = c.rate();
            if rate == mix_rate {
                self.frame.extend(others);
            } else {
                let mixed: Vec<i16> = others.collect();
                if let Some((_, down)) = converters(c, mix_rate) {
                    down.process(&mixed, &mut self.frame);
                }
                self.frame.resize(c.frame_len(), 0);
            }
            c.tick_send(now, Some(&self.frame));
        }
    }
}

type Converters<'a> = Option<&'a mut (Box<dyn rate::Resampler>, Box<dyn rate::Resampler>)>;

/// The member's converters to and from `mix_rate`, made on first use or after a rate change.
fn converters(c: &mut EndpointCore, mix_rate: u32) -> Converters<'_> {
    let rate = c.rate();
    let stale = c
        .mix_conv
        .as_ref()
        .is_none_or(|(up, down)| up.input_rate() != rate || down.input_rate() != mix_rate);
    if stale {
        c.mix_conv = Some((
            rate::converter(rate, mix_rate),
            rate::converter(mix_rate, rate),
        ));
    }
    c.mix_conv.as_mut()
}
