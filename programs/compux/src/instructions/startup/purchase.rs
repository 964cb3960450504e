//! The part of a standard purchase shared by `buy_credits` and `auto_refill`: price it at
//! the chain clock, take the quote, mint credits and bonus into the vault.

use anchor_lang::prelude::*;
use anchor_spl::token::TokenAccount;

use crate::errors::CompuxError;
use crate::events::{self, CreditsPurchased};
use crate::math::pricing::{price_purchase, Purchase};
use crate::state::{CreditAccount, Market};
use crate::token_ops;

pub fn quote(market: &Market, credits: u64) -> Result<Purchase> {
    require!(!market.paused, CompuxError::MarketPaused);
    require!(credits > 0, CompuxError::ZeroAmount);
    let now = Clock::get()?.unix_timestamp;
    price_purchase(credits, market.base_price, &market.hour_multipliers_bps, market.bulk_tiers(), now)
        .ok_or_else(|| error!(CompuxError::MathOverflow))
}

/// The buyer's bounds on a purchase priced at landing: the admin may have changed the
/// price, the hour multipliers or the bulk tiers since the buyer quoted.
pub fn within(p: &Purchase, max_quote_in: u64, min_credits_out: u64) -> Result<()> {
    require!(p.quote_in <= max_quote_in, CompuxError::SlippageExceeded);
    let total = p.total_credits().ok_or_else(|| error!(CompuxError::MathOverflow))?;
    require!(total >= min_credits_out, CompuxError::PurchaseBelowMinimum);
    Ok(())
}

pub struct Delivery<'a, 'info> {
    pub market: &'a Account<'info, Market>,
    pub credit_account: &'a mut Account<'info, CreditAccount>,
    pub vault: &'a mut Account<'info, TokenAccount>,
    pub credit_mint: AccountInfo<'info>,
    pub payer_quote: AccountInfo<'info>,
    pub payer_authority: AccountInfo<'info>,
    pub treasury: AccountInfo<'info>,
    /// The market PDA signs as the SPL delegate (auto-refill) instead of a wallet.
    pub delegated: bool,
}

pub fn deliver(d: Delivery<'_, '_>, p: &Purchase) -> Result<()> {
    let total = p.total_credits().ok_or_else(|| error!(CompuxError::MathOverflow))?;
    let acct = &mut *d.credit_account;
    acct.total_quote_paid = acct.total_quote_paid.checked_add(p.quote_in).ok_or(CompuxError::MathOverflow)?;
    acct.total_purchased = acct.total_purchased.checked_add(p.credits).ok_or(CompuxError::MathOverflow)?;
    acct.total_bonus = acct.total_bonus.checked_add(p.bonus_credits).ok_or(CompuxError::MathOverflow)?;

    token_ops::transfer(
        d.payer_quote,
        d.treasury,
        d.payer_authority.clone(),
        d.delegated.then_some(&**d.market),
        p.quote_in,
    )?;
    token_ops::mint_credits(d.market, d.credit_mint, d.vault.to_account_info(), total)?;
    d.vault.reload()?;

    events::emit(CreditsPurchased {
        market: d.market.key(),
        credit_account: acct.key(),
        payer: d.payer_authority.key(),
        credits: p.credits,
        bonus_credits: p.bonus_credits,
        quote_in: p.quote_in,
        hour: p.hour,
        multiplier_bps: p.multiplier_bps,
        auto_refill: d.delegated,
        vault_balance: d.vault.amount,
    });
    Ok(())
}
