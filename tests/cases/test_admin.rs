use anchor_lang::error::ErrorCode;
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use compux_sdk::state::{Market, MarketUpdate};
use compux_sdk::{ix, CompuxError, MarketKeys};
use solana_sdk::program_option::COption;
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

#[tokio::test]
async fn init_market_creates_pda_controlled_mint_and_vaults() {
    let mut env = TestEnv::bare().await;
    let admin = env.admin.insecure_clone();
    let keys = MarketKeys::derive(&admin.pubkey(), &env.quote_mint);
    let logs = assert_ok(
        env.send(&[ix::init_market(&keys, default_config(), env.relayer.pubkey())], &[&admin]).await,
    );

    let m: Market = env.state(&keys.market).await;
    assert_eq!(m.admin, admin.pubkey());
    assert_eq!(m.relayer, env.relayer.pubkey());
    assert_eq!(m.config(), default_config());
    assert!(!m.paused);

    let mint = env.mint(&keys.credit_mint).await;
    assert_eq!(mint.decimals, 6);
    assert_eq!(mint.supply, 0);
    assert_eq!(mint.mint_authority, COption::Some(keys.market));
    assert_eq!(mint.freeze_authority, COption::Some(keys.market));
    for vault in [keys.treasury, keys.recovery_reserve, keys.deposit_vault] {
        let t = env.token_account(&vault).await;
        assert_eq!(t.owner, keys.market, "vault authority is the market PDA");
        assert_eq!(t.mint, env.quote_mint);
    }
    let events = events_from_logs(&logs);
    assert!(
        matches!(&events[..], [CompuxEvent::MarketInitialized(e)] if e.market == keys.market && e.config == default_config())
    );
}

#[tokio::test]
async fn init_market_twice_is_rejected() {
    let mut env = TestEnv::new().await;
    let admin = env.admin.insecure_clone();
    let mut config = default_config();
    config.base_price = 1;
    let hijack = Keypair::new().pubkey();
    // Anchor's `init` refuses an address that already holds an account; which system-program
    // error surfaces depends on the runtime (this bank lacks CreateAccountAllowPrefund), so the
    // test pins what matters: the transaction fails and the market is untouched.
    let res = env.send(&[ix::init_market(&env.market, config, hijack)], &[&admin]).await;
    assert!(res.is_err(), "re-initialisation must fail");
    let market = env.market.market;
    let m: Market = env.state(&market).await;
    assert_eq!((m.relayer, m.config()), (env.relayer.pubkey(), default_config()));
}

#[tokio::test]
async fn init_market_rejects_invalid_config() {
    let mut env = TestEnv::bare().await;
    let admin = env.admin.insecure_clone();
    let keys = MarketKeys::derive(&admin.pubkey(), &env.quote_mint);
    let relayer = env.relayer.pubkey();

    let mut c = default_config();
    c.base_price = 0;
    assert_compux_err(
        env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
        CompuxError::InvalidPrice,
    );

    let mut c = default_config();
    c.hour_multipliers_bps[5] = 999;
    assert_compux_err(
        env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
        CompuxError::InvalidHourMultiplier,
    );

    let mut c = default_config();
    c.bulk_tiers.reverse();
    assert_compux_err(
        env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
        CompuxError::InvalidBulkTiers,
    );

    let mut c = default_config();
    c.bulk_tiers = (1..=9).map(|i| compux_sdk::state::BulkTier { min_credits: i, bonus_bps: 1 }).collect();
    assert_compux_err(
        env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
        CompuxError::InvalidBulkTiers,
    );

    let mut c = default_config();
    c.reserve_discounts[1].discount_bps = 9_001;
    assert_compux_err(
        env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
        CompuxError::InvalidReserveDiscounts,
    );

    let mut c = default_config();
    c.early_termination_fee_bps = 10_001;
    assert_compux_err(
        env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
        CompuxError::InvalidFee,
    );

    // A notice shorter than a minute would let credits leave before the relayer burns
    // what it charged against them; one longer than 30 days would lock them.
    for secs in [0, 59, 30 * 86_400 + 1] {
        let mut c = default_config();
        c.transfer_notice_secs = secs;
        assert_compux_err(
            env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
            CompuxError::InvalidTransferNotice,
        );
    }

    // A change must stay on chain at least twice a transfer notice, so that an owner who
    // sees a new relayer key coming can still lower its burn ceiling in time; at most 90 days.
    for delay in [2 * TRANSFER_NOTICE_SECS - 1, 90 * 86_400 + 1] {
        let mut c = default_config();
        c.update_delay_secs = delay;
        assert_compux_err(
            env.send(&[ix::init_market(&keys, c, relayer)], &[&admin]).await,
            CompuxError::InvalidUpdateDelay,
        );
    }

    let res = env
        .send(&[ix::init_market(&keys, default_config(), solana_sdk::pubkey::Pubkey::default())], &[&admin])
        .await;
    assert_compux_err(res, CompuxError::NotRelayer);
    assert!(env.account(&keys.market).await.is_none(), "no half-created market");
}

#[tokio::test]
async fn update_market_is_partial_and_admin_only() {
    let mut env = TestEnv::new().await;
    let admin = env.admin.insecure_clone();
    let m = env.market;
    let new_relayer = Keypair::new().pubkey();

    let update = MarketUpdate {
        base_price: Some(20_000),
        relayer: Some(new_relayer),
        paused: Some(true),
        ..Default::default()
    };
    let now = env.bank.clock().await.unwrap().unix_timestamp;
    let logs =
        assert_ok(env.send(&[ix::update_market(&m, &admin.pubkey(), update.clone())], &[&admin]).await);
    let market: Market = env.state(&m.market).await;
    assert!(market.paused, "a pause applies at once");
    assert_eq!((market.base_price, market.relayer), (BASE_PRICE, env.relayer.pubkey()), "the rest waits");
    let pending = env.pending().await;
    let p = pending.params;
    assert_eq!(
        (pending.effective_at, p.base_price, p.relayer),
        (now + UPDATE_DELAY_SECS, 20_000, new_relayer)
    );
    assert_eq!(p.hour_multipliers_bps, default_config().hour_multipliers_bps, "untouched fields kept");
    assert!(matches!(
        &events_from_logs(&logs)[..],
        [CompuxEvent::MarketUpdateScheduled(s), CompuxEvent::MarketUpdated(e)]
            if e.paused && e.config.base_price == BASE_PRICE && s.params.base_price == 20_000
    ));

    // Not the admin.
    let mallory = env.user(0).await;
    let res = env.send(&[ix::update_market(&m, &mallory.key(), update.clone())], &[&mallory.kp]).await;
    assert_compux_err(res, CompuxError::NotAdmin);

    // The admin's key without its signature.
    let mut unsigned = ix::update_market(&m, &admin.pubkey(), update);
    unsigned.accounts[0].is_signer = false;
    assert_anchor_err(env.send(&[unsigned], &[]).await, ErrorCode::AccountNotSigner);

    // A copy of the market at another address that names mallory as admin.
    let forged = env.forged_market_with_pending(|f| f.admin = mallory.key()).await;
    let mut ixn =
        ix::update_market(&m, &mallory.key(), MarketUpdate { paused: Some(false), ..Default::default() });
    ixn.accounts[1].pubkey = forged;
    ixn.accounts[2].pubkey = compux_sdk::pda::pending_update(&forged).0;
    assert_anchor_err(env.send(&[ixn], &[&mallory.kp]).await, ErrorCode::ConstraintSeeds);

    // An invalid field rejects the whole update: nothing is half-applied.
    let bad =
        MarketUpdate { base_price: Some(1), early_termination_fee_bps: Some(20_000), ..Default::default() };
    assert_compux_err(
        env.send(&[ix::update_market(&m, &admin.pubkey(), bad)], &[&admin]).await,
        CompuxError::InvalidFee,
    );
    let after: Market = env.state(&m.market).await;
    assert_eq!((after.base_price, env.pending().await.params.base_price), (BASE_PRICE, 20_000));
}

#[tokio::test]
async fn admin_handover_takes_two_steps() {
    let mut env = TestEnv::new().await;
    let admin = env.admin.insecure_clone();
    let m = env.market;
    let next = env.user(0).await;
    let other = env.user(0).await;

    assert_compux_err(
        env.send(&[ix::accept_admin(&m, &next.key())], &[&next.kp]).await,
        CompuxError::NoPendingAdmin,
    );
    assert_compux_err(
        env.send(&[ix::propose_admin(&m, &next.key(), next.key())], &[&next.kp]).await,
        CompuxError::NotAdmin,
    );
    assert_ok(env.send(&[ix::propose_admin(&m, &admin.pubkey(), next.key())], &[&admin]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!(
        (market.admin, market.pending_admin),
        (admin.pubkey(), next.key()),
        "admin unchanged until accepted"
    );

    assert_compux_err(
        env.send(&[ix::accept_admin(&m, &other.key())], &[&other.kp]).await,
        CompuxError::NotPendingAdmin,
    );
    assert_ok(env.send(&[ix::accept_admin(&m, &next.key())], &[&next.kp]).await);
    let market: Market = env.state(&m.market).await;
    assert_eq!((market.admin, market.pending_admin), (next.key(), Default::default()));

    let res = env.send(&[ix::update_market(&m, &admin.pubkey(), MarketUpdate::default())], &[&admin]).await;
    assert_compux_err(res, CompuxError::NotAdmin);
    assert_ok(env.send(&[ix::update_market(&m, &next.key(), MarketUpdate::default())], &[&next.kp]).await);
}

#[tokio::test]
async fn fund_recovery_reserve_moves_exact_amounts() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let funder = env.user(5_000_000).await;

    assert_ok(
        env.send(&[ix::fund_recovery_reserve(&m, &funder.key(), &funder.quote, 1_250_000)], &[&funder.kp])
            .await,
    );
    assert_eq!(env.balance(&funder.quote).await, 3_750_000);
    assert_eq!(env.balance(&m.recovery_reserve).await, RESERVE_FUNDING + 1_250_000);

    assert_compux_err(
        env.send(&[ix::fund_recovery_reserve(&m, &funder.key(), &funder.quote, 0)], &[&funder.kp]).await,
        CompuxError::ZeroAmount,
    );

    // A token account of another mint.
    let other_mint = env.create_mint(6).await;
    let wrong = env.create_token_account(&other_mint, &funder.key()).await;
    env.mint_to(&other_mint, &wrong, 1_000).await;
    assert_compux_err(
        env.send(&[ix::fund_recovery_reserve(&m, &funder.key(), &wrong, 1_000)], &[&funder.kp]).await,
        CompuxError::WrongMint,
    );

    // A quote account of the right mint posing as the reserve.
    let fake_reserve = env.create_token_account(&env.quote_mint.clone(), &funder.key()).await;
    let mut ixn = ix::fund_recovery_reserve(&m, &funder.key(), &funder.quote, 1_000);
    ixn.accounts[3].pubkey = fake_reserve;
    assert_compux_err(env.send(&[ixn], &[&funder.kp]).await, CompuxError::WrongVault);
    assert_eq!(env.balance(&m.recovery_reserve).await, RESERVE_FUNDING + 1_250_000);
}
