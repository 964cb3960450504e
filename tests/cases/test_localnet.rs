//! The embedded localnet, driven by the real Solana clients: solana-rpc-client over HTTP
//! JSON-RPC and solana-pubsub-client over WebSocket, against the program and real SPL Token.

use std::time::Duration;

use anchor_lang::solana_program::program_pack::Pack;
use anchor_lang::{AccountDeserialize, Discriminator};
use anchor_spl::token::spl_token;
use compux_localnet::{Config, Localnet};
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::state::CreditAccount;
use compux_sdk::{ix, CompuxError, MarketKeys};
use futures_util::StreamExt;
use serde_json::{json, Value};
use solana_pubsub_client::nonblocking::pubsub_client::PubsubClient;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::ErrorKind;
use solana_rpc_client_api::config::CommitmentConfig;
use solana_rpc_client_api::config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcTransactionLogsConfig,
};
use solana_rpc_client_api::config::{RpcTransactionLogsFilter, UiAccountEncoding};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use solana_rpc_client_api::request::{RpcError, RpcResponseErrorData};
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};
use solana_system_interface::instruction as system_instruction;

use crate::program_test::default_config;

const SOL: u64 = 1_000_000_000;
const WAIT: Duration = Duration::from_secs(10);

/// A localnet on free ports with a funded admin, a quote mint and a market.
struct Net {
    net: Localnet,
    rpc: RpcClient,
    admin: Keypair,
    market: MarketKeys,
}

async fn localnet(config: Config) -> (Localnet, RpcClient) {
    let net = Localnet::start(Config { rpc_port: 0, ..config }).await.expect("localnet starts");
    let rpc = RpcClient::new_with_commitment(net.rpc_url(), CommitmentConfig::confirmed());
    (net, rpc)
}

async fn send(rpc: &RpcClient, payer: &Keypair, ixs: &[Instruction], signers: &[&Keypair]) -> Signature {
    try_send(rpc, payer, ixs, signers).await.expect("transaction confirmed")
}

async fn try_send(
    rpc: &RpcClient,
    payer: &Keypair,
    ixs: &[Instruction],
    signers: &[&Keypair],
) -> solana_rpc_client_api::client_error::Result<Signature> {
    let blockhash = rpc.get_latest_blockhash().await?;
    let mut all = vec![payer];
    all.extend(signers.iter().copied().filter(|k| k.pubkey() != payer.pubkey()));
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &all, blockhash);
    rpc.send_and_confirm_transaction(&tx).await
}

async fn airdrop(rpc: &RpcClient, to: &Pubkey, lamports: u64) {
    let sig = rpc.request_airdrop(to, lamports).await.expect("airdrop");
    assert!(rpc.confirm_transaction(&sig).await.expect("confirm airdrop"));
}

/// Creates an SPL account of `len` bytes owned by the token program, then runs `init`.
async fn create_token_thing(rpc: &RpcClient, payer: &Keypair, len: usize, init: Instruction, kp: &Keypair) {
    let rent = rpc.get_minimum_balance_for_rent_exemption(len).await.unwrap();
    let create =
        system_instruction::create_account(&payer.pubkey(), &kp.pubkey(), rent, len as u64, &spl_token::ID);
    send(rpc, payer, &[create, init], &[kp]).await;
}

impl Net {
    async fn new() -> Net {
        let (net, rpc) = localnet(Config::default()).await;
        let admin = Keypair::new();
        airdrop(&rpc, &admin.pubkey(), 10 * SOL).await;
        let mint = Keypair::new();
        let init = spl_token::instruction::initialize_mint2(
            &spl_token::ID,
            &mint.pubkey(),
            &admin.pubkey(),
            None,
            6,
        )
        .unwrap();
        create_token_thing(&rpc, &admin, spl_token::state::Mint::LEN, init, &mint).await;
        let market = MarketKeys::derive(&admin.pubkey(), &mint.pubkey());
        send(&rpc, &admin, &[ix::init_market(&market, default_config(), Keypair::new().pubkey())], &[]).await;
        Net { net, rpc, admin, market }
    }

    /// A funded startup with `quote` test quote units and an open credit account.
    async fn startup(&self, quote: u64) -> (Keypair, Pubkey) {
        let user = Keypair::new();
        airdrop(&self.rpc, &user.pubkey(), SOL).await;
        let account = Keypair::new();
        let init = spl_token::instruction::initialize_account3(
            &spl_token::ID,
            &account.pubkey(),
            &self.market.quote_mint,
            &user.pubkey(),
        )
        .unwrap();
        create_token_thing(&self.rpc, &user, spl_token::state::Account::LEN, init, &account).await;
        let mint_to = spl_token::instruction::mint_to(
            &spl_token::ID,
            &self.market.quote_mint,
            &account.pubkey(),
            &self.admin.pubkey(),
            &[],
            quote,
        )
        .unwrap();
        send(&self.rpc, &self.admin, &[mint_to], &[]).await;
        send(&self.rpc, &user, &[ix::open_credit_account(&self.market, &user.pubkey())], &[]).await;
        (user, account.pubkey())
    }

    async fn balance(&self, token_account: &Pubkey) -> u64 {
        self.rpc.get_token_account_balance(token_account).await.unwrap().amount.parse().unwrap()
    }
}

#[tokio::test]
async fn rpc_client_buys_credits_and_reads_them_back() {
    let n = Net::new().await;
    let (user, quote) = n.startup(1_000_000).await;
    let credit = n.market.credit_account(&user.pubkey());

    let sig = send(
        &n.rpc,
        &user,
        &[ix::buy_credits(&n.market, &user.pubkey(), &quote, 50_000_000, 1_000_000, 0)],
        &[],
    )
    .await;
    let bought = n.balance(&credit.vault).await;
    assert!(bought >= 50_000_000, "50 credits (and any bonus) in the vault, got {bought}");
    let supply: u64 = n.rpc.get_token_supply(&n.market.credit_mint).await.unwrap().amount.parse().unwrap();
    assert_eq!(supply, bought, "credit supply equals the only vault");
    let paid = 1_000_000 - n.balance(&quote).await;
    assert!(paid > 0);

    // The transaction and its event, as an indexer reads them.
    let tx = n
        .rpc
        .get_transaction(&sig, solana_transaction_status_client_types::UiTransactionEncoding::Base64)
        .await
        .unwrap();
    let logs: Vec<String> = tx.transaction.meta.unwrap().log_messages.unwrap();
    let purchased = events_from_logs(&logs).into_iter().find_map(|e| match e {
        CompuxEvent::CreditsPurchased(p) => Some(p),
        _ => None,
    });
    let purchased = purchased.expect("CreditsPurchased event in the logs");
    assert_eq!((purchased.credits + purchased.bonus_credits, purchased.quote_in), (bought, paid));

    // getProgramAccounts with the filters clients use: this market's credit accounts.
    let filters = vec![
        RpcFilterType::DataSize(8),
        RpcFilterType::Memcmp(Memcmp::new_raw_bytes(0, CreditAccount::DISCRIMINATOR.to_vec())),
        RpcFilterType::Memcmp(Memcmp::new_raw_bytes(8, n.market.market.to_bytes().to_vec())),
    ];
    let config = |filters| RpcProgramAccountsConfig {
        filters: Some(filters),
        account_config: RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            ..Default::default()
        },
        ..Default::default()
    };
    let none = n
        .rpc
        .get_program_ui_accounts_with_config(&compux_sdk::PROGRAM_ID, config(filters.clone()))
        .await
        .unwrap();
    assert!(none.is_empty(), "no account is 8 bytes long");
    let found = n
        .rpc
        .get_program_ui_accounts_with_config(&compux_sdk::PROGRAM_ID, config(filters[1..].to_vec()))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![credit.address]);
    let decoded = CreditAccount::try_deserialize(&mut &found[0].1.data.decode().unwrap()[..]).unwrap();
    assert_eq!((decoded.owner, decoded.total_purchased), (user.pubkey(), purchased.credits));

    // A failing purchase: the preflight names the program error, and nothing changes.
    let err =
        try_send(&n.rpc, &user, &[ix::buy_credits(&n.market, &user.pubkey(), &quote, 50_000_000, 1, 0)], &[])
            .await
            .unwrap_err();
    let ErrorKind::RpcError(RpcError::RpcResponseError { code, data, .. }) = err.kind() else {
        panic!("expected a JSON-RPC error, got {err:?}")
    };
    assert_eq!(*code, -32002, "preflight failure");
    let RpcResponseErrorData::SendTransactionPreflightFailure(sim) = data else {
        panic!("no simulation in {data:?}")
    };
    assert_eq!(
        sim.err.clone().map(TransactionError::from),
        Some(TransactionError::InstructionError(
            0,
            InstructionError::Custom(6000 + CompuxError::SlippageExceeded as u32)
        ))
    );
    // Natively, `msg!` output goes to stdout rather than the logs (docs/localnet.md); the
    // runtime's own failure line is there.
    let failed = format!("failed: custom program error: {:#x}", 6000 + CompuxError::SlippageExceeded as u32);
    assert!(sim.logs.as_ref().unwrap().iter().any(|l| l.ends_with(&failed)), "{:?}", sim.logs);
    assert_eq!(n.balance(&credit.vault).await, bought);
    assert_eq!(n.balance(&quote).await, 1_000_000 - paid);
    n.net.stop().await;
}

async fn raw(url: &str, body: &str) -> Value {
    let res = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    res.json().await.expect("a JSON-RPC response")
}

fn code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().unwrap_or_else(|| panic!("no error in {v}"))
}

#[tokio::test]
async fn malformed_requests_get_json_rpc_errors_and_change_nothing() {
    let (net, rpc) = localnet(Config::default()).await;
    let url = net.rpc_url();
    let key = Keypair::new().pubkey();
    airdrop(&rpc, &key, SOL).await;
    let slot = rpc.get_slot().await.unwrap();

    assert_eq!(code(&raw(&url, "{not json").await), -32700);
    assert_eq!(code(&raw(&url, r#"{"jsonrpc":"2.0","id":1}"#).await), -32600);
    let call = |method: &str, params: Value| {
        json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string()
    };
    assert_eq!(code(&raw(&url, &call("getTeapot", json!([]))).await), -32601);
    let short_key = raw(&url, &call("getBalance", json!(["abc"]))).await;
    assert_eq!(code(&short_key), -32602);
    assert!(short_key["error"]["message"].as_str().unwrap().contains("public key"));
    assert_eq!(code(&raw(&url, &call("getBalance", json!([42]))).await), -32602);
    let short_sig =
        raw(&url, &call("getSignatureStatuses", json!([[bs58::encode([1u8; 10]).into_string()]]))).await;
    assert_eq!(code(&short_sig), -32013, "signature length mismatch");
    assert_eq!(
        code(&raw(&url, &call("sendTransaction", json!(["%%%", {"encoding": "base64"}]))).await),
        -32602
    );
    assert_eq!(
        code(&raw(&url, &call("sendTransaction", json!(["AAAA", {"encoding": "base64"}]))).await),
        -32602
    );

    // A transaction whose signature does not match its message is refused as such.
    let payer = Keypair::new();
    airdrop(&rpc, &payer.pubkey(), SOL).await;
    let blockhash = rpc.get_latest_blockhash().await.unwrap();
    let mut tx = Transaction::new_signed_with_payer(
        &[system_instruction::transfer(&payer.pubkey(), &key, 1)],
        Some(&payer.pubkey()),
        &[&payer],
        blockhash,
    );
    tx.signatures[0] = Keypair::new().sign_message(b"something else");
    let wire = base64::Engine::encode(&base64::prelude::BASE64_STANDARD, bincode::serialize(&tx).unwrap());
    assert_eq!(
        code(&raw(&url, &call("sendTransaction", json!([wire, {"encoding": "base64"}]))).await),
        -32003
    );
    // A batch answers each member.
    let batch = raw(&url, &format!("[{},{}]", call("getHealth", json!([])), call("nope", json!([])))).await;
    assert_eq!((batch[0]["result"].as_str(), batch[1]["error"]["code"].as_i64()), (Some("ok"), Some(-32601)));

    assert_eq!(rpc.get_balance(&key).await.unwrap(), SOL, "nothing moved");
    assert!(rpc.get_slot().await.unwrap() > slot, "each airdrop made a block");
    assert_eq!(raw(&url, &call("getHealth", json!([]))).await["result"], "ok", "still serving");
    net.stop().await;
}

#[tokio::test]
async fn pubsub_notifies_signatures_accounts_logs_and_slots() {
    let n = Net::new().await;
    let (user, quote) = n.startup(1_000_000).await;
    let credit = n.market.credit_account(&user.pubkey());
    let ps = PubsubClient::new(&n.net.pubsub_url()).await.expect("pubsub connects");
    let (mut logs, _) = ps
        .logs_subscribe(
            RpcTransactionLogsFilter::Mentions(vec![compux_sdk::PROGRAM_ID.to_string()]),
            RpcTransactionLogsConfig { commitment: None },
        )
        .await
        .unwrap();
    let (mut vault, _) = ps
        .account_subscribe(
            &credit.vault,
            Some(RpcAccountInfoConfig { encoding: Some(UiAccountEncoding::Base64), ..Default::default() }),
        )
        .await
        .unwrap();
    let (mut slots, _) = ps.slot_subscribe().await.unwrap();

    let blockhash = n.rpc.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &[ix::buy_credits(&n.market, &user.pubkey(), &quote, 10_000_000, 1_000_000, 0)],
        Some(&user.pubkey()),
        &[&user],
        blockhash,
    );
    let (mut sig_stream, _) = ps.signature_subscribe(&tx.signatures[0], None).await.unwrap();
    n.rpc.send_transaction(&tx).await.unwrap();

    let done = tokio::time::timeout(WAIT, sig_stream.next()).await.expect("signature notification").unwrap();
    assert!(
        matches!(done.value, solana_rpc_client_api::response::RpcSignatureResult::ProcessedSignature(ref p) if p.err.is_none())
    );
    let l = tokio::time::timeout(WAIT, logs.next()).await.expect("logs notification").unwrap();
    assert_eq!(l.value.signature, tx.signatures[0].to_string());
    assert!(events_from_logs(&l.value.logs).iter().any(|e| matches!(e, CompuxEvent::CreditsPurchased(_))));
    let a = tokio::time::timeout(WAIT, vault.next()).await.expect("account notification").unwrap();
    let data = a.value.data.decode().unwrap();
    assert_eq!(spl_token::state::Account::unpack(&data).unwrap().amount, n.balance(&credit.vault).await);
    let s = tokio::time::timeout(WAIT, slots.next()).await.expect("slot notification").unwrap();
    assert_eq!(s.slot, s.parent + 1);
    n.net.stop().await;
}

#[tokio::test]
async fn ledger_keeps_state_across_restarts_and_reset_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { ledger: Some(dir.path().join("ledger")), ..Config::default() };
    let key = Keypair::new().pubkey();

    let (net, rpc) = localnet(config.clone()).await;
    airdrop(&rpc, &key, 3 * SOL).await;
    let now = rpc.get_block_time(rpc.get_slot().await.unwrap()).await.ok();
    // A year past the host's clock (the chain's clock starts at the host's and only moves
    // forward).
    let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let later = host + 365 * 86_400;
    let clock: Value = rpc
        .send(
            solana_rpc_client_api::request::RpcRequest::Custom { method: "compux_setClock" },
            json!([later]),
        )
        .await
        .unwrap();
    assert_eq!(clock["unix_timestamp"].as_i64(), Some(later), "{clock} (was {now:?})");
    let back: Result<Value, _> = rpc
        .send(
            solana_rpc_client_api::request::RpcRequest::Custom { method: "compux_setClock" },
            json!([later - 1_000]),
        )
        .await;
    assert!(back.unwrap_err().to_string().contains("only moves forward"));
    net.stop().await;

    let (net, rpc) = localnet(config.clone()).await;
    assert_eq!(rpc.get_balance(&key).await.unwrap(), 3 * SOL, "the airdrop survived a restart");
    let clock = rpc.get_account(&solana_sdk::sysvar::clock::ID).await.unwrap();
    let clock: solana_sdk::clock::Clock = bincode::deserialize(&clock.data).unwrap();
    assert!(clock.unix_timestamp >= later, "the moved clock survived a restart");
    net.stop().await;

    let (net, rpc) = localnet(Config { reset: true, ..config }).await;
    assert_eq!(rpc.get_balance(&key).await.unwrap(), 0, "--reset starts a new chain");
    net.stop().await;
}
