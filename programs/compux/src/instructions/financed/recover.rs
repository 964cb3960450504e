use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityRecovered};
use crate::state::{add_to, buyback, Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct Recover<'info> {
    pub lender: Signer<'info>,
    #[account(
        mut,
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],
        bump = facility.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = lender @ CompuxError::NotLender,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]
    pub recovery_reserve: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]
    pub quote_vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl Recover<'_> {
    fn validate(&self) -> Result<()> {
        require_status(&self.facility, &[FacilityStatus::Frozen])?;
        let now = Clock::get()?.unix_timestamp;
        require!(now > self.facility.settlement_window_end(), CompuxError::SettlementWindowOpen);
        Ok(())
    }

    /// After the post-freeze settlement window the market buys back only as many unused
    /// escrowed credits as the debt needs, at the market's recovery rate of their cost (fixed
    /// at acceptance), paid from this facility's own earmark in the reserve (never the
    /// others') into the facility vault; burns them and every never-released credit; leaves
    /// the rest of the released credits to the borrower (converted at close, at maturity);
    /// writes off and records any shortfall; releases the earmark.
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let now = super::refresh(&mut a.facility)?;
        let overflow = || error!(CompuxError::MathOverflow);
        let f = &mut a.facility;
        let owed = f.loan.payoff(now).ok_or_else(overflow)?;
        let b = buyback(
            &f.loan,
            f.total_credits,
            f.recovery_rate_bps,
            a.escrow.amount,
            f.locked_credits(),
            owed,
            f.earmark,
        )
        .ok_or_else(overflow)?;

        let market = &a.market;
        if b.paid > 0 {
            token_ops::transfer(
                a.recovery_reserve.to_account_info(),
                a.quote_vault.to_account_info(),
                market.to_account_info(),
                Some(market),
                b.paid,
            )?;
        }
        f.loan.repay(b.paid, now).ok_or_else(overflow)?;
        let shortfall = f.loan.write_off(now).ok_or_else(overflow)?;
        let (mint, escrow) = (a.credit_mint.to_account_info(), a.escrow.to_account_info());
        token_ops::set_frozen(market, mint.clone(), escrow.clone(), false)?;
        if b.burned > 0 {
            token_ops::burn_credits(market, mint.clone(), escrow.clone(), b.burned)?;
        }
        // What is left is the borrower's, but only at maturity: it stays frozen until close.
        if b.returned > 0 {
            token_ops::set_frozen(market, mint, escrow, true)?;
        }
        f.recovered_credits = b.burned;
        f.returned_credits = b.returned;
        f.recovered_quote = b.paid;
        f.shortfall = shortfall;
        f.status = FacilityStatus::Recovered;
        let earmark_released = f.release_earmark(&mut a.market)?;
        add_to(&mut a.market.reserve_paid, b.paid)?;
        super::emit_transition(&a.facility, FacilityStatus::Frozen);
        events::emit(FacilityRecovered {
            market: a.market.key(),
            facility: a.facility.key(),
            credits_burned: b.burned,
            credits_bought: b.bought,
            credits_returned: b.returned,
            paid_to_lender: b.paid,
            shortfall,
            earmark_released,
        });
        Ok(())
    }
}
