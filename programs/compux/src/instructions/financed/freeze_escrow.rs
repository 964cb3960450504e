use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::constants::*;
use crate::errors::CompuxError;
use crate::events::{self, EscrowFrozen, TrancheReleased};
use crate::state::{Facility, FacilityStatus, Market};
use crate::token_ops;

#[derive(Accounts)]
pub struct FreezeEscrow<'info> {
    pub lender: Signer<'info>,
    #[account(
        seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],
        bump = market.bump,
    )]
    pub market: Box<Account<'info, Market>>,
    #[account(
        mut,
        seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],
        bump = facility.bump,
        has_one = market @ CompuxError::MarketMismatch,
        has_one = lender @ CompuxError::NotLender,
    )]
    pub facility: Box<Account<'info, Facility>>,
    #[account(mut, address = facility.escrow @ CompuxError::WrongVault)]
    pub escrow: Box<Account<'info, TokenAccount>>,
    #[account(address = market.credit_mint @ CompuxError::WrongMint)]
    pub credit_mint: Box<Account<'info, Mint>>,
    pub token_program: Program<'info, Token>,
}

impl FreezeEscrow<'_> {
    /// The lender freezes the escrow with the market PDA's freeze authority: only a defaulted
    /// facility, or one that matured with a balance outstanding. The freeze right is the
    /// program's, exercised on the lender's signature, so a current facility cannot be frozen.
    /// Tranches that fell due while the facility was current are released first: they are
    /// the borrower's, whether anyone released them or not.
    pub fn handler(ctx: Context<Self>) -> Result<()> {
        let a = ctx.accounts;
        let now = super::refresh(&mut a.facility)?;
        require!(a.facility.freezable(now), CompuxError::NotFreezable);
        let released = a.facility.release_due_while_current(now)?;
        if released > 0 {
            events::emit(TrancheReleased {
                market: a.market.key(),
                facility: a.facility.key(),
                tranche: a.facility.tranches_released,
                credits: released,
                released_credits: a.facility.released_credits,
            });
        }
        token_ops::set_frozen(&a.market, a.credit_mint.to_account_info(), a.escrow.to_account_info(), true)?;
        let before = a.facility.status;
        a.facility.status = FacilityStatus::Frozen;
        a.facility.frozen_at = now;
        super::emit_transition(&a.facility, before);
        events::emit(EscrowFrozen {
            market: a.market.key(),
            facility: a.facility.key(),
            frozen_at: now,
            settlement_window_end: a.facility.settlement_window_end(),
            escrow_balance: a.escrow.amount,
        });
        Ok(())
    }
}
