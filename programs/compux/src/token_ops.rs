//! SPL Token CPIs the handlers share. Vaults and the credit mint are controlled by the market
//! PDA, so every movement out of them is signed with `Market::signer_seeds`.

use anchor_lang::prelude::*;
use anchor_spl::token::{self, Burn, MintTo, Transfer};

use crate::state::Market;

/// Moves quote or credit tokens. `market` signs when it is the authority (a vault owner or
/// an SPL delegate); a wallet authority has signed the transaction itself.
pub fn transfer<'info>(
    from: AccountInfo<'info>,
    to: AccountInfo<'info>,
    authority: AccountInfo<'info>,
    market: Option<&Market>,
    amount: u64,
) -> Result<()> {
    let accounts = Transfer { from, to, authority };
    match market {
        Some(m) => {
            let seeds = m.signer_seeds();
            token::transfer(CpiContext::new_with_signer(token::ID, accounts, &[&seeds]), amount)
        }
        None => token::transfer(CpiContext::new(token::ID, accounts), amount),
    }
}

pub fn mint_credits<'info>(
    market: &Account<'info, Market>,
    credit_mint: AccountInfo<'info>,
    to: AccountInfo<'info>,
    amount: u64,
) -> Result<()> {
    let seeds = market.signer_seeds();
    let accounts = MintTo { mint: credit_mint, to, authority: market.to_account_info() };
    token::mint_to(CpiContext::new_with_signer(token::ID, accounts, &[&seeds]), amount)
}

pub fn burn_credits<'info>(
    market: &Account<'info, Market>,
    credit_mint: AccountInfo<'info>,
    from: AccountInfo<'info>,
    amount: u64,
) -> Result<()> {
    let seeds = market.signer_seeds();
    let accounts = Burn { mint: credit_mint, from, authority: market.to_account_info() };
    token::burn(CpiContext::new_with_signer(token::ID, accounts, &[&seeds]), amount)
}

/// Freezes or thaws a credit token account with the market PDA's freeze authority.
pub fn set_frozen<'info>(
    market: &Account<'info, Market>,
    credit_mint: AccountInfo<'info>,
    account: AccountInfo<'info>,
    frozen: bool,
) -> Result<()> {
    let seeds = market.signer_seeds();
    let authority = market.to_account_info();
    if frozen {
        let accounts = token::FreezeAccount { account, mint: credit_mint, authority };
        token::freeze_account(CpiContext::new_with_signer(token::ID, accounts, &[&seeds]))
    } else {
        let accounts = token::ThawAccount { account, mint: credit_mint, authority };
        token::thaw_account(CpiContext::new_with_signer(token::ID, accounts, &[&seeds]))
    }
}

/// Closes an empty vault controlled by the market PDA; its rent goes to `destination`.
pub fn close_vault<'info>(
    market: &Account<'info, Market>,
    vault: AccountInfo<'info>,
    destination: AccountInfo<'info>,
) -> Result<()> {
    let seeds = market.signer_seeds();
    let accounts = token::CloseAccount { account: vault, destination, authority: market.to_account_info() };
    token::close_account(CpiContext::new_with_signer(token::ID, accounts, &[&seeds]))
}
