//! Issue 24: the stateful fuzz test. Random sequences of every user-facing instruction, by
//! every role, with one person holding several wallets (each user lends, borrows and spends,
//! to itself too), the clock moved and usage settled at random, and the admin changing
//! prices under them. After every step the auditor's invariants hold (`TestEnv::send`
//! checks them after each transaction that lands; its reports of actions overdue, a stale
//! status or an unfrozen default, are what moving the clock without acting reaches), and so
//! does one more, for all the users' wallets together as if one person held them:
//! - they hold no more quote tokens than they brought plus what recoveries paid out of the
//!   reserve (nothing else pays a user from the market's accounts);
//! - they hold no more transferable credits than the quote they paid into the treasury
//!   (purchases, claimed periods, accepted principals) buys at the cheapest price the market
//!   ever offered (the lowest base price, hour multiplier, and the best bonus or discount).
//!
//! `COMPUX_FUZZ_CASES` cases (default 6) of `COMPUX_FUZZ_STEPS` steps (default 50), from
//! `COMPUX_FUZZ_SEED` (default fixed: CI is repeatable; any other value explores). A failure
//! names its seed and prints every step; each case found becomes a named test.

use anchor_lang::solana_program::program_pack::Pack;
use anchor_spl::token::spl_token;
use compux_sdk::constants::{BPS, CREDIT_UNIT};
use compux_sdk::ix::{self, AutoRefillParams, ReserveParams, SettleBatch};
use compux_sdk::state::{CreditAccount, Facility, FacilityTerms, Market, MarketUpdate, UnusedCredits};
use compux_sdk::FacilityKeys;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::program_test::*;

/// splitmix64: a tiny seeded generator, so a case replays from its seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `1..=n`, or 1 when `n` is 0 (an amount that may well be refused).
    fn amount(&mut self, n: u64) -> u64 {
        1 + self.below(n)
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const USERS: usize = 3;
const QUOTE_EACH: u64 = 1_000_000_000; // 1,000 quote tokens of 6 decimals

struct World {
    users: Vec<User>,
    /// Where the admin pays the treasury out to (not a user's).
    admin_quote: Pubkey,
    facilities: Vec<FacilityKeys>,
    /// The cheapest quote units per whole credit the market has offered so far.
    cheapest: f64,
}

/// What one whole credit costs at the market's best: the lowest hour, with the largest bulk
/// bonus or term discount.
fn cheapest_price(m: &Market) -> f64 {
    let hour = *m.hour_multipliers_bps.iter().min().unwrap() as f64 / BPS as f64;
    let bonus = m.bulk_tiers().iter().map(|t| t.bonus_bps).max().unwrap_or(0) as f64 / BPS as f64;
    let discount =
        m.reserve_discounts().iter().map(|d| d.discount_bps).max().unwrap_or(0) as f64 / BPS as f64;
    m.base_price as f64 * hour * (1.0 - discount).min(1.0 / (1.0 + bonus))
}

async fn balance_or_zero(env: &mut TestEnv, address: &Pubkey) -> u64 {
    match env.account(address).await {
        Some(a) if a.data.len() == spl_token::state::Account::LEN => {
            spl_token::state::Account::unpack(&a.data).map_or(0, |t| t.amount)
        }
        _ => 0,
    }
}

/// Sends `ix` signed by those of `keys` it asks for: a crank (a lapse, a release) is
/// anyone's, and the runtime refuses a signature the transaction does not name.
async fn send(env: &mut TestEnv, ix: Instruction, keys: &[&Keypair]) -> TxResult {
    let wanted = |k: &&Keypair| ix.accounts.iter().any(|a| a.is_signer && a.pubkey == k.pubkey());
    let signers: Vec<&Keypair> = keys.iter().copied().filter(wanted).collect();
    env.send(&[ix], &signers).await
}

/// The program error a failed transaction logged, by name, or the runtime error.
fn outcome(res: &TxResult) -> String {
    match res {
        Ok(_) => "ok".into(),
        Err(f) => f
            .logs
            .iter()
            .find_map(|l| l.split("Error Code: ").nth(1))
            .map(|c| c.split('.').next().unwrap_or(c).to_string())
            .unwrap_or_else(|| format!("{:?}", f.err)),
    }
}

/// One random step; returns what it did and how it ended.
async fn step(env: &mut TestEnv, w: &mut World, rng: &mut Rng) -> String {
    let m = env.market;
    let (admin, relayer) = (env.admin.insecure_clone(), env.relayer.insecure_clone());
    let now = env.bank.clock().await.unwrap().unix_timestamp;
    let u = rng.index(USERS);
    let v = rng.index(USERS);
    let (uk, uq, uc) = (w.users[u].kp.insecure_clone(), w.users[u].quote, w.users[u].credit);
    let vault = balance_or_zero(env, &uc.vault).await;
    let facility = (!w.facilities.is_empty()).then(|| w.facilities[rng.index(w.facilities.len())]);
    // A cancelled offer's account is gone.
    let fstate = match facility {
        Some(f) => {
            env.account(&f.address).await.and_then(|a| compux_sdk::decode::account::<Facility>(&a.data).ok())
        }
        None => None,
    };
    let user_of = |key: &Pubkey| w.users.iter().position(|x| x.key() == *key);

    let (what, res) = match rng.below(27) {
        0 | 1 => {
            let by =
                [3_600, 6 * 3_600, 86_400, 7 * 86_400, 31 * 86_400][rng.index(5)] + rng.below(3_600) as i64;
            env.set_time(now + by).await;
            return format!("warp +{by}s");
        }
        2 | 3 => {
            let credits = rng.amount(3_000) * CREDIT_UNIT;
            let buy = ix::buy_credits(&m, &uk.pubkey(), &uq, credits, u64::MAX, 0);
            (format!("user {u} buys {credits}"), send(env, buy, &[&uk]).await)
        }
        4 => {
            let amount = rng.below(vault + 1);
            (
                format!("user {u} announces {amount}"),
                send(env, ix::announce_transfer(&m, &uk.pubkey(), amount), &[&uk]).await,
            )
        }
        5 => {
            let amount = rng.amount(vault);
            let to = w.users[v].key();
            let t = ix::transfer_credits(&m, &uk.pubkey(), &to, amount);
            (format!("user {u} transfers {amount} to user {v}"), send(env, t, &[&uk]).await)
        }
        6 | 7 => {
            let account: CreditAccount = env.state(&uc.address).await;
            let amount = rng.amount(vault);
            let seq = account.settlement.settled_seq + 1;
            let b = SettleBatch { seq, amount, batch_root: [seq as u8; 32], window_end: now };
            let s = ix::settle(&m, &relayer.pubkey(), &uc, b);
            (format!("relayer burns {amount} of user {u} (batch {seq})"), send(env, s, &[&relayer]).await)
        }
        8 => {
            let per_day = [0, rng.amount(1_000) * CREDIT_UNIT][rng.index(2)];
            (
                format!("user {u} sets a ceiling of {per_day}"),
                send(env, ix::set_burn_ceiling(&m, &uk.pubkey(), per_day), &[&uk]).await,
            )
        }
        9 => {
            let account: CreditAccount = env.state(&uc.address).await;
            let p = ReserveParams {
                credits_per_period: rng.amount(500) * CREDIT_UNIT,
                periods: 2 + rng.below(4) as u16,
                period_secs: [30 * DAY, 45 * DAY, 91 * DAY][rng.index(3)],
                max_price: u64::MAX,
                max_deposit: u64::MAX,
                max_fee: u64::MAX,
            };
            let r = ix::reserve(&m, &uk.pubkey(), &uq, account.reservation_count, p);
            (format!("user {u} reserves {p:?}"), send(env, r, &[&uk]).await)
        }
        10..=12 => {
            let account: CreditAccount = env.state(&uc.address).await;
            let nonce = rng.below(account.reservation_count.max(1));
            let (name, i) = match rng.below(3) {
                0 => ("claims", ix::claim_period(&m, &uk.pubkey(), &uq, nonce)),
                1 => ("cancels", ix::cancel_reservation(&m, &uk.pubkey(), &uq, nonce)),
                _ => ("lapses", ix::lapse_reservation(&m, &uk.pubkey(), &uq, nonce)),
            };
            (format!("user {u} {name} reservation {nonce}"), send(env, i, &[&uk]).await)
        }
        13 => {
            // Lender u offers to borrower v (one person may be both).
            let market: Market = env.state(&m.market).await;
            let f = FacilityKeys::derive(&m.market, &uk.pubkey(), market.facility_count + rng.below(2));
            let installments = 1 + rng.below(6) as u16;
            let terms = FacilityTerms {
                principal: [PRINCIPAL, 10 * PRINCIPAL, 1_000_000_000][rng.index(3)],
                installments,
                tranches: rng.below(installments as u64 + 1) as u16,
                credit_multiplier_bps: 10_000 + rng.below(10_001) as u16,
                upfront_bps: rng.below(10_001) as u16,
                apr_bps: rng.below(3_000) as u16,
                unused_at_close: [UnusedCredits::Convert, UnusedCredits::Forfeit][rng.index(2)],
                ..default_terms(w.users[v].key())
            };
            let res = send(env, ix::offer_facility(&m, &f, &uq, terms), &[&uk]).await;
            // A cancelled offer's address may be offered again: tracked once.
            if res.is_ok() && !w.facilities.contains(&f) {
                env.track(f);
                w.facilities.push(f);
            }
            (format!("user {u} offers {:?} to user {v}", terms), res)
        }
        14..=22 => {
            let (Some(f), Some(state)) = (facility, fstate) else {
                return "no facility (yet, or any more)".into();
            };
            let lender = user_of(&state.lender).expect("the fuzz's own lender");
            let Some(borrower) = user_of(&state.terms.borrower) else { return "foreign borrower".into() };
            let (lk, lq) = (w.users[lender].kp.insecure_clone(), w.users[lender].quote);
            let (bk, bq) = (w.users[borrower].kp.insecure_clone(), w.users[borrower].quote);
            let name = format!("facility {} ({:?})", f.address, state.status);
            match rng.below(9) {
                0 => (
                    format!("{name}: lender cancels"),
                    send(env, ix::cancel_offer(&m, &f, &lq), &[&lk]).await,
                ),
                1 => {
                    let a = ix::accept_facility(&m, &f, &bk.pubkey(), state.terms, 0);
                    (format!("{name}: borrower accepts"), send(env, a, &[&bk]).await)
                }
                2 => {
                    let amount = rng.amount(2 * state.loan.installment_amount.max(1));
                    let r = ix::repay(&m, &f, &bk.pubkey(), &bq, amount);
                    (format!("{name}: borrower repays {amount}"), send(env, r, &[&bk]).await)
                }
                3 => (format!("{name}: release"), send(env, ix::release_tranche(&m, &f), &[&lk, &bk]).await),
                4 => (format!("{name}: refresh"), send(env, ix::refresh_facility(&m, &f), &[&lk, &bk]).await),
                5 => {
                    let fr = ix::freeze_escrow(&m, &f, &lk.pubkey());
                    (format!("{name}: lender freezes"), send(env, fr, &[&lk]).await)
                }
                6 => (format!("{name}: recover"), send(env, ix::recover(&m, &f), &[&lk, &bk]).await),
                7 => {
                    let c = ix::close_facility(&m, &f, &bk.pubkey());
                    (format!("{name}: close"), send(env, c, &[&bk]).await)
                }
                _ => {
                    if rng.below(2) == 0 {
                        let held = balance_or_zero(env, &f.quote_vault).await;
                        let amount = rng.amount(held);
                        let wd = ix::withdraw_repayments(&m, &f, &lq, amount);
                        (format!("{name}: lender withdraws {amount}"), send(env, wd, &[&lk]).await)
                    } else {
                        let amount = rng.amount(state.spendable_credits());
                        let seq = state.settlement.settled_seq + 1;
                        let b = SettleBatch { seq, amount, batch_root: [seq as u8; 32], window_end: now };
                        let s = ix::settle_facility(&m, &relayer.pubkey(), &f, b);
                        (
                            format!("{name}: relayer burns {amount} (batch {seq})"),
                            send(env, s, &[&relayer]).await,
                        )
                    }
                }
            }
        }
        24 => {
            // Auto-refill: the owner's bounds, anyone's crank.
            let p = AutoRefillParams {
                threshold: rng.amount(500) * CREDIT_UNIT,
                refill_credits: rng.amount(1_500) * CREDIT_UNIT,
                max_quote_per_refill: [u64::MAX, rng.amount(20_000_000)][rng.index(2)],
                min_credits_per_refill: [0, rng.amount(1_600) * CREDIT_UNIT][rng.index(2)],
                cap_quote: rng.amount(QUOTE_EACH),
            };
            let configure = ix::configure_auto_refill(&m, &uk.pubkey(), &uq, p);
            (format!("user {u} configures auto-refill {p:?}"), send(env, configure, &[&uk]).await)
        }
        25 => {
            let crank = ix::auto_refill(&m, &uk.pubkey(), &uq);
            (format!("anyone cranks user {u}'s auto-refill"), send(env, crank, &[]).await)
        }
        _ => {
            // The admin changes prices, hours, tiers and discounts under the users, pauses
            // and resumes, and pays the treasury out; anyone applies changes once due.
            match rng.below(4) {
                0 => {
                    let mut hours = [10_000u16; 24];
                    hours.iter_mut().for_each(|h| *h = 5_000 + rng.below(15_001) as u16);
                    let update = MarketUpdate {
                        base_price: Some(BASE_PRICE / 2 + rng.below(2 * BASE_PRICE)),
                        early_termination_fee_bps: Some(rng.below(10_001) as u16),
                        bulk_tiers: (rng.below(2) == 0).then(Vec::new),
                        reserve_discounts: (rng.below(2) == 0).then(Vec::new),
                        hour_multipliers_bps: (rng.below(2) == 0).then_some(hours),
                        ..Default::default()
                    };
                    let res =
                        send(env, ix::update_market(&m, &admin.pubkey(), update.clone()), &[&admin]).await;
                    (format!("admin schedules {update:?}"), res)
                }
                1 => (
                    "anyone applies the pending change".to_string(),
                    send(env, ix::apply_market_update(&m), &[]).await,
                ),
                2 => {
                    let paused = rng.below(2) == 0;
                    let update = MarketUpdate { paused: Some(paused), ..Default::default() };
                    let res = send(env, ix::update_market(&m, &admin.pubkey(), update), &[&admin]).await;
                    (format!("admin sets paused = {paused}"), res)
                }
                _ => {
                    let held = balance_or_zero(env, &m.treasury).await;
                    let amount = rng.amount(held);
                    let to = w.admin_quote;
                    let res =
                        send(env, ix::withdraw_treasury(&m, &admin.pubkey(), &to, amount), &[&admin]).await;
                    (format!("admin withdraws {amount} from the treasury"), res)
                }
            }
        }
    };
    format!("{what}: {}", outcome(&res))
}

/// The extra invariant, over all the users' wallets together.
async fn check_wallets(env: &mut TestEnv, w: &mut World) -> Result<(), String> {
    let address = env.market.market;
    let market: Market = env.state(&address).await;
    w.cheapest = w.cheapest.min(cheapest_price(&market));
    let mut quote = 0;
    let mut credits = 0;
    let mut paid = market.principals_received;
    for user in &w.users {
        quote += balance_or_zero(env, &user.quote).await;
        credits += balance_or_zero(env, &user.credit.vault).await;
        let account: CreditAccount = env.state(&user.credit.address).await;
        paid += account.total_quote_paid;
    }
    let brought = QUOTE_EACH * USERS as u64;
    if quote > brought + market.reserve_paid {
        return Err(format!(
            "the users hold {quote} quote units, more than the {brought} they brought plus {} paid from the reserve",
            market.reserve_paid
        ));
    }
    // A whole credit is CREDIT_UNIT base units; one base unit of slack per unit of quote
    // rounding is far below a credit's price, so a tolerance of one credit covers rounding.
    let buys = paid as f64 / w.cheapest * CREDIT_UNIT as f64 + CREDIT_UNIT as f64;
    if credits as f64 > buys {
        return Err(format!(
            "the users hold {credits} transferable credit units, more than the {paid} quote units they paid buy at the cheapest price ({:.0} units)",
            buys
        ));
    }
    Ok(())
}

#[tokio::test]
async fn random_sequences_of_every_instruction_keep_every_invariant() {
    let cases = env_number("COMPUX_FUZZ_CASES", 6);
    let steps = env_number("COMPUX_FUZZ_STEPS", 50);
    let first_seed = env_number("COMPUX_FUZZ_SEED", 0xC0_4D_0C_5E);
    let mut landed = 0usize;
    for case in 0..cases {
        let seed = first_seed.wrapping_add(case);
        let mut rng = Rng(seed);
        let mut env = TestEnv::new().await;
        env.overdue_actions_allowed = true;
        env.set_time(at_hour(rng.below(24) as i64)).await;
        let mut users = Vec::new();
        for _ in 0..USERS {
            users.push(env.user(QUOTE_EACH).await);
        }
        let address = env.market.market;
        let market: Market = env.state(&address).await;
        let admin = env.admin.pubkey();
        let quote_mint = env.market.quote_mint;
        let admin_quote = env.create_token_account(&quote_mint, &admin).await;
        let mut world =
            World { users, admin_quote, facilities: Vec::new(), cheapest: cheapest_price(&market) };
        let mut log = Vec::new();
        for n in 0..steps {
            let done = step(&mut env, &mut world, &mut rng).await;
            landed += usize::from(done.ends_with(": ok"));
            // Shown when the test fails (an auditor's violation panics inside `send`).
            println!("seed {seed} step {n:>3} {done}");
            log.push(format!("{n:>3} {done}"));
            if let Err(broken) = check_wallets(&mut env, &mut world).await {
                panic!(
                    "seed {seed} (COMPUX_FUZZ_SEED={seed} COMPUX_FUZZ_CASES=1), step {n}: {broken}\n{}",
                    log.join("\n")
                );
            }
        }
    }
    println!("fuzz: {cases} cases of {steps} steps from seed {first_seed}: {landed} transactions landed");
    assert!(landed > 0, "no step landed: the generator is broken");
}
