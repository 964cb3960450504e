use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use super::purchase::{self, Delivery};
use crate::constants::*;
use crate::errors::CompuxError;
use crate::state::{CreditAccount, Market};

#[derive(Accounts)]
pub struct BuyCredits<'info> {
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
        has_one = vault @ CompuxError::WrongVault,
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
    #[account(mut)]
    pub vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(mut, constraint = owner_quote.mint == market.quote_mint @ CompuxError::WrongMint)]
    pub owner_quote: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.treasury @ CompuxError::WrongVault)]
    pub treasury: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl BuyCredits<'_> {
    /// Buys `credits` (base units) at the price of the current UTC hour; bulk-tier bonus
    /// credits are minted on top. Fails with `SlippageExceeded` if the price needs more
    /// than `max_quote_in`, and with `PurchaseBelowMinimum` if credits and bonus together
    /// come to fewer than `min_credits_out`.
    pub fn handler(ctx: Context<Self>, credits: u64, max_quote_in: u64, min_credits_out: u64) -> Result<()> {
        let a = ctx.accounts;
        let p = purchase::quote(&a.market, credits)?;
        purchase::within(&p, max_quote_in, min_credits_out)?;
        purchase::deliver(
            Delivery {
                market: &a.market,
                credit_account: &mut a.credit_account,
                vault: &mut a.vault,
                credit_mint: a.credit_mint.to_account_info(),
                payer_quote: a.owner_quote.to_account_info(),
                payer_authority: a.owner.to_account_info(),
                treasury: a.treasury.to_account_info(),
                delegated: false,
            },
            &p,
        )
    }
}
