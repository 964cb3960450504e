//! Identifiers the relayer passes between its layers, as types rather than strings: text
//! only at the database and JSON edges.

use std::fmt;

use serde::{Deserialize, Serialize};
pub use solana_sdk::pubkey::Pubkey;

/// What a request spends from, and so what a settlement batch burns from. A credit
/// account is named by its own address; a facility by the facility's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The credit account's own credits, in its vault (burned by `settle`).
    Vault(Pubkey),
    /// A facility's released credits, in its escrow (burned by `settle_facility`).
    Facility(Pubkey),
}

impl Source {
    /// The address the source is known by on chain and in the ledger.
    pub fn address(self) -> Pubkey {
        match self {
            Source::Vault(a) | Source::Facility(a) => a,
        }
    }

    pub fn kind(self) -> SourceKind {
        match self {
            Source::Vault(_) => SourceKind::CreditAccount,
            Source::Facility(_) => SourceKind::Facility,
        }
    }

    /// A source as the ledger keeps it (an address beside the credit account that spent
    /// from it): the account's own address stands for its vault; any other is a facility
    /// it borrows under. The one place this rule lives.
    pub fn of(address: Pubkey, account: Pubkey) -> Source {
        if address == account {
            Source::Vault(address)
        } else {
            Source::Facility(address)
        }
    }

    /// A source as a batch row keeps it: its kind's word and its address, read back (an
    /// error for a damaged row).
    pub(crate) fn stored(kind: &str, address: &str) -> anyhow::Result<Source> {
        let address = stored_address(address)?;
        Ok(match SourceKind::parse(kind)? {
            SourceKind::CreditAccount => Source::Vault(address),
            SourceKind::Facility => Source::Facility(address),
        })
    }
}

/// A source as the API answers it: its address as `source` and its `kind`, flattened into
/// the object that holds it.
impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("source", &self.address().to_string())?;
        m.serialize_entry("kind", &self.kind())?;
        m.end()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.address().fmt(f)
    }
}

/// What kind of credit source a batch burns from, as the ledger and the API name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Burns from the credit account's vault (`settle`).
    CreditAccount,
    /// Burns from the facility's escrow (`settle_facility`).
    Facility,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::CreditAccount => "credit_account",
            SourceKind::Facility => "facility",
        }
    }

    /// A kind read back from the ledger (`as_str`'s words, nothing else).
    pub fn parse(s: &str) -> anyhow::Result<SourceKind> {
        match s {
            "credit_account" => Ok(SourceKind::CreditAccount),
            "facility" => Ok(SourceKind::Facility),
            _ => anyhow::bail!("the ledger holds {s:?} where a source kind belongs"),
        }
    }
}

/// An address read back from a column the relayer wrote: one that does not parse is a
/// damaged ledger, said so rather than guessed at.
pub(crate) fn stored_address(text: &str) -> anyhow::Result<Pubkey> {
    text.parse().map_err(|e| anyhow::anyhow!("the ledger holds {text:?} where an address belongs: {e}"))
}

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
    use super::{KeyHash, Pubkey, Source, SourceKind};

    #[test]
    fn a_source_is_the_accounts_vault_only_at_the_accounts_own_address() {
        let (account, facility) = (Pubkey::new_unique(), Pubkey::new_unique());
        assert_eq!(Source::of(account, account), Source::Vault(account));
        assert_eq!(Source::of(facility, account), Source::Facility(facility));
        for s in [Source::Vault(account), Source::Facility(facility)] {
            assert_eq!(Source::stored(s.kind().as_str(), &s.address().to_string()).unwrap(), s);
            assert_eq!(SourceKind::parse(s.kind().as_str()).unwrap(), s.kind());
            assert_eq!(s.to_string(), s.address().to_string());
        }
        assert!(SourceKind::parse("vault").is_err(), "a damaged kind is said so, not guessed");
    }

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
