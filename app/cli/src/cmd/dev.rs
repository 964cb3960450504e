//! Permissionless cranks and localnet development helpers.

use anyhow::{bail, Result};
use clap::Subcommand;
use compux_client::fetch;
use compux_sdk::ix;
use serde_json::{json, Value};
use solana_rpc_client_api::request::RpcRequest;
use solana_sdk::pubkey::Pubkey;

use super::facility;
use crate::ctx::Ctx;
use compux_sdk::units;

#[derive(Subcommand)]
pub enum Crank {
    /// Bring a facility's status up to date (delinquent, defaulted) and charge late fees.
    Refresh { facility: Pubkey },
    /// Release a facility's next scheduled top-up when due.
    Release { facility: Pubkey },
    /// Run an owner's auto-refill when its vault is below the threshold.
    AutoRefill { owner: Pubkey },
    /// Apply the market's pending parameter change once its update delay has passed.
    ApplyUpdate,
}

#[derive(Subcommand)]
pub enum Dev {
    /// Move the localnet's clock forward (compux_setClock), by a duration like 30d or to
    /// a unix timestamp.
    Warp {
        /// How far to move, like 30d, 12h, 90m.
        #[arg(long, conflicts_with = "to", required_unless_present = "to")]
        by: Option<String>,
        /// Unix timestamp to move to.
        #[arg(long)]
        to: Option<i64>,
    },
}

pub async fn crank(ctx: &Ctx, c: Crank) -> Result<()> {
    let payer = ctx.wallet()?;
    let (what, ixn) = match c {
        Crank::Refresh { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            ("refresh facility", ix::refresh_facility(&m, &f))
        }
        Crank::Release { facility: address } => {
            let (m, f, _) = facility(ctx, &address).await?;
            ("release tranche", ix::release_tranche(&m, &f))
        }
        Crank::AutoRefill { owner } => {
            let (m, _) = ctx.market().await?;
            let account: compux_sdk::state::CreditAccount =
                fetch::account_state(&ctx.rpc, &m.credit_account(&owner).address)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("{owner} has no credit account in this market"))?;
            anyhow::ensure!(
                account.auto_refill.enabled(),
                "auto-refill is not configured for {owner}: the owner turns it on with `compux auto-refill`"
            );
            ("auto-refill", ix::auto_refill(&m, &owner, &account.auto_refill.source))
        }
        Crank::ApplyUpdate => {
            let (m, market) = ctx.market().await?;
            let pending = fetch::pending_change(&ctx.rpc, &m, &market)
                .await?
                .ok_or_else(|| anyhow::anyhow!("market {} has no pending parameter change", m.market))?;
            let now = fetch::clock(&ctx.rpc).await?.unix_timestamp;
            anyhow::ensure!(
                now >= pending.effective_at,
                "the parameter change applies from {} (in {}): try again then",
                units::format_utc(pending.effective_at),
                units::format_secs(pending.effective_at - now)
            );
            anyhow::ensure!(
                now <= pending.expires_at,
                "the parameter change expired at {}, unapplied: the admin must schedule it again",
                units::format_utc(pending.expires_at)
            );
            ("apply market update", ix::apply_market_update(&m))
        }
    };
    let sig = ctx.send(what, &payer, &[ixn], &[]).await?;
    ctx.emit(json!({"signature": sig.to_string()}), || format!("{what}: done"));
    Ok(())
}

pub async fn dev(ctx: &Ctx, d: Dev) -> Result<()> {
    match d {
        Dev::Warp { by, to } => {
            ctx.connect().await?;
            let now = fetch::clock(&ctx.rpc).await?.unix_timestamp;
            let target = match (by, to) {
                (Some(by), _) => now + units::parse_duration(&by)?,
                (None, Some(to)) => to,
                (None, None) => bail!("give --by or --to"),
            };
            let clock: Value = ctx
                .rpc
                .send(RpcRequest::Custom { method: "compux_setClock" }, json!([target]))
                .await
                .map_err(|e| {
                    anyhow::anyhow!("the chain refused to move its clock: {e} (only the compux localnet can)")
                })?;
            ctx.emit(json!({"unix_timestamp": clock["unix_timestamp"]}), || {
                format!("chain clock: {} (was {now})", clock["unix_timestamp"])
            });
            Ok(())
        }
    }
}
