//! Identifiers the relayer passes between its layers, as types rather than strings: text
//! only at the database and JSON edges.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The hex SHA-256 of an API key: how the relayer knows a key without keeping it. Limits,
/// budgets, leases and usage records are keyed by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(String);

impl KeyHash {
    /// The hash of `key` (the bearer token a caller sends).
    pub fn of(key: &str) -> KeyHash {
        use sha2::Digest;
        KeyHash(hex::encode(sha2::Sha256::digest(key.as_bytes())))
    }

    /// A hash as stored (the configuration's `sha256`, a database column): 64 hex digits,
    /// lower-cased.
    pub fn parse(hex: &str) -> Result<KeyHash, String> {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(KeyHash(hex.to_ascii_lowercase()))
        } else {
            Err(format!("{hex:?} is not a SHA-256 in hex (64 hex digits)"))
        }
    }

    /// A hash read back from the ledger the relayer itself wrote.
    pub(crate) fn stored(hex: String) -> KeyHash {
        KeyHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for KeyHash {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<KeyHash> for String {
    fn from(h: KeyHash) -> String {
        h.0
    }
}

#[cfg(test)]
mod tests {
    use super::KeyHash;

    #[test]
    fn a_key_hash_is_the_keys_sha256_and_only_hex_of_that_length_parses() {
        let h = KeyHash::of("sk-test");
        assert_eq!(h.len(), 64);
        assert_eq!(KeyHash::parse(&h).unwrap(), h);
        assert_eq!(KeyHash::parse(&h.to_ascii_uppercase()).unwrap(), h, "stored lower-case");
        assert!(KeyHash::parse("ab").is_err());
        assert!(KeyHash::parse(&"g".repeat(64)).is_err());
    }
}
