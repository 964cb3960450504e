use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, UsageSettled};
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
        let now = Clock::get()?.unix_timestamp;
        self.credit_account.settlement.check(seq, amount, self.vault.amount, window_end, now)
    }

    /// Burns `amount` credits of metered usage from a credit vault, within the owner's
    /// daily burn ceiling. `batch_root` is the Merkle root of the batch's usage records,
    /// chained into `usage_chain`; `window_end` is the time of the batch's last record.
    #[access_control(ctx.accounts.validate(seq, amount, window_end))]
    pub fn handler(
        ctx: Context<Self>,
        seq: u64,
        amount: u64,
        batch_root: [u8; 32],
        window_end: i64,
    ) -> Result<()> {
        let a = ctx.accounts;
        a.credit_account.burn_ceiling.burn(amount, Clock::get()?.unix_timestamp)?;
        token_ops::burn_credits(
            &a.market,
            a.credit_mint.to_account_info(),
            a.vault.to_account_info(),
            amount,
        )?;
        a.credit_account.settlement.record(seq, amount, &batch_root, window_end)?;
        a.vault.reload()?;
        events::emit(UsageSettled {
            market: a.market.key(),
            source: a.credit_account.key(),
            seq,
            amount,
            batch_root,
            window_end,
            usage_chain: a.credit_account.settlement.usage_chain,
            vault_balance: a.vault.amount,
        });
        Ok(())
    }
}
