//! PubSub subscriptions, fed by the chain's broadcast of committed transactions. Each one
//! subscribes to the feed before looking at the current state, so nothing committed in
//! between is missed.

use std::sync::Arc;

use jsonrpsee::core::{to_json_raw_value, SubscriptionResult};
use jsonrpsee::{PendingSubscriptionSink, SubscriptionSink};
use serde::Serialize;
use serde_json::value::RawValue;
use solana_rpc_client_api::config::RpcAccountInfoConfig;
use solana_rpc_client_api::response::{
    ProcessedSignatureResult, Response, RpcLogsResponse, RpcSignatureResult, SlotInfo,
};
use solana_sdk::account::Account;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::TransactionError;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::chain::{Chain, ChainEvent, TxRecord};
use crate::encode::{context, ui_account};

/// What a subscription does with one chain event.
enum Step {
    Skip,
    Send(Box<RawValue>),
    /// Send, then end the subscription (signatureSubscribe notifies once).
    Last(Box<RawValue>),
}

fn item<T: Serialize>(value: &T, last: bool) -> Step {
    match to_json_raw_value(value) {
        Ok(raw) if last => Step::Last(raw),
        Ok(raw) => Step::Send(raw),
        Err(_) => Step::Skip,
    }
}

/// Feeds chain events through `on_event` until the client leaves or `on_event` ends it.
/// A subscriber too slow for the feed is dropped, as a validator drops a lagging socket.
async fn pump<F>(
    mut feed: broadcast::Receiver<ChainEvent>,
    sink: SubscriptionSink,
    mut on_event: F,
) -> SubscriptionResult
where
    F: FnMut(ChainEvent) -> Step + Send,
{
    loop {
        tokio::select! {
            _ = sink.closed() => return Ok(()),
            event = feed.recv() => match event {
                Ok(event) => match on_event(event) {
                    Step::Skip => {}
                    Step::Send(raw) => {
                        if sink.send(raw).await.is_err() {
                            return Ok(());
                        }
                    }
                    Step::Last(raw) => {
                        let _ = sink.send(raw).await;
                        return Ok(());
                    }
                },
                Err(RecvError::Lagged(n)) => return Err(format!("subscriber lagged {n} events behind").into()),
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}

fn signature_result(slot: u64, err: Option<TransactionError>) -> Step {
    let value = RpcSignatureResult::ProcessedSignature(ProcessedSignatureResult { err: err.map(Into::into) });
    item(&Response { context: context(slot), value }, true)
}

/// One notification when the transaction is processed, then the subscription ends.
pub async fn signature(
    chain: Arc<Chain>,
    pending: PendingSubscriptionSink,
    sig: Signature,
) -> SubscriptionResult {
    let feed = chain.subscribe();
    let sink = pending.accept().await?;
    if let Some(r) = chain.transaction(&sig) {
        if let Step::Last(raw) = signature_result(r.slot, r.err.clone()) {
            let _ = sink.send(raw).await;
        }
        return Ok(());
    }
    pump(feed, sink, move |event| match event {
        ChainEvent::Committed { record, .. } if record.signature == sig => {
            signature_result(record.slot, record.err.clone())
        }
        _ => Step::Skip,
    })
    .await
}

/// The account's new state after every transaction that touched it.
pub async fn account(
    chain: Arc<Chain>,
    pending: PendingSubscriptionSink,
    key: Pubkey,
    config: RpcAccountInfoConfig,
) -> SubscriptionResult {
    let feed = chain.subscribe();
    let sink = pending.accept().await?;
    pump(feed, sink, move |event| {
        let ChainEvent::Committed { record, changed } = event else { return Step::Skip };
        let Some((_, account)) = changed.iter().find(|(k, _)| *k == key) else { return Step::Skip };
        // A closed account is reported as an empty one owned by the system program.
        let account =
            account.clone().unwrap_or_else(|| Account { owner: Pubkey::default(), ..Account::default() });
        let value = ui_account(&account, config.encoding, config.data_slice);
        item(&Response { context: context(record.slot), value }, false)
    })
    .await
}

fn mentions(record: &TxRecord, key: &Pubkey) -> bool {
    record.tx.message.static_account_keys().contains(key)
}

/// Every transaction's logs, or those of transactions that mention one address.
pub async fn logs(
    chain: Arc<Chain>,
    pending: PendingSubscriptionSink,
    filter: Option<Pubkey>,
) -> SubscriptionResult {
    let feed = chain.subscribe();
    let sink = pending.accept().await?;
    pump(feed, sink, move |event| {
        let ChainEvent::Committed { record, .. } = event else { return Step::Skip };
        if filter.is_some_and(|key| !mentions(&record, &key)) {
            return Step::Skip;
        }
        let value = RpcLogsResponse {
            signature: record.signature.to_string(),
            err: record.err.clone().map(Into::into),
            logs: record.logs.clone(),
        };
        item(&Response { context: context(record.slot), value }, false)
    })
    .await
}

pub async fn slots(chain: Arc<Chain>, pending: PendingSubscriptionSink) -> SubscriptionResult {
    let feed = chain.subscribe();
    let sink = pending.accept().await?;
    pump(feed, sink, |event| match event {
        ChainEvent::Slot { slot, parent } => item(&SlotInfo { slot, parent, root: parent }, false),
        _ => Step::Skip,
    })
    .await
}
