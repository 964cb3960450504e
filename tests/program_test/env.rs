use anchor_lang::prelude::{Clock, Pubkey};
use anchor_lang::solana_program::program_pack::Pack;
use anchor_lang::solana_program::system_instruction;
use anchor_lang::{AccountDeserialize, AccountSerialize};
use anchor_spl::token::spl_token;
use compux_sdk::audit::{self, CreditAccountSnapshot, FacilitySnapshot, Report, Snapshot};
use compux_sdk::state::FacilityTerms;
use compux_sdk::state::{CreditAccount, Market, MarketUpdate, PendingUpdate};
use compux_sdk::{ix, pda::CreditAccountKeys, FacilityKeys, MarketKeys};
use solana_sdk::account::Account as SolanaAccount;
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

use super::assert::assert_ok;
use super::fixtures::{default_config, default_terms, QUOTE_DECIMALS, RESERVE_FUNDING};

/// A failed transaction: the runtime error and the logs, for readable test failures.
#[derive(Debug)]
pub struct TxFailure {
    pub err: TransactionError,
    pub logs: Vec<String>,
}

pub type TxResult = Result<Vec<String>, TxFailure>;

/// A wallet with SOL, a quote token account and (once opened) a credit account.
pub struct User {
    pub kp: Keypair,
    pub quote: Pubkey,
    pub credit: CreditAccountKeys,
}

impl User {
    pub fn key(&self) -> Pubkey {
        self.kp.pubkey()
    }
}

pub struct TestEnv {
    /// The program natively, or its SBF ELF when `COMPUX_PROGRAM_SO` names one.
    pub bank: compux_native::Bank,
    pub admin: Keypair,
    pub relayer: Keypair,
    pub quote_authority: Keypair,
    pub quote_mint: Pubkey,
    pub market: MarketKeys,
    /// Every credit vault and escrow opened in any market, for the supply invariant.
    pub credit_vaults: Vec<Pubkey>,
    /// Every credit account and facility created (the bank has no account scan), by market.
    tracked_accounts: Vec<(Pubkey, CreditAccountKeys)>,
    tracked_facilities: Vec<FacilityKeys>,
    nonce: u32,
    /// Compute units the last transaction consumed (its compute-budget instructions included).
    pub last_compute_units: u64,
    /// Accept the auditor's reports of actions overdue (a stale status, an unfrozen
    /// default), which random sequences reach by moving the clock and not acting.
    pub overdue_actions_allowed: bool,
}

impl TestEnv {
    /// A bank with one market initialised by `admin` with `default_config()`, its recovery
    /// reserve funded with `RESERVE_FUNDING`.
    pub async fn new() -> Self {
        let mut env = Self::bare().await;
        let market = env.create_market(&env.admin.insecure_clone(), env.quote_mint).await;
        env.market = market;
        env.fund_reserve(RESERVE_FUNDING).await;
        env
    }

    /// The admin puts `amount` freshly minted test quote into the recovery reserve.
    pub async fn fund_reserve(&mut self, amount: u64) {
        let (m, admin) = (self.market, self.admin.insecure_clone());
        let from = self.create_token_account(&m.quote_mint, &admin.pubkey()).await;
        self.mint_to(&m.quote_mint, &from, amount).await;
        self.send(&[ix::fund_recovery_reserve(&m, &admin.pubkey(), &from, amount)], &[&admin])
            .await
            .expect("fund_recovery_reserve");
    }

    /// The market's next facility number.
    pub async fn next_facility(&mut self, lender: &User) -> FacilityKeys {
        let m = self.market;
        let market: Market = self.state(&m.market).await;
        FacilityKeys::derive(&m.market, &lender.key(), market.facility_count)
    }

    /// A bank with a quote mint and funded admin and relayer, but no market yet.
    pub async fn bare() -> Self {
        if std::env::var_os("RUST_LOG").is_none() {
            // The runtime logs every instruction at DEBUG; keep failures readable.
            unsafe { std::env::set_var("RUST_LOG", "error") };
        }
        let runtime = compux_native::Runtime::from_env();
        let bank = compux_native::Bank::start(&runtime, &[]).await.unwrap_or_else(|e| panic!("{e}"));
        let mut env = Self {
            bank,
            admin: Keypair::new(),
            relayer: Keypair::new(),
            quote_authority: Keypair::new(),
            quote_mint: Pubkey::default(),
            market: MarketKeys::derive(&Pubkey::default(), &Pubkey::default()),
            credit_vaults: Vec::new(),
            tracked_accounts: Vec::new(),
            tracked_facilities: Vec::new(),
            nonce: 0,
            last_compute_units: 0,
            overdue_actions_allowed: false,
        };
        env.fund(&env.admin.pubkey(), 10_000_000_000).await;
        env.fund(&env.relayer.pubkey(), 1_000_000_000).await;
        env.quote_mint = env.create_mint(QUOTE_DECIMALS).await;
        env
    }

    pub async fn create_market(&mut self, creator: &Keypair, quote_mint: Pubkey) -> MarketKeys {
        let keys = MarketKeys::derive(&creator.pubkey(), &quote_mint);
        self.send(&[ix::init_market(&keys, default_config(), self.relayer.pubkey())], &[creator])
            .await
            .expect("init_market");
        keys
    }

    // ---- transactions ----

    /// Sends `ixs` signed by the payer and `signers`, with the compute-unit limit the SDK
    /// sets (on the ELF, the VM fails any transaction that needs more). A priority fee that
    /// changes each time keeps identical transactions from being deduplicated.
    pub async fn send(&mut self, ixs: &[Instruction], signers: &[&Keypair]) -> TxResult {
        self.nonce += 1;
        let all = compux_sdk::compute::with_budget(ixs, self.nonce as u64);
        let payer = self.bank.payer().insecure_clone();
        let mut keys: Vec<&Keypair> = vec![&payer];
        keys.extend(signers.iter().copied().filter(|k| k.pubkey() != payer.pubkey()));
        let (blockhash, _) = self.bank.latest_blockhash().await.expect("blockhash");
        let tx = Transaction::new_signed_with_payer(&all, Some(&payer.pubkey()), &keys, blockhash);
        let out = self.bank.process(tx.into()).await.expect("bank");
        self.last_compute_units = out.compute_units;
        let logs = out.logs;
        match out.result {
            Ok(()) => {
                // Every state a test reaches must pass the auditor's invariant checker.
                if let Some(report) = self.audit().await {
                    let allowed =
                        |v: &&audit::Violation| self.overdue_actions_allowed && v.is_overdue_action();
                    let broken: Vec<_> = report.violations.iter().filter(|v| !allowed(v)).collect();
                    assert!(broken.is_empty(), "auditor after a transaction: {broken:#?}");
                }
                Ok(logs)
            }
            Err(err) => Err(TxFailure { err, logs }),
        }
    }

    pub async fn fund(&mut self, to: &Pubkey, lamports: u64) {
        let payer = self.bank.payer().pubkey();
        self.send(&[system_instruction::transfer(&payer, to, lamports)], &[]).await.expect("fund");
    }

    // ---- tokens ----

    pub async fn create_mint(&mut self, decimals: u8) -> Pubkey {
        let mint = Keypair::new();
        let rent = self.rent(spl_token::state::Mint::LEN).await;
        let payer = self.bank.payer().pubkey();
        let ixs = [
            system_instruction::create_account(
                &payer,
                &mint.pubkey(),
                rent,
                spl_token::state::Mint::LEN as u64,
                &spl_token::ID,
            ),
            spl_token::instruction::initialize_mint2(
                &spl_token::ID,
                &mint.pubkey(),
                &self.quote_authority.pubkey(),
                None,
                decimals,
            )
            .unwrap(),
        ];
        self.send(&ixs, &[&mint]).await.expect("create mint");
        mint.pubkey()
    }

    pub async fn create_token_account(&mut self, mint: &Pubkey, owner: &Pubkey) -> Pubkey {
        let account = Keypair::new();
        let rent = self.rent(spl_token::state::Account::LEN).await;
        let payer = self.bank.payer().pubkey();
        let ixs = [
            system_instruction::create_account(
                &payer,
                &account.pubkey(),
                rent,
                spl_token::state::Account::LEN as u64,
                &spl_token::ID,
            ),
            spl_token::instruction::initialize_account3(&spl_token::ID, &account.pubkey(), mint, owner)
                .unwrap(),
        ];
        self.send(&ixs, &[&account]).await.expect("create token account");
        account.pubkey()
    }

    /// Mints test quote (or any mint created by `create_mint`) to `to`.
    pub async fn mint_to(&mut self, mint: &Pubkey, to: &Pubkey, amount: u64) {
        let auth = self.quote_authority.insecure_clone();
        let ix =
            spl_token::instruction::mint_to(&spl_token::ID, mint, to, &auth.pubkey(), &[], amount).unwrap();
        self.send(&[ix], &[&auth]).await.expect("mint_to");
    }

    /// A funded wallet with `quote` test quote units, and its credit account in `market`
    /// opened.
    pub async fn user_in(&mut self, market: MarketKeys, quote: u64) -> User {
        self.user_with(Keypair::new(), market, quote).await
    }

    /// A user of `market` whose wallet is `kp` (a key chosen for its addresses).
    pub async fn user_with(&mut self, kp: Keypair, market: MarketKeys, quote: u64) -> User {
        self.fund(&kp.pubkey(), 1_000_000_000).await;
        let quote_account = self.create_token_account(&market.quote_mint, &kp.pubkey()).await;
        if quote > 0 {
            self.mint_to(&market.quote_mint, &quote_account, quote).await;
        }
        self.send(&[ix::open_credit_account(&market, &kp.pubkey())], &[&kp])
            .await
            .expect("open_credit_account");
        let credit = market.credit_account(&kp.pubkey());
        self.credit_vaults.push(credit.vault);
        self.tracked_accounts.push((market.market, credit));
        User { kp, quote: quote_account, credit }
    }

    pub async fn user(&mut self, quote: u64) -> User {
        self.user_in(self.market, quote).await
    }

    // ---- reads ----

    pub async fn account(&mut self, address: &Pubkey) -> Option<SolanaAccount> {
        self.bank.account(address).await.expect("get_account")
    }

    pub async fn state<T: AccountDeserialize>(&mut self, address: &Pubkey) -> T {
        let acc = self.account(address).await.unwrap_or_else(|| panic!("account {address} missing"));
        compux_sdk::decode::account(&acc.data).expect("decode")
    }

    pub async fn balance(&mut self, token_account: &Pubkey) -> u64 {
        let acc = self.account(token_account).await.expect("token account missing");
        spl_token::state::Account::unpack(&acc.data).unwrap().amount
    }

    pub async fn token_account(&mut self, address: &Pubkey) -> spl_token::state::Account {
        let acc = self.account(address).await.expect("token account missing");
        spl_token::state::Account::unpack(&acc.data).unwrap()
    }

    pub async fn mint(&mut self, mint: &Pubkey) -> spl_token::state::Mint {
        let acc = self.account(mint).await.expect("mint missing");
        spl_token::state::Mint::unpack(&acc.data).unwrap()
    }

    pub async fn rent(&mut self, len: usize) -> u64 {
        self.bank.minimum_balance(len).await.expect("rent")
    }

    /// DESIGN §4's first invariant: the credit mint's supply equals the sum of every credit
    /// vault and facility escrow (closed ones count as empty).
    pub async fn assert_supply_matches_vaults(&mut self) {
        let supply = self.mint(&self.market.credit_mint.clone()).await.supply;
        let mut sum = 0u64;
        for v in self.credit_vaults.clone() {
            let Some(acc) = self.account(&v).await else { continue };
            let acc = spl_token::state::Account::unpack(&acc.data).unwrap();
            if acc.mint == self.market.credit_mint {
                sum += acc.amount;
            }
        }
        assert_eq!(supply, sum, "credit mint supply != sum of credit vaults and escrows");
    }

    /// What an auditor fetches for the test market: its accounts (those the harness created,
    /// standing in for getProgramAccounts), the mint supply and the vault balances. `None`
    /// before the market exists.
    pub async fn snapshot(&mut self) -> Option<Snapshot> {
        let m = self.market;
        let market: Market = compux_sdk::decode::account(&self.account(&m.market).await?.data).ok()?;
        let mut credit_accounts = Vec::new();
        let mut reservations = Vec::new();
        for (market_key, c) in self.tracked_accounts.clone() {
            let Some(acc) = self.account(&c.address).await.filter(|_| market_key == m.market) else {
                continue;
            };
            let account: CreditAccount = compux_sdk::decode::account(&acc.data).expect("credit account");
            for nonce in 0..account.reservation_count {
                if let Some(r) = self.account(&c.reservation(nonce)).await {
                    reservations.push((
                        c.reservation(nonce),
                        compux_sdk::decode::account(&r.data).expect("reservation"),
                    ));
                }
            }
            let vault_balance = self.balance(&c.vault).await;
            credit_accounts.push(CreditAccountSnapshot { address: c.address, account, vault_balance });
        }
        let mut facilities = Vec::new();
        for f in self.tracked_facilities.clone() {
            let Some(acc) = self.account(&f.address).await else { continue };
            let facility = compux_sdk::decode::account(&acc.data).expect("facility");
            // A closed facility waiting for its lender's withdrawal has no escrow left.
            let (escrow_balance, escrow_frozen) = match self.account(&f.escrow).await {
                Some(e) => {
                    let e = spl_token::state::Account::unpack(&e.data).unwrap();
                    (e.amount, e.state == spl_token::state::AccountState::Frozen)
                }
                None => (0, false),
            };
            facilities.push(FacilitySnapshot { address: f.address, facility, escrow_balance, escrow_frozen });
        }
        Some(Snapshot {
            now: self.bank.clock().await.expect("clock").unix_timestamp,
            market_address: m.market,
            credit_mint_supply: self.mint(&m.credit_mint).await.supply,
            recovery_reserve_balance: self.balance(&m.recovery_reserve).await,
            treasury_balance: self.balance(&m.treasury).await,
            deposit_vault_balance: self.balance(&m.deposit_vault).await,
            market,
            credit_accounts,
            facilities,
            reservations,
        })
    }

    pub async fn audit(&mut self) -> Option<Report> {
        Some(audit::check(&self.snapshot().await?))
    }

    /// Tracks a credit account opened outside `user_in`, for the supply check and the auditor.
    pub fn track_account(&mut self, c: CreditAccountKeys) {
        self.credit_vaults.push(c.vault);
        self.tracked_accounts.push((self.market.market, c));
    }

    /// Tracks a facility's escrow for the supply check and the facility for the auditor.
    pub fn track(&mut self, f: FacilityKeys) {
        self.credit_vaults.push(f.escrow);
        self.tracked_facilities.push(f);
    }

    /// `lender` offers `terms` as the market's next facility.
    pub async fn offer(&mut self, lender: &User, terms: FacilityTerms) -> FacilityKeys {
        let m = self.market;
        let f = self.next_facility(lender).await;
        self.track(f);
        self.send(&[ix::offer_facility(&m, &f, &lender.quote, terms)], &[&lender.kp])
            .await
            .expect("offer_facility");
        f
    }

    /// `borrower` accepts `f` as offered (its stored terms, any number of credits).
    pub async fn accept(&mut self, f: &FacilityKeys, borrower: &User) -> TxResult {
        let m = self.market;
        let terms = self.state::<compux_sdk::state::Facility>(&f.address).await.terms;
        self.send(&[ix::accept_facility(&m, f, &borrower.key(), terms, 0)], &[&borrower.kp]).await
    }

    /// Offers `terms` to `borrower` and accepts them at `at`.
    pub async fn accepted_with(
        &mut self,
        lender: &User,
        borrower: &User,
        terms: FacilityTerms,
        at: i64,
    ) -> FacilityKeys {
        let f = self.offer(lender, terms).await;
        self.set_time(at).await;
        self.accept(&f, borrower).await.expect("accept_facility");
        f
    }

    /// Offers the default terms to `borrower` and accepts them at `at`.
    pub async fn accepted_facility(&mut self, lender: &User, borrower: &User, at: i64) -> FacilityKeys {
        self.accepted_with(lender, borrower, default_terms(borrower.key()), at).await
    }

    pub async fn is_frozen(&mut self, token_account: &Pubkey) -> bool {
        self.token_account(token_account).await.state == spl_token::state::AccountState::Frozen
    }

    /// The admin changes the default market's parameters, and they apply: scheduled, the
    /// clock moved past the update delay, applied, and the clock put back, so a test of
    /// something else keeps its hour. The delay itself is `test_admin_delay.rs`'s.
    pub async fn update_market_applied(&mut self, update: MarketUpdate) {
        let (m, admin) = (self.market, self.admin.insecure_clone());
        assert_ok(self.send(&[ix::update_market(&m, &admin.pubkey(), update)], &[&admin]).await);
        let now = self.bank.clock().await.expect("clock").unix_timestamp;
        let pending = self.pending().await;
        self.set_time(pending.effective_at).await;
        assert_ok(self.send(&[ix::apply_market_update(&m)], &[]).await);
        self.set_time(now).await;
    }

    /// The default market's pending parameter change (its `PendingUpdate` account).
    pub async fn pending(&mut self) -> PendingUpdate {
        let address = self.market.pending;
        self.state(&address).await
    }

    // ---- clock ----

    /// Moves the chain clock (the program reads `Clock::get()`).
    pub async fn set_time(&mut self, unix_timestamp: i64) {
        let mut clock: Clock = self.bank.clock().await.expect("clock");
        clock.unix_timestamp = unix_timestamp;
        self.bank.set_clock(&clock).await.expect("set the clock");
    }

    /// A program-owned copy of the account at `original`, edited by `edit`, at a fresh
    /// address: an account of the right shape at the wrong address.
    pub async fn forged<T: AccountDeserialize + AccountSerialize>(
        &mut self,
        original: &Pubkey,
        edit: impl FnOnce(&mut T),
    ) -> Pubkey {
        let address = Pubkey::new_unique();
        self.forged_at(original, address, edit).await;
        address
    }

    /// The same, at `address` (a PDA derived from a forged account).
    pub async fn forged_at<T: AccountDeserialize + AccountSerialize>(
        &mut self,
        original: &Pubkey,
        address: Pubkey,
        edit: impl FnOnce(&mut T),
    ) {
        let mut account = self.account(original).await.expect("account to forge");
        let mut state: T = compux_sdk::decode::account(&account.data).expect("decode");
        edit(&mut state);
        let mut data = Vec::with_capacity(account.data.len());
        state.try_serialize(&mut data).expect("serialize");
        data.resize(account.data.len(), 0);
        account.data = data;
        self.set_account(&address, account).await;
    }

    /// A copy of the default market at another address, with a copy of its pending-change
    /// account at the copy's PDA: only the market's own seeds check can tell them apart.
    pub async fn forged_market_with_pending(&mut self, edit: impl FnOnce(&mut Market)) -> Pubkey {
        let forged = self.forged_market(edit).await;
        let (pending, bump) = compux_sdk::pda::pending_update(&forged);
        let original = self.market.pending;
        self.forged_at::<PendingUpdate>(&original, pending, |p| {
            p.market = forged;
            p.bump = bump;
        })
        .await;
        forged
    }

    pub async fn forged_market(&mut self, edit: impl FnOnce(&mut Market)) -> Pubkey {
        let market = self.market.market;
        self.forged(&market, edit).await
    }

    /// Overwrites an account: how the tests forge accounts of the right shape.
    pub async fn set_account(&mut self, address: &Pubkey, account: SolanaAccount) {
        self.bank.set_account(address, &account).await.expect("set_account");
    }
}
