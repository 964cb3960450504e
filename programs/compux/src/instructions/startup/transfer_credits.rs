use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, CreditsTransferred};
use crate::state::{CreditAccount, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct TransferCredits<'info> {
    pub owner: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), from_account.owner.as_ref()],
        bump = from_account.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = owner @ CompuxError::NotAccountOwner,
    )]
    pub from_account: Box<Account<'info, CreditAccount>>,
    #[account(mut, address = from_account.vault @ CompuxError::WrongVault)]
    pub from_vault: Box<Account<'info, TokenAccount>>,
    #[account(
        mut,
        seeds = [CREDIT_ACCOUNT_SEED, to_account.market.as_ref(), to_account.owner.as_ref()],
        bump = to_account.bump,
        constraint = to_account.market == market.key() @ CompuxError::MarketMismatch,
    )]
    pub to_account: Box<Account<'info, CreditAccount>>,
    #[account(mut, address = to_account.vault @ CompuxError::WrongVault)]
    pub to_vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl TransferCredits<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        require!(amount > 0, CompuxError::ZeroAmount);
        let notice = self.from_account.notice;
        require!(amount <= notice.amount, CompuxError::TransferNotAnnounced);
        require!(Clock::get()?.unix_timestamp >= notice.ready_at, CompuxError::TransferNotReady);
        require!(self.from_vault.amount >= amount, CompuxError::InsufficientCredits);
        Ok(())
    }

    /// Moves standard credits between two credit accounts of the same market, out of the
    /// sender's transfer notice: usage the relayer charged before it saw the notice has been
    /// burned from the vault by then, so only what is left can move. Financed credits live
    /// in facility escrows, never in a credit vault, so they cannot move here.
    #[access_control(ctx.accounts.validate(amount))]
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        let a = ctx.accounts;
        token_ops::transfer(
            a.from_vault.to_account_info(),
            a.to_vault.to_account_info(),
            a.market.to_account_info(),
            Some(&a.market),
            amount,
        )?;
        a.from_account.notice.amount =
            a.from_account.notice.amount.checked_sub(amount).ok_or(CompuxError::TransferNotAnnounced)?;
        a.from_account.total_transferred_out =
            a.from_account.total_transferred_out.checked_add(amount).ok_or(CompuxError::MathOverflow)?;
        a.to_account.total_transferred_in =
            a.to_account.total_transferred_in.checked_add(amount).ok_or(CompuxError::MathOverflow)?;
        events::emit(CreditsTransferred {
            market: a.market.key(),
            from: a.from_account.key(),
            to: a.to_account.key(),
            amount,
        });
        Ok(())
    }
}
