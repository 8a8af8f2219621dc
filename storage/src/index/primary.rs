//! The primary index: key -> location of the key's latest record.
//!
//! Open addressing with linear probing over one `Vec` of 16-byte slots (key, packed location):
//! no allocation per entry, one cache line touched per lookup in the common case. Key 0 marks an
//! empty slot, which is why keys are non-zero. Deletion shifts the following run back (no
//! tombstones), so lookups stay short however many deletes happen.
//!
//! The table grows without stopping its writer: when it would be more than 70 % full, a table
//! twice the size takes every new key, and each later insert moves the next few slots of the
//! old table into it, so no insert rehashes more than [`MOVED_PER_INSERT`] slots (rehashing a
//! table of millions of keys at once held the log's state lock for hundreds of milliseconds).
//! Until the old table is empty it is read after the new one; its moved and removed keys are
//! marked gone rather than emptied, so the probe runs through them still reach the keys behind.
//!
//! A checkpoint reads the table a chunk of slots at a time while the log goes on writing
//! ([`PrimaryIndex::capture_some`]): it must find every key that does not change meanwhile.
//! Inserts never move other keys and a growth moves keys only into a newer table, which the
//! capture reads after the older one; a deletion's backward shift can move a key to a slot the
//! capture has passed, so while a capture runs the keys shifted are noted and read again at its
//! end.

use super::Location;
use crate::log::segment::prefetch_read;

/// The table doubles before it would be more than 70 % full; that keeps
/// linear-probe runs short.
const LOAD_NUMERATOR: usize = 7;
const LOAD_DENOMINATOR: usize = 10;
const SLOTS_MIN: usize = 16;
/// Old-table slots moved into the new table by each insert while the table grows: the old
/// table (at most 70 % full) is empty after a fifth of its slot count of inserts, by when the
/// new one is under 50 % full, so a growth always ends before the next is due.
pub const MOVED_PER_INSERT: usize = 16;
/// An old-table slot whose key has moved or been removed (a real location never packs to it).
const GONE: u64 = u64::MAX;
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

impl Slot {
    /// Whether the slot holds a key: neither empty nor, in an old table, gone.
    fn holds_key(&self) -> bool {
        self.key != 0 && self.location != GONE
    }
}

/// Key -> location, with fixed-size slots.
#[derive(Clone)]
pub struct PrimaryIndex {
    slots: Vec<Slot>,
    /// Keys in `slots`.
    len: usize,
    shift: u32,
    /// The table before the last growth, while its keys are still being moved.
    old: Option<OldTable>,
    /// Growths so far: the current table's number (the old table's is one less).
    generation: u64,
    /// While a capture runs: the keys a deletion shifted into an earlier slot.
    shifted: Option<ShiftedKeys>,
}

/// Keys shifted by deletions while a capture runs, up to [`SHIFTED_KEYS_MAX`].
#[derive(Clone, Debug, Default)]
struct ShiftedKeys {
    keys: Vec<u64>,
    overflowed: bool,
}

/// Shifted keys a capture notes at most (8 MiB); past that it fails and is tried again later.
const SHIFTED_KEYS_MAX: usize = 1 << 20;

/// Where a capture of the index has got to: a table, by its generation, and a slot in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CaptureCursor {
    generation: u64,
    slot: usize,
}

/// The table a growth is emptying: read after the new one, never inserted into.
#[derive(Clone)]
struct OldTable {
    slots: Vec<Slot>,
    shift: u32,
    /// Keys still here (not gone).
    len: usize,
    /// Slots before this one have been moved.
    moved_to: usize,
}

impl OldTable {
    fn home(&self, key: u64) -> usize {
        home(key, self.shift)
    }

    /// The slot holding `key` (not gone), if any.
    fn find(&self, key: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut slot = self.home(key);
        loop {
            let entry = self.slots[slot];
            if entry.key == key {
                return (entry.location != GONE).then_some(slot);
            }
            if entry.key == 0 {
                return None;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Marks the key in `slot` gone and gives its location.
    fn take(&mut self, slot: usize) -> u64 {
        let location = std::mem::replace(&mut self.slots[slot].location, GONE);
        self.len -= 1;
        location
    }
}

/// `count` empty slots, from memory the allocator hands out zeroed (fresh pages of a large
/// table are mapped on first touch, spread over the inserts that fill it), not written one by
/// one: filling a table of 2^24 slots took as long as a growth's whole rehash.
fn zeroed_slots(count: usize) -> Vec<Slot> {
    let layout = std::alloc::Layout::array::<Slot>(count).expect("a table that fits in memory");
    assert!(layout.size() > 0, "a table of no slots");
    // SAFETY: the layout's size is non-zero (asserted); all-zero bytes are a valid `Slot` (two
    // integers; key 0 is the empty slot); and the pointer comes from the global allocator with
    // exactly the layout of a `Vec<Slot>` of `count` elements, as `from_raw_parts` requires.
    unsafe {
        let pointer = std::alloc::alloc_zeroed(layout).cast::<Slot>();
        if pointer.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(pointer, count, count)
    }
}

/// Old tables of at least this many bytes are freed on a thread of their own.
const FREED_APART_BYTES_MIN: usize = 1 << 20;

/// Frees an emptied old table. A large one is handed to a short-lived thread: returning tens
/// of megabytes to the system takes milliseconds, and the insert that empties the table runs
/// under the log's state lock, where every reader of the shard would wait for it.
fn free_slots(slots: Vec<Slot>) {
    if slots.len() * std::mem::size_of::<Slot>() < FREED_APART_BYTES_MIN {
        return;
    }
    let freeing = std::thread::Builder::new()
        .name("spine-index-free".into())
        .spawn(move || drop(slots));
    // Without a thread (none to be had), the table is freed here, as it would have been.
    drop(freeing);
}

impl ShiftedKeys {
    fn note(&mut self, key: u64) {
        if self.keys.len() < SHIFTED_KEYS_MAX {
            self.keys.push(key);
        } else {
            self.overflowed = true;
        }
    }
}

fn home(key: u64, shift: u32) -> usize {
    ((key & HOME_KEY_MASK).wrapping_mul(HASH_MULTIPLIER) >> shift) as usize
}

impl PrimaryIndex {
    /// An index sized to hold `keys` entries without growing.
    pub fn with_capacity(keys: usize) -> Self {
        let wanted = keys.saturating_mul(LOAD_DENOMINATOR) / LOAD_NUMERATOR + 1;
        let slot_count = wanted.max(SLOTS_MIN).next_power_of_two();
        Self {
            slots: zeroed_slots(slot_count),
            len: 0,
            shift: 64 - slot_count.trailing_zeros(),
            old: None,
            generation: 0,
            shifted: None,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len + self.old.as_ref().map_or(0, |old| old.len)
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the table uses (both tables while it grows).
    pub fn memory_bytes(&self) -> usize {
        let old = self.old.as_ref().map_or(0, |old| old.slots.len());
        (self.slots.len() + old) * std::mem::size_of::<Slot>()
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot a key's search starts at. The key's top byte is left out, so keys that differ
    /// only there (an application's namespaces for one entity) start at the same slot and end
    /// up side by side, often in one cache line.
    fn home(&self, key: u64) -> usize {
        home(key, self.shift)
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
                let old = self.old.as_ref()?;
                return old
                    .find(key)
                    .map(|slot| Location::unpack(old.slots[slot].location));
            }
            slot = (slot + 1) & self.mask();
        }
    }

    /// Moves `key` to `to` if the index finds it at `from` (a compaction moving the records
    /// it copied); whether it did. One probe, and never a step of a growth: the move changes
    /// no key's presence.
    pub fn move_if_at(&mut self, key: u64, from: Location, to: Location) -> bool {
        assert_ne!(key, 0, "key 0 is reserved for empty slots");
        let (from, to) = (from.pack(), to.pack());
        let mask = self.mask();
        let mut slot = self.home(key);
        loop {
            let entry = &mut self.slots[slot];
            if entry.key == key {
                return entry.location == from && {
                    entry.location = to;
                    true
                };
            }
            if entry.key == 0 {
                break;
            }
            slot = (slot + 1) & mask;
        }
        let Some(old) = self.old.as_mut() else {
            return false;
        };
        match old.find(key) {
            Some(slot) if old.slots[slot].location == from => {
                old.slots[slot].location = to;
                true
            }
            _ => false,
        }
    }

    /// Sets `key`'s location and returns the previous one.
    pub fn insert(&mut self, key: u64, location: Location) -> Option<Location> {
        assert_ne!(key, 0, "key 0 is reserved for empty slots");
        let packed = location.pack();
        assert_ne!(packed, GONE, "a location that packs to the gone marker");
        if self.old.is_some() {
            self.move_some();
        } else if (self.len + 1) * LOAD_DENOMINATOR > self.slots.len() * LOAD_NUMERATOR {
            self.grow();
        }
        if let Some(old) = self.old.as_mut()
            && let Some(slot) = old.find(key)
        {
            let previous = old.take(slot);
            let in_new = self.insert_new(key, packed);
            assert!(in_new.is_none(), "a key in both tables");
            return Some(Location::unpack(previous));
        }
        self.insert_new(key, packed).map(Location::unpack)
    }

    /// Sets `key`'s packed location in the new table, which has room, and returns the previous
    /// one there.
    fn insert_new(&mut self, key: u64, packed: u64) -> Option<u64> {
        let mut slot = self.home(key);
        loop {
            let entry = &mut self.slots[slot];
            if entry.key == key {
                return Some(std::mem::replace(&mut entry.location, packed));
            }
            if entry.key == 0 {
                *entry = Slot {
                    key,
                    location: packed,
                };
                self.len += 1;
                assert!(
                    self.len * LOAD_DENOMINATOR <= self.slots.len() * LOAD_NUMERATOR,
                    "the table filled past its load while it grew"
                );
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
                let old = self.old.as_mut()?;
                let slot = old.find(key)?;
                return Some(Location::unpack(old.take(slot)));
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
                if let Some(shifted) = &mut self.shifted {
                    shifted.note(entry.key);
                }
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
        Some(removed)
    }

    /// Every (key, location) pair: the new table's in table order, then the old table's.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Location)> + '_ {
        let old = self.old.as_ref().map_or(&[][..], |old| &old.slots[..]);
        self.slots
            .iter()
            .chain(old)
            .filter(|slot| slot.holds_key())
            .map(|slot| (slot.key, Location::unpack(slot.location)))
    }

    /// Moves the next [`MOVED_PER_INSERT`] old-table slots' keys into the new table, and drops
    /// the old table once it is empty.
    fn move_some(&mut self) {
        let Some(mut old) = self.old.take() else {
            return;
        };
        let end = (old.moved_to + MOVED_PER_INSERT).min(old.slots.len());
        for slot in old.moved_to..end {
            let entry = old.slots[slot];
            if entry.holds_key() {
                let location = old.take(slot);
                let previous = self.insert_new(entry.key, location);
                assert!(previous.is_none(), "a key in both tables");
            }
        }
        old.moved_to = end;
        if old.moved_to < old.slots.len() {
            self.old = Some(old);
        } else {
            assert_eq!(old.len, 0, "keys left in an emptied old table");
            free_slots(old.slots);
        }
    }

    /// Rebuilds from a checkpointed table, or `None` if it is not a consistent table.
    pub(crate) fn from_raw_slots(slots: Vec<Slot>, len: usize) -> Option<Self> {
        if slots.len() < SLOTS_MIN || !slots.len().is_power_of_two() {
            return None;
        }
        let shift = 64 - slots.len().trailing_zeros();
        let index = Self {
            slots,
            len,
            shift,
            old: None,
            generation: 0,
            shifted: None,
        };
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

    /// Starts a capture: from now until [`PrimaryIndex::end_capture`] the keys a deletion
    /// shifts are noted. Returns a cursor at the first slot of the oldest table.
    pub(crate) fn begin_capture(&mut self) -> CaptureCursor {
        assert!(self.shifted.is_none(), "one capture at a time");
        self.shifted = Some(ShiftedKeys::default());
        CaptureCursor {
            generation: self.oldest_generation(),
            slot: 0,
        }
    }

    fn oldest_generation(&self) -> u64 {
        self.generation - u64::from(self.old.is_some())
    }

    /// Appends the keys (with their locations) of up to `slots` slots from `cursor` on to
    /// `out`, oldest table first, and moves the cursor past them; whether the newest table's
    /// last slot was read. If the cursor's table has been emptied by a growth since, the
    /// capture goes on from the start of the oldest table there is (every key it held is there
    /// or in a newer one).
    pub(crate) fn capture_some(
        &self,
        cursor: &mut CaptureCursor,
        slots: usize,
        out: &mut Vec<(u64, Location)>,
    ) -> bool {
        let oldest = self.oldest_generation();
        if cursor.generation < oldest {
            *cursor = CaptureCursor {
                generation: oldest,
                slot: 0,
            };
        }
        let table = match &self.old {
            Some(old) if cursor.generation < self.generation => &old.slots,
            _ => &self.slots,
        };
        let end = cursor.slot.saturating_add(slots).min(table.len());
        out.extend(
            table[cursor.slot..end]
                .iter()
                .filter(|slot| slot.holds_key())
                .map(|slot| (slot.key, Location::unpack(slot.location))),
        );
        cursor.slot = end;
        if end < table.len() {
            return false;
        }
        if cursor.generation == self.generation {
            return true;
        }
        *cursor = CaptureCursor {
            generation: cursor.generation + 1,
            slot: 0,
        };
        false
    }

    /// Ends a capture: the keys a deletion shifted meanwhile that are still here, with their
    /// locations now; `None` if there were more than a capture notes.
    pub(crate) fn end_capture(&mut self) -> Option<Vec<(u64, Location)>> {
        let shifted = self.shifted.take().expect("a capture under way");
        if shifted.overflowed {
            return None;
        }
        Some(
            shifted
                .keys
                .into_iter()
                .filter_map(|key| self.get(key).map(|location| (key, location)))
                .collect(),
        )
    }

    /// Starts a growth: a table twice the size takes the keys from now on, and the old one is
    /// emptied into it a few slots an insert.
    fn grow(&mut self) {
        assert!(self.old.is_none(), "a growth while one is under way");
        let bigger = Self::with_capacity(self.slots.len());
        assert!(bigger.slots.len() > self.slots.len());
        let old = std::mem::replace(self, bigger);
        self.generation = old.generation + 1;
        self.shifted = old.shifted;
        self.old = Some(OldTable {
            slots: old.slots,
            shift: old.shift,
            len: old.len,
            moved_to: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    impl PrimaryIndex {
        /// Whether keys of an earlier, smaller table are still being moved.
        fn is_growing(&self) -> bool {
            self.old.is_some()
        }

        /// Moves every key still in the old table.
        fn finish_growing(&mut self) {
            while self.old.is_some() {
                self.move_some();
            }
        }
    }

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
        /// Moves the key from the first value's location to the second's, if it is there.
        MoveIfAt(u64, u32, u32),
        /// Starts a capture, or reads this many more slots of the one under way.
        Capture(usize),
    }

    /// A small key space makes collisions, long probe runs and wrap-around common.
    const KEY_SPACE: u64 = 200;

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            3 => (1..KEY_SPACE, 0u32..1_000_000).prop_map(|(k, v)| Operation::Insert(k, v)),
            // Values a move's `from` names, so that moves find their key where they expect.
            2 => (1..KEY_SPACE, 0u32..4).prop_map(|(k, v)| Operation::Insert(k, v)),
            2 => (1..KEY_SPACE).prop_map(Operation::Remove),
            2 => (1..KEY_SPACE).prop_map(Operation::Get),
            2 => (1..KEY_SPACE, 0u32..4, 0u32..1_000_000)
                .prop_map(|(k, from, to)| Operation::MoveIfAt(k, from, to)),
            2 => (1usize..40).prop_map(Operation::Capture),
        ]
    }

    /// A capture under way in a model test: what the index held when it began, the keys
    /// changed since, and what it has read.
    struct CaptureRun {
        cursor: CaptureCursor,
        at_start: HashMap<u64, Location>,
        touched: std::collections::HashSet<u64>,
        read: Vec<(u64, Location)>,
    }

    impl CaptureRun {
        /// Finishes the capture and checks it: every key unchanged since it began is found,
        /// at its location (a changed key may be found at any location it had meanwhile, or
        /// not at all: the records after the start are replayed over a capture).
        fn finish(mut self, index: &mut PrimaryIndex) -> Result<(), TestCaseError> {
            while !index.capture_some(&mut self.cursor, 7, &mut self.read) {}
            let shifted = index.end_capture().expect("few shifts");
            let found: HashMap<u64, Location> = self.read.into_iter().chain(shifted).collect();
            for (key, location) in &self.at_start {
                if !self.touched.contains(key) {
                    prop_assert_eq!(found.get(key), Some(location), "key {} missed", key);
                }
            }
            Ok(())
        }
    }

    /// Runs `operations` against the index and a model, checking every answer, and that each
    /// capture, read a few slots at a time between the operations, finds every key that did not
    /// change meanwhile.
    fn check_against_a_model(
        operations: Vec<Operation>,
        growths_seen: &mut usize,
    ) -> Result<(), TestCaseError> {
        let mut index = PrimaryIndex::with_capacity(4);
        let mut model: HashMap<u64, Location> = HashMap::new();
        let mut capture: Option<CaptureRun> = None;
        for operation in operations {
            if let (Some(run), Operation::Insert(key, _) | Operation::Remove(key))
            | (Some(run), Operation::MoveIfAt(key, _, _)) = (capture.as_mut(), &operation)
            {
                run.touched.insert(*key);
            }
            match operation {
                Operation::Insert(key, value) => {
                    prop_assert_eq!(
                        index.insert(key, location(value)),
                        model.insert(key, location(value))
                    );
                }
                Operation::Remove(key) => prop_assert_eq!(index.remove(key), model.remove(&key)),
                Operation::Get(key) => prop_assert_eq!(index.get(key), model.get(&key).copied()),
                Operation::MoveIfAt(key, from, to) => {
                    let at = model.get(&key) == Some(&location(from));
                    if at {
                        model.insert(key, location(to));
                    }
                    prop_assert_eq!(index.move_if_at(key, location(from), location(to)), at);
                }
                Operation::Capture(slots) => match capture.as_mut() {
                    None => {
                        capture = Some(CaptureRun {
                            cursor: index.begin_capture(),
                            at_start: model.clone(),
                            touched: std::collections::HashSet::new(),
                            read: Vec::new(),
                        });
                    }
                    Some(run) => {
                        if index.capture_some(&mut run.cursor, slots, &mut run.read) {
                            capture.take().expect("under way").finish(&mut index)?;
                        }
                    }
                },
            }
            *growths_seen += usize::from(index.is_growing());
            prop_assert_eq!(index.len(), model.len());
        }
        if let Some(run) = capture {
            run.finish(&mut index)?;
        }
        for (key, location) in &model {
            prop_assert_eq!(index.get(*key), Some(*location));
        }
        prop_assert_eq!(index.iter().count(), model.len());
        index.finish_growing();
        prop_assert!(!index.is_growing());
        prop_assert_eq!(index.iter().count(), model.len());
        Ok(())
    }

    fn operation_in(keys: u64) -> impl Strategy<Value = Operation> {
        prop_oneof![
            30 => (1..keys, 0u32..1_000_000).prop_map(|(k, v)| Operation::Insert(k, v)),
            10 => (1..keys, 0u32..4).prop_map(|(k, v)| Operation::Insert(k, v)),
            20 => (1..keys).prop_map(Operation::Remove),
            20 => (1..keys).prop_map(Operation::Get),
            10 => (1..keys, 0u32..4, 0u32..1_000_000)
                .prop_map(|(k, from, to)| Operation::MoveIfAt(k, from, to)),
            2 => (1usize..400).prop_map(Operation::Capture),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn agrees_with_a_hash_map(operations in proptest::collection::vec(operation(), 1..600)) {
            check_against_a_model(operations, &mut 0)?;
        }

        /// Enough keys that a growth spans many inserts, so that gets, updates, removes and
        /// checkpoints meet keys in both tables.
        #[test]
        fn agrees_with_a_hash_map_while_it_grows(
            operations in proptest::collection::vec(operation_in(5_000), 2_000..4_000)
        ) {
            let mut growths_seen = 0;
            check_against_a_model(operations, &mut growths_seen)?;
            prop_assert!(growths_seen > 0, "no operation met a growth under way");
        }
    }

    #[test]
    fn no_insert_moves_more_than_its_share() {
        let mut index = PrimaryIndex::with_capacity(16);
        let mut largest_old = 0;
        for key in 1..=200_000u64 {
            let old_before = index.old.as_ref().map_or(0, |old| old.moved_to);
            index.insert(key, location(key as u32));
            if let Some(old) = &index.old {
                assert!(old.moved_to - old_before <= MOVED_PER_INSERT);
                largest_old = largest_old.max(old.slots.len());
            }
        }
        assert!(
            largest_old >= 1 << 17,
            "growths of large tables were spread over inserts"
        );
        for key in 1..=200_000u64 {
            assert_eq!(index.get(key), Some(location(key as u32)));
        }
    }
}
