use anchor_lang::prelude::*;

/// Every error the program raises; codes start at 6000 and are stable (clients match on them).
#[error_code]
pub enum CompuxError {
    #[msg("Arithmetic overflow: an amount is too large")]
    MathOverflow,
    #[msg("Amount must be greater than zero")]
    ZeroAmount,
    #[msg("The market is paused: purchases and reservations are disabled")]
    MarketPaused,
    #[msg("Signer is not the market admin")]
    NotAdmin,
    #[msg("Signer is not the pending admin of this market")]
    NotPendingAdmin,
    #[msg("No admin handover is pending")]
    NoPendingAdmin,
    #[msg("Signer is not the market's relayer")]
    NotRelayer,
    #[msg("Signer does not own this credit account")]
    NotAccountOwner,
    #[msg("Account belongs to another market")]
    MarketMismatch,
    #[msg("Token account has the wrong mint")]
    WrongMint,
    #[msg("Vault does not match the one recorded on the account")]
    WrongVault,
    #[msg("Price is zero or out of range")]
    InvalidPrice,
    #[msg("Hour multiplier out of range (1000..=65000 bps)")]
    InvalidHourMultiplier,
    #[msg("Bulk tiers must be at most 8, strictly increasing, with bonus <= 100%")]
    InvalidBulkTiers,
    #[msg("Reserve discounts must be at most 4, strictly increasing in term, below 90%")]
    InvalidReserveDiscounts,
    #[msg("Fee in basis points is above 100%")]
    InvalidFee,
    #[msg("Quote needed exceeds max_quote_in (slippage bound)")]
    SlippageExceeded,
    #[msg("Not enough credits in the vault")]
    InsufficientCredits,
    #[msg("Reservation term out of range (period 60 s..366 days, 1..=520 periods)")]
    InvalidTerm,
    #[msg("Locked price exceeds max_price")]
    PriceAboveMax,
    #[msg("The next period's claim window has not opened yet")]
    PeriodNotStarted,
    #[msg("The current period was missed: the reservation has lapsed")]
    ReservationLapsed,
    #[msg("The current period is still claimable: the reservation has not lapsed")]
    ReservationNotLapsed,
    #[msg("Auto-refill is not configured on this credit account")]
    AutoRefillDisabled,
    #[msg("Credit balance is not below the auto-refill threshold")]
    AboveThreshold,
    #[msg("Auto-refill would exceed its spending cap")]
    AutoRefillCapReached,
    #[msg("Source token account does not match the auto-refill configuration")]
    WrongRefillSource,
    #[msg("Settlement seq already settled (replay)")]
    SettleReplay,
    #[msg("Settlement seq skips ahead of settled_seq + 1 (gap)")]
    SettleGap,
    #[msg("Settlement window_end is before the previous window_end")]
    SettleWindowRegressed,
    #[msg("Settlement window_end is in the future")]
    SettleWindowInFuture,
    #[msg("Facility terms out of range (installments 1..=120, APR <= 200%, grace <= default threshold, fees <= 100%)")]
    InvalidFacilityTerms,
    #[msg("Release schedule invalid (multiplier 1x..5x, upfront <= 100%, tranches <= installments)")]
    InvalidReleaseSchedule,
    #[msg("Signer is not this facility's lender")]
    NotLender,
    #[msg("Signer is not this facility's borrower")]
    NotBorrower,
    #[msg("The facility is not in a status that allows this")]
    InvalidFacilityStatus,
    #[msg("The facility is not current: tranches are released only while it is")]
    FacilityNotCurrent,
    #[msg("The next tranche is not due yet")]
    TrancheNotDue,
    #[msg("All tranches are released")]
    NoTrancheLeft,
    #[msg(
        "The facility is current: only a defaulted facility, or one matured with a balance, can be frozen"
    )]
    NotFreezable,
    #[msg("Frozen facility: only usage metered before the freeze, within the settlement window, can settle")]
    CreditsFrozen,
    #[msg("The settlement window after the freeze or maturity has not ended: usage metered before it may still be burned")]
    SettlementWindowOpen,
    #[msg("Token account does not belong to the expected owner")]
    WrongTokenOwner,
    #[msg("Financing policy invalid (tiers increasing in principal, caps 1x..5x, recovery <= 100%, term and threshold bounds ordered)")]
    InvalidFinancingPolicy,
    #[msg("The credit multiplier is above the market's cap for this principal")]
    MultiplierAboveCap,
    #[msg("Facility term, grace or default threshold is outside the market's financing bounds")]
    TermOutsideMarketBounds,
    #[msg("The facility's terms differ from the terms the borrower agreed to")]
    TermsMismatch,
    #[msg("The facility would mint fewer credits than the borrower's minimum")]
    CreditsBelowMinimum,
    #[msg("The recovery reserve's free balance cannot cover this facility's recovery earmark")]
    ReserveInsufficient,
    #[msg("A reservation must commit to at least two periods")]
    CommitmentTooShort,
    #[msg("The financing period has not ended: unused credits convert or close only at maturity")]
    NotMatured,
    #[msg("Withdrawal exceeds the free balance")]
    WithdrawalExceedsFree,
    /// No longer returned (a facility's nonce is its lender's choice); kept so the codes
    /// after it keep their numbers.
    #[msg("Facility offers must use the market's next facility number")]
    WrongFacilityNonce,
    #[msg("The address already holds an account")]
    AddressInUse,
    #[msg("Reservations must use the credit account's next reservation number")]
    WrongReservationNonce,
    #[msg("Credits leave a vault only after a transfer notice for them: announce_transfer first")]
    TransferNotAnnounced,
    #[msg("The transfer notice's delay has not passed: the relayer may still be burning usage charged before it")]
    TransferNotReady,
    #[msg("The market's transfer notice must last from 1 minute to 30 days")]
    InvalidTransferNotice,
    #[msg("The purchase would deliver fewer credits (bonus included) than your minimum: the market's prices or bulk tiers changed since you quoted")]
    PurchaseBelowMinimum,
    #[msg("The reservation's deposit is above your maximum: the market's fee or discounts changed since you quoted")]
    DepositAboveMax,
    #[msg("The reservation's early-termination fee is above your maximum: the market's fee changed since you quoted")]
    FeeAboveMax,
    #[msg("The market's recovery rate is below the minimum in the facility's terms")]
    RecoveryRateBelowTerms,
    #[msg("The facility has matured: only usage metered before maturity, within the settlement window after it, can settle")]
    CreditsMatured,
    #[msg("This burn would exceed the daily ceiling the account's owner set on what the relayer may burn")]
    BurnCeilingExceeded,
    #[msg("The market's update delay must last at least twice its transfer notice and at most 90 days")]
    InvalidUpdateDelay,
    #[msg("The market has no pending parameter change")]
    NoPendingUpdate,
    #[msg("The market's parameter change is not due yet: it applies after the update delay")]
    UpdateNotDue,
    #[msg("The market's parameter change was not applied within a day of its time: the admin must schedule it again")]
    UpdateExpired,
}
