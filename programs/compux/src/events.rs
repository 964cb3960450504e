//! Events for every state change an indexer or auditor needs. Each carries the market.

use anchor_lang::prelude::*;
use anchor_lang::Event;

use crate::state::{FacilityStatus, FacilityTerms, Market, MarketConfig, MarketParams};

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketInitialized {
    pub market: Pubkey,
    pub admin: Pubkey,
    pub quote_mint: Pubkey,
    pub credit_mint: Pubkey,
    pub relayer: Pubkey,
    pub config: MarketConfig,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketUpdated {
    pub market: Pubkey,
    pub config: MarketConfig,
    pub relayer: Pubkey,
    pub paused: bool,
}

impl MarketUpdated {
    /// The market at `address` as it stands after a change.
    pub fn of(address: Pubkey, market: &Market) -> Self {
        Self { market: address, config: market.config(), relayer: market.relayer, paused: market.paused }
    }
}

/// A parameter change scheduled by `update_market`: `params` apply from `effective_at`.
#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketUpdateScheduled {
    pub market: Pubkey,
    pub effective_at: i64,
    pub params: MarketParams,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminProposed {
    pub market: Pubkey,
    pub admin: Pubkey,
    pub pending_admin: Pubkey,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccepted {
    pub market: Pubkey,
    pub previous_admin: Pubkey,
    pub admin: Pubkey,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReserveFunded {
    pub market: Pubkey,
    pub funder: Pubkey,
    pub amount: u64,
    pub reserve_balance: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditAccountOpened {
    pub market: Pubkey,
    pub credit_account: Pubkey,
    pub owner: Pubkey,
    pub vault: Pubkey,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditsPurchased {
    pub market: Pubkey,
    pub credit_account: Pubkey,
    pub payer: Pubkey,
    pub credits: u64,
    pub bonus_credits: u64,
    pub quote_in: u64,
    pub hour: u8,
    pub multiplier_bps: u16,
    /// True when sent by the permissionless `auto_refill` crank.
    pub auto_refill: bool,
    pub vault_balance: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferAnnounced {
    pub market: Pubkey,
    pub account: Pubkey,
    pub amount: u64,
    pub ready_at: i64,
}

/// The owner set its daily burn ceiling (0: none); it is in force from `applies_at`.
#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnCeilingSet {
    pub market: Pubkey,
    pub account: Pubkey,
    pub per_day: u64,
    pub applies_at: i64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditsTransferred {
    pub market: Pubkey,
    pub from: Pubkey,
    pub to: Pubkey,
    pub amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRefillConfigured {
    pub market: Pubkey,
    pub credit_account: Pubkey,
    pub source: Pubkey,
    pub threshold: u64,
    pub refill_credits: u64,
    pub max_quote_per_refill: u64,
    pub min_credits_per_refill: u64,
    pub cap_quote: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationCreated {
    pub market: Pubkey,
    pub reservation: Pubkey,
    pub credit_account: Pubkey,
    pub locked_price: u64,
    pub discount_bps: u16,
    pub credits_per_period: u64,
    pub period_cost: u64,
    pub periods: u16,
    pub period_secs: i64,
    pub start_ts: i64,
    pub deposit: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationPeriodClaimed {
    pub market: Pubkey,
    pub reservation: Pubkey,
    pub period: u16,
    pub credits: u64,
    pub quote_in: u64,
}

/// How a reservation ended; its account is closed at the same time.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationOutcome {
    /// Every period claimed; the deposit went back to the owner.
    Completed,
    /// Cancelled by the owner; the fee and the discount taken went to the treasury.
    Cancelled,
    /// A period went unclaimed; the fee and the discount taken went to the treasury.
    Lapsed,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationEnded {
    pub market: Pubkey,
    pub reservation: Pubkey,
    pub credit_account: Pubkey,
    pub outcome: ReservationOutcome,
    pub claimed_periods: u16,
    pub deposit: u64,
    /// To the treasury: the fee plus the discount taken on claimed periods (0 on completion).
    pub forfeited: u64,
    /// Back to the owner's quote account.
    pub refunded: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSettled {
    pub market: Pubkey,
    /// The credit source burned from (a credit account, later also a facility).
    pub source: Pubkey,
    pub seq: u64,
    pub amount: u64,
    pub batch_root: [u8; 32],
    pub window_end: i64,
    pub usage_chain: [u8; 32],
    pub vault_balance: u64,
}

/// Logs `event` as `Program data: <base64>`, exactly as Anchor's `emit!` does on-chain.
/// Anchor's off-chain `sol_log_data` is a no-op, so natively (tests, the localnet) this goes
/// through the runtime's syscall stubs instead, and indexers see the same logs either way.
pub fn emit<E: Event>(event: E) {
    let data = event.data();
    #[cfg(target_os = "solana")]
    anchor_lang::solana_program::log::sol_log_data(&[&data]);
    #[cfg(not(target_os = "solana"))]
    anchor_lang::compat::solana_sysvar::program_stubs::sol_log_data(&[&data]);
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityOffered {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub lender: Pubkey,
    pub terms: FacilityTerms,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityCancelled {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub refunded: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityAccepted {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub borrower: Pubkey,
    pub principal: u64,
    pub total_credits: u64,
    pub released_credits: u64,
    pub installment_amount: u64,
    pub scheduled_total: u64,
    pub maturity_ts: i64,
    /// The market's values the credits and the earmark were computed from.
    pub base_price: u64,
    pub cap_bps: u16,
    pub recovery_rate_bps: u16,
    pub earmark: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrancheReleased {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub tranche: u16,
    pub credits: u64,
    pub released_credits: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityRepaid {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub fees: u64,
    pub interest: u64,
    pub principal: u64,
    pub principal_outstanding: u64,
    pub past_due: u64,
    pub status: FacilityStatus,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityStatusChanged {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub from: FacilityStatus,
    pub to: FacilityStatus,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowFrozen {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub frozen_at: i64,
    pub settlement_window_end: i64,
    pub escrow_balance: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityRecovered {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub credits_burned: u64,
    /// Credits bought back (at most what the debt needed); the rest of `credits_burned`
    /// were never released.
    pub credits_bought: u64,
    /// Released credits left to the borrower, converted at close.
    pub credits_returned: u64,
    /// Paid from the recovery reserve into the facility vault.
    pub paid_to_lender: u64,
    pub shortfall: u64,
    pub earmark_released: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityClosed {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub converted_credits: u64,
    pub burned_credits: u64,
    /// Quote still in the facility vault for the lender to withdraw (0: the facility closed).
    pub vault_balance: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepaymentsWithdrawn {
    pub market: Pubkey,
    pub facility: Pubkey,
    pub destination: Pubkey,
    pub amount: u64,
    pub vault_balance: u64,
}

/// Quote leaving the treasury: the marketplace paying providers for the compute the burns
/// represent. An auditor sums these against the treasury's inflows.
#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreasuryWithdrawn {
    pub market: Pubkey,
    pub admin: Pubkey,
    pub destination: Pubkey,
    pub amount: u64,
    pub treasury_balance: u64,
    pub total_withdrawn: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveWithdrawn {
    pub market: Pubkey,
    pub admin: Pubkey,
    pub destination: Pubkey,
    pub amount: u64,
    pub reserve_balance: u64,
    pub earmarked: u64,
}
