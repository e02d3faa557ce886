//! The call table with dirty marking for BLF ([`crate::blf`]): every way to change a call —
//! [`CallTable::get_mut`], [`CallTable::insert`], [`CallTable::remove`] — notes its id, so BLF
//! looks at the calls that changed since it last looked instead of at every call after every
//! SIP message. Reads go through `Deref` to the map; the map's own mutating methods are not
//! reachable (no `DerefMut`), so a new mutation path cannot bypass the marking by accident.
//!
//! [`CallTable::values_mut`] is the one exception, for periodic bookkeeping that BLF does not
//! show (a transfer target's deadline): it marks nothing. Debug builds check after every scan
//! that no unmarked call changed what BLF shows (`Engine::blf_stats().missed`).

use std::collections::{HashMap, HashSet};
use std::ops::Deref;

use crate::b2bua::Call;

/// Calls by id, remembering which changed since [`CallTable::take_touched`].
#[derive(Default)]
pub(crate) struct CallTable {
    map: HashMap<u64, Box<Call>>,
    /// Ids changed, added or removed since BLF last looked (only while `track` is on; bounded
    /// by the calls alive plus those removed since the last look, drained after every input).
    touched: HashSet<u64>,
    /// BLF follows calls (some `dialog`/`presence` subscription exists).
    track: bool,
}

impl Deref for CallTable {
    type Target = HashMap<u64, Box<Call>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl CallTable {
    fn touch(&mut self, id: u64) {
        if self.track {
            self.touched.insert(id);
        }
    }

    /// A call to change (marked as changed).
    pub(crate) fn get_mut(&mut self, id: &u64) -> Option<&mut Box<Call>> {
        if self.map.contains_key(id) {
            self.touch(*id);
        }
        self.map.get_mut(id)
    }

    /// Adds a call (marked as changed).
    pub(crate) fn insert(&mut self, id: u64, call: Box<Call>) -> Option<Box<Call>> {
        self.touch(id);
        self.map.insert(id, call)
    }

    /// Removes a call (marked as changed: BLF shows its dialogs as ended).
    pub(crate) fn remove(&mut self, id: &u64) -> Option<Box<Call>> {
        let call = self.map.remove(id)?;
        self.touch(*id);
        Some(call)
    }

    /// Every call, for bookkeeping BLF does not show (nothing is marked; see the module doc).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Box<Call>> {
        self.map.values_mut()
    }

    /// Starts or stops noting changes (stopping forgets what was noted).
    pub(crate) fn set_tracking(&mut self, on: bool) {
        self.track = on;
        if !on {
            self.touched = HashSet::new();
        }
    }

    /// The calls changed since the last call of this (sorted, so the work is reproducible).
    pub(crate) fn take_touched(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.touched.drain().collect();
        ids.sort_unstable();
        ids
    }
}
