//! Every instruction driven through its worst case, for the compute-unit budget. On the SBF
//! ELF (`COMPUX_PROGRAM_SO`, as scripts/test.sh runs it) the figures are the metered VM's and
//! each instruction is held under its budget (figures in docs/benchmarks.md); natively the
//! program itself is unmetered (only its SPL Token CPIs count), so they are only printed.

use compux_sdk::constants::{CREDIT_UNIT, MAX_INSTALLMENTS, MAX_PERIODS};
use compux_sdk::ix::{self, AutoRefillParams, ReserveParams, SettleBatch};
use compux_sdk::pda;
use compux_sdk::state::{FacilityTerms, MarketUpdate};
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

/// The most one instruction may use; the relayer's hot path, which pays for every batch, less.
const INSTRUCTION_BUDGET: u64 = 200_000;
const BUDGETS: [(&str, u64); 2] = [("settle", 40_000), ("settle_facility", 100_000)];
/// The harness sends a compute-unit limit and a price with every transaction.
const HARNESS_BUDGET_IXS: u64 = 2;

/// Each measured instruction: its name, the units it used (its transaction's, less the
/// compute-budget instructions) and the limit the SDK asks for it.
#[derive(Default)]
struct Meter {
    rows: Vec<(String, u64, u64)>,
}

impl Meter {
    async fn run(&mut self, env: &mut TestEnv, name: &str, ixs: &[Instruction], signers: &[&Keypair]) {
        assert_ok(env.send(ixs, signers).await);
        let own = HARNESS_BUDGET_IXS * u64::from(compux_sdk::compute::BUDGET_INSTRUCTION_UNITS);
        let limit = u64::from(compux_sdk::compute::transaction_limit(ixs, HARNESS_BUDGET_IXS as u32)) - own;
        self.rows.push((name.to_string(), env.last_compute_units.saturating_sub(own), limit));
    }
}

fn budget(name: &str) -> u64 {
    let instruction = name.split(' ').next().unwrap_or(name);
    BUDGETS.iter().find(|(n, _)| *n == instruction).map_or(INSTRUCTION_BUDGET, |(_, b)| *b)
}

/// A facility with the most installments the program allows, in as many 9-day periods (within
/// the market's three-year term bound), every installment a tranche.
fn long_terms(borrower: solana_sdk::pubkey::Pubkey) -> FacilityTerms {
    FacilityTerms {
        installments: MAX_INSTALLMENTS,
        tranches: MAX_INSTALLMENTS,
        period_secs: 9 * DAY,
        ..default_terms(borrower)
    }
}

/// A wallet whose facility `nonce` in `market`, with its vault and escrow, takes at least
/// `tries` bump tries beyond the first of each search (about one wallet in 400 for 16).
fn long_searches(market: &Pubkey, nonce: u64, tries: u32) -> Keypair {
    let extra = |bump: u8| (u8::MAX - bump) as u32;
    loop {
        let kp = Keypair::new();
        let (facility, bump) = pda::facility(market, &kp.pubkey(), nonce);
        let total = extra(bump) + extra(pda::facility_vault(&facility).1) + extra(pda::escrow(&facility).1);
        if total >= tries {
            return kp;
        }
    }
}

#[tokio::test]
async fn compute_units_of_every_instruction_stay_within_budget() {
    let mut env = TestEnv::new().await;
    let (m, admin, relayer) = (env.market, env.admin.insecure_clone(), env.relayer.insecure_clone());
    let mut meter = Meter::default();
    let alice = env.user(1_000_000_000_000).await;
    let bob = env.user(1_000_000_000).await;
    let lender = env.user(1_000_000_000).await;
    let t0 = at_hour(PEAK_HOUR);
    env.set_time(t0).await;

    // Standard credits: the largest bulk tier.
    let buy = ix::buy_credits(&m, &alice.key(), &alice.quote, TIER2_MIN, u64::MAX, 0);
    meter.run(&mut env, "buy_credits (largest bulk tier)", &[buy], &[&alice.kp]).await;
    let announce = ix::announce_transfer(&m, &alice.key(), CREDIT_UNIT);
    meter.run(&mut env, "announce_transfer", &[announce], &[&alice.kp]).await;
    let ceiling = ix::set_burn_ceiling(&m, &alice.key(), u64::MAX);
    meter.run(&mut env, "set_burn_ceiling", &[ceiling], &[&alice.kp]).await;
    env.set_time(t0 + TRANSFER_NOTICE_SECS).await;
    let transfer = ix::transfer_credits(&m, &alice.key(), &bob.key(), CREDIT_UNIT);
    meter.run(&mut env, "transfer_credits", &[transfer], &[&alice.kp]).await;
    env.set_time(t0).await;
    let refill = AutoRefillParams {
        threshold: u64::MAX,
        refill_credits: TIER2_MIN,
        max_quote_per_refill: u64::MAX / 4,
        cap_quote: u64::MAX / 2,
        min_credits_per_refill: 0,
    };
    let configure = ix::configure_auto_refill(&m, &alice.key(), &alice.quote, refill);
    meter.run(&mut env, "configure_auto_refill", &[configure], &[&alice.kp]).await;
    meter
        .run(
            &mut env,
            "auto_refill (largest bulk tier)",
            &[ix::auto_refill(&m, &alice.key(), &alice.quote)],
            &[],
        )
        .await;

    // Settlement, the relayer's hot path.
    let batch = SettleBatch { seq: 1, amount: CREDIT_UNIT, batch_root: [7; 32], window_end: t0 };
    let settle = ix::settle(&m, &relayer.pubkey(), &alice.credit, batch);
    meter.run(&mut env, "settle", &[settle], &[&relayer]).await;

    // Reservations: the longest commitment, claimed to the last period.
    let p = ReserveParams {
        credits_per_period: CREDIT_UNIT,
        periods: MAX_PERIODS,
        period_secs: 60,
        max_price: u64::MAX,
        max_deposit: u64::MAX,
        max_fee: u64::MAX,
    };
    meter
        .run(&mut env, "reserve (520 periods)", &[ix::reserve(&m, &bob.key(), &bob.quote, 0, p)], &[&bob.kp])
        .await;
    meter.run(&mut env, "claim_period", &[ix::claim_period(&m, &bob.key(), &bob.quote, 0)], &[&bob.kp]).await;
    let cancel = ix::cancel_reservation(&m, &bob.key(), &bob.quote, 0);
    meter.run(&mut env, "cancel_reservation (clawback)", &[cancel], &[&bob.kp]).await;
    let two = ReserveParams { periods: 2, ..p };
    assert_ok(env.send(&[ix::reserve(&m, &bob.key(), &bob.quote, 1, two)], &[&bob.kp]).await);
    assert_ok(env.send(&[ix::claim_period(&m, &bob.key(), &bob.quote, 1)], &[&bob.kp]).await);
    env.set_time(t0 + 120).await;
    let lapse = ix::lapse_reservation(&m, &bob.key(), &bob.quote, 1);
    meter.run(&mut env, "lapse_reservation", &[lapse], &[]).await;

    // Facilities with the most installments.
    env.set_time(t0).await;
    let f = env.next_facility(&lender).await;
    env.track(f);
    let terms = long_terms(bob.key());
    let offer = ix::offer_facility(&m, &f, &lender.quote, terms);
    meter.run(&mut env, "offer_facility", &[offer], &[&lender.kp]).await;
    let accept = ix::accept_facility(&m, &f, &bob.key(), terms, 0);
    meter.run(&mut env, "accept_facility (120 installments)", &[accept], &[&bob.kp]).await;
    env.set_time(t0 + 9 * DAY).await;
    meter.run(&mut env, "release_tranche", &[ix::release_tranche(&m, &f)], &[]).await;
    meter.run(&mut env, "refresh_facility", &[ix::refresh_facility(&m, &f)], &[]).await;
    // Three years on, nothing paid: the freeze refreshes first, walking all 120 installments
    // and charging every late fee; the repayment then works on the longest schedule.
    env.set_time(t0 + 3 * 365 * DAY).await;
    let freeze = ix::freeze_escrow(&m, &f, &lender.key());
    meter.run(&mut env, "freeze_escrow (refreshes 120 due installments)", &[freeze], &[&lender.kp]).await;
    let repay = ix::repay(&m, &f, &bob.key(), &bob.quote, 1);
    meter.run(&mut env, "repay (120 installments due)", &[repay], &[&bob.kp]).await;
    let frozen_at = t0 + 3 * 365 * DAY;
    env.set_time(frozen_at + DAY + 1).await;
    meter.run(&mut env, "recover", &[ix::recover(&m, &f)], &[&lender.kp]).await;
    let close = ix::close_facility(&m, &f, &bob.key());
    meter.run(&mut env, "close_facility", &[close], &[]).await;
    let held = env.balance(&f.quote_vault).await;
    let withdraw = ix::withdraw_repayments(&m, &f, &lender.quote, held);
    meter.run(&mut env, "withdraw_repayments (closes)", &[withdraw], &[&lender.kp]).await;
    // A facility frozen in its term (usage stops at maturity): the relayer burns the usage
    // metered before the freeze within the window, thawing and refreezing the escrow.
    let h = env.next_facility(&lender).await;
    env.track(h);
    let h_at = t0 + 4 * 365 * DAY;
    env.set_time(h_at).await;
    assert_ok(env.send(&[ix::offer_facility(&m, &h, &lender.quote, terms)], &[&lender.kp]).await);
    assert_ok(env.send(&[ix::accept_facility(&m, &h, &bob.key(), terms, 0)], &[&bob.kp]).await);
    let frozen_at = h_at + terms.period_secs + terms.default_after_secs;
    env.set_time(frozen_at).await;
    assert_ok(env.send(&[ix::freeze_escrow(&m, &h, &lender.key())], &[&lender.kp]).await);
    let late = SettleBatch { seq: 1, amount: 1, batch_root: [8; 32], window_end: frozen_at - 1 };
    let settle_frozen = ix::settle_facility(&m, &relayer.pubkey(), &h, late);
    meter.run(&mut env, "settle_facility (freeze window)", &[settle_frozen], &[&relayer]).await;

    // An offer cancelled.
    let g = env.next_facility(&lender).await;
    env.track(g);
    assert_ok(env.send(&[ix::offer_facility(&m, &g, &lender.quote, terms)], &[&lender.kp]).await);
    meter.run(&mut env, "cancel_offer", &[ix::cancel_offer(&m, &g, &lender.quote)], &[&lender.kp]).await;

    // A lender whose addresses need long bump searches: the facility, its vault and its escrow
    // take at least 16 tries beyond the first (24,000 units) between them, past what a fixed
    // allowance gave; the SDK's limit counts them (compux_sdk::compute).
    let nonce = env.state::<compux_sdk::state::Market>(&m.market).await.facility_count;
    let unlucky = long_searches(&m.market, nonce, 16);
    let unlucky = env.user_with(unlucky, m, 1_000_000_000).await;
    let h = env.next_facility(&unlucky).await;
    env.track(h);
    let offer = ix::offer_facility(&m, &h, &unlucky.quote, terms);
    meter.run(&mut env, "offer_facility (16+ extra bump tries)", &[offer], &[&unlucky.kp]).await;

    // Admin.
    let creator = Keypair::new();
    env.fund(&creator.pubkey(), 1_000_000_000).await;
    let other_quote = env.create_mint(6).await;
    let keys = compux_sdk::MarketKeys::derive(&creator.pubkey(), &other_quote);
    let init = ix::init_market(&keys, default_config(), relayer.pubkey());
    meter.run(&mut env, "init_market", &[init], &[&creator]).await;
    let successor = Keypair::new();
    let propose = ix::propose_admin(&m, &admin.pubkey(), successor.pubkey());
    meter.run(&mut env, "propose_admin", &[propose], &[&admin]).await;
    let accept_admin = ix::accept_admin(&m, &successor.pubkey());
    meter.run(&mut env, "accept_admin", &[accept_admin], &[&successor]).await;
    let back = ix::propose_admin(&m, &successor.pubkey(), admin.pubkey());
    assert_ok(env.send(&[back, ix::accept_admin(&m, &admin.pubkey())], &[&successor, &admin]).await);
    let fund = ix::fund_recovery_reserve(&m, &alice.key(), &alice.quote, 1);
    meter.run(&mut env, "fund_recovery_reserve", &[fund], &[&alice.kp]).await;
    let dest = env.create_token_account(&m.quote_mint, &admin.pubkey()).await;
    let update = MarketUpdate { financing: Some(default_financing()), ..Default::default() };
    meter
        .run(
            &mut env,
            "update_market (financing)",
            &[ix::update_market(&m, &admin.pubkey(), update)],
            &[&admin],
        )
        .await;
    let now = env.bank.clock().await.unwrap().unix_timestamp;
    let due = env.pending().await.effective_at;
    env.set_time(due).await;
    meter.run(&mut env, "apply_market_update", &[ix::apply_market_update(&m)], &[]).await;
    env.set_time(now).await;
    let w = ix::withdraw_treasury(&m, &admin.pubkey(), &dest, 1);
    meter.run(&mut env, "withdraw_treasury", &[w], &[&admin]).await;
    let w = ix::withdraw_reserve(&m, &admin.pubkey(), &dest, 1);
    meter.run(&mut env, "withdraw_reserve", &[w], &[&admin]).await;
    meter
        .run(&mut env, "open_credit_account", &[ix::open_credit_account(&m, &admin.pubkey())], &[&admin])
        .await;
    env.track_account(m.credit_account(&admin.pubkey()));

    let metered = matches!(env.bank.runtime(), compux_native::Runtime::Elf(_));
    if metered {
        println!("\ncompute units on the SBF ELF, the limit the SDK sets, and the budget:");
    } else {
        println!("\ncompute units of the SPL Token CPIs (native run; the program's own on the ELF):");
    }
    let mut over = Vec::new();
    for (name, units, limit) in &meter.rows {
        let budget = budget(name);
        println!(
            "  {name:48} {units:>8}  limit {limit:>7} ({:>3}% of it)  budget {budget}",
            100 * units / limit
        );
        if metered && *units > budget {
            over.push(format!("{name}: {units} units, over its budget of {budget}"));
        }
    }
    assert!(over.is_empty(), "instructions over their compute-unit budget: {over:#?}");
    // Every instruction of the program is measured.
    let idl: serde_json::Value = serde_json::from_str(include_str!("../../idl/compux.json")).unwrap();
    let mut all: Vec<&str> =
        idl["instructions"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    let mut measured: Vec<&str> = meter.rows.iter().map(|(n, _, _)| n.split(' ').next().unwrap()).collect();
    all.sort();
    measured.sort();
    measured.dedup();
    assert_eq!(measured, all, "an instruction without a worst case measured");
}
