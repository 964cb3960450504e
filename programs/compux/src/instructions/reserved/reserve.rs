use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::*;
use crate::create;
use crate::errors::CompuxError;
use crate::events::{self, ReservationCreated};
use crate::math::reservation::{quote_reservation, ReservationQuote};
use crate::state::{CreditAccount, Market, Reservation};
use crate::token_ops;

/// What the owner accepts for a reservation, checked when it lands: the admin may have
/// changed the base price, the term discounts or the early-termination fee since the owner
/// quoted. Quote units.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReserveBounds {
    /// Per whole credit, as locked.
    pub max_price: u64,
    /// Taken at once: the fee plus the discount clawback room.
    pub max_deposit: u64,
    /// Forfeited on cancellation or lapse.
    pub max_fee: u64,
}

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
    /// the last. The first period is claimable at once. The owner's bounds, against the
    /// admin changing the market under a signed transaction: `PriceAboveMax` if the locked
    /// price exceeds `max_price`, `DepositAboveMax` if the deposit exceeds `max_deposit`,
    /// `FeeAboveMax` if the early-termination fee (forfeited on cancel or lapse) exceeds
    /// `max_fee`.
    #[access_control(ctx.accounts.validate(nonce, credits_per_period, periods, period_secs))]
    pub fn handler(
        ctx: Context<Self>,
        nonce: u64,
        credits_per_period: u64,
        periods: u16,
        period_secs: i64,
        bounds: ReserveBounds,
    ) -> Result<()> {
        let a = ctx.accounts;
        let overflow = || error!(CompuxError::MathOverflow);
        let q = quote_reservation(
            credits_per_period,
            periods,
            period_secs,
            a.market.base_price,
            a.market.reserve_discounts(),
            a.market.early_termination_fee_bps,
        )
        .ok_or_else(overflow)?;
        let ReservationQuote { discount_bps, locked_price: price, period_cost: cost, fee, deposit, .. } = q;
        let discount = q.period_discount;
        require!(price <= bounds.max_price, CompuxError::PriceAboveMax);
        require!(deposit <= bounds.max_deposit, CompuxError::DepositAboveMax);
        require!(fee <= bounds.max_fee, CompuxError::FeeAboveMax);

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
