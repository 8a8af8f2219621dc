//! Allocating the ids a shard issues (prescription ids, UBRNs, GP2GP transfer ids): one helper
//! for every service, so they share the same two promises. A retry of the request allocates
//! the same id (candidates are derived from the request id, never from a clock or a counter
//! a crash could rewind), and an id is only issued by the shard that will hold its record, and
//! only if no record has it yet.

use sha2::{Digest, Sha256};
use spine_storage::Key;

use super::store::Store;
use super::{Context, shard_of, unavailable};
use crate::request::{Refusal, Request};

/// Candidates tried per allocation: each lands on this shard with probability 1/shards, so
/// 4,096 tries fail on 64 shards with probability (63/64)^4096, about 10^-28.
const ALLOCATION_ATTEMPTS_MAX: u64 = 4_096;

/// An id a shard allocates.
pub(super) trait AllocatedId: Sized {
    /// What it is called in the refusal when the space is crowded ("prescription id").
    const NAME: &'static str;
    /// Bytes that keep one kind's candidates apart from another's for the same request.
    const DOMAIN: &'static [u8];
    /// The value whose home shard holds the id's record.
    fn home_value(&self) -> u64;
    /// The key of the id's record.
    fn key(&self) -> Key;
}

impl<S: Store> Context<'_, S> {
    /// The first candidate for `request` that this shard holds and no record has; `candidate`
    /// makes one of 64 derived bits, or says why none can be made (a value the caller supplies,
    /// such as the organisation inside a prescription id, is invalid).
    pub(super) fn allocate_id<T: AllocatedId>(
        &self,
        request: &Request,
        candidate: impl Fn(u64) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let config = &self.shard.config;
        for attempt in 0..ALLOCATION_ATTEMPTS_MAX {
            let digest = Sha256::new()
                .chain_update(T::DOMAIN)
                .chain_update(request.id.as_bytes())
                .chain_update(attempt.to_le_bytes())
                .finalize();
            let bits = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
            let id = candidate(bits)?;
            if shard_of(id.home_value(), config.shards) == config.shard
                && self.latest_index(id.key()).is_none()
            {
                return Ok(id);
            }
        }
        Err(unavailable(format!(
            "no free {} found; the id space is crowded",
            T::NAME
        )))
    }
}
