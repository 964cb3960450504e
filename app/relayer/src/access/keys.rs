//! API keys. A wallet asks for a challenge for one action (create a key with given limits,
//! list its keys, revoke one key), signs it with its keypair, and receives a key once; the
//! key spends from that wallet's credit account in the relayer's market. Keys are stored
//! hashed (SHA-256) in the ledger database, listed and revoked the same way (a freshly
//! signed challenge each time), and looked up in memory on the hot path.
//!
//! The challenge is a Sign-In-With-Solana-style message: the domain the wallet talks to,
//! the wallet, the action in words, a hash of the action and its parameters, a nonce, and
//! when it was issued and expires. A signature is accepted only for the action and the
//! parameters it was issued for, so a signature given to list keys cannot be replayed to
//! create one, nor one for a limited key to create an unlimited one.
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

/// What a signed request is for: each challenge is issued for one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create a key with these limits.
    Create(Limits),
    /// List the wallet's keys.
    List,
    /// Revoke the key with this id.
    Revoke(Option<String>),
}

impl Action {
    /// From a challenge request's `action` and its parameters (those of other actions are
    /// not part of it).
    pub fn parse(action: &str, limits: Limits, id: Option<String>) -> Result<Action, ApiError> {
        match action {
            "create" => Ok(Action::Create(limits)),
            "list" => Ok(Action::List),
            "revoke" => match id {
                // A key id is `key_` and hex; anything else names no key, and is not written
                // into a message someone signs.
                Some(id)
                    if id.len() > 64
                        || !id.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) =>
                {
                    Err(ApiError::bad_request(
                        "invalid_value",
                        Some("id"),
                        "`id` is a key id such as key_0123456789ab.",
                    ))
                }
                id => Ok(Action::Revoke(id)),
            },
            _ => Err(ApiError::bad_request(
                "invalid_value",
                Some("action"),
                "`action` must be `create`, `list` or `revoke`: the challenge is for that request only.",
            )),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Action::Create(_) => "create",
            Action::List => "list",
            Action::Revoke(_) => "revoke",
        }
    }

    /// What the wallet's owner is asked to approve, in words.
    fn describe(&self) -> String {
        match self {
            Action::Create(l) => {
                let per_day = l.credits_per_day.map_or("no daily credit limit".into(), |c| {
                    let c = compux_sdk::units::format(c, compux_sdk::constants::CREDIT_DECIMALS);
                    format!("at most {c} credits a day")
                });
                let per_minute = l
                    .requests_per_minute
                    .map_or("no request limit".into(), |r| format!("{r} requests a minute"));
                format!("Create an API key that spends this wallet's credits: {per_day}, {per_minute}.")
            }
            Action::List => "List this wallet's API keys.".into(),
            Action::Revoke(id) => format!("Revoke the API key {}.", id.as_deref().unwrap_or("(none named)")),
        }
    }

    /// SHA-256 of the action and its parameters (hex), written in the challenge and checked
    /// against the request that answers it.
    fn digest(&self) -> String {
        use sha2::Digest;
        let params = match self {
            Action::Create(l) => serde_json::json!(l),
            Action::List => serde_json::Value::Null,
            Action::Revoke(id) => serde_json::json!(id),
        };
        hex::encode(sha2::Sha256::digest(format!("{}\n{params}", self.name())))
    }
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1_000);
    let t = secs.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", compux_sdk::units::utc_day(secs), t / 3_600, t % 3_600 / 60, t % 60)
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
    /// Active keys one wallet may hold (`Config::keys_per_wallet`).
    per_wallet: usize,
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
        per_wallet: usize,
        clock: Clock,
    ) -> anyhow::Result<Keys> {
        let configured = configured
            .into_iter()
            .map(|(hash, caller)| {
                let info = KeyInfo { id: "config".into(), owner: None, revoked: false, caller };
                (hash, info)
            })
            .collect();
        let keys = Keys {
            by_hash: RwLock::default(),
            configured,
            version: AtomicI64::new(-1),
            market,
            per_wallet,
            clock,
        };
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

    /// A single-use challenge for `owner` to sign for `action` at `domain` (the host the
    /// request was sent to), answerable to any replica.
    pub async fn challenge(
        &self,
        pool: &Pool,
        owner: Pubkey,
        action: &Action,
        domain: &str,
    ) -> Result<String, ApiError> {
        let now = self.clock.now_ms();
        let challenge = format!(
            "{domain} asks you to sign with your Solana account:\n{owner}\n\n{}\n\nAction: {}\nRequest Hash: {}\n\
             Nonce: {}\nIssued At: {}\nExpiration Time: {}",
            action.describe(),
            action.name(),
            action.digest(),
            uuid::Uuid::new_v4().simple(),
            rfc3339(now),
            rfc3339(now + CHALLENGE_TTL_MS),
        );
        store::add_challenge(pool, &challenge, &owner, now, now - CHALLENGE_TTL_MS)
            .await
            .map_err(ApiError::internal)?;
        Ok(challenge)
    }

    /// Checks a signed challenge for `action` (consuming it, on every replica at once) and
    /// returns the owner's wallet.
    async fn verify(&self, pool: &Pool, s: &Signed, action: &Action) -> Result<Pubkey, ApiError> {
        // The signature first: someone who only saw the challenge cannot use it up.
        let claimed =
            Pubkey::from_str(&s.owner).map_err(|_| unauthorized("`owner` is not a wallet address"))?;
        let signature =
            Signature::from_str(&s.signature).map_err(|_| unauthorized("The signature is not base58"))?;
        if !signature.verify(claimed.as_ref(), s.challenge.as_bytes()) {
            return Err(unauthorized("The signature does not match the challenge and the wallet"));
        }
        let issued = store::take_challenge(pool, &s.challenge).await.map_err(ApiError::internal)?;
        let Some((owner, at)) = issued else { return Err(unauthorized("Unknown or already used challenge")) };
        if claimed != owner || self.clock.now_ms() - at >= CHALLENGE_TTL_MS {
            return Err(unauthorized("The challenge was issued to another wallet or has expired"));
        }
        // The stored text is the relayer's own, so its lines can be trusted.
        let issued_for = format!("\nAction: {}\nRequest Hash: {}\n", action.name(), action.digest());
        if !s.challenge.contains(&issued_for) {
            return Err(unauthorized(&format!(
                "The challenge was issued for another request: ask for one with `\"action\": \"{}\"` and \
                 exactly this request's {}",
                action.name(),
                match action {
                    Action::Create(_) => "limits",
                    Action::List => "parameters",
                    Action::Revoke(_) => "id",
                }
            )));
        }
        Ok(owner)
    }

    /// Issues a key for the signer's credit account; returns (id, key, account). The key is
    /// shown this once; only its hash is kept.
    /// `exists` says whether a credit account is open on chain (keys are issued only for
    /// one, so a flood of fresh wallets costs each an account's rent, not just a signature).
    pub async fn create(
        &self,
        pool: &Pool,
        s: &Signed,
        exists: impl AsyncFnOnce(Pubkey) -> anyhow::Result<bool>,
    ) -> Result<(String, String, Pubkey), ApiError> {
        let owner = self.verify(pool, s, &Action::Create(s.limits)).await?;
        let market = self.market.ok_or_else(|| {
            ApiError::bad_request(
                "unsupported",
                None,
                "This relayer has no `market` configured, so it issues no keys.",
            )
        })?;
        let account = compux_sdk::pda::credit_account(&market, &owner).0;
        let open = exists(account).await.map_err(|e| {
            ApiError::internal(format!("cannot read the credit account {account} on chain: {e:#}"))
        })?;
        if !open {
            return Err(ApiError::bad_request(
                "no_credit_account",
                None,
                format!(
                    "{owner} has no credit account in this market ({account}): buy credits first \
                     (`compux buy`), then ask for a key."
                ),
            ));
        }
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
        let active = store::of_owner(pool, &owner).await.map_err(ApiError::internal)?;
        let per_wallet = self.per_wallet;
        if active.iter().filter(|k| !k.revoked).count() >= per_wallet {
            return Err(ApiError::bad_request(
                "too_many_keys",
                None,
                format!(
                    "{owner} already has {per_wallet} active keys, the most one wallet may hold: \
                     revoke one it no longer uses (`compux keys list`, `compux keys revoke <id>`)."
                ),
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
        let owner = self.verify(pool, s, &Action::List).await?;
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
        let owner = self.verify(pool, s, &Action::Revoke(s.id.clone())).await?;
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
