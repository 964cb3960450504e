use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, CreditAccountOpened};
use crate::state::{CreditAccount, Market};

#[derive(Accounts)]
pub struct OpenCreditAccount<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        init,
        payer = owner,
        space = 8 + CreditAccount::INIT_SPACE,
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), owner.key().as_ref()],
        bump,
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
    #[account(address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(
        init,
        payer = owner,
        seeds = [CREDIT_VAULT_SEED, credit_account.key().as_ref()],
        bump,
        token::mint = credit_mint,
        token::authority = market,
    )]
    pub vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl OpenCreditAccount<'_> {
    /// Opens the owner's credit account in this market with a vault only the program moves.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let acct = &mut a.credit_account;
        acct.market = a.market.key();
        acct.owner = a.owner.key();
        acct.vault = a.vault.key();
        acct.bump = ctx.bumps.credit_account;
        acct.vault_bump = ctx.bumps.vault;
        events::emit(CreditAccountOpened {
            market: acct.market,
            credit_account: acct.key(),
            owner: acct.owner,
            vault: acct.vault,
        });
        Ok(())
    }
}
