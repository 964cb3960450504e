//! Chain events, as they happen: the relayer subscribes to the compux program's logs over
//! PubSub (`logsSubscribe`). A lender's freeze (`EscrowFrozen`) stops the facility's credits
//! at once, without waiting for the next balance refresh; any other compux event (a
//! purchase, a facility accepted, a tranche, a burn) wakes the refresher, so new credits
//! are spendable within moments. The periodic refresh stays the source of truth; this only
//! makes it prompt. A lost connection is retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use compux_sdk::decode::{events_from_logs, CompuxEvent};
use futures_util::StreamExt;
use solana_pubsub_client::nonblocking::pubsub_client::PubsubClient;
use solana_rpc_client_api::config::{CommitmentConfig, RpcTransactionLogsConfig, RpcTransactionLogsFilter};
use tokio::sync::Notify;

use crate::domain::meter::Meter;

/// The PubSub URL of a Solana RPC URL by the validator's convention: WebSocket on the next
/// port (`http://h:8899` -> `ws://h:8900`), or the same host without a port.
pub fn pubsub_url(rpc_url: &str) -> String {
    let (scheme, rest) = match rpc_url.split_once("://") {
        Some(("https", rest)) => ("wss", rest),
        Some((_, rest)) => ("ws", rest),
        None => ("ws", rpc_url),
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    match host.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
        Some((h, port)) => format!("{scheme}://{h}:{}/{path}", port.wrapping_add(1)),
        None => format!("{scheme}://{host}/{path}"),
    }
}

/// Watches in the background until the process ends.
pub async fn run(ws_url: String, meter: Arc<Meter>, wake: Arc<Notify>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match watch(&ws_url, &meter, &wake).await {
            Ok(()) => tracing::warn!(url = %ws_url, "chain event stream ended; reconnecting"),
            Err(e) => {
                tracing::warn!(url = %ws_url, error = %format!("{e:#}"), "chain event stream failed; reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn watch(ws_url: &str, meter: &Meter, wake: &Notify) -> Result<()> {
    let ps = PubsubClient::new(ws_url).await.with_context(|| format!("cannot connect to {ws_url}"))?;
    let filter = RpcTransactionLogsFilter::Mentions(vec![compux_sdk::PROGRAM_ID.to_string()]);
    let config = RpcTransactionLogsConfig { commitment: Some(CommitmentConfig::confirmed()) };
    let (mut logs, _unsubscribe) = ps.logs_subscribe(filter, config).await.context("logsSubscribe")?;
    // Whatever happened while disconnected is caught by a refresh now.
    wake.notify_one();
    while let Some(update) = logs.next().await {
        if update.value.err.is_some() {
            continue;
        }
        for event in events_from_logs(&update.value.logs) {
            if let CompuxEvent::EscrowFrozen(e) = &event {
                // At the notification's slot: a balance read from before it cannot unfreeze.
                meter.freeze_at(crate::domain::ids::Source::Facility(e.facility), update.context.slot);
                tracing::info!(facility = %e.facility, "facility frozen: its credits stop now");
            }
            wake.notify_one();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pubsub_url;

    #[test]
    fn the_pubsub_url_follows_the_validator_convention() {
        assert_eq!(pubsub_url("http://127.0.0.1:8899"), "ws://127.0.0.1:8900/");
        assert_eq!(pubsub_url("https://api.example.com/rpc"), "wss://api.example.com/rpc");
        assert_eq!(pubsub_url("http://localhost:36625/"), "ws://localhost:36626/");
    }
}
