//! Every fixed account of the money-moving instructions, swapped for an account of the right
//! shape that belongs to someone else: each swap fails with the specific error. Anchor checks
//! accounts before any handler runs, so the facility's state does not matter here.

use anchor_lang::error::ErrorCode;
use compux_sdk::ix::{self, ReserveParams, SettleBatch};
use compux_sdk::CompuxError;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

/// `ixn` with account `index` replaced by `with`, signed by `signers` (and the payer).
async fn swapped(
    env: &mut TestEnv,
    ixn: &Instruction,
    index: usize,
    with: Pubkey,
    signers: &[&Keypair],
) -> TxResult {
    let mut ixn = ixn.clone();
    ixn.accounts[index].pubkey = with;
    env.send(&[ixn], signers).await
}

#[tokio::test]
async fn facility_instructions_refuse_every_foreign_account() {
    let mut env = TestEnv::new().await;
    let m = env.market;
    let lender = env.user(1_000_000).await;
    let borrower = env.user(1_000_000).await;
    let other = env.user(1_000_000).await;
    let t0 = at_hour(9);
    let f = env.accepted_facility(&lender, &borrower, t0).await;
    // Another lender's open offer: its vault holds a principal the market PDA controls.
    let g = env.offer(&other, default_terms(borrower.key())).await;
    let h = env.offer(&lender, default_terms(borrower.key())).await;
    let loot = env.create_token_account(&m.quote_mint, &other.key()).await;
    let terms = default_terms(borrower.key());
    let (lk, bk) = (lender.kp.insecure_clone(), borrower.kp.insecure_clone());
    use CompuxError::{WrongMint, WrongVault};

    // accept_facility: [borrower, market, facility, borrower_account, quote_vault, treasury,
    // recovery_reserve, escrow, credit_mint, token_program]
    let accept = ix::accept_facility(&m, &h, &borrower.key(), terms, 0);
    for (i, with) in [(4, g.quote_vault), (5, loot), (6, loot), (7, g.escrow)] {
        assert_compux_err(swapped(&mut env, &accept, i, with, &[&bk]).await, WrongVault);
    }
    // cancel_offer: [lender, market, facility, quote_vault, escrow, destination, token_program]
    let cancel = ix::cancel_offer(&m, &h, &lender.quote);
    for (i, with) in [(3, g.quote_vault), (4, g.escrow)] {
        assert_compux_err(swapped(&mut env, &cancel, i, with, &[&lk]).await, WrongVault);
    }
    let other_mint = env.create_mint(6).await;
    let foreign = env.create_token_account(&other_mint, &lender.key()).await;
    assert_compux_err(swapped(&mut env, &cancel, 5, foreign, &[&lk]).await, WrongMint);
    // close_facility: [market, facility, lender, quote_vault, escrow, borrower_account, vault,
    // credit_mint, token_program]
    let close = ix::close_facility(&m, &f, &borrower.key());
    let seeds = swapped(&mut env, &close, 5, other.credit.address, &[]).await;
    assert_anchor_err(seeds, ErrorCode::ConstraintSeeds);
    for (i, with) in [(3, g.quote_vault), (4, g.escrow), (6, other.credit.vault)] {
        assert_compux_err(swapped(&mut env, &close, i, with, &[]).await, WrongVault);
    }
    // recover: [lender, market, facility, escrow, credit_mint, recovery_reserve, quote_vault,
    // token_program]
    let recover = ix::recover(&m, &f);
    for (i, with) in [(3, g.escrow), (5, loot), (6, loot)] {
        assert_compux_err(swapped(&mut env, &recover, i, with, &[&lk]).await, WrongVault);
    }
    // freeze_escrow: [lender, market, facility, escrow, credit_mint, token_program]
    let freeze = ix::freeze_escrow(&m, &f, &lender.key());
    assert_compux_err(swapped(&mut env, &freeze, 3, g.escrow, &[&lk]).await, WrongVault);
    // settle_facility: [relayer, market, facility, escrow, credit_mint, token_program]
    let relayer = env.relayer.insecure_clone();
    let batch = SettleBatch { seq: 1, amount: 1, batch_root: [1; 32], window_end: t0 };
    let settle = ix::settle_facility(&m, &relayer.pubkey(), &f, batch);
    let fake_mint = env.create_mint(6).await;
    assert_compux_err(swapped(&mut env, &settle, 4, fake_mint, &[&relayer]).await, WrongMint);
    // withdraw_repayments: [lender, market, facility, quote_vault, destination, token_program]
    let withdraw = ix::withdraw_repayments(&m, &f, &lender.quote, 1);
    assert_compux_err(swapped(&mut env, &withdraw, 3, g.quote_vault, &[&lk]).await, WrongVault);
    assert_eq!(env.balance(&g.quote_vault).await, PRINCIPAL, "the other offer's principal is intact");
}

#[tokio::test]
async fn reservation_and_treasury_instructions_refuse_every_foreign_account() {
    let mut env = TestEnv::new().await;
    let (m, admin) = (env.market, env.admin.insecure_clone());
    let alice = env.user(20_000_000).await;
    let bob = env.user(20_000_000).await;
    env.set_time(at_hour(9)).await;
    let p = ReserveParams {
        credits_per_period: CREDIT_UNIT_TEST,
        periods: 2,
        period_secs: DAY,
        max_price: BASE_PRICE,
        max_deposit: u64::MAX,
        max_fee: u64::MAX,
    };
    for u in [&alice, &bob] {
        assert_ok(env.send(&[ix::reserve(&m, &u.key(), &u.quote, 0, p)], &[&u.kp]).await);
    }
    let loot = env.create_token_account(&m.quote_mint, &alice.key()).await;
    let ak = alice.kp.insecure_clone();

    // claim_period: [owner, market, credit_account, reservation, vault, credit_mint,
    // owner_quote, treasury, deposit_vault, token_program]
    let claim = ix::claim_period(&m, &alice.key(), &alice.quote, 0);
    assert_anchor_err(
        swapped(&mut env, &claim, 3, bob.credit.reservation(0), &[&ak]).await,
        ErrorCode::ConstraintSeeds,
    );
    for (i, with) in [(4, bob.credit.vault), (7, loot), (8, loot)] {
        assert_compux_err(swapped(&mut env, &claim, i, with, &[&ak]).await, CompuxError::WrongVault);
    }
    // lapse_reservation: [owner, market, reservation, deposit_vault, treasury, owner_quote, ..]
    env.set_time(at_hour(9) + 2 * DAY).await;
    let lapse = ix::lapse_reservation(&m, &alice.key(), &alice.quote, 0);
    assert_compux_err(swapped(&mut env, &lapse, 0, bob.key(), &[]).await, CompuxError::NotAccountOwner);
    for (i, with) in [(3, loot), (4, loot)] {
        assert_compux_err(swapped(&mut env, &lapse, i, with, &[]).await, CompuxError::WrongVault);
    }
    assert_compux_err(swapped(&mut env, &lapse, 5, bob.quote, &[]).await, CompuxError::WrongTokenOwner);

    // withdraw_reserve: [admin, market, recovery_reserve, destination, token_program]
    let withdraw = ix::withdraw_reserve(&m, &admin.pubkey(), &loot, 1);
    assert_compux_err(swapped(&mut env, &withdraw, 2, m.treasury, &[&admin]).await, CompuxError::WrongVault);
    let other_mint = env.create_mint(6).await;
    let foreign = env.create_token_account(&other_mint, &admin.pubkey()).await;
    assert_compux_err(swapped(&mut env, &withdraw, 3, foreign, &[&admin]).await, CompuxError::WrongMint);
    let mut ixn = withdraw.clone();
    ixn.accounts[0].pubkey = alice.key();
    assert_compux_err(env.send(&[ixn], &[&ak]).await, CompuxError::NotAdmin);
}

const CREDIT_UNIT_TEST: u64 = compux_sdk::constants::CREDIT_UNIT;
