//! Every address the program derives, in one place.

use anchor_lang::prelude::Pubkey;
use compux::constants::*;

fn find(seeds: &[&[u8]]) -> (Pubkey, u8) {
    Pubkey::find_program_address(seeds, &compux::ID)
}

pub fn market(creator: &Pubkey, quote_mint: &Pubkey) -> (Pubkey, u8) {
    find(&[MARKET_SEED, creator.as_ref(), quote_mint.as_ref()])
}

pub fn credit_mint(market: &Pubkey) -> (Pubkey, u8) {
    find(&[CREDIT_MINT_SEED, market.as_ref()])
}

pub fn treasury(market: &Pubkey) -> (Pubkey, u8) {
    find(&[TREASURY_SEED, market.as_ref()])
}

pub fn recovery_reserve(market: &Pubkey) -> (Pubkey, u8) {
    find(&[RECOVERY_RESERVE_SEED, market.as_ref()])
}

pub fn deposit_vault(market: &Pubkey) -> (Pubkey, u8) {
    find(&[DEPOSIT_VAULT_SEED, market.as_ref()])
}

pub fn pending_update(market: &Pubkey) -> (Pubkey, u8) {
    find(&[PENDING_UPDATE_SEED, market.as_ref()])
}

pub fn credit_account(market: &Pubkey, owner: &Pubkey) -> (Pubkey, u8) {
    find(&[CREDIT_ACCOUNT_SEED, market.as_ref(), owner.as_ref()])
}

pub fn credit_vault(credit_account: &Pubkey) -> (Pubkey, u8) {
    find(&[CREDIT_VAULT_SEED, credit_account.as_ref()])
}

pub fn reservation(credit_account: &Pubkey, nonce: u64) -> (Pubkey, u8) {
    find(&[RESERVATION_SEED, credit_account.as_ref(), &nonce.to_le_bytes()])
}

/// The market and every market-level account, derived from its creator and quote mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketKeys {
    pub market: Pubkey,
    pub creator: Pubkey,
    pub quote_mint: Pubkey,
    pub credit_mint: Pubkey,
    pub treasury: Pubkey,
    pub recovery_reserve: Pubkey,
    pub deposit_vault: Pubkey,
    /// The market's pending parameter change (`PendingUpdate`).
    pub pending: Pubkey,
}

impl MarketKeys {
    pub fn derive(creator: &Pubkey, quote_mint: &Pubkey) -> Self {
        let market = market(creator, quote_mint).0;
        Self {
            market,
            creator: *creator,
            quote_mint: *quote_mint,
            credit_mint: credit_mint(&market).0,
            treasury: treasury(&market).0,
            recovery_reserve: recovery_reserve(&market).0,
            deposit_vault: deposit_vault(&market).0,
            pending: pending_update(&market).0,
        }
    }

    pub fn credit_account(&self, owner: &Pubkey) -> CreditAccountKeys {
        CreditAccountKeys::derive(&self.market, owner)
    }
}

/// A credit account and its vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditAccountKeys {
    pub owner: Pubkey,
    pub address: Pubkey,
    pub vault: Pubkey,
}

impl CreditAccountKeys {
    pub fn derive(market: &Pubkey, owner: &Pubkey) -> Self {
        let address = credit_account(market, owner).0;
        Self { owner: *owner, address, vault: credit_vault(&address).0 }
    }

    pub fn reservation(&self, nonce: u64) -> Pubkey {
        reservation(&self.address, nonce).0
    }
}

pub fn facility(market: &Pubkey, lender: &Pubkey, nonce: u64) -> (Pubkey, u8) {
    find(&[FACILITY_SEED, market.as_ref(), lender.as_ref(), &nonce.to_le_bytes()])
}

pub fn facility_vault(facility: &Pubkey) -> (Pubkey, u8) {
    find(&[FACILITY_VAULT_SEED, facility.as_ref()])
}

pub fn escrow(facility: &Pubkey) -> (Pubkey, u8) {
    find(&[ESCROW_SEED, facility.as_ref()])
}

/// A facility, its principal vault and its escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FacilityKeys {
    pub address: Pubkey,
    pub lender: Pubkey,
    pub nonce: u64,
    pub quote_vault: Pubkey,
    pub escrow: Pubkey,
}

impl FacilityKeys {
    pub fn derive(market: &Pubkey, lender: &Pubkey, nonce: u64) -> Self {
        let address = facility(market, lender, nonce).0;
        Self {
            address,
            lender: *lender,
            nonce,
            quote_vault: facility_vault(&address).0,
            escrow: escrow(&address).0,
        }
    }
}
