//! Seeds, units and bounds shared by the program and its clients.

/// PDA seeds. Every account the program owns or signs for is derived from one of these.
pub const MARKET_SEED: &[u8] = b"market";
pub const CREDIT_MINT_SEED: &[u8] = b"credit_mint";
pub const TREASURY_SEED: &[u8] = b"treasury";
pub const RECOVERY_RESERVE_SEED: &[u8] = b"recovery_reserve";
pub const DEPOSIT_VAULT_SEED: &[u8] = b"deposit_vault";
pub const PENDING_UPDATE_SEED: &[u8] = b"pending_update";
pub const CREDIT_ACCOUNT_SEED: &[u8] = b"credit_account";
pub const CREDIT_VAULT_SEED: &[u8] = b"credit_vault";
pub const RESERVATION_SEED: &[u8] = b"reservation";

/// Credits have 6 decimals: prices are quoted per whole credit (10^6 base units).
pub const CREDIT_DECIMALS: u8 = 6;
pub const CREDIT_UNIT: u64 = 1_000_000;

/// Basis points: 10_000 = 100 %.
pub const BPS: u64 = 10_000;

pub const HOURS_PER_DAY: usize = 24;
pub const SECONDS_PER_HOUR: i64 = 3_600;
pub const SECONDS_PER_DAY: i64 = 86_400;

pub const MAX_BULK_TIERS: usize = 8;
pub const MAX_RESERVE_DISCOUNTS: usize = 4;

/// An hour multiplier is between 0.1x and 10x the base price.
pub const MIN_HOUR_MULTIPLIER_BPS: u16 = 1_000;
pub const MAX_HOUR_MULTIPLIER_BPS: u16 = 65_000;
/// Bonus credits at most double a purchase; a term discount stays below 100 %.
pub const MAX_BULK_BONUS_BPS: u16 = 10_000;
pub const MAX_RESERVE_DISCOUNT_BPS: u16 = 9_000;
pub const MAX_EARLY_TERMINATION_FEE_BPS: u16 = 10_000;

/// Reservation terms: a period lasts between one minute and a leap year, at most 520 periods.
pub const MIN_PERIOD_SECS: i64 = 60;
/// Bounds on a market's transfer notice: longer than the relayer's longest request and its
/// settlement lag, short enough to keep credits transferable.
pub const MIN_TRANSFER_NOTICE_SECS: i64 = 60;
pub const MAX_TRANSFER_NOTICE_SECS: i64 = 30 * 86_400;
/// A market's parameter changes wait at least twice its transfer notice and at most this.
pub const MAX_UPDATE_DELAY_SECS: i64 = 90 * 86_400;
/// A due parameter change applies within this long after its time, or not at all: a change
/// left unapplied for weeks must not land later without a fresh notice.
pub const UPDATE_APPLY_WINDOW_SECS: i64 = 86_400;
pub const MAX_PERIOD_SECS: i64 = 366 * SECONDS_PER_DAY;
pub const MAX_PERIODS: u16 = 520;

// ---- financed credits ----
pub const FACILITY_SEED: &[u8] = b"facility";
pub const FACILITY_VAULT_SEED: &[u8] = b"facility_vault";
pub const ESCROW_SEED: &[u8] = b"escrow";

/// After a freeze the relayer may still settle usage metered before `frozen_at` for this long;
/// recovery waits until it has passed.
pub const FREEZE_SETTLEMENT_WINDOW_SECS: i64 = SECONDS_PER_DAY;
pub const MAX_INSTALLMENTS: u16 = 120;
pub const MAX_APR_BPS: u16 = 20_000;
/// Financed credits are worth at least the principal and at most 5x.
pub const MIN_CREDIT_MULTIPLIER_BPS: u16 = 10_000;
pub const MAX_CREDIT_MULTIPLIER_BPS: u16 = 50_000;

/// The market's financing policy: at most this many principal tiers, each capping the
/// credit multiplier a facility of at least its principal may carry.
pub const MAX_FINANCING_TIERS: usize = 4;
