//! Burned against charged, per credit source: the relayer's published charges
//! (`GET /v1/settlement/accounts`) checked against what the chain burned. The chain is the
//! truth for burns; the relayer is the only witness of charges, so what this can prove is
//! that no source was burned for more than the relayer says it charged, that the batches the
//! relayer publishes are exactly the ones the chain burned (replayed into the source's
//! `usage_chain`, so a relayer cannot publish figures of its choosing), and how much charged
//! usage is not burned yet.

use anchor_lang::prelude::Pubkey;
use serde::Serialize;

use super::{replay_usage_chain, Snapshot};
use crate::ix::SettleBatch;
use compux::state::Settlement;

/// One source as the relayer publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charged {
    pub source: Pubkey,
    /// Credits charged for every request recorded against the source.
    pub charged: u64,
    /// Credits of the source's batches the relayer knows landed, and the newest one's seq.
    pub settled: u64,
    pub settled_seq: u64,
    /// The source's published batches in `seq` order (`GET /v1/settlement/batches`), when fetched.
    pub batches: Option<Vec<SettleBatch>>,
}

/// What is wrong with one source's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mismatch {
    /// The chain burned more from the source than the relayer charged it: usage burned that
    /// no request accounts for.
    BurnedMoreThanCharged,
    /// At the same settled batch the relayer and the chain disagree on what was burned.
    SettledDiffers { relayer: u64, chain: u64 },
    /// The chain shows batches the relayer does not publish at all.
    UnpublishedBurns,
    /// The published batches up to the chain's `settled_seq`, replayed, do not give the
    /// source's on-chain `usage_chain`: they are not the batches that were burned.
    BatchesDiffer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceUsage {
    #[serde(serialize_with = "as_string")]
    pub source: Pubkey,
    pub charged: u64,
    /// `total_settled` on chain.
    pub burned: u64,
    /// Charged and not burned yet (in flight, or waiting for its batch).
    pub unburned: u64,
    pub settled_seq_chain: u64,
    pub settled_seq_relayer: u64,
    pub mismatch: Option<Mismatch>,
}

fn as_string<S: serde::Serializer>(k: &Pubkey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.to_string())
}

/// Every source of the market in `snapshot` that the chain or the relayer knows usage of.
/// Sources the relayer publishes from other markets are not this market's and are skipped.
pub fn compare(snapshot: &Snapshot, published: &[Charged]) -> Vec<SourceUsage> {
    let published: std::collections::HashMap<Pubkey, &Charged> =
        published.iter().map(|p| (p.source, p)).collect();
    let on_chain = snapshot
        .credit_accounts
        .iter()
        .map(|c| (c.address, c.account.settlement))
        .chain(snapshot.facilities.iter().map(|f| (f.address, f.facility.settlement)));
    let mut out: Vec<SourceUsage> = on_chain
        .filter_map(|(address, chain)| {
            let relayer = published.get(&address).copied();
            if relayer.is_none() && chain.settled_seq == 0 {
                return None; // never used through a relayer
            }
            Some(one(address, &chain, relayer))
        })
        .collect();
    out.sort_by_key(|u| u.source);
    out
}

fn one(source: Pubkey, chain: &Settlement, relayer: Option<&Charged>) -> SourceUsage {
    let Some(r) = relayer else {
        return SourceUsage {
            source,
            charged: 0,
            burned: chain.total_settled,
            unburned: 0,
            settled_seq_chain: chain.settled_seq,
            settled_seq_relayer: 0,
            mismatch: Some(Mismatch::UnpublishedBurns),
        };
    };
    let mismatch = if chain.total_settled > r.charged {
        Some(Mismatch::BurnedMoreThanCharged)
    } else if r.batches.as_ref().is_some_and(|b| !replays_to(chain, b)) {
        Some(Mismatch::BatchesDiffer)
    } else if r.settled_seq == chain.settled_seq && r.settled != chain.total_settled {
        Some(Mismatch::SettledDiffers { relayer: r.settled, chain: chain.total_settled })
    } else {
        None
    };
    SourceUsage {
        source,
        charged: r.charged,
        burned: chain.total_settled,
        unburned: r.charged.saturating_sub(chain.total_settled),
        settled_seq_chain: chain.settled_seq,
        settled_seq_relayer: r.settled_seq,
        mismatch,
    }
}

/// Whether the published batches 1..=`settled_seq` replay into the chain's `usage_chain`
/// (and so burned exactly `total_settled`).
fn replays_to(chain: &Settlement, batches: &[SettleBatch]) -> bool {
    let landed: Vec<SettleBatch> = batches.iter().copied().filter(|b| b.seq <= chain.settled_seq).collect();
    let in_order = landed.iter().enumerate().all(|(i, b)| b.seq == i as u64 + 1);
    let burned = landed.iter().try_fold(0u64, |a, b| a.checked_add(b.amount));
    in_order
        && landed.len() as u64 == chain.settled_seq
        && burned == Some(chain.total_settled)
        && replay_usage_chain(&landed) == chain.usage_chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(seq: u64, total: u64) -> Settlement {
        Settlement { settled_seq: seq, total_settled: total, ..Default::default() }
    }

    #[test]
    fn each_way_the_figures_can_disagree_is_named() {
        let s = Pubkey::new_unique();
        let r = |charged, settled, settled_seq| Charged {
            source: s,
            charged,
            settled,
            settled_seq,
            batches: None,
        };
        // In flight: charged beyond the burns, the relayer's settled view agreeing.
        let ok = one(s, &chain(2, 70), Some(&r(100, 70, 2)));
        assert_eq!((ok.unburned, ok.mismatch), (30, None));
        // The relayer not yet aware of its latest landed batch: not a mismatch.
        assert_eq!(one(s, &chain(3, 90), Some(&r(100, 70, 2))).mismatch, None);
        assert_eq!(
            one(s, &chain(2, 120), Some(&r(100, 120, 2))).mismatch,
            Some(Mismatch::BurnedMoreThanCharged)
        );
        assert_eq!(
            one(s, &chain(2, 70), Some(&r(100, 60, 2))).mismatch,
            Some(Mismatch::SettledDiffers { relayer: 60, chain: 70 })
        );
        assert_eq!(one(s, &chain(1, 5), None).mismatch, Some(Mismatch::UnpublishedBurns));
    }

    #[test]
    fn published_batches_must_replay_into_the_chains_usage_chain() {
        let s = Pubkey::new_unique();
        let batch = |seq, amount| SettleBatch { seq, amount, batch_root: [seq as u8; 32], window_end: 10 };
        let real = vec![batch(1, 30), batch(2, 40), batch(3, 5)];
        // The chain burned the first two; the third is not on chain yet.
        let chain = Settlement {
            settled_seq: 2,
            total_settled: 70,
            usage_chain: replay_usage_chain(&real[..2]),
            ..Default::default()
        };
        let published = |batches: Vec<SettleBatch>| Charged {
            source: s,
            charged: 100,
            settled: 70,
            settled_seq: 2,
            batches: Some(batches),
        };
        assert_eq!(one(s, &chain, Some(&published(real.clone()))).mismatch, None);
        // The settled figure agrees, but the batches are not the ones burned.
        let forged = vec![batch(1, 35), batch(2, 35), batch(3, 5)];
        assert_eq!(one(s, &chain, Some(&published(forged))).mismatch, Some(Mismatch::BatchesDiffer));
        assert_eq!(
            one(s, &chain, Some(&published(real[..1].to_vec()))).mismatch,
            Some(Mismatch::BatchesDiffer)
        );
    }
}
