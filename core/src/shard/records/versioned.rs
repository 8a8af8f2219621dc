//! The encoding of stored records (every kind but the audit event and the chunk): a version
//! byte, then postcard, so that a layout can change later and old records still be told
//! apart.

use std::marker::PhantomData;

use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};

/// `value`'s bytes after `version`.
pub fn encode<T: Serialize + ?Sized>(version: u8, value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![version]).expect("postcard writes to a Vec without failing")
}

/// The value encoded by [`encode`] with `version`; `None` for another version, bytes that are
/// not one, or bytes left over after it (no encoder of ours writes any, so they mean damage).
pub fn decode<'a, T: Deserialize<'a>>(version: u8, bytes: &'a [u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&found, body)) if found == version => match postcard::take_from_bytes(body) {
            Ok((value, [])) => Some(value),
            _ => None,
        },
        _ => None,
    }
}

/// The value encoded by [`encode`] with `version`, with no byte left over; or what is wrong
/// with the bytes (for a record's own error, which names the record).
pub fn decode_exact<'a, T: Deserialize<'a>>(version: u8, bytes: &'a [u8]) -> Result<T, String> {
    decode_exact_seed(version, bytes, PhantomData::<T>)
}

/// [`decode_exact`] for a value that `seed` reads.
pub fn decode_exact_seed<'a, S: DeserializeSeed<'a>>(
    version: u8,
    bytes: &'a [u8],
    seed: S,
) -> Result<S::Value, String> {
    let (&found, body) = bytes.split_first().ok_or("empty")?;
    if found != version {
        return Err(format!("unknown encoding version {found}"));
    }
    let mut deserializer = postcard::Deserializer::from_bytes(body);
    let value = seed
        .deserialize(&mut deserializer)
        .map_err(|error| error.to_string())?;
    let rest = deserializer.finalize().map_err(|error| error.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the record", rest.len()));
    }
    Ok(value)
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
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode::<(u64, &str)>(3, &longer), None, "bytes left over");
        assert_eq!(
            decode_exact::<(u64, String)>(3, &longer),
            Err("1 bytes after the record".into())
        );
        assert_eq!(
            decode_exact::<(u64, String)>(3, &bytes),
            Ok((7, "text".into()))
        );
    }
}
