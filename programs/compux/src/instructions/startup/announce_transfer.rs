use anchor_lang::prelude::*;

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, TransferAnnounced};
use crate::state::{CreditAccount, Market, TransferNotice};

#[derive(Accounts)]
pub struct AnnounceTransfer<'info> {
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
    )]
    pub credit_account: Box<Account<'info, CreditAccount>>,
}

impl AnnounceTransfer<'_> {
    /// Announces that `amount` credits will leave the vault (0 withdraws the notice). From
    /// now on the relayer spends none of them; they may move after the market's
    /// `transfer_notice_secs`. A smaller notice keeps its time; a larger one waits anew, so
    /// the delay always covers every announced credit.
    pub fn handler(ctx: Context<Self>, amount: u64) -> Result<()> {
        let a = ctx.accounts;
        let now = Clock::get()?.unix_timestamp;
        let old = a.credit_account.notice;
        let ready_at = if amount <= old.amount {
            old.ready_at
        } else {
            now.checked_add(a.market.transfer_notice_secs).ok_or(CompuxError::MathOverflow)?
        };
        a.credit_account.notice = TransferNotice { amount, ready_at };
        events::emit(TransferAnnounced {
            market: a.market.key(),
            account: a.credit_account.key(),
            amount,
            ready_at,
        });
        Ok(())
    }
}
