//! The usage hash chain: each settled batch folds into the credit source's `usage_chain`,
//! so an auditor who replays the published batches recomputes the on-chain value exactly.

/// `sha256("compux-usage-v1" || prev || seq_le || amount_le || batch_root || window_end_le)`.
pub fn next_usage_chain(
    prev: &[u8; 32],
    seq: u64,
    amount: u64,
    batch_root: &[u8; 32],
    window_end: i64,
) -> [u8; 32] {
    solana_sha256_hasher::hashv(&[
        b"compux-usage-v1",
        prev,
        &seq.to_le_bytes(),
        &amount.to_le_bytes(),
        batch_root,
        &window_end.to_le_bytes(),
    ])
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_depends_on_every_field_and_order() {
        let root = [7u8; 32];
        let a = next_usage_chain(&[0; 32], 1, 10, &root, 100);
        assert_ne!(a, next_usage_chain(&[0; 32], 2, 10, &root, 100));
        assert_ne!(a, next_usage_chain(&[0; 32], 1, 11, &root, 100));
        assert_ne!(a, next_usage_chain(&[0; 32], 1, 10, &[8; 32], 100));
        assert_ne!(a, next_usage_chain(&[0; 32], 1, 10, &root, 101));
        assert_ne!(a, next_usage_chain(&[1; 32], 1, 10, &root, 100));
        assert_eq!(a, next_usage_chain(&[0; 32], 1, 10, &root, 100));
    }
}
