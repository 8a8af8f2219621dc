//! Ordered secondary indexes: derived key -> primary keys, for range and prefix search.
//!
//! The application says how to derive secondary keys from a record ([`SecondaryKeys`]); the log
//! keeps the indexes in step with the primary index: when a key's record is replaced or deleted,
//! the old record's secondary keys are removed and the new record's added.

use std::collections::BTreeSet;

use crate::log::RecordView;

/// Longest derived key, in bytes. Keys are kept inline in the index (no allocation per
/// entry), which holds an entry in 24 bytes.
pub const SECONDARY_KEY_BYTES_MAX: usize = 15;

/// One derived key of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondaryKey {
    /// Which secondary index (`0..index_count()`).
    pub index: u8,
    /// The derived key, at most [`SECONDARY_KEY_BYTES_MAX`] bytes; ordered bytewise.
    pub key: Vec<u8>,
}

/// A derived key stored inline: the bytes padded with zeros, then the length. Ordering the
/// array orders keys bytewise: a key sorts after its own prefixes because, where the padded
/// bytes tie, the longer key has the larger length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct InlineKey([u8; SECONDARY_KEY_BYTES_MAX + 1]);

impl InlineKey {
    /// The key of `bytes`; `None` if longer than [`SECONDARY_KEY_BYTES_MAX`].
    pub(crate) fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > SECONDARY_KEY_BYTES_MAX {
            return None;
        }
        let mut inline = [0u8; SECONDARY_KEY_BYTES_MAX + 1];
        inline[..bytes.len()].copy_from_slice(bytes);
        inline[SECONDARY_KEY_BYTES_MAX] = bytes.len() as u8;
        Some(Self(inline))
    }

    /// The key's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0[..usize::from(self.0[SECONDARY_KEY_BYTES_MAX])]
    }

    fn from_derived(key: &SecondaryKey) -> Self {
        Self::new(&key.key).unwrap_or_else(|| {
            panic!(
                "secondary index {}: a derived key of {} bytes is longer than {SECONDARY_KEY_BYTES_MAX}",
                key.index,
                key.key.len()
            )
        })
    }
}

/// How to derive secondary keys from a record. Must be deterministic: recovery derives them
/// again from the same bytes.
pub trait SecondaryKeys: Send + Sync + 'static {
    /// How many secondary indexes there are.
    fn index_count(&self) -> usize;

    /// Whether records under `key` may carry secondary keys. `false` spares the log a read of
    /// the record a write replaces (to remove its keys); it must hold for every record ever
    /// written under `key`. Default: true.
    fn may_have_keys(&self, _key: u64) -> bool {
        true
    }

    /// Appends the secondary keys of `record` (a keyed record that is not a delete) to `out`.
    /// A key longer than [`SECONDARY_KEY_BYTES_MAX`] is a bug in the extractor: the log
    /// panics rather than index it wrongly.
    fn extract(&self, record: &RecordView<'_>, out: &mut Vec<SecondaryKey>);
}

/// No secondary indexes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecondaryKeys;

impl SecondaryKeys for NoSecondaryKeys {
    fn index_count(&self) -> usize {
        0
    }

    fn extract(&self, _record: &RecordView<'_>, _out: &mut Vec<SecondaryKey>) {}
}

/// One secondary index: (derived key, primary key) pairs in order.
pub(crate) type SecondarySet = BTreeSet<(InlineKey, u64)>;

/// The ordered sets, one per secondary index, of (derived key, primary key).
#[derive(Clone, Debug, Default)]
pub struct SecondaryIndexes {
    sets: Vec<SecondarySet>,
}

impl SecondaryIndexes {
    /// `count` empty indexes.
    pub fn new(count: usize) -> Self {
        assert!(
            count <= usize::from(u8::MAX),
            "at most 255 secondary indexes"
        );
        Self {
            sets: vec![BTreeSet::new(); count],
        }
    }

    /// How many indexes there are.
    pub fn index_count(&self) -> usize {
        self.sets.len()
    }

    /// Entries in index `index`.
    pub fn len(&self, index: u8) -> usize {
        self.sets.get(usize::from(index)).map_or(0, BTreeSet::len)
    }

    pub(crate) fn insert(&mut self, key: SecondaryKey, primary: u64) {
        let inline = InlineKey::from_derived(&key);
        self.set_mut(key.index).insert((inline, primary));
    }

    /// Removes an entry; whether it was there.
    pub(crate) fn remove(&mut self, key: SecondaryKey, primary: u64) -> bool {
        let inline = InlineKey::from_derived(&key);
        self.set_mut(key.index).remove(&(inline, primary))
    }

    fn set_mut(&mut self, index: u8) -> &mut SecondarySet {
        let count = self.sets.len();
        self.sets
            .get_mut(usize::from(index))
            .unwrap_or_else(|| panic!("secondary index {index} out of range 0..{count}"))
    }

    /// Primary keys whose derived key in `index` lies in `from..to` (`to` exclusive, `None` for
    /// no upper end), in derived-key order, at most `limit` of them.
    pub fn range(&self, index: u8, from: &[u8], to: Option<&[u8]>, limit: usize) -> Vec<u64> {
        self.scan(index, from, limit, |key| to.is_none_or(|to| key < to))
    }

    /// Primary keys whose derived key in `index` starts with `prefix`, at most `limit`.
    pub fn prefix(&self, index: u8, prefix: &[u8], limit: usize) -> Vec<u64> {
        self.scan(index, prefix, limit, |key| key.starts_with(prefix))
    }

    fn scan(&self, index: u8, from: &[u8], limit: usize, keep: impl Fn(&[u8]) -> bool) -> Vec<u64> {
        let Some(set) = self.sets.get(usize::from(index)) else {
            return Vec::new();
        };
        // A bound longer than any key starts at its first bytes, skipping what sorts before it.
        let start = InlineKey::new(&from[..from.len().min(SECONDARY_KEY_BYTES_MAX)])
            .expect("cut to the longest key");
        set.range((start, 0u64)..)
            .map(|(key, primary)| (key.as_bytes(), primary))
            .skip_while(|(key, _)| *key < from)
            .take_while(|(key, _)| keep(key))
            .take(limit)
            .map(|(_, primary)| *primary)
            .collect()
    }

    /// Appends up to `max` entries of index `index` that sort after `after` (from its first
    /// entry for `None`) to `out`, in order; whether the index's last entry was reached. A
    /// checkpoint reads an index so between holds of the log's lock.
    pub(crate) fn capture_some(
        &self,
        index: usize,
        after: Option<(InlineKey, u64)>,
        max: usize,
        out: &mut Vec<(InlineKey, u64)>,
    ) -> bool {
        use std::ops::Bound::{Excluded, Unbounded};
        let set = &self.sets[index];
        let from = after.map_or(Unbounded, Excluded);
        let before = out.len();
        out.extend(set.range((from, Unbounded)).take(max).copied());
        out.len() - before < max
    }

    /// Rebuilds from checkpointed sets.
    pub(crate) fn from_sets(sets: Vec<SecondarySet>) -> Self {
        Self { sets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u8, text: &str) -> SecondaryKey {
        SecondaryKey {
            index,
            key: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn range_and_prefix_are_ordered_and_limited() {
        let mut indexes = SecondaryIndexes::new(2);
        indexes.insert(key(0, "SMITH"), 3);
        indexes.insert(key(0, "SMITH"), 1);
        indexes.insert(key(0, "SMYTHE"), 2);
        indexes.insert(key(0, "JONES"), 4);
        indexes.insert(key(1, "SMITH"), 9);
        assert_eq!(indexes.prefix(0, b"SMITH", 10), vec![1, 3]);
        assert_eq!(indexes.prefix(0, b"SM", 10), vec![1, 3, 2]);
        assert_eq!(indexes.prefix(0, b"SM", 2), vec![1, 3]);
        assert_eq!(indexes.range(0, b"A", Some(b"SMITH"), 10), vec![4]);
        assert_eq!(indexes.range(0, b"K", None, 10), vec![1, 3, 2]);
        assert!(indexes.remove(key(0, "SMITH"), 1));
        assert_eq!(indexes.prefix(0, b"SMITH", 10), vec![3]);
        assert_eq!(indexes.prefix(1, b"", 10), vec![9]);
        assert!(indexes.prefix(5, b"", 10).is_empty());
    }

    #[test]
    fn inline_keys_order_like_their_bytes() {
        let texts: [&[u8]; 7] = [b"", b"\0", b"A", b"A\0", b"AB", b"B", b"ZZZZZZZZZZZZZZZ"];
        for a in texts {
            for b in texts {
                let (inline_a, inline_b) = (InlineKey::new(a).unwrap(), InlineKey::new(b).unwrap());
                assert_eq!(inline_a.cmp(&inline_b), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(inline_a.as_bytes(), a);
            }
        }
        assert_eq!(InlineKey::new(&[1u8; 16]), None);
    }

    #[test]
    fn a_range_from_a_bound_longer_than_any_key_skips_what_sorts_before_it() {
        let mut indexes = SecondaryIndexes::new(1);
        indexes.insert(key(0, "AAAAAAAAAAAAAAA"), 1);
        indexes.insert(key(0, "AAAAAAAAAAAAAAB"), 2);
        assert_eq!(indexes.range(0, b"AAAAAAAAAAAAAAAA", None, 10), vec![2]);
    }

    #[test]
    #[should_panic(expected = "longer than 15")]
    fn a_derived_key_longer_than_the_maximum_is_a_loud_bug() {
        SecondaryIndexes::new(1).insert(key(0, "0123456789abcdef"), 1);
    }
}
