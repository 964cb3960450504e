//! CompuX: an on-chain marketplace for AI compute credits.
//!
//! This program keeps the market (prices, vaults, the credit mint), standard and reserved
//! credits, and the relayer's usage settlement. See `docs/architecture.md`.

use anchor_lang::prelude::*;

pub mod constants;
mod create;
pub mod errors;
pub mod events;
pub mod instructions;
pub mod math;
pub mod state;
mod token_ops;

use instructions::*;
use state::{FacilityTerms, MarketConfig, MarketUpdate};

declare_id!("CmpXqV5BdQ7sXyBoV2Wx1M1aN8tS8n8kQXqK6qTz4tE1");

#[program]
pub mod compux {
    use super::*;

    // ---- admin ----
    pub fn init_market(ctx: Context<InitMarket>, config: MarketConfig, relayer: Pubkey) -> Result<()> {
        InitMarket::handler(ctx, config, relayer)
    }

    pub fn update_market(ctx: Context<UpdateMarket>, update: MarketUpdate) -> Result<()> {
        UpdateMarket::handler(ctx, update)
    }

    pub fn apply_market_update(ctx: Context<ApplyMarketUpdate>) -> Result<()> {
        ApplyMarketUpdate::handler(ctx)
    }

    pub fn propose_admin(ctx: Context<ProposeAdmin>, new_admin: Pubkey) -> Result<()> {
        ProposeAdmin::handler(ctx, new_admin)
    }

    pub fn accept_admin(ctx: Context<AcceptAdmin>) -> Result<()> {
        AcceptAdmin::handler(ctx)
    }

    pub fn fund_recovery_reserve(ctx: Context<FundRecoveryReserve>, amount: u64) -> Result<()> {
        FundRecoveryReserve::handler(ctx, amount)
    }

    pub fn withdraw_treasury(ctx: Context<WithdrawTreasury>, amount: u64) -> Result<()> {
        WithdrawTreasury::handler(ctx, amount)
    }

    pub fn withdraw_reserve(ctx: Context<WithdrawReserve>, amount: u64) -> Result<()> {
        WithdrawReserve::handler(ctx, amount)
    }

    // ---- startup: standard credits ----
    pub fn open_credit_account(ctx: Context<OpenCreditAccount>) -> Result<()> {
        OpenCreditAccount::handler(ctx)
    }

    pub fn buy_credits(
        ctx: Context<BuyCredits>,
        credits: u64,
        max_quote_in: u64,
        min_credits_out: u64,
    ) -> Result<()> {
        BuyCredits::handler(ctx, credits, max_quote_in, min_credits_out)
    }

    pub fn announce_transfer(ctx: Context<AnnounceTransfer>, amount: u64) -> Result<()> {
        AnnounceTransfer::handler(ctx, amount)
    }

    pub fn transfer_credits(ctx: Context<TransferCredits>, amount: u64) -> Result<()> {
        TransferCredits::handler(ctx, amount)
    }

    pub fn set_burn_ceiling(ctx: Context<SetBurnCeiling>, per_day: u64) -> Result<()> {
        SetBurnCeiling::handler(ctx, per_day)
    }

    pub fn configure_auto_refill(
        ctx: Context<ConfigureAutoRefill>,
        threshold: u64,
        refill_credits: u64,
        max_quote_per_refill: u64,
        min_credits_per_refill: u64,
        cap_quote: u64,
    ) -> Result<()> {
        ConfigureAutoRefill::handler(
            ctx,
            threshold,
            refill_credits,
            max_quote_per_refill,
            min_credits_per_refill,
            cap_quote,
        )
    }

    pub fn auto_refill(ctx: Context<AutoRefillCrank>) -> Result<()> {
        AutoRefillCrank::handler(ctx)
    }

    // ---- startup: reserved credits ----
    pub fn reserve(
        ctx: Context<Reserve>,
        nonce: u64,
        credits_per_period: u64,
        periods: u16,
        period_secs: i64,
        bounds: ReserveBounds,
    ) -> Result<()> {
        Reserve::handler(ctx, nonce, credits_per_period, periods, period_secs, bounds)
    }

    pub fn claim_period(ctx: Context<ClaimPeriod>) -> Result<()> {
        ClaimPeriod::handler(ctx)
    }

    pub fn cancel_reservation(ctx: Context<CancelReservation>) -> Result<()> {
        CancelReservation::handler(ctx)
    }

    pub fn lapse_reservation(ctx: Context<LapseReservation>) -> Result<()> {
        LapseReservation::handler(ctx)
    }

    // ---- relayer ----
    pub fn settle(
        ctx: Context<Settle>,
        seq: u64,
        amount: u64,
        batch_root: [u8; 32],
        window_end: i64,
    ) -> Result<()> {
        Settle::handler(ctx, seq, amount, batch_root, window_end)
    }

    pub fn settle_facility(
        ctx: Context<SettleFacility>,
        seq: u64,
        amount: u64,
        batch_root: [u8; 32],
        window_end: i64,
    ) -> Result<()> {
        SettleFacility::handler(ctx, seq, amount, batch_root, window_end)
    }

    // ---- financed credits ----
    pub fn offer_facility(ctx: Context<OfferFacility>, nonce: u64, terms: FacilityTerms) -> Result<()> {
        OfferFacility::handler(ctx, nonce, terms)
    }

    pub fn cancel_offer(ctx: Context<CancelOffer>) -> Result<()> {
        CancelOffer::handler(ctx)
    }

    pub fn accept_facility(
        ctx: Context<AcceptFacility>,
        expected: FacilityTerms,
        min_credits: u64,
    ) -> Result<()> {
        AcceptFacility::handler(ctx, expected, min_credits)
    }

    pub fn release_tranche(ctx: Context<ReleaseTranche>) -> Result<()> {
        ReleaseTranche::handler(ctx)
    }

    pub fn repay(ctx: Context<Repay>, amount: u64) -> Result<()> {
        Repay::handler(ctx, amount)
    }

    pub fn refresh_facility(ctx: Context<RefreshFacility>) -> Result<()> {
        RefreshFacility::handler(ctx)
    }

    pub fn freeze_escrow(ctx: Context<FreezeEscrow>) -> Result<()> {
        FreezeEscrow::handler(ctx)
    }

    pub fn recover(ctx: Context<Recover>) -> Result<()> {
        Recover::handler(ctx)
    }

    pub fn close_facility(ctx: Context<CloseFacility>) -> Result<()> {
        CloseFacility::handler(ctx)
    }

    pub fn withdraw_repayments(ctx: Context<WithdrawRepayments>, amount: u64) -> Result<()> {
        WithdrawRepayments::handler(ctx, amount)
    }
}
