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
}

/// A partial update: each `Some` field replaces the stored one, after validation.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketUpdate {
    pub base_price: Option<u64>,
    pub hour_multipliers_bps: Option<[u16; HOURS_PER_DAY]>,
    pub bulk_tiers: Option<Vec<BulkTier>>,
    pub reserve_discounts: Option<Vec<ReserveDiscount>>,
    pub early_termination_fee_bps: Option<u16>,
    pub relayer: Option<Pubkey>,
    pub paused: Option<bool>,
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

    pub fn apply_config(&mut self, config: &MarketConfig) -> Result<()> {
        self.apply_update(&MarketUpdate {
            base_price: Some(config.base_price),
            hour_multipliers_bps: Some(config.hour_multipliers_bps),
            bulk_tiers: Some(config.bulk_tiers.clone()),
            reserve_discounts: Some(config.reserve_discounts.clone()),
            early_termination_fee_bps: Some(config.early_termination_fee_bps),
            relayer: None,
            paused: None,
        })
    }

    /// Validates every provided field first, then writes them: a rejected update changes nothing.
    pub fn apply_update(&mut self, u: &MarketUpdate) -> Result<()> {
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
        if let Some(r) = u.relayer {
            self.relayer = r;
        }
        if let Some(p) = u.paused {
            self.paused = p;
        }
        Ok(())
    }

    pub fn config(&self) -> MarketConfig {
        MarketConfig {
            base_price: self.base_price,
            hour_multipliers_bps: self.hour_multipliers_bps,
            bulk_tiers: self.bulk_tiers().to_vec(),
            reserve_discounts: self.reserve_discounts().to_vec(),
            early_termination_fee_bps: self.early_termination_fee_bps,
        }
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
