//! The command's own output: stdout, or the real stdout kept aside when this process runs
//! the chain (see `compux_localnet::stdout`).

pub use compux_localnet::stdout::{divert_program_logs, line};

/// `println!` for the command's own output.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::line(&format!($($arg)*)) };
}
