//! Borrower commands: accept an offer, repay (late fees, then interest, then principal),
//! close a repaid facility.

use anyhow::Result;
use clap::Subcommand;
use compux_client::{fetch, tokens};
use compux_sdk::constants::CREDIT_DECIMALS;
use compux_sdk::ix;
use compux_sdk::state::{financed_credits, Facility};
use serde_json::json;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{ensure_credit_account, facility, quote_decimals};
use crate::ctx::Ctx;
use compux_sdk::units;

#[derive(Subcommand)]
pub enum Borrower {
    /// Accept an offer made to the wallet: credits are minted into the facility's escrow
    /// and the upfront share is released. The terms read now are the terms agreed: the
    /// acceptance fails if they, or the credits they mint, differ when it lands.
    Accept {
        facility: Pubkey,
        /// The fewest credits to accept (whole credits); by default what the terms mint at
        /// today's base price.
        #[arg(long)]
        min_credits: Option<String>,
    },
    /// Repay: "all" pays everything owed now; otherwise an amount in quote tokens.
    Repay { facility: Pubkey, amount: String },
    /// Close a repaid (or recovered) facility once its financing period and the day of
    /// settlement after it have passed: unused credits become standard credits (or are
    /// burned, per the terms) and rent goes back.
    Close { facility: Pubkey },
}

pub async fn run(ctx: &Ctx, b: Borrower) -> Result<()> {
    let borrower = ctx.wallet()?;
    let (what, sig, address) = match b {
        Borrower::Accept { facility: address, min_credits } => {
            let (m, f, state) = facility(ctx, &address).await?;
            let min_credits = match min_credits {
                Some(c) => units::parse(&c, CREDIT_DECIMALS)?,
                None => {
                    let (_, market) = fetch::market(&ctx.rpc, &m.market).await?;
                    let t = &state.terms;
                    financed_credits(t.principal, market.base_price, t.credit_multiplier_bps)
                        .unwrap_or(u64::MAX)
                }
            };
            ensure_credit_account(ctx, &m, &borrower).await?;
            let ixn = ix::accept_facility(&m, &f, &borrower.pubkey(), state.terms, min_credits);
            let sig = ctx.send("accept facility", &borrower, &[ixn], &[]).await?;
            ("accepted", sig, address)
        }
        Borrower::Repay { facility: address, amount } => {
            let (m, f, _) = facility(ctx, &address).await?;
            let amount = if amount == "all" {
                u64::MAX
            } else {
                units::parse(&amount, quote_decimals(ctx, &m).await?)?
            };
            let from =
                tokens::ensure_ata(&ctx.rpc, ctx.sender(), &borrower, &borrower.pubkey(), &m.quote_mint)
                    .await?;
            let ixn = ix::repay(&m, &f, &borrower.pubkey(), &from, amount);
            let sig = ctx.send("repay", &borrower, &[ixn], &[]).await?;
            ("repaid", sig, address)
        }
        Borrower::Close { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            let ixn = ix::close_facility(&m, &f, &borrower.pubkey());
            let sig = ctx.send("close facility", &borrower, &[ixn], &[]).await?;
            ("closed", sig, address)
        }
    };
    let state: Option<Facility> = fetch::account_state(&ctx.rpc, &address).await?;
    let value = json!({
        "signature": sig.to_string(),
        "facility": address.to_string(),
        "status": state.as_ref().map(|f| format!("{:?}", f.status)),
        "next_due_ts": state.as_ref().map(|f| f.loan.next_due_ts),
        "next_due_amount": state.as_ref().map(|f| f.loan.next_due_amount),
    });
    let decimals = match &state {
        Some(f) => {
            Some(quote_decimals(ctx, &compux_client::fetch::market(&ctx.rpc, &f.market).await?.0).await?)
        }
        None => None,
    };
    ctx.emit(value, || match (&state, decimals) {
        (Some(f), Some(d)) if f.loan.next_due_ts > 0 => format!(
            "facility {address} {what}: {:?}; next installment {} quote tokens due {}",
            f.status,
            units::format(f.loan.next_due_amount, d),
            units::format_utc(f.loan.next_due_ts)
        ),
        (Some(f), _) => format!("facility {address} {what}: {:?}", f.status),
        (None, _) => format!("facility {address} {what}"),
    });
    Ok(())
}
