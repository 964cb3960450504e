#!/usr/bin/env python3
"""Removes each security check of the program in turn and runs the integration tests:
every removal must make some test fail. Prints one line per check.

    python3 scripts/mutation_check.py            # all checks
    python3 scripts/mutation_check.py settle     # only checks whose name contains "settle"
    python3 scripts/mutation_check.py --record   # also rewrite scripts/mutation_catchers.txt

How it stays fast: in a scratch copy, every check is rewritten once into a switched form
(`if !mutants::on(N) { require!(..) }`, `constraint = mutants::on(N) || ..`), so the
program and the test binary compile once; the binary then runs once per check with
COMPUX_MUTANT=N. First the whole suite runs with no check removed: the switched program
must behave as the original. Each removed check first runs only the tests that caught it
last time (scripts/mutation_catchers.txt); if none of those fails, the whole suite runs, so
a stale list slows the check down but never passes a check that no test catches.
"""
import functools, json, os, re, shutil, subprocess, sys, time

# Progress lines as they happen, also when stdout is a file (CI logs).
print = functools.partial(print, flush=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IX = "programs/compux/src/instructions/"
CATCHERS = os.path.join(ROOT, "scripts/mutation_catchers.txt")

# (name, file, exact text, replacement)
CHECKS = [
    ("settle: replay", "programs/compux/src/state/settlement.rs", "require!(seq > self.settled_seq, CompuxError::SettleReplay);", ""),
    ("settle: gap", "programs/compux/src/state/settlement.rs", "require!(seq == self.settled_seq.saturating_add(1), CompuxError::SettleGap);", ""),
    ("settle: above balance", "programs/compux/src/state/settlement.rs", "require!(amount <= spendable, CompuxError::InsufficientCredits);", ""),
    ("settle: zero amount", "programs/compux/src/state/settlement.rs", "require!(amount > 0, CompuxError::ZeroAmount);", ""),
    ("settle: window regressed", "programs/compux/src/state/settlement.rs", "require!(window_end >= self.last_window_end, CompuxError::SettleWindowRegressed);", ""),
    ("settle: window in future", "programs/compux/src/state/settlement.rs", "require!(window_end <= now, CompuxError::SettleWindowInFuture);", ""),
    ("settle: relayer", IX + "relayer/settle.rs", "has_one = relayer @ CompuxError::NotRelayer,", ""),
    ("update: market seeds", IX + "admin/update_market.rs", "seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],\n        bump = market.bump,", ""),
    ("settle: vault", IX + "relayer/settle.rs", "has_one = vault @ CompuxError::WrongVault,", ""),
    ("settle: seeds", IX + "relayer/settle.rs", "seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), credit_account.owner.as_ref()],\n        bump = credit_account.bump,", ""),
    ("buy: owner", IX + "startup/buy_credits.rs", "has_one = owner @ CompuxError::NotAccountOwner,", ""),
    ("buy: vault", IX + "startup/buy_credits.rs", "has_one = vault @ CompuxError::WrongVault,", ""),
    ("buy: seeds", IX + "startup/buy_credits.rs", "seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), credit_account.owner.as_ref()],\n        bump = credit_account.bump,", ""),
    ("buy: quote mint", IX + "startup/buy_credits.rs", "#[account(mut, constraint = owner_quote.mint == market.quote_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("buy: treasury", IX + "startup/buy_credits.rs", "#[account(mut, address = market.treasury @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("buy: credit mint", IX + "startup/buy_credits.rs", "#[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("purchase: slippage", IX + "startup/purchase.rs", "require!(p.quote_in <= max_quote_in, CompuxError::SlippageExceeded);", ""),
    ("purchase: minimum credits out", IX + "startup/purchase.rs", "require!(total >= min_credits_out, CompuxError::PurchaseBelowMinimum);", ""),
    ("purchase: paused", IX + "startup/purchase.rs", "require!(!market.paused, CompuxError::MarketPaused);", ""),
    ("purchase: zero", IX + "startup/purchase.rs", "require!(credits > 0, CompuxError::ZeroAmount);", ""),
    ("open: credit mint", IX + "startup/open_credit_account.rs", "#[account(address = market.credit_mint @ CompuxError::WrongMint)]", "#[account()]"),
    ("transfer: other market", IX + "startup/transfer_credits.rs", "constraint = to_account.market == market.key() @ CompuxError::MarketMismatch,", ""),
    ("transfer: owner", IX + "startup/transfer_credits.rs", "has_one = owner @ CompuxError::NotAccountOwner,", ""),
    ("transfer: balance", IX + "startup/transfer_credits.rs", "require!(self.from_vault.amount >= amount, CompuxError::InsufficientCredits);", ""),
    ("transfer: to vault", IX + "startup/transfer_credits.rs", "#[account(mut, address = to_account.vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("transfer: announced", IX + "startup/transfer_credits.rs", "require!(amount <= notice.amount, CompuxError::TransferNotAnnounced);", ""),
    ("transfer: notice passed", IX + "startup/transfer_credits.rs", "require!(Clock::get()?.unix_timestamp >= notice.ready_at, CompuxError::TransferNotReady);", ""),
    ("announce: owner", IX + "startup/announce_transfer.rs", "has_one = owner @ CompuxError::NotAccountOwner,", ""),
    ("announce: seeds", IX + "startup/announce_transfer.rs", "seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), credit_account.owner.as_ref()],\n        bump = credit_account.bump,", ""),
    ("config: transfer notice bounds", "programs/compux/src/state/market.rs", "(MIN_TRANSFER_NOTICE_SECS..=MAX_TRANSFER_NOTICE_SECS).contains(&config.transfer_notice_secs)", "true"),
    ("refill: threshold", IX + "startup/auto_refill.rs", "require!(self.vault.amount < self.credit_account.auto_refill.threshold, CompuxError::AboveThreshold);", ""),
    ("refill: cap", IX + "startup/auto_refill.rs", "require!(spent <= cfg.cap_quote, CompuxError::AutoRefillCapReached);", ""),
    ("refill: per-refill bounds", IX + "startup/auto_refill.rs", "purchase::within(&p, cfg.max_quote_per_refill, cfg.min_credits_per_refill)?;", ""),
    ("refill: source", IX + "startup/auto_refill.rs", "#[account(mut, address = credit_account.auto_refill.source @ CompuxError::WrongRefillSource)]", "#[account(mut)]"),
    ("configure refill: source owner", IX + "startup/configure_auto_refill.rs", "constraint = source.owner == owner.key() @ CompuxError::NotAccountOwner,", ""),
    ("reserve: max price", IX + "reserved/reserve.rs", "require!(price <= bounds.max_price, CompuxError::PriceAboveMax);", ""),
    ("reserve: max deposit", IX + "reserved/reserve.rs", "require!(deposit <= bounds.max_deposit, CompuxError::DepositAboveMax);", ""),
    ("reserve: max fee", IX + "reserved/reserve.rs", "require!(fee <= bounds.max_fee, CompuxError::FeeAboveMax);", ""),
    ("reserve: commitment overflow", IX + "reserved/reserve.rs", "require!(credits_per_period.checked_mul(periods as u64).is_some(), CompuxError::MathOverflow);", ""),
    ("reserve: paused", IX + "reserved/reserve.rs", "require!(!self.market.paused, CompuxError::MarketPaused);", ""),
    ("reserve: nonce", IX + "reserved/reserve.rs", "require!(nonce == self.credit_account.reservation_count, CompuxError::WrongReservationNonce);", ""),
    ("claim: not started", IX + "reserved/claim_period.rs", "require!(now >= start, CompuxError::PeriodNotStarted);", ""),
    ("claim: lapsed", IX + "reserved/claim_period.rs", "require!(now < end, CompuxError::ReservationLapsed);", ""),
    ("lapse: not lapsed", IX + "reserved/lapse_reservation.rs", "require!(now >= end, CompuxError::ReservationNotLapsed);", ""),
    ("cancel: owner", IX + "reserved/cancel_reservation.rs", "has_one = owner @ CompuxError::NotAccountOwner,", ""),
    ("update: admin", IX + "admin/update_market.rs", "has_one = admin @ CompuxError::NotAdmin,", ""),
    ("propose: admin", IX + "admin/propose_admin.rs", "has_one = admin @ CompuxError::NotAdmin,", ""),
    ("accept: pending admin", IX + "admin/accept_admin.rs", "require_keys_eq!(self.market.pending_admin, self.new_admin.key(), CompuxError::NotPendingAdmin);", ""),
    ("fund reserve: address", IX + "admin/fund_recovery_reserve.rs", "#[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("fund reserve: mint", IX + "admin/fund_recovery_reserve.rs", "#[account(mut, constraint = funder_quote.mint == market.quote_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("config: fee bound", "programs/compux/src/state/market.rs", "require!(f <= MAX_EARLY_TERMINATION_FEE_BPS, CompuxError::InvalidFee);", ""),
    ("config: hour bounds", "programs/compux/src/state/market.rs", ".all(|&x| (MIN_HOUR_MULTIPLIER_BPS..=MAX_HOUR_MULTIPLIER_BPS).contains(&x)),", ".all(|_| true),"),
    ("offer: lender quote owner", IX + "financed/offer_facility.rs", "constraint = lender_quote.owner == lender.key() @ CompuxError::WrongTokenOwner,", ""),
    ("offer: terms", "programs/compux/src/state/facility.rs", "&& self.default_after_secs >= self.grace_secs", ""),
    ("offer: multiplier", "programs/compux/src/state/facility.rs", "(MIN_CREDIT_MULTIPLIER_BPS..=MAX_CREDIT_MULTIPLIER_BPS).contains(&self.credit_multiplier_bps)\n                && ", ""),
    # ---- fixed accounts of the money-moving instructions (tests/cases/test_substitution.rs) ----
    ("accept: quote vault", IX + "financed/accept_facility.rs", "#[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("accept: treasury", IX + "financed/accept_facility.rs", "#[account(mut, address = market.treasury @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("accept: recovery reserve", IX + "financed/accept_facility.rs", "#[account(address = market.recovery_reserve @ CompuxError::WrongVault)]", "#[account()]"),
    ("accept: escrow", IX + "financed/accept_facility.rs", "#[account(mut, address = facility.escrow @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("cancel offer: quote vault", IX + "financed/cancel_offer.rs", "#[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("cancel offer: escrow", IX + "financed/cancel_offer.rs", "#[account(mut, address = facility.escrow @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("cancel offer: destination mint", IX + "financed/cancel_offer.rs", "#[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("close: borrower account seeds", IX + "financed/close_facility.rs", "seeds = [CREDIT_ACCOUNT_SEED, market.key().as_ref(), facility.terms.borrower.as_ref()],\n        bump = borrower_account.bump,", ""),
    ("close: borrower vault", IX + "financed/close_facility.rs", "has_one = vault @ CompuxError::WrongVault,", ""),
    ("close: quote vault", IX + "financed/close_facility.rs", "#[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("close: escrow", IX + "financed/close_facility.rs", "#[account(mut, address = facility.escrow @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("recover: reserve", IX + "financed/recover.rs", "#[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("recover: quote vault", IX + "financed/recover.rs", "#[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("recover: escrow", IX + "financed/recover.rs", "#[account(mut, address = facility.escrow @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("repay: escrow", IX + "financed/repay.rs", "#[account(mut, address = facility.escrow @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("freeze: escrow", IX + "financed/freeze_escrow.rs", "#[account(mut, address = facility.escrow @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("claim: reservation seeds", IX + "reserved/claim_period.rs", "seeds = [RESERVATION_SEED, credit_account.key().as_ref(), &reservation.nonce.to_le_bytes()],\n        bump = reservation.bump,", ""),
    ("claim: vault", IX + "reserved/claim_period.rs", "has_one = vault @ CompuxError::WrongVault,", ""),
    ("claim: treasury", IX + "reserved/claim_period.rs", "#[account(mut, address = market.treasury @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("claim: deposit vault", IX + "reserved/claim_period.rs", "#[account(mut, address = market.deposit_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("lapse: owner", IX + "reserved/lapse_reservation.rs", "#[account(mut, address = reservation.owner @ CompuxError::NotAccountOwner)]", "#[account(mut)]"),
    ("lapse: deposit vault", IX + "reserved/lapse_reservation.rs", "#[account(mut, address = market.deposit_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("lapse: treasury", IX + "reserved/lapse_reservation.rs", "#[account(mut, address = market.treasury @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("lapse: refund owner", IX + "reserved/lapse_reservation.rs", "constraint = owner_quote.owner == reservation.owner @ CompuxError::WrongTokenOwner,", ""),
    ("cancel reservation: refund owner", IX + "reserved/cancel_reservation.rs", "constraint = owner_quote.owner == reservation.owner @ CompuxError::WrongTokenOwner,", ""),
    ("settle facility: credit mint", IX + "relayer/settle_facility.rs", "#[account(mut, address = market.credit_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    # ---- economics (issue 12, docs/economics.md; tests/cases/test_economics.rs) ----
    ("offer: market cap and bounds", IX + "financed/offer_facility.rs", "terms.check_policy(&self.market.financing)", "Ok(())"),
    ("policy: lender's recovery rate", "programs/compux/src/state/facility.rs", "require!(policy.recovery_rate_bps >= self.min_recovery_rate_bps, CompuxError::RecoveryRateBelowTerms);", ""),
    ("offer: recovery rate bound", "programs/compux/src/state/facility.rs", "&& self.min_recovery_rate_bps as u64 <= BPS", ""),
    ("policy: multiplier cap", "programs/compux/src/state/facility.rs", "require!(self.credit_multiplier_bps <= cap, CompuxError::MultiplierAboveCap);", ""),
    ("policy: term bounds", "programs/compux/src/state/facility.rs", "(policy.min_term_secs..=policy.max_term_secs).contains(&term)\n                && ", ""),
    ("policy: grace bound", "programs/compux/src/state/facility.rs", "&& self.grace_secs <= policy.max_grace_secs", ""),
    ("accept: market terms at acceptance", IX + "financed/accept_facility.rs", "self.facility.terms.check_policy(&self.market.financing)", "Ok(())"),
    ("accept: agreed terms", IX + "financed/accept_facility.rs", "require!(self.facility.terms == *expected, CompuxError::TermsMismatch);", ""),
    ("accept: minimum credits", IX + "financed/accept_facility.rs", "require!(total >= min_credits, CompuxError::CreditsBelowMinimum);", ""),
    ("accept: reserve covers earmark", IX + "financed/accept_facility.rs", "earmark <= a.market.free_reserve(a.recovery_reserve.amount),", "true,"),
    ("close: maturity", IX + "financed/close_facility.rs", "require!(now >= self.facility.maturity()?, CompuxError::NotMatured);", ""),
    ("freeze: grace after maturity", "programs/compux/src/state/facility.rs", ".and_then(|m| m.checked_add(self.terms.grace_secs))", ""),
    ("recover: only what the debt needs", "programs/compux/src/state/facility.rs", "let bought = unused.min(needed);", "let bought = unused;"),
    ("recover: never-released burned", "programs/compux/src/state/facility.rs", "let burned = bought.max(locked.min(unused));", "let burned = bought;"),
    ("tranche: schedule kept after repayment", IX + "financed/release_tranche.rs", "matches!(f.status, FacilityStatus::Active | FacilityStatus::Repaid)", "f.status == FacilityStatus::Active"),
    ("repay: facility vault", IX + "financed/repay.rs", "#[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("withdraw repayments: lender", IX + "financed/withdraw_repayments.rs", "has_one = lender @ CompuxError::NotLender,", ""),
    ("withdraw repayments: not while offered", IX + "financed/withdraw_repayments.rs", "require!(self.facility.status != FacilityStatus::Offered, CompuxError::InvalidFacilityStatus);", ""),
    ("withdraw repayments: vault", IX + "financed/withdraw_repayments.rs", "#[account(mut, address = facility.quote_vault @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("withdraw repayments: destination mint", IX + "financed/withdraw_repayments.rs", "#[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("withdraw treasury: admin", IX + "admin/withdraw_treasury.rs", "has_one = admin @ CompuxError::NotAdmin,", ""),
    ("withdraw treasury: treasury", IX + "admin/withdraw_treasury.rs", "#[account(mut, address = market.treasury @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("withdraw treasury: destination mint", IX + "admin/withdraw_treasury.rs", "#[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("withdraw reserve: admin", IX + "admin/withdraw_reserve.rs", "has_one = admin @ CompuxError::NotAdmin,", ""),
    ("withdraw reserve: earmarks stay", IX + "admin/withdraw_reserve.rs", "require!(amount <= free, CompuxError::WithdrawalExceedsFree);", ""),
    ("withdraw reserve: reserve", IX + "admin/withdraw_reserve.rs", "#[account(mut, address = market.recovery_reserve @ CompuxError::WrongVault)]", "#[account(mut)]"),
    ("withdraw reserve: destination mint", IX + "admin/withdraw_reserve.rs", "#[account(mut, constraint = destination.mint == market.quote_mint @ CompuxError::WrongMint)]", "#[account(mut)]"),
    ("reserve: two periods at least", IX + "reserved/reserve.rs", "require!(periods >= 2, CompuxError::CommitmentTooShort);", ""),
    ("reserve: discount by future term", "programs/compux/src/math/reservation.rs", "period_secs.checked_mul((periods as i64).checked_sub(1)?)", "period_secs.checked_mul(periods as i64)"),
    ("reservation: clawback on early end", "programs/compux/src/state/reservation.rs", "self.period_discount.checked_mul(self.claimed_periods as u64)?.checked_add(self.fee)", "Some(self.fee)"),
    ("create: prefunded address", "programs/compux/src/create.rs", "    if held == 0 {", "    if true {"),

    ("cancel: lender", IX + "financed/cancel_offer.rs", "has_one = lender @ CompuxError::NotLender,", ""),
    ("accept: borrower", IX + "financed/accept_facility.rs", "constraint = facility.terms.borrower == borrower.key() @ CompuxError::NotBorrower,", ""),
    ("accept: once", IX + "financed/accept_facility.rs", "require_status(&self.facility, &[FacilityStatus::Offered])?;", ""),
    ("tranche: current", IX + "financed/release_tranche.rs", "require!(\n            matches!(f.status, FacilityStatus::Active | FacilityStatus::Repaid),\n            CompuxError::FacilityNotCurrent\n        );", ""),
    ("tranche: due", IX + "financed/release_tranche.rs", "require!(now >= due, CompuxError::TrancheNotDue);", ""),
    ("repay: borrower", IX + "financed/repay.rs", "constraint = facility.terms.borrower == borrower.key() @ CompuxError::NotBorrower,", ""),
    ("freeze: lender", IX + "financed/freeze_escrow.rs", "has_one = lender @ CompuxError::NotLender,", ""),
    ("freeze: freezable", IX + "financed/freeze_escrow.rs", "require!(a.facility.freezable(now), CompuxError::NotFreezable);", ""),
    ("freeze: facility seeds", IX + "financed/freeze_escrow.rs", "seeds = [FACILITY_SEED, market.key().as_ref(), facility.lender.as_ref(), &facility.nonce.to_le_bytes()],\n        bump = facility.bump,", ""),
    ("recover: window", IX + "financed/recover.rs", "require!(now > self.facility.settlement_window_end(), CompuxError::SettlementWindowOpen);", ""),
    ("recover: frozen only", IX + "financed/recover.rs", "require_status(&self.facility, &[FacilityStatus::Frozen])?;", ""),
    ("settle facility: escrow", IX + "relayer/settle_facility.rs", "has_one = escrow @ CompuxError::WrongVault,", ""),
    ("settle facility: released only", IX + "relayer/settle_facility.rs", "f.settlement.check(seq, amount, f.spendable_credits(), window_end, now)?;", "f.settlement.check(seq, amount, u64::MAX, window_end, now)?;"),
    ("settle facility: cutoff", IX + "relayer/settle_facility.rs", "if cutoff.is_none_or(|until| window_end > until) {", "if false {"),
    ("facility: freeze cutoff", "programs/compux/src/state/facility.rs", "(until, window_end) = (self.frozen_at, self.settlement_window_end());", ""),
    ("facility: maturity cutoff", "programs/compux/src/state/facility.rs", "        if now >= maturity {", "        if false {"),
    ("close: settlement window after maturity", IX + "financed/close_facility.rs", "require!(now > self.facility.maturity_settlement_end()?, CompuxError::SettlementWindowOpen);", ""),
    ("close: principal's worth", IX + "financed/close_facility.rs", "convertible_credits(unused, f.terms.credit_multiplier_bps).ok_or(CompuxError::MathOverflow)?", "unused"),
    ("freeze: tranches due while current", IX + "financed/freeze_escrow.rs", "let released = a.facility.release_due_while_current(now)?;", "let released = 0u64;"),
    ("settle: burn ceiling", IX + "relayer/settle.rs", "a.credit_account.burn_ceiling.burn(amount, Clock::get()?.unix_timestamp)?;", ""),
    ("ceiling: limit", "programs/compux/src/state/credit_account.rs", "require!(self.per_day == 0 || burned <= self.per_day, CompuxError::BurnCeilingExceeded);", ""),
    ("ceiling: lowering waits the notice", "programs/compux/src/state/credit_account.rs", "let at = now.checked_add(notice_secs).ok_or(CompuxError::MathOverflow)?;", "let at = now;"),
    ("set ceiling: owner", IX + "startup/set_burn_ceiling.rs", "has_one = owner @ CompuxError::NotAccountOwner,", ""),
    ("close: repaid only", IX + "financed/close_facility.rs", "require_status(&self.facility, &[FacilityStatus::Repaid, FacilityStatus::Recovered])?;", ""),
    ("config: update delay bounds", "programs/compux/src/state/market.rs", "delays.contains(&config.update_delay_secs)", "true"),
    ("update: the delay", "programs/compux/src/state/pending_update.rs", "let effective_at = now.checked_add(market.update_delay_secs).ok_or(CompuxError::MathOverflow)?;", "let effective_at = now;"),
    ("update: a revoked key stays revoked", "programs/compux/src/state/pending_update.rs", "self.params.relayer = Pubkey::default();", ""),
    ("apply: pending", "programs/compux/src/state/pending_update.rs", "require!(self.is_pending(), CompuxError::NoPendingUpdate);", ""),
    ("apply: due", "programs/compux/src/state/pending_update.rs", "require!(now >= self.effective_at, CompuxError::UpdateNotDue);", ""),
    ("apply: expiry", "programs/compux/src/state/pending_update.rs", "require!(now <= expires, CompuxError::UpdateExpired);", ""),
    ("apply: pending seeds", IX + "admin/apply_market_update.rs", "seeds = [PENDING_UPDATE_SEED, market.key().as_ref()],\n        bump = pending.bump,", ""),
    ("update: pending seeds", IX + "admin/update_market.rs", "seeds = [PENDING_UPDATE_SEED, market.key().as_ref()],\n        bump = pending.bump,", ""),
    ("apply: market seeds", IX + "admin/apply_market_update.rs", "seeds = [MARKET_SEED, market.creator.as_ref(), market.quote_mint.as_ref()],\n        bump = market.bump,", ""),
]



# Switched forms of the checks whose removal is not a statement, a constraint or an account
# attribute ({on} is the switch: true when this check is the one removed).
def _either(text, repl):
    return "(if {on} { " + repl + " } else { " + text + " })"


SWITCHED = {
    "config: hour bounds": ".all(|&x| {on} || (MIN_HOUR_MULTIPLIER_BPS..=MAX_HOUR_MULTIPLIER_BPS).contains(&x)),",
    "config: transfer notice bounds": "{on} || (MIN_TRANSFER_NOTICE_SECS..=MAX_TRANSFER_NOTICE_SECS).contains(&config.transfer_notice_secs)",
    "offer: terms": "&& ({on} || self.default_after_secs >= self.grace_secs)",
    "offer: multiplier": "({on} || (MIN_CREDIT_MULTIPLIER_BPS..=MAX_CREDIT_MULTIPLIER_BPS).contains(&self.credit_multiplier_bps))\n                && ",
    "policy: term bounds": "({on} || (policy.min_term_secs..=policy.max_term_secs).contains(&term))\n                && ",
    "policy: grace bound": "&& ({on} || self.grace_secs <= policy.max_grace_secs)",
    "accept: reserve covers earmark": "{on} || earmark <= a.market.free_reserve(a.recovery_reserve.amount),",
    "freeze: grace after maturity": ".and_then(|m| if {on} { Some(m) } else { m.checked_add(self.terms.grace_secs) })",
    "recover: only what the debt needs": "let bought = if {on} { unused } else { unused.min(needed) };",
    "recover: never-released burned": "let burned = if {on} { bought } else { bought.max(locked.min(unused)) };",
    "refill: per-refill bounds": "if !{on} { purchase::within(&p, cfg.max_quote_per_refill, cfg.min_credits_per_refill)?; }",
    "offer: recovery rate bound": "&& ({on} || self.min_recovery_rate_bps as u64 <= BPS)",
    "create: prefunded address": "    if held == 0 || {on} {",
    "settle facility: released only": "f.settlement.check(seq, amount, if {on} { u64::MAX } else { f.spendable_credits() }, window_end, now)?;",
    "settle facility: cutoff": "if !{on} && cutoff.is_none_or(|until| window_end > until) {",
    "facility: freeze cutoff": "if !{on} { (until, window_end) = (self.frozen_at, self.settlement_window_end()); }",
    "facility: maturity cutoff": "        if !{on} && now >= maturity {",
    "close: principal's worth": "if {on} { unused } else { convertible_credits(unused, f.terms.credit_multiplier_bps).ok_or(CompuxError::MathOverflow)? }",
    "freeze: tranches due while current": "let released = if {on} { 0u64 } else { a.facility.release_due_while_current(now)? };",
    "settle: burn ceiling": "if !{on} { a.credit_account.burn_ceiling.burn(amount, Clock::get()?.unix_timestamp)?; }",
    "ceiling: lowering waits the notice": "let at = if {on} { now } else { now.checked_add(notice_secs).ok_or(CompuxError::MathOverflow)? };",
    "config: update delay bounds": "{on} || delays.contains(&config.update_delay_secs)",
    "update: the delay": "let effective_at = if {on} { now } else { now.checked_add(market.update_delay_secs).ok_or(CompuxError::MathOverflow)? };",
    "update: a revoked key stays revoked": "if !{on} { self.params.relayer = Pubkey::default(); }",
}
for _name, _path, _text, _repl in CHECKS:
    if _name in ("offer: market cap and bounds", "accept: market terms at acceptance",
                 "tranche: schedule kept after repayment", "reserve: discount by future term",
                 "reservation: clawback on early end"):
        SWITCHED[_name] = _either(_text, _repl)

MUTANTS_RS = """//! Mutation switches (scripts/mutation_check.py): in this scratch copy only.
pub fn on(id: u32) -> bool {
    static ACTIVE: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *ACTIVE.get_or_init(|| std::env::var("COMPUX_MUTANT").ok().and_then(|v| v.parse().ok())) == Some(id)
}

pub fn pda(seeds: &[&[u8]], bump: u8, key: anchor_lang::prelude::Pubkey) -> bool {
    let mut all = seeds.to_vec();
    let bump = [bump];
    all.push(&bump);
    anchor_lang::prelude::Pubkey::create_program_address(&all, &crate::ID).ok() == Some(key)
}
"""


def field_after(source, at):
    """The account field an attribute at `at` belongs to: the next `pub name:`."""
    m = re.compile(r"pub (\w+):").search(source, at)
    return m.group(1)


def split_top(text, sep=","):
    """Splits at `sep` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def switched(index, name, source, at, text, repl):
    """`text` (found at `at` in `source`) rewritten so that it is removed only when switch
    `index` is on."""
    on = f"crate::mutants::on({index})"
    stripped = text.strip()
    if name in SWITCHED:
        return SWITCHED[name].replace("{on}", on)
    if repl == "" and stripped.endswith(";") and re.match(r"require(_keys_eq)?!|require_status\(", stripped):
        return f"if !{on} {{ {text} }}"
    m = re.fullmatch(r"(\s*)constraint = (.+) @ ([\w:]+),", text, re.S)
    if m and repl == "":
        return f"{m.group(1)}constraint = {on} || ({m.group(2)}) @ {m.group(3)},"
    m = re.fullmatch(r"(\s*)has_one = (\w+) @ ([\w:]+),", text)
    if m and repl == "":
        field = field_after(source, at)
        return f"{m.group(1)}constraint = {on} || {field}.{m.group(2)} == {m.group(2)}.key() @ {m.group(3)}, /*has_one*/"
    m = re.fullmatch(r"(\s*)seeds = \[(.+)\],\s*bump = (.+),", text, re.S)
    if m and repl == "":
        field = field_after(source, at)
        seeds = ", ".join(f"&({s.strip()})[..]" for s in split_top(m.group(2)))
        return (f"{m.group(1)}constraint = {on} || crate::mutants::pda(&[{seeds}], {m.group(3)}, {field}.key()) "
                "@ anchor_lang::error::ErrorCode::ConstraintSeeds,")
    m = re.fullmatch(r"#\[account\((mut, )?(address|constraint) = (.+) @ ([\w:]+)\)\]", text)
    if m and repl in ("#[account(mut)]", "#[account()]"):
        field = field_after(source, at)
        cond = f"{field}.key() == {m.group(3)}" if m.group(2) == "address" else f"({m.group(3)})"
        return f"#[account({m.group(1) or ''}constraint = {on} || {cond} @ {m.group(4)}, /*{m.group(2)}*/)]"
    raise SystemExit(f"mutation_check: no switched form for {name!r}: add one to SWITCHED")


def keep_anchor_order(source):
    """Anchor checks an account's constraints by kind: `seeds`, then `has_one`s, then raw
    `constraint`s, then `address`, each kind in written order. Where switched forms turned
    checks into raw constraints, a block's constraints are rewritten as raw ones in that order
    (a `has_one` left as it was becomes one too), so the switched program fails the same
    check first: the tests assert which one."""
    out, at = "", 0
    while (start := source.find("#[account(", at)) >= 0:
        depth, end = 0, start + len("#[account")
        for end in range(end, len(source)):
            depth += source[end] in "([{"
            depth -= source[end] in ")]}"
            if depth == 0:
                break
        block = source[start:end + 1]
        lines = block.split("\n")
        if "crate::mutants::" in block and len(lines) > 2:
            field = field_after(source, end)

            def kind(line):
                if "crate::mutants::pda(" in line:
                    return 0
                if "/*has_one*/" in line or re.match(r"\s*has_one = ", line):
                    return 1
                if "/*address*/" in line:
                    return 3
                return 2 if re.match(r"\s*constraint = ", line) else None

            def raw(line):
                m = re.fullmatch(r"(\s*)has_one = (\w+)(?: @ ([\w:]+))?,", line)
                if not m:
                    return line
                error = m.group(3) or "anchor_lang::error::ErrorCode::ConstraintHasOne"
                return f"{m.group(1)}constraint = {field}.{m.group(2)} == {m.group(2)}.key() @ {error},"

            checks = sorted((l for l in lines if kind(l) is not None), key=kind)
            others = [l for l in lines if kind(l) is None]
            # `#[account(` first, the checks in Anchor's order, then the rest (`mut`, ...).
            block = "\n".join(others[:1] + [raw(l) for l in checks] + others[1:])
        out += source[at:start] + block
        at = end + 1
    return out + source[at:]


def prepare(scratch, checks):
    """Writes every check's switched form into the scratch copy. Returns the checks whose
    text is missing (stale)."""
    stale = []
    files = {}
    # Longest first: a check's text may contain another's, and a switched form keeps the text.
    for index, (name, path, text, repl) in sorted(enumerate(checks), key=lambda c: -len(c[1][2])):
        full = os.path.join(scratch, path)
        source = files.get(full) or open(full).read()
        at = source.find(text)
        if at < 0:
            stale.append(name)
            continue
        files[full] = source[:at] + switched(index, name, source, at, text, repl) + source[at + len(text):]
    for full, source in files.items():
        open(full, "w").write(keep_anchor_order(source))
    lib = os.path.join(scratch, "programs/compux/src/lib.rs")
    open(lib, "a").write("\npub mod mutants;\n")
    open(os.path.join(scratch, "programs/compux/src/mutants.rs"), "w").write(MUTANTS_RS)
    return stale


def test_binary(scratch, env):
    """Builds the integration-test binary once and returns its path."""
    # `--workspace --test test_all`, not `-p compux-tests`: features resolved for one
    # package differ from the suite's, and rebuilt half the dependencies on a cold cache.
    cmd = ["cargo", "test", "-q", "--workspace", "--test", "test_all", "--no-run", "--message-format=json"]
    r = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        msg = json.loads(line) if line.startswith("{") else {}
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "test_all" and msg.get("executable"):
            return msg["executable"]
    raise SystemExit(f"mutation_check: the switched program does not build:\n{r.stderr[-3000:]}")


def run(binary, scratch, env, mutant, only=None):
    """Runs the suite (or the tests in `only`, exactly) with switch `mutant` on; returns
    (passed, the tests that failed)."""
    # The localnet cases test the RPC server, not the program's checks.
    args = [binary, "-q"] + (["--exact"] + only if only else ["--skip", "test_localnet"])
    r = subprocess.run(args, cwd=os.path.join(scratch, "tests"), capture_output=True, text=True,
                       env=dict(env, COMPUX_MUTANT=str(mutant)))
    # The "failures:" summary lists each failed test on its own indented line.
    failed = sorted({l.strip() for l in r.stdout.splitlines() if l.startswith("    cases::")})
    return r.returncode == 0, failed, r


def load_catchers():
    catchers = {}
    if os.path.exists(CATCHERS):
        for line in open(CATCHERS):
            if line.strip() and not line.startswith("#"):
                name, tests = line.rstrip("\n").split("\t")
                catchers[name] = tests.split()
    return catchers


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    record = "--record" in sys.argv
    only = args[0] if args else ""
    scratch = "/tmp/compux-mutants"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".git", "target", "node_modules"))
    env = dict(os.environ, RUST_LOG="error")
    env.setdefault("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/compux-target"))
    env.pop("COMPUX_PROGRAM_SO", None)
    started = time.time()
    # Every check is switched in (so the ids are stable), whichever are run.
    stale = prepare(scratch, CHECKS)
    binary = test_binary(scratch, env)
    print(f"switched program and test binary built ({time.time() - started:.0f}s)")
    ok, failed, r = run(binary, scratch, env, -1)
    if not ok:
        print(f"BROKEN  the switched program fails with no check removed: {failed}\n{r.stdout[-2000:]}")
        sys.exit(1)
    print(f"the suite passes with every check in place ({time.time() - started:.0f}s)")
    catchers = load_catchers()
    survived, found = list(stale), {}
    for name in stale:
        print(f"STALE   {name}: text not found")
    for index, (name, path, text, repl) in enumerate(CHECKS):
        if only not in name or name in stale:
            continue
        t = time.time()
        failed, how = [], ""
        known = catchers.get(name)
        if known and not record:
            _, failed, _ = run(binary, scratch, env, index, known)
            how = "known catchers"
        if not failed:
            _, failed, r = run(binary, scratch, env, index)
            how = "whole suite" + (", catchers list stale: --record" if known and not record else "")
        if failed:
            found[name] = failed
            print(f"caught  {name:32} by {', '.join(failed[:3])}{' ...' if len(failed) > 3 else ''}  ({how}, {time.time() - t:.1f}s)")
        else:
            print(f"MISSED  {name:32} every test still passes")
            survived.append(name)
    checks = [c for c in CHECKS if only in c[0]]
    if record and not only:
        with open(CATCHERS, "w") as f:
            f.write("# check<TAB>tests that fail when it is removed (scripts/mutation_check.py --record)\n")
            for name, tests in found.items():
                f.write(f"{name}\t{' '.join(tests)}\n")
    print(f"\n{len(checks) - len(survived)}/{len(checks)} removed checks caught by the tests ({time.time() - started:.0f}s)")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
