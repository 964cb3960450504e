use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, MarketInitialized};
use crate::state::{Market, MarketConfig, PendingUpdate};

#[derive(Accounts)]
pub struct InitMarket<'info> {
    #[account(mut)]
    pub creator: Signer<'info>,
    #[account(
        init,
        payer = creator,
        space = 8 + Market::INIT_SPACE,
        seeds = [MARKET_SEED, creator.key().as_ref(), quote_mint.key().as_ref()],
        bump,
    )]
    pub market: Box<Account<'info, Market>>,
    pub quote_mint: Box<Account<'info, Mint>>,
    #[account(
        init,
        payer = creator,
        seeds = [CREDIT_MINT_SEED, market.key().as_ref()],
        bump,
        mint::decimals = CREDIT_DECIMALS,
        mint::authority = market,
        mint::freeze_authority = market,
    )]
    pub credit_mint: Box<Account<'info, Mint>>,
    #[account(
        init,
        payer = creator,
        seeds = [TREASURY_SEED, market.key().as_ref()],
        bump,
        token::mint = quote_mint,
        token::authority = market,
    )]
    pub treasury: Box<Account<'info, TokenAccount>>,
    #[account(
        init,
        payer = creator,
        seeds = [RECOVERY_RESERVE_SEED, market.key().as_ref()],
        bump,
        token::mint = quote_mint,
        token::authority = market,
    )]
    pub recovery_reserve: Box<Account<'info, TokenAccount>>,
    #[account(
        init,
        payer = creator,
        seeds = [DEPOSIT_VAULT_SEED, market.key().as_ref()],
        bump,
        token::mint = quote_mint,
        token::authority = market,
    )]
    pub deposit_vault: Box<Account<'info, TokenAccount>>,
    #[account(
        init,
        payer = creator,
        space = 8 + PendingUpdate::INIT_SPACE,
        seeds = [PENDING_UPDATE_SEED, market.key().as_ref()],
        bump,
    )]
    pub pending: Box<Account<'info, PendingUpdate>>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl InitMarket<'_> {
    fn validate(&self, relayer: &Pubkey) -> Result<()> {
        require_keys_neq!(*relayer, Pubkey::default(), CompuxError::NotRelayer);
        Ok(())
    }

    /// Creates a market whose creator is its first admin. The credit mint, treasury,
    /// recovery reserve and deposit vault are PDAs controlled by the market PDA.
    #[access_control(ctx.accounts.validate(&relayer))]
    pub fn handler(ctx: Context<Self>, config: MarketConfig, relayer: Pubkey) -> Result<()> {
        let a = ctx.accounts;
        let market = &mut a.market;
        market.creator = a.creator.key();
        market.quote_mint = a.quote_mint.key();
        market.bump = ctx.bumps.market;
        market.admin = a.creator.key();
        market.pending_admin = Pubkey::default();
        market.relayer = relayer;
        market.credit_mint = a.credit_mint.key();
        market.treasury = a.treasury.key();
        market.recovery_reserve = a.recovery_reserve.key();
        market.deposit_vault = a.deposit_vault.key();
        market.paused = false;
        market.apply_config(&config)?;
        let pending = &mut a.pending;
        pending.market = market.key();
        pending.bump = ctx.bumps.pending;

        events::emit(MarketInitialized {
            market: market.key(),
            admin: market.admin,
            quote_mint: market.quote_mint,
            credit_mint: market.credit_mint,
            relayer,
            config: market.config(),
        });
        Ok(())
    }
}
