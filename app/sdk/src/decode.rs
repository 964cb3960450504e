//! Decoding of program accounts and of the events the program emits in its logs.

use anchor_lang::{AccountDeserialize, Discriminator};
use base64::Engine;
use compux::events::*;

/// Decodes an account of type `T`, checking its discriminator.
pub fn account<T: AccountDeserialize>(data: &[u8]) -> anchor_lang::Result<T> {
    T::try_deserialize(&mut &data[..])
}

/// Every event of the program, as found in a transaction's logs.
#[derive(Debug)]
pub enum CompuxEvent {
    MarketInitialized(MarketInitialized),
    MarketUpdated(MarketUpdated),
    MarketUpdateScheduled(MarketUpdateScheduled),
    AdminProposed(AdminProposed),
    AdminAccepted(AdminAccepted),
    RecoveryReserveFunded(RecoveryReserveFunded),
    CreditAccountOpened(CreditAccountOpened),
    CreditsPurchased(CreditsPurchased),
    TransferAnnounced(TransferAnnounced),
    BurnCeilingSet(BurnCeilingSet),
    CreditsTransferred(CreditsTransferred),
    AutoRefillConfigured(AutoRefillConfigured),
    ReservationCreated(ReservationCreated),
    ReservationPeriodClaimed(ReservationPeriodClaimed),
    ReservationEnded(ReservationEnded),
    UsageSettled(UsageSettled),
    FacilityOffered(FacilityOffered),
    FacilityCancelled(FacilityCancelled),
    FacilityAccepted(FacilityAccepted),
    TrancheReleased(TrancheReleased),
    FacilityRepaid(FacilityRepaid),
    FacilityStatusChanged(FacilityStatusChanged),
    EscrowFrozen(EscrowFrozen),
    FacilityRecovered(FacilityRecovered),
    FacilityClosed(FacilityClosed),
    RepaymentsWithdrawn(RepaymentsWithdrawn),
    TreasuryWithdrawn(TreasuryWithdrawn),
    ReserveWithdrawn(ReserveWithdrawn),
}

fn parse<T: anchor_lang::AnchorDeserialize + Discriminator>(bytes: &[u8]) -> Option<T> {
    let body = bytes.strip_prefix(T::DISCRIMINATOR)?;
    T::try_from_slice(body).ok()
}

/// Decodes one `Program data: <base64>` payload; `None` if it is not a CompuX event.
pub fn event(bytes: &[u8]) -> Option<CompuxEvent> {
    use CompuxEvent as E;
    // Discriminators are distinct 8-byte prefixes, so at most one arm matches.
    parse(bytes)
        .map(E::MarketInitialized)
        .or_else(|| parse(bytes).map(E::MarketUpdated))
        .or_else(|| parse(bytes).map(E::MarketUpdateScheduled))
        .or_else(|| parse(bytes).map(E::AdminProposed))
        .or_else(|| parse(bytes).map(E::AdminAccepted))
        .or_else(|| parse(bytes).map(E::RecoveryReserveFunded))
        .or_else(|| parse(bytes).map(E::CreditAccountOpened))
        .or_else(|| parse(bytes).map(E::CreditsPurchased))
        .or_else(|| parse(bytes).map(E::TransferAnnounced))
        .or_else(|| parse(bytes).map(E::BurnCeilingSet))
        .or_else(|| parse(bytes).map(E::CreditsTransferred))
        .or_else(|| parse(bytes).map(E::AutoRefillConfigured))
        .or_else(|| parse(bytes).map(E::ReservationCreated))
        .or_else(|| parse(bytes).map(E::ReservationPeriodClaimed))
        .or_else(|| parse(bytes).map(E::ReservationEnded))
        .or_else(|| parse(bytes).map(E::UsageSettled))
        .or_else(|| parse(bytes).map(E::FacilityOffered))
        .or_else(|| parse(bytes).map(E::FacilityCancelled))
        .or_else(|| parse(bytes).map(E::FacilityAccepted))
        .or_else(|| parse(bytes).map(E::TrancheReleased))
        .or_else(|| parse(bytes).map(E::FacilityRepaid))
        .or_else(|| parse(bytes).map(E::FacilityStatusChanged))
        .or_else(|| parse(bytes).map(E::EscrowFrozen))
        .or_else(|| parse(bytes).map(E::FacilityRecovered))
        .or_else(|| parse(bytes).map(E::FacilityClosed))
        .or_else(|| parse(bytes).map(E::RepaymentsWithdrawn))
        .or_else(|| parse(bytes).map(E::TreasuryWithdrawn))
        .or_else(|| parse(bytes).map(E::ReserveWithdrawn))
}

/// Every CompuX event in a transaction's log messages, in order. Events come from
/// `Program data:` lines; a line another program wrote that does not decode is skipped.
pub fn events_from_logs<S: AsRef<str>>(logs: &[S]) -> Vec<CompuxEvent> {
    logs.iter()
        .filter_map(|l| l.as_ref().strip_prefix("Program data: "))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .filter_map(|bytes| event(&bytes))
        .collect()
}
