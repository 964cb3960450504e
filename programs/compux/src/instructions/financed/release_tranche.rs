use anchor_lang::prelude::*;

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, TrancheReleased};
use crate::state::{Facility, FacilityStatus, Market};

#[derive(Accounts)]
pub struct ReleaseTranche<'info> {
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

impl ReleaseTranche<'_> {
    /// Permissionless: makes the next scheduled top-up spendable once it is due, while the
    /// facility is current or repaid (an early repayment keeps the schedule: it neither
    /// brings tranches forward nor forfeits them). The credits are already in the escrow;
    /// release moves them from locked to spendable.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let f = &mut ctx.accounts.facility;
        let now = super::refresh(f)?;
        require!(
            matches!(f.status, FacilityStatus::Active | FacilityStatus::Repaid),
            CompuxError::FacilityNotCurrent
        );
        let (credits, due) = f.next_tranche().ok_or(CompuxError::NoTrancheLeft)?;
        require!(now >= due, CompuxError::TrancheNotDue);
        f.tranches_released += 1;
        f.released_credits = f.released_credits.checked_add(credits).ok_or(CompuxError::MathOverflow)?;
        events::emit(TrancheReleased {
            market: f.market,
            facility: f.key(),
            tranche: f.tranches_released,
            credits,
            released_credits: f.released_credits,
        });
        Ok(())
    }
}
