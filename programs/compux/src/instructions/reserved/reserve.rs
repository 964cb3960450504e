use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::*;
use crate::create;
use crate::errors::CompuxError;
use crate::events::{self, ReservationCreated};
use crate::math::reservation::{
    committed_term, discount_for_term, locked_price, period_cost, period_discount, termination_deposit,
};
use crate::state::{CreditAccount, Market, Reservation};
use crate::token_ops;

#[derive(Accounts)]
#[instruction(nonce: u64)]
pub struct Reserve<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), credit_account.owner.as_ref()],
        bump = credit_account.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = owner @ CompuxError::NotAccountOwner,
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
    /// CHECK: created here (crate::create), at the PDA of the account's next reservation.
    #[account(mut, seeds = [RESERVATION_SEED, credit_account.key().as_ref(), &nonce.to_le_bytes()], bump)]
    pub reservation: UncheckedAccount<'info>,
    #[account(mut, constraint = owner_quote.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub owner_quote: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.deposit_vault @ CompuxError::WrongVault)]
    pub deposit_vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl Reserve<'_> {
    fn validate(&self, nonce: u64, credits_per_period: u64, periods: u16, period_secs: i64) -> Result<()> {
        require!(!self.market.paused, CompuxError::MarketPaused);
        // The number is in the instruction so a client can price the bump search (the SDK's
        // compute-unit limit) from the instruction alone.
        require!(nonce == self.credit_account.reservation_count, CompuxError::WrongReservationNonce);
        require!(credits_per_period > 0, CompuxError::ZeroAmount);
        // Every period's credits are eventually minted: the whole commitment must fit a u64.
        require!(credits_per_period.checked_mul(periods as u64).is_some(), CompuxError::MathOverflow);
        require!(
            (1..=MAX_PERIODS).contains(&periods)
                && (MIN_PERIOD_SECS..=MAX_PERIOD_SECS).contains(&period_secs),
            CompuxError::InvalidTerm
        );
        require!(periods >= 2, CompuxError::CommitmentTooShort);
        Ok(())
    }

    /// Locks the base price (whatever the hour) less the discount its future commitment
    /// earns, for `periods` (at least two) periods of `period_secs`, and takes the deposit:
    /// the early-termination fee plus room to claw back the discount of every period but
    /// the last. The first period is claimable at once. Fails with `PriceAboveMax` if the
    /// locked price exceeds `max_price`.
    #[access_control(ctx.accounts.validate(nonce, credits_per_period, periods, period_secs))]
    pub fn handler(
        ctx: Context<Self>,
        nonce: u64,
        credits_per_period: u64,
        periods: u16,
        period_secs: i64,
        max_price: u64,
    ) -> Result<()> {
        let a = ctx.accounts;
        let overflow = || error!(CompuxError::MathOverflow);
        let term_secs = committed_term(periods, period_secs).ok_or_else(overflow)?;
        let discount_bps = discount_for_term(term_secs, a.market.reserve_discounts());
        let price = locked_price(a.market.base_price, discount_bps).ok_or_else(overflow)?;
        require!(price <= max_price, CompuxError::PriceAboveMax);
        let cost = period_cost(credits_per_period, price).ok_or_else(overflow)?;
        let fee =
            termination_deposit(cost, periods, a.market.early_termination_fee_bps).ok_or_else(overflow)?;
        let discount = period_discount(credits_per_period, a.market.base_price, cost).ok_or_else(overflow)?;
        let deposit =
            discount.checked_mul(periods as u64 - 1).and_then(|d| d.checked_add(fee)).ok_or_else(overflow)?;

        if deposit > 0 {
            token_ops::transfer(
                a.owner_quote.to_account_info(),
                a.deposit_vault.to_account_info(),
                a.owner.to_account_info(),
                None,
                deposit,
            )?;
        }
        a.market.deposits_outstanding =
            a.market.deposits_outstanding.checked_add(deposit).ok_or_else(overflow)?;

        a.credit_account.reservation_count = nonce.checked_add(1).ok_or_else(overflow)?;
        let start_ts = Clock::get()?.unix_timestamp;
        let (credit_account, bump) = (a.credit_account.key(), ctx.bumps.reservation);
        let seeds: &[&[u8]] = &[RESERVATION_SEED, credit_account.as_ref(), &nonce.to_le_bytes(), &[bump]];
        let reservation = Reservation {
            market: a.market.key(),
            credit_account: a.credit_account.key(),
            owner: a.owner.key(),
            nonce,
            bump,
            locked_price: price,
            discount_bps,
            credits_per_period,
            period_cost: cost,
            periods,
            period_secs,
            start_ts,
            claimed_periods: 0,
            deposit,
            fee,
            period_discount: discount,
        };
        create::init_account(&a.owner.to_account_info(), &a.reservation, seeds, &reservation)?;
        events::emit(ReservationCreated {
            market: a.market.key(),
            reservation: a.reservation.key(),
            credit_account: a.credit_account.key(),
            locked_price: price,
            discount_bps,
            credits_per_period,
            period_cost: cost,
            periods,
            period_secs,
            start_ts,
            deposit,
        });
        Ok(())
    }
}
