//! The one integration-test binary: every case runs the real `compux` program natively in a
//! solana-program-test bank, against the real SPL Token program.

mod cases;
mod program_test;
