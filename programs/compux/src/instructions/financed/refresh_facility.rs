use anchor_lang::prelude::*;

use crate::constants::*;
use crate::errors::CompuxError;
use crate::state::{Facility, Market};

#[derive(Accounts)]
pub struct RefreshFacility<'info> {
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],
        bump = facility.bump,
        has_one = market @ CompuxError::MarketMismatch,
    )]
    pub facility: Box<Account<'info, Facility>>,
}

impl RefreshFacility<'_> {
    /// Permissionless crank (as Huma's `refresh_credit`): installments fall due, interest and
    /// late fees accrue, and the status follows the clock: current -> delinquent after the
    /// grace period -> defaulted after the default threshold.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        super::refresh(&mut ctx.accounts.facility)?;
        Ok(())
    }
}
