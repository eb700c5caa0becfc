//! The one place where qward turns values into bytes and back (bincode 2, fixed configuration).
//!
//! Every binary encoding in qward (chain transactions and blocks, wire messages,
//! stored records) goes through [`encode`] and [`decode`]. The configuration is
//! fixed (little-endian, fixed-width integers) so that an encoding is canonical:
//! one value has exactly one byte string, which is what hashes and signatures
//! cover. Decoding is bounded: the caller names a size limit, input longer than
//! that is refused before any work, allocations are capped by the same limit,
//! and trailing bytes are an error. Replacing bincode with a successor means
//! changing this file only.

use serde::{Serialize, de::DeserializeOwned};

/// The hard ceiling for any single decoded value (64 MiB). Callers pass a
/// smaller, purpose-specific limit; this bounds the allocator in every case.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<MAX_DECODE_BYTES>,
>;

const fn config() -> Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_DECODE_BYTES>()
}

/// Why bytes could not be decoded (or, rarely, a value encoded).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The input is longer than the limit the caller allows for this kind of value.
    #[error("input of {len} bytes exceeds the {limit}-byte limit for this value")]
    TooLarge { len: usize, limit: usize },
    /// The bytes are not a valid encoding (truncated, bad tag, bad length, ...).
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// A valid value was followed by extra bytes; canonical encodings have none.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    /// The value could not be encoded (for example a map with non-string keys).
    #[error("cannot encode value: {0}")]
    Encode(String),
}

/// Encodes `value` canonically.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Encodes `value` canonically, for types whose encoding cannot fail
/// (plain structs of integers, byte arrays, vectors and strings).
///
/// Panics only on a programming error (a type serde cannot express in bincode),
/// never on data.
pub fn encode_infallible<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match encode(value) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("type is not bincode-encodable: {e}"),
    }
}

/// Decodes a `T` from exactly `bytes`, refusing input longer than `limit`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let limit = limit.min(MAX_DECODE_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        height: u64,
        name: String,
        payload: Vec<u8>,
        hash: [u8; 32],
        flag: Option<bool>,
        kind: Kind,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        A,
        B(u32),
        C { x: i64 },
    }

    fn sample() -> Sample {
        Sample {
            height: 7,
            name: "qward".into(),
            payload: vec![1, 2, 3],
            hash: [9; 32],
            flag: Some(true),
            kind: Kind::C { x: -4 },
        }
    }

    #[test]
    fn round_trip_and_fixed_layout() {
        let bytes = encode(&sample()).unwrap();
        // u64 height is 8 fixed little-endian bytes at the front.
        assert_eq!(&bytes[..8], &7u64.to_le_bytes());
        let back: Sample = decode(&bytes, 1024).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn rejects_oversized_input_before_decoding() {
        let bytes = encode(&sample()).unwrap();
        let err = decode::<Sample>(&bytes, bytes.len() - 1).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { .. }));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<Sample>(&bytes, 1024).unwrap_err(),
            CodecError::TrailingBytes(1)
        );
    }

    #[test]
    fn rejects_huge_length_prefix_without_allocating() {
        // A Vec<u8> claiming u64::MAX / 2 elements.
        let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, 1024),
            Err(CodecError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Sample>(&bytes, 4096);
        }

        #[test]
        fn round_trip_any(height: u64, name in ".{0,40}", payload in proptest::collection::vec(any::<u8>(), 0..64), x: i64) {
            let v = Sample { height, name, payload, hash: [3; 32], flag: None, kind: Kind::C { x } };
            let bytes = encode(&v).unwrap();
            prop_assert_eq!(decode::<Sample>(&bytes, 4096).unwrap(), v);
        }

        #[test]
        fn truncation_is_an_error(cut in 0usize..60) {
            let bytes = encode(&sample()).unwrap();
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode::<Sample>(&bytes[..cut], 4096).is_err());
        }
    }
}
