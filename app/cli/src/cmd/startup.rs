//! Startup commands: standard credits, transfers, reserved credits, auto-refill.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use compux_client::{fetch, tokens};
use compux_sdk::ix::{self, AutoRefillParams, ReserveParams};
use compux_sdk::math::{pricing, reservation};
use compux_sdk::state::CreditAccount;
use serde_json::json;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{ensure_credit_account, quote_decimals};
use crate::ctx::Ctx;
use compux_sdk::units;

const CREDIT_DECIMALS: u8 = 6;

#[derive(Args)]
pub struct BuyArgs {
    /// Credits to buy (bulk bonus credits come on top).
    credits: String,
    /// Most quote tokens to pay; defaults to the price quoted now, so a change of hour
    /// (and price) between quote and confirmation fails instead of charging more.
    #[arg(long)]
    max_quote: Option<String>,
    /// Fewest credits to receive, bonus included; defaults to the credits and bonus quoted
    /// now, so an admin change of the bulk tiers before the purchase lands fails it
    /// instead of delivering less.
    #[arg(long)]
    min_credits: Option<String>,
}

#[derive(Args)]
pub struct TransferArgs {
    /// Credits to move (standard credits only; financed credits never move).
    #[arg(required_unless_present = "cancel")]
    credits: Option<String>,
    /// The receiving wallet; it must have a credit account in the market.
    #[arg(required_unless_present = "cancel")]
    to: Option<Pubkey>,
    /// Withdraw the announced notice instead: the relayer may spend those credits again.
    #[arg(long, conflicts_with_all = ["credits", "to"])]
    cancel: bool,
}

#[derive(Args)]
pub struct ReserveArgs {
    /// Credits delivered each period.
    #[arg(long)]
    credits_per_period: String,
    /// Number of periods, at least two. The discount tier is chosen by the term committed
    /// beyond the first period (claimable at once); cancelling or missing a period forfeits
    /// the early-termination fee and the discount already taken.
    #[arg(long)]
    periods: u16,
    /// Period length, like 30d.
    #[arg(long, default_value = "30d")]
    period: String,
    /// Most quote tokens per credit to lock; defaults to the price quoted now.
    #[arg(long)]
    max_price: Option<String>,
    /// Most quote tokens to take as the deposit; defaults to the deposit quoted now.
    #[arg(long)]
    max_deposit: Option<String>,
    /// Most quote tokens the early-termination fee (forfeited on cancel or a missed
    /// period) may be; defaults to the fee quoted now. With the two above, an admin change
    /// of the price, discounts or fee before the reservation lands fails it.
    #[arg(long)]
    max_fee: Option<String>,
}

#[derive(Args)]
pub struct AutoRefillArgs {
    /// Refill when the vault holds fewer credits than this.
    #[arg(long, required_unless_present = "off")]
    threshold: Option<String>,
    /// Credits bought per refill.
    #[arg(long, required_unless_present = "off")]
    refill: Option<String>,
    /// Most quote tokens one refill may cost.
    #[arg(long, required_unless_present = "off")]
    max_quote_per_refill: Option<String>,
    /// Fewest credits one refill may deliver, bonus included; defaults to the refill and
    /// its bonus at today's bulk tiers, so a refill fails rather than delivering less if
    /// the admin removes them (lower it to accept that).
    #[arg(long)]
    min_credits_per_refill: Option<String>,
    /// Total quote tokens auto-refill may spend.
    #[arg(long, required_unless_present = "off")]
    cap: Option<String>,
    /// Turn auto-refill off and revoke the delegation.
    #[arg(long, conflicts_with_all = ["threshold", "refill", "max_quote_per_refill", "min_credits_per_refill", "cap"])]
    off: bool,
}

pub async fn buy(ctx: &Ctx, a: BuyArgs) -> Result<()> {
    let credits = units::parse(&a.credits, CREDIT_DECIMALS)?;
    anyhow::ensure!(credits > 0, "buy at least one base unit of credits");
    let (m, market) = ctx.market().await?;
    let decimals = quote_decimals(ctx, &m).await?;
    let owner = ctx.wallet()?;
    let now = fetch::clock(&ctx.rpc).await?.unix_timestamp;
    let quote = pricing::price_purchase(
        credits,
        market.base_price,
        &market.hour_multipliers_bps,
        market.bulk_tiers(),
        now,
    )
    .ok_or_else(|| anyhow!("{} credits is too large to price", a.credits))?;
    let max_quote = match &a.max_quote {
        Some(q) => units::parse(q, decimals)?,
        None => quote.quote_in,
    };
    let min_credits = match &a.min_credits {
        Some(c) => units::parse(c, CREDIT_DECIMALS)?,
        None => {
            quote.total_credits().ok_or_else(|| anyhow!("{} credits is too large to price", a.credits))?
        }
    };
    eprintln!(
        "price now (UTC hour {}, x{}): {} quote tokens for {} credits + {} bonus",
        quote.hour,
        units::format(quote.multiplier_bps as u64, 4),
        units::format(quote.quote_in, decimals),
        units::format(credits, CREDIT_DECIMALS),
        units::format(quote.bonus_credits, CREDIT_DECIMALS)
    );
    ensure_credit_account(ctx, &m, &owner).await?;
    let from = tokens::ensure_ata(&ctx.rpc, ctx.sender(), &owner, &owner.pubkey(), &m.quote_mint).await?;
    let sig = ctx
        .send(
            "buy credits",
            &owner,
            &[ix::buy_credits(&m, &owner.pubkey(), &from, credits, max_quote, min_credits)],
            &[],
        )
        .await?;
    let balance = fetch::token_amount(&ctx.rpc, &m.credit_account(&owner.pubkey()).vault).await?;
    ctx.emit(
        json!({"signature": sig.to_string(), "credits": credits, "bonus_credits": quote.bonus_credits,
               "quote_in": quote.quote_in, "balance": balance}),
        || format!("credit balance: {} credits", units::format(balance, CREDIT_DECIMALS)),
    );
    Ok(())
}

/// Moves credits in two steps, as the program requires: the first run announces them (the
/// relayer stops spending them at once), a run after the market's notice moves them.
pub async fn transfer(ctx: &Ctx, a: TransferArgs) -> Result<()> {
    let (m, market) = ctx.market().await?;
    let owner = ctx.wallet()?;
    let (Some(credits), Some(to)) = (a.credits, a.to) else {
        let ix = ix::announce_transfer(&m, &owner.pubkey(), 0);
        let sig = ctx.send("withdraw the transfer notice", &owner, &[ix], &[]).await?;
        ctx.emit(json!({"signature": sig.to_string(), "announced": 0}), || {
            "transfer notice withdrawn: the relayer may spend those credits again".into()
        });
        return Ok(());
    };
    let amount = units::parse(&credits, CREDIT_DECIMALS)?;
    let notice = credit_account(ctx, &m, &owner.pubkey())
        .await?
        .ok_or_else(|| {
            anyhow!("{} has no credit account in this market (`compux buy` opens one)", owner.pubkey())
        })?
        .notice;
    let now = fetch::clock(&ctx.rpc).await?.unix_timestamp;
    let shown = units::format(amount, CREDIT_DECIMALS);
    if notice.amount < amount {
        let ix = ix::announce_transfer(&m, &owner.pubkey(), amount);
        let sig = ctx.send("announce the transfer", &owner, &[ix], &[]).await?;
        // The chain's time, as the program recorded it.
        let account = credit_account(ctx, &m, &owner.pubkey()).await?;
        let ready_at = account.map_or(now + market.transfer_notice_secs, |a| a.notice.ready_at);
        ctx.emit(
            json!({"signature": sig.to_string(), "announced": amount, "ready_at": ready_at, "to": to.to_string()}),
            || {
                format!(
                    "announced {shown} credits: the relayer stops spending them now, and they can move from \
                     {} (after the market's {} min notice, once the usage charged before it is burned). \
                     Run this command again then.",
                    units::format_utc(ready_at),
                    market.transfer_notice_secs / 60
                )
            },
        );
        return Ok(());
    }
    if now < notice.ready_at {
        bail!(
            "{shown} credits are announced but may move only from {} ({} s from now): run this command again then",
            units::format_utc(notice.ready_at),
            notice.ready_at - now
        );
    }
    let sig = ctx
        .send("transfer credits", &owner, &[ix::transfer_credits(&m, &owner.pubkey(), &to, amount)], &[])
        .await?;
    ctx.emit(json!({"signature": sig.to_string(), "credits": amount, "to": to.to_string()}), || {
        format!("moved {shown} credits to {to}")
    });
    Ok(())
}

async fn credit_account(
    ctx: &Ctx,
    m: &compux_sdk::MarketKeys,
    owner: &Pubkey,
) -> Result<Option<CreditAccount>> {
    fetch::account_state(&ctx.rpc, &m.credit_account(owner).address).await
}

pub async fn reserve(ctx: &Ctx, a: ReserveArgs) -> Result<()> {
    let credits_per_period = units::parse(&a.credits_per_period, CREDIT_DECIMALS)?;
    let period_secs = units::parse_duration(&a.period)?;
    let (m, market) = ctx.market().await?;
    let decimals = quote_decimals(ctx, &m).await?;
    let owner = ctx.wallet()?;
    anyhow::ensure!(
        a.periods >= 2,
        "a reservation commits to at least two periods (the discount is earned by the periods after the first); use `compux buy` for one"
    );
    let q = reservation::quote_reservation(
        credits_per_period,
        a.periods,
        period_secs,
        market.base_price,
        market.reserve_discounts(),
        market.early_termination_fee_bps,
    )
    .ok_or_else(|| anyhow!("this reservation is too large to price: fewer credits or periods"))?;
    let (price, discount) = (q.locked_price, q.discount_bps);
    let bound = |given: &Option<String>, quoted: u64| match given {
        Some(v) => units::parse(v, decimals),
        None => Ok(quoted),
    };
    let (max_price, max_deposit, max_fee) =
        (bound(&a.max_price, price)?, bound(&a.max_deposit, q.deposit)?, bound(&a.max_fee, q.fee)?);
    eprintln!(
        "quoted now: {} per credit ({}% off), deposit {} of which {} is the early-termination fee",
        units::format(price, decimals),
        units::format(discount as u64, 2),
        units::format(q.deposit, decimals),
        units::format(q.fee, decimals)
    );
    ensure_credit_account(ctx, &m, &owner).await?;
    let nonce = credit_account(ctx, &m, &owner.pubkey()).await?.map_or(0, |c| c.reservation_count);
    let from = tokens::ensure_ata(&ctx.rpc, ctx.sender(), &owner, &owner.pubkey(), &m.quote_mint).await?;
    let p = ReserveParams {
        credits_per_period,
        periods: a.periods,
        period_secs,
        max_price,
        max_deposit,
        max_fee,
    };
    let sig = ctx.send("reserve", &owner, &[ix::reserve(&m, &owner.pubkey(), &from, nonce, p)], &[]).await?;
    ctx.emit(
        json!({"signature": sig.to_string(), "nonce": nonce, "locked_price": price, "discount_bps": discount}),
        || {
            format!(
                "reservation {nonce}: {} credits x {} periods at {} per credit ({}% off); claim the first with `compux claim {nonce}`",
                units::format(credits_per_period, CREDIT_DECIMALS),
                a.periods,
                units::format(price, decimals),
                units::format(discount as u64, 2)
            )
        },
    );
    Ok(())
}

pub async fn claim(ctx: &Ctx, nonce: u64) -> Result<()> {
    let (m, _) = ctx.market().await?;
    let owner = ctx.wallet()?;
    let from = tokens::ensure_ata(&ctx.rpc, ctx.sender(), &owner, &owner.pubkey(), &m.quote_mint).await?;
    let sig =
        ctx.send("claim period", &owner, &[ix::claim_period(&m, &owner.pubkey(), &from, nonce)], &[]).await?;
    let balance = fetch::token_amount(&ctx.rpc, &m.credit_account(&owner.pubkey()).vault).await?;
    ctx.emit(json!({"signature": sig.to_string(), "balance": balance}), || {
        format!("credit balance: {} credits", units::format(balance, CREDIT_DECIMALS))
    });
    Ok(())
}

pub async fn cancel_reservation(ctx: &Ctx, nonce: u64) -> Result<()> {
    let (m, _) = ctx.market().await?;
    let owner = ctx.wallet()?;
    let to = tokens::ensure_ata(&ctx.rpc, ctx.sender(), &owner, &owner.pubkey(), &m.quote_mint).await?;
    let sig = ctx
        .send("cancel reservation", &owner, &[ix::cancel_reservation(&m, &owner.pubkey(), &to, nonce)], &[])
        .await?;
    ctx.emit(json!({"signature": sig.to_string()}), || {
        format!(
            "reservation {nonce} cancelled: the early-termination fee and the discount taken on claimed periods \
             went to the treasury, the rest of the deposit back to your wallet"
        )
    });
    Ok(())
}

pub async fn auto_refill(ctx: &Ctx, a: AutoRefillArgs) -> Result<()> {
    let (m, market) = ctx.market().await?;
    let decimals = quote_decimals(ctx, &m).await?;
    let owner = ctx.wallet()?;
    let credits = |s: &Option<String>| units::parse(s.as_deref().unwrap_or("0"), CREDIT_DECIMALS);
    let quote = |s: &Option<String>| units::parse(s.as_deref().unwrap_or("0"), decimals);
    let p = if a.off {
        AutoRefillParams::default()
    } else {
        let refill_credits = credits(&a.refill)?;
        let min_credits_per_refill = match &a.min_credits_per_refill {
            Some(_) => credits(&a.min_credits_per_refill)?,
            None => pricing::bonus_credits(refill_credits, market.bulk_tiers())
                .and_then(|bonus| refill_credits.checked_add(bonus))
                .ok_or_else(|| anyhow!("a refill of {} credits is too large", refill_credits))?,
        };
        AutoRefillParams {
            threshold: credits(&a.threshold)?,
            refill_credits,
            max_quote_per_refill: quote(&a.max_quote_per_refill)?,
            min_credits_per_refill,
            cap_quote: quote(&a.cap)?,
        }
    };
    ensure_credit_account(ctx, &m, &owner).await?;
    let source = tokens::ensure_ata(&ctx.rpc, ctx.sender(), &owner, &owner.pubkey(), &m.quote_mint).await?;
    let sig = ctx
        .send(
            "configure auto-refill",
            &owner,
            &[ix::configure_auto_refill(&m, &owner.pubkey(), &source, p)],
            &[],
        )
        .await?;
    ctx.emit(json!({"signature": sig.to_string(), "enabled": !a.off}), || {
        if a.off {
            "auto-refill off".into()
        } else {
            format!(
                "auto-refill on: below {} credits buy {} (cap {} quote tokens)",
                units::format(p.threshold, CREDIT_DECIMALS),
                units::format(p.refill_credits, CREDIT_DECIMALS),
                units::format(p.cap_quote, decimals)
            )
        }
    });
    Ok(())
}

pub async fn burn_ceiling(ctx: &Ctx, per_day: &str) -> Result<()> {
    let credits = if per_day == "off" { 0 } else { units::parse(per_day, CREDIT_DECIMALS)? };
    anyhow::ensure!(
        per_day == "off" || credits > 0,
        "a ceiling of 0 would stop every burn: give credits, or \"off\""
    );
    let (m, market) = ctx.market().await?;
    let owner = ctx.wallet()?;
    ensure_credit_account(ctx, &m, &owner).await?;
    let ixn = ix::set_burn_ceiling(&m, &owner.pubkey(), credits);
    let sig = ctx.send("set the burn ceiling", &owner, &[ixn], &[]).await?;
    let account = credit_account(ctx, &m, &owner.pubkey()).await?;
    let pending_at = account.map_or(0, |a| a.burn_ceiling.lower_at);
    ctx.emit(json!({"signature": sig.to_string(), "per_day": credits, "applies_at": pending_at}), || {
        match (credits, pending_at) {
            (0, _) => "no burn ceiling: the relayer may burn up to your balance".into(),
            (_, 0) => format!("burn ceiling: {} credits a day, in force now", units::format(credits, CREDIT_DECIMALS)),
            (_, at) => format!(
                "burn ceiling: {} credits a day from {} (after the market's {} min notice; the relayer admits no \
                 more than it from now)",
                units::format(credits, CREDIT_DECIMALS),
                units::format_utc(at),
                market.transfer_notice_secs / 60
            ),
        }
    });
    Ok(())
}
