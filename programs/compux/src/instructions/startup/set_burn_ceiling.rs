use anchor_lang::prelude::*;

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, BurnCeilingSet};
use crate::state::{CreditAccount, Market};

#[derive(Accounts)]
pub struct SetBurnCeiling<'info> {
    pub owner: Signer<'info>,
    #[account(
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
}

impl SetBurnCeiling<'_> {
    /// Sets the most the relayer may burn from the vault per UTC day (0: no ceiling). A
    /// higher ceiling applies at once; a lower one after the market's transfer notice (the
    /// relayer stops admitting above it as soon as it is announced), so usage already
    /// charged under the old one still burns.
    pub fn handler(ctx: Context<Self>, per_day: u64) -> Result<()> {
        let a = ctx.accounts;
        let now = Clock::get()?.unix_timestamp;
        let applies_at = a.credit_account.burn_ceiling.set(per_day, now, a.market.transfer_notice_secs)?;
        events::emit(BurnCeilingSet {
            market: a.market.key(),
            account: a.credit_account.key(),
            per_day,
            applies_at,
        });
        Ok(())
    }
}
