use anchor_lang::prelude::*;

use crate::constants::*;
use crate::errors::CompuxError;

/// Purchases of at least `min_credits` (base units) receive `bonus_bps` extra credits.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct BulkTier {
    pub min_credits: u64,
    pub bonus_bps: u16,
}

/// Reservations whose whole term lasts at least `min_term_secs` lock `discount_bps` off.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct ReserveDiscount {
    pub min_term_secs: i64,
    pub discount_bps: u16,
}

/// Facilities of at least `min_principal` quote units may carry a credit multiplier of at
/// most `max_multiplier_bps`.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct FinancingTier {
    pub min_principal: u64,
    pub max_multiplier_bps: u16,
}

/// The financing terms the market honours. The multiplier mints credits the marketplace
/// subsidises and the recovery rate pays out of the shared reserve, so both are the market's
/// to set: a lender and a borrower held by one person must not be able to pick them.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct FinancingPolicy {
    /// Strictly increasing in `min_principal`; the first tier's minimum is the smallest
    /// principal the market finances. No tiers: the market offers no financing.
    pub tiers: [FinancingTier; MAX_FINANCING_TIERS],
    pub tier_count: u8,
    /// Buy-back price of unused escrowed credits on recovery, as a share of their cost.
    pub recovery_rate_bps: u16,
    /// Bounds on the whole term (installments x period).
    pub min_term_secs: i64,
    pub max_term_secs: i64,
    pub max_grace_secs: i64,
    pub max_default_after_secs: i64,
}

impl FinancingPolicy {
    pub fn tiers(&self) -> &[FinancingTier] {
        &self.tiers[..(self.tier_count as usize).min(MAX_FINANCING_TIERS)]
    }

    /// The largest multiplier the market honours for `principal`; `None` below every tier.
    pub fn cap_for(&self, principal: u64) -> Option<u16> {
        self.tiers().iter().filter(|t| principal >= t.min_principal).map(|t| t.max_multiplier_bps).max()
    }

    pub fn validate(&self) -> Result<()> {
        let t = self.tiers();
        require!(
            self.tier_count as usize <= MAX_FINANCING_TIERS
                && t.iter().all(|x| {
                    x.min_principal > 0
                        && (MIN_CREDIT_MULTIPLIER_BPS..=MAX_CREDIT_MULTIPLIER_BPS)
                            .contains(&x.max_multiplier_bps)
                })
                && t.windows(2).all(|w| w[0].min_principal < w[1].min_principal)
                && self.recovery_rate_bps as u64 <= BPS
                && self.min_term_secs >= MIN_PERIOD_SECS
                && self.min_term_secs <= self.max_term_secs
                && self.max_grace_secs >= 0
                && self.max_default_after_secs >= self.max_grace_secs,
            CompuxError::InvalidFinancingPolicy
        );
        Ok(())
    }
}

/// The admin-set price schedule, as passed to `init_market`.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct MarketConfig {
    /// Quote base units per whole credit (10^6 credit base units).
    pub base_price: u64,
    /// Multiplier per UTC hour of the chain clock; 10_000 = list price.
    pub hour_multipliers_bps: [u16; HOURS_PER_DAY],
    pub bulk_tiers: Vec<BulkTier>,
    pub reserve_discounts: Vec<ReserveDiscount>,
    /// Share of a reservation's total commitment taken as a deposit and forfeited on
    /// cancellation or lapse.
    pub early_termination_fee_bps: u16,
    pub financing: FinancingPolicy,
    /// How long announced credits wait before they may leave a vault (`announce_transfer`):
    /// set at creation only, so no change can shorten a notice under the relayer.
    pub transfer_notice_secs: i64,
    /// How long a parameter change waits on chain before it may apply (`update_market`,
    /// `apply_market_update`): set at creation only, at least twice the transfer notice, so
    /// that an owner who sees a new relayer key coming has at least a notice's time to react
    /// and a lower burn ceiling (which waits a notice) still applies before the key does.
    pub update_delay_secs: i64,
}

/// A partial update: each `Some` field replaces the stored one, after validation.
/// `relayer: Some(Pubkey::default())` revokes the relayer key.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketUpdate {
    pub base_price: Option<u64>,
    pub hour_multipliers_bps: Option<[u16; HOURS_PER_DAY]>,
    pub bulk_tiers: Option<Vec<BulkTier>>,
    pub reserve_discounts: Option<Vec<ReserveDiscount>>,
    pub early_termination_fee_bps: Option<u16>,
    pub financing: Option<FinancingPolicy>,
    pub relayer: Option<Pubkey>,
    pub paused: Option<bool>,
}

/// Everything the admin may change under users: prices, tiers, discounts, the fee, the
/// financing policy and the relayer key.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct MarketParams {
    pub base_price: u64,
    pub hour_multipliers_bps: [u16; HOURS_PER_DAY],
    pub bulk_tier_count: u8,
    pub bulk_tiers: [BulkTier; MAX_BULK_TIERS],
    pub reserve_discount_count: u8,
    pub reserve_discounts: [ReserveDiscount; MAX_RESERVE_DISCOUNTS],
    pub early_termination_fee_bps: u16,
    pub financing: FinancingPolicy,
    pub relayer: Pubkey,
}

impl MarketParams {
    /// Validates every provided field first, then writes them: a rejected update changes
    /// nothing. `paused` is not a parameter (`PendingUpdate::schedule`).
    pub fn overlay(&mut self, u: &MarketUpdate) -> Result<()> {
        if let Some(p) = u.base_price {
            require!(p > 0, CompuxError::InvalidPrice);
        }
        if let Some(m) = &u.hour_multipliers_bps {
            require!(
                m.iter().all(|&x| (MIN_HOUR_MULTIPLIER_BPS..=MAX_HOUR_MULTIPLIER_BPS).contains(&x)),
                CompuxError::InvalidHourMultiplier
            );
        }
        if let Some(t) = &u.bulk_tiers {
            require!(valid_bulk_tiers(t), CompuxError::InvalidBulkTiers);
        }
        if let Some(d) = &u.reserve_discounts {
            require!(valid_reserve_discounts(d), CompuxError::InvalidReserveDiscounts);
        }
        if let Some(f) = u.early_termination_fee_bps {
            require!(f <= MAX_EARLY_TERMINATION_FEE_BPS, CompuxError::InvalidFee);
        }
        if let Some(f) = &u.financing {
            f.validate()?;
        }

        if let Some(p) = u.base_price {
            self.base_price = p;
        }
        if let Some(m) = u.hour_multipliers_bps {
            self.hour_multipliers_bps = m;
        }
        if let Some(t) = &u.bulk_tiers {
            self.bulk_tiers = [BulkTier::default(); MAX_BULK_TIERS];
            self.bulk_tiers[..t.len()].copy_from_slice(t);
            self.bulk_tier_count = t.len() as u8;
        }
        if let Some(d) = &u.reserve_discounts {
            self.reserve_discounts = [ReserveDiscount::default(); MAX_RESERVE_DISCOUNTS];
            self.reserve_discounts[..d.len()].copy_from_slice(d);
            self.reserve_discount_count = d.len() as u8;
        }
        if let Some(f) = u.early_termination_fee_bps {
            self.early_termination_fee_bps = f;
        }
        if let Some(f) = u.financing {
            self.financing = f;
        }
        if let Some(r) = u.relayer {
            self.relayer = r;
        }
        Ok(())
    }
}

#[account]
#[derive(InitSpace, Debug)]
pub struct Market {
    /// Seeds: [MARKET_SEED, creator, quote_mint]. The market PDA is the credit mint's mint
    /// and freeze authority and the owner of every vault, so only this program moves funds.
    pub creator: Pubkey,
    pub quote_mint: Pubkey,
    pub bump: u8,
    pub admin: Pubkey,
    /// `Pubkey::default()` when no handover is pending.
    pub pending_admin: Pubkey,
    pub relayer: Pubkey,
    pub credit_mint: Pubkey,
    pub treasury: Pubkey,
    pub recovery_reserve: Pubkey,
    pub deposit_vault: Pubkey,
    pub paused: bool,
    pub base_price: u64,
    pub hour_multipliers_bps: [u16; HOURS_PER_DAY],
    pub bulk_tier_count: u8,
    pub bulk_tiers: [BulkTier; MAX_BULK_TIERS],
    pub reserve_discount_count: u8,
    pub reserve_discounts: [ReserveDiscount; MAX_RESERVE_DISCOUNTS],
    pub early_termination_fee_bps: u16,
    /// Sum of the deposits of live reservations: the deposit vault holds exactly this.
    pub deposits_outstanding: u64,
    pub financing: FinancingPolicy,
    /// Facilities ever offered (a count: a facility's address takes its lender's nonce).
    pub facility_count: u64,
    /// Sum of the recovery earmarks of live facilities: the reserve must hold at least this,
    /// and only the rest is free to earmark or withdraw.
    pub reserve_earmarked: u64,
    /// Treasury flows the credit accounts do not record (their `total_quote_paid` counts
    /// purchases and claims): accepted principals, forfeited deposits, withdrawals.
    pub principals_received: u64,
    pub forfeits_received: u64,
    pub treasury_withdrawn: u64,
    /// Recovery reserve flows: funded, paid to lenders, withdrawn by the admin.
    pub reserve_funded: u64,
    pub reserve_paid: u64,
    pub reserve_withdrawn: u64,
    /// `MarketConfig::transfer_notice_secs`.
    pub transfer_notice_secs: i64,
    /// `MarketConfig::update_delay_secs`.
    pub update_delay_secs: i64,
}

impl Market {
    pub fn signer_seeds(&self) -> [&[u8]; 4] {
        [MARKET_SEED, self.creator.as_ref(), self.quote_mint.as_ref(), std::slice::from_ref(&self.bump)]
    }

    pub fn bulk_tiers(&self) -> &[BulkTier] {
        &self.bulk_tiers[..self.bulk_tier_count as usize]
    }

    pub fn reserve_discounts(&self) -> &[ReserveDiscount] {
        &self.reserve_discounts[..self.reserve_discount_count as usize]
    }

    /// `init_market`: the config applies at once (no user can be inside the market yet).
    pub fn apply_config(&mut self, config: &MarketConfig) -> Result<()> {
        require!(
            (MIN_TRANSFER_NOTICE_SECS..=MAX_TRANSFER_NOTICE_SECS).contains(&config.transfer_notice_secs),
            CompuxError::InvalidTransferNotice
        );
        let delays = config.transfer_notice_secs.saturating_mul(2)..=MAX_UPDATE_DELAY_SECS;
        require!(delays.contains(&config.update_delay_secs), CompuxError::InvalidUpdateDelay);
        self.transfer_notice_secs = config.transfer_notice_secs;
        self.update_delay_secs = config.update_delay_secs;
        let mut params = self.params();
        params.overlay(&MarketUpdate {
            base_price: Some(config.base_price),
            hour_multipliers_bps: Some(config.hour_multipliers_bps),
            bulk_tiers: Some(config.bulk_tiers.clone()),
            reserve_discounts: Some(config.reserve_discounts.clone()),
            early_termination_fee_bps: Some(config.early_termination_fee_bps),
            financing: Some(config.financing),
            relayer: None,
            paused: None,
        })?;
        self.set_params(&params);
        Ok(())
    }

    pub fn params(&self) -> MarketParams {
        MarketParams {
            base_price: self.base_price,
            hour_multipliers_bps: self.hour_multipliers_bps,
            bulk_tier_count: self.bulk_tier_count,
            bulk_tiers: self.bulk_tiers,
            reserve_discount_count: self.reserve_discount_count,
            reserve_discounts: self.reserve_discounts,
            early_termination_fee_bps: self.early_termination_fee_bps,
            financing: self.financing,
            relayer: self.relayer,
        }
    }

    pub(crate) fn set_params(&mut self, p: &MarketParams) {
        self.base_price = p.base_price;
        self.hour_multipliers_bps = p.hour_multipliers_bps;
        self.bulk_tier_count = p.bulk_tier_count;
        self.bulk_tiers = p.bulk_tiers;
        self.reserve_discount_count = p.reserve_discount_count;
        self.reserve_discounts = p.reserve_discounts;
        self.early_termination_fee_bps = p.early_termination_fee_bps;
        self.financing = p.financing;
        self.relayer = p.relayer;
    }

    pub fn config(&self) -> MarketConfig {
        MarketConfig {
            base_price: self.base_price,
            hour_multipliers_bps: self.hour_multipliers_bps,
            bulk_tiers: self.bulk_tiers().to_vec(),
            reserve_discounts: self.reserve_discounts().to_vec(),
            early_termination_fee_bps: self.early_termination_fee_bps,
            financing: self.financing,
            transfer_notice_secs: self.transfer_notice_secs,
            update_delay_secs: self.update_delay_secs,
        }
    }

    /// Reserve balance not earmarked for live facilities.
    pub fn free_reserve(&self, reserve_balance: u64) -> u64 {
        reserve_balance.saturating_sub(self.reserve_earmarked)
    }
}

fn valid_bulk_tiers(t: &[BulkTier]) -> bool {
    t.len() <= MAX_BULK_TIERS
        && t.iter().all(|x| x.min_credits > 0 && x.bonus_bps <= MAX_BULK_BONUS_BPS)
        && t.windows(2).all(|w| w[0].min_credits < w[1].min_credits)
}

fn valid_reserve_discounts(d: &[ReserveDiscount]) -> bool {
    d.len() <= MAX_RESERVE_DISCOUNTS
        && d.iter().all(|x| x.min_term_secs > 0 && x.discount_bps <= MAX_RESERVE_DISCOUNT_BPS)
        && d.windows(2).all(|w| w[0].min_term_secs < w[1].min_term_secs)
}
