use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token};

use crate::constants::*;
use crate::create;
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
    /// CHECK: created here (crate::create), at the PDA the seeds check.
    #[account(mut, seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), owner.key().as_ref()], bump)]
    pub credit_account: UncheckedAccount<'info>,
    #[account(address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    /// CHECK: created here as a credit-mint token account owned by the market PDA.
    #[account(mut, seeds = [CREDIT_VAULT_SEED, credit_account.key().as_ref()], bump)]
    pub vault: UncheckedAccount<'info>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl OpenCreditAccount<'_> {
    /// Opens the owner's credit account in this market with a vault only the program moves.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let (market, owner, address) = (a.market.key(), a.owner.key(), a.credit_account.key());
        let (bump, vault_bump) = (ctx.bumps.credit_account, ctx.bumps.vault);
        let payer = a.owner.to_account_info();
        create::init_token_account(
            &payer,
            &a.vault,
            &[CREDIT_VAULT_SEED, address.as_ref(), &[vault_bump]],
            &a.credit_mint.to_account_info(),
            &a.market.to_account_info(),
        )?;
        let account = CreditAccount {
            market,
            owner,
            vault: a.vault.key(),
            bump,
            vault_bump,
            settlement: Default::default(),
            total_quote_paid: 0,
            total_purchased: 0,
            total_bonus: 0,
            total_reserved_claimed: 0,
            total_transferred_in: 0,
            total_transferred_out: 0,
            reservation_count: 0,
            auto_refill: Default::default(),
            notice: Default::default(),
            burn_ceiling: Default::default(),
        };
        let seeds: &[&[u8]] = &[CREDIT_ACCOUNT_SEED, market.as_ref(), owner.as_ref(), &[bump]];
        create::init_account(&payer, &a.credit_account, seeds, &account)?;
        events::emit(CreditAccountOpened { market, credit_account: address, owner, vault: account.vault });
        Ok(())
    }
}
