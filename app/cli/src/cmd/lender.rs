//! Lender commands: offer a facility from the wallet, cancel it while unaccepted, freeze a
//! defaulted facility's escrow, recover from the reserve.

use anyhow::Result;
use clap::{Args, Subcommand};
use compux_client::{fetch, tokens};
use compux_sdk::state::{FacilityTerms, UnusedCredits};
use compux_sdk::{ix, FacilityKeys};
use serde_json::json;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{facility, quote_decimals};
use crate::ctx::Ctx;
use compux_sdk::units;

#[derive(Args)]
pub struct OfferArgs {
    /// The only wallet that may accept.
    #[arg(long)]
    borrower: Pubkey,
    /// Principal in quote tokens, moved from the wallet into the facility vault now.
    #[arg(long)]
    principal: String,
    /// Annual interest rate in basis points (1200 = 12 %).
    #[arg(long, default_value_t = 1_200)]
    apr_bps: u16,
    /// Number of equal installments.
    #[arg(long, default_value_t = 4)]
    installments: u16,
    /// Installment period, like 30d.
    #[arg(long, default_value = "30d")]
    period: String,
    /// Credits minted = principal at the base price x this (15000 = 1.5x); at most the
    /// market's cap for the principal (`compux audit --json` prints the market's financing
    /// policy: caps by principal, term, grace and default bounds).
    #[arg(long, default_value_t = 15_000)]
    multiplier_bps: u16,
    /// Share of the credits released at acceptance.
    #[arg(long, default_value_t = 2_500)]
    upfront_bps: u16,
    /// Equal top-ups of the rest, one per period.
    #[arg(long, default_value_t = 3)]
    tranches: u16,
    /// Delinquent (and a late fee) this long after a missed due date.
    #[arg(long, default_value = "5d")]
    grace: String,
    /// Defaulted this long after a missed due date.
    #[arg(long, default_value = "20d")]
    default_after: String,
    /// Late fee per missed installment, in basis points of the installment.
    #[arg(long, default_value_t = 500)]
    late_fee_bps: u16,
    /// Burn unused credits at close instead of converting them to standard credits.
    #[arg(long)]
    forfeit_unused: bool,
    /// Lowest market recovery rate, in basis points, to lend at: the market's rate is
    /// recorded when the borrower accepts, and an admin change below this fails the
    /// acceptance instead. Defaults to the market's rate now.
    #[arg(long)]
    min_recovery_rate_bps: Option<u16>,
}

#[derive(Subcommand)]
pub enum Lender {
    /// Offer a financed-credit facility to a borrower.
    Offer(OfferArgs),
    /// Take back the principal of an offer not yet accepted.
    CancelOffer { facility: Pubkey },
    /// Freeze the unused credits of a defaulted (or matured, unpaid) facility.
    Freeze { facility: Pubkey },
    /// After the settlement window: sell as many unused credits as the debt needs to the
    /// recovery reserve; the payment lands in the facility vault.
    Recover { facility: Pubkey },
    /// Move repayments and recoveries from the facility vault to the wallet: "all" or an
    /// amount in quote tokens.
    Withdraw {
        facility: Pubkey,
        #[arg(default_value = "all")]
        amount: String,
    },
}

pub async fn run(ctx: &Ctx, l: Lender) -> Result<()> {
    let lender = ctx.wallet()?;
    let (what, sig, address) = match l {
        Lender::Offer(a) => {
            let (m, market) = ctx.market().await?;
            let decimals = quote_decimals(ctx, &m).await?;
            let terms = FacilityTerms {
                borrower: a.borrower,
                principal: units::parse(&a.principal, decimals)?,
                apr_bps: a.apr_bps,
                installments: a.installments,
                period_secs: units::parse_duration(&a.period)?,
                credit_multiplier_bps: a.multiplier_bps,
                upfront_bps: a.upfront_bps,
                tranches: a.tranches,
                grace_secs: units::parse_duration(&a.grace)?,
                default_after_secs: units::parse_duration(&a.default_after)?,
                late_fee_bps: a.late_fee_bps,
                unused_at_close: if a.forfeit_unused {
                    UnusedCredits::Forfeit
                } else {
                    UnusedCredits::Convert
                },
                min_recovery_rate_bps: a.min_recovery_rate_bps.unwrap_or(market.financing.recovery_rate_bps),
            };
            // The address is the lender's own (its key is in the seeds): any number its other
            // facilities do not use. The clock's nanoseconds are one.
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let f = FacilityKeys::derive(&m.market, &lender.pubkey(), nonce);
            let from =
                tokens::ensure_ata(&ctx.rpc, ctx.sender(), &lender, &lender.pubkey(), &m.quote_mint).await?;
            let sig =
                ctx.send("offer facility", &lender, &[ix::offer_facility(&m, &f, &from, terms)], &[]).await?;
            ("offered", sig, f.address)
        }
        Lender::CancelOffer { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            let to =
                tokens::ensure_ata(&ctx.rpc, ctx.sender(), &lender, &lender.pubkey(), &m.quote_mint).await?;
            let sig = ctx.send("cancel offer", &lender, &[ix::cancel_offer(&m, &f, &to)], &[]).await?;
            ("cancelled", sig, address)
        }
        Lender::Freeze { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            // Bring the status up to date first, so a facility that just defaulted freezes.
            let ixs = [ix::refresh_facility(&m, &f), ix::freeze_escrow(&m, &f, &lender.pubkey())];
            let sig = ctx.send("freeze escrow", &lender, &ixs, &[]).await?;
            ("frozen", sig, address)
        }
        Lender::Recover { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            let sig = ctx.send("recover", &lender, &[ix::recover(&m, &f)], &[]).await?;
            ("recovered", sig, address)
        }
        Lender::Withdraw { facility: address, amount } => {
            let (m, f, state) = facility(ctx, &address).await?;
            let held = fetch::token_amount(&ctx.rpc, &state.quote_vault).await?;
            let amount =
                if amount == "all" { held } else { units::parse(&amount, quote_decimals(ctx, &m).await?)? };
            anyhow::ensure!(amount > 0, "the facility vault of {address} is empty: nothing to withdraw");
            let to =
                tokens::ensure_ata(&ctx.rpc, ctx.sender(), &lender, &lender.pubkey(), &m.quote_mint).await?;
            let sig = ctx
                .send("withdraw repayments", &lender, &[ix::withdraw_repayments(&m, &f, &to, amount)], &[])
                .await?;
            ("withdrawn from", sig, address)
        }
    };
    let state: Option<compux_sdk::state::Facility> = fetch::account_state(&ctx.rpc, &address).await?;
    let status = state.map(|f| format!("{:?}", f.status)).unwrap_or_else(|| "closed".into());
    ctx.emit(
        json!({"signature": sig.to_string(), "facility": address.to_string(), "status": status}),
        || format!("facility {address} {what} (status {status})"),
    );
    Ok(())
}
