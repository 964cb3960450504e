//! The market configuration every case starts from, and helpers to read its prices.

use compux_sdk::constants::CREDIT_UNIT;
use compux_sdk::constants::MAX_FINANCING_TIERS;
use compux_sdk::state::{BulkTier, FinancingPolicy, FinancingTier, MarketConfig, ReserveDiscount};

pub const QUOTE_DECIMALS: u8 = 6;
/// Quote units per whole credit: 0.01 of a 6-decimal quote token.
pub const BASE_PRICE: u64 = 10_000;
pub const PEAK_HOUR: i64 = 15;
pub const PEAK_BPS: u16 = 12_500;
pub const OFF_PEAK_HOUR: i64 = 3;
pub const OFF_PEAK_BPS: u16 = 6_000;
pub const TIER1_MIN: u64 = 1_000 * CREDIT_UNIT;
pub const TIER1_BPS: u16 = 500;
pub const TIER2_MIN: u64 = 10_000 * CREDIT_UNIT;
pub const TIER2_BPS: u16 = 1_000;
pub const DAY: i64 = 86_400;
pub const FEE_BPS: u16 = 500;
/// The market's transfer notice.
pub const TRANSFER_NOTICE_SECS: i64 = 900;
/// The market's update delay: a parameter change applies this long after it is scheduled.
pub const UPDATE_DELAY_SECS: i64 = 3_600;

/// Midnight UTC of a fixed day, so tests choose the hour exactly.
pub const DAY0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Hours 0..=6 UTC are off-peak, 14..=21 peak, the rest list price.
pub fn default_config() -> MarketConfig {
    let mut hours = [10_000u16; 24];
    for (h, m) in hours.iter_mut().enumerate() {
        if h <= 6 {
            *m = OFF_PEAK_BPS;
        } else if (14..=21).contains(&h) {
            *m = PEAK_BPS;
        }
    }
    MarketConfig {
        base_price: BASE_PRICE,
        hour_multipliers_bps: hours,
        bulk_tiers: vec![
            BulkTier { min_credits: TIER1_MIN, bonus_bps: TIER1_BPS },
            BulkTier { min_credits: TIER2_MIN, bonus_bps: TIER2_BPS },
        ],
        reserve_discounts: vec![
            ReserveDiscount { min_term_secs: 30 * DAY, discount_bps: 1_000 },
            ReserveDiscount { min_term_secs: 90 * DAY, discount_bps: 2_000 },
        ],
        early_termination_fee_bps: FEE_BPS,
        financing: default_financing(),
        transfer_notice_secs: TRANSFER_NOTICE_SECS,
        update_delay_secs: UPDATE_DELAY_SECS,
    }
}

/// The market's financing terms: any principal may carry up to 1.5x, 1 000 quote tokens or
/// more up to 2x; unused credits are bought back at half their cost; terms of 30 days to
/// three years, grace up to 30 days, default up to 90 days after a missed due date.
pub const CAP_BPS: u16 = 15_000;
pub const RECOVERY_RATE_BPS: u16 = 5_000;
pub fn default_financing() -> FinancingPolicy {
    let mut tiers = [FinancingTier::default(); MAX_FINANCING_TIERS];
    tiers[0] = FinancingTier { min_principal: 1, max_multiplier_bps: CAP_BPS };
    tiers[1] = FinancingTier { min_principal: 1_000_000_000, max_multiplier_bps: 20_000 };
    FinancingPolicy {
        tiers,
        tier_count: 2,
        recovery_rate_bps: RECOVERY_RATE_BPS,
        min_term_secs: 30 * DAY,
        max_term_secs: 3 * 365 * DAY,
        max_grace_secs: 30 * DAY,
        max_default_after_secs: 90 * DAY,
    }
}

/// `hour` o'clock UTC on DAY0.
pub fn at_hour(hour: i64) -> i64 {
    DAY0 + hour * 3_600
}

/// The worked example of docs/financed-credits.md: 100_000 quote units at 12 % APR in four
/// 30-day installments of 25_620. At the base price that buys 10 credits; x1.5 makes 15, a
/// quarter released upfront and the rest in three monthly top-ups of 3.75 credits.
pub const PRINCIPAL: u64 = 100_000;
pub const INSTALLMENT: u64 = 25_620;
pub const FINANCED_CREDITS: u64 = 15_000_000;
pub const UPFRONT_CREDITS: u64 = 3_750_000;
pub const TRANCHE_CREDITS: u64 = 3_750_000;
pub const PERIOD: i64 = 30 * DAY;
pub const GRACE: i64 = 5 * DAY;
pub const DEFAULT_AFTER: i64 = 20 * DAY;
/// The default facility's recovery earmark: principal x the market's recovery rate.
pub const EARMARK: u64 = PRINCIPAL * RECOVERY_RATE_BPS as u64 / 10_000;
/// What `TestEnv::new` puts in the recovery reserve: room for twenty default facilities.
pub const RESERVE_FUNDING: u64 = 20 * EARMARK;

pub fn default_terms(borrower: solana_sdk::pubkey::Pubkey) -> compux_sdk::state::FacilityTerms {
    compux_sdk::state::FacilityTerms {
        borrower,
        principal: PRINCIPAL,
        apr_bps: 1_200,
        installments: 4,
        period_secs: PERIOD,
        credit_multiplier_bps: 15_000,
        upfront_bps: 2_500,
        tranches: 3,
        grace_secs: GRACE,
        default_after_secs: DEFAULT_AFTER,
        late_fee_bps: 500,
        unused_at_close: compux_sdk::state::UnusedCredits::Convert,
        min_recovery_rate_bps: RECOVERY_RATE_BPS,
    }
}

/// A reservation of 500 credits a period for four 30-day periods, with the owner's bounds at
/// what `market` quotes for it now (price, deposit and fee), and that quote.
pub fn quoted_reservation(
    market: &compux_sdk::state::Market,
) -> (compux_sdk::ix::ReserveParams, compux_sdk::math::reservation::ReservationQuote) {
    let (credits_per_period, periods, period_secs) = (500 * CREDIT_UNIT, 4, 30 * DAY);
    let q = compux_sdk::math::reservation::quote_reservation(
        credits_per_period,
        periods,
        period_secs,
        market.base_price,
        market.reserve_discounts(),
        market.early_termination_fee_bps,
    )
    .expect("a valid reservation");
    let bounds = compux_sdk::ix::ReserveParams {
        credits_per_period,
        periods,
        period_secs,
        max_price: q.locked_price,
        max_deposit: q.deposit,
        max_fee: q.fee,
    };
    (bounds, q)
}
