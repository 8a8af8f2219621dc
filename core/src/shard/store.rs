//! What a shard reads from: its log, or (in tests and simulations) an in-memory model of it.
//! The shard's logic sees only this trait, so it runs the same against both.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use spine_storage::{Key, Log, NewRecord, ReadError, RecordView};

use super::record_layout;

/// A record as a shard reads it back.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    /// Its log index.
    pub index: u64,
    /// Its kind.
    pub kind: u8,
    /// Its key, if any.
    pub key: Option<Key>,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Read access to a shard's durable records.
pub trait Store {
    /// Calls `visit` with `key`'s latest record, if it has one.
    fn get<T>(&self, key: Key, visit: impl FnOnce(Stored<'_>) -> T)
    -> Result<Option<T>, ReadError>;

    /// The log index of `key`'s latest record, if it has one (without reading the record).
    fn index_of(&self, key: Key) -> Result<Option<u64>, ReadError>;

    /// Calls `visit` with the record at log index `index`, if there is one.
    fn read<T>(
        &self,
        index: u64,
        visit: impl FnOnce(Stored<'_>) -> T,
    ) -> Result<Option<T>, ReadError>;

    /// Primary keys with a derived key in `from..to` of secondary index `index`, at most
    /// `limit`, in derived-key order.
    fn secondary_range(&self, index: u8, from: &[u8], to: &[u8], limit: usize) -> Vec<Key>;

    /// The index of the last durable record (0 when empty).
    fn last_index(&self) -> u64;

    /// A hint that the records of `keys` are about to be read (see [`Log::prefetch`]).
    fn prefetch(&self, _keys: &[Key]) {}

    /// Where the record at `index` lies, in words an operator can follow to the bytes (a
    /// segment file and an offset), for reports of damage; `None` where there is no file.
    fn place(&self, _index: u64) -> Option<String> {
        None
    }
}

impl<'a> From<RecordView<'a>> for Stored<'a> {
    fn from(view: RecordView<'a>) -> Self {
        Stored {
            index: view.position().index,
            kind: view.kind(),
            key: view.key(),
            payload: view.payload(),
        }
    }
}

impl Store for Log {
    fn get<T>(
        &self,
        key: Key,
        visit: impl FnOnce(Stored<'_>) -> T,
    ) -> Result<Option<T>, ReadError> {
        Log::get(self, key, |view| visit(view.into()))
    }

    fn index_of(&self, key: Key) -> Result<Option<u64>, ReadError> {
        Log::index_of(self, key)
    }

    fn read<T>(
        &self,
        index: u64,
        visit: impl FnOnce(Stored<'_>) -> T,
    ) -> Result<Option<T>, ReadError> {
        Log::read(self, index, |view| visit(view.into()))
    }

    fn secondary_range(&self, index: u8, from: &[u8], to: &[u8], limit: usize) -> Vec<Key> {
        Log::secondary_range(self, index, from, Some(to), limit)
    }

    fn last_index(&self) -> u64 {
        self.last_position().index
    }

    fn prefetch(&self, keys: &[Key]) {
        Log::prefetch(self, keys);
    }

    fn place(&self, index: u64) -> Option<String> {
        let (segment, offset) = self.record_place(index)?;
        let name = segment.file_name().unwrap_or(segment.as_os_str());
        Some(format!(
            "segment {} offset {offset}",
            name.to_string_lossy()
        ))
    }
}

/// An in-memory model of a shard's log: records by index, latest record per key, and the
/// secondary indexes derived by the same function the log uses.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: BTreeMap<u64, NewRecord>,
    latest: HashMap<Key, u64>,
    secondary: BTreeSet<(u8, Vec<u8>, u64)>,
    scratch: Vec<spine_storage::SecondaryKey>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `records` durable, as the log would, at indexes following the last.
    pub fn apply(&mut self, records: Vec<NewRecord>) {
        for record in records {
            let index = self.last_index() + 1;
            if let Some(key) = record.key {
                if let Some(previous) = self.latest.remove(&key) {
                    let old = &self.records[&previous];
                    self.scratch.clear();
                    record_layout::secondary_keys(old.kind, &old.payload, &mut self.scratch);
                    for derived in self.scratch.drain(..) {
                        self.secondary
                            .remove(&(derived.index, derived.key, key.get()));
                    }
                }
                if !record.delete {
                    self.latest.insert(key, index);
                    self.scratch.clear();
                    record_layout::secondary_keys(record.kind, &record.payload, &mut self.scratch);
                    for derived in self.scratch.drain(..) {
                        self.secondary
                            .insert((derived.index, derived.key, key.get()));
                    }
                }
            }
            self.records.insert(index, record);
        }
    }

    fn stored(&self, index: u64) -> Option<Stored<'_>> {
        self.records.get(&index).map(|record| Stored {
            index,
            kind: record.kind,
            key: record.key,
            payload: &record.payload,
        })
    }
}

impl Store for MemoryStore {
    fn get<T>(
        &self,
        key: Key,
        visit: impl FnOnce(Stored<'_>) -> T,
    ) -> Result<Option<T>, ReadError> {
        Ok(self
            .latest
            .get(&key)
            .and_then(|&index| self.stored(index))
            .map(visit))
    }

    fn index_of(&self, key: Key) -> Result<Option<u64>, ReadError> {
        Ok(self.latest.get(&key).copied())
    }

    fn read<T>(
        &self,
        index: u64,
        visit: impl FnOnce(Stored<'_>) -> T,
    ) -> Result<Option<T>, ReadError> {
        Ok(self.stored(index).map(visit))
    }

    fn secondary_range(&self, index: u8, from: &[u8], to: &[u8], limit: usize) -> Vec<Key> {
        self.secondary
            .range((index, from.to_vec(), 0)..(index, to.to_vec(), 0))
            .take(limit)
            .filter_map(|(_, _, primary)| Key::new(*primary))
            .collect()
    }

    fn last_index(&self) -> u64 {
        self.records.last_key_value().map_or(0, |(&index, _)| index)
    }
}
