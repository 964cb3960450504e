//! Where a process's own output goes. Normally stdout. When this process runs the chain itself
//! (`localnet`, `up`), the natively running program prints its `msg!` lines to stdout, as
//! solana-program-test does; those are diverted to stderr so stdout stays the command's own
//! (one JSON document with --json).

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, OnceLock};

static OUT: OnceLock<Mutex<File>> = OnceLock::new();

/// Sends file descriptor 1 to stderr and keeps the real stdout for [`line`].
pub fn divert_program_logs() {
    // SAFETY: plain descriptor duplication at start-up, before the chain runs; the
    // duplicate is owned by the File kept in OUT for the life of the process.
    unsafe {
        let saved = libc::dup(1);
        if saved < 0 || libc::dup2(2, 1) < 0 {
            return;
        }
        let _ = OUT.set(Mutex::new(File::from_raw_fd(saved)));
    }
}

/// Prints one line of the command's own output.
pub fn line(text: &str) {
    match OUT.get() {
        Some(out) => {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        None => println!("{text}"),
    }
}
