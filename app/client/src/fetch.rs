//! Reading CompuX state over RPC: markets, credit accounts, reservations, facilities, token
//! balances, the chain clock, and the auditor's snapshot of a whole market.

use std::collections::HashMap;

use anchor_lang::{AccountDeserialize, Discriminator};
use anchor_spl::token::spl_token::state::{Account as TokenAccount, AccountState, Mint};
use anyhow::{anyhow, bail, Context, Result};
use compux_sdk::audit::{CreditAccountSnapshot, FacilitySnapshot, Snapshot};
use compux_sdk::state::{CreditAccount, Facility, Market, Reservation};
use compux_sdk::{MarketKeys, PROGRAM_ID};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::config::{RpcAccountInfoConfig, RpcProgramAccountsConfig, UiAccountEncoding};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;

/// getMultipleAccounts takes at most this many keys per call.
const MULTIPLE_ACCOUNTS_CHUNK: usize = 100;

/// Program accounts of type `T` whose data matches `(offset, bytes)` after the discriminator.
pub async fn program_accounts<T: AccountDeserialize + Discriminator>(
    rpc: &RpcClient,
    matching: &[(usize, &[u8])],
) -> Result<Vec<(Pubkey, T)>> {
    let mut filters = vec![RpcFilterType::Memcmp(Memcmp::new_raw_bytes(0, T::DISCRIMINATOR.to_vec()))];
    filters.extend(
        matching
            .iter()
            .map(|(offset, bytes)| RpcFilterType::Memcmp(Memcmp::new_raw_bytes(*offset, bytes.to_vec()))),
    );
    let config = RpcProgramAccountsConfig {
        filters: Some(filters),
        account_config: RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            ..Default::default()
        },
        ..Default::default()
    };
    let found = rpc
        .get_program_ui_accounts_with_config(&PROGRAM_ID, config)
        .await
        .with_context(|| format!("cannot list accounts at {}", rpc.url()))?;
    found
        .into_iter()
        .map(|(key, ui)| {
            let data = ui.data.decode().ok_or_else(|| anyhow!("{key}: undecodable account data"))?;
            let state = compux_sdk::decode::account::<T>(&data).map_err(|e| anyhow!("{key}: {e}"))?;
            Ok((key, state))
        })
        .collect()
}

/// Offset of the `market` field in credit accounts, reservations and facilities.
const MARKET_OFFSET: usize = 8;
/// Offset of `owner` in a credit account and `lender` in a facility.
const SECOND_KEY_OFFSET: usize = 8 + 32;

pub async fn account_state<T: AccountDeserialize>(rpc: &RpcClient, key: &Pubkey) -> Result<Option<T>> {
    let account = rpc.get_account_with_commitment(key, rpc.commitment()).await?.value;
    account.map(|a| state_of(key, &a.data)).transpose()
}

/// The program account `key` holding `data`, decoded as `T`.
pub fn state_of<T: AccountDeserialize>(key: &Pubkey, data: &[u8]) -> Result<T> {
    compux_sdk::decode::account::<T>(data).map_err(|e| anyhow!("{key}: {e}"))
}

/// The market at `address` and its derived keys.
pub async fn market(rpc: &RpcClient, address: &Pubkey) -> Result<(MarketKeys, Market)> {
    let market: Market = account_state(rpc, address).await?.ok_or_else(|| {
        anyhow!("no market at {address}: check --market, or create one with `compux admin init-market`")
    })?;
    Ok((market_keys(address, &market)?, market))
}

/// The parameter change pending on `market`, if any (its `PendingUpdate` account).
pub async fn pending_change(
    rpc: &RpcClient,
    keys: &MarketKeys,
    market: &Market,
) -> Result<Option<compux_sdk::changes::PendingChange>> {
    let pending: Option<compux_sdk::state::PendingUpdate> = account_state(rpc, &keys.pending).await?;
    Ok(pending.and_then(|p| compux_sdk::changes::pending(market, &p)))
}

/// The keys of `market`, read at `address`: an error unless `address` is its PDA.
pub fn market_keys(address: &Pubkey, market: &Market) -> Result<MarketKeys> {
    let keys = MarketKeys::derive(&market.creator, &market.quote_mint);
    if keys.market != *address {
        bail!("{address} is not a market PDA of the compux program");
    }
    Ok(keys)
}

/// The market to act on: the one given, or the only market on the chain.
pub async fn resolve_market(rpc: &RpcClient, given: Option<Pubkey>) -> Result<(MarketKeys, Market)> {
    if let Some(address) = given {
        return market(rpc, &address).await;
    }
    let markets = program_accounts::<Market>(rpc, &[]).await?;
    match markets.as_slice() {
        [(address, _)] => market(rpc, address).await,
        [] => bail!("no market on {}: create one with `compux admin init-market`", rpc.url()),
        _ => bail!("{} markets on {}: choose one with --market", markets.len(), rpc.url()),
    }
}

pub async fn credit_accounts_of(rpc: &RpcClient, owner: &Pubkey) -> Result<Vec<(Pubkey, CreditAccount)>> {
    program_accounts(rpc, &[(SECOND_KEY_OFFSET, owner.as_ref())]).await
}

pub async fn reservations_of(rpc: &RpcClient, credit_account: &Pubkey) -> Result<Vec<(Pubkey, Reservation)>> {
    // Reservation: [disc][market][credit_account]...
    program_accounts(rpc, &[(MARKET_OFFSET + 32, credit_account.as_ref())]).await
}

pub async fn facilities_of_market(rpc: &RpcClient, market: &Pubkey) -> Result<Vec<(Pubkey, Facility)>> {
    program_accounts(rpc, &[(MARKET_OFFSET, market.as_ref())]).await
}

/// Raw accounts for `keys`, in order, fetched in chunks.
pub async fn accounts(rpc: &RpcClient, keys: &[Pubkey]) -> Result<Vec<Option<Account>>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MULTIPLE_ACCOUNTS_CHUNK) {
        out.extend(rpc.get_multiple_accounts(chunk).await?);
    }
    Ok(out)
}

/// Raw accounts for `keys`, in order, at the client's commitment, with the slot they were
/// read at (the oldest of the chunks' slots: a label never newer than the data).
pub async fn accounts_with_slot(rpc: &RpcClient, keys: &[Pubkey]) -> Result<(u64, Vec<Option<Account>>)> {
    let mut out = Vec::with_capacity(keys.len());
    let mut slot = u64::MAX;
    for chunk in keys.chunks(MULTIPLE_ACCOUNTS_CHUNK) {
        let res = rpc.get_multiple_accounts_with_commitment(chunk, rpc.commitment()).await?;
        slot = slot.min(res.context.slot);
        out.extend(res.value);
    }
    Ok((if slot == u64::MAX { 0 } else { slot }, out))
}

/// The compux events a confirmed transaction logged (from `getTransaction`).
pub async fn events_of(
    rpc: &RpcClient,
    signature: &solana_sdk::signature::Signature,
) -> Result<Vec<compux_sdk::decode::CompuxEvent>> {
    let tx = rpc
        .get_transaction(signature, solana_transaction_status_client_types::UiTransactionEncoding::Base64)
        .await
        .with_context(|| format!("cannot fetch transaction {signature}"))?;
    let logs: Option<Vec<String>> = tx.transaction.meta.and_then(|m| m.log_messages.into());
    Ok(compux_sdk::decode::events_from_logs(&logs.unwrap_or_default()))
}

/// The amount held by an SPL token account, from its raw data (`None` if it is not one).
pub fn token_amount_of(data: &[u8]) -> Option<u64> {
    TokenAccount::unpack(data).ok().map(|a| a.amount)
}

pub async fn token_amount(rpc: &RpcClient, account: &Pubkey) -> Result<u64> {
    Ok(rpc.get_token_account_balance(account).await?.amount.parse()?)
}

pub async fn clock(rpc: &RpcClient) -> Result<Clock> {
    let account = rpc.get_account(&solana_sdk::sysvar::clock::ID).await?;
    clock_of(&account.data)
}

/// The clock sysvar from its raw account data.
pub fn clock_of(data: &[u8]) -> Result<Clock> {
    // Clock is five little-endian 8-byte fields.
    if data.len() < 40 {
        bail!("the clock sysvar holds {} bytes", data.len());
    }
    let f = |i: usize| <[u8; 8]>::try_from(&data[i * 8..i * 8 + 8]).expect("8 bytes");
    Ok(Clock {
        slot: u64::from_le_bytes(f(0)),
        epoch_start_timestamp: i64::from_le_bytes(f(1)),
        epoch: u64::from_le_bytes(f(2)),
        leader_schedule_epoch: u64::from_le_bytes(f(3)),
        unix_timestamp: i64::from_le_bytes(f(4)),
    })
}

/// Everything an auditor needs about one market, from chain data alone: the market, every
/// credit account, reservation and facility of it (getProgramAccounts), their vaults and
/// escrows, the reserve and deposit vaults and the credit mint (getMultipleAccounts), and
/// the clock.
pub async fn snapshot(rpc: &RpcClient, market_address: &Pubkey) -> Result<Snapshot> {
    let (keys, market) = market(rpc, market_address).await?;
    let by_market = [(MARKET_OFFSET, market_address.as_ref())];
    let credit_accounts = program_accounts::<CreditAccount>(rpc, &by_market).await?;
    let reservations = program_accounts::<Reservation>(rpc, &by_market).await?;
    let facilities = program_accounts::<Facility>(rpc, &by_market).await?;

    let mut wanted = vec![keys.credit_mint, keys.recovery_reserve, keys.deposit_vault, keys.treasury];
    wanted.extend(credit_accounts.iter().map(|(_, c)| c.vault));
    wanted.extend(facilities.iter().map(|(_, f)| f.escrow));
    let fetched: HashMap<Pubkey, Account> = wanted
        .iter()
        .copied()
        .zip(accounts(rpc, &wanted).await?)
        .filter_map(|(k, a)| Some((k, a?)))
        .collect();
    let token = |key: &Pubkey| -> Result<TokenAccount> {
        let a = fetched.get(key).ok_or_else(|| anyhow!("token account {key} is missing"))?;
        TokenAccount::unpack(&a.data).map_err(|e| anyhow!("{key} is not a token account: {e}"))
    };
    let mint = fetched.get(&keys.credit_mint).ok_or_else(|| anyhow!("the credit mint is missing"))?;
    let credit_mint_supply = Mint::unpack(&mint.data).map_err(|e| anyhow!("credit mint: {e}"))?.supply;

    Ok(Snapshot {
        now: clock(rpc).await?.unix_timestamp,
        market_address: *market_address,
        credit_mint_supply,
        recovery_reserve_balance: token(&keys.recovery_reserve)?.amount,
        treasury_balance: token(&keys.treasury)?.amount,
        deposit_vault_balance: token(&keys.deposit_vault)?.amount,
        credit_accounts: credit_accounts
            .into_iter()
            .map(|(address, account)| {
                Ok(CreditAccountSnapshot { address, vault_balance: token(&account.vault)?.amount, account })
            })
            .collect::<Result<_>>()?,
        facilities: facilities
            .into_iter()
            .map(|(address, facility)| {
                // A closed or recovered facility's escrow may be gone: it holds nothing.
                let (escrow_balance, escrow_frozen) = match token(&facility.escrow) {
                    Ok(t) => (t.amount, t.state == AccountState::Frozen),
                    Err(_) => (0, false),
                };
                Ok(FacilitySnapshot { address, facility, escrow_balance, escrow_frozen })
            })
            .collect::<Result<_>>()?,
        reservations,
        market,
    })
}
