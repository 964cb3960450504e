//! `/metrics` in Prometheus' text format: requests by route, status and provider; the
//! relayer's own added latency (time in the relayer minus time waiting for the provider);
//! credits held and charged-but-unsettled; provider health.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    added_latency: HistogramVec,
    held: IntGauge,
    unsettled: IntGauge,
    provider_up: IntGaugeVec,
    task_up: IntGaugeVec,
    task_restarts: IntGaugeVec,
    /// Credits a provider billed beyond what the request held and charged.
    pub(crate) shortfall: IntCounterVec,
    stuck: IntGauge,
}

/// How long a request waited on its provider, put in the response's extensions by the
/// handler so the middleware can subtract it.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamTime(pub Duration);

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("compux_requests_total", "Requests by route, status and serving provider"),
            &["route", "status", "provider"],
        )
        .expect("valid metric");
        let added_latency = HistogramVec::new(
            HistogramOpts::new(
                "compux_relayer_added_latency_seconds",
                "Time spent in the relayer itself, excluding the wait for the provider",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let held = IntGauge::new("compux_held_credits", "Credit base units held by requests in flight")
            .expect("valid metric");
        let unsettled = IntGauge::new(
            "compux_unsettled_credits",
            "Credit base units charged and not yet settled on chain",
        )
        .expect("valid metric");
        let provider_up = IntGaugeVec::new(
            Opts::new("compux_provider_up", "1 while the provider's circuit breaker is closed"),
            &["provider"],
        )
        .expect("valid metric");
        let task_up = IntGaugeVec::new(
            Opts::new(
                "compux_task_up",
                "1 while the background task is running (0: waiting to be restarted)",
            ),
            &["task"],
        )
        .expect("valid metric");
        let task_restarts = IntGaugeVec::new(
            Opts::new("compux_task_restarts", "Times the background task died and was restarted"),
            &["task"],
        )
        .expect("valid metric");
        let shortfall = IntCounterVec::new(
            Opts::new(
                "compux_shortfall_credits_total",
                "Credit base units providers billed beyond what the request held and could charge (each one also an ERROR line and a ledger entry)",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let stuck = IntGauge::new(
            "compux_settlement_stuck_sources",
            "Credit sources whose next settlement batch failed to land STUCK_AFTER times or more (an incident: charged credits not burned)",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stuck.clone()),
            Box::new(shortfall.clone()),
            Box::new(added_latency.clone()),
            Box::new(held.clone()),
            Box::new(unsettled.clone()),
            Box::new(provider_up.clone()),
            Box::new(task_up.clone()),
            Box::new(task_restarts.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            added_latency,
            held,
            unsettled,
            provider_up,
            task_up,
            task_restarts,
            shortfall,
            stuck,
        }
    }

    pub fn observe(
        &self,
        route: &str,
        status: u16,
        provider: &str,
        total: Duration,
        upstream: Option<Duration>,
    ) {
        self.requests.with_label_values(&[route, &status.to_string(), provider]).inc();
        let own = total.saturating_sub(upstream.unwrap_or_default());
        self.added_latency.with_label_values(&[route]).observe(own.as_secs_f64());
    }

    /// The text exposition, with the gauges brought up to date.
    pub fn render(
        &self,
        held: u64,
        unsettled: u64,
        stuck: usize,
        providers: &[(String, bool)],
        tasks: &[(&str, crate::jobs::tasks::TaskState)],
    ) -> String {
        for (name, t) in tasks {
            self.task_up.with_label_values(&[name]).set(i64::from(t.running));
            self.task_restarts.with_label_values(&[name]).set(t.restarts.min(i64::MAX as u64) as i64);
        }
        self.held.set(held.min(i64::MAX as u64) as i64);
        self.stuck.set(stuck as i64);
        self.unsettled.set(unsettled.min(i64::MAX as u64) as i64);
        for (name, up) in providers {
            self.provider_up.with_label_values(&[name]).set(i64::from(*up));
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
