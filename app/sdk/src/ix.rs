//! Instruction builders, one per program instruction, named after it.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{system_program, InstructionData, ToAccountMetas};
use anchor_spl::token;
use compux::state::{FacilityTerms, MarketConfig, MarketUpdate};
use compux::{accounts as acc, instruction as data};

use crate::pda::{CreditAccountKeys, FacilityKeys, MarketKeys};

fn build(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
    Instruction { program_id: compux::ID, accounts: accounts.to_account_metas(None), data: data.data() }
}

// ---- admin ----

pub fn init_market(m: &MarketKeys, config: MarketConfig, relayer: Pubkey) -> Instruction {
    build(
        acc::InitMarket {
            creator: m.creator,
            market: m.market,
            quote_mint: m.quote_mint,
            credit_mint: m.credit_mint,
            treasury: m.treasury,
            recovery_reserve: m.recovery_reserve,
            deposit_vault: m.deposit_vault,
            pending: m.pending,
            token_program: token::ID,
            system_program: system_program::ID,
        },
        data::InitMarket { config, relayer },
    )
}

pub fn update_market(m: &MarketKeys, admin: &Pubkey, update: MarketUpdate) -> Instruction {
    build(
        acc::UpdateMarket { admin: *admin, market: m.market, pending: m.pending },
        data::UpdateMarket { update },
    )
}

/// Applies the market's pending parameter change once due; anyone may send it.
pub fn apply_market_update(m: &MarketKeys) -> Instruction {
    build(acc::ApplyMarketUpdate { market: m.market, pending: m.pending }, data::ApplyMarketUpdate {})
}

pub fn propose_admin(m: &MarketKeys, admin: &Pubkey, new_admin: Pubkey) -> Instruction {
    build(acc::ProposeAdmin { admin: *admin, market: m.market }, data::ProposeAdmin { new_admin })
}

pub fn accept_admin(m: &MarketKeys, new_admin: &Pubkey) -> Instruction {
    build(acc::AcceptAdmin { new_admin: *new_admin, market: m.market }, data::AcceptAdmin {})
}

pub fn fund_recovery_reserve(
    m: &MarketKeys,
    funder: &Pubkey,
    funder_quote: &Pubkey,
    amount: u64,
) -> Instruction {
    build(
        acc::FundRecoveryReserve {
            funder: *funder,
            market: m.market,
            funder_quote: *funder_quote,
            recovery_reserve: m.recovery_reserve,
            token_program: token::ID,
        },
        data::FundRecoveryReserve { amount },
    )
}

/// Admin only: quote out of the treasury to any quote account.
pub fn withdraw_treasury(m: &MarketKeys, admin: &Pubkey, destination: &Pubkey, amount: u64) -> Instruction {
    build(
        acc::WithdrawTreasury {
            admin: *admin,
            market: m.market,
            treasury: m.treasury,
            destination: *destination,
            token_program: token::ID,
        },
        data::WithdrawTreasury { amount },
    )
}

/// Admin only: quote out of the recovery reserve, above its earmarks.
pub fn withdraw_reserve(m: &MarketKeys, admin: &Pubkey, destination: &Pubkey, amount: u64) -> Instruction {
    build(
        acc::WithdrawReserve {
            admin: *admin,
            market: m.market,
            recovery_reserve: m.recovery_reserve,
            destination: *destination,
            token_program: token::ID,
        },
        data::WithdrawReserve { amount },
    )
}

// ---- startup: standard credits ----

pub fn open_credit_account(m: &MarketKeys, owner: &Pubkey) -> Instruction {
    let c = m.credit_account(owner);
    build(
        acc::OpenCreditAccount {
            owner: *owner,
            market: m.market,
            credit_account: c.address,
            credit_mint: m.credit_mint,
            vault: c.vault,
            token_program: token::ID,
            system_program: system_program::ID,
        },
        data::OpenCreditAccount {},
    )
}

pub fn buy_credits(
    m: &MarketKeys,
    owner: &Pubkey,
    owner_quote: &Pubkey,
    credits: u64,
    max_quote_in: u64,
    min_credits_out: u64,
) -> Instruction {
    let c = m.credit_account(owner);
    build(
        acc::BuyCredits {
            owner: *owner,
            market: m.market,
            credit_account: c.address,
            vault: c.vault,
            credit_mint: m.credit_mint,
            owner_quote: *owner_quote,
            treasury: m.treasury,
            token_program: token::ID,
        },
        data::BuyCredits { credits, max_quote_in, min_credits_out },
    )
}

/// Announces that `amount` credits will leave `owner`'s vault (0 withdraws the notice).
pub fn announce_transfer(m: &MarketKeys, owner: &Pubkey, amount: u64) -> Instruction {
    build(
        acc::AnnounceTransfer {
            owner: *owner,
            market: m.market,
            credit_account: m.credit_account(owner).address,
        },
        data::AnnounceTransfer { amount },
    )
}

/// Sets the most the relayer may burn from `owner`'s vault per UTC day (0: no ceiling); a
/// lower ceiling applies after the market's transfer notice.
pub fn set_burn_ceiling(m: &MarketKeys, owner: &Pubkey, per_day: u64) -> Instruction {
    build(
        acc::SetBurnCeiling {
            owner: *owner,
            market: m.market,
            credit_account: m.credit_account(owner).address,
        },
        data::SetBurnCeiling { per_day },
    )
}

pub fn transfer_credits(m: &MarketKeys, owner: &Pubkey, to_owner: &Pubkey, amount: u64) -> Instruction {
    let (from, to) = (m.credit_account(owner), m.credit_account(to_owner));
    build(
        acc::TransferCredits {
            owner: *owner,
            market: m.market,
            from_account: from.address,
            from_vault: from.vault,
            to_account: to.address,
            to_vault: to.vault,
            token_program: token::ID,
        },
        data::TransferCredits { amount },
    )
}

/// Auto-refill settings; `refill_credits == 0` turns it off and revokes the delegation.
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoRefillParams {
    pub threshold: u64,
    pub refill_credits: u64,
    pub max_quote_per_refill: u64,
    /// The fewest credits (bonus included) one refill may deliver.
    pub min_credits_per_refill: u64,
    pub cap_quote: u64,
}

pub fn configure_auto_refill(
    m: &MarketKeys,
    owner: &Pubkey,
    source: &Pubkey,
    p: AutoRefillParams,
) -> Instruction {
    build(
        acc::ConfigureAutoRefill {
            owner: *owner,
            market: m.market,
            credit_account: m.credit_account(owner).address,
            source: *source,
            token_program: token::ID,
        },
        data::ConfigureAutoRefill {
            threshold: p.threshold,
            refill_credits: p.refill_credits,
            max_quote_per_refill: p.max_quote_per_refill,
            min_credits_per_refill: p.min_credits_per_refill,
            cap_quote: p.cap_quote,
        },
    )
}

pub fn auto_refill(m: &MarketKeys, owner: &Pubkey, source: &Pubkey) -> Instruction {
    let c = m.credit_account(owner);
    build(
        acc::AutoRefillCrank {
            market: m.market,
            credit_account: c.address,
            vault: c.vault,
            credit_mint: m.credit_mint,
            source: *source,
            treasury: m.treasury,
            token_program: token::ID,
        },
        data::AutoRefill {},
    )
}

// ---- startup: reserved credits ----

/// Reservation terms as passed to `reserve`.
#[derive(Clone, Copy, Debug)]
pub struct ReserveParams {
    pub credits_per_period: u64,
    pub periods: u16,
    pub period_secs: i64,
    /// The owner's bounds (`compux::instructions::ReserveBounds`).
    pub max_price: u64,
    pub max_deposit: u64,
    pub max_fee: u64,
}

/// `nonce` must be the credit account's current `reservation_count`.
pub fn reserve(
    m: &MarketKeys,
    owner: &Pubkey,
    owner_quote: &Pubkey,
    nonce: u64,
    p: ReserveParams,
) -> Instruction {
    let c = m.credit_account(owner);
    build(
        acc::Reserve {
            owner: *owner,
            market: m.market,
            credit_account: c.address,
            reservation: c.reservation(nonce),
            owner_quote: *owner_quote,
            deposit_vault: m.deposit_vault,
            token_program: token::ID,
            system_program: system_program::ID,
        },
        data::Reserve {
            nonce,
            credits_per_period: p.credits_per_period,
            periods: p.periods,
            period_secs: p.period_secs,
            bounds: compux::instructions::ReserveBounds {
                max_price: p.max_price,
                max_deposit: p.max_deposit,
                max_fee: p.max_fee,
            },
        },
    )
}

pub fn claim_period(m: &MarketKeys, owner: &Pubkey, owner_quote: &Pubkey, nonce: u64) -> Instruction {
    let c = m.credit_account(owner);
    build(
        acc::ClaimPeriod {
            owner: *owner,
            market: m.market,
            credit_account: c.address,
            reservation: c.reservation(nonce),
            vault: c.vault,
            credit_mint: m.credit_mint,
            owner_quote: *owner_quote,
            treasury: m.treasury,
            deposit_vault: m.deposit_vault,
            token_program: token::ID,
        },
        data::ClaimPeriod {},
    )
}

/// `owner_quote` (the owner's) receives what the deposit holds beyond the forfeit.
pub fn cancel_reservation(m: &MarketKeys, owner: &Pubkey, owner_quote: &Pubkey, nonce: u64) -> Instruction {
    build(
        acc::CancelReservation {
            owner: *owner,
            market: m.market,
            reservation: m.credit_account(owner).reservation(nonce),
            deposit_vault: m.deposit_vault,
            treasury: m.treasury,
            owner_quote: *owner_quote,
            token_program: token::ID,
        },
        data::CancelReservation {},
    )
}

/// Permissionless; `owner` receives the closed reservation's rent and `owner_quote` (an
/// account of the owner's) what the deposit holds beyond the forfeit.
pub fn lapse_reservation(m: &MarketKeys, owner: &Pubkey, owner_quote: &Pubkey, nonce: u64) -> Instruction {
    build(
        acc::LapseReservation {
            owner: *owner,
            market: m.market,
            reservation: m.credit_account(owner).reservation(nonce),
            deposit_vault: m.deposit_vault,
            treasury: m.treasury,
            owner_quote: *owner_quote,
            token_program: token::ID,
        },
        data::LapseReservation {},
    )
}

// ---- relayer ----

/// One settlement batch for a credit source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleBatch {
    pub seq: u64,
    pub amount: u64,
    pub batch_root: [u8; 32],
    pub window_end: i64,
}

pub fn settle(m: &MarketKeys, relayer: &Pubkey, source: &CreditAccountKeys, b: SettleBatch) -> Instruction {
    build(
        acc::Settle {
            relayer: *relayer,
            market: m.market,
            credit_account: source.address,
            vault: source.vault,
            credit_mint: m.credit_mint,
            token_program: token::ID,
        },
        data::Settle { seq: b.seq, amount: b.amount, batch_root: b.batch_root, window_end: b.window_end },
    )
}

/// Relayer settlement of usage paid from a facility escrow.
pub fn settle_facility(m: &MarketKeys, relayer: &Pubkey, f: &FacilityKeys, b: SettleBatch) -> Instruction {
    build(
        acc::SettleFacility {
            relayer: *relayer,
            market: m.market,
            facility: f.address,
            escrow: f.escrow,
            credit_mint: m.credit_mint,
            token_program: token::ID,
        },
        data::SettleFacility {
            seq: b.seq,
            amount: b.amount,
            batch_root: b.batch_root,
            window_end: b.window_end,
        },
    )
}

// ---- financed credits ----

/// `f.nonce` is the lender's choice: any number its other facilities do not use.
pub fn offer_facility(
    m: &MarketKeys,
    f: &FacilityKeys,
    lender_quote: &Pubkey,
    terms: FacilityTerms,
) -> Instruction {
    build(
        acc::OfferFacility {
            lender: f.lender,
            market: m.market,
            facility: f.address,
            quote_mint: m.quote_mint,
            credit_mint: m.credit_mint,
            quote_vault: f.quote_vault,
            escrow: f.escrow,
            lender_quote: *lender_quote,
            token_program: token::ID,
            system_program: system_program::ID,
        },
        data::OfferFacility { nonce: f.nonce, terms },
    )
}

/// The principal goes back to `destination`, any quote account the lender names.
pub fn cancel_offer(m: &MarketKeys, f: &FacilityKeys, destination: &Pubkey) -> Instruction {
    build(
        acc::CancelOffer {
            lender: f.lender,
            market: m.market,
            facility: f.address,
            quote_vault: f.quote_vault,
            escrow: f.escrow,
            destination: *destination,
            token_program: token::ID,
        },
        data::CancelOffer {},
    )
}

/// The borrower names the terms it agreed to and the fewest credits it accepts.
pub fn accept_facility(
    m: &MarketKeys,
    f: &FacilityKeys,
    borrower: &Pubkey,
    expected: FacilityTerms,
    min_credits: u64,
) -> Instruction {
    build(
        acc::AcceptFacility {
            borrower: *borrower,
            market: m.market,
            facility: f.address,
            borrower_account: m.credit_account(borrower).address,
            quote_vault: f.quote_vault,
            treasury: m.treasury,
            recovery_reserve: m.recovery_reserve,
            escrow: f.escrow,
            credit_mint: m.credit_mint,
            token_program: token::ID,
        },
        data::AcceptFacility { expected, min_credits },
    )
}

pub fn release_tranche(m: &MarketKeys, f: &FacilityKeys) -> Instruction {
    build(acc::ReleaseTranche { market: m.market, facility: f.address }, data::ReleaseTranche {})
}

pub fn refresh_facility(m: &MarketKeys, f: &FacilityKeys) -> Instruction {
    build(acc::RefreshFacility { market: m.market, facility: f.address }, data::RefreshFacility {})
}

/// Pays into the facility's own vault.
pub fn repay(
    m: &MarketKeys,
    f: &FacilityKeys,
    borrower: &Pubkey,
    borrower_quote: &Pubkey,
    amount: u64,
) -> Instruction {
    build(
        acc::Repay {
            borrower: *borrower,
            market: m.market,
            facility: f.address,
            borrower_quote: *borrower_quote,
            quote_vault: f.quote_vault,
            escrow: f.escrow,
            credit_mint: m.credit_mint,
            token_program: token::ID,
        },
        data::Repay { amount },
    )
}

pub fn freeze_escrow(m: &MarketKeys, f: &FacilityKeys, lender: &Pubkey) -> Instruction {
    build(
        acc::FreezeEscrow {
            lender: *lender,
            market: m.market,
            facility: f.address,
            escrow: f.escrow,
            credit_mint: m.credit_mint,
            token_program: token::ID,
        },
        data::FreezeEscrow {},
    )
}

pub fn recover(m: &MarketKeys, f: &FacilityKeys) -> Instruction {
    build(
        acc::Recover {
            lender: f.lender,
            market: m.market,
            facility: f.address,
            escrow: f.escrow,
            credit_mint: m.credit_mint,
            recovery_reserve: m.recovery_reserve,
            quote_vault: f.quote_vault,
            token_program: token::ID,
        },
        data::Recover {},
    )
}

/// Permissionless at maturity once repaid or recovered.
pub fn close_facility(m: &MarketKeys, f: &FacilityKeys, borrower: &Pubkey) -> Instruction {
    let b = m.credit_account(borrower);
    build(
        acc::CloseFacility {
            market: m.market,
            facility: f.address,
            lender: f.lender,
            quote_vault: f.quote_vault,
            escrow: f.escrow,
            borrower_account: b.address,
            vault: b.vault,
            credit_mint: m.credit_mint,
            token_program: token::ID,
        },
        data::CloseFacility {},
    )
}

/// The lender takes `amount` of repayments and recoveries to `destination`.
pub fn withdraw_repayments(
    m: &MarketKeys,
    f: &FacilityKeys,
    destination: &Pubkey,
    amount: u64,
) -> Instruction {
    build(
        acc::WithdrawRepayments {
            lender: f.lender,
            market: m.market,
            facility: f.address,
            quote_vault: f.quote_vault,
            destination: *destination,
            token_program: token::ID,
        },
        data::WithdrawRepayments { amount },
    )
}
