//! Receipts: the canonical encoding of one metered request (a leaf) and the Merkle tree
//! whose root a `settle` batch carries, so anyone holding a receipt can prove that its
//! request was burned on chain in a given batch (docs/settlement.md).
//!
//! - leaf = SHA-256("compux-receipt-v1" || 0x00 || lp(request_id) || lp(source) ||
//!   created_at_ms (i64 LE) || lp(model) || lp(provider) || input_tokens (u64 LE) ||
//!   output_tokens (u64 LE) || credits (u64 LE)), where lp(x) = len(x) as u32 LE || x.
//! - node = SHA-256("compux-receipt-v1" || 0x01 || left || right); the leaves are in batch
//!   order; a level with an odd count promotes its last node unchanged (never duplicated, so
//!   no two different leaf lists share a root).

use serde::{Deserialize, Serialize};

const DOMAIN: &[u8] = b"compux-receipt-v1";

/// The fields of a usage record that a receipt commits to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    pub request_id: String,
    pub source: String,
    pub created_at_ms: i64,
    pub model: String,
    pub provider: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub credits: u64,
}

fn lp(s: &str) -> [Vec<u8>; 2] {
    [(s.len() as u32).to_le_bytes().to_vec(), s.as_bytes().to_vec()]
}

impl Leaf {
    pub fn hash(&self) -> [u8; 32] {
        let [a, b] = lp(&self.request_id);
        let [c, d] = lp(&self.source);
        let [e, f] = lp(&self.model);
        let [g, h] = lp(&self.provider);
        solana_sha256_hasher::hashv(&[
            DOMAIN,
            &[0],
            &a,
            &b,
            &c,
            &d,
            &self.created_at_ms.to_le_bytes(),
            &e,
            &f,
            &g,
            &h,
            &self.input_tokens.to_le_bytes(),
            &self.output_tokens.to_le_bytes(),
            &self.credits.to_le_bytes(),
        ])
        .to_bytes()
    }
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    solana_sha256_hasher::hashv(&[DOMAIN, &[1], left, right]).to_bytes()
}

/// One step of a proof: the sibling's hash and whether it sits on the left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(with = "hex32")]
    pub sibling: [u8; 32],
    pub left: bool,
}

/// The root over `leaves` (hashes, in batch order); all zeros for none.
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return [0; 32];
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| if p.len() == 2 { node(&p[0], &p[1]) } else { p[0] }).collect();
    }
    level[0]
}

/// The proof that `leaves[index]` is under `root(leaves)`.
pub fn proof(leaves: &[[u8; 32]], mut index: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if sibling < level.len() {
            steps.push(Step { sibling: level[sibling], left: sibling < index });
        }
        level = level.chunks(2).map(|p| if p.len() == 2 { node(&p[0], &p[1]) } else { p[0] }).collect();
        index /= 2;
    }
    steps
}

/// The root a leaf and its proof lead to.
pub fn fold(leaf: [u8; 32], steps: &[Step]) -> [u8; 32] {
    steps.iter().fold(leaf, |acc, s| if s.left { node(&s.sibling, &acc) } else { node(&acc, &s.sibling) })
}

/// Hex (de)serialisation of 32-byte hashes, as receipts are published in JSON.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8; 32]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Option<[u8; 32]> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(i: u64) -> Leaf {
        Leaf {
            request_id: format!("req-{i}"),
            source: "src".into(),
            created_at_ms: i as i64,
            model: "m".into(),
            provider: "p".into(),
            input_tokens: i,
            output_tokens: 2 * i,
            credits: 3 * i,
        }
    }

    #[test]
    fn every_field_is_committed_and_lengths_are_unambiguous() {
        let a = leaf(1);
        let changed = [
            Leaf { request_id: "req-2".into(), ..a.clone() },
            Leaf { source: "srd".into(), ..a.clone() },
            Leaf { created_at_ms: 2, ..a.clone() },
            Leaf { model: "n".into(), ..a.clone() },
            Leaf { provider: "q".into(), ..a.clone() },
            Leaf { input_tokens: 9, ..a.clone() },
            Leaf { output_tokens: 9, ..a.clone() },
            Leaf { credits: 9, ..a.clone() },
            // Moving a byte between adjacent strings changes the hash (length prefixes).
            Leaf { model: "mp".into(), provider: "".into(), ..a.clone() },
        ];
        for c in changed {
            assert_ne!(a.hash(), c.hash(), "{c:?}");
        }
        assert_eq!(root(&[a.hash()]), a.hash(), "one leaf is its own root");
        assert_eq!(root(&[]), [0; 32]);
    }

    proptest! {
        /// Every leaf's proof leads to the root; another leaf, or a changed proof, does not.
        #[test]
        fn proofs_verify_and_tampering_fails(n in 1usize..70, pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let leaves: Vec<[u8; 32]> = (0..n as u64).map(|i| leaf(i).hash()).collect();
            let r = root(&leaves);
            for (i, l) in leaves.iter().enumerate() {
                prop_assert_eq!(fold(*l, &proof(&leaves, i)), r);
            }
            let i = pick.index(n);
            let p = proof(&leaves, i);
            prop_assert_ne!(fold(leaf(1_000).hash(), &p), r);
            if !p.is_empty() {
                let mut bad = p.clone();
                let k = flip.index(bad.len());
                bad[k].sibling[0] ^= 1;
                prop_assert_ne!(fold(leaves[i], &bad), r);
            }
            // A list with one more leaf has another root.
            let mut more = leaves.clone();
            more.push(leaf(999).hash());
            prop_assert_ne!(root(&more), r);
        }
    }
}
