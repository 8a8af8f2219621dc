//! The encoding of the shard's own records (metadata, write outcomes, alerts): a version byte,
//! then postcard, so that a layout can change later and old records still be told apart.

use serde::{Deserialize, Serialize};

/// `value`'s bytes after `version`.
pub(super) fn encode<T: Serialize + ?Sized>(version: u8, value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![version]).expect("postcard writes to a Vec without failing")
}

/// The value encoded by [`encode`] with `version`; `None` for another version or bytes that
/// are not one.
pub(super) fn decode<'a, T: Deserialize<'a>>(version: u8, bytes: &'a [u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&found, body)) if found == version => postcard::from_bytes(body).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_told_apart() {
        let bytes = encode(3, &(7u64, "text"));
        assert_eq!(decode::<(u64, &str)>(3, &bytes), Some((7, "text")));
        assert_eq!(decode::<(u64, &str)>(4, &bytes), None);
        assert_eq!(decode::<(u64, &str)>(3, &[]), None);
    }
}
