//! Borrower commands: accept an offer, repay (late fees, then interest, then principal),
//! close a repaid facility.

use anyhow::Result;
use clap::Subcommand;
use compux_client::{fetch, tokens, Progress};
use compux_sdk::ix;
use compux_sdk::state::Facility;
use serde_json::json;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{ensure_credit_account, facility, quote_decimals};
use crate::ctx::Ctx;
use compux_sdk::units;

#[derive(Subcommand)]
pub enum Borrower {
    /// Accept an offer made to the wallet: credits are minted into the facility's escrow
    /// and the upfront share is released.
    Accept { facility: Pubkey },
    /// Repay: "all" pays everything owed now; otherwise an amount in quote tokens.
    Repay { facility: Pubkey, amount: String },
    /// Close a repaid facility: unused credits become standard credits (or are burned, per
    /// the terms) and rent goes back.
    Close { facility: Pubkey },
}

pub async fn run(ctx: &Ctx, b: Borrower) -> Result<()> {
    let borrower = ctx.wallet()?;
    let (what, sig, address) = match b {
        Borrower::Accept { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            ensure_credit_account(ctx, &m, &borrower).await?;
            let sig = ctx
                .send("accept facility", &borrower, &[ix::accept_facility(&m, &f, &borrower.pubkey())], &[])
                .await?;
            ("accepted", sig, address)
        }
        Borrower::Repay { facility: address, amount } => {
            let (m, f, state) = facility(ctx, &address).await?;
            let amount = if amount == "all" {
                u64::MAX
            } else {
                units::parse(&amount, quote_decimals(ctx, &m).await?)?
            };
            let from =
                tokens::ensure_ata(&ctx.rpc, Progress::Stderr, &borrower, &borrower.pubkey(), &m.quote_mint)
                    .await?;
            let ixn = ix::repay(&m, &f, &borrower.pubkey(), &from, &state.lender_quote, amount);
            let sig = ctx.send("repay", &borrower, &[ixn], &[]).await?;
            ("repaid", sig, address)
        }
        Borrower::Close { facility: address } => {
            let (m, f, state) = facility(ctx, &address).await?;
            let ixn = ix::close_facility(&m, &f, &borrower.pubkey(), &state.lender_quote);
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
