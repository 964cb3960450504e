//! API keys. A wallet asks for a challenge, signs it with its keypair, and receives a key
//! once; the key spends from that wallet's credit account in the relayer's market. Keys
//! are stored hashed (SHA-256) in the ledger database, listed and revoked the same way (a
//! freshly signed challenge each time), and looked up in memory on the hot path.
//!
//! Shared by replicas: challenges live in the database (issued by one replica, answered to
//! any, used once); every change to `api_keys` bumps a version in the same transaction, and
//! each replica polls that version every `SYNC_EVERY` and reloads the keys when it moved, so
//! a key created or revoked on one replica is known to all within that time.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::{serde_as, DisplayFromStr};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;

use crate::clock::Clock;
use crate::domain::ids::KeyHash;
use crate::store::db::Pool;
use crate::store::keys::{self as store, KeyRow};

use crate::error::ApiError;

/// How long a challenge may be answered, in ms.
const CHALLENGE_TTL_MS: i64 = 300_000;
/// How often a replica checks whether the keys changed.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);

/// Optional per-key limits, set when the key is created (or in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Credit base units the key may spend per UTC day.
    pub credits_per_day: Option<u64>,
    /// Requests the key may start per minute (bursts up to this many).
    pub requests_per_minute: Option<u32>,
}

/// What a valid key may do: spend from `account`, within `limits`.
#[derive(Clone, Debug)]
pub struct Caller {
    pub account: Pubkey,
    pub limits: Limits,
}

#[derive(Clone, Debug)]
struct KeyInfo {
    id: String,
    /// The wallet that signed for it (none for a configured key).
    owner: Option<Pubkey>,
    revoked: bool,
    caller: Caller,
}

fn limits_of(k: &KeyRow) -> Limits {
    Limits { credits_per_day: k.credits_per_day, requests_per_minute: k.requests_per_minute }
}

/// A key as listed to its owner (never the key itself).
#[serde_as]
#[derive(Clone, Debug, Serialize)]
pub struct KeySummary {
    pub id: String,
    #[serde_as(as = "DisplayFromStr")]
    pub account: Pubkey,
    pub created_at_ms: i64,
    pub revoked: bool,
    #[serde(flatten)]
    pub limits: Limits,
}

/// A signed request: the owner's wallet, the challenge it was given, its signature (base58).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    pub owner: String,
    pub challenge: String,
    pub signature: String,
    /// For revocation: the key id.
    pub id: Option<String>,
    /// For creation: the new key's limits.
    #[serde(default)]
    pub limits: Limits,
}

pub struct Keys {
    by_hash: RwLock<HashMap<KeyHash, KeyInfo>>,
    /// Keys from the configuration (never in the database).
    configured: Vec<(KeyHash, KeyInfo)>,
    /// The `api_keys` version the map was loaded at.
    version: AtomicI64,
    market: Option<Pubkey>,
    /// Challenges expire by it.
    clock: Clock,
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::unauthorized(format!(
        "{why}. Ask for a new challenge, sign it with the wallet's keypair, and send it back."
    ))
}

impl Keys {
    /// Keys from the configuration (hash -> account) and from the database.
    pub async fn load(
        configured: impl IntoIterator<Item = (KeyHash, Caller)>,
        pool: &Pool,
        market: Option<Pubkey>,
        clock: Clock,
    ) -> anyhow::Result<Keys> {
        let configured = configured
            .into_iter()
            .map(|(hash, caller)| {
                let info = KeyInfo { id: "config".into(), owner: None, revoked: false, caller };
                (hash, info)
            })
            .collect();
        let keys =
            Keys { by_hash: RwLock::default(), configured, version: AtomicI64::new(-1), market, clock };
        keys.sync(pool).await?;
        Ok(keys)
    }

    /// Reloads the keys if another replica (or this one) changed them since the last load.
    pub async fn sync(&self, pool: &Pool) -> anyhow::Result<()> {
        let version = store::version(pool).await?;
        if version == self.version.load(Ordering::Acquire) {
            return Ok(());
        }
        // Read the version before the rows: a change committed in between is loaded now and
        // loaded again at the next poll, never missed.
        let mut by_hash: HashMap<KeyHash, KeyInfo> = self.configured.iter().cloned().collect();
        for k in store::all(pool).await? {
            let caller = Caller { account: k.account, limits: limits_of(&k) };
            by_hash
                .insert(k.key_hash, KeyInfo { id: k.id, owner: Some(k.owner), revoked: k.revoked, caller });
        }
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        // Rows read just before a revoke on this replica committed must not bring the key
        // back: a revocation is final, so one already applied in memory stays.
        for (hash, info) in by_hash.iter_mut() {
            info.revoked |= map.get(hash).is_some_and(|old| old.revoked);
        }
        *map = by_hash;
        self.version.store(version, Ordering::Release);
        Ok(())
    }

    /// Polls for key changes every `SYNC_EVERY`, forever.
    pub async fn sync_forever(self: Arc<Self>, pool: Pool) {
        loop {
            tokio::time::sleep(SYNC_EVERY).await;
            if let Err(e) = self.sync(&pool).await {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the API keys; serving the last loaded set");
            }
        }
    }

    /// The credit account a key hash spends from and its limits, unless unknown or revoked.
    pub fn caller(&self, hash: &KeyHash) -> Option<Caller> {
        let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        map.get(hash).filter(|k| !k.revoked).map(|k| k.caller.clone())
    }

    /// Every account a key may spend from (for the balance refresher).
    pub fn accounts(&self) -> Vec<Pubkey> {
        let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Pubkey> = map.values().filter(|k| !k.revoked).map(|k| k.caller.account).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every live key with a daily credit budget: (key hash, credits per day).
    pub fn budgets(&self) -> Vec<(KeyHash, u64)> {
        let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(_, k)| !k.revoked)
            .filter_map(|(hash, k)| Some((hash.clone(), k.caller.limits.credits_per_day?)))
            .collect()
    }

    /// A single-use challenge for `owner` to sign, answerable to any replica.
    pub async fn challenge(&self, pool: &Pool, owner: &str) -> Result<String, ApiError> {
        let owner = Pubkey::from_str(owner).map_err(|_| {
            ApiError::bad_request("invalid_value", Some("owner"), "`owner` must be a base58 wallet address.")
        })?;
        let challenge = format!("compux relayer: prove you control {owner} (nonce {})", uuid::Uuid::new_v4());
        let now = self.clock.now_ms();
        store::add_challenge(pool, &challenge, &owner, now, now - CHALLENGE_TTL_MS)
            .await
            .map_err(ApiError::internal)?;
        Ok(challenge)
    }

    /// Checks a signed challenge (consuming it, on every replica at once) and returns the
    /// owner's wallet.
    async fn verify(&self, pool: &Pool, s: &Signed) -> Result<Pubkey, ApiError> {
        let issued = store::take_challenge(pool, &s.challenge).await.map_err(ApiError::internal)?;
        let Some((owner, at)) = issued else { return Err(unauthorized("Unknown or already used challenge")) };
        if Pubkey::from_str(&s.owner).ok() != Some(owner) || self.clock.now_ms() - at >= CHALLENGE_TTL_MS {
            return Err(unauthorized("The challenge was issued to another wallet or has expired"));
        }
        let signature =
            Signature::from_str(&s.signature).map_err(|_| unauthorized("The signature is not base58"))?;
        if !signature.verify(owner.as_ref(), s.challenge.as_bytes()) {
            return Err(unauthorized("The signature does not match the challenge and the wallet"));
        }
        Ok(owner)
    }

    /// Issues a key for the signer's credit account; returns (id, key, account). The key is
    /// shown this once; only its hash is kept.
    pub async fn create(&self, pool: &Pool, s: &Signed) -> Result<(String, String, Pubkey), ApiError> {
        let owner = self.verify(pool, s).await?;
        let market = self.market.ok_or_else(|| {
            ApiError::bad_request(
                "unsupported",
                None,
                "This relayer has no `market` configured, so it issues no keys.",
            )
        })?;
        let account = compux_sdk::pda::credit_account(&market, &owner).0;
        let key = format!("sk-compux-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let hash = KeyHash::of(&key);
        let id = format!("key_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let limits = s.limits;
        if limits.credits_per_day == Some(0) || limits.requests_per_minute == Some(0) {
            return Err(ApiError::bad_request(
                "invalid_value",
                Some("limits"),
                "A limit of 0 would make the key useless; leave it out for no limit.",
            ));
        }
        let row = KeyRow {
            id: id.clone(),
            key_hash: hash.clone(),
            owner,
            account,
            created_at_ms: self.clock.now_ms(),
            revoked: false,
            credits_per_day: limits.credits_per_day,
            requests_per_minute: limits.requests_per_minute,
        };
        store::insert(pool, &row).await.map_err(ApiError::internal)?;
        let info = KeyInfo {
            id: id.clone(),
            owner: Some(owner),
            revoked: false,
            caller: Caller { account, limits },
        };
        self.by_hash.write().unwrap_or_else(|e| e.into_inner()).insert(hash, info);
        Ok((id, key, account))
    }

    pub async fn list(&self, pool: &Pool, s: &Signed) -> Result<Vec<KeySummary>, ApiError> {
        let owner = self.verify(pool, s).await?;
        let rows = store::of_owner(pool, &owner).await.map_err(ApiError::internal)?;
        Ok(rows
            .iter()
            .map(|k| KeySummary {
                id: k.id.clone(),
                account: k.account,
                created_at_ms: k.created_at_ms,
                revoked: k.revoked,
                limits: limits_of(k),
            })
            .collect())
    }

    /// Revokes one of the signer's keys; it stops working at once.
    pub async fn revoke(&self, pool: &Pool, s: &Signed) -> Result<(), ApiError> {
        let owner = self.verify(pool, s).await?;
        let id = s.id.clone().ok_or_else(|| {
            ApiError::bad_request("missing_required_parameter", Some("id"), "`id` is required.")
        })?;
        let revoked =
            store::revoke(pool, &id, &owner, self.clock.now_ms()).await.map_err(ApiError::internal)?;
        if !revoked {
            // Well formed; there is just no such key of this wallet's (or it is revoked).
            return Err(ApiError {
                param: Some("id"),
                ..ApiError::not_found("key_not_found", format!("No active key {id} belongs to {owner}."))
            });
        }
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        for k in map.values_mut().filter(|k| k.id == id && k.owner == Some(owner)) {
            k.revoked = true;
        }
        Ok(())
    }
}
