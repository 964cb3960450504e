//! The subcommands, one module per role.

mod admin;
mod alerts;
mod audit;
mod borrower;
mod dev;
mod keys;
mod lender;
mod local;
mod startup;
mod status;
mod usage;

use anyhow::Result;
use clap::Subcommand;
use compux_sdk::state::Facility;
use compux_sdk::{FacilityKeys, MarketKeys};
use solana_sdk::pubkey::Pubkey;

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Prove one request's burn: its receipt (the reply's x-compux-receipt header), its
    /// Merkle proof to its batch, the batches against their on-chain events, and the
    /// source's usage_chain. Exits non-zero when anything does not match.
    Prove {
        /// The receipt id.
        receipt: String,
        /// The relayer that served the request.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
        relayer: String,
    },
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the embedded chain: the compux program with the real SPL programs, served on the
    /// Solana JSON-RPC (HTTP, --rpc-port) and PubSub (WebSocket, the next port).
    Localnet(local::LocalnetArgs),
    /// Start everything on this machine: the localnet, a demo market, funded demo wallets
    /// (admin, lender, startup, relayer), four SIMULATED providers (OpenAI, Anthropic, Gemini
    /// and AWS Bedrock protocols) and the relayer with a demo API key, all in a data directory;
    /// prints what runs where.
    Up(local::UpArgs),
    /// Run the relayer (the OpenAI-compatible gateway) from a configuration file. Logs one
    /// line per request on stderr (filter with COMPUX_LOG, e.g. `warn` or `debug`).
    Relayer {
        /// Relayer configuration (TOML): listen address, RPC URL, providers, keys.
        #[arg(long, default_value = "relayer.toml")]
        config: std::path::PathBuf,
        /// Log lines as text or as JSON objects (for log pipelines).
        #[arg(long, value_enum, default_value_t)]
        log_format: crate::logs::LogFormat,
    },
    /// Create a new wallet keypair file (the default wallet unless --outfile).
    Keygen {
        /// Where to write it; defaults to --keypair or ~/.config/solana/id.json.
        #[arg(long, short = 'o')]
        outfile: Option<std::path::PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Request SOL from the localnet's faucet (for fees and rent).
    Airdrop {
        /// Amount in SOL.
        sol: String,
        /// Recipient; the wallet by default.
        to: Option<Pubkey>,
    },
    /// Balances, credit accounts, reservations and facilities (with their schedule).
    Status {
        /// Whose status; the wallet by default.
        owner: Option<Pubkey>,
        /// Also ask this relayer (its OpenAI base URL, e.g. http://127.0.0.1:8080/v1) for
        /// settlement incidents: the wallet's usage it cannot burn on chain.
        #[arg(long)]
        relayer: Option<String>,
    },
    /// Operator commands (the wallet is the market's admin).
    #[command(subcommand)]
    Admin(admin::Admin),
    /// Buy standard credits at the current price (hour-of-day pricing, bulk bonus on top).
    Buy(startup::BuyArgs),
    /// Move standard credits to another owner's credit account in the same market.
    Transfer(startup::TransferArgs),
    /// Reserve credits for a term at today's price less the term discount.
    Reserve(startup::ReserveArgs),
    /// Pay for and receive the current period of a reservation.
    Claim {
        /// The reservation's number (see `compux status`).
        nonce: u64,
    },
    /// End a reservation early; the early-termination deposit goes to the treasury.
    CancelReservation { nonce: u64 },
    /// Configure auto-refill (a permissionless crank buys when the vault runs low).
    AutoRefill(startup::AutoRefillArgs),
    /// Cap what the relayer may burn from your vault per UTC day, so a leaked relayer key
    /// burns no more: credits, or "off". A higher ceiling applies at once, a lower one
    /// after the market's transfer notice (usage already served must still burn).
    BurnCeiling {
        /// Credits per day, or "off" for no ceiling.
        per_day: String,
    },
    /// Lender commands: offer, cancel an offer, freeze a defaulted facility, recover.
    #[command(subcommand)]
    Lender(lender::Lender),
    /// Borrower commands: accept an offer, repay, close a repaid facility.
    #[command(subcommand)]
    Borrower(borrower::Borrower),
    /// Permissionless cranks anyone may send.
    #[command(subcommand)]
    Crank(dev::Crank),
    /// Verify a market from chain data alone: supply, escrows, loans, statuses, freezes,
    /// reserve coverage. Exits non-zero on any violation. `audit prove <receipt>` checks one
    /// request's burn.
    Audit {
        #[command(subcommand)]
        what: Option<AuditCommand>,
        /// Also check a relayer's published charges (`/v1/settlement/accounts`) against
        /// the chain's burns, per credit account and facility: burned vs charged, and what
        /// is charged and not burned yet.
        #[arg(long)]
        relayer: Option<String>,
    },
    /// Run only the settler of a relayer configuration (burns metered usage on chain).
    Settler {
        /// Relayer configuration (TOML) with a [settler] section.
        #[arg(long, default_value = "relayer.toml")]
        config: std::path::PathBuf,
        /// Log lines as text or as JSON objects.
        #[arg(long, value_enum, default_value_t)]
        log_format: crate::logs::LogFormat,
    },
    /// API keys for the relayer, issued to the wallet that signs a challenge.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// What an API key's credit account spent through the relayer (by day, key, model,
    /// provider) and where its credits stand.
    Usage(usage::UsageArgs),
    /// Low-balance webhooks (HMAC-signed) for an API key's credit account.
    #[command(subcommand)]
    Alerts(alerts::Alerts),
    /// Localnet development helpers.
    #[command(subcommand)]
    Dev(dev::Dev),
}

pub async fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Localnet(args) => local::localnet(ctx, args).await,
        Command::Up(args) => local::up(ctx, args).await,
        Command::Relayer { config, log_format } => {
            let _logs = crate::logs::init(log_format, "warn,compux_relayer=info");
            local::relayer(ctx, &config).await
        }
        Command::Keygen { outfile, force } => local::keygen(ctx, outfile, force),
        Command::Airdrop { sol, to } => local::airdrop(ctx, &sol, to).await,
        Command::Status { owner, relayer } => status::status(ctx, owner, relayer.as_deref()).await,
        Command::Admin(a) => admin::run(ctx, a).await,
        Command::Buy(a) => startup::buy(ctx, a).await,
        Command::Transfer(a) => startup::transfer(ctx, a).await,
        Command::Reserve(a) => startup::reserve(ctx, a).await,
        Command::Claim { nonce } => startup::claim(ctx, nonce).await,
        Command::CancelReservation { nonce } => startup::cancel_reservation(ctx, nonce).await,
        Command::AutoRefill(a) => startup::auto_refill(ctx, a).await,
        Command::BurnCeiling { per_day } => startup::burn_ceiling(ctx, &per_day).await,
        Command::Lender(l) => lender::run(ctx, l).await,
        Command::Borrower(b) => borrower::run(ctx, b).await,
        Command::Crank(c) => dev::crank(ctx, c).await,
        Command::Audit { what: None, relayer } => audit::audit(ctx, relayer.as_deref()).await,
        Command::Audit { what: Some(AuditCommand::Prove { receipt, relayer }), .. } => {
            audit::prove(ctx, &relayer, &receipt).await
        }
        Command::Settler { config, log_format } => {
            let _logs = crate::logs::init(log_format, "warn,compux_relayer=info");
            let _settler = compux_relayer::start_settler(&config).await?;
            eprintln!("settler running (Ctrl-C stops it)");
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        Command::Dev(d) => dev::dev(ctx, d).await,
        Command::Usage(a) => usage::run(ctx, a).await,
        Command::Alerts(a) => alerts::run(ctx, a).await,
        Command::Keys(k) => keys::run(ctx, k).await,
    }
}

/// A facility by address, with the market it belongs to and its derived keys.
async fn facility(ctx: &Ctx, address: &Pubkey) -> Result<(MarketKeys, FacilityKeys, Facility)> {
    ctx.connect().await?;
    let f: Facility = compux_client::fetch::account_state(&ctx.rpc, address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no facility at {address} (see `compux status` for yours)"))?;
    let (m, _) = compux_client::fetch::market(&ctx.rpc, &f.market).await?;
    let keys = FacilityKeys::derive(&f.market, &f.lender, f.nonce);
    anyhow::ensure!(keys.address == *address, "{address} is not a facility PDA of the compux program");
    Ok((m, keys, f))
}

/// The quote token's decimals, for reading and printing quote amounts.
async fn quote_decimals(ctx: &Ctx, m: &MarketKeys) -> Result<u8> {
    Ok(ctx.rpc.get_token_supply(&m.quote_mint).await?.decimals)
}

/// Opens the owner's credit account in the market when it has none yet.
async fn ensure_credit_account(
    ctx: &Ctx,
    m: &MarketKeys,
    owner: &solana_sdk::signature::Keypair,
) -> Result<()> {
    use solana_sdk::signature::Signer;
    let c = m.credit_account(&owner.pubkey());
    if ctx.rpc.get_account_with_commitment(&c.address, ctx.rpc.commitment()).await?.value.is_none() {
        ctx.send(
            "open credit account",
            owner,
            &[compux_sdk::ix::open_credit_account(m, &owner.pubkey())],
            &[],
        )
        .await?;
    }
    Ok(())
}
