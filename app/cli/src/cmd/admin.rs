//! Operator commands. The program checks that the wallet is the market's admin.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use compux_client::{bootstrap, tokens};
use compux_sdk::state::MarketUpdate;
use compux_sdk::{ix, MarketKeys};
use serde_json::json;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::quote_decimals;
use crate::ctx::Ctx;
use compux_sdk::units;

#[derive(Subcommand)]
pub enum Admin {
    /// Create a market from a configuration file. Without --quote-mint (localnet), a
    /// 6-decimal test quote mint is created with the wallet as its mint authority.
    InitMarket {
        /// Market configuration: prices, hourly multipliers, bulk tiers, reserve discounts.
        #[arg(long, default_value = "migrations/market.toml")]
        config: PathBuf,
        /// The quote token's mint (USDC on a real cluster).
        #[arg(long)]
        quote_mint: Option<Pubkey>,
        /// The relayer allowed to settle usage; the wallet by default.
        #[arg(long)]
        relayer: Option<Pubkey>,
    },
    /// Replace the prices, hourly multipliers, bulk tiers, reserve discounts and
    /// early-termination fee with those of a configuration file. The change waits the
    /// market's update delay on chain (users see it in `compux status` and the audit), then
    /// anyone applies it with `compux crank apply-update`.
    SetPrices {
        #[arg(long, default_value = "migrations/market.toml")]
        config: PathBuf,
    },
    /// Replace the financing terms the market honours (multiplier caps by principal,
    /// recovery rate, term, grace and default bounds) with the [financing] section of a
    /// configuration file. Offers and acceptances outside them fail once it applies (after
    /// the market's update delay, like every parameter change).
    SetFinancing {
        #[arg(long, default_value = "migrations/market.toml")]
        config: PathBuf,
    },
    /// Name a new relayer key allowed to settle usage. It takes over after the market's
    /// update delay, time in which every startup can see it coming and move its credits out;
    /// the current key settles meanwhile.
    SetRelayer { relayer: Pubkey },
    /// Revoke the relayer key at once (a leaked key): nothing settles until a new key,
    /// named with `set-relayer`, takes over after the update delay.
    RevokeRelayer,
    /// Pay quote tokens out of the treasury (to pay providers) to a wallet's token account.
    WithdrawTreasury {
        /// Amount in quote tokens.
        amount: String,
        /// Recipient wallet (its associated token account); the admin wallet by default.
        #[arg(long)]
        to: Option<Pubkey>,
    },
    /// Take quote tokens out of the recovery reserve, only above what live facilities
    /// have earmarked.
    WithdrawReserve {
        /// Amount in quote tokens.
        amount: String,
        /// Recipient wallet (its associated token account); the admin wallet by default.
        #[arg(long)]
        to: Option<Pubkey>,
    },
    /// Move quote tokens from the wallet into the recovery reserve.
    FundReserve {
        /// Amount in quote tokens.
        amount: String,
    },
    /// Stop purchases, reservations and facility offers and acceptances, at once.
    Pause,
    /// Allow purchases and reservations again.
    Resume,
    /// Localnet: mint test quote tokens to an owner (the wallet must be the mint authority).
    MintQuote {
        /// Recipient wallet.
        to: Pubkey,
        /// Amount in quote tokens.
        amount: String,
    },
}

async fn update(ctx: &Ctx, what: &str, m: &MarketKeys, update: MarketUpdate) -> Result<()> {
    let admin = ctx.wallet()?;
    let sig = ctx.send(what, &admin, &[ix::update_market(m, &admin.pubkey(), update)], &[]).await?;
    let (_, market) = compux_client::fetch::market(&ctx.rpc, &m.market).await?;
    let now = compux_client::fetch::clock(&ctx.rpc).await?.unix_timestamp;
    let pending = compux_client::fetch::pending_change(&ctx.rpc, m, &market).await?;
    ctx.emit(
        json!({"signature": sig.to_string(), "market": m.market.to_string(), "pending_change": pending}),
        || match &pending {
            Some(p) => format!("{what}: scheduled\n{}", super::audit::describe_pending(p, now)),
            None => format!("{what}: done"),
        },
    );
    Ok(())
}

pub async fn run(ctx: &Ctx, a: Admin) -> Result<()> {
    match a {
        Admin::InitMarket { config, quote_mint, relayer } => {
            let market_config = bootstrap::read_config(&config)?;
            let admin = ctx.wallet()?;
            ctx.connect().await?;
            let quote_mint = match quote_mint {
                Some(m) => m,
                None => bootstrap::create_test_quote_mint(&ctx.rpc, ctx.sender(), &admin).await?,
            };
            let relayer = relayer.unwrap_or_else(|| admin.pubkey());
            let keys =
                bootstrap::init_market(&ctx.rpc, ctx.sender(), &admin, quote_mint, market_config, relayer)
                    .await?;
            let value = json!({
                "market": keys.market.to_string(),
                "quote_mint": keys.quote_mint.to_string(),
                "credit_mint": keys.credit_mint.to_string(),
                "treasury": keys.treasury.to_string(),
                "recovery_reserve": keys.recovery_reserve.to_string(),
                "relayer": relayer.to_string(),
            });
            ctx.emit(value, || {
                format!(
                    "market       {}\nquote mint   {}\ncredit mint  {}\nrelayer      {relayer}",
                    keys.market, keys.quote_mint, keys.credit_mint
                )
            });
            Ok(())
        }
        Admin::SetPrices { config } => {
            let c = bootstrap::read_config(&config)?;
            let (m, _) = ctx.market().await?;
            let u = MarketUpdate {
                base_price: Some(c.base_price),
                hour_multipliers_bps: Some(c.hour_multipliers_bps),
                bulk_tiers: Some(c.bulk_tiers),
                reserve_discounts: Some(c.reserve_discounts),
                early_termination_fee_bps: Some(c.early_termination_fee_bps),
                ..Default::default()
            };
            update(ctx, "set prices", &m, u).await
        }
        Admin::SetFinancing { config } => {
            let c = bootstrap::read_config(&config)?;
            let (m, _) = ctx.market().await?;
            update(
                ctx,
                "set financing",
                &m,
                MarketUpdate { financing: Some(c.financing), ..Default::default() },
            )
            .await
        }
        Admin::WithdrawTreasury { amount, to } => withdraw(ctx, Fund::Treasury, &amount, to).await,
        Admin::WithdrawReserve { amount, to } => withdraw(ctx, Fund::Reserve, &amount, to).await,
        Admin::SetRelayer { relayer } => {
            let (m, _) = ctx.market().await?;
            update(ctx, "set relayer", &m, MarketUpdate { relayer: Some(relayer), ..Default::default() })
                .await
        }
        Admin::RevokeRelayer => {
            let (m, _) = ctx.market().await?;
            let revoke = MarketUpdate { relayer: Some(Pubkey::default()), ..Default::default() };
            update(ctx, "revoke relayer", &m, revoke).await
        }
        Admin::Pause => {
            let (m, _) = ctx.market().await?;
            update(ctx, "pause", &m, MarketUpdate { paused: Some(true), ..Default::default() }).await
        }
        Admin::Resume => {
            let (m, _) = ctx.market().await?;
            update(ctx, "resume", &m, MarketUpdate { paused: Some(false), ..Default::default() }).await
        }
        Admin::FundReserve { amount } => {
            let (m, _) = ctx.market().await?;
            let amount = units::parse(&amount, quote_decimals(ctx, &m).await?)?;
            let admin = ctx.wallet()?;
            let from =
                tokens::ensure_ata(&ctx.rpc, ctx.sender(), &admin, &admin.pubkey(), &m.quote_mint).await?;
            let ixn = ix::fund_recovery_reserve(&m, &admin.pubkey(), &from, amount);
            let sig = ctx.send("fund recovery reserve", &admin, &[ixn], &[]).await?;
            ctx.emit(json!({"signature": sig.to_string(), "amount": amount}), || {
                "recovery reserve funded".into()
            });
            Ok(())
        }
        Admin::MintQuote { to, amount } => {
            let (m, _) = ctx.market().await?;
            let amount = units::parse(&amount, quote_decimals(ctx, &m).await?)?;
            let admin = ctx.wallet()?;
            let ata =
                tokens::mint_to_owner(&ctx.rpc, ctx.sender(), &admin, &m.quote_mint, &to, amount).await?;
            ctx.emit(json!({"token_account": ata.to_string(), "amount": amount}), || {
                format!("minted to {ata}")
            });
            Ok(())
        }
    }
}

enum Fund {
    Treasury,
    Reserve,
}

async fn withdraw(ctx: &Ctx, fund: Fund, amount: &str, to: Option<Pubkey>) -> Result<()> {
    let (m, _) = ctx.market().await?;
    let amount = units::parse(amount, quote_decimals(ctx, &m).await?)?;
    let admin = ctx.wallet()?;
    let owner = to.unwrap_or_else(|| admin.pubkey());
    let dest = tokens::ensure_ata(&ctx.rpc, ctx.sender(), &admin, &owner, &m.quote_mint).await?;
    let (what, ixn) = match fund {
        Fund::Treasury => {
            ("withdraw from treasury", ix::withdraw_treasury(&m, &admin.pubkey(), &dest, amount))
        }
        Fund::Reserve => {
            ("withdraw from recovery reserve", ix::withdraw_reserve(&m, &admin.pubkey(), &dest, amount))
        }
    };
    let sig = ctx.send(what, &admin, &[ixn], &[]).await?;
    ctx.emit(json!({"signature": sig.to_string(), "amount": amount, "to": dest.to_string()}), || {
        format!("{what}: {amount} base units to {dest}")
    });
    Ok(())
}
