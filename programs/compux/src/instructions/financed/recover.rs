use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::require_status;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, FacilityRecovered};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct Recover<'info> {
    pub lender: Signer<'info>,
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
        has_one = lender @ CompuxError::NotLender,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]
    pub recovery_reserve: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = facility.lender_quote @ CompuxError::WrongTokenOwner)]
    pub lender_quote: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl Recover<'_> {
    fn validate(&self) -> Result<()> {
        require_status(&self.facility, &[FacilityStatus::Frozen])?;
        let now = Clock::get()?.unix_timestamp;
        require!(now > self.facility.settlement_window_end(), CompuxError::SettlementWindowOpen);
        Ok(())
    }

    /// After the post-freeze settlement window: the market buys back every unused escrowed
    /// credit at the recovery rate of its cost, out of the recovery reserve and up to what the
    /// borrower owes; pays the lender; burns the credits; writes off and records the rest.
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let now = super::refresh(&mut a.facility)?;
        let overflow = || error!(CompuxError::MathOverflow);
        let f = &mut a.facility;
        let unused = a.escrow.amount;
        let value =
            f.loan.recovery_value(unused, f.total_credits, f.terms.recovery_rate_bps).ok_or_else(overflow)?;
        let owed = f.loan.payoff(now).ok_or_else(overflow)?;
        let paid = value.min(owed).min(a.recovery_reserve.amount);

        let market = &a.market;
        if paid > 0 {
            token_ops::transfer(
                a.recovery_reserve.to_account_info(),
                a.lender_quote.to_account_info(),
                market.to_account_info(),
                Some(market),
                paid,
            )?;
        }
        f.loan.repay(paid, now).ok_or_else(overflow)?;
        let shortfall = f.loan.write_off(now).ok_or_else(overflow)?;
        token_ops::set_frozen(market, a.credit_mint.to_account_info(), a.escrow.to_account_info(), false)?;
        if unused > 0 {
            token_ops::burn_credits(
                market,
                a.credit_mint.to_account_info(),
                a.escrow.to_account_info(),
                unused,
            )?;
        }
        f.recovered_credits = unused;
        f.recovered_quote = paid;
        f.shortfall = shortfall;
        f.status = FacilityStatus::Recovered;
        super::emit_transition(f, FacilityStatus::Frozen);
        events::emit(FacilityRecovered {
            market: market.key(),
            facility: f.key(),
            credits_burned: unused,
            paid_to_lender: paid,
            shortfall,
        });
        Ok(())
    }
}
