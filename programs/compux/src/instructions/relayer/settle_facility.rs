use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, UsageSettled};
use crate::instructions::financed::{refresh, require_status};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct SettleFacility<'info> {
    pub relayer: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
        has_one = relayer @ CompuxError::NotRelayer,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],
        bump = facility.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = escrow @ CompuxError::WrongVault,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl SettleFacility<'_> {
    /// Burns metered usage from a facility escrow: released credits only. After a freeze it
    /// still takes batches metered before `frozen_at`, until the settlement window closes
    /// (thaw, burn, refreeze in one instruction), so no honest usage is lost to the race.
    pub fn handler(
        ctx: Context<Self>,
        seq: u64,
        amount: u64,
        batch_root: [u8; 32],
        window_end: i64,
    ) -> Result<()> {
        let a = ctx.accounts;
        let now = refresh(&mut a.facility)?;
        use FacilityStatus::*;
        require_status(&a.facility, &[Active, Delinquent, Defaulted, Frozen, Repaid])?;
        let f = &mut a.facility;
        let frozen = f.status == Frozen;
        let cutoff = f.settles_until(now)?;
        if cutoff.is_none_or(|until| window_end > until) {
            return err!(if frozen { CompuxError::CreditsFrozen } else { CompuxError::CreditsMatured });
        }
        f.settlement.check(seq, amount, f.spendable_credits(), window_end, now)?;

        let (market, mint, escrow) = (&a.market, a.credit_mint.to_account_info(), a.escrow.to_account_info());
        if frozen {
            token_ops::set_frozen(market, mint.clone(), escrow.clone(), false)?;
        }
        token_ops::burn_credits(market, mint.clone(), escrow.clone(), amount)?;
        if frozen {
            token_ops::set_frozen(market, mint, escrow, true)?;
        }
        f.burned_credits = f.burned_credits.checked_add(amount).ok_or(CompuxError::MathOverflow)?;
        f.settlement.record(seq, amount, &batch_root, window_end)?;
        a.escrow.reload()?;
        events::emit(UsageSettled {
            market: market.key(),
            source: f.key(),
            seq,
            amount,
            batch_root,
            window_end,
            usage_chain: f.settlement.usage_chain,
            vault_balance: a.escrow.amount,
        });
        Ok(())
    }
}
