//! ETSI GS QKD 014 v1.1.1: the REST key-delivery API between a key
//! management entity (KME) and the secure application entities (SAEs)
//! attached to it. The JSON bodies, the checks every request gets, key ids
//! (UUIDs) and how qward's KME derives the keys of one request from one
//! confirmed hybrid session key. Pure: the HTTPS server and client live in
//! the node.
//!
//! The flow: the master SAE asks its KME for keys to share with a slave SAE
//! (`POST /api/v1/keys/{slave_SAE_ID}/enc_keys`) and gets keys with their
//! `key_ID`s; it sends the ids to the slave SAE; the slave SAE asks its own
//! KME for the same keys by id (`POST /api/v1/keys/{master_SAE_ID}/dec_keys`).
//! `GET .../status` describes the key stream between two SAEs. Errors are
//! 400 (bad request), 401 (the caller may not) and 503 (the KME cannot now),
//! each with a JSON `{"message": ...}` body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every path of the API starts with this.
pub const PATH_PREFIX: &str = "/api/v1/keys/";
/// The key size when a request names none (bits).
pub const DEFAULT_KEY_SIZE: u32 = 256;
/// The smallest key size served (bits).
pub const MIN_KEY_SIZE: u32 = 64;
/// The largest key size served (bits): one key is at most the 256 bits of
/// the session key it is derived from.
pub const MAX_KEY_SIZE: u32 = 256;
/// The most keys one request may ask for.
pub const MAX_KEYS_PER_REQUEST: u32 = 64;
/// The most keys a KME keeps for one pair of SAEs (delivered to the master,
/// not yet fetched by the slave).
pub const MAX_KEY_COUNT: u32 = 1024;
/// Additional slave SAEs (key multicast) are not supported.
pub const MAX_SAE_ID_COUNT: u32 = 0;
/// The longest SAE id.
pub const MAX_SAE_ID_LEN: usize = 64;
/// The largest request body read (bytes): room for 64 key ids and more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An API error: the HTTP status and the message of the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct EtsiError {
    pub status: u16,
    pub message: String,
}

impl EtsiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        EtsiError {
            status: 400,
            message: message.into(),
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        EtsiError {
            status: 401,
            message: message.into(),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        EtsiError {
            status: 503,
            message: message.into(),
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            message: self.message.clone(),
            details: None,
        }
    }
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<Value>>,
}

/// `Status`: the key stream from a master SAE to a slave SAE.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub source_KME_ID: String,
    pub target_KME_ID: String,
    pub master_SAE_ID: String,
    pub slave_SAE_ID: String,
    pub key_size: u32,
    pub stored_key_count: u32,
    pub max_key_count: u32,
    pub max_key_per_request: u32,
    pub max_key_size: u32,
    pub min_key_size: u32,
    pub max_SAE_ID_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_extension: Option<Value>,
}

/// `Key request`: the body of a `POST enc_keys`.
#[allow(non_snake_case)]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_slave_SAE_IDs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_mandatory: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_optional: Option<Vec<Value>>,
}

impl KeyRequest {
    /// Checks the request and answers (number, size in bits) with the
    /// defaults filled in.
    pub fn checked(&self) -> Result<(u32, u32), EtsiError> {
        if self
            .additional_slave_SAE_IDs
            .as_ref()
            .is_some_and(|ids| !ids.is_empty())
        {
            return Err(EtsiError::bad_request(
                "additional_slave_SAE_IDs: this KME delivers keys to one slave SAE only \
                 (max_SAE_ID_count is 0)",
            ));
        }
        if self
            .extension_mandatory
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(EtsiError::bad_request(
                "extension_mandatory: this KME supports no extension",
            ));
        }
        let number = self.number.unwrap_or(1);
        if number == 0 {
            return Err(EtsiError::bad_request("number must be at least 1"));
        }
        if number > MAX_KEYS_PER_REQUEST {
            return Err(EtsiError::bad_request(format!(
                "too many keys: {number} requested, at most {MAX_KEYS_PER_REQUEST} per request"
            )));
        }
        let size = self.size.unwrap_or(DEFAULT_KEY_SIZE);
        if !(MIN_KEY_SIZE..=MAX_KEY_SIZE).contains(&size) || !size.is_multiple_of(8) {
            return Err(EtsiError::bad_request(format!(
                "key size not supported: {size} bits (a multiple of 8 from {MIN_KEY_SIZE} to \
                 {MAX_KEY_SIZE})"
            )));
        }
        Ok((number, size))
    }
}

/// One key id in a `Key IDs` body.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyIdRef {
    pub key_ID: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ID_extension: Option<Value>,
}

/// `Key IDs`: the body of a `POST dec_keys`.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyIds {
    pub key_IDs: Vec<KeyIdRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_IDs_extension: Option<Value>,
}

impl KeyIds {
    /// The ids, parsed, in order; at most [`MAX_KEYS_PER_REQUEST`], none twice.
    pub fn checked(&self) -> Result<Vec<KeyId>, EtsiError> {
        if self.key_IDs.is_empty() {
            return Err(EtsiError::bad_request("key_IDs is empty"));
        }
        if self.key_IDs.len() > MAX_KEYS_PER_REQUEST as usize {
            return Err(EtsiError::bad_request(format!(
                "too many keys: {} key ids, at most {MAX_KEYS_PER_REQUEST} per request",
                self.key_IDs.len()
            )));
        }
        let mut ids = Vec::with_capacity(self.key_IDs.len());
        for r in &self.key_IDs {
            let id = KeyId::parse(&r.key_ID)?;
            if ids.contains(&id) {
                return Err(EtsiError::bad_request(format!(
                    "key_ID {id} is named twice"
                )));
            }
            ids.push(id);
        }
        Ok(ids)
    }
}

/// One key of a `Key container`, its bytes in base64.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub key_ID: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ID_extension: Option<Value>,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_extension: Option<Value>,
}

/// `Key container`: the answer of `enc_keys` and `dec_keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyContainer {
    pub keys: Vec<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_container_extension: Option<Value>,
}

/// Checks an SAE id: 1 to 64 characters from `A-Z a-z 0-9 . _ -` (it is a
/// path segment and a certificate's DNS name).
pub fn check_sae_id(id: &str) -> Result<(), EtsiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SAE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EtsiError::bad_request(format!(
            "SAE id {:?} is not valid: 1 to {MAX_SAE_ID_LEN} characters from A-Z, a-z, 0-9, \
             '.', '_' and '-'",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// A key id: a UUID (RFC 9562 layout, version 8: made by qward's KME).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Parses the text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any case).
    pub fn parse(s: &str) -> Result<KeyId, EtsiError> {
        let bad = || {
            EtsiError::bad_request(format!(
                "key_ID {:?} is not a UUID",
                s.chars().take(80).collect::<String>()
            ))
        };
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return Err(bad());
        }
        let digits: String = s.chars().filter(|c| *c != '-').collect();
        let bytes = hex::decode(&digits).map_err(|_| bad())?;
        bytes.try_into().map(KeyId).map_err(|_| bad())
    }

    fn from_hash(h: &[u8; 32]) -> KeyId {
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        b[6] = (b[6] & 0x0f) | 0x80; // version 8
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
        KeyId(b)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// The keys of one `enc_keys` request, derived from the confirmed session
/// key of the key-agreement session run for it: key `i` is blake3's
/// derive-key output (context `qward kme key v1`) over the session key, the
/// session id and `i`, cut to `size_bits`; its id is a hash of the session
/// id and `i` (no key bits). Both ends of the session derive the same keys.
/// The keys are exactly as strong as the 256-bit session key.
pub fn derive_keys(
    session_key: &[u8; 32],
    session: &[u8; 16],
    number: u32,
    size_bits: u32,
) -> Vec<(KeyId, Vec<u8>)> {
    (0..number)
        .map(|i| {
            let mut id = blake3::Hasher::new_derive_key("qward kme key id v1");
            id.update(session).update(&i.to_le_bytes());
            let mut key = blake3::Hasher::new_derive_key("qward kme key v1");
            key.update(session_key)
                .update(session)
                .update(&i.to_le_bytes());
            let mut bytes = vec![0u8; (size_bits / 8) as usize];
            key.finalize_xof().fill(&mut bytes);
            (KeyId::from_hash(id.finalize().as_bytes()), bytes)
        })
        .collect()
}

/// Base64 (RFC 4648, standard alphabet, padded), as the API carries keys.
pub mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Decodes padded base64; `None` on any other input.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let b = s.as_bytes();
        if !b.len().is_multiple_of(4) {
            return None;
        }
        let mut out = Vec::with_capacity(b.len() / 4 * 3);
        for (ci, chunk) in b.chunks(4).enumerate() {
            let last = ci == b.len() / 4 - 1;
            let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return None;
            }
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                let v = if i >= 4 - pad {
                    0
                } else {
                    ALPHABET.iter().position(|a| a == c)? as u32
                };
                n |= v << (18 - 6 * i);
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            // Bits under the padding must be zero (canonical input).
            if pad > 0 && bytes[3 - pad..].iter().any(|x| *x != 0) {
                return None;
            }
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(base64::encode(plain.as_bytes()), coded);
            assert_eq!(base64::decode(coded).as_deref(), Some(plain.as_bytes()));
        }
        for bad in ["Zg=", "Z===", "Zh==", "Zm9v!A==", "Zg==Zg=="] {
            assert_eq!(base64::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_ids_are_uuids_that_parse_back() {
        let keys = derive_keys(&[7; 32], &[1; 16], 3, 256);
        for (id, _) in &keys {
            let text = id.to_string();
            assert_eq!(text.len(), 36);
            assert_eq!(&text[14..15], "8", "version 8: {text}");
            assert_eq!(KeyId::parse(&text).unwrap(), *id);
            assert_eq!(KeyId::parse(&text.to_uppercase()).unwrap(), *id);
        }
        for bad in [
            "",
            "not-a-uuid",
            "550e8400e29b41d4a716446655440000",
            "550e8400-e29b-41d4-a716-44665544000g",
            "550e8400-e29b-41d4-a716_446655440000",
        ] {
            assert_eq!(KeyId::parse(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn derived_keys_differ_by_index_session_and_key_and_have_the_size_asked() {
        let a = derive_keys(&[7; 32], &[1; 16], 4, 128);
        assert!(a.iter().all(|(_, k)| k.len() == 16));
        let ids: std::collections::HashSet<_> = a.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), 4);
        assert_ne!(a[0].1, a[1].1);
        assert_eq!(a, derive_keys(&[7; 32], &[1; 16], 4, 128));
        let other_key = derive_keys(&[8; 32], &[1; 16], 1, 128);
        assert_eq!(other_key[0].0, a[0].0, "ids carry no key bits");
        assert_ne!(other_key[0].1, a[0].1);
        assert_ne!(derive_keys(&[7; 32], &[2; 16], 1, 128)[0], a[0]);
    }

    #[test]
    fn key_requests_are_checked_as_the_specification_asks() {
        assert_eq!(KeyRequest::default().checked(), Ok((1, DEFAULT_KEY_SIZE)));
        let req = |number, size| KeyRequest {
            number,
            size,
            ..KeyRequest::default()
        };
        assert_eq!(req(Some(64), Some(64)).checked(), Ok((64, 64)));
        for (r, what) in [
            (req(Some(65), None), "too many keys"),
            (req(Some(0), None), "at least 1"),
            (req(None, Some(100)), "key size not supported"),
            (req(None, Some(512)), "key size not supported"),
            (req(None, Some(56)), "key size not supported"),
            (
                KeyRequest {
                    additional_slave_SAE_IDs: Some(vec!["x".into()]),
                    ..KeyRequest::default()
                },
                "additional_slave_SAE_IDs",
            ),
            (
                KeyRequest {
                    extension_mandatory: Some(vec![serde_json::json!({"x": 1})]),
                    ..KeyRequest::default()
                },
                "extension_mandatory",
            ),
        ] {
            let e = r.checked().unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains(what), "{e}");
        }
        let ok = KeyRequest {
            extension_optional: Some(vec![serde_json::json!({"ignored": true})]),
            ..KeyRequest::default()
        };
        assert!(ok.checked().is_ok());
    }

    #[test]
    fn key_id_lists_are_bounded_and_distinct() {
        let id = |s: &str| KeyIdRef {
            key_ID: s.into(),
            key_ID_extension: None,
        };
        let one = "550e8400-e29b-41d4-a716-446655440000";
        let ids = KeyIds {
            key_IDs: vec![id(one), id(one)],
            key_IDs_extension: None,
        };
        assert!(ids.checked().unwrap_err().message.contains("twice"));
        let empty = KeyIds {
            key_IDs: vec![],
            key_IDs_extension: None,
        };
        assert!(empty.checked().is_err());
        let many = KeyIds {
            key_IDs: (0..65)
                .map(|i| id(&format!("550e8400-e29b-41d4-a716-4466554400{i:02}")))
                .collect(),
            key_IDs_extension: None,
        };
        assert!(
            many.checked()
                .unwrap_err()
                .message
                .contains("too many keys")
        );
    }

    #[test]
    fn sae_ids_are_checked() {
        for ok in ["sae-a", "Lab_App.1", &"x".repeat(64)] {
            assert!(check_sae_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65), "..%2f"] {
            assert!(check_sae_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_use_the_specification_field_names() {
        let s = serde_json::to_value(KeyIds {
            key_IDs: vec![KeyIdRef {
                key_ID: "k".into(),
                key_ID_extension: None,
            }],
            key_IDs_extension: None,
        })
        .unwrap();
        assert_eq!(s, serde_json::json!({"key_IDs": [{"key_ID": "k"}]}));
        let r: KeyRequest =
            serde_json::from_str(r#"{"number": 2, "size": 128, "additional_slave_SAE_IDs": []}"#)
                .unwrap();
        assert_eq!(r.checked(), Ok((2, 128)));
    }
}
