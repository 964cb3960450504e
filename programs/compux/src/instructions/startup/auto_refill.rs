use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::purchase::{self, Delivery};
use crate::constants::*;
use crate::errors::CompuxError;
use crate::state::{CreditAccount, Market};

#[derive(Accounts)]
pub struct AutoRefillCrank<'info> {
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
        has_one = vault @ CompuxError::WrongVault,
        // Checked before `source`, whose expected address is unset while auto-refill is off.
        constraint = credit_account.auto_refill.enabled() @ CompuxError::AutoRefillDisabled,
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
    #[account(mut)]
    pub vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(mut, address = credit_account.auto_refill.source @ CompuxError::WrongRefillSource)]
    pub source: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl AutoRefillCrank<'_> {
    fn validate(&self) -> Result<()> {
        require!(self.vault.amount < self.credit_account.auto_refill.threshold, CompuxError::AboveThreshold);
        Ok(())
    }

    /// Permissionless: anyone (usually the relayer) may send it; it buys only when the vault
    /// is below the owner's threshold, at the current price, within the per-refill bounds
    /// (quote in, credits out) and the total cap, paying through the delegate approval the owner granted.
    #[access_control(ctx.accounts.validate())]
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let cfg = a.credit_account.auto_refill;
        let p = purchase::quote(&a.market, cfg.refill_credits)?;
        purchase::within(&p, cfg.max_quote_per_refill, cfg.min_credits_per_refill)?;
        let spent = cfg.spent_quote.checked_add(p.quote_in).ok_or(CompuxError::MathOverflow)?;
        require!(spent <= cfg.cap_quote, CompuxError::AutoRefillCapReached);
        a.credit_account.auto_refill.spent_quote = spent;
        purchase::deliver(
            Delivery {
                market: &a.market,
                credit_account: &mut a.credit_account,
                vault: &mut a.vault,
                credit_mint: a.credit_mint.to_account_info(),
                payer_quote: a.source.to_account_info(),
                payer_authority: a.market.to_account_info(),
                treasury: a.treasury.to_account_info(),
                delegated: true,
            },
            &p,
        )
    }
}
