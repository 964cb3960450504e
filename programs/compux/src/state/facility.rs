use anchor_lang::prelude::*;

use super::Settlement;
use crate::constants::*;
use crate::errors::CompuxError;
use crate::math::loan::Loan;
use crate::math::mul_div_floor;

/// What happens to escrowed credits the borrower did not use when the facility closes after
/// full repayment.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum UnusedCredits {
    /// They become standard credits in the borrower's credit account.
    Convert,
    /// They are burned.
    Forfeit,
}

/// A lender's offer, all integers. Amounts in quote base units, rates in basis points.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct FacilityTerms {
    /// Only this wallet may accept.
    pub borrower: Pubkey,
    pub principal: u64,
    pub apr_bps: u16,
    pub installments: u16,
    pub period_secs: i64,
    /// Credits minted = principal at the market's base price x this (>= 10_000).
    pub credit_multiplier_bps: u16,
    /// Share of the credits released at acceptance.
    pub upfront_bps: u16,
    /// Equal top-ups of the rest, tranche `k` due `k` periods after acceptance.
    pub tranches: u16,
    /// After a missed due date: delinquent once this passes, and a late fee is charged.
    pub grace_secs: i64,
    /// After a missed due date: defaulted once this passes (>= grace).
    pub default_after_secs: i64,
    pub late_fee_bps: u16,
    /// Buy-back price of unused escrowed credits on recovery, as a share of their cost.
    pub recovery_rate_bps: u16,
    pub unused_at_close: UnusedCredits,
}

impl FacilityTerms {
    pub fn validate(&self) -> Result<()> {
        require!(self.principal > 0, CompuxError::ZeroAmount);
        require!(
            (1..=MAX_INSTALLMENTS).contains(&self.installments)
                && (MIN_PERIOD_SECS..=MAX_PERIOD_SECS).contains(&self.period_secs)
                && self.apr_bps <= MAX_APR_BPS,
            CompuxError::InvalidFacilityTerms
        );
        require!(
            (MIN_CREDIT_MULTIPLIER_BPS..=MAX_CREDIT_MULTIPLIER_BPS).contains(&self.credit_multiplier_bps)
                && self.upfront_bps as u64 <= BPS
                && self.tranches <= self.installments
                && (self.tranches > 0 || self.upfront_bps as u64 == BPS),
            CompuxError::InvalidReleaseSchedule
        );
        require!(
            self.grace_secs >= 0
                && self.default_after_secs >= self.grace_secs
                && self.late_fee_bps as u64 <= BPS
                && self.recovery_rate_bps as u64 <= BPS,
            CompuxError::InvalidFacilityTerms
        );
        require_keys_neq!(self.borrower, Pubkey::default(), CompuxError::InvalidFacilityTerms);
        Ok(())
    }
}

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum FacilityStatus {
    /// Principal in the facility vault, waiting for the borrower.
    Offered,
    /// Accepted and current.
    Active,
    /// Past due beyond the grace period: no new tranches.
    Delinquent,
    /// Past due beyond the default threshold: the lender may freeze.
    Defaulted,
    /// The lender froze the escrow.
    Frozen,
    /// Unused credits bought back and burned; any shortfall recorded.
    Recovered,
    /// Paid in full: closable.
    Repaid,
}

/// A financed-credit facility. Seeds: [FACILITY_SEED, market, lender, nonce]. Its principal
/// vault ([FACILITY_VAULT_SEED, facility], quote) holds the principal while offered; its
/// escrow ([ESCROW_SEED, facility], credits) holds the financed credits; both are controlled
/// by the market PDA. The lender pays every rent and gets it back.
#[account]
#[derive(InitSpace, Debug)]
pub struct Facility {
    pub market: Pubkey,
    pub lender: Pubkey,
    /// The lender's quote account: repayments and recoveries are paid here.
    pub lender_quote: Pubkey,
    pub nonce: u64,
    pub bump: u8,
    pub principal_vault: Pubkey,
    pub escrow: Pubkey,
    pub terms: FacilityTerms,
    pub status: FacilityStatus,
    pub offered_at: i64,
    pub accepted_at: i64,
    /// 0 until frozen.
    pub frozen_at: i64,
    /// Credits minted into the escrow at acceptance.
    pub total_credits: u64,
    /// Credits the relayer may burn (upfront plus tranches released).
    pub released_credits: u64,
    pub tranches_released: u16,
    pub burned_credits: u64,
    pub converted_credits: u64,
    pub recovered_credits: u64,
    /// Quote paid to the lender out of the recovery reserve, and what was written off.
    pub recovered_quote: u64,
    pub shortfall: u64,
    pub settlement: Settlement,
    pub loan: Loan,
}

impl Facility {
    /// Credits released and not yet burned: what the relayer may spend.
    pub fn spendable_credits(&self) -> u64 {
        self.released_credits.saturating_sub(self.burned_credits)
    }

    /// Credits of the next tranche (the last takes the rounding remainder), and its due time.
    pub fn next_tranche(&self) -> Option<(u64, i64)> {
        if self.tranches_released >= self.terms.tranches {
            return None;
        }
        let upfront = upfront_credits(self.total_credits, self.terms.upfront_bps)?;
        let rest = self.total_credits - upfront;
        let k = self.tranches_released + 1;
        let amount = if k == self.terms.tranches {
            self.total_credits - self.released_credits
        } else {
            rest / self.terms.tranches as u64
        };
        let due = self.accepted_at.checked_add((k as i64).checked_mul(self.terms.period_secs)?)?;
        Some((amount, due))
    }

    /// Brings the loan and the status to `now` (the permissionless `refresh_facility` and
    /// every facility instruction call this first). Returns the status before.
    pub fn refresh(&mut self, now: i64) -> Result<FacilityStatus> {
        let before = self.status;
        if matches!(before, FacilityStatus::Offered | FacilityStatus::Recovered) {
            return Ok(before);
        }
        self.loan.accrue(now).ok_or(CompuxError::MathOverflow)?;
        let since = self.loan.past_due_since;
        let after = |secs: i64| since != 0 && now >= since.saturating_add(secs);
        self.status = match before {
            FacilityStatus::Frozen => FacilityStatus::Frozen,
            _ if self.loan.is_repaid() => FacilityStatus::Repaid,
            FacilityStatus::Repaid => FacilityStatus::Repaid,
            // Default sticks until the facility is repaid in full.
            FacilityStatus::Defaulted => FacilityStatus::Defaulted,
            _ if after(self.terms.default_after_secs) => FacilityStatus::Defaulted,
            _ if after(self.terms.grace_secs) => FacilityStatus::Delinquent,
            _ => FacilityStatus::Active,
        };
        Ok(before)
    }

    /// The lender may freeze a defaulted facility, or one that matured with a balance due.
    pub fn freezable(&self, now: i64) -> bool {
        match self.status {
            FacilityStatus::Defaulted => true,
            FacilityStatus::Active | FacilityStatus::Delinquent => {
                self.loan.maturity_ts().is_some_and(|m| now >= m) && !self.loan.is_repaid()
            }
            _ => false,
        }
    }

    pub fn settlement_window_end(&self) -> i64 {
        self.frozen_at.saturating_add(FREEZE_SETTLEMENT_WINDOW_SECS)
    }
}

/// Credits minted for `principal`: its value at `base_price` (quote units per whole credit)
/// times the multiplier, rounded down.
pub fn financed_credits(principal: u64, base_price: u64, multiplier_bps: u16) -> Option<u64> {
    let n = (principal as u128).checked_mul(CREDIT_UNIT as u128)?.checked_mul(multiplier_bps as u128)?;
    u64::try_from(n / (base_price as u128).checked_mul(BPS as u128)?).ok()
}

pub fn upfront_credits(total: u64, upfront_bps: u16) -> Option<u64> {
    mul_div_floor(total, upfront_bps as u64, BPS)
}
