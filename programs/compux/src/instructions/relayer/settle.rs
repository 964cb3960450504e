use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, UsageSettled};
use crate::math::usage_chain::next_usage_chain;
use crate::state::{CreditAccount, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct Settle<'info> {
    pub relayer: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
        has_one = relayer @ CompuxError::NotRelayer,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), credit_account.owner.as_ref()],
        bump = credit_account.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = vault @ CompuxError::WrongVault,
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
    #[account(mut)]
    pub vault: Box<Account<'info, TokenAccount>>,
    #[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl Settle<'_> {
    fn validate(&self, seq: u64, amount: u64, window_end: i64) -> Result<()> {
        let acct = &self.credit_account;
        // Exactly-once: the relayer persists `seq` before sending, so a resend after a crash
        // carries the same `seq` and is refused here instead of burning twice.
        require!(seq > acct.settled_seq, CompuxError::SettleReplay);
        require!(seq == acct.settled_seq.saturating_add(1), CompuxError::SettleGap);
        require!(amount > 0, CompuxError::ZeroAmount);
        require!(amount <= self.vault.amount, CompuxError::InsufficientCredits);
        require!(window_end >= acct.last_window_end, CompuxError::SettleWindowRegressed);
        require!(window_end <= Clock::get()?.unix_timestamp, CompuxError::SettleWindowInFuture);
        Ok(())
    }

    /// Burns `amount` credits of metered usage from a credit vault. `batch_root` is the
    /// Merkle root of the batch's usage records, chained into `usage_chain`; `window_end`
    /// is the time of the batch's last record.
    #[access_control(ctx.accounts.validate(seq, amount, window_end))]
    pub fn handler(
        ctx: Context<Self>,
        seq: u64,
        amount: u64,
        batch_root: [u8; 32],
        window_end: i64,
    ) -> Result<()> {
        let a = ctx.accounts;
        token_ops::burn_credits(
            &a.market,
            a.credit_mint.to_account_info(),
            a.vault.to_account_info(),
            amount,
        )?;
        let acct = &mut a.credit_account;
        acct.usage_chain = next_usage_chain(&acct.usage_chain, seq, amount, &batch_root, window_end);
        acct.settled_seq = seq;
        acct.last_window_end = window_end;
        acct.total_settled = acct.total_settled.checked_add(amount).ok_or(CompuxError::MathOverflow)?;
        a.vault.reload()?;
        events::emit(UsageSettled {
            market: a.market.key(),
            source: acct.key(),
            seq,
            amount,
            batch_root,
            window_end,
            usage_chain: acct.usage_chain,
            vault_balance: a.vault.amount,
        });
        Ok(())
    }
}
