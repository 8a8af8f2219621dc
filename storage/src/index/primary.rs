//! The primary index: key -> location of the key's latest record.
//!
//! Open addressing with linear probing over one `Vec` of 16-byte slots (key, packed location):
//! no allocation per entry, one cache line touched per lookup in the common case. Key 0 marks an
//! empty slot, which is why keys are non-zero. Deletion shifts the following run back (no
//! tombstones), so lookups stay short however many deletes happen.

use super::Location;
use crate::log::segment::prefetch_read;

/// The table doubles before it would be more than 70 % full; that keeps
/// linear-probe runs short.
const LOAD_NUMERATOR: usize = 7;
const LOAD_DENOMINATOR: usize = 10;
const SLOTS_MIN: usize = 16;
/// Fibonacci hashing multiplier (2^64 / golden ratio): spreads sequential keys such as NHS
/// numbers evenly.
const HASH_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
/// The key bits that choose a key's home slot: all but the top byte.
const HOME_KEY_MASK: u64 = (1 << 56) - 1;

#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Slot {
    pub(crate) key: u64,
    pub(crate) location: u64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16);

/// Key -> location, with fixed-size slots.
#[derive(Clone)]
pub struct PrimaryIndex {
    slots: Vec<Slot>,
    len: usize,
    shift: u32,
}

impl PrimaryIndex {
    /// An index sized to hold `keys` entries without growing.
    pub fn with_capacity(keys: usize) -> Self {
        let wanted = keys.saturating_mul(LOAD_DENOMINATOR) / LOAD_NUMERATOR + 1;
        let slot_count = wanted.max(SLOTS_MIN).next_power_of_two();
        Self {
            slots: vec![Slot::default(); slot_count],
            len: 0,
            shift: 64 - slot_count.trailing_zeros(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory the table uses.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot a key's search starts at. The key's top byte is left out, so keys that differ
    /// only there (an application's namespaces for one entity) start at the same slot and end
    /// up side by side, often in one cache line.
    fn home(&self, key: u64) -> usize {
        ((key & HOME_KEY_MASK).wrapping_mul(HASH_MULTIPLIER) >> self.shift) as usize
    }

    /// Starts loading the slot where `key`'s search begins (see [`PrimaryIndex::get`]).
    pub fn prefetch(&self, key: u64) {
        prefetch_read(&self.slots[self.home(key)]);
    }

    /// Location of `key`'s latest record.
    pub fn get(&self, key: u64) -> Option<Location> {
        assert_ne!(key, 0, "key 0 is reserved for empty slots");
        let mut slot = self.home(key);
        loop {
            let entry = self.slots[slot];
            if entry.key == key {
                return Some(Location::unpack(entry.location));
            }
            if entry.key == 0 {
                return None;
            }
            slot = (slot + 1) & self.mask();
        }
    }

    /// Sets `key`'s location and returns the previous one.
    pub fn insert(&mut self, key: u64, location: Location) -> Option<Location> {
        assert_ne!(key, 0, "key 0 is reserved for empty slots");
        if (self.len + 1) * LOAD_DENOMINATOR > self.slots.len() * LOAD_NUMERATOR {
            self.grow();
        }
        let packed = location.pack();
        let mut slot = self.home(key);
        loop {
            let entry = &mut self.slots[slot];
            if entry.key == key {
                let previous = entry.location;
                entry.location = packed;
                return Some(Location::unpack(previous));
            }
            if entry.key == 0 {
                *entry = Slot {
                    key,
                    location: packed,
                };
                self.len += 1;
                return None;
            }
            slot = (slot + 1) & self.mask();
        }
    }

    /// Removes `key` and returns its location.
    pub fn remove(&mut self, key: u64) -> Option<Location> {
        assert_ne!(key, 0, "key 0 is reserved for empty slots");
        let mask = self.mask();
        let mut slot = self.home(key);
        loop {
            let entry = self.slots[slot];
            if entry.key == 0 {
                return None;
            }
            if entry.key == key {
                break;
            }
            slot = (slot + 1) & mask;
        }
        let removed = Location::unpack(self.slots[slot].location);
        // Backward-shift deletion: pull later members of the probe run into the hole whenever
        // their home slot does not lie (cyclically) between the hole and their current slot.
        let mut hole = slot;
        let mut next = (hole + 1) & mask;
        loop {
            let entry = self.slots[next];
            if entry.key == 0 {
                break;
            }
            let home = self.home(entry.key);
            let distance_to_next = next.wrapping_sub(home) & mask;
            let distance_to_hole = hole.wrapping_sub(home) & mask;
            if distance_to_hole < distance_to_next {
                self.slots[hole] = entry;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
        Some(removed)
    }

    /// Every (key, location) pair, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Location)> + '_ {
        self.slots
            .iter()
            .filter(|slot| slot.key != 0)
            .map(|slot| (slot.key, Location::unpack(slot.location)))
    }

    /// The raw table, for checkpoints.
    pub(crate) fn raw_slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Rebuilds from a checkpointed table, or `None` if it is not a consistent table.
    pub(crate) fn from_raw_slots(slots: Vec<Slot>, len: usize) -> Option<Self> {
        if slots.len() < SLOTS_MIN || !slots.len().is_power_of_two() {
            return None;
        }
        let shift = 64 - slots.len().trailing_zeros();
        let index = Self { slots, len, shift };
        let mut occupied = 0;
        for (slot_index, slot) in index.slots.iter().enumerate() {
            if slot.key == 0 {
                continue;
            }
            occupied += 1;
            // Every key must be reachable from its home slot without crossing an empty slot.
            let mut probe = index.home(slot.key);
            while probe != slot_index {
                if index.slots[probe].key == 0 {
                    return None;
                }
                probe = (probe + 1) & index.mask();
            }
        }
        (occupied == len).then_some(index)
    }

    fn grow(&mut self) {
        let mut bigger = Self::with_capacity(self.slots.len());
        assert!(bigger.slots.len() > self.slots.len());
        for (key, location) in self.iter() {
            bigger.insert(key, location);
        }
        assert_eq!(bigger.len, self.len);
        *self = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn location(n: u32) -> Location {
        Location {
            segment: n / 7,
            offset: n + 64,
        }
    }

    #[test]
    fn sizes_to_the_requested_capacity_without_growing() {
        let mut index = PrimaryIndex::with_capacity(1000);
        let slots = index.memory_bytes();
        for key in 1..=1000u64 {
            index.insert(key, location(key as u32));
        }
        assert_eq!(index.memory_bytes(), slots);
        assert_eq!(index.len(), 1000);
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Insert(u64, u32),
        Remove(u64),
        Get(u64),
    }

    /// A small key space makes collisions, long probe runs and wrap-around common.
    const KEY_SPACE: u64 = 200;

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            3 => (1..KEY_SPACE, 0u32..1_000_000).prop_map(|(k, v)| Operation::Insert(k, v)),
            2 => (1..KEY_SPACE).prop_map(Operation::Remove),
            2 => (1..KEY_SPACE).prop_map(Operation::Get),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_a_hash_map(operations in proptest::collection::vec(operation(), 1..600)) {
            let mut index = PrimaryIndex::with_capacity(4);
            let mut model: HashMap<u64, Location> = HashMap::new();
            for operation in operations {
                match operation {
                    Operation::Insert(key, value) => {
                        prop_assert_eq!(index.insert(key, location(value)), model.insert(key, location(value)));
                    }
                    Operation::Remove(key) => prop_assert_eq!(index.remove(key), model.remove(&key)),
                    Operation::Get(key) => prop_assert_eq!(index.get(key), model.get(&key).copied()),
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for (key, location) in &model {
                prop_assert_eq!(index.get(*key), Some(*location));
            }
            prop_assert_eq!(index.iter().count(), model.len());
        }
    }
}
