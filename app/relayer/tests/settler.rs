//! The settler, the money path, against an in-process chain (the localnet running the
//! program, the real SPL Token) through a seam that injects the faults a real network
//! has: a confirmation lost after the burn landed, a send that fails, a chain that is
//! down. Whatever happens, every metered credit is burned exactly once, with the `seq` the
//! program expects, and nothing metered is lost. The flush timer runs on an injected clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use compux_client::{bootstrap, fetch, tokens, Sender};
use compux_localnet::{Config as NetConfig, Localnet};
use compux_relayer::clock::Clock;
use compux_relayer::domain::ids::{KeyHash, Source};
use compux_relayer::domain::usage::UsageRecord;
use compux_relayer::jobs::chain::{self, Chain};
use compux_relayer::jobs::settler::{Burns, Round, Settler, SettlerConfig};
use compux_relayer::store::batches;
use compux_relayer::{Ledger, Meter};
use compux_sdk::state::{CreditAccount, Facility, FacilityTerms, UnusedCredits};
use compux_sdk::{CreditAccountKeys, FacilityKeys, MarketKeys};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::account::Account;
use solana_sdk::hash::Hash;
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::Transaction;

/// What the seam does to the settler's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// The burn lands, but its confirmation never comes back.
    LoseConfirmation,
    /// The burn lands, its confirmation is lost, and then the chain goes down.
    LoseConfirmationThenDown,
    /// Sends fail before reaching the chain; reads work.
    FailSend,
    /// Every call fails.
    Down,
}

/// The real chain behind a switch of faults, counting the transactions that landed.
struct Faulty {
    inner: chain::Rpc,
    fault: Mutex<Fault>,
    landed: AtomicUsize,
}

impl Faulty {
    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }

    fn reachable(&self) -> Result<()> {
        match self.fault() {
            Fault::Down => Err(anyhow!("the chain is down (injected)")),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Chain for Faulty {
    async fn accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<Account>>> {
        self.reachable()?;
        self.inner.accounts(keys).await
    }

    async fn latest_blockhash(&self) -> Result<Hash> {
        self.reachable()?;
        self.inner.latest_blockhash().await
    }

    async fn submit(&self, what: &str, tx: &Transaction) -> Result<Signature> {
        self.reachable()?;
        match self.fault() {
            Fault::FailSend => return Err(anyhow!("{what}: connection reset (injected)")),
            Fault::LoseConfirmation | Fault::LoseConfirmationThenDown => {
                self.inner.submit(what, tx).await?;
                self.landed.fetch_add(1, Ordering::SeqCst);
                if self.fault() == Fault::LoseConfirmationThenDown {
                    self.set(Fault::Down);
                }
                return Err(anyhow!("{what}: confirmation timed out (injected)"));
            }
            Fault::None | Fault::Down => {}
        }
        let sig = self.inner.submit(what, tx).await?;
        self.landed.fetch_add(1, Ordering::SeqCst);
        Ok(sig)
    }
}

/// A market on an in-process chain, a startup's credit account holding `CREDITS`, a ledger,
/// and a settler signing as the market's relayer through the faulty seam.
struct World {
    _net: Localnet,
    rpc: RpcClient,
    market: MarketKeys,
    admin: Keypair,
    startup: Keypair,
    chain: Arc<Faulty>,
    clock: Clock,
    account: CreditAccountKeys,
    ledger: Ledger,
    meter: Arc<Meter>,
    settler: Settler,
    records: usize,
    _dir: tempfile::TempDir,
}

const CREDITS: u64 = 1_000 * compux_sdk::constants::CREDIT_UNIT;
const MIN_RECORDS: usize = 5;
/// An hour: real time passing during a test (the injected clock runs with it) never reaches
/// it; the test that needs it moves the clock.
const FLUSH_SECS: u64 = 3_600;

async fn world() -> World {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        if std::env::var_os("RUST_LOG").is_none() {
            // The runtime logs every instruction at DEBUG; keep failures readable. Set once,
            // before any bank starts (the tests' threads read it only then).
            unsafe { std::env::set_var("RUST_LOG", "error") };
        }
    });
    let net = Localnet::start(NetConfig { rpc_port: 0, ..NetConfig::default() }).await.unwrap();
    let rpc = RpcClient::new_with_commitment(
        net.rpc_url(),
        solana_rpc_client_api::config::CommitmentConfig::confirmed(),
    );
    let (admin, startup, relayer) = (Keypair::new(), Keypair::new(), Keypair::new());
    let relayer_key = relayer.pubkey();
    for who in [&admin, &startup, &relayer] {
        let sig = rpc.request_airdrop(&who.pubkey(), 10 * LAMPORTS_PER_SOL).await.unwrap();
        rpc.confirm_transaction(&sig).await.unwrap();
    }
    let market_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/market.toml");
    let config = bootstrap::read_config(market_file.as_ref()).unwrap();
    let quote_mint = bootstrap::create_test_quote_mint(&rpc, Sender::SILENT, &admin).await.unwrap();
    let m =
        bootstrap::init_market(&rpc, Sender::SILENT, &admin, quote_mint, config, relayer_key).await.unwrap();
    let quote = tokens::mint_to_owner(
        &rpc,
        Sender::SILENT,
        &admin,
        &quote_mint,
        &startup.pubkey(),
        1_000_000_000_000,
    )
    .await
    .unwrap();
    let ixs = [
        compux_sdk::ix::open_credit_account(&m, &startup.pubkey()),
        compux_sdk::ix::buy_credits(&m, &startup.pubkey(), &quote, CREDITS, u64::MAX, 0),
    ];
    compux_client::send(&rpc, Sender::SILENT, "buy credits", &startup, &ixs, &[]).await.unwrap();
    let account = m.credit_account(&startup.pubkey());

    let dir = tempfile::tempdir().unwrap();
    let target = compux_relayer::store::db::test_target(dir.path()).await.unwrap();
    let ledger = Ledger::open_with(&target, &dir.path().join("journal"), 1 << 20).await.unwrap();
    let chain = Arc::new(Faulty {
        inner: chain::Rpc::new(&net.rpc_url()),
        fault: Mutex::new(Fault::None),
        landed: 0.into(),
    });
    let clock = Clock::adjustable();
    let mut config = SettlerConfig::new("relayer.json".into());
    (config.min_records, config.flush_secs, config.auto_refill) = (MIN_RECORDS, FLUSH_SECS, false);
    let meter = Meter::with_clock(clock.clone());
    let settler = Settler::new(
        ledger.clone(),
        meter.clone(),
        Burns { chain: chain.clone(), market: m.market, payer: relayer },
        config,
        vec![account.address],
    )
    .await
    .unwrap();
    World {
        _net: net,
        rpc,
        market: m,
        admin,
        startup,
        chain,
        clock,
        account,
        ledger,
        meter,
        settler,
        records: 0,
        _dir: dir,
    }
}

impl World {
    /// Meters `n` requests of `credits` each against the credit account's vault.
    async fn meter(&mut self, n: usize, credits: u64) {
        let vault = Source::Vault(self.account.address);
        self.meter_from(vault, n, credits).await;
    }

    /// Meters `n` requests of `credits` each from `source` (the account's vault, or a
    /// facility it borrows under).
    async fn meter_from(&mut self, source: Source, n: usize, credits: u64) {
        let account = self.account.address;
        for _ in 0..n {
            self.records += 1;
            let record = UsageRecord {
                request_id: format!("req-{}", self.records),
                created_at_ms: compux_relayer::clock::now_ms() - 1_000,
                key_hash: KeyHash::of("sk-settler-test"),
                account,
                source,
                provider: "sim (simulated)".into(),
                model: "sim-chat".into(),
                input_tokens: 10,
                output_tokens: 10,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                credits_charged: credits,
                input_per_1m: 1,
                output_per_1m: 1,
                provider_input_per_1m: 1,
                provider_output_per_1m: 1,
                provider_cost: credits,
                shortfall: 0,
            };
            self.ledger.record(record).await.unwrap();
        }
    }

    /// A facility a fresh lender offers the startup and the startup accepts: its upfront
    /// credits are released into its escrow, for the relayer to burn with `settle_facility`.
    async fn facility(&self) -> FacilityKeys {
        let (m, admin, s) = (&self.market, &self.admin, Sender::SILENT);
        let lender = Keypair::new();
        let sig = self.rpc.request_airdrop(&lender.pubkey(), 10 * LAMPORTS_PER_SOL).await.unwrap();
        self.rpc.confirm_transaction(&sig).await.unwrap();
        // The recovery reserve earmarks the facility's worst case, so the operator funds it.
        let reserve =
            tokens::mint_to_owner(&self.rpc, s, admin, &m.quote_mint, &admin.pubkey(), 10u64.pow(12))
                .await
                .unwrap();
        let fund = compux_sdk::ix::fund_recovery_reserve(m, &admin.pubkey(), &reserve, 10u64.pow(12));
        compux_client::send(&self.rpc, s, "fund the reserve", admin, &[fund], &[]).await.unwrap();
        let lender_quote =
            tokens::mint_to_owner(&self.rpc, s, admin, &m.quote_mint, &lender.pubkey(), 10u64.pow(12))
                .await
                .unwrap();
        let market: compux_sdk::state::Market =
            fetch::account_state(&self.rpc, &m.market).await.unwrap().unwrap();
        let f = FacilityKeys::derive(&m.market, &lender.pubkey(), market.facility_count);
        let day = 86_400;
        let terms = FacilityTerms {
            borrower: self.startup.pubkey(),
            principal: 100_000_000,
            apr_bps: 1_200,
            installments: 4,
            period_secs: 30 * day,
            credit_multiplier_bps: 15_000,
            upfront_bps: 2_500,
            tranches: 3,
            grace_secs: 7 * day,
            default_after_secs: 30 * day,
            late_fee_bps: 500,
            unused_at_close: UnusedCredits::Convert,
            min_recovery_rate_bps: 0,
        };
        let offer = compux_sdk::ix::offer_facility(m, &f, &lender_quote, terms);
        compux_client::send(&self.rpc, s, "offer", &lender, &[offer], &[]).await.unwrap();
        let accept = compux_sdk::ix::accept_facility(m, &f, &self.startup.pubkey(), terms, 0);
        compux_client::send(&self.rpc, s, "accept", &self.startup, &[accept], &[]).await.unwrap();
        f
    }

    /// The credits left in the account's vault, on chain.
    async fn vault(&self) -> u64 {
        self.tokens(&self.account.vault).await
    }

    /// What the token account at `address` holds, on chain.
    async fn tokens(&self, address: &Pubkey) -> u64 {
        fetch::token_amount(&self.rpc, address).await.unwrap()
    }

    /// The credit account's state, on chain.
    async fn account_state(&self) -> CreditAccount {
        fetch::account_state(&self.rpc, &self.account.address).await.unwrap().unwrap()
    }

    /// The market's state, on chain.
    async fn market_state(&self) -> compux_sdk::state::Market {
        fetch::market(&self.rpc, &self.market.market).await.unwrap().1
    }

    /// The account's last settled `seq`, on chain.
    async fn settled_seq(&self) -> u64 {
        let ca: CreditAccount =
            fetch::account_state(&self.rpc, &self.account.address).await.unwrap().unwrap();
        ca.settlement.settled_seq
    }

    async fn batches(&self) -> Vec<batches::Batch> {
        batches::of_source(self.ledger.pool(), &self.account.address.to_string()).await.unwrap()
    }

    /// Credits metered and not yet burned: in no batch yet, or in one not on chain yet.
    async fn not_burned(&self) -> u64 {
        let unbatched = self.ledger.unsettled(Source::Vault(self.account.address)).await.unwrap();
        let pending: u64 =
            self.batches().await.iter().filter(|b| b.settled_at_ms.is_none()).map(|b| b.amount).sum();
        unbatched + pending
    }

    /// `from` announces `amount` credits, the chain's clock passes the market's transfer
    /// notice (a relayer that fell behind its settlement for that long), and they move to
    /// `to`'s account.
    async fn move_after_notice(&self, from: &Keypair, to: &Keypair, amount: u64) {
        let (m, s) = (&self.market, Sender::SILENT);
        let announce = compux_sdk::ix::announce_transfer(m, &from.pubkey(), amount);
        compux_client::send(&self.rpc, s, "announce", from, &[announce], &[]).await.unwrap();
        let ca: CreditAccount = fetch::account_state(&self.rpc, &m.credit_account(&from.pubkey()).address)
            .await
            .unwrap()
            .unwrap();
        self.set_clock(ca.notice.ready_at).await;
        let transfer = compux_sdk::ix::transfer_credits(m, &from.pubkey(), &to.pubkey(), amount);
        compux_client::send(&self.rpc, s, "transfer", from, &[transfer], &[]).await.unwrap();
    }

    async fn round(&self) -> Round {
        self.settler.round().await.unwrap()
    }

    /// Moves the chain's clock (the localnet's `compux_setClock`).
    async fn set_clock(&self, unix_timestamp: i64) {
        let set_clock = solana_rpc_client_api::request::RpcRequest::Custom { method: "compux_setClock" };
        let _: serde_json::Value =
            self.rpc.send(set_clock, serde_json::json!([unix_timestamp])).await.unwrap();
    }

    /// A gateway on this world's meter and ledger, `key` spending from the startup's
    /// account, serving model "m" from a SIMULATED provider with `sim`; its base URL (and
    /// the provider, to keep it running). About 20 requests' holds cover the 1,000 credits
    /// (300,000 credit base units a token; a hold is about 160 tokens).
    async fn serve(
        &self,
        key: &str,
        sim: compux_relayer::sim::SimOptions,
    ) -> (String, compux_relayer::sim::SimHandle) {
        use compux_relayer::config::{Key, Model, Provider};
        let up = compux_relayer::sim::spawn(sim, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let model = Model::priced("m", 300_000_000_000, 300_000_000_000);
        let mut config = compux_relayer::Config::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![Provider::new("up", up.base_url(), vec![model])],
        );
        config.keys.push(Key::new(KeyHash::of(key), self.account.address));
        let g = compux_relayer::Gateway::new(config, self.meter.clone(), self.ledger.clone()).await.unwrap();
        (format!("http://{}/v1", compux_relayer::serve(g).await.unwrap()), up)
    }

    /// Until the settler has burned every charge (a few rounds at most).
    async fn burn_everything(&self) {
        self.clock.advance(Duration::from_secs(FLUSH_SECS + 1));
        for _ in 0..10 {
            if self.not_burned().await == 0 {
                break;
            }
            self.round().await;
        }
        assert_eq!(self.not_burned().await, 0, "the settler burned every charge");
    }
}

/// One chat request with `key` at `base`, 100 tokens at most: its status.
async fn ask(base: &str, key: &str) -> u16 {
    send(base, key).await.status().as_u16()
}

/// The same request's whole response.
async fn send(base: &str, key: &str) -> reqwest::Response {
    let req = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}));
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_confirmation_is_found_on_chain_and_nothing_is_burned_twice() {
    let mut w = world().await;
    w.meter(MIN_RECORDS, 700).await;
    let before = w.vault().await;
    w.chain.set(Fault::LoseConfirmation);
    let round = w.round().await;
    assert_eq!((round.cut, round.settled), (1, 1), "the settler asked the chain and found its burn");
    w.chain.set(Fault::None);
    assert_eq!(w.round().await, Round::default(), "nothing left to do");
    assert_eq!(w.chain.landed.load(Ordering::SeqCst), 1, "sent once");
    assert_eq!(before - w.vault().await, 5 * 700, "burned once");
    assert_eq!(w.settled_seq().await, 1);
    assert_eq!(w.not_burned().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_facility_burn_whose_confirmation_is_lost_is_found_on_chain_and_made_once() {
    let mut w = world().await;
    let f = w.facility().await;
    let before = w.tokens(&f.escrow).await;
    assert!(before > 5 * 900, "the upfront credits are in the escrow: {before}");
    w.meter_from(Source::Facility(f.address), MIN_RECORDS, 900).await;
    w.chain.set(Fault::LoseConfirmation);
    let round = w.round().await;
    assert_eq!((round.cut, round.settled), (1, 1), "settle_facility landed; found by its seq");
    w.chain.set(Fault::None);
    assert_eq!(w.round().await, Round::default());
    assert_eq!(w.chain.landed.load(Ordering::SeqCst), 1, "sent once");
    assert_eq!(before - w.tokens(&f.escrow).await, 5 * 900, "burned once, from the facility's escrow");
    let facility: Facility = fetch::account_state(&w.rpc, &f.address).await.unwrap().unwrap();
    assert_eq!(facility.settlement.settled_seq, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burn_that_landed_while_the_chain_went_away_is_marked_next_round_not_sent_again() {
    let mut w = world().await;
    w.meter(MIN_RECORDS, 300).await;
    let before = w.vault().await;
    w.chain.set(Fault::LoseConfirmationThenDown);
    let round = w.round().await;
    assert_eq!((round.cut, round.settled), (1, 0), "landed, but the settler could not know");
    let pending = w.batches().await;
    assert!(pending[0].signature.is_some() && pending[0].settled_at_ms.is_none(), "{pending:?}");
    w.chain.set(Fault::None);
    assert_eq!(w.round().await.settled, 1, "found on chain by its seq");
    assert_eq!(w.chain.landed.load(Ordering::SeqCst), 1, "never sent again");
    assert_eq!(before - w.vault().await, 5 * 300, "burned once");
    assert_eq!(w.settled_seq().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_send_is_sent_again_with_the_same_seq_and_later_batches_wait() {
    let mut w = world().await;
    w.meter(MIN_RECORDS, 100).await;
    let before = w.vault().await;
    w.chain.set(Fault::FailSend);
    assert_eq!(w.round().await, Round { cut: 1, ..Round::default() });
    // More usage while the first batch waits: cut behind it, never sent ahead of it.
    w.meter(MIN_RECORDS, 200).await;
    assert_eq!(w.round().await, Round { cut: 1, ..Round::default() });
    assert_eq!((w.vault().await, w.settled_seq().await), (before, 0), "nothing burned yet");
    assert_eq!(w.not_burned().await, 5 * 100 + 5 * 200, "nothing lost either");
    w.chain.set(Fault::None);
    assert_eq!(w.round().await.settled, 2, "both, in seq order");
    let seqs: Vec<u64> = w.batches().await.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(w.chain.landed.load(Ordering::SeqCst), 2);
    assert_eq!(before - w.vault().await, 5 * 100 + 5 * 200);
    assert_eq!(w.settled_seq().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_that_is_down_loses_no_usage_and_settles_once_it_is_back() {
    let mut w = world().await;
    w.meter(MIN_RECORDS, 250).await;
    let before = w.vault().await;
    w.chain.set(Fault::Down);
    for _ in 0..3 {
        assert_eq!(w.round().await, Round::default(), "a round without a chain does nothing, and says so");
    }
    assert!(w.batches().await.is_empty());
    assert_eq!(w.not_burned().await, 5 * 250);
    w.chain.set(Fault::None);
    assert_eq!(w.round().await, Round { cut: 1, settled: 1, ..Round::default() });
    assert_eq!(before - w.vault().await, 5 * 250);
    assert_eq!(w.not_burned().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_batch_waits_for_the_flush_timer_on_the_injected_clock() {
    let mut w = world().await;
    w.meter(MIN_RECORDS - 3, 400).await;
    let before = w.vault().await;
    assert_eq!(w.round().await, Round::default(), "too few records, too recent");
    w.clock.advance(Duration::from_secs(FLUSH_SECS / 2));
    assert_eq!(w.round().await, Round::default(), "still inside the flush time");
    w.clock.advance(Duration::from_secs(FLUSH_SECS / 2 + 10));
    assert_eq!(w.round().await, Round { cut: 1, settled: 1, ..Round::default() }, "flushed");
    assert_eq!(before - w.vault().await, 2 * 400);
}

/// The startup moves its credits out of the vault before they are burned (the program closes
/// that hole in issue 24): the batch cannot land. After STUCK_AFTER failed attempts it is an
/// incident: an ERROR line, `/metrics`, a degraded readiness (still serving: one account
/// draining its own vault must not stop the others) and the account's usage say so; it
/// clears once the batch lands.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_that_cannot_land_is_an_incident_in_readiness_metrics_and_usage_until_it_lands() {
    use compux_relayer::config::{Key, Model, Provider};
    use compux_relayer::domain::meter::STUCK_AFTER;
    let mut w = world().await;
    w.meter(MIN_RECORDS, 700).await;
    let s = Sender::SILENT;
    let open = compux_sdk::ix::open_credit_account(&w.market, &w.admin.pubkey());
    compux_client::send(&w.rpc, s, "open", &w.admin, &[open], &[]).await.unwrap();
    let all = w.vault().await;
    w.move_after_notice(&w.startup, &w.admin, all).await;

    // A gateway over the same meter, as the relayer runs its settler.
    const KEY: &str = "sk-settler-incident";
    let sim = Provider::new("none", "http://127.0.0.1:9", vec![Model::priced("m", 1, 1)]);
    let mut config = compux_relayer::Config::new("127.0.0.1:0".parse().unwrap(), vec![sim]);
    config.keys.push(Key::new(KeyHash::of(KEY), w.account.address));
    let g = compux_relayer::Gateway::new(config, w.meter.clone(), w.ledger.clone()).await.unwrap();
    let base = format!("http://{}", compux_relayer::serve(g).await.unwrap());
    let get = |path: &str| {
        let req = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(KEY);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let source = Source::Vault(w.account.address);
    for attempt in 1..=STUCK_AFTER {
        w.round().await;
        let t = w.meter.settlement_trouble(source).expect("the failed burn is counted");
        assert_eq!((t.seq, t.attempts, t.stuck()), (1, attempt, attempt == STUCK_AFTER), "{t:?}");
        assert!(t.error.contains("InsufficientCredits") || t.error.contains("insufficient"), "{}", t.error);
    }
    let (status, ready) = get("/health/ready").await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!((status, ready["status"].as_str()), (200, Some("degraded")), "{ready}");
    assert_eq!(ready["settlement"]["stuck"][0]["source"], w.account.address.to_string(), "{ready}");
    let (_, metrics) = get("/metrics").await;
    assert!(metrics.lines().any(|l| l == "compux_settlement_stuck_sources 1"), "{metrics}");
    let (_, usage) = get("/v1/usage").await;
    let usage: serde_json::Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage["balance"][0]["settlement_stuck"]["seq"], 1, "{usage}");

    // The credits come back: the batch lands, and the incident is over.
    w.move_after_notice(&w.admin, &w.startup, all).await;
    assert_eq!(w.round().await.settled, 1);
    assert_eq!(w.meter.settlement_trouble(source), None);
    let (status, ready) = get("/health/ready").await;
    assert_eq!(status, 200);
    assert!(ready.contains(r#""status":"ready""#), "{ready}");
    assert_eq!(w.not_burned().await, 0);
}

/// Attack 1 of issue 24, through the relayer: slow requests hold the whole balance, and the
/// startup tries to move its credits away before they are burned. It cannot move them
/// without a notice; the relayer spends none of the announced credits from the moment it
/// sees the notice; the requests in flight are charged and burned; after the notice only
/// what the burns left moves. Every charged credit ends burned.
#[tokio::test(flavor = "multi_thread")]
async fn credits_spent_through_the_relayer_cannot_leave_before_they_are_burned() {
    use compux_relayer::jobs::balances;
    use compux_relayer::sim::SimOptions;
    let w = world().await;
    let slow =
        SimOptions { name: "slow".into(), completion_tokens: 100, latency_ms: 3_000, ..Default::default() };
    const KEY: &str = "sk-walk-away";
    let (base, _up) = w.serve(KEY, slow).await;
    let accounts = [w.account.address];
    balances::refresh(&w.rpc, &w.meter, &accounts).await.unwrap();
    let calls: Vec<_> = (0..30)
        .map(|_| {
            tokio::spawn({
                let base = base.clone();
                async move { ask(&base, KEY).await }
            })
        })
        .collect();
    let source = Source::Vault(w.account.address);
    // Every request that fits is held (the rest were refused): less than a tenth of what
    // is held is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while w.meter.balance(source).available() >= w.meter.balance(source).held / 10 {
        assert!(std::time::Instant::now() < deadline, "the requests never held the balance");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The whole balance, moved away while the requests are in flight: refused.
    let (m, s) = (&w.market, Sender::SILENT);
    let open = compux_sdk::ix::open_credit_account(m, &w.admin.pubkey());
    compux_client::send(&w.rpc, s, "open", &w.admin, &[open], &[]).await.unwrap();
    let all = w.vault().await;
    let away = compux_sdk::ix::transfer_credits(m, &w.startup.pubkey(), &w.admin.pubkey(), all);
    let err = compux_client::send(&w.rpc, s, "away", &w.startup, std::slice::from_ref(&away), &[])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("TransferNotAnnounced"), "{err:#}");
    // Announced: the relayer spends none of it from the next balance read on.
    let announce = compux_sdk::ix::announce_transfer(m, &w.startup.pubkey(), all);
    compux_client::send(&w.rpc, s, "announce", &w.startup, &[announce], &[]).await.unwrap();
    let err = compux_client::send(&w.rpc, s, "away", &w.startup, std::slice::from_ref(&away), &[])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("TransferNotReady"), "{err:#}");
    balances::refresh(&w.rpc, &w.meter, &accounts).await.unwrap();
    assert_eq!(w.meter.balance(source).onchain, 0, "the announced credits are not the relayer's to spend");
    let after = ask(&base, KEY).await;
    assert_eq!(after, 402, "a request after the notice is refused");

    // The requests in flight are answered and charged; the settler burns them.
    let statuses: Vec<u16> =
        futures_util::future::join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(served >= 10, "the holds covered the balance: {statuses:?}");
    w.burn_everything().await;
    let charged = w.ledger.total_charged().await.unwrap();

    // After the notice only what the burns left can move.
    let ready = w.account_state().await.notice.ready_at;
    w.set_clock(ready).await;
    let err = compux_client::send(&w.rpc, s, "away", &w.startup, &[away], &[]).await.unwrap_err();
    assert!(format!("{err:#}").contains("InsufficientCredits"), "{err:#}");
    let left = w.vault().await;
    assert_eq!(left, all - charged, "every charged credit was burned from the vault");
    let rest = compux_sdk::ix::transfer_credits(m, &w.startup.pubkey(), &w.admin.pubkey(), left);
    compux_client::send(&w.rpc, s, "the rest", &w.startup, &[rest], &[]).await.unwrap();
    assert_eq!(w.account_state().await.settlement.total_settled, charged, "burned == charged");
}

/// The auditor's finding on issue 24: a request's usage belongs to the moment it was
/// admitted (its credits were held then), not to the moment it finished. Stamped at the
/// finish, a request admitted against a facility before its freeze or maturity and finishing
/// after it was moved to the borrower's vault, where the balance may not cover it, while
/// the escrow kept the credits it held.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_usage_of_the_moment_it_was_admitted() {
    use compux_relayer::jobs::balances;
    use compux_relayer::sim::SimOptions;
    let w = world().await;
    let slow =
        SimOptions { name: "slow".into(), completion_tokens: 10, latency_ms: 1_500, ..Default::default() };
    const KEY: &str = "sk-admitted";
    let (base, _up) = w.serve(KEY, slow).await;
    balances::refresh(&w.rpc, &w.meter, &[w.account.address]).await.unwrap();
    let sent = compux_relayer::clock::now_ms();
    assert_eq!(ask(&base, KEY).await, 200);
    let finished = compux_relayer::clock::now_ms();
    assert!(finished - sent >= 1_500, "the provider took its time");
    w.ledger.flush().await.unwrap();
    let stamped: i64 = sqlx::query_scalar("SELECT MAX(created_at_ms) FROM usage_records")
        .fetch_one(w.ledger.pool())
        .await
        .unwrap();
    // Admitted before the provider's 1.5 s began, however slowly this machine ran the rest.
    assert!(
        sent <= stamped && stamped <= finished - 1_500,
        "stamped {} ms after the request was sent, {} ms before it finished",
        stamped - sent,
        finished - stamped
    );
}

/// Issue 24, attack 7, through the relayer: the startup caps what the relayer may burn a
/// day. The relayer admits no more than the ceiling leaves (the announced one at once),
/// every request it served burns within it, and the next is refused with 402.
#[tokio::test(flavor = "multi_thread")]
async fn the_relayer_serves_no_more_than_the_owners_burn_ceiling_leaves() {
    use compux_relayer::jobs::balances;
    let w = world().await;
    const KEY: &str = "sk-ceiling";
    let (base, _up) =
        w.serve(KEY, compux_relayer::sim::SimOptions { completion_tokens: 100, ..Default::default() }).await;
    let ceiling = 200 * compux_sdk::constants::CREDIT_UNIT;
    let (m, s) = (&w.market, Sender::SILENT);
    let set = compux_sdk::ix::set_burn_ceiling(m, &w.startup.pubkey(), ceiling);
    compux_client::send(&w.rpc, s, "ceiling", &w.startup, &[set], &[]).await.unwrap();
    // In force from the notice on; the relayer honours it from the announcement.
    let applies = w.account_state().await.burn_ceiling.lower_at;
    let accounts = [w.account.address];
    balances::refresh(&w.rpc, &w.meter, &accounts).await.unwrap();
    let source = Source::Vault(w.account.address);
    assert_eq!(w.meter.balance(source).onchain, ceiling, "the vault holds 1,000, the ceiling leaves 200");
    w.set_clock(applies).await;
    let mut served = 0;
    while ask(&base, KEY).await == 200 {
        served += 1;
        assert!(served < 50, "never refused");
    }
    assert!(served >= 3, "{served} served");
    w.burn_everything().await;
    let charged = w.ledger.total_charged().await.unwrap();
    assert!(charged <= ceiling, "{charged} charged under a ceiling of {ceiling}");
    let account = w.account_state().await;
    assert_eq!(account.settlement.total_settled, charged, "every charge burned, within the ceiling");
    assert_eq!(account.burn_ceiling.burned, charged);
    balances::refresh(&w.rpc, &w.meter, &accounts).await.unwrap();
    let refused = send(&base, KEY).await;
    assert_eq!(refused.status(), 402, "what the ceiling leaves today covers no request");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "burn_ceiling_reached", "the refusal names the ceiling: {body}");
}

/// A relayer whose admitted usage could outlive the market's transfer notice (its longest
/// request, a balance read and its flush timer together) could see announced credits leave
/// before that usage burns: it refuses to settle, naming both figures.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayer_whose_usage_could_outlive_the_markets_notice_refuses_to_start() {
    let w = world().await;
    let notice = w.market_state().await.transfer_notice_secs as u64;
    let mut config = compux_relayer::Config::new("127.0.0.1:0".parse().unwrap(), Vec::new());
    config.rpc_url = w.rpc.url();
    config.market = Some(w.market.market);
    config.settler = Some(SettlerConfig::new("missing-relayer.json".into()));
    config.total_timeout_ms = notice * 1_000;
    let path = std::path::Path::new("/nonexistent/relayer.toml");
    let (ledger, meter) = (&w.ledger, &w.meter);
    let start = |c: compux_relayer::Config| async move {
        let settler = compux_relayer::settler(path, &c, ledger.clone(), meter.clone()).await;
        format!("{:#}", settler.err().expect("refused"))
    };
    let err = start(config.clone()).await;
    assert!(err.contains("transfer notice") && err.contains("total_timeout_ms"), "{err}");
    // Within the notice the check passes (and the next step, the keypair, is what fails here).
    config.total_timeout_ms = 60_000;
    let err = start(config).await;
    assert!(err.contains("settler keypair"), "{err}");
}
