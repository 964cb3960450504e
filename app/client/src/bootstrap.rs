//! Market bootstrap from a TOML file (`migrations/market.toml`): the same code on the
//! localnet, where it can create a test quote mint, and on a real cluster, where the quote
//! mint (USDC, say) already exists.

use std::path::Path;

use anchor_spl::token::spl_token;
use anyhow::{Context, Result};
use compux_sdk::constants::MAX_FINANCING_TIERS;
use compux_sdk::state::{BulkTier, FinancingPolicy, FinancingTier, MarketConfig, ReserveDiscount};
use compux_sdk::{ix, MarketKeys};
use serde::Deserialize;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::send::{send, Sender};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketFile {
    base_price: u64,
    early_termination_fee_bps: u16,
    transfer_notice_secs: i64,
    update_delay_secs: i64,
    hour_multipliers_bps: Vec<u16>,
    #[serde(default)]
    bulk_tiers: Vec<Tier>,
    #[serde(default)]
    reserve_discounts: Vec<Discount>,
    financing: Option<Financing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Financing {
    recovery_rate_bps: u16,
    min_term_secs: i64,
    max_term_secs: i64,
    max_grace_secs: i64,
    max_default_after_secs: i64,
    #[serde(default)]
    tiers: Vec<FinancingTierFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinancingTierFile {
    min_principal: u64,
    max_multiplier_bps: u16,
}

impl Financing {
    fn policy(self, path: &Path) -> Result<FinancingPolicy> {
        let n = self.tiers.len();
        if n > MAX_FINANCING_TIERS {
            anyhow::bail!(
                "{}: financing.tiers has {n} tiers; the program holds at most {MAX_FINANCING_TIERS}",
                path.display()
            );
        }
        let mut tiers = [FinancingTier::default(); MAX_FINANCING_TIERS];
        for (slot, t) in tiers.iter_mut().zip(self.tiers) {
            *slot =
                FinancingTier { min_principal: t.min_principal, max_multiplier_bps: t.max_multiplier_bps };
        }
        Ok(FinancingPolicy {
            tiers,
            tier_count: n as u8,
            recovery_rate_bps: self.recovery_rate_bps,
            min_term_secs: self.min_term_secs,
            max_term_secs: self.max_term_secs,
            max_grace_secs: self.max_grace_secs,
            max_default_after_secs: self.max_default_after_secs,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tier {
    min_credits: u64,
    bonus_bps: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Discount {
    min_term_secs: i64,
    discount_bps: u16,
}

/// Reads a market configuration; the program validates the values themselves.
pub fn read_config(path: &Path) -> Result<MarketConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let f: MarketFile =
        toml::from_str(&text).with_context(|| format!("{} is not a valid market file", path.display()))?;
    let hours = f.hour_multipliers_bps.len();
    Ok(MarketConfig {
        base_price: f.base_price,
        hour_multipliers_bps: f.hour_multipliers_bps.try_into().map_err(|_| {
            anyhow::anyhow!(
                "{}: hour_multipliers_bps needs 24 values, one per UTC hour; it has {hours}",
                path.display()
            )
        })?,
        bulk_tiers: f
            .bulk_tiers
            .into_iter()
            .map(|t| BulkTier { min_credits: t.min_credits, bonus_bps: t.bonus_bps })
            .collect(),
        reserve_discounts: f
            .reserve_discounts
            .into_iter()
            .map(|d| ReserveDiscount { min_term_secs: d.min_term_secs, discount_bps: d.discount_bps })
            .collect(),
        early_termination_fee_bps: f.early_termination_fee_bps,
        transfer_notice_secs: f.transfer_notice_secs,
        update_delay_secs: f.update_delay_secs,
        financing: f
            .financing
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: a [financing] section is required: multiplier caps by principal, recovery rate, term bounds (see migrations/market.toml)",
                    path.display()
                )
            })?
            .policy(path)?,
    })
}

/// Creates a 6-decimal test quote mint whose mint authority is `authority` (localnet).
pub async fn create_test_quote_mint(rpc: &RpcClient, how: Sender, authority: &Keypair) -> Result<Pubkey> {
    let mint = Keypair::new();
    let len = spl_token::state::Mint::LEN;
    let rent = rpc.get_minimum_balance_for_rent_exemption(len).await?;
    let ixs = [
        solana_system_interface::instruction::create_account(
            &authority.pubkey(),
            &mint.pubkey(),
            rent,
            len as u64,
            &spl_token::ID,
        ),
        spl_token::instruction::initialize_mint2(
            &spl_token::ID,
            &mint.pubkey(),
            &authority.pubkey(),
            None,
            6,
        )?,
    ];
    send(rpc, how, "create test quote mint", authority, &ixs, &[&mint]).await?;
    Ok(mint.pubkey())
}

pub async fn init_market(
    rpc: &RpcClient,
    how: Sender,
    admin: &Keypair,
    quote_mint: Pubkey,
    config: MarketConfig,
    relayer: Pubkey,
) -> Result<MarketKeys> {
    let keys = MarketKeys::derive(&admin.pubkey(), &quote_mint);
    send(rpc, how, "init market", admin, &[ix::init_market(&keys, config, relayer)], &[]).await?;
    Ok(keys)
}
