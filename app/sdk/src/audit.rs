//! The auditor's invariant checker (DESIGN §4): from fetched accounts and token balances
//! alone, every violation and the recovery reserve's coverage. No I/O: callers fetch (the
//! CLI over RPC, the tests from the bank) and pass a [`Snapshot`].

pub mod usage;

use std::fmt;

use anchor_lang::prelude::Pubkey;
use compux::constants::{BPS, MAX_CREDIT_MULTIPLIER_BPS};
use compux::math::usage_chain::next_usage_chain;
use compux::state::{financed_credits, CreditAccount, Facility, FacilityStatus, Market, Reservation};

use crate::ix::SettleBatch;

#[derive(Clone, Debug)]
pub struct CreditAccountSnapshot {
    pub address: Pubkey,
    pub account: CreditAccount,
    pub vault_balance: u64,
}

#[derive(Clone, Debug)]
pub struct FacilitySnapshot {
    pub address: Pubkey,
    pub facility: Facility,
    pub escrow_balance: u64,
    pub escrow_frozen: bool,
}

/// Everything the checker needs about one market, as fetched at chain time `now`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub now: i64,
    pub market_address: Pubkey,
    pub market: Market,
    pub credit_mint_supply: u64,
    pub recovery_reserve_balance: u64,
    pub treasury_balance: u64,
    pub deposit_vault_balance: u64,
    pub credit_accounts: Vec<CreditAccountSnapshot>,
    pub facilities: Vec<FacilitySnapshot>,
    pub reservations: Vec<(Pubkey, Reservation)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The credit mint's supply differs from the credits held in vaults and escrows.
    SupplyMismatch { supply: u64, held: u64 },
    /// Deposit vault, market counter and live reservations disagree.
    DepositsMismatch { vault: u64, market_outstanding: u64, reservations: u64 },
    /// An account of another market in this market's snapshot.
    ForeignAccount { address: Pubkey },
    /// Escrow balance != minted - burned - converted - recovered.
    EscrowMismatch { facility: Pubkey, escrow: u64, expected: u64 },
    /// Released > minted, or burned > released.
    ReleaseOverflow { facility: Pubkey },
    /// repaid + outstanding + written off != principal (or the value identity fails).
    LoanMismatch { facility: Pubkey },
    /// The stored status is not what the clock and payments give.
    StaleStatus { facility: Pubkey, stored: FacilityStatus, actual: FacilityStatus },
    /// The escrow's SPL freeze state disagrees with the facility status (frozen while the
    /// facility is, and after a recovery while it holds the borrower's leftover).
    FreezeMismatch { facility: Pubkey, status: FacilityStatus, escrow_frozen: bool },
    /// Defaulted for longer than the settlement window and still neither frozen nor recovered.
    DefaultedNotFrozen { facility: Pubkey, defaulted_since: i64 },
    /// Minted more than the principal at the accept-time price times the market's cap, or a
    /// multiplier above the cap.
    OverMinted { facility: Pubkey, minted: u64, allowed: u64 },
    /// The market's earmark total differs from the sum of its live facilities' earmarks.
    EarmarksMismatch { market_earmarked: u64, facilities: u64 },
    /// The recovery reserve holds less than the earmarks promised to live facilities.
    ReserveBelowEarmarks { reserve: u64, earmarked: u64 },
    /// The recovery reserve holds less than funded - paid to lenders - withdrawn.
    ReserveFlowsMismatch { reserve: u64, expected: u64 },
    /// The treasury holds less than purchases + claims + principals + forfeits - withdrawals.
    TreasuryFlowsMismatch { treasury: u64, expected: u64 },
}

impl Violation {
    /// An action someone owes and has not taken yet (a permissionless refresh of a
    /// facility's status, the lender's freeze after a default): reported, since an auditor
    /// must see it, but no transaction can prevent it; every other violation is state no
    /// sequence of transactions may reach.
    pub fn is_overdue_action(&self) -> bool {
        matches!(self, Violation::StaleStatus { .. } | Violation::DefaultedNotFrozen { .. })
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Violation::*;
        match self {
            SupplyMismatch { supply, held } => write!(f, "credit supply {supply} != {held} held in vaults and escrows"),
            DepositsMismatch { vault, market_outstanding, reservations } => write!(
                f,
                "deposit vault {vault}, market deposits_outstanding {market_outstanding}, live reservations {reservations} differ"
            ),
            ForeignAccount { address } => write!(f, "{address} belongs to another market"),
            EscrowMismatch { facility, escrow, expected } => {
                write!(f, "facility {facility}: escrow holds {escrow}, expected {expected}")
            }
            ReleaseOverflow { facility } => write!(f, "facility {facility}: released or burned beyond minted"),
            LoanMismatch { facility } => write!(f, "facility {facility}: repayments and balances do not add up"),
            StaleStatus { facility, stored, actual } => {
                write!(f, "facility {facility}: status {stored:?}, clock and payments say {actual:?} (run refresh_facility)")
            }
            FreezeMismatch { facility, status, escrow_frozen } => {
                write!(f, "facility {facility}: status {status:?} but escrow frozen = {escrow_frozen}")
            }
            DefaultedNotFrozen { facility, defaulted_since } => {
                write!(f, "facility {facility}: defaulted since {defaulted_since}, not frozen")
            }
            OverMinted { facility, minted, allowed } => write!(
                f,
                "facility {facility}: minted {minted} credits, the principal at the accept-time price times the market's cap allows {allowed}"
            ),
            EarmarksMismatch { market_earmarked, facilities } => write!(
                f,
                "market earmarks {market_earmarked} of the recovery reserve, its live facilities {facilities}"
            ),
            ReserveBelowEarmarks { reserve, earmarked } => {
                write!(f, "recovery reserve holds {reserve}, below the {earmarked} earmarked for live facilities")
            }
            ReserveFlowsMismatch { reserve, expected } => write!(
                f,
                "recovery reserve holds {reserve}, its recorded flows (funded - paid - withdrawn) say {expected}"
            ),
            TreasuryFlowsMismatch { treasury, expected } => write!(
                f,
                "treasury holds {treasury}, its recorded flows (purchases + claims + principals + forfeits - withdrawals) say {expected}"
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Quote value the recovery reserve would pay for every unused financed credit.
    pub recovery_liability: u64,
    pub recovery_reserve: u64,
    /// reserve / liability in basis points; `None` when there is no liability.
    pub coverage_bps: Option<u64>,
    /// The reserve promised to live facilities (their worst-case recovery payouts).
    pub earmarked: u64,
    /// What the treasury's recorded flows say it holds (it may hold more: anyone can send
    /// tokens to it).
    pub treasury_expected: u64,
}

/// Checks every invariant of DESIGN §4 on `s`.
pub fn check(s: &Snapshot) -> Report {
    let mut v = Vec::new();

    let held = s.credit_accounts.iter().map(|c| c.vault_balance as u128).sum::<u128>()
        + s.facilities.iter().map(|f| f.escrow_balance as u128).sum::<u128>();
    if held != s.credit_mint_supply as u128 {
        v.push(Violation::SupplyMismatch {
            supply: s.credit_mint_supply,
            held: held.min(u64::MAX as u128) as u64,
        });
    }

    let reservations: u64 = s.reservations.iter().map(|(_, r)| r.deposit).sum();
    if s.deposit_vault_balance != s.market.deposits_outstanding
        || reservations != s.market.deposits_outstanding
    {
        v.push(Violation::DepositsMismatch {
            vault: s.deposit_vault_balance,
            market_outstanding: s.market.deposits_outstanding,
            reservations,
        });
    }

    let foreign = s
        .credit_accounts
        .iter()
        .map(|c| (c.address, c.account.market))
        .chain(s.facilities.iter().map(|f| (f.address, f.facility.market)))
        .chain(s.reservations.iter().map(|(a, r)| (*a, r.market)));
    v.extend(
        foreign
            .filter(|(_, m)| *m != s.market_address)
            .map(|(address, _)| Violation::ForeignAccount { address }),
    );

    let mut liability = 0u64;
    for f in &s.facilities {
        check_facility(f, s.now, &mut v);
        if matches!(
            f.facility.status,
            FacilityStatus::Active
                | FacilityStatus::Delinquent
                | FacilityStatus::Defaulted
                | FacilityStatus::Frozen
        ) {
            let fac = &f.facility;
            let value = fac.loan.recovery_value(f.escrow_balance, fac.total_credits, fac.recovery_rate_bps);
            liability = liability.saturating_add(value.unwrap_or(u64::MAX));
        }
    }
    let m = &s.market;
    let facilities: u128 = s.facilities.iter().map(|f| f.facility.earmark as u128).sum();
    if facilities != m.reserve_earmarked as u128 {
        v.push(Violation::EarmarksMismatch {
            market_earmarked: m.reserve_earmarked,
            facilities: facilities.min(u64::MAX as u128) as u64,
        });
    }
    if s.recovery_reserve_balance < m.reserve_earmarked {
        v.push(Violation::ReserveBelowEarmarks {
            reserve: s.recovery_reserve_balance,
            earmarked: m.reserve_earmarked,
        });
    }
    // Balances may exceed the recorded flows (tokens sent straight to a vault are a gift,
    // not a loss); falling short of them means quote left without an instruction.
    let reserve_expected = m.reserve_funded as i128 - m.reserve_paid as i128 - m.reserve_withdrawn as i128;
    if (s.recovery_reserve_balance as i128) < reserve_expected {
        v.push(Violation::ReserveFlowsMismatch {
            reserve: s.recovery_reserve_balance,
            expected: reserve_expected.clamp(0, u64::MAX as i128) as u64,
        });
    }
    let paid_by_accounts: i128 = s.credit_accounts.iter().map(|c| c.account.total_quote_paid as i128).sum();
    let treasury_expected = (paid_by_accounts + m.principals_received as i128 + m.forfeits_received as i128
        - m.treasury_withdrawn as i128)
        .clamp(0, u64::MAX as i128) as u64;
    if s.treasury_balance < treasury_expected {
        v.push(Violation::TreasuryFlowsMismatch {
            treasury: s.treasury_balance,
            expected: treasury_expected,
        });
    }
    let coverage_bps = (liability > 0).then(|| {
        let c = s.recovery_reserve_balance as u128 * BPS as u128 / liability as u128;
        c.min(u64::MAX as u128) as u64
    });
    Report {
        violations: v,
        recovery_liability: liability,
        recovery_reserve: s.recovery_reserve_balance,
        coverage_bps,
        earmarked: m.reserve_earmarked,
        treasury_expected,
    }
}

fn check_facility(snap: &FacilitySnapshot, now: i64, v: &mut Vec<Violation>) {
    let f = &snap.facility;
    let facility = snap.address;
    let used = f.burned_credits as u128 + f.converted_credits as u128 + f.recovered_credits as u128;
    let expected = (f.total_credits as u128).saturating_sub(used) as u64;
    // A closed facility's escrow is gone; what it held was converted or burned at close.
    if f.status != FacilityStatus::Closed && snap.escrow_balance != expected {
        v.push(Violation::EscrowMismatch { facility, escrow: snap.escrow_balance, expected });
    }
    if f.released_credits > f.total_credits || f.burned_credits > f.released_credits {
        v.push(Violation::ReleaseOverflow { facility });
    }
    if f.status != FacilityStatus::Offered && !loan_adds_up(f) {
        v.push(Violation::LoanMismatch { facility });
    }
    if f.status != FacilityStatus::Offered {
        let allowed =
            financed_credits(f.terms.principal, f.accepted_base_price, f.accepted_cap_bps).unwrap_or(0);
        let cap_ok = f.accepted_cap_bps <= MAX_CREDIT_MULTIPLIER_BPS
            && f.terms.credit_multiplier_bps <= f.accepted_cap_bps;
        if f.total_credits > allowed || !cap_ok {
            v.push(Violation::OverMinted { facility, minted: f.total_credits, allowed });
        }
    }

    let mut fresh = f.clone();
    if fresh.refresh(now).is_ok() && fresh.status != f.status {
        v.push(Violation::StaleStatus { facility, stored: f.status, actual: fresh.status });
    }
    if f.escrow_frozen() != snap.escrow_frozen {
        v.push(Violation::FreezeMismatch { facility, status: f.status, escrow_frozen: snap.escrow_frozen });
    }
    let status = fresh.status;
    let since = fresh.loan.past_due_since;
    if status == FacilityStatus::Defaulted && since != 0 {
        let defaulted_since = since.saturating_add(f.terms.default_after_secs);
        if now > defaulted_since.saturating_add(compux::constants::FREEZE_SETTLEMENT_WINDOW_SECS) {
            v.push(Violation::DefaultedNotFrozen { facility, defaulted_since });
        }
    }
}

/// Conservation of the loan: what was lent plus what was charged equals what was paid,
/// what is still owed and what was written off.
fn loan_adds_up(f: &Facility) -> bool {
    let l = &f.loan;
    let principal_ok =
        l.principal_repaid as u128 + l.principal_outstanding as u128 + l.principal_written_off as u128
            == l.principal as u128;
    let charged = l.principal as u128 + l.interest_realised as u128 + l.fees_charged as u128;
    let settled = [
        l.principal_repaid,
        l.interest_paid,
        l.fees_paid,
        l.principal_outstanding,
        l.interest_due,
        l.period_interest,
        l.fees_due,
        l.written_off - l.principal_written_off.min(l.written_off),
        l.principal_written_off,
    ]
    .iter()
    .map(|&x| x as u128)
    .sum::<u128>();
    principal_ok && charged == settled && l.principal == f.terms.principal
}

/// The `usage_chain` a credit source must hold after `batches` (in `seq` order), for
/// comparing the relayer's published batches with the chain.
pub fn replay_usage_chain(batches: &[SettleBatch]) -> [u8; 32] {
    batches
        .iter()
        .fold([0u8; 32], |chain, b| next_usage_chain(&chain, b.seq, b.amount, &b.batch_root, b.window_end))
}
