use anchor_lang::prelude::*;

use super::Settlement;

/// Standing instruction to buy `refill_credits` whenever the vault falls below `threshold`,
/// paid from `source` through an SPL delegate approval granted to the market PDA.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct AutoRefill {
    /// The owner's quote token account; `Pubkey::default()` when auto-refill is off.
    pub source: Pubkey,
    pub threshold: u64,
    pub refill_credits: u64,
    /// Slippage bound for one refill, in quote units.
    pub max_quote_per_refill: u64,
    /// The fewest credits (bonus included) one refill may deliver.
    pub min_credits_per_refill: u64,
    /// Total quote the auto-refill may spend; `spent` counts towards it.
    pub cap_quote: u64,
    pub spent_quote: u64,
}

impl AutoRefill {
    pub fn enabled(&self) -> bool {
        self.source != Pubkey::default() && self.refill_credits > 0
    }
}

/// Credits the owner announced it will move out of its vault (`announce_transfer`): from
/// the announcement on the relayer spends none of them, and they may move only from
/// `ready_at`, once the usage charged before the relayer saw the notice has been burned.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct TransferNotice {
    pub amount: u64,
    pub ready_at: i64,
}

/// One per (market, owner). Seeds: [CREDIT_ACCOUNT_SEED, market, owner]. Its vault
/// (seeds [CREDIT_VAULT_SEED, credit_account]) is a token account of the credit mint whose
/// authority is the market PDA: standard credits move only through this program.
#[account]
#[derive(InitSpace, Debug)]
pub struct CreditAccount {
    pub market: Pubkey,
    pub owner: Pubkey,
    pub vault: Pubkey,
    pub bump: u8,
    pub vault_bump: u8,
    pub settlement: Settlement,
    /// Lifetime counters (per account, so purchases and settlements never write-lock the
    /// market).
    pub total_quote_paid: u64,
    pub total_purchased: u64,
    pub total_bonus: u64,
    pub total_reserved_claimed: u64,
    pub total_transferred_in: u64,
    pub total_transferred_out: u64,
    /// Nonce of the next reservation (seeds of `Reservation`).
    pub reservation_count: u64,
    pub auto_refill: AutoRefill,
    /// Credits announced to leave the vault (`transfer_credits` moves only these).
    pub notice: TransferNotice,
}
