//! The compute-unit limit and priority fee of the transactions CompuX's tools send.
//!
//! A transaction that names no limit is given 200,000 units per instruction, and a priority
//! fee is paid per unit *requested*, so every transaction asks for what its instructions can
//! use at most. Each `compux` instruction's limit is its worst case measured on the SBF ELF
//! (`docs/benchmarks.md`) with room for a build that differs somewhat, plus the exact cost of
//! the bump searches it makes on chain (`search_units`): an account created at a PDA is
//! found by trying bumps from 255 down at 1,500 units each, and how many tries depends on the
//! addresses, so a fixed allowance either wastes units or, for unlucky keys, fails (a lender
//! whose facility needed 20 tries ran out under a fixed 70,000).
//! Instructions that bring a facility up to date (`refresh`) include the longest walk: 120
//! overdue installments with their late fees, about 60,000 units (`freeze_escrow`'s worst
//! case). The tests send every transaction with these limits and `tools/cu-replay` replays
//! them on the ELF in a metered VM, so a limit that is too low fails CI.

use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::solana_program::pubkey::Pubkey;
use anchor_lang::Discriminator;
use compux::constants::*;
use compux::instruction as ci;
use solana_compute_budget_interface::ComputeBudgetInstruction;

/// The most compute units a transaction may ask for.
pub const MAX_TRANSACTION_UNITS: u32 = 1_400_000;
/// What the runtime gives an instruction of a transaction that names no limit.
pub const DEFAULT_INSTRUCTION_UNITS: u32 = 200_000;
/// One compute-budget instruction (limit or price) costs this much.
pub const BUDGET_INSTRUCTION_UNITS: u32 = 150;

/// What `sol_try_find_program_address` charges per bump tried.
const BUMP_TRY_UNITS: u32 = 1_500;

/// The longest facility refresh: 120 overdue installments, each with its late fee.
const REFRESH_WALK: u32 = 60_000;

/// Each `compux` instruction's limit, by its discriminator (measured worst case in comments).
fn compux_limit(discriminator: &[u8]) -> Option<u32> {
    let table: [(&[u8], u32); 31] = [
        (ci::AcceptFacility::DISCRIMINATOR, 110_000), // 78,282 (120 installments)
        (ci::FreezeEscrow::DISCRIMINATOR, 40_000 + REFRESH_WALK), // 76,848 with the walk
        (ci::InitMarket::DISCRIMINATOR, 90_000),      // 72,669 (with the pending-change account)
        (ci::OfferFacility::DISCRIMINATOR, 70_000),   // 47,936
        (ci::ClaimPeriod::DISCRIMINATOR, 60_000),     // 43,716
        (ci::Recover::DISCRIMINATOR, 45_000 + REFRESH_WALK), // 40,185
        (ci::CloseFacility::DISCRIMINATOR, 55_000),   // 39,824
        (ci::Reserve::DISCRIMINATOR, 55_000),         // 34,679 (520 periods, with the owner's bounds)
        (ci::Repay::DISCRIMINATOR, 40_000 + REFRESH_WALK), // 32,232 (120 due)
        (ci::BuyCredits::DISCRIMINATOR, 45_000),      // 30,287 (largest bulk tier, with the buyer's bounds)
        (ci::AutoRefill::DISCRIMINATOR, 45_000),      // 30,107
        (ci::CancelOffer::DISCRIMINATOR, 45_000),     // 29,745
        (ci::SettleFacility::DISCRIMINATOR, 35_000 + REFRESH_WALK), // 30,550 (freeze window)
        (ci::TransferCredits::DISCRIMINATOR, 45_000), // 28,896 (with the notice check)
        (ci::AnnounceTransfer::DISCRIMINATOR, 30_000), // 14,121
        (ci::SetBurnCeiling::DISCRIMINATOR, 30_000),  // 14,653
        (ci::LapseReservation::DISCRIMINATOR, 40_000), // 27,179
        (ci::CancelReservation::DISCRIMINATOR, 40_000), // 26,865
        (ci::OpenCreditAccount::DISCRIMINATOR, 45_000), // 24,142-30,142
        (ci::WithdrawRepayments::DISCRIMINATOR, 35_000), // 25,949 (closes the vault)
        (ci::Settle::DISCRIMINATOR, 30_000), // 22,696: the relayer's hot path (with the burn ceiling)
        (ci::ConfigureAutoRefill::DISCRIMINATOR, 30_000), // 19,195
        (ci::FundRecoveryReserve::DISCRIMINATOR, 30_000), // 18,488
        (ci::WithdrawReserve::DISCRIMINATOR, 30_000), // 18,160
        (ci::WithdrawTreasury::DISCRIMINATOR, 30_000), // 18,155
        (ci::ReleaseTranche::DISCRIMINATOR, 25_000 + REFRESH_WALK), // 17,797
        (ci::RefreshFacility::DISCRIMINATOR, 25_000 + REFRESH_WALK), // 16,701
        (ci::UpdateMarket::DISCRIMINATOR, 40_000), // 26,348 (with its pending change)
        (ci::ApplyMarketUpdate::DISCRIMINATOR, 35_000), // 22,332
        (ci::ProposeAdmin::DISCRIMINATOR, 20_000), // 11,592
        (ci::AcceptAdmin::DISCRIMINATOR, 20_000), // 11,544
    ];
    table.iter().find(|(d, _)| discriminator.starts_with(d)).map(|(_, units)| *units)
}

/// The units a bump search for `seeds` spends beyond its first try (the measured worst cases
/// above include one try per search).
fn extra_tries(seeds: &[&[u8]], program: &Pubkey) -> u32 {
    let (_, bump) = Pubkey::find_program_address(seeds, program);
    BUMP_TRY_UNITS * (u8::MAX - bump) as u32
}

/// The extra bump-search units of a `compux` instruction that creates accounts at PDAs it
/// finds on chain; every seed is in the instruction's accounts or data.
fn compux_search_units(ix: &Instruction) -> u32 {
    let key = |i: usize| ix.accounts.get(i).map(|a| a.pubkey).unwrap_or_default();
    let nonce = ix.data.get(8..16).unwrap_or(&[0; 8]);
    let program = &crate::PROGRAM_ID;
    let search = |seeds: &[&[u8]]| extra_tries(seeds, program);
    let d = ix.data.as_slice();
    if d.starts_with(ci::OfferFacility::DISCRIMINATOR) {
        // [lender, market, facility, quote_mint, credit_mint, quote_vault, escrow, ..](nonce, ..)
        let (lender, market, facility) = (key(0), key(1), key(2));
        search(&[FACILITY_SEED, market.as_ref(), lender.as_ref(), nonce])
            + search(&[FACILITY_VAULT_SEED, facility.as_ref()])
            + search(&[ESCROW_SEED, facility.as_ref()])
    } else if d.starts_with(ci::Reserve::DISCRIMINATOR) {
        // [owner, market, credit_account, reservation, ..](nonce, ..)
        search(&[RESERVATION_SEED, key(2).as_ref(), nonce])
    } else if d.starts_with(ci::OpenCreditAccount::DISCRIMINATOR) {
        // [owner, market, credit_account, credit_mint, vault, ..]
        let (owner, market, account) = (key(0), key(1), key(2));
        search(&[CREDIT_ACCOUNT_SEED, market.as_ref(), owner.as_ref()])
            + search(&[CREDIT_VAULT_SEED, account.as_ref()])
    } else if d.starts_with(ci::InitMarket::DISCRIMINATOR) {
        // [creator, market, quote_mint, credit_mint, treasury, recovery_reserve, deposit_vault, pending, ..]
        let (creator, market, quote_mint) = (key(0), key(1), key(2));
        let of_market =
            [CREDIT_MINT_SEED, TREASURY_SEED, RECOVERY_RESERVE_SEED, DEPOSIT_VAULT_SEED, PENDING_UPDATE_SEED];
        search(&[MARKET_SEED, creator.as_ref(), quote_mint.as_ref()])
            + of_market.iter().map(|seed| search(&[seed, market.as_ref()])).sum::<u32>()
    } else {
        0
    }
}

/// The most one instruction may use, by its program (and, for `compux`, which instruction).
pub fn instruction_limit(ix: &Instruction) -> u32 {
    let program = ix.program_id;
    if program == crate::PROGRAM_ID {
        let measured = compux_limit(&ix.data).unwrap_or(DEFAULT_INSTRUCTION_UNITS);
        return measured.saturating_add(compux_search_units(ix));
    }
    if program == anchor_spl::token::ID {
        // SPL Token's costliest instruction (initialize, transfer, mint, burn) is ~5,000.
        return 10_000;
    }
    if program == anchor_spl::associated_token::ID {
        // Creating an associated account: its own work plus System and SPL Token CPIs, and
        // the search for the address: [funding, account, wallet, mint, system, token program].
        let key = |i: usize| ix.accounts.get(i).map(|a| a.pubkey).unwrap_or_default();
        let (wallet, mint, token_program) = (key(2), key(3), key(5));
        return 50_000 + extra_tries(&[wallet.as_ref(), token_program.as_ref(), mint.as_ref()], &program);
    }
    if program == anchor_lang::system_program::ID || program == solana_compute_budget_interface::ID {
        return 1_000;
    }
    DEFAULT_INSTRUCTION_UNITS
}

/// The limit for a transaction of `ixs`, with `extra` compute-budget instructions of its own.
pub fn transaction_limit(ixs: &[Instruction], extra: u32) -> u32 {
    let units = ixs.iter().map(instruction_limit).fold(extra * BUDGET_INSTRUCTION_UNITS, u32::saturating_add);
    units.min(MAX_TRANSACTION_UNITS)
}

/// `ixs` preceded by a compute-unit limit that fits them and, when `micro_lamports_per_unit`
/// is not zero, a priority fee of that price per requested unit.
pub fn with_budget(ixs: &[Instruction], micro_lamports_per_unit: u64) -> Vec<Instruction> {
    let extra = if micro_lamports_per_unit > 0 { 2 } else { 1 };
    let mut all = Vec::with_capacity(ixs.len() + 2);
    all.push(ComputeBudgetInstruction::set_compute_unit_limit(transaction_limit(ixs, extra)));
    if micro_lamports_per_unit > 0 {
        all.push(ComputeBudgetInstruction::set_compute_unit_price(micro_lamports_per_unit));
    }
    all.extend_from_slice(ixs);
    all
}

/// The most a transaction of `ixs` pays in priority fees, in lamports, at that price.
pub fn max_priority_fee_lamports(ixs: &[Instruction], micro_lamports_per_unit: u64) -> u64 {
    let extra = if micro_lamports_per_unit > 0 { 2 } else { 1 };
    (transaction_limit(ixs, extra) as u64 * micro_lamports_per_unit).div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ix;
    use crate::pda::MarketKeys;
    use anchor_lang::AnchorDeserialize;

    #[test]
    fn a_transaction_asks_for_its_instructions_worst_case_and_pays_per_requested_unit() {
        let m = MarketKeys::derive(&Pubkey::new_unique(), &Pubkey::new_unique());
        let settle = ix::settle(
            &m,
            &Pubkey::new_unique(),
            &m.credit_account(&Pubkey::new_unique()),
            ix::SettleBatch { seq: 1, amount: 1, batch_root: [0; 32], window_end: 0 },
        );
        let out = with_budget(std::slice::from_ref(&settle), 0);
        assert_eq!(out.len(), 2, "a limit and no price when the price is zero");
        assert_eq!(out[0], ComputeBudgetInstruction::set_compute_unit_limit(30_150));
        let out = with_budget(&[settle.clone(), settle.clone()], 5);
        assert_eq!(out[0], ComputeBudgetInstruction::set_compute_unit_limit(60_300));
        assert_eq!(out[1], ComputeBudgetInstruction::set_compute_unit_price(5));
        // 60,300 units at 5 micro-lamports: 0.3015 lamports, rounded up.
        assert_eq!(max_priority_fee_lamports(&[settle.clone(), settle], 5), 1);
        // An unknown program gets the runtime's default; many never exceed the maximum.
        let other = Instruction::new_with_bytes(Pubkey::new_unique(), &[], vec![]);
        assert_eq!(transaction_limit(std::slice::from_ref(&other), 0), DEFAULT_INSTRUCTION_UNITS);
        assert_eq!(transaction_limit(&vec![other; 10], 1), MAX_TRANSACTION_UNITS);
    }

    /// Extra bump tries beyond the first of the searches `finds` (the SDK's own derivations).
    fn extra(finds: &[(Pubkey, u8)]) -> u32 {
        finds.iter().map(|(_, bump)| BUMP_TRY_UNITS * (255 - *bump as u32)).sum()
    }

    #[test]
    fn instructions_that_find_pdas_on_chain_ask_for_exactly_their_bump_searches() {
        use crate::pda;
        // Any terms and configuration: the limits depend on the accounts and the nonce only.
        let zeros = [0u8; 1024];
        let terms: crate::state::FacilityTerms = AnchorDeserialize::deserialize(&mut &zeros[..]).unwrap();
        let config: crate::state::MarketConfig = AnchorDeserialize::deserialize(&mut &zeros[..]).unwrap();
        let mut seen_extra = 0;
        for _ in 0..200 {
            let (creator, quote_mint, user) =
                (Pubkey::new_unique(), Pubkey::new_unique(), Pubkey::new_unique());
            let m = MarketKeys::derive(&creator, &quote_mint);
            let nonce = 7;
            let f = crate::FacilityKeys::derive(&m.market, &user, nonce);
            let offer = ix::offer_facility(&m, &f, &Pubkey::new_unique(), terms);
            let finds = [
                pda::facility(&m.market, &user, nonce),
                pda::facility_vault(&f.address),
                pda::escrow(&f.address),
            ];
            assert_eq!(instruction_limit(&offer), 70_000 + extra(&finds));

            let c = m.credit_account(&user);
            let open = ix::open_credit_account(&m, &user);
            assert_eq!(
                instruction_limit(&open),
                45_000 + extra(&[pda::credit_account(&m.market, &user), pda::credit_vault(&c.address)])
            );

            let p = ix::ReserveParams {
                credits_per_period: 1,
                periods: 2,
                period_secs: 60,
                max_price: 1,
                max_deposit: u64::MAX,
                max_fee: u64::MAX,
            };
            let reserve = ix::reserve(&m, &user, &Pubkey::new_unique(), nonce, p);
            assert_eq!(instruction_limit(&reserve), 55_000 + extra(&[pda::reservation(&c.address, nonce)]));

            let init = ix::init_market(&m, config.clone(), user);
            let market_finds = [
                pda::market(&creator, &quote_mint),
                pda::credit_mint(&m.market),
                pda::treasury(&m.market),
                pda::recovery_reserve(&m.market),
                pda::deposit_vault(&m.market),
                pda::pending_update(&m.market),
            ];
            assert_eq!(instruction_limit(&init), 90_000 + extra(&market_finds));
            seen_extra = seen_extra.max(extra(&finds));
        }
        // Over 200 random lenders some searches take several tries: the check is not vacuous.
        assert!(seen_extra >= 6 * BUMP_TRY_UNITS, "{seen_extra}");
    }

    #[test]
    fn creating_an_associated_account_asks_for_its_address_search() {
        use anchor_spl::associated_token::{
            get_associated_token_address, spl_associated_token_account as ata,
        };
        for _ in 0..50 {
            let (payer, wallet, mint) = (Pubkey::new_unique(), Pubkey::new_unique(), Pubkey::new_unique());
            let create = ata::instruction::create_associated_token_account_idempotent(
                &payer,
                &wallet,
                &mint,
                &anchor_spl::token::ID,
            );
            let seeds: [&[u8]; 3] = [wallet.as_ref(), anchor_spl::token::ID.as_ref(), mint.as_ref()];
            let found = Pubkey::find_program_address(&seeds, &anchor_spl::associated_token::ID);
            assert_eq!(found.0, get_associated_token_address(&wallet, &mint));
            assert_eq!(instruction_limit(&create), 50_000 + extra(&[found]));
        }
    }

    #[test]
    fn every_instruction_in_the_idl_has_a_limit_under_the_default() {
        let idl: serde_json::Value = serde_json::from_str(include_str!("../../../idl/compux.json")).unwrap();
        let instructions = idl["instructions"].as_array().unwrap();
        assert_eq!(instructions.len(), 31);
        for i in instructions {
            let d: Vec<u8> = serde_json::from_value(i["discriminator"].clone()).unwrap();
            let units = compux_limit(&d);
            assert!(units.is_some_and(|u| u < DEFAULT_INSTRUCTION_UNITS), "{}: {units:?}", i["name"]);
        }
    }
}
