use anchor_lang::prelude::*;
use anchor_spl::token::{self, Approve, Revoke, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, AutoRefillConfigured};
use crate::state::{AutoRefill, CreditAccount, Market};

#[derive(Accounts)]
pub struct ConfigureAutoRefill<'info> {
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
    /// The owner's quote account the refills are paid from.
    #[account(
        mut,
        constraint = source.mint == market.quote_mint @ CompuxError::WrongMint,
        constraint = source.owner == owner.key() @ CompuxError::NotAccountOwner,
    )]
    pub source: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
}

impl ConfigureAutoRefill<'_> {
    /// Sets (or, with `refill_credits == 0`, clears) auto-refill. Setting it approves the
    /// market PDA as SPL delegate on `source` for exactly `cap_quote`; clearing revokes it.
    /// Each call restarts the cap's spending count.
    pub fn handler(
        ctx: Context<Self>,
        threshold: u64,
        refill_credits: u64,
        max_quote_per_refill: u64,
        min_credits_per_refill: u64,
        cap_quote: u64,
    ) -> Result<()> {
        let a = ctx.accounts;
        let config = if refill_credits == 0 {
            token::revoke(CpiContext::new(
                token::ID,
                Revoke { source: a.source.to_account_info(), authority: a.owner.to_account_info() },
            ))?;
            AutoRefill::default()
        } else {
            require!(max_quote_per_refill > 0 && cap_quote > 0, CompuxError::ZeroAmount);
            token::approve(
                CpiContext::new(
                    token::ID,
                    Approve {
                        to: a.source.to_account_info(),
                        delegate: a.market.to_account_info(),
                        authority: a.owner.to_account_info(),
                    },
                ),
                cap_quote,
            )?;
            AutoRefill {
                source: a.source.key(),
                threshold,
                refill_credits,
                max_quote_per_refill,
                min_credits_per_refill,
                cap_quote,
                spent_quote: 0,
            }
        };
        a.credit_account.auto_refill = config;
        events::emit(AutoRefillConfigured {
            market: a.market.key(),
            credit_account: a.credit_account.key(),
            source: config.source,
            threshold,
            refill_credits: config.refill_credits,
            max_quote_per_refill: config.max_quote_per_refill,
            min_credits_per_refill: config.min_credits_per_refill,
            cap_quote: config.cap_quote,
        });
        Ok(())
    }
}
