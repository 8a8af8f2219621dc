//! A key's home shard: the one function the server and every client agree on, so a client can
//! send each request over a connection its home shard's core serves (`net/PROTOCOL.md`,
//! "Routing").

use uuid::Uuid;

/// The home shard of a key (an NHS number's value, a request id's low bits): a multiplicative
/// hash, so consecutive numbers spread evenly.
pub fn shard_of(value: u64, shards: usize) -> usize {
    assert!(shards > 0, "at least one shard");
    let mixed = (value ^ (value >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((mixed >> 32) % shards as u64) as usize
}

/// A request id's home shard (creates and shard-less audit events go there, so a retry finds
/// its first outcome).
pub fn shard_of_request(id: Uuid, shards: usize) -> usize {
    shard_of(id.as_u64_pair().1, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_formula_gives_these_shards() {
        // Computed from PROTOCOL.md's formula independently of this code: a change here breaks
        // every client that routes.
        let shards: Vec<usize> = [2, 3, 4, 16]
            .into_iter()
            .map(|n| shard_of(9_000_000_009, n))
            .collect();
        assert_eq!(shards, [1, 0, 1, 5]);
    }

    #[test]
    fn consecutive_values_spread_evenly() {
        let mut counts = [0usize; 4];
        for value in 0..10_000 {
            counts[shard_of(value, 4)] += 1;
        }
        assert!(
            counts.iter().all(|&count| (2_000..3_000).contains(&count)),
            "{counts:?}"
        );
    }
}
