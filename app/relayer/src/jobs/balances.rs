//! On-chain balances for the hard cap, refreshed in the background so the hot path never
//! makes an RPC call. For each credit account a key spends from: its vault's balance, and
//! each facility it borrows under in the same market, with the facility's released and
//! unburned credits and whether the lender froze it. One getMultipleAccounts round for the
//! accounts and vaults, and one getProgramAccounts per market for the facilities.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::ids::{Pubkey, Source};
use crate::domain::meter::Meter;
use anyhow::{Context, Result};
use compux_client::fetch;
use compux_sdk::state::{CreditAccount, Facility, FacilityStatus};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;

/// What a facility contributes to its borrower's spendable credits at `now` (unix seconds):
/// (credits, held), or nothing when it has none (offered, recovered, closed). A frozen or
/// matured facility's credits are held: the program settles no usage metered after the
/// freeze or maturity (`Facility::settles_until`).
pub fn facility_source(f: &Facility, now: i64) -> Option<(u64, bool)> {
    use FacilityStatus::*;
    match f.status {
        Active | Delinquent | Defaulted | Repaid | Frozen => {
            let open = matches!(f.settles_until(now), Ok(Some(i64::MAX)));
            Some((f.spendable_credits(), !open))
        }
        Offered | Recovered | Closed => None,
    }
}

/// The RPC client balances are read with: at `confirmed`, as chain events are watched, so a
/// refresh never reads older than the freeze it follows (the client's default, `finalized`,
/// lags by about 32 slots).
pub fn client(rpc_url: &str) -> RpcClient {
    RpcClient::new_with_commitment(
        rpc_url.to_string(),
        solana_rpc_client_api::config::CommitmentConfig::confirmed(),
    )
}

/// Whether the credit account `account` is open on chain (read at `confirmed`).
pub async fn credit_account_exists(rpc_url: &str, account: Pubkey) -> Result<bool> {
    Ok(fetch::account_state::<CreditAccount>(&client(rpc_url), &account).await?.is_some())
}

/// Reads every account's vault and facilities once and records them in the meter, each
/// snapshot with the slot it was read at (an older one than applied is ignored).
pub async fn refresh(rpc: &RpcClient, meter: &Meter, keys: &[Pubkey]) -> Result<()> {
    let vaults = keys.iter().map(|k| compux_sdk::pda::credit_vault(k).0);
    // The chain's clock with them, at the same slot: maturity and the owner's daily burn
    // ceiling are the program's, timed by it (a localnet's clock may be moved).
    let clock = solana_sdk::sysvar::clock::ID;
    let wanted: Vec<Pubkey> = keys.iter().copied().chain(vaults).chain([clock]).collect();
    let (slot, mut fetched) = fetch::accounts_with_slot(rpc, &wanted).await?;
    let clock = fetched.pop().flatten().context("the chain's clock sysvar is missing")?;
    let now = fetch::clock_of(&clock.data)?.unix_timestamp;
    let (states, vaults) = fetched.split_at(keys.len());

    // The (market, owner) of each credit account that exists, and the facilities of those
    // markets by borrower.
    let decoded: Vec<Option<CreditAccount>> =
        states.iter().map(|a| compux_sdk::decode::account::<CreditAccount>(&a.as_ref()?.data).ok()).collect();
    let owners: Vec<Option<(Pubkey, Pubkey)>> =
        decoded.iter().map(|ca| ca.as_ref().map(|ca| (ca.market, ca.owner))).collect();
    let markets: BTreeSet<Pubkey> = owners.iter().flatten().map(|(m, _)| *m).collect();
    // Facilities are found by a program-accounts scan (no slot), then read again by address
    // with the slot they are read at.
    let mut found = Vec::new();
    for market in markets {
        found
            .extend(fetch::facilities_of_market(rpc, &market).await?.into_iter().map(|(address, _)| address));
    }
    let (facility_slot, read) = fetch::accounts_with_slot(rpc, &found).await?;
    let mut facilities: BTreeMap<(Pubkey, Pubkey), Vec<(Pubkey, Facility)>> = BTreeMap::new();
    for (address, account) in found.into_iter().zip(read) {
        if let Some(f) = account.and_then(|a| compux_sdk::decode::account::<Facility>(&a.data).ok()) {
            facilities.entry((f.market, f.terms.borrower)).or_default().push((address, f));
        }
    }

    for (((account, vault), owner), state) in keys.iter().zip(vaults).zip(&owners).zip(&decoded) {
        let account = *account;
        // A vault that does not exist yet holds nothing. The account and its vault come
        // from one getMultipleAccounts call: the same slot, so the balance and settled_seq
        // agree.
        let balance = vault.as_ref().and_then(|v| fetch::token_amount_of(&v.data)).unwrap_or(0);
        // Credits announced to leave the vault are not spent here from the moment the
        // notice is seen: the usage charged before it is burned before they may move.
        let announced = state.as_ref().map_or(0, |ca| ca.notice.amount);
        // Nor more than the owner's daily burn ceiling leaves today (an announced lower
        // ceiling counts at once): usage above it could never be burned.
        let room = state.as_ref().map_or(u64::MAX, |ca| ca.burn_ceiling.room(now));
        let unannounced = balance.saturating_sub(announced);
        meter.set_ceiling_bound(Source::Vault(account), room < unannounced);
        let balance = unannounced.min(room);
        let settled_seq = state.as_ref().map_or(0, |ca| ca.settlement.settled_seq);
        meter.set_chain_at(Source::Vault(account), balance, settled_seq, false, slot);
        let mut sources = Vec::new();
        let mut borrowed: Vec<&(Pubkey, Facility)> =
            owner.and_then(|o| facilities.get(&o)).map(|v| v.iter().collect()).unwrap_or_default();
        // Oldest facility first: its credits are spent before newer ones and the vault.
        borrowed.sort_by_key(|(address, f)| (f.accepted_at, *address));
        for (address, f) in borrowed {
            if let Some((credits, frozen)) = facility_source(f, now) {
                let source = Source::Facility(*address);
                meter.set_chain_at(source, credits, f.settlement.settled_seq, frozen, facility_slot);
                sources.push(source);
            }
        }
        sources.push(Source::Vault(account));
        meter.set_sources(account, sources);
    }
    meter.mark_read();
    Ok(())
}

/// The accounts to keep fresh, asked anew each round (keys come and go).
pub type Accounts = Arc<dyn Fn() -> Vec<Pubkey> + Send + Sync>;

/// From now on the hard cap admits requests only while the last full read is at most
/// `max_age` old; reads the balances once now (the relayer then starts with them).
pub async fn first_refresh(rpc_url: &str, meter: &Meter, accounts: &Accounts, max_age: Duration) {
    meter.require_fresh(max_age);
    if let Err(e) = refresh(&client(rpc_url), meter, &accounts()).await {
        // Until the chain answers, every account has nothing available: requests get 402,
        // never an overdraft.
        tracing::warn!(error = %format!("{e:#}"), "initial balance refresh failed; retrying in the background");
    }
}

/// Refreshes every `every`, and soon after `wake` is notified (a chain event; see
/// `watch.rs`).
pub async fn run(
    rpc_url: String,
    meter: Arc<Meter>,
    accounts: Accounts,
    every: Duration,
    wake: Arc<tokio::sync::Notify>,
) {
    let rpc = client(&rpc_url);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = wake.notified() => {
                // Let a burst of events (one transaction logs several) settle first.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if let Err(e) = refresh(&rpc, &meter, &accounts()).await {
            tracing::warn!(error = %format!("{e:#}"), "balance refresh failed");
        }
    }
}
