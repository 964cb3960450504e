//! Logs of the long-running services (`compux relayer`, `compux up`): `tracing` events on
//! stderr, as text for people or one JSON object per line for log pipelines, written by a
//! background thread so the request path never waits on the terminal.

use clap::ValueEnum;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Dependencies whose warnings say nothing to the user.
const QUIET: &str = "tarpc=error";

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// Starts logging; `COMPUX_LOG` (an env-filter directive such as `info` or
/// `compux_relayer=debug`) overrides `default_filter`. Keep the guard until exit: dropping it
/// flushes what is buffered.
pub fn init(format: LogFormat, default_filter: &str) -> WorkerGuard {
    // The embedded chain's RPC client (tarpc) warns at every call that no OpenTelemetry
    // subscriber is installed: noise, a few lines a second, unless asked for.
    let default_filter = format!("{default_filter},{QUIET}");
    let filter = EnvFilter::try_from_env("COMPUX_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    // Another subscriber already installed (only in tests) keeps its place.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
